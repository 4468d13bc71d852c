//! Measuring: every job on every stage, in interleaved rounds, reduced to
//! a median and a spread.
//!
//! A shared two-core machine drifts: a neighbour's build, a timer storm.
//! Running one model five times in a row and then the next would hand all
//! of a bad minute to one model. So each round runs every job once, in
//! turn, and the next round starts again from the first: the drift falls
//! on every model alike, and the spread of each shows how much it moved.

use std::time::Duration;

use indicatif::ProgressBar;
use restaurant::Report;
use restaurant::report::{Percentiles, seconds};
use serde::Serialize;

use crate::discover::{Example, Workspace};
use crate::render::Stage;
use crate::run::{self, Outcome};

/// One thing to run on every stage: a model, with extra arguments such as
/// `--cooks 4`.
#[derive(Clone, Debug)]
pub struct Job {
    pub example: Example,
    /// Arguments after the workload's (`--cooks 8`, `--waiters 3`).
    pub args: Vec<String>,
}

impl Job {
    /// The model with its default cooks.
    pub fn plain(example: &Example) -> Job {
        Job {
            example: example.clone(),
            args: Vec::new(),
        }
    }

    /// The model with `--cooks n`.
    pub fn with_cooks(example: &Example, cooks: usize) -> Job {
        Job {
            example: example.clone(),
            args: vec!["--cooks".to_owned(), cooks.to_string()],
        }
    }
}

/// The lowest and highest of a figure over the rounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Range(pub f64, pub f64);

impl Range {
    fn of(values: impl Iterator<Item = f64>) -> Option<Range> {
        values.fold(None, |range, v| match range {
            None => Some(Range(v, v)),
            Some(Range(lo, hi)) => Some(Range(lo.min(v), hi.max(v))),
        })
    }

    /// Half the range over the median, the `±` of a table.
    pub fn relative_to(self, median: f64) -> f64 {
        if median > 0.0 {
            (self.1 - self.0) / 2.0 / median
        } else {
            0.0
        }
    }
}

/// One round's figures, kept so that two models can be compared round by
/// round (rounds are interleaved: round i of every model ran in the same
/// stretch of time).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Figures {
    pub makespan_s: f64,
    pub counter_wait_p99: Option<f64>,
    pub cpu_s: Option<f64>,
}

impl Figures {
    fn of(report: &Report) -> Figures {
        Figures {
            makespan_s: report.makespan_s,
            counter_wait_p99: report.counter_wait.map(|p| p.p99),
            cpu_s: report.cpu_s,
        }
    }
}

/// How much the figures moved from round to round.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub makespan_s: Range,
    pub counter_wait_p99: Option<Range>,
    pub cpu_s: Option<Range>,
}

/// One job's result on one stage.
#[derive(Clone, Debug)]
pub struct Row {
    pub model: String,
    /// The run's arguments beyond the workload's.
    pub args: Vec<String>,
    /// Marked in tables (a discontinued crate).
    pub note: Option<String>,
    /// The median report, or the first DNF or failure, or why it was
    /// skipped.
    pub outcome: Outcome,
    /// The rounds measured (a DNF or a failure is not repeated).
    pub repeats: u32,
    /// `None` unless every round was verified.
    pub spread: Option<Spread>,
    /// For a run with no report (DNF, failed): the cooks it was given,
    /// as the example resolves its command line.
    pub cooks_given: Option<u64>,
    /// Every verified round's figures, in the order the rounds ran.
    pub rounds: Vec<Figures>,
}

impl Row {
    /// The stage's lower bound ÷ the makespan: one bound for every row,
    /// from the scheduled arrivals and one unit timed once.
    pub fn efficiency(&self, stage: &Stage) -> Option<f64> {
        let Outcome::Ok(report) = &self.outcome else {
            return None;
        };
        (report.makespan_s > 0.0)
            .then(|| stage.lower_bound.as_secs_f64() / report.makespan_s)
    }

    /// Whether its customers fell behind their schedule by more than the
    /// floor allows (arrival lag p99 over twice the floor's plus 1 ms):
    /// such a row is marked and left out of the verdicts, since what it
    /// measured is partly the customers. `false` with no floor.
    pub fn late(&self, stage: &Stage) -> bool {
        match (&self.outcome, &stage.floor) {
            (Outcome::Ok(report), Some(floor)) => report
                .arrival_lag
                .is_some_and(|lag| lag.p99 > floor.late_above()),
            _ => false,
        }
    }

    /// The cooks it ran with, as its report says, or as it was given.
    pub fn cooks(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Ok(report) => Some(report.cooks),
            _ => self.cooks_given,
        }
    }
}

/// The arguments that make a stage's workload.
pub fn workload_args(stage: &Stage) -> Vec<String> {
    vec![
        "--preset".to_owned(),
        stage.preset.name().to_owned(),
        "--orders".to_owned(),
        stage.orders.to_string(),
        "--seed".to_owned(),
        stage.seed.to_string(),
        "--time-scale".to_owned(),
        stage.time_scale.to_string(),
        "--json".to_owned(),
    ]
}

/// What a measurement needs besides its jobs.
#[derive(Debug)]
pub struct Setup<'a> {
    pub workspace: &'a Workspace,
    pub limit: Duration,
    pub repeats: u32,
    /// Arguments for every run (`compare --example-args`).
    pub extra: &'a [String],
    pub progress: &'a ProgressBar,
    /// The null restaurant, run on every stage in every round to measure
    /// the floor; `None` to measure none.
    pub floor: Option<&'a Example>,
}

/// Runs every job on every stage, `repeats` rounds interleaved, and
/// returns a row per job per stage. Stops early, with what it has, when
/// interrupted (then a stage's rows may be fewer than its jobs).
pub fn measure(
    setup: &Setup,
    stages: &[Stage],
    jobs: &[Job],
) -> Vec<(Stage, Vec<Row>)> {
    let mut results = Vec::new();
    // The floor is one more job, first in every round, so that it meets
    // the same machine the models do.
    let floor_job = setup.floor.map(Job::plain);
    let jobs: Vec<Job> = floor_job.iter().chain(jobs).cloned().collect();
    let jobs = &jobs[..];
    for stage in stages {
        let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::new(); jobs.len()];
        // A job that is skipped, ran out of time or failed is done.
        let mut done: Vec<Option<Outcome>> = jobs
            .iter()
            .map(|job| job.example.missing().map(Outcome::Skipped))
            .collect();
        let skipped = done.iter().filter(|d| d.is_some()).count() as u64;
        setup.progress.inc(skipped * u64::from(setup.repeats));
        'rounds: for round in 0..setup.repeats {
            for (i, job) in jobs.iter().enumerate() {
                if done[i].is_some() {
                    continue;
                }
                setup.progress.set_message(format!(
                    "{}{} on {}, round {}",
                    job.example.model,
                    label(&job.args),
                    stage.preset,
                    round + 1
                ));
                let outcome = check(
                    run::run(
                        &setup.workspace.binary(&job.example),
                        &run_args(setup, stage, job),
                        setup.limit,
                    ),
                    stage,
                );
                if run::interrupted() {
                    break 'rounds;
                }
                setup.progress.inc(1);
                match outcome {
                    Outcome::Ok(_) => outcomes[i].push(outcome),
                    other => {
                        // A DNF or a failure will not get better with
                        // more rounds.
                        setup
                            .progress
                            .inc(u64::from(setup.repeats - 1 - round));
                        done[i] = Some(other);
                    }
                }
            }
        }
        let interrupted = run::interrupted();
        let mut rows: Vec<Row> = jobs
            .iter()
            .zip(outcomes)
            .zip(done)
            .filter(|((_, ok), done)| {
                !interrupted || done.is_some() || !ok.is_empty()
            })
            .map(|((job, ok), done)| {
                let mut row = row(job, ok, done);
                if matches!(row.outcome, Outcome::Dnf | Outcome::Failed(_)) {
                    row.cooks_given = cooks_given(setup, stage, job);
                }
                row
            })
            .collect();
        let mut stage = stage.clone();
        // The floor's row is not a model's: it becomes the stage's floor.
        // (Found by name: an interrupted stage may have dropped it.)
        if let Some(floor) = &floor_job
            && let Some(at) =
                rows.iter().position(|r| r.model == floor.example.model)
        {
            stage.floor = Floor::of(&rows.remove(at));
        }
        if !rows.is_empty() {
            results.push((stage, rows));
        }
        if interrupted {
            break;
        }
    }
    results
}

/// What the customers measure against the null restaurant, which cooks
/// nothing: the least counter wait and arrival lag this harness can show
/// on this machine. No model can be told apart below it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Floor {
    /// The null restaurant's counter wait p99, in seconds (median of the
    /// rounds).
    pub counter_wait_p99_s: f64,
    /// Its arrival lag p99, in seconds: how late the customers walk in
    /// when the server costs them nothing.
    pub arrival_lag_p99_s: f64,
}

impl Floor {
    fn of(row: &Row) -> Option<Floor> {
        let Outcome::Ok(report) = &row.outcome else {
            return None;
        };
        Some(Floor {
            counter_wait_p99_s: report.counter_wait?.p99,
            arrival_lag_p99_s: report.arrival_lag?.p99,
        })
    }

    /// The arrival lag p99 past which a run's customers count as late:
    /// twice the floor's, plus a millisecond.
    pub fn late_above(&self) -> f64 {
        2.0 * self.arrival_lag_p99_s + 1e-3
    }
}

/// Everything `job` runs with on `stage`: the workload's arguments, its
/// own, then compare's `--example-args`.
fn run_args(setup: &Setup, stage: &Stage, job: &Job) -> Vec<String> {
    let mut args = workload_args(stage);
    args.extend(job.args.iter().cloned());
    args.extend(setup.extra.iter().cloned());
    args
}

/// The cooks `job` is given on `stage`, asked of the example itself
/// (`--print-cooks` resolves `auto` and the defaults without serving).
/// `None` when it cannot say; a model that does not answer within the
/// time limit is killed like any run, and named.
fn cooks_given(setup: &Setup, stage: &Stage, job: &Job) -> Option<u64> {
    let mut args = run_args(setup, stage, job);
    args.push("--print-cooks".to_owned());
    let binary = setup.workspace.binary(&job.example);
    match run::supervise(&binary, &args, setup.limit) {
        Ok(stdout) => stdout.trim().parse().ok(),
        Err(Outcome::Dnf) => {
            // Printed around the progress bar, not through it: a hidden
            // bar (stderr not a terminal) would swallow the line.
            setup.progress.suspend(|| {
                eprintln!(
                    "compare: {} did not answer --print-cooks within {}: \
                     killed, and its cooks are not shown",
                    job.example.model,
                    seconds(setup.limit.as_secs_f64())
                );
            });
            None
        }
        // Its run already failed and said why; its cooks cell stays empty.
        Err(_) => None,
    }
}

/// ` --cooks 4` for a job's arguments, for progress messages.
fn label(args: &[String]) -> String {
    if args.is_empty() {
        String::new()
    } else {
        format!(" {}", args.join(" "))
    }
}

/// A run whose checksum disagrees with the workload's is a failure.
fn check(outcome: Outcome, stage: &Stage) -> Outcome {
    match outcome {
        Outcome::Ok(report) if report.checksum != stage.expected => {
            Outcome::Failed(format!(
                "checksum {} disagrees with the expected {}",
                report.checksum, stage.expected
            ))
        }
        other => other,
    }
}

/// One row from a job's verified rounds and how it ended: a failure, a
/// DNF or a skip wins over any verified round (a model that failed once
/// is not correct); else the median of every figure, and the spread.
fn row(job: &Job, verified: Vec<Outcome>, done: Option<Outcome>) -> Row {
    let reports: Vec<Report> = verified
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Ok(report) => Some(*report),
            _ => None,
        })
        .collect();
    // A DNF or a failure was a round; a skip was none.
    let ran = matches!(done, Some(Outcome::Dnf | Outcome::Failed(_)));
    let repeats = reports.len() as u32 + u32::from(ran);
    let rounds = reports.iter().map(Figures::of).collect();
    let (outcome, spread) = match done {
        Some(ended) => (ended, None),
        None => match median(&reports) {
            Some(median) => {
                let spread = Spread {
                    makespan_s: Range::of(reports.iter().map(|r| r.makespan_s))
                        .unwrap_or(Range(0.0, 0.0)),
                    counter_wait_p99: all(&reports, |r| {
                        r.counter_wait.map(|p| p.p99)
                    }),
                    cpu_s: all(&reports, |r| r.cpu_s),
                };
                (Outcome::Ok(Box::new(median)), Some(spread))
            }
            None => (Outcome::Failed("no round finished".to_owned()), None),
        },
    };
    Row {
        model: job.example.model.clone(),
        args: job.args.clone(),
        note: job.example.discontinued.clone(),
        outcome,
        repeats,
        spread,
        cooks_given: None,
        rounds,
    }
}

/// The range of a figure every report has; `None` if one lacks it.
fn all(
    reports: &[Report],
    f: impl Fn(&Report) -> Option<f64>,
) -> Option<Range> {
    let values: Option<Vec<f64>> = reports.iter().map(f).collect();
    Range::of(values?.into_iter())
}

/// The median of each figure, separately (the lower median for an even
/// count); the rest of the report from the round with the median
/// makespan. `None` for no reports.
pub fn median(reports: &[Report]) -> Option<Report> {
    if reports.is_empty() {
        return None;
    }
    fn mid(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) / 2]
    }
    let each =
        |f: &dyn Fn(&Report) -> f64| mid(reports.iter().map(f).collect());
    let some = |f: &dyn Fn(&Report) -> Option<f64>| {
        let v: Option<Vec<f64>> = reports.iter().map(f).collect();
        v.filter(|v| !v.is_empty()).map(mid)
    };
    let percentiles = |f: &dyn Fn(&Report) -> Option<Percentiles>| {
        let v: Option<Vec<Percentiles>> = reports.iter().map(f).collect();
        v.filter(|v| !v.is_empty()).map(|v| Percentiles {
            p50: mid(v.iter().map(|p| p.p50).collect()),
            p99: mid(v.iter().map(|p| p.p99).collect()),
            max: mid(v.iter().map(|p| p.max).collect()),
        })
    };
    let makespan = each(&|r| r.makespan_s);
    let middle = reports
        .iter()
        .find(|r| r.makespan_s == makespan)
        .or(reports.first())?
        .clone();
    Some(Report {
        makespan_s: makespan,
        lower_bound_s: some(&|r| r.lower_bound_s),
        bound_as_kept_s: some(&|r| r.bound_as_kept_s),
        cpu_s: some(&|r| r.cpu_s),
        counter_wait: percentiles(&|r| r.counter_wait),
        order_latency: percentiles(&|r| r.order_latency),
        kitchen_time: percentiles(&|r| r.kitchen_time),
        connect_wait: percentiles(&|r| r.connect_wait),
        arrival_lag: percentiles(&|r| r.arrival_lag),
        customers_cpu_s: some(&|r| r.customers_cpu_s),
        peak_pss_bytes: some(&|r| r.peak_pss_bytes.map(|b| b as f64))
            .map(|b| b as u64),
        peak_threads: some(&|r| r.peak_threads.map(|n| n as f64))
            .map(|n| n as u64),
        ..middle
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(makespan: f64, p99: f64) -> Report {
        let json = format!(
            r#"{{"schema_version":2,"model":"m","preset":"lunch-rush",
            "seed":1,"orders":1,"cooks":2,"time_scale":1.0,"served":1,
            "checksum":"0x0","makespan_s":{makespan},"cpu_s":0.5,
            "counter_wait":{{"p50":0.1,"p99":{p99},"max":1.0}},
            "order_latency":null,"connect_wait":null,"arrival_lag":null,
            "customers_cpu_s":null,"connection_cap":1,"held_at_cap":0,
            "peak_rss_bytes":10,"peak_threads":3,"interrupted":false,
            "host":{{"cores":2,"os":"linux","arch":"x86_64"}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn the_median_is_taken_figure_by_figure() {
        let reports = [report(3.0, 0.3), report(1.0, 0.9), report(2.0, 0.1)];
        let m = median(&reports).unwrap();
        assert_eq!(m.makespan_s, 2.0);
        assert_eq!(m.counter_wait.unwrap().p99, 0.3);
        // An even count takes the lower median, a value that was measured.
        let m = median(&reports[..2]).unwrap();
        assert_eq!(m.makespan_s, 1.0);
        assert!(median(&[]).is_none());
    }

    #[test]
    fn ranges_span_their_values() {
        let a = Range::of([1.0, 3.0, 2.0].into_iter()).unwrap();
        assert_eq!(a, Range(1.0, 3.0));
        assert_eq!(a.relative_to(2.0), 0.5);
    }
}

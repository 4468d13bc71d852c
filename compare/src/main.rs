//! `compare`: every model, one workload, one table.
//!
//! ```text
//! cargo run --release                      # every model on every preset
//! cargo run --release -- --preset takeout  # one preset
//! cargo run --release -- --quick           # small and fast, under a minute
//! cargo run --release -- --write-book      # regenerate book/src/results/
//! ```
//!
//! It finds the examples from `cargo metadata` (every package under
//! `examples-*/`, plus `sequential`), builds them in release, runs each on
//! the same workload in a process of its own, checks every checksum against
//! the one the workload must have, and prints a table per preset.
//!
//! Exit status: 0 when every run finished with the right checksum or ran
//! out of time (a model that cannot cope is a result) and at least one was
//! verified; 1 when a checksum disagrees, an example crashed or failed
//! verification, or nothing was verified; 2 for bad arguments; 130 when
//! interrupted (the running example's whole tree is killed, and what was
//! measured before is printed).

mod book;
mod discover;
mod machine;
mod render;
mod run;

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use restaurant::{Preset, Report, Workload, kernel};
use serde::Serialize;

use crate::discover::{Example, Workspace};
use crate::render::{Row, Stage};
use crate::run::Outcome;

#[derive(Debug, Parser)]
#[command(
    name = "compare",
    about = "Runs every example on the same workload and prints what each \
             one did",
    after_help = "Exit status: 0 when every run finished with the right \
                  checksum or ran out of time, and one at least was \
                  verified; 1 when a checksum disagrees, an example crashed \
                  or failed verification, or nothing was verified; 2 for \
                  bad arguments; 130 when interrupted."
)]
struct Cli {
    /// Presets to run, comma-separated [default: all four]
    #[arg(long, value_enum, value_delimiter = ',')]
    preset: Vec<Preset>,

    /// Models to run, by package name, comma-separated (`sequential` for
    /// the reference) [default: every example]
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    models: Vec<String>,

    /// Runs of each model on each preset; the figures are medians
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=99))]
    repeats: u32,

    /// The workload seed
    #[arg(
        long,
        default_value_t = 1,
        value_name = "S",
        allow_negative_numbers = true
    )]
    seed: u64,

    /// Seconds a run may take before it is killed and shown as DNF
    /// [default: 10, or 5 with --quick]
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        value_parser = parse_limit
    )]
    time_limit: Option<f64>,

    /// Every model on every preset, a tenth of the orders and time ÷20:
    /// a check that everything works, in about a minute
    #[arg(long)]
    quick: bool,

    /// Print one JSON object with a `runs` array instead of tables
    #[arg(long)]
    json: bool,

    /// Write the tables, charts and machine to book/src/results/
    #[arg(long)]
    write_book: bool,

    /// Do not build: use the release binaries already in the target folder
    #[arg(long)]
    no_build: bool,

    /// Extra arguments for every example run, as one string (a test hook:
    /// `--example-args "--seed 2"` makes every checksum disagree)
    #[arg(long, hide = true, allow_hyphen_values = true)]
    example_args: Option<String>,
}

fn parse_limit(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 3600.0 => Ok(f),
        _ => Err(
            "expected a number of seconds greater than 0 and at most 3600"
                .to_owned(),
        ),
    }
}

/// Everything `--json` prints.
#[derive(Debug, Serialize)]
struct Comparison {
    schema_version: u32,
    host: restaurant::report::Host,
    /// Measured time of one kernel unit, in seconds.
    unit_s: f64,
    time_limit_s: f64,
    stages: Vec<StageJson>,
    runs: Vec<RunJson>,
}

#[derive(Debug, Serialize)]
struct StageJson {
    preset: Preset,
    orders: usize,
    seed: u64,
    time_scale: f64,
    lower_bound_s: f64,
    expected_checksum: String,
}

#[derive(Debug, Serialize)]
struct RunJson {
    model: String,
    preset: Preset,
    /// `ok`, `dnf` or `failed`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    efficiency: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match compare(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compare: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` and a newline to stdout. A reader that closed the pipe
/// (`| head`) ends the output quietly; any other failed write is an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Runs the comparison: success when every run finished with the right
/// checksum or ran out of time and at least one was verified; failure when
/// a run failed or disagreed, or none was verified; 130 when interrupted.
fn compare(cli: &Cli) -> Result<ExitCode> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let workspace = discover::workspace(&manifest)?;
    let examples = chosen(&workspace, &cli.models)?;
    if !cli.no_build {
        build(&workspace, &examples)?;
    }

    let presets = if cli.preset.is_empty() {
        Preset::ALL.to_vec()
    } else {
        cli.preset.clone()
    };
    let limit =
        Duration::from_secs_f64(cli.time_limit.unwrap_or(if cli.quick {
            5.0
        } else {
            10.0
        }));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let unit = kernel::measure_unit();
    let extra: Vec<String> = cli
        .example_args
        .as_deref()
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();

    let stages: Vec<Stage> = presets
        .iter()
        .map(|&preset| {
            let (orders, time_scale) = if cli.quick {
                ((preset.default_orders() / 10).max(10), 20.0)
            } else {
                (preset.default_orders(), 1.0)
            };
            let workload =
                Workload::generate_scaled(preset, orders, cli.seed, time_scale);
            Stage {
                preset,
                orders,
                seed: cli.seed,
                time_scale,
                cores,
                lower_bound: workload.lower_bound(unit, cores),
                expected: workload.expected_checksum().to_string(),
            }
        })
        .collect();

    let total = (stages.len() * examples.len()) as u64 * u64::from(cli.repeats);
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {msg}")
            .expect("the template is valid"),
    );
    run::stop_on_interrupt();
    let mut results: Vec<(Stage, Vec<Row>)> = Vec::new();
    'stages: for stage in &stages {
        let mut rows = Vec::new();
        for example in &examples {
            progress
                .set_message(format!("{} on {}", example.model, stage.preset));
            let mut args = vec![
                "--preset".to_owned(),
                stage.preset.name().to_owned(),
                "--orders".to_owned(),
                stage.orders.to_string(),
                "--seed".to_owned(),
                stage.seed.to_string(),
                "--time-scale".to_owned(),
                stage.time_scale.to_string(),
                "--json".to_owned(),
            ];
            args.extend(extra.iter().cloned());
            let mut outcomes = Vec::new();
            for _ in 0..cli.repeats {
                let outcome =
                    run::run(&workspace.binary(example), &args, limit);
                if run::interrupted() {
                    // The run was killed half-way: it measured nothing.
                    if !rows.is_empty() {
                        results.push((stage.clone(), rows));
                    }
                    break 'stages;
                }
                progress.inc(1);
                let stop = !matches!(outcome, Outcome::Ok(_));
                outcomes.push(check(outcome, stage));
                if stop {
                    // A DNF or a failure will not get better with repeats.
                    progress
                        .inc(u64::from(cli.repeats) - outcomes.len() as u64);
                    break;
                }
            }
            rows.push(Row {
                model: example.model.clone(),
                outcome: median(outcomes),
            });
        }
        results.push((stage.clone(), rows));
    }
    progress.finish_and_clear();

    let all_good = results.iter().all(|(_, rows)| {
        rows.iter()
            .all(|r| !matches!(r.outcome, Outcome::Failed(_)))
    });
    let verified = results
        .iter()
        .flat_map(|(_, rows)| rows)
        .filter(|r| matches!(r.outcome, Outcome::Ok(_)))
        .count();
    if cli.json {
        print_json(&results, unit, limit)?;
    } else {
        print_tables(&results, limit, unit)?;
    }
    if run::interrupted() {
        eprintln!(
            "compare: interrupted: above are the {verified} runs verified \
             before it; nothing was written to the book"
        );
        return Ok(ExitCode::from(130));
    }
    if verified == 0 {
        eprintln!(
            "compare: no run was verified (every one failed or ran out of \
             time): nothing to compare"
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut timelines_good = true;
    if cli.write_book {
        let dir = workspace.root.join("book/src/results");
        book::write(&dir, &results, &examples, limit, cli)?;
        timelines_good = timelines(&workspace, &examples, &dir, limit)
            && backlog(&workspace, &examples, &dir, limit)?;
        eprintln!("wrote {}", dir.display());
    }
    Ok(if all_good && timelines_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The timelines the book shows: `(model, preset, orders, time scale)`.
/// Small enough for every one of them to finish.
const TIMELINES: [(&str, Preset, usize, f64); 4] = [
    // The blocking lesson: the cashier stalls behind a cake, or does not.
    ("blocking-blocked", Preset::BigOrder, 200, 1.0),
    ("blocking-spawn-blocking", Preset::BigOrder, 200, 1.0),
    // Waiting: threads sit blocked, tasks free their thread.
    ("parallelism-thread-pool", Preset::Takeout, 100, 10.0),
    ("concurrency-tokio", Preset::Takeout, 100, 10.0),
];

/// Draws the book's timelines into `dir` as
/// `timeline-<model>-<preset>.svg`; `false` if one of them failed.
fn timelines(
    workspace: &Workspace,
    examples: &[Example],
    dir: &Path,
    limit: Duration,
) -> bool {
    let mut good = true;
    for (model, preset, orders, scale) in TIMELINES {
        let Some(example) = examples.iter().find(|e| e.model == model) else {
            eprintln!(
                "no timeline for {model}: it is not among the models run"
            );
            continue;
        };
        let file = dir.join(format!("timeline-{model}-{}.svg", preset.name()));
        let args: Vec<String> = [
            "--preset",
            preset.name(),
            "--orders",
            &orders.to_string(),
            "--time-scale",
            &scale.to_string(),
            "--json",
            "--trace",
            &file.to_string_lossy(),
        ]
        .map(str::to_owned)
        .to_vec();
        match run::run(&workspace.binary(example), &args, limit) {
            Outcome::Ok(_) => {}
            Outcome::Dnf => {
                eprintln!("timeline of {model} on {preset}: did not finish");
                good = false;
            }
            Outcome::Failed(why) => {
                eprintln!("timeline of {model} on {preset}: {why}");
                good = false;
            }
        }
    }
    good
}

/// The backlog experiment the book shows: `concurrency-tokio` on the
/// `takeout` burst with std's listen backlog of 128 and with the door's,
/// three rounds each, interleaved, into `backlog.md`. A round may lose
/// customers (the kernel drops what the queue cannot hold): that is the
/// result, counted from the verdict, not an error. `false` if a round
/// failed any other way.
fn backlog(
    workspace: &Workspace,
    examples: &[Example],
    dir: &Path,
    limit: Duration,
) -> Result<bool> {
    const MODEL: &str = "concurrency-tokio";
    const ROUNDS: usize = 3;
    let Some(example) = examples.iter().find(|e| e.model == MODEL) else {
        eprintln!("no backlog experiment: {MODEL} is not among the models run");
        return Ok(true);
    };
    let backlogs = [128, restaurant::door::BACKLOG];
    let mut rounds: Vec<Vec<book::Round>> = vec![Vec::new(); backlogs.len()];
    for _ in 0..ROUNDS {
        for (i, backlog) in backlogs.iter().enumerate() {
            let backlog = backlog.to_string();
            let args: Vec<String> =
                ["--preset", "takeout", "--json", "--backlog", &backlog]
                    .map(str::to_owned)
                    .to_vec();
            let round = match run::run(&workspace.binary(example), &args, limit)
            {
                Outcome::Ok(report) => book::Round::Served(report),
                Outcome::Failed(why) => match lost_in(&why) {
                    Some(lost) => book::Round::Lost(lost),
                    None => {
                        eprintln!("backlog {backlog}: {why}");
                        return Ok(false);
                    }
                },
                Outcome::Dnf => {
                    eprintln!("backlog {backlog}: did not finish");
                    return Ok(false);
                }
            };
            rounds[i].push(round);
        }
    }
    book::backlog(dir, &backlogs, &rounds)?;
    Ok(true)
}

/// How many customers a failed night left without a plate, read from the
/// verdict's "verification failed: N orders left without a plate".
fn lost_in(verdict: &str) -> Option<u64> {
    let (before, _) = verdict.split_once(" left without a plate")?;
    let words: Vec<&str> = before.split_whitespace().collect();
    words.get(words.len().checked_sub(2)?)?.parse().ok()
}

/// The examples named by `--models`, or all of them.
fn chosen(workspace: &Workspace, names: &[String]) -> Result<Vec<Example>> {
    if names.is_empty() {
        return Ok(workspace.examples.clone());
    }
    let mut chosen = Vec::new();
    for name in names {
        match workspace.examples.iter().find(|e| &e.model == name) {
            Some(example) => chosen.push(example.clone()),
            None => {
                let known: Vec<&str> = workspace
                    .examples
                    .iter()
                    .map(|e| e.model.as_str())
                    .collect();
                let mut command = <Cli as clap::CommandFactory>::command();
                command
                    .error(
                        clap::error::ErrorKind::InvalidValue,
                        format!(
                            "invalid value '{name}' for '--models <NAMES>': \
                             the models are {}",
                            known.join(", ")
                        ),
                    )
                    .exit();
            }
        }
    }
    Ok(chosen)
}

/// Builds every chosen example in release, in one cargo invocation.
fn build(workspace: &Workspace, examples: &[Example]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(&workspace.root).args([
        "build",
        "--release",
        "--quiet",
    ]);
    for example in examples {
        command.args(["-p", &example.package, "--bin", &example.bin]);
    }
    eprintln!("building {} examples in release…", examples.len());
    let status = command.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
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

/// One outcome from several runs: the first failure or DNF if any, else a
/// report whose every figure is the median of the runs'.
fn median(outcomes: Vec<Outcome>) -> Outcome {
    let mut reports = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Ok(report) => reports.push(*report),
            other => return other,
        }
    }
    let Some(first) = reports.first().cloned() else {
        return Outcome::Failed("no run".to_owned());
    };
    fn mid<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }
    let each =
        |f: &dyn Fn(&Report) -> f64| mid(reports.iter().map(f).collect());
    let some = |f: &dyn Fn(&Report) -> Option<f64>| {
        let v: Option<Vec<f64>> = reports.iter().map(f).collect();
        v.map(mid)
    };
    let percentiles =
        |f: &dyn Fn(&Report) -> Option<restaurant::report::Percentiles>| {
            let v: Option<Vec<_>> = reports.iter().map(f).collect();
            v.map(|v| restaurant::report::Percentiles {
                p50: mid(v.iter().map(|p| p.p50).collect()),
                p99: mid(v.iter().map(|p| p.p99).collect()),
                max: mid(v.iter().map(|p| p.max).collect()),
            })
        };
    let median = Report {
        makespan_s: each(&|r| r.makespan_s),
        cpu_s: some(&|r| r.cpu_s),
        counter_wait: percentiles(&|r| r.counter_wait),
        order_latency: percentiles(&|r| r.order_latency),
        connect_wait: percentiles(&|r| r.connect_wait),
        arrival_lag: percentiles(&|r| r.arrival_lag),
        customers_cpu_s: some(&|r| r.customers_cpu_s),
        peak_rss_bytes: some(&|r| r.peak_rss_bytes.map(|b| b as f64))
            .map(|b| b as u64),
        peak_threads: some(&|r| r.peak_threads.map(|n| n as f64))
            .map(|n| n as u64),
        ..first
    };
    Outcome::Ok(Box::new(median))
}

fn print_tables(
    results: &[(Stage, Vec<Row>)],
    limit: Duration,
    unit: Duration,
) -> Result<()> {
    emit(&format!(
        "one unit of chopping takes {:.0} ns here; the lower bound is the \
         physical limit, efficiency = lower bound ÷ makespan",
        unit.as_secs_f64() * 1e9
    ))?;
    for (stage, rows) in results {
        emit(&format!("\n{}", stage.headline()))?;
        emit(&render::table(stage, rows, limit).to_string())?;
        for failure in render::failures(rows) {
            emit(&format!("  FAILED {failure}"))?;
        }
    }
    Ok(())
}

fn print_json(
    results: &[(Stage, Vec<Row>)],
    unit: Duration,
    limit: Duration,
) -> Result<()> {
    let mut runs = Vec::new();
    for (stage, rows) in results {
        for row in rows {
            let (status, report, message) = match &row.outcome {
                Outcome::Ok(r) => ("ok", Some((**r).clone()), None),
                Outcome::Dnf => (
                    "dnf",
                    None,
                    Some(format!("killed after {} s", limit.as_secs_f64())),
                ),
                Outcome::Failed(why) => ("failed", None, Some(why.clone())),
            };
            let efficiency = report.as_ref().and_then(|r| {
                (r.makespan_s > 0.0)
                    .then(|| stage.lower_bound.as_secs_f64() / r.makespan_s)
            });
            runs.push(RunJson {
                model: row.model.clone(),
                preset: stage.preset,
                status,
                report,
                efficiency,
                message,
            });
        }
    }
    let comparison = Comparison {
        schema_version: 1,
        host: restaurant::report::Host::this(),
        unit_s: unit.as_secs_f64(),
        time_limit_s: limit.as_secs_f64(),
        stages: results
            .iter()
            .map(|(s, _)| StageJson {
                preset: s.preset,
                orders: s.orders,
                seed: s.seed,
                time_scale: s.time_scale,
                lower_bound_s: s.lower_bound.as_secs_f64(),
                expected_checksum: s.expected.clone(),
            })
            .collect(),
        runs,
    };
    // Plain data: serialising cannot fail.
    emit(
        &serde_json::to_string(&comparison).expect("the comparison serialises"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn lost_customers_are_read_from_the_verdict() {
        let verdict = "concurrency-tokio: error: verification failed: 456 \
                       orders left without a plate (374, 1626, …)";
        assert_eq!(super::lost_in(verdict), Some(456));
        let one = "verification failed: 1 order left without a plate (3)";
        assert_eq!(super::lost_in(one), Some(1));
        assert_eq!(super::lost_in("the cook of order 3 panicked"), None);
    }
}

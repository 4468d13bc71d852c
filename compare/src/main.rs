//! `compare`: every model, one workload, one table.
//!
//! ```text
//! cargo run --release                      # every model on four presets
//! cargo run --release -- --preset takeout  # one preset
//! cargo run --release -- --repeats 5       # medians of 5 interleaved rounds
//! cargo run --release -- --sweep-cooks 1,4,16 --models parallelism-thread-pool
//! cargo run --release -- --quick           # small and fast, under a minute
//! cargo run --release -- --write-book      # regenerate book/src/results/
//! ```
//!
//! It finds the examples from `cargo metadata` (every package under
//! `examples-*/`, plus `sequential`), skips those that require a program
//! this machine lacks, builds the rest in release, runs each on the same
//! workload in a process of its own (`measure`), checks every checksum
//! against the one the workload must have, and prints a table per preset
//! with a legend and a verdict (`render`); `--write-book` writes the same
//! and more into the book (`book`).
//!
//! Exit status: 0 when every run finished with the right checksum, ran
//! out of time or was skipped (a model that cannot cope is a result) and
//! at least one was verified; 1 when a checksum disagrees, an example
//! crashed or failed verification, or nothing was verified; 2 for bad
//! arguments; 130 when interrupted (the running example's whole tree is
//! killed, and what was measured before is printed).

mod book;
mod discover;
mod machine;
mod mapping;
mod measure;
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
use crate::measure::{Job, Row, Setup, Spread};
use crate::render::Stage;
use crate::run::Outcome;

#[derive(Debug, Parser)]
#[command(
    name = "compare",
    about = "Runs every example on the same workload and prints what each \
             one did",
    after_help = "Tables show one round per model unless --repeats N: \
                  then medians of N rounds, interleaved so that the \
                  machine's drift falls on every model alike, with their \
                  spread; the verdict under each table says whether a \
                  lead is beyond it.\n\n\
                  Exit status: 0 when every run finished with the right \
                  checksum, ran out of time or was skipped, and one at \
                  least was verified; 1 when a checksum disagrees, an \
                  example crashed or failed verification, or nothing was \
                  verified; 2 for bad arguments; 130 when interrupted."
)]
struct Cli {
    /// Presets to run, comma-separated [default: lunch-rush, takeout,
    /// banquet, big-order; with --all or --write-book, slow-talkers too]
    #[arg(long, value_enum, value_delimiter = ',')]
    preset: Vec<Preset>,

    /// Every preset, slow-talkers included
    #[arg(long)]
    all: bool,

    /// Models to run, by package name, comma-separated (`sequential` for
    /// the reference) [default: every example]
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    models: Vec<String>,

    /// Rounds of every run, interleaved; tables show medians and the
    /// spread [default: 1, or 5 with --write-book]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=99))]
    repeats: Option<u32>,

    /// Run the chosen models (--models, default parallelism-thread-pool)
    /// at each of these numbers of cooks, comma-separated (at most 10000,
    /// the most any model takes; each model's --help says its own cap),
    /// and draw efficiency, counter wait, latency, threads and memory
    /// against cooks
    #[arg(long, value_delimiter = ',', value_name = "LIST",
          value_parser = parse_sweep_cooks)]
    sweep_cooks: Vec<u64>,

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

    /// Every model on every preset at its quick size (fewer orders, time
    /// ÷20 where the customers can still keep the schedule): a check that
    /// everything works, in a few minutes
    #[arg(long)]
    quick: bool,

    /// Every column in the tables, not only those that fit 100 columns;
    /// as wide as the terminal (asked of the terminal itself), or as
    /// `COLUMNS` says when exported, or unlimited into a file or a pipe
    #[arg(long)]
    wide: bool,

    /// Print one JSON object with a `runs` array instead of tables
    #[arg(long)]
    json: bool,

    /// Write every table, chart and timeline of the book to
    /// book/src/results/, from at least 5 rounds (about 25 minutes on 2 cores)
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

impl Cli {
    /// Rounds per run: as asked, and at least 5 for the book.
    fn rounds(&self) -> u32 {
        let asked = self.repeats.unwrap_or(1);
        if self.write_book { asked.max(5) } else { asked }
    }

    /// Seconds a run may take.
    fn limit(&self) -> Duration {
        Duration::from_secs_f64(self.time_limit.unwrap_or(if self.quick {
            5.0
        } else {
            10.0
        }))
    }
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

/// The most cooks any model takes: the cap of the pools whose threads
/// block while they simmer. A sweep past it could only fail every run.
const MOST_COOKS: u64 = restaurant::cli::THREADS_CAP as u64;

fn parse_sweep_cooks(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(k) if (1..=MOST_COOKS).contains(&k) => Ok(k),
        _ => Err(format!(
            "expected a number of cooks from 1 to {MOST_COOKS}, the most \
             any model takes (each model's --help says its own cap)"
        )),
    }
}

/// The version of `--json`'s layout.
///
/// 4: each stage carries its `floor`; `lower_bound_s` is the only bound
/// (every run's `efficiency` divides it by the makespan); each run says
/// whether its customers were `late`, and has its `rounds`.
const SCHEMA_VERSION: u32 = 4;

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
    /// The physical limit, from the scheduled arrivals and the unit above:
    /// every run's efficiency is this ÷ its makespan.
    lower_bound_s: f64,
    expected_checksum: String,
    /// The null restaurant's counter wait and arrival lag on this stage;
    /// `null` when it was not measured.
    floor: Option<measure::Floor>,
    /// The arrival lag p99 past which a run's customers count as late.
    late_above_s: Option<f64>,
}

#[derive(Debug, Serialize)]
struct RunJson {
    model: String,
    preset: Preset,
    /// The cooks it ran with (as asked, for a run that did not finish).
    cooks: Option<u64>,
    /// `ok`, `dnf`, `failed` or `skipped`.
    status: &'static str,
    /// Rounds measured.
    repeats: u32,
    /// The median round's report, each figure the median of the rounds'.
    report: Option<Report>,
    /// The lowest and highest of the rounds.
    spread: Option<Spread>,
    efficiency: Option<f64>,
    /// Its customers fell behind the schedule by more than the floor
    /// allows: left out of the verdicts.
    late: bool,
    /// Each verified round's makespan, counter wait p99 and CPU, in the
    /// order the rounds ran.
    rounds: Vec<measure::Figures>,
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

/// The stages (one per preset) a comparison runs.
fn stages(cli: &Cli, unit: Duration, cores: usize) -> Vec<Stage> {
    let presets = if !cli.preset.is_empty() {
        cli.preset.clone()
    } else if cli.all || cli.write_book {
        Preset::ALL.to_vec()
    } else {
        // Slow talkers take seconds for the sequential models, and teach
        // one lesson: with --all and in the book.
        Preset::ALL
            .into_iter()
            .filter(|p| *p != Preset::SlowTalkers)
            .collect()
    };
    presets
        .into_iter()
        .map(|preset| stage(preset, cli, unit, cores))
        .collect()
}

fn stage(preset: Preset, cli: &Cli, unit: Duration, cores: usize) -> Stage {
    let (orders, time_scale) = if cli.quick {
        preset.quick()
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
        floor: None,
    }
}

/// A progress bar for `runs` runs, on stderr.
fn progress(runs: u64) -> ProgressBar {
    ProgressBar::new(runs).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {msg}")
            .expect("the template is valid"),
    )
}

/// Runs the comparison: success when every run finished with the right
/// checksum, ran out of time or was skipped, and at least one was
/// verified; failure when a run failed or disagreed, or none was
/// verified; 130 when interrupted.
fn compare(cli: &Cli) -> Result<ExitCode> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let workspace = discover::workspace(&manifest)?;
    let sweeping = !cli.sweep_cooks.is_empty();
    let examples = if sweeping && cli.models.is_empty() {
        chosen(&workspace, &["parallelism-thread-pool".to_owned()])?
    } else {
        chosen(&workspace, &cli.models)?
    };
    if !cli.no_build {
        let runnable: Vec<Example> = examples
            .iter()
            .chain(&workspace.floor)
            .filter(|e| e.missing().is_none())
            .cloned()
            .collect();
        build(&workspace, &runnable)?;
    }

    let cores = restaurant::cli::cores();
    let unit = kernel::measure_unit();
    let stages = stages(cli, unit, cores);
    let jobs: Vec<Job> = if sweeping {
        examples
            .iter()
            .flat_map(|e| {
                cli.sweep_cooks
                    .iter()
                    .map(|&k| Job::with_cooks(e, k as usize))
            })
            .collect()
    } else {
        examples.iter().map(Job::plain).collect()
    };
    let extra: Vec<String> = cli
        .example_args
        .as_deref()
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let limit = cli.limit();
    // Every stage also runs the floor, in every round.
    let floors = usize::from(workspace.floor.is_some());
    let bar = progress(
        (stages.len() * (jobs.len() + floors)) as u64 * u64::from(cli.rounds()),
    );
    run::stop_on_interrupt();
    let setup = Setup {
        workspace: &workspace,
        limit,
        repeats: cli.rounds(),
        extra: &extra,
        progress: &bar,
        floor: workspace.floor.as_ref(),
    };
    let results = measure::measure(&setup, &stages, &jobs);
    bar.finish_and_clear();

    let rows = || results.iter().flat_map(|(_, rows)| rows);
    let all_good = rows().all(|r| !matches!(r.outcome, Outcome::Failed(_)));
    let verified = rows()
        .filter(|r| matches!(r.outcome, Outcome::Ok(_)))
        .count();
    if cli.json {
        print_json(&results, unit, limit)?;
    } else {
        print_tables(&results, cli, unit)?;
    }
    if run::interrupted() {
        eprintln!(
            "compare: interrupted: above are the {} verified before it; \
             nothing was written to the book",
            restaurant::report::count(verified as u64, "run")
        );
        return Ok(ExitCode::from(130));
    }
    if verified == 0 {
        eprintln!(
            "compare: no run was verified (every one failed, ran out of \
             time or was skipped): nothing to compare"
        );
        return Ok(ExitCode::FAILURE);
    }
    let dir = workspace.root.join("book/src/results");
    let mut extras_good = true;
    if sweeping {
        let charts = if cli.write_book {
            dir.clone()
        } else {
            workspace.target_dir.join("sweeps")
        };
        book::sweep_charts(&charts, &results)?;
        eprintln!("drew the sweep's charts in {}", charts.display());
    } else if cli.write_book {
        book::write(&dir, &results, &examples, limit, cli)?;
        // Every part runs, whatever became of the one before.
        let parts = [
            timelines(&workspace, &examples, &dir, limit),
            backlog(&workspace, &examples, &dir, limit)?,
            book_sweeps(&setup, cli, unit, cores, &examples, &dir)?,
            staffing(&setup, cli, unit, cores, &examples, &dir)?,
        ];
        extras_good = parts.iter().all(|good| *good);
        eprintln!("wrote {}", dir.display());
    }
    Ok(if all_good && extras_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The sweeps the book shows: `(model, preset, cooks)`. Thread-pool on
/// three presets shows sizing for the waiting at work; spawn-blocking's blocking
/// pool on `big-order` shows a pool that only chops, which stops gaining
/// at the cores.
const BOOK_SWEEPS: [(&str, Preset, &[usize]); 4] = [
    (
        "parallelism-thread-pool",
        Preset::LunchRush,
        &[1, 2, 4, 8, 16, 32, 64],
    ),
    (
        "parallelism-thread-pool",
        Preset::Takeout,
        &[16, 128, 1024, 2048, 5000],
    ),
    (
        "parallelism-thread-pool",
        Preset::Banquet,
        &[1, 2, 4, 8, 16, 32, 64],
    ),
    (
        "blocking-spawn-blocking",
        Preset::BigOrder,
        &[1, 2, 4, 8, 16],
    ),
];

/// Runs the book's sweeps and draws them; `false` if one run failed.
fn book_sweeps(
    setup: &Setup,
    cli: &Cli,
    unit: Duration,
    cores: usize,
    examples: &[Example],
    dir: &Path,
) -> Result<bool> {
    let mut good = true;
    for (model, preset, cooks) in BOOK_SWEEPS {
        let Some(example) = examples.iter().find(|e| e.model == model) else {
            eprintln!("no sweep of {model}: it is not among the models run");
            continue;
        };
        let jobs: Vec<Job> =
            cooks.iter().map(|&k| Job::with_cooks(example, k)).collect();
        let stage = stage(preset, cli, unit, cores);
        setup.progress.reset();
        let floors = u64::from(setup.floor.is_some());
        setup.progress.set_length(
            (jobs.len() as u64 + floors) * u64::from(setup.repeats),
        );
        let results = measure::measure(setup, &[stage], &jobs);
        setup.progress.finish_and_clear();
        good &= results
            .iter()
            .flat_map(|(_, rows)| rows)
            .all(|r| !matches!(r.outcome, Outcome::Failed(_)));
        book::sweep_charts(dir, &results)?;
        book::sweep_table(dir, &results, setup.limit)?;
    }
    Ok(good)
}

/// The seed's staffing question: ten staff, split between waiters and
/// cooks, on `slow-talkers` and `lunch-rush`, beside an event loop with a
/// pool of nine; `false` if a run failed.
fn staffing(
    setup: &Setup,
    cli: &Cli,
    unit: Duration,
    cores: usize,
    examples: &[Example],
    dir: &Path,
) -> Result<bool> {
    const STAFF: usize = 10;
    let find = |name: &str| examples.iter().find(|e| e.model == name);
    let (Some(waiters), Some(event_loop)) =
        (find("parallelism-waiters"), find("blocking-spawn-blocking"))
    else {
        eprintln!(
            "no staffing grid: parallelism-waiters or \
                   blocking-spawn-blocking is not among the models run"
        );
        return Ok(true);
    };
    let mut jobs: Vec<Job> = (1..STAFF)
        .map(|w| Job {
            example: waiters.clone(),
            args: vec![
                "--waiters".to_owned(),
                w.to_string(),
                "--cooks".to_owned(),
                (STAFF - w).to_string(),
            ],
        })
        .collect();
    jobs.push(Job::with_cooks(event_loop, STAFF - 1));
    let stages: Vec<Stage> = [Preset::SlowTalkers, Preset::LunchRush]
        .into_iter()
        .map(|p| stage(p, cli, unit, cores))
        .collect();
    setup.progress.reset();
    let floors = usize::from(setup.floor.is_some());
    setup.progress.set_length(
        (stages.len() * (jobs.len() + floors)) as u64
            * u64::from(setup.repeats),
    );
    let results = measure::measure(setup, &stages, &jobs);
    setup.progress.finish_and_clear();
    book::staffing(dir, &results, setup.limit)?;
    Ok(results
        .iter()
        .flat_map(|(_, rows)| rows)
        .all(|r| !matches!(r.outcome, Outcome::Failed(_))))
}

/// The timelines the book shows: `(model, preset, orders, time scale,
/// extra arguments)`.
/// Small enough for every one of them to finish.
const TIMELINES: [(&str, Preset, usize, f64, &[&str]); 4] = [
    // The blocking lesson: the cashier stalls behind a cake, or does not.
    ("blocking-blocked", Preset::BigOrder, 200, 1.0, &[]),
    ("blocking-spawn-blocking", Preset::BigOrder, 200, 1.0, &[]),
    // Waiting: threads sit blocked, tasks free their thread. Two threads
    // each, so that the lanes compare one for one.
    (
        "parallelism-thread-pool",
        Preset::Takeout,
        100,
        10.0,
        &["--cooks", "2"],
    ),
    ("concurrency-tokio", Preset::Takeout, 100, 10.0, &[]),
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
    for (model, preset, orders, scale, extra) in TIMELINES {
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
        .into_iter()
        .chain(extra.iter().map(|a| (*a).to_owned()))
        .collect();
        match run::run(&workspace.binary(example), &args, limit) {
            Outcome::Ok(_) => {}
            Outcome::Dnf => {
                eprintln!("timeline of {model} on {preset}: did not finish");
                good = false;
            }
            Outcome::Failed(why) | Outcome::Skipped(why) => {
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
                Outcome::Skipped(why) => {
                    eprintln!("backlog {backlog}: {why}");
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

/// Builds every chosen example in release, in one cargo invocation, and
/// says so as it goes: a line for each example built and one every
/// [`CRATES_PER_LINE`] crates compiled before them, so that a first build
/// (minutes, on two cores) is never silent, into a terminal or a log.
fn build(workspace: &Workspace, examples: &[Example]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(&workspace.root).args([
        "build",
        "--release",
        "--quiet",
        // Artifacts as JSON on stdout; warnings and errors still reach
        // stderr as cargo renders them.
        "--message-format",
        "json-render-diagnostics",
    ]);
    for example in examples {
        command.args(["-p", &example.package, "--bin", &example.bin]);
    }
    command.stdout(std::process::Stdio::piped());
    eprintln!(
        "building {} in release…",
        restaurant::report::count(examples.len() as u64, "example")
    );
    let mut child = command.spawn().context("cannot run cargo build")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let (mut compiled, mut built) = (0, 0);
    for message in
        cargo_metadata::Message::parse_stream(std::io::BufReader::new(stdout))
    {
        let Ok(cargo_metadata::Message::CompilerArtifact(artifact)) = message
        else {
            continue;
        };
        if artifact.fresh {
            continue;
        }
        let example = examples.iter().find(|e| {
            artifact.target.name == e.bin && artifact.target.is_bin()
        });
        match example {
            Some(example) => {
                built += 1;
                eprintln!(
                    "  built {} ({built} of {})",
                    example.model,
                    examples.len()
                );
            }
            None => {
                compiled += 1;
                if compiled % CRATES_PER_LINE == 0 {
                    eprintln!("  {compiled} crates compiled…");
                }
            }
        }
    }
    let status = child.wait().context("cannot wait for cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
}

/// How many crates a first build compiles between two progress lines.
const CRATES_PER_LINE: usize = 25;

/// The width the tables may take. A terminal's own width when stdout is
/// one (`terminal`: asked of the terminal itself, since shells set
/// `COLUMNS` without exporting it); else `COLUMNS` when a caller exported
/// it; else 100 columns, or for `--wide` as wide as the figures need (a
/// file or a pipe has no width to keep to). Never under 40.
fn table_width(
    terminal: Option<u16>,
    columns: Option<&str>,
    wide: bool,
) -> u16 {
    const NARROWEST: u16 = 40;
    let exported = columns.and_then(|c| c.trim().parse::<u16>().ok());
    match terminal.or(exported) {
        Some(width) => width.max(NARROWEST),
        None if wide => u16::MAX,
        None => 100,
    }
}

fn print_tables(
    results: &[(Stage, Vec<Row>)],
    cli: &Cli,
    unit: Duration,
) -> Result<()> {
    let width = table_width(
        comfy_table::Table::new().width(),
        std::env::var("COLUMNS").ok().as_deref(),
        cli.wide,
    );
    emit(&format!(
        "one unit of chopping takes {:.0} ns here; the lower bound is the \
         physical limit",
        unit.as_secs_f64() * 1e9
    ))?;
    for (stage, rows) in results {
        emit(&format!("\n{}", stage.headline()))?;
        if let Some(floor) = stage.floor_line() {
            emit(&floor)?;
        }
        emit(
            &render::table(stage, rows, cli.limit(), cli.wide, width)
                .to_string(),
        )?;
        for failure in render::failures(rows) {
            emit(&format!("  {failure}"))?;
        }
        for line in render::verdict(stage, rows) {
            emit(&line)?;
        }
    }
    emit("")?;
    for line in render::legend(cli.wide, cli.rounds()) {
        emit(&line)?;
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
                Outcome::Ok(r) => {
                    // One bound per stage: the run's own (the same
                    // schedule, a unit timed by its customers) gives way
                    // to the stage's, which its efficiency divides.
                    let report = Report {
                        lower_bound_s: Some(stage.lower_bound.as_secs_f64()),
                        ..(**r).clone()
                    };
                    ("ok", Some(report), None)
                }
                Outcome::Dnf => (
                    "dnf",
                    None,
                    Some(format!("killed after {} s", limit.as_secs_f64())),
                ),
                Outcome::Failed(why) => ("failed", None, Some(why.clone())),
                Outcome::Skipped(why) => ("skipped", None, Some(why.clone())),
            };
            let asked = row
                .args
                .iter()
                .position(|a| a == "--cooks")
                .and_then(|i| row.args.get(i + 1)?.parse().ok());
            runs.push(RunJson {
                model: row.model.clone(),
                preset: stage.preset,
                cooks: row.cooks().or(asked),
                status,
                repeats: row.repeats,
                efficiency: row.efficiency(stage),
                late: row.late(stage),
                rounds: row.rounds.clone(),
                report,
                spread: row.spread,
                message,
            });
        }
    }
    let comparison = Comparison {
        schema_version: SCHEMA_VERSION,
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
                floor: s.floor,
                late_above_s: s.floor.map(|f| f.late_above()),
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
    use super::*;

    #[test]
    fn the_tables_take_the_terminals_own_width() {
        // A terminal's width wins over an exported COLUMNS, which can be
        // stale (set before the window was resized).
        assert_eq!(table_width(Some(250), None, true), 250);
        assert_eq!(table_width(Some(250), Some("80"), true), 250);
        assert_eq!(table_width(Some(250), None, false), 250);
        // No terminal: an exported COLUMNS, then 100, or no limit for
        // --wide.
        assert_eq!(table_width(None, Some("132"), true), 132);
        assert_eq!(table_width(None, Some(" 90\n"), false), 90);
        assert_eq!(table_width(None, None, false), 100);
        assert_eq!(table_width(None, None, true), u16::MAX);
        assert_eq!(table_width(None, Some("wide"), false), 100);
        // Never narrower than a table can be read at.
        assert_eq!(table_width(Some(20), None, false), 40);
    }

    #[test]
    fn a_sweep_is_refused_past_the_most_any_model_takes() {
        use restaurant::cli::{EXECUTOR_CAP, PROCESSES_CAP, THREADS_CAP};
        let most = THREADS_CAP.max(EXECUTOR_CAP).max(PROCESSES_CAP);
        assert_eq!(MOST_COOKS, most as u64);
        assert_eq!(parse_sweep_cooks(&MOST_COOKS.to_string()), Ok(MOST_COOKS));
        let why = parse_sweep_cooks(&(MOST_COOKS + 1).to_string());
        assert!(why.unwrap_err().contains(&MOST_COOKS.to_string()));
        // --help names the same number.
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains(&format!("at most {MOST_COOKS},")), "{help}");
    }

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

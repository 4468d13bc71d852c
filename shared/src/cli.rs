//! The command line every example shares, and the run around `serve`.
//!
//! ```text
//! <example> [--preset NAME] [--orders N] [--seed S] [--cooks K]
//!           [--time-scale F] [--json] [--fail-order ID]
//! ```
//!
//! Exit codes: 0 when every order was served once with the right digest;
//! 1 when verification fails or the run faults (a cook panicked); 2 for bad
//! arguments, with a message that names the argument.

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::probe::{self, Sampler};
use crate::report::{Cost, Report};
use crate::verify::verify;
use crate::workload::{MAX_ORDERS, Preset, Workload};
use crate::{BoxError, Order, Plate};

/// The most cooks `--cooks` accepts: far more threads than any machine
/// here should run, few enough that a typo cannot exhaust the OS.
pub const MAX_COOKS: u64 = 65_536;

/// A model's `serve`: takes the orders and the number of cooks, returns
/// every plate, or an error naming what went wrong.
pub type Serve = fn(Vec<Order>, usize) -> Result<Vec<Plate>, BoxError>;

/// What `--cooks` means for a model, and its default.
#[derive(Clone, Copy, Debug)]
pub enum Cooks {
    /// Exactly one cook: only `--cooks 1` is accepted.
    One,
    /// Defaults to the number of cores. The text says what K counts.
    Cores(&'static str),
    /// Defaults to a fixed number. The text says what K counts.
    Fixed(usize, &'static str),
}

impl Cooks {
    /// The number used when `--cooks` is not given.
    pub fn default_count(self) -> usize {
        match self {
            Cooks::One => 1,
            Cooks::Cores(_) => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
            Cooks::Fixed(n, _) => n,
        }
    }

    /// The cook counts the conformance kit tries: 1, and several where the
    /// model takes several.
    pub fn to_try(self) -> Vec<usize> {
        match self {
            Cooks::One => vec![1],
            Cooks::Cores(_) | Cooks::Fixed(..) => vec![1, 3],
        }
    }

    fn help(self) -> String {
        match self {
            Cooks::One => {
                "How many cooks: this model has exactly one, so only 1 \
                 is accepted"
                    .to_owned()
            }
            Cooks::Cores(what) => format!(
                "How many cooks: {what} [default: the number of cores, \
                 {}]",
                self.default_count()
            ),
            Cooks::Fixed(n, what) => {
                format!("How many cooks: {what} [default: {n}]")
            }
        }
    }
}

/// An example, as its `main` and its tests see it.
#[derive(Clone, Copy, Debug)]
pub struct Model {
    /// The package name, such as `concurrency-tokio`.
    pub name: &'static str,
    /// One line on what the model shows, for `--help`.
    pub about: &'static str,
    /// What `--cooks` means and its default.
    pub cooks: Cooks,
    /// The model itself.
    pub serve: Serve,
}

/// The arguments, as parsed.
#[derive(Clone, Debug, Parser)]
#[command(
    // A flag given twice takes its last value, so a wrapper can add to a
    // command line without editing it (`compare --example-args`).
    args_override_self = true,
    after_help = "Exit status: 0 when every order was served once with the \
                  right digest, 1 when verification fails or a cook \
                  panicked, 2 for bad arguments."
)]
pub struct Args {
    /// The workload
    #[arg(long, value_enum, default_value_t = Preset::LunchRush)]
    pub preset: Preset,

    /// How many orders [default: the preset's own size; at most 1000000]
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = parse_orders
    )]
    pub orders: Option<usize>,

    /// The seed the workload is generated from
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub seed: u64,

    /// How many cooks (replaced by each model's own text)
    #[arg(
        long,
        value_name = "K",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(u64).range(1..=MAX_COOKS)
    )]
    pub cooks: Option<u64>,

    /// Divide every arrival time and every simmer by F (chops and so the
    /// checksum are unchanged)
    #[arg(
        long,
        value_name = "F",
        default_value_t = 1.0,
        allow_negative_numbers = true,
        value_parser = parse_time_scale
    )]
    pub time_scale: f64,

    /// Print one line of JSON on stdout instead of the text report
    #[arg(long)]
    pub json: bool,

    /// Make the first chop of order ID panic, to see how the model reports
    /// a panicking cook
    #[arg(long, value_name = "ID", allow_negative_numbers = true)]
    pub fail_order: Option<u64>,

    /// Draw the run as an SVG timeline in FILE: one lane per thread, its
    /// ring-ups, chops and simmers
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
}

fn parse_orders(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| {
        "expected a whole number of orders, 0 or more".to_owned()
    })?;
    if n > MAX_ORDERS {
        return Err(format!("at most {MAX_ORDERS} orders"));
    }
    Ok(n)
}

fn parse_time_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && (1e-3..=1e6).contains(&f) => Ok(f),
        _ => Err("expected a number from 0.001 to 1000000".to_owned()),
    }
}

/// A run, its arguments checked against the model.
#[derive(Clone, Debug)]
pub struct Run {
    /// The workload, fault injected if asked for.
    pub workload: Workload,
    /// Cooks to serve with.
    pub cooks: usize,
    /// Print JSON.
    pub json: bool,
    /// Where to draw the timeline, if anywhere.
    pub trace: Option<std::path::PathBuf>,
}

/// Parses the process's arguments for `model`. Exits with status 2 and a
/// message naming the argument when they are wrong (status 0 for `--help`).
pub fn parse(model: &Model) -> Run {
    parse_from(model, std::env::args_os())
}

/// Parses `args` (the first is the program name) for `model`, exiting as
/// [`parse`] does.
pub fn parse_from<I, T>(model: &Model, args: I) -> Run
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = Args::command()
        .name(model.name)
        .bin_name(model.name)
        .about(model.about)
        .mut_arg("cooks", |arg| arg.help(model.cooks.help()));
    let matches = command
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());

    let cooks = match (model.cooks, args.cooks) {
        (Cooks::One, Some(k)) if k != 1 => command
            .error(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{k}' for '--cooks <K>': {} has exactly \
                     one cook, so only 1 is accepted",
                    model.name
                ),
            )
            .exit(),
        (_, Some(k)) => k as usize,
        (policy, None) => policy.default_count(),
    };
    let orders = args.orders.unwrap_or(args.preset.default_orders());
    let mut workload = Workload::generate_scaled(
        args.preset,
        orders,
        args.seed,
        args.time_scale,
    );
    if let Some(id) = args.fail_order
        && !workload.inject_fault(id)
    {
        command
            .error(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{id}' for '--fail-order <ID>': the \
                     workload has {orders} orders, numbered from 0"
                ),
            )
            .exit();
    }
    if args.trace.is_some() {
        workload.trace();
    }
    Run {
        workload,
        cooks,
        json: args.json,
        trace: args.trace,
    }
}

/// Serves `run.workload` with `model`, measuring it, and verifies every
/// plate. Returns the report of a verified run, or what went wrong.
pub fn execute(model: &Model, run: &Run) -> Result<Report, BoxError> {
    let orders = run.workload.to_orders();
    let total = orders.len() as u64;
    let sampler = Sampler::start((!run.json).then_some(total));
    let cpu_before = probe::cpu_time();
    // A panic that escapes `serve` is a bug in the model, not a cook's
    // fault; it is still reported as a failed run, not a crash.
    let served = panic::catch_unwind(AssertUnwindSafe(|| {
        (model.serve)(orders, run.cooks)
    }));
    let cpu_after = probe::cpu_time();
    let sampled = sampler.finish();
    let plates = match served {
        Ok(result) => result?,
        Err(payload) => {
            return Err(format!(
                "serve panicked outside any cook: {}",
                crate::panic_message(&*payload)
            )
            .into());
        }
    };
    let cost = Cost {
        cpu: cpu_before
            .zip(cpu_after)
            .map(|(b, a)| a.saturating_sub(b).saturating_sub(sampled.own_cpu)),
        peak_rss_bytes: probe::peak_rss_bytes()
            .map(|own| own + sampled.children_rss_bytes),
        peak_threads: sampled.peak_threads,
    };
    let checksum = verify(&run.workload, &plates)?;
    if let Some(path) = &run.trace {
        let svg = crate::trace::svg(model.name, &run.workload, &plates);
        std::fs::write(path, svg).map_err(|e| {
            format!("cannot write the timeline to {}: {e}", path.display())
        })?;
    }
    Ok(Report::new(
        model.name,
        &run.workload,
        run.cooks,
        &plates,
        checksum,
        cost,
    ))
}

/// The whole program of an example: parse, serve, verify, report.
pub fn main(model: &Model) -> ExitCode {
    let run = parse(model);
    match execute(model, &run) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let text = if run.json {
                report.to_json()
            } else {
                report.to_string()
            };
            // A closed stdout (`| head`) is not worth a panic.
            let _ = writeln!(out, "{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: error: {e}", model.name);
            ExitCode::FAILURE
        }
    }
}

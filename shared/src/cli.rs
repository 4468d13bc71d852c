//! The command line every example shares, and the run around `serve`.
//!
//! ```text
//! <example> [--preset NAME] [--orders N] [--seed S] [--cooks K]
//!           [--time-scale F] [--json] [--trace FILE.svg]
//! <example> --listen ADDR [--cooks K] [--preset NAME] [--trace FILE.svg]
//! customers --connect ADDR [--preset NAME] [--orders N] [--seed S] …
//! ```
//!
//! The normal way, the example binds a loopback port, starts one process
//! of customers (its own binary again, with `--customers`), opens, serves
//! them until every customer is in, closes, and prints the customers'
//! report with its own cost. `--listen` serves until Ctrl-C or SIGTERM.
//!
//! Exit codes: 0 when every order was served once with the right digest;
//! 1 when verification fails or the run faults (a cook panicked, the OS
//! refused a thread); 2 for bad arguments, with a message that names the
//! argument; 130 when interrupted, after the accepted orders are served
//! or, if they take longer than [`DRAIN`], naming those it stopped.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args as ClapArgs, CommandFactory, FromArgMatches, Parser};

use crate::customers::{self, Night};
use crate::door::{self, Shift};
use crate::probe::{self, Sampler};
use crate::report::{Cost, Report};
use crate::verify::verify;
use crate::workload::{MAX_ORDERS, Preset, Workload};
use crate::{BoxError, Clock};

/// A model's `serve`: takes the listener (bound, its backlog sized), the
/// number of cooks and the shift; accepts customers until closing time,
/// finishes every order it accepted, and returns; or returns an error
/// naming what went wrong.
pub type Serve = fn(TcpListener, usize, Shift) -> Result<(), BoxError>;

/// The cap for executors' worker threads and pools that only chop: far
/// more than any core count, few enough that a typo cannot exhaust the OS.
pub const EXECUTOR_CAP: usize = 1024;

/// The cap for pools whose threads block while they simmer: 10,000
/// threads. A sleeping thread touches little of its stack (on `takeout`,
/// 5,000 of them held about what tokio's two workers held for the same
/// connections), and Linux's default `threads-max` is far above it.
/// `takeout`'s burst needs 5,000.
pub const THREADS_CAP: usize = 10_000;

/// The cap for worker processes: each is a whole process (an address
/// space, a copy of the binary's writable pages, a pipe pair), a few MiB
/// of memory each, so far fewer than threads.
pub const PROCESSES_CAP: usize = 512;

/// What `--cooks` means for a model, its default and its cap.
///
/// The default is what a competent engineer would choose: an executor's
/// worker threads, or a pool that only chops, one per core; a pool whose
/// cooks block while they simmer, the most orders the night has in the
/// kitchen at once ([`Workload::cooks_for_peak`]): sized with knowledge of
/// the whole night, an oracle a real service lacks, so that no order waits
/// for a cook. The cap is what the OS can bear for that model, and each
/// model says why.
#[derive(Clone, Copy, Debug)]
pub enum Cooks {
    /// Exactly one cook: only `--cooks 1` is accepted.
    One,
    /// Defaults to the number of cores. The text says what K counts.
    Cores {
        /// What K counts, for `--help`.
        what: &'static str,
        /// The most the model accepts.
        cap: usize,
    },
    /// Defaults to `auto`: the night's peak of orders in the kitchen,
    /// capped. The text says what K counts.
    Auto {
        /// What K counts, for `--help`.
        what: &'static str,
        /// The most the model accepts, and the most `auto` gives.
        cap: usize,
    },
}

/// `--cooks`, as given: a number or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CooksArg {
    /// `--cooks auto`: the model's own rule (for a pool whose cooks block,
    /// the night's peak of orders in the kitchen).
    Auto,
    /// `--cooks K`.
    Count(usize),
}

fn parse_cooks(s: &str) -> Result<CooksArg, String> {
    if s == "auto" {
        return Ok(CooksArg::Auto);
    }
    match s.parse::<usize>() {
        Ok(k) if k >= 1 => Ok(CooksArg::Count(k)),
        _ => {
            Err("expected a whole number of cooks, 1 or more, or `auto`"
                .to_owned())
        }
    }
}

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Cooks {
    /// The most cooks the model accepts.
    pub fn cap(self) -> usize {
        match self {
            Cooks::One => 1,
            Cooks::Cores { cap, .. } | Cooks::Auto { cap, .. } => cap,
        }
    }

    /// The number used when `--cooks` is not given, for `workload`.
    pub fn default_for(self, workload: &Workload) -> usize {
        match self {
            Cooks::One => 1,
            Cooks::Cores { cap, .. } => cores().min(cap),
            Cooks::Auto { cap, .. } => {
                workload.cooks_for_peak(cores()).min(cap)
            }
        }
    }

    /// `--cooks auto` for this model on `workload`: its own sizing rule,
    /// which is also its default. The night's peak of orders in the
    /// kitchen for a pool whose cooks wait; the cores for an executor,
    /// whose tasks hold no thread while they wait, and for a pool that
    /// only chops.
    pub fn auto_for(self, workload: &Workload) -> usize {
        self.default_for(workload)
    }

    /// The cook counts the conformance kit tries: 1, and several where the
    /// model takes several.
    pub fn to_try(self) -> Vec<usize> {
        match self {
            Cooks::One => vec![1],
            Cooks::Cores { .. } | Cooks::Auto { .. } => vec![1, 3],
        }
    }

    fn help(self) -> String {
        match self {
            Cooks::One => "How many cooks: this model has exactly one, so \
                           only 1 is accepted"
                .to_owned(),
            Cooks::Cores { what, cap } => format!(
                "How many cooks: {what}, at most {cap} [default: auto = the \
                 number of cores, {}: these threads never sit through a \
                 wait, so more would only take turns on the same cores]",
                cores().min(cap)
            ),
            Cooks::Auto { what, cap } => format!(
                "How many cooks: {what}, at most {cap} [default: auto = \
                 the most orders in the kitchen at once over the night, \
                 each holding a cook from its arrival for its chops (at \
                 1 µs a unit) and its simmers, so that none waits for a \
                 cook; at least the cores, at most the orders and {cap}. \
                 It reads the night before it happens, which a real \
                 service cannot: one would measure its arrival rate and \
                 hold time, or grow its pool. With --listen there is no \
                 night: give K, or --preset P to size for P's night]"
            ),
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
    /// What `--cooks` means, its default and its cap.
    pub cooks: Cooks,
    /// `None` for a model with one cashier; `Some(default)` for a model
    /// with several waiters, which takes `--waiters N` and reads it from
    /// [`Shift::waiters`].
    pub waiters: Option<usize>,
    /// The model itself.
    pub serve: Serve,
}

/// The workload, as the command line chooses it.
#[derive(Clone, Debug, ClapArgs)]
pub struct WorkloadArgs {
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

    /// Divide every arrival time and every simmer by F (chops and so the
    /// checksum are unchanged); the customers apply it
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
}

impl WorkloadArgs {
    fn orders(&self) -> usize {
        self.orders.unwrap_or(self.preset.default_orders())
    }

    fn generate(&self) -> Workload {
        Workload::generate_scaled(
            self.preset,
            self.orders(),
            self.seed,
            self.time_scale,
        )
    }

    /// The arguments that make the same workload in another process.
    fn to_args(&self) -> Vec<String> {
        vec![
            "--preset".into(),
            self.preset.name().into(),
            "--orders".into(),
            self.orders().to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--time-scale".into(),
            self.time_scale.to_string(),
        ]
    }
}

/// An example's arguments, as parsed.
#[derive(Clone, Debug, Parser)]
#[command(
    // A flag given twice takes its last value, so a wrapper can add to a
    // command line without editing it (`compare --example-args`).
    args_override_self = true,
    after_help = "Without --listen, the example serves one night of \
                  customers (a process of their own, on a loopback port) \
                  and reports what they saw. With --listen, it serves \
                  whoever connects until Ctrl-C; play customers against it \
                  with `cargo run -p restaurant --bin customers -- \
                  --connect ADDR`.\n\n\
                  Exit status: 0 when every order was served once with the \
                  right digest, 1 when verification fails or a cook \
                  panicked, 2 for bad arguments, 130 when interrupted \
                  (after the accepted orders are served)."
)]
pub struct Args {
    #[command(flatten)]
    pub workload: WorkloadArgs,

    /// How many cooks (replaced by each model's own text)
    #[arg(
        long,
        value_name = "K",
        allow_negative_numbers = true,
        value_parser = parse_cooks
    )]
    pub cooks: Option<CooksArg>,

    /// How many waiters greet customers and take their orders, each a
    /// blocking thread (only for a model with waiters)
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        hide = true,
        value_parser = clap::value_parser!(u64).range(1..=MAX_WAITERS)
    )]
    pub waiters: Option<u64>,

    /// Draw the run as an SVG timeline in FILE: one lane per server
    /// thread, its ring-ups, chops and simmers
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Serve whoever connects to ADDR (such as 127.0.0.1:7878) until
    /// Ctrl-C or SIGTERM, instead of one night of customers (a pool sized
    /// `auto` then needs --preset P: the night to size for)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The listen backlog: how many connections the kernel queues, their
    /// handshake done, before the server accepts them (std's own `bind`
    /// asks for 128; Linux caps it at net.core.somaxconn)
    #[arg(
        long,
        value_name = "N",
        default_value_t = door::BACKLOG,
        value_parser = clap::value_parser!(i32).range(1..=65_535)
    )]
    pub backlog: i32,

    /// Test only: make the first chop of order ID of the workload panic
    #[arg(long, value_name = "ID", hide = true)]
    pub fault_order: Option<u64>,

    /// For tools: print the number of cooks this command line would serve
    /// with (`auto` resolved for the workload) and exit
    #[arg(long, hide = true)]
    pub print_cooks: bool,

    /// Internal: run as the customers of a normal run
    #[arg(long, hide = true, requires = "connect")]
    pub customers: bool,

    /// Internal: where the customers go
    #[arg(long, value_name = "ADDR", hide = true)]
    pub connect: Option<SocketAddr>,
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

/// The most waiters `--waiters` accepts: each is a thread.
pub const MAX_WAITERS: u64 = 1024;

/// A run, its arguments checked against the model.
#[derive(Clone, Debug)]
pub struct Run {
    /// The arguments as given.
    pub args: Args,
    /// Cooks to serve with.
    pub cooks: usize,
    /// Waiters to serve with (1 for a model with one cashier).
    pub waiters: usize,
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
    if let Some(default) = model.waiters {
        command = command.mut_arg("waiters", |arg| {
            arg.hide(false).help(format!(
                "How many waiters greet customers and take their orders, \
                 each a blocking thread [default: {default}]"
            ))
        });
    }
    let matches = command
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());

    // A workload that cannot be allocated under `ulimit -v` is refused
    // here, naming its size, rather than aborting a process mid-night
    // (and before `auto` generates it to size the kitchen, which under
    // --listen it does only for a preset named).
    let preset_named =
        matches.value_source("preset") == Some(ValueSource::CommandLine);
    if (args.listen.is_none() || preset_named)
        && let Err(why) =
            crate::limits::check_workload_memory(args.workload.orders())
    {
        command
            .error(
                ErrorKind::ValueValidation,
                format!("invalid value for '--orders <N>': {why}"),
            )
            .exit();
    }
    let cap = model.cooks.cap();
    let refuse = |command: &mut clap::Command, why: String| -> ! {
        command.error(ErrorKind::ValueValidation, why).exit()
    };
    let cooks = match (model.cooks, args.cooks) {
        (Cooks::One, Some(CooksArg::Count(k))) if k != 1 => refuse(
            &mut command,
            format!(
                "invalid value '{k}' for '--cooks <K>': {} has exactly one \
                 cook, so only 1 is accepted",
                model.name
            ),
        ),
        (_, Some(CooksArg::Count(k))) if k > cap => refuse(
            &mut command,
            format!(
                "invalid value '{k}' for '--cooks <K>': {} takes at most \
                 {cap} cooks",
                model.name
            ),
        ),
        (_, Some(CooksArg::Count(k))) => k,
        // The customers' process serves no one: it needs no kitchen.
        _ if args.customers => 1,
        // A server alone has no night to size for: `auto` needs one
        // named, rather than the default preset standing in unsaid.
        (Cooks::Auto { .. }, _) if args.listen.is_some() && !preset_named => {
            refuse(
                &mut command,
                format!(
                    "'--cooks auto' (the default of {}) sizes the kitchen \
                     for a night, and under --listen there is none: give \
                     --cooks K, or --preset P to size for the night of P",
                    model.name
                ),
            )
        }
        // Sizing for the night's peak generates the workload; nothing
        // else needs it here.
        (policy @ Cooks::Auto { .. }, _) => {
            policy.auto_for(&args.workload.generate())
        }
        // The cores need no workload: an empty one stands in.
        (policy, _) => policy.auto_for(&Workload::generate(
            args.workload.preset,
            0,
            args.workload.seed,
        )),
    };
    let waiters = match (model.waiters, args.waiters) {
        (None, Some(_)) => refuse(
            &mut command,
            format!(
                "unexpected argument '--waiters': {} has one cashier",
                model.name
            ),
        ),
        (_, Some(n)) => n as usize,
        (Some(default), None) => default,
        (None, None) => 1,
    };
    if let Some(id) = args.fault_order {
        let orders = args.workload.orders();
        if id >= orders as u64 {
            command
                .error(
                    ErrorKind::ValueValidation,
                    format!(
                        "invalid value '{id}' for '--fault-order <ID>': the \
                         workload has {orders} orders, numbered from 0"
                    ),
                )
                .exit();
        }
    }
    if let Some(path) = &args.trace
        && let Err(why) = check_writable(path)
    {
        command
            .error(
                ErrorKind::ValueValidation,
                format!(
                    "invalid value '{}' for '--trace <FILE>': {why}",
                    path.display()
                ),
            )
            .exit();
    }
    if args.print_cooks {
        println!("{cooks}");
        std::process::exit(0);
    }
    Run {
        args,
        cooks,
        waiters,
    }
}

/// Whether a file can be written at `path`: before any work starts, so a
/// night is never served only to lose its timeline.
fn check_writable(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("is a directory".into());
    }
    let probe = temporary_beside(path);
    std::fs::File::create(&probe)
        .map_err(|e| format!("cannot write a file there: {e}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A temporary name in the same directory as `path`, so that a rename onto
/// `path` is atomic.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `text` to `path` atomically: into a temporary file beside it,
/// then renamed, so a reader (or a concurrent run) never sees half a file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = temporary_beside(path);
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// The whole program of an example: parse, then serve one night of
/// customers, serve under `--listen`, or be the customers.
pub fn main(model: &Model) -> ExitCode {
    main_from(model, std::env::args_os())
}

/// [`main`] with `args` (the first is the program name) instead of the
/// process's own: for an example with flags of its own, which takes them
/// out first and hands the rest on.
pub fn main_from<I, T>(model: &Model, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let run = parse_from(model, args);
    if run.args.customers {
        // The customers' refusals go to the server, which names them.
        exit_on_a_refused_thread(|refusal| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{FAILED}{}", quoted(&refusal.to_string()));
            let _ = out.flush();
        });
        return customers_child(&run.args);
    }
    let name = model.name;
    exit_on_a_refused_thread(move |refusal| {
        eprintln!("{name}: error: {refusal}");
    });
    customers::raise_fd_limit();
    if run.args.listen.is_none() {
        // A night's server holds a descriptor per customer inside at most:
        // grown now, its table never stalls the night (see
        // `reserve_descriptors`).
        customers::reserve_descriptors(run.args.workload.orders() + 64);
    }
    if run.args.trace.is_some() {
        crate::trace::enable();
    }
    if let Some(id) = run.args.fault_order {
        let w = &run.args.workload;
        crate::fault::inject(Workload::start_for(w.preset, w.seed, id));
    }
    let outcome = match run.args.listen {
        Some(addr) => listen(model, &run, addr),
        None => night(model, &run),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}: error: {e}", model.name);
            ExitCode::FAILURE
        }
    }
}

/// Makes a crate's panic for a thread the OS refused end the process at
/// once: `tell` says the refusal, in the words of `restaurant::limits`,
/// and the exit status is 1. Every other panic, a cook's above all, goes on
/// to the hook that was there before (the default prints it), and on to
/// whatever catches it.
///
/// Some crates panic when the OS refuses them a thread (see
/// `limits::refusal_in_panic`), and their unwinding cannot be trusted to
/// end: tokio 1.54.1's runtime panics in `Builder::build` and the unwind
/// then waits in `BlockingPool::drop` for workers nobody stops, for ever;
/// async-io 2.6.0's was seen to panic a second time during the unwind,
/// which aborts. A model asks the OS first (`limits::headroom`), but
/// another process of the same user (the customers', say) can take the
/// room between the question and the crate's spawn. So the refusal is said
/// here, before any unwinding, and `process::exit` ends every thread where
/// it stands: no unwind to hang or abort, and no second message. Children
/// die with the process.
fn exit_on_a_refused_thread(
    tell: impl Fn(&crate::limits::ThreadRefused) + Send + Sync + 'static,
) {
    let before = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let message = crate::panic_message(info.payload());
        // The thread's name is asked for only once the panic is a refusal.
        let asker = || thread::current().name().map(str::to_owned);
        match crate::limits::refusal_in_panic(&message, asker) {
            Some(refusal) => {
                tell(&refusal);
                std::process::exit(1);
            }
            None => before(info),
        }
    }));
}

/// How many Ctrl-C / SIGTERM have arrived.
static SIGNALS: AtomicU32 = AtomicU32::new(0);

/// How long a first Ctrl-C or SIGTERM gives the orders inside to finish.
/// A service being stopped must stop: a night of slow orders could take
/// minutes to drain, and whoever pressed Ctrl-C is waiting. After it, the
/// run stops cooking, names the orders it lost and exits 130.
pub const DRAIN: Duration = Duration::from_secs(5);

/// On the first Ctrl-C or SIGTERM, runs `first` and, for a server
/// (`drain`), starts the drain's clock (see [`DRAIN`] and [`drained`]);
/// on the second, exits at once with 130, naming the orders still in the
/// kitchen (children die with the process).
fn on_interrupt(
    name: &'static str,
    drain: bool,
    first: impl Fn() + Send + 'static,
) {
    let installed = ctrlc::set_handler(move || {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            first();
            if drain {
                start_the_drain(name);
            }
        } else {
            let lost = match drain {
                true => {
                    format!("; {}", lost(&crate::plate::still_in_kitchen()))
                }
                false => String::new(),
            };
            eprintln!("{name}: interrupted again: stopping now{lost}");
            std::process::exit(130);
        }
    });
    match installed {
        // ctrlc waits for signals on a thread of its own.
        Ok(()) => probe::harness_thread_started(),
        Err(e) => {
            eprintln!("warning: Ctrl-C will not close the restaurant: {e}")
        }
    }
}

/// Whether `serve` has returned: once it has, nothing is left to drain.
static DRAINED: Mutex<bool> = Mutex::new(false);
static DRAINED_NOW: Condvar = Condvar::new();

/// Says that `serve` has returned, so a drain under way is over.
fn drained() {
    *DRAINED.lock().unwrap_or_else(PoisonError::into_inner) = true;
    DRAINED_NOW.notify_all();
}

/// Gives the orders inside [`DRAIN`] to finish, on a thread of its own
/// (the signal handler's thread must stay free for a second Ctrl-C);
/// then stops the process, naming what it lost.
fn start_the_drain(name: &'static str) {
    let clock = thread::Builder::new().name("drain".into()).spawn(move || {
        let done = DRAINED.lock().unwrap_or_else(PoisonError::into_inner);
        let (done, _) = DRAINED_NOW
            .wait_timeout_while(done, DRAIN, |done| !*done)
            .unwrap_or_else(PoisonError::into_inner);
        if !*done {
            eprintln!(
                "{name}: stopped after {} s of draining; {}",
                DRAIN.as_secs(),
                lost(&crate::plate::still_in_kitchen())
            );
            std::process::exit(130);
        }
    });
    match clock {
        Ok(_) => probe::harness_thread_started(),
        Err(e) => eprintln!(
            "{name}: warning: no thread to time the drain ({e}): the orders \
             inside are finished however long they take"
        ),
    }
}

/// `ids`, the orders a stop loses, as a reader wants them: how many, and
/// which (the first ten).
fn lost(ids: &[u64]) -> String {
    const SHOWN: usize = 10;
    let listed = ids
        .iter()
        .take(SHOWN)
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match ids.len() {
        0 => "no order in the kitchen was lost".to_owned(),
        1 => format!("1 order lost: {listed}"),
        n if n <= SHOWN => format!("{n} orders lost: {listed}"),
        n => format!("{n} orders lost: {listed} and {} more", n - SHOWN),
    }
}

/// What a first Ctrl-C says it is doing, after `doing`.
fn finishing(doing: &str) -> String {
    let inside = crate::plate::still_in_kitchen().len();
    format!(
        "{doing}; finishing the orders inside ({inside} in the kitchen) for \
         at most {} s; Ctrl-C again to stop now",
        DRAIN.as_secs()
    )
}

/// Serves whoever connects to `addr` until Ctrl-C or SIGTERM.
fn listen(
    model: &Model,
    run: &Run,
    addr: SocketAddr,
) -> Result<ExitCode, BoxError> {
    let listener = match door::bind_with_backlog(addr, run.args.backlog) {
        Ok(listener) => listener,
        Err(e) => match refused_address(&e) {
            // The address given cannot be had: that is the argument's
            // fault, not the server's, so it is bad input (exit 2).
            Some(why) => {
                eprintln!(
                    "{}: error: invalid value '{addr}' for '--listen \
                     <ADDR>': {why} ({e})",
                    model.name
                );
                return Ok(ExitCode::from(2));
            }
            None => return Err(format!("cannot listen on {addr}: {e}").into()),
        },
    };
    let door = listener.local_addr()?;
    let (name, cooks) = (model.name, run.cooks);
    let shift = Shift::with_hooks(
        door,
        Box::new(move || {
            Clock::start().install();
            eprintln!(
                "{name}: listening on {door} with {}; Ctrl-C to close",
                crate::report::count(cooks as u64, "cook")
            );
        }),
        Box::new(move |fault| {
            eprintln!(
                "{name}: {fault} (that customer was told ERROR; serving on)"
            );
        }),
    )
    .with_waiters(run.waiters);
    let closer = shift.clone();
    on_interrupt(name, true, move || {
        eprintln!("{name}: {}", finishing("closing: no new customers"));
        closer.close();
    });
    let served = serve_caught(model, listener, cooks, shift);
    drained();
    served?;
    eprintln!(
        "{name}: closed after serving {}",
        crate::report::count(crate::plate::served(), "plate")
    );
    if let Some(path) = &run.args.trace {
        write_timeline(model.name, &format!("{name} at {door}"), path)?;
    }
    Ok(ExitCode::from(130))
}

/// Why `--listen`'s address cannot be had, when that is the address's
/// fault: taken by another server, not on this machine, or a port kept
/// for root. `None` for anything else, which is the server's trouble.
fn refused_address(e: &std::io::Error) -> Option<&'static str> {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::AddrInUse => Some(
            "the port is in use: another server listens there; pick \
             another, or port 0 for any free one",
        ),
        ErrorKind::AddrNotAvailable => {
            Some("no network interface of this machine has that address")
        }
        ErrorKind::PermissionDenied => {
            Some("this user may not listen there (below 1024 takes root)")
        }
        _ => None,
    }
}

/// Runs `serve`, turning a panic that escapes it into an error.
fn serve_caught(
    model: &Model,
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let serve = model.serve;
    match panic::catch_unwind(AssertUnwindSafe(|| {
        serve(listener, cooks, shift)
    })) {
        Ok(result) => result,
        Err(payload) => Err(format!(
            "serve panicked outside any cook: {}",
            crate::panic_message(&*payload)
        )
        .into()),
    }
}

fn write_timeline(
    name: &str,
    title: &str,
    path: &Path,
) -> Result<(), BoxError> {
    let svg = crate::timeline::svg(title, &crate::trace::take());
    write_atomically(path, &svg).map_err(|e| {
        format!(
            "{name}: cannot write the timeline to {}: {e}",
            path.display()
        )
        .into()
    })
}

/// How long the customers may take to give their verdict once `serve` has
/// returned: they only have to read their last plates and add up.
const CUSTOMERS_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// What the customers' process says on its stdout.
const ALL_IN: &str = "ALL-IN";
const REPORT: &str = "REPORT ";
const FAILED: &str = "FAILED ";

/// The customers' process, seen from the server: its stdin (to say GO and
/// STOP) and the child itself, killed if the server gives up.
struct Customers {
    child: Child,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
}

impl Customers {
    fn say(stdin: &Mutex<Option<ChildStdin>>, word: &str) {
        let mut stdin = stdin.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pipe) = stdin.as_mut() {
            // A customers' process that is gone has nothing left to hear.
            let _ = writeln!(pipe, "{word}").and_then(|()| pipe.flush());
        }
    }
}

impl Drop for Customers {
    fn drop(&mut self) {
        // End-of-file on their stdin tells the customers the server is gone.
        self.stdin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One night: the server here, the customers in a process of their own.
fn night(model: &Model, run: &Run) -> Result<ExitCode, BoxError> {
    let name = model.name;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = door::bind_with_backlog(loopback, run.args.backlog)
        .map_err(|e| format!("cannot listen on a loopback port: {e}"))?;
    let door = listener.local_addr()?;
    let workload = &run.args.workload;

    // The customers start now and generate their workload while the model
    // sets up; they walk in when told GO. Started from this (the main)
    // thread, which lives as long as the run: see `die_with_parent`.
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--customers")
        .arg("--connect")
        .arg(door.to_string())
        .args(workload.to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    crate::child::die_with_parent(&mut command);
    let mut child = command.spawn().map_err(|e| -> BoxError {
        // Linux counts a new process against the same limit as a thread
        // (RLIMIT_NPROC counts tasks): name it the same way.
        if e.kind() == std::io::ErrorKind::WouldBlock {
            crate::limits::thread_refused_for("the customers' process", e)
        } else {
            format!("cannot start the customers' process: {e}").into()
        }
    })?;
    let stdin = Arc::new(Mutex::new(child.stdin.take()));
    let stdout = child.stdout.take();
    let customers_pid = child.id();
    let mut customers = Customers {
        child,
        stdin: Arc::clone(&stdin),
    };

    let go = Arc::clone(&stdin);
    let shift = Shift::with_hooks(
        door,
        Box::new(move || {
            Clock::start().install();
            Customers::say(&go, "GO");
        }),
        Box::new(move |fault| {
            // A normal run ends at the first panicking cook; the customers'
            // process dies with this one.
            eprintln!("{name}: error: {fault}");
            std::process::exit(1);
        }),
    )
    .with_waiters(run.waiters);

    // The customers' news: ALL-IN closes the restaurant; then their verdict.
    let closer = shift.clone();
    let (told, news) = std::sync::mpsc::channel();
    thread::Builder::new()
        .name("customers-news".into())
        .spawn(move || {
            let mut verdict = None;
            if let Some(stdout) = stdout {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line == ALL_IN {
                        closer.close();
                    } else if line.starts_with(REPORT)
                        || line.starts_with(FAILED)
                    {
                        verdict = Some(line);
                    }
                }
            }
            // Whatever happened to them, no more customers are coming.
            closer.close();
            let _ = told.send(verdict);
        })
        .map_err(|e| {
            crate::limits::thread_refused_for("the customers' news", e)
        })?;
    probe::harness_thread_started();

    let interrupted = Arc::new(AtomicBool::new(false));
    let (stop, closer, flag) =
        (Arc::clone(&stdin), shift.clone(), Arc::clone(&interrupted));
    on_interrupt(name, true, move || {
        eprintln!("{name}: {}", finishing("interrupted: no new customers"));
        flag.store(true, Ordering::SeqCst);
        Customers::say(&stop, "STOP");
        closer.close();
    });

    let total = workload.orders() as u64;
    let sampler =
        Sampler::start((!workload.json).then_some(total), Some(customers_pid))
            .map_err(|e| crate::limits::thread_refused_for("the sampler", e))?;
    let cpu_before = probe::cpu_time();
    let served = serve_caught(model, listener, run.cooks, shift.clone());
    drained();
    let cpu_after = probe::cpu_time();
    let sampled = sampler.finish();
    if let Err(e) = served {
        drop(customers);
        return Err(e);
    }
    if shift.faults().is_empty() && !shift.is_closed() {
        drop(customers);
        return Err("serve returned before closing time".into());
    }
    // Every accepted order is served once serve returns, so the customers
    // have only their verdict left to give. One still waiting long after
    // is waiting on a connection the model forgot: say so, do not hang.
    let verdict = match news.recv_timeout(CUSTOMERS_GRACE) {
        Ok(verdict) => verdict,
        Err(_) => {
            drop(customers);
            return Err(format!(
                "serve returned, but the customers were still waiting {} s \
                 later: some connection was neither served nor closed",
                CUSTOMERS_GRACE.as_secs()
            )
            .into());
        }
    };
    let status = customers.child.wait()?;
    drop(customers);
    let cost = Cost {
        cpu: cpu_before
            .zip(cpu_after)
            .map(|(b, a)| a.saturating_sub(b).saturating_sub(sampled.own_cpu)),
        // The peak summed PSS of the server's tree, for every model: no
        // page shared between processes counted twice, a process alone
        // measured the same way.
        peak_pss_bytes: sampled.peak_pss_bytes,
        peak_threads: sampled.peak_threads,
    };

    let verdict = verdict.unwrap_or_default();
    if let Some(why) = verdict.strip_prefix(FAILED) {
        let why: String = serde_json::from_str(why).unwrap_or(why.to_owned());
        return Err(why.into());
    }
    let Some(json) = verdict.strip_prefix(REPORT) else {
        return Err(format!(
            "the customers' process ended without a report ({status})"
        )
        .into());
    };
    let mut report: Report = serde_json::from_str(json)?;
    report.model = name.to_owned();
    report.cooks = run.cooks as u64;
    report.waiters = model.waiters.map(|_| run.waiters as u64);
    report.cpu_s = cost.cpu.map(|d| d.as_secs_f64());
    report.peak_pss_bytes = cost.peak_pss_bytes;
    report.peak_threads = cost.peak_threads;
    if let Some(path) = &run.args.trace {
        let title = format!(
            "{name}: {} of {}, seed {}{}",
            crate::report::count(report.orders, "order"),
            report.preset,
            report.seed,
            if report.time_scale == 1.0 {
                String::new()
            } else {
                format!(", time ÷{}", report.time_scale)
            }
        );
        write_timeline(name, &title, path)?;
    }
    print_report(&report, workload.json)?;
    Ok(
        if report.interrupted || interrupted.load(Ordering::SeqCst) {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Prints the report on stdout. A failed write is an error (exit 1), never
/// silent; a reader that closed the pipe (`| head`) is no error.
fn print_report(report: &Report, json: bool) -> Result<(), BoxError> {
    let text = if json {
        report.to_json()
    } else {
        report.to_string()
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write the report: {e}").into()),
    }
}

/// The customers of a normal run, in their own process: generate the
/// workload, wait for GO on stdin, walk in, say ALL-IN when everyone is in,
/// and end with the verdict.
fn customers_child(args: &Args) -> ExitCode {
    customers::raise_fd_limit();
    let Some(door) = args.connect else {
        return ExitCode::from(2);
    };
    let workload = args.workload.generate();
    let stop = Arc::new(AtomicBool::new(false));
    // On Linux this process has a process group of its own, out of the
    // terminal's reach (see `child`); elsewhere a terminal's Ctrl-C
    // reaches it too. Either way the server says STOP: ignore the signal
    // itself here.
    let _ = ctrlc::set_handler(|| {});

    // Stdin: GO, then perhaps STOP; end-of-file means the server is gone.
    let (go, went) = std::sync::mpsc::channel();
    let flag = Arc::clone(&stop);
    let watcher =
        thread::Builder::new()
            .name("server-watch".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    match line.as_deref() {
                        Ok("GO") => {
                            let _ = go.send(());
                        }
                        Ok("STOP") => flag.store(true, Ordering::SeqCst),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                // The server is gone: nobody is left to serve or report to.
                std::process::exit(1);
            });
    if let Err(e) = watcher {
        let refused = crate::limits::ThreadRefused::new(
            Some("the customers to hear the server".into()),
            e,
        );
        println!("{FAILED}{}", quoted(&refused.to_string()));
        return ExitCode::FAILURE;
    }
    if went.recv().is_err() {
        return ExitCode::FAILURE;
    }
    let night = customers::visit(&workload, door, &stop, || {
        println!("{ALL_IN}");
        let _ = std::io::stdout().flush();
    });
    // Every plate is in: how long a unit of work takes, for the night's
    // lower bound.
    let unit = crate::kernel::measure_unit_quickly();
    let verdict = night
        .map_err(customers_could_not_start)
        .and_then(|night| judge(&workload, &night, Some(unit)));
    let (line, code) = match verdict {
        Ok(report) => {
            let code = if report.interrupted { 130 } else { 0 };
            (format!("{REPORT}{}", report.to_json()), code)
        }
        Err(e) => (format!("{FAILED}{}", quoted(&e.to_string())), 1),
    };
    println!("{line}");
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}

/// `text` as one JSON string, for a line of the customers' news.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"(unprintable)\"".into())
}

/// Why the customers could not walk in: a thread the OS refused is named
/// as one, with the count; anything else as it came.
fn customers_could_not_start(e: std::io::Error) -> BoxError {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        crate::limits::thread_refused_for("the customers", e)
    } else {
        format!("the customers could not start: {e}").into()
    }
}

/// Verifies a night and makes its report (the server's cost left empty),
/// with its lower bound when the time of a unit of work was measured.
fn judge(
    workload: &Workload,
    night: &Night,
    unit: Option<std::time::Duration>,
) -> Result<Report, BoxError> {
    let checksum = verify(workload, night)?;
    let report = Report::new("", workload, 0, night, checksum, Cost::default());
    Ok(match unit {
        Some(unit) => report.with_lower_bound(workload, night, unit),
        None => report,
    })
}

/// The `customers` binary's arguments.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "customers",
    about = "Customers for any restaurant: walk in through the door at \
             ADDR, order, wait for every plate, verify it and report what \
             was seen.",
    after_help = "Exit status: 0 when every order was served once with the \
                  right digest, 1 when verification fails, 2 for bad \
                  arguments, 130 when interrupted."
)]
struct CustomersArgs {
    /// The restaurant's address, such as 127.0.0.1:7878
    #[arg(long, value_name = "ADDR")]
    connect: SocketAddr,

    /// Where the moments NEXT and PLATE arrived come from: `kernel`, the
    /// kernel's receive stamps (Linux), so the customers' own scheduling
    /// delay drops out; or `read`, when the customers read them
    /// [default: kernel where the OS has them]
    #[arg(long, value_enum, value_name = "FROM")]
    stamps: Option<customers::Stamps>,

    /// Also write every customer's visit to FILE, as JSON (a test hook)
    #[arg(long, value_name = "FILE", hide = true)]
    visits: Option<PathBuf>,

    #[command(flatten)]
    workload: WorkloadArgs,
}

/// Writes a night's visits to `file` as one JSON object: the wall-clock
/// opening in seconds since the Unix epoch, the stamps, and the visits in
/// order of id.
fn write_visits(file: &Path, night: &Night) -> Result<(), BoxError> {
    let opened = night
        .opened_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let json = serde_json::json!({
        "opened_unix_s": opened.as_secs_f64(),
        "stamps": night.stamps,
        "visits": night.visits,
    });
    std::fs::write(file, json.to_string())
        .map_err(|e| format!("cannot write {}: {e}", file.display()).into())
}

/// The `customers` binary: one night of customers against any server.
pub fn customers_main() -> ExitCode {
    let args = CustomersArgs::parse();
    customers::raise_fd_limit();
    let workload = args.workload.generate();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    on_interrupt("customers", false, move || {
        eprintln!("customers: interrupted: nobody else walks in");
        flag.store(true, Ordering::SeqCst);
    });
    let stamps = args.stamps.unwrap_or_else(customers::Stamps::best);
    let outcome =
        customers::visit_with(&workload, args.connect, stamps, &stop, || {})
            .map_err(customers_could_not_start)
            .and_then(|night| {
                if let Some(file) = &args.visits {
                    write_visits(file, &night)?;
                }
                Ok(night)
            })
            .and_then(|night| {
                let unit = crate::kernel::measure_unit_quickly();
                judge(&workload, &night, Some(unit))
            })
            .and_then(|mut report| {
                report.model = format!("server at {}", args.connect);
                print_report(&report, args.workload.json)?;
                Ok(report)
            });
    match outcome {
        Ok(report) if report.interrupted => ExitCode::from(130),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("customers: error: {e}");
            ExitCode::FAILURE
        }
    }
}

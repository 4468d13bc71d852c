//! # parallelism-processes: cooks in child processes, fed through pipes
//!
//! ```text
//! cargo run --release -p parallelism-processes -- --preset banquet
//! ```
//!
//! Node's `child_process`, in Rust. Before opening, the server starts
//! `--cooks` copies of its own binary (default: `auto`, the night's peak
//! of orders in the kitchen, at most 512) in a *worker*
//! role: separate processes, one thread each. The parent keeps the front
//! of the restaurant. Its cashier accepts customers and attends them one at
//! a time: greets, reads the order, rings it up, and passes the ticket with
//! the customer's connection to a dispatcher thread. The dispatcher writes
//! the ticket, as one line of JSON, to the stdin of a worker that is free;
//! the worker cooks it and writes the plate back, one line of JSON on its
//! stdout, where a reader thread (one per worker) picks it up; the
//! dispatcher serves the plate to its customer. Processes share no memory:
//! what a cook needs travels in the line, the restaurant's clock included.
//! Threads: in the parent the cashier (the thread that calls `serve`), the
//! dispatcher and a reader per worker; one in each worker.
//!
//! How it differs from its siblings: it has the shape of
//! `parallelism-thread-pool` (a fixed crew, one order per cook at a time, a
//! simmering cook holds its place), but a cook is a program of its own, not
//! a thread sharing the server's memory. A cook that crashes (an abort, a
//! segfault, the OOM killer) takes down its own process only, and the
//! server sees it as the end of a pipe.
//!
//! **Its weakness, measured:** the thread pool's, with a price on top. A
//! simmering worker is busy, so on `takeout` two workers serve two orders
//! at a time and the run outlasts `compare`'s time limit. Every worker is
//! a whole process with its own memory, started before opening, and every
//! order is serialised, piped and parsed twice; on `banquet`, where every
//! order chops for milliseconds, that price is small.
//!
//! **Faults**, and the policy for them:
//!
//! - A worker that **dies** is seen as the end of its stdout; the
//!   dispatcher reaps it, hires another in its place (the pool keeps its
//!   size while the OS allows), and hands its order to a live worker. An
//!   order is taken by at most [`TRIES`] workers: one that kills them all
//!   is *lost*: reported at once, its customer told `ERROR`, and `serve`
//!   fails at closing time naming it. A worker takes an order when it
//!   says so (`Took`, before it even parses the line); one that dies
//!   before (killed with the rest, not yet seen dead when it was handed
//!   the order) never had it, and that was no try.
//! - A worker that **stops answering** (stuck, or stopped with SIGSTOP)
//!   is killed once its order is overdue ([`allowance`]) and counts as a
//!   death. A new worker has [`HIRE_LIMIT`] to say it is ready.
//! - When **no worker can be had** (the OS refuses a process, or new ones
//!   die before they are ready) and none is left, `serve` fails at once,
//!   naming why, how many orders were lost and the first few.
//! - A line from a worker that is not a reply is a **protocol error**: the
//!   dispatcher gives up, naming the worker and quoting the line.
//! - A cook that **panics** is caught in its worker, which says so; the
//!   server reports it at once, tells that customer `ERROR`, and serves on.
//! - No worker outlives the server: every way out of [`serve_with`] kills
//!   and reaps them, and the kernel (or, off Linux, the worker itself) ends
//!   them if the server is killed outright. No accepted customer is left
//!   without an answer.
//!
//! The worker role reads a few test hooks from its environment (see
//! `src/hooks.rs`); a normal run sets none.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{
    BoxError, Clock, Cooks, Model, Plate, Shift, Step, panic_message,
};
use serde::{Deserialize, Serialize};

mod dispatch;
#[cfg(test)]
mod explore;
mod hooks;

use dispatch::{Answer, Crew, Event, Hand, Job, Rail, Refused, Said, Sender};
pub use dispatch::{HIRE_LIMIT, LEAVE_LIMIT};

// ANCHOR: model
/// The model, as `main` sees it. Its `serve` starts the workers from this
/// process's own executable, so it works from the crate's binary only:
/// tests, whose executable is the test harness, call [`serve_with`] with
/// the binary's path instead.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as child processes of the same binary, fed over \
            stdin/stdout pipes.",
    cooks: Cooks::Auto {
        what: "worker processes, each cooking one order at a time",
        cap: restaurant::cli::PROCESSES_CAP,
    },
    waiters: None,
    serve,
};

/// The first argument that starts the binary in the worker role (`main`
/// checks it before the shared command line sees the arguments).
pub const WORKER_ARG: &str = "--worker";
// ANCHOR_END: model

/// How many workers may die on one order before it counts as lost: the
/// first death may be bad luck (a kill, the OOM killer), the second says
/// the order itself kills its cooks.
pub const TRIES: usize = 2;

// ANCHOR: protocol
/// Server → worker: one order, as one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    /// The ticket, rung up. `Ticket` implements serde's traits, so it
    /// crosses as it is: the recipe, the digest so far, and the flags for
    /// tracing and for the test-only injected fault.
    ticket: Ticket,
    /// The server's opening, in nanoseconds on the machine's shared clock
    /// (`CLOCK_MONOTONIC` on Unix): an `Instant` means nothing in another
    /// process, a system-wide clock does.
    opening_ns: u128,
}

/// Worker → server: one line of JSON each.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The first line of every worker: it is up and reading its stdin.
    Ready,
    /// It has read an order's line and starts on it; said before the line
    /// is even parsed. A worker that dies before saying it never had the
    /// order (killed with the rest, say, before the dispatcher saw it
    /// dead): that was no try, and the order goes on as it was.
    Took,
    /// The plate of the order it was given, cooked but not served: serving
    /// counts the plate and keeps its trace, in the server's process.
    Cooked(Plate),
    /// The cook panicked. No order id: the server knows which order it
    /// gave this worker, and names it from its own books.
    Panicked { message: String },
}
// ANCHOR_END: protocol

// ANCHOR: serve
/// Starts `cooks` copies of this very executable as workers and serves
/// with them until closing time.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let me = std::env::current_exe()?;
    serve_with(worker_command(&me), listener, cooks, shift)
}

/// The command that starts `program`, this crate's binary, as a worker.
pub fn worker_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.arg(WORKER_ARG);
    command
}

/// Spawns `worker` `cooks` times (it must start this crate's binary in the
/// worker role: [`worker_command`]), runs the cashier on the calling thread
/// until closing time, and returns once every order it took is answered
/// and every worker reaped.
pub fn serve_with(
    worker: Command,
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    if cooks == 0 {
        return Err("the kitchen needs at least one worker process".into());
    }
    // The dispatcher starts on its own thread, hires the workers and
    // returns once each has said it is ready (or fails, naming why).
    let rail = Rail::open(Pipes::new(worker), cooks, &shift)?;
    // Every worker has said it is ready: let the customers in.
    shift.open();
    let crowding = crowding(cooks);
    cashier(&listener, &rail, crowding, &shift);
    // Stop accepting: a latecomer is refused now rather than left in the
    // backlog while the kitchen finishes.
    drop(listener);
    // Closing time for the dispatcher: it finishes every order it took,
    // reaps every worker, and gives its verdict. (Had the cashier
    // panicked instead, dropping the rail would have said the same.)
    rail.close()
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: accepts customers one at a time until closing time, takes
/// each order and sends it to the dispatcher. Runs on the calling thread.
fn cashier(listener: &TcpListener, rail: &Rail, crowding: u32, shift: &Shift) {
    // `incoming` blocks in `accept`. At closing time the shift knocks on
    // the door once, so the loop wakes up and sees it is time to stop.
    for stream in listener.incoming() {
        if shift.is_closed() {
            return;
        }
        match stream {
            Ok(stream) => {
                let Some((ticket, stream)) = take_order(stream) else {
                    continue;
                };
                let customer = Box::new(Customer(Some(stream)));
                let Some(job) = job(ticket, customer, crowding) else {
                    continue;
                };
                // `order` fails only once the dispatcher has given up (no
                // worker left, or one broke the protocol). The job is
                // dropped, which tells this customer; `serve` reports the
                // dispatcher's error.
                if !rail.order(job) {
                    return;
                }
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal to a server. Wait a little, go on.
            Err(e) => {
                eprintln!("{}: accept failed: {e}", MODEL.name);
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Greets one customer, reads the order and rings it up. The cashier
/// listens to this customer alone until the line is said: a slow talker
/// holds up everyone behind them. `None` when there is no order to cook.
fn take_order(mut stream: TcpStream) -> Option<(Ticket, TcpStream)> {
    stream.write_all(wire::NEXT.as_bytes()).ok()?;
    // The customer has PATIENCE from NEXT to say the whole line, however
    // slowly it comes: a deadline for the line, not for each read, so a
    // silent or dripping customer holds the only cashier no longer.
    let deadline = Instant::now() + wire::PATIENCE;
    let mut ticket = match wire::read_order_line(&stream, deadline) {
        Heard::Order(ticket) => ticket,
        Heard::HungUp => return None,
        Heard::Refused(why) => {
            // The customer may be gone already; nothing more to do then.
            let _ = stream.write_all(wire::error_line(&why).as_bytes());
            return None;
        }
    };
    stream.write_all(ticket.ring_up().as_bytes()).ok()?;
    Some((ticket, stream))
}

/// The job for `ticket`: the request serialised once, ready for any
/// worker, and the time a worker may take over it.
fn job(ticket: Ticket, customer: Box<Customer>, crowding: u32) -> Option<Job> {
    // Read after opening (this order came in through the open door), so
    // it is the opening the run installed.
    let opening_ns = restaurant::clock::clock().to_wall();
    let (order, allowance) = (ticket.id(), allowance(&ticket, crowding));
    match serde_json::to_vec(&Request { ticket, opening_ns }) {
        Ok(mut line) => {
            line.push(b'\n');
            Some(Job::new(order, line, allowance, customer))
        }
        // A ticket always serialises; if one ever did not, only its
        // customer would hear of it.
        Err(e) => {
            customer.answer(&wire::error_line(&e.to_string()));
            None
        }
    }
}
// ANCHOR_END: cashier

// ANCHOR: allowance
/// A generous time for one unit of chopping: a unit takes about 1 µs on
/// the project's machine (`restaurant::kernel`), so this allows twenty.
pub const CHOP_UNIT_ALLOWANCE: Duration = Duration::from_micros(20);

/// The margin on top of an order's own time, for a machine that is busy
/// with other work.
pub const ALLOWANCE_MARGIN: u32 = 4;

/// The least time any order is allowed: starting to cook costs a few
/// milliseconds of parsing and waking up, and a loaded machine can stall a
/// process for a good part of a second.
pub const ALLOWANCE_FLOOR: Duration = Duration::from_secs(1);

/// How long a worker may keep `ticket` before it is presumed stuck: its
/// chops at [`CHOP_UNIT_ALLOWANCE`] a unit (times `crowding`, the workers
/// sharing each core), plus its simmers (already divided by the time scale
/// in the ticket), times [`ALLOWANCE_MARGIN`]; at least
/// [`ALLOWANCE_FLOOR`]. A worker past it is killed and the order handed on.
pub fn allowance(ticket: &Ticket, crowding: u32) -> Duration {
    let own: Duration = ticket
        .steps()
        .iter()
        .map(|step| match *step {
            Step::Chop(work) => CHOP_UNIT_ALLOWANCE
                .saturating_mul(work.units())
                .saturating_mul(crowding.max(1)),
            Step::Simmer(d) => d,
        })
        .fold(Duration::ZERO, Duration::saturating_add);
    own.saturating_mul(ALLOWANCE_MARGIN).max(ALLOWANCE_FLOOR)
}

/// How many workers share each core: `cooks` workers chopping at once on
/// fewer cores each chop that much slower.
fn crowding(cooks: usize) -> u32 {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cooks.div_ceil(cores)).unwrap_or(u32::MAX)
}
// ANCHOR_END: allowance

// ANCHOR: customer
/// A customer waiting for a plate: the connection the answer goes back on.
#[derive(Debug)]
struct Customer(Option<TcpStream>);

impl Answer for Customer {
    /// Writes the one line this customer gets, and hangs up.
    fn answer(mut self: Box<Self>, line: &str) {
        if let Some(mut stream) = self.0.take() {
            // A customer who hung up has only lost their own plate. The
            // line is short and the socket's buffer empty: it never blocks.
            let _ = stream.write_all(line.as_bytes());
        }
    }
}

impl Drop for Customer {
    /// A customer dropped unanswered is one the dispatcher gave up on
    /// (no worker left, one broke the protocol, a bug unwound it): say
    /// so, rather than leave them to find a closed connection.
    fn drop(&mut self) {
        if let Some(mut stream) = self.0.take() {
            let why = "the kitchen closed before your order was cooked";
            let _ = stream.write_all(wire::error_line(why).as_bytes());
        }
    }
}
// ANCHOR_END: customer

// ANCHOR: kitchen
/// The model's crew: copies of this binary, each fed through its stdin and
/// heard on its stdout by a reader thread of its own.
#[derive(Debug)]
struct Pipes {
    command: Command,
}

impl Pipes {
    fn new(mut command: Command) -> Pipes {
        // Orders in, plates out. stderr stays the server's, so a worker's
        // panic message and errors reach the terminal.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // On Linux, the kernel sends each worker SIGKILL when the thread
        // that spawned it ends: the dispatcher's, which reaps every worker
        // before it ends. So a server killed outright (`kill -9`, where no
        // `Drop` runs) takes its workers with it, even one in the middle
        // of a long chop or simmer. Elsewhere the worker watches for its
        // parent's death itself (see `worker`).
        restaurant::child::die_with_parent(&mut command);
        Pipes { command }
    }
}

impl Crew for Pipes {
    type Hand = Process;

    fn hire(
        &mut self,
        id: usize,
        events: &Sender<Event>,
    ) -> Result<Process, Refused> {
        let mut child = self.command.spawn().map_err(|why| Refused {
            what: "a worker process",
            why,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let events = events.clone();
        let reader = thread::Builder::new().name(format!("reader-{id}")).spawn(
            move || {
                if let Some(stdout) = stdout {
                    reader(id, stdout, &events);
                } else {
                    let _ = events.send(Event::Said(id, Said::Gone));
                }
            },
        );
        let mut process = Process {
            child,
            stdin,
            reader: None,
            reaped: false,
        };
        match reader {
            Ok(reader) => {
                process.reader = Some(reader);
                Ok(process)
            }
            // Dropping `process` kills and reaps the worker just started.
            Err(why) => Err(Refused {
                what: "a thread to read a worker",
                why,
            }),
        }
    }
}

/// One worker process. Dropping it kills and reaps the worker if that has
/// not happened yet, and joins its reader, so no way out of `serve_with`
/// (an error, a panic) leaves a child or a thread behind.
#[derive(Debug)]
struct Process {
    child: Child,
    /// Where its orders go. Dropping it closes the pipe: closing time.
    stdin: Option<ChildStdin>,
    reader: Option<thread::JoinHandle<()>>,
    reaped: bool,
}

impl Hand for Process {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn give(&mut self, line: &[u8]) -> bool {
        // One `write` of a line shorter than the pipe's buffer: it never
        // blocks, since a free worker has nothing waiting in its pipe.
        // Rust ignores SIGPIPE, so a dead reader is an error, not a signal
        // that kills the server.
        self.stdin
            .as_mut()
            .is_some_and(|stdin| stdin.write_all(line).is_ok())
    }

    // ANCHOR: reap
    fn fire(&mut self) -> String {
        self.stdin = None;
        // SIGKILL: it may be dead already, stuck, stopped (SIGSTOP) or in
        // the middle of a long chop; a signal does nothing to a process
        // that has already exited. `wait` reaps it and tells how it ended.
        let _ = self.child.kill();
        self.reaped = true;
        match self.child.wait() {
            Ok(status) => format!("ended ({status})"),
            Err(e) => format!("could not be reaped ({e})"),
        }
    }

    fn dismiss(&mut self) {
        self.stdin = None;
    }

    fn reap(&mut self) -> Result<(), String> {
        // Its stdout has ended, so it has exited or is about to.
        self.reaped = true;
        match self.child.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("ended with {status}")),
            Err(e) => Err(format!("could not be reaped ({e})")),
        }
    }
    // ANCHOR_END: reap
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.reaped {
            // Reaping is what frees the process table entry (no zombie)
            // and adds its CPU time to ours.
            self.fire();
        }
        // Its stdout ended with it, so its reader is on its way out.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
// ANCHOR_END: kitchen

// ANCHOR: reader
/// A reader thread: turns worker `id`'s lines into events until its
/// stdout ends. Blocking on a pipe is all this thread does.
fn reader(id: usize, mut stdout: impl BufRead, dispatcher: &Sender<Event>) {
    loop {
        let said = hear(&mut stdout);
        let gone = matches!(said, Said::Gone);
        if dispatcher.send(Event::Said(id, said)).is_err() || gone {
            return;
        }
    }
}

/// Reads one line from a worker.
fn hear(stdout: &mut impl BufRead) -> Said {
    let mut line = Vec::new();
    match stdout.read_until(b'\n', &mut line) {
        // The end of the pipe, or a line cut short by the worker's death.
        Ok(0) | Err(_) => Said::Gone,
        Ok(_) if line.last() != Some(&b'\n') => Said::Gone,
        Ok(_) => serde_json::from_slice(&line).map_or_else(
            |e| Said::Garbled {
                line: String::from_utf8_lossy(&line)
                    .trim_end()
                    .chars()
                    .take(200)
                    .collect(),
                why: e.to_string(),
            },
            Said::Reply,
        ),
    }
}
// ANCHOR_END: reader

// ANCHOR: worker
/// The worker role, which `main` enters when its first argument is
/// [`WORKER_ARG`]: reads orders from stdin until it closes, cooks each in
/// turn and writes each reply to stdout.
pub fn worker() -> ExitCode {
    watch_parent();
    let hooks = hooks::Hooks::from_env();
    match work(io::stdin().lock(), io::stdout().lock(), &hooks) {
        Ok(()) => ExitCode::SUCCESS,
        // The server is gone (it closed our stdout by dying): there is
        // nobody to report to, and a "Broken pipe" on the terminal would
        // only blame the wrong process.
        Err(e) if is_broken_pipe(&*e) => ExitCode::FAILURE,
        Err(e) => {
            let pid = std::process::id();
            eprintln!("{} worker (pid {pid}): error: {e}", MODEL.name);
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Ends this worker within a fraction of a second of its server's death,
/// even mid-chop or mid-simmer. On Linux the kernel does it (the
/// parent-death signal, `Pipes::new`); on other Unixes a thread watches
/// for this process being handed to a new parent. On Windows a worker
/// leaves when its stdin reaches end-of-file, between orders.
fn watch_parent() {
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let parent = std::os::unix::process::parent_id();
        let watching = thread::Builder::new()
            .name("parent-watch".into())
            .spawn(move || {
                while std::os::unix::process::parent_id() == parent {
                    thread::sleep(Duration::from_millis(100));
                }
                std::process::exit(1);
            });
        // Without the thread, the worker still leaves between orders.
        drop(watching);
    }
}

fn work(
    requests: impl BufRead,
    mut pass: impl Write,
    hooks: &hooks::Hooks,
) -> Result<(), BoxError> {
    hooks.started()?;
    say(&mut pass, &Reply::Ready)?;
    // The server closing our stdin ends this loop: that is closing time.
    for line in requests.lines() {
        let line = line?;
        say(&mut pass, &Reply::Took)?;
        let Request { ticket, opening_ns } = serde_json::from_str(&line)?;
        // The server's clock, rebuilt in this process from the machine's
        // shared clock, so the timeline places this worker's chops beside
        // the cashier's ring-ups. The first install wins; later ones
        // change nothing.
        Clock::from_wall(opening_ns).install();
        if hooks.before_cooking(ticket.id(), &mut pass)? {
            continue;
        }
        // Catch the panic here: the process lives on to cook the next
        // order, and the server learns of the panic from a reply instead
        // of a dead pipe.
        let reply =
            match panic::catch_unwind(AssertUnwindSafe(|| cook(&ticket))) {
                Ok(plate) => Reply::Cooked(plate),
                Err(payload) => Reply::Panicked {
                    message: panic_message(&*payload),
                },
            };
        say(&mut pass, &reply)?;
    }
    Ok(())
}

/// Writes one reply as one line, and flushes it: the server is waiting.
fn say(pass: &mut impl Write, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    // The whole line in one write: a worker killed mid-reply leaves no
    // half line (and the reader treats one as a death, not garbage).
    pass.write_all(&line)?;
    pass.flush()
}
// ANCHOR_END: worker

// ANCHOR: cook
/// Cooks one order, start to finish, on the worker's only thread.
fn cook(ticket: &Ticket) -> Plate {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        match *step {
            // The process's own thread, on whichever core the OS gives it.
            Step::Chop(work) => plate.chop(work),
            // The whole process sleeps: it is busy as far as the dispatcher
            // is concerned, and takes no other order meanwhile.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    // Not `plate.serve()`: that would count the plate and keep its trace
    // in this process, where nobody reads them. The server serves it.
    plate
}
// ANCHOR_END: cook

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(steps: &[Step]) -> Ticket {
        wire::parse_order(&wire::order_line(7, "stew", 1, steps))
            .expect("a well-formed order")
    }

    #[test]
    fn an_order_is_allowed_its_own_time_with_a_margin_and_a_floor() {
        // 1 ms of chopping and 1 ms of simmer: the floor.
        let small = ticket(&[
            Step::Chop(restaurant::Work(1000)),
            Step::Simmer(Duration::from_millis(1)),
        ]);
        assert_eq!(allowance(&small, 1), ALLOWANCE_FLOOR);
        // A 2 s simmer (a 100 ms one at time scale 0.05): 4 × 2.02 s.
        let long = ticket(&[
            Step::Chop(restaurant::Work(1000)),
            Step::Simmer(Duration::from_secs(2)),
        ]);
        assert_eq!(allowance(&long, 1), Duration::from_millis(8_080));
        // Chops: 1,000,000 units at 20 µs, times 4; twice that when two
        // workers share each core.
        let chop = ticket(&[Step::Chop(restaurant::Work(1_000_000))]);
        assert_eq!(allowance(&chop, 1), Duration::from_secs(80));
        assert_eq!(allowance(&chop, 2), Duration::from_secs(160));
    }
}

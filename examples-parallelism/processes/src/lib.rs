//! # parallelism-processes: cooks in child processes, fed through pipes
//!
//! ```text
//! cargo run --release -p parallelism-processes -- --preset banquet
//! ```
//!
//! Node's `child_process`, in Rust. Before opening, the binary starts
//! `--cooks` copies of itself (default: one per core) in a *worker* role:
//! separate processes, one thread each. The parent is the front of the
//! restaurant. Its cashier rings orders up on the main thread; a dispatcher
//! thread writes each order, as one line of JSON, to the stdin of a worker
//! that is free; the worker cooks it from start to finish and writes the
//! plate back, one line of JSON on its stdout, where a reader thread (one
//! per worker) picks it up. Processes share no memory, so everything a cook
//! needs travels in the line, the restaurant's clock included.
//!
//! What it is made of: processes and pipes from the OS, through
//! `std::process::Command`, and `serde_json` for the lines. No reactor, no
//! timer: in the parent the cashier sleeps, the dispatcher blocks on a
//! channel and each reader blocks on its pipe; each worker blocks on its
//! stdin and sleeps through its simmers. Threads: in the parent the main
//! thread, the dispatcher and one reader per worker; one in each worker.
//!
//! How it differs from its siblings: it has the shape of
//! `parallelism-thread-pool` (a fixed crew, one order per cook at a time, a
//! simmering cook holds its place), but a cook is a program of its own, not
//! a thread sharing the parent's memory. A cook that crashes (an abort, a
//! segfault, the OOM killer) takes down its own process only, and the
//! parent sees it as the end of a pipe.
//!
//! **Its weakness, measured:** the thread pool's weakness, and a price on
//! top. A simmering worker is busy, so `takeout` with two workers serves two
//! orders at a time and takes the better part of twenty minutes. Every
//! worker is a whole process, with its own memory and a start-up paid
//! before opening, and every order is serialised, piped and parsed twice.
//! On `banquet`, where each order chops for milliseconds, that price is
//! small and the workers keep every core busy.
//!
//! **Faults**, and the policy for them:
//!
//! - A worker that **dies** mid-order (killed, aborted, out of memory) is
//!   seen as the end of its stdout; the dispatcher reaps it and hands its
//!   order to a live worker. An order is started by at most [`TRIES`]
//!   workers: one that kills them all is *lost*, the run goes on with the
//!   workers left, then fails naming it. If every worker dies, the run ends
//!   at once with an error naming the orders it could not serve.
//! - A line from a worker that is not a reply is a **protocol error** that
//!   ends the run, naming the worker and quoting the line.
//! - A cook that **panics** is caught in its worker, which reports it in a
//!   reply; the parent names the order it gave that worker.
//! - Every worker is killed and reaped on every way out of [`serve_with`],
//!   errors included, so none outlives the run and their CPU time counts.
//!
//! The worker role reads a few test hooks from its environment (see
//! `src/hooks.rs`); a normal run sets none.

use std::collections::VecDeque;
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
    panic_message,
};
use serde::{Deserialize, Serialize};

mod hooks;

// ANCHOR: model
/// The model, as `main` sees it. Its `serve` starts the workers from this
/// process's own executable, so it works from the crate's binary only:
/// tests, whose executable is the test harness, call [`serve_with`] with
/// the binary's path instead.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as child processes of the same binary, fed over \
            stdin/stdout pipes.",
    cooks: Cooks::Cores("worker processes"),
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
/// Parent → worker: one order, as one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Ticket {
    order: Order,
    /// The restaurant's opening, in nanoseconds since the Unix epoch: an
    /// `Instant` means nothing in another process, the wall clock does.
    opening_ns: u128,
}

/// Worker → parent: one line of JSON each.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// The first line of every worker: it is up and reading its stdin.
    Ready,
    /// The plate of the order it was given.
    Served(Plate),
    /// The cook panicked. No order id: the parent knows which order it gave
    /// this worker, and names it from its own books.
    Panicked { message: String },
}
// ANCHOR_END: protocol

// ANCHOR: serve
/// Starts `cooks` copies of this very executable as workers and serves the
/// orders with them.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    let me = std::env::current_exe()?;
    serve_with(worker_command(&me), orders, cooks)
}

/// The command that starts `program`, this crate's binary, as a worker.
pub fn worker_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.arg(WORKER_ARG);
    command
}

/// Spawns `worker` `cooks` times (it must start this crate's binary in the
/// worker role: [`worker_command`]), runs the cashier on the calling thread,
/// and returns every plate once every worker has been reaped.
pub fn serve_with(
    worker: Command,
    orders: Vec<Order>,
    cooks: usize,
) -> Result<Vec<Plate>, BoxError> {
    if cooks == 0 {
        return Err("the kitchen needs at least one worker process".into());
    }
    // The workers are spawned here, on the calling thread: the shared
    // probe counts the threads and memory of the main thread's children.
    let (kitchen, stdouts) = Kitchen::hire(worker, cooks)?;
    // One channel into the dispatcher, for orders from the cashier and for
    // what the readers hear. Unbounded: neither must ever wait for it.
    let (events_tx, events) = mpsc::channel();
    let mut readers = Vec::with_capacity(cooks);
    for (w, stdout) in stdouts.into_iter().enumerate() {
        let events_tx = events_tx.clone();
        let reader = thread::Builder::new()
            .name(format!("reader-{w}"))
            .spawn(move || reader(w, stdout, &events_tx))?;
        readers.push(reader);
    }
    // The kitchen moves to the dispatcher, which reaps every worker before
    // it returns, or kills and reaps them as it unwinds.
    let total = orders.len();
    let dispatcher = thread::Builder::new()
        .name("dispatcher".into())
        .spawn(move || dispatch(kitchen, &events, total))?;

    cashier(orders, &events_tx);
    drop(events_tx);

    let plates = dispatcher
        .join()
        .map_err(|_| "the dispatcher thread panicked")?;
    // Every worker is reaped, so every stdout has ended and every reader
    // is on its way out.
    for reader in readers {
        reader.join().map_err(|_| "a reader thread panicked")?;
    }
    plates
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: waits for each customer, rings the order up and sends it to
/// the dispatcher. Runs on the calling thread.
fn cashier(orders: Vec<Order>, dispatcher: &Sender<Event>) {
    // Every worker has said it is ready: opening time starts now.
    let clock = Clock::open();
    let opening_ns = clock.to_wall();
    for mut order in orders {
        // A blocking sleep is fine here: this thread has nothing else to do.
        thread::sleep(clock.until(order.arrival()));
        order.ring_up(&clock);
        let ticket = Ticket { order, opening_ns };
        // `send` fails only once the dispatcher has given up (every worker
        // died, or one broke the protocol); it has the error to report.
        if dispatcher.send(Event::Order(ticket)).is_err() {
            return;
        }
    }
}
// ANCHOR_END: cashier

// ANCHOR: kitchen
/// One worker process, as the dispatcher sees it.
#[derive(Debug)]
struct Worker {
    child: Child,
    /// Where its orders go. Dropping it closes the pipe: closing time.
    stdin: Option<ChildStdin>,
    /// The order it is cooking: a worker cooks one at a time.
    cooking: Option<Job>,
    /// `false` once it has been reaped.
    alive: bool,
}

/// An order on its way through the kitchen.
#[derive(Debug)]
struct Job {
    order: u64,
    /// The ticket, serialised once, ready to write to any worker.
    line: Vec<u8>,
    /// The workers that died while cooking it, and how.
    deaths: Vec<String>,
}

/// Every worker process. Dropping it kills and reaps every worker still
/// running, so no way out of `serve_with` (an error, a panic) leaves a
/// child behind.
#[derive(Debug)]
struct Kitchen {
    workers: Vec<Worker>,
}

impl Drop for Kitchen {
    fn drop(&mut self) {
        for worker in self.workers.iter_mut().filter(|w| w.alive) {
            // SIGKILL, not just closing stdin: a worker in the middle of a
            // long chop would only notice the closed pipe when done.
            let _ = worker.child.kill();
            // Reaping is what frees the process table entry (no zombie)
            // and adds its CPU time to ours.
            let _ = worker.child.wait();
        }
    }
}
// ANCHOR_END: kitchen

impl Kitchen {
    // ANCHOR: hire
    /// Starts `cooks` workers from `command`, then waits for each to say it
    /// is ready. Returns the kitchen and each worker's stdout.
    fn hire(
        mut command: Command,
        cooks: usize,
    ) -> Result<(Kitchen, Vec<BufReader<ChildStdout>>), BoxError> {
        // Orders in, plates out. stderr stays the parent's, so a worker's
        // panic message and errors reach the terminal.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut kitchen = Kitchen {
            workers: Vec::with_capacity(cooks),
        };
        let mut stdouts = Vec::with_capacity(cooks);
        for _ in 0..cooks {
            // If a spawn fails, `?` drops `kitchen`, which kills the workers
            // already started.
            let mut child = command.spawn()?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().ok_or("no pipe to a worker")?;
            stdouts.push(BufReader::new(stdout));
            kitchen.workers.push(Worker {
                child,
                stdin,
                cooking: None,
                alive: true,
            });
        }
        // They all start at once; now wait for each one's first line. (A
        // program that never answers would stall here: a service would put
        // a time limit on it.)
        for (w, stdout) in stdouts.iter_mut().enumerate() {
            match listen(stdout) {
                Heard::Reply(Reply::Ready) => {}
                Heard::Gone => {
                    let how = kitchen.reap(w);
                    return Err(format!(
                        "{how} before it was ready: is the worker command \
                         this crate's binary?"
                    )
                    .into());
                }
                heard => {
                    let said = format!("did not say it was ready: {heard}");
                    return Err(kitchen.protocol_error(w, said));
                }
            }
        }
        Ok((kitchen, stdouts))
    }
    // ANCHOR_END: hire

    /// A free worker, if there is one.
    fn free(&self) -> Option<usize> {
        self.workers
            .iter()
            .position(|w| w.alive && w.cooking.is_none())
    }

    /// How many orders are being cooked.
    fn busy(&self) -> usize {
        self.workers.iter().filter(|w| w.cooking.is_some()).count()
    }

    /// How many workers are alive.
    fn alive(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }

    /// Writes `job` to free worker `w`'s stdin. If the pipe is broken the
    /// worker has died: it is reaped, and the job comes back untouched (it
    /// never reached the worker).
    fn give(&mut self, w: usize, job: Job) -> Result<(), Job> {
        let worker = &mut self.workers[w];
        // One `write` of a line shorter than the pipe's buffer: it never
        // blocks, since a free worker has nothing waiting in its pipe.
        // Rust ignores SIGPIPE, so a dead reader is an error, not a signal
        // that kills the parent.
        let written = match &mut worker.stdin {
            Some(stdin) => stdin.write_all(&job.line).is_ok(),
            None => false,
        };
        if written {
            worker.cooking = Some(job);
            Ok(())
        } else {
            self.reap(w);
            Err(job)
        }
    }

    /// Worker `w` answered for the order it was cooking: `served` is the
    /// id on its plate, `None` for a panic. Returns the order's id.
    fn finish(
        &mut self,
        w: usize,
        served: Option<u64>,
    ) -> Result<u64, BoxError> {
        let cooking = self.workers[w].cooking.take();
        match (cooking, served) {
            (Some(job), Some(id)) if id != job.order => {
                let what =
                    format!("served order {id} while cooking {}", job.order);
                Err(self.protocol_error(w, what))
            }
            (Some(job), _) => Ok(job.order),
            (None, _) => {
                Err(self.protocol_error(w, "answered while it had no order"))
            }
        }
    }

    // ANCHOR: reap
    /// Worker `w`'s stdout has ended: reaps it. Returns the order it was
    /// cooking, with the death noted; `None` if it was idle or known dead.
    fn bury(&mut self, w: usize) -> Option<Job> {
        if !self.workers[w].alive {
            return None;
        }
        let how = self.reap(w);
        let mut job = self.workers[w].cooking.take()?;
        job.deaths.push(how);
        Some(job)
    }

    /// Makes sure worker `w` is dead and reaped; says how it ended.
    fn reap(&mut self, w: usize) -> String {
        let name = self.name(w);
        let worker = &mut self.workers[w];
        worker.stdin = None;
        worker.alive = false;
        // Its stdout ended or its stdin broke, so it has exited or is about
        // to: `kill` makes sure (a signal does nothing to a process that has
        // already exited), and `wait` reaps it and tells how it ended.
        let _ = worker.child.kill();
        match worker.child.wait() {
            Ok(status) => format!("{name} ended ({status})"),
            Err(e) => format!("{name} could not be reaped ({e})"),
        }
    }
    // ANCHOR_END: reap

    /// Closing time: closes every worker's stdin, which ends its loop, and
    /// reaps it. A worker that ends badly even so is an error.
    fn close(&mut self) -> Result<(), BoxError> {
        for worker in &mut self.workers {
            worker.stdin = None; // all at once, so they all leave together
        }
        for w in 0..self.workers.len() {
            let worker = &mut self.workers[w];
            if worker.alive {
                let status = worker.child.wait()?;
                worker.alive = false;
                if !status.success() {
                    let name = self.name(w);
                    return Err(format!("{name} ended with {status}").into());
                }
            }
        }
        Ok(())
    }

    fn name(&self, w: usize) -> String {
        format!("worker {w} (pid {})", self.workers[w].child.id())
    }

    fn protocol_error(&self, w: usize, what: impl Display) -> BoxError {
        format!("protocol error: {} {what}", self.name(w)).into()
    }
}

// ANCHOR: dispatcher
/// What reaches the dispatcher, from the cashier or from a reader.
#[derive(Debug)]
enum Event {
    /// From the cashier: an order, rung up.
    Order(Ticket),
    /// From the reader of worker `usize`: a line, or the end of its stdout.
    Heard(usize, Heard),
}

/// The dispatcher: gives each order to a free worker, collects the plates,
/// hands on the orders of workers that die. Owns the kitchen: every way out
/// of here reaps every worker.
fn dispatch(
    mut kitchen: Kitchen,
    events: &Receiver<Event>,
    total: usize,
) -> Result<Vec<Plate>, BoxError> {
    // Orders rung up and not yet with a worker, oldest first.
    let mut waiting = VecDeque::new();
    let mut taken = 0;
    let mut plates = Vec::with_capacity(total);
    let mut panicked = None;
    let mut lost = Vec::new();
    loop {
        while let Some(w) = kitchen.free()
            && let Some(job) = waiting.pop_front()
        {
            if let Err(job) = kitchen.give(w, job) {
                waiting.push_front(job); // the next free worker takes it
            }
        }
        // Every order was taken and answered (or lost): closing time.
        if taken == total && waiting.is_empty() && kitchen.busy() == 0 {
            break;
        }
        if kitchen.alive() == 0 {
            return Err(all_died(&lost, &waiting, total - taken));
        }
        // A reader keeps its sender until its worker is reaped, and a live
        // worker is never reaped without an event: `recv` cannot fail here.
        let event = events.recv().map_err(|_| "the kitchen fell silent")?;
        match event {
            Event::Order(ticket) => {
                taken += 1;
                let mut line = serde_json::to_vec(&ticket)?;
                line.push(b'\n');
                let order = ticket.order.id();
                let deaths = Vec::new();
                waiting.push_back(Job {
                    order,
                    line,
                    deaths,
                });
            }
            Event::Heard(w, Heard::Reply(Reply::Served(plate))) => {
                kitchen.finish(w, Some(plate.id()))?;
                plates.push(plate);
            }
            Event::Heard(w, Heard::Reply(Reply::Panicked { message })) => {
                let order = kitchen.finish(w, None)?;
                // Keep the first failure; let the other cooks finish.
                panicked = panicked.or(Some(CookPanicked { order, message }));
            }
            Event::Heard(w, Heard::Gone) => {
                // A death: hand the order on, or give it up as lost.
                if let Some(job) = kitchen.bury(w) {
                    if job.deaths.len() < TRIES {
                        waiting.push_front(job);
                    } else {
                        lost.push(job);
                    }
                }
            }
            Event::Heard(w, heard) => {
                return Err(kitchen.protocol_error(w, heard));
            }
        }
    }
    kitchen.close()?;
    if let Some(e) = panicked {
        return Err(e.into());
    }
    if !lost.is_empty() {
        return Err(format!(
            "orders lost, {TRIES} worker processes dying on each: {}",
            describe(&lost)
        )
        .into());
    }
    Ok(plates)
}
// ANCHOR_END: dispatcher

/// The error when no worker is left: every order it could not serve.
fn all_died(lost: &[Job], waiting: &VecDeque<Job>, unrung: usize) -> BoxError {
    let jobs: Vec<&Job> = lost.iter().chain(waiting).collect();
    let mut what = String::from("every worker process has died; orders lost: ");
    what += &describe(jobs);
    if unrung > 0 {
        what += &format!(" and {unrung} not yet rung up");
    }
    what.into()
}

/// "order 3 (worker 0 (pid 12) ended (signal: 6 (SIGABRT))), order 4".
fn describe<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> String {
    let each = jobs.into_iter().map(|job| {
        if job.deaths.is_empty() {
            format!("order {}", job.order)
        } else {
            format!("order {} ({})", job.order, job.deaths.join("; "))
        }
    });
    let all: Vec<String> = each.collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.join(", ")
    }
}

// ANCHOR: reader
/// What a reader made of one line from its worker.
#[derive(Debug)]
enum Heard {
    Reply(Reply),
    /// A line that is not a reply, and why.
    Garbled {
        line: String,
        why: String,
    },
    /// The end of the worker's stdout: it has exited or been killed.
    Gone,
}

/// A reader thread: turns worker `w`'s lines into events until its stdout
/// ends. Blocking on a pipe is all this thread does.
fn reader(w: usize, mut stdout: impl BufRead, dispatcher: &Sender<Event>) {
    loop {
        let heard = listen(&mut stdout);
        let gone = matches!(heard, Heard::Gone);
        if dispatcher.send(Event::Heard(w, heard)).is_err() || gone {
            return;
        }
    }
}

/// Reads one line from a worker.
fn listen(stdout: &mut impl BufRead) -> Heard {
    let mut line = Vec::new();
    match stdout.read_until(b'\n', &mut line) {
        // The end of the pipe, or a line cut short by the worker's death.
        Ok(0) | Err(_) => Heard::Gone,
        Ok(_) if line.last() != Some(&b'\n') => Heard::Gone,
        Ok(_) => serde_json::from_slice(&line).map_or_else(
            |e| Heard::Garbled {
                line: String::from_utf8_lossy(&line)
                    .trim_end()
                    .chars()
                    .take(200)
                    .collect(),
                why: e.to_string(),
            },
            Heard::Reply,
        ),
    }
}
// ANCHOR_END: reader

impl Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Heard::Reply(Reply::Ready) => {
                f.write_str("said it was ready again")
            }
            Heard::Reply(reply) => write!(f, "sent {reply:?}"),
            Heard::Garbled { line, why } => {
                write!(f, "sent a line that is not a reply ({why}): {line:?}")
            }
            Heard::Gone => f.write_str("closed its stdout"),
        }
    }
}

// ANCHOR: worker
/// The worker role, which `main` enters when its first argument is
/// [`WORKER_ARG`]: reads orders from stdin until it closes, cooks each in
/// turn and writes each reply to stdout.
pub fn worker() -> ExitCode {
    let hooks = hooks::Hooks::from_env();
    match work(io::stdin().lock(), io::stdout().lock(), &hooks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let pid = std::process::id();
            eprintln!("{} worker (pid {pid}): error: {e}", MODEL.name);
            ExitCode::FAILURE
        }
    }
}

fn work(
    tickets: impl BufRead,
    mut pass: impl Write,
    hooks: &hooks::Hooks,
) -> Result<(), BoxError> {
    hooks.started()?;
    say(&mut pass, &Reply::Ready)?;
    // The parent closing our stdin ends this loop: that is closing time.
    for line in tickets.lines() {
        let Ticket { order, opening_ns } = serde_json::from_str(&line?)?;
        // The parent's clock, rebuilt in this process from the wall clock.
        let clock = Clock::from_wall(opening_ns);
        if hooks.before_cooking(order.id(), &mut pass)? {
            continue;
        }
        // Catch the panic here: the process lives on to cook the next
        // order, and the parent learns of the panic from a reply instead
        // of a dead pipe.
        let reply =
            match panic::catch_unwind(AssertUnwindSafe(|| cook(&order, clock)))
            {
                Ok(plate) => Reply::Served(plate),
                Err(payload) => Reply::Panicked {
                    message: panic_message(&*payload),
                },
            };
        say(&mut pass, &reply)?;
    }
    Ok(())
}

/// Writes one reply as one line, and flushes it: the parent is waiting.
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
fn cook(order: &Order, clock: Clock) -> Plate {
    let mut plate = Plate::start(order, &clock);
    for step in order.steps() {
        match *step {
            // The process's own thread, on whichever core the OS gives it.
            Step::Chop(work) => plate.chop(work),
            // The whole process sleeps: it is busy as far as the dispatcher
            // is concerned, and takes no other order meanwhile.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

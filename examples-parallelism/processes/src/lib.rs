//! # parallelism-processes: cooks in child processes, fed through pipes
//!
//! ```text
//! cargo run --release -p parallelism-processes -- --preset banquet
//! ```
//!
//! Node's `child_process`, in Rust. Before opening, the server starts
//! `--cooks` copies of its own binary (default: one per core) in a *worker*
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
//! - A worker that **dies** mid-order is seen as the end of its stdout;
//!   the dispatcher reaps it and hands its order to a live worker. An
//!   order is started by at most [`TRIES`] workers: one that kills them
//!   all is *lost*: reported at once, its customer told `ERROR`, and
//!   `serve` fails at closing time naming it. If every worker dies, `serve`
//!   fails naming the orders it could not cook.
//! - A line from a worker that is not a reply is a **protocol error**: the
//!   dispatcher gives up, naming the worker and quoting the line.
//! - A cook that **panics** is caught in its worker, which says so; the
//!   server reports it at once, tells that customer `ERROR`, and serves on.
//! - No worker outlives the server: every way out of [`serve_with`] kills
//!   and reaps them, and on Linux the kernel kills them if the server is
//!   killed outright. No accepted customer is left without an answer.
//!
//! The worker role reads a few test hooks from its environment (see
//! `src/hooks.rs`); a normal run sets none.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{
    BoxError, Clock, Cooks, Model, Plate, Shift, Step, panic_message,
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
enum Reply {
    /// The first line of every worker: it is up and reading its stdin.
    Ready,
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
    // The workers are spawned here, on the calling thread, which lives
    // until `serve` returns: the kernel ties a worker's death-with-parent
    // signal to the thread that spawned it (see `Kitchen::hire`).
    let (kitchen, stdouts) = Kitchen::hire(worker, cooks)?;
    // One channel into the dispatcher, for orders from the cashier and for
    // what the readers hear. Unbounded: neither must ever wait for it. It
    // cannot grow without bound: every order in it holds a connection, and
    // the OS limits how many are open.
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
    let kitchen_shift = shift.clone();
    let dispatcher = thread::Builder::new()
        .name("dispatcher".into())
        .spawn(move || dispatch(kitchen, &events, &kitchen_shift))?;

    // Every worker has said it is ready: let the customers in.
    shift.open();
    cashier(&listener, &events_tx, &shift);
    // Stop accepting: a latecomer is refused now rather than left in the
    // backlog while the kitchen finishes.
    drop(listener);
    // The readers hold senders too, so the channel stays open: the
    // dispatcher is told in so many words that no order is coming. (If it
    // has given up already, it has the error to report.)
    let _ = events_tx.send(Event::Closing);
    drop(events_tx);

    let served = dispatcher
        .join()
        .map_err(|_| "the dispatcher thread panicked")?;
    // Every worker is reaped, so every stdout has ended and every reader
    // is on its way out.
    for reader in readers {
        reader.join().map_err(|_| "a reader thread panicked")?;
    }
    served
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: accepts customers one at a time until closing time, takes
/// each order and sends it to the dispatcher. Runs on the calling thread.
fn cashier(listener: &TcpListener, dispatcher: &Sender<Event>, shift: &Shift) {
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
                let order = Event::Order(ticket, Customer(Some(stream)));
                // `send` fails only once the dispatcher has given up (every
                // worker died, or one broke the protocol). The order comes
                // back in the error and is dropped, which tells this
                // customer; `serve` reports the dispatcher's error.
                if dispatcher.send(order).is_err() {
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
    // A silent customer would hold the only cashier for ever.
    stream.set_read_timeout(Some(wire::PATIENCE)).ok()?;
    stream.write_all(wire::NEXT.as_bytes()).ok()?;
    let mut line = String::new();
    let read = BufReader::new(&stream)
        .take(wire::MAX_LINE as u64)
        .read_line(&mut line);
    let mut ticket = match wire::heard(read, &line) {
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
// ANCHOR_END: cashier

// ANCHOR: customer
/// A customer waiting for a plate: the connection the answer goes back on.
#[derive(Debug)]
struct Customer(Option<TcpStream>);

impl Customer {
    /// Writes the one line this customer gets, and hangs up.
    fn answer(mut self, line: &str) {
        if let Some(mut stream) = self.0.take() {
            // A customer who hung up has only lost their own plate. The
            // line is short and the socket's buffer empty: it never blocks.
            let _ = stream.write_all(line.as_bytes());
        }
    }
}

impl Drop for Customer {
    /// A customer dropped unanswered is one the dispatcher gave up on
    /// (every worker died, one broke the protocol, a bug unwound it): say
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
    /// The request, serialised once, ready to write to any worker.
    line: Vec<u8>,
    customer: Customer,
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
        // Orders in, plates out. stderr stays the server's, so a worker's
        // panic message and errors reach the terminal.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // On Linux, the kernel sends each worker SIGKILL when the thread
        // that spawned it ends, so a server killed outright (`kill -9`,
        // where no `Drop` runs) takes its workers with it, even one in the
        // middle of a long chop. Elsewhere a worker leaves when its stdin
        // reaches end-of-file, between orders.
        restaurant::child::die_with_parent(&mut command);
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
            match hear(stdout) {
                Said::Reply(Reply::Ready) => {}
                Said::Gone => {
                    let how = kitchen.reap(w);
                    return Err(format!(
                        "{how} before it was ready: is the worker command \
                         this crate's binary?"
                    )
                    .into());
                }
                said => {
                    let what = format!("did not say it was ready: {said}");
                    return Err(kitchen.protocol_error(w, what));
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
        // that kills the server.
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

    /// Worker `w` answered for the order it was cooking: `cooked` is the
    /// id on its plate, `None` for a panic. Returns the order's job.
    fn finish(
        &mut self,
        w: usize,
        cooked: Option<u64>,
    ) -> Result<Job, BoxError> {
        match self.workers[w].cooking.take() {
            Some(job) if cooked.is_some_and(|id| id != job.order) => {
                let what = format!(
                    "cooked order {} while given {}",
                    cooked.unwrap_or_default(),
                    job.order
                );
                Err(self.protocol_error(w, what))
            }
            Some(job) => Ok(job),
            None => {
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
    /// From the cashier: an order, rung up, and who is waiting for it.
    Order(Ticket, Customer),
    /// From `serve`: closing time, no more orders are coming.
    Closing,
    /// From the reader of worker `usize`: a line, or the end of its stdout.
    Said(usize, Said),
}

/// The dispatcher: gives each order to a free worker, serves the plates
/// to their customers, hands on the orders of workers that die. Owns the
/// kitchen: every way out of here reaps every worker.
fn dispatch(
    mut kitchen: Kitchen,
    events: &Receiver<Event>,
    shift: &Shift,
) -> Result<(), BoxError> {
    // Orders rung up and not yet with a worker, oldest first.
    let mut waiting = VecDeque::new();
    let mut closing = false;
    let mut lost = Vec::new();
    loop {
        while let Some(w) = kitchen.free()
            && let Some(job) = waiting.pop_front()
        {
            if let Err(job) = kitchen.give(w, job) {
                waiting.push_front(job); // the next free worker takes it
            }
        }
        // Every order taken has been answered: the kitchen can close.
        if closing && waiting.is_empty() && kitchen.busy() == 0 {
            break;
        }
        if kitchen.alive() == 0 {
            return Err(all_died(&lost, &waiting));
        }
        // A reader keeps its sender until its worker is reaped, and a live
        // worker is never reaped without an event: `recv` cannot fail here.
        let event = events.recv().map_err(|_| "the kitchen fell silent")?;
        match event {
            Event::Order(ticket, customer) => {
                // Read after opening (this order came in through the open
                // door), so it is the opening the run installed.
                let opening_ns = restaurant::clock::clock().to_wall();
                let order = ticket.id();
                let mut line =
                    serde_json::to_vec(&Request { ticket, opening_ns })?;
                line.push(b'\n');
                let deaths = Vec::new();
                waiting.push_back(Job {
                    order,
                    line,
                    customer,
                    deaths,
                });
            }
            Event::Closing => closing = true,
            Event::Said(w, Said::Reply(Reply::Cooked(plate))) => {
                let job = kitchen.finish(w, Some(plate.id()))?;
                // Served here, in the server's process, where the plate is
                // counted and its trace kept for the timeline.
                job.customer.answer(&plate.serve());
            }
            Event::Said(w, Said::Reply(Reply::Panicked { message })) => {
                let job = kitchen.finish(w, None)?;
                // The payload stayed in the worker; its message came over
                // the pipe, and a `String` is a payload as good as any.
                shift.cook_panicked(job.order, &message as &(dyn Any + Send));
                job.customer.answer(&wire::error_line("the cook panicked"));
            }
            Event::Said(w, Said::Gone) => {
                // A death: hand the order on, or give it up as lost.
                if let Some(job) = kitchen.bury(w) {
                    if job.deaths.len() < TRIES {
                        waiting.push_front(job);
                    } else {
                        let what = describe(&job);
                        eprintln!("{}: lost {what}", MODEL.name);
                        let why = format!("{TRIES} cooks died on this order");
                        job.customer.answer(&wire::error_line(&why));
                        lost.push(what);
                    }
                }
            }
            Event::Said(w, said) => {
                return Err(kitchen.protocol_error(w, said));
            }
        }
    }
    kitchen.close()?;
    if !lost.is_empty() {
        return Err(format!(
            "orders lost, {TRIES} worker processes dying on each: {}",
            lost.join(", ")
        )
        .into());
    }
    Ok(())
}
// ANCHOR_END: dispatcher

/// The error when no worker is left: every order it could not serve. (The
/// customers still waiting are told when their jobs are dropped.)
fn all_died(lost: &[String], waiting: &VecDeque<Job>) -> BoxError {
    let mut orders: Vec<String> = lost.to_vec();
    orders.extend(waiting.iter().map(describe));
    if orders.is_empty() {
        orders.push("none yet".to_owned());
    }
    format!(
        "every worker process has died; orders lost: {}",
        orders.join(", ")
    )
    .into()
}

/// "order 3 (worker 0 (pid 12) ended (signal: 6 (SIGABRT)))", "order 4".
fn describe(job: &Job) -> String {
    if job.deaths.is_empty() {
        format!("order {}", job.order)
    } else {
        format!("order {} ({})", job.order, job.deaths.join("; "))
    }
}

// ANCHOR: reader
/// What a reader made of one line from its worker.
#[derive(Debug)]
enum Said {
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
        let said = hear(&mut stdout);
        let gone = matches!(said, Said::Gone);
        if dispatcher.send(Event::Said(w, said)).is_err() || gone {
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

impl Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Said::Reply(Reply::Ready) => f.write_str("said it was ready again"),
            Said::Reply(reply) => write!(f, "sent {reply:?}"),
            Said::Garbled { line, why } => {
                write!(f, "sent a line that is not a reply ({why}): {line:?}")
            }
            Said::Gone => f.write_str("closed its stdout"),
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
    requests: impl BufRead,
    mut pass: impl Write,
    hooks: &hooks::Hooks,
) -> Result<(), BoxError> {
    hooks.started()?;
    say(&mut pass, &Reply::Ready)?;
    // The server closing our stdin ends this loop: that is closing time.
    for line in requests.lines() {
        let Request { ticket, opening_ns } = serde_json::from_str(&line?)?;
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

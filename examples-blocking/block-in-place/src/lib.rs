//! # blocking-block-in-place: chop where you are, hand the queue away
//!
//! ```text
//! cargo run --release -p blocking-block-in-place -- --preset big-order
//! ```
//!
//! An accept loop, a task per customer and a task per cook on tokio's
//! multi-thread runtime, as in `concurrency-tokio`, and the cooks chop on
//! the thread that polls them. The difference is one call: each chop runs
//! inside `tokio::task::block_in_place`, which tells the runtime "this
//! thread is about to block". Before running the closure, the runtime
//! hands the worker's *core* (its queue of ready tasks, and with it the
//! turn at the I/O driver and the timer) to another thread, which carries
//! on polling everyone else: the customers are still greeted and read.
//! The chop then runs as ordinary blocking code, with no `'static`
//! closure and nothing moved: it may borrow the plate.
//!
//! What the runtime is made of:
//!
//! - **worker threads**, `--cooks` of them (default: one per core), each
//!   owning a core, stealing work from the others;
//! - an **I/O driver** and a **timer**, polled by a worker that runs out
//!   of tasks and parks, or by a busy worker on every 61st task it takes
//!   (`event_interval`); never in the middle of a task;
//! - a **blocking pool**, from which `block_in_place` takes the thread
//!   that receives a handed-off core (so a run has more threads than
//!   workers);
//! - the accept loop runs in `block_on`, on the caller's thread, which
//!   polls that one future and nothing else, the driver included.
//!
//! **Why it panics on a current-thread runtime:** there, the one thread
//! *is* the event loop and there is no other worker to hand the core to.
//! Blocking would silently freeze everything, so tokio panics instead
//! ("can call blocking only when running on the multi-threaded runtime").
//!
//! **What it does not rescue: the rest of the same task.** Only the
//! runtime's *other* tasks move. A task is one future; if a cook joined its
//! chop with something else (`join!`, a `select!` arm, a `timeout`), those
//! futures would not be polled until the closure returned. tokio's docs
//! point to `spawn_blocking` for that case.
//!
//! How it differs from its siblings: every other fix keeps a current-thread
//! event loop and sends the chop away; this one keeps the chop and sends
//! the event loop away.
//!
//! **Its weakness, measured:** the only cap on how many chops run at once
//! is the blocking pool's, `max_blocking_threads` (512 by default; tokio
//! 1.54.1 counts the workers on top, so a run may reach 512 + `--cooks`
//! threads, and the caller's). Each `block_in_place` frees a core, the
//! core picks up the next cook, and that cook may block in place too: on
//! `big-order` and `takeout` the threads multiply (see threads at peak),
//! every chop, even a salad's, pays for a hand-off between threads, and on
//! two cores the threads that chop take turns with the ones that should be
//! polling. At the cap no thread is left to take a core, so the worker
//! keeps it through its chop and its queue waits, the door included: the
//! blocked loop again. A service that uses it should set
//! `max_blocking_threads` to what it can afford.

use std::any::Any;
use std::io;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::task::{JoinSet, block_in_place};
use tokio::time::{sleep, timeout};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A multi-thread runtime whose cooks chop inside block_in_place, \
            handing their worker's queue to another thread.",
    cooks: Cooks::Cores {
        what: "worker threads of the multi-thread runtime",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};

// ANCHOR: serve
/// Builds a multi-thread runtime with `cooks` workers and runs the
/// restaurant on it until closing time, and until every order it accepted
/// is served.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // It must be the multi-thread flavour: `block_in_place` panics on a
    // current-thread runtime, which has no second worker to take over.
    // A thread the OS refuses must be asked about first: tokio 1.54.1
    // starts each worker through its blocking pool (`Launch::launch`), which
    // panics when one is refused ("OS can't spawn worker thread"), and the
    // unwind then waits in `BlockingPool::drop` for the workers already
    // started, which nobody tells to stop: `build` hangs instead of
    // returning the error. (tokio-rs/tokio#8406, fixed by #8408, is that
    // same launch path silently orphaning the worker before it panicked.)
    // So ask the OS for the `cooks` workers first; see restaurant::limits.
    restaurant::limits::headroom(cooks)?;
    let runtime = Builder::new_multi_thread()
        .worker_threads(cooks)
        .enable_io()
        .enable_time()
        .build()?;
    // Dropping the runtime when `serve` returns shuts down the workers and
    // the blocking pool's threads.
    runtime.block_on(restaurant(listener, shift))
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each.
async fn restaurant(
    listener: StdListener,
    shift: Shift,
) -> Result<(), BoxError> {
    // tokio takes over the std listener once it is non-blocking.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    // The runtime is up and the door is open: let the customers in.
    shift.open();
    // Set once, by the first customer whose cook the OS refused a thread
    // (see `attend`): the night then ends with that error.
    let refused = Arc::new(OnceLock::new());
    // A JoinSet owns every customer's task: none outlives the restaurant.
    let mut customers = JoinSet::new();
    loop {
        // This loop runs on the caller's thread, but the socket's readiness
        // is read by the workers, which drive the I/O driver: a new
        // customer is noticed only while some worker is free to look,
        // which `block_in_place` keeps true.
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let refused = Arc::clone(&refused);
                    customers.spawn(attend(stream, shift.clone(), refused));
                }
                // Never fatal: out of descriptors, a reset. Back off.
                Err(e) => {
                    eprintln!("blocking-block-in-place: accept failed: {e}");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap customers who have left, so the set stays small.
            Some(_) = customers.join_next(), if !customers.is_empty() => {}
        }
    }
    // Closing time: refuse newcomers, let every customer inside finish.
    drop(listener);
    while customers.join_next().await.is_some() {}
    match refused.get() {
        Some(refusal) => Err(refusal.clone().into()),
        None => Ok(()),
    }
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, send it to a cook,
/// and hand over the plate. `concurrency-tokio`'s, but for a thread the OS
/// refuses, which is the kitchen's trouble and not this order's.
async fn attend(
    mut stream: TcpStream,
    shift: Shift,
    refused: Arc<OnceLock<String>>,
) {
    // I/O errors on this connection are the customer's: they end the
    // visit quietly.
    let _ = async {
        stream.write_all(wire::NEXT.as_bytes()).await?;
        let (reader, mut writer) = stream.split();
        // The line and its reader live only in this block: both are gone
        // before the wait for the cook, most of a visit, so a waiting
        // customer holds no read buffer (8 KiB each). The buffer keeps its
        // default size on purpose: one of MAX_LINE would leave the rest of
        // an oversized line unread, and closing a socket with unread bytes
        // sends a reset that can overtake the ERROR. Bytes after the line
        // are not part of the protocol; they go with the buffer.
        let heard = {
            let mut line = String::new();
            // At most MAX_LINE bytes, for at most PATIENCE; and if it is
            // closing time before the order is said, it was never an order.
            let mut reader = BufReader::new(reader).take(wire::MAX_LINE as u64);
            let read = reader.read_line(&mut line);
            let read = tokio::select! {
                read = timeout(wire::PATIENCE, read) => {
                    read.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                }
                () = shift.closed() => return Ok(()),
            };
            wire::heard(read, &line)
        };
        let mut ticket = match heard {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                let refusal = wire::error_line(&why);
                return writer.write_all(refusal.as_bytes()).await;
            }
        };
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        // The cook is a task of its own. Its chop runs on that task's
        // thread, so a panic unwinds through the task's poll, where tokio
        // catches it and hands it back here through the JoinHandle.
        let reply = match tokio::spawn(cook(ticket, Arc::clone(&refused))).await
        {
            Ok(Some(plate)) => plate,
            // The kitchen closed on a refused thread before this chop.
            Ok(None) => {
                wire::error_line("the kitchen could not start a thread")
            }
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = restaurant::panic_message(&*payload);
                if restaurant::limits::is_tokio_refusal(&message) {
                    // `block_in_place` could not start the thread that
                    // takes this worker's queue over (tokio 1.54.1 panics
                    // then, in whichever task asked). Not the cook's
                    // fault, so not a cook's panic: the night ends with
                    // the refusal, no newcomer is let in, and the other
                    // cooks stop asking for threads.
                    let _ = refused.set(
                        restaurant::limits::thread_refused_for(
                            format!("order {id}'s chop"),
                            &message,
                        )
                        .to_string(),
                    );
                    shift.close();
                    wire::error_line("the kitchen could not start a thread")
                } else {
                    report_off_runtime(&shift, id, payload);
                    wire::error_line("the cook panicked")
                }
            }
            // Nothing cancels a cook: the runtime outlives every customer.
            Err(e) => wire::error_line(&e.to_string()),
        };
        writer.write_all(reply.as_bytes()).await
    }
    .await;
}
// ANCHOR_END: cashier

/// Reports a cook's panic from a thread of its own, off the runtime.
///
/// In a night, reporting a panic ends the process at once
/// (`std::process::exit`), from the reporting thread. glibc's `exit` runs
/// the calling thread's thread-local destructors, tokio's runtime context
/// among them, while every other worker goes on polling; called from a
/// worker, that showed as a second panic, "A Tokio 1.x context was found,
/// but it is being shutdown". A plain thread has no tokio context to tear
/// down. If the OS refuses even that thread, report from here.
fn report_off_runtime(shift: &Shift, id: u64, payload: Box<dyn Any + Send>) {
    // Shared with the reporter, so it is still here if the thread is not.
    let payload = Arc::new(Mutex::new(Some(payload)));
    let report =
        move |shift: &Shift, payload: &Mutex<Option<Box<dyn Any + Send>>>| {
            let taken = payload
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(payload) = taken {
                shift.cook_panicked(id, &*payload);
            }
        };
    let (reporter, carried) = (shift.clone(), Arc::clone(&payload));
    let reported = thread::Builder::new()
        .name("cook-panicked".into())
        .spawn(move || report(&reporter, &carried))
        .map(thread::JoinHandle::join);
    if reported.is_err() {
        report(shift, &payload);
    }
}

// ANCHOR: cook
/// A cook: runs the recipe's steps in order and serves the plate; `None`
/// if the kitchen closed on a refused thread (`refused` is set) first.
async fn cook(
    ticket: Ticket,
    refused: Arc<OnceLock<String>>,
) -> Option<String> {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        if refused.get().is_some() {
            return None;
        }
        match *step {
            // The worker's queue moves to another thread first; then the
            // chop runs here, blocking this thread and this task only. The
            // closure runs before `block_in_place` returns, so it can
            // borrow `plate`: no `move`, no `'static`.
            Step::Chop(work) => block_in_place(|| plate.chop(work)),
            Step::Simmer(d) => sleep(d).await,
        }
    }
    Some(plate.serve())
}
// ANCHOR_END: cook

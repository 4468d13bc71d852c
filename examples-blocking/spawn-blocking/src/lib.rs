//! # blocking-spawn-blocking: one event loop, chops on the blocking pool
//!
//! ```text
//! cargo run --release -p blocking-spawn-blocking -- --preset big-order
//! ```
//!
//! The architecture of Node.js, in Rust: one thread runs the event loop
//! (the accept loop, every customer's conversation and every cook's
//! waiting), and a small pool of threads beside it does the work that
//! would block the loop. Here that work is every chop: a cook hands it to
//! `tokio::task::spawn_blocking` and awaits the result, so the loop's
//! thread is back at the door at once.
//!
//! What the runtime is made of:
//!
//! - **one event-loop thread**, the caller's, running tokio's
//!   current-thread scheduler, its **I/O driver** and its **timer** inside
//!   `block_on`, exactly as in `blocking-blocked`;
//! - a **blocking pool**: threads started on demand, at most `--cooks` of
//!   them (default: one per core), each taking closures from one FIFO
//!   queue and parking for up to 10 s when idle.
//!   Dropping the runtime waits for them to finish.
//!
//! In Node.js, libuv's pool (4 threads unless `UV_THREADPOOL_SIZE`
//! says otherwise) runs file system calls, `dns.lookup`, and some crypto
//! and zlib work; your own JavaScript cannot be sent there, and CPU work
//! needs `worker_threads`. In tokio any closure can go to the pool.
//!
//! How it differs from its siblings: `blocking-blocked` is this code with
//! the chop inline. `rayon-bridge` and `dedicated-thread` send chops to
//! threads the model owns instead of the runtime's own pool;
//! `smol-unblock` does the same as this crate with smol's `blocking` pool.
//!
//! **Its weakness, measured:** up to one chopping thread per core and the
//! loop's thread share the cores, so the loop gets its turn from the OS
//! scheduler rather than at once, and a short chop that queues behind as
//! many cakes as the pool has threads waits for one of them to finish (see
//! order latency on `big-order`). Every chop also pays two thread
//! hand-offs, which is more than a salad's chop is worth. And tokio's pool
//! is made for blocking I/O: its default limit is 512 threads, so CPU work
//! sent there needs a cap like `--cooks` here.

use std::io;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, OnceLock};

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::task::{JoinError, JoinSet, spawn_blocking};
use tokio::time::{sleep, timeout};
use tokio_metrics::TaskMonitor;

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "One event loop, chops on tokio's blocking pool: Node.js's event \
            loop and libuv pool, in Rust.",
    cooks: Cooks::Cores {
        what: "threads that chop, beside one event-loop thread (libuv's pool has 4 by default)",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};

// ANCHOR: serve
/// Builds a current-thread runtime whose blocking pool has at most `cooks`
/// threads, and runs the restaurant on this thread until closing time,
/// and until every order it accepted is served.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    run(listener, cooks, shift, None)
}

/// [`serve`], with every cook's future instrumented by `monitor` (see
/// `blocking-blocked`'s `serve_watched`): the slow-poll report of the fix.
pub fn serve_watched(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
    monitor: &TaskMonitor,
) -> Result<(), BoxError> {
    run(listener, cooks, shift, Some(monitor.clone()))
}

fn run(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
    monitor: Option<TaskMonitor>,
) -> Result<(), BoxError> {
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // The pool's cap. tokio's default, 512, suits blocking I/O, where
        // threads mostly sleep; for CPU work, threads beyond the cores only
        // take turns, so `--cooks` defaults to one per core (`--cooks 4`
        // is libuv's default, for a comparison with Node.js).
        .max_blocking_threads(cooks)
        .build()?;
    // Dropping the runtime at the end of `serve` waits for the pool's
    // threads to finish: nothing outlives the restaurant.
    runtime.block_on(restaurant(listener, shift, monitor))
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each. The
/// same loop as `blocking-blocked`'s; here it is never kept waiting.
async fn restaurant(
    listener: StdListener,
    shift: Shift,
    monitor: Option<TaskMonitor>,
) -> Result<(), BoxError> {
    // tokio takes over the std listener once it is non-blocking.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    // The pool's threads start lazily, with the first chops, so opening
    // does not wait for them.
    shift.open();
    // Set once, by the first customer whose chop the OS refused a thread
    // (see `attend`): the night then ends with that error.
    let refused = Arc::new(OnceLock::new());
    // A JoinSet owns every customer's task: none outlives the restaurant.
    let mut customers = JoinSet::new();
    loop {
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let monitor = monitor.clone();
                    let refused = Arc::clone(&refused);
                    customers.spawn(
                        attend(stream, shift.clone(), monitor, refused),
                    );
                }
                // Never fatal: out of descriptors, a reset. Back off.
                Err(e) => {
                    eprintln!("blocking-spawn-blocking: accept failed: {e}");
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
/// and hand over the plate. `blocking-blocked`'s, but for the panic,
/// which can now come from either of two places.
async fn attend(
    mut stream: TcpStream,
    shift: Shift,
    monitor: Option<TaskMonitor>,
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
        let cook = cook(ticket, Arc::clone(&refused));
        let cooking = match &monitor {
            Some(monitor) => tokio::spawn(monitor.instrument(cook)),
            None => tokio::spawn(cook),
        };
        // The outer JoinError is the cook's task (a panic outside a chop);
        // the inner one a chop's, handed back by the pool. Either way the
        // panic is here the moment it happens, where the order is known.
        let reply = match cooking.await.and_then(|cooked| cooked) {
            Ok(Some(plate)) => plate,
            // The kitchen closed on a refused thread before this chop.
            Ok(None) => {
                wire::error_line("the kitchen could not start a thread")
            }
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = restaurant::panic_message(&*payload);
                if restaurant::limits::is_tokio_refusal(&message) {
                    // `spawn_blocking` found no pool thread alive and the
                    // OS refused a new one: tokio 1.54.1 panics then, in
                    // the task that asked (`Spawner::spawn_blocking`, which
                    // keeps the chop queued only while some pool thread is
                    // alive to take it). The kitchen's trouble, not this
                    // order's: end the night with the refusal, let no
                    // newcomer in, and stop asking for threads.
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
                    shift.cook_panicked(id, &*payload);
                    wire::error_line("the cook panicked")
                }
            }
            // Cancelled: only at runtime shutdown, after every customer.
            Err(e) => wire::error_line(&e.to_string()),
        };
        writer.write_all(reply.as_bytes()).await
    }
    .await;
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: runs the recipe's steps in order and serves the plate. Waiting
/// happens on the event loop; every chop is sent to the blocking pool.
/// `None` if the kitchen closed on a refused thread (`refused` is set).
async fn cook(
    ticket: Ticket,
    refused: Arc<OnceLock<String>>,
) -> Result<Option<String>, JoinError> {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        if refused.get().is_some() {
            return Ok(None);
        }
        match *step {
            Step::Chop(work) => {
                // The closure runs on another thread, maybe after this
                // function's stack frame is gone, so it must own what it
                // touches (`'static + Send`). The plate moves in, is
                // chopped there, and comes back as the closure's result.
                let chopping = spawn_blocking(move || {
                    plate.chop(work);
                    plate
                });
                // While the pool chops, this cook is parked and the loop
                // serves others. tokio catches a panic in the closure and
                // hands it back here as a JoinError.
                plate = chopping.await?;
            }
            Step::Simmer(d) => sleep(d).await,
        }
    }
    Ok(Some(plate.serve()))
}
// ANCHOR_END: cook

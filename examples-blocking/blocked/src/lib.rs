//! # blocking-blocked: the anti-pattern, every chop on the event loop
//!
//! ```text
//! cargo run --release -p blocking-blocked -- --preset big-order
//! ```
//!
//! **This is what not to do.** It is here so that the fixes beside it in
//! `examples-blocking/` have something to be measured against.
//!
//! One event loop on one thread, as in Node.js: tokio's current-thread
//! runtime runs the accept loop, a task per customer and a task per cook,
//! all on the thread that calls `block_on`, and switches between them only
//! at an `.await`. Reading a socket and simmering are `.await`s, so waiting
//! costs nothing. Chopping is not: every chop runs inline, on the loop's
//! only thread, and until it returns nothing else runs. A salad's chop
//! takes a fraction of a millisecond and nobody notices. A wedding cake's
//! takes 100–200 ms, and for all that time nobody accepts a connection or
//! says `NEXT`: customers stand at the door, queued by the kernel in the
//! listen backlog.
//!
//! What the runtime is made of (tokio's current-thread flavour):
//!
//! - **one thread**, the caller's: the scheduler loop runs inside
//!   `block_on`, and polls the accept loop, the customers and the cooks in
//!   turn;
//! - an **I/O driver** (epoll on Linux) and a **timer** wheel with
//!   millisecond resolution, which the loop polls when its queue of ready
//!   tasks runs dry or after 61 polls (`event_interval`), and never in
//!   the middle of one.
//!
//! How it differs from its siblings: the code is that of
//! `concurrency-tokio-current-thread`. Every other crate in
//! `examples-blocking/` keeps this event loop (or one like it) and moves
//! the chop out of the loop's way: to a blocking pool (`spawn-blocking`,
//! `smol-unblock`), to rayon (`rayon-bridge`), to threads of its own
//! (`dedicated-thread`), into slices with a yield between them
//! (`yield-now`), or it keeps the chop and moves the loop's queue to
//! another thread (`block-in-place`).
//!
//! **Its weakness, measured:** on `big-order` the longest counter wait is
//! about as long as the longest chop, many times what a customer waits
//! with any of the fixes. `tests/lesson.rs` measures it against every fix,
//! and `tests/detection.rs` shows how a production service would catch
//! it: with `tokio-metrics`, which reports every poll that ran too long
//! ([`serve_watched`]).

use std::io;
use std::net::TcpListener as StdListener;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};
use tokio_metrics::TaskMonitor;

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "The anti-pattern: every chop inline on a one-thread event loop, \
            so the cashier stalls.",
    // One thread is the whole problem: the command line accepts only 1.
    cooks: Cooks::One,
    waiters: None,
    serve,
};

// ANCHOR: serve
/// Builds a current-thread runtime and runs the restaurant on this thread
/// until closing time, and until every order it accepted is served.
/// `_cooks` is always 1 ([`Cooks::One`]).
pub fn serve(
    listener: StdListener,
    _cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    run(listener, shift, None)
}

/// [`serve`], with every cook's future instrumented by `monitor`, so that
/// `monitor.cumulative()` afterwards says how many polls of a cook took
/// longer than `monitor.slow_poll_threshold()`, and for how long.
pub fn serve_watched(
    listener: StdListener,
    _cooks: usize,
    shift: Shift,
    monitor: &TaskMonitor,
) -> Result<(), BoxError> {
    run(listener, shift, Some(monitor.clone()))
}

fn run(
    listener: StdListener,
    shift: Shift,
    monitor: Option<TaskMonitor>,
) -> Result<(), BoxError> {
    // No worker threads: the runtime is a scheduler, an I/O driver and a
    // timer that run on the thread calling `block_on`. (`#[tokio::main(
    // flavor = "current_thread")]` builds the same.) This is the event
    // loop that every chop below will block.
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    // The loop runs inside `block_on` and stops when `restaurant` returns.
    runtime.block_on(restaurant(listener, shift, monitor))
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each.
async fn restaurant(
    listener: StdListener,
    shift: Shift,
    monitor: Option<TaskMonitor>,
) -> Result<(), BoxError> {
    // tokio takes over the std listener once it is non-blocking.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    // The runtime is up and the door is open: let the customers in.
    shift.open();
    // A JoinSet owns every customer's task: none outlives the restaurant.
    let mut customers = JoinSet::new();
    loop {
        // `accept` is an `.await` like any other: this loop gets the
        // thread back only when the task polled before it returns. While
        // a cook chops a cake, new customers wait in the backlog.
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let monitor = monitor.clone();
                    customers.spawn(attend(stream, shift.clone(), monitor));
                }
                // Out of file descriptors, or a customer who left before
                // being accepted: never fatal. Back off a little; retry.
                Err(e) => {
                    eprintln!("blocking-blocked: accept failed: {e}");
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
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, send it to a cook,
/// and hand over the plate. Nothing here is wrong: it needs the thread
/// for a few microseconds at a time, and gets it whenever nobody holds it.
async fn attend(
    mut stream: TcpStream,
    shift: Shift,
    monitor: Option<TaskMonitor>,
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
        // ANCHOR: watch
        // Watching is opt-in (`serve_watched`): an instrumented future
        // times every one of its polls, at the cost of a few atomic adds.
        let cooking = match &monitor {
            Some(monitor) => tokio::spawn(monitor.instrument(cook(ticket))),
            None => tokio::spawn(cook(ticket)),
        };
        // ANCHOR_END: watch
        // The cook is a task of its own, so that a panic in its chop is
        // caught by tokio around that task's poll and comes back here,
        // where the order is known, the moment it happens.
        let reply = match cooking.await {
            Ok(plate) => plate,
            Err(e) if e.is_panic() => {
                shift.cook_panicked(id, &*e.into_panic());
                wire::error_line("the cook panicked")
            }
            // Nothing cancels a cook: the runtime outlives every customer.
            Err(e) => wire::error_line(&e.to_string()),
        };
        writer.write_all(reply.as_bytes()).await
    }
    .await;
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: runs the recipe's steps in order and serves the plate.
async fn cook(ticket: Ticket) -> String {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        match *step {
            // THE MISTAKE. CPU work inline in an async fn: this poll does
            // not return until the chop is done, and it runs on the only
            // thread there is. No other cook, no timer, no accept, no
            // greeting, for as long as it takes: 0.1 ms for a salad,
            // 200 ms for a cake.
            Step::Chop(work) => plate.chop(work),
            // Waiting is fine: the cook is parked on the timer and the loop
            // moves on to whoever is ready.
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

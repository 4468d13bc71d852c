//! # blocking-yield-now: cut the chop into slices, yield between them
//!
//! ```text
//! cargo run --release -p blocking-yield-now -- --preset big-order
//! ```
//!
//! *Partitioning*: the work stays on the event loop, but never in one
//! piece. `blocking-blocked`'s accept loop, customers and cooks, on the
//! same one-thread runtime; only the cook differs. Each chop is cut into
//! slices of at most [`SLICE`] (100 units, about 100 µs), and between two
//! slices the cook awaits `tokio::task::yield_now()`, handing the thread
//! back to the loop. A cake is two thousand short polls instead of one
//! long one, and between any two of them the loop can accept a customer,
//! greet one and read another's order. Node.js programs do the same with
//! `setImmediate`: do a slice, schedule the rest, return to the loop.
//!
//! How long is a slice allowed to be? Alice Ryhl's *Async: What is
//! blocking?* (<https://ryhl.io/blog/async-what-is-blocking/>), which
//! tokio's runtime documentation links to for "blocking the thread", gives
//! the rule of thumb: no more than 10 to 100 microseconds between each
//! `.await`. A slice sits at the top of that range.
//!
//! What the runtime is made of: exactly `blocking-blocked`'s, one thread
//! running tokio's current-thread scheduler, its **I/O driver** and its
//! **timer** inside `block_on`. `yield_now` does not requeue the cook at
//! once: tokio defers its waker until the scheduler has polled the I/O
//! driver and the timer, so every yield lets a customer who knocked, or
//! whose order line arrived, take a turn first.
//!
//! How it differs from its siblings: it is the only fix that adds no
//! thread. Every other one moves the chop to another thread.
//!
//! **Its weakness, measured:** one thread does all the chopping, so the
//! second core stays idle and the kitchen can never chop faster than one
//! core. `big-order` is light enough for one core; `banquet` is not, and
//! there the makespan is about the sum of all the chopping, twice that of
//! a fix that chops on two cores. Slicing also costs a little on every
//! slice, and it needs work that *can* be cut: a call into a library that
//! parses, compresses or hashes a large input in one go cannot be sliced
//! from the outside. tokio's cooperative budget does not do it for you
//! either: it makes tokio's own resources return `Pending` after a while,
//! but cannot interrupt a loop that never touches them.

use std::io;
use std::net::TcpListener as StdListener;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step, Work};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::task::{JoinSet, yield_now};
use tokio::time::{sleep, timeout};

// ANCHOR: slice
/// The most work a cook does between two `.await`s: 100 units, about
/// 100 µs, the top of the 10–100 µs rule of thumb.
pub const SLICE: Work = Work(100);
// ANCHOR_END: slice

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Partitioning: one event loop, every chop cut into slices of \
            about 100 µs with a yield between them.",
    // One thread, as in `blocking-blocked`: only 1 is accepted.
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
    // The same one-thread event loop as `blocking-blocked`: the fix is in
    // the cook, not in the runtime.
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
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
    // A JoinSet owns every customer's task: none outlives the restaurant.
    let mut customers = JoinSet::new();
    loop {
        // No poll lasts longer than a slice now. The loop polls the driver,
        // and so learns of a knock at the door, when its queue of ready
        // tasks runs dry or after 61 polls (`event_interval`), whichever
        // comes first; a yielding cook waits until then (tokio 1.54.1
        // defers its wake-up). So with n cooks chopping, the door is looked
        // at after one slice from each: about n × 100 µs, 61 slices at most.
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    customers.spawn(attend(stream, shift.clone()));
                }
                // Never fatal: out of descriptors, a reset. Back off.
                Err(e) => {
                    eprintln!("blocking-yield-now: accept failed: {e}");
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
/// and hand over the plate. `blocking-blocked`'s, without the monitor.
async fn attend(mut stream: TcpStream, shift: Shift) {
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
        // A slice panics inside the cook's poll, on the loop's thread;
        // tokio catches it around that task's poll and the JoinHandle
        // brings it here, where the order is known.
        let reply = match tokio::spawn(cook(ticket)).await {
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
/// A cook: runs the recipe's steps in order and serves the plate, never
/// holding the thread for more than one slice.
async fn cook(ticket: Ticket) -> String {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => {
                // `chop_slice` does at most one slice and remembers where
                // it stopped; it returns true once the chop is done. The
                // digest comes out the same as one `chop(work)`.
                while !plate.chop_slice(work, SLICE) {
                    // Back to the loop: the door, the customers and the
                    // other cooks get their turn, then this cook carries on.
                    yield_now().await;
                }
            }
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

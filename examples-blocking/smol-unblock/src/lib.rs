//! # blocking-smol-unblock: smol's event loop, chops on `blocking`'s pool
//!
//! ```text
//! cargo run --release -p blocking-smol-unblock -- --preset big-order
//! ```
//!
//! The `spawn-blocking` shape with smol's parts. The event loop is a
//! single-threaded `LocalExecutor` driven by `smol::block_on` on the
//! caller's thread: it accepts customers, greets and reads each one in a
//! task of its own, rings them up and waits out every simmer; when no task
//! is ready, `block_on` waits on async-io's reactor (sockets and timers).
//! Each chop goes to the `blocking` crate's pool with `smol::unblock`, and
//! the cook awaits the task it returns. The loop itself never chops.
//!
//! **What `--cooks` controls** (read from `blocking` 1.7.0's source): the
//! pool's *cap*, set with `blocking::set_max_blocking_threads`. The pool
//! is one per process and starts threads on demand, so `--cooks` is a
//! ceiling, not a count, shared with every other user of the pool.
//!
//! **Closing.** Each customer's task holds a clone of one channel's
//! sender; at closing the loop stops accepting, drops its own sender and
//! waits until `recv` says every clone is gone: every customer inside has
//! been served. The pool cannot be joined, and in 1.7.0 an idle thread
//! leaves only if the pool is over its cap: what outlives `serve` is idle
//! threads, never work.
//!
//! How it differs from its siblings: the design of `spawn-blocking`, with
//! a pool that belongs to the process rather than to a runtime.
//!
//! **Its weakness, measured:** `spawn-blocking`'s (the chopping threads and
//! the loop share the cores; a salad's chop waits behind cakes; two
//! hand-offs per chop: order latency on `big-order`), plus a pool that
//! neither the model nor its caller can shut down.

use std::io;
use std::net::TcpListener as StdListener;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
use smol::channel::{self, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer, unblock};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A one-thread smol event loop; chops sent to the blocking crate's \
            pool with unblock.",
    cooks: Cooks::Cores {
        what: "cap on the blocking crate's threads that chop, beside one event-loop thread",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};

// ANCHOR: serve
/// Caps `blocking`'s pool at `cooks` threads, then runs the restaurant on a
/// single-threaded executor on this thread until closing time and until
/// every customer inside is served.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // Process-wide, and it overrides `BLOCKING_MAX_THREADS`. Nothing to
    // build: the pool starts its first thread with the first chop.
    let cap = NonZeroUsize::new(cooks).ok_or("at least one cook is needed")?;
    blocking::set_max_blocking_threads(cap);
    // The pool must not be empty when the OS first refuses it a thread.
    // blocking 1.7.0's `grow_pool` then spins for ever, holding the pool's
    // lock, on the event loop's thread: it lowers its limit to the threads
    // it has, but never below one, so with none it tries again at once
    // (smol-rs/blocking#79). With one thread alive, a refusal only lowers
    // the limit, and its threads never leave while at or under the limit:
    // the pool carries on with the threads it has. So ask the OS for that
    // first thread, and for async-io's reactor thread, which async-io 2.6.0
    // starts on first use with `.expect("cannot spawn async-io thread")`
    // (driver.rs, `unparker`); then start the pool's first thread now.
    restaurant::limits::headroom(2)?;
    start_the_pool()?;
    // A LocalExecutor runs its tasks only inside `run`, on the thread that
    // calls it: here, in `block_on`, on this thread. That is the event loop.
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(restaurant(&executor, listener, shift)))
}
// ANCHOR_END: serve

/// How often [`start_the_pool`] asks the OS whether it refuses threads,
/// while the pool's first thread has not come.
const FIRST_THREAD_CHECK: Duration = Duration::from_millis(50);

/// Starts `blocking`'s first pool thread, or returns the refusal.
///
/// [`restaurant::limits::headroom`] shows the room, but another process
/// of the same user (the customers', in a night) can take it before the
/// pool asks; then `unblock` spins in `grow_pool` (blocking 1.7.0) and
/// never returns. So the first `unblock` is made on a starter thread of
/// its own, and while it has not returned, this thread asks the OS for a
/// thread itself: a refusal means the pool may be spinning, and `serve`
/// ends with it (a starter left spinning ends with the process, which
/// ends when `serve` returns its error). A thread granted means the pool
/// is only slow: wait on.
fn start_the_pool() -> Result<(), BoxError> {
    let (started, first) = mpsc::channel();
    let starter = thread::Builder::new()
        .name("pool-starter".into())
        .spawn(move || {
            // The pool's thread starts inside `unblock`; running the
            // empty job proves it works. futures-lite's `block_on`, not
            // async-io's: it starts no reactor thread.
            smol::future::block_on(unblock(|| ()));
            let _ = started.send(());
        })
        .map_err(|e| {
            restaurant::limits::thread_refused_for("the pool's starter", e)
        })?;
    loop {
        match first.recv_timeout(FIRST_THREAD_CHECK) {
            Ok(()) => {
                // It has sent its last word: the join is immediate.
                let _ = starter.join();
                return Ok(());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the pool's starter ended before the pool's \
                            first thread ran"
                    .into());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let check = thread::Builder::new()
                    .name("pool-check".into())
                    .spawn(|| ())
                    .map_err(|e| {
                        restaurant::limits::thread_refused_for(
                            "the blocking pool's first thread",
                            e,
                        )
                    })?;
                // The closure is empty: it cannot panic.
                let _ = check.join();
            }
        }
    }
}

/// What woke the door: closing time, or a customer (or an accept error).
enum Door {
    Closing,
    Accepted(io::Result<(TcpStream, std::net::SocketAddr)>),
}

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each, all
/// on this one thread.
async fn restaurant(
    executor: &LocalExecutor<'_>,
    listener: StdListener,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-net registers the std listener (its backlog already sized)
    // with the reactor and makes it non-blocking.
    let listener = TcpListener::try_from(listener)?;
    // Who is inside: each customer's task holds a clone of `inside`. No
    // message is ever sent; the channel only counts its senders.
    let (inside, all_left) = channel::bounded::<()>(1);
    // The executor is ready: let the customers in.
    shift.open();
    loop {
        // `or` polls both and takes whichever is ready first: smol's
        // `select!` for two futures of one type.
        let closing = async {
            shift.closed().await;
            Door::Closing
        };
        let accepted = async { Door::Accepted(listener.accept().await) };
        match closing.or(accepted).await {
            Door::Closing => break,
            Door::Accepted(Ok((stream, _))) => {
                let visit = attend(stream, shift.clone(), inside.clone());
                // Detached: the task runs on until the customer leaves;
                // its clone of `inside` says when.
                executor.spawn(visit).detach();
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal. Back off a little; retry.
            Door::Accepted(Err(e)) => {
                eprintln!("blocking-smol-unblock: accept failed: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Closing time: the kernel refuses newcomers once the listener is
    // gone. `recv` fails once our sender and every customer's are gone,
    // that is, once everyone inside has been served.
    drop(listener);
    drop(inside);
    let _ = all_left.recv().await;
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, cook it, hand over the
/// plate. Many run at once on the one loop; none of them ever chops here.
/// `_inside` is dropped when the visit ends, and that is all it is for.
async fn attend(mut stream: TcpStream, shift: Shift, _inside: Sender<()>) {
    // I/O errors on this connection are this customer's alone: the visit
    // ends quietly.
    let _ = async {
        stream.write_all(wire::NEXT.as_bytes()).await?;
        // The line and its reader live only in this block: both are gone
        // before the wait for the cook, most of a visit, so a waiting
        // customer holds no read buffer (8 KiB each). The buffer keeps its
        // default size on purpose: one of MAX_LINE would leave the rest of
        // an oversized line unread, and closing a socket with unread bytes
        // sends a reset that can overtake the ERROR. Bytes after the line
        // are not part of the protocol; they go with the buffer.
        let heard = {
            let mut line = String::new();
            // A TcpStream of async-net is a shared handle: one clone reads.
            let mut reader =
                BufReader::new(stream.clone()).take(wire::MAX_LINE as u64);
            // At most MAX_LINE bytes, for at most PATIENCE; and if it is
            // closing time before the order is said, it was never an order.
            let patience = async {
                Timer::after(wire::PATIENCE).await;
                Err(io::ErrorKind::TimedOut.into())
            };
            let read =
                async { Some(reader.read_line(&mut line).or(patience).await) };
            let closing = async {
                shift.closed().await;
                None
            };
            let Some(read) = read.or(closing).await else {
                return Ok(());
            };
            wire::heard(read, &line)
        };
        let mut ticket = match heard {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                let refusal = wire::error_line(&why);
                return stream.write_all(refusal.as_bytes()).await;
            }
        };
        // The till's own chop is a few microseconds: fine on the loop.
        stream.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        let reply = match cook(ticket).await {
            Ok(plate) => plate,
            // A chop panicked on a pool thread and was raised again here,
            // where the order is known: report it now.
            Err(payload) => {
                shift.cook_panicked(id, &*payload);
                wire::error_line("the cook panicked")
            }
        };
        stream.write_all(reply.as_bytes()).await
    }
    .await;
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: waits on the event loop, chops on `blocking`'s pool. Returns the
/// plate's line, or the payload of a chop that panicked.
async fn cook(ticket: Ticket) -> thread::Result<String> {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => {
                // The closure runs on a pool thread, so it owns the plate
                // and gives it back as its result.
                let chopping = unblock(move || {
                    plate.chop(work);
                    plate
                });
                // A panic in the closure is raised again by this await;
                // `catch_unwind` turns it back into a value, here, where
                // the order is known. (AssertUnwindSafe: the plate it
                // would have returned is dropped with the panic.)
                plate = AssertUnwindSafe(chopping).catch_unwind().await?;
            }
            // An async-io timer: the task is parked, the thread is free.
            Step::Simmer(d) => {
                Timer::after(d).await;
            }
        }
    }
    Ok(plate.serve())
}
// ANCHOR_END: cook

//! # concurrency-futures: the futures crate's own executors
//!
//! ```text
//! cargo run --release -p concurrency-futures -- --preset takeout
//! ```
//!
//! The `futures` crate defines the traits every runtime builds on, and it
//! also ships two small executors of its own: `block_on`, which runs one
//! future on the calling thread, and a `ThreadPool`. This model uses them
//! in the layout of a server that the other executors here share: the
//! accept loop is the future passed to `block_on` on the calling thread,
//! and every customer (greet, read the order, ring it up, hand over the
//! plate) and every cook is a task on a `ThreadPool` of `--cooks` threads
//! (default: one per core).
//!
//! What the runtime is made of, and what it is not (futures 0.3.34):
//!
//! - the **executors**: `block_on` polls its one future and parks the
//!   thread when it is not ready; the `ThreadPool` is `--cooks` threads
//!   named `cook-N` sharing *one* queue, a std `mpsc` channel with a
//!   `Mutex` around each end, the same design as
//!   `parallelism-thread-pool`. No local queues, no work-stealing;
//! - **no reactor and no timer.** futures knows how to poll and wake, not
//!   how to wait for a socket or for time. This model takes both from one
//!   more crate, **async-io** (smol's): `Async<TcpListener>` and
//!   `Async<TcpStream>` register the sockets with its reactor (epoll on
//!   Linux), `Timer` waits for the patience and the simmers. Nothing here
//!   calls async-io's `block_on`, so its helper thread, `async-io`,
//!   started on first use and alive until the process exits, does all the
//!   waiting in epoll and wakes the tasks, which puts each one back on its
//!   executor's queue: one hop between threads for every wake-up.
//!
//! Threads: the caller (the door), `--cooks` pool threads (customers and
//! cooks alike), and `async-io`.
//!
//! How it differs from its siblings: the fewest moving parts of any
//! executor here, and it shows what a runtime adds to them. Unlike tokio or
//! smol it spreads work with one locked queue, it needs its reactor and
//! timers from another crate, and its pool has no `join`.
//!
//! **Its weakness, measured:** as everywhere, a chop holds its pool thread
//! until it is done, and customers share those threads with the cooks: a
//! customer who walks in while every thread chops waits to be greeted
//! (`tests/threads.rs`). The one locked queue and the hop through the
//! `async-io` thread set its design apart from tokio's and smol's, but no
//! cost of theirs is claimed here: on `takeout`, thousands of short
//! tasks, compare its server CPU with theirs in the book's results.

use std::future::Future;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::mpsc;

use async_io::{Async, Timer};
use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::executor::{self, ThreadPool};
use futures::future::{self, FutureExt as _};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::task::SpawnExt as _;
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Customers and cooks as tasks on the futures crate's own \
            ThreadPool; no reactor, so async-io's.",
    cooks: Cooks::Cores {
        what: "threads of the futures ThreadPool",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Starts a `ThreadPool` of `cooks` threads, runs the door on the calling
/// thread until closing time and every customer is served, then lets the
/// pool close and waits for its threads.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // `ThreadPool` has no `join`: its threads leave on their own once the
    // last handle to the pool is gone. Each thread runs `before_stop` as it
    // leaves and then drops its copy of the closure, and with it a copy of
    // `left`; when the last copy is gone, `gone` below stops waiting.
    let (left, gone) = mpsc::channel::<usize>();
    let pool = ThreadPool::builder()
        .pool_size(cooks)
        .name_prefix("cook-")
        .before_stop(move |i| {
            // Nobody listening only means `serve` already returned.
            let _ = left.send(i);
        })
        // A refused thread comes back as the error, and dropping the pool
        // sends the threads already started home.
        .create()
        .map_err(|e| {
            restaurant::limits::thread_refused_for(format!("{cooks} cooks"), e)
        })?;
    // async-io's reactor thread is one more, started on first use with
    // `.expect("cannot spawn async-io thread")` (async-io 2.6.0,
    // driver.rs, `unparker`): refused, it would be a panic at the door.
    // Ask the OS for it first (restaurant::limits).
    restaurant::limits::headroom(1)?;

    // `block_on` polls the door, and only the door, on this thread,
    // parking it whenever the door is not ready. It returns once closing
    // time has come and the last customer has left.
    let served = executor::block_on(restaurant(&pool, listener, shift));

    // Every task holds a handle to the pool (to be queued again when it is
    // woken), so the pool closes only when this one and every task's are
    // gone: the threads finish what is queued, then leave.
    drop(pool);
    // Wait for every thread to leave: nothing of ours outlives `serve`
    // (the global `async-io` thread, which is not ours, stays).
    let threads_left = gone.iter().count();
    debug_assert_eq!(threads_left, cooks);
    served
}
// ANCHOR_END: serve

// ANCHOR: first
/// Whichever of `a` and `b` finishes first; `a` on a tie. futures'
/// `select` takes two `Unpin` futures and hands back the loser too; the
/// loser is dropped here, which cancels it.
async fn first<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    future::select(pin!(a), pin!(b)).await.factor_first().0
}
// ANCHOR_END: first

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each on the
/// pool, then waits for the last one to leave.
async fn restaurant(
    pool: &ThreadPool,
    listener: TcpListener,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-io takes over the std listener (bound, its backlog sized by
    // `restaurant::door::bind`): makes it non-blocking and registers it
    // with the reactor.
    let listener = Async::new(listener)?;
    // The pool's threads are up and the door is open.
    shift.open();
    // A task spawned with `spawn_ok` has no handle, so nothing says when
    // the last customer has left. Each customer carries a clone of
    // `inside`; once every clone is dropped, the stream `all_gone` ends,
    // and that is the signal.
    let (inside, mut all_gone) = unbounded::<()>();
    loop {
        let closing = shift.closed().map(|()| None);
        match first(closing, listener.accept().map(Some)).await {
            None => break,
            Some(Ok((stream, _))) => {
                // A pool task must own what it uses: it gets its own
                // handle to the pool (an `Arc` inside).
                let customer =
                    attend(stream, pool.clone(), shift.clone(), inside.clone());
                // `spawn_ok` cannot fail, and hands nothing back: right for
                // a task that returns nothing and catches its cook's panic
                // itself (see the cashier).
                pool.spawn_ok(customer);
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal. Back off a little; retry.
            Some(Err(e)) => {
                eprintln!("concurrency-futures: accept failed: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Closing time: drop the listener, so the kernel refuses newcomers,
    // then wait for the last customer to leave.
    drop(listener);
    drop(inside);
    // Imported here only: an async-io `Timer` is a `Stream` as well as a
    // `Future`, and `map` on one would be ambiguous elsewhere.
    use futures::StreamExt as _;
    while all_gone.next().await.is_some() {}
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, send it to the
/// kitchen, and hand over the plate. Many of these run at once, on the
/// pool's threads, beside the cooks. `_inside` is dropped when the
/// customer leaves.
async fn attend(
    stream: Async<TcpStream>,
    kitchen: ThreadPool,
    shift: Shift,
    _inside: UnboundedSender<()>,
) {
    // A customer who hangs up costs only their own order: I/O errors on
    // this connection are theirs, so they end the visit quietly.
    let _ = async {
        // `&Async<TcpStream>` reads and writes, so one socket serves both.
        let mut writer = &stream;
        writer.write_all(wire::NEXT.as_bytes()).await?;
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
            let mut reader =
                BufReader::new(&stream).take(wire::MAX_LINE as u64);
            let read = reader.read_line(&mut line).map(Some);
            let patience = Timer::after(wire::PATIENCE)
                .map(|_| Some(Err(io::ErrorKind::TimedOut.into())));
            let closing = shift.closed().map(|()| None);
            let Some(read) = first(read, first(patience, closing)).await else {
                return Ok(());
            };
            wire::heard(read, &line)
        };
        let mut ticket = match heard {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                return writer
                    .write_all(wire::error_line(&why).as_bytes())
                    .await;
            }
        };
        // The till's own chop is short: fine on a pool thread.
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        // `spawn_with_handle` wraps the cook in a `Remote` that catches a
        // panic on the pool thread (which survives it) and sends it to the
        // handle. (`spawn_ok` hands nothing back: a panicking cook would
        // kill its pool thread, and the plate would simply never come.)
        let reply = match kitchen.spawn_with_handle(cook(ticket)) {
            // Awaiting a `RemoteHandle` whose cook panicked resumes that
            // panic right here; `catch_unwind` turns it back into a value
            // the moment it happens. `AssertUnwindSafe` is sound because
            // the cook's state died with it and the handle is used up.
            Ok(handle) => match AssertUnwindSafe(handle).catch_unwind().await {
                Ok(plate) => plate,
                Err(payload) => {
                    shift.cook_panicked(id, &*payload);
                    wire::error_line("the cook panicked")
                }
            },
            // A `ThreadPool` takes every task while a handle to it lives.
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
            // CPU work runs right here and holds this pool thread until it
            // is done.
            Step::Chop(work) => plate.chop(work),
            // The `Timer` registers with async-io's reactor and the task
            // returns `Pending`; the pool thread takes the next task. The
            // `async-io` thread wakes it, which queues it on the pool again.
            Step::Simmer(d) => {
                Timer::after(d).await;
            }
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

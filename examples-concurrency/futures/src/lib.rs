//! # concurrency-futures: the futures crate's own executors
//!
//! ```text
//! cargo run --release -p concurrency-futures -- --preset takeout
//! ```
//!
//! The `futures` crate defines the traits every runtime builds on, and it
//! also ships two small executors of its own; this model uses both. The
//! front of house is a `LocalPool` run by the calling thread: the accept
//! loop, and a task per customer that greets, reads the order and rings it
//! up. The kitchen is a `ThreadPool` of `--cooks` threads (default: one
//! per core), where every cook is a task.
//!
//! What the runtime is made of, and what it is not (futures 0.3.34):
//!
//! - the **executors**: the `LocalPool` polls its tasks on the one thread
//!   that runs it and parks that thread when none is ready; the
//!   `ThreadPool` is `--cooks` threads named `cook-N` sharing *one* queue,
//!   a std `mpsc` channel with a `Mutex` around each end, the same design
//!   as `parallelism-thread-pool`. No local queues, no work-stealing;
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
//! Threads: the caller (the door and the cashier), `--cooks` pool
//! threads, and `async-io`.
//!
//! How it differs from its siblings: the fewest moving parts of any
//! executor here, and it shows what a runtime adds to them. Unlike tokio or
//! smol it spreads work with one locked queue, and it needs its reactor
//! and timers from another crate. Like `concurrency-smol`, it gives the
//! cashier a thread that no cook can take.
//!
//! **Its weakness, measured:** that one queue, and the hop. Every spawn
//! and every wake-up of a cook takes the same locks, and every one starts
//! on the `async-io` thread; on `takeout`, thousands of short tasks, that
//! is the cost to compare with the per-thread queues of tokio and smol
//! (server CPU, in the book's results). And, as everywhere, a chop holds
//! its pool thread until it is done.

use std::future::Future;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::mpsc;

use async_io::{Async, Timer};
use futures::executor::{LocalPool, LocalSpawner, ThreadPool};
use futures::future::{self, FutureExt as _};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::task::{LocalSpawnExt as _, SpawnExt as _};
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as tasks on the futures crate's own ThreadPool, the \
            cashier on its LocalPool; no reactor, so async-io's.",
    cooks: Cooks::Cores {
        what: "threads of the futures ThreadPool",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Starts a `ThreadPool` of `cooks` threads, runs the front of house on a
/// `LocalPool` on the calling thread until closing time and every customer
/// is served, then lets the pool close and waits for its threads.
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
    let kitchen = ThreadPool::builder()
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

    let mut front = LocalPool::new();
    // `run_until` polls the door, and every customer's task beside it, on
    // this thread, parking it whenever none of them is ready.
    let served =
        front.run_until(door(front.spawner(), &kitchen, listener, shift));
    // The door is shut: `run` polls the customers still inside until the
    // last one has left (it returns once the pool has no task left).
    front.run();

    // Every task holds a handle to the pool (to be queued again when it is
    // woken), so the pool closes only when this one and every task's are
    // gone: the threads finish what is queued, then leave.
    drop(kitchen);
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
/// `LocalPool`.
async fn door(
    customers: LocalSpawner,
    kitchen: &ThreadPool,
    listener: TcpListener,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-io takes over the std listener (bound, its backlog sized by
    // `restaurant::door::bind`): makes it non-blocking and registers it
    // with the reactor.
    let listener = Async::new(listener)?;
    // The kitchen's threads are up and the door is open.
    shift.open();
    loop {
        let closing = shift.closed().map(|()| None);
        match first(closing, listener.accept().map(Some)).await {
            None => break,
            Some(Ok((stream, _))) => {
                // A `LocalPool` task must own what it uses: it gets its own
                // handle to the kitchen (an `Arc` inside).
                let customer = attend(stream, kitchen.clone(), shift.clone());
                // Fails only if the `LocalPool` is gone, and it runs us.
                customers.spawn_local(customer)?;
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal. Back off a little; retry.
            Some(Err(e)) => {
                eprintln!("concurrency-futures: accept failed: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Dropping the listener makes the kernel refuse newcomers.
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, send it to the
/// kitchen, and hand over the plate. Many of these run at once, all on the
/// calling thread, where no cook ever chops.
async fn attend(stream: Async<TcpStream>, kitchen: ThreadPool, shift: Shift) {
    // A customer who hangs up costs only their own order: I/O errors on
    // this connection are theirs, so they end the visit quietly.
    let _ = async {
        // `&Async<TcpStream>` reads and writes, so one socket serves both.
        let mut writer = &stream;
        writer.write_all(wire::NEXT.as_bytes()).await?;
        let mut line = String::new();
        // At most MAX_LINE bytes, for at most PATIENCE; and if it is
        // closing time before the order is said, it was never an order.
        let mut reader = BufReader::new(&stream).take(wire::MAX_LINE as u64);
        let read = reader.read_line(&mut line).map(Some);
        let patience = Timer::after(wire::PATIENCE)
            .map(|_| Some(Err(io::ErrorKind::TimedOut.into())));
        let closing = shift.closed().map(|()| None);
        let Some(read) = first(read, first(patience, closing)).await else {
            return Ok(());
        };
        let mut ticket = match wire::heard(read, &line) {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                return writer
                    .write_all(wire::error_line(&why).as_bytes())
                    .await;
            }
        };
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

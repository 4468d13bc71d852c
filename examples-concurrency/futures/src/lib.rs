//! # concurrency-futures: the futures crate's own thread pool
//!
//! ```text
//! cargo run --release -p concurrency-futures -- --preset takeout
//! ```
//!
//! The `futures` crate defines the traits every runtime builds on, and it
//! also ships two small executors of its own: `ThreadPool`, used here, and
//! `LocalPool`, a single-threaded one (see the chapter). Every cook is a
//! task spawned on a `ThreadPool` of `--cooks` threads (default: one per
//! core); the cashier is the future passed to `futures::executor::block_on`
//! on the calling thread.
//!
//! What the runtime is made of, and what it is not:
//!
//! - the **executor**: `--cooks` threads named `cook-N` sharing *one* queue,
//!   a std `mpsc` channel with a `Mutex` around each end, the same design
//!   as `parallelism-thread-pool`. No local queues, no work-stealing: every
//!   task that is woken is sent down that channel, and whichever thread
//!   takes the lock first polls it;
//! - **no reactor and no timer.** futures knows how to poll and wake, not
//!   how to wait for time or sockets. The simmers use `futures-timer`,
//!   whose `Delay` registers with a global helper thread, `futures-timer`:
//!   it keeps the deadlines in a heap, parks until the next one is due, and
//!   wakes the task, which puts it back on the pool's queue. That costs one
//!   more thread, started on first use and alive until the process exits,
//!   and one hop between threads for every wake-up; in return a deadline is
//!   met to within the operating system's wake-up latency, a fraction of a
//!   millisecond, with no ticks to round up to. (`async-io`'s `Timer` would
//!   have done as well, with its own `async-io` thread and its reactor.)
//!
//! Threads: the caller (the cashier), `--cooks` pool threads, and
//! `futures-timer`.
//!
//! How it differs from its siblings: the fewest moving parts of any
//! executor here, and it shows what a runtime adds to them. Unlike tokio or
//! smol it spreads work with one locked queue, and it needs a timer from
//! another crate.
//!
//! **Its weakness, measured:** that one queue. Every spawn and every
//! wake-up takes the same locks, and the timer thread wakes every simmering
//! cook one at a time, so on `takeout`, thousands of short tasks, it spends
//! more CPU for the same work than the executors with per-thread queues
//! (`strace -f -c` shows several times as many `futex` calls as tokio's).
//! And, as everywhere, a chop holds its pool thread until it is done.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Duration;

use futures::executor::{ThreadPool, block_on};
use futures::future::{FutureExt as _, RemoteHandle};
use futures::task::SpawnExt as _;
use futures_timer::Delay;
use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as tasks on the futures crate's own ThreadPool; no \
            reactor, so the timer comes from futures-timer.",
    cooks: Cooks::Cores("threads of the futures ThreadPool"),
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Starts a `ThreadPool` of `cooks` threads, runs the cashier on the
/// calling thread, then lets the pool close and waits for its threads.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
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
        .create()?;
    // The first `Delay` in a process starts the `futures-timer` thread.
    // Start it now, as part of setting up, so that starting it never counts
    // as a customer's wait (and so that two cooks never race to start it:
    // the loser's thread would be started and stopped again).
    block_on(Delay::new(Duration::ZERO));

    // `block_on` polls the cashier on this thread and parks the thread
    // whenever the cashier waits: a timer, or a plate not yet ready.
    let served = block_on(restaurant(&pool, orders));

    // Every task holds a handle to the pool (to be queued again when it is
    // woken), so the pool closes only when this one and every task's are
    // gone: the threads finish what is queued, then leave.
    drop(pool);
    // Wait for every thread to leave: nothing of ours outlives `serve`
    // (the global `futures-timer` thread, which is not ours, stays).
    let threads_left = gone.iter().count();
    debug_assert_eq!(threads_left, cooks);
    served
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(
    pool: &ThreadPool,
    orders: Vec<Order>,
) -> Result<Vec<Plate>, BoxError> {
    // The pool's threads are up; opening time starts now.
    let clock = Clock::open();
    let mut tickets: Vec<(u64, RemoteHandle<Plate>)> =
        Vec::with_capacity(orders.len());

    for mut order in orders {
        // A `Delay` counts from its creation; the cashier's thread parks
        // until the timer thread wakes it. Only that thread can fire a
        // `Delay`, even one of zero length, so when the customer is already
        // waiting (a burst) the cashier skips the round trip.
        let wait = clock.until(order.arrival());
        if !wait.is_zero() {
            Delay::new(wait).await;
        }
        order.ring_up(&clock);
        let id = order.id();
        // `spawn_with_handle` wraps the cook in a `Remote` that catches a
        // panic on the pool thread (which survives it) and sends it to the
        // handle. (`spawn_ok` hands nothing back: a panicking cook would
        // kill its pool thread, and the plate would simply never come.) It
        // fails only if the executor is shutting down, which ours is not
        // until `serve` drops it.
        let handle = pool.spawn_with_handle(cook(order, clock))?;
        tickets.push((id, handle));
    }

    // The pass: await every handle, in order of arrival.
    let mut plates = Vec::with_capacity(tickets.len());
    for (id, handle) in tickets {
        // Awaiting a `RemoteHandle` whose cook panicked resumes that panic
        // right here, in the cashier. `catch_unwind` turns it back into a
        // value; `AssertUnwindSafe` is sound because the cook's state died
        // with it and the handle is not used again.
        match AssertUnwindSafe(handle).catch_unwind().await {
            Ok(plate) => plates.push(plate),
            // Returning drops the other handles. Dropping a `RemoteHandle`
            // wakes its task, which then drops the cook instead of polling
            // it: no cook goes on cooking for nobody.
            Err(payload) => {
                return Err(CookPanicked::new(id, &*payload).into());
            }
        }
    }
    Ok(plates)
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: runs the recipe's steps in order and serves the plate.
async fn cook(order: Order, clock: Clock) -> Plate {
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
        match *step {
            // CPU work runs right here and holds this pool thread until it
            // is done.
            Step::Chop(work) => plate.chop(work),
            // The `Delay` registers with the `futures-timer` thread and the
            // task returns `Pending`; the pool thread takes the next task.
            Step::Simmer(d) => Delay::new(d).await,
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

//! # blocking-smol-unblock: smol's event loop, chops on `blocking`'s pool
//!
//! ```text
//! cargo run --release -p blocking-smol-unblock -- --preset big-order
//! ```
//!
//! The `spawn-blocking` shape with smol's parts. The event loop is a
//! single-threaded `LocalExecutor` driven by `smol::block_on` on the
//! caller's thread; the cashier and every cook's waiting run there. Each
//! chop goes to the `blocking` crate's thread pool with `smol::unblock`,
//! and the cook awaits the returned task.
//!
//! What the service is made of:
//!
//! - **one event-loop thread**, the caller's: `block_on` polls the
//!   executor's tasks and, when none is ready, waits on the **reactor**
//!   (async-io's, which also keeps the **timers**);
//! - the **"async-io" thread**, which async-io starts once per process to
//!   drive the reactor when no `block_on` is doing so; here it mostly
//!   sleeps, and it is never joined;
//! - **`blocking`'s pool**, one per process: threads started on demand,
//!   taking closures from one FIFO queue, each leaving after 500 ms idle.
//!
//! **What `--cooks` controls, exactly** (read from `blocking` 1.7's
//! source): the pool's *cap*, set with `blocking::set_max_blocking_threads`
//! at the start of `serve`. Before 1.7 the only way was the
//! `BLOCKING_MAX_THREADS` environment variable, which the pool reads the
//! first time it needs a thread and only if no cap has been set (default
//! 500); so here the variable has no effect. The cap is process-wide: it
//! also applies to every other user of the pool (`smol::fs`,
//! `smol::process`, `Unblock`). A new thread is started only when the
//! queued closures are more than five times the idle threads, so a run may
//! use fewer than `--cooks` and a closure may wait in the queue while a
//! thread sits idle; and if the cap is lowered, threads above it leave
//! only once idle.
//!
//! **Shutdown.** The pool cannot be joined: its threads are detached and
//! leave on their own half a second after their last closure. `serve`
//! awaits every chop it started (except after a failure, when the chops
//! already running finish unobserved: a closure cannot be cancelled), so
//! what outlives it is idle threads, not work.
//!
//! **Panics.** `blocking` (since 1.6) catches a panic in the closure and
//! raises it again in whoever awaits the task, and smol's executor does the
//! same one level up. The cook catches it at the first level, where the
//! order is known.
//!
//! How it differs from its siblings: the same design as `spawn-blocking`,
//! with a pool that belongs to the process rather than to a runtime.
//!
//! **Its weakness, measured:** `spawn-blocking`'s (chopping threads and the
//! loop share two cores; a salad's chop waits behind cakes; two hand-offs
//! per chop: see order latency on `big-order`), plus a pool that neither
//! the model nor its caller can shut down.

use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};
use smol::future::FutureExt;
use smol::{LocalExecutor, Timer, unblock};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A one-thread smol event loop; chops sent to the blocking crate's \
            pool with unblock.",
    cooks: Cooks::Fixed(
        4,
        "cap on the blocking crate's threads that chop, \
                            beside one event-loop thread",
    ),
    serve,
};

// ANCHOR: serve
/// Caps `blocking`'s pool at `cooks` threads, then runs the restaurant on a
/// single-threaded executor on this thread until every plate is back.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // Process-wide, and it overrides `BLOCKING_MAX_THREADS`. Nothing to
    // build: the pool starts its first thread with the first chop.
    let cap = NonZeroUsize::new(cooks).ok_or("at least one cook is needed")?;
    blocking::set_max_blocking_threads(cap);
    // A LocalExecutor runs its tasks only inside `run`, on the thread that
    // calls it: here, in `block_on`, on this thread. That is the event loop.
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(restaurant(&executor, orders)))
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(
    executor: &LocalExecutor<'_>,
    orders: Vec<Order>,
) -> Result<Vec<Plate>, BoxError> {
    // The executor is ready: opening time.
    let clock = Clock::open();
    let mut cooks = Vec::with_capacity(orders.len());
    for mut order in orders {
        // An async-io timer: the loop's thread never chops, so it is back
        // in the reactor, and this wakes on time.
        Timer::at(clock.at(order.arrival())).await;
        order.ring_up(&clock);
        // `spawn` queues the cook on this executor and returns its task.
        cooks.push(executor.spawn(cook(order, clock)));
    }

    // The pass, in order of arrival: every cook runs meanwhile, so the
    // order of awaiting changes nothing but when we notice a failure.
    let mut plates = Vec::with_capacity(cooks.len());
    for cook in cooks {
        // On an error, returning drops the remaining tasks, which cancels
        // them: no cook outlives the restaurant.
        plates.push(cook.await?);
    }
    Ok(plates)
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: waits on the event loop, chops on `blocking`'s pool.
async fn cook(order: Order, clock: Clock) -> Result<Plate, CookPanicked> {
    let id = order.id();
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => {
                // The closure runs on a pool thread, so it owns the plate
                // and gives it back as its result.
                let chopping = unblock(move || {
                    plate.chop(work);
                    plate
                });
                // A panic in the closure is re-raised by this await;
                // `catch_unwind` turns it back into a value, here, where
                // the order is known. (AssertUnwindSafe: the plate it
                // would have returned is dropped with the panic.)
                plate = AssertUnwindSafe(chopping)
                    .catch_unwind()
                    .await
                    .map_err(|payload| CookPanicked::new(id, &*payload))?;
            }
            Step::Simmer(d) => {
                Timer::after(d).await;
            }
        }
    }
    Ok(plate.serve(&clock))
}
// ANCHOR_END: cook

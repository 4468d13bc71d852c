//! # blocking-spawn-blocking: one event loop, chops on the blocking pool
//!
//! ```text
//! cargo run --release -p blocking-spawn-blocking -- --preset big-order
//! ```
//!
//! The architecture of Node.js, in Rust: one thread runs the event loop
//! (the cashier and every cook's waiting), and a small pool of threads
//! beside it does the work that would block the loop. Here that work is
//! every chop: a cook hands it to `tokio::task::spawn_blocking` and awaits
//! the result, so the loop's thread is back at the till at once.
//!
//! What the runtime is made of:
//!
//! - **one event-loop thread**, the caller's, running tokio's
//!   current-thread scheduler and its **timer** inside `block_on`, exactly
//!   as in `blocking-blocked`;
//! - a **blocking pool**: threads started on demand, at most
//!   `--cooks` of them (default 4, libuv's default pool size), each taking
//!   closures from one FIFO queue and parking for up to 10 s when idle.
//!   Dropping the runtime joins them.
//!
//! In Node.js, libuv's pool (also 4 threads unless `UV_THREADPOOL_SIZE`
//! says otherwise) runs file system calls, `dns.lookup`, and some crypto
//! and zlib work; your own JavaScript cannot be sent there, and CPU work
//! needs `worker_threads`. In tokio any closure can go to the pool.
//!
//! How it differs from its siblings: `blocking-blocked` is this code with
//! the chop inline. `rayon-bridge` and `dedicated-thread` send chops to
//! threads the model owns instead of the runtime's own pool;
//! `smol-unblock` does the same as this crate with smol's `blocking` pool.
//!
//! **Its weakness, measured:** a pool of 4 on 2 cores means up to 4
//! chopping threads and the loop's thread share two cores, so the loop
//! gets its turn from the OS scheduler rather than at once, and a short
//! chop that queues behind four cakes waits for one of them to finish (see
//! order latency on `big-order`). Every chop also pays two thread hand-offs,
//! which is more than a salad's chop is worth. And tokio's pool is made
//! for blocking I/O: its default limit is 512 threads, so CPU work sent
//! there needs a cap like `--cooks` here.

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};
use tokio::runtime::Builder;
use tokio::task::{JoinSet, spawn_blocking};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_metrics::TaskMonitor;

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "One event loop, chops on tokio's blocking pool: Node.js's event \
            loop and libuv pool, in Rust.",
    cooks: Cooks::Fixed(4, "threads that chop, beside one event-loop thread"),
    serve,
};

// ANCHOR: serve
/// Builds a current-thread runtime whose blocking pool has at most `cooks`
/// threads, and runs the restaurant on this thread until every plate is
/// back.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    run(orders, cooks, None)
}

/// [`serve`], with every cook's future instrumented by `monitor` (see
/// `blocking-blocked`'s `serve_watched`): the slow-poll report of the fix.
pub fn serve_watched(
    orders: Vec<Order>,
    cooks: usize,
    monitor: &TaskMonitor,
) -> Result<Vec<Plate>, BoxError> {
    run(orders, cooks, Some(monitor.clone()))
}

fn run(
    orders: Vec<Order>,
    cooks: usize,
    monitor: Option<TaskMonitor>,
) -> Result<Vec<Plate>, BoxError> {
    let runtime = Builder::new_current_thread()
        .enable_time()
        // The pool's cap. tokio's default, 512, suits blocking I/O, where
        // threads mostly sleep; for CPU work, threads beyond the cores only
        // take turns. Four is libuv's default, for the comparison.
        .max_blocking_threads(cooks)
        .build()?;
    // Dropping the runtime at the end of `serve` waits for the pool's
    // threads to finish and joins them: nothing outlives the restaurant.
    runtime.block_on(restaurant(orders, monitor))
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(
    orders: Vec<Order>,
    monitor: Option<TaskMonitor>,
) -> Result<Vec<Plate>, BoxError> {
    // Opening time is taken after the runtime is up. The pool's threads are
    // started lazily, by the first chops, so that cost lands on the cooks.
    let clock = Clock::open();
    // The cooks are tasks on the event loop, as in `blocking-blocked`; only
    // their chops leave it.
    let mut kitchen = JoinSet::new();
    for mut order in orders {
        // The loop's thread never chops now, so it is free to notice this
        // timer within a millisecond of the customer's arrival.
        sleep_until(Instant::from_std(clock.at(order.arrival()))).await;
        order.ring_up(&clock);
        let cook = cook(order, clock);
        match &monitor {
            Some(monitor) => kitchen.spawn(monitor.instrument(cook)),
            None => kitchen.spawn(cook),
        };
    }

    // The pass. A cook's chop panic comes back as the cook's own error,
    // already naming its order, so no map of task ids is needed here.
    let mut plates = Vec::with_capacity(kitchen.len());
    while let Some(done) = kitchen.join_next().await {
        // The outer `?` is a JoinError: the cook's own future panicked
        // (outside any chop, which would be a bug) or was aborted (nothing
        // aborts it while the JoinSet is alive). The inner one is the
        // cook's error. Returning drops the JoinSet and aborts the rest.
        plates.push(done??);
    }
    Ok(plates)
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: runs the recipe's steps in order and serves the plate. Waiting
/// happens on the event loop; every chop is sent to the blocking pool.
async fn cook(order: Order, clock: Clock) -> Result<Plate, BoxError> {
    let id = order.id();
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
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
                // hands it back here, where the order is known.
                plate = chopping.await.map_err(|e| -> BoxError {
                    if e.is_panic() {
                        CookPanicked::new(id, &*e.into_panic()).into()
                    } else {
                        // Cancelled: only at runtime shutdown, which cannot
                        // come before the cooks are done.
                        e.into()
                    }
                })?;
            }
            Step::Simmer(d) => sleep(d).await,
        }
    }
    Ok(plate.serve(&clock))
}
// ANCHOR_END: cook

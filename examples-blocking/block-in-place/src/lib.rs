//! # blocking-block-in-place: chop where you are, hand the queue away
//!
//! ```text
//! cargo run --release -p blocking-block-in-place -- --preset big-order
//! ```
//!
//! The cooks are tasks on tokio's multi-thread runtime, as in
//! `concurrency-tokio`, and they chop on the thread that polls them. The
//! difference is one call: each chop runs inside
//! `tokio::task::block_in_place`, which tells the runtime "this thread is
//! about to block". Before running the closure, the runtime hands the
//! worker's *core* (its queue of ready tasks and its turn at the timer) to
//! another thread, which carries on polling everyone else. The chop then
//! runs as ordinary blocking code, with no `'static` closure and nothing
//! moved: it may borrow the plate.
//!
//! What the runtime is made of:
//!
//! - **worker threads**, `--cooks` of them (default: one per core), each
//!   owning a core, stealing work from the others;
//! - a **timer** with millisecond resolution, driven by whichever worker
//!   is idle;
//! - a **blocking pool**, from which `block_in_place` takes the thread
//!   that receives a handed-off core (so a run has more threads than
//!   workers);
//! - the cashier runs in `block_on`, on the caller's thread.
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
//! **Its weakness, measured:** nothing caps how many chops run at once.
//! Each `block_in_place` frees a core, the core picks up the next cook,
//! and that cook may block in place too: on `big-order` the threads
//! multiply (see threads at peak), every chop, even a salad's, pays for a
//! hand-off between threads, and on two cores the threads that chop take
//! turns with the ones that should be polling.

use std::collections::HashMap;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};
use tokio::runtime::Builder;
use tokio::task::{JoinSet, block_in_place};
use tokio::time::{Instant, sleep, sleep_until};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A multi-thread runtime whose cooks chop inside block_in_place, \
            handing their worker's queue to another thread.",
    cooks: Cooks::Cores("worker threads of the multi-thread runtime"),
    serve,
};

// ANCHOR: serve
/// Builds a multi-thread runtime with `cooks` workers and runs the
/// restaurant on it until every plate is back.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // It must be the multi-thread flavour: `block_in_place` panics on a
    // current-thread runtime, which has no second worker to take over.
    let runtime = Builder::new_multi_thread()
        .worker_threads(cooks)
        .enable_time()
        .build()?;
    // Dropping the runtime when `serve` returns joins the workers and the
    // blocking pool's threads.
    runtime.block_on(restaurant(orders))
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(orders: Vec<Order>) -> Result<Vec<Plate>, BoxError> {
    // Opening time is taken after the runtime is up.
    let clock = Clock::open();
    // A JoinSet owns the cooks' tasks and hands back each plate or panic.
    let mut kitchen = JoinSet::new();
    // A panic comes back as a JoinError that knows its task's id, not the
    // order: this map remembers which order each task was cooking.
    let mut tickets = HashMap::with_capacity(orders.len());

    for mut order in orders {
        // The cashier runs on the caller's thread, but its timer is driven
        // by the workers: it fires on time only while some worker is free
        // to look, which `block_in_place` keeps true.
        sleep_until(Instant::from_std(clock.at(order.arrival()))).await;
        order.ring_up(&clock);
        let id = order.id();
        let task = kitchen.spawn(cook(order, clock));
        tickets.insert(task.id(), id);
    }

    // The pass: collect plates in the order they finish.
    let mut plates = Vec::with_capacity(tickets.len());
    while let Some(done) = kitchen.join_next().await {
        match done {
            Ok(plate) => plates.push(plate),
            // The chop ran on the task's own thread, so its panic unwinds
            // through the task's poll, where tokio catches it.
            Err(e) if e.is_panic() => {
                let order = tickets[&e.id()];
                return Err(CookPanicked::new(order, &*e.into_panic()).into());
            }
            // Nothing aborts a cook while the JoinSet is alive.
            Err(e) => return Err(e.into()),
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
            // The worker's queue moves to another thread first; then the
            // chop runs here, blocking this thread and this task only. The
            // closure runs before `block_in_place` returns, so it can
            // borrow `plate`: no `move`, no `'static`.
            Step::Chop(work) => block_in_place(|| plate.chop(work)),
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

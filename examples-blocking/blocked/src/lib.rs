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
//! runtime runs the cashier and every cook on the thread that calls
//! `block_on`, and switches between them only at an `.await`. Simmering is
//! an `.await`, so waiting costs nothing. Chopping is not: every chop runs
//! inline, on the loop's only thread, and until it returns nothing else
//! runs. A salad's chop takes a fraction of a millisecond and nobody
//! notices. A wedding cake's takes 100–200 ms, and for all that time the
//! cashier cannot take an order: customers queue at an unattended till.
//!
//! What the runtime is made of (tokio's current-thread flavour):
//!
//! - **one thread**, the caller's: the scheduler loop runs inside
//!   `block_on`, and polls the cashier and the cooks in turn;
//! - a **timer** wheel with millisecond resolution, which the loop looks
//!   at between polls, and only between polls;
//! - an **I/O driver** (not enabled: the restaurant only uses timers).
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

use std::collections::HashMap;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};
use tokio::runtime::Builder;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_metrics::TaskMonitor;

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "The anti-pattern: every chop inline on a one-thread event loop, \
            so the cashier stalls.",
    // One thread is the whole problem: the command line accepts only 1.
    cooks: Cooks::One,
    serve,
};

// ANCHOR: serve
/// Builds a current-thread runtime and runs the restaurant on this thread
/// until every plate is back. `_cooks` is always 1 ([`Cooks::One`]).
pub fn serve(
    orders: Vec<Order>,
    _cooks: usize,
) -> Result<Vec<Plate>, BoxError> {
    run(orders, None)
}

/// [`serve`], with every cook's future instrumented by `monitor`, so that
/// `monitor.cumulative()` afterwards says how many polls of a cook took
/// longer than `monitor.slow_poll_threshold()`, and for how long.
pub fn serve_watched(
    orders: Vec<Order>,
    monitor: &TaskMonitor,
) -> Result<Vec<Plate>, BoxError> {
    run(orders, Some(monitor.clone()))
}

fn run(
    orders: Vec<Order>,
    monitor: Option<TaskMonitor>,
) -> Result<Vec<Plate>, BoxError> {
    // No worker threads: the runtime is a scheduler and a timer that run on
    // the thread calling `block_on`. (`#[tokio::main(flavor =
    // "current_thread")]` builds the same.) This is the event loop that
    // every chop below will block.
    let runtime = Builder::new_current_thread().enable_time().build()?;
    // The loop runs inside `block_on` and stops when `restaurant` returns;
    // dropping the runtime then drops any task still in it.
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
    // Opening time is taken after the runtime is up, so building it never
    // counts as a customer's wait.
    let clock = Clock::open();
    // A JoinSet owns the cooks' tasks: it hands back each plate, or the
    // panic of a cook, and aborts whatever is left if we return early.
    let mut kitchen = JoinSet::new();
    // A panic comes back as a JoinError that knows its task's id, not the
    // order: this map remembers which order each task was cooking.
    let mut tickets = HashMap::with_capacity(orders.len());

    for mut order in orders {
        // The cashier's `.await`: while it waits for the next customer, the
        // loop polls cooks. But the timer is only looked at *between* polls,
        // so if a cook is in the middle of a cake when the customer arrives,
        // the customer waits until the cake is done.
        sleep_until(Instant::from_std(clock.at(order.arrival()))).await;
        order.ring_up(&clock);
        let id = order.id();
        let cook = cook(order, clock);
        // ANCHOR: watch
        // Watching is opt-in (`serve_watched`): an instrumented future
        // times every one of its polls, at the cost of a few atomic adds.
        let task = match &monitor {
            Some(monitor) => kitchen.spawn(monitor.instrument(cook)),
            None => kitchen.spawn(cook),
        };
        // ANCHOR_END: watch
        tickets.insert(task.id(), id);
    }

    // The pass: collect plates in the order they finish.
    let mut plates = Vec::with_capacity(tickets.len());
    while let Some(done) = kitchen.join_next().await {
        match done {
            Ok(plate) => plates.push(plate),
            // tokio catches the panic around the task's poll, so the loop
            // survives it. Returning drops the JoinSet, which aborts the
            // other cooks.
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
            // THE MISTAKE. CPU work inline in an async fn: this poll does
            // not return until the chop is done, and it runs on the only
            // thread there is. No other cook, no timer, no cashier, for as
            // long as it takes: 0.1 ms for a salad, 200 ms for a cake.
            Step::Chop(work) => plate.chop(work),
            // Waiting is fine: the cook is parked on the timer and the loop
            // moves on to whoever is ready.
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

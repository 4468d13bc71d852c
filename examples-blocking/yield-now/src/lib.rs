//! # blocking-yield-now: cut the chop into slices, yield between them
//!
//! ```text
//! cargo run --release -p blocking-yield-now -- --preset big-order
//! ```
//!
//! *Partitioning*: the work stays on the event loop, but never in one
//! piece. Each chop is cut into slices of at most [`SLICE`] (100 units,
//! about 100 µs), and between two slices the cook awaits
//! `tokio::task::yield_now()`, handing the thread back to the loop. A
//! cake is two thousand short polls instead of one long one, and between
//! any two of them the cashier can take an order. Node.js programs do the
//! same with `setImmediate`: do a slice, schedule the rest, return to the
//! loop.
//!
//! How long is a slice allowed to be? Alice Ryhl's *Async: What is
//! blocking?* (<https://ryhl.io/blog/async-what-is-blocking/>), which
//! tokio's runtime documentation links to for "blocking the thread", gives
//! the rule of thumb: no more than 10 to 100 microseconds between each
//! `.await`. A slice sits at the top of that range.
//!
//! What the runtime is made of: exactly `blocking-blocked`'s, one thread
//! running tokio's current-thread scheduler and its **timer** inside
//! `block_on`. `yield_now` does not requeue the cook at once: tokio hands
//! its waker to the scheduler, which wakes it only after it has run the
//! other ready tasks and looked at the timer. So every yield gives a due
//! cashier its turn.
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

use std::collections::HashMap;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step, Work,
};
use tokio::runtime::Builder;
use tokio::task::{JoinSet, yield_now};
use tokio::time::{Instant, sleep, sleep_until};

/// The most work a cook does between two `.await`s: 100 units, about
/// 100 µs, the top of the 10–100 µs rule of thumb.
pub const SLICE: Work = Work(100);

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Partitioning: one event loop, every chop cut into slices of \
            about 100 µs with a yield between them.",
    // One thread, as in `blocking-blocked`: only 1 is accepted.
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
    // The same one-thread event loop as `blocking-blocked`: the fix is in
    // the cook, not in the runtime.
    let runtime = Builder::new_current_thread().enable_time().build()?;
    runtime.block_on(restaurant(orders))
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(orders: Vec<Order>) -> Result<Vec<Plate>, BoxError> {
    // Opening time is taken after the runtime is up.
    let clock = Clock::open();
    let mut kitchen = JoinSet::new();
    // A panic comes back as a JoinError that knows its task's id, not the
    // order: this map remembers which order each task was cooking.
    let mut tickets = HashMap::with_capacity(orders.len());

    for mut order in orders {
        // No poll lasts longer than a slice now, so the loop looks at the
        // timer at least every ~100 µs and this wakes on time.
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
            // A slice panics inside the cook's poll, on the loop's thread;
            // tokio catches it there and the loop carries on.
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
/// A cook: runs the recipe's steps in order and serves the plate, never
/// holding the thread for more than one slice.
async fn cook(order: Order, clock: Clock) -> Plate {
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => {
                // `chop_slice` does at most one slice and remembers where
                // it stopped; it returns true once the chop is done. The
                // digest comes out the same as one `chop(work)`.
                while !plate.chop_slice(work, SLICE) {
                    // Back to the loop: the cashier and the other cooks get
                    // their turn, then this cook carries on.
                    yield_now().await;
                }
            }
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

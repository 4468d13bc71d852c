//! # concurrency-tokio-current-thread: one thread, one event loop
//!
//! ```text
//! cargo run --release -p concurrency-tokio-current-thread -- --preset takeout
//! ```
//!
//! Node.js's model, in Rust. The cashier and every cook are futures on a
//! single thread: tokio's **current-thread** runtime runs them all on the
//! thread that calls `block_on`, switching from one to the next each time
//! the one running reaches an `.await` that is not ready. While a cook
//! simmers, its future is parked on the timer and the thread polls someone
//! else. That is concurrency without any parallelism: thousands of orders
//! in flight, one CPU in use.
//!
//! What the runtime is made of (tokio's current-thread flavour):
//!
//! - **one thread**, the caller's. There are no worker threads: the
//!   scheduler loop runs inside `block_on`, and spawned tasks run only
//!   while it does. It alternates between the `block_on` future, a batch of
//!   ready tasks and a look at the timer;
//! - a **timer** wheel with millisecond resolution, the same as the
//!   multi-thread runtime's. When nothing is ready the thread sleeps until
//!   the next timer is due, and that sleep is the event loop's idle state;
//! - an **I/O driver** (not enabled here: the restaurant only uses timers).
//!
//! How it differs from its siblings: the code is `concurrency-tokio`'s,
//! word for word, except for the one line that builds the runtime. So every
//! difference the comparison shows between the two comes from the runtime
//! alone: one thread instead of one per core. `--cooks` means nothing here;
//! only 1 is accepted.
//!
//! **Its weakness, measured:** only one thing runs at a time, so a chop
//! holds the whole restaurant. While a cook chops, nobody rings up the next
//! customer and no simmer that finishes gets its cook back; the till goes
//! unattended for as long as the longest chop (see the counter wait on
//! `big-order`). And a second core, if there is one, stays idle: on
//! `banquet` the makespan is the sum of all the chopping. Waiting is what
//! one loop is good at; computing needs another thread (the
//! `examples-blocking` crates show which).

use std::collections::HashMap;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};
use tokio::runtime::Builder;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as tasks on one thread, one event loop: Node.js's model, \
            in tokio.",
    // One thread is the whole point: the command line accepts only 1.
    cooks: Cooks::One,
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Builds a current-thread runtime and runs the restaurant on this thread
/// until every plate is back. `_cooks` is always 1 ([`Cooks::One`]).
pub fn serve(
    orders: Vec<Order>,
    _cooks: usize,
) -> Result<Vec<Plate>, BoxError> {
    // The one line that differs from `concurrency-tokio`. No worker threads
    // are started: the runtime is a scheduler and a timer that run on
    // whichever thread calls `block_on`, here the caller's. (`#[tokio::main(
    // flavor = "current_thread")]` builds the same thing.)
    let runtime = Builder::new_current_thread().enable_time().build()?;
    // The event loop runs inside `block_on` and stops when `restaurant`
    // returns; dropping the runtime then drops any task still in it.
    runtime.block_on(restaurant(orders))
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(orders: Vec<Order>) -> Result<Vec<Plate>, BoxError> {
    // Opening time is taken here, after the runtime is up, so building it
    // never counts as a customer's wait.
    let clock = Clock::open();
    // A JoinSet owns the cooks' tasks, as in `concurrency-tokio`. The cooks
    // are `Send`, so plain `spawn` works; a `LocalSet` and `spawn_local`
    // would only be needed for futures that hold `Rc` or `RefCell` across
    // an `.await`, and would change nothing about how they are scheduled.
    let mut kitchen = JoinSet::new();
    // A panic reaches us as a JoinError that knows its task's id, not the
    // order: this map remembers which order each task was cooking.
    let mut tickets = HashMap::with_capacity(orders.len());

    for mut order in orders {
        // This `.await` is where the cooks get the thread: while the cashier
        // waits for the next customer, the loop polls them. A cook that is
        // chopping when the customer arrives finishes its chop first; the
        // customer stands at the till meanwhile.
        sleep_until(Instant::from_std(clock.at(order.arrival()))).await;
        order.ring_up(&clock);
        let id = order.id();
        // `spawn` only queues the cook; it cannot run before the cashier
        // reaches its next `.await`, because there is no other thread.
        let task = kitchen.spawn(cook(order, clock));
        tickets.insert(task.id(), id);
    }

    // The pass: collect plates in the order they finish.
    let mut plates = Vec::with_capacity(tickets.len());
    while let Some(done) = kitchen.join_next().await {
        match done {
            Ok(plate) => plates.push(plate),
            // tokio catches the panic on the task's poll, so the loop (and
            // the cashier on it) survives it. Returning drops the JoinSet,
            // which aborts the other cooks.
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
            // CPU work runs right here, on the only thread there is: until
            // it returns, no other cook and not the cashier can run.
            Step::Chop(work) => plate.chop(work),
            // Waiting yields: the cook is parked on the timer and the loop
            // moves on to whoever is ready.
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

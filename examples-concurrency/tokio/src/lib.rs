//! # concurrency-tokio: cooks as tasks on a work-stealing runtime
//!
//! ```text
//! cargo run --release -p concurrency-tokio -- --preset takeout
//! ```
//!
//! One cashier, many cooks, and a handful of threads. Every cook is a tokio
//! *task*: a future that the runtime polls until it is done. A cook that
//! simmers does not hold a thread; it parks its future on a timer and the
//! thread goes on to poll other cooks. So thousands of orders can simmer at
//! once on two threads, which is **concurrency**; and while several cooks
//! chop on several threads at the same time, that is **parallelism**.
//!
//! What the runtime is made of (tokio's multi-thread flavour):
//!
//! - **worker threads**, one per `--cooks` (default: one per core). Each has
//!   a local queue of ready tasks and *steals* from the others when its own
//!   runs dry, so work spreads over the cores without a central lock;
//! - a **timer** wheel with millisecond resolution, which wakes a task when
//!   its `sleep` is due (so sleeps round up to the next millisecond);
//! - an **I/O driver** (not enabled here: the restaurant only uses timers).
//!
//! How it differs from its siblings: `tokio-current-thread` runs the same
//! kind of code on one thread, the way Node.js does; `parallelism-thread-pool`
//! gives each cook a whole OS thread that sits idle while it simmers.
//!
//! **Its weakness, measured:** a chop runs on a worker thread and holds it
//! until the chop is done. The cashier runs on the thread that called
//! `block_on`, but its alarm clock does not: the timer is turned by the
//! worker threads, between tasks. When every worker is busy chopping,
//! nobody turns it, the cashier's `sleep_until` fires late and customers
//! wait at the till (see the counter wait on `big-order` in the book).
//! Tasks are cheap to wait with, not to compute with: the
//! `examples-blocking` crates show how to move long CPU work off the
//! workers.

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
    about: "Cooks as tasks on tokio's multi-thread, work-stealing runtime.",
    cooks: Cooks::Cores("worker threads of the tokio runtime"),
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Builds a runtime with `cooks` worker threads and runs the restaurant on
/// it until every plate is back.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // `#[tokio::main]` would build this for us; building it by hand lets
    // `--cooks` choose the number of worker threads. `enable_time` turns on
    // the timer that `sleep` needs; without it `sleep` panics.
    let runtime = Builder::new_multi_thread()
        .worker_threads(cooks)
        .enable_time()
        .build()?;
    // `block_on` runs the cashier on this thread; the cooks it spawns run on
    // the worker threads. When `restaurant` returns, dropping the runtime
    // shuts the workers down.
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
    // A JoinSet owns the cooks' tasks: it hands back each task's plate, or
    // its panic, and aborts whatever is left if we return early.
    let mut kitchen = JoinSet::new();
    // A panic reaches us as a JoinError that knows its task's id, not the
    // order: this map remembers which order each task was cooking.
    let mut tickets = HashMap::with_capacity(orders.len());

    for mut order in orders {
        // Waiting for a customer is a timer, not a busy thread. The timer is
        // fired by a worker thread when it next looks at the clock, which
        // it does between tasks: a worker stuck in a long chop makes the
        // cashier late.
        sleep_until(Instant::from_std(clock.at(order.arrival()))).await;
        order.ring_up(&clock);
        let id = order.id();
        // `spawn` puts the cook on the runtime's queues and returns at once;
        // the cashier goes straight back to the till.
        let task = kitchen.spawn(cook(order, clock));
        tickets.insert(task.id(), id);
    }

    // The pass: collect plates in the order they finish.
    let mut plates = Vec::with_capacity(tickets.len());
    while let Some(done) = kitchen.join_next().await {
        match done {
            Ok(plate) => plates.push(plate),
            // Returning drops the JoinSet, which aborts the other cooks.
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
            // CPU work runs right here, on whichever worker polls this task,
            // and keeps that worker busy until it is done.
            Step::Chop(work) => plate.chop(work),
            // Waiting yields: the task is parked on the timer and the worker
            // thread moves on to other tasks.
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

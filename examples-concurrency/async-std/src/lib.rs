//! # concurrency-async-std: DISCONTINUED, kept only to compare
//!
//! ```text
//! cargo run --release -p concurrency-async-std -- --preset takeout
//! ```
//!
//! **async-std is discontinued** (its authors announced it with 1.13.1, and
//! the RustSec advisory **RUSTSEC-2025-0052** marks it unmaintained). Its
//! README asks every user to move to **smol**; do not start anything new on
//! it, and copy `concurrency-smol` instead of this crate. It is here because
//! a great deal of code still runs on it, and because it shows how little
//! it is on top of smol's crates.
//!
//! The model: every cook is a task spawned with `async_std::task::spawn`
//! onto a global runtime; the cashier is the future passed to
//! `task::block_on`, on the calling thread. Simmers are `task::sleep`.
//!
//! What the runtime is made of (async-std 1.13, through
//! `async-global-executor` 2.4):
//!
//! - the **executor** is smol's `async-executor`, one global instance run
//!   by a pool of threads named `async-std/runtime`, started on the first
//!   `spawn` or `block_on` and never stopped: they outlive every call to
//!   `serve` and are only ended by the process exiting. Their number is set
//!   **once** per process, from the `ASYNC_STD_THREAD_COUNT` environment
//!   variable (one per core without it), unless the executor was configured
//!   first; see [`start_runtime`] for how `--cooks` reaches it, and its
//!   limits;
//! - the **reactor and timers** are `async-io`'s, as in smol: `task::sleep`
//!   is an `async_io::Timer`, and whichever thread is idle inside
//!   `block_on` waits on the reactor, with the `async-io` helper thread as
//!   the fallback.
//!
//! Threads: the caller (the cashier), `--cooks` runtime threads, and
//! `async-io`.
//!
//! How it differs from its siblings: the same executor and timers as
//! `concurrency-smol`, hidden behind std-like global functions. There is no
//! runtime value to build, size or drop: that is its convenience and its
//! weakness.
//!
//! **Its weakness, measured:** not speed: on every preset it runs about
//! like smol, because it *is* smol's executor. Its weakness is that it is
//! unmaintained, and that its global runtime cannot be configured or shut
//! down from code: `--cooks` has to travel through an environment variable
//! that is read once per process, the runtime threads are still there
//! after `serve` returns, and a dropped `JoinHandle` detaches its task
//! instead of cancelling it (the cashier below cancels by hand).

use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use async_global_executor::GlobalExecutorConfig;

use async_std::task::{self, JoinHandle};
use futures_lite::FutureExt as _;
use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "DISCONTINUED (RUSTSEC-2025-0052), kept only to compare: cooks as \
            async-std tasks. Use smol instead.",
    cooks: Cooks::Cores("threads of async-std's global runtime"),
    serve,
};
// ANCHOR_END: model

/// What a cook's task hands back: its plate, or the payload of its panic.
type Dish = Result<Plate, Box<dyn std::any::Any + Send>>;

// ANCHOR: threads
/// Makes sure async-std's runtime starts with `cooks` threads, and returns
/// how many it has: `cooks` on the first call in a process, and whatever
/// the first call chose on every later one.
///
/// async-std has no builder. Its runtime is `async-global-executor`, which
/// it configures on its first `spawn` or `block_on` from the environment
/// variable `ASYNC_STD_THREAD_COUNT` (one thread per core without it), and
/// the first configuration wins for the life of the process. So we
/// configure that executor ourselves, before async-std is first touched:
/// it is the safe route (writing the environment of a running process is
/// `unsafe` since Rust 2024). The binary calls `serve` once, so `--cooks`
/// is honoured there; the tests call `serve` many times in one process, and
/// every call after the first runs with the first call's threads (the
/// results are the same, only the parallelism differs).
pub fn start_runtime(cooks: usize) -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let config = GlobalExecutorConfig::default()
            .with_min_threads(cooks)
            .with_max_threads(cooks)
            // The name async-std gives its threads, so they read the same.
            .with_thread_name_fn(|| "async-std/runtime".to_owned());
        async_global_executor::init_with_config(config);
        cooks
    })
}
// ANCHOR_END: threads

// ANCHOR: serve
/// Runs the restaurant on async-std's global runtime, started with `cooks`
/// threads if this is the first call in the process.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    start_runtime(cooks);
    // `block_on` runs the cashier on this thread (and starts the runtime's
    // threads if they are not running yet). When it returns, every cook has
    // finished or been cancelled; the runtime's threads stay, idle.
    task::block_on(restaurant(orders))
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(orders: Vec<Order>) -> Result<Vec<Plate>, BoxError> {
    // The runtime's threads start with the first `block_on`, just before
    // this runs; opening time starts now.
    let clock = Clock::open();
    let mut tickets: Vec<(u64, JoinHandle<Dish>)> =
        Vec::with_capacity(orders.len());

    for mut order in orders {
        // `task::sleep` is an async-io timer; the cashier's thread waits in
        // the reactor or parks until the customer arrives.
        task::sleep(clock.until(order.arrival())).await;
        order.ring_up(&clock);
        let id = order.id();
        // async-std's tasks are smol's: a panic is caught in the task and
        // thrown again at whoever awaits its handle, here the cashier, and
        // async-std offers no `catch_unwind` for futures (futures-lite
        // does). Catching it inside the task turns it into a value instead.
        // `AssertUnwindSafe` is sound: a cook shares nothing with anyone.
        let dish = AssertUnwindSafe(cook(order, clock)).catch_unwind();
        tickets.push((id, task::spawn(dish)));
    }

    // The pass: await every task, in order of arrival.
    let mut plates = Vec::with_capacity(tickets.len());
    let mut tickets = tickets.into_iter();
    while let Some((id, handle)) = tickets.next() {
        match handle.await {
            Ok(plate) => plates.push(plate),
            Err(payload) => {
                // Dropping an async-std `JoinHandle` *detaches* its task:
                // it would go on cooking after `serve` returned. Cancel the
                // others explicitly instead.
                for (_, other) in tickets {
                    other.cancel().await;
                }
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
            // CPU work runs right here and holds this runtime thread until
            // it is done, as in every executor.
            Step::Chop(work) => plate.chop(work),
            // The task parks on an async-io timer; the thread moves on.
            Step::Simmer(d) => task::sleep(d).await,
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

//! # parallelism-rayon: a job per order on rayon's pool
//!
//! ```text
//! cargo run --release -p parallelism-rayon -- --preset banquet
//! ```
//!
//! [rayon] is Rust's data-parallelism library: hand it work and it spreads
//! the work over a pool of threads, one per core, that steal from each
//! other's queues. Here every order becomes one rayon *job*, spawned in a
//! FIFO scope onto a pool of `--cooks` threads (default: one per core). The
//! cashier stays on the calling thread, outside the pool, so every pool
//! thread is a cook.
//!
//! What the pool is made of: `--cooks` worker threads, each with its own
//! double-ended queue of jobs, and one shared queue for jobs that come from
//! outside the pool, like the cashier's. A worker runs a job to the end
//! before it takes another; an idle worker steals from the others, then
//! takes from the shared queue, then spins a little and goes to sleep.
//! There is no timer and no reactor: rayon knows nothing of waiting.
//!
//! How it differs from its siblings: `thread-pool` and `crossbeam` write
//! the pool and its queue by hand; here rayon provides both, along with
//! work stealing, scoped jobs that may borrow, and a panic carried back to
//! whoever waits on the scope. The concurrency crates suspend a waiting
//! cook; rayon cannot.
//!
//! **Its weakness, measured:** a simmer is `thread::sleep` inside a job,
//! and a sleeping job occupies its worker: rayon cannot run anything else
//! on that thread until the job returns. On `banquet` (chopping) the pool
//! is as good as threads get; on `takeout` (thousands of long simmers) two
//! workers cook two orders at a time and the run takes many minutes, the
//! same collapse as `thread-pool`. rayon is built for computing, not for
//! waiting.
//!
//! [rayon]: https://docs.rs/rayon

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Sender};
use std::thread;

use rayon::{ThreadPool, ThreadPoolBuilder};
use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "One rayon job per order on a pool of --cooks threads, in FIFO \
            order.",
    cooks: Cooks::Cores("threads in the pool"),
    serve,
};

/// What a cook sends back: a plate, or the order whose cook panicked.
type Dish = Result<Plate, CookPanicked>;

// ANCHOR: serve
/// Builds a pool of `cooks` threads, serves every order on it, and joins
/// the pool's threads before returning.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    let pool = ThreadPoolBuilder::new()
        .num_threads(cooks)
        .thread_name(|i| format!("cook-{i}"));
    // `build_scoped` starts the pool's threads in a `std::thread::scope`
    // and runs the closure with the pool; when the closure returns, the
    // pool is dropped and the scope joins every thread. A pool from
    // `build()` would only be *told* to stop when dropped, its threads
    // ending some time later. Each thread just runs rayon's worker loop.
    //
    // The outer `?` is the pool failing to start; the inner result is the
    // restaurant's own.
    pool.build_scoped(|thread| thread.run(), |pool| restaurant(pool, orders))?
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier, on the calling thread: spawns one job per order into a FIFO
/// scope on `pool`, then collects the plates.
fn restaurant(
    pool: &ThreadPool,
    orders: Vec<Order>,
) -> Result<Vec<Plate>, BoxError> {
    // The pass. Every job sends its dish here; it is unbounded, so a job
    // never waits to send, and the plates wait in it until the scope ends.
    let (pass, plates) = mpsc::channel::<Dish>();
    // The pool is up; opening time starts now.
    let clock = Clock::open();
    // `in_place_scope_fifo` runs this closure on the *calling* thread.
    // (`pool.scope_fifo` would run it on a pool thread, and the cashier's
    // sleeping would take a cook away.) The scope does not return until
    // every job spawned in it has finished, so the jobs may borrow `pass`.
    pool.in_place_scope_fifo(|kitchen| {
        for mut order in orders {
            // A blocking sleep is fine: this thread is not one of rayon's.
            thread::sleep(clock.until(order.arrival()));
            order.ring_up(&clock);
            let pass = &pass;
            // A job, not a thread: rayon queues it, and whichever worker is
            // free runs it. FIFO, so the oldest order is cooked first (see
            // the book: from a pool thread, plain `spawn` is newest-first).
            kitchen.spawn_fifo(move |_| cook(order, clock, pass));
        }
    });
    // Every job has finished: the pass holds every dish. Dropping our
    // sender ends the loop below once it is empty.
    drop(pass);
    let mut served = Vec::new();
    for dish in plates {
        // Return the first cook that panicked, naming its order.
        served.push(dish?);
    }
    Ok(served)
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A job: cooks one order on whichever worker runs it, and sends the dish
/// back, or the order's panic.
fn cook(order: Order, clock: Clock, pass: &Sender<Dish>) {
    let id = order.id();
    // Catch the panic inside the job, where the order is known. Left to
    // rayon, a panic in a scoped job would come out of the scope with no
    // order attached (and one in a bare `rayon::spawn`, with no
    // `panic_handler` set on the pool, aborts the whole process).
    let dish = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut plate = Plate::start(&order, &clock);
        for step in order.steps() {
            match *step {
                Step::Chop(work) => plate.chop(work),
                // rayon has no timer: the worker thread sleeps, and no
                // other job can run on it until the simmer is over.
                Step::Simmer(d) => thread::sleep(d),
            }
        }
        plate.serve(&clock)
    }))
    .map_err(|payload| CookPanicked::new(id, &*payload));
    // Cannot fail: `restaurant` keeps the receiver until the scope ends.
    let _ = pass.send(dish);
}
// ANCHOR_END: cook

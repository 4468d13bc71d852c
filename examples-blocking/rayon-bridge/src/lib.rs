//! # blocking-rayon-bridge: the loop waits, rayon chops
//!
//! ```text
//! cargo run --release -p blocking-rayon-bridge -- --preset big-order
//! ```
//!
//! Two specialists, each doing what it is built for. A tokio
//! current-thread event loop runs the cashier and every cook's waiting; a
//! rayon thread pool does every chop. A cook sends its chop to the pool
//! with `spawn_fifo` and awaits a `tokio::sync::oneshot` receiver; the
//! rayon thread that chops sends the plate back on it, which wakes the
//! cook on the loop. The oneshot is the bridge: the only thing both sides
//! understand.
//!
//! What the service is made of:
//!
//! - **one event-loop thread**, the caller's, running tokio's
//!   current-thread scheduler and **timer** inside `block_on`;
//! - a **rayon pool** of `--cooks` threads (default 4), started before
//!   opening and joined at closing. Chops sent from outside the pool wait
//!   in its shared injector queue, first come first served; each thread
//!   also has its own deque for work spawned from inside the pool, which
//!   is what makes rayon superb at `par_iter` and at splitting a job.
//!
//! How it differs from its siblings: like `spawn-blocking`, but the pool is
//! rayon's rather than tokio's. tokio's blocking pool is sized for I/O
//! (512 threads by default) and starts threads on demand; a rayon pool is
//! sized for CPU work and its threads are always there. A chop could use
//! `par_iter` inside the job and spread over the whole pool; ours are
//! serial by design. `dedicated-thread` builds the same bridge by hand.
//!
//! **Panics.** rayon has no caller to hand a `spawn`ed job's panic to, so
//! by default it *aborts the process*. Each job here catches its own panic
//! and sends it back on the oneshot; and if a job ever ended without
//! sending, the dropped sender would wake the cook with an error, never
//! leave it waiting.
//!
//! **Its weakness, measured:** the same as `spawn-blocking`'s. Four
//! chopping threads and the loop share two cores, and a salad's chop
//! queued behind cakes waits its turn (see order latency on `big-order`);
//! every chop pays two hand-offs between threads.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use rayon::{ThreadPool, ThreadPoolBuilder};
use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};
use tokio::runtime::Builder;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "One event loop; chops sent to a rayon pool, each result back on \
            a oneshot channel.",
    cooks: Cooks::Fixed(
        4,
        "rayon threads that chop, beside one event-loop \
                            thread",
    ),
    serve,
};

// ANCHOR: serve
/// Starts a rayon pool of `cooks` threads and a current-thread runtime,
/// runs the restaurant on this thread, then joins every rayon thread.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // A rayon pool's threads are detached: dropping the pool only asks them
    // to leave. To *join* them, we start them ourselves, as scoped threads
    // (rayon's `spawn_handler`): `thread::scope` returns only once every
    // one of them has ended.
    thread::scope(|scope| {
        let pool = ThreadPoolBuilder::new()
            .num_threads(cooks)
            .thread_name(|i| format!("chopper-{i}"))
            .spawn_handler(|thread| {
                let mut builder = thread::Builder::new();
                if let Some(name) = thread.name() {
                    builder = builder.name(name.to_owned());
                }
                builder.spawn_scoped(scope, || thread.run())?;
                Ok(())
            })
            .build()?;
        // Every cook holds the pool to send its chops to it.
        let pool = Arc::new(pool);
        let runtime = Builder::new_current_thread().enable_time().build()?;
        let plates = runtime.block_on(restaurant(orders, Arc::clone(&pool)));
        // Order matters. Dropping the runtime drops any cook still in it
        // (and its handle on the pool); dropping the last handle lets the
        // rayon threads leave once their queue is empty; only then can the
        // scope's join succeed. A pool still alive here would never end.
        drop(runtime);
        drop(pool);
        plates
    })
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(
    orders: Vec<Order>,
    pool: Arc<ThreadPool>,
) -> Result<Vec<Plate>, BoxError> {
    // The rayon threads and the runtime are up: opening time.
    let clock = Clock::open();
    let mut kitchen = JoinSet::new();
    for mut order in orders {
        // The loop never chops, so this timer is noticed on time.
        sleep_until(Instant::from_std(clock.at(order.arrival()))).await;
        order.ring_up(&clock);
        kitchen.spawn(cook(order, clock, Arc::clone(&pool)));
    }

    // The pass. A chop's panic comes back as its cook's error, which
    // already names the order.
    let mut plates = Vec::with_capacity(kitchen.len());
    while let Some(done) = kitchen.join_next().await {
        // Outer `?`: the cook's own future panicked or was aborted, neither
        // of which happens while the JoinSet is alive. Inner: the cook's
        // error. Returning drops the JoinSet, which aborts the other cooks.
        plates.push(done??);
    }
    Ok(plates)
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: waits on the event loop, chops on the rayon pool.
async fn cook(
    order: Order,
    clock: Clock,
    pool: Arc<ThreadPool>,
) -> Result<Plate, CookPanicked> {
    let id = order.id();
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => {
                let (pass, chopped) = oneshot::channel();
                // `spawn_fifo` returns at once; the job is `'static`, so
                // the plate moves in and travels back on the oneshot.
                // (From outside the pool, `spawn` would queue it the same
                // way; `_fifo` keeps it first-come-first-served from
                // inside the pool too.)
                pool.spawn_fifo(move || {
                    // Catch the panic here: an uncaught one in a `spawn`ed
                    // job aborts the whole process.
                    let dish = panic::catch_unwind(AssertUnwindSafe(|| {
                        plate.chop(work);
                        plate
                    }));
                    // `send` fails only if the cook is gone (the
                    // restaurant closed early); nobody is left to tell.
                    let _ = pass.send(dish);
                });
                // The cook is parked until the rayon thread sends; the
                // loop serves others meanwhile.
                plate = match chopped.await {
                    Ok(Ok(plate)) => plate,
                    Ok(Err(payload)) => {
                        return Err(CookPanicked::new(id, &*payload));
                    }
                    // The job ended without sending: it can only have died.
                    Err(_) => {
                        return Err(CookPanicked::new(
                            id,
                            &"the chop's rayon job ended without a plate",
                        ));
                    }
                };
            }
            Step::Simmer(d) => sleep(d).await,
        }
    }
    Ok(plate.serve(&clock))
}
// ANCHOR_END: cook

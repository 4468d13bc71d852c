//! # concurrency-smol: an executor you run on threads you own
//!
//! ```text
//! cargo run --release -p concurrency-smol -- --preset takeout
//! ```
//!
//! smol is a small runtime made of separate crates, and this model uses two
//! of them directly: `async-executor` (re-exported as `smol::Executor`) to
//! run the cooks, and `async-io` (`smol::Timer`) for their simmers. Every
//! cook is a task; `--cooks` threads (default: one per core) each run the
//! same executor, the way smol's documentation sets up a multi-threaded
//! executor: `std::thread::scope` plus `block_on(ex.run(shutdown))` on each
//! thread. The cashier is not a task: it is the future the calling thread
//! blocks on, so it has that thread to itself.
//!
//! What the runtime is made of:
//!
//! - the **executor**, a value (`Executor::new()`), not a set of threads:
//!   it holds one shared queue of ready tasks, and each thread that calls
//!   `run` on it becomes a worker with a local queue, taking batches from
//!   the shared one and stealing from the other workers when it runs dry.
//!   Here those are the `cook-N` threads;
//! - the **reactor and timers** of `async-io`, global to the process: one
//!   epoll (or kqueue, or IOCP) instance plus a sorted set of timers. There
//!   is no reactor thread of its own in the usual sense: whichever thread is
//!   idle inside `async_io::block_on` (`smol::block_on`) takes the reactor
//!   and waits on it for the next timer. A helper thread called `async-io`,
//!   started on first use and alive until the process exits, does it when
//!   no one else does.
//!
//! Threads: the caller (the cashier), `--cooks` cook threads, and
//! `async-io`.
//!
//! How it differs from its siblings: `concurrency-tokio` ships its runtime
//! as one builder; here the executor and the threads that run it are
//! separate things you put together, and it shows in `serve`. smol's own
//! `smol::spawn` uses a global executor run by a single thread unless the
//! `SMOL_THREADS` environment variable says otherwise; this model builds
//! its own so that `--cooks` can choose the number of threads and so that
//! every thread is joined before `serve` returns.
//!
//! **Its weakness, measured:** precise timers cost system calls. On Linux
//! async-io waits in epoll with a timerfd as its deadline (which is what
//! makes it precise), re-armed on every turn of the reactor, and each new
//! timer nudges the thread waiting there so that it can recompute the
//! deadline. On `lunch-rush` this is a strength: customers are attended
//! within microseconds of arriving, where tokio's millisecond timer makes
//! them wait up to a tick. On `takeout`, thousands of timers in a burst, it
//! spends clearly more CPU than tokio for the same work. And as in every
//! executor here, a chop holds its cook thread until it is done.

use std::panic::AssertUnwindSafe;
use std::thread;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};
// `catch_unwind` on futures (smol re-exports futures-lite as `future`).
use smol::future::FutureExt as _;
use smol::{Executor, Timer, channel};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as tasks on smol's executor, run by N threads, with \
            async-io timers.",
    cooks: Cooks::Cores("threads running the executor"),
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Starts `cooks` threads that run one executor, runs the cashier on the
/// calling thread, then closes the kitchen and joins every thread.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // The executor is a queue and a way to poll what is on it; it owns no
    // thread. It lives on this stack frame, so the threads below borrow it,
    // which `thread::scope` allows.
    let kitchen = Executor::new();
    // The closing signal. Each cook thread runs the executor until its
    // `recv()` completes, and `recv()` completes (with an error) when the
    // last sender is dropped. Nothing is ever sent on it.
    let (closing, closed) = channel::unbounded::<()>();

    // Every thread spawned in the scope is joined before `scope` returns,
    // so no cook thread can outlive `serve`.
    thread::scope(|scope| {
        let mut crew = Ok(());
        for i in 0..cooks {
            let (kitchen, closed) = (&kitchen, closed.clone());
            let cook = thread::Builder::new()
                .name(format!("cook-{i}"))
                .spawn_scoped(scope, move || {
                    // `smol::block_on` is async-io's: while this thread has
                    // no task to poll it may take the reactor and wait for
                    // the next timer itself. The `Err` it returns at the
                    // end only says that the channel closed.
                    let _ = smol::block_on(kitchen.run(closed.recv()));
                });
            if let Err(e) = cook {
                crew = Err(e);
                break;
            }
        }
        let served = match crew {
            // The cashier has this thread to itself. It is not one of the
            // executor's workers, so no chopping cook can keep it waiting.
            Ok(()) => smol::block_on(restaurant(&kitchen, orders)),
            Err(e) => Err(e.into()),
        };
        // Closing time, on every path (a failed spawn included): without
        // this the cook threads would run forever and `scope` would wait
        // for them forever.
        drop(closing);
        served
    })
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(
    kitchen: &Executor<'_>,
    orders: Vec<Order>,
) -> Result<Vec<Plate>, BoxError> {
    // The cook threads are up; opening time starts now.
    let clock = Clock::open();
    // Each ticket keeps the order's number beside its task: a task's
    // result does not say which order it was.
    let mut tickets = Vec::with_capacity(orders.len());

    for mut order in orders {
        // An async-io timer: this thread waits in the reactor (or parks
        // while another thread does) until the customer arrives.
        Timer::at(clock.at(order.arrival())).await;
        order.ring_up(&clock);
        let id = order.id();
        // `catch_unwind` turns a panicking cook into an `Err` value inside
        // its own task. (Awaiting a smol `Task` whose future panicked would
        // resume the panic here, in the cashier.) `AssertUnwindSafe` is
        // sound because a cook shares nothing: its plate dies with it.
        let dish = AssertUnwindSafe(cook(order, clock)).catch_unwind();
        // `spawn` queues the task and wakes a sleeping cook thread.
        tickets.push((id, kitchen.spawn(dish)));
    }

    // The pass: await every task. They finish in any order; awaiting them
    // in order only decides which finished plate we pick up first.
    let mut plates = Vec::with_capacity(tickets.len());
    for (id, task) in tickets {
        match task.await {
            Ok(plate) => plates.push(plate),
            // Returning drops the other tickets, and dropping a smol `Task`
            // cancels it: no cook keeps cooking for nobody.
            Err(payload) => {
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
            // CPU work runs right here, on the cook thread that polled this
            // task, and keeps that thread until it is done.
            Step::Chop(work) => plate.chop(work),
            // The task registers its timer and returns `Pending`; the
            // thread moves on. (The `Instant` it resolves to is not needed.)
            Step::Simmer(d) => {
                Timer::after(d).await;
            }
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

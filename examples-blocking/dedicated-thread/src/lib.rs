//! # blocking-dedicated-thread: a kitchen of its own, fed by a channel
//!
//! ```text
//! cargo run --release -p blocking-dedicated-thread -- --preset big-order
//! ```
//!
//! The bridge between an event loop and blocking work, built by hand from
//! the standard library and one tokio channel. `--cooks` kitchen threads
//! (default 4) are started before opening and take chops from one std
//! `mpsc` queue. A cook on the event loop sends its plate down the queue
//! with a `tokio::sync::oneshot` sender attached, and awaits the receiver;
//! the kitchen thread chops and sends the plate back on the oneshot, which
//! wakes the cook on the loop. Closing the queue sends the kitchen home.
//!
//! What the service is made of:
//!
//! - **one event-loop thread**, the caller's, running tokio's
//!   current-thread scheduler and **timer** inside `block_on`;
//! - **kitchen threads**, plain `std::thread`s that only ever chop;
//! - two kinds of channel: an `mpsc` queue into the kitchen (sending never
//!   blocks, so it is safe from async code) and a `oneshot` per chop back
//!   out of it (its receiver is a future, so the cook can await it).
//!
//! How it differs from its siblings: `spawn-blocking` and `rayon-bridge`
//! rent a pool; this one owns its threads, so it decides what they are
//! named, how many exist (always exactly `--cooks`, from opening to
//! closing), and when they stop. That is the right shape for work that
//! never ends, such as a thread that owns a blocking client or a hardware
//! handle and serves requests from the loop for the life of the service:
//! tokio's docs send such work to a thread of its own rather than to
//! `spawn_blocking`.
//!
//! **Its weakness, measured:** it is a pool written by hand, so it has a
//! pool's costs (chopping threads and the loop share two cores; a salad's
//! chop waits behind cakes; two hand-offs per chop: see order latency on
//! `big-order`) and its code: the shutdown, the panic and the lock on the
//! shared receiver are ours to get right.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step, Work,
};
use tokio::runtime::Builder;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "One event loop; chops sent down a channel to kitchen threads of \
            its own, each result back on a oneshot.",
    cooks: Cooks::Fixed(
        4,
        "kitchen threads that chop, beside one \
                            event-loop thread",
    ),
    serve,
};

/// What a kitchen thread sends back: the chopped plate, or its panic.
type Chopped = thread::Result<Plate>;

/// One chop on its way to the kitchen: the plate, the work, and where to
/// send the result.
type Ticket = (Plate, Work, oneshot::Sender<Chopped>);

// ANCHOR: serve
/// Starts `cooks` kitchen threads and a current-thread runtime, runs the
/// restaurant on this thread, then closes the kitchen and joins it.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // The queue into the kitchen. Unbounded on purpose: a cook on the loop
    // must never block to send (a bounded std channel would block the
    // loop's thread when full; a bounded tokio one would make the cook
    // await, which is the other sound choice).
    let (rail, tickets) = mpsc::channel::<Ticket>();
    // std's Receiver has one owner; the kitchen threads take turns at it
    // behind a Mutex, each holding the lock only to take one ticket.
    let tickets = Arc::new(Mutex::new(tickets));
    let mut kitchen = Vec::with_capacity(cooks);
    for i in 0..cooks {
        let tickets = Arc::clone(&tickets);
        let thread = thread::Builder::new()
            .name(format!("kitchen-{i}"))
            .spawn(move || chopper(&tickets))?;
        kitchen.push(thread);
    }

    let runtime = Builder::new_current_thread().enable_time().build()?;
    let plates = runtime.block_on(restaurant(orders, rail));
    // Every sender must be gone before the kitchen can close: the cashier's
    // went with `restaurant`; dropping the runtime drops any cook still in
    // it (after an error), and with it the cook's sender.
    drop(runtime);
    for thread in kitchen {
        // Kitchen threads catch the chops' panics, so a thread that ended in
        // a panic is a bug here; report it rather than hide it.
        thread
            .join()
            .map_err(|_| "a kitchen thread panicked outside a chop")?;
    }
    plates
}
// ANCHOR_END: serve

// ANCHOR: kitchen
/// A kitchen thread: chops whatever comes down the rail, until it closes.
fn chopper(tickets: &Mutex<Receiver<Ticket>>) {
    loop {
        // The guard is a temporary, dropped at the end of the statement:
        // the lock is free again before the chop starts. A poisoned lock
        // only means another thread panicked holding it; the receiver is
        // fine.
        let ticket = tickets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        // `recv` fails once every sender is gone and the queue is empty:
        // closing time.
        let Ok((mut plate, work, pass)) = ticket else {
            return;
        };
        // Catch the panic here, so the thread lives on and the cook learns
        // what happened.
        let chopped = panic::catch_unwind(AssertUnwindSafe(move || {
            plate.chop(work);
            plate
        }));
        // `send` fails only if the cook is gone (the restaurant closed
        // early); nobody is left to tell.
        let _ = pass.send(chopped);
    }
}
// ANCHOR_END: kitchen

// ANCHOR: cashier
/// The cashier: takes each order when its customer arrives, rings it up and
/// hands it to a cook; then waits at the pass for every plate.
async fn restaurant(
    orders: Vec<Order>,
    rail: Sender<Ticket>,
) -> Result<Vec<Plate>, BoxError> {
    // The kitchen threads and the runtime are up: opening time.
    let clock = Clock::open();
    let mut kitchen = JoinSet::new();
    for mut order in orders {
        // The loop never chops, so this timer is noticed on time.
        sleep_until(Instant::from_std(clock.at(order.arrival()))).await;
        order.ring_up(&clock);
        kitchen.spawn(cook(order, clock, rail.clone()));
    }
    // The cashier's own sender goes now; the cooks' go as they finish.
    drop(rail);

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
/// A cook: waits on the event loop, chops in the kitchen.
async fn cook(
    order: Order,
    clock: Clock,
    rail: Sender<Ticket>,
) -> Result<Plate, CookPanicked> {
    let id = order.id();
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => {
                let (pass, chopped) = oneshot::channel();
                // Sending on an unbounded std channel never blocks: safe on
                // the loop. It fails only if every kitchen thread has died;
                // then `pass` is dropped with the ticket, and the await
                // below says so.
                let _ = rail.send((plate, work, pass));
                plate = match chopped.await {
                    Ok(Ok(plate)) => plate,
                    Ok(Err(payload)) => {
                        return Err(CookPanicked::new(id, &*payload));
                    }
                    Err(_) => {
                        return Err(CookPanicked::new(
                            id,
                            &"no kitchen thread was left to chop it",
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

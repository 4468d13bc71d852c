//! # parallelism-thread-pool: a fixed crew of threads, one ticket rail
//!
//! ```text
//! cargo run --release -p parallelism-thread-pool -- --preset banquet
//! ```
//!
//! `--cooks` OS threads (default: one per core) start before opening and
//! share one queue of orders, a std `mpsc` channel whose receiving end sits
//! behind a `Mutex`. The cashier, on the calling thread, puts each order on
//! the queue; whichever cook is free takes the next one, cooks it start to
//! finish, and sends the plate back on a second channel. Only the standard
//! library is used.
//!
//! How it differs from its siblings: unlike `concurrency-tokio`, a cook *is*
//! a thread, so it chops and simmers on that thread alike. Unlike
//! `thread-per-order`, the threads are made once, so the cost of a thread
//! is paid `--cooks` times, not once per order.
//!
//! **Its weakness, measured:** a simmering cook still holds its thread, so
//! at most `--cooks` orders make progress at once. On `banquet` (chopping)
//! two threads keep two cores busy and that is as good as it gets; on
//! `takeout` (thousands of long simmers) two threads serve two orders at a
//! time and the run takes minutes where an async runtime takes a second.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A fixed set of std threads sharing one queue of orders.",
    cooks: Cooks::Cores("threads in the pool"),
    serve,
};

/// An order on the rail, with the clock the cooks time it by (the cooks
/// start before opening, so the clock travels with the work).
type Ticket = (Order, Clock);

/// What a cook sends back: a plate, or the order whose cook panicked.
type Dish = Result<Plate, CookPanicked>;

// ANCHOR: serve
/// Starts `cooks` threads, runs the cashier on the calling thread, then
/// collects every plate and joins every thread.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // The ticket rail. Unbounded on purpose: the cashier must never wait
    // for the kitchen; a backlog shows up as order latency, not counter
    // wait. (A server taking work from the network would bound it, so that
    // a flood slows the senders instead of filling memory.)
    let (rail, tickets) = mpsc::channel::<Ticket>();
    // std's Receiver has one owner; a Mutex lets several cooks take turns
    // at it. Each cook holds the lock only while it takes one ticket.
    let tickets = Arc::new(Mutex::new(tickets));
    // The pass: plates (or panics) come back on a second channel.
    let (pass, plates) = mpsc::channel::<Dish>();

    let mut crew = Vec::with_capacity(cooks);
    for i in 0..cooks {
        let tickets = Arc::clone(&tickets);
        let pass = pass.clone();
        let cook = thread::Builder::new()
            .name(format!("cook-{i}"))
            .spawn(move || cook(&tickets, &pass))?;
        crew.push(cook);
    }
    // Only the cooks hold senders now: when the last cook leaves, `plates`
    // ends, which is how the collecting loop below knows to stop.
    drop(pass);

    cashier(orders, &rail);
    // Closing the rail is the shutdown signal: each cook's `recv` fails
    // once the queue is empty, and the cook goes home.
    drop(rail);

    let mut served = Vec::new();
    let mut failed = None;
    for dish in plates {
        match dish {
            Ok(plate) => served.push(plate),
            // Keep the first failure; let the other cooks finish theirs.
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    for cook in crew {
        // Cooks catch their panics, so a thread that ended in a panic is a
        // bug here; report it rather than hide it.
        cook.join()
            .map_err(|_| "a cook thread panicked outside a dish")?;
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(served),
    }
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: waits for each customer, rings the order up and puts it on
/// the rail. Runs on the calling thread.
fn cashier(orders: Vec<Order>, rail: &Sender<Ticket>) {
    // The crew is up; opening time starts now.
    let clock = Clock::open();
    for mut order in orders {
        // A blocking sleep is fine here: this thread has nothing else to do.
        thread::sleep(clock.until(order.arrival()));
        order.ring_up(&clock);
        // `send` fails only if every cook is gone, which happens only after
        // the rail closes; the plate count would show the loss anyway.
        if rail.send((order, clock)).is_err() {
            break;
        }
    }
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook thread: takes tickets until the rail closes.
fn cook(tickets: &Mutex<Receiver<Ticket>>, pass: &Sender<Dish>) {
    loop {
        // The guard is a temporary, dropped at the end of this statement, so
        // the lock is released before the cook starts cooking. (`while let
        // Ok(..) = tickets.lock()...recv()` would hold it for the whole loop
        // body and serialise the kitchen.) A poisoned lock only means another
        // thread panicked while holding it; the receiver inside is fine.
        let ticket = tickets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok((order, clock)) = ticket else {
            return; // the rail is closed and empty: closing time
        };
        // Catch a panic here, where the order is known, so the thread
        // survives and the cashier learns which order failed.
        let id = order.id();
        let dish =
            panic::catch_unwind(AssertUnwindSafe(|| cook_one(&order, clock)))
                .map_err(|payload| CookPanicked::new(id, &*payload));
        if pass.send(dish).is_err() {
            return; // nobody is collecting any more
        }
    }
}

/// Cooks one order on this thread, start to finish.
fn cook_one(order: &Order, clock: Clock) -> Plate {
    let mut plate = Plate::start(order, &clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // The thread sleeps: it holds its place in the crew while it
            // waits, and no other order can use it.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

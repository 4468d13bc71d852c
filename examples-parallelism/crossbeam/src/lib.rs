//! # parallelism-crossbeam: scoped threads, bounded channels, `select!`
//!
//! ```text
//! cargo run --release -p parallelism-crossbeam -- --preset banquet
//! ```
//!
//! A fixed crew of `--cooks` OS threads (default: one per core), started
//! with `std::thread::scope` and fed by [crossbeam-channel]'s **bounded**
//! multi-producer, multi-consumer queues: a rail of tickets to the cooks,
//! and a pass that brings the plates back. The cashier, on the calling
//! thread, waits for each customer with `select!` over a timer channel
//! (`at`) and the pass, so it clears the pass while it waits.
//!
//! The threads: the calling thread is the cashier; `--cooks` cook threads.
//! There is no timer thread: `at(instant)` is a channel that `select!`
//! turns into a deadline on its own wait.
//!
//! How it differs from its siblings: it is `thread-pool` with better
//! parts. crossbeam's `Receiver` is `Clone` and `Sync`, so every cook holds
//! the rail's receiving end and takes tickets from it directly, with no
//! `Mutex` to take turns at. The scope replaces `'static` and `Arc`: the
//! cooks may borrow from `serve`, and cannot outlive it. (The `crossbeam`
//! crate's own `crossbeam::scope` did this first; `std::thread::scope`
//! replaced it in Rust 1.63.) And the rail is bounded, where thread-pool's
//! is not.
//!
//! **Its weakness, measured:** the bound moves the queue to the till.
//! When the rail is full, the cashier cannot hand over and so cannot go
//! back to the till: on `banquet`, where everyone arrives at once, the
//! customers stand at the counter for about as long as the kitchen takes
//! to reach their order (thread-pool's unbounded rail attends them at once,
//! and they wait for the food instead). And a simmering cook holds its
//! thread, as in thread-pool: on `takeout` two cooks serve two orders at a
//! time and the run takes many minutes.
//!
//! [crossbeam-channel]: https://docs.rs/crossbeam-channel

use std::panic::{self, AssertUnwindSafe};
use std::thread;

use crossbeam_channel::{Receiver, RecvError, Sender, at, bounded, select};
use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Scoped std threads sharing crossbeam's bounded MPMC channels, \
            with select!.",
    cooks: Cooks::Cores("threads in the pool"),
    serve,
};

/// An order on the rail, with the clock the cooks time it by.
type Ticket = (Order, Clock);

/// What a cook sends back: a plate, or the order whose cook panicked.
type Dish = Result<Plate, CookPanicked>;

// ANCHOR: serve
/// Starts `cooks` scoped threads, runs the cashier on the calling thread,
/// then collects every plate and joins every thread.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    // The scope joins every thread spawned in it before it returns, so no
    // cook can outlive `serve`, and the cooks could borrow from it.
    thread::scope(|scope| {
        // The channels are made *inside* the scope's closure on purpose: if
        // the closure returns early (a `?` below), they are dropped before
        // the scope joins the cooks, and the cooks see the rail close. Made
        // outside, the rail would outlive the join: the cooks would wait for
        // tickets, and the scope for the cooks, forever.
        //
        // Both are bounded, one ticket and one plate per cook: a cook who
        // finishes finds the next ticket waiting, and every order beyond
        // that waits at the till, not in memory (see `cashier`).
        let (rail, tickets) = bounded::<Ticket>(cooks);
        let (pass, plates) = bounded::<Dish>(cooks);

        let mut crew = Vec::with_capacity(cooks);
        for i in 0..cooks {
            // Multi-consumer: each cook gets a clone of the receiver and
            // takes tickets from it directly, no Mutex needed.
            let (tickets, pass) = (tickets.clone(), pass.clone());
            let cook = thread::Builder::new()
                .name(format!("cook-{i}"))
                .spawn_scoped(scope, move || cook(&tickets, &pass))?;
            crew.push(cook);
        }
        // The order of dropping matters. A channel closes when the last of
        // its senders is dropped; if the scope kept its `pass`, the plates
        // channel could never close and collecting below would wait on
        // ourselves. (Our `tickets` receiver goes too: it is not needed.)
        drop((pass, tickets));

        let mut counter = Counter::new(plates);
        let till = cashier(orders, &rail, &mut counter);
        // Close the rail *before* waiting for the cooks: a cook leaves only
        // when the rail is closed and empty, so joining first would wait
        // for cooks who wait for tickets.
        drop(rail);
        // Then empty the pass until the last cook leaves and its sender
        // goes; only then join. (The pass is bounded: joining first could
        // leave a cook blocked on a full pass, and us waiting for it.)
        counter.close();
        for cook in crew {
            // Cooks catch their panics, so a thread that ended in a panic
            // is a bug here; report it rather than hide it.
            cook.join()
                .map_err(|_| "a cook thread panicked outside a dish")?;
        }
        till?;
        counter.plates()
    })
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: waits for each customer, rings the order up and puts it on
/// the rail, clearing the pass whenever it would otherwise wait.
fn cashier(
    orders: Vec<Order>,
    rail: &Sender<Ticket>,
    counter: &mut Counter,
) -> Result<(), BoxError> {
    // The crew is up; opening time starts now.
    let clock = Clock::open();
    for mut order in orders {
        // `at` is a channel that delivers one message at the arrival
        // instant; `select!` waits for it or for a plate, whichever comes
        // first. It is a deadline on the same wait, not a timer thread.
        let arrival = at(clock.at(order.arrival()));
        loop {
            select! {
                recv(arrival) -> _ => break,
                recv(counter.pass) -> dish => counter.take(dish)?,
            }
        }
        order.ring_up(&clock);
        // The hand-over. When the rail is full the send waits, and the
        // cashier cannot go back to the till: the next customers' counter
        // wait grows. That is back-pressure, what a server wants so that a
        // flood slows its clients instead of filling its memory; here it
        // shows as customers kept at the counter.
        //
        // A plain `rail.send` could deadlock: the cashier waiting for room
        // on a full rail, the cooks waiting for room on a full pass, and no
        // one emptying either. So the cashier takes plates while it waits.
        let ticket = (order, clock);
        loop {
            select! {
                // The ticket moves into the channel only if this case is
                // the one chosen, so the loop may run again without it.
                send(rail, ticket) -> sent => {
                    // Fails only if every cook left, which they do only
                    // once the rail is closed: not while we hold it.
                    sent.map_err(|_| "every cook left before closing")?;
                    break;
                }
                recv(counter.pass) -> dish => counter.take(dish)?,
            }
        }
    }
    Ok(())
}
// ANCHOR_END: cashier

/// The end of the pass where plates come back, and what came back.
struct Counter {
    pass: Receiver<Dish>,
    served: Vec<Plate>,
    /// The first cook that panicked; the others still finish their orders.
    failed: Option<CookPanicked>,
}

impl Counter {
    fn new(pass: Receiver<Dish>) -> Counter {
        Counter {
            pass,
            served: Vec::new(),
            failed: None,
        }
    }

    /// Takes one dish off the pass, while the rail is open.
    fn take(&mut self, dish: Result<Dish, RecvError>) -> Result<(), BoxError> {
        // The pass closes only when every cook has left, and cooks leave
        // only once the rail is closed: while the cashier works, an error
        // here is a bug, reported as one.
        match dish.map_err(|_| "every cook left before closing")? {
            Ok(plate) => self.served.push(plate),
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
        Ok(())
    }

    /// Closing: takes every dish left until the last cook has gone.
    fn close(&mut self) {
        // `iter` ends when the pass is empty and every sender is dropped.
        for dish in self.pass.iter() {
            match dish {
                Ok(plate) => self.served.push(plate),
                Err(e) => {
                    self.failed.get_or_insert(e);
                }
            }
        }
    }

    /// The plates, or the first cook that panicked.
    fn plates(self) -> Result<Vec<Plate>, BoxError> {
        match self.failed {
            Some(e) => Err(e.into()),
            None => Ok(self.served),
        }
    }
}

// ANCHOR: cook
/// A cook thread: takes tickets until the rail is closed and empty.
fn cook(tickets: &Receiver<Ticket>, pass: &Sender<Dish>) {
    // Every cook iterates the same receiver; each ticket goes to exactly
    // one of them. The loop ends when the rail is closed and empty.
    for (order, clock) in tickets {
        // Catch a panic here, where the order is known, so the thread
        // survives and the cashier learns which order failed.
        let id = order.id();
        let dish =
            panic::catch_unwind(AssertUnwindSafe(|| cook_one(&order, clock)))
                .map_err(|payload| CookPanicked::new(id, &*payload));
        // Blocks while the pass is full, until the cashier takes a plate.
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
            // The thread sleeps and holds its place in the crew meanwhile:
            // no other order can use it.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

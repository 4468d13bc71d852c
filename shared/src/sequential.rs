//! The reference model: one person does everything, in order.
//!
//! The cashier rings up an order, then turns round and cooks it, waiting out
//! every simmer, then serves it, then goes back to the till. Nothing
//! overlaps, so the makespan is the sum of everything, and customers queue
//! at the till for as long as the cooking before them takes. Its checksum
//! is the one every other model must print.
//!
//! ```text
//! cargo run --release -p restaurant --bin sequential
//! ```

use std::panic::{self, AssertUnwindSafe};
use std::thread;

use crate::{BoxError, Clock, CookPanicked, Order, Plate, Step};

// ANCHOR: serve
/// Serves every order on the calling thread. `cooks` is always 1.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    assert_eq!(cooks, 1, "the sequential model has exactly one cook");
    let clock = Clock::open();
    let mut plates = Vec::with_capacity(orders.len());
    for mut order in orders {
        // The till: wait for the customer, ring the order up.
        thread::sleep(clock.until(order.arrival()));
        order.ring_up(&clock);
        // The kitchen: the same person cooks it. A panic is caught here so
        // it can be reported with the order it happened in.
        let cooked =
            panic::catch_unwind(AssertUnwindSafe(|| cook(&order, clock)))
                .map_err(|payload| CookPanicked::new(order.id(), &*payload))?;
        plates.push(cooked);
    }
    Ok(plates)
}

fn cook(order: &Order, clock: Clock) -> Plate {
    let mut plate = Plate::start(order, &clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // Blocks the only thread: nothing else happens meanwhile.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: serve

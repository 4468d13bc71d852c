//! Tickets and plates: the order line read back, slicing a chop, handing
//! the work and the clock to another process.

use std::time::{Duration, Instant};

use restaurant::wire::{self, Ticket};
use restaurant::{Clock, Plate, Preset, Step, Work, Workload, expected_digest};

fn ticket(line: &str) -> Ticket {
    let mut ticket = wire::parse_order(line).unwrap();
    ticket.ring_up();
    ticket
}

#[test]
fn the_line_carries_everything_a_cook_needs() {
    let w = Workload::generate(Preset::BigOrder, 60, 1);
    for order in w.orders() {
        let ticket = ticket(&order.line());
        assert_eq!(ticket.id(), order.id());
        assert_eq!(ticket.dish(), order.dish());
        let mut plate = Plate::start(&ticket);
        for step in ticket.steps() {
            if let Step::Chop(work) = *step {
                plate.chop(work);
            }
        }
        assert_eq!(plate.digest(), expected_digest(order));
        assert_eq!(
            plate.serve(),
            wire::plate_line(order.id(), expected_digest(order))
        );
    }
}

#[test]
fn a_sliced_chop_gives_the_same_digest() {
    let w = Workload::generate(Preset::BigOrder, 60, 1);
    for order in w.orders() {
        let ticket = ticket(&order.line());
        let slice = if order.id() % 2 == 0 { 100 } else { 7 };
        let mut plate = Plate::start(&ticket);
        for step in ticket.steps() {
            if let Step::Chop(work) = *step {
                let mut slices = 1;
                while !plate.chop_slice(work, Work(slice)) {
                    slices += 1;
                }
                assert_eq!(slices, work.units().div_ceil(slice).max(1));
            }
        }
        assert_eq!(plate.digest(), expected_digest(order));
    }
}

#[test]
fn an_order_that_skipped_the_till_gets_a_wrong_digest() {
    let w = Workload::generate(Preset::LunchRush, 1, 1);
    let order = &w.orders()[0];
    let unrung = wire::parse_order(&order.line()).unwrap();
    let mut plate = Plate::start(&unrung);
    for step in unrung.steps() {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    assert_ne!(plate.digest(), expected_digest(order));
}

#[test]
fn tickets_and_plates_survive_a_trip_through_json() {
    let w = Workload::generate_scaled(Preset::LunchRush, 5, 2, 100.0);
    for order in w.orders() {
        let ticket = ticket(&order.line());
        // Across the "pipe": the ticket goes out as a line of JSON, the
        // plate comes back the same way.
        let back: Ticket =
            serde_json::from_str(&serde_json::to_string(&ticket).unwrap())
                .unwrap();
        assert_eq!(back, ticket);
        let mut plate = Plate::start(&back);
        for step in back.steps() {
            if let Step::Chop(work) = *step {
                plate.chop(work);
            }
        }
        let line = serde_json::to_string(&plate).unwrap();
        let plate: Plate = serde_json::from_str(&line).unwrap();
        assert_eq!(plate.digest(), expected_digest(order));
    }
}

#[test]
fn a_clock_handed_over_by_wall_time_roughly_agrees() {
    // The two openings are compared as instants, not by reading both
    // clocks' `now()` one after the other: a thread stopped between two
    // reads (a loaded machine stops threads for milliseconds) would count
    // as skew. What remains is each side's pair of reads, its `Instant`
    // and the machine's clock, well under a microsecond unless the thread
    // is stopped between them; so the best of five handovers counts, and
    // 2 ms is still generous.
    let skew = |a: Instant, b: Instant| {
        a.saturating_duration_since(b)
            .max(b.saturating_duration_since(a))
    };
    let mut tries = Vec::new();
    for _ in 0..5 {
        let clock = Clock::start();
        std::thread::sleep(Duration::from_millis(5));
        let copy = Clock::from_wall(clock.to_wall());
        // Made 5 ms later, the copy still counts from the opening.
        assert!(copy.now() >= Duration::from_millis(4), "a new opening");
        tries.push(skew(clock.at(Duration::ZERO), copy.at(Duration::ZERO)));
    }
    let best = tries.iter().min().expect("five tries");
    assert!(*best < Duration::from_millis(2), "skews {tries:?}");
}

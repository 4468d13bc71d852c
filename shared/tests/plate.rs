//! Plates: slicing a chop, handing the clock and the work to another
//! process.

use std::time::Duration;

use restaurant::{Clock, Order, Plate, Preset, Step, Work, Workload, verify};

/// Cooks `order` with every chop cut into slices of `slice` units.
fn cook_sliced(order: &Order, clock: &Clock, slice: u32) -> Plate {
    let mut plate = Plate::start(order, clock);
    for step in order.steps() {
        if let Step::Chop(work) = *step {
            let mut slices = 1;
            while !plate.chop_slice(work, Work(slice)) {
                slices += 1;
            }
            assert_eq!(slices, work.units().div_ceil(slice).max(1));
        }
    }
    plate.serve(clock)
}

#[test]
fn a_sliced_chop_gives_the_same_digest() {
    let w = Workload::generate(Preset::BigOrder, 60, 1);
    let clock = Clock::open();
    let mut plates = Vec::new();
    for order in w.to_orders() {
        let mut order = order;
        // No waiting for arrivals here: pretend each customer arrived at
        // opening by verifying only the digests below.
        order.ring_up(&clock);
        let slice = if order.id() % 2 == 0 { 100 } else { 7 };
        plates.push(cook_sliced(&order, &clock, slice));
    }
    for (plate, order) in plates.iter().zip(w.orders()) {
        assert_eq!(plate.digest(), restaurant::expected_digest(order));
    }
}

#[test]
fn orders_and_plates_survive_a_trip_through_json() {
    let w = Workload::generate_scaled(Preset::LunchRush, 5, 2, 100.0);
    let mut orders = w.to_orders();
    let clock = Clock::open();
    std::thread::sleep(clock.until(orders[4].arrival()));
    let mut plates = Vec::new();
    for order in &mut orders {
        order.ring_up(&clock);
        // Across the "pipe": the order goes out as a line of JSON.
        let line = serde_json::to_string(&order).unwrap();
        let back: Order = serde_json::from_str(&line).unwrap();
        assert_eq!(back.id(), order.id());
        assert_eq!(back.dish(), order.dish());
        assert_eq!(back.steps(), order.steps());
        let mut plate = Plate::start(&back, &clock);
        for step in back.steps() {
            if let Step::Chop(work) = *step {
                plate.chop(work);
            }
        }
        let line = serde_json::to_string(&plate.serve(&clock)).unwrap();
        plates.push(serde_json::from_str::<Plate>(&line).unwrap());
    }
    assert_eq!(verify(&w, &plates), Ok(w.expected_checksum()));
}

#[test]
fn an_unknown_dish_is_refused() {
    let w = Workload::generate(Preset::LunchRush, 1, 1);
    let line = serde_json::to_string(&w.orders()[0]).unwrap();
    let dish = w.orders()[0].dish();
    let bad = line.replace(&format!("\"{dish}\""), "\"haggis\"");
    let err = serde_json::from_str::<Order>(&bad).unwrap_err();
    assert!(err.to_string().contains("haggis"), "{err}");
}

#[test]
fn a_clock_handed_over_by_wall_time_agrees() {
    let clock = Clock::open();
    std::thread::sleep(Duration::from_millis(5));
    let copy = Clock::from_wall(clock.to_wall());
    let (a, b) = (clock.now(), copy.now());
    let skew = a.abs_diff(b);
    // Generous: the two readings are not taken at the same instant.
    assert!(skew < Duration::from_millis(2), "skew {skew:?}");
    assert!(b >= Duration::from_millis(4), "the copy kept the opening");
}

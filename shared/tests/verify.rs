//! Verification catches every kind of wrong night: each negative test
//! breaks one thing and checks that exactly that is named.

use std::time::Duration;

use restaurant::{Clock, Plate, Preset, Step, VerifyError, Workload, verify};

fn workload() -> Workload {
    Workload::generate_scaled(Preset::LunchRush, 12, 3, 100.0)
}

/// A correct night, from the reference model.
fn served(workload: &Workload) -> Vec<Plate> {
    restaurant::sequential::serve(workload.to_orders(), 1).unwrap()
}

fn error(workload: &Workload, plates: &[Plate]) -> VerifyError {
    verify(workload, plates).expect_err("verification should fail")
}

#[test]
fn a_correct_night_passes_with_the_expected_checksum() {
    let w = workload();
    assert_eq!(verify(&w, &served(&w)), Ok(w.expected_checksum()));
}

#[test]
fn an_empty_night_passes() {
    let w = Workload::generate(Preset::Takeout, 0, 1);
    assert_eq!(verify(&w, &[]), Ok(w.expected_checksum()));
}

#[test]
fn plates_in_any_order_pass() {
    let w = workload();
    let mut plates = served(&w);
    plates.reverse();
    assert_eq!(verify(&w, &plates), Ok(w.expected_checksum()));
}

#[test]
fn a_lost_order_is_named() {
    let w = workload();
    let mut plates = served(&w);
    plates.retain(|p| p.id() != 4 && p.id() != 9);
    let err = error(&w, &plates);
    assert_eq!(err.lost, [4, 9]);
    assert_eq!(err.to_string(), "verification failed: 2 orders lost (4, 9)");
}

#[test]
fn a_duplicated_order_is_named() {
    let w = workload();
    let mut plates = served(&w);
    plates.push(plates[5].clone());
    plates.push(plates[5].clone());
    let err = error(&w, &plates);
    assert_eq!(err.duplicated, [5]);
    assert!(err.lost.is_empty());
    assert!(
        err.to_string()
            .contains("1 order served more than once (5)")
    );
}

#[test]
fn a_wrong_digest_is_named() {
    let w = workload();
    let mut plates = served(&w);
    // Cook order 2 again, skipping its first chop.
    let mut order = w.orders()[2].clone();
    let clock = Clock::open();
    std::thread::sleep(clock.until(order.arrival()));
    order.ring_up(&clock);
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps().iter().skip(1) {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    plates[2] = plate.serve(&clock);
    let err = error(&w, &plates);
    assert_eq!(err.wrong_digest, [2]);
    assert!(err.to_string().contains("with a wrong digest (2)"));
}

#[test]
fn a_plate_from_another_workload_is_unknown() {
    let w = workload();
    let bigger = Workload::generate_scaled(Preset::LunchRush, 14, 3, 100.0);
    let plates = served(&bigger);
    let err = error(&w, &plates);
    assert_eq!(err.unknown, [12, 13]);
    assert!(err.lost.is_empty());
}

#[test]
fn an_order_that_skipped_the_till_is_named() {
    let w = workload();
    let mut plates = served(&w);
    let clock = Clock::open();
    let order = &w.orders()[7];
    let mut plate = Plate::start(order, &clock);
    for step in order.steps() {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    plates[7] = plate.serve(&clock);
    let err = error(&w, &plates);
    assert_eq!(err.not_rung_up, [7]);
}

#[test]
fn an_unserved_plate_is_named() {
    let w = workload();
    let mut plates = served(&w);
    let clock = Clock::open();
    let mut order = w.orders()[1].clone();
    std::thread::sleep(clock.until(order.arrival()));
    order.ring_up(&clock);
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    plates[1] = plate; // never served
    let err = error(&w, &plates);
    assert_eq!(err.not_served, [1]);
}

#[test]
fn taking_an_order_before_its_customer_arrives_is_caught() {
    let w = Workload::generate(Preset::LunchRush, 3, 3);
    let last = &w.orders()[2];
    assert!(last.arrival() > Duration::from_millis(1));
    let mut plates = served(&w);
    // Ring the last order up the moment the doors open, before its
    // customer is there.
    let clock = Clock::open();
    let mut order = last.clone();
    order.ring_up(&clock);
    let mut plate = Plate::start(&order, &clock);
    for step in order.steps() {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    plates[2] = plate.serve(&clock);
    let err = error(&w, &plates);
    assert_eq!(err.out_of_time, [2]);
}

#[test]
fn long_lists_are_cut_short_in_the_message() {
    let w = Workload::generate(Preset::Takeout, 30, 1);
    let err = error(&w, &[]);
    assert_eq!(err.lost.len(), 30);
    assert_eq!(
        err.to_string(),
        "verification failed: 30 orders lost (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, …)"
    );
}

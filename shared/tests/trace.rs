//! Timelines: one lane per thread that worked, a bar per ring-up and chop,
//! and spans that survive the trip to another process.

use std::collections::HashSet;
use std::sync::mpsc;
use std::thread;

use restaurant::trace::{self, Lane};
use restaurant::{Clock, Order, Plate, Preset, Step, Workload, verify};

fn cook(order: &Order, clock: &Clock) -> Plate {
    let mut plate = Plate::start(order, clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve(clock)
}

/// A cashier on this thread, `cooks` cook threads, one channel each.
fn served_by(cooks: usize, workload: &Workload) -> Vec<Plate> {
    let clock = Clock::open();
    thread::scope(|s| {
        let (plates_tx, plates_rx) = mpsc::channel();
        let mut rails = Vec::new();
        for _ in 0..cooks {
            let (tx, rx) = mpsc::channel::<Order>();
            let plates_tx = plates_tx.clone();
            let clock = &clock;
            s.spawn(move || {
                for order in rx {
                    plates_tx.send(cook(&order, clock)).unwrap();
                }
            });
            rails.push(tx);
        }
        drop(plates_tx);
        for (i, mut order) in workload.to_orders().into_iter().enumerate() {
            thread::sleep(clock.until(order.arrival()));
            order.ring_up(&clock);
            rails[i % cooks].send(order).unwrap();
        }
        drop(rails);
        plates_rx.into_iter().collect()
    })
}

fn count(svg: &str, class: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .count()
}

fn traced(preset: Preset, orders: usize) -> Workload {
    let mut w = Workload::generate_scaled(preset, orders, 1, 50.0);
    w.trace();
    w
}

#[test]
fn one_lane_per_thread_that_worked() {
    let w = traced(Preset::LunchRush, 30);
    let plates = served_by(3, &w);
    assert_eq!(verify(&w, &plates), Ok(w.expected_checksum()));
    let svg = trace::svg("test", &w, &plates);
    // The cashier and three cooks.
    assert_eq!(count(&svg, "lane"), 4);
    assert_eq!(count(&svg, "ring-up"), 30);
    let chops: usize = w
        .orders()
        .iter()
        .flat_map(|o| o.steps())
        .filter(|s| matches!(s, Step::Chop(_)))
        .count();
    assert_eq!(count(&svg, "chop"), chops);
    let lanes: HashSet<Lane> = plates
        .iter()
        .flat_map(|p| p.trace().unwrap().chops.concat())
        .map(|c| c.lane)
        .collect();
    assert_eq!(lanes.len(), 3, "the cooks' chops ran on three threads");
    assert!(svg.contains("(cashier)"));
}

#[test]
fn the_reference_draws_one_lane() {
    let w = traced(Preset::BigOrder, 8);
    let plates = restaurant::sequential::serve(w.to_orders(), 1).unwrap();
    let svg = trace::svg("sequential", &w, &plates);
    assert_eq!(count(&svg, "lane"), 1);
    assert!(count(&svg, "simmer") >= 1);
}

#[test]
fn spans_are_in_order_and_inside_the_plate() {
    let w = traced(Preset::LunchRush, 20);
    for plate in served_by(2, &w) {
        let t = plate.trace().unwrap();
        let ring_up = t.ring_up.as_ref().unwrap();
        assert!(ring_up.start <= ring_up.end);
        assert!(ring_up.start >= plate.arrival());
        let mut at = plate.started();
        for chop in t.chops.iter().flatten() {
            assert!(chop.start >= at && chop.end >= chop.start);
            at = chop.end;
        }
        assert!(plate.served().unwrap() >= at);
    }
}

#[test]
fn untraced_orders_record_nothing() {
    let w = Workload::generate_scaled(Preset::LunchRush, 5, 1, 50.0);
    let plates = restaurant::sequential::serve(w.to_orders(), 1).unwrap();
    assert!(plates.iter().all(|p| p.trace().is_none()));
}

#[test]
fn a_trace_survives_the_trip_to_another_process() {
    let w = traced(Preset::LunchRush, 3);
    let plates = restaurant::sequential::serve(w.to_orders(), 1).unwrap();
    for plate in plates {
        let line = serde_json::to_string(&plate).unwrap();
        let back: Plate = serde_json::from_str(&line).unwrap();
        let (a, b) = (plate.trace().unwrap(), back.trace().unwrap());
        assert_eq!(a.chops, b.chops);
        assert_eq!(a.ring_up, b.ring_up);
    }
}

#[test]
fn sliced_chops_draw_a_bar_per_slice() {
    let w = traced(Preset::LunchRush, 4);
    let clock = Clock::open();
    let mut plates = Vec::new();
    for mut order in w.to_orders() {
        thread::sleep(clock.until(order.arrival()));
        order.ring_up(&clock);
        let mut plate = Plate::start(&order, &clock);
        for step in order.steps() {
            match *step {
                Step::Chop(work) => {
                    while !plate.chop_slice(work, restaurant::Work(50)) {}
                }
                Step::Simmer(d) => thread::sleep(d),
            }
        }
        plates.push(plate.serve(&clock));
    }
    assert_eq!(verify(&w, &plates), Ok(w.expected_checksum()));
    let slices: usize = w
        .orders()
        .iter()
        .flat_map(|o| o.steps())
        .map(|s| match s {
            Step::Chop(work) => work.units().div_ceil(50) as usize,
            Step::Simmer(_) => 0,
        })
        .sum();
    let svg = trace::svg("x", &w, &plates);
    assert_eq!(count(&svg, "chop"), slices);
    // Simmers are placed by whole chops, not slices: one band per simmer.
    let simmers = w
        .orders()
        .iter()
        .flat_map(|o| o.steps())
        .filter(|s| matches!(s, Step::Simmer(_)))
        .count();
    assert_eq!(count(&svg, "simmer"), simmers);
}

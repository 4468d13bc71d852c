//! Timelines: one lane per thread that worked, a bar per ring-up and chop,
//! and spans that survive the trip to another process.
//!
//! Recording is process-wide, so these tests run in one test function each
//! would trip over each other; they share a lock.

use std::collections::HashSet;
use std::sync::{Mutex, mpsc};
use std::thread;

use restaurant::trace::{self, Lane, Trace};
use restaurant::wire::{self, Ticket};
use restaurant::{Plate, Preset, Step, Work, Workload, timeline};

/// Recording is global to the process: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn cook(ticket: &Ticket, slice: Option<u32>) -> String {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        match (*step, slice) {
            (Step::Chop(work), Some(s)) => {
                while !plate.chop_slice(work, Work(s)) {}
            }
            (Step::Chop(work), None) => plate.chop(work),
            (Step::Simmer(d), _) => thread::sleep(d),
        }
    }
    plate.serve()
}

/// A cashier on this thread, `cooks` cook threads, one channel each; the
/// traces recorded.
fn served_by(
    cooks: usize,
    workload: &Workload,
    slice: Option<u32>,
) -> Vec<Trace> {
    trace::take();
    thread::scope(|s| {
        let mut rails = Vec::new();
        for _ in 0..cooks {
            let (tx, rx) = mpsc::channel::<Ticket>();
            s.spawn(move || {
                for ticket in rx {
                    cook(&ticket, slice);
                }
            });
            rails.push(tx);
        }
        for (i, order) in workload.orders().iter().enumerate() {
            let mut ticket = wire::parse_order(&order.line()).unwrap();
            ticket.ring_up();
            rails[i % cooks].send(ticket).unwrap();
        }
    });
    trace::take()
}

fn count(svg: &str, class: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .count()
}

fn chops(w: &Workload) -> usize {
    w.orders()
        .iter()
        .flat_map(|o| o.steps())
        .filter(|s| matches!(s, Step::Chop(_)))
        .count()
}

#[test]
fn timelines() {
    let _one = ONE_AT_A_TIME.lock().unwrap();
    trace::enable();
    let w = Workload::generate_scaled(Preset::LunchRush, 30, 1, 50.0);

    // One lane per thread that worked: the cashier and three cooks.
    let traces = served_by(3, &w, None);
    assert_eq!(traces.len(), 30);
    let svg = timeline::svg("test", &traces);
    assert_eq!(count(&svg, "lane"), 4);
    assert_eq!(count(&svg, "ring-up"), 30);
    assert_eq!(count(&svg, "chop"), chops(&w));
    let lanes: HashSet<Lane> = traces
        .iter()
        .flat_map(|t| t.chops.concat())
        .map(|c| c.lane)
        .collect();
    assert_eq!(lanes.len(), 3, "the cooks' chops ran on three threads");
    assert!(svg.contains("(cashier)"));

    // Spans run forward, inside the cook's time.
    for t in &traces {
        let ring_up = t.ring_up.as_ref().unwrap();
        assert!(ring_up.start <= ring_up.end && ring_up.end <= t.started);
        let mut at = t.started;
        for chop in t.chops.iter().flatten() {
            assert!(chop.start >= at && chop.end >= chop.start);
            at = chop.end;
        }
        assert!(t.served >= at);
    }

    // Sliced chops draw a bar per slice, and one band per simmer.
    let small = Workload::generate_scaled(Preset::LunchRush, 4, 1, 50.0);
    let traces = served_by(1, &small, Some(50));
    let slices: usize = small
        .orders()
        .iter()
        .flat_map(|o| o.steps())
        .map(|s| match s {
            Step::Chop(work) => work.units().div_ceil(50) as usize,
            Step::Simmer(_) => 0,
        })
        .sum();
    let svg = timeline::svg("x", &traces);
    assert_eq!(count(&svg, "chop"), slices);
    let simmers = small
        .orders()
        .iter()
        .flat_map(|o| o.steps())
        .filter(|s| matches!(s, Step::Simmer(_)))
        .count();
    assert_eq!(count(&svg, "simmer"), simmers);

    // A trace travels with its plate to another process and back.
    let order = &small.orders()[0];
    let mut ticket = wire::parse_order(&order.line()).unwrap();
    ticket.ring_up();
    let ticket: Ticket =
        serde_json::from_str(&serde_json::to_string(&ticket).unwrap()).unwrap();
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    let plate: Plate =
        serde_json::from_str(&serde_json::to_string(&plate).unwrap()).unwrap();
    plate.serve();
    let back = trace::take();
    assert_eq!(back.len(), 1);
    assert!(back[0].ring_up.is_some());
    assert_eq!(
        back[0].chops.len(),
        ticket
            .steps()
            .iter()
            .filter(|s| matches!(s, Step::Chop(_)))
            .count()
    );
}

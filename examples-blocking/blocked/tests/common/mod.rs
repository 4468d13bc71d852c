//! Yardsticks shared by the lesson's tests (dev-only; not in `restaurant`,
//! which stays free of anything a single lesson needs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use restaurant::conformance::Server;
use restaurant::customers::Night;
use restaurant::{Model, Step, Work, Workload, kernel, verify};

/// The workload's longest chop, and how long it takes on this machine now:
/// the best of three runs of the kernel on an otherwise idle thread. Chops
/// are counted in units, so their duration must be measured, not assumed.
pub fn longest_chop(workload: &Workload) -> (Work, Duration) {
    let work = workload
        .orders()
        .iter()
        .flat_map(|order| order.steps())
        .filter_map(|step| match *step {
            Step::Chop(work) => Some(work),
            Step::Simmer(_) => None,
        })
        .max_by_key(|work| work.units())
        .expect("big-order has chops");
    let took = (0..3)
        .map(|_| {
            let start = Instant::now();
            black_box(kernel::work(black_box(1), work.units()));
            start.elapsed()
        })
        .min()
        .expect("three samples");
    (work, took)
}

/// One night of `workload` at `model`'s door, in this process: the model
/// serves on a loopback port with its default cooks, the customers come
/// from threads of this process, and the restaurant closes once they are
/// all rung up. Panics, naming the model, unless the model reports no
/// panic, returns from `serve`, and every plate is right: a fast wrong
/// answer proves nothing.
pub fn night_at(model: &Model, workload: &Workload) -> Night {
    let name = model.name;
    let server = Server::start(model, model.cooks.default_for(workload))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let night = server.customers(workload);
    let faults = server.shift().faults();
    let finished = server.finish();
    let night = night.unwrap_or_else(|e| panic!("{name}: {e}"));
    finished.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(faults.is_empty(), "{name}: a cook panicked: {faults:?}");
    let checksum =
        verify(workload, &night).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(checksum, workload.expected_checksum(), "{name}");
    night
}

/// The longest a customer stood at the door: the largest `greeted -
/// walked_in` over the night's visits, as the report's counter wait.
pub fn largest_counter_wait(night: &Night) -> Duration {
    night
        .visits
        .iter()
        .map(|visit| {
            let walked_in = visit.walked_in.expect("every customer came in");
            let greeted = visit.greeted.expect("every customer was greeted");
            greeted.saturating_sub(walked_in)
        })
        .max()
        .unwrap_or_default()
}

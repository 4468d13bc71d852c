//! Yardsticks shared by the lesson's tests (dev-only; not in `restaurant`,
//! which stays free of anything a single lesson needs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use restaurant::{Step, Work, Workload, kernel};

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

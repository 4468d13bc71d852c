//! Yardsticks shared by the lesson's tests (dev-only; not in `restaurant`,
//! which stays free of anything a single lesson needs).

use std::time::Duration;

use restaurant::conformance::Server;
use restaurant::customers::Night;
use restaurant::{Model, Step, Work, Workload, kernel, verify};

/// The workload's longest chop, and the least time it can take here: the
/// core time it needs, its units at this machine's unit as the kernel
/// times it on the thread's CPU clock (the best of five runs). Chops are
/// counted in units, so their duration must be measured, not assumed; and
/// on the CPU clock, because a loaded machine stretches a chop's time on
/// the wall, never its time on a core, so no chop of these units ever
/// ends sooner than this.
pub fn longest_chop(workload: &Workload) -> (Work, Duration) {
    let work = longest_work(workload);
    (work, kernel::measure_unit() * work.units())
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

/// How long the night's cake took in the kitchen, as its customer saw it
/// (`plated - ordered`, as the report's kitchen time): of the orders whose
/// chop is the workload's longest, the quickest. Its chop on the wall and
/// any wait before it, taken in the same night as the counter waits, by
/// the same customers: a loaded machine stretches it as it stretches them.
pub fn cake_kitchen_time(workload: &Workload, night: &Night) -> Duration {
    let longest = longest_work(workload);
    workload
        .orders()
        .iter()
        .zip(&night.visits)
        .filter(|(order, _)| {
            order.steps().iter().any(
                |step| matches!(*step, Step::Chop(work) if work == longest),
            )
        })
        .map(|(_, visit)| {
            let ordered = visit.ordered.expect("every cake was ordered");
            let plated = visit.plated.expect("every cake was served");
            plated.saturating_sub(ordered)
        })
        .min()
        .expect("big-order has a cake")
}

/// The workload's longest chop, in units.
fn longest_work(workload: &Workload) -> Work {
    workload
        .orders()
        .iter()
        .flat_map(|order| order.steps())
        .filter_map(|step| match *step {
            Step::Chop(work) => Some(work),
            Step::Simmer(_) => None,
        })
        .max_by_key(|work| work.units())
        .expect("big-order has chops")
}

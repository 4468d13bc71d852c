//! The conformance kit on this model: every preset, seeds, sizes and cook
//! counts, each run verified; and a panicking cook reported by order.

use parallelism_crossbeam::MODEL;
use restaurant::conformance;

#[test]
fn serves_every_workload() {
    conformance::check(&MODEL);
}

#[test]
fn reports_a_panicking_cook() {
    conformance::check_panic(&MODEL);
}

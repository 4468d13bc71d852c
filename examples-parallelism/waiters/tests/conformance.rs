//! The conformance kit on this model, with its default four waiters: every
//! preset (`slow-talkers` among them), seeds, sizes and cook counts, each
//! night verified; a panicking cook reported by order; rude customers (a
//! silent one holds one waiter, not the door).

use parallelism_waiters::MODEL;
use restaurant::conformance;

#[test]
fn serves_every_workload() {
    conformance::check(&MODEL);
}

#[test]
fn reports_a_panicking_cook() {
    conformance::check_panic(&MODEL);
}

#[test]
fn survives_rude_customers() {
    conformance::check_rude(&MODEL);
}

//! The reference model passes its own kit.

use restaurant::{SEQUENTIAL, conformance};

#[test]
fn serves_every_workload() {
    conformance::check(&SEQUENTIAL);
}

#[test]
fn reports_a_panicking_cook() {
    conformance::check_panic(&SEQUENTIAL);
}

#[test]
fn survives_rude_customers() {
    conformance::check_rude(&SEQUENTIAL);
}

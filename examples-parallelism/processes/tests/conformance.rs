//! The conformance kit on this model: every preset, seeds, sizes and cook
//! counts, each night verified; a panicking cook reported by order; rude
//! customers.
//!
//! The kit calls `serve` in this test process, whose executable is the
//! test harness, not the crate's binary; `MODEL.serve` would start the
//! harness as its workers. So the model under test is `serve_with`, given
//! the binary cargo built for this crate.

use std::net::TcpListener;
use std::path::Path;

use parallelism_processes::{MODEL, serve_with, worker_command};
use restaurant::{BoxError, Model, Shift, conformance};

/// `serve`, with the workers started from the crate's binary.
fn serve_built(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let binary = Path::new(env!("CARGO_BIN_EXE_parallelism-processes"));
    serve_with(worker_command(binary), listener, cooks, shift)
}

const BUILT: Model = Model {
    serve: serve_built,
    ..MODEL
};

#[test]
fn serves_every_workload() {
    conformance::check(&BUILT);
}

#[test]
fn reports_a_panicking_cook() {
    conformance::check_panic(&BUILT);
}

#[test]
fn survives_rude_customers() {
    conformance::check_rude(&BUILT);
}

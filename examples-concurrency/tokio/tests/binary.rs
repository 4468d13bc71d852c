//! The real binary, as a reader runs it: the checksum on every preset,
//! exit 2 for bad arguments, exit 1 naming the order of a panicking cook,
//! `--listen`, and Ctrl-C: drained within 5 s, or stopped at 5 s naming
//! the orders it could not finish.

const BINARY: &str = env!("CARGO_BIN_EXE_concurrency-tokio");

#[test]
fn the_binary_honours_the_contract() {
    restaurant::conformance::check_binary(BINARY);
}

#[cfg(target_os = "linux")]
#[test]
fn a_drain_that_outlasts_its_deadline_stops_and_names_the_lost() {
    restaurant::conformance::check_a_stopped_drain(BINARY);
}

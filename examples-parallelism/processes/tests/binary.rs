//! The real binary, as a reader runs it: the checksum on every preset,
//! exit 2 for bad arguments, exit 1 naming the order of a panicking cook;
//! and the worker processes counted in its report.

const BINARY: &str = env!("CARGO_BIN_EXE_parallelism-processes");

/// The kit's check includes a terminal's Ctrl-C to the whole foreground
/// group (on Linux): no worker may die of it while the server finishes
/// the orders in.
#[test]
fn the_binary_honours_the_contract() {
    restaurant::conformance::check_binary(BINARY);
}

/// Orders that cannot finish within the drain are stopped at its end and
/// named, and every worker process goes with the server.
#[cfg(target_os = "linux")]
#[test]
fn a_drain_that_outlasts_its_deadline_stops_every_worker() {
    restaurant::conformance::check_a_stopped_drain(BINARY);
}

/// The shared probe counts the threads of the main thread's children: the
/// workers must show in `peak_threads`.
#[cfg(target_os = "linux")]
#[test]
fn worker_processes_count_in_peak_threads() {
    const COOKS: u64 = 3;
    let args = ["--time-scale", "10", "--cooks", "3"];
    let report = restaurant::conformance::report_of(BINARY, &args);
    let peak = report.peak_threads.expect("Linux counts threads");
    assert!(peak > COOKS, "{peak} threads at peak for {COOKS} workers");
    // The parent alone has `COOKS + 2` threads (the cashier on the main
    // thread, the dispatcher, a reader per worker); only with each worker's
    // own thread counted does the peak reach `2 * COOKS + 2`.
    assert!(
        peak >= 2 * COOKS + 2,
        "{peak} threads at peak: the {COOKS} workers were not counted"
    );
}

//! The fix that adds no thread: the service still runs on one. The
//! binary's own report says how many threads it had at most
//! (`peak_threads`, the measuring thread left out).

use restaurant::conformance::report_of;

/// Runs the binary with `args` and returns its report's `peak_threads`
/// (`None` where the OS gives no figure: then there is nothing to check).
fn peak_threads(args: &[&str]) -> Option<u64> {
    let report = report_of(env!("CARGO_BIN_EXE_blocking-yield-now"), args);
    // Linux counts threads in /proc; elsewhere the report says `null`.
    let linux = cfg!(target_os = "linux");
    assert!(report.peak_threads.is_some() || !linux, "{report:?}");
    report.peak_threads
}

#[test]
fn the_service_runs_on_one_thread() {
    let args = ["--preset", "big-order", "--time-scale", "10"];
    if let Some(peak) = peak_threads(&args) {
        assert_eq!(peak, 1, "{args:?}");
    }
}

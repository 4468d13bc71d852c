//! The weakness in one number: `block_in_place` hands each blocked
//! worker's queue to another thread, so the service runs more threads than
//! `--cooks` workers (`peak_threads` in the binary's report, the
//! measuring thread left out).

use restaurant::conformance::report_of;

/// Runs the binary with `args` and returns its report's `peak_threads`
/// (`None` where the OS gives no figure: then there is nothing to check).
fn peak_threads(args: &[&str]) -> Option<u64> {
    let report = report_of(env!("CARGO_BIN_EXE_blocking-block-in-place"), args);
    // Linux counts threads in /proc; elsewhere the report says `null`.
    let linux = cfg!(target_os = "linux");
    assert!(report.peak_threads.is_some() || !linux, "{report:?}");
    report.peak_threads
}

#[test]
fn it_runs_more_threads_than_workers() {
    let args = [
        "--preset",
        "big-order",
        "--time-scale",
        "10",
        "--cooks",
        "2",
    ];
    if let Some(peak) = peak_threads(&args) {
        // The caller's thread, two workers, and at least one thread that
        // took over a core.
        assert!(peak >= 4, "{args:?}: {peak} threads");
    }
}

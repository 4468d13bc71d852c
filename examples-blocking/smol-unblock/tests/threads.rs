//! What `--cooks` controls: the cap on `blocking`'s pool. The service has
//! at most the event loop, async-io's helper thread and K pool threads
//! (`peak_threads` in the binary's report, the measuring thread left
//! out).

use restaurant::conformance::report_of;

/// Runs the binary with `args` and returns its report's `peak_threads`
/// (`None` where the OS gives no figure: then there is nothing to check).
fn peak_threads(args: &[&str]) -> Option<u64> {
    let report = report_of(env!("CARGO_BIN_EXE_blocking-smol-unblock"), args);
    // Linux counts threads in /proc; elsewhere the report says `null`.
    let linux = cfg!(target_os = "linux");
    assert!(report.peak_threads.is_some() || !linux, "{report:?}");
    report.peak_threads
}

#[test]
fn the_pool_never_exceeds_its_cap() {
    let args = [
        "--preset",
        "big-order",
        "--time-scale",
        "10",
        "--cooks",
        "2",
    ];
    if let Some(peak) = peak_threads(&args) {
        assert!((2..=4).contains(&peak), "{args:?}: {peak} threads");
    }
}

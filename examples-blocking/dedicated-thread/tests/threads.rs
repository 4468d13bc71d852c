//! What `--cooks` controls: the number of kitchen threads. They start
//! before opening and stay until closing, so the service has exactly the
//! event loop plus K threads (`peak_threads` in the binary's report, the
//! measuring thread left out).

use restaurant::conformance::report_of;

/// Runs the binary with `args` and returns its report's `peak_threads`
/// (`None` where the OS gives no figure: then there is nothing to check).
fn peak_threads(args: &[&str]) -> Option<u64> {
    let report =
        report_of(env!("CARGO_BIN_EXE_blocking-dedicated-thread"), args);
    // Linux counts threads in /proc; elsewhere the report says `null`.
    let linux = cfg!(target_os = "linux");
    assert!(report.peak_threads.is_some() || !linux, "{report:?}");
    report.peak_threads
}

#[test]
fn the_kitchen_has_exactly_k_threads() {
    let args = [
        "--preset",
        "big-order",
        "--time-scale",
        "10",
        "--cooks",
        "3",
    ];
    if let Some(peak) = peak_threads(&args) {
        assert_eq!(peak, 4, "{args:?}");
    }
}

//! The weakness in one number: `block_in_place` hands each blocked
//! worker's queue to another thread, so the service runs more threads than
//! `--cooks` workers (`peak_threads` in the binary's report, the
//! measuring thread left out).

use std::process::Command;

/// Runs the binary with `args` and returns its report's `peak_threads`
/// (`None` where the OS gives no figure: then there is nothing to check).
fn peak_threads(args: &[&str]) -> Option<u64> {
    let path = env!("CARGO_BIN_EXE_blocking-block-in-place");
    let out = Command::new(path)
        .args(args)
        .arg("--json")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{path} {args:?} failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path} {args:?}: bad JSON ({e})"));
    let peak = report["peak_threads"].as_u64();
    // Linux counts threads in /proc; elsewhere the report says `null`.
    assert!(peak.is_some() || !cfg!(target_os = "linux"), "{report}");
    peak
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

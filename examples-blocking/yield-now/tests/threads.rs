//! The fix that adds no thread: the service still runs on one. The
//! binary's own report says how many threads it had at most
//! (`peak_threads`, the measuring thread left out).

use std::process::Command;

/// Runs the binary with `args` and returns its report's `peak_threads`
/// (`None` where the OS gives no figure: then there is nothing to check).
fn peak_threads(args: &[&str]) -> Option<u64> {
    let path = env!("CARGO_BIN_EXE_blocking-yield-now");
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
fn the_service_runs_on_one_thread() {
    let args = ["--preset", "big-order", "--time-scale", "10"];
    if let Some(peak) = peak_threads(&args) {
        assert_eq!(peak, 1, "{args:?}");
    }
}

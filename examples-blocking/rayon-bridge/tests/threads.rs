//! What `--cooks` controls: the rayon pool's size. Its threads start
//! before opening and stay until closing, so the service has exactly the
//! event loop plus K threads (`peak_threads` in the binary's report, the
//! measuring thread left out).

use std::process::Command;

/// Runs the binary with `args` and returns its report's `peak_threads`
/// (`None` where the OS gives no figure: then there is nothing to check).
fn peak_threads(args: &[&str]) -> Option<u64> {
    let path = env!("CARGO_BIN_EXE_blocking-rayon-bridge");
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
fn the_pool_has_exactly_k_threads() {
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

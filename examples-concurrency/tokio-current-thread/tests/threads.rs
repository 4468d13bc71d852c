//! The point of this model: the whole service runs on one thread. The
//! binary's own report says how many threads the service had at most
//! (`peak_threads`, with the measuring thread left out); here it must be 1.

use std::process::Command;

#[test]
fn the_service_runs_on_one_thread() {
    let path = env!("CARGO_BIN_EXE_concurrency-tokio-current-thread");
    let args = ["--preset", "lunch-rush", "--time-scale", "100", "--json"];
    let out = Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{path} {args:?} failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path} {args:?}: bad JSON ({e})"));
    let peak = &report["peak_threads"];
    if cfg!(target_os = "linux") {
        // Linux counts threads in /proc; the figure is exact.
        assert_eq!(peak.as_u64(), Some(1), "{path} {args:?}: {report}");
    } else {
        // Elsewhere the OS gives no figure and the report says `null`.
        assert!(peak.is_null() || peak.as_u64() == Some(1), "{report}");
    }
}

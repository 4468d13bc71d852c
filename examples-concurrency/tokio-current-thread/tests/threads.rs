//! The point of this model: the whole service runs on one thread. The
//! binary's own report says how many threads the service had at most
//! (`peak_threads`, with the measuring thread left out); here it must be 1.

use restaurant::conformance::report_of;

#[test]
fn the_service_runs_on_one_thread() {
    let path = env!("CARGO_BIN_EXE_concurrency-tokio-current-thread");
    let args = ["--preset", "lunch-rush", "--time-scale", "100"];
    let report = report_of(path, &args);
    let peak = report.peak_threads;
    if cfg!(target_os = "linux") {
        // Linux counts threads in /proc; the figure is exact.
        assert_eq!(peak, Some(1), "{path} {args:?}: {report:?}");
    } else {
        // Elsewhere the OS gives no figure and the report says `null`.
        assert!(matches!(peak, None | Some(1)), "{report:?}");
    }
}

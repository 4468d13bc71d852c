//! The threads this model runs: the cashier (the caller), `--cooks` cook
//! threads and async-io's helper, and no cook thread left after `serve`.

use std::time::{Duration, Instant};

use restaurant::Preset;
use restaurant::conformance::{report_of, scaled_workload, thread_names};

#[test]
fn the_service_runs_on_cooks_plus_two_threads() {
    let path = env!("CARGO_BIN_EXE_concurrency-smol");
    let report = report_of(path, &["--cooks", "3", "--time-scale", "100"]);
    if cfg!(target_os = "linux") {
        // The cashier, three cooks, and the `async-io` thread.
        assert_eq!(report.peak_threads, Some(5), "{report:?}");
    }
}

#[test]
fn no_cook_thread_outlives_serve() {
    let orders = scaled_workload(Preset::LunchRush, 64, 1).to_orders();
    let plates = concurrency_smol::serve(orders, 3).expect("a clean run");
    assert_eq!(plates.len(), 64);
    // `thread::scope` waited for every cook thread to finish its work; the
    // OS thread itself ends a moment later. The limit is generous: the
    // machine is shared, and only a thread that never ends should fail.
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        let cooks: Vec<_> = thread_names()
            .into_iter()
            .filter(|name| name.starts_with("cook-"))
            .collect();
        if cooks.is_empty() {
            break;
        }
        assert!(Instant::now() < limit, "still running: {cooks:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

//! The threads this model runs: the cashier (the caller), `--cooks` pool
//! threads and the `futures-timer` helper; and the pool's threads gone once
//! `serve` has returned.

use std::time::{Duration, Instant};

use restaurant::Preset;
use restaurant::conformance::{report_of, scaled_workload, thread_names};

#[test]
fn the_service_runs_on_cooks_plus_two_threads() {
    let path = env!("CARGO_BIN_EXE_concurrency-futures");
    let report = report_of(path, &["--cooks", "3", "--time-scale", "100"]);
    if cfg!(target_os = "linux") {
        // The cashier, three pool threads, and `futures-timer`.
        assert_eq!(report.peak_threads, Some(5), "{report:?}");
    }
}

#[test]
fn the_pool_threads_leave_after_serve() {
    let orders = scaled_workload(Preset::LunchRush, 64, 1).to_orders();
    let plates = concurrency_futures::serve(orders, 3).expect("a clean run");
    assert_eq!(plates.len(), 64);
    // `serve` waited for each thread's goodbye (`before_stop`); the thread
    // itself ends a moment later. The limit is generous: the machine is
    // shared, and only a thread that never leaves should fail this.
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

//! The threads this model runs: the cashier (the caller), `--cooks` cook
//! threads and async-io's helper, and no cook thread left after `serve`.

use std::process::Command;
use std::time::{Duration, Instant};

use restaurant::Preset;
use restaurant::conformance::scaled_workload;

/// The names of this process's threads now (Linux only).
fn thread_names() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let comm = task.ok()?.path().join("comm");
            Some(std::fs::read_to_string(comm).ok()?.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_service_runs_on_cooks_plus_two_threads() {
    let path = env!("CARGO_BIN_EXE_concurrency-smol");
    let args = ["--cooks", "3", "--time-scale", "100", "--json"];
    let out = Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{path} {args:?} failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path} {args:?}: bad JSON ({e})"));
    if cfg!(target_os = "linux") {
        // The cashier, three cooks, and the `async-io` thread.
        assert_eq!(report["peak_threads"].as_u64(), Some(5), "{report}");
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

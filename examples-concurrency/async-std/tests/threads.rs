//! How `--cooks` reaches async-std's runtime, and what stays behind: the
//! cashier (the caller), `--cooks` runtime threads and async-io's helper;
//! the runtime's threads still there after `serve` has returned.

use std::process::Command;

use restaurant::Preset;
use restaurant::conformance::{scaled_workload, thread_names};

#[test]
fn cooks_sets_the_runtime_threads_over_the_environment() {
    let path = env!("CARGO_BIN_EXE_concurrency-async-std");
    let args = ["--cooks", "3", "--time-scale", "100", "--json"];
    // A variable already in the environment loses to `--cooks`.
    let out = Command::new(path)
        .args(args)
        .env("ASYNC_STD_THREAD_COUNT", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{path} {args:?} failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path} {args:?}: bad JSON ({e})"));
    if cfg!(target_os = "linux") {
        // The cashier, three runtime threads, and `async-io`.
        assert_eq!(report["peak_threads"].as_u64(), Some(5), "{report}");
    }
}

#[test]
fn the_runtime_threads_outlive_serve() {
    let orders = scaled_workload(Preset::LunchRush, 64, 1).to_orders();
    let plates = concurrency_async_std::serve(orders, 2).expect("a clean run");
    assert_eq!(plates.len(), 64);
    if cfg!(target_os = "linux") {
        // Linux keeps 15 bytes of a thread's name: "async-std/runti".
        let runtime = thread_names()
            .into_iter()
            .filter(|name| name.starts_with("async-std/"))
            .count();
        // The first call in this process chose 2; nothing stops them.
        assert_eq!(runtime, 2, "{:?}", thread_names());
    }
}

//! A workload that cannot be allocated under the address-space limit
//! (`ulimit -v`) is refused before any work starts: exit 2, naming its
//! size and the limit, where it used to abort mid-night ("memory allocation
//! of 152000000 bytes failed", exit 134). Linux only (`RLIMIT_AS` and
//! /proc), through `sh -c 'ulimit -v …'`, which needs no privilege.
#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `sequential args…` under `ulimit -v kib`.
fn under_limit(kib: u64, args: &str) -> (Option<i32>, String, Duration) {
    let bin = env!("CARGO_BIN_EXE_sequential");
    let began = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec '{bin}' {args}"))
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, began.elapsed())
}

#[test]
fn a_million_orders_under_200_mb_are_refused_up_front() {
    let (code, stderr, took) =
        under_limit(200_000, "--orders 1000000 --preset takeout");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--orders"), "{stderr}");
    assert!(
        stderr.contains("1000000 orders need about")
            && stderr.contains("MiB")
            && stderr.contains("ulimit -v 200000"),
        "{stderr}"
    );
    assert!(!stderr.contains("memory allocation"), "{stderr}");
    // Refused before any work: no night was served.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_small_night_under_the_same_limit_is_served() {
    let (code, stderr, _) =
        under_limit(200_000, "--orders 20 --time-scale 100 --json");
    assert_eq!(code, Some(0), "{stderr}");
}

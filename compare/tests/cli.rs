//! `compare` end to end, on the reference model: a good run, a failing
//! run, a disagreeing checksum, a run past its limit, and bad arguments.
//!
//! The binaries are built once, into a target folder of their own (the
//! `cargo test` that runs this holds the lock on the usual one).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/compare-tests")
}

/// Builds `sequential` in release, once for every test here.
fn built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "restaurant",
                "--bin",
                "sequential",
            ])
            .env("CARGO_TARGET_DIR", target_dir())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    });
}

fn compare(args: &[&str]) -> Output {
    built();
    Command::cargo_bin("compare")
        .unwrap()
        .args(["--no-build", "--models", "sequential"])
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap()
}

fn runs(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout))
    });
    v["runs"].as_array().unwrap().clone()
}

#[test]
fn a_good_run_is_ok_with_the_expected_checksum() {
    let out = compare(&["--quick", "--preset", "banquet,big-order", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs(&out);
    assert_eq!(runs.len(), 2);
    for (run, stage) in runs.iter().zip(v["stages"].as_array().unwrap()) {
        assert_eq!(run["model"], "sequential");
        assert_eq!(run["status"], "ok");
        assert_eq!(run["report"]["checksum"], stage["expected_checksum"]);
        let efficiency = run["efficiency"].as_f64().unwrap();
        // No model beats the physical limit (a little slack for the
        // measured kernel speed, which varies run to run).
        assert!(efficiency > 0.0 && efficiency < 1.2, "{efficiency}");
    }
}

#[test]
fn a_crashing_model_is_reported_as_failed() {
    let out = compare(&[
        "--quick",
        "--preset",
        "lunch-rush",
        "--json",
        "--example-args",
        "--fail-order 3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let runs = runs(&out);
    assert_eq!(runs[0]["status"], "failed");
    let message = runs[0]["message"].as_str().unwrap();
    assert!(message.contains("order 3"), "{message}");
}

#[test]
fn a_disagreeing_checksum_is_reported_as_failed() {
    // The example serves seed 2 while compare expects seed 1's checksum.
    let out = compare(&[
        "--quick",
        "--preset",
        "banquet",
        "--json",
        "--example-args",
        "--seed 2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let runs = runs(&out);
    assert_eq!(runs[0]["status"], "failed");
    let message = runs[0]["message"].as_str().unwrap();
    assert!(message.contains("disagrees"), "{message}");
}

#[test]
fn a_run_past_its_limit_is_dnf_and_not_an_error() {
    let started = Instant::now();
    // Sequential on takeout waits out thousands of simmers in a row.
    let out = compare(&["--preset", "takeout", "--time-limit", "1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let runs = runs(&out);
    assert_eq!(runs[0]["status"], "dnf");
}

#[test]
fn the_text_output_has_a_table_per_preset() {
    let out = compare(&["--quick", "--preset", "banquet"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("banquet: 40 orders, seed 1"), "{text}");
    assert!(text.contains("lower bound"), "{text}");
    assert!(text.contains("counter wait p50"), "{text}");
    assert!(text.contains("sequential"), "{text}");
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    for (args, named) in [
        (&["--models", "no-such-model"][..], "--models"),
        (&["--preset", "brunch"], "--preset"),
        (&["--repeats", "0"], "--repeats"),
        (&["--time-limit", "-1"], "--time-limit"),
    ] {
        let out = Command::cargo_bin("compare")
            .unwrap()
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

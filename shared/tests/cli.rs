//! The shared command line, through the real `sequential` binary.

use assert_cmd::Command;
use restaurant::{Preset, Workload};

fn sequential() -> Command {
    Command::cargo_bin("sequential").unwrap()
}

/// Runs with `args`, expects exit 2, and returns stderr.
fn refused(args: &[&str]) -> String {
    let out = sequential().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_arguments_exit_2_and_name_the_argument() {
    for (args, named) in [
        (&["--cooks", "0"][..], "--cooks"),
        (&["--cooks", "2"], "--cooks"),
        (&["--cooks", "-1"], "--cooks"),
        (&["--orders", "-5"], "--orders"),
        (&["--orders", "many"], "--orders"),
        (&["--orders", "1000001"], "--orders"),
        (&["--preset", "brunch"], "--preset"),
        (&["--time-scale", "0"], "--time-scale"),
        (&["--time-scale", "NaN"], "--time-scale"),
        (&["--seed", "-1"], "--seed"),
        (&["--fail-order", "10", "--orders", "10"], "--fail-order"),
        (&["--bogus"], "--bogus"),
    ] {
        let stderr = refused(args);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_explains_the_model_and_every_flag() {
    let out = sequential().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--preset",
        "--orders",
        "--seed",
        "--cooks",
        "--time-scale",
        "--json",
        "--fail-order",
        "only 1 is accepted",
        "lunch-rush",
        "Exit status",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn json_is_one_line_with_the_expected_checksum_on_every_preset() {
    for preset in Preset::ALL {
        // Small and fast: the reference waits out every simmer in turn.
        let (orders, scale) = (40, 200.0);
        let out = sequential()
            .args(["--preset", preset.name(), "--orders", "40"])
            .args(["--time-scale", "200", "--seed", "3", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{preset}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let expected = Workload::generate_scaled(preset, orders, 3, scale)
            .expected_checksum();
        assert_eq!(v["checksum"], expected.to_string(), "{preset}");
        assert_eq!(v["served"], 40);
        assert_eq!(v["model"], "sequential");
        if cfg!(target_os = "linux") {
            // The reference is one thread; the sampler is left out.
            assert_eq!(v["peak_threads"], 1);
            assert!(v["peak_rss_bytes"].as_u64().unwrap() > 0);
            assert!(v["cpu_s"].as_f64().unwrap() > 0.0);
        }
    }
}

#[test]
fn the_text_report_says_it_verified() {
    let out = sequential()
        .args(["--orders", "5", "--time-scale", "100"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("5 served once each"), "{text}");
    assert!(text.contains("counter wait"), "{text}");
}

#[test]
fn an_injected_panic_exits_1_naming_the_order() {
    let out = sequential()
        .args(["--orders", "6", "--time-scale", "100", "--fail-order", "4"])
        .args(["--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no report for a failed run");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("the cook of order 4 panicked"), "{stderr}");
}

#[test]
fn a_timeline_that_cannot_be_written_exits_1_saying_where() {
    let out = sequential()
        .args(["--orders", "3", "--time-scale", "100"])
        .args(["--trace", "/no/such/folder/timeline.svg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/no/such/folder/timeline.svg"), "{stderr}");
}

//! The real binary, as a reader runs it: the checksum on every preset,
//! exit 2 for bad arguments, exit 1 naming the order of a panicking cook;
//! and `--waiters`, which this model alone among its siblings takes.

use restaurant::conformance::{self, report_of};
use restaurant::{Preset, Workload};

const BIN: &str = env!("CARGO_BIN_EXE_parallelism-waiters");

#[test]
fn the_binary_honours_the_contract() {
    conformance::check_binary(BIN);
}

/// One waiter and seven serve `slow-talkers` with the workload's checksum
/// (the one `sequential` serves), and the report names the model and the
/// waiters it ran with.
#[test]
fn one_waiter_or_seven_serve_the_same_night() {
    let expected = Workload::generate(Preset::SlowTalkers, 150, 1)
        .expected_checksum()
        .to_string();
    for waiters in ["1", "7"] {
        let args = [
            "--preset",
            "slow-talkers",
            "--time-scale",
            "10",
            "--cooks",
            "3",
            "--waiters",
            waiters,
        ];
        let report = report_of(BIN, &args);
        assert_eq!(report.model, "parallelism-waiters", "{args:?}");
        assert_eq!(
            report.waiters.map(|w| w.to_string()).as_deref(),
            Some(waiters)
        );
        assert_eq!(report.cooks, 3, "{args:?}");
        assert_eq!(report.orders, 150, "{args:?}");
        assert_eq!(report.served, 150, "{args:?}");
        assert_eq!(report.checksum, expected, "{args:?}");
    }
}

/// Without `--waiters` the report says four, the model's default.
#[test]
fn four_waiters_by_default() {
    let report = report_of(BIN, &["--orders", "20", "--time-scale", "100"]);
    assert_eq!(report.waiters, Some(4));
    assert_eq!(report.served, 20);
}

/// A night needs at least one waiter: `--waiters 0` is refused before any
/// work starts, with status 2 and a message naming the flag.
#[test]
fn no_waiters_is_a_bad_argument() {
    for bad in ["0", "-1", "many"] {
        let out = std::process::Command::new(BIN)
            .args(["--waiters", bad])
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--waiters {bad}: {stderr}");
        assert!(out.stdout.is_empty(), "--waiters {bad} printed a report");
        assert!(stderr.contains("--waiters"), "--waiters {bad}: {stderr}");
    }
}

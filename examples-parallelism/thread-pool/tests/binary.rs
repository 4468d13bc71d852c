//! The real binary, as a reader runs it: the checksum on every preset,
//! exit 2 for bad arguments, exit 1 naming the order of a panicking cook;
//! and `--cooks auto`, which sizes for a night, under `--listen`.

use assert_cmd::Command;

fn thread_pool() -> Command {
    Command::cargo_bin("parallelism-thread-pool").unwrap()
}

#[test]
fn the_binary_honours_the_contract() {
    restaurant::conformance::check_binary(env!(
        "CARGO_BIN_EXE_parallelism-thread-pool"
    ));
}

#[test]
fn auto_under_listen_needs_a_night_to_size_for() {
    // A server alone has no night: `auto` (this pool's default, given or
    // not) is refused before anything listens, naming both ways out.
    for args in [
        &["--listen", "127.0.0.1:0"][..],
        &["--listen", "127.0.0.1:0", "--cooks", "auto"],
        &["--listen", "127.0.0.1:0", "--orders", "50", "--print-cooks"],
    ] {
        let out = thread_pool().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        for named in ["--cooks", "--preset", "--listen"] {
            assert!(stderr.contains(named), "{args:?}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A number needs no night.
    thread_pool()
        .args(["--listen", "127.0.0.1:0", "--cooks", "4", "--print-cooks"])
        .assert()
        .success()
        .stdout("4\n");
    // A preset named is the night to size for: the same cooks as that
    // night served as one.
    for preset in ["takeout", "lunch-rush"] {
        let night = thread_pool()
            .args(["--preset", preset, "--print-cooks"])
            .output()
            .unwrap();
        assert!(night.status.success(), "{preset}: {night:?}");
        thread_pool()
            .args(["--listen", "127.0.0.1:0", "--preset", preset])
            .arg("--print-cooks")
            .assert()
            .success()
            .stdout(night.stdout);
    }
}

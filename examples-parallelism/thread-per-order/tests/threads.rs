//! The cap, seen from outside: the real binary on a small, time-scaled
//! `takeout` burst, its thread count read from its `--json` report. The
//! count comes from /proc, so these tests run on Linux only.
#![cfg(target_os = "linux")]

use restaurant::Report;
use restaurant::conformance::report_of;

/// Runs the binary on 500 `takeout` orders (arrivals and simmers divided
/// by 100, so a fraction of a second) with `--cooks cap`.
fn takeout_with_cap(cap: u64) -> Report {
    let bin = env!("CARGO_BIN_EXE_parallelism-thread-per-order");
    let cap = cap.to_string();
    let args = [
        "--preset",
        "takeout",
        "--orders",
        "500",
        "--time-scale",
        "100",
        "--cooks",
        &cap,
    ];
    let report = report_of(bin, &args);
    assert_eq!(report.served, 500, "{bin} {args:?}");
    report
}

/// The cook threads never outnumber `--cooks`. The report counts the
/// kernel's threads (Linux only), so the bound is the cap, plus the
/// cashier, plus one: a thread whose `join` has returned has finished
/// everything it will ever do, but the kernel takes a few more
/// microseconds to release its task, and the cashier may start the next
/// cook meanwhile. (Sleeping briefly after each join makes that extra
/// thread vanish from the counts, which is how we know what it is.)
#[test]
fn threads_alive_never_exceed_the_cap() {
    const CAP: u64 = 8;
    let report = takeout_with_cap(CAP);
    let peak = report.peak_threads.expect("Linux reports a thread count");
    assert!(peak > 1, "no cook thread was ever seen: {peak}");
    assert!(
        peak <= CAP + 1 + 1,
        "{peak} threads at peak with --cooks {CAP}: the cap leaks"
    );
}

/// Lift the cap and the same burst runs many more threads at once: the cap
/// above is what held them back, not the workload.
#[test]
fn a_higher_cap_lets_more_threads_run() {
    let report = takeout_with_cap(256);
    let peak = report.peak_threads.expect("Linux reports a thread count");
    // The 500 orders arrive within a fraction of a millisecond and each
    // simmers for 4 to 6 ms: far more than ten of them cook at once.
    assert!(
        peak > 10 + 1,
        "only {peak} threads at peak with --cooks 256"
    );
}

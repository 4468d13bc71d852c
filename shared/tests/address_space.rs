//! A million orders under an address-space limit (`ulimit -v`) that the
//! workload's tables alone would fit, but the night would not: refused up
//! front (exit 2, naming the memory and the limit), never an abort.
//!
//! Before: limits from about 310 to 550 MiB passed the up-front check,
//! which counted the tables only, and the night then aborted, most often
//! in the customers' process (`memory allocation of 1920 bytes failed`,
//! SIGABRT, within its first second at `ulimit -v 400000`), in some models
//! in the server. The check now counts each process's whole night (the
//! tables, the connections open at once, code and stacks) and holds glibc
//! to one malloc arena under a limit, since an arena per allocating thread
//! reserved 64 MiB of address space each. Linux only (`RLIMIT_AS`), through
//! `sh -c 'ulimit -v …'`, which needs no privilege.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A million `takeout` orders, the night that aborted.
const NIGHT: &str = "--orders 1000000 --preset takeout";

/// How a run under a limit ended, if it did within its time.
struct Ended {
    status: Option<ExitStatus>,
    stderr: String,
}

/// Runs `sequential NIGHT` under `ulimit -v kib` for at most `time`, then
/// ends it (and its customers, in its process group).
fn under_limit(kib: u64, time: Duration) -> Ended {
    let bin = env!("CARGO_BIN_EXE_sequential");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec '{bin}' {NIGHT} --json"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("sh runs");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if began.elapsed() > time {
            let group = Pid::from_raw(child.id() as i32);
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Ended { status, stderr }
}

/// The most address space either process of the night needs, in KiB, as
/// the check counts it on this machine (its open-file limit sets how many
/// connections the customers keep open at once).
fn needed_kib() -> u64 {
    restaurant::customers::raise_fd_limit();
    let (customers, server) = restaurant::limits::night_bytes(
        1_000_000,
        restaurant::customers::connection_cap(),
    );
    customers.max(server) / 1024
}

#[test]
fn a_million_orders_under_limits_the_night_would_not_fit_are_refused() {
    let needed = needed_kib();
    // From the old check's threshold to just under the new one.
    let mut limits = vec![320_000, 400_000, needed - 1024];
    limits.retain(|&kib| kib < needed);
    for kib in limits {
        let ended = under_limit(kib, Duration::from_secs(20));
        let stderr = &ended.stderr;
        let status = ended.status.unwrap_or_else(|| {
            panic!("ulimit -v {kib}: still running after 20 s\n{stderr}")
        });
        assert_eq!(status.signal(), None, "ulimit -v {kib}: {stderr}");
        assert!(
            matches!(status.code(), Some(1 | 2)),
            "ulimit -v {kib}: {status}\n{stderr}"
        );
        assert!(
            stderr.contains("address space")
                && stderr.contains(&format!("ulimit -v {kib}")),
            "ulimit -v {kib}: {stderr}"
        );
        // Neither process aborted: the server relays a customers' abort as
        // "ended without a report (signal: 6 (SIGABRT))", with exit 1.
        assert!(!stderr.contains("memory allocation"), "{stderr}");
        assert!(!stderr.contains("SIGABRT"), "{stderr}");
    }
}

#[test]
fn a_million_orders_under_a_limit_that_fits_do_not_abort() {
    // Just above what the check counts: the night starts, and its first
    // seconds (the tables allocated, the customers up to their cap of
    // connections, which `sequential`, serving one at a time, reaches at
    // once) must not abort either process. What follows is one customer
    // at a time for hours, so the test ends it there.
    let kib = needed_kib() + 16 * 1024;
    let ended = under_limit(kib, Duration::from_secs(10));
    let stderr = &ended.stderr;
    if let Some(status) = ended.status {
        assert_eq!(status.signal(), None, "ulimit -v {kib}: {stderr}");
    }
    assert!(!stderr.contains("memory allocation"), "{stderr}");
    assert!(!stderr.contains("SIGABRT"), "{stderr}");
}

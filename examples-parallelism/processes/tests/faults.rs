//! Faults only a pool of processes has, each made to happen on cue by the
//! worker's test hooks (`src/hooks.rs`): a worker killed mid-order, a
//! worker that aborts on an order, every worker dying, a worker that sends
//! garbage; and a panicking cook. Every run must end within a time limit,
//! with the result the documented policy promises, and leave no worker
//! behind, not even a zombie.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use parallelism_processes::{TRIES, serve_with, worker_command};
use restaurant::conformance::scaled_workload;
use restaurant::{Plate, Preset, Workload, verify};

const BINARY: &str = env!("CARGO_BIN_EXE_parallelism-processes");

/// Far below the minute a stalled worker waits: a run that beats it did not
/// wait the stall out.
const LIMIT: Duration = Duration::from_secs(30);

/// A small lunch rush, time-scaled to run in well under a second.
fn workload(orders: usize) -> Workload {
    scaled_workload(Preset::LunchRush, orders, 1)
}

/// An empty scratch directory of this test's own, for the workers' pids.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("faults-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("the target directory is writable");
    dir
}

/// Starts serving `workload` on a thread of its own, with workers that
/// leave their pids in `pids` and run with the hooks `env`.
fn start(
    workload: &Workload,
    cooks: usize,
    pids: &Path,
    env: &[(&str, &str)],
) -> Receiver<Result<Vec<Plate>, String>> {
    let mut worker = worker_command(Path::new(BINARY));
    worker
        .env("PROCESSES_WORKER_PIDS", pids)
        .envs(env.iter().copied());
    let orders = workload.to_orders();
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let outcome = serve_with(worker, orders, cooks);
        let _ = done.send(outcome.map_err(|e| e.to_string()));
    });
    result
}

/// Waits for the run started by [`start`], at most [`LIMIT`].
fn finish(
    run: &Receiver<Result<Vec<Plate>, String>>,
) -> Result<Vec<Plate>, String> {
    run.recv_timeout(LIMIT)
        .unwrap_or_else(|e| panic!("no result within {LIMIT:?} ({e})"))
}

/// Every worker that started left its pid in `dir`: there must be
/// `workers` of them, and none may exist any more, not even as a zombie
/// (a zombie keeps its /proc entry until it is reaped).
fn assert_all_reaped(dir: &Path, workers: usize) {
    let pids: Vec<u32> = fs::read_dir(dir)
        .expect("the pid directory exists")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    assert_eq!(pids.len(), workers, "workers started: {pids:?}");
    if cfg!(target_os = "linux") {
        for pid in pids {
            let proc = format!("/proc/{pid}");
            assert!(!Path::new(&proc).exists(), "worker {pid} outlived serve");
        }
    }
    let _ = fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn a_worker_killed_mid_order_loses_nothing() {
    const STALLED: &str = "10";
    let dir = scratch("kill");
    let workload = workload(64);
    let began = Instant::now();
    let run = start(
        &workload,
        2,
        &dir,
        &[("PROCESSES_WORKER_STALL_ON", STALLED)],
    );
    // The worker handed order 10 writes its pid, then waits a minute before
    // cooking: it is certainly mid-order when it is killed.
    let stalled = dir.join("stalled");
    let pid = loop {
        let text = fs::read_to_string(&stalled).unwrap_or_default();
        if let Ok(pid) = text.parse::<u32>() {
            break pid;
        }
        assert!(began.elapsed() < LIMIT, "no worker took order {STALLED}");
        thread::sleep(Duration::from_millis(5));
    };
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(killed.success(), "kill -KILL {pid} failed");

    // The policy: the order goes to the live worker, and nothing is lost.
    let plates = finish(&run).expect("a killed worker costs no order");
    let checksum = verify(&workload, &plates).expect("every plate checks");
    assert_eq!(checksum, workload.expected_checksum());
    assert!(began.elapsed() < LIMIT, "the stall was waited out");
    // The killed worker, its replacement's... every worker: 2 started.
    assert_all_reaped(&dir, 2);
}

#[test]
fn an_order_that_kills_its_workers_is_lost_and_named() {
    let dir = scratch("abort");
    // Every worker aborts on order 3: it kills `TRIES` workers, then is
    // given up; the third worker serves the rest.
    let cooks = TRIES + 1;
    let run = start(
        &workload(7),
        cooks,
        &dir,
        &[("PROCESSES_WORKER_ABORT_ON", "3")],
    );
    let error = finish(&run).expect_err("order 3 cannot be served");
    assert!(error.contains("order 3 ("), "{error}");
    assert!(error.contains("lost"), "{error}");
    assert!(!error.contains("every worker"), "{error}");
    assert!(!error.contains("order 4"), "only order 3 is lost: {error}");
    assert_all_reaped(&dir, cooks);
}

#[test]
fn when_every_worker_dies_the_run_ends_naming_the_lost_orders() {
    for cooks in 1..=TRIES {
        let dir = scratch(&format!("all-die-{cooks}"));
        let run = start(
            &workload(7),
            cooks,
            &dir,
            &[("PROCESSES_WORKER_ABORT_ON", "3")],
        );
        let error = finish(&run).expect_err("nobody is left to cook");
        assert!(error.contains("every worker process has died"), "{error}");
        assert!(error.contains("order 3 (worker"), "{error}");
        assert_all_reaped(&dir, cooks);
    }
}

#[test]
fn a_malformed_line_is_a_protocol_error_naming_the_worker() {
    let dir = scratch("garble");
    let run = start(
        &workload(7),
        2,
        &dir,
        &[("PROCESSES_WORKER_GARBLE_ON", "3")],
    );
    let error = finish(&run).expect_err("garbage cannot be a plate");
    assert!(error.contains("protocol error: worker"), "{error}");
    assert!(error.contains("(pid "), "{error}");
    assert!(error.contains("\"this is not a reply\""), "{error}");
    assert_all_reaped(&dir, 2);
}

#[test]
fn a_panicking_cook_is_named_and_every_worker_reaped() {
    let dir = scratch("panic");
    let mut workload = workload(7);
    assert!(workload.inject_fault(3));
    let run = start(&workload, 2, &dir, &[]);
    let error = finish(&run).expect_err("order 3's cook panicked");
    assert!(error.contains("the cook of order 3 panicked"), "{error}");
    assert_all_reaped(&dir, 2);
}

//! Faults only a pool of processes has, each made to happen on cue by the
//! worker's test hooks (`src/hooks.rs`): a worker killed mid-order, a
//! worker that aborts on an order, every worker dying, a worker that sends
//! garbage, the server itself killed; and a panicking cook. Every night
//! must end within a time limit, with the result the documented policy
//! promises, every customer answered, and no worker left behind, not even
//! a zombie.

// The worker's fault hooks exist in debug builds only (`src/hooks.rs`):
// under `cargo test --release` there is nothing here to test.
#![cfg(debug_assertions)]
// Most of what this file imports serves the tests that kill processes,
// which run on Unix (and Linux) only.
#![cfg_attr(not(target_os = "linux"), allow(unused_imports, dead_code))]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parallelism_processes::{
    HIRE_LIMIT, MODEL, TRIES, serve_with, worker_command,
};
use restaurant::conformance::{Server, scaled_workload};
use restaurant::customers::{Night, Visit};
use restaurant::{Model, Preset, Workload, verify};

const BINARY: &str = env!("CARGO_BIN_EXE_parallelism-processes");

/// Far below the minute a stalled worker waits: a night that beats it did
/// not wait the stall out.
const LIMIT: Duration = Duration::from_secs(30);

/// A small lunch rush, time-scaled to run in well under a second.
fn workload(orders: usize) -> Workload {
    scaled_workload(Preset::LunchRush, orders, 1)
}

/// Where the workers of test `name` leave their pids.
fn pid_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("faults-{name}-{}", std::process::id()))
}

/// Empties [`pid_dir`] for test `name`.
fn scratch(name: &str) -> PathBuf {
    let dir = pid_dir(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("the target directory is writable");
    dir
}

/// The workers of test `name`: the crate's binary, leaving their pids in
/// [`pid_dir`], with the hooks `env`. (`Model::serve` is a plain `fn`, so
/// each test's model is a closure that captures nothing and calls this.)
fn hooked(name: &str, env: &[(&str, &str)]) -> Command {
    let mut worker = worker_command(Path::new(BINARY));
    worker
        .env("PROCESSES_WORKER_PIDS", pid_dir(name))
        .envs(env.iter().copied());
    worker
}

/// What came of one night.
#[derive(Debug)]
struct Outcome {
    /// What the customers saw.
    night: Night,
    /// The panics the model reported.
    faults: Vec<String>,
    /// What `serve` returned.
    served: Result<(), String>,
}

/// Serves `workload` with `model` on a loopback port, closing once every
/// customer is rung up or turned away. The kit bounds every wait.
fn night(model: &Model, cooks: usize, workload: &Workload) -> Outcome {
    let server = Server::start(model, cooks).unwrap_or_else(|e| panic!("{e}"));
    let night = server
        .customers(workload)
        .unwrap_or_else(|e| panic!("the customers: {e}"));
    let faults = server.shift().faults();
    let served = server.finish();
    Outcome {
        night,
        faults,
        served,
    }
}

/// Order `id`'s customer was told `ERROR …` with `why`, and got no plate.
fn assert_turned_away(visit: &Visit, id: usize, why: &str) {
    assert!(
        visit.digest.is_none()
            && visit
                .trouble
                .as_deref()
                .is_some_and(|t| t.contains("turned away") && t.contains(why)),
        "order {id} should be turned away ({why}): {visit:?}"
    );
}

/// Every order of `ids` was served.
fn assert_served(night: &Night, ids: impl IntoIterator<Item = usize>) {
    for id in ids {
        let visit = &night.visits[id];
        assert!(
            visit.digest.is_some() && visit.trouble.is_none(),
            "order {id} was not served: {visit:?}"
        );
    }
}

/// The pids the workers left in `dir`.
fn worker_pids(dir: &Path) -> Vec<u32> {
    fs::read_dir(dir)
        .expect("the pid directory exists")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every worker that started left its pid in `dir`: there must be
/// `workers` of them, and none may exist any more, not even as a zombie
/// (a zombie keeps its /proc entry until it is reaped).
fn assert_all_reaped(dir: &Path, workers: usize) {
    let pids = worker_pids(dir);
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
    let dir = scratch("kill");
    // The worker handed order 10 writes its pid, then waits a minute before
    // cooking: it is certainly mid-order when it is killed.
    let model = Model {
        serve: |listener, cooks, shift| {
            let worker = hooked("kill", &[("PROCESSES_WORKER_STALL_ON", "10")]);
            serve_with(worker, listener, cooks, shift)
        },
        ..MODEL
    };
    let workload = workload(64);
    let began = Instant::now();
    let outcome = thread::scope(|scope| {
        scope.spawn(|| {
            let stalled = dir.join("stalled");
            let pid = loop {
                let text = fs::read_to_string(&stalled).unwrap_or_default();
                if let Ok(pid) = text.parse::<u32>() {
                    break pid;
                }
                assert!(began.elapsed() < LIMIT, "no worker took order 10");
                thread::sleep(Duration::from_millis(5));
            };
            let killed = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("kill(1) runs");
            assert!(killed.success(), "kill -KILL {pid} failed");
        });
        night(&model, 2, &workload)
    });

    // The policy: the order goes to the live worker, and nothing is lost.
    outcome.served.expect("a killed worker costs no order");
    let checksum =
        verify(&workload, &outcome.night).expect("every plate checks");
    assert_eq!(checksum, workload.expected_checksum());
    assert!(outcome.faults.is_empty(), "{:?}", outcome.faults);
    assert!(began.elapsed() < LIMIT, "the stall was waited out");
    // The killed worker, its replacement, the one that took its order on:
    // 3 started.
    assert_all_reaped(&dir, 3);
}

#[test]
fn an_order_that_kills_its_workers_is_lost_and_named() {
    let dir = scratch("abort");
    // Every worker aborts on order 3: it kills `TRIES` workers, then is
    // given up; a new worker takes each dead one's place.
    let model = Model {
        serve: |listener, cooks, shift| {
            let worker = hooked("abort", &[("PROCESSES_WORKER_ABORT_ON", "3")]);
            serve_with(worker, listener, cooks, shift)
        },
        ..MODEL
    };
    let cooks = 2;
    let outcome = night(&model, cooks, &workload(7));
    let error = outcome.served.expect_err("order 3 cannot be served");
    assert!(error.contains("1 order lost: order 3 ("), "{error}");
    assert!(!error.contains("can be had"), "{error}");
    assert!(!error.contains("order 4"), "only order 3 is lost: {error}");
    // It was tried `TRIES` times, and each death is named.
    assert_eq!(error.matches(" ended (").count(), TRIES, "{error}");
    // Its customer heard at once; everyone else was served.
    assert_turned_away(&outcome.night.visits[3], 3, "cooks died");
    assert_served(&outcome.night, (0..7).filter(|&id| id != 3));
    // The pool kept its size: a worker hired for each that died.
    assert_all_reaped(&dir, cooks + TRIES);
}

#[test]
fn when_no_worker_can_be_had_the_server_stops_naming_a_few_lost_orders() {
    let dir = scratch("none");
    // The only worker dies on order 3, and its replacement will not
    // start (the hook makes any worker after the first exit before it is
    // ready): no worker can be had.
    let model = Model {
        serve: |listener, cooks, shift| {
            let hooks = [
                ("PROCESSES_WORKER_ABORT_ON", "3"),
                ("PROCESSES_WORKER_STARTS", "1"),
            ];
            serve_with(hooked("none", &hooks), listener, cooks, shift)
        },
        ..MODEL
    };
    let outcome = night(&model, 1, &workload(64));
    let error = outcome.served.expect_err("nobody is left to cook");
    assert!(
        error.starts_with("no worker process can be had: worker 1 (pid "),
        "{error}"
    );
    assert!(error.contains("before it was ready"), "{error}");
    assert!(error.contains("lost: order 3 (worker 0 (pid"), "{error}");
    // A count and a few names, not a list as long as the night.
    assert!(error.matches("order ").count() <= 5, "{error}");
    assert!(error.len() < 1000, "{} bytes: {error}", error.len());
    // The orders before 3 were cooked before it killed anyone; everyone
    // after was told, not left hanging. (The customers returned at all:
    // none of them waits for ever.)
    assert_served(&outcome.night, 0..3);
    assert!(outcome.night.visits[3..].iter().all(|v| v.digest.is_none()));
    assert_all_reaped(&dir, 1);
}

/// A worker stopped mid-order (`kill -STOP`) answers nothing, ever: the
/// dispatcher kills it at the order's deadline, hires another, and the
/// order is served. With one worker, so the replacement is what serves.
#[cfg(unix)]
#[test]
fn a_stopped_worker_is_killed_at_its_deadline_and_replaced() {
    let dir = scratch("stop");
    let model = Model {
        serve: |listener, cooks, shift| {
            let worker = hooked("stop", &[("PROCESSES_WORKER_STALL_ON", "5")]);
            serve_with(worker, listener, cooks, shift)
        },
        ..MODEL
    };
    let workload = workload(16);
    let began = Instant::now();
    let stopped = AtomicU32::new(0);
    let outcome = thread::scope(|scope| {
        scope.spawn(|| {
            let pid = stalled_pid(&dir, began);
            signal("-STOP", pid);
            stopped.store(pid, Ordering::SeqCst);
        });
        night(&model, 1, &workload)
    });
    outcome.served.expect("a stopped worker costs no order");
    let checksum =
        verify(&workload, &outcome.night).expect("every plate checks");
    assert_eq!(checksum, workload.expected_checksum());
    // Well within the minute the worker would have stalled for.
    assert!(began.elapsed() < LIMIT, "took {:?}", began.elapsed());
    assert_ne!(stopped.load(Ordering::SeqCst), 0, "the worker was stopped");
    // The stopped worker and its replacement.
    assert_all_reaped(&dir, 2);
}

/// The only worker, killed mid-order: a new one is hired and serves on.
#[cfg(unix)]
#[test]
fn a_dead_worker_is_replaced_even_the_only_one() {
    let dir = scratch("only");
    let model = Model {
        serve: |listener, cooks, shift| {
            let worker = hooked("only", &[("PROCESSES_WORKER_STALL_ON", "3")]);
            serve_with(worker, listener, cooks, shift)
        },
        ..MODEL
    };
    let workload = workload(16);
    let began = Instant::now();
    let outcome = thread::scope(|scope| {
        scope.spawn(|| signal("-KILL", stalled_pid(&dir, began)));
        night(&model, 1, &workload)
    });
    outcome.served.expect("a killed worker costs no order");
    let checksum =
        verify(&workload, &outcome.night).expect("every plate checks");
    assert_eq!(checksum, workload.expected_checksum());
    assert_all_reaped(&dir, 2);
}

/// Every worker killed at once (stopped, then killed) while one of them
/// holds order 20, stalled, and the rest cook or idle. Each order a dead
/// worker held has had one try; the worker it is handed to next may be
/// dead already without the dispatcher having seen it yet. A try that
/// never reached a live worker is not a try, so nothing may be lost.
/// Sixteen workers, so that many are idle when they die, and fifty
/// nights: counting those deaths as tries, every one of four runs lost an
/// order within its first twenty nights.
#[cfg(target_os = "linux")]
#[test]
fn every_worker_killed_at_once_loses_no_order() {
    const NIGHTS: usize = 50;
    const COOKS: usize = 16;
    let model = Model {
        serve: |listener, cooks, shift| {
            let worker = hooked("all", &[("PROCESSES_WORKER_STALL_ON", "20")]);
            serve_with(worker, listener, cooks, shift)
        },
        ..MODEL
    };
    let workload = workload(64);
    for night_no in 1..=NIGHTS {
        let dir = scratch("all");
        let began = Instant::now();
        let (outcome, killed) = thread::scope(|scope| {
            let killer = scope.spawn(|| {
                stalled_pid(&dir, began);
                let alive: Vec<String> = worker_pids(&dir)
                    .into_iter()
                    .filter(|&pid| !is_gone(pid))
                    .map(|pid| pid.to_string())
                    .collect();
                // All at once, as the dispatcher sees it: `kill` signals
                // one pid after another, and on a busy machine may be held
                // up between two, while a worker it has not reached yet
                // takes an order the first one dropped, and dies with it
                // too: two true tries. Stopped first, no worker dies or
                // takes anything until every one is stopped; then none
                // takes anything more before it dies.
                for how in ["-STOP", "-KILL"] {
                    let sent = Command::new("kill")
                        .arg(how)
                        .args(&alive)
                        .status()
                        .expect("kill(1) runs");
                    assert!(sent.success(), "kill {how} {alive:?} failed");
                }
                alive.len()
            });
            let outcome = night(&model, COOKS, &workload);
            (outcome, killer.join().expect("the killer does not panic"))
        });
        let night = format!("night {night_no} of {NIGHTS}");
        assert_eq!(killed, COOKS, "{night}: every worker was killed");
        if let Err(e) = outcome.served {
            panic!("{night}: {e}");
        }
        let checksum = verify(&workload, &outcome.night)
            .unwrap_or_else(|e| panic!("{night}: {e}"));
        assert_eq!(checksum, workload.expected_checksum(), "{night}");
        assert!(began.elapsed() < LIMIT, "{night}: the stall was waited out");
        for pid in worker_pids(&dir) {
            let proc = format!("/proc/{pid}");
            assert!(!Path::new(&proc).exists(), "{night}: {pid} outlived it");
        }
    }
    let _ = fs::remove_dir_all(pid_dir("all"));
}

/// The pid the stalled worker left in `dir`, once it has.
fn stalled_pid(dir: &Path, began: Instant) -> u32 {
    let stalled = dir.join("stalled");
    loop {
        let text = fs::read_to_string(&stalled).unwrap_or_default();
        if let Ok(pid) = text.parse::<u32>() {
            return pid;
        }
        assert!(began.elapsed() < LIMIT, "no worker stalled");
        thread::sleep(Duration::from_millis(5));
    }
}

/// `kill <signal> <pid>`.
fn signal(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(sent.success(), "kill {signal} {pid} failed");
}

/// A worker command that never says it is ready: `serve` fails within the
/// hire limit, naming the worker, and leaves no child behind.
#[cfg(target_os = "linux")]
#[test]
fn a_worker_that_never_says_ready_fails_the_night_in_time() {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let shift = restaurant::Shift::new(listener.local_addr().expect("bound"));
    let mut mute = Command::new("sleep");
    mute.arg("60");
    let began = Instant::now();
    let error = serve_with(mute, listener, 2, shift)
        .expect_err("a worker that never speaks cannot cook");
    let took = began.elapsed();
    let error = error.to_string();
    assert!(
        error.contains("did not say it was ready within 5 s"),
        "{error}"
    );
    assert!(error.starts_with("worker "), "{error}");
    assert!(took >= HIRE_LIMIT && took < HIRE_LIMIT * 3, "took {took:?}");
    // Other tests' workers are this process's children too: count the
    // `sleep`s only.
    let me = std::process::id();
    assert!(sleepers(me).is_empty(), "left behind: {:?}", sleepers(me));
}

/// The live (not zombie) `sleep` children of process `parent`.
#[cfg(target_os = "linux")]
fn sleepers(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default();
            // "pid (comm) S ppid …"
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut after = tail.split(' ');
            let state = after.nth(1);
            let ppid = after.next().and_then(|p| p.parse::<u32>().ok());
            head.ends_with("(sleep")
                && ppid == Some(parent)
                && !matches!(state, Some("Z" | "X"))
        })
        .collect()
}

#[test]
fn a_malformed_line_is_a_protocol_error_naming_the_worker() {
    let dir = scratch("garble");
    let model = Model {
        serve: |listener, cooks, shift| {
            let garble = [("PROCESSES_WORKER_GARBLE_ON", "3")];
            serve_with(hooked("garble", &garble), listener, cooks, shift)
        },
        ..MODEL
    };
    let outcome = night(&model, 2, &workload(7));
    let error = outcome.served.expect_err("garbage cannot be a plate");
    assert!(error.contains("protocol error: worker"), "{error}");
    assert!(error.contains("(pid "), "{error}");
    assert!(error.contains("\"this is not a reply\""), "{error}");
    assert_turned_away(&outcome.night.visits[3], 3, "the kitchen closed");
    assert_all_reaped(&dir, 2);
}

#[test]
fn a_panicking_cook_is_named_and_the_server_serves_on() {
    // A seed of this test's own: the fault is keyed by the order's start
    // value, so the other tests' orders 3 do not panic.
    const SEED: u64 = 9_001;
    let dir = scratch("panic");
    restaurant::fault::inject(Workload::start_for(Preset::LunchRush, SEED, 3));
    let model = Model {
        serve: |listener, cooks, shift| {
            serve_with(hooked("panic", &[]), listener, cooks, shift)
        },
        ..MODEL
    };
    let workload = scaled_workload(Preset::LunchRush, 7, SEED);
    let outcome = night(&model, 2, &workload);
    outcome
        .served
        .expect("a panicking cook does not stop the server");
    assert!(
        outcome.faults.len() == 1
            && outcome.faults[0].contains("the cook of order 3 panicked"),
        "{:?}",
        outcome.faults
    );
    assert_turned_away(&outcome.night.visits[3], 3, "the cook panicked");
    assert_served(&outcome.night, (0..7).filter(|&id| id != 3));
    // The worker caught the panic and lived on: still 2 workers.
    assert_all_reaped(&dir, 2);
}

/// A child process killed and reaped when dropped, so a failing test
/// leaves no server running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether process `pid` is gone: no /proc entry, or a zombie that only
/// waits for whoever adopted it to reap it.
#[cfg(target_os = "linux")]
fn is_gone(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // "pid (comm) S …": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, s)| s.trim().chars().next());
    matches!(state, Some('Z' | 'X'))
}

/// `kill -9` on the server, where no `Drop` runs, while a worker is in the
/// middle of an order (stalled for a minute, not reading its stdin): the
/// kernel must kill the workers with it, at once.
#[cfg(target_os = "linux")]
#[test]
fn workers_die_with_a_killed_server() {
    let dir = scratch("orphans");
    let child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--cooks", "2"])
        .env("PROCESSES_WORKER_PIDS", &dir)
        .env("PROCESSES_WORKER_STALL_ON", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut server = Killed(child);
    // "<name>: listening on ADDR with K cooks; …": the workers are up.
    let stderr = server.0.stderr.take().expect("stderr is piped");
    let mut line = String::new();
    let _ = BufReader::new(stderr).read_line(&mut line);
    let door: SocketAddr = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    // One customer, order 0: the worker handed it stalls.
    let mut customer = TcpStream::connect(door).expect("the door opens");
    customer
        .write_all(workload(1).orders()[0].line().as_bytes())
        .expect("the order is said");
    let began = Instant::now();
    let stalled = dir.join("stalled");
    while !fs::read_to_string(&stalled).is_ok_and(|t| !t.is_empty()) {
        assert!(began.elapsed() < LIMIT, "no worker took order 0");
        thread::sleep(Duration::from_millis(5));
    }
    let pids = worker_pids(&dir);
    assert_eq!(pids.len(), 2, "workers started: {pids:?}");

    drop(server); // SIGKILL, and reaped
    let killed = Instant::now();
    while !pids.iter().all(|&pid| is_gone(pid)) {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "workers {pids:?} outlived their server"
        );
        thread::sleep(Duration::from_millis(10));
    }
    drop(customer);
    let _ = fs::remove_dir_all(&dir);
}

/// `kill -9` on a night's server while its workers simmer (time-scale
/// 0.05 makes every simmer twenty times longer): every worker must be gone
/// within a second or two, at once rather than at the simmer's end, and
/// none may complain of a broken pipe on the way.
#[cfg(target_os = "linux")]
#[test]
fn workers_end_within_a_second_of_a_killed_night() {
    let dir = scratch("night-kill");
    let child = Command::new(BINARY)
        .args(["--time-scale", "0.05", "--cooks", "2", "--orders", "40"])
        .env("PROCESSES_WORKER_PIDS", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut server = Killed(child);
    let stderr = server.0.stderr.take().expect("stderr is piped");
    // Whatever the server, its workers and its customers write, until the
    // last of them is gone.
    let (said, heard) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        let _ = said.send(text);
    });
    let began = Instant::now();
    while worker_pids(&dir).len() < 2 {
        assert!(began.elapsed() < LIMIT, "the workers did not start");
        thread::sleep(Duration::from_millis(5));
    }
    // Mid-run: wait until a worker sleeps in a simmer, which lasts
    // seconds at this time scale. (Where the kernel hides where a process
    // waits, /proc/PID/wchan reads "0": then any moment after the start.)
    let pids = worker_pids(&dir);
    let wchan = |pid: u32| {
        fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
    };
    while !pids.iter().any(|&pid| {
        let wchan = wchan(pid);
        wchan.contains("nanosleep") || wchan == "0"
    }) {
        assert!(began.elapsed() < LIMIT, "no worker simmered");
        thread::sleep(Duration::from_millis(5));
    }
    drop(server); // SIGKILL, and reaped
    let killed = Instant::now();
    while !pids.iter().all(|&pid| is_gone(pid)) {
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "workers {pids:?} outlived their server by 2 s"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let stderr = heard
        .recv_timeout(LIMIT)
        .expect("every writer of the server's stderr ended");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    let _ = fs::remove_dir_all(&dir);
}

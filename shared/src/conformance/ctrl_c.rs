//! Ctrl-C at a terminal: the kernel sends SIGINT to the whole foreground
//! process group, so every process a run started in that group hears it
//! too. A child that dies of it (a cook, the model's own redis-server)
//! takes accepted orders with it while its parent is still finishing them.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::cli::DRAIN;
use crate::{Preset, Report, Workload, customers};

/// How many orders the night has: about ten seconds of lunch rush, far
/// longer than [`MIDNIGHT`], so the signal comes with orders in flight.
const ORDERS: usize = 5000;

/// How long after the run is ready for the signal it comes: well into
/// the night, well before its end.
const MIDNIGHT: Duration = Duration::from_secs(2);

/// How long a run may take to be ready, and to be read once ended.
const BOUND: Duration = Duration::from_secs(20);

/// How long after the drain's deadline ([`DRAIN`]) a run may take to be
/// gone: the deadline is timed on a thread of its own, and the process
/// then exits at once (a wide margin for a loaded machine).
const PAST_DRAIN: Duration = Duration::from_secs(2);

/// How long the processes of a run's tree may outlive it: the
/// parent-death signal is immediate.
const ORPHAN_BOUND: Duration = Duration::from_secs(2);

const POLL: Duration = Duration::from_millis(5);

/// Runs `path` as a process group of its own, as a shell runs a command
/// in the foreground, twice: a night, then `--listen` with a night of
/// customers from this process. Mid-night, SIGINT goes to the whole
/// group. Each run must exit 130 with every order it accepted served,
/// say nothing on stderr under its name but its closing lines, and leave
/// no process of its tree (as it stood when signalled) running within
/// two seconds. Linux only: the tree is read from /proc.
pub fn check_ctrl_c_to_the_group(path: &str) {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    night(path, &name);
    listen(path, &name);
}

/// A night: the report says it was interrupted, part-way.
fn night(path: &str, name: &str) {
    let orders = ORDERS.to_string();
    let args = ["--preset", "lunch-rush", "--orders", &orders, "--json"];
    let mut run = Group::spawn(path, &args);
    run.wait_for_handler();
    thread::sleep(MIDNIGHT);
    let tree = run.interrupt();
    let code = run.end();
    let stderr = run.stderr();
    assert!(!tree.is_empty(), "{path}: no customers' process: {stderr}");
    // A lunch rush's orders take milliseconds: drained, never stopped.
    assert!(!stderr.contains("draining"), "{path}: {stderr}");
    let expected = [format!("{name}: interrupted: no new customers")];
    assert_only(path, &stderr, name, &expected);
    assert_eq!(code, Some(130), "{path}: {stderr}");
    let stdout = run.stdout();
    let report: Report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{path}: not a report ({e}): {stdout}{stderr}")
    });
    assert!(report.interrupted, "{path}: not interrupted: {stdout}");
    assert!(
        report.served > 0 && report.served < report.orders,
        "{path}: the signal came outside the night: {stdout}"
    );
    assert_gone(path, &tree);
}

/// `--listen`, with customers from this process: every customer rung up
/// before closing got a plate.
fn listen(path: &str, name: &str) {
    let args = ["--listen", "127.0.0.1:0", "--preset", "lunch-rush"];
    let mut run = Group::spawn(path, &args);
    let door = run.door();
    let workload = Workload::generate(Preset::LunchRush, ORDERS, 3);
    let stop = AtomicBool::new(false);
    let (code, night, tree) = thread::scope(|scope| {
        let customers =
            scope.spawn(|| customers::visit(&workload, door, &stop, || {}));
        thread::sleep(MIDNIGHT);
        let tree = run.interrupt();
        let code = run.end();
        // Those yet to walk in would find the door shut: none come.
        stop.store(true, Ordering::SeqCst);
        let night = customers.join().expect("the customers' thread");
        (code, night, tree)
    });
    let stderr = run.stderr();
    let expected = [
        format!("{name}: listening on"),
        format!("{name}: closing: no new customers"),
        format!("{name}: closed after serving"),
    ];
    assert_only(path, &stderr, name, &expected);
    assert_eq!(code, Some(130), "{path} --listen: {stderr}");
    let night = night.unwrap_or_else(|e| panic!("the customers: {e}"));
    let mut served = 0;
    for (id, visit) in night.visits.iter().enumerate() {
        if visit.rung.is_some() {
            assert!(
                visit.digest.is_some() && visit.trouble.is_none(),
                "{path} --listen: order {id} was rung up, not served: \
                 {visit:?}"
            );
            served += 1;
        }
    }
    assert!(
        served > 0 && served < ORDERS,
        "{path} --listen: the signal came outside the night ({served} \
         served)"
    );
    assert_gone(path, &tree);
}

/// Runs `path` as [`check_ctrl_c_to_the_group`] does, on a night whose
/// orders cannot finish within the drain: `takeout` with time slowed a
/// thousandfold, so each order simmers for minutes and customers walk in
/// a tenth of a second apart. SIGINT to the group comes with orders in
/// the kitchen. The run must stop [`DRAIN`] later (within a margin),
/// exit 130, say which orders it lost (ids of orders that had walked in),
/// print no report, and leave no process of its tree running.
pub fn check_a_stopped_drain(path: &str) {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args = [
        "--preset",
        "takeout",
        "--orders",
        "100",
        "--time-scale",
        "0.001",
        "--json",
    ];
    let mut run = Group::spawn(path, &args);
    run.wait_for_handler();
    thread::sleep(MIDNIGHT);
    let tree = run.interrupt();
    let signalled = Instant::now();
    let code = run.end();
    let took = signalled.elapsed();
    let stderr = run.stderr();
    let expected = [
        format!("{name}: interrupted: no new customers"),
        format!("{name}: stopped after {} s of draining", DRAIN.as_secs()),
    ];
    assert_only(path, &stderr, &name, &expected);
    assert_eq!(code, Some(130), "{path}: {stderr}");
    assert!(
        took >= DRAIN - Duration::from_millis(100),
        "{path} stopped {took:?} after SIGINT, before the drain's \
         {DRAIN:?} were up: {stderr}"
    );
    // "… stopped after 5 s of draining; 3 orders lost: 0, 1, 2"
    let lost = stderr
        .lines()
        .find(|l| l.starts_with(&expected[1]))
        .and_then(|l| l.split_once("lost: "))
        .map(|(_, ids)| ids.to_owned())
        .unwrap_or_else(|| panic!("{path} named no lost order: {stderr}"));
    // Customers walk in 100 ms apart on average: by the signal, a few
    // dozen at most have, so every id named is among the first orders.
    for id in lost
        .split(", ")
        .map(|id| id.split(' ').next().unwrap_or(id))
    {
        let id: u64 = id
            .parse()
            .unwrap_or_else(|_| panic!("{path}: lost {lost:?}: {stderr}"));
        assert!(id < 100, "{path}: lost {lost:?}: {stderr}");
    }
    assert!(
        run.stdout().is_empty(),
        "{path}: a report from a stopped night"
    );
    assert_gone(path, &tree);
}

/// Every line of `stderr` under the run's `name` starts with one of
/// `expected`: any other (a worker that died of the signal, an order
/// lost) is what this check is for. Lines of others (a redis-server's
/// warnings) are theirs.
fn assert_only(path: &str, stderr: &str, name: &str, expected: &[String]) {
    for line in stderr.lines() {
        let ours = line.starts_with(&format!("{name}:"))
            || line.starts_with(&format!("{name} "));
        assert!(
            !ours || expected.iter().any(|e| line.starts_with(e.as_str())),
            "{path}, SIGINT to its group: {line:?} in\n{stderr}"
        );
    }
}

/// Every process of `tree` is gone (or a zombie) within [`ORPHAN_BOUND`].
fn assert_gone(path: &str, tree: &[u32]) {
    let began = Instant::now();
    loop {
        let alive: Vec<_> = tree.iter().filter(|&&p| alive(p)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            began.elapsed() < ORPHAN_BOUND,
            "{path}: processes {alive:?} of its tree outlived it"
        );
        thread::sleep(POLL);
    }
}

/// Whether `pid` runs: a zombie only waits to be reaped.
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S …": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, s)| s.trim().chars().next());
    !matches!(state, Some('Z' | 'X'))
}

/// Every descendant of `pid`, from each of its threads' children.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut next = vec![pid];
    while let Some(parent) = next.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children"))
                .unwrap_or_default();
            for child in children.split_whitespace() {
                if let Ok(child) = child.parse() {
                    found.push(child);
                    next.push(child);
                }
            }
        }
    }
    found
}

/// A run in a process group of its own, killed with its group if the
/// check fails midway.
struct Group {
    child: Child,
    /// Its stderr, line by line, as it comes.
    lines: mpsc::Receiver<String>,
    said: Arc<Mutex<Vec<String>>>,
    /// Disconnected once the whole of its stderr is read.
    stderr_read: mpsc::Receiver<()>,
    stdout: mpsc::Receiver<String>,
    /// Whether it has exited (and been reaped).
    exited: bool,
}

impl Group {
    fn spawn(path: &str, args: &[&str]) -> Group {
        let mut command = Command::new(path);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        crate::child::die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
        // Both pipes are read on threads that hand over what they read
        // through channels, so that a process of the tree that outlives
        // the run, holding a pipe open, fails the check rather than hang it.
        let (whole, stdout) = mpsc::channel();
        if let Some(mut pipe) = child.stdout.take() {
            thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                let _ = whole.send(text);
            });
        }
        let (tell, lines) = mpsc::channel();
        let (read, stderr_read) = mpsc::channel::<()>();
        let said = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            let said = Arc::clone(&said);
            thread::spawn(move || {
                let _read = read;
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    said.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line.clone());
                    let _ = tell.send(line);
                }
            });
        }
        Group {
            child,
            lines,
            said,
            stderr_read,
            stdout,
            exited: false,
        }
    }

    /// Waits until the run catches SIGINT: sent before, it would kill
    /// the run rather than close it.
    fn wait_for_handler(&mut self) {
        let status = format!("/proc/{}/status", self.child.id());
        let began = Instant::now();
        loop {
            let caught = fs::read_to_string(&status)
                .ok()
                .and_then(|s| {
                    let mask =
                        s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
                    u64::from_str_radix(mask.trim(), 16).ok()
                })
                .is_some_and(|mask| {
                    mask & (1 << (Signal::SIGINT as i32 - 1)) != 0
                });
            if caught {
                return;
            }
            assert!(
                began.elapsed() < BOUND,
                "the run caught no SIGINT within {BOUND:?}: {}",
                self.stderr()
            );
            thread::sleep(POLL);
        }
    }

    /// The door, from the line `--listen` says it on (which comes after
    /// the run catches SIGINT).
    fn door(&mut self) -> SocketAddr {
        let began = Instant::now();
        while let Some(left) = BOUND.checked_sub(began.elapsed()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            if let Some((_, rest)) = line.split_once("listening on ")
                && let Some(Ok(door)) = rest.split(' ').next().map(str::parse)
            {
                return door;
            }
        }
        panic!("it said no door within {BOUND:?}: {}", self.stderr());
    }

    /// SIGINT to the whole group, as a terminal's Ctrl-C: returns the
    /// run's tree as it stood just before.
    fn interrupt(&mut self) -> Vec<u32> {
        let pid = self.child.id();
        let tree = descendants(pid);
        killpg(Pid::from_raw(pid as i32), Signal::SIGINT)
            .expect("the run's group exists");
        tree
    }

    /// Its exit code, within the drain ([`DRAIN`], and [`PAST_DRAIN`]
    /// to be gone) of the signal just sent.
    fn end(&mut self) -> Option<i32> {
        let began = Instant::now();
        let bound = DRAIN + PAST_DRAIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                self.exited = true;
                return status.code();
            }
            assert!(
                began.elapsed() < bound,
                "it did not end within {bound:?} of SIGINT: {}",
                self.stderr()
            );
            thread::sleep(POLL);
        }
    }

    /// What it has said on stderr: all of it once it has exited (and its
    /// tree let go of the pipe within [`BOUND`]).
    fn stderr(&self) -> String {
        if self.exited {
            let _ = self.stderr_read.recv_timeout(BOUND);
        }
        let said = self.said.lock().unwrap_or_else(PoisonError::into_inner);
        said.join("\n")
    }

    /// All of its stdout, once it has exited.
    fn stdout(&mut self) -> String {
        self.stdout.recv_timeout(BOUND).unwrap_or_default()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.exited {
            let _ =
                killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

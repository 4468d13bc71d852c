//! A crate's pattern (`examples/pattern.rs`) run as the server a reader
//! would copy: `--listen 127.0.0.1:0` until SIGINT. It must cut off a
//! client who drips its request, answer every job it took, close an idle
//! connection at once when told to stop, and exit 0 (a stop is a server's
//! normal end) within [`STOP_BOUND`] of the signal.
//!
//! The example's binary is the one cargo built beside the test: `cargo
//! test -p CRATE` (and `--workspace`) builds every example, and one with
//! `test = true` lands in `target/<profile>/examples/<name>-<hash>`, next
//! to the test binary's `deps/`. `cargo test --test pattern` alone builds
//! no example: add `--example NAME`. A binary older than the pattern's
//! source fails the check rather than test stale code.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The longest a pattern may wait for a whole request line. Each pattern
/// names its own (`PATIENCE`), at most this.
pub const PATTERN_PATIENCE: Duration = Duration::from_secs(2);

/// What a busy machine may add to the patience before a connection is
/// seen closed.
const MARGIN: Duration = Duration::from_millis(1500);

/// How long a pattern may take to end once signalled: its jobs take
/// milliseconds, and an idle connection must not hold it.
const STOP_BOUND: Duration = Duration::from_secs(2);

/// How long it may take to say where it listens: a process start.
const START_BOUND: Duration = Duration::from_secs(20);

/// How often the dripping client sends one more byte.
const DRIP: Duration = Duration::from_millis(500);

/// How many connections arrive with a job just before the signal.
const BURST: u64 = 16;

/// Runs the pattern `example` of the crate under test (its name in the
/// crate's `[[example]]`, e.g. `tokio-pattern`) as a server, and checks
/// how it stops:
///
/// 1. a client sending its request one byte every half second, never
///    ending the line, is closed within [`PATTERN_PATIENCE`] + a margin;
/// 2. a connection sends `JOB 7`; another then sends `JOB 8` and gets
///    its `DONE` (so the server took the first, accepted before it); an
///    idle connection opens; [`BURST`] connections send a job each; then
///    SIGINT, to the server alone;
/// 3. the server exits 0 within [`STOP_BOUND`] of the signal, the first
///    job got its `DONE`, and each of the burst got a `DONE` or no word
///    at all (a connection the server had not taken is closed).
///
/// The server runs in a process group of its own, killed whole if a step
/// fails, so nothing is left running. Unix only: it signals the server.
pub fn check_pattern_stops(example: &str) {
    let path = example_binary(example);
    let mut server = Server::spawn(&path);
    let addr = server.address();

    dripping_client_is_cut_off(addr, &server);

    let first = send(addr, 7);
    let witness = read_all(send(addr, 8));
    assert!(
        witness.starts_with("DONE 8 "),
        "{example}: JOB 8 got {witness:?}; stderr: {}",
        server.stderr()
    );
    let idle = TcpStream::connect(addr).expect("connect the idle client");
    let burst: Vec<_> =
        (100..100 + BURST).map(|n| (n, send(addr, n))).collect();

    let signalled = Instant::now();
    kill(server.pid(), Signal::SIGINT).expect("signal the server");
    let code = server.wait(signalled + STOP_BOUND).unwrap_or_else(|| {
        panic!(
            "{example}: still running {STOP_BOUND:?} after SIGINT, with an \
             idle connection open; stderr: {}",
            server.stderr()
        )
    });
    assert_eq!(code, Some(0), "{example}: stderr: {}", server.stderr());

    let answer = read_all(first);
    assert!(
        answer.starts_with("DONE 7 "),
        "{example}: the job taken before the signal got {answer:?}"
    );
    for (n, stream) in burst {
        let answer = read_all(stream);
        assert!(
            answer.is_empty() || answer.starts_with(&format!("DONE {n} ")),
            "{example}: a job sent as the signal came got {answer:?}: \
             either its answer or nothing"
        );
    }
    drop(idle);
}

/// A client who sends `JOB 1111…` a byte at a time, never ending the
/// line: the deadline is for the whole line, so the server must hang up
/// on it within its patience however often a byte comes.
fn dripping_client_is_cut_off(addr: SocketAddr, server: &Server) {
    let bound = PATTERN_PATIENCE + MARGIN;
    let stream = TcpStream::connect(addr).expect("connect the dripper");
    let began = Instant::now();
    let hung_up = Arc::new(AtomicBool::new(false));
    let dripper = {
        let mut stream = stream.try_clone().expect("clone the dripper");
        let hung_up = Arc::clone(&hung_up);
        thread::spawn(move || {
            for &byte in b"JOB ".iter().chain([b'1'].iter().cycle()) {
                if hung_up.load(Ordering::SeqCst)
                    || began.elapsed() > bound
                    || stream.write_all(&[byte]).is_err()
                {
                    return;
                }
                thread::sleep(DRIP);
            }
        })
    };
    let mut reader = &stream;
    reader
        .set_read_timeout(Some(bound))
        .expect("a read timeout");
    let mut said = Vec::new();
    let outcome = reader.read_to_end(&mut said);
    let took = began.elapsed();
    hung_up.store(true, Ordering::SeqCst);
    dripper.join().expect("the dripper");
    let closed = match &outcome {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    };
    assert!(
        closed && took <= bound,
        "a client dripping a byte every {DRIP:?} was still connected after \
         {took:?} ({outcome:?}); the patience is at most \
         {PATTERN_PATIENCE:?}; stderr: {}",
        server.stderr()
    );
}

/// Connects and sends `JOB n`, without waiting for the answer.
fn send(addr: SocketAddr, n: u64) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect a client");
    stream
        .write_all(format!("JOB {n}\n").as_bytes())
        .expect("send a job");
    stream
}

/// Everything the server says until it hangs up, within [`START_BOUND`]:
/// a reset (a connection it never took) reads as nothing more.
fn read_all(mut stream: TcpStream) -> String {
    stream.set_read_timeout(Some(START_BOUND)).expect("timeout");
    let mut said = Vec::new();
    match stream.read_to_end(&mut said) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading an answer: {e}"),
    }
    String::from_utf8_lossy(&said).into_owned()
}

/// The newest build of `example` beside the running test, checked to be
/// no older than the crate's `examples/pattern.rs`.
fn example_binary(example: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/examples
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("examples"))
        .expect("the test binary lives in target/<profile>/deps");
    let hashed = format!("{}-", example.replace('-', "_"));
    let candidates = fs::read_dir(&dir).into_iter().flatten().flatten();
    let newest = candidates
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".exe").unwrap_or(&name);
            let hash = stem.strip_prefix(&hashed);
            stem == example
                || hash.is_some_and(|h| {
                    !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())
                })
        })
        .filter_map(|entry| Some((modified(&entry.path())?, entry.path())))
        .max();
    let Some((built, path)) = newest else {
        panic!(
            "no build of the example {example} in {}: `cargo test -p CRATE` \
             builds it; with `--test pattern`, add `--example {example}`",
            dir.display()
        )
    };
    // Cargo sets it when it runs a test: the crate under test.
    if let Some(crate_dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let source = Path::new(&crate_dir).join("examples/pattern.rs");
        if let Some(written) = modified(&source) {
            assert!(
                built >= written,
                "{} is older than {}: build it again (`cargo test -p \
                 CRATE`, or add `--example {example}`)",
                path.display(),
                source.display()
            );
        }
    }
    path
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The pattern's process, a group of its own, killed with its group if
/// the check fails midway.
struct Server {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<std::sync::Mutex<String>>,
    exited: bool,
}

impl Server {
    fn spawn(path: &Path) -> Server {
        let mut command = Command::new(path);
        command
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        crate::child::die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        // Read on threads, so that a server that never speaks or never
        // lets go of a pipe fails a bound rather than hang the check.
        let (lines, stdout) = mpsc::channel();
        if let Some(pipe) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            });
        }
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    stderr
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&text);
                }
            });
        }
        Server {
            child,
            stdout,
            stderr,
            exited: false,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The address from its first line, `listening on ADDR`.
    fn address(&mut self) -> SocketAddr {
        let line = self.stdout.recv_timeout(START_BOUND).unwrap_or_else(|_| {
            panic!(
                "no `listening on ADDR` on stdout within {START_BOUND:?} of \
                 `--listen 127.0.0.1:0`; stderr: {}",
                self.stderr()
            )
        });
        line.strip_prefix("listening on ")
            .and_then(|addr| addr.trim().parse().ok())
            .unwrap_or_else(|| panic!("not `listening on ADDR`: {line:?}"))
    }

    /// Its exit code, if it exits before `deadline`.
    fn wait(&mut self, deadline: Instant) -> Option<Option<i32>> {
        loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                self.exited = true;
                return Some(status.code());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Its whole group: whatever it started goes with it. Once it is
        // reaped its number may be another's, so then it is left alone.
        if !self.exited {
            let _ = killpg(self.pid(), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

//! The conformance kit: the checks every model's tests run.
//!
//! ```no_run
//! // tests/conformance.rs of an example crate
//! use restaurant::conformance;
//!
//! # const MODEL: restaurant::Model = restaurant::SEQUENTIAL;
//! #[test]
//! fn serves_every_workload() {
//!     conformance::check(&MODEL);
//! }
//!
//! #[test]
//! fn reports_a_panicking_cook() {
//!     conformance::check_panic(&MODEL);
//! }
//!
//! #[test]
//! fn survives_rude_customers() {
//!     conformance::check_rude(&MODEL);
//! }
//! ```
//!
//! [`check`] serves every preset × seeds {1, 2} × orders {0, 1, 7, 64} ×
//! cooks {1, several}, each time-scaled so that its waiting fits in about a
//! tenth of a second, with real customers on a loopback port, and verifies
//! every night. Closing time comes as soon as every customer is rung up, so
//! every case also closes with orders in flight. [`check_panic`] makes one
//! cook panic and expects the panic reported, naming the order, that
//! customer turned away with `ERROR`, and everyone else served.
//! [`check_rude`] sends a garbage line, an oversized line, a customer who
//! hangs up and one who says nothing, then a normal night. Each waits a
//! bounded time, so a model that hangs fails its test instead of hanging
//! it. [`check_binary`] runs the real binary as a reader would;
//! [`report_of`] and [`thread_names`] serve a crate's own tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::cli::Model;
use crate::customers::{self, Night};
use crate::door::{self, Shift};
use crate::verify::verify;
use crate::wire;
use crate::workload::{Preset, Workload};

/// The seeds every case is run with.
pub const SEEDS: [u64; 2] = [1, 2];

/// The order counts every case is run with.
pub const ORDERS: [usize; 4] = [0, 1, 7, 64];

/// The waiting (arrivals and simmers) a case is scaled down to, at most.
const WAITING_BUDGET: Duration = Duration::from_millis(100);

/// How long one case may take before it counts as a hang.
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// One case of the kit.
#[derive(Clone, Debug)]
pub struct Case {
    /// The workload, already time-scaled.
    pub workload: Workload,
    /// Cooks to serve it with.
    pub cooks: usize,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = &self.workload;
        write!(
            f,
            "{} × {} orders, seed {}, {} cooks, time ÷{:.0}",
            w.preset(),
            w.orders().len(),
            w.seed(),
            self.cooks,
            w.time_scale()
        )
    }
}

/// The workload `(preset, orders, seed)` divided in time so that, even
/// served by a single cook who waits out every simmer, its waiting takes
/// about [`WAITING_BUDGET`]. Chops are untouched.
pub fn scaled_workload(preset: Preset, orders: usize, seed: u64) -> Workload {
    let full = Workload::generate(preset, orders, seed);
    let waiting = full.total_simmer() + full.last_arrival();
    let scale = (waiting.as_secs_f64() / WAITING_BUDGET.as_secs_f64()).max(1.0);
    Workload::generate_scaled(preset, orders, seed, scale)
}

/// Every case [`check`] runs for `model`.
pub fn cases(model: &Model) -> Vec<Case> {
    let mut cases = Vec::new();
    for preset in Preset::ALL {
        for seed in SEEDS {
            for orders in ORDERS {
                for cooks in model.cooks.to_try() {
                    cases.push(Case {
                        workload: scaled_workload(preset, orders, seed),
                        cooks,
                    });
                }
            }
        }
    }
    cases
}

/// A model serving on a loopback port, in this process, on a thread of
/// its own.
#[derive(Debug)]
pub struct Server {
    shift: Shift,
    done: mpsc::Receiver<Result<(), String>>,
}

impl Server {
    /// Starts `model` with `cooks` and waits (at most [`TIME_LIMIT`]) until
    /// it opens.
    pub fn start(model: &Model, cooks: usize) -> Result<Server, String> {
        let listener = door::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
        let door = listener.local_addr().map_err(|e| e.to_string())?;
        let shift = Shift::new(door).with_waiters(model.waiters.unwrap_or(1));
        let (done, result) = mpsc::channel();
        let serve = model.serve;
        let server_shift = shift.clone();
        thread::Builder::new()
            .name(format!("kit-{}", model.name))
            .spawn(move || {
                let outcome = serve(listener, cooks, server_shift);
                // The receiver is gone only if the kit already gave up.
                let _ = done.send(outcome.map_err(|e| e.to_string()));
            })
            .map_err(|e| format!("could not start the server's thread: {e}"))?;
        // Wait for the opening, and notice at once a serve that returned
        // (failed) before it.
        let began = std::time::Instant::now();
        while !shift.wait_opened(Duration::from_millis(20)) {
            match result.try_recv() {
                Ok(Err(e)) => {
                    return Err(format!("serve failed before opening: {e}"));
                }
                Ok(Ok(())) => {
                    return Err("serve returned without opening".into());
                }
                Err(_) if began.elapsed() > TIME_LIMIT => {
                    return Err(format!(
                        "serve did not open within {TIME_LIMIT:?}"
                    ));
                }
                Err(_) => {}
            }
        }
        Ok(Server {
            shift,
            done: result,
        })
    }

    /// The door's address.
    pub fn door(&self) -> SocketAddr {
        self.shift.door()
    }

    /// The shift the model serves.
    pub fn shift(&self) -> &Shift {
        &self.shift
    }

    /// Sends `workload`'s customers; the restaurant is told to close once
    /// they are all rung up. Waits at most [`TIME_LIMIT`].
    pub fn customers(&self, workload: &Workload) -> Result<Night, String> {
        let (done, night) = mpsc::channel();
        let (workload, door, shift) =
            (workload.clone(), self.door(), self.shift.clone());
        thread::Builder::new()
            .name("kit-customers".into())
            .spawn(move || {
                let stop = AtomicBool::new(false);
                let night =
                    customers::visit(&workload, door, &stop, || shift.close());
                let _ = done.send(night.map_err(|e| e.to_string()));
            })
            .map_err(|e| format!("could not start the customers: {e}"))?;
        match night.recv_timeout(TIME_LIMIT) {
            Ok(night) => night,
            Err(_) => Err(format!(
                "the customers were not all served within {TIME_LIMIT:?}: \
                 the model hangs"
            )),
        }
    }

    /// Closes the restaurant and waits (at most [`TIME_LIMIT`]) for `serve`
    /// to return.
    pub fn finish(self) -> Result<(), String> {
        self.shift.close();
        match self.done.recv_timeout(TIME_LIMIT) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "serve did not return within {TIME_LIMIT:?} of closing time"
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err("serve panicked instead of returning".to_owned())
            }
        }
    }
}

/// Serves `case` with `model`: starts it, sends the customers, closes, and
/// returns the night and the panics the model reported.
pub fn serve_case(
    model: &Model,
    case: &Case,
) -> Result<(Night, Vec<String>), String> {
    let server = Server::start(model, case.cooks)?;
    let night = server.customers(&case.workload);
    let faults = server.shift().faults();
    let finished = server.finish();
    let night = night?;
    finished?;
    Ok((night, faults))
}

/// Serves and verifies every case of [`cases`]; panics with a list of the
/// cases that failed and why.
pub fn check(model: &Model) {
    let mut failures = Vec::new();
    for case in cases(model) {
        let verdict = serve_case(model, &case).and_then(|(night, faults)| {
            if !faults.is_empty() {
                return Err(format!("a cook panicked: {}", faults.join("; ")));
            }
            let checksum =
                verify(&case.workload, &night).map_err(|e| e.to_string())?;
            let expected = case.workload.expected_checksum();
            if checksum == expected {
                Ok(())
            } else {
                Err(format!("checksum {checksum}, expected {expected}"))
            }
        });
        if let Err(why) = verdict {
            failures.push(format!("{case}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed {} case(s):\n  {}",
        model.name,
        failures.len(),
        failures.join("\n  ")
    );
}

/// Makes one cook panic and expects the model, within the time limit, to
/// report the panic naming the order, to turn that customer away with
/// `ERROR`, and to serve every other customer. Tried with every cook count
/// of [`check`].
pub fn check_panic(model: &Model) {
    const FAULTY: u64 = 3;
    // A seed no other case uses: the fault is keyed by the order's start
    // value, which depends on the seed, so other tests running in this
    // process at the same time are not touched.
    const SEED: u64 = 9_999;
    crate::fault::inject(Workload::start_for(Preset::LunchRush, SEED, FAULTY));
    for cooks in model.cooks.to_try() {
        let workload = scaled_workload(Preset::LunchRush, 7, SEED);
        let case = Case { workload, cooks };
        let (night, faults) = serve_case(model, &case)
            .unwrap_or_else(|e| panic!("{}: {case}: {e}", model.name));
        assert!(
            faults.len() == 1 && faults[0].contains(&format!("order {FAULTY}")),
            "{}: {case}: order {FAULTY}'s cook panicked; the model \
             reported: {faults:?}",
            model.name
        );
        let visit = &night.visits[FAULTY as usize];
        assert!(
            visit.plated.is_none()
                && visit
                    .trouble
                    .as_deref()
                    .is_some_and(|t| t.contains("turned away")),
            "{}: {case}: order {FAULTY}'s customer should be told ERROR: \
             {visit:?}",
            model.name
        );
        for (i, visit) in night.visits.iter().enumerate() {
            if i as u64 != FAULTY {
                assert!(
                    visit.digest.is_some() && visit.trouble.is_none(),
                    "{}: {case}: order {i} was not served after order \
                     {FAULTY}'s cook panicked: {visit:?}",
                    model.name
                );
            }
        }
    }
}

/// Connects to `door` and reads the greeting.
fn greeted(
    door: SocketAddr,
) -> Result<(TcpStream, BufReader<TcpStream>), String> {
    let stream =
        TcpStream::connect(door).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(TIME_LIMIT))
        .map_err(|e| e.to_string())?;
    let mut reader =
        BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("no greeting: {e}"))?;
    if line != wire::NEXT {
        return Err(format!("expected NEXT, heard {line:?}"));
    }
    Ok((stream, reader))
}

/// Says `line` after the greeting and expects `ERROR …` and then the end.
fn refused(door: SocketAddr, line: &[u8]) -> Result<(), String> {
    let (mut stream, mut reader) = greeted(door)?;
    stream.write_all(line).map_err(|e| format!("write: {e}"))?;
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .map_err(|e| format!("no reply: {e}"))?;
    if !reply.starts_with("ERROR ") {
        return Err(format!("expected ERROR, heard {reply:?}"));
    }
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .map_err(|e| format!("after ERROR: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "more after ERROR: {:?}",
            String::from_utf8_lossy(&rest)
        ));
    }
    Ok(())
}

/// Rude customers: a garbage line and an oversized line (each must get
/// `ERROR` and a closed connection), one who hangs up at once and one who
/// connects and says nothing; then a normal night, which must be served in
/// full, and closing time, which must come even with the silent customer
/// still connected.
pub fn check_rude(model: &Model) {
    let name = model.name;
    let server = Server::start(model, model.cooks.to_try()[0])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let door = server.door();
    if let Err(e) = refused(door, b"HELLO\n") {
        panic!("{name}: a garbage line: {e}");
    }
    if let Err(e) = refused(door, &vec![b'x'; 2 * wire::MAX_LINE]) {
        panic!("{name}: an oversized line: {e}");
    }
    drop(TcpStream::connect(door));
    let silent = TcpStream::connect(door);
    let workload = scaled_workload(Preset::LunchRush, 20, 3);
    let night = server
        .customers(&workload)
        .unwrap_or_else(|e| panic!("{name}: after rude customers: {e}"));
    match verify(&workload, &night) {
        Ok(sum) => assert_eq!(sum, workload.expected_checksum(), "{name}"),
        Err(e) => panic!("{name}: after rude customers, a normal night: {e}"),
    }
    if let Err(e) = server.finish() {
        panic!("{name}: with a silent customer connected: {e}");
    }
    drop(silent);
}

/// Runs `path args…`: its exit code, stdout and stderr.
fn run_binary(path: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

/// Runs `path args… --json`, as a test reads a model's own figures, and
/// returns the report it prints:
///
/// ```no_run
/// # let path = "target/debug/sequential";
/// let report = restaurant::conformance::report_of(path, &["--cooks", "3"]);
/// // `None` off Linux: the OS gives no thread count there.
/// if let Some(peak) = report.peak_threads {
///     assert!(peak >= 3, "{peak} threads");
/// }
/// ```
///
/// Panics, naming the command and quoting its stderr, unless the binary
/// exits 0 and prints exactly one line that parses as a [`crate::Report`].
pub fn report_of(path: &str, args: &[&str]) -> crate::Report {
    let args = [args, &["--json"]].concat();
    let (code, stdout, stderr) = run_binary(path, &args);
    assert_eq!(code, Some(0), "{path} {args:?} failed: {stderr}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "{path} {args:?}: not one line: {stdout}{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{path} {args:?}: bad JSON ({e}): {stdout}{stderr}")
    })
}

/// The names of the calling process's threads now, as the kernel keeps
/// them in `/proc/self/task/*/comm` (Linux cuts a name to 15 bytes). Empty
/// where there is no /proc, that is off Linux: a test that counts threads
/// by name checks `cfg!(target_os = "linux")` first.
pub fn thread_names() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let comm = task.ok()?.path().join("comm");
            Some(std::fs::read_to_string(comm).ok()?.trim().to_owned())
        })
        .collect()
}

/// Runs `--trace` and checks the timeline: well-formed SVG, at least one
/// lane, exactly one ring-up bar per order and at least one bar per chop.
fn check_timeline(path: &str) {
    let file = std::env::temp_dir().join(format!(
        "timeline-{}-{}.svg",
        std::process::id(),
        path.rsplit(['/', '\\']).next().unwrap_or("model")
    ));
    let file_arg = file.to_string_lossy().into_owned();
    let args = [
        "--preset",
        "big-order",
        "--orders",
        "60",
        "--time-scale",
        "20",
    ];
    let args = [&args[..], &["--trace", &file_arg]].concat();
    let (code, _, stderr) = run_binary(path, &args);
    assert_eq!(code, Some(0), "{path} --trace failed: {stderr}");
    let svg = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{path} --trace wrote no file: {e}"));
    let _ = std::fs::remove_file(&file);
    let doc = roxmltree::Document::parse(&svg)
        .unwrap_or_else(|e| panic!("{path} --trace: not well-formed SVG: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let count = |class: &str| {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .count()
    };
    let workload = Workload::generate_scaled(Preset::BigOrder, 60, 1, 20.0);
    let chops = workload
        .orders()
        .iter()
        .flat_map(|o| o.steps())
        .filter(|s| matches!(s, crate::Step::Chop(_)))
        .count();
    assert!(count("lane") >= 1, "{path} --trace: no lanes");
    assert_eq!(
        count("ring-up"),
        60,
        "{path} --trace: one ring-up per order"
    );
    assert!(count("chop") >= chops, "{path} --trace: a bar per chop");
}

/// Runs an example's real binary, as a reader would, and checks the
/// contract of its command line:
///
/// - on every preset at its default size (time-divided by 1000, so waiting
///   takes a few seconds at most), `--json` prints exactly one line whose
///   checksum is the workload's expected checksum;
/// - bad arguments exit 2 with a message naming the argument;
/// - the hidden `--fault-order` exits 1 with a message naming the order;
/// - `--trace` draws a well-formed timeline with a bar for every ring-up
///   and chop;
/// - `--listen` serves customers who come from outside, survives a garbage
///   line, and returns with 130 within a few seconds of SIGINT (Unix).
///
/// Call it from an integration test with the path cargo gives:
/// `check_binary(env!("CARGO_BIN_EXE_<name>"))`.
pub fn check_binary(path: &str) {
    let run = |args: &[&str]| run_binary(path, args);

    for preset in Preset::ALL {
        let args = ["--preset", preset.name(), "--time-scale", "1000"];
        let report = report_of(path, &args);
        let expected = Workload::generate(preset, preset.default_orders(), 1)
            .expected_checksum()
            .to_string();
        assert_eq!(report.checksum, expected, "{path} {args:?}");
        assert_eq!(report.served, report.orders, "{path} {args:?}");
    }

    for (args, named) in [
        (&["--cooks", "0"][..], "--cooks"),
        (&["--orders", "-1"], "--orders"),
        (&["--orders", "1000001"], "--orders"),
        (&["--preset", "brunch"], "--preset"),
        (&["--no-such-flag"], "--no-such-flag"),
    ] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(2), "{path} {args:?} should exit 2: {stderr}");
        assert!(stdout.is_empty(), "{path} {args:?} printed {stdout}");
        assert!(stderr.contains(named), "{path} {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{path} {args:?}: {stderr}");
    }

    check_timeline(path);

    let args = [
        "--orders",
        "20",
        "--time-scale",
        "100",
        "--fault-order",
        "11",
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, Some(1), "{path} {args:?} should exit 1: {stderr}");
    assert!(stdout.is_empty(), "{path} {args:?} printed {stdout}");
    assert!(stderr.contains("order 11"), "{path} {args:?}: {stderr}");

    #[cfg(unix)]
    check_listen(path);
}

/// Runs `path --listen 127.0.0.1:0`, sends a garbage line and a night of
/// customers from this process, then SIGINT: exit 130 within a few
/// seconds, every customer served.
#[cfg(unix)]
fn check_listen(path: &str) {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let mut server = Command::new(path)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let mut stderr = BufReader::new(server.stderr.take().expect("piped"));
    // "<name>: listening on ADDR with K cooks; …"
    let mut line = String::new();
    let door: Option<SocketAddr> =
        stderr.read_line(&mut line).ok().and_then(|_| {
            line.split_once("listening on ")?
                .1
                .split(' ')
                .next()?
                .parse()
                .ok()
        });
    let Some(door) = door else {
        let _ = server.kill();
        panic!("{path} --listen: no address in {line:?}");
    };
    let outcome = refused(door, b"GARBAGE\n").and_then(|()| {
        let workload = scaled_workload(Preset::LunchRush, 30, 5);
        let stop = AtomicBool::new(false);
        let night = customers::visit(&workload, door, &stop, || {})
            .map_err(|e| e.to_string())?;
        let sum = verify(&workload, &night).map_err(|e| e.to_string())?;
        if sum == workload.expected_checksum() {
            Ok(())
        } else {
            Err(format!("checksum {sum}"))
        }
    });
    let interrupted = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::SIGINT,
    );
    let status = loop {
        if let Ok(Some(status)) = server.try_wait() {
            break Some(status);
        }
        if interrupted.elapsed() > Duration::from_secs(5) {
            let _ = server.kill();
            let _ = server.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    if let Err(e) = outcome {
        panic!("{path} --listen: {e}");
    }
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    match status {
        Some(status) => assert_eq!(
            status.code(),
            Some(130),
            "{path} --listen after SIGINT: {status}; {rest}"
        ),
        None => panic!("{path} --listen did not return within 5 s of SIGINT"),
    }
}

/// The environment variable that makes [`check_thread_limit`] the child:
/// `BUDGET:COOKS`.
#[cfg(target_os = "linux")]
const THREAD_LIMIT_CHILD: &str = "RESTAURANT_KIT_THREAD_LIMIT";

/// How long a model may take to end once the OS refuses it a thread.
pub const REFUSAL_LIMIT: Duration = Duration::from_secs(10);

/// The OS refuses the model a thread: `serve` must either serve the night
/// in full, every plate verified, or return an error that says "the OS
/// refused a thread (N alive)"; within [`REFUSAL_LIMIT`] either way, with
/// no hang, no spin, no abort and no bare OS error.
///
/// The model is run twice, with cooks 3 (1 where it has exactly one): once
/// with no thread to spare, once with one. Each run is a child process of
/// the test binary (this same test, run again with an environment variable
/// set) under a user id of its own with `RLIMIT_NPROC` set to the threads
/// it has plus the spare: the limit counts every task of a user, so a user
/// of its own makes the count exactly the child's, whatever else runs on
/// the machine. The customers come from this process, which has no limit.
/// A child that does not end in time is killed, so a model that hangs
/// fails the test without keeping its threads.
///
/// Root ignores `RLIMIT_NPROC`, and only root can take on another user id,
/// so this needs root (to drop its privileges in the child); otherwise it
/// prints why and does nothing. The test binary must be readable and
/// executable by others, as cargo makes it.
#[cfg(target_os = "linux")]
pub fn check_thread_limit(model: &Model) {
    if let Ok(spec) = std::env::var(THREAD_LIMIT_CHILD) {
        thread_limit_child(model, &spec);
    }
    let name = model.name;
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uids = s.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(uids.split_whitespace().nth(1)? == "0")
        })
        .unwrap_or(false);
    if !root {
        println!(
            "{name}: thread-limit check skipped: it needs root, to run the \
             model under a user of its own (root ignores RLIMIT_NPROC)"
        );
        return;
    }
    let Some(test) = thread::current().name().map(str::to_owned) else {
        println!(
            "{name}: thread-limit check skipped: the test's thread has no \
             name to run it again by"
        );
        return;
    };
    let cooks = *model.cooks.to_try().last().unwrap_or(&1);
    for spare in [0, 1] {
        match thread_limit_run(model, &test, spare, cooks) {
            Ok(Some(line)) => {
                println!("{name}, {spare} thread(s) to spare: {line}")
            }
            Ok(None) => return,
            Err(why) => panic!(
                "{name} with --cooks {cooks} and {spare} thread(s) to \
                 spare: {why}"
            ),
        }
    }
}

/// One run of [`check_thread_limit`]: what happened (`Ok(None)` when the
/// child could not be run as another user: skipped, said why).
#[cfg(target_os = "linux")]
fn thread_limit_run(
    model: &Model,
    test: &str,
    spare: usize,
    cooks: usize,
) -> Result<Option<String>, String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // A user id nobody has: the child's tasks are the only ones it counts.
    let uid = 2_000_000_000 + std::process::id();
    let began = Instant::now();
    let spawned = Command::new(&exe)
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(THREAD_LIMIT_CHILD, format!("{spare}:{cooks}"))
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            println!(
                "{}: thread-limit check skipped: user {uid} may not run {}: \
                 {e}",
                model.name,
                exe.display()
            );
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot run {}: {e}", exe.display())),
    };
    let mut stdin = child.stdin.take();
    let (said, heard) = mpsc::channel::<String>();
    if let Some(stdout) = child.stdout.take() {
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if said.send(line).is_err() {
                    return;
                }
            }
        });
    }
    let stderr = child.stderr.take().map(|stderr| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        })
    });
    let deadline = began + REFUSAL_LIMIT;
    let next = |heard: &mpsc::Receiver<String>| -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = heard.recv_timeout(left).ok()?;
            // libtest may have begun the line ("test name ... ").
            if let Some((_, kit)) = line.split_once("KIT ") {
                return Some(kit.to_owned());
            }
        }
    };
    let mut outcome = None;
    let mut night = None;
    let mut door = None;
    while outcome.is_none() {
        let Some(line) = next(&heard) else { break };
        if let Some(addr) = line.strip_prefix("DOOR ") {
            door = addr.parse::<SocketAddr>().ok();
        } else if line == "OPEN" {
            // The model is up: send a burst of customers, whose simmers
            // overlap, so that a model that starts threads per order or
            // per chop asks for several at once.
            let Some(door) = door else { break };
            let workload = scaled_workload(Preset::Takeout, 40, 4);
            let (done, result) = mpsc::channel();
            let for_them = workload.clone();
            thread::spawn(move || {
                let stop = AtomicBool::new(false);
                let _ =
                    done.send(customers::visit(&for_them, door, &stop, || {}));
            });
            let left = deadline.saturating_duration_since(Instant::now());
            night = Some((workload, result.recv_timeout(left).ok()));
            // Closing time, said over the child's stdin.
            if let Some(mut pipe) = stdin.take() {
                let _ = writeln!(pipe, "CLOSE");
            }
        } else if let Some(rest) = line.strip_prefix("SERVED ") {
            outcome = Some(rest.to_owned());
        }
    }
    drop(stdin);
    // The child exits once it has said how `serve` ended; one that has
    // not by the deadline hangs, and is killed with every thread it has.
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let took = began.elapsed();
    let stderr = stderr
        .and_then(|t| t.join().ok())
        .unwrap_or_default()
        .lines()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n    ");
    let Some(status) = status else {
        return Err(format!(
            "did not end within {REFUSAL_LIMIT:?} (killed); it said {outcome:?}; \
             stderr:\n    {stderr}"
        ));
    };
    let Some(outcome) = outcome else {
        return Err(format!(
            "ended ({status}) without saying how serve ended; stderr:\n    \
             {stderr}"
        ));
    };
    if !status.success() {
        return Err(format!("ended with {status} after {outcome}"));
    }
    if let Some(error) = outcome.strip_prefix("ERR ") {
        if error.contains("the OS refused a thread (")
            && error.contains(" alive)")
        {
            return Ok(Some(format!("refused in {took:.1?}: {error}")));
        }
        return Err(format!(
            "serve failed without naming the refused thread: {error}; \
             stderr:\n    {stderr}"
        ));
    }
    if outcome != "OK" {
        return Err(format!("{outcome}; stderr:\n    {stderr}"));
    }
    // Served without complaint: then every plate must be right.
    let Some((workload, Some(Ok(night)))) = night else {
        return Err(format!(
            "serve returned Ok, but the customers' night was {night:?}"
        ));
    };
    let sum = verify(&workload, &night)
        .map_err(|e| format!("serve returned Ok, but the night failed: {e}"))?;
    if sum != workload.expected_checksum() {
        return Err(format!("serve returned Ok with checksum {sum}"));
    }
    Ok(Some(format!(
        "served all {} orders in {took:.1?}",
        night.visits.len()
    )))
}

/// The child of [`check_thread_limit`]: limits its threads, serves, says
/// how `serve` ended on stdout (`KIT …` lines), and exits.
#[cfg(target_os = "linux")]
fn thread_limit_child(model: &Model, spec: &str) -> ! {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "KIT {line}");
        let _ = out.flush();
    };
    let mut parts = spec.split(':').map(|p| p.parse::<usize>().ok());
    let (Some(Some(spare)), Some(Some(cooks))) = (parts.next(), parts.next())
    else {
        say(&format!("SERVED BAD-SPEC {spec}"));
        std::process::exit(0);
    };
    let listener = match door::bind(SocketAddr::from(([127, 0, 0, 1], 0))) {
        Ok(listener) => listener,
        Err(e) => {
            say(&format!("SERVED BIND {e}"));
            std::process::exit(0);
        }
    };
    let Ok(addr) = listener.local_addr() else {
        std::process::exit(0);
    };
    let shift = Shift::with_hooks(
        addr,
        Box::new(move || say("OPEN")),
        Box::new(|fault| eprintln!("error: {fault}")),
    );
    // Closing time comes over stdin; this thread starts before the limit.
    let closer = shift.clone();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        closer.close();
    });
    // Wait until the closer is counted, then allow `spare` more threads.
    let alive = loop {
        match crate::limits::threads_alive() {
            Some(n) if n >= 2 => break n,
            Some(_) => thread::sleep(Duration::from_millis(1)),
            None => {
                say("SERVED NO-PROC");
                std::process::exit(0);
            }
        }
    };
    let hard = getrlimit(Resource::RLIMIT_NPROC).map_or(u64::MAX, |(_, h)| h);
    let limit = alive + spare as u64;
    if let Err(e) = setrlimit(Resource::RLIMIT_NPROC, limit, hard) {
        say(&format!("SERVED RLIMIT {e}"));
        std::process::exit(0);
    }
    say(&format!("DOOR {addr}"));
    let serve = model.serve;
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve(listener, cooks, shift)
    }));
    let line = match served {
        Ok(Ok(())) => "SERVED OK".to_owned(),
        Ok(Err(e)) => {
            format!("SERVED ERR {}", e.to_string().replace('\n', " "))
        }
        Err(payload) => {
            format!("SERVED PANIC {}", crate::panic_message(&*payload))
        }
    };
    say(&line);
    std::process::exit(0);
}

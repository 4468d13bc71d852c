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
//! drips its line too slowly (turned away once the patience is over, not
//! held as long as it drips), a customer who hangs up and one who says
//! nothing, then a normal night. Each waits a
//! bounded time ([`time_limit`]), so a model that hangs fails its test
//! instead of hanging it. [`check_binary`] runs the real binary as a reader
//! would; [`report_of`] and [`thread_names`] serve a crate's own tests.
//! `check_ctrl_c_to_the_group` (Linux; part of [`check_binary`]) sends a
//! night, and `--listen`, the SIGINT a terminal sends to its whole
//! foreground group, and expects the run closed within the drain
//! (`cli::DRAIN`) with nothing lost and nothing of its tree left;
//! `check_a_stopped_drain` sends it to a night whose orders cannot finish
//! within the drain, and expects the run stopped at the drain's end,
//! naming the orders it lost.
//!
//! A hung model cannot be stopped from outside its threads, only killed
//! with its process. So [`check`], [`check_panic`] and [`check_rude`] run
//! the model in a child process: the test binary again, on this one test
//! (`--exact <name>`: libtest names the test's thread after it), told by
//! an environment variable to run the check where it is. The child is a
//! process group of its own and dies with the test. It says each case as
//! it starts and then its verdict, which the test takes for its own, with
//! the same message. When it exits, whatever it left running in its group
//! is killed; when it says nothing new for four time limits (stopped,
//! deadlocked), the whole group is killed and the test fails naming the
//! case that was running. A model that hangs thus leaves no thread and no
//! process behind, worker processes included. Where the test cannot be
//! run again by name (the check is called from another thread, or from a
//! harness of one's own), the check runs in the test's process, as
//! [`Server`] and [`serve_case`] always do, and says so on stderr.

#[cfg(target_os = "linux")]
mod ctrl_c;
#[cfg(target_os = "linux")]
pub use ctrl_c::{check_a_stopped_drain, check_ctrl_c_to_the_group};
#[cfg(unix)]
mod pattern;
#[cfg(unix)]
pub use pattern::{PATTERN_PATIENCE, check_pattern_stops};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

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

/// How long each wait of a case (the opening, the customers, the closing)
/// may take before the model counts as hung, unless
/// [`TIME_LIMIT_VAR`] says otherwise: see [`time_limit`].
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// The environment variable that replaces [`TIME_LIMIT`]: a number of
/// seconds, such as `RESTAURANT_KIT_TIME_LIMIT=120` on a slow machine, or
/// `1` in a test that wants a hang found quickly.
pub const TIME_LIMIT_VAR: &str = "RESTAURANT_KIT_TIME_LIMIT";

/// How long each wait of a case may take: [`TIME_LIMIT`], or the seconds
/// in [`TIME_LIMIT_VAR`]. Panics, naming the variable, if that is not a
/// number of seconds above zero: a limit silently ignored would make a
/// slow machine's failures a mystery.
pub fn time_limit() -> Duration {
    let Some(value) = std::env::var_os(TIME_LIMIT_VAR) else {
        return TIME_LIMIT;
    };
    let text = value.to_string_lossy();
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .unwrap_or_else(|| {
            panic!(
                "{TIME_LIMIT_VAR}={text:?}: expected a number of seconds \
                 above zero"
            )
        })
}

thread_local! {
    /// Whether a wait of the kit on this thread ran out of time: the
    /// model hangs, its threads are still busy, and [`check`] stops
    /// rather than pile more cases on a kitchen that is not done.
    static HUNG: Cell<bool> = const { Cell::new(false) };
}

/// Notes that a wait on this thread ran out of time; returns `why`.
fn hung(why: String) -> String {
    HUNG.with(|h| h.set(true));
    why
}

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
/// about a tenth of a second (`WAITING_BUDGET`). Chops are untouched.
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
    /// Starts `model` with `cooks` and waits (at most [`time_limit`])
    /// until it opens.
    pub fn start(model: &Model, cooks: usize) -> Result<Server, String> {
        let limit = time_limit();
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
                Err(_) if began.elapsed() > limit => {
                    return Err(hung(format!(
                        "serve did not open within {limit:?}"
                    )));
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
    /// they are all rung up. Waits at most [`time_limit`].
    pub fn customers(&self, workload: &Workload) -> Result<Night, String> {
        let limit = time_limit();
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
        match night.recv_timeout(limit) {
            Ok(night) => night,
            Err(_) => Err(hung(format!(
                "the customers were not all served within {limit:?}: \
                 the model hangs"
            ))),
        }
    }

    /// Closes the restaurant and waits (at most [`time_limit`]) for
    /// `serve` to return.
    pub fn finish(self) -> Result<(), String> {
        let limit = time_limit();
        self.shift.close();
        match self.done.recv_timeout(limit) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(hung(format!(
                "serve did not return within {limit:?} of closing time"
            ))),
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
/// cases that failed and why. Runs in a child process, torn down if the
/// model hangs: see [the module's documentation](self).
pub fn check(model: &Model) {
    isolated(model, check_here);
}

/// [`check`], in this process; `announce` hears each case as it starts.
/// After a case that hangs it stops: the model's threads are still busy
/// with it, and every case after would only wait out its time limit too.
fn check_here(model: &Model, announce: &dyn Fn(&str)) {
    let cases = cases(model);
    let total = cases.len();
    let mut failures = Vec::new();
    let mut stopped = String::new();
    for (done, case) in cases.into_iter().enumerate() {
        announce(&case.to_string());
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
        if HUNG.with(Cell::get) {
            stopped = format!(
                "\n  (stopped there: the model hangs; {} case(s) not run)",
                total - done - 1
            );
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed {} case(s):\n  {}{stopped}",
        model.name,
        failures.len(),
        failures.join("\n  ")
    );
}

/// Makes one cook panic and expects the model, within the time limit, to
/// report the panic naming the order, to turn that customer away with
/// `ERROR`, and to serve every other customer. Tried with every cook count
/// of [`check`]. Runs in a child process, torn down if the model hangs.
pub fn check_panic(model: &Model) {
    isolated(model, check_panic_here);
}

/// [`check_panic`], in this process; `announce` hears each case.
fn check_panic_here(model: &Model, announce: &dyn Fn(&str)) {
    const FAULTY: u64 = 3;
    // A seed no other case uses: the fault is keyed by the order's start
    // value, which depends on the seed, so other tests running in this
    // process at the same time are not touched.
    const SEED: u64 = 9_999;
    crate::fault::inject(Workload::start_for(Preset::LunchRush, SEED, FAULTY));
    for cooks in model.cooks.to_try() {
        let workload = scaled_workload(Preset::LunchRush, 7, SEED);
        let case = Case { workload, cooks };
        announce(&format!("a panicking cook, {case}"));
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
        .set_read_timeout(Some(time_limit()))
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

/// How often the dripping customer of [`a_dripping_customer`] says one
/// more byte of its order line: often enough that a read timeout of
/// [`wire::PATIENCE`], restarted by every read, never runs out.
const DRIP_EVERY: Duration = Duration::from_secs(1);

/// How long after the dripping customer's `NEXT` the one behind it
/// comes in.
const BEHIND_AFTER: Duration = Duration::from_millis(300);

/// How long past [`wire::PATIENCE`] a dripping customer may hold the door:
/// the promise is 100 ms, and the kit allows 400 ms more for a loaded
/// machine. The kit's checks run beside other tests, where a thread whose
/// timeout has run out may wait its turn for a core: on two cores with a
/// load average of 13, the blocking models turned the dripping customer
/// away 6 to 40 ms past the patience. A model that times each read instead
/// of the line holds that customer for as long as it drips: no margin
/// hides that.
const DRIP_MARGIN: Duration = Duration::from_millis(100 + 400);

/// A customer who, once greeted, says a valid order line one byte every
/// [`DRIP_EVERY`], never finishing it within the patience, and another
/// who comes in [`BEHIND_AFTER`] later and waits to be greeted. The
/// patience bounds the whole line, counted from `NEXT`, not each read: the
/// first must be turned away (`ERROR`, or the end) within
/// [`wire::PATIENCE`] plus [`DRIP_MARGIN`] of its `NEXT`, and the second
/// greeted within as long of coming in (at once where a waiter is free;
/// once the first is turned away where one cashier listens to one
/// customer at a time). Returns how long each waited.
fn a_dripping_customer(
    door: SocketAddr,
) -> Result<(Duration, Duration), String> {
    let limit = wire::PATIENCE + DRIP_MARGIN;
    let (mut stream, mut reader) = greeted(door)?;
    let greeted_at = Instant::now();
    let behind = thread::Builder::new()
        .name("kit-behind".into())
        .spawn(move || {
            // Its arrival time, not a wait for anything.
            thread::sleep(BEHIND_AFTER);
            let came = Instant::now();
            greeted(door).map(|_| came.elapsed())
        })
        .map_err(|e| format!("could not start the one behind: {e}"))?;
    let line =
        wire::order_line(1, "soup", 0, &[crate::Step::Chop(crate::Work(1))]);
    let mut reply = String::new();
    let mut dripped = 0;
    let refused = loop {
        // Still held one drip past the limit: the model waits for the
        // line, however long it takes to come.
        let held = greeted_at.elapsed();
        if held > limit + DRIP_EVERY || dripped == line.len() {
            break Err(format!(
                "the dripping customer was still held {held:.3?} after \
                 NEXT, {dripped} bytes said; the patience ({:?}) bounds the \
                 whole line, not each read",
                wire::PATIENCE
            ));
        }
        if stream
            .write_all(&line.as_bytes()[dripped..=dripped])
            .is_err()
        {
            break Ok(greeted_at.elapsed());
        }
        dripped += 1;
        // Listen until the next byte is due: the model's ERROR, or its
        // close, ends the drip.
        let due = greeted_at + DRIP_EVERY * dripped as u32;
        let wait = due.saturating_duration_since(Instant::now());
        let wait = wait.max(Duration::from_millis(1));
        if let Err(e) = stream.set_read_timeout(Some(wait)) {
            break Err(format!("set_read_timeout: {e}"));
        }
        match reader.read_line(&mut reply) {
            Ok(_) if reply.is_empty() || reply.starts_with("ERROR ") => {
                break Ok(greeted_at.elapsed());
            }
            Ok(_) => {
                break Err(format!(
                    "expected ERROR or the end, heard {reply:?}"
                ));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) => {}
            // Reset: turned away without a word.
            Err(_) => break Ok(greeted_at.elapsed()),
        }
    };
    // Hang up (a model that still holds the first thus greets the second)
    // before hearing how long the second waited.
    drop((stream, reader));
    let behind = behind
        .join()
        .map_err(|_| "the one behind panicked".to_owned())?
        .map_err(|e| format!("the one behind: {e}"))?;
    let refused = refused?;
    if refused > limit {
        return Err(format!(
            "the dripping customer was turned away only {refused:.3?} after \
             NEXT, beyond {limit:?}"
        ));
    }
    if behind > limit {
        return Err(format!(
            "the customer behind the dripping one was greeted only \
             {behind:.3?} after coming in, beyond {limit:?}"
        ));
    }
    Ok((refused, behind))
}

/// Rude customers: a garbage line and an oversized line (each must get
/// `ERROR` and a closed connection), a customer who drips its line a byte
/// a second with another behind it (neither held much past the patience:
/// see [`a_dripping_customer`]), one who hangs up at once and one who
/// connects and says nothing; then a normal night, which must be served in
/// full, and closing time, which must come even with the silent customer
/// still connected. Runs in a child process, torn down if the model hangs.
pub fn check_rude(model: &Model) {
    isolated(model, check_rude_here);
}

/// [`check_rude`], in this process; `announce` hears each step.
fn check_rude_here(model: &Model, announce: &dyn Fn(&str)) {
    let name = model.name;
    announce("rude customers: the opening");
    let server = Server::start(model, model.cooks.to_try()[0])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let door = server.door();
    announce("rude customers: a garbage line");
    if let Err(e) = refused(door, b"HELLO\n") {
        panic!("{name}: a garbage line: {e}");
    }
    announce("rude customers: an oversized line");
    if let Err(e) = refused(door, &vec![b'x'; 2 * wire::MAX_LINE]) {
        panic!("{name}: an oversized line: {e}");
    }
    announce("rude customers: a dripping customer, and one behind");
    match a_dripping_customer(door) {
        Ok((refused, behind)) => println!(
            "{name}: a dripping customer was turned away {refused:.3?} \
             after NEXT; the one behind was greeted {behind:.3?} after \
             coming in"
        ),
        Err(e) => panic!(
            "{name}: a dripping customer never holds the door past the \
             patience: {e}"
        ),
    }
    announce("rude customers: one who hangs up, one who says nothing");
    drop(TcpStream::connect(door));
    let silent = TcpStream::connect(door);
    let workload = scaled_workload(Preset::LunchRush, 20, 3);
    announce("rude customers, then a normal night");
    let night = server
        .customers(&workload)
        .unwrap_or_else(|e| panic!("{name}: after rude customers: {e}"));
    match verify(&workload, &night) {
        Ok(sum) => assert_eq!(sum, workload.expected_checksum(), "{name}"),
        Err(e) => panic!("{name}: after rude customers, a normal night: {e}"),
    }
    announce("rude customers: closing time with a silent customer connected");
    if let Err(e) = server.finish() {
        panic!("{name}: with a silent customer connected: {e}");
    }
    drop(silent);
}

/// What the kit's child process says on stdout starts with this, so that
/// it stands out from whatever the model and libtest print there.
const SAYS: &str = "RESTAURANT-KIT ";

/// The environment variable that makes a re-run of a test the kit's
/// child. It holds the outcomes (`p` passed, `f` failed) of the checks the
/// test called before the one the child is to run: the child replays
/// those at once, so the test takes the same path to that call as it did
/// in the parent.
const CHILD_VAR: &str = "RESTAURANT_KIT_CHILD";

/// How long the kit's child may stay silent (say no new case) before the
/// parent tears it down. A case's own waits add up to at most three or
/// four [`time_limit`]s, so a model that hangs is normally reported by the
/// case itself, naming what it waited for; this catches a child that
/// cannot report at all: stopped, deadlocked, or stuck where the kit does
/// not expect it.
fn silence_limit() -> Duration {
    time_limit() * 4
}

/// How long the child may take to exit once it has given its verdict.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How often a parent waiting on its child looks whether it has exited.
const POLL: Duration = Duration::from_millis(20);

/// A check's body: the model, and what hears each case as it starts.
type Body = fn(&Model, &dyn Fn(&str));

thread_local! {
    /// The outcomes of the checks the current test (libtest runs each on a
    /// thread of its own) has called so far: `true` for passed.
    static CALLS: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

/// Records this call's outcome when dropped: passed unless unwinding.
struct Recorded;

impl Drop for Recorded {
    fn drop(&mut self) {
        let passed = !thread::panicking();
        CALLS.with(|calls| calls.borrow_mut().push(passed));
    }
}

/// The name of the running test, to run it again by: libtest names a
/// test's thread after the test, even under `--test-threads=1`. `None` on
/// a thread that is not a test's (`main` in a harness of one's own, or a
/// thread the test started).
fn test_name() -> Option<String> {
    thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(str::to_owned)
}

/// Runs `body` on `model` in a child process: this test, run again by name
/// with [`CHILD_VAR`] set. The child is a process group of its own and dies
/// with this thread; whatever it leaves behind when it exits, and the
/// whole of it if it says nothing new within [`silence_limit`], is killed
/// with its group, so a model that hangs leaves no thread or process
/// running. The child's panic is this one's, with the same message.
///
/// Where the test cannot be run again by name (its thread has none, or a
/// re-run does not reach this call), `body` runs in this process, as the
/// kit always did, and says so on stderr.
fn isolated(model: &Model, body: Body) {
    let earlier = CALLS.with(|calls| calls.borrow().clone());
    let _recorded = Recorded;
    if let Some(replay) = std::env::var_os(CHILD_VAR) {
        match replay.as_encoded_bytes().get(earlier.len()) {
            Some(b'p') => return,
            Some(_) => panic!(
                "{}: this check failed in the parent process; replayed",
                model.name
            ),
            None => be_the_child(model, body),
        }
    }
    let name = model.name;
    let not_run = match test_name() {
        None => "the test's thread has no name to run it again by".to_owned(),
        Some(test) => match in_child(model, &test, &earlier) {
            Ok(Ok(())) => return,
            Ok(Err(message)) => panic!("{message}"),
            Err(why) => why,
        },
    };
    eprintln!(
        "{name}: the kit runs in this process ({not_run}); a model that \
         hangs will keep its threads until the test binary ends"
    );
    HUNG.with(|h| h.set(false));
    body(model, &|_| {});
}

/// The child's side of [`isolated`]: runs `body`, saying each case as it
/// starts, then its verdict, and exits at once, with whatever threads and
/// processes the model still has. It never returns to the test.
fn be_the_child(model: &Model, body: Body) -> ! {
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{SAYS}{line}");
        let _ = out.flush();
    };
    say("BEGIN");
    HUNG.with(|h| h.set(false));
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            body(model, &|case| say(&format!("CASE {case}")));
        }));
    if HUNG.with(Cell::get) {
        say("HUNG");
    }
    match outcome {
        Ok(()) => say("PASS"),
        Err(payload) => {
            let message = crate::panic_message(&*payload);
            // One line, whatever the message holds.
            let line = serde_json::to_string(&message)
                .unwrap_or_else(|_| format!("{message:?}"));
            say(&format!("FAIL {line}"));
        }
    }
    std::process::exit(0)
}

/// The parent's side of [`isolated`]: the child's verdict (`Ok(Err)` is a
/// failure, with its message), or why the child did not run the check
/// (`Err`: then the kit runs it in this process).
fn in_child(
    model: &Model,
    test: &str,
    earlier: &[bool],
) -> Result<Result<(), String>, String> {
    let name = model.name;
    let replay: String =
        earlier.iter().map(|&p| if p { 'p' } else { 'f' }).collect();
    let mut child = Rerun::spawn(test, true, |command| {
        command.env(CHILD_VAR, &replay).stdin(Stdio::null());
    })
    .map_err(|e| format!("cannot run the test again: {e}"))?;
    let limit = silence_limit();
    let mut began = false;
    let mut hung = false;
    let mut running = "the test's start, before the check".to_owned();
    let mut deadline = Instant::now() + limit;
    let verdict = loop {
        let line = match child.next(deadline, true) {
            Next::Said(line) => line,
            Next::Ended | Next::Silent => break None,
        };
        deadline = Instant::now() + limit;
        if line == "BEGIN" {
            began = true;
            running = "the check's start".to_owned();
        } else if let Some(case) = line.strip_prefix("CASE ") {
            running = case.to_owned();
        } else if line == "HUNG" {
            hung = true;
        } else if line == "PASS" {
            break Some(Ok(()));
        } else if let Some(message) = line.strip_prefix("FAIL ") {
            let message = serde_json::from_str::<String>(message)
                .unwrap_or_else(|_| message.to_owned());
            break Some(Err(message));
        }
    };
    let silent = verdict.is_none() && !child.has_exited();
    let status = child.end(Instant::now() + EXIT_GRACE);
    let torn_down = "its process was torn down: killed with its whole \
                     process group, the model's threads and every process \
                     it started";
    match verdict {
        Some(Ok(())) => Ok(Ok(())),
        Some(Err(message)) if hung => {
            Ok(Err(format!("{message}\n{name}: {torn_down}")))
        }
        Some(Err(message)) => Ok(Err(message)),
        None if silent => Ok(Err(format!(
            "{name}: nothing new from the check for {limit:?}, during \
             {running}: the model hangs where the kit cannot see it; \
             {torn_down}; its last words on stderr:\n    {}",
            child.stderr_tail(12)
        ))),
        None if !began => Err(format!(
            "run again as `{test}`, the test did not reach the check \
             ({})",
            status.map_or("killed".to_owned(), |s| s.to_string())
        )),
        None => Ok(Err(format!(
            "{name}: the check's process ended ({}) during {running} \
             without a verdict; {torn_down}; its last words on stderr:\n    \
             {}",
            status.map_or("killed".to_owned(), |s| s.to_string()),
            child.stderr_tail(12)
        ))),
    }
}

/// What a [`Rerun`] child said next.
enum Next {
    /// A line the kit's protocol carries, with [`SAYS`] cut off.
    Said(String),
    /// Nothing by the deadline.
    Silent,
    /// The child has exited (or closed its stdout) and said it all.
    Ended,
}

/// The running test, run again by name in a child process: how
/// [`isolated`] and [`check_thread_limit`] keep a model they may have to
/// kill out of the test binary. The child is a process group of its own
/// (on Unix), so killing the group takes every process the model started
/// too; and it dies with the thread that started it.
struct Rerun {
    child: Child,
    /// Its exit status, once it has exited and been reaped.
    status: Option<ExitStatus>,
    /// When it was seen to have exited.
    exited_at: Option<Instant>,
    /// Its stdout, line by line.
    said: mpsc::Receiver<String>,
    /// The last lines of its stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Disconnected once the whole of its stderr is read.
    stderr_read: mpsc::Receiver<()>,
}

/// How many lines of a child's stderr [`Rerun`] keeps.
const STDERR_KEPT: usize = 40;

/// How long [`Rerun::next`] keeps reading after the child exited: its
/// words are already in the pipe.
const DRAIN: Duration = Duration::from_secs(1);

impl Rerun {
    /// Runs the current test binary on `test` alone, `--nocapture`, with
    /// stdout and stderr piped; `configure` adds the rest. With `relay`,
    /// the child's stderr goes on to this test's, line by line. An
    /// `#[ignore]`d test, run here with `--ignored`, is run there too.
    fn spawn(
        test: &str,
        relay: bool,
        configure: impl FnOnce(&mut Command),
    ) -> std::io::Result<Rerun> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .args(["--exact", test, "--include-ignored"])
            .args(["--test-threads=1", "--nocapture"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        crate::child::die_with_parent(&mut command);
        configure(&mut command);
        let mut child = command.spawn()?;
        let (tell, said) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok)
                {
                    if tell.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (read, stderr_read) = mpsc::channel::<()>();
        if let Some(pipe) = child.stderr.take() {
            let kept = Arc::clone(&stderr);
            thread::spawn(move || {
                let _read = read;
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if relay {
                        eprintln!("{line}");
                    }
                    let mut kept =
                        kept.lock().unwrap_or_else(PoisonError::into_inner);
                    if kept.len() == STDERR_KEPT {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        Ok(Rerun {
            child,
            status: None,
            exited_at: None,
            said,
            stderr,
            stderr_read,
        })
    }

    /// The next line of the kit's protocol the child says, by `deadline`.
    /// Other lines are printed here with `relay` (but for libtest's own
    /// preamble), dropped without.
    fn next(&mut self, deadline: Instant, relay: bool) -> Next {
        loop {
            let now = Instant::now();
            let until = match self.exited_at {
                Some(exited) => deadline.min(exited + DRAIN),
                None => deadline,
            };
            if now >= until {
                return if self.exited_at.is_some() {
                    Next::Ended
                } else {
                    Next::Silent
                };
            }
            match self.said.recv_timeout((until - now).min(POLL)) {
                // libtest may have begun the line ("test name ... ").
                Ok(line) => match line.split_once(SAYS) {
                    Some((_, kit)) => return Next::Said(kit.to_owned()),
                    None if relay
                        && !line.is_empty()
                        && !line.starts_with("running 1 test") =>
                    {
                        println!("{line}");
                    }
                    None => {}
                },
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Next::Ended;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.has_exited();
                }
            }
        }
    }

    /// Whether the child has exited. The first time it is seen to have,
    /// whatever is left of its process group is killed: a model's process
    /// that outlived it would hold its pipes open, and run on.
    fn has_exited(&mut self) -> bool {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
            self.exited_at = Some(Instant::now());
            self.kill_group();
        }
        self.status.is_some()
    }

    /// Waits until the child exits, at most until `deadline`, then kills
    /// its whole process group. Its exit status; `None` if it had to be
    /// killed.
    fn end(&mut self, deadline: Instant) -> Option<ExitStatus> {
        while !self.has_exited() {
            if Instant::now() >= deadline {
                self.kill_group();
                let _ = self.child.wait();
                return None;
            }
            thread::sleep(POLL);
        }
        self.status
    }

    /// SIGKILL to the child's process group (Unix), or to the child.
    /// Before the child is reaped the group holds its id; after, the group
    /// lives on only if some of it did, and the kernel does not hand out
    /// an id a live group holds.
    fn kill_group(&mut self) {
        #[cfg(unix)]
        {
            use nix::sys::signal::{Signal, killpg};
            let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = killpg(group, Signal::SIGKILL);
        }
        #[cfg(not(unix))]
        if self.status.is_none() {
            let _ = self.child.kill();
        }
    }

    /// The last `lines` lines of the child's stderr, indented to follow a
    /// message. Once the child has exited, waits (briefly) for the rest of
    /// its stderr first.
    fn stderr_tail(&self, lines: usize) -> String {
        if self.status.is_some() {
            let _ = self.stderr_read.recv_timeout(DRAIN);
        }
        let kept = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        let skip = kept.len().saturating_sub(lines);
        kept.iter()
            .skip(skip)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n    ")
    }
}

impl Drop for Rerun {
    /// A parent that gives up (panics) midway leaves nothing running.
    fn drop(&mut self) {
        if !self.has_exited() {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
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
///   line, and returns with 130 within a few seconds of SIGINT (Unix);
///   `--cooks auto` under it sizes for the preset named, or, for a rule
///   that needs a night, refuses with exit 2 when none is.
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
        // The report says how many cooks served, and they are the ones
        // the command line resolves to (`auto` included).
        let (code, stdout, stderr) =
            run(&[&args[..], &["--print-cooks"]].concat());
        assert_eq!(code, Some(0), "{path} {args:?} --print-cooks: {stderr}");
        assert_eq!(
            stdout.trim().parse::<u64>().ok(),
            Some(report.cooks),
            "{path} {args:?}: --print-cooks said {stdout:?}"
        );
    }
    let (code, stdout, stderr) = run(&["--cooks", "auto", "--print-cooks"]);
    assert_eq!(code, Some(0), "{path} --cooks auto: {stderr}");
    assert!(
        stdout.trim().parse::<u64>().is_ok_and(|k| k >= 1),
        "{path} --cooks auto resolved to {stdout:?}"
    );
    // Under --listen a preset named is the night `auto` sizes for: the
    // cooks of that night served as one. With none named, a rule that
    // needs a night refuses (exit 2, naming --preset) rather than sizing
    // for the default preset unsaid; one that needs none resolves alike.
    let listen = ["--listen", "127.0.0.1:0", "--print-cooks"];
    let (_, night, _) = run(&["--preset", "takeout", "--print-cooks"]);
    let (code, stdout, stderr) =
        run(&[&listen[..], &["--preset", "takeout"]].concat());
    assert_eq!(code, Some(0), "{path} --listen --preset takeout: {stderr}");
    assert_eq!(stdout, night, "{path} --listen --preset takeout");
    let (code, stdout, stderr) = run(&listen);
    match code {
        Some(0) => assert_eq!(
            stdout,
            run(&["--print-cooks"]).1,
            "{path} --listen: {stderr}"
        ),
        Some(2) => assert!(
            stdout.is_empty() && stderr.contains("--preset"),
            "{path} --listen without a preset: {stderr}"
        ),
        _ => panic!("{path} --listen --print-cooks: {code:?}: {stderr}"),
    }

    for (args, named) in [
        (&["--cooks", "0"][..], "--cooks"),
        (&["--cooks", "100000000"], "--cooks"),
        (&["--cooks", "many"], "--cooks"),
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
    #[cfg(target_os = "linux")]
    check_ctrl_c_to_the_group(path);
}

/// Runs `path --listen 127.0.0.1:0 --preset lunch-rush`, sends a garbage
/// line and a night of customers from this process, then SIGINT: exit 130
/// within a few seconds, every customer served.
#[cfg(unix)]
fn check_listen(path: &str) {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    // Sized for the night it is about to be played (a pool sized `auto`
    // needs one named under --listen).
    let mut server = Command::new(path)
        .args(["--listen", "127.0.0.1:0", "--preset", "lunch-rush"])
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

// The real binary under `ulimit -u`, many times over.
#[cfg(target_os = "linux")]
mod refused_threads;
#[cfg(target_os = "linux")]
pub use refused_threads::check_refused_threads_end_cleanly;

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

    // A user id nobody has: the child's tasks are the only ones it counts.
    let uid = 2_000_000_000 + std::process::id();
    let began = Instant::now();
    let spawned = Rerun::spawn(test, false, |command| {
        command
            .env(THREAD_LIMIT_CHILD, format!("{spare}:{cooks}"))
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::piped());
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            println!(
                "{}: thread-limit check skipped: user {uid} may not run the \
                 test binary: {e}",
                model.name,
            );
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot run the test binary: {e}")),
    };
    let mut stdin = child.child.stdin.take();
    let deadline = began + REFUSAL_LIMIT;
    let mut outcome = None;
    let mut night = None;
    let mut door = None;
    while outcome.is_none() {
        let Next::Said(line) = child.next(deadline, false) else {
            break;
        };
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
    let status = child.end(deadline);
    let took = began.elapsed();
    let stderr = child.stderr_tail(12);
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
/// how `serve` ended on stdout (lines that start with [`SAYS`]), and
/// exits.
#[cfg(target_os = "linux")]
fn thread_limit_child(model: &Model, spec: &str) -> ! {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{SAYS}{line}");
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

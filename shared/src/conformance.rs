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
//! ```
//!
//! [`check`] serves every preset × seeds {1, 2} × orders {0, 1, 7, 64} ×
//! cooks {1, several}, each time-scaled so that its waiting fits in about a
//! tenth of a second, and verifies every run. [`check_panic`] injects a
//! panic into one cook and expects an error that names the order. Both run
//! each case on a thread of their own with a time limit, so a model that
//! hangs fails the test instead of hanging it. [`check_binary`] runs the
//! real binary as a reader would; [`report_of`] and [`thread_names`] serve
//! a crate's own tests of its threads.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::cli::Model;
use crate::verify::verify;
use crate::workload::{Preset, Workload};
use crate::{BoxError, Plate};

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

/// Runs `model.serve` on `case` on a thread of its own, waiting at most
/// [`TIME_LIMIT`]. `Err` when the model returned an error, panicked outside
/// a cook, or ran past the limit.
pub fn serve_bounded(model: &Model, case: &Case) -> Result<Vec<Plate>, String> {
    let (done, result) = mpsc::channel();
    let serve = model.serve;
    let orders = case.workload.to_orders();
    let cooks = case.cooks;
    thread::Builder::new()
        .name(format!("kit-{}", model.name))
        .spawn(move || {
            let outcome: Result<Vec<Plate>, BoxError> = serve(orders, cooks);
            // The receiver is gone only if the kit already gave up.
            let _ = done.send(outcome.map_err(|e| e.to_string()));
        })
        .map_err(|e| format!("could not start the case's thread: {e}"))?;
    match result.recv_timeout(TIME_LIMIT) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("no answer within {TIME_LIMIT:?}: the model hangs"))
        }
        // The thread ended without sending: serve panicked.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err("serve panicked instead of returning an error".to_owned())
        }
    }
}

/// Serves and verifies every case of [`cases`]; panics with a list of the
/// cases that failed and why.
pub fn check(model: &Model) {
    let mut failures = Vec::new();
    for case in cases(model) {
        let verdict = serve_bounded(model, &case).and_then(|plates| {
            let checksum =
                verify(&case.workload, &plates).map_err(|e| e.to_string())?;
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

/// Makes one cook panic and expects `serve` to return, within the time
/// limit, an error that names the order. Tried with every cook count of
/// [`check`].
pub fn check_panic(model: &Model) {
    const FAULTY: u64 = 3;
    for cooks in model.cooks.to_try() {
        let mut workload = scaled_workload(Preset::LunchRush, 7, 1);
        assert!(workload.inject_fault(FAULTY));
        let case = Case { workload, cooks };
        match serve_bounded(model, &case) {
            Ok(plates) => panic!(
                "{}: {case}: order {FAULTY}'s cook panicked, yet serve \
                 returned {} plates and no error",
                model.name,
                plates.len()
            ),
            Err(message) => assert!(
                message.contains(&format!("order {FAULTY}")),
                "{}: {case}: the error does not name order {FAULTY}: \
                 {message}",
                model.name
            ),
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
/// - `--fail-order` exits 1 with a message naming the order;
/// - `--trace` draws a well-formed timeline with a bar for every ring-up
///   and chop.
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
        "--fail-order",
        "11",
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, Some(1), "{path} {args:?} should exit 1: {stderr}");
    assert!(stdout.is_empty(), "{path} {args:?} printed {stdout}");
    assert!(stderr.contains("order 11"), "{path} {args:?}: {stderr}");
}

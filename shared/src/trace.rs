//! Recording who did what, on which thread, when: the spans a timeline is
//! drawn from ([`crate::timeline`]).
//!
//! With `--trace FILE.svg` the server records, for every order, the span
//! of its ring-up and of each of its chops, with the OS thread each ran on.
//! Recording is off unless asked for; a ticket carries the flag, so it
//! works across processes too (the spans travel back with the plate).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::recipe::Step;

/// An OS thread, as a timeline names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lane {
    /// The process it belongs to.
    pub pid: u32,
    /// A number unique within its process, in order of first use.
    pub thread: u64,
    /// The thread's name, if it has one (`main`, `tokio-rt-worker`, …).
    pub name: Arc<str>,
}

static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static HERE: Lane = Lane {
        pid: std::process::id(),
        thread: NEXT_THREAD.fetch_add(1, Ordering::Relaxed),
        name: std::thread::current().name().unwrap_or("unnamed").into(),
    };
}

impl Lane {
    /// The calling thread.
    pub fn here() -> Lane {
        HERE.with(Lane::clone)
    }
}

/// Something a thread did, from `start` to `end` (offsets from opening).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Where it ran.
    pub lane: Lane,
    /// When it began.
    pub start: Duration,
    /// When it ended.
    pub end: Duration,
}

/// What a traced order recorded, from ring-up to serving.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// The order's id.
    pub id: u64,
    /// Its recipe, to place the simmers between the chops.
    pub steps: Vec<Step>,
    /// The cashier's ring-up.
    pub ring_up: Option<Span>,
    /// The thread the cook started on, and when.
    pub started_on: Option<Lane>,
    /// When the cook started.
    pub started: Duration,
    /// Each chop, in order, as the slices it was cut into (one slice for a
    /// chop done in one go).
    pub chops: Vec<Vec<Span>>,
    /// When the plate was served.
    pub served: Duration,
}

/// Runs `f` and returns its span on this thread.
pub(crate) fn timed(f: impl FnOnce()) -> Span {
    let start = clock::now();
    f();
    Span {
        lane: Lane::here(),
        start,
        end: clock::now(),
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static RECORDED: Mutex<Vec<Trace>> = Mutex::new(Vec::new());

/// Turns recording on in this process: orders parsed from now on are traced.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether recording is on in this process.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Keeps one served order's trace.
pub(crate) fn record(trace: Trace) {
    RECORDED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(trace);
}

/// Every trace recorded so far in this process, taken out.
pub fn take() -> Vec<Trace> {
    std::mem::take(
        &mut *RECORDED.lock().unwrap_or_else(PoisonError::into_inner),
    )
}

//! Errors a model returns when a run goes wrong, and the test-only fault.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The error type every `serve` returns: any error, as long as it can cross
/// threads. Examples use std's own types so a reader can copy them without
/// learning an error crate first.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A cook panicked while working on an order.
///
/// A model catches the panic where its executor hands it back (a join
/// handle, `catch_unwind`, a closed channel) and reports it with
/// [`crate::Shift::cook_panicked`], naming the order.
#[derive(Debug)]
pub struct CookPanicked {
    /// The order the cook was working on.
    pub order: u64,
    /// The panic's message, when it had a text one.
    pub message: String,
}

impl CookPanicked {
    /// Builds the error from a panic payload, as `catch_unwind`,
    /// `JoinHandle::join` and executors' join errors hand it back.
    pub fn new(order: u64, payload: &(dyn Any + Send)) -> CookPanicked {
        CookPanicked {
            order,
            message: panic_message(payload),
        }
    }
}

impl fmt::Display for CookPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the cook of order {} panicked: {}",
            self.order, self.message
        )
    }
}

impl Error for CookPanicked {}

/// The text of a panic payload: `panic!` with a message carries a `&str` or
/// a `String`; anything else is described, not guessed at.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a text message)".to_owned()
    }
}

/// Whether any fault was injected: the common case reads one flag.
static ANY: AtomicBool = AtomicBool::new(false);

/// The `start` values of the orders whose first chop panics.
static INJECTED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Makes the first chop of the order that starts from `start` panic in this
/// process: the server's hidden `--fault-order` flag and the conformance
/// kit use it to see how a model reports a panicking cook. The fault is
/// keyed by the order's start value, which is unique to its workload, so
/// tests running side by side in one process do not trip each other.
#[doc(hidden)]
pub fn inject(start: u64) {
    INJECTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(start);
    ANY.store(true, Ordering::Release);
}

pub(crate) fn is_injected(start: u64) -> bool {
    ANY.load(Ordering::Acquire)
        && INJECTED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&start)
}

//! The clock of the restaurant and the plate each cook fills in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::workload::{self, Order, Work};

/// The restaurant's clock. Time zero is *opening*: a model opens the clock
/// after its setup (runtime built, threads started), so start-up never
/// counts as a customer's wait.
///
/// `Clock` is `Copy`: every task and thread takes its own.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    opening: Instant,
}

impl Clock {
    /// Opens the restaurant: now is time zero.
    pub fn open() -> Clock {
        Clock {
            opening: Instant::now(),
        }
    }

    /// The time since opening.
    pub fn now(&self) -> Duration {
        self.opening.elapsed()
    }

    /// The instant at `offset` after opening, for `sleep_until`-style APIs.
    pub fn at(&self, offset: Duration) -> Instant {
        self.opening + offset
    }

    /// How long from now until `offset` after opening (zero if it passed).
    pub fn until(&self, offset: Duration) -> Duration {
        self.at(offset).saturating_duration_since(Instant::now())
    }
}

/// Plates served so far in this process, for the progress line.
pub(crate) static SERVED: AtomicU64 = AtomicU64::new(0);

/// A plate: one order, cooked. It carries the digest that proves the work
/// was done in order, and the timestamps the report is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plate {
    id: u64,
    digest: u64,
    chops: u32,
    fault: bool,
    arrival: Duration,
    accepted: Option<Duration>,
    started: Duration,
    served: Option<Duration>,
}

impl Plate {
    /// A cook takes `order` and starts on it.
    pub fn start(order: &Order, clock: &Clock) -> Plate {
        Plate {
            id: order.id(),
            // An order that skipped the till starts from zero, and its
            // digest will be wrong.
            digest: order.receipt.map_or(0, |r| r.digest),
            chops: 0,
            fault: order.fault,
            arrival: order.arrival(),
            accepted: order.receipt.map(|r| r.accepted),
            started: clock.now(),
            served: None,
        }
    }

    /// Chops: runs `work` units of the kernel on this thread, chaining the
    /// digest from the previous chop.
    ///
    /// # Panics
    ///
    /// When the order carries an injected fault
    /// ([`crate::Workload::inject_fault`]).
    pub fn chop(&mut self, work: Work) {
        if self.fault {
            // The message leaves the order out on purpose: the model must know
            // which order its cook was on, not read it from the panic.
            panic!("injected fault: the knife slipped");
        }
        self.digest =
            workload::chop_digest(self.digest, self.id, self.chops, work);
        self.chops += 1;
    }

    /// The plate leaves the kitchen.
    pub fn serve(mut self, clock: &Clock) -> Plate {
        self.served = Some(clock.now());
        SERVED.fetch_add(1, Ordering::Relaxed);
        self
    }

    /// The order's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The digest so far (final once served).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// When the customer arrived, as an offset from opening.
    pub fn arrival(&self) -> Duration {
        self.arrival
    }

    /// When the cashier started ringing the order up; `None` if it never
    /// went through the till.
    pub fn accepted(&self) -> Option<Duration> {
        self.accepted
    }

    /// When a cook started on it.
    pub fn started(&self) -> Duration {
        self.started
    }

    /// When it was served; `None` if [`Plate::serve`] was never called.
    pub fn served(&self) -> Option<Duration> {
        self.served
    }
}

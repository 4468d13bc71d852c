//! The clock of the restaurant and the plate each cook fills in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::kernel;
use crate::trace::{self, Lane, Trace};
use crate::workload::{self, Order, Work};

/// The restaurant's clock. Time zero is *opening*: a model opens the clock
/// after its setup (runtime built, threads started), so start-up never
/// counts as a customer's wait.
///
/// `Clock` is `Copy`: every task and thread takes its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    opening: Instant,
    /// The same moment on the wall clock, to hand the clock to another
    /// process ([`Clock::to_wall`]).
    opening_wall: SystemTime,
}

impl Clock {
    /// Opens the restaurant: now is time zero.
    pub fn open() -> Clock {
        Clock {
            opening: Instant::now(),
            opening_wall: SystemTime::now(),
        }
    }

    /// Opening time as nanoseconds since the Unix epoch, to send to another
    /// process on the same machine, which rebuilds the clock with
    /// [`Clock::from_wall`]. (An `Instant` means nothing outside the process
    /// that took it; the wall clock is shared by every process.)
    pub fn to_wall(&self) -> u128 {
        self.opening_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    }

    /// The clock that another process opened at `nanos` ([`Clock::to_wall`]):
    /// its `now()` agrees with the other process's to within a microsecond.
    pub fn from_wall(nanos: u128) -> Clock {
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let opening_wall = SystemTime::UNIX_EPOCH
            + Duration::new(secs, (nanos % 1_000_000_000) as u32);
        let (now, now_wall) = (Instant::now(), SystemTime::now());
        let since = now_wall.duration_since(opening_wall).unwrap_or_default();
        Clock {
            opening: now.checked_sub(since).unwrap_or(now),
            opening_wall,
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
/// was done in order, and the timestamps the report is made of. It
/// serialises (serde), so a cook in another process can send it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plate {
    id: u64,
    digest: u64,
    chops: u32,
    fault: bool,
    arrival: Duration,
    accepted: Option<Duration>,
    started: Duration,
    served: Option<Duration>,
    /// A chop cut into slices, under way: the kernel's state and the units
    /// still to do ([`Plate::chop_slice`]).
    slicing: Option<(u64, u32)>,
    /// Spans for a timeline, when the order is traced.
    trace: Option<Box<Trace>>,
}

impl Plate {
    /// A cook takes `order` and starts on it.
    pub fn start(order: &Order, clock: &Clock) -> Plate {
        Plate {
            id: order.id(),
            // An order that skipped the till starts from zero, and its
            // digest will be wrong.
            digest: order.receipt.as_ref().map_or(0, |r| r.digest),
            chops: 0,
            fault: order.fault,
            arrival: order.arrival(),
            accepted: order.receipt.as_ref().map(|r| r.accepted),
            started: clock.now(),
            served: None,
            slicing: None,
            trace: order.traced.then(|| {
                Box::new(Trace {
                    ring_up: order
                        .receipt
                        .as_ref()
                        .and_then(|r| r.span.clone()),
                    started_on: Some(Lane::here()),
                    chops: Vec::new(),
                    clock: Some(*clock),
                })
            }),
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
        self.check_fault();
        let (digest, id, index) = (self.digest, self.id, self.chops);
        let chop = || workload::chop_digest(digest, id, index, work);
        self.digest = match self.trace.as_deref_mut() {
            Some(Trace {
                clock: Some(clock),
                chops,
                ..
            }) => {
                let mut digest = 0;
                chops.push(vec![trace::timed(clock, || digest = chop())]);
                digest
            }
            _ => chop(),
        };
        self.chops += 1;
    }

    /// Chops at most `slice` units of `work`, carrying on from where the
    /// previous call for the same chop stopped. Returns `true` once the
    /// whole chop is done, so a cook that must not hold its thread for long
    /// can give the thread back between slices:
    ///
    /// ```ignore
    /// Step::Chop(work) => {
    ///     while !plate.chop_slice(work, SLICE) {
    ///         tokio::task::yield_now().await;
    ///     }
    /// }
    /// ```
    ///
    /// The digest is the same as one [`Plate::chop`] of `work`.
    ///
    /// # Panics
    ///
    /// As [`Plate::chop`]; and if `slice` is zero units.
    pub fn chop_slice(&mut self, work: Work, slice: Work) -> bool {
        assert!(slice.units() > 0, "a slice must be at least one unit");
        self.check_fault();
        let first = self.slicing.is_none();
        let (state, left) = self.slicing.take().unwrap_or_else(|| {
            let seed = workload::seed_of(self.id, self.chops);
            (self.digest ^ seed, work.units())
        });
        let now = left.min(slice.units());
        let mut state = state;
        match self.trace.as_deref_mut() {
            // Each slice is a span of its own: the thread is free between.
            Some(Trace {
                clock: Some(clock),
                chops,
                ..
            }) => {
                let slice = trace::timed(clock, || {
                    state = kernel::work(state, now);
                });
                match chops.last_mut() {
                    Some(slices) if !first => slices.push(slice),
                    _ => chops.push(vec![slice]),
                }
            }
            _ => state = kernel::work(state, now),
        }
        if now < left {
            self.slicing = Some((state, left - now));
            return false;
        }
        self.digest = kernel::mix(state);
        self.chops += 1;
        true
    }

    fn check_fault(&self) {
        if self.fault {
            // The message leaves the order out on purpose: the model must know
            // which order its cook was on, not read it from the panic.
            panic!("injected fault: the knife slipped");
        }
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

    /// The spans recorded for a timeline, if the order was traced.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_deref()
    }
}

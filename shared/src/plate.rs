//! The cashier's ring-up and the plate each cook fills in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::kernel;
use crate::recipe::Work;
use crate::trace::{self, Lane, Trace};
use crate::wire::{self, Ticket};

/// Plates served so far in this process, for the progress line and the
/// count a `--listen` server prints when it closes.
pub(crate) static SERVED: AtomicU64 = AtomicU64::new(0);

/// The orders rung up in this process and not yet served or failed, by
/// id, with how many of each (under `--listen`, two customers' processes
/// may both send an order 7). What a stopped drain names as lost.
///
/// One lock, taken twice per order (at the till and at the pass): a
/// cost of tens of nanoseconds beside an order's microseconds of
/// chopping.
static IN_KITCHEN: Mutex<BTreeMap<u64, u32>> = Mutex::new(BTreeMap::new());

fn in_kitchen() -> std::sync::MutexGuard<'static, BTreeMap<u64, u32>> {
    // Nothing panics while holding it: a poisoned map is still whole.
    IN_KITCHEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Order `id` was rung up: it is in the kitchen until served.
pub(crate) fn entered_kitchen(id: u64) {
    *in_kitchen().entry(id).or_insert(0) += 1;
}

/// Order `id` left the kitchen: served, or without a plate (its cook
/// panicked).
pub(crate) fn left_kitchen(id: u64) {
    let mut kitchen = in_kitchen();
    if let Some(count) = kitchen.get_mut(&id) {
        *count -= 1;
        if *count == 0 {
            kitchen.remove(&id);
        }
    }
}

/// The ids of the orders rung up and not yet served, in order (an id
/// rung up twice is listed twice).
pub(crate) fn still_in_kitchen() -> Vec<u64> {
    in_kitchen()
        .iter()
        .flat_map(|(&id, &count)| std::iter::repeat_n(id, count as usize))
        .collect()
}

impl Ticket {
    /// The cashier rings the order up: runs the till's own small chop,
    /// which starts the order's digest, and returns the line that tells the
    /// customer (`RUNG <id>`).
    ///
    /// Every model calls this exactly once per order, on the cashier,
    /// before handing the ticket to a cook.
    pub fn ring_up(&mut self) -> String {
        let start = self.start;
        let mut digest = 0;
        if self.traced {
            self.ring_up_span =
                Some(trace::timed(|| digest = kernel::ring_up(start)));
        } else {
            digest = kernel::ring_up(start);
        }
        self.rung = Some(digest);
        entered_kitchen(self.id);
        wire::rung_line(self.id)
    }
}

/// A plate: one order, being cooked. It carries the digest that proves the
/// work was done in order. It serialises (serde), so a cook in another
/// process can send it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plate {
    id: u64,
    digest: u64,
    fault: bool,
    /// A chop cut into slices, under way: the kernel's state and the units
    /// still to do ([`Plate::chop_slice`]).
    slicing: Option<(u64, u32)>,
    /// Spans for a timeline, when the order is traced.
    trace: Option<Box<Trace>>,
}

impl Plate {
    /// A cook takes `ticket` and starts on it.
    pub fn start(ticket: &Ticket) -> Plate {
        Plate {
            id: ticket.id,
            // A ticket that skipped the till starts from its raw start
            // value, and the customer will find the digest wrong.
            digest: ticket.rung.unwrap_or(ticket.start),
            fault: ticket.fault,
            slicing: None,
            trace: ticket.traced.then(|| {
                Box::new(Trace {
                    id: ticket.id,
                    steps: ticket.steps.clone(),
                    ring_up: ticket.ring_up_span.clone(),
                    started_on: Some(Lane::here()),
                    started: crate::clock::now(),
                    chops: Vec::new(),
                    served: Default::default(),
                })
            }),
        }
    }

    /// Chops: runs `work` units of the kernel on this thread, chaining the
    /// digest from the previous step.
    ///
    /// # Panics
    ///
    /// When the order carries the test-only injected fault.
    pub fn chop(&mut self, work: Work) {
        self.check_fault();
        let digest = self.digest;
        let chop = || kernel::chop(digest, work.units());
        self.digest = match self.trace.as_deref_mut() {
            Some(trace) => {
                let mut digest = 0;
                trace.chops.push(vec![trace::timed(|| digest = chop())]);
                digest
            }
            None => chop(),
        };
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
        let (mut state, left) =
            self.slicing.take().unwrap_or((self.digest, work.units()));
        let now = left.min(slice.units());
        match self.trace.as_deref_mut() {
            // Each slice is a span of its own: the thread is free between.
            Some(trace) => {
                let slice = trace::timed(|| state = kernel::work(state, now));
                match trace.chops.last_mut() {
                    Some(slices) if !first => slices.push(slice),
                    _ => trace.chops.push(vec![slice]),
                }
            }
            None => state = kernel::work(state, now),
        }
        if now < left {
            self.slicing = Some((state, left - now));
            return false;
        }
        self.digest = kernel::mix(state);
        true
    }

    fn check_fault(&self) {
        if self.fault {
            // The message leaves the order out on purpose: the model must
            // know which order its cook was on, not read it from the panic.
            panic!("injected fault: the knife slipped");
        }
    }

    /// The plate leaves the kitchen: returns the line that hands it to its
    /// customer (`PLATE <id> <digest>`), and keeps its trace, if any, for
    /// the timeline. Call it in the server's own process (a cook in another
    /// process sends the plate back and the server serves it).
    pub fn serve(self) -> String {
        if let Some(mut trace) = self.trace {
            trace.served = crate::clock::now();
            trace::record(*trace);
        }
        SERVED.fetch_add(1, Ordering::Relaxed);
        left_kitchen(self.id);
        wire::plate_line(self.id, self.digest)
    }

    /// The order's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The digest so far (final once every chop is done).
    pub fn digest(&self) -> u64 {
        self.digest
    }
}

/// Plates served so far by this process.
pub fn served() -> u64 {
    SERVED.load(Ordering::Relaxed)
}

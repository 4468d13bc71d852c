//! # parallelism-thread-per-order: a new thread for every order
//!
//! ```text
//! cargo run --release -p parallelism-thread-per-order -- --preset takeout
//! ```
//!
//! The plainest way to do many things at once: the cashier starts a new OS
//! thread for every order it rings up, and that thread cooks the one order
//! and ends. No pool, no queue, no runtime, only `std::thread`. A simmering
//! cook sleeps in the kernel, so thousands of orders can simmer at once, as
//! on an async runtime, but every one of them pays for a whole thread: a
//! kernel task, a stack (2 MiB of address space reserved, the pages it
//! touches resident), and a `clone` system call that the cashier makes, at
//! the till, for every order.
//!
//! The threads: the calling thread is the cashier; each order in the
//! kitchen has a thread of its own, named `order-<id>`. Nothing else.
//!
//! **The cap.** Left alone, a burst of customers would start a thread per
//! customer, however many came: five thousand at once on `takeout`, and
//! with a bigger burst the OS would refuse (too many threads, memory maps
//! or bytes) or the machine would slow to a crawl first. So `--cooks` caps
//! the threads alive at once (default 1024). At the cap the cashier starts
//! no more: it waits at the pass for a cook thread to finish, joins it,
//! and only then goes back to the till, while customers queue at the till.
//! An overload becomes counter wait instead of a crash. And should the OS
//! refuse a thread even below the cap, `thread::Builder::spawn` returns an
//! error (where `thread::spawn` would panic), which the run reports after
//! joining every thread it did start.
//!
//! How it differs from its siblings: `thread-pool` starts `--cooks` threads
//! once and queues orders for them, so only that many orders make progress
//! at once; here every order starts at once, up to the cap, and a thread is
//! paid for per order. `concurrency-tokio` simmers the same thousands of
//! orders on two threads, because a waiting task costs a few hundred bytes
//! and no system call.
//!
//! **Its weakness, measured:** the cost of a thread, paid at the till. On
//! `takeout` the thread count climbs to the cap, CPU time is several times
//! `concurrency-tokio`'s for the same orders, and memory grows with the cap.
//! The burst outruns the cap, so the cashier waits for threads to end and
//! customers wait at the till for most of a simmer; lift the cap
//! (`--cooks 8192`) and they still wait, because starting a thread takes the
//! cashier longer than the gap between two takeout customers. On `banquet`
//! the cashier is one thread among hundreds of chopping ones, and the OS
//! shares the cores out fairly among them all: the till gets a sliver of a
//! core and the counter wait grows with the crowd in the kitchen.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

use restaurant::{
    BoxError, Clock, CookPanicked, Cooks, Model, Order, Plate, Step,
};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A new std thread for every order, with a cap on threads alive \
            at once.",
    cooks: Cooks::Fixed(1024, "cap on threads alive at once"),
    serve,
};

// ANCHOR: serve
/// Serves every order on a thread of its own, at most `cooks` threads at
/// once, and joins every thread before returning.
pub fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError> {
    let mut kitchen = Kitchen::new(cooks, orders.len());
    // There is nothing to set up: threads start one at a time, as orders
    // come in, and starting them is part of what this model costs.
    let clock = Clock::open();
    let till = cashier(orders, clock, &mut kitchen);
    // Closing, whatever happened at the till: join every thread still
    // cooking, so that no thread outlives `serve`.
    let plates = kitchen.close();
    till?;
    plates
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: waits for each customer, rings the order up and starts a
/// thread to cook it. Runs on the calling thread.
fn cashier(
    orders: Vec<Order>,
    clock: Clock,
    kitchen: &mut Kitchen,
) -> Result<(), BoxError> {
    for mut order in orders {
        // A blocking sleep is fine: this thread has nothing else to do.
        thread::sleep(clock.until(order.arrival()));
        order.ring_up(&clock);
        // Blocks while `cooks` threads are cooking: the next customer waits
        // at the till until a cook thread finishes.
        kitchen.hand_over(order, clock)?;
    }
    Ok(())
}
// ANCHOR_END: cashier

// ANCHOR: kitchen
/// The cook threads alive now, and the bell each one rings as it leaves.
///
/// Why a bell and not a semaphore (a `Mutex<usize>` and a `Condvar`, or a
/// `sync_channel` of permits): either would cap the threads, but a thread
/// that has finished must still be *joined*, to get its plate or its
/// panic, and until it is joined its stack is not given back. The bell
/// says which thread to join, so the cashier joins each one as it ends and
/// holds no more handles than threads alive. And since the cashier waits
/// in `join` for the thread to finish, the next cook cannot start before
/// the last one is done: never more than `cap` cooks at once. (The kernel
/// releases a joined thread's task a few microseconds later, so a thread
/// count taken at that instant may show one more.)
struct Kitchen {
    cap: usize,
    /// Every cook thread started and not yet joined, by order id.
    cooking: HashMap<u64, JoinHandle<Plate>>,
    /// A cook thread's last act is to send its order id here; the cashier
    /// keeps a sender too, so `recv` can only wait, never fail.
    bell: Sender<u64>,
    rung: Receiver<u64>,
    plates: Vec<Plate>,
    /// The first cook that panicked; the others still finish their orders.
    failed: Option<CookPanicked>,
}

impl Kitchen {
    fn new(cap: usize, orders: usize) -> Kitchen {
        let (bell, rung) = mpsc::channel();
        Kitchen {
            cap,
            cooking: HashMap::with_capacity(cap.min(orders)),
            bell,
            rung,
            plates: Vec::with_capacity(orders),
            failed: None,
        }
    }

    /// Starts a thread to cook `order`, first waiting for a thread to end
    /// if `cap` of them are cooking.
    fn hand_over(
        &mut self,
        order: Order,
        clock: Clock,
    ) -> Result<(), BoxError> {
        // Join the threads that ended since the last order, without
        // waiting, so their stacks go back to the OS now.
        while let Ok(id) = self.rung.try_recv() {
            self.join(id);
        }
        // At the cap: wait for the bell. This is where the cashier leaves
        // the till, and where the counter wait of an overload comes from.
        while self.cooking.len() >= self.cap {
            // Cannot fail: `self.bell` is a live sender. Cannot hang: every
            // thread in `cooking` rings once as it ends.
            let id = self.rung.recv().expect("the kitchen holds a sender");
            self.join(id);
        }
        let id = order.id();
        let bell = self.bell.clone();
        // `Builder::spawn` returns an error where `thread::spawn` would
        // panic when the OS refuses a thread; and it names the thread for
        // debuggers and `top -H`.
        let thread = thread::Builder::new()
            .name(format!("order-{id}"))
            .spawn(move || {
                // Rung when this closure ends, returning or unwinding.
                let _bell = Bell { id, bell };
                cook(&order, clock)
            })
            .map_err(|e| {
                format!(
                    "the OS refused a thread for order {id} with {} cook \
                     threads alive: {e}",
                    self.cooking.len()
                )
            })?;
        self.cooking.insert(id, thread);
        Ok(())
    }

    /// Joins the thread that cooked order `id`: its plate, or its panic.
    fn join(&mut self, id: u64) {
        // Only threads in `cooking` hold a bell, so the id is there.
        let Some(thread) = self.cooking.remove(&id) else {
            return;
        };
        // `join` waits the last few microseconds until the thread has
        // exited, and hands back what the closure returned, or the payload
        // it panicked with. The thread was cooking order `id`: that is how
        // the panic gets its order.
        match thread.join() {
            Ok(plate) => self.plates.push(plate),
            Err(payload) => {
                self.failed.get_or_insert(CookPanicked::new(id, &*payload));
            }
        }
    }

    /// Closing time: joins every thread still cooking, then hands back the
    /// plates, or the first panic.
    fn close(mut self) -> Result<Vec<Plate>, BoxError> {
        while !self.cooking.is_empty() {
            // As in `hand_over`: cannot fail, cannot hang.
            let id = self.rung.recv().expect("the kitchen holds a sender");
            self.join(id);
        }
        match self.failed {
            Some(e) => Err(e.into()),
            None => Ok(self.plates),
        }
    }
}

/// Rings when dropped: at the end of a cook thread, even one that panics
/// (unwinding drops it too).
struct Bell {
    id: u64,
    bell: Sender<u64>,
}

impl Drop for Bell {
    fn drop(&mut self) {
        // The receiver lives in the kitchen until every thread is joined,
        // so this cannot fail while anyone is listening.
        let _ = self.bell.send(self.id);
    }
}
// ANCHOR_END: kitchen

// ANCHOR: cook
/// A cook thread: cooks one order, start to finish, then the thread ends.
fn cook(order: &Order, clock: Clock) -> Plate {
    let mut plate = Plate::start(order, &clock);
    for step in order.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // The thread sleeps in the kernel and uses no CPU; but it keeps
            // its stack and its place under the cap while it waits.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve(&clock)
}
// ANCHOR_END: cook

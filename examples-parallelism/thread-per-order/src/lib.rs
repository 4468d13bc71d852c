//! # parallelism-thread-per-order: a new thread for every order
//!
//! ```text
//! cargo run --release -p parallelism-thread-per-order -- --preset takeout
//! ```
//!
//! The plainest way to do many things at once. One cashier thread accepts
//! customers and attends them one at a time; for every order it rings up
//! it starts a new OS thread, which cooks that one order, hands the plate
//! over the customer's connection and ends. No pool, no queue, no runtime,
//! only `std::thread`. A simmering cook sleeps in the kernel, so thousands
//! of orders can simmer at once, as on an async runtime, but each pays for
//! a whole thread: a kernel task, a stack (2 MiB of address space
//! reserved, the pages it touches resident), and a `clone` system call
//! that the cashier makes, at the till, for every order.
//!
//! **The cap.** Left alone, a burst of customers would start a thread per
//! customer, however many came, until the OS refused. So `--cooks` caps
//! the cook threads alive at once (default: `auto`, the night's peak of
//! orders in the kitchen, at most 10,000). At the cap the cashier
//! waits at the pass for a cook thread to finish, joins it, and only then
//! goes back to the door, while customers queue outside: an overload
//! becomes counter wait instead of a crash. Should the OS refuse a thread
//! even below the cap, `thread::Builder::spawn` returns an error (where
//! `thread::spawn` would panic): `serve` joins every thread it did start
//! and returns that error.
//!
//! How it differs from its siblings: `thread-pool` starts `--cooks`
//! threads once and queues orders for them, so only that many orders make
//! progress at once; here every order starts at once, up to the cap, and
//! a thread is paid for per order. `concurrency-tokio` simmers the same
//! thousands of orders on two threads, starting no thread per order.
//!
//! **Its weakness, measured:** the cost of a thread, paid at the till.
//! On `takeout` the thread count climbs to the cap, the server's CPU time
//! is well above `concurrency-tokio`'s for the same orders, and customers
//! wait at the door; lifting the cap does not help, because starting a
//! thread takes the cashier longer than the gap between two takeout
//! customers. On `banquet` the cashier is one thread among dozens of
//! chopping ones; the OS shares the cores out fairly among them all, so
//! the till gets a sliver of a core and customers wait at the door.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A new std thread for every order, with a cap on threads alive \
            at once.",
    cooks: Cooks::Auto {
        what: "cap on threads alive at once, one per order",
        cap: restaurant::cli::THREADS_CAP,
    },
    waiters: None,
    serve,
};

// ANCHOR: serve
/// Serves customers until closing time, each order on a thread of its
/// own, at most `cooks` threads at once; joins every thread before
/// returning.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let mut kitchen = Kitchen::new(cooks);
    // Nothing to set up: threads start one at a time as orders come in,
    // and starting them is part of what this model costs. Open the door.
    shift.open();
    let till = cashier(&listener, &mut kitchen, &shift);
    // Closing, whatever happened at the till: the kernel refuses
    // newcomers once the listener is gone; then join every thread still
    // cooking, so that every accepted order is served and no thread
    // outlives `serve`.
    drop(listener);
    let kitchen = kitchen.close();
    till?;
    kitchen
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: accepts customers one at a time until closing time, takes
/// each order and starts a thread to cook it. Runs on the calling thread.
fn cashier(
    listener: &TcpListener,
    kitchen: &mut Kitchen,
    shift: &Shift,
) -> Result<(), BoxError> {
    // `incoming` blocks in `accept`. At closing time the shift knocks on
    // the door once, so the loop wakes up and sees it is time to stop.
    for stream in listener.incoming() {
        if shift.is_closed() {
            break;
        }
        match stream {
            Ok(stream) => {
                if let Some((ticket, stream)) = take_order(stream) {
                    // Waits while `cooks` threads are cooking: the next
                    // customers wait at the door until one finishes.
                    kitchen.hand_over(ticket, stream, shift)?;
                }
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal to a server. Wait a little, go on.
            Err(e) => {
                eprintln!("parallelism-thread-per-order: accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
    Ok(())
}

/// Greets one customer, reads the order and rings it up. The cashier
/// listens to this customer alone until the line is said: a slow talker
/// holds up everyone behind them. `None` when there is no order to cook.
fn take_order(mut stream: TcpStream) -> Option<(Ticket, TcpStream)> {
    stream.write_all(wire::NEXT.as_bytes()).ok()?;
    // The customer has PATIENCE from NEXT to say the whole line, however
    // slowly it comes: a deadline for the line, not for each read, so a
    // silent or dripping customer holds the only cashier no longer.
    let deadline = Instant::now() + wire::PATIENCE;
    let mut ticket = match wire::read_order_line(&stream, deadline) {
        Heard::Order(ticket) => ticket,
        Heard::HungUp => return None,
        Heard::Refused(why) => {
            // The customer may be gone already; nothing more to do then.
            let _ = stream.write_all(wire::error_line(&why).as_bytes());
            return None;
        }
    };
    stream.write_all(ticket.ring_up().as_bytes()).ok()?;
    Some((ticket, stream))
}
// ANCHOR_END: cashier

// ANCHOR: kitchen
/// The cook threads alive now, and the bell each one rings as it leaves.
///
/// Why a bell and not a semaphore (a `Mutex<usize>` and a `Condvar`, or a
/// `sync_channel` of permits): either would cap the threads, but a thread
/// that has finished must still be *joined*, or its stack is not given
/// back. The bell says which thread to join, so the cashier joins each one
/// as it ends and holds no more handles than threads alive. And since the
/// cashier waits in `join` for the thread to finish, the next cook cannot
/// start before the last one is done: never more than `cap` cooks at
/// once. (The kernel releases a joined thread's task a few microseconds
/// later, so a thread count taken at that instant may show one more.)
struct Kitchen {
    cap: usize,
    /// Every cook thread started and not yet joined, by the kitchen's own
    /// number for it: not the order's id, which the customer chose and
    /// two customers may share.
    cooking: HashMap<u64, JoinHandle<()>>,
    /// The number the next cook thread gets.
    next: u64,
    /// A cook thread's last act is to send its number here; the kitchen
    /// keeps a sender too, so `recv` can only wait, never fail.
    bell: Sender<u64>,
    rung: Receiver<u64>,
}

impl Kitchen {
    fn new(cap: usize) -> Kitchen {
        let (bell, rung) = mpsc::channel();
        Kitchen {
            cap,
            cooking: HashMap::new(),
            next: 0,
            bell,
            rung,
        }
    }

    /// Starts a thread to cook `ticket` and serve it on `stream`, first
    /// waiting for a thread to end if `cap` of them are cooking.
    fn hand_over(
        &mut self,
        ticket: Ticket,
        stream: TcpStream,
        shift: &Shift,
    ) -> Result<(), BoxError> {
        // Join the threads that ended since the last order, without
        // waiting, so their stacks go back to the OS now.
        while let Ok(number) = self.rung.try_recv() {
            self.join(number)?;
        }
        // At the cap: wait for the bell. This is where the cashier leaves
        // the door, and where the counter wait of an overload comes from.
        while self.cooking.len() >= self.cap {
            // Cannot fail: `self.bell` is a live sender. Cannot hang: every
            // thread in `cooking` rings once as it ends.
            let number = self.rung.recv()?;
            self.join(number)?;
        }
        let (id, number) = (ticket.id(), self.next);
        self.next += 1;
        let (bell, shift) = (self.bell.clone(), shift.clone());
        // `Builder::spawn` returns an error where `thread::spawn` would
        // panic when the OS refuses a thread; and it names the thread for
        // debuggers and `top -H`.
        let thread = thread::Builder::new()
            .name(format!("order-{id}"))
            .spawn(move || {
                // Rung when this closure ends, after the plate is out.
                let _bell = Bell { number, bell };
                cook(ticket, stream, &shift);
            })
            // Named, with the threads alive counted now: the bare OS error
            // ("Resource temporarily unavailable") says neither.
            .map_err(|e| {
                restaurant::limits::thread_refused_for(
                    format!(
                        "order {id}, with {} cook threads cooking",
                        self.cooking.len()
                    ),
                    e,
                )
            })?;
        self.cooking.insert(number, thread);
        Ok(())
    }

    /// Joins the cook thread `number`, which has rung: it has served its
    /// customer, and `join` waits the last few microseconds until the
    /// thread has exited and its stack is unmapped.
    fn join(&mut self, number: u64) -> Result<(), BoxError> {
        // Only threads in `cooking` hold a bell, so the number is there.
        let Some(thread) = self.cooking.remove(&number) else {
            return Ok(());
        };
        // A cook catches the panic of its order itself (see `cook`), so a
        // thread that ended in a panic is a bug here; report it.
        thread
            .join()
            .map_err(|_| "a cook thread panicked outside its order".into())
    }

    /// Closing time: joins every thread still cooking. The first thread
    /// that panicked outside its order, if any, is the error.
    fn close(mut self) -> Result<(), BoxError> {
        let mut outcome = Ok(());
        while !self.cooking.is_empty() {
            // As in `hand_over`: cannot fail, cannot hang.
            let number = self.rung.recv()?;
            let joined = self.join(number);
            outcome = outcome.and(joined);
        }
        outcome
    }
}

/// Rings when dropped: at the end of a cook thread, even one that panics
/// (unwinding drops it too).
struct Bell {
    number: u64,
    bell: Sender<u64>,
}

impl Drop for Bell {
    fn drop(&mut self) {
        // The receiver lives in the kitchen until every thread is joined,
        // so this cannot fail while anyone is listening.
        let _ = self.bell.send(self.number);
    }
}
// ANCHOR_END: kitchen

// ANCHOR: cook
/// A cook thread: cooks one order, start to finish, hands the plate to
/// the customer, and the thread ends.
fn cook(ticket: Ticket, mut stream: TcpStream, shift: &Shift) {
    // `join` would hand the cashier this thread's panic too, but only
    // when it gets round to joining, and it may be blocked in `accept`
    // for a long time. Caught here, the panic is reported the moment it
    // happens, and the customer hears at once.
    let reply = match panic::catch_unwind(AssertUnwindSafe(|| {
        let mut plate = Plate::start(&ticket);
        for step in ticket.steps() {
            match *step {
                Step::Chop(work) => plate.chop(work),
                // The thread sleeps in the kernel and uses no CPU; but it
                // keeps its stack and its place under the cap meanwhile.
                Step::Simmer(d) => thread::sleep(d),
            }
        }
        plate.serve()
    })) {
        Ok(plate) => plate,
        Err(payload) => {
            shift.cook_panicked(ticket.id(), &*payload);
            wire::error_line("the cook panicked")
        }
    };
    // A customer who hung up has only lost their own plate.
    let _ = stream.write_all(reply.as_bytes());
}
// ANCHOR_END: cook

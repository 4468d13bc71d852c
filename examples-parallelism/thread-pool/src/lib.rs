//! # parallelism-thread-pool: a fixed crew of threads, one ticket rail
//!
//! ```text
//! cargo run --release -p parallelism-thread-pool -- --preset banquet
//! ```
//!
//! The classic threaded server, with only the standard library. One
//! cashier thread accepts customers and attends them one at a time: it
//! greets, reads the order, rings it up and puts the ticket, with the
//! customer's connection, on a rail (a std `mpsc` channel whose receiving
//! end sits behind a `Mutex`). `--cooks` OS threads, started before
//! opening, take tickets from the rail; whichever cook is free takes the
//! next one, cooks it start to finish and hands the plate to its customer
//! over the connection that came with the ticket.
//!
//! How it differs from its siblings: unlike `concurrency-tokio`, a cook *is*
//! a thread, so it chops and simmers on that thread alike, and the cashier
//! blocks on one customer's socket at a time. Unlike `thread-per-order`,
//! the threads are made once, so a thread's cost is paid `--cooks` times,
//! not once per order.
//!
//! **Its weakness, measured:** a simmering cook still holds its thread, so
//! at most `--cooks` orders make progress at once. Even on `banquet`,
//! about 4 ms of chopping per dish, each dish simmers for 1–2 ms between
//! its chops, and its cook's core sits idle meanwhile: about a quarter of
//! the night, which an async runtime fills with other orders' chops. On
//! `takeout` (thousands of long simmers) two threads serve two orders at a
//! time and the run takes minutes where an async runtime takes a second.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

// The channel, the lock and the threads: std's.
#[cfg(not(test))]
use std::{sync::Mutex, sync::mpsc, thread};

// In this crate's unit tests only, `shuttle`'s, which have the same API:
// a schedule explorer then runs the rail and the crew below under thousands
// of thread interleavings (`mod explore`, at the end). Copying this out?
// Keep the std line, without its `cfg`.
#[cfg(test)]
use shuttle::{sync::Mutex, sync::mpsc, thread};

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A fixed set of std threads sharing one rail of tickets.",
    cooks: Cooks::Auto {
        what: "threads in the pool, each cooking one order at a time",
        cap: restaurant::cli::THREADS_CAP,
    },
    waiters: None,
    serve,
};

/// A ticket on the rail, with the connection its plate goes back on: a
/// `TcpStream`, or in the explorer's tests a stand-in that keeps the lines.
type Order<C = TcpStream> = (Ticket, C);

// ANCHOR: serve
/// Starts `cooks` threads, runs the cashier on the calling thread until
/// closing time, then lets the cooks finish the rail and joins them.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    kitchen(cooks, &shift, |rail| {
        // The crew is up: open the door.
        shift.open();
        cashier(&listener, rail, &shift);
    })
}

/// The pool: starts `cooks` threads on one rail, runs `front` (the cashier,
/// who puts orders on the rail) on the calling thread, then closes the rail
/// and joins the crew. It knows nothing of sockets: a plate goes back on
/// whatever connection `C` came with its ticket.
fn kitchen<C: Write + Send + 'static>(
    cooks: usize,
    shift: &Shift,
    front: impl FnOnce(&mpsc::Sender<Order<C>>),
) -> Result<(), BoxError> {
    // The ticket rail. Unbounded on purpose: the cashier never waits for
    // the kitchen, and a backlog shows up as order latency, not counter
    // wait. It cannot grow without bound either: every ticket holds its
    // customer's connection, and the OS limits how many are open.
    let (rail, tickets) = mpsc::channel::<Order<C>>();
    // std's Receiver has one owner; a Mutex lets several cooks take turns
    // at it. Each cook holds the lock only while it takes one ticket.
    let tickets = Arc::new(Mutex::new(tickets));

    let mut crew = Vec::with_capacity(cooks);
    for i in 0..cooks {
        let (tickets, shift) = (Arc::clone(&tickets), shift.clone());
        let cook = thread::Builder::new()
            .name(format!("cook-{i}"))
            .spawn(move || cook(&tickets, &shift));
        match cook {
            Ok(cook) => crew.push(cook),
            // The OS refused a thread. Closing the rail sends home the
            // cooks already started; join them, so none outlives `serve`.
            Err(e) => {
                drop(rail);
                for cook in crew {
                    let _ = cook.join();
                }
                let cook = format!("cook {i} of {cooks}");
                return Err(restaurant::limits::thread_refused_for(cook, e));
            }
        }
    }

    front(&rail);
    // Closing the rail is the cooks' signal to go home: each cook's `recv`
    // fails once the rail is empty, so every accepted order is served.
    drop(rail);
    for cook in crew {
        // Cooks catch their orders' panics, so a thread that ended in a
        // panic is a bug here; report it rather than hide it.
        cook.join()
            .map_err(|_| "a cook thread panicked outside an order")?;
    }
    Ok(())
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: accepts customers one at a time until closing time, takes
/// each order and puts it on the rail. Runs on the calling thread.
fn cashier(listener: &TcpListener, rail: &mpsc::Sender<Order>, shift: &Shift) {
    // `incoming` blocks in `accept`. At closing time the shift knocks on
    // the door once, so the loop wakes up and sees it is time to stop.
    for stream in listener.incoming() {
        if shift.is_closed() {
            return;
        }
        match stream {
            Ok(stream) => {
                if let Some(order) = take_order(stream)
                    // `send` fails only once every cook is gone, which
                    // happens only after the rail closes.
                    && rail.send(order).is_err()
                {
                    return;
                }
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal to a server. Wait a little, go on.
            Err(e) => {
                eprintln!("parallelism-thread-pool: accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Greets one customer, reads the order and rings it up. The cashier
/// listens to this customer alone until the line is said: a slow talker
/// holds up everyone behind them. `None` when there is no order to cook.
fn take_order(mut stream: TcpStream) -> Option<Order> {
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

// ANCHOR: cook
/// A cook thread: takes tickets until the rail closes.
fn cook<C: Write>(tickets: &Mutex<mpsc::Receiver<Order<C>>>, shift: &Shift) {
    loop {
        // The guard is a temporary, dropped at the end of this statement, so
        // the lock is released before the cook starts cooking. (`while let
        // Ok(..) = tickets.lock()...recv()` would hold it for the whole loop
        // body and serialise the kitchen.) A poisoned lock only means another
        // thread panicked while holding it; the receiver inside is fine.
        let ticket = tickets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok((ticket, mut stream)) = ticket else {
            return; // the rail is closed and empty: closing time
        };
        // Catch a panic here, where the order is known, so the thread
        // survives, the panic is reported at once, and the customer hears.
        let reply =
            match panic::catch_unwind(AssertUnwindSafe(|| cook_one(&ticket))) {
                Ok(plate) => plate,
                Err(payload) => {
                    shift.cook_panicked(ticket.id(), &*payload);
                    wire::error_line("the cook panicked")
                }
            };
        // A customer who hung up has only lost their own plate.
        let _ = stream.write_all(reply.as_bytes());
    }
}

/// Cooks one order on this thread, start to finish.
fn cook_one(ticket: &Ticket) -> String {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // The thread sleeps: it holds its place in the crew while it
            // waits, and no other order can use it.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

/// The schedule explorer. These tests run the real `kitchen` and `cook`
/// above on `shuttle`'s threads, lock and channel (the imports at the top),
/// with the cashier replaced by a loop that puts a few tickets on the rail
/// and each connection by a [`Customer`] that keeps what it heard. shuttle
/// runs every thread of a test on one OS thread and picks which one goes
/// next at each lock, send, receive, spawn and join, so each iteration is
/// one schedule; a run in which every thread waits (a cook on a rail that
/// never closes, a join on such a cook) fails the test as a deadlock, with
/// the schedule to replay it.
#[cfg(test)]
mod explore {
    use std::net::SocketAddr;
    use std::time::Duration;

    use restaurant::{Step, Work, kernel};

    use super::*;

    /// Schedules per test and scheduler.
    const SCHEDULES: usize = 1000;
    /// PCT finds any bug that needs at most this many forced switches with
    /// a known probability per schedule.
    const PCT_DEPTH: usize = 3;
    /// Customers in a night: more than cooks, so tickets wait on the rail.
    const ORDERS: u64 = 4;

    /// A customer's end of the connection: every byte the cook wrote to it.
    /// A std lock, not shuttle's: it is the socket's stand-in, not part of
    /// the hand-off under test, and is never held across a switch.
    #[derive(Clone, Default)]
    struct Customer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Customer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Customer {
        fn heard(&self) -> String {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    /// The first order's start value for a test: each test has its own, so
    /// a fault injected for one (the registry is process-wide) is never
    /// seen by another test running beside it.
    fn start(test: u64, id: u64) -> u64 {
        0x5ced_0000_0000_0000 | test << 16 | id
    }

    /// One night: `ORDERS` customers, each with a ticket already rung up,
    /// served by `cooks` threads; then checks that every customer heard
    /// exactly the one line it should have, that the crew went home, and
    /// that the order `faulty` (if any) was reported as a cook's panic.
    fn night(test: u64, cooks: usize, faulty: Option<u64>) {
        let shift = Shift::with_hooks(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            Box::new(|| {}),
            Box::new(|_| {}),
        );
        // Two chops around a simmer: under shuttle a simmer's sleep is a
        // switch, so another thread may run in the middle of an order.
        let steps = [
            Step::Chop(Work(2)),
            Step::Simmer(Duration::from_micros(1)),
            Step::Chop(Work(3)),
        ];
        let mut tickets = Vec::new();
        let mut expected = Vec::new();
        for id in 0..ORDERS {
            let start = start(test, id);
            let line = wire::order_line(id, "soup", start, &steps);
            let mut ticket =
                wire::parse_order(&line).expect("the test's order line parses");
            ticket.ring_up();
            let customer = Customer::default();
            let digest =
                kernel::chop(kernel::chop(kernel::ring_up(start), 2), 3);
            let should_hear = if faulty == Some(id) {
                wire::error_line("the cook panicked")
            } else {
                wire::plate_line(id, digest)
            };
            tickets.push((ticket, customer.clone()));
            expected.push((id, customer, should_hear));
        }

        let served = kitchen(cooks, &shift, |rail| {
            // The cashier's hand-over, as in `cashier`.
            for order in tickets {
                if rail.send(order).is_err() {
                    return;
                }
            }
        });

        // `kitchen` returned, so every cook was joined: nobody is left
        // holding a plate.
        assert!(
            served.is_ok(),
            "the crew did not go home cleanly: {served:?}"
        );
        for (id, customer, should_hear) in expected {
            assert_eq!(customer.heard(), should_hear, "order {id}");
        }
        let faults = shift.faults();
        match faulty {
            None => assert!(faults.is_empty(), "faults: {faults:?}"),
            Some(id) => {
                assert_eq!(faults.len(), 1, "faults: {faults:?}");
                assert!(
                    faults[0].contains(&format!("order {id} ")),
                    "the fault names another order: {faults:?}"
                );
            }
        }
    }

    /// Makes the first chop of order `id` of test `test` panic. shuttle's
    /// panic hook prints "Task failed" and a schedule for each such panic,
    /// caught or not; the test harness shows it only if the test fails.
    fn inject(test: u64, id: u64) -> Option<u64> {
        restaurant::fault::inject(start(test, id));
        Some(id)
    }

    #[test]
    fn every_order_is_served_once_and_the_crew_goes_home_random() {
        shuttle::check_random(|| night(1, 2, None), SCHEDULES);
    }

    #[test]
    fn every_order_is_served_once_and_the_crew_goes_home_pct() {
        shuttle::check_pct(|| night(2, 3, None), SCHEDULES, PCT_DEPTH);
    }

    #[test]
    fn a_panicking_cook_is_reported_and_the_crew_serves_on_random() {
        let faulty = inject(3, 1);
        shuttle::check_random(move || night(3, 2, faulty), SCHEDULES);
    }

    #[test]
    fn a_panicking_cook_is_reported_and_the_crew_serves_on_pct() {
        // One cook: it must survive its panic to serve the orders after it.
        let faulty = inject(4, 0);
        shuttle::check_pct(move || night(4, 1, faulty), SCHEDULES, PCT_DEPTH);
    }

    /// The explorer does see a hang: a sender kept past closing time (here
    /// a clone the cashier forgets to drop) keeps the rail open, so the
    /// cooks wait for tickets and `kitchen` waits for the cooks.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_rail_left_open_is_reported_as_a_deadlock() {
        shuttle::check_random(
            || {
                let shift = Shift::with_hooks(
                    SocketAddr::from(([127, 0, 0, 1], 9)),
                    Box::new(|| {}),
                    Box::new(|_| {}),
                );
                let _ = kitchen::<Customer>(2, &shift, |rail| {
                    std::mem::forget(rail.clone());
                });
            },
            10,
        );
    }
}

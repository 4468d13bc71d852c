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
//! at most `--cooks` orders make progress at once. On `banquet` (chopping)
//! two threads keep two cores busy and that is as good as it gets; on
//! `takeout` (thousands of long simmers) two threads serve two orders at a
//! time and the run takes minutes where an async runtime takes a second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

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

/// A ticket on the rail, with the connection its plate goes back on.
type Order = (Ticket, TcpStream);

// ANCHOR: serve
/// Starts `cooks` threads, runs the cashier on the calling thread until
/// closing time, then lets the cooks finish the rail and joins them.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // The ticket rail. Unbounded on purpose: the cashier never waits for
    // the kitchen, and a backlog shows up as order latency, not counter
    // wait. It cannot grow without bound either: every ticket holds its
    // customer's connection, and the OS limits how many are open.
    let (rail, tickets) = mpsc::channel::<Order>();
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
                return Err(e.into());
            }
        }
    }

    // The crew is up: open the door.
    shift.open();
    cashier(&listener, &rail, &shift);
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
    // A silent customer would hold the only cashier for ever.
    stream.set_read_timeout(Some(wire::PATIENCE)).ok()?;
    stream.write_all(wire::NEXT.as_bytes()).ok()?;
    let mut line = String::new();
    let read = BufReader::new(&stream)
        .take(wire::MAX_LINE as u64)
        .read_line(&mut line);
    let mut ticket = match wire::heard(read, &line) {
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
fn cook(tickets: &Mutex<Receiver<Order>>, shift: &Shift) {
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

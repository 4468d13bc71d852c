//! # parallelism-crossbeam: scoped threads and a bounded MPMC channel
//!
//! ```text
//! cargo run --release -p parallelism-crossbeam -- --preset banquet
//! ```
//!
//! A fixed crew of `--cooks` OS threads (default: `auto`, the night's peak
//! of orders in the kitchen, since a cook sleeps through its simmers), started
//! with `std::thread::scope` and fed by a [crossbeam-channel] **bounded**
//! multi-producer, multi-consumer channel: the rail. One cashier thread
//! (the calling one) accepts customers and attends them one at a time,
//! and puts each ticket, with the customer's connection, on the rail; a
//! free cook takes it, cooks it and hands the plate over the connection.
//! Closing the rail is closing time for the cooks.
//!
//! How it differs from its siblings: it is `thread-pool` with better
//! parts. crossbeam's `Receiver` is `Clone` and `Sync`, so every cook
//! takes tickets from the rail directly, with no `Mutex` to take turns
//! at. The scope replaces `'static` and `Arc`: the cooks borrow the shift
//! from `serve` and cannot outlive it. (The `crossbeam` crate's own
//! `crossbeam::scope` did this first; `std::thread::scope` replaced it in
//! Rust 1.63.) And the rail is bounded, where thread-pool's is not.
//!
//! **Its weakness, measured:** the bound moves the queue to the door.
//! When the rail is full, the cashier cannot hand over and so cannot
//! greet anyone: on `banquet`, where everyone arrives at once, customers
//! stand at the door for about as long as the kitchen takes to reach
//! their order (thread-pool's unbounded rail greets them at once, and
//! they wait for the food instead). And a simmering cook holds its
//! thread, as in thread-pool: on `takeout` two cooks serve two orders at
//! a time, the burst waits at the door for many minutes, more of it than
//! the kernel's listen backlog holds, and the customers it drops are lost.
//!
//! [crossbeam-channel]: https://docs.rs/crossbeam-channel

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Scoped std threads sharing crossbeam's bounded MPMC channel.",
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
/// Starts `cooks` scoped threads, runs the cashier on the calling thread
/// until closing time, then closes the rail and joins every cook.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // The scope joins every thread spawned in it before it returns, so no
    // cook can outlive `serve`, and the cooks can borrow from it.
    thread::scope(|scope| {
        // The rail is made *inside* the scope's closure on purpose: if the
        // closure returns early (a `?` below), it is dropped before the
        // scope joins the cooks, and the cooks see it close. Made outside,
        // it would outlive the join: the cooks would wait for tickets, and
        // the scope for the cooks, forever.
        //
        // Bounded, one ticket per cook: a cook who finishes finds the
        // next ticket waiting, and every customer beyond that waits at
        // the door, not in the server's memory (see `cashier`).
        let (rail, tickets) = bounded::<Order>(cooks);

        let mut crew = Vec::with_capacity(cooks);
        for i in 0..cooks {
            // Multi-consumer: each cook gets a clone of the receiver and
            // takes tickets from it directly, no Mutex needed. The shift
            // is borrowed, not cloned: the scope guarantees it outlives
            // the cooks.
            let (tickets, shift) = (tickets.clone(), &shift);
            let cook = thread::Builder::new()
                .name(format!("cook-{i}"))
                .spawn_scoped(scope, move || cook(&tickets, shift))
                // Returning drops the rail, so the cooks already started
                // go home and the scope joins them.
                .map_err(|e| {
                    let cook = format!("cook {i} of {cooks}");
                    restaurant::limits::thread_refused_for(cook, e)
                })?;
            crew.push(cook);
        }
        // Only the cooks take tickets: ours would be one more receiver,
        // which keeps the rail open to senders after every cook is gone.
        drop(tickets);

        // The crew is up: open the door.
        shift.open();
        cashier(&listener, &rail, &shift);
        // Closing the rail is the cooks' signal to go home: a cook leaves
        // its loop once the rail is closed *and* empty, so every accepted
        // order is served. Close it before joining, or the join waits for
        // cooks who wait for tickets.
        drop(rail);
        for cook in crew {
            // Cooks catch their orders' panics, so a thread that ended in
            // a panic is a bug here; report it rather than hide it.
            // (Joined by hand, it is an error; left to the scope, it
            // would be a panic.)
            cook.join()
                .map_err(|_| "a cook thread panicked outside an order")?;
        }
        Ok(())
    })
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier: accepts customers one at a time until closing time, takes
/// each order and puts it on the rail. Runs on the calling thread.
fn cashier(listener: &TcpListener, rail: &Sender<Order>, shift: &Shift) {
    // `incoming` blocks in `accept`. At closing time the shift knocks on
    // the door once, so the loop wakes up and sees it is time to stop.
    for stream in listener.incoming() {
        if shift.is_closed() {
            return;
        }
        match stream {
            Ok(stream) => {
                if let Some(order) = take_order(stream)
                    // The hand-over. When the rail is full, `send` waits
                    // for a cook to take a ticket, and the cashier cannot
                    // go back to the door: back-pressure. A flood slows
                    // down the clients instead of filling the server's
                    // memory; here it shows as customers kept waiting to
                    // be greeted. `send` fails only once every cook is
                    // gone, which happens only after the rail closes.
                    && rail.send(order).is_err()
                {
                    return;
                }
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal to a server. Wait a little, go on.
            Err(e) => {
                eprintln!("parallelism-crossbeam: accept failed: {e}");
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
/// A cook thread: takes tickets until the rail is closed and empty.
fn cook(tickets: &Receiver<Order>, shift: &Shift) {
    // Every cook iterates the same receiver; each ticket goes to exactly
    // one of them. The loop ends when the rail is closed and empty.
    for (ticket, mut stream) in tickets {
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
            // The thread sleeps and holds its place in the crew meanwhile:
            // no other order can use it.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

//! # parallelism-waiters: several waiters at the door, a crew in the kitchen
//!
//! ```text
//! cargo run --release -p parallelism-waiters -- --preset slow-talkers
//! cargo run --release -p parallelism-waiters -- --waiters 1 --preset slow-talkers
//! ```
//!
//! The threaded server with more than one person out front, std only.
//! `--waiters` blocking threads share the one listener: each accepts a
//! customer, greets them, listens until the order is said (at most
//! `wire::PATIENCE`), rings it up and puts the ticket, with the
//! customer's connection, on the rail, then goes back to the door. A slow
//! talker holds up one waiter, not the door. `--cooks` OS threads take
//! tickets from the rail exactly as in `parallelism-thread-pool`: whichever
//! cook is free takes the next ticket, cooks it start to finish and hands
//! the plate back over the connection that came with it.
//!
//! **Who hands the plate back: the cook.** The connection travels with the
//! ticket, so the cook that finishes a dish writes its `PLATE` line
//! straight to the customer: one hand-off, no way back. A waiter who
//! carried the plate would have to wait for it, and a blocking thread can
//! wait on one thing at a time: blocked in `accept` or in a customer's
//! read, it cannot also hear that a plate is ready. Either the waiter
//! would stand at one table until the dish came (and be away from the door
//! for the whole order, which is `thread-per-order`'s shape), or the
//! plates would need a second rail and a table of connections to find
//! their customer. Writing one short line to a socket does not block a
//! cook in practice: it fits in the socket's send buffer.
//!
//! **Why four waiters by default** ([`WAITERS`]): the question this model
//! answers is the seed's "ten staff: one at the till and nine cooks, or
//! three or four waiters and six cooks?". On `slow-talkers` a customer
//! arrives every 10 ms on average and talks for 10–50 ms, 30 ms on
//! average, so by Little's law three waiters are busy at any moment; a
//! fourth leaves a quarter of the floor free for a run of long talkers.
//! On the other presets customers say their order at once, a waiter's
//! work per customer is microseconds, and the spare waiters cost only
//! their idle threads.
//!
//! How it differs from its siblings: `parallelism-thread-pool` has the
//! same kitchen and one cashier, who listens to one customer at a time;
//! an async runtime listens to every customer at once on a few threads.
//! Here each waiter is a thread that blocks, like each cook: the waiters
//! cost threads where the runtime costs none, and are as simple to read
//! as the cashier.
//!
//! **Its weakness:** the same as the pool's. A simmering cook holds its
//! thread, so at most `--cooks` orders make progress at once, and a
//! talking customer holds a waiter: the staff is sized for the night in
//! advance.

use std::io::Write;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream,
};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

/// The waiters a night has unless `--waiters` says otherwise: four, the
/// seed's "three or four waiters". `slow-talkers` keeps three busy on
/// average (a customer every 10 ms, each talking 30 ms on average); the
/// fourth is headroom for a run of long talkers. The crate's doc comment
/// explains the arithmetic.
pub const WAITERS: usize = 4;

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Several blocking waiter threads take orders; a std thread pool \
            cooks them.",
    cooks: Cooks::Auto {
        what: "threads that cook",
        cap: restaurant::cli::THREADS_CAP,
    },
    // `--waiters N`, read in `serve` with `shift.waiters()`.
    waiters: Some(WAITERS),
    serve,
};
// ANCHOR_END: model

/// A ticket on the rail, with the connection its plate goes back on.
type Order = (Ticket, TcpStream);

/// How long a waiter leaving at closing time tries to knock on the door
/// for the next one (the shift's own knock allows as long).
const KNOCK_PATIENCE: Duration = Duration::from_secs(1);

// ANCHOR: serve
/// Starts `cooks` threads, then `shift.waiters()` waiter threads; opens;
/// at closing time joins the waiters, then lets the cooks finish the rail
/// and joins them.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    kitchen(cooks, &shift, |rail| floor(&listener, rail, &shift))
}

/// The pool, as in `parallelism-thread-pool`: starts `cooks` threads on
/// one rail, runs `front` (the waiters, who put orders on the rail) on the
/// calling thread, then closes the rail and joins the crew. Every order
/// `front` put on the rail is cooked, even if `front` failed.
fn kitchen(
    cooks: usize,
    shift: &Shift,
    front: impl FnOnce(&Sender<Order>) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    // The ticket rail. Unbounded on purpose: a waiter never waits for the
    // kitchen, and a backlog shows up as order latency, not counter wait.
    // Every ticket holds its customer's connection, and the OS limits how
    // many are open, so it cannot grow without bound either.
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
                return Err(format!(
                    "the OS refused cook thread {i} of {cooks}: {e}; \
                     nobody was let in"
                )
                .into());
            }
        }
    }

    let front = front(&rail);
    // Closing the rail is the cooks' signal to go home: each cook's `recv`
    // fails once the rail is empty, so every accepted order is served.
    drop(rail);
    // Cooks catch their orders' panics, so a cook thread that ended in a
    // panic is a bug here; count them, join the rest, and say so.
    let lost = crew
        .into_iter()
        .map(|c| c.join())
        .filter(Result::is_err)
        .count();
    front?;
    if lost > 0 {
        return Err(format!(
            "{lost} of {cooks} cook threads panicked outside an order; the \
             orders on the rail after that went to the other cooks"
        )
        .into());
    }
    Ok(())
}
// ANCHOR_END: serve

// ANCHOR: floor
/// What the waiters hear before the door opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Briefing {
    /// Everyone is up: serve until closing time.
    Serve,
    /// The OS refused one of the staff's threads: go home at once.
    GoHome,
}

/// The floor: starts the waiters, opens the door once they are all up,
/// and returns when every waiter has gone home at closing time.
fn floor(
    listener: &TcpListener,
    rail: &Sender<Order>,
    shift: &Shift,
) -> Result<(), BoxError> {
    let waiters = shift.waiters();
    // Set once, after every waiter is started (or one was refused). Until
    // then a waiter does not touch the door: nobody is greeted before the
    // shift opens, and a short-staffed floor sends its waiters home
    // without ever having accepted anyone.
    let briefing = OnceLock::new();
    // Scoped threads borrow the listener, the rail and the shift, and the
    // scope joins any waiter this function does not join itself.
    thread::scope(|scope| {
        let mut staff = Vec::with_capacity(waiters);
        for i in 0..waiters {
            let briefing = &briefing;
            let waiter = thread::Builder::new()
                .name(format!("waiter-{i}"))
                .spawn_scoped(scope, move || {
                    if *briefing.wait() == Briefing::Serve {
                        waiter(listener, rail, shift);
                    }
                });
            match waiter {
                Ok(waiter) => staff.push(waiter),
                Err(e) => {
                    let _ = briefing.set(Briefing::GoHome);
                    return Err(format!(
                        "the OS refused waiter thread {i} of {waiters}: {e}; \
                         nobody was let in"
                    )
                    .into());
                }
            }
        }
        // The staff is up: open the door, then let the waiters to it.
        shift.open();
        let _ = briefing.set(Briefing::Serve);
        // A waiter that panicked (outside any cook) left its customer
        // hung up on and the floor one short; the night went on.
        let lost = staff
            .into_iter()
            .map(|w| w.join())
            .filter(Result::is_err)
            .count();
        if lost > 0 {
            return Err(format!(
                "{lost} of {waiters} waiter threads panicked; the customer \
                 each was attending was hung up on"
            )
            .into());
        }
        Ok(())
    })
}

/// A waiter: accepts customers one at a time until closing time, takes
/// each order and puts it on the rail; the other waiters do the same at
/// the same door, and the kernel hands each connection to one of them.
fn waiter(listener: &TcpListener, rail: &Sender<Order>, shift: &Shift) {
    // Checked before every `accept`, not only after: a waiter who was busy
    // with a customer when the shift closed goes home without waiting at
    // the door for a knock that another waiter has already answered.
    while !shift.is_closed() {
        match listener.accept() {
            // The shift's knock, or another waiter's: closing time.
            Ok(_) if shift.is_closed() => break,
            Ok((stream, _)) => {
                if let Some(order) = take_order(stream)
                    // `send` fails only once every cook is gone, which
                    // happens only after the rail closes.
                    && rail.send(order).is_err()
                {
                    break;
                }
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal to a server. Wait a little, go on.
            Err(e) => {
                eprintln!("parallelism-waiters: accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
    // The shift knocks once at closing time, which wakes one waiter
    // blocked in `accept`. Each waiter that leaves knocks once more, for
    // the next: every knock answered is replaced, so a knock is waiting
    // for every waiter still at the door, and the last one is never
    // answered (the kernel resets it when the listener closes). The
    // alternative, a non-blocking `accept` polled every few milliseconds,
    // would keep waking idle waiters all night to check a flag.
    knock(shift.door());
}

/// Connects to the door and hangs up at once, so that one waiter blocked
/// in `accept` returns and sees that it is closing time.
fn knock(mut door: SocketAddr) {
    // A server listening on every address (`--listen 0.0.0.0:…`) is
    // knocked on through loopback.
    if door.ip().is_unspecified() {
        door.set_ip(match door.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    // A refused knock means the listener is gone: nobody left to wake.
    let _ = TcpStream::connect_timeout(&door, KNOCK_PATIENCE);
}

/// Greets one customer, reads the order and rings it up. This waiter
/// listens to this customer alone until the line is said; the other
/// waiters keep greeting. `None` when there is no order to cook.
fn take_order(mut stream: TcpStream) -> Option<Order> {
    stream.write_all(wire::NEXT.as_bytes()).ok()?;
    // The customer has PATIENCE from NEXT to say the whole line, however
    // slowly it comes: a deadline for the line, not for each read, so a
    // silent or dripping customer holds this waiter no longer.
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
// ANCHOR_END: floor

// ANCHOR: cook
/// A cook thread: takes tickets until the rail closes.
fn cook(tickets: &Mutex<Receiver<Order>>, shift: &Shift) {
    loop {
        // The guard is a temporary, dropped at the end of this statement,
        // so the lock is released before the cook starts cooking. A
        // poisoned lock only means another thread panicked while holding
        // it; the receiver inside is fine.
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
        // The cook hands the plate back itself (the crate's doc comment
        // says why). A customer who hung up has only lost their own plate.
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

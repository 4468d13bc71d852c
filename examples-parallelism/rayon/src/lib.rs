//! # parallelism-rayon: a job per order on rayon's pool
//!
//! ```text
//! cargo run --release -p parallelism-rayon -- --preset banquet
//! ```
//!
//! [rayon] is Rust's data-parallelism library: hand it work and it spreads
//! the work over a pool of threads, by default one per core, that steal
//! from each other's queues. Here one cashier, the calling thread, accepts
//! customers and attends them one at a time: it greets, reads the order
//! and rings it up, then spawns the ticket, with the customer's
//! connection, as a rayon *job* in a FIFO scope on a pool of `--cooks`
//! threads (default: `auto`, the night's peak of orders in the kitchen,
//! at most 256).
//! Whichever worker is free cooks it and writes the plate. At
//! closing, the scope does not return before every job spawned in it has
//! finished, and the pool's threads are joined.
//!
//! How it differs from its siblings: `thread-pool` and `crossbeam` write
//! the pool and its queue by hand; here rayon provides both, with work
//! stealing and scoped jobs that may borrow. The concurrency crates
//! suspend a waiting cook; rayon cannot: it has no timer and no reactor.
//!
//! **Its weakness, measured:** a simmer is `thread::sleep` inside a job,
//! and a sleeping job holds its worker until it returns. On `banquet`
//! (about 4 ms of chopping per dish, and a 1–2 ms simmer in the middle)
//! the workers chop on every core but sleep through every simmer, about a
//! quarter of the night; on `takeout` (thousands
//! of long simmers) two workers cook two orders at a time and the night
//! takes many minutes, the collapse of `thread-pool`. rayon is superb for
//! computing, wasted on waiting.
//!
//! [rayon]: https://docs.rs/rayon

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::Instant;

use rayon::{ScopeFifo, ThreadPool, ThreadPoolBuilder};
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

/// The most threads this pool is given. rayon-core 1.13 accepts 65,535
/// (`max_num_threads`), but an idle rayon worker searches the other
/// workers' queues before it sleeps, and the search grows with the pool:
/// on `takeout`, 1,024 threads spent 73 s of CPU in a 37 s night, 256
/// spend under a second (the chapter has the run). So `auto` stops at
/// 256, and `takeout`, which would want 5,000 threads that mostly wait,
/// does not fit rayon: that is the lesson.
const MOST_THREADS: usize = 256;

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "A cashier thread hands each order to a rayon job, on a pool of \
            --cooks threads, in FIFO order.",
    cooks: Cooks::Auto {
        what: "threads in the pool, each cooking one order at a time",
        cap: MOST_THREADS,
    },
    waiters: None,
    serve,
};

// ANCHOR: serve
/// Builds a pool of `cooks` threads, runs the cashier on the calling
/// thread until closing time, and returns once every job has finished and
/// the pool's threads are joined.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let pool = ThreadPoolBuilder::new()
        .num_threads(cooks)
        .thread_name(|i| format!("cook-{i}"));
    // `build_scoped` starts the pool's threads in a `std::thread::scope`
    // and runs the closure with the pool; when the closure returns, the
    // pool is dropped and the scope joins every thread. A pool from
    // `build()` would only be *told* to stop when dropped, its threads
    // ending some time later. Each thread just runs rayon's worker loop.
    // A thread the OS refuses comes back as a `ThreadPoolBuildError`, the
    // threads already started told to stop and joined by the scope.
    pool.build_scoped(
        |thread| thread.run(),
        |pool| restaurant(pool, &listener, &shift),
    )
    .map_err(|e| {
        restaurant::limits::thread_refused_for(format!("{cooks} cooks"), e)
    })?;
    Ok(())
}
// ANCHOR_END: serve

// ANCHOR: cashier
/// The cashier, on the calling thread: accepts customers one at a time
/// until closing time and spawns a job for each order into a FIFO scope.
fn restaurant(pool: &ThreadPool, listener: &TcpListener, shift: &Shift) {
    // `in_place_scope_fifo` runs this closure on the *calling* thread.
    // (`pool.scope_fifo` would run it on a pool thread, and the cashier's
    // waiting on sockets would take a cook away.) The scope does not
    // return until every job spawned in it has finished: that is how
    // closing waits for the orders in flight, and why the jobs may borrow
    // `shift`.
    pool.in_place_scope_fifo(|kitchen| {
        // The pool is up: let the customers in.
        shift.open();
        // `incoming` blocks in `accept`. At closing time the shift knocks
        // on the door once, so the loop wakes up and sees it is time.
        for stream in listener.incoming() {
            if shift.is_closed() {
                break;
            }
            match stream {
                Ok(stream) => {
                    if let Some(order) = take_order(stream) {
                        hand_over(kitchen, order, shift);
                    }
                }
                // Out of file descriptors, or a customer who left before
                // being accepted: never fatal. Wait a little, go on.
                Err(e) => {
                    eprintln!("parallelism-rayon: accept failed: {e}");
                    thread::sleep(ACCEPT_BACKOFF);
                }
            }
        }
    });
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

// ANCHOR: cook
/// Spawns the order as a job: rayon queues it, and whichever worker is
/// free cooks it, start to finish, and hands the plate to its customer.
fn hand_over<'s>(
    kitchen: &ScopeFifo<'s>,
    (ticket, mut stream): (Ticket, TcpStream),
    shift: &'s Shift,
) {
    // FIFO, so the oldest order is cooked first (see the book: from a
    // pool thread, plain `spawn` is newest-first).
    kitchen.spawn_fifo(move |_| {
        // Catch the panic inside the job, where the order is known, and
        // report it at once. Left to rayon, a panic in a scoped job would
        // come out of the scope at closing, with no order attached.
        let reply =
            match panic::catch_unwind(AssertUnwindSafe(|| cook(&ticket))) {
                Ok(plate) => plate,
                Err(payload) => {
                    shift.cook_panicked(ticket.id(), &*payload);
                    wire::error_line("the cook panicked")
                }
            };
        // A customer who hung up has only lost their own plate.
        let _ = stream.write_all(reply.as_bytes());
    });
}

/// Cooks one order on this worker, start to finish.
fn cook(ticket: &Ticket) -> String {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // rayon has no timer: the worker thread sleeps, and no other
            // job can run on it until the simmer is over.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

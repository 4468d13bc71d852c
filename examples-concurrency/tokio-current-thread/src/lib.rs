//! # concurrency-tokio-current-thread: one thread, one event loop
//!
//! ```text
//! cargo run --release -p concurrency-tokio-current-thread -- --preset takeout
//! ```
//!
//! Node.js's model, in Rust. The accept loop, every customer and every cook
//! are futures on a single thread: tokio's **current-thread** runtime runs
//! them all on the thread that calls `block_on`, switching from one to the
//! next each time the one running reaches an `.await` that is not ready.
//! While a customer is still typing or a cook simmers, its task is parked
//! on the I/O driver or the timer and the thread polls someone else. That
//! is concurrency without any parallelism: thousands of customers and
//! orders in flight, one CPU in use.
//!
//! What the runtime is made of (tokio 1.54's current-thread flavour):
//!
//! - **one thread**, the caller's. There are no worker threads: the
//!   scheduler loop runs inside `block_on`, and spawned tasks run only
//!   while it does;
//! - an **I/O driver** (epoll on Linux) for the listener and the
//!   customers' sockets, and a **timer** wheel with millisecond resolution.
//!   When no task is ready the thread waits in epoll until a socket is
//!   ready or the next timer is due: that wait is the event loop's idle
//!   state.
//!
//! How it differs from its siblings: the code is `concurrency-tokio`'s,
//! statement for statement, except for the one that builds the runtime.
//! That one line changes two things: one thread instead of one per core,
//! and where the accept loop runs (there, `block_on` gives it the calling
//! thread, which is not a worker; here it shares the one thread with
//! every customer and cook). `--cooks` means nothing here; only 1 is
//! accepted.
//!
//! **Its weakness, measured:** only one thing runs at a time, so a chop
//! holds the whole restaurant. While a cook chops, nobody accepts, greets
//! or rings up a customer, and no simmer that ends gets its cook back: the
//! door goes unattended for as long as the longest chop (the counter wait
//! on `big-order`). And a second core, if there is one, stays idle: on
//! `banquet` the makespan is the sum of all the chopping. Waiting is what
//! one loop is good at; computing needs another thread (the
//! `examples-blocking` crates show which).

use std::io;
use std::net::TcpListener as StdListener;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as tasks on one thread, one event loop: Node.js's model, \
            in tokio.",
    // One thread is the whole point: the command line accepts only 1.
    cooks: Cooks::One,
    waiters: None,
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Builds a current-thread runtime and runs the restaurant on this thread
/// until closing time, and until every order it accepted is served.
/// `_cooks` is always 1 ([`Cooks::One`]).
pub fn serve(
    listener: StdListener,
    _cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // The one line that differs from `concurrency-tokio`. No worker threads
    // are started: the runtime is a scheduler, an I/O driver and a timer
    // that run on whichever thread calls `block_on`, here the caller's.
    // (`#[tokio::main(flavor = "current_thread")]` builds the same thing.)
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    // The event loop runs inside `block_on` and stops when `restaurant`
    // returns, by which time every customer's task has ended.
    runtime.block_on(restaurant(listener, shift))
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each.
async fn restaurant(
    listener: StdListener,
    shift: Shift,
) -> Result<(), BoxError> {
    // tokio takes over a std listener, already bound with its backlog
    // sized (`restaurant::door::bind`), once it is non-blocking.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    // The runtime is up and the door is open: let the customers in.
    shift.open();
    // A JoinSet owns every customer's task, as in `concurrency-tokio`. The
    // tasks are `Send`, so plain `spawn` works; `LocalSet::spawn_local`
    // would only be needed for futures that hold an `Rc` or a `RefCell`
    // across an `.await`, and would change nothing about the scheduling.
    let mut customers = JoinSet::new();
    loop {
        // Only while the loop waits here do the customers and cooks get
        // the thread. A chop in progress delays this `select!` until it
        // ends: the kernel queues newcomers at the door meanwhile.
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Only queued: it runs when this loop next waits.
                    customers.spawn(attend(stream, shift.clone()));
                }
                // Out of file descriptors, or a customer who left before
                // being accepted: never fatal. Back off a little; retry.
                Err(e) => {
                    eprintln!(
                        "concurrency-tokio-current-thread: accept failed: {e}"
                    );
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap customers who have left, so the set stays as small as
            // the number of customers inside.
            Some(_) = customers.join_next(), if !customers.is_empty() => {}
        }
    }
    // Closing time: drop the listener, so the kernel refuses newcomers,
    // then let every customer inside finish.
    drop(listener);
    while customers.join_next().await.is_some() {}
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, send it to the
/// kitchen, and hand over the plate. Many of these are in flight at once,
/// all on the one thread: each gives it up at every `.await`.
async fn attend(mut stream: TcpStream, shift: Shift) {
    // A customer who hangs up costs only their own order: I/O errors on
    // this connection are theirs, so they end the visit quietly.
    let _ = async {
        stream.write_all(wire::NEXT.as_bytes()).await?;
        let (reader, mut writer) = stream.split();
        // The line and its reader live only in this block: both are gone
        // before the wait for the cook, most of a visit, so a waiting
        // customer holds no read buffer (8 KiB each). The buffer keeps its
        // default size on purpose: one of MAX_LINE would leave the rest of
        // an oversized line unread, and closing a socket with unread bytes
        // sends a reset that can overtake the ERROR. Bytes after the line
        // are not part of the protocol; they go with the buffer.
        let heard = {
            let mut line = String::new();
            // At most MAX_LINE bytes, for at most PATIENCE; and if it is
            // closing time before the order is said, it was never an order.
            let mut reader = BufReader::new(reader).take(wire::MAX_LINE as u64);
            let read = reader.read_line(&mut line);
            let read = tokio::select! {
                read = timeout(wire::PATIENCE, read) => {
                    read.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                }
                () = shift.closed() => return Ok(()),
            };
            wire::heard(read, &line)
        };
        let mut ticket = match heard {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                return writer
                    .write_all(wire::error_line(&why).as_bytes())
                    .await;
            }
        };
        // The till's own chop: short, but the loop waits for it too.
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        // Hand the order to the kitchen: a task of its own, on this same
        // thread. Its JoinHandle brings back the plate, or the panic of a
        // cook who failed: tokio catches it on the task's poll, so the
        // loop, and every other customer on it, carries on.
        let reply = match tokio::spawn(cook(ticket)).await {
            Ok(plate) => plate,
            Err(e) if e.is_panic() => {
                shift.cook_panicked(id, &*e.into_panic());
                wire::error_line("the cook panicked")
            }
            // Nothing cancels a cook: the runtime outlives every customer.
            Err(e) => wire::error_line(&e.to_string()),
        };
        writer.write_all(reply.as_bytes()).await
    }
    .await;
}
// ANCHOR_END: cashier

// ANCHOR: cook
/// A cook: runs the recipe's steps in order and serves the plate.
async fn cook(ticket: Ticket) -> String {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        match *step {
            // CPU work runs right here, on the only thread there is: until
            // it returns, no other cook runs, no customer is greeted and
            // nobody is let in.
            Step::Chop(work) => plate.chop(work),
            // Waiting yields: the cook is parked on the timer and the loop
            // moves on to whoever is ready.
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

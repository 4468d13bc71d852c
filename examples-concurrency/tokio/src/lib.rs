//! # concurrency-tokio: cooks as tasks on a work-stealing runtime
//!
//! ```text
//! cargo run --release -p concurrency-tokio -- --preset takeout
//! ```
//!
//! A restaurant served the way most Rust network services are: an accept
//! loop on tokio's multi-thread runtime, a task per customer, and a task
//! per order in the kitchen. A task waiting on a socket or a simmer holds
//! no thread; the runtime parks it on the I/O driver or the timer and the
//! thread polls other tasks. So thousands of customers can be attended and
//! thousands of orders simmer at once on two threads (**concurrency**),
//! while several cooks chop on several threads at the same time
//! (**parallelism**).
//!
//! How it differs from its siblings: `tokio-current-thread` runs the same
//! kind of code on one thread, the way Node.js does; `parallelism-thread-pool`
//! gives each cook a whole OS thread that sits idle while it simmers.
//!
//! **Its weakness, measured:** a chop holds the worker that polls it
//! until it is done, and one long chop can leave the door deaf while the
//! other worker sleeps. In tokio 1.54.1 (`runtime/scheduler/multi_thread/`)
//! an idle worker parks on the I/O driver only if it wins the driver's
//! lock, and on a condition variable otherwise (`park.rs`, `Inner::park`).
//! A worker woken by the driver with one task tells nobody
//! (`worker.rs`: `Handle::schedule_local` does not notify during a park,
//! `Core::should_notify_others` wants two tasks, and
//! `Core::transition_from_parked` does not make it a searcher). So when the
//! cashier it woke spawns a cake's cook, the same worker chops, the other
//! stays asleep, and nobody polls epoll: this crate's accept loop, on the
//! `block_on` thread, is not told of newcomers until the chop ends. That,
//! not two cakes at once (seed 1's overlap for about 26 ms), is the
//! counter wait of `concurrency-tokio` on `big-order`; the book's tokio
//! chapter has the lines and the issue (tokio-rs/tokio#4730), and
//! `examples/deaf_door.rs` shows it: a 200 ms chop, a customer 50 ms into
//! it, greeted about 150 ms later (median of 20 rounds; 2 cores,
//! 2026-12-08). Tasks are cheap to wait with, not to compute with: the
//! `examples-blocking` crates show how to move long CPU work off the
//! workers.

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
    about: "Cooks as tasks on tokio's multi-thread, work-stealing runtime.",
    cooks: Cooks::Cores {
        what: "worker threads of the tokio runtime",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Builds a runtime with `cooks` worker threads and runs the restaurant on
/// it until closing time, and until every order it accepted is served.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // `#[tokio::main]` would build this for us; building it by hand lets
    // `--cooks` choose the number of worker threads. `enable_io` turns on
    // the I/O driver (epoll on Linux) that sockets need, `enable_time` the
    // timer that `sleep` and `timeout` need.
    // A thread the OS refuses must be asked about first: tokio 1.54.1
    // starts each worker through its blocking pool (`Launch::launch`), which
    // panics when one is refused ("OS can't spawn worker thread"), and the
    // unwind then waits in `BlockingPool::drop` for the workers already
    // started, which nobody tells to stop: `build` hangs instead of
    // returning the error. (tokio-rs/tokio#8406, fixed by #8408, is that
    // same launch path silently orphaning the worker before it panicked.)
    // So ask the OS for the `cooks` workers first; see restaurant::limits.
    restaurant::limits::headroom(cooks)?;
    let runtime = Builder::new_multi_thread()
        .worker_threads(cooks)
        .enable_io()
        .enable_time()
        .build()?;
    // `block_on` runs the accept loop on this thread, which polls that one
    // future and nothing else (not the I/O driver either); every task it
    // spawns goes through the runtime's shared inject queue to the worker
    // threads. Dropping the runtime when `restaurant` returns shuts the
    // workers down.
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
    // A JoinSet owns every customer's task: none outlives the restaurant.
    let mut customers = JoinSet::new();
    loop {
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    customers.spawn(attend(stream, shift.clone()));
                }
                // Out of file descriptors, or a customer who left before
                // being accepted: never fatal. Back off a little; retry.
                Err(e) => {
                    eprintln!("concurrency-tokio: accept failed: {e}");
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
/// kitchen, and hand over the plate. Many of these run at once: one loop
/// attends every customer who is waiting on the network.
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
        // The till's own chop is short: fine on a worker thread.
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        // Hand the order to the kitchen: a task of its own, which any
        // worker may poll. Its JoinHandle brings back the plate, or the
        // panic of a cook who failed, the moment it happens.
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
            // CPU work runs right here, on whichever worker polls this task,
            // and keeps that worker busy until it is done.
            Step::Chop(work) => plate.chop(work),
            // Waiting yields: the task is parked on the timer and the worker
            // thread moves on to other tasks.
            Step::Simmer(d) => sleep(d).await,
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

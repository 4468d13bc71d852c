//! # concurrency-smol: executors you run on threads you own
//!
//! ```text
//! cargo run --release -p concurrency-smol -- --preset takeout
//! ```
//!
//! smol is a small runtime made of separate crates, and this model puts
//! three of them together by hand: `async-io` (`smol::Async`,
//! `smol::Timer`) for the sockets and the timers, and two executors from
//! `async-executor`. The front of house is a `LocalExecutor` run by the
//! calling thread: the accept loop, and a task per customer that greets,
//! reads the order and rings it up. The kitchen is an `Executor` run by
//! `--cooks` threads (default: one per core), the way smol's documentation
//! sets up a multi-threaded executor: `std::thread::scope` plus
//! `block_on(ex.run(shutdown))` on each thread. Every cook is a task there.
//!
//! What the runtime is made of (smol 2.0: async-executor 1.14, async-io
//! 2.6):
//!
//! - an **executor** is a value (`Executor::new()`), not a set of threads:
//!   a queue of ready tasks that whichever thread calls `run` on it polls.
//!   Each thread running the shared `Executor` gets a local queue, takes
//!   batches from the shared one and steals from the others when it runs
//!   dry. A `LocalExecutor` is the same for one thread, and its tasks need
//!   not be `Send`;
//! - the **reactor and timers** of `async-io`, global to the process: one
//!   epoll (or kqueue, or IOCP) instance plus a sorted set of timers. There
//!   is no reactor thread in the usual sense: whichever thread is idle
//!   inside `async_io::block_on` (`smol::block_on`) takes the reactor and
//!   waits on it. A helper thread called `async-io`, started on first use
//!   and alive until the process exits, does it when no one else does.
//!
//! Threads: the caller (the door and the cashier), `--cooks` cook threads,
//! and `async-io`.
//!
//! How it differs from its siblings: `concurrency-tokio` ships its runtime
//! as one builder and runs customers and cooks on the same workers; here
//! the executors and the threads that run them are separate things you put
//! together, and that lets the cashier keep a thread that no cook can
//! take. smol's own `smol::spawn` uses a global executor run by one thread
//! unless the `SMOL_THREADS` environment variable says otherwise; this
//! model builds its own so that `--cooks` chooses the number of threads
//! and every thread is joined before `serve` returns.
//!
//! **Its weakness, measured:** a chop holds its cook thread until it is
//! done, so on `big-order` the orders whose simmers end while a cake is
//! being chopped wait for another cook; only the counter is spared. And
//! precise timers cost system calls: async-io re-arms a timerfd on every
//! turn of the reactor, and every new timer nudges the reactor with an
//! eventfd write; `strace -f -c` on `takeout`, thousands of timers in a
//! burst, counts them (tokio's run makes no `timerfd_settime` at all).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::thread;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
// `or` to race two futures, `catch_unwind` on a future: futures-lite's,
// re-exported by smol.
use smol::future::FutureExt as _;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::{Async, Executor, LocalExecutor, Timer, channel};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as tasks on smol's executor, run by N threads; the \
            cashier on a local executor of its own.",
    cooks: Cooks::Cores {
        what: "threads running the kitchen's executor",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Starts `cooks` threads that run the kitchen, runs the front of house on
/// the calling thread until closing time and every customer is served,
/// then closes the kitchen and joins every thread.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // The executor is a queue and a way to poll what is on it; it owns no
    // thread. It lives on this stack frame, so the threads below borrow it,
    // which `thread::scope` allows.
    // async-io's reactor thread is one more, started on first use with
    // `.expect("cannot spawn async-io thread")` (async-io 2.6.0,
    // driver.rs, `unparker`): a refusal there is a panic in whichever
    // thread touched the reactor first, here a cook's. So ask the OS for
    // the cooks and that one before starting any (restaurant::limits).
    restaurant::limits::headroom(cooks + 1)?;
    let kitchen = Executor::new();
    // The closing signal. Each cook thread runs the executor until its
    // `recv()` completes, and `recv()` completes (with an error) when the
    // last sender is dropped. Nothing is ever sent on it.
    let (closing, closed) = channel::unbounded::<()>();

    // Every thread spawned in the scope is joined before `scope` returns,
    // so no cook thread can outlive `serve`.
    thread::scope(|scope| {
        let mut crew = Ok(());
        for i in 0..cooks {
            let (kitchen, closed) = (&kitchen, closed.clone());
            let cook = thread::Builder::new()
                .name(format!("cook-{i}"))
                .spawn_scoped(scope, move || {
                    // `smol::block_on` is async-io's: while this thread has
                    // no task to poll it may take the reactor and wait for
                    // sockets and timers itself. The `Err` it returns at
                    // the end only says that the channel closed.
                    let _ = smol::block_on(kitchen.run(closed.recv()));
                });
            if let Err(e) = cook {
                crew = Err(restaurant::limits::thread_refused_for(
                    format!("cook {i} of {cooks}"),
                    e,
                ));
                break;
            }
        }
        let served = match crew {
            Ok(()) => front_of_house(listener, &kitchen, shift),
            Err(e) => Err(e),
        };
        // Closing the kitchen, on every path (a failed spawn included):
        // without this the cook threads would run forever and `scope`
        // would wait for them forever.
        drop(closing);
        served
    })
}

/// Runs the door and every customer's task on the calling thread, until
/// closing time and until the last customer has left.
fn front_of_house(
    listener: TcpListener,
    kitchen: &Executor<'_>,
    shift: Shift,
) -> Result<(), BoxError> {
    // A second executor, for this thread alone. Its tasks may borrow the
    // kitchen: it is dropped first, at the end of this function.
    let front = LocalExecutor::new();
    smol::block_on(async {
        front.run(door(&front, kitchen, listener, shift)).await?;
        // The door is shut. `run` stopped with the door, so run the
        // customers still inside here until the last one has left; a
        // detached task counts until it is done.
        while !front.is_empty() {
            front.tick().await;
        }
        Ok(())
    })
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each on the
/// front-of-house executor.
async fn door<'a>(
    front: &LocalExecutor<'a>,
    kitchen: &'a Executor<'_>,
    listener: TcpListener,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-io takes over the std listener (bound, its backlog sized by
    // `restaurant::door::bind`): makes it non-blocking and registers it
    // with the reactor.
    let listener = Async::new(listener)?;
    // The kitchen's threads are up and the door is open.
    shift.open();
    loop {
        // `or` polls the left future first: closing time wins a tie.
        let closing = async {
            shift.closed().await;
            None
        };
        match closing.or(async { Some(listener.accept().await) }).await {
            None => break,
            Some(Ok((stream, _))) => {
                // Detached: the task runs on without its handle, and the
                // executor still counts it until it is done.
                front.spawn(attend(stream, kitchen, shift.clone())).detach();
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal. Back off a little; retry.
            Some(Err(e)) => {
                eprintln!("concurrency-smol: accept failed: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Dropping the listener makes the kernel refuse newcomers.
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, send it to the
/// kitchen, and hand over the plate. Many of these run at once, all on the
/// calling thread, where no cook ever chops.
async fn attend(
    stream: Async<TcpStream>,
    kitchen: &Executor<'_>,
    shift: Shift,
) {
    // A customer who hangs up costs only their own order: I/O errors on
    // this connection are theirs, so they end the visit quietly.
    let _ = async {
        // `&Async<TcpStream>` reads and writes, so one socket serves both.
        let mut writer = &stream;
        writer.write_all(wire::NEXT.as_bytes()).await?;
        let mut line = String::new();
        // At most MAX_LINE bytes, for at most PATIENCE; and if it is
        // closing time before the order is said, it was never an order.
        // futures-lite has no `timeout`: a timer raced with `or` is one.
        let mut reader = BufReader::new(&stream).take(wire::MAX_LINE as u64);
        let read = async { Some(reader.read_line(&mut line).await) };
        let patience = async {
            Timer::after(wire::PATIENCE).await;
            Some(Err(io::ErrorKind::TimedOut.into()))
        };
        let closing = async {
            shift.closed().await;
            None
        };
        let Some(read) = read.or(patience).or(closing).await else {
            return Ok(());
        };
        let mut ticket = match wire::heard(read, &line) {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                return writer
                    .write_all(wire::error_line(&why).as_bytes())
                    .await;
            }
        };
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        // A smol task whose future panics hands the panic to whoever
        // awaits it, and it would unwind this customer's task. Caught in
        // the cook's own task instead, it comes back as an `Err` the
        // moment it happens. `AssertUnwindSafe` is sound because a cook
        // shares nothing: its plate dies with it.
        let dish = AssertUnwindSafe(cook(ticket)).catch_unwind();
        // `spawn` queues the task and wakes a sleeping cook thread.
        let reply = match kitchen.spawn(dish).await {
            Ok(plate) => plate,
            Err(payload) => {
                shift.cook_panicked(id, &*payload);
                wire::error_line("the cook panicked")
            }
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
            // CPU work runs right here, on the cook thread that polled this
            // task, and keeps that thread until it is done.
            Step::Chop(work) => plate.chop(work),
            // The task registers its timer and returns `Pending`; the
            // thread moves on. (The `Instant` it resolves to is not needed.)
            Step::Simmer(d) => {
                Timer::after(d).await;
            }
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

//! # concurrency-smol: an executor you run on threads you own
//!
//! ```text
//! cargo run --release -p concurrency-smol -- --preset takeout
//! ```
//!
//! smol is a small runtime made of separate crates, and this model puts
//! three of them together by hand: `async-io` (`smol::Async`,
//! `smol::Timer`) for the sockets and the timers, an `Executor` from
//! `async-executor`, and a channel from `async-channel`. The layout is the
//! one smol's documentation gives a server: the accept loop is the future
//! passed to `smol::block_on` on the calling thread, and every customer
//! (greet, read the order, ring it up, hand over the plate) and every cook
//! is a task spawned onto one shared `Executor`, run by `--cooks` threads
//! (default: one per core). async-executor 1.14's own example of a
//! multi-threaded executor is exactly that, "run four executor threads,
//! run the main future on the current thread"; smol 2.0's `hyper-server`
//! example spawns each connection onto an `Arc<Executor<'static>>` the
//! same way.
//!
//! What the runtime is made of (smol 2.0: async-executor 1.14, async-io
//! 2.6):
//!
//! - an **executor** is a value (`Executor::new()`), not a set of threads:
//!   a queue of ready tasks that whichever thread calls `run` on it polls.
//!   Each thread running it gets a local queue, takes batches from the
//!   shared one and steals from the others when it runs dry;
//! - the **reactor and timers** of `async-io`, global to the process: one
//!   epoll (or kqueue, or IOCP) instance plus a sorted set of timers. There
//!   is no reactor thread in the usual sense: whichever thread is idle
//!   inside `async_io::block_on` (`smol::block_on`) takes the reactor and
//!   waits on it. A helper thread called `async-io`, started on first use
//!   and alive until the process exits, does it when no one else does.
//!
//! Threads: the caller (the door), `--cooks` executor threads (customers
//! and cooks alike), and `async-io`.
//!
//! How it differs from its siblings: `concurrency-tokio` has the same
//! layout, but ships its runtime as one builder; here the executor and the
//! threads that run it are separate things you put together, and stop by
//! closing a channel. smol's own `smol::spawn` uses a global executor run
//! by one thread unless the `SMOL_THREADS` environment variable says
//! otherwise; this model builds its own so that `--cooks` chooses the
//! number of threads and every thread is joined before `serve` returns.
//!
//! **Its weakness, measured:** a chop holds its executor thread until it
//! is done, and customers share those threads with the cooks: a customer
//! who walks in while every thread chops waits to be greeted, as in tokio
//! (`tests/threads.rs`). And precise timers cost system calls: async-io
//! re-arms a timerfd on every turn of the reactor, and every new timer
//! nudges the reactor with an eventfd write; `strace -f -c` on
//! `takeout`, thousands of timers in a burst, counts them (tokio's run
//! makes no `timerfd_settime` at all).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
// `or` to race two futures, `catch_unwind` on a future: futures-lite's,
// re-exported by smol.
use smol::future::FutureExt as _;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::{Async, Executor, Timer, channel, channel::Sender};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Customers and cooks as tasks on smol's executor, run by N \
            threads; the door on the calling thread.",
    cooks: Cooks::Cores {
        what: "threads running the executor",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};
// ANCHOR_END: model

// ANCHOR: serve
/// Starts `cooks` threads that run the executor, runs the door on the
/// calling thread until closing time and every customer is served, then
/// stops the executor's threads and joins them.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-io's reactor thread is one more, started on first use with
    // `.expect("cannot spawn async-io thread")` (async-io 2.6.0,
    // driver.rs, `unparker`): a refusal there is a panic in whichever
    // thread touched the reactor first. So ask the OS for the executor's
    // threads and that one before starting any (restaurant::limits).
    restaurant::limits::headroom(cooks + 1)?;
    // The executor is a queue and a way to poll what is on it; it owns no
    // thread. It is shared through an `Arc`: every customer's task holds
    // it to spawn its cook, and a task cannot borrow the executor it is
    // stored in. Its tasks are therefore `'static`, as tokio's are.
    let executor = Arc::new(Executor::new());
    // The closing signal. Each thread runs the executor until its `recv()`
    // completes, and `recv()` completes (with an error) when the last
    // sender is dropped. Nothing is ever sent on it.
    let (closing, closed) = channel::unbounded::<()>();

    // Every thread spawned in the scope is joined before `scope` returns,
    // so no executor thread can outlive `serve`.
    thread::scope(|scope| {
        let mut crew = Ok(());
        for i in 0..cooks {
            let (executor, closed) = (&executor, closed.clone());
            let cook = thread::Builder::new()
                .name(format!("cook-{i}"))
                .spawn_scoped(scope, move || {
                    // `smol::block_on` is async-io's: while this thread has
                    // no task to poll it may take the reactor and wait for
                    // sockets and timers itself. The `Err` it returns at
                    // the end only says that the channel closed.
                    let _ = smol::block_on(executor.run(closed.recv()));
                });
            if let Err(e) = cook {
                crew = Err(restaurant::limits::thread_refused_for(
                    format!("cook {i} of {cooks}"),
                    e,
                ));
                break;
            }
        }
        // The door is not a task: `block_on` polls it, and only it, on
        // this thread, and returns when the last customer has left.
        let served = match crew {
            Ok(()) => smol::block_on(restaurant(listener, &executor, shift)),
            Err(e) => Err(e),
        };
        // Stopping the executor's threads, on every path (a failed spawn
        // included): without this they would run forever and `scope`
        // would wait for them forever.
        drop(closing);
        served
    })
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each on the
/// executor, then waits for the last one to leave.
async fn restaurant(
    listener: TcpListener,
    executor: &Arc<Executor<'static>>,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-io takes over the std listener (bound, its backlog sized by
    // `restaurant::door::bind`): makes it non-blocking and registers it
    // with the reactor.
    let listener = Async::new(listener)?;
    // The executor's threads are up and the door is open.
    shift.open();
    // A detached task is counted by the executor, but nothing can await
    // "every customer has left" there. So each customer carries a clone of
    // `inside`; once every clone is dropped, `recv` on the other end
    // fails, and that is the signal.
    let (inside, all_gone) = channel::bounded::<()>(1);
    loop {
        // `or` polls the left future first: closing time wins a tie.
        let closing = async {
            shift.closed().await;
            None
        };
        match closing.or(async { Some(listener.accept().await) }).await {
            None => break,
            Some(Ok((stream, _))) => {
                let customer = attend(
                    stream,
                    Arc::clone(executor),
                    shift.clone(),
                    inside.clone(),
                );
                // `spawn` queues the task and wakes an idle executor
                // thread. Detached, it runs on without its handle.
                executor.spawn(customer).detach();
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal. Back off a little; retry.
            Some(Err(e)) => {
                eprintln!("concurrency-smol: accept failed: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Closing time: drop the listener, so the kernel refuses newcomers,
    // then wait for the last customer to leave.
    drop(listener);
    drop(inside);
    let _ = all_gone.recv().await;
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, send it to the
/// kitchen, and hand over the plate. Many of these run at once, on the
/// executor's threads, beside the cooks. `_inside` is dropped when the
/// customer leaves.
async fn attend(
    stream: Async<TcpStream>,
    executor: Arc<Executor<'static>>,
    shift: Shift,
    _inside: Sender<()>,
) {
    // A customer who hangs up costs only their own order: I/O errors on
    // this connection are theirs, so they end the visit quietly.
    let _ = async {
        // `&Async<TcpStream>` reads and writes, so one socket serves both.
        let mut writer = &stream;
        writer.write_all(wire::NEXT.as_bytes()).await?;
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
            // closing time before the order is said, it was never an
            // order. futures-lite has no `timeout`: a timer raced with
            // `or` is one.
            let mut reader =
                BufReader::new(&stream).take(wire::MAX_LINE as u64);
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
        // The till's own chop is short: fine on an executor thread.
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        // A smol task whose future panics hands the panic to whoever
        // awaits it, and it would unwind this customer's task. Caught in
        // the cook's own task instead, it comes back as an `Err` the
        // moment it happens. `AssertUnwindSafe` is sound because a cook
        // shares nothing: its plate dies with it.
        let dish = AssertUnwindSafe(cook(ticket)).catch_unwind();
        // The cook is a task of its own, which any executor thread may
        // poll; this customer's task waits for it without holding one.
        let reply = match executor.spawn(dish).await {
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
            // CPU work runs right here, on the executor thread that polled
            // this task, and keeps that thread until it is done.
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

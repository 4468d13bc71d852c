//! # concurrency-async-std: DISCONTINUED, kept only to compare
//!
//! ```text
//! cargo run --release -p concurrency-async-std -- --preset takeout
//! ```
//!
//! **async-std is discontinued** (its authors announced it with 1.13.1, and
//! the RustSec advisory **RUSTSEC-2025-0052** marks it unmaintained). Its
//! README asks every user to move to **smol**; do not start anything new on
//! it, and copy `concurrency-smol` instead of this crate. It is here because
//! a great deal of code still runs on it, and because it shows how little
//! it is on top of smol's crates.
//!
//! The model: the accept loop is the future passed to `task::block_on`,
//! on the calling thread; every customer and every cook is a task spawned
//! with `async_std::task::spawn` onto a global runtime. Sockets are
//! `async_std::net`, simmers `task::sleep`.
//!
//! What the runtime is made of (async-std 1.13, through
//! `async-global-executor` 2.4):
//!
//! - the **executor** is smol's `async-executor`, one global instance run
//!   by a pool of threads named `async-std/runtime`, started by
//!   `async_global_executor::init_with_config` (which async-std calls the
//!   first time it builds a task, and this model calls earlier, in
//!   [`start_runtime`]) and never stopped: they outlive every call to
//!   `serve` and are only ended by the process exiting. Their number is set
//!   **once** per process, from the `ASYNC_STD_THREAD_COUNT` environment
//!   variable (one per core without it), unless the executor was configured
//!   first; see [`start_runtime`] for how `--cooks` reaches it, and its
//!   limits. **`ASYNC_GLOBAL_EXECUTOR_THREADS`, if set to a number,
//!   silently overrides `--cooks`**; the model warns on stderr when it is
//!   set;
//! - the **reactor and timers** are `async-io`'s, as in smol: a socket is
//!   an `async_io::Async`, `task::sleep` an `async_io::Timer`, and
//!   whichever thread is idle inside `block_on` waits on the reactor, with
//!   the `async-io` helper thread as the fallback.
//!
//! Threads: the caller (the door), `--cooks` runtime threads (or
//! `ASYNC_GLOBAL_EXECUTOR_THREADS` of them), and `async-io`.
//!
//! How it differs from its siblings: the same executor and reactor as
//! `concurrency-smol`, and the same layout (the door on the calling
//! thread, customers and cooks as tasks on the executor's threads), hidden
//! behind std-like global functions. There is no runtime value to build,
//! size or drop.
//!
//! **Its weakness, measured:** not the executor, which is smol's. It is
//! that its global runtime cannot be configured or shut down from code:
//! `--cooks` has to travel through a configuration read once per process;
//! the runtime threads are still there after `serve` returns; and a
//! dropped `JoinHandle` detaches its task instead of cancelling it, so
//! knowing when every customer has left takes a mechanism of our own. As
//! in every executor here, a customer who walks in while every runtime
//! thread chops waits to be greeted (`tests/threads.rs`). And it is
//! unmaintained.

use std::net::TcpListener as StdListener;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use async_global_executor::GlobalExecutorConfig;
use async_std::channel::{self, Sender};
use async_std::io::{BufReadExt, BufReader, ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
// `or` to race two futures and `catch_unwind` for futures, neither of
// which async-std has in its stable API.
use futures_lite::FutureExt as _;
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};

// ANCHOR: model
/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "DISCONTINUED (RUSTSEC-2025-0052), kept only to compare: cooks as \
            async-std tasks. Use smol instead.",
    cooks: Cooks::Cores {
        what: "threads of async-std's global runtime",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};
// ANCHOR_END: model

// ANCHOR: threads
/// Makes sure async-std's runtime starts with `cooks` threads, and returns
/// how many it has: on the first call in a process, `cooks` (or what
/// `ASYNC_GLOBAL_EXECUTOR_THREADS` says instead, below), and whatever the
/// first call chose on every later one.
///
/// async-std has no builder. Its runtime is `async-global-executor`, which
/// async-std 1.13.2 configures the first time it builds a task (`spawn`,
/// `spawn_local`, `spawn_blocking` and `block_on` all go through
/// `task::Builder`, which forces its `rt::RUNTIME`), from the environment
/// variable `ASYNC_STD_THREAD_COUNT` (one thread per core without it). The
/// threads start inside `async_global_executor::init_with_config`, and the
/// first configuration wins for the life of the process. So we call it
/// ourselves, before async-std is first touched, and the threads start
/// here, not at `block_on`: it is the safe route (writing the environment
/// of a running process is `unsafe` since Rust 2024). The binary calls
/// `serve` once, so `--cooks` is honoured there; the tests call `serve`
/// many times in one process, and every call after the first runs with the
/// first call's threads (the results are the same, only the parallelism
/// differs).
///
/// One variable still wins over `--cooks`: a configuration that names no
/// variable of its own, as this one, is read from
/// `ASYNC_GLOBAL_EXECUTOR_THREADS`, and a number there beats
/// `with_min_threads` (async-global-executor 2.4.1, `config.rs`, `seal`).
/// Setting it silently changes the runtime's size, so this function says
/// so on stderr, in one line.
pub fn start_runtime(cooks: usize) -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let threads = env_override(cooks).unwrap_or(cooks);
        let config = GlobalExecutorConfig::default()
            .with_min_threads(cooks)
            .with_max_threads(cooks)
            // The name async-std gives its threads, so they read the same.
            .with_thread_name_fn(|| "async-std/runtime".to_owned());
        // Starts the threads now, as part of setting up.
        async_global_executor::init_with_config(config);
        threads
    })
}
// ANCHOR_END: threads

/// The variable async-global-executor reads when its configuration names
/// none: it overrides [`start_runtime`]'s `cooks`.
const OVERRIDE: &str = "ASYNC_GLOBAL_EXECUTOR_THREADS";

/// The number of runtime threads `OVERRIDE` imposes, if it is set to one,
/// read as async-global-executor 2.4.1 reads it (a `usize`, at least 1);
/// warns on stderr, in one line, whenever the variable is set.
fn env_override(cooks: usize) -> Option<usize> {
    let value = std::env::var_os(OVERRIDE)?;
    let name = env!("CARGO_PKG_NAME");
    let value = value.to_string_lossy();
    match value.parse::<usize>() {
        Ok(n) => {
            let n = n.max(1);
            eprintln!(
                "{name}: warning: {OVERRIDE}={value} overrides --cooks \
                 {cooks}: async-global-executor starts {n} runtime thread(s)"
            );
            Some(n)
        }
        Err(_) => {
            eprintln!(
                "{name}: warning: {OVERRIDE}={value:?} is set but is not a \
                 number; async-global-executor ignores it (--cooks {cooks})"
            );
            None
        }
    }
}

// ANCHOR: serve
/// Runs the restaurant on async-std's global runtime, started with `cooks`
/// threads if this is the first call in the process, until closing time
/// and until every order it accepted is served.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-global-executor 2.4.1 starts its threads with
    // `.expect("cannot spawn executor threads")` (init.rs, `init`), inside
    // a `block_on` whose reactor thread async-io 2.6.0 also starts with
    // `.expect` (driver.rs, `unparker`): a refused thread is a panic there,
    // and the process aborts. So ask the OS for those threads first, the
    // runtime's and the reactor's (restaurant::limits).
    restaurant::limits::headroom(cooks + 1)?;
    start_runtime(cooks);
    // `block_on` runs the door on this thread. When it returns, every
    // customer has left; the runtime's threads stay, idle.
    task::block_on(restaurant(listener, shift))
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each.
async fn restaurant(
    listener: StdListener,
    shift: Shift,
) -> Result<(), BoxError> {
    // async-std takes over the std listener (bound, its backlog sized by
    // `restaurant::door::bind`): `from` makes it non-blocking and
    // registers it with async-io's reactor, and panics if it cannot.
    let listener = TcpListener::from(listener);
    shift.open();
    // Dropping a `JoinHandle` detaches its task, and async-std has no
    // `JoinSet`: nothing says when the last customer has left. So each
    // customer carries a clone of `inside`; once every clone is dropped,
    // `recv` on the other end fails, and that is the signal.
    let (inside, all_gone) = channel::bounded::<()>(1);
    loop {
        // futures-lite's `or` polls the left future first: closing time
        // wins a tie.
        let closing = async {
            shift.closed().await;
            None
        };
        match closing.or(async { Some(listener.accept().await) }).await {
            None => break,
            Some(Ok((stream, _))) => {
                let customer = attend(stream, shift.clone(), inside.clone());
                // Not awaited: the handle is dropped and the task detached.
                task::spawn(customer);
            }
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal. Back off a little; retry.
            Some(Err(e)) => {
                eprintln!("concurrency-async-std: accept failed: {e}");
                task::sleep(ACCEPT_BACKOFF).await;
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
/// kitchen, and hand over the plate. Runs on a runtime thread, like the
/// cooks. `_inside` is dropped when the customer leaves.
async fn attend(stream: TcpStream, shift: Shift, _inside: Sender<()>) {
    // A customer who hangs up costs only their own order: I/O errors on
    // this connection are theirs, so they end the visit quietly.
    let _ = async {
        // `&TcpStream` reads and writes, so one socket serves both.
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
            // At most MAX_LINE bytes, for at most PATIENCE (`io::timeout`
            // fails with `TimedOut`); and if it is closing time before the
            // order is said, it was never an order.
            let mut reader =
                BufReader::new(&stream).take(wire::MAX_LINE as u64);
            let read = async_std::io::timeout(
                wire::PATIENCE,
                reader.read_line(&mut line),
            );
            let closing = async {
                shift.closed().await;
                None
            };
            let Some(read) = closing.or(async { Some(read.await) }).await
            else {
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
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        // async-std's tasks are smol's: a panic is caught in the task and
        // thrown again at whoever awaits its handle, here this customer's
        // task. Caught inside the cook's own task, it comes back as a
        // value instead, the moment it happens. `AssertUnwindSafe` is
        // sound: a cook shares nothing with anyone.
        let dish = AssertUnwindSafe(cook(ticket)).catch_unwind();
        let reply = match task::spawn(dish).await {
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
            // CPU work runs right here and holds this runtime thread until
            // it is done, as in every executor.
            Step::Chop(work) => plate.chop(work),
            // The task parks on an async-io timer; the thread moves on.
            Step::Simmer(d) => task::sleep(d).await,
        }
    }
    plate.serve()
}
// ANCHOR_END: cook

//! # blocking-rayon-bridge: the loop waits, rayon chops
//!
//! ```text
//! cargo run --release -p blocking-rayon-bridge -- --preset big-order
//! ```
//!
//! Two specialists, each doing what it is built for. A tokio
//! current-thread event loop accepts customers, greets and reads each one
//! in a task of its own, rings them up and waits out every simmer; a rayon
//! pool of `--cooks` threads (default: one per core) does every chop. A
//! cook sends its chop to the pool with `spawn_fifo` and awaits a
//! `tokio::sync::oneshot`; the rayon thread that chops sends the plate
//! back on it, which wakes the cook on the loop. The oneshot is the bridge: the only thing both sides
//! understand. So the loop never chops, and the door stays attended.
//!
//! How it differs from its siblings: like `spawn-blocking`, but the pool is
//! rayon's, sized for CPU work, its threads there from opening to closing
//! (tokio's blocking pool is sized for I/O and starts threads on demand).
//! `dedicated-thread` builds the same bridge by hand.
//!
//! **Panics.** rayon has nobody to hand a `spawn`ed job's panic to, so by
//! default it *aborts the process*. Each job catches its own panic and
//! sends the payload back on the oneshot, where the order is known.
//!
//! **Its weakness, measured:** `spawn-blocking`'s. The chopping threads and
//! the loop share the cores, a salad's chop queues behind cakes (order
//! latency on `big-order`), and every chop pays two hand-offs.

use std::io;
use std::net::TcpListener as StdListener;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use rayon::{ThreadPool, ThreadPoolBuilder};
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "One event loop; chops sent to a rayon pool, each result back on \
            a oneshot channel.",
    cooks: Cooks::Cores {
        what: "rayon threads that chop, beside one event-loop thread",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};

// ANCHOR: serve
/// Starts a rayon pool of `cooks` threads and a current-thread runtime,
/// runs the restaurant on this thread until closing time, then joins every
/// rayon thread.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // A rayon pool's threads are detached: dropping the pool only asks them
    // to leave. To *join* them, we start them ourselves, as scoped threads
    // (rayon's `spawn_handler`): `thread::scope` returns only once every
    // one of them has ended.
    thread::scope(|scope| {
        let pool = ThreadPoolBuilder::new()
            .num_threads(cooks)
            .thread_name(|i| format!("chopper-{i}"))
            .spawn_handler(|thread| {
                let mut builder = thread::Builder::new();
                if let Some(name) = thread.name() {
                    builder = builder.name(name.to_owned());
                }
                builder.spawn_scoped(scope, || thread.run())?;
                Ok(())
            })
            // A refused thread comes back as the error; rayon tells the
            // threads already started to leave, and the scope joins them.
            .build()
            .map_err(|e| {
                let what = format!("{cooks} rayon threads");
                restaurant::limits::thread_refused_for(what, e)
            })?;
        // Every customer's task holds the pool to send its chops to it.
        let pool = Arc::new(pool);
        // One thread, the caller's: the event loop. `enable_io` for the
        // sockets, `enable_time` for simmers and the customers' patience.
        let runtime = Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let served =
            runtime.block_on(restaurant(listener, Arc::clone(&pool), shift));
        // Order matters. Dropping the runtime drops whatever task is left
        // (and its handle on the pool); dropping the last handle lets the
        // rayon threads leave once their queue is empty; only then can the
        // scope's join succeed. A pool still alive here would never end.
        drop(runtime);
        drop(pool);
        served
    })
}
// ANCHOR_END: serve

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each, all
/// on this one thread.
async fn restaurant(
    listener: StdListener,
    pool: Arc<ThreadPool>,
    shift: Shift,
) -> Result<(), BoxError> {
    // tokio takes over the std listener (its backlog already sized) once
    // it is non-blocking.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    // The pool and the loop are up: let the customers in.
    shift.open();
    // Every customer's task, so that none outlives the restaurant.
    let mut customers = JoinSet::new();
    loop {
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let pool = Arc::clone(&pool);
                    customers.spawn(attend(stream, pool, shift.clone()));
                }
                // Out of file descriptors, or a customer who left before
                // being accepted: never fatal. Back off a little; retry.
                Err(e) => {
                    eprintln!("blocking-rayon-bridge: accept failed: {e}");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap customers who have left, so the set stays as small as
            // the number of customers inside.
            Some(_) = customers.join_next(), if !customers.is_empty() => {}
        }
    }
    // Closing time: the kernel refuses newcomers once the listener is
    // gone; everyone inside is served.
    drop(listener);
    while customers.join_next().await.is_some() {}
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, cook it, hand over the
/// plate. Many run at once on the one loop; none of them ever chops here.
async fn attend(mut stream: TcpStream, pool: Arc<ThreadPool>, shift: Shift) {
    // I/O errors on this connection are this customer's alone: the visit
    // ends quietly.
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
                let refusal = wire::error_line(&why);
                return writer.write_all(refusal.as_bytes()).await;
            }
        };
        // The till's own chop is a few microseconds: fine on the loop.
        writer.write_all(ticket.ring_up().as_bytes()).await?;
        let id = ticket.id();
        let reply = match cook(ticket, &pool).await {
            Ok(plate) => plate,
            // A chop panicked on a rayon thread; its payload came back on
            // the oneshot, and is reported now, naming the order.
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
/// A cook: waits on the event loop, chops on the rayon pool. Returns the
/// plate's line, or the payload of a chop that panicked.
async fn cook(ticket: Ticket, pool: &ThreadPool) -> thread::Result<String> {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => {
                let (pass, chopped) = oneshot::channel();
                // `spawn_fifo` returns at once; the job is `'static`, so
                // the plate moves in and travels back on the oneshot.
                // (From outside the pool, `spawn` would queue it the same
                // way; `_fifo` keeps it first-come-first-served from
                // inside the pool too.)
                pool.spawn_fifo(move || {
                    // Catch the panic here: an uncaught one in a `spawn`ed
                    // job aborts the whole process.
                    let chop = panic::catch_unwind(AssertUnwindSafe(|| {
                        plate.chop(work);
                        plate
                    }));
                    // Fails only if the customer's task is gone (the
                    // runtime was dropped): nobody is left to tell.
                    let _ = pass.send(chop);
                });
                // The cook is parked until the rayon thread sends; the
                // loop serves everyone else meanwhile. A job that ended
                // without sending drops `pass`, which wakes us with an
                // error rather than leaving us waiting for ever.
                plate = match chopped.await {
                    Ok(chop) => chop?,
                    Err(_) => {
                        return Err(Box::new("a rayon job ended unsent"));
                    }
                };
            }
            // The loop's timer: the task is parked, the thread is free.
            Step::Simmer(d) => sleep(d).await,
        }
    }
    Ok(plate.serve())
}
// ANCHOR_END: cook

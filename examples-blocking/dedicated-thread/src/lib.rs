//! # blocking-dedicated-thread: a kitchen of its own, fed by a channel
//!
//! ```text
//! cargo run --release -p blocking-dedicated-thread -- --preset big-order
//! ```
//!
//! The bridge between an event loop and blocking work, built by hand from
//! the standard library and one tokio channel. A tokio current-thread loop
//! accepts customers, greets and reads each one in a task of its own, rings
//! them up and waits out every simmer. `--cooks` kitchen threads (default
//! 4), started before opening, take chops from one std `mpsc` queue: a
//! cook on the loop sends its plate down the queue with a
//! `tokio::sync::oneshot` sender attached and awaits the receiver; the
//! kitchen thread chops and sends the plate back, which wakes the cook.
//! At closing, once every customer is served, closing the queue sends the
//! kitchen home.
//!
//! How it differs from its siblings: `spawn-blocking` and `rayon-bridge`
//! rent a pool; this one owns its threads, so it names them, knows how
//! many exist (exactly `--cooks`, from opening to closing) and when they
//! stop. That is the shape for work that lasts as long as the service,
//! such as a thread that owns a blocking client or a device.
//!
//! **Its weakness, measured:** it is a pool written by hand, with a pool's
//! costs (the chopping threads and the loop share the cores; a salad's
//! chop waits behind cakes; two hand-offs per chop: order latency on
//! `big-order`) and its code: the shutdown order, the panic and the lock on
//! the shared receiver are ours to get right.

use std::io;
use std::net::TcpListener as StdListener;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Cooks, Model, Plate, Shift, Step, Work};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

/// The model, as `main` and the tests see it.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "One event loop; chops sent down a channel to kitchen threads of \
            its own, each result back on a oneshot.",
    cooks: Cooks::Cores {
        what: "kitchen threads that chop, beside one event-loop thread",
        cap: restaurant::cli::EXECUTOR_CAP,
    },
    waiters: None,
    serve,
};

/// What a kitchen thread sends back: the chopped plate, or its panic.
type Chopped = thread::Result<Plate>;

/// One chop on its way to the kitchen: the plate, the work, and where to
/// send the result.
type Chop = (Plate, Work, oneshot::Sender<Chopped>);

// ANCHOR: serve
/// Starts `cooks` kitchen threads and a current-thread runtime, runs the
/// restaurant on this thread until closing time, then closes the kitchen
/// and joins it.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    // The queue into the kitchen. Unbounded on purpose: a cook on the loop
    // must never block to send (a bounded std channel would block the
    // loop's thread when full; a bounded tokio one would make the cook
    // await, which is the other sound choice). It cannot grow without
    // bound: each customer has at most one chop in it, and the OS limits
    // how many customers are connected.
    let (rail, chops) = mpsc::channel::<Chop>();
    // std's Receiver has one owner; the kitchen threads take turns at it
    // behind a Mutex, each holding the lock only to take one chop.
    let chops = Arc::new(Mutex::new(chops));
    let mut kitchen = Vec::with_capacity(cooks);
    for i in 0..cooks {
        let chops = Arc::clone(&chops);
        let thread = thread::Builder::new()
            .name(format!("kitchen-{i}"))
            .spawn(move || chopper(&chops))?;
        kitchen.push(thread);
    }

    // One thread, the caller's: the event loop. `enable_io` for the
    // sockets, `enable_time` for simmers and the customers' patience.
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let served = runtime.block_on(restaurant(listener, rail, shift));
    // Every sender must be gone before the kitchen can close: `restaurant`
    // took the first and dropped it; each customer's task drops its clone
    // as it leaves, and dropping the runtime drops any task still there.
    drop(runtime);
    for thread in kitchen {
        // Kitchen threads catch the chops' panics, so a thread that ended in
        // a panic is a bug here; report it rather than hide it.
        thread
            .join()
            .map_err(|_| "a kitchen thread panicked outside a chop")?;
    }
    served
}
// ANCHOR_END: serve

// ANCHOR: kitchen
/// A kitchen thread: chops whatever comes down the rail, until it closes.
fn chopper(chops: &Mutex<Receiver<Chop>>) {
    loop {
        // The guard is a temporary, dropped at the end of the statement:
        // the lock is free again before the chop starts. A poisoned lock
        // only means another thread panicked holding it; the receiver is
        // fine.
        let chop = chops.lock().unwrap_or_else(PoisonError::into_inner).recv();
        // `recv` fails once every sender is gone and the queue is empty:
        // closing time.
        let Ok((mut plate, work, pass)) = chop else {
            return;
        };
        // Catch the panic here, so the thread lives on and the cook learns
        // what happened.
        let chopped = panic::catch_unwind(AssertUnwindSafe(move || {
            plate.chop(work);
            plate
        }));
        // Fails only if the cook is gone (its task was dropped with the
        // runtime); nobody is left to tell.
        let _ = pass.send(chopped);
    }
}
// ANCHOR_END: kitchen

// ANCHOR: accept
/// The door: accepts customers until closing time, a task for each, all
/// on this one thread.
async fn restaurant(
    listener: StdListener,
    rail: Sender<Chop>,
    shift: Shift,
) -> Result<(), BoxError> {
    // tokio takes over the std listener (its backlog already sized) once
    // it is non-blocking.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    // The kitchen and the loop are up: let the customers in.
    shift.open();
    // Every customer's task, so that none outlives the restaurant.
    let mut customers = JoinSet::new();
    loop {
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let rail = rail.clone();
                    customers.spawn(attend(stream, rail, shift.clone()));
                }
                // Out of file descriptors, or a customer who left before
                // being accepted: never fatal. Back off a little; retry.
                Err(e) => {
                    eprintln!("blocking-dedicated-thread: accept failed: {e}");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap customers who have left, so the set stays as small as
            // the number of customers inside.
            Some(_) = customers.join_next(), if !customers.is_empty() => {}
        }
    }
    // Closing time: the kernel refuses newcomers once the listener is
    // gone; our own sender goes too, so the rail closes as soon as the
    // last customer inside has been served.
    drop(listener);
    drop(rail);
    while customers.join_next().await.is_some() {}
    Ok(())
}
// ANCHOR_END: accept

// ANCHOR: cashier
/// One customer: greet, take the order, ring it up, cook it, hand over the
/// plate. Many run at once on the one loop; none of them ever chops here.
async fn attend(mut stream: TcpStream, rail: Sender<Chop>, shift: Shift) {
    // I/O errors on this connection are this customer's alone: the visit
    // ends quietly.
    let _ = async {
        stream.write_all(wire::NEXT.as_bytes()).await?;
        let (reader, mut writer) = stream.split();
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
        let mut ticket = match wire::heard(read, &line) {
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
        let reply = match cook(ticket, &rail).await {
            Ok(plate) => plate,
            // A chop panicked on a kitchen thread; the payload came back on
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
/// A cook: waits on the event loop, chops in the kitchen. Returns the
/// plate's line, or the payload of a chop that panicked.
async fn cook(ticket: Ticket, rail: &Sender<Chop>) -> thread::Result<String> {
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => {
                let (pass, chopped) = oneshot::channel();
                // Sending on an unbounded std channel never blocks: safe on
                // the loop. It fails only if every kitchen thread has died;
                // then `pass` is dropped with the chop, and the await
                // below says so.
                let _ = rail.send((plate, work, pass));
                // Parked until a kitchen thread answers; the loop serves
                // everyone else meanwhile.
                plate = match chopped.await {
                    Ok(chopped) => chopped?,
                    Err(_) => {
                        return Err(Box::new("no kitchen thread was left"));
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

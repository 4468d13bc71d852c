//! # blocking-dedicated-thread: a kitchen of its own, fed by a channel
//!
//! ```text
//! cargo run --release -p blocking-dedicated-thread -- --preset big-order
//! ```
//!
//! The bridge between an event loop and blocking work, built by hand from
//! the standard library and one tokio channel. A tokio current-thread loop
//! accepts customers, greets and reads each one in a task of its own, rings
//! them up and waits out every simmer. `--cooks` kitchen threads (default:
//! one per core), started before opening, take chops from one std `mpsc`
//! queue: a cook on the loop sends its plate down the queue with a
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
use std::sync::{Arc, PoisonError};

// The kitchen's channel, lock and threads: std's.
#[cfg(not(test))]
use std::{sync::Mutex, sync::mpsc, thread};

// In this crate's unit tests only, `shuttle`'s, which have the same API:
// a schedule explorer then runs the kitchen below under thousands of
// thread interleavings (`mod explore`, at the end). Copying this out?
// Keep the std line, without its `cfg`.
#[cfg(test)]
use shuttle::{sync::Mutex, sync::mpsc, thread};

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
    with_kitchen(cooks, |rail| {
        // One thread, the caller's: the event loop. `enable_io` for the
        // sockets, `enable_time` for simmers and the customers' patience.
        let runtime = Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let served = runtime.block_on(restaurant(listener, rail, shift));
        // Every sender must be gone before the kitchen can close:
        // `restaurant` took the first and dropped it; each customer's task
        // drops its clone as it leaves, and dropping the runtime drops any
        // task still there.
        drop(runtime);
        served
    })
}

/// The kitchen: starts `cooks` threads on one queue, runs `front` (the
/// event loop, which sends the chops) on the calling thread, then joins
/// the threads. They go home once the sender `front` was given, and every
/// clone of it, is gone.
fn with_kitchen(
    cooks: usize,
    front: impl FnOnce(mpsc::Sender<Chop>) -> Result<(), BoxError>,
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
            .spawn(move || chopper(&chops));
        match thread {
            Ok(thread) => kitchen.push(thread),
            // The OS refused a thread. Closing the rail sends home the
            // kitchen threads already started; join them, so none outlives
            // `serve`.
            Err(e) => {
                drop(rail);
                for thread in kitchen {
                    let _ = thread.join();
                }
                let what = format!("kitchen thread {i} of {cooks}");
                return Err(restaurant::limits::thread_refused_for(what, e));
            }
        }
    }

    let served = front(rail);
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
fn chopper(chops: &Mutex<mpsc::Receiver<Chop>>) {
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
    rail: mpsc::Sender<Chop>,
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
async fn attend(mut stream: TcpStream, rail: mpsc::Sender<Chop>, shift: Shift) {
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
async fn cook(
    ticket: Ticket,
    rail: &mpsc::Sender<Chop>,
) -> thread::Result<String> {
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

/// The schedule explorer. These tests run the real `with_kitchen`,
/// `chopper` and `cook` above, the kitchen on `shuttle`'s threads, lock and
/// channel (the imports at the top), with the event loop replaced by one
/// shuttle task per customer that awaits `cook`, as `attend` does. shuttle
/// runs every thread and task of a test on one OS thread and picks which
/// goes next at each lock, send, receive, spawn and join (a cook's task
/// waits until the oneshot wakes it), so each iteration is one schedule; a run in which everyone waits (a kitchen
/// thread on a queue that never closes, the join on such a thread) fails
/// the test as a deadlock, with the schedule to replay it.
///
/// What it leaves out: the orders only chop, because a simmer is a tokio
/// timer and needs the loop's runtime; and tokio's oneshot, which brings
/// each plate back, runs as it is (its wake-up is seen, its atomics are
/// not explored: tokio checks those with loom).
#[cfg(test)]
mod explore {
    use restaurant::kernel;

    use super::*;

    /// Schedules per test and scheduler.
    const SCHEDULES: usize = 1000;
    /// PCT finds any bug that needs at most this many forced switches with
    /// a known probability per schedule.
    const PCT_DEPTH: usize = 3;
    /// Customers in a night: more than kitchen threads.
    const ORDERS: u64 = 4;

    /// An order's start value: each test has its own, so a fault injected
    /// for one (the registry is process-wide) is never seen by another.
    fn start(test: u64, id: u64) -> u64 {
        0xde1c_0000_0000_0000 | test << 16 | id
    }

    /// One night: `ORDERS` customers, each with a ticket already rung up,
    /// each cooked by its own task through a kitchen of `cooks` threads;
    /// then checks that every customer got exactly its own plate back,
    /// that the kitchen went home, and that the chop of order `faulty` (if
    /// any) came back as its panic, not as a plate and not as silence.
    fn night(test: u64, cooks: usize, faulty: Option<u64>) {
        let steps = [Step::Chop(Work(2)), Step::Chop(Work(3))];
        let mut tickets = Vec::new();
        let mut expected = Vec::new();
        for id in 0..ORDERS {
            let start = start(test, id);
            let line = wire::order_line(id, "salad", start, &steps);
            let mut ticket =
                wire::parse_order(&line).expect("the test's order line parses");
            ticket.ring_up();
            tickets.push(ticket);
            let digest =
                kernel::chop(kernel::chop(kernel::ring_up(start), 2), 3);
            expected.push((id, wire::plate_line(id, digest)));
        }

        let mut replies = Vec::new();
        let served = with_kitchen(cooks, |rail| {
            // The customers' tasks, each with its clone of the sender.
            let customers: Vec<_> = tickets
                .into_iter()
                .map(|ticket| {
                    let rail = rail.clone();
                    shuttle::future::spawn(
                        async move { cook(ticket, &rail).await },
                    )
                })
                .collect();
            // As `restaurant` at closing time: its own sender goes, and
            // the kitchen closes when the last customer's does.
            drop(rail);
            for customer in customers {
                replies.push(shuttle::future::block_on(customer)?);
            }
            Ok(())
        });

        // `with_kitchen` returned, so every kitchen thread was joined.
        assert!(
            served.is_ok(),
            "the kitchen did not go home cleanly: {served:?}"
        );
        for ((id, plate), reply) in expected.into_iter().zip(replies) {
            match reply {
                Ok(line) => {
                    assert!(faulty != Some(id), "order {id}: {line}");
                    assert_eq!(line, plate, "order {id}");
                }
                Err(payload) => assert_eq!(
                    (Some(id), restaurant::panic_message(&*payload)),
                    (faulty, "injected fault: the knife slipped".to_owned()),
                    "order {id}"
                ),
            }
        }
    }

    /// Makes the first chop of order `id` of test `test` panic. shuttle's
    /// panic hook prints "Task failed" and a schedule for each such panic,
    /// caught or not; the test harness shows it only if the test fails.
    fn inject(test: u64, id: u64) -> Option<u64> {
        restaurant::fault::inject(start(test, id));
        Some(id)
    }

    #[test]
    fn every_chop_comes_back_once_and_the_kitchen_goes_home_random() {
        shuttle::check_random(|| night(1, 2, None), SCHEDULES);
    }

    #[test]
    fn every_chop_comes_back_once_and_the_kitchen_goes_home_pct() {
        shuttle::check_pct(|| night(2, 3, None), SCHEDULES, PCT_DEPTH);
    }

    #[test]
    fn a_panicking_chop_comes_back_to_its_cook_random() {
        let faulty = inject(3, 1);
        shuttle::check_random(move || night(3, 2, faulty), SCHEDULES);
    }

    #[test]
    fn a_panicking_chop_comes_back_to_its_cook_pct() {
        // One kitchen thread: it must survive the panic to chop the rest.
        let faulty = inject(4, 0);
        shuttle::check_pct(move || night(4, 1, faulty), SCHEDULES, PCT_DEPTH);
    }

    /// The explorer does see a hang: a sender that outlives the front (as
    /// a task would, left in a runtime that was not dropped) keeps the
    /// queue open, so the kitchen waits for chops and the join for it.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_queue_left_open_is_reported_as_a_deadlock() {
        shuttle::check_random(
            || {
                let _ = with_kitchen(2, |rail| {
                    std::mem::forget(rail.clone());
                    Ok(())
                });
            },
            10,
        );
    }
}

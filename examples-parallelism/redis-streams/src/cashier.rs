//! The front of house: the cashier at the door, the books of who waits
//! for what, and the pass that hands each plate to its customer. Both run
//! in the server's process, the cashier on the thread that called
//! `serve`, the pass on a thread of its own.

use std::any::Any;
use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{Commands, Connection};
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{BoxError, Shift};

use crate::broker::{self, Night, retried};
use crate::kitchen::Crew;
use crate::{MODEL, Order, Outcome, Served};

/// How long the pass waits for plates in one read before it looks at its
/// books again (closing time, a dead cook).
const PASS_BLOCK: Duration = Duration::from_millis(20);

/// How often the pass looks for a local cook that holds a ticket without
/// keeping it alive (`Crew::unstick`).
const STUCK_CHECK: Duration = Duration::from_millis(500);

/// Second plates for a ticket already served, dropped by the pass since
/// this process started: at-least-once delivery, made visible (a test
/// reads it).
static SECOND_PLATES: AtomicU64 = AtomicU64::new(0);

/// How many second plates the pass has dropped in this process.
pub fn second_plates() -> u64 {
    SECOND_PLATES.load(Ordering::Relaxed)
}

// ANCHOR: cashier
/// The cashier: accepts customers one at a time until closing time, takes
/// each order, puts the customer in the books and the ticket on the
/// night's stream. Runs on the calling thread.
pub(crate) fn cashier(
    listener: &TcpListener,
    till: &mut Connection,
    books: &Books,
    shift: &Shift,
    night: &Night,
) {
    // `incoming` blocks in `accept`. At closing time the shift knocks on
    // the door once, so the loop wakes up and sees it is time to stop.
    for stream in listener.incoming() {
        if shift.is_closed() {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal to a server. Wait a little, go on.
            Err(e) => {
                eprintln!("{}: accept failed: {e}", MODEL.name);
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let Some((ticket, stream)) = take_order(stream) else {
            continue;
        };
        // Into the books first: a fast cook's plate must find its
        // customer waiting.
        let seq = books.expect(ticket.id(), Customer(Some(stream)));
        let opening_ns = restaurant::clock::clock().to_wall();
        let order = Order {
            night: night.id(),
            seq,
            ticket,
            opening_ns,
        };
        let added = serde_json::to_string(&order)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                let fields = [("order", json)];
                retried(|| {
                    till.xadd::<_, _, _, _, String>(
                        night.tickets(),
                        "*",
                        &fields,
                    )
                })
                .map_err(|e| e.to_string())
            });
        if let Err(e) = added {
            // The pass sees it, ends the night and names the orders in
            // flight; nothing more can be put on the stream.
            books.broken(format!("XADD of order {}: {e}", order.ticket.id()));
            shift.close();
            return;
        }
    }
}

/// Greets one customer, reads the order and rings it up. The cashier
/// listens to this customer alone until the line is said: a slow talker
/// holds up everyone behind them, for [`wire::PATIENCE`] at most.
/// `None` when there is no order to cook.
fn take_order(mut stream: TcpStream) -> Option<(Ticket, TcpStream)> {
    stream.write_all(wire::NEXT.as_bytes()).ok()?;
    // A deadline for the whole line, not a time-out per read (which
    // `read_order_line` shrinks before each read): a customer dripping a
    // byte a second would restart a read time-out for ever, and hold the
    // only cashier as long as it dripped.
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

// ANCHOR: customer
/// A customer waiting for a plate: the connection the answer goes back on.
#[derive(Debug)]
struct Customer(Option<TcpStream>);

impl Customer {
    /// Writes the one line this customer gets, and hangs up.
    fn answer(mut self, line: &str) {
        if let Some(mut stream) = self.0.take() {
            // A customer who hung up has only lost their own plate. The
            // line is short and the socket's buffer empty: it never blocks.
            let _ = stream.write_all(line.as_bytes());
        }
    }
}

impl Drop for Customer {
    /// A customer dropped unanswered is one the night gave up on (Redis
    /// went away, a bug unwound the pass): say so, rather than leave them
    /// to find a closed connection.
    fn drop(&mut self) {
        if let Some(mut stream) = self.0.take() {
            let why = "the kitchen closed before your order was cooked";
            let _ = stream.write_all(wire::error_line(why).as_bytes());
        }
    }
}
// ANCHOR_END: customer

// ANCHOR: books
/// The cashier's books, shared by the cashier and the pass.
#[derive(Debug, Default)]
pub(crate) struct Books(Mutex<Ledger>);

#[derive(Debug, Default)]
struct Ledger {
    /// Customers waiting for a plate, by ticket number.
    waiting: HashMap<u64, Waiting>,
    /// The next ticket number.
    next: u64,
    /// Closing time: no more tickets are coming.
    closing: bool,
    /// Why Redis can no longer be used, once it cannot.
    broken: Option<String>,
    /// Orders given up, with why.
    lost: Vec<String>,
}

#[derive(Debug)]
struct Waiting {
    order: u64,
    customer: Customer,
}

impl Books {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // Nothing panics while holding this lock.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A customer now waits for `order`: returns its ticket number.
    fn expect(&self, order: u64, customer: Customer) -> u64 {
        let mut ledger = self.ledger();
        let seq = ledger.next;
        ledger.next += 1;
        ledger.waiting.insert(seq, Waiting { order, customer });
        seq
    }

    /// Takes ticket `seq`'s customer out of the books. `None` if it is not
    /// waiting: it was served already, and this is a second plate.
    fn collect(&self, seq: u64) -> Option<Waiting> {
        self.ledger().waiting.remove(&seq)
    }

    /// The order ticket `seq` is for, if it is still waiting.
    fn order_of(&self, seq: u64) -> Option<u64> {
        self.ledger().waiting.get(&seq).map(|w| w.order)
    }

    pub(crate) fn closing(&self) {
        self.ledger().closing = true;
    }

    /// Closing time, and nobody is waiting: the night is done.
    fn done(&self) -> bool {
        let ledger = self.ledger();
        ledger.closing && ledger.waiting.is_empty()
    }

    pub(crate) fn broken(&self, why: String) {
        self.ledger().broken.get_or_insert(why);
    }

    fn lose(&self, what: String) {
        self.ledger().lost.push(what);
    }
}
// ANCHOR_END: books

// ANCHOR: pass
/// The pass: reads the plates stream and hands each plate to its waiting
/// customer; keeps the local cooks staffed; ends when closing time has
/// come and nobody is waiting, or when Redis goes away.
pub(crate) fn pass(
    mut connection: Connection,
    books: &Books,
    mut crew: Crew,
    shift: &Shift,
    night: &Night,
    url: &str,
) -> Result<(), BoxError> {
    let read = StreamReadOptions::default()
        .count(100)
        .block(PASS_BLOCK.as_millis() as usize);
    // The stream is new this night: read it from its start.
    let mut last = "0-0".to_owned();
    let mut looked = Instant::now();
    loop {
        // (Bound first: the lock must be let go before `gone` takes it.)
        let broken = books.ledger().broken.clone();
        if let Some(why) = broken {
            shift.close();
            return Err(gone(books, url, &why));
        }
        if books.done() {
            break;
        }
        if let Err(e) = crew.staff() {
            shift.close();
            return Err(in_flight(books, &e));
        }
        if looked.elapsed() >= STUCK_CHECK {
            looked = Instant::now();
            if let Err(e) = crew.unstick(&mut connection, night) {
                books.broken(format!("XPENDING of tickets: {e}"));
                continue;
            }
        }
        // Read again from `last` if a signal cut the read short: the
        // answer that was cut short is skipped, and its plates read anew.
        let reply: Option<StreamReadReply> = match retried(|| {
            connection.xread_options(&[night.plates()], &[&last], &read)
        }) {
            Ok(reply) => reply,
            Err(e) => {
                books.broken(format!("XREAD of plates: {e}"));
                continue;
            }
        };
        let entries =
            reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        let mut read_ids = Vec::new();
        for entry in entries {
            last.clone_from(&entry.id);
            if let Err(why) = hand_over(&entry, books, shift, night) {
                eprintln!(
                    "{}: plate entry {} dead-lettered: {why}",
                    MODEL.name, entry.id
                );
                let plates = night.plates();
                if let Err(e) = retried(|| {
                    broker::dead_letter(
                        &mut connection,
                        night,
                        plates,
                        &entry,
                        &why,
                    )
                }) {
                    let dead = night.dead_letters();
                    books.broken(format!("XADD to {dead}: {e}"));
                }
            }
            read_ids.push(entry.id);
        }
        // Plates read are deleted, so the stream holds only plates not
        // yet handed over.
        if !read_ids.is_empty()
            && let Err(e) = retried(|| {
                connection.xdel::<_, _, ()>(night.plates(), &read_ids)
            })
        {
            books.broken(format!("XDEL of plates: {e}"));
        }
    }
    crew.close()?;
    let lost = std::mem::take(&mut books.ledger().lost);
    if !lost.is_empty() {
        return Err(format!("orders lost: {}", lost.join(", ")).into());
    }
    Ok(())
}

/// Hands the plate of `entry` to its customer. `Err` with the reason when
/// the entry is not a plate of this night's, for the dead-letter stream.
fn hand_over(
    entry: &StreamId,
    books: &Books,
    shift: &Shift,
    night: &Night,
) -> Result<(), String> {
    let json: String = entry.get("plate").ok_or("no field `plate`")?;
    let served: Served =
        serde_json::from_str(&json).map_err(|e| format!("not a plate: {e}"))?;
    if served.night != night.id() {
        return Err(format!("a plate of another night ({})", served.night));
    }
    // At least once: a ticket claimed from a slow cook is cooked twice.
    // Its first plate was served; this one is dropped.
    let Some(order) = books.order_of(served.seq) else {
        SECOND_PLATES.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "{}: a second plate for ticket {} dropped: its customer has one",
            MODEL.name, served.seq
        );
        return Ok(());
    };
    if let Outcome::Cooked(plate) = &served.outcome
        && plate.id() != order
    {
        return Err(format!(
            "a plate of order {} for ticket {} of order {order}",
            plate.id(),
            served.seq
        ));
    }
    let Some(waiting) = books.collect(served.seq) else {
        return Ok(()); // only the pass collects: it cannot be gone
    };
    match served.outcome {
        // Served here, in the server's process, where the plate is counted
        // and its trace kept for the timeline.
        Outcome::Cooked(plate) => waiting.customer.answer(&plate.serve()),
        Outcome::Panicked { message } => {
            // The payload stayed in the cook; its message, a `String`,
            // is a payload as good as any.
            shift.cook_panicked(order, &message as &(dyn Any + Send));
            waiting
                .customer
                .answer(&wire::error_line("the cook panicked"));
        }
        Outcome::GaveUp { why } => {
            eprintln!("{}: lost order {order}: {why}", MODEL.name);
            books.lose(format!("order {order} ({why})"));
            waiting.customer.answer(&wire::error_line(&why));
        }
    }
    Ok(())
}
// ANCHOR_END: pass

/// The error that ends a night whose Redis went away.
fn gone(books: &Books, url: &str, why: &str) -> BoxError {
    in_flight(books, &format!("Redis at {url} went away mid-run ({why})"))
}

/// `what`, and the orders in flight: how many, and the first few ids.
/// Their customers are told `ERROR` when the books are dropped.
fn in_flight(books: &Books, what: &str) -> BoxError {
    let ledger = books.ledger();
    let mut orders: Vec<(u64, u64)> = ledger
        .waiting
        .iter()
        .map(|(&seq, w)| (seq, w.order))
        .collect();
    orders.sort_unstable();
    const SHOWN: usize = 5;
    let mut ids: Vec<String> = orders
        .iter()
        .take(SHOWN)
        .map(|(_, o)| o.to_string())
        .collect();
    if orders.len() > SHOWN {
        ids.push(format!("and {} more", orders.len() - SHOWN));
    }
    let lost = match orders.len() {
        0 => "no order was in flight".to_owned(),
        1 => format!("1 order in flight, lost: {}", ids.join(", ")),
        n => format!("{n} orders in flight, lost: {}", ids.join(", ")),
    };
    format!("{what}; {lost}").into()
}

//! # parallelism-redis-streams: cooks anywhere, fed through a Redis stream
//!
//! ```text
//! cargo run --release -p parallelism-redis-streams -- --preset banquet
//! ```
//!
//! Celery's or BullMQ's shape, in Rust, on Redis streams. The cashier
//! (the thread that calls `serve`) attends customers one at a time:
//! greets, reads the order, rings it up, and adds its ticket to a Redis
//! stream (`XADD`). Cooks are processes, `--cooks` copies of this binary
//! started before opening (default: `auto`, the night's peak of orders in
//! the kitchen, at most 512), or started by hand on
//! any machine that reaches the Redis (`--cook --redis URL`). They form
//! one consumer group: each ticket goes to one of them (`XREADGROUP`),
//! which cooks it and, in one transaction, adds the plate to a second
//! stream, acknowledges the ticket (`XACK`) and deletes it. A thread of
//! the server, the *pass*, reads the plates stream and hands each plate
//! to its waiting customer.
//!
//! How it differs from `parallelism-processes`, its nearest sibling:
//! there a dispatcher chooses a worker and writes to its pipe, and the
//! order lives only in the server's memory. Here nobody chooses: cooks
//! take tickets when they are free, and a ticket lives in the broker until
//! a cook acknowledges it. A cook that dies mid-order leaves its ticket
//! *pending* in the group; once it has sat idle for [`CLAIM_IDLE`],
//! another cook claims it (`XAUTOCLAIM`) and cooks it. A cook that is
//! alive says so with a heartbeat while it cooks, so a long order is not
//! claimed from under it.
//!
//! **Delivery is at least once**, so the pass is idempotent: it keeps the
//! orders still waiting, by ticket number, and a plate for a ticket
//! already served is dropped. A ticket claimed from a cook that was slow
//! but not dead is cooked twice; its customer gets one plate.
//!
//! **Faults**, and the policy for them:
//!
//! - A cook process that **dies** is replaced (at most twice per cook
//!   asked for); its ticket is claimed by whichever cook is free first.
//! - A ticket delivered [`MAX_DELIVERIES`] times without being finished
//!   is a *poison* order: the cook that claims it next gives it up, its
//!   customer is told `ERROR`, and `serve` fails at closing time naming
//!   it.
//! - A local cook **stopped** (SIGSTOP) loses its ticket like a dead one;
//!   at closing time, one still there [`LEAVE_LIMIT`] after its stdin
//!   closed is killed, and the server says so.
//! - A **malformed** entry on either stream (written by someone else) is
//!   logged, acknowledged and moved to a dead-letter stream
//!   ([`DEAD_LETTERS`]); nobody's order is lost over it.
//! - A cook that **panics** is caught in its process; the server reports
//!   it, naming the order, and tells that customer `ERROR`.
//! - A **Redis that goes away** ends the night: every customer waiting is
//!   told `ERROR`, and `serve` fails naming how many orders were in flight
//!   and the first few.
//! - No process outlives the server: every way out of [`serve_with`]
//!   kills and reaps the local cooks and the redis-server it started, and
//!   on Linux the kernel kills them if the server is killed outright.
//!
//! The cook role reads a few test hooks from its environment (see
//! `src/hooks.rs`); a normal run sets none.

use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamMaxlen,
    StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{Commands, Connection, RedisError, RedisResult};
use restaurant::door::ACCEPT_BACKOFF;
use restaurant::wire::{self, Heard, Ticket};
use restaurant::{
    BoxError, Clock, Cooks, Model, Plate, Shift, Step, panic_message,
};
use serde::{Deserialize, Serialize};

pub mod broker;
mod hooks;

use broker::RedisServer;

// ANCHOR: model
/// The model, as `main` sees it. Its `serve` starts the cooks from this
/// process's own executable, so it works from the crate's binary only:
/// tests, whose executable is the test harness, call [`serve_with`] with
/// the binary's path instead.
pub const MODEL: Model = Model {
    name: env!("CARGO_PKG_NAME"),
    about: "Cooks as processes taking tickets from a Redis stream, with \
            redelivery when a cook dies. Starts a redis-server of its own \
            (apt-get install redis-server, brew install redis); \
            --redis URL uses yours instead, and `--cook --redis URL` \
            starts a cook that joins the kitchen from any machine.",
    cooks: Cooks::Auto {
        what: "cook processes on this machine, each cooking one order at \
               a time",
        cap: restaurant::cli::PROCESSES_CAP,
    },
    waiters: None,
    serve,
};

/// The argument that starts the binary in the cook role (`main` looks for
/// it before the shared command line sees the arguments).
pub const COOK_ARG: &str = "--cook";

/// The argument that names a Redis to use instead of starting one.
pub const REDIS_ARG: &str = "--redis";
// ANCHOR_END: model

/// A cook started by a server, not by hand: it leaves when its stdin
/// reaches end-of-file (the server closed it, or died).
pub const PARENT_PIPE_ARG: &str = "--parent-pipe";

// ANCHOR: keys
/// The stream the cashier adds tickets to, one entry per order.
pub const TICKETS: &str = "restaurant:tickets";
/// The stream the cooks add plates to, which the pass reads.
pub const PLATES: &str = "restaurant:plates";
/// Where a malformed entry of either stream ends up, with the reason.
pub const DEAD_LETTERS: &str = "restaurant:dead-letters";
/// The consumer group every cook joins: each ticket goes to one of them.
pub const GROUP: &str = "cooks";

/// How long a ticket must sit idle, delivered and neither acknowledged
/// nor kept alive by its cook's heartbeat, before another cook claims it.
/// Shorter finds a dead cook sooner; it must stay well above the
/// heartbeat's period and a busy Redis's worst pause.
pub const CLAIM_IDLE: Duration = Duration::from_secs(1);

/// How many times a ticket may be delivered before the next cook to
/// claim it gives it up: two cooks dying on one order may be bad luck,
/// three say the order kills its cooks.
pub const MAX_DELIVERIES: usize = 3;
// ANCHOR_END: keys

/// The most entries the dead-letter stream keeps (roughly: `MAXLEN ~`).
const DEAD_LETTERS_KEPT: usize = 10_000;

/// How long the pass waits for plates in one read before it looks at its
/// books again (closing time, a dead cook).
const PASS_BLOCK: Duration = Duration::from_millis(20);

/// How long a command may wait for Redis's answer: far above any `BLOCK`
/// here, so only a Redis that hangs reaches it.
const REDIS_PATIENCE: Duration = Duration::from_secs(10);

/// How long a local cook may take to join the group and say so.
const HIRE_LIMIT: Duration = Duration::from_secs(10);

/// How long a local cook may take to leave once closing time has closed
/// its stdin. A cook leaves at once, even mid-chop (its stdin's thread
/// ends the process), so only one that cannot run (stopped with SIGSTOP,
/// or wedged in the kernel) is still there after it: it is killed, and
/// the server says so. Its ticket, if it held one, went to another cook
/// long before: closing time waits for every plate.
pub const LEAVE_LIMIT: Duration = Duration::from_secs(5);

// ANCHOR: protocol
/// Cashier → cooks: one entry of [`TICKETS`], its JSON in field `order`.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    /// This night's number: a cook of an earlier night, still holding one
    /// of its tickets, must not have its plate taken for one of ours.
    night: u64,
    /// The cashier's own ticket number, unique in the night: what the pass
    /// keeps its waiting customers by (a customer's order id is theirs to
    /// choose, and two customers may choose the same).
    seq: u64,
    /// The ticket, rung up; it implements serde's traits and crosses as
    /// it is, the flags for tracing and the test-only fault included.
    ticket: Ticket,
    /// The server's opening, in nanoseconds on the machine's shared clock
    /// (`Clock::to_wall`), to place a cook's chops on the `--trace`
    /// timeline. Only a cook on the server's machine shares that clock: a
    /// cook on another machine draws its chops wherever its own clock
    /// puts them. Nothing a customer sees is timed this way.
    opening_ns: u128,
}

/// Cook → pass: one entry of [`PLATES`], its JSON in field `plate`.
#[derive(Debug, Serialize, Deserialize)]
struct Served {
    night: u64,
    seq: u64,
    outcome: Outcome,
}

#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    /// Cooked but not served: serving counts the plate and keeps its
    /// trace, in the server's process.
    Cooked(Plate),
    /// The cook panicked; the pass names the order from its own books.
    Panicked { message: String },
    /// The cook gave the order up (delivered too often), and why.
    GaveUp { why: String },
}
// ANCHOR_END: protocol

/// Second plates for a ticket already served, dropped by the pass since
/// this process started: at-least-once delivery, made visible (a test
/// reads it).
static SECOND_PLATES: AtomicU64 = AtomicU64::new(0);

/// How many second plates the pass has dropped in this process.
pub fn second_plates() -> u64 {
    SECOND_PLATES.load(Ordering::Relaxed)
}

/// The Redis that `main` was told to use (`--redis URL`), if any.
static REDIS_URL: OnceLock<String> = OnceLock::new();

/// Makes [`serve`] use the Redis at `url` instead of starting its own.
/// The first call wins.
pub fn use_redis(url: String) {
    let _ = REDIS_URL.set(url);
}

/// Where the kitchen's Redis is, and how its local cooks start.
#[derive(Clone, Debug)]
pub struct Kitchen {
    /// `None`: start a redis-server of this run's own.
    redis: Option<String>,
    /// This crate's binary, which the local cooks run.
    program: PathBuf,
    /// Extra environment for the local cooks (the tests' hooks).
    env: Vec<(String, String)>,
}

impl Kitchen {
    /// Local cooks run `program` (this crate's binary) with
    /// [`COOK_ARG`]; the run starts a redis-server of its own.
    pub fn new(program: impl Into<PathBuf>) -> Kitchen {
        Kitchen {
            redis: None,
            program: program.into(),
            env: Vec::new(),
        }
    }

    /// Uses the Redis at `url` instead of starting one.
    pub fn redis(mut self, url: impl Into<String>) -> Kitchen {
        self.redis = Some(url.into());
        self
    }

    /// Sets `key=value` in the local cooks' environment.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Kitchen {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// The command that starts one local cook on the Redis at `url`.
    fn cook(&self, url: &str) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args([COOK_ARG, REDIS_ARG, url, PARENT_PIPE_ARG])
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

// ANCHOR: serve
/// Starts a redis-server (unless `--redis` named one) and `cooks` cook
/// processes from this very executable, and serves until closing time.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let mut kitchen = Kitchen::new(std::env::current_exe()?);
    if let Some(url) = REDIS_URL.get() {
        kitchen = kitchen.redis(url.as_str());
    }
    serve_with(&kitchen, listener, cooks, shift)
}

/// Serves with `kitchen`: its Redis (or one started here), `cooks` local
/// cook processes, and whatever cooks join from elsewhere. Runs the
/// cashier on the calling thread until closing time, and returns once
/// every order it took is answered and every process it started reaped.
pub fn serve_with(
    kitchen: &Kitchen,
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let hooks = hooks::Hooks::from_env();
    // Our own redis-server, unless told to use one. Started here, on the
    // thread that lives until `serve` returns (the kernel ties its
    // death-with-parent signal to this thread), and killed and reaped
    // when `ours` is dropped, on every way out of this function.
    let ours = match kitchen.redis {
        Some(_) => None,
        None => Some(RedisServer::start()?),
    };
    let url = match (&kitchen.redis, &ours) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => {
            hooks.started("redis", server.pid())?;
            server.url().to_owned()
        }
        (None, None) => unreachable!("a server was started above"),
    };
    let client = redis::Client::open(url.as_str())?;
    let reach = |e: RedisError| format!("cannot reach Redis at {url}: {e}");
    let mut till = connect(&client).map_err(reach)?;
    let pass_connection = connect(&client).map_err(reach)?;
    open_kitchen(&mut till).map_err(reach)?;

    // Hired before opening, so no customer waits for a cook to start.
    let crew = Crew::hire(kitchen.cook(&url), cooks)?;
    let night =
        RandomState::new().hash_one((std::process::id(), SystemTime::now()));
    let books = Arc::new(Books::default());
    let pass = {
        let (books, shift, url) =
            (Arc::clone(&books), shift.clone(), url.clone());
        thread::Builder::new().name("pass".into()).spawn(move || {
            pass(pass_connection, &books, crew, &shift, night, &url)
        })?
    };

    shift.open();
    cashier(&listener, &mut till, &books, &shift, night);
    // Stop accepting: a latecomer is refused now rather than left in the
    // backlog while the kitchen finishes.
    drop(listener);
    books.closing();
    pass.join().map_err(|_| "the pass thread panicked")?
}
// ANCHOR_END: serve

/// A connection that gives up on a Redis that stops answering.
fn connect(client: &redis::Client) -> RedisResult<Connection> {
    let connection = client.get_connection_with_timeout(REDIS_PATIENCE)?;
    connection.set_read_timeout(Some(REDIS_PATIENCE))?;
    connection.set_write_timeout(Some(REDIS_PATIENCE))?;
    Ok(connection)
}

// ANCHOR: open
/// A new night: the tickets and plates of any earlier night go, and the
/// group is made anew, reading the new stream from its start. A cook of
/// an earlier night still holding one of its tickets may publish its
/// plate into this night's stream: it carries that night's number, and
/// the pass dead-letters it.
fn open_kitchen(connection: &mut Connection) -> RedisResult<()> {
    redis::pipe()
        .del(TICKETS)
        .ignore()
        .del(PLATES)
        .ignore()
        .query::<()>(connection)?;
    join_group(connection)
}

/// Creates the group (and the stream) unless it exists. Both the server
/// and every cook call it, in any order: `BUSYGROUP` means someone was
/// first. `0`, not `$`: a cook that creates the group after the cashier
/// added a ticket must still see that ticket.
fn join_group(connection: &mut Connection) -> RedisResult<()> {
    match connection.xgroup_create_mkstream::<_, _, _, ()>(TICKETS, GROUP, "0")
    {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        created => created,
    }
}
// ANCHOR_END: open

// ANCHOR: cashier
/// The cashier: accepts customers one at a time until closing time, takes
/// each order, puts the customer in the books and the ticket on the
/// stream. Runs on the calling thread.
fn cashier(
    listener: &TcpListener,
    till: &mut Connection,
    books: &Books,
    shift: &Shift,
    night: u64,
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
            night,
            seq,
            ticket,
            opening_ns,
        };
        let added = serde_json::to_string(&order)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                till.xadd::<_, _, _, _, String>(
                    TICKETS,
                    "*",
                    &[("order", json)],
                )
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
/// holds up everyone behind them. `None` when there is no order to cook.
fn take_order(mut stream: TcpStream) -> Option<(Ticket, TcpStream)> {
    // A silent customer would hold the only cashier for ever.
    stream.set_read_timeout(Some(wire::PATIENCE)).ok()?;
    stream.write_all(wire::NEXT.as_bytes()).ok()?;
    let mut line = String::new();
    let read = BufReader::new(&stream)
        .take(wire::MAX_LINE as u64)
        .read_line(&mut line);
    let mut ticket = match wire::heard(read, &line) {
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
struct Books(Mutex<Ledger>);

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

    fn closing(&self) {
        self.ledger().closing = true;
    }

    /// Closing time, and nobody is waiting: the night is done.
    fn done(&self) -> bool {
        let ledger = self.ledger();
        ledger.closing && ledger.waiting.is_empty()
    }

    fn broken(&self, why: String) {
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
fn pass(
    mut connection: Connection,
    books: &Books,
    mut crew: Crew,
    shift: &Shift,
    night: u64,
    url: &str,
) -> Result<(), BoxError> {
    let read = StreamReadOptions::default()
        .count(100)
        .block(PASS_BLOCK.as_millis() as usize);
    // The stream is new this night: read it from its start.
    let mut last = "0-0".to_owned();
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
        let reply: Option<StreamReadReply> =
            match connection.xread_options(&[PLATES], &[&last], &read) {
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
                if let Err(e) =
                    dead_letter(&mut connection, PLATES, &entry, &why)
                {
                    books.broken(format!("XADD to {DEAD_LETTERS}: {e}"));
                }
            }
            read_ids.push(entry.id);
        }
        // Plates read are deleted, so the stream holds only plates not
        // yet handed over.
        if !read_ids.is_empty()
            && let Err(e) = connection.xdel::<_, _, ()>(PLATES, &read_ids)
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
    night: u64,
) -> Result<(), String> {
    let json: String = entry.get("plate").ok_or("no field `plate`")?;
    let served: Served =
        serde_json::from_str(&json).map_err(|e| format!("not a plate: {e}"))?;
    if served.night != night {
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

// ANCHOR: dead_letter
/// Moves a malformed `entry` of `stream` to [`DEAD_LETTERS`], with why:
/// logged and kept for a person to look at, never a crash, and never in
/// the way of the next entry.
fn dead_letter(
    connection: &mut Connection,
    stream: &str,
    entry: &StreamId,
    why: &str,
) -> RedisResult<()> {
    dead_letter_pipe(stream, entry, why).query(connection)
}

fn dead_letter_pipe(
    stream: &str,
    entry: &StreamId,
    why: &str,
) -> redis::Pipeline {
    let fields: Vec<(String, String)> = entry
        .map
        .iter()
        .map(|(key, value)| {
            let text = redis::from_redis_value_ref::<String>(value)
                .unwrap_or_else(|_| format!("{value:?}"));
            (key.clone(), text)
        })
        .collect();
    let fields = serde_json::to_string(&fields).unwrap_or_default();
    let mut pipe = redis::pipe();
    pipe.xadd_maxlen(
        DEAD_LETTERS,
        StreamMaxlen::Approx(DEAD_LETTERS_KEPT),
        "*",
        &[
            ("stream", stream),
            ("id", &entry.id),
            ("why", why),
            ("fields", &fields),
        ],
    )
    .ignore();
    pipe
}
// ANCHOR_END: dead_letter

// ANCHOR: crew
/// The cook processes this server started. Dropping it kills and reaps
/// every one still running, so no way out of `serve_with` leaves a child
/// behind.
#[derive(Debug)]
struct Crew {
    command: Command,
    cooks: Vec<Hand>,
    /// How many cooks may still be started in place of dead ones.
    spares: usize,
    /// How many were asked for.
    asked: usize,
}

#[derive(Debug)]
struct Hand {
    child: Child,
    /// Closing it tells the cook to leave.
    stdin: Option<ChildStdin>,
    /// Kept open, though read only for READY: a cook that writes to a
    /// closed pipe fails.
    stdout: Option<ChildStdout>,
}

impl Drop for Crew {
    fn drop(&mut self) {
        for hand in &mut self.cooks {
            // SIGKILL, not just closing stdin: a cook in the middle of a
            // long chop would only notice when done.
            let _ = hand.child.kill();
            let _ = hand.child.wait();
        }
    }
}

impl Crew {
    /// Starts `cooks` cooks from `command`, then waits (at most
    /// [`HIRE_LIMIT`]) for each to say it has joined the group.
    fn hire(mut command: Command, cooks: usize) -> Result<Crew, BoxError> {
        // stdin: closing time, and the parent's death off Linux. stdout:
        // one line, READY. stderr stays the server's, so a cook's errors
        // reach the terminal.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // On Linux, the kernel kills each cook when the thread that
        // started it ends, so a server killed outright takes its cooks
        // with it, even one in the middle of a long chop.
        restaurant::child::die_with_parent(&mut command);
        let mut crew = Crew {
            command,
            cooks: Vec::with_capacity(cooks),
            spares: 2 * cooks,
            asked: cooks,
        };
        for _ in 0..cooks {
            // If a spawn fails, `?` drops `crew`, which kills the cooks
            // already started.
            crew.start()?;
        }
        // They all start at once; now wait for each one's READY, on a
        // thread, so that a cook that never says it bounds the wait. Each
        // stdout comes back, to be kept open.
        let stdouts: Vec<_> = crew
            .cooks
            .iter_mut()
            .map(|hand| hand.stdout.take())
            .collect();
        let (told, heard) = mpsc::channel();
        thread::Builder::new().name("hire".into()).spawn(move || {
            for mut stdout in stdouts.into_iter().flatten() {
                let mut line = String::new();
                let read = BufReader::new(&mut stdout).read_line(&mut line);
                let ready = read.is_ok() && line == "READY\n";
                if told.send((ready, stdout)).is_err() || !ready {
                    return;
                }
            }
        })?;
        for n in 0..cooks {
            match heard.recv_timeout(HIRE_LIMIT) {
                Ok((true, stdout)) => crew.cooks[n].stdout = Some(stdout),
                Ok((false, _)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "cook {n} ended before it joined the group: is the \
                         cook command this crate's binary?"
                    )
                    .into());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "cook {n} did not join the group within {HIRE_LIMIT:?}"
                    )
                    .into());
                }
            }
        }
        Ok(crew)
    }

    /// Starts one cook.
    fn start(&mut self) -> io::Result<()> {
        let mut child = self.command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.cooks.push(Hand {
            child,
            stdin,
            stdout,
        });
        Ok(())
    }

    /// Reaps the cooks that died and starts others in their place, while
    /// there are spares. Their tickets stay pending in the group until a
    /// cook claims them. `Err` once no local cook is left.
    fn staff(&mut self) -> Result<(), String> {
        let mut died = Vec::new();
        self.cooks.retain_mut(|hand| match hand.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                died.push(format!(
                    "cook (pid {}) ended ({status})",
                    hand.child.id()
                ));
                false
            }
            Err(e) => {
                died.push(format!("cook (pid {}): {e}", hand.child.id()));
                false
            }
        });
        for death in &died {
            eprintln!(
                "{}: {death}; another cook claims its ticket, if it had one",
                MODEL.name
            );
            if self.spares > 0 {
                self.spares -= 1;
                match self.start() {
                    // Its READY goes unread: a line in a pipe's buffer.
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("{}: cannot start a cook: {e}", MODEL.name)
                    }
                }
            }
        }
        if self.asked > 0 && self.cooks.is_empty() {
            return Err(format!(
                "every cook process has died ({})",
                died.join("; ")
            ));
        }
        Ok(())
    }

    /// Closing time: closes every cook's stdin, which ends it, and reaps
    /// it. A cook still there [`LEAVE_LIMIT`] later is killed, with a
    /// word on stderr: every plate is served by then, so it costs nothing
    /// but must not hold the night open. A cook that ends badly by itself
    /// is an error.
    fn close(&mut self) -> Result<(), BoxError> {
        for hand in &mut self.cooks {
            hand.stdin = None; // all at once, so they all leave together
        }
        let deadline = Instant::now() + LEAVE_LIMIT;
        for hand in std::mem::take(&mut self.cooks) {
            let Hand { mut child, .. } = hand;
            // std has no wait with a time-out: poll, as the pass does.
            let status = loop {
                if let Some(status) = child.try_wait()? {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                thread::sleep(Duration::from_millis(5));
            };
            let Some(status) = status else {
                let pid = child.id();
                // SIGKILL reaches a stopped process too.
                let _ = child.kill();
                child.wait()?;
                eprintln!(
                    "{}: cook (pid {pid}) had not left {LEAVE_LIMIT:?} after \
                     closing (stopped?): killed; no order was waiting on it",
                    MODEL.name
                );
                continue;
            };
            if !status.success() {
                return Err(format!(
                    "cook (pid {}) ended with {status}",
                    child.id()
                )
                .into());
            }
        }
        Ok(())
    }
}
// ANCHOR_END: crew

// ANCHOR: cook_role
/// The cook role, which `main` enters when it sees [`COOK_ARG`]: joins the
/// group on the Redis at `url` and cooks tickets until killed, or, for a
/// cook its server started (`parent_pipe`), until its stdin ends.
pub fn cook_main(url: &str, parent_pipe: bool) -> ExitCode {
    match work(url, parent_pipe) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors before the cook joined are worded where they happen
            // (`work`); a Redis error after is one of the Redis it cooks
            // for, which the bare error ("unexpected end of file") does
            // not name.
            let redis = e.downcast_ref::<RedisError>();
            let gone = redis
                .is_some_and(|e| e.is_io_error() || e.is_connection_dropped());
            // A cook its server started stays quiet about a Redis gone:
            // the server says so, naming the orders it lost.
            if !(parent_pipe && gone) {
                let pid = std::process::id();
                let what = match redis {
                    Some(_) if gone => {
                        format!("Redis at {url} went away mid-run ({e})")
                    }
                    Some(_) => format!("Redis at {url}: {e}"),
                    None => e.to_string(),
                };
                eprintln!("{} cook (pid {pid}): error: {what}", MODEL.name);
            }
            ExitCode::FAILURE
        }
    }
}

/// Who this cook is in the group: unique across machines.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("cook-{host}-{}", std::process::id())
}

fn work(url: &str, parent_pipe: bool) -> Result<(), BoxError> {
    let hooks = hooks::Hooks::from_env();
    let client = redis::Client::open(url)?;
    let reach = |e: RedisError| format!("cannot reach Redis at {url}: {e}");
    let mut connection = connect(&client).map_err(reach)?;
    let me = consumer_name();
    hooks.started("cook", std::process::id())?;
    join_group(&mut connection).map_err(reach)?;
    let idle = hooks.claim_idle();
    let hand = Arc::new(Mutex::new(None));
    let beat = connect(&client).map_err(reach)?;
    heartbeat(beat, me.clone(), Arc::clone(&hand), idle / 4)?;
    if parent_pipe {
        // The server closes our stdin at closing time, or dies: either
        // way there is nobody left to cook for.
        thread::Builder::new().name("parent".into()).spawn(|| {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            std::process::exit(0);
        })?;
        let mut stdout = io::stdout().lock();
        stdout.write_all(b"READY\n")?;
        stdout.flush()?;
    } else {
        eprintln!(
            "{}: {me} joined group {GROUP} of {TICKETS} at {url}; Ctrl-C \
             to leave (a ticket in hand goes to another cook)",
            MODEL.name
        );
    }
    let mut cook = Cook {
        connection,
        me,
        hand,
        hooks,
        idle,
    };
    cook.run()
}

/// One cook: its connection, its name in the group, and the ticket in
/// hand, which its heartbeat keeps alive.
struct Cook {
    connection: Connection,
    me: String,
    hand: Arc<Mutex<Option<String>>>,
    hooks: hooks::Hooks,
    idle: Duration,
}
// ANCHOR_END: cook_role

// ANCHOR: cook_loop
impl Cook {
    /// Takes tickets for ever: first one left idle by a dead cook, if
    /// any (`XAUTOCLAIM`), else a new one (`XREADGROUP … >`).
    fn run(&mut self) -> Result<(), BoxError> {
        let block = (self.idle / 2).as_millis().max(1) as usize;
        let new = StreamReadOptions::default()
            .group(GROUP, &self.me)
            .count(1)
            .block(block);
        // XAUTOCLAIM scans the pending entries like SCAN: a cursor, back
        // to 0-0 once it has been round.
        let mut cursor = "0-0".to_owned();
        let mut claimed_at = Instant::now() - self.idle;
        loop {
            if claimed_at.elapsed() >= self.idle / 2 {
                claimed_at = Instant::now();
                let claimed: RedisResult<StreamAutoClaimReply> =
                    self.connection.xautoclaim_options(
                        TICKETS,
                        GROUP,
                        &self.me,
                        self.idle.as_millis() as u64,
                        &cursor,
                        StreamAutoClaimOptions::default().count(1),
                    );
                match self.regroup(claimed)? {
                    Some(reply) => {
                        cursor = reply.next_stream_id;
                        if let Some(entry) = reply.claimed.into_iter().next() {
                            self.take(entry, true)?;
                            continue;
                        }
                    }
                    None => continue,
                }
            }
            let read: RedisResult<Option<StreamReadReply>> =
                self.connection.xread_options(&[TICKETS], &[">"], &new);
            if let Some(reply) = self.regroup(read)?.flatten() {
                for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                    self.take(entry, false)?;
                }
            }
        }
    }

    /// A group that is gone (a new night deleted the stream under a
    /// blocked read) is joined again: `Ok(None)`.
    fn regroup<T>(&mut self, result: RedisResult<T>) -> RedisResult<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e) if matches!(e.code(), Some("NOGROUP" | "UNBLOCKED")) => {
                join_group(&mut self.connection)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Cooks one ticket and publishes its plate; a malformed ticket is
    /// dead-lettered, a ticket delivered too often given up.
    fn take(&mut self, entry: StreamId, claimed: bool) -> Result<(), BoxError> {
        let parsed = entry
            .get::<String>("order")
            .ok_or_else(|| "no field `order`".to_owned())
            .and_then(|json| {
                serde_json::from_str::<Order>(&json)
                    .map_err(|e| format!("not a ticket: {e}"))
            });
        let order = match parsed {
            Ok(order) => order,
            Err(why) => {
                // One write, so that cooks sharing a terminal do not
                // interleave their lines.
                let line = format!(
                    "{}: ticket entry {} dead-lettered: {why}\n",
                    MODEL.name, entry.id
                );
                let _ = io::stderr().write_all(line.as_bytes());
                // Dead-lettered and acknowledged at once: never redelivered.
                let mut pipe = dead_letter_pipe(TICKETS, &entry, &why);
                pipe.atomic();
                self.finish(pipe, &entry.id)?;
                return Ok(());
            }
        };
        if claimed {
            let delivered = self.deliveries(&entry.id)?;
            if delivered > MAX_DELIVERIES {
                let why = format!(
                    "delivered {delivered} times and never finished: its \
                     cooks die on it"
                );
                let mut pipe = dead_letter_pipe(TICKETS, &entry, &why);
                pipe.atomic();
                let outcome = Outcome::GaveUp { why };
                self.publish(pipe, &order, outcome, &entry.id)?;
                return Ok(());
            }
        }
        self.cook_and_publish(order, &entry.id)
    }

    fn cook_and_publish(
        &mut self,
        order: Order,
        id: &str,
    ) -> Result<(), BoxError> {
        // The heartbeat keeps this ticket ours while we cook it.
        *self.hand.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(id.to_owned());
        // The server's clock, rebuilt here from the machine's shared
        // clock, so the timeline places this cook's chops beside the
        // cashier's ring-ups (the first install in a process wins).
        Clock::from_wall(order.opening_ns).install();
        let late = self.hooks.before_cooking(order.ticket.id())?;
        if late == hooks::Before::CookLate {
            *self.hand.lock().unwrap_or_else(PoisonError::into_inner) = None;
            self.hooks.be_late();
        }
        // Catch the panic here: the process lives on to cook the next
        // order, and the server learns of the panic from the plate.
        let outcome =
            match panic::catch_unwind(AssertUnwindSafe(|| cook(&order.ticket)))
            {
                Ok(plate) => Outcome::Cooked(plate),
                Err(payload) => Outcome::Panicked {
                    message: panic_message(&*payload),
                },
            };
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.publish(pipe, &order, outcome, id)?;
        *self.hand.lock().unwrap_or_else(PoisonError::into_inner) = None;
        if late == hooks::Before::CookLate {
            self.hooks.was_late()?;
        }
        Ok(())
    }

    /// Adds the plate to [`PLATES`], then acknowledges and deletes the
    /// ticket, in one transaction (`MULTI`/`EXEC`, with what `pipe`
    /// already holds): a cook that dies before it leaves the ticket
    /// pending for another; one that dies after leaves nothing to redo.
    fn publish(
        &mut self,
        mut pipe: redis::Pipeline,
        order: &Order,
        outcome: Outcome,
        id: &str,
    ) -> Result<(), BoxError> {
        let served = Served {
            night: order.night,
            seq: order.seq,
            outcome,
        };
        let json = serde_json::to_string(&served)?;
        pipe.xadd(PLATES, "*", &[("plate", json)]).ignore();
        self.finish(pipe, id)?;
        Ok(())
    }

    /// Runs `pipe` with the ticket's `XACK` and `XDEL` added.
    fn finish(
        &mut self,
        mut pipe: redis::Pipeline,
        id: &str,
    ) -> RedisResult<()> {
        pipe.xack(TICKETS, GROUP, &[id])
            .ignore()
            .xdel(TICKETS, &[id])
            .ignore()
            .query(&mut self.connection)
    }

    /// How many times ticket `id` has been delivered, this claim included.
    fn deliveries(&mut self, id: &str) -> RedisResult<usize> {
        let pending: StreamPendingCountReply =
            self.connection.xpending_count(TICKETS, GROUP, id, id, 1)?;
        Ok(pending.ids.first().map_or(1, |p| p.times_delivered))
    }
}
// ANCHOR_END: cook_loop

// ANCHOR: heartbeat
/// Resets the idle time of the ticket in hand, if this cook still owns
/// it, so nobody claims it while we cook. One script, so that checking
/// the owner and claiming are one step: a cook that was presumed dead and
/// comes back must not take its ticket back from the cook that claimed it.
const HEARTBEAT: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if pending[1] and pending[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
";

/// Beats every `period` on a connection of its own, for the ticket in
/// `hand`. It dies with the cook, and then the ticket goes idle.
fn heartbeat(
    mut connection: Connection,
    me: String,
    hand: Arc<Mutex<Option<String>>>,
    period: Duration,
) -> io::Result<()> {
    let script = redis::Script::new(HEARTBEAT);
    thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            loop {
                thread::sleep(period);
                let id =
                    hand.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if let Some(id) = id {
                    // A failure here is the cook loop's to find and report.
                    let _ = script
                        .key(TICKETS)
                        .arg(GROUP)
                        .arg(&me)
                        .arg(&id)
                        .invoke::<i64>(&mut connection);
                }
            }
        })?;
    Ok(())
}
// ANCHOR_END: heartbeat

// ANCHOR: cook
/// Cooks one order, start to finish, on the cook's main thread.
fn cook(ticket: &Ticket) -> Plate {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // The whole process sleeps: this cook takes no other ticket
            // meanwhile.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    // Not `plate.serve()`: that would count the plate and keep its trace
    // in this process, where nobody reads them. The pass serves it.
    plate
}
// ANCHOR_END: cook

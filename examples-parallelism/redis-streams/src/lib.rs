//! # parallelism-redis-streams: cooks anywhere, fed through a Redis stream
//!
//! ```text
//! cargo run --release -p parallelism-redis-streams -- --preset banquet
//! ```
//!
//! Celery's or BullMQ's shape, in Rust, on Redis streams. The cashier
//! (the thread that calls `serve`) attends customers one at a time:
//! greets, reads the order (the whole line within `wire::PATIENCE` of
//! `NEXT`), rings it up, and adds its ticket to a Redis stream (`XADD`).
//! Cooks are processes, `--cooks` copies of this binary started before
//! opening (default: `auto`, the night's peak of orders in the kitchen,
//! at most 512), or started by hand on any machine that reaches the Redis
//! (`--cook --redis URL`). They form one consumer group: each ticket goes
//! to one of them (`XREADGROUP`), which cooks it and, in one transaction,
//! adds the plate to a second stream, acknowledges the ticket (`XACK`)
//! and deletes it. A thread of the server, the *pass*, reads the plates
//! stream and hands each plate to its waiting customer.
//!
//! **Every key is the night's own**: the server draws a [`Night`] id at
//! opening and names every stream after it (`restaurant:<id>:tickets`,
//! `…:plates`, `…:dead-letters`), so restaurants sharing one Redis never
//! touch each other's orders. Its own cooks are told the night
//! (`--night ID`); a cook started by hand without it serves the night
//! [`TONIGHT`] names, the one opened last, and each one after. Closing
//! deletes the night's streams and keeps its dead letters a day.
//!
//! The code is laid out by role: this file holds the model, the messages
//! and `serve`, which wires the rest; `cashier.rs` the door, the books and
//! the pass; `kitchen.rs` the crew of local cooks and the cook role;
//! [`broker`] the redis-server a run starts and the night's keys.
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
//! - A local cook **stopped** (SIGSTOP) loses its ticket like a dead one,
//!   to the first free cook. Each local cook has a deadline,
//!   [`LEAVE_LIMIT`]: one that has held a ticket that long without a
//!   heartbeat (nobody was free to claim it) is killed, and the cook
//!   started in its place cooks the order; at closing time, one still
//!   there that long after its stdin closed is killed. The server names
//!   each one it kills.
//! - A **malformed** entry on either stream (written by someone else) is
//!   logged, acknowledged and moved to the night's dead-letter stream
//!   ([`Night::dead_letters`]); nobody's order is lost over it.
//! - A cook that **panics** is caught in its process; the server reports
//!   it, naming the order, and tells that customer `ERROR`.
//! - A **Redis that goes away** ends the night: every customer waiting is
//!   told `ERROR`, and `serve` fails naming how many orders were in flight
//!   and the first few. A call cut short by a signal (the first Ctrl-C)
//!   is no Redis gone: it is made again.
//! - No process outlives the server: every way out of [`serve_with`]
//!   kills and reaps the local cooks and the redis-server it started, and
//!   on Linux the kernel kills them if the server is killed outright.
//!
//! The cook role reads a few test hooks from its environment (see
//! `src/hooks.rs`); a normal run sets none.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::thread;

use redis::RedisError;
use restaurant::wire::Ticket;
use restaurant::{BoxError, Cooks, Model, Plate, Shift};
use serde::{Deserialize, Serialize};

pub mod broker;
mod cashier;
mod hooks;
mod kitchen;

pub use broker::{CLAIM_IDLE, GROUP, MAX_DELIVERIES, Night, TONIGHT};
pub use cashier::second_plates;
pub use kitchen::{LEAVE_LIMIT, cook_main};

use broker::{RedisServer, connect, retried};
use cashier::{Books, cashier, pass};
use kitchen::Crew;

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

/// The argument that gives a cook its night (see [`Night::name`]); a cook
/// without one serves the night [`TONIGHT`] names, and the next.
pub const NIGHT_ARG: &str = "--night";
// ANCHOR_END: model

/// A cook started by a server, not by hand: it leaves when its stdin
/// reaches end-of-file (the server closed it, or died).
pub const PARENT_PIPE_ARG: &str = "--parent-pipe";

// ANCHOR: protocol
/// Cashier → cooks: one entry of the night's tickets stream
/// ([`Night::tickets`]), its JSON in field `order`.
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    /// The night's id ([`Night::id`]). Its keys are the night's own, so
    /// this only double-checks: a plate that comes back into the wrong
    /// night's stream is dead-lettered, never served.
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

/// Cook → pass: one entry of the night's plates stream
/// ([`Night::plates`]), its JSON in field `plate`.
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

    /// The command that starts one local cook of `night` on the Redis at
    /// `url`. It is told its night, rather than left to read [`TONIGHT`],
    /// which another server on the same Redis may have renamed.
    fn cook(&self, url: &str, night: &Night) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args([COOK_ARG, REDIS_ARG, url, NIGHT_ARG, &night.name()])
            .arg(PARENT_PIPE_ARG)
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
    // Every key of the night is named after it, so nothing of another
    // night, or of another restaurant on the same Redis, is touched.
    let night = Night::draw();
    broker::open(&mut till, &night).map_err(reach)?;

    // Hired before opening, so no customer waits for a cook to start. A
    // night that never opens takes its keys with it, as one that closes.
    let crew = match Crew::hire(kitchen.cook(&url, &night), cooks) {
        Ok(crew) => crew,
        Err(e) => {
            if ours.is_none() {
                let _ = retried(|| broker::close(&mut till, &night));
            }
            return Err(e);
        }
    };
    let books = Arc::new(Books::default());
    let pass = {
        let (books, shift, url, night) = (
            Arc::clone(&books),
            shift.clone(),
            url.clone(),
            night.clone(),
        );
        thread::Builder::new().name("pass".into()).spawn(move || {
            pass(pass_connection, &books, crew, &shift, &night, &url)
        })?
    };

    shift.open();
    cashier(&listener, &mut till, &books, &shift, &night);
    // Stop accepting: a latecomer is refused now rather than left in the
    // backlog while the kitchen finishes.
    drop(listener);
    books.closing();
    let served = pass.join().map_err(|_| "the pass thread panicked")?;
    // The pass has reaped the local cooks: the night's streams go. On a
    // Redis of our own, which dies with the night, there is nothing to
    // tidy; on a Redis that went away, nothing can be.
    if ours.is_none() {
        let _ = retried(|| broker::close(&mut till, &night));
    }
    served
}
// ANCHOR_END: serve

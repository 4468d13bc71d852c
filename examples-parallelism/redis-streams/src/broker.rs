//! The broker: the `redis-server` a run starts for itself, and the keys a
//! night keeps in whichever Redis it uses.
//!
//! **The server.** A night needs a Redis nobody else writes to, and one that leaves
//! nothing behind: no `dump.rdb`, no process. So, unless `--redis URL`
//! names a server, each run starts one, asks it for `PING` until it
//! answers, and kills and reaps it when the [`RedisServer`] is dropped (on
//! every way out of `serve`, a panic included). A run killed outright
//! (`kill -9`) runs no `Drop`: on Linux the kernel kills the server with
//! it (`restaurant::child::die_with_parent`), which also keeps it out of
//! the terminal's process group, so that a Ctrl-C, meant for the run, does
//! not shut Redis down under the orders still inside.
//!
//! **The keys.** Every key a night writes carries its [`Night`]'s id, a
//! random number the cashier draws at opening: `restaurant:<id>:tickets`,
//! `…:plates`, `…:dead-letters`. So two restaurants sharing one Redis (or
//! a night opening while an earlier one, killed, left its keys) never
//! touch each other's streams. One key is shared, [`TONIGHT`]: it names
//! the night opened last, so that a cook started by hand with no night
//! named can find it. Closing deletes the streams, keeps the dead letters
//! for [`DEAD_LETTERS_TTL`], and clears [`TONIGHT`] if it still names the
//! night.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use redis::streams::{StreamId, StreamMaxlen};
use redis::{Commands, Connection, RedisError, RedisResult, RetryMethod};
use restaurant::BoxError;

// ANCHOR: server

/// The program this module starts.
pub const PROGRAM: &str = "redis-server";

/// How to get [`PROGRAM`], for the message a run without it exits with.
pub const INSTALL: &str = "install it (`apt-get install redis-server` on \
                           Debian or Ubuntu, `brew install redis` on \
                           macOS), or give --redis URL of a Redis you run";

/// How long a new server may take to answer `PING`: it starts in a few
/// milliseconds on any machine here.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// Where [`PROGRAM`] is on the `PATH`, if it is.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(PROGRAM))
        .find(|candidate| candidate.is_file())
}

/// A `redis-server` of this run's own. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    url: String,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it
    /// answers. The port is found by binding port 0 and letting it go, so
    /// another program may take it in between: then the server exits at
    /// once, and another port is tried.
    ///
    /// Call it from a thread that lives as long as the server is needed:
    /// on Linux the kernel kills the server when that thread ends.
    pub fn start() -> Result<RedisServer, BoxError> {
        let mut why = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let mut command = Command::new(PROGRAM);
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                // Persistence off: a night's tickets are worth nothing
                // after the night, and a server that writes nothing
                // leaves nothing behind.
                .args(["--save", "", "--appendonly", "no"])
                .args(["--loglevel", "warning"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            restaurant::child::die_with_parent(&mut command);
            let child = command.spawn().map_err(|e| match e.kind() {
                ErrorKind::NotFound => {
                    format!("{PROGRAM} is not on the PATH: {INSTALL}")
                }
                _ => format!("cannot start {PROGRAM}: {e}"),
            })?;
            let mut server = RedisServer {
                child,
                url: format!("redis://127.0.0.1:{port}/"),
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                // Dropping `server` kills and reaps it.
                Err(e) => why = e,
            }
        }
        Err(format!("{PROGRAM} would not start: {why}").into())
    }

    /// Waits until the server answers `PING`, or has exited.
    fn wait_ready(&mut self) -> Result<(), String> {
        let began = Instant::now();
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| e.to_string())?;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "it ended at once ({status}): was its port taken?"
                ));
            }
            let answered = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match answered {
                Ok(_) => return Ok(()),
                Err(e) if began.elapsed() > READY_LIMIT => {
                    return Err(format!(
                        "no answer to PING within {READY_LIMIT:?}: {e}"
                    ));
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Where to reach it: `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL: there is nothing to save, and it must be gone now.
        let _ = self.child.kill();
        // Reaped, so no zombie is left in the process table.
        let _ = self.child.wait();
    }
}
// ANCHOR_END: server

// ANCHOR: keys
/// What every key of this model starts with.
pub const PREFIX: &str = "restaurant";

/// The one key nights share: the id of the night opened last on this
/// Redis, so that a cook started by hand without `--night` can find it.
pub const TONIGHT: &str = "restaurant:tonight";

/// The consumer group every cook of a night joins, on the night's tickets
/// stream: each ticket goes to one of them.
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

/// How long a night's dead letters stay after closing, for a person to
/// read; then Redis forgets them, so a shared Redis does not fill up with
/// the nights of months.
pub const DEAD_LETTERS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// One night's keys, each named after the night's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Night {
    id: u64,
    tickets: String,
    plates: String,
    dead_letters: String,
}

impl Night {
    /// A night of its own: an id drawn at random (std seeds each
    /// `RandomState` afresh), with this process and the time hashed in.
    pub fn draw() -> Night {
        let random = RandomState::new();
        Night::with_id(random.hash_one((std::process::id(), SystemTime::now())))
    }

    /// The night whose id is `id`.
    pub fn with_id(id: u64) -> Night {
        let key = |what| format!("{PREFIX}:{id:016x}:{what}");
        Night {
            id,
            tickets: key("tickets"),
            plates: key("plates"),
            dead_letters: key("dead-letters"),
        }
    }

    /// The night named `name`, as [`Night::name`] spells it: 16 hex
    /// digits.
    pub fn parse(name: &str) -> Option<Night> {
        let hex =
            name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit());
        let id = u64::from_str_radix(name, 16).ok().filter(|_| hex)?;
        Some(Night::with_id(id))
    }

    /// The id, which every message of the night carries too.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The id as it appears in the keys, in [`TONIGHT`] and after
    /// `--night`: 16 hex digits.
    pub fn name(&self) -> String {
        format!("{:016x}", self.id)
    }

    /// The stream the cashier adds tickets to, one entry per order; the
    /// cooks' group reads it.
    pub fn tickets(&self) -> &str {
        &self.tickets
    }

    /// The stream the cooks add plates to, which the pass reads.
    pub fn plates(&self) -> &str {
        &self.plates
    }

    /// Where a malformed entry of either stream ends up, with the reason.
    pub fn dead_letters(&self) -> &str {
        &self.dead_letters
    }
}
// ANCHOR_END: keys

// ANCHOR: open
/// Opens `night`: makes its tickets stream and the group on it, and names
/// it in [`TONIGHT`]. The server does it before it hires a cook, so a cook
/// never makes the group: one that finds no group (`NOGROUP`) knows that
/// its night has closed, and makes nothing anew that nobody would delete.
pub fn open(connection: &mut Connection, night: &Night) -> RedisResult<()> {
    redis::pipe()
        .xgroup_create_mkstream(night.tickets(), GROUP, "0")
        .ignore()
        .set(TONIGHT, night.name())
        .ignore()
        .query(connection)
}

/// Clears [`TONIGHT`] if it still names this night (`ARGV[1]`): a night
/// opened since, by another server on the same Redis, keeps its name.
/// A script, so that reading and deleting are one step.
const CLEAR_TONIGHT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Closes `night`, once every order is answered: its streams go (a cook
/// blocked on them wakes up to `NOGROUP`), its dead letters are kept for
/// [`DEAD_LETTERS_TTL`], and [`TONIGHT`] forgets it.
pub fn close(connection: &mut Connection, night: &Night) -> RedisResult<()> {
    let ttl = DEAD_LETTERS_TTL.as_secs() as i64;
    redis::pipe()
        .del(&[night.tickets(), night.plates()])
        .ignore()
        .expire(night.dead_letters(), ttl)
        .ignore()
        .query::<()>(connection)?;
    redis::Script::new(CLEAR_TONIGHT)
        .key(TONIGHT)
        .arg(night.name())
        .invoke::<i64>(connection)?;
    Ok(())
}

/// The night [`TONIGHT`] names, if any is open.
pub fn tonight(connection: &mut Connection) -> RedisResult<Option<Night>> {
    let name: Option<String> = connection.get(TONIGHT)?;
    Ok(name.as_deref().and_then(Night::parse))
}
// ANCHOR_END: open

/// How long a command may wait for Redis's answer: far above any `BLOCK`
/// here, so only a Redis that hangs reaches it.
const REDIS_PATIENCE: Duration = Duration::from_secs(10);

/// A connection that gives up on a Redis that stops answering.
pub(crate) fn connect(client: &redis::Client) -> RedisResult<Connection> {
    let connection = client.get_connection_with_timeout(REDIS_PATIENCE)?;
    connection.set_read_timeout(Some(REDIS_PATIENCE))?;
    connection.set_write_timeout(Some(REDIS_PATIENCE))?;
    Ok(connection)
}

/// Runs `command`, and again (three tries in all) when a signal
/// interrupted its wait for the answer. A socket with a read time-out is
/// never restarted after a signal handler (signal(7)), so the first
/// Ctrl-C, which the server's handler turns into closing time, fails
/// whatever Redis call its thread was in with `EINTR`: that is no Redis
/// gone away. The connection stays usable (redis skips the late answer
/// at the next read), so only the command is repeated: an `XADD` may then
/// add its ticket twice, and the pass serves one plate of the two.
pub(crate) fn retried<T>(
    mut command: impl FnMut() -> RedisResult<T>,
) -> RedisResult<T> {
    let mut tries = 1;
    loop {
        match command() {
            Err(e) if tries < 3 && interrupted(&e) => tries += 1,
            result => return result,
        }
    }
}

/// An I/O error that is neither a time-out nor a dropped connection, and
/// that redis itself would retry at once: `EINTR`. (redis keeps the
/// `io::Error` to itself; this is what its public API says of it.)
fn interrupted(e: &RedisError) -> bool {
    e.is_io_error()
        && !e.is_timeout()
        && !e.is_connection_dropped()
        && matches!(e.retry_method(), RetryMethod::RetryImmediately)
}

/// The most entries a night's dead-letter stream keeps (roughly:
/// `MAXLEN ~`).
const DEAD_LETTERS_KEPT: usize = 10_000;

// ANCHOR: dead_letter
/// Moves a malformed `entry` of `stream` to the night's dead letters,
/// with why: logged and kept for a person to look at, never a crash, and
/// never in the way of the next entry.
pub(crate) fn dead_letter(
    connection: &mut Connection,
    night: &Night,
    stream: &str,
    entry: &StreamId,
    why: &str,
) -> RedisResult<()> {
    dead_letter_pipe(night, stream, entry, why).query(connection)
}

/// A pipeline that adds `entry` of `stream` to the night's dead letters,
/// for a caller to add more to.
pub(crate) fn dead_letter_pipe(
    night: &Night,
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
        night.dead_letters(),
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

//! The broker a run starts for itself: a `redis-server` of its own on a
//! free loopback port, with persistence off, that never outlives the run.
//!
//! A night needs a Redis nobody else writes to, and one that leaves
//! nothing behind: no `dump.rdb`, no process. So, unless `--redis URL`
//! names a server, each run starts one, asks it for `PING` until it
//! answers, and kills and reaps it when the [`RedisServer`] is dropped (on
//! every way out of `serve`, a panic included). A run killed outright
//! (`kill -9`) runs no `Drop`: on Linux the kernel kills the server with
//! it (`restaurant::child::die_with_parent`), which also keeps it out of
//! the terminal's process group, so that a Ctrl-C, meant for the run, does
//! not shut Redis down under the orders still inside.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use restaurant::BoxError;

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

//! Test hooks: environment variables that make a cook misbehave on cue,
//! and that leave the pids of what a run starts where a test can check
//! them. They are read in a debug build only (what `cargo test` builds): a
//! release binary, which users and `compare` run, ignores them, so no
//! environment can inject a fault into a real run. A cook inherits the
//! server's environment, so the tests set them on either.
//!
//! | variable | what it does |
//! |---|---|
//! | `REDIS_STREAMS_PIDS=<dir>` | the server leaves an empty file `redis-<pid>` there for the redis-server it starts, each cook one named `cook-<pid>` |
//! | `REDIS_COOK_STALL_ON=<id>` | with `_PIDS`: the first cook handed order `<id>` writes its pid to `<dir>/stalled` and waits a minute before cooking, its heartbeat beating: a live cook, mid-order, for a test to kill |
//! | `REDIS_COOK_LATE_ON=<id>` | with `_PIDS`: the first cook handed order `<id>` stops its heartbeat and waits three claim times before cooking, so another cook claims the ticket and cooks it too: a second plate. It writes its pid to `<dir>/late` when it has published |
//! | `REDIS_COOK_ABORT_ON=<id>` | every cook handed order `<id>` aborts (SIGABRT): an order that kills its cooks |
//! | `REDIS_COOK_CLAIM_IDLE_MS=<ms>` | how long a ticket must sit idle before another cook claims it, instead of [`crate::CLAIM_IDLE`] |

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use std::{env, process, thread};

/// The hooks this process was started with.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    pids: Option<PathBuf>,
    stall_on: Option<u64>,
    late_on: Option<u64>,
    abort_on: Option<u64>,
    claim_idle: Option<Duration>,
}

/// What a cook does with an order before cooking it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Before {
    /// Cooks it as usual.
    Cook,
    /// Cooks it without its heartbeat, late, then says so.
    CookLate,
}

impl Hooks {
    /// Reads the hooks from the environment (debug builds only).
    pub(crate) fn from_env() -> Hooks {
        if !cfg!(debug_assertions) {
            return Hooks::default();
        }
        let number = |name| env::var(name).ok()?.parse::<u64>().ok();
        Hooks {
            pids: env::var_os("REDIS_STREAMS_PIDS").map(PathBuf::from),
            stall_on: number("REDIS_COOK_STALL_ON"),
            late_on: number("REDIS_COOK_LATE_ON"),
            abort_on: number("REDIS_COOK_ABORT_ON"),
            claim_idle: number("REDIS_COOK_CLAIM_IDLE_MS")
                .map(Duration::from_millis),
        }
    }

    /// How long a ticket sits idle before another cook claims it.
    pub(crate) fn claim_idle(&self) -> Duration {
        self.claim_idle.unwrap_or(crate::CLAIM_IDLE)
    }

    /// Leaves `<what>-<pid>` in the pid directory.
    pub(crate) fn started(&self, what: &str, pid: u32) -> io::Result<()> {
        if let Some(dir) = &self.pids {
            fs::write(dir.join(format!("{what}-{pid}")), "")?;
        }
        Ok(())
    }

    /// The first process to call this for `name` gets `true` and writes
    /// its pid to `<dir>/<name>`.
    fn first(dir: &Path, name: &str) -> io::Result<bool> {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))
        {
            Ok(mut file) => {
                write!(file, "{}", process::id())?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs the hooks for order `id`, before it is cooked.
    pub(crate) fn before_cooking(&self, id: u64) -> io::Result<Before> {
        if self.abort_on == Some(id) {
            process::abort();
        }
        let Some(dir) = &self.pids else {
            return Ok(Before::Cook);
        };
        if self.stall_on == Some(id) && Self::first(dir, "stalled")? {
            // Long enough for any test to kill it; short enough that a
            // cook nobody kills does not linger for ever.
            thread::sleep(Duration::from_secs(60));
        }
        if self.late_on == Some(id) && Self::first(dir, "late-taken")? {
            return Ok(Before::CookLate);
        }
        Ok(Before::Cook)
    }

    /// A late cook (`Before::CookLate`) waits here, its heartbeat off.
    pub(crate) fn be_late(&self) {
        thread::sleep(3 * self.claim_idle());
    }

    /// A late cook has published its (second) plate.
    pub(crate) fn was_late(&self) -> io::Result<()> {
        if let Some(dir) = &self.pids {
            fs::write(dir.join("late"), process::id().to_string())?;
        }
        Ok(())
    }
}

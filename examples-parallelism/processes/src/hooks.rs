//! Test hooks of the worker role: environment variables that make a worker
//! misbehave on cue, so the tests can show how the parent copes. Only the
//! worker role reads them, and only in a debug build (what `cargo test`
//! builds): a release binary, which users and `compare` run, ignores them,
//! so no environment can inject a fault into a real run. The tests set
//! them on the worker's `Command` (`serve_with`), or on a server's
//! environment, which its workers inherit.
//!
//! | variable | the worker… |
//! |---|---|
//! | `PROCESSES_WORKER_ABORT_ON=<id>` | aborts (SIGABRT) when handed order `<id>`: a process dying mid-order |
//! | `PROCESSES_WORKER_GARBLE_ON=<id>` | answers order `<id>` with a line that is not JSON |
//! | `PROCESSES_WORKER_PIDS=<dir>` | leaves an empty file named after its pid in `<dir>` when it starts, so a test can check every worker was reaped |
//! | `PROCESSES_WORKER_STALL_ON=<id>` | with `_PIDS`: the first worker handed order `<id>` writes its pid to `<dir>/stalled` and waits a minute before cooking, for a test to kill or stop it mid-order |
//! | `PROCESSES_WORKER_STARTS=<n>` | with `_PIDS`: exits before saying it is ready if `<n>` workers have started already, so no replacement can be had |

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;
use std::{process, thread};

/// The hooks this worker was started with.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    abort_on: Option<u64>,
    garble_on: Option<u64>,
    stall_on: Option<u64>,
    starts: Option<usize>,
    pids: Option<PathBuf>,
}

impl Hooks {
    /// Reads the hooks from the environment: in debug builds only. In a
    /// release build this code is not even compiled, so no environment
    /// can make a real worker misbehave.
    #[cfg(debug_assertions)]
    pub(crate) fn from_env() -> Hooks {
        use std::env;
        let id = |name| env::var(name).ok()?.parse().ok();
        Hooks {
            abort_on: id("PROCESSES_WORKER_ABORT_ON"),
            garble_on: id("PROCESSES_WORKER_GARBLE_ON"),
            stall_on: id("PROCESSES_WORKER_STALL_ON"),
            starts: env::var("PROCESSES_WORKER_STARTS")
                .ok()
                .and_then(|n| n.parse().ok()),
            pids: env::var_os("PROCESSES_WORKER_PIDS").map(PathBuf::from),
        }
    }

    /// No hooks: a release build reads no environment.
    #[cfg(not(debug_assertions))]
    pub(crate) fn from_env() -> Hooks {
        Hooks::default()
    }

    /// At start-up: leaves this worker's pid in the pid directory, or
    /// refuses to start if enough workers have.
    pub(crate) fn started(&self) -> io::Result<()> {
        if let Some(dir) = &self.pids {
            if let Some(most) = self.starts {
                let started = fs::read_dir(dir)?
                    .filter_map(Result::ok)
                    .filter(|entry| {
                        entry.file_name().to_str().is_some_and(|name| {
                            name.bytes().all(|b| b.is_ascii_digit())
                        })
                    })
                    .count();
                if started >= most {
                    return Err(io::Error::other(format!(
                        "not starting: {started} workers have started, the most \
                         the test allows ({most})"
                    )));
                }
            }
            fs::write(dir.join(process::id().to_string()), "")?;
        }
        Ok(())
    }

    /// Runs the hooks for order `id`, before it is cooked. `true` when the
    /// order was answered with garbage instead, and must not be cooked.
    pub(crate) fn before_cooking(
        &self,
        id: u64,
        pass: &mut impl Write,
    ) -> io::Result<bool> {
        if self.abort_on == Some(id) {
            process::abort();
        }
        if self.stall_on == Some(id)
            && let Some(dir) = &self.pids
            // `create_new` succeeds for the first worker only, so the
            // order, handed on after that worker is killed, gets cooked.
            && let Ok(mut file) = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join("stalled"))
        {
            write!(file, "{}", process::id())?;
            drop(file);
            // Long enough for any test to kill it; short enough that a
            // worker nobody kills does not linger for ever.
            thread::sleep(Duration::from_secs(60));
        }
        if self.garble_on == Some(id) {
            pass.write_all(b"this is not a reply\n")?;
            pass.flush()?;
            return Ok(true);
        }
        Ok(false)
    }
}

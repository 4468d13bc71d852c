//! Runs one example binary in a process of its own, with a time limit.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use restaurant::Report;

/// The process group of the example running now (its pid), 0 for none:
/// what Ctrl-C kills.
static RUNNING: AtomicU32 = AtomicU32::new(0);

/// Set once Ctrl-C or SIGTERM has arrived: no new run starts.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// On Ctrl-C or SIGTERM: kill the running example's whole tree at once and
/// start no other. (A second signal changes nothing: the first already
/// did all there is to do; the caller prints what was measured and exits.)
pub fn stop_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        let pid = RUNNING.load(Ordering::SeqCst);
        if pid != 0 {
            kill_group(pid);
        }
    });
    if let Err(e) = installed {
        eprintln!("compare: warning: Ctrl-C will not stop runs cleanly: {e}");
    }
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// What became of one run.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Exit 0 and a report.
    Ok(Box<Report>),
    /// Killed at the time limit: the model could not cope in time.
    Dnf,
    /// A crash, a verification failure, a bad report: the message says.
    Failed(String),
    /// Not run: something it requires is missing here (the reason).
    Skipped(String),
}

/// How often a running example is checked for having finished.
const POLL: Duration = Duration::from_millis(5);

/// Runs `binary args…`, killing it and its whole process tree after
/// `limit`. Its stdout must be one JSON report (the examples' `--json`).
pub fn run(binary: &Path, args: &[String], limit: Duration) -> Outcome {
    let stdout = match supervise(binary, args, limit) {
        Ok(stdout) => stdout,
        Err(ended) => return ended,
    };
    match serde_json::from_str::<Report>(stdout.trim()) {
        Ok(report) => Outcome::Ok(Box::new(report)),
        Err(e) => {
            Outcome::Failed(format!("its --json output is not a report: {e}"))
        }
    }
}

/// Starts `binary args…` in a process group of its own, tied to compare's
/// life and to its Ctrl-C, waits for it for at most `limit`, kills its
/// whole tree whatever became of it, and returns its stdout. `Err` holds
/// the outcome when it did not exit with success: a DNF at the limit, else
/// a failure naming why. Every run of an example goes through here, a
/// question such as `--print-cooks` too: a model that hangs on it must
/// not hang compare.
pub fn supervise(
    binary: &Path,
    args: &[String],
    limit: Duration,
) -> Result<String, Outcome> {
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A process group of its own, so that a time-out kills the example's
    // children too (its customers, the processes model's workers); and if
    // compare itself is killed, the example dies with it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    restaurant::child::die_with_parent(&mut command);
    if interrupted() {
        return Err(Outcome::Failed("interrupted".to_owned()));
    }
    let mut child = command.spawn().map_err(|e| {
        Outcome::Failed(format!("cannot start {}: {e}", binary.display()))
    })?;
    RUNNING.store(child.id(), Ordering::SeqCst);
    // Drain both pipes on threads, so a chatty example never blocks on a
    // full pipe while we wait for it.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= limit => break Err(Outcome::Dnf),
            Ok(None) => thread::sleep(POLL),
            Err(e) => {
                break Err(Outcome::Failed(format!("waiting for it: {e}")));
            }
        }
    };
    // Whatever became of the example, nothing of its tree outlives it: a
    // worker that still holds its stderr would keep the pipes open and
    // stretch the run past its limit.
    kill_tree(&mut child);
    RUNNING.store(0, Ordering::SeqCst);
    let status = status?;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(Outcome::Failed(summary(&stderr, &status.to_string())));
    }
    Ok(stdout)
}

fn drain<R: Read + Send + 'static>(
    pipe: Option<R>,
) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            // Output that is not UTF-8 is reported as empty, not a crash.
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// Kills the child's whole process group (Unix) or the child (elsewhere),
/// then reaps it.
fn kill_tree(child: &mut Child) {
    kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGKILL to process group `pid` (the example's: process_group(0)
/// above makes its id the example's pid). An error means the group is
/// already gone. Does nothing off Unix.
fn kill_group(pid: u32) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(pid) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// The line of stderr that says what went wrong: the example's own
/// `error:` line if there is one, else the last line, else the status.
fn summary(stderr: &str, status: &str) -> String {
    let lines: Vec<&str> =
        stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    // The example's own `<name>: error: …` line comes first; the lines
    // under it detail it.
    let line = lines
        .iter()
        .find(|l| l.contains(": error: "))
        .or_else(|| lines.iter().rev().find(|l| l.contains("error")))
        .or(lines.last())
        .map(|l| l.trim().to_owned());
    match line {
        Some(line) => format!("{line} ({status})"),
        None => status.to_owned(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_run_past_its_limit_is_killed_with_its_children() {
        let dir = std::env::temp_dir()
            .join(format!("compare-kill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("grandchild");
        // A shell that starts a grandchild and waits for it: the shape of
        // the processes model, whose workers are the example's children.
        let script =
            format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let started = Instant::now();
        let outcome = run(
            Path::new("/bin/sh"),
            &["-c".to_owned(), script],
            Duration::from_millis(500),
        );
        assert!(matches!(outcome, Outcome::Dnf), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim();
        // Reaped or not, a killed process is no longer running: it is gone
        // from /proc or a zombie ("Z") waiting for its parent, init.
        let alive = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    let state = stat.rsplit(')').next().unwrap_or("").trim();
                    !state.starts_with('Z')
                })
                .unwrap_or(false)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "grandchild {pid} survived the time-out");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_crash_is_a_failure_with_its_message() {
        let outcome = run(
            Path::new("/bin/sh"),
            &[
                "-c".to_owned(),
                "echo 'x: error: it broke' >&2; exit 1".to_owned(),
            ],
            Duration::from_secs(10),
        );
        match outcome {
            Outcome::Failed(why) => assert!(why.contains("it broke"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn output_that_is_not_a_report_is_a_failure() {
        let outcome = run(
            Path::new("/bin/sh"),
            &["-c".to_owned(), "echo hello".to_owned()],
            Duration::from_secs(10),
        );
        assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
    }
}

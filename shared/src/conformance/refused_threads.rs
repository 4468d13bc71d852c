//! A thread limit as a user meets it (`ulimit -u`): the real binary, run
//! again and again under a limit tight enough that some thread of the run
//! is refused, but where the refusal falls changes from try to try (the
//! customers' process starts its threads at the same time as the server).
//! Every try must end the same way: exit 1, within [`REFUSAL_LIMIT`], with
//! one message naming the refusal and no panic's text, and nothing of the
//! run left behind. One hang in fifty is a bug; so the tries are many.

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::REFUSAL_LIMIT;

/// The limits tried (`RLIMIT_NPROC`, the threads and processes of a user
/// that has only this run): below what any model's night needs, above
/// what its first moments take, so the refusal falls somewhere different
/// each time (measured: a thread of the server's harness, one a crate
/// starts, the customers' own).
const LIMITS: [u64; 2] = [7, 8];

/// Tries at each limit. Before `cli::main_from` ended refusals at once, a
/// refusal that unwound into a hang or an abort did so a few tries in a
/// hundred.
const TRIES: usize = 50;

/// How long the processes of a run may outlive it: the customers die of
/// the parent-death signal, at once.
const ORPHAN_BOUND: Duration = Duration::from_secs(2);

/// Runs `binary` (a night of 20 orders) as a user of its own under each of
/// [`LIMITS`], [`TRIES`] times each, and fails naming every try that did
/// not end with exit 1, one line saying `the OS refused a thread (N
/// alive)`, no `panicked at`, and no process of that user left.
///
/// `RLIMIT_NPROC` counts every task of a user and root ignores it, so each
/// try runs under a user id nobody has (a new one for every try: a
/// process of an earlier try that the kernel has not yet reaped would
/// count against the next), set by this process, which must be root;
/// otherwise, or without `prlimit`, it prints why and checks nothing.
pub fn check_refused_threads_end_cleanly(binary: &str) {
    // The effective user id, the second of the `Uid:` line.
    let root = fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|l| {
            l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")
        })
    });
    if !root {
        println!(
            "refused-threads check skipped: it needs root, to run the binary \
             under a user of its own (root ignores RLIMIT_NPROC)"
        );
        return;
    }
    let base = 3_000_000_000 + (std::process::id() % 1_000_000) * 1000;
    // The binary must be one that user may run at all: `--help` with no
    // limit says so.
    let help = Command::new("prlimit")
        .args(["--", binary, "--help"])
        .uid(base)
        .gid(base)
        .stdin(Stdio::null())
        .output();
    match help {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "refused-threads check skipped: user {base} cannot run \
                 {binary}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            println!("refused-threads check skipped: no prlimit: {e}");
            return;
        }
    }
    let mut failures = Vec::new();
    let mut refused_for = std::collections::BTreeSet::new();
    let mut next_uid = base + 1;
    for limit in LIMITS {
        for attempt in 1..=TRIES {
            let verdict = one_try(binary, limit, next_uid).map(|line| {
                // What the thread was for, without its count.
                let what = line
                    .split_once(" alive)")
                    .map_or(line.as_str(), |(_, rest)| rest);
                let what = what.split_once(": ").map_or(what, |(w, _)| w);
                refused_for.insert(what.trim().to_owned());
            });
            if let Err(why) = verdict {
                failures.push(format!("limit {limit}, try {attempt}: {why}"));
            }
            next_uid += 1;
        }
    }
    let tries = LIMITS.len() * TRIES;
    assert!(
        failures.is_empty(),
        "{} of {tries} tries of {binary} under a thread limit did not end \
         cleanly:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    println!(
        "{tries} tries, each refused and ended cleanly; refused {}",
        refused_for.into_iter().collect::<Vec<_>>().join("; ")
    );
}

/// One run of `binary` as `uid` under `ulimit -u limit`: the refusal line
/// it printed, or what went wrong.
fn one_try(binary: &str, limit: u64, uid: u32) -> Result<String, String> {
    let began = Instant::now();
    let mut child = Command::new("prlimit")
        .arg(format!("--nproc={limit}"))
        .args(["--", binary, "--orders", "20", "--time-scale", "10"])
        .uid(uid)
        .gid(uid)
        // A group of its own: a hung run is killed with all it started.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run prlimit: {e}"))?;
    let group = Pid::from_raw(child.id() as i32);
    let mut pipe = child.stderr.take().ok_or("no stderr")?;
    // Read until every holder of the pipe (the customers too) is gone.
    let (done, read) = mpsc::channel();
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = done.send(text);
    });
    let stderr = read.recv_timeout(REFUSAL_LIMIT);
    let hung = stderr.is_err();
    if hung {
        let _ = killpg(group, Signal::SIGKILL);
    }
    let status = child.wait().map_err(|e| format!("cannot wait: {e}"))?;
    let took = began.elapsed();
    let stderr = match stderr {
        Ok(text) => text,
        // Killed: whatever it had said by then.
        Err(_) => read.recv_timeout(ORPHAN_BOUND).unwrap_or_default(),
    };
    let left = leftovers(uid);
    let said =
        || format!("stderr:\n    {}", stderr.trim().replace('\n', "\n    "));
    if hung {
        return Err(format!(
            "still running after {REFUSAL_LIMIT:?} (killed); {}",
            said()
        ));
    }
    if let Some(left) = left {
        return Err(format!("left {left} behind; {}", said()));
    }
    if status.code() != Some(1) {
        return Err(format!(
            "ended with {status} after {took:.1?}; {}",
            said()
        ));
    }
    if stderr.contains("panicked at") {
        return Err(format!("a panic's text was printed; {}", said()));
    }
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("the OS refused a thread ("))
        .collect();
    match refusals[..] {
        [line] if line.contains(" alive)") => Ok(line.to_owned()),
        _ => Err(format!(
            "{} refusal messages, not one; {}",
            refusals.len(),
            said()
        )),
    }
}

/// The processes of `uid` still alive once [`ORPHAN_BOUND`] has passed
/// (zombies excluded: they have ended, and only wait to be reaped), named;
/// killed, so that no try leaves anything behind.
fn leftovers(uid: u32) -> Option<String> {
    let deadline = Instant::now() + ORPHAN_BOUND;
    loop {
        let alive = processes_of(uid);
        if alive.is_empty() {
            return None;
        }
        if Instant::now() >= deadline {
            for (pid, _) in &alive {
                let _ = nix::sys::signal::kill(
                    Pid::from_raw(*pid),
                    Signal::SIGKILL,
                );
            }
            let names: Vec<String> = alive
                .iter()
                .map(|(pid, name)| format!("{name} ({pid})"))
                .collect();
            return Some(names.join(", "));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Every process of `uid` that has not ended: pid and name, from /proc.
fn processes_of(uid: u32) -> Vec<(i32, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let status =
                fs::read_to_string(entry.path().join("status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
            };
            let real_uid = field("Uid:")?.split_whitespace().next()?;
            let ended = field("State:")?.starts_with('Z');
            (real_uid == uid.to_string() && !ended)
                .then(|| (pid, field("Name:").unwrap_or("?").to_owned()))
        })
        .collect()
}

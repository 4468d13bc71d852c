//! A model that hangs is torn down: the kit fails it within its deadline,
//! naming the case, and afterwards neither the process that ran the model
//! (with a thread that never ends) nor the `sleep 600` it started is alive.
//!
//! Three processes take part. Each test here (the outer run) runs itself
//! again (the middle run) with the kit's time limit cut to a second and a
//! file for pids in its environment. The middle run calls the kit, which
//! runs the check in a child of its own (the inner run), where the model
//! writes its pids to the file and hangs. The outer run reads how the
//! middle run failed, then looks up each pid in /proc.
#![cfg(target_os = "linux")]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use restaurant::conformance::{self, TIME_LIMIT_VAR};
use restaurant::{BoxError, Cooks, Model, Shift};

/// Where the inner run's model writes "<its pid> <sleep's pid>"; set by
/// the outer run for the middle one (and so for the inner one).
const PIDS: &str = "RESTAURANT_TEARDOWN_PIDS";

/// The kit's time limit in the middle run, in seconds.
const LIMIT_SECS: u64 = 1;

/// Starts what a hung model leaves behind: a thread that never ends and a
/// `sleep 600`; writes the pids where the outer run will look.
fn leave_things_running() -> Result<(), BoxError> {
    thread::Builder::new().name("never-ends".into()).spawn(|| {
        loop {
            thread::park();
        }
    })?;
    // No `die_with_parent`, and the kit's pipes inherited: only the kit
    // killing the process group can end it.
    let sleep = Command::new("sleep").arg("600").spawn()?;
    let path = std::env::var(PIDS)?;
    std::fs::write(path, format!("{} {}\n", std::process::id(), sleep.id()))?;
    Ok(())
}

/// Opens, then never returns, closing time or not.
fn hangs(
    listener: TcpListener,
    _: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    leave_things_running()?;
    shift.open();
    let _door = listener;
    loop {
        thread::park();
    }
}

/// Stops its whole process (SIGSTOP) before opening: the kit inside it
/// cannot report anything, so only the parent's deadline finds it.
fn freezes(
    _listener: TcpListener,
    _: usize,
    _shift: Shift,
) -> Result<(), BoxError> {
    leave_things_running()?;
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP)?;
    Err("went on after SIGSTOP".into())
}

fn model(serve: restaurant::cli::Serve) -> Model {
    Model {
        name: "hung",
        about: "a model that never finishes",
        cooks: Cooks::One,
        waiters: None,
        serve,
    }
}

/// How the middle run ended.
#[derive(Debug)]
struct Middle {
    failed: bool,
    output: String,
    took: Duration,
    /// The inner run's pid and its `sleep`'s.
    pids: (u32, u32),
}

/// The outer run: runs `test` as the middle run, and reads how it ended.
fn run_middle(test: &str) -> Middle {
    let pids = std::env::temp_dir()
        .join(format!("kit-teardown-{}-{test}", std::process::id()));
    let _ = std::fs::remove_file(&pids);
    // Files, not pipes: a process the kit failed to kill would hold a
    // pipe open, and this test would wait for it instead of failing.
    let log = |name: &str| {
        let path = pids.with_extension(name);
        let file = std::fs::File::create(&path).expect("a file in temp_dir");
        (path, file)
    };
    let (stdout, stdout_file) = log("stdout");
    let (stderr, stderr_file) = log("stderr");
    let began = Instant::now();
    let mut middle =
        Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", test, "--test-threads=1", "--nocapture"])
            .env(PIDS, &pids)
            .env(TIME_LIMIT_VAR, LIMIT_SECS.to_string())
            .stdin(Stdio::null())
            .stdout(stdout_file)
            .stderr(stderr_file)
            .spawn()
            .expect("the test binary runs");
    // Far beyond what the kit should take: the kit's own deadline is the
    // subject here, this one only keeps a broken kit from hanging CI.
    let limit = Duration::from_secs(120);
    let status = loop {
        if let Some(status) = middle.try_wait().expect("waitpid") {
            break status;
        }
        if began.elapsed() > limit {
            let _ = middle.kill();
            let _ = middle.wait();
            panic!("the middle run did not end within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let took = began.elapsed();
    let mut output = String::new();
    for path in [&stdout, &stderr] {
        output += &std::fs::read_to_string(path).unwrap_or_default();
        let _ = std::fs::remove_file(path);
    }
    let written = std::fs::read_to_string(&pids).unwrap_or_default();
    let _ = std::fs::remove_file(&pids);
    let mut numbers = written.split_whitespace().map(|n| n.parse::<u32>());
    let (Some(Ok(inner)), Some(Ok(sleep))) = (numbers.next(), numbers.next())
    else {
        panic!(
            "the model wrote no pids ({written:?}); the run said:\n{output}"
        );
    };
    Middle {
        failed: !status.success(),
        output,
        took,
        pids: (inner, sleep),
    }
}

/// Whether `pid` runs `comm`: a live process (not a zombie waiting to be
/// reaped) of that name. The name guards against the pid's reuse.
fn alive(pid: u32, comm: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S …": the state follows the last ')'.
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let name = head.split_once('(').map_or("", |(_, name)| name);
    let state = rest.trim().chars().next();
    name == comm && !matches!(state, Some('Z' | 'X'))
}

/// Asserts that the inner run and its `sleep` are gone: at once, since
/// the kit killed them before it failed the test, but allowing the
/// kernel a moment to finish a SIGKILL.
fn assert_torn_down(middle: &Middle) {
    let (inner, sleep) = middle.pids;
    let ours = std::fs::read_to_string("/proc/self/comm")
        .expect("/proc/self/comm")
        .trim()
        .to_owned();
    let began = Instant::now();
    loop {
        let left: Vec<(u32, &str)> = [(inner, ours.as_str()), (sleep, "sleep")]
            .into_iter()
            .filter(|&(pid, comm)| alive(pid, comm))
            .collect();
        if left.is_empty() {
            return;
        }
        if began.elapsed() > Duration::from_secs(2) {
            // Leave nothing running behind a failed test.
            for &(pid, _) in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            panic!(
                "still running after the kit failed (pid, name): {left:?}; \
                 the run said:\n{}",
                middle.output
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The middle and inner runs of each test: the kit's check on `serve`.
/// `true` there; `false` in the outer run, which goes on to look.
fn kit_run(serve: restaurant::cli::Serve) -> bool {
    if std::env::var_os(PIDS).is_none() {
        return false;
    }
    conformance::check(&model(serve));
    true
}

#[test]
fn a_model_that_hangs_is_torn_down() {
    if kit_run(hangs) {
        return;
    }
    let middle = run_middle("a_model_that_hangs_is_torn_down");
    assert_torn_down(&middle);
    let out = &middle.output;
    assert!(middle.failed, "the kit passed a model that hangs:\n{out}");
    // The first case: no customers, so closing time comes at once, and
    // the model never returns from it.
    let not_run = format!(
        "(stopped there: the model hangs; {} case(s) not run)",
        conformance::cases(&model(hangs)).len() - 1
    );
    for named in [
        "hung failed 1 case(s):\n  lunch-rush × 0 orders, seed 1, 1 cooks",
        "serve did not return within 1s of closing time",
        &not_run,
        "its process was torn down",
    ] {
        assert!(out.contains(named), "no {named:?} in:\n{out}");
    }
    // One time limit, then the kit stops; the rest is starting processes.
    assert!(
        middle.took < Duration::from_secs(LIMIT_SECS + 10),
        "the kit took {:?}",
        middle.took
    );
}

#[test]
fn a_model_that_stops_its_process_is_torn_down_at_the_deadline() {
    if kit_run(freezes) {
        return;
    }
    let middle = run_middle(
        "a_model_that_stops_its_process_is_torn_down_at_the_deadline",
    );
    assert_torn_down(&middle);
    let out = &middle.output;
    assert!(middle.failed, "the kit passed a stopped model:\n{out}");
    for named in [
        "nothing new from the check for 4s, during lunch-rush × 0 orders, \
         seed 1, 1 cooks",
        "its process was torn down",
    ] {
        assert!(out.contains(named), "no {named:?} in:\n{out}");
    }
    // Four time limits of silence, not a moment less, and not much more.
    assert!(
        middle.took >= Duration::from_secs(4 * LIMIT_SECS)
            && middle.took < Duration::from_secs(4 * LIMIT_SECS + 10),
        "the kit took {:?}",
        middle.took
    );
}

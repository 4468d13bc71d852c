//! `ASYNC_GLOBAL_EXECUTOR_THREADS` beats `--cooks`: async-global-executor
//! 2.4.1 reads it whenever a configuration names no variable of its own,
//! as the model's does. The model cannot stop that, so it says so on
//! stderr, and these tests hold it to saying so, and to saying the truth:
//! they count the runtime's threads by name in the running server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_concurrency-async-std");

/// What one server said before it opened, and how many runtime threads
/// it had then (`None` where the OS does not let us count them).
struct Opened {
    said: Vec<String>,
    runtime_threads: Option<usize>,
}

/// Starts the server alone with `--cooks 3` and
/// `ASYNC_GLOBAL_EXECUTOR_THREADS` set to `value` (or unset), waits until
/// it is listening, counts its runtime threads (waiting a while for
/// `expected` of them), and kills it.
fn open_with(value: Option<&str>, expected: usize) -> Opened {
    let mut command = Command::new(BINARY);
    command
        .args(["--listen", "127.0.0.1:0", "--cooks", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match value {
        Some(value) => command.env("ASYNC_GLOBAL_EXECUTOR_THREADS", value),
        None => command.env_remove("ASYNC_GLOBAL_EXECUTOR_THREADS"),
    };
    let mut server = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BINARY}: {e}"));
    let stderr = server.stderr.take().expect("stderr is piped");
    let mut said = Vec::new();
    // The server says it is listening once the door is open, which is
    // after the runtime has started; if it dies first, stderr ends.
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("the server's stderr");
        let open = line.contains("listening on");
        said.push(line);
        if open {
            break;
        }
    }
    let runtime_threads = settled_runtime_threads(server.id(), expected);
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        said.iter().any(|line| line.contains("listening on")),
        "the server never opened: {said:?}"
    );
    Opened {
        said,
        runtime_threads,
    }
}

/// [`runtime_threads`] once the count is `expected` and has held still
/// for 300 ms, or whatever it is after 5 s: the runtime's threads may
/// still be starting, and naming themselves, when the server says it is
/// listening, and a loaded machine can keep one from running for longer
/// than any short pause. A wrong count still shows, 5 s later.
fn settled_runtime_threads(pid: u32, expected: usize) -> Option<usize> {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = runtime_threads(pid)?;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = runtime_threads(pid)?;
        if now != last {
            (last, since) = (now, Instant::now());
        } else if last == expected
            && since.elapsed() >= Duration::from_millis(300)
        {
            break;
        }
    }
    Some(last)
}

/// The threads of process `pid` named as async-std names its runtime's
/// (Linux keeps 15 bytes of a name: "async-std/runti").
fn runtime_threads(pid: u32) -> Option<usize> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    Some(
        tasks
            .filter_map(Result::ok)
            .filter_map(|task| {
                std::fs::read_to_string(task.path().join("comm")).ok()
            })
            .filter(|name| name.starts_with("async-std/"))
            .count(),
    )
}

/// The lines that carry the model's warning.
fn warnings(opened: &Opened) -> Vec<&String> {
    opened
        .said
        .iter()
        .filter(|line| line.contains("warning: ASYNC_GLOBAL_EXECUTOR_THREADS"))
        .collect()
}

#[test]
fn the_variable_overrides_cooks_and_the_model_says_so() {
    let opened = open_with(Some("1"), 1);
    let warned = warnings(&opened);
    assert_eq!(warned.len(), 1, "one line: {:?}", opened.said);
    assert!(
        warned[0].contains("overrides --cooks 3")
            && warned[0].contains("starts 1 runtime thread"),
        "{warned:?}"
    );
    if let Some(threads) = opened.runtime_threads {
        assert_eq!(threads, 1, "--cooks 3 lost to the variable");
    }
}

#[test]
fn a_value_that_is_not_a_number_changes_nothing_and_says_so() {
    let opened = open_with(Some("many"), 3);
    let warned = warnings(&opened);
    assert_eq!(warned.len(), 1, "one line: {:?}", opened.said);
    assert!(warned[0].contains("ignores it"), "{warned:?}");
    if let Some(threads) = opened.runtime_threads {
        assert_eq!(threads, 3, "--cooks 3 stands");
    }
}

#[test]
fn without_the_variable_there_is_no_warning() {
    let opened = open_with(None, 3);
    assert!(warnings(&opened).is_empty(), "{:?}", opened.said);
    if let Some(threads) = opened.runtime_threads {
        assert_eq!(threads, 3, "--cooks 3");
    }
}

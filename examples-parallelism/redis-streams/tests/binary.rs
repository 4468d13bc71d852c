//! The real binary, as a reader runs it: the checksum on every preset,
//! exit 2 for bad arguments, exit 1 naming the order of a panicking cook,
//! `--listen`; and what is this model's own: the redis-server it starts and
//! stops, `--redis URL`, and exit 2 when redis-server is not installed.

// What the tests of debug builds only use.
#![cfg_attr(not(debug_assertions), allow(unused_imports))]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BINARY, TestRedis, assert_gone, pids, scratch};

#[test]
fn the_binary_honours_the_contract() {
    restaurant::conformance::check_binary(BINARY);
}

/// Runs the binary with `args` and the environment `env`: its exit code,
/// stdout and stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BINARY)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

/// A night starts one redis-server of its own, and it is gone when the
/// binary exits; so are the cooks.
// The pid files are a test hook of debug builds (`src/hooks.rs`).
#[cfg(debug_assertions)]
#[test]
fn a_night_leaves_no_redis_server_and_no_cook_behind() {
    let dir = scratch("night");
    let dir_text = dir.to_string_lossy().into_owned();
    let args = ["--orders", "30", "--time-scale", "100", "--cooks", "2"];
    let (code, _, stderr) = run(&args, &[("REDIS_STREAMS_PIDS", &dir_text)]);
    assert_eq!(code, Some(0), "{stderr}");
    let redis = pids(&dir, "redis");
    assert_eq!(redis.len(), 1, "redis-servers started: {redis:?}");
    let cooks = pids(&dir, "cook");
    assert_eq!(cooks.len(), 2, "cooks started: {cooks:?}");
    // The binary has exited: nothing of it may still run.
    assert_gone(&redis, Duration::from_secs(1), "redis-server");
    assert_gone(&cooks, Duration::from_secs(1), "cooks");
}

/// `--redis URL` uses that server and starts none.
// The pid files are a test hook of debug builds (`src/hooks.rs`).
#[cfg(debug_assertions)]
#[test]
fn redis_url_uses_that_server_and_starts_none() {
    let redis = TestRedis::start("url");
    let dir = scratch("url");
    let dir_text = dir.to_string_lossy().into_owned();
    let url = redis.url();
    let args = [
        "--orders",
        "30",
        "--time-scale",
        "100",
        "--redis",
        &url,
        "--json",
    ];
    let (code, stdout, stderr) =
        run(&args, &[("REDIS_STREAMS_PIDS", &dir_text)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(pids(&dir, "redis").is_empty(), "it started a redis-server");
    assert!(!pids(&dir, "cook").is_empty(), "no cook started");
    // The night ran on our server: its tickets and plates were added
    // there ...
    let mut connection = redis.connection();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection)
        .expect("INFO");
    let xadds = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_xadd:calls="))
        .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok());
    assert!(xadds.is_some_and(|n| n >= 30), "{stats}");
    // ... and it left nothing behind: no stream, no name of a night.
    let left = common::leftovers(&mut connection);
    assert!(left.is_empty(), "left behind: {left:?}");
    redis.stop();
}

#[test]
fn without_redis_server_on_the_path_it_exits_2_saying_how_to_install_it() {
    let (code, stdout, stderr) =
        run(&["--orders", "5"], &[("PATH", "/nonexistent")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("redis-server is not on the PATH"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install redis-server"), "{stderr}");
    assert!(stderr.contains("brew install redis"), "{stderr}");
    // --help still works, and names --redis.
    let (code, stdout, _) = run(&["--help"], &[("PATH", "/nonexistent")]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--redis URL"), "{stdout}");
}

#[test]
fn bad_redis_arguments_exit_2() {
    for (args, named) in [
        (&["--redis"][..], "--redis needs a URL"),
        (&["--redis", "http://example"], "--redis <URL>"),
        (&["--cook"], "a cook needs --redis"),
        (
            &["--cook", "--redis", "redis://127.0.0.1:1", "--orders", "3"],
            "'--orders'",
        ),
    ] {
        let (code, stdout, stderr) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?} should exit 2: {stderr}");
        assert!(stdout.is_empty(), "{args:?} printed {stdout}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

/// The shared probe counts the threads of the server's children: the
/// cook processes and the redis-server show in `peak_threads`.
#[cfg(target_os = "linux")]
#[test]
fn cook_processes_count_in_peak_threads() {
    let args = ["--time-scale", "10", "--cooks", "3"];
    let report = restaurant::conformance::report_of(BINARY, &args);
    let peak = report.peak_threads.expect("Linux counts threads");
    // Each cook has two threads at least (its loop and its heartbeat).
    assert!(peak >= 6, "{peak} threads at peak for 3 cooks");
}

/// A terminal's Ctrl-C reaches the whole foreground group (checked with
/// the contract, `check_binary`): neither the redis-server the run
/// started nor a cook may die of it while the server finishes the orders
/// in. Here, a night whose orders outlast the drain: stopped at its end,
/// naming the orders, with redis-server and every cook gone with it.
#[cfg(target_os = "linux")]
#[test]
fn a_drain_that_outlasts_its_deadline_stops_redis_and_the_cooks() {
    restaurant::conformance::check_a_stopped_drain(BINARY);
}

/// A cook started by hand names the Redis it lost, and where, when that
/// Redis goes away under it, and exits 1; one that cannot reach it at all
/// says so.
#[test]
fn a_remote_cook_names_the_redis_that_went_away() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    use std::time::Instant;

    let redis = TestRedis::start("cook-loses-redis");
    let url = redis.url();
    let child = Command::new(BINARY)
        .args(["--cook", "--redis", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut cook = common::Killed(child);
    let mut stderr =
        BufReader::new(cook.0.stderr.take().expect("stderr is piped"));
    // "… no night open at URL yet: waiting for one; Ctrl-C to leave"
    let mut waiting = String::new();
    let _ = stderr.read_line(&mut waiting);
    assert!(waiting.contains("waiting for one"), "{waiting}");
    redis.stop();
    let began = Instant::now();
    let limit = Duration::from_secs(10);
    let status = loop {
        if let Some(status) = cook.0.try_wait().expect("waitpid") {
            break status;
        }
        assert!(began.elapsed() < limit, "the cook outlived its Redis");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut said = String::new();
    let _ = stderr.read_to_string(&mut said);
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("Redis at {url} went away")),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");

    // A port nobody listens on: taken, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let (code, _, said) = run(&["--cook", "--redis", &url], &[]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!("cannot reach Redis at {url}")),
        "{said}"
    );
}

//! How `--cooks` reaches async-std's runtime, and what stays behind: the
//! caller (the door), `--cooks` runtime threads and async-io's helper; the
//! runtime's threads still there after `serve` has returned; and what
//! sharing them with the cooks costs a customer at the door.
//!
//! The runtime is sized once per process, by the first `serve`: every test
//! here that serves in this process asks for the same [`THREADS`].

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use concurrency_async_std::MODEL;
use restaurant::conformance::{Server, scaled_workload, thread_names};
use restaurant::wire::{self, Reply};
use restaurant::{Preset, Step, Work, verify};

/// Runtime threads for the tests that serve in this process: fewer than
/// the cores of any machine with two or more, so that the default (one per
/// core) would show.
const THREADS: usize = 1;

#[test]
fn cooks_sets_the_runtime_threads_over_the_environment() {
    let path = env!("CARGO_BIN_EXE_concurrency-async-std");
    let args = ["--cooks", "3", "--time-scale", "100", "--json"];
    // A variable already in the environment loses to `--cooks`.
    let out = Command::new(path)
        .args(args)
        .env("ASYNC_STD_THREAD_COUNT", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{path} {args:?} failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{path} {args:?}: bad JSON ({e})"));
    if cfg!(target_os = "linux") {
        // The caller, three runtime threads, and `async-io`.
        assert_eq!(report["peak_threads"].as_u64(), Some(5), "{report}");
    }
}

#[test]
fn the_runtime_threads_outlive_serve() {
    let server = Server::start(&MODEL, THREADS).expect("the model opens");
    let workload = scaled_workload(Preset::LunchRush, 64, 1);
    let night = server.customers(&workload).expect("a night served");
    let checksum = verify(&workload, &night).expect("a verified night");
    assert_eq!(checksum, workload.expected_checksum());
    server.finish().expect("serve returns");
    if cfg!(target_os = "linux") {
        // Linux keeps 15 bytes of a thread's name: "async-std/runti".
        let runtime = thread_names()
            .into_iter()
            .filter(|name| name.starts_with("async-std/"))
            .count();
        // The first `serve` in this process chose; nothing stops them.
        assert_eq!(runtime, THREADS, "{:?}", thread_names());
    }
}

/// Reads one line from the restaurant and parses it.
fn hear(reader: &mut BufReader<TcpStream>) -> Reply {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("a line from the restaurant");
    wire::parse_reply(&line).unwrap_or_else(|| panic!("heard {line:?}"))
}

#[test]
fn customers_wait_for_a_runtime_thread_that_chops() {
    // About 300 ms of one core (a unit is about a microsecond).
    const CHOP: u32 = 300_000;
    // Every runtime thread will be chopping.
    let server = Server::start(&MODEL, THREADS).expect("the model opens");

    let first = TcpStream::connect(server.door()).expect("connect");
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut heard = BufReader::new(first.try_clone().unwrap());
    assert_eq!(hear(&mut heard), Reply::Next);
    let order = wire::order_line(1, "cake", 0, &[Step::Chop(Work(CHOP))]);
    (&first).write_all(order.as_bytes()).unwrap();
    assert_eq!(hear(&mut heard), Reply::Rung(1));
    // RUNG is written just before the cook is handed the ticket: give the
    // cook a moment to start, so that the chop is under way.
    std::thread::sleep(Duration::from_millis(50));

    // The door itself is on the caller's thread and accepts at once; the
    // greeting is a task, and every runtime thread is busy.
    let second = TcpStream::connect(server.door()).expect("connect");
    second
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut greeted = BufReader::new(second);
    let walked_in = Instant::now();
    assert_eq!(hear(&mut greeted), Reply::Next);
    let door_wait = walked_in.elapsed();

    assert!(matches!(hear(&mut heard), Reply::Plate(1, _)));
    // What was left of the chop when the second customer walked in, timed
    // from the same moment as their wait.
    let rest_of_chop = walked_in.elapsed();
    drop((first, greeted));
    server.finish().expect("closes");

    // Greeted only once the chop was over: customers and cooks share the
    // runtime's threads, as in every executor's model here.
    //
    // Both measures start when the second customer walked in, so this
    // thread's own lateness (its 50 ms nap overslept on a loaded machine)
    // is in neither. The greeting is read just before the plate, so the
    // wait falls short of the rest of the chop only by the moment between
    // the two reads; half is the margin for this thread being stopped
    // there. A loop that greets while a cook chops takes well under a
    // millisecond, against the hundreds left of the chop.
    assert!(
        door_wait >= rest_of_chop / 2,
        "greeted after {door_wait:?}, while the chop went on for \
         {rest_of_chop:?} after they walked in"
    );
}

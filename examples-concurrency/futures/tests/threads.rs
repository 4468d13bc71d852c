//! The threads this model runs: the caller (the door, in `block_on`),
//! `--cooks` pool threads and async-io's helper; the pool's threads gone
//! once `serve` has returned; and what sharing the pool between customers
//! and cooks costs a customer at the door.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use concurrency_futures::MODEL;
use restaurant::conformance::{
    Server, report_of, scaled_workload, thread_names,
};
use restaurant::wire::{self, Reply};
use restaurant::{Preset, Step, Work, verify};

#[test]
fn the_service_runs_on_cooks_plus_two_threads() {
    let path = env!("CARGO_BIN_EXE_concurrency-futures");
    let report = report_of(path, &["--cooks", "3", "--time-scale", "100"]);
    if cfg!(target_os = "linux") {
        // The caller, three pool threads, and the `async-io` thread.
        assert_eq!(report.peak_threads, Some(5), "{report:?}");
    }
}

#[test]
fn the_pool_threads_leave_after_serve() {
    let server = Server::start(&MODEL, 3).expect("the model opens");
    let workload = scaled_workload(Preset::LunchRush, 64, 1);
    let night = server.customers(&workload).expect("a night served");
    let checksum = verify(&workload, &night).expect("a verified night");
    assert_eq!(checksum, workload.expected_checksum());
    server.finish().expect("serve returns");
    // `serve` waited for each thread's goodbye (`before_stop`); the thread
    // itself ends a moment later. The limit is generous: the machine is
    // shared, and only a thread that never leaves should fail this.
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        let cooks: Vec<_> = thread_names()
            .into_iter()
            .filter(|name| name.starts_with("cook-"))
            .collect();
        if cooks.is_empty() {
            break;
        }
        assert!(Instant::now() < limit, "still running: {cooks:?}");
        std::thread::sleep(Duration::from_millis(1));
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
fn customers_wait_for_a_pool_thread_that_chops() {
    // About 300 ms of one core (a unit is about a microsecond).
    const CHOP: u32 = 300_000;
    // One pool thread, and it will be chopping.
    let server = Server::start(&MODEL, 1).expect("the model opens");

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
    // greeting is a task, and the only pool thread is busy.
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
    // pool's threads, as in tokio's model.
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

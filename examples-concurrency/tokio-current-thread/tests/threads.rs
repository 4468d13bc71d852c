//! The point of this model: the whole service runs on one thread. The
//! binary's own report says how many threads the service had at most
//! (`peak_threads`, with the measuring threads left out), and here it must
//! be one. And its price: while a cook chops, nobody else is attended, not
//! even a customer at the door.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use concurrency_tokio_current_thread::MODEL;
use restaurant::conformance::{Server, report_of};
use restaurant::wire::{self, Reply};
use restaurant::{Step, Work};

#[test]
fn the_service_runs_on_one_thread() {
    let path = env!("CARGO_BIN_EXE_concurrency-tokio-current-thread");
    let args = ["--preset", "lunch-rush", "--time-scale", "100"];
    let report = report_of(path, &args);
    let peak = report.peak_threads;
    if cfg!(target_os = "linux") {
        // Linux counts threads in /proc; the figure is exact.
        assert_eq!(peak, Some(1), "{path} {args:?}: {report:?}");
    } else {
        // Elsewhere the OS gives no figure and the report says `null`.
        assert!(matches!(peak, None | Some(1)), "{report:?}");
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
fn a_long_chop_holds_the_door() {
    // About 300 ms of one core (a unit is about a microsecond).
    const CHOP: u32 = 300_000;
    let server = Server::start(&MODEL, 1).expect("the model opens");

    // The first customer orders a single long chop and is rung up.
    let first = TcpStream::connect(server.door()).expect("connect");
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut heard = BufReader::new(first.try_clone().unwrap());
    assert_eq!(hear(&mut heard), Reply::Next);
    let order = wire::order_line(1, "cake", 0, &[Step::Chop(Work(CHOP))]);
    (&first).write_all(order.as_bytes()).unwrap();
    assert_eq!(hear(&mut heard), Reply::Rung(1));
    let rung = Instant::now();
    // RUNG is written just before the cook is handed the ticket: give the
    // cook a moment to start, so that the chop is under way.
    std::thread::sleep(Duration::from_millis(50));

    // A second customer walks in now; the kernel completes the
    // handshake, but nobody is free to greet.
    let second = TcpStream::connect(server.door()).expect("connect");
    second
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut greeted = BufReader::new(second);
    let walked_in = Instant::now();
    assert_eq!(hear(&mut greeted), Reply::Next);
    let door_wait = walked_in.elapsed();

    assert!(matches!(hear(&mut heard), Reply::Plate(1, _)));
    let chop = rung.elapsed();
    drop((first, greeted));
    server.finish().expect("closes");

    // The second customer was greeted only once the chop was over. (On a
    // multi-thread runtime, a worker that is not chopping greets them at
    // once.)
    assert!(
        door_wait >= chop / 2,
        "greeted after {door_wait:?}, while the chop took {chop:?}"
    );
}

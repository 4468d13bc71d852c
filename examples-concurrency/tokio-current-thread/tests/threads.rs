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
    // What was left of the chop when the second customer walked in, timed
    // from the same moment as their wait.
    let rest_of_chop = walked_in.elapsed();
    drop((first, greeted));
    server.finish().expect("closes");

    // The second customer was greeted only once the chop was over. (On a
    // multi-thread runtime, a worker that is not chopping greets them at
    // once.)
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

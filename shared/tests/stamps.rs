//! The customers measure the restaurant, not themselves: with the kernel's
//! receive stamps, a customers' process stopped for 300 ms mid-night dates
//! every `NEXT` and `PLATE` that arrived during the stop when it arrived,
//! so the stop is in nobody's counter wait or kitchen time. With read
//! times, each of those replies is dated when the process could read it
//! again, and the stop goes into the waits.
//!
//! The restaurant here is a small one written for the test: a thread per
//! customer, nothing chopped (the plate's digest is computed), each simmer
//! slept, and slow on purpose ([`DAWDLE`] before each reply), so that at
//! any moment dozens of customers wait for a `NEXT` or a `PLATE` and the
//! stop finds both kinds; it notes on the wall clock when it wrote each
//! reply. Each test
//! compares, within one stopped night, when a reply was written with when
//! the customers dated it, for the replies written early in the stop.
//! Both are read on this machine's clock, so neither a loaded machine nor
//! a second night's different noise comes into it: a stamp falls within
//! a few milliseconds of the write whatever the load (the kernel stamps
//! the segment as the write delivers it over loopback), and a read time
//! comes after the stop whatever the load (a stopped process reads
//! nothing). (An earlier version compared each customer's waits with a
//! night that was not stopped, to within a millisecond; on a loaded
//! two-core machine the two nights differed by up to 370 ms for reasons
//! of their own.)

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use restaurant::customers::Visit;
use restaurant::wire::{self, Heard};
use serde::Deserialize;

/// How long the customers' process is stopped.
const STOP: Duration = Duration::from_millis(300);

/// Plates served before the stop: the night is well under way, with
/// customers waiting for replies, whatever the machine's load.
const SERVED_BEFORE_STOP: usize = 50;

/// How long the restaurant dawdles before greeting a customer, and again
/// before serving a plate (beyond the simmer): with a customer walking in
/// every 2 ms, about 25 customers wait for each kind of reply at any
/// moment.
const DAWDLE: Duration = Duration::from_millis(50);

/// The replies that count: written from [`SETTLE`] after the stop began
/// (the process is surely stopped by then) until half the stop (so that
/// at least half the stop is left after them).
const SETTLE: Duration = Duration::from_millis(5);

/// The most a kernel stamp may fall from its reply's write: a tenth of
/// the stop. The stamp is taken as the write delivers the segment, within
/// microseconds; the margin is for the two processes' clocks being lined
/// up (each pairs its own clock with the wall clock) and for a loaded
/// machine deferring the delivery.
const STAMPED_WITHIN: Duration = Duration::from_millis(30);

/// The least a read time must fall after its reply's write: a third of
/// the stop. A reply written in the first half of the stop is read at
/// least half a stop later; the margin is for lining the clocks up.
const READ_AFTER: Duration = Duration::from_millis(100);

/// When the restaurant wrote each customer's `NEXT` and `PLATE`, in
/// seconds since the Unix epoch: (order id, `NEXT`, `PLATE`).
type Written = Arc<Mutex<Vec<(u64, f64, f64)>>>;

/// A restaurant that cooks nothing and sleeps through each simmer, a
/// thread per customer, noting when it wrote each reply. Stops accepting
/// when `stop` is set (and a last connection knocks).
fn restaurant(
    stop: Arc<AtomicBool>,
    written: Written,
) -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let door = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let written = Arc::clone(&written);
            thread::spawn(move || attend(stream, &written));
        }
    });
    (door, server)
}

fn attend(mut stream: TcpStream, written: &Mutex<Vec<(u64, f64, f64)>>) {
    first_in_line();
    let _ = (|| -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        thread::sleep(DAWDLE);
        stream.write_all(wire::NEXT.as_bytes())?;
        let greeted = unix_now();
        let mut line = String::new();
        let read = BufReader::new(&stream).read_line(&mut line);
        let Heard::Order(ticket) = wire::heard(read, &line) else {
            return Ok(());
        };
        stream.write_all(wire::rung_line(ticket.id()).as_bytes())?;
        let simmer: Duration = ticket
            .steps()
            .iter()
            .map(|step| match *step {
                restaurant::Step::Simmer(d) => d,
                restaurant::Step::Chop(_) => Duration::ZERO,
            })
            .sum();
        thread::sleep(DAWDLE + simmer);
        stream.write_all(restaurant::null::plate_for(&ticket).as_bytes())?;
        let plated = unix_now();
        written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((ticket.id(), greeted, plated));
        Ok(())
    })();
}

/// Runs this thread before ordinary ones where allowed (root), as the
/// customers' pacer does, so that the restaurant keeps replying while
/// other work loads the machine. Without the privilege it is an ordinary
/// thread: the replies come later, and each is still compared with its
/// own write.
fn first_in_line() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler(2) on the calling thread with a valid
    // parameter; it reads `param` and nothing else of ours.
    #[allow(unsafe_code)]
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
    }
}

#[derive(Debug, Deserialize)]
struct Visits {
    opened_unix_s: f64,
    stamps: String,
    visits: Vec<Visit>,
}

fn customers(door: SocketAddr, file: &Path, stamps: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_customers"))
        .args(["--connect", &door.to_string()])
        .args(["--preset", "lunch-rush", "--orders", "600", "--seed", "3"])
        .args(["--stamps", stamps, "--json", "--visits"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One reply written early in the stop: which, and how long after its
/// write the customers dated it (negative if before).
#[derive(Debug)]
struct Dated {
    order: u64,
    reply: &'static str,
    after_write: f64,
}

/// One night with the customers' process stopped for [`STOP`] once
/// [`SERVED_BEFORE_STOP`] plates are out; returns every reply written
/// early in the stop, as the customers dated it.
fn stopped_night(stamps: &str) -> Vec<Dated> {
    // One night at a time: two at once would load each other.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let closing = Arc::new(AtomicBool::new(false));
    let written = Written::default();
    let (door, server) = restaurant(Arc::clone(&closing), Arc::clone(&written));
    let file = std::env::temp_dir()
        .join(format!("stamps-{}-{stamps}.json", std::process::id()));
    let mut child = customers(door, &file, stamps);

    // Mid-night, by what was served rather than by the clock: a slow
    // machine starts the customers late, and the stop must still come
    // while customers wait for replies. (A stop standing for a busy
    // machine, not a join.)
    let began = Instant::now();
    while written.lock().unwrap_or_else(PoisonError::into_inner).len()
        < SERVED_BEFORE_STOP
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{SERVED_BEFORE_STOP} plates not served within a minute"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the customers ended before the stop"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let from = unix_now();
    thread::sleep(STOP);
    kill(pid, Signal::SIGCONT).unwrap();

    let status = child.wait().unwrap();
    closing.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(door);
    server.join().unwrap();
    assert!(status.success(), "the customers failed: {status}");
    let night: Visits =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(night.stamps, stamps, "the night used the stamps asked for");

    let early =
        (from + SETTLE.as_secs_f64())..(from + STOP.as_secs_f64() / 2.0);
    let dated = |at: Option<Duration>| {
        night.opened_unix_s + at.expect("every reply came").as_secs_f64()
    };
    let written = written.lock().unwrap_or_else(PoisonError::into_inner);
    let mut replies = Vec::new();
    for &(order, greeted, plated) in written.iter() {
        let visit = &night.visits[order as usize];
        for (reply, wrote, came) in [
            ("NEXT", greeted, visit.greeted),
            ("PLATE", plated, visit.plated),
        ] {
            if early.contains(&wrote) {
                replies.push(Dated {
                    order,
                    reply,
                    after_write: dated(came) - wrote,
                });
            }
        }
    }
    // Customers walked in and ordered until the stop, and the restaurant,
    // dawdling, kept replying during it: both kinds of reply are here.
    for kind in ["NEXT", "PLATE"] {
        assert!(
            replies.iter().any(|dated| dated.reply == kind),
            "no {kind} written early in the stop: {replies:?}"
        );
    }
    replies
}

/// The reply dated furthest from its write, in seconds, either way.
fn furthest(replies: &[Dated]) -> &Dated {
    replies
        .iter()
        .max_by(|a, b| a.after_write.abs().total_cmp(&b.after_write.abs()))
        .expect("replies")
}

/// The reply dated soonest after its write.
fn soonest(replies: &[Dated]) -> &Dated {
    replies
        .iter()
        .min_by(|a, b| a.after_write.total_cmp(&b.after_write))
        .expect("replies")
}

#[test]
fn kernel_stamps_leave_the_customers_own_stop_out() {
    let replies = stopped_night("kernel");
    let worst = furthest(&replies);
    eprintln!(
        "kernel stamps: {} replies written early in the stop, the furthest \
         dated {:.3} ms from its write",
        replies.len(),
        worst.after_write * 1e3
    );
    // Dated when they arrived, during the stop, not when read after it.
    assert!(
        worst.after_write.abs() < STAMPED_WITHIN.as_secs_f64(),
        "{} of order {} dated {:.1} ms after it was written, the \
         customers stopped: {replies:?}",
        worst.reply,
        worst.order,
        worst.after_write * 1e3
    );
}

#[test]
fn read_times_put_the_stop_into_the_waits() {
    let replies = stopped_night("read");
    let first = soonest(&replies);
    eprintln!(
        "read times: {} replies written early in the stop, the soonest \
         dated {:.1} ms after its write",
        replies.len(),
        first.after_write * 1e3
    );
    // Read only once the process ran again: the rest of the stop is in
    // each of those waits.
    assert!(
        first.after_write >= READ_AFTER.as_secs_f64(),
        "{} of order {} dated only {:.1} ms after it was written, in a \
         {STOP:?} stop",
        first.reply,
        first.order,
        first.after_write * 1e3
    );
}

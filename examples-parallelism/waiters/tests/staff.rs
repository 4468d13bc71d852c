//! The waiters themselves: a night served by one waiter and by seven
//! (`Shift::with_waiters`), every waiter really at the door and every one
//! gone home after closing time, even when none had anyone to serve; and
//! the lesson of `slow-talkers`, that several waiters keep up where one
//! falls behind.
//!
//! In a file of its own, and one test at a time (`SERIAL`), so that the
//! threads it counts by name are this file's, and its one timing
//! comparison does not share the machine with the others.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use parallelism_waiters::serve;
use restaurant::conformance::{TIME_LIMIT, scaled_workload, thread_names};
use restaurant::customers::{self, Night};
use restaurant::{Preset, Shift, Workload, door, verify};

static SERIAL: Mutex<()> = Mutex::new(());

/// Waits until exactly `expected` threads named `waiter-…` are alive in
/// this process, and panics naming `when` if that is not so within five
/// seconds. A thread names itself as it starts, and leaves
/// `/proc/self/task` a moment after `join` returns, so the count is
/// awaited, not read once. Off Linux, where threads cannot be counted by
/// name, it checks nothing.
fn expect_waiters_alive(expected: usize, when: &str) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let count = || {
        thread_names()
            .iter()
            .filter(|name| name.starts_with("waiter-"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut alive = count();
    while alive != expected && Instant::now() < deadline {
        thread::yield_now();
        alive = count();
    }
    assert_eq!(alive, expected, "waiter threads {when}");
}

/// Serves `workload` with `waiters` waiters and `cooks` cooks, in this
/// process; checks every waiter is at the door while open and gone once
/// `serve` returns, and that it returns within the kit's time limit of
/// closing time. Returns the customers' night.
fn night(workload: &Workload, waiters: usize, cooks: usize) -> Night {
    let listener = door::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("a loopback port");
    let door = listener.local_addr().expect("the door's address");
    let shift = Shift::new(door).with_waiters(waiters);
    let (done, served) = mpsc::channel();
    let server_shift = shift.clone();
    let server = thread::spawn(move || {
        let outcome = serve(listener, cooks, server_shift);
        let _ = done.send(outcome.map_err(|e| e.to_string()));
    });
    assert!(shift.wait_opened(TIME_LIMIT), "serve never opened");
    // `open` comes after the last waiter was started.
    expect_waiters_alive(waiters, "once open");

    let stop = AtomicBool::new(false);
    let closer = shift.clone();
    let night = customers::visit(workload, door, &stop, || closer.close())
        .expect("the customers' night");
    // With no customers, nobody closed yet: close now, with every waiter
    // blocked in `accept` and a single knock from the shift.
    shift.close();
    let closed = Instant::now();
    match served.recv_timeout(TIME_LIMIT) {
        Ok(outcome) => outcome.expect("serve returns Ok"),
        Err(_) => panic!(
            "{waiters} waiters: serve did not return within {TIME_LIMIT:?} \
             of closing time (a waiter left blocked in accept?)"
        ),
    }
    server.join().expect("the server's thread");
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "{waiters} waiters took {:?} to go home",
        closed.elapsed()
    );
    expect_waiters_alive(0, "after serve returned");
    night
}

/// Serves and verifies `workload`: every order once, the right checksum.
fn served_right(workload: &Workload, waiters: usize, cooks: usize) -> Night {
    let night = night(workload, waiters, cooks);
    let sum = verify(workload, &night).unwrap_or_else(|e| {
        panic!(
            "{waiters} waiters, {cooks} cooks, {}: {e}",
            workload.preset()
        )
    });
    assert_eq!(sum, workload.expected_checksum(), "{waiters} waiters");
    night
}

#[test]
fn one_waiter_or_seven_serve_every_order_and_all_go_home() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    for waiters in [1, 7] {
        for preset in [Preset::SlowTalkers, Preset::LunchRush] {
            for orders in [0, 1, 40] {
                let workload = scaled_workload(preset, orders, 4);
                served_right(&workload, waiters, 3);
            }
        }
    }
}

/// More waiters than customers, more waiters than cooks: nothing changes
/// but the idle threads.
#[test]
fn many_waiters_few_cooks() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let workload = scaled_workload(Preset::LunchRush, 7, 5);
    served_right(&workload, 16, 1);
}

/// The median counter wait (greeted − walked in) of a night.
fn counter_wait_p50(night: &Night) -> Duration {
    let mut waits: Vec<Duration> = night
        .visits
        .iter()
        .filter_map(|v| Some(v.greeted? - v.walked_in?))
        .collect();
    assert!(!waits.is_empty(), "nobody was greeted");
    waits.sort();
    waits[waits.len() / 2]
}

/// `slow-talkers` in real time: a customer every 10 ms who talks for
/// 10–50 ms. One waiter listens to one at a time and the queue at the door
/// grows all night; four keep up. The margin is wide: four waiters must
/// greet at least five times sooner at the median.
#[test]
fn several_waiters_keep_up_with_slow_talkers() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let workload = Workload::generate(Preset::SlowTalkers, 40, 6);
    let one = counter_wait_p50(&served_right(&workload, 1, 3));
    let four = counter_wait_p50(&served_right(&workload, 4, 3));
    assert!(
        four * 5 < one,
        "counter wait p50: one waiter {one:?}, four waiters {four:?}"
    );
}

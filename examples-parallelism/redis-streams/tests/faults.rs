//! Faults only a kitchen on a broker has, each made to happen on cue by
//! the cooks' test hooks (`src/hooks.rs`): a cook killed mid-order, an
//! order that kills every cook that takes it, malformed entries on both
//! streams, cooks that join from outside, the redis-server killed mid-run,
//! the server killed outright. Every night must end within a time limit,
//! with the result the documented policy promises, every customer
//! answered, and no process left behind.

// The cooks' fault hooks exist in debug builds only (`src/hooks.rs`):
// under `cargo test --release` there is nothing here to test.
#![cfg(debug_assertions)]
// Killing processes by pid and reading /proc: Linux only.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    BINARY, Killed, TestRedis, assert_gone, kill, kitchen, leftovers, pids,
    scratch, wait_for_pid,
};
use parallelism_redis_streams::{MODEL, broker, serve_with};
use redis::Commands;
use restaurant::conformance::{Server, scaled_workload};
use restaurant::customers::{Night, Visit};
use restaurant::{Model, Preset, Workload, verify};

/// Far below the minute a stalled cook waits: a night that beats it did
/// not wait the stall out.
const LIMIT: Duration = Duration::from_secs(30);

/// What came of one night.
#[derive(Debug)]
struct Outcome {
    night: Night,
    faults: Vec<String>,
    served: Result<(), String>,
}

/// Serves `workload` with `model` on a loopback port, closing once every
/// customer is rung up or turned away. The kit bounds every wait.
fn night(model: &Model, cooks: usize, workload: &Workload) -> Outcome {
    let server = Server::start(model, cooks).unwrap_or_else(|e| panic!("{e}"));
    let night = server
        .customers(workload)
        .unwrap_or_else(|e| panic!("the customers: {e}"));
    let faults = server.shift().faults();
    let served = server.finish();
    Outcome {
        night,
        faults,
        served,
    }
}

fn assert_verified(workload: &Workload, night: &Night) {
    let checksum = verify(workload, night).expect("every plate checks");
    assert_eq!(checksum, workload.expected_checksum());
}

fn assert_served(night: &Night, ids: impl IntoIterator<Item = usize>) {
    for id in ids {
        let visit: &Visit = &night.visits[id];
        assert!(
            visit.digest.is_some() && visit.trouble.is_none(),
            "order {id} was not served: {visit:?}"
        );
    }
}

#[test]
fn a_cook_killed_mid_order_loses_nothing() {
    let redis = TestRedis::start("kill");
    let dir = scratch("kill");
    // The cook handed order 10 writes its pid, then waits a minute before
    // cooking, its heartbeat beating: certainly alive and mid-order when
    // it is killed. After that its ticket goes idle, and the other cook
    // claims it.
    let model = Model {
        serve: |listener, cooks, shift| {
            let kitchen = kitchen("kill")
                .env(
                    "REDIS_STREAMS_PIDS",
                    common::pid_dir("kill").to_string_lossy(),
                )
                .env("REDIS_COOK_STALL_ON", "10");
            serve_with(&kitchen, listener, cooks, shift)
        },
        ..MODEL
    };
    let workload = scaled_workload(Preset::LunchRush, 64, 1);
    let began = Instant::now();
    let outcome = thread::scope(|scope| {
        scope.spawn(|| kill(wait_for_pid(&dir.join("stalled"), LIMIT)));
        night(&model, 2, &workload)
    });
    outcome.served.expect("a killed cook costs no order");
    assert_verified(&workload, &outcome.night);
    assert!(outcome.faults.is_empty(), "{:?}", outcome.faults);
    assert!(began.elapsed() < LIMIT, "the stall was waited out");
    // The two cooks and the one started in place of the killed one.
    let cooks = pids(&dir, "cook");
    assert_eq!(cooks.len(), 3, "cooks started: {cooks:?}");
    assert_gone(&cooks, Duration::from_secs(1), "cooks");
    // The night closed: its streams, the group and its pending list, are
    // gone from the Redis, and so is its name.
    let left = leftovers(&mut redis.connection());
    assert!(left.is_empty(), "left behind: {left:?}");
    redis.stop();
}

#[test]
fn an_order_that_kills_its_cooks_is_given_up_and_named() {
    let redis = TestRedis::start("poison");
    let dir = scratch("poison");
    // Every cook aborts on order 3. It is delivered, claimed and claimed
    // again, killing three cooks, and the fourth cook to take it gives it
    // up. Claims come after 200 ms idle, not a second, to keep it short.
    let model = Model {
        serve: |listener, cooks, shift| {
            let kitchen = kitchen("poison")
                .env(
                    "REDIS_STREAMS_PIDS",
                    common::pid_dir("poison").to_string_lossy(),
                )
                .env("REDIS_COOK_ABORT_ON", "3")
                .env("REDIS_COOK_CLAIM_IDLE_MS", "200");
            serve_with(&kitchen, listener, cooks, shift)
        },
        ..MODEL
    };
    let outcome = night(&model, 2, &scaled_workload(Preset::LunchRush, 7, 1));
    let error = outcome.served.expect_err("order 3 cannot be served");
    assert!(
        error.contains("orders lost: order 3 (delivered 4 times"),
        "{error}"
    );
    assert!(!error.contains("order 4"), "only order 3 is lost: {error}");
    let visit = &outcome.night.visits[3];
    assert!(
        visit.digest.is_none()
            && visit
                .trouble
                .as_deref()
                .is_some_and(|t| t.contains("turned away")),
        "order 3 should be turned away: {visit:?}"
    );
    assert_served(&outcome.night, (0..7).filter(|&id| id != 3));
    // Two cooks, and one in place of each of the three that died.
    let cooks = pids(&dir, "cook");
    assert_eq!(cooks.len(), 5, "cooks started: {cooks:?}");
    assert_gone(&cooks, Duration::from_secs(1), "cooks");
    redis.stop();
}

#[test]
fn malformed_entries_are_dead_lettered_and_the_night_verifies() {
    let redis = TestRedis::start("garbage");
    let model = Model {
        serve: |listener, cooks, shift| {
            serve_with(&kitchen("garbage"), listener, cooks, shift)
        },
        ..MODEL
    };
    let workload = scaled_workload(Preset::LunchRush, 64, 2);
    let server = Server::start(&model, 2).unwrap_or_else(|e| panic!("{e}"));
    // Someone else writes to both streams of the night, which they find
    // as a cook started by hand does: a ticket that is not JSON, one with
    // no `order` field, and a plate that is no plate.
    let mut connection = redis.connection();
    let tonight = broker::tonight(&mut connection)
        .expect("GET")
        .expect("the open night is named");
    let (tickets, plates) = (tonight.tickets(), tonight.plates());
    let _: String = connection
        .xadd(tickets, "*", &[("order", "{not json")])
        .expect("XADD");
    let _: String = connection
        .xadd(tickets, "*", &[("spam", "eggs")])
        .expect("XADD");
    let _: String = connection
        .xadd(plates, "*", &[("plate", "42")])
        .expect("XADD");
    let night = server.customers(&workload).expect("the customers");
    assert!(server.shift().faults().is_empty());
    server
        .finish()
        .expect("garbage is no reason to fail a night");
    assert_verified(&workload, &night);

    let dead: redis::streams::StreamRangeReply = connection
        .xrange_all(tonight.dead_letters())
        .expect("XRANGE");
    let stream_of = |e: &redis::streams::StreamId| e.get::<String>("stream");
    let bad_tickets = dead
        .ids
        .iter()
        .filter(|e| stream_of(e).as_deref() == Some(tickets));
    assert_eq!(bad_tickets.count(), 2, "{dead:?}");
    let bad_plates: Vec<_> = dead
        .ids
        .iter()
        .filter(|e| stream_of(e).as_deref() == Some(plates))
        .collect();
    assert_eq!(bad_plates.len(), 1, "{dead:?}");
    let why: String = bad_plates[0].get("why").unwrap_or_default();
    assert!(why.contains("not a plate"), "{why}");
    // The dead letters outlive the night, for a day, not for ever.
    let ttl: i64 = connection.ttl(tonight.dead_letters()).expect("TTL");
    let day = broker::DEAD_LETTERS_TTL.as_secs() as i64;
    assert!((day - 60..=day).contains(&ttl), "TTL {ttl}");
    // Everything else of the night is gone.
    let left = leftovers(&mut connection);
    assert!(left.is_empty(), "left behind: {left:?}");
    redis.stop();
}

/// Cooks started by hand (`--cook --redis URL`), as on another machine,
/// with no cook of the server's own: they serve a night, then, still
/// running, a second night on the same Redis, whose opening makes the
/// streams anew under their blocked reads.
#[test]
fn cooks_that_join_from_outside_serve_night_after_night() {
    let redis = TestRedis::start("remote");
    let dir = scratch("remote");
    let url = redis.url();
    let cooks: Vec<Killed> = (0..2)
        .map(|_| {
            let child = Command::new(BINARY)
                .args(["--cook", "--redis", &url])
                .env("REDIS_STREAMS_PIDS", &dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the binary runs");
            Killed(child)
        })
        .collect();
    // No local cook: every plate comes from the cooks above.
    let model = Model {
        serve: |listener, _cooks, shift| {
            serve_with(&kitchen("remote"), listener, 0, shift)
        },
        ..MODEL
    };
    for seed in [1, 2] {
        let workload = scaled_workload(Preset::Banquet, 40, seed);
        let outcome = night(&model, 1, &workload);
        outcome.served.expect("the remote cooks serve");
        assert_verified(&workload, &outcome.night);
    }
    let mut cooks = cooks;
    for cook in &mut cooks {
        assert!(
            matches!(cook.0.try_wait(), Ok(None)),
            "a remote cook ended between nights"
        );
    }
    drop(cooks);
    redis.stop();
}

/// The binary's door, from the first line of its stderr under --listen.
fn door_of(server: &mut Killed) -> SocketAddr {
    let stderr = server.0.stderr.take().expect("stderr is piped");
    let mut line = String::new();
    let _ = BufReader::new(stderr).read_line(&mut line);
    line.split_once("listening on ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// A night of 40 orders with two cooks whose cook of order 5 stalls, its
/// pids written to `dir`, with `env` besides; returns the server and a
/// thread that collects its stderr.
fn stalled_night(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Killed, thread::JoinHandle<String>) {
    let child = Command::new(BINARY)
        .args(["--orders", "40", "--time-scale", "20", "--cooks", "2"])
        .env("REDIS_STREAMS_PIDS", dir)
        .env("REDIS_COOK_STALL_ON", "5")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut server = Killed(child);
    let mut stderr = server.0.stderr.take().expect("stderr is piped");
    let said = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    (server, said)
}

#[test]
fn a_redis_server_killed_mid_run_ends_the_night_naming_the_orders() {
    let dir = scratch("redis-dies");
    // Order 5's cook stalls: orders are certainly in flight.
    let (mut server, said) = stalled_night(&dir, &[]);
    let mut stdout = server.0.stdout.take().expect("stdout is piped");
    wait_for_pid(&dir.join("stalled"), LIMIT);
    let redis = pids(&dir, "redis");
    assert_eq!(redis.len(), 1, "{redis:?}");
    kill(redis[0]);
    let began = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("waitpid") {
            break status;
        }
        assert!(began.elapsed() < LIMIT, "it did not end within {LIMIT:?}");
        thread::sleep(Duration::from_millis(5));
    };
    let stderr = said.join().expect("the reader thread");
    let mut printed = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut printed);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(printed.is_empty(), "{printed}");
    assert!(stderr.contains("went away mid-run"), "{stderr}");
    assert!(stderr.contains("in flight, lost: "), "{stderr}");
    assert!(stderr.contains(" 5"), "order 5 was in flight: {stderr}");
    // A message of a few lines, not a flood.
    assert!(stderr.lines().count() <= 5, "{stderr}");
    let cooks = pids(&dir, "cook");
    assert_gone(&cooks, Duration::from_secs(1), "cooks");
}

/// `kill -9` on the server, where no `Drop` runs, while a cook is in the
/// middle of an order: the kernel must kill the redis-server and the
/// cooks with it, within a second.
#[test]
fn everything_dies_with_a_killed_server() {
    let dir = scratch("orphans");
    let child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--cooks", "2"])
        .env("REDIS_STREAMS_PIDS", &dir)
        .env("REDIS_COOK_STALL_ON", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut server = Killed(child);
    let door = door_of(&mut server);
    // One customer, order 0: the cook handed it stalls.
    let mut customer = TcpStream::connect(door).expect("the door opens");
    let line = scaled_workload(Preset::LunchRush, 1, 1).orders()[0].line();
    customer
        .write_all(line.as_bytes())
        .expect("the order is said");
    wait_for_pid(&dir.join("stalled"), LIMIT);
    let mut children = pids(&dir, "cook");
    assert_eq!(children.len(), 2, "cooks started: {children:?}");
    children.extend(pids(&dir, "redis"));
    assert_eq!(children.len(), 3, "and one redis-server: {children:?}");

    drop(server); // SIGKILL, and reaped
    assert_gone(
        &children,
        Duration::from_secs(1),
        "children of a killed server",
    );
    drop(customer);
}

/// A cook stopped with SIGSTOP mid-order: its heartbeat stops with it, so
/// the other cook claims its ticket and every plate is served; at closing
/// the stopped cook cannot leave, and is killed after
/// [`LEAVE_LIMIT`](parallelism_redis_streams::LEAVE_LIMIT) rather than
/// hold the night open for ever.
#[test]
fn a_stopped_cook_is_killed_at_closing_and_the_night_ends() {
    use parallelism_redis_streams::LEAVE_LIMIT;
    let dir = scratch("stopped");
    let (mut server, said) =
        stalled_night(&dir, &[("REDIS_COOK_CLAIM_IDLE_MS", "200")]);
    let stopped = wait_for_pid(&dir.join("stalled"), LIMIT);
    let signal = Command::new("kill")
        .args(["-STOP", &stopped.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(signal.success(), "kill -STOP {stopped} failed");
    let began = Instant::now();
    // The rest of the night, then the stopped cook's limit; the margin is
    // for a slow machine.
    let bound = LEAVE_LIMIT + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("waitpid") {
            break status;
        }
        assert!(
            began.elapsed() < bound,
            "it did not end within {bound:?} of a cook's SIGSTOP"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let stderr = said.join().expect("the reader thread");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("cook (pid {stopped}) had not left"))
            && stderr.contains("killed"),
        "{stderr}"
    );
    let cooks = pids(&dir, "cook");
    assert_gone(&cooks, Duration::from_secs(1), "cooks");
}

/// The only cook, stopped with SIGSTOP mid-order: nobody is free to
/// claim its ticket, so the server kills it once it has held the ticket
/// [`LEAVE_LIMIT`](parallelism_redis_streams::LEAVE_LIMIT) without a
/// heartbeat; the cook started in its place claims the ticket and the
/// night ends with every order served.
#[test]
fn a_lone_stopped_cook_is_killed_and_its_order_served() {
    use parallelism_redis_streams::LEAVE_LIMIT;
    let dir = scratch("lone");
    let child = Command::new(BINARY)
        .args(["--orders", "20", "--time-scale", "20", "--cooks", "1"])
        .env("REDIS_STREAMS_PIDS", &dir)
        .env("REDIS_COOK_STALL_ON", "5")
        .env("REDIS_COOK_CLAIM_IDLE_MS", "200")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut server = Killed(child);
    let mut stderr = server.0.stderr.take().expect("stderr is piped");
    let said = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let stopped = wait_for_pid(&dir.join("stalled"), LIMIT);
    let signal = Command::new("kill")
        .args(["-STOP", &stopped.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(signal.success(), "kill -STOP {stopped} failed");
    let began = Instant::now();
    // The cook's limit, then the rest of the night; the margin is for a
    // slow machine.
    let bound = LEAVE_LIMIT + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("waitpid") {
            break status;
        }
        assert!(
            began.elapsed() < bound,
            "it did not end within {bound:?} of its only cook's SIGSTOP"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let stderr = said.join().expect("the reader thread");
    // Exit 0: the customers verified every plate, order 5's included.
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("cook (pid {stopped}) held ticket"))
            && stderr.contains("without a heartbeat (stopped?): killed"),
        "{stderr}"
    );
    // Not long before its deadline (its last heartbeat came a little
    // before the SIGSTOP, so the idle time it is killed at began then).
    assert!(
        began.elapsed() >= LEAVE_LIMIT - Duration::from_secs(1),
        "killed before its deadline: {stderr}"
    );
    let cooks = pids(&dir, "cook");
    assert_eq!(cooks.len(), 2, "the stopped cook and its replacement");
    assert_gone(&cooks, Duration::from_secs(1), "cooks");
}

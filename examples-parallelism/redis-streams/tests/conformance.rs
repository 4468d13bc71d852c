//! The conformance kit on this model: every preset, seeds, sizes and cook
//! counts, each night verified; a panicking cook reported by order; rude
//! customers. Each test has a redis-server of its own, and checks that it
//! is gone afterwards.
//!
//! The kit calls `serve` in this test process, whose executable is the
//! test harness, not the crate's binary; `MODEL.serve` would start the
//! harness as its cooks. So the model under test is `serve_with`, given
//! the binary cargo built for this crate and the test's redis-server.

mod common;

use common::{TestRedis, kitchen};
use parallelism_redis_streams::{MODEL, serve_with};
use restaurant::{Model, conformance};

#[test]
fn serves_every_workload() {
    let redis = TestRedis::start("every");
    conformance::check(&Model {
        serve: |listener, cooks, shift| {
            serve_with(&kitchen("every"), listener, cooks, shift)
        },
        ..MODEL
    });
    redis.stop();
}

#[test]
fn reports_a_panicking_cook() {
    let redis = TestRedis::start("panic");
    conformance::check_panic(&Model {
        serve: |listener, cooks, shift| {
            serve_with(&kitchen("panic"), listener, cooks, shift)
        },
        ..MODEL
    });
    redis.stop();
}

#[test]
fn survives_rude_customers() {
    let redis = TestRedis::start("rude");
    conformance::check_rude(&Model {
        serve: |listener, cooks, shift| {
            serve_with(&kitchen("rude"), listener, cooks, shift)
        },
        ..MODEL
    });
    redis.stop();
}

/// A customer who says a byte of the order every 700 ms, each well
/// within the patience of one read, is turned away once the whole line
/// has taken `PATIENCE`, not after the last byte: the cashier's patience
/// is a deadline for the line.
#[test]
fn a_dripping_customer_is_turned_away_after_patience_for_the_line() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use restaurant::conformance::Server;
    use restaurant::wire::PATIENCE;

    let redis = TestRedis::start("drip");
    let model = Model {
        serve: |listener, cooks, shift| {
            serve_with(&kitchen("drip"), listener, cooks, shift)
        },
        ..MODEL
    };
    let server = Server::start(&model, 1).unwrap_or_else(|e| panic!("{e}"));
    let stream = TcpStream::connect(server.door()).expect("the door opens");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a read time-out");
    let mut reader = BufReader::new(&stream);
    let mut next = String::new();
    reader.read_line(&mut next).expect("NEXT");
    assert_eq!(next, "NEXT\n");
    let began = Instant::now();
    // Twenty bytes over 14 s, none of them a newline, on a thread of its
    // own; it stops at the first refused write.
    let dripper = stream.try_clone().expect("a second handle");
    let drip = std::thread::spawn(move || {
        for _ in 0..20 {
            if (&dripper).write_all(b"7").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(700));
        }
    });
    let mut reply = String::new();
    let _ = reader.read_line(&mut reply);
    let waited = began.elapsed();
    assert!(reply.starts_with("ERROR"), "{reply:?} after {waited:?}");
    assert!(
        waited < PATIENCE + Duration::from_millis(1500),
        "turned away after {waited:?}: the patience restarted per byte"
    );
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(reader);
    drip.join().expect("the dripping thread");
    server.finish().expect("a rude customer is no fault");
    redis.stop();
}

//! Every key a night writes is named after the night: two restaurants
//! sharing one Redis at once both serve every order once, with the right
//! digests, and a cook started by hand for one night serves that night
//! and leaves when it closes.

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{BINARY, Killed, TestRedis, kitchen, leftovers};
use parallelism_redis_streams::{MODEL, broker, serve_with};
use restaurant::conformance::{Server, scaled_workload};
use restaurant::{Model, Preset, Workload, verify};

/// Serves `workload` with `model` and `cooks`, and checks every plate.
fn serve_and_verify(model: &Model, cooks: usize, workload: &Workload) {
    let server = Server::start(model, cooks).unwrap_or_else(|e| panic!("{e}"));
    let night = server.customers(workload).expect("the customers");
    assert!(server.shift().faults().is_empty());
    server.finish().expect("the night is served");
    let checksum = verify(workload, &night).expect("every plate checks");
    assert_eq!(checksum, workload.expected_checksum());
}

#[test]
fn two_restaurants_sharing_one_redis_both_serve_every_order_once() {
    let redis = TestRedis::start("shared");
    let model = Model {
        serve: |listener, cooks, shift| {
            serve_with(&kitchen("shared"), listener, cooks, shift)
        },
        ..MODEL
    };
    // The same night, preset and seed on both: the same order ids, so a
    // plate or a ticket that crossed over would be taken for the other
    // restaurant's, and one of them would miss a plate or get two. Long
    // enough (arrivals over a second) that both are open at once.
    let full = Workload::generate(Preset::LunchRush, 200, 3);
    let scale = full.last_arrival().as_secs_f64();
    let workload = Workload::generate_scaled(Preset::LunchRush, 200, 3, scale);
    thread::scope(|scope| {
        let one = scope.spawn(|| serve_and_verify(&model, 2, &workload));
        let two = scope.spawn(|| serve_and_verify(&model, 2, &workload));
        one.join().expect("the first restaurant");
        two.join().expect("the second restaurant");
    });
    // Both nights closed, and took their keys with them.
    let left = leftovers(&mut redis.connection());
    assert!(left.is_empty(), "left behind: {left:?}");
    redis.stop();
}

/// A cook started by hand with `--night ID`, and no cook of the server's
/// own, serves that night; once it closes, the cook says so and leaves.
#[test]
fn a_cook_given_its_night_serves_it_and_leaves_when_it_closes() {
    use std::io::Read;

    let redis = TestRedis::start("given");
    let model = Model {
        serve: |listener, _cooks, shift| {
            serve_with(&kitchen("given"), listener, 0, shift)
        },
        ..MODEL
    };
    let server = Server::start(&model, 1).unwrap_or_else(|e| panic!("{e}"));
    let night = broker::tonight(&mut redis.connection())
        .expect("GET")
        .expect("the open night is named");
    let child = Command::new(BINARY)
        .args(["--cook", "--redis", &redis.url(), "--night", &night.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut cook = Killed(child);
    let workload = scaled_workload(Preset::Banquet, 20, 1);
    let served = server.customers(&workload).expect("the customers");
    server.finish().expect("the cook serves");
    let checksum = verify(&workload, &served).expect("every plate checks");
    assert_eq!(checksum, workload.expected_checksum());
    // Its streams are gone: the cook leaves, within a claim round or two.
    let began = Instant::now();
    let status = loop {
        if let Some(status) = cook.0.try_wait().expect("waitpid") {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the cook outlived its night"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let mut said = String::new();
    let mut stderr = cook.0.stderr.take().expect("stderr is piped");
    let _ = stderr.read_to_string(&mut said);
    assert!(status.success(), "{status}: {said}");
    assert!(
        said.contains(&format!("joined night {}", night.name())),
        "{said}"
    );
    assert!(
        said.contains(&format!("night {} closed: leaving", night.name())),
        "{said}"
    );
    redis.stop();
}

/// A night whose cooks cannot be hired never opens, and leaves nothing
/// in a shared Redis: no stream, and no name in `restaurant:tonight` for
/// a cook started by hand to join.
#[test]
fn a_night_that_never_opens_leaves_no_key_behind() {
    let redis = TestRedis::start("unhired");
    let model = Model {
        serve: |listener, cooks, shift| {
            // `true` exits at once, without saying READY.
            let kitchen = parallelism_redis_streams::Kitchen::new("true")
                .redis(common::redis_url("unhired"));
            serve_with(&kitchen, listener, cooks, shift)
        },
        ..MODEL
    };
    let error = Server::start(&model, 2).expect_err("no cook joins");
    assert!(error.contains("before it joined"), "{error}");
    let left = leftovers(&mut redis.connection());
    assert!(left.is_empty(), "left behind: {left:?}");
    redis.stop();
}

//! At-least-once delivery, made to happen: a cook that is slow, not dead,
//! has its ticket claimed by another cook, and both cook it. Two plates
//! reach the pass; the customer gets one. In a file of its own, so that
//! no other test in this process drops second plates and the count read
//! here is this test's.

// The cooks' fault hooks exist in debug builds only (`src/hooks.rs`).
#![cfg(debug_assertions)]

mod common;

use std::time::Duration;

use common::{TestRedis, kitchen, pid_dir, scratch};
use parallelism_redis_streams::{MODEL, second_plates, serve_with};
use restaurant::conformance::Server;
use restaurant::{Model, Preset, Workload, verify};

#[test]
fn a_ticket_cooked_twice_is_served_once() {
    let redis = TestRedis::start("twice");
    let dir = scratch("twice");
    // The cook handed order 3 stops its heartbeat and waits three claim
    // times (200 ms each here) before cooking: the other cook claims the
    // ticket after one, cooks it, and its plate is served; then the late
    // cook's plate arrives.
    let model = Model {
        serve: |listener, cooks, shift| {
            let kitchen = kitchen("twice")
                .env("REDIS_STREAMS_PIDS", pid_dir("twice").to_string_lossy())
                .env("REDIS_COOK_LATE_ON", "3")
                .env("REDIS_COOK_CLAIM_IDLE_MS", "200");
            serve_with(&kitchen, listener, cooks, shift)
        },
        ..MODEL
    };
    // A night long enough (customers arriving over two seconds) that the
    // pass is still reading plates when the late one comes.
    let full = Workload::generate(Preset::LunchRush, 100, 1);
    // (A scale below 1 stretches time.)
    let scale = full.last_arrival().as_secs_f64() / 2.0;
    let workload = Workload::generate_scaled(Preset::LunchRush, 100, 1, scale);
    assert!(workload.last_arrival() >= Duration::from_millis(1500));

    let before = second_plates();
    let server = Server::start(&model, 2).unwrap_or_else(|e| panic!("{e}"));
    let night = server.customers(&workload).expect("the customers");
    server.finish().expect("a second plate is no fault");
    // Every customer got one plate, with the right digest.
    let sum = verify(&workload, &night).expect("every plate checks");
    assert_eq!(sum, workload.expected_checksum());
    // The late cook did publish its plate, and the pass dropped it.
    assert!(dir.join("late").exists(), "the late cook never published");
    assert_eq!(second_plates() - before, 1, "one second plate dropped");
    redis.stop();
}

//! The conformance kit on this model: every preset, seeds, sizes and cook
//! counts, each night verified; a panicking cook reported by order; rude
//! customers (one dripping its line, which the cashier's deadline for the
//! whole line turns away). Each test has a redis-server of its own, and
//! checks that it is gone afterwards.
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

//! The lesson, measured: on `big-order`, the blocked event loop leaves
//! customers at the door for about as long as its longest chop, and every
//! fix keeps that wait far shorter, in the same run, on the same machine.
//!
//! All seven models serve **in-process**, each through the conformance
//! kit's `Server`: a real loopback door, customers on threads of this
//! process who connect at their arrival times, and the counter wait taken
//! from what they saw (`greeted - walked_in`), exactly as the report takes
//! it. Why not through the binaries' `--json`: a test can only find its
//! own crate's binaries (`CARGO_BIN_EXE_…`), and building the others from
//! here would mean running cargo inside a test. In-process, every model is
//! measured by the same code; what differs from a real run is the
//! unoptimised glue around each chop (the chops themselves run in
//! `restaurant`, which is always built with opt-level 3) and the customers
//! sharing this process, both far inside the margins below.
//!
//! The machines are shared and have two cores, so the margins are wide:
//! blocked must reach half its longest chop, and every fix must stay ten
//! times under blocked's wait. Each model serves three nights, the models
//! taking turns so that a noisy moment hits them alike, and the median of
//! the three counts. Everything runs serially, in this one test.

mod common;

use std::time::Duration;

use restaurant::{Model, Preset, Workload};

use common::{largest_counter_wait, longest_chop, night_at};

/// Blocked first, then every fix.
const MODELS: [Model; 7] = [
    blocking_blocked::MODEL,
    blocking_spawn_blocking::MODEL,
    blocking_block_in_place::MODEL,
    blocking_rayon_bridge::MODEL,
    blocking_yield_now::MODEL,
    blocking_dedicated_thread::MODEL,
    blocking_smol_unblock::MODEL,
];

/// Nights per model; the median counts.
const ROUNDS: usize = 3;

/// How many times under blocked's wait every fix must stay.
const CURE: u32 = 10;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

#[test]
fn blocking_the_loop_stalls_the_door_and_every_fix_cures_it() {
    // The book's stage: `big-order` at its default size, seed 1, real time
    // (no time scale: arrivals, simmers and chops as a reader runs them).
    let preset = Preset::BigOrder;
    let workload = Workload::generate(preset, preset.default_orders(), 1);
    let (work, chop) = longest_chop(&workload);

    let mut waits = vec![Vec::with_capacity(ROUNDS); MODELS.len()];
    for _ in 0..ROUNDS {
        for (model, waits) in MODELS.iter().zip(&mut waits) {
            let night = night_at(model, &workload);
            waits.push(largest_counter_wait(&night));
        }
    }

    // The table, for `cargo test -- --nocapture` and for a failure.
    let medians: Vec<Duration> = waits.iter().cloned().map(median).collect();
    let blocked = medians[0];
    let mut table = format!(
        "longest chop: {} units, {chop:.1?} here\n\
         largest counter wait (median of {ROUNDS}; all nights; blocked's \
         median over this one):\n",
        work.units()
    );
    for ((model, median), nights) in MODELS.iter().zip(&medians).zip(&waits) {
        let ratio = blocked.as_secs_f64() / median.as_secs_f64().max(1e-9);
        table += &format!(
            "  {:<26} {median:>9.1?}  {ratio:>6.1}×  {nights:.1?}\n",
            model.name
        );
    }
    eprintln!("{table}");

    assert!(
        blocked >= chop / 2,
        "blocked's door should go unattended for about its longest chop \
         ({chop:.1?}), but its largest wait was {blocked:.1?}\n{table}"
    );
    for (model, &fixed) in MODELS.iter().zip(&medians).skip(1) {
        assert!(
            fixed * CURE <= blocked,
            "{}: largest counter wait {fixed:.1?}, not {CURE} times under \
             blocked's {blocked:.1?}\n{table}",
            model.name
        );
    }
}

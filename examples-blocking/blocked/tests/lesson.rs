//! The lesson, measured: on `big-order`, the blocked event loop leaves
//! customers at the till for about as long as its longest chop, and every
//! fix keeps that wait far shorter, in the same run, on the same machine.
//!
//! All seven models run **in-process**, through their `serve` functions,
//! and the counter wait is computed from the plates (`accepted -
//! arrival`), exactly as the report computes it. Why not through the
//! binaries' `--json`: a test can only find its own crate's binaries
//! (`CARGO_BIN_EXE_…`), and building the others from here would mean
//! running cargo inside a test. In-process, every model is measured by the
//! same code; the only cost that differs from a real run is the
//! unoptimised glue around each chop (the chops themselves run in
//! `restaurant`, which is always built with opt-level 3), a few
//! microseconds per order, far inside the margins below.
//!
//! The machines are shared and have two cores, so the margins are wide:
//! blocked must reach half its longest chop, and every fix must stay five
//! times under blocked's wait. Each model runs three times, the models
//! taking turns so that a noisy moment hits them alike, and the median of
//! the three counts. Everything runs serially, in this one test.

mod common;

use std::time::Duration;

use restaurant::{Model, Plate, Preset, Workload, verify};

use common::longest_chop;

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

/// Runs per model; the median counts.
const ROUNDS: usize = 3;

/// The longest a customer stood at the till: the largest `accepted -
/// arrival` over the plates.
fn largest_counter_wait(plates: &[Plate]) -> Duration {
    plates
        .iter()
        .map(|plate| {
            let accepted = plate.accepted().expect("every plate was rung up");
            accepted.saturating_sub(plate.arrival())
        })
        .max()
        .unwrap_or_default()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

#[test]
fn blocking_the_loop_stalls_the_till_and_every_fix_cures_it() {
    // The book's stage: `big-order` at its default size, seed 1, real time
    // (no time scale: arrivals, simmers and chops as a reader runs them).
    let preset = Preset::BigOrder;
    let workload = Workload::generate(preset, preset.default_orders(), 1);
    let expected = workload.expected_checksum();
    let (work, chop) = longest_chop(&workload);

    let mut waits = vec![Vec::with_capacity(ROUNDS); MODELS.len()];
    for _ in 0..ROUNDS {
        for (model, waits) in MODELS.iter().zip(&mut waits) {
            let cooks = model.cooks.default_count();
            let plates = (model.serve)(workload.to_orders(), cooks)
                .unwrap_or_else(|e| panic!("{}: {e}", model.name));
            // A fast wrong answer proves nothing: check every plate.
            let checksum = verify(&workload, &plates)
                .unwrap_or_else(|e| panic!("{}: {e}", model.name));
            assert_eq!(checksum, expected, "{}", model.name);
            waits.push(largest_counter_wait(&plates));
        }
    }

    // The table, for `cargo test -- --nocapture` and for a failure.
    let medians: Vec<Duration> = waits.iter().cloned().map(median).collect();
    let mut table = format!(
        "longest chop: {} units, {chop:.1?} here\n\
         largest counter wait (median of {ROUNDS}; all runs):\n",
        work.units()
    );
    for ((model, median), runs) in MODELS.iter().zip(&medians).zip(&waits) {
        table += &format!("  {:<28} {median:>10.1?}  {runs:.1?}\n", model.name);
    }
    eprintln!("{table}");

    let blocked = medians[0];
    assert!(
        blocked >= chop / 2,
        "blocked's till should go unattended for about its longest chop \
         ({chop:.1?}), but its largest wait was {blocked:.1?}\n{table}"
    );
    for (model, &fixed) in MODELS.iter().zip(&medians).skip(1) {
        assert!(
            fixed * 5 <= blocked,
            "{}: largest counter wait {fixed:.1?}, not five times under \
             blocked's {blocked:.1?}\n{table}",
            model.name
        );
    }
}

//! Catching a blocked event loop the way a production service would: with
//! `tokio-metrics`, whose `TaskMonitor` times every poll of the futures it
//! instruments and counts the polls slower than a threshold.
//!
//! The threshold. `TaskMonitor::new()` uses 50 µs, the right default for a
//! service: a poll should reach its next `.await` within 10–100 µs. Here
//! every ordinary chop of `blocked` is 100–500 µs and would count too,
//! which is true (they block the loop as well, briefly) but would not
//! single out the disaster. So this test asks a sharper question: are
//! there polls *as long as a cake*? Its threshold is half the workload's
//! longest chop, its CPU time as measured on this machine in this run: no
//! ordinary poll comes near it, and a cake's chop inline always crosses
//! it, as no load can make a chop take less than its CPU time on the
//! wall. A fix's polls, which only hand a chop over, could cross it only
//! if the OS stopped the loop's thread for that long in the middle of
//! one; a loaded machine stops threads for a hundred milliseconds now
//! and then, so the fix is given up to three nights to show a clean one,
//! and a fix that chopped inline would fail all three.

mod common;

use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use restaurant::{BoxError, Model, Preset, Shift, Step, Workload};
use tokio_metrics::{TaskMetrics, TaskMonitor};

use common::{cake_kitchen_time, largest_counter_wait, longest_chop, night_at};

/// Nights the fix has to show no slow poll at all.
const FIX_NIGHTS: usize = 3;

/// The monitor the next server's cooks are instrumented with. A model's
/// `serve` is a plain function, with no room for one: its watched twin
/// below picks it up here.
static WATCHING: Mutex<Option<TaskMonitor>> = Mutex::new(None);

fn watching() -> TaskMonitor {
    let monitor = WATCHING.lock().unwrap_or_else(PoisonError::into_inner);
    monitor
        .clone()
        .expect("a monitor is set before the server starts")
}

fn blocked_watched(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    blocking_blocked::serve_watched(listener, cooks, shift, &watching())
}

fn spawn_blocking_watched(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    let monitor = watching();
    blocking_spawn_blocking::serve_watched(listener, cooks, shift, &monitor)
}

/// Serves one night of `workload` with `model`, every cook's future
/// instrumented, and returns what the monitor saw.
fn watched(
    model: Model,
    workload: &Workload,
    threshold: Duration,
) -> TaskMetrics {
    // ANCHOR: detect
    // One monitor for the cooks; its threshold says what "slow" means.
    let monitor = TaskMonitor::with_slow_poll_threshold(threshold);
    // The model's `serve_watched` spawns every cook as
    // `monitor.instrument(cook(ticket))`.
    *WATCHING.lock().unwrap_or_else(PoisonError::into_inner) =
        Some(monitor.clone());
    let night = night_at(&model, workload);
    // Totals since the monitor was made; a service would rather read
    // `monitor.intervals()` every few seconds and export each interval.
    let metrics = monitor.cumulative();
    eprintln!(
        "{} polls, {} slower than {threshold:.1?}, {:.1?} on average",
        metrics.total_poll_count,
        metrics.total_slow_poll_count,
        metrics.mean_slow_poll_duration(),
    );
    // ANCHOR_END: detect
    eprintln!(
        "    largest counter wait {:.1?}, the cake {:.1?} in the kitchen",
        largest_counter_wait(&night),
        cake_kitchen_time(workload, &night)
    );
    metrics
}

#[test]
fn slow_polls_give_the_blocked_loop_away_and_clear_the_fix() {
    let preset = Preset::BigOrder;
    let workload = Workload::generate(preset, preset.default_orders(), 1);
    let (longest, chop) = longest_chop(&workload);
    let threshold = chop / 2;
    // The chops sure to cross the threshold when they run inline: those of
    // at least three quarters of the longest (a chop of exactly half could
    // fall either side). Each is a single poll of its cook.
    let sure = workload
        .orders()
        .iter()
        .flat_map(|order| order.steps())
        .filter(|step| match step {
            Step::Chop(work) => work.units() * 4 >= longest.units() * 3,
            Step::Simmer(_) => false,
        })
        .count() as u64;
    assert!(sure >= 1, "big-order always has a cake");

    eprint!("blocking-blocked:        ");
    let blocked = watched(
        Model {
            serve: blocked_watched,
            ..blocking_blocked::MODEL
        },
        &workload,
        threshold,
    );
    // Blocked: each of those chops was one poll of its cook, at least half
    // as long as the longest chop.
    assert!(
        blocked.total_slow_poll_count >= sure,
        "blocked: {} polls over {threshold:.1?}, expected at least {sure}",
        blocked.total_slow_poll_count
    );
    // The fix: its cooks only hand chops over; no poll comes near a cake,
    // in one night of three at worst.
    let mut nights = Vec::new();
    for _ in 0..FIX_NIGHTS {
        eprint!("blocking-spawn-blocking: ");
        let fixed = watched(
            Model {
                serve: spawn_blocking_watched,
                ..blocking_spawn_blocking::MODEL
            },
            &workload,
            threshold,
        );
        if fixed.total_slow_poll_count == 0 {
            return;
        }
        nights.push((
            fixed.total_slow_poll_count,
            fixed.mean_slow_poll_duration(),
        ));
    }
    panic!(
        "spawn-blocking: polls over {threshold:.1?} in each of \
         {FIX_NIGHTS} nights (count, mean duration): {nights:.1?}"
    );
}

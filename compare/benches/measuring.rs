//! Measuring must not distort what it measures.
//!
//! ```text
//! cargo bench -p compare --bench measuring
//! ```
//!
//! Every order is timed three times (accepted, started, served: one
//! `Instant::now()` each) and counted once (an atomic add for the progress
//! line); the sampler counts threads every two milliseconds. This benchmark
//! measures both costs on this machine, runs `concurrency-tokio` on
//! `lunch-rush` in-process for its CPU time, and prints what share of that
//! CPU time the measuring adds. The goal is at most 3%; it exits 1 above.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use restaurant::{Clock, Preset, Workload, probe};

/// The goal: measuring adds at most this share of the run's CPU time.
const GOAL: f64 = 0.03;

/// Best per-iteration time of `f` over five rounds of `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed() / n
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let clock = Clock::open();
    let counter = AtomicU64::new(0);
    let per_order = per_call(200_000, || {
        black_box(clock.now());
        black_box(clock.now());
        black_box(clock.now());
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let per_sample = probe::sample_cost();

    // The run itself: median CPU time of three.
    let workload = Workload::generate(Preset::LunchRush, 500, 1);
    let mut runs: Vec<(Duration, Duration)> = (0..3)
        .map(|_| {
            let before = probe::cpu_time().expect("CPU time on this OS");
            let plates = concurrency_tokio::serve(workload.to_orders(), 2)
                .expect("the run succeeds");
            let cpu = probe::cpu_time().expect("CPU time on this OS") - before;
            let makespan = plates.iter().filter_map(|p| p.served()).max();
            (cpu, makespan.unwrap_or_default())
        })
        .collect();
    runs.sort();
    let (cpu, makespan) = runs[1];

    let orders = workload.orders().len() as u32;
    let stamping = per_order * orders;
    let samples = makespan.as_secs_f64() / probe::SAMPLE_EVERY.as_secs_f64();
    let sampling = per_sample.mul_f64(samples);
    let share = |d: Duration| d.as_secs_f64() / cpu.as_secs_f64();
    println!("concurrency-tokio on lunch-rush (500 orders, 2 workers):");
    println!("  CPU time of the run (median of 3)  {cpu:?}");
    println!(
        "  timestamps: {per_order:?}/order × {orders}  = {stamping:?} ({:.3}%)",
        100.0 * share(stamping)
    );
    println!(
        "  sampler: {per_sample:?}/sample × {samples:.0} = {sampling:?} ({:.3}%)",
        100.0 * share(sampling)
    );
    let total = share(stamping + sampling);
    println!(
        "  measuring adds {:.3}% (goal: at most {:.0}%)",
        100.0 * total,
        100.0 * GOAL
    );
    if total > GOAL {
        eprintln!("measuring costs more than the goal");
        std::process::exit(1);
    }
}

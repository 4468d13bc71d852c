//! Measuring must not distort what it measures.
//!
//! ```text
//! cargo bench -p compare --bench measuring
//! ```
//!
//! The customers take every timestamp, in a process of their own; what the
//! server pays for being measured is one atomic add per plate (the count
//! behind the progress line) and a sampler that counts its threads every
//! two milliseconds. This benchmark measures both costs on this machine,
//! runs `concurrency-tokio` on `lunch-rush` for the server's CPU time,
//! and prints what share of it the measuring adds. The goal is at most 3%;
//! it exits 1 above.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use restaurant::probe;

/// The goal: measuring adds at most this share of the run's CPU time.
const GOAL: f64 = 0.03;

fn main() {
    let counter = AtomicU64::new(0);
    let per_order = {
        const N: u32 = 1_000_000;
        let start = Instant::now();
        for _ in 0..N {
            black_box(counter.fetch_add(1, Ordering::Relaxed));
        }
        start.elapsed() / N
    };
    let per_sample = probe::sample_cost();

    // The run itself: median server CPU time of three.
    let binary = common::tokio_binary();
    let mut runs: Vec<(f64, f64, f64)> = (0..3)
        .map(|_| {
            let r = common::report(&binary, &["--preset", "lunch-rush"]);
            let cpu = r.cpu_s.expect("CPU time on this OS");
            (cpu, r.makespan_s, r.customers_cpu_s.unwrap_or(f64::NAN))
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (cpu, makespan, customers) = runs[1];
    let cpu = Duration::from_secs_f64(cpu);

    let orders = 500;
    let counting = per_order * orders;
    let samples = makespan / probe::SAMPLE_EVERY.as_secs_f64();
    let sampling = per_sample.mul_f64(samples);
    let share = |d: Duration| d.as_secs_f64() / cpu.as_secs_f64();
    println!("concurrency-tokio on lunch-rush (500 orders):");
    println!("  server CPU time (median of 3)  {cpu:?}");
    println!(
        "  customers' CPU time            {customers:.3} s (not the server's)"
    );
    println!(
        "  plate count: {per_order:?}/plate × {orders} = {counting:?} ({:.3}%)",
        100.0 * share(counting)
    );
    println!(
        "  sampler: {per_sample:?}/sample × {samples:.0} = {sampling:?} ({:.3}%)",
        100.0 * share(sampling)
    );
    let total = share(counting + sampling);
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

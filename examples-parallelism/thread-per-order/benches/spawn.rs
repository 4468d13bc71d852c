//! What starting a thread costs the cashier.
//!
//! ```text
//! cargo bench -p parallelism-thread-per-order --bench spawn
//! ```
//!
//! Times `thread::Builder::spawn` alone (what the cashier pays before it
//! can go back to the till) and spawn plus join of a thread that does
//! nothing, over 2,000 threads, and prints the median of five rounds. On
//! `takeout` a customer arrives every 20 µs on average: compare.

use std::thread;
use std::time::{Duration, Instant};

const THREADS: u32 = 2_000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut spawn_only = Vec::new();
    let mut round_trip = Vec::new();
    for _ in 0..5 {
        // Spawn alone: join afterwards, outside the timed part.
        let mut handles = Vec::with_capacity(THREADS as usize);
        let start = Instant::now();
        for i in 0..THREADS {
            let handle = thread::Builder::new()
                .name(format!("order-{i}"))
                .spawn(|| ())
                .expect("the OS gives a thread");
            handles.push(handle);
        }
        spawn_only.push(start.elapsed() / THREADS);
        for handle in handles {
            handle.join().expect("an empty thread cannot panic");
        }

        let start = Instant::now();
        for i in 0..THREADS {
            thread::Builder::new()
                .name(format!("order-{i}"))
                .spawn(|| ())
                .expect("the OS gives a thread")
                .join()
                .expect("an empty thread cannot panic");
        }
        round_trip.push(start.elapsed() / THREADS);
    }
    println!("starting a thread, median of 5 rounds of {THREADS}:");
    println!("  spawn                 {:?}", median(spawn_only));
    println!("  spawn, run and join   {:?}", median(round_trip));
    println!("(takeout's customers arrive every 20 µs on average)");
}

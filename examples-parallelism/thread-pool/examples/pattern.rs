//! The pattern of `parallelism-thread-pool` on its own, ready to copy: a
//! fixed set of std threads share one `mpsc` receiver behind a `Mutex`;
//! results come back on a second channel; closing the first channel is the
//! shutdown signal. A panic in a job is caught on its thread and reported
//! with the job's number.
//!
//! ```text
//! cargo run -p parallelism-thread-pool --example thread-pool-pattern
//! ```
//!
//! It needs only the standard library.

use std::error::Error;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// Stands in for your CPU work.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for blocking waiting: it holds the thread.
fn wait_for_io() {
    thread::sleep(Duration::from_millis(5));
}

fn handle(job: u64) -> u64 {
    let half = compute(job);
    wait_for_io();
    compute(half)
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let (jobs_tx, jobs_rx) = mpsc::channel::<u64>();
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let (results_tx, results_rx) = mpsc::channel();

    let mut pool = Vec::with_capacity(workers);
    for _ in 0..workers {
        let jobs_rx = Arc::clone(&jobs_rx);
        let results_tx = results_tx.clone();
        pool.push(thread::spawn(move || {
            loop {
                // The lock guard is dropped at the end of this statement.
                let next = jobs_rx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv();
                let Ok(job) = next else { return };
                let result =
                    panic::catch_unwind(AssertUnwindSafe(|| handle(job)))
                        .map_err(|_| job);
                if results_tx.send(result).is_err() {
                    return;
                }
            }
        }));
    }
    drop(results_tx); // only the workers hold senders now

    for job in 0..100u64 {
        jobs_tx.send(job)?;
    }
    drop(jobs_tx); // no more jobs: workers leave when the queue is empty

    let mut results = Vec::new();
    for result in results_rx {
        match result {
            Ok(value) => results.push(value),
            Err(job) => return Err(format!("job {job} panicked").into()),
        }
    }
    for worker in pool {
        worker
            .join()
            .map_err(|_| "a worker panicked outside a job")?;
    }
    // Check the answer, not just that it ran.
    let mut expected: Vec<u64> =
        (0..100).map(|j| compute(compute(j))).collect();
    expected.sort_unstable();
    results.sort_unstable();
    assert_eq!(results, expected);
    println!("{} jobs done, every result checked", results.len());
    Ok(())
}

//! The pattern of `parallelism-crossbeam` on its own, ready to copy: scoped
//! worker threads share one bounded crossbeam channel of jobs (every
//! worker holds a clone of the receiver, no `Mutex`); results come back on
//! a second bounded channel; the loop that hands out jobs waits with
//! `select!`, taking results meanwhile, so two full channels cannot
//! deadlock. Dropping the senders, in the right order, shuts it down.
//!
//! ```text
//! cargo run -p parallelism-crossbeam --example crossbeam-pattern
//! ```
//!
//! It needs only `crossbeam-channel = "0.5"`.

use std::error::Error;
use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, bounded, select};

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
    let results = thread::scope(|s| {
        // Made inside the scope, so an early return drops them before the
        // scope joins the workers.
        let (jobs_tx, jobs_rx) = bounded::<u64>(workers);
        let (results_tx, results_rx) = bounded(workers);
        for _ in 0..workers {
            let (jobs_rx, results_tx) = (jobs_rx.clone(), results_tx.clone());
            s.spawn(move || {
                for job in jobs_rx {
                    let result =
                        panic::catch_unwind(AssertUnwindSafe(|| handle(job)))
                            .map_err(|_| job);
                    if results_tx.send(result).is_err() {
                        return;
                    }
                }
            });
        }
        drop(results_tx); // else `results_rx` never ends: we hold a sender

        let mut results = Vec::new();
        let opening = Instant::now();
        for job in 0..100u64 {
            // A job arrives every millisecond; take results while waiting.
            let arrival = at(opening + Duration::from_millis(job));
            loop {
                select! {
                    recv(arrival) -> _ => break,
                    recv(results_rx) -> r => results.extend(r),
                }
            }
            // Hand the job over; while the queue is full, take results.
            loop {
                select! {
                    send(jobs_tx, job) -> sent => { sent?; break; }
                    recv(results_rx) -> r => results.extend(r),
                }
            }
        }
        drop(jobs_tx); // workers leave once the queue is empty
        results.extend(results_rx.iter()); // ends when the last worker left
        Ok::<_, Box<dyn Error + Send + Sync>>(results)
    })?; // the scope has joined every worker here

    let mut values = Vec::with_capacity(results.len());
    for result in results {
        values.push(result.map_err(|job| format!("job {job} panicked"))?);
    }
    // Check the answer, not just that it ran.
    let mut expected: Vec<u64> =
        (0..100).map(|j| compute(compute(j))).collect();
    expected.sort_unstable();
    values.sort_unstable();
    assert_eq!(values, expected);
    println!("{} jobs done, every result checked", values.len());
    Ok(())
}

//! The pattern of `concurrency-async-std` on its own: jobs arrive over
//! time, each is spawned on async-std's global runtime, the main thread
//! awaits every handle, and a panicking job is caught inside its task and
//! reported with its number.
//!
//! **async-std is discontinued (RUSTSEC-2025-0052): do not copy this into
//! new code.** It is here to show what existing code looks like and how
//! little changes when it moves to smol: `task::spawn` becomes
//! `Executor::spawn`, `task::sleep` becomes `Timer::after`, and the runtime
//! becomes a value you own (see `smol-pattern` in `concurrency-smol`).
//!
//! ```text
//! cargo run -p concurrency-async-std --example async-std-pattern
//! ```
//!
//! It needs `async-std = "1.13"` and `futures-lite = "2"` (for
//! `catch_unwind`).

use std::error::Error;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use async_std::task;
use futures_lite::FutureExt as _;

/// Stands in for your CPU work. Keep it short: it holds a runtime thread.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for your waiting: a query, a request, a timer.
async fn wait_for_io() {
    task::sleep(Duration::from_millis(20)).await;
}

/// One job: some work, a wait, some more work.
async fn handle(job: u64) -> u64 {
    let half = compute(job);
    wait_for_io().await;
    compute(half)
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // The runtime starts itself here, with one thread per core (or
    // `ASYNC_STD_THREAD_COUNT`), and lives until the process exits.
    let results = task::block_on(async {
        let opening = Instant::now();
        let mut handles = Vec::new();
        for job in 0..100u64 {
            // Jobs arrive every 2 ms.
            let arrival = opening + Duration::from_millis(job * 2);
            task::sleep(arrival.saturating_duration_since(Instant::now()))
                .await;
            let caught = AssertUnwindSafe(handle(job)).catch_unwind();
            handles.push((job, task::spawn(caught)));
        }
        let mut results = Vec::with_capacity(handles.len());
        let mut handles = handles.into_iter();
        while let Some((job, handle)) = handles.next() {
            match handle.await {
                Ok(result) => results.push(result),
                Err(_) => {
                    // A dropped handle detaches its task: cancel the rest.
                    for (_, other) in handles {
                        other.cancel().await;
                    }
                    return Err(format!("job {job} panicked"));
                }
            }
        }
        Ok(results)
    })?;

    // Check the answer, not just that it ran.
    let mut expected: Vec<u64> =
        (0..100).map(|j| compute(compute(j))).collect();
    let mut got = results;
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected);
    println!("{} jobs done, every result checked", got.len());
    Ok(())
}

//! The pattern of `concurrency-futures` on its own, ready to copy: the
//! futures crate's `ThreadPool`, a timer from `futures-timer`, jobs spawned
//! with `spawn_with_handle` as they arrive, and every handle awaited with
//! `catch_unwind`, so a panicking job is reported with its number instead
//! of killing a pool thread.
//!
//! ```text
//! cargo run -p concurrency-futures --example futures-pattern
//! ```
//!
//! It needs only `futures = { version = "0.3", default-features = false,
//! features = ["executor", "thread-pool"] }` and `futures-timer = "3"`.

use std::error::Error;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::executor::{ThreadPool, block_on};
use futures::future::FutureExt as _;
use futures::task::SpawnExt as _;
use futures_timer::Delay;

/// Stands in for your CPU work. Keep it short: it holds a pool thread.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for your waiting: a query, a request, a timer.
async fn wait_for_io() {
    Delay::new(Duration::from_millis(20)).await;
}

/// One job: some work, a wait, some more work.
async fn handle(job: u64) -> u64 {
    let half = compute(job);
    wait_for_io().await;
    compute(half)
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // One thread per core by default.
    let pool = ThreadPool::new()?;
    let results = block_on(async {
        let opening = Instant::now();
        let mut handles = Vec::new();
        for job in 0..100u64 {
            // Jobs arrive every 2 ms.
            let arrival = opening + Duration::from_millis(job * 2);
            Delay::new(arrival.saturating_duration_since(Instant::now())).await;
            handles.push((job, pool.spawn_with_handle(handle(job))?));
        }
        let mut results = Vec::with_capacity(handles.len());
        for (job, handle) in handles {
            // A job's panic is resumed when its handle is awaited.
            match AssertUnwindSafe(handle).catch_unwind().await {
                Ok(result) => results.push(result),
                Err(_) => return Err(format!("job {job} panicked").into()),
            }
        }
        Ok::<_, Box<dyn Error + Send + Sync>>(results)
    })?;
    // The pool's threads leave once `pool` and every task are gone.
    drop(pool);

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

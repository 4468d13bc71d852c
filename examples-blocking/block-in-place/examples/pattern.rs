//! The pattern of `blocking-block-in-place` on its own, ready to copy:
//! tasks on a multi-thread runtime do their CPU work inside
//! `block_in_place`, which hands the worker's queue to another thread
//! first, so the other tasks keep running. A heartbeat task that should
//! tick every millisecond shows it. The closure may borrow: it runs before
//! `block_in_place` returns.
//!
//! ```text
//! cargo run -p blocking-block-in-place --example block-in-place-pattern
//! ```
//!
//! It needs only
//! `tokio = { version = "1", features = ["rt-multi-thread", "time"] }`.
//! On a current-thread runtime `block_in_place` panics: use
//! `spawn_blocking` there.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::task::{JoinSet, block_in_place};
use tokio::time::sleep;

/// Stands in for your CPU work: milliseconds of it, too long for a task.
fn compute(input: &[u64]) -> u64 {
    (0..3_000_000u64).fold(input.iter().sum(), |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job: some waiting, then CPU work in place. `input` is borrowed by
/// the closure: nothing has to be moved or cloned.
async fn handle(job: u64) -> u64 {
    let input = vec![job; 16];
    sleep(Duration::from_millis(2)).await;
    block_in_place(|| compute(&input))
}

/// Ticks every millisecond; returns the longest gap between two ticks.
async fn heartbeat() -> Duration {
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    for _ in 0..200 {
        sleep(Duration::from_millis(1)).await;
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
    longest
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()?;
    let (results, stall) = runtime.block_on(async {
        let heartbeat = tokio::spawn(heartbeat());
        let mut jobs = JoinSet::new();
        for job in 0..8u64 {
            jobs.spawn(handle(job));
        }
        let mut results = Vec::new();
        while let Some(done) = jobs.join_next().await {
            // A panic in the closure unwinds through the task: JoinError.
            results.push(done?);
        }
        Ok::<_, Box<dyn Error + Send + Sync>>((results, heartbeat.await?))
    })?;

    // Check the answer, not just that it ran.
    let mut expected: Vec<u64> =
        (0..8).map(|job| compute(&[job; 16])).collect();
    let mut got = results;
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected);
    println!(
        "{} jobs done, every result checked; the 1 ms heartbeat's longest \
         gap was {stall:.1?}",
        got.len()
    );
    Ok(())
}

//! The pattern of `blocking-smol-unblock` on its own, ready to copy: a
//! single-threaded smol executor is the event loop, and every piece of CPU
//! work goes to the `blocking` pool with `unblock`. A panic in the work is
//! re-raised where the task is awaited; `catch_unwind` turns it into that
//! job's error. A heartbeat task that should tick every millisecond shows
//! the loop stays responsive.
//!
//! ```text
//! cargo run -p blocking-smol-unblock --example smol-unblock-pattern
//! ```
//!
//! It needs only `smol = "2"`. The pool allows up to 500 threads unless
//! `BLOCKING_MAX_THREADS` or `blocking::set_max_blocking_threads` says
//! otherwise.

use std::error::Error;
use std::hint::black_box;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use smol::future::FutureExt;
use smol::{LocalExecutor, Timer, unblock};

/// Stands in for your CPU work: milliseconds of it, too long for a loop.
fn compute(input: u64) -> u64 {
    (0..3_000_000u64).fold(input, |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job: some waiting on the loop, then CPU work on the pool.
async fn handle(job: u64) -> Result<u64, String> {
    Timer::after(Duration::from_millis(2)).await;
    AssertUnwindSafe(unblock(move || compute(job)))
        .catch_unwind()
        .await
        .map_err(|_panic| format!("job {job} panicked"))
}

/// Ticks every millisecond; returns the longest gap between two ticks.
async fn heartbeat() -> Duration {
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    for _ in 0..200 {
        Timer::after(Duration::from_millis(1)).await;
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
    longest
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let executor = LocalExecutor::new();
    let (results, stall) = smol::block_on(executor.run(async {
        let heartbeat = executor.spawn(heartbeat());
        let jobs: Vec<_> =
            (0..8u64).map(|j| executor.spawn(handle(j))).collect();
        let mut results = Vec::new();
        for job in jobs {
            results.push(job.await?);
        }
        Ok::<_, String>((results, heartbeat.await))
    }))?;

    // Check the answer, not just that it ran.
    let mut expected: Vec<u64> = (0..8).map(compute).collect();
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

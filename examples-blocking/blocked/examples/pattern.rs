//! The mistake of `blocking-blocked` on its own: **to recognise, not to
//! copy.** Jobs do their CPU work inline in an `async fn` on a
//! current-thread runtime, and a heartbeat task, which should tick every
//! millisecond, measures how long the event loop went without ticking.
//! The program checks that the stall is as long as one job's work: while
//! a job computes, nothing else on the loop runs. The fixes are the other
//! crates' patterns (`spawn-blocking-pattern` first).
//!
//! ```text
//! cargo run -p blocking-blocked --example blocked-pattern
//! ```
//!
//! It needs only `tokio = { version = "1", features = ["rt", "time"] }`.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio::time::sleep;

/// Stands in for your CPU work: milliseconds of it, far too long for an
/// event loop.
fn compute(input: u64) -> u64 {
    (0..3_000_000u64).fold(input, |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job. THE MISTAKE: CPU work inline in an `async fn`.
async fn handle(job: u64) -> u64 {
    sleep(Duration::from_millis(2)).await; // some waiting, which is fine
    compute(job) // holds the loop's only thread until it returns
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // How long one job's work takes here, on an idle thread (best of 3).
    let work = (0..3)
        .map(|_| {
            let start = Instant::now();
            black_box(compute(black_box(1)));
            start.elapsed()
        })
        .min()
        .unwrap_or_default(); // 3 samples: never empty

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let (results, stall) = runtime.block_on(async {
        // The heartbeat: should wake every millisecond; records the
        // longest gap between two of its wake-ups.
        let heartbeat = tokio::spawn(async {
            let mut last = Instant::now();
            let mut longest = Duration::ZERO;
            for _ in 0..200 {
                sleep(Duration::from_millis(1)).await;
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
            longest
        });
        let mut jobs = JoinSet::new();
        for job in 0..4u64 {
            jobs.spawn(handle(job));
        }
        let mut results = Vec::new();
        while let Some(done) = jobs.join_next().await {
            results.push(done?);
        }
        let stall = heartbeat.await?;
        Ok::<_, Box<dyn Error + Send + Sync>>((results, stall))
    })?;

    let mut expected: Vec<u64> = (0..4).map(compute).collect();
    let mut got = results;
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected);
    // The loop cannot tick while a job computes on its thread, so the
    // longest gap is at least one job's work (half, for a noisy machine).
    assert!(stall >= work / 2, "stall {stall:?}, one job {work:?}");
    println!(
        "{} jobs done; the 1 ms heartbeat once waited {stall:.1?} (one \
         job's work is {work:.1?}): the loop was blocked",
        got.len()
    );
    Ok(())
}

//! The pattern of `blocking-yield-now` on its own, ready to copy: CPU work
//! stays on a one-thread event loop but is cut into short slices, with
//! `yield_now().await` between them, so no poll holds the thread for long
//! (the rule of thumb: 10 to 100 µs between `.await`s). A heartbeat task
//! that should tick every millisecond shows the loop stays responsive.
//!
//! ```text
//! cargo run -p blocking-yield-now --example yield-now-pattern
//! ```
//!
//! It needs only `tokio = { version = "1", features = ["rt", "time"] }`.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::task::{JoinSet, yield_now};
use tokio::time::sleep;

/// How much work the whole job is, and how much one slice does. Tune the
/// slice so that it takes at most about 100 µs in a release build.
const STEPS: u64 = 3_000_000;
const SLICE: u64 = 20_000;

/// One step of your CPU work; the whole job is `STEPS` of them.
fn step(acc: u64, i: u64) -> u64 {
    black_box(acc.wrapping_mul(31).wrapping_add(i))
}

/// The job in one piece: what `handle` computes, slice by slice.
fn compute(input: u64) -> u64 {
    (0..STEPS).fold(input, step)
}

/// One job: some waiting, then the CPU work in slices. Its state (`acc`,
/// `done`) lives in the future between slices.
async fn handle(job: u64) -> u64 {
    sleep(Duration::from_millis(2)).await;
    let mut acc = job;
    let mut done = 0;
    while done < STEPS {
        let end = (done + SLICE).min(STEPS);
        acc = (done..end).fold(acc, step);
        done = end;
        // Hand the thread back: tokio runs whoever else is ready and
        // checks its timers before polling this job again.
        yield_now().await;
    }
    acc
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
    let runtime = tokio::runtime::Builder::new_current_thread()
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
            // A panic in a slice unwinds through the task: a JoinError.
            results.push(done?);
        }
        Ok::<_, Box<dyn Error + Send + Sync>>((results, heartbeat.await?))
    })?;

    // Check the answer, not just that it ran: slicing changed nothing.
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

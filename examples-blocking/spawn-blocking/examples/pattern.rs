//! The pattern of `blocking-spawn-blocking` on its own, ready to copy: a
//! one-thread event loop hands every piece of CPU work to tokio's blocking
//! pool, capped at one thread per core, with `spawn_blocking`, and names
//! the job whose work panicked. A heartbeat task that should tick every
//! millisecond shows that the loop stays responsive while the pool works.
//!
//! ```text
//! cargo run -p blocking-spawn-blocking --example spawn-blocking-pattern
//! ```
//!
//! It needs only `tokio = { version = "1", features = ["rt", "time"] }`.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::task::{JoinSet, spawn_blocking};
use tokio::time::sleep;

/// Stands in for your CPU work: milliseconds of it, too long for a loop.
fn compute(input: u64) -> u64 {
    (0..3_000_000u64).fold(input, |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job: some waiting on the loop, then CPU work on the pool.
async fn handle(job: u64) -> Result<u64, String> {
    sleep(Duration::from_millis(2)).await;
    // The closure must own its input (`move`) and hands its result back.
    // A panic inside it comes back as a JoinError, not as a crash.
    spawn_blocking(move || compute(job))
        .await
        .map_err(|e| format!("job {job} failed: {e}"))
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
    // CPU work gains nothing from more threads than cores; the default cap
    // (512) is meant for blocking I/O, where threads mostly sleep.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .max_blocking_threads(cores)
        .build()?;
    let (results, stall) = runtime.block_on(async {
        let heartbeat = tokio::spawn(heartbeat());
        let mut jobs = JoinSet::new();
        for job in 0..8u64 {
            jobs.spawn(handle(job));
        }
        let mut results = Vec::new();
        while let Some(done) = jobs.join_next().await {
            results.push(done??);
        }
        Ok::<_, Box<dyn Error + Send + Sync>>((results, heartbeat.await?))
    })?;
    // Dropping the runtime joins the pool's threads.
    drop(runtime);

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

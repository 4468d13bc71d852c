//! The pattern of `blocking-rayon-bridge` on its own, ready to copy: a
//! one-thread tokio event loop sends CPU work to a rayon pool and awaits
//! the result on a `oneshot` channel. A panic in the work is caught on the
//! rayon thread and comes back as that job's error (uncaught, it would
//! abort the process). A heartbeat task that should tick every millisecond
//! shows the loop stays responsive.
//!
//! ```text
//! cargo run -p blocking-rayon-bridge --example rayon-bridge-pattern
//! ```
//!
//! It needs `rayon = "1"` and
//! `tokio = { version = "1", features = ["rt", "time", "sync"] }`.

use std::error::Error;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::sleep;

/// Stands in for your CPU work: milliseconds of it, too long for a loop.
fn compute(input: u64) -> u64 {
    (0..3_000_000u64).fold(input, |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job: some waiting on the loop, then CPU work on the rayon pool.
async fn handle(job: u64, pool: Arc<rayon::ThreadPool>) -> Result<u64, String> {
    sleep(Duration::from_millis(2)).await;
    let (tx, rx) = oneshot::channel();
    pool.spawn_fifo(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(|| compute(job)));
        let _ = tx.send(result); // the receiver may be gone: nobody to tell
    });
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_panic)) => Err(format!("job {job} panicked")),
        Err(_dropped) => Err(format!("job {job} was dropped")),
    }
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
    // One rayon thread per core by default: the right size for CPU work.
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let (results, stall) = runtime.block_on(async {
        let heartbeat = tokio::spawn(heartbeat());
        let mut jobs = JoinSet::new();
        for job in 0..8u64 {
            jobs.spawn(handle(job, Arc::clone(&pool)));
        }
        let mut results = Vec::new();
        while let Some(done) = jobs.join_next().await {
            results.push(done??);
        }
        Ok::<_, Box<dyn Error + Send + Sync>>((results, heartbeat.await?))
    })?;
    // Dropping the last handle lets rayon's threads leave once idle (they
    // are not joined; `blocking-rayon-bridge` shows how to join them).
    drop(pool);

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

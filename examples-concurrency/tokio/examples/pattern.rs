//! The pattern of `concurrency-tokio` on its own, ready to copy: one loop
//! takes jobs as they arrive and spawns a task for each on a multi-thread
//! runtime; a `JoinSet` collects the results and names the job whose task
//! panicked.
//!
//! ```text
//! cargo run -p concurrency-tokio --example tokio-pattern
//! ```
//!
//! It needs only
//! `tokio = { version = "1", features = ["rt-multi-thread", "time"] }`.

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

/// Stands in for your CPU work. Keep it short: it holds a worker thread.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for your waiting: a query, a request, a timer.
async fn wait_for_io() {
    sleep(Duration::from_millis(20)).await;
}

/// One job: some work, a wait, some more work.
async fn handle(job: u64) -> u64 {
    let half = compute(job);
    wait_for_io().await;
    compute(half)
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()?;
    let results = runtime.block_on(async {
        let opening = Instant::now();
        let mut tasks = JoinSet::new();
        let mut jobs = HashMap::new();
        for job in 0..100u64 {
            // Jobs arrive every 2 ms; waiting for one frees the thread.
            sleep_until(opening + Duration::from_millis(job * 2)).await;
            let task = tasks.spawn(handle(job));
            jobs.insert(task.id(), job);
        }
        let mut results = Vec::with_capacity(jobs.len());
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(result) => results.push(result),
                Err(e) if e.is_panic() => {
                    return Err(
                        format!("job {} panicked", jobs[&e.id()]).into()
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok::<_, Box<dyn Error + Send + Sync>>(results)
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

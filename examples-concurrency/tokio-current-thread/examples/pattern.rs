//! The pattern of `concurrency-tokio-current-thread` on its own, ready to
//! copy: one thread runs an event loop; jobs arrive over time and each is
//! spawned as a task; a `JoinSet` collects the results and names the job
//! whose task panicked. Every job runs on the calling thread, and the
//! example checks that too.
//!
//! ```text
//! cargo run -p concurrency-tokio-current-thread --example tokio-current-thread-pattern
//! ```
//!
//! It needs only `tokio = { version = "1", features = ["rt", "time"] }`.

use std::collections::HashMap;
use std::error::Error;
use std::thread::{self, ThreadId};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

/// Stands in for your CPU work. Keep it short: it holds the only thread.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for your waiting: a query, a request, a timer.
async fn wait_for_io() {
    sleep(Duration::from_millis(20)).await;
}

/// One job: some work, a wait, some more work. Returns its result and the
/// thread it ran on.
async fn handle(job: u64) -> (u64, ThreadId) {
    let half = compute(job);
    wait_for_io().await;
    (compute(half), thread::current().id())
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    // No worker threads: the loop runs inside `block_on`, on this thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let results = runtime.block_on(async {
        let opening = Instant::now();
        let mut tasks = JoinSet::new();
        let mut jobs = HashMap::new();
        for job in 0..100u64 {
            // Jobs arrive every 2 ms; while we wait, the loop runs tasks.
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
    // Check the answer, not just that it ran: right values, one thread.
    let here = thread::current().id();
    assert!(results.iter().all(|&(_, thread)| thread == here));
    let mut got: Vec<u64> = results.into_iter().map(|(v, _)| v).collect();
    let mut expected: Vec<u64> =
        (0..100).map(|j| compute(compute(j))).collect();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected);
    println!(
        "{} jobs done on one thread, every result checked",
        got.len()
    );
    Ok(())
}

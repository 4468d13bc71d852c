//! The pattern of `concurrency-smol` on its own, ready to copy: your own
//! executor, run by a few threads in a `std::thread::scope`; the main
//! thread takes jobs as they arrive and spawns a task for each; a closed
//! channel tells the threads to stop. A panicking job is caught inside its
//! task and reported with the job's number.
//!
//! ```text
//! cargo run -p concurrency-smol --example smol-pattern
//! ```
//!
//! It needs only `smol = "2"`.

use std::error::Error;
use std::panic::AssertUnwindSafe;
use std::thread;
use std::time::{Duration, Instant};

use smol::future::FutureExt as _;
use smol::{Executor, Timer, channel};

/// Stands in for your CPU work. Keep it short: it holds a thread.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for your waiting: a query, a request, a timer.
async fn wait_for_io() {
    Timer::after(Duration::from_millis(20)).await;
}

/// One job: some work, a wait, some more work.
async fn handle(job: u64) -> u64 {
    let half = compute(job);
    wait_for_io().await;
    compute(half)
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let threads = thread::available_parallelism().map_or(2, |n| n.get());
    let ex = Executor::new();
    // Dropping `stop` closes the channel, which ends every `run` below.
    let (stop, stopped) = channel::unbounded::<()>();

    let results = thread::scope(|scope| {
        for _ in 0..threads {
            let (ex, stopped) = (&ex, stopped.clone());
            scope.spawn(move || smol::block_on(ex.run(stopped.recv())));
        }
        let results = smol::block_on(async {
            let opening = Instant::now();
            let mut tasks = Vec::new();
            for job in 0..100u64 {
                // Jobs arrive every 2 ms.
                Timer::at(opening + Duration::from_millis(job * 2)).await;
                let caught = AssertUnwindSafe(handle(job)).catch_unwind();
                tasks.push((job, ex.spawn(caught)));
            }
            let mut results = Vec::with_capacity(tasks.len());
            for (job, task) in tasks {
                match task.await {
                    Ok(result) => results.push(result),
                    Err(_) => return Err(format!("job {job} panicked")),
                }
            }
            Ok(results)
        });
        drop(stop); // on every path, or the scope waits forever
        results
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

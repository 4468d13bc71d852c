//! The pattern of `blocking-dedicated-thread` on its own, ready to copy: a
//! thread of your own does the CPU work for a one-thread tokio event loop.
//! Requests go to it down a std `mpsc` channel, each with a `oneshot`
//! sender for its answer; closing the channel stops the thread. A panic is
//! caught on the thread and comes back as that job's error. A heartbeat
//! task that should tick every millisecond shows the loop stays responsive.
//!
//! ```text
//! cargo run -p blocking-dedicated-thread --example dedicated-thread-pattern
//! ```
//!
//! It needs only
//! `tokio = { version = "1", features = ["rt", "time", "sync"] }`. For
//! several threads, share the receiver behind a `Mutex` (as the crate
//! does) or use an MPMC channel such as crossbeam's.

use std::error::Error;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
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

/// A request for the worker thread: the input and where to answer.
type Request = (u64, oneshot::Sender<thread::Result<u64>>);

/// One job: some waiting on the loop, then CPU work on the worker thread.
async fn handle(
    job: u64,
    worker: mpsc::Sender<Request>,
) -> Result<u64, String> {
    sleep(Duration::from_millis(2)).await;
    let (tx, rx) = oneshot::channel();
    // Unbounded: `send` never blocks the loop.
    worker.send((job, tx)).map_err(|_| "the worker is gone")?;
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
    let (requests, inbox) = mpsc::channel::<Request>();
    let worker = thread::spawn(move || {
        // Ends when every sender is dropped and the queue is empty.
        for (input, answer) in inbox {
            let result =
                panic::catch_unwind(AssertUnwindSafe(|| compute(input)));
            let _ = answer.send(result); // the job may be gone: fine
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let (results, stall) = runtime.block_on(async {
        let heartbeat = tokio::spawn(heartbeat());
        let mut jobs = JoinSet::new();
        for job in 0..8u64 {
            jobs.spawn(handle(job, requests.clone()));
        }
        let mut results = Vec::new();
        while let Some(done) = jobs.join_next().await {
            results.push(done??);
        }
        Ok::<_, Box<dyn Error + Send + Sync>>((results, heartbeat.await?))
    })?;
    drop(runtime); // no job is left holding a sender
    drop(requests); // the last sender: the worker's loop ends
    worker
        .join()
        .map_err(|_| "the worker panicked outside a job")?;

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

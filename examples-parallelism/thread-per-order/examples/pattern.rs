//! The pattern of `parallelism-thread-per-order` on its own, ready to copy:
//! a new thread for every job, at most `CAP` alive at once. Each thread
//! rings a bell (sends its job's number) as it ends; the loop joins the
//! threads that rang, and waits for a bell when it is at the cap. Joining
//! hands back each result, or the panic of the job that failed.
//!
//! ```text
//! cargo run -p parallelism-thread-per-order --example thread-per-order-pattern
//! ```
//!
//! It needs only the standard library.

use std::collections::HashMap;
use std::error::Error;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The most threads alive at once.
const CAP: usize = 16;

/// Stands in for your CPU work.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for blocking waiting: it holds the thread, not a core.
fn wait_for_io() {
    thread::sleep(Duration::from_millis(5));
}

fn handle(job: u64) -> u64 {
    let half = compute(job);
    wait_for_io();
    compute(half)
}

/// Sends the job's number when dropped: at the end of the thread, even
/// one that panics.
struct Bell(u64, Sender<u64>);

impl Drop for Bell {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

type Running = HashMap<u64, JoinHandle<u64>>;

/// Joins the thread of `job`: its result, or `Err(job)` if it panicked.
fn join(running: &mut Running, job: u64) -> Option<Result<u64, u64>> {
    // Only threads in `running` ring, so the job is there.
    let thread = running.remove(&job)?;
    Some(thread.join().map_err(|_panic| job))
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (bell, rung) = mpsc::channel();
    let mut running = Running::new();
    let mut results = Vec::new();
    for job in 0..100u64 {
        // Join whatever has finished, then wait for a bell at the cap.
        while let Ok(done) = rung.try_recv() {
            results.extend(join(&mut running, done));
        }
        while running.len() >= CAP {
            let done = rung.recv()?; // we hold a sender: it cannot fail
            results.extend(join(&mut running, done));
        }
        let bell = bell.clone();
        let thread = thread::Builder::new().spawn(move || {
            let _bell = Bell(job, bell);
            handle(job)
        })?; // an error, not a panic, when the OS refuses a thread
        running.insert(job, thread);
    }
    // Closing: join every thread still running.
    while !running.is_empty() {
        let done = rung.recv()?;
        results.extend(join(&mut running, done));
    }
    let mut values = Vec::with_capacity(results.len());
    for result in results {
        values.push(result.map_err(|job| format!("job {job} panicked"))?);
    }
    // Check the answer, not just that it ran.
    let mut expected: Vec<u64> =
        (0..100).map(|j| compute(compute(j))).collect();
    expected.sort_unstable();
    values.sort_unstable();
    assert_eq!(values, expected);
    println!("{} jobs done, every result checked", values.len());
    Ok(())
}

//! The pattern of `parallelism-rayon` on its own, ready to copy: a rayon
//! pool of its own, one job per item spawned in FIFO order from the
//! calling thread, each job's result (or the panic of the item it was on)
//! sent back on a channel. `build_scoped` joins the pool's threads before
//! it returns, so nothing is left running.
//!
//! ```text
//! cargo run -p parallelism-rayon --example rayon-pattern
//! ```
//!
//! It needs only `rayon = "1"`.

use std::error::Error;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rayon::ThreadPoolBuilder;

/// Stands in for your CPU work: what rayon is for.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Stands in for blocking waiting: it holds a rayon worker. Keep it rare.
fn wait_for_io() {
    thread::sleep(Duration::from_millis(1));
}

fn handle(job: u64) -> u64 {
    let half = compute(job);
    wait_for_io();
    compute(half)
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (results_tx, results_rx) = mpsc::channel();
    ThreadPoolBuilder::new()
        .num_threads(thread::available_parallelism().map_or(2, |n| n.get()))
        // Each pool thread runs rayon's worker loop; the threads are joined
        // when the closure below returns.
        .build_scoped(
            |worker| worker.run(),
            |pool| {
                // Runs this closure here, not on a pool thread; returns
                // once every job spawned in it is done.
                pool.in_place_scope_fifo(|scope| {
                    for job in 0..100u64 {
                        let results_tx = &results_tx;
                        scope.spawn_fifo(move |_| {
                            // Caught here, the panic keeps its job number.
                            let result =
                                panic::catch_unwind(AssertUnwindSafe(|| {
                                    handle(job)
                                }))
                                .map_err(|_| job);
                            // The receiver outlives the scope: cannot fail.
                            let _ = results_tx.send(result);
                        });
                    }
                });
            },
        )?;
    drop(results_tx); // every job is done: the loop below ends when empty

    let mut values = Vec::new();
    for result in results_rx {
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

//! The two limits of `block_in_place` that the crate's header states, shown
//! rather than claimed: it panics on a current-thread runtime, and it
//! stalls the other futures of its own task.

use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Builder;
use tokio::task::block_in_place;
use tokio::time::sleep;

#[test]
fn it_panics_on_a_current_thread_runtime() {
    let runtime = Builder::new_current_thread().build().unwrap();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async { block_in_place(|| ()) });
    }));
    let payload = outcome.expect_err("block_in_place did not panic");
    let message = restaurant::panic_message(&*payload);
    assert!(
        message.contains("multi-threaded runtime"),
        "unexpected panic: {message}"
    );
}

#[test]
fn it_stalls_the_other_futures_of_its_own_task() {
    const BLOCK: Duration = Duration::from_millis(200);
    let runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let start = Instant::now();
    let (woke, spawned_woke) = runtime.block_on(async move {
        // Another task: it lives on the core that `block_in_place` hands
        // away, so it is polled on time.
        let other_task = tokio::spawn(async move {
            sleep(Duration::from_millis(5)).await;
            start.elapsed()
        });
        // One task, two futures. `join!` polls the sibling first, which
        // sets its 5 ms timer, then the blocker, which blocks in place.
        let same_task = tokio::spawn(async move {
            let sibling = async {
                sleep(Duration::from_millis(5)).await;
                start.elapsed()
            };
            let blocker = async { block_in_place(|| thread::sleep(BLOCK)) };
            tokio::join!(sibling, blocker).0
        });
        (same_task.await.unwrap(), other_task.await.unwrap())
    });
    // The sibling's 5 ms timer fired long ago, but nobody polled it until
    // the blocking closure returned.
    assert!(woke >= BLOCK, "the sibling ran after {woke:?}");
    // A separate task was rescued (a wide margin for a busy machine).
    assert!(
        spawned_woke < BLOCK / 2,
        "the task ran after {spawned_woke:?}"
    );
}

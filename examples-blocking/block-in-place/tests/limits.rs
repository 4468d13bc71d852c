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
    // How long the closure blocks: far beyond the 5 ms timers below, so
    // that the other task has all of it to be polled in, even on a loaded
    // machine whose threads wake tens of milliseconds late.
    const BLOCK: Duration = Duration::from_millis(500);
    let runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let start = Instant::now();
    let (woke, unblocked, spawned_woke) = runtime.block_on(async move {
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
            let blocker = async {
                block_in_place(|| thread::sleep(BLOCK));
                start.elapsed()
            };
            tokio::join!(sibling, blocker)
        });
        let (woke, unblocked) = same_task.await.unwrap();
        (woke, unblocked, other_task.await.unwrap())
    });
    // Each moment is compared with the blocker's return in the same run,
    // not with a fixed budget, so a slow machine moves both alike.
    // The sibling's 5 ms timer fired long ago, but nobody polled it until
    // the blocking closure returned.
    assert!(
        woke >= unblocked && unblocked >= BLOCK,
        "the sibling ran after {woke:?}, the closure returned after \
         {unblocked:?}"
    );
    // A separate task was rescued: it ran while the closure still blocked.
    assert!(
        spawned_woke < unblocked,
        "the task ran after {spawned_woke:?}, the closure returned after \
         {unblocked:?}"
    );
}

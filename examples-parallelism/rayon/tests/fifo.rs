//! Why the model spawns with `spawn_fifo`: the order rayon runs jobs in
//! depends on where they are spawned from. On one worker thread, so that
//! the order is exact rather than a race.

use std::sync::Mutex;

use rayon::{ThreadPool, ThreadPoolBuilder};

const JOBS: usize = 8;

/// The jobs only push a number: none panics holding the lock.
const UNPOISONED: &str = "no job panics holding the lock";

fn one_worker() -> ThreadPool {
    ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool starts")
}

/// Spawned from a pool thread (`pool.scope` runs its closure on one), plain
/// `spawn` pushes each job on that worker's own deque, which the worker
/// then works through newest first: the last order would be cooked first.
#[test]
fn spawn_from_a_pool_thread_runs_the_newest_job_first() {
    let ran = Mutex::new(Vec::new());
    one_worker().scope(|s| {
        for job in 0..JOBS {
            let ran = &ran;
            s.spawn(move |_| ran.lock().expect(UNPOISONED).push(job));
        }
    });
    let newest_first: Vec<usize> = (0..JOBS).rev().collect();
    assert_eq!(ran.into_inner().expect(UNPOISONED), newest_first);
}

/// The same from a FIFO scope: oldest first, the order customers came in.
#[test]
fn spawn_fifo_from_a_pool_thread_runs_the_oldest_job_first() {
    let ran = Mutex::new(Vec::new());
    one_worker().scope_fifo(|s| {
        for job in 0..JOBS {
            let ran = &ran;
            s.spawn_fifo(move |_| ran.lock().expect(UNPOISONED).push(job));
        }
    });
    let oldest_first: Vec<usize> = (0..JOBS).collect();
    assert_eq!(ran.into_inner().expect(UNPOISONED), oldest_first);
}

/// From outside the pool, as the model's cashier spawns, every job goes
/// through the pool's shared injector queue, which is FIFO whichever
/// `spawn` is used. `spawn_fifo` in the model says the intent, and keeps
/// the order should the cashier ever move onto a pool thread.
#[test]
fn spawn_from_outside_the_pool_is_fifo_either_way() {
    let ran = Mutex::new(Vec::new());
    one_worker().in_place_scope(|s| {
        for job in 0..JOBS {
            let ran = &ran;
            s.spawn(move |_| ran.lock().expect(UNPOISONED).push(job));
        }
    });
    let oldest_first: Vec<usize> = (0..JOBS).collect();
    assert_eq!(ran.into_inner().expect(UNPOISONED), oldest_first);
}

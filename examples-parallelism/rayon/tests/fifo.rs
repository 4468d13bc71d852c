//! Why the model spawns with `spawn_fifo`: the order rayon runs jobs in
//! depends on where they are spawned from. On one worker thread, so that
//! the order is exact rather than a race; and then the model itself, one
//! cook serving a queue of customers in the order they were rung up.

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

/// The model itself, end to end: with one cook, the plates leave in the
/// order the cashier rang the orders up. A `banquet` seats everyone at
/// once, so the cashier rings up orders far faster than one cook cooks
/// them and the queue is long: newest-first would show as most pairs of
/// orders served out of turn. The customers time both events from their
/// side, so two ring-ups a few microseconds apart may be seen swapped;
/// a tenth of the pairs is the margin for that.
#[test]
fn the_model_serves_orders_in_the_order_they_were_rung_up() {
    use parallelism_rayon::MODEL;
    use restaurant::Preset;
    use restaurant::conformance::{Server, scaled_workload};

    let workload = scaled_workload(Preset::Banquet, 32, 1);
    let server = Server::start(&MODEL, 1).expect("the model opens");
    let night = server.customers(&workload).expect("a night is served");
    server.finish().expect("the model closes");

    let mut times: Vec<_> = night
        .visits
        .iter()
        .map(|v| (v.rung.expect("rung up"), v.plated.expect("plated")))
        .collect();
    times.sort_unstable();
    let plated: Vec<_> = times.iter().map(|&(_, plated)| plated).collect();
    let pairs = plated.len() * (plated.len() - 1) / 2;
    let out_of_turn = (0..plated.len())
        .flat_map(|i| (i + 1..plated.len()).map(move |j| (i, j)))
        .filter(|&(i, j)| plated[i] > plated[j])
        .count();
    assert!(
        out_of_turn * 10 <= pairs,
        "{out_of_turn} of {pairs} pairs of orders were served out of turn"
    );
}

//! The deaf door: one long chop on a two-worker tokio runtime, and a
//! customer who knocks while it runs.
//!
//! ```text
//! cargo run --release -p concurrency-tokio --example deaf_door
//! ```
//!
//! A runtime with two workers, a listener, and an accept loop that is a
//! task on that runtime and says `NEXT` to whoever it accepts. Each round,
//! a cook wakes from a 10 ms timer and chops for 200 ms of pure CPU; 50 ms
//! into the chop a customer connects, and the round prints how long the
//! customer waited for the greeting. The second worker is idle the whole
//! time, and yet, with the chop on a worker, the customer waits for the
//! rest of the chop: about 150 ms.
//!
//! Why, in tokio 1.54.1 (`runtime/scheduler/multi_thread/`): an idle worker
//! parks on the I/O driver only if it wins the driver's lock, and on a
//! condition variable otherwise (`Inner::park` in `park.rs`, lines
//! 143-148). The timer fires on the worker in the driver, which queues the
//! woken cook locally and tells nobody: `Handle::schedule_local` does not
//! notify from inside a park (`worker.rs`, 1412-1417), and after it
//! `Core::should_notify_others` wants more than one task (1225). Woken by
//! the driver, the worker is not "searching" (`Core::transition_from_parked`,
//! 1262-1267), so polling the cook notifies nobody either. It chops; the
//! other worker sleeps on its condition variable; nobody polls epoll, and
//! the accept loop is not told of the customer until the chop ends and
//! the chopping worker parks on the driver again.
//!
//! The second half runs the same chop through `spawn_blocking`: the worker
//! hands it to a blocking-pool thread, goes back to the driver, and the
//! door hears the customer at once.
//!
//! Stable tokio only, with the features `concurrency-tokio` already uses.
//! `Builder::enable_eager_driver_handoff` (unstable: `--cfg tokio_unstable`)
//! makes a worker that leaves the driver to poll a task wake another to take
//! the driver (`Context::run_task`, 668-676); tokio-rs/tokio#4730 is the
//! issue.

use std::error::Error;
use std::hint::black_box;
use std::io::Read;
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Runtime};
use tokio::task::spawn_blocking;
use tokio::time::sleep;

/// The greeting, as the restaurant's cashier says it.
const NEXT: &[u8] = b"NEXT\n";
/// How long the cook chops: a cake.
const CHOP: Duration = Duration::from_millis(200);
/// How far into the chop the customer knocks.
const KNOCK: Duration = Duration::from_millis(50);
/// Rounds for each way of chopping.
const ROUNDS: usize = 20;

/// Where the cook chops.
#[derive(Clone, Copy, Debug)]
enum Kitchen {
    /// Right in the task, on the worker that polls it.
    Worker,
    /// On a thread of the runtime's blocking pool.
    SpawnBlocking,
}

/// Pure CPU work for `how_long`: no system call, no `.await`.
fn chop(how_long: Duration) {
    let start = Instant::now();
    let mut x = 1u64;
    while start.elapsed() < how_long {
        for _ in 0..1_000 {
            x = black_box(
                x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
            );
        }
    }
    black_box(x);
}

/// The accept loop: a task on the runtime that greets whoever comes in.
async fn door(listener: TcpListener) {
    loop {
        if let Ok((mut stream, _)) = listener.accept().await {
            // A fresh socket's buffer takes five bytes at once.
            let _ = stream.write_all(NEXT).await;
        }
    }
}

/// One round: a cook wakes from the timer and chops; `KNOCK` later a
/// customer connects. Returns how long the customer waited for `NEXT`.
fn round(
    runtime: &Runtime,
    addr: SocketAddr,
    kitchen: Kitchen,
) -> Result<Duration, Box<dyn Error>> {
    // Let both workers go idle: one parks on the driver, one on its
    // condition variable.
    thread::sleep(Duration::from_millis(100));
    let (started_tx, started_rx) = mpsc::channel();
    let cook = runtime.spawn(async move {
        // Woken by the timer, so the worker that holds the driver runs it.
        sleep(Duration::from_millis(10)).await;
        let _ = started_tx.send(Instant::now());
        match kitchen {
            Kitchen::Worker => chop(CHOP),
            Kitchen::SpawnBlocking => {
                spawn_blocking(|| chop(CHOP))
                    .await
                    .expect("the chop panicked");
            }
        }
    });
    let started = started_rx.recv()?;
    thread::sleep((started + KNOCK).saturating_duration_since(Instant::now()));
    // The customer walks in. The kernel completes the handshake on its
    // own; the greeting needs the accept loop.
    let walked_in = Instant::now();
    let mut stream = StdStream::connect(addr)?;
    let mut greeting = [0u8; NEXT.len()];
    stream.read_exact(&mut greeting)?;
    let waited = walked_in.elapsed();
    assert_eq!(greeting, NEXT, "the door said something else");
    runtime.block_on(cook)?;
    Ok(waited)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()?;
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(door(listener));
    println!(
        "tokio multi-thread, 2 workers; a {} ms chop, a customer {} ms into it",
        CHOP.as_millis(),
        KNOCK.as_millis()
    );
    for kitchen in [Kitchen::Worker, Kitchen::SpawnBlocking] {
        let name = match kitchen {
            Kitchen::Worker => "chop on a worker",
            Kitchen::SpawnBlocking => "chop in spawn_blocking",
        };
        println!("\n{name}: greeting delay per round");
        let mut waits = Vec::with_capacity(ROUNDS);
        for n in 1..=ROUNDS {
            let waited = round(&runtime, addr, kitchen)?;
            println!("  round {n:>2}: {:>8.3} ms", ms(waited));
            waits.push(waited);
        }
        waits.sort();
        let median = (waits[ROUNDS / 2 - 1] + waits[ROUNDS / 2]) / 2;
        println!(
            "  median {:.3} ms (min {:.3}, max {:.3})",
            ms(median),
            ms(waits[0]),
            ms(waits[ROUNDS - 1])
        );
    }
    Ok(())
}

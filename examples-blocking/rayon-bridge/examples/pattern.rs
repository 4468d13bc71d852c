//! The pattern of `blocking-rayon-bridge` on its own, ready to copy: a TCP
//! service whose one-thread tokio event loop accepts and answers every
//! connection, and sends each piece of CPU work to a rayon pool, awaiting
//! the result on a `oneshot`. A panic in the work is caught on the rayon
//! thread and sent back as a value (uncaught, it would abort the process).
//! At shutdown the loop stops accepting, every accepted job is finished,
//! and the pool's threads are let go. A heartbeat task on the loop, which
//! should tick every millisecond, shows that the loop stays responsive
//! while the pool works.
//!
//! ```text
//! cargo run -p blocking-rayon-bridge --example rayon-bridge-pattern
//! ```
//!
//! It needs `rayon = "1"`, `tokio = { version = "1", features = ["rt",
//! "net", "io-util", "time", "sync", "macros"] }` and `socket2 = "0.6"`
//! (for the listen backlog).

use std::error::Error;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rayon::ThreadPool;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::sleep;

type BoxError = Box<dyn Error + Send + Sync>;

/// Binds with a listen backlog sized for bursts: std's and tokio's `bind`
/// ask for 128, and a burst beyond that waits a second per dropped SYN.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Stands in for your CPU work: too long to run on the event loop.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..200_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Runs `compute(input)` on the rayon pool; the loop is free meanwhile.
async fn on_pool(pool: &ThreadPool, input: u64) -> thread::Result<u64> {
    let (tx, rx) = oneshot::channel();
    pool.spawn_fifo(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(|| compute(input)));
        let _ = tx.send(result); // the receiver may be gone: nobody to tell
    });
    // A job that ended without sending drops `tx`: an error, not a hang.
    rx.await
        .unwrap_or_else(|_| Err(Box::new("the job ended without a result")))
}

/// One job: some work, a wait (a query, a request), some more work.
async fn job(pool: &ThreadPool, input: u64) -> thread::Result<u64> {
    let half = on_pool(pool, input).await?;
    sleep(Duration::from_millis(20)).await;
    on_pool(pool, half).await
}

/// Ticks every millisecond until `stop`; returns the longest gap between
/// two ticks: how long the loop once went without looking at its timer.
async fn heartbeat(mut stop: watch::Receiver<bool>) -> Duration {
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.changed() => return longest,
            () = sleep(Duration::from_millis(1)) => {
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
        }
    }
}

/// The accept loop: a task per connection until `stop` says so, then
/// every connection inside is finished.
async fn serve(
    listener: TcpListener,
    pool: Arc<ThreadPool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(handle(stream, Arc::clone(&pool)));
                }
                // Never fatal: out of descriptors, a reset. Back off.
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One connection: read `JOB <n>`, run the job, answer `DONE <n>
/// <result>`, or `ERROR …` if its work panicked.
async fn handle(mut stream: TcpStream, pool: Arc<ThreadPool>) {
    let (reader, mut writer) = stream.split();
    let mut line = String::new();
    // The reader, and its 8 KiB buffer, end with this block, before the
    // job is awaited: a connection waiting for its job holds no buffer.
    {
        let mut reader = BufReader::new(reader).take(1024);
        if reader.read_line(&mut line).await.is_err() {
            return;
        }
    }
    let reply = match line.trim().strip_prefix("JOB ").map(str::parse) {
        Some(Ok(n)) => match job(&pool, n).await {
            Ok(result) => format!("DONE {n} {result}\n"),
            Err(_panic) => {
                eprintln!("job {n} panicked");
                format!("ERROR job {n} panicked\n")
            }
        },
        _ => "ERROR expected JOB <n>\n".to_owned(),
    };
    let _ = writer.write_all(reply.as_bytes()).await;
}

/// A client: sends one job, returns the answer.
async fn ask(addr: SocketAddr, n: u64) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("JOB {n}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

fn main() -> Result<(), BoxError> {
    // One rayon thread per core by default: the right size for CPU work.
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build()?);
    // The event loop: one thread, this one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    // The answers to expect, worked out before the loop starts: checking
    // them on the loop would stall it, and the heartbeat would say so.
    let expected: Vec<String> = (0..100)
        .map(|n| match n {
            13 => format!("ERROR job {n} panicked\n"),
            n => format!("DONE {n} {}\n", compute(compute(n))),
        })
        .collect();
    runtime.block_on(async {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(stopped.clone()));
        let server = tokio::spawn(serve(listener, Arc::clone(&pool), stopped));

        // The clients share the loop with the server: all they do is wait.
        let mut clients = JoinSet::new();
        for n in 0..100 {
            clients.spawn(async move { (n, ask(addr, n).await) });
        }
        while let Some(answer) = clients.join_next().await {
            let (n, answer) = answer?;
            assert_eq!(answer?, expected[n as usize], "job {n}");
        }
        stop.send(true)?;
        server.await?;
        let stall = heartbeat.await?;
        println!(
            "100 jobs answered, the panicking one with an error; the 1 ms \
             heartbeat's longest gap was {stall:.1?}"
        );
        Ok::<_, BoxError>(())
    })?;
    // Dropping the last handle lets rayon's threads leave once idle.
    drop(runtime);
    drop(pool);
    Ok(())
}

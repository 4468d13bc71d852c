//! The pattern of `blocking-block-in-place` on its own, ready to copy: a
//! TCP service on a multi-thread runtime whose jobs do their CPU work
//! inside `block_in_place`, which hands the worker's queue to another
//! thread first, so the other tasks keep running. An accept loop runs
//! until told to stop; each connection is a task; each job is a task of
//! its own, whose `JoinHandle` reports a panic; at shutdown the loop stops
//! accepting and every accepted job is finished. A heartbeat task, which
//! should tick every millisecond, shows that the runtime stays responsive.
//! The closure may borrow: it runs before `block_in_place` returns. And
//! nothing but the blocking pool's `max_blocking_threads` (512 by default)
//! caps how many jobs block at once: a hundred jobs at once run on about a
//! hundred threads, taking turns on the cores, and the heartbeat's longest
//! gap shows it. Past that cap a worker keeps its queue through its job,
//! and the loop is blocked again: set `max_blocking_threads` to what you
//! can afford.
//!
//! ```text
//! cargo run -p blocking-block-in-place --example block-in-place-pattern
//! ```
//!
//! It needs only `tokio = { version = "1", features = ["rt-multi-thread",
//! "net", "io-util", "time", "macros", "sync"] }` and `socket2 = "0.6"`
//! (for the listen backlog). On a current-thread runtime `block_in_place`
//! panics: use `spawn_blocking` there.

use std::error::Error;
use std::hint::black_box;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
use tokio::sync::watch;
use tokio::task::{JoinSet, block_in_place};
use tokio::time::sleep;

type BoxError = Box<dyn Error + Send + Sync>;

/// Binds with a listen backlog sized for bursts: std's and tokio's `bind`
/// ask for 128, and a burst beyond that waits a second per dropped SYN.
/// Returns a std listener: tokio takes it over inside the server's runtime.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Stands in for your CPU work on some data: a millisecond or so of it,
/// too long for a task to hold a worker.
fn compute(data: &[u64]) -> u64 {
    if data.first() == Some(&13) {
        panic!("unlucky job");
    }
    (0..300_000u64).fold(data.iter().sum(), |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job: some work, a wait (a query, a request), some more work. The
/// closures borrow `data` and `half`: nothing has to be moved or cloned.
async fn job(input: u64) -> u64 {
    let data = vec![input; 16];
    let half = block_in_place(|| compute(&data));
    sleep(Duration::from_millis(20)).await;
    block_in_place(|| compute(&[half]))
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
async fn serve(listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(handle(stream));
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

/// One connection: read `JOB <n>`, run the job as a task of its own, and
/// answer `DONE <n> <result>`, or `ERROR …` if the job panicked.
async fn handle(mut stream: TcpStream) {
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
        // The work runs on the job's own thread, so its panic unwinds
        // through the job's task: a JoinError.
        Some(Ok(n)) => match tokio::spawn(job(n)).await {
            Ok(result) => format!("DONE {n} {result}\n"),
            Err(e) if e.is_panic() => {
                eprintln!("job {n} panicked");
                format!("ERROR job {n} panicked\n")
            }
            Err(e) => format!("ERROR {e}\n"),
        },
        _ => "ERROR expected JOB <n>\n".to_owned(),
    };
    let _ = writer.write_all(reply.as_bytes()).await;
}

/// The server, on a thread of its own: a multi-thread runtime, one worker
/// per core, runs every connection, every job and the heartbeat; the
/// accept loop runs in `block_on` on this thread.
fn server(
    listener: std::net::TcpListener,
    stop: watch::Receiver<bool>,
) -> Result<Duration, BoxError> {
    // `block_in_place` needs the multi-thread flavour.
    let runtime = Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        let heartbeat = tokio::spawn(heartbeat(stop.clone()));
        serve(listener, stop).await;
        Ok(heartbeat.await?)
    })
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
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let server = thread::spawn(move || server(listener, stopped));

    // The clients, on a runtime of their own on this thread.
    let clients = Builder::new_current_thread().enable_all().build()?;
    clients.block_on(async {
        let mut clients = JoinSet::new();
        for n in 0..100 {
            clients.spawn(async move { (n, ask(addr, n).await) });
        }
        while let Some(answer) = clients.join_next().await {
            let (n, answer) = answer?;
            let answer = answer?;
            let expected = if n == 13 {
                format!("ERROR job {n} panicked\n")
            } else {
                format!("DONE {n} {}\n", compute(&[compute(&[n; 16])]))
            };
            assert_eq!(answer, expected, "job {n}");
        }
        Ok::<_, BoxError>(())
    })?;
    stop.send(true)?;
    let stall = server.join().map_err(|_| "the server panicked")??;
    println!(
        "100 jobs answered, the panicking one with an error; the 1 ms \
         heartbeat's longest gap was {stall:.1?}"
    );
    Ok(())
}

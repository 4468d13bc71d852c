//! The pattern of `blocking-spawn-blocking` on its own, ready to copy: a
//! TCP service on a one-thread event loop, with CPU work on tokio's
//! blocking pool. An accept loop runs until told to stop; each connection
//! is a task on the loop; each job is a task whose CPU work goes to the
//! pool, capped at one thread per core, with `spawn_blocking`, and whose
//! panic comes back as a `JoinError`; at shutdown the loop stops accepting
//! and every accepted job is finished. A heartbeat task on the loop, which
//! should tick every millisecond, shows that the loop stays responsive
//! while the pool works.
//!
//! ```text
//! cargo run -p blocking-spawn-blocking --example spawn-blocking-pattern
//! ```
//!
//! It needs only `tokio = { version = "1", features = ["rt", "net",
//! "io-util", "time", "macros", "sync"] }` and `socket2 = "0.6"` (for the
//! listen backlog).

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
use tokio::task::{JoinError, JoinSet, spawn_blocking};
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

/// Stands in for your CPU work: a millisecond or so of it, too long for
/// an event loop.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..300_000u64).fold(input, |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job: some work, a wait (a query, a request), some more work. The
/// waiting happens on the loop; the work on the pool.
async fn job(input: u64) -> Result<u64, JoinError> {
    // The closure must own its input (`move`) and hands its result back.
    // A panic inside it comes back as a JoinError, not as a crash.
    let half = spawn_blocking(move || compute(input)).await?;
    sleep(Duration::from_millis(20)).await;
    spawn_blocking(move || compute(half)).await
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
        // The outer JoinError is the job's task, the inner one its work's.
        Some(Ok(n)) => match tokio::spawn(job(n)).await.and_then(|r| r) {
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

/// The server, on a thread of its own: one current-thread runtime runs
/// the accept loop, every connection, every job's waiting and the
/// heartbeat; its blocking pool runs the work.
fn server(
    listener: std::net::TcpListener,
    stop: watch::Receiver<bool>,
) -> Result<Duration, BoxError> {
    // CPU work gains nothing from more threads than cores; the default cap
    // (512) is meant for blocking I/O, where threads mostly sleep.
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(cores)
        .build()?;
    // Dropping the runtime, when this function returns, joins the pool.
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
                format!("DONE {n} {}\n", compute(compute(n)))
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

//! The pattern of `blocking-dedicated-thread` on its own, ready to copy: a
//! TCP service whose one-thread tokio event loop accepts and answers every
//! connection, while a thread of its own does the CPU work. Requests go to
//! that thread down a std `mpsc` channel, each with a `oneshot` sender for
//! its answer. A panic is caught on the thread and comes back as that
//! request's error. At shutdown the loop stops accepting and finishes
//! every accepted job; then closing the channel stops the thread, which is
//! joined. A heartbeat task on the loop, which should tick every
//! millisecond, shows that the loop stays responsive while the thread
//! works.
//!
//! ```text
//! cargo run -p blocking-dedicated-thread --example dedicated-thread-pattern
//! ```
//!
//! It needs `tokio = { version = "1", features = ["rt", "net", "io-util",
//! "time", "sync", "macros"] }` and `socket2 = "0.6"` (for the listen
//! backlog). For several threads, share the receiver behind a `Mutex` (as
//! the crate does) or use an MPMC channel such as crossbeam's.

use std::error::Error;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::sleep;

type BoxError = Box<dyn Error + Send + Sync>;

/// A request for the worker thread: the input and where to answer.
type Request = (u64, oneshot::Sender<thread::Result<u64>>);

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

/// The worker thread: answers requests until every sender is gone.
fn worker(inbox: mpsc::Receiver<Request>) {
    for (input, answer) in inbox {
        let result = panic::catch_unwind(AssertUnwindSafe(|| compute(input)));
        let _ = answer.send(result); // the asker may be gone: fine
    }
}

/// Runs `compute(input)` on the worker thread; the loop is free meanwhile.
async fn on_worker(
    worker: &mpsc::Sender<Request>,
    input: u64,
) -> thread::Result<u64> {
    let (tx, rx) = oneshot::channel();
    // Unbounded: `send` never blocks the loop. If the worker is gone, `tx`
    // is dropped with the request and `rx` says so.
    let _ = worker.send((input, tx));
    rx.await
        .unwrap_or_else(|_| Err(Box::new("the worker thread is gone")))
}

/// One job: some work, a wait (a query, a request), some more work.
async fn job(
    worker: &mpsc::Sender<Request>,
    input: u64,
) -> thread::Result<u64> {
    let half = on_worker(worker, input).await?;
    sleep(Duration::from_millis(20)).await;
    on_worker(worker, half).await
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
    worker: mpsc::Sender<Request>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(handle(stream, worker.clone()));
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
async fn handle(mut stream: TcpStream, worker: mpsc::Sender<Request>) {
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
        Some(Ok(n)) => match job(&worker, n).await {
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
    let (requests, inbox) = mpsc::channel::<Request>();
    let kitchen = thread::spawn(move || worker(inbox));
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
        // The server gets the only sender: when it returns, every clone
        // it handed out is gone too.
        let server = tokio::spawn(serve(listener, requests, stopped));

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
    // Every sender is gone with the server: the worker's loop has ended.
    kitchen
        .join()
        .map_err(|_| "the worker panicked outside a job")?;
    Ok(())
}

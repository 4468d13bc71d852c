//! The pattern of `concurrency-tokio-current-thread` on its own, ready to
//! copy: a TCP service on one thread, Node.js's way. An accept loop runs
//! until told to stop; each connection is a task; each job is a task of
//! its own, whose `JoinHandle` reports a panic the moment it happens; at
//! shutdown the loop stops accepting and every accepted job is finished.
//! Server, connections, jobs and clients all run on the calling thread,
//! and the example checks that too.
//!
//! ```text
//! cargo run -p concurrency-tokio-current-thread \
//!     --example tokio-current-thread-pattern
//! ```
//!
//! It needs only `tokio = { version = "1", features = ["rt", "net",
//! "io-util", "time", "macros", "sync"] }` and `socket2 = "0.6"` (for the
//! listen backlog).

use std::cell::Cell;
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::sleep;

type BoxError = Box<dyn Error + Send + Sync>;

thread_local! {
    /// Jobs finished on this thread. If any job ran elsewhere, the count
    /// on the calling thread comes up short.
    static DONE_HERE: Cell<u64> = const { Cell::new(0) };
}

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

/// Stands in for your CPU work. Keep it short: it holds the only thread,
/// and nothing else (accepting, reading, other jobs) runs meanwhile.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// One job: some work, a wait (a query, a request), some more work.
async fn job(input: u64) -> u64 {
    let half = compute(input);
    sleep(Duration::from_millis(20)).await;
    let result = compute(half);
    DONE_HERE.set(DONE_HERE.get() + 1);
    result
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
        Some(Ok(n)) => match tokio::spawn(job(n)).await {
            Ok(result) => format!("DONE {n} {result}\n"),
            // The loop survives a panicking task: tokio catches it.
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

/// A client: sends one job, returns the answer.
async fn ask(addr: SocketAddr, n: u64) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("JOB {n}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

fn main() -> Result<(), BoxError> {
    // No worker threads: the loop runs inside `block_on`, on this thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, stopped));

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
        stop.send(true)?;
        server.await?;
        Ok::<_, BoxError>(())
    })?;
    // Every job but the unlucky one finished on this very thread.
    assert_eq!(DONE_HERE.get(), 99, "jobs ran on another thread");
    println!(
        "100 jobs answered on one thread, the panicking one with an error"
    );
    Ok(())
}

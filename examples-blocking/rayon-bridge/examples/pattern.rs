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
//! cargo run -p blocking-rayon-bridge --example rayon-bridge-pattern -- \
//!     --listen 127.0.0.1:7000
//! ```
//!
//! Without arguments it runs a demo that checks its own answers; with
//! `--listen ADDR` it serves until Ctrl-C or SIGTERM, then exits 0. Stop
//! is one `CancellationToken` that the accept loop, every connection's
//! read and the heartbeat select on; a `TaskTracker` waits until every
//! accepted job is answered, and a connection still waiting for its
//! request is closed. A request line must come whole within `PATIENCE`.
//!
//! Its dependencies, all of them:
//!
//! ```toml
//! [dependencies]
//! rayon = "1"
//! socket2 = "0.6" # for the listen backlog
//! tokio-util = { version = "0.7", features = ["rt"] }
//!
//! [dependencies.tokio]
//! version = "1"
//! features = ["rt", "net", "io-util", "time", "macros", "sync",
//!     "signal"]
//! ```

use std::error::Error;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rayon::ThreadPool;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold its connection for ever.
const PATIENCE: Duration = Duration::from_secs(2);

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
async fn heartbeat(stop: CancellationToken) -> Duration {
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    loop {
        tokio::select! {
            () = stop.cancelled() => return longest,
            () = sleep(Duration::from_millis(1)) => {
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
        }
    }
}

/// The accept loop: a task per connection until `stop` is cancelled,
/// then waits for every connection inside to end.
async fn serve(
    listener: TcpListener,
    pool: Arc<ThreadPool>,
    stop: CancellationToken,
) {
    // Unlike a `JoinSet`, a tracker forgets a task the moment it ends,
    // so a long-running server holds nothing for connections gone by.
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let pool = Arc::clone(&pool);
                connections.spawn(handle(stream, pool, stop.clone()));
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Err(e) => {
                eprintln!("accept failed: {e}");
                sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Refuse newcomers; `wait` returns once the tracker is closed and
    // the last connection has ended.
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One connection: read `JOB <n>` within `PATIENCE`, unless told to stop
/// first (once read, a job is finished whatever comes); run the job, and
/// answer `DONE <n> <result>`, or `ERROR …` if its work panicked.
async fn handle(
    mut stream: TcpStream,
    pool: Arc<ThreadPool>,
    stop: CancellationToken,
) {
    let (reader, mut writer) = stream.split();
    let mut line = String::new();
    // The reader, and its 8 KiB buffer, end with this block, before the
    // job is awaited: a connection waiting for its job holds no buffer.
    {
        let mut reader = BufReader::new(reader).take(1024);
        let read = tokio::select! {
            // Polled first: a request already in wins over the stop.
            biased;
            read = timeout(PATIENCE, reader.read_line(&mut line)) => read,
            () = stop.cancelled() => return,
        };
        // Too slow, or the connection failed: hang up.
        if !matches!(read, Ok(Ok(_))) {
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

/// The demo: a server and a hundred clients on one loop, every answer
/// checked, then the stop.
fn demo() -> Result<(), BoxError> {
    // One rayon thread per core by default: the right size for CPU work.
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build()?);
    let runtime = runtime()?;
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
        let stop = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat(stop.clone()));
        let server =
            tokio::spawn(serve(listener, Arc::clone(&pool), stop.clone()));

        // The clients share the loop with the server: all they do is wait.
        let mut clients = JoinSet::new();
        for n in 0..100 {
            clients.spawn(async move { (n, ask(addr, n).await) });
        }
        while let Some(answer) = clients.join_next().await {
            let (n, answer) = answer?;
            assert_eq!(answer?, expected[n as usize], "job {n}");
        }
        stop.cancel();
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

/// The event loop: one thread, the caller's.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}

/// The server on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    // One rayon thread per core by default: the right size for CPU work.
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build()?);
    runtime()?.block_on(async {
        let listener = bind(addr)?;
        let stop = on_signal(listener.local_addr()?)?;
        let heartbeat = tokio::spawn(heartbeat(stop.clone()));
        serve(listener, pool, stop).await;
        let stall = heartbeat.await?;
        eprintln!("the 1 ms heartbeat's longest gap was {stall:.1?}");
        Ok(())
    })
}

/// Resolves at Ctrl-C, or on Unix at SIGTERM (what `kill` and service
/// managers send). On Unix both handlers are installed here, when it is
/// called, not at the first poll: a signal that comes as soon as the
/// caller says it listens is caught rather than fatal.
fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// A token cancelled at Ctrl-C or SIGTERM; then says where it listens
/// (flushed: whoever started us may be waiting for it on a pipe).
fn on_signal(addr: SocketAddr) -> io::Result<CancellationToken> {
    let stop = CancellationToken::new();
    let signal = stop_signal()?;
    let cancel = stop.clone();
    tokio::spawn(async move {
        signal.await;
        cancel.cancel();
    });
    println!("listening on {addr}");
    io::stdout().flush()?;
    Ok(stop)
}

/// No arguments: the demo. `--listen ADDR`: the server. Anything else: a
/// usage line and exit 2.
fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => demo(),
        [flag, addr] if flag == "--listen" => match addr.parse() {
            Ok(addr) => listen(addr),
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

/// Says how to call it, and exits 2, as a command line does.
fn usage() -> ! {
    eprintln!("usage: rayon-bridge-pattern [--listen ADDR]");
    std::process::exit(2)
}

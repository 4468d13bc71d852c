//! The pattern of `concurrency-tokio` on its own, ready to copy: a TCP
//! service on a multi-thread runtime. An accept loop runs until told to
//! stop; each connection is a task; each job is a task of its own, whose
//! `JoinHandle` reports a panic the moment it happens. Stopping is one
//! `CancellationToken` that the accept loop and every connection's read
//! select on: at stop the loop stops accepting, a connection still
//! waiting for its request is closed, and a `TaskTracker` waits until
//! every accepted job is answered. A request line must come whole within
//! `PATIENCE`, however slowly it drips.
//!
//! ```text
//! cargo run -p concurrency-tokio --example tokio-pattern
//! cargo run -p concurrency-tokio --example tokio-pattern -- \
//!     --listen 127.0.0.1:7000
//! ```
//!
//! Without arguments it runs a demo that checks its own answers; with
//! `--listen ADDR` it serves until Ctrl-C or SIGTERM, then exits 0.
//!
//! Its dependencies, all of them:
//!
//! ```toml
//! [dependencies]
//! socket2 = "0.6" # for the listen backlog
//! tokio-util = { version = "0.7", features = ["rt"] }
//!
//! [dependencies.tokio]
//! version = "1"
//! features = ["rt-multi-thread", "net", "io-util", "time", "macros",
//!     "signal"]
//! ```

use std::error::Error;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
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
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Stands in for your CPU work. Keep it short: it holds a worker thread.
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
    compute(half)
}

/// The accept loop: a task per connection until `stop` is cancelled,
/// then waits for every connection inside to end.
async fn serve(listener: TcpListener, stop: CancellationToken) {
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
                connections.spawn(handle(stream, stop.clone()));
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

/// One connection: read `JOB <n>` within `PATIENCE`, unless told to
/// stop first; run the job as a task of its own, and answer `DONE <n>
/// <result>`, or `ERROR …` if the job panicked. Once read, a job is
/// finished even if the stop comes meanwhile.
async fn handle(mut stream: TcpStream, stop: CancellationToken) {
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

/// The server: serves on `addr` until Ctrl-C or SIGTERM, then finishes
/// every job it took and returns.
async fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = bind(addr)?;
    let stop = CancellationToken::new();
    let signal = stop_signal()?;
    let cancel = stop.clone();
    tokio::spawn(async move {
        signal.await;
        cancel.cancel();
    });
    // Said once the handlers are in, and flushed: whoever started us
    // may be waiting for this line on a pipe.
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    serve(listener, stop).await;
    Ok(())
}

/// A client: sends one job, returns the answer.
async fn ask(addr: SocketAddr, n: u64) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("JOB {n}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// The demo: a server on a free port, a hundred clients, every answer
/// checked, then the stop.
async fn demo() -> Result<(), BoxError> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, stop.clone()));

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
    stop.cancel();
    server.await?;
    println!("100 jobs answered, the panicking one with an error");
    Ok(())
}

/// No arguments: the demo. `--listen ADDR`: the server. Anything else: a
/// usage line and exit 2.
fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.as_slice() {
        [] => None,
        [flag, addr] if flag == "--listen" => match addr.parse() {
            Ok(addr) => Some(addr),
            Err(_) => usage(),
        },
        _ => usage(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .build()?;
    match addr {
        Some(addr) => runtime.block_on(listen(addr)),
        None => runtime.block_on(demo()),
    }
}

/// Says how to call it, and exits 2, as a command line does.
fn usage() -> ! {
    eprintln!("usage: tokio-pattern [--listen ADDR]");
    std::process::exit(2)
}

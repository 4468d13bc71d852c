//! The mistake of `blocking-blocked` on its own: **to recognise, not to
//! copy.** A TCP service on tokio's current-thread runtime: an accept loop
//! runs until told to stop; each connection is a task; each job is a task
//! of its own, whose `JoinHandle` reports a panic; and each job does its
//! CPU work inline, in its `async fn`. A heartbeat task on the same loop,
//! which should tick every millisecond, measures the longest the loop went
//! without ticking; the program checks that it is at least about one
//! job's work: while a job computes, nothing else on the loop runs, not
//! the heartbeat, not the accept loop, not the other connections. The
//! fixes are the other crates' patterns (`spawn-blocking-pattern` first).
//!
//! ```text
//! cargo run -p blocking-blocked --example blocked-pattern
//! cargo run -p blocking-blocked --example blocked-pattern -- \
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
//! socket2 = "0.6" # for the listen backlog
//! tokio-util = { version = "0.7", features = ["rt"] }
//!
//! [dependencies.tokio]
//! version = "1"
//! features = ["rt", "net", "io-util", "time", "macros", "signal"]
//! ```

use std::error::Error;
use std::future::Future;
use std::hint::black_box;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;
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
/// Returns a std listener: tokio takes it over inside the server's runtime.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Stands in for your CPU work: a millisecond or so of it, far too long
/// for an event loop.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..300_000u64).fold(input, |acc, i| {
        black_box(acc.wrapping_mul(31).wrapping_add(i))
    })
}

/// One job: some work, a wait (a query, a request), some more work.
/// THE MISTAKE: the work runs inline, on the loop's only thread.
async fn job(input: u64) -> u64 {
    let half = compute(input);
    sleep(Duration::from_millis(20)).await; // waiting is fine
    compute(half)
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

/// One connection: read `JOB <n>` within `PATIENCE`, unless told to stop first
/// (once read, a job is finished whatever comes); run the job as a task of its
/// own, and answer `DONE <n> <result>`, or `ERROR …` if the job panicked.
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
        // On one thread the job's task runs here too, but as a task of its
        // own its panic comes back as a JoinError instead of ending this
        // connection's task.
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

/// The server: one current-thread runtime runs the accept loop, every
/// connection, every job and the heartbeat.
async fn server(
    listener: std::net::TcpListener,
    stop: CancellationToken,
) -> Result<Duration, BoxError> {
    let listener = TcpListener::from_std(listener)?;
    let heartbeat = tokio::spawn(heartbeat(stop.clone()));
    serve(listener, stop).await;
    Ok(heartbeat.await?)
}

/// The server's runtime.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}

/// A client: sends one job, returns the answer.
async fn ask(addr: SocketAddr, n: u64) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("JOB {n}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// The demo: a server on a thread of its own, a hundred clients, every
/// answer checked, then the stop.
fn demo() -> Result<(), BoxError> {
    // How long one job's work takes here, on an idle thread (best of 3),
    // timed before and after the demo: a machine busier at one moment
    // than during the night would make that moment's figure too long.
    let time_work = || {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                black_box(compute(black_box(1)));
                start.elapsed()
            })
            .min()
            .unwrap_or_default() // 3 samples: never empty
    };
    let before = time_work();

    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = thread::spawn(move || -> Result<Duration, BoxError> {
        // The runtime is dropped as the thread ends, and with it its pool.
        runtime()?.block_on(server(listener, stopped))
    });

    // The clients, on a runtime of their own on this thread, so that the
    // server's stalls are the server's alone.
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
    stop.cancel();
    let stall = server.join().map_err(|_| "the server panicked")??;
    let work = before.min(time_work());

    // The loop cannot tick while a job computes on its thread, so the
    // longest gap is at least one job's work (half, for a noisy machine).
    assert!(
        stall >= work / 2,
        "stall {stall:?}, one job's work {work:?}"
    );
    println!(
        "100 jobs answered, the panicking one with an error; the 1 ms \
         heartbeat once waited {stall:.1?} (one job's work is {work:.1?}): \
         the loop was blocked"
    );
    Ok(())
}

/// The server on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = bind(addr)?;
    runtime()?.block_on(async {
        let stop = on_signal(listener.local_addr()?)?;
        let stall = server(listener, stop).await?;
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
    eprintln!("usage: blocked-pattern [--listen ADDR]");
    std::process::exit(2)
}

//! The pattern of `blocking-smol-unblock` on its own, ready to copy: a TCP
//! service on a single-threaded smol executor, which accepts and answers
//! every connection, and sends each piece of CPU work to the `blocking`
//! pool with `unblock`. A panic in the work is raised again where the
//! task is awaited; `catch_unwind` turns it into that job's error. A closed
//! channel tells the accept loop, every connection's read and the
//! heartbeat to stop (a connection still waiting for its request is
//! closed; an accepted job is answered); a second one, whose senders the
//! connections hold, tells it when the last connection is done. A request
//! line must come whole within `PATIENCE`. A heartbeat
//! task on the loop, which should tick every millisecond, shows that the
//! loop stays responsive while the pool works.
//!
//! ```text
//! cargo run -p blocking-smol-unblock --example smol-unblock-pattern
//! cargo run -p blocking-smol-unblock --example smol-unblock-pattern -- \
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
//! blocking = "1.7" # to cap the pool from code
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//! smol = "2"
//! socket2 = "0.6" # for the listen backlog
//! ```

use std::error::Error;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::thread;
use std::time::{Duration, Instant};

use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::net::{TcpListener, TcpStream};
use smol::{LocalExecutor, Timer, unblock};
use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold its connection for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// Binds with a listen backlog sized for bursts: std's `bind` asks for
/// 128, and a burst beyond that waits a second per dropped SYN.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::try_from(std::net::TcpListener::from(socket))
}

/// Stands in for your CPU work: too long to run on the event loop.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..200_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Runs `compute(input)` on the pool; the loop is free meanwhile.
async fn on_pool(input: u64) -> thread::Result<u64> {
    AssertUnwindSafe(unblock(move || compute(input)))
        .catch_unwind()
        .await
}

/// One job: some work, a wait (a query, a request), some more work.
async fn job(input: u64) -> thread::Result<u64> {
    let half = on_pool(input).await?;
    Timer::after(Duration::from_millis(20)).await;
    on_pool(half).await
}

/// Ticks every millisecond until `stop` is closed; returns the longest gap
/// between two ticks: how long the loop once went without its timer.
async fn heartbeat(stop: Receiver<()>) -> Duration {
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    loop {
        let stopping = async {
            let _ = stop.recv().await;
            true
        };
        let tick = async {
            Timer::after(Duration::from_millis(1)).await;
            false
        };
        if stopping.or(tick).await {
            return longest;
        }
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
}

/// The accept loop: a task per connection until `stop` is closed, then
/// every connection inside is finished.
async fn serve(
    executor: &LocalExecutor<'_>,
    listener: TcpListener,
    stop: Receiver<()>,
) {
    // Each connection holds a clone of `inside`; nothing is ever sent.
    let (inside, all_left) = channel::bounded::<()>(1);
    loop {
        let stopping = async {
            let _ = stop.recv().await; // fails when the sender is dropped
            None
        };
        let accepted = async { Some(listener.accept().await) };
        match stopping.or(accepted).await {
            None => break,
            Some(Ok((stream, _))) => {
                let connection = handle(stream, inside.clone(), stop.clone());
                executor.spawn(connection).detach();
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Some(Err(e)) => {
                eprintln!("accept failed: {e}");
                Timer::after(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    drop(inside);
    // Fails once every connection's clone is gone: all are finished.
    let _ = all_left.recv().await;
}

/// One connection: read `JOB <n>` within `PATIENCE`, unless `stop`
/// closes first (once read, a job is finished whatever comes); run the
/// job, answer `DONE <n> <result>`, or `ERROR …` if its work panicked.
async fn handle(
    mut stream: TcpStream,
    _inside: Sender<()>,
    stop: Receiver<()>,
) {
    let mut line = String::new();
    // The reader, and its 8 KiB buffer, end with this block, before the
    // job is awaited: a connection waiting for its job holds no buffer.
    {
        let mut reader = BufReader::new(stream.clone()).take(1024);
        let read = async { reader.read_line(&mut line).await.is_ok() };
        // The timer starts now: it bounds the line, however it comes.
        let too_slow = async {
            Timer::after(PATIENCE).await;
            false
        };
        let stopping = async {
            let _ = stop.recv().await; // fails once the channel is closed
            false
        };
        // `or` polls the left one first: a request already in wins.
        if !read.or(too_slow).or(stopping).await {
            return;
        }
    }
    let reply = match line.trim().strip_prefix("JOB ").map(str::parse) {
        Some(Ok(n)) => match job(n).await {
            Ok(result) => format!("DONE {n} {result}\n"),
            Err(_panic) => {
                eprintln!("job {n} panicked");
                format!("ERROR job {n} panicked\n")
            }
        },
        _ => "ERROR expected JOB <n>\n".to_owned(),
    };
    let _ = stream.write_all(reply.as_bytes()).await;
}

/// CPU work gains nothing from more threads than cores. The pool's own
/// cap, 500, is meant for blocking I/O; uncapped, a hundred jobs would
/// start a hundred threads and the loop would wait its turn among them.
fn cap_the_pool() -> Result<(), BoxError> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    blocking::set_max_blocking_threads(cores.try_into()?);
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

/// The demo: the service and a hundred clients on one loop, every answer
/// checked, then the stop.
fn demo() -> Result<(), BoxError> {
    // The answers to expect, worked out before the loop starts: checking
    // them on the loop would stall it, and the heartbeat would say so.
    let expected: Vec<String> = (0..100)
        .map(|n| match n {
            13 => format!("ERROR job {n} panicked\n"),
            n => format!("DONE {n} {}\n", compute(compute(n))),
        })
        .collect();
    cap_the_pool()?;
    // The event loop: one thread, this one, inside `block_on`.
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(async {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = channel::bounded::<()>(1);
        let heartbeat = executor.spawn(heartbeat(stopped.clone()));

        // The clients share the loop with the server: all they do is wait.
        let clients: Vec<_> = (0..100)
            .map(|n| executor.spawn(async move { (n, ask(addr, n).await) }))
            .collect();
        let checker = executor.spawn(async move {
            for client in clients {
                let (n, answer) = client.await;
                assert_eq!(answer?, expected[n as usize], "job {n}");
            }
            drop(stop); // every answer is in: the server may close
            Ok::<_, BoxError>(())
        });
        serve(&executor, listener, stopped).await;
        checker.await?;
        let stall = heartbeat.await;
        println!(
            "100 jobs answered, the panicking one with an error; the 1 ms \
             heartbeat's longest gap was {stall:.1?}"
        );
        Ok(())
    }))
}

/// The service on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    cap_the_pool()?;
    let (stop, stopped) = channel::bounded::<()>(1);
    // ctrlc runs this on a thread of its own, at every signal: closing
    // the channel (again) wakes every task waiting on it.
    ctrlc::set_handler(move || {
        stop.close();
    })?;
    let executor = LocalExecutor::new();
    smol::block_on(executor.run(async {
        let listener = bind(addr)?;
        // Said once the handler is in, and flushed: whoever started us
        // may be waiting for it on a pipe.
        println!("listening on {}", listener.local_addr()?);
        io::stdout().flush()?;
        let heartbeat = executor.spawn(heartbeat(stopped.clone()));
        serve(&executor, listener, stopped).await;
        let stall = heartbeat.await;
        eprintln!("the 1 ms heartbeat's longest gap was {stall:.1?}");
        Ok(())
    }))
}

/// No arguments: the demo. `--listen ADDR`: the service. Anything else: a
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
    eprintln!("usage: smol-unblock-pattern [--listen ADDR]");
    std::process::exit(2)
}

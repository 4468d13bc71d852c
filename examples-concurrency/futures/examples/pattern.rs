//! The pattern of `concurrency-futures` on its own, ready to copy: a TCP
//! service on the futures crate's own executors. The accept loop runs in
//! `block_on` on the calling thread; each connection is a task on a
//! `ThreadPool`, and each job a task of its own there, spawned with
//! `spawn_with_handle` and awaited with `catch_unwind`, so a panicking job
//! is answered with an error instead of killing a pool thread. futures has
//! no reactor: the sockets and the timer are async-io's. Stopping is one
//! `oneshot` made `Shared`: the accept loop and every connection's read
//! `select` on a clone, and dropping the sender completes them all. At
//! stop the loop stops accepting, a connection still waiting for its
//! request is closed, and the loop waits for every accepted job. A
//! request line must come whole within `PATIENCE`.
//!
//! ```text
//! cargo run -p concurrency-futures --example futures-pattern
//! cargo run -p concurrency-futures --example futures-pattern -- \
//!     --listen 127.0.0.1:7000
//! ```
//!
//! Without arguments it runs a demo that checks its own answers; with
//! `--listen ADDR` it serves until Ctrl-C or SIGTERM, then exits 0.
//!
//! Its dependencies, all of them (async-io: the reactor and timer futures
//! does not have):
//!
//! ```toml
//! [dependencies]
//! async-io = "2"
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//! socket2 = "0.6" # for the listen backlog
//!
//! [dependencies.futures]
//! version = "0.3"
//! default-features = false
//! features = ["executor", "thread-pool"]
//! ```

use std::error::Error;
use std::future::Future;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::thread;
use std::time::Duration;

use async_io::{Async, Timer};
use futures::channel::{mpsc, oneshot};
use futures::executor::{self, ThreadPool};
use futures::future::{self, FutureExt as _, Shared};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::task::SpawnExt as _;
use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold its connection for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// Binds with a listen backlog sized for bursts: std's `bind` asks for
/// 128, and a burst beyond that waits a second per dropped SYN.
fn bind(addr: SocketAddr) -> io::Result<Async<TcpListener>> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Async::new(socket.into())
}

/// Stands in for your CPU work. Keep it short: it holds a pool thread.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// One job: some work, a wait (a query, a request), some more work.
async fn job(input: u64) -> u64 {
    let half = compute(input);
    Timer::after(Duration::from_millis(20)).await;
    compute(half)
}

/// The stop: completes (with `Err(Canceled)`) for every clone at once
/// when its sender is dropped.
type Stop = Shared<oneshot::Receiver<()>>;

/// Whichever of `a` and `b` finishes first; `a` on a tie.
async fn first<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    future::select(pin!(a), pin!(b)).await.factor_first().0
}

/// The accept loop: a task per connection on `pool` until `stop` fires or
/// is dropped, then waits for every connection inside to finish.
async fn serve(pool: &ThreadPool, listener: Async<TcpListener>, stop: Stop) {
    // `spawn_ok` hands back no handle, so the loop counts connections its
    // own way: each holds a clone of `open`, and `all_done` ends once the
    // last clone is gone.
    let (open, mut all_done) = mpsc::unbounded::<()>();
    loop {
        let stopping = stop.clone().map(|_| None);
        match first(stopping, listener.accept().map(Some)).await {
            None => break,
            // Cannot fail. A connection catches its job's panic itself,
            // so it needs no handle to report one.
            Some(Ok((stream, _))) => {
                let connection =
                    handle(stream, pool.clone(), open.clone(), stop.clone());
                pool.spawn_ok(connection);
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Some(Err(e)) => {
                eprintln!("accept failed: {e}");
                Timer::after(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    drop(open);
    // Here only: an async-io `Timer` is a `Stream` too, which would make
    // `map` on one ambiguous above.
    use futures::StreamExt as _;
    while all_done.next().await.is_some() {}
}

/// One connection: read `JOB <n>` within `PATIENCE`, unless told to stop
/// first (once read, a job is finished whatever comes); run the job on
/// the pool, and answer `DONE <n> <result>`, or `ERROR …` if the job
/// panicked. `_open` is dropped when the connection ends.
async fn handle(
    stream: Async<TcpStream>,
    jobs: ThreadPool,
    _open: mpsc::UnboundedSender<()>,
    stop: Stop,
) {
    let mut line = String::new();
    // The reader, and its 8 KiB buffer, end with this block, before the
    // job is awaited: a connection waiting for its job holds no buffer.
    {
        let mut reader = BufReader::new(&stream).take(1024);
        let read = async { reader.read_line(&mut line).await.is_ok() };
        // The timer starts now: it bounds the line, however it comes.
        let too_slow = async {
            Timer::after(PATIENCE).await;
            false
        };
        let stopping = stop.map(|_| false);
        // `first` polls the read first: a request already in wins.
        if !first(read, first(too_slow, stopping)).await {
            return;
        }
    }
    let reply = match line.trim().strip_prefix("JOB ").map(str::parse) {
        Some(Ok(n)) => match jobs.spawn_with_handle(job(n)) {
            // A job's panic is resumed when its handle is awaited.
            Ok(handle) => match AssertUnwindSafe(handle).catch_unwind().await {
                Ok(result) => format!("DONE {n} {result}\n"),
                Err(_) => {
                    eprintln!("job {n} panicked");
                    format!("ERROR job {n} panicked\n")
                }
            },
            Err(e) => format!("ERROR {e}\n"),
        },
        _ => "ERROR expected JOB <n>\n".to_owned(),
    };
    let _ = (&stream).write_all(reply.as_bytes()).await;
}

/// A client: sends one job, returns the answer.
async fn ask(addr: SocketAddr, n: u64) -> io::Result<String> {
    let mut stream = Async::<TcpStream>::connect(addr).await?;
    stream.write_all(format!("JOB {n}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// The demo: the service, a hundred clients on a thread of their own,
/// every answer checked, then the stop.
fn demo() -> Result<(), BoxError> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.get_ref().local_addr()?;
    // One thread per core by default.
    let pool = ThreadPool::new()?;
    let (stop, stopped) = oneshot::channel::<()>();

    // The clients, on a thread of their own as if in another program:
    // `join_all` polls every one of them in one `block_on`. Dropping
    // `stop` when they are done, whatever their answers, stops the loop.
    let clients = thread::spawn(move || {
        let asks = (0..100).map(|n| async move { (n, ask(addr, n).await) });
        let answers = executor::block_on(future::join_all(asks));
        drop(stop);
        answers
    });

    executor::block_on(serve(&pool, listener, stopped.shared()));
    // The pool's threads leave once `pool` and every task are gone.
    drop(pool);
    let answers = clients.join().expect("the clients' thread panicked");
    for (n, answer) in answers {
        let expected = if n == 13 {
            format!("ERROR job {n} panicked\n")
        } else {
            format!("DONE {n} {}\n", compute(compute(n)))
        };
        assert_eq!(answer?, expected, "job {n}");
    }
    println!("100 jobs answered, the panicking one with an error");
    Ok(())
}

/// The service on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = bind(addr)?;
    let pool = ThreadPool::new()?;
    let (stop, stopped) = oneshot::channel::<()>();
    // ctrlc runs this on a thread of its own, at every signal: the first
    // drops the sender, which completes every clone of the stop.
    let mut stop = Some(stop);
    ctrlc::set_handler(move || drop(stop.take()))?;
    // Said once the handler is in, and flushed: whoever started us may
    // be waiting for it on a pipe.
    println!("listening on {}", listener.get_ref().local_addr()?);
    io::stdout().flush()?;
    executor::block_on(serve(&pool, listener, stopped.shared()));
    Ok(())
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
    eprintln!("usage: futures-pattern [--listen ADDR]");
    std::process::exit(2)
}

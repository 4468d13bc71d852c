//! The pattern of `concurrency-smol` on its own, ready to copy: a TCP
//! service on an executor you run yourself. A few threads in a
//! `std::thread::scope` run a shared `Executor`; the accept loop runs in
//! `block_on` on the calling thread, and each connection, and each job, is
//! a task on that executor. A job's panic is caught in its own task and
//! comes back as an `Err`. Stopping is a channel that nobody sends on:
//! closing it wakes every `recv` at once, and the accept loop and every
//! connection's read race one. At stop the loop stops accepting, a
//! connection still waiting for its request is closed, and every
//! accepted job is answered; then a second closed channel stops the
//! threads. A request line must come whole within `PATIENCE`.
//!
//! ```text
//! cargo run -p concurrency-smol --example smol-pattern
//! cargo run -p concurrency-smol --example smol-pattern -- \
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
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//! smol = "2"
//! socket2 = "0.6" # for the listen backlog
//! ```

use std::error::Error;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt as _;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::{Async, Executor, Timer};
use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold its connection for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// Binds with a listen backlog sized for bursts: std's `bind` asks for
/// 128, and a burst beyond that waits a second per dropped SYN.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Stands in for your CPU work. Keep it short: it holds a job thread.
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

/// The service: `threads` threads running the executor, and the accept
/// loop on this one, until `stop` closes; then every connection inside is
/// finished and the threads are stopped and joined.
fn serve(
    listener: TcpListener,
    threads: usize,
    stop: Receiver<()>,
) -> Result<(), BoxError> {
    // In an `Arc`: each connection's task holds it to spawn its job, and
    // a task cannot borrow the executor it is stored in.
    let executor = Arc::new(Executor::new());
    // Dropping `done` closes the channel, which ends every `run` below.
    let (done, finished) = channel::unbounded::<()>();
    thread::scope(|scope| {
        for _ in 0..threads {
            let (executor, finished) = (&executor, finished.clone());
            scope.spawn(move || smol::block_on(executor.run(finished.recv())));
        }
        // The accept loop is not a task: `block_on` polls it alone here.
        let served = smol::block_on(accept(&executor, listener, stop));
        drop(done); // on every path, or the scope waits forever
        served
    })
}

/// The accept loop: a task per connection until `stop` closes, then waits
/// for every connection inside to finish.
async fn accept(
    executor: &Arc<Executor<'static>>,
    listener: TcpListener,
    stop: Receiver<()>,
) -> Result<(), BoxError> {
    let listener = Async::new(listener)?;
    // Detached tasks cannot be awaited, so the loop counts connections its
    // own way: each holds a clone of `open`, and `recv` on `all_done`
    // fails once the last clone is gone.
    let (open, all_done) = channel::bounded::<()>(1);
    loop {
        // `or` polls the left one first: stopping wins a tie.
        let stopping = async {
            let _ = stop.recv().await;
            None
        };
        match stopping.or(async { Some(listener.accept().await) }).await {
            None => break,
            Some(Ok((stream, _))) => {
                let connection = handle(
                    stream,
                    Arc::clone(executor),
                    open.clone(),
                    stop.clone(),
                );
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
    drop(open);
    let _ = all_done.recv().await;
    Ok(())
}

/// One connection: read `JOB <n>` within `PATIENCE`, unless `stop`
/// closes first (once read, a job is finished whatever comes); run the
/// job as a task of its own, and answer `DONE <n> <result>`, or `ERROR …`
/// if it panicked. `_open` is dropped when the connection ends.
async fn handle(
    stream: Async<TcpStream>,
    executor: Arc<Executor<'static>>,
    _open: Sender<()>,
    stop: Receiver<()>,
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
        Some(Ok(n)) => {
            // Caught in the job's own task: awaiting a task that panicked
            // would resume the panic here instead.
            let caught = AssertUnwindSafe(job(n)).catch_unwind();
            match executor.spawn(caught).await {
                Ok(result) => format!("DONE {n} {result}\n"),
                Err(_) => {
                    eprintln!("job {n} panicked");
                    format!("ERROR job {n} panicked\n")
                }
            }
        }
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
    let addr = listener.local_addr()?;
    let (stop, stopped) = channel::bounded::<()>(1);

    // The clients, on a thread of their own as if in another program, on
    // smol's global executor (`smol::spawn`). Dropping `stop` when they
    // are done, whatever their answers, tells the service to stop.
    let clients = thread::spawn(move || {
        let asks: Vec<_> = (0..100)
            .map(|n| smol::spawn(async move { (n, ask(addr, n).await) }))
            .collect();
        let answers = smol::block_on(async {
            let mut answers = Vec::new();
            for ask in asks {
                answers.push(ask.await);
            }
            answers
        });
        drop(stop);
        answers
    });

    serve(listener, 2, stopped)?;
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
    let (stop, stopped) = channel::bounded::<()>(1);
    // ctrlc runs this on a thread of its own, at every signal: closing
    // the channel (again) wakes every task waiting on it, on any thread.
    ctrlc::set_handler(move || {
        stop.close();
    })?;
    // Said once the handler is in, and flushed: whoever started us may
    // be waiting for it on a pipe.
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    serve(listener, threads, stopped)
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
    eprintln!("usage: smol-pattern [--listen ADDR]");
    std::process::exit(2)
}

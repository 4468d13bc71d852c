//! The pattern of `concurrency-async-std` on its own: a TCP service on
//! async-std's global runtime. An accept loop runs until told to stop;
//! each connection is a task; each job is a task of its own, its panic
//! caught inside it. Stopping is a channel that nobody sends on: closing
//! it wakes every `recv` at once, and the accept loop and every
//! connection's read race one. At stop the loop stops accepting, a
//! connection still waiting for its request is closed, and the loop waits
//! for every accepted job, counting connections by itself. A request line
//! must come whole within `PATIENCE`.
//!
//! **async-std is discontinued (RUSTSEC-2025-0052): do not copy this into
//! new code.** It is here to show what existing code looks like and how
//! little changes when it moves to smol: `async_std::net::TcpListener`
//! becomes `smol::Async<TcpListener>`, `task::spawn` becomes
//! `Executor::spawn`, `task::sleep` becomes `Timer::after`, and the
//! runtime becomes a value you own (see `smol-pattern` in
//! `concurrency-smol`).
//!
//! ```text
//! cargo run -p concurrency-async-std --example async-std-pattern
//! cargo run -p concurrency-async-std --example async-std-pattern -- \
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
//! async-std = "1.13"
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//! futures-lite = "2" # for `or` and `catch_unwind`
//! socket2 = "0.6" # for the listen backlog
//! ```

use std::error::Error;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_std::channel::{self, Receiver, Sender};
use async_std::io::{BufReadExt, BufReader, ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::task;
use futures_lite::FutureExt as _;
use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold its connection for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// Binds with a listen backlog sized for bursts: std's and async-std's
/// `bind` ask for 128, and a burst beyond that waits a second per dropped
/// SYN.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let listener: std::net::TcpListener = socket.into();
    Ok(TcpListener::from(listener))
}

/// Stands in for your CPU work. Keep it short: it holds a runtime thread.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// One job: some work, a wait (a query, a request), some more work.
async fn job(input: u64) -> u64 {
    let half = compute(input);
    task::sleep(Duration::from_millis(20)).await;
    compute(half)
}

/// The accept loop: a task per connection until `stop` closes, then every
/// connection inside is finished.
async fn serve(listener: TcpListener, stop: Receiver<()>) {
    // Dropped handles detach their tasks, so the loop counts connections
    // its own way: each holds a clone of `open`, and `recv` on `all_done`
    // fails once the last clone is gone.
    let (open, all_done) = channel::bounded::<()>(1);
    loop {
        let stopping = async {
            let _ = stop.recv().await;
            None
        };
        match stopping.or(async { Some(listener.accept().await) }).await {
            None => break,
            Some(Ok((stream, _))) => {
                task::spawn(handle(stream, open.clone(), stop.clone()));
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Some(Err(e)) => {
                eprintln!("accept failed: {e}");
                task::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    drop(open);
    let _ = all_done.recv().await;
}

/// One connection: read `JOB <n>` within `PATIENCE`, unless `stop`
/// closes first (once read, a job is finished whatever comes); run the
/// job as a task of its own, and answer `DONE <n> <result>`, or `ERROR …`
/// if the job panicked.
async fn handle(stream: TcpStream, _open: Sender<()>, stop: Receiver<()>) {
    let mut line = String::new();
    // The reader, and its 8 KiB buffer, end with this block, before the
    // job is awaited: a connection waiting for its job holds no buffer.
    {
        let mut reader = BufReader::new(&stream).take(1024);
        let read = async { reader.read_line(&mut line).await.is_ok() };
        // The timer starts now: it bounds the line, however it comes.
        let too_slow = async {
            task::sleep(PATIENCE).await;
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
            match task::spawn(caught).await {
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
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("JOB {n}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// The demo: the service and a hundred clients, every answer checked,
/// then the stop.
fn demo() -> Result<(), BoxError> {
    // The runtime starts itself here: async-std's first task (this
    // `block_on`'s) calls `async_global_executor::init_with_config`, which
    // starts one thread per core (or `ASYNC_STD_THREAD_COUNT`), and they
    // live until the process exits.
    task::block_on(async {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = channel::bounded::<()>(1);
        let server = task::spawn(serve(listener, stopped));

        let asks: Vec<_> = (0..100)
            .map(|n| task::spawn(async move { (n, ask(addr, n).await) }))
            .collect();
        for ask in asks {
            let (n, answer) = ask.await;
            let expected = if n == 13 {
                format!("ERROR job {n} panicked\n")
            } else {
                format!("DONE {n} {}\n", compute(compute(n)))
            };
            assert_eq!(answer?, expected, "job {n}");
        }
        drop(stop);
        server.await;
        println!("100 jobs answered, the panicking one with an error");
        Ok(())
    })
}

/// The service on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let (stop, stopped) = channel::bounded::<()>(1);
    // ctrlc runs this on a thread of its own, at every signal: closing
    // the channel (again) wakes every task waiting on it.
    ctrlc::set_handler(move || {
        stop.close();
    })?;
    task::block_on(async {
        let listener = bind(addr)?;
        // Said once the handler is in, and flushed: whoever started us
        // may be waiting for it on a pipe.
        println!("listening on {}", listener.local_addr()?);
        io::stdout().flush()?;
        serve(listener, stopped).await;
        Ok(())
    })
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
    eprintln!("usage: async-std-pattern [--listen ADDR]");
    std::process::exit(2)
}

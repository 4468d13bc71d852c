//! The pattern of `concurrency-futures` on its own, ready to copy: a TCP
//! service on the futures crate's own executors. A `LocalPool` on the
//! calling thread runs the accept loop and a task per connection, which no
//! job can hold up; each job is a task on a `ThreadPool`, spawned with
//! `spawn_with_handle` and awaited with `catch_unwind`, so a panicking job
//! is answered with an error instead of killing a pool thread. futures has
//! no reactor: the sockets and the timer are async-io's. At shutdown the
//! loop stops accepting and every accepted connection is finished.
//!
//! ```text
//! cargo run -p concurrency-futures --example futures-pattern
//! ```
//!
//! It needs `futures = { version = "0.3", default-features = false,
//! features = ["executor", "thread-pool"] }`, `async-io = "2"` (the
//! reactor and timer futures does not have) and `socket2 = "0.6"` (for the
//! listen backlog).

use std::error::Error;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::time::Duration;

use async_io::{Async, Timer};
use futures::channel::oneshot;
use futures::executor::{LocalPool, LocalSpawner, ThreadPool};
use futures::future::{self, FutureExt as _};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::task::{LocalSpawnExt as _, SpawnExt as _};
use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

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

/// Whichever of `a` and `b` finishes first; `a` on a tie.
async fn first<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    future::select(pin!(a), pin!(b)).await.factor_first().0
}

/// The accept loop: a task per connection until `stop` fires or is
/// dropped. The connections still open are the `LocalPool`'s to finish.
async fn serve(
    connections: LocalSpawner,
    jobs: ThreadPool,
    listener: Async<TcpListener>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let stopping = (&mut stop).map(|_| None);
        match first(stopping, listener.accept().map(Some)).await {
            None => return,
            Some(Ok((stream, _))) => {
                let connection = handle(stream, jobs.clone());
                // Fails only once the `LocalPool` is gone.
                if connections.spawn_local(connection).is_err() {
                    return;
                }
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Some(Err(e)) => {
                eprintln!("accept failed: {e}");
                Timer::after(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One connection: read `JOB <n>`, run the job on the pool, and answer
/// `DONE <n> <result>`, or `ERROR …` if the job panicked.
async fn handle(stream: Async<TcpStream>, jobs: ThreadPool) {
    let mut line = String::new();
    let mut reader = BufReader::new(&stream).take(1024);
    if reader.read_line(&mut line).await.is_err() {
        return;
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

fn main() -> Result<(), BoxError> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.get_ref().local_addr()?;
    // One thread per core by default.
    let jobs = ThreadPool::new()?;
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = serve(spawner.clone(), jobs.clone(), listener, stopped);
    spawner.spawn_local(server)?;

    // The clients are tasks on the same thread: each waits on its socket.
    let answers = pool.run_until(async {
        let mut asks = Vec::new();
        for n in 0..100 {
            let ask = async move { (n, ask(addr, n).await) };
            asks.push(spawner.spawn_local_with_handle(ask)?);
        }
        Ok::<_, BoxError>(future::join_all(asks).await)
    })?;
    // Dropping `stop` stops the loop; `run` finishes every task left.
    drop(stop);
    pool.run();
    // The pool's threads leave once `jobs` and every task are gone.
    drop(jobs);

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

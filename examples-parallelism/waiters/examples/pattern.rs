//! The pattern of `parallelism-waiters` on its own, ready to copy: a
//! blocking TCP service where several acceptor threads share one listener
//! and read the requests, and a fixed pool of worker threads runs them.
//! Each acceptor accepts a connection, reads its request (a slow client
//! holds up that acceptor only), and puts the job, with its connection, on
//! a channel whose receiver the workers share behind a `Mutex`; a worker
//! runs the job, catches its panic the moment it happens, and answers on
//! the connection itself. To stop: raise a flag and knock on the door
//! once; each acceptor that leaves knocks again for the next, so every
//! one blocked in `accept` wakes; then drop the channel's sender, and the
//! workers finish every job on it and leave.
//!
//! ```text
//! cargo run -p parallelism-waiters --example waiters-pattern
//! cargo run -p parallelism-waiters --example waiters-pattern -- \
//!     --listen 127.0.0.1:7000
//! ```
//!
//! Without arguments it runs a demo that checks its own answers; with
//! `--listen ADDR` it serves until Ctrl-C or SIGTERM, then exits 0. A
//! request line must come whole within `PATIENCE`; a read waiting for one
//! wakes every `TICK` to look at the stop flag, so at stop a connection
//! still waiting for its request is closed at once, and every job already
//! read is answered.
//!
//! (std's `bind` asks the kernel for a listen backlog of 128; for bursts
//! beyond that, bind with `socket2` and a bigger backlog, as
//! `parallelism-thread-pool`'s pattern does.)
//!
//! Its dependencies, all of them:
//!
//! ```toml
//! [dependencies]
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//! ```

use std::error::Error;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold the thread reading it for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// How often a read waiting on a quiet client looks at the stop flag: a
/// blocking read waits on its socket alone, so it wakes to look.
const TICK: Duration = Duration::from_millis(100);

/// Stands in for your CPU work.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// One job: some work, a wait (a query, a request), some more work. The
/// wait holds the worker's thread: no other job can use it meanwhile.
fn job(input: u64) -> u64 {
    let half = compute(input);
    thread::sleep(Duration::from_millis(5));
    compute(half)
}

/// A job on the queue, with the connection its answer goes back on.
type Work = (u64, TcpStream);

/// The server: starts `workers` threads and `acceptors` threads that share
/// `listener`, until `stop` is raised; then finishes every accepted job
/// and joins everyone.
fn serve(
    listener: TcpListener,
    acceptors: usize,
    workers: usize,
    stop: &AtomicBool,
) -> Result<(), BoxError> {
    // Unbounded: an acceptor never waits for the workers. Each job holds
    // an open connection, so the OS's limit on descriptors bounds it.
    let (queue, jobs) = mpsc::channel::<Work>();
    let jobs = Arc::new(Mutex::new(jobs));
    let mut pool = Vec::with_capacity(workers);
    for i in 0..workers {
        let jobs = Arc::clone(&jobs);
        let worker = thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || work(&jobs))?;
        pool.push(worker);
    }
    // Scoped: the acceptors borrow the listener and the queue, and the
    // scope ends only when every acceptor has.
    let accepted = thread::scope(|scope| -> Result<(), BoxError> {
        let mut front = Vec::with_capacity(acceptors);
        for i in 0..acceptors {
            let (listener, queue) = (&listener, &queue);
            let acceptor = thread::Builder::new()
                .name(format!("acceptor-{i}"))
                .spawn_scoped(scope, move || accept(listener, queue, stop));
            match acceptor {
                Ok(acceptor) => front.push(acceptor),
                // The OS refused a thread: send home the acceptors already
                // at the door (the scope waits for them), then give up.
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    knock(listener.local_addr()?);
                    return Err(e.into());
                }
            }
        }
        for acceptor in front {
            acceptor.join().map_err(|_| "an acceptor panicked")?;
        }
        Ok(())
    });
    // Refuse newcomers, then close the queue: each worker's `recv` fails
    // once it is empty, so every accepted job is done before they leave.
    drop(listener);
    drop(queue);
    for worker in pool {
        worker
            .join()
            .map_err(|_| "a worker panicked outside a job")?;
    }
    accepted
}

/// An acceptor: accepts and reads requests until `stop` is raised.
fn accept(listener: &TcpListener, queue: &Sender<Work>, stop: &AtomicBool) {
    // Checked before `accept` too: an acceptor busy with a slow client
    // when `stop` was raised must not wait at the door for a knock.
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok(_) if stop.load(Ordering::SeqCst) => break,
            Ok((stream, _)) => {
                if let Some(work) = read_job(stream, stop)
                    // Fails only if every worker is gone.
                    && queue.send(work).is_err()
                {
                    break;
                }
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Err(e) => {
                eprintln!("accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // One knock woke one acceptor: pass it on, so the next one blocked in
    // `accept` wakes too. The last knock is never answered; the kernel
    // resets it when the listener closes.
    if let Ok(door) = listener.local_addr() {
        knock(door);
    }
}

/// Connects and hangs up, so that one thread blocked in `accept` returns.
fn knock(mut door: SocketAddr) {
    // Listening on every interface (0.0.0.0, ::)? Knock on this machine's.
    if door.ip().is_unspecified() {
        door.set_ip(match door {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let _ = TcpStream::connect_timeout(&door, Duration::from_secs(1));
}

/// Reads `JOB <n>` from one connection, on its acceptor: a slow client
/// holds up this acceptor only, its patience is bounded, and a quiet one
/// is let go at stop.
fn read_job(mut stream: TcpStream, stop: &AtomicBool) -> Option<Work> {
    let line = read_line(&mut stream, stop)?;
    match line.trim().strip_prefix("JOB ").map(str::parse) {
        Some(Ok(n)) => Some((n, stream)),
        _ => {
            let _ = stream.write_all(b"ERROR expected JOB <n>\n");
            None
        }
    }
}

/// Reads one request line (at most 1 KiB) within `PATIENCE`: `None` if
/// the client is too slow, hangs up or sends no UTF-8, or if `stop` is
/// raised meanwhile. Each read's timeout is what is left of the patience,
/// at most a `TICK`.
fn read_line(stream: &mut TcpStream, stop: &AtomicBool) -> Option<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut line = Vec::new();
    let mut chunk = [0; 256];
    while !line.contains(&b'\n') && line.len() < 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None; // (and a zero timeout means none to the OS)
        }
        stream.set_read_timeout(Some(left.min(TICK))).ok()?;
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => line.extend_from_slice(&chunk[..n]),
            // Looked at only when nothing came: a request already in is
            // read whatever the flag says.
            Err(e) if is_timeout(&e) => {
                if stop.load(Ordering::SeqCst) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    String::from_utf8(line).ok()
}

/// A read timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// A worker: takes jobs until the queue is closed and empty, and answers
/// each on its own connection (one hand-off, no way back to the acceptor).
fn work(jobs: &Mutex<Receiver<Work>>) {
    loop {
        // The guard is dropped at the end of this statement: the lock is
        // held to take a job, not to run it.
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((n, mut stream)) = next else { return };
        // Caught here, where the job is known: the thread lives on, and
        // the client hears at once.
        let reply = match panic::catch_unwind(AssertUnwindSafe(|| job(n))) {
            Ok(result) => format!("DONE {n} {result}\n"),
            Err(_) => {
                eprintln!("job {n} panicked");
                format!("ERROR job {n} panicked\n")
            }
        };
        // A client who left has only lost their own answer.
        let _ = stream.write_all(reply.as_bytes());
    }
}

/// A client: takes `pause` to say its job, returns the answer.
fn ask(addr: SocketAddr, n: u64, pause: Duration) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr)?;
    thread::sleep(pause);
    stream.write_all(format!("JOB {n}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The demo: the server on a thread of its own, a hundred clients, every
/// answer checked, then the stop.
fn demo() -> Result<(), BoxError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let acceptors = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || serve(listener, acceptors, workers, &stop))
    };

    // Every tenth client is slow to speak: it holds one acceptor, and the
    // other acceptors keep taking requests.
    let clients: Vec<_> = (0..100)
        .map(|n| {
            let pause = Duration::from_millis(if n % 10 == 0 { 30 } else { 0 });
            thread::spawn(move || (n, ask(addr, n, pause)))
        })
        .collect();
    for client in clients {
        let (n, answer) = client.join().map_err(|_| "a client panicked")?;
        let expected = if n == 13 {
            format!("ERROR job {n} panicked\n")
        } else {
            format!("DONE {n} {}\n", compute(compute(n)))
        };
        assert_eq!(answer?, expected, "job {n}");
    }

    // Stop: raise the flag, then knock once; the acceptors pass the knock
    // on among themselves. (Were it refused, the server would be gone.)
    stop.store(true, Ordering::SeqCst);
    knock(addr);
    server.join().map_err(|_| "the server panicked")??;
    println!(
        "100 jobs answered by {acceptors} acceptors and {workers} workers, \
         the panicking one with an error"
    );
    Ok(())
}

/// The server on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = TcpListener::bind(addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(listener.local_addr()?, &stop)?;
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    serve(listener, 4, workers, &stop)
}

/// At Ctrl-C or SIGTERM, raises `stop` and knocks; then says where it
/// listens (flushed: whoever started us may be waiting for it on a pipe).
fn stop_on_signal(
    door: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let stop = Arc::clone(stop);
    // ctrlc runs this on a thread of its own, at every signal.
    ctrlc::set_handler(move || {
        stop.store(true, Ordering::SeqCst);
        knock(door);
    })?;
    println!("listening on {door}");
    io::stdout().flush()?;
    Ok(())
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
    eprintln!("usage: waiters-pattern [--listen ADDR]");
    std::process::exit(2)
}

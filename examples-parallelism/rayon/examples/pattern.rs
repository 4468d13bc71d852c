//! The pattern of `parallelism-rayon` on its own, ready to copy: a TCP
//! service whose one acceptor thread reads each request and spawns it as a
//! job, in FIFO order, into a rayon scope; a pool worker computes the
//! answer and writes it back on the connection. A panic is caught inside
//! the job and answered with `ERROR`. At shutdown a flag is set and the
//! door knocked on, so the blocked `accept` wakes; the scope then waits
//! for every job spawned in it, and `build_scoped` joins the pool's
//! threads.
//!
//! ```text
//! cargo run -p parallelism-rayon --example rayon-pattern
//! cargo run -p parallelism-rayon --example rayon-pattern -- \
//!     --listen 127.0.0.1:7000
//! ```
//!
//!
//! Without arguments it runs a demo that checks its own answers; with
//! `--listen ADDR` it serves until Ctrl-C or SIGTERM, then exits 0. A
//! request line must come whole within `PATIENCE`; a read waiting for one
//! wakes every `TICK` to look at the stop flag, so at stop a connection
//! still waiting for its request is closed at once, and every job already
//! read is answered.
//!
//! Its dependencies, all of them:
//!
//! ```toml
//! [dependencies]
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//! rayon = "1"
//! socket2 = "0.6" # for the listen backlog
//! ```

use std::error::Error;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rayon::{ThreadPool, ThreadPoolBuilder};
use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold the thread reading it for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// How often a read waiting on a quiet client looks at the stop flag: a
/// blocking read waits on its socket alone, so it wakes to look.
const TICK: Duration = Duration::from_millis(100);

/// Binds with a listen backlog sized for bursts: std's `bind` asks for
/// 128, and a burst beyond that waits a second per dropped SYN.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Stands in for your CPU work: what rayon is for.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// One job. Its wait holds a rayon worker: keep waits rare and short.
fn job(input: u64) -> u64 {
    let half = compute(input);
    thread::sleep(Duration::from_millis(1));
    compute(half)
}

/// The acceptor: reads one request at a time and spawns its job, until
/// `stop` is set; returns once every job spawned is done.
fn serve(listener: TcpListener, pool: &ThreadPool, stop: &AtomicBool) {
    // Runs here, not on a pool thread; returns once every job is done.
    pool.in_place_scope_fifo(|scope| {
        for stream in listener.incoming() {
            // Whoever sets `stop` knocks on the door to wake `accept`.
            if stop.load(Ordering::Acquire) {
                break;
            }
            let mut stream = match stream {
                Ok(stream) => stream,
                // Never fatal: out of descriptors, a reset. Back off.
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            // A slow client must not hold the only acceptor for long,
            // nor a quiet one past the stop.
            let Some(line) = read_line(&mut stream, stop) else {
                continue;
            };
            scope.spawn_fifo(move |_| {
                let reply =
                    match line.trim().strip_prefix("JOB ").map(str::parse) {
                        // Caught here, the panic keeps its job number.
                        Some(Ok(n)) => match panic::catch_unwind(|| job(n)) {
                            Ok(result) => format!("DONE {n} {result}\n"),
                            Err(_panic) => {
                                eprintln!("job {n} panicked");
                                format!("ERROR job {n} panicked\n")
                            }
                        },
                        _ => "ERROR expected JOB <n>\n".to_owned(),
                    };
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
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

/// A client: sends one job, returns the answer.
fn ask(addr: SocketAddr, n: u64) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(format!("JOB {n}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Every client's answer, checked against the answer it should get.
fn check(answers: Vec<(u64, std::io::Result<String>)>) -> Result<(), String> {
    for (n, answer) in answers {
        let answer = answer.map_err(|e| format!("job {n}: {e}"))?;
        let expected = if n == 13 {
            format!("ERROR job {n} panicked\n")
        } else {
            format!("DONE {n} {}\n", compute(compute(n)))
        };
        if answer != expected {
            return Err(format!("job {n}: {answer:?}, expected {expected:?}"));
        }
    }
    Ok(())
}

/// The demo: the server on a thread of its own, a hundred clients, every
/// answer checked, then the stop.
fn demo() -> Result<(), BoxError> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let stop = AtomicBool::new(false);
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    let checked = ThreadPoolBuilder::new()
        .num_threads(cores)
        // Each pool thread runs rayon's worker loop; the threads are joined
        // when the closure below returns.
        .build_scoped(
            |worker| worker.run(),
            |pool| {
                thread::scope(|s| {
                    let server = s.spawn(|| serve(listener, pool, &stop));
                    let clients: Vec<_> = (0..100u64)
                        .map(|n| s.spawn(move || (n, ask(addr, n))))
                        .collect();
                    let answers = clients
                        .into_iter()
                        .map(|c| c.join().expect("a client panicked"))
                        .collect();
                    // Stop whatever the answers were, or `accept` would
                    // block for ever and the scope with it.
                    stop.store(true, Ordering::Release);
                    knock(addr);
                    server.join().expect("the acceptor panicked");
                    check(answers)
                })
            },
        )?;
    checked?;
    println!("100 jobs answered, the panicking one with an error");
    Ok(())
}

/// The server on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = bind(addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(listener.local_addr()?, &stop)?;
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    ThreadPoolBuilder::new().num_threads(cores).build_scoped(
        |worker| worker.run(),
        |pool| serve(listener, pool, &stop),
    )?;
    Ok(())
}

/// Connects and hangs up, so that a thread blocked in `accept` returns.
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
    eprintln!("usage: rayon-pattern [--listen ADDR]");
    std::process::exit(2)
}

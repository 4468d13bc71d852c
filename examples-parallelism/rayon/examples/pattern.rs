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
//! ```
//!
//! It needs `rayon = "1"` and `socket2 = "0.6"` (for the listen backlog).

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rayon::{ThreadPool, ThreadPoolBuilder};
use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

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
            // A silent client must not hold the only acceptor for ever.
            let mut line = String::new();
            let read = stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .and_then(|()| {
                    BufReader::new(&stream).take(1024).read_line(&mut line)
                });
            if read.is_err() {
                continue;
            }
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

fn main() -> Result<(), BoxError> {
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
                    let _ = TcpStream::connect(addr); // the knock
                    server.join().expect("the acceptor panicked");
                    check(answers)
                })
            },
        )?;
    checked?;
    println!("100 jobs answered, the panicking one with an error");
    Ok(())
}

//! The pattern of `parallelism-thread-per-order` on its own, ready to copy:
//! a blocking TCP service that starts a new thread for every job, at most
//! `CAP` alive at once. One thread accepts connections and reads each
//! request, then starts a thread that runs the job, catches its panic the
//! moment it happens, and answers. Each job thread rings a bell (sends its
//! number) as it ends; the accepting thread joins the threads that rang,
//! and at the cap waits for a bell before it starts another. To stop:
//! raise a flag, knock so that `accept` returns, join every thread left.
//!
//! ```text
//! cargo run -p parallelism-thread-per-order \
//!     --example thread-per-order-pattern
//! cargo run -p parallelism-thread-per-order \
//!     --example thread-per-order-pattern -- --listen 127.0.0.1:7000
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
//! socket2 = "0.6" # for the listen backlog
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold the thread reading it for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// How often a read waiting on a quiet client looks at the stop flag: a
/// blocking read waits on its socket alone, so it wakes to look.
const TICK: Duration = Duration::from_millis(100);

/// The most job threads alive at once: beyond it, clients wait to be
/// accepted instead of the OS running out of threads.
const CAP: usize = 16;

/// Binds with a listen backlog sized for bursts: std's `bind` asks for
/// 128, and a burst beyond that waits a second per dropped SYN.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Stands in for your CPU work.
fn compute(input: u64) -> u64 {
    if input == 13 {
        panic!("unlucky job");
    }
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// One job: some work, a wait (a query, a request), some more work. The
/// wait holds this job's thread, and no other job's.
fn job(input: u64) -> u64 {
    let half = compute(input);
    thread::sleep(Duration::from_millis(5));
    compute(half)
}

/// A job thread: runs the job, catches its panic, answers, and ends.
fn answer(n: u64, mut stream: TcpStream) {
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

/// Sends the thread's number when dropped: at the end of the thread.
struct Bell(u64, Sender<u64>);

impl Drop for Bell {
    fn drop(&mut self) {
        let _ = self.1.send(self.0);
    }
}

/// The job threads alive, by number, and the bell they ring as they end.
struct Crew {
    threads: HashMap<u64, JoinHandle<()>>,
    next: u64,
    bell: Sender<u64>,
    rung: Receiver<u64>,
}

impl Crew {
    fn new() -> Crew {
        let (bell, rung) = mpsc::channel();
        let threads = HashMap::new();
        Crew {
            threads,
            next: 0,
            bell,
            rung,
        }
    }

    /// Starts a thread for job `n`, once there is room under the cap.
    fn start(&mut self, n: u64, stream: TcpStream) -> Result<(), BoxError> {
        // Join whatever has finished, then wait for a bell at the cap.
        while let Ok(done) = self.rung.try_recv() {
            self.join(done)?;
        }
        while self.threads.len() >= CAP {
            let done = self.rung.recv()?; // we hold a sender: cannot fail
            self.join(done)?;
        }
        let bell = Bell(self.next, self.bell.clone());
        // An error, not a panic, when the OS refuses a thread.
        let thread = thread::Builder::new().spawn(move || {
            let _bell = bell;
            answer(n, stream);
        })?;
        self.threads.insert(self.next, thread);
        self.next += 1;
        Ok(())
    }

    /// Joins thread `number`, which has rung: it gives its stack back.
    fn join(&mut self, number: u64) -> Result<(), BoxError> {
        match self.threads.remove(&number).map(JoinHandle::join) {
            Some(Err(_)) => Err("a thread panicked outside its job".into()),
            _ => Ok(()),
        }
    }

    /// Joins every thread still running.
    fn close(mut self) -> Result<(), BoxError> {
        let mut outcome = Ok(());
        while !self.threads.is_empty() {
            let done = self.rung.recv()?;
            outcome = outcome.and(self.join(done));
        }
        outcome
    }
}

/// The server: accepts on the calling thread until `stop` is raised, a
/// thread per job; then finishes every accepted job.
fn serve(listener: TcpListener, stop: &AtomicBool) -> Result<(), BoxError> {
    let mut crew = Crew::new();
    let accepted = accept(&listener, &mut crew, stop);
    // Whatever happened: refuse newcomers, and join every thread started.
    drop(listener);
    let closed = crew.close();
    accepted.and(closed)
}

/// The accept loop. `accept` blocks; whoever raises `stop` knocks once.
fn accept(
    listener: &TcpListener,
    crew: &mut Crew,
    stop: &AtomicBool,
) -> Result<(), BoxError> {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                if let Some((n, stream)) = read_job(stream, stop) {
                    crew.start(n, stream)?;
                }
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Err(e) => {
                eprintln!("accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

/// Reads `JOB <n>` from one connection, on the accepting thread: a slow
/// client holds up the next, so its patience is bounded, and a quiet one
/// is let go at stop.
fn read_job(
    mut stream: TcpStream,
    stop: &AtomicBool,
) -> Option<(u64, TcpStream)> {
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

/// A client: sends one job, returns the answer.
fn ask(addr: SocketAddr, n: u64) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(format!("JOB {n}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The demo: the server on a thread of its own, a hundred clients, every
/// answer checked, then the stop.
fn demo() -> Result<(), BoxError> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || serve(listener, &stop))
    };

    let clients: Vec<_> = (0..100)
        .map(|n| thread::spawn(move || (n, ask(addr, n))))
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

    // Stop: raise the flag, then knock so that `accept` returns and sees
    // it. (Were the knock refused, the server would be gone already.)
    stop.store(true, Ordering::SeqCst);
    knock(addr);
    server.join().map_err(|_| "the server panicked")??;
    println!("100 jobs answered, the panicking one with an error");
    Ok(())
}

/// The server on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = bind(addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(listener.local_addr()?, &stop)?;
    serve(listener, &stop)
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
    eprintln!("usage: thread-per-order-pattern [--listen ADDR]");
    std::process::exit(2)
}

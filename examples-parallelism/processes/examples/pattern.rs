//! The pattern of `parallelism-processes` on its own, ready to copy: a TCP
//! service whose work runs in worker processes, copies of the program
//! itself. One thread accepts connections and reads each job; a
//! dispatcher writes it, one line, to a free worker's stdin, and answers
//! the client when the worker's line comes back on its stdout, read by a
//! thread per worker. A worker catches a panicking job and says so, and
//! the client gets an error. At shutdown the accept loop stops, every
//! accepted job is answered, closing their stdin tells the workers to
//! leave, and a `Drop` kills and reaps any worker still running.
//!
//! ```text
//! cargo run -p parallelism-processes --example processes-pattern
//! cargo run -p parallelism-processes --example processes-pattern -- \
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
//! A worker ignores Ctrl-C, which a terminal sends to every process of
//! its group: the server tells its workers when to leave. For structured
//! messages, put `serde_json` at both ends, as the crate does.
//!
//! Its dependencies, all of them:
//!
//! ```toml
//! [dependencies]
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//! socket2 = "0.6" # for the listen backlog
//! ```

use std::collections::VecDeque;
use std::error::Error;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use std::{env, thread};

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

/// One job: some work, a wait (the whole process waits), more work.
fn job(input: u64) -> u64 {
    let half = compute(input);
    thread::sleep(Duration::from_millis(5));
    compute(half)
}

/// The worker role: a job per line in; `n result`, or `n PANIC`, per line
/// out, until stdin closes.
fn worker() -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let n: u64 = line?.trim().parse()?;
        // Caught here, the process lives on to take the next job.
        match panic::catch_unwind(|| job(n)) {
            Ok(result) => writeln!(out, "{n} {result}")?,
            Err(_) => writeln!(out, "{n} PANIC")?,
        }
        out.flush()?; // the server is waiting for this line
    }
    Ok(())
}

/// Kills and reaps every worker still running when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill(); // does nothing to one that has exited
            let _ = child.wait();
        }
    }
}

/// What the dispatcher hears, from the acceptor or a worker's reader.
enum Event {
    Job(u64, TcpStream),
    /// Worker `usize`'s line; `None` when its stdout ended.
    Line(usize, Option<String>),
    Closing,
}

/// The service: `count` workers, the accept loop on this thread until
/// `stop` (then a connection wakes it), every accepted job answered.
fn serve(
    listener: TcpListener,
    count: usize,
    stop: &AtomicBool,
) -> Result<(), BoxError> {
    let me = env::current_exe()?;
    let mut workers = Workers(Vec::new());
    let mut inputs = Vec::new();
    // One channel for the acceptor and every reader: std's `mpsc` has no
    // `select`, so the dispatcher waits on one channel for all of them.
    // Unbounded: each job in it holds a connection, and the OS caps those.
    let (events, inbox) = mpsc::channel();
    let mut readers = Vec::new();
    for w in 0..count {
        let mut child = Command::new(&me)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        inputs.push(child.stdin.take().ok_or("no stdin pipe")?);
        let stdout = BufReader::new(child.stdout.take().ok_or("no pipe")?);
        workers.0.push(child);
        // A reader per worker: std cannot wait on several pipes at once.
        let events = events.clone();
        readers.push(thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if events.send(Event::Line(w, Some(line))).is_err() {
                    return;
                }
            }
            let _ = events.send(Event::Line(w, None));
        }));
    }
    let dispatcher = thread::spawn(move || dispatch(inputs, &inbox));

    // Accept one client at a time, read its job, hand it on.
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                if let Some((n, stream)) = read_job(stream, stop)
                    && events.send(Event::Job(n, stream)).is_err()
                {
                    break; // the dispatcher failed; `join` says why
                }
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Err(e) => {
                eprintln!("accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // Stop accepting; the readers hold senders too, so the channel stays
    // open and the dispatcher is told in so many words.
    drop(listener);
    let _ = events.send(Event::Closing);
    drop(events);
    // Returning early drops `workers`, which kills them all.
    dispatcher.join().map_err(|_| "the dispatcher panicked")??;
    // The dispatcher dropped their stdins: each worker's loop has ended.
    for child in &mut workers.0 {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a worker ended with {status}").into());
        }
    }
    for reader in readers {
        reader.join().map_err(|_| "a reader panicked")?;
    }
    Ok(())
}

/// Reads `JOB <n>` from a client; a bad line is answered at once. A slow
/// client must not hold the only acceptor for long, nor a quiet one past
/// the stop.
fn read_job(
    mut stream: TcpStream,
    stop: &AtomicBool,
) -> Option<(u64, TcpStream)> {
    let line = read_line(&mut stream, stop)?;
    let job = line.trim().strip_prefix("JOB ").map(str::parse);
    if let Some(Ok(n)) = job {
        return Some((n, stream));
    }
    let _ = stream.write_all(b"ERROR expected JOB <n>\n");
    None
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

/// Gives each job to a free worker, one at a time each, and answers its
/// client when the worker's line comes back.
fn dispatch(
    mut inputs: Vec<ChildStdin>,
    inbox: &Receiver<Event>,
) -> Result<(), BoxError> {
    let mut queue = VecDeque::new();
    let mut busy: Vec<Option<TcpStream>> =
        inputs.iter().map(|_| None).collect();
    let mut closing = false;
    loop {
        // Only a free worker gets a job, so a pipe holds at most one line
        // and the write never blocks.
        for (w, input) in inputs.iter_mut().enumerate() {
            if busy[w].is_none()
                && let Some((n, client)) = queue.pop_front()
            {
                writeln!(input, "{n}")?;
                busy[w] = Some(client);
            }
        }
        if closing && queue.is_empty() && busy.iter().all(Option::is_none) {
            return Ok(()); // dropping `inputs` closes every worker's stdin
        }
        match inbox.recv()? {
            Event::Job(n, client) => queue.push_back((n, client)),
            Event::Closing => closing = true,
            Event::Line(w, line) => {
                // No worker should die here: give up, and `serve` returning
                // drops `Workers`, which kills the rest. (The crate hands a
                // dead worker's order to another one instead.)
                let line = line.ok_or_else(|| format!("worker {w} died"))?;
                let mut client = busy[w].take().ok_or("a line out of turn")?;
                let reply = match line.split_once(' ') {
                    Some((n, "PANIC")) => {
                        eprintln!("job {n} panicked"); // seen when it fails
                        format!("ERROR job {n} panicked\n")
                    }
                    Some((n, result)) => format!("DONE {n} {result}\n"),
                    None => return Err(format!("bad line: {line:?}").into()),
                };
                // A client who left has only lost their own answer.
                let _ = client.write_all(reply.as_bytes());
            }
        }
    }
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
    let count = thread::available_parallelism().map_or(2, |n| n.get());
    let server = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || serve(listener, count, &stop))
    };

    let clients: Vec<_> = (0..100u64)
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
    // Stop, and knock once so the blocked `accept` returns and sees it.
    stop.store(true, Ordering::SeqCst);
    knock(addr);
    server.join().map_err(|_| "the server panicked")??;
    println!("100 jobs answered by {count} processes, 1 with an error");
    Ok(())
}

/// The server on `addr` until Ctrl-C or SIGTERM; then it finishes every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let listener = bind(addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(listener.local_addr()?, &stop)?;
    let count = thread::available_parallelism().map_or(2, |n| n.get());
    serve(listener, count, &stop)
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

/// `--worker`: a worker, started by the server. No arguments: the demo. `--listen ADDR`: the server. Anything else: a
/// usage line and exit 2.
fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        // The server closes our stdin when it is time to leave.
        ctrlc::set_handler(|| {})?;
        return worker();
    }
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
    eprintln!("usage: processes-pattern [--listen ADDR]");
    std::process::exit(2)
}

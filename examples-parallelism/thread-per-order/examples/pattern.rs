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
//! cargo run -p parallelism-thread-per-order --example thread-per-order-pattern
//! ```
//!
//! It needs only the standard library and `socket2 = "0.6"` (for the
//! listen backlog).

use std::collections::HashMap;
use std::error::Error;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

type BoxError = Box<dyn Error + Send + Sync>;

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
                if let Some((n, stream)) = read_job(stream) {
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
/// client holds up the next, so its patience is bounded.
fn read_job(mut stream: TcpStream) -> Option<(u64, TcpStream)> {
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(&stream)
        .take(1024)
        .read_line(&mut line)
        .ok()?;
    match line.trim().strip_prefix("JOB ").map(str::parse) {
        Some(Ok(n)) => Some((n, stream)),
        _ => {
            let _ = stream.write_all(b"ERROR expected JOB <n>\n");
            None
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

fn main() -> Result<(), BoxError> {
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
    let _ = TcpStream::connect(addr);
    server.join().map_err(|_| "the server panicked")??;
    println!("100 jobs answered, the panicking one with an error");
    Ok(())
}

//! The pattern of `parallelism-redis-streams` on its own, ready to copy: a
//! TCP service whose jobs go through a Redis stream with a consumer
//! group. Each connection sends `JOB <n>`; its thread adds the job to a
//! stream (`XADD`); worker processes, copies of this program that could
//! as well run on other machines, take them (`XREADGROUP`), and for each
//! one add its result to a second stream, acknowledge the job (`XACK`)
//! and delete it, in one transaction. A collector thread reads the
//! results and answers each connection `DONE <n> <result>`. A worker
//! that dies mid-job leaves the job pending; another worker claims it
//! once it has sat idle long enough (`XAUTOCLAIM`). Delivery is
//! therefore at least once, and the collector keeps the connections
//! still waiting and drops a second result for a job already answered.
//!
//! Every key is named after the run, a random id drawn at start, so two
//! runs sharing one Redis never touch each other's streams. A request
//! line must come whole within `PATIENCE`, however slowly it drips.
//! Stopping: the accept loop stops, every connection still waiting for
//! its request is closed, and every job taken is answered.
//!
//! ```text
//! cargo run -p parallelism-redis-streams --example redis-streams-pattern
//! cargo run -p parallelism-redis-streams --example redis-streams-pattern \
//!     -- --listen 127.0.0.1:7000
//! ```
//!
//! Both start a redis-server of their own (`redis-server` must be on the
//! PATH; persistence off, on a free loopback port, killed on the way out)
//! and two workers. Without arguments it runs a demo: a hundred clients,
//! and the worker handed job 13 dies the first time, so that job is
//! redelivered; it checks that every answer is right (without
//! `redis-server`, it says so and exits 0). With `--listen ADDR` it
//! serves until Ctrl-C or SIGTERM, then exits 0. A server killed outright
//! (`kill -9`) leaves its redis-server running: the crate ties it to its
//! parent with a parent-death signal, which std alone cannot. Jobs longer
//! than the claim time need a heartbeat that keeps them claimed while
//! they run: see the crate's `heartbeat`.
//!
//! Its dependencies, all of them:
//!
//! ```toml
//! [dependencies]
//! ctrlc = { version = "3.5", features = ["termination"] } # SIGTERM too
//!
//! [dependencies.redis]
//! version = "1.8"
//! default-features = false
//! features = ["streams"]
//! ```

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::error::Error;
use std::hash::BuildHasher;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{self, Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{Commands, Connection};

type BoxError = Box<dyn Error + Send + Sync>;

const GROUP: &str = "workers";
/// A job idle this long, delivered but not acknowledged, is claimed.
const CLAIM_IDLE: Duration = Duration::from_millis(500);
/// How long a client may take to send its whole request line. One
/// deadline for the line, not one per read: a client dripping a byte a
/// second would otherwise hold its connection for ever.
const PATIENCE: Duration = Duration::from_secs(2);

/// Stands in for your work.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// A run's keys, named after its id.
#[derive(Clone, Debug)]
struct Keys {
    jobs: String,
    results: String,
}

impl Keys {
    fn of(run: &str) -> Keys {
        Keys {
            jobs: format!("pattern:{run}:jobs"),
            results: format!("pattern:{run}:results"),
        }
    }
}

/// Kills and reaps its process when dropped, on every way out.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process group of its own (Unix): a terminal's Ctrl-C, sent to its
/// whole foreground group, must stop the server alone, which finishes
/// its jobs, rather than kill the workers and Redis under them.
fn own_group(command: &mut Command) -> &mut Command {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(command, 0);
    command
}

/// The worker role: takes jobs until killed, or until its server ends.
fn worker(
    url: &str,
    keys: &Keys,
    crash_on: Option<u64>,
) -> Result<(), BoxError> {
    // Our stdin is a pipe from the server: it ends when the server does,
    // however it ends, and so do we.
    thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        process::exit(0);
    });
    let mut con = redis::Client::open(url)?.get_connection()?;
    let me = format!("worker-{}", process::id());
    let read = StreamReadOptions::default()
        .group(GROUP, &me)
        .count(1)
        .block(CLAIM_IDLE.as_millis() as usize / 2);
    let mut cursor = "0-0".to_owned();
    loop {
        // A job a dead worker left idle comes first; else a new one.
        let claimed: StreamAutoClaimReply = con.xautoclaim_options(
            &keys.jobs,
            GROUP,
            &me,
            CLAIM_IDLE.as_millis() as u64,
            &cursor,
            StreamAutoClaimOptions::default().count(1),
        )?;
        cursor = claimed.next_stream_id;
        let mut entries = claimed.claimed;
        if entries.is_empty() {
            let new: Option<StreamReadReply> =
                con.xread_options(&[&keys.jobs], &[">"], &read)?;
            entries = new
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .collect();
        }
        for entry in entries {
            let (Some(seq), Some(n)) =
                (entry.get::<u64>("seq"), entry.get::<u64>("n"))
            else {
                // Not a job: acknowledged and dropped, never redelivered.
                // (A real service would move it to a dead-letter stream.)
                redis::pipe()
                    .xack(&keys.jobs, GROUP, &[&entry.id])
                    .xdel(&keys.jobs, &[&entry.id])
                    .query::<()>(&mut con)?;
                continue;
            };
            // The demonstration's crash: the first worker to take job
            // `crash_on` dies, before it acknowledges it.
            let pending: StreamPendingCountReply =
                con.xpending_count(&keys.jobs, GROUP, &entry.id, &entry.id, 1)?;
            let delivered =
                pending.ids.first().map_or(1, |p| p.times_delivered);
            if crash_on == Some(n) && delivered == 1 {
                process::abort();
            }
            let result = compute(n);
            // The result, the ack and the delete in one transaction: a
            // worker dying before it leaves the job to another; after, it
            // leaves nothing to redo.
            redis::pipe()
                .atomic()
                .xadd(
                    &keys.results,
                    "*",
                    &[("seq", seq), ("n", n), ("result", result)],
                )
                .ignore()
                .xack(&keys.jobs, GROUP, &[&entry.id])
                .ignore()
                .xdel(&keys.jobs, &[&entry.id])
                .ignore()
                .query::<()>(&mut con)?;
        }
    }
}

/// A redis-server of our own, on a free loopback port, persistence off,
/// and the workers: everything a run starts, killed and reaped when
/// dropped (the workers first).
struct Backend {
    _workers: Vec<Reaped>,
    _redis: Reaped,
    url: String,
    keys: Keys,
}

/// Starts the backend: the redis-server, the group on a stream named
/// after a new run, and `count` workers, whose first to take job
/// `crash_on` dies. `Err` if redis-server cannot be started.
fn start_backend(
    count: usize,
    crash_on: Option<u64>,
) -> Result<Backend, BoxError> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let child = own_group(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )
    .spawn()?;
    let redis = Reaped(child);
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str())?;
    let began = Instant::now();
    let mut con = loop {
        let answers = client.get_connection().and_then(|mut con| {
            redis::cmd("PING").query::<String>(&mut con)?;
            Ok(con)
        });
        match answers {
            Ok(con) => break con,
            Err(_) if began.elapsed() > Duration::from_secs(10) => {
                return Err("redis-server did not answer".into());
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    };
    let id = RandomState::new().hash_one((process::id(), SystemTime::now()));
    let run = format!("{id:016x}");
    let keys = Keys::of(&run);
    // Made before any worker starts, at `0`: no job is ever missed.
    con.xgroup_create_mkstream::<_, _, _, ()>(&keys.jobs, GROUP, "0")?;
    let me = std::env::current_exe()?;
    let mut workers = Vec::with_capacity(count);
    for _ in 0..count {
        let mut command = Command::new(&me);
        command.args(["--worker", &url, &run]);
        if let Some(n) = crash_on {
            command.args(["--crash-on", &n.to_string()]);
        }
        // stdin piped, and kept open in the `Child`, until it is dropped.
        let child = own_group(command.stdin(Stdio::piped())).spawn()?;
        workers.push(Reaped(child));
    }
    Ok(Backend {
        _workers: workers,
        _redis: redis,
        url,
        keys,
    })
}

/// What the server's threads share.
struct Shared {
    keys: Keys,
    /// The connection that adds jobs, one command at a time.
    producer: Mutex<Connection>,
    /// Connections still reading their request, by ticket: closed at stop.
    reading: Mutex<HashMap<u64, TcpStream>>,
    /// Connections whose job is on the stream, by ticket, with the job.
    waiting: Mutex<HashMap<u64, (u64, TcpStream)>>,
    /// Every job taken is on the stream: the collector may end.
    closing: AtomicBool,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The accept loop: a thread per connection until `stop`, then closes
/// the connections still reading and returns once every job taken is
/// answered: how many second results were dropped.
fn serve(
    listener: TcpListener,
    backend: &Backend,
    stop: &AtomicBool,
) -> Result<u64, BoxError> {
    let client = redis::Client::open(backend.url.as_str())?;
    let shared = Arc::new(Shared {
        keys: backend.keys.clone(),
        producer: Mutex::new(client.get_connection()?),
        reading: Mutex::new(HashMap::new()),
        waiting: Mutex::new(HashMap::new()),
        closing: AtomicBool::new(false),
    });
    let collector = {
        let (shared, con) = (Arc::clone(&shared), client.get_connection()?);
        thread::spawn(move || collect(&shared, con))
    };
    let mut connections = Vec::new();
    // `incoming` blocks in `accept`: whoever sets `stop` knocks once.
    for (ticket, stream) in (0..).zip(listener.incoming()) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                // Listed here, before its thread starts, so the sweep at
                // stop cannot miss it.
                locked(&shared.reading).insert(ticket, stream.try_clone()?);
                let shared = Arc::clone(&shared);
                connections.push(thread::spawn(move || {
                    handle(&shared, ticket, stream)
                }));
            }
            // Never fatal: out of descriptors, a reset. Back off.
            Err(e) => {
                eprintln!("accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
        connections.retain(|c: &thread::JoinHandle<()>| !c.is_finished());
    }
    // Refuse newcomers; close whoever is still saying their request.
    drop(listener);
    for stream in locked(&shared.reading).values() {
        let _ = stream.shutdown(Shutdown::Read);
    }
    for connection in connections {
        let _ = connection.join();
    }
    shared.closing.store(true, Ordering::SeqCst);
    collector.join().map_err(|_| "the collector panicked")?
}

/// One connection: reads `JOB <n>` within `PATIENCE`, puts it in the
/// books, then on the stream; the collector answers it.
fn handle(shared: &Shared, ticket: u64, mut stream: TcpStream) {
    let mut line = String::new();
    let until = Instant::now() + PATIENCE;
    let read = BufReader::new(Deadline {
        stream: &stream,
        until,
    })
    .take(1024)
    .read_line(&mut line);
    locked(&shared.reading).remove(&ticket);
    // Too slow, hung up, or closed at stop: hang up.
    if !matches!(read, Ok(n) if n > 0 && line.ends_with('\n')) {
        return;
    }
    let Some(Ok(n)) = line.trim().strip_prefix("JOB ").map(str::parse) else {
        let _ = stream.write_all(b"ERROR expected JOB <n>\n");
        return;
    };
    // In the books first: a fast worker's result must find it waiting.
    locked(&shared.waiting).insert(ticket, (n, stream));
    let added = locked(&shared.producer).xadd::<_, _, _, _, String>(
        &shared.keys.jobs,
        "*",
        &[("seq", ticket), ("n", n)],
    );
    if let Err(e) = added
        && let Some((_, mut stream)) = locked(&shared.waiting).remove(&ticket)
    {
        let _ = stream.write_all(format!("ERROR {e}\n").as_bytes());
    }
}

/// Reads a socket until a deadline: each read waits only what is left.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        // A zero time-out would mean "none" to the socket.
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// The collector: answers each waiting connection from the results
/// stream, until closing time finds nobody waiting. At least once: a
/// result for a ticket no longer waiting is a second one, and dropped.
fn collect(shared: &Shared, mut con: Connection) -> Result<u64, BoxError> {
    let read = StreamReadOptions::default().block(20).count(100);
    let mut last = "0-0".to_owned();
    let mut seconds = 0;
    loop {
        // Read before looking: `closing` is set once nothing more comes.
        let closing = shared.closing.load(Ordering::SeqCst);
        if closing && locked(&shared.waiting).is_empty() {
            return Ok(seconds);
        }
        let reply: Option<StreamReadReply> =
            con.xread_options(&[&shared.keys.results], &[&last], &read)?;
        let mut read_ids = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids)
        {
            last.clone_from(&entry.id);
            let fields = (entry.get("seq"), entry.get::<u64>("result"));
            read_ids.push(entry.id);
            let (Some(ticket), Some(result)) = fields else {
                continue;
            };
            match locked(&shared.waiting).remove(&ticket) {
                Some((n, mut stream)) => {
                    let answer = format!("DONE {n} {result}\n");
                    // A client who hung up has lost only its own answer.
                    let _ = stream.write_all(answer.as_bytes());
                }
                None => seconds += 1,
            }
        }
        // Results read are deleted: the stream holds only the unread.
        if !read_ids.is_empty() {
            con.xdel::<_, _, ()>(&shared.keys.results, &read_ids)?;
        }
    }
}

/// Sets `stop`, and knocks on `addr` so that the accept loop wakes up.
fn stop_at(addr: SocketAddr, stop: &AtomicBool) {
    stop.store(true, Ordering::SeqCst);
    let mut door = addr;
    if door.ip().is_unspecified() {
        door.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let _ = TcpStream::connect(door);
}

/// A client: sends one job, returns the answer.
fn ask(addr: SocketAddr, n: u64) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    // A bound, so that a broken server fails the demo instead of hanging.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(format!("JOB {n}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The demo: the service on a free port, a hundred clients, every
/// answer checked, then the stop.
fn demo() -> Result<(), BoxError> {
    let backend = match start_backend(2, Some(13)) {
        Ok(backend) => backend,
        Err(e) => {
            println!(
                "skipped: cannot start redis-server ({e}); install it to run this"
            );
            return Ok(());
        }
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let stop = AtomicBool::new(false);
    let (answers, served) = thread::scope(|scope| {
        let server = scope.spawn(|| serve(listener, &backend, &stop));
        let clients: Vec<_> = (0..100u64)
            .map(|n| scope.spawn(move || ask(addr, n)))
            .collect();
        let answers: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        // Stopped before anything is checked: the scope waits for it.
        stop_at(addr, &stop);
        (answers, server.join())
    });
    let seconds = served.map_err(|_| "the server panicked")??;
    for (n, answer) in (0..).zip(answers) {
        let answer = answer.map_err(|_| "a client panicked")??;
        if answer != format!("DONE {n} {}\n", compute(n)) {
            return Err(format!("job {n}: {answer:?}").into());
        }
    }
    println!(
        "100 jobs, every answer once and right, job 13 redelivered after its \
         worker died; {seconds} second results dropped"
    );
    Ok(())
}

/// The service on `addr` until Ctrl-C or SIGTERM; then it answers every
/// job it took and returns.
fn listen(addr: SocketAddr) -> Result<(), BoxError> {
    let backend = start_backend(2, None)?;
    let listener = TcpListener::bind(addr)?;
    let door = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    // ctrlc runs this on a thread of its own, at every signal.
    ctrlc::set_handler(move || stop_at(door, &stopping))?;
    // Said once the handler is in, and flushed: whoever started us may
    // be waiting for it on a pipe.
    println!("listening on {door}");
    io::stdout().flush()?;
    serve(listener, &backend, &stop)?;
    Ok(())
}

/// No arguments: the demo. `--listen ADDR`: the service. `--worker URL
/// RUN [--crash-on N]`: a worker, as the server starts them. Anything
/// else: a usage line and exit 2.
fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => demo(),
        ["--listen", addr] => match addr.parse() {
            Ok(addr) => listen(addr),
            Err(_) => usage(),
        },
        ["--worker", url, run] => worker(url, &Keys::of(run), None),
        ["--worker", url, run, "--crash-on", n] => match n.parse() {
            Ok(n) => worker(url, &Keys::of(run), Some(n)),
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

/// Says how to call it, and exits 2, as a command line does.
fn usage() -> ! {
    eprintln!("usage: redis-streams-pattern [--listen ADDR]");
    process::exit(2)
}

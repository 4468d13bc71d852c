//! The customers: an open-loop load that walks in through the door at each
//! order's arrival time and times everything from its own side.
//!
//! Each customer opens one TCP connection at its arrival time, waits to be
//! greeted (`NEXT`), says its order line, waits to be rung up (`RUNG`), then
//! for its plate (`PLATE`), and reads on to end-of-file, so the restaurant
//! hangs up first. No customer waits for another: the load is open-loop,
//! as real customers are. What they measure is a server's, as a client
//! sees it; what they cost is their own, and they run in a process of
//! their own so that it never counts as the model's.
//!
//! Two threads do it. The *pacer* sleeps until each arrival and starts the
//! connection itself, so a busy I/O loop never makes a customer late; the
//! customer's conversation then runs as a task on a single-threaded tokio
//! runtime, one task per open connection. The pacer keeps at most
//! [`connection_cap`] connections open: beyond that a customer waits for
//! one to close (the load becomes partly closed-loop, and the arrival lag
//! in the report shows by how much).

use std::io;
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::wire::{self, Reply};
use crate::workload::{Order, Workload};

/// One customer's visit, timed on the customers' side, each moment as an
/// offset from opening.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visit {
    /// When the customer started to connect.
    pub walked_in: Option<Duration>,
    /// When the connection was made.
    pub connected: Option<Duration>,
    /// When `NEXT` arrived.
    pub greeted: Option<Duration>,
    /// When `RUNG` arrived.
    pub rung: Option<Duration>,
    /// When `PLATE` arrived.
    pub plated: Option<Duration>,
    /// The digest on the plate.
    pub digest: Option<u64>,
    /// What went wrong, if anything: an `ERROR` from the restaurant, a line
    /// out of turn, a connection refused or cut.
    pub trouble: Option<String>,
}

/// A night of customers, as they saw it.
#[derive(Clone, Debug)]
pub struct Night {
    /// One visit per order, in order of id.
    pub visits: Vec<Visit>,
    /// Whether the customers were told to stop coming (Ctrl-C).
    pub interrupted: bool,
    /// The most connections the customers kept open at once.
    pub cap: usize,
    /// Customers who had to wait for a free connection before walking in.
    pub held_at_cap: u64,
    /// The customers' own CPU time.
    pub cpu: Option<Duration>,
}

/// How many connections the customers keep open at once at most:
/// min(soft file-descriptor limit − 256, ephemeral ports − 1024), at
/// least one. Call [`raise_fd_limit`] first to make the most of it.
pub fn connection_cap() -> usize {
    let fds = fd_limit().map_or(usize::MAX, |n| n.saturating_sub(256));
    let ports =
        ephemeral_ports().map_or(usize::MAX, |n| n.saturating_sub(1024));
    fds.min(ports).clamp(1, 1 << 20)
}

/// Raises this process's soft limit on open files to its hard limit, so a
/// burst of thousands of connections does not run out of descriptors.
/// Servers and customers both call it. Does nothing off Unix.
pub fn raise_fd_limit() {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            // macOS refuses more than OPEN_MAX for the soft limit; keep what
            // there is then.
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn fd_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit};
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        usize::try_from(soft).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The size of the kernel's ephemeral port range (Linux only).
fn ephemeral_ports() -> Option<usize> {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()?;
    let mut ends = range.split_whitespace().map(|w| w.parse::<usize>().ok());
    let (low, high) = (ends.next()??, ends.next()??);
    Some(high.saturating_sub(low) + 1)
}

/// What the pacer and the customers tell the collector.
enum News {
    /// Customer `i` has been rung up, or turned away: it is in the kitchen
    /// or gone, no longer at the till.
    Settled,
    /// Customer `i`'s visit is over.
    Left(usize, Visit),
    /// The pacer is done: this many customers walked in.
    AllWalkedIn(usize),
}

/// Free connection slots, which the pacer waits on.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn take(&self, stop: &AtomicBool) -> Option<bool> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let mut waited = false;
        while *free == 0 {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            waited = true;
            free = self
                .freed
                .wait_timeout(free, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *free -= 1;
        Some(waited)
    }

    fn give_back(&self) {
        *self.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.freed.notify_one();
    }
}

/// A slot handed back when the customer's task ends, however it ends.
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

/// Sends `workload`'s customers to the restaurant at `door`, starting now
/// (time zero is this call), and returns what they saw.
///
/// `all_in` is called once, when every customer who walked in has been
/// rung up or turned away: the restaurant may close then without turning
/// anyone away. Setting `stop` stops customers from walking in; those
/// already in carry on.
pub fn visit(
    workload: &Workload,
    door: SocketAddr,
    stop: &AtomicBool,
    all_in: impl FnOnce(),
) -> io::Result<Night> {
    // Time for the slow talkers' pauses (tokio's timer: millisecond
    // resolution, plenty for pauses of tens of milliseconds).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let cap = connection_cap();
    let slots = Arc::new(Slots {
        free: Mutex::new(cap),
        freed: Condvar::new(),
    });
    let (news, mut heard) = mpsc::unbounded_channel();
    let opening = Instant::now();
    let orders = workload.orders();

    thread::scope(|scope| {
        let handle = runtime.handle().clone();
        let pacer_slots = Arc::clone(&slots);
        let pacer_news = news.clone();
        let pacer = thread::Builder::new().name("pacer".into()).spawn_scoped(
            scope,
            move || {
                pace(
                    orders,
                    door,
                    opening,
                    stop,
                    &pacer_slots,
                    |i, visit, socket| {
                        let slot = Slot(Arc::clone(&pacer_slots));
                        let news = pacer_news.clone();
                        let line = orders[i].line();
                        let (id, talk) = (orders[i].id(), orders[i].talk());
                        handle.spawn(async move {
                            let said = Said { id, line, talk };
                            let visit =
                                converse(socket, visit, &said, opening, &news)
                                    .await;
                            drop(slot);
                            let _ = news.send(News::Left(i, visit));
                        });
                    },
                    &pacer_news,
                )
            },
        )?;
        drop(news);

        let mut visits = vec![Visit::default(); orders.len()];
        let mut all_in = Some(all_in);
        let (mut settled, mut left) = (0usize, 0usize);
        let mut walked_in = None;
        runtime.block_on(async {
            while let Some(item) = heard.recv().await {
                match item {
                    News::Settled => settled += 1,
                    News::Left(i, visit) => {
                        left += 1;
                        visits[i] = visit;
                    }
                    News::AllWalkedIn(n) => walked_in = Some(n),
                }
                if let Some(n) = walked_in {
                    if settled >= n
                        && let Some(all_in) = all_in.take()
                    {
                        all_in();
                    }
                    if left >= n {
                        break;
                    }
                }
            }
        });
        let held = pacer.join().unwrap_or(0);
        let interrupted = stop.load(Ordering::SeqCst);
        Ok(Night {
            visits,
            interrupted,
            cap,
            held_at_cap: held,
            cpu: crate::probe::own_cpu_time(),
        })
    })
}

/// The pacer: for each order in arrival order, waits for a free slot and
/// for the arrival time, then starts the connection and hands it on.
/// Returns how many customers had to wait for a slot.
fn pace(
    orders: &[Order],
    door: SocketAddr,
    opening: Instant,
    stop: &AtomicBool,
    slots: &Slots,
    mut hand_on: impl FnMut(usize, Visit, Option<StdStream>),
    news: &mpsc::UnboundedSender<News>,
) -> u64 {
    precise_timers();
    let mut held = 0;
    let mut walked = 0;
    for (i, order) in orders.iter().enumerate() {
        let Some(waited) = slots.take(stop) else {
            break;
        };
        held += u64::from(waited);
        let due = opening + order.arrival();
        loop {
            let now = Instant::now();
            if now >= due || stop.load(Ordering::Relaxed) {
                break;
            }
            let left = due - now;
            if left > SPIN {
                // Sleep in short steps, so a stop is seen within 50 ms.
                thread::sleep((left - SPIN).min(Duration::from_millis(50)));
            } else {
                std::hint::spin_loop();
            }
        }
        if stop.load(Ordering::Relaxed) {
            slots.give_back();
            break;
        }
        let mut visit = Visit {
            walked_in: Some(opening.elapsed()),
            ..Visit::default()
        };
        let socket = match start_connect(door) {
            Ok(socket) => Some(socket),
            Err(e) => {
                visit.trouble = Some(format!("could not connect: {e}"));
                None
            }
        };
        hand_on(i, visit, socket);
        walked += 1;
    }
    let _ = news.send(News::AllWalkedIn(walked));
    held
}

/// How long before an arrival the pacer stops sleeping and spins instead.
/// A sleeping thread's wake-up can come late by a millisecond or more on
/// a busy (or virtual) machine; spinning through the last stretch keeps
/// the thread on its core. On the project's two-core virtual machine it
/// brings the arrival lag's 99th percentile on `lunch-rush` from
/// milliseconds down to a fraction of one, for a tenth of a core or so
/// (in the customers' CPU, never the server's). Spinning by `yield_now` instead gives the core away to any
/// other runnable thread, for a whole time slice.
const SPIN: Duration = Duration::from_micros(300);

/// Asks the kernel for tight timer wake-ups for this thread (Linux's
/// default "timer slack" lets a sleep end up to 50 µs late).
fn precise_timers() {
    #[cfg(target_os = "linux")]
    {
        let _ = nix::sys::prctl::set_timerslack(1);
    }
}

/// Starts a non-blocking connect to `door` and returns the socket at once,
/// the handshake under way.
fn start_connect(door: SocketAddr) -> io::Result<StdStream> {
    let socket = Socket::new(
        Domain::for_address(door),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_tcp_keepalive(&KEEPALIVE)?;
    match socket.connect(&SockAddr::from(door)) {
        Ok(()) => {}
        Err(e) if in_progress(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// Keepalive probes after 5 s of silence, every 2 s. A server that is
/// slow answers a probe from its kernel, however long it takes to greet;
/// only a connection the server no longer has goes unanswered or is reset.
/// That happens when the server's accept queue is full as the handshake
/// ends: Linux drops the customer's last ACK, the customer believes it is
/// connected, and if the server gives up on the handshake the customer
/// would wait for `NEXT` for ever. With the probes it hears of it within
/// seconds, and the report names it.
#[cfg(any(target_os = "linux", target_os = "macos"))]
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(5))
    .with_interval(Duration::from_secs(2))
    .with_retries(3);
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(5))
    .with_interval(Duration::from_secs(2));

fn in_progress(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(nix::errno::Errno::EINPROGRESS as i32) {
        return true;
    }
    e.kind() == io::ErrorKind::WouldBlock
}

/// What one customer says, and how long they take to say it.
struct Said {
    id: u64,
    line: String,
    talk: Duration,
}

/// One customer's conversation with the restaurant.
async fn converse(
    socket: Option<StdStream>,
    mut visit: Visit,
    said: &Said,
    opening: Instant,
    news: &mpsc::UnboundedSender<News>,
) -> Visit {
    let mut settled = false;
    if let Some(socket) = socket
        && let Err(trouble) =
            talk(socket, &mut visit, said, opening, news, &mut settled).await
    {
        visit.trouble = Some(trouble);
    }
    if !settled {
        let _ = news.send(News::Settled);
    }
    visit
}

async fn talk(
    socket: StdStream,
    visit: &mut Visit,
    said: &Said,
    opening: Instant,
    news: &mpsc::UnboundedSender<News>,
    settled: &mut bool,
) -> Result<(), String> {
    let cut = |e: io::Error| format!("connection lost: {e}");
    let stream = TcpStream::from_std(socket).map_err(cut)?;
    stream.writable().await.map_err(cut)?;
    if let Some(e) = stream.take_error().map_err(cut)? {
        return Err(format!("could not connect: {e}"));
    }
    visit.connected = Some(opening.elapsed());
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut buf = String::new();

    expect(&mut reader, &mut buf, "NEXT", |r| r == Reply::Next).await?;
    visit.greeted = Some(opening.elapsed());
    // A slow talker keeps the listener waiting before the line arrives.
    if !said.talk.is_zero() {
        tokio::time::sleep(said.talk).await;
    }
    writer.write_all(said.line.as_bytes()).await.map_err(cut)?;
    let id = said.id;

    expect(&mut reader, &mut buf, "RUNG", |r| r == Reply::Rung(id)).await?;
    visit.rung = Some(opening.elapsed());
    *settled = true;
    let _ = news.send(News::Settled);

    let mut digest = None;
    expect(&mut reader, &mut buf, "PLATE", |r| match r {
        Reply::Plate(i, d) if i == id => {
            digest = Some(d);
            true
        }
        _ => false,
    })
    .await?;
    visit.plated = Some(opening.elapsed());
    visit.digest = digest;

    // The restaurant hangs up after the plate; anything more is a fault.
    let mut rest = Vec::new();
    (&mut reader)
        .take(wire::MAX_LINE as u64)
        .read_to_end(&mut rest)
        .await
        .map_err(cut)?;
    if !rest.is_empty() {
        let more = String::from_utf8_lossy(&rest);
        return Err(format!("more after the plate: {:?}", more.trim_end()));
    }
    Ok(())
}

/// Reads one line and checks it is the reply expected; an `ERROR`, an
/// early end or any other line is the customer's trouble, quoted.
async fn expect(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut String,
    what: &str,
    ok: impl FnOnce(Reply) -> bool,
) -> Result<(), String> {
    buf.clear();
    let n = reader
        .take(wire::MAX_LINE as u64)
        .read_line(buf)
        .await
        .map_err(|e| format!("connection lost waiting for {what}: {e}"))?;
    if n == 0 {
        return Err(format!("the restaurant hung up before {what}"));
    }
    match wire::parse_reply(buf) {
        Some(Reply::Error(reason)) => Err(format!("turned away: {reason}")),
        Some(reply) if ok(reply.clone()) => Ok(()),
        _ => Err(format!("expected {what}, heard {:?}", buf.trim_end())),
    }
}

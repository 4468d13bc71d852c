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
//! connection itself, so a busy I/O loop never makes a customer late (on
//! Linux, where allowed, it runs at real-time priority, so a server that
//! keeps both cores busy cannot delay it either); the
//! customer's conversation then runs as a task on a single-threaded tokio
//! runtime, one task per open connection. The pacer keeps at most
//! [`connection_cap`] connections open: beyond that a customer waits for
//! one to close (the load becomes partly closed-loop, and the arrival lag
//! in the report shows by how much).
//!
//! The customers share two cores with the restaurant, so they are
//! sometimes late to read what it sent. That delay is theirs, not the
//! restaurant's: the moments `NEXT` and `PLATE` arrived are the kernel's
//! receive stamps (`SO_TIMESTAMPNS`, read with `recvmsg`), not the moment
//! the customer got round to reading them. Where the OS gives no stamp,
//! read times are used and the night says so ([`Stamps`]).

use std::io;
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::wire::{self, Reply};
use crate::workload::{Order, Workload};

/// One customer's visit, timed on the customers' side, each moment as an
/// offset from opening.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// When the customer started to connect.
    pub walked_in: Option<Duration>,
    /// When the connection was made.
    pub connected: Option<Duration>,
    /// When `NEXT` arrived (the kernel's receive stamp, where it gives one).
    pub greeted: Option<Duration>,
    /// When the order line had been sent.
    pub ordered: Option<Duration>,
    /// When `RUNG` was read. Not a receive stamp: `RUNG` and `PLATE` can
    /// arrive in one segment and share one, so no measure uses it.
    pub rung: Option<Duration>,
    /// When `PLATE` arrived (the kernel's receive stamp, where it gives
    /// one).
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
    /// Where the moments `NEXT` and `PLATE` arrived came from.
    pub stamps: Stamps,
    /// Time zero on the wall clock, to line a night up with events outside
    /// it (a test that stops the customers' process).
    pub opened_at: SystemTime,
}

/// Where the customers took the moment a reply arrived.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum Stamps {
    /// The kernel's receive stamp (`SO_TIMESTAMPNS`): when the bytes
    /// arrived, however late the customer read them. Linux only.
    #[default]
    Kernel,
    /// The moment the customer read the bytes, which includes the
    /// customers' own scheduling delay. Used where the OS gives no stamp,
    /// or when asked for (to show the difference).
    Read,
}

impl Stamps {
    /// What this machine can give: kernel stamps on Linux, read times
    /// elsewhere.
    pub fn best() -> Stamps {
        if cfg!(target_os = "linux") {
            Stamps::Kernel
        } else {
            Stamps::Read
        }
    }

    /// `kernel` or `read`.
    pub fn name(self) -> &'static str {
        match self {
            Stamps::Kernel => "kernel",
            Stamps::Read => "read",
        }
    }
}

/// A socket that asks for receive stamps for as long as it lives.
///
/// Linux stamps incoming packets only while at least one socket has asked
/// for stamps, and turns stamping on and off through deferred work: a
/// night whose connections all close for a moment would see the next
/// greeting arrive unstamped. This socket keeps stamping on from before
/// the first customer to after the last.
struct StampKeeper {
    #[cfg(target_os = "linux")]
    _socket: std::net::UdpSocket,
}

impl StampKeeper {
    /// Asks for stamps and waits (up to half a second) until a datagram to
    /// itself comes back stamped; `None` where the OS gives no stamps.
    #[cfg(target_os = "linux")]
    fn start() -> Option<StampKeeper> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{
            ControlMessageOwned, MsgFlags, recvmsg, setsockopt,
            sockopt::ReceiveTimestampns,
        };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
        setsockopt(&socket, ReceiveTimestampns, &true).ok()?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .ok()?;
        let me = socket.local_addr().ok()?;
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            socket.send_to(b"stamp?", me).ok()?;
            let mut byte = [0u8; 8];
            let mut iov = [IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let Ok(message) = recvmsg::<()>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            ) else {
                continue;
            };
            let stamped = message.cmsgs().is_ok_and(|mut cmsgs| {
                cmsgs.any(|c| {
                    matches!(c, ControlMessageOwned::ScmTimestampns(_))
                })
            });
            if stamped {
                return Some(StampKeeper { _socket: socket });
            }
            thread::sleep(Duration::from_millis(1));
        }
        None
    }

    #[cfg(not(target_os = "linux"))]
    fn start() -> Option<StampKeeper> {
        None
    }
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

/// Grows this process's table of file descriptors to hold `n` of them
/// now, before any is timed (Linux).
///
/// The kernel doubles the table as descriptors are opened, and in a
/// process with several threads each doubling waits for an RCU grace
/// period: 10 to 30 ms on the project's machine, during which the thread
/// opening a socket stands still. Measured with 5,000 customers, their
/// pacer stalled at the 256th, 512th, 1,024th and 2,048th connection, each
/// time making the customers after it late. A server that has run for a
/// while has its table grown already; a run of a few seconds has not. So
/// the customers, and the server before it opens, grow theirs first: one
/// descriptor duplicated high up and closed again (the table never
/// shrinks). Does nothing elsewhere, or past the open-file limit.
pub fn reserve_descriptors(n: usize) {
    #[cfg(target_os = "linux")]
    {
        let n = n.min(fd_limit().unwrap_or(0).saturating_sub(1));
        let Ok(n) = libc::c_int::try_from(n) else {
            return;
        };
        if n < 64 {
            return;
        }
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) duplicates standard error (or
        // fails harmlessly if it is closed) onto a new descriptor that
        // nothing else knows of, which is closed at once.
        #[allow(unsafe_code)]
        unsafe {
            let high = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, n);
            if high >= 0 {
                libc::close(high);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = n;
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
    visit_with(workload, door, Stamps::best(), stop, all_in)
}

/// [`visit`], taking reply moments as `stamps` asks (kernel stamps where
/// the OS has them, else read times).
pub fn visit_with(
    workload: &Workload,
    door: SocketAddr,
    stamps: Stamps,
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
    // A descriptor per open connection, and a few for the process itself.
    reserve_descriptors(workload.orders().len().min(cap) + 64);
    let slots = Arc::new(Slots {
        free: Mutex::new(cap),
        freed: Condvar::new(),
    });
    // Kernel stamps for the whole night, or read times from the start.
    let keeper = match stamps {
        Stamps::Kernel => StampKeeper::start(),
        Stamps::Read => None,
    };
    let stamps = if keeper.is_some() {
        Stamps::Kernel
    } else {
        Stamps::Read
    };
    let (news, mut heard) = mpsc::unbounded_channel();
    let opening = Opening::now();
    let orders = workload.orders();
    // Whether any customer had to fall back on read times.
    let read_only = Arc::new(AtomicBool::new(stamps == Stamps::Read));

    thread::scope(|scope| {
        let handle = runtime.handle().clone();
        let pacer_slots = Arc::clone(&slots);
        let pacer_news = news.clone();
        let pacer_read_only = Arc::clone(&read_only);
        let pacer = thread::Builder::new().name("pacer".into()).spawn_scoped(
            scope,
            move || {
                pace(
                    orders,
                    door,
                    stamps,
                    opening.instant,
                    stop,
                    &pacer_slots,
                    |i, visit, socket| {
                        let slot = Slot(Arc::clone(&pacer_slots));
                        let news = pacer_news.clone();
                        let line = orders[i].line();
                        let (id, talk) = (orders[i].id(), orders[i].talk());
                        let read_only = Arc::clone(&pacer_read_only);
                        handle.spawn(async move {
                            let said = Said { id, line, talk };
                            let clock = Clock {
                                opening,
                                stamps,
                                read_only: &read_only,
                            };
                            let visit =
                                converse(socket, visit, &said, &clock, &news)
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
        drop(keeper);
        let stamps = if read_only.load(Ordering::SeqCst) {
            Stamps::Read
        } else {
            Stamps::Kernel
        };
        Ok(Night {
            visits,
            interrupted,
            cap,
            held_at_cap: held,
            cpu: crate::probe::own_cpu_time(),
            stamps,
            opened_at: opening.wall,
        })
    })
}

/// The pacer: for each order in arrival order, waits for a free slot and
/// for the arrival time, then starts the connection and hands it on.
/// Returns how many customers had to wait for a slot.
#[allow(clippy::too_many_arguments)]
fn pace(
    orders: &[Order],
    door: SocketAddr,
    stamps: Stamps,
    opening: Instant,
    stop: &AtomicBool,
    slots: &Slots,
    mut hand_on: impl FnMut(usize, Visit, Option<StdStream>),
    news: &mpsc::UnboundedSender<News>,
) -> u64 {
    precise_timers();
    let spin = if keep_time_first() { SPIN_FIRST } else { SPIN };
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
            if left > spin {
                // Sleep in short steps, so a stop is seen within 50 ms.
                thread::sleep((left - spin).min(Duration::from_millis(50)));
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
        let socket = match start_connect(door, stamps) {
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

/// How long before an arrival a pacer that runs first spins: its wake-up
/// is not delayed by other threads, only by the timer itself, so a short
/// spin covers it. (On the project's machine, `takeout` against the null
/// restaurant: arrival lag p99 0.3 ms with 0 µs or 20 µs of spinning; with
/// 50 µs the pacer held a core at real-time priority through the burst
/// and the null restaurant's counter wait p99 rose from 7 ms to 35–46 ms.)
const SPIN_FIRST: Duration = Duration::from_micros(20);

/// Asks the kernel to run this thread before any ordinary one whenever it
/// is ready (Linux's `SCHED_FIFO` at the lowest real-time priority), so a
/// server that keeps both cores busy cannot make a customer late: the
/// pacer sleeps until each arrival, and wakes on time. It needs the
/// privilege to (root, or `CAP_SYS_NICE`); without it the pacer is an
/// ordinary thread, and the arrival lag in the report says how late it
/// was. Returns whether it runs first.
fn keep_time_first() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: sched_setscheduler(2) on the calling thread (pid 0) with
        // a valid, initialised parameter; it touches no memory of ours
        // beyond reading `param`.
        #[allow(unsafe_code)]
        let set =
            unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        set == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

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
fn start_connect(door: SocketAddr, stamps: Stamps) -> io::Result<StdStream> {
    let socket = Socket::new(
        Domain::for_address(door),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // Asked before connecting, so that the greeting, which a server may
    // send the moment it accepts, is stamped too. (The kernel stamps
    // incoming packets only while some socket has asked for stamps.) A
    // refusal is no error: the customer's reads then carry no stamp and
    // the night says it used read times.
    #[cfg(target_os = "linux")]
    if stamps == Stamps::Kernel {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
        let _ = setsockopt(&socket, ReceiveTimestampns, &true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stamps;
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

/// Time zero, on both of the clocks a night reads: the monotonic clock
/// for the customers' own moments, the wall clock for the kernel's stamps
/// (`SO_TIMESTAMPNS` stamps with `CLOCK_REALTIME`). Taken one after the
/// other, so the two differ by a few nanoseconds at most.
#[derive(Clone, Copy, Debug)]
struct Opening {
    instant: Instant,
    wall: SystemTime,
}

impl Opening {
    fn now() -> Opening {
        Opening {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Now, as an offset from opening.
    fn elapsed(&self) -> Duration {
        self.instant.elapsed()
    }

    /// A kernel stamp (since the Unix epoch) as an offset from opening.
    fn stamp(&self, since_epoch: Duration) -> Duration {
        let opening = self
            .wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        since_epoch.saturating_sub(opening)
    }
}

/// How a customer takes the moment a reply arrived.
struct Clock<'a> {
    opening: Opening,
    stamps: Stamps,
    /// Set when a read came without a stamp.
    read_only: &'a AtomicBool,
}

/// One customer's conversation with the restaurant.
async fn converse(
    socket: Option<StdStream>,
    mut visit: Visit,
    said: &Said,
    clock: &Clock<'_>,
    news: &mpsc::UnboundedSender<News>,
) -> Visit {
    let mut settled = false;
    if let Some(socket) = socket
        && let Err(trouble) =
            talk(socket, &mut visit, said, clock, news, &mut settled).await
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
    clock: &Clock<'_>,
    news: &mpsc::UnboundedSender<News>,
    settled: &mut bool,
) -> Result<(), String> {
    let cut = |e: io::Error| format!("connection lost: {e}");
    let stream = TcpStream::from_std(socket).map_err(cut)?;
    stream.writable().await.map_err(cut)?;
    if let Some(e) = stream.take_error().map_err(cut)? {
        return Err(format!("could not connect: {e}"));
    }
    visit.connected = Some(clock.opening.elapsed());
    let mut replies = Replies::new(stream, clock);

    visit.greeted = Some(replies.expect("NEXT", |r| r == Reply::Next).await?);
    // A slow talker keeps the listener waiting before the line arrives.
    if !said.talk.is_zero() {
        tokio::time::sleep(said.talk).await;
    }
    replies
        .stream
        .write_all(said.line.as_bytes())
        .await
        .map_err(cut)?;
    visit.ordered = Some(clock.opening.elapsed());
    let id = said.id;

    replies.expect("RUNG", |r| r == Reply::Rung(id)).await?;
    visit.rung = Some(clock.opening.elapsed());
    *settled = true;
    let _ = news.send(News::Settled);

    let mut digest = None;
    let plated = replies
        .expect("PLATE", |r| match r {
            Reply::Plate(i, d) if i == id => {
                digest = Some(d);
                true
            }
            _ => false,
        })
        .await?;
    visit.plated = Some(plated);
    visit.digest = digest;

    // The restaurant hangs up after the plate; anything more is a fault.
    let rest = replies.rest().await.map_err(cut)?;
    if !rest.is_empty() {
        let more = String::from_utf8_lossy(&rest);
        return Err(format!("more after the plate: {:?}", more.trim_end()));
    }
    Ok(())
}

/// The replies on one connection, a line at a time, each with the moment
/// its last byte arrived.
///
/// It reads the whole `TcpStream` through `try_io`, so that on Linux the
/// read is a `recvmsg` that also brings the kernel's receive stamp of the
/// data it returns (`SO_TIMESTAMPNS`; for TCP, the stamp of the last
/// segment the call read). A line's moment is the stamp of the read that
/// brought its newline.
struct Replies<'a> {
    stream: TcpStream,
    clock: &'a Clock<'a>,
    /// Bytes received and not yet taken as lines.
    pending: Vec<u8>,
    /// When the bytes of the last read arrived.
    arrived: Duration,
}

impl<'a> Replies<'a> {
    fn new(stream: TcpStream, clock: &'a Clock<'a>) -> Replies<'a> {
        Replies {
            stream,
            clock,
            pending: Vec::new(),
            arrived: Duration::ZERO,
        }
    }

    /// Reads one line and checks it is the reply expected; returns when it
    /// arrived. An `ERROR`, an early end or any other line is the
    /// customer's trouble, quoted.
    async fn expect(
        &mut self,
        what: &str,
        ok: impl FnOnce(Reply) -> bool,
    ) -> Result<Duration, String> {
        let (line, at) = self
            .line()
            .await
            .map_err(|e| format!("connection lost waiting for {what}: {e}"))?
            .ok_or_else(|| format!("the restaurant hung up before {what}"))?;
        match wire::parse_reply(&line) {
            Some(Reply::Error(reason)) => Err(format!("turned away: {reason}")),
            Some(reply) if ok(reply.clone()) => Ok(at),
            _ => Err(format!("expected {what}, heard {:?}", line.trim_end())),
        }
    }

    /// The next line, newline included, and when it arrived; `None` at
    /// end-of-file before a whole line. At most [`wire::MAX_LINE`] bytes:
    /// a longer line is handed over cut, and fails to parse.
    async fn line(&mut self) -> io::Result<Option<(String, Duration)>> {
        let mut searched = 0;
        loop {
            if let Some(at) = self.pending[searched..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| searched + i)
                .filter(|&end| end < wire::MAX_LINE)
            {
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line).into_owned();
                return Ok(Some((line, self.arrived)));
            }
            if self.pending.len() >= wire::MAX_LINE {
                let line: Vec<u8> =
                    self.pending.drain(..wire::MAX_LINE).collect();
                let line = String::from_utf8_lossy(&line).into_owned();
                return Ok(Some((line, self.arrived)));
            }
            searched = self.pending.len();
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Whatever the restaurant sends before it hangs up, up to a line's
    /// worth.
    async fn rest(&mut self) -> io::Result<Vec<u8>> {
        while self.pending.len() < wire::MAX_LINE {
            if self.fill().await? == 0 {
                break;
            }
        }
        self.pending.truncate(wire::MAX_LINE);
        Ok(std::mem::take(&mut self.pending))
    }

    /// One read into `pending`, noting when its bytes arrived; 0 at
    /// end-of-file.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 512];
        loop {
            self.stream.readable().await?;
            match self.receive(&mut chunk) {
                Ok((n, stamp)) => {
                    self.arrived = match stamp {
                        Some(since_epoch) => {
                            self.clock.opening.stamp(since_epoch)
                        }
                        None => {
                            if self.clock.stamps == Stamps::Kernel && n > 0 {
                                self.clock
                                    .read_only
                                    .store(true, Ordering::SeqCst);
                            }
                            self.clock.opening.elapsed()
                        }
                    };
                    self.pending.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                // A readiness event with nothing to read: wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One non-blocking read, with the kernel's receive stamp (since the
    /// Unix epoch) when there is one.
    #[cfg(target_os = "linux")]
    fn receive(
        &self,
        chunk: &mut [u8],
    ) -> io::Result<(usize, Option<Duration>)> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        if self.clock.stamps == Stamps::Read {
            return self.read_plain(chunk);
        }
        let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [IoSliceMut::new(chunk)];
        // `try_io` clears tokio's readiness when the read would block, as
        // tokio's own reads do, so the next `readable()` really waits.
        let message =
            self.stream.try_io(tokio::io::Interest::READABLE, || {
                recvmsg::<()>(
                    self.stream.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_DONTWAIT,
                )
                .map_err(io::Error::from)
            })?;
        let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    let secs = u64::try_from(ts.tv_sec()).ok()?;
                    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
                    Some(Duration::new(secs, nanos))
                }
                _ => None,
            })
        });
        Ok((message.bytes, stamp))
    }

    #[cfg(not(target_os = "linux"))]
    fn receive(
        &self,
        chunk: &mut [u8],
    ) -> io::Result<(usize, Option<Duration>)> {
        self.read_plain(chunk)
    }

    /// A plain non-blocking read (tokio's `try_read`): no stamp.
    fn read_plain(
        &self,
        chunk: &mut [u8],
    ) -> io::Result<(usize, Option<Duration>)> {
        self.stream.try_read(chunk).map(|n| (n, None))
    }
}

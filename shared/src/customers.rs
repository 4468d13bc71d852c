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
//! in the report shows by how much). Nor does it let anyone in while that
//! runtime is behind with the customers already inside ([`BEHIND`]): a
//! greeted customer must say its order within the server's patience, and
//! those inside come first. On IPv4 loopback the customers connect from
//! many source addresses in turn ([`SOURCES`]), so that opening a
//! connection stays cheap however many are open.
//!
//! The customers share two cores with the restaurant, so they are
//! sometimes late to read what it sent. That delay is theirs, not the
//! restaurant's: the moments `NEXT` and `PLATE` arrived are the kernel's
//! receive stamps (`SO_TIMESTAMPNS`, read with `recvmsg`), not the moment
//! the customer got round to reading them. Where the OS gives no stamp,
//! read times are used and the night says so ([`Stamps`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    // The runtime's heartbeat, which the pacer watches (see `BEHIND`).
    let pulse = Arc::new(Pulse::default());
    let boosted = Arc::new(AtomicBool::new(false));
    runtime.spawn(keep_pulse(
        Arc::clone(&pulse),
        Arc::clone(&boosted),
        opening,
    ));

    thread::scope(|scope| {
        let handle = runtime.handle().clone();
        let pacer_slots = Arc::clone(&slots);
        let pacer_pulse = Arc::clone(&pulse);
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
                    &pacer_pulse,
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
        // This thread (the runtime's) goes back to taking its turn, for
        // whatever its caller does next.
        if boosted.load(Ordering::Relaxed) {
            take_turns();
        }
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
/// for the arrival time (and, while the customers inside are not being
/// seen to, until they are), then starts the connection and hands it on.
/// Returns how many customers had to wait for a slot.
#[allow(clippy::too_many_arguments)]
fn pace(
    orders: &[Order],
    door: SocketAddr,
    stamps: Stamps,
    opening: Instant,
    stop: &AtomicBool,
    slots: &Slots,
    pulse: &Pulse,
    mut hand_on: impl FnMut(usize, Visit, Option<StdStream>),
    news: &mpsc::UnboundedSender<News>,
) -> u64 {
    precise_timers();
    let spin = if keep_time_first() { SPIN_FIRST } else { SPIN };
    let mut sources = Sources::for_door(door);
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
        // The customers inside come first.
        pulse.wait_until_seen_to(opening, stop);
        if stop.load(Ordering::Relaxed) {
            slots.give_back();
            break;
        }
        let mut visit = Visit {
            walked_in: Some(opening.elapsed()),
            ..Visit::default()
        };
        let mut connected = start_connect(door, sources.next(), stamps);
        if let Err((_, true)) = connected {
            sources.refused();
            connected = start_connect(door, None, stamps);
        }
        let socket = match connected {
            Ok(socket) => Some(socket),
            Err((e, _)) => {
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
    run_first(true)
}

/// Sets this thread back to the ordinary policy, taking its turn with every
/// other thread (undoes [`keep_time_first`]).
fn take_turns() {
    run_first(false);
}

/// Sets the calling thread's policy: `SCHED_FIFO` at the lowest real-time
/// priority, or the ordinary `SCHED_OTHER`. Returns whether it was set.
fn run_first(first: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        let (policy, priority) = if first {
            (libc::SCHED_FIFO, 1)
        } else {
            (libc::SCHED_OTHER, 0)
        };
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: sched_setscheduler(2) on the calling thread (pid 0) with
        // a valid, initialised parameter; it touches no memory of ours
        // beyond reading `param`.
        #[allow(unsafe_code)]
        let set = unsafe { libc::sched_setscheduler(0, policy, &param) };
        set == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = first;
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

/// The runtime's heartbeat: the moment (in microseconds since opening)
/// its loop last came round to a task that wakes every [`BEAT`]. A loop
/// with more ready work than it can do, or that the OS does not run, beats
/// late; a loop with nothing to do beats on time.
#[derive(Default)]
struct Pulse {
    beat: AtomicU64,
}

/// How often the runtime's heartbeat wakes.
const BEAT: Duration = Duration::from_millis(5);

/// How far behind the customers' runtime may fall before the pacer stops
/// letting customers in: an eighth of the server's patience
/// ([`wire::PATIENCE`]).
///
/// A customer greeted with `NEXT` must say its order within the server's
/// patience, counted from when `NEXT` was sent, and that line is written
/// by the runtime. Its work grows with the customers inside; the pacer,
/// which runs first, lets them in however busy the runtime is. So a night
/// the machine cannot keep up with (a million `takeout` orders on two
/// cores, with the server as busy as the customers) had the runtime more
/// and more seconds behind, and the server turned greeted customers away
/// for saying nothing within 2 s: a failure of the customers, reported as
/// the server's. Holding the door while the runtime catches up keeps its
/// lag to a fraction of the patience; the schedule slips instead, and the
/// arrival lag in the report says by how much. A night the machine keeps
/// up with never sees the runtime this late: `takeout`'s 5,000 orders on
/// the project's machine beat within a few milliseconds.
const BEHIND: Duration = Duration::from_millis(250);

/// How late the runtime's heartbeat must be for the runtime to run first
/// (as the pacer does), until it has caught up.
///
/// Behind the heartbeat's lateness is either more ready work than the loop
/// can do at once or an OS that does not run it: a machine shared with a
/// busy server, and on the project's machine with other builds too (load
/// average 9 on two cores), gave the loop a sixth of a core while 19,000
/// customers waited inside, and greeted customers waited for it longer
/// than the server's patience. Holding the door ([`BEHIND`]) stops more
/// coming; those inside still need the loop. So a loop this late asks to
/// run before ordinary threads; the server, then, is what waits for a
/// core, for the moments the customers need one, and its own figures
/// (taken on the kernel's stamps) say so. A night the machine keeps up
/// with never comes near: 5,000 `takeout` orders under that same load
/// had the heartbeat at most 36 ms late, mostly under 2 ms.
const CATCH_UP: Duration = Duration::from_millis(100);

/// How many heartbeats in a row within [`CALM`] of their time before a
/// runtime that runs first goes back to taking its turn: 40, about 0.2 s.
const CALM_BEATS: u32 = 40;

/// A heartbeat this close to its time is on time.
const CALM: Duration = Duration::from_millis(2);

/// The runtime's heartbeat, for as long as the runtime runs: every
/// [`BEAT`] it notes the moment in `pulse`, and makes the runtime's thread
/// run first while it is behind ([`CATCH_UP`]), noting that in `boosted`
/// so that the thread is set back once the night is over.
async fn keep_pulse(
    pulse: Arc<Pulse>,
    boosted: Arc<AtomicBool>,
    opening: Opening,
) {
    let mut last = opening.elapsed();
    let mut first = false;
    let mut calm = 0;
    loop {
        tokio::time::sleep(BEAT).await;
        let now = opening.elapsed();
        pulse.beat(now);
        let late = now.saturating_sub(last + BEAT);
        last = now;
        if !first {
            if late >= CATCH_UP && keep_time_first() {
                first = true;
                calm = 0;
                boosted.store(true, Ordering::Relaxed);
            }
        } else if late <= CALM {
            calm += 1;
            if calm >= CALM_BEATS {
                take_turns();
                first = false;
            }
        } else {
            calm = 0;
        }
    }
}

impl Pulse {
    /// Notes that the loop came round at `now` (since opening).
    fn beat(&self, now: Duration) {
        let micros = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
        self.beat.store(micros, Ordering::Relaxed);
    }

    /// How long since the loop last came round.
    fn since(&self, opening: Instant) -> Duration {
        let beat = Duration::from_micros(self.beat.load(Ordering::Relaxed));
        opening.elapsed().saturating_sub(beat)
    }

    /// Returns once the loop is less than [`BEHIND`] behind, or `stop` is
    /// set; sleeps (giving the runtime the core) meanwhile.
    fn wait_until_seen_to(&self, opening: Instant, stop: &AtomicBool) {
        while self.since(opening) > BEHIND && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// How many loopback addresses the customers connect from, in turn.
///
/// Linux gives a connection its source port by walking the ephemeral
/// range from a cursor kept per source and destination, and for each port
/// in use checks whether the four-tuple would be free
/// (`__inet_check_established`); connections take the even ports first,
/// leaving the odd ones to `bind`. Every customer calls at the same door,
/// so from a single source address every port in use is a miss: once the
/// 14,116 even ports of the default range (32768–60999) are taken, every
/// connect walks them all before it tries an odd one. Measured on the
/// project's machine: 20–40 µs a connect up to 14,000 connections open,
/// 1.1–1.5 ms beyond. A long `takeout` night that fell a little behind
/// crossed that line; then the pacer, which runs first, spent a whole core
/// in `connect` and starved the customers' runtime. Loopback is all of
/// 127.0.0.0/8 on Linux: from 64 source addresses each holds a 64th of
/// the connections, and a connect finds a free port at once (30–40 µs at
/// 19,000 open, measured the same way).
const SOURCES: u8 = 64;

/// The source addresses of the next customers: on Linux, for a door on
/// IPv4 loopback, [`SOURCES`] addresses of 127.0.1.0/24 in turn;
/// elsewhere, or once binding to one has failed, the OS's choice.
struct Sources {
    next: Option<u8>,
}

impl Sources {
    fn for_door(door: SocketAddr) -> Sources {
        let spread = cfg!(target_os = "linux")
            && matches!(door, SocketAddr::V4(d) if d.ip().is_loopback());
        Sources {
            next: spread.then_some(0),
        }
    }

    /// The address the next customer connects from, if it is chosen.
    fn next(&mut self) -> Option<Ipv4Addr> {
        let n = self.next?;
        self.next = Some((n + 1) % SOURCES);
        Some(Ipv4Addr::new(127, 0, 1, n + 1))
    }

    /// Binding failed (a loopback that is not all of 127.0.0.0/8): the OS
    /// chooses from now on.
    fn refused(&mut self) {
        self.next = None;
    }
}

/// Starts a non-blocking connect to `door` from `from` (any port) if
/// given, and returns the socket at once, the handshake under way; `Err`
/// with the socket's error, and whether it was the bind that failed.
fn start_connect(
    door: SocketAddr,
    from: Option<Ipv4Addr>,
    stamps: Stamps,
) -> Result<StdStream, (io::Error, bool)> {
    let socket = Socket::new(
        Domain::for_address(door),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(|e| (e, false))?;
    #[cfg(target_os = "linux")]
    if let Some(from) = from {
        use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
        // Without this, bind would take a port for the address alone, out
        // of the same range and by the same walk; with it the port is
        // chosen at connect, for the whole four-tuple.
        setsockopt(&socket, IpBindAddressNoPort, &true)
            .map_err(|e| (io::Error::from(e), true))?;
        socket
            .bind(&SockAddr::from(SocketAddr::from((from, 0))))
            .map_err(|e| (e, true))?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = from;
    start_connect_on(socket, door, stamps).map_err(|e| (e, false))
}

/// [`start_connect`], on a socket made and perhaps bound.
fn start_connect_on(
    socket: Socket,
    door: SocketAddr,
    stamps: Stamps,
) -> io::Result<StdStream> {
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
    let mut late = Lateness::default();
    if let Some(socket) = socket
        && let Err(trouble) = talk(
            socket,
            &mut visit,
            said,
            clock,
            news,
            &mut settled,
            &mut late,
        )
        .await
    {
        visit.trouble = Some(match late.own(visit.greeted, said) {
            Some(late) => format!("{trouble}; {late}"),
            None => trouble,
        });
    }
    if !settled {
        let _ = news.send(News::Settled);
    }
    visit
}

/// What shows whether a customer turned away was late by its own fault.
#[derive(Default)]
struct Lateness {
    /// When the customer began to say its order line.
    spoke: Option<Duration>,
    /// When the `ERROR` that came instead of `RUNG` arrived (the stamp of
    /// the read that brought it).
    refused: Option<Duration>,
}

/// How a customer's trouble begins when the restaurant said `ERROR`.
const TURNED_AWAY: &str = "turned away: ";

impl Lateness {
    /// Whether the customers, not the server, made the customer late:
    /// it began to say its line more than the server's patience after
    /// `NEXT` arrived (`greeted`, by the kernel's stamp) beyond its own
    /// talk, or the server's refusal had arrived before it began (read
    /// in one piece with `NEXT`, the refusal's stamp stands for both).
    /// They fell behind (a machine too busy to run them), and a server
    /// that turned the customer away kept the rule: says so, with the
    /// figures, so that the failure is not read as the server's.
    fn own(&self, greeted: Option<Duration>, said: &Said) -> Option<String> {
        let spoke = self.spoke?;
        let waited = greeted.and_then(|g| spoke.checked_sub(g));
        let too_long = waited
            .and_then(|w| w.checked_sub(said.talk))
            .is_some_and(|w| w >= wire::PATIENCE);
        let after_refusal = self.refused.is_some_and(|r| r <= spoke);
        if !too_long && !after_refusal {
            return None;
        }
        let mut why = format!(
            "the customers fell behind, not the server: this customer \
             began to say its order at {:.3} s",
            spoke.as_secs_f64()
        );
        match (waited, self.refused) {
            (Some(w), _) if too_long => why.push_str(&format!(
                ", {:.3} s after NEXT arrived",
                w.as_secs_f64()
            )),
            (_, Some(r)) => why.push_str(&format!(
                ", after the refusal had arrived at {:.3} s",
                r.as_secs_f64()
            )),
            _ => {}
        }
        why.push_str(&format!(
            " (the server's patience is {} s from NEXT): the machine \
             could not run the customers in time",
            wire::PATIENCE.as_secs()
        ));
        Some(why)
    }
}

async fn talk(
    socket: StdStream,
    visit: &mut Visit,
    said: &Said,
    clock: &Clock<'_>,
    news: &mpsc::UnboundedSender<News>,
    settled: &mut bool,
    late: &mut Lateness,
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
    late.spoke = Some(clock.opening.elapsed());
    replies
        .stream
        .write_all(said.line.as_bytes())
        .await
        .map_err(cut)?;
    visit.ordered = Some(clock.opening.elapsed());
    let id = said.id;

    if let Err(trouble) = replies.expect("RUNG", |r| r == Reply::Rung(id)).await
    {
        if trouble.starts_with(TURNED_AWAY) {
            late.refused = Some(replies.arrived);
        }
        return Err(trouble);
    }
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
            Some(Reply::Error(reason)) => Err(format!("{TURNED_AWAY}{reason}")),
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

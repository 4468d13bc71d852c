//! The OS's limits a run can meet, named: a thread it refuses, memory a
//! workload cannot have.
//!
//! This is plumbing, not concurrency. Every model still starts its own
//! threads in its own `src/lib.rs`; when the OS says no, it hands the error
//! to [`thread_refused`], which says what was refused and how many of the
//! process's threads were alive at that moment:
//!
//! ```text
//! the OS refused a thread (3 alive) for cook 2: Resource temporarily unavailable (os error 11)
//! ```
//!
//! instead of the bare `Resource temporarily unavailable (os error 11)`
//! that `thread::Builder::spawn` returns (EAGAIN: `ulimit -u`, a cgroup's
//! `pids.max`, `kernel.threads-max`, or no memory for a stack).
//!
//! Some crates cannot fail cleanly when the OS refuses them a thread: they
//! panic, hang or spin instead of returning the error (each model that uses
//! one says which, and why, where it calls [`headroom`]). For those, a model
//! asks first: [`headroom`] starts the threads the crate is about to start,
//! lets them go again, and returns the refusal as an error if the OS would
//! not grant them all. Another process of the same user can still take
//! that room before the crate asks; then the crate's panic is recognised
//! ([`refusal_in_panic`]) and the shared command line ends the run with
//! the refusal, before the unwind.

use std::fmt;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::BoxError;

/// The number of threads this process has now, from the `Threads:` line of
/// `/proc/self/status` (Linux only; `None` elsewhere).
pub fn threads_alive() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The OS refused to start a thread: what the thread was for, how many
/// threads the process had at that moment, and the OS's own words.
#[derive(Debug)]
pub struct ThreadRefused {
    /// Threads alive in this process when the refusal came (Linux only).
    pub alive: Option<u64>,
    /// What the thread was for ("cook 2", "order 17"), if known.
    pub what: Option<String>,
    /// The error the spawn returned, as text.
    pub cause: String,
}

impl ThreadRefused {
    /// The refusal `cause`, counted now.
    pub fn new(
        what: Option<String>,
        cause: impl fmt::Display,
    ) -> ThreadRefused {
        ThreadRefused {
            alive: threads_alive(),
            what,
            cause: cause.to_string(),
        }
    }
}

impl fmt::Display for ThreadRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.alive {
            Some(n) => write!(f, "the OS refused a thread ({n} alive)")?,
            None => {
                write!(f, "the OS refused a thread (threads alive unknown)")?
            }
        }
        if let Some(what) = &self.what {
            write!(f, " for {what}")?;
        }
        write!(
            f,
            ": {}; raise the limit (ulimit -u, a container's pids limit",
            self.cause
        )?;
        // A thread's stack is address space too (2 MiB, reserved at once):
        // under `ulimit -v` that is as likely the limit met.
        if let Some((limit, _)) = address_space_left() {
            write!(
                f,
                ", or the address-space limit, ulimit -v {}: each thread's \
                 stack reserves 2 MiB of it",
                limit / 1024
            )?;
        }
        f.write_str(") or ask for fewer cooks")
    }
}

impl std::error::Error for ThreadRefused {}

/// The error for a thread the OS refused: `cause` is what the spawn
/// returned (an `io::Error`, rayon's `ThreadPoolBuildError`, a panic's
/// text), counted now.
pub fn thread_refused(cause: impl fmt::Display) -> BoxError {
    Box::new(ThreadRefused::new(None, cause))
}

/// [`thread_refused`], naming what the thread was for ("cook 2").
pub fn thread_refused_for(
    what: impl fmt::Display,
    cause: impl fmt::Display,
) -> BoxError {
    Box::new(ThreadRefused::new(Some(what.to_string()), cause))
}

/// Whether a panic's message is tokio's for a thread the OS refused:
/// `OS can't spawn worker thread: …` (tokio 1.54.1,
/// `runtime/blocking/pool.rs`, `Spawner::spawn_blocking`), raised in
/// whatever task asked for the thread, which is not at fault.
pub fn is_tokio_refusal(panic_message: &str) -> bool {
    panic_message.starts_with("OS can't spawn worker thread")
}

/// The panics crates raise when the OS refuses them a thread, each with
/// what that thread was for. Each crate `expect`s (or `panic!`s on) the
/// `io::Error` of a spawn, so the message is this text, `: `, and the
/// error. Read in the crates' sources:
const SPAWN_PANICS: [(&str, &str); 5] = [
    // tokio 1.54.1, runtime/blocking/pool.rs, `Spawner::spawn_blocking`:
    // every worker thread is launched through it too.
    (
        "OS can't spawn worker thread: ",
        "a thread of tokio's runtime",
    ),
    // async-io 2.6.0, driver.rs, `unparker`: on first use of the reactor.
    (
        "cannot spawn async-io thread: ",
        "async-io's reactor thread",
    ),
    // async-process 2.5.0, lib.rs: its reaper, on the first child.
    (
        "cannot spawn async-process thread: ",
        "async-process's reaper",
    ),
    // async-global-executor 2.4.1, init.rs, `init` (async-std's executor).
    (
        "cannot spawn executor threads: ",
        "async-std's executor threads",
    ),
    // std (rustc 1.95.0), thread/functions.rs: `thread::spawn`, and
    // `Scope::spawn` in the same words.
    (
        "failed to spawn thread: ",
        "a thread started by thread::spawn",
    ),
];

/// The refusal in a panic's message, when it is one of the crates'
/// panics for a thread the OS refused ([`SPAWN_PANICS`]) and carries the
/// OS's error number: what the thread was for (and the name of the thread
/// that asked for it, from `asker`, called only for a refusal), and the
/// OS's words for that number. `None` for any other panic, a cook's above
/// all.
pub fn refusal_in_panic(
    panic_message: &str,
    asker: impl FnOnce() -> Option<String>,
) -> Option<ThreadRefused> {
    let (rest, what) = SPAWN_PANICS.iter().find_map(|(prefix, what)| {
        Some((panic_message.strip_prefix(prefix)?, what))
    })?;
    // Only an OS error is a refusal: `Os { code: 11, .. }` as `expect`
    // prints an `io::Error`, `(os error 11)` as `{e}` does. A thread name
    // with a NUL in it, say, fails the spawn too, but the OS said nothing.
    let code = os_error_code(rest)?;
    let what = match asker() {
        Some(name) => format!("{what}, asked for by thread '{name}'"),
        None => (*what).to_owned(),
    };
    Some(ThreadRefused::new(
        Some(what),
        std::io::Error::from_raw_os_error(code),
    ))
}

/// The OS error number in an `io::Error`'s text, in either of its forms.
fn os_error_code(text: &str) -> Option<i32> {
    let digits = |s: &str| -> Option<i32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    if let Some(at) = text.find("Os { code: ") {
        return digits(&text[at + "Os { code: ".len()..]);
    }
    let at = text.rfind("(os error ")?;
    digits(&text[at + "(os error ".len()..])
}

/// How long [`headroom`] waits for the kernel to let go of the threads it
/// started and joined.
const RELEASE_WAIT: Duration = Duration::from_millis(200);

/// Asks the OS for `threads` threads now, and gives them back: `Ok` if it
/// granted every one, the refusal (as [`thread_refused`]) if not.
///
/// For a crate that cannot fail cleanly when a thread is refused. Counting
/// cannot tell: `RLIMIT_NPROC` counts every task of the user, in every
/// process, and a cgroup's `pids.max`, `kernel.threads-max` and the memory
/// for a stack limit threads too; so ask the OS itself. The threads block
/// on a channel and start with the default stack, as the crate's will.
///
/// `join` returns a few microseconds before the kernel releases a thread's
/// task, so this waits (at most 200 ms) until the process is back to the
/// threads it had, so the crate finds the room it was just shown. What it
/// cannot do is keep another process from taking that room meanwhile: it
/// narrows the window of a hang to that race, it does not close it.
pub fn headroom(threads: usize) -> Result<(), BoxError> {
    let before = threads_alive();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    let mut held = Vec::with_capacity(threads);
    let mut refused = None;
    for i in 0..threads {
        let released = std::sync::Arc::clone(&released);
        let spawned = thread::Builder::new()
            .name(format!("headroom-{i}"))
            .spawn(move || {
                // Returns when `release` is dropped: nothing is ever sent.
                let _ = released
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv();
            });
        match spawned {
            Ok(thread) => held.push(thread),
            Err(e) => {
                refused = Some(ThreadRefused::new(
                    Some(format!(
                        "{} of the {threads} threads about to start",
                        i + 1
                    )),
                    e,
                ));
                break;
            }
        }
    }
    drop(release);
    for thread in held {
        // The closure cannot panic: it only waits.
        let _ = thread.join();
    }
    if let Some(before) = before {
        let deadline = Instant::now() + RELEASE_WAIT;
        while threads_alive().is_some_and(|now| now > before)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_micros(200));
        }
    }
    match refused {
        Some(refusal) => Err(Box::new(refusal)),
        None => Ok(()),
    }
}

/// The address space (`RLIMIT_AS`) left to this process, in bytes: the
/// soft limit less what is mapped now (`VmSize`). `None` when there is no
/// limit or it cannot be read (off Linux).
pub fn address_space_left() -> Option<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{Resource, getrlimit};
        let (soft, _) = getrlimit(Resource::RLIMIT_AS).ok()?;
        if soft == nix::sys::resource::RLIM_INFINITY {
            return None;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some((soft, soft.saturating_sub(kib * 1024)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// What a night of `orders` orders allocates in one piece, in bytes,
/// before the first customer walks in: the customers' process holds the
/// workload (an [`crate::Order`] per order) and a table of what each
/// customer saw (a [`crate::customers::Visit`] per order), and builds its
/// schedule (an arrival time and a reference per order) from them. The
/// rest of a run (connections, buffers, runtimes) grows with the customers
/// inside at once, not with the orders: see [`night_bytes`].
pub fn workload_bytes(orders: usize) -> u64 {
    let per_order = std::mem::size_of::<crate::Order>()
        + std::mem::size_of::<crate::customers::Visit>()
        + std::mem::size_of::<(Duration, usize)>();
    orders as u64 * per_order as u64
}

/// What the customers' process allocates per order after the night, while
/// it still holds the tables: the report's figures (a moment per order for
/// each measure in turn, the walked-in moments and the arrivals sorted for
/// the lower bound).
const REPORT_PER_ORDER: u64 = 64;

/// The customers' address space per connection open at once: a task on
/// their runtime with its conversation, its read buffer, the runtime's
/// registration, and its visit on the way to the table. Measured: under
/// 3 KiB a connection at 19,744 open (a million `takeout` orders).
const CUSTOMERS_PER_CONNECTION: u64 = 4 << 10;

/// The server's address space per connection open at once, for any model
/// that serves connections as tasks: a task, its buffered reader (8 KiB in
/// `futures` and `block-in-place`), its ticket. Measured: tokio about
/// 6 KiB a connection at 19,744 open. A model with a thread per
/// connection needs a stack each (2 MiB); the OS refuses it the thread, and
/// the refusal names the limit ([`ThreadRefused`]).
const SERVER_PER_CONNECTION: u64 = 16 << 10;

/// Room for what a process maps besides the workload and the connections:
/// its code, its threads' stacks (2 MiB of address space each), the
/// runtime. Measured: 17 MiB (customers) and 26 MiB (tokio's server) at
/// their peak in a night of 2,000 orders. (glibc's arenas, 64 MiB of
/// address space for each thread that allocates, are held to one under a
/// limit: [`check_workload_memory`].)
///
/// All told, for a million `takeout` orders with 19,744 connections at
/// most: 416 MiB counted for the customers, who peaked at 309 MiB, and
/// 372 MiB for the server, where tokio's peaked at 148 MiB (one arena
/// each).
const BESIDES_THE_WORKLOAD: u64 = 64 << 20;

/// The address space a night of `orders` orders needs, in bytes, in each
/// of its two processes: `(customers, server)`, with at most `connections`
/// customers inside at once (the customers' [`connection_cap`]). Each
/// process has the whole limit to itself: `ulimit -v` is per process.
///
/// [`connection_cap`]: crate::customers::connection_cap
pub fn night_bytes(orders: usize, connections: usize) -> (u64, u64) {
    let inside = orders.min(connections) as u64;
    let customers = workload_bytes(orders)
        + orders as u64 * REPORT_PER_ORDER
        + inside * CUSTOMERS_PER_CONNECTION
        + BESIDES_THE_WORKLOAD;
    let server = inside * SERVER_PER_CONNECTION + BESIDES_THE_WORKLOAD;
    (customers, server)
}

/// Whether a night of `orders` orders fits under this process's address
/// space limit (`ulimit -v`; the customers' process inherits it): `Err`
/// names the sizes and the limit, before any work starts, where an
/// allocation that fails later would abort the process.
///
/// Under a limit it also holds glibc to one malloc arena. Each thread that
/// allocates otherwise gets an arena of its own, reserving 64 MiB of
/// address space at its first allocation (up to eight per core): the
/// customers' pacer and their watch on the server took 128 MiB that way,
/// and a million orders under `ulimit -v 400000`, which the tables alone
/// fit, aborted in their first second with `memory allocation of 1920
/// bytes failed`. With one arena, what a process maps is what it
/// allocates, which is what this counts. (Threads then share the arena's
/// lock: a cost paid only under a limit.) Call it first thing, before any
/// thread starts; it raises the open-file limit too (as both processes do
/// next), since the connections the customers keep open at once follow it.
pub fn check_workload_memory(orders: usize) -> Result<(), String> {
    let Some((limit, left)) = address_space_left() else {
        return Ok(());
    };
    one_arena();
    crate::customers::raise_fd_limit();
    let connections = crate::customers::connection_cap();
    let (customers, server) = night_bytes(orders, connections);
    if customers.max(server) <= left {
        return Ok(());
    }
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    Err(format!(
        "{orders} orders need about {:.0} MiB of address space in the \
         customers' process (the workload and their tables, {:.0} MiB, and \
         up to {} connections open at once) and about {:.0} MiB in the \
         server's, but the address space is limited to {:.0} MiB (ulimit \
         -v {}), {:.0} MiB of it free: ask for fewer orders or raise the \
         limit",
        mib(customers),
        mib(workload_bytes(orders)),
        orders.min(connections),
        mib(server),
        mib(limit),
        limit / 1024,
        mib(left)
    ))
}

/// Holds glibc's malloc to one arena (`M_ARENA_MAX`), so that no thread
/// reserves 64 MiB of address space for an arena of its own.
fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt(3) sets a tunable of the allocator; it reads no
        // memory of ours, and is called before this process starts
        // threads.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_thread_and_counts_the_living() {
        let refusal = ThreadRefused::new(
            Some("cook 2".into()),
            std::io::Error::from_raw_os_error(11),
        );
        let text = refusal.to_string();
        assert!(text.starts_with("the OS refused a thread ("), "{text}");
        assert!(text.contains(" for cook 2: "), "{text}");
        if cfg!(target_os = "linux") {
            let alive = refusal.alive.expect("Linux counts threads");
            assert!(alive >= 1, "{text}");
            assert!(text.contains(&format!("({alive} alive)")), "{text}");
        }
    }

    #[test]
    fn the_crates_panics_for_a_refused_thread_are_refusals() {
        let eagain = "Resource temporarily unavailable";
        let debug = format!(
            "Os {{ code: 11, kind: WouldBlock, message: \"{eagain}\" }}"
        );
        for (message, thread, what) in [
            (
                format!("OS can't spawn worker thread: {eagain} (os error 11)"),
                Some("main".to_owned()),
                "for a thread of tokio's runtime, asked for by thread 'main'",
            ),
            (
                format!("cannot spawn async-io thread: {debug}"),
                Some("cook-0".to_owned()),
                "for async-io's reactor thread, asked for by thread 'cook-0'",
            ),
            (
                format!("failed to spawn thread: {debug}"),
                None,
                "for a thread started by thread::spawn:",
            ),
        ] {
            let refusal = refusal_in_panic(&message, || thread)
                .unwrap_or_else(|| panic!("not a refusal: {message}"));
            let text = refusal.to_string();
            assert!(text.starts_with("the OS refused a thread ("), "{text}");
            assert!(text.contains(what), "{text}");
            assert!(
                text.contains(&format!("{eagain} (os error 11)")),
                "{text}"
            );
            assert!(!text.contains("Os {"), "{text}");
        }
    }

    #[test]
    fn other_panics_are_not_refusals() {
        for message in [
            // A cook's.
            "injected fault: the knife slipped",
            "the cook of order 4 panicked: failed to spawn thread: oops",
            // A spawn that failed without the OS saying no.
            "failed to spawn thread: Custom { kind: InvalidInput, error: \
             \"thread name may not contain interior null bytes\" }",
            "OS can't spawn worker thread",
            "",
        ] {
            assert!(
                refusal_in_panic(message, || Some("cook-0".into())).is_none(),
                "{message}"
            );
        }
    }

    #[test]
    fn headroom_grants_a_few_threads_and_gives_them_back() {
        headroom(4).expect("four threads");
    }

    #[test]
    fn a_million_orders_take_tens_of_megabytes() {
        let bytes = workload_bytes(1_000_000);
        assert!((50 << 20..1 << 30).contains(&bytes), "{bytes}");
    }
}

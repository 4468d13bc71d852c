//! What a run costs: CPU time, peak memory and peak threads.
//!
//! The probes use getrusage(2) and Linux's /proc. Where the OS gives no
//! figure they return `None`, which reports print as "n/a" and JSON as
//! `null`; the crate still builds on macOS and Windows.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::plate::SERVED;

/// CPU time used so far by this process and by its reaped children, user
/// and system together. (The server measures it before it reaps its
/// customers' process, so their CPU never counts as the server's.)
pub fn cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        use nix::sys::resource::UsageWho;
        Some(usage(UsageWho::RUSAGE_SELF)? + usage(UsageWho::RUSAGE_CHILDREN)?)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU time used so far by this process alone.
pub fn own_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        usage(nix::sys::resource::UsageWho::RUSAGE_SELF)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(unix)]
fn usage(who: nix::sys::resource::UsageWho) -> Option<Duration> {
    let u = nix::sys::resource::getrusage(who).ok()?;
    let us = |t: nix::sys::time::TimeVal| {
        t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64
    };
    Some(Duration::from_micros(
        us(u.user_time()) + us(u.system_time()),
    ))
}

/// CPU time used so far by the calling thread (Linux only).
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{UsageWho, getrusage};
        let u = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
        let us = |t: nix::sys::time::TimeVal| {
            t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64
        };
        Some(Duration::from_micros(
            us(u.user_time()) + us(u.system_time()),
        ))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The proportional set size of process `pid` ("self" for this one) now,
/// in bytes (Linux only): its private pages plus its share of every page
/// it shares with others, so the PSS of a tree of processes adds up to
/// what the tree holds, with no shared page counted twice. The kernel
/// walks the process's page tables to answer, so it costs tens of
/// microseconds: read rarely.
fn pss_of(pid: &str) -> Option<u64> {
    let rollup =
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The summed PSS of this process and `kids`, in bytes; `None` where it
/// cannot be read (off Linux).
fn pss_of_tree(kids: &[String]) -> Option<u64> {
    let own = pss_of("self")?;
    Some(own + kids.iter().filter_map(|pid| pss_of(pid)).sum::<u64>())
}

/// The number of threads in process `pid` ("self" for this one) now
/// (Linux only). A directory's link count is its subdirectories plus two,
/// and /proc/PID/task has one subdirectory per thread: one `stat` call,
/// about 2 µs.
fn threads_of(pid: &str) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(format!("/proc/{pid}/task")).ok()?;
        Some(meta.nlink().saturating_sub(2))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// The child processes of this process (Linux only; elsewhere none are
/// seen), but for `exclude` (the customers, who are not the server).
fn children(exclude: Option<u32>) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let skip = exclude.map(|pid| pid.to_string());
    tasks
        .filter_map(|task| {
            std::fs::read_to_string(task.ok()?.path().join("children")).ok()
        })
        .flat_map(|list| {
            list.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|pid| Some(pid) != skip.as_ref())
        .collect()
}

/// Threads the run itself keeps beside the model's (the signal handler,
/// the reader of the customers' news): left out of the thread count, as
/// the sampler is.
static HARNESS_THREADS: AtomicU64 = AtomicU64::new(0);

/// Counts one more thread of the run's own, not the model's.
pub(crate) fn harness_thread_started() {
    HARNESS_THREADS.fetch_add(1, Ordering::Relaxed);
}

/// How often the sampler looks at the thread count.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// Listing the children and reading their memory cost more than counting
/// threads, so they are done every this many samples.
const CHILDREN_EVERY: u32 = 10;

/// Memory is the peak proportional set size (PSS) of the server's whole
/// tree, for every model alike: a single process is a tree of one. PSS
/// costs a page-table walk per process, so it is read every this many
/// samples: every 20 ms for a server alone (a walk of a few MiB takes
/// tens of microseconds), every 100 ms while it has child processes, and
/// once more as sampling stops.
const PSS_EVERY_ALONE: u32 = 10;
const PSS_EVERY_TREE: u32 = 50;

/// What the sampler saw.
#[derive(Clone, Copy, Debug)]
pub struct Sampled {
    /// The most threads the service had at once, its child processes'
    /// threads included, the sampler left out.
    pub peak_threads: Option<u64>,
    /// The largest summed PSS of the server's tree (itself, and its
    /// worker processes or broker, but not the customers) seen in any one
    /// sample. `None` where the OS does not tell (off Linux).
    pub peak_pss_bytes: Option<u64>,
    /// CPU time the sampler itself used, to be taken off the run's.
    pub own_cpu: Duration,
}

/// A background thread that samples the process's thread count every two
/// milliseconds and, on a terminal, shows how many plates are served.
///
/// Child processes (the `processes` model's workers, but not the
/// customers) count too: the list of children and their peak memory are read
/// every twenty milliseconds, their threads at every sample. The sampler is
/// one more thread and uses a little CPU: both are taken off the figures it
/// helps produce, and the `measuring` benchmark of `compare` shows the CPU
/// it takes is about 1% of a run's.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Sampled>,
}

impl Sampler {
    /// Starts sampling. `progress` is the order count to show progress
    /// against on stderr (only when stderr is a terminal); `None` for none.
    /// The child process `exclude` (the customers) is left out. Fails only
    /// if the OS refuses the sampler its thread.
    pub fn start(
        progress: Option<u64>,
        exclude: Option<u32>,
    ) -> std::io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let progress = progress.filter(|_| std::io::stderr().is_terminal());
        let handle = thread::Builder::new()
            .name("sampler".into())
            .spawn(move || sample(&flag, progress, exclude))?;
        Ok(Sampler { stop, handle })
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(self) -> Sampled {
        self.stop.store(true, Ordering::Release);
        self.handle.thread().unpark();
        // The sampler only loops and reads /proc; it has nothing to panic on.
        self.handle.join().expect("the sampler thread panicked")
    }
}

/// What one sample costs on this machine, without children: the figure
/// behind the claim that sampling does not distort a run (see the
/// `measuring` benchmark of `compare`).
pub fn sample_cost() -> Duration {
    const N: u32 = 2_000;
    let start = Instant::now();
    for i in 0..N {
        std::hint::black_box(threads_of("self"));
        if i.is_multiple_of(CHILDREN_EVERY) {
            std::hint::black_box(children(None));
        }
    }
    start.elapsed() / N
}

fn sample(
    stop: &AtomicBool,
    progress: Option<u64>,
    exclude: Option<u32>,
) -> Sampled {
    let mut peak = threads_of("self");
    let mut tree_pss: Option<u64> = None;
    let mut kids = Vec::new();
    let mut samples = 0u32;
    let began = Instant::now();
    let mut last_shown = began;
    let mut shown = false;
    while !stop.load(Ordering::Acquire) {
        thread::park_timeout(SAMPLE_EVERY);
        if samples.is_multiple_of(CHILDREN_EVERY) {
            kids = children(exclude);
        }
        let every = if kids.is_empty() {
            PSS_EVERY_ALONE
        } else {
            PSS_EVERY_TREE
        };
        if samples.is_multiple_of(every) {
            tree_pss = tree_pss.max(pss_of_tree(&kids));
        }
        samples = samples.wrapping_add(1);
        let kid_threads: u64 =
            kids.iter().filter_map(|pid| threads_of(pid)).sum();
        if let (Some(p), Some(now)) = (peak, threads_of("self")) {
            peak = Some(p.max(now + kid_threads));
        }
        if let Some(total) = progress
            && last_shown.elapsed() >= Duration::from_secs(1)
        {
            let served = SERVED.load(Ordering::Relaxed);
            let secs = began.elapsed().as_secs();
            eprint!("\r  {secs} s: served {served}/{total} …");
            let _ = std::io::stderr().flush();
            last_shown = Instant::now();
            shown = true;
        }
    }
    // The end of the run: what it holds as it finishes counts too.
    tree_pss = tree_pss.max(pss_of_tree(&children(exclude)));
    if shown {
        eprint!("\r\x1b[2K");
    }
    Sampled {
        // Leave the sampler itself and the run's own threads out.
        peak_threads: peak.map(|p| {
            p.saturating_sub(1 + HARNESS_THREADS.load(Ordering::Relaxed))
        }),
        peak_pss_bytes: tree_pss,
        own_cpu: thread_cpu_time().unwrap_or_default(),
    }
}

//! The server's clock: time zero is *opening*, the moment the restaurant
//! has set up and lets the customers in.
//!
//! The customers take every timestamp a report is made of, on their own
//! side of the door. The server's clock serves one purpose: the timeline
//! (`--trace`), which places each ring-up and chop on its thread. It is a
//! process-wide clock, so a cook anywhere in the server reads the same
//! zero without a clock being passed around.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A moment taken as time zero, with the same moment on the machine's
/// shared clock (`machine_now`) so that another process on the same
/// machine can rebuild it ([`Clock::to_wall`], [`Clock::from_wall`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    opening: Instant,
    opening_shared: Duration,
}

/// This process's opening, once set.
static OPENING: OnceLock<Clock> = OnceLock::new();

impl Clock {
    /// A clock whose time zero is now.
    pub fn start() -> Clock {
        Clock {
            opening: Instant::now(),
            opening_shared: machine_now(),
        }
    }

    /// Makes `self` this process's opening ([`now`]). The first call wins:
    /// a process opens once.
    pub fn install(self) -> Clock {
        *OPENING.get_or_init(|| self)
    }

    /// The time since this clock's zero.
    pub fn now(&self) -> Duration {
        self.opening.elapsed()
    }

    /// The instant at `offset` after time zero.
    pub fn at(&self, offset: Duration) -> Instant {
        self.opening + offset
    }

    /// How long from now until `offset` after time zero (zero if passed).
    pub fn until(&self, offset: Duration) -> Duration {
        self.at(offset).saturating_duration_since(Instant::now())
    }

    /// Time zero in nanoseconds on the machine's shared clock, for a child
    /// process on the same machine ([`Clock::from_wall`]).
    ///
    /// Despite the name, kept for its callers, on Unix this is not the
    /// wall clock: it is `CLOCK_MONOTONIC`, which the kernel keeps for
    /// the whole machine and never steps (`machine_now`).
    pub fn to_wall(&self) -> u128 {
        self.opening_shared.as_nanos()
    }

    /// The clock another process on this machine started at `nanos`
    /// ([`Clock::to_wall`]).
    ///
    /// This process reads its own `Instant` and the shared clock one after
    /// the other, and so did the process that made `nanos`: the rebuilt
    /// clock agrees with the original to within those two pairs of reads
    /// (well under a microsecond each), and no clock is ever stepped
    /// between them on Unix. Customers' waits are never measured this way:
    /// each is timed on one side; this only places a child's work on the
    /// timeline.
    pub fn from_wall(nanos: u128) -> Clock {
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let opening_shared =
            Duration::new(secs, (nanos % 1_000_000_000) as u32);
        let (now, now_shared) = (Instant::now(), machine_now());
        let since = now_shared.saturating_sub(opening_shared);
        Clock {
            opening: now.checked_sub(since).unwrap_or(now),
            opening_shared,
        }
    }
}

/// Now, on the clock that every process on this machine reads alike.
///
/// On Unix that is `CLOCK_MONOTONIC`: one clock for the whole system
/// (on Linux, per time namespace, which children share with their
/// parent), counting from an unspecified start such as boot, slewed by
/// NTP but never stepped (clock_gettime(2)). Elsewhere (Windows) std
/// shares no such clock between processes, and the wall clock stands in:
/// it can be stepped, so a rebuilt clock is right only roughly there.
#[cfg(unix)]
fn machine_now() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    // Linux and macOS always have CLOCK_MONOTONIC. Were it ever refused,
    // zero would only make a rebuilt clock start at "now": a timeline
    // drawn out of place, never a wrong measure.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Now, on the clock that every process on this machine reads alike: the
/// wall clock, the only one std shares between processes here.
#[cfg(not(unix))]
fn machine_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// This process's clock: the one installed at opening, or, before any was,
/// one started now (and installed).
pub fn clock() -> Clock {
    *OPENING.get_or_init(Clock::start)
}

/// The time since this process's opening.
pub fn now() -> Duration {
    clock().now()
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// Carries a parent's opening to [`child_prints_its_rebuilt_clock`].
    const OPENING_VAR: &str = "RESTAURANT_CLOCK_TEST_OPENING";

    /// The room allowed for the pairs of reads in `start` and `from_wall`
    /// (each well under a microsecond, unless the thread is preempted
    /// between them on a busy machine).
    const SLACK: Duration = Duration::from_millis(1);

    #[test]
    fn a_rebuilt_clock_keeps_the_opening() {
        let clock = Clock::start();
        std::thread::sleep(Duration::from_millis(5));
        // The openings are compared as instants, not through two `now()`
        // read one after the other: a thread paused between two reads (a
        // loaded machine) would count as skew. A pause inside a handover's
        // own pair of reads can still shift it: the best of five counts.
        let skew = (0..5)
            .map(|_| {
                let copy = Clock::from_wall(clock.to_wall());
                let (a, b) =
                    (clock.at(Duration::ZERO), copy.at(Duration::ZERO));
                a.max(b) - a.min(b)
            })
            .min()
            .unwrap_or_default();
        assert!(skew < SLACK, "the openings differ by {skew:?}");
        let copy = Clock::from_wall(clock.to_wall());
        assert!(
            copy.now() >= Duration::from_millis(5),
            "the copy lost time: {:?}",
            copy.now()
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_shared_clock_is_the_monotonic_one_not_the_wall() {
        use nix::time::{ClockId, clock_gettime};
        let read = || {
            Duration::from(clock_gettime(ClockId::CLOCK_MONOTONIC).unwrap())
                .as_nanos()
        };
        let before = read();
        let shared = Clock::start().to_wall();
        let after = read();
        assert!(
            before <= shared && shared <= after,
            "{before} ≤ {shared} ≤ {after}"
        );
    }

    /// Another process rebuilds this one's clock, and reads it while this
    /// one waits: its reading must fall between this one's reads before
    /// and after it ran.
    #[test]
    fn another_process_reads_the_same_clock() {
        let clock = Clock::start();
        std::thread::sleep(Duration::from_millis(2));
        let exe = std::env::current_exe().expect("the test binary's path");
        let before = clock.now();
        let out = Command::new(exe)
            .args([
                "--exact",
                "clock::tests::child_prints_its_rebuilt_clock",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(OPENING_VAR, clock.to_wall().to_string())
            .output()
            .expect("the child test runs");
        let after = clock.now();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the child failed: {stdout}{stderr}");
        // libtest may print its own words on the same line, and where its
        // output lands depends on how the parent was run: look anywhere.
        let nanos: u64 = stdout
            .lines()
            .chain(stderr.lines())
            .find_map(|line| line.split("REBUILT ").nth(1))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("no reading from the child: {stdout}{stderr}")
            });
        let child = Duration::from_nanos(nanos);
        assert!(
            before <= child + SLACK && child <= after + SLACK,
            "the child read {child:?}, outside {before:?}..{after:?}"
        );
    }

    /// The other half of [`another_process_reads_the_same_clock`]; run on
    /// its own, without the variable, it does nothing.
    #[test]
    #[ignore = "run by another_process_reads_the_same_clock, in a child"]
    fn child_prints_its_rebuilt_clock() {
        let Ok(opening) = std::env::var(OPENING_VAR) else {
            return;
        };
        let clock = Clock::from_wall(opening.parse().expect("nanoseconds"));
        println!("REBUILT {}", clock.now().as_nanos());
    }
}

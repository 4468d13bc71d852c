//! The server's clock: time zero is *opening*, the moment the restaurant
//! has set up and lets the customers in.
//!
//! The customers take every timestamp a report is made of, on their own
//! side of the door. The server's clock serves one purpose: the timeline
//! (`--trace`), which places each ring-up and chop on its thread. It is a
//! process-wide clock, so a cook anywhere in the server reads the same
//! zero without a clock being passed around.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// A moment taken as time zero, with the same moment on the wall clock so
/// that another process on the same machine can rebuild it
/// ([`Clock::to_wall`], [`Clock::from_wall`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    opening: Instant,
    opening_wall: SystemTime,
}

/// This process's opening, once set.
static OPENING: OnceLock<Clock> = OnceLock::new();

impl Clock {
    /// A clock whose time zero is now.
    pub fn start() -> Clock {
        Clock {
            opening: Instant::now(),
            opening_wall: SystemTime::now(),
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

    /// Time zero as nanoseconds since the Unix epoch, for a child process
    /// on the same machine ([`Clock::from_wall`]).
    pub fn to_wall(&self) -> u128 {
        self.opening_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    }

    /// The clock another process started at `nanos` ([`Clock::to_wall`]).
    ///
    /// Two processes read the wall clock separately, and the wall clock can
    /// be stepped, so the rebuilt clock agrees with the original only
    /// roughly (typically to some microseconds): good enough to draw a
    /// child's work on a timeline, not to measure a wait. Customers'
    /// waits are never measured this way: each is timed on one side.
    pub fn from_wall(nanos: u128) -> Clock {
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let opening_wall = SystemTime::UNIX_EPOCH
            + Duration::new(secs, (nanos % 1_000_000_000) as u32);
        let (now, now_wall) = (Instant::now(), SystemTime::now());
        let since = now_wall.duration_since(opening_wall).unwrap_or_default();
        Clock {
            opening: now.checked_sub(since).unwrap_or(now),
            opening_wall,
        }
    }
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

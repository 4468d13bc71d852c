//! The chopping kernel: deterministic CPU work measured in *units*.
//!
//! A unit is a fixed number of steps of a 64-bit linear congruential
//! generator, `x ← a·x + c (mod 2⁶⁴)`. Each step depends on the one before, so
//! the work cannot be spread over several cores or skipped, and its result is
//! the order's digest, so the optimiser cannot remove it either. The
//! multiplier and increment go through [`std::hint::black_box`], which stops
//! the compiler from folding several steps into one.
//!
//! Because the generator is affine, the state after `n` steps can also be
//! computed in `O(log n)` ([`jump`]): that is how [`crate::Workload`]
//! knows every order's expected digest without chopping anything.
//!
//! One unit takes about 1 µs: `STEPS_PER_UNIT` was chosen so that
//! `cargo run --release -p restaurant --example calibrate` prints 988–990 ns
//! per unit on the project's machine (AMD EPYC, 2 cores, 2026-11-27), and
//! `compare` measures it again at every run and prints it above its
//! tables. The figure varies with the CPU; digests never do, because work
//! is counted in units.
//!
//! # The digest of an order
//!
//! A customer's order line gives a 64-bit `start`. The cashier's ring-up
//! and each chop, in recipe order, carry a digest `d` forward; simmers
//! leave it alone:
//!
//! ```text
//! ring-up:  d = mix(work(start, 10))
//! chop n:   d = mix(work(d, n))
//! ```
//!
//! where `work(x, n)` runs `n × 900` steps of `x ← a·x + c (mod 2⁶⁴)` with
//! Knuth's MMIX constants `a = 6364136223846793005` and
//! `c = 1442695040888963407`, and `mix` is the SplitMix64 finaliser. The
//! plate's digest is `d` after the last chop.

use std::hint::black_box;

/// Knuth's MMIX multiplier and increment.
const A: u64 = 6_364_136_223_846_793_005;
const C: u64 = 1_442_695_040_888_963_407;

/// Generator steps in one unit of work (calibrated so a unit is ≈ 1 µs).
pub const STEPS_PER_UNIT: u64 = 900;

/// Runs `units` units of work from state `x` and returns the new state.
///
/// Never inlined, so its cost is the same wherever it is called from, and
/// `work(work(x, a), b) == work(x, a + b)`: work may be cut into slices.
#[inline(never)]
pub fn work(mut x: u64, units: u32) -> u64 {
    let (a, c) = (black_box(A), black_box(C));
    for _ in 0..units {
        for _ in 0..STEPS_PER_UNIT {
            x = x.wrapping_mul(a).wrapping_add(c);
        }
        x = black_box(x);
    }
    x
}

/// The state [`work`] would reach from `x` after `units` units, in
/// `O(log units)` and without doing the work.
pub fn jump(x: u64, units: u32) -> u64 {
    // Compose the affine map f(x) = a·x + c with itself by squaring:
    // f∘f(x) = a²·x + (a·c + c).
    let mut steps = u64::from(units) * STEPS_PER_UNIT;
    let (mut a, mut c) = (A, C);
    let (mut acc_a, mut acc_c) = (1u64, 0u64);
    while steps > 0 {
        if steps & 1 == 1 {
            acc_a = acc_a.wrapping_mul(a);
            acc_c = acc_c.wrapping_mul(a).wrapping_add(c);
        }
        c = c.wrapping_mul(a).wrapping_add(c);
        a = a.wrapping_mul(a);
        steps >>= 1;
    }
    acc_a.wrapping_mul(x).wrapping_add(acc_c)
}

/// The units of the cashier's ring-up chop.
pub const RING_UP_UNITS: u32 = 10;

/// The digest after the ring-up of an order that starts from `start`.
pub fn ring_up(start: u64) -> u64 {
    mix(work(start, RING_UP_UNITS))
}

/// The digest after a chop of `units` from digest `d`.
pub fn chop(d: u64, units: u32) -> u64 {
    mix(work(d, units))
}

/// Measures how long one unit of work takes on this machine now: the best
/// of five runs of about 20 ms each (the best, because interference only
/// ever makes a run slower). Timed on this thread's CPU clock where there
/// is one (Linux), so that a neighbour's build or a hypervisor taking the
/// core away mid-run does not make a unit look slower than the core is:
/// the lower bound built on it must stay a bound nobody beats.
pub fn measure_unit() -> std::time::Duration {
    measure_unit_in(5, 20_000)
}

/// [`measure_unit`] in about 25 ms instead of 100: the best of five runs
/// of 5,000 units. What every night's customers use for its lower bound,
/// once every plate is in (measured while the server was still busy, a
/// unit would look slower than it is, and the bound higher).
pub fn measure_unit_quickly() -> std::time::Duration {
    measure_unit_in(5, 5_000)
}

fn measure_unit_in(runs: u64, units: u32) -> std::time::Duration {
    (0..runs)
        .map(|i| {
            let start = thread_clock();
            black_box(work(black_box(i), units));
            thread_clock().saturating_sub(start) / units
        })
        .min()
        .unwrap_or_default()
}

/// The CPU time this thread has run (Linux), or time since a fixed moment
/// elsewhere.
fn thread_clock() -> std::time::Duration {
    #[cfg(target_os = "linux")]
    {
        use nix::time::{ClockId, clock_gettime};
        if let Ok(t) = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID) {
            return std::time::Duration::new(
                t.tv_sec() as u64,
                t.tv_nsec() as u32,
            );
        }
    }
    static ORIGIN: std::sync::OnceLock<std::time::Instant> =
        std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed()
}

/// A strong 64-bit mixer (the SplitMix64 finaliser): spreads every input bit
/// over every output bit, so digests of neighbouring orders look unrelated.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_agrees_with_work() {
        for (x, n) in [(0, 0), (1, 1), (42, 7), (u64::MAX, 130), (9, 1000)] {
            assert_eq!(work(x, n), jump(x, n), "x={x} n={n}");
        }
    }

    #[test]
    fn work_can_be_sliced() {
        let x = mix(7);
        assert_eq!(work(work(x, 30), 70), work(x, 100));
    }

    #[test]
    fn zero_units_is_identity() {
        assert_eq!(work(123, 0), 123);
        assert_eq!(jump(123, 0), 123);
    }
}

//! Measures how long one kernel unit takes on this machine.
//!
//! ```text
//! cargo run --release -p restaurant --example calibrate
//! ```
//!
//! Runs 200 ms of chopping five times and prints the time per unit of each
//! run. The kernel's `STEPS_PER_UNIT` was set so that this prints about
//! 1 µs on the project's machine.

use std::time::Instant;

use restaurant::kernel;

fn main() {
    const UNITS: u32 = 200_000;
    for _ in 0..5 {
        let start = Instant::now();
        let x = kernel::work(kernel::mix(1), UNITS);
        let per_unit = start.elapsed() / UNITS;
        // Printing the result keeps the work observable.
        println!("{per_unit:?} per unit (state {x:016x})");
    }
}

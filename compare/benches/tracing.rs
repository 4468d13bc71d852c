//! Recording a timeline must not distort the run it draws.
//!
//! ```text
//! cargo bench -p compare --bench tracing
//! ```
//!
//! Runs `concurrency-tokio` on `lunch-rush` in-process, seven times with
//! spans recorded (`--trace`) and seven without, interleaved so that the
//! machine's background load falls on both alike, and compares the
//! medians of the CPU time and of the mean counter wait. The goal is a
//! difference of at most 5% in each; it exits 1 above.

use std::time::Duration;

use restaurant::{Plate, Preset, Workload, probe};

const GOAL: f64 = 0.05;
const RUNS: usize = 7;

/// CPU time and mean counter wait of one run.
fn run(workload: &Workload) -> (Duration, Duration) {
    let before = probe::cpu_time().expect("CPU time on this OS");
    let plates = concurrency_tokio::serve(workload.to_orders(), 2)
        .expect("the run succeeds");
    let cpu = probe::cpu_time().expect("CPU time on this OS") - before;
    let waits: Duration = plates.iter().map(wait).sum();
    (cpu, waits / plates.len().max(1) as u32)
}

fn wait(plate: &Plate) -> Duration {
    plate
        .accepted()
        .map_or(Duration::ZERO, |a| a.saturating_sub(plate.arrival()))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let plain = Workload::generate(Preset::LunchRush, 500, 1);
    let mut traced = plain.clone();
    traced.trace();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        off.push(run(&plain));
        on.push(run(&traced));
    }
    let cpu =
        |v: &[(Duration, Duration)]| median(v.iter().map(|r| r.0).collect());
    let wait =
        |v: &[(Duration, Duration)]| median(v.iter().map(|r| r.1).collect());
    let change = |a: Duration, b: Duration| {
        (b.as_secs_f64() - a.as_secs_f64()) / a.as_secs_f64().max(1e-12)
    };
    let (cpu_off, cpu_on) = (cpu(&off), cpu(&on));
    let (wait_off, wait_on) = (wait(&off), wait(&on));
    println!(
        "concurrency-tokio on lunch-rush (500 orders, 2 workers), median of {RUNS}:"
    );
    println!(
        "  CPU time            {cpu_off:?} without, {cpu_on:?} with spans ({:+.1}%)",
        100.0 * change(cpu_off, cpu_on)
    );
    println!(
        "  mean counter wait   {wait_off:?} without, {wait_on:?} with spans ({:+.1}%)",
        100.0 * change(wait_off, wait_on)
    );
    let worst = change(cpu_off, cpu_on).max(change(wait_off, wait_on));
    println!("  goal: at most {:.0}% more", 100.0 * GOAL);
    if worst > GOAL {
        eprintln!("recording spans costs more than the goal");
        std::process::exit(1);
    }
}

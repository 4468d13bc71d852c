//! Recording a timeline must not distort the run it draws.
//!
//! ```text
//! cargo bench -p compare --bench tracing
//! ```
//!
//! Runs `concurrency-tokio` on `lunch-rush` in-process, seven times with
//! spans recorded (`--trace`) and seven without, interleaved so that the
//! machine's background load falls on both alike, and compares the
//! medians of the CPU time and of the counter wait p50 . The goal is a
//! difference of at most 5% in each; it exits 1 above.

mod common;

use std::path::PathBuf;
use std::time::Duration;

const GOAL: f64 = 0.05;
const RUNS: usize = 7;

/// Server CPU time and median counter wait of one run.
fn run(binary: &PathBuf, trace: Option<&str>) -> (Duration, Duration) {
    let mut args = vec!["--preset", "lunch-rush"];
    if let Some(file) = trace {
        args.extend(["--trace", file]);
    }
    let report = common::report(binary, &args);
    let wait = report.counter_wait.map_or(0.0, |p| p.p50);
    (
        Duration::from_secs_f64(report.cpu_s.unwrap_or_default()),
        Duration::from_secs_f64(wait),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let binary = common::tokio_binary();
    let file =
        std::env::temp_dir().join(format!("trace-{}.svg", std::process::id()));
    let file = file.to_string_lossy().into_owned();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        off.push(run(&binary, None));
        on.push(run(&binary, Some(&file)));
    }
    let _ = std::fs::remove_file(&file);
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
        "  counter wait p50    {wait_off:?} without, {wait_on:?} with spans ({:+.1}%)",
        100.0 * change(wait_off, wait_on)
    );
    let worst = change(cpu_off, cpu_on).max(change(wait_off, wait_on));
    println!("  goal: at most {:.0}% more", 100.0 * GOAL);
    if worst > GOAL {
        eprintln!("recording spans costs more than the goal");
        std::process::exit(1);
    }
}

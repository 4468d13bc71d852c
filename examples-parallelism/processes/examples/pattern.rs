//! The pattern of `parallelism-processes` on its own, ready to copy: a
//! program starts copies of itself as workers, writes one job per line to a
//! free worker's stdin, and reads one result per line from each worker's
//! stdout on a thread of its own. Closing a worker's stdin tells it to
//! leave; a `Drop` kills and reaps any worker still running, so no way out
//! of `main` leaves a child behind.
//!
//! ```text
//! cargo run -p parallelism-processes --example processes-pattern
//! ```
//!
//! It needs only the standard library: the lines are plain numbers. (For
//! structured messages, put `serde_json` at both ends, as the crate does.)

use std::error::Error;
use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::{env, thread};

type BoxError = Box<dyn Error + Send + Sync>;

/// Stands in for your CPU work, run in a worker process.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// The worker role: a job per line in, `job result` per line out, until
/// stdin closes.
fn worker() -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let job: u64 = line?.trim().parse()?;
        writeln!(out, "{job} {}", compute(job))?;
        out.flush()?; // the parent is waiting for this line
    }
    Ok(())
}

/// Kills and reaps every worker still running when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill(); // does nothing to one that has exited
            let _ = child.wait();
        }
    }
}

fn main() -> Result<(), BoxError> {
    if env::args().nth(1).as_deref() == Some("--worker") {
        return worker();
    }
    let count = thread::available_parallelism().map_or(2, |n| n.get());
    let me = env::current_exe()?;
    let mut workers = Workers(Vec::new());
    let (mut inputs, mut readers) = (Vec::new(), Vec::new());
    let (results_tx, results) = mpsc::channel();
    for w in 0..count {
        let mut child = Command::new(&me)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        inputs.push(child.stdin.take().ok_or("no stdin pipe")?);
        let stdout = BufReader::new(child.stdout.take().ok_or("no pipe")?);
        workers.0.push(child);
        // A reader per worker: each line is a result; `None` means the
        // worker's stdout ended, so the worker is gone.
        let results_tx = results_tx.clone();
        readers.push(thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if results_tx.send((w, Some(line))).is_err() {
                    return;
                }
            }
            let _ = results_tx.send((w, None));
        }));
    }

    let mut jobs = 0..100u64;
    let mut busy = vec![false; count];
    let mut answers = Vec::new();
    loop {
        // Give a job to every free worker, one at a time each.
        for (w, input) in inputs.iter_mut().enumerate() {
            if !busy[w]
                && let Some(job) = jobs.next()
            {
                writeln!(input, "{job}")?;
                busy[w] = true;
            }
        }
        if !busy.contains(&true) {
            break; // no job left, none in flight
        }
        // Returning early drops `workers`, which kills the others.
        let (w, line) = results.recv()?;
        let line = line.ok_or_else(|| format!("worker {w} died"))?;
        let (job, value) = line.split_once(' ').ok_or("a malformed line")?;
        answers.push((job.parse::<u64>()?, value.parse::<u64>()?));
        busy[w] = false;
    }
    drop(inputs); // closing their stdin ends the workers' loops
    for child in &mut workers.0 {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a worker ended with {status}").into());
        }
    }
    for reader in readers {
        reader.join().map_err(|_| "a reader panicked")?;
    }
    // Check the answer, not just that it ran.
    answers.sort_unstable();
    let expected: Vec<(u64, u64)> = (0..100).map(|j| (j, compute(j))).collect();
    assert_eq!(answers, expected);
    let done = answers.len();
    println!("{done} jobs done in {count} processes, every result checked");
    Ok(())
}

//! The pattern of `parallelism-redis-streams` on its own, ready to copy: a
//! job queue on a Redis stream with a consumer group. A producer adds
//! jobs (`XADD`); worker processes, copies of this program that could as
//! well run on other machines, take them (`XREADGROUP`), and for each one
//! add its result to a second stream, acknowledge the job (`XACK`) and
//! delete it, in one transaction. A worker that dies mid-job leaves the
//! job pending; another worker claims it once it has sat idle long enough
//! (`XAUTOCLAIM`). Delivery is therefore at least once, and the collector
//! keeps the set of jobs still waiting and drops a second result for a job
//! it has already.
//!
//! Its `main` starts a redis-server of its own (persistence off, on a free
//! loopback port, killed on the way out), two workers, and 100 jobs; the
//! worker handed job 13 dies the first time, so that job is redelivered.
//! It checks that every result arrives once and is right.
//!
//! ```text
//! cargo run -p parallelism-redis-streams --example redis-streams-pattern
//! ```
//!
//! It needs `redis = { version = "1.8", default-features = false,
//! features = ["streams"] }` and `redis-server` on the PATH (without it,
//! it says so and exits 0). Jobs longer than the claim time need a
//! heartbeat that keeps them claimed while they run: see the crate's
//! `heartbeat`.

use std::collections::HashMap;
use std::error::Error;
use std::net::TcpListener;
use std::process::{self, Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{Commands, Connection};

type BoxError = Box<dyn Error + Send + Sync>;

const JOBS: &str = "jobs";
const RESULTS: &str = "results";
const GROUP: &str = "workers";
/// A job idle this long, delivered but not acknowledged, is claimed.
const CLAIM_IDLE: Duration = Duration::from_millis(500);

/// Stands in for your work.
fn compute(input: u64) -> u64 {
    (0..20_000u64).fold(input, |acc, i| acc.wrapping_mul(31).wrapping_add(i))
}

/// Kills and reaps its process when dropped, on every way out.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates the group (and the stream) unless it exists; anyone may be
/// first. `0`: a group made after the first jobs must still see them.
fn join_group(con: &mut Connection) -> redis::RedisResult<()> {
    match con.xgroup_create_mkstream::<_, _, _, ()>(JOBS, GROUP, "0") {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// The worker role: takes jobs until killed.
fn worker(url: &str) -> Result<(), BoxError> {
    let mut con = redis::Client::open(url)?.get_connection()?;
    join_group(&mut con)?;
    let me = format!("worker-{}", process::id());
    let read = StreamReadOptions::default()
        .group(GROUP, &me)
        .count(1)
        .block(CLAIM_IDLE.as_millis() as usize / 2);
    let mut cursor = "0-0".to_owned();
    loop {
        // A job a dead worker left idle comes first; else a new one.
        let claimed: StreamAutoClaimReply = con.xautoclaim_options(
            JOBS,
            GROUP,
            &me,
            CLAIM_IDLE.as_millis() as u64,
            &cursor,
            StreamAutoClaimOptions::default().count(1),
        )?;
        cursor = claimed.next_stream_id;
        let mut entries = claimed.claimed;
        if entries.is_empty() {
            let new: Option<StreamReadReply> =
                con.xread_options(&[JOBS], &[">"], &read)?;
            entries = new
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .collect();
        }
        for entry in entries {
            let Some(n) = entry.get::<u64>("n") else {
                // Not a job: acknowledged and dropped, never redelivered.
                // (A real service would move it to a dead-letter stream.)
                redis::pipe()
                    .xack(JOBS, GROUP, &[&entry.id])
                    .xdel(JOBS, &[&entry.id])
                    .query::<()>(&mut con)?;
                continue;
            };
            // The demonstration's crash: job 13 kills the first worker
            // that takes it, before it is acknowledged.
            let pending: StreamPendingCountReply =
                con.xpending_count(JOBS, GROUP, &entry.id, &entry.id, 1)?;
            let delivered =
                pending.ids.first().map_or(1, |p| p.times_delivered);
            if n == 13 && delivered == 1 {
                process::abort();
            }
            let result = compute(n);
            // The result, the ack and the delete in one transaction: a
            // worker dying before it leaves the job to another; after, it
            // leaves nothing to redo.
            redis::pipe()
                .atomic()
                .xadd(RESULTS, "*", &[("n", n), ("result", result)])
                .ignore()
                .xack(JOBS, GROUP, &[&entry.id])
                .ignore()
                .xdel(JOBS, &[&entry.id])
                .ignore()
                .query::<()>(&mut con)?;
        }
    }
}

/// Starts a redis-server of our own on a free loopback port, persistence
/// off; waits until it answers.
fn redis_server() -> Result<(Reaped, String), BoxError> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()?;
    let server = Reaped(child);
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str())?;
    let began = Instant::now();
    let answers = || {
        let mut con = client.get_connection()?;
        redis::cmd("PING").query::<String>(&mut con)
    };
    while answers().is_err() {
        if began.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not answer".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok((server, url))
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        let url = args.get(2).ok_or("--worker needs the Redis URL")?;
        return worker(url);
    }
    let (_server, url) = match redis_server() {
        Ok(started) => started,
        Err(e) => {
            println!(
                "skipped: cannot start redis-server ({e}); install it to run this"
            );
            return Ok(());
        }
    };
    let mut con = redis::Client::open(url.as_str())?.get_connection()?;
    join_group(&mut con)?;
    let me = std::env::current_exe()?;
    let _workers: Vec<Reaped> = (0..2)
        .map(|_| {
            Command::new(&me)
                .args(["--worker", &url])
                .spawn()
                .map(Reaped)
        })
        .collect::<Result<_, _>>()?;

    // The producer: every job waits, by number, for its result.
    let mut waiting: HashMap<u64, u64> = HashMap::new();
    for n in 0..100u64 {
        con.xadd::<_, _, _, _, String>(JOBS, "*", &[("n", n)])?;
        waiting.insert(n, compute(n));
    }
    // The collector: reads results until none is waiting.
    let began = Instant::now();
    let read = StreamReadOptions::default().block(100).count(100);
    let mut last = "0-0".to_owned();
    let mut seconds = 0;
    while !waiting.is_empty() {
        if began.elapsed() > Duration::from_secs(30) {
            return Err(format!("{} results never came", waiting.len()).into());
        }
        let reply: Option<StreamReadReply> =
            con.xread_options(&[RESULTS], &[&last], &read)?;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids)
        {
            last.clone_from(&entry.id);
            let (Some(n), Some(result)) =
                (entry.get::<u64>("n"), entry.get::<u64>("result"))
            else {
                continue;
            };
            // At least once: a result for a job no longer waiting is a
            // second delivery, and dropped.
            match waiting.remove(&n) {
                Some(expected) if expected == result => {}
                Some(_) => return Err(format!("job {n}: wrong result").into()),
                None => seconds += 1,
            }
        }
    }
    println!(
        "100 jobs, every result once and right, job 13 redelivered after its \
         worker died; {seconds} second results dropped"
    );
    Ok(())
}

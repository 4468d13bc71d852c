//! What the tests of this crate share: a redis-server of each test's own,
//! the kitchen that uses it, and checks that processes are gone.

// Each test file uses a part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use parallelism_redis_streams::Kitchen;
use parallelism_redis_streams::broker::RedisServer;

pub const BINARY: &str = env!("CARGO_BIN_EXE_parallelism-redis-streams");

/// The redis-server of each running test, by the test's name: a model's
/// `serve` is a plain `fn`, so it finds its test's server here.
static URLS: Mutex<Urls> = Mutex::new(None);
type Urls = Option<HashMap<&'static str, String>>;

/// A redis-server for one test. Dropping it stops the server; [`stop`]
/// also checks that it is gone.
///
/// [`stop`]: TestRedis::stop
#[derive(Debug)]
pub struct TestRedis {
    name: &'static str,
    server: Option<RedisServer>,
}

impl TestRedis {
    /// Starts a redis-server for test `name`, started from the test's own
    /// thread, which lives as long as the test.
    pub fn start(name: &'static str) -> TestRedis {
        let server = RedisServer::start().unwrap_or_else(|e| {
            panic!("the tests need a redis-server of their own: {e}")
        });
        URLS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashMap::new)
            .insert(name, server.url().to_owned());
        TestRedis {
            name,
            server: Some(server),
        }
    }

    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map(|s| s.url().to_owned())
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.server.as_ref().map_or(0, RedisServer::pid)
    }

    /// A connection to it.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("the test's redis-server answers")
    }

    /// Stops the server, and checks it is gone.
    pub fn stop(mut self) {
        let pid = self.pid();
        drop(self.server.take());
        assert_gone(&[pid], Duration::from_secs(1), "the test's redis-server");
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(urls) =
            URLS.lock().unwrap_or_else(PoisonError::into_inner).as_mut()
        {
            urls.remove(self.name);
        }
    }
}

/// The kitchen of test `name`: the crate's binary as its cooks, on the
/// test's redis-server.
pub fn kitchen(name: &str) -> Kitchen {
    Kitchen::new(BINARY).redis(redis_url(name))
}

/// Where the redis-server of test `name` is.
pub fn redis_url(name: &str) -> String {
    URLS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|urls| urls.get(name).cloned())
        .unwrap_or_else(|| panic!("test {name} started no redis-server"))
}

/// Where the processes of test `name` leave their pids.
pub fn pid_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("redis-streams-{name}-{}", std::process::id()))
}

/// Empties [`pid_dir`] for test `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = pid_dir(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("the target directory is writable");
    dir
}

/// The pids of the processes that left `<what>-<pid>` in `dir`.
pub fn pids(dir: &Path, what: &str) -> Vec<u32> {
    let prefix = format!("{what}-");
    fs::read_dir(dir)
        .expect("the pid directory exists")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_prefix(&prefix)?.parse().ok()
        })
        .collect()
}

/// Waits until `file` holds a pid, at most `limit`.
pub fn wait_for_pid(file: &Path, limit: Duration) -> u32 {
    let began = Instant::now();
    loop {
        let text = fs::read_to_string(file).unwrap_or_default();
        if let Ok(pid) = text.parse::<u32>() {
            return pid;
        }
        assert!(began.elapsed() < limit, "nothing wrote {}", file.display());
        thread::sleep(Duration::from_millis(5));
    }
}

/// Whether process `pid` is gone: no /proc entry, or a zombie that only
/// waits for whoever adopted it to reap it. (Off Linux: assumed gone.)
pub fn is_gone(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // "pid (comm) S …": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, s)| s.trim().chars().next());
    matches!(state, Some('Z' | 'X'))
}

/// Every process of `pids` is gone within `limit`.
pub fn assert_gone(pids: &[u32], limit: Duration, what: &str) {
    let began = Instant::now();
    while !pids.iter().all(|&pid| is_gone(pid)) {
        let alive: Vec<_> = pids.iter().filter(|&&p| !is_gone(p)).collect();
        assert!(
            began.elapsed() < limit,
            "{what} {alive:?} still running {limit:?} later"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// `kill -KILL pid`.
pub fn kill(pid: u32) {
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(killed.success(), "kill -KILL {pid} failed");
}

/// A child process killed and reaped when dropped, so a failing test
/// leaves nothing running.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The keys of this model that a night left in `connection`'s Redis,
/// dead letters aside (those stay a day, for a person to read).
pub fn leftovers(connection: &mut redis::Connection) -> Vec<String> {
    let pattern = format!("{}:*", parallelism_redis_streams::broker::PREFIX);
    let keys: Vec<String> =
        redis::Commands::keys(connection, pattern).expect("KEYS");
    keys.into_iter()
        .filter(|k| !k.ends_with(":dead-letters"))
        .collect()
}

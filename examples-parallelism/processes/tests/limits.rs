//! The OS refusing what a worker needs: a process, or a thread to read
//! it. RLIMIT_NPROC counts a user's processes and threads together, and
//! root ignores it, so the binary runs as `nobody` (through `setpriv`),
//! under a range of limits that each cut the run short somewhere else.
//! Linux only, as root only (it needs to change user); skipped otherwise.

#![cfg(target_os = "linux")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_parallelism-processes");

/// Far more than a refused run needs to end.
const LIMIT: Duration = Duration::from_secs(10);

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().any(|l| {
            l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")
        })
    })
}

/// One run as `nobody` with at most `nproc` processes and threads:
/// its exit code (`None` if it had to be killed after [`LIMIT`]) and stderr.
fn run_limited(binary: &PathBuf, nproc: u32) -> (Option<i32>, String) {
    let child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg("prlimit")
        .arg(format!("--nproc={nproc}"))
        .arg("--")
        .arg(binary)
        .args(["--cooks", "4", "--orders", "20", "--time-scale", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv and prlimit run");
    let pid = child.id();
    let (done, output) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match output.recv_timeout(LIMIT) {
        Ok(Ok(output)) => (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        Ok(Err(e)) => panic!("could not wait for the run: {e}"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            (None, String::new())
        }
    }
}

#[test]
fn a_refused_worker_or_thread_is_named_and_counted() {
    if !is_root() || Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: needs root and setpriv to run as nobody");
        return;
    }
    // Somewhere `nobody` can read and run it.
    let dir = std::env::temp_dir()
        .join(format!("processes-limits-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("a temporary directory");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let binary = dir.join("parallelism-processes");
    fs::copy(BINARY, &binary).expect("the binary copies");
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755))
        .expect("chmod");

    let mut refusals = Vec::new();
    for nproc in 2..=20 {
        let (code, stderr) = run_limited(&binary, nproc);
        assert!(code.is_some(), "with {nproc} processes the run hung");
        for line in stderr.lines() {
            if let Some(why) = line
                .strip_prefix("parallelism-processes: error: the OS refused ")
            {
                // Ours: named, counted, and exit 1.
                assert_eq!(code, Some(1), "nproc {nproc}: {stderr}");
                assert!(why.contains(" alive)"), "nproc {nproc}: {line}");
                refusals.push(why.to_owned());
            }
        }
    }
    let _ = fs::remove_dir_all(&dir);
    assert!(
        refusals.iter().any(|r| r.starts_with("a worker process (")),
        "no limit refused a worker process: {refusals:?}"
    );
}

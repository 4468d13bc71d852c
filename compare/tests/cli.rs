//! `compare` end to end, on the reference model (and the thread pool, for
//! a sweep of cooks): a good run, a failing run, a disagreeing checksum, a
//! run past its limit, repeats and their spread, and bad arguments.
//!
//! The binaries are built once, into a target folder of their own (the
//! `cargo test` that runs this holds the lock on the usual one).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/compare-tests")
}

/// Builds `sequential`, the null restaurant (the floor) and the thread
/// pool in release, once for every test here.
fn built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "restaurant",
                "--bin",
                "sequential",
                "--bin",
                "null-restaurant",
                "-p",
                "parallelism-thread-pool",
                "--bin",
                "parallelism-thread-pool",
            ])
            .env("CARGO_TARGET_DIR", target_dir())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    });
}

fn compare(args: &[&str]) -> Output {
    compare_models("sequential", args)
}

fn compare_models(models: &str, args: &[&str]) -> Output {
    built();
    Command::cargo_bin("compare")
        .unwrap()
        .args(["--no-build", "--models", models])
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap()
}

fn runs(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout))
    });
    v["runs"].as_array().unwrap().clone()
}

#[test]
fn a_good_run_is_ok_with_the_expected_checksum() {
    let out = compare(&["--quick", "--preset", "banquet,big-order", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs(&out);
    assert_eq!(runs.len(), 2);
    for (run, stage) in runs.iter().zip(v["stages"].as_array().unwrap()) {
        assert_eq!(run["model"], "sequential");
        assert_eq!(run["status"], "ok");
        assert_eq!(run["report"]["checksum"], stage["expected_checksum"]);
        let efficiency = run["efficiency"].as_f64().unwrap();
        // No model beats the physical limit (a little slack for the
        // measured kernel speed, which varies run to run).
        assert!(efficiency > 0.0 && efficiency < 1.2, "{efficiency}");
    }
}

#[test]
fn a_crashing_model_is_reported_as_failed() {
    let out = compare(&[
        "--quick",
        "--preset",
        "lunch-rush",
        "--json",
        "--example-args",
        "--fault-order 3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let runs = runs(&out);
    assert_eq!(runs[0]["status"], "failed");
    let message = runs[0]["message"].as_str().unwrap();
    assert!(message.contains("order 3"), "{message}");
}

#[test]
fn a_disagreeing_checksum_is_reported_as_failed() {
    // The example serves seed 2 while compare expects seed 1's checksum.
    let out = compare(&[
        "--quick",
        "--preset",
        "banquet",
        "--json",
        "--example-args",
        "--seed 2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let runs = runs(&out);
    assert_eq!(runs[0]["status"], "failed");
    let message = runs[0]["message"].as_str().unwrap();
    assert!(message.contains("disagrees"), "{message}");
}

#[test]
fn a_run_past_its_limit_is_dnf_and_not_an_error() {
    // The release build comes first: on a loaded two-core machine it alone
    // can take a minute, and the bound below is for the comparison.
    built();
    let started = Instant::now();
    // Sequential on takeout waits out hundreds of simmers in a row; on
    // banquet it finishes, so the comparison verified something.
    let out = compare(&[
        "--quick",
        "--preset",
        "banquet,takeout",
        "--time-limit",
        "3",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let runs = runs(&out);
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(runs[1]["status"], "dnf");
    // A run with no report still says what it ran with.
    assert_eq!(runs[1]["cooks"], 1, "{:?}", runs[1]);
    assert_eq!(runs[1]["repeats"], 1);
}

#[test]
fn a_sub_second_limit_is_shown_in_its_own_unit() {
    // Sequential cannot serve takeout in half a second.
    let out =
        compare(&["--quick", "--preset", "takeout", "--time-limit", "0.5"]);
    // Nothing was verified: that is exit 1, and the table is printed.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("DNF 500.0 ms"), "{text}");
}

#[test]
fn the_text_output_has_a_table_per_preset() {
    let out = compare(&["--quick", "--preset", "banquet"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("banquet: 40 orders, seed 1"), "{text}");
    assert!(text.contains("lower bound"), "{text}");
    assert!(text.contains("wait p99"), "{text}");
    assert!(text.contains("cooks"), "{text}");
    assert!(text.contains("sequential"), "{text}");
    assert!(text.contains("verdict"), "{text}");
    assert!(text.contains("threads: alive, sampled"), "{text}");
    // The floor is printed under the headline.
    assert!(text.contains("floor (the null restaurant)"), "{text}");
    // One round: the verdict says how to tell a lead from noise.
    assert!(text.contains("--repeats"), "{text}");
}

#[test]
fn repeats_give_medians_and_their_spread_in_the_json() {
    let out = compare(&[
        "--quick",
        "--preset",
        "banquet",
        "--repeats",
        "3",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stage = &v["stages"][0];
    assert!(stage["lower_bound_s"].as_f64().unwrap() > 0.0);
    let run = &runs(&out)[0];
    assert_eq!(run["cooks"], 1);
    assert_eq!(run["repeats"], 3);
    let [lo, hi] =
        [0, 1].map(|i| run["spread"]["makespan_s"][i].as_f64().unwrap());
    let median = run["report"]["makespan_s"].as_f64().unwrap();
    assert!(lo <= median && median <= hi, "{lo} ≤ {median} ≤ {hi}");
    let p99 = &run["spread"]["counter_wait_p99"];
    assert!(p99[0].as_f64().unwrap() <= p99[1].as_f64().unwrap());
    // Each night's report keeps the bound from the schedule as kept, for
    // information only.
    assert!(run["report"]["bound_as_kept_s"].as_f64().unwrap() > 0.0);
    // One bound per stage, and every run's efficiency divides it.
    let bound = stage["lower_bound_s"].as_f64().unwrap();
    let efficiency = run["efficiency"].as_f64().unwrap();
    assert!((efficiency - bound / median).abs() < 1e-12, "{efficiency}");
    assert_eq!(run["report"]["lower_bound_s"].as_f64(), Some(bound));
    // The floor: the null restaurant's figures, and the lateness it sets.
    let floor = &stage["floor"];
    let lag = floor["arrival_lag_p99_s"].as_f64().unwrap();
    assert!(floor["counter_wait_p99_s"].as_f64().unwrap() > 0.0);
    let late_above = stage["late_above_s"].as_f64().unwrap();
    assert!((late_above - (2.0 * lag + 1e-3)).abs() < 1e-12);
    let run_lag = run["report"]["arrival_lag"]["p99"].as_f64().unwrap();
    assert_eq!(run["late"], run_lag > late_above, "{run}");
    assert_eq!(run["rounds"].as_array().unwrap().len(), 3);
    // The null restaurant is the floor, never a row.
    assert!(
        runs(&out).iter().all(|r| r["model"] != "null-restaurant"),
        "{v}"
    );
}

#[test]
fn a_sweep_runs_each_size_and_more_cooks_do_not_slow_the_pool() {
    // Lunch rush at full size: one cook waits out every simmer in turn,
    // four are nearly enough, sixteen are plenty. Three interleaved rounds
    // and their medians: one night on a loaded machine can stall for a
    // quarter of a second, and the margins below are about that much.
    let out = compare_models(
        "parallelism-thread-pool",
        &[
            "--sweep-cooks",
            "1,4,16",
            "--preset",
            "lunch-rush",
            "--repeats",
            "3",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let runs = runs(&out);
    let cooks: Vec<u64> =
        runs.iter().map(|r| r["cooks"].as_u64().unwrap()).collect();
    assert_eq!(cooks, [1, 4, 16]);
    let makespan: Vec<f64> = runs
        .iter()
        .map(|r| r["report"]["makespan_s"].as_f64().unwrap())
        .collect();
    assert!(makespan[0] > 2.0 * makespan[1], "{makespan:?}");
    // A wide margin: at 4 and 16 both finish with the last arrival.
    assert!(makespan[2] < 1.25 * makespan[1], "{makespan:?}");
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    for (args, named) in [
        (&["--models", "no-such-model"][..], "--models"),
        (&["--preset", "brunch"], "--preset"),
        (&["--repeats", "0"], "--repeats"),
        (&["--time-limit", "-1"], "--time-limit"),
        (&["--time-limit", "0"], "greater than 0"),
        (&["--seed", "-1"], "invalid digit"),
        (&["--sweep-cooks", "0"], "--sweep-cooks"),
        // Past every model's cap, every run would fail: refused up front,
        // naming the most allowed.
        (&["--sweep-cooks", "4,100000"], "from 1 to 10000,"),
    ] {
        let out = Command::cargo_bin("compare")
            .unwrap()
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

#[test]
fn a_comparison_that_verified_nothing_fails() {
    let out = compare(&["--preset", "banquet", "--time-limit", "0.001"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no run was verified"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    use std::process::Stdio;
    built();
    let mut child = Command::cargo_bin("compare")
        .unwrap()
        .args(["--no-build", "--models", "sequential", "--quick"])
        .args(["--preset", "banquet", "--json"])
        .env("CARGO_TARGET_DIR", target_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before compare writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// The processes in `pgid`'s group that are still running (Linux).
#[cfg(target_os = "linux")]
fn running_in_group(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        else {
            continue;
        };
        // After the command's closing parenthesis: state, ppid, pgrp.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        {
            found.push(pid);
        }
    }
    found
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_kills_the_running_example_and_prints_what_was_measured() {
    use std::process::Stdio;
    built();
    // Sequential on takeout runs for minutes: it is surely mid-run below.
    let child = Command::cargo_bin("compare")
        .unwrap()
        .args(["--no-build", "--models", "sequential"])
        .args(["--preset", "banquet,takeout", "--time-limit", "600"])
        .env("CARGO_TARGET_DIR", target_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until sequential's takeout run has started (banquet's stage is
    // then whole): an example process, child of compare, whose command
    // line names sequential and takeout. Watched rather than waited for:
    // on a loaded machine banquet's stage alone can take many seconds.
    let started = Instant::now();
    let example = loop {
        let kids = std::fs::read_to_string(format!(
            "/proc/{}/task/{}/children",
            child.id(),
            child.id()
        ))
        .unwrap_or_default();
        let on_takeout = kids
            .split_whitespace()
            .filter_map(|k| k.parse::<u32>().ok())
            .find(|kid| {
                let cmdline = std::fs::read(format!("/proc/{kid}/cmdline"))
                    .unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(b"sequential"))
                    && args.contains(&&b"takeout"[..])
            });
        if let Some(kid) = on_takeout {
            break kid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "sequential's takeout run did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !running_in_group(example).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        running_in_group(example).is_empty(),
        "left running: {:?}",
        running_in_group(example)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("banquet"),
        "what was measured is printed: {text}"
    );
}

#[cfg(unix)]
#[test]
fn a_model_whose_program_is_missing_is_skipped_not_failed() {
    built();
    // A PATH with cargo and rustc on it (cargo metadata needs both) but
    // no redis-server.
    let empty = std::env::temp_dir()
        .join(format!("compare-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in ["cargo", "rustc"] {
        let found = std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|file| file.is_file())
            .unwrap_or_else(|| panic!("{tool} is not on the PATH"));
        std::os::unix::fs::symlink(found, empty.join(tool)).unwrap();
    }
    let out = Command::cargo_bin("compare")
        .unwrap()
        .args([
            "--no-build",
            "--models",
            "sequential,parallelism-redis-streams",
        ])
        .args(["--quick", "--preset", "banquet", "--json"])
        .env("CARGO_TARGET_DIR", target_dir())
        .env("PATH", &empty)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&empty);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let runs = runs(&out);
    let redis = runs
        .iter()
        .find(|r| r["model"] == "parallelism-redis-streams")
        .unwrap();
    assert_eq!(redis["status"], "skipped", "{redis:?}");
    let message = redis["message"].as_str().unwrap();
    assert!(message.contains("redis-server"), "{message}");
    assert_eq!(redis["repeats"], 0);
}

/// A target folder whose `sequential` fails every night and hangs when
/// asked `--print-cooks`, writing its pid to `probe.pid` first: compare
/// asks that of every run that failed. Returns the folder.
#[cfg(target_os = "linux")]
fn hanging_on_print_cooks(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir()
        .join(format!("compare-{name}-{}", std::process::id()));
    let release = dir.join("release");
    std::fs::create_dir_all(&release).unwrap();
    let pidfile = dir.join("probe.pid");
    let script = format!(
        "#!/bin/sh\n\
         for a in \"$@\"; do\n\
           if [ \"$a\" = --print-cooks ]; then\n\
             echo $$ > {pid}.tmp && mv {pid}.tmp {pid}\n\
             exec sleep 600\n\
           fi\n\
         done\n\
         echo 'sequential: error: broken on purpose' >&2\n\
         exit 1\n",
        pid = pidfile.display()
    );
    let model = release.join("sequential");
    std::fs::write(&model, script).unwrap();
    std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o755))
        .unwrap();
    dir
}

/// Starts compare on the broken `sequential` in `dir`.
#[cfg(target_os = "linux")]
fn compare_in(dir: &std::path::Path, limit: &str) -> std::process::Child {
    use std::process::Stdio;
    Command::cargo_bin("compare")
        .unwrap()
        .args(["--no-build", "--models", "sequential", "--quick"])
        .args(["--preset", "banquet", "--time-limit", limit])
        .env("CARGO_TARGET_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The hanging probe, once it runs: its pid, which is also its process
/// group's (compare gives each run a group of its own). Dropped, it kills
/// whatever is left of the group, so that a failing test leaves nothing
/// running behind it.
#[cfg(target_os = "linux")]
struct Probe(u32);

#[cfg(target_os = "linux")]
impl Probe {
    /// Waits for the probe to write its pid.
    fn started(dir: &std::path::Path) -> Probe {
        let started = Instant::now();
        loop {
            if let Ok(pid) = std::fs::read_to_string(dir.join("probe.pid")) {
                return Probe(pid.trim().parse().unwrap());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "compare never asked --print-cooks"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The probe and what is left of its group, still running.
    fn left(&self) -> Vec<u32> {
        let mut left = running_in_group(self.0);
        // Itself too: a probe that is not a group leader has no group.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0));
        let alive = stat.is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        });
        if alive && !left.contains(&self.0) {
            left.push(self.0);
        }
        left
    }

    /// Asserts the probe and its group are gone within a few seconds.
    fn assert_gone(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.left().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.left();
        assert!(
            left.is_empty(),
            "the --print-cooks probe survived: {left:?}"
        );
    }
}

#[cfg(target_os = "linux")]
impl Drop for Probe {
    fn drop(&mut self) {
        use nix::sys::signal::{SIGKILL, kill};
        use nix::unistd::Pid;
        for pid in self.left() {
            let _ = kill(Pid::from_raw(pid as i32), SIGKILL);
        }
    }
}

/// Waits for `child` for at most `within`; past it, kills it and fails.
#[cfg(target_os = "linux")]
fn output_by(mut child: std::process::Child, within: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > within {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("compare still running after {within:?}: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn a_model_hanging_on_print_cooks_is_killed_at_the_time_limit() {
    let dir = hanging_on_print_cooks("probe-limit");
    let child = compare_in(&dir, "2");
    let probe = Probe::started(&dir);
    let out = output_by(child, Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
    probe.assert_gone();
    // The night failed: that is the exit status, the probe changes nothing.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sequential did not answer --print-cooks within"),
        "{stderr}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_kills_a_hanging_print_cooks_probe() {
    let dir = hanging_on_print_cooks("probe-ctrl-c");
    let child = compare_in(&dir, "600");
    let probe = Probe::started(&dir);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let out = output_by(child, Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
    probe.assert_gone();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_print_cooks_probe_dies_with_compare() {
    let dir = hanging_on_print_cooks("probe-kill");
    let mut child = compare_in(&dir, "600");
    let probe = Probe::started(&dir);
    // SIGKILL: compare has no chance to clean up; the kernel must.
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    probe.assert_gone();
}

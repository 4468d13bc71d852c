//! The shared command line, through the real `sequential` binary.

use assert_cmd::Command;
use restaurant::{Preset, Workload};

fn sequential() -> Command {
    Command::cargo_bin("sequential").unwrap()
}

/// Runs with `args`, expects exit 2, and returns stderr.
fn refused(args: &[&str]) -> String {
    let out = sequential().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_arguments_exit_2_and_name_the_argument() {
    for (args, named) in [
        (&["--cooks", "0"][..], "--cooks"),
        (&["--cooks", "2"], "--cooks"),
        (&["--cooks", "-1"], "--cooks"),
        (&["--orders", "-5"], "--orders"),
        (&["--orders", "many"], "--orders"),
        (&["--orders", "1000001"], "--orders"),
        (&["--preset", "brunch"], "--preset"),
        (&["--time-scale", "0"], "--time-scale"),
        (&["--time-scale", "NaN"], "--time-scale"),
        (&["--seed", "-1"], "--seed"),
        (&["--fault-order", "10", "--orders", "10"], "--fault-order"),
        (&["--listen", "nowhere"], "--listen"),
        (&["--trace", "/no/such/folder/timeline.svg"], "--trace"),
        (&["--trace", "/tmp"], "--trace"),
        (&["--bogus"], "--bogus"),
    ] {
        let stderr = refused(args);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_port_in_use_is_bad_input() {
    // Held for the whole test: the server cannot have it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = refused(&["--listen", &addr]);
    assert!(stderr.contains("'--listen <ADDR>'"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn help_explains_the_model_and_every_flag() {
    let out = sequential().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--preset",
        "--orders",
        "--seed",
        "--cooks",
        "--time-scale",
        "--json",
        "--trace",
        "--listen",
        "only 1 is accepted",
        "lunch-rush",
        "Exit status",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    // Test-only and internal flags stay out of what users read.
    for hidden in ["--fault-order", "--customers", "--connect <"] {
        assert!(!help.contains(hidden), "--help shows {hidden}:\n{help}");
    }
}

#[test]
fn json_is_one_line_with_the_expected_checksum_on_every_preset() {
    for preset in Preset::ALL {
        // Small and fast: the reference waits out every simmer in turn.
        let (orders, scale) = (40, 200.0);
        let out = sequential()
            .args(["--preset", preset.name(), "--orders", "40"])
            .args(["--time-scale", "200", "--seed", "3", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{preset}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let expected = Workload::generate_scaled(preset, orders, 3, scale)
            .expected_checksum();
        assert_eq!(v["checksum"], expected.to_string(), "{preset}");
        assert_eq!(v["served"], 40);
        assert_eq!(v["model"], "sequential");
        assert_eq!(v["schema_version"], restaurant::report::SCHEMA_VERSION);
        for field in [
            "counter_wait",
            "kitchen_time",
            "connect_wait",
            "arrival_lag",
        ] {
            assert!(v[field]["p99"].as_f64().is_some(), "{field}: {v}");
        }
        if cfg!(target_os = "linux") {
            // The reference is one thread; the sampler is left out.
            assert_eq!(v["peak_threads"], 1);
            assert!(v["peak_pss_bytes"].as_u64().unwrap() > 0);
            assert!(v["cpu_s"].as_f64().unwrap() > 0.0);
            assert_eq!(v["stamps"], "kernel");
        }
    }
}

#[test]
fn the_text_report_says_it_verified() {
    let out = sequential()
        .args(["--orders", "5", "--time-scale", "100"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("5 served once each"), "{text}");
    assert!(text.contains("counter wait"), "{text}");
}

#[test]
fn an_injected_panic_exits_1_naming_the_order() {
    let out = sequential()
        .args(["--orders", "6", "--time-scale", "100", "--fault-order", "4"])
        .args(["--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no report for a failed run");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("the cook of order 4 panicked"), "{stderr}");
}

#[test]
fn a_timeline_is_written_whole() {
    let dir =
        std::env::temp_dir().join(format!("timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("night.svg");
    let out = sequential()
        .args(["--orders", "3", "--time-scale", "100", "--json"])
        .arg("--trace")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // Nothing is left beside it: the temporary file was renamed.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_customers_binary_plays_against_a_listening_server() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut server =
        std::process::Command::new(env!("CARGO_BIN_EXE_sequential"))
            .args(["--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut line = String::new();
    BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.split_once("listening on ").unwrap().1;
    let addr = addr.split(' ').next().unwrap().to_owned();
    let out = Command::cargo_bin("customers")
        .unwrap()
        .args(["--connect", &addr, "--orders", "12", "--seed", "4"])
        .args(["--time-scale", "100", "--json"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = Workload::generate_scaled(Preset::LunchRush, 12, 4, 100.0)
        .expected_checksum();
    assert_eq!(v["checksum"], expected.to_string());
    assert_eq!(v["served"], 12);
}

#[test]
fn customers_refuse_a_door_nobody_opens() {
    // A port that was free a moment ago: nobody listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::cargo_bin("customers")
        .unwrap()
        .args(["--connect", &port.to_string(), "--orders", "3"])
        .args(["--time-scale", "100"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("3 orders left without a plate"), "{stderr}");
    assert!(stderr.contains("could not connect"), "{stderr}");
}

/// The children of `pid`'s main thread (Linux).
#[cfg(target_os = "linux")]
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether `pid` is still running (not gone, not a zombie).
#[cfg(target_os = "linux")]
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim()
            .starts_with('Z')
    })
}

/// Starts `sequential` on a night that lasts many seconds and waits until
/// its customers' process is up; returns both.
#[cfg(target_os = "linux")]
fn a_long_night(json: bool) -> (std::process::Child, u32) {
    use std::process::Stdio;
    let mut command =
        std::process::Command::new(env!("CARGO_BIN_EXE_sequential"));
    command
        .args(["--preset", "lunch-rush", "--time-scale", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if json {
        command.arg("--json");
    }
    let mut server = command.spawn().unwrap();
    let began = std::time::Instant::now();
    let customers = loop {
        if let Some(&customers) = children_of(server.id()).first() {
            break Some(customers);
        }
        if began.elapsed().as_secs() >= 10 {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let Some(customers) = customers else {
        let _ = server.kill();
        let _ = server.wait();
        panic!("no customers' process within 10 s");
    };
    // Let a few customers in first.
    std::thread::sleep(std::time::Duration::from_millis(800));
    (server, customers)
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_finishes_the_orders_inside_and_says_how_many() {
    use nix::sys::signal::{SIGINT, kill};
    use nix::unistd::Pid;
    let (server, customers) = a_long_night(false);
    let interrupted = std::time::Instant::now();
    kill(Pid::from_raw(server.id() as i32), SIGINT).unwrap();
    let out = server.wait_with_output().unwrap();
    assert!(
        interrupted.elapsed().as_secs() < 5,
        "took {:?}",
        interrupted.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("interrupted    served"), "{text}{stderr}");
    assert!(text.contains("of 500"), "{text}");
    assert!(
        !running(customers),
        "the customers' process outlived the night"
    );
}

/// A terminal's Ctrl-C reaches the whole foreground group, the
/// customers' process included: the night still closes as after a SIGINT
/// to the server alone.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_to_the_whole_group_closes_the_night() {
    restaurant::conformance::check_ctrl_c_to_the_group(env!(
        "CARGO_BIN_EXE_sequential"
    ));
}

/// Orders that cannot finish within the drain are stopped at its end and
/// named: the reference model holds one at a time, the null restaurant
/// every order that walked in.
#[cfg(target_os = "linux")]
#[test]
fn a_drain_that_outlasts_its_deadline_stops_and_names_the_lost() {
    restaurant::conformance::check_a_stopped_drain(env!(
        "CARGO_BIN_EXE_sequential"
    ));
    restaurant::conformance::check_a_stopped_drain(env!(
        "CARGO_BIN_EXE_null-restaurant"
    ));
}

/// A second Ctrl-C does not wait for the drain: the run stops at once
/// and names the orders it leaves in the kitchen.
#[cfg(target_os = "linux")]
#[test]
fn a_second_ctrl_c_stops_at_once_and_names_the_lost() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use nix::sys::signal::{SIGINT, kill};
    use nix::unistd::Pid;

    // Every order simmers for minutes: nothing drains by itself.
    let mut server =
        std::process::Command::new(env!("CARGO_BIN_EXE_null-restaurant"))
            .args([
                "--preset",
                "takeout",
                "--orders",
                "100",
                "--time-scale",
                "0.001",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let pid = Pid::from_raw(server.id() as i32);
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    // The first customers walk in at once, then one every 100 ms.
    std::thread::sleep(Duration::from_secs(2));
    kill(pid, SIGINT).unwrap();
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("Ctrl-C again to stop now"), "{first}");
    let again = Instant::now();
    kill(pid, SIGINT).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{first}{rest}");
    // Far under the drain's five seconds, even on a loaded machine.
    assert!(
        again.elapsed() < Duration::from_secs(2),
        "took {:?}: {first}{rest}",
        again.elapsed()
    );
    assert!(
        rest.starts_with("null-restaurant: interrupted again: stopping now; ")
            && rest.contains(" lost: "),
        "{first}{rest}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_customers_die_with_a_killed_server() {
    use nix::sys::signal::{SIGKILL, kill};
    use nix::unistd::Pid;
    let (mut server, customers) = a_long_night(true);
    kill(Pid::from_raw(server.id() as i32), SIGKILL).unwrap();
    let _ = server.wait();
    let began = std::time::Instant::now();
    while running(customers) && began.elapsed().as_secs() < 2 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !running(customers),
        "customers {customers} outlived the server"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_report_that_cannot_be_written_exits_1() {
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sequential"))
        .args(["--orders", "3", "--time-scale", "100", "--json"])
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot write the report"), "{stderr}");
}

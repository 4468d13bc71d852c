//! An accept error is never fatal: out of file descriptors (EMFILE), the
//! server logs it, backs off, and serves again once descriptors are free.

#[cfg(target_os = "linux")]
#[test]
fn running_out_of_descriptors_is_survived() {
    use std::io::{BufRead, BufReader};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Command, Stdio};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use restaurant::conformance::scaled_workload;
    use restaurant::{Preset, customers, verify};

    // A hard limit of 64 descriptors: the server's runtime, its listener
    // and a few dozen connections use them all.
    let mut server = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {} --listen 127.0.0.1:0",
            env!("CARGO_BIN_EXE_concurrency-tokio")
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let door: SocketAddr = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    // Silent customers until the server has no descriptor left: the
    // kernel still completes their handshakes (the backlog), but accept
    // fails with EMFILE.
    let hogs: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(door).ok())
        .collect();
    let began = Instant::now();
    let mut log = String::new();
    while !log.contains("accept failed")
        && began.elapsed() < Duration::from_secs(10)
    {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        log.push_str(&line);
    }
    assert!(
        log.contains("accept failed"),
        "no accept error logged: {log}"
    );
    // Free the descriptors: the silent customers leave.
    drop(hogs);

    let workload = scaled_workload(Preset::LunchRush, 20, 4);
    let night =
        customers::visit(&workload, door, &AtomicBool::new(false), || {});
    let _ = server.kill();
    let _ = server.wait();
    let night = night.unwrap();
    let sum = verify(&workload, &night).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sum, workload.expected_checksum());
}

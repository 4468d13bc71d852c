//! What both benchmarks share: the flagship model's real binary, built in
//! release, run as a reader runs it.

use std::path::PathBuf;
use std::process::Command;

use restaurant::Report;

/// Builds `concurrency-tokio` in release and returns its path. It builds
/// into a target folder of its own: the `cargo bench` that runs this
/// holds the lock on the usual one.
pub fn tokio_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target").join("bench-binaries");
    let status = Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--quiet", "--locked"])
        .args(["-p", "concurrency-tokio"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building concurrency-tokio failed");
    target.join("release").join("concurrency-tokio")
}

/// Runs the binary with `args` and `--json`, and returns its report.
pub fn report(binary: &PathBuf, args: &[&str]) -> Report {
    let out = Command::new(binary)
        .args(args)
        .arg("--json")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

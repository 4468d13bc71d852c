//! The worker's fault hooks (`src/hooks.rs`) are not in a release build:
//! no environment can make a real worker misbehave. Runs under
//! `cargo test --release` only; a debug build has the hooks on purpose.

#![cfg(not(debug_assertions))]

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_parallelism-processes");

#[test]
fn the_release_binary_has_no_fault_hooks() {
    // Not even the names: the code that reads them is not compiled.
    let bytes = std::fs::read(BINARY).expect("the binary reads");
    let name = b"PROCESSES_WORKER_";
    assert!(
        !bytes.windows(name.len()).any(|w| w == name),
        "{BINARY} mentions {}",
        String::from_utf8_lossy(name)
    );
    // And a night with every hook set is served as if none were.
    let output = Command::new(BINARY)
        .args([
            "--orders",
            "20",
            "--time-scale",
            "10",
            "--cooks",
            "2",
            "--json",
        ])
        .env("PROCESSES_WORKER_ABORT_ON", "3")
        .env("PROCESSES_WORKER_GARBLE_ON", "4")
        .env("PROCESSES_WORKER_STARTS", "0")
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

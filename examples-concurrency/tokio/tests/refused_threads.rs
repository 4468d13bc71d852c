//! The binary under `ulimit -u 7` and `8`, a hundred times: whichever
//! thread the OS refuses, in whichever crate, the run ends with exit 1 and
//! the one message naming the refusal, never a hang, an abort or a panic's
//! text. Linux only, and run only as root (the kit says why it skips
//! otherwise).
#![cfg(target_os = "linux")]

#[test]
fn every_refused_thread_ends_the_run_cleanly() {
    restaurant::conformance::check_refused_threads_end_cleanly(env!(
        "CARGO_BIN_EXE_concurrency-tokio"
    ));
}

//! The OS refuses the reference model a thread (`RLIMIT_NPROC`): it starts
//! none, so it serves the night in full. Linux only, and run only as root
//! (the kit says why it skips otherwise).
#![cfg(target_os = "linux")]

#[test]
fn ends_cleanly_when_the_os_refuses_a_thread() {
    restaurant::conformance::check_thread_limit(&restaurant::SEQUENTIAL);
}

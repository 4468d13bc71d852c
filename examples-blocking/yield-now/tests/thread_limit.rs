//! The OS refuses this model a thread (`RLIMIT_NPROC`): it serves the
//! night in full or ends within seconds, naming the refusal; never a hang,
//! a spin or an abort. Linux only, and run only as root (the kit says why
//! it skips otherwise).
#![cfg(target_os = "linux")]

#[test]
fn ends_cleanly_when_the_os_refuses_a_thread() {
    restaurant::conformance::check_thread_limit(&blocking_yield_now::MODEL);
}

//! The pattern, run as a server, stops on SIGINT: see
//! `restaurant::conformance::check_pattern_stops`.

#[cfg(unix)]
#[test]
fn pattern_stops_on_a_signal_with_an_idle_client() {
    restaurant::conformance::check_pattern_stops(
        "tokio-current-thread-pattern",
    );
}

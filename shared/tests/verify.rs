//! Verification catches every kind of wrong night: each negative test
//! breaks one thing and checks that exactly that is named.

use std::time::Duration;

use restaurant::customers::{Night, Visit};
use restaurant::{Preset, VerifyError, Workload, expected_digest, verify};

fn workload() -> Workload {
    Workload::generate_scaled(Preset::LunchRush, 12, 3, 100.0)
}

/// A correct night: every customer walked in and got the right plate.
fn served(workload: &Workload) -> Night {
    let at = |ms| Some(Duration::from_millis(ms));
    Night {
        visits: workload
            .orders()
            .iter()
            .map(|order| Visit {
                walked_in: at(1),
                connected: at(1),
                greeted: at(2),
                ordered: at(2),
                rung: at(3),
                plated: at(4),
                digest: Some(expected_digest(order)),
                trouble: None,
            })
            .collect(),
        interrupted: false,
        cap: 100,
        held_at_cap: 0,
        cpu: None,
        stamps: restaurant::customers::Stamps::Kernel,
        opened_at: std::time::SystemTime::now(),
    }
}

fn error(workload: &Workload, night: &Night) -> VerifyError {
    verify(workload, night).expect_err("verification should fail")
}

#[test]
fn a_correct_night_passes_with_the_expected_checksum() {
    let w = workload();
    assert_eq!(verify(&w, &served(&w)), Ok(w.expected_checksum()));
}

#[test]
fn an_empty_night_passes() {
    let w = Workload::generate(Preset::Takeout, 0, 1);
    assert_eq!(verify(&w, &served(&w)), Ok(w.expected_checksum()));
}

#[test]
fn a_customer_turned_away_is_named_with_the_reason() {
    let w = workload();
    let mut night = served(&w);
    night.visits[5].digest = None;
    night.visits[5].trouble = Some("turned away: the cook panicked".into());
    let err = error(&w, &night);
    assert_eq!(err.troubled, vec![5]);
    assert!(err.wrong_digest.is_empty() && err.never_came.is_empty());
    let text = err.to_string();
    assert!(text.contains("1 order left without a plate (5)"), "{text}");
    assert!(
        text.contains("order 5: turned away: the cook panicked"),
        "{text}"
    );
}

#[test]
fn a_second_plate_is_trouble() {
    let w = workload();
    let mut night = served(&w);
    night.visits[2].trouble =
        Some("more after the plate: \"PLATE 2 …\"".into());
    assert_eq!(error(&w, &night).troubled, vec![2]);
}

#[test]
fn a_wrong_digest_is_named() {
    let w = workload();
    let mut night = served(&w);
    night.visits[7].digest = Some(12345);
    let err = error(&w, &night);
    assert_eq!(err.wrong_digest, vec![7]);
    assert!(err.troubled.is_empty());
}

#[test]
fn a_customer_who_never_came_is_named_unless_stopped() {
    let w = workload();
    let mut night = served(&w);
    night.visits[11] = Visit::default();
    assert_eq!(error(&w, &night).never_came, vec![11]);
    // Interrupted: those who never came in, or were turned away at the
    // door by closing, are not served, not wrong.
    night.interrupted = true;
    night.visits[10] = Visit {
        walked_in: Some(Duration::from_millis(1)),
        trouble: Some("the restaurant hung up before NEXT".into()),
        ..Visit::default()
    };
    assert!(verify(&w, &night).is_ok());
    // But a wrong plate is wrong, interrupted or not.
    night.visits[0].digest = Some(1);
    assert_eq!(error(&w, &night).wrong_digest, vec![0]);
}

#[test]
fn long_lists_are_cut_short_in_the_message() {
    let w = Workload::generate(Preset::Takeout, 30, 1);
    let mut night = served(&w);
    for visit in &mut night.visits {
        visit.digest = Some(0);
    }
    let text = error(&w, &night).to_string();
    assert!(text.contains("30 orders with a wrong digest"), "{text}");
    assert!(text.contains(", …"), "{text}");
    assert!(!text.contains("29"), "{text}");
}

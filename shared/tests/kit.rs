//! The conformance kit itself fails broken models: a kit that passed
//! everything would prove nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};

use restaurant::wire::{self, Heard, Ticket};
use restaurant::{
    BoxError, Cooks, Model, Plate, Preset, Shift, Step, conformance,
};

/// A one-at-a-time server whose kitchen is `cook`: it gets the stream to
/// answer on, the rung-up ticket and the shift.
fn serve_with(
    listener: TcpListener,
    shift: &Shift,
    cook: fn(&mut TcpStream, &Ticket, &Shift),
) -> Result<(), BoxError> {
    shift.open();
    for stream in listener.incoming() {
        if shift.is_closed() {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(wire::PATIENCE));
        let _ = stream.write_all(wire::NEXT.as_bytes());
        let mut line = String::new();
        let read = BufReader::new(&stream)
            .take(wire::MAX_LINE as u64)
            .read_line(&mut line);
        match wire::heard(read, &line) {
            Heard::Order(mut ticket) => {
                let _ = stream.write_all(ticket.ring_up().as_bytes());
                cook(&mut stream, &ticket, shift);
            }
            Heard::HungUp => {}
            Heard::Refused(why) => {
                let _ = stream.write_all(wire::error_line(&why).as_bytes());
            }
        }
    }
    Ok(())
}

fn cooked(ticket: &Ticket) -> Plate {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    plate
}

/// Never serves order 0: rings it up, then hangs up.
fn loses_an_order(l: TcpListener, _: usize, s: Shift) -> Result<(), BoxError> {
    serve_with(l, &s, |stream, ticket, _| {
        if ticket.id() != 0 {
            let _ = stream.write_all(cooked(ticket).serve().as_bytes());
        }
    })
}

/// Serves every plate twice.
fn serves_twice(l: TcpListener, _: usize, s: Shift) -> Result<(), BoxError> {
    serve_with(l, &s, |stream, ticket, _| {
        let line = cooked(ticket).serve();
        let _ = stream.write_all(format!("{line}{line}").as_bytes());
    })
}

/// Catches the cook's panic and tells nobody.
fn swallows_panics(l: TcpListener, _: usize, s: Shift) -> Result<(), BoxError> {
    serve_with(l, &s, |stream, ticket, _| {
        if let Ok(plate) =
            panic::catch_unwind(AssertUnwindSafe(|| cooked(ticket)))
        {
            let _ = stream.write_all(plate.serve().as_bytes());
        }
    })
}

/// Reports the panic against the wrong order.
fn vague_about_panics(
    l: TcpListener,
    _: usize,
    s: Shift,
) -> Result<(), BoxError> {
    serve_with(l, &s, |stream, ticket, shift| {
        match panic::catch_unwind(AssertUnwindSafe(|| cooked(ticket))) {
            Ok(plate) => {
                let _ = stream.write_all(plate.serve().as_bytes());
            }
            Err(payload) => {
                shift.cook_panicked(u64::MAX, &*payload);
                let _ = stream.write_all(wire::error_line("oops").as_bytes());
            }
        }
    })
}

/// Serves every plate right, but its patience is a read timeout (that of
/// `serve_with`), which starts again with every byte: a customer who
/// drips its line holds the only cashier as long as it drips.
fn times_each_read(l: TcpListener, _: usize, s: Shift) -> Result<(), BoxError> {
    serve_with(l, &s, |stream, ticket, _| {
        let _ = stream.write_all(cooked(ticket).serve().as_bytes());
    })
}

/// Answers a garbage line with silence instead of ERROR.
fn ignores_garbage(l: TcpListener, _: usize, s: Shift) -> Result<(), BoxError> {
    s.open();
    for stream in l.incoming() {
        if s.is_closed() {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        let _ = stream.write_all(wire::NEXT.as_bytes());
        let mut line = String::new();
        let _ = BufReader::new(&stream).read_line(&mut line);
        if let Ok(mut ticket) = wire::parse_order(&line) {
            let _ = stream.write_all(ticket.ring_up().as_bytes());
            let _ = stream.write_all(cooked(&ticket).serve().as_bytes());
        }
    }
    Ok(())
}

fn model(serve: restaurant::cli::Serve) -> Model {
    Model {
        name: "broken",
        about: "a deliberately broken model",
        cooks: Cooks::One,
        waiters: None,
        serve,
    }
}

fn fails(check: impl FnOnce() + panic::UnwindSafe) -> bool {
    panic::catch_unwind(check).is_err()
}

#[test]
fn a_model_that_loses_an_order_fails_the_kit() {
    assert!(fails(|| conformance::check(&model(loses_an_order))));
}

#[test]
fn a_model_that_serves_twice_fails_the_kit() {
    assert!(fails(|| conformance::check(&model(serves_twice))));
}

#[test]
fn a_model_that_swallows_a_panic_fails_the_kit() {
    assert!(fails(|| conformance::check_panic(&model(swallows_panics))));
}

#[test]
fn a_model_that_does_not_name_the_order_fails_the_kit() {
    assert!(fails(|| conformance::check_panic(&model(
        vague_about_panics
    ))));
}

#[test]
fn a_model_that_ignores_garbage_fails_the_kit() {
    assert!(fails(|| conformance::check_rude(&model(ignores_garbage))));
}

#[test]
fn a_model_that_times_each_read_instead_of_the_line_fails_the_kit() {
    let payload = panic::catch_unwind(|| {
        conformance::check_rude(&model(times_each_read))
    })
    .expect_err("a dripping customer held the door");
    let why = restaurant::panic_message(&*payload);
    let check = "a dripping customer never holds the door past the patience";
    assert!(why.contains(check), "{why}");
}

#[test]
fn the_kit_covers_every_preset_seed_size_and_cook_count() {
    let several = Model {
        cooks: Cooks::Cores {
            what: "threads",
            cap: 8,
        },
        ..model(loses_an_order)
    };
    let cases = conformance::cases(&several);
    assert_eq!(cases.len(), Preset::ALL.len() * 2 * 4 * 2);
    let one = conformance::cases(&model(loses_an_order));
    assert_eq!(one.len(), Preset::ALL.len() * 2 * 4);
}

/// Serves like the reference model, but only in a child process of the
/// test binary, as the kit promises: in the test's own process it fails.
#[cfg(target_os = "linux")]
fn only_in_a_child(l: TcpListener, c: usize, s: Shift) -> Result<(), BoxError> {
    let parent = std::os::unix::process::parent_id();
    let parent = std::fs::read_link(format!("/proc/{parent}/exe"))?;
    if parent != std::env::current_exe()? {
        return Err("serve ran in the test's own process".into());
    }
    (restaurant::SEQUENTIAL.serve)(l, c, s)
}

#[cfg(target_os = "linux")]
#[test]
fn the_kit_runs_the_model_in_a_child_process() {
    conformance::check_rude(&model(only_in_a_child));
}

/// The child that runs a test's second check replays the first one's
/// outcome, so the test takes the same path to it as it did here; were it
/// to take another, it would not reach the check, the kit would run it in
/// this process, and the model would refuse.
#[cfg(target_os = "linux")]
#[test]
fn a_test_may_call_the_kit_again_after_a_failed_check() {
    assert!(fails(|| conformance::check_rude(&model(ignores_garbage))));
    conformance::check_rude(&model(only_in_a_child));
}

/// On a thread that is not the test's, the kit cannot run the test again
/// by name: it runs the check in this process, and still checks.
#[cfg(target_os = "linux")]
#[test]
fn elsewhere_than_on_the_test_thread_the_kit_runs_in_this_process() {
    let outcomes = std::thread::spawn(|| {
        let here = fails(|| conformance::check_rude(&model(only_in_a_child)));
        let served =
            !fails(|| conformance::check_rude(&restaurant::SEQUENTIAL));
        (here, served)
    })
    .join()
    .expect("the thread returns");
    assert_eq!(outcomes, (true, true), "(in this process, served)");
}

//! The reference model: one person does everything, in order.
//!
//! The cashier lets one customer in, takes the order, rings it up, then
//! turns round and cooks it, waiting out every simmer, serves it, and only
//! then lets the next customer in. Nothing overlaps: customers queue at the
//! door for as long as the cooking before them takes. Its checksum is the
//! one every other model must print.
//!
//! ```text
//! cargo run --release -p restaurant --bin sequential
//! ```

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::Instant;

use crate::door::ACCEPT_BACKOFF;
use crate::wire::{self, Heard, Ticket};
use crate::{BoxError, Plate, Shift, Step};

// ANCHOR: serve
/// Serves customers one at a time on the calling thread until closing
/// time. `cooks` is always 1.
pub fn serve(
    listener: TcpListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    assert_eq!(cooks, 1, "the sequential model has exactly one cook");
    shift.open();
    // `incoming` blocks in `accept`. At closing time the shift knocks on
    // the door once, so the loop wakes up and sees it is time to stop.
    for stream in listener.incoming() {
        if shift.is_closed() {
            turn_away(stream.ok(), &listener);
            break;
        }
        match stream {
            Ok(stream) => attend(stream, &shift),
            // Out of file descriptors, or a customer who left before being
            // accepted: never fatal to a server. Wait a little, go on.
            Err(e) => {
                eprintln!("sequential: accept failed: {e}; retrying");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
    Ok(())
}

/// At closing time, answers `ERROR closing` to the customer just accepted
/// and to those still queued at the door, rather than a bare close (a
/// customer who heard nothing cannot tell closing from a crash). At most
/// a backlog's worth: a flood of newcomers cannot keep the door open.
fn turn_away(accepted: Option<TcpStream>, listener: &TcpListener) {
    let closing = wire::error_line("closing");
    // Their write errors are theirs: they may have left already (the
    // shift's own knock has).
    let mut tell = |mut stream: TcpStream| {
        let _ = stream.write_all(closing.as_bytes());
    };
    accepted.into_iter().for_each(&mut tell);
    // Only those already queued: `accept` must not wait for more.
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    for _ in 0..crate::door::BACKLOG {
        match listener.accept() {
            Ok((stream, _)) => tell(stream),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // One who left before being accepted: on to the next.
            Err(_) => {}
        }
    }
}

/// Greets one customer, takes the order, cooks it and serves it.
fn attend(mut stream: TcpStream, shift: &Shift) {
    // A customer who hangs up mid-way costs only their own order: write
    // errors are theirs, so they are ignored.
    let _ = (|| -> std::io::Result<()> {
        stream.write_all(wire::NEXT.as_bytes())?;
        // The customer has PATIENCE from NEXT to say the whole line,
        // however slowly it comes: a deadline for the line, not for each
        // read, so a silent or dripping customer holds the only person no
        // longer.
        let deadline = Instant::now() + wire::PATIENCE;
        let mut ticket = match wire::read_order_line(&stream, deadline) {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                return stream.write_all(wire::error_line(&why).as_bytes());
            }
        };
        stream.write_all(ticket.ring_up().as_bytes())?;
        // The kitchen: the same person cooks it. A panic is caught here so
        // it can be reported with the order it happened in.
        match panic::catch_unwind(AssertUnwindSafe(|| cook(&ticket))) {
            Ok(plate) => stream.write_all(plate.as_bytes()),
            Err(payload) => {
                shift.cook_panicked(ticket.id(), &*payload);
                stream
                    .write_all(wire::error_line("the cook panicked").as_bytes())
            }
        }
    })();
}

fn cook(ticket: &Ticket) -> String {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // Blocks the only thread: nothing else happens meanwhile.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    plate.serve()
}
// ANCHOR_END: serve

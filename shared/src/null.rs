//! The null restaurant: the yardstick's own floor.
//!
//! It speaks the wire like any model, but its kitchen does nothing: it
//! greets at once, rings up and computes each plate's digest without
//! chopping (the rule in [`crate::kernel`]), and only sleeps through each
//! simmer, so as many connections stay open as against a real model. What
//! the customers measure against it is what they cannot tell apart from
//! zero: their own delays, the loopback's, the scheduler's. `compare`
//! runs it on every preset, in every round, and prints its counter wait
//! and arrival lag as the *floor*: no model can be told apart below it.
//!
//! ```text
//! cargo run --release -p restaurant --bin null-restaurant
//! ```

use std::io;
use std::net::TcpListener as StdListener;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

use crate::door::ACCEPT_BACKOFF;
use crate::wire::{self, Heard, Ticket};
use crate::workload::digest_without_chopping;
use crate::{BoxError, Shift, Step};

/// Serves customers on one thread until closing time, cooking nothing.
/// `cooks` is always 1.
pub fn serve(
    listener: StdListener,
    cooks: usize,
    shift: Shift,
) -> Result<(), BoxError> {
    assert_eq!(cooks, 1, "the null restaurant has no kitchen to staff");
    // One thread is plenty for a kitchen that never chops, and leaves the
    // other core to the customers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(door(listener, shift))
}

async fn door(listener: StdListener, shift: Shift) -> Result<(), BoxError> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    shift.open();
    let mut customers = JoinSet::new();
    loop {
        tokio::select! {
            () = shift.closed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    customers.spawn(attend(stream));
                }
                Err(e) => {
                    eprintln!("null-restaurant: accept failed: {e}");
                    sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = customers.join_next(), if !customers.is_empty() => {}
        }
    }
    drop(listener);
    while customers.join_next().await.is_some() {}
    Ok(())
}

async fn attend(mut stream: TcpStream) {
    // A customer who hangs up costs only their own order.
    let _ = async {
        stream.write_all(wire::NEXT.as_bytes()).await?;
        let mut line = String::new();
        // The whole line within the patience; the reader (and its
        // buffer) is gone before the simmers.
        let read = {
            let mut reader =
                BufReader::with_capacity(wire::MAX_LINE, &mut stream)
                    .take(wire::MAX_LINE as u64);
            timeout(wire::PATIENCE, reader.read_line(&mut line))
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
        };
        let ticket = match wire::heard(read, &line) {
            Heard::Order(ticket) => ticket,
            Heard::HungUp => return Ok(()),
            Heard::Refused(why) => {
                return stream
                    .write_all(wire::error_line(&why).as_bytes())
                    .await;
            }
        };
        stream
            .write_all(wire::rung_line(ticket.id).as_bytes())
            .await?;
        // In the kitchen, as a stopped drain counts it, until plated.
        crate::plate::entered_kitchen(ticket.id);
        for step in ticket.steps() {
            if let Step::Simmer(d) = *step {
                sleep(d).await;
            }
        }
        crate::plate::left_kitchen(ticket.id);
        stream.write_all(plate_for(&ticket).as_bytes()).await
    }
    .await;
}

/// The line a cook would serve for `ticket` (`PLATE <id> <digest>`),
/// computed without chopping: the digest jumps the kernel's generator
/// instead of running it.
pub fn plate_for(ticket: &Ticket) -> String {
    let digest = digest_without_chopping(ticket.start, ticket.steps());
    wire::plate_line(ticket.id, digest)
}

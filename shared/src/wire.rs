//! The wire: what a customer and the restaurant say to each other.
//!
//! Text, one line each way, each ending in a single `\n` (no `\r`):
//!
//! ```text
//! restaurant → customer   NEXT                      greeted: someone attends
//! customer → restaurant   ORDER <id> <dish> <start-hex16> <step> <step> …
//!                         step = c<units> (chop) | s<micros> (simmer)
//! restaurant → customer   RUNG <id>                 rung up
//!                         PLATE <id> <digest-hex16> then the restaurant closes
//!                         ERROR <reason>            then the restaurant closes
//! ```
//!
//! Every number is plain decimal (`0`, or digits without a leading zero
//! or a sign) and every hex field is 16 lower-case digits, so each value
//! has exactly one spelling and `RUNG` and `PLATE` echo the id exactly as
//! the customer said it. [`parse_order`] and [`parse_reply`] accept
//! nothing else; the book's workload chapter states the same rules, and
//! `shared/tests/wire_spec.rs` pins each one.
//!
//! The order line carries all a cook needs: the state the digest starts
//! from and the recipe, simmers already scaled. The digest is computed by
//! the rule in [`crate::kernel`]'s documentation, so a server in any
//! language can be measured by the same customers.

use std::error::Error;
use std::fmt::{self, Write};
use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::recipe::{Step, Work};
use crate::trace::Span;

/// The longest line either side accepts, `\n` included. An order of the
/// menu is well under 200 bytes; a longer line is refused with `ERROR`.
pub const MAX_LINE: usize = 1024;

/// The most steps an order may have.
pub const MAX_STEPS: usize = 64;

/// The longest chop an order may ask for: ten million units, about ten
/// seconds of one core.
pub const MAX_CHOP: u32 = 10_000_000;

/// The longest simmer an order may ask for: an hour.
pub const MAX_SIMMER: Duration = Duration::from_secs(3600);

/// How long a restaurant waits for a greeted customer's order line,
/// counted from `NEXT`.
///
/// A line whose `\n` reaches the server within `PATIENCE` of `NEXT` must
/// be served, however late the server gets round to reading it: what
/// counts is what the kernel had received, not when it was read. A line
/// still incomplete after `PATIENCE` may be refused, with `ERROR no order
/// within 2 s of NEXT` and a close. Every model times the whole line from
/// `NEXT`: the async ones with a timeout around the read, the ones that
/// read from a blocking socket with [`read_order_line`], which shrinks the
/// socket's read timeout to what is left of the deadline before each read
/// (a read timeout alone restarts with every read that returns bytes, so
/// a customer who drips a byte a second would hold a cashier as long as it
/// drips). A customer of the presets says its line at once; this bounds
/// what a silent or dripping connection costs a cashier who listens to one
/// customer at a time.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// The greeting, as sent.
pub const NEXT: &str = "NEXT\n";

/// An order as the restaurant receives it: parsed from the customer's line,
/// rung up by the cashier, then cooked into a [`crate::Plate`]. It
/// serialises (serde), so a model can hand it to another process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub(crate) id: u64,
    pub(crate) dish: String,
    pub(crate) start: u64,
    pub(crate) steps: Vec<Step>,
    /// The digest after the ring-up; `None` until the cashier rings it up.
    pub(crate) rung: Option<u64>,
    /// The first chop panics: a test-only fault, set by the server's hidden
    /// `--fault-order` flag, never by anything on the wire.
    pub(crate) fault: bool,
    /// Record spans for a timeline (`--trace`).
    pub(crate) traced: bool,
    /// The ring-up's span, when traced.
    pub(crate) ring_up_span: Option<Span>,
}

impl Ticket {
    /// The order's number, as the customer gave it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The dish's name, as the customer gave it.
    pub fn dish(&self) -> &str {
        &self.dish
    }

    /// The recipe, to be run in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// Why an order line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for WireError {}

fn refuse(why: impl Into<String>) -> WireError {
    WireError(why.into())
}

/// Parses one order line, with or without its final `\n`.
///
/// The line is `ORDER`, the id, the dish, the start and 1 to
/// [`MAX_STEPS`] steps, separated by single spaces, and nothing else: a
/// line longer than [`MAX_LINE`], a `\r` (a CRLF ending included), a word
/// out of place, a number with a sign or a leading zero or out of range,
/// or upper-case hex is refused with a reason to send back in `ERROR`.
/// ([`heard`] decides what a line without its `\n` means on a
/// connection.)
pub fn parse_order(line: &str) -> Result<Ticket, WireError> {
    // A reader that stops at MAX_LINE bytes without finding the end of the
    // line hands over MAX_LINE bytes: that line was too long.
    if line.len() > MAX_LINE
        || (line.len() == MAX_LINE && !line.ends_with('\n'))
    {
        return Err(refuse(format!("line longer than {MAX_LINE} bytes")));
    }
    let line = line.strip_suffix('\n').unwrap_or(line);
    if line.contains('\r') {
        return Err(refuse("the line holds a \\r: end it with \\n alone"));
    }
    let mut words = line.split(' ');
    if words.next() != Some("ORDER") {
        return Err(refuse("expected ORDER <id> <dish> <start> <steps…>"));
    }
    let id = words.next().and_then(decimal).ok_or_else(|| {
        refuse(format!(
            "the order id is not a number 0 to {} in plain decimal",
            u64::MAX
        ))
    })?;
    let dish = words
        .next()
        .filter(|w| {
            (1..=32).contains(&w.len())
                && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        })
        .ok_or_else(|| refuse("the dish is not 1-32 letters a-z or -"))?
        .to_owned();
    let start = words
        .next()
        .and_then(hex16)
        .ok_or_else(|| refuse("the start is not 16 lower-case hex digits"))?;
    let mut steps = Vec::new();
    for word in words {
        if steps.len() == MAX_STEPS {
            return Err(refuse(format!("more than {MAX_STEPS} steps")));
        }
        steps.push(parse_step(word)?);
    }
    if steps.is_empty() {
        return Err(refuse("an order needs at least one step"));
    }
    Ok(Ticket {
        id,
        dish,
        start,
        steps,
        rung: None,
        fault: crate::fault::is_injected(start),
        traced: crate::trace::enabled(),
        ring_up_span: None,
    })
}

/// A number in plain decimal: `0`, or a digit 1-9 and more digits, with
/// no sign, within `u64`. The one spelling of each number, so an id
/// echoed as a number is the id as the customer said it.
fn decimal(word: &str) -> Option<u64> {
    let plain = word.bytes().all(|b| b.is_ascii_digit())
        && (word == "0" || word.starts_with(|c| ('1'..='9').contains(&c)));
    // `parse` alone would also take a `+` and leading zeros; it still
    // refuses a number beyond `u64::MAX`.
    if !plain {
        return None;
    }
    word.parse().ok()
}

/// Exactly 16 lower-case hex digits.
fn hex16(word: &str) -> Option<u64> {
    let hex = word.len() == 16
        && word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    // `from_str_radix` alone would also take a `+` and upper case.
    if !hex {
        return None;
    }
    u64::from_str_radix(word, 16).ok()
}

/// What came of reading a customer's order line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A well-formed order.
    Order(Ticket),
    /// The customer hung up (or the connection broke) before the `\n` of
    /// its order line: nothing to answer.
    HungUp,
    /// A line the restaurant refuses, with the reason for `ERROR`.
    Refused(String),
}

/// Makes sense of one attempt to read an order line into `line`: `read` is
/// what `read_line` (of any runtime) returned, through a reader limited to
/// [`MAX_LINE`] bytes, and `line` holds what it read.
///
/// - The end of the stream before a whole line (nothing, or a part of a
///   line without its `\n`) is [`Heard::HungUp`]: a customer who stops
///   mid-line has not ordered.
/// - A whole line is parsed by [`parse_order`]; [`MAX_LINE`] bytes without
///   a `\n` are refused as too long.
/// - A read that timed out is refused: no order within [`PATIENCE`].
/// - Bytes that are not UTF-8 are refused.
/// - Any other error (a reset) is [`Heard::HungUp`].
///
/// Whatever follows the `\n` is not looked at: the server reads nothing
/// more from the customer.
pub fn heard(read: std::io::Result<usize>, line: &str) -> Heard {
    use std::io::ErrorKind;
    match read {
        Ok(0) => Heard::HungUp,
        // Cut off by the end of the stream, not by the reader's limit.
        Ok(_) if !line.ends_with('\n') && line.len() < MAX_LINE => {
            Heard::HungUp
        }
        Ok(_) => match parse_order(line) {
            Ok(ticket) => Heard::Order(ticket),
            Err(why) => Heard::Refused(why.to_string()),
        },
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut
            ) =>
        {
            Heard::Refused(format!(
                "no order within {} s of NEXT",
                PATIENCE.as_secs()
            ))
        }
        Err(e) if e.kind() == ErrorKind::InvalidData => {
            Heard::Refused("the line is not UTF-8".into())
        }
        Err(_) => Heard::HungUp,
    }
}

/// Reads a greeted customer's order line from a blocking socket, at most
/// [`MAX_LINE`] bytes and until `deadline` for the whole line, and makes
/// sense of it with [`heard`]. The deadline is the caller's to set, as
/// [`PATIENCE`] from `NEXT`:
///
/// ```no_run
/// # use std::{io::Write, net::TcpStream, time::Instant};
/// # use restaurant::wire::{self, Heard};
/// # fn take(mut stream: TcpStream) -> std::io::Result<()> {
/// stream.write_all(wire::NEXT.as_bytes())?;
/// let deadline = Instant::now() + wire::PATIENCE;
/// if let Heard::Order(ticket) = wire::read_order_line(&stream, deadline) {
///     // ring it up
/// }
/// # Ok(()) }
/// ```
///
/// A socket's read timeout bounds one `read` and starts again with the
/// next, so before each read it is set to what is left of the deadline.
/// Once nothing is left, the reads still take what the kernel already
/// holds, without waiting for more: a line received in time counts, even
/// when the server gets round to it late. The socket is left blocking,
/// with whatever read timeout the last read had.
pub fn read_order_line(stream: &TcpStream, deadline: Instant) -> Heard {
    let mut line = String::new();
    // A buffer of the default size, not of MAX_LINE: one that stopped at
    // MAX_LINE would leave the rest of an oversized line unread, and
    // closing a socket with unread bytes sends a reset that can overtake
    // the ERROR.
    let read = BufReader::new(UntilDeadline { stream, deadline })
        .take(MAX_LINE as u64)
        .read_line(&mut line);
    heard(read, &line)
}

/// A blocking socket read until a deadline: see [`read_order_line`].
struct UntilDeadline<'s> {
    stream: &'s TcpStream,
    deadline: Instant,
}

impl Read for UntilDeadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut stream = self.stream;
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Only what has arrived: a read that would wait fails with
            // `WouldBlock`, which `heard` refuses as out of patience.
            stream.set_nonblocking(true)?;
            let read = stream.read(buf);
            stream.set_nonblocking(false)?;
            return read;
        }
        // Never zero here: `set_read_timeout` refuses a zero timeout.
        stream.set_read_timeout(Some(left))?;
        stream.read(buf)
    }
}

fn parse_step(word: &str) -> Result<Step, WireError> {
    match word.split_at_checked(1) {
        Some(("c", n)) => match decimal(n) {
            Some(u) if u <= u64::from(MAX_CHOP) => {
                Ok(Step::Chop(Work(u as u32)))
            }
            _ => Err(refuse(format!(
                "chop {word:?}: units 0 to {MAX_CHOP} in plain decimal"
            ))),
        },
        Some(("s", n)) => match decimal(n).map(Duration::from_micros) {
            Some(d) if d <= MAX_SIMMER => Ok(Step::Simmer(d)),
            _ => Err(refuse(format!(
                "simmer {word:?}: microseconds 0 to {} in plain decimal",
                MAX_SIMMER.as_micros()
            ))),
        },
        _ => Err(refuse(format!(
            "step {word:?} is not c<units> or s<micros>"
        ))),
    }
}

/// The order line a customer says (with its `\n`).
pub fn order_line(id: u64, dish: &str, start: u64, steps: &[Step]) -> String {
    let mut line = format!("ORDER {id} {dish} {start:016x}");
    for step in steps {
        // Writing to a String cannot fail.
        let _ = match step {
            Step::Chop(work) => write!(line, " c{}", work.units()),
            Step::Simmer(d) => write!(line, " s{}", d.as_micros()),
        };
    }
    line.push('\n');
    line
}

/// The line that tells a customer it has been rung up.
pub fn rung_line(id: u64) -> String {
    format!("RUNG {id}\n")
}

/// The line that hands a customer its plate.
pub fn plate_line(id: u64, digest: u64) -> String {
    format!("PLATE {id} {digest:016x}\n")
}

/// The longest reason [`error_line`] sends, in characters.
pub const MAX_REASON: usize = 200;

/// The line that turns a customer away, with the reason on one line: each
/// control character becomes a space, and the reason is cut to
/// [`MAX_REASON`] characters, so the line stays within [`MAX_LINE`].
pub fn error_line(reason: &str) -> String {
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    format!("ERROR {reason}\n")
}

/// What a customer hears, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `NEXT`.
    Next,
    /// `RUNG <id>`.
    Rung(u64),
    /// `PLATE <id> <digest>`.
    Plate(u64, u64),
    /// `ERROR <reason>`.
    Error(String),
}

/// Parses a line from the restaurant, its `\n` included; `None` if it is
/// none of the four, spelt exactly: one `\n` and no `\r` at the end, ids in
/// plain decimal, the digest in 16 lower-case hex digits, `ERROR` followed
/// by a space and a reason without control characters.
pub fn parse_reply(line: &str) -> Option<Reply> {
    let line = line.strip_suffix('\n')?;
    if line == "NEXT" {
        return Some(Reply::Next);
    }
    if let Some(reason) = line.strip_prefix("ERROR ") {
        return (!reason.contains(char::is_control))
            .then(|| Reply::Error(reason.to_owned()));
    }
    let mut words = line.split(' ');
    let (kind, id) = (words.next()?, decimal(words.next()?)?);
    let reply = match kind {
        "RUNG" => Reply::Rung(id),
        "PLATE" => Reply::Plate(id, hex16(words.next()?)?),
        _ => return None,
    };
    words.next().is_none().then_some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_line_reads_back() {
        let steps = [
            Step::Chop(Work(150)),
            Step::Simmer(Duration::from_micros(2500)),
            Step::Chop(Work(0)),
        ];
        let line = order_line(42, "stir-fry", 0xdead_beef, &steps);
        assert_eq!(line, "ORDER 42 stir-fry 00000000deadbeef c150 s2500 c0\n");
        let ticket = parse_order(&line).unwrap();
        assert_eq!(ticket.id(), 42);
        assert_eq!(ticket.dish(), "stir-fry");
        assert_eq!(ticket.start, 0xdead_beef);
        assert_eq!(ticket.steps(), &steps);
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        for (line, why) in [
            ("HELLO", "expected ORDER"),
            ("ORDER x soup 0000000000000000 c1", "id"),
            ("ORDER 1 Soup 0000000000000000 c1", "dish"),
            ("ORDER 1 soup 00 c1", "start"),
            ("ORDER 1 soup 0000000000000000", "at least one step"),
            ("ORDER 1 soup 0000000000000000 x1", "step"),
            ("ORDER 1 soup 0000000000000000 c99999999999", "chop"),
            ("ORDER 1 soup 0000000000000000 s99999999999", "simmer"),
            ("ORDER 1 soup 0000000000000000 c1  c1", "step"),
        ] {
            let err = parse_order(line).unwrap_err().to_string();
            assert!(err.contains(why), "{line:?}: {err}");
        }
        let long =
            format!("ORDER 1 soup 0000000000000000{}", " c1".repeat(400));
        assert!(
            parse_order(&long)
                .unwrap_err()
                .to_string()
                .contains("longer")
        );
        let many = format!("ORDER 1 soup 0000000000000000{}", " c1".repeat(65));
        assert!(
            parse_order(&many)
                .unwrap_err()
                .to_string()
                .contains("steps")
        );
    }

    /// A customer's end and the server's end of one loopback connection.
    fn pair() -> (std::net::TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let customer =
            std::net::TcpStream::connect(listener.local_addr().unwrap())
                .unwrap();
        (customer, listener.accept().unwrap().0)
    }

    #[test]
    fn a_deadline_bounds_the_whole_line_not_each_read() {
        use std::io::Write as _;
        let (mut customer, server) = pair();
        let patience = Duration::from_millis(300);
        let began = Instant::now();
        let dripping = std::thread::spawn(move || {
            // A byte every 100 ms: a read timeout of 300 ms, restarted by
            // each, would wait for the whole line, 3.5 s.
            for byte in b"ORDER 1 soup 0000000000000000 c1\n" {
                if customer.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let heard = read_order_line(&server, began + patience);
        let took = began.elapsed();
        drop(server);
        dripping.join().unwrap();
        assert_eq!(heard, Heard::Refused("no order within 2 s of NEXT".into()));
        // Wide: the bound is the deadline, not the 3.5 s of the drip.
        assert!(took >= patience, "{took:?}");
        assert!(took < patience * 4, "{took:?}");
    }

    #[test]
    fn a_line_received_by_the_deadline_counts_even_read_after_it() {
        use std::io::Write as _;
        let (mut customer, server) = pair();
        let line = "ORDER 1 soup 0000000000000000 c1\n";
        customer.write_all(line.as_bytes()).unwrap();
        // The deadline has passed before the server reads at all; the
        // line is in the kernel, whole, and the read finds it there.
        let deadline = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        match read_order_line(&server, deadline) {
            Heard::Order(ticket) => assert_eq!(ticket.id(), 1),
            other => panic!("{other:?}"),
        }
        // The socket is left blocking: a read with nothing to read waits
        // out its timeout instead of failing at once.
        let wait = Duration::from_millis(50);
        server.set_read_timeout(Some(wait)).unwrap();
        let began = Instant::now();
        assert!((&server).read(&mut [0; 8]).is_err());
        assert!(began.elapsed() >= wait / 2, "{:?}", began.elapsed());
    }

    #[test]
    fn replies_read_back() {
        assert_eq!(parse_reply(NEXT), Some(Reply::Next));
        assert_eq!(parse_reply(&rung_line(7)), Some(Reply::Rung(7)));
        assert_eq!(
            parse_reply(&plate_line(7, 0xabc)),
            Some(Reply::Plate(7, 0xabc))
        );
        assert_eq!(
            parse_reply(&error_line("no\nsuch dish")),
            Some(Reply::Error("no such dish".into()))
        );
        assert_eq!(parse_reply("PLATE 7 12\n"), None);
        assert_eq!(parse_reply("RUNG 7 8\n"), None);
    }
}

//! The wire, rule by rule, as the book's workload chapter states it: each
//! test pins one decided point, first on the parsers every Rust model and
//! the customers share, then on the wire itself against the reference
//! model (`sequential`), the way a server in another language would meet
//! it.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use restaurant::wire::{
    self, Heard, MAX_LINE, MAX_REASON, PATIENCE, Reply, parse_order,
    parse_reply,
};
use restaurant::{Plate, Shift, Step, door, sequential};

const START: &str = "00000000deadbeef";

/// A well-formed order line with `id` as said, and its `\n`.
fn order(id: &str) -> String {
    format!("ORDER {id} soup {START} c3 s100 c2\n")
}

fn refused(line: &str) -> String {
    match parse_order(line) {
        Ok(t) => panic!("{line:?} was accepted as {t:?}"),
        Err(why) => why.to_string(),
    }
}

/// The plate a correct cook makes for `line`.
fn plate_for(line: &str) -> String {
    let mut ticket = parse_order(line).unwrap();
    ticket.ring_up();
    let mut plate = Plate::start(&ticket);
    for step in ticket.steps() {
        if let Step::Chop(work) = *step {
            plate.chop(work);
        }
    }
    plate.serve()
}

// Point 3: line endings and case.

#[test]
fn an_order_line_ends_in_a_single_newline_and_crlf_is_refused() {
    assert!(parse_order(&order("1")).is_ok());
    // Without its `\n`, the line itself still parses: what a missing `\n`
    // means on a connection is `heard`'s to say (below).
    assert!(parse_order(order("1").trim_end()).is_ok());
    let crlf = order("1").replace('\n', "\r\n");
    assert!(refused(&crlf).contains("\\r"), "{}", refused(&crlf));
    assert!(refused(&format!("{}\r", order("1").trim_end())).contains("\\r"));
    assert!(refused(&order("1").replace(" soup", " so\rup")).contains("\\r"));
    // On a connection too: a CRLF line is refused, not taken for an order.
    assert!(matches!(
        wire::heard(Ok(crlf.len()), &crlf),
        Heard::Refused(why) if why.contains("\\r")
    ));
}

#[test]
fn hex_is_lower_case_and_exactly_sixteen_digits() {
    let ticket = parse_order(&order("1")).unwrap();
    assert_eq!(ticket.steps().len(), 3);
    for start in [
        "00000000DEADBEEF",
        "00000000DeadBeef",
        "+0000000deadbeef",
        "0000000deadbeef",
        "000000000deadbeef",
        "0x000000deadbeef",
        "00000000deadbeeg",
    ] {
        let line = order("1").replace(START, start);
        assert!(refused(&line).contains("start"), "{line:?}");
    }
    // The digest of a plate likewise.
    assert_eq!(
        parse_reply("PLATE 1 00000000deadbeef\n"),
        Some(Reply::Plate(1, 0xdead_beef))
    );
    for plate in [
        "PLATE 1 00000000DEADBEEF\n",
        "PLATE 1 +0000000deadbeef\n",
        "PLATE 1 deadbeef\n",
    ] {
        assert_eq!(parse_reply(plate), None, "{plate:?}");
    }
}

#[test]
fn the_words_are_separated_by_single_spaces_and_nothing_else() {
    let good = order("1");
    for bad in [
        good.replace("ORDER", "order"),
        format!(" {good}"),
        good.replace(" c2\n", " c2 \n"),
        good.replace(" soup ", "  soup "),
        good.replace(" soup ", "\tsoup "),
        good.replace(" soup ", " Soup "),
        good.replace(" c2", " C2"),
        good.replace(" c2", " x2"),
        format!("ORDER 1 soup {START}\n"),
    ] {
        let why = refused(&bad);
        assert!(!why.is_empty(), "{bad:?}");
    }
}

// Point 2: the order id, and how it is echoed.

#[test]
fn every_number_has_one_spelling_plain_decimal() {
    for (id, value) in [("0", 0), ("7", 7), ("18446744073709551615", u64::MAX)]
    {
        assert_eq!(parse_order(&order(id)).unwrap().id(), value, "{id}");
    }
    for id in [
        "007",
        "00",
        "+7",
        "-1",
        "7.0",
        "1e3",
        "0x7",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        assert!(refused(&order(id)).contains("order id"), "{id:?}");
    }
    // Steps too: no sign, no leading zero, within their range.
    let with = |steps: &str| format!("ORDER 1 soup {START} {steps}\n");
    for good in ["c0", "s0", "c10000000", "s3600000000"] {
        assert!(parse_order(&with(good)).is_ok(), "{good}");
    }
    for bad in ["c007", "c+1", "s01", "s-1", "c10000001", "s3600000001", "c"] {
        assert!(parse_order(&with(bad)).is_err(), "{bad}");
    }
}

#[test]
fn rung_and_plate_echo_the_id_exactly_as_said() {
    for id in ["0", "7", "1000000", "18446744073709551615"] {
        let line = order(id);
        let mut ticket = parse_order(&line).unwrap();
        assert_eq!(ticket.ring_up(), format!("RUNG {id}\n"));
        let plate = plate_for(&line);
        assert!(plate.starts_with(&format!("PLATE {id} ")), "{plate:?}");
        assert_eq!(plate.len(), "PLATE  \n".len() + id.len() + 16);
    }
    // The customers hold a server to the same spelling.
    assert_eq!(parse_reply("RUNG 7\n"), Some(Reply::Rung(7)));
    for rung in ["RUNG 007\n", "RUNG +7\n", "RUNG 7 \n", "RUNG  7\n"] {
        assert_eq!(parse_reply(rung), None, "{rung:?}");
    }
}

#[test]
fn the_books_example_conversation_holds() {
    // The exchange shown in the book's workload chapter, digest included.
    let said = "ORDER 42 stir-fry 00000000deadbeef c150 s2500 c0\n";
    let mut ticket = parse_order(said).unwrap();
    assert_eq!(ticket.ring_up(), "RUNG 42\n");
    assert_eq!(plate_for(said), "PLATE 42 91f2edc046b28f3a\n");
    let book = include_str!("../../book/src/workload.md");
    for line in [said.trim_end(), "RUNG 42", "PLATE 42 91f2edc046b28f3a"] {
        assert!(book.contains(line), "the book no longer shows {line:?}");
    }
}

// Replies, spelt exactly.

#[test]
fn replies_are_spelt_exactly_with_one_newline() {
    assert_eq!(parse_reply("NEXT\n"), Some(Reply::Next));
    assert_eq!(
        parse_reply("ERROR no such dish\n"),
        Some(Reply::Error("no such dish".into()))
    );
    assert_eq!(parse_reply("ERROR \n"), Some(Reply::Error(String::new())));
    for bad in [
        "NEXT",
        "NEXT\r\n",
        "next\n",
        "NEXT \n",
        "RUNG 7\r\n",
        "RUNG 7",
        "ERROR\n",
        "ERRORoops\n",
        "ERROR a\rb\n",
        "PLATE 7\n",
        "PLATE 7 00000000deadbeef 1\n",
    ] {
        assert_eq!(parse_reply(bad), None, "{bad:?}");
    }
}

#[test]
fn an_error_line_is_one_line_within_max_line() {
    let reason = "é\r\n\t".repeat(500);
    let line = wire::error_line(&reason);
    assert!(line.starts_with("ERROR é   é"), "{line:?}");
    assert_eq!(line.matches('\n').count(), 1);
    assert!(
        line.ends_with('\n') && line.len() <= MAX_LINE,
        "{}",
        line.len()
    );
    match parse_reply(&line) {
        Some(Reply::Error(said)) => {
            assert_eq!(said.chars().count(), MAX_REASON);
        }
        other => panic!("{other:?}"),
    }
}

// Points 1, 4 and 5, as `heard` decides them from what a read returned.

#[test]
fn a_line_cut_off_by_the_end_of_the_stream_is_no_order() {
    let line = order("1");
    assert!(matches!(
        wire::heard(Ok(line.len()), &line),
        Heard::Order(_)
    ));
    let cut = line.trim_end();
    assert_eq!(wire::heard(Ok(cut.len()), cut), Heard::HungUp);
    assert_eq!(wire::heard(Ok(0), ""), Heard::HungUp);
    // A reader that stopped at MAX_LINE bytes without a `\n` was stopped
    // by its limit, not by the end: that line is too long, and refused.
    let long = "x".repeat(MAX_LINE);
    assert!(matches!(
        wire::heard(Ok(MAX_LINE), &long),
        Heard::Refused(why) if why.contains("longer")
    ));
    let short = "x".repeat(MAX_LINE - 1);
    assert_eq!(wire::heard(Ok(MAX_LINE - 1), &short), Heard::HungUp);
}

#[test]
fn a_read_that_timed_out_is_refused_with_the_patience_reason() {
    let expected = format!("no order within {} s of NEXT", PATIENCE.as_secs());
    for kind in [ErrorKind::WouldBlock, ErrorKind::TimedOut] {
        assert_eq!(
            wire::heard(Err(kind.into()), "ORDER 1"),
            Heard::Refused(expected.clone())
        );
    }
    assert_eq!(
        wire::error_line(&expected),
        "ERROR no order within 2 s of NEXT\n"
    );
    assert_eq!(
        wire::heard(Err(ErrorKind::ConnectionReset.into()), ""),
        Heard::HungUp
    );
    assert!(matches!(
        wire::heard(Err(ErrorKind::InvalidData.into()), ""),
        Heard::Refused(why) if why.contains("UTF-8")
    ));
}

// Point 1: a line the kernel received in time counts, even read late.

#[test]
fn a_line_received_in_time_counts_even_if_read_late() {
    let deadline = Duration::from_millis(50);
    let line = order("1");

    // A blocking socket, as the thread models read it: the line arrived
    // before the deadline, the server reads it long after, and takes what
    // the kernel holds without waiting for more.
    let (mut customer, server) = pair();
    let patience = Instant::now() + deadline;
    customer.write_all(line.as_bytes()).unwrap();
    thread::sleep(deadline * 3);
    let heard = wire::read_order_line(&server, patience);
    assert!(matches!(heard, Heard::Order(_)), "{heard:?}");

    // tokio, as the async models read: `timeout` polls the read before
    // its deadline, so a loop that was busy past the deadline still takes
    // the line it had received.
    let (mut customer, server) = pair();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (read, heard) = rt.block_on(async {
        use tokio::io::AsyncBufReadExt;
        use tokio::io::AsyncReadExt as _;
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::TcpStream::from_std(server).unwrap();
        let patience = tokio::time::Instant::now() + deadline;
        customer.write_all(line.as_bytes()).unwrap();
        // The loop is busy (a blocking chop) well past the deadline.
        thread::sleep(deadline * 3);
        let mut heard = String::new();
        let mut reader =
            tokio::io::BufReader::new(server).take(MAX_LINE as u64);
        let read =
            tokio::time::timeout_at(patience, reader.read_line(&mut heard))
                .await
                .unwrap_or_else(|_| Err(ErrorKind::TimedOut.into()));
        (read, heard)
    });
    let said = format!("{read:?} {heard:?}");
    assert!(
        matches!(wire::heard(read, &heard), Heard::Order(_)),
        "{said}"
    );
}

// Point 7: a simmer never sleeps less than asked.

#[test]
fn simmers_never_sleep_less_than_asked() {
    let simmer = Duration::from_micros(1200);
    for _ in 0..20 {
        let t = Instant::now();
        thread::sleep(simmer);
        let slept = t.elapsed();
        assert!(slept >= simmer, "thread::sleep slept {slept:?}");
    }
    // tokio's timer counts whole milliseconds and rounds a deadline up to
    // the next one, so 1.2 ms sleeps until a tick at least 1.2 ms away.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..20 {
            let t = Instant::now();
            tokio::time::sleep(simmer).await;
            let slept = t.elapsed();
            assert!(slept >= simmer, "tokio's sleep slept {slept:?}");
        }
    });
}

// Point 6: the backlog.

#[test]
fn the_door_queues_a_burst_far_beyond_the_default_backlog() {
    // Nobody accepts: every connection must wait in the kernel's queue.
    // With std's default backlog of 128, the 130th would hang in connect
    // (its SYN dropped, retried a second later).
    let listener = door::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(4096);
    let burst = 500.min(somaxconn);
    let mut queued = Vec::with_capacity(burst);
    for i in 0..burst {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(s) => queued.push(s),
            Err(e) => panic!("connection {i} of {burst} not queued: {e}"),
        }
    }
    assert_eq!(queued.len(), burst);
}

// The wire itself, against the reference model.

/// The reference model, serving on a loopback port until dropped.
struct Server {
    door: SocketAddr,
    shift: Shift,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let listener = door::bind(localhost()).unwrap();
        let door = listener.local_addr().unwrap();
        let shift = Shift::new(door);
        let serving = shift.clone();
        let thread = thread::spawn(move || {
            sequential::serve(listener, 1, serving).unwrap();
        });
        assert!(shift.wait_opened(Duration::from_secs(10)));
        Server {
            door,
            shift,
            thread: Some(thread),
        }
    }

    /// A customer, greeted: its stream and a reader on it.
    fn greeted(&self) -> (TcpStream, BufReader<TcpStream>) {
        let stream = TcpStream::connect(self.door).unwrap();
        stream
            .set_read_timeout(Some(PATIENCE + Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        assert_eq!(line(&mut reader), wire::NEXT);
        (stream, reader)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shift.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Two ends of one loopback connection: a customer's and a server's.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(localhost()).unwrap();
    let customer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (customer, listener.accept().unwrap().0)
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

/// What is left to read before the server's close: `Ok` with the bytes at
/// end-of-file, or the error (a reset) that ended it.
fn rest(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).map(|_| rest)
}

#[test]
fn a_refused_line_hears_error_then_the_close() {
    let server = Server::start();
    for bad in [
        order("1").replace('\n', "\r\n"),
        order("1").replace(START, &START.to_uppercase()),
        order("007"),
        order("18446744073709551616"),
    ] {
        let (mut stream, mut reader) = server.greeted();
        stream.write_all(bad.as_bytes()).unwrap();
        let reply = line(&mut reader);
        assert!(
            matches!(parse_reply(&reply), Some(Reply::Error(_))),
            "{bad:?}: {reply:?}"
        );
        assert_eq!(rest(&mut reader).unwrap(), b"", "{bad:?}");
    }
}

#[test]
fn an_order_is_rung_then_plated_then_closed() {
    let server = Server::start();
    let said = order("18446744073709551615");
    let (mut stream, mut reader) = server.greeted();
    stream.write_all(said.as_bytes()).unwrap();
    assert_eq!(line(&mut reader), "RUNG 18446744073709551615\n");
    assert_eq!(line(&mut reader), plate_for(&said));
    assert_eq!(rest(&mut reader).unwrap(), b"");
}

#[test]
fn bytes_after_the_order_line_are_never_read() {
    let server = Server::start();
    let said = order("3");
    let (mut stream, mut reader) = server.greeted();
    // A second order, and garbage, in the same write as the first.
    let extra = format!("{said}{}HELLO\n", order("4"));
    stream.write_all(extra.as_bytes()).unwrap();
    assert_eq!(line(&mut reader), "RUNG 3\n");
    assert_eq!(line(&mut reader), plate_for(&said));
    // Then the close: nothing answers the rest. (Closing with bytes unread
    // makes the server's kernel reset the connection; whether the reset or
    // the end reaches the customer first, nothing more is said.)
    match rest(&mut reader) {
        Ok(rest) => assert_eq!(rest, b""),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    // The server goes on serving.
    let next = order("5");
    let (mut stream, mut reader) = server.greeted();
    stream.write_all(next.as_bytes()).unwrap();
    assert_eq!(line(&mut reader), "RUNG 5\n");
    assert_eq!(line(&mut reader), plate_for(&next));
}

#[test]
fn a_customer_who_stops_mid_line_hears_nothing() {
    let server = Server::start();
    let (mut stream, mut reader) = server.greeted();
    stream.write_all(order("1").trim_end().as_bytes()).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(rest(&mut reader).unwrap(), b"");
}

#[test]
fn a_customer_who_hangs_up_after_ordering_costs_only_its_order() {
    let server = Server::start();
    let (mut stream, reader) = server.greeted();
    let long = format!("ORDER 1 soup {START} c10 s100000 c10\n");
    stream.write_all(long.as_bytes()).unwrap();
    drop((stream, reader));
    let said = order("2");
    let (mut stream, mut reader) = server.greeted();
    stream.write_all(said.as_bytes()).unwrap();
    assert_eq!(line(&mut reader), "RUNG 2\n");
    assert_eq!(line(&mut reader), plate_for(&said));
    assert!(server.shift.faults().is_empty());
}

#[test]
fn a_line_finished_within_patience_is_served() {
    let server = Server::start();
    let said = order("9");
    let (half, other) = said.split_at(12);
    let (mut stream, mut reader) = server.greeted();
    stream.write_all(half.as_bytes()).unwrap();
    thread::sleep(PATIENCE * 3 / 4);
    stream.write_all(other.as_bytes()).unwrap();
    assert_eq!(line(&mut reader), "RUNG 9\n");
    assert_eq!(line(&mut reader), plate_for(&said));
}

#[test]
fn a_silent_customer_hears_error_after_patience_then_the_close() {
    let server = Server::start();
    let greeted = Instant::now();
    let (_stream, mut reader) = server.greeted();
    assert_eq!(line(&mut reader), "ERROR no order within 2 s of NEXT\n");
    let waited = greeted.elapsed();
    assert!(waited >= PATIENCE, "refused after {waited:?}");
    assert!(waited < PATIENCE * 3, "refused only after {waited:?}");
    assert_eq!(rest(&mut reader).unwrap(), b"");
}

#[test]
fn a_customer_still_at_the_door_at_closing_hears_error_closing() {
    let server = Server::start();
    // The only cashier is busy with a long simmer, so the next two wait
    // at the door: one from before closing time, one from after.
    let long = format!("ORDER 1 soup {START} s1500000\n");
    let (mut busy, mut plated) = server.greeted();
    busy.write_all(long.as_bytes()).unwrap();
    assert_eq!(line(&mut plated), "RUNG 1\n");
    let at_the_door = || {
        let stream = TcpStream::connect(server.door).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        BufReader::new(stream)
    };
    let mut before = at_the_door();
    server.shift.close();
    let mut after = at_the_door();
    // The order inside is served all the same.
    assert_eq!(line(&mut plated), plate_for(&long));
    for (who, reader) in [("before", &mut before), ("after", &mut after)] {
        assert_eq!(line(reader), "ERROR closing\n", "{who}");
        assert_eq!(rest(reader).unwrap(), b"", "{who}");
    }
}

// Point 8: what the customers alone cannot see.

#[test]
fn customers_alone_leave_the_servers_cost_empty() {
    let server = Server::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_customers"))
        .args(["--connect", &server.door.to_string(), "--orders", "6"])
        .args(["--time-scale", "100", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["served"], 6);
    for unseen in ["cpu_s", "peak_pss_bytes", "peak_threads"] {
        assert!(v[unseen].is_null(), "{unseen}: {}", v[unseen]);
    }
    assert_eq!(v["cooks"], 0);
    // What the customers do see is all there.
    for seen in ["customers_cpu_s", "counter_wait", "order_latency"] {
        assert!(!v[seen].is_null(), "{seen}");
    }
}

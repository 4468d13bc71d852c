//! The bound, seen from a customer's side: with the only cook busy and the
//! rail full, the cashier is stuck handing over a ticket, and the next
//! customer is not even greeted until the cook takes one. (An unbounded
//! rail, as in `thread-pool`, greets that customer at once.)

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use parallelism_crossbeam::MODEL;
use restaurant::conformance::Server;
use restaurant::wire::{self, Reply};
use restaurant::{Step, Work};

/// How long each order simmers: long beside the wait checked below, so
/// that a loaded machine cannot make the test pass or fail by accident.
const SIMMER: Duration = Duration::from_secs(1);

/// How long the fourth customer must stand ungreeted.
const UNGREETED: Duration = Duration::from_millis(250);

/// A customer's connection, and a reader over it.
struct Customer {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Customer {
    fn walk_in(door: SocketAddr) -> io::Result<Customer> {
        let stream = TcpStream::connect(door)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Customer { stream, reader })
    }

    /// The next line from the restaurant, parsed.
    fn hear(&mut self, within: Duration) -> io::Result<Reply> {
        self.stream.set_read_timeout(Some(within))?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        wire::parse_reply(&line).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{line:?}"))
        })
    }

    /// Says order `id`: one simmer and a tiny chop.
    fn order(&mut self, id: u64) -> io::Result<()> {
        let steps = [Step::Simmer(SIMMER), Step::Chop(Work(1))];
        let line = wire::order_line(id, "soup", id, &steps);
        self.stream.write_all(line.as_bytes())
    }
}

#[test]
fn a_full_rail_keeps_the_next_customer_at_the_door() {
    let server = Server::start(&MODEL, 1).expect("the model opens");
    let door = server.door();
    let long = Duration::from_secs(10);

    // One for the cook, one on the rail (it holds one ticket per cook),
    // and one the cashier holds while it waits for room on the rail.
    let mut seated = Vec::new();
    for id in 0..3 {
        let mut customer = Customer::walk_in(door).unwrap();
        assert_eq!(customer.hear(long).unwrap(), Reply::Next);
        customer.order(id).unwrap();
        assert_eq!(customer.hear(long).unwrap(), Reply::Rung(id));
        seated.push(customer);
    }

    // The fourth waits at the door while the first order simmers...
    let mut fourth = Customer::walk_in(door).unwrap();
    match fourth.hear(UNGREETED) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        heard => panic!("greeted with a full rail: {heard:?}"),
    }
    // ...and is greeted once the cook takes the next ticket.
    assert_eq!(fourth.hear(long).unwrap(), Reply::Next);
    fourth.order(3).unwrap();
    assert_eq!(fourth.hear(long).unwrap(), Reply::Rung(3));
    seated.push(fourth);

    for (id, mut customer) in (0..).zip(seated) {
        match customer.hear(long).unwrap() {
            Reply::Plate(plate, _) => assert_eq!(plate, id),
            other => panic!("order {id}: {other:?}"),
        }
    }
    server.finish().expect("the model closes");
}

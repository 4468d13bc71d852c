//! The restaurant: the workload every example serves, and its yardsticks.
//!
//! This crate is the *domain* only. It knows what an order is, how to chop
//! (deterministic CPU work) and how long to simmer (a wait), what the
//! customers and the restaurant say to each other ([`wire`]), how the
//! customers walk in and time what they see ([`customers`]), how to verify
//! a night and how to report it. It holds no concurrency of a model's: the
//! accept loop, the hand-off, the cooks, the waiting and the shutdown stand
//! in full in each example crate, which is the point of comparing them.
//!
//! A model is a function
//! `fn serve(listener: TcpListener, cooks: usize, shift: Shift) -> Result<(), BoxError>`
//! that accepts customers until closing time. For each customer it sends
//! [`wire::NEXT`], reads one order line, parses it into a [`wire::Ticket`],
//! rings it up ([`wire::Ticket::ring_up`], whose line it sends back), hands
//! it to a cook, and sends the plate's line when the cook is done. A cook
//! runs:
//!
//! ```
//! use restaurant::{Plate, Step, wire::Ticket};
//!
//! fn cook(ticket: &Ticket) -> String {
//!     let mut plate = Plate::start(ticket);
//!     for step in ticket.steps() {
//!         match *step {
//!             Step::Chop(work) => plate.chop(work), // CPU work
//!             Step::Simmer(d) => std::thread::sleep(d), // a wait
//!         }
//!     }
//!     plate.serve() // the line for the customer: PLATE <id> <digest>
//! }
//! ```
//!
//! [`cli::main`] turns a model into a program with the shared command line;
//! [`conformance`] is the kit every model's tests call.

pub mod child;
pub mod cli;
pub mod clock;
pub mod conformance;
pub mod customers;
pub mod door;
pub mod fault;
pub mod kernel;
pub mod limits;
pub mod null;
mod plate;
pub mod probe;
mod recipe;
pub mod report;
pub mod sequential;
pub mod timeline;
pub mod trace;
mod verify;
pub mod wire;
mod workload;

pub use cli::{Cooks, Model};
pub use clock::Clock;
pub use door::Shift;
pub use fault::{BoxError, CookPanicked, panic_message};
pub use plate::{Plate, served};
pub use recipe::{Step, Work};
pub use report::Report;
pub use verify::{VerifyError, verify};
pub use workload::{
    Checksum, MAX_ORDERS, NOMINAL_UNIT, Order, Preset, RING_UP, Workload,
    expected_digest,
};

/// The reference model, as its binary and its tests see it.
pub const SEQUENTIAL: Model = Model {
    name: "sequential",
    about: "One person does everything in order: the baseline and the \
            checksum every model must match.",
    cooks: Cooks::One,
    waiters: None,
    serve: sequential::serve,
};

/// The null restaurant, the yardstick's floor: it answers every order
/// with the right digest without chopping (see [`null`]).
pub const NULL_RESTAURANT: Model = Model {
    name: "null-restaurant",
    about: "Answers every order with the right digest without chopping, \
            and sleeps through each simmer: the customers' own floor.",
    cooks: Cooks::One,
    waiters: None,
    serve: null::serve,
};

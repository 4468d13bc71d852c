//! The restaurant: the workload every example serves, and its yardsticks.
//!
//! This crate is the *domain* only. It knows what an order is, how to chop
//! (deterministic CPU work) and how long to simmer (a wait), what a plate
//! proves, how to verify a night's plates and how to report them. It holds
//! no concurrency: the cashier loop, the hand-off, the cooks, the waiting
//! and the shutdown stand in full in each example crate, which is the point
//! of comparing them.
//!
//! A model is a function
//! `fn serve(orders: Vec<Order>, cooks: usize) -> Result<Vec<Plate>, BoxError>`
//! that, for each order in turn, waits for its arrival, calls
//! [`Order::ring_up`] on the one cashier, hands it to a cook, and returns
//! every plate. A cook runs:
//!
//! ```
//! use restaurant::{Clock, Order, Plate, Step};
//!
//! fn cook(order: &Order, clock: Clock) -> Plate {
//!     let mut plate = Plate::start(order, &clock);
//!     for step in order.steps() {
//!         match *step {
//!             Step::Chop(work) => plate.chop(work), // CPU work
//!             Step::Simmer(d) => std::thread::sleep(d), // a wait
//!         }
//!     }
//!     plate.serve(&clock)
//! }
//! ```
//!
//! [`cli::main`] turns a model into a program with the shared command line;
//! [`conformance`] is the kit every model's tests call.

pub mod cli;
pub mod conformance;
mod fault;
pub mod kernel;
mod plate;
pub mod probe;
pub mod report;
pub mod sequential;
pub mod trace;
mod verify;
mod workload;

pub use cli::{Cooks, Model};
pub use fault::{BoxError, CookPanicked, panic_message};
pub use plate::{Clock, Plate};
pub use report::Report;
pub use verify::{VerifyError, verify};
pub use workload::{
    Checksum, MAX_ORDERS, Order, Preset, RING_UP, Step, Work, Workload,
    expected_digest,
};

/// The reference model, as its binary and its tests see it.
pub const SEQUENTIAL: Model = Model {
    name: "sequential",
    about: "One person does everything in order: the baseline and the \
            checksum every model must match.",
    cooks: Cooks::One,
    serve: sequential::serve,
};

//! `customers`: one night of customers against any restaurant, on this
//! machine or another.
//!
//! ```text
//! cargo run --release -p concurrency-tokio -- --listen 127.0.0.1:7878
//! cargo run --release -p restaurant --bin customers -- \
//!     --connect 127.0.0.1:7878 --preset lunch-rush
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    restaurant::cli::customers_main()
}

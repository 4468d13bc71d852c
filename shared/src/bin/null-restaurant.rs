//! `null-restaurant`: the yardstick's floor (see `restaurant::null`).

use std::process::ExitCode;

fn main() -> ExitCode {
    restaurant::cli::main(&restaurant::NULL_RESTAURANT)
}

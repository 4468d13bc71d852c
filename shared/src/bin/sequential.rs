//! `sequential`: the reference model (see `restaurant::sequential`).

use std::process::ExitCode;

fn main() -> ExitCode {
    restaurant::cli::main(&restaurant::SEQUENTIAL)
}

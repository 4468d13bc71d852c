//! The `parallelism-rayon` binary: the model in `lib.rs`, run through the
//! shared command line (`--help` lists the flags).

use std::process::ExitCode;

fn main() -> ExitCode {
    restaurant::cli::main(&parallelism_rayon::MODEL)
}

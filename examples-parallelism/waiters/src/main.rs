//! The `parallelism-waiters` binary: the model in `lib.rs`, run through
//! the shared command line (`--help` lists the flags, `--waiters` among
//! them).

use std::process::ExitCode;

fn main() -> ExitCode {
    restaurant::cli::main(&parallelism_waiters::MODEL)
}

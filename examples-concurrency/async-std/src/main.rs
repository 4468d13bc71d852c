//! The `concurrency-async-std` binary: the model in `lib.rs`, run through
//! the shared command line (`--help` lists the flags). async-std is
//! discontinued (RUSTSEC-2025-0052); this is kept only to compare.

use std::process::ExitCode;

fn main() -> ExitCode {
    restaurant::cli::main(&concurrency_async_std::MODEL)
}

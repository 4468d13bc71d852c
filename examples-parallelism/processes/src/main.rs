//! The `parallelism-processes` binary: the model in `lib.rs`, run through
//! the shared command line (`--help` lists the flags); and the same
//! executable in the worker role, when the model starts it as a cook.

use std::process::ExitCode;

fn main() -> ExitCode {
    // The worker role is chosen by a first argument rather than an
    // environment variable: it shows in `ps` beside each worker
    // (`parallelism-processes --worker`), nothing a worker starts inherits
    // it, and a variable left exported in a shell cannot turn a reader's
    // run into a worker silently waiting on stdin. It is checked before the
    // shared command line sees the arguments, so `--help` does not list it.
    let role = std::env::args_os().nth(1);
    if role.is_some_and(|arg| arg == parallelism_processes::WORKER_ARG) {
        return parallelism_processes::worker();
    }
    restaurant::cli::main(&parallelism_processes::MODEL)
}

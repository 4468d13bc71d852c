//! The `parallelism-redis-streams` binary: the model in `lib.rs`, run
//! through the shared command line (`--help` lists its flags), with one
//! flag of its own, `--redis URL`; and the same executable in the cook
//! role (`--cook --redis URL [--night ID]`), whether its server started it
//! or a person did, on any machine.

use std::ffi::OsString;
use std::process::ExitCode;

use parallelism_redis_streams::{
    COOK_ARG, MODEL, NIGHT_ARG, Night, PARENT_PIPE_ARG, REDIS_ARG, TONIGHT,
    broker, cook_main,
};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let (url, rest) = match take_redis(&args) {
        Ok(split) => split,
        Err(why) => return usage(&why),
    };
    // The cook role is chosen by an argument rather than an environment
    // variable: it shows in `ps` beside each cook, and a variable left
    // exported in a shell cannot turn a reader's run into a cook.
    if rest.iter().any(|arg| arg == COOK_ARG) {
        return cook(url, &rest);
    }
    // The server. The shared command line checks the other arguments
    // first (it exits 2 naming a bad one, 0 after --help), so that a
    // missing redis-server is not reported in place of a typo.
    let run = restaurant::cli::parse_from(&MODEL, &rest);
    if url.is_none() && !run.args.customers && broker::find().is_none() {
        return usage(&format!(
            "{} is not on the PATH, and no --redis URL was given: {}",
            broker::PROGRAM,
            broker::INSTALL
        ));
    }
    if let Some(url) = url {
        parallelism_redis_streams::use_redis(url);
    }
    restaurant::cli::main_from(&MODEL, rest)
}

/// Takes `--redis URL` (or `--redis=URL`) out of `args`: the URL, checked
/// as a Redis URL, and the other arguments.
fn take_redis(
    args: &[OsString],
) -> Result<(Option<String>, Vec<OsString>), String> {
    let mut url = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = if arg == REDIS_ARG {
            args.next().cloned()
        } else if let Some(value) = arg
            .to_str()
            .and_then(|a| a.strip_prefix(REDIS_ARG)?.strip_prefix('='))
        {
            Some(value.into())
        } else {
            rest.push(arg.clone());
            continue;
        };
        let value = value.and_then(|v| v.into_string().ok()).ok_or(format!(
            "{REDIS_ARG} needs a URL, such as redis://HOST:6379"
        ))?;
        if let Err(e) = redis::Client::open(value.as_str()) {
            return Err(format!(
                "invalid value '{value}' for '{REDIS_ARG} <URL>': {e} \
                 (expected redis://[:PASSWORD@]HOST[:PORT][/DB])"
            ));
        }
        url = Some(value);
    }
    Ok((url, rest))
}

/// The cook role: `--cook --redis URL [--night ID]`.
fn cook(url: Option<String>, args: &[OsString]) -> ExitCode {
    let mut parent_pipe = false;
    let mut night = None;
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let inline = arg
            .to_str()
            .and_then(|a| a.strip_prefix(NIGHT_ARG)?.strip_prefix('='));
        if arg == COOK_ARG {
        } else if arg == PARENT_PIPE_ARG {
            parent_pipe = true;
        } else if arg == NIGHT_ARG || inline.is_some() {
            let value = match inline {
                Some(value) => Some(value.to_owned()),
                None => args.next().and_then(|v| v.to_str()).map(Into::into),
            };
            match value.as_deref().and_then(Night::parse) {
                Some(given) => night = Some(given),
                None => {
                    return usage(&format!(
                        "invalid value '{}' for '{NIGHT_ARG} <ID>': a night \
                         is 16 hex digits, as `redis-cli GET {TONIGHT}` \
                         prints it",
                        value.unwrap_or_default()
                    ));
                }
            }
        } else if arg == "--help" || arg == "-h" {
            println!(
                "{name} {COOK_ARG} {REDIS_ARG} URL [{NIGHT_ARG} ID]\n\n\
                 Starts a cook that joins the kitchen at the Redis at URL \
                 (redis://HOST:PORT), on this machine or any other: it \
                 takes tickets from a night's stream, cooks them and \
                 publishes the plates, until Ctrl-C. Without {NIGHT_ARG}, \
                 it serves the night opened last on that Redis (the one \
                 {TONIGHT} names), then each night after it; with \
                 {NIGHT_ARG} ID, that night alone, leaving when it closes. \
                 A ticket it holds when stopped goes to another cook \
                 after {idle:?}.",
                name = MODEL.name,
                idle = parallelism_redis_streams::CLAIM_IDLE,
            );
            return ExitCode::SUCCESS;
        } else {
            return usage(&format!(
                "unexpected argument '{}' for a cook: a cook takes {REDIS_ARG} \
                 URL and {NIGHT_ARG} ID only",
                arg.to_string_lossy()
            ));
        }
    }
    match url {
        Some(url) => cook_main(&url, night, parent_pipe),
        None => usage(&format!(
            "a cook needs {REDIS_ARG} URL: the Redis its server uses, such \
             as redis://HOST:6379"
        )),
    }
}

/// Exit status 2, for bad arguments, with `why`.
fn usage(why: &str) -> ExitCode {
    eprintln!("error: {why}\n\nFor more information, try '--help'.");
    ExitCode::from(2)
}

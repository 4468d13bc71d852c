//! The kitchen: the cook processes a server starts and keeps staffed (the
//! crew), and the cook role itself, which the same binary enters with
//! `--cook`, started by its server or by hand on any machine.

use std::io::{self, BufRead, BufReader, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId,
    StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{Commands, Connection, RedisError, RedisResult};
use restaurant::wire::Ticket;
use restaurant::{BoxError, Clock, Plate, Step, panic_message};

use crate::broker::{self, GROUP, MAX_DELIVERIES, Night, connect, retried};
use crate::{MODEL, Order, Outcome, Served, hooks};

/// How long a local cook may take to join the group and say so.
const HIRE_LIMIT: Duration = Duration::from_secs(10);

/// The deadline of each local cook, in two places. At closing: how long
/// a cook may take to leave once its stdin is closed. A cook leaves at
/// once, even mid-chop (its stdin's thread ends the process), so only one
/// that cannot run (stopped with SIGSTOP, or wedged in the kernel) is
/// still there after it: it is killed, and the server says so. And all
/// night: how long a cook may hold a ticket without its heartbeat; one
/// that does is killed too, and its ticket goes to the cook started in
/// its place (`Crew::unstick`), so that a stopped cook nobody else can
/// stand in for does not hold its order, and the night, for ever.
pub const LEAVE_LIMIT: Duration = Duration::from_secs(5);

/// How often a cook started by hand with no night open asks Redis whether
/// one has opened.
const NIGHT_POLL: Duration = Duration::from_millis(100);

// ANCHOR: crew
/// The cook processes this server started. Dropping it kills and reaps
/// every one still running, so no way out of `serve_with` leaves a child
/// behind.
#[derive(Debug)]
pub(crate) struct Crew {
    command: Command,
    cooks: Vec<Hand>,
    /// How many cooks may still be started in place of dead ones.
    spares: usize,
    /// How many were asked for.
    asked: usize,
}

#[derive(Debug)]
struct Hand {
    child: Child,
    /// Closing it tells the cook to leave.
    stdin: Option<ChildStdin>,
    /// Kept open, though read only for READY: a cook that writes to a
    /// closed pipe fails.
    stdout: Option<ChildStdout>,
}

impl Drop for Crew {
    fn drop(&mut self) {
        for hand in &mut self.cooks {
            // SIGKILL, not just closing stdin: a cook in the middle of a
            // long chop would only notice when done.
            let _ = hand.child.kill();
            let _ = hand.child.wait();
        }
    }
}

impl Crew {
    /// Starts `cooks` cooks from `command`, then waits (at most
    /// [`HIRE_LIMIT`]) for each to say it has joined the group.
    pub(crate) fn hire(
        mut command: Command,
        cooks: usize,
    ) -> Result<Crew, BoxError> {
        // stdin: closing time, and the parent's death off Linux. stdout:
        // one line, READY. stderr stays the server's, so a cook's errors
        // reach the terminal.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // On Linux, the kernel kills each cook when the thread that
        // started it ends, so a server killed outright takes its cooks
        // with it, even one in the middle of a long chop.
        restaurant::child::die_with_parent(&mut command);
        let mut crew = Crew {
            command,
            cooks: Vec::with_capacity(cooks),
            spares: 2 * cooks,
            asked: cooks,
        };
        for _ in 0..cooks {
            // If a spawn fails, `?` drops `crew`, which kills the cooks
            // already started.
            crew.start()?;
        }
        // They all start at once; now wait for each one's READY, on a
        // thread, so that a cook that never says it bounds the wait. Each
        // stdout comes back, to be kept open.
        let stdouts: Vec<_> = crew
            .cooks
            .iter_mut()
            .map(|hand| hand.stdout.take())
            .collect();
        let (told, heard) = mpsc::channel();
        thread::Builder::new().name("hire".into()).spawn(move || {
            for mut stdout in stdouts.into_iter().flatten() {
                let mut line = String::new();
                let read = BufReader::new(&mut stdout).read_line(&mut line);
                let ready = read.is_ok() && line == "READY\n";
                if told.send((ready, stdout)).is_err() || !ready {
                    return;
                }
            }
        })?;
        for n in 0..cooks {
            match heard.recv_timeout(HIRE_LIMIT) {
                Ok((true, stdout)) => crew.cooks[n].stdout = Some(stdout),
                Ok((false, _)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "cook {n} ended before it joined the group: is the \
                         cook command this crate's binary?"
                    )
                    .into());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "cook {n} did not join the group within {HIRE_LIMIT:?}"
                    )
                    .into());
                }
            }
        }
        Ok(crew)
    }

    /// Starts one cook.
    fn start(&mut self) -> io::Result<()> {
        let mut child = self.command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.cooks.push(Hand {
            child,
            stdin,
            stdout,
        });
        Ok(())
    }

    /// Reaps the cooks that died and starts others in their place, while
    /// there are spares. Their tickets stay pending in the group until a
    /// cook claims them. `Err` once no local cook is left.
    pub(crate) fn staff(&mut self) -> Result<(), String> {
        let mut died = Vec::new();
        self.cooks.retain_mut(|hand| match hand.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                died.push(format!(
                    "cook (pid {}) ended ({status})",
                    hand.child.id()
                ));
                false
            }
            Err(e) => {
                died.push(format!("cook (pid {}): {e}", hand.child.id()));
                false
            }
        });
        for death in &died {
            eprintln!(
                "{}: {death}; another cook claims its ticket, if it had one",
                MODEL.name
            );
            if self.spares > 0 {
                self.spares -= 1;
                match self.start() {
                    // Its READY goes unread: a line in a pipe's buffer.
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("{}: cannot start a cook: {e}", MODEL.name)
                    }
                }
            }
        }
        if self.asked > 0 && self.cooks.is_empty() {
            return Err(format!(
                "every cook process has died ({})",
                died.join("; ")
            ));
        }
        Ok(())
    }

    /// Kills each local cook that has held a ticket of `night` for
    /// [`LEAVE_LIMIT`] without its heartbeat: stopped (SIGSTOP), or wedged.
    /// Another free cook would have claimed the ticket long before; this
    /// is for when none is free, or none is left: the next [`staff`]
    /// starts a cook in its place, which claims it. A cook that is cooking
    /// beats every quarter of the claim time, and a cook elsewhere is not
    /// ours to kill.
    ///
    /// [`staff`]: Crew::staff
    pub(crate) fn unstick(
        &mut self,
        connection: &mut Connection,
        night: &Night,
    ) -> RedisResult<()> {
        if self.cooks.is_empty() {
            return Ok(());
        }
        // XPENDING's extended form, with IDLE (Redis 6.2): only tickets
        // idle that long; the redis crate has no option for it.
        let idle = LEAVE_LIMIT.as_millis() as u64;
        let stale: StreamPendingCountReply = retried(|| {
            redis::cmd("XPENDING")
                .arg(night.tickets())
                .arg(GROUP)
                .arg("IDLE")
                .arg(idle)
                .arg("-")
                .arg("+")
                .arg(100)
                .query(connection)
        })?;
        for pending in stale.ids {
            let held = self.cooks.iter_mut().find(|hand| {
                pending.consumer == consumer_name(hand.child.id())
            });
            let Some(hand) = held else { continue };
            // SIGKILL reaches a stopped process too; `staff` reaps it.
            if hand.child.kill().is_ok() {
                eprintln!(
                    "{}: cook (pid {}) held ticket {} {LEAVE_LIMIT:?} \
                     without a heartbeat (stopped?): killed; its ticket \
                     goes to another cook",
                    MODEL.name,
                    hand.child.id(),
                    pending.id
                );
            }
        }
        Ok(())
    }

    /// Closing time: closes every cook's stdin, which ends it, and reaps
    /// it. A cook still there [`LEAVE_LIMIT`] later is killed, with a
    /// word on stderr: every plate is served by then, so it costs nothing
    /// but must not hold the night open. A cook that ends badly by itself
    /// is an error.
    pub(crate) fn close(&mut self) -> Result<(), BoxError> {
        for hand in &mut self.cooks {
            hand.stdin = None; // all at once, so they all leave together
        }
        let deadline = Instant::now() + LEAVE_LIMIT;
        for hand in std::mem::take(&mut self.cooks) {
            let Hand { mut child, .. } = hand;
            // std has no wait with a time-out: poll, as the pass does.
            let status = loop {
                if let Some(status) = child.try_wait()? {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                thread::sleep(Duration::from_millis(5));
            };
            let Some(status) = status else {
                let pid = child.id();
                // SIGKILL reaches a stopped process too.
                let _ = child.kill();
                child.wait()?;
                eprintln!(
                    "{}: cook (pid {pid}) had not left {LEAVE_LIMIT:?} after \
                     closing (stopped?): killed; no order was waiting on it",
                    MODEL.name
                );
                continue;
            };
            if !status.success() {
                return Err(format!(
                    "cook (pid {}) ended with {status}",
                    child.id()
                )
                .into());
            }
        }
        Ok(())
    }
}
// ANCHOR_END: crew

// ANCHOR: cook_role
/// The cook role, which `main` enters when it sees [`COOK_ARG`]: cooks
/// tickets of `night` on the Redis at `url`, or, with no night given, of
/// the night [`TONIGHT`] names and every night after it, until killed; a
/// cook its server started (`parent_pipe`) leaves when its stdin ends.
///
/// [`COOK_ARG`]: crate::COOK_ARG
/// [`TONIGHT`]: crate::TONIGHT
pub fn cook_main(
    url: &str,
    night: Option<Night>,
    parent_pipe: bool,
) -> ExitCode {
    match work(url, night, parent_pipe) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors before the cook joined are worded where they happen
            // (`work`); a Redis error after is one of the Redis it cooks
            // for, which the bare error ("unexpected end of file") does
            // not name.
            let redis = e.downcast_ref::<RedisError>();
            let gone = redis
                .is_some_and(|e| e.is_io_error() || e.is_connection_dropped());
            // A cook its server started stays quiet about a Redis gone:
            // the server says so, naming the orders it lost.
            if !(parent_pipe && gone) {
                let pid = std::process::id();
                let what = match redis {
                    Some(_) if gone => {
                        format!("Redis at {url} went away mid-run ({e})")
                    }
                    Some(_) => format!("Redis at {url}: {e}"),
                    None => e.to_string(),
                };
                eprintln!("{} cook (pid {pid}): error: {what}", MODEL.name);
            }
            ExitCode::FAILURE
        }
    }
}

/// Who cook `pid` of this machine is in the group: unique across
/// machines. The server names its own cooks the same way, to find them in
/// the pending list.
pub(crate) fn consumer_name(pid: u32) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("cook-{host}-{pid}")
}

fn work(
    url: &str,
    night: Option<Night>,
    parent_pipe: bool,
) -> Result<(), BoxError> {
    let hooks = hooks::Hooks::from_env();
    let client = redis::Client::open(url)?;
    let reach = |e: RedisError| format!("cannot reach Redis at {url}: {e}");
    let mut connection = connect(&client).map_err(reach)?;
    let me = consumer_name(std::process::id());
    hooks.started("cook", std::process::id())?;
    // Asked once, to fail early and name the Redis: one that cannot be
    // reached, or a server that is not Redis.
    let tonight = broker::tonight(&mut connection).map_err(reach)?;
    let idle = hooks.claim_idle();
    let hand = Arc::new(Mutex::new(None));
    let beat = connect(&client).map_err(reach)?;
    heartbeat(beat, me.clone(), Arc::clone(&hand), idle / 4)?;
    if parent_pipe {
        // The server closes our stdin at closing time, or dies: either
        // way there is nobody left to cook for.
        thread::Builder::new().name("parent".into()).spawn(|| {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            std::process::exit(0);
        })?;
        let mut stdout = io::stdout().lock();
        stdout.write_all(b"READY\n")?;
        stdout.flush()?;
    }
    let follow = night.is_none();
    let mut cook = Cook {
        connection,
        me,
        hand,
        hooks,
        idle,
        night: Night::with_id(0),
        follow,
        say: !parent_pipe,
    };
    let night = match night.or(tonight) {
        Some(night) => night,
        None => {
            cook.say(&format!(
                "no night open at {url} yet: waiting for one; Ctrl-C to \
                 leave"
            ));
            cook.next_night(None)?
        }
    };
    cook.run(night)
}

/// One cook: its connection, its name in the group, the night it cooks
/// for, and the ticket in hand (the key of its stream, and its id), which
/// its heartbeat keeps alive.
struct Cook {
    connection: Connection,
    me: String,
    hand: Arc<Mutex<Option<(String, String)>>>,
    hooks: hooks::Hooks,
    idle: Duration,
    night: Night,
    /// No night was given: serve the night [`crate::TONIGHT`] names, and
    /// move on to the next one.
    follow: bool,
    /// Started by hand: say on stderr which night it joins and leaves.
    say: bool,
}

/// Why a cook stopped serving a night.
enum Ended {
    /// Its streams are gone: the night closed.
    Closed,
    /// [`crate::TONIGHT`] names a newer night (a cook that follows).
    Newer(Night),
}
// ANCHOR_END: cook_role

// ANCHOR: cook_loop
impl Cook {
    /// Serves night after night: the one it was given, then, for a cook
    /// that follows [`crate::TONIGHT`], each night opened after it.
    fn run(&mut self, mut night: Night) -> Result<(), BoxError> {
        loop {
            self.say(&format!(
                "{} joined night {} ({}, group {GROUP}); Ctrl-C to leave \
                 (a ticket in hand goes to another cook)",
                self.me,
                night.name(),
                night.tickets()
            ));
            self.night = night;
            night = match self.serve_night()? {
                Ended::Newer(next) => next,
                Ended::Closed if self.follow => {
                    let closed = self.night.clone();
                    self.next_night(Some(&closed))?
                }
                Ended::Closed => {
                    let name = self.night.name();
                    self.say(&format!("night {name} closed: leaving"));
                    return Ok(());
                }
            };
        }
    }

    /// Waits for [`crate::TONIGHT`] to name a night other than `after`.
    fn next_night(&mut self, after: Option<&Night>) -> RedisResult<Night> {
        loop {
            match broker::tonight(&mut self.connection)? {
                Some(night) if Some(&night) != after => return Ok(night),
                _ => thread::sleep(NIGHT_POLL),
            }
        }
    }

    /// Takes tickets of this night until it closes: first one left idle
    /// by a dead cook, if any (`XAUTOCLAIM`), else a new one
    /// (`XREADGROUP … >`).
    fn serve_night(&mut self) -> Result<Ended, BoxError> {
        let block = (self.idle / 2).as_millis().max(1) as usize;
        let new = StreamReadOptions::default()
            .group(GROUP, &self.me)
            .count(1)
            .block(block);
        let tickets = self.night.tickets().to_owned();
        // XAUTOCLAIM scans the pending entries like SCAN: a cursor, back
        // to 0-0 once it has been round.
        let mut cursor = "0-0".to_owned();
        let mut claimed_at = Instant::now() - self.idle;
        loop {
            if claimed_at.elapsed() >= self.idle / 2 {
                claimed_at = Instant::now();
                // A cook that follows moves on once a newer night opens.
                if self.follow
                    && let Some(next) = broker::tonight(&mut self.connection)?
                    && next != self.night
                {
                    return Ok(Ended::Newer(next));
                }
                let claimed: RedisResult<StreamAutoClaimReply> =
                    self.connection.xautoclaim_options(
                        &tickets,
                        GROUP,
                        &self.me,
                        self.idle.as_millis() as u64,
                        &cursor,
                        StreamAutoClaimOptions::default().count(1),
                    );
                let Some(reply) = open(claimed)? else {
                    return Ok(Ended::Closed);
                };
                cursor = reply.next_stream_id;
                if let Some(entry) = reply.claimed.into_iter().next() {
                    self.take(entry, true)?;
                    continue;
                }
            }
            let read: RedisResult<Option<StreamReadReply>> =
                self.connection.xread_options(&[&tickets], &[">"], &new);
            let Some(reply) = open(read)? else {
                return Ok(Ended::Closed);
            };
            let entries =
                reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
            for entry in entries {
                self.take(entry, false)?;
            }
        }
    }

    /// Says `what` on stderr, if this cook was started by hand, in one
    /// write so that cooks sharing a terminal do not interleave lines.
    fn say(&self, what: &str) {
        if self.say {
            let line = format!("{}: {what}\n", MODEL.name);
            let _ = io::stderr().write_all(line.as_bytes());
        }
    }

    /// Cooks one ticket and publishes its plate; a malformed ticket is
    /// dead-lettered, a ticket delivered too often given up.
    fn take(&mut self, entry: StreamId, claimed: bool) -> Result<(), BoxError> {
        let parsed = entry
            .get::<String>("order")
            .ok_or_else(|| "no field `order`".to_owned())
            .and_then(|json| {
                serde_json::from_str::<Order>(&json)
                    .map_err(|e| format!("not a ticket: {e}"))
            });
        let tickets = self.night.tickets().to_owned();
        let order = match parsed {
            Ok(order) => order,
            Err(why) => {
                // One write, so that cooks sharing a terminal do not
                // interleave their lines.
                let line = format!(
                    "{}: ticket entry {} dead-lettered: {why}\n",
                    MODEL.name, entry.id
                );
                let _ = io::stderr().write_all(line.as_bytes());
                // Dead-lettered and acknowledged at once: never redelivered.
                let mut pipe = broker::dead_letter_pipe(
                    &self.night,
                    &tickets,
                    &entry,
                    &why,
                );
                pipe.atomic();
                self.finish(pipe, &entry.id)?;
                return Ok(());
            }
        };
        if claimed {
            let delivered = self.deliveries(&entry.id)?;
            if delivered > MAX_DELIVERIES {
                let why = format!(
                    "delivered {delivered} times and never finished: its \
                     cooks die on it"
                );
                let mut pipe = broker::dead_letter_pipe(
                    &self.night,
                    &tickets,
                    &entry,
                    &why,
                );
                pipe.atomic();
                let outcome = Outcome::GaveUp { why };
                self.publish(pipe, &order, outcome, &entry.id)?;
                return Ok(());
            }
        }
        self.cook_and_publish(order, &entry.id)
    }

    /// Sets the ticket in hand, for the heartbeat.
    fn hold(&self, id: Option<&str>) {
        let ticket =
            id.map(|id| (self.night.tickets().to_owned(), id.to_owned()));
        *self.hand.lock().unwrap_or_else(PoisonError::into_inner) = ticket;
    }

    fn cook_and_publish(
        &mut self,
        order: Order,
        id: &str,
    ) -> Result<(), BoxError> {
        // The heartbeat keeps this ticket ours while we cook it.
        self.hold(Some(id));
        // The server's clock, rebuilt here from the machine's shared
        // clock, so the timeline places this cook's chops beside the
        // cashier's ring-ups (the first install in a process wins).
        Clock::from_wall(order.opening_ns).install();
        let late = self.hooks.before_cooking(order.ticket.id())?;
        if late == hooks::Before::CookLate {
            self.hold(None);
            self.hooks.be_late();
        }
        // Catch the panic here: the process lives on to cook the next
        // order, and the server learns of the panic from the plate.
        let outcome =
            match panic::catch_unwind(AssertUnwindSafe(|| cook(&order.ticket)))
            {
                Ok(plate) => Outcome::Cooked(plate),
                Err(payload) => Outcome::Panicked {
                    message: panic_message(&*payload),
                },
            };
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.publish(pipe, &order, outcome, id)?;
        self.hold(None);
        if late == hooks::Before::CookLate {
            self.hooks.was_late()?;
        }
        Ok(())
    }

    /// Adds the plate to the night's plates stream, then acknowledges and
    /// deletes the ticket, in one transaction (`MULTI`/`EXEC`, with what
    /// `pipe` already holds): a cook that dies before it leaves the ticket
    /// pending for another; one that dies after leaves nothing to redo.
    fn publish(
        &mut self,
        mut pipe: redis::Pipeline,
        order: &Order,
        outcome: Outcome,
        id: &str,
    ) -> Result<(), BoxError> {
        let served = Served {
            night: order.night,
            seq: order.seq,
            outcome,
        };
        let json = serde_json::to_string(&served)?;
        pipe.xadd(self.night.plates(), "*", &[("plate", json)])
            .ignore();
        self.finish(pipe, id)?;
        Ok(())
    }

    /// Runs `pipe` with the ticket's `XACK` and `XDEL` added.
    fn finish(
        &mut self,
        mut pipe: redis::Pipeline,
        id: &str,
    ) -> RedisResult<()> {
        let tickets = self.night.tickets();
        pipe.xack(tickets, GROUP, &[id])
            .ignore()
            .xdel(tickets, &[id])
            .ignore()
            .query(&mut self.connection)
    }

    /// How many times ticket `id` has been delivered, this claim included.
    fn deliveries(&mut self, id: &str) -> RedisResult<usize> {
        let tickets = self.night.tickets();
        let pending: StreamPendingCountReply =
            self.connection.xpending_count(tickets, GROUP, id, id, 1)?;
        Ok(pending.ids.first().map_or(1, |p| p.times_delivered))
    }
}

/// A night whose streams are gone (closed, under a blocked read or
/// between two) is `Ok(None)`.
fn open<T>(result: RedisResult<T>) -> RedisResult<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if matches!(e.code(), Some("NOGROUP" | "UNBLOCKED")) => Ok(None),
        Err(e) => Err(e),
    }
}
// ANCHOR_END: cook_loop

// ANCHOR: heartbeat
/// Resets the idle time of the ticket in hand, if this cook still owns
/// it, so nobody claims it while we cook. One script, so that checking
/// the owner and claiming are one step: a cook that was presumed dead and
/// comes back must not take its ticket back from the cook that claimed it.
const HEARTBEAT: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if pending[1] and pending[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
";

/// Beats every `period` on a connection of its own, for the ticket in
/// `hand`. It dies with the cook, and then the ticket goes idle.
fn heartbeat(
    mut connection: Connection,
    me: String,
    hand: Arc<Mutex<Option<(String, String)>>>,
    period: Duration,
) -> io::Result<()> {
    let script = redis::Script::new(HEARTBEAT);
    thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            loop {
                thread::sleep(period);
                let id =
                    hand.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if let Some((tickets, id)) = id {
                    // A failure here is the cook loop's to find and report.
                    let _ = script
                        .key(tickets)
                        .arg(GROUP)
                        .arg(&me)
                        .arg(&id)
                        .invoke::<i64>(&mut connection);
                }
            }
        })?;
    Ok(())
}
// ANCHOR_END: heartbeat

// ANCHOR: cook
/// Cooks one order, start to finish, on the cook's main thread.
fn cook(ticket: &Ticket) -> Plate {
    let mut plate = Plate::start(ticket);
    for step in ticket.steps() {
        match *step {
            Step::Chop(work) => plate.chop(work),
            // The whole process sleeps: this cook takes no other ticket
            // meanwhile.
            Step::Simmer(d) => thread::sleep(d),
        }
    }
    // Not `plate.serve()`: that would count the plate and keep its trace
    // in this process, where nobody reads them. The pass serves it.
    plate
}
// ANCHOR_END: cook

//! The dispatcher: the kitchen's books, and the thread that keeps them.
//!
//! Which worker cooks which order, when an order is overdue, who replaces
//! a worker that died, when the kitchen may close: all of it is here, and
//! none of it knows what a process or a pipe is. The workers come from a
//! [`Crew`] (in the model, copies of this binary: `Pipes` in `lib.rs`).
//!
//! The threads, the channel and the clock come from the standard library,
//! except in this crate's unit tests, where the schedule explorer
//! (shuttle) stands in for them, so that `explore.rs` runs this very code
//! under many interleavings. That swap is the only reason for the `use`
//! lines under `cfg(test)` below.

use std::collections::VecDeque;
use std::fmt::{self, Debug, Display};
use std::io;
use std::time::Duration;

use restaurant::{BoxError, Shift};

// The explorer's threads, channel and clock in the unit tests; std's
// everywhere else. `now` and `recv_until` are the two calls that differ.
#[cfg(test)]
pub(crate) use crate::explore::{now, recv_until};
#[cfg(test)]
pub(crate) use shuttle::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, channel,
};
#[cfg(test)]
use shuttle::thread::{self, JoinHandle};
#[cfg(not(test))]
pub(crate) use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
#[cfg(not(test))]
use std::thread::{self, JoinHandle};
pub(crate) use std::time::Instant;

use crate::{MODEL, Reply, TRIES};

/// How long a new worker has to say `Ready`. Starting a process and
/// loading a binary takes milliseconds; a worker silent for this long is
/// stuck, and is killed rather than waited for.
pub const HIRE_LIMIT: Duration = Duration::from_secs(5);

/// How long the workers have to leave at closing time, once their stdin
/// is closed. An idle worker leaves at once; one that does not is killed.
pub const LEAVE_LIMIT: Duration = Duration::from_secs(2);

/// How many threads this process has, for a message about a refused
/// one: "3", or "?" where the OS does not say (off Linux).
fn threads_alive() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Threads:"))?;
            Some(line["Threads:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// How many lost orders an error names: the count says the rest.
const NAMED: usize = 5;

/// The time now, on the clock the dispatcher's deadlines use.
#[cfg(not(test))]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// The next event, waiting at most until `deadline` (for ever if `None`).
#[cfg(not(test))]
pub(crate) fn recv_until<T>(
    events: &Receiver<T>,
    deadline: Option<Instant>,
) -> Result<T, RecvTimeoutError> {
    match deadline {
        Some(deadline) => {
            events.recv_timeout(deadline.saturating_duration_since(now()))
        }
        None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
    }
}

// ANCHOR: crew
/// Where workers come from. The dispatcher numbers each worker it hires;
/// everything the worker says, and the end of it, must reach the
/// dispatcher as [`Event::Said`] with that number, `Ready` first.
pub(crate) trait Crew: Send + 'static {
    /// One hired worker.
    type Hand: Hand;
    /// Starts worker `id`, whose words go to `events`.
    fn hire(
        &mut self,
        id: usize,
        events: &Sender<Event>,
    ) -> Result<Self::Hand, Refused>;
}

/// One worker, as the dispatcher handles it. Dropping it kills and reaps
/// the worker if it is still there.
pub(crate) trait Hand: Send {
    /// Its process id, to name it in messages.
    fn pid(&self) -> u32;
    /// Writes one request line; `false` if the worker is gone.
    fn give(&mut self, line: &[u8]) -> bool;
    /// Kills it at once and reaps it; says how it ended.
    fn fire(&mut self) -> String;
    /// Closing time: no more orders (its stdin is closed).
    fn dismiss(&mut self);
    /// Reaps a worker whose output has ended; an error if it ended badly.
    fn reap(&mut self) -> Result<(), String>;
}

/// The OS would not start something a worker needs.
#[derive(Debug)]
pub(crate) struct Refused {
    /// What was refused: "a worker process", "a thread to read a worker".
    pub(crate) what: &'static str,
    pub(crate) why: io::Error,
}
// ANCHOR_END: crew

/// Whoever waits for an order's answer: the customer's connection, in the
/// model. Exactly one line reaches each: a plate, or an `ERROR`.
pub(crate) trait Answer: Send + Debug {
    fn answer(self: Box<Self>, line: &str);
}

/// An order on its way through the kitchen.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) order: u64,
    /// The request, serialised once, ready to write to any worker.
    line: Vec<u8>,
    /// How long a worker may take over it ([`crate::allowance`]).
    allowance: Duration,
    customer: Box<dyn Answer>,
    /// The workers that died or were killed while cooking it, and how.
    deaths: Vec<String>,
}

impl Job {
    pub(crate) fn new(
        order: u64,
        line: Vec<u8>,
        allowance: Duration,
        customer: Box<dyn Answer>,
    ) -> Job {
        Job {
            order,
            line,
            allowance,
            customer,
            deaths: Vec::new(),
        }
    }

    /// "order 3 (worker 0 (pid 12) ended (signal: 6 (SIGABRT)))", "order 4".
    fn describe(&self) -> String {
        if self.deaths.is_empty() {
            format!("order {}", self.order)
        } else {
            format!("order {} ({})", self.order, self.deaths.join("; "))
        }
    }
}

// ANCHOR: event
/// What reaches the dispatcher, from the cashier or from a reader.
#[derive(Debug)]
pub(crate) enum Event {
    /// From the cashier: an order, rung up, and who is waiting for it.
    Order(Job),
    /// From the cashier's [`Rail`]: closing time, no more orders.
    Closing,
    /// From the reader of worker `usize`: a line, or the end of its stdout.
    Said(usize, Said),
}

/// What a reader made of one line from its worker.
#[derive(Debug)]
pub(crate) enum Said {
    Reply(Reply),
    /// A line that is not a reply, and why.
    Garbled {
        line: String,
        why: String,
    },
    /// The end of the worker's stdout: it has exited or been killed.
    Gone,
}
// ANCHOR_END: event

impl Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Said::Reply(Reply::Ready) => f.write_str("said it was ready again"),
            Said::Reply(reply) => write!(f, "sent {reply:?}"),
            Said::Garbled { line, why } => {
                write!(f, "sent a line that is not a reply ({why}): {line:?}")
            }
            Said::Gone => f.write_str("closed its stdout"),
        }
    }
}

// ANCHOR: rail
/// The cashier's end of the dispatcher: where orders go, and closing time.
/// Closing is said by `Drop` as well as by [`Rail::close`], so a cashier
/// that stops in any way, a panic included, still tells the dispatcher,
/// which then finishes the orders it took, reaps the workers and ends.
#[derive(Debug)]
pub(crate) struct Rail {
    events: Sender<Event>,
    dispatcher: Option<JoinHandle<Result<(), BoxError>>>,
}

impl Rail {
    /// Starts the dispatcher, which hires `cooks` workers from `crew`;
    /// returns once every one of them has said it is ready.
    pub(crate) fn open(
        crew: impl Crew,
        cooks: usize,
        shift: &Shift,
    ) -> Result<Rail, BoxError> {
        let (events, inbox) = channel();
        let (hired, ready) = channel();
        let (to_readers, shift) = (events.clone(), shift.clone());
        // The workers are started from the dispatcher's thread, which
        // reaps every one of them before it ends (see `die_with_parent`).
        let dispatcher = thread::Builder::new()
            .name("dispatcher".into())
            .spawn(move || {
                let mut kitchen = Kitchen::new(crew, cooks, to_readers);
                kitchen.hire_crew(&inbox)?;
                let _ = hired.send(());
                let served = kitchen.run(&inbox, &shift);
                if served.is_err() {
                    // Nobody is left to cook: the cashier stops now rather
                    // than at the next customer.
                    shift.close();
                }
                served
            })
            .map_err(|e| {
                format!(
                    "the OS refused a thread, the dispatcher ({} alive): {e}",
                    threads_alive()
                )
            })?;
        let mut rail = Rail {
            events,
            dispatcher: Some(dispatcher),
        };
        match ready.recv() {
            Ok(()) => Ok(rail),
            // The dispatcher gave up hiring; its error says why.
            Err(_) => Err(rail.join().err().unwrap_or_else(|| {
                "the dispatcher ended before the kitchen opened".into()
            })),
        }
    }

    /// Hands an order to the dispatcher. `false` once it has given up: the
    /// job is dropped, which tells its customer.
    pub(crate) fn order(&self, job: Job) -> bool {
        self.events.send(Event::Order(job)).is_ok()
    }

    /// Closing time: waits until every order taken is answered and every
    /// worker reaped. The dispatcher's verdict on the night.
    pub(crate) fn close(mut self) -> Result<(), BoxError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), BoxError> {
        let Some(dispatcher) = self.dispatcher.take() else {
            return Ok(());
        };
        // If the dispatcher has already given up, nobody hears this, and
        // its error is what `join` returns.
        let _ = self.events.send(Event::Closing);
        dispatcher
            .join()
            .map_err(|_| "the dispatcher thread panicked")?
    }
}

impl Drop for Rail {
    fn drop(&mut self) {
        let _ = self.join();
    }
}
// ANCHOR_END: rail

/// Where a worker is in its day.
#[derive(Debug)]
enum State {
    /// Started; must say `Ready` by the deadline.
    Starting(Instant),
    Free,
    /// Cooking a job; must answer by the deadline. `taken` once it has
    /// said it took the order (`Took`): only then is a death a try.
    Cooking {
        job: Job,
        due: Instant,
        taken: bool,
    },
    /// Closing time: its stdin is closed, it should leave.
    Leaving,
}

#[derive(Debug)]
struct Worker<H> {
    id: usize,
    hand: H,
    state: State,
}

/// Lost orders: how many, and the first few by name.
#[derive(Debug, Default)]
struct Lost {
    count: usize,
    named: Vec<String>,
}

impl Lost {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.named.len() < NAMED {
            self.named.push(what);
        }
    }
}

impl Display for Lost {
    /// "3 orders lost: order 3 (…), order 4, order 5", with "and N more"
    /// past the first few: never a list as long as the night.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.count == 1 { "" } else { "s" };
        write!(f, "{} order{s} lost: {}", self.count, self.named.join(", "))?;
        if self.count > self.named.len() {
            write!(f, ", and {} more", self.count - self.named.len())?;
        }
        Ok(())
    }
}

/// The dispatcher's books: the live workers, the orders waiting for one.
/// Dropping it drops every [`Hand`], which kills and reaps its worker, and
/// every job, which tells its customer.
struct Kitchen<C: Crew> {
    crew: C,
    /// The size of the pool, kept while the OS allows.
    cooks: usize,
    /// Handed to each new worker's reader.
    events: Sender<Event>,
    workers: Vec<Worker<C::Hand>>,
    /// Numbers given out so far: a worker's number is never reused, so a
    /// late word from a worker already fired is recognised as stale.
    hired: usize,
    /// Orders rung up and not yet with a worker, oldest first.
    waiting: VecDeque<Job>,
    lost: Lost,
    /// Why the pool is short of workers, if it is.
    short: Option<String>,
}

impl<C: Crew> Kitchen<C> {
    fn new(crew: C, cooks: usize, events: Sender<Event>) -> Kitchen<C> {
        Kitchen {
            crew,
            cooks,
            events,
            workers: Vec::with_capacity(cooks),
            hired: 0,
            waiting: VecDeque::new(),
            lost: Lost::default(),
            short: None,
        }
    }

    fn name(&self, i: usize) -> String {
        let worker = &self.workers[i];
        format!("worker {} (pid {})", worker.id, worker.hand.pid())
    }

    fn find(&self, id: usize) -> Option<usize> {
        self.workers.iter().position(|w| w.id == id)
    }

    /// Starts one more worker.
    fn hire(&mut self) -> Result<(), String> {
        let id = self.hired;
        self.hired += 1;
        match self.crew.hire(id, &self.events) {
            Ok(hand) => {
                let due = now() + HIRE_LIMIT;
                self.workers.push(Worker {
                    id,
                    hand,
                    state: State::Starting(due),
                });
                Ok(())
            }
            Err(Refused { what, why }) => Err(format!(
                "the OS refused {what} ({} alive): {why}",
                self.workers.len()
            )),
        }
    }

    // ANCHOR: hire
    /// Hires the whole crew and waits for each worker's `Ready`, at most
    /// [`HIRE_LIMIT`]. Any failure fails the night before it opens.
    fn hire_crew(&mut self, events: &Receiver<Event>) -> Result<(), BoxError> {
        for _ in 0..self.cooks {
            self.hire()?;
        }
        while let Some(i) = self
            .workers
            .iter()
            .position(|w| matches!(w.state, State::Starting(_)))
        {
            let State::Starting(due) = self.workers[i].state else {
                unreachable!("just matched")
            };
            let said = match recv_until(events, Some(due)) {
                Ok(Event::Said(id, said)) => (id, said),
                Ok(_) => return Err("an order came before opening".into()),
                Err(RecvTimeoutError::Timeout) => {
                    let name = self.name(i);
                    return Err(format!(
                        "{name} did not say it was ready within {} s",
                        HIRE_LIMIT.as_secs()
                    )
                    .into());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the kitchen fell silent".into());
                }
            };
            let (id, said) = said;
            let Some(w) = self.find(id) else { continue };
            match said {
                Said::Reply(Reply::Ready) => {
                    self.workers[w].state = State::Free
                }
                Said::Gone => {
                    let how = self.workers[w].hand.fire();
                    return Err(format!(
                        "{} {how} before it was ready: is the worker \
                         command this crate's binary?",
                        self.name(w)
                    )
                    .into());
                }
                said => {
                    let name = self.name(w);
                    return Err(format!(
                        "protocol error: {name} did not say it was ready: \
                         {said}"
                    )
                    .into());
                }
            }
        }
        Ok(())
    }
    // ANCHOR_END: hire

    /// Hires until the pool is back to its size, or the OS refuses.
    fn top_up(&mut self) {
        while self.workers.len() < self.cooks {
            if let Err(why) = self.hire() {
                eprintln!(
                    "{}: {why}; serving on with {}",
                    MODEL.name,
                    self.workers.len()
                );
                self.short = Some(why);
                return;
            }
        }
    }

    /// Fires worker `i` (it is dead, stuck, or past its deadline) and
    /// takes it off the books. Returns how it ended and its job, if any,
    /// with whether it had taken it.
    fn fire(&mut self, i: usize) -> (String, Option<(Job, bool)>) {
        let name = self.name(i);
        let mut worker = self.workers.swap_remove(i);
        let how = format!("{name} {}", worker.hand.fire());
        let job = match worker.state {
            State::Cooking { job, taken, .. } => Some((job, taken)),
            _ => None,
        };
        (how, job)
    }

    /// A worker died over `job` (or was killed for keeping it too long).
    /// If it had `taken` the order, that was a try: the job goes to the
    /// front of the queue, or, after [`TRIES`] of them, is given up as
    /// lost and its customer told. If not, the order never reached a live
    /// worker (one killed with the rest, handed the order before its death
    /// was seen): no try, and the job goes back as it was.
    fn hand_on(&mut self, mut job: Job, death: String, taken: bool) {
        if !taken {
            eprintln!(
                "{}: {death} before it took order {}; handing it on",
                MODEL.name, job.order
            );
            self.waiting.push_front(job);
            return;
        }
        job.deaths.push(death);
        if job.deaths.len() < TRIES {
            self.waiting.push_front(job);
        } else {
            let what = job.describe();
            eprintln!("{}: lost {what}", MODEL.name);
            let why = format!("{TRIES} cooks died on this order");
            job.customer.answer(&restaurant::wire::error_line(&why));
            self.lost.add(what);
        }
    }

    /// Gives waiting jobs to free workers.
    fn assign(&mut self) {
        while let Some(i) = self
            .workers
            .iter()
            .position(|w| matches!(w.state, State::Free))
            && let Some(job) = self.waiting.pop_front()
        {
            if self.workers[i].hand.give(&job.line) {
                let due = now() + job.allowance;
                self.workers[i].state = State::Cooking {
                    job,
                    due,
                    taken: false,
                };
            } else {
                // Its pipe is broken: it died between orders. The job
                // never reached it, so it goes back as it was.
                self.waiting.push_front(job);
                let (how, _) = self.fire(i);
                eprintln!("{}: {how}; hiring another", MODEL.name);
                self.top_up();
            }
        }
    }

    /// The earliest deadline of any worker.
    fn next_deadline(&self) -> Option<Instant> {
        self.workers
            .iter()
            .filter_map(|w| match w.state {
                State::Starting(due) | State::Cooking { due, .. } => Some(due),
                State::Free | State::Leaving => None,
            })
            .min()
    }

    // ANCHOR: overdue
    /// Kills every worker past its deadline. An order it held is handed
    /// on as if the worker had died; a worker that never said `Ready` is a
    /// failed hire, not replaced (the next would likely fail the same way).
    fn overdue(&mut self) {
        let now = now();
        while let Some(i) = self.workers.iter().position(|w| match w.state {
            State::Starting(due) | State::Cooking { due, .. } => due <= now,
            State::Free | State::Leaving => false,
        }) {
            let starting = matches!(self.workers[i].state, State::Starting(_));
            let name = self.name(i);
            let (_, job) = self.fire(i);
            if let Some((job, taken)) = job {
                let late = format!(
                    "{name} did not answer within {:.1} s: killed",
                    job.allowance.as_secs_f64()
                );
                eprintln!("{}: {late} (order {})", MODEL.name, job.order);
                self.hand_on(job, late, taken);
                self.top_up();
            } else if starting {
                let why = format!(
                    "{name} did not say it was ready within {} s: killed",
                    HIRE_LIMIT.as_secs()
                );
                eprintln!("{}: {why}", MODEL.name);
                self.short = Some(why);
            }
        }
    }
    // ANCHOR_END: overdue

    // ANCHOR: run
    /// The dispatcher's loop, from opening until every order taken is
    /// answered; then closing.
    fn run(
        &mut self,
        events: &Receiver<Event>,
        shift: &Shift,
    ) -> Result<(), BoxError> {
        let mut closing = false;
        loop {
            self.assign();
            let cooking = self
                .workers
                .iter()
                .any(|w| matches!(w.state, State::Cooking { .. }));
            // Every order taken has been answered: the kitchen can close.
            if closing && self.waiting.is_empty() && !cooking {
                break;
            }
            // Every death was answered with a hire already (`top_up`): an
            // empty kitchen is one the OS, or the workers, left empty.
            if self.workers.is_empty() {
                return Err(self.no_workers());
            }
            // Never a wait without end while a worker owes an answer.
            let event = match recv_until(events, self.next_deadline()) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    self.overdue();
                    continue;
                }
                // The kitchen holds a sender for new readers: never.
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the kitchen fell silent".into());
                }
            };
            match event {
                Event::Order(job) => self.waiting.push_back(job),
                Event::Closing => closing = true,
                Event::Said(id, said) => self.heard(id, said, shift)?,
            }
        }
        if self.lost.count > 0 {
            // Still close: every worker reaped before the error is told.
            let _ = self.close(events);
            return Err(format!(
                "{}, {TRIES} worker processes dying on each",
                self.lost
            )
            .into());
        }
        self.close(events)
    }
    // ANCHOR_END: run

    /// What worker `id` said.
    fn heard(
        &mut self,
        id: usize,
        said: Said,
        shift: &Shift,
    ) -> Result<(), BoxError> {
        // A word from a worker already fired (a plate that crossed the
        // kill, its end of output) is stale: its order is elsewhere now.
        let Some(i) = self.find(id) else {
            return Ok(());
        };
        match (said, &self.workers[i].state) {
            (Said::Reply(Reply::Ready), State::Starting(_)) => {
                self.workers[i].state = State::Free;
            }
            // The order reached a live worker: from now on, its death
            // counts as a try.
            // The order reached a live worker: from now on, its death is
            // a try.
            (Said::Reply(Reply::Took), State::Cooking { taken: false, .. }) => {
                if let State::Cooking { taken, .. } = &mut self.workers[i].state
                {
                    *taken = true;
                }
            }
            (Said::Reply(Reply::Cooked(plate)), State::Cooking { job, .. })
                if plate.id() == job.order =>
            {
                let job = self.finish(i);
                // Served here, in the server's process, where the plate is
                // counted and its trace kept for the timeline.
                job.customer.answer(&plate.serve());
            }
            (
                Said::Reply(Reply::Panicked { message }),
                State::Cooking { .. },
            ) => {
                let job = self.finish(i);
                // The payload stayed in the worker; its message came over
                // the pipe, and a `String` is a payload as good as any.
                shift.cook_panicked(
                    job.order,
                    &message as &(dyn std::any::Any + Send),
                );
                job.customer
                    .answer(&restaurant::wire::error_line("the cook panicked"));
            }
            (Said::Gone, _) => {
                let was_starting =
                    matches!(self.workers[i].state, State::Starting(_));
                let (how, job) = self.fire(i);
                if let Some((job, taken)) = job {
                    self.hand_on(job, how, taken);
                    self.top_up();
                } else if was_starting {
                    // Died before it was ready: not replaced.
                    eprintln!("{}: {how} before it was ready", MODEL.name);
                    self.short = Some(format!("{how} before it was ready"));
                } else {
                    eprintln!("{}: {how}; hiring another", MODEL.name);
                    self.top_up();
                }
            }
            (said, state) => {
                let what = match state {
                    State::Cooking { job, .. } => {
                        format!("{said} while cooking order {}", job.order)
                    }
                    _ => format!("{said} while it had no order"),
                };
                return Err(
                    format!("protocol error: {} {what}", self.name(i)).into()
                );
            }
        }
        Ok(())
    }

    /// Worker `i` answered: it is free again; returns its job.
    fn finish(&mut self, i: usize) -> Job {
        match std::mem::replace(&mut self.workers[i].state, State::Free) {
            State::Cooking { job, .. } => job,
            _ => unreachable!("finish is called for a cooking worker"),
        }
    }

    /// The error when no worker is left and none can be had: why, and the
    /// orders it leaves uncooked. (Their customers are told when the jobs
    /// are dropped.)
    fn no_workers(&mut self) -> BoxError {
        for job in &self.waiting {
            self.lost.add(job.describe());
        }
        let why = self.short.as_deref().unwrap_or("every worker has died");
        if self.lost.count == 0 {
            format!("no worker process can be had: {why}").into()
        } else {
            format!("no worker process can be had: {why}; {}", self.lost).into()
        }
    }

    /// Closing time: closes every worker's stdin, waits for each to leave
    /// (at most [`LEAVE_LIMIT`], then kills it) and reaps it. A worker that
    /// leaves with an error (a failure status, a signal) fails the night.
    fn close(&mut self, events: &Receiver<Event>) -> Result<(), BoxError> {
        for worker in &mut self.workers {
            worker.hand.dismiss(); // all at once, so they all leave together
            worker.state = State::Leaving;
        }
        let due = now() + LEAVE_LIMIT;
        let mut trouble = Vec::new();
        while !self.workers.is_empty() {
            match recv_until(events, Some(due)) {
                Ok(Event::Said(id, Said::Gone)) => {
                    if let Some(i) = self.find(id) {
                        let name = self.name(i);
                        let mut worker = self.workers.swap_remove(i);
                        if let Err(how) = worker.hand.reap() {
                            trouble.push(format!("{name} {how}"));
                        }
                    }
                }
                // A replacement hired late says it is ready as it leaves.
                Ok(Event::Said(_, Said::Reply(Reply::Ready))) => {}
                Ok(Event::Said(id, said)) => {
                    if let Some(i) = self.find(id) {
                        let name = self.name(i);
                        trouble.push(format!("{name} {said} at closing"));
                    }
                }
                // Nothing else comes after `Closing`; nothing to do.
                Ok(Event::Order(_) | Event::Closing) => {}
                // Every order is answered, so a worker that will not leave
                // costs nothing but its process: killed, and said so.
                Err(_) => {
                    while let Some(i) = self.workers.len().checked_sub(1) {
                        let name = self.name(i);
                        self.fire(i);
                        eprintln!(
                            "{}: {name} was still there {} s after closing: \
                             killed",
                            MODEL.name,
                            LEAVE_LIMIT.as_secs()
                        );
                    }
                }
            }
        }
        if trouble.is_empty() {
            Ok(())
        } else {
            Err(trouble.join("; ").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lost;

    #[test]
    fn lost_orders_are_counted_and_a_few_named() {
        let mut lost = Lost::default();
        lost.add("order 3 (worker 0 (pid 12) ended)".into());
        assert_eq!(
            lost.to_string(),
            "1 order lost: order 3 (worker 0 (pid 12) ended)"
        );
        for order in 4..10_000 {
            lost.add(format!("order {order}"));
        }
        let text = lost.to_string();
        assert!(text.starts_with("9997 orders lost: order 3 ("), "{text}");
        assert!(text.ends_with("order 7, and 9992 more"), "{text}");
        assert!(text.len() < 200, "{text}");
    }
}

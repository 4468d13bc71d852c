//! The schedule explorer: the dispatcher's own code (`dispatch.rs`: the
//! rail, the books, the loop, the closing) run under shuttle, which runs
//! its threads one step at a time in an order it chooses, a different one
//! each iteration. The workers are threads here instead of processes
//! (`Fakes`), and the clock is one that moves only when the dispatcher has
//! waited with nothing to hear, straight to its next deadline; everything
//! else is the model's.
//!
//! The properties, over a thousand random schedules each: every customer
//! gets exactly one answer (a plate, or an `ERROR` for an order that is
//! lost or a kitchen that gave up), never two; the dispatcher and every
//! worker end, however the cashier stops (shuttle fails a schedule that
//! deadlocks); a worker that dies is replaced, and one that dies before it
//! took its order costs that order no try; a stuck one is killed and
//! its late plate not served twice; a panicking cook is reported; and when
//! no worker can be had, the error says so.

use std::cell::Cell;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use restaurant::wire;
use restaurant::{Plate, Shift, Step, Work};
use shuttle::sync::Mutex;
use shuttle::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use shuttle::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use shuttle::thread;

use crate::Reply;
use crate::dispatch::{
    Answer, Crew, Event, Hand, Job, Rail, Refused, Said, Sender,
};

/// Schedules per property.
const SCHEDULES: usize = 1000;

thread_local! {
    // Shuttle runs every thread of a test on the test's own OS thread, so
    // a thread-local is one clock shared by all of them.
    static START: Instant = Instant::now();
    static ELAPSED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    /// Whether time may pass (deadlines expire) when the dispatcher waits.
    static TIME_PASSES: Cell<bool> = const { Cell::new(false) };
}

/// The dispatcher's clock in the unit tests.
pub(crate) fn now() -> Instant {
    START.with(|start| *start) + ELAPSED.with(Cell::get)
}

/// `recv_until` in the unit tests: polls, yielding to the other threads;
/// when time may pass and nothing came after a couple of turns, the clock
/// jumps to the deadline. Whether a worker's answer beats its deadline is
/// thus up to the schedule, as it would be up to the OS.
pub(crate) fn recv_until<T>(
    events: &Receiver<T>,
    deadline: Option<Instant>,
) -> Result<T, RecvTimeoutError> {
    let Some(deadline) = deadline else {
        return events.recv().map_err(|_| RecvTimeoutError::Disconnected);
    };
    let mut idle = 0;
    loop {
        match events.try_recv() {
            Ok(event) => return Ok(event),
            Err(TryRecvError::Disconnected) => {
                return Err(RecvTimeoutError::Disconnected);
            }
            Err(TryRecvError::Empty) if now() >= deadline => {
                return Err(RecvTimeoutError::Timeout);
            }
            Err(TryRecvError::Empty) => {
                idle += 1;
                if idle > 2 && TIME_PASSES.with(Cell::get) {
                    let late = deadline.saturating_duration_since(now());
                    ELAPSED.with(|e| e.set(e.get() + late));
                }
                thread::yield_now();
            }
        }
    }
}

/// How the fake workers misbehave.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// The first worker handed this order dies without answering.
    DiesOnce(u64),
    /// Every worker handed this order dies.
    AlwaysDies(u64),
    /// The first worker handed this order never answers it.
    StallsOnce(u64),
    /// The cook of this order panics.
    Panics(u64),
    /// The first [`crate::TRIES`] workers handed this order die before
    /// they say they took it, as workers killed all at once do when the
    /// dispatcher hands an order to one it has not yet seen dead.
    GoneBeforeTaking(u64),
}

/// A night's plan.
#[derive(Clone, Copy, Debug)]
struct Plan {
    cooks: usize,
    orders: u64,
    fault: Fault,
    /// The OS refuses workers past this many.
    can_hire: usize,
    /// Deadlines can expire (after opening).
    time_passes: bool,
    /// The cashier drops the rail instead of closing it.
    stops_early: bool,
}

const PLAN: Plan = Plan {
    cooks: 2,
    orders: 4,
    fault: Fault::None,
    can_hire: usize::MAX,
    time_passes: false,
    stops_early: false,
};

/// What each customer heard, in order.
type Log = Arc<Mutex<Vec<(u64, String)>>>;

/// A customer: writes the one line it hears in the log, or "dropped"
/// if it is dropped unanswered (the model's customer is then told ERROR).
#[derive(Debug)]
struct Diner {
    order: u64,
    log: Log,
    answered: bool,
}

impl Answer for Diner {
    fn answer(mut self: Box<Self>, line: &str) {
        self.answered = true;
        self.log.lock().unwrap().push((self.order, line.to_owned()));
    }
}

impl Drop for Diner {
    fn drop(&mut self) {
        if !self.answered {
            self.log
                .lock()
                .unwrap()
                .push((self.order, "dropped".into()));
        }
    }
}

/// Threads standing in for worker processes.
#[derive(Debug)]
struct Fakes {
    fault: Fault,
    can_hire: usize,
    hired: Arc<AtomicUsize>,
    /// Workers whose thread has not ended.
    running: Arc<AtomicUsize>,
    /// A `…Once` fault has happened.
    struck: Arc<AtomicBool>,
    /// Workers that died before taking their order.
    untaken: Arc<AtomicUsize>,
}

enum Message {
    Line(Vec<u8>),
    Kill,
}

struct FakeHand {
    id: usize,
    inbox: Option<mpsc::Sender<Message>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Crew for Fakes {
    type Hand = FakeHand;

    fn hire(
        &mut self,
        id: usize,
        events: &Sender<Event>,
    ) -> Result<FakeHand, Refused> {
        if self.hired.load(Ordering::SeqCst) >= self.can_hire {
            return Err(Refused {
                what: "a worker process",
                why: std::io::Error::from(std::io::ErrorKind::WouldBlock),
            });
        }
        self.hired.fetch_add(1, Ordering::SeqCst);
        self.running.fetch_add(1, Ordering::SeqCst);
        let (inbox, letters) = mpsc::channel();
        let (events, fault) = (events.clone(), self.fault);
        let (struck, running) = (self.struck.clone(), self.running.clone());
        let untaken = self.untaken.clone();
        let thread = thread::spawn(move || {
            work(id, &letters, &events, fault, (&struck, &untaken));
            running.fetch_sub(1, Ordering::SeqCst);
            // Its stdout ends when it does.
            let _ = events.send(Event::Said(id, Said::Gone));
        });
        Ok(FakeHand {
            id,
            inbox: Some(inbox),
            thread: Some(thread),
        })
    }
}

/// A fake worker's life: ready, then for each order that it took it and
/// an answer, until killed, dismissed (its inbox closed) or dead of its
/// fault. `struck` and `untaken` are shared by the whole crew.
fn work(
    id: usize,
    letters: &Receiver<Message>,
    events: &Sender<Event>,
    fault: Fault,
    (struck, untaken): (&AtomicBool, &AtomicUsize),
) {
    let say = |reply| events.send(Event::Said(id, Said::Reply(reply)));
    let _ = say(Reply::Ready);
    while let Ok(Message::Line(line)) = letters.recv() {
        let order: u64 = String::from_utf8(line)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .expect("the explorer's lines are order numbers");
        if fault == Fault::GoneBeforeTaking(order)
            && untaken.fetch_add(1, Ordering::SeqCst) < crate::TRIES
        {
            return;
        }
        let _ = say(Reply::Took);
        let reply = match fault {
            Fault::AlwaysDies(o) if o == order => return,
            Fault::DiesOnce(o)
                if o == order && !struck.swap(true, Ordering::SeqCst) =>
            {
                return;
            }
            // Stuck: reads on, answers nothing, until killed.
            Fault::StallsOnce(o)
                if o == order && !struck.swap(true, Ordering::SeqCst) =>
            {
                continue;
            }
            Fault::Panics(o) if o == order => Reply::Panicked {
                message: "the explorer's cook panicked".into(),
            },
            _ => Reply::Cooked(plate(order)),
        };
        let _ = say(reply);
    }
}

/// A plate for `order`, as a worker makes it.
fn plate(order: u64) -> Plate {
    let steps = [Step::Chop(Work(1))];
    let line = wire::order_line(order, "soup", order, &steps);
    let ticket = wire::parse_order(&line).expect("a well-formed line");
    Plate::start(&ticket)
}

impl Hand for FakeHand {
    fn pid(&self) -> u32 {
        1000 + self.id as u32
    }

    fn give(&mut self, line: &[u8]) -> bool {
        let line = Message::Line(line.to_vec());
        self.inbox
            .as_ref()
            .is_some_and(|inbox| inbox.send(line).is_ok())
    }

    fn fire(&mut self) -> String {
        if let Some(inbox) = self.inbox.take() {
            let _ = inbox.send(Message::Kill);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        "ended (killed)".into()
    }

    fn dismiss(&mut self) {
        self.inbox = None;
    }

    fn reap(&mut self) -> Result<(), String> {
        if let Some(thread) = self.thread.take() {
            thread.join().map_err(|_| "panicked".to_owned())?;
        }
        Ok(())
    }
}

impl Drop for FakeHand {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.fire();
        }
    }
}

/// What came of one night.
#[derive(Debug)]
struct Outcome {
    served: Result<(), String>,
    /// Every line each customer who came in heard, by order. The cashier
    /// stops at the first order the rail refuses (the dispatcher has given
    /// up): the customers after it never come, and hear nothing.
    heard: Vec<Vec<String>>,
    /// The orders the night was planned with.
    planned: usize,
    faults: Vec<String>,
    hired: usize,
    running: usize,
}

/// A shift whose door is a closed port: closing knocks, and is refused.
fn shift() -> Shift {
    let door: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a loopback port");
    Shift::with_hooks(door, Box::new(|| {}), Box::new(|_| {}))
}

/// Serves one night by `plan`: the dispatcher on its thread, the cashier
/// on another, as in the model, and the fake workers.
fn night(plan: Plan, shift: &Shift) -> Outcome {
    ELAPSED.with(|e| e.set(Duration::ZERO));
    TIME_PASSES.with(|t| t.set(false));
    let log = Log::default();
    let (hired, running) = (Arc::default(), Arc::<AtomicUsize>::default());
    let crew = Fakes {
        fault: plan.fault,
        can_hire: plan.can_hire,
        hired: Arc::clone(&hired),
        running: Arc::clone(&running),
        struck: Arc::default(),
        untaken: Arc::default(),
    };
    let served = match Rail::open(crew, plan.cooks, shift) {
        Ok(rail) => {
            TIME_PASSES.with(|t| t.set(plan.time_passes));
            let log = Arc::clone(&log);
            let cashier = thread::spawn(move || {
                let mut came_in = 0;
                for order in 0..plan.orders {
                    came_in += 1;
                    let diner = Diner {
                        order,
                        log: Arc::clone(&log),
                        answered: false,
                    };
                    let line = format!("{order}\n").into_bytes();
                    let allowance = Duration::from_secs(1);
                    let job = Job::new(order, line, allowance, Box::new(diner));
                    if !rail.order(job) {
                        break;
                    }
                }
                let served = if plan.stops_early {
                    drop(rail);
                    Ok(())
                } else {
                    rail.close().map_err(|e| e.to_string())
                };
                (served, came_in)
            });
            cashier.join().expect("the cashier does not panic")
        }
        Err(e) => (Err(e.to_string()), 0),
    };
    let (served, came_in) = served;
    let mut heard = vec![Vec::new(); came_in];
    for (order, line) in log.lock().unwrap().drain(..) {
        heard[order as usize].push(line);
    }
    Outcome {
        served,
        heard,
        planned: plan.orders as usize,
        faults: shift.faults(),
        hired: hired.load(Ordering::SeqCst),
        running: running.load(Ordering::SeqCst),
    }
}

/// Every customer who came in heard exactly one line, and all came in
/// unless the dispatcher gave up; the dispatcher has returned, so every
/// worker thread must have ended.
fn assert_one_answer_each(outcome: &Outcome) {
    if outcome.served.is_ok() {
        assert_eq!(
            outcome.heard.len(),
            outcome.planned,
            "a customer never came in: {outcome:?}"
        );
    }
    for (order, lines) in outcome.heard.iter().enumerate() {
        assert_eq!(
            lines.len(),
            1,
            "order {order} heard {lines:?}: {outcome:?}"
        );
    }
    assert_eq!(
        outcome.running, 0,
        "a worker outlived the night: {outcome:?}"
    );
}

fn served(lines: &[String]) -> bool {
    lines.len() == 1 && lines[0].starts_with("PLATE ")
}

fn explore(plan: Plan, check: fn(&Outcome)) {
    shuttle::check_random(
        move || {
            let outcome = night(plan, &shift());
            assert_one_answer_each(&outcome);
            check(&outcome);
        },
        SCHEDULES,
    );
}

#[test]
fn every_order_is_served_once_and_the_kitchen_closes() {
    explore(PLAN, |outcome| {
        assert_eq!(outcome.served, Ok(()));
        assert!(outcome.heard.iter().all(|l| served(l)), "{outcome:?}");
        assert_eq!(outcome.hired, PLAN.cooks);
    });
}

#[test]
fn a_cashier_that_stops_early_still_closes_the_kitchen() {
    let plan = Plan {
        stops_early: true,
        ..PLAN
    };
    // The cashier's thread ends only once the rail's `Drop` has joined
    // the dispatcher: every order was answered by then.
    explore(plan, |outcome| {
        assert!(outcome.heard.iter().all(|l| served(l)), "{outcome:?}");
    });
}

#[test]
fn a_worker_that_dies_is_replaced_and_its_order_handed_on() {
    let plan = Plan {
        cooks: 1,
        orders: 3,
        fault: Fault::DiesOnce(1),
        ..PLAN
    };
    explore(plan, |outcome| {
        assert_eq!(outcome.served, Ok(()));
        assert!(outcome.heard.iter().all(|l| served(l)), "{outcome:?}");
        assert_eq!(outcome.hired, 2, "one worker in place of the dead");
    });
}

#[test]
fn an_order_that_kills_its_workers_is_lost_and_named() {
    let plan = Plan {
        orders: 3,
        fault: Fault::AlwaysDies(1),
        ..PLAN
    };
    explore(plan, |outcome| {
        let error = outcome.served.as_ref().expect_err("order 1 is lost");
        assert!(
            error.starts_with("1 order lost: order 1 (worker"),
            "{error}"
        );
        assert!(outcome.heard[1][0].contains("2 cooks died"), "{outcome:?}");
        assert!(served(&outcome.heard[0]) && served(&outcome.heard[2]));
        // The pool kept its size: a new worker for each death.
        assert_eq!(outcome.hired, PLAN.cooks + crate::TRIES);
    });
}

#[test]
fn a_worker_gone_before_taking_its_order_costs_the_order_no_try() {
    let plan = Plan {
        orders: 3,
        fault: Fault::GoneBeforeTaking(1),
        ..PLAN
    };
    // As many deaths as an order may have tries, and more would not
    // matter: none of them had the order.
    explore(plan, |outcome| {
        assert_eq!(outcome.served, Ok(()));
        assert!(outcome.heard.iter().all(|l| served(l)), "{outcome:?}");
        assert_eq!(outcome.hired, PLAN.cooks + crate::TRIES);
    });
}

#[test]
fn a_stuck_worker_is_killed_and_no_plate_is_served_twice() {
    let plan = Plan {
        fault: Fault::StallsOnce(2),
        time_passes: true,
        ..PLAN
    };
    // Deadlines expire whenever the schedule leaves the dispatcher
    // waiting, so healthy workers are killed too, in some schedules with
    // their plate already on its way: each customer must still hear one
    // line. An order killed twice is lost, and the night fails naming it.
    explore(plan, |outcome| {
        let lost: Vec<usize> = (0..outcome.heard.len())
            .filter(|&order| !served(&outcome.heard[order]))
            .collect();
        match &outcome.served {
            Ok(()) => assert!(lost.is_empty(), "{outcome:?}"),
            Err(error) => assert!(
                error.contains("lost") || error.contains("can be had"),
                "{error}"
            ),
        }
    });
}

#[test]
fn a_panicking_cook_is_reported_and_the_rest_served() {
    let plan = Plan {
        fault: Fault::Panics(1),
        ..PLAN
    };
    explore(plan, |outcome| {
        assert_eq!(outcome.served, Ok(()));
        assert!(
            outcome.faults.len() == 1
                && outcome.faults[0].contains("order 1 panicked"),
            "{outcome:?}"
        );
        assert!(outcome.heard[1][0].contains("panicked"), "{outcome:?}");
        assert_eq!(outcome.heard.iter().filter(|l| served(l)).count(), 3);
    });
}

#[test]
fn when_no_worker_can_be_had_the_dispatcher_says_so() {
    let plan = Plan {
        cooks: 1,
        orders: 4,
        fault: Fault::DiesOnce(1),
        can_hire: 1,
        ..PLAN
    };
    explore(plan, |outcome| {
        let error = outcome.served.as_ref().expect_err("no worker is left");
        assert!(
            error.starts_with(
                "no worker process can be had: the OS refused a worker \
                 process (0 alive)"
            ),
            "{error}"
        );
        assert!(error.contains("order 1 (worker 0"), "{error}");
        assert!(served(&outcome.heard[0]), "{outcome:?}");
    });
}

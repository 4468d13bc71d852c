//! The door: the listening socket every example accepts customers from, and
//! the [`Shift`] that tells a model when to open, when to close and where
//! to report a cook's panic.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream,
};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::CookPanicked;

/// The listen backlog every example asks for: how many connections the
/// kernel queues, handshake done, before the server accepts them.
///
/// std's `TcpListener::bind` (and mio's, and so tokio's `bind`) ask for
/// 128. A burst of thousands of customers overflows that queue; the kernel
/// then drops SYNs and each customer it dropped retries a second later, a
/// second of counter wait that is not the server's fault. Linux caps the
/// number at `net.core.somaxconn` (4096 on current kernels).
pub const BACKLOG: i32 = 4096;

/// How long an accept loop waits after an accept error (out of file
/// descriptors, a connection reset before it was accepted) before it tries
/// again. An accept error is never fatal to a server.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Binds a listener on `addr` with a listen backlog of [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    bind_with_backlog(addr, BACKLOG)
}

/// Binds a listener on `addr` that queues up to `backlog` connections.
///
/// `SO_REUSEADDR` is set (off Windows, where it means something else), so
/// a server restarted on the same port does not wait for the old one's
/// `TIME_WAIT` connections to expire.
pub fn bind_with_backlog(
    addr: SocketAddr,
    backlog: i32,
) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// What a run does when a cook panics.
type OnFault = Box<dyn Fn(&CookPanicked) + Send + Sync>;
/// What a run does when the restaurant opens.
type OnOpen = Box<dyn FnOnce() + Send>;

/// A shift at the restaurant, as the model sees it: when to let the
/// customers in ([`Shift::open`]), when to stop accepting
/// ([`Shift::closed`], [`Shift::is_closed`], [`Shift::wait_closed`]), and
/// where to report a cook that panicked ([`Shift::cook_panicked`]).
///
/// Clone it freely: every clone is the same shift.
///
/// Closing is told in-process, never over the wire, so no customer can
/// close the restaurant. When it closes, it also knocks once on the door
/// (connects and hangs up), so that a thread blocked in `accept` wakes up
/// and sees that it is closing time.
#[derive(Clone)]
pub struct Shift(Arc<Inner>);

struct Inner {
    /// Closing time, read without the lock: every customer's task polls
    /// [`Closed`] beside its reads, so a lock here would be taken on every
    /// wake-up of every connection. Set under the lock, with `state.closed`.
    closed: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
    door: SocketAddr,
    waiters: usize,
    on_fault: OnFault,
}

struct State {
    on_open: Option<OnOpen>,
    opened: bool,
    closed: bool,
    /// The wakers of pending [`Closed`] futures, by a number of their
    /// own: a future that is dropped takes its waker out, so a million
    /// connections that each waited once leave nothing behind.
    wakers: HashMap<u64, Waker>,
    next_waker: u64,
    faults: Vec<String>,
}

impl fmt::Debug for Shift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Shift")
            .field("door", &self.0.door)
            .field("opened", &state.opened)
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}

impl Shift {
    /// A shift at the door `door` (the listener's local address). A cook's
    /// panic is logged on stderr and kept ([`Shift::faults`]).
    pub fn new(door: SocketAddr) -> Shift {
        Shift::with_hooks(
            door,
            Box::new(|| {}),
            Box::new(|fault| eprintln!("error: {fault}")),
        )
    }

    /// A shift that runs `on_open` when the model opens and `on_fault`
    /// for every cook that panics (the command line ends a normal run
    /// there; a `--listen` server logs it and carries on).
    pub fn with_hooks(
        door: SocketAddr,
        on_open: OnOpen,
        on_fault: OnFault,
    ) -> Shift {
        Shift(Arc::new(Inner {
            closed: AtomicBool::new(false),
            state: Mutex::new(State {
                on_open: Some(on_open),
                opened: false,
                closed: false,
                wakers: HashMap::new(),
                next_waker: 0,
                faults: Vec::new(),
            }),
            changed: Condvar::new(),
            door,
            waiters: 1,
            on_fault,
        }))
    }

    /// The same shift staffed with `waiters` waiters (at least one), for a
    /// model that has several ([`Shift::waiters`]).
    ///
    /// # Panics
    ///
    /// If the shift was already cloned: the roster is set before anyone
    /// shares the shift.
    pub fn with_waiters(mut self, waiters: usize) -> Shift {
        Arc::get_mut(&mut self.0)
            .expect("the waiters are set before the shift is shared")
            .waiters = waiters.max(1);
        self
    }

    /// How many waiters this shift has (`--waiters`; 1 unless the model
    /// takes several). Models with one cashier never ask.
    pub fn waiters(&self) -> usize {
        self.0.waiters
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; a poisoned one still
        // holds consistent flags.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The model is set up (runtime built, pools started): let the
    /// customers in. Time zero for the customers is this call. Later calls
    /// do nothing.
    pub fn open(&self) {
        let on_open = {
            let mut state = self.state();
            state.opened = true;
            state.on_open.take()
        };
        self.0.changed.notify_all();
        if let Some(on_open) = on_open {
            on_open();
        }
    }

    /// Waits until the model has opened, at most `limit`. `true` if it did.
    pub fn wait_opened(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = self.state();
        while !state.opened {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .0
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Closing time: the model stops accepting, finishes every order it
    /// accepted, and returns. Wakes every [`Shift::closed`] future and
    /// [`Shift::wait_closed`] caller, and knocks once on the door. Later
    /// calls do nothing.
    pub fn close(&self) {
        let wakers = {
            let mut state = self.state();
            if state.closed {
                return;
            }
            state.closed = true;
            self.0.closed.store(true, Ordering::Release);
            std::mem::take(&mut state.wakers)
        };
        self.0.changed.notify_all();
        for waker in wakers.into_values() {
            waker.wake();
        }
        self.knock();
    }

    /// Connects to the door and hangs up at once, so that an acceptor
    /// blocked in `accept` returns and sees [`Shift::is_closed`].
    fn knock(&self) {
        let mut door = self.0.door;
        if door.ip().is_unspecified() {
            door.set_ip(match door.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        // A listener that is already gone refuses: nobody to wake then.
        let _ = TcpStream::connect_timeout(&door, Duration::from_secs(1));
    }

    /// Whether it is closing time.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// Blocks the calling thread until closing time.
    pub fn wait_closed(&self) {
        let mut state = self.state();
        while !state.closed {
            state = self
                .0
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A future that completes at closing time. It needs no runtime of its
    /// own, so every executor can `select!` on it beside `accept`.
    pub fn closed(&self) -> Closed {
        Closed {
            shift: self.clone(),
            filed: None,
        }
    }

    /// Reports that the cook of `order` panicked with `payload`, as soon as
    /// the model sees it. In a normal run this ends the run at once (exit 1,
    /// naming the order); under `--listen` it is logged and the server
    /// carries on. Tell the customer with an `ERROR` line too.
    pub fn cook_panicked(&self, order: u64, payload: &(dyn Any + Send)) {
        let fault = CookPanicked::new(order, payload);
        crate::plate::left_kitchen(order);
        self.state().faults.push(fault.to_string());
        (self.0.on_fault)(&fault);
    }

    /// Every panic reported so far, as messages.
    pub fn faults(&self) -> Vec<String> {
        self.state().faults.clone()
    }

    /// The door's address.
    pub fn door(&self) -> SocketAddr {
        self.0.door
    }
}

/// The future of [`Shift::closed`].
///
/// Its first poll files its waker with the shift, under the shift's lock;
/// later polls by the same task read one atomic flag and take no lock, so
/// a connection that wakes for its own reads pays almost nothing for also
/// watching the clock. [`Shift::close`] wakes every waker filed.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Closed {
    shift: Shift,
    /// The number its waker is filed under, and a copy of that waker to
    /// tell whether a later poll comes from the same task.
    filed: Option<(u64, Waker)>,
}

impl Future for Closed {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shift.is_closed() {
            return Poll::Ready(());
        }
        // Filed by this same task before closing time: `close` will wake
        // it, since it sets the flag and takes the wakers under the lock
        // this waker was filed under.
        if let Some((_, waker)) = &self.filed
            && waker.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        let shift = self.shift.clone();
        let mut state = shift.state();
        if state.closed {
            return Poll::Ready(());
        }
        let key = match &self.filed {
            Some((key, _)) => *key,
            None => {
                state.next_waker += 1;
                state.next_waker
            }
        };
        state.wakers.insert(key, cx.waker().clone());
        drop(state);
        self.filed = Some((key, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Closed {
    fn drop(&mut self) {
        if let Some((key, _)) = self.filed.take() {
            self.shift.state().wakers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::task::Wake;
    use std::thread;

    use super::*;

    /// A waker that counts its wakes.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn shift() -> Shift {
        // Port 0 is nobody's door: the knock at closing is refused at once.
        Shift::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    #[test]
    fn a_waiting_future_is_woken_once_at_closing_time_then_ready() {
        let shift = shift();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut closed = Box::pin(shift.closed());
        assert!(closed.as_mut().poll(&mut cx).is_pending());
        assert!(closed.as_mut().poll(&mut cx).is_pending());
        shift.close();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(closed.as_mut().poll(&mut cx).is_ready());
        // A future made after closing time is ready at once.
        assert!(Box::pin(shift.closed()).as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn polling_again_from_the_same_task_takes_no_lock() {
        let shift = shift();
        let mut closed = Box::pin(shift.closed());
        let waker = Waker::noop();
        assert!(
            closed
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        // With the shift's lock held here, a poll that wanted it would
        // wait for ever: it must answer at once.
        let held = shift.state();
        let (told, answer) = mpsc::channel();
        thread::spawn(move || {
            let polled = closed.as_mut().poll(&mut Context::from_waker(waker));
            let _ = told.send(polled.is_pending());
            // Dropping the future takes the lock: only after the answer.
            drop(closed);
        });
        let pending = answer.recv_timeout(Duration::from_secs(10));
        drop(held);
        assert_eq!(pending, Ok(true), "the second poll waited on the lock");
    }

    #[test]
    fn a_dropped_future_leaves_no_waker_behind() {
        let shift = shift();
        let waker = Waker::noop();
        for _ in 0..1000 {
            let mut closed = Box::pin(shift.closed());
            let _ = closed.as_mut().poll(&mut Context::from_waker(waker));
        }
        assert!(shift.state().wakers.is_empty());
    }
}

//! How the EHR client waits on its EHR without holding a lock across a call: `Flight`, one in-flight fetch
//! of a cached value (discovery, the backend token) that others join; and `Gate`, a bound on how many
//! requests of one tenant may be waiting on its EHR at once.
//!
//! Invariants: no lock is held while a fetch runs; a waiter never waits past its deadline, and never starts
//! a fetch of its own when the one it joined fails (it shares the failure); a fetch that panics still
//! wakes its waiters; a `Gate` never lets more than its bound in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::http::ApiError;

/// How a caller takes part when the value is not cached and another caller is already fetching it.
#[derive(Debug, Clone, Copy)]
pub enum Join {
    /// Wait for that fetch until the deadline, and share its outcome.
    Wait(Instant),
    /// Do not wait: 503 at once. Nor start a fetch within `backoff` seconds of a failed one.
    FailFast { backoff: u64 },
}

/// A value fetched by one caller at a time and kept until it expires.
#[derive(Debug)]
pub struct Flight<T> {
    what: &'static str,
    state: Mutex<State<T>>,
    ended: Condvar,
}

#[derive(Debug)]
struct State<T> {
    /// The value and until when it may be used (Unix seconds).
    value: Option<(T, u64)>,
    running: bool,
    /// How many fetches have ended, so a waiter sees that the one it joined ended.
    fetches: u64,
    /// The error of the last fetch, when it failed, and when (Unix seconds).
    failure: Option<(ApiError, u64)>,
    /// How many callers wait for the fetch in flight.
    waiting: usize,
}

impl<T: Clone> Flight<T> {
    /// `what` names the value in errors and the log: "discovery", "backend token".
    pub fn new(what: &'static str) -> Flight<T> {
        Flight {
            what,
            state: Mutex::new(State { value: None, running: false, fetches: 0, failure: None, waiting: 0 }),
            ended: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The state is consistent at every unlock, so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached value if it is fresh at `now`.
    pub fn cached(&self, now: u64) -> Option<T> {
        self.lock().value.as_ref().filter(|(_, until)| now < *until).map(|(v, _)| v.clone())
    }

    /// The cached value at `now` (Unix seconds), else the outcome of a fetch: this caller's own (`fetch`,
    /// run with no lock held, returning the value and until when it may be used), or the one already in
    /// flight, per `join`.
    pub fn get(&self, now: u64, join: Join, fetch: impl FnOnce() -> Result<(T, u64), ApiError>) -> Result<T, ApiError> {
        let mut state = self.lock();
        if let Some((v, until)) = &state.value {
            if now < *until {
                return Ok(v.clone());
            }
        }
        if state.running {
            let Join::Wait(deadline) = join else {
                return Err(ApiError::Unavailable(format!("{}: another request is fetching it", self.what)));
            };
            let joined = state.fetches;
            state.waiting += 1;
            while state.fetches == joined {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    state.waiting -= 1;
                    return Err(ApiError::Unavailable(format!("{}: timed out waiting for it", self.what)));
                }
                state = self.ended.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
            }
            state.waiting -= 1;
            if let Some((v, until)) = &state.value {
                if now < *until {
                    return Ok(v.clone());
                }
            }
            let failure = state.failure.as_ref().map(|(e, _)| e.clone());
            return Err(failure.unwrap_or_else(|| ApiError::Unavailable(format!("{}: not fetched", self.what))));
        }
        if let (Join::FailFast { backoff }, Some((e, at))) = (join, &state.failure) {
            if now < at.saturating_add(backoff) {
                return Err(e.clone());
            }
        }
        state.running = true;
        drop(state);
        let mut running = Running { flight: self, started: now, outcome: None };
        let result = fetch();
        running.outcome = Some(result.as_ref().map(|(v, until)| (v.clone(), *until)).map_err(Clone::clone));
        drop(running);
        result.map(|(v, _)| v)
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// Drops the cached value if `stale` says so (a backend token the EHR refused), so the next caller
    /// fetches a new one; a value another caller already replaced is kept.
    pub fn forget_if(&self, stale: impl Fn(&T) -> bool) {
        let mut state = self.lock();
        if state.value.as_ref().is_some_and(|(v, _)| stale(v)) {
            state.value = None;
        }
    }
}

/// The fetch in progress; dropping it (also by a panic) ends the fetch and wakes the waiters.
struct Running<'a, T> {
    flight: &'a Flight<T>,
    /// When the fetch started (Unix seconds): the time of its failure, for the backoff.
    started: u64,
    /// `None` when the fetch panicked.
    outcome: Option<Result<(T, u64), ApiError>>,
}

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        let mut state = self.flight.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.started;
        match self.outcome.take() {
            Some(Ok(value)) => {
                state.value = Some(value);
                state.failure = None;
            }
            Some(Err(e)) => state.failure = Some((e, now)),
            None => {
                state.failure = Some((ApiError::Internal(format!("{}: the fetch panicked", self.flight.what)), now))
            }
        }
        state.running = false;
        state.fetches += 1;
        self.flight.ended.notify_all();
    }
}

/// At most `bound` holders at once; the next is refused at once.
#[derive(Debug)]
pub struct Gate {
    held: AtomicUsize,
    bound: usize,
}

/// One place in a `Gate`, given back on drop.
#[derive(Debug)]
pub struct Permit<'a>(&'a Gate);

impl Gate {
    pub fn new(bound: usize) -> Gate {
        Gate { held: AtomicUsize::new(0), bound: bound.max(1) }
    }

    /// A place, or 503 when all `bound` are taken.
    pub fn enter(&self) -> Result<Permit<'_>, ApiError> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.bound).then_some(n + 1))
            .map(|_| Permit(self))
            .map_err(|n| ApiError::Unavailable(format!("{n} requests of this tenant are already waiting on its EHR")))
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    fn soon() -> Join {
        Join::Wait(Instant::now() + Duration::from_secs(20))
    }

    #[test]
    fn cached_until_it_expires() {
        let f = Flight::new("x");
        assert_eq!(f.get(10, soon(), || Ok((1, 20))), Ok(1));
        assert_eq!(f.get(19, soon(), || Ok((2, 30))), Ok(1), "fresh: not fetched again");
        assert_eq!(f.get(20, soon(), || Ok((3, 30))), Ok(3), "expired: fetched again");
        f.forget_if(|v| *v == 1);
        assert_eq!(f.cached(21), Some(3), "a value already replaced is kept");
        f.forget_if(|v| *v == 3);
        assert_eq!(f.cached(21), None);
    }

    #[test]
    fn waiters_share_the_one_fetch_and_its_failure() {
        let f = Arc::new(Flight::<u32>::new("x"));
        let (tx_started, rx_started) = mpsc::channel::<()>();
        let (tx_release, rx_release) = mpsc::channel::<()>();
        let leader = {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                f.get(0, soon(), || {
                    tx_started.send(()).unwrap();
                    rx_release.recv().unwrap();
                    Err(ApiError::Unavailable("down".into()))
                })
            })
        };
        rx_started.recv().unwrap();
        assert!(
            matches!(f.get(0, Join::FailFast { backoff: 0 }, || Ok((9, 9))), Err(ApiError::Unavailable(_))),
            "fail fast while another fetches"
        );
        let waiter = {
            let f = Arc::clone(&f);
            std::thread::spawn(move || f.get(0, soon(), || panic!("a waiter must not fetch")))
        };
        while f.waiting() == 0 {
            std::thread::yield_now();
        }
        tx_release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Err(ApiError::Unavailable("down".into())));
        assert_eq!(waiter.join().unwrap(), Err(ApiError::Unavailable("down".into())), "the waiter shares it");
        assert!(
            matches!(f.get(0, Join::FailFast { backoff: 5 }, || Ok((1, 9))), Err(ApiError::Unavailable(_))),
            "no new fetch within the backoff of a failure"
        );
        assert_eq!(f.get(6, Join::FailFast { backoff: 5 }, || Ok((1, 9))), Ok(1), "after the backoff");
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline() {
        let f = Arc::new(Flight::<u32>::new("x"));
        let (tx, rx) = mpsc::channel::<()>();
        let (tx_go, rx_go) = mpsc::channel::<()>();
        let leader = {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                f.get(0, soon(), || {
                    tx.send(()).unwrap();
                    rx_go.recv().unwrap();
                    Ok((1, 9))
                })
            })
        };
        rx.recv().unwrap();
        let r = f.get(0, Join::Wait(Instant::now()), || panic!("a waiter must not fetch"));
        assert!(matches!(r, Err(ApiError::Unavailable(_))), "{r:?}");
        tx_go.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Ok(1));
    }

    #[test]
    fn a_panicking_fetch_ends_the_flight() {
        let f = Flight::<u32>::new("x");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.get(0, soon(), || panic!("boom"))));
        assert!(r.is_err());
        assert_eq!(f.get(0, soon(), || Ok((2, 9))), Ok(2), "the next caller fetches");
    }

    #[test]
    fn the_gate_lets_in_at_most_its_bound() {
        let g = Gate::new(2);
        let a = g.enter().unwrap();
        let _b = g.enter().unwrap();
        assert!(matches!(g.enter(), Err(ApiError::Unavailable(_))));
        drop(a);
        assert!(g.enter().is_ok());
    }
}

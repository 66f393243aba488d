//! A server-wide budget of bytes that requests set aside before they hold memory, and give back once they
//! no longer do: what bounds the deflated data sets inflated for responses (`server.inflate_budget`), however
//! many clients ask at once.
//!
//! Invariants: the bytes reserved never exceed the budget; a reservation is given back when it is dropped,
//! however the response holding it ended (sent, cut short, never begun); a request finding no room waits at
//! most the budget's wait, and one larger than the whole budget is refused at once, so nothing waits for
//! room that can never come. It imports nothing of the crate but `metrics`' plain gauge values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::metrics::BudgetGauges;

/// How long a request waits for room before it is refused: long enough for a response that is being sent
/// to end, short enough that a worker is not held for long by a request that cannot be served now.
pub const WAIT: Duration = Duration::from_secs(1);

/// A budget of bytes, shared by clones: each clone reserves from the same bytes.
#[derive(Debug, Clone)]
pub struct Budget(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    limit: u64,
    wait: Duration,
    reserved: Mutex<u64>,
    /// Signalled whenever a reservation is given back.
    freed: Condvar,
    refused_busy: AtomicU64,
    refused_too_large: AtomicU64,
}

/// Why bytes could not be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// More than the whole budget: no wait could make room for it.
    TooLarge,
    /// The budget stayed too full for the whole wait.
    Busy,
}

/// Bytes set aside from a budget, given back when this is dropped.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<Shared>,
    bytes: u64,
}

impl Budget {
    /// A budget of `limit` bytes whose requests wait at most `wait` for room.
    pub fn new(limit: u64, wait: Duration) -> Budget {
        Budget(Arc::new(Shared {
            limit,
            wait,
            reserved: Mutex::new(0),
            freed: Condvar::new(),
            refused_busy: AtomicU64::new(0),
            refused_too_large: AtomicU64::new(0),
        }))
    }

    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Sets `bytes` aside, waiting for room when the budget is too full, for at most the budget's wait.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, Refused> {
        let shared = &self.0;
        if bytes > shared.limit {
            shared.refused_too_large.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::TooLarge);
        }
        let deadline = Instant::now() + shared.wait;
        let mut reserved = shared.lock();
        while *reserved + bytes > shared.limit {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                shared.refused_busy.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::Busy);
            }
            reserved = shared.freed.wait_timeout(reserved, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *reserved += bytes;
        Ok(Reservation { shared: Arc::clone(shared), bytes })
    }

    /// What `/metrics` shows of the budget now.
    pub fn gauges(&self) -> BudgetGauges {
        let shared = &self.0;
        BudgetGauges {
            limit: shared.limit,
            reserved: *shared.lock(),
            refused_busy: shared.refused_busy.load(Ordering::Relaxed),
            refused_too_large: shared.refused_too_large.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, u64> {
        // Nothing panics while the count is held, so even a poisoned lock holds a true count.
        self.reserved.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.shared.lock();
        *reserved = reserved.saturating_sub(self.bytes);
        drop(reserved);
        self.shared.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(10);

    #[test]
    fn reserves_up_to_the_limit_and_gives_back_on_drop() {
        let budget = Budget::new(100, Duration::ZERO);
        let a = budget.reserve(60).unwrap();
        let b = budget.reserve(40).unwrap();
        assert_eq!(budget.gauges().reserved, 100);
        assert_eq!(budget.reserve(1).unwrap_err(), Refused::Busy, "full: no wait, refused at once");
        drop(a);
        assert_eq!(budget.gauges().reserved, 40);
        let c = budget.reserve(60).unwrap();
        drop((b, c));
        let gauges = budget.gauges();
        assert_eq!((gauges.limit, gauges.reserved, gauges.refused_busy, gauges.refused_too_large), (100, 0, 1, 0));
    }

    #[test]
    fn more_than_the_whole_budget_is_refused_at_once_whatever_the_wait() {
        let budget = Budget::new(100, LONG);
        let started = Instant::now();
        assert_eq!(budget.reserve(101).unwrap_err(), Refused::TooLarge);
        assert!(started.elapsed() < Duration::from_secs(1), "it did not wait: {:?}", started.elapsed());
        assert_eq!(budget.gauges().refused_too_large, 1);
        assert!(budget.reserve(100).is_ok(), "the whole budget at once is allowed");
    }

    #[test]
    fn a_request_without_room_waits_for_a_reservation_to_be_given_back() {
        let budget = Budget::new(100, LONG);
        let held = budget.reserve(80).unwrap();
        let (done, got) = mpsc::channel();
        let waiter = budget.clone();
        std::thread::spawn(move || done.send(waiter.reserve(50).map(|r| r.bytes)));
        assert!(got.recv_timeout(Duration::from_millis(200)).is_err(), "no room yet: it waits");
        drop(held);
        assert_eq!(got.recv_timeout(LONG).unwrap(), Ok(50), "room came: it was served");
        assert_eq!(budget.gauges().reserved, 0, "and its reservation ended with the thread");
    }

    #[test]
    fn a_request_waits_no_longer_than_the_wait() {
        let budget = Budget::new(100, Duration::from_millis(100));
        let _held = budget.reserve(100).unwrap();
        let started = Instant::now();
        assert_eq!(budget.reserve(1).unwrap_err(), Refused::Busy);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(5), "{waited:?}");
        assert_eq!((budget.gauges().refused_busy, budget.gauges().reserved), (1, 100));
    }
}

//! How the EHR client waits on its EHR without holding a lock across a call: `Flights`, one fetch in flight
//! per key (an introspection per token, a Patient read per patient) that the other requests needing that
//! key join; `Flight`, one cached value (discovery, the backend token) fetched the same way; `Gate`, a
//! bound on how many requests of one tenant may be waiting on its EHR at once; and `Caller`, one request's
//! deadline and its place in that gate.
//!
//! Invariants: no lock is held while a fetch runs; a waiter never waits past its deadline, and never starts
//! a fetch of its own when the one it joined fails (it shares the failure); a fetch that panics still
//! wakes its waiters; a key stays in a `Flights` map only while its fetch runs, so the map never holds more
//! entries than there are requests fetching; a `Gate` never lets more than its bound in. A caller needs a
//! place in the gate to call the EHR, whatever the age of the calls already made, and to wait for another's
//! call once that call is no longer young (`Caller::needs_place_at`, the one place that rule is decided).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::http::ApiError;

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // Every state here is consistent at every unlock, so a poisoned lock is still good to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One fetch per key at a time, which the other callers asking for that key join.
#[derive(Debug)]
pub struct Flights<K, T> {
    what: &'static str,
    /// The fetches running now, by key.
    running: Mutex<HashMap<K, Arc<Fetch<T>>>>,
}

/// One fetch in flight, shared by the caller running it and those waiting for it.
#[derive(Debug)]
struct Fetch<T> {
    started: Instant,
    state: Mutex<Outcome<T>>,
    ended: Condvar,
}

#[derive(Debug)]
struct Outcome<T> {
    /// `None` while the fetch runs.
    result: Option<Result<T, ApiError>>,
    /// How many callers wait for it.
    waiting: usize,
}

/// A caller's part in the fetch of a key, as `Flights::turn` decides it.
pub enum Turn<'a, K: Hash + Eq, T> {
    /// Known without a fetch: what `settled` said, or why the caller may not fetch.
    Known(Result<T, ApiError>),
    /// Another caller's fetch of the key is in flight.
    Join(Joined<T>),
    /// This caller fetches, and the others join it.
    Lead(Lead<'a, K, T>),
}

/// The fetch in flight that a caller joined.
pub struct Joined<T> {
    what: &'static str,
    fetch: Arc<Fetch<T>>,
}

/// The fetch a caller runs; dropping it (also by a panic) ends the fetch and wakes the waiters.
pub struct Lead<'a, K: Hash + Eq, T> {
    flights: &'a Flights<K, T>,
    key: K,
    fetch: Arc<Fetch<T>>,
    /// `None` until the fetch returned: when it panicked.
    result: Option<Result<T, ApiError>>,
}

impl<K: Hash + Eq + Clone, T: Clone> Flights<K, T> {
    /// `what` names the values in errors and the log: "introspection", "patient read".
    pub fn new(what: &'static str) -> Flights<K, T> {
        Flights { what, running: Mutex::new(HashMap::new()) }
    }

    /// How the caller takes part in the fetch of `key`: it joins the fetch already in flight; else it is
    /// told what `settled` already knows (a cached value, a failure still to repeat), asked with the map
    /// locked, so that the cache a fetch filled before it ended is seen and the fetch is not repeated; else
    /// it leads a fetch of its own, once `enter` let it (the refusal of `enter` is `Known`).
    pub fn turn(
        &self,
        key: K,
        settled: impl FnOnce() -> Option<Result<T, ApiError>>,
        enter: impl FnOnce() -> Result<(), ApiError>,
    ) -> Turn<'_, K, T> {
        let mut running = lock(&self.running);
        if let Some(fetch) = running.get(&key) {
            return Turn::Join(Joined { what: self.what, fetch: Arc::clone(fetch) });
        }
        if let Some(known) = settled() {
            return Turn::Known(known);
        }
        if let Err(refused) = enter() {
            return Turn::Known(Err(refused));
        }
        let outcome = Mutex::new(Outcome { result: None, waiting: 0 });
        let fetch = Arc::new(Fetch { started: Instant::now(), state: outcome, ended: Condvar::new() });
        running.insert(key.clone(), Arc::clone(&fetch));
        Turn::Lead(Lead { flights: self, key, fetch, result: None })
    }

    /// The outcome for `key`: that of the fetch in flight, waited for until `wait` (`None`: not waited for,
    /// 503 at once); else what `settled` knows; else that of this caller's own `fetch`, run with no lock held.
    pub fn get(
        &self,
        key: K,
        wait: Option<Instant>,
        settled: impl FnOnce() -> Option<Result<T, ApiError>>,
        fetch: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        match self.turn(key, settled, || Ok(())) {
            Turn::Known(known) => known,
            Turn::Lead(lead) => lead.run(fetch),
            Turn::Join(joined) => match wait {
                Some(deadline) => joined.outcome(deadline),
                None => Err(ApiError::Unavailable(format!("{}: another request is fetching it", self.what))),
            },
        }
    }

    #[cfg(test)]
    fn waiting(&self, key: &K) -> usize {
        lock(&self.running).get(key).map_or(0, |f| lock(&f.state).waiting)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.running).len()
    }
}

impl<T: Clone> Joined<T> {
    /// The fetch's outcome, waited for until `deadline`; 503 then.
    pub fn outcome(&self, deadline: Instant) -> Result<T, ApiError> {
        self.fetch
            .wait(deadline)
            .unwrap_or_else(|| Err(ApiError::Unavailable(format!("{}: timed out waiting for it", self.what))))
    }

    /// The fetch's outcome for `caller`: waited for without a place in its gate until it needs one
    /// (`Caller::needs_place_at`), then in its place (its refusal, when it gets none) until its deadline.
    pub fn outcome_for(&self, caller: &mut Caller<'_>) -> Result<T, ApiError> {
        if let Some(result) = self.fetch.wait(caller.needs_place_at(self.fetch.started)) {
            return result;
        }
        caller.enter()?;
        self.outcome(caller.deadline)
    }
}

impl<K: Hash + Eq, T: Clone> Lead<'_, K, T> {
    /// Runs the fetch, with no lock held, and hands its result to the callers that joined it.
    pub fn run(mut self, fetch: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
        let result = fetch();
        self.result = Some(result.clone());
        result
    }
}

impl<K: Hash + Eq, T> Drop for Lead<'_, K, T> {
    fn drop(&mut self) {
        let what = self.flights.what;
        let result =
            self.result.take().unwrap_or_else(|| Err(ApiError::Internal(format!("{what}: the fetch panicked"))));
        // Out of the map first: a caller that comes after finds what the fetch left in the cache, or starts
        // a fetch of its own, and never waits for this one.
        lock(&self.flights.running).remove(&self.key);
        lock(&self.fetch.state).result = Some(result);
        self.fetch.ended.notify_all();
    }
}

impl<T: Clone> Fetch<T> {
    /// The fetch's result, if it ends by `until`.
    fn wait(&self, until: Instant) -> Option<Result<T, ApiError>> {
        let mut state = lock(&self.state);
        state.waiting += 1;
        let result = loop {
            if let Some(result) = &state.result {
                break Some(result.clone());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            state = self.ended.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
        };
        state.waiting -= 1;
        result
    }
}

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
    known: Mutex<Known<T>>,
    fetching: Flights<(), (T, u64)>,
}

#[derive(Debug)]
struct Known<T> {
    /// The value and until when it may be used (Unix seconds).
    value: Option<(T, u64)>,
    /// The error of the last fetch, when it failed, and when it started (Unix seconds).
    failure: Option<(ApiError, u64)>,
}

impl<T> Known<T> {
    /// The value and its expiry, if it is fresh at `now`.
    fn fresh(&self, now: u64) -> Option<&(T, u64)> {
        self.value.as_ref().filter(|(_, until)| now < *until)
    }
}

impl<T: Clone> Flight<T> {
    /// `what` names the value in errors and the log: "discovery", "backend token".
    pub fn new(what: &'static str) -> Flight<T> {
        Flight { known: Mutex::new(Known { value: None, failure: None }), fetching: Flights::new(what) }
    }

    /// The cached value if it is fresh at `now`.
    pub fn cached(&self, now: u64) -> Option<T> {
        lock(&self.known).fresh(now).map(|(v, _)| v.clone())
    }

    /// The cached value at `now` (Unix seconds), else the outcome of a fetch: this caller's own (`fetch`,
    /// run with no lock held, returning the value and until when it may be used), or the one already in
    /// flight, per `join`.
    pub fn get(&self, now: u64, join: Join, fetch: impl FnOnce() -> Result<(T, u64), ApiError>) -> Result<T, ApiError> {
        let (wait, backoff) = match join {
            Join::Wait(deadline) => (Some(deadline), None),
            Join::FailFast { backoff } => (None, Some(backoff)),
        };
        let settled = || {
            let known = lock(&self.known);
            if let Some(value) = known.fresh(now) {
                return Some(Ok(value.clone()));
            }
            let (e, at) = known.failure.as_ref()?;
            (now < at.saturating_add(backoff?)).then(|| Err(e.clone()))
        };
        let fetched = self.fetching.get((), wait, settled, || {
            // Failed until it ends, so that a fetch that panics holds off the next one for the backoff too.
            let panicked = ApiError::Internal(format!("{}: the fetch panicked", self.fetching.what));
            lock(&self.known).failure = Some((panicked, now));
            let result = fetch();
            let mut known = lock(&self.known);
            match &result {
                Ok(value) => {
                    known.value = Some(value.clone());
                    known.failure = None;
                }
                Err(e) => known.failure = Some((e.clone(), now)),
            }
            result
        });
        fetched.map(|(v, _)| v)
    }

    /// Drops the cached value if `stale` says so (a backend token the EHR refused), so the next caller
    /// fetches a new one; a value another caller already replaced is kept.
    pub fn forget_if(&self, stale: impl Fn(&T) -> bool) {
        let mut known = lock(&self.known);
        if known.value.as_ref().is_some_and(|(v, _)| stale(v)) {
            known.value = None;
        }
    }
}

/// At most `bound` holders at once. When all places are taken by holders that are still young (a healthy
/// EHR answers them within milliseconds), the next waits for one to come free, but no longer than until
/// the oldest holder is no longer young; once the places are held by old holders (a hung EHR), the next is
/// refused at once. So a burst of calls to a healthy but not instant EHR queues briefly instead of being
/// refused, and what waits for a place beyond the bound waits at most `young`.
#[derive(Debug)]
pub struct Gate {
    /// When each place was taken; `None` when it is free.
    places: Mutex<Vec<Option<Instant>>>,
    freed: Condvar,
    young: Duration,
}

impl Gate {
    pub fn new(bound: usize, young: Duration) -> Gate {
        Gate { places: Mutex::new(vec![None; bound.max(1)]), freed: Condvar::new(), young }
    }

    /// A place; 503 when all are taken by holders older than `young`, or still all taken when the oldest
    /// holder grows old or at `deadline`.
    fn enter(&self, deadline: Instant) -> Result<usize, ApiError> {
        let mut places = lock(&self.places);
        loop {
            let now = Instant::now();
            if let Some(place) = places.iter().position(Option::is_none) {
                places[place] = Some(now);
                return Ok(place);
            }
            let oldest = places.iter().flatten().min().copied().unwrap_or(now);
            let until = (oldest + self.young).min(deadline);
            if now >= until {
                return Err(ApiError::Unavailable(format!(
                    "{} requests of this tenant are already waiting on its EHR",
                    places.len()
                )));
            }
            places = self.freed.wait_timeout(places, until - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn leave(&self, place: usize) {
        lock(&self.places)[place] = None;
        self.freed.notify_one();
    }

    #[cfg(test)]
    fn taken(&self) -> usize {
        lock(&self.places).iter().flatten().count()
    }
}

/// One request's business with the EHR: the deadline its calls share, and the place in its tenant's gate
/// that it takes before it first needs one and holds until it is dropped.
#[derive(Debug)]
pub struct Caller<'a> {
    gate: &'a Gate,
    place: Option<usize>,
    deadline: Instant,
}

impl<'a> Caller<'a> {
    pub fn new(gate: &'a Gate, deadline: Instant) -> Caller<'a> {
        Caller { gate, place: None, deadline }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Takes a place in the gate (once), needed to call the EHR; 503 when the tenant's share is taken.
    pub fn enter(&mut self) -> Result<(), ApiError> {
        if self.place.is_none() {
            self.place = Some(self.gate.enter(self.deadline)?);
        }
        Ok(())
    }

    /// When this caller, waiting for another's fetch that started at `started`, needs a place in the gate:
    /// once that fetch is older than the gate's `young`. A healthy EHR answers within it, so a burst joining
    /// one call waits for it without filling the gate; a hung one does not, and then its joiners hold places
    /// like its callers, so beyond the gate's bound a hung EHR holds workers only while a fetch is young.
    fn needs_place_at(&self, started: Instant) -> Instant {
        started.checked_add(self.gate.young).map_or(self.deadline, |t| t.min(self.deadline))
    }
}

impl Drop for Caller<'_> {
    fn drop(&mut self) {
        if let Some(place) = self.place.take() {
            self.gate.leave(place);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread::JoinHandle;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    fn down() -> ApiError {
        ApiError::Unavailable("down".into())
    }

    /// Nothing is known without a fetch.
    fn unknown() -> Option<Result<u32, ApiError>> {
        None
    }

    /// Runs `run` on a thread of its own, handing it `hold`, which a fetch calls to stay in flight until
    /// the returned sender releases it; returns once the fetch is in flight.
    fn in_flight<R: Send + 'static>(
        run: impl FnOnce(&dyn Fn()) -> R + Send + 'static,
    ) -> (JoinHandle<R>, mpsc::Sender<()>) {
        let (tx_started, rx_started) = mpsc::channel::<()>();
        let (tx_release, rx_release) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            run(&|| {
                tx_started.send(()).unwrap();
                rx_release.recv().unwrap();
            })
        });
        rx_started.recv().unwrap();
        (thread, tx_release)
    }

    type Shared = Arc<Flights<&'static str, u32>>;

    /// A fetch of "a" in flight on a thread of its own, ending with `end` once released.
    fn leader(f: &Shared, end: fn() -> Result<u32, ApiError>) -> (JoinHandle<Result<u32, ApiError>>, mpsc::Sender<()>) {
        let f = Arc::clone(f);
        in_flight(move |hold| {
            f.get("a", Some(soon()), unknown, || {
                hold();
                end()
            })
        })
    }

    /// A caller of "a" on a thread of its own; returns once it waits for the fetch in flight.
    fn waiter(f: &Shared) -> JoinHandle<Result<u32, ApiError>> {
        let waiting = f.waiting(&"a");
        let thread = {
            let f = Arc::clone(f);
            std::thread::spawn(move || f.get("a", Some(soon()), unknown, || panic!("a waiter must not fetch")))
        };
        while f.waiting(&"a") == waiting {
            std::thread::yield_now();
        }
        thread
    }

    #[test]
    fn waiters_share_one_fetch_per_key_and_its_failure() {
        let f = Shared::new(Flights::new("x"));
        let (leader, release) = leader(&f, || Err(down()));
        let (first, second) = (waiter(&f), waiter(&f));
        assert_eq!(f.get("b", Some(soon()), unknown, || Ok(2)), Ok(2), "another key is fetched at once");
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Err(down()));
        assert_eq!(first.join().unwrap(), Err(down()), "the waiters share the failure");
        assert_eq!(second.join().unwrap(), Err(down()));
        assert_eq!(f.len(), 0, "no fetch is left in the map");
        assert_eq!(f.get("a", Some(soon()), unknown, || Ok(1)), Ok(1), "the next caller fetches again");
        assert_eq!(f.get("a", Some(soon()), || Some(Ok(7)), || panic!("settled: no fetch")), Ok(7));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline() {
        let f = Shared::new(Flights::new("x"));
        let (leader, release) = leader(&f, || Ok(1));
        let late = f.get("a", Some(Instant::now()), unknown, || panic!("a waiter must not fetch"));
        assert!(matches!(late, Err(ApiError::Unavailable(_))), "{late:?}");
        let refused = f.get("a", None, unknown, || panic!("a caller that does not wait must not fetch"));
        assert!(matches!(refused, Err(ApiError::Unavailable(_))), "{refused:?}");
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Ok(1));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_panicking_fetch_ends_the_flight_and_wakes_its_waiters() {
        let f = Shared::new(Flights::new("x"));
        let (leader, release) = leader(&f, || panic!("boom"));
        let waiter = waiter(&f);
        release.send(()).unwrap();
        assert!(leader.join().is_err(), "the fetch panicked");
        assert!(matches!(waiter.join().unwrap(), Err(ApiError::Internal(_))), "the waiter is woken with a 500");
        assert_eq!(f.len(), 0, "the panic ended the flight");
        assert_eq!(f.get("a", Some(soon()), unknown, || Ok(2)), Ok(2), "the next caller fetches");
    }

    /// The fetch of "a" in flight, joined.
    fn join(f: &Shared) -> Joined<u32> {
        match f.turn("a", unknown, || panic!("a caller that joins does not enter")) {
            Turn::Join(joined) => joined,
            _ => panic!("the fetch in flight is joined"),
        }
    }

    /// A caller of `gate` that holds one of its places.
    fn holder(gate: &Gate) -> Caller<'_> {
        let mut caller = Caller::new(gate, soon());
        caller.enter().unwrap();
        caller
    }

    #[test]
    fn a_young_fetch_is_waited_for_without_a_place_and_an_old_one_only_in_one() {
        let f = Shared::new(Flights::new("x"));
        let (leader, release) = leader(&f, || Ok(1));
        // Gates of one place: one that a fetch outgrows at once, one where it stays young for 20 s.
        let (old, free, young) =
            (Gate::new(1, Duration::ZERO), Gate::new(1, Duration::ZERO), Gate::new(1, Duration::from_secs(20)));
        let (_old_holder, _young_holder) = (holder(&old), holder(&young));
        let refused = join(&f).outcome_for(&mut Caller::new(&old, soon()));
        assert!(matches!(refused, Err(ApiError::Unavailable(_))), "past its youth, no place: refused at once");
        std::thread::scope(|s| {
            let in_place = s.spawn(|| join(&f).outcome_for(&mut Caller::new(&free, soon())));
            let placeless = s.spawn(|| join(&f).outcome_for(&mut Caller::new(&young, soon())));
            while f.waiting(&"a") < 2 || free.taken() < 1 {
                std::thread::yield_now();
            }
            release.send(()).unwrap();
            assert_eq!(leader.join().unwrap(), Ok(1));
            assert_eq!(in_place.join().unwrap(), Ok(1), "a waiter in its place shares the outcome");
            assert_eq!(placeless.join().unwrap(), Ok(1), "so does one without a place, never asking for one");
        });
        let mut refused = Caller::new(&old, soon());
        assert!(matches!(f.turn("b", unknown, || refused.enter()), Turn::Known(Err(_))), "no place, no fetch");
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn cached_until_it_expires() {
        let f = Flight::new("x");
        assert_eq!(f.get(10, Join::Wait(soon()), || Ok((1, 20))), Ok(1));
        assert_eq!(f.get(19, Join::Wait(soon()), || Ok((2, 30))), Ok(1), "fresh: not fetched again");
        assert_eq!(f.get(20, Join::Wait(soon()), || Ok((3, 30))), Ok(3), "expired: fetched again");
        f.forget_if(|v| *v == 1);
        assert_eq!(f.cached(21), Some(3), "a value already replaced is kept");
        f.forget_if(|v| *v == 3);
        assert_eq!(f.cached(21), None);
    }

    #[test]
    fn fail_fast_neither_waits_nor_fetches_again_within_the_backoff() {
        let f = Arc::new(Flight::<u32>::new("x"));
        let (leader, release) = {
            let f = Arc::clone(&f);
            in_flight(move |hold| {
                f.get(0, Join::Wait(soon()), || {
                    hold();
                    Err(down())
                })
            })
        };
        let busy = f.get(0, Join::FailFast { backoff: 0 }, || panic!("another fetch is in flight"));
        assert!(matches!(busy, Err(ApiError::Unavailable(_))), "fail fast while another fetches: {busy:?}");
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Err(down()));
        let backoff = Join::FailFast { backoff: 5 };
        assert_eq!(f.get(4, backoff, || panic!("within the backoff")), Err(down()), "the failure, repeated");
        assert_eq!(f.get(0, Join::Wait(soon()), || Ok((1, 9))), Ok(1), "a caller that waits fetches at once");
        f.forget_if(|_| true);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.get(10, backoff, || panic!("boom"))));
        assert!(panicked.is_err());
        assert!(matches!(f.get(14, backoff, || Ok((2, 99))), Err(ApiError::Internal(_))), "a panic is a failure");
        assert_eq!(f.get(15, backoff, || Ok((2, 99))), Ok(2), "after the backoff");
    }

    #[test]
    fn the_gate_lets_in_at_most_its_bound() {
        let g = Gate::new(2, Duration::ZERO);
        let (a, _b) = (holder(&g), holder(&g));
        let mut next = Caller::new(&g, soon());
        assert!(matches!(next.enter(), Err(ApiError::Unavailable(_))), "old holders: refused at once");
        drop(a);
        assert!(next.enter().is_ok());
        // Young holders: the next waits for a place, up to when the oldest is no longer young.
        let g = Gate::new(1, Duration::from_millis(300));
        let held = holder(&g);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| Caller::new(&g, soon()).enter().is_ok());
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            assert!(waiter.join().unwrap(), "a place freed while the holder was young is taken");
        });
        let _held = holder(&g);
        let started = Instant::now();
        assert!(matches!(Caller::new(&g, soon()).enter(), Err(ApiError::Unavailable(_))), "refused once it is old");
        assert!(started.elapsed() >= Duration::from_millis(200), "after waiting for it to grow old");
        let late = Caller::new(&g, Instant::now()).enter();
        assert!(matches!(late, Err(ApiError::Unavailable(_))), "never past the deadline");
    }
}

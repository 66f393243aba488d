//! One cached single flight, `Flight`: the EHR's answers kept by key until they expire, and one fetch in
//! flight per key that the others asking for that key join and share the outcome of. The single values
//! (discovery, the backend token) are flights keyed by `()`, introspections are keyed by a hash of the
//! token, Patient reads by the patient's id. `Gate` bounds how many requests of one tenant wait on its EHR
//! at once, and `Caller` is one request's part in it: its deadline and, once it took one, its place.
//!
//! Invariants: no lock is held while a fetch runs; a caller never waits past its deadline, and never starts
//! a fetch of its own when the one it joined fails (it shares the failure); a fetch that panics still ends
//! and wakes its waiters; a key is in flight only while its fetch runs, so there are never more fetches in
//! flight than callers fetching; at most `capacity` answers are kept (when full, expired ones make room
//! first, then the one that would expire soonest), and none is given at or after its expiry; a failure is
//! kept only for `backoff` seconds, and told only to callers that do not wait; a `Gate` never lets more than
//! its bound in. A caller needs a place in the gate to fetch, whatever the age of the fetches in flight, and
//! to wait for another's fetch once that fetch is no longer young (`Caller::needs_place_at`).

use std::collections::HashMap;
use std::hash::Hash;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::cache::TtlCache;
use crate::http::ApiError;

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // Every state here is consistent at every unlock, so a poisoned lock is still good to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers by key, kept until they expire, each fetched by one caller at a time while the others asking
/// for it join that fetch.
#[derive(Debug)]
pub struct Flight<K, V> {
    /// Names the answers in errors and the log: "discovery", "introspection", "patient read".
    what: &'static str,
    /// The cache's name in the metrics, when its lookups are counted there.
    counted: Option<&'static str>,
    /// How long a failure is kept (seconds); 0: not at all.
    backoff: u64,
    /// The answers (a failure kept for `backoff`), shared by readers.
    answers: RwLock<TtlCache<K, Result<V, ApiError>>>,
    /// The fetches in flight, by key.
    running: Mutex<HashMap<K, Arc<Fetch<V>>>>,
}

/// One fetch in flight, shared by the caller running it and those that joined it.
#[derive(Debug)]
struct Fetch<V> {
    started: Instant,
    /// `None` while the fetch runs.
    result: Mutex<Option<Result<V, ApiError>>>,
    ended: Condvar,
}

impl<K: Hash + Eq + Clone, V: Clone> Flight<K, V> {
    /// `what` names the answers in errors and the log; at most `capacity` answers are kept.
    pub fn new(what: &'static str, capacity: usize) -> Flight<K, V> {
        let (answers, running) = (RwLock::new(TtlCache::new(capacity)), Mutex::new(HashMap::new()));
        Flight { what, counted: None, backoff: 0, answers, running }
    }

    /// Counts the lookups in the metrics, as those of the cache `name`.
    pub fn counted(self, name: &'static str) -> Flight<K, V> {
        Flight { counted: Some(name), ..self }
    }

    /// Keeps a failure for `secs` seconds from when its fetch started: a caller that does not wait is told
    /// it instead of fetching again.
    pub fn backoff(self, secs: u64) -> Flight<K, V> {
        Flight { backoff: secs, ..self }
    }

    /// The answer kept for `key`, if it is fresh at `now` (Unix seconds).
    pub fn cached(&self, key: &K, now: u64) -> Option<V> {
        let answers = self.answers.read().unwrap_or_else(|e| e.into_inner());
        answers.get(key, now).and_then(Result::ok)
    }

    /// The answer for `key` at `now` (Unix seconds): the one kept; else the outcome of the fetch of `key` in
    /// flight, joined as `caller` may; else that of the caller's own `fetch`, run once the caller has a place
    /// in its gate, with no lock held, and returning the answer and until when it may be kept (an answer
    /// that expires by `now` is not kept).
    pub fn get(
        &self,
        key: K,
        now: u64,
        caller: &mut Caller<'_>,
        fetch: impl FnOnce(&mut Caller<'_>) -> Result<(V, u64), ApiError>,
    ) -> Result<V, ApiError> {
        let cached = self.cached(&key, now);
        if let Some(name) = self.counted {
            crate::metrics::cache(name, cached.is_some());
        }
        if let Some(answer) = cached {
            return Ok(answer);
        }
        let mut running = lock(&self.running);
        if let Some(other) = running.get(&key).cloned() {
            drop(running);
            return self.join(&other, caller);
        }
        // Asked with `running` locked, so that what a fetch kept just before it ended is not fetched again.
        let answers = self.answers.read().unwrap_or_else(|e| e.into_inner());
        if let Some(answer) = answers.get(&key, now).filter(|a| a.is_ok() || !caller.waits) {
            return answer;
        }
        drop(answers);
        caller.enter()?;
        let lead = Arc::new(Fetch { started: Instant::now(), result: Mutex::new(None), ended: Condvar::new() });
        running.insert(key.clone(), Arc::clone(&lead));
        drop(running);
        let outcome = catch_unwind(AssertUnwindSafe(|| fetch(caller)));
        let shared = match &outcome {
            Ok(Ok((answer, until))) => {
                self.keep(key.clone(), Ok(answer.clone()), *until, now);
                Ok(answer.clone())
            }
            Ok(Err(e)) => Err(e.clone()),
            Err(_) => Err(ApiError::Internal(format!("{}: the fetch panicked", self.what))),
        };
        if let (Err(e), 1..) = (&shared, self.backoff) {
            self.keep(key.clone(), Err(e.clone()), now.saturating_add(self.backoff), now);
        }
        // Out of flight first: a caller that comes after finds what the fetch kept, or starts a fetch of its
        // own, and never waits for this one.
        lock(&self.running).remove(&key);
        *lock(&lead.result) = Some(shared);
        lead.ended.notify_all();
        outcome.unwrap_or_else(|panic| resume_unwind(panic)).map(|(answer, _)| answer)
    }

    /// The outcome of another caller's fetch: waited for without a place in the gate until the caller needs
    /// one, then in its place until its deadline; 503 at once for a caller that does not wait.
    fn join(&self, fetch: &Fetch<V>, caller: &mut Caller<'_>) -> Result<V, ApiError> {
        if !caller.waits {
            return Err(ApiError::Unavailable(format!("{}: another request is fetching it", self.what)));
        }
        if let Some(result) = fetch.wait(caller.needs_place_at(fetch.started)) {
            return result;
        }
        caller.enter()?;
        let timed_out = || ApiError::Unavailable(format!("{}: timed out waiting for it", self.what));
        fetch.wait(caller.deadline).unwrap_or_else(|| Err(timed_out()))
    }

    /// Keeps `answer` for `key` until `until`; one that expires by `now` is not kept at all.
    fn keep(&self, key: K, answer: Result<V, ApiError>, until: u64, now: u64) {
        self.answers.write().unwrap_or_else(|e| e.into_inner()).insert(key, answer, until, now);
    }

    /// Drops the answer kept for `key` if `stale` says so (a backend token the EHR refused), so the next
    /// caller fetches a new one; an answer another caller already replaced is kept.
    pub fn forget_if(&self, key: &K, stale: impl Fn(&V) -> bool) {
        let mut answers = self.answers.write().unwrap_or_else(|e| e.into_inner());
        answers.remove_if(key, |answer| answer.as_ref().is_ok_and(&stale));
    }

    /// How many fetches are in flight.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        lock(&self.running).len()
    }

    /// How many callers joined the fetch of `key` in flight: its references beyond the map's and its leader's.
    #[cfg(test)]
    fn joined(&self, key: &K) -> usize {
        lock(&self.running).get(key).map_or(0, |f| Arc::strong_count(f) - 2)
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.answers.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl<V: Clone> Fetch<V> {
    /// The fetch's result, if it ends by `until`.
    fn wait(&self, until: Instant) -> Option<Result<V, ApiError>> {
        let mut result = lock(&self.result);
        loop {
            if let Some(result) = &*result {
                return Some(result.clone());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            result = self.ended.wait_timeout(result, left).unwrap_or_else(|e| e.into_inner()).0;
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
    /// Whether it waits for another's fetch; one that does not is refused at once, and told a failure kept
    /// within a flight's backoff instead of fetching again.
    waits: bool,
}

impl<'a> Caller<'a> {
    /// A caller that waits for others' fetches until `deadline`.
    pub fn new(gate: &'a Gate, deadline: Instant) -> Caller<'a> {
        Caller { gate, place: None, deadline, waits: true }
    }

    /// A caller that never waits for another's fetch, nor fetches again within a flight's backoff.
    pub fn impatient(gate: &'a Gate, deadline: Instant) -> Caller<'a> {
        Caller { gate, place: None, deadline, waits: false }
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

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    fn down() -> ApiError {
        ApiError::Unavailable("down".into())
    }

    /// A gate that always has a place, where a fetch is never young: its callers wait in their place.
    fn roomy() -> Gate {
        Gate::new(64, Duration::ZERO)
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

    type Shared = Arc<Flight<&'static str, u32>>;

    /// `key` asked at time 0 by a caller waiting until `deadline`, whose own `fetch` keeps nothing.
    fn ask(
        f: &Shared,
        key: &'static str,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<u32, ApiError>,
    ) -> Result<u32, ApiError> {
        let gate = roomy();
        f.get(key, 0, &mut Caller::new(&gate, deadline), |_| fetch().map(|v| (v, 0)))
    }

    /// A fetch of "a" in flight on a thread of its own, ending with `end` once released.
    fn leader(f: &Shared, end: fn() -> Result<u32, ApiError>) -> (JoinHandle<Result<u32, ApiError>>, mpsc::Sender<()>) {
        let f = Arc::clone(f);
        in_flight(move |hold| {
            ask(&f, "a", soon(), || {
                hold();
                end()
            })
        })
    }

    /// A caller of "a" on a thread of its own; returns once it joined the fetch in flight.
    fn waiter(f: &Shared) -> JoinHandle<Result<u32, ApiError>> {
        let joined = f.joined(&"a");
        let thread = {
            let f = Arc::clone(f);
            std::thread::spawn(move || ask(&f, "a", soon(), || panic!("a waiter must not fetch")))
        };
        while f.joined(&"a") == joined {
            std::thread::yield_now();
        }
        thread
    }

    #[test]
    fn waiters_share_one_fetch_per_key_and_its_failure() {
        let f = Shared::new(Flight::new("x", 8));
        let (leader, release) = leader(&f, || Err(down()));
        let (first, second) = (waiter(&f), waiter(&f));
        assert_eq!(ask(&f, "b", soon(), || Ok(2)), Ok(2), "another key is fetched at once");
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Err(down()));
        assert_eq!(first.join().unwrap(), Err(down()), "the waiters share the failure");
        assert_eq!(second.join().unwrap(), Err(down()));
        assert_eq!(f.in_flight(), 0, "no fetch is left in flight");
        assert_eq!(ask(&f, "a", soon(), || Ok(1)), Ok(1), "the next caller fetches again");
        let gate = roomy();
        assert_eq!(f.get("a", 0, &mut Caller::new(&gate, soon()), |_| Ok((7, 10))), Ok(7));
        assert_eq!(ask(&f, "a", soon(), || panic!("kept: no fetch")), Ok(7));
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn a_waiter_gives_up_at_its_deadline() {
        let f = Shared::new(Flight::new("x", 8));
        let (leader, release) = leader(&f, || Ok(1));
        let late = ask(&f, "a", Instant::now(), || panic!("a waiter must not fetch"));
        assert!(matches!(late, Err(ApiError::Unavailable(_))), "{late:?}");
        let gate = roomy();
        let mut impatient = Caller::impatient(&gate, soon());
        let refused = f.get("a", 0, &mut impatient, |_| panic!("a caller that does not wait must not fetch"));
        assert!(matches!(refused, Err(ApiError::Unavailable(_))), "{refused:?}");
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Ok(1));
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn a_panicking_fetch_ends_the_flight_and_wakes_its_waiters() {
        let f = Shared::new(Flight::new("x", 8));
        let (leader, release) = leader(&f, || panic!("boom"));
        let waiter = waiter(&f);
        release.send(()).unwrap();
        assert!(leader.join().is_err(), "the fetch panicked");
        assert!(matches!(waiter.join().unwrap(), Err(ApiError::Internal(_))), "the waiter is woken with a 500");
        assert_eq!(f.in_flight(), 0, "the panic ended the flight");
        assert_eq!(ask(&f, "a", soon(), || Ok(2)), Ok(2), "the next caller fetches");
    }

    /// A caller of `gate` that holds one of its places.
    fn holder(gate: &Gate) -> Caller<'_> {
        let mut caller = Caller::new(gate, soon());
        caller.enter().unwrap();
        caller
    }

    #[test]
    fn a_young_fetch_is_waited_for_without_a_place_and_an_old_one_only_in_one() {
        let f = Shared::new(Flight::new("x", 8));
        let (leader, release) = leader(&f, || Ok(1));
        // Gates of one place: two where a fetch is old at once, one where it stays young for 20 s.
        let (old, free, young) =
            (Gate::new(1, Duration::ZERO), Gate::new(1, Duration::ZERO), Gate::new(1, Duration::from_secs(20)));
        let (_old_holder, _young_holder) = (holder(&old), holder(&young));
        let join = |gate: &Gate| {
            f.get("a", 0, &mut Caller::new(gate, soon()), |_| panic!("a caller that joins does not fetch"))
        };
        let asked = Instant::now();
        let refused = join(&old);
        assert!(matches!(refused, Err(ApiError::Unavailable(_))), "past its youth, no place: refused");
        assert!(asked.elapsed() < Duration::from_secs(10), "at once, not at the deadline");
        std::thread::scope(|s| {
            let in_place = s.spawn(|| join(&free));
            let placeless = s.spawn(|| join(&young));
            while f.joined(&"a") < 2 || free.taken() < 1 {
                std::thread::yield_now();
            }
            release.send(()).unwrap();
            assert_eq!(leader.join().unwrap(), Ok(1));
            assert_eq!(in_place.join().unwrap(), Ok(1), "a waiter in its place shares the outcome");
            assert_eq!(placeless.join().unwrap(), Ok(1), "so does one without a place, never asking for one");
        });
        let refused = f.get("b", 0, &mut Caller::new(&old, soon()), |_| panic!("no place, no fetch"));
        assert!(matches!(refused, Err(ApiError::Unavailable(_))), "{refused:?}");
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn cached_until_it_expires() {
        let f = Flight::new("x", 1);
        let gate = roomy();
        let get = |now, fetched: (u32, u64)| f.get((), now, &mut Caller::new(&gate, soon()), |_| Ok(fetched));
        assert_eq!(get(10, (1, 20)), Ok(1));
        assert_eq!(get(19, (2, 30)), Ok(1), "fresh: not fetched again");
        assert_eq!(get(20, (3, 30)), Ok(3), "expired: fetched again");
        f.forget_if(&(), |v| *v == 1);
        assert_eq!(f.cached(&(), 21), Some(3), "a value already replaced is kept");
        f.forget_if(&(), |v| *v == 3);
        assert_eq!(f.cached(&(), 21), None);
    }

    #[test]
    fn expiry_is_exclusive() {
        let f = Flight::new("x", 4);
        let gate = roomy();
        let get = |key, now, fetched: (u32, u64)| f.get(key, now, &mut Caller::new(&gate, soon()), |_| Ok(fetched));
        assert_eq!(get("a", 50, (1, 100)), Ok(1));
        assert_eq!(f.cached(&"a", 99), Some(1));
        assert_eq!(f.cached(&"a", 100), None);
        assert_eq!(get("b", 10, (2, 10)), Ok(2));
        assert_eq!(f.cached(&"b", 0), None, "an answer already expired is not kept");
    }

    #[test]
    fn bounded() {
        let f = Flight::new("x", 3);
        let gate = roomy();
        let get = |key, now, until| f.get(key, now, &mut Caller::new(&gate, soon()), |_| Ok((key, until)));
        for (key, until) in [(1, 110), (2, 105), (3, 120), (4, 130)] {
            assert_eq!(get(key, 0, until), Ok(key));
        }
        assert_eq!(f.kept(), 3);
        assert_eq!(f.cached(&2, 0), None, "the soonest to expire made room");
        assert_eq!(get(5, 112, 200), Ok(5));
        assert_eq!(f.cached(&1, 112), None, "expired answers go first");
        assert_eq!(f.cached(&3, 112), Some(3));
        assert!(f.kept() <= 3);
    }

    #[test]
    fn fail_fast_neither_waits_nor_fetches_again_within_the_backoff() {
        let f = Arc::new(Flight::<(), u32>::new("x", 1).backoff(5));
        let (leader, release) = {
            let f = Arc::clone(&f);
            in_flight(move |hold| {
                let gate = roomy();
                f.get((), 0, &mut Caller::new(&gate, soon()), |_| {
                    hold();
                    Err(down())
                })
            })
        };
        let gate = roomy();
        let impatient = |now, fetch: fn() -> Result<(u32, u64), ApiError>| {
            f.get((), now, &mut Caller::impatient(&gate, soon()), |_| fetch())
        };
        let busy = impatient(0, || panic!("another fetch is in flight"));
        assert!(matches!(busy, Err(ApiError::Unavailable(_))), "fail fast while another fetches: {busy:?}");
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), Err(down()));
        assert_eq!(impatient(4, || panic!("within the backoff")), Err(down()), "the failure, repeated");
        let waits = f.get((), 0, &mut Caller::new(&gate, soon()), |_| Ok((1, 9)));
        assert_eq!(waits, Ok(1), "a caller that waits fetches at once");
        f.forget_if(&(), |_| true);
        let panicked = catch_unwind(AssertUnwindSafe(|| impatient(10, || panic!("boom"))));
        assert!(panicked.is_err());
        assert!(matches!(impatient(14, || Ok((2, 99))), Err(ApiError::Internal(_))), "a panic is a failure");
        assert_eq!(impatient(15, || Ok((2, 99))), Ok(2), "after the backoff");
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

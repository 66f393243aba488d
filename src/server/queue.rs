//! The queue between tiny_http and the workers, fair among connections: each connection has its own line,
//! and workers take from the connections in turn, one request of a connection at a time.
//!
//! A request that finds nothing waiting before it and a place free in service is claimed at once by the
//! thread that took it from tiny_http, which serves it itself: no handoff to a worker.
//!
//! Invariants: at most `serving_cap` requests are being handled at once (claimed or taken by workers, until
//! `handled`: a response handed to a writer thread no longer counts); the
//! requests of one connection are served in the order they came, and never two at once (the next is taken
//! only when the previous response is done, so no worker waits on tiny_http's per-connection writer
//! order); a request is claimed only when no other connection waits, so claiming never jumps the line. A connection counts once against the queue however many requests it pipelines, and past
//! `PER_CONNECTION` waiting requests it is closed; past `waiting_cap` connections waiting, a connection that
//! brings a new request gets 503. Nothing here writes to a socket or drops a request, so the threads that
//! push never block.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most requests one connection may have waiting at all; a pipelined burst beyond it closes the
/// connection.
pub const PER_CONNECTION: usize = 256;

/// Which connection a request came on. tiny_http gives every TCP request its peer address, which is unique
/// among open connections.
pub type Peer = Option<SocketAddr>;

/// Why a request is answered without being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many requests wait: 503 with `Retry-After`.
    Busy,
    /// The server is stopping: 503 with `Retry-After` and the connection closed.
    Stopping,
}

/// A request taken from the queue, with how to answer it.
pub struct Job<T> {
    pub peer: Peer,
    pub request: T,
    pub refusal: Option<Refusal>,
}

/// What `push` did with a request.
pub enum Pushed<T> {
    Queued,
    /// Nothing waited and a place in service was free: the caller serves the request now, and calls `done`.
    Claimed(Job<T>),
    /// Its connection already has `PER_CONNECTION` waiting: close the connection. The request comes back so
    /// that the caller can dispose of it without blocking.
    Overflow(T),
}

struct Line<T> {
    waiting: VecDeque<(T, Option<Refusal>)>,
    /// A request of this connection is being handled or its response written.
    busy: bool,
}

struct Inner<T> {
    lines: HashMap<Peer, Line<T>>,
    /// Connections with a request waiting and none in service, in the order they became so.
    ready: VecDeque<Peer>,
    waiting: usize,
    /// Connections with at least one request waiting.
    waiting_lines: usize,
    busy: usize,
    /// Requests taken (claimed or by a worker) and not yet `handled`.
    handling: usize,
    stopping: bool,
    closed: bool,
}

impl<T> Inner<T> {
    fn serving_full(&self, cap: usize) -> bool {
        self.handling >= cap
    }
}

pub struct Queue<T> {
    inner: Mutex<Inner<T>>,
    work: Condvar,
    /// Signalled whenever a connection stops being busy, for the shutdown drain.
    idle: Condvar,
    waiting_cap: usize,
    /// The most requests in service at once.
    serving_cap: usize,
}

/// How full the queue is, for the log and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// Requests waiting for a worker.
    pub waiting: usize,
    /// Connections whose request is being handled or written.
    pub busy: usize,
}

impl<T> Queue<T> {
    /// A queue that serves at most `serving_cap` requests at once and answers 503 past `waiting_cap`
    /// connections waiting.
    pub fn new(waiting_cap: usize, serving_cap: usize) -> Queue<T> {
        let inner = Inner {
            lines: HashMap::new(),
            ready: VecDeque::new(),
            waiting: 0,
            waiting_lines: 0,
            busy: 0,
            handling: 0,
            stopping: false,
            closed: false,
        };
        Queue { inner: Mutex::new(inner), work: Condvar::new(), idle: Condvar::new(), waiting_cap, serving_cap }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while the lock is held leaves plain counters and queues behind: keep serving with them.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a request behind the others of its connection; with `claim`, hands it back to be served at
    /// once when nothing waits and a place in service is free.
    pub fn push(&self, peer: Peer, request: T, claim: bool) -> Pushed<T> {
        let mut inner = self.lock();
        if claim && !inner.stopping && !inner.closed && inner.ready.is_empty() && !inner.serving_full(self.serving_cap)
        {
            let idle = inner.lines.get(&peer).is_none_or(|line| !line.busy && line.waiting.is_empty());
            if idle {
                inner.lines.insert(peer, Line { waiting: VecDeque::new(), busy: true });
                inner.busy += 1;
                inner.handling += 1;
                return Pushed::Claimed(Job { peer, request, refusal: None });
            }
        }
        let (stopping, full) = (inner.stopping, inner.waiting_lines >= self.waiting_cap);
        let line = inner.lines.entry(peer).or_insert_with(|| Line { waiting: VecDeque::new(), busy: false });
        if line.waiting.len() >= PER_CONNECTION {
            return Pushed::Overflow(request);
        }
        let refusal = if stopping {
            Some(Refusal::Stopping)
        } else if line.waiting.is_empty() && full {
            Some(Refusal::Busy)
        } else {
            None
        };
        let new_line = line.waiting.is_empty();
        line.waiting.push_back((request, refusal));
        let becomes_ready = !line.busy && new_line;
        inner.waiting += 1;
        if new_line {
            inner.waiting_lines += 1;
        }
        if becomes_ready {
            inner.ready.push_back(peer);
            self.work.notify_one();
        }
        Pushed::Queued
    }

    /// The next request to handle, taking connections in turn; `None` once the queue is closed and empty.
    pub fn next(&self) -> Option<Job<T>> {
        let mut inner = self.lock();
        loop {
            if inner.serving_full(self.serving_cap) && !inner.closed {
                inner = self.work.wait(inner).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            if let Some(peer) = inner.ready.pop_front() {
                let Some(line) = inner.lines.get_mut(&peer) else { continue };
                let Some((request, refusal)) = line.waiting.pop_front() else { continue };
                line.busy = true;
                let emptied = line.waiting.is_empty();
                inner.waiting -= 1;
                if emptied {
                    inner.waiting_lines -= 1;
                }
                inner.busy += 1;
                inner.handling += 1;
                return Some(Job { peer, request, refusal });
            }
            if inner.closed {
                return None;
            }
            inner = self.work.wait(inner).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// A request taken is handled: its response is written or handed to a writer thread, and its place
    /// among those being handled is free.
    pub fn handled(&self) {
        let mut inner = self.lock();
        inner.handling = inner.handling.saturating_sub(1);
        if !inner.ready.is_empty() {
            self.work.notify_one();
        }
    }

    /// The response to `peer`'s request in service is done: its next request may be taken.
    pub fn done(&self, peer: Peer) {
        let mut inner = self.lock();
        let Some(line) = inner.lines.get_mut(&peer) else { return };
        if !line.busy {
            return;
        }
        line.busy = false;
        let more = !line.waiting.is_empty();
        if !more {
            inner.lines.remove(&peer);
        }
        inner.busy -= 1;
        if more {
            inner.ready.push_back(peer);
            self.work.notify_one();
        }
        self.idle.notify_all();
    }

    /// From now on every new request is answered 503 and its connection closed (a graceful stop).
    pub fn stop_taking(&self) {
        self.lock().stopping = true;
    }

    /// Workers finish what waits, then `next` answers `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
    }

    /// Waits until nothing waits and nothing is in service, or until `deadline`; whether it got there.
    pub fn drained(&self, deadline: Instant) -> bool {
        let mut inner = self.lock();
        while inner.waiting > 0 || inner.busy > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let wait = left.min(Duration::from_millis(100));
            inner = self.idle.wait_timeout(inner, wait).map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        true
    }

    pub fn depth(&self) -> Depth {
        let inner = self.lock();
        Depth { waiting: inner.waiting, busy: inner.busy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> Peer {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn connections_are_served_in_turn_and_each_in_order() {
        let q = Queue::new(100, usize::MAX);
        for n in 0..3 {
            assert!(matches!(q.push(peer(1), format!("a{n}"), false), Pushed::Queued));
        }
        assert!(matches!(q.push(peer(2), "b0".to_string(), false), Pushed::Queued));
        let first = q.next().unwrap();
        assert_eq!((first.peer, first.request.as_str()), (peer(1), "a0"));
        // a1 waits for a0's response; b0 goes first.
        let second = q.next().unwrap();
        assert_eq!(second.request, "b0");
        assert_eq!(q.depth(), Depth { waiting: 2, busy: 2 });
        q.done(peer(1));
        assert_eq!(q.next().unwrap().request, "a1");
        q.done(peer(2));
        q.done(peer(1));
        assert_eq!(q.next().unwrap().request, "a2");
        q.done(peer(1));
        assert_eq!(q.depth(), Depth { waiting: 0, busy: 0 });
        assert!(q.lock().lines.is_empty(), "a connection with nothing left is forgotten");
    }

    #[test]
    fn one_connection_cannot_fill_the_queue() {
        let q = Queue::new(2, usize::MAX);
        for n in 0..PER_CONNECTION {
            assert!(matches!(q.push(peer(1), n, false), Pushed::Queued));
        }
        assert!(matches!(q.push(peer(1), 0, false), Pushed::Overflow(0)), "the burst's connection is closed");
        assert!(matches!(q.push(peer(2), 7, false), Pushed::Queued), "another connection still gets in");
        let a = q.next().unwrap();
        let b = q.next().unwrap();
        assert_eq!((a.request, b.request), (0, 7), "and is served next, not after the burst");
        assert_eq!(b.refusal, None, "the burst counts once against the queue, so the other is not refused");
        for n in 1..PER_CONNECTION {
            q.done(peer(1));
            let job = q.next().unwrap();
            assert_eq!((job.request, job.refusal), (n, None), "the burst is served in order, none refused");
        }
    }

    #[test]
    fn past_the_cap_requests_are_refused_in_their_turn() {
        let q = Queue::new(2, usize::MAX);
        for port in 1..=3 {
            assert!(matches!(q.push(peer(port), port, false), Pushed::Queued));
        }
        let refusals: Vec<Option<Refusal>> = (0..3).map(|_| q.next().unwrap().refusal).collect();
        assert_eq!(refusals, vec![None, None, Some(Refusal::Busy)], "two connections may wait, not three");
        q.stop_taking();
        q.push(peer(9), 9, false);
        q.done(peer(1));
        assert_eq!(q.next().unwrap().refusal, Some(Refusal::Stopping));
    }

    #[test]
    fn a_request_is_claimed_only_when_nothing_waits_and_a_place_is_free() {
        let q = std::sync::Arc::new(Queue::new(10, 2));
        let Pushed::Claimed(a) = q.push(peer(1), 1, true) else { panic!("nothing waits: claimed") };
        assert_eq!((a.peer, a.request), (peer(1), 1));
        assert!(matches!(q.push(peer(1), 2, true), Pushed::Queued), "its connection is in service: it waits");
        assert!(matches!(q.push(peer(2), 3, true), Pushed::Claimed(_)), "another connection, a place free");
        assert!(matches!(q.push(peer(3), 4, true), Pushed::Queued), "two being handled, the cap: queued");
        q.handled();
        q.done(peer(1));
        assert_eq!(q.depth(), Depth { waiting: 2, busy: 1 });
        assert!(matches!(q.push(peer(4), 5, true), Pushed::Queued), "others are ready: no jumping them");
        assert_eq!(q.next().unwrap().request, 4, "connections in turn");
        // Two being handled again: a worker waits for a place.
        let worker = {
            let q = std::sync::Arc::clone(&q);
            std::thread::spawn(move || q.next().unwrap().request)
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!worker.is_finished(), "no third request handled at once");
        // Peer 2's response goes to a writer thread: its place is free though it is still in service.
        q.handled();
        assert_eq!(worker.join().unwrap(), 2, "peer 1's second request, ready before peer 4's");
        assert_eq!(q.depth(), Depth { waiting: 1, busy: 3 });
        q.handled();
        q.handled();
        q.done(peer(2));
        q.stop_taking();
        q.done(peer(1));
        q.done(peer(3));
        assert!(matches!(q.push(peer(6), 6, true), Pushed::Queued), "a stopping queue claims nothing");
    }

    #[test]
    fn closing_ends_the_workers_once_drained() {
        let q = std::sync::Arc::new(Queue::new(10, usize::MAX));
        q.push(peer(1), 1, false);
        q.close();
        assert_eq!(q.next().unwrap().request, 1, "what waits is still served");
        q.done(peer(1));
        assert!(q.next().is_none());
        assert!(q.drained(Instant::now()));
    }
}

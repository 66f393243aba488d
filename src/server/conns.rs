//! When to close a connection that tiny_http holds, and when to bring a thread to one. tiny_http accepts
//! connections and reads their requests on threads of its own, without timeouts, without a bound on a
//! request head, and without a way for us to close a connection; the watch finds our connections among the
//! process's descriptors (`sys::sockets`), reads what each has sent, and acts on it.
//!
//! The rules, applied four times a second and at once when the process's resident memory grows fast:
//! - A connection must bring a complete request within `server.read_timeout` of being opened or of its
//!   previous response ending; one that does not (idle, or sending its head a byte at a time) is closed. A
//!   connection with a request in flight is left to the write timeout.
//! - A connection that has sent more than `HEAD_LIMIT` bytes beyond its last complete request is closed: no
//!   request head or form body is that long, and tiny_http would hold all of it in memory.
//! - Past `server.input_budget` bytes held by all connections' unfinished requests, the connections holding
//!   the most are closed until the rest fit.
//! - A response that failed half-way closes its connection at once, since its client would otherwise wait
//!   for bytes that will never come.
//! - Past `server.max_connections`, the newest connections without a request in flight are answered 503
//!   with `Retry-After` and closed.
//! - A connection whose bytes have waited unread for `UNREAD_FOR` while it has no request in flight gets a
//!   thread: tiny_http's pool can leave a connection it accepted in its queue while its threads serve other
//!   connections (two connections accepted while one thread was waking both go to that thread), and such a
//!   connection waits until another one closes. A connection of our own to the listener, closed at once,
//!   makes the pool start a thread, which takes the waiting connection when it is done with ours.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::sys::limits::resident_bytes;
use crate::sys::sockets::{Inbound, inbound_connections, input, refuse, shut_down};

/// The most a connection may send beyond its last complete request: the longest request head accepted
/// (target and header block) and a form body, with room to spare.
pub const HEAD_LIMIT: u64 = 128 * 1024;

/// How long bytes may wait on a connection that nobody reads before a thread is brought to it.
const UNREAD_FOR: Duration = Duration::from_millis(250);
/// How often the rules are applied when nothing hurries them.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How often the resident memory is looked at, and the growth since the last sweep that brings the next one
/// forward: a connection that streams a request line at loopback speed is seen within a few megabytes.
const LOOK_EVERY: Duration = Duration::from_millis(10);
const GROWTH: u64 = 8 << 20;

/// What the watch enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub read_timeout: Duration,
    pub max_connections: usize,
    /// The most all connections' unfinished requests may hold, in bytes.
    pub input_budget: u64,
}

impl Limits {
    /// The configuration's limits, with `max_connections` the connection cap in force.
    pub fn of(config: &crate::config::Config, max_connections: usize) -> Limits {
        Limits {
            read_timeout: Duration::from_secs(config.read_timeout),
            max_connections,
            input_budget: config.input_budget,
        }
    }
}

#[derive(Debug)]
pub struct Watch {
    /// The listening address: kicks connect to it.
    local: SocketAddr,
    limits: Limits,
    activity: Mutex<HashMap<SocketAddr, Activity>>,
    /// Open connections at the last sweep.
    open: AtomicUsize,
}

/// What a connection over the cap is sent before it is closed.
const OVER_CAP: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 34\r\nConnection: close\r\n\r\ntoo many connections; retry later\n";

/// The requests of one peer, as the server reports them.
#[derive(Debug, Clone, Copy, Default)]
struct Activity {
    in_flight: usize,
    last_done: Option<Instant>,
    /// Requests that arrived, ever.
    requests: u64,
}

/// What the sweeps remember of one socket (by inode).
#[derive(Debug, Clone, Copy)]
struct Seen {
    first: Instant,
    /// Shut down already: never acted on again, since tiny_http may close it and the number be reused.
    shut: bool,
    /// Its peer's requests when `mark` was taken, and the bytes read from it by then: what its complete
    /// requests used.
    requests: u64,
    mark: u64,
    /// Bytes read from it at the last sweep; since when input has waited unread without that changing; and
    /// whether a thread was brought to it for that wait.
    read: u64,
    waiting_since: Option<Instant>,
    kicked: bool,
}

impl Seen {
    fn new(now: Instant) -> Seen {
        Seen { first: now, shut: false, requests: 0, mark: 0, read: 0, waiting_since: None, kicked: false }
    }
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Swept {
    timed_out: usize,
    over_head: usize,
    over_budget: usize,
    over_cap: usize,
    kicks: usize,
}

impl Watch {
    pub fn new(local: SocketAddr, limits: Limits) -> Watch {
        Watch { local, limits, activity: Mutex::new(HashMap::new()), open: AtomicUsize::new(0) }
    }

    /// The connections open at the last sweep (a quarter of a second ago at most).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Whether more connections are open than the cap allows.
    pub fn over_cap(&self) -> bool {
        self.open() > self.limits.max_connections
    }

    /// A request from `peer` has arrived (queued or handled).
    pub fn started(&self, peer: Option<&SocketAddr>) {
        let (Some(peer), Ok(mut activity)) = (peer, self.activity.lock()) else { return };
        let a = activity.entry(*peer).or_default();
        a.in_flight += 1;
        a.requests += 1;
    }

    /// A response to `peer` has ended; `complete` says whether all of it was sent.
    pub fn finished(&self, peer: Option<&SocketAddr>, complete: bool) {
        let Some(peer) = peer else { return };
        if let Ok(mut activity) = self.activity.lock() {
            if let Some(a) = activity.get_mut(peer) {
                a.in_flight = a.in_flight.saturating_sub(1);
                a.last_done = Some(Instant::now());
            }
        }
        if !complete {
            for connection in inbound_connections(self.local.port()).iter().filter(|c| c.peer == *peer) {
                shut_down(connection);
            }
        }
    }

    /// Applies the rules for as long as the process runs: every `SWEEP_EVERY`, and sooner when the resident
    /// memory grew by `GROWTH` since its lowest point after the last sweep.
    pub fn run(&self) {
        let mut seen: HashMap<u64, Seen> = HashMap::new();
        let mut last = Instant::now();
        let mut low = resident_bytes().unwrap_or(0);
        loop {
            std::thread::sleep(LOOK_EVERY);
            let resident = resident_bytes().unwrap_or(0);
            low = low.min(resident);
            if last.elapsed() < SWEEP_EVERY && resident < low + GROWTH {
                continue;
            }
            let swept = self.sweep(&mut seen, Instant::now());
            self.report(&swept);
            for _ in 0..swept.kicks {
                self.kick();
            }
            last = Instant::now();
            low = resident_bytes().unwrap_or(resident);
        }
    }

    fn report(&self, swept: &Swept) {
        if swept.timed_out > 0 {
            log::debug!("closed {} connections that brought no request within the read timeout", swept.timed_out);
        }
        if swept.over_head > 0 {
            log::warn!(
                "closed {} connections that sent more than {HEAD_LIMIT} bytes without completing a request",
                swept.over_head
            );
        }
        if swept.over_budget > 0 {
            log::warn!(
                "closed {} connections holding the most unfinished requests: together they held more than \
                 server.input_budget ({} bytes)",
                swept.over_budget,
                self.limits.input_budget
            );
        }
        crate::metrics::connections_closed("read_timeout", swept.timed_out);
        crate::metrics::connections_closed("head_limit", swept.over_head);
        crate::metrics::connections_closed("input_budget", swept.over_budget);
        crate::metrics::connections_closed("over_cap", swept.over_cap);
        crate::metrics::connections_kicked(swept.kicks);
    }

    /// Applies the rules once; `seen` is what earlier sweeps remember of each socket.
    fn sweep(&self, seen: &mut HashMap<u64, Seen>, now: Instant) -> Swept {
        let mut connections = inbound_connections(self.local.port());
        // tiny_http holds two descriptors of each connection: one is enough to act on.
        connections.sort_by_key(|c| c.inode);
        connections.dedup_by_key(|c| c.inode);
        let Ok(mut activity) = self.activity.lock() else { return Swept::default() };
        let mut swept = Swept::default();
        let mut idle = Vec::new();
        let mut unfinished: Vec<(u64, &Inbound)> = Vec::new();
        for c in &connections {
            let s = seen.entry(c.inode).or_insert_with(|| Seen::new(now));
            if s.shut {
                continue;
            }
            let a = activity.get(&c.peer).copied().unwrap_or_default();
            let read = input(c).map(|i| (i.read(), i.unread));
            if let Some((read, unread)) = read {
                if a.requests != s.requests {
                    (s.requests, s.mark) = (a.requests, read);
                }
                // Input that waits while nothing reads it, and no request of the connection is in flight
                // (tiny_http reads a connection's next request only once the last one is answered).
                if unread > 0 && read == s.read && a.in_flight == 0 {
                    let since = *s.waiting_since.get_or_insert(now);
                    if now.duration_since(since) >= UNREAD_FOR && !s.kicked {
                        s.kicked = true;
                        swept.kicks += 1;
                    }
                } else {
                    s.waiting_since = None;
                    s.kicked &= read == s.read;
                }
                s.read = read;
                let held = read.saturating_sub(s.mark);
                if held > HEAD_LIMIT {
                    shut_down(c);
                    s.shut = true;
                    swept.over_head += 1;
                    continue;
                }
                if held > 0 {
                    unfinished.push((held, c));
                }
            }
            if a.in_flight > 0 {
                continue;
            }
            let since = a.last_done.map_or(s.first, |done| done.max(s.first));
            if now.duration_since(since) >= self.limits.read_timeout {
                shut_down(c);
                s.shut = true;
                swept.timed_out += 1;
            } else {
                idle.push((s.first, c));
            }
        }
        // Past the budget, the connections holding the most go first.
        let mut held: u64 = unfinished.iter().filter(|(_, c)| !seen[&c.inode].shut).map(|(n, _)| n).sum();
        if held > self.limits.input_budget {
            unfinished.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
            for (n, c) in unfinished {
                if held <= self.limits.input_budget {
                    break;
                }
                let s = seen.get_mut(&c.inode).expect("every listed connection was seen");
                if !s.shut {
                    shut_down(c);
                    s.shut = true;
                    swept.over_budget += 1;
                    held -= n;
                }
            }
        }
        let live = connections.iter().filter(|c| seen.get(&c.inode).is_some_and(|s| !s.shut)).count();
        let mut over = live.saturating_sub(self.limits.max_connections);
        if over > 0 {
            // Over the cap: the newest idle connections are told to come back later.
            idle.sort_by_key(|(first, _)| std::cmp::Reverse(*first));
            for (_, c) in idle {
                let Some(s) = seen.get_mut(&c.inode).filter(|s| !s.shut) else { continue };
                if over == 0 {
                    break;
                }
                refuse(c, OVER_CAP);
                s.shut = true;
                swept.over_cap += 1;
                over -= 1;
            }
        }
        self.open.store(live.saturating_sub(swept.over_cap), Ordering::SeqCst);
        // Forget what is gone: sockets closed, and peers without a connection.
        seen.retain(|inode, _| connections.iter().any(|c| c.inode == *inode));
        activity.retain(|peer, a| a.in_flight > 0 || connections.iter().any(|c| c.peer == *peer));
        swept
    }

    /// Brings a thread to a connection that waits in tiny_http's pool: a connection of our own to the
    /// listener, closed at once, which the pool gives a thread of its own when none is idle; done with it
    /// (nothing to read), that thread takes the connection that waited.
    fn kick(&self) {
        let ip = match self.local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        if let Err(e) = TcpStream::connect_timeout(&SocketAddr::new(ip, self.local.port()), Duration::from_secs(1)) {
            log::debug!("cannot bring a thread to a waiting connection: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream, SocketAddr) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        (client, accepted, peer)
    }

    fn watch(listener: &TcpListener, read_timeout: u64, input_budget: u64) -> Watch {
        let limits = Limits { read_timeout: Duration::from_secs(read_timeout), max_connections: 100, input_budget };
        Watch::new(listener.local_addr().unwrap(), limits)
    }

    /// Reads `n` bytes from `stream`, as tiny_http reads a request head it has not finished.
    fn consume(stream: &mut TcpStream, n: usize) {
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).unwrap();
    }

    /// Whether the client's side of a connection is still open (nothing to read, no close).
    fn still_open(client: &mut TcpStream) -> bool {
        client.set_nonblocking(true).unwrap();
        let mut one = [0u8; 1];
        let open = client.read(&mut one).is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock);
        client.set_nonblocking(false).unwrap();
        open
    }

    #[test]
    fn connections_without_a_request_in_time_are_closed_and_busy_ones_are_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = watch(&listener, 5, 1 << 20);
        let (mut dribbler, mut dribbled, _) = pair(&listener);
        let (mut busy_client, _busy, busy_peer) = pair(&listener);
        let (_fresh_client, _fresh, _) = pair(&listener);
        let mut seen = HashMap::new();
        let start = Instant::now();
        assert_eq!(watch.sweep(&mut seen, start), Swept::default(), "nothing is due yet");
        watch.started(Some(&busy_peer));
        // Bytes keep coming on the dribbler, but never a whole request: its deadline still passes.
        dribbler.write_all(b"G").unwrap();
        consume(&mut dribbled, 1);
        let later = start + Duration::from_secs(6);
        let swept = watch.sweep(&mut seen, later);
        assert_eq!(swept.timed_out, 2, "the dribbler and the idle one, not the busy one");
        assert_eq!(watch.sweep(&mut seen, later).timed_out, 0, "a socket is shut down once");
        let mut one = [0u8; 1];
        assert_eq!(dribbler.read(&mut one).unwrap(), 0, "the dribbler's client sees the close");
        assert!(still_open(&mut busy_client), "a connection with a request in flight stays open");
    }

    #[test]
    fn a_response_cut_short_closes_its_connection_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = watch(&listener, 60, 1 << 20);
        let (mut client, _accepted, peer) = pair(&listener);
        let (mut other_client, _other, other_peer) = pair(&listener);
        watch.started(Some(&peer));
        watch.started(Some(&other_peer));
        watch.finished(Some(&peer), false);
        let mut one = [0u8; 1];
        assert_eq!(client.read(&mut one).unwrap(), 0, "closed");
        watch.finished(Some(&other_peer), true);
        assert!(still_open(&mut other_client), "still open");
    }

    #[test]
    fn a_connection_that_sends_more_than_a_head_without_completing_a_request_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = watch(&listener, 60, 64 << 20);
        let (mut flooder, mut flooded, _) = pair(&listener);
        let (mut client, mut served, peer) = pair(&listener);
        let mut seen = HashMap::new();
        let now = Instant::now();
        let head = HEAD_LIMIT as usize;
        // The flooder's bytes are read (as tiny_http reads an endless request line) and never end a request.
        let flood = vec![b'a'; head];
        flooder.write_all(&flood).unwrap();
        consume(&mut flooded, flood.len());
        // The other connection sends as much, but in requests that complete.
        for _ in 0..3 {
            client.write_all(&vec![b'b'; head / 2]).unwrap();
            consume(&mut served, head / 2);
            watch.started(Some(&peer));
            watch.finished(Some(&peer), true);
            assert_eq!(watch.sweep(&mut seen, now).over_head, 0);
        }
        flooder.write_all(b"a").unwrap();
        consume(&mut flooded, 1);
        assert_eq!(watch.sweep(&mut seen, now).over_head, 1, "the flooder alone");
        let mut one = [0u8; 1];
        assert_eq!(flooder.read(&mut one).unwrap(), 0, "the flooder sees the close");
        assert!(still_open(&mut client), "a client whose requests complete stays");
    }

    #[test]
    fn past_the_input_budget_the_connections_holding_the_most_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = watch(&listener, 60, 150 * 1024);
        let mut seen = HashMap::new();
        let now = Instant::now();
        let sizes = [100 * 1024, 30 * 1024, 60 * 1024, 10 * 1024];
        let mut held: Vec<(TcpStream, TcpStream)> = Vec::new();
        for n in sizes {
            let (mut client, mut accepted, _) = pair(&listener);
            client.write_all(&vec![b'x'; n]).unwrap();
            consume(&mut accepted, n);
            held.push((client, accepted));
        }
        let swept = watch.sweep(&mut seen, now);
        assert_eq!(swept.over_budget, 1, "200 KiB held, 150 KiB allowed: the 100 KiB one goes and the rest fit");
        let mut one = [0u8; 1];
        assert_eq!(held[0].0.read(&mut one).unwrap(), 0, "the biggest is closed");
        for (client, _) in &mut held[1..] {
            assert!(still_open(client), "the others stay");
        }
    }

    #[test]
    fn input_that_waits_unread_without_a_request_in_flight_brings_one_thread_to_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = watch(&listener, 60, 1 << 20);
        let (mut waiting, _unread, _) = pair(&listener);
        let (mut busy, _busy_unread, busy_peer) = pair(&listener);
        waiting.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
        busy.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
        watch.started(Some(&busy_peer));
        let mut seen = HashMap::new();
        let start = Instant::now();
        // The bytes reach the socket's receive queue at once on loopback; give the kernel its moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while watch.sweep(&mut seen, start).kicks == 0 && seen.values().all(|s| s.waiting_since.is_none()) {
            assert!(Instant::now() < deadline, "the input was never seen waiting");
            std::thread::yield_now();
        }
        assert_eq!(watch.sweep(&mut seen, start + UNREAD_FOR / 2).kicks, 0, "not yet");
        assert_eq!(watch.sweep(&mut seen, start + UNREAD_FOR).kicks, 1, "the waiting one, not the busy one");
        assert_eq!(watch.sweep(&mut seen, start + UNREAD_FOR * 4).kicks, 0, "once for one wait");
    }
}

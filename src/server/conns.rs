//! When to close a connection that tiny_http holds. tiny_http accepts connections and reads their requests
//! on threads of its own, without timeouts and without a way for us to close a connection; `mmap` finds our
//! connections among the process's descriptors and can shut one down.
//!
//! The rule: a connection must bring a complete request within `server.read_timeout` of being opened or of
//! its previous response ending; one that does not (idle, or sending its head a byte at a time) is closed. A
//! connection with a request in flight is left alone (the write timeout bounds a client that stops reading).
//! A connection whose response failed half-way is closed at once, since its client would otherwise wait for
//! bytes that will never come. Past `server.max_connections`, the newest connections without a request in
//! flight are answered 503 with `Retry-After` and closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::sockets::{inbound_connections, refuse, shut_down};

#[derive(Debug)]
pub struct Watch {
    port: u16,
    timeout: Duration,
    max_connections: usize,
    activity: Mutex<HashMap<SocketAddr, Activity>>,
    /// Open connections at the last sweep.
    open: AtomicUsize,
}

/// What a connection over the cap is sent before it is closed.
const OVER_CAP: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 34\r\nConnection: close\r\n\r\ntoo many connections; retry later\n";

#[derive(Debug, Clone, Copy)]
struct Activity {
    in_flight: usize,
    last_done: Option<Instant>,
}

impl Watch {
    pub fn new(port: u16, timeout: Duration, max_connections: usize) -> Watch {
        Watch { port, timeout, max_connections, activity: Mutex::new(HashMap::new()), open: AtomicUsize::new(0) }
    }

    /// The connections open at the last sweep (a quarter of a second ago at most).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Whether more connections are open than the cap allows.
    pub fn over_cap(&self) -> bool {
        self.open() > self.max_connections
    }

    /// A request from `peer` has arrived (queued or handled).
    pub fn started(&self, peer: Option<&SocketAddr>) {
        let (Some(peer), Ok(mut activity)) = (peer, self.activity.lock()) else { return };
        activity.entry(*peer).or_insert(Activity { in_flight: 0, last_done: None }).in_flight += 1;
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
            for connection in inbound_connections(self.port).iter().filter(|c| c.peer == *peer) {
                shut_down(connection);
            }
        }
    }

    /// Applies the rule to every connection, four times a second, for as long as the process runs.
    pub fn run(&self) {
        let mut first_seen: HashMap<u64, Option<Instant>> = HashMap::new();
        loop {
            let closed = self.sweep(&mut first_seen, Instant::now());
            if closed > 0 {
                log::debug!("closed {closed} connections that brought no request within the read timeout");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Closes the connections past their deadline, and the newest idle ones past the cap. `first_seen`
    /// remembers when each socket was first found, and `None` once it has been shut down: it is never shut
    /// down twice, since tiny_http may close it and the kernel reuse its descriptor meanwhile.
    fn sweep(&self, first_seen: &mut HashMap<u64, Option<Instant>>, now: Instant) -> usize {
        let mut connections = inbound_connections(self.port);
        // tiny_http holds two descriptors of each connection: one is enough to act on.
        connections.sort_by_key(|c| c.inode);
        connections.dedup_by_key(|c| c.inode);
        let Ok(mut activity) = self.activity.lock() else { return 0 };
        let mut closed = 0;
        let mut idle = Vec::new();
        for c in &connections {
            let Some(seen) = *first_seen.entry(c.inode).or_insert(Some(now)) else { continue };
            let a = activity.get(&c.peer).copied();
            if a.is_some_and(|a| a.in_flight > 0) {
                continue;
            }
            let since = a.and_then(|a| a.last_done).map_or(seen, |done| done.max(seen));
            if now.duration_since(since) >= self.timeout {
                shut_down(c);
                first_seen.insert(c.inode, None);
                closed += 1;
            } else {
                idle.push((seen, c));
            }
        }
        let live = connections.iter().filter(|c| first_seen.get(&c.inode).is_some_and(Option::is_some)).count();
        if live > self.max_connections {
            // Over the cap: the newest idle connections are told to come back later.
            idle.sort_by_key(|(seen, _)| std::cmp::Reverse(*seen));
            for (_, c) in idle.iter().take(live - self.max_connections) {
                refuse(c, OVER_CAP);
                first_seen.insert(c.inode, None);
                closed += 1;
            }
        }
        self.open.store(live.saturating_sub(closed), Ordering::SeqCst);
        // Forget what is gone: sockets closed, and peers without a connection.
        first_seen.retain(|inode, _| connections.iter().any(|c| c.inode == *inode));
        activity.retain(|peer, a| a.in_flight > 0 || connections.iter().any(|c| c.peer == *peer));
        closed
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

    #[test]
    fn connections_without_a_request_in_time_are_closed_and_busy_ones_are_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = Watch::new(listener.local_addr().unwrap().port(), Duration::from_secs(5), 100);
        let (mut dribbler, mut dribbled, _) = pair(&listener);
        let (mut busy_client, _busy, busy_peer) = pair(&listener);
        let (_fresh_client, _fresh, _) = pair(&listener);
        let mut first_seen = HashMap::new();
        let start = Instant::now();
        assert_eq!(watch.sweep(&mut first_seen, start), 0, "nothing is due yet");
        watch.started(Some(&busy_peer));
        // Bytes keep coming on the dribbler, but never a whole request: its deadline still passes.
        dribbler.write_all(b"G").unwrap();
        let mut one = [0u8; 1];
        dribbled.read_exact(&mut one).unwrap();
        let later = start + Duration::from_secs(6);
        assert_eq!(watch.sweep(&mut first_seen, later), 2, "the dribbler and the idle one, not the busy one");
        assert_eq!(watch.sweep(&mut first_seen, later), 0, "a socket is shut down once");
        assert_eq!(dribbler.read(&mut one).unwrap(), 0, "the dribbler's client sees the close");
        busy_client.set_nonblocking(true).unwrap();
        let open = busy_client.read(&mut one).is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(open, "a connection with a request in flight stays open");
    }

    #[test]
    fn a_response_cut_short_closes_its_connection_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let watch = Watch::new(listener.local_addr().unwrap().port(), Duration::from_secs(60), 100);
        let (mut client, _accepted, peer) = pair(&listener);
        let (mut other_client, _other, other_peer) = pair(&listener);
        watch.started(Some(&peer));
        watch.started(Some(&other_peer));
        watch.finished(Some(&peer), false);
        let mut one = [0u8; 1];
        assert_eq!(client.read(&mut one).unwrap(), 0, "closed");
        watch.finished(Some(&other_peer), true);
        other_client.set_nonblocking(true).unwrap();
        assert!(other_client.read(&mut one).is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "still open");
    }
}

//! The one response writer: CORS and cache headers added to every response, the head built, and head and
//! body written on the connection, paced.
//!
//! Every connection has a short send timeout (`TICK`, set on the listening socket), so a write to a client
//! that does not read returns after at most a tick instead of blocking. A worker writes a small response
//! itself and hands it to a writer thread as soon as a write would wait; a large one goes to a writer thread
//! at once. Writer threads wait on slow clients, workers never do.
//!
//! Invariants: every response carries the CORS headers; a HEAD, 204 or 304 carries no body; the
//! `Content-Length` written is the body's length, known before the first byte; a client that takes less
//! than the minimum send rate over the rate window, or nothing for the stall time, is dropped; bytes are
//! written exactly once and in order whoever writes them.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::wire::{Wire, Wires};
use crate::http::{Body, Response, Source};

const ALLOW_HEADERS: &str = "Authorization, Accept, Content-Type, Range, Prefer, Cache-Control, If-None-Match";
const EXPOSE_HEADERS: &str = "Retry-After, WWW-Authenticate, Content-Location, ETag, Content-Length, Content-Type";
const SANDBOX_ALLOW_HEADERS: &str = "Authorization, Accept, Content-Type, Cache-Control, Prefer, X-Requested-With";
const SANDBOX_EXPOSE_HEADERS: &str = "Location, WWW-Authenticate, Content-Type";

/// Whose CORS headers a response gets: any origin and no credentials for both; the sandbox EHR also takes
/// POST (its forms) and allows the headers a preflight names, when they are a list of header names, since an
/// app's SMART library may send its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    Imaging,
    Sandbox,
}

/// The send timeout of every connection: how long one write may wait for a client before the writer looks
/// at its pace again.
pub const TICK: Duration = Duration::from_millis(100);

/// Bodies larger than this go to a writer thread at once; smaller ones are written by the worker, which
/// hands them over only if a write would wait.
pub const HANDOFF_BYTES: u64 = 64 * 1024;

/// How fast a client must take a response.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Bytes per second, averaged over `window`, below which the client is dropped.
    pub min_rate: u64,
    pub window: Duration,
    /// The longest a client may take nothing at all.
    pub stall: Duration,
}

/// How far a response got.
#[derive(Debug)]
pub enum Progress {
    /// All of it was written.
    Done,
    /// A write would wait; nothing is lost, writing can go on later.
    Blocked,
    /// The response was cut short, for the reason given.
    Failed(String),
}

/// One response on its way to its client.
pub struct Outgoing {
    writer: Wire,
    /// The head, followed by the whole body when that is small and in memory: one write for both.
    head: Vec<u8>,
    /// How much of `head` is the HTTP head itself.
    head_only: usize,
    head_sent: usize,
    body: Box<dyn Source>,
    send_body: bool,
    body_len: u64,
    /// Bytes of the body written so far.
    body_sent: u64,
    pace: Pace,
    window_start: Instant,
    window_bytes: u64,
    last_progress: Instant,
}

/// Adds the headers every response carries; `requested` is a preflight's `Access-Control-Request-Headers`.
fn add_common_headers(resp: &mut Response, cors: Cors, requested: Option<&str>) {
    let (methods, allow, expose) = match cors {
        Cors::Imaging => ("GET, HEAD, OPTIONS", ALLOW_HEADERS.to_string(), EXPOSE_HEADERS),
        Cors::Sandbox => {
            let is_list = |h: &&str| h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b));
            let allow = match requested.filter(is_list).map(str::trim).filter(|h| !h.is_empty()) {
                Some(extra) => format!("{SANDBOX_ALLOW_HEADERS}, {extra}"),
                None => SANDBOX_ALLOW_HEADERS.to_string(),
            };
            ("GET, HEAD, POST, OPTIONS", allow, SANDBOX_EXPOSE_HEADERS)
        }
    };
    let cached = resp.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Cache-Control"));
    let common = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", methods),
        ("Access-Control-Allow-Headers", allow.as_str()),
        ("Access-Control-Expose-Headers", expose),
        ("Access-Control-Max-Age", "600"),
        ("Vary", "Authorization, Accept"),
    ];
    resp.headers.extend(common.map(|(n, v)| (n.to_string(), v.to_string())));
    if !cached {
        resp.headers.push(("Cache-Control".into(), "private".into()));
    }
}

/// Takes the connection's writer from tiny_http and makes the head of `resp`. The connection stays
/// tiny_http's: it reads the next request once the writer is dropped, which keep-alive needs. tiny_http's
/// own writer would copy every body through an 8 KiB buffer and give a 204 a `Content-Length: 0`, which
/// RFC 9110 §8.6 forbids; this one writes a small body with its head in one write, and a body streamed
/// from files straight to the socket (`wire`).
pub fn prepare(
    raw: tiny_http::Request,
    mut resp: Response,
    pace: Pace,
    close: bool,
    wires: &Wires,
    cors: Cors,
) -> Outgoing {
    let requested = (raw.method() == &tiny_http::Method::Options)
        .then(|| raw.headers().iter().find(|h| h.field.equiv("Access-Control-Request-Headers")))
        .flatten()
        .map(|h| h.value.as_str().to_string());
    add_common_headers(&mut resp, cors, requested.as_deref());
    let body_len = resp.body_len();
    // RFC 9110 §6.4.1: no content in a response to HEAD, nor in a 204 or a 304.
    let send_body = raw.method() != &tiny_http::Method::Head && resp.status != 204 && resp.status != 304;
    // An HTTP/1.0 client gets its response and the close it expects; so does one that asked for the close.
    let asked_close =
        raw.headers().iter().any(|h| h.field.equiv("Connection") && h.value.as_str().eq_ignore_ascii_case("close"));
    let closing = close || asked_close || raw.http_version() != &tiny_http::HTTPVersion(1, 1);
    let status = tiny_http::StatusCode(resp.status);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\n",
        resp.status,
        status.default_reason_phrase(),
        crate::time::http_date(crate::time::now_secs())
    );
    for (name, value) in &resp.headers {
        // Header values are ours, but never let one end the header block early.
        if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if closing && !resp.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Connection")) {
        head.push_str("Connection: close\r\n");
    }
    // RFC 9110 §8.6: never in a 204, and in a 304 only the length of the 200 it stands for, when known (an
    // empty body says it is not).
    let unknown_304 = resp.status == 304 && matches!(resp.body, crate::http::Body::Empty);
    if resp.status != 204 && !unknown_304 {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    let peer: Option<SocketAddr> = raw.remote_addr().copied();
    let writer = wires.open(raw.into_writer(), peer, send_body && resp.body.is_stream());
    let mut head = head.into_bytes();
    let head_only = head.len();
    let mut body = resp.body;
    if let Body::Bytes(bytes) = &body {
        if send_body && bytes.len() as u64 <= HANDOFF_BYTES {
            head.extend_from_slice(bytes);
            body = Body::Empty;
        }
    }
    let now = Instant::now();
    Outgoing {
        writer,
        head,
        head_only,
        head_sent: 0,
        body: body.into_source(),
        send_body,
        body_len,
        body_sent: 0,
        pace,
        window_start: now,
        window_bytes: 0,
        last_progress: now,
    }
}

impl Outgoing {
    /// The length of the body, sent or not.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Whether the rest of the response fits in the connection's send buffer now: writing it cannot wait.
    pub fn fits(&self) -> bool {
        let left = (self.head.len() - self.head_sent) as u64 + self.body_len - self.body_sent;
        self.writer.room().is_some_and(|room| left <= room as u64)
    }

    /// The bytes of the body written so far (all of it once done; none for `HEAD`).
    pub fn body_sent(&self) -> u64 {
        self.body_sent + self.head_sent.saturating_sub(self.head_only) as u64
    }

    /// Writes on until the response is done or fails; with `stop_when_blocked`, also stops as soon as a
    /// write would wait (after at most one `TICK`), so that the caller can hand the rest to a writer thread.
    pub fn pump(&mut self, stop_when_blocked: bool) -> Progress {
        loop {
            let step = if self.head_sent < self.head.len() {
                self.writer.write(&self.head[self.head_sent..]).map(|n| {
                    self.head_sent += n;
                    n
                })
            } else if self.send_body {
                match self.body.write_some(&mut self.writer) {
                    Ok(0) => {
                        self.send_body = false;
                        continue;
                    }
                    Ok(n) => {
                        self.body_sent += n as u64;
                        Ok(n)
                    }
                    other => other,
                }
            } else {
                match self.writer.flush() {
                    Ok(()) => {
                        self.writer.push();
                        return Progress::Done;
                    }
                    Err(e) => Err(e),
                }
            };
            let now = Instant::now();
            match step {
                Ok(0) => return Progress::Failed("the connection took no more bytes".into()),
                Ok(n) => {
                    self.window_bytes += n as u64;
                    self.last_progress = now;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if stop_when_blocked {
                        return Progress::Blocked;
                    }
                }
                Err(e) => return Progress::Failed(e.to_string()),
            }
            if let Some(why) = self.too_slow(now) {
                return Progress::Failed(why);
            }
        }
    }

    /// Whether the client has fallen below the pace: nothing taken for `stall`, or less than `min_rate`
    /// bytes per second over the last full window.
    fn too_slow(&mut self, now: Instant) -> Option<String> {
        if now.duration_since(self.last_progress) >= self.pace.stall {
            return Some(format!("the client took nothing for {} s", self.pace.stall.as_secs()));
        }
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= self.pace.window {
            let needed = self.pace.min_rate.saturating_mul(self.pace.window.as_secs().max(1));
            if self.window_bytes < needed {
                return Some(format!(
                    "the client took {} bytes in {} s, under the minimum of {} bytes/s",
                    self.window_bytes,
                    elapsed.as_secs(),
                    self.pace.min_rate
                ));
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that takes `per_write` bytes a write, and after `capacity` bytes would block.
    struct Socket {
        taken: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        per_write: usize,
        capacity: usize,
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut taken = self.taken.lock().unwrap();
            if taken.len() >= self.capacity {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.per_write).min(self.capacity - taken.len());
            taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn outgoing(body: &[u8], socket: Socket, pace: Pace) -> Outgoing {
        let now = Instant::now();
        Outgoing {
            writer: Wire::buffered(Box::new(socket)),
            head: b"HEAD\r\n\r\n".to_vec(),
            head_only: 8,
            head_sent: 0,
            body: Box::new(io::Cursor::new(body.to_vec())),
            send_body: true,
            body_len: body.len() as u64,
            body_sent: 0,
            pace,
            window_start: now,
            window_bytes: 0,
            last_progress: now,
        }
    }

    const EASY: Pace = Pace { min_rate: 1, window: Duration::from_secs(10), stall: Duration::from_secs(60) };

    #[test]
    fn a_blocked_response_goes_on_later_without_losing_or_repeating_a_byte() {
        let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let body: Vec<u8> = (0..=255).cycle().take(10_000).collect();
        let socket = Socket { taken: taken.clone(), per_write: 700, capacity: 3_000 };
        let mut out = outgoing(&body, socket, EASY);
        assert!(matches!(out.pump(true), Progress::Blocked));
        assert_eq!(taken.lock().unwrap().len(), 3_000);
        // The client reads: room again, and the rest is written.
        taken.lock().unwrap().clear();
        let mut all = Vec::new();
        loop {
            match out.pump(true) {
                Progress::Done => break,
                Progress::Blocked => all.extend(taken.lock().unwrap().drain(..)),
                Progress::Failed(why) => panic!("{why}"),
            }
        }
        all.extend(taken.lock().unwrap().drain(..));
        let mut expected = b"HEAD\r\n\r\n".to_vec();
        expected.extend(&body);
        assert_eq!(all.len() + 3_000, expected.len());
        assert_eq!(&all[..], &expected[3_000..]);
    }

    #[test]
    fn a_client_under_the_pace_is_dropped() {
        let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let socket = Socket { taken, per_write: 10, capacity: 1_000_000 };
        let strict = Pace { min_rate: 1_000_000, window: Duration::ZERO, stall: Duration::from_secs(60) };
        let mut out = outgoing(&[7; 10_000], socket, strict);
        assert!(matches!(out.pump(false), Progress::Failed(why) if why.contains("minimum")));
        let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stuck = Socket { taken, per_write: 10, capacity: 0 };
        let no_patience = Pace { min_rate: 1, window: Duration::from_secs(10), stall: Duration::ZERO };
        let mut out = outgoing(&[7; 100], stuck, no_patience);
        assert!(matches!(out.pump(false), Progress::Failed(why) if why.contains("nothing")));
    }
}

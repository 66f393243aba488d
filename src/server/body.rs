//! tiny_http reads a request body of at most 1024 bytes (with `Content-Length`, no `Expect: 100-continue`,
//! no `Transfer-Encoding`, no `Connection: upgrade`) on its own connection thread before it hands the
//! request over, and leaves any other body on the socket, to be read by whoever holds the request, with no
//! timeout. A worker that read such a body could wait on a client that never sends it, so a body still on
//! its way is read by a thread of the writer pool (bounded, like the writers, by the connection cap) before
//! the request is queued, while the connection watch holds the connection to the read timeout, as it does
//! any connection that has not brought a complete request. Only a site that takes bodies (the sandbox EHR's
//! forms) reads them; the imaging server never does.
//!
//! Invariants: a body is never read by a worker or a pump unless tiny_http already holds all of it; at most
//! `MAX_BODY` bytes are read; `Connection: upgrade` (whose reader is the whole connection) is never read.

use std::io::Read;

/// The largest request body read: forms are small.
pub const MAX_BODY: usize = 64 * 1024;

/// The most tiny_http reads itself before handing a request over (tiny_http 0.12, `request.rs`).
const TINY_HTTP_READS: usize = 1024;

/// A request's body, as a handler gets it.
#[derive(Debug)]
pub enum Content {
    Read(Vec<u8>),
    /// Over `MAX_BODY`: 413, and the connection closed.
    TooLarge,
    /// Not readable as a body (an upgrade, a body cut short): 400, and the connection closed.
    Unreadable,
}

/// Where a request's body is when tiny_http hands the request over.
pub enum Arrival {
    /// Read, or known at once: nothing waits on the client.
    Now(Content),
    /// Still on the socket: read it on a thread that may wait.
    Later,
}

/// Where `raw`'s body is, reading it when tiny_http holds it already.
pub fn arrival(raw: &mut tiny_http::Request) -> Arrival {
    let header =
        |name: &'static str| raw.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string());
    if header("Connection").is_some_and(|c| c.to_ascii_lowercase().contains("upgrade")) {
        return Arrival::Now(Content::Unreadable);
    }
    let chunked = header("Transfer-Encoding").is_some();
    let length = if chunked { None } else { header("Content-Length").and_then(|l| l.trim().parse::<usize>().ok()) };
    let continues = header("Expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    match length {
        Some(n) if n > MAX_BODY => Arrival::Now(Content::TooLarge),
        Some(n) if n <= TINY_HTTP_READS && !continues => Arrival::Now(read(raw)),
        // Neither a length nor chunks: tiny_http takes the body to be empty.
        None if !chunked => Arrival::Now(Content::Read(Vec::new())),
        _ => Arrival::Later,
    }
}

/// Reads the body of `raw`, at most `MAX_BODY` bytes of it.
/// A body shorter than its `Content-Length` (the connection closed early) is unreadable.
pub fn read(raw: &mut tiny_http::Request) -> Content {
    let promised = raw.body_length();
    let mut body = Vec::new();
    match raw.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body) {
        Ok(_) if body.len() > MAX_BODY => Content::TooLarge,
        Ok(_) if promised.is_some_and(|n| n != body.len()) => Content::Unreadable,
        Ok(_) => Content::Read(body),
        Err(e) => {
            log::debug!("a request body could not be read: {e}");
            Content::Unreadable
        }
    }
}

//! Requests and responses as plain values: what handlers take and return, whatever carries them.
//!
//! Invariant: a response body's length is known before it is sent.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    /// Only the sandbox EHR takes it (its forms); the imaging server answers 405.
    Post,
    Other,
}

#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The raw path, still percent-encoded, without the query.
    pub path: String,
    /// The raw query string after `?`, still percent-encoded; empty when absent.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// A body produced while it is sent, of a length known in advance.
    Stream {
        len: u64,
        reader: Box<dyn Source>,
    },
}

/// A body as it is sent: written out piece by piece, so that the writer can stop at any point (a write that
/// would block, a client too slow) and go on later from exactly where it stopped.
pub trait Source: Send {
    /// Offers what is left to one `write` (or `send_file`) call on `out` and keeps what it did not take;
    /// the count taken, 0 at the end.
    fn write_some(&mut self, out: &mut dyn Sink) -> io::Result<usize>;
}

/// Where a body goes: bytes, and ranges of files, which a socket sends without copying them through this
/// process (`sendfile`).
pub trait Sink: Write {
    /// Sends up to `len` bytes of `file` from `offset` in one call: the count sent, 0 when the file ends at
    /// `offset`. By default the bytes are read and written.
    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        read_and_write(self, file, offset, len)
    }
}

/// `Sink::send_file` for a sink that only takes bytes: reads up to `len` bytes of `file` from `offset`
/// and writes them once. A write that takes only part of them leaves the rest to be read again.
pub fn read_and_write(out: &mut (impl Write + ?Sized), file: &File, offset: u64, len: usize) -> io::Result<usize> {
    let mut buffer = vec![0u8; len.min(READ_CHUNK)];
    let read = file.read_at(&mut buffer, offset)?;
    if read == 0 {
        return Ok(0);
    }
    Ok(out.write(&buffer[..read])?.min(read))
}

/// The most `Sink::send_file` reads at once when it has to read.
const READ_CHUNK: usize = 256 << 10;

impl Sink for Vec<u8> {}

impl Source for io::Empty {
    fn write_some(&mut self, _out: &mut dyn Sink) -> io::Result<usize> {
        Ok(0)
    }
}

impl Source for io::Cursor<Vec<u8>> {
    fn write_some(&mut self, out: &mut dyn Sink) -> io::Result<usize> {
        let at = usize::try_from(self.position()).unwrap_or(usize::MAX);
        let rest = self.get_ref().get(at..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(0);
        }
        let n = out.write(rest)?.min(rest.len());
        self.set_position((at + n) as u64);
        Ok(n)
    }
}

impl Body {
    /// Whether the body is produced while it is sent (files, maps), rather than held in memory.
    pub fn is_stream(&self) -> bool {
        matches!(self, Body::Stream { .. })
    }

    /// The body's length in bytes, known before it is sent.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Stream { len, .. } => *len,
        }
    }

    /// The whole body in memory (tests only: bodies are sent, never gathered).
    #[cfg(test)]
    pub fn read_all(self) -> io::Result<Vec<u8>> {
        let mut source = self.into_source();
        let mut out = Vec::new();
        while source.write_some(&mut out)? > 0 {}
        Ok(out)
    }

    /// The body as a source to write out.
    pub fn into_source(self) -> Box<dyn Source> {
        match self {
            Body::Empty => Box::new(io::empty()),
            Body::Bytes(b) => Box::new(io::Cursor::new(b)),
            Body::Stream { reader, .. } => reader,
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Body::Stream { len, .. } => write!(f, "Stream({len})"),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Body::Empty }
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response::new(status).with_header("Content-Type", content_type).with_body(Body::Bytes(body))
    }

    pub fn json(status: u16, content_type: &str, value: &serde_json::Value) -> Response {
        // Serialising a Value cannot fail: its keys are strings.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response::bytes(status, content_type, body)
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    pub fn body_len(&self) -> u64 {
        self.body.len()
    }
}

//! The connection a response is written on: tiny_http's writer, or, for a body streamed from files, the
//! connection's socket itself, so that files go out with `sendfile` and a part head and the data after it
//! share segments (`MSG_MORE`).
//!
//! Invariants: nothing is written on the socket before tiny_http's writer says it is this response's turn
//! (the previous response on the connection is done) and nothing is left in that writer's buffer; a socket
//! is only used when it is found to be exactly this connection's (`sys::sendfile::find`); when it is not
//! found, the response goes through tiny_http's writer, byte for byte the same.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::http::Sink;
use crate::http::message::read_and_write;
use crate::sys::sendfile::{Hint, Socket, find};

/// The most remembered descriptor hints; past it they are forgotten and found again.
const MAX_HINTS: usize = 16 * 1024;

/// How responses find their connections' sockets.
#[derive(Debug)]
pub struct Wires {
    port: u16,
    /// Where each peer's socket was found last, when the listening address is one address: then a peer
    /// names one connection. On a wildcard address two connections from one peer to two local addresses
    /// could share it, so every response looks again and must find exactly one.
    hints: Option<Mutex<HashMap<SocketAddr, Hint>>>,
}

impl Wires {
    /// For connections accepted on `local`.
    pub fn new(local: SocketAddr) -> Wires {
        let hints = (!local.ip().is_unspecified()).then(|| Mutex::new(HashMap::new()));
        Wires { port: local.port(), hints }
    }

    /// The wire for a response to `peer`: its socket when `direct` (the body is streamed from files) and
    /// the socket is found, else tiny_http's `writer`.
    pub fn open(&self, mut writer: Box<dyn Write + Send>, peer: Option<SocketAddr>, direct: bool) -> Wire {
        let socket = peer.filter(|_| direct).and_then(|peer| self.socket(peer));
        // tiny_http's writer waits for the previous response on the connection to be done, and has nothing
        // buffered yet: once it is flushed the socket is this response's.
        let socket = socket.filter(|_| writer.flush().is_ok());
        Wire { writer, socket }
    }

    fn socket(&self, peer: SocketAddr) -> Option<Socket> {
        let hint = self.hints.as_ref().and_then(|h| h.lock().ok()?.get(&peer).copied());
        let (socket, found) = find(self.port, peer, hint)?;
        if let Some(hints) = &self.hints {
            if hint != Some(found) {
                if let Ok(mut hints) = hints.lock() {
                    if hints.len() >= MAX_HINTS {
                        hints.clear();
                    }
                    hints.insert(peer, found);
                }
            }
        }
        Some(socket)
    }
}

/// Where one response is written.
pub struct Wire {
    /// tiny_http's writer, held (unused when there is a socket) until the response is done: dropping it
    /// tells tiny_http the connection may take its next response.
    writer: Box<dyn Write + Send>,
    socket: Option<Socket>,
}

impl Wire {
    /// A wire straight to tiny_http's writer.
    #[cfg(test)]
    pub fn buffered(writer: Box<dyn Write + Send>) -> Wire {
        Wire { writer, socket: None }
    }

    /// How many bytes the connection takes now without waiting, when that is known (on a socket).
    pub fn room(&self) -> Option<usize> {
        self.socket.as_ref().map(Socket::room)
    }

    /// Sends out what is held back for the bytes that were to follow: the response is complete.
    pub fn push(&mut self) {
        if let Some(socket) = &mut self.socket {
            socket.push();
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.socket {
            Some(socket) => socket.send(buf),
            None => self.writer.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.socket {
            Some(_) => Ok(()),
            None => self.writer.flush(),
        }
    }
}

impl Sink for Wire {
    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        match &mut self.socket {
            Some(socket) => socket.send_file(file, offset, len),
            None => read_and_write(&mut self.writer, file, offset, len),
        }
    }
}

//! Writing a response straight to its connection's socket: finding the descriptor of a connection that
//! tiny_http holds, and `send` (with `MSG_MORE`) and `sendfile(2)` on a duplicate of it. tiny_http hands out a
//! buffered writer only; with the socket itself a file is sent by the kernel from the page cache, without a
//! map of it nor a copy through this process.
//!
//! Invariants: a `Socket` is a duplicate of the descriptor of exactly the connection asked for (its peer
//! and local port, and no other open connection with the same peer), checked on the duplicate itself, so a
//! descriptor closed and reused meanwhile is never written to; bytes sent with `MSG_MORE` are pushed out
//! when the `Socket` is dropped at the latest, so the end of a response is never held back.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sockets::{self, accepted_on, descriptors, peer_of, socket_inode};

/// Where a connection's descriptor was found, to look there first next time: the descriptor number and
/// the socket's inode, which tells whether the number still names the same socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    fd: RawFd,
    inode: u64,
}

/// A duplicate of one connection's descriptor.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    /// Bytes were sent with `MSG_MORE` and not pushed since.
    held: bool,
}

/// The socket of the connection from `peer` accepted on `port`: through `hint` when it still names it,
/// else by a look through the process's descriptors, which must find exactly one such connection.
/// `None` when there is none or more than one (the caller then writes through tiny_http).
pub fn find(port: u16, peer: SocketAddr, hint: Option<Hint>) -> Option<(Socket, Hint)> {
    if let Some(hint) = hint {
        if let Some(socket) = duplicate(hint, port, peer) {
            return Some((socket, hint));
        }
    }
    let mut found: Option<Hint> = None;
    for fd in descriptors() {
        // The peer first: one system call rules out every other descriptor.
        if peer_of(fd) != Some(peer) || accepted_on(fd, port) != Some(peer) {
            continue;
        }
        let Some(inode) = socket_inode(fd) else { continue };
        match found {
            // tiny_http holds two descriptors of each connection: the same socket, twice.
            Some(seen) if seen.inode == inode => {}
            Some(_) => return None,
            None => found = Some(Hint { fd, inode }),
        }
    }
    let hint = found?;
    duplicate(hint, port, peer).map(|socket| (socket, hint))
}

/// A duplicate of `hint.fd` if, checked on the duplicate, it is the socket `hint.inode` connected to `peer`
/// on `port`.
fn duplicate(hint: Hint, port: u16, peer: SocketAddr) -> Option<Socket> {
    let fd = sockets::duplicate(hint.fd)?;
    let raw = fd.as_raw_fd();
    (socket_inode(raw) == Some(hint.inode) && accepted_on(raw, port) == Some(peer))
        .then_some(Socket { fd, held: false })
}

fn result(n: isize) -> io::Result<usize> {
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

impl Socket {
    /// One `send` of `bytes`, with `MSG_MORE`: a part head waits for the file after it instead of leaving
    /// in a small segment of its own (until `push`). The count taken. A full socket buffer waits at most the
    /// socket's send timeout, then fails with `WouldBlock`; a closed connection fails, without SIGPIPE.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.held = true;
        let flags = libc::MSG_NOSIGNAL | libc::MSG_MORE;
        // SAFETY: send reads at most `bytes.len()` bytes from a live slice.
        result(unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), flags) })
    }

    /// One `sendfile` of up to `len` bytes of `file` from `offset`: the count sent, 0 when the file ends
    /// at `offset`. Waits as `send` does; its last segment is pushed out.
    pub fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let mut at = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: sendfile reads the file and writes the socket, both descriptors this process holds, and
        // writes the new offset into `at`, a live local.
        let sent = result(unsafe { libc::sendfile(self.fd.as_raw_fd(), file.as_raw_fd(), &mut at, len) });
        if sent.as_ref().is_ok_and(|n| *n > 0) {
            self.held = false;
        }
        sent
    }

    /// How many more bytes the socket's send buffer takes now without waiting, roughly: half its size (the
    /// kernel counts its own bookkeeping in the other half) less what waits in it unsent.
    pub fn room(&self) -> usize {
        let mut size: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let mut queued: libc::c_int = 0;
        // SAFETY: getsockopt writes at most `len` bytes into a live c_int; ioctl TIOCOUTQ writes one c_int.
        let asked = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&mut size as *mut libc::c_int).cast(),
                &mut len,
            ) == 0
                && libc::ioctl(self.fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) == 0
        };
        if !asked {
            return 0;
        }
        usize::try_from(size / 2 - queued).unwrap_or(0)
    }

    /// Sends what `MSG_MORE` held back now.
    pub fn push(&mut self) {
        if !self.held {
            return;
        }
        // Setting TCP_NODELAY (which every connection has) pushes the pending segments out.
        let value: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int from a live local.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        self.held = false;
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.push();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn the_socket_of_a_connection_is_found_by_its_peer_and_sends_files() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let _twin = accepted.try_clone().unwrap();
        let _other = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_other_accepted, _) = listener.accept().unwrap();

        let (mut socket, hint) = find(port, peer, None).expect("found, though tiny_http-like twins hold it twice");
        assert_eq!(find(port, peer, Some(hint)).map(|(_, h)| h), Some(hint), "found again through the hint");
        let path = std::env::temp_dir().join(format!("si-sendfile-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        assert!(socket.room() > 0, "an idle connection has room");
        assert_eq!(socket.send(b"head:").unwrap(), 5);
        assert_eq!(socket.send_file(&file, 3, 100).unwrap(), 7, "up to the end of the file");
        assert_eq!(socket.send_file(&file, 10, 100).unwrap(), 0, "0 at the end: the file ended there");
        drop(socket);
        drop(accepted);
        drop(_twin);
        let mut got = String::new();
        client.read_to_string(&mut got).unwrap();
        assert_eq!(got, "head:3456789");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_hint_to_a_descriptor_reused_by_another_connection_is_not_followed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _a = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (first, first_peer) = listener.accept().unwrap();
        let (_, hint) = find(port, first_peer, None).unwrap();
        drop(first);
        let mut b = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (second, second_peer) = listener.accept().unwrap();
        // The number is likely the same one; the inode tells them apart.
        assert!(find(port, first_peer, Some(hint)).is_none(), "the first connection is gone");
        let (mut socket, _) = find(port, second_peer, Some(hint)).expect("the second is found by a look");
        assert_eq!(socket.send(b"x").unwrap(), 1);
        let mut one = [0u8; 1];
        b.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        drop(second);
        b.write_all(b"").unwrap();
    }
}

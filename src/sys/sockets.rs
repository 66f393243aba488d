//! Sockets tiny_http holds: finding the connections accepted on our port among the process's descriptors,
//! and shutting one down. tiny_http accepts and reads connections itself and offers no hook to time them
//! out or close them. (A read timeout set on the listening socket would also time out `accept`, which ends
//! tiny_http's accept loop; one set on a connection after tiny_http has begun a blocking read does not
//! apply to that read.)

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One connection accepted on the server's port, as found among this process's descriptors. tiny_http
/// holds two descriptors of each connection; both are listed, with the same inode and peer.
#[derive(Debug, Clone, Copy)]
pub struct Inbound {
    fd: libc::c_int,
    pub inode: u64,
    pub peer: std::net::SocketAddr,
}

/// The connections accepted on `port` (connected sockets whose local port it is; not the listener).
pub fn inbound_connections(port: u16) -> Vec<Inbound> {
    let mut found = Vec::new();
    for fd in descriptors() {
        let Ok(link) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else { continue };
        let inode = link.to_str().and_then(|l| l.strip_prefix("socket:[")).and_then(|l| l.strip_suffix(']'));
        let Some(inode) = inode.and_then(|i| i.parse::<u64>().ok()) else { continue };
        if let Some(peer) = accepted_on(fd, port) {
            found.push(Inbound { fd, inode, peer });
        }
    }
    found
}

/// Shuts a connection down both ways: a read blocked on it ends, and its peer sees the close. Nothing
/// happens when its descriptor no longer names that socket.
pub fn shut_down(connection: &Inbound) {
    let Some(socket) = checked_duplicate(connection) else { return };
    // SAFETY: shutdown on a descriptor owned here, a duplicate checked to name this connection's socket, so
    // a number closed and reused since the connection was listed is never acted on.
    unsafe {
        libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// Writes `bytes` to a connection without waiting for room (a client that does not read gets less, or
/// nothing), then shuts the connection down: how a connection over the cap is told to come back later.
pub fn refuse(connection: &Inbound, bytes: &[u8]) {
    let Some(socket) = checked_duplicate(connection) else { return };
    let fd = socket.as_raw_fd();
    // SAFETY: send reads at most `bytes.len()` bytes from a live slice, on a duplicate checked to name this
    // connection's socket; MSG_DONTWAIT keeps it from blocking and MSG_NOSIGNAL from raising SIGPIPE.
    // shutdown as in `shut_down`.
    unsafe {
        libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// What a connection has sent: every byte the kernel received on it, and those of them nobody has read yet.
/// The difference is what the process has read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    pub received: u64,
    pub unread: u64,
}

impl Input {
    /// The bytes the process has read from the connection.
    pub fn read(&self) -> u64 {
        self.received.saturating_sub(self.unread)
    }
}

/// The connection's `Input` (`TCP_INFO`'s bytes received, `FIONREAD`), or `None` when its descriptor no
/// longer names that socket.
pub fn input(connection: &Inbound) -> Option<Input> {
    let socket = checked_duplicate(connection)?;
    let fd = socket.as_raw_fd();
    // SAFETY: getsockopt writes at most `len` bytes into a zeroed tcp_info of that size on this stack frame,
    // and ioctl(FIONREAD) one c_int into `unread`, both on a descriptor owned here.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&mut info as *mut libc::tcp_info).cast(), &mut len)
            != 0
        {
            return None;
        }
        let mut unread: libc::c_int = 0;
        if libc::ioctl(fd, libc::FIONREAD, &mut unread) != 0 {
            return None;
        }
        Some(Input { received: info.tcpi_bytes_received, unread: u64::try_from(unread).unwrap_or(0) })
    }
}

/// A duplicate of `connection`'s descriptor, if the duplicate names the socket that was listed: acting on
/// the duplicate can never reach another connection that took the number meanwhile.
fn checked_duplicate(connection: &Inbound) -> Option<OwnedFd> {
    let socket = duplicate(connection.fd)?;
    (socket_inode(socket.as_raw_fd()) == Some(connection.inode)).then_some(socket)
}

/// A duplicate of whatever `fd` names now (closed on exec), owned by the caller.
pub(super) fn duplicate(fd: libc::c_int) -> Option<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor of whatever `fd` names now, or fails; the new one is
    // owned by the OwnedFd alone and closed with it.
    unsafe {
        let dup = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
        (dup >= 0).then(|| OwnedFd::from_raw_fd(dup))
    }
}

/// The inode of `fd` if it is a socket.
pub(super) fn socket_inode(fd: libc::c_int) -> Option<u64> {
    // SAFETY: fstat writes one stat into a zeroed value of that type on this stack frame.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return None;
        }
        Some(st.st_ino)
    }
}

/// The listening socket's accept queue: how many connections wait to be accepted, and how many may.
/// Connections that wait while descriptors are free mean that nobody is accepting.
pub fn accept_queue(listener: &std::net::TcpListener) -> Option<(u32, u32)> {
    use std::os::fd::AsRawFd;
    // SAFETY: getsockopt writes at most `len` bytes into a zeroed tcp_info of that size on this stack frame;
    // for a listening socket Linux reports the accept queue's length in tcpi_unacked and its limit in
    // tcpi_sacked.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let fd = listener.as_raw_fd();
        if libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&mut info as *mut libc::tcp_info).cast(), &mut len)
            != 0
        {
            return None;
        }
        Some((info.tcpi_unacked, info.tcpi_sacked))
    }
}

/// The descriptors this process holds now (a few may be closed by the time they are looked at).
pub(super) fn descriptors() -> Vec<libc::c_int> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect()
}

/// The peer of `fd` if it is a connected socket.
pub(super) fn peer_of(fd: libc::c_int) -> Option<std::net::SocketAddr> {
    // SAFETY: getpeername writes at most `len` bytes into a zeroed sockaddr_storage on this stack frame, and
    // the kernel filled it, so its family tells its layout.
    unsafe {
        let mut peer: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, (&mut peer as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return None;
        }
        socket_addr(&peer)
    }
}

/// The peer of `fd` if it is a connected (not listening) TCP socket whose local port is `port`.
pub(super) fn accepted_on(fd: libc::c_int, port: u16) -> Option<std::net::SocketAddr> {
    // SAFETY: getsockname and getsockopt write at most the lengths given into buffers of those sizes, and
    // the socket address is read as the family it says it is.
    unsafe {
        let mut local: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, (&mut local as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return None;
        }
        if socket_addr(&local)?.port() != port {
            return None;
        }
        let mut listening: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let asked = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut libc::c_int).cast(),
            &mut size,
        );
        if asked != 0 || listening != 0 {
            return None;
        }
    }
    peer_of(fd)
}

/// SAFETY (for callers): `addr` must have been filled by the kernel, so its family tells its layout.
pub(super) unsafe fn socket_addr(addr: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    let ptr = addr as *const libc::sockaddr_storage;
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in, which fits in a sockaddr_storage.
            let v4 = unsafe { &*ptr.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6, which fits in a sockaddr_storage.
            let v6 = unsafe { &*ptr.cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::from((Ipv6Addr::from(v6.sin6_addr.s6_addr), u16::from_be(v6.sin6_port))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_connections_are_found_by_peer_and_shut_down() {
        use std::io::Read;
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut accepted, peer) = listener.accept().unwrap();
        let _other = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_other_accepted, _) = listener.accept().unwrap();
        let found = inbound_connections(port);
        assert_eq!(found.len(), 2, "two accepted connections, not the listener nor the clients: {found:?}");
        let mine = found.iter().find(|c| c.peer == peer).expect("found by its peer address");
        shut_down(mine);
        let mut one = [0u8; 1];
        assert_eq!(accepted.read(&mut one).unwrap(), 0, "a read on it ends");
        assert_eq!(client.read(&mut one).unwrap(), 0, "its client sees the close");
        assert_eq!(inbound_connections(port).len(), 2, "a shut-down socket is still open until closed");
        listener.set_nonblocking(true).unwrap();
        let err = listener.accept().expect_err("nothing waiting");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "the listener is untouched");
    }

    #[test]
    fn the_accept_queue_counts_connections_nobody_accepted() {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (waiting, limit) = accept_queue(&listener).unwrap();
        assert_eq!(waiting, 0);
        assert!(limit > 0);
        let _a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _b = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // The handshake completes in the kernel; give it the moment it takes, with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while accept_queue(&listener).unwrap().0 < 2 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(accept_queue(&listener).unwrap().0, 2);
        let _ = listener.accept().unwrap();
        assert_eq!(accept_queue(&listener).unwrap().0, 1);
    }

    #[test]
    fn a_refused_connection_gets_the_bytes_and_the_close() {
        use std::io::Read;
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        let found = inbound_connections(port);
        refuse(found.iter().find(|c| c.peer == peer).unwrap(), b"HTTP/1.1 503 x\r\n\r\n");
        let mut got = String::new();
        client.read_to_string(&mut got).unwrap();
        assert_eq!(got, "HTTP/1.1 503 x\r\n\r\n");
    }

    #[test]
    fn a_listed_connection_whose_number_now_names_another_is_never_acted_on() {
        use std::io::Read;
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _first = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (first_accepted, _) = listener.accept().unwrap();
        let listed = inbound_connections(port)[0];
        assert_eq!(listed.fd, first_accepted.as_raw_fd());
        let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (second_accepted, _) = listener.accept().unwrap();
        // The first connection goes, and its number is given to the second, as a reuse would.
        drop(first_accepted);
        // SAFETY: dup2 makes `listed.fd` (closed just now) name the second connection's socket; the test owns
        // both numbers and closes the duplicate below.
        let reused = unsafe { libc::dup2(second_accepted.as_raw_fd(), listed.fd) };
        assert_eq!(reused, listed.fd);
        shut_down(&listed);
        refuse(&listed, b"HTTP/1.1 503 x\r\n\r\n");
        assert_eq!(input(&listed), None, "nothing is read of another socket either");
        second.set_nonblocking(true).unwrap();
        let mut one = [0u8; 1];
        let open = second.read(&mut one).is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(open, "the connection that took the number got nothing and stays open");
        // SAFETY: closes the duplicate made above, which nothing else owns.
        unsafe { libc::close(listed.fd) };
    }

    #[test]
    fn input_counts_what_was_received_and_what_is_still_unread() {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        client.write_all(b"0123456789").unwrap();
        let mut four = [0u8; 4];
        accepted.read_exact(&mut four).unwrap();
        let found = inbound_connections(port)[0];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while input(&found).unwrap().received < 10 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(input(&found), Some(Input { received: 10, unread: 6 }));
        assert_eq!(input(&found).unwrap().read(), 4);
    }
}

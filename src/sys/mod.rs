//! The one module allowed `unsafe`: memory maps, and the two signal handlers the process needs around them.
//!
//! - `map_file` maps an indexed file read-only.
//! - A SIGBUS guard: reading a page of a map past the end of a file that was truncated after it was mapped
//!   raises SIGBUS, which would kill the server. The guard answers such a fault by mapping a page of zeros
//!   over the missing one and counting the fault; readers compare `faults()` before and after they copy from
//!   a map and fail their read when it moved, so those zeros are never sent as data.
//! - SIGTERM and SIGINT set a flag (`shutdown_requested`) that the server polls to stop gracefully.
//! - `inbound_connections` and `shut_down` let the server close connections that tiny_http holds: tiny_http
//!   accepts and reads connections itself and offers no hook to time them out or close them. (A read timeout
//!   set on the listening socket would also time out `accept`, which ends tiny_http's accept loop; one set on a
//!   connection after tiny_http has begun a blocking read does not apply to that read.)
//!
//! Invariant: a map is only made of a file named by the index, and its length is checked against the
//! indexed size before any byte of it is served.

#![allow(unsafe_code)]

use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Maps the whole file read-only. An empty file cannot be mapped, and no indexed DICOM file is empty.
pub fn map_file(path: &Path) -> io::Result<Mmap> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file is empty"));
    }
    // SAFETY: the map is read-only and private to this process. Another process may still truncate or
    // rewrite the file while it is mapped: callers check the map's length against the indexed size before
    // serving, and the SIGBUS guard below keeps a truncation during a read from killing the process.
    unsafe { Mmap::map(&file) }
}

/// Caps glibc's malloc at two arenas. By default it grows one arena per thread that allocates, up to eight per
/// core, and each keeps its own free memory: with a worker pool and one tiny_http thread per connection the
/// resident size then creeps up for as long as new threads get work. Two arenas keep it flat, at little cost
/// for a server whose requests allocate little.
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tuning parameter of the allocator; it is called once at start, before the
    // server's threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Maps an indexed file after checking it still has the size the index gives: a file replaced or truncated
/// since indexing is an error, never bytes other than the ones promised.
pub fn map_indexed(path: &Path, size: u64) -> io::Result<Mmap> {
    let map = map_file(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot map indexed file {}: {e}", path.display())))?;
    if map.len() as u64 != size {
        return Err(size_changed(path, map.len() as u64, size));
    }
    Ok(map)
}

/// Checks an indexed file's size without mapping it.
pub fn check_size(path: &Path, size: u64) -> io::Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("indexed file {} cannot be read: {e}", path.display())))?;
    if meta.len() != size {
        return Err(size_changed(path, meta.len(), size));
    }
    Ok(())
}

fn size_changed(path: &Path, actual: u64, indexed: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "indexed file {} changed size: {actual} bytes, the index says {indexed}; run `smart-imaging check`",
            path.display()
        ),
    )
}

static FAULTS: AtomicU64 = AtomicU64::new(0);
static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// How many map faults the SIGBUS guard has answered since start.
pub fn faults() -> u64 {
    FAULTS.load(Ordering::SeqCst)
}

/// Whether SIGTERM or SIGINT has arrived.
pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::SeqCst)
}

extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler. Only a fault on a mapping past
    // the end of its file (BUS_ADRERR) is answered; for anything else the default action is restored and
    // the fault recurs when the handler returns, ending the process as it would have without the guard.
    // mmap is a plain system call and safe to make here; MAP_FIXED replaces exactly the one page that
    // faulted, which belongs to a file map (nothing else in this process can fault this way).
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
        let addr = (*info).si_addr() as usize;
        if (*info).si_code == libc::BUS_ADRERR && addr != 0 {
            let start = (addr & !(page - 1)) as *mut libc::c_void;
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
            let mapped = libc::mmap(start, page, libc::PROT_READ, flags, -1, 0);
            if mapped != libc::MAP_FAILED {
                FAULTS.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

extern "C" fn on_shutdown(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SHUTDOWN.store(true, Ordering::SeqCst);
}

/// Installs the SIGBUS guard. Called once, at the start of `serve`.
pub fn install_sigbus_guard() -> io::Result<()> {
    install(libc::SIGBUS, on_sigbus as *const () as usize, libc::SA_SIGINFO | libc::SA_NODEFER)
}

/// Makes SIGTERM and SIGINT request a graceful shutdown instead of ending the process.
pub fn install_shutdown_handlers() -> io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        install(signal, on_shutdown as *const () as usize, libc::SA_RESTART)?;
    }
    Ok(())
}

fn install(signal: libc::c_int, handler: usize, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: sigaction is given a fully initialised structure and a handler of the signature its flags
    // announce; the handlers touch only atomics and make only async-signal-safe calls.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

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
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else { continue };
        let Ok(link) = std::fs::read_link(entry.path()) else { continue };
        let inode = link.to_str().and_then(|l| l.strip_prefix("socket:[")).and_then(|l| l.strip_suffix(']'));
        let Some(inode) = inode.and_then(|i| i.parse::<u64>().ok()) else { continue };
        if let Some(peer) = accepted_on(fd, port) {
            found.push(Inbound { fd, inode, peer });
        }
    }
    found
}

/// Shuts a connection down both ways: a read blocked on it ends, and its peer sees the close.
pub fn shut_down(connection: &Inbound) {
    // The descriptor may have been closed and reused since it was listed: shut it down only if it still names
    // the same socket.
    let link = std::fs::read_link(format!("/proc/self/fd/{}", connection.fd));
    if !link.is_ok_and(|l| l.to_string_lossy() == format!("socket:[{}]", connection.inode)) {
        return;
    }
    // SAFETY: shutdown on a descriptor of this process that names one of our connections (checked just now).
    // A reuse in the microseconds since the check would close another connection of ours early, which its
    // client sees as a dropped connection.
    unsafe {
        libc::shutdown(connection.fd, libc::SHUT_RDWR);
    }
}

/// The peer of `fd` if it is a connected (not listening) TCP socket whose local port is `port`.
fn accepted_on(fd: libc::c_int, port: u16) -> Option<std::net::SocketAddr> {
    // SAFETY: getsockname, getpeername and getsockopt write at most the lengths given into buffers of those
    // sizes, and the socket addresses are read as the family they say they are.
    unsafe {
        let (mut local, mut peer): (libc::sockaddr_storage, libc::sockaddr_storage) =
            (std::mem::zeroed(), std::mem::zeroed());
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
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, (&mut peer as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return None;
        }
        socket_addr(&peer)
    }
}

/// SAFETY (for callers): `addr` must have been filled by the kernel, so its family tells its layout.
unsafe fn socket_addr(addr: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
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
    fn a_map_of_a_file_truncated_after_mapping_reads_zeros_and_counts_the_fault() {
        install_sigbus_guard().unwrap();
        let dir = std::env::temp_dir().join(format!("si-mmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.bin");
        std::fs::write(&path, vec![7u8; 64 * 1024]).unwrap();
        let map = map_file(&path).unwrap();
        File::options().write(true).open(&path).unwrap().set_len(10).unwrap();
        let before = faults();
        // Without the guard this read of a page past the new end of file kills the test process.
        let last = map[60 * 1024];
        assert_eq!(last, 0, "the missing page reads as zeros");
        assert!(faults() > before, "the fault was counted");
        assert_eq!(map[5], 7, "the part still in the file is intact");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

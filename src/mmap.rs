//! The one module allowed `unsafe`: memory maps, and the two signal handlers the process needs around them.
//!
//! - `map_file` maps an indexed file read-only.
//! - A SIGBUS guard: reading a page of a map past the end of a file that was truncated after it was mapped
//!   raises SIGBUS, which would kill the server. The guard answers such a fault by mapping a page of zeros
//!   over the missing one and counting the fault; readers compare `faults()` before and after they copy from
//!   a map and fail their read when it moved, so those zeros are never sent as data.
//! - SIGTERM and SIGINT set a flag (`shutdown_requested`) that the server polls to stop gracefully.
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

#[cfg(test)]
mod tests {
    use super::*;

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

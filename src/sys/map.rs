//! Memory maps of indexed files, and the guard that keeps a file truncated under its map from killing the
//! process.
//!
//! - `map_file` maps a file read-only; `map_indexed` also checks it has the indexed size, and `open_indexed`
//!   opens one to be sent without a map after the same check.
//! - A SIGBUS guard: reading a page of a map past the end of a file that was truncated after it was mapped
//!   raises SIGBUS, which would kill the server. The guard answers such a fault by mapping a page of zeros
//!   over the missing one and counting the fault; `unfaulted` runs a read and fails it when the count
//!   moved, so those zeros are never sent as data.
//!
//! Invariant: a map is only made of a file named by the index, and its length is checked against the
//! indexed size before any byte of it is served.

#![allow(unsafe_code)]

use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::signals::install;

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

/// Opens an indexed file to be sent as it is (read or `sendfile`d, not mapped) after checking it still has
/// the size the index gives.
pub fn open_indexed(path: &Path, size: u64) -> io::Result<File> {
    let cannot = |e: io::Error| io::Error::new(e.kind(), format!("cannot open indexed file {}: {e}", path.display()));
    let file = File::open(path).map_err(cannot)?;
    let actual = file.metadata().map_err(cannot)?.len();
    if actual != size {
        return Err(size_changed(path, actual, size));
    }
    Ok(file)
}

/// Checks an indexed file's size without mapping it, and returns what else its metadata says.
pub fn check_size(path: &Path, size: u64) -> io::Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path)
        .map_err(|e| io::Error::new(e.kind(), format!("indexed file {} cannot be read: {e}", path.display())))?;
    if meta.len() != size {
        return Err(size_changed(path, meta.len(), size));
    }
    Ok(meta)
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

/// How many map faults the SIGBUS guard has answered since start.
pub fn faults() -> u64 {
    FAULTS.load(Ordering::SeqCst)
}

/// Runs `read` over maps of indexed files and fails if a mapped file shrank meanwhile: what was read may
/// then hold the guard's zeros, which are not the file's. `Err` carries nothing but the fact; the caller
/// names the file.
pub fn unfaulted<T>(read: impl FnOnce() -> T) -> Result<T, Truncated> {
    let before = faults();
    let value = read();
    if faults() == before { Ok(value) } else { Err(Truncated) }
}

/// A mapped file was truncated while it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

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

/// Installs the SIGBUS guard. Called once, at the start of `serve`.
pub fn install_sigbus_guard() -> io::Result<()> {
    install(libc::SIGBUS, on_sigbus as *const () as usize, libc::SA_SIGINFO | libc::SA_NODEFER)
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

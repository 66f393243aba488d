//! Process limits: the open-file limit raised at start, and the number of descriptors in use, so that the
//! server can size its connection cap and tell exhaustion from other accept failures.

#![allow(unsafe_code)]

use std::io;

/// The open-file limit before and after `raise_open_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: the soft limit is only a default (1,024 under
/// systemd), and a server that runs out of descriptors stops accepting.
pub fn raise_open_files() -> io::Result<OpenFiles> {
    // SAFETY: getrlimit and setrlimit read and write a plain struct of two integers that lives on this
    // stack frame for the duration of each call.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        let soft_before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        Ok(OpenFiles { soft_before, soft: limit.rlim_cur, hard: limit.rlim_max })
    }
}

/// How many descriptors this process has open now.
pub fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count().saturating_sub(1))
}

/// The process's resident memory in bytes, from `/proc/self/statm` (one small read: cheap enough to be
/// looked at a hundred times a second).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096))
}

/// How many threads this process runs now.
pub fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().parse().unwrap_or(0))))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let limits = raise_open_files().unwrap();
        assert_eq!(limits.soft, limits.hard);
        assert!(limits.soft >= limits.soft_before);
        assert!(open_descriptors() >= 3, "stdin, stdout and stderr at least");
        assert!(threads() >= 1);
        let before = resident_bytes().unwrap();
        let touched = vec![1u8; 32 << 20];
        let after = resident_bytes().unwrap();
        assert!(after >= before + (16 << 20), "32 MiB touched: {before} then {after}");
        drop(touched);
    }
}

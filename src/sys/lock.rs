//! Advisory locks on whole files (`flock(2)`): the kernel drops one when its holder exits, however it exits,
//! so a run that dies leaves no stale lock behind. (std's `File::try_lock` does the same from Rust 1.89 on,
//! past this crate's minimum version.)

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` when another open file description holds
/// one. The lock lasts as long as `file` stays open.
pub fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` takes a descriptor and two flags; the descriptor is `file`'s, open for the whole call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_file_is_refused_until_the_first_is_closed() {
        let path = std::env::temp_dir().join(format!("smart-imaging-lock-test-{}", std::process::id()));
        let first = File::create(&path).unwrap();
        assert!(try_lock(&first).unwrap());
        let second = File::options().write(true).open(&path).unwrap();
        assert!(!try_lock(&second).unwrap(), "held by the first");
        drop(first);
        assert!(try_lock(&second).unwrap(), "released when the first is closed");
        let _ = std::fs::remove_file(&path);
    }
}

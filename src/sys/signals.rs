//! Signals: SIGTERM and SIGINT ask for a graceful shutdown, by a flag the server polls; SIGHUP asks for the
//! index to be reloaded and the audit file reopened, by a count the server polls; `send_hangup` asks another
//! process for a reload (`smart-imaging reload`).

#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static HANGUPS: AtomicU64 = AtomicU64::new(0);

/// How many SIGHUPs have arrived: a change asks for a reload.
pub fn hangups() -> u64 {
    HANGUPS.load(Ordering::SeqCst)
}

extern "C" fn on_hangup(_signal: libc::c_int) {
    // Only an atomic add: async-signal-safe.
    HANGUPS.fetch_add(1, Ordering::SeqCst);
}

/// Sends SIGHUP to the process `pid`: `ErrorKind::NotFound` when no such process runs.
pub fn send_hangup(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a pid"))?;
    if pid <= 0 {
        // 0 and negative numbers name process groups, never one process.
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a process id"));
    }
    // SAFETY: `kill` takes a process id and a signal number, both plain integers; it touches no memory.
    if unsafe { libc::kill(pid, libc::SIGHUP) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) { Err(io::Error::new(io::ErrorKind::NotFound, e)) } else { Err(e) }
}

/// Whether SIGTERM or SIGINT has arrived.
pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::SeqCst)
}

extern "C" fn on_shutdown(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SHUTDOWN.store(true, Ordering::SeqCst);
}

/// Makes SIGTERM and SIGINT request a graceful shutdown instead of ending the process, and SIGHUP a reload.
pub fn install_shutdown_handlers() -> io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        install(signal, on_shutdown as *const () as usize, libc::SA_RESTART)?;
    }
    install(libc::SIGHUP, on_hangup as *const () as usize, libc::SA_RESTART)?;
    Ok(())
}

/// Installs `handler` for `signal` with `flags`.
pub(super) fn install(signal: libc::c_int, handler: usize, flags: libc::c_int) -> io::Result<()> {
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

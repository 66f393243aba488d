//! The pid file of `serve --pid-file FILE`, and `smart-imaging reload`, which signals the server it names
//! (SIGHUP: the configuration and the index read again).
//!
//! Invariants: the file is written only once the server is bound (a server that fails to start never
//! replaces a running one's file), whole (written beside and renamed over), and removed when the server
//! stops; `reload` signals only a running process whose command line is smart-imaging's, so a stale file
//! whose number another process took since is refused, not obeyed.

use std::path::{Path, PathBuf};

/// The pid file `reload` reads when none is named.
pub const DEFAULT: &str = "smart-imaging.pid";

/// The pid file of a running server, removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's id to `path`.
    pub fn write(path: &Path) -> Result<PidFile, String> {
        let mut partial = path.as_os_str().to_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        std::fs::write(&partial, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| format!("--pid-file {}: cannot write: {e}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own number is removed: another server may have taken the file over since.
        let ours = std::fs::read_to_string(&self.0).is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// `smart-imaging reload`: SIGHUP to the server `path` names; what was done, or why not.
pub fn reload(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{shown}: no such pid file; is the server running with --pid-file {shown}? (under systemd: systemctl \
             reload smart-imaging)"
        ),
        _ => format!("{shown}: cannot read: {e}"),
    })?;
    let pid: u32 = text.trim().parse().map_err(|_| format!("{shown}: not a process id: {:?}", text.trim()))?;
    let stale = |why: &str| {
        format!("{shown} names process {pid}, which {why}: a stale pid file (the server stopped without removing it?)")
    };
    let command = std::fs::read(format!("/proc/{pid}/cmdline")).map_err(|_| stale("is not running"))?;
    let program = command.split(|&b| b == 0).next().unwrap_or_default();
    if !String::from_utf8_lossy(program).ends_with("smart-imaging") {
        return Err(stale("is not smart-imaging"));
    }
    crate::sys::signals::send_hangup(pid).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => stale("is not running"),
        _ => format!("cannot signal process {pid} ({shown}): {e}"),
    })?;
    Ok(format!("sent SIGHUP to smart-imaging (process {pid}, {shown}): it reads its configuration and index again"))
}

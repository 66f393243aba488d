//! The audit trail (`[audit] file`): one JSON line per access to patient data, authorized or refused, with
//! who asked (tenant, client id, token subject), for which patient and study, what was asked, and how it
//! ended. Lines go through a bounded channel to one writer thread, so a slow disk never holds a worker.
//!
//! Invariants: a line never holds a token or a study token (the path is the redacted one, the facts are
//! plain identifiers); the file is only appended to; a full buffer drops the line and counts it (logged at
//! most once a second), a write failure is logged and counted: neither ever fails a request; SIGHUP reopens
//! the file, for log rotation.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines that may wait for the writer; more are dropped.
pub const BUFFER_LINES: usize = 4096;

/// The facts of one access to patient data that the route table knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The tenant, when the path names a configured one (else `None`: the path is not echoed unredacted).
    pub tenant: Option<String>,
    /// The OAuth client of the access token, from the introspection answer (`client_id`).
    pub client_id: Option<String>,
    /// The token's subject, from the introspection answer (`sub`).
    pub subject: Option<String>,
    /// The FHIR id of the patient in context (for system access, the patient the request named).
    pub patient: Option<String>,
    /// Whether the token was a backend client's system access (`client_id` names the client) rather than an
    /// app's in patient context.
    pub system: bool,
    /// The study UID asked for.
    pub study: Option<String>,
}

/// The facts the server adds once the response is done.
pub struct Done<'a> {
    pub route: &'a str,
    /// The request target as logged: redacted.
    pub path: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub took: Duration,
    pub remote: Option<std::net::SocketAddr>,
}

enum Message {
    Line(String),
    Wake,
}

/// The audit trail's sending side.
#[derive(Debug)]
pub struct Audit {
    tx: SyncSender<Message>,
    reopen: Arc<AtomicBool>,
    /// When a drop was last logged.
    drop_logged: Mutex<Option<Instant>>,
}

impl Audit {
    /// Opens (creating, appending) the file and starts its writer thread; an error names the file.
    pub fn start(path: &Path) -> Result<Audit, String> {
        Audit::with_buffer(path, BUFFER_LINES)
    }

    fn with_buffer(path: &Path, lines: usize) -> Result<Audit, String> {
        let file = open(path).map_err(|e| format!("audit.file {}: {e}", path.display()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(lines);
        let reopen = Arc::new(AtomicBool::new(false));
        let (flag, path) = (Arc::clone(&reopen), path.to_path_buf());
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_lines(&rx, &flag, &path, file))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Audit { tx, reopen, drop_logged: Mutex::new(None) })
    }

    /// Queues the line of one access; never waits.
    pub fn record(&self, access: &Access, done: &Done) {
        let line = line(access, done, crate::time::now_secs());
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let dropped = crate::metrics::audit_dropped();
                let mut logged = self.drop_logged.lock().unwrap_or_else(|p| p.into_inner());
                if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    *logged = Some(Instant::now());
                    log::warn!("audit: the writer is behind, {dropped} lines dropped so far");
                }
            }
        }
    }

    /// Asks the writer to reopen the file (SIGHUP, after the file was rotated).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Message::Wake);
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// One JSON line, with its newline.
fn line(access: &Access, done: &Done, now: u64) -> String {
    let value = serde_json::json!({
        "time": crate::time::format_rfc3339(now),
        "tenant": access.tenant,
        "client_id": access.client_id,
        "subject": access.subject,
        "access": if access.system { "system" } else { "patient" },
        "patient": access.patient,
        "study": access.study,
        "route": done.route,
        "method": done.method,
        "path": done.path,
        "status": done.status,
        "bytes": done.bytes,
        "duration_ms": u64::try_from(done.took.as_millis()).unwrap_or(u64::MAX),
        "remote": done.remote.map(|a| a.to_string()),
    });
    let mut text = value.to_string();
    text.push('\n');
    text
}

/// The writer thread: appends each line, flushes when nothing waits, reopens when asked.
fn write_lines(rx: &Receiver<Message>, reopen: &AtomicBool, path: &PathBuf, file: File) {
    let mut writer = Writer { out: BufWriter::new(file), path, failing: false };
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if reopen.swap(false, Ordering::SeqCst) {
            writer.reopen();
        }
        // A burst is written in large writes, then flushed once nothing waits.
        for message in first.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            if let Message::Line(text) = message {
                let result = writer.out.write_all(text.as_bytes());
                writer.result(result, true);
            }
        }
        let result = writer.out.flush();
        writer.result(result, false);
    }
}

struct Writer<'a> {
    out: BufWriter<File>,
    path: &'a Path,
    /// A failure was logged and nothing has succeeded since: the next failures are only counted.
    failing: bool,
}

impl Writer<'_> {
    fn reopen(&mut self) {
        let _ = self.out.flush();
        match open(self.path) {
            Ok(file) => {
                self.out = BufWriter::new(file);
                log::info!("audit: reopened {}", self.path.display());
            }
            Err(e) => log::error!("audit: cannot reopen {} ({e}); writing on to the old file", self.path.display()),
        }
    }

    fn result(&mut self, result: std::io::Result<()>, line: bool) {
        match result {
            Ok(()) => {
                if line {
                    crate::metrics::audit_written();
                }
                self.failing = false;
            }
            Err(e) => {
                crate::metrics::audit_failed();
                if !self.failing {
                    log::error!("audit: cannot write to {}: {e}", self.path.display());
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_every_field_and_no_more() {
        let access = Access {
            tenant: Some("demo".into()),
            client_id: Some("app".into()),
            subject: Some("u1".into()),
            patient: Some("p1".into()),
            system: false,
            study: Some("1.2.3".into()),
        };
        let done = Done {
            route: "wado",
            path: "/demo/wado/{studyToken}/studies/1.2.3",
            method: "GET",
            status: 200,
            bytes: 10,
            took: Duration::from_millis(7),
            remote: "127.0.0.1:5".parse().ok(),
        };
        let text = line(&access, &done, 0);
        assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["client_id"], "app");
        assert_eq!(v["duration_ms"], 7);
        assert_eq!(v["remote"], "127.0.0.1:5");
        assert_eq!(v["access"], "patient");
        assert_eq!(v.as_object().unwrap().len(), 14);
    }

    /// A disk that takes nothing (a pipe nobody reads): recording never waits, the lines past the buffer
    /// are dropped and counted.
    #[test]
    fn a_writer_that_cannot_write_never_holds_the_caller() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir().join(format!("smart-imaging-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("audit.pipe");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo");
        // A reader that never reads, so that opening for writing does not wait and writes fill the pipe.
        let _reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
        let audit = Audit::with_buffer(&fifo, 8).unwrap();
        let access = Access { tenant: Some("t".repeat(2000)), ..Access::default() };
        let done = Done {
            route: "wado",
            path: "/t/wado/{studyToken}/studies/1.2.3",
            method: "GET",
            status: 200,
            bytes: 0,
            took: Duration::ZERO,
            remote: None,
        };
        let dropped = |text: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with("smart_imaging_audit_lines_dropped_total ")).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let gauges = crate::metrics::IndexGauges::default();
        let before = dropped(&crate::metrics::render(gauges, Default::default()));
        // 64 KiB of pipe and 8 lines of buffer hold fewer than 50 lines of 2 KB: the rest must be dropped.
        for _ in 0..200 {
            audit.record(&access, &done);
        }
        let after = dropped(&crate::metrics::render(gauges, Default::default()));
        assert!(after - before >= 100, "{} lines dropped", after - before);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

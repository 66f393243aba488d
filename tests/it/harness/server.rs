//! The server under test, started as a child process and killed on drop, and the command line run without
//! a server.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;

// ---------------------------------------------------------------------------------------------------
// The server under test.

/// How to start a server: a configuration file, extra environment and extra arguments.
#[derive(Debug, Clone)]
pub struct Launch {
    config: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    listen: String,
    open_files: Option<u64>,
}

impl Launch {
    /// A server of `config`. The repository's own configuration has a `[sandbox]` on 127.0.0.1:8001; a test
    /// never takes a fixed port, so with it the sandbox is moved to port 0 (`--sandbox-listen 127.0.0.1:0`).
    pub fn new(config: impl Into<PathBuf>) -> Launch {
        let config = config.into();
        let args =
            if config == sample_config() { vec!["--sandbox-listen".into(), "127.0.0.1:0".into()] } else { Vec::new() };
        Launch { config, env: Vec::new(), args, listen: "127.0.0.1:0".into(), open_files: None }
    }

    /// Listens on `addr` instead of `127.0.0.1:0`. Whatever the server binds, the tests still reach it on
    /// 127.0.0.1 only: a wildcard address (`0.0.0.0:0`) is reached through loopback at the bound port.
    pub fn listen(mut self, addr: &str) -> Launch {
        self.listen = addr.to_string();
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts the server with both its soft and hard `RLIMIT_NOFILE` at `n`, as `prlimit --nofile=n:n`
    /// would: the server cannot raise it.
    pub fn open_files(mut self, n: u64) -> Launch {
        self.open_files = Some(n);
        self
    }

    pub fn arg(mut self, arg: &str) -> Launch {
        self.args.push(arg.to_string());
        self
    }

    /// Starts the binary with `--config FILE --listen 127.0.0.1:0` (or the address given to `listen`) and
    /// waits for its `listening on` line.
    pub fn start(self) -> Server {
        Server::start(self)
    }
}

/// The log (stderr) of a child, filled by a reader thread and waited on through a condition variable.
#[derive(Debug, Default)]
struct Log {
    state: Mutex<LogState>,
    grew: Condvar,
}

#[derive(Debug, Default)]
struct LogState {
    text: Vec<u8>,
    closed: bool,
}

impl Log {
    fn append(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.text.extend_from_slice(bytes);
        self.grew.notify_all();
    }

    fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        self.grew.notify_all();
    }

    fn text(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&state.text).into_owned()
    }

    /// Waits until `done` holds for the log text (or the stream closed), at most `timeout`.
    fn wait(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if done(&String::from_utf8_lossy(&state.text)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed || left.is_zero() {
                return false;
            }
            state = self.grew.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// A running `smart-imaging serve`, killed on drop. When the test is failing, drop prints the command line
/// and the server's log, so the reason is next to the failed assertion.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    base: String,
    log: Arc<Log>,
    command: String,
}

impl Server {
    fn start(launch: Launch) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smart-imaging"));
        cmd.arg("--config").arg(&launch.config).args(["--listen", launch.listen.as_str()]).args(&launch.args);
        cmd.env_remove(KEY_VAR).env_remove(CONFIG_VAR).env("RUST_LOG", "info");
        for (name, value) in &launch.env {
            cmd.env(name, value);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(n) = launch.open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit { rlim_cur: n, rlim_max: n };
            // SAFETY: the closure runs in the child between fork and exec and calls only setrlimit, which is
            // async-signal-safe, on a struct it owns.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let command = describe(&cmd);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {command}: {e}"));

        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_writer = Arc::clone(&log);
        std::thread::spawn(move || copy_into_log(stderr, &log_writer));

        // stdout: the first `listening on http://ADDR` line goes to the channel; anything else, before or
        // after it, is kept in the log so that nothing the server says is lost.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel::<String>();
        let log_stdout = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("listening on http://") {
                    Some(addr) if tx.is_some() => {
                        let _ = tx.take().map(|tx| tx.send(addr.trim().to_string()));
                    }
                    _ => log_stdout.append(format!("[stdout] {line}\n").as_bytes()),
                }
            }
        });

        let addr = match rx.recv_timeout(DEADLINE) {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                log.wait(Duration::from_secs(5), |_| false);
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => format!("no `listening on` line within {DEADLINE:?}"),
                    mpsc::RecvTimeoutError::Disconnected => format!("the server exited first ({status:?})"),
                };
                panic!("server did not start: {why}\n--- command: {command}\n--- log:\n{}", log.text());
            }
        };
        let addr: SocketAddr = match addr.parse::<SocketAddr>() {
            // A server bound to every interface is still only ever talked to over loopback.
            Ok(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
            Ok(a) => a,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`listening on http://{addr}` is not an address: {e}\n--- command: {command}");
            }
        };
        Server { child, addr, base: format!("http://{addr}"), log, command }
    }

    /// `http://ADDR`, without a trailing slash: what links in responses start with.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The absolute URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The address the tests reach the server at (always a loopback address).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id of the server, for signals and `/proc/<pid>/…`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the server to exit on its own and returns its status; `None` if it is
    /// still running then (drop still kills it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The server's log (its stderr) so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Waits until the log satisfies `done`, since the server writes a request's log line only after the
    /// response went out; panics naming `what` when it does not happen in time.
    pub fn wait_for_log(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        if !self.log.wait(DEADLINE, done) {
            panic!("the server log never showed {what}");
        }
        self.log()
    }

    /// The command line and the log, for a failure message.
    pub fn dump(&self) -> String {
        format!("--- command: {}\n--- log:\n{}", self.command, self.log())
    }

    /// `GET` a path of this server.
    pub fn get(&self, path: &str) -> Reply {
        get(&self.url(path), &[])
    }

    /// `GET` a path of this server with request headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        get(&self.url(path), headers)
    }

    /// Any method on a request target of this server, over a raw connection (see `raw_request`).
    pub fn raw(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
        raw_request(self.addr, method, target, headers)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // The pipes are closed once the child is gone; give the reader a moment to take the rest.
            self.log.wait(Duration::from_secs(2), |_| false);
            eprintln!("{}", self.dump());
        }
    }
}

/// Copies a pipe into the log until it closes, then marks the log closed.
fn copy_into_log(mut from: impl Read, log: &Log) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => log.append(&buf[..n]),
        }
    }
    log.close();
}

/// A command line as a person would type it, with the environment the harness sets.
fn describe(cmd: &Command) -> String {
    let mut out = String::new();
    for (name, value) in cmd.get_envs() {
        match value {
            Some(v) => out.push_str(&format!("{}={} ", name.to_string_lossy(), v.to_string_lossy())),
            None => out.push_str(&format!("(unset {}) ", name.to_string_lossy())),
        }
    }
    out.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Running the command line without a server.

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--- command: {}\n--- {}\n--- stdout:\n{}--- stderr:\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `args` in `cwd`, without `SMART_IMAGING_KEY` and `SMART_IMAGING_CONFIG`, and with `RUST_LOG=info`, and waits
/// for it to finish; a run that outlives the deadline is killed and fails the test.
pub fn run_cli<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> Run {
    run_cli_env(args, cwd, &[])
}

/// `run_cli` with variables of the environment set.
pub fn run_cli_env<S: AsRef<OsStr>>(args: &[S], cwd: &Path, env: &[(&str, &OsStr)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smart-imaging"));
    cmd.args(args).current_dir(cwd).env_remove(KEY_VAR).env_remove(CONFIG_VAR).env("RUST_LOG", "info");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let command = describe(&cmd);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    let readers: [(bool, Box<dyn Read + Send>); 2] = [
        (true, Box::new(child.stdout.take().expect("stdout is piped"))),
        (false, Box::new(child.stderr.take().expect("stderr is piped"))),
    ];
    for (is_stdout, mut pipe) in readers {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((is_stdout, buf));
        });
    }
    drop(tx);
    let deadline = Instant::now() + DEADLINE;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, bytes)) => stdout = bytes,
            Ok((false, bytes)) => stderr = bytes,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command} did not finish within {DEADLINE:?}");
            }
        }
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{command}: {e}"));
    Run {
        command,
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

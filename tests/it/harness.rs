//! The shared harness of the integration tests: it starts the real `smart-imaging` binary on port 0, talks
//! HTTP to it, parses what it answers, and makes a failing test show the server's command line and log.
//!
//! Invariants: every server is a child process started here and killed when its `Server` is dropped; no
//! test waits on a sleep for readiness (the `listening on` line and the log are awaited on a channel or a
//! condition variable, with a deadline); requests only ever go to 127.0.0.1; tests share nothing mutable
//! but the counter that makes temporary folder names unique, so they run in parallel.

use std::ffi::OsStr;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// How long a server may take to print `listening on`, a request to answer, or a command to finish.
const DEADLINE: Duration = Duration::from_secs(20);

/// The name of the environment variable that holds the study-token key.
pub const KEY_VAR: &str = "SMART_IMAGING_KEY";

// ---------------------------------------------------------------------------------------------------
// Paths of the repository under test.

/// The root of the crate under test, wherever it is checked out.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's own configuration, with the tenants `open` and `demo`.
pub fn sample_config() -> PathBuf {
    repo().join("smart-imaging.toml")
}

/// The folder of the sample data; the sample index's instance paths are relative to it.
pub fn data_dir() -> PathBuf {
    repo().join("data")
}

/// The sample index: 3 studies of 2 patients.
pub fn sample_index_path() -> PathBuf {
    data_dir().join("index.toml")
}

// ---------------------------------------------------------------------------------------------------
// The sample index, read with its own small types so that the tests do not trust the server's reading.

#[derive(Debug, Deserialize)]
pub struct IndexFile {
    pub written: String,
    #[serde(default, rename = "study")]
    pub studies: Vec<IndexStudy>,
}

#[derive(Debug, Deserialize)]
pub struct IndexStudy {
    pub uid: String,
    pub patient_id: String,
    #[serde(default)]
    pub patient_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub referring_physician_name: String,
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default)]
    pub series: Vec<IndexSeries>,
}

#[derive(Debug, Deserialize)]
pub struct IndexSeries {
    pub uid: String,
    pub number: Option<i64>,
    #[serde(default)]
    pub modality: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "instance")]
    pub instances: Vec<IndexInstance>,
}

#[derive(Debug, Deserialize)]
pub struct IndexInstance {
    pub uid: String,
    pub sop_class: String,
    pub number: Option<i64>,
    pub transfer_syntax: String,
    pub path: String,
    pub size: u64,
}

impl IndexFile {
    pub fn load(path: &Path) -> IndexFile {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not an index: {e}", path.display()))
    }

    pub fn sample() -> IndexFile {
        IndexFile::load(&sample_index_path())
    }

    pub fn study(&self, uid: &str) -> &IndexStudy {
        self.studies.iter().find(|s| s.uid == uid).unwrap_or_else(|| panic!("study {uid} is not in the index"))
    }

    pub fn studies_of(&self, patient_id: &str) -> Vec<&IndexStudy> {
        self.studies.iter().filter(|s| s.patient_id == patient_id).collect()
    }

    pub fn uids(&self) -> Vec<String> {
        sorted(self.studies.iter().map(|s| s.uid.clone()))
    }

    pub fn instance_count(&self) -> usize {
        self.studies.iter().map(IndexStudy::instance_count).sum()
    }
}

impl IndexStudy {
    /// Every instance, in index order (series by series).
    pub fn instances(&self) -> Vec<&IndexInstance> {
        self.series.iter().flat_map(|s| &s.instances).collect()
    }

    pub fn instance_count(&self) -> usize {
        self.series.iter().map(|s| s.instances.len()).sum()
    }
}

impl IndexInstance {
    /// The bytes of the sample file this instance names.
    pub fn file_bytes(&self) -> Vec<u8> {
        let path = data_dir().join(&self.path);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read sample file {}: {e}", path.display()))
    }
}

pub fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------------
// Temporary folders, without the tempfile crate.

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh folder under the system temp dir, unique per process and per call; removed on drop unless the
/// test failed, in which case it is kept and named for inspection.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("smart-imaging-it-{}-{n}-{label}", std::process::id()));
        if path.exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file (creating its folders) and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Writes `smart-imaging.toml` with `[images] index` set to the absolute path of the sample index,
    /// followed by `tables` (the `[server]` and `[tenants.*]` tables of the test).
    pub fn config(&self, tables: &str) -> PathBuf {
        self.write("smart-imaging.toml", config_text(tables))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A whole configuration: the sample index, then the given tables.
pub fn config_text(tables: &str) -> String {
    let index = toml_string(&sample_index_path().to_string_lossy());
    format!("[images]\nindex = {index}\n\n{tables}")
}

/// A TOML basic string holding `s`, escaped as TOML wants it.
pub fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

// ---------------------------------------------------------------------------------------------------
// The server under test.

/// How to start a server: a configuration file, extra environment and extra arguments.
#[derive(Debug, Clone)]
pub struct Launch {
    config: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    listen: String,
}

impl Launch {
    pub fn new(config: impl Into<PathBuf>) -> Launch {
        Launch { config: config.into(), env: Vec::new(), args: Vec::new(), listen: "127.0.0.1:0".into() }
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
        cmd.env_remove(KEY_VAR).env("RUST_LOG", "info");
        for (name, value) in &launch.env {
            cmd.env(name, value);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
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
// HTTP.

/// A response, with the body read in full. Header names are lower case.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The value of a header, or "" when absent (for messages and `contains` checks).
    pub fn header_or_empty(&self, name: &str) -> &str {
        self.header(name).unwrap_or("")
    }

    /// The media type of `Content-Type`, lower case and without parameters.
    pub fn media_type(&self) -> String {
        media_type(self.header_or_empty("content-type"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body of a {} reply is not JSON ({e}): {}", self.status, self.text()))
    }

    /// Does the body hold these bytes anywhere?
    pub fn body_contains(&self, needle: &[u8]) -> bool {
        find(&self.body, needle, 0).is_some()
    }
}

/// `GET url` with ureq; 4xx and 5xx are replies, not errors. Only 127.0.0.1 may be contacted.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    assert!(url.starts_with("http://127.0.0.1:"), "the tests only talk to 127.0.0.1, not {url}");
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(DEADLINE)).build().into();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("GET {url}: cannot read the body: {e}"));
    Reply { status, headers, body }
}

/// A request over a fresh TCP connection with `Connection: close`, for exact control (OPTIONS, HEAD,
/// POST). The body is every byte after the header block, as sent: not de-chunked, and for HEAD it must be
/// empty.
pub fn raw_request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    assert!(addr.ip().is_loopback(), "the tests only talk to 127.0.0.1, not {addr}");
    let what = format!("{method} {target}");
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{what}: cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(DEADLINE)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !matches!(method, "GET" | "HEAD" | "OPTIONS") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap_or_else(|e| panic!("{what}: cannot send: {e}"));
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{what}: cannot read the response: {e}"));

    let end = find(&raw, b"\r\n\r\n", 0).unwrap_or_else(|| {
        panic!("{what}: the response has no complete header block: {:?}", String::from_utf8_lossy(&raw))
    });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad status line {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (n, v) = line.split_once(':').unwrap_or_else(|| panic!("{what}: bad header line {line:?}"));
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Reply { status, headers, body: raw[end + 4..].to_vec() }
}

/// The first position of `needle` in `hay` at or after `from`.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// `type/subtype` of a media type, lower case.
pub fn media_type(value: &str) -> String {
    split_params(value).first().map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// A parameter of a media type (`name=value` or `name="value"`), by case-insensitive name, unquoted.
pub fn media_param(value: &str, name: &str) -> Option<String> {
    split_params(value).into_iter().skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        if !n.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string())
    })
}

/// A media type without the given parameter, for comparing two that differ only in it.
pub fn without_param(value: &str, name: &str) -> String {
    split_params(value)
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.split_once('=').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// A comma-separated header value (such as `Access-Control-Allow-Headers`) holds `item`, ignoring case.
pub fn list_has(value: &str, item: &str) -> bool {
    value.split(',').any(|v| v.trim().eq_ignore_ascii_case(item))
}

// ---------------------------------------------------------------------------------------------------
// multipart/related (RFC 2046 §5.1.1, RFC 2387), parsed strictly.

/// One body part: its headers (names lower case) and its bytes.
#[derive(Debug, Clone)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parses a `multipart/related` body with the boundary of its `Content-Type`. Strict: no preamble (the
/// body starts with `--boundary CRLF`), parts separated by `CRLF--boundary CRLF`, each part's headers end
/// at the first blank line, and the body ends exactly with `CRLF--boundary--CRLF` (no epilogue). A part
/// that states a `Content-Length` must have that many bytes.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    if media_type(content_type) != "multipart/related" {
        return Err(format!("Content-Type {content_type:?} is not multipart/related"));
    }
    let boundary = media_param(content_type, "boundary").ok_or_else(|| format!("no boundary in {content_type:?}"))?;
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(format!("boundary {boundary:?} is not 1 to 70 characters (RFC 2046 §5.1.1)"));
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let opening = [delimiter.as_slice(), b"\r\n"].concat();
    if !body.starts_with(&opening) {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        return Err(format!("body does not start with `--{boundary}\\r\\n` (a preamble?): {start:?}"));
    }
    let separator = [b"\r\n".as_slice(), &delimiter].concat();
    let mut parts = Vec::new();
    let mut pos = opening.len();
    loop {
        let n = parts.len();
        let head_end =
            find(body, b"\r\n\r\n", pos).ok_or_else(|| format!("part {n}: no blank line after its headers"))?;
        let head = std::str::from_utf8(&body[pos..head_end]).map_err(|_| format!("part {n}: headers not UTF-8"))?;
        let mut headers = Vec::new();
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').ok_or_else(|| format!("part {n}: bad header line {line:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let start = head_end + 4;
        let end = find(body, &separator, start).ok_or_else(|| format!("part {n}: no delimiter after its body"))?;
        let part = Part { headers, body: body[start..end].to_vec() };
        if let Some(len) = part.header("content-length")
            && len.parse::<usize>().ok() != Some(part.body.len())
        {
            return Err(format!("part {n}: Content-Length {len} but {} bytes", part.body.len()));
        }
        parts.push(part);
        let after = end + separator.len();
        let rest = &body[after..];
        if rest.starts_with(b"\r\n") {
            pos = after + 2;
        } else if rest == b"--\r\n" {
            return Ok(parts);
        } else {
            let tail = String::from_utf8_lossy(&rest[..rest.len().min(40)]).into_owned();
            return Err(format!("after part {n}: expected CRLF or a closing `--CRLF` at the very end, got {tail:?}"));
        }
    }
}

/// Checks a WADO-RS `multipart/related; type="application/dicom"` reply against the indexed instances it
/// must hold: status, media type and parameters, per part, in order, the media type, the transfer syntax
/// and the bytes of the file on disk, and `Content-Length` when one is sent. `what` names the request.
pub fn assert_dicom_parts(reply: &Reply, expected: &[&IndexInstance], what: &str) {
    assert_eq!(reply.status, 200, "{what}: status: {}", reply.text());
    let content_type = reply.header_or_empty("content-type");
    assert_eq!(media_type(content_type), "multipart/related", "{what}: Content-Type {content_type:?}");
    assert_eq!(
        media_param(content_type, "type").as_deref(),
        Some("application/dicom"),
        "{what}: the type parameter of {content_type:?}"
    );
    assert!(media_param(content_type, "boundary").is_some(), "{what}: no boundary in {content_type:?}");
    let parts = parse_multipart(content_type, &reply.body).unwrap_or_else(|e| panic!("{what}: bad multipart: {e}"));
    assert_eq!(parts.len(), expected.len(), "{what}: number of parts");
    for (n, (part, inst)) in parts.iter().zip(expected).enumerate() {
        assert_eq!(part.body.len() as u64, inst.size, "{what}: part {n} is not the indexed size of {}", inst.path);
        let part_type = part.header("content-type").unwrap_or_default();
        assert_eq!(media_type(part_type), "application/dicom", "{what}: part {n} Content-Type {part_type:?}");
        assert_eq!(
            media_param(part_type, "transfer-syntax").as_deref(),
            Some(inst.transfer_syntax.as_str()),
            "{what}: part {n} transfer syntax in {part_type:?}"
        );
        assert!(part.body == inst.file_bytes(), "{what}: part {n} is not the bytes of {} (order?)", inst.path);
    }
    // Whether a length must be sent at all is `wado_responses_of_any_size_carry_content_length`'s concern;
    // here, a length that is sent must be the body's.
    if let Some(length) = reply.header("content-length") {
        assert_eq!(length.parse::<usize>().ok(), Some(reply.body.len()), "{what}: Content-Length is not the body's");
    }
}

// ---------------------------------------------------------------------------------------------------
// FHIR.

/// The `url` of the Bundle link with this relation.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == relation)?["url"].as_str().map(str::to_string)
}

/// The resources of a Bundle's entries.
pub fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"].as_array().map(|e| e.iter().map(|e| &e["resource"]).collect()).unwrap_or_default()
}

/// The ids of a Bundle's resources, in order.
pub fn ids(bundle: &Value) -> Vec<String> {
    resources(bundle).iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect()
}

/// The contained resource an ImagingStudy's first `endpoint` reference (`#id`) points to.
pub fn endpoint(study: &Value) -> &Value {
    let reference = study["endpoint"][0]["reference"].as_str().unwrap_or_default();
    let id = reference.strip_prefix('#').unwrap_or_else(|| panic!("endpoint reference {reference:?} is not local"));
    study["contained"]
        .as_array()
        .and_then(|c| c.iter().find(|r| r["id"] == id))
        .unwrap_or_else(|| panic!("no contained resource {reference:?} in {study}"))
}

/// The WADO-RS base address of an ImagingStudy: `{base}/{tenant}/wado/{studyToken}`.
pub fn wado_address(study: &Value) -> String {
    endpoint(study)["address"].as_str().unwrap_or_else(|| panic!("Endpoint without an address: {study}")).to_string()
}

/// The study token in a WADO-RS address: its last path segment.
pub fn study_token(address: &str) -> &str {
    address.rsplit('/').next().unwrap_or_default()
}

/// Searches `path` (an ImagingStudy search on some tenant) and returns study id → WADO-RS address.
pub fn addresses(server: &Server, path: &str) -> Vec<(String, String)> {
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "search {path}: {}", reply.text());
    let bundle = reply.json();
    resources(&bundle)
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap_or_default().to_string(), wado_address(r)))
        .collect()
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

/// Runs the binary with `args` in `cwd`, without `SMART_IMAGING_KEY` and with `RUST_LOG=info`, and waits
/// for it to finish; a run that outlives the deadline is killed and fails the test.
pub fn run_cli<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smart-imaging"));
    cmd.args(args).current_dir(cwd).env_remove(KEY_VAR).env("RUST_LOG", "info");
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

// ---------------------------------------------------------------------------------------------------
// The SMART Imaging ImagingStudy (README, HTTP API).

pub const STUDY_PROFILE: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/smart-imaging-study";
pub const REQUIRES_TOKEN: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/requires-access-token";
pub const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// What an ImagingStudy must say beyond what the index holds.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// `http://ADDR` of the server.
    pub base: &'a str,
    pub tenant: &'a str,
    /// The index's `written`, served as `meta.lastUpdated`.
    pub written: &'a str,
    /// `subject.reference`.
    pub subject: &'a str,
}

/// A DICOM person name `Family^Given` as a display name `Given Family`.
pub fn display_name(pn: &str) -> String {
    let parts: Vec<&str> = pn.split('^').collect();
    let (family, given) = (parts.first().copied().unwrap_or_default(), parts.get(1).copied().unwrap_or_default());
    [given, family].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

/// Checks every field the README promises of an ImagingStudy against the indexed study, except `started`,
/// which the caller checks against literal values.
pub fn assert_imaging_study(study: &Value, indexed: &IndexStudy, expect: Expect) {
    let uid = indexed.uid.as_str();
    let at = |field: &str| format!("ImagingStudy {uid}: {field}");
    assert_eq!(study["resourceType"], "ImagingStudy", "{}", at("resourceType"));
    assert_eq!(study["id"], uid, "{}", at("id"));
    assert_eq!(study["meta"]["lastUpdated"], expect.written, "{}", at("meta.lastUpdated is not the index's written"));
    assert!(
        study["meta"]["profile"].as_array().is_some_and(|p| p.iter().any(|p| p == STUDY_PROFILE)),
        "{}",
        at("meta.profile lacks the SMART Imaging profile")
    );
    assert!(
        study["identifier"].as_array().is_some_and(|ids| ids
            .iter()
            .any(|i| i["system"] == "urn:dicom:uid" && i["value"] == format!("urn:oid:{uid}"))),
        "{}: {}",
        at("no identifier urn:dicom:uid / urn:oid:UID"),
        study["identifier"]
    );
    assert_eq!(study["status"], "available", "{}", at("status"));
    assert_eq!(study["subject"]["reference"], expect.subject, "{}", at("subject.reference"));
    assert_eq!(study["subject"]["display"], display_name(&indexed.patient_name), "{}", at("subject.display"));
    assert_eq!(
        study["referrer"]["display"],
        display_name(&indexed.referring_physician_name),
        "{}",
        at("referrer.display")
    );
    assert_eq!(study["description"], indexed.description.as_str(), "{}", at("description"));

    let modalities = study["modality"].as_array().cloned().unwrap_or_default();
    assert!(modalities.iter().all(|m| m["system"] == DCM), "{}: {modalities:?}", at("modality system is not DCM"));
    let codes = sorted(modalities.iter().map(|m| m["code"].as_str().unwrap_or_default().to_string()));
    assert_eq!(codes, sorted(indexed.modalities.iter().cloned()), "{}", at("modality codes"));
    assert_eq!(study["numberOfSeries"], indexed.series.len(), "{}", at("numberOfSeries"));
    assert_eq!(study["numberOfInstances"], indexed.instance_count(), "{}", at("numberOfInstances"));

    let series = study["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(series.len(), indexed.series.len(), "{}", at("series count"));
    for (se, want) in series.iter().zip(&indexed.series) {
        let at = |field: &str| format!("ImagingStudy {uid} series {}: {field}", want.uid);
        assert_eq!(se["uid"], want.uid.as_str(), "{}", at("uid (or order)"));
        assert_eq!(se["number"].as_i64(), want.number, "{}", at("number"));
        assert_eq!(se["modality"]["system"], DCM, "{}", at("modality system"));
        assert_eq!(se["modality"]["code"], want.modality.as_str(), "{}", at("modality code"));
        assert_eq!(se["description"], want.description.as_str(), "{}", at("description"));
        assert_eq!(se["numberOfInstances"], want.instances.len(), "{}", at("numberOfInstances"));
        let instances = se["instance"].as_array().cloned().unwrap_or_default();
        assert_eq!(instances.len(), want.instances.len(), "{}", at("instance count"));
        for (inst, want) in instances.iter().zip(&want.instances) {
            let at = |field: &str| format!("ImagingStudy {uid} instance {}: {field}", want.uid);
            assert_eq!(inst["uid"], want.uid.as_str(), "{}", at("uid (or order)"));
            assert_eq!(inst["number"].as_i64(), want.number, "{}", at("number"));
            assert_eq!(inst["sopClass"]["system"], "urn:ietf:rfc:3986", "{}", at("sopClass system"));
            assert_eq!(inst["sopClass"]["code"], format!("urn:oid:{}", want.sop_class), "{}", at("sopClass code"));
        }
    }

    assert_eq!(study["endpoint"][0]["reference"], "#wado", "{}", at("endpoint reference"));
    let ep = endpoint(study);
    assert_eq!(ep["resourceType"], "Endpoint", "{}", at("the contained endpoint's resourceType"));
    assert_eq!(ep["status"], "active", "{}", at("Endpoint.status"));
    assert_eq!(ep["connectionType"]["code"], "dicom-wado-rs", "{}", at("Endpoint.connectionType"));
    assert!(
        ep["payloadType"].as_array().is_some_and(|p| p
            .iter()
            .any(|t| t["coding"].as_array().is_some_and(|c| c.iter().any(|c| c["code"] == "any")))),
        "{}: {}",
        at("Endpoint.payloadType is not `any`"),
        ep["payloadType"]
    );
    assert!(
        ep["extension"]
            .as_array()
            .is_some_and(|x| x.iter().any(|x| x["url"] == REQUIRES_TOKEN && x["valueBoolean"] == true)),
        "{}: {}",
        at("Endpoint lacks requires-access-token = true"),
        ep["extension"]
    );
    let address = wado_address(study);
    let prefix = format!("{}/{}/wado/", expect.base, expect.tenant);
    let token = address
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{}: {address}", at("address is not {base}/{tenant}/wado/…")));
    assert!(
        !token.is_empty() && !token.contains('/'),
        "{}: {address}",
        at("address does not end in one study-token segment")
    );
    assert!(
        !address.ends_with('/') && !address.ends_with("/studies"),
        "{}: {address}",
        at("address is not a WADO-RS base")
    );
}

// ---------------------------------------------------------------------------------------------------
// The harness's own parser must be as strict as it claims, or the WADO tests prove less than they say.

#[test]
fn multipart_parser_is_strict() {
    let content_type = "multipart/related; type=\"application/dicom\"; boundary=XYZ";
    let good: &[u8] = b"--XYZ\r\nContent-Type: application/dicom\r\nContent-Length: 4\r\n\r\nAB\r\n\r\n--XYZ\r\n\
                        Content-Type: application/dicom\r\n\r\nC\r\n--XYZ--\r\n";
    let parts = parse_multipart(content_type, good).expect("a well-formed body");
    assert_eq!(parts.len(), 2, "two parts");
    assert_eq!(parts[0].body, b"AB\r\n", "first part keeps its own CRLF");
    assert_eq!(parts[1].header("content-type"), Some("application/dicom"), "second part's header");
    assert_eq!(parts[1].body, b"C", "second part");

    let bad: [(&str, Vec<u8>); 5] = [
        ("a preamble", [b"preamble\r\n".as_slice(), good].concat()),
        ("an epilogue", [good, b"epilogue".as_slice()].concat()),
        ("no closing delimiter", good[..good.len() - 9].to_vec()),
        ("no CRLF after the closing delimiter", good[..good.len() - 2].to_vec()),
        ("a wrong part Content-Length", String::from_utf8_lossy(good).replace("Length: 4", "Length: 5").into_bytes()),
    ];
    for (what, body) in bad {
        assert!(parse_multipart(content_type, &body).is_err(), "the parser accepted {what}");
    }
    assert!(parse_multipart("multipart/related; type=x", good).is_err(), "the parser accepted no boundary");
    assert!(parse_multipart("application/dicom; boundary=XYZ", good).is_err(), "the parser accepted another type");
}

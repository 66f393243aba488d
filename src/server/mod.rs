//! The HTTP server: the only module that knows tiny_http. tiny_http accepts and parses on threads of its own
//! (`listener` keeps its accept loop alive); pumps take each request from it and serve it themselves when
//! nobody waits before it, or put it in the fair `queue` for a fixed pool of workers; responses are written
//! by `writer`, on the pump or worker while the client keeps up and on a writer thread of `pool` when it does
//! not; `conns` closes the connections that idle, dribble, flood, fail half-way or pass the cap; `sandbox`
//! serves the sandbox EHR on threads of its own.
//!
//! Invariants: at most `server.threads` requests are handled at once; no worker waits on a client (a write
//! that would wait moves to a writer thread); a panic in a handler becomes a 500 and the worker goes on;
//! every response gets the CORS and cache headers; one log line per request, with study tokens and
//! credentials redacted, and, when it is done, its metrics and (on a patient-data route) its audit line;
//! SIGHUP reloads the index on a thread of its own while the old one serves, and reopens the audit file.
//!
//! tiny_http has no limits of its own on the request line or header block: the limits below are checked once
//! tiny_http has parsed a request, and `conns` closes a connection whose unfinished request grows past them.

pub mod conns;
pub mod listener;
pub mod pool;
pub mod queue;
pub mod redact;
pub mod sandbox;
pub mod start;
pub mod wire;
pub mod writer;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::http::{ApiError, Method, Request, Response};
use crate::routes::{Facts, handle_noted};
use conns::Watch;
use listener::Listener;
use queue::{Job, Peer, Queue, Refusal};
use redact::redact;
use writer::{HANDOFF_BYTES, Outgoing, Pace, Progress};

/// The longest request target (path and query) accepted; longer is 414 (RFC 9112 §3 suggests 8000).
pub const MAX_TARGET: usize = 8 * 1024;
/// The largest header block accepted, in bytes and in fields; more is 431 (RFC 6585 §5).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_HEADER_FIELDS: usize = 100;

/// Binds the listening socket with the send timeout (`writer::TICK`) and `TCP_NODELAY` set on it, from
/// which Linux copies them to every accepted connection: tiny_http offers no hook to set them per
/// connection. A read timeout cannot be set there (it would time out `accept` too): `conns::Watch` stands in
/// for it. The error is the system's reason alone: the caller names the listener and how to move it.
pub fn bind(listen: &str) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(listen).map_err(|e| e.to_string())?;
    // Socket options are set through a TcpStream view of the same descriptor (std has no setters on a
    // listener); the conversions only move ownership of the descriptor.
    let socket = TcpStream::from(OwnedFd::from(listener));
    let set = socket.set_write_timeout(Some(writer::TICK)).and_then(|()| socket.set_nodelay(true));
    set.map_err(|e| format!("cannot set socket options: {e}"))?;
    Ok(TcpListener::from(OwnedFd::from(socket)))
}

/// What the workers and writer threads share.
struct Shared {
    app: Arc<App>,
    queue: Arc<Queue<tiny_http::Request>>,
    watch: Arc<Watch>,
    pace: Pace,
    listener: Arc<Listener>,
    /// Writer threads writing a response now.
    writers: AtomicUsize,
    pool: Arc<pool::Pool>,
    wires: wire::Wires,
}

/// How a run of the server ended.
pub enum Ended {
    /// SIGTERM or SIGINT: in-flight requests were given `server.shutdown_timeout` to finish.
    Stopped,
    /// The listener could not be kept accepting.
    ListenerLost(String),
}

/// Serves on `socket` until SIGTERM/SIGINT asks to stop (then lets in-flight requests finish within
/// `server.shutdown_timeout`) or the listener is lost. `soft_limit` is the open-file limit the connection
/// cap was derived from.
pub fn run(app: Arc<App>, socket: TcpListener, soft_limit: u64) -> Ended {
    let config = &app.config;
    let threads = config.threads;
    let queue = Arc::new(Queue::new(threads, threads));
    let local = socket.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let cap = config.connection_cap(soft_limit);
    let watch = Arc::new(Watch::new(local, conns::Limits::of(config, cap)));
    let sweeper = Arc::clone(&watch);
    let spawned = std::thread::Builder::new().name("conns".into()).spawn(move || sweeper.run());
    if let Err(e) = spawned {
        return Ended::ListenerLost(format!("cannot start the connection watch: {e}"));
    }
    let pace = Pace {
        min_rate: config.min_send_rate,
        window: Duration::from_secs(10),
        stall: Duration::from_secs(config.write_timeout),
    };
    let listener = match Listener::start(socket, soft_limit, Arc::clone(&queue), Arc::clone(&watch), threads + 1) {
        Ok(listener) => listener,
        Err(e) => return Ended::ListenerLost(e),
    };
    let shared = Arc::new(Shared {
        app: Arc::clone(&app),
        queue,
        watch,
        pace,
        listener: Arc::clone(&listener),
        writers: AtomicUsize::new(0),
        pool: pool::Pool::new(threads.min(pool::KEEP_IDLE)),
        wires: wire::Wires::new(local),
    });
    let serving = Arc::clone(&shared);
    listener.serve_with(Box::new(move |job| serve_one(&serving, job)));
    let mut workers = Vec::with_capacity(threads);
    for n in 0..threads {
        let shared = Arc::clone(&shared);
        match std::thread::Builder::new().name(format!("worker-{n}")).spawn(move || worker(&shared)) {
            Ok(handle) => workers.push(handle),
            Err(e) => log::error!("cannot start worker thread {n}: {e}"),
        }
    }
    if workers.is_empty() {
        return Ended::ListenerLost("no worker thread could be started".into());
    }
    let gauges = Arc::clone(&shared);
    crate::metrics::set_server(Arc::new(move || {
        let depth = gauges.queue.depth();
        crate::metrics::Server {
            open_connections: gauges.watch.open(),
            busy_workers: depth.busy,
            queued: depth.waiting,
            writers: gauges.writers.load(Ordering::SeqCst),
            workers: threads,
        }
    }));
    // Every SIGHUP since the handlers were installed counts, one that came while starting included.
    let mut hangups = 0;
    let reloads = Arc::new(Reloads::default());
    let dog = Arc::clone(&listener);
    let (lost_tx, lost_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
        let _ = lost_tx.send(dog.watchdog());
    });
    if let Err(e) = spawned {
        return Ended::ListenerLost(format!("cannot start the accept watchdog: {e}"));
    }
    loop {
        if crate::sys::signals::shutdown_requested() {
            break;
        }
        let now = crate::sys::signals::hangups();
        if now != hangups {
            hangups = now;
            hang_up(&app, &reloads);
        }
        if let Ok(lost) = lost_rx.recv_timeout(Duration::from_millis(50)) {
            return Ended::ListenerLost(format!(
                "the listener is lost: {lost}; exiting for a supervisor to restart the server"
            ));
        }
    }
    log::info!("shutdown requested: no longer taking requests");
    // Requests that still arrive get a clear 503 and a close, in their turn.
    shared.queue.stop_taking();
    let deadline = Instant::now() + Duration::from_secs(config.shutdown_timeout);
    let drained = shared.queue.drained(deadline);
    shared.queue.close();
    listener.stop();
    if drained {
        log::info!("stopped");
    } else {
        let depth = shared.queue.depth();
        log::warn!(
            "stopping with {} requests still in flight after {}s",
            depth.busy + depth.waiting,
            config.shutdown_timeout
        );
    }
    Ended::Stopped
}

/// Index reloads, one at a time: a SIGHUP that comes while one runs asks for one more after it, so the file
/// as it is after the last SIGHUP is always read (any number of them during one reload make one more).
#[derive(Default)]
struct Reloads {
    running: AtomicBool,
    asked: AtomicBool,
}

/// SIGHUP: reopens the audit file, and reloads the index on a thread of its own while the old index serves.
fn hang_up(app: &Arc<App>, reloads: &Arc<Reloads>) {
    if let Some(audit) = &app.audit {
        audit.reopen();
    }
    reloads.asked.store(true, Ordering::SeqCst);
    if reloads.running.swap(true, Ordering::SeqCst) {
        log::info!("SIGHUP during a reload: the index is read once more when it is done");
        return;
    }
    let (app, mine) = (Arc::clone(app), Arc::clone(reloads));
    let spawned = std::thread::Builder::new().name("reload".into()).spawn(move || {
        loop {
            while mine.asked.swap(false, Ordering::SeqCst) {
                reload(&app);
            }
            mine.running.store(false, Ordering::SeqCst);
            // A SIGHUP between the last look and now found the reload running and left the work to it.
            if !mine.asked.load(Ordering::SeqCst) || mine.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    });
    if let Err(e) = spawned {
        reloads.running.store(false, Ordering::SeqCst);
        log::error!("SIGHUP: cannot start the reload ({e}); the old index keeps serving");
    }
}

/// Reads and checks the index file again and serves it if it is sound; else the old one keeps serving.
fn reload(app: &App) {
    let path = &app.config.index_path;
    log::info!("SIGHUP: reading the index again from {}", path.display());
    match crate::index::Index::load(path) {
        Ok(index) => {
            let (studies, instances, written) =
                (index.studies().len(), index.instance_count(), index.written().to_string());
            app.swap(index);
            crate::metrics::reload("ok");
            log::info!(
                "index reloaded from {}: {studies} studies ({instances} instances), written {written}",
                path.display()
            );
        }
        Err(e) => {
            crate::metrics::reload("refused");
            log::error!("index reload refused, the old index keeps serving: {}: {e}", path.display());
        }
    }
}

fn worker(shared: &Arc<Shared>) {
    while let Some(job) = shared.queue.next() {
        serve_one(shared, job);
    }
}

/// What the log line of a request says, written once its response is done.
struct Finish {
    peer: Peer,
    method: String,
    url: String,
    status: u16,
    len: u64,
    started: Instant,
    note: String,
    facts: Facts,
}

impl Finish {
    /// The response is done (or was cut short after `sent` bytes of its body): the connection's next
    /// request may be taken.
    fn run(self, shared: &Shared, progress: Progress, sent: u64) {
        let cut = match &progress {
            Progress::Done => String::new(),
            Progress::Failed(why) => format!(" (cut short: {why})"),
            Progress::Blocked => " (cut short)".to_string(),
        };
        let complete = matches!(progress, Progress::Done);
        shared.queue.done(self.peer);
        shared.watch.finished(self.peer.as_ref(), complete);
        let Finish { peer, method, url, status, len, started, note, facts } = self;
        let took = started.elapsed();
        crate::metrics::request(facts.route, status, sent, took);
        if let (Some(audit), Some(access)) = (&shared.app.audit, &facts.audit) {
            let done = crate::audit::Done {
                route: facts.route,
                path: &url,
                method: &method,
                status,
                bytes: sent,
                took,
                remote: peer,
            };
            audit.record(access, &done);
        }
        log::info!("{method} {url} {status} {len}{cut} {}ms{note}", took.as_millis());
    }
}

/// Handles one request and sees its response written: here while the client keeps up, else by a writer
/// thread, so that this worker is free again at once.
fn serve_one(shared: &Arc<Shared>, job: Job<tiny_http::Request>) {
    // However this ends (written, handed over, or a panic), the place among the requests being handled is
    // free again.
    struct Handled<'a>(&'a Queue<tiny_http::Request>);
    impl Drop for Handled<'_> {
        fn drop(&mut self) {
            self.0.handled();
        }
    }
    let _handled = Handled(&shared.queue);
    let Job { peer, request: mut raw, refusal, .. } = job;
    let started = Instant::now();
    let app = &shared.app;
    let mut close = false;
    let mut facts = Facts { route: "refused", audit: None };
    let resp = if let Some(refusal) = refusal {
        close = refusal == Refusal::Stopping;
        if refusal == Refusal::Busy {
            log::warn!("saturated: {} {} answered 503", raw.method(), redact(raw.url()));
        }
        saturated()
    } else if shared.watch.over_cap() {
        close = true;
        ApiError::Saturated.text_response("")
    } else {
        match limits(&raw) {
            Some(refusal) => refusal,
            None => {
                let req = convert(&mut raw);
                match catch_unwind(AssertUnwindSafe(|| handle_noted(app, &req))) {
                    Ok((resp, noted)) => {
                        facts = noted;
                        resp
                    }
                    Err(_) => {
                        facts.route = "panic";
                        log::error!("handler panicked on {:?} {}", req.method, redact(raw.url()));
                        Response::bytes(500, "text/plain; charset=utf-8", b"internal server error\n".to_vec())
                    }
                }
            }
        }
    };
    let url = redact(raw.url());
    let note = if url == "/healthz" { health_note(shared) } else { String::new() };
    let finish = Finish {
        peer,
        method: raw.method().to_string(),
        url,
        status: resp.status,
        len: resp.body_len(),
        started,
        note,
        facts,
    };
    let mut out = writer::prepare(raw, resp, shared.pace, close, &shared.wires);
    // A large body goes to a writer thread at once, unless all of it fits in the connection's send buffer.
    if out.body_len() <= HANDOFF_BYTES || out.fits() {
        match out.pump(true) {
            Progress::Blocked => {}
            done => {
                let sent = out.body_sent();
                // The connection's writer goes first: the next request's writer waits for it.
                drop(out);
                return finish.run(shared, done, sent);
            }
        }
    }
    hand_off(shared, out, finish);
}

/// Gives the rest of a response to a writer thread of its own; if none can be started, writes it here.
fn hand_off(shared: &Arc<Shared>, out: Outgoing, finish: Finish) {
    let writing = Arc::clone(shared);
    let task = Box::new(move || {
        let mut out = out;
        writing.writers.fetch_add(1, Ordering::SeqCst);
        let progress = out.pump(false);
        let sent = out.body_sent();
        drop(out);
        writing.writers.fetch_sub(1, Ordering::SeqCst);
        finish.run(&writing, progress, sent);
    });
    if let Err((task, e)) = shared.pool.run(task) {
        log::warn!("cannot start a writer thread ({e}); the worker writes the response");
        task();
    }
}

/// The `/healthz` log line's account of the connection model.
fn health_note(shared: &Shared) -> String {
    let depth = shared.queue.depth();
    format!(
        " (connections {}, in service {}, waiting {}, writers {}, threads {}, accept loops {})",
        shared.watch.open(),
        depth.busy,
        depth.waiting,
        shared.writers.load(Ordering::SeqCst),
        crate::sys::limits::threads(),
        shared.listener.generations(),
    )
}

/// The request-size limits: 414 for a target over `MAX_TARGET`, 431 for a header block over the limits.
fn limits(raw: &tiny_http::Request) -> Option<Response> {
    let text = |status: u16, message: &str| {
        Some(Response::bytes(status, "text/plain; charset=utf-8", format!("{message}\n").into_bytes()))
    };
    if raw.url().len() > MAX_TARGET {
        return text(414, "request target too long");
    }
    let headers = raw.headers();
    let bytes: usize = headers.iter().map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4).sum();
    if headers.len() > MAX_HEADER_FIELDS || bytes > MAX_HEADER_BYTES {
        return text(431, "request header fields too large");
    }
    None
}

fn convert(raw: &mut tiny_http::Request) -> Request {
    let method = match raw.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Options => Method::Options,
        _ => Method::Other,
    };
    let url = raw.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let headers = raw
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
        .collect();
    Request { method, path: path.to_string(), query: query.to_string(), headers }
}

fn saturated() -> Response {
    ApiError::Saturated.text_response("")
}

//! The HTTP server: the only module that knows tiny_http. tiny_http accepts and parses on threads of its own
//! (`listener` keeps its accept loop alive); pumps take each request from it and serve it themselves when
//! nobody waits before it, or put it in the fair `queue` for a fixed pool of workers; responses are written
//! by `writer`, on the pump or worker while the client keeps up and on a writer thread of `pool` when it does
//! not; `conns` closes the connections that idle, dribble, flood, fail half-way or pass the cap. The sandbox EHR
//! is served the same way on a listener, workers and writer threads of its own (`Site`); only it takes
//! request bodies (`body`).
//!
//! Invariants: at most `server.threads` requests are handled at once; no worker waits on a client (a write
//! that would wait moves to a writer thread); a panic in a handler becomes a 500 and the worker goes on;
//! every response gets the CORS and cache headers; one log line per request, with study tokens and
//! credentials redacted, and, when it is done, its metrics and (on a patient-data route) its audit line;
//! SIGHUP reloads the configuration and the index (`reload`) while the old ones serve.
//!
//! tiny_http has no limits of its own on the request line or header block: the limits below are checked once
//! tiny_http has parsed a request, and `conns` closes a connection whose unfinished request grows past them.

pub mod body;
pub mod conns;
pub mod listener;
pub mod pool;
pub mod queue;
pub mod redact;
pub mod reload;
pub mod start;
pub mod wire;
pub mod writer;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::http::{ApiError, Method, Request, Response};
use crate::routes::{Facts, handle_noted};
use crate::sandbox::Sandbox;
use body::Content;
use conns::Watch;
use listener::{Incoming, Listener};
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
    with_options(listener)
}

/// `listener` with the send timeout and `TCP_NODELAY` set, for its connections to inherit (see `bind`).
pub fn with_options(listener: TcpListener) -> Result<TcpListener, String> {
    // Socket options are set through a TcpStream view of the same descriptor (std has no setters on a
    // listener); the conversions only move ownership of the descriptor.
    let socket = TcpStream::from(OwnedFd::from(listener));
    let set = socket.set_write_timeout(Some(writer::TICK)).and_then(|()| socket.set_nodelay(true));
    set.map_err(|e| format!("cannot set socket options: {e}"))?;
    Ok(TcpListener::from(OwnedFd::from(socket)))
}

/// What a listener serves. Each has its own listener, connection watch, queue, workers and writer threads,
/// so that an imaging worker waiting on the sandbox never waits on another imaging worker.
pub enum Site {
    /// The imaging server: its route table, with metrics and the audit trail.
    Imaging(Arc<App>),
    /// The sandbox EHR, which takes form bodies.
    Sandbox(Arc<Sandbox>),
}

impl Site {
    fn name(&self) -> &'static str {
        match self {
            Site::Imaging(_) => "imaging",
            Site::Sandbox(_) => "sandbox",
        }
    }

    /// What its threads' names start with (the system keeps 15 bytes of a name).
    fn threads(&self) -> &'static str {
        match self {
            Site::Imaging(_) => "",
            Site::Sandbox(_) => "sb-",
        }
    }
}

/// What the workers and writer threads share.
struct Shared {
    site: Site,
    queue: Arc<Queue<Incoming>>,
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

/// A site being served: its shared state, its listener, and where its watchdog reports the listener lost.
pub struct Serving {
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    lost: std::sync::mpsc::Receiver<String>,
}

/// How a site is served: its workers, the connection watch's limits, and the pace clients must keep.
pub struct Plan {
    pub threads: usize,
    pub limits: conns::Limits,
    pub pace: Pace,
    /// The open-file limit the connection cap was derived from.
    pub soft_limit: u64,
}

impl Plan {
    /// The configuration's plan, with `threads` workers and the connection cap derived from `soft_limit`.
    pub fn of(config: &crate::config::Config, threads: usize, soft_limit: u64) -> Plan {
        Plan {
            threads,
            limits: conns::Limits::of(config, config.connection_cap(soft_limit)),
            pace: Pace {
                min_rate: config.min_send_rate,
                window: Duration::from_secs(10),
                stall: Duration::from_secs(config.write_timeout),
            },
            soft_limit,
        }
    }
}

/// Starts serving `site` on `socket`: the connection watch, the listener and its pumps, the workers, and
/// the accept watchdog. Returns once they run.
pub fn start(site: Site, socket: TcpListener, plan: &Plan) -> Result<Serving, String> {
    let (name, prefix) = (site.name(), site.threads());
    let threads = plan.threads;
    let queue = Arc::new(Queue::new(threads, threads));
    let local = socket.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let watch = Arc::new(Watch::new(local, plan.limits));
    let sweeper = Arc::clone(&watch);
    std::thread::Builder::new()
        .name(format!("{prefix}conns"))
        .spawn(move || sweeper.run())
        .map_err(|e| format!("cannot start the {name} connection watch: {e}"))?;
    let pool = pool::Pool::new(threads.min(pool::KEEP_IDLE));
    let bodies = matches!(site, Site::Sandbox(_)).then(|| Arc::clone(&pool));
    let listener =
        Listener::start(socket, plan.soft_limit, Arc::clone(&queue), Arc::clone(&watch), threads + 1, bodies)?;
    let shared = Arc::new(Shared {
        site,
        queue,
        watch,
        pace: plan.pace,
        listener: Arc::clone(&listener),
        writers: AtomicUsize::new(0),
        pool,
        wires: wire::Wires::new(local),
    });
    let serving = Arc::clone(&shared);
    listener.serve_with(Box::new(move |job| serve_one(&serving, job)));
    let mut workers = 0;
    for n in 0..threads {
        let shared = Arc::clone(&shared);
        match std::thread::Builder::new().name(format!("{prefix}worker-{n}")).spawn(move || worker(&shared)) {
            Ok(_) => workers += 1,
            Err(e) => log::error!("cannot start {name} worker thread {n}: {e}"),
        }
    }
    if workers == 0 {
        return Err(format!("no {name} worker thread could be started"));
    }
    let dog = Arc::clone(&listener);
    let (lost_tx, lost) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{prefix}watchdog"))
        .spawn(move || {
            let _ = lost_tx.send(dog.watchdog());
        })
        .map_err(|e| format!("cannot start the {name} accept watchdog: {e}"))?;
    Ok(Serving { shared, listener, lost })
}

impl Serving {
    /// Why the listener was lost, if it was.
    fn lost(&self) -> Option<String> {
        self.lost.try_recv().ok()
    }
}

/// Serves the imaging server on `socket` until SIGTERM/SIGINT asks to stop (then lets in-flight requests
/// finish within `server.shutdown_timeout`) or a listener is lost, the sandbox's (`sandbox`, already
/// serving) included. `soft_limit` is the open-file limit the connection cap was derived from; `reloader`
/// reads the configuration and index again on SIGHUP.
pub fn run(
    app: Arc<App>,
    socket: TcpListener,
    soft_limit: u64,
    sandbox: Option<Serving>,
    reloader: reload::Reloader,
) -> Ended {
    // The workers and limits are the configuration's at start; the snapshot is not held, so that a reload
    // frees it once its last request is done.
    let plan = {
        let first = app.current();
        Plan::of(&first.config, first.config.threads, soft_limit)
    };
    let threads = plan.threads;
    let serving = match start(Site::Imaging(Arc::clone(&app)), socket, &plan) {
        Ok(serving) => serving,
        Err(e) => return Ended::ListenerLost(e),
    };
    let Serving { shared, listener, lost: lost_rx } = serving;
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
    let reloader = Arc::new(reloader);
    loop {
        if crate::sys::signals::shutdown_requested() {
            break;
        }
        let now = crate::sys::signals::hangups();
        if now != hangups {
            hangups = now;
            reload::hang_up(&app, &reloader);
        }
        if let Ok(lost) = lost_rx.recv_timeout(Duration::from_millis(50)) {
            return Ended::ListenerLost(format!(
                "the listener is lost: {lost}; exiting for a supervisor to restart the server"
            ));
        }
        if let Some(lost) = sandbox.as_ref().and_then(Serving::lost) {
            return Ended::ListenerLost(format!(
                "the sandbox's listener is lost: {lost}; exiting for a supervisor to restart the server"
            ));
        }
    }
    log::info!("shutdown requested: no longer taking requests");
    // Requests that still arrive get a clear 503 and a close, in their turn.
    shared.queue.stop_taking();
    let shutdown_timeout = app.current().config.shutdown_timeout;
    let deadline = Instant::now() + Duration::from_secs(shutdown_timeout);
    let drained = shared.queue.drained(deadline);
    shared.queue.close();
    listener.stop();
    if let Some(sandbox) = &sandbox {
        sandbox.shared.queue.close();
        sandbox.listener.stop();
    }
    if drained {
        log::info!("stopped");
    } else {
        let depth = shared.queue.depth();
        log::warn!("stopping with {} requests still in flight after {}s", depth.busy + depth.waiting, shutdown_timeout);
    }
    Ended::Stopped
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
    /// The audit trail of the configuration the request started on.
    audit: Option<Arc<crate::audit::Audit>>,
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
        let Finish { peer, method, url, status, len, started, note, facts, audit } = self;
        let took = started.elapsed();
        match &shared.site {
            Site::Imaging(_) => {}
            Site::Sandbox(_) => {
                // The sandbox logs each step of its own; this line is for following the connections.
                log::debug!(target: "sandbox", "{method} {url} {status} {len}{cut} {}ms", took.as_millis());
                return;
            }
        };
        crate::metrics::request(facts.route, status, sent, took);
        if let (Some(audit), Some(access)) = (&audit, &facts.audit) {
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
fn serve_one(shared: &Arc<Shared>, job: Job<Incoming>) {
    // However this ends (written, handed over, or a panic), the place among the requests being handled is
    // free again.
    struct Handled<'a>(&'a Queue<Incoming>);
    impl Drop for Handled<'_> {
        fn drop(&mut self) {
            self.0.handled();
        }
    }
    let _handled = Handled(&shared.queue);
    let Job { peer, request: Incoming { mut raw, content }, refusal, .. } = job;
    let started = Instant::now();
    let mut close = false;
    let mut facts = Facts { route: "refused", audit: None };
    // The audit trail of the configuration the request works on, for its line once the response is done.
    let mut audit = None;
    let resp = if let Some(refusal) = refusal {
        close = refusal == Refusal::Stopping;
        if refusal == Refusal::Busy {
            log::warn!("{} saturated: {} {} answered 503", shared.site.name(), raw.method(), redact(raw.url()));
        }
        saturated()
    } else if shared.watch.over_cap() {
        close = true;
        ApiError::Saturated.text_response("")
    } else if let Some(refusal) = limits(&raw) {
        refusal
    } else {
        let req = convert(&mut raw);
        let text = |status: u16, message: &str| {
            Response::bytes(status, "text/plain; charset=utf-8", format!("{message}\n").into_bytes())
        };
        let answered = match content {
            // tiny_http reads the next request from where this body ends: after a body left unread, the
            // connection is closed.
            Content::TooLarge => {
                close = true;
                Ok((text(413, "the request body is too large"), Facts { route: "refused", audit: None }))
            }
            Content::Unreadable => {
                close = true;
                Ok((text(400, "the request body could not be read"), Facts { route: "refused", audit: None }))
            }
            Content::Read(body) => catch_unwind(AssertUnwindSafe(|| match &shared.site {
                Site::Imaging(app) => {
                    // The configuration and index this request works on, taken once.
                    let snapshot = app.current();
                    audit = snapshot.audit.clone();
                    handle_noted(app, &snapshot, &req)
                }
                Site::Sandbox(sb) => (crate::sandbox::handle(sb, &req, &body), Facts { route: "sandbox", audit: None }),
            })),
        };
        match answered {
            Ok((resp, noted)) => {
                facts = noted;
                resp
            }
            Err(_) => {
                facts.route = "panic";
                log::error!("{} handler panicked on {:?} {}", shared.site.name(), req.method, redact(raw.url()));
                text(500, "internal server error")
            }
        }
    };
    let url = redact(raw.url());
    let note =
        if url == "/healthz" && matches!(shared.site, Site::Imaging(_)) { health_note(shared) } else { String::new() };
    let finish = Finish {
        peer,
        method: raw.method().to_string(),
        url,
        status: resp.status,
        len: resp.body_len(),
        started,
        note,
        facts,
        audit,
    };
    let cors = match shared.site {
        Site::Imaging(_) => writer::Cors::Imaging,
        Site::Sandbox(_) => writer::Cors::Sandbox,
    };
    let mut out = writer::prepare(raw, resp, shared.pace, close, &shared.wires, cors);
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
        tiny_http::Method::Post => Method::Post,
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

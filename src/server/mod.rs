//! The HTTP server: the only module that knows tiny_http. One acceptor hands requests to a fixed pool of
//! worker threads; when every worker is busy and the short queue is full, the acceptor answers 503 itself.
//!
//! Invariants: at most `server.threads` requests are handled at once; a panic in a handler becomes a 500 and
//! the worker goes on; every response gets the CORS and cache headers here; one log line per request, with
//! study tokens and credentials redacted; every connection has read and write timeouts.
//!
//! tiny_http reads each connection's requests on a thread of its own and has no limits of its own on the
//! request line or header block: the timeouts bound how long a connection can hold that thread, and the
//! limits below are checked once tiny_http has parsed a request.

pub mod conns;
pub mod redact;
pub mod start;
pub mod writer;

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::config::Config;
use crate::http::{ApiError, Method, Request, Response};
use crate::routes::handle;
use crate::server::conns::Watch;
use redact::redact;
use writer::respond;

/// The longest request target (path and query) accepted; longer is 414 (RFC 9112 §3 suggests 8000).
pub const MAX_TARGET: usize = 8 * 1024;
/// The largest header block accepted, in bytes and in fields; more is 431 (RFC 6585 §5).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_HEADER_FIELDS: usize = 100;

/// Binds the listener with the write timeout and `TCP_NODELAY` set on the listening socket, from which Linux
/// copies them to every accepted connection: tiny_http offers no hook to set them per connection. A read
/// timeout cannot be set there (it would time out `accept` too): `conns::Watch` stands in for it.
pub fn bind(listen: &str, config: &Config) -> Result<tiny_http::Server, String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    // Socket options are set through a TcpStream view of the same descriptor (std has no setters on a
    // listener); the conversions only move ownership of the descriptor.
    let socket = TcpStream::from(OwnedFd::from(listener));
    let set = socket
        .set_write_timeout(Some(Duration::from_secs(config.write_timeout)))
        .and_then(|()| socket.set_nodelay(true));
    set.map_err(|e| format!("cannot set socket options on {listen}: {e}"))?;
    let listener = TcpListener::from(OwnedFd::from(socket));
    tiny_http::Server::from_listener(listener, None).map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// Serves until the listener fails or SIGTERM/SIGINT asks to stop; then stops accepting, lets in-flight
/// requests finish within `server.shutdown_timeout`, and returns.
pub fn run(app: Arc<App>, server: tiny_http::Server) {
    let server = Arc::new(server);
    let threads = app.config.threads;
    let (tx, rx): (SyncSender<tiny_http::Request>, Receiver<tiny_http::Request>) = sync_channel(threads);
    let rx = Arc::new(Mutex::new(rx));
    let port = server.server_addr().to_ip().map_or(0, |a| a.port());
    let watch = Arc::new(Watch::new(port, Duration::from_secs(app.config.read_timeout)));
    let sweeper = Arc::clone(&watch);
    std::thread::spawn(move || sweeper.run());
    let mut workers = Vec::with_capacity(threads);
    for n in 0..threads {
        let (app, rx, watch) = (Arc::clone(&app), Arc::clone(&rx), Arc::clone(&watch));
        match std::thread::Builder::new().name(format!("worker-{n}")).spawn(move || worker(&app, &rx, &watch)) {
            Ok(handle) => workers.push(handle),
            Err(e) => log::error!("cannot start worker thread {n}: {e}"),
        }
    }
    let watcher = Arc::clone(&server);
    std::thread::spawn(move || {
        while !crate::sys::signals::shutdown_requested() {
            std::thread::sleep(Duration::from_millis(50));
        }
        log::info!("shutdown requested: no longer accepting requests");
        watcher.unblock();
    });
    accept(&server, &tx, &watch);
    // Closing the queue lets each worker finish what it holds and what is queued, then stop.
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(app.config.shutdown_timeout);
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        // Requests that still reach tiny_http while in-flight ones finish get a clear 503, not tiny_http's
        // bare 500 for requests nobody takes.
        if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(20)) {
            let peer = request.remote_addr().copied();
            let complete = respond(request, saturated().with_header("Connection", "close"));
            watch.finished(peer.as_ref(), complete);
        }
    }
    let unfinished = workers.iter().filter(|w| !w.is_finished()).count();
    if unfinished > 0 {
        log::warn!("stopping with {unfinished} requests still in flight after {}s", app.config.shutdown_timeout);
    } else {
        log::info!("stopped");
    }
}

fn accept(server: &tiny_http::Server, tx: &SyncSender<tiny_http::Request>, watch: &Watch) {
    for request in server.incoming_requests() {
        watch.started(request.remote_addr());
        match tx.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(request)) => {
                log::warn!("saturated: {} {} answered 503", request.method(), redact(request.url()));
                let peer = request.remote_addr().copied();
                let complete = respond(request, saturated());
                watch.finished(peer.as_ref(), complete);
            }
            Err(TrySendError::Disconnected(request)) => {
                let peer = request.remote_addr().copied();
                let complete = respond(request, saturated());
                watch.finished(peer.as_ref(), complete);
                break;
            }
        }
    }
}

fn worker(app: &App, rx: &Mutex<Receiver<tiny_http::Request>>, watch: &Watch) {
    loop {
        // The lock is held only while waiting for the next request, never while handling one.
        let next = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(request) = next else { return };
        let peer = request.remote_addr().copied();
        let complete = serve_one(app, request);
        watch.finished(peer.as_ref(), complete);
    }
}

/// Handles one request; whether its whole response was sent.
fn serve_one(app: &App, mut raw: tiny_http::Request) -> bool {
    let started = Instant::now();
    let resp = match limits(&raw) {
        Some(refusal) => refusal,
        None => {
            let req = convert(&mut raw);
            catch_unwind(AssertUnwindSafe(|| handle(app, &req))).unwrap_or_else(|_| {
                log::error!("handler panicked on {:?} {}", req.method, redact(raw.url()));
                Response::bytes(500, "text/plain; charset=utf-8", b"internal server error\n".to_vec())
            })
        }
    };
    let (status, len) = (resp.status, resp.body_len());
    let method = raw.method().to_string();
    let url = redact(raw.url());
    let complete = respond(raw, resp);
    let cut = if complete { "" } else { " (cut short)" };
    log::info!("{method} {url} {status} {len}{cut} {}ms", started.elapsed().as_millis());
    complete
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

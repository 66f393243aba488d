//! The sandbox EHR's tiny_http server: `THREADS` threads take its requests, turn each into a plain `Req`
//! (the body read up to `MAX_BODY`), answer it with `sandbox::handle` and write the `Resp`; a connection
//! watch of its own (`conns::Watch`) holds its connections to the same rules as the imaging server's (read
//! timeout, request heads and unfinished input bounded, the connection cap, no connection left unread).
//!
//! Invariants: these threads are the sandbox's alone (never the imaging server's workers), so a request
//! of the imaging server waiting on the sandbox cannot wait on itself; a panic in a handler is a 500 and the
//! thread goes on; a body over `MAX_BODY` is 413 without being read further.

use std::io::Read;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::conns::{Limits, Watch};
use crate::sandbox::{Req, Resp, Sandbox, THREADS, handle, with_cors};

/// The largest request body read: forms are small.
pub const MAX_BODY: usize = 64 * 1024;

/// Starts serving `socket` on the sandbox's threads, its connections held to `limits`; returns once they run.
pub fn serve(socket: TcpListener, sb: Sandbox, limits: Limits) -> Result<(), String> {
    let local = socket.local_addr().map_err(|e| format!("the sandbox cannot serve: {e}"))?;
    let watch = Arc::new(Watch::new(local, limits));
    let sweeper = Arc::clone(&watch);
    std::thread::Builder::new()
        .name("sandbox-conns".into())
        .spawn(move || sweeper.run())
        .map_err(|e| format!("cannot start the sandbox's connection watch: {e}"))?;
    let server =
        tiny_http::Server::from_listener(socket, None).map_err(|e| format!("the sandbox cannot serve: {e}"))?;
    let (server, sb) = (Arc::new(server), Arc::new(sb));
    for n in 0..THREADS {
        let (server, sb, watch) = (Arc::clone(&server), Arc::clone(&sb), Arc::clone(&watch));
        std::thread::Builder::new()
            .name(format!("sandbox-{n}"))
            .spawn(move || {
                while let Ok(request) = server.recv() {
                    let peer = request.remote_addr().copied();
                    watch.started(peer.as_ref());
                    let complete = answer(&sb, request);
                    watch.finished(peer.as_ref(), complete);
                }
            })
            .map_err(|e| format!("cannot start sandbox thread {n}: {e}"))?;
    }
    Ok(())
}

/// Answers one request; whether its response was written whole.
fn answer(sb: &Sandbox, mut request: tiny_http::Request) -> bool {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut req = Req {
        method: request.method().as_str().to_ascii_uppercase(),
        path: path.to_string(),
        query: query.to_string(),
        headers: request
            .headers()
            .iter()
            .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
            .collect(),
        body: Vec::new(),
    };
    let resp = if request.body_length().is_some_and(|n| n > MAX_BODY) {
        with_cors(Resp::text(413, "the request body is too large"))
    } else {
        let mut body = Vec::new();
        match request.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body) {
            Ok(_) if body.len() > MAX_BODY => with_cors(Resp::text(413, "the request body is too large")),
            Ok(_) => {
                req.body = body;
                catch_unwind(AssertUnwindSafe(|| handle(sb, &req))).unwrap_or_else(|_| {
                    log::error!(target: "sandbox", "a sandbox handler panicked on {} {path}", req.method);
                    with_cors(Resp::text(500, "internal server error"))
                })
            }
            Err(e) => {
                log::debug!(target: "sandbox", "{} {path}: cannot read the body: {e}", req.method);
                return false;
            }
        }
    };
    log::debug!(target: "sandbox", "{} {path} {}", req.method, resp.status);
    let mut out = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    for (name, value) in &resp.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(header);
        }
    }
    request.respond(out).is_ok()
}

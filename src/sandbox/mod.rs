//! The built-in sandbox EHR (docs/ehr.md, The built-in sandbox EHR): a SMART on FHIR authorization server and a
//! FHIR server of a few configured patients, for teaching and tests, on a listener and threads of its own.
//! The imaging server's tenants reach it over HTTP through `auth::ehr`, like any EHR.
//!
//! Paths, under the sandbox's public URL: `/` (a page), `/fhir/…` (the issuer with a patient picker),
//! `/{patientId}/fhir/…` (an issuer per patient, approving that patient at once), each with
//! `.well-known/smart-configuration`, `metadata` and `Patient/{id}`; `/auth/authorize` and
//! `/{patientId}/auth/authorize`; `/auth/token` and `/auth/introspect`.
//!
//! Invariants: the sandbox has its own threads (`listener`), so an imaging worker waiting on it never
//! waits for another imaging worker; it never calls the imaging server; every response carries the CORS
//! headers (any origin, no credentials) and every OPTIONS is a preflight; it refuses a non-loopback address
//! unless `sandbox.allow_remote`; it logs one line per step and never a code or token in full.

pub mod assertion;
mod fhir;
mod oauth;
mod pages;
mod store;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::config::{self, Config, SandboxPatient};
use crate::http::percent_decode;

/// Threads that answer the sandbox's requests.
pub const THREADS: usize = 8;

/// A request, as plain values.
#[derive(Debug, Default)]
pub struct Req {
    /// Upper case: `GET`, `POST`, …
    pub method: String,
    /// The raw path, still percent-encoded.
    pub path: String,
    /// The raw query after `?`, still percent-encoded.
    pub query: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response, as plain values.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
        Resp { status, headers: vec![("Content-Type".into(), content_type.into())], body }
    }

    pub fn json(status: u16, value: &Value) -> Resp {
        Resp::new(status, "application/json", value.to_string().into_bytes())
    }

    pub fn fhir(status: u16, value: &Value) -> Resp {
        Resp::new(status, "application/fhir+json", value.to_string().into_bytes())
    }

    pub fn text(status: u16, text: &str) -> Resp {
        Resp::new(status, "text/plain; charset=utf-8", format!("{text}\n").into_bytes())
    }

    /// A page: nothing from elsewhere may load in it, and no other site may frame it.
    pub fn html(status: u16, html: String) -> Resp {
        Resp::new(status, "text/html; charset=utf-8", html.into_bytes())
            .with_header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            )
            .with_header("X-Frame-Options", "DENY")
            .with_header("Cache-Control", "no-store")
    }

    pub fn redirect(location: &str) -> Resp {
        Resp { status: 302, headers: vec![("Location".into(), location.into())], body: Vec::new() }
            .with_header("Cache-Control", "no-store")
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Resp {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// RFC 6749 §5.1: token answers are not cached.
    pub fn no_store(self) -> Resp {
        self.with_header("Cache-Control", "no-store").with_header("Pragma", "no-cache")
    }
}

/// Which issuer a request came to.
pub enum Issuer<'a> {
    /// `{sandbox}/fhir`: asks which patient to approve.
    Picker,
    /// `{sandbox}/{id}/fhir`: approves this patient at once.
    Patient(&'a SandboxPatient),
}

impl Issuer<'_> {
    fn prefix(&self, base: &str) -> String {
        match self {
            Issuer::Picker => base.to_string(),
            Issuer::Patient(p) => format!("{base}/{}", p.id),
        }
    }

    pub fn fhir_base(&self, base: &str) -> String {
        format!("{}/fhir", self.prefix(base))
    }

    pub fn authorize_url(&self, base: &str) -> String {
        format!("{}/auth/authorize", self.prefix(base))
    }
}

/// An imaging tenant that uses the sandbox: its FHIR base and its SMART Imaging Access capabilities, the
/// same list as its own discovery document (`config::Tenant::imaging_capabilities`).
#[derive(Debug, Clone)]
pub struct Associated {
    pub url: String,
    pub capabilities: &'static [&'static str],
}

/// The running sandbox's state.
#[derive(Debug)]
pub struct Sandbox {
    /// Its public URL, without a trailing slash.
    pub base: String,
    pub settings: config::Sandbox,
    /// The imaging tenants that use it (`associated_endpoints`).
    pub imaging: Vec<Associated>,
    store: Mutex<store::Store>,
}

impl Sandbox {
    pub fn new(base: String, settings: config::Sandbox, imaging: Vec<Associated>) -> Sandbox {
        Sandbox { base, settings, imaging, store: Mutex::new(store::Store::default()) }
    }

    fn patient(&self, id: &str) -> Option<&SandboxPatient> {
        self.settings.patients.iter().find(|p| p.id == id)
    }

    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.base)
    }

    pub fn introspection_url(&self) -> String {
        format!("{}/auth/introspect", self.base)
    }

    /// The `aud` values an app may ask a token for at `issuer`: its FHIR base, or an imaging tenant that uses
    /// the sandbox.
    fn audiences(&self, issuer: &Issuer) -> Vec<String> {
        std::iter::once(issuer.fhir_base(&self.base)).chain(self.imaging.iter().map(|a| a.url.clone())).collect()
    }

    /// The store; a panic elsewhere while it was held leaves nothing half-done that matters here.
    fn store(&self) -> MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const ALLOW_HEADERS: &str = "Authorization, Accept, Content-Type, Cache-Control, Prefer, X-Requested-With";

/// Every response's CORS headers: any origin, no credentials. A preflight's `Access-Control-Request-Headers`
/// are allowed as well, when they are a list of header names: an app's library may send its own.
fn add_cors(resp: &mut Resp, requested: Option<&str>) {
    let is_list = |h: &&str| h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b));
    let allow = match requested.filter(is_list).map(str::trim).filter(|h| !h.is_empty()) {
        Some(extra) => format!("{ALLOW_HEADERS}, {extra}"),
        None => ALLOW_HEADERS.to_string(),
    };
    for (name, value) in [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS"),
        ("Access-Control-Allow-Headers", allow.as_str()),
        ("Access-Control-Expose-Headers", "Location, WWW-Authenticate, Content-Type"),
        ("Access-Control-Max-Age", "600"),
    ] {
        resp.headers.push((name.into(), value.into()));
    }
}

/// A response with the CORS headers added.
pub fn with_cors(mut resp: Resp) -> Resp {
    add_cors(&mut resp, None);
    resp
}

/// Answers one request.
pub fn handle(sb: &Sandbox, req: &Req) -> Resp {
    let mut resp = route(sb, req);
    let requested = if req.method == "OPTIONS" { req.header("access-control-request-headers") } else { None };
    add_cors(&mut resp, requested);
    resp
}

fn route(sb: &Sandbox, req: &Req) -> Resp {
    if req.method == "OPTIONS" {
        return Resp { status: 204, headers: Vec::new(), body: Vec::new() };
    }
    let segments: Option<Vec<String>> =
        req.path.strip_prefix('/').and_then(|p| p.split('/').map(|s| percent_decode(s, false)).collect());
    let Some(segments) = segments else {
        return Resp::text(400, "malformed path");
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = req.method == "GET" || req.method == "HEAD";
    let post = req.method == "POST";
    let not_allowed = |allow: &str| Resp::text(405, "method not allowed").with_header("Allow", allow);
    let unknown = |id: &str| Resp::text(404, &format!("the sandbox has no patient {id:?}, so no issuer of that name"));
    match segs.as_slice() {
        [""] if get => Resp::html(200, pages::home(sb)),
        [""] => not_allowed("GET, HEAD, OPTIONS"),
        ["auth", "token"] if post => oauth::token(sb, req),
        ["auth", "introspect"] if post => oauth::introspect(sb, req),
        ["auth", "token" | "introspect"] => not_allowed("POST, OPTIONS"),
        ["auth", "authorize"] => authorize(sb, &Issuer::Picker, req),
        [id, "auth", "authorize"] => match sb.patient(id) {
            Some(p) => authorize(sb, &Issuer::Patient(p), req),
            None => unknown(id),
        },
        ["fhir", rest @ ..] => fhir_route(sb, req, &Issuer::Picker, rest),
        [id, "fhir", rest @ ..] => match sb.patient(id) {
            Some(p) => fhir_route(sb, req, &Issuer::Patient(p), rest),
            None => unknown(id),
        },
        _ => Resp::text(404, "not a path of the sandbox: see its home page"),
    }
}

fn authorize(sb: &Sandbox, issuer: &Issuer, req: &Req) -> Resp {
    match req.method.as_str() {
        // Not HEAD: an authorization request makes a code.
        "GET" => oauth::authorize(sb, issuer, &req.query),
        "POST" => {
            let media = req.header("content-type").unwrap_or_default();
            match std::str::from_utf8(&req.body) {
                Ok(form) if media.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") => {
                    oauth::authorize(sb, issuer, form)
                }
                _ => Resp::text(400, "a POSTed authorization request is an application/x-www-form-urlencoded form"),
            }
        }
        _ => Resp::text(405, "method not allowed").with_header("Allow", "GET, POST, OPTIONS"),
    }
}

fn fhir_route(sb: &Sandbox, req: &Req, issuer: &Issuer, rest: &[&str]) -> Resp {
    if req.method != "GET" && req.method != "HEAD" {
        return fhir::outcome(405, "not-supported", "the sandbox's FHIR server only reads")
            .with_header("Allow", "GET, HEAD, OPTIONS");
    }
    match rest {
        [".well-known", "smart-configuration"] => Resp::json(200, &fhir::smart_configuration(sb, issuer)),
        ["metadata"] => Resp::fhir(200, &fhir::capability_statement(sb, issuer)),
        ["Patient", id] if crate::auth::patient::is_fhir_id(id) => fhir::read_patient(sb, req, id),
        ["Patient", _] => fhir::outcome(404, "not-found", "not a FHIR id"),
        _ => fhir::outcome(
            404,
            "not-found",
            "the sandbox serves metadata, .well-known/smart-configuration and Patient/{id}",
        ),
    }
}

// ---------------------------------------------------------------------------------------------------
// Starting.

/// The sandbox's socket, bound, and its public URL; `start` serves on it.
pub struct Bound {
    socket: TcpListener,
    addr: SocketAddr,
    base_url: String,
    settings: config::Sandbox,
}

/// Binds the sandbox's listener: `listen_flag` (`--sandbox-listen`) or `sandbox.listen`. A non-loopback
/// address is refused unless `sandbox.allow_remote`. The public URL is `sandbox.base_url`, else (and always
/// with the flag) the bound address, so that port 0 works.
pub fn bind(settings: config::Sandbox, listen_flag: Option<String>, config_path: &Path) -> Result<Bound, String> {
    let flag = listen_flag.is_some();
    let source =
        if flag { "--sandbox-listen".to_string() } else { format!("{}: sandbox.listen", config_path.display()) };
    let listen = listen_flag.unwrap_or_else(|| settings.listen.clone());
    let well_formed = listen.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !well_formed {
        return Err(format!("{source} {listen:?}: expected HOST:PORT, e.g. {}", config::DEFAULT_SANDBOX_LISTEN));
    }
    let remote = |addr: &SocketAddr| !addr.ip().is_loopback() && !settings.allow_remote;
    if listen.parse::<SocketAddr>().is_ok_and(|a| remote(&a)) {
        return Err(config::not_loopback(&format!("{source} {listen:?}")));
    }
    let socket = TcpListener::bind(&listen).map_err(|e| {
        format!("the sandbox EHR cannot listen on {listen} ({source}): {e}; move it with --sandbox-listen HOST:PORT")
    })?;
    let addr = socket.local_addr().map_err(|e| format!("{source} {listen:?}: {e}"))?;
    if remote(&addr) {
        return Err(config::not_loopback(&format!("{source} {listen:?} (bound to {addr})")));
    }
    let base_url = match (&settings.base_url, flag) {
        (Some(url), false) => url.clone(),
        _ => format!("http://{addr}"),
    };
    Ok(Bound { socket, addr, base_url, settings })
}

impl Bound {
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The sandbox's state and its socket, ready to be served (`server::sandbox`). `imaging_base` is the
    /// imaging server's public URL: the tenants of `config` whose EHR is this sandbox become its
    /// `associated_endpoints`.
    pub fn ready(self, config: &Config, imaging_base: &str) -> Ready {
        let base = &self.base_url;
        let users: Vec<&config::Tenant> = config
            .tenants
            .values()
            .filter(|t| t.ehr_base().is_some_and(|b| b == base || b.starts_with(&format!("{base}/"))))
            .collect();
        let imaging = users
            .iter()
            .map(|t| Associated {
                url: format!("{imaging_base}/{}/fhir", t.name),
                capabilities: t.imaging_capabilities(),
            })
            .collect();
        let sb = Sandbox::new(base.clone(), self.settings, imaging);
        if !self.addr.ip().is_loopback() {
            log::warn!(
                target: "sandbox",
                "!!! the sandbox EHR listens on {}, which other machines can reach (sandbox.allow_remote = true): it \
                 approves every app without a login. Use it for teaching and tests only !!!",
                self.addr
            );
        }
        log::info!(
            target: "sandbox",
            "sandbox EHR, for teaching and tests only (no login, every app approved), on {base}: issuers {base}/fhir \
             (patient picker){}; backend clients {}; imaging tenants using it: {}",
            sb.settings.patients.iter().map(|p| format!(", {base}/{}/fhir (patient {})", p.id, p.id)).collect::<String>(),
            list(sb.settings.clients.iter().map(|c| c.id.as_str())),
            list(users.iter().map(|t| t.name.as_str())),
        );
        Ready { socket: self.socket, addr: self.addr, sandbox: sb }
    }
}

/// A sandbox bound and configured, not yet served.
pub struct Ready {
    pub socket: TcpListener,
    pub addr: SocketAddr,
    pub sandbox: Sandbox,
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

#[cfg(test)]
mod tests;

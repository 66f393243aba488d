//! The built-in sandbox EHR (docs/ehr.md, The built-in sandbox EHR): a SMART on FHIR authorization server and a
//! FHIR server of a few configured patients, for teaching and tests, on a listener and threads of its own.
//! The imaging server's tenants reach it over HTTP through `auth::ehr`, like any EHR.
//!
//! Paths, under the sandbox's public URL: `/` (a page), `/fhir/…` (the issuer with a patient picker),
//! `/{patientId}/fhir/…` (an issuer per patient, approving that patient at once), each with
//! `.well-known/smart-configuration`, `metadata`, `Patient/{id}` and the chart (`chart`); `/auth/authorize` and
//! `/{patientId}/auth/authorize`; `/auth/token` and `/auth/introspect`; `/{patientId}/`, the patient's page,
//! whose "Launch app" buttons POST to `/launch` (EHR launch).
//!
//! Invariants: the sandbox has its own threads (`listener`), so an imaging worker waiting on it never
//! waits for another imaging worker; it never calls the imaging server; every response carries the CORS
//! headers (any origin, no credentials) and every OPTIONS is a preflight; it refuses a non-loopback address
//! unless `sandbox.allow_remote`; it logs one line per step and never a code or token in full.

pub mod assertion;
mod chart;
mod fhir;
mod oauth;
mod pages;
mod store;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::auth::patient::is_fhir_id;
use crate::config::{self, Config, SandboxPatient};
use crate::http::{Method, Request, Response, percent_decode};

/// Workers that answer the sandbox's requests (`server::Site::Sandbox`).
pub const THREADS: usize = 8;

/// A JSON answer.
pub fn json(status: u16, value: &Value) -> Response {
    Response::json(status, "application/json", value)
}

/// A FHIR JSON answer.
pub fn fhir(status: u16, value: &Value) -> Response {
    Response::json(status, "application/fhir+json", value)
}

pub fn text(status: u16, text: &str) -> Response {
    Response::bytes(status, "text/plain; charset=utf-8", format!("{text}\n").into_bytes())
}

/// A page: nothing from elsewhere may load in it, and no other site may frame it.
pub fn html(status: u16, html: String) -> Response {
    Response::bytes(status, "text/html; charset=utf-8", html.into_bytes())
        .with_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
        .with_header("X-Frame-Options", "DENY")
        .with_header("Cache-Control", "no-store")
}

pub fn redirect(location: &str) -> Response {
    Response::new(302).with_header("Location", location).with_header("Cache-Control", "no-store")
}

/// RFC 6749 §5.1: token answers are not cached.
pub fn no_store(resp: Response) -> Response {
    resp.with_header("Cache-Control", "no-store").with_header("Pragma", "no-cache")
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

/// Answers one request; `body` is its body (forms). The server adds the CORS headers.
pub fn handle(sb: &Sandbox, req: &Request, body: &[u8]) -> Response {
    if req.method == Method::Options {
        return Response::new(204);
    }
    let segments: Option<Vec<String>> =
        req.path.strip_prefix('/').and_then(|p| p.split('/').map(|s| percent_decode(s, false)).collect());
    let Some(segments) = segments else {
        return text(400, "malformed path");
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = matches!(req.method, Method::Get | Method::Head);
    let post = req.method == Method::Post;
    let not_allowed = |allow: &str| text(405, "method not allowed").with_header("Allow", allow);
    let unknown = |id: &str| text(404, &format!("the sandbox has no patient {id:?}, so no issuer of that name"));
    match segs.as_slice() {
        [""] if get => html(200, pages::home(sb)),
        [""] => not_allowed("GET, HEAD, OPTIONS"),
        ["auth", "token"] if post => oauth::token(sb, req, body),
        ["auth", "introspect"] if post => oauth::introspect(sb, req, body),
        ["auth", "token" | "introspect"] => not_allowed("POST, OPTIONS"),
        ["auth", "authorize"] => authorize(sb, &Issuer::Picker, req, body),
        ["launch"] if post => oauth::launch(sb, req, body),
        ["launch"] => not_allowed("POST, OPTIONS"),
        [id, ""] if get => match sb.patient(id) {
            Some(p) => html(200, pages::patient(sb, p)),
            None => unknown(id),
        },
        [id, "auth", "authorize"] => match sb.patient(id) {
            Some(p) => authorize(sb, &Issuer::Patient(p), req, body),
            None => unknown(id),
        },
        ["fhir", rest @ ..] => fhir_route(sb, req, &Issuer::Picker, rest),
        [id, "fhir", rest @ ..] => match sb.patient(id) {
            Some(p) => fhir_route(sb, req, &Issuer::Patient(p), rest),
            None => unknown(id),
        },
        _ => text(404, "not a path of the sandbox: see its home page"),
    }
}

fn authorize(sb: &Sandbox, issuer: &Issuer, req: &Request, body: &[u8]) -> Response {
    match req.method {
        // Not HEAD: an authorization request makes a code.
        Method::Get => oauth::authorize(sb, issuer, &req.query),
        Method::Post => {
            let media = req.header("content-type").unwrap_or_default();
            match std::str::from_utf8(body) {
                Ok(form) if media.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") => {
                    oauth::authorize(sb, issuer, form)
                }
                _ => text(400, "a POSTed authorization request is an application/x-www-form-urlencoded form"),
            }
        }
        _ => text(405, "method not allowed").with_header("Allow", "GET, POST, OPTIONS"),
    }
}

fn is_chart_type(kind: &str) -> bool {
    config::CHART_TYPES.iter().any(|(k, _)| *k == kind)
}

fn fhir_route(sb: &Sandbox, req: &Request, issuer: &Issuer, rest: &[&str]) -> Response {
    if !matches!(req.method, Method::Get | Method::Head) {
        return fhir::outcome(405, "not-supported", "the sandbox's FHIR server only reads")
            .with_header("Allow", "GET, HEAD, OPTIONS");
    }
    match rest {
        [".well-known", "smart-configuration"] => json(200, &fhir::smart_configuration(sb, issuer)),
        ["metadata"] => fhir(200, &fhir::capability_statement(sb, issuer, chart::capabilities())),
        ["Patient", id] if is_fhir_id(id) => fhir::read_patient(sb, req, id),
        [kind] if is_chart_type(kind) => chart::search(sb, req, issuer, kind),
        [kind, id] if is_chart_type(kind) && is_fhir_id(id) => chart::read(sb, req, kind, id),
        ["Patient", _] | [_, _] => fhir::outcome(404, "not-found", "not a FHIR id"),
        _ => fhir::outcome(
            404,
            "not-found",
            "the sandbox serves metadata, .well-known/smart-configuration, Patient/{id}, and the chart: \
             AllergyIntolerance, Condition, MedicationRequest, Observation and DiagnosticReport",
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

    /// The sandbox's state and its socket, ready to be served (`server::Site::Sandbox`). `imaging_base` is the
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
        let mut settings = self.settings;
        for app in &mut settings.apps {
            if let Some(rest) = app.launch_url.strip_prefix(config::IMAGING_PLACEHOLDER) {
                app.launch_url = format!("{imaging_base}{rest}");
            }
        }
        let sb = Sandbox::new(base.clone(), settings, imaging);
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

//! The router: one `match` on method and path segments that reads like SPEC §5's table. Protected routes
//! get their `Grant` from `auth::authorize` here, before the handler runs, so no handler can forget it.
//!
//! Invariants: the raw path is split on `/` before each segment is percent-decoded, so an encoded slash
//! never makes a new segment; UIDs are parsed into `Uid` here; errors become responses only here.

use serde_json::json;

use std::collections::BTreeMap;

use crate::auth::authorize;
use crate::auth::ehr::Ehr;
use crate::auth::scope::Need;
use crate::config::{Authorization, Config, Tenant};
use crate::dicom::Uid;
use crate::dicomweb as wado;
use crate::fhir;
use crate::fhir::resource;
use crate::http::{ApiError, Method, Request, Response, percent_decode};
use crate::index::Index;
use crate::token::Sealer;

/// Everything a request may read; built once at start and shared by every worker.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub index: Index,
    pub sealer: Sealer,
    /// The public URL of this server, without a trailing slash.
    pub base_url: String,
    /// The EHR client of each `smart-on-fhir` tenant, by tenant name.
    pub ehrs: BTreeMap<String, Ehr>,
    /// Debug builds only, with `SMART_IMAGING_TEST_HOOKS=1`: routes that let the tests provoke faults.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    pub test_hooks: bool,
    /// The serialized ImagingStudy of each indexed study, made on first use.
    pub studies: resource::Cache,
}

impl App {
    pub fn new(config: Config, index: Index, sealer: Sealer, base_url: String) -> App {
        let ehrs = config
            .tenants
            .values()
            .filter_map(|t| match &t.auth {
                Authorization::SmartOnFhir(cfg) => Some((t.name.clone(), Ehr::new(cfg.clone(), t.id_selector.clone()))),
                Authorization::Mock { .. } => None,
            })
            .collect();
        let test_hooks = cfg!(debug_assertions) && std::env::var("SMART_IMAGING_TEST_HOOKS").as_deref() == Ok("1");
        let studies = resource::Cache::new(index.studies().len());
        App { config, index, sealer, base_url, ehrs, test_hooks, studies }
    }

    pub fn ehr(&self, tenant: &Tenant) -> Result<&Ehr, ApiError> {
        self.ehrs
            .get(&tenant.name)
            .ok_or_else(|| ApiError::Internal(format!("no EHR client for tenant {}", tenant.name)))
    }

    pub fn fhir_base(&self, tenant: &Tenant) -> String {
        format!("{}/{}/fhir", self.base_url, tenant.name)
    }
}

/// Which family of paths a request is on: it decides the error body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Fhir,
    Other,
}

pub fn handle(app: &App, req: &Request) -> Response {
    let segments: Option<Vec<String>> = req
        .path
        .strip_prefix('/')
        .map(|p| p.split('/'))
        .map(|parts| parts.map(|s| percent_decode(s, false)).collect::<Option<Vec<String>>>())
        .flatten();
    let Some(segments) = segments else {
        return error_response(app, Area::Other, &ApiError::BadRequest("malformed path".into()));
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let area = if segs.get(1) == Some(&"fhir") { Area::Fhir } else { Area::Other };
    match route(app, req, &segs) {
        Ok(resp) => resp,
        Err(e) => error_response(app, area, &e),
    }
}

fn route(app: &App, req: &Request, segs: &[&str]) -> Result<Response, ApiError> {
    match req.method {
        Method::Options => return Ok(Response::new(204)),
        Method::Other => return Err(ApiError::MethodNotAllowed),
        Method::Get | Method::Head => {}
    }
    let tenant = |name: &str| {
        app.config.tenants.get(name).ok_or_else(|| ApiError::NotFound(format!("no tenant named {name:?}")))
    };
    match segs {
        [""] => Ok(home(app)),
        ["healthz"] => Ok(Response::bytes(200, "text/plain; charset=utf-8", b"ok".to_vec())),
        // A handler that panics, so the tests can show a panic becomes a 500 and the server goes on.
        #[cfg(debug_assertions)]
        ["_test", "panic"] if app.test_hooks => panic!("panic requested through the test hook"),
        [t, "fhir", "metadata"] => Ok(fhir::capability_statement(app, tenant(t)?)),
        [t, "fhir", ".well-known", "smart-configuration"] => fhir::smart_configuration(app, tenant(t)?),
        [t, "fhir", "ImagingStudy"] => {
            let tenant = tenant(t)?;
            let grant = authorize(app, tenant, req, Need::Search)?;
            fhir::search(app, tenant, &grant, req)
        }
        [t, "fhir", "ImagingStudy", id] => {
            let tenant = tenant(t)?;
            let grant = authorize(app, tenant, req, Need::Read)?;
            fhir::read(app, tenant, &grant, id)
        }
        [t, "wado", study_token, "studies", st, rest @ ..] => {
            let tenant = tenant(t)?;
            let target = wado_target(rest)?;
            let study_uid = uid(st)?;
            let grant = authorize(app, tenant, req, Need::Read)?;
            let study = wado::check_capability(app, tenant, &grant, study_token, study_uid)?;
            let base = format!("{}/{}/wado/{study_token}", app.base_url, tenant.name);
            wado::serve(&wado::Scope { app, req, base, study }, target)
        }
        _ => Err(ApiError::NotFound("no such resource".into())),
    }
}

/// The DICOMweb resources under `…/studies/{st}` (SPEC §5).
fn wado_target<'a>(rest: &'a [&'a str]) -> Result<wado::Target<'a>, ApiError> {
    use wado::Target::*;
    Ok(match rest {
        [] => Study,
        ["metadata"] => StudyMetadata,
        ["series"] => SeriesSearch,
        ["series", se] => Series(uid(se)?),
        ["series", se, "metadata"] => SeriesMetadata(uid(se)?),
        ["series", se, "instances"] => InstanceSearch(uid(se)?),
        ["series", se, "instances", sop] => Instance(uid(se)?, uid(sop)?),
        ["series", se, "instances", sop, "metadata"] => InstanceMetadata(uid(se)?, uid(sop)?),
        ["series", se, "instances", sop, "frames", list] => Frames(uid(se)?, uid(sop)?, list),
        ["series", se, "instances", sop, "bulk", path @ ..] if !path.is_empty() => Bulk(uid(se)?, uid(sop)?, path),
        _ => return Err(ApiError::NotFound("no such DICOMweb resource".into())),
    })
}

fn uid(s: &str) -> Result<Uid<'_>, ApiError> {
    Uid::parse(s).ok_or_else(|| ApiError::BadRequest(format!("{s:?} is not a DICOM UID")))
}

/// Renders an error: FHIR paths as an OperationOutcome, others as short text. Server faults are logged
/// here with their detail, and answered without it.
fn error_response(app: &App, area: Area, e: &ApiError) -> Response {
    if let ApiError::Internal(detail) | ApiError::Unavailable(detail) = e {
        log::error!("{}: {detail}", e.status());
    }
    match area {
        Area::Fhir => {
            let severity = if e.status() >= 500 { "fatal" } else { "error" };
            let outcome = json!({
                "resourceType": "OperationOutcome",
                "issue": [{"severity": severity, "code": e.issue_code(), "diagnostics": e.public_message()}]
            });
            let mut resp = Response::json(e.status(), fhir::FHIR_JSON, &outcome);
            resp.headers.extend(e.headers(&app.base_url));
            resp
        }
        Area::Other => e.text_response(&app.base_url),
    }
}

/// `GET /`: a small page naming the tenants and example links.
fn home(app: &App) -> Response {
    let mut html = String::from(
        "<!doctype html><meta charset=utf-8><title>smart-imaging</title>\n<h1>smart-imaging</h1>\n\
         <p>SMART Imaging Access: FHIR ImagingStudy search and DICOMweb WADO-RS retrieval.</p>\n<ul>\n",
    );
    for tenant in app.config.tenants.values() {
        let base = app.fhir_base(tenant);
        let search = match tenant.auth {
            Authorization::Mock { patient: Some(ref p) } => {
                format!("{base}/ImagingStudy?patient={}", p.id)
            }
            _ => format!("{base}/ImagingStudy"),
        };
        html.push_str(&format!(
            "<li><b>{name}</b>: <a href=\"{base}/metadata\">metadata</a> · \
             <a href=\"{base}/.well-known/smart-configuration\">smart-configuration</a> · \
             <a href=\"{search}\">ImagingStudy search</a></li>\n",
            name = escape_html(&tenant.name),
            base = escape_html(&base),
            search = escape_html(&search),
        ));
    }
    html.push_str(&format!(
        "</ul>\n<p>{} studies, {} instances indexed.</p>\n",
        app.index.studies().len(),
        app.index.instance_count()
    ));
    Response::bytes(200, "text/html; charset=utf-8", html.into_bytes())
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

//! The route table: one `match` on method and path segments that reads like the README's API table.
//! Protected routes get their `Grant` from `auth::authorize` here, before the handler runs, so no handler
//! can forget it; nothing else happens here.
//!
//! Invariants: the raw path is split on `/` before each segment is percent-decoded, so an encoded slash
//! never makes a new segment; UIDs are parsed into `Uid` here; errors become responses only here.

use crate::app::{App, Tenant};
use crate::auth::scope::Need;
use crate::auth::{Access, authorize};
use crate::dicom::Uid;
use crate::dicomweb::{self as wado, Scope, Target};
use crate::fhir::{self, outcome};
use crate::home;
use crate::http::{ApiError, Method, Request, Response, percent_decode};

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
    let tenant = |name: &str| -> Result<&Tenant, ApiError> {
        app.tenants.get(name).ok_or_else(|| ApiError::NotFound(format!("no tenant named {name:?}")))
    };
    match segs {
        [""] => Ok(home::page(app)),
        ["healthz"] => Ok(Response::bytes(200, "text/plain; charset=utf-8", b"ok".to_vec())),
        // A handler that panics, so the tests can show a panic becomes a 500 and the server goes on.
        #[cfg(debug_assertions)]
        ["_test", "panic"] if app.test_hooks => panic!("panic requested through the test hook"),
        [t, "fhir", "metadata"] => {
            let tenant = tenant(t)?;
            Ok(fhir::capability_statement(&app.fhir_base(&tenant.config), t, app.index.written()))
        }
        [t, "fhir", ".well-known", "smart-configuration"] => match &tenant(t)?.access {
            Access::Mock { .. } => Ok(fhir::smart_configuration(None)),
            Access::Ehr(ehr) => Ok(fhir::smart_configuration(Some(&ehr.discover()?))),
        },
        [t, "fhir", "ImagingStudy"] => {
            let tenant = tenant(t)?;
            let grant = authorize(&tenant.access, req, Need::Search)?;
            fhir::search::search(&app.render(tenant), &grant, req)
        }
        [t, "fhir", "ImagingStudy", id] => {
            let tenant = tenant(t)?;
            let grant = authorize(&tenant.access, req, Need::Read)?;
            fhir::search::read(&app.render(tenant), &grant, id)
        }
        [t, "wado", study_token, "studies", st, rest @ ..] => {
            let tenant = tenant(t)?;
            let target = wado_target(rest)?;
            let study_uid = uid(st)?;
            let grant = authorize(&tenant.access, req, Need::Read)?;
            let study =
                wado::check_capability(&app.sealer, &app.index, &tenant.config, &grant, study_token, study_uid)?;
            let base = format!("{}/{t}/wado/{study_token}", app.base_url);
            wado::serve(&Scope { index: &app.index, req, base, study }, target)
        }
        _ => Err(ApiError::NotFound("no such resource".into())),
    }
}

/// The DICOMweb resources under `…/studies/{st}`.
fn wado_target<'a>(rest: &'a [&'a str]) -> Result<Target<'a>, ApiError> {
    use Target::*;
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
        Area::Fhir => outcome::response(e, &app.base_url),
        Area::Other => e.text_response(&app.base_url),
    }
}

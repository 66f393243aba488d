//! The route table: one `match` on method and path segments that reads like the API table of docs/api.md.
//! Protected routes get their `Grant` from `auth::authorize` here, before the handler runs, so no handler
//! can forget it; nothing else happens here.
//!
//! Invariants: the raw path is split on `/` before each segment is percent-decoded, so an encoded slash
//! never makes a new segment; UIDs are parsed into `Uid` here; errors become responses only here; a request
//! works on one configuration and index from start to end (a `Snapshot`, taken once by the caller); every
//! request on a patient-data route (search, read, DICOMweb) leaves the facts of its audit line, whether it
//! was served or refused, and those facts never hold a token or a study token.

use crate::app::{App, Snapshot, Tenant};
use crate::audit;
use crate::auth::scope::Need;
use crate::auth::{Access, authorize};
use crate::dicom::Uid;
use crate::dicomweb::context::Rendition;
use crate::dicomweb::{self as wado, Context, Target};
use crate::fhir::{self, outcome};
use crate::home;
use crate::http::{ApiError, Method, Request, Response, percent_decode};
use crate::viewer;

/// Which family of paths a request is on: it decides the error body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Fhir,
    Other,
}

/// What the server records of a request besides its response: its route class (metrics) and, on a
/// patient-data route, the facts of its audit line.
#[derive(Debug, Default)]
pub struct Facts {
    pub route: &'static str,
    pub audit: Option<audit::Access>,
}

impl Facts {
    /// A patient-data route of tenant `t`. Only a configured tenant's name and a well-formed UID are kept:
    /// any other text of the path could be a token.
    fn patient_data(&mut self, snapshot: &Snapshot, route: &'static str, t: &str, study: Option<&str>) {
        self.route = route;
        let tenant = snapshot.tenants.contains_key(t).then(|| t.to_string());
        let study = study.filter(|s| Uid::parse(s).is_some()).map(str::to_string);
        self.audit = Some(audit::Access { tenant, study, ..audit::Access::default() });
    }

    /// The access token proved: who it speaks for.
    fn granted(&mut self, grant: &crate::auth::Grant) {
        if let Some(access) = &mut self.audit {
            access.client_id = grant.client_id().map(str::to_string);
            access.subject = grant.subject().map(str::to_string);
            access.patient = grant.patient().map(|p| p.id.clone());
            access.system = grant.is_system();
        }
    }
}

/// The response alone (the route table's unit tests).
#[cfg(test)]
pub fn handle(app: &App, req: &Request) -> Response {
    handle_noted(app, &app.current(), req).0
}

/// `handle`, with the facts the server records: `req` answered from `snapshot`, the configuration and index
/// the request took at its start.
pub fn handle_noted(app: &App, snapshot: &Snapshot, req: &Request) -> (Response, Facts) {
    let mut facts = Facts { route: "other", audit: None };
    let resp = answer(app, snapshot, req, &mut facts);
    (resp, facts)
}

fn answer(app: &App, snapshot: &Snapshot, req: &Request, facts: &mut Facts) -> Response {
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
    match route(app, snapshot, req, &segs, facts) {
        Ok(resp) => resp,
        Err(e) => error_response(app, area, &e),
    }
}

fn route(
    app: &App,
    snapshot: &Snapshot,
    req: &Request,
    segs: &[&str],
    facts: &mut Facts,
) -> Result<Response, ApiError> {
    match req.method {
        Method::Options => {
            facts.route = "options";
            return Ok(Response::new(204));
        }
        Method::Other | Method::Post => return Err(ApiError::MethodNotAllowed),
        Method::Get | Method::Head => {}
    }
    let tenant = |name: &str| -> Result<&Tenant, ApiError> {
        snapshot.tenant(name).ok_or_else(|| ApiError::NotFound(format!("no tenant named {name:?}")))
    };
    match segs {
        [""] => {
            facts.route = "home";
            Ok(home::page(app, snapshot))
        }
        // `/readme` was the README's address before the pages of `docs/` were served beside it.
        ["docs"] | ["readme"] => {
            facts.route = "home";
            Ok(Response::new(301).with_header("Location", "/docs/"))
        }
        ["docs", name] => {
            facts.route = "home";
            home::docs(name).ok_or_else(|| ApiError::NotFound("no such page".into()))
        }
        ["viewer"] => {
            facts.route = "viewer";
            Ok(Response::new(301).with_header("Location", "/viewer/"))
        }
        ["viewer", "config.json"] => {
            facts.route = "viewer";
            Ok(viewer::config(app, snapshot))
        }
        ["viewer", "ohif.json"] => {
            facts.route = "viewer";
            viewer::ohif_source(app, snapshot, req)
        }
        ["viewer", file] => {
            facts.route = "viewer";
            viewer::asset(file).ok_or_else(|| ApiError::NotFound("no such viewer file".into()))
        }
        ["healthz"] => {
            facts.route = "health";
            Ok(Response::bytes(200, "text/plain; charset=utf-8", b"ok".to_vec()))
        }
        ["metrics"] if snapshot.config.metrics => {
            facts.route = "metrics";
            let gauges = crate::metrics::IndexGauges {
                studies: snapshot.index.studies().len(),
                instances: snapshot.index.instance_count(),
                loaded: snapshot.loaded,
                written: snapshot.index.written_secs(),
            };
            let text = crate::metrics::render(gauges, app.inflate_budget.gauges());
            Ok(Response::bytes(200, "text/plain; version=0.0.4; charset=utf-8", text.into_bytes()))
        }
        // A handler that panics, so the tests can show a panic becomes a 500 and the server goes on.
        #[cfg(debug_assertions)]
        ["_test", "panic"] if app.test_hooks => panic!("panic requested through the test hook"),
        [t, "fhir", "metadata"] => {
            facts.route = "fhir-discovery";
            let tenant = tenant(t)?;
            Ok(fhir::capability_statement(&app.fhir_base(&tenant.config), &tenant.config, snapshot.index.written()))
        }
        [t, "fhir", ".well-known", "smart-configuration"] => {
            facts.route = "fhir-discovery";
            let tenant = tenant(t)?;
            let imaging = tenant.config.imaging_capabilities();
            match &tenant.access {
                Access::Mock { .. } => fhir::smart_configuration(imaging, None),
                Access::Ehr(ehr) => fhir::smart_configuration(imaging, Some(&ehr.discover_public()?)),
            }
        }
        [t, "fhir", "ImagingStudy"] => {
            facts.patient_data(snapshot, "fhir-search", t, None);
            let tenant = tenant(t)?;
            let grant = authorize(&tenant.access, tenant.config.visibility, req, Need::Search)?;
            facts.granted(&grant);
            let render = app.render(snapshot, tenant);
            let grant = grant.for_named_patient(&tenant.access, || fhir::search::named_patient(&render, req))?;
            facts.granted(&grant);
            fhir::search::search(&render, &grant, req)
        }
        [t, "fhir", "ImagingStudy", id] => {
            facts.patient_data(snapshot, "fhir-read", t, Some(id));
            let tenant = tenant(t)?;
            let grant = authorize(&tenant.access, tenant.config.visibility, req, Need::Read)?;
            facts.granted(&grant);
            fhir::search::read(&app.render(snapshot, tenant), &grant, id)
        }
        // The study search at the Endpoint address: the study is the one its token seals.
        [t, "wado", study_token, "studies"] => {
            facts.patient_data(snapshot, "wado", t, None);
            dicomweb(app, snapshot, req, facts, (tenant(t)?, study_token), None, Target::StudySearch)
        }
        [t, "wado", study_token, "studies", st, rest @ ..] => {
            facts.patient_data(snapshot, "wado", t, Some(st));
            let tenant = tenant(t)?;
            let target = wado_target(rest)?;
            dicomweb(app, snapshot, req, facts, (tenant, study_token), Some(uid(st)?), target)
        }
        _ => Err(ApiError::NotFound("no such resource".into())),
    }
}

/// A DICOMweb request under a study token: the grant, then the study token (naming the study of the path,
/// if any), then the resource, looked up inside the study the token opened.
fn dicomweb(
    app: &App,
    snapshot: &Snapshot,
    req: &Request,
    facts: &mut Facts,
    (tenant, study_token): (&Tenant, &str),
    named: Option<Uid>,
    target: Target,
) -> Result<Response, ApiError> {
    let grant = authorize(&tenant.access, tenant.config.visibility, req, Need::Read)?;
    facts.granted(&grant);
    let (study, grant) = wado::check_capability(
        &snapshot.sealer,
        &snapshot.index,
        (&tenant.config, &tenant.access),
        grant,
        study_token,
        named,
    )?;
    facts.granted(&grant);
    if let Some(access) = &mut facts.audit {
        access.study = Some(study.uid().to_string());
    }
    let cx = Context {
        index: &snapshot.index,
        lengths: &snapshot.lengths,
        verdicts: &snapshot.verdicts,
        inflate_budget: &app.inflate_budget,
        req,
        base: format!("{}/{}/wado/{study_token}", app.base_url, tenant.config.name),
        study,
    };
    wado::serve(&cx, target)
}

/// The DICOMweb resources under `…/studies/{st}`.
fn wado_target<'a>(rest: &'a [&'a str]) -> Result<Target<'a>, ApiError> {
    use Target::*;
    Ok(match rest {
        [] => Study,
        ["metadata"] => StudyMetadata,
        ["instances"] => StudyInstanceSearch,
        ["series"] => SeriesSearch,
        ["series", se] => Series(uid(se)?),
        ["series", se, "metadata"] => SeriesMetadata(uid(se)?),
        ["series", se, "instances"] => InstanceSearch(uid(se)?),
        ["series", se, "instances", sop] => Instance(uid(se)?, uid(sop)?),
        ["series", se, "instances", sop, "metadata"] => InstanceMetadata(uid(se)?, uid(sop)?),
        ["series", se, "instances", sop, "frames", list] => Frames(uid(se)?, uid(sop)?, list),
        ["series", se, "instances", sop, "rendered"] => Rendered(uid(se)?, uid(sop)?, None, Rendition::Rendered),
        ["series", se, "instances", sop, "thumbnail"] => Rendered(uid(se)?, uid(sop)?, None, Rendition::Thumbnail),
        ["series", se, "instances", sop, "frames", n, "rendered"] => {
            Rendered(uid(se)?, uid(sop)?, Some(n), Rendition::Rendered)
        }
        ["series", se, "instances", sop, "frames", n, "thumbnail"] => {
            Rendered(uid(se)?, uid(sop)?, Some(n), Rendition::Thumbnail)
        }
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

/// The route table in process: an `App` built from the repository's configuration and sample index (plus a
/// `smart-on-fhir` tenant whose EHR is not listening), each route called with plain request values.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::index::Index;
    use crate::token::Sealer;
    use std::path::PathBuf;

    /// A `smart-on-fhir` tenant whose EHR is a closed loopback port: any call to it fails at once.
    const UNREACHABLE_EHR: &str = r#"
[tenants.ehr]
authorization.type = "smart-on-fhir"
authorization.fhirBaseUrl = "http://127.0.0.1:1/fhir"
authorization.client = { id = "imaging", secret = "s" }
authorization.timeoutSeconds = 2
images.lookup = "studies-by-context"
"#;

    fn app() -> App {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let path = repo.join("smart-imaging.toml");
        let text = std::fs::read_to_string(&path).unwrap() + UNREACHABLE_EHR;
        let config = Config::parse(&text, &path).unwrap();
        let index = Index::load(&config.index_path).unwrap();
        let sealer = std::sync::Arc::new(Sealer::from_secret(b"route table tests"));
        App::new(Snapshot::new(config, index, sealer, None, None), "http://h".into())
    }

    fn request(method: Method, target: &str, headers: &[(&str, &str)]) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect();
        Request { method, path: path.into(), query: query.into(), headers }
    }

    fn get(app: &App, target: &str) -> Response {
        handle(app, &request(Method::Get, target, &[]))
    }

    fn body(resp: Response) -> Vec<u8> {
        resp.body.read_all().unwrap()
    }

    /// Each request answers the status given.
    fn check(app: &App, cases: &[(Method, &str, &[(&str, &str)], u16)]) {
        for (method, target, headers, status) in cases {
            let resp = handle(app, &request(*method, target, headers));
            assert_eq!(resp.status, *status, "{method:?} {target} {headers:?}");
        }
    }

    /// The first study of patient p1 on the demo tenant, and its Endpoint address.
    fn first_study(app: &App) -> (String, String) {
        let bundle: serde_json::Value =
            serde_json::from_slice(&body(get(app, "/demo/fhir/ImagingStudy?patient=p1"))).expect("a Bundle");
        let study = &bundle["entry"][0]["resource"];
        // The study's Endpoint is the entry whose fullUrl its reference names.
        let reference = &study["endpoint"][0]["reference"];
        let endpoint = bundle["entry"].as_array().unwrap().iter().find(|e| e["fullUrl"] == *reference).unwrap();
        let address = endpoint["resource"]["address"].as_str().unwrap().trim_start_matches("http://h").to_string();
        (study["id"].as_str().unwrap().to_string(), address)
    }

    use Method::{Get, Head, Options, Other};

    #[test]
    fn patient_data_routes_leave_audit_facts_with_no_text_of_the_path_but_tenant_and_uid() {
        let app = app();
        let (uid, address) = first_study(&app);
        let (resp, facts) = handle_noted(&app, &app.current(), &request(Get, &format!("{address}/studies/{uid}"), &[]));
        assert_eq!((resp.status, facts.route), (200, "wado"));
        let access = facts.audit.expect("a WADO request is audited");
        assert_eq!(access.tenant.as_deref(), Some("demo"));
        assert_eq!(access.patient.as_deref(), Some("p1"));
        assert_eq!(access.study.as_deref(), Some(uid.as_str()));
        assert_eq!((access.client_id, access.subject), (None, None), "a mock tenant has no client");

        let refused =
            handle_noted(&app, &app.current(), &request(Get, &format!("/demo/wado/not-a-token/studies/{uid}"), &[]));
        assert_eq!((refused.0.status, refused.1.route), (403, "wado"));
        assert_eq!(refused.1.audit.and_then(|a| a.study), Some(uid.clone()), "refused, and audited");

        let token_like = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln";
        let (_, facts) = handle_noted(
            &app,
            &app.current(),
            &request(Get, &format!("/{token_like}/fhir/ImagingStudy/{token_like}"), &[]),
        );
        let access = facts.audit.expect("audited though refused");
        assert_eq!((access.tenant, access.study), (None, None), "no text of the path but a tenant and a UID");

        let (_, facts) = handle_noted(&app, &app.current(), &request(Get, "/healthz", &[]));
        assert!(facts.audit.is_none() && facts.route == "health", "not patient data");
    }

    #[test]
    fn pages_discovery_and_methods() {
        let app = app();
        check(
            &app,
            &[
                (Get, "/", &[], 200),
                (Get, "/docs/", &[], 200),
                (Get, "/docs/ARCHITECTURE.md", &[], 200),
                (Head, "/docs/ARCHITECTURE", &[], 200),
                (Get, "/docs/nothing.md", &[], 404),
                (Get, "/docs", &[], 301),
                (Get, "/readme", &[], 301),
                (Get, "/healthz", &[], 200),
                (Head, "/healthz", &[], 200),
                (Options, "/demo/fhir/ImagingStudy", &[], 204),
                (Options, "/anything/at/all", &[], 204),
                (Other, "/demo/fhir/metadata", &[], 405),
                (Get, "/nobody/fhir/metadata", &[], 404),
                (Get, "/demo/nothing", &[], 404),
                (Get, "/demo/fhir/metadata", &[], 200),
                (Get, "/demo/fhir/.well-known/smart-configuration", &[], 200),
                (Get, "/demo/fhir/bad%zz", &[], 400),
            ],
        );
        let page = String::from_utf8(body(get(&app, "/"))).unwrap();
        assert!(page.contains("demo") && page.contains("open"), "{page}");
        let moved = get(&app, "/readme");
        assert!(moved.headers.contains(&("Location".to_string(), "/docs/".to_string())), "{:?}", moved.headers);
        let outcome = get(&app, "/nobody/fhir/metadata");
        assert_eq!(outcome.headers[0], ("Content-Type".to_string(), "application/fhir+json".to_string()));
    }

    #[test]
    fn fhir_search_and_read() {
        let app = app();
        let (uid, _) = first_study(&app);
        let read = format!("/demo/fhir/ImagingStudy/{uid}");
        check(
            &app,
            &[
                (Get, "/demo/fhir/ImagingStudy?patient=p1", &[], 200),
                (Get, "/demo/fhir/ImagingStudy?patient=Patient/p1", &[], 200),
                (Get, "/demo/fhir/ImagingStudy?patient=p2", &[], 403),
                (Get, "/demo/fhir/ImagingStudy", &[], 403),
                (Get, "/demo/fhir/ImagingStudy?patient=p1", &[("Authorization", "Basic x")], 401),
                (Get, "/demo/fhir/ImagingStudy?patient=p1&_count=x", &[], 400),
                (Get, "/open/fhir/ImagingStudy", &[], 200),
                (Get, &read, &[], 200),
                (Get, "/demo/fhir/ImagingStudy/1.2.3", &[], 404),
                (Get, "/demo/fhir/ImagingStudy/not-a-uid", &[], 404),
            ],
        );
    }

    #[test]
    fn dicomweb_under_a_study_token() {
        let app = app();
        let (uid, address) = first_study(&app);
        let study = format!("{address}/studies/{uid}");
        let tampered = format!("{address}x/studies/{uid}");
        let elsewhere = format!("{address}/studies/1.2.3");
        let series = format!("{study}/series");
        let metadata = format!("{study}/metadata");
        let unknown_series = format!("{study}/series/1.2.3");
        let bad_uid = format!("{study}/series/01.2");
        let nothing = format!("{study}/nothing");
        let dicom: &[(&str, &str)] = &[("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=*")];
        check(
            &app,
            &[
                (Get, &study, dicom, 200),
                (Head, &study, dicom, 200),
                (Get, &study, &[("Accept", "text/html")], 406),
                (Get, &study, &[("Accept", "application/dicom; transfer-syntax=x")], 400),
                (Get, &metadata, &[], 200),
                (Get, &series, &[], 200),
                (Get, &tampered, dicom, 403),
                (Get, &elsewhere, dicom, 403),
                (Get, &unknown_series, dicom, 404),
                (Get, &bad_uid, dicom, 400),
                (Get, &nothing, &[], 404),
            ],
        );
        let other_tenant = study.replacen("/demo/", "/open/", 1);
        check(&app, &[(Get, &other_tenant, dicom, 403)]);
    }

    #[test]
    fn smart_on_fhir_without_its_ehr() {
        let app = app();
        check(
            &app,
            &[
                (Get, "/ehr/fhir/metadata", &[], 200),
                (Get, "/ehr/fhir/ImagingStudy?patient=1", &[], 401),
                (Get, "/ehr/fhir/ImagingStudy?patient=1", &[("Authorization", "Bearer t")], 503),
                (Get, "/ehr/fhir/.well-known/smart-configuration", &[], 503),
            ],
        );
        let refused = get(&app, "/ehr/fhir/ImagingStudy?patient=1");
        assert!(refused.headers.iter().any(|(n, v)| n == "WWW-Authenticate" && v.starts_with("Bearer realm=")));
    }
}

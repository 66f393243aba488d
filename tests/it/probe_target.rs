//! A small SMART Imaging Access server written for the probe's tests: a real HTTP server on port 0 in the
//! test process that keeps every rule the probe checks, serving one sample study of the repository's
//! data, until it is told to break one (`Fault`). Its Endpoint comes in the form asked (`Form`): contained,
//! a response-local `urn:uuid` entry, or an entry only `_include` adds.

use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{Value, json};

use crate::harness::*;

pub const PATIENT: &str = "pat-1";
pub const TOKEN: &str = "token-of-pat-1";
pub const OTHER_TOKEN: &str = "token-of-pat-2";
/// Another token of patient 1, whose search would give addresses of its own: the addresses given to `TOKEN`
/// refuse it.
pub const SAME_PATIENT_TOKEN: &str = "another-token-of-pat-1";
const CAPABILITY: &str = "cap-0123456789abcdef0123456789abcdef";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const APP_LAUNCH: &str = "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch";

/// How the search answers give each study's Endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Contained,
    ResponseLocal,
    Included,
}

/// The one rule the server breaks, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Discovery answers 404.
    NoDiscovery,
    /// Discovery names no token endpoint.
    NoTokenEndpoint,
    /// Discovery lists the backend-services mode and `client_credentials`, but no asymmetric client
    /// authentication.
    BackendServicesWithoutPrivateKeyJwt,
    /// Discovery lists `plain` beside `S256`.
    PlainPkce,
    /// Discovery answers `application/fhir+json` when that is what is accepted.
    DiscoveryFollowsAccept,
    /// Discovery's token endpoint is a relative URL.
    RelativeTokenEndpoint,
    /// Discovery lists no `smart-imaging-access`.
    NoImagingCapability,
    /// Discovery lists no mode capability.
    NoModeCapability,
    /// Discovery lists `client_credentials` without the backend-services capability.
    ClientCredentialsWithoutBackendServices,
    /// The preflight allows no `Authorization` header.
    PreflightWithoutAuthorization,
    /// `metadata` wants a token.
    MetadataNeedsToken,
    /// A 401 without `WWW-Authenticate`.
    NoWwwAuthenticate,
    /// An unknown token's 401 does not say `invalid_token`.
    InvalidTokenNotNamed,
    /// The searchset has no `total`.
    NoTotal,
    /// The study has no subject.
    NoSubject,
    /// The Endpoint's address is relative.
    RelativeAddress,
    /// A `urn:uuid` Endpoint reference without its entry on the page.
    ResponseLocalEntryMissing,
    /// `_include` is refused with 400.
    IncludeRefused,
    /// `identifier` is ignored.
    IdentifierIgnored,
    /// Another patient gets an empty Bundle instead of 403.
    EmptyBundleForAnotherPatient,
    /// WADO answers without a token.
    WadoWithoutToken,
    /// The study comes as one `application/dicom` body, not multipart.
    NotMultipart,
    /// A part that is not DICOM.
    PartNotDicom,
    /// The parts are of another study.
    OtherStudysInstances,
    /// Explicit VR Little Endian asked, an Implicit VR Little Endian instance served.
    ExplicitIgnored,
    /// An unknown transfer syntax is served as stored.
    UnsupportedSyntaxServed,
    /// Metadata comes as `application/json`.
    MetadataAsJson,
    /// Any capability in the address works.
    AnyCapability,
    /// Another patient's token retrieves.
    OtherPatientTokenServed,
    /// The address serves any token of its patient, not only the one it was given to.
    CapabilityNotBoundToToken,
    /// Another study's UID under the address answers the study.
    OtherStudyServed,
}

pub struct Target {
    pub base: String,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the server serves: the first series of a sample study stored as Explicit VR Little Endian, and an
/// instance of another study, also Explicit VR Little Endian (for `Fault::OtherStudysInstances`).
struct Data {
    uid: String,
    files: Vec<Vec<u8>>,
    other_study_file: Vec<u8>,
    implicit_file: Vec<u8>,
}

impl Data {
    fn sample() -> Data {
        let index = IndexFile::sample();
        let explicit = |s: &&IndexStudy| s.instances().iter().all(|i| i.transfer_syntax == EXPLICIT_VR_LE);
        let study = index.studies.iter().find(explicit).expect("a sample study stored as Explicit VR LE");
        let files = study.series[0].instances.iter().map(IndexInstance::file_bytes).collect();
        let other = index
            .studies
            .iter()
            .filter(|s| s.uid != study.uid)
            .flat_map(|s| s.instances())
            .find(|i| i.transfer_syntax == EXPLICIT_VR_LE)
            .expect("an instance of another sample study stored as Explicit VR LE");
        let implicit = index
            .studies
            .iter()
            .flat_map(|s| s.instances())
            .find(|i| i.transfer_syntax == "1.2.840.10008.1.2")
            .expect("a sample instance stored as Implicit VR LE");
        Data {
            uid: study.uid.clone(),
            files,
            other_study_file: other.file_bytes(),
            implicit_file: implicit.file_bytes(),
        }
    }
}

impl Target {
    pub fn start(form: Form, fault: Fault) -> Target {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("the probe's target cannot bind"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let root = format!("http://{addr}");
        let data = Data::sample();
        let s = Arc::clone(&server);
        let r = root.clone();
        let thread = std::thread::spawn(move || {
            for request in s.incoming_requests() {
                answer(request, &r, form, fault, &data);
            }
        });
        Target { base: format!("{root}/fhir"), server, thread: Some(thread) }
    }
}

/// An answer before it is sent.
struct Out {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Out {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Out {
        Out { status, headers: vec![("Content-Type".into(), content_type.into())], body: body.into() }
    }

    fn json(status: u16, content_type: &str, value: &Value) -> Out {
        Out::new(status, content_type, value.to_string())
    }

    fn with(mut self, name: &str, value: &str) -> Out {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn answer(request: tiny_http::Request, root: &str, form: Form, fault: Fault, data: &Data) {
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let params: Vec<(String, String)> =
        query.split('&').filter_map(|p| p.split_once('=')).map(|(n, v)| (n.to_string(), decode(v))).collect();
    let header = |name: &'static str| {
        request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string())
    };
    let token = header("Authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string));
    let accept = header("Accept").unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let out = if request.method() == &tiny_http::Method::Options {
        let allowed = if fault == Fault::PreflightWithoutAuthorization { "Accept" } else { "Authorization, Accept" };
        Out::new(204, "text/plain", "").with("Access-Control-Allow-Headers", allowed)
    } else {
        match segments.as_slice() {
            ["fhir", ".well-known", "smart-configuration"] if fault == Fault::NoDiscovery => {
                Out::new(404, "text/plain", "not found")
            }
            ["fhir", ".well-known", "smart-configuration"] => discovery(root, fault, &accept),
            ["fhir", "metadata"] if fault == Fault::MetadataNeedsToken && token.is_none() => unauthorized(fault),
            ["fhir", "metadata"] => metadata(),
            ["fhir", "ImagingStudy"] => search(root, form, fault, token.as_deref(), &params, data),
            ["wado", capability, "studies", uid, rest @ ..] => {
                wado(fault, token.as_deref(), capability, uid, rest, &accept, data)
            }
            _ => Out::new(404, "text/plain", "not found"),
        }
    };
    let mut response = tiny_http::Response::from_data(out.body).with_status_code(out.status);
    let cors = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "WWW-Authenticate")];
    for (name, value) in out.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(cors) {
        response.add_header(tiny_http::Header::from_bytes(name, value).unwrap());
    }
    let _ = request.respond(response);
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn discovery(root: &str, fault: Fault, accept: &str) -> Out {
    let mut capabilities = vec!["smart-imaging-access", APP_LAUNCH, "launch-standalone", "client-public"];
    capabilities.retain(|c| match fault {
        Fault::NoImagingCapability => *c != "smart-imaging-access",
        Fault::NoModeCapability => *c != APP_LAUNCH,
        _ => true,
    });
    let mut grants = vec!["authorization_code"];
    if fault == Fault::ClientCredentialsWithoutBackendServices {
        grants.push("client_credentials");
    }
    if fault == Fault::BackendServicesWithoutPrivateKeyJwt {
        capabilities.push("http://fhir.org/argonaut/smart-imaging/capabilities/backend-services");
        grants.push("client_credentials");
    }
    let pkce = if fault == Fault::PlainPkce { vec!["S256", "plain"] } else { vec!["S256"] };
    let token_endpoint =
        if fault == Fault::RelativeTokenEndpoint { "/auth/token".to_string() } else { format!("{root}/auth/token") };
    let mut doc = json!({
        "authorization_endpoint": format!("{root}/auth/authorize"),
        "token_endpoint": token_endpoint,
        "grant_types_supported": grants,
        "code_challenge_methods_supported": pkce,
        "capabilities": capabilities,
    });
    if fault == Fault::NoTokenEndpoint {
        doc.as_object_mut().unwrap().remove("token_endpoint");
    }
    let content_type = if fault == Fault::DiscoveryFollowsAccept && accept.contains("fhir+json") {
        "application/fhir+json"
    } else {
        "application/json"
    };
    Out::json(200, content_type, &doc)
}

fn metadata() -> Out {
    let doc = json!({
        "resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": [{"type": "ImagingStudy",
            "interaction": [{"code": "search-type"}], "searchInclude": ["ImagingStudy:endpoint"]}]}],
    });
    Out::json(200, "application/fhir+json", &doc)
}

fn unauthorized(fault: Fault) -> Out {
    let out = Out::json(401, "application/fhir+json", &json!({"resourceType": "OperationOutcome"}));
    if fault == Fault::NoWwwAuthenticate { out } else { out.with("WWW-Authenticate", "Bearer realm=\"target\"") }
}

/// The patient a token speaks for; `Err` is the answer to a missing or unknown token.
fn patient_of(token: Option<&str>, fault: Fault) -> Result<&'static str, Out> {
    match token {
        None => Err(unauthorized(fault)),
        Some(TOKEN) | Some(SAME_PATIENT_TOKEN) => Ok(PATIENT),
        Some(OTHER_TOKEN) => Ok("pat-2"),
        Some(_) => {
            let challenge = if fault == Fault::InvalidTokenNotNamed {
                "Bearer realm=\"target\""
            } else {
                "Bearer realm=\"target\", error=\"invalid_token\""
            };
            Err(Out::json(401, "application/fhir+json", &json!({"resourceType": "OperationOutcome"}))
                .with("WWW-Authenticate", challenge))
        }
    }
}

fn search(root: &str, form: Form, fault: Fault, token: Option<&str>, params: &[(String, String)], data: &Data) -> Out {
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let patient = match patient_of(token, fault) {
        Ok(p) => p,
        Err(out) => return out,
    };
    let empty = json!({"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []});
    if param("patient") != Some(patient) {
        return if fault == Fault::EmptyBundleForAnotherPatient {
            Out::json(200, "application/fhir+json", &empty)
        } else {
            Out::json(403, "application/fhir+json", &json!({"resourceType": "OperationOutcome"}))
        };
    }
    let included = param("_include") == Some("ImagingStudy:endpoint");
    if included && fault == Fault::IncludeRefused {
        return Out::json(400, "application/fhir+json", &json!({"resourceType": "OperationOutcome"}));
    }
    let wanted = param("identifier").map(|i| i.trim_start_matches("urn:dicom:uid|").to_string());
    if wanted.is_some_and(|w| w != format!("urn:oid:{}", data.uid)) && fault != Fault::IdentifierIgnored {
        return Out::json(200, "application/fhir+json", &empty);
    }
    let address = if fault == Fault::RelativeAddress {
        format!("/wado/{CAPABILITY}")
    } else {
        format!("{root}/wado/{CAPABILITY}")
    };
    let endpoint = json!({
        "resourceType": "Endpoint", "id": "wado", "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "dicom-wado-rs"},
        "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "any"}]}],
        "address": address,
    });
    let mut study = json!({
        "resourceType": "ImagingStudy", "id": "s1", "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:{}", data.uid)}],
        "subject": {"reference": format!("Patient/{PATIENT}")},
    });
    if fault == Fault::NoSubject {
        study.as_object_mut().unwrap().remove("subject");
    }
    let uuid = "urn:uuid:6f1c8e0a-6f0e-4c1d-9a57-3c1f6a2b9d10";
    let mut entries = Vec::new();
    match form {
        Form::Contained => {
            study["contained"] = json!([endpoint]);
            study["endpoint"] = json!([{"reference": "#wado"}]);
        }
        Form::ResponseLocal => study["endpoint"] = json!([{"reference": uuid}]),
        Form::Included => study["endpoint"] = json!([{"reference": "Endpoint/wado"}]),
    }
    entries.push(
        json!({"fullUrl": format!("{root}/fhir/ImagingStudy/s1"), "resource": study, "search": {"mode": "match"}}),
    );
    match form {
        Form::ResponseLocal if fault != Fault::ResponseLocalEntryMissing => {
            entries.push(json!({"fullUrl": uuid, "resource": endpoint, "search": {"mode": "include"}}));
        }
        Form::Included if included => {
            entries.push(json!({"fullUrl": format!("{root}/fhir/Endpoint/wado"), "resource": endpoint, "search": {"mode": "include"}}));
        }
        _ => {}
    }
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": entries});
    if fault == Fault::NoTotal {
        bundle.as_object_mut().unwrap().remove("total");
    }
    Out::json(200, "application/fhir+json", &bundle)
}

fn wado(
    fault: Fault,
    token: Option<&str>,
    capability: &str,
    uid: &str,
    rest: &[&str],
    accept: &str,
    data: &Data,
) -> Out {
    let refused = |status: u16| Out::new(status, "text/plain", "refused");
    if !(fault == Fault::WadoWithoutToken && token.is_none()) {
        match patient_of(token, fault) {
            Err(out) => return out,
            Ok(p) if p != PATIENT && fault != Fault::OtherPatientTokenServed => return refused(403),
            // The capability in the address was given to `TOKEN`'s search.
            Ok(p) if p == PATIENT && token != Some(TOKEN) && fault != Fault::CapabilityNotBoundToToken => {
                return refused(403);
            }
            Ok(_) => {}
        }
    }
    if capability != CAPABILITY && fault != Fault::AnyCapability {
        return refused(403);
    }
    if uid != data.uid && fault != Fault::OtherStudyServed {
        return refused(404);
    }
    if rest == ["metadata"] {
        let items: Vec<Value> =
            data.files.iter().map(|_| json!({"0020000D": {"vr": "UI", "Value": [data.uid]}})).collect();
        let kind = if fault == Fault::MetadataAsJson { "application/json" } else { "application/dicom+json" };
        return Out::json(200, kind, &Value::Array(items));
    }
    let syntax = media_param(accept, "transfer-syntax").unwrap_or_else(|| "*".into());
    if syntax != "*" && syntax != EXPLICIT_VR_LE && fault != Fault::UnsupportedSyntaxServed {
        return refused(406);
    }
    let mut files: Vec<&[u8]> = data.files.iter().map(Vec::as_slice).collect();
    match fault {
        Fault::NotMultipart => return Out::new(200, "application/dicom", files[0].to_vec()),
        Fault::PartNotDicom => files[0] = b"this part is not a DICOM file",
        Fault::OtherStudysInstances => files = vec![data.other_study_file.as_slice()],
        Fault::ExplicitIgnored if syntax == EXPLICIT_VR_LE => files = vec![data.implicit_file.as_slice()],
        _ => {}
    }
    let boundary = "probe-target-boundary";
    let mut body = Vec::new();
    for file in files {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Out::new(200, &format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"), body)
}

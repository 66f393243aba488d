//! The FHIR side of a tenant: its CapabilityStatement and SMART configuration here, ImagingStudy search and
//! read in `search`, the resources in `resource`, and errors as OperationOutcome in `outcome`.
//!
//! Invariants: only `search` answers patient data, and only for a `Grant`; the discovery endpoints need no
//! token and say nothing about any patient.

pub mod outcome;
pub mod resource;
pub mod search;

use serde_json::{Value, json};

use crate::auth::ehr::Discovered;
use crate::config::{Authorization, IMAGING_BACKEND_SERVICES, Tenant};
use crate::http::{ApiError, Response};
use resource::{FHIR_JSON, STUDY_PROFILE};

/// The CapabilityStatement of a tenant's FHIR base `base`; `written` is when the index was written. Its
/// security says what the tenant's smart-configuration says: SMART on FHIR at the EHR (whose OAuth URIs
/// the smart-configuration names, so that reading this statement needs no call to the EHR), or, for a
/// mock tenant, no authorization server at all.
pub fn capability_statement(base: &str, tenant: &Tenant, written: &str) -> Response {
    let search_param = |name: &str, kind: &str, doc: &str| json!({"name": name, "type": kind, "documentation": doc});
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": written,
        "kind": "instance",
        "software": {"name": "smart-imaging", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": format!("SMART Imaging Access, tenant {}", tenant.name), "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": security(base, tenant),
            "resource": [{
                "type": "ImagingStudy",
                "supportedProfile": [STUDY_PROFILE],
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchInclude": ["ImagingStudy:endpoint"],
                "searchParam": [
                    search_param("patient", "reference", "The patient in context; required unless ignorePatient"),
                    search_param("identifier", "token", "urn:dicom:uid|urn:oid:<StudyInstanceUID>"),
                    search_param("_lastUpdated", "date", "eq, gt, ge, lt, le"),
                ]
            }]
        }]
    });
    Response::json(200, FHIR_JSON, &body)
}

/// The CapabilityStatement's `rest.security` of a tenant.
fn security(base: &str, tenant: &Tenant) -> Value {
    match tenant.auth {
        Authorization::SmartOnFhir(_) => json!({
            "cors": true,
            "service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }]}],
            "description": format!(
                "SMART App Launch at the tenant's EHR: its endpoints are in {base}/.well-known/smart-configuration"
            )
        }),
        Authorization::Mock { .. } => json!({"cors": true, "description": MOCK_AUTHORIZATION}),
    }
}

/// The SMART capabilities of an EHR that describe the app's side of getting a token this server accepts:
/// how it launches, what kind of client it is, how the patient comes into context. Each is advertised here
/// only when the tenant's EHR advertises it. Left out: `client-confidential-asymmetric` (advertised, with its
/// `token_endpoint_auth_*` metadata, only where Backend Services is configured), `sso-openid-connect`
/// (this server reads no id_token), `permission-user` (`user/` scopes grant nothing here), encounter context
/// and `permission-offline`/`-online` (nothing here depends on them).
const APP_SIDE: [&str; 7] = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "context-ehr-patient",
    "context-standalone-patient",
];

/// The SMART capabilities of this server itself: it takes patient-scoped ImagingStudy scopes, in v1
/// (`.read`) and v2 (`.rs`) syntax (`auth::scope`).
const SERVER_SIDE: [&str; 3] = ["permission-patient", "permission-v1", "permission-v2"];

/// The scopes that let a token read and search ImagingStudy here (`auth::scope`). `openid` and `fhirUser`
/// are left out: this server reads no id_token and no user, so they matter only to the EHR, whose own
/// discovery lists them. `launch/patient` and `launch` are added by `launch_scopes`.
const IMAGING_SCOPES: [&str; 4] =
    ["patient/ImagingStudy.rs", "patient/ImagingStudy.read", "patient/*.rs", "patient/*.read"];

/// The system scopes a listed backend client's token reads and searches ImagingStudy with
/// (`auth::scope::grants_system`), where Backend Services is configured.
const SYSTEM_SCOPES: [&str; 4] = ["system/ImagingStudy.rs", "system/ImagingStudy.read", "system/*.rs", "system/*.read"];

/// The client assertion signatures a backend client uses at the EHR (SMART asymmetric client authentication).
const ASSERTION_ALGORITHMS: [&str; 2] = ["ES384", "RS384"];

/// What a mock tenant says instead of an authorization server.
pub const MOCK_AUTHORIZATION: &str = "none: a mock tenant takes any bearer token, or none";

/// The imaging base's SMART configuration (SMART App Launch, Conformance), `application/json` whatever the
/// `Accept`.
pub fn smart_configuration(imaging: &[&str], ehr: Option<&Discovered>) -> Result<Response, ApiError> {
    Ok(Response::json(200, "application/json", &discovery_document(imaging, ehr)?))
}

/// The document itself. `imaging` is the tenant's SMART Imaging Access capabilities
/// (`config::Tenant::imaging_capabilities`); `ehr` what discovery found at a `smart-on-fhir` tenant's EHR,
/// `None` for a mock tenant.
///
/// A `smart-on-fhir` tenant describes SMART App Launch at its EHR: the EHR's authorization and token
/// endpoints, `authorization_code` with PKCE S256, the app-side capabilities the EHR has, and the scopes
/// this server honours. An EHR without an http(s) `authorization_endpoint` cannot launch an app, so the
/// document would be untrue: 503, with the reason logged. Where Backend Services is configured (its
/// capability in `imaging`), it adds `client_credentials`, the system scopes and the asymmetric client
/// authentication a backend client uses at the EHR's token endpoint. A mock tenant has no authorization
/// server and names none: no endpoints, no grant types, and a field saying why.
fn discovery_document(imaging: &[&str], ehr: Option<&Discovered>) -> Result<Value, ApiError> {
    let Some(ehr) = ehr else {
        return Ok(json!({"capabilities": imaging, "smart_imaging_authorization": MOCK_AUTHORIZATION}));
    };
    let doc = &ehr.document;
    let authorize = doc
        .get("authorization_endpoint")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| ApiError::Unavailable("discovery: the EHR names no http(s) authorization_endpoint".into()))?;
    let advertised: Vec<&str> =
        doc.get("capabilities").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let app_side = APP_SIDE.into_iter().filter(|c| advertised.contains(c));
    let mut capabilities: Vec<&str> = imaging.iter().copied().chain(app_side).chain(SERVER_SIDE).collect();
    let mut scopes: Vec<&str> = launch_scopes(&capabilities).into_iter().chain(IMAGING_SCOPES).collect();
    let mut doc = json!({
        "authorization_endpoint": authorize,
        "token_endpoint": ehr.token_endpoint,
        "grant_types_supported": ["authorization_code"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    });
    if imaging.contains(&IMAGING_BACKEND_SERVICES) {
        doc["grant_types_supported"] = json!(["authorization_code", "client_credentials"]);
        doc["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
        doc["token_endpoint_auth_signing_alg_values_supported"] = json!(ASSERTION_ALGORITHMS);
        capabilities.push("client-confidential-asymmetric");
        scopes.extend(SYSTEM_SCOPES);
    }
    doc["scopes_supported"] = json!(scopes);
    doc["capabilities"] = json!(capabilities);
    Ok(doc)
}

/// The launch-context scopes an app asks for to get the patient in context that every token here needs:
/// `launch/patient` in a standalone launch, `launch` in an EHR launch (SMART App Launch, Scopes and Launch
/// Context); each only when that launch is advertised.
fn launch_scopes(capabilities: &[&str]) -> Vec<&'static str> {
    let mut scopes = Vec::new();
    if capabilities.contains(&"launch-standalone") {
        scopes.push("launch/patient");
    }
    if capabilities.contains(&"launch-ehr") {
        scopes.push("launch");
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IMAGING_ACCESS, IMAGING_APP_LAUNCH};

    const APP_LAUNCH: [&str; 2] = [IMAGING_ACCESS, IMAGING_APP_LAUNCH];

    /// What discovery found at an EHR whose own document is `doc`.
    fn ehr(doc: Value) -> Discovered {
        Discovered {
            token_endpoint: "https://ehr.example.org/token".into(),
            introspection_endpoint: "https://ehr.example.org/introspect".into(),
            document: doc,
        }
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
    }

    #[test]
    fn a_smart_on_fhir_tenant_describes_app_launch_at_its_ehr_and_nothing_else_of_it() {
        let found = ehr(json!({
            "issuer": "https://ehr.example.org",
            "jwks_uri": "https://ehr.example.org/jwks",
            "authorization_endpoint": "https://ehr.example.org/authorize",
            "token_endpoint": "https://ehr.example.org/token",
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": ["openid", "fhirUser", "system/*.rs", "user/*.rs", "patient/Patient.rs"],
            "capabilities": ["launch-standalone", "client-public", "client-confidential-asymmetric",
                "context-standalone-patient", "sso-openid-connect", "permission-user", "permission-offline"],
        }));
        let doc = discovery_document(&APP_LAUNCH, Some(&found)).unwrap();
        assert_eq!(doc["authorization_endpoint"], "https://ehr.example.org/authorize");
        assert_eq!(doc["token_endpoint"], "https://ehr.example.org/token");
        assert_eq!(doc["grant_types_supported"], json!(["authorization_code"]));
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            strings(&doc["capabilities"]),
            [
                IMAGING_ACCESS,
                IMAGING_APP_LAUNCH,
                "launch-standalone",
                "client-public",
                "context-standalone-patient",
                "permission-patient",
                "permission-v1",
                "permission-v2"
            ]
        );
        assert_eq!(
            strings(&doc["scopes_supported"]),
            [
                "launch/patient",
                "patient/ImagingStudy.rs",
                "patient/ImagingStudy.read",
                "patient/*.rs",
                "patient/*.read"
            ]
        );
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        for absent in ["issuer", "jwks_uri", "introspection_endpoint", "token_endpoint_auth_methods_supported"] {
            assert!(doc.get(absent).is_none(), "{absent} in {keys:?}");
        }
    }

    #[test]
    fn an_ehr_launch_is_advertised_only_when_the_ehr_advertises_it() {
        let found = ehr(json!({
            "authorization_endpoint": "http://127.0.0.1:8/auth/authorize",
            "capabilities": ["launch-ehr", "context-ehr-patient", "client-confidential-symmetric"],
        }));
        let doc = discovery_document(&APP_LAUNCH, Some(&found)).unwrap();
        let capabilities = strings(&doc["capabilities"]);
        for c in ["launch-ehr", "context-ehr-patient", "client-confidential-symmetric"] {
            assert!(capabilities.contains(&c), "{c} in {capabilities:?}");
        }
        assert!(!capabilities.contains(&"launch-standalone"), "{capabilities:?}");
        let scopes = strings(&doc["scopes_supported"]);
        assert!(scopes.contains(&"launch") && !scopes.contains(&"launch/patient"), "{scopes:?}");
    }

    #[test]
    fn an_ehr_without_an_http_authorization_endpoint_is_unavailable_not_described() {
        for doc in [json!({}), json!({"authorization_endpoint": "/authorize"})] {
            let answer = discovery_document(&APP_LAUNCH, Some(&ehr(doc.clone())));
            assert!(matches!(answer, Err(ApiError::Unavailable(_))), "{doc}: {answer:?}");
        }
    }

    #[test]
    fn backend_services_adds_client_credentials_system_scopes_and_asymmetric_authentication() {
        let found = ehr(json!({
            "authorization_endpoint": "https://ehr.example.org/authorize",
            "capabilities": ["launch-standalone", "client-confidential-asymmetric"],
        }));
        let without = discovery_document(&APP_LAUNCH, Some(&found)).unwrap();
        assert!(!strings(&without["capabilities"]).contains(&IMAGING_BACKEND_SERVICES));
        assert!(!strings(&without["capabilities"]).contains(&"client-confidential-asymmetric"));
        assert!(!strings(&without["scopes_supported"]).iter().any(|s| s.starts_with("system/")));
        assert!(without.get("token_endpoint_auth_methods_supported").is_none());

        let imaging = [IMAGING_ACCESS, IMAGING_APP_LAUNCH, IMAGING_BACKEND_SERVICES];
        let doc = discovery_document(&imaging, Some(&found)).unwrap();
        assert_eq!(doc["grant_types_supported"], json!(["authorization_code", "client_credentials"]));
        assert_eq!(doc["token_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
        assert_eq!(doc["token_endpoint_auth_signing_alg_values_supported"], json!(["ES384", "RS384"]));
        let capabilities = strings(&doc["capabilities"]);
        for c in [IMAGING_ACCESS, IMAGING_APP_LAUNCH, IMAGING_BACKEND_SERVICES, "client-confidential-asymmetric"] {
            assert!(capabilities.contains(&c), "{c} in {capabilities:?}");
        }
        assert!(strings(&doc["scopes_supported"]).contains(&"system/ImagingStudy.rs"));
    }

    #[test]
    fn a_mock_tenant_names_no_authorization_server() {
        let doc = discovery_document(&[IMAGING_ACCESS], None).unwrap();
        assert_eq!(doc, json!({"capabilities": [IMAGING_ACCESS], "smart_imaging_authorization": MOCK_AUTHORIZATION}));
    }
}

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
use crate::http::Response;
use resource::{FHIR_JSON, STUDY_PROFILE};

/// The CapabilityStatement of a tenant's FHIR base `base`; `written` is when the index was written.
pub fn capability_statement(base: &str, tenant: &str, written: &str) -> Response {
    let search_param = |name: &str, kind: &str, doc: &str| json!({"name": name, "type": kind, "documentation": doc});
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": written,
        "kind": "instance",
        "software": {"name": "smart-imaging", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": format!("SMART Imaging Access, tenant {tenant}"), "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": true,
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"
                }]}]
            },
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

/// The imaging base's SMART configuration: for a `smart-on-fhir` tenant, the EHR's authorization
/// endpoints (apps authorize there and bring the token here), plus `smart-imaging-access`.
pub fn smart_configuration(ehr: Option<&Discovered>) -> Response {
    let body = match ehr {
        None => json!({
            "capabilities": ["smart-imaging-access"],
            "grant_types_supported": [],
            "code_challenge_methods_supported": ["S256"],
        }),
        Some(ehr) => {
            let doc = &ehr.document;
            let mut capabilities: Vec<Value> =
                doc.get("capabilities").and_then(Value::as_array).cloned().unwrap_or_default();
            if !capabilities.iter().any(|c| c == "smart-imaging-access") {
                capabilities.push(json!("smart-imaging-access"));
            }
            let mut body = json!({
                "token_endpoint": ehr.token_endpoint,
                "capabilities": capabilities,
                "grant_types_supported": doc.get("grant_types_supported").cloned().unwrap_or(json!(["authorization_code"])),
                "code_challenge_methods_supported": doc.get("code_challenge_methods_supported").cloned().unwrap_or(json!(["S256"])),
            });
            for key in ["issuer", "jwks_uri", "authorization_endpoint", "scopes_supported", "response_types_supported"]
            {
                if let Some(v) = doc.get(key) {
                    body[key] = v.clone();
                }
            }
            body
        }
    };
    Response::json(200, "application/json", &body)
}

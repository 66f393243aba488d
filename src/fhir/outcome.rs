//! Errors on FHIR paths, as an OperationOutcome (FHIR R4 §2.37), with the headers the error carries.
//!
//! Invariants: server faults say nothing of their cause here (the log does); the HTTP status and the
//! challenge headers come from `ApiError` alone.

use serde_json::json;

use super::resource::FHIR_JSON;
use crate::http::{ApiError, Response};

/// The OperationOutcome of `e`; `realm` names the protection space of a `WWW-Authenticate` challenge.
pub fn response(e: &ApiError, realm: &str) -> Response {
    let severity = if e.status() >= 500 { "fatal" } else { "error" };
    let outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": e.issue_code(), "diagnostics": e.public_message()}]
    });
    let mut resp = Response::json(e.status(), FHIR_JSON, &outcome);
    resp.headers.extend(e.headers(realm));
    resp
}

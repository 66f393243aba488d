//! Authorization of a request's bearer token, producing the proven `Grant` that every protected handler
//! takes as a value (SPEC §5.4, §6).
//!
//! Invariants: a handler cannot reach patient data without a `Grant`; a token is never logged or kept in
//! the clear; any doubt fails closed.

pub mod cache;
pub mod ehr;
pub mod jwk;
pub mod patient;
pub mod scope;

use crate::auth::patient::PatientContext;
use crate::auth::scope::Need;
use crate::config::{Authorization, Tenant};
use crate::http::{ApiError, Request};
use crate::routes::App;
use std::sync::Arc;

/// What a valid access token allows.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The patient in context; `None` only for tenants configured without one.
    pub patient: Option<Arc<PatientContext>>,
    /// When the access token expires (Unix seconds); `None` when nothing bounds it (mock tenants).
    pub expires: Option<u64>,
}

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, an error for one that is
/// not a well-formed bearer credential (RFC 6750 §2.1).
pub fn bearer_token(req: &Request) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.header("authorization") else {
        return Ok(None);
    };
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(ApiError::InvalidToken("the Authorization header is not a bearer token".into()));
    }
    Ok(Some(token))
}

/// Validates the request's token for a tenant and what the request needs of it.
pub fn authorize(app: &App, tenant: &Tenant, req: &Request, need: Need) -> Result<Grant, ApiError> {
    match &tenant.auth {
        // A mock tenant stands in for an EHR that approved every token for its one patient: a token is
        // not needed, but a malformed Authorization header is still refused so clients learn early.
        Authorization::Mock { patient } => {
            bearer_token(req)?;
            Ok(Grant { patient: patient.clone(), expires: None })
        }
        Authorization::SmartOnFhir(_) => {
            let token = bearer_token(req)?.ok_or(ApiError::NoToken)?;
            let ehr = app.ehr(tenant)?;
            ehr.authorize(token, need)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn req(auth: Option<&str>) -> Request {
        let headers = auth.map(|a| vec![("authorization".to_string(), a.to_string())]).unwrap_or_default();
        Request { method: Method::Get, path: "/".into(), query: String::new(), headers }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(&req(None)), Ok(None));
        assert_eq!(bearer_token(&req(Some("Bearer abc"))), Ok(Some("abc")));
        assert_eq!(bearer_token(&req(Some("bearer  abc "))), Ok(Some("abc")));
        assert!(bearer_token(&req(Some("Basic abc"))).is_err());
        assert!(bearer_token(&req(Some("Bearer"))).is_err());
        assert!(bearer_token(&req(Some("Bearer a b"))).is_err());
    }
}

//! Authorization of a request's bearer token, producing the proven `Grant` that every protected handler
//! takes as a value (docs/api.md, Errors; docs/ehr.md, Connecting to an EHR).
//!
//! Invariants: a handler cannot reach patient data without a `Grant`; a token is never logged or kept in
//! the clear; any doubt fails closed.

pub mod ehr;
pub mod flight;
pub mod jwk;
pub mod patient;
pub mod scope;
pub mod visibility;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::Arc;

use crate::http::{ApiError, Request};
use ehr::Ehr;
use patient::PatientContext;
use scope::Need;
use visibility::Visibility;

/// How a tenant's tokens are checked: mocked, or at its EHR. Each tenant owns one, so a `smart-on-fhir`
/// tenant always has its EHR client.
#[derive(Debug)]
pub enum Access {
    /// No introspection: the configured patient (if any) is the context.
    Mock { patient: Option<Arc<PatientContext>> },
    /// Token introspection and Patient reads at the tenant's EHR.
    Ehr(Ehr),
}

/// What a valid access token allows. Its fields are private and `authorize` is the only place that makes
/// one, so a handler that takes a `Grant` was called after authorization, and the compiler checks it.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The patient in context; `None` only for tenants configured without one.
    patient: Option<Arc<PatientContext>>,
    /// When the access token expires (Unix seconds); `None` when nothing bounds it (mock tenants).
    expires: Option<u64>,
    /// Who the token speaks for, from its introspection answer (audit trail only); empty for mock tenants.
    who: ehr::Who,
    /// The tenant's policy of who sees which study (`visibility`).
    visibility: Visibility,
    /// A backend client's system access (`who.client_id` is the client): its requests name their patient,
    /// and `for_named_patient` puts that patient in context.
    system: bool,
    /// What the study tokens minted under this grant are bound to: a digest of the access token (the first
    /// 16 bytes of its SHA-256, base64url), so that another token cannot use them; `None` on a mock tenant,
    /// which takes any token or none.
    token_digest: Option<String>,
}

impl Grant {
    /// Whether this is a backend client's system access rather than an app's token in patient context.
    pub fn is_system(&self) -> bool {
        self.system
    }

    /// The grant with the patient that the request names in context: for system access, the one `named`
    /// finds (a FHIR id at the tenant's EHR, from the `patient` search parameter or the study token), read at
    /// the EHR as an app's patient is; naming nobody is 400. Any other grant is returned as it is, `named`
    /// not called: its patient comes from its token, and the policy checks what the request names against it.
    pub fn for_named_patient(
        self,
        access: &Access,
        named: impl FnOnce() -> Result<Option<String>, ApiError>,
    ) -> Result<Grant, ApiError> {
        if !self.system {
            return Ok(self);
        }
        let id = named()?.ok_or_else(|| {
            ApiError::BadRequest("system access names its patient: ImagingStudy?patient=ID is required".into())
        })?;
        let Access::Ehr(ehr) = access else {
            return Err(ApiError::Internal("system access on a tenant without an EHR".into()));
        };
        Ok(Grant { patient: Some(ehr.system_patient(&id)?), ..self })
    }

    pub fn patient(&self) -> Option<&Arc<PatientContext>> {
        self.patient.as_ref()
    }

    pub fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// The access token's OAuth client (`client_id`), when the EHR said.
    pub fn client_id(&self) -> Option<&str> {
        self.who.client_id.as_deref()
    }

    /// The access token's subject (`sub`), when the EHR said.
    pub fn subject(&self) -> Option<&str> {
        self.who.subject.as_deref()
    }
}

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, an error for one that is
/// not a well-formed bearer credential (RFC 6750 §2.1), and 400 for more than one `Authorization` header
/// (a proxy that reads another of them than we do would see another identity).
pub fn bearer_token(req: &Request) -> Result<Option<&str>, ApiError> {
    let mut values = req.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("authorization")).map(|(_, v)| v);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest("give the Authorization header only once".into()));
    }
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(ApiError::InvalidToken("the Authorization header is not a bearer token".into()));
    }
    Ok(Some(token))
}

/// Validates the request's token for a tenant and what the request needs of it; the grant sees studies as
/// the tenant's `visibility` says.
pub fn authorize(access: &Access, visibility: Visibility, req: &Request, need: Need) -> Result<Grant, ApiError> {
    match access {
        // A mock tenant stands in for an EHR that approved every token for its one patient: a token is
        // not needed, but a malformed Authorization header is still refused so clients learn early.
        Access::Mock { patient } => {
            bearer_token(req)?;
            let who = ehr::Who::default();
            Ok(Grant { patient: patient.clone(), expires: None, who, visibility, system: false, token_digest: None })
        }
        Access::Ehr(ehr) => {
            let token = bearer_token(req)?.ok_or(ApiError::NoToken)?;
            let ehr::Proven { context, expires, who, token_hash } = ehr.authorize(token, need)?;
            let (patient, system) = match context {
                ehr::Context::Patient(patient) => (Some(patient), false),
                ehr::Context::System => (None, true),
            };
            let digest = URL_SAFE_NO_PAD.encode(&token_hash[..16]);
            Ok(Grant { patient, expires: Some(expires), who, visibility, system, token_digest: Some(digest) })
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
    fn two_authorization_headers_are_refused() {
        let mut twice = req(Some("Bearer a"));
        twice.headers.push(("authorization".into(), "Bearer b".into()));
        assert!(matches!(bearer_token(&twice), Err(ApiError::BadRequest(_))));
        let access = Access::Mock { patient: None };
        let refused = authorize(&access, Visibility::Everything, &twice, Need::Search);
        assert!(matches!(refused, Err(ApiError::BadRequest(_))));
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

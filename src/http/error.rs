//! The one request error type, and its status table: every way a request can fail, with the status, the
//! public message, the FHIR issue code and the headers of each.
//!
//! Invariants: a status is decided here and nowhere else; server faults (500, 503) never say why in what
//! the client sees.

use std::fmt;

use super::message::Response;

/// Everything a request can fail with. The status of each case is fixed here (docs/api.md, Errors) and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    /// No bearer token where one is required.
    NoToken,
    /// Token inactive, unknown or expired.
    InvalidToken(String),
    /// Active token without an imaging scope.
    InsufficientScope(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    NotAcceptable(String),
    /// The EHR could not answer: never serve data instead.
    Unavailable(String),
    Saturated,
    /// A fault of ours; the detail is logged, never sent.
    Internal(String),
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NoToken | ApiError::InvalidToken(_) => 401,
            ApiError::InsufficientScope(_) | ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::NotAcceptable(_) => 406,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) | ApiError::Saturated => 503,
        }
    }

    /// The text a client may see. Server faults say nothing of their cause.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::InvalidToken(m)
            | ApiError::InsufficientScope(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::NotAcceptable(m) => m.clone(),
            ApiError::NoToken => "a bearer token is required".into(),
            ApiError::MethodNotAllowed => "method not allowed".into(),
            ApiError::Unavailable(_) => "the authorization server is unavailable; retry later".into(),
            ApiError::Saturated => "the server is busy; retry later".into(),
            ApiError::Internal(_) => "internal server error".into(),
        }
    }

    /// The error as one line of text, with its headers: how paths other than FHIR ones answer errors.
    pub fn text_response(&self, realm: &str) -> Response {
        let mut resp = Response::bytes(
            self.status(),
            "text/plain; charset=utf-8",
            format!("{}\n", self.public_message()).into_bytes(),
        );
        resp.headers.extend(self.headers(realm));
        resp
    }

    /// The FHIR OperationOutcome issue code for this error.
    pub fn issue_code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid",
            ApiError::NoToken | ApiError::InvalidToken(_) => "login",
            ApiError::InsufficientScope(_) | ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed | ApiError::NotAcceptable(_) => "not-supported",
            ApiError::Unavailable(_) | ApiError::Saturated => "transient",
            ApiError::Internal(_) => "exception",
        }
    }

    /// Headers this error carries whatever the body: `WWW-Authenticate` (RFC 6750 §3), `Retry-After`, `Allow`.
    pub fn headers(&self, realm: &str) -> Vec<(String, String)> {
        let h = |n: &str, v: String| vec![(n.to_string(), v)];
        match self {
            ApiError::NoToken => h("WWW-Authenticate", format!("Bearer realm=\"{realm}\"")),
            ApiError::InvalidToken(_) => {
                h("WWW-Authenticate", format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))
            }
            ApiError::InsufficientScope(_) => h(
                "WWW-Authenticate",
                format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"patient/ImagingStudy.rs\""),
            ),
            ApiError::Unavailable(_) | ApiError::Saturated => h("Retry-After", RETRY_AFTER_SECS.to_string()),
            ApiError::MethodNotAllowed => h("Allow", "GET, HEAD, OPTIONS".into()),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unavailable(d) | ApiError::Internal(d) => write!(f, "{} ({d})", self.status()),
            other => write!(f, "{} {}", other.status(), other.public_message()),
        }
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::NoToken, 401),
            (ApiError::InvalidToken("x".into()), 401),
            (ApiError::InsufficientScope("x".into()), 403),
            (ApiError::Forbidden("x".into()), 403),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::MethodNotAllowed, 405),
            (ApiError::NotAcceptable("x".into()), 406),
            (ApiError::Internal("x".into()), 500),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Saturated, 503),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e:?}");
        }
    }

    #[test]
    fn server_faults_hide_their_detail() {
        assert!(!ApiError::Internal("disk on fire".into()).public_message().contains("fire"));
        assert!(!ApiError::Unavailable("ehr at 10.0.0.1".into()).public_message().contains("10.0"));
    }

    #[test]
    fn challenge_headers() {
        let h = ApiError::InvalidToken("x".into()).headers("r");
        assert_eq!(h[0].1, "Bearer realm=\"r\", error=\"invalid_token\"");
        let h = ApiError::Saturated.headers("r");
        assert_eq!(h[0], ("Retry-After".to_string(), "5".to_string()));
        assert!(ApiError::NoToken.headers("r")[0].1.starts_with("Bearer realm="));
    }
}

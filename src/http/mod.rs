//! Plain request and response values, and the request error type with its status table. Only
//! `server.rs` converts between these and tiny_http.

pub mod accept;
pub mod multipart;

use std::fmt;
use std::io::{self, Read, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    Other,
}

#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The raw path, still percent-encoded, without the query.
    pub path: String,
    /// The raw query string after `?`, still percent-encoded; empty when absent.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// A body produced while it is sent, of a length known in advance.
    Stream {
        len: u64,
        reader: Box<dyn Source>,
    },
}

/// A streamed body: readable in small pieces, or written out whole in as few and as large writes as its
/// source allows (the server's fast path for large responses).
pub trait Source: Read + Send {
    fn write_to(&mut self, out: &mut dyn Write) -> io::Result<u64> {
        io::copy(self, out)
    }
}

impl Source for io::Empty {}
impl Source for io::Cursor<Vec<u8>> {}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Body::Stream { len, .. } => write!(f, "Stream({len})"),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Body::Empty }
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response::new(status).with_header("Content-Type", content_type).with_body(Body::Bytes(body))
    }

    pub fn json(status: u16, content_type: &str, value: &serde_json::Value) -> Response {
        // Serialising a Value cannot fail: its keys are strings.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response::bytes(status, content_type, body)
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Stream { len, .. } => *len,
        }
    }
}

/// Everything a request can fail with. The status of each case is fixed here (SPEC §5.4) and nowhere else.
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

/// Decodes `%XX` escapes (and `+` as space in queries). `None` for a bad escape or a result that is not
/// UTF-8 or holds a NUL: such a request is a 400, never guessed at.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.contains('\0')).then_some(text)
}

/// Splits a raw query into decoded `(name, value)` pairs, keeping their order and repeats.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || ApiError::BadRequest("the query string has a malformed percent-escape".into());
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(n, true).ok_or_else(bad)?, percent_decode(v, true).ok_or_else(bad)?))
        })
        .collect()
}

/// Encodes a query component so it survives in a URL we hand back (the `self` and `next` links).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb+c", true).as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%00", false), None);
        assert_eq!(percent_decode("%ff", false), None);
        assert_eq!(percent_decode("%C3%BC", false).as_deref(), Some("ü"));
        let q = parse_query("patient=Patient%2F1&x&identifier=a%7Cb").unwrap();
        assert_eq!(
            q,
            vec![("patient".into(), "Patient/1".into()), ("x".into(), "".into()), ("identifier".into(), "a|b".into())]
        );
        assert!(parse_query("a=%G0").is_err());
        assert_eq!(percent_encode("urn:oid:1.2|x y"), "urn:oid:1.2%7Cx%20y");
    }

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

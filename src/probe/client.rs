//! The probe's HTTP client: one ureq agent, every answer taken as it came (any status, no redirect
//! followed, so that a 302 of an authorization endpoint and a 401 are both something to look at), bodies
//! read up to a bound.
//!
//! Invariant: a transport failure is an `Err` naming the URL (shortened, `report::shorten`), never a panic;
//! the bearer token goes only in the `Authorization` header of the request it was given for.

use std::time::Duration;

use serde_json::Value;

use super::report::shorten;

/// The most of one body the probe reads: a whole study, retrieved to look at each part.
pub const MAX_BODY: u64 = 1 << 30;

/// How long one request may take, body included.
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Client {
    agent: ureq::Agent,
}

/// One answer: status, headers (names lower-cased, repeats kept) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, joined by `, ` as RFC 9110 §5.3 lets a list header be.
    pub fn header_joined(&self, name: &str) -> String {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The media type of `Content-Type`, lower case, without parameters; empty when there is none.
    pub fn media_type(&self) -> String {
        media_type(self.header("content-type").unwrap_or_default())
    }

    /// The body as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the body holds the DICOM prefix anywhere: a refusal must carry no DICOM bytes.
    pub fn has_dicom_bytes(&self) -> bool {
        self.body.windows(4).any(|w| w == b"DICM")
    }

    /// `status` and what it came with, for a detail: `403 text/plain`.
    pub fn said(&self) -> String {
        let media = self.media_type();
        if media.is_empty() { self.status.to_string() } else { format!("{} {media}", self.status) }
    }
}

/// The media type of a `Content-Type` value, lower case, without parameters.
pub fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The value of parameter `name` of a media type (`boundary`, `type`, `transfer-syntax`), unquoted.
pub fn media_param(value: &str, name: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (found, tail) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], quoted[end + 1..].split_once(';').map_or("", |(_, t)| t))
            }
            None => after.split_once(';').unwrap_or((after, "")),
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(found.trim().to_string());
        }
        if tail.is_empty() {
            return None;
        }
        rest = tail;
    }
}

impl Client {
    pub fn new() -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("smart-imaging-probe/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { agent: ureq::Agent::new_with_config(config) }
    }

    /// `GET url` with `token` as a bearer token (when given) and `headers`.
    pub fn get(&self, url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Result<Answer, String> {
        let mut request = self.agent.get(url);
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(url, request.call())
    }

    /// `OPTIONS url` with `headers`: a CORS preflight.
    pub fn options(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, String> {
        let mut request = self.agent.options(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(url, request.call())
    }

    /// `POST url` with `form` as `application/x-www-form-urlencoded`.
    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Answer, String> {
        let request = self.agent.post(url).header("Accept", "application/json");
        read(url, request.send_form(form.iter().copied()))
    }
}

fn read(url: &str, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Answer, String> {
    let failed = |e: ureq::Error| format!("{}: {e}", shorten(url));
    let mut response = result.map_err(failed)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(failed)?;
    Ok(Answer { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_parameters() {
        let ct = "multipart/related; type=\"application/dicom\"; boundary=abc";
        assert_eq!(media_type(ct), "multipart/related");
        assert_eq!(media_param(ct, "type").as_deref(), Some("application/dicom"));
        assert_eq!(media_param(ct, "boundary").as_deref(), Some("abc"));
        assert_eq!(media_param("multipart/related;Boundary=\"a;b\";type=x", "boundary").as_deref(), Some("a;b"));
        assert_eq!(
            media_param("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", "transfer-syntax").as_deref(),
            Some("1.2.840.10008.1.2.1")
        );
        assert_eq!(media_param("application/json", "type"), None);
    }
}

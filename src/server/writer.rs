//! The one response writer: CORS and cache headers added to every response, then the head and body written
//! on the connection.
//!
//! Invariants: every response carries the CORS headers; a HEAD, 204 or 304 carries no body; the
//! `Content-Length` written is the body's length, known before the first byte.

use std::io::Write;

use crate::http::Response;

const ALLOW_HEADERS: &str = "Authorization, Accept, Content-Type, Range, Prefer, Cache-Control, If-None-Match";
const EXPOSE_HEADERS: &str = "Retry-After, WWW-Authenticate, Content-Location, ETag, Content-Length, Content-Type";

/// Sends a response; whether all of it went out.
pub fn respond(raw: tiny_http::Request, mut resp: Response) -> bool {
    resp.headers.extend(
        [
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
            ("Access-Control-Allow-Headers", ALLOW_HEADERS),
            ("Access-Control-Expose-Headers", EXPOSE_HEADERS),
            ("Access-Control-Max-Age", "600"),
            ("Cache-Control", "private"),
            ("Vary", "Authorization, Accept"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string())),
    );
    // HTTP/1.1 responses are written by `write_raw`; tiny_http writes the rest (HTTP/1.0 clients).
    if raw.http_version() == &tiny_http::HTTPVersion(1, 1) {
        return write_raw(raw, resp);
    }
    let headers: Vec<tiny_http::Header> = resp
        .headers
        .iter()
        .filter_map(|(n, v)| tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
        .collect();
    let len = usize::try_from(resp.body_len()).unwrap_or(usize::MAX);
    let reader = resp.body.into_source();
    // tiny_http switches bodies of 32 KiB and more to chunked encoding unless told otherwise; the length is
    // known, so send it (every retrieve carries Content-Length: README, DICOMweb details).
    let response = tiny_http::Response::new(tiny_http::StatusCode(resp.status), headers, reader, Some(len), None)
        .with_chunked_threshold(usize::MAX);
    // A client that went away mid-response is not our error; note it and go on.
    match raw.respond(response) {
        Ok(()) => true,
        Err(e) => {
            log::debug!("response not completed: {e}");
            false
        }
    }
}

/// Writes a response on the connection itself: tiny_http would copy every body through an 8 KiB buffer, one
/// system call per 8 KiB, while our bodies are in memory or in maps and can go to the socket in a few large
/// writes; tiny_http would also give a 204 a `Content-Length: 0`, which RFC 9110 §8.6 forbids. The connection
/// stays tiny_http's: it reads the next request once this writer is dropped, which keep-alive needs, and the
/// response is complete HTTP/1.1 with its length. A body cut short (a client gone, a file truncated) leaves
/// the client waiting for the rest until the read timeout closes the connection.
fn write_raw(raw: tiny_http::Request, resp: Response) -> bool {
    let len = resp.body_len();
    let mut reader = resp.body.into_source();
    // RFC 9110 §6.4.1: no content in a response to HEAD, nor in a 204 or a 304.
    let head_only = raw.method() == &tiny_http::Method::Head || resp.status == 204 || resp.status == 304;
    let closing =
        raw.headers().iter().any(|h| h.field.equiv("Connection") && h.value.as_str().eq_ignore_ascii_case("close"));
    let status = tiny_http::StatusCode(resp.status);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\n",
        resp.status,
        status.default_reason_phrase(),
        crate::time::http_date(crate::time::now_secs())
    );
    for (name, value) in &resp.headers {
        // Header values are ours, but never let one end the header block early.
        if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if closing && !resp.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Connection")) {
        head.push_str("Connection: close\r\n");
    }
    if resp.status != 204 {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = raw.into_writer();
    let sent = writer
        .write_all(head.as_bytes())
        .and_then(|()| if head_only { Ok(0) } else { reader.write_to(&mut writer) })
        .and_then(|n| writer.flush().map(|()| n));
    match sent {
        Ok(_) => true,
        Err(e) => {
            log::debug!("response not completed: {e}");
            false
        }
    }
}

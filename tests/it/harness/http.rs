//! HTTP to the server: requests, replies, media type parameters and a strict multipart parser.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use super::*;

// ---------------------------------------------------------------------------------------------------
// HTTP.

/// A response, with the body read in full. Header names are lower case.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The value of a header, or "" when absent (for messages and `contains` checks).
    pub fn header_or_empty(&self, name: &str) -> &str {
        self.header(name).unwrap_or("")
    }

    /// The media type of `Content-Type`, lower case and without parameters.
    pub fn media_type(&self) -> String {
        media_type(self.header_or_empty("content-type"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body of a {} reply is not JSON ({e}): {}", self.status, self.text()))
    }

    /// Does the body hold these bytes anywhere?
    pub fn body_contains(&self, needle: &[u8]) -> bool {
        find(&self.body, needle, 0).is_some()
    }
}

/// `GET url` with ureq, on a connection of its own; 4xx and 5xx are replies, not errors. Only 127.0.0.1 may
/// be contacted.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    get_on(&agent(), url, headers)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(DEADLINE)).build().into()
}

fn get_on(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> Reply {
    assert!(url.starts_with("http://127.0.0.1:"), "the tests only talk to 127.0.0.1, not {url}");
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    reply_of(&format!("GET {url}"), request.call())
}

/// A client that keeps one connection to the server open across its requests. A test that holds requests
/// open opens its connections first, one at a time: when two connections are opened at the same moment,
/// tiny_http's thread pool may leave one unread until another connection closes.
pub struct KeptAlive {
    agent: ureq::Agent,
    base: String,
}

impl KeptAlive {
    /// Opens the connection, with a `GET /healthz` on it.
    pub fn open(server: &Server) -> KeptAlive {
        let client = KeptAlive { agent: agent(), base: server.base().to_string() };
        let health = client.get("/healthz", &[]);
        assert_eq!(health.status, 200, "/healthz on a new connection: {}", health.text());
        client
    }

    /// `GET path` on the kept connection.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        get_on(&self.agent, &format!("{}{path}", self.base), headers)
    }
}

/// A ureq answer as a `Reply`; `what` names the request in a failure.
pub fn reply_of(what: &str, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.unwrap_or_else(|e| panic!("{what} failed: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("{what}: cannot read the body: {e}"));
    Reply { status, headers, body }
}

/// A request over a fresh TCP connection with `Connection: close`, for exact control (OPTIONS, HEAD,
/// POST). The body is every byte after the header block, as sent: not de-chunked, and for HEAD it must be
/// empty.
pub fn raw_request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    assert!(addr.ip().is_loopback(), "the tests only talk to 127.0.0.1, not {addr}");
    let what = format!("{method} {target}");
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{what}: cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(DEADLINE)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !matches!(method, "GET" | "HEAD" | "OPTIONS") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap_or_else(|e| panic!("{what}: cannot send: {e}"));
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{what}: cannot read the response: {e}"));

    let end = find(&raw, b"\r\n\r\n", 0).unwrap_or_else(|| {
        panic!("{what}: the response has no complete header block: {:?}", String::from_utf8_lossy(&raw))
    });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad status line {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (n, v) = line.split_once(':').unwrap_or_else(|| panic!("{what}: bad header line {line:?}"));
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Reply { status, headers, body: raw[end + 4..].to_vec() }
}

/// The first position of `needle` in `hay` at or after `from`.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// `type/subtype` of a media type, lower case.
pub fn media_type(value: &str) -> String {
    split_params(value).first().map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// A parameter of a media type (`name=value` or `name="value"`), by case-insensitive name, unquoted.
pub fn media_param(value: &str, name: &str) -> Option<String> {
    split_params(value).into_iter().skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        if !n.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string())
    })
}

/// A media type without the given parameter, for comparing two that differ only in it.
pub fn without_param(value: &str, name: &str) -> String {
    split_params(value)
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.split_once('=').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// A comma-separated header value (such as `Access-Control-Allow-Headers`) holds `item`, ignoring case.
pub fn list_has(value: &str, item: &str) -> bool {
    value.split(',').any(|v| v.trim().eq_ignore_ascii_case(item))
}

// ---------------------------------------------------------------------------------------------------
// multipart/related (RFC 2046 §5.1.1, RFC 2387), parsed strictly.

/// One body part: its headers (names lower case) and its bytes.
#[derive(Debug, Clone)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parses a `multipart/related` body with the boundary of its `Content-Type`. Strict: no preamble (the
/// body starts with `--boundary CRLF`), parts separated by `CRLF--boundary CRLF`, each part's headers end
/// at the first blank line, and the body ends exactly with `CRLF--boundary--CRLF` (no epilogue). A part
/// that states a `Content-Length` must have that many bytes.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    if media_type(content_type) != "multipart/related" {
        return Err(format!("Content-Type {content_type:?} is not multipart/related"));
    }
    let boundary = media_param(content_type, "boundary").ok_or_else(|| format!("no boundary in {content_type:?}"))?;
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(format!("boundary {boundary:?} is not 1 to 70 characters (RFC 2046 §5.1.1)"));
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let opening = [delimiter.as_slice(), b"\r\n"].concat();
    if !body.starts_with(&opening) {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        return Err(format!("body does not start with `--{boundary}\\r\\n` (a preamble?): {start:?}"));
    }
    let separator = [b"\r\n".as_slice(), &delimiter].concat();
    let mut parts = Vec::new();
    let mut pos = opening.len();
    loop {
        let n = parts.len();
        let head_end =
            find(body, b"\r\n\r\n", pos).ok_or_else(|| format!("part {n}: no blank line after its headers"))?;
        let head = std::str::from_utf8(&body[pos..head_end]).map_err(|_| format!("part {n}: headers not UTF-8"))?;
        let mut headers = Vec::new();
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').ok_or_else(|| format!("part {n}: bad header line {line:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let start = head_end + 4;
        let end = find(body, &separator, start).ok_or_else(|| format!("part {n}: no delimiter after its body"))?;
        let part = Part { headers, body: body[start..end].to_vec() };
        if let Some(len) = part.header("content-length")
            && len.parse::<usize>().ok() != Some(part.body.len())
        {
            return Err(format!("part {n}: Content-Length {len} but {} bytes", part.body.len()));
        }
        parts.push(part);
        let after = end + separator.len();
        let rest = &body[after..];
        if rest.starts_with(b"\r\n") {
            pos = after + 2;
        } else if rest == b"--\r\n" {
            return Ok(parts);
        } else {
            let tail = String::from_utf8_lossy(&rest[..rest.len().min(40)]).into_owned();
            return Err(format!("after part {n}: expected CRLF or a closing `--CRLF` at the very end, got {tail:?}"));
        }
    }
}

/// Checks a WADO-RS `multipart/related; type="application/dicom"` reply against the indexed instances it
/// must hold: status, media type and parameters, per part, in order, the media type, the transfer syntax
/// and the bytes of the file on disk, and `Content-Length` when one is sent. `what` names the request.
pub fn assert_dicom_parts(reply: &Reply, expected: &[&IndexInstance], what: &str) {
    assert_eq!(reply.status, 200, "{what}: status: {}", reply.text());
    let content_type = reply.header_or_empty("content-type");
    assert_eq!(media_type(content_type), "multipart/related", "{what}: Content-Type {content_type:?}");
    assert_eq!(
        media_param(content_type, "type").as_deref(),
        Some("application/dicom"),
        "{what}: the type parameter of {content_type:?}"
    );
    assert!(media_param(content_type, "boundary").is_some(), "{what}: no boundary in {content_type:?}");
    let parts = parse_multipart(content_type, &reply.body).unwrap_or_else(|e| panic!("{what}: bad multipart: {e}"));
    assert_eq!(parts.len(), expected.len(), "{what}: number of parts");
    for (n, (part, inst)) in parts.iter().zip(expected).enumerate() {
        assert_eq!(part.body.len() as u64, inst.size, "{what}: part {n} is not the indexed size of {}", inst.path);
        let part_type = part.header("content-type").unwrap_or_default();
        assert_eq!(media_type(part_type), "application/dicom", "{what}: part {n} Content-Type {part_type:?}");
        assert_eq!(
            media_param(part_type, "transfer-syntax").as_deref(),
            Some(inst.transfer_syntax.as_str()),
            "{what}: part {n} transfer syntax in {part_type:?}"
        );
        assert!(part.body == inst.file_bytes(), "{what}: part {n} is not the bytes of {} (order?)", inst.path);
    }
    // Whether a length must be sent at all is `wado_responses_of_any_size_carry_content_length`'s concern;
    // here, a length that is sent must be the body's.
    if let Some(length) = reply.header("content-length") {
        assert_eq!(length.parse::<usize>().ok(), Some(reply.body.len()), "{what}: Content-Length is not the body's");
    }
}

// The harness's own parser must be as strict as it claims, or the WADO tests prove less than they say.

#[test]
fn multipart_parser_is_strict() {
    let content_type = "multipart/related; type=\"application/dicom\"; boundary=XYZ";
    let good: &[u8] = b"--XYZ\r\nContent-Type: application/dicom\r\nContent-Length: 4\r\n\r\nAB\r\n\r\n--XYZ\r\n\
                        Content-Type: application/dicom\r\n\r\nC\r\n--XYZ--\r\n";
    let parts = parse_multipart(content_type, good).expect("a well-formed body");
    assert_eq!(parts.len(), 2, "two parts");
    assert_eq!(parts[0].body, b"AB\r\n", "first part keeps its own CRLF");
    assert_eq!(parts[1].header("content-type"), Some("application/dicom"), "second part's header");
    assert_eq!(parts[1].body, b"C", "second part");

    let bad: [(&str, Vec<u8>); 5] = [
        ("a preamble", [b"preamble\r\n".as_slice(), good].concat()),
        ("an epilogue", [good, b"epilogue".as_slice()].concat()),
        ("no closing delimiter", good[..good.len() - 9].to_vec()),
        ("no CRLF after the closing delimiter", good[..good.len() - 2].to_vec()),
        ("a wrong part Content-Length", String::from_utf8_lossy(good).replace("Length: 4", "Length: 5").into_bytes()),
    ];
    for (what, body) in bad {
        assert!(parse_multipart(content_type, &body).is_err(), "the parser accepted {what}");
    }
    assert!(parse_multipart("multipart/related; type=x", good).is_err(), "the parser accepted no boundary");
    assert!(parse_multipart("application/dicom; boundary=XYZ", good).is_err(), "the parser accepted another type");
}

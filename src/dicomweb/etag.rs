//! Strong validators (RFC 9110 §8.8.3) of every DICOMweb answer, and `If-None-Match`.
//!
//! Invariant: another index, another file or another representation gives another tag.

use super::scope::Scope;
use crate::http::{Body, Request, Response};
use crate::index::Instance;

/// A strong validator for a representation: the index's time, what was asked and how, and the identity,
/// size and time of every file it comes from. Another index or another file gives another tag.
pub fn etag(scope: &Scope, what: &str, instances: &[Instance]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(scope.index.written().as_bytes());
    ctx.update(b"\0");
    ctx.update(scope.study.uid().as_bytes());
    ctx.update(b"\0");
    ctx.update(what.as_bytes());
    for i in instances {
        ctx.update(format!("\0{}:{}:{}", i.uid(), i.size(), i.mtime()).as_bytes());
    }
    let digest = ctx.finish();
    let hex: String = digest.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `If-None-Match` (RFC 9110 §13.1.2): a 304 without a body when the request names the response's ETag.
pub fn not_modified(req: &Request, response: Response) -> Response {
    let Some(tag) = response.headers.iter().find(|(n, _)| n == "ETag").map(|(_, v)| v.clone()) else {
        return response;
    };
    let matches = req.header("if-none-match").is_some_and(|list| {
        list.split(',').map(|t| t.trim()).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
    });
    if response.status == 200 && matches {
        // RFC 9110 §8.6: a 304 may carry the Content-Length of the 200 it stands for, and no body.
        let length = Body::Stream { len: response.body_len(), reader: Box::new(std::io::empty()) };
        Response::new(304).with_header("ETag", tag).with_body(length)
    } else {
        response
    }
}

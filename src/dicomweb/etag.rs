//! Strong validators (RFC 9110 §8.8.3) of every DICOMweb answer, and `If-None-Match`, answered from the
//! index before any file is touched.
//!
//! Invariant: another index, another file or another representation gives another tag; a tag is computed
//! from the index and the request alone, so that a 304 costs no file.

use crate::http::{Request, Response};
use crate::index::{Index, Instance, Study};

/// A strong validator for a representation: the index's time, the study, what was asked and how (`what`,
/// which names the request's `Accept` as received), and the identity, size and time of every file it comes
/// from. Another index or another file gives another tag.
pub fn etag(index: &Index, study: &Study, what: &str, instances: &[Instance]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(index.written().as_bytes());
    ctx.update(b"\0");
    ctx.update(study.uid().as_bytes());
    ctx.update(b"\0");
    ctx.update(what.as_bytes());
    for i in instances {
        ctx.update(format!("\0{}:{}:{}", i.uid(), i.size(), i.mtime()).as_bytes());
    }
    let digest = ctx.finish();
    let hex: String = digest.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `If-None-Match` (RFC 9110 §13.1.2): a 304 with the tag, and without a body, when the request names `tag`.
/// (It sends no `Content-Length`: the length of the 200 is not known without the files, and RFC 9110 §8.6
/// allows none.)
pub fn unchanged(req: &Request, tag: &str) -> Option<Response> {
    let matches = req.header("if-none-match").is_some_and(|list| {
        list.split(',').map(|t| t.trim()).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
    });
    matches.then(|| Response::new(304).with_header("ETag", tag.to_string()))
}

//! DICOMweb under a study token (SPEC §5, §5.2, §5.3): the capability checks, then WADO-RS retrieval of
//! instances, metadata, frames and bulk data, and the study-scoped QIDO-RS searches, every one of them
//! answered from the index and the memory-mapped files.
//!
//! Invariants: nothing is answered before `check_capability` has passed, and every resource is looked up
//! inside the study it returned; files are reached only through the index; instance bodies are streamed
//! from maps, never gathered in memory; every successful answer carries an `ETag` derived from the index.

pub mod qido;

use memmap2::Mmap;
use serde_json::Value;
use std::sync::Arc;

use crate::auth::Grant;
use crate::config::Tenant;
use crate::dicom::Tag;
use crate::dicom::Uid;
use crate::dicom::dataset::{self, DataSet};
use crate::dicom::frames::{FrameError, frames_of};
use crate::dicom::json::{BulkRef, data_set_to_json};
use crate::http::accept::{InstanceForm, Refused, negotiate_frames, negotiate_instances, negotiate_json};
use crate::http::multipart::{self, Part, Segment};
use crate::http::{ApiError, Body, Request, Response};
use crate::index::{Index, Instance, Series, Study};
use crate::time::now_secs;
use crate::token::Sealer;

/// Checks a study token against the request (SPEC §5.2) and returns the indexed study it opens.
/// Every failure is a 403 that says what failed but nothing of what the token holds.
pub fn check_capability<'a>(
    sealer: &Sealer,
    index: &'a Index,
    tenant: &Tenant,
    grant: &Grant,
    study_token: &str,
    study_uid: Uid,
) -> Result<&'a Study, ApiError> {
    let forbid = |why: &str| ApiError::Forbidden(why.to_string());
    let claims = sealer.open(study_token, now_secs()).map_err(|r| forbid(&r.to_string()))?;
    if claims.tenant != tenant.name {
        return Err(forbid("study token was minted for another tenant"));
    }
    if claims.study != study_uid.as_str() {
        return Err(forbid("study token was minted for another study"));
    }
    if !tenant.ignore_patient {
        let current = grant.patient().map(|p| p.id.as_str());
        if current.is_none() || current != claims.patient.as_deref() {
            return Err(forbid("study token is bound to another patient"));
        }
    }
    let study = index
        .study(study_uid)
        .ok_or_else(|| ApiError::NotFound(format!("study {} is not known", study_uid.as_str())))?;
    if !claims.patient_ids.iter().any(|id| *id == study.patient_id) {
        return Err(forbid("the study no longer belongs to the patient the token was minted for"));
    }
    Ok(study)
}

/// What a WADO-RS or QIDO-RS path under `…/studies/{st}` names (SPEC §5).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Study,
    StudyMetadata,
    SeriesSearch,
    Series(Uid<'a>),
    SeriesMetadata(Uid<'a>),
    InstanceSearch(Uid<'a>),
    Instance(Uid<'a>, Uid<'a>),
    InstanceMetadata(Uid<'a>, Uid<'a>),
    Frames(Uid<'a>, Uid<'a>, &'a str),
    Bulk(Uid<'a>, Uid<'a>, &'a [&'a str]),
}

/// Where the answers of one request live: the WADO-RS base of the study token, for the URLs we hand out.
pub struct Scope<'a> {
    pub index: &'a Index,
    pub req: &'a Request,
    /// `{base}/{tenant}/wado/{studyToken}`.
    pub base: String,
    pub study: &'a Study,
}

pub fn serve(scope: &Scope, target: Target) -> Result<Response, ApiError> {
    let study = scope.study;
    let response = match target {
        Target::Study => retrieve(scope, study.series.iter().flat_map(|s| &s.instances).collect(), false),
        Target::Series(se) => retrieve(scope, series(study, se)?.instances.iter().collect(), false),
        Target::Instance(se, sop) => retrieve(scope, vec![instance(study, se, sop)?.1], true),
        Target::StudyMetadata => {
            metadata(scope, study.series.iter().flat_map(|s| s.instances.iter().map(move |i| (s, i))).collect())
        }
        Target::SeriesMetadata(se) => {
            let s = series(study, se)?;
            metadata(scope, s.instances.iter().map(|i| (s, i)).collect())
        }
        Target::InstanceMetadata(se, sop) => metadata(scope, vec![instance(study, se, sop)?]),
        Target::SeriesSearch => search_series(scope),
        Target::InstanceSearch(se) => search_instances(scope, series(study, se)?),
        Target::Frames(se, sop, list) => frames(scope, instance(study, se, sop)?, list),
        Target::Bulk(se, sop, path) => bulk(scope, instance(study, se, sop)?, path),
    }?;
    Ok(not_modified(scope.req, response))
}

fn series<'a>(study: &'a Study, uid: Uid) -> Result<&'a Series, ApiError> {
    study.series(uid).ok_or_else(|| ApiError::NotFound(format!("series {} is not in this study", uid.as_str())))
}

fn instance<'a>(study: &'a Study, se: Uid, sop: Uid) -> Result<(&'a Series, &'a Instance), ApiError> {
    let s = series(study, se)?;
    let i = s
        .instance(sop)
        .ok_or_else(|| ApiError::NotFound(format!("instance {} is not in this series", sop.as_str())))?;
    Ok((s, i))
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::Malformed(m) => ApiError::BadRequest(m),
        Refused::NotAcceptable(m) => ApiError::NotAcceptable(m),
    }
}

/// Instances as stored: `multipart/related; type="application/dicom"`, or one bare `application/dicom`
/// body when one instance is asked for that way.
fn retrieve(scope: &Scope, instances: Vec<&Instance>, single_ok: bool) -> Result<Response, ApiError> {
    let mut stored: Vec<&str> = instances.iter().map(|i| i.transfer_syntax.as_str()).collect();
    stored.sort_unstable();
    stored.dedup();
    let form = negotiate_instances(scope.req.header("accept"), &stored, single_ok).map_err(refused)?;
    // The head promises every file's indexed length: check each file has it before promising, so a file
    // deleted or replaced since indexing answers an error instead of a 200 cut short. (One changed while it
    // is being sent still cuts the response short, and the connection is then closed.)
    for inst in &instances {
        crate::sys::map::check_size(&scope.index.file_path(inst), inst.size)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let files = |i: &&Instance| Segment::File(scope.index.file_path(i), i.size);
    let (content_type, body) = match form {
        InstanceForm::Single => {
            let inst = instances.first().ok_or_else(|| ApiError::Internal("no instance to send".into()))?;
            (
                format!("application/dicom; transfer-syntax={}", inst.transfer_syntax),
                multipart::stream(vec![files(inst)]),
            )
        }
        InstanceForm::Multipart => {
            let boundary = multipart::new_boundary()?;
            let parts = instances
                .iter()
                .map(|i| Part {
                    content_type: format!("application/dicom; transfer-syntax={}", i.transfer_syntax),
                    content: vec![files(i)],
                })
                .collect();
            (
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                multipart::body(&boundary, parts),
            )
        }
    };
    let tag = etag(scope, &format!("instances {form:?}"), &instances);
    Ok(Response::new(200).with_header("Content-Type", content_type).with_header("ETag", tag).with_body(body))
}

/// Transfer syntaxes whose data set is deflated (PS3.5 §A.5): the data set reader does not inflate them.
const DEFLATED: [&str; 3] = ["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.99"];

/// An instance's file, mapped, after checking it still has the indexed size: a file truncated under a
/// running server must answer an error, not a fault.
fn map_instance(scope: &Scope, inst: &Instance) -> Result<Arc<Mmap>, ApiError> {
    crate::sys::map::map_indexed(&scope.index.file_path(inst), inst.size)
        .map(Arc::new)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn read_data_set(scope: &Scope, inst: &Instance, map: &[u8]) -> Result<DataSet, ApiError> {
    if DEFLATED.contains(&inst.transfer_syntax.as_str()) {
        return Err(ApiError::NotAcceptable(format!(
            "instance {} is stored deflated ({}): it is served whole, as stored, but its metadata, frames and \
             bulk data are not read from it",
            inst.uid, inst.transfer_syntax
        )));
    }
    unfaulted(scope, inst, || dataset::read_data_set(map))?.map_err(|e| {
        ApiError::Internal(format!("indexed file {} no longer reads: {e}", scope.index.file_path(inst).display()))
    })
}

/// Runs `read` over an instance's map and fails if the file shrank meanwhile (see `mmap`'s SIGBUS guard):
/// what was read may then hold zeros that are not the file's.
fn unfaulted<T>(scope: &Scope, inst: &Instance, read: impl FnOnce() -> T) -> Result<T, ApiError> {
    crate::sys::map::unfaulted(read).map_err(|_| {
        ApiError::Internal(format!(
            "indexed file {} was truncated while it was read; run `smart-imaging check`",
            scope.index.file_path(inst).display()
        ))
    })
}

/// The `/bulk/…` path of an element, under its instance's URL.
fn bulk_uri(scope: &Scope, se: &Series, inst: &Instance, r: &BulkRef) -> String {
    let mut url = format!("{}/studies/{}/series/{}/instances/{}/bulk", scope.base, scope.study.uid, se.uid, inst.uid);
    for (tag, item) in r.path {
        url.push_str(&format!("/{:04X}{:04X}/{item}", tag.group, tag.element));
    }
    url.push_str(&format!("/{:04X}{:04X}", r.tag.group, r.tag.element));
    url
}

/// DICOM JSON (PS3.18 Annex F.2) of each instance, bulk data as URIs under the same study token.
fn metadata(scope: &Scope, instances: Vec<(&Series, &Instance)>) -> Result<Response, ApiError> {
    negotiate_json(scope.req.header("accept")).map_err(refused)?;
    let mut objects = Vec::with_capacity(instances.len());
    for (se, inst) in &instances {
        let map = map_instance(scope, inst)?;
        let data_set = read_data_set(scope, inst, &map)?;
        objects.push(unfaulted(scope, inst, || data_set_to_json(&map, &data_set, &|r| bulk_uri(scope, se, inst, &r)))?);
    }
    let only: Vec<&Instance> = instances.iter().map(|(_, i)| *i).collect();
    let tag = etag(scope, "metadata", &only);
    Ok(Response::json(200, "application/dicom+json", &Value::Array(objects)).with_header("ETag", tag))
}

fn search_series(scope: &Scope) -> Result<Response, ApiError> {
    negotiate_json(scope.req.header("accept")).map_err(refused)?;
    let q = qido::Query::parse(&scope.req.query, true)?;
    let retrieve_base = format!("{}/studies/{}", scope.base, scope.study.uid);
    let found = qido::series(scope.study, &q, &retrieve_base);
    let all: Vec<&Instance> = scope.study.series.iter().flat_map(|s| &s.instances).collect();
    let tag = etag(scope, &format!("series?{}", scope.req.query), &all);
    Ok(Response::json(200, "application/dicom+json", &Value::Array(found)).with_header("ETag", tag))
}

fn search_instances(scope: &Scope, se: &Series) -> Result<Response, ApiError> {
    negotiate_json(scope.req.header("accept")).map_err(refused)?;
    let q = qido::Query::parse(&scope.req.query, false)?;
    let retrieve_base = format!("{}/studies/{}", scope.base, scope.study.uid);
    // Rows, Columns and Bits Allocated are not in the index: read them from each file's header. A file that
    // cannot be read leaves them empty here; retrieving it reports the fault.
    let image = |inst: &Instance| {
        let read = || -> Option<qido::ImageAttrs> {
            let map = map_instance(scope, inst).ok()?;
            let ds = dataset::read_data_set(&map).ok()?;
            let us = |tag| ds.get(tag).and_then(|e| e.first_unsigned(&map));
            Some(qido::ImageAttrs {
                rows: us(Tag::new(0x0028, 0x0010)),
                columns: us(Tag::new(0x0028, 0x0011)),
                bits_allocated: us(Tag::new(0x0028, 0x0100)),
            })
        };
        unfaulted(scope, inst, read).ok().flatten().unwrap_or_default()
    };
    let found = qido::instances(scope.study, se, &q, &retrieve_base, &image);
    let tag =
        etag(scope, &format!("instances {}?{}", se.uid, scope.req.query), &se.instances.iter().collect::<Vec<_>>());
    Ok(Response::json(200, "application/dicom+json", &Value::Array(found)).with_header("ETag", tag))
}

/// Frame numbers from `1,2,…` (PS3.18 §8.2.6: 1-based, in the order asked).
fn frame_list(list: &str) -> Result<Vec<usize>, ApiError> {
    let bad = || ApiError::BadRequest(format!("{list:?} is not a list of frame numbers"));
    let numbers: Vec<usize> =
        list.split(',').map(|n| n.trim().parse::<usize>().map_err(|_| bad())).collect::<Result<_, _>>()?;
    if numbers.is_empty() || numbers.len() > 10_000 || numbers.contains(&0) {
        return Err(bad());
    }
    Ok(numbers)
}

fn frame_error(scope: &Scope, inst: &Instance, e: FrameError) -> ApiError {
    match e {
        FrameError::NotFound(m) => ApiError::NotFound(m),
        FrameError::Unsupported(m) => ApiError::NotAcceptable(format!("frames of this instance cannot be served: {m}")),
        other => ApiError::Internal(format!("{}: {other}", scope.index.file_path(inst).display())),
    }
}

/// Frames as `multipart/related`, one part per frame, in the order asked (PS3.18 §8.7.3.5.3).
fn frames(scope: &Scope, (_, inst): (&Series, &Instance), list: &str) -> Result<Response, ApiError> {
    let numbers = frame_list(list)?;
    let map = map_instance(scope, inst)?;
    let data_set = read_data_set(scope, inst, &map)?;
    let frames = unfaulted(scope, inst, || frames_of(&map, &data_set))?.map_err(|e| frame_error(scope, inst, e))?;
    let media =
        negotiate_frames(scope.req.header("accept"), &frames.transfer_syntax, frames.encapsulated).map_err(refused)?;
    let mut parts = Vec::with_capacity(numbers.len());
    for n in &numbers {
        let ranges = frames.frames.get(n - 1).ok_or_else(|| {
            ApiError::NotFound(format!("frame {n} is out of range: the instance has {}", frames.frames.len()))
        })?;
        parts.push(frame_part(&map, media, &frames.transfer_syntax, ranges));
    }
    let boundary = multipart::new_boundary()?;
    let tag = etag(scope, &format!("frames {list} {media}"), &[inst]);
    Ok(Response::new(200)
        .with_header("Content-Type", format!("multipart/related; type=\"{media}\"; boundary={boundary}"))
        .with_header("ETag", tag)
        .with_body(multipart::body(&boundary, parts)))
}

/// One frame as a part: its ranges of the map, in order.
fn frame_part(map: &Arc<Mmap>, media: &str, syntax: &str, ranges: &[std::ops::Range<u64>]) -> Part {
    Part {
        content_type: format!("{media}; transfer-syntax={syntax}"),
        content: ranges.iter().map(|r| Segment::Slice(Arc::clone(map), r.start as usize..r.end as usize)).collect(),
    }
}

/// Bulk data named by a BulkDataURI: the element's value as one part, or for encapsulated Pixel Data one part
/// per frame.
fn bulk(scope: &Scope, (_, inst): (&Series, &Instance), path: &[&str]) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("no such bulk data".into());
    let map = map_instance(scope, inst)?;
    let data_set = read_data_set(scope, inst, &map)?;
    let (steps, last) = path.split_last().map(|(l, s)| (s, l)).ok_or_else(not_found)?;
    if steps.len() % 2 != 0 {
        return Err(not_found());
    }
    let mut elements = &data_set.elements;
    for pair in steps.chunks(2) {
        let tag = parse_tag(pair[0]).ok_or_else(not_found)?;
        let item: usize = pair[1].parse().map_err(|_| not_found())?;
        let element = dataset::find(elements, tag).ok_or_else(not_found)?;
        elements = element.items().get(item).ok_or_else(not_found)?;
    }
    let tag = parse_tag(last).ok_or_else(not_found)?;
    let element = dataset::find(elements, tag).ok_or_else(not_found)?;
    let pixel_data = steps.is_empty() && tag == Tag::new(0x7FE0, 0x0010);
    let boundary = multipart::new_boundary()?;
    let (media, parts) = match &element.value {
        dataset::Value::Fragments(_) if pixel_data => {
            let frames =
                unfaulted(scope, inst, || frames_of(&map, &data_set))?.map_err(|e| frame_error(scope, inst, e))?;
            let media = negotiate_frames(scope.req.header("accept"), &frames.transfer_syntax, true).map_err(refused)?;
            let parts =
                frames.frames.iter().map(|ranges| frame_part(&map, media, &frames.transfer_syntax, ranges)).collect();
            (media, parts)
        }
        dataset::Value::Bytes(range) => {
            let media =
                negotiate_frames(scope.req.header("accept"), &data_set.transfer_syntax, false).map_err(refused)?;
            let content_type = if pixel_data {
                format!("{media}; transfer-syntax={}", data_set.transfer_syntax)
            } else {
                media.to_string()
            };
            (media, vec![Part { content_type, content: vec![Segment::Slice(Arc::clone(&map), range.clone())] }])
        }
        _ => return Err(not_found()),
    };
    let etag = etag(scope, &format!("bulk {} {media}", path.join("/")), &[inst]);
    Ok(Response::new(200)
        .with_header("Content-Type", format!("multipart/related; type=\"{media}\"; boundary={boundary}"))
        .with_header("ETag", etag)
        .with_body(multipart::body(&boundary, parts)))
}

fn parse_tag(s: &str) -> Option<Tag> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let n = u32::from_str_radix(s, 16).ok()?;
    Some(Tag::new((n >> 16) as u16, (n & 0xFFFF) as u16))
}

/// A strong validator for a representation: the index's time, what was asked and how, and the identity,
/// size and time of every file it comes from. Another index or another file gives another tag.
fn etag(scope: &Scope, what: &str, instances: &[&Instance]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(scope.index.file.written.as_bytes());
    ctx.update(b"\0");
    ctx.update(scope.study.uid.as_bytes());
    ctx.update(b"\0");
    ctx.update(what.as_bytes());
    for i in instances {
        ctx.update(format!("\0{}:{}:{}", i.uid, i.size, i.mtime).as_bytes());
    }
    let digest = ctx.finish();
    let hex: String = digest.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// `If-None-Match` (RFC 9110 §13.1.2): a 304 without a body when the request names the response's ETag.
fn not_modified(req: &Request, response: Response) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists() {
        assert_eq!(frame_list("1").unwrap(), vec![1]);
        assert_eq!(frame_list("3,1,2").unwrap(), vec![3, 1, 2]);
        for bad in ["", "0", "1,,2", "a", "-1", "1.5"] {
            assert!(frame_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        assert_eq!(parse_tag("7FE00010"), Some(Tag::new(0x7FE0, 0x0010)));
        assert_eq!(parse_tag("7fe00010"), Some(Tag::new(0x7FE0, 0x0010)));
        assert_eq!(parse_tag("7FE0001"), None);
        assert_eq!(parse_tag("7FE0001G"), None);
    }
}

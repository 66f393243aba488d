//! WADO-RS retrieval of instances (PS3.18 §10.4): a study, a series or one instance, as stored or, for the
//! native transfer syntaxes, transcoded to Explicit VR Little Endian (`dicom::transcode`).
//!
//! Invariants: the head promises only what every file can deliver (each size is checked first, and each
//! transcoded length is measured before the head is made); a study or series that cannot be sent whole in
//! the negotiated syntax is a 406, never a partial body; instance bodies are streamed from maps, never
//! gathered in memory.

use super::context::{Context, check_file, map_instance, refused, unfaulted};
use super::stream::{self, Segment};
use crate::dicom::transcode::plan_file;
use crate::dicom::transfer_syntax::{EXPLICIT_VR_LITTLE_ENDIAN, is_native};
use crate::http::accept::{InstanceForm, Representation, negotiate_instances};
use crate::http::multipart::{self, Part};
use crate::http::{ApiError, Response};
use crate::index::Instance;

/// Instances as `multipart/related; type="application/dicom"`, or one bare `application/dicom` body when
/// one instance is asked for that way, each in the transfer syntax negotiated for it.
pub fn retrieve(cx: &Context, instances: Vec<Instance>, single_ok: bool) -> Result<Response, ApiError> {
    let mut stored: Vec<&str> = instances.iter().map(|i| i.transfer_syntax()).collect();
    stored.sort_unstable();
    stored.dedup();
    let (form, representation) = negotiate_instances(cx.req.header("accept"), &stored, single_ok).map_err(refused)?;
    let (tag, unchanged) = cx.tag(&format!("instances {form:?} {representation:?}"), &instances);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    // The head promises every file's indexed length and instance: check each file before promising, so a file
    // deleted or replaced since indexing answers an error instead of a 200 cut short or another instance in
    // its place, and no part of a study is sent when one of its files fails. (One changed while it is being
    // sent still cuts the response short, and the connection is then closed.)
    for inst in &instances {
        check_file(cx, inst)?;
    }
    let mut contents = Vec::with_capacity(instances.len());
    for inst in &instances {
        contents.push(content(cx, inst, representation)?);
    }
    let (content_type, body) = match form {
        InstanceForm::Single => {
            let (syntax, segment) = contents.pop().ok_or_else(|| ApiError::Internal("no instance to send".into()))?;
            (format!("application/dicom; transfer-syntax={syntax}"), stream::stream(vec![segment]))
        }
        InstanceForm::Multipart => {
            let boundary = multipart::new_boundary()?;
            let parts = contents
                .into_iter()
                .map(|(syntax, segment)| Part {
                    content_type: format!("application/dicom; transfer-syntax={syntax}"),
                    content: vec![segment],
                })
                .collect();
            (
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                stream::multipart(&boundary, parts),
            )
        }
    };
    Ok(Response::new(200).with_header("Content-Type", content_type).with_header("ETag", tag).with_body(body))
}

/// The transfer syntax one instance is sent in, and its body: the file as stored, or transcoded to
/// Explicit VR Little Endian with the length measured now, or the first time it was asked for.
fn content<'a>(
    cx: &Context,
    inst: &Instance<'a>,
    representation: Representation,
) -> Result<(&'a str, Segment), ApiError> {
    let path = cx.index.file_path(inst);
    let stored = inst.transfer_syntax();
    let transcode =
        representation != Representation::AsStored && is_native(stored) && stored != EXPLICIT_VR_LITTLE_ENDIAN;
    if !transcode {
        return Ok((stored, Segment::File(path, inst.size())));
    }
    if let Some(len) = cx.lengths.transcoded.get(&inst.path()) {
        return Ok((EXPLICIT_VR_LITTLE_ENDIAN, Segment::Transcoded { path, size: inst.size(), len }));
    }
    let map = map_instance(cx, inst)?;
    match unfaulted(cx, inst, || plan_file(&map, None))? {
        Ok(plan) => {
            cx.lengths.transcoded.put(&inst.path(), plan.len());
            Ok((EXPLICIT_VR_LITTLE_ENDIAN, Segment::Transcoded { path, size: inst.size(), len: plan.len() }))
        }
        Err(e) if representation == Representation::ExplicitOnly => Err(ApiError::NotAcceptable(format!(
            "instance {} ({stored}) cannot be sent as Explicit VR Little Endian: {e}",
            inst.uid()
        ))),
        Err(e) => {
            log::warn!("{}: sent as stored, it cannot be transcoded: {e}", path.display());
            Ok((stored, Segment::File(path, inst.size())))
        }
    }
}

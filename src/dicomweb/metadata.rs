//! Metadata (DICOM JSON, PS3.18 Annex F.2) of instances, and the bulk data its BulkDataURIs name.
//!
//! Invariant: bulk data URIs stay under the same study token, and a bulk path is resolved only inside the
//! instance's own data set.

use serde_json::Value;

use super::context::{Context, load, refused, unfaulted};
use super::frames::{foreseen_media, frame_error, frame_part, native_syntaxes};
use super::stream;
use crate::dicom::dataset;
use crate::dicom::frames::frames_of;
use crate::dicom::json::{BulkRef, data_set_to_json};
use crate::dicom::transfer_syntax::is_native;
use crate::dicom::{Tag, tags};
use crate::http::accept::{negotiate_frames, negotiate_json};
use crate::http::multipart::{self, Part};
use crate::http::{ApiError, Response};
use crate::index::{Instance, Series};

/// The `/bulk/…` path of an element, under its instance's URL.
fn bulk_uri(cx: &Context, se: &Series, inst: &Instance, r: &BulkRef) -> String {
    let study = cx.study.uid();
    let mut url = format!("{}/studies/{study}/series/{}/instances/{}/bulk", cx.base, se.uid(), inst.uid());
    for (tag, item) in r.path {
        url.push_str(&format!("/{:04X}{:04X}/{item}", tag.group, tag.element));
    }
    url.push_str(&format!("/{:04X}{:04X}", r.tag.group, r.tag.element));
    url
}

/// DICOM JSON (PS3.18 Annex F.2) of each instance, bulk data as URIs under the same study token.
pub fn metadata(cx: &Context, instances: Vec<(Series, Instance)>) -> Result<Response, ApiError> {
    negotiate_json(cx.req.header("accept")).map_err(refused)?;
    let only: Vec<Instance> = instances.iter().map(|(_, i)| *i).collect();
    let (tag, unchanged) = cx.tag("metadata", &only);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    let mut objects = Vec::with_capacity(instances.len());
    for (se, inst) in &instances {
        let (bytes, data_set) = load(cx, inst)?;
        objects.push(unfaulted(cx, inst, || data_set_to_json(&bytes, &data_set, &|r| bulk_uri(cx, se, inst, &r)))?);
    }
    Ok(Response::json(200, "application/dicom+json", &Value::Array(objects)).with_header("ETag", tag))
}

/// Bulk data named by a BulkDataURI: the element's value as one part, or for encapsulated Pixel Data one part
/// per frame.
pub fn bulk(cx: &Context, (_, inst): (Series, Instance), path: &[&str]) -> Result<Response, ApiError> {
    // Encapsulated frames only for the Pixel Data of a compressed file; any other value as native bytes.
    let pixel_data = path.len() == 1 && parse_tag(path[0]) == Some(tags::PIXEL_DATA);
    let foreseen = foreseen_media(cx, &inst, pixel_data && !is_native(inst.transfer_syntax()))?;
    let (etag, unchanged) = cx.tag(&format!("bulk {} {foreseen}", path.join("/")), &[inst]);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    let not_found = || ApiError::NotFound("no such bulk data".into());
    let (map, data_set) = load(cx, &inst)?;
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
    let pixel_data = steps.is_empty() && tag == tags::PIXEL_DATA;
    let boundary = multipart::new_boundary()?;
    let (media, parts) = match &element.value {
        dataset::Value::Fragments(_) if pixel_data => {
            let frames = unfaulted(cx, &inst, || frames_of(&map, &data_set))?.map_err(|e| frame_error(cx, &inst, e))?;
            let syntaxes = [frames.transfer_syntax.as_str()];
            let media = negotiate_frames(cx.req.header("accept"), &syntaxes, true).map_err(refused)?;
            let parts = frames.frames.iter().map(|ranges| frame_part(&map, media, &frames, ranges)).collect();
            (media, parts)
        }
        dataset::Value::Bytes(range) => {
            // Bulk data is sent little endian (PS3.18 §8.7.3.3.2), as Explicit VR Little Endian holds it.
            let syntaxes = native_syntaxes(&data_set.transfer_syntax);
            let media = negotiate_frames(cx.req.header("accept"), &syntaxes, false).map_err(refused)?;
            let content_type =
                if pixel_data { format!("{media}; transfer-syntax={}", syntaxes[0]) } else { media.to_string() };
            (media, vec![Part { content_type, content: vec![map.segment(range.clone(), element.swap_size())] }])
        }
        _ => return Err(not_found()),
    };
    Ok(Response::new(200)
        .with_header("Content-Type", format!("multipart/related; type=\"{media}\"; boundary={boundary}"))
        .with_header("ETag", etag)
        .with_body(stream::multipart(&boundary, parts)))
}

fn parse_tag(s: &str) -> Option<Tag> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let n = u32::from_str_radix(s, 16).ok()?;
    Some(Tag::new((n >> 16) as u16, (n & 0xFFFF) as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(parse_tag("7FE00010"), Some(Tag::new(0x7FE0, 0x0010)));
        assert_eq!(parse_tag("7fe00010"), Some(Tag::new(0x7FE0, 0x0010)));
        assert_eq!(parse_tag("7FE0001"), None);
        assert_eq!(parse_tag("7FE0001G"), None);
    }
}

//! Frames of an instance (PS3.18 §8.7.3.5.3), one part each, in the order asked, straight from the map.
//!
//! Invariant: a frame number out of range is a 404, never an empty part.

use super::context::{Context, InstanceBytes, load, refused, unfaulted};
use super::stream::{self, Segment};
use crate::dicom::frames::{FrameError, Frames, frames_of};
use crate::dicom::transfer_syntax::{EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, is_native};
use crate::http::accept::negotiate_frames;
use crate::http::multipart::{self, Part};
use crate::http::{ApiError, Response};
use crate::index::{Instance, Series};

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

pub fn frame_error(cx: &Context, inst: &Instance, e: FrameError) -> ApiError {
    match e {
        FrameError::NotFound(m) => ApiError::NotFound(m),
        FrameError::Unsupported(m) => ApiError::NotAcceptable(format!("frames of this instance cannot be served: {m}")),
        other => ApiError::Internal(format!("{}: {other}", cx.index.file_path(inst).display())),
    }
}

/// Frames as `multipart/related`, one part per frame, in the order asked (PS3.18 §8.7.3.5.3).
pub fn frames(cx: &Context, (_, inst): (Series, Instance), list: &str) -> Result<Response, ApiError> {
    let numbers = frame_list(list)?;
    // The media type as the index foresees it (the file's own transfer syntax, native or encapsulated), so
    // that a conditional request is answered before the file is read.
    let media = foreseen_media(cx, &inst, !is_native(inst.transfer_syntax()))?;
    let (tag, unchanged) = cx.tag(&format!("frames {list} {media}"), &[inst]);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    let (map, data_set) = load(cx, &inst)?;
    let frames = unfaulted(cx, &inst, || frames_of(&map, &data_set))?.map_err(|e| frame_error(cx, &inst, e))?;
    let syntaxes = if frames.encapsulated {
        vec![frames.transfer_syntax.as_str()]
    } else {
        native_syntaxes(&frames.transfer_syntax)
    };
    let media = negotiate_frames(cx.req.header("accept"), &syntaxes, frames.encapsulated).map_err(refused)?;
    let mut parts = Vec::with_capacity(numbers.len());
    for n in &numbers {
        let ranges = frames.frames.get(n - 1).ok_or_else(|| {
            ApiError::NotFound(format!("frame {n} is out of range: the instance has {}", frames.frames.len()))
        })?;
        parts.push(frame_part(&map, media, &frames, ranges));
    }
    let boundary = multipart::new_boundary()?;
    Ok(Response::new(200)
        .with_header("Content-Type", format!("multipart/related; type=\"{media}\"; boundary={boundary}"))
        .with_header("ETag", tag)
        .with_body(stream::multipart(&boundary, parts)))
}

/// The media type pixel data (`encapsulated` or not) or bulk data of `inst` will be sent as, foreseen from the
/// index's transfer syntax of its file, so that a conditional request is answered before the file is read.
pub fn foreseen_media<'r>(cx: &'r Context, inst: &Instance, encapsulated: bool) -> Result<&'r str, ApiError> {
    let indexed = inst.transfer_syntax();
    let syntaxes = if encapsulated { vec![indexed] } else { native_syntaxes(indexed) };
    negotiate_frames(cx.req.header("accept"), &syntaxes, encapsulated).map_err(refused)
}

/// The transfer syntaxes native pixel data or bulk data can be asked in, the one named in each part first:
/// it is sent little endian, as Explicit VR Little Endian holds it (PS3.18 §8.7.3.3.2), which is also how a
/// little endian file stores it, so that file's own syntax may be asked for too.
pub fn native_syntaxes(stored: &str) -> Vec<&str> {
    match stored {
        EXPLICIT_VR_LITTLE_ENDIAN | EXPLICIT_VR_BIG_ENDIAN => vec![EXPLICIT_VR_LITTLE_ENDIAN],
        other => vec![EXPLICIT_VR_LITTLE_ENDIAN, other],
    }
}

/// One frame as a part: its ranges of the instance's bytes, in order, little endian.
pub fn frame_part(
    bytes: &InstanceBytes,
    media: &str,
    frames: &Frames,
    ranges: &[std::ops::Range<u64>],
) -> Part<Segment> {
    let syntax = if frames.encapsulated { frames.transfer_syntax.as_str() } else { EXPLICIT_VR_LITTLE_ENDIAN };
    Part {
        content_type: format!("{media}; transfer-syntax={syntax}"),
        content: ranges.iter().map(|r| bytes.segment(r.start as usize..r.end as usize, frames.swap)).collect(),
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
}

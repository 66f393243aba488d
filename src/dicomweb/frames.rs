//! Frames of an instance (PS3.18 §8.7.3.5.3), one part each, in the order asked, straight from the map.
//!
//! Invariant: a frame number out of range is a 404, never an empty part.

use memmap2::Mmap;
use std::sync::Arc;

use super::etag::etag;
use super::scope::{Scope, map_instance, read_data_set, refused, unfaulted};
use crate::dicom::frames::{FrameError, frames_of};
use crate::http::accept::negotiate_frames;
use crate::http::multipart::{self, Part, Segment};
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

pub fn frame_error(scope: &Scope, inst: &Instance, e: FrameError) -> ApiError {
    match e {
        FrameError::NotFound(m) => ApiError::NotFound(m),
        FrameError::Unsupported(m) => ApiError::NotAcceptable(format!("frames of this instance cannot be served: {m}")),
        other => ApiError::Internal(format!("{}: {other}", scope.index.file_path(inst).display())),
    }
}

/// Frames as `multipart/related`, one part per frame, in the order asked (PS3.18 §8.7.3.5.3).
pub fn frames(scope: &Scope, (_, inst): (&Series, &Instance), list: &str) -> Result<Response, ApiError> {
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
pub fn frame_part(map: &Arc<Mmap>, media: &str, syntax: &str, ranges: &[std::ops::Range<u64>]) -> Part {
    Part {
        content_type: format!("{media}; transfer-syntax={syntax}"),
        content: ranges.iter().map(|r| Segment::Slice(Arc::clone(map), r.start as usize..r.end as usize)).collect(),
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

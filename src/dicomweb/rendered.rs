//! Rendered frames and thumbnails (PS3.18 §8.3.5 and §9.5) as PNG: the frame found as the frames handler
//! finds it, its image attributes read from the data set, and the image made by `pixels`.
//!
//! Invariants: one frame is read, never the whole multi-frame instance; encapsulated (compressed) frames are
//! never decoded (406); the `ETag` and a 304 come before any file is touched; the query parameters are
//! checked (400) before that too.

use std::borrow::Cow;

use super::context::{Context, Rendition, load, refused, unfaulted};
use super::frames::frame_error;
use super::pixels::{self, Image, Photometric, Window, function_named};
use crate::dicom::dataset::DataSet;
use crate::dicom::frames::frames_of;
use crate::dicom::tags::{
    BITS_ALLOCATED, BITS_STORED, COLUMNS, PHOTOMETRIC_INTERPRETATION, PIXEL_DATA, PIXEL_REPRESENTATION,
    PLANAR_CONFIGURATION, RESCALE_INTERCEPT, RESCALE_SLOPE, ROWS, SAMPLES_PER_PIXEL, Tag, VOI_LUT_FUNCTION,
    WINDOW_CENTER, WINDOW_WIDTH,
};
use crate::http::accept::negotiate_rendered;
use crate::http::{ApiError, Response, parse_query};
use crate::index::{Instance, Series};

/// The side a thumbnail fits in when the request names no viewport.
const THUMBNAIL_SIDE: usize = 128;
/// The largest viewport side asked for that is honoured as asked; a frame is never enlarged anyway.
const MAX_VIEWPORT_SIDE: usize = 16_384;
/// The most pixels a frame may have to be rendered: 64 Mi, 64 MiB of gray or 192 MiB of RGB made at once.
const MAX_PIXELS: usize = 1 << 26;

/// What the query asks of the image (PS3.18 §8.3.5.1): `window`, `viewport` and `accept`; `quality` means
/// nothing for PNG, and nothing is burnt in for `annotation`, so they and any other parameter are ignored.
#[derive(Debug, Default, PartialEq)]
struct Asked {
    window: Option<Window>,
    viewport: Option<(usize, usize)>,
    /// The `accept` query parameter, which takes the place of the `Accept` header (PS3.18 §8.3.3.1).
    accept: Option<String>,
}

fn asked(query: &str) -> Result<Asked, ApiError> {
    let mut asked = Asked::default();
    for (name, value) in parse_query(query)? {
        match name.as_str() {
            "window" => asked.window = Some(Window::parse(&value).map_err(ApiError::BadRequest)?),
            "viewport" => asked.viewport = Some(viewport(&value)?),
            "accept" => asked.accept = Some(value),
            _ => {}
        }
    }
    Ok(asked)
}

/// The `viewport` query parameter: `width,height` in pixels (the source-region form, six values, is not
/// offered).
fn viewport(value: &str) -> Result<(usize, usize), ApiError> {
    let side = |s: &str| s.trim().parse::<usize>().ok().filter(|n| (1..=MAX_VIEWPORT_SIDE).contains(n));
    match value.split(',').collect::<Vec<_>>().as_slice() {
        [w, h] => side(w).zip(side(h)),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::BadRequest(format!("viewport={value:?} is not width,height, each 1 to {MAX_VIEWPORT_SIDE} pixels"))
    })
}

/// Frame `n` (the first when `None`) of an instance as PNG, at its own size or scaled down to fit the
/// viewport; a thumbnail fits 128 × 128 unless the viewport says otherwise.
pub fn rendered(
    cx: &Context,
    (_, inst): (Series, Instance),
    frame: Option<&str>,
    rendition: Rendition,
) -> Result<Response, ApiError> {
    let n = match frame {
        None => 1,
        Some(n) => n.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            ApiError::BadRequest(format!("{n:?} is not one frame number: frames are rendered one at a time"))
        })?,
    };
    let asked = asked(&cx.req.query)?;
    let accept = asked.accept.as_deref().or(cx.req.header("accept"));
    let media = negotiate_rendered(accept).map_err(refused)?;
    let viewport = match (rendition, asked.viewport) {
        (_, Some(viewport)) => Some(viewport),
        (Rendition::Thumbnail, None) => Some((THUMBNAIL_SIDE, THUMBNAIL_SIDE)),
        (Rendition::Rendered, None) => None,
    };
    let what = format!("rendered {n} {media} viewport={viewport:?} window={:?}", asked.window);
    let (tag, unchanged) = cx.tag(&what, &[inst]);
    if let Some(not_modified) = unchanged {
        return Ok(not_modified);
    }
    let (bytes, data_set) = load(cx, &inst)?;
    let frames = unfaulted(cx, &inst, || frames_of(&bytes, &data_set))?.map_err(|e| frame_error(cx, &inst, e))?;
    if frames.encapsulated {
        return Err(ApiError::NotAcceptable(format!(
            "frames of instance {} are compressed ({}) and are not rendered here; retrieve the frame itself \
             with Accept: multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
            inst.uid(),
            frames.transfer_syntax
        )));
    }
    let ranges = frames.frames.get(n - 1).ok_or_else(|| {
        ApiError::NotFound(format!("frame {n} is out of range: the instance has {}", frames.frames.len()))
    })?;
    let (image, stored_window) = image_of(&bytes, &data_set).map_err(|m| not_rendered(&inst, &m))?;
    let window = asked.window.or(stored_window);
    let made = unfaulted(cx, &inst, || {
        let frame = frame_bytes(&bytes, ranges, frames.swap);
        pixels::render(&image, &frame, window)
    })?
    .map_err(|m| not_rendered(&inst, &m))?;
    let made = match viewport {
        Some(viewport) => pixels::fit(made, viewport),
        None => made,
    };
    let png = pixels::png(&made).map_err(|e| ApiError::Internal(format!("PNG of instance {}: {e}", inst.uid())))?;
    Ok(Response::bytes(200, media, png).with_header("ETag", tag))
}

fn not_rendered(inst: &Instance, why: &str) -> ApiError {
    ApiError::NotAcceptable(format!("instance {} cannot be rendered: {why}", inst.uid()))
}

/// A native frame's bytes, little endian: borrowed as they lie, or copied with their numbers of `swap` bytes
/// reversed (a big endian file), as the frames handler sends them.
fn frame_bytes<'b>(bytes: &'b [u8], ranges: &[std::ops::Range<u64>], swap: usize) -> Cow<'b, [u8]> {
    let slice = |r: &std::ops::Range<u64>| bytes.get(r.start as usize..r.end as usize).unwrap_or_default();
    if let [range] = ranges
        && swap <= 1
    {
        return Cow::Borrowed(slice(range));
    }
    let mut out: Vec<u8> = ranges.iter().flat_map(|r| slice(r).iter().copied()).collect();
    if swap > 1 {
        out.chunks_exact_mut(swap).for_each(|number| number.reverse());
    }
    Cow::Owned(out)
}

/// The image attributes of a data set, and the first window it names (Window Center and Width, and VOI LUT
/// Function, PS3.3 §C.11.2); an unusable stored window is no window.
fn image_of(file: &[u8], data_set: &DataSet) -> Result<(Image, Option<Window>), String> {
    if data_set.get(PIXEL_DATA).is_none() {
        return Err("its pixels are Float or Double Float Pixel Data".into());
    }
    let unsigned = |tag: Tag| data_set.get(tag).and_then(|e| e.first_unsigned(file));
    let decimal = |tag: Tag| data_set.get(tag).and_then(|e| e.first_decimal(file));
    let code = |tag: Tag| data_set.get(tag).map(|e| String::from_utf8_lossy(e.first_code(file)).into_owned());
    let size = |tag: Tag, name: &str| {
        unsigned(tag).and_then(|n| usize::try_from(n).ok()).ok_or_else(|| format!("it has no usable {name} {tag}"))
    };
    let (rows, columns) = (size(ROWS, "Rows")?, size(COLUMNS, "Columns")?);
    if rows.saturating_mul(columns) > MAX_PIXELS {
        return Err(format!("its frames of {rows} × {columns} pixels are more than {MAX_PIXELS} pixels"));
    }
    let bits_allocated = unsigned(BITS_ALLOCATED).and_then(|n| u16::try_from(n).ok()).ok_or("no Bits Allocated")?;
    let bits_stored = unsigned(BITS_STORED).and_then(|n| u16::try_from(n).ok()).unwrap_or(bits_allocated);
    let samples = unsigned(SAMPLES_PER_PIXEL).unwrap_or(1);
    let photometric = code(PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into());
    let photometric = match (photometric.as_str(), samples) {
        ("MONOCHROME1", 1) => Photometric::Monochrome1,
        ("MONOCHROME2", 1) => Photometric::Monochrome2,
        ("RGB", 3) => Photometric::Rgb,
        (other, samples) => {
            return Err(format!(
                "Photometric Interpretation {other} with {samples} samples per pixel is not rendered \
                 (MONOCHROME1, MONOCHROME2 and RGB are)"
            ));
        }
    };
    let image = Image {
        rows,
        columns,
        bits_allocated,
        bits_stored,
        signed: unsigned(PIXEL_REPRESENTATION) == Some(1),
        photometric,
        planar: unsigned(PLANAR_CONFIGURATION) == Some(1),
        slope: decimal(RESCALE_SLOPE).filter(|s| *s != 0.0).unwrap_or(1.0),
        intercept: decimal(RESCALE_INTERCEPT).unwrap_or(0.0),
    };
    let function = code(VOI_LUT_FUNCTION).map_or(Some(pixels::VoiFunction::Linear), |f| function_named(&f));
    let window = match (decimal(WINDOW_CENTER), decimal(WINDOW_WIDTH), function) {
        (Some(center), Some(width), Some(function)) => Window::new(center, width, function),
        _ => None,
    };
    Ok((image, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let got = asked("window=40,400&viewport=64,32&accept=image%2Fpng&quality=90&annotation=patient").unwrap();
        assert_eq!(got.window, Window::parse("40,400").ok());
        assert_eq!(got.viewport, Some((64, 32)));
        assert_eq!(got.accept.as_deref(), Some("image/png"));
        assert_eq!(asked("").unwrap(), Asked::default());
        for bad in ["window=40", "window=40,0", "viewport=0,10", "viewport=10", "viewport=1,2,3,4,5,6", "viewport=a,b"]
        {
            assert!(matches!(asked(bad), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn big_endian_frames_are_swapped_and_pieces_joined() {
        let file = [9, 1, 2, 3, 4, 9];
        assert_eq!(&*frame_bytes(&file, &[1..5], 1), &[1, 2, 3, 4]);
        assert_eq!(&*frame_bytes(&file, &[1..5], 2), &[2, 1, 4, 3]);
        assert_eq!(&*frame_bytes(&file, &[1..3, 3..5], 1), &[1, 2, 3, 4]);
    }
}

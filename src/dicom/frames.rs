//! Where each frame of an instance's pixel data lies in the file, so that WADO-RS can send frames
//! (PS3.18 §10.4.1.1.5) straight from the memory map: for native pixel data from the Image Pixel
//! attributes (PS3.5 §8.1.1, PS3.3 §C.7.6.3), for encapsulated pixel data from its fragments and offset
//! tables (PS3.5 §A.4).
//!
//! Invariants: every range returned lies inside the file and inside the Pixel Data value; frames are
//! never copied nor decoded; a count that does not add up is an error, never a guess. Knows nothing
//! of HTTP or media types: it reports the transfer syntax and whether the data is encapsulated, and the
//! caller chooses. It reads the data set through `dataset` and imports nothing above it.

use std::fmt;
use std::ops::Range;

use super::dataset::{DataSet, Element, Value};
use super::error::DicomError;
use super::tags::{
    BITS_ALLOCATED, COLUMNS, DOUBLE_FLOAT_PIXEL_DATA, EXTENDED_OFFSET_TABLE, FLOAT_PIXEL_DATA, NUMBER_OF_FRAMES,
    PHOTOMETRIC_INTERPRETATION, PIXEL_DATA, ROWS, SAMPLES_PER_PIXEL, Tag,
};

/// The frames of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frames {
    pub transfer_syntax: String,
    /// Whether the pixel data is encapsulated (PS3.5 §A.4), that is, each frame a compressed bitstream.
    pub encapsulated: bool,
    /// The file byte ranges of each frame, in frame order; a frame's bytes are its ranges concatenated.
    /// Native frames are one range each. An encapsulated frame has one range per fragment it spans: the
    /// fragment values, without item headers.
    pub frames: Vec<Vec<Range<u64>>>,
    /// The size of the numbers whose bytes are reversed to send native frames little endian, as PS3.18
    /// §8.7.3.3.2 wants them: the pixel data VR's number size in a big endian file (2 for OW), else 1.
    pub swap: usize,
}

/// Why the frames of a file cannot be located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The file cannot be read as a whole.
    Dicom(DicomError),
    /// There is no pixel data, or an attribute needed to find the frames is absent.
    NotFound(String),
    /// Valid DICOM whose frames this module cannot delimit, such as bit-packed frames that do not start
    /// on a byte boundary, or more fragments than frames with no offset table.
    Unsupported(String),
    /// The attributes and the pixel data contradict each other.
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Dicom(error) => write!(f, "cannot read the file: {error}"),
            FrameError::NotFound(what) => write!(f, "not found: {what}"),
            FrameError::Unsupported(what) => write!(f, "unsupported: {what}"),
            FrameError::Malformed(what) => write!(f, "malformed pixel data: {what}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Dicom(error) => Some(error),
            _ => None,
        }
    }
}

impl From<DicomError> for FrameError {
    fn from(error: DicomError) -> FrameError {
        FrameError::Dicom(error)
    }
}

/// Locates the frames of a data set already read from `file`.
///
/// # Errors
///
/// As [`frame_ranges`].
pub fn frames_of(file: &[u8], data_set: &DataSet) -> Result<Frames, FrameError> {
    let pixels = [PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA]
        .into_iter()
        .find_map(|tag| data_set.get(tag))
        .ok_or_else(|| FrameError::NotFound("no Pixel Data (7FE0,0010), Float or Double Float Pixel Data".into()))?;
    let count = number_of_frames(file, data_set)?;
    let (encapsulated, frames) = match &pixels.value {
        Value::Bytes(range) => (false, native(file, data_set, range, count)?),
        Value::Fragments(fragments) => (true, encapsulated(file, data_set, pixels, fragments, count)?),
        Value::Items(_) => return Err(FrameError::Malformed(format!("{} holds items of a sequence", pixels.tag))),
    };
    let swap = if encapsulated { 1 } else { pixels.swap_size() };
    Ok(Frames { transfer_syntax: data_set.transfer_syntax.clone(), encapsulated, frames, swap })
}

/// Number of Frames (0028,0008); absent or empty means one frame (PS3.3 §C.7.6.6).
fn number_of_frames(file: &[u8], data_set: &DataSet) -> Result<u64, FrameError> {
    let Some(element) = data_set.get(NUMBER_OF_FRAMES) else {
        return Ok(1);
    };
    if element.bytes(file).iter().all(|&b| b == b' ' || b == 0) {
        return Ok(1);
    }
    match element.first_integer_string(file).map(u64::try_from) {
        Some(Ok(count)) if count > 0 => Ok(count),
        _ => Err(FrameError::Malformed(format!("Number of Frames {NUMBER_OF_FRAMES} is not a positive integer"))),
    }
}

/// An unsigned Image Pixel attribute, required unless `default` is given.
fn unsigned(file: &[u8], data_set: &DataSet, tag: Tag, name: &str, default: Option<u64>) -> Result<u64, FrameError> {
    match data_set.get(tag).and_then(|element| element.first_unsigned(file)) {
        Some(value) => Ok(value),
        None => default.ok_or_else(|| FrameError::NotFound(format!("no usable {name} {tag}"))),
    }
}

/// Native pixel data: frames of equal size, one after the other from the start of the value (PS3.5
/// §8.1.1, PS3.3 §C.7.6.3.1).
fn native(
    file: &[u8],
    data_set: &DataSet,
    value: &Range<usize>,
    count: u64,
) -> Result<Vec<Vec<Range<u64>>>, FrameError> {
    let rows = unsigned(file, data_set, ROWS, "Rows", None)?;
    let columns = unsigned(file, data_set, COLUMNS, "Columns", None)?;
    let bits_allocated = unsigned(file, data_set, BITS_ALLOCATED, "Bits Allocated", None)?;
    let mut samples = unsigned(file, data_set, SAMPLES_PER_PIXEL, "Samples per Pixel", Some(1))?;
    // YBR_FULL_422 and YBR_PARTIAL_422 store one CB and one CR for every two Y values: two samples per
    // pixel rather than three (PS3.3 §C.7.6.3.1.2).
    let photometric = data_set.get(PHOTOMETRIC_INTERPRETATION).map(|e| e.bytes(file)).unwrap_or_default();
    if samples == 3 && matches!(photometric.trim_ascii(), b"YBR_FULL_422" | b"YBR_PARTIAL_422") {
        samples = 2;
    }
    let overflow = || FrameError::Malformed("the frame size overflows".into());
    let frame_bits = rows
        .checked_mul(columns)
        .and_then(|n| n.checked_mul(samples))
        .and_then(|n| n.checked_mul(bits_allocated))
        .ok_or_else(overflow)?;
    if frame_bits == 0 {
        return Err(FrameError::Malformed("Rows, Columns, Samples per Pixel or Bits Allocated is zero".into()));
    }
    // With Bits Allocated 1 pixels are packed across frame boundaries (PS3.5 §8.1.1), so a frame whose
    // bit count is not a multiple of 8 starts inside a byte and has no byte range of its own.
    if frame_bits % 8 != 0 && count > 1 {
        return Err(FrameError::Unsupported(format!(
            "{count} bit-packed frames of {frame_bits} bits each do not start on byte boundaries"
        )));
    }
    let frame_size = frame_bits.div_ceil(8);
    let needed = frame_size.checked_mul(count).ok_or_else(overflow)?;
    let length = value.len() as u64;
    if length < needed {
        return Err(FrameError::Malformed(format!(
            "Pixel Data holds {length} bytes, fewer than the {needed} of {count} frames of {frame_size} bytes"
        )));
    }
    let start = value.start as u64;
    let frame = |i: u64| start + i * frame_size..start + (i + 1) * frame_size;
    Ok((0..count).map(|i| vec![frame(i)]).collect())
}

/// Encapsulated pixel data: the first item is the Basic Offset Table, the others hold the fragments of
/// the frames (PS3.5 §A.4).
fn encapsulated(
    file: &[u8],
    data_set: &DataSet,
    pixels: &Element,
    items: &[Range<usize>],
    count: u64,
) -> Result<Vec<Vec<Range<u64>>>, FrameError> {
    let Some((table, fragments)) = items.split_first() else {
        return Err(FrameError::Malformed("encapsulated Pixel Data without a Basic Offset Table item".into()));
    };
    if fragments.is_empty() {
        return Err(FrameError::Malformed("encapsulated Pixel Data without fragments".into()));
    }
    let table = file.get(table.clone()).unwrap_or_default();
    if !table.is_empty() {
        // Offsets are 32-bit, in the byte order of the data set (little endian in every encapsulated
        // transfer syntax).
        let offsets = offsets::<4>(table, pixels.big_endian, "Basic Offset Table")?;
        return split(fragments, &offsets, count, "Basic Offset Table");
    }
    if let Some(table) = data_set.get(EXTENDED_OFFSET_TABLE) {
        let offsets = offsets::<8>(table.bytes(file), table.big_endian, "Extended Offset Table")?;
        return split(fragments, &offsets, count, "Extended Offset Table");
    }
    let fragment_count = fragments.len() as u64;
    if fragment_count == count {
        Ok(fragments.iter().map(|fragment| vec![to_u64(fragment)]).collect())
    } else if count == 1 {
        Ok(vec![fragments.iter().map(to_u64).collect()])
    } else if fragment_count > count {
        Err(FrameError::Unsupported(format!(
            "{fragment_count} fragments for {count} frames and no offset table to tell the frames apart"
        )))
    } else {
        Err(FrameError::Malformed(format!("{fragment_count} fragments cannot hold {count} frames")))
    }
}

/// The offsets of an offset table of N-byte unsigned numbers.
fn offsets<const N: usize>(table: &[u8], big_endian: bool, name: &str) -> Result<Vec<u64>, FrameError> {
    let chunks = table.chunks_exact(N);
    if !chunks.remainder().is_empty() {
        return Err(FrameError::Malformed(format!("the {name} is {} bytes, not a multiple of {N}", table.len())));
    }
    // Each number is widened to 8 bytes on the side that keeps its value.
    let at = if big_endian { 8 - N } else { 0 };
    let number = |chunk: &[u8]| {
        let mut raw = [0u8; 8];
        raw.get_mut(at..at + N)?.copy_from_slice(chunk);
        Some(if big_endian { u64::from_be_bytes(raw) } else { u64::from_le_bytes(raw) })
    };
    chunks.map(|chunk| number(chunk).ok_or_else(|| FrameError::Malformed(format!("unreadable {name}")))).collect()
}

/// Groups fragments into frames at the offsets of an offset table. An offset counts from the first
/// byte of the first fragment's item header, and each one must be where a fragment's item starts.
fn split(
    fragments: &[Range<usize>],
    offsets: &[u64],
    count: u64,
    name: &str,
) -> Result<Vec<Vec<Range<u64>>>, FrameError> {
    if offsets.len() as u64 != count {
        return Err(FrameError::Malformed(format!(
            "the {name} lists {} frames, Number of Frames says {count}",
            offsets.len()
        )));
    }
    // Every fragment is an item: an 8-byte header, then the value.
    let item_start = |fragment: &Range<usize>| fragment.start.saturating_sub(8) as u64;
    let first = fragments.first().map(item_start).unwrap_or_default();
    let mut starts = Vec::with_capacity(offsets.len());
    let mut next = 0;
    for &offset in offsets {
        let index = (next..fragments.len())
            .find(|&i| fragments.get(i).map(|f| item_start(f).saturating_sub(first)) == Some(offset))
            .ok_or_else(|| {
                FrameError::Malformed(format!("{name} offset {offset} is not the start of a fragment after the last"))
            })?;
        starts.push(index);
        next = index + 1;
    }
    if starts.first() != Some(&0) {
        return Err(FrameError::Malformed(format!("the {name} does not start at the first fragment")));
    }
    let ends = starts.iter().skip(1).copied().chain([fragments.len()]);
    Ok(starts
        .iter()
        .zip(ends)
        .map(|(&a, b)| fragments.get(a..b).unwrap_or_default().iter().map(to_u64).collect())
        .collect())
}

fn to_u64(range: &Range<usize>) -> Range<u64> {
    range.start as u64..range.end as u64
}

#[cfg(test)]
mod tests {
    use super::super::dataset::read_data_set;
    use super::super::fixtures::*;
    use super::super::transfer_syntax::{EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
    use super::*;

    fn frame_ranges(bytes: &[u8]) -> Result<Frames, FrameError> {
        let data_set = read_data_set(bytes)?;
        frames_of(bytes, &data_set)
    }

    /// The Image Pixel attributes of `frames` frames of 2x2 pixels, `bits` bits each, explicit VR LE.
    fn image_pixel(frames: &[u8], bits: u8) -> Vec<u8> {
        [
            ex(0x0028, 0x0002, b"US", &[1, 0]),    // (0028,0002) US len 2: Samples per Pixel = 1
            ex(0x0028, 0x0008, b"IS", frames),     // (0028,0008) IS: Number of Frames
            ex(0x0028, 0x0010, b"US", &[2, 0]),    // (0028,0010) US len 2: Rows = 2
            ex(0x0028, 0x0011, b"US", &[2, 0]),    // (0028,0011) US len 2: Columns = 2
            ex(0x0028, 0x0100, b"US", &[bits, 0]), // (0028,0100) US len 2: Bits Allocated
        ]
        .concat()
    }

    /// The file ranges of frames laid out one after the other from `start`, `size` bytes each.
    fn contiguous(start: usize, size: usize, count: usize) -> Vec<Vec<Range<u64>>> {
        let frame = |i: usize| (start + i * size) as u64..(start + (i + 1) * size) as u64;
        (0..count).map(|i| vec![frame(i)]).collect()
    }

    #[test]
    fn native_frames_follow_each_other() {
        let head = [part10(EXPLICIT_VR_LITTLE_ENDIAN), image_pixel(b"3 ", 16)].concat();
        let file = [
            head.clone(),
            ex(0x7FE0, 0x0010, b"OW", &[7; 24]), // (7FE0,0010) OW len 24: 3 frames of 2x2x16 bits
        ]
        .concat();
        let frames = frame_ranges(&file).unwrap();
        assert_eq!(frames.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
        assert!(!frames.encapsulated);
        assert_eq!(frames.frames, contiguous(head.len() + 12, 8, 3));
    }

    #[test]
    fn native_single_frame_in_implicit_and_big_endian_files() {
        let implicit = [
            part10(IMPLICIT_VR_LITTLE_ENDIAN),
            im(0x0028, 0x0010, &[3, 0]),       // (0028,0010) US len 2: Rows = 3
            im(0x0028, 0x0011, &[1, 0]),       // (0028,0011) US len 2: Columns = 1
            im(0x0028, 0x0100, &[8, 0]),       // (0028,0100) US len 2: Bits Allocated = 8
            im(0x7FE0, 0x0010, &[1, 2, 3, 0]), // (7FE0,0010) OW len 4: 3 pixels and padding
        ]
        .concat();
        let frames = frame_ranges(&implicit).unwrap();
        assert_eq!(frames.frames, contiguous(implicit.len() - 4, 3, 1), "no Number of Frames: one frame");

        let big = [
            part10(EXPLICIT_VR_BIG_ENDIAN),
            ex_be(0x0028, 0x0008, b"IS", b"2 "), // (0028,0008) IS len 2: Number of Frames = 2
            ex_be(0x0028, 0x0010, b"US", &[0, 2]), // (0028,0010) US len 2: Rows = 2
            ex_be(0x0028, 0x0011, b"US", &[0, 1]), // (0028,0011) US len 2: Columns = 1
            ex_be(0x0028, 0x0100, b"US", &[0, 16]), // (0028,0100) US len 2: Bits Allocated = 16
            ex_be(0x7FE0, 0x0010, b"OW", &[0; 8]), // (7FE0,0010) OW len 8: 2 frames of 4 bytes
        ]
        .concat();
        let frames = frame_ranges(&big).unwrap();
        assert_eq!(frames.transfer_syntax, EXPLICIT_VR_BIG_ENDIAN);
        assert_eq!(frames.frames, contiguous(big.len() - 8, 4, 2));
    }

    #[test]
    fn bit_packed_frames() {
        // 2x2 pixels of 1 bit: 4 bits a frame, so a second frame would start mid-byte.
        let single =
            [part10(EXPLICIT_VR_LITTLE_ENDIAN), image_pixel(b"1 ", 1), ex(0x7FE0, 0x0010, b"OB", &[0xA0, 0])].concat();
        assert_eq!(frame_ranges(&single).unwrap().frames, contiguous(single.len() - 2, 1, 1));
        let packed =
            [part10(EXPLICIT_VR_LITTLE_ENDIAN), image_pixel(b"2 ", 1), ex(0x7FE0, 0x0010, b"OB", &[0xAB, 0])].concat();
        let error = frame_ranges(&packed).unwrap_err();
        assert!(matches!(&error, FrameError::Unsupported(m) if m.contains("byte boundaries")), "{error}");
    }

    #[test]
    fn subsampled_ybr_has_two_samples_a_pixel() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0028, 0x0002, b"US", &[3, 0]), // (0028,0002) US len 2: Samples per Pixel = 3
            ex(0x0028, 0x0004, b"CS", b"YBR_FULL_422"), // (0028,0004) CS len 12: subsampled
            ex(0x0028, 0x0010, b"US", &[2, 0]), // (0028,0010) US len 2: Rows = 2
            ex(0x0028, 0x0011, b"US", &[2, 0]), // (0028,0011) US len 2: Columns = 2
            ex(0x0028, 0x0100, b"US", &[8, 0]), // (0028,0100) US len 2: Bits Allocated = 8
            ex(0x7FE0, 0x0010, b"OB", &[0; 8]), // (7FE0,0010) OB len 8: Y Y CB CR, twice
        ]
        .concat();
        assert_eq!(frame_ranges(&file).unwrap().frames, contiguous(file.len() - 8, 8, 1));
    }

    #[test]
    fn short_native_pixel_data_is_malformed() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            image_pixel(b"4 ", 16),
            ex(0x7FE0, 0x0010, b"OW", &[0; 24]), // (7FE0,0010) OW len 24: 3 frames, not 4
        ]
        .concat();
        let error = frame_ranges(&file).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed pixel data: Pixel Data holds 24 bytes, fewer than the 32 of 4 frames of 8 bytes"
        );
    }

    #[test]
    fn missing_pixel_data_or_rows_is_not_found() {
        let no_pixels = [part10(EXPLICIT_VR_LITTLE_ENDIAN), image_pixel(b"1 ", 8)].concat();
        assert!(matches!(frame_ranges(&no_pixels), Err(FrameError::NotFound(_))));
        let no_rows = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0028, 0x0011, b"US", &[2, 0]), // (0028,0011) US len 2: Columns = 2
            ex(0x0028, 0x0100, b"US", &[8, 0]), // (0028,0100) US len 2: Bits Allocated = 8
            ex(0x7FE0, 0x0010, b"OB", &[0; 4]), // (7FE0,0010) OB len 4: Pixel Data
        ]
        .concat();
        assert_eq!(frame_ranges(&no_rows).unwrap_err().to_string(), "not found: no usable Rows (0028,0010)");
        let bad_count =
            [part10(EXPLICIT_VR_LITTLE_ENDIAN), image_pixel(b"0 ", 8), ex(0x7FE0, 0x0010, b"OB", &[0; 4])].concat();
        assert!(matches!(frame_ranges(&bad_count), Err(FrameError::Malformed(_))));
    }

    /// An encapsulated file: JPEG Baseline, `frames` frames, the given offset table and fragments.
    /// Returns the file and the file ranges of the fragment values.
    fn encapsulated_file(frames: &[u8], table: &[u32], fragments: &[&[u8]]) -> (Vec<u8>, Vec<Range<u64>>) {
        let table: Vec<u8> = table.iter().flat_map(|offset| offset.to_le_bytes()).collect();
        let mut file = [
            part10(JPEG_BASELINE),
            image_pixel(frames, 8),
            ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
            item(table.len() as u32),            //   (FFFE,E000): Basic Offset Table
            table,                               //     4 bytes per frame
        ]
        .concat();
        let mut ranges = Vec::new();
        for fragment in fragments {
            file.extend(item(fragment.len() as u32)); //   (FFFE,E000): a fragment
            ranges.push(file.len() as u64..(file.len() + fragment.len()) as u64);
            file.extend_from_slice(fragment); //     its bytes
        }
        file.extend(seq_end()); // (FFFE,E0DD): end of the fragments
        (file, ranges)
    }

    #[test]
    fn basic_offset_table_groups_fragments_into_frames() {
        // Frame 1 is fragments 1 and 2 (items of 8 + 4 and 8 + 2 bytes), frame 2 is fragment 3 at 22.
        let (file, f) = encapsulated_file(b"2 ", &[0, 22], &[b"\xFF\xD8ab", b"cd", b"\xFF\xD8\xFF\xD9"]);
        let frames = frame_ranges(&file).unwrap();
        assert!(frames.encapsulated);
        assert_eq!(frames.transfer_syntax, JPEG_BASELINE);
        assert_eq!(frames.frames, vec![vec![f[0].clone(), f[1].clone()], vec![f[2].clone()]]);
    }

    #[test]
    fn basic_offset_table_must_agree_with_frames_and_fragments() {
        let (file, _) = encapsulated_file(b"3 ", &[0, 12], &[b"ab", b"cd"]);
        let error = frame_ranges(&file).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed pixel data: the Basic Offset Table lists 2 frames, Number of Frames says 3"
        );
        let (file, _) = encapsulated_file(b"2 ", &[0, 11], &[b"ab", b"cd"]);
        let error = frame_ranges(&file).unwrap_err();
        assert!(error.to_string().contains("offset 11 is not the start of a fragment"), "{error}");
        let (file, _) = encapsulated_file(b"1 ", &[10], &[b"ab", b"cd"]);
        assert!(matches!(frame_ranges(&file), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn without_offset_table_fragments_are_frames_or_one_frame() {
        let (file, f) = encapsulated_file(b"2 ", &[], &[b"ab", b"cd"]);
        assert_eq!(frame_ranges(&file).unwrap().frames, vec![vec![f[0].clone()], vec![f[1].clone()]]);
        let (file, f) = encapsulated_file(b"1 ", &[], &[b"ab", b"cd", b"ef"]);
        assert_eq!(frame_ranges(&file).unwrap().frames, vec![f.clone()]);
        let (file, _) = encapsulated_file(b"2 ", &[], &[b"ab", b"cd", b"ef"]);
        assert!(matches!(frame_ranges(&file), Err(FrameError::Unsupported(_))));
        let (file, _) = encapsulated_file(b"3 ", &[], &[b"ab", b"cd"]);
        assert_eq!(
            frame_ranges(&file).unwrap_err().to_string(),
            "malformed pixel data: 2 fragments cannot hold 3 frames"
        );
    }

    #[test]
    fn extended_offset_table_is_used_when_the_basic_one_is_empty() {
        let offsets: Vec<u8> = [0u64, 10].iter().flat_map(|o| o.to_le_bytes()).collect();
        let lengths: Vec<u8> = [2u64, 2].iter().flat_map(|o| o.to_le_bytes()).collect();
        let mut file = [
            part10(JPEG_BASELINE),
            image_pixel(b"2 ", 8),
            ex(0x7FE0, 0x0001, b"OV", &offsets), // (7FE0,0001) OV len 16: Extended Offset Table
            ex(0x7FE0, 0x0002, b"OV", &lengths), // (7FE0,0002) OV len 16: its lengths
            ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
            item(0),                             //   (FFFE,E000) len 0: empty Basic Offset Table
            item(2),                             //   (FFFE,E000) len 2: frame 1 at offset 0
        ]
        .concat();
        let first = file.len() as u64;
        file.extend([b"ab".to_vec(), item(2), b"cd".to_vec(), seq_end()].concat()); // frame 2 at offset 10
        let second = first + 10;
        assert_eq!(frame_ranges(&file).unwrap().frames, vec![vec![first..first + 2], vec![second..second + 2]]);
    }

    #[test]
    fn survives_random_mutations() {
        let fixtures = [
            encapsulated_file(b"2 ", &[0, 12], &[b"ab", b"cd", b"ef"]).0,
            encapsulated_file(b"2 ", &[], &[b"ab", b"cd"]).0,
            [part10(EXPLICIT_VR_LITTLE_ENDIAN), image_pixel(b"3 ", 16), ex(0x7FE0, 0x0010, b"OW", &[7; 24])].concat(),
        ];
        mutate_each(&fixtures, 6000, |file| {
            let _ = frame_ranges(file);
        });
    }
}

//! Transcoding a native data set to Explicit VR Little Endian (PS3.5 §A.2), as a [`Plan`]: the output as a
//! list of pieces, each either bytes the plan made (element headers, the rewritten File Meta Information),
//! a range of the file copied as it is, a range copied with every number byte-swapped, or the whole
//! inflated data set of a deflated file. The plan knows its length before a byte is sent, and is carried
//! out piece by piece with bounded memory ([`Plan::fill`]); large copies can be written straight from the
//! file ([`Plan::direct`]).
//!
//! - Implicit VR Little Endian (§A.1): each element gets the VR the data set reader gave it (the data
//!   dictionary, `UN` for unknown private tags, the PS3.5 rules for the ambiguous ones), and the header
//!   form of that VR (PS3.5 §7.1.2); values are copied.
//! - Explicit VR Big Endian (§A.3): headers rewritten little endian, every value of a binary number VR
//!   swapped by the size of its numbers, in nested sequences and Pixel Data too. `UN` values are little
//!   endian already (PS3.5 §6.2.2) and are copied.
//! - Deflated Explicit VR Little Endian (§A.5): the inflated data set is already Explicit VR Little Endian,
//!   and is inflated again as it is sent ([`plan_deflated`]).
//!
//! In every case the File Meta Information names Explicit VR Little Endian and its group length is
//! recomputed; group lengths of the data set (retired, PS3.5 §7.2), which a transcoded header would make
//! wrong, are left out, as pydicom leaves them out, and odd-length values are padded to an even length. Sequences and items of defined length get their new
//! lengths; undefined lengths stay undefined with their delimiters. Invariants: the plan's pieces lie
//! inside the file; its length is the sum of its pieces; nothing here panics on the file. It imports
//! `dataset` and below, and sits beside `json` and `frames` at the top of the folder.

use std::ops::Range;

use super::dataset::{DataSet, Element, Value, Vr, read_data_set, read_meta};
use super::element::{Syntax, has_long_length, sniff_little_endian};
use super::error::DicomError;
use super::inflate::{Stream, inflated_len};
use super::tags::{ITEM, SEQUENCE_DELIMITATION, TRANSFER_SYNTAX_UID, Tag};
use super::transfer_syntax::{EXPLICIT_VR_LITTLE_ENDIAN, is_deflated};

/// The preamble and prefix of a Part 10 file (PS3.10 §7.1).
const PREFIX_LEN: usize = 132;
const UNDEFINED: u32 = 0xFFFF_FFFF;
/// Copies at least this long are offered to be written straight from the file.
pub const DIRECT_MIN: usize = 64 << 10;

/// One piece of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Bytes of the plan's own, a range of [`Plan::made`].
    Made(Range<usize>),
    /// A range of the file, copied.
    Copy(Range<usize>),
    /// A range of the file whose numbers of this many bytes are swapped, big to little endian.
    Swap(Range<usize>, usize),
    /// The inflated data set of a deflated file whose deflate stream starts at this offset.
    Inflate(usize),
}

/// How to write one file as Explicit VR Little Endian, and how long the result is.
#[derive(Debug)]
pub struct Plan {
    made: Vec<u8>,
    pieces: Vec<Piece>,
    len: u64,
}

/// Where a plan being carried out is, and the inflater of a deflated file's data set.
#[derive(Default)]
pub struct Progress {
    piece: usize,
    /// Bytes of the current piece already produced.
    done: u64,
    inflating: Option<Stream>,
}

impl Plan {
    /// The plan of sending a range of a file with its numbers of `width` bytes swapped: big endian pixel
    /// data or bulk data sent little endian.
    pub fn swapped(range: Range<usize>, width: usize) -> Plan {
        let len = range.len() as u64;
        let piece = if width > 1 { Piece::Swap(range, width) } else { Piece::Copy(range) };
        Plan { made: Vec::new(), pieces: vec![piece], len }
    }

    /// The length of the transcoded file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Appends the next bytes of the output to `out`: at most `max`, or one number more where `max` would
    /// cut a swapped number; 0 at the end. `file` is the file the plan was made of.
    ///
    /// # Errors
    ///
    /// When a deflate stream turns out corrupt or shorter than it was when the plan was made.
    pub fn fill(&self, file: &[u8], progress: &mut Progress, out: &mut Vec<u8>, max: usize) -> Result<usize, String> {
        let start = out.len();
        while out.len() - start < max {
            let Some(piece) = self.pieces.get(progress.piece) else { break };
            let room = max - (out.len() - start);
            let done = usize::try_from(progress.done).unwrap_or(usize::MAX);
            let produced = match piece {
                Piece::Made(range) => copy(&self.made, range, done, room, out),
                Piece::Copy(range) => copy(file, range, done, room, out),
                Piece::Swap(range, width) => swap(file, range, *width, done, room, out),
                Piece::Inflate(at) => {
                    let input = file.get(*at..).unwrap_or_default();
                    let stream = progress.inflating.get_or_insert_with(|| Stream::new(input));
                    let produced = stream.read(input, out, room)?;
                    if produced == 0 {
                        // The stream ended: the piece is done.
                        progress.done = u64::MAX;
                    }
                    produced
                }
            };
            progress.done = progress.done.saturating_add(produced as u64);
            if !self.settle(progress) && produced == 0 {
                break;
            }
        }
        Ok(out.len() - start)
    }

    /// Moves on to the next piece when the current one is done; whether it did.
    fn settle(&self, progress: &mut Progress) -> bool {
        let length = match self.pieces.get(progress.piece) {
            Some(Piece::Made(range) | Piece::Copy(range) | Piece::Swap(range, _)) => range.len() as u64,
            Some(Piece::Inflate(_)) => u64::MAX,
            None => return false,
        };
        if progress.done < length {
            return false;
        }
        *progress = Progress { piece: progress.piece + 1, done: 0, inflating: None };
        true
    }

    /// The range of the file that comes next, when it is a copy of at least [`DIRECT_MIN`] bytes that a
    /// caller may write itself; it then reports what it took with [`Plan::advance`].
    pub fn direct(&self, progress: &Progress) -> Option<Range<usize>> {
        match self.pieces.get(progress.piece)? {
            Piece::Copy(range) => {
                let from = range.start.checked_add(usize::try_from(progress.done).ok()?)?;
                (range.end.saturating_sub(from) >= DIRECT_MIN).then_some(from..range.end)
            }
            _ => None,
        }
    }

    /// Counts `n` bytes of the range [`Plan::direct`] offered as sent.
    pub fn advance(&self, progress: &mut Progress, n: usize) {
        progress.done = progress.done.saturating_add(n as u64);
        self.settle(progress);
    }
}

fn copy(source: &[u8], range: &Range<usize>, done: usize, room: usize, out: &mut Vec<u8>) -> usize {
    let from = range.start.saturating_add(done).min(range.end);
    let to = from.saturating_add(room).min(range.end);
    let bytes = source.get(from..to).unwrap_or_default();
    out.extend_from_slice(bytes);
    bytes.len()
}

/// Copies whole numbers of `width` bytes each reversed; a ragged tail is copied as it is.
fn swap(source: &[u8], range: &Range<usize>, width: usize, done: usize, room: usize, out: &mut Vec<u8>) -> usize {
    let from = range.start.saturating_add(done).min(range.end);
    let whole = range.start + (range.end - range.start) / width * width;
    // Stop on a number boundary unless the rest is the ragged tail, and give at least one number.
    let mut to = from.saturating_add(room.max(width)).min(range.end);
    if to < whole {
        to = from + (to - from) / width * width;
    }
    let Some(bytes) = source.get(from..to) else { return 0 };
    let numbers = bytes.len().min(whole.saturating_sub(from)) / width * width;
    let start = out.len();
    out.extend_from_slice(bytes);
    if let Some(swapped) = out.get_mut(start..start + numbers) {
        reverse_numbers(swapped, width);
    }
    bytes.len()
}

/// Reverses the bytes of each number of `width` bytes, in place; a whole number of them is given. The
/// 16-bit case, which native pixel data is, swaps four at a time in one 64-bit word.
fn reverse_numbers(bytes: &mut [u8], width: usize) {
    match width {
        2 => {
            let mut words = bytes.chunks_exact_mut(8);
            for word in &mut words {
                if let Ok(raw) = <[u8; 8]>::try_from(&*word) {
                    let x = u64::from_ne_bytes(raw);
                    let swapped = ((x & 0x00FF_00FF_00FF_00FF) << 8) | ((x >> 8) & 0x00FF_00FF_00FF_00FF);
                    word.copy_from_slice(&swapped.to_ne_bytes());
                }
            }
            words.into_remainder().chunks_exact_mut(2).for_each(|pair| pair.swap(0, 1));
        }
        _ => bytes.chunks_exact_mut(width).for_each(<[u8]>::reverse),
    }
}

/// The plan of a file of a native transfer syntax, deflated or not. `measured` is the length an earlier
/// plan of the same file found, which spares inflating a deflated file only to measure it again (carrying
/// the plan out still checks it).
///
/// # Errors
///
/// As [`read_data_set`](super::dataset::read_data_set) and [`plan_deflated`].
pub fn plan_file(file: &[u8], measured: Option<u64>) -> Result<Plan, DicomError> {
    let (meta, _) = read_meta(file)?;
    if is_deflated(&meta.transfer_syntax) {
        plan_deflated(file, measured)
    } else {
        Ok(plan(file, &read_data_set(file)?))
    }
}

/// The plan of a file read into `data_set` (implicit VR little endian, explicit VR big endian, or explicit
/// VR little endian, which then only loses its group lengths).
pub fn plan(file: &[u8], data_set: &DataSet) -> Plan {
    let mut writer = Writer { made: Vec::new(), pieces: Vec::new(), len: 0 };
    writer.prefix_and_meta(file, data_set);
    writer.elements(&data_set.elements);
    Plan { made: writer.made, pieces: writer.pieces, len: writer.len }
}

/// The plan of a deflated Explicit VR Little Endian file: its meta group rewritten, then its data set
/// inflated. Unless `measured` gives the whole length already, inflates the whole stream once to learn it,
/// a piece at a time.
///
/// # Errors
///
/// When the file does not read, its stream is corrupt or cut short, or the inflated data set is not
/// explicit VR little endian (some writers deflate an implicit one): such a file is only sent as stored.
pub fn plan_deflated(file: &[u8], measured: Option<u64>) -> Result<Plan, DicomError> {
    let (data_set, start) = read_meta(file)?;
    let deflate = |problem: String| DicomError::Deflate { offset: start, problem };
    let input = file.get(start..).unwrap_or_default();
    let mut head = Vec::new();
    Stream::new(input).read(input, &mut head, 8).map_err(deflate)?;
    if !head.is_empty() && sniff_little_endian(&head, 0) != Syntax::ExplicitLittle {
        return Err(DicomError::UnsupportedTransferSyntax {
            uid: data_set.transfer_syntax,
            reason: "the inflated data set is not explicit VR little endian",
        });
    }
    let mut writer = Writer { made: Vec::new(), pieces: Vec::new(), len: 0 };
    writer.prefix_and_meta(file, &data_set);
    writer.pieces.push(Piece::Inflate(start));
    writer.len = match measured {
        Some(length) => length,
        None => writer.len + inflated_len(input, u64::MAX).map_err(deflate)?,
    };
    Ok(Plan { made: writer.made, pieces: writer.pieces, len: writer.len })
}

struct Writer {
    made: Vec<u8>,
    pieces: Vec<Piece>,
    len: u64,
}

impl Writer {
    /// Appends bytes of the plan's own, extending the last piece when it is also made.
    fn put(&mut self, bytes: &[u8]) {
        let start = self.made.len();
        self.made.extend_from_slice(bytes);
        match self.pieces.last_mut() {
            Some(Piece::Made(range)) if range.end == start => range.end = self.made.len(),
            _ => self.pieces.push(Piece::Made(start..self.made.len())),
        }
        self.len += bytes.len() as u64;
    }

    fn value(&mut self, element: &Element, range: &Range<usize>) {
        let width = element.swap_size();
        self.pieces.push(if width > 1 { Piece::Swap(range.clone(), width) } else { Piece::Copy(range.clone()) });
        self.len += range.len() as u64;
    }

    /// Writes an element header; returns where its length field is in `made`, to patch a defined length.
    fn header(&mut self, tag: Tag, vr: Vr, length: u32) -> usize {
        let mut bytes = Vec::with_capacity(12);
        bytes.extend(tag.group.to_le_bytes());
        bytes.extend(tag.element.to_le_bytes());
        bytes.extend(vr.0);
        let at = if has_long_length(vr.0) {
            bytes.extend([0, 0]);
            bytes.extend(length.to_le_bytes());
            self.made.len() + 8
        } else {
            bytes.extend(u16::try_from(length).unwrap_or(u16::MAX).to_le_bytes());
            self.made.len() + 6
        };
        self.put(&bytes);
        at
    }

    fn item_header(&mut self, tag: Tag, length: u32) -> usize {
        let at = self.made.len() + 4;
        let mut bytes = Vec::with_capacity(8);
        bytes.extend(tag.group.to_le_bytes());
        bytes.extend(tag.element.to_le_bytes());
        bytes.extend(length.to_le_bytes());
        self.put(&bytes);
        at
    }

    /// Patches the 4-byte length at `at` with the output written since `since`.
    fn patch(&mut self, at: usize, since: u64) {
        let length = u32::try_from(self.len - since).unwrap_or(UNDEFINED - 1);
        if let Some(field) = self.made.get_mut(at..at + 4) {
            field.copy_from_slice(&length.to_le_bytes());
        }
    }

    /// The preamble and prefix as stored (zeros and `DICM` for a file without them), then the File Meta
    /// Information with Explicit VR Little Endian as its Transfer Syntax UID and its group length anew.
    fn prefix_and_meta(&mut self, file: &[u8], data_set: &DataSet) {
        let has_prefix = file.get(128..PREFIX_LEN) == Some(b"DICM".as_slice());
        match file.get(..PREFIX_LEN) {
            Some(prefix) if has_prefix => self.put(prefix),
            _ => self.put(&[[0; 128].as_slice(), b"DICM"].concat()),
        }
        // The UID and its NUL padding to an even length (PS3.5 §9.1).
        let syntax = &[EXPLICIT_VR_LITTLE_ENDIAN.as_bytes(), b"\0"].concat();
        // (0002,0000) File Meta Information Group Length: the bytes of the group after it.
        self.header(Tag::new(0x0002, 0x0000), Vr::UL, 4);
        let length_at = self.made.len();
        self.put(&[0; 4]);
        let since = self.len;
        let mut named = false;
        for element in data_set.meta.iter().filter(|e| e.tag.element != 0x0000) {
            if element.tag >= TRANSFER_SYNTAX_UID && !named {
                self.header(TRANSFER_SYNTAX_UID, Vr(*b"UI"), syntax.len() as u32);
                self.put(syntax);
                named = true;
            }
            if element.tag != TRANSFER_SYNTAX_UID {
                self.element(element);
            }
        }
        if !named {
            self.header(TRANSFER_SYNTAX_UID, Vr(*b"UI"), syntax.len() as u32);
            self.put(syntax);
        }
        self.patch(length_at, since);
    }

    fn elements(&mut self, elements: &[Element]) {
        for element in elements {
            // Group lengths (gggg,0000) of the data set are retired and would be wrong (PS3.5 §7.2).
            if element.tag.element == 0x0000 && element.tag.group > 0x0006 {
                continue;
            }
            self.element(element);
        }
    }

    fn element(&mut self, element: &Element) {
        match &element.value {
            Value::Bytes(range) => {
                // A value too long for the 2-byte length of its VR can only be sent as UN (as pydicom does).
                let vr = if !has_long_length(element.vr.0) && range.len() > 0xFFFF { Vr::UN } else { element.vr };
                let pad = padding(vr).filter(|_| range.len() % 2 == 1);
                let length = u32::try_from(range.len() + usize::from(pad.is_some())).unwrap_or(UNDEFINED - 1);
                self.header(element.tag, vr, length);
                self.value(element, range);
                if let Some(pad) = pad {
                    self.put(&[pad]);
                }
            }
            Value::Items(items) => {
                let defined = !element.undefined_length;
                let length_at = self.header(element.tag, Vr::SQ, UNDEFINED);
                let since = self.len;
                for item in items {
                    let item_at = self.item_header(ITEM, UNDEFINED);
                    let item_since = self.len;
                    self.elements(item);
                    self.patch(item_at, item_since);
                }
                if defined {
                    self.patch(length_at, since);
                } else {
                    self.item_header(SEQUENCE_DELIMITATION, 0);
                }
            }
            Value::Fragments(fragments) => {
                self.header(element.tag, Vr::OB, UNDEFINED);
                for fragment in fragments {
                    self.item_header(ITEM, u32::try_from(fragment.len()).unwrap_or(UNDEFINED - 1));
                    self.pieces.push(Piece::Copy(fragment.clone()));
                    self.len += fragment.len() as u64;
                }
                self.item_header(SEQUENCE_DELIMITATION, 0);
            }
        }
    }
}

/// The byte that pads an odd-length value of this VR to the even length PS3.5 §7.1.1 requires: a space for
/// text, NUL for UIDs (§9.1) and binary values; none for UN, whose value is not ours to interpret. (A
/// file stored with odd lengths is sent with them padded, as pydicom writes it.)
fn padding(vr: Vr) -> Option<u8> {
    match &vr.0 {
        b"UN" => None,
        b"UI" => Some(0),
        b"AE" | b"AS" | b"CS" | b"DA" | b"DS" | b"DT" | b"IS" | b"LO" | b"LT" | b"PN" | b"SH" | b"ST" | b"TM"
        | b"UC" | b"UR" | b"UT" => Some(b' '),
        _ => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::transfer_syntax::{
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
    };
    use super::*;

    /// Carries out a plan `max` bytes at a time, as a writer that takes a little at a time would.
    fn run(plan: &Plan, file: &[u8], max: usize) -> Vec<u8> {
        let mut progress = Progress::default();
        let mut out = Vec::new();
        while plan.fill(file, &mut progress, &mut out, max).unwrap() > 0 {}
        out
    }

    fn transcode(file: &[u8]) -> Vec<u8> {
        let plan = plan(file, &read_data_set(file).unwrap());
        let whole = run(&plan, file, usize::MAX);
        assert_eq!(whole.len() as u64, plan.len(), "the length known before");
        for max in [1, 3, 7] {
            assert!(run(&plan, file, max) == whole, "the same bytes {max} at a time");
        }
        whole
    }

    /// A big endian item header.
    fn item_be(length: u32) -> Vec<u8> {
        [&[0xFF, 0xFE, 0xE0, 0x00][..], &length.to_be_bytes()].concat()
    }

    #[test]
    fn implicit_elements_get_their_dictionary_vrs_and_header_forms() {
        let file = [
            part10(IMPLICIT_VR_LITTLE_ENDIAN),
            im(0x0008, 0x0000, &[30, 0, 0, 0]), // (0008,0000) UL len 4: group length, left out
            im(0x0008, 0x0060, b"CT"),          // (0008,0060) CS len 2: Modality
            im(0x0008, 0x1110, &[item(12), im(0x0008, 0x1150, b"1.2\0")].concat()), // (0008,1110) SQ len 20
            im(0x0009, 0x0010, b"ACM"),         // (0009,0010) LO len 3 (odd): private creator
            im(0x0009, 0x1001, &[1, 2, 3]),     // (0009,1001) UN len 3 (odd): private value
            im_undefined(0x0009, 0x1010),       // (0009,1010) undefined: a private sequence
            item(u32::MAX),                     //   (FFFE,E000) undefined item
            im(0x0009, 0x1011, b"private!"),    //     (0009,1011) UN len 8
            item_end(),                         //   (FFFE,E00D)
            seq_end(),                          // (FFFE,E0DD)
            im(0x0028, 0x0010, &[2, 0]),        // (0028,0010) US len 2: Rows
            im(0x7FE0, 0x0010, &[9, 8, 7, 6]),  // (7FE0,0010) OW len 4: Pixel Data
        ]
        .concat();
        let expected = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0060, b"CS", b"CT"), // (0008,0060) CS len 2
            ex(0x0008, 0x1110, b"SQ", &[item(12), ex(0x0008, 0x1150, b"UI", b"1.2\0")].concat()), // SQ len 20
            ex(0x0009, 0x0010, b"LO", b"ACM "), // (0009,0010) LO len 4: padded with a space
            ex(0x0009, 0x1001, b"UN", &[1, 2, 3]), // (0009,1001) UN len 3: a 4-byte length now
            ex_undefined(0x0009, 0x1010, b"SQ"), // (0009,1010) SQ undefined
            item(20),                         //   (FFFE,E000) len 20: items get their length
            ex(0x0009, 0x1011, b"UN", b"private!"), //     (0009,1011) UN len 8
            seq_end(),                        // (FFFE,E0DD)
            ex(0x0028, 0x0010, b"US", &[2, 0]), // (0028,0010) US len 2
            ex(0x7FE0, 0x0010, b"OW", &[9, 8, 7, 6]), // (7FE0,0010) OW len 4
        ]
        .concat();
        assert_eq!(transcode(&file), expected);
    }

    #[test]
    fn big_endian_numbers_are_swapped_by_their_vr_at_every_depth() {
        let item_be_value = ex_be(0x0028, 0x0011, b"US", &[0, 64]); // (0028,0011) US len 2: Columns = 64
        let file = [
            part10(EXPLICIT_VR_BIG_ENDIAN),
            ex_be(0x0008, 0x0060, b"CS", b"MR"), // (0008,0060) CS len 2: text, as it is
            ex_be(0x0008, 0x1140, b"SQ", &[item_be(10), item_be_value].concat()), // (0008,1140) SQ len 18
            ex_be(0x0018, 0x1063, b"FD", &0.5f64.to_be_bytes()), // (0018,1063) FD len 8
            ex_be(0x0028, 0x0009, b"AT", &[0x00, 0x18, 0x10, 0x63]), // (0028,0009) AT len 4: (0018,1063)
            ex_be(0x0028, 0x0010, b"US", &[1, 0, 2]), // (0028,0010) US len 3: ragged, the tail kept
            ex_be(0x0029, 0x1001, b"UN", &[1, 2]), // (0029,1001) UN len 2: little endian already
            ex_be(0x0040, 0xA132, b"UL", &[0, 1, 0, 2]), // (0040,A132) UL len 4
            ex_be(0x7FE0, 0x0010, b"OW", &[0x12, 0x34, 0x56, 0x78]), // (7FE0,0010) OW len 4: Pixel Data
        ]
        .concat();
        let expected = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0060, b"CS", b"MR"),
            ex(0x0008, 0x1140, b"SQ", &[item(10), ex(0x0028, 0x0011, b"US", &[64, 0])].concat()),
            ex(0x0018, 0x1063, b"FD", &0.5f64.to_le_bytes()),
            ex(0x0028, 0x0009, b"AT", &[0x18, 0x00, 0x63, 0x10]),
            ex(0x0028, 0x0010, b"US", &[0, 1, 2, 0]), // the odd length padded
            ex(0x0029, 0x1001, b"UN", &[1, 2]),
            ex(0x0040, 0xA132, b"UL", &[2, 0, 1, 0]),
            ex(0x7FE0, 0x0010, b"OW", &[0x34, 0x12, 0x78, 0x56]),
        ]
        .concat();
        assert_eq!(transcode(&file), expected);
    }

    #[test]
    fn reverses_numbers_of_each_size() {
        let mut words: Vec<u8> = (0..10).collect();
        reverse_numbers(&mut words, 2);
        assert_eq!(words, [1, 0, 3, 2, 5, 4, 7, 6, 9, 8], "four at a time, then the rest");
        let mut longs: Vec<u8> = (0..8).collect();
        reverse_numbers(&mut longs, 4);
        assert_eq!(longs, [3, 2, 1, 0, 7, 6, 5, 4]);
        reverse_numbers(&mut longs, 8);
        assert_eq!(longs, [4, 5, 6, 7, 0, 1, 2, 3]);
    }

    #[test]
    fn large_copies_are_offered_whole_and_the_rest_is_filled() {
        let pixels = vec![7u8; DIRECT_MIN + 100];
        let file = [part10(IMPLICIT_VR_LITTLE_ENDIAN), im(0x7FE0, 0x0010, &pixels)].concat(); // OW
        let plan = plan(&file, &read_data_set(&file).unwrap());
        let mut progress = Progress::default();
        let mut out = Vec::new();
        assert_eq!(plan.direct(&progress), None, "the meta group and header first");
        let head = plan.fill(&file, &mut progress, &mut out, part10(EXPLICIT_VR_LITTLE_ENDIAN).len() + 12).unwrap();
        let range = plan.direct(&progress).expect("the pixel data");
        assert_eq!((range.start, range.len()), (file.len() - pixels.len(), pixels.len()));
        plan.advance(&mut progress, 5);
        assert_eq!(plan.direct(&progress).map(|r| r.len()), Some(pixels.len() - 5));
        out.extend_from_slice(&pixels[..5]);
        while plan.fill(&file, &mut progress, &mut out, 1000).unwrap() > 0 {}
        assert_eq!(out.len() as u64, plan.len());
        assert_eq!(out.len(), head + pixels.len());
    }

    #[test]
    fn deflated_data_sets_are_inflated_behind_a_new_meta_group() {
        let data_set = [
            ex(0x0008, 0x0060, b"CS", b"SR"),           // (0008,0060) CS len 2: Modality
            ex(0x0040, 0xA160, b"UT", &[b'x'; 70_001]), // (0040,A160) UT len 70001: Text Value
        ]
        .concat();
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
        let plan = plan_deflated(&file, None).unwrap();
        let expected = [part10(EXPLICIT_VR_LITTLE_ENDIAN), data_set].concat();
        assert_eq!(plan.len(), expected.len() as u64);
        assert!(run(&plan, &file, 4096) == expected);
        assert_eq!(plan_deflated(&file, Some(plan.len())).unwrap().len(), plan.len(), "measured before");

        let implicit = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&im(0x0008, 0x0060, b"SR"))].concat();
        assert!(matches!(plan_deflated(&implicit, None), Err(DicomError::UnsupportedTransferSyntax { .. })));
        let cut = &file[..file.len() - 10];
        assert!(matches!(plan_deflated(cut, None), Err(DicomError::Deflate { .. })));
    }

    #[test]
    fn a_bare_data_set_gets_a_preamble_and_meta_group() {
        let file = im(0x0008, 0x0060, b"OT"); // (0008,0060) CS len 2: Modality, no meta group
        let out = transcode(&file);
        assert_eq!(&out[128..132], b"DICM");
        let read = read_data_set(&out).unwrap();
        assert_eq!(read.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(read.elements.len(), 1);
        assert_eq!(read.elements[0].vr, Vr(*b"CS"));
    }

    #[test]
    fn survives_random_mutations() {
        let fixtures = [
            [
                part10(IMPLICIT_VR_LITTLE_ENDIAN),
                im(0x0008, 0x1110, &[item(12), im(0x0008, 0x1150, b"1.2\0")].concat()), // SQ len 20
                im(0x7FE0, 0x0010, &[0; 4]),                                            // (7FE0,0010) OW len 4
            ]
            .concat(),
            [
                part10(EXPLICIT_VR_BIG_ENDIAN),
                ex_be(0x0008, 0x1140, b"SQ", &[item_be(10), ex_be(0x0028, 0x0011, b"US", &[0, 64])].concat()),
                ex_be(0x7FE0, 0x0010, b"OW", &[1, 2, 3, 4]), // (7FE0,0010) OW len 4
            ]
            .concat(),
        ];
        mutate_each(&fixtures, 3000, |file| {
            if let Ok(data_set) = read_data_set(file) {
                let plan = plan(file, &data_set);
                assert_eq!(run(&plan, file, 1 << 20).len() as u64, plan.len());
            }
            let _ = plan_deflated(file, None);
        });
    }
}

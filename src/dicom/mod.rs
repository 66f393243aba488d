//! Reading the header of a DICOM Part 10 file (PS3.10 §7.1): the File Meta Information and the
//! top-level data set up to Pixel Data. This module knows DICOM encoding and nothing of HTTP, FHIR or
//! the index layout. It never reads past the end of the bytes it is given and never panics on them.
//!
//! It also holds what `dataset` shares with it, so that both read every file the same way: [`locate`]
//! (where the meta group and the data set are, and their encoding), [`read_element`] (one element's
//! tag, VR and length) and [`Charset`].
//!
//! Every loop here steps over at least one element or item header, sequences nest at most
//! [`MAX_DEPTH`] deep, and a deflated data set is inflated into memory only as far as the recorded
//! attributes and never past [`MAX_INFLATED`] bytes, so no input can make it hang or exhaust memory.
//! It uses only `std` and `flate2`, so that the fuzz target in `fuzz/` can include it by path.

pub mod dataset;
pub mod frames;
pub mod json;
pub mod uid;

pub use uid::Uid;

use std::fmt;
use std::ops::Range;

use flate2::{Decompress, FlushDecompress, Status};

/// The attributes of one instance that the index records (SPEC §4).
/// Text values are decoded to UTF-8 and trimmed of DICOM padding; an absent attribute is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub transfer_syntax: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub patient_id: String,
    pub issuer_of_patient_id: String,
    pub patient_name: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_time: String,
    pub timezone_offset: String,
    pub accession_number: String,
    pub study_id: String,
    pub study_description: String,
    pub referring_physician_name: String,
    pub series_number: Option<i64>,
    pub modality: String,
    pub series_description: String,
    pub instance_number: Option<i64>,
    pub number_of_frames: Option<u32>,
    /// Byte offset, from the start of the file, of the first byte of the Pixel Data value.
    pub pixel_data_offset: Option<u64>,
}

/// A data element tag: (group,element), shown the way DICOM writes it, e.g. `(0010,0010)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    pub group: u16,
    pub element: u16,
}

impl Tag {
    pub const fn new(group: u16, element: u16) -> Tag {
        Tag { group, element }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:04X},{:04X})", self.group, self.element)
    }
}

/// Why the header of a file could not be read. Offsets are byte offsets from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DicomError {
    /// There is no "DICM" prefix after the preamble (PS3.10 §7.1), and the bytes do not start
    /// like a bare implicit VR little endian data set either.
    NotDicom,
    /// An element header or value runs past the end of the bytes. `tag` is `None` when the bytes
    /// end inside the tag itself at top level.
    Truncated { tag: Option<Tag>, offset: usize },
    /// An element is structurally invalid: a VR that is not two letters, an item where none may be,
    /// or sequences nested deeper than the reader allows.
    Malformed { tag: Tag, offset: usize, problem: &'static str },
    /// The transfer syntax is one this reader cannot decode.
    UnsupportedTransferSyntax { uid: String, reason: &'static str },
    /// A required attribute is absent or empty.
    Missing { attribute: &'static str, tag: Tag },
    /// A DICOMDIR (PS3.10 §8): a directory of other files, not an instance.
    Directory,
    /// The deflated data set (PS3.5 §A.5) that starts at `offset` cannot be inflated as far as the
    /// recorded attributes: the stream is corrupt, ends early, or inflates beyond [`MAX_INFLATED`].
    Deflate { offset: usize, problem: String },
    /// A problem inside an inflated data set; its offsets count from the first inflated byte.
    InInflated(Box<DicomError>),
}

impl fmt::Display for DicomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DicomError::NotDicom => {
                write!(f, "not DICOM: no DICM prefix at byte {PREAMBLE_LEN} and no bare data set at byte 0")
            }
            DicomError::Truncated { tag: Some(tag), offset } => {
                write!(f, "truncated in element {tag} at byte {offset}")
            }
            DicomError::Truncated { tag: None, offset } => {
                write!(f, "truncated in an element tag at byte {offset}")
            }
            DicomError::Malformed { tag, offset, problem } => {
                write!(f, "malformed element {tag} at byte {offset}: {problem}")
            }
            DicomError::UnsupportedTransferSyntax { uid, reason } => {
                write!(f, "unsupported transfer syntax {uid} ({reason})")
            }
            DicomError::Missing { attribute, tag } => write!(f, "missing {attribute} {tag}"),
            DicomError::Directory => write!(f, "a DICOMDIR, which lists other files and is not an instance"),
            DicomError::Deflate { offset, problem } => write!(f, "deflated data set at byte {offset}: {problem}"),
            DicomError::InInflated(inner) => write!(f, "in the inflated data set: {inner}"),
        }
    }
}

impl std::error::Error for DicomError {}

const PREAMBLE_LEN: usize = 128;
const PREFIX: &[u8] = b"DICM";
/// Sequences nested deeper than this are rejected, which keeps the recursion bounded.
pub(crate) const MAX_DEPTH: usize = 64;
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

pub(crate) const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
pub(crate) const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
pub(crate) const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
const JPIP_REFERENCED_DEFLATE: &str = "1.2.840.10008.1.2.4.95";
const JPIP_HTJ2K_REFERENCED_DEFLATE: &str = "1.2.840.10008.1.2.4.205";

/// The most bytes of a deflated data set inflated to reach the end of the recorded attributes: far more
/// than they take in real files, little enough that a deflate bomb cannot exhaust memory.
pub(crate) const MAX_INFLATED: usize = 64 << 20;
/// How much of a deflated data set is inflated first; each further try doubles it.
const FIRST_INFLATE: usize = 64 << 10;

/// The SOP Class of a DICOMDIR (PS3.4 Annex F).
const MEDIA_STORAGE_DIRECTORY_STORAGE: &str = "1.2.840.10008.1.3.10";
const MEDIA_STORAGE_SOP_CLASS_UID: Tag = Tag::new(0x0002, 0x0002);
const MEDIA_STORAGE_SOP_INSTANCE_UID: Tag = Tag::new(0x0002, 0x0003);
const TRANSFER_SYNTAX_UID: Tag = Tag::new(0x0002, 0x0010);
pub(crate) const SPECIFIC_CHARACTER_SET: Tag = Tag::new(0x0008, 0x0005);
const SOP_CLASS_UID: Tag = Tag::new(0x0008, 0x0016);
const SOP_INSTANCE_UID: Tag = Tag::new(0x0008, 0x0018);
const STUDY_DATE: Tag = Tag::new(0x0008, 0x0020);
const STUDY_TIME: Tag = Tag::new(0x0008, 0x0030);
const ACCESSION_NUMBER: Tag = Tag::new(0x0008, 0x0050);
const MODALITY: Tag = Tag::new(0x0008, 0x0060);
const REFERRING_PHYSICIAN_NAME: Tag = Tag::new(0x0008, 0x0090);
const TIMEZONE_OFFSET_FROM_UTC: Tag = Tag::new(0x0008, 0x0201);
const STUDY_DESCRIPTION: Tag = Tag::new(0x0008, 0x1030);
const SERIES_DESCRIPTION: Tag = Tag::new(0x0008, 0x103E);
const PATIENT_NAME: Tag = Tag::new(0x0010, 0x0010);
const PATIENT_ID: Tag = Tag::new(0x0010, 0x0020);
const ISSUER_OF_PATIENT_ID: Tag = Tag::new(0x0010, 0x0021);
const PATIENT_BIRTH_DATE: Tag = Tag::new(0x0010, 0x0030);
const PATIENT_SEX: Tag = Tag::new(0x0010, 0x0040);
const STUDY_INSTANCE_UID: Tag = Tag::new(0x0020, 0x000D);
const SERIES_INSTANCE_UID: Tag = Tag::new(0x0020, 0x000E);
const STUDY_ID: Tag = Tag::new(0x0020, 0x0010);
const SERIES_NUMBER: Tag = Tag::new(0x0020, 0x0011);
const INSTANCE_NUMBER: Tag = Tag::new(0x0020, 0x0013);
pub(crate) const NUMBER_OF_FRAMES: Tag = Tag::new(0x0028, 0x0008);
pub(crate) const PIXEL_DATA: Tag = Tag::new(0x7FE0, 0x0010);
pub(crate) const ITEM: Tag = Tag::new(0xFFFE, 0xE000);
pub(crate) const ITEM_DELIMITATION: Tag = Tag::new(0xFFFE, 0xE00D);
pub(crate) const SEQUENCE_DELIMITATION: Tag = Tag::new(0xFFFE, 0xE0DD);

/// The File Meta Information attributes whose values are kept.
const META_RECORDED: [Tag; 3] = [MEDIA_STORAGE_SOP_CLASS_UID, MEDIA_STORAGE_SOP_INSTANCE_UID, TRANSFER_SYNTAX_UID];

/// The top-level data set attributes whose values are kept for the header.
const RECORDED: [Tag; 22] = [
    SPECIFIC_CHARACTER_SET,
    SOP_CLASS_UID,
    SOP_INSTANCE_UID,
    STUDY_DATE,
    STUDY_TIME,
    ACCESSION_NUMBER,
    MODALITY,
    REFERRING_PHYSICIAN_NAME,
    TIMEZONE_OFFSET_FROM_UTC,
    STUDY_DESCRIPTION,
    SERIES_DESCRIPTION,
    PATIENT_NAME,
    PATIENT_ID,
    ISSUER_OF_PATIENT_ID,
    PATIENT_BIRTH_DATE,
    PATIENT_SEX,
    STUDY_INSTANCE_UID,
    SERIES_INSTANCE_UID,
    STUDY_ID,
    SERIES_NUMBER,
    INSTANCE_NUMBER,
    NUMBER_OF_FRAMES,
];

/// The last of [`RECORDED`] in tag order: a deflated data set is inflated only up to the element
/// after it, as the attributes of a data set come in ascending tag order (PS3.5 §7.1).
const LAST_RECORDED: Tag = NUMBER_OF_FRAMES;

/// Reads the File Meta Information and the top-level data set of a DICOM file up to Pixel Data.
///
/// Accepts a Part 10 file (preamble, "DICM", group 0002) in every transfer syntax, a meta group
/// without the preamble and prefix, and a bare little endian data set (no preamble, no meta group)
/// that starts with a group 0008 element, as older writers produced. A deflated data set is inflated
/// in memory as far as the recorded attributes; its Pixel Data offset is not recorded, as it would be
/// an offset in the inflated bytes, not in the file.
///
/// # Errors
///
/// Returns a [`DicomError`] when the bytes are not DICOM, are truncated or malformed before Pixel
/// Data, hold a deflated data set that does not inflate, or lack the SOP Instance, Study Instance or
/// Series Instance UID.
pub fn read_header(bytes: &[u8]) -> Result<Header, DicomError> {
    let layout = locate(bytes)?;
    let mut found = Found::default();
    if !layout.meta.is_empty() {
        read_file_meta(bytes, layout.meta.start, layout.meta_syntax, &mut found)?;
    }
    if layout.deflated {
        return read_deflated(bytes, &layout, &found);
    }
    read_data_set(bytes, layout.data_set_start, layout.syntax, Until::PixelData, &mut found)?;
    build_header(&found, layout.transfer_syntax)
}

/// Inflates the deflated data set that follows the meta group a little at a time, until the
/// recorded attributes have been read or the stream ends; `meta` holds the meta group's values.
fn read_deflated(bytes: &[u8], layout: &Layout, meta: &Found<'_>) -> Result<Header, DicomError> {
    let start = layout.data_set_start;
    let deflate_error = |problem: String| DicomError::Deflate { offset: start, problem };
    let mut inflater = Inflater::new(bytes.get(start..).unwrap_or_default());
    let mut want = FIRST_INFLATE;
    loop {
        inflater.fill(want).map_err(deflate_error)?;
        let inflated = inflater.out.as_slice();
        let mut found = meta.clone();
        // Some writers deflate an implicit VR data set; the inflated bytes are sniffed like plain ones.
        let outcome = read_data_set(inflated, 0, sniff_little_endian(inflated, 0), Until::Recorded, &mut found);
        match (outcome, inflater.end) {
            (Ok(Stop::PastRecorded | Stop::PixelData), _) | (Ok(Stop::End), Some(StreamEnd::Complete)) => {
                return build_header(&found, layout.transfer_syntax.clone());
            }
            (Ok(Stop::End) | Err(DicomError::Truncated { .. }), Some(StreamEnd::InputUsedUp)) => {
                return Err(deflate_error(format!(
                    "truncated: the compressed stream ends after {} inflated bytes, before its last block",
                    inflated.len()
                )));
            }
            // Only part of the stream is inflated yet: inflate more and read again.
            (Ok(Stop::End) | Err(DicomError::Truncated { .. }), None) => {}
            (Err(error), _) => return Err(DicomError::InInflated(Box::new(error))),
        }
        if want >= MAX_INFLATED {
            return Err(deflate_error(format!(
                "it inflates to more than {} MiB before the attributes the index reads end",
                MAX_INFLATED >> 20
            )));
        }
        want = want.saturating_mul(2).min(MAX_INFLATED);
    }
}

/// How a deflate stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamEnd {
    /// Its last block was inflated.
    Complete,
    /// The file ended before it did.
    InputUsedUp,
}

/// Inflates a deflate stream (RFC 1951) on demand into memory.
struct Inflater<'a> {
    input: &'a [u8],
    engine: Decompress,
    out: Vec<u8>,
    /// `None` while more may be inflated.
    end: Option<StreamEnd>,
}

impl<'a> Inflater<'a> {
    fn new(input: &'a [u8]) -> Inflater<'a> {
        Inflater { input, engine: Decompress::new(has_zlib_header(input)), out: Vec::new(), end: None }
    }

    /// Inflates until `want` bytes are out or the stream ends. Every turn of the loop consumes input,
    /// produces output or ends the stream, so it cannot spin.
    fn fill(&mut self, want: usize) -> Result<(), String> {
        while self.out.len() < want && self.end.is_none() {
            let consumed = usize::try_from(self.engine.total_in()).unwrap_or(usize::MAX);
            let rest = self.input.get(consumed..).unwrap_or_default();
            self.out.reserve_exact(want - self.out.len());
            let before = (self.engine.total_in(), self.engine.total_out());
            let status = self
                .engine
                .decompress_vec(rest, &mut self.out, FlushDecompress::None)
                .map_err(|e| format!("the compressed stream is corrupt ({e})"))?;
            if status == Status::StreamEnd {
                self.end = Some(StreamEnd::Complete);
            } else if (self.engine.total_in(), self.engine.total_out()) == before {
                self.end = Some(StreamEnd::InputUsedUp);
            }
        }
        Ok(())
    }
}

/// Whether a deflated data set carries a zlib wrapper (RFC 1950), which PS3.5 §A.5 does not allow but
/// some writers add. A zlib header is two bytes whose big endian value is a multiple of 31 with
/// compression method 8. Raw deflate data that starts the same way begins with a stored block,
/// whose length is followed by its ones' complement; such a block is taken as raw.
fn has_zlib_header(input: &[u8]) -> bool {
    let [cmf, flg, ..] = *input else {
        return false;
    };
    let header = cmf & 0x0F == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
    let stored_block = matches!(input.get(1..5), Some(&[a, b, c, d]) if a == !c && b == !d);
    header && !stored_block
}

/// Where the parts of a DICOM file are and how its data set is encoded, as [`locate`] finds them.
#[derive(Debug)]
pub(crate) struct Layout {
    /// How the data set is encoded; for a deflated one, once inflated.
    pub(crate) syntax: Syntax,
    /// Whether the data set is deflated (PS3.5 §A.5): then it starts at `data_set_start` as a deflate
    /// stream, not as elements.
    pub(crate) deflated: bool,
    /// The Transfer Syntax UID from the meta group, or the one implied by a bare data set or by a
    /// meta group that names none.
    pub(crate) transfer_syntax: String,
    /// The byte range of the File Meta Information elements; empty for a bare data set.
    pub(crate) meta: Range<usize>,
    /// How the meta group is encoded: explicit VR little endian (PS3.10 §7.1), or implicit where a
    /// writer got that wrong.
    pub(crate) meta_syntax: Syntax,
    pub(crate) data_set_start: usize,
}

/// Finds the File Meta Information and the start of the data set, and decides how the data set is
/// encoded. Shared by [`read_header`] and the whole-data-set reader, so both agree on every file.
///
/// Accepts what [`read_header`] accepts; see there.
pub(crate) fn locate(bytes: &[u8]) -> Result<Layout, DicomError> {
    let has_prefix = bytes.get(PREAMBLE_LEN..PREAMBLE_LEN + PREFIX.len()).is_some_and(|prefix| prefix == PREFIX);
    // Some writers leave out the preamble and the prefix but keep the meta group. Its first element
    // must then look explicit, so that other bytes that start 02 00 are not taken for DICOM.
    let bare_meta =
        read_u16(bytes, 0, false) == Some(0x0002) && sniff_little_endian(bytes, 0) == Syntax::ExplicitLittle;
    let meta_start = match (has_prefix, bare_meta) {
        (true, _) => PREAMBLE_LEN + PREFIX.len(),
        (false, true) => 0,
        (false, false) if read_u16(bytes, 0, false) == Some(0x0008) => {
            // Old or non-conformant writers store the data set alone, without preamble or meta
            // group, usually in implicit VR little endian, the DICOM default.
            let syntax = sniff_little_endian(bytes, 0);
            return Ok(Layout {
                syntax,
                deflated: false,
                transfer_syntax: syntax.uid().to_string(),
                meta: 0..0,
                meta_syntax: Syntax::ExplicitLittle,
                data_set_start: 0,
            });
        }
        (false, false) => return Err(DicomError::NotDicom),
    };
    let meta_syntax = sniff_little_endian(bytes, meta_start);
    let mut found = Found::default();
    let data_set_start = read_file_meta(bytes, meta_start, meta_syntax, &mut found)?;
    let named = found.get(TRANSFER_SYNTAX_UID).map(decode_uid).unwrap_or_default();
    let deflated = matches!(
        named.as_str(),
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN | JPIP_REFERENCED_DEFLATE | JPIP_HTJ2K_REFERENCED_DEFLATE
    );
    let syntax = match Syntax::from_uid(&named) {
        Syntax::ExplicitBig => Syntax::ExplicitBig,
        // Sniffed once inflated.
        _ if deflated => Syntax::ExplicitLittle,
        _ => sniff_little_endian(bytes, data_set_start),
    };
    // A meta group without a Transfer Syntax UID: the data set shows how it is encoded.
    let transfer_syntax = if named.is_empty() { syntax.uid().to_string() } else { named };
    Ok(Layout { syntax, deflated, transfer_syntax, meta: meta_start..data_set_start, meta_syntax, data_set_start })
}

/// How the data set's elements are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    ImplicitLittle,
    ExplicitLittle,
    ExplicitBig,
}

impl Syntax {
    /// How a Transfer Syntax UID says the data set is encoded. Every syntax but the two uncompressed
    /// defaults and big endian encodes it in explicit VR little endian (PS3.5 §A.4, §A.5, after
    /// inflating the deflated ones), so unknown UIDs are read that way too.
    fn from_uid(uid: &str) -> Syntax {
        match uid {
            IMPLICIT_VR_LITTLE_ENDIAN => Syntax::ImplicitLittle,
            EXPLICIT_VR_BIG_ENDIAN => Syntax::ExplicitBig,
            _ => Syntax::ExplicitLittle,
        }
    }

    /// The uncompressed transfer syntax of this encoding.
    fn uid(self) -> &'static str {
        match self {
            Syntax::ImplicitLittle => IMPLICIT_VR_LITTLE_ENDIAN,
            Syntax::ExplicitLittle => EXPLICIT_VR_LITTLE_ENDIAN,
            Syntax::ExplicitBig => EXPLICIT_VR_BIG_ENDIAN,
        }
    }
}

/// Every VR defined in PS3.5 §6.2.
pub(crate) const KNOWN_VRS: [[u8; 2]; 34] = [
    *b"AE", *b"AS", *b"AT", *b"CS", *b"DA", *b"DS", *b"DT", *b"FD", *b"FL", *b"IS", *b"LO", *b"LT", *b"OB", *b"OD",
    *b"OF", *b"OL", *b"OV", *b"OW", *b"PN", *b"SH", *b"SL", *b"SQ", *b"SS", *b"ST", *b"SV", *b"TM", *b"UC", *b"UI",
    *b"UL", *b"UN", *b"UR", *b"US", *b"UT", *b"UV",
];

/// Tells implicit from explicit VR little endian by the first element of the data set.
///
/// Some writers label an implicit VR data set as explicit (or as a compressed syntax), or the
/// reverse. An explicit element has a VR at bytes 4..6; an implicit one has the low half of its
/// length there, which would have to be at least 0x4141 to look like a VR, implausible for the
/// first element of a data set. Common toolkits apply the same check.
fn sniff_little_endian(bytes: &[u8], data_set_start: usize) -> Syntax {
    let vr = bytes.get(data_set_start.saturating_add(4)..data_set_start.saturating_add(6));
    if vr.is_some_and(|vr| KNOWN_VRS.iter().any(|known| known == vr)) {
        Syntax::ExplicitLittle
    } else {
        Syntax::ImplicitLittle
    }
}

/// The raw values of the recorded attributes, borrowed from the file, and where Pixel Data starts.
#[derive(Default, Clone)]
struct Found<'a> {
    values: Vec<(Tag, &'a [u8])>,
    pixel_data_offset: Option<u64>,
}

impl<'a> Found<'a> {
    /// Keeps the first value seen for a tag; a repeated tag is invalid and is ignored.
    fn record(&mut self, tag: Tag, value: &'a [u8]) {
        if self.get(tag).is_none() {
            self.values.push((tag, value));
        }
    }

    fn get(&self, tag: Tag) -> Option<&'a [u8]> {
        self.values.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }
}

/// The header of one data element; the value itself is not read here.
#[derive(Debug)]
pub(crate) struct ElementHeader {
    pub(crate) tag: Tag,
    /// The VR as written in the file; `None` in implicit VR and for items and delimiters.
    pub(crate) vr: Option<[u8; 2]>,
    pub(crate) length: u32,
    pub(crate) start: usize,
    pub(crate) value_start: usize,
}

impl ElementHeader {
    pub(crate) fn has_undefined_length(&self) -> bool {
        self.length == UNDEFINED_LENGTH
    }

    /// The offset just past a defined-length value, checked against the end of the bytes.
    pub(crate) fn value_end(&self, bytes: &[u8]) -> Result<usize, DicomError> {
        usize::try_from(self.length)
            .ok()
            .and_then(|length| self.value_start.checked_add(length))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| self.truncated())
    }

    fn value<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], DicomError> {
        let end = self.value_end(bytes)?;
        bytes.get(self.value_start..end).ok_or_else(|| self.truncated())
    }

    fn truncated(&self) -> DicomError {
        DicomError::Truncated { tag: Some(self.tag), offset: self.start }
    }
}

pub(crate) fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let raw: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big_endian { u16::from_be_bytes(raw) } else { u16::from_le_bytes(raw) })
}

pub(crate) fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian { u32::from_be_bytes(raw) } else { u32::from_le_bytes(raw) })
}

/// The explicit VRs followed by 2 reserved bytes and a 4-byte length; all others have a 2-byte
/// length (PS3.5 §7.1.2, Table 7.1-1).
const LONG_LENGTH_VRS: [[u8; 2]; 13] =
    [*b"OB", *b"OD", *b"OF", *b"OL", *b"OV", *b"OW", *b"SQ", *b"SV", *b"UC", *b"UN", *b"UR", *b"UT", *b"UV"];

fn has_long_length(vr: [u8; 2]) -> bool {
    LONG_LENGTH_VRS.contains(&vr)
}

/// Reads the tag, VR and length of the element starting at `pos`.
pub(crate) fn read_element(bytes: &[u8], pos: usize, syntax: Syntax) -> Result<ElementHeader, DicomError> {
    let big_endian = syntax == Syntax::ExplicitBig;
    let (Some(group), Some(element)) =
        (read_u16(bytes, pos, big_endian), read_u16(bytes, pos.saturating_add(2), big_endian))
    else {
        return Err(DicomError::Truncated { tag: None, offset: pos });
    };
    let tag = Tag::new(group, element);
    let truncated = || DicomError::Truncated { tag: Some(tag), offset: pos };
    let element = |vr, length, header_len: usize| ElementHeader {
        tag,
        vr,
        length,
        start: pos,
        value_start: pos.saturating_add(header_len),
    };

    // Items and delimiters carry no VR even in explicit VR syntaxes (PS3.5 §7.5), so they share
    // the implicit layout: tag, then a 4-byte length.
    if syntax == Syntax::ImplicitLittle || group == 0xFFFE {
        let length = read_u32(bytes, pos.saturating_add(4), big_endian).ok_or_else(truncated)?;
        return Ok(element(None, length, 8));
    }
    let vr: [u8; 2] = bytes
        .get(pos.saturating_add(4)..pos.saturating_add(6))
        .and_then(|vr| vr.try_into().ok())
        .ok_or_else(truncated)?;
    if !vr.iter().all(u8::is_ascii_uppercase) {
        return Err(DicomError::Malformed { tag, offset: pos, problem: "the VR is not two upper-case letters" });
    }
    if has_long_length(vr) {
        let length = read_u32(bytes, pos.saturating_add(8), big_endian).ok_or_else(truncated)?;
        Ok(element(Some(vr), length, 12))
    } else {
        let length = read_u16(bytes, pos.saturating_add(6), big_endian).ok_or_else(truncated)?;
        Ok(element(Some(vr), u32::from(length), 8))
    }
}

/// Reads the group 0002 File Meta Information that starts at `start` and returns where the data set
/// starts. The meta group is explicit VR little endian (PS3.10 §7.1); `syntax` says otherwise only
/// for writers that got that wrong.
fn read_file_meta<'a>(
    bytes: &'a [u8],
    start: usize,
    syntax: Syntax,
    found: &mut Found<'a>,
) -> Result<usize, DicomError> {
    // The group ends where the first element of another group begins. This is used rather than
    // (0002,0000) File Meta Information Group Length, which some writers get wrong.
    let mut pos = start;
    while read_u16(bytes, pos, false) == Some(0x0002) {
        let element = read_element(bytes, pos, syntax)?;
        if META_RECORDED.contains(&element.tag) && !element.has_undefined_length() {
            found.record(element.tag, element.value(bytes)?);
        }
        pos = skip_value(bytes, &element, syntax, 0)?;
    }
    Ok(pos)
}

/// Where [`read_data_set`] may stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// At Pixel Data, whose offset is recorded once a defined length is found to fit in the bytes.
    PixelData,
    /// At the first top-level element past [`LAST_RECORDED`]: all that a deflated data set needs.
    Recorded,
}

/// Where [`read_data_set`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    PixelData,
    PastRecorded,
    /// At the end of the bytes, or at zero padding that runs to the end.
    End,
}

/// Reads the top-level data set from `start`, recording the wanted attributes, and stops as `until`
/// says or at the end of the bytes, whichever comes first.
fn read_data_set<'a>(
    bytes: &'a [u8],
    start: usize,
    syntax: Syntax,
    until: Until,
    found: &mut Found<'a>,
) -> Result<Stop, DicomError> {
    let mut pos = start;
    while pos < bytes.len() {
        if is_zero_padding(bytes, pos)? {
            return Ok(Stop::End);
        }
        let element = read_element(bytes, pos, syntax)?;
        if until == Until::Recorded && element.tag > LAST_RECORDED {
            return Ok(Stop::PastRecorded);
        }
        pos = match element.tag {
            PIXEL_DATA => {
                // A defined length can be checked cheaply; an undefined one (encapsulated pixel
                // data, PS3.5 §A.4) is left for whoever reads the fragments.
                if !element.has_undefined_length() {
                    element.value_end(bytes)?;
                }
                found.pixel_data_offset = Some(element.value_start as u64);
                return Ok(Stop::PixelData);
            }
            // Some writers leave a stray delimiter after a sequence; stepping over it is harmless.
            ITEM_DELIMITATION | SEQUENCE_DELIMITATION => element.value_start,
            ITEM => {
                return Err(DicomError::Malformed {
                    tag: element.tag,
                    offset: pos,
                    problem: "an item outside any sequence",
                });
            }
            tag if RECORDED.contains(&tag) && !element.has_undefined_length() => {
                let value = element.value(bytes)?;
                found.record(tag, value);
                element.value_start + value.len()
            }
            _ => skip_value(bytes, &element, syntax, 0)?,
        };
    }
    Ok(Stop::End)
}

/// Whether the top-level element at `pos` starts zero padding. Some writers pad a file with zeros after
/// its last element (to a block size, say); no data set element has the tag (0000,0000), so zeros up to
/// the end end the data set, and a zero tag followed by anything else is malformed. Refusing the latter
/// also keeps the reading linear: the rest is scanned at most once.
pub(crate) fn is_zero_padding(bytes: &[u8], pos: usize) -> Result<bool, DicomError> {
    let Some(rest) = bytes.get(pos..) else {
        return Ok(false);
    };
    if rest.get(..4) != Some(&[0; 4]) {
        return Ok(false);
    }
    if rest.iter().all(|&b| b == 0) {
        Ok(true)
    } else {
        Err(DicomError::Malformed {
            tag: Tag::new(0, 0),
            offset: pos,
            problem: "a zero tag where a data element belongs, not followed by zeros only",
        })
    }
}

/// Returns the offset just past `element`'s value. A defined length is simply stepped over, which
/// also covers defined-length sequences: their contents are never needed, so implicit VR needs no
/// dictionary to know which tags are SQ.
fn skip_value(bytes: &[u8], element: &ElementHeader, syntax: Syntax, depth: usize) -> Result<usize, DicomError> {
    if !element.has_undefined_length() {
        return element.value_end(bytes);
    }
    // An undefined length means a sequence of items ended by a Sequence Delimitation Item
    // (PS3.5 §7.5.2). Encapsulated pixel data is laid out the same way, as items holding fragments.
    // A UN value of undefined length holds implicit VR little endian items whatever the transfer
    // syntax (PS3.5 §6.2.2).
    let inner = if element.vr == Some(*b"UN") { Syntax::ImplicitLittle } else { syntax };
    skip_sequence(bytes, element, inner, depth + 1)
}

/// Walks the items of an undefined-length sequence and returns the offset past its delimiter.
fn skip_sequence(bytes: &[u8], sequence: &ElementHeader, syntax: Syntax, depth: usize) -> Result<usize, DicomError> {
    if depth > MAX_DEPTH {
        return Err(DicomError::Malformed {
            tag: sequence.tag,
            offset: sequence.start,
            problem: "sequences nested too deeply",
        });
    }
    let mut pos = sequence.value_start;
    loop {
        let item = read_element(bytes, pos, syntax).map_err(|e| within(e, sequence))?;
        pos = match item.tag {
            SEQUENCE_DELIMITATION => return Ok(item.value_start),
            ITEM if item.has_undefined_length() => {
                skip_item(bytes, &item, syntax, depth).map_err(|e| within(e, sequence))?
            }
            ITEM => item.value_end(bytes)?,
            _ => {
                return Err(DicomError::Malformed {
                    tag: item.tag,
                    offset: pos,
                    problem: "expected an item or a sequence delimiter",
                });
            }
        };
    }
}

/// Walks the elements of an undefined-length item and returns the offset past its delimiter.
fn skip_item(bytes: &[u8], item: &ElementHeader, syntax: Syntax, depth: usize) -> Result<usize, DicomError> {
    let mut pos = item.value_start;
    loop {
        let element = read_element(bytes, pos, syntax).map_err(|e| within(e, item))?;
        pos = match element.tag {
            ITEM_DELIMITATION => return Ok(element.value_start),
            ITEM | SEQUENCE_DELIMITATION => {
                return Err(DicomError::Malformed {
                    tag: element.tag,
                    offset: pos,
                    problem: "expected an item delimiter",
                });
            }
            _ => skip_value(bytes, &element, syntax, depth)?,
        };
    }
}

/// Names the enclosing element when the bytes ended before the next tag could even be read.
pub(crate) fn within(error: DicomError, enclosing: &ElementHeader) -> DicomError {
    match error {
        DicomError::Truncated { tag: None, .. } => {
            DicomError::Truncated { tag: Some(enclosing.tag), offset: enclosing.start }
        }
        other => other,
    }
}

/// The character repertoire for text values, from (0008,0005) Specific Character Set (PS3.3
/// §C.12.1.1.2), whose values may be several, the first one empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// No Specific Character Set, or `ISO_IR 6`: ASCII. Writers often store other text all the
    /// same; high bytes are read as UTF-8 where they form valid UTF-8, else as Latin-1.
    Default,
    /// `ISO_IR 100` (ISO 8859-1). Also used, leniently, for the sets this reader does not know, so
    /// that stray high bytes still decode to something.
    Latin1,
    /// Any `ISO 2022 …` set, with code extensions: its escape sequences (ECMA-35) are removed and the
    /// rest read as Latin-1, which is right for `ISO 2022 IR 6` and `ISO 2022 IR 100`.
    Iso2022,
    /// `ISO_IR 192`.
    Utf8,
}

impl Charset {
    pub(crate) fn from_value(value: Option<&[u8]>) -> Charset {
        let Some(value) = value else {
            return Charset::Default;
        };
        let terms = || value.split(|&b| b == b'\\').map(trim_text);
        if terms().any(|term| term == b"ISO_IR 192") {
            Charset::Utf8
        } else if terms().any(|term| term.starts_with(b"ISO 2022")) {
            Charset::Iso2022
        } else if terms().all(|term| term.is_empty() || term == b"ISO_IR 6") {
            Charset::Default
        } else {
            Charset::Latin1
        }
    }

    pub(crate) fn decode(self, bytes: &[u8]) -> String {
        let latin1 = |bytes: &[u8]| bytes.iter().map(|&b| char::from(b)).collect();
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Charset::Latin1 => latin1(bytes),
            Charset::Iso2022 => latin1(&without_escape_sequences(bytes)),
            Charset::Default => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_owned(),
                Err(_) => latin1(bytes),
            },
        }
    }
}

/// Removes ISO 2022 escape sequences: ESC, any intermediate bytes 0x20-0x2F, and a final byte
/// (ECMA-35 §13.1). Each turn of the loop consumes at least one byte.
fn without_escape_sequences(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let [first, tail @ ..] = rest {
        if *first == 0x1B {
            let intermediates = tail.iter().take_while(|b| (0x20..=0x2F).contains(*b)).count();
            rest = tail.get(intermediates + 1..).unwrap_or_default();
        } else {
            out.push(*first);
            rest = tail;
        }
    }
    out
}

/// Removes the trailing space and NUL padding of an even-length value (PS3.5 §6.2).
fn trim_padding(mut value: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | 0] = value {
        value = rest;
    }
    value
}

/// Removes padding and leading spaces, which are insignificant in the string VRs read here.
fn trim_text(mut value: &[u8]) -> &[u8] {
    value = trim_padding(value);
    while let [b' ', rest @ ..] = value {
        value = rest;
    }
    value
}

fn decode_uid(value: &[u8]) -> String {
    Charset::Latin1.decode(trim_padding(value))
}

/// Parses the first value of an Integer String (IS); a value that is not an integer gives `None`.
pub(crate) fn parse_integer_string(value: &[u8]) -> Option<i64> {
    let first = value.split(|&b| b == b'\\').next()?;
    std::str::from_utf8(trim_text(first)).ok()?.parse().ok()
}

/// Decodes the recorded values into a `Header` and checks the identifying UIDs are present.
fn build_header(found: &Found<'_>, transfer_syntax: String) -> Result<Header, DicomError> {
    let charset = Charset::from_value(found.get(SPECIFIC_CHARACTER_SET));
    let uid = |tag| found.get(tag).map(decode_uid).unwrap_or_default();
    // The meta group repeats the SOP class and instance (PS3.10 §7.1), a fallback for data sets
    // that omit them.
    let uid_or = |tag, fallback| match uid(tag) {
        value if value.is_empty() => uid(fallback),
        value => value,
    };
    // PN, LO, SH and similar VRs use the Specific Character Set; DA, TM and CS are restricted to
    // the default repertoire, which Latin-1 decodes identically. Each value of a multi-valued
    // string loses its own padding; the backslashes between them stay.
    let text = |tag| {
        let value = found.get(tag).map(trim_text).unwrap_or_default();
        let text = charset.decode(value);
        if text.contains('\\') {
            text.split('\\').map(|v| v.trim_matches([' ', '\0'])).collect::<Vec<_>>().join("\\")
        } else {
            text
        }
    };
    let code = |tag| Charset::Latin1.decode(found.get(tag).map(trim_text).unwrap_or_default());
    let integer = |tag| found.get(tag).and_then(parse_integer_string);

    let header = Header {
        transfer_syntax,
        sop_class_uid: uid_or(SOP_CLASS_UID, MEDIA_STORAGE_SOP_CLASS_UID),
        sop_instance_uid: uid_or(SOP_INSTANCE_UID, MEDIA_STORAGE_SOP_INSTANCE_UID),
        study_instance_uid: uid(STUDY_INSTANCE_UID),
        series_instance_uid: uid(SERIES_INSTANCE_UID),
        patient_id: text(PATIENT_ID),
        issuer_of_patient_id: text(ISSUER_OF_PATIENT_ID),
        patient_name: text(PATIENT_NAME),
        patient_birth_date: code(PATIENT_BIRTH_DATE),
        patient_sex: code(PATIENT_SEX),
        study_date: code(STUDY_DATE),
        study_time: code(STUDY_TIME),
        timezone_offset: text(TIMEZONE_OFFSET_FROM_UTC),
        accession_number: text(ACCESSION_NUMBER),
        study_id: text(STUDY_ID),
        study_description: text(STUDY_DESCRIPTION),
        referring_physician_name: text(REFERRING_PHYSICIAN_NAME),
        series_number: integer(SERIES_NUMBER),
        modality: code(MODALITY),
        series_description: text(SERIES_DESCRIPTION),
        instance_number: integer(INSTANCE_NUMBER),
        number_of_frames: integer(NUMBER_OF_FRAMES).and_then(|n| u32::try_from(n).ok()),
        pixel_data_offset: found.pixel_data_offset,
    };

    if header.sop_class_uid == MEDIA_STORAGE_DIRECTORY_STORAGE {
        return Err(DicomError::Directory);
    }
    require(&header.sop_instance_uid, "SOP Instance UID", SOP_INSTANCE_UID)?;
    require(&header.study_instance_uid, "Study Instance UID", STUDY_INSTANCE_UID)?;
    require(&header.series_instance_uid, "Series Instance UID", SERIES_INSTANCE_UID)?;
    Ok(header)
}

/// The index cannot place an instance without its three UIDs, so their absence is an error.
fn require(value: &str, attribute: &'static str, tag: Tag) -> Result<(), DicomError> {
    if value.is_empty() { Err(DicomError::Missing { attribute, tag }) } else { Ok(()) }
}

/// Encoders for annotated byte fixtures, shared by the unit tests of the DICOM modules. Each returns
/// the encoded bytes of one element so that a fixture reads as a list of elements, one per line.
/// Lengths are computed from the value; the comments on the fixture lines state them so the layout
/// can be checked by eye.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) const CT_IMAGE_STORAGE: &[u8] = b"1.2.840.10008.5.1.4.1.1.2\0";

    /// An explicit VR element; the VR decides between the 2-byte and the 4-byte length form.
    pub(crate) fn explicit(big_endian: bool, group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let u16_bytes = |v: u16| {
            if big_endian { v.to_be_bytes() } else { v.to_le_bytes() }
        };
        let length = u32::try_from(value.len()).unwrap();
        let mut out = [u16_bytes(group), u16_bytes(element)].concat();
        out.extend_from_slice(vr);
        if has_long_length(*vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&if big_endian { length.to_be_bytes() } else { length.to_le_bytes() });
        } else {
            out.extend_from_slice(&u16_bytes(u16::try_from(length).unwrap()));
        }
        out.extend_from_slice(value);
        out
    }

    /// An explicit VR little endian element.
    pub(crate) fn ex(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        explicit(false, group, element, vr, value)
    }

    /// An explicit VR big endian element.
    pub(crate) fn ex_be(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        explicit(true, group, element, vr, value)
    }

    /// An implicit VR little endian element.
    pub(crate) fn im(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
        let length = u32::try_from(value.len()).unwrap();
        [&group.to_le_bytes()[..], &element.to_le_bytes(), &length.to_le_bytes(), value].concat()
    }

    /// The header of an explicit VR little endian element of undefined length (no value follows).
    pub(crate) fn ex_undefined(group: u16, element: u16, vr: &[u8; 2]) -> Vec<u8> {
        [&group.to_le_bytes()[..], &element.to_le_bytes(), vr, &[0, 0], &[0xFF; 4]].concat()
    }

    /// The header of an implicit VR little endian element of undefined length.
    pub(crate) fn im_undefined(group: u16, element: u16) -> Vec<u8> {
        [&group.to_le_bytes()[..], &element.to_le_bytes(), &[0xFF; 4]].concat()
    }

    /// A little endian item header of the given length (`u32::MAX` for undefined).
    pub(crate) fn item(length: u32) -> Vec<u8> {
        [&[0xFE, 0xFF, 0x00, 0xE0][..], &length.to_le_bytes()].concat()
    }

    /// The little endian Item Delimitation Item (FFFE,E00D).
    pub(crate) fn item_end() -> Vec<u8> {
        vec![0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]
    }

    /// The little endian Sequence Delimitation Item (FFFE,E0DD).
    pub(crate) fn seq_end() -> Vec<u8> {
        vec![0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]
    }

    /// The raw deflate stream (RFC 1951, no zlib header) of `data`, as PS3.5 §A.5 stores a deflated
    /// data set after the meta group.
    pub(crate) fn deflate(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// The 128-byte preamble, "DICM" and a File Meta Information group for `transfer_syntax`.
    pub(crate) fn part10(transfer_syntax: &str) -> Vec<u8> {
        let mut ts = transfer_syntax.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        let group = [
            ex(0x0002, 0x0001, b"OB", &[0x00, 0x01]), // (0002,0001) OB len 2: meta version 1
            ex(0x0002, 0x0002, b"UI", CT_IMAGE_STORAGE), // (0002,0002) UI len 26: SOP Class
            ex(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6\0"), // (0002,0003) UI len 12: SOP Instance
            ex(0x0002, 0x0010, b"UI", &ts),           // (0002,0010) UI: transfer syntax
        ]
        .concat();
        let group_length = u32::try_from(group.len()).unwrap().to_le_bytes();
        [
            vec![0; 128],                             // preamble
            b"DICM".to_vec(),                         // prefix
            ex(0x0002, 0x0000, b"UL", &group_length), // (0002,0000) UL len 4: group length
            group,
        ]
        .concat()
    }

    /// Flips 1 to 4 bytes and sometimes truncates, `rounds` times over the fixtures, and hands each
    /// mutant to `check`. xorshift64 keeps it deterministic without a dependency.
    pub(crate) fn mutate_each(fixtures: &[Vec<u8>], rounds: usize, mut check: impl FnMut(&[u8])) {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..rounds {
            let mut file = fixtures[round % fixtures.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = usize::try_from(next() % file.len() as u64).unwrap();
                // Mostly random bytes, sometimes 0xFF or 0x00 to make undefined or empty lengths.
                file[at] = match next() % 4 {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => next() as u8,
                };
            }
            if next() % 5 == 0 {
                let keep = usize::try_from(next() % file.len() as u64).unwrap();
                file.truncate(keep);
            }
            check(&file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";

    /// The three identifying UIDs, explicit VR little endian.
    fn uids_ex() -> Vec<u8> {
        [
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat()
    }

    fn explicit_little_endian_file() -> Vec<u8> {
        [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0005, b"CS", b"ISO_IR 100"), // (0008,0005) CS len 10: Character Set
            ex(0x0008, 0x0016, b"UI", CT_IMAGE_STORAGE), // (0008,0016) UI len 26: SOP Class
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            ex(0x0008, 0x0020, b"DA", b"20240131"),   // (0008,0020) DA len 8: Study Date
            ex(0x0008, 0x0030, b"TM", b"101500.25 "), // (0008,0030) TM len 10: Study Time
            ex(0x0008, 0x0050, b"SH", b"ACC-1 "),     // (0008,0050) SH len 6: Accession Number
            ex(0x0008, 0x0060, b"CS", b"CT"),         // (0008,0060) CS len 2: Modality
            ex(0x0008, 0x0090, b"PN", b"Who^Doctor"), // (0008,0090) PN len 10: Referring Phys.
            ex(0x0008, 0x0201, b"SH", b"+0100 "),     // (0008,0201) SH len 6: Timezone Offset
            ex(0x0008, 0x1030, b"LO", b" Head CT "),  // (0008,1030) LO len 9, odd: Study Descr.
            ex(0x0008, 0x103E, b"LO", b"Axial 5mm "), // (0008,103E) LO len 10: Series Descr.
            // (0010,0010) PN len 8: Patient Name, written out byte by byte to check the builder.
            vec![0x10, 0x00, 0x10, 0x00, b'P', b'N', 0x08, 0x00],
            b"Doe^Jane".to_vec(),
            ex(0x0010, 0x0020, b"LO", b"P-42"),     // (0010,0020) LO len 4: Patient ID
            ex(0x0010, 0x0021, b"LO", b"HOSP"),     // (0010,0021) LO len 4: Issuer of Patient ID
            ex(0x0010, 0x0030, b"DA", b"19700101"), // (0010,0030) DA len 8: Patient Birth Date
            ex(0x0010, 0x0040, b"CS", b"F "),       // (0010,0040) CS len 2: Patient Sex
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"), // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"), // (0020,000E) UI len 10: Series UID
            ex(0x0020, 0x0010, b"SH", b"S1"),       // (0020,0010) SH len 2: Study ID
            ex(0x0020, 0x0011, b"IS", b"3 "),       // (0020,0011) IS len 2: Series Number
            ex(0x0020, 0x0013, b"IS", b"17"),       // (0020,0013) IS len 2: Instance Number
            ex(0x0028, 0x0010, b"US", &[2, 0]),     // (0028,0010) US len 2: Rows, not recorded
            // (7FE0,0010) OW len 8: Pixel Data, 2x2 16-bit pixels, written out byte by byte.
            vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0x08, 0x00, 0x00, 0x00],
            vec![1, 0, 2, 0, 3, 0, 4, 0],
        ]
        .concat()
    }

    fn implicit_little_endian_file() -> Vec<u8> {
        [
            part10(IMPLICIT_VR_LITTLE_ENDIAN),
            im(0x0008, 0x0016, CT_IMAGE_STORAGE), // (0008,0016) UI len 26: SOP Class
            im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            im(0x0008, 0x0060, b"MR"),            // (0008,0060) CS len 2: Modality
            im(0x0010, 0x0010, b"Roe^Richard "),  // (0010,0010) PN len 12: Patient Name
            im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
            im(0x0028, 0x0008, b"12"),            // (0028,0008) IS len 2: Number of Frames
            im(0x7FE0, 0x0010, &[0; 4]),          // (7FE0,0010) OW len 4: Pixel Data
        ]
        .concat()
    }

    #[test]
    fn reads_explicit_vr_little_endian_part10_file() {
        let file = explicit_little_endian_file();
        let header = read_header(&file).unwrap();
        let expected = Header {
            transfer_syntax: EXPLICIT_VR_LITTLE_ENDIAN.into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "1.2.3.4.5.6".into(),
            study_instance_uid: "1.2.3.4".into(),
            series_instance_uid: "1.2.3.4.5".into(),
            patient_id: "P-42".into(),
            issuer_of_patient_id: "HOSP".into(),
            patient_name: "Doe^Jane".into(),
            patient_birth_date: "19700101".into(),
            patient_sex: "F".into(),
            study_date: "20240131".into(),
            study_time: "101500.25".into(),
            timezone_offset: "+0100".into(),
            accession_number: "ACC-1".into(),
            study_id: "S1".into(),
            study_description: "Head CT".into(),
            referring_physician_name: "Who^Doctor".into(),
            series_number: Some(3),
            modality: "CT".into(),
            series_description: "Axial 5mm".into(),
            instance_number: Some(17),
            number_of_frames: None,
            pixel_data_offset: Some(file.len() as u64 - 8),
        };
        assert_eq!(header, expected);
    }

    #[test]
    fn reads_implicit_vr_little_endian_part10_file() {
        let file = implicit_little_endian_file();
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
        assert_eq!(header.modality, "MR");
        assert_eq!(header.patient_name, "Roe^Richard");
        assert_eq!(header.number_of_frames, Some(12));
        assert_eq!(header.pixel_data_offset, Some(file.len() as u64 - 4));
    }

    #[test]
    fn reads_explicit_vr_big_endian_file() {
        let file = [
            part10(EXPLICIT_VR_BIG_ENDIAN),                 // meta group stays little endian
            ex_be(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            ex_be(0x0010, 0x0010, b"PN", b"Big^Endian"),    // (0010,0010) PN len 10: Patient Name
            ex_be(0x0018, 0x1030, b"SQ", &[]),              // (0018,1030) SQ len 0: empty sequence
            ex_be(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            ex_be(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
            ex_be(0x0020, 0x0013, b"IS", b"260 "),          // (0020,0013) IS len 4: Instance Number
            ex_be(0x0028, 0x0010, b"US", &[0x01, 0x00]),    // (0028,0010) US len 2: Rows = 256
            ex_be(0x7FE0, 0x0010, b"OW", &[0, 1, 0, 2]),    // (7FE0,0010) OW len 4: Pixel Data
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, EXPLICIT_VR_BIG_ENDIAN);
        assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
        assert_eq!(header.patient_name, "Big^Endian");
        assert_eq!(header.series_instance_uid, "1.2.3.4.5");
        assert_eq!(header.instance_number, Some(260));
        assert_eq!(header.pixel_data_offset, Some(file.len() as u64 - 4));
    }

    #[test]
    fn records_offset_of_encapsulated_pixel_data() {
        let before_pixel_data = [
            part10(JPEG_BASELINE),
            uids_ex(),
            ex(0x0028, 0x0008, b"IS", b"2 "), // (0028,0008) IS len 2: Number of Frames
        ]
        .concat();
        let file = [
            before_pixel_data.clone(),
            ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
            item(0),                             // (FFFE,E000) len 0: empty Basic Offset Table
            item(4),                             // (FFFE,E000) len 4: first fragment
            vec![0xFF, 0xD8, 0xFF, 0xD9],        // JPEG SOI, EOI
            seq_end(),                           // (FFFE,E0DD) len 0: end of fragments
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, JPEG_BASELINE);
        assert_eq!(header.number_of_frames, Some(2));
        // The value starts after tag (4), VR (2), reserved (2) and length (4).
        assert_eq!(header.pixel_data_offset, Some(before_pixel_data.len() as u64 + 12));
    }

    #[test]
    fn reads_bare_implicit_data_set_without_preamble() {
        let file = [
            im(0x0008, 0x0016, CT_IMAGE_STORAGE), // (0008,0016) UI len 26: SOP Class
            im(0x0008, 0x0018, b"9.8.7.6\0"),     // (0008,0018) UI len 8: SOP Instance
            im(0x0010, 0x0020, b"ID7 "),          // (0010,0020) LO len 4: Patient ID
            im(0x0020, 0x000D, b"9.8\0"),         // (0020,000D) UI len 4: Study UID
            im(0x0020, 0x000E, b"9.8.7\0"),       // (0020,000E) UI len 6: Series UID
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(header.sop_instance_uid, "9.8.7.6");
        assert_eq!(header.patient_id, "ID7");
        assert_eq!(header.study_instance_uid, "9.8");
        assert_eq!(header.series_instance_uid, "9.8.7");
        assert_eq!(header.pixel_data_offset, None);
    }

    #[test]
    fn skips_nested_undefined_length_sequences() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            uids_ex(),
            ex_undefined(0x0008, 0x1115, b"SQ"), // (0008,1115) SQ undefined: Referenced Series
            item(u32::MAX),                      //   (FFFE,E000) undefined: item 1
            ex(0x0010, 0x0010, b"PN", b"Nested"), //     (0010,0010) PN len 6: not top level
            ex_undefined(0x0008, 0x1140, b"SQ"), //     (0008,1140) SQ undefined: nested
            item(u32::MAX),                      //       (FFFE,E000) undefined: item
            ex(0x0008, 0x1155, b"UI", b"1.9\0"), //         (0008,1155) UI len 4: Ref. SOP
            ex(0x7FE0, 0x0010, b"OB", &[0; 2]),  //         (7FE0,0010) OB len 2: icon pixels
            item_end(),                          //       (FFFE,E00D): end of item
            item(12),                            //       (FFFE,E000) len 12: defined length
            ex(0x0008, 0x1150, b"UI", b"1.8\0"), //         (0008,1150) UI len 4: Ref. Class
            seq_end(),                           //     (FFFE,E0DD): end of nested sequence
            item_end(),                          //   (FFFE,E00D): end of item 1
            item(u32::MAX),                      //   (FFFE,E000) undefined: item 2, empty
            item_end(),                          //   (FFFE,E00D): end of item 2
            seq_end(),                           // (FFFE,E0DD): end of Referenced Series
            ex(0x0010, 0x0010, b"PN", b"Top^Level "), // (0010,0010) PN len 10: Patient Name
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.patient_name, "Top^Level");
        assert_eq!(header.pixel_data_offset, None);
    }

    #[test]
    fn skips_defined_length_sequence() {
        let inner = [
            item(12),                            // (FFFE,E000) len 12: item
            ex(0x0008, 0x1150, b"UI", b"1.8\0"), //   (0008,1150) UI len 4: Ref. SOP Class
        ]
        .concat();
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0060, b"CS", b"US"),  // (0008,0060) CS len 2: Modality
            ex(0x0008, 0x1110, b"SQ", &inner), // (0008,1110) SQ len 20: Ref. Study
            uids_ex(),
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.modality, "US");
        assert_eq!(header.study_instance_uid, "1.2.3.4");
    }

    #[test]
    fn reads_un_of_undefined_length_as_implicit_vr() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            ex_undefined(0x0009, 0x1010, b"UN"),         // (0009,1010) UN undefined: private SQ
            item(u32::MAX),                              //   (FFFE,E000) undefined: item
            im(0x0009, 0x1020, b"private"),              //     (0009,1020) implicit len 7 (odd)
            im_undefined(0x0009, 0x1030),                //     (0009,1030) implicit SQ undefined
            item(u32::MAX),                              //       (FFFE,E000) undefined: item
            im(0x0009, 0x1040, b"x "),                   //         (0009,1040) implicit len 2
            item_end(),                                  //       (FFFE,E00D): end of item
            seq_end(),                                   //     (FFFE,E0DD): end of sequence
            item_end(),                                  //   (FFFE,E00D): end of item
            seq_end(),                                   // (FFFE,E0DD): end of UN
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.series_instance_uid, "1.2.3.4.5");
    }

    #[test]
    fn decodes_latin1_name() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0005, b"CS", b"ISO_IR 100"), // (0008,0005) CS len 10: Latin-1
            uids_ex(),
            ex(0x0010, 0x0010, b"PN", b"M\xFCller^Hans "), // (0010,0010) PN len 12: "Müller^Hans"
        ]
        .concat();
        assert_eq!(read_header(&file).unwrap().patient_name, "Müller^Hans");
    }

    #[test]
    fn decodes_utf8_name() {
        let name = "Dvořák^Antonín"; // 16 bytes in UTF-8
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0005, b"CS", b"ISO_IR 192"), // (0008,0005) CS len 10: UTF-8
            uids_ex(),
            ex(0x0010, 0x0010, b"PN", name.as_bytes()), // (0010,0010) PN len 16: Patient Name
        ]
        .concat();
        assert_eq!(read_header(&file).unwrap().patient_name, name);
    }

    #[test]
    fn default_character_set_maps_high_bytes_as_latin1_and_keeps_backslashes() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            uids_ex(),
            ex(0x0010, 0x0010, b"PN", b"S\xE9n^A\\Alias"), // (0010,0010) PN len 12: two values
        ]
        .concat();
        assert_eq!(read_header(&file).unwrap().patient_name, "Sén^A\\Alias");
    }

    #[test]
    fn parses_padded_integer_strings() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            uids_ex(),
            ex(0x0020, 0x0011, b"IS", b" +12 "), // (0020,0011) IS len 5: Series Number, padded
            ex(0x0020, 0x0013, b"IS", b"-4\\5 "), // (0020,0013) IS len 5: Instance Number
            ex(0x0028, 0x0008, b"IS", b"x1"),    // (0028,0008) IS len 2: Frames, not a number
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.series_number, Some(12));
        assert_eq!(header.instance_number, Some(-4));
        assert_eq!(header.number_of_frames, None);
        assert_eq!(parse_integer_string(b"7\0"), Some(7));
        assert_eq!(parse_integer_string(b""), None);
    }

    #[test]
    fn truncated_file_names_the_element() {
        let mut file = explicit_little_endian_file();
        let name_at = find(&file, b"Doe^Jane") - 8;
        file.truncate(name_at + 11); // inside the value of (0010,0010)
        let error = read_header(&file).unwrap_err();
        assert_eq!(error, DicomError::Truncated { tag: Some(PATIENT_NAME), offset: name_at });
        assert_eq!(error.to_string(), format!("truncated in element (0010,0010) at byte {name_at}"));
    }

    #[test]
    fn truncated_inside_sequence_names_the_open_item() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            uids_ex(),
            ex_undefined(0x0008, 0x1115, b"SQ"), // (0008,1115) SQ undefined, never closed
            item(u32::MAX),                      //   (FFFE,E000) undefined: item, never closed
        ]
        .concat();
        let message = read_header(&file).unwrap_err().to_string();
        assert!(message.starts_with("truncated in element (FFFE,E000)"), "{message}");
    }

    #[test]
    fn rejects_non_dicom_bytes() {
        let error = read_header(b"%PDF-1.7 this is not an image").unwrap_err();
        assert_eq!(error, DicomError::NotDicom);
        assert!(error.to_string().contains("no DICM prefix at byte 128"));
        assert_eq!(read_header(&[]).unwrap_err(), DicomError::NotDicom);
        assert_eq!(read_header(&[0u8; 200]).unwrap_err(), DicomError::NotDicom);
    }

    #[test]
    fn rejects_missing_sop_instance_uid() {
        let explicit_le = b"1.2.840.10008.1.2.1\0";
        let file = [
            vec![0; 128],
            b"DICM".to_vec(),
            ex(0x0002, 0x0010, b"UI", explicit_le), // (0002,0010) UI len 20: syntax
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"), // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"), // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let error = read_header(&file).unwrap_err();
        assert_eq!(error.to_string(), "missing SOP Instance UID (0008,0018)");
    }

    #[test]
    fn names_a_dicomdir_for_what_it_is() {
        let file = [
            vec![0; 128],
            b"DICM".to_vec(),
            ex(0x0002, 0x0002, b"UI", b"1.2.840.10008.1.3.10"), // (0002,0002) UI len 20: DICOMDIR
            ex(0x0002, 0x0003, b"UI", b"1.2.3\0"),              // (0002,0003) UI len 6
            ex(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0"), // (0002,0010) UI len 20: syntax
            ex(0x0004, 0x1130, b"CS", b"DISK"),                 // (0004,1130) CS len 4: File-set ID
        ]
        .concat();
        assert_eq!(read_header(&file).unwrap_err(), DicomError::Directory);
    }

    #[test]
    fn falls_back_to_meta_information_uids() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"), // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"), // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
    }

    /// The data set of a small deflated CT instance, before deflating.
    fn deflatable_data_set() -> Vec<u8> {
        [
            ex(0x0008, 0x0005, b"CS", b"ISO_IR 192"),        // (0008,0005) CS len 10: UTF-8
            ex(0x0008, 0x0016, b"UI", CT_IMAGE_STORAGE),     // (0008,0016) UI len 26: SOP Class
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"),     // (0008,0018) UI len 12: SOP Instance
            ex(0x0008, 0x0060, b"CS", b"CT"),                // (0008,0060) CS len 2: Modality
            ex_undefined(0x0008, 0x1115, b"SQ"),             // (0008,1115) SQ undefined: Ref. Series
            item(u32::MAX),                                  //   (FFFE,E000) undefined: item
            ex(0x0020, 0x000E, b"UI", b"9.9\0"),             //     (0020,000E) UI len 4: not top level
            item_end(),                                      //   (FFFE,E00D): end of item
            seq_end(),                                       // (FFFE,E0DD): end of sequence
            ex(0x0010, 0x0010, b"PN", "Ærø^Åse".as_bytes()), // (0010,0010) PN len 10: UTF-8 name
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),         // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),       // (0020,000E) UI len 10: Series UID
            ex(0x0028, 0x0008, b"IS", b"3 "),                // (0028,0008) IS len 2: Number of Frames
            ex(0x0028, 0x0010, b"US", &[2, 0]),              // (0028,0010) US len 2: Rows = 2
            ex(0x7FE0, 0x0010, b"OW", &[0; 24]),             // (7FE0,0010) OW len 24: Pixel Data
        ]
        .concat()
    }

    /// A deflate stream of `prefix`, then `mib` MiB of zeros, only a few KiB long: one sync-flushed
    /// block of 1 MiB of zeros, made once the window holds only zeros, is repeated (its matches
    /// then only reach back over zeros), and an empty final stored block ends the stream.
    fn deflate_then_zeros(prefix: &[u8], mib: usize) -> Vec<u8> {
        use flate2::{Compress, Compression, FlushCompress};
        let mut compress = Compress::new(Compression::best(), false);
        let mut sync = |input: &[u8]| {
            let mut out = Vec::with_capacity(input.len() + 1024);
            let before = compress.total_in();
            compress.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
            assert_eq!(compress.total_in() - before, input.len() as u64, "the whole input is compressed");
            out
        };
        let zeros = vec![0; 1 << 20];
        let mut stream = [sync(prefix), sync(&zeros)].concat();
        let block = sync(&zeros);
        for _ in 2..mib {
            stream.extend_from_slice(&block);
        }
        stream.extend_from_slice(&[0x01, 0x00, 0x00, 0xFF, 0xFF]); // final stored block, length 0
        stream
    }

    #[test]
    fn reads_deflated_explicit_vr_little_endian_file() {
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&deflatable_data_set())].concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
        assert_eq!(header.study_instance_uid, "1.2.3.4");
        assert_eq!(header.series_instance_uid, "1.2.3.4.5");
        assert_eq!(header.patient_name, "Ærø^Åse");
        assert_eq!(header.modality, "CT");
        assert_eq!(header.number_of_frames, Some(3));
        // An offset into the inflated bytes would mean nothing in the file.
        assert_eq!(header.pixel_data_offset, None);
    }

    #[test]
    fn reads_deflated_data_set_without_pixel_data_to_the_end_of_the_stream() {
        let data_set = [
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
        assert_eq!(read_header(&file).unwrap().series_instance_uid, "1.2.3.4.5");
    }

    #[test]
    fn reads_deflated_data_set_in_a_zlib_wrapper() {
        use std::io::Write;
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&deflatable_data_set()).unwrap();
        let stream = zlib.finish().unwrap();
        assert_eq!(stream[0], 0x78, "a zlib header starts the stream");
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), stream].concat();
        assert_eq!(read_header(&file).unwrap().sop_instance_uid, "1.2.3.4.5.6");
    }

    #[test]
    fn reads_deflated_implicit_data_set_mislabelled_as_explicit() {
        let data_set = [
            im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
        assert_eq!(read_header(&file).unwrap().study_instance_uid, "1.2.3.4");
    }

    #[test]
    fn inflates_further_when_the_recorded_attributes_lie_deeper() {
        let data_set = [
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            ex(0x0009, 0x1010, b"OB", &vec![7; 300_000]), // (0009,1010) OB len 300000: private blob
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        assert!(data_set.len() > 4 * FIRST_INFLATE, "the first tries must fall short");
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
        assert_eq!(read_header(&file).unwrap().series_instance_uid, "1.2.3.4.5");
    }

    #[test]
    fn stops_inflating_after_the_recorded_attributes() {
        let prefix = [
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            ex(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            ex(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
            // (0029,1010) OB len 0x7FFFFFFE: a private blob that the zeros below only begin.
            [&[0x29, 0x00, 0x10, 0x10][..], b"OB", &[0, 0], &0x7FFF_FFFEu32.to_le_bytes()].concat(),
        ]
        .concat();
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate_then_zeros(&prefix, 200)].concat();
        assert!(file.len() < 1 << 20, "the fixture is small: {} bytes", file.len());
        assert_eq!(read_header(&file).unwrap().series_instance_uid, "1.2.3.4.5");
    }

    #[test]
    fn refuses_a_deflate_bomb_before_the_recorded_attributes() {
        let prefix = [
            ex(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            // (0009,1010) OB len 0x7FFFFFFE: a private blob of zeros before the Study UID.
            [&[0x09, 0x00, 0x10, 0x10][..], b"OB", &[0, 0], &0x7FFF_FFFEu32.to_le_bytes()].concat(),
        ]
        .concat();
        let mib = (MAX_INFLATED >> 20) + 8;
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate_then_zeros(&prefix, mib)].concat();
        let error = read_header(&file).unwrap_err();
        assert_eq!(
            error.to_string(),
            "deflated data set at byte 242: it inflates to more than 64 MiB before the attributes the index reads end"
        );
    }

    #[test]
    fn reports_a_truncated_deflate_stream() {
        let mut file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&deflatable_data_set())].concat();
        file.truncate(file.len() - 40);
        let message = read_header(&file).unwrap_err().to_string();
        assert!(
            message.starts_with("deflated data set at byte 242: truncated: the compressed stream ends"),
            "{message}"
        );
    }

    #[test]
    fn reports_a_corrupt_deflate_stream() {
        // A block type of 3 is reserved (RFC 1951 §3.2.3): 0x07 is BFINAL = 1, BTYPE = 11.
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), vec![0x07, 0x00, 0x00, 0x00]].concat();
        let message = read_header(&file).unwrap_err().to_string();
        assert!(message.starts_with("deflated data set at byte 242: the compressed stream is corrupt"), "{message}");
    }

    #[test]
    fn names_the_inflated_offset_of_a_malformed_element() {
        let data_set = [
            ex(0x0008, 0x0060, b"CS", b"CT"), // (0008,0060) CS len 2: Modality
            ex(0x0008, 0x0070, b"lo", b"X "), // (0008,0070) "lo" len 2: not a VR
        ]
        .concat();
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
        let error = read_header(&file).unwrap_err();
        assert_eq!(
            error.to_string(),
            "in the inflated data set: malformed element (0008,0070) at byte 10: the VR is not two upper-case letters"
        );
    }

    #[test]
    fn tells_zlib_headers_from_raw_stored_blocks() {
        assert!(has_zlib_header(&[0x78, 0x9C, 1, 2, 3, 4]));
        assert!(has_zlib_header(&[0x78, 0x01, 1, 2, 3, 4]));
        // 0x78 0x9C as a raw stored block: LEN 0x029C, NLEN its complement 0xFD63.
        assert!(!has_zlib_header(&[0x78, 0x9C, 0x02, 0x63, 0xFD]));
        assert!(!has_zlib_header(&[0x78, 0x9D, 1, 2, 3, 4])); // not a multiple of 31
        assert!(!has_zlib_header(&[0x78]));
    }

    #[test]
    fn rejects_sequences_nested_too_deeply() {
        let mut file = [part10(EXPLICIT_VR_LITTLE_ENDIAN), uids_ex()].concat();
        for _ in 0..100 {
            file.extend(ex_undefined(0x0008, 0x1115, b"SQ")); // (0008,1115) SQ undefined
            file.extend(item(u32::MAX)); //   (FFFE,E000) undefined item
        }
        let message = read_header(&file).unwrap_err().to_string();
        assert!(message.contains("nested too deeply"), "{message}");
    }

    #[test]
    fn rejects_invalid_explicit_vr() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0060, b"CS", b"CT"), // (0008,0060) CS len 2: Modality
            im(0x0008, 0x0018, b"1.2\0"),     // (0008,0018) implicit len 4: wrong encoding
        ]
        .concat();
        let message = read_header(&file).unwrap_err().to_string();
        assert!(message.starts_with("malformed element (0008,0018)"), "{message}");
    }

    #[test]
    fn reads_implicit_data_set_mislabelled_as_explicit() {
        let file = [
            part10(JPEG_BASELINE),                // says explicit VR little endian
            im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, JPEG_BASELINE);
        assert_eq!(header.series_instance_uid, "1.2.3.4.5");
    }

    #[test]
    fn reads_bare_explicit_data_set_without_preamble() {
        let file = [
            ex(0x0008, 0x0060, b"CS", b"OT"), // (0008,0060) CS len 2: Modality
            uids_ex(),
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(header.modality, "OT");
        assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");
    }

    #[test]
    fn reads_every_encapsulated_transfer_syntax_as_explicit_little_endian() {
        for syntax in [
            "1.2.840.10008.1.2.4.50",  // JPEG Baseline
            "1.2.840.10008.1.2.4.51",  // JPEG Extended
            "1.2.840.10008.1.2.4.57",  // JPEG Lossless
            "1.2.840.10008.1.2.4.70",  // JPEG Lossless SV1
            "1.2.840.10008.1.2.4.80",  // JPEG-LS Lossless
            "1.2.840.10008.1.2.4.81",  // JPEG-LS Near-Lossless
            "1.2.840.10008.1.2.4.90",  // JPEG 2000 Lossless
            "1.2.840.10008.1.2.4.91",  // JPEG 2000
            "1.2.840.10008.1.2.4.201", // HTJ2K Lossless
            "1.2.840.10008.1.2.4.100", // MPEG2 Main Profile
            "1.2.840.10008.1.2.5",     // RLE Lossless
            "1.2.840.10008.1.2.1.98",  // Encapsulated Uncompressed Explicit VR Little Endian
        ] {
            let before_pixel_data = [part10(syntax), uids_ex()].concat();
            let file = [
                before_pixel_data.clone(),
                ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
                item(0),                             // (FFFE,E000) len 0: Basic Offset Table
                item(2),                             // (FFFE,E000) len 2: a fragment
                vec![0xAB, 0xCD],                    //   fragment bytes
                seq_end(),                           // (FFFE,E0DD): end of fragments
            ]
            .concat();
            let header = read_header(&file).unwrap_or_else(|e| panic!("{syntax}: {e}"));
            assert_eq!(header.transfer_syntax, syntax);
            assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6", "{syntax}");
            assert_eq!(header.pixel_data_offset, Some(before_pixel_data.len() as u64 + 12), "{syntax}");
        }
    }

    #[test]
    fn reads_meta_group_without_preamble() {
        let with_preamble = [part10(EXPLICIT_VR_LITTLE_ENDIAN), uids_ex()].concat();
        let file = with_preamble[132..].to_vec(); // (0002,0000) first: no preamble, no "DICM"
        let header = read_header(&file).unwrap();
        assert_eq!(header.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(header.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2"); // from (0002,0002)
        assert_eq!(header.series_instance_uid, "1.2.3.4.5");
    }

    #[test]
    fn reads_implicit_meta_group_and_meta_group_without_transfer_syntax() {
        let implicit_meta = [
            vec![0; 128],
            b"DICM".to_vec(),
            im(0x0002, 0x0003, b"1.2.3.4.5.6\0"), // (0002,0003) implicit len 12: SOP Inst.
            im(0x0002, 0x0010, b"1.2.840.10008.1.2\0"), // (0002,0010) implicit len 18: syntax
            im(0x0020, 0x000D, b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            im(0x0020, 0x000E, b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let header = read_header(&implicit_meta).unwrap();
        assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(header.sop_instance_uid, "1.2.3.4.5.6");

        let no_syntax = [
            vec![0; 128],
            b"DICM".to_vec(),
            ex(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6\0"), // (0002,0003) UI len 12: SOP Instance
            im(0x0020, 0x000D, b"1.2.3.4\0"),            // (0020,000D) implicit len 8: Study UID
            im(0x0020, 0x000E, b"1.2.3.4.5\0"),          // (0020,000E) implicit len 10: Series
        ]
        .concat();
        let header = read_header(&no_syntax).unwrap();
        assert_eq!(header.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN, "sniffed from the data set");
        assert_eq!(header.series_instance_uid, "1.2.3.4.5");
    }

    #[test]
    fn bytes_starting_like_a_meta_group_but_not_explicit_are_not_dicom() {
        assert_eq!(read_header(&[0x02, 0x00, 0x10, 0x00, 0x01, 0x02, 0x03, 0x04]).unwrap_err(), DicomError::NotDicom);
    }

    #[test]
    fn zero_padding_after_the_last_element_ends_the_data_set() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            uids_ex(),
            ex(0x0040, 0xA040, b"CS", b"TEXT"), // (0040,A040) CS len 4: Value Type, an SR
            vec![0; 37],                        // zeros to a block size, odd
        ]
        .concat();
        assert_eq!(read_header(&file).unwrap().sop_instance_uid, "1.2.3.4.5.6");
        let trailing_padding = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            uids_ex(),
            ex(0xFFFC, 0xFFFC, b"OB", &[0; 16]), // (FFFC,FFFC) OB len 16: Data Set Trailing Padding
        ]
        .concat();
        assert_eq!(read_header(&trailing_padding).unwrap().sop_instance_uid, "1.2.3.4.5.6");
    }

    /// Broke: a run of zeros followed by anything else was scanned to its end once per 8-byte element,
    /// which made a few megabytes take hours.
    #[test]
    fn zeros_not_up_to_the_end_are_refused_at_once() {
        let mut file = [
            part10(IMPLICIT_VR_LITTLE_ENDIAN),
            im(0x0008, 0x0018, b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
        ]
        .concat();
        // In implicit VR, zeros read as (0000,0000) elements of length 0, 8 bytes each.
        let zeros_at = file.len();
        file.extend(vec![0; 8 << 20]);
        file.push(1);
        let started = std::time::Instant::now();
        let error = read_header(&file).unwrap_err();
        assert_eq!(
            error,
            DicomError::Malformed {
                tag: Tag::new(0, 0),
                offset: zeros_at,
                problem: "a zero tag where a data element belongs, not followed by zeros only"
            }
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn reads_undefined_length_sequences_in_big_endian() {
        let be_item = |length: u32| [&[0xFF, 0xFE, 0xE0, 0x00][..], &length.to_be_bytes()].concat();
        let file = [
            part10(EXPLICIT_VR_BIG_ENDIAN),
            ex_be(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"), // (0008,0018) UI len 12: SOP Instance
            [&[0x00, 0x08, 0x11, 0x15][..], b"SQ", &[0, 0], &[0xFF; 4]].concat(), // (0008,1115) SQ undef.
            be_item(u32::MAX),                              //   (FFFE,E000) undefined: item
            ex_be(0x0020, 0x000E, b"UI", b"9.9\0"),         //     (0020,000E) UI len 4: nested
            vec![0xFF, 0xFE, 0xE0, 0x0D, 0, 0, 0, 0],       //   (FFFE,E00D): end of item
            be_item(10),                                    //   (FFFE,E000) len 10: defined item
            ex_be(0x0008, 0x0060, b"CS", b"MR"),            //     (0008,0060) CS len 2
            vec![0xFF, 0xFE, 0xE0, 0xDD, 0, 0, 0, 0],       // (FFFE,E0DD): end of sequence
            ex_be(0x0020, 0x000D, b"UI", b"1.2.3.4\0"),     // (0020,000D) UI len 8: Study UID
            ex_be(0x0020, 0x000E, b"UI", b"1.2.3.4.5\0"),   // (0020,000E) UI len 10: Series UID
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.series_instance_uid, "1.2.3.4.5");
        assert_eq!(header.modality, "", "a nested Modality is not the instance's");
    }

    #[test]
    fn reads_explicit_private_sequences_nested_in_private_sequences() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            uids_ex(),
            ex(0x0029, 0x0010, b"LO", b"ACME 1.0"), // (0029,0010) LO len 8: Private Creator
            ex_undefined(0x0029, 0x1001, b"SQ"),    // (0029,1001) SQ undefined: private
            item(u32::MAX),                         //   (FFFE,E000) undefined: item
            ex_undefined(0x0029, 0x1002, b"SQ"),    //     (0029,1002) SQ undefined: private
            item(u32::MAX),                         //       (FFFE,E000) undefined: item
            ex(0x0029, 0x1003, b"OB", &[1, 2, 3]),  //         (0029,1003) OB len 3 (odd)
            ex(0x0029, 0x1004, b"SQ", &[]),         //         (0029,1004) SQ len 0: empty
            item_end(),                             //       (FFFE,E00D)
            seq_end(),                              //     (FFFE,E0DD)
            item_end(),                             //   (FFFE,E00D)
            seq_end(),                              // (FFFE,E0DD)
            ex(0x0040, 0x0254, b"LO", b"Chest "),   // (0040,0254) LO len 6: after the sequences
            ex(0x7FE0, 0x0010, b"OB", &[0; 2]),     // (7FE0,0010) OB len 2: Pixel Data
        ]
        .concat();
        let header = read_header(&file).unwrap();
        assert_eq!(header.pixel_data_offset, Some(file.len() as u64 - 2));
    }

    #[test]
    fn decodes_multi_valued_strings_and_character_sets() {
        let file = |charset: &[u8], name: &[u8]| {
            [
                part10(EXPLICIT_VR_LITTLE_ENDIAN),
                ex(0x0008, 0x0005, b"CS", charset), // (0008,0005) CS: Specific Character Set
                uids_ex(),
                ex(0x0008, 0x103E, b"LO", b"AX \\ T1 "), // (0008,103E) LO len 8: two values, padded
                ex(0x0010, 0x0010, b"PN", name),         // (0010,0010) PN: Patient Name
            ]
            .concat()
        };
        let header = read_header(&file(b"ISO_IR 100", b"Gr\xFCn^Eva")).unwrap();
        assert_eq!(header.series_description, "AX\\T1", "each value trimmed");
        assert_eq!(header.patient_name, "Grün^Eva");
        // Code extensions: the first value is empty (default repertoire), escapes are dropped.
        let name = b"\x1B-AGr\xFCn^Eva\x1B(B";
        assert_eq!(read_header(&file(b"\\ISO 2022 IR 100", name)).unwrap().patient_name, "Grün^Eva");
        assert_eq!(read_header(&file(b"ISO 2022 IR 6\\ISO 2022 IR 100", name)).unwrap().patient_name, "Grün^Eva");
        // UTF-8 named second still wins.
        let utf8 = "Grün^Eva".as_bytes();
        assert_eq!(read_header(&file(b"ISO_IR 100\\ISO_IR 192", utf8)).unwrap().patient_name, "Grün^Eva");
        // UTF-8 written under the default repertoire is read as UTF-8.
        assert_eq!(read_header(&file(b"ISO_IR 6", utf8)).unwrap().patient_name, "Grün^Eva");
        assert_eq!(read_header(&file(b"", utf8)).unwrap().patient_name, "Grün^Eva");
    }

    #[test]
    fn removes_escape_sequences_even_when_cut_short() {
        assert_eq!(without_escape_sequences(b"a\x1B$)Cb\x1B(Bc"), b"abc");
        assert_eq!(without_escape_sequences(b"a\x1B$"), b"a");
        assert_eq!(without_escape_sequences(b"\x1B"), b"");
    }

    #[test]
    fn survives_random_mutations() {
        let fixtures = [
            explicit_little_endian_file(),
            implicit_little_endian_file(),
            [
                part10(EXPLICIT_VR_LITTLE_ENDIAN),
                ex_undefined(0x0009, 0x1010, b"UN"), // (0009,1010) UN undefined
                item(u32::MAX),                      //   (FFFE,E000) undefined item
                im_undefined(0x0009, 0x1030),        //     (0009,1030) implicit SQ undefined
                item(4),                             //       (FFFE,E000) len 4
                vec![1, 2, 3, 4],                    //       item contents
                seq_end(),                           //     (FFFE,E0DD)
                item_end(),                          //   (FFFE,E00D)
                seq_end(),                           // (FFFE,E0DD)
                uids_ex(),
                ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
            ]
            .concat(),
            [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&deflatable_data_set())].concat(),
        ];
        mutate_each(&fixtures, 8000, |file| {
            let _ = read_header(file);
        });
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack.windows(needle.len()).position(|w| w == needle).unwrap()
    }
}

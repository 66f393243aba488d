//! Reading the header of a DICOM Part 10 file (PS3.10 §7.1): the File Meta Information and the
//! top-level data set up to Pixel Data. This module knows DICOM encoding and nothing of HTTP, FHIR or
//! the index layout. It never reads past the end of the bytes it is given and never panics on them.
//!
//! It also holds what `dataset` shares with it, so that both read every file the same way: [`locate`]
//! (where the meta group and the data set are, and their encoding), [`read_element`] (one element's
//! tag, VR and length) and [`Charset`].

use std::fmt;
use std::ops::Range;

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
const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1.99";
const JPIP_REFERENCED_DEFLATE: &str = "1.2.840.10008.1.2.4.95";

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

/// Reads the File Meta Information and the top-level data set of a DICOM file up to Pixel Data.
///
/// Accepts a Part 10 file (preamble, "DICM", group 0002) in any transfer syntax except the deflated
/// ones, and a bare little endian data set (no preamble, no meta group) that starts with a group
/// 0008 element, as older writers produced.
///
/// # Errors
///
/// Returns a [`DicomError`] when the bytes are not DICOM, use a deflated transfer syntax, are
/// truncated or malformed before Pixel Data, or lack the SOP Instance, Study Instance or Series
/// Instance UID.
pub fn read_header(bytes: &[u8]) -> Result<Header, DicomError> {
    let layout = locate(bytes)?;
    let mut found = Found::default();
    if !layout.meta.is_empty() {
        read_file_meta(bytes, layout.meta.start, &mut found)?;
    }
    read_data_set(bytes, layout.data_set_start, layout.syntax, &mut found)?;
    build_header(&found, layout.transfer_syntax)
}

/// Where the parts of a DICOM file are and how its data set is encoded, as [`locate`] finds them.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) syntax: Syntax,
    /// The Transfer Syntax UID from the meta group, or the one implied by a bare data set.
    pub(crate) transfer_syntax: String,
    /// The byte range of the File Meta Information elements; empty for a bare data set.
    pub(crate) meta: Range<usize>,
    pub(crate) data_set_start: usize,
}

/// Finds the File Meta Information and the start of the data set, and decides how the data set is
/// encoded. Shared by [`read_header`] and the whole-data-set reader, so both agree on every file.
///
/// Accepts what [`read_header`] accepts; see there.
pub(crate) fn locate(bytes: &[u8]) -> Result<Layout, DicomError> {
    let has_prefix = bytes.get(PREAMBLE_LEN..PREAMBLE_LEN + PREFIX.len()).is_some_and(|prefix| prefix == PREFIX);
    if has_prefix {
        let meta_start = PREAMBLE_LEN + PREFIX.len();
        let mut found = Found::default();
        let data_set_start = read_file_meta(bytes, meta_start, &mut found)?;
        let transfer_syntax = found.get(TRANSFER_SYNTAX_UID).map(decode_uid).unwrap_or_default();
        let syntax = match Syntax::from_uid(&transfer_syntax)? {
            Syntax::ExplicitBig => Syntax::ExplicitBig,
            _ => sniff_little_endian(bytes, data_set_start),
        };
        Ok(Layout { syntax, transfer_syntax, meta: meta_start..data_set_start, data_set_start })
    } else if read_u16(bytes, 0, false) == Some(0x0008) {
        // Old or non-conformant writers store the data set alone, without preamble or meta group,
        // usually in implicit VR little endian, the DICOM default.
        let syntax = sniff_little_endian(bytes, 0);
        let uid = match syntax {
            Syntax::ExplicitLittle => EXPLICIT_VR_LITTLE_ENDIAN,
            _ => IMPLICIT_VR_LITTLE_ENDIAN,
        };
        Ok(Layout { syntax, transfer_syntax: uid.to_string(), meta: 0..0, data_set_start: 0 })
    } else {
        Err(DicomError::NotDicom)
    }
}

/// How the data set's elements are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    ImplicitLittle,
    ExplicitLittle,
    ExplicitBig,
}

impl Syntax {
    fn from_uid(uid: &str) -> Result<Syntax, DicomError> {
        match uid {
            "" => Err(DicomError::Missing { attribute: "Transfer Syntax UID", tag: TRANSFER_SYNTAX_UID }),
            IMPLICIT_VR_LITTLE_ENDIAN => Ok(Syntax::ImplicitLittle),
            EXPLICIT_VR_LITTLE_ENDIAN => Ok(Syntax::ExplicitLittle),
            EXPLICIT_VR_BIG_ENDIAN => Ok(Syntax::ExplicitBig),
            // Both of these compress the whole data set, which would have to be inflated first.
            DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN | JPIP_REFERENCED_DEFLATE => {
                Err(DicomError::UnsupportedTransferSyntax { uid: uid.to_string(), reason: "deflated" })
            }
            // Every other transfer syntax compresses only the pixel data and encodes the data set
            // in explicit VR little endian (PS3.5 §A.4), so unknown UIDs are read that way too.
            _ => Ok(Syntax::ExplicitLittle),
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
#[derive(Default)]
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

/// Reads the group 0002 File Meta Information that follows "DICM" and returns where the data set
/// starts. The meta group is always explicit VR little endian (PS3.10 §7.1).
fn read_file_meta<'a>(bytes: &'a [u8], start: usize, found: &mut Found<'a>) -> Result<usize, DicomError> {
    // The group ends where the first element of another group begins. This is used rather than
    // (0002,0000) File Meta Information Group Length, which some writers get wrong.
    let mut pos = start;
    while read_u16(bytes, pos, false) == Some(0x0002) {
        let element = read_element(bytes, pos, Syntax::ExplicitLittle)?;
        if META_RECORDED.contains(&element.tag) && !element.has_undefined_length() {
            found.record(element.tag, element.value(bytes)?);
        }
        pos = skip_value(bytes, &element, Syntax::ExplicitLittle, 0)?;
    }
    Ok(pos)
}

/// Reads the top-level data set from `start`, recording the wanted attributes, and stops at Pixel
/// Data or at the end of the bytes, whichever comes first.
fn read_data_set<'a>(bytes: &'a [u8], start: usize, syntax: Syntax, found: &mut Found<'a>) -> Result<(), DicomError> {
    let mut pos = start;
    while pos < bytes.len() {
        let element = read_element(bytes, pos, syntax)?;
        pos = match element.tag {
            PIXEL_DATA => {
                // A defined length can be checked cheaply; an undefined one (encapsulated pixel
                // data, PS3.5 §A.4) is left for whoever reads the fragments.
                if !element.has_undefined_length() {
                    element.value_end(bytes)?;
                }
                found.pixel_data_offset = Some(element.value_start as u64);
                return Ok(());
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
    Ok(())
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

/// The character repertoire for text values, from (0008,0005) Specific Character Set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// `ISO_IR 100`. Also used, leniently, for the default repertoire (`ISO_IR 6`) and for sets
    /// this reader does not know, so that stray high bytes still decode to something.
    Latin1,
    /// `ISO_IR 192`.
    Utf8,
}

impl Charset {
    pub(crate) fn from_value(value: Option<&[u8]>) -> Charset {
        let first = value.and_then(|v| v.split(|&b| b == b'\\').next()).map(trim_text).unwrap_or_default();
        if first == b"ISO_IR 192" { Charset::Utf8 } else { Charset::Latin1 }
    }

    pub(crate) fn decode(self, bytes: &[u8]) -> String {
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Charset::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        }
    }
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
    // the default repertoire, which Latin-1 decodes identically.
    let text = |tag| {
        let value = found.get(tag).map(trim_text).unwrap_or_default();
        charset.decode(value)
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

    #[test]
    fn rejects_deflated_transfer_syntax() {
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), vec![0x78, 0x9C]].concat();
        let error = read_header(&file).unwrap_err();
        assert_eq!(error.to_string(), "unsupported transfer syntax 1.2.840.10008.1.2.1.99 (deflated)");
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
        ];
        mutate_each(&fixtures, 6000, |file| {
            let _ = read_header(file);
        });
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack.windows(needle.len()).position(|w| w == needle).unwrap()
    }
}

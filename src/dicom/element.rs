//! The framing of a DICOM file, shared by the header reader and the whole-data-set reader so that both
//! read every file the same way: where the meta group and the data set are and how they are encoded
//! ([`locate`]), one element's tag, VR and length ([`read_element`]), and stepping over a value,
//! sequences included ([`skip_value`]).
//!
//! Invariants: nothing here reads past the end of the bytes it is given or panics on them; every loop
//! steps over at least one element or item header; sequences nest at most [`MAX_DEPTH`] deep, which
//! bounds the recursion. It imports `tags`, `error`, `text` and `transfer_syntax`, nothing above them.

use std::ops::Range;

use super::error::DicomError;
use super::tags::{ITEM, ITEM_DELIMITATION, SEQUENCE_DELIMITATION, TRANSFER_SYNTAX_UID, Tag};
use super::text::decode_uid;
use super::transfer_syntax::{
    EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, is_deflated,
};

/// The length of the preamble of a Part 10 file, which the prefix follows (PS3.10 §7.1).
const PREAMBLE_LEN: usize = 128;
const PREFIX: &[u8] = b"DICM";
/// Sequences nested deeper than this are rejected, which keeps the recursion bounded.
pub(crate) const MAX_DEPTH: usize = 64;
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

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
/// encoded. Shared by the header reader and the whole-data-set reader, so both agree on every file.
///
/// Accepts a Part 10 file (preamble, "DICM", group 0002) in every transfer syntax, a meta group
/// without the preamble and prefix, and a bare little endian data set (no preamble, no meta group)
/// that starts with a group 0008 element, as older writers produced.
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
    // A repeated tag is invalid; the first value is the one kept, as the header reader keeps it.
    let mut named = None;
    let data_set_start = read_file_meta(bytes, meta_start, meta_syntax, |tag, value| {
        if tag == TRANSFER_SYNTAX_UID {
            named.get_or_insert(value);
        }
    })?;
    let named = named.map(decode_uid).unwrap_or_default();
    let deflated = is_deflated(&named);
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

/// Reads the group 0002 File Meta Information that starts at `start`, hands the tag and value of each
/// of its defined-length elements to `visit`, and returns where the data set starts. The meta group is
/// explicit VR little endian (PS3.10 §7.1); `syntax` says otherwise only for writers that got that wrong.
pub(crate) fn read_file_meta<'a>(
    bytes: &'a [u8],
    start: usize,
    syntax: Syntax,
    mut visit: impl FnMut(Tag, &'a [u8]),
) -> Result<usize, DicomError> {
    // The group ends where the first element of another group begins. This is used rather than
    // (0002,0000) File Meta Information Group Length, which some writers get wrong.
    let mut pos = start;
    while read_u16(bytes, pos, false) == Some(0x0002) {
        let element = read_element(bytes, pos, syntax)?;
        if !element.has_undefined_length() {
            visit(element.tag, element.value(bytes)?);
        }
        pos = skip_value(bytes, &element, syntax, 0)?;
    }
    Ok(pos)
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
pub(crate) fn sniff_little_endian(bytes: &[u8], data_set_start: usize) -> Syntax {
    let vr = bytes.get(data_set_start.saturating_add(4)..data_set_start.saturating_add(6));
    if vr.is_some_and(|vr| KNOWN_VRS.iter().any(|known| known == vr)) {
        Syntax::ExplicitLittle
    } else {
        Syntax::ImplicitLittle
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

    /// The bytes of a defined-length value, checked against the end of the bytes.
    pub(crate) fn value<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], DicomError> {
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

pub(crate) fn has_long_length(vr: [u8; 2]) -> bool {
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
pub(crate) fn skip_value(
    bytes: &[u8],
    element: &ElementHeader,
    syntax: Syntax,
    depth: usize,
) -> Result<usize, DicomError> {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::tags::PATIENT_NAME;
    use super::super::transfer_syntax::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;
    use super::*;

    #[test]
    fn the_not_dicom_message_names_the_preamble_length() {
        let message = DicomError::NotDicom.to_string();
        assert!(message.contains(&format!("no DICM prefix at byte {PREAMBLE_LEN} ")), "{message}");
    }

    #[test]
    fn reads_the_three_element_header_layouts() {
        let short = ex(0x0010, 0x0010, b"PN", b"Doe^Jane"); // (0010,0010) PN len 8: 2-byte length
        let header = read_element(&short, 0, Syntax::ExplicitLittle).unwrap();
        assert_eq!((header.tag, header.vr, header.length, header.value_start), (PATIENT_NAME, Some(*b"PN"), 8, 8));
        let long = ex(0x0009, 0x1010, b"OB", &[1, 2]); // (0009,1010) OB len 2: reserved bytes, 4-byte length
        let header = read_element(&long, 0, Syntax::ExplicitLittle).unwrap();
        assert_eq!((header.vr, header.length, header.value_start), (Some(*b"OB"), 2, 12));
        let implicit = im(0x0010, 0x0010, b"Doe^Jane"); // (0010,0010) implicit len 8
        let header = read_element(&implicit, 0, Syntax::ImplicitLittle).unwrap();
        assert_eq!((header.vr, header.length, header.value_start), (None, 8, 8));
        let big = ex_be(0x0028, 0x0010, b"US", &[0, 2]); // (0028,0010) US len 2, big endian
        let header = read_element(&big, 0, Syntax::ExplicitBig).unwrap();
        assert_eq!((header.tag, header.length), (Tag::new(0x0028, 0x0010), 2));
        // Items carry no VR in explicit VR either.
        let header = read_element(&item(u32::MAX), 0, Syntax::ExplicitLittle).unwrap();
        assert_eq!((header.tag, header.vr, header.value_start), (ITEM, None, 8));
        assert!(header.has_undefined_length());
    }

    #[test]
    fn element_headers_check_their_bounds() {
        assert_eq!(
            read_element(&[0x10, 0x00, 0x10], 0, Syntax::ExplicitLittle).unwrap_err(),
            DicomError::Truncated { tag: None, offset: 0 }
        );
        let cut = &ex(0x0010, 0x0010, b"PN", b"Doe^Jane")[..7];
        let truncated = DicomError::Truncated { tag: Some(PATIENT_NAME), offset: 0 };
        assert_eq!(read_element(cut, 0, Syntax::ExplicitLittle).unwrap_err(), truncated);
        let short_value = &ex(0x0010, 0x0010, b"PN", b"Doe^Jane")[..12];
        let header = read_element(short_value, 0, Syntax::ExplicitLittle).unwrap();
        assert_eq!(header.value(short_value).unwrap_err(), truncated);
        let lower = ex(0x0010, 0x0010, b"pn", b"Doe^Jane");
        assert!(matches!(read_element(&lower, 0, Syntax::ExplicitLittle), Err(DicomError::Malformed { .. })));
        assert_eq!(
            read_element(&[], usize::MAX, Syntax::ImplicitLittle).unwrap_err(),
            DicomError::Truncated { tag: None, offset: usize::MAX }
        );
    }

    #[test]
    fn locates_the_meta_group_and_the_data_set() {
        let meta = part10(EXPLICIT_VR_LITTLE_ENDIAN);
        let file = [meta.clone(), im(0x0008, 0x0060, b"CT")].concat(); // mislabelled: implicit
        let layout = locate(&file).unwrap();
        assert_eq!(layout.meta, 132..meta.len());
        assert_eq!(
            (layout.data_set_start, layout.syntax, layout.deflated),
            (meta.len(), Syntax::ImplicitLittle, false)
        );
        assert_eq!(layout.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN, "the label is kept");

        let deflated = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&im(0x0008, 0x0060, b"CT"))].concat();
        let layout = locate(&deflated).unwrap();
        assert_eq!((layout.syntax, layout.deflated), (Syntax::ExplicitLittle, true));

        let bare = im(0x0008, 0x0060, b"CT");
        let layout = locate(&bare).unwrap();
        assert_eq!((layout.meta, layout.data_set_start, layout.syntax), (0..0, 0, Syntax::ImplicitLittle));
        assert_eq!(layout.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(locate(b"\x02\x00\x10\x00").unwrap_err(), DicomError::NotDicom);
    }

    #[test]
    fn skips_undefined_length_sequences_to_their_delimiter() {
        let sequence = [
            ex_undefined(0x0008, 0x1115, b"SQ"), // (0008,1115) SQ undefined
            item(u32::MAX),                      //   (FFFE,E000) undefined: item
            ex(0x0008, 0x1150, b"UI", b"1.8\0"), //     (0008,1150) UI len 4
            item_end(),                          //   (FFFE,E00D)
            item(0),                             //   (FFFE,E000) len 0
            seq_end(),                           // (FFFE,E0DD)
        ]
        .concat();
        let file = [sequence.clone(), ex(0x0010, 0x0010, b"PN", b"After ")].concat();
        let header = read_element(&file, 0, Syntax::ExplicitLittle).unwrap();
        assert_eq!(skip_value(&file, &header, Syntax::ExplicitLittle, 0), Ok(sequence.len()));
        let open = within(read_element(&file, file.len(), Syntax::ExplicitLittle).unwrap_err(), &header);
        assert_eq!(open, DicomError::Truncated { tag: Some(Tag::new(0x0008, 0x1115)), offset: 0 });
    }

    #[test]
    fn zeros_to_the_end_are_padding_and_zeros_before_more_are_not() {
        assert_eq!(is_zero_padding(&[1, 0, 0, 0, 0], 1), Ok(true));
        assert_eq!(is_zero_padding(&[0, 0, 0], 0), Ok(false), "too short for a tag");
        assert_eq!(is_zero_padding(&[0x08, 0, 0, 0], 0), Ok(false));
        assert!(matches!(is_zero_padding(&[0, 0, 0, 0, 1], 0), Err(DicomError::Malformed { offset: 0, .. })));
    }
}

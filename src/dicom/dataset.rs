//! Reading a whole DICOM Part 10 data set into a tree of elements (PS3.5 §7), for DICOM JSON and frame
//! retrieval. The header reader (`header::read_header`) stops at Pixel Data and keeps a few values; this
//! reader walks every element, sequence and item, and records where each value lies in the file instead
//! of copying it.
//!
//! Invariants: it reads a file exactly as the header reader does (the same transfer syntaxes, the same
//! sniffing of mislabelled little endian data sets), because both go through `element::locate` and
//! `element::read_element`. It never reads past the bytes it is given and never panics on them, nests at
//! most `element::MAX_DEPTH` sequences deep, and every loop steps over at least one element or item
//! header. In implicit VR it takes each VR from `dictionary`. It knows nothing of JSON, HTTP or frames.

use std::fmt;
use std::ops::Range;

use super::dictionary;
use super::element::{
    ElementHeader, KNOWN_VRS, Layout, MAX_DEPTH, Syntax, is_zero_padding, locate, read_element, read_u16, read_u32,
    skip_value, sniff_little_endian, within,
};
use super::error::DicomError;
use super::inflate::{MAX_INFLATED, Stream, inflated_len};
use super::tags::{
    ITEM, ITEM_DELIMITATION, LUT_DESCRIPTOR, PIXEL_DATA, PIXEL_REPRESENTATION, SEQUENCE_DELIMITATION, Tag,
};
use super::text::{parse_decimal, parse_integer_string, trim_text};

/// A Value Representation (PS3.5 §6.2): two upper-case letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vr(pub [u8; 2]);

impl Vr {
    pub const OB: Vr = Vr(*b"OB");
    pub const OW: Vr = Vr(*b"OW");
    pub const SQ: Vr = Vr(*b"SQ");
    pub const SS: Vr = Vr(*b"SS");
    pub const UL: Vr = Vr(*b"UL");
    pub const UN: Vr = Vr(*b"UN");
    pub const US: Vr = Vr(*b"US");
    pub const LO: Vr = Vr(*b"LO");

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("UN")
    }

    /// The size in bytes of the binary numbers of this VR (PS3.5 Table 6.2-1), which big endian stores
    /// reversed; 1 for the VRs of text and of bytes.
    pub fn number_size(self) -> usize {
        match &self.0 {
            b"US" | b"SS" | b"OW" | b"AT" => 2,
            b"UL" | b"SL" | b"FL" | b"OF" | b"OL" => 4,
            b"FD" | b"SV" | b"UV" | b"OD" | b"OV" => 8,
            _ => 1,
        }
    }
}

impl fmt::Display for Vr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A whole file: its File Meta Information and its data set, each in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSet {
    /// The Transfer Syntax UID of the meta group, or the one implied by a bare data set.
    pub transfer_syntax: String,
    /// The File Meta Information (group 0002, always explicit VR little endian); empty for a bare data set.
    pub meta: Vec<Element>,
    /// The top-level elements of the data set.
    pub elements: Vec<Element>,
}

impl DataSet {
    /// The top-level element with this tag.
    pub fn get(&self, tag: Tag) -> Option<&Element> {
        find(&self.elements, tag)
    }
}

/// The first element with this tag in a data set or an item.
pub fn find(elements: &[Element], tag: Tag) -> Option<&Element> {
    elements.iter().find(|element| element.tag == tag)
}

/// One data element. Its value stays in the file: `offset` and `length` say where.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub tag: Tag,
    /// The VR written in the file (explicit VR), else the dictionary's (implicit VR); `UN` when neither
    /// knows it. An explicit UN is resolved where PS3.5 §6.2.2 allows: to SQ for an undefined length,
    /// to the dictionary's VR for a known attribute (its value then decoded as implicit VR little endian).
    pub vr: Vr,
    /// File offset of the value's first byte.
    pub offset: u64,
    /// Length of the value in bytes. For an undefined length, the items up to, not including, the
    /// Sequence Delimitation Item.
    pub length: u64,
    pub undefined_length: bool,
    /// Whether numbers in this value are big endian: only in Explicit VR Big Endian, and never in or
    /// under a UN value, which is implicit VR little endian (PS3.5 §6.2.2).
    pub big_endian: bool,
    pub value: Value,
}

/// What an element's value holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Plain value bytes: this range of the file, equal to `offset..offset + length`.
    Bytes(Range<usize>),
    /// The items of a sequence (SQ, including UN resolved to SQ), each a list of elements in file order.
    Items(Vec<Vec<Element>>),
    /// Encapsulated pixel data (PS3.5 §A.4): the value range of each item in order, the first being the
    /// Basic Offset Table. The element's `offset` and `length` span all the items.
    Fragments(Vec<Range<usize>>),
}

impl Element {
    /// The value bytes of a plain value; empty for sequences and fragments.
    pub fn bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        match &self.value {
            Value::Bytes(range) => file.get(range.clone()).unwrap_or_default(),
            Value::Items(_) | Value::Fragments(_) => &[],
        }
    }

    /// The items of a sequence; empty for other values.
    pub fn items(&self) -> &[Vec<Element>] {
        match &self.value {
            Value::Items(items) => items,
            Value::Bytes(_) | Value::Fragments(_) => &[],
        }
    }

    /// The first value of a US, UL or UV element, in the element's byte order.
    pub fn first_unsigned(&self, file: &[u8]) -> Option<u64> {
        let bytes = self.bytes(file);
        let big = self.big_endian;
        match &self.vr.0 {
            b"US" => read_u16(bytes, 0, big).map(u64::from),
            b"UL" => read_u32(bytes, 0, big).map(u64::from),
            b"UV" => {
                let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
                Some(if big { u64::from_be_bytes(raw) } else { u64::from_le_bytes(raw) })
            }
            _ => None,
        }
    }

    /// The size of the numbers to reverse to send this element's value little endian: its VR's number size
    /// in a big endian data set, else 1.
    pub fn swap_size(&self) -> usize {
        if self.big_endian { self.vr.number_size() } else { 1 }
    }

    /// The first value of an IS element.
    pub fn first_integer_string(&self, file: &[u8]) -> Option<i64> {
        if self.vr.0 != *b"IS" {
            return None;
        }
        parse_integer_string(self.bytes(file))
    }

    /// The first value of a DS element (PS3.5 Table 6.2-1), when it is a finite number.
    pub fn first_decimal(&self, file: &[u8]) -> Option<f64> {
        if self.vr.0 != *b"DS" {
            return None;
        }
        let first = self.bytes(file).split(|&b| b == b'\\').next()?;
        parse_decimal(std::str::from_utf8(trim_text(first)).ok()?)
    }

    /// The first value of a code string (CS), without its padding: `MONOCHROME2`, `LINEAR`.
    pub fn first_code<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        trim_text(self.bytes(file).split(|&b| b == b'\\').next().unwrap_or_default())
    }
}

/// Reads the File Meta Information and the whole data set of a DICOM file.
///
/// Accepts what `header::read_header` accepts, but for deflated data sets: a Part 10 file in any other
/// transfer syntax, a meta group without preamble, or a bare little endian data set.
///
/// A deflated data set is refused: the elements of this tree point into the file's bytes, and those
/// of a deflated data set exist only once inflated ([`inflated_file_len`], [`inflate_file`],
/// [`read_inflated_data_set`]).
///
/// # Errors
///
/// Returns a [`DicomError`] when the bytes are not DICOM, use a deflated transfer syntax, or are
/// truncated or malformed anywhere, including after Pixel Data.
pub fn read_data_set(bytes: &[u8]) -> Result<DataSet, DicomError> {
    let layout = locate(bytes)?;
    if layout.deflated {
        return Err(DicomError::UnsupportedTransferSyntax {
            uid: layout.transfer_syntax,
            reason: "a deflated data set is read element by element only once inflated",
        });
    }
    read_layout(bytes, layout)
}

/// Reads the File Meta Information alone, of a file in any transfer syntax, deflated ones included.
/// Returns it as a data set without elements, and the offset where the data set starts.
///
/// # Errors
///
/// As [`read_data_set`], for the meta group.
pub fn read_meta(bytes: &[u8]) -> Result<(DataSet, usize), DicomError> {
    let layout = locate(bytes)?;
    let top = Context { syntax: layout.meta_syntax, depth: 0, signed_pixels: false, single_entry_lut: false };
    let meta = Reader { bytes }.read_list(layout.meta.start, End::At(layout.meta.end), top)?.0;
    Ok((DataSet { transfer_syntax: layout.transfer_syntax, meta, elements: Vec::new() }, layout.data_set_start))
}

/// How long [`inflate_file`] makes a deflated file: its preamble and meta group, then its data set inflated.
/// Measured by inflating the stream through one 64 KiB buffer, so that a caller can set the memory aside
/// before it is used; never past `inflate::MAX_INFLATED` bytes of data set.
///
/// # Errors
///
/// When the file is not deflated, does not read, or its stream is corrupt, cut short or larger than that.
pub fn inflated_file_len(bytes: &[u8]) -> Result<usize, DicomError> {
    let (start, input) = deflated_data_set(bytes)?;
    let deflate = |problem: String| DicomError::Deflate { offset: start, problem };
    let len = inflated_len(input, MAX_INFLATED as u64).map_err(deflate)?;
    match usize::try_from(len) {
        Ok(len) if len <= MAX_INFLATED => Ok(start + len),
        _ => Err(deflate(format!("it inflates to more than {} MiB", MAX_INFLATED >> 20))),
    }
}

/// A deflated file with its data set inflated (PS3.5 §A.5): the preamble and meta group as stored, then the
/// inflated data set, for [`read_inflated_data_set`]. It is `len` bytes, as [`inflated_file_len`] measured,
/// allocated once and never more.
///
/// # Errors
///
/// When the file is not deflated, does not read, its stream is corrupt or cut short, or it no longer inflates
/// to `len` bytes (the file changed since it was measured).
pub fn inflate_file(bytes: &[u8], len: usize) -> Result<Vec<u8>, DicomError> {
    let (start, input) = deflated_data_set(bytes)?;
    let deflate = |problem: String| DicomError::Deflate { offset: start, problem };
    let changed = || deflate(format!("it no longer inflates to the {len} bytes measured"));
    let want = len.checked_sub(start).filter(|n| *n <= MAX_INFLATED).ok_or_else(changed)?;
    let mut file = Vec::with_capacity(len);
    file.extend_from_slice(bytes.get(..start).unwrap_or_default());
    let mut stream = Stream::new(input);
    let got = stream.read(input, &mut file, want).map_err(deflate)?;
    // The stream must end here: one byte more would be a byte past the memory set aside.
    let more = stream.read(input, &mut Vec::with_capacity(1), 1).map_err(deflate)?;
    if got != want || more != 0 {
        return Err(changed());
    }
    Ok(file)
}

/// Where a deflated file's data set starts, and its deflate stream.
fn deflated_data_set(bytes: &[u8]) -> Result<(usize, &[u8]), DicomError> {
    let layout = locate(bytes)?;
    let start = layout.data_set_start;
    if !layout.deflated {
        return Err(DicomError::Deflate { offset: start, problem: "the data set is not deflated".into() });
    }
    Ok((start, bytes.get(start..).unwrap_or_default()))
}

/// Reads a file made by [`inflate_file`]: its data set as the inflated bytes encode it, which is explicit VR
/// little endian, or implicit where a writer deflated that. The transfer syntax stays the deflated one.
///
/// # Errors
///
/// As [`read_data_set`].
pub fn read_inflated_data_set(inflated: &[u8]) -> Result<DataSet, DicomError> {
    let mut layout = locate(inflated)?;
    layout.syntax = sniff_little_endian(inflated, layout.data_set_start);
    read_layout(inflated, layout)
}

fn read_layout(bytes: &[u8], layout: Layout) -> Result<DataSet, DicomError> {
    let reader = Reader { bytes };
    let top = Context { syntax: layout.meta_syntax, depth: 0, signed_pixels: false, single_entry_lut: false };
    let meta = reader.read_list(layout.meta.start, End::At(layout.meta.end), top)?.0;
    // Pixel Representation decides the "US or SS" attributes of the whole data set, also of those in
    // sequences that come before it (PS3.3 §C.7.6.3.1.1), so in implicit VR it is looked up first.
    let signed_pixels = layout.syntax == Syntax::ImplicitLittle
        && top_level_u16(bytes, layout.data_set_start, PIXEL_REPRESENTATION) == Some(1);
    let top = Context { syntax: layout.syntax, signed_pixels, ..top };
    let elements = reader.read_list(layout.data_set_start, End::At(bytes.len()), top)?.0;
    Ok(DataSet { transfer_syntax: layout.transfer_syntax, meta, elements })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

/// Where a list of elements or items ends: at a known offset (a defined length, or the end of the
/// file), or at a delimiter (an undefined length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    At(usize),
    Delimiter,
}

/// What reading a list of elements needs to know from its surroundings.
#[derive(Debug, Clone, Copy)]
struct Context {
    syntax: Syntax,
    /// How many sequences enclose the list.
    depth: usize,
    /// Whether Pixel Representation (0028,0103) is 1 here or in an enclosing data set, which makes the
    /// implicit VR of the "US or SS" attributes SS (PS3.3 §C.7.6.3.1).
    signed_pixels: bool,
    /// Whether LUT Descriptor (0028,3002) of this data set says the LUT has one entry, which makes the
    /// implicit VR of LUT Data ("US or OW") US (PS3.3 §C.11.1.1.1).
    single_entry_lut: bool,
}

impl Reader<'_> {
    /// Reads the elements of a data set or an item from `pos` to `end`. Returns them and the offset
    /// past the list, past its Item Delimitation Item for an undefined length.
    fn read_list(&self, mut pos: usize, end: End, mut context: Context) -> Result<(Vec<Element>, usize), DicomError> {
        let mut elements = Vec::new();
        loop {
            if let End::At(end) = end
                && pos >= end
            {
                return Ok((elements, pos));
            }
            // Zeros that pad a file after its last element end the data set, as in the header reader.
            if context.depth == 0 && is_zero_padding(self.bytes, pos)? {
                return Ok((elements, self.bytes.len()));
            }
            let header = read_element(self.bytes, pos, context.syntax)?;
            match header.tag {
                ITEM_DELIMITATION if end == End::Delimiter => return Ok((elements, header.value_start)),
                // Some writers leave a stray delimiter after a sequence; stepping over it is harmless.
                ITEM_DELIMITATION | SEQUENCE_DELIMITATION if end != End::Delimiter => pos = header.value_start,
                ITEM | ITEM_DELIMITATION | SEQUENCE_DELIMITATION => {
                    return Err(malformed(&header, "an item or delimiter where a data element belongs"));
                }
                _ => {
                    let (element, next) = self.read_value(&header, context)?;
                    if let End::At(end) = end
                        && next > end
                    {
                        return Err(malformed(&header, "the element runs past the end of its item"));
                    }
                    if element.tag == PIXEL_REPRESENTATION {
                        context.signed_pixels = element.first_unsigned(self.bytes) == Some(1);
                    }
                    if element.tag == LUT_DESCRIPTOR {
                        context.single_entry_lut =
                            read_u16(element.bytes(self.bytes), 0, element.big_endian) == Some(1);
                    }
                    elements.push(element);
                    pos = next;
                }
            }
        }
    }

    /// Reads the value of the element whose header is given. Returns the element and the offset past it.
    fn read_value(&self, header: &ElementHeader, context: Context) -> Result<(Element, usize), DicomError> {
        let undefined = header.has_undefined_length();
        let dictionary = || implicit_vr(header.tag, context);
        // The VR, and the syntax the value is encoded in: the data set's, except for UN.
        let (vr, syntax) = match header.vr {
            None => (dictionary(), context.syntax),
            // A UN value is encoded in implicit VR little endian whatever the transfer syntax, and one of
            // undefined length is a sequence (PS3.5 §6.2.2). So a reader that knows the attribute may
            // decode it with the dictionary's VR, as pydicom does.
            Some(vr) if vr == Vr::UN.0 => match dictionary() {
                _ if undefined => (Vr::SQ, Syntax::ImplicitLittle),
                Vr::UN => (Vr::UN, context.syntax),
                known => (known, Syntax::ImplicitLittle),
            },
            Some(vr) if KNOWN_VRS.contains(&vr) => (Vr(vr), context.syntax),
            // Two upper-case letters that name no VR: the value can only be kept as bytes.
            Some(_) => (Vr::UN, context.syntax),
        };
        let context = Context { syntax, ..context };
        let start = header.value_start;
        let element = |vr, end: usize, value| Element {
            tag: header.tag,
            vr,
            offset: start as u64,
            length: end.saturating_sub(start) as u64,
            undefined_length: undefined,
            big_endian: syntax == Syntax::ExplicitBig,
            value,
        };

        if !undefined {
            let end = header.value_end(self.bytes)?;
            let value = if vr == Vr::SQ {
                Value::Items(self.read_items(header, End::At(end), context)?.0)
            } else {
                Value::Bytes(start..end)
            };
            return Ok((element(vr, end, value), end));
        }
        if vr != Vr::SQ && (header.tag == PIXEL_DATA || vr == Vr::OB || vr == Vr::OW) {
            let (fragments, items_end, next) = self.read_fragments(header, syntax)?;
            // Encapsulated pixel data is OB (PS3.5 §A.4), also where an implicit VR dictionary says OW.
            let vr = if header.vr.is_none() { Vr::OB } else { vr };
            return Ok((element(vr, items_end, Value::Fragments(fragments)), next));
        }
        // Any other undefined length is a sequence (PS3.5 §7.5.2). In implicit VR an element that the
        // dictionary does not know as SQ (a private one, say) is a sequence all the same.
        if vr != Vr::SQ && header.vr.is_some() {
            return Err(malformed(header, "an undefined length on a VR that cannot have one"));
        }
        let (items, items_end, next) = self.read_items(header, End::Delimiter, context)?;
        Ok((element(Vr::SQ, items_end, Value::Items(items)), next))
    }

    /// Reads the items of `sequence`. Returns them, the offset where the items end and the offset past
    /// the sequence (past its Sequence Delimitation Item for an undefined length).
    fn read_items(
        &self,
        sequence: &ElementHeader,
        end: End,
        context: Context,
    ) -> Result<(Vec<Vec<Element>>, usize, usize), DicomError> {
        let context = Context { depth: context.depth + 1, ..context };
        if context.depth > MAX_DEPTH {
            return Err(malformed(sequence, "sequences nested too deeply"));
        }
        let mut items = Vec::new();
        let mut pos = sequence.value_start;
        loop {
            if let End::At(end) = end
                && pos >= end
            {
                return Ok((items, pos, pos));
            }
            let item = read_element(self.bytes, pos, context.syntax).map_err(|e| within(e, sequence))?;
            let (elements, next) = match item.tag {
                SEQUENCE_DELIMITATION if end == End::Delimiter => return Ok((items, pos, item.value_start)),
                ITEM if item.has_undefined_length() => {
                    self.read_list(item.value_start, End::Delimiter, context).map_err(|e| within(e, &item))?
                }
                ITEM => {
                    let item_end = item.value_end(self.bytes)?;
                    (self.read_list(item.value_start, End::At(item_end), context)?.0, item_end)
                }
                _ => return Err(malformed(&item, "expected an item or a sequence delimiter")),
            };
            if let End::At(end) = end
                && next > end
            {
                return Err(malformed(&item, "the item runs past the end of its sequence"));
            }
            items.push(elements);
            pos = next;
        }
    }

    /// Walks the items of encapsulated pixel data. Returns the range of each item's value, the offset
    /// where the items end and the offset past the Sequence Delimitation Item.
    fn read_fragments(
        &self,
        pixel_data: &ElementHeader,
        syntax: Syntax,
    ) -> Result<(Vec<Range<usize>>, usize, usize), DicomError> {
        let mut fragments = Vec::new();
        let mut pos = pixel_data.value_start;
        loop {
            let item = read_element(self.bytes, pos, syntax).map_err(|e| within(e, pixel_data))?;
            match item.tag {
                SEQUENCE_DELIMITATION => return Ok((fragments, pos, item.value_start)),
                ITEM if !item.has_undefined_length() => {
                    let end = item.value_end(self.bytes)?;
                    fragments.push(item.value_start..end);
                    pos = end;
                }
                _ => return Err(malformed(&item, "expected a fragment item or a sequence delimiter")),
            }
        }
    }
}

/// The first 16-bit value of a top-level element of a little endian data set, found by stepping over the
/// elements before it; `None` when it is absent or the data set does not read that far.
fn top_level_u16(bytes: &[u8], start: usize, tag: Tag) -> Option<u16> {
    let mut pos = start;
    loop {
        let header = read_element(bytes, pos, Syntax::ImplicitLittle).ok()?;
        if header.tag == tag {
            return read_u16(header.value(bytes).ok()?, 0, false);
        }
        if header.tag > tag {
            return None;
        }
        pos = skip_value(bytes, &header, Syntax::ImplicitLittle, 0).ok()?;
    }
}

fn malformed(header: &ElementHeader, problem: &'static str) -> DicomError {
    DicomError::Malformed { tag: header.tag, offset: header.start, problem }
}

/// The VR of an element in implicit VR, where the file does not say it (PS3.5 §7.1.3).
fn implicit_vr(tag: Tag, context: Context) -> Vr {
    // Group Length (gggg,0000) is UL in every group (PS3.5 §7.2).
    if tag.element == 0x0000 {
        return Vr::UL;
    }
    // Private groups: Private Creator elements (gggg,0010-00FF) are LO (PS3.5 §7.8.1); the others are
    // known only to their creator.
    if tag.group % 2 == 1 {
        return if (0x0010..=0x00FF).contains(&tag.element) { Vr::LO } else { Vr::UN };
    }
    match dictionary::lookup(tag) {
        Some("US or SS") if context.signed_pixels => Vr::SS,
        Some("US or SS") => Vr::US,
        Some("US or OW") if context.single_entry_lut => Vr::US,
        // Native pixel and overlay data are OW in implicit VR (PS3.5 §A.1), and so is LUT Data of more
        // than one entry.
        Some("OB or OW" | "US or OW") => Vr::OW,
        Some(vr) => match vr.as_bytes() {
            &[a, b] => Vr([a, b]),
            _ => Vr::UN,
        },
        None => Vr::UN,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::transfer_syntax::{
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN,
        IMPLICIT_VR_LITTLE_ENDIAN,
    };
    use super::*;

    fn tag(group: u16, element: u16) -> Tag {
        Tag::new(group, element)
    }

    /// The tags and VRs of a list of elements, for compact assertions.
    fn shape(elements: &[Element]) -> Vec<(Tag, &str)> {
        elements.iter().map(|e| (e.tag, e.vr.as_str())).collect()
    }

    #[test]
    fn reads_explicit_little_endian_elements_with_their_offsets() {
        let head = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0060, b"CS", b"CT"), // (0008,0060) CS len 2: Modality
        ]
        .concat();
        let file = [
            head.clone(),
            ex(0x0010, 0x0010, b"PN", b"Doe^Jane"), // (0010,0010) PN len 8: Patient Name
            ex(0x0028, 0x0010, b"US", &[64, 0]),    // (0028,0010) US len 2: Rows = 64
        ]
        .concat();
        let data_set = read_data_set(&file).unwrap();
        assert_eq!(data_set.transfer_syntax, EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(data_set.meta.len(), 5, "the meta group is kept apart");
        assert_eq!(shape(&data_set.elements), [(tag(8, 0x60), "CS"), (tag(0x10, 0x10), "PN"), (tag(0x28, 0x10), "US")]);
        let name = data_set.get(tag(0x10, 0x10)).unwrap();
        // The value follows the tag (4), VR (2) and length (2) of the element after the Modality.
        assert_eq!(name.offset, head.len() as u64 + 8);
        assert_eq!(name.length, 8);
        assert_eq!(name.bytes(&file), b"Doe^Jane");
        assert_eq!(data_set.get(tag(0x28, 0x10)).unwrap().first_unsigned(&file), Some(64));
    }

    #[test]
    fn implicit_vr_comes_from_the_dictionary() {
        let file = [
            part10(IMPLICIT_VR_LITTLE_ENDIAN),
            im(0x0008, 0x0000, &[4, 0, 0, 0]), // (0008,0000) UL len 4: group length
            im(0x0008, 0x0060, b"MR"),         // (0008,0060) CS len 2: Modality
            im(0x0008, 0x9999, b"??"),         // (0008,9999) len 2: not in the dictionary
            im(0x0009, 0x0010, b"ACME"),       // (0009,0010) LO len 4: private creator
            im(0x0009, 0x1001, &[1, 2]),       // (0009,1001) len 2: private value
            im(0x0028, 0x0103, &[1, 0]),       // (0028,0103) US len 2: Pixel Representation = 1
            im(0x0028, 0x0106, &[0xFE, 0xFF]), // (0028,0106) US or SS len 2: Smallest Pixel = -2
            im(0x0028, 0x3002, &[1, 0, 0, 0, 16, 0]), // (0028,3002) US or SS len 6: LUT Descriptor, 1 entry
            im(0x0028, 0x3006, &[7, 0]),       // (0028,3006) US or OW len 2: LUT Data, so US
            im(0x6002, 0x3000, &[0; 4]),       // (6002,3000) OB or OW len 4: Overlay Data, group 6002
            im(0x7FE0, 0x0010, &[0; 4]),       // (7FE0,0010) OB or OW len 4: Pixel Data
        ]
        .concat();
        let data_set = read_data_set(&file).unwrap();
        let expected = [
            (tag(0x0008, 0x0000), "UL"),
            (tag(0x0008, 0x0060), "CS"),
            (tag(0x0008, 0x9999), "UN"),
            (tag(0x0009, 0x0010), "LO"),
            (tag(0x0009, 0x1001), "UN"),
            (tag(0x0028, 0x0103), "US"),
            (tag(0x0028, 0x0106), "SS"),
            (tag(0x0028, 0x3002), "SS"),
            (tag(0x0028, 0x3006), "US"),
            (tag(0x6002, 0x3000), "OW"),
            (tag(0x7FE0, 0x0010), "OW"),
        ];
        assert_eq!(shape(&data_set.elements), expected);
    }

    #[test]
    fn reads_nested_sequences_of_defined_and_undefined_length() {
        let defined_item = [
            ex(0x0008, 0x0100, b"SH", b"T-1"), // (0008,0100) SH len 3 (odd): Code Value
            ex(0x0008, 0x0102, b"SH", b"99"),  // (0008,0102) SH len 2: Coding Scheme
        ]
        .concat();
        let defined_sequence = [item(defined_item.len() as u32), defined_item].concat();
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex_undefined(0x0040, 0x0275, b"SQ"), // (0040,0275) SQ undefined: Request Attributes
            item(u32::MAX),                      //   (FFFE,E000) undefined: item 1
            ex(0x0040, 0x0008, b"SQ", &defined_sequence), // (0040,0008) SQ len 27: Protocol Code
            ex(0x0040, 0x1001, b"SH", b"RP-1"),  //     (0040,1001) SH len 4: Requested Procedure ID
            item_end(),                          //   (FFFE,E00D): end of item 1
            item(0),                             //   (FFFE,E000) len 0: item 2, empty
            seq_end(),                           // (FFFE,E0DD): end of Request Attributes
            ex(0x0040, 0x0260, b"SQ", &[]),      // (0040,0260) SQ len 0: empty sequence
            ex(0x0040, 0x1002, b"LO", b"reason"), // (0040,1002) LO len 6: after the sequences
        ]
        .concat();
        let data_set = read_data_set(&file).unwrap();
        let request = data_set.get(tag(0x0040, 0x0275)).unwrap();
        assert!(request.undefined_length);
        assert_eq!(request.items().len(), 2);
        assert_eq!(shape(&request.items()[0]), [(tag(0x40, 0x08), "SQ"), (tag(0x40, 0x1001), "SH")]);
        assert!(request.items()[1].is_empty());
        let protocol = &request.items()[0][0];
        assert_eq!(shape(&protocol.items()[0]), [(tag(8, 0x100), "SH"), (tag(8, 0x102), "SH")]);
        assert_eq!(protocol.items()[0][0].bytes(&file), b"T-1");
        assert_eq!(protocol.items()[0][1].bytes(&file), b"99");
        assert!(data_set.get(tag(0x0040, 0x0260)).unwrap().items().is_empty());
        assert_eq!(data_set.get(tag(0x0040, 0x1002)).unwrap().bytes(&file), b"reason");
    }

    #[test]
    fn reads_implicit_sequences_by_dictionary_and_by_undefined_length() {
        let file = [
            part10(IMPLICIT_VR_LITTLE_ENDIAN),
            im(0x0008, 0x1110, &[item(12), im(0x0008, 0x1150, b"1.2\0")].concat()), // (0008,1110) SQ len 20
            im_undefined(0x0009, 0x1010),    // (0009,1010) undefined: private, so a sequence
            item(u32::MAX),                  //   (FFFE,E000) undefined: item
            im(0x0009, 0x1011, b"private!"), //     (0009,1011) len 8: private value
            item_end(),                      //   (FFFE,E00D): end of item
            seq_end(),                       // (FFFE,E0DD): end of sequence
        ]
        .concat();
        let data_set = read_data_set(&file).unwrap();
        let study = data_set.get(tag(0x0008, 0x1110)).unwrap();
        assert_eq!(study.vr, Vr::SQ);
        assert_eq!(shape(&study.items()[0]), [(tag(8, 0x1150), "UI")]);
        let private = data_set.get(tag(0x0009, 0x1010)).unwrap();
        assert_eq!(private.vr, Vr::SQ);
        assert_eq!(private.items()[0][0].bytes(&file), b"private!");
    }

    #[test]
    fn decodes_big_endian_numbers_and_little_endian_un_values() {
        let file = [
            part10(EXPLICIT_VR_BIG_ENDIAN),
            ex_be(0x0028, 0x0008, b"IS", b"12"), // (0028,0008) IS len 2: Number of Frames
            ex_be(0x0028, 0x0010, b"US", &[1, 0]), // (0028,0010) US len 2: Rows = 256
            ex_be(0x0028, 0x0011, b"US", &[0, 64]), // (0028,0011) US len 2: Columns = 64
            // (0029,1010) UN undefined: big endian header, implicit VR little endian contents.
            vec![0x00, 0x29, 0x10, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF],
            item(u32::MAX),                              //   (FFFE,E000) undefined item, little endian
            im(0x0028, 0x0010, &[1, 0]),                 //     (0028,0010) US len 2: Rows = 1
            item_end(),                                  //   (FFFE,E00D)
            seq_end(),                                   // (FFFE,E0DD)
            ex_be(0x0028, 0x0100, b"UN", &[16, 0]),      // (0028,0100) UN len 2: Bits Allocated, little endian
            ex_be(0x7FE0, 0x0010, b"OW", &[0x12, 0x34]), // (7FE0,0010) OW len 2: Pixel Data
        ]
        .concat();
        let data_set = read_data_set(&file).unwrap();
        let rows = data_set.get(tag(0x0028, 0x0010)).unwrap();
        assert!(rows.big_endian);
        assert_eq!(rows.first_unsigned(&file), Some(256));
        assert_eq!(data_set.get(tag(0x0028, 0x0011)).unwrap().first_unsigned(&file), Some(64));
        assert_eq!(data_set.get(tag(0x0028, 0x0008)).unwrap().first_integer_string(&file), Some(12));
        let private = data_set.get(tag(0x0029, 0x1010)).unwrap();
        assert_eq!(private.vr, Vr::SQ);
        let inner_rows = &private.items()[0][0];
        assert!(!inner_rows.big_endian);
        assert_eq!(inner_rows.first_unsigned(&file), Some(1));
        // A UN value of a known attribute gets the dictionary's VR, and is little endian (PS3.5 §6.2.2).
        let bits = data_set.get(tag(0x0028, 0x0100)).unwrap();
        assert_eq!((bits.vr, bits.big_endian, bits.first_unsigned(&file)), (Vr::US, false, Some(16)));
        assert_eq!(data_set.get(PIXEL_DATA).unwrap().bytes(&file), [0x12, 0x34]);
    }

    #[test]
    fn encapsulated_pixel_data_is_one_element_spanning_its_fragments() {
        let head = [part10(JPEG_BASELINE), ex(0x0028, 0x0008, b"IS", b"1 ")].concat(); // (0028,0008) IS len 2
        let file = [
            head.clone(),
            ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
            item(0),                             //   (FFFE,E000) len 0: empty Basic Offset Table
            item(3),                             //   (FFFE,E000) len 3 (odd): fragment 1
            vec![0xFF, 0xD8, 0xFF],              //     fragment bytes
            item(2),                             //   (FFFE,E000) len 2: fragment 2
            vec![0xFF, 0xD9],                    //     fragment bytes
            seq_end(),                           // (FFFE,E0DD): end of fragments
            ex(0xFFFC, 0xFFFC, b"OB", &[0; 2]),  // (FFFC,FFFC) OB len 2: trailing padding
        ]
        .concat();
        let data_set = read_data_set(&file).unwrap();
        let pixels = data_set.get(PIXEL_DATA).unwrap();
        let value_start = head.len() + 12;
        assert_eq!(pixels.offset, value_start as u64);
        assert_eq!(pixels.length, 8 + 8 + 3 + 8 + 2, "three item headers and five bytes, no delimiter");
        let first = value_start + 8 + 8;
        let second = first + 3 + 8;
        assert_eq!(
            pixels.value,
            Value::Fragments(vec![value_start + 8..value_start + 8, first..first + 3, second..second + 2])
        );
        assert!(data_set.get(tag(0xFFFC, 0xFFFC)).is_some());
    }

    #[test]
    fn reads_a_bare_data_set_like_the_header_reader() {
        let file = [
            im(0x0008, 0x0060, b"OT"), // (0008,0060) CS len 2: Modality
            im(0x0010, 0x0020, b"P1"), // (0010,0020) LO len 2: Patient ID
        ]
        .concat();
        let data_set = read_data_set(&file).unwrap();
        assert_eq!(data_set.transfer_syntax, IMPLICIT_VR_LITTLE_ENDIAN);
        assert!(data_set.meta.is_empty());
        assert_eq!(shape(&data_set.elements), [(tag(8, 0x60), "CS"), (tag(0x10, 0x20), "LO")]);
    }

    #[test]
    fn reads_meta_groups_without_preamble_or_in_implicit_vr() {
        let no_preamble =
            [part10(EXPLICIT_VR_LITTLE_ENDIAN), ex(0x0008, 0x0060, b"CS", b"CT")].concat()[132..].to_vec();
        let data_set = read_data_set(&no_preamble).unwrap();
        assert_eq!(data_set.meta.len(), 5, "(0002,0000) to (0002,0010)");
        assert_eq!(shape(&data_set.elements), [(tag(8, 0x60), "CS")]);
        let implicit_meta = [
            vec![0; 128],
            b"DICM".to_vec(),
            im(0x0002, 0x0010, b"1.2.840.10008.1.2\0"), // (0002,0010) implicit len 18: syntax
            im(0x0008, 0x0060, b"MR"),                  // (0008,0060) implicit len 2: Modality
        ]
        .concat();
        let data_set = read_data_set(&implicit_meta).unwrap();
        assert_eq!(shape(&data_set.meta), [(tag(2, 0x10), "UI")]);
        assert_eq!(shape(&data_set.elements), [(tag(8, 0x60), "CS")]);
    }

    #[test]
    fn zero_padding_after_the_last_element_ends_the_data_set() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0060, b"CS", b"SR"), // (0008,0060) CS len 2: Modality
            vec![0; 21],                      // zeros up to a block size
        ]
        .concat();
        assert_eq!(shape(&read_data_set(&file).unwrap().elements), [(tag(8, 0x60), "CS")]);
    }

    #[test]
    fn refuses_a_deflated_data_set_naming_the_transfer_syntax() {
        let data_set = ex(0x0008, 0x0060, b"CS", b"CT"); // (0008,0060) CS len 2: Modality
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
        let error = read_data_set(&file).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unsupported transfer syntax 1.2.840.10008.1.2.1.99 \
             (a deflated data set is read element by element only once inflated)"
        );
    }

    #[test]
    fn a_deflated_file_is_measured_then_inflated_into_exactly_that_length() {
        let data_set = [
            ex(0x0008, 0x0060, b"CS", b"CT"),        // (0008,0060) CS len 2: Modality
            ex(0x7FE0, 0x0010, b"OW", &[7; 70_000]), // (7FE0,0010) OW len 70000: Pixel Data
        ]
        .concat();
        let file = [part10(DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN), deflate(&data_set)].concat();
        let len = inflated_file_len(&file).unwrap();
        let (_, start) = read_meta(&file).unwrap();
        assert_eq!(len, start + data_set.len());
        let inflated = inflate_file(&file, len).unwrap();
        assert_eq!((inflated.len(), inflated.capacity()), (len, len), "allocated once, to the length measured");
        assert!(inflated[start..] == data_set);
        assert_eq!(
            shape(&read_inflated_data_set(&inflated).unwrap().elements),
            [(tag(8, 0x60), "CS"), (tag(0x7FE0, 0x10), "OW")]
        );
        // A file that no longer inflates to the length measured is refused, longer or shorter.
        for wrong in [len - 1, len + 1, start - 1] {
            let message = inflate_file(&file, wrong).unwrap_err().to_string();
            assert!(message.contains("no longer inflates"), "{wrong}: {message}");
        }
        let plain = part10(EXPLICIT_VR_LITTLE_ENDIAN);
        assert!(inflated_file_len(&plain).unwrap_err().to_string().contains("not deflated"));
    }

    #[test]
    fn rejects_an_element_running_past_its_item() {
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex_undefined(0x0008, 0x1110, b"SQ"), // (0008,1110) SQ undefined
            item(4),                             //   (FFFE,E000) len 4, too short for
            ex(0x0008, 0x1150, b"UI", b"1.2\0"), //     (0008,1150) UI len 4: 12 bytes
            seq_end(),                           // (FFFE,E0DD)
        ]
        .concat();
        let message = read_data_set(&file).unwrap_err().to_string();
        assert!(message.contains("(0008,1150)") && message.contains("past the end of its item"), "{message}");
    }

    #[test]
    fn rejects_sequences_nested_too_deeply() {
        let mut file = part10(EXPLICIT_VR_LITTLE_ENDIAN);
        for _ in 0..100 {
            file.extend(ex_undefined(0x0008, 0x1115, b"SQ")); // (0008,1115) SQ undefined
            file.extend(item(u32::MAX)); //   (FFFE,E000) undefined item
        }
        let message = read_data_set(&file).unwrap_err().to_string();
        assert!(message.contains("nested too deeply"), "{message}");
    }

    #[test]
    fn truncation_after_pixel_data_is_an_error() {
        let mut file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x7FE0, 0x0010, b"OW", &[0; 4]), // (7FE0,0010) OW len 4: Pixel Data
            ex(0xFFFC, 0xFFFC, b"OB", &[0; 4]), // (FFFC,FFFC) OB len 4: padding
        ]
        .concat();
        file.truncate(file.len() - 2);
        let error = read_data_set(&file).unwrap_err();
        assert!(matches!(error, DicomError::Truncated { tag: Some(t), .. } if t == tag(0xFFFC, 0xFFFC)), "{error}");
    }

    #[test]
    fn survives_random_mutations() {
        let fixtures = [
            [
                part10(EXPLICIT_VR_LITTLE_ENDIAN),
                ex_undefined(0x0040, 0x0275, b"SQ"), // (0040,0275) SQ undefined
                item(u32::MAX),                      //   (FFFE,E000) undefined item
                ex(0x0040, 0x0008, b"SQ", &[item(10), ex(0x0008, 0x0100, b"SH", b"AB")].concat()), // SQ len 18
                item_end(),                          //   (FFFE,E00D)
                seq_end(),                           // (FFFE,E0DD)
                ex_undefined(0x0009, 0x1010, b"UN"), // (0009,1010) UN undefined
                item(u32::MAX),                      //   (FFFE,E000) undefined item
                im(0x0009, 0x1011, b"x "),           //     (0009,1011) implicit len 2
                item_end(),                          //   (FFFE,E00D)
                seq_end(),                           // (FFFE,E0DD)
                ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
                item(0),                             //   (FFFE,E000) len 0: offset table
                item(2),                             //   (FFFE,E000) len 2: fragment
                vec![1, 2],                          //     fragment bytes
                seq_end(),                           // (FFFE,E0DD)
            ]
            .concat(),
            [
                part10(IMPLICIT_VR_LITTLE_ENDIAN),
                im(0x0008, 0x1110, &[item(12), im(0x0008, 0x1150, b"1.2\0")].concat()), // SQ len 20
                im(0x0028, 0x0010, &[2, 0]),                                            // (0028,0010) US len 2: Rows
                im(0x7FE0, 0x0010, &[0; 4]), // (7FE0,0010) OW len 4: Pixel Data
            ]
            .concat(),
        ];
        mutate_each(&fixtures, 6000, |file| {
            let _ = read_data_set(file);
        });
    }
}

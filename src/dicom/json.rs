//! The DICOM JSON Model (PS3.18 Annex F) of one instance, for WADO-RS metadata: one JSON object for the
//! data set, without the File Meta Information (group 0002) and without Group Length attributes.
//!
//! Invariants: binary values (OB, OD, OF, OL, OV, OW, UN) and Pixel Data are never inlined; they become a
//! `BulkDataURI` that the caller builds from a [`BulkRef`]. So do the values longer than
//! [`BULK_DATA_THRESHOLD`] bytes of the other VRs that PS3.18 §F.2.2 lets a BulkDataURI stand for. This
//! module decodes values and knows nothing of URLs, HTTP or the index; it never panics on the file. It
//! takes the data set from `dataset` and, with `frames`, sits at the top of the folder's imports.

use serde_json::{Map, Value as Json};

use super::charset::Charset;
use super::dataset::{DataSet, Element, Value, Vr, find};
use super::element::read_u16;
use super::tags::{PIXEL_DATA, SPECIFIC_CHARACTER_SET, Tag};
use super::text::parse_decimal;

/// Text and numeric values longer than this many bytes are sent as a BulkDataURI rather than inline.
/// Binary values always are, whatever their length. 1024 is what pydicom and common servers use.
pub const BULK_DATA_THRESHOLD: usize = 1024;

/// Names a value that the JSON refers to by BulkDataURI instead of holding it. The server names bulk data by
/// its tag path; `offset` and `length` say where the value lies, which the tests check.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct BulkRef<'a> {
    /// The sequences that enclose the attribute, outermost first: each one's tag and the zero-based
    /// index of the item. Empty for a top-level attribute.
    pub path: &'a [(Tag, usize)],
    pub tag: Tag,
    /// File offset of the value's first byte; for encapsulated Pixel Data, of its first item.
    pub offset: u64,
    /// Length of the value in bytes; for encapsulated Pixel Data, of all its items.
    pub length: u64,
}

/// The DICOM JSON object of a data set already read from `file`.
pub fn data_set_to_json(file: &[u8], data_set: &DataSet, bulk: &dyn Fn(BulkRef) -> String) -> Json {
    let mut writer = Writer { file, bulk, path: Vec::new() };
    writer.object(&data_set.elements, Charset::LATIN1, true)
}

struct Writer<'a> {
    file: &'a [u8],
    bulk: &'a dyn Fn(BulkRef) -> String,
    /// The enclosing sequences and item indices of the attribute being written.
    path: Vec<(Tag, usize)>,
}

impl Writer<'_> {
    /// One data set or item as a JSON object, its attributes in ascending tag order (PS3.18 §F.2.2).
    fn object(&mut self, elements: &[Element], inherited: Charset, top_level: bool) -> Json {
        // An item without its own Specific Character Set uses its data set's (PS3.3 §C.12.1.1.2).
        let charset = match find(elements, SPECIFIC_CHARACTER_SET) {
            Some(element) => Charset::from_value(Some(element.bytes(self.file))),
            None => inherited,
        };
        let mut sorted: Vec<&Element> =
            elements.iter().filter(|e| e.tag.element != 0x0000 && !(top_level && e.tag.group == 0x0002)).collect();
        // A stable sort, so that of two elements with the same tag (invalid) the first one is kept.
        sorted.sort_by_key(|e| e.tag);
        sorted.dedup_by_key(|e| e.tag);
        let mut object = Map::new();
        for element in sorted {
            object.insert(element.tag.json_key(), self.attribute(element, charset));
        }
        Json::Object(object)
    }

    fn attribute(&mut self, element: &Element, charset: Charset) -> Json {
        let mut attribute = Map::new();
        match &element.value {
            Value::Items(items) => {
                attribute.insert("vr".into(), Json::from(element.vr.as_str()));
                if !items.is_empty() {
                    let mut objects = Vec::with_capacity(items.len());
                    for (index, item) in items.iter().enumerate() {
                        self.path.push((element.tag, index));
                        objects.push(self.object(item, charset, false));
                        self.path.pop();
                    }
                    attribute.insert("Value".into(), Json::Array(objects));
                }
            }
            Value::Fragments(_) => {
                attribute.insert("vr".into(), Json::from(element.vr.as_str()));
                attribute.insert("BulkDataURI".into(), Json::from(self.bulk_uri(element)));
            }
            Value::Bytes(_) => {
                attribute.insert("vr".into(), Json::from(element.vr.as_str()));
                let bytes = element.bytes(self.file);
                if bytes.is_empty() {
                    // An empty value has neither Value nor BulkDataURI (PS3.18 §F.2.5).
                } else if element.tag == PIXEL_DATA || is_binary(element.vr) || too_long(element.vr, bytes) {
                    attribute.insert("BulkDataURI".into(), Json::from(self.bulk_uri(element)));
                } else {
                    match values(element, bytes, charset) {
                        Values::Some(values) => {
                            attribute.insert("Value".into(), Json::Array(values));
                        }
                        Values::Empty => {}
                        Values::Ragged => {
                            attribute.insert("BulkDataURI".into(), Json::from(self.bulk_uri(element)));
                        }
                    }
                }
            }
        }
        Json::Object(attribute)
    }

    fn bulk_uri(&self, element: &Element) -> String {
        (self.bulk)(BulkRef { path: &self.path, tag: element.tag, offset: element.offset, length: element.length })
    }
}

/// The VRs whose JSON is base64 or a BulkDataURI, never a Value (PS3.18 §F.2.3).
fn is_binary(vr: Vr) -> bool {
    matches!(&vr.0, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"UN")
}

/// Whether a value is long enough to be sent as bulk data and of a VR that may be (PS3.18 §F.2.2).
fn too_long(vr: Vr, bytes: &[u8]) -> bool {
    let may_be_bulk = matches!(
        &vr.0,
        b"DS" | b"FL" | b"FD" | b"IS" | b"LT" | b"SL" | b"SS" | b"ST" | b"SV" | b"UC" | b"UL" | b"US" | b"UT" | b"UV"
    );
    may_be_bulk && bytes.len() > BULK_DATA_THRESHOLD
}

/// The decoded values of an element.
enum Values {
    Some(Vec<Json>),
    /// Nothing but padding: the attribute is present and empty (PS3.18 §F.2.5).
    Empty,
    /// A binary number value whose length is not a multiple of the number's size.
    Ragged,
}

fn values(element: &Element, bytes: &[u8], charset: Charset) -> Values {
    let big = element.big_endian;
    match &element.vr.0 {
        b"US" => numbers(bytes, big, |b| Json::from(u16::from_le_bytes(b))),
        b"SS" => numbers(bytes, big, |b| Json::from(i16::from_le_bytes(b))),
        b"UL" => numbers(bytes, big, |b| Json::from(u32::from_le_bytes(b))),
        b"SL" => numbers(bytes, big, |b| Json::from(i32::from_le_bytes(b))),
        b"UV" => numbers(bytes, big, |b| Json::from(u64::from_le_bytes(b))),
        b"SV" => numbers(bytes, big, |b| Json::from(i64::from_le_bytes(b))),
        b"FL" => numbers(bytes, big, |b| float(f64::from(f32::from_le_bytes(b)))),
        b"FD" => numbers(bytes, big, |b| float(f64::from_le_bytes(b))),
        b"AT" => {
            // A tag is two 16-bit numbers, group then element (PS3.5 §6.2). Trailing bytes that do not
            // make a whole tag are dropped: AT may not be sent as bulk data.
            let tags = bytes.chunks_exact(4).filter_map(|chunk| {
                let group = read_u16(chunk, 0, big)?;
                let element = read_u16(chunk, 2, big)?;
                Some(Json::from(Tag::new(group, element).json_key()))
            });
            Values::Some(tags.collect())
        }
        b"PN" => strings(bytes, element.vr, charset, person_name),
        b"IS" => strings(bytes, element.vr, charset, integer_string),
        b"DS" => strings(bytes, element.vr, charset, decimal_string),
        _ => strings(bytes, element.vr, charset, |text| Json::from(text)),
    }
}

/// Binary numbers of N bytes each, handed to `decode` in little endian order whatever the file's; a
/// value of another length is ragged.
fn numbers<const N: usize>(bytes: &[u8], big_endian: bool, decode: impl Fn([u8; N]) -> Json) -> Values {
    let chunks = bytes.chunks_exact(N);
    if !chunks.remainder().is_empty() {
        return Values::Ragged;
    }
    let little_endian = |chunk: &[u8]| {
        let mut number: [u8; N] = chunk.try_into().ok()?;
        if big_endian {
            number.reverse();
        }
        Some(number)
    };
    Values::Some(chunks.filter_map(little_endian).map(decode).collect())
}

/// JSON has no NaN or infinities (RFC 8259 §6), so those are sent as the strings JavaScript and pydicom
/// name them with. Every finite value is a JSON number.
fn float(value: f64) -> Json {
    if value.is_nan() {
        Json::from("NaN")
    } else if value.is_infinite() {
        Json::from(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Json::from(value)
    }
}

/// The string values of a text element: decoded, split on backslash where the VR allows several values
/// (PS3.5 §6.4, PS3.18 §F.2.4), trimmed of padding, and converted by `convert`. An empty value among
/// several is `null` (PS3.18 §F.2.5).
fn strings(bytes: &[u8], vr: Vr, charset: Charset, convert: fn(&str) -> Json) -> Values {
    // Only these VRs use the Specific Character Set; the others are in the default repertoire, which
    // Latin-1 decodes identically while keeping stray high bytes readable (PS3.5 §6.1.2.3).
    let charset =
        if matches!(&vr.0, b"SH" | b"LO" | b"ST" | b"LT" | b"UC" | b"UT" | b"PN") { charset } else { Charset::LATIN1 };
    // LT, ST, UT and UR hold a single value in which a backslash is a character (PS3.5 §6.2).
    let single = matches!(&vr.0, b"LT" | b"ST" | b"UT" | b"UR");
    // Leading spaces are significant only in the text VRs (PS3.5 Table 6.2-1).
    let keep_leading = matches!(&vr.0, b"LT" | b"ST" | b"UT");
    let parts: Vec<&[u8]> = if single { vec![bytes] } else { bytes.split(|&b| b == b'\\').collect() };
    let values: Vec<Json> = parts
        .into_iter()
        .map(|part| {
            // A person name's component groups are decoded each on its own (PS3.5 §6.1.2.5.3).
            let text = if vr.0 == *b"PN" { charset.decode_person_name(part) } else { charset.decode(part) };
            let text = text.trim_end_matches([' ', '\0']);
            let text = if keep_leading { text } else { text.trim_start_matches(' ') };
            if text.is_empty() { Json::Null } else { convert(text) }
        })
        .collect();
    if values.iter().all(Json::is_null) && values.len() == 1 { Values::Empty } else { Values::Some(values) }
}

/// A Person Name value as its component groups (PS3.18 §F.2.2): alphabetic, ideographic and phonetic,
/// separated by '=' (PS3.5 §6.2.1). Empty groups are left out.
pub fn person_name(text: &str) -> Json {
    let mut name = Map::new();
    for (key, group) in ["Alphabetic", "Ideographic", "Phonetic"].into_iter().zip(text.split('=')) {
        let group = group.trim_end_matches(' ');
        if !group.is_empty() {
            name.insert(key.into(), Json::from(group));
        }
    }
    if name.is_empty() { Json::Null } else { Json::Object(name) }
}

/// An Integer String as a JSON number. A value that is not an integer is sent as the string it is,
/// which PS3.18 Table F.2.3-1 allows for IS, except that an integral decimal ("12.0") becomes that
/// integer, as pydicom reads it.
fn integer_string(text: &str) -> Json {
    if let Ok(integer) = text.parse::<i64>() {
        return Json::from(integer);
    }
    match parse_decimal(text) {
        Some(value) if value.fract() == 0.0 && value.abs() < 9.0e15 => Json::from(value as i64),
        _ => Json::from(text),
    }
}

/// A Decimal String as a JSON number, or, when it is not a finite decimal number, as the string it is,
/// which PS3.18 Table F.2.3-1 allows for DS.
fn decimal_string(text: &str) -> Json {
    match parse_decimal(text) {
        Some(value) => Json::from(value),
        None => Json::from(text),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::super::dataset::read_data_set;
    use super::super::error::DicomError;
    use super::super::fixtures::*;
    use super::super::transfer_syntax::{EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
    use super::*;

    fn to_dicom_json(bytes: &[u8], bulk: &dyn Fn(BulkRef) -> String) -> Result<Json, DicomError> {
        let data_set = read_data_set(bytes)?;
        Ok(data_set_to_json(bytes, &data_set, bulk))
    }

    /// A bulk handler that names the tag path and the value's place in the file.
    fn bulk(reference: BulkRef) -> String {
        let path: Vec<String> = reference.path.iter().map(|(tag, item)| format!("{tag}[{item}]")).collect();
        format!("bulk:{}{}@{}+{}", path.concat(), reference.tag, reference.offset, reference.length)
    }

    /// Where the data set starts in a file made by `part10(EXPLICIT_VR_LITTLE_ENDIAN)`.
    fn meta_end() -> usize {
        part10(EXPLICIT_VR_LITTLE_ENDIAN).len()
    }

    /// Checks the JSON of a Part 10 file in transfer syntax `syntax` holding `elements` against `expected`.
    fn check(syntax: &str, elements: &[Vec<u8>], expected: Json) {
        let file = [part10(syntax), elements.concat()].concat();
        let actual = to_dicom_json(&file, &bulk).unwrap();
        assert_eq!(actual, expected, "\nactual:   {actual}\nexpected: {expected}");
    }

    #[test]
    fn writes_strings_trimmed_and_split() {
        check(
            EXPLICIT_VR_LITTLE_ENDIAN,
            &[
                ex(0x0008, 0x0008, b"CS", b"ORIGINAL\\PRIMARY\\ AXIAL "), // (0008,0008) CS len 24: 3 values
                ex(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0"), // (0008,0016) UI len 26: NUL padded
                ex(0x0008, 0x0020, b"DA", b""),                           // (0008,0020) DA len 0: empty
                ex(0x0008, 0x0050, b"SH", b"  "),                         // (0008,0050) SH len 2: padding only
                ex(0x0008, 0x0061, b"CS", b"CT\\\\MR"),                   // (0008,0061) CS len 6: an empty middle value
                ex(0x0008, 0x1030, b"LO", b" Head\\Neck "),               // (0008,1030) LO len 11 (odd): 2 values
                ex(0x0010, 0x4000, b"LT", b"  one\\value  "),             // (0010,4000) LT len 14: single valued
            ],
            json!({
                "00080008": {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", "AXIAL"]},
                "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                "00080020": {"vr": "DA"},
                "00080050": {"vr": "SH"},
                "00080061": {"vr": "CS", "Value": ["CT", null, "MR"]},
                "00081030": {"vr": "LO", "Value": ["Head", "Neck"]},
                "00104000": {"vr": "LT", "Value": ["  one\\value"]},
            }),
        );
    }

    #[test]
    fn writes_person_name_groups() {
        check(
            EXPLICIT_VR_LITTLE_ENDIAN,
            &[
                ex(0x0008, 0x0005, b"CS", b"ISO_IR 192"), // (0008,0005) CS len 10: UTF-8
                ex(0x0008, 0x0090, b"PN", b"Smith^John"), // (0008,0090) PN len 10: one group
                // (0010,0010) PN len 46: all three groups, in UTF-8
                ex(0x0010, 0x0010, b"PN", "Yamada^Tarou=山田^太郎=やまだ^たろう".as_bytes()),
                ex(0x0010, 0x1001, b"PN", b"=Ideo^Only\\Doe^J \\"), // (0010,1001) PN len 18: 3 values
                ex(0x0010, 0x1060, b"PN", b"Mother^Maiden=="),      // (0010,1060) PN len 15: empty groups
            ],
            json!({
                "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
                "00080090": {"vr": "PN", "Value": [{"Alphabetic": "Smith^John"}]},
                "00100010": {"vr": "PN", "Value": [{
                    "Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"
                }]},
                "00101001": {"vr": "PN", "Value": [{"Ideographic": "Ideo^Only"}, {"Alphabetic": "Doe^J"}, null]},
                "00101060": {"vr": "PN", "Value": [{"Alphabetic": "Mother^Maiden"}]},
            }),
        );
    }

    #[test]
    fn decodes_text_per_specific_character_set_inherited_by_items() {
        let latin1_item = [
            ex(0x0008, 0x0104, b"LO", b"Gr\xFC\xDFe"), // (0008,0104) LO len 5 (odd): Latin-1 "Grüße"
        ]
        .concat();
        let utf8_item = [
            ex(0x0008, 0x0005, b"CS", b"ISO_IR 192"), // (0008,0005) CS len 10: item's own: UTF-8
            ex(0x0008, 0x0104, b"LO", "Grüße".as_bytes()), // (0008,0104) LO len 7: UTF-8 "Grüße"
        ]
        .concat();
        check(
            EXPLICIT_VR_LITTLE_ENDIAN,
            &[
                ex(0x0008, 0x0005, b"CS", b"ISO_IR 100"),       // (0008,0005) CS len 10: Latin-1
                ex(0x0008, 0x0080, b"LO", b"Klinikum S\xFCd "), // (0008,0080) LO len 14: Latin-1
                ex(0x0008, 0x1032, b"SQ", &[item(13), latin1_item, item(33), utf8_item].concat()), // SQ len 62
            ],
            json!({
                "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
                "00080080": {"vr": "LO", "Value": ["Klinikum Süd"]},
                "00081032": {"vr": "SQ", "Value": [
                    {"00080104": {"vr": "LO", "Value": ["Grüße"]}},
                    {
                        "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
                        "00080104": {"vr": "LO", "Value": ["Grüße"]},
                    },
                ]},
            }),
        );
    }

    #[test]
    fn default_character_set_reads_high_bytes_as_latin1() {
        check(
            EXPLICIT_VR_LITTLE_ENDIAN,
            &[ex(0x0010, 0x0010, b"PN", b"S\xE9n^A")], // (0010,0010) PN len 6: no charset, stray 0xE9
            json!({"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Sén^A"}]}}),
        );
    }

    #[test]
    fn writes_nested_sequences_in_tag_order() {
        let inner = [
            ex(0x0008, 0x0104, b"LO", b"Brain T1"), // (0008,0104) LO len 8: Code Meaning
            ex(0x0008, 0x0100, b"SH", b"P-1 "),     // (0008,0100) SH len 4: Code Value, out of order
        ]
        .concat();
        let file = [
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex_undefined(0x0040, 0x0275, b"SQ"), // (0040,0275) SQ undefined: Request Attributes
            item(u32::MAX),                      //   (FFFE,E000) undefined: item
            ex(0x0040, 0x1001, b"SH", b"RP-12 "), //     (0040,1001) SH len 6: Requested Procedure ID
            ex(0x0040, 0x0008, b"SQ", &[item(28), inner].concat()), // (0040,0008) SQ len 36: Protocol
            ex(0x0008, 0x0000, b"UL", &[0; 4]),  //     (0008,0000) UL len 4: group length, left out
            item_end(),                          //   (FFFE,E00D)
            item(0),                             //   (FFFE,E000) len 0: an empty item
            seq_end(),                           // (FFFE,E0DD)
            ex(0x0008, 0x1140, b"SQ", &[]),      // (0008,1140) SQ len 0: empty, and out of tag order
        ]
        .concat();
        let expected = json!({
            "00081140": {"vr": "SQ"},
            "00400275": {"vr": "SQ", "Value": [
                {
                    "00400008": {"vr": "SQ", "Value": [{
                        "00080100": {"vr": "SH", "Value": ["P-1"]},
                        "00080104": {"vr": "LO", "Value": ["Brain T1"]},
                    }]},
                    "00401001": {"vr": "SH", "Value": ["RP-12"]},
                },
                {},
            ]},
        });
        let actual = to_dicom_json(&file, &bulk).unwrap();
        assert_eq!(actual, expected);
        let keys: Vec<&String> = actual.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["00081140", "00400275"]);
    }

    #[test]
    fn writes_binary_numbers_little_and_big_endian() {
        for (syntax, be) in [(EXPLICIT_VR_LITTLE_ENDIAN, false), (EXPLICIT_VR_BIG_ENDIAN, true)] {
            // Numbers in the data set's byte order.
            let u16s = |v: &[u16]| v.iter().flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() }).collect();
            let u32s = |v: &[u32]| v.iter().flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() }).collect();
            let f32s = |v: &[f32]| v.iter().flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() }).collect();
            let u64s = |v: &[u64]| v.iter().flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() }).collect();
            let f64s = |v: &[f64]| v.iter().flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() }).collect();
            let e = |group, element, vr: &[u8; 2], value: Vec<u8>| explicit(be, group, element, vr, &value);
            let file = [
                part10(syntax),
                e(0x0018, 0x1063, b"FD", f64s(&[0.5])), // (0018,1063) FD len 8: Frame Time
                e(0x0018, 0x9306, b"FL", f32s(&[0.25, f32::NAN])), // (0018,9306) FL len 8: 2 values
                e(0x0018, 0x9307, b"FL", f32s(&[f32::NEG_INFINITY])), // (0018,9307) FL len 4: -inf
                e(0x0028, 0x0009, b"AT", u16s(&[0x0018, 0x1063, 0x0020, 0x0013])), // (0028,0009) AT len 8
                e(0x0028, 0x0010, b"US", u16s(&[256])), // (0028,0010) US len 2: Rows
                e(0x0028, 0x0106, b"SS", u16s(&[0xFFFE])), // (0028,0106) SS len 2: -2
                e(0x0028, 0x1101, b"US", u16s(&[4096, 0, 16])), // (0028,1101) US len 6: 3 values
                e(0x0040, 0xA132, b"UL", u32s(&[65538, 7])), // (0040,A132) UL len 8: 2 values
                e(0x0040, 0xA161, b"SL", u32s(&[u32::MAX])), // (0040,A161) SL len 4: -1
                e(0x0040, 0xA162, b"UV", u64s(&[1 << 40])), // (0040,A162) UV len 8: 2^40
                e(0x0028, 0x0011, b"US", vec![1, 2, 3]), // (0028,0011) US len 3: ragged
            ]
            .concat();
            let ragged_at = file.len() - 3;
            let json = to_dicom_json(&file, &bulk).unwrap();
            let expected = json!({
                "00181063": {"vr": "FD", "Value": [0.5]},
                "00189306": {"vr": "FL", "Value": [0.25, "NaN"]},
                "00189307": {"vr": "FL", "Value": ["-Infinity"]},
                "00280009": {"vr": "AT", "Value": ["00181063", "00200013"]},
                "00280010": {"vr": "US", "Value": [256]},
                "00280011": {"vr": "US", "BulkDataURI": format!("bulk:(0028,0011)@{ragged_at}+3")},
                "00280106": {"vr": "SS", "Value": [-2]},
                "00281101": {"vr": "US", "Value": [4096, 0, 16]},
                "0040A132": {"vr": "UL", "Value": [65538, 7]},
                "0040A161": {"vr": "SL", "Value": [-1]},
                "0040A162": {"vr": "UV", "Value": [1u64 << 40]},
            });
            assert_eq!(json, expected, "big endian: {be}");
        }
    }

    #[test]
    fn writes_integer_and_decimal_strings_as_numbers() {
        check(
            EXPLICIT_VR_LITTLE_ENDIAN,
            &[
                ex(0x0018, 0x0050, b"DS", b" 5 "),               // (0018,0050) DS len 3: 5
                ex(0x0018, 0x0088, b"DS", b"-0.5E1\\+.25\\7."),  // (0018,0088) DS len 14: 3 values
                ex(0x0018, 0x1060, b"DS", b"abc\\NaN\\\\1e999"), // (0018,1060) DS len 15: not numbers
                ex(0x0020, 0x0011, b"IS", b"+7 "),               // (0020,0011) IS len 3: 7
                ex(0x0020, 0x0012, b"IS", b"-12\\3.0\\1.5"),     // (0020,0012) IS len 11: 3 values
                ex(0x0020, 0x0013, b"IS", b"x1"),                // (0020,0013) IS len 2: not a number
            ],
            json!({
                "00180050": {"vr": "DS", "Value": [5.0]},
                "00180088": {"vr": "DS", "Value": [-5.0, 0.25, 7.0]},
                "00181060": {"vr": "DS", "Value": ["abc", "NaN", null, "1e999"]},
                "00200011": {"vr": "IS", "Value": [7]},
                "00200012": {"vr": "IS", "Value": [-12, 3, "1.5"]},
                "00200013": {"vr": "IS", "Value": ["x1"]},
            }),
        );
    }

    #[test]
    fn sends_binary_and_long_values_as_bulk_data() {
        let references = RefCell::new(Vec::new());
        let record = |reference: BulkRef| {
            references.borrow_mut().push((reference.path.to_vec(), reference.tag, reference.length));
            "uri".to_string()
        };
        let long_text = vec![b'a'; BULK_DATA_THRESHOLD + 1];
        let file = [
            part10(IMPLICIT_VR_LITTLE_ENDIAN),
            im(0x0008, 0x1140, &[item(12), im(0x0009, 0x1001, &[1, 2, 3, 4])].concat()), // SQ len 20: private UN
            im(0x0010, 0x4000, &long_text), // (0010,4000) LT len 1025: over the threshold
            im(0x0010, 0x21B0, &vec![b'b'; BULK_DATA_THRESHOLD]), // (0010,21B0) LT len 1024: at the threshold
            im(0x0028, 0x1201, &[]),        // (0028,1201) OW len 0: empty
            im(0x7FE0, 0x0010, &[0; 2]),    // (7FE0,0010) OW len 2: Pixel Data
        ]
        .concat();
        let json = to_dicom_json(&file, &record).unwrap();
        assert_eq!(json["00081140"], json!({"vr": "SQ", "Value": [{"00091001": {"vr": "UN", "BulkDataURI": "uri"}}]}));
        assert_eq!(json["00104000"], json!({"vr": "LT", "BulkDataURI": "uri"}));
        assert_eq!(json["001021B0"]["Value"][0].as_str().map(str::len), Some(BULK_DATA_THRESHOLD));
        assert_eq!(json["00281201"], json!({"vr": "OW"}));
        assert_eq!(json["7FE00010"], json!({"vr": "OW", "BulkDataURI": "uri"}));
        let sequence = Tag::new(0x0008, 0x1140);
        let expected = vec![
            (vec![(sequence, 0)], Tag::new(0x0009, 0x1001), 4),
            (vec![], Tag::new(0x0010, 0x4000), 1025),
            (vec![], PIXEL_DATA, 2),
        ];
        assert_eq!(*references.borrow(), expected);
    }

    #[test]
    fn encapsulated_pixel_data_refers_to_all_its_items() {
        let head = part10("1.2.840.10008.1.2.4.50");
        let file = [
            head.clone(),
            ex_undefined(0x7FE0, 0x0010, b"OB"), // (7FE0,0010) OB undefined: Pixel Data
            item(0),                             //   (FFFE,E000) len 0: Basic Offset Table
            item(4),                             //   (FFFE,E000) len 4: fragment
            vec![0xFF, 0xD8, 0xFF, 0xD9],        //     fragment bytes
            seq_end(),                           // (FFFE,E0DD)
        ]
        .concat();
        let json = to_dicom_json(&file, &bulk).unwrap();
        let offset = head.len() + 12;
        assert_eq!(json, json!({"7FE00010": {"vr": "OB", "BulkDataURI": format!("bulk:(7FE0,0010)@{offset}+20")}}));
    }

    #[test]
    fn un_of_a_known_attribute_is_written_with_its_vr() {
        check(
            EXPLICIT_VR_LITTLE_ENDIAN,
            &[
                ex(0x0009, 0x0010, b"UN", b"ACME"),   // (0009,0010) UN len 4: a private creator, so LO
                ex(0x0009, 0x1001, b"UN", b"ACME"),   // (0009,1001) UN len 4: private, unknown
                ex(0x0010, 0x0010, b"UN", b"Doe^J "), // (0010,0010) UN len 6: Patient Name, so PN
                ex(0x0028, 0x0030, b"UN", b"0.5\\0.5"), // (0028,0030) UN len 7: Pixel Spacing, so DS
            ],
            json!({
                "00090010": {"vr": "LO", "Value": ["ACME"]},
                // After the meta group, the first element (12 + 4 bytes) and this one's header (12).
                "00091001": {"vr": "UN", "BulkDataURI": format!("bulk:(0009,1001)@{}+4", meta_end() + 16 + 12)},
                "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^J"}]},
                "00280030": {"vr": "DS", "Value": [0.5, 0.5]},
            }),
        );
    }

    #[test]
    fn undefined_length_un_is_written_as_a_sequence() {
        check(
            EXPLICIT_VR_BIG_ENDIAN,
            &[
                // (0029,1010) UN undefined, big endian header; the items inside are implicit VR LE.
                vec![0x00, 0x29, 0x10, 0x10, b'U', b'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF],
                item(u32::MAX),              //   (FFFE,E000) undefined item
                im(0x0028, 0x0010, &[1, 0]), //     (0028,0010) US len 2: Rows = 1, little endian
                item_end(),                  //   (FFFE,E00D)
                seq_end(),                   // (FFFE,E0DD)
            ],
            json!({"00291010": {"vr": "SQ", "Value": [{"00280010": {"vr": "US", "Value": [1]}}]}}),
        );
    }

    #[test]
    fn survives_random_mutations() {
        let fixtures = [[
            part10(EXPLICIT_VR_LITTLE_ENDIAN),
            ex(0x0008, 0x0005, b"CS", b"ISO_IR 192"), // (0008,0005) CS len 10
            ex(0x0010, 0x0010, b"PN", "A^B=山=や".as_bytes()), // (0010,0010) PN len 11
            ex(0x0018, 0x0050, b"DS", b"1.5\\2"),     // (0018,0050) DS len 5
            ex(0x0028, 0x0009, b"AT", &[0x18, 0, 0x63, 0x10]), // (0028,0009) AT len 4
            ex_undefined(0x0040, 0x0275, b"SQ"),      // (0040,0275) SQ undefined
            item(u32::MAX),                           //   (FFFE,E000) undefined item
            ex(0x0020, 0x0013, b"IS", b"12"),         //     (0020,0013) IS len 2
            item_end(),                               //   (FFFE,E00D)
            seq_end(),                                // (FFFE,E0DD)
            ex(0x0028, 0x0010, b"US", &[2, 0]),       // (0028,0010) US len 2
            ex(0x7FE0, 0x0010, b"OW", &[0; 8]),       // (7FE0,0010) OW len 8
        ]
        .concat()];
        mutate_each(&fixtures, 4000, |file| {
            let _ = to_dicom_json(file, &bulk);
        });
    }
}

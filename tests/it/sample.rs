//! The sample data as the DICOMweb tests see it: where each file's Pixel Data lies (from the index), and
//! JSON read in document order, so that tests can check the order of DICOM JSON keys.

use crate::harness::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// MRN-1001's CT chest study: explicit VR little endian, ISO_IR 100 (Latin-1), a private block in the
/// first instance of its second series.
pub const CT_CHEST: &str = "2.25.3141592653589793238462643383279.1.1.1";
/// MRN-1001's MR brain study: one implicit VR little endian series with nested sequences of undefined
/// length, one explicit VR little endian series, and one deflated explicit VR little endian series.
pub const MR_BRAIN: &str = "2.25.3141592653589793238462643383279.1.1.2";
/// MRN-2002's CT abdomen study, only on the open tenant: ISO_IR 192 (UTF-8), a series in explicit VR big
/// endian and a series of two multi-frame instances (4 frames of 256×256×16 bits each).
pub const CT_ABDOMEN: &str = "2.25.3141592653589793238462643383279.1.2.1";

pub const EXPLICIT_BIG: &str = "1.2.840.10008.1.2.2";
pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
pub const OCTETS: &str = "application/octet-stream";
pub const DICOM_JSON: &str = "application/dicom+json";
/// One 256×256 frame of 16-bit pixels.
pub const FRAME_BYTES: usize = 256 * 256 * 2;

// ---------------------------------------------------------------------------------------------------
// The sample, and where its pixel data lies.

/// The parts of the sample index that `harness::IndexFile` does not read: where each file's Pixel Data value
/// starts, and its number of frames.
#[derive(Debug, Deserialize)]
pub struct PixelIndex {
    #[serde(rename = "study")]
    studies: Vec<PixelStudy>,
}

#[derive(Debug, Deserialize)]
pub struct PixelStudy {
    #[serde(default)]
    series: Vec<PixelSeries>,
}

#[derive(Debug, Deserialize)]
pub struct PixelSeries {
    #[serde(default, rename = "instance")]
    instances: Vec<PixelInstance>,
}

#[derive(Debug, Deserialize)]
pub struct PixelInstance {
    uid: String,
    path: String,
    frames: Option<usize>,
    pixel_data_offset: Option<usize>,
}

impl PixelIndex {
    pub fn sample() -> PixelIndex {
        let path = sample_index_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not an index: {e}", path.display()))
    }

    pub fn instance(&self, uid: &str) -> &PixelInstance {
        self.studies
            .iter()
            .flat_map(|s| &s.series)
            .flat_map(|s| &s.instances)
            .find(|i| i.uid == uid)
            .unwrap_or_else(|| panic!("instance {uid} is not in the index"))
    }

    /// The value of an instance's Pixel Data as stored: from the indexed offset to the end of the file, since
    /// Pixel Data is the last element of every sample file.
    pub fn pixel_data(&self, uid: &str) -> Vec<u8> {
        let inst = self.instance(uid);
        let offset = inst.pixel_data_offset.unwrap_or_else(|| panic!("instance {uid} has no pixel_data_offset"));
        let path = data_dir().join(&inst.path);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let pixels = bytes[offset..].to_vec();
        let frames = inst.frames.unwrap_or(1);
        assert_eq!(
            pixels.len(),
            frames * FRAME_BYTES,
            "{}: the value at pixel_data_offset is not {frames} frames",
            inst.path
        );
        pixels
    }
}

impl PixelIndex {
    /// An instance's Pixel Data as frames and bulk data send it: little endian (PS3.18 §8.7.3.3.2), so the
    /// stored bytes with each 16-bit word swapped for the sample's big endian files (all 16-bit, OW).
    pub fn pixel_data_little_endian(&self, uid: &str, transfer_syntax: &str) -> Vec<u8> {
        let mut pixels = self.pixel_data(uid);
        if transfer_syntax == EXPLICIT_BIG {
            pixels.chunks_exact_mut(2).for_each(|word| word.swap(0, 1));
        }
        pixels
    }
}

/// The repository's server, with the tenants `open` and `demo`.
pub fn sample_server() -> Server {
    Launch::new(sample_config()).start()
}

/// The WADO-RS address of every study the open tenant lists, by StudyInstanceUID.
pub fn open_addresses(server: &Server) -> BTreeMap<String, String> {
    addresses(server, "/open/fhir/ImagingStudy").into_iter().collect()
}

/// The WADO-RS address of p1's two studies on the demo tenant, by StudyInstanceUID.
pub fn demo_addresses(server: &Server) -> BTreeMap<String, String> {
    let found: BTreeMap<String, String> = addresses(server, "/demo/fhir/ImagingStudy?patient=p1").into_iter().collect();
    assert_eq!(found.keys().collect::<Vec<_>>(), [CT_CHEST, MR_BRAIN], "the demo search should find p1's 2 studies");
    found
}

pub fn address_of<'a>(addresses: &'a BTreeMap<String, String>, uid: &str) -> &'a str {
    addresses.get(uid).unwrap_or_else(|| panic!("no address for study {uid} in {addresses:?}"))
}

/// The resources of one instance, under a WADO-RS address.
pub struct Paths<'a> {
    pub address: &'a str,
    pub study: &'a str,
    pub series: &'a str,
    pub instance: &'a str,
}

impl Paths<'_> {
    pub fn study(&self, rest: &str) -> String {
        format!("{}/studies/{}{rest}", self.address, self.study)
    }

    pub fn series(&self, rest: &str) -> String {
        self.study(&format!("/series/{}{rest}", self.series))
    }

    pub fn instance(&self, rest: &str) -> String {
        self.series(&format!("/instances/{}{rest}", self.instance))
    }

    /// Every DICOMweb resource of the API table of docs/api.md that names this instance or what holds it, with a label.
    pub fn all(&self) -> Vec<(&'static str, String)> {
        vec![
            ("study", self.study("")),
            ("series", self.series("")),
            ("instance", self.instance("")),
            ("study metadata", self.study("/metadata")),
            ("series metadata", self.series("/metadata")),
            ("instance metadata", self.instance("/metadata")),
            ("series search", self.study("/series")),
            ("instance search", self.series("/instances")),
            ("frames", self.instance("/frames/1")),
            ("bulk data", self.instance("/bulk/7FE00010")),
            ("rendered", self.instance("/rendered")),
            ("thumbnail", self.instance("/thumbnail")),
        ]
    }
}

/// The request target of an absolute URL on this server.
pub fn target<'a>(server: &Server, url: &'a str) -> &'a str {
    url.strip_prefix(server.base()).unwrap_or_else(|| panic!("{url} is not on {}", server.base()))
}

/// A reply that must be a 200 DICOM JSON array, parsed.
pub fn dicom_json(reply: &Reply, what: &str) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{what}: status, body {}", reply.text());
    assert_eq!(reply.media_type(), DICOM_JSON, "{what}: Content-Type");
    match reply.json() {
        Value::Array(objects) => objects,
        other => panic!("{what}: not a JSON array: {other}"),
    }
}

/// The first value of an attribute of a DICOM JSON object.
pub fn first<'a>(object: &'a Value, tag: &str) -> &'a Value {
    &object[tag]["Value"][0]
}

/// The first value of an attribute as text, for UIDs and codes.
pub fn text(object: &Value, tag: &str) -> String {
    first(object, tag).as_str().unwrap_or_default().to_string()
}

/// The 200 multipart reply's parts, with the type parameter checked.
pub fn parts_of(reply: &Reply, part_type: &str, what: &str) -> Vec<Part> {
    assert_eq!(reply.status, 200, "{what}: status, body {}", reply.text());
    let content_type = reply.header_or_empty("content-type");
    assert_eq!(media_type(content_type), "multipart/related", "{what}: Content-Type {content_type:?}");
    assert_eq!(media_param(content_type, "type").as_deref(), Some(part_type), "{what}: type of {content_type:?}");
    parse_multipart(content_type, &reply.body).unwrap_or_else(|e| panic!("{what}: bad multipart: {e}"))
}

/// The token with one character in its middle replaced by another URL-safe one.
pub fn tamper(token: &str) -> String {
    let mid = token.len() / 2;
    let replacement = if &token[mid..=mid] == "A" { "B" } else { "A" };
    format!("{}{replacement}{}", &token[..mid], &token[mid + 1..])
}

/// A refused DICOMweb request: 403, and nothing of the study: no DICOM, no DICOM JSON, no frames, none of
/// the `secrets` (UIDs and names of what was asked for).
pub fn assert_refused(reply: &Reply, secrets: &[&str], what: &str) {
    assert_eq!(reply.status, 403, "{what}: status, body {}", reply.text());
    assert!(!reply.body_contains(b"DICM"), "{what}: the refusal carries DICOM bytes");
    let media = reply.media_type();
    assert!(media != "multipart/related" && media != DICOM_JSON, "{what}: the refusal is {media}");
    for secret in secrets {
        assert!(!reply.body_contains(secret.as_bytes()), "{what}: the refusal names {secret}: {}", reply.text());
    }
}

// ---------------------------------------------------------------------------------------------------
// JSON in document order.

/// JSON that keeps object members in document order. serde_json's `Value` sorts them (the crate has no
/// `preserve_order`), so an order check on it would pass whatever the server sent, and it would merge a
/// repeated key.
#[derive(Debug)]
pub enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    String(String),
    Other,
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Ordered, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(s.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Ordered>()? {
                    members.push(member);
                }
                Ok(Ordered::Object(members))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Ordered {
    pub fn member(&self, name: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Checks the keys of a DICOM JSON data set and of every item nested in it (PS3.18 §F.2.1.1): 8 upper-case
/// hexadecimal digits, strictly ascending, no Group Length (gggg,0000), and at top level no File Meta
/// Information (group 0002); every attribute an object with a `vr`.
pub fn assert_data_set_keys(data_set: &Ordered, top_level: bool, at: &str) {
    let Ordered::Object(members) = data_set else { panic!("{at}: a data set that is not a JSON object") };
    let mut previous: Option<&str> = None;
    for (key, attribute) in members {
        assert!(
            key.len() == 8 && key.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
            "{at}: key {key:?} is not 8 upper-case hex digits"
        );
        assert!(previous.is_none_or(|p| p < key.as_str()), "{at}: key {key} follows {previous:?}");
        assert!(!key.ends_with("0000"), "{at}: group length {key}");
        assert!(!(top_level && key.starts_with("0002")), "{at}: file meta attribute {key}");
        previous = Some(key);
        let Some(Ordered::String(vr)) = attribute.member("vr") else { panic!("{at}: {key} has no string vr") };
        if let (true, Some(Ordered::Array(items))) = (vr == "SQ", attribute.member("Value")) {
            for (n, item) in items.iter().enumerate() {
                assert_data_set_keys(item, false, &format!("{at} {key}[{n}]"));
            }
        }
    }
}

/// Parses a metadata body in document order and checks every data set's keys.
pub fn assert_metadata_keys(reply: &Reply, what: &str) {
    let ordered: Ordered = serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let Ordered::Array(objects) = ordered else { panic!("{what}: not a JSON array") };
    for (n, object) in objects.iter().enumerate() {
        assert_data_set_keys(object, true, &format!("{what}[{n}]"));
    }
}

#[test]
pub fn the_order_check_sees_what_serde_json_would_hide() {
    let parse = |json: &str| serde_json::from_str::<Ordered>(json).expect("JSON");
    let good = parse(r#"{"00080005": {"vr": "CS"}, "0008103E": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH"}}]}}"#);
    assert_data_set_keys(&good, true, "good");
    for bad in [
        r#"{"00100010": {"vr": "PN"}, "00080005": {"vr": "CS"}}"#,
        r#"{"00080005": {"vr": "CS"}, "00080005": {"vr": "CS"}}"#,
        r#"{"00080000": {"vr": "UL"}}"#,
        r#"{"00020010": {"vr": "UI"}}"#,
        r#"{"0008103e": {"vr": "LO"}}"#,
        r#"{"00081032": {"vr": "SQ", "Value": [{"00080104": {"vr": "LO"}, "00080100": {"vr": "SH"}}]}}"#,
    ] {
        let result = std::panic::catch_unwind(|| assert_data_set_keys(&parse(bad), true, "bad"));
        assert!(result.is_err(), "the check accepted {bad}");
    }
}

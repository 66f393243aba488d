//! Tests of the DICOMweb resources under a study token (README, HTTP API; DICOMweb details; DICOM PS3.18): metadata at study,
//! series and instance level (Annex F.2), bulk data, study-scoped QIDO-RS (§10.6), frames (§8.7.3.5.3),
//! content negotiation, HEAD, Content-Length and ETag / If-None-Match, and the study-token checks in
//! front of all of them. Against the repository's configuration (tenants `open` and `demo`) and sample
//! data, plus one temporary archive of encapsulated (JPEG Baseline) instances the sample lacks.
//!
//! Expected values come from the sample files themselves (bytes read at the index's `pixel_data_offset`)
//! and from what `data/make_sample.py` wrote into them, never from the server's own reading.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::harness::*;

/// MRN-1001's CT chest study: explicit VR little endian, ISO_IR 100 (Latin-1), a private block in the
/// first instance of its second series.
const CT_CHEST: &str = "2.25.3141592653589793238462643383279.1.1.1";
/// MRN-1001's MR brain study: one implicit VR little endian series with nested sequences of undefined
/// length, one explicit VR little endian series.
const MR_BRAIN: &str = "2.25.3141592653589793238462643383279.1.1.2";
/// MRN-2002's CT abdomen study, only on the open tenant: ISO_IR 192 (UTF-8), a series in explicit VR big
/// endian and a series of two multi-frame instances (4 frames of 64×64×16 bits each).
const CT_ABDOMEN: &str = "2.25.3141592653589793238462643383279.1.2.1";

const EXPLICIT_BIG: &str = "1.2.840.10008.1.2.2";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const OCTETS: &str = "application/octet-stream";
const DICOM_JSON: &str = "application/dicom+json";
/// One 64×64 frame of 16-bit pixels.
const FRAME_BYTES: usize = 64 * 64 * 2;

// ---------------------------------------------------------------------------------------------------
// The sample, and where its pixel data lies.

/// The parts of the sample index that `harness::IndexFile` does not read: where each file's Pixel Data value
/// starts, and its number of frames.
#[derive(Debug, Deserialize)]
struct PixelIndex {
    #[serde(rename = "study")]
    studies: Vec<PixelStudy>,
}

#[derive(Debug, Deserialize)]
struct PixelStudy {
    #[serde(default)]
    series: Vec<PixelSeries>,
}

#[derive(Debug, Deserialize)]
struct PixelSeries {
    #[serde(default, rename = "instance")]
    instances: Vec<PixelInstance>,
}

#[derive(Debug, Deserialize)]
struct PixelInstance {
    uid: String,
    path: String,
    frames: Option<usize>,
    pixel_data_offset: Option<usize>,
}

impl PixelIndex {
    fn sample() -> PixelIndex {
        let path = sample_index_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not an index: {e}", path.display()))
    }

    fn instance(&self, uid: &str) -> &PixelInstance {
        self.studies
            .iter()
            .flat_map(|s| &s.series)
            .flat_map(|s| &s.instances)
            .find(|i| i.uid == uid)
            .unwrap_or_else(|| panic!("instance {uid} is not in the index"))
    }

    /// The value of an instance's Pixel Data as stored: from the indexed offset to the end of the file, since
    /// Pixel Data is the last element of every sample file.
    fn pixel_data(&self, uid: &str) -> Vec<u8> {
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

/// The repository's server, with the tenants `open` and `demo`.
fn sample_server() -> Server {
    Launch::new(sample_config()).start()
}

/// The WADO-RS address of every study the open tenant lists, by StudyInstanceUID.
fn open_addresses(server: &Server) -> BTreeMap<String, String> {
    addresses(server, "/open/fhir/ImagingStudy").into_iter().collect()
}

/// The WADO-RS address of p1's two studies on the demo tenant, by StudyInstanceUID.
fn demo_addresses(server: &Server) -> BTreeMap<String, String> {
    let found: BTreeMap<String, String> = addresses(server, "/demo/fhir/ImagingStudy?patient=p1").into_iter().collect();
    assert_eq!(found.keys().collect::<Vec<_>>(), [CT_CHEST, MR_BRAIN], "the demo search should find p1's 2 studies");
    found
}

fn address_of<'a>(addresses: &'a BTreeMap<String, String>, uid: &str) -> &'a str {
    addresses.get(uid).unwrap_or_else(|| panic!("no address for study {uid} in {addresses:?}"))
}

/// The resources of one instance, under a WADO-RS address.
struct Paths<'a> {
    address: &'a str,
    study: &'a str,
    series: &'a str,
    instance: &'a str,
}

impl Paths<'_> {
    fn study(&self, rest: &str) -> String {
        format!("{}/studies/{}{rest}", self.address, self.study)
    }

    fn series(&self, rest: &str) -> String {
        self.study(&format!("/series/{}{rest}", self.series))
    }

    fn instance(&self, rest: &str) -> String {
        self.series(&format!("/instances/{}{rest}", self.instance))
    }

    /// Every DICOMweb resource of the README's API table that names this instance or what holds it, with a label.
    fn all(&self) -> Vec<(&'static str, String)> {
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
        ]
    }
}

/// The request target of an absolute URL on this server.
fn target<'a>(server: &Server, url: &'a str) -> &'a str {
    url.strip_prefix(server.base()).unwrap_or_else(|| panic!("{url} is not on {}", server.base()))
}

/// A reply that must be a 200 DICOM JSON array, parsed.
fn dicom_json(reply: &Reply, what: &str) -> Vec<Value> {
    assert_eq!(reply.status, 200, "{what}: status, body {}", reply.text());
    assert_eq!(reply.media_type(), DICOM_JSON, "{what}: Content-Type");
    match reply.json() {
        Value::Array(objects) => objects,
        other => panic!("{what}: not a JSON array: {other}"),
    }
}

/// The first value of an attribute of a DICOM JSON object.
fn first<'a>(object: &'a Value, tag: &str) -> &'a Value {
    &object[tag]["Value"][0]
}

/// The first value of an attribute as text, for UIDs and codes.
fn text(object: &Value, tag: &str) -> String {
    first(object, tag).as_str().unwrap_or_default().to_string()
}

/// The 200 multipart reply's parts, with the type parameter checked.
fn parts_of(reply: &Reply, part_type: &str, what: &str) -> Vec<Part> {
    assert_eq!(reply.status, 200, "{what}: status, body {}", reply.text());
    let content_type = reply.header_or_empty("content-type");
    assert_eq!(media_type(content_type), "multipart/related", "{what}: Content-Type {content_type:?}");
    assert_eq!(media_param(content_type, "type").as_deref(), Some(part_type), "{what}: type of {content_type:?}");
    parse_multipart(content_type, &reply.body).unwrap_or_else(|e| panic!("{what}: bad multipart: {e}"))
}

/// The token with one character in its middle replaced by another URL-safe one.
fn tamper(token: &str) -> String {
    let mid = token.len() / 2;
    let replacement = if &token[mid..=mid] == "A" { "B" } else { "A" };
    format!("{}{replacement}{}", &token[..mid], &token[mid + 1..])
}

/// A refused DICOMweb request: 403, and nothing of the study: no DICOM, no DICOM JSON, no frames, none of
/// the `secrets` (UIDs and names of what was asked for).
fn assert_refused(reply: &Reply, secrets: &[&str], what: &str) {
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
enum Ordered {
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
    fn member(&self, name: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Checks the keys of a DICOM JSON data set and of every item nested in it (PS3.18 §F.2.1.1): 8 upper-case
/// hexadecimal digits, strictly ascending, no Group Length (gggg,0000), and at top level no File Meta
/// Information (group 0002); every attribute an object with a `vr`.
fn assert_data_set_keys(data_set: &Ordered, top_level: bool, at: &str) {
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
        if vr == "SQ"
            && let Some(Ordered::Array(items)) = attribute.member("Value")
        {
            for (n, item) in items.iter().enumerate() {
                assert_data_set_keys(item, false, &format!("{at} {key}[{n}]"));
            }
        }
    }
}

/// Parses a metadata body in document order and checks every data set's keys.
fn assert_metadata_keys(reply: &Reply, what: &str) {
    let ordered: Ordered = serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let Ordered::Array(objects) = ordered else { panic!("{what}: not a JSON array") };
    for (n, object) in objects.iter().enumerate() {
        assert_data_set_keys(object, true, &format!("{what}[{n}]"));
    }
}

#[test]
fn the_order_check_sees_what_serde_json_would_hide() {
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

// ---------------------------------------------------------------------------------------------------
// Metadata (PS3.18 §10.4.1.1.2, Annex F.2).

#[test]
fn metadata_at_study_series_and_instance_level_holds_one_object_per_instance() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (uid, address) in open_addresses(&server) {
        let study = index.study(&uid);
        let paths = |se: &str, sop: &str| format!("{address}/studies/{uid}/series/{se}/instances/{sop}/metadata");

        let what = format!("study {uid} metadata");
        let reply = get(&format!("{address}/studies/{uid}/metadata"), &[]);
        let objects = dicom_json(&reply, &what);
        assert_eq!(objects.len(), study.instance_count(), "{what}: one object per instance");
        let got = sorted(objects.iter().map(|o| text(o, "00080018")));
        assert_eq!(got, sorted(study.instances().iter().map(|i| i.uid.clone())), "{what}: SOP Instance UIDs");
        assert!(objects.iter().all(|o| text(o, "0020000D") == uid), "{what}: a Study Instance UID of another study");
        assert_metadata_keys(&reply, &what);

        for series in &study.series {
            let what = format!("series {} metadata", series.uid);
            let reply = get(&format!("{address}/studies/{uid}/series/{}/metadata", series.uid), &[]);
            let objects = dicom_json(&reply, &what);
            assert_eq!(objects.len(), series.instances.len(), "{what}: one object per instance");
            let got = sorted(objects.iter().map(|o| text(o, "00080018")));
            assert_eq!(got, sorted(series.instances.iter().map(|i| i.uid.clone())), "{what}: SOP Instance UIDs");
            assert!(objects.iter().all(|o| text(o, "0020000E") == series.uid), "{what}: another series' instance");
            assert_metadata_keys(&reply, &what);

            for inst in &series.instances {
                let what = format!("instance {} metadata", inst.uid);
                let reply = get(&paths(&series.uid, &inst.uid), &[]);
                let objects = dicom_json(&reply, &what);
                assert_eq!(objects.len(), 1, "{what}: one object");
                assert_eq!(text(&objects[0], "00080018"), inst.uid, "{what}: SOP Instance UID");
                assert_eq!(text(&objects[0], "00080016"), inst.sop_class, "{what}: SOP Class UID");
                assert_eq!(first(&objects[0], "00200013").as_i64(), inst.number, "{what}: Instance Number");
                assert_metadata_keys(&reply, &what);
            }
        }
    }
}

#[test]
fn metadata_decodes_latin1_and_utf8_text_and_splits_person_names() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let demo = demo_addresses(&server);
    let one = |address: &str, study: &str| {
        let series = &index.study(study).series[0];
        let url =
            format!("{address}/studies/{study}/series/{}/instances/{}/metadata", series.uid, series.instances[0].uid);
        dicom_json(&get(&url, &[]), &format!("first instance of {study}")).remove(0)
    };

    // ISO_IR 100: the files hold `M\xFCller^Anna` and `Klinikum S\xFCd` in Latin-1.
    for (tenant, address) in [("demo", address_of(&demo, CT_CHEST)), ("open", address_of(&open, CT_CHEST))] {
        let object = one(address, CT_CHEST);
        assert_eq!(text(&object, "00080005"), "ISO_IR 100", "{tenant}: Specific Character Set as stored");
        assert_eq!(object["00100010"]["vr"], "PN", "{tenant}: PatientName VR");
        assert_eq!(first(&object, "00100010"), &serde_json::json!({"Alphabetic": "Müller^Anna"}), "{tenant}: PN");
        assert_eq!(text(&object, "00080080"), "Klinikum Süd", "{tenant}: InstitutionName from Latin-1");
        assert_eq!(first(&object, "00080090")["Alphabetic"], "Smith^John", "{tenant}: ReferringPhysicianName");
    }
    // ISO_IR 192: UTF-8, with `Tōkyō` in InstitutionName.
    let object = one(address_of(&open, CT_ABDOMEN), CT_ABDOMEN);
    assert_eq!(text(&object, "00080005"), "ISO_IR 192", "Specific Character Set as stored");
    assert_eq!(first(&object, "00100010"), &serde_json::json!({"Alphabetic": "Tanaka^Yuki"}), "UTF-8 PN");
    assert_eq!(text(&object, "00080080"), "Tōkyō Clinic", "InstitutionName from UTF-8");
}

#[test]
fn metadata_value_representations_have_their_json_forms() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let metadata = |study: &str, series: usize, instance: usize| {
        let se = &index.study(study).series[series];
        let url = format!(
            "{}/studies/{study}/series/{}/instances/{}/metadata",
            address_of(&open, study),
            se.uid,
            se.instances[instance].uid
        );
        dicom_json(&get(&url, &[]), &url).remove(0)
    };
    let number = |object: &Value, tag: &str, want: f64, what: &str| {
        let element = &object[tag];
        let value = element["Value"][0].as_f64();
        assert_eq!(value, Some(want), "{what} ({tag}, {}) is not the JSON number {want}: {element}", element["vr"]);
    };

    // Explicit VR little endian CT.
    let ct = metadata(CT_CHEST, 0, 2);
    number(&ct, "00200013", 3.0, "IS InstanceNumber");
    number(&ct, "00200011", 1.0, "IS SeriesNumber");
    number(&ct, "00180050", 5.0, "DS SliceThickness");
    number(&ct, "00281052", -1024.0, "DS RescaleIntercept");
    number(&ct, "00280010", 64.0, "US Rows");
    number(&ct, "00280100", 16.0, "US BitsAllocated");
    number(&ct, "00280103", 0.0, "US PixelRepresentation");
    let spacing: Vec<f64> =
        ct["00280030"]["Value"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
    assert_eq!(spacing, [3.5, 3.5], "DS PixelSpacing, multi-valued: {}", ct["00280030"]);
    let position = &ct["00200032"]["Value"];
    assert_eq!(position.as_array().map(Vec::len), Some(3), "DS ImagePositionPatient has 3 values: {position}");
    assert_eq!(position[2].as_f64(), Some(-10.0), "DS ImagePositionPatient z of instance 3: {position}");
    assert_eq!(ct["00080008"]["Value"], serde_json::json!(["ORIGINAL", "PRIMARY", "AXIAL"]), "CS ImageType");
    let code = first(&ct, "00081032");
    assert_eq!(ct["00081032"]["vr"], "SQ", "ProcedureCodeSequence VR");
    assert_eq!(text(code, "00080100"), "24627-2", "CodeValue in ProcedureCodeSequence");
    assert_eq!(text(code, "00080102"), "LN", "CodingSchemeDesignator in ProcedureCodeSequence");

    // The private block of the first instance of the CT's second series: creator, LO and US.
    let private = metadata(CT_CHEST, 1, 0);
    assert_eq!(text(&private, "00090010"), "SMARTIMG SAMPLE", "private creator (0009,0010)");
    assert_eq!(text(&private, "00091001"), "synthetic private value", "private LO (0009,1001)");
    number(&private, "00091002", 42.0, "private US (0009,1002)");

    // Implicit VR little endian MR: VRs come from the dictionary; nested sequences of undefined length.
    let mr = metadata(MR_BRAIN, 0, 0);
    assert_eq!(mr["00280010"]["vr"], "US", "implicit VR: Rows gets its VR from the dictionary");
    number(&mr, "00280010", 64.0, "US Rows in implicit VR");
    number(&mr, "00180080", 500.0, "DS RepetitionTime in implicit VR");
    let request = first(&mr, "00400275");
    assert_eq!(mr["00400275"]["vr"], "SQ", "RequestAttributesSequence VR");
    assert_eq!(text(request, "00401001"), "RP-12", "RequestedProcedureID in the item");
    let protocol = first(request, "00400008");
    assert_eq!(text(protocol, "00080100"), "P-BRAIN-T1", "CodeValue two sequences deep");
    assert_eq!(text(protocol, "00080104"), "Brain T1 axial", "CodeMeaning two sequences deep");

    // Explicit VR little endian MR: a ReferencedStudySequence of undefined length.
    let referenced = metadata(MR_BRAIN, 1, 0);
    assert_eq!(text(first(&referenced, "00081110"), "00081155"), CT_CHEST, "ReferencedSOPInstanceUID in the item");

    // Big endian: numbers are read in the file's byte order (64 is 0x0040, not 0x4000).
    let big = metadata(CT_ABDOMEN, 0, 0);
    number(&big, "00280010", 64.0, "US Rows in big endian");
    number(&big, "00280101", 12.0, "US BitsStored in big endian");
    number(&big, "00180050", 3.0, "DS SliceThickness in big endian");

    // Multi-frame: IS NumberOfFrames and AT FrameIncrementPointer.
    let multi = metadata(CT_ABDOMEN, 1, 0);
    number(&multi, "00280008", 4.0, "IS NumberOfFrames");
    assert_eq!(multi["00280009"], serde_json::json!({"vr": "AT", "Value": ["00181063"]}), "AT FrameIncrementPointer");
}

#[test]
fn pixel_data_is_a_bulk_data_uri_under_the_same_study_token_that_serves_the_stored_bytes() {
    let index = IndexFile::sample();
    let pixels = PixelIndex::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let demo = demo_addresses(&server);
    // Every transfer syntax of the sample, single- and multi-frame, on both tenants.
    let cases = [
        (&demo, CT_CHEST, 0, "explicit VR little endian on demo"),
        (&open, CT_CHEST, 1, "explicit VR little endian on open"),
        (&demo, MR_BRAIN, 0, "implicit VR little endian"),
        (&open, CT_ABDOMEN, 0, "explicit VR big endian"),
        (&open, CT_ABDOMEN, 1, "multi-frame"),
    ];
    for (addresses, study, series, what) in cases {
        let address = address_of(addresses, study);
        let se = &index.study(study).series[series];
        let inst = &se.instances[se.instances.len() - 1];
        let url = format!("{address}/studies/{study}/series/{}/instances/{}/metadata", se.uid, inst.uid);
        let object = dicom_json(&get(&url, &[]), what).remove(0);
        let element = &object["7FE00010"];
        assert!(element.get("Value").is_none() && element.get("InlineBinary").is_none(), "{what}: inline pixels");
        assert!(matches!(element["vr"].as_str(), Some("OW" | "OB")), "{what}: Pixel Data VR {}", element["vr"]);
        let uri = element["BulkDataURI"].as_str().unwrap_or_else(|| panic!("{what}: no BulkDataURI: {element}"));
        assert!(uri.starts_with(&format!("{address}/")), "{what}: {uri} is not under the study token's base {address}");

        let reply = get(uri, &[]);
        let parts = parts_of(&reply, OCTETS, &format!("{what}: GET {uri}"));
        assert_eq!(parts.len(), 1, "{what}: native Pixel Data is one part");
        let part_type = parts[0].header("content-type").unwrap_or_default();
        assert_eq!(media_type(part_type), OCTETS, "{what}: the part's Content-Type {part_type:?}");
        assert!(parts[0].body == pixels.pixel_data(&inst.uid), "{what}: the bulk data is not the stored Pixel Data");
    }
}

#[test]
fn metadata_and_searches_refuse_media_types_they_cannot_send() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let address = address_of(&open, CT_CHEST);
    let se = &index.study(CT_CHEST).series[0];
    let urls = [
        format!("{address}/studies/{CT_CHEST}/metadata"),
        format!("{address}/studies/{CT_CHEST}/series/{}/instances/{}/metadata", se.uid, se.instances[0].uid),
        format!("{address}/studies/{CT_CHEST}/series"),
        format!("{address}/studies/{CT_CHEST}/series/{}/instances", se.uid),
    ];
    for url in &urls {
        for accept in [DICOM_JSON, "application/json", "*/*", "application/dicom+xml;q=0.5, application/dicom+json"] {
            let reply = get(url, &[("Accept", accept)]);
            assert_eq!(reply.status, 200, "Accept {accept:?} on {url}: {}", reply.text());
            assert_eq!(reply.media_type(), DICOM_JSON, "Accept {accept:?} on {url}: Content-Type");
        }
        assert_eq!(get(url, &[("Accept", "application/dicom+xml")]).status, 406, "XML metadata on {url}");
        assert_eq!(get(url, &[("Accept", "application/dicom")]).status, 406, "application/dicom on {url}");
        assert_eq!(get(url, &[("Accept", "json")]).status, 400, "a malformed Accept on {url}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Study-scoped QIDO-RS (PS3.18 §10.6).

#[test]
fn series_search_lists_every_series_of_the_sealed_study() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (uid, address) in open_addresses(&server) {
        let study = index.study(&uid);
        for query in ["", "?includefield=all", "?includefield=00081190&includefield=SeriesDescription"] {
            let what = format!("series of {uid}{query}");
            let found = dicom_json(&get(&format!("{address}/studies/{uid}/series{query}"), &[]), &what);
            assert_eq!(found.len(), study.series.len(), "{what}: every series");
            for (object, series) in found.iter().zip(&study.series) {
                let at = format!("{what}: series {}", series.uid);
                assert_eq!(text(object, "0020000E"), series.uid, "{at}: SeriesInstanceUID (or order)");
                assert_eq!(text(object, "0020000D"), uid, "{at}: StudyInstanceUID");
                assert_eq!(text(object, "00080060"), series.modality, "{at}: Modality");
                assert_eq!(text(object, "0008103E"), series.description, "{at}: SeriesDescription");
                assert_eq!(first(object, "00200011").as_i64(), series.number, "{at}: SeriesNumber, a number");
                assert_eq!(
                    first(object, "00201209").as_u64(),
                    Some(series.instances.len() as u64),
                    "{at}: NumberOfSeriesRelatedInstances, a number"
                );
                let retrieve = format!("{address}/studies/{uid}/series/{}", series.uid);
                assert_eq!(text(object, "00081190"), retrieve, "{at}: RetrieveURL under the same study token");
            }
        }
    }
}

#[test]
fn series_search_matches_uid_lists_and_modality_and_pages() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let address = address_of(&open, MR_BRAIN);
    let series: Vec<&str> = index.study(MR_BRAIN).series.iter().map(|s| s.uid.as_str()).collect();
    let [a, b] = series[..] else { panic!("the MR study should have 2 series") };
    let search = |query: &str| {
        let found = dicom_json(&get(&format!("{address}/studies/{MR_BRAIN}/series?{query}"), &[]), query);
        found.iter().map(|o| text(o, "0020000E")).collect::<Vec<_>>()
    };
    for (query, expected) in [
        (format!("SeriesInstanceUID={b}"), vec![b]),
        (format!("SeriesInstanceUID={b},{a}"), vec![a, b]),
        (format!("SeriesInstanceUID=2.25.999,{a}"), vec![a]),
        (format!("0020000E={a}"), vec![a]),
        ("SeriesInstanceUID=2.25.999".to_string(), vec![]),
        ("Modality=MR".to_string(), vec![a, b]),
        ("Modality=CT".to_string(), vec![]),
        ("00080060=MR".to_string(), vec![a, b]),
        ("SeriesDescription=AX%20T2*".to_string(), vec![b]),
        ("SeriesNumber=1".to_string(), vec![a]),
        ("limit=1".to_string(), vec![a]),
        ("offset=1".to_string(), vec![b]),
        ("limit=1&offset=1".to_string(), vec![b]),
        ("offset=2".to_string(), vec![]),
        ("Modality=MR&limit=5&offset=0&includefield=all".to_string(), vec![a, b]),
    ] {
        assert_eq!(search(&query), expected, "series search ?{query}");
    }
    for bad in ["Foo=bar", "99990010=x", "limit=x", "offset=-1"] {
        let reply = get(&format!("{address}/studies/{MR_BRAIN}/series?{bad}"), &[]);
        assert_eq!(reply.status, 400, "series search ?{bad}: {}", reply.text());
    }
}

#[test]
fn instance_search_lists_every_instance_of_a_series_with_image_attributes() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (uid, address) in open_addresses(&server) {
        for series in &index.study(&uid).series {
            let what = format!("instances of series {}", series.uid);
            let url = format!("{address}/studies/{uid}/series/{}/instances", series.uid);
            let found = dicom_json(&get(&url, &[]), &what);
            assert_eq!(found.len(), series.instances.len(), "{what}: every instance");
            for (object, inst) in found.iter().zip(&series.instances) {
                let at = format!("{what}: instance {}", inst.uid);
                assert_eq!(text(object, "00080018"), inst.uid, "{at}: SOPInstanceUID (or order)");
                assert_eq!(text(object, "00080016"), inst.sop_class, "{at}: SOPClassUID");
                assert_eq!(text(object, "0020000D"), uid, "{at}: StudyInstanceUID");
                assert_eq!(text(object, "0020000E"), series.uid, "{at}: SeriesInstanceUID");
                assert_eq!(first(object, "00200013").as_i64(), inst.number, "{at}: InstanceNumber, a number");
                assert_eq!(first(object, "00280010").as_u64(), Some(64), "{at}: Rows, a number");
                assert_eq!(first(object, "00280011").as_u64(), Some(64), "{at}: Columns, a number");
                assert_eq!(first(object, "00280100").as_u64(), Some(16), "{at}: BitsAllocated, a number");
                let retrieve = format!("{url}/{}", inst.uid);
                assert_eq!(text(object, "00081190"), retrieve, "{at}: RetrieveURL under the same study token");
                if series.description == "MULTIFRAME SECONDARY CAPTURE" {
                    assert_eq!(first(object, "00280008").as_u64(), Some(4), "{at}: NumberOfFrames, a number");
                }
            }
            // The RetrieveURL answers.
            let retrieve = text(&found[0], "00081190");
            assert_dicom_parts(&get(&retrieve, &[]), &[&series.instances[0]], &format!("{what}: GET {retrieve}"));
        }
    }
}

#[test]
fn instance_search_matches_and_pages() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let address = address_of(&open, CT_CHEST);
    let series = &index.study(CT_CHEST).series[0];
    let uids: Vec<&str> = series.instances.iter().map(|i| i.uid.as_str()).collect();
    assert_eq!(uids.len(), 10, "the CT chest's first series should have 10 instances");
    let url = format!("{address}/studies/{CT_CHEST}/series/{}/instances", series.uid);
    let search = |query: &str| {
        let found = dicom_json(&get(&format!("{url}?{query}"), &[]), query);
        found.iter().map(|o| text(o, "00080018")).collect::<Vec<_>>()
    };
    for (query, expected) in [
        (format!("SOPInstanceUID={}", uids[4]), vec![uids[4]]),
        (format!("SOPInstanceUID={},{}", uids[7], uids[1]), vec![uids[1], uids[7]]),
        (format!("00080018={}", uids[0]), vec![uids[0]]),
        ("InstanceNumber=3".to_string(), vec![uids[2]]),
        ("SOPClassUID=1.2.840.10008.5.1.4.1.1.2&limit=2".to_string(), uids[..2].to_vec()),
        ("SOPClassUID=1.2.840.10008.5.1.4.1.1.4".to_string(), vec![]),
        ("limit=3&offset=8".to_string(), uids[8..].to_vec()),
        ("offset=10".to_string(), vec![]),
        ("includefield=all&limit=1".to_string(), uids[..1].to_vec()),
    ] {
        assert_eq!(search(&query), expected, "instance search ?{query}");
    }
    for bad in ["Foo=bar", "limit=many"] {
        assert_eq!(get(&format!("{url}?{bad}"), &[]).status, 400, "instance search ?{bad}");
    }
    let unknown = get(&format!("{address}/studies/{CT_CHEST}/series/2.25.999/instances"), &[]);
    assert_eq!(unknown.status, 404, "instances of an unknown series: {}", unknown.text());
    let elsewhere = &index.study(MR_BRAIN).series[0].uid;
    let other = get(&format!("{address}/studies/{CT_CHEST}/series/{elsewhere}/instances"), &[]);
    assert_eq!(other.status, 404, "instances of another study's series under this token: {}", other.text());
}

// ---------------------------------------------------------------------------------------------------
// Frames (PS3.18 §8.7.3.5.3, §10.4.1.1.5).

#[test]
fn a_native_single_frame_is_its_pixel_data_as_stored() {
    let index = IndexFile::sample();
    let pixels = PixelIndex::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    for (study, series, what) in [
        (CT_CHEST, 0, "explicit VR little endian"),
        (MR_BRAIN, 0, "implicit VR little endian"),
        (CT_ABDOMEN, 0, "explicit VR big endian, not byte-swapped"),
    ] {
        let se = &index.study(study).series[series];
        for inst in &se.instances {
            let url = format!(
                "{}/studies/{study}/series/{}/instances/{}/frames/1",
                address_of(&open, study),
                se.uid,
                inst.uid
            );
            let parts = parts_of(&get(&url, &[]), OCTETS, &format!("{what}: frame 1 of {}", inst.uid));
            assert_eq!(parts.len(), 1, "{what}: one part for one frame");
            let part_type = parts[0].header("content-type").unwrap_or_default();
            assert_eq!(media_type(part_type), OCTETS, "{what}: part Content-Type {part_type:?}");
            assert_eq!(
                media_param(part_type, "transfer-syntax").as_deref(),
                Some(inst.transfer_syntax.as_str()),
                "{what}: the part names the stored transfer syntax: {part_type:?}"
            );
            assert!(parts[0].body == pixels.pixel_data(&inst.uid), "{what}: frame 1 of {} is not its pixels", inst.uid);
            if inst.transfer_syntax == EXPLICIT_BIG {
                // The first pixel of the sample's pattern is a small 12-bit value: high byte first on disk.
                assert!(parts[0].body[0] < 0x10, "{what}: the frame looks byte-swapped");
            }
        }
    }
}

#[test]
fn multi_frame_frames_come_in_the_order_asked() {
    let index = IndexFile::sample();
    let pixels = PixelIndex::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let se = &index.study(CT_ABDOMEN).series[1];
    assert_eq!(se.instances.len(), 2, "the multi-frame series should hold 2 instances");
    for inst in &se.instances {
        let stored = pixels.pixel_data(&inst.uid);
        let frame = |n: usize| &stored[(n - 1) * FRAME_BYTES..n * FRAME_BYTES];
        assert!(frame(1) != frame(2), "the sample's frames should differ, or order proves nothing");
        let base = format!(
            "{}/studies/{CT_ABDOMEN}/series/{}/instances/{}/frames",
            address_of(&open, CT_ABDOMEN),
            se.uid,
            inst.uid
        );
        for (list, expected) in
            [("1", &[1][..]), ("2,4", &[2, 4]), ("4,1", &[4, 1]), ("1,2,3,4", &[1, 2, 3, 4]), ("3,3", &[3, 3])]
        {
            let what = format!("frames {list} of {}", inst.uid);
            let parts = parts_of(&get(&format!("{base}/{list}"), &[]), OCTETS, &what);
            assert_eq!(parts.len(), expected.len(), "{what}: one part per frame asked");
            for (part, &n) in parts.iter().zip(expected) {
                assert_eq!(part.body.len(), FRAME_BYTES, "{what}: frame {n} size");
                assert!(part.body == frame(n), "{what}: the part for frame {n} is not frame {n}");
            }
        }
    }
}

#[test]
fn frame_numbers_out_of_range_are_404_and_malformed_ones_400() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let multi = &index.study(CT_ABDOMEN).series[1];
    let single = &index.study(CT_ABDOMEN).series[0];
    let frames = |se: &IndexSeries, list: &str| {
        let url = format!(
            "{}/studies/{CT_ABDOMEN}/series/{}/instances/{}/frames/{list}",
            address_of(&open, CT_ABDOMEN),
            se.uid,
            se.instances[0].uid
        );
        get(&url, &[])
    };
    for (se, list, status) in [
        (multi, "5", 404),
        (multi, "1,5", 404),
        (multi, "4294967297", 404),
        (single, "2", 404),
        (multi, "0", 400),
        (multi, "x", 400),
        (multi, "1,x", 400),
        (multi, "1,,2", 400),
        (multi, "-1", 400),
        (multi, "", 400),
    ] {
        let reply = frames(se, list);
        assert_eq!(reply.status, status, "frames/{list}: {}", reply.text());
        assert_ne!(reply.media_type(), "multipart/related", "frames/{list}: an error as multipart");
    }
}

#[test]
fn frame_negotiation_serves_octets_and_refuses_an_image_type_for_native_pixels() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let se = &index.study(CT_CHEST).series[0];
    let inst = &se.instances[0];
    let url =
        format!("{}/studies/{CT_CHEST}/series/{}/instances/{}/frames/1", address_of(&open, CT_CHEST), se.uid, inst.uid);
    let stored =
        format!("multipart/related; type=\"application/octet-stream\"; transfer-syntax={}", inst.transfer_syntax);
    for accept in [
        "multipart/related; type=\"application/octet-stream\"",
        "multipart/related; type=application/octet-stream; transfer-syntax=*",
        stored.as_str(),
        "multipart/related",
        "*/*",
        "multipart/related; type=\"image/jpeg\", multipart/related; type=\"application/octet-stream\";q=0.5",
    ] {
        let parts = parts_of(&get(&url, &[("Accept", accept)]), OCTETS, &format!("Accept {accept:?}"));
        assert_eq!(parts.len(), 1, "Accept {accept:?}: parts");
    }
    for accept in [
        "multipart/related; type=\"image/jpeg\"",
        "multipart/related; type=\"image/jp2\"",
        "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.4.50",
        "application/dicom",
    ] {
        let reply = get(&url, &[("Accept", accept)]);
        assert_eq!(reply.status, 406, "Accept {accept:?} on native pixels: {}", reply.text());
        assert_ne!(reply.media_type(), "multipart/related", "Accept {accept:?}: the 406 is multipart");
    }
    let malformed = get(&url, &[("Accept", "multipart/related; type=\"application/octet-stream")]);
    assert_eq!(malformed.status, 400, "a malformed Accept on frames: {}", malformed.text());
}

// ---------------------------------------------------------------------------------------------------
// Encapsulated pixel data (PS3.5 §A.4), which the sample lacks: a small archive written here.

/// A data element in explicit VR little endian (PS3.5 §7.1.2), its value padded to even length with the
/// VR's padding (PS3.5 §6.2: NUL for UI and binary VRs, space for text).
fn element(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if matches!(vr, b"UI" | b"OB") { 0 } else { b' ' });
    }
    let mut out = [group.to_le_bytes(), elem.to_le_bytes()].concat();
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&value);
    out
}

/// An item (FFFE,E000) of encapsulated Pixel Data with a defined length (PS3.5 §A.4).
fn item(value: &[u8]) -> Vec<u8> {
    [&[0xFE, 0xFF, 0x00, 0xE0][..], &(value.len() as u32).to_le_bytes(), value].concat()
}

/// A JPEG Baseline Part 10 file of 4×4 8-bit monochrome frames whose Pixel Data holds `table` (the Basic
/// Offset Table's value) and then `fragments`. The fragments need not be real JPEG: nothing decodes them.
fn encapsulated_file(sop: &str, series: &str, frames: usize, table: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
    const SC: &[u8] = b"1.2.840.10008.5.1.4.1.1.7"; // Secondary Capture Image Storage
    let (sop, syntax, frames) = (sop.as_bytes(), JPEG_BASELINE.as_bytes(), frames.to_string());
    let meta = [
        element(0x0002, 0x0001, b"OB", &[0, 1]), // (0002,0001) OB: File Meta Information Version
        element(0x0002, 0x0002, b"UI", SC),      // (0002,0002) UI: Media Storage SOP Class UID
        element(0x0002, 0x0003, b"UI", sop),     // (0002,0003) UI: Media Storage SOP Instance UID
        element(0x0002, 0x0010, b"UI", syntax),  // (0002,0010) UI: Transfer Syntax UID
        element(0x0002, 0x0012, b"UI", b"2.25.1"), // (0002,0012) UI: Implementation Class UID
    ]
    .concat();
    // (0002,0000) UL: File Meta Information Group Length, the length of the elements above.
    let group_length = element(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    let data_set = [
        element(0x0008, 0x0016, b"UI", SC),                   // (0008,0016) UI: SOP Class UID
        element(0x0008, 0x0018, b"UI", sop),                  // (0008,0018) UI: SOP Instance UID
        element(0x0008, 0x0060, b"CS", b"OT"),                // (0008,0060) CS: Modality
        element(0x0010, 0x0010, b"PN", b"Encapsulated^Test"), // (0010,0010) PN: Patient's Name
        element(0x0010, 0x0020, b"LO", b"MRN-ENC"),           // (0010,0020) LO: Patient ID
        element(0x0020, 0x000D, b"UI", b"2.25.77.1"),         // (0020,000D) UI: Study Instance UID
        element(0x0020, 0x000E, b"UI", series.as_bytes()),    // (0020,000E) UI: Series Instance UID
        element(0x0020, 0x0013, b"IS", b"1"),                 // (0020,0013) IS: Instance Number
        element(0x0028, 0x0002, b"US", &1u16.to_le_bytes()),  // (0028,0002) US: Samples per Pixel = 1
        element(0x0028, 0x0004, b"CS", b"MONOCHROME2"),       // (0028,0004) CS: Photometric Interpretation
        element(0x0028, 0x0008, b"IS", frames.as_bytes()),    // (0028,0008) IS: Number of Frames
        element(0x0028, 0x0010, b"US", &4u16.to_le_bytes()),  // (0028,0010) US: Rows = 4
        element(0x0028, 0x0011, b"US", &4u16.to_le_bytes()),  // (0028,0011) US: Columns = 4
        element(0x0028, 0x0100, b"US", &8u16.to_le_bytes()),  // (0028,0100) US: Bits Allocated = 8
        element(0x0028, 0x0101, b"US", &8u16.to_le_bytes()),  // (0028,0101) US: Bits Stored = 8
        element(0x0028, 0x0102, b"US", &7u16.to_le_bytes()),  // (0028,0102) US: High Bit = 7
        element(0x0028, 0x0103, b"US", &0u16.to_le_bytes()),  // (0028,0103) US: Pixel Representation = 0
    ]
    .concat();
    // (7FE0,0010) OB: Pixel Data, reserved bytes, undefined length.
    let mut pixel_data = vec![0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
    pixel_data.extend(item(table)); // (FFFE,E000): Basic Offset Table
    for fragment in fragments {
        pixel_data.extend(item(fragment)); // (FFFE,E000): one fragment
    }
    pixel_data.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]); // (FFFE,E0DD): Sequence Delimitation Item
    [vec![0; 128], b"DICM".to_vec(), group_length, meta, data_set, pixel_data].concat()
}

#[test]
fn encapsulated_frames_are_their_fragments_as_octets_or_as_the_image_type_asked() {
    const SERIES: &str = "2.25.77.2";
    const MULTI: &str = "2.25.77.3.1";
    const SINGLE: &str = "2.25.77.3.2";
    let (one, two_a, two_b): (&[u8], &[u8], &[u8]) =
        (b"\xFF\xD8frame-01\xFF\xD9", b"\xFF\xD8frame-2a", b"part-02b\xFF\xD9");
    // Frame 2 starts at the second fragment's item: 8 header bytes and frame 1's 12 bytes after the first.
    let table = [0u32.to_le_bytes(), (8 + one.len() as u32).to_le_bytes()].concat();
    let (single_a, single_b): (&[u8], &[u8]) = (b"\xFF\xD8only", b"frame!\xFF\xD9");

    let dir = TempDir::new("encapsulated");
    dir.write("dicom/multi.dcm", encapsulated_file(MULTI, SERIES, 2, &table, &[one, two_a, two_b]));
    dir.write("dicom/single.dcm", encapsulated_file(SINGLE, SERIES, 1, &[], &[single_a, single_b]));
    let run = run_cli(&[OsString::from("index"), dir.path().join("dicom").into()], dir.path());
    assert_eq!(run.code(), Some(0), "indexing the encapsulated files\n{run}");
    let config = dir.write(
        "smart-imaging.toml",
        "[images]\nindex = \"index.toml\"\n\n[tenants.open]\n\
         authorization = { type = \"mock\", ignorePatient = true }\nimages = { lookup = \"all-studies\" }\n",
    );
    let server = Launch::new(&config).start();
    let found = addresses(&server, "/open/fhir/ImagingStudy");
    let [(study, address)] = &found[..] else { panic!("one study expected, found {found:?}") };
    let instance = |sop: &str| format!("{address}/studies/{study}/series/{SERIES}/instances/{sop}");
    let jpeg = [("Accept", "multipart/related; type=\"image/jpeg\"")];
    let bodies = |parts: &[Part]| parts.iter().map(|p| p.body.clone()).collect::<Vec<_>>();
    let check_types = |parts: &[Part], media: &str, what: &str| {
        for part in parts {
            let part_type = part.header("content-type").unwrap_or_default();
            assert_eq!(media_type(part_type), media, "{what}: part Content-Type {part_type:?}");
            assert_eq!(
                media_param(part_type, "transfer-syntax").as_deref(),
                Some(JPEG_BASELINE),
                "{what}: {part_type:?}"
            );
        }
    };
    let two = [two_a, two_b].concat();

    let parts = parts_of(&get(&instance(&format!("{MULTI}/frames/1")), &[]), OCTETS, "frame 1 as octets");
    assert_eq!(bodies(&parts), [one.to_vec()], "frame 1 is its one fragment");
    check_types(&parts, OCTETS, "frame 1 as octets");
    let parts = parts_of(&get(&instance(&format!("{MULTI}/frames/2,1")), &jpeg), "image/jpeg", "frames 2,1 as JPEG");
    assert_eq!(bodies(&parts), [two.clone(), one.to_vec()], "frames 2,1: frame 2 spans two fragments");
    check_types(&parts, "image/jpeg", "frames 2,1 as JPEG");
    let parts = parts_of(&get(&instance(&format!("{SINGLE}/frames/1")), &jpeg), "image/jpeg", "the single frame");
    assert_eq!(bodies(&parts), [[single_a, single_b].concat()], "one frame, no offset table, two fragments");

    assert_eq!(get(&instance(&format!("{MULTI}/frames/3")), &[]).status, 404, "frame 3 of 2");
    let jp2 = get(&instance(&format!("{MULTI}/frames/1")), &[("Accept", "multipart/related; type=\"image/jp2\"")]);
    assert_eq!(jp2.status, 406, "JPEG 2000 asked of JPEG Baseline frames: {}", jp2.text());

    // Metadata points at the Pixel Data, whose bulk data is one part per frame.
    let object = dicom_json(&get(&instance(&format!("{MULTI}/metadata")), &[]), "encapsulated metadata").remove(0);
    let uri = object["7FE00010"]["BulkDataURI"].as_str().unwrap_or_else(|| panic!("no BulkDataURI: {object}"));
    assert!(uri.starts_with(&format!("{address}/")), "{uri} is not under {address}");
    let parts = parts_of(&get(uri, &[]), OCTETS, "encapsulated bulk data");
    assert_eq!(bodies(&parts), [one.to_vec(), two], "encapsulated bulk data: its frames");
}

// ---------------------------------------------------------------------------------------------------
// The study token in front of everything (README, Study tokens).

#[test]
fn every_dicomweb_resource_refuses_a_bad_study_token() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    let demo = demo_addresses(&server);
    for (tenant, addresses, study) in [("open", &open, CT_ABDOMEN), ("demo", &demo, CT_CHEST)] {
        let address = address_of(addresses, study);
        let token = study_token(address);
        let se = &index.study(study).series[index.study(study).series.len() - 1];
        let sop = &se.instances[0].uid;
        let secrets = [se.uid.as_str(), sop.as_str(), "Tanaka", "M\u{fc}ller"];
        let genuine = Paths { address, study, series: &se.uid, instance: sop };
        for (what, url) in genuine.all() {
            let reply = get(&url, &[]);
            assert_eq!(reply.status, 200, "{tenant} {what} with the genuine token, or the refusals prove nothing");
        }
        let bases = [
            ("a tampered token", address.replace(token, &tamper(token))),
            ("a truncated token", address.replace(token, &token[..token.len() - 4])),
            ("a token of garbage", address.replace(token, "not-a-token")),
            ("an empty token", address.replace(token, "")),
        ];
        for (how, base) in &bases {
            let paths = Paths { address: base, ..genuine };
            for (what, url) in paths.all() {
                assert_refused(&get(&url, &[]), &secrets, &format!("{tenant} {what} with {how}"));
            }
            // The token is checked before the frame list: an out-of-range frame is still a 403.
            assert_refused(&get(&paths.instance("/frames/99"), &[]), &secrets, &format!("{tenant} frames/99, {how}"));
        }
        let other_tenant = if tenant == "open" { "demo" } else { "open" };
        let elsewhere = address.replace(&format!("/{tenant}/wado/"), &format!("/{other_tenant}/wado/"));
        for (what, url) in (Paths { address: &elsewhere, ..genuine }).all() {
            assert_refused(&get(&url, &[]), &secrets, &format!("a {tenant} token on {other_tenant}: {what}"));
        }
    }
}

#[test]
fn a_study_token_opens_no_resource_of_another_study() {
    let index = IndexFile::sample();
    let server = sample_server();
    let demo = demo_addresses(&server);
    let open = open_addresses(&server);
    for (tenant, addresses, a, b) in [
        ("demo", &demo, CT_CHEST, MR_BRAIN),
        ("demo", &demo, MR_BRAIN, CT_CHEST),
        ("open", &open, CT_CHEST, CT_ABDOMEN),
    ] {
        let token_a = address_of(addresses, a);
        let series_b = &index.study(b).series[0];
        let sop_b = &series_b.instances[0].uid;
        let own = Paths { address: address_of(addresses, b), study: b, series: &series_b.uid, instance: sop_b };
        for (what, url) in own.all() {
            assert_eq!(get(&url, &[]).status, 200, "{tenant}: {what} of {b} with its own token");
        }
        let secrets = [series_b.uid.as_str(), sop_b.as_str(), "Tanaka", "M\u{fc}ller"];
        let crossed = Paths { address: token_a, ..own };
        for (what, url) in crossed.all() {
            assert_refused(&get(&url, &[]), &secrets, &format!("{tenant}: {a}'s token on {b}'s {what}"));
        }
        for rest in ["/frames/1,2", "/frames/2"] {
            assert_refused(&get(&crossed.instance(rest), &[]), &secrets, &format!("{tenant}: {a}'s token, {rest}"));
        }
        let search = crossed.study("/series?Modality=CT");
        assert_refused(&get(&search, &[]), &secrets, &format!("{tenant}: {a}'s token, a series search of {b}"));
    }
}

// ---------------------------------------------------------------------------------------------------
// HEAD, Content-Length, ETag (README, DICOMweb details; RFC 9110 §9.3.2, §8.6, §13.1.2).

/// The resources of the multi-frame instance on the open tenant, as (label, absolute URL).
fn multi_frame_resources(server: &Server, index: &IndexFile) -> Vec<(&'static str, String)> {
    let open = open_addresses(server);
    let address = address_of(&open, CT_ABDOMEN).to_string();
    let se = &index.study(CT_ABDOMEN).series[1];
    let paths = Paths { address: &address, study: CT_ABDOMEN, series: &se.uid, instance: &se.instances[1].uid };
    let mut all = paths.all();
    all.extend([
        ("frames 2,4", paths.instance("/frames/2,4")),
        ("series search with a query", paths.study("/series?Modality=CT&limit=1")),
        ("instance search with a query", paths.series("/instances?InstanceNumber=2")),
    ]);
    all
}

#[test]
fn head_answers_the_headers_of_get_without_a_body() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (what, url) in multi_frame_resources(&server, &index) {
        let got = get(&url, &[]);
        assert_eq!(got.status, 200, "GET {what}: {}", got.text());
        let head = server.raw("HEAD", target(&server, &url), &[]);
        assert_eq!(head.status, 200, "HEAD {what}");
        assert_eq!(
            without_param(head.header_or_empty("content-type"), "boundary"),
            without_param(got.header_or_empty("content-type"), "boundary"),
            "HEAD and GET {what}: Content-Type apart from the boundary"
        );
        assert_eq!(head.header("content-length"), got.header("content-length"), "HEAD and GET {what}: Content-Length");
        assert_eq!(head.header("etag"), got.header("etag"), "HEAD and GET {what}: ETag");
        assert_eq!(head.header("cache-control"), got.header("cache-control"), "HEAD and GET {what}: Cache-Control");
        assert!(head.body.is_empty(), "HEAD {what} sent {} body bytes", head.body.len());
    }
}

#[test]
fn every_dicomweb_answer_carries_its_content_length() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (what, url) in multi_frame_resources(&server, &index) {
        let got = get(&url, &[]);
        assert_eq!(got.status, 200, "{what}: {}", got.text());
        let length = got.body.len().to_string();
        assert_eq!(
            (got.header("content-length"), got.header("transfer-encoding")),
            (Some(length.as_str()), None),
            "{what} of {length} bytes: Content-Length and Transfer-Encoding"
        );
    }
}

#[test]
fn etags_answer_if_none_match_with_304() {
    let index = IndexFile::sample();
    let server = sample_server();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (what, url) in multi_frame_resources(&server, &index) {
        let got = get(&url, &[]);
        assert_eq!(got.status, 200, "{what}: {}", got.text());
        let tag = got.header("etag").unwrap_or_else(|| panic!("{what}: no ETag")).to_string();
        assert!(
            tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
            "{what}: ETag {tag:?} is not a strong tag"
        );
        assert_eq!(get(&url, &[]).header("etag"), Some(tag.as_str()), "{what}: the ETag changed between two GETs");
        if let Some(other) = seen.insert(tag.clone(), what) {
            panic!("{what} and {other} share the ETag {tag}");
        }

        let path = target(&server, &url);
        let weak = format!("W/{tag}");
        let listed = format!("\"something-else\", {tag}");
        for condition in [tag.as_str(), weak.as_str(), "*", listed.as_str()] {
            for method in ["GET", "HEAD"] {
                let reply = server.raw(method, path, &[("If-None-Match", condition)]);
                let at = format!("{method} {what} with If-None-Match: {condition}");
                assert_eq!(reply.status, 304, "{at}: status, body {}", reply.text());
                assert!(reply.body.is_empty(), "{at}: a 304 with {} body bytes", reply.body.len());
                assert_eq!(reply.header("etag"), Some(tag.as_str()), "{at}: the 304's ETag");
            }
        }
        for condition in ["\"something-else\"", "W/\"something-else\""] {
            let reply = get(&url, &[("If-None-Match", condition)]);
            assert_eq!(reply.status, 200, "{what} with If-None-Match: {condition}");
            // Multipart bodies differ in their random boundary only, which has a fixed length.
            assert_eq!(reply.body.len(), got.body.len(), "{what} with If-None-Match: {condition}: body length");
            if got.media_type() != "multipart/related" {
                assert!(reply.body == got.body, "{what} with If-None-Match: {condition}: another body");
            }
        }
    }
}

/// Regression: a 304 said `Content-Length: 0`. RFC 9110 §8.6: "a server MUST NOT send Content-Length in such
/// a [304] response unless its field value equals the decimal number of octets that would have been sent in
/// the content of a 200 (OK) response to the same request"; a cache that refreshes its stored headers from the
/// 304 (RFC 9111 §4.3.4) would record a length of 0 for the body it keeps.
#[test]
fn a_304_sends_no_content_length_but_the_200s() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (what, url) in multi_frame_resources(&server, &index) {
        let got = get(&url, &[]);
        let tag = got.header("etag").unwrap_or_else(|| panic!("{what}: no ETag")).to_string();
        let reply = server.raw("GET", target(&server, &url), &[("If-None-Match", tag.as_str())]);
        assert_eq!(reply.status, 304, "{what}: status");
        if let Some(length) = reply.header("content-length") {
            assert_eq!(Some(length), got.header("content-length"), "{what}: the 304's Content-Length is not the 200's");
        }
    }
}

/// A browser viewer's request with `Authorization` is preceded by a CORS preflight (README, Errors). RFC 9110 §8.6:
/// "A server MUST NOT send a Content-Length header field in any response with a status code of ... 204 (No
/// Content)".
#[test]
fn a_preflight_of_a_dicomweb_resource_is_a_204_without_content_length() {
    let index = IndexFile::sample();
    let server = sample_server();
    let preflight = [
        ("Origin", "http://viewer.example.org"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "authorization, accept, if-none-match"),
    ];
    for (what, url) in multi_frame_resources(&server, &index) {
        let reply = server.raw("OPTIONS", target(&server, &url), &preflight);
        assert_eq!(reply.status, 204, "preflight of {what}: status");
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "preflight of {what}: Allow-Origin");
        let allowed = reply.header_or_empty("access-control-allow-headers");
        for header in ["Authorization", "Accept", "If-None-Match"] {
            assert!(list_has(allowed, header), "preflight of {what}: {header} not in {allowed:?}");
        }
        assert!(reply.body.is_empty(), "preflight of {what}: a 204 with a body");
        assert_eq!(reply.header("content-length"), None, "preflight of {what}: Content-Length in a 204");
    }
}

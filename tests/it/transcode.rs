//! Transcoding on retrieve (docs/api.md, DICOMweb details; Transfer syntaxes): native instances asked for as
//! `application/dicom` come as Explicit VR Little Endian, `transfer-syntax=*` as stored, and a compressed
//! instance never in another syntax; Content-Length is exact, HEAD agrees with GET, and each representation
//! has its own ETag. Expected bytes come from the sample files and the index, or from fixtures written here
//! element by element.

use std::ffi::OsString;

use crate::clients::{OPEN, write_config};
use crate::frames::{element, encapsulated_file};
use crate::harness::*;
use crate::sample::*;

const EXPLICIT: &str = "1.2.840.10008.1.2.1";
const DICOM: &str = "application/dicom";
const AS_DICOM: &str = "multipart/related; type=\"application/dicom\"";
const AS_EXPLICIT: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1";
const AS_STORED: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

/// The value of the File Meta Information's Transfer Syntax UID (0002,0010) in a Part 10 file.
fn meta_transfer_syntax(file: &[u8]) -> Option<String> {
    let at = file.windows(6).position(|w| w == [0x02, 0x00, 0x10, 0x00, b'U', b'I'])?;
    let length = u16::from_le_bytes([file[at + 6], file[at + 7]]) as usize;
    let value = file.get(at + 8..at + 8 + length)?;
    Some(String::from_utf8_lossy(value).trim_end_matches('\0').to_string())
}

const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// Where the data set of a Part 10 file starts: after the preamble, the prefix and the meta group, whose
/// length (0002,0000) gives (PS3.10 §7.1).
fn meta_end(file: &[u8]) -> usize {
    144 + u32::from_le_bytes([file[140], file[141], file[142], file[143]]) as usize
}

fn inflate(deflated: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated).read_to_end(&mut out).expect("a raw deflate stream");
    out
}

#[test]
fn native_instances_asked_as_application_dicom_come_as_explicit_vr_little_endian() {
    let index = IndexFile::sample();
    let pixels = PixelIndex::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    // The MR study holds implicit, explicit and deflated series; the abdomen study big endian ones.
    for study in [MR_BRAIN, CT_ABDOMEN] {
        let url = format!("{}/studies/{study}", address_of(&open, study));
        let expected = index.study(study).instances();
        let reply = get(&url, &[("Accept", AS_DICOM)]);
        assert_eq!(reply.header("content-length"), Some(reply.body.len().to_string().as_str()), "{study}: length");
        let parts = parts_of(&reply, DICOM, study);
        assert_eq!(parts.len(), expected.len(), "{study}: one part per instance");
        for (part, inst) in parts.iter().zip(&expected) {
            let what = format!("{study}: {}", inst.path);
            let part_type = part.header("content-type").unwrap_or_default();
            assert_eq!(media_param(part_type, "transfer-syntax").as_deref(), Some(EXPLICIT), "{what}: {part_type}");
            assert_eq!(&part.body[128..132], b"DICM", "{what}: a Part 10 file");
            assert_eq!(meta_transfer_syntax(&part.body).as_deref(), Some(EXPLICIT), "{what}: its meta group");
            assert_eq!(part.body == inst.file_bytes(), inst.transfer_syntax == EXPLICIT, "{what}: bytes as stored");
            if inst.transfer_syntax == DEFLATED {
                // The data set after the meta group is the stored one, inflated.
                let inflated = inflate(&inst.file_bytes()[meta_end(&inst.file_bytes())..]);
                assert!(part.body[meta_end(&part.body)..] == inflated, "{what}: not the inflated data set");
                continue;
            }
            // Pixel Data is the last element of every sample file: OW, little endian, after a 12-byte header.
            let stored = pixels.pixel_data_little_endian(&inst.uid, &inst.transfer_syntax);
            assert!(part.body.ends_with(&stored), "{what}: the Pixel Data is not the file's, little endian");
            let header = &part.body[part.body.len() - stored.len() - 12..part.body.len() - stored.len()];
            let length = (stored.len() as u32).to_le_bytes();
            assert_eq!(header, [&[0xE0, 0x7F, 0x10, 0x00], &b"OW\0\0"[..], &length].concat(), "{what}: its header");
        }
        // Named explicitly, the same bytes; with transfer-syntax=*, the files themselves.
        let named = parts_of(&get(&url, &[("Accept", AS_EXPLICIT)]), DICOM, study);
        assert!(named.iter().zip(&parts).all(|(a, b)| a.body == b.body), "{study}: transfer-syntax named");
        assert_dicom_parts(&get(&url, &[("Accept", AS_STORED)]), &expected, &format!("{study} as stored"));
    }
}

#[test]
fn head_length_and_etag_follow_the_representation() {
    let server = sample_server();
    let open = open_addresses(&server);
    let url = format!("{}/studies/{MR_BRAIN}", address_of(&open, MR_BRAIN));
    let target = url.strip_prefix(server.base()).unwrap_or_default().to_string();
    let mut tags = Vec::new();
    for accept in [AS_DICOM, AS_STORED] {
        let got = get(&url, &[("Accept", accept)]);
        assert_eq!(got.status, 200, "{accept}: {}", got.text());
        let head = server.raw("HEAD", &target, &[("Accept", accept)]);
        assert_eq!(head.status, 200, "HEAD {accept}");
        assert_eq!(head.header("content-length"), Some(got.body.len().to_string().as_str()), "HEAD {accept}");
        assert!(head.body.is_empty(), "HEAD {accept} sent a body");
        let tag = got.header("etag").unwrap_or_default().to_string();
        let again = get(&url, &[("Accept", accept), ("If-None-Match", &tag)]);
        assert_eq!(again.status, 304, "{accept}: If-None-Match with its own ETag");
        tags.push(tag);
    }
    assert_ne!(tags[0], tags[1], "the transcoded and the stored representation share an ETag");
    let other = get(&url, &[("Accept", AS_STORED), ("If-None-Match", &tags[0])]);
    assert_eq!(other.status, 200, "the transcoded ETag matched the stored representation");
}

/// An implicit VR little endian element (PS3.5 §7.1.3), its value padded to even length as `element` does.
fn implicit(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let explicit = element(group, elem, vr, value);
    let value = &explicit[if matches!(vr, b"OB" | b"OW") { 12 } else { 8 }..];
    [&group.to_le_bytes()[..], &elem.to_le_bytes(), &(value.len() as u32).to_le_bytes(), value].concat()
}

/// A Part 10 file of one 4×4 8-bit frame in the JPEG archive's study, in `syntax`, its elements made by
/// `encode`: the meta group always explicit VR little endian (PS3.10 §7.1).
fn native_file(syntax: &str, encode: fn(u16, u16, &[u8; 2], &[u8]) -> Vec<u8>) -> Vec<u8> {
    const SC: &[u8] = b"1.2.840.10008.5.1.4.1.1.7"; // Secondary Capture Image Storage
    let meta = [
        element(0x0002, 0x0001, b"OB", &[0, 1]), // (0002,0001) OB: File Meta Information Version
        element(0x0002, 0x0002, b"UI", SC),      // (0002,0002) UI: Media Storage SOP Class UID
        element(0x0002, 0x0003, b"UI", b"2.25.77.3.9"), // (0002,0003) UI: Media Storage SOP Instance UID
        element(0x0002, 0x0010, b"UI", syntax.as_bytes()), // (0002,0010) UI: Transfer Syntax UID
        element(0x0002, 0x0012, b"UI", b"2.25.1"), // (0002,0012) UI: Implementation Class UID
    ]
    .concat();
    let group_length = element(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes()); // (0002,0000) UL
    let data_set = [
        encode(0x0008, 0x0016, b"UI", SC),                  // (0008,0016) UI: SOP Class UID
        encode(0x0008, 0x0018, b"UI", b"2.25.77.3.9"),      // (0008,0018) UI: SOP Instance UID
        encode(0x0008, 0x0060, b"CS", b"OT"),               // (0008,0060) CS: Modality
        encode(0x0010, 0x0010, b"PN", b"Implicit^Test"),    // (0010,0010) PN: Patient's Name (odd: padded)
        encode(0x0010, 0x0020, b"LO", b"MRN-ENC"),          // (0010,0020) LO: Patient ID
        encode(0x0020, 0x000D, b"UI", b"2.25.77.1"),        // (0020,000D) UI: Study Instance UID
        encode(0x0020, 0x000E, b"UI", b"2.25.77.2"),        // (0020,000E) UI: Series Instance UID
        encode(0x0020, 0x0013, b"IS", b"9"),                // (0020,0013) IS: Instance Number
        encode(0x0028, 0x0010, b"US", &4u16.to_le_bytes()), // (0028,0010) US: Rows = 4
        encode(0x0028, 0x0011, b"US", &4u16.to_le_bytes()), // (0028,0011) US: Columns = 4
        encode(0x0028, 0x0100, b"US", &8u16.to_le_bytes()), // (0028,0100) US: Bits Allocated = 8
        encode(0x7FE0, 0x0010, b"OW", &[7; 16]),            // (7FE0,0010) OW: Pixel Data, 16 bytes
    ]
    .concat();
    [vec![0; 128], b"DICM".to_vec(), group_length, meta, data_set].concat()
}

#[test]
fn compressed_instances_stay_as_stored_and_are_never_promised_in_another_syntax() {
    const SERIES: &str = "2.25.77.2";
    let dir = TempDir::new("transcode");
    dir.write("dicom/jpeg.dcm", encapsulated_file("2.25.77.3.1", SERIES, 1, &[], &[b"\xFF\xD8jpeg\xFF\xD9"]));
    let stored = dir.write("dicom/implicit.dcm", native_file("1.2.840.10008.1.2", implicit));
    let run = run_cli(&[OsString::from("index"), dir.path().join("dicom").into()], dir.path());
    assert_eq!(run.code(), Some(0), "indexing\n{run}");
    let config = write_config(&dir, &dir.path().join("index.toml"), OPEN);
    let server = Launch::new(&config).start();
    let found = addresses(&server, "/open/fhir/ImagingStudy");
    let [(study, address)] = &found[..] else { panic!("one study expected, found {found:?}") };
    let study_url = format!("{address}/studies/{study}");

    // Named Explicit VR Little Endian, the study cannot be sent whole: 406, no partial body.
    let refused = get(&study_url, &[("Accept", AS_EXPLICIT)]);
    assert_eq!(refused.status, 406, "a study with a compressed instance, asked explicitly: {}", refused.text());
    let jpeg_url = format!("{study_url}/series/{SERIES}/instances/2.25.77.3.1");
    assert_eq!(get(&jpeg_url, &[("Accept", AS_EXPLICIT)]).status, 406, "a compressed instance, asked explicitly");
    // Without a transfer syntax, the compressed instance as stored and the native one transcoded.
    let reply = get(&study_url, &[("Accept", AS_DICOM)]);
    let parts = parts_of(&reply, DICOM, "the mixed study");
    let syntax = |p: &Part| media_param(p.header("content-type").unwrap_or_default(), "transfer-syntax");
    let mut syntaxes: Vec<Option<String>> = parts.iter().map(syntax).collect();
    syntaxes.sort();
    assert_eq!(syntaxes, [Some(EXPLICIT.to_string()), Some(JPEG_BASELINE.to_string())], "implicit.dcm, jpeg.dcm");

    // The transcoded file, byte for byte: the same elements in explicit VR, the meta group renamed.
    let expected = native_file(EXPLICIT, element);
    let transcoded = parts.iter().find(|p| syntax(p).as_deref() == Some(EXPLICIT)).expect("the implicit file");
    assert!(transcoded.body == expected, "implicit.dcm transcoded:\n{:?}\nexpected\n{:?}", transcoded.body, expected);
    let single_url = format!("{study_url}/series/{SERIES}/instances/2.25.77.3.9");
    let single = get(&single_url, &[("Accept", "application/dicom")]);
    assert_eq!(single.header("content-type"), Some("application/dicom; transfer-syntax=1.2.840.10008.1.2.1"));
    assert!(single.body == expected, "the single instance, transcoded");
    let as_stored = get(&single_url, &[("Accept", "application/dicom; transfer-syntax=*")]);
    assert!(as_stored.body == std::fs::read(stored).unwrap(), "transfer-syntax=*: the file as stored");
}

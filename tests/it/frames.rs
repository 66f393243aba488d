//! DICOMweb frames and encapsulated pixel data, the study token in front of every resource, and HEAD,
//! Content-Length and ETag, against the real binary.

use crate::clients::{OPEN, write_config};
use crate::harness::*;
use crate::sample::*;
use std::collections::BTreeMap;
use std::ffi::OsString;

// ---------------------------------------------------------------------------------------------------
// Frames (PS3.18 §8.7.3.5.3, §10.4.1.1.5).

#[test]
fn a_native_single_frame_is_its_pixel_data_little_endian() {
    let index = IndexFile::sample();
    let pixels = PixelIndex::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    for (study, series, what) in [
        (CT_CHEST, 0, "explicit VR little endian"),
        (MR_BRAIN, 0, "implicit VR little endian"),
        (CT_ABDOMEN, 0, "explicit VR big endian, byte-swapped"),
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
                Some("1.2.840.10008.1.2.1"),
                "{what}: the part names Explicit VR Little Endian, as which native frames are sent: {part_type:?}"
            );
            let expected = pixels.pixel_data_little_endian(&inst.uid, &inst.transfer_syntax);
            assert!(parts[0].body == expected, "{what}: frame 1 of {} is not its pixels", inst.uid);
            // The first pixel of the sample's pattern is a small 12-bit value: high byte second, little endian.
            assert!(parts[0].body[1] < 0x10, "{what}: the frame is not little endian");
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
pub fn element(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
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
pub fn encapsulated_file(sop: &str, series: &str, frames: usize, table: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
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
    let config = write_config(&dir, &dir.path().join("index.toml"), OPEN);
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
// The study token in front of everything (docs/api.md, Choices: study tokens).

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
// HEAD, Content-Length, ETag (docs/api.md, DICOMweb details; RFC 9110 §9.3.2, §8.6, §13.1.2).

/// The resources of the multi-frame instance on the open tenant, as (label, absolute URL).
fn multi_frame_resources(server: &Server, index: &IndexFile) -> Vec<(&'static str, String)> {
    let open = open_addresses(server);
    let address = address_of(&open, CT_ABDOMEN).to_string();
    let se = &index.study(CT_ABDOMEN).series[1];
    let paths = Paths { address: &address, study: CT_ABDOMEN, series: &se.uid, instance: &se.instances[1].uid };
    let mut all = paths.all();
    all.extend([
        ("frames 2,4", paths.instance("/frames/2,4")),
        ("frame 2 rendered", paths.instance("/frames/2/rendered")),
        ("a thumbnail of frame 2", paths.instance("/frames/2/thumbnail?viewport=16,16")),
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

/// A browser viewer's request with `Authorization` is preceded by a CORS preflight (docs/api.md, Errors). RFC 9110
/// §8.6: "A server MUST NOT send a Content-Length header field in any response with a status code of ... 204 (No
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

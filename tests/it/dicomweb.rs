//! Tests of the DICOMweb resources under a study token (docs/api.md, Paths; DICOMweb details; DICOM PS3.18):
//! metadata at study, series and instance level (Annex F.2), bulk data, study-scoped QIDO-RS (§10.6), frames
//! (§8.7.3.5.3), content negotiation, HEAD, Content-Length and ETag / If-None-Match, and the study-token checks in
//! front of all of them. Against the repository's configuration (tenants `open` and `demo`) and sample data, plus
//! one temporary archive of encapsulated (JPEG Baseline) instances the sample lacks.
//!
//! Expected values come from the sample files themselves (bytes read at the index's `pixel_data_offset`)
//! and from what `data/make_sample.py` wrote into them, never from the server's own reading.

use serde_json::Value;

use crate::harness::*;

use crate::sample::*;

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
    number(&ct, "00280010", 256.0, "US Rows");
    number(&ct, "00280100", 16.0, "US BitsAllocated");
    number(&ct, "00280103", 0.0, "US PixelRepresentation");
    let spacing: Vec<f64> =
        ct["00280030"]["Value"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
    assert_eq!(spacing, [1.5, 1.5], "DS PixelSpacing, multi-valued: {}", ct["00280030"]);
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
    number(&mr, "00280010", 256.0, "US Rows in implicit VR");
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

    // Big endian: numbers are read in the file's byte order (256 is 0x0100, not 0x0001).
    let big = metadata(CT_ABDOMEN, 0, 0);
    number(&big, "00280010", 256.0, "US Rows in big endian");
    number(&big, "00280101", 12.0, "US BitsStored in big endian");
    number(&big, "00180050", 3.0, "DS SliceThickness in big endian");

    // Multi-frame: IS NumberOfFrames and AT FrameIncrementPointer.
    let multi = metadata(CT_ABDOMEN, 1, 0);
    number(&multi, "00280008", 4.0, "IS NumberOfFrames");
    assert_eq!(multi["00280009"], serde_json::json!({"vr": "AT", "Value": ["00181063"]}), "AT FrameIncrementPointer");
}

#[test]
fn pixel_data_is_a_bulk_data_uri_under_the_same_study_token_that_serves_the_stored_pixels_little_endian() {
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
        let expected = pixels.pixel_data_little_endian(&inst.uid, &inst.transfer_syntax);
        assert!(parts[0].body == expected, "{what}: the bulk data is not the stored Pixel Data, little endian");
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
    let [a, b, c] = series[..] else { panic!("the MR study should have 3 series") };
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
        ("Modality=MR".to_string(), vec![a, b, c]),
        ("Modality=CT".to_string(), vec![]),
        ("00080060=MR".to_string(), vec![a, b, c]),
        ("SeriesDescription=AX%20T2*".to_string(), vec![b]),
        ("SeriesNumber=1".to_string(), vec![a]),
        ("limit=1".to_string(), vec![a]),
        ("offset=1".to_string(), vec![b, c]),
        ("limit=1&offset=1".to_string(), vec![b]),
        ("offset=3".to_string(), vec![]),
        ("Modality=MR&limit=5&offset=0&includefield=all".to_string(), vec![a, b, c]),
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
                assert_eq!(first(object, "00280010").as_u64(), Some(256), "{at}: Rows, a number");
                assert_eq!(first(object, "00280011").as_u64(), Some(256), "{at}: Columns, a number");
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
// The study search at the Endpoint address (PS3.18 §10.6.1.2, table 6.7.1-2): the sealed study alone.

/// The study search of an address, as the StudyInstanceUIDs it answers.
fn studies_found(address: &str, query: &str) -> Vec<String> {
    let found = dicom_json(&get(&format!("{address}/studies?{query}"), &[]), &format!("study search ?{query}"));
    found.iter().map(|o| text(o, "0020000D")).collect()
}

#[test]
fn ohifs_study_searches_at_the_endpoint_address_answer_its_study_with_the_study_attributes() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (uid, address) in demo_addresses(&server) {
        let study = index.study(&uid);
        let include = "includefield=00081030%2C00080060%2C00080090%2C00100030";
        for query in [
            format!("limit=101&offset=0&fuzzymatching=false&{include}&StudyInstanceUID={uid}"),
            format!("00100020={}&limit=101&offset=0&fuzzymatching=false&{include}", study.patient_id),
        ] {
            let what = format!("study search ?{query}");
            let found = dicom_json(&get(&format!("{address}/studies?{query}"), &[]), &what);
            assert_eq!(found.len(), 1, "{what}: the one study of the study token");
            let o = &found[0];
            assert_eq!(text(o, "0020000D"), uid, "{what}: StudyInstanceUID");
            assert_eq!(text(o, "00100020"), study.patient_id, "{what}: PatientID");
            assert_eq!(first(o, "00100010")["Alphabetic"], study.patient_name.as_str(), "{what}: PatientName");
            assert_eq!(text(o, "00100030"), "19700412", "{what}: PatientBirthDate, as make_sample.py wrote it");
            assert_eq!(text(o, "00100040"), "F", "{what}: PatientSex");
            assert_eq!(text(o, "00081030"), study.description, "{what}: StudyDescription");
            assert_eq!(first(o, "00080090")["Alphabetic"], study.referring_physician_name.as_str(), "{what}");
            assert_eq!(o["00080061"]["Value"], serde_json::json!(study.modalities), "{what}: ModalitiesInStudy");
            assert_eq!(first(o, "00201206").as_u64(), Some(study.series.len() as u64), "{what}: series, a number");
            assert_eq!(first(o, "00201208").as_u64(), Some(study.instance_count() as u64), "{what}: instances");
            assert_eq!(text(o, "00081190"), format!("{address}/studies/{uid}"), "{what}: RetrieveURL");
            for tag in ["00080020", "00080030", "00080050"] {
                assert!(!text(o, tag).is_empty(), "{what}: {tag} (StudyDate, StudyTime, AccessionNumber)");
            }
        }
    }
}

#[test]
fn the_study_search_answers_nothing_when_its_keys_do_not_match_and_never_another_study() {
    let server = sample_server();
    let demo = demo_addresses(&server);
    let address = address_of(&demo, CT_CHEST);
    let none: Vec<String> = Vec::new();
    for (query, expected) in [
        ("".to_string(), vec![CT_CHEST.to_string()]),
        (format!("StudyInstanceUID={MR_BRAIN}"), none.clone()),
        (format!("StudyInstanceUID={CT_ABDOMEN}"), none.clone()),
        (format!("StudyInstanceUID={MR_BRAIN}%5C{CT_CHEST}"), vec![CT_CHEST.to_string()]),
        (format!("StudyInstanceUID={MR_BRAIN},{CT_CHEST}"), vec![CT_CHEST.to_string()]),
        (format!("0020000D={CT_CHEST}"), vec![CT_CHEST.to_string()]),
        ("PatientID=MRN-2002".to_string(), none.clone()),
        ("00100020=MRN-1001".to_string(), vec![CT_CHEST.to_string()]),
        ("PatientID=MRN-*".to_string(), vec![CT_CHEST.to_string()]),
        ("AccessionNumber=ACC-1".to_string(), vec![CT_CHEST.to_string()]),
        ("AccessionNumber=ACC-2".to_string(), none.clone()),
        ("StudyDate=20240105".to_string(), vec![CT_CHEST.to_string()]),
        ("StudyDate=20240101-20240131".to_string(), vec![CT_CHEST.to_string()]),
        ("StudyDate=-2024".to_string(), vec![CT_CHEST.to_string()]),
        ("StudyDate=20240106-".to_string(), none.clone()),
        ("StudyDate=-20231231".to_string(), none.clone()),
        ("ModalitiesInStudy=CT".to_string(), vec![CT_CHEST.to_string()]),
        ("ModalitiesInStudy=MR%5CCT".to_string(), vec![CT_CHEST.to_string()]),
        ("ModalitiesInStudy=MR".to_string(), none.clone()),
        ("PatientName=M*".to_string(), vec![CT_CHEST.to_string()]),
        ("fuzzymatching=true&limit=1&offset=0".to_string(), vec![CT_CHEST.to_string()]),
        ("offset=1".to_string(), none.clone()),
    ] {
        assert_eq!(studies_found(address, &query), expected, "study search ?{query}");
    }
    for bad in ["Foo=bar", "SeriesInstanceUID=1.2", "limit=x", "offset=-1"] {
        let reply = get(&format!("{address}/studies?{bad}"), &[]);
        assert_eq!(reply.status, 400, "study search ?{bad}: {}", reply.text());
    }
    let tampered = get(&format!("{address}x/studies"), &[]);
    assert_eq!(tampered.status, 403, "a tampered study token: {}", tampered.text());
}

#[test]
fn the_study_search_returns_what_includefield_names_by_keyword_or_tag() {
    let server = sample_server();
    let open = open_addresses(&server);
    let address = address_of(&open, CT_ABDOMEN);
    let object = |query: &str| {
        let mut found = dicom_json(&get(&format!("{address}/studies?{query}"), &[]), query);
        assert_eq!(found.len(), 1, "{query}: the study");
        found.remove(0)
    };
    let plain = object("");
    assert_eq!(text(&plain, "00100020"), "MRN-2002", "the open tenant's study of MRN-2002");
    assert_eq!((text(&plain, "00100030"), text(&plain, "00100040")), ("19881130".into(), "M".into()), "birth, sex");
    assert!(plain.get("00100021").is_none(), "IssuerOfPatientID only when asked for");
    for query in [
        "includefield=IssuerOfPatientID",
        "includefield=00100021",
        "includefield=StudyDescription,00100021",
        "includefield=00081030&includefield=IssuerOfPatientID",
        "includefield=all",
    ] {
        let o = object(query);
        assert_eq!(o["00100021"]["vr"], "LO", "{query}: IssuerOfPatientID, empty in the sample");
        assert_eq!(text(&o, "0020000D"), CT_ABDOMEN, "{query}: and the study attributes");
    }
    // An attribute the server does not hold is left out, not refused (PS3.18 §8.3.4.3).
    assert_eq!(text(&object("includefield=00080060,StationName"), "0020000D"), CT_ABDOMEN, "unknown fields");
}

#[test]
fn the_study_search_has_an_etag_and_answers_304_to_it() {
    let server = sample_server();
    let demo = demo_addresses(&server);
    let url = format!("{}/studies?StudyInstanceUID={MR_BRAIN}", address_of(&demo, MR_BRAIN));
    let reply = get(&url, &[]);
    let tag = reply.header("etag").expect("an ETag").to_string();
    assert_eq!(get(&url, &[("If-None-Match", &tag)]).status, 304, "If-None-Match with its ETag");
    let other = get(&format!("{url}&limit=1"), &[]);
    assert_ne!(other.header("etag"), Some(tag.as_str()), "another query, another representation");
}

#[test]
fn the_study_level_instance_search_lists_every_instance_of_the_study() {
    let index = IndexFile::sample();
    let server = sample_server();
    let open = open_addresses(&server);
    for (uid, address) in &open {
        let study = index.study(uid);
        let url = format!("{address}/studies/{uid}/instances");
        let found = dicom_json(&get(&url, &[]), &url);
        let expected: Vec<(String, String)> = study
            .series
            .iter()
            .flat_map(|se| se.instances.iter().map(move |i| (se.uid.clone(), i.uid.clone())))
            .collect();
        let got: Vec<(String, String)> = found.iter().map(|o| (text(o, "0020000E"), text(o, "00080018"))).collect();
        assert_eq!(got, expected, "{url}: every instance, series after series");
        assert!(found.iter().all(|o| first(o, "00280010").as_u64() == Some(256)), "{url}: Rows, from the header");
        let se = &study.series[study.series.len() - 1];
        let narrowed = dicom_json(&get(&format!("{url}?SeriesInstanceUID={}&limit=1", se.uid), &[]), &url);
        assert_eq!(text(&narrowed[0], "00080018"), se.instances[0].uid, "{url}: matched on the series, paged");
    }
    let address = address_of(&open, CT_CHEST);
    let other = get(&format!("{address}/studies/{MR_BRAIN}/instances"), &[]);
    assert_eq!(other.status, 403, "another study's instances under this token: {}", other.text());
}

/// The DICOMweb configuration the viewer page's "Open in OHIF" link hands OHIF: roots that are the Endpoint
/// address asked about, for an address of this server only.
#[test]
fn ohif_json_gives_the_roots_of_an_endpoint_address_of_this_server_only() {
    let server = sample_server();
    let (_, address) = addresses(&server, "/demo/fhir/ImagingStudy?patient=p1").remove(0);
    let asked =
        |address: &str| server.get(&format!("/viewer/ohif.json?address={}", crate::sandbox_kit::encode(address)));
    let reply = asked(&address);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let source = &reply.json()["servers"]["dicomWeb"][0];
    for root in ["wadoRoot", "qidoRoot"] {
        assert_eq!(source[root].as_str(), Some(address.as_str()), "{root}");
    }
    let foreign = address.replace(server.base(), "http://elsewhere.example.org");
    for bad in [foreign.as_str(), "", "/demo/fhir", &format!("{}/nobody/wado/x", server.base())] {
        assert_eq!(asked(bad).status, 400, "{bad:?}");
    }
}

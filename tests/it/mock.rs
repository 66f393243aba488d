//! Tests of mock tenants (docs/operations.md, Configuration `authorization.type = "mock"`) over real HTTP: the
//! repository's own configuration (tenants `open` and `demo`) or a temporary one, always against the sample index;
//! and the command line (docs/operations.md, Command line), which needs no server.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// The sample CT chest study of MRN-1001, whose DICOM time carries an offset of +0100.
const CT_CHEST: &str = "2.25.3141592653589793238462643383279.1.1.1";
/// The sample MR brain study of MRN-1001: fractional seconds, no offset.
const MR_BRAIN: &str = "2.25.3141592653589793238462643383279.1.1.2";
/// The DICOM PatientID of the demo tenant's patient p1, and that of the other sample patient.
const P1_MRN: &str = "MRN-1001";
const OTHER_MRN: &str = "MRN-2002";

/// A fixed study-token key (docs/api.md, Choices: study tokens), so that a test does not rest on the random
/// per-process one.
const TEST_KEY: &str = "integration-test-study-token-key";

/// The repository's `demo` tenant, for temporary configurations.
const DEMO_TENANT: &str = r#"
[tenants.demo]
authorization = { type = "mock", ignorePatient = false, patient = { id = "p1", name = "Anna Müller", identifier = [{ system = "http://hospital.example.org", value = "MRN-1001", type = "MR" }] } }
images = { lookup = "studies-by-context" }
"#;

/// The repository's server, with the tenants `open` and `demo`.
fn sample_server() -> Server {
    Launch::new(sample_config()).start()
}

/// A search that must succeed, as JSON.
fn search(server: &Server, path: &str) -> Value {
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "search {path}: {}", reply.text());
    reply.json()
}

/// A refused WADO request: 403, and nothing of the study in the body.
fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: status, body {}", reply.text());
    assert!(!reply.body_contains(b"DICM"), "{what}: the refusal carries DICOM bytes");
    assert_ne!(reply.media_type(), "multipart/related", "{what}: the refusal is multipart");
}

/// An error that carries no DICOM, with the given status.
fn assert_error(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: status, body {}", reply.text());
    assert!(!reply.body_contains(b"DICM"), "{what}: the error carries DICOM bytes");
}

/// A FHIR error: the status and an OperationOutcome body.
fn assert_outcome(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: status, body {}", reply.text());
    assert_eq!(reply.json()["resourceType"], "OperationOutcome", "{what}: body is not an OperationOutcome");
}

/// The token with one character in its middle replaced by another URL-safe one.
fn tamper(token: &str) -> String {
    let mid = token.len() / 2;
    let replacement = if &token[mid..=mid] == "A" { "B" } else { "A" };
    format!("{}{replacement}{}", &token[..mid], &token[mid + 1..])
}

/// The two studies the demo search finds for p1, as (uid, WADO-RS address).
fn demo_addresses(server: &Server) -> [(String, String); 2] {
    let found = addresses(server, "/demo/fhir/ImagingStudy?patient=p1");
    found.try_into().unwrap_or_else(|f: Vec<_>| panic!("the demo search should find 2 studies, found {}", f.len()))
}

// ---------------------------------------------------------------------------------------------------
// FHIR search and read.

#[test]
fn demo_search_answers_a_searchset_bundle_of_the_patients_studies() {
    let index = IndexFile::sample();
    let server = sample_server();
    let base = server.base();
    let reply = server.get("/demo/fhir/ImagingStudy?patient=p1");
    assert_eq!(reply.status, 200, "search for p1 on demo: {}", reply.text());
    assert_eq!(reply.media_type(), "application/fhir+json", "search Content-Type");
    let bundle = reply.json();
    let expected = index.studies_of(P1_MRN);
    assert_eq!(expected.len(), 2, "the sample index should hold 2 studies of {P1_MRN}");

    assert_eq!(bundle["resourceType"], "Bundle", "resourceType");
    assert_eq!(bundle["type"], "searchset", "Bundle.type");
    assert_eq!(bundle["total"], expected.len(), "Bundle.total");
    let all = bundle["entry"].as_array().cloned().unwrap_or_default();
    let (entries, included): (Vec<Value>, Vec<Value>) = all.into_iter().partition(|e| e["search"]["mode"] == "match");
    assert_eq!(entries.len(), expected.len(), "number of matching entries");
    assert_eq!(included.len(), expected.len(), "one Endpoint entry per study, on its page, without _include");
    let self_link = link(&bundle, "self").unwrap_or_default();
    assert!(
        self_link.starts_with(&format!("{base}/demo/fhir/ImagingStudy")) && self_link.contains("patient=p1"),
        "self link {self_link:?} is not this search on {base}"
    );
    assert_eq!(sorted(ids(&bundle)), sorted(expected.iter().map(|s| s.uid.clone())), "the studies found");

    let expect = Expect { base, tenant: "demo", written: &index.written, subject: "Patient/p1" };
    for entry in &entries {
        let id = entry["resource"]["id"].as_str().unwrap_or_default();
        assert_eq!(entry["fullUrl"], format!("{base}/demo/fhir/ImagingStudy/{id}"), "fullUrl of {id}");
        assert_eq!(entry["search"]["mode"], "match", "search.mode of {id}");
        assert_imaging_study(&bundle, &entry["resource"], index.study(id), expect);
    }
    let references: Vec<&Value> = entries.iter().map(|e| &e["resource"]["endpoint"][0]["reference"]).collect();
    for endpoint in &included {
        let full_url = endpoint["fullUrl"].as_str().unwrap_or_default();
        assert!(full_url.starts_with("urn:uuid:"), "an Endpoint entry's fullUrl is response-local: {full_url}");
        assert_eq!(references.iter().filter(|r| **r == full_url).count(), 1, "{full_url} is one study's Endpoint");
        assert_eq!(endpoint["search"]["mode"], "include");
    }
    let started = |uid: &str| {
        let study = resources(&bundle).into_iter().find(|r| r["id"] == uid);
        study.map(|s| s["started"].clone()).unwrap_or_default()
    };
    assert_eq!(started(CT_CHEST), "2024-01-05T09:30:00+01:00", "started of the CT study, with its own offset");
    assert_eq!(started(MR_BRAIN), "2024-06-12T14:15:00.123+00:00", "started of the MR study, default offset");
}

#[test]
fn base_url_flag_sets_every_link() {
    let public = "https://imaging.example.org/pacs";
    let server = Launch::new(sample_config()).arg("--base-url").arg(public).start();
    let bundle = search(&server, "/demo/fhir/ImagingStudy?patient=p1");
    let self_link = link(&bundle, "self").unwrap_or_default();
    assert!(self_link.starts_with(&format!("{public}/demo/fhir/ImagingStudy")), "self link {self_link}");
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    for entry in entries.iter().filter(|e| e["search"]["mode"] == "match") {
        let full_url = entry["fullUrl"].as_str().unwrap_or_default();
        assert!(full_url.starts_with(&format!("{public}/demo/fhir/ImagingStudy/")), "fullUrl {full_url}");
        let address = wado_address(&bundle, &entry["resource"]);
        let path = address.strip_prefix(public).unwrap_or_else(|| panic!("address {address} is not under {public}"));
        // Behind a proxy that strips the public prefix, the address's path reaches this server.
        let uid = entry["resource"]["id"].as_str().unwrap_or_default();
        let reply = server.get(&format!("{path}/studies/{uid}"));
        assert_eq!(reply.status, 200, "retrieve through the public address's path: {}", reply.text());
    }
}

#[test]
fn demo_search_refuses_another_or_no_patient_and_accepts_every_reference_form() {
    let server = sample_server();
    for (path, what) in [
        ("/demo/fhir/ImagingStudy?patient=p2", "another patient id"),
        ("/demo/fhir/ImagingStudy?patient=Patient/other", "another patient reference"),
        ("/demo/fhir/ImagingStudy", "no patient parameter"),
        ("/demo/fhir/ImagingStudy?identifier=urn:oid:1.2.3", "no patient parameter, another parameter"),
    ] {
        let reply = server.get(path);
        assert_outcome(&reply, 403, what);
        assert_eq!(reply.media_type(), "application/fhir+json", "{what}: Content-Type");
    }
    let own = format!("patient={}", server.url("/demo/fhir/Patient/p1"));
    for query in ["patient=p1", "patient=Patient/p1", own.as_str(), "subject=p1"] {
        let bundle = search(&server, &format!("/demo/fhir/ImagingStudy?{query}"));
        assert_eq!(bundle["total"], 2, "{query} names p1 and should find both of p1's studies");
    }
}

// Regression: a mock tenant took `?patient=http://x/fhir/Patient/p1` (any base, even `Group/1/Patient/p1`)
// for p1; absolute references are accepted only under the tenant's own FHIR base (docs/api.md, Patient references).
#[test]
fn demo_search_refuses_references_outside_its_own_base() {
    let server = sample_server();
    let elsewhere = format!("patient={}", server.url("/open/fhir/Patient/p1"));
    for query in
        ["patient=http://x/fhir/Patient/p1", "patient=Group/1/Patient/p1", "subject=Patient/p1/_history/1", &elsewhere]
    {
        assert_outcome(&server.get(&format!("/demo/fhir/ImagingStudy?{query}")), 400, query);
    }
}

/// An index of three studies of PatientID MRN-1001: issued by HOSP-A, by HOSP-B, and with no issuer. Its
/// files do not exist: a search reads none.
fn issuer_index(dir: &TempDir) {
    let mut text = String::from("written = \"2026-01-01T00:00:00Z\"\n");
    for (n, issuer) in ["HOSP-A", "HOSP-B", ""].iter().enumerate() {
        let issuer = if issuer.is_empty() { String::new() } else { format!("issuer_of_patient_id = \"{issuer}\"\n") };
        text.push_str(&format!(
            "[[study]]\nuid = \"1.2.3.{n}\"\npatient_id = \"MRN-1001\"\n{issuer}\
             [[study.series]]\nuid = \"1.2.3.{n}.1\"\n[[study.series.instance]]\nuid = \"1.2.3.{n}.1.1\"\n\
             sop_class = \"1.2.840.10008.5.1.4.1.1.2\"\ntransfer_syntax = \"1.2.840.10008.1.2.1\"\n\
             path = \"x/{n}.dcm\"\nsize = 10\n"
        ));
    }
    dir.write("index.toml", text);
}

#[test]
fn an_issuer_of_patient_id_must_agree_with_the_identifiers_system_through_the_map() {
    let dir = TempDir::new("issuers");
    issuer_index(&dir);
    let tenant = |issuers: &str| {
        format!(
            "[images]\nindex = \"index.toml\"\n\n[tenants.demo]\nauthorization.type = \"mock\"\n\
             authorization.patient = {{ id = \"p1\", identifier = [{{ system = \"http://hospital.example.org\", \
             value = \"MRN-1001\", type = \"MR\" }}] }}\nimages.lookup = \"studies-by-context\"\n{issuers}\n"
        )
    };
    let unmapped = Launch::new(dir.write("unmapped.toml", tenant(""))).start();
    let bundle = search(&unmapped, "/demo/fhir/ImagingStudy?patient=p1");
    assert_eq!(ids(&bundle), ["1.2.3.2"], "no map: only the study without an issuer matches");
    let mapped = Launch::new(
        dir.write("mapped.toml", tenant("images.issuers = { \"HOSP-A\" = \"http://hospital.example.org\" }")),
    )
    .start();
    let bundle = search(&mapped, "/demo/fhir/ImagingStudy?patient=p1");
    assert_eq!(sorted(ids(&bundle)), ["1.2.3.0", "1.2.3.2"], "HOSP-A maps to the identifier's system; HOSP-B does not");
}

/// The Endpoint entries of a search page, by `fullUrl`, checked to be `include` entries referenced by
/// exactly one study of the page each, and the page's studies each naming one of them.
fn endpoint_entries(bundle: &Value) -> Vec<String> {
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let studies: Vec<&Value> = entries.iter().filter(|e| e["search"]["mode"] == "match").collect();
    let endpoints: Vec<&Value> = entries.iter().filter(|e| e["search"]["mode"] == "include").collect();
    assert_eq!(studies.len() + endpoints.len(), entries.len(), "every entry is a match or an include: {bundle}");
    for study in &studies {
        let reference = study["resource"]["endpoint"][0]["reference"].as_str().unwrap_or_default();
        assert!(reference.starts_with("urn:uuid:"), "a study names a response-local Endpoint: {reference}");
        assert!(study["resource"].get("contained").is_none(), "no contained Endpoint besides it");
        let named = endpoints.iter().filter(|e| e["fullUrl"] == reference).count();
        assert_eq!(named, 1, "the Endpoint {reference} is on the study's own page, once: {bundle}");
    }
    for endpoint in &endpoints {
        assert_eq!(endpoint["resource"]["resourceType"], "Endpoint");
        assert!(endpoint["resource"]["address"].as_str().is_some_and(|a| a.contains("/demo/wado/")));
        let full_url = &endpoint["fullUrl"];
        assert_eq!(studies.iter().filter(|s| s["resource"]["endpoint"][0]["reference"] == *full_url).count(), 1);
    }
    endpoints.iter().map(|e| e["fullUrl"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn search_pages_carry_their_studies_endpoints_as_entries_and_reads_contain_theirs() {
    let server = sample_server();
    let mut seen = Vec::new();
    for query in ["patient=p1", "patient=p1&_include=ImagingStudy:endpoint"] {
        let bundle = search(&server, &format!("/demo/fhir/ImagingStudy?{query}"));
        assert_eq!(endpoint_entries(&bundle).len(), 2, "{query}: one Endpoint entry per study");
        seen.extend(endpoint_entries(&bundle));
    }
    // One study per page: each page brings its own study's Endpoint, never the next page's.
    let first = search(&server, "/demo/fhir/ImagingStudy?patient=p1&_count=1");
    assert_eq!(endpoint_entries(&first).len(), 1, "page 1");
    let next = link(&first, "next").expect("a next page");
    let path = next.split_once("/demo/").map(|(_, p)| format!("/demo/{p}")).unwrap();
    let second = search(&server, &path);
    assert_eq!(endpoint_entries(&second).len(), 1, "page 2");
    seen.extend(endpoint_entries(&first).into_iter().chain(endpoint_entries(&second)));
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "every answer names its Endpoints afresh: {seen:?}");

    // A read has no Bundle to hold an entry: its Endpoint is contained.
    let read = server.get(&format!("/demo/fhir/ImagingStudy/{CT_CHEST}")).json();
    assert_eq!(read["endpoint"][0]["reference"], "#wado", "{read}");
    let address = wado_address(&Value::Null, &read);
    assert_eq!(get(&format!("{address}/studies/{CT_CHEST}/metadata"), &[]).status, 200, "the read's address");
}

#[test]
fn a_tenant_may_keep_its_endpoints_contained() {
    let dir = TempDir::new("contained");
    let tenant = DEMO_TENANT.replace(
        "images = { lookup = \"studies-by-context\" }",
        "images = { lookup = \"studies-by-context\", endpoints = \"contained\" }",
    );
    assert_ne!(tenant, DEMO_TENANT, "the tenant's images line moved");
    let server = Launch::new(&dir.config(&tenant)).start();
    let bundle = search(&server, "/demo/fhir/ImagingStudy?patient=p1&_include=ImagingStudy:endpoint");
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 2, "two studies and no entry besides: {bundle}");
    for entry in &entries {
        assert_eq!(entry["search"]["mode"], "match");
        let study = &entry["resource"];
        assert_eq!(study["endpoint"][0]["reference"], "#wado", "{study}");
        let address = wado_address(&bundle, study);
        let uid = study["id"].as_str().unwrap();
        assert_eq!(get(&format!("{address}/studies/{uid}/metadata"), &[]).status, 200, "{uid} through its address");
    }
    let bad = dir.write("bad.toml", config_text(&tenant.replace("\"contained\"", "\"inline\"")));
    let refused = run_cli(&[OsString::from("check"), "--config".into(), bad.into()], dir.path());
    assert_eq!(refused.status.code(), Some(2), "{refused}");
    assert!(refused.stderr.contains("endpoints"), "an unknown form is refused by name: {refused}");
}

#[test]
fn read_answers_only_studies_the_tenant_may_see() {
    let index = IndexFile::sample();
    let other = &index.studies_of(OTHER_MRN)[0].uid;
    let server = sample_server();

    let own = server.get(&format!("/demo/fhir/ImagingStudy/{CT_CHEST}"));
    assert_eq!(own.status, 200, "demo reading p1's study: {}", own.text());
    assert_eq!(own.json()["id"], CT_CHEST, "demo read: id");
    assert_outcome(&server.get(&format!("/demo/fhir/ImagingStudy/{other}")), 404, "demo reading MRN-2002's study");
    assert_outcome(&server.get("/demo/fhir/ImagingStudy/2.25.999"), 404, "reading an unknown study");
    let open = server.get(&format!("/open/fhir/ImagingStudy/{other}"));
    assert_eq!(open.status, 200, "open reading MRN-2002's study: {}", open.text());
    assert_eq!(open.json()["id"], other.as_str(), "open read: id");
    assert_outcome(&server.get("/nope/fhir/ImagingStudy"), 404, "unknown tenant");
    assert_eq!(server.get("/nope/fhir/metadata").status, 404, "unknown tenant's metadata");
}

#[test]
fn identifier_narrows_the_search_to_one_study() {
    let index = IndexFile::sample();
    let other = &index.studies_of(OTHER_MRN)[0].uid;
    let server = sample_server();
    for value in [format!("urn:dicom:uid%7Curn:oid:{CT_CHEST}"), format!("urn:oid:{CT_CHEST}"), CT_CHEST.to_string()] {
        let bundle = search(&server, &format!("/demo/fhir/ImagingStudy?patient=p1&identifier={value}"));
        assert_eq!(bundle["total"], 1, "identifier={value}: total");
        assert_eq!(ids(&bundle), [CT_CHEST], "identifier={value}: the study found");
    }
    let none = search(&server, "/demo/fhir/ImagingStudy?patient=p1&identifier=urn:oid:2.25.1");
    assert_eq!(none["total"], 0, "a UID in no study must match nothing");
    assert!(ids(&none).is_empty(), "a UID in no study must give no entries");
    let not_p1 = search(&server, &format!("/demo/fhir/ImagingStudy?patient=p1&identifier=urn:oid:{other}"));
    assert_eq!(not_p1["total"], 0, "another patient's study must not be found by its UID");
}

#[test]
fn last_updated_narrows_by_the_time_the_index_was_written() {
    let index = IndexFile::sample();
    let all = index.studies.len();
    let day = &index.written[..10];
    let server = sample_server();
    for (value, expected) in [
        ("ge2000-01-01".to_string(), all),
        ("gt2100-01-01".to_string(), 0),
        ("lt2100-01-01".to_string(), all),
        (format!("eq{day}"), all),
        (day.to_string(), all),
        (format!("le{day}"), all),
        (format!("gt{day}"), 0),
    ] {
        let bundle = search(&server, &format!("/open/fhir/ImagingStudy?_lastUpdated={value}"));
        assert_eq!(bundle["total"], expected, "_lastUpdated={value} (index written {})", index.written);
    }
    for bad in ["ge2024-13-45", "yesterday"] {
        assert_outcome(&server.get(&format!("/open/fhir/ImagingStudy?_lastUpdated={bad}")), 400, bad);
    }
}

#[test]
fn open_tenant_needs_no_patient_and_serves_every_study() {
    let index = IndexFile::sample();
    let other = index.studies_of(OTHER_MRN)[0];
    let server = sample_server();
    let bundle = search(&server, "/open/fhir/ImagingStudy");
    assert_eq!(bundle["total"], index.studies.len(), "open search without patient or token: total");
    assert_eq!(sorted(ids(&bundle)), index.uids(), "open search: every study of the index");

    let study = resources(&bundle).into_iter().find(|r| r["id"] == other.uid.as_str()).cloned().unwrap_or_default();
    assert_eq!(study["started"], "2023-12-20", "started of a study without a StudyTime is its date");
    let address = wado_address(&bundle, &study);
    assert!(address.starts_with(&server.url("/open/wado/")), "open's address {address} is not under /open/wado");
    let retrieved = get(&format!("{address}/studies/{}", other.uid), &[]);
    assert_dicom_parts(&retrieved, &other.instances(), "open tenant retrieving MRN-2002's study");
}

#[test]
fn all_studies_lookup_still_requires_the_patient_in_context() {
    let index = IndexFile::sample();
    let dir = TempDir::new("all-studies");
    let config = dir.config(
        r#"
[tenants.clinic]
authorization = { type = "mock", ignorePatient = false, patient = { id = "p1", identifier = [{ value = "MRN-1001", type = "MR" }] } }
images = { lookup = "all-studies" }
"#,
    );
    let server = Launch::new(&config).start();
    assert_outcome(&server.get("/clinic/fhir/ImagingStudy"), 403, "all-studies without ignorePatient, no patient");
    assert_outcome(&server.get("/clinic/fhir/ImagingStudy?patient=p2"), 403, "all-studies, another patient");
    let bundle = search(&server, "/clinic/fhir/ImagingStudy?patient=p1");
    assert_eq!(bundle["total"], index.studies.len(), "all-studies with patient=p1: total");
    assert_eq!(sorted(ids(&bundle)), index.uids(), "all-studies with patient=p1: every study");
}

#[test]
fn count_pages_through_every_study_with_next_links() {
    let index = IndexFile::sample();
    let all = index.studies.len();
    let server = sample_server();
    let mut page = search(&server, "/open/fhir/ImagingStudy?_count=1");
    assert!(link(&page, "next").is_some(), "the first of {all} pages of 1 has no next link");
    let mut seen = Vec::new();
    for n in 0.. {
        assert!(n < all, "more than {all} pages of 1 for {all} studies");
        assert_eq!(page["total"], all, "page {n}: total counts every match");
        assert_eq!(ids(&page).len(), 1, "page {n}: _count=1 entries");
        seen.extend(ids(&page));
        let Some(next) = link(&page, "next") else { break };
        assert!(next.starts_with(&server.url("/open/fhir/ImagingStudy?")), "page {n}: next link {next}");
        let reply = get(&next, &[]);
        assert_eq!(reply.status, 200, "page {}: {next}: {}", n + 1, reply.text());
        page = reply.json();
    }
    assert_eq!(sorted(seen), index.uids(), "the pages together hold every study once");
}

/// Regression: with `_count=0` the server offered a `next` link to `_offset=0`, the same empty page, so a
/// client that follows `next` links (docs/api.md, Paths) never stops.
#[test]
fn count_zero_offers_no_next_link_that_never_advances() {
    let all = IndexFile::sample().studies.len();
    let server = sample_server();
    let page = search(&server, "/open/fhir/ImagingStudy?_count=0");
    assert_eq!(page["total"], all, "_count=0 still counts every match");
    assert_eq!(link(&page, "next"), None, "_count=0: a next link from a page of 0 entries cannot advance");
}

#[test]
fn unknown_search_parameters_are_ignored_unless_handling_is_strict() {
    let all = IndexFile::sample().studies.len();
    let server = sample_server();
    let bundle = search(&server, "/open/fhir/ImagingStudy?foo=bar");
    assert_eq!(bundle["total"], all, "an unknown parameter must not narrow the search");
    let self_link = link(&bundle, "self").unwrap_or_default();
    assert!(!self_link.contains("foo"), "the ignored parameter is in the self link {self_link}");
    let strict = [("Prefer", "handling=strict")];
    assert_outcome(&server.get_with("/open/fhir/ImagingStudy?foo=bar", &strict), 400, "unknown parameter, strict");
    let known = server.get_with("/open/fhir/ImagingStudy?_count=5", &strict);
    assert_eq!(known.status, 200, "strict handling with known parameters only: {}", known.text());
}

// ---------------------------------------------------------------------------------------------------
// WADO-RS.

#[test]
fn wado_retrieves_every_study_series_and_instance_as_stored() {
    let index = IndexFile::sample();
    let server = sample_server();
    for (uid, address) in demo_addresses(&server) {
        let study = index.study(&uid);
        let reply = get(&format!("{address}/studies/{uid}"), &[]);
        assert_dicom_parts(&reply, &study.instances(), &format!("study {uid}"));
        for series in &study.series {
            let series_url = format!("{address}/studies/{uid}/series/{}", series.uid);
            let expected: Vec<&IndexInstance> = series.instances.iter().collect();
            assert_dicom_parts(&get(&series_url, &[]), &expected, &format!("series {}", series.uid));
            for inst in &series.instances {
                let reply = get(&format!("{series_url}/instances/{}", inst.uid), &[]);
                assert_dicom_parts(&reply, &[inst], &format!("instance {}", inst.uid));
            }
        }
    }
}

#[test]
fn study_tokens_are_refused_when_tampered_or_used_for_another_tenant_or_study() {
    let index = IndexFile::sample();
    let server = sample_server();
    let [(uid_a, address_a), (uid_b, _)] = demo_addresses(&server);
    let token = study_token(&address_a).to_string();
    let genuine = get(&format!("{address_a}/studies/{uid_a}"), &[]);
    assert_eq!(genuine.status, 200, "the genuine token must work, or the refusals below prove nothing");

    let tampered = tamper(&token);
    assert_refused(&server.get(&format!("/demo/wado/{tampered}/studies/{uid_a}")), "a tampered study token");
    assert_refused(&server.get(&format!("/open/wado/{token}/studies/{uid_a}")), "a demo study token under /open");
    assert_refused(&get(&format!("{address_a}/studies/{uid_b}"), &[]), "study A's token for study B");
    let series_b = &index.study(&uid_b).series[0].uid;
    assert_refused(&get(&format!("{address_a}/studies/{uid_b}/series/{series_b}"), &[]), "A's token, B's series");
}

#[test]
fn expired_study_token_is_refused() {
    let dir = TempDir::new("expiry");
    // A lifetime of 2 s rather than 1: a token minted late in a second would otherwise be dead before the
    // control request below, since expiry is counted in whole seconds.
    let config = dir.config(&format!("[server]\nstudy_token_ttl = 2\n{DEMO_TENANT}"));
    let server = Launch::new(&config).env(KEY_VAR, TEST_KEY).start();
    let [(uid, address), _] = demo_addresses(&server);
    let url = format!("{address}/studies/{uid}");
    let fresh = get(&url, &[]);
    assert_eq!(fresh.status, 200, "a fresh token must work, or the refusal below proves nothing");
    // The one sleep of the suite: the expiry itself is under test.
    std::thread::sleep(Duration::from_millis(2100));
    assert_refused(&get(&url, &[]), "a study token past server.study_token_ttl");
}

#[test]
fn unknown_series_and_instances_are_404_and_malformed_uids_400() {
    let index = IndexFile::sample();
    let server = sample_server();
    let [(uid, address), _] = demo_addresses(&server);
    let study = index.study(&uid);
    assert!(study.series.len() >= 2, "the test needs a study with two series");
    let (first, second) = (&study.series[0], &study.series[1]);
    let at = |rest: &str| get(&format!("{address}/studies/{rest}"), &[]);

    assert_error(&at(&format!("{uid}/series/2.25.999")), 404, "an unknown series");
    assert_error(&at(&format!("{uid}/series/{}/instances/2.25.999", first.uid)), 404, "an unknown instance");
    let elsewhere = &second.instances[0].uid;
    assert_error(&at(&format!("{uid}/series/{}/instances/{elsewhere}", first.uid)), 404, "another series' instance");
    assert_error(&at("abc"), 400, "a malformed study UID");
    assert_error(&at(&format!("{uid}/series/abc")), 400, "a malformed series UID");
    assert_error(&at(&format!("{uid}/series/{}/instances/1..2", first.uid)), 400, "a malformed instance UID");
}

#[test]
fn head_on_a_wado_study_is_get_without_a_body() {
    let server = sample_server();
    let [(uid, address), _] = demo_addresses(&server);
    let url = format!("{address}/studies/{uid}");
    let got = get(&url, &[]);
    assert_eq!(got.status, 200, "GET {url}: {}", got.text());
    let target = url.strip_prefix(server.base()).unwrap_or_default();
    let head = server.raw("HEAD", target, &[]);
    assert_eq!(head.status, 200, "HEAD status");
    assert_eq!(
        without_param(head.header_or_empty("content-type"), "boundary"),
        without_param(got.header_or_empty("content-type"), "boundary"),
        "HEAD and GET Content-Type (apart from the boundary)"
    );
    assert_eq!(head.header("content-length"), got.header("content-length"), "HEAD and GET Content-Length");
    assert!(head.body.is_empty(), "HEAD sent {} body bytes", head.body.len());
}

/// Regression: tiny_http answers HTTP/1.1 bodies of 32 KiB or more with chunked transfer coding unless told
/// otherwise, dropping the Content-Length the server knows (docs/api.md promises Content-Length whenever it is known).
#[test]
fn wado_responses_of_any_size_carry_content_length() {
    let index = IndexFile::sample();
    let server = sample_server();
    let [(uid, address), _] = demo_addresses(&server);
    let study = index.study(&uid);
    let study_url = format!("{address}/studies/{uid}");
    let series_url = format!("{study_url}/series/{}", study.series[0].uid);
    let instance_url = format!("{series_url}/instances/{}", study.series[0].instances[0].uid);
    for (what, url) in [("study", &study_url), ("series", &series_url), ("instance", &instance_url)] {
        let got = get(url, &[]);
        assert_eq!(got.status, 200, "{what}: {}", got.text());
        let length = got.body.len().to_string();
        assert_eq!(
            (got.header("content-length"), got.header("transfer-encoding")),
            (Some(length.as_str()), None),
            "{what} of {length} bytes: Content-Length and Transfer-Encoding of GET"
        );
        let head = server.raw("HEAD", url.strip_prefix(server.base()).unwrap_or_default(), &[]);
        assert_eq!(head.header("content-length"), Some(length.as_str()), "{what}: Content-Length of HEAD");
    }
}

#[test]
fn wado_content_negotiation() {
    let index = IndexFile::sample();
    let server = sample_server();
    let [(uid, address), _] = demo_addresses(&server);
    let study = index.study(&uid);
    let study_url = format!("{address}/studies/{uid}");
    fn accept(value: &str) -> [(&'static str, &str); 1] {
        [("Accept", value)]
    }

    let jpeg = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50";
    assert_error(&get(&study_url, &accept(jpeg)), 406, "a transfer syntax other than the stored one");
    let any = "multipart/related; type=application/dicom; transfer-syntax=*";
    assert_dicom_parts(&get(&study_url, &accept(any)), &study.instances(), "unquoted type, transfer-syntax=*");
    assert_error(&get(&study_url, &accept("garbage")), 400, "a malformed Accept");

    let inst = &study.series[0].instances[0];
    let single = get(
        &format!("{study_url}/series/{}/instances/{}", study.series[0].uid, inst.uid),
        &accept("application/dicom"),
    );
    assert_eq!(single.status, 200, "application/dicom on an instance: {}", single.text());
    let content_type = single.header_or_empty("content-type");
    assert_eq!(media_type(content_type), "application/dicom", "single instance Content-Type");
    // PS3.18's default for application/dicom: Explicit VR Little Endian, the file itself when so stored.
    assert_eq!(
        media_param(content_type, "transfer-syntax").as_deref(),
        Some("1.2.840.10008.1.2.1"),
        "single instance transfer syntax"
    );
    assert_eq!(single.body == inst.file_bytes(), inst.transfer_syntax == "1.2.840.10008.1.2.1", "the file's bytes");
    let stored = get(
        &format!("{study_url}/series/{}/instances/{}", study.series[0].uid, inst.uid),
        &accept("application/dicom; transfer-syntax=*"),
    );
    assert!(stored.body == inst.file_bytes(), "transfer-syntax=*: the single instance is not the file's bytes");
}

// ---------------------------------------------------------------------------------------------------
// CORS, caching, logging, service pages.

#[test]
fn cors_preflight_and_response_headers() {
    let server = sample_server();
    let [(uid, address), _] = demo_addresses(&server);
    let study_url = format!("{address}/studies/{uid}");
    let wado_target = study_url.strip_prefix(server.base()).unwrap_or_default().to_string();
    let origin = ("Origin", "http://app.example.org");
    let preflight =
        [origin, ("Access-Control-Request-Method", "GET"), ("Access-Control-Request-Headers", "authorization")];
    for target in ["/demo/fhir/ImagingStudy", wado_target.as_str()] {
        let what = if target.contains("/wado/") { "WADO preflight" } else { "FHIR preflight" };
        let reply = server.raw("OPTIONS", target, &preflight);
        assert_eq!(reply.status, 204, "{what}: status");
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{what}: Allow-Origin");
        let allowed = reply.header_or_empty("access-control-allow-headers");
        assert!(list_has(allowed, "Authorization"), "{what}: Authorization not in {allowed:?}");
        assert!(list_has(allowed, "Accept"), "{what}: Accept not in {allowed:?}");
        assert_ne!(reply.header("access-control-allow-credentials"), Some("true"), "{what}: credentials allowed");
    }

    let search = server.get_with("/demo/fhir/ImagingStudy?patient=p1", &[origin]);
    let wado = get(&study_url, &[origin]);
    let refused = server.get_with("/demo/fhir/ImagingStudy?patient=p2", &[origin]);
    assert_eq!((search.status, wado.status, refused.status), (200, 200, 403), "statuses of the three requests");
    for (what, reply) in [("search", &search), ("WADO", &wado), ("403", &refused)] {
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"), "{what}: Allow-Origin");
        let exposed = reply.header_or_empty("access-control-expose-headers");
        assert!(list_has(exposed, "WWW-Authenticate"), "{what}: WWW-Authenticate not in {exposed:?}");
        assert!(list_has(exposed, "Retry-After"), "{what}: Retry-After not in {exposed:?}");
    }
    assert!(list_has(wado.header_or_empty("cache-control"), "private"), "WADO Cache-Control is not private");
}

#[test]
fn the_log_never_holds_a_study_token() {
    let index = IndexFile::sample();
    let server = sample_server();
    let [(uid_a, address_a), (uid_b, address_b)] = demo_addresses(&server);
    let series_b = &index.study(&uid_b).series[0].uid;
    let (token_a, token_b) = (study_token(&address_a).to_string(), study_token(&address_b).to_string());
    let tampered = tamper(&token_a);

    assert_eq!(get(&format!("{address_a}/studies/{uid_a}"), &[]).status, 200, "download of study A");
    assert_eq!(get(&format!("{address_b}/studies/{uid_b}/series/{series_b}"), &[]).status, 200, "series of B");
    assert_eq!(server.get(&format!("/demo/wado/{tampered}/studies/{uid_a}")).status, 403, "tampered token");
    assert_eq!(get(&format!("{address_a}/studies/{uid_b}"), &[]).status, 403, "A's token for B");

    let log = server.wait_for_log("a line for each of the 4 WADO requests", |log| {
        log.lines().filter(|l| l.contains(" /demo/wado/")).count() >= 4
    });
    let line = |needle: &str| log.lines().any(|l| l.contains(needle));
    let granted = format!("GET /demo/wado/[study-token]/studies/{uid_a} 200");
    assert!(line(&granted), "no log line {granted:?}");
    let refused = format!("GET /demo/wado/[study-token]/studies/{uid_b} 403");
    assert!(line(&refused), "no log line {refused:?}");
    for (what, token) in [("A's", &token_a), ("B's", &token_b), ("the tampered", &tampered)] {
        assert!(!log.contains(token.as_str()), "{what} study token is in the log");
        let mid = token.len() / 2;
        assert!(!log.contains(&token[mid - 8..mid + 8]), "a piece of {what} study token is in the log");
    }
}

/// Regression: the log redacted the study token only when the path's second segment was literally `wado`;
/// a request spelling it `%77ado` was served, and a `//demo/wado/…` one answered 404, both with the token
/// in clear in the log (docs/operations.md, Security: study tokens never appear in logs).
#[test]
fn the_log_never_holds_a_study_token_of_a_non_canonical_path() {
    let server = sample_server();
    let [(uid, address), _] = demo_addresses(&server);
    let token = study_token(&address).to_string();
    let encoded = server.get(&format!("/demo/%77ado/{token}/studies/{uid}"));
    let doubled = server.get(&format!("//demo/wado/{token}/studies/{uid}"));
    assert!(encoded.status != 500 && doubled.status != 500, "the non-canonical paths failed the server");
    let log = server.wait_for_log("a line for each of the 2 requests", |log| {
        log.lines().filter(|l| l.contains(&format!("/studies/{uid} "))).count() >= 2
    });
    let mid = token.len() / 2;
    assert!(!log.contains(&token[mid - 8..mid + 8]), "the study token is in the log");
}

#[test]
fn service_pages_answer_without_a_token() {
    let server = sample_server();
    let health = server.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok"), "GET /healthz");

    let home = server.get("/");
    assert_eq!(home.status, 200, "GET /");
    assert_eq!(home.media_type(), "text/html", "GET / Content-Type");
    for tenant in ["demo", "open"] {
        let fhir = server.url(&format!("/{tenant}/fhir"));
        assert!(home.text().contains(&fhir), "GET / does not link tenant {tenant} ({fhir})");
    }

    let metadata = server.get("/demo/fhir/metadata");
    assert_eq!(metadata.status, 200, "GET metadata");
    let capability = metadata.json();
    assert_eq!(capability["resourceType"], "CapabilityStatement", "metadata resourceType");
    assert_eq!(capability["fhirVersion"], "4.0.1", "metadata fhirVersion");
    assert_eq!(capability["kind"], "instance", "metadata kind");

    for accept in ["application/json", "application/fhir+json"] {
        let smart = server.get_with("/demo/fhir/.well-known/smart-configuration", &[("Accept", accept)]);
        assert_eq!(smart.status, 200, "GET smart-configuration");
        assert_eq!(smart.media_type(), "application/json", "smart-configuration Content-Type, Accept {accept}");
    }
    // A mock tenant has no authorization server: it names none, and no grant types rather than an empty list.
    let smart = server.get("/demo/fhir/.well-known/smart-configuration").json();
    assert_eq!(smart["capabilities"], serde_json::json!(["smart-imaging-access"]), "{smart}");
    assert!(smart["smart_imaging_authorization"].as_str().unwrap().starts_with("none"), "{smart}");
    for absent in ["authorization_endpoint", "token_endpoint", "grant_types_supported"] {
        assert!(smart.get(absent).is_none(), "{absent} in {smart}");
    }
    let security = &capability["rest"][0]["security"];
    assert!(security.get("service").is_none(), "a mock tenant claims no SMART on FHIR: {security}");
}

#[test]
fn other_methods_are_405_with_allow() {
    let server = sample_server();
    for target in ["/demo/fhir/ImagingStudy?patient=p1", "/healthz"] {
        let reply = server.raw("POST", target, &[]);
        assert_eq!(reply.status, 405, "POST {target}: status");
        assert!(list_has(reply.header_or_empty("allow"), "GET"), "POST {target}: Allow {:?}", reply.header("allow"));
    }
}

// ---------------------------------------------------------------------------------------------------
// The command line (docs/operations.md, Command line).

#[test]
fn cli_version_and_unknown_flag() {
    let dir = TempDir::new("cli-flags");
    let version = run_cli(&["--version"], dir.path());
    assert_eq!(version.code(), Some(0), "--version exit status\n{version}");
    assert!(version.stdout.starts_with("smart-imaging "), "--version output\n{version}");
    let bogus = run_cli(&["--bogus"], dir.path());
    assert_eq!(bogus.code(), Some(2), "--bogus exit status\n{bogus}");
    assert!(bogus.stderr.contains("--bogus"), "--bogus is not named\n{bogus}");
}

#[test]
fn cli_unknown_configuration_key_exits_2_naming_key_and_file() {
    let dir = TempDir::new("cli-config");
    let config = dir.config(&format!("[server]\nlisten_port = 8000\n{DEMO_TENANT}"));
    let run = run_cli(
        &[OsString::from("--config"), config.clone().into(), "--listen".into(), "127.0.0.1:0".into()],
        dir.path(),
    );
    assert_eq!(run.code(), Some(2), "exit status\n{run}");
    assert!(run.stderr.contains("listen_port"), "the unknown key is not named\n{run}");
    assert!(run.stderr.contains(&config.display().to_string()), "the file is not named\n{run}");
}

#[test]
fn cli_missing_index_exits_2_naming_the_index() {
    let dir = TempDir::new("cli-no-index");
    let config = dir.write("smart-imaging.toml", format!("[images]\nindex = \"no-such-index.toml\"\n{DEMO_TENANT}"));
    for command in [&["--listen", "127.0.0.1:0"][..], &["check"][..]] {
        let mut args: Vec<OsString> = command.iter().map(OsString::from).collect();
        args.extend([OsString::from("--config"), config.clone().into()]);
        let run = run_cli(&args, dir.path());
        assert_eq!(run.code(), Some(2), "{command:?}: exit status\n{run}");
        assert!(run.stderr.contains("no-such-index.toml"), "{command:?}: the index is not named\n{run}");
    }
}

#[test]
fn cli_check_accepts_the_sample_configuration() {
    let run = run_cli(&["check", "--config", "smart-imaging.toml"], &repo());
    assert_eq!(run.code(), Some(0), "check of the repository's configuration\n{run}");
    // From another folder: the index path is relative to the configuration's folder (docs/operations.md,
    // Configuration).
    let dir = TempDir::new("cli-check");
    let run = run_cli(&[OsString::from("check"), "--config".into(), sample_config().into()], dir.path());
    assert_eq!(run.code(), Some(0), "check of the repository's configuration from another folder\n{run}");
}

#[test]
fn cli_index_skips_unreadable_files_and_reports_them() {
    let index = IndexFile::sample();
    let dir = TempDir::new("cli-index");
    let first = &index.studies[0].series[0].instances;
    let last = &index.studies[index.studies.len() - 1].series[0].instances[0];
    dir.write("dicom/a.dcm", first[0].file_bytes());
    dir.write("dicom/sub/b.dcm", last.file_bytes());
    let text = dir.write("dicom/notes.txt", "not a DICOM file\n");
    let truncated = dir.write("dicom/truncated.dcm", &first[1].file_bytes()[..200]);

    let run = run_cli(&[OsString::from("index"), dir.path().join("dicom").into()], dir.path());
    assert_eq!(run.code(), Some(0), "index of a folder with two good files\n{run}");
    for bad in [&text, &truncated] {
        let path = bad.canonicalize().unwrap_or_else(|_| bad.clone());
        let reported = run.stderr.lines().any(|l| l.starts_with(&format!("{}:", path.display())));
        assert!(reported, "{} is not reported on its own line\n{run}", path.display());
    }
    let written = IndexFile::load(&dir.path().join("index.toml"));
    assert_eq!(written.instance_count(), 2, "instances in the written index");
    for inst in written.studies.iter().flat_map(|s| s.instances()) {
        let on_disk = std::fs::metadata(dir.path().join(&inst.path)).map(|m| m.len()).ok();
        assert_eq!(on_disk, Some(inst.size), "indexed path {} or its size", inst.path);
    }
    let uids = sorted(written.studies.iter().flat_map(|s| s.instances()).map(|i| i.uid.clone()));
    assert_eq!(uids, sorted([first[0].uid.clone(), last.uid.clone()]), "the instances indexed");
}

#[test]
fn cli_index_of_a_folder_without_dicom_fails() {
    let dir = TempDir::new("cli-index-empty");
    dir.write("files/readme.txt", "no DICOM here\n");
    let run = run_cli(&[OsString::from("index"), dir.path().join("files").into()], dir.path());
    assert!(!run.status.success(), "index of a folder without DICOM succeeded\n{run}");
    assert!(!dir.path().join("index.toml").exists(), "an index was written for no DICOM");
}

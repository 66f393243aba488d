//! FHIR answers: Bundles, Endpoints, study tokens, and the ImagingStudy docs/api.md promises.

use serde_json::Value;

use super::*;

// ---------------------------------------------------------------------------------------------------
// FHIR.

/// The `url` of the Bundle link with this relation.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == relation)?["url"].as_str().map(str::to_string)
}

/// The resources of a Bundle's entries that match the search (not the Endpoints it includes).
pub fn resources(bundle: &Value) -> Vec<&Value> {
    let entries = bundle["entry"].as_array().map(Vec::as_slice).unwrap_or_default();
    entries.iter().filter(|e| e["search"]["mode"] != "include").map(|e| &e["resource"]).collect()
}

/// The ids of a Bundle's resources, in order.
pub fn ids(bundle: &Value) -> Vec<String> {
    resources(bundle).iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect()
}

/// The Endpoint an ImagingStudy's first `endpoint` reference points to: contained (`#id`), or the entry of
/// `bundle` whose `fullUrl` the reference is (a response-local `urn:uuid:`, `search.mode` `include`).
pub fn endpoint<'a>(bundle: &'a Value, study: &'a Value) -> &'a Value {
    let reference = study["endpoint"][0]["reference"].as_str().unwrap_or_default();
    if let Some(id) = reference.strip_prefix('#') {
        return study["contained"]
            .as_array()
            .and_then(|c| c.iter().find(|r| r["id"] == id))
            .unwrap_or_else(|| panic!("no contained resource {reference:?} in {study}"));
    }
    assert!(reference.starts_with("urn:uuid:"), "endpoint reference {reference:?} is neither #id nor urn:uuid:");
    let entry = bundle["entry"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["fullUrl"] == reference))
        .unwrap_or_else(|| panic!("no entry {reference:?} on the study's page: {bundle}"));
    assert_eq!(entry["search"]["mode"], "include", "the Endpoint entry {reference}");
    &entry["resource"]
}

/// The WADO-RS base address of an ImagingStudy of `bundle`: `{base}/{tenant}/wado/{studyToken}`.
pub fn wado_address(bundle: &Value, study: &Value) -> String {
    let endpoint = endpoint(bundle, study);
    endpoint["address"].as_str().unwrap_or_else(|| panic!("Endpoint without an address: {endpoint}")).to_string()
}

/// The study token in a WADO-RS address: its last path segment.
pub fn study_token(address: &str) -> &str {
    address.rsplit('/').next().unwrap_or_default()
}

/// Searches `path` (an ImagingStudy search on some tenant) and returns study id → WADO-RS address.
pub fn addresses(server: &Server, path: &str) -> Vec<(String, String)> {
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "search {path}: {}", reply.text());
    let bundle = reply.json();
    resources(&bundle)
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap_or_default().to_string(), wado_address(&bundle, r)))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// The SMART Imaging ImagingStudy (docs/api.md).

pub const STUDY_PROFILE: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/smart-imaging-study";
pub const REQUIRES_TOKEN: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/requires-access-token";
pub const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// What an ImagingStudy must say beyond what the index holds.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// `http://ADDR` of the server.
    pub base: &'a str,
    pub tenant: &'a str,
    /// The index's `written`, served as `meta.lastUpdated`.
    pub written: &'a str,
    /// `subject.reference`.
    pub subject: &'a str,
}

/// A DICOM person name `Family^Given` as a display name `Given Family`.
pub fn display_name(pn: &str) -> String {
    let parts: Vec<&str> = pn.split('^').collect();
    let (family, given) = (parts.first().copied().unwrap_or_default(), parts.get(1).copied().unwrap_or_default());
    [given, family].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

/// Checks every field docs/api.md promises of an ImagingStudy against the indexed study, except `started`,
/// which the caller checks against literal values.
pub fn assert_imaging_study(bundle: &Value, study: &Value, indexed: &IndexStudy, expect: Expect) {
    let uid = indexed.uid.as_str();
    let at = |field: &str| format!("ImagingStudy {uid}: {field}");
    assert_eq!(study["resourceType"], "ImagingStudy", "{}", at("resourceType"));
    assert_eq!(study["id"], uid, "{}", at("id"));
    assert_eq!(study["meta"]["lastUpdated"], expect.written, "{}", at("meta.lastUpdated is not the index's written"));
    assert!(
        study["meta"]["profile"].as_array().is_some_and(|p| p.iter().any(|p| p == STUDY_PROFILE)),
        "{}",
        at("meta.profile lacks the SMART Imaging profile")
    );
    assert!(
        study["identifier"].as_array().is_some_and(|ids| ids
            .iter()
            .any(|i| i["system"] == "urn:dicom:uid" && i["value"] == format!("urn:oid:{uid}"))),
        "{}: {}",
        at("no identifier urn:dicom:uid / urn:oid:UID"),
        study["identifier"]
    );
    assert_eq!(study["status"], "available", "{}", at("status"));
    assert_eq!(study["subject"]["reference"], expect.subject, "{}", at("subject.reference"));
    assert_eq!(study["subject"]["display"], display_name(&indexed.patient_name), "{}", at("subject.display"));
    assert_eq!(
        study["referrer"]["display"],
        display_name(&indexed.referring_physician_name),
        "{}",
        at("referrer.display")
    );
    assert_eq!(study["description"], indexed.description.as_str(), "{}", at("description"));

    let modalities = study["modality"].as_array().cloned().unwrap_or_default();
    assert!(modalities.iter().all(|m| m["system"] == DCM), "{}: {modalities:?}", at("modality system is not DCM"));
    let codes = sorted(modalities.iter().map(|m| m["code"].as_str().unwrap_or_default().to_string()));
    assert_eq!(codes, sorted(indexed.modalities.iter().cloned()), "{}", at("modality codes"));
    assert_eq!(study["numberOfSeries"], indexed.series.len(), "{}", at("numberOfSeries"));
    assert_eq!(study["numberOfInstances"], indexed.instance_count(), "{}", at("numberOfInstances"));

    let series = study["series"].as_array().cloned().unwrap_or_default();
    assert_eq!(series.len(), indexed.series.len(), "{}", at("series count"));
    for (se, want) in series.iter().zip(&indexed.series) {
        let at = |field: &str| format!("ImagingStudy {uid} series {}: {field}", want.uid);
        assert_eq!(se["uid"], want.uid.as_str(), "{}", at("uid (or order)"));
        assert_eq!(se["number"].as_i64(), want.number, "{}", at("number"));
        assert_eq!(se["modality"]["system"], DCM, "{}", at("modality system"));
        assert_eq!(se["modality"]["code"], want.modality.as_str(), "{}", at("modality code"));
        assert_eq!(se["description"], want.description.as_str(), "{}", at("description"));
        assert_eq!(se["numberOfInstances"], want.instances.len(), "{}", at("numberOfInstances"));
        let instances = se["instance"].as_array().cloned().unwrap_or_default();
        assert_eq!(instances.len(), want.instances.len(), "{}", at("instance count"));
        for (inst, want) in instances.iter().zip(&want.instances) {
            let at = |field: &str| format!("ImagingStudy {uid} instance {}: {field}", want.uid);
            assert_eq!(inst["uid"], want.uid.as_str(), "{}", at("uid (or order)"));
            assert_eq!(inst["number"].as_i64(), want.number, "{}", at("number"));
            assert_eq!(inst["sopClass"]["system"], "urn:ietf:rfc:3986", "{}", at("sopClass system"));
            assert_eq!(inst["sopClass"]["code"], format!("urn:oid:{}", want.sop_class), "{}", at("sopClass code"));
        }
    }

    let ep = endpoint(bundle, study);
    assert_eq!(ep["resourceType"], "Endpoint", "{}", at("the Endpoint's resourceType"));
    assert_eq!(ep["status"], "active", "{}", at("Endpoint.status"));
    assert_eq!(ep["connectionType"]["code"], "dicom-wado-rs", "{}", at("Endpoint.connectionType"));
    assert!(
        ep["payloadType"].as_array().is_some_and(|p| p
            .iter()
            .any(|t| t["coding"].as_array().is_some_and(|c| c.iter().any(|c| c["code"] == "any")))),
        "{}: {}",
        at("Endpoint.payloadType is not `any`"),
        ep["payloadType"]
    );
    assert!(
        ep["extension"]
            .as_array()
            .is_some_and(|x| x.iter().any(|x| x["url"] == REQUIRES_TOKEN && x["valueBoolean"] == true)),
        "{}: {}",
        at("Endpoint lacks requires-access-token = true"),
        ep["extension"]
    );
    let address = wado_address(bundle, study);
    let prefix = format!("{}/{}/wado/", expect.base, expect.tenant);
    let token = address
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{}: {address}", at("address is not {base}/{tenant}/wado/…")));
    assert!(
        !token.is_empty() && !token.contains('/'),
        "{}: {address}",
        at("address does not end in one study-token segment")
    );
    assert!(
        !address.ends_with('/') && !address.ends_with("/studies"),
        "{}: {address}",
        at("address is not a WADO-RS base")
    );
}

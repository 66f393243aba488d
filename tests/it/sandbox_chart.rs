//! The sandbox EHR's chart: the US Core-shaped resources of `data/chart.toml`, searched and read behind
//! their scopes, as the SMART apps of a lesson ask for them.

use serde_json::Value;

use crate::fake_ehr::{MRN_A, MRN_B};
use crate::harness::*;
use crate::sandbox_kit::*;

const TYPES: [&str; 5] = ["AllergyIntolerance", "Condition", "MedicationRequest", "Observation", "DiagnosticReport"];

/// The sample chart as the file has it: patient → type → resources.
fn chart() -> toml::Table {
    toml::from_str(&std::fs::read_to_string(data_dir().join("chart.toml")).unwrap()).unwrap()
}

/// The ids of `kind` in `patient`'s chart whose `select` holds.
fn ids_in_file(patient: &str, kind: &str, select: impl Fn(&toml::Value) -> bool) -> Vec<String> {
    let chart = chart();
    let list = chart.get(patient).and_then(|p| p.get(kind)).and_then(|k| k.as_array()).cloned().unwrap_or_default();
    let mut ids: Vec<String> =
        list.iter().filter(|r| select(r)).map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// A resource's first coding's code at `element` in the file.
fn code_at(resource: &toml::Value, element: &str) -> String {
    match resource.get(element) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => {
            let concept = v.as_array().and_then(|a| a.first()).unwrap_or(v);
            concept["coding"][0]["code"].as_str().unwrap_or_default().to_string()
        }
        None => String::new(),
    }
}

fn bundle_ids(bundle: &Value) -> Vec<String> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    assert_eq!(bundle["type"], "searchset", "{bundle}");
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// An app's token at patient `patient`'s issuer with `scope`, its `aud` that issuer.
fn app_token(s: &Sandboxed, patient: &str, scope: &str) -> String {
    let iss = format!("{}/{patient}/fhir", s.sandbox);
    let flow = Flow::new(&format!("{}/{patient}/auth/authorize", s.sandbox), &s.token_url(), &iss).set("scope", scope);
    flow.token()["access_token"].as_str().unwrap().to_string()
}

fn get_fhir(url: &str, token: &str) -> Reply {
    fetch(url, &[("Authorization", &format!("Bearer {token}")), ("Accept", "application/fhir+json")])
}

/// What the reference SMART Imaging viewer (jmandel/smart-imaging, viewer/) asks of the EHR after its
/// standalone launch with its default scopes: the Patient, then the active allergies, conditions and
/// medications, with `patient=Patient/p1` added by its client; its newer client leaves the status out.
#[test]
fn the_reference_viewers_requests_find_the_chart() {
    let s = start_sample();
    let iss = format!("{}/p1/fhir", s.sandbox);
    let token = app_token(&s, "p1", "launch/patient patient/*.rs");
    let patient = get_fhir(&format!("{iss}/Patient/p1"), &token);
    assert_eq!(patient.json()["name"][0]["text"], "Anna Müller");
    let active = |kind: &str, element: &str, code: &str| ids_in_file("p1", kind, |r| code_at(r, element) == code);
    for (query, kind, expected) in [
        (
            "AllergyIntolerance?clinical-status=active&patient=Patient%2Fp1",
            "AllergyIntolerance",
            active("AllergyIntolerance", "clinicalStatus", "active"),
        ),
        (
            "Condition?clinical-status=active&patient=Patient%2Fp1",
            "Condition",
            active("Condition", "clinicalStatus", "active"),
        ),
        (
            "MedicationRequest?status=active&patient=Patient%2Fp1",
            "MedicationRequest",
            active("MedicationRequest", "status", "active"),
        ),
        (
            "AllergyIntolerance?patient=Patient%2Fp1",
            "AllergyIntolerance",
            ids_in_file("p1", "AllergyIntolerance", |_| true),
        ),
        ("Condition?patient=Patient%2Fp1", "Condition", ids_in_file("p1", "Condition", |_| true)),
        (
            "MedicationRequest?patient=Patient%2Fp1",
            "MedicationRequest",
            ids_in_file("p1", "MedicationRequest", |_| true),
        ),
    ] {
        let reply = get_fhir(&format!("{iss}/{query}"), &token);
        assert_eq!(reply.status, 200, "{query}: {}", reply.text());
        assert!(reply.header_or_empty("content-type").starts_with("application/fhir+json"), "{query}");
        let bundle = reply.json();
        assert!(!expected.is_empty(), "the sample chart has some {kind}");
        assert_eq!(bundle_ids(&bundle), expected, "{query}");
        assert_eq!(bundle["total"], expected.len(), "{query}");
        for entry in bundle["entry"].as_array().unwrap() {
            let reference = if kind == "AllergyIntolerance" { "patient" } else { "subject" };
            assert_eq!(entry["resource"][reference]["reference"], "Patient/p1", "{query}");
            assert_eq!(entry["search"]["mode"], "match");
            assert!(entry["fullUrl"].as_str().unwrap().starts_with(&format!("{iss}/{kind}/")));
        }
    }
    assert!(
        active("AllergyIntolerance", "clinicalStatus", "active").len()
            < ids_in_file("p1", "AllergyIntolerance", |_| true).len(),
        "the status filters"
    );
}

#[test]
fn every_type_is_searched_by_category_status_and_count_and_read_by_id() {
    let s = start_sample();
    let iss = format!("{}/p1/fhir", s.sandbox);
    let token = app_token(&s, "p1", "launch/patient patient/*.rs");
    for kind in TYPES {
        let all = ids_in_file("p1", kind, |_| true);
        let bundle = get_fhir(&format!("{iss}/{kind}"), &token).json();
        assert_eq!(bundle_ids(&bundle), all, "{kind} of the token's patient, with no patient parameter");
        for id in &all {
            let read = get_fhir(&format!("{iss}/{kind}/{id}"), &token);
            assert_eq!(read.status, 200, "{kind}/{id}: {}", read.text());
            assert_eq!(
                (read.json()["resourceType"].as_str(), read.json()["id"].as_str()),
                (Some(kind), Some(id.as_str()))
            );
        }
    }
    let vitals = ids_in_file("p1", "Observation", |r| code_at(r, "category") == "vital-signs");
    let labs = ids_in_file("p1", "Observation", |r| code_at(r, "category") == "laboratory");
    assert!(!vitals.is_empty() && !labs.is_empty());
    let search = |q: &str| get_fhir(&format!("{iss}/{q}"), &token).json();
    assert_eq!(bundle_ids(&search("Observation?category=vital-signs&patient=p1")), vitals);
    let system = "http://terminology.hl7.org/CodeSystem/observation-category";
    assert_eq!(bundle_ids(&search(&format!("Observation?category={}%7Claboratory", encode(system)))), labs);
    assert_eq!(bundle_ids(&search("Observation?category=other-system%7Claboratory")), Vec::<String>::new());
    let radiology = ids_in_file("p1", "DiagnosticReport", |_| true);
    assert_eq!(bundle_ids(&search("DiagnosticReport?category=LP29684-5&status=final,preliminary")), radiology);
    let finals = ids_in_file("p1", "DiagnosticReport", |r| code_at(r, "status") == "final");
    assert_eq!(bundle_ids(&search("DiagnosticReport?status=final")), finals);
    assert!(finals.len() < radiology.len());
    // Paging: `_count` entries, the total, and a `next` link that brings the rest.
    let all = ids_in_file("p1", "Observation", |_| true);
    let first = search("Observation?_count=2");
    assert_eq!((first["entry"].as_array().unwrap().len(), first["total"].as_u64()), (2, Some(all.len() as u64)));
    let mut seen = bundle_ids(&first);
    let mut page = first;
    while let Some(next) = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").cloned() {
        page = get_fhir(next["url"].as_str().unwrap(), &token).json();
        seen.extend(bundle_ids(&page));
        assert!(seen.len() <= all.len(), "{seen:?}");
    }
    seen.sort();
    assert_eq!(seen, all, "the next links bring every entry once");
    let metadata = fetch(&format!("{iss}/metadata"), &[]).json();
    let served: Vec<&str> =
        metadata["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    for kind in TYPES.iter().chain(&["Patient"]) {
        assert!(served.contains(kind), "metadata lists {kind}: {served:?}");
    }
}

#[test]
fn each_radiology_report_names_its_imaging_study_by_identifier() {
    let s = start_sample();
    let index = IndexFile::sample();
    for (patient, mrn) in [("p1", MRN_A), ("p2", MRN_B)] {
        let token = app_token(&s, patient, "launch/patient patient/DiagnosticReport.rs");
        let bundle = get_fhir(&format!("{}/{patient}/fhir/DiagnosticReport", s.sandbox), &token).json();
        let mut named: Vec<String> = Vec::new();
        for entry in bundle["entry"].as_array().unwrap() {
            let report = &entry["resource"];
            let study = &report["imagingStudy"][0]["identifier"];
            assert_eq!(study["system"], "urn:dicom:uid", "{report}");
            named.push(study["value"].as_str().unwrap().trim_start_matches("urn:oid:").to_string());
            assert!(report["conclusion"].as_str().is_some_and(|c| !c.is_empty()), "{report}");
            let form = &report["presentedForm"][0];
            assert!(form["contentType"].as_str().unwrap().starts_with("text/plain"), "{report}");
            use base64::Engine as _;
            let text = base64::engine::general_purpose::STANDARD.decode(form["data"].as_str().unwrap()).unwrap();
            assert!(String::from_utf8(text).unwrap().contains("Impression"), "{report}");
        }
        named.sort();
        let studies = sorted(index.studies_of(mrn).iter().map(|st| st.uid.clone()));
        assert_eq!(named, studies, "one report per imaging study of {patient}");
    }
}

#[test]
fn each_type_is_behind_its_own_scope_and_a_patient_scope_sees_its_patient_only() {
    let s = start_sample();
    let iss = format!("{}/p1/fhir", s.sandbox);
    let conditions = app_token(&s, "p1", "launch/patient patient/Condition.rs");
    assert_eq!(get_fhir(&format!("{iss}/Condition?patient=p1"), &conditions).status, 200);
    for refused in ["AllergyIntolerance?patient=p1", "Observation", "DiagnosticReport/p1-report-ct-chest"] {
        let reply = get_fhir(&format!("{iss}/{refused}"), &conditions);
        assert_eq!(reply.status, 403, "{refused} with patient/Condition.rs only: {}", reply.text());
    }
    let v1 = app_token(&s, "p1", "launch/patient patient/Observation.read");
    assert_eq!(get_fhir(&format!("{iss}/Observation"), &v1).status, 200, "v1 .read searches");
    assert_eq!(get_fhir(&format!("{iss}/Observation/p1-lab-creatinine"), &v1).status, 200, "and reads");
    let read_only = app_token(&s, "p1", "launch/patient patient/Observation.r");
    assert_eq!(get_fhir(&format!("{iss}/Observation/p1-lab-creatinine"), &read_only).status, 200);
    assert_eq!(get_fhir(&format!("{iss}/Observation"), &read_only).status, 403, ".r does not search");
    let restricted = app_token(&s, "p1", "launch/patient patient/Observation.rs?category=laboratory");
    assert_eq!(get_fhir(&format!("{iss}/Observation"), &restricted).status, 403, "a restricted scope grants nothing");
    let all = app_token(&s, "p1", "launch/patient patient/*.rs");
    let other = get_fhir(&format!("{iss}/Condition?patient=Patient%2Fp2"), &all);
    assert_eq!(other.status, 403, "p1's token for p2's chart: {}", other.text());
    assert_eq!(get_fhir(&format!("{iss}/Condition/p2-condition-asthma"), &all).status, 404, "p2's resource");
    assert_eq!(fetch(&format!("{iss}/Condition?patient=p1"), &[]).status, 401, "no token");
    assert_eq!(get_fhir(&format!("{iss}/Condition?patient=p1"), "not-a-token").status, 401);
    // A backend client reads any patient's chart with a system/ scope, and nothing without one.
    let backend = s.backend_token();
    assert_eq!(get_fhir(&format!("{iss}/Condition?patient=p2"), &backend).status, 403, "system/Patient.rs only");
    let reply = s.client_credentials(&s.assertion(|_| {}), "system/*.rs");
    let wide = reply.json()["access_token"].as_str().unwrap().to_string();
    let p2 = get_fhir(&format!("{iss}/Condition?patient=p2"), &wide).json();
    assert_eq!(bundle_ids(&p2), ids_in_file("p2", "Condition", |_| true));
}

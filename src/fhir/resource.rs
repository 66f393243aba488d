//! ImagingStudy resources of the SMART Imaging profile (SPEC §5.1), each with its contained WADO-RS Endpoint.
//!
//! All of a study's resource but two values is the same for every request, so it is serialized once, on first
//! use, and kept as text pieces; a request only fills in the two values that are its own: the Endpoint address
//! (which carries a freshly sealed study token) and the subject (which names the patient of the grant). This
//! keeps a search of a patient with many studies at the cost of copying text, not of building JSON trees.
//!
//! Invariants: every byte written is serde_json output, or a JSON string serde_json escaped, spliced where
//! serde_json put a placeholder string; a study whose own text happens to contain a placeholder is rendered
//! the slow way, never spliced wrongly; the cache holds one entry per indexed study and no more.

use serde_json::{Value, json};
use std::sync::OnceLock;

use crate::auth::Grant;
use crate::config::{Lookup, Tenant};
use crate::fhir::{person_name, study_token_expiry};
use crate::http::ApiError;
use crate::index::Study;
use crate::routes::App;
use crate::time::dicom_to_fhir;
use crate::token::Claims;

const STUDY_PROFILE: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/smart-imaging-study";
const REQUIRES_TOKEN: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/requires-access-token";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// Placeholders, as JSON strings, for the two per-request values.
const ADDRESS: &str = "\u{1}smart-imaging:address\u{1}";
const SUBJECT: &str = "\u{1}smart-imaging:subject\u{1}";

/// A study's resource as serialized text around the two per-request values, or `None` when the placeholders
/// could not be found exactly once each.
#[derive(Debug)]
pub struct Pieces(Option<Vec<Piece>>);

#[derive(Debug)]
enum Piece {
    Text(String),
    Address,
    Subject,
}

/// One cache slot per indexed study, filled on first use.
#[derive(Debug)]
pub struct Cache(Vec<OnceLock<Pieces>>);

impl Cache {
    pub fn new(studies: usize) -> Cache {
        Cache((0..studies).map(|_| OnceLock::new()).collect())
    }
}

/// Writes the ImagingStudy of `st` for this request.
pub fn write_study(
    app: &App,
    tenant: &Tenant,
    grant: &Grant,
    st: &Study,
    now: u64,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    let token = mint(app, tenant, grant, st, now)?;
    let address = format!("{}/{}/wado/{token}", app.base_url, tenant.name);
    let subject = subject(tenant, grant, st);
    let slot = app.index.position(&st.uid).and_then(|i| app.studies.0.get(i));
    let pieces = slot.map(|slot| slot.get_or_init(|| split(app, st)));
    let written = match pieces.and_then(|p| p.0.as_ref()) {
        Some(pieces) => {
            out.reserve(pieces.iter().map(|p| if let Piece::Text(t) = p { t.len() } else { 256 }).sum());
            pieces.iter().try_for_each(|piece| match piece {
                Piece::Text(text) => {
                    out.extend_from_slice(text.as_bytes());
                    Ok(())
                }
                Piece::Address => serde_json::to_writer(&mut *out, &address),
                Piece::Subject => serde_json::to_writer(&mut *out, &subject),
            })
        }
        None => serde_json::to_writer(&mut *out, &resource(app, st, Value::String(address), subject)),
    };
    written.map_err(|e| ApiError::Internal(format!("cannot write an ImagingStudy: {e}")))
}

/// Seals the study token of the Endpoint address (SPEC §5.2).
fn mint(app: &App, tenant: &Tenant, grant: &Grant, st: &Study, now: u64) -> Result<String, ApiError> {
    let claims = Claims {
        tenant: tenant.name.clone(),
        study: st.uid.clone(),
        patient: grant.patient.as_ref().map(|p| p.id.clone()),
        patient_ids: vec![st.patient_id.clone()],
        expires: study_token_expiry(now, app.config.study_token_ttl, grant.expires),
    };
    app.sealer.seal(&claims).map_err(ApiError::Internal)
}

/// The subject: a reference to the grant's patient when the study is theirs (or the tenant shows only their
/// studies), else the DICOM PatientID as an identifier; with the DICOM name as display.
fn subject(tenant: &Tenant, grant: &Grant, st: &Study) -> Value {
    let mut subject = serde_json::Map::new();
    match &grant.patient {
        Some(p) if p.owns(&st.patient_id) || tenant.lookup == Lookup::StudiesByContext => {
            subject.insert("reference".into(), json!(p.reference));
        }
        _ => {
            subject.insert("identifier".into(), json!({"value": st.patient_id}));
        }
    }
    if let Some(name) = person_name(&st.patient_name) {
        subject.insert("display".into(), json!(name));
    }
    Value::Object(subject)
}

/// Serializes the study with placeholders and cuts the text at them. A placeholder is a JSON string, so
/// serde_json writes it with its quotes; DICOM text holding the same characters would be escaped the same
/// way, which is why each must be found exactly once before the cut is trusted.
fn split(app: &App, st: &Study) -> Pieces {
    let text = resource(app, st, json!(ADDRESS), json!(SUBJECT)).to_string();
    let (address, subject) = (json!(ADDRESS).to_string(), json!(SUBJECT).to_string());
    if text.matches(&address).count() != 1 || text.matches(&subject).count() != 1 {
        return Pieces(None);
    }
    let (Some(at_address), Some(at_subject)) = (text.find(&address), text.find(&subject)) else {
        return Pieces(None);
    };
    let mut marks = [(at_address, address.len(), Piece::Address), (at_subject, subject.len(), Piece::Subject)];
    marks.sort_by_key(|(at, _, _)| *at);
    let mut pieces = Vec::with_capacity(5);
    let mut from = 0;
    for (at, len, piece) in marks {
        pieces.push(Piece::Text(text[from..at].to_string()));
        pieces.push(piece);
        from = at + len;
    }
    pieces.push(Piece::Text(text[from..].to_string()));
    Pieces(Some(pieces))
}

/// One ImagingStudy with the given Endpoint address and subject.
fn resource(app: &App, st: &Study, address: Value, subject: Value) -> Value {
    let offset = crate::config::normalise_offset(&st.timezone_offset).unwrap_or_else(|| app.config.timezone.clone());
    let coding = |code: &str| json!({"system": DCM, "code": code});
    let series: Vec<Value> = st
        .series
        .iter()
        .map(|se| {
            let instances: Vec<Value> = se
                .instances
                .iter()
                .map(|i| {
                    let mut v = json!({
                        "uid": i.uid,
                        "sopClass": {"system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{}", i.sop_class)},
                    });
                    if let Some(n) = i.number.filter(|n| *n >= 0) {
                        v["number"] = json!(n);
                    }
                    v
                })
                .collect();
            let mut v = json!({
                "uid": se.uid,
                "modality": coding(&se.modality),
                "numberOfInstances": se.instances.len(),
                "instance": instances,
            });
            if let Some(n) = se.number.filter(|n| *n >= 0) {
                v["number"] = json!(n);
            }
            if !se.description.is_empty() {
                v["description"] = json!(se.description);
            }
            v
        })
        .collect();

    let mut study = json!({
        "resourceType": "ImagingStudy",
        "id": st.uid,
        "meta": {"lastUpdated": app.index.file.written, "profile": [STUDY_PROFILE]},
        "contained": [{
            "resourceType": "Endpoint",
            "id": "wado",
            "extension": [{"url": REQUIRES_TOKEN, "valueBoolean": true}],
            "status": "active",
            "connectionType": {
                "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                "code": "dicom-wado-rs"
            },
            "payloadType": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                "code": "any"
            }]}],
            "address": address,
        }],
        "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:{}", st.uid)}],
        "status": "available",
        "subject": subject,
        "modality": st.modalities.iter().map(|m| coding(m)).collect::<Vec<_>>(),
        "endpoint": [{"reference": "#wado"}],
        "numberOfSeries": st.series.len(),
        "numberOfInstances": st.instance_count(),
        "series": series,
    });
    if let Some(started) = dicom_to_fhir(&st.date, &st.time, &offset) {
        study["started"] = json!(started);
    }
    if let Some(name) = person_name(&st.referring_physician_name) {
        study["referrer"] = json!({"display": name});
    }
    if !st.description.is_empty() {
        study["description"] = json!(st.description);
    }
    if !st.accession_number.is_empty() {
        if let Some(ids) = study["identifier"].as_array_mut() {
            ids.push(json!({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
                "value": st.accession_number,
            }));
        }
    }
    study
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Authorization, Config};
    use crate::index::{Index, IndexFile, Instance, Series};
    use crate::token::Sealer;
    use std::path::{Path, PathBuf};

    fn app(description: &str) -> App {
        let config = Config::parse(
            "[images]\nindex = \"i.toml\"\n[tenants.demo]\nauthorization.type = \"mock\"\n\
             authorization.patient = { id = \"p1\", identifier = [{ value = \"MRN\" }] }\n\
             images.lookup = \"studies-by-context\"\n",
            Path::new("/x/c.toml"),
        )
        .unwrap();
        let study = Study {
            uid: "1.2.3".into(),
            patient_id: "MRN".into(),
            patient_name: "Doe^Jane".into(),
            description: description.into(),
            date: "20240105".into(),
            series: vec![Series {
                uid: "1.2.3.1".into(),
                modality: "CT".into(),
                instances: vec![Instance {
                    uid: "1.2.3.1.1".into(),
                    sop_class: "1.2".into(),
                    path: "a.dcm".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let file = IndexFile { written: "2026-01-01T00:00:00Z".into(), studies: vec![study] };
        let index = Index::new(file, PathBuf::from("/x")).unwrap();
        App::new(config, index, Sealer::from_secret(b"0123456789abcdef"), "http://h".into())
    }

    /// Renders the study twice (the first fills the cache) and checks both against the slow way.
    fn check(description: &str) {
        let app = app(description);
        let tenant = &app.config.tenants["demo"];
        let Authorization::Mock { patient } = &tenant.auth else { unreachable!() };
        let grant = Grant { patient: patient.clone(), expires: None };
        let st = &app.index.studies()[0];
        for _ in 0..2 {
            let mut out = Vec::new();
            write_study(&app, tenant, &grant, st, 0, &mut out).unwrap();
            let got: Value = serde_json::from_slice(&out).expect("valid JSON");
            let address = got["contained"][0]["address"].clone();
            assert!(address.as_str().unwrap().starts_with("http://h/demo/wado/"), "{address}");
            let expected = resource(&app, st, address, subject(tenant, &grant, st));
            assert_eq!(got, expected, "{description:?}");
            assert_eq!(got["subject"]["reference"], "Patient/p1");
        }
    }

    #[test]
    fn spliced_resources_equal_built_ones() {
        check("CT CHEST");
        check("quotes \" and \\ backslashes");
    }

    #[test]
    fn text_that_holds_a_placeholder_is_rendered_the_slow_way() {
        check(ADDRESS);
        check(SUBJECT);
        let placeholder = app(ADDRESS);
        assert!(split(&placeholder, &placeholder.index.studies()[0]).0.is_none());
        let plain = app("plain");
        assert!(split(&plain, &plain.index.studies()[0]).0.is_some());
    }
}

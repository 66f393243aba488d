//! The patient in context: who the access token speaks for, and which DICOM PatientIDs are theirs.
//!
//! Invariants: the DICOM PatientIDs of a patient are chosen from its identifiers in one place
//! (`IdSelector::select`), the same way for mock and smart-on-fhir tenants (docs/api.md, Choices: Patient
//! matching): by default only identifiers typed `MR`; whether a study is the patient's is decided in one
//! place (`PatientContext::owns`), with IssuerOfPatientID and the identifier's system agreeing through the
//! configured map whenever both are present; this module does no I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One `Patient.identifier`, reduced to what selection needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    pub system: Option<String>,
    pub value: String,
    /// A v2-0203 code such as `MR`, from `identifier.type.coding[].code`.
    pub type_code: Option<String>,
}

/// `images.patientId` and `images.issuers`: which identifiers count as DICOM PatientIDs, and which DICOM
/// IssuerOfPatientID stands for which identifier system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSelector {
    pub system: Option<String>,
    pub type_code: Option<String>,
    /// Every identifier counts, whatever its type or system (`images.patientId = { any = true }`).
    pub any: bool,
    /// DICOM IssuerOfPatientID → `Patient.identifier.system`.
    pub issuers: Arc<BTreeMap<String, String>>,
}

/// The identifier type that the default selection takes.
pub const MEDICAL_RECORD_NUMBER: &str = "MR";

impl IdSelector {
    /// With `any`, every identifier; with a system and/or type configured, the identifiers that match all
    /// that is configured; by default, only the identifiers typed `MR` (none typed MR: none at all).
    pub fn select<'a>(&self, ids: &'a [Identifier]) -> Vec<&'a Identifier> {
        let default_type = (self.system.is_none() && self.type_code.is_none()).then_some(MEDICAL_RECORD_NUMBER);
        let type_code = self.type_code.as_deref().or(default_type);
        ids.iter()
            .filter(|i| self.any || self.system.is_none() || i.system == self.system)
            .filter(|i| self.any || type_code.is_none() || i.type_code.as_deref() == type_code)
            .collect()
    }
}

/// One DICOM PatientID of a patient, with the system of the identifier it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PatientId {
    value: String,
    system: Option<String>,
}

/// The resolved patient of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientContext {
    /// The FHIR logical id at the EHR.
    pub id: String,
    /// The reference used as `ImagingStudy.subject.reference`: `Patient/id` or absolute.
    pub reference: String,
    pub display: Option<String>,
    /// The DICOM PatientIDs that belong to this patient, sorted.
    ids: Vec<PatientId>,
    issuers: Arc<BTreeMap<String, String>>,
}

impl PatientContext {
    pub fn new(
        id: String,
        reference: String,
        display: Option<String>,
        identifiers: Vec<Identifier>,
        selector: &IdSelector,
    ) -> PatientContext {
        let mut ids: Vec<PatientId> = selector
            .select(&identifiers)
            .into_iter()
            .map(|i| PatientId { value: i.value.clone(), system: i.system.clone() })
            .collect();
        ids.sort();
        ids.dedup();
        PatientContext { id, reference, display, ids, issuers: Arc::clone(&selector.issuers) }
    }

    /// The DICOM PatientIDs that belong to this patient, sorted (a value may repeat, under other systems).
    pub fn patient_ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(|id| id.value.as_str())
    }

    /// Is a study with this DICOM PatientID and IssuerOfPatientID (empty when absent) the patient's? The
    /// PatientID must be one of the patient's; when the study names an issuer and that identifier a system,
    /// `images.issuers` must map the issuer to that system.
    pub fn owns(&self, dicom_patient_id: &str, issuer: &str) -> bool {
        self.ids.iter().any(|id| {
            id.value == dicom_patient_id
                && match (&id.system, issuer) {
                    (None, _) | (_, "") => true,
                    (Some(system), issuer) => self.issuers.get(issuer) == Some(system),
                }
        })
    }
}

/// The logical id in a patient reference, where `base` is the FHIR base an absolute reference must be under
/// (docs/api.md, Patient references): `123`, `Patient/123` or `{base}/Patient/123` → `123`. Anything else (another
/// base, another resource type, `Group/1/Patient/123`, an empty id, a version suffix) is `None`.
pub fn normalise_reference<'a>(value: &'a str, base: &str) -> Option<&'a str> {
    let value = value.trim();
    let base = base.trim_end_matches('/');
    let id = match value.strip_prefix("Patient/") {
        Some(id) => id,
        None => match value.strip_prefix(base).filter(|_| !base.is_empty()) {
            Some(rest) => rest.strip_prefix("/Patient/")?,
            None => value,
        },
    };
    is_fhir_id(id).then_some(id)
}

/// FHIR R4 `id`: 1 to 64 of `[A-Za-z0-9\-\.]`; and not `.` or `..`, which a URL would take for a path step.
pub fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && id != "."
        && id != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(system: Option<&str>, value: &str, type_code: Option<&str>) -> Identifier {
        Identifier { system: system.map(Into::into), value: value.into(), type_code: type_code.map(Into::into) }
    }

    fn values(selector: &IdSelector, ids: &[Identifier]) -> Vec<String> {
        selector.select(ids).into_iter().map(|i| i.value.clone()).collect()
    }

    #[test]
    fn default_selection_is_mr_only() {
        let ids = vec![id(Some("ssn"), "123", Some("SS")), id(Some("h"), "MRN-1", Some("MR"))];
        assert_eq!(values(&IdSelector::default(), &ids), vec!["MRN-1"]);
        let untyped = vec![id(None, "A", None), id(Some("insurer"), "B", Some("MB"))];
        assert!(values(&IdSelector::default(), &untyped).is_empty(), "none typed MR: no PatientIDs");
        let any = IdSelector { any: true, ..IdSelector::default() };
        assert_eq!(values(&any, &untyped), vec!["A", "B"], "any = true: every identifier");
    }

    #[test]
    fn configured_selection_by_system_and_type() {
        let ids = vec![id(Some("a"), "1", Some("MR")), id(Some("b"), "2", Some("MR")), id(Some("b"), "3", None)];
        let by_system = IdSelector { system: Some("b".into()), ..IdSelector::default() };
        assert_eq!(values(&by_system, &ids), vec!["2", "3"]);
        let both = IdSelector { system: Some("b".into()), type_code: Some("MR".into()), ..IdSelector::default() };
        assert_eq!(values(&both, &ids), vec!["2"]);
        let none = IdSelector { system: Some("c".into()), ..IdSelector::default() };
        assert!(values(&none, &ids).is_empty());
        let by_type = IdSelector { type_code: Some("SS".into()), ..IdSelector::default() };
        assert!(values(&by_type, &ids).is_empty());
    }

    #[test]
    fn issuers_must_agree_with_systems_through_the_map() {
        let ids = vec![id(Some("http://h"), "MRN-1", Some("MR")), id(None, "MRN-2", Some("MR"))];
        let issuers = Arc::new(BTreeMap::from([("HOSP-A".to_string(), "http://h".to_string())]));
        let selector = IdSelector { issuers, ..IdSelector::default() };
        let p = PatientContext::new("p".into(), "Patient/p".into(), None, ids.clone(), &selector);
        assert!(p.owns("MRN-1", ""), "no issuer in the study: the value decides");
        assert!(p.owns("MRN-1", "HOSP-A"), "the map says HOSP-A is http://h");
        assert!(!p.owns("MRN-1", "HOSP-B"), "an issuer the map does not name");
        assert!(p.owns("MRN-2", "HOSP-B"), "an identifier without a system: the value decides");
        assert!(!p.owns("MRN-3", ""), "another PatientID");
        let unmapped = PatientContext::new("p".into(), "Patient/p".into(), None, ids, &IdSelector::default());
        assert!(!unmapped.owns("MRN-1", "HOSP-A"), "no map: an issuer and a system never agree");
    }

    #[test]
    fn references() {
        let base = "https://ehr.example/fhir";
        let r = |v| normalise_reference(v, base);
        assert_eq!(r("123"), Some("123"));
        assert_eq!(r("Patient/123"), Some("123"));
        assert_eq!(r("https://ehr.example/fhir/Patient/p-1"), Some("p-1"));
        assert_eq!(
            normalise_reference("https://ehr.example/fhir/Patient/p-1", "https://ehr.example/fhir/"),
            Some("p-1")
        );
        assert_eq!(r("https://evil.example/fhir/Patient/p-1"), None, "another base");
        assert_eq!(r("https://ehr.example/fhirx/Patient/p-1"), None, "a base that only starts the same");
        assert_eq!(r("https://ehr.example/fhir/Group/1/Patient/p-1"), None);
        assert_eq!(r("Group/1/Patient/1"), None);
        assert_eq!(r("Group/1"), None);
        assert_eq!(r("XPatient/1"), None);
        assert_eq!(r("Patient/"), None);
        assert_eq!(r("Patient/1/_history/2"), None);
        assert_eq!(r("Patient/.."), None);
        assert_eq!(r(".."), None);
        assert_eq!(r(""), None);
        assert_eq!(normalise_reference("x", ""), Some("x"));
        assert_eq!(normalise_reference("/Patient/x", ""), None, "an empty base makes no absolute reference");
    }
}

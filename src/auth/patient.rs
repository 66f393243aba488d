//! The patient in context: who the access token speaks for, and which DICOM PatientIDs are theirs.
//!
//! Invariants: the DICOM PatientIDs of a patient are chosen from its identifiers in one place
//! (`IdSelector::select`), the same way for mock and smart-on-fhir tenants (README, Configuration; Connecting to an EHR); this module does
//! no I/O.

use serde::{Deserialize, Serialize};

/// One `Patient.identifier`, reduced to what selection needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    pub system: Option<String>,
    pub value: String,
    /// A v2-0203 code such as `MR`, from `identifier.type.coding[].code`.
    pub type_code: Option<String>,
}

/// `images.patientId`: which identifiers count as DICOM PatientIDs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSelector {
    pub system: Option<String>,
    pub type_code: Option<String>,
}

impl IdSelector {
    /// With a system and/or type configured, the identifiers that match all that is configured. Without,
    /// the identifiers typed `MR` when there are any, else all of them.
    pub fn select(&self, ids: &[Identifier]) -> Vec<String> {
        let chosen: Vec<&Identifier> = if self.system.is_some() || self.type_code.is_some() {
            ids.iter()
                .filter(|i| self.system.is_none() || i.system == self.system)
                .filter(|i| self.type_code.is_none() || i.type_code == self.type_code)
                .collect()
        } else {
            let mr: Vec<&Identifier> = ids.iter().filter(|i| i.type_code.as_deref() == Some("MR")).collect();
            if mr.is_empty() { ids.iter().collect() } else { mr }
        };
        let mut values: Vec<String> = chosen.into_iter().map(|i| i.value.clone()).collect();
        values.sort();
        values.dedup();
        values
    }
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
    pub dicom_ids: Vec<String>,
}

impl PatientContext {
    pub fn new(
        id: String,
        reference: String,
        display: Option<String>,
        identifiers: Vec<Identifier>,
        selector: &IdSelector,
    ) -> PatientContext {
        let dicom_ids = selector.select(&identifiers);
        PatientContext { id, reference, display, dicom_ids }
    }

    pub fn owns(&self, dicom_patient_id: &str) -> bool {
        self.dicom_ids.iter().any(|id| id == dicom_patient_id)
    }
}

/// The logical id in a patient reference, where `base` is the FHIR base an absolute reference must be
/// under (README, HTTP API): `123`, `Patient/123` or `{base}/Patient/123` → `123`. Anything else (another
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

    #[test]
    fn default_selection_prefers_mr() {
        let ids = vec![id(Some("ssn"), "123", Some("SS")), id(Some("h"), "MRN-1", Some("MR"))];
        assert_eq!(IdSelector::default().select(&ids), vec!["MRN-1"]);
        let untyped = vec![id(None, "A", None), id(None, "B", None)];
        assert_eq!(IdSelector::default().select(&untyped), vec!["A", "B"]);
    }

    #[test]
    fn configured_selection_by_system_and_type() {
        let ids = vec![id(Some("a"), "1", Some("MR")), id(Some("b"), "2", Some("MR")), id(Some("b"), "3", None)];
        let by_system = IdSelector { system: Some("b".into()), type_code: None };
        assert_eq!(by_system.select(&ids), vec!["2", "3"]);
        let both = IdSelector { system: Some("b".into()), type_code: Some("MR".into()) };
        assert_eq!(both.select(&ids), vec!["2"]);
        let none = IdSelector { system: Some("c".into()), type_code: None };
        assert!(none.select(&ids).is_empty());
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

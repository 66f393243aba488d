//! Why studies would match nobody: the warnings `smart-imaging check` prints and the server logs once at start,
//! from the configuration and the index alone (no EHR is asked). For each `studies-by-context` tenant: the
//! IssuerOfPatientID values of the index that its `images.issuers` does not map, a mock patient that owns no
//! study, and a tenant that can see no study at all.
//!
//! Invariant: these are warnings, never errors: a lab may configure a tenant before its images arrive.

use std::collections::BTreeMap;

use crate::config::{Authorization, Config, Tenant};
use crate::index::Index;

/// One line per finding, each naming the tenant and the key to look at.
pub fn warnings(config: &Config, index: &Index) -> Vec<String> {
    let mut out = Vec::new();
    for tenant in config.tenants.values() {
        if index.studies().len() == 0 {
            out.push(format!(
                "tenant {}: can see no study: the index {} is empty",
                tenant.name,
                config.index_path.display()
            ));
            continue;
        }
        if tenant.visibility.by_context() {
            by_context(tenant, index, &mut out);
        }
    }
    out
}

fn by_context(tenant: &Tenant, index: &Index, out: &mut Vec<String>) {
    let name = &tenant.name;
    let issuers = &tenant.id_selector.issuers;
    let mut unmapped: BTreeMap<&str, usize> = BTreeMap::new();
    for study in index.studies() {
        let issuer = study.issuer_of_patient_id();
        if !issuer.is_empty() && !issuers.contains_key(issuer) {
            *unmapped.entry(issuer).or_default() += 1;
        }
    }
    for (issuer, n) in &unmapped {
        let studies = if *n == 1 { "study carries" } else { "studies carry" };
        out.push(format!(
            "tenant {name}: {n} {studies} IssuerOfPatientID {issuer:?}, which images.issuers does not map: they \
             match no patient identifier that has a system (add \"{issuer}\" = \"SYSTEM\" to \
             tenants.{name}.images.issuers)"
        ));
    }
    match &tenant.auth {
        Authorization::Mock { patient: Some(patient) } => {
            let owned = index
                .studies_of_patients(patient.patient_ids())
                .into_iter()
                .filter(|s| patient.owns(s.patient_id(), s.issuer_of_patient_id()))
                .count();
            if owned == 0 {
                let ids: Vec<&str> = patient.patient_ids().collect();
                out.push(format!(
                    "tenant {name}: can see no study: its mock patient {} owns none (DICOM PatientIDs {ids:?}; see \
                     tenants.{name}.authorization.patient and images.patientId)",
                    patient.id
                ));
            }
        }
        Authorization::Mock { patient: None } => {}
        Authorization::SmartOnFhir(_) => {
            // Identifiers selected by system all have that system: a study can be theirs only without an
            // issuer, or with one mapped to that system.
            if let Some(system) = &tenant.id_selector.system {
                let reachable = index.studies().any(|s| {
                    let issuer = s.issuer_of_patient_id();
                    issuer.is_empty() || issuers.get(issuer) == Some(system)
                });
                if !reachable {
                    out.push(format!(
                        "tenant {name}: can see no study: every study carries an IssuerOfPatientID that \
                         images.issuers does not map to {system:?}, the system of its patients' identifiers"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Five studies of PatientID MRN-1 (three issued by SYNTHETIC GENERAL HOSPITAL, one by HOSP-A) and one
    /// of MRN-2 with no issuer.
    fn index(issuers: &[(&str, &str)]) -> Index {
        let mut text = String::from("written = \"2026-01-01T00:00:00Z\"\n");
        for (n, (patient, issuer)) in issuers.iter().enumerate() {
            let issuer =
                if issuer.is_empty() { String::new() } else { format!("issuer_of_patient_id = \"{issuer}\"\n") };
            text.push_str(&format!(
                "[[study]]\nuid = \"1.2.3.{n}\"\npatient_id = \"{patient}\"\n{issuer}\
                 [[study.series]]\nuid = \"1.2.3.{n}.1\"\n[[study.series.instance]]\nuid = \"1.2.3.{n}.1.1\"\n\
                 sop_class = \"1.2.840.10008.5.1.4.1.1.2\"\ntransfer_syntax = \"1.2.840.10008.1.2.1\"\n\
                 path = \"x/{n}.dcm\"\nsize = 10\n"
            ));
        }
        Index::parse(&text, Path::new("/lab/index.toml")).unwrap()
    }

    const SAMPLE: [(&str, &str); 6] = [
        ("MRN-1", "SYNTHETIC GENERAL HOSPITAL"),
        ("MRN-1", "SYNTHETIC GENERAL HOSPITAL"),
        ("MRN-1", "SYNTHETIC GENERAL HOSPITAL"),
        ("MRN-1", "HOSP-A"),
        ("MRN-2", ""),
        ("MRN-1", ""),
    ];

    fn config(tenants: &str) -> Config {
        Config::parse(&format!("[images]\nindex = \"index.toml\"\n{tenants}"), Path::new("/lab/smart-imaging.toml"))
            .unwrap()
    }

    fn mock(name: &str, value: &str, images: &str) -> String {
        format!(
            "[tenants.{name}]\nauthorization.type = \"mock\"\nauthorization.patient = {{ id = \"p1\", identifier = \
             [{{ system = \"http://h\", value = \"{value}\", type = \"MR\" }}] }}\n\
             images.lookup = \"studies-by-context\"\n{images}\n"
        )
    }

    #[test]
    fn unmapped_issuers_are_counted_per_tenant() {
        let c = config(&mock("demo", "MRN-1", "images.issuers = { \"HOSP-A\" = \"http://h\" }"));
        let w = warnings(&c, &index(&SAMPLE));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "tenant demo: 3 studies carry IssuerOfPatientID \"SYNTHETIC GENERAL HOSPITAL\", which \
                              images.issuers does not map"
            ),
            "{w:?}"
        );
        assert!(w[0].contains("tenants.demo.images.issuers"), "{w:?}");
        let all = config(
            "[tenants.open]\nauthorization = { type = \"mock\", ignorePatient = true }\nimages.lookup = \"all-studies\"\n",
        );
        assert_eq!(warnings(&all, &index(&SAMPLE)), Vec::<String>::new(), "an all-studies tenant matches no patient");
    }

    #[test]
    fn a_mock_patient_owning_no_study_is_named() {
        let c = config(&mock("demo", "MRN-9", ""));
        let w = warnings(&c, &index(&[("MRN-1", "")]));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "tenant demo: can see no study: its mock patient p1 owns none (DICOM PatientIDs [\"MRN-9\"]"
            ),
            "{w:?}"
        );
        // The patient's value, but the study's issuer is not mapped to the identifier's system: not theirs.
        let w = warnings(&config(&mock("demo", "MRN-1", "")), &index(&[("MRN-1", "HOSP-B")]));
        assert_eq!(w.len(), 2, "the unmapped issuer, and the patient owning nothing: {w:?}");
        assert!(w[1].contains("owns none"), "{w:?}");
        assert!(warnings(&config(&mock("demo", "MRN-1", "")), &index(&[("MRN-1", "")])).is_empty());
    }

    #[test]
    fn a_tenant_that_can_see_no_study_is_named() {
        let empty = Index::parse("written = \"2026-01-01T00:00:00Z\"\n", Path::new("/lab/index.toml")).unwrap();
        let w = warnings(&config(&mock("demo", "MRN-1", "")), &empty);
        assert_eq!(w, ["tenant demo: can see no study: the index /lab/index.toml is empty"]);
        let ehr = "[tenants.ehr]\nauthorization.type = \"smart-on-fhir\"\n\
                   authorization.fhirBaseUrl = \"https://ehr.example.org/fhir\"\n\
                   authorization.client = { id = \"x\", secret = \"s\" }\nimages.lookup = \"studies-by-context\"\n\
                   images.patientId = { system = \"http://h\" }\n";
        let every_study_issued: Vec<(&str, &str)> = SAMPLE[..4].to_vec();
        let w = warnings(&config(ehr), &index(&every_study_issued));
        assert_eq!(w.len(), 3, "two unmapped issuers and no study to see: {w:?}");
        assert!(w[2].starts_with("tenant ehr: can see no study: every study carries an IssuerOfPatientID"), "{w:?}");
        let mapped = format!("{ehr}images.issuers = {{ \"HOSP-A\" = \"http://h\" }}\n");
        let w = warnings(&config(&mapped), &index(&every_study_issued));
        assert_eq!(w.len(), 1, "HOSP-A's study can be seen: {w:?}");
    }
}

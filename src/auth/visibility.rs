//! Who may see which study: the one policy that ImagingStudy search and read and every DICOMweb request ask,
//! through the `Grant` of the request. A tenant's `Visibility` is chosen once from its configuration
//! (`images.lookup` and `authorization.ignorePatient`).
//!
//! Invariants: a study outside `Grant::sees` is never listed nor served; where the policy checks the
//! patient, a search names the patient in context (403 otherwise, never an empty Bundle) and a study token
//! is honoured only for the patient it was minted for, and only while the study is still theirs. A backend
//! client's system access is held to the strictest policy whatever the tenant's: the studies of the patient
//! each request names, a study token only for its patient and its client.

use super::Grant;
use crate::http::ApiError;
use crate::index::{Index, Study};

/// What a study token's claims say it was minted for (`study_token_binding` and the patient at minting).
#[derive(Debug, Clone, Copy)]
pub struct Minted<'a> {
    pub patient: Option<&'a str>,
    pub client: Option<&'a str>,
    pub token: Option<&'a str>,
}

/// Which studies a tenant shows, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// `studies-by-context`: the studies of the patient in context, to that patient alone.
    OwnStudies,
    /// `all-studies`: every study, to the patient in context alone.
    AllStudies,
    /// `studies-by-context` with `ignorePatient`: the studies of the patient in context, whoever a search
    /// names and whoever a study token was minted for.
    OwnStudiesUnchecked,
    /// `all-studies` with `ignorePatient`: every study, to any valid token.
    Everything,
}

impl Visibility {
    /// The policy of `images.lookup = "studies-by-context"` (`by_context`) or `"all-studies"`, and
    /// `authorization.ignorePatient`.
    pub fn of(by_context: bool, ignore_patient: bool) -> Visibility {
        match (by_context, ignore_patient) {
            (true, false) => Visibility::OwnStudies,
            (false, false) => Visibility::AllStudies,
            (true, true) => Visibility::OwnStudiesUnchecked,
            (false, true) => Visibility::Everything,
        }
    }

    /// Whether only the studies of the patient in context are shown.
    pub fn by_context(self) -> bool {
        matches!(self, Visibility::OwnStudies | Visibility::OwnStudiesUnchecked)
    }

    /// Whether a search must name the patient in context and a study token be used by its patient.
    pub fn checks_patient(self) -> bool {
        matches!(self, Visibility::OwnStudies | Visibility::AllStudies)
    }
}

impl Grant {
    /// Whether this grant may see `study`.
    pub fn sees(&self, study: &Study) -> bool {
        if !self.visibility.by_context() && !self.system {
            return true;
        }
        self.patient.as_ref().is_some_and(|p| p.owns(study.patient_id(), study.issuer_of_patient_id()))
    }

    /// The studies of `index` this grant sees: for a patient's own studies, those the index's PatientID
    /// table names for the patient's identifiers, no others looked at.
    pub fn visible_studies<'a>(&self, index: &'a Index) -> Result<Vec<Study<'a>>, ApiError> {
        if !self.visibility.by_context() && !self.system {
            return Ok(index.studies().collect());
        }
        let patient = self.patient.as_ref().ok_or_else(|| match self.system {
            true => ApiError::Forbidden("system access names its patient: search ImagingStudy?patient=ID".into()),
            false => no_patient(),
        })?;
        Ok(index.studies_of_patients(patient.patient_ids()).into_iter().filter(|s| self.sees(s)).collect())
    }

    /// A search for `asked` (a FHIR id, or `None` when the search names nobody): where the policy checks the
    /// patient, and always for system access, it must name the patient in context.
    pub fn may_search_for(&self, asked: Option<&str>) -> Result<(), ApiError> {
        if !self.visibility.checks_patient() && !self.system {
            return Ok(());
        }
        let context = self.patient.as_ref().ok_or_else(no_patient)?;
        let asked = asked.ok_or_else(|| ApiError::Forbidden("the patient search parameter is required".into()))?;
        if asked == context.id {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("patient {asked:?} is not the patient in context")))
        }
    }

    /// What a study token minted now under this grant is bound to, for its claims: the access token's
    /// digest (`None` on a mock tenant), and the client of system access (`None` for an app's token).
    pub fn study_token_binding(&self) -> (Option<String>, Option<String>) {
        let client = if self.system { self.client_id().map(str::to_string) } else { None };
        (self.token_digest.clone(), client)
    }

    /// A study token minted for `minted`: only the access token it was minted under may use it (so a
    /// refreshed or another app's token searches again); system access's tokens only that client's system
    /// access, and an app's token never those; where the policy checks the patient, and always for system
    /// access, only the patient it was minted for.
    pub fn may_use_study_token(&self, minted: Minted) -> Result<(), ApiError> {
        let (token, client) = self.study_token_binding();
        if minted.token != token.as_deref() {
            return Err(ApiError::Forbidden("study token is bound to another access token: search again".into()));
        }
        if minted.client != client.as_deref() {
            return Err(ApiError::Forbidden("study token is bound to another client or kind of access".into()));
        }
        let current = self.patient.as_ref().map(|p| p.id.as_str());
        if (self.visibility.checks_patient() || self.system) && (current.is_none() || current != minted.patient) {
            return Err(ApiError::Forbidden("study token is bound to another patient".into()));
        }
        Ok(())
    }

    /// The study a study token opened: where the policy checks the patient, it must still be one this grant
    /// sees, since the patient's identifiers at the EHR may have changed since the token was minted.
    pub fn may_retrieve(&self, study: &Study) -> Result<(), ApiError> {
        if (self.visibility.checks_patient() || self.system) && !self.sees(study) {
            return Err(ApiError::Forbidden("the study is not among the studies of the patient in context".into()));
        }
        Ok(())
    }
}

fn no_patient() -> ApiError {
    ApiError::Forbidden("the access token has no patient in context".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_configuration_is_one_policy() {
        let all = [
            (Visibility::of(true, false), true, true),
            (Visibility::of(false, false), false, true),
            (Visibility::of(true, true), true, false),
            (Visibility::of(false, true), false, false),
        ];
        for (policy, by_context, checks) in all {
            assert_eq!((policy.by_context(), policy.checks_patient()), (by_context, checks), "{policy:?}");
        }
        assert_eq!(Visibility::of(true, false), Visibility::OwnStudies);
        assert_eq!(Visibility::of(false, true), Visibility::Everything);
    }

    #[test]
    fn system_access_sees_only_the_named_patients_studies_whatever_the_tenant_shows() {
        use crate::auth::ehr::Who;
        use crate::auth::patient::{IdSelector, Identifier, PatientContext};
        use std::sync::Arc;
        let study = |n: u32, mrn: &str| {
            format!(
                "[[study]]\nuid = \"1.2.{n}\"\npatient_id = \"{mrn}\"\n[[study.series]]\nuid = \"1.2.{n}.1\"\n\
                 modality = \"CT\"\n[[study.series.instance]]\nuid = \"1.2.{n}.1.1\"\nsop_class = \"1.2\"\n\
                 transfer_syntax = \"1.2.840.10008.1.2.1\"\npath = \"{n}.dcm\"\nsize = 1\n"
            )
        };
        let text = format!("written = \"2026-01-01T00:00:00Z\"\n{}{}", study(1, "MRN-A"), study(2, "MRN-B"));
        let index = Index::parse(&text, std::path::Path::new("/x/index.toml")).unwrap();
        let mrn = Identifier { value: "MRN-A".into(), system: None, type_code: Some("MR".into()) };
        let a = PatientContext::new("a".into(), "Patient/a".into(), None, vec![mrn], &IdSelector::default());
        let who = Who { client_id: Some("backend".into()), subject: None };
        let claims = |patient, client, token| Minted { patient: Some(patient), client, token: Some(token) };
        for visibility in [Visibility::Everything, Visibility::AllStudies, Visibility::OwnStudiesUnchecked] {
            let token_digest = Some("digest".to_string());
            let unbound =
                Grant { patient: None, expires: None, who: who.clone(), visibility, system: true, token_digest };
            assert!(unbound.visible_studies(&index).is_err(), "{visibility:?}: system access names its patient");
            assert!(unbound.may_search_for(None).is_err(), "{visibility:?}");
            let bound = Grant { patient: Some(Arc::new(a.clone())), ..unbound };
            let seen: Vec<String> =
                bound.visible_studies(&index).unwrap().iter().map(|s| s.uid().to_string()).collect();
            assert_eq!(seen, ["1.2.1"], "{visibility:?}");
            let other = index.studies().find(|s| s.uid() == "1.2.2").unwrap();
            assert!(bound.may_retrieve(&other).is_err(), "{visibility:?}");
            assert!(bound.may_search_for(Some("b")).is_err(), "{visibility:?}");
            assert!(bound.may_use_study_token(claims("b", Some("backend"), "digest")).is_err(), "{visibility:?}");
            assert!(bound.may_use_study_token(claims("a", None, "digest")).is_err(), "{visibility:?}: an app's");
            assert!(bound.may_use_study_token(claims("a", Some("backend"), "other")).is_err(), "another token's");
            assert!(bound.may_use_study_token(claims("a", Some("backend"), "digest")).is_ok(), "{visibility:?}");
        }
    }
}

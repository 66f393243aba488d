//! The study-token check of every DICOMweb request: the token opens, is this tenant's, this study's, bound to
//! the patient of the grant (and to the backend client of system access), and the indexed study is still that
//! patient's: by the PatientIDs sealed in the token, and by those of the grant of this request.
//!
//! Invariant: every refusal is a 403 that says what failed and nothing of what the token holds; no byte of
//! the study is read before this check passes.

use crate::auth::visibility::Minted;
use crate::auth::{Access, Grant};
use crate::config::Tenant;
use crate::dicom::Uid;
use crate::http::ApiError;
use crate::index::{Index, Study};
use crate::time::now_secs;
use crate::token::Sealer;

/// Checks a study token against the request and returns the indexed study it opens, and the grant with the
/// patient of system access in context (the one the token was minted for). `named` is the study the path
/// names, which must be the sealed one; a path that names none (the study search at the Endpoint address
/// itself) gets the sealed study. Every failure is a 403 that says what failed but nothing of what the token
/// holds.
pub fn check_capability<'a>(
    sealer: &Sealer,
    index: &'a Index,
    (tenant, access): (&Tenant, &Access),
    grant: Grant,
    study_token: &str,
    named: Option<Uid>,
) -> Result<(Study<'a>, Grant), ApiError> {
    let forbid = |why: &str| ApiError::Forbidden(why.to_string());
    let claims = sealer.open(study_token, now_secs()).map_err(|r| forbid(&r.to_string()))?;
    if claims.tenant != tenant.name {
        return Err(forbid("study token was minted for another tenant"));
    }
    let study_uid = match named {
        Some(uid) if claims.study != uid.as_str() => return Err(forbid("study token was minted for another study")),
        Some(uid) => uid,
        None => Uid::parse(&claims.study).ok_or_else(|| forbid("study token names no study"))?,
    };
    let grant = grant.for_named_patient(access, || Ok(claims.patient.clone()))?;
    let minted =
        Minted { patient: claims.patient.as_deref(), client: claims.client.as_deref(), token: claims.token.as_deref() };
    grant.may_use_study_token(minted)?;
    let study = index
        .study(study_uid)
        .ok_or_else(|| ApiError::NotFound(format!("study {} is not known", study_uid.as_str())))?;
    if !claims.patient_ids.iter().any(|id| id == study.patient_id()) {
        return Err(forbid("the study no longer belongs to the patient the token was minted for"));
    }
    // The grant of now, not only the one the token was minted under.
    grant.may_retrieve(&study)?;
    Ok((study, grant))
}

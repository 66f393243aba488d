//! ImagingStudy search and read: the search parameters, the patient check, paging, and the `searchset`
//! Bundle around the resources that `resource` renders.
//!
//! Invariants: search and read see only the studies `visible_studies` allows for the grant; without
//! `ignorePatient`, a search for anyone but the patient in context is refused (403), never answered with an
//! empty Bundle; every Endpoint address carries a freshly sealed study token.

use serde_json::json;

use super::resource::{EntryUrls, FHIR_JSON, Place, Render, address, write_endpoint_entry, write_study};
use crate::auth::Grant;
use crate::auth::patient::normalise_reference;
use crate::config::EndpointForm;
use crate::dicom::Uid;
use crate::http::{ApiError, Request, Response, parse_query, percent_encode};
use crate::index::Study;
use crate::time::{fhir_range, now_secs};

/// The parameters of a search, parsed and checked.
#[derive(Debug, Default)]
struct Search {
    patient: Option<String>,
    identifiers: Vec<Vec<String>>,
    last_updated: Vec<(String, i64, i64)>,
    count: Option<usize>,
    offset: usize,
    /// The recognised parameters as received, for the `self` link.
    echoed: Vec<(String, String)>,
}

fn parse_search(req: &Request) -> Result<Search, ApiError> {
    let strict = req
        .header("prefer")
        .is_some_and(|p| p.split([',', ';']).any(|v| v.trim().eq_ignore_ascii_case("handling=strict")));
    let mut s = Search::default();
    let mut asked_count = None;
    for (name, value) in parse_query(&req.query)? {
        let known = match name.as_str() {
            "patient" | "subject" => {
                if s.patient.replace(value.clone()).is_some() {
                    return Err(ApiError::BadRequest("give the patient only once".into()));
                }
                true
            }
            "identifier" => {
                let uids = value.split(',').map(study_uid_of_identifier).collect::<Result<Vec<_>, _>>()?;
                s.identifiers.push(uids);
                true
            }
            "_lastUpdated" => {
                let (prefix, date) = split_prefix(&value);
                let (start, end) = fhir_range(date)
                    .ok_or_else(|| ApiError::BadRequest(format!("_lastUpdated: {value:?} is not a FHIR date")))?;
                s.last_updated.push((prefix.to_string(), start, end));
                true
            }
            // Each study's Endpoint is on its page whether asked for or not.
            "_include" => value == "ImagingStudy:endpoint",
            "_count" => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| ApiError::BadRequest(format!("_count: {value:?} is not a count")))?;
                asked_count = Some(n);
                s.count = Some(n.min(1000));
                true
            }
            "_offset" => {
                s.offset =
                    value.parse().map_err(|_| ApiError::BadRequest(format!("_offset: {value:?} is not an offset")))?;
                false // re-added by the paging links themselves
            }
            "_format" => matches!(value.as_str(), "json" | "application/json" | "application/fhir+json"),
            _ => false,
        };
        if known {
            s.echoed.push((name, value));
        } else if strict && name != "_offset" {
            return Err(ApiError::BadRequest(format!("unsupported search parameter {name}={value}")));
        }
    }
    // Paging arithmetic must not wrap: `_offset + _count` is where the next page starts.
    if asked_count.is_some_and(|n| s.offset.checked_add(n).is_none()) {
        return Err(ApiError::BadRequest("_offset + _count is beyond any page".into()));
    }
    Ok(s)
}

/// FHIR token search on ImagingStudy.identifier: `urn:dicom:uid|urn:oid:1.2`, `urn:oid:1.2` or `1.2`.
fn study_uid_of_identifier(v: &str) -> Result<String, ApiError> {
    let value = match v.split_once('|') {
        Some(("urn:dicom:uid", value)) | Some(("", value)) => value,
        Some((system, _)) => {
            return Err(ApiError::BadRequest(format!("identifier system {system:?} is not urn:dicom:uid")));
        }
        None => v,
    };
    let uid = value.strip_prefix("urn:oid:").unwrap_or(value);
    Uid::parse(uid)
        .map(|u| u.as_str().to_string())
        .ok_or_else(|| ApiError::BadRequest(format!("identifier {v:?} does not hold a DICOM UID")))
}

fn split_prefix(v: &str) -> (&str, &str) {
    for p in ["eq", "gt", "ge", "lt", "le"] {
        if let Some(rest) = v.strip_prefix(p) {
            return (p, rest);
        }
    }
    ("eq", v)
}

/// Does an instant fall in the search range, per prefix (FHIR R4 §3.1.1.4.2)?
fn date_matches(prefix: &str, t: i64, start: i64, end: i64) -> bool {
    match prefix {
        "gt" => t >= end,
        "ge" => t >= start,
        "lt" => t < start,
        "le" => t < end,
        _ => start <= t && t < end,
    }
}

/// The patient a search names, as a FHIR id: the `patient` parameter must be a patient reference (400
/// otherwise; docs/api.md, Patient references): `id`, `Patient/id`, or absolute under the tenant's EHR base.
/// Without `ignorePatient`, it is required and must name the patient in context (`Grant::may_search_for`).
pub fn named_patient(r: &Render, req: &Request) -> Result<Option<String>, ApiError> {
    patient_id(r, parse_search(req)?.patient.as_deref())
}

fn patient_id(r: &Render, asked: Option<&str>) -> Result<Option<String>, ApiError> {
    // A mock tenant has no EHR: its patients' absolute references are under its own FHIR base here.
    let own = format!("{}/{}/fhir", r.base_url, r.tenant.name);
    let base = r.tenant.ehr_base().unwrap_or(&own);
    let Some(asked) = asked else { return Ok(None) };
    let id = normalise_reference(asked, base).ok_or_else(|| {
        ApiError::BadRequest(format!("patient {asked:?} is not `id`, `Patient/id` or `{base}/Patient/id`"))
    })?;
    Ok(Some(id.to_string()))
}

pub fn search(r: &Render, grant: &Grant, req: &Request) -> Result<Response, ApiError> {
    let s = parse_search(req)?;
    grant.may_search_for(patient_id(r, s.patient.as_deref())?.as_deref())?;
    let base = format!("{}/{}/fhir", r.base_url, r.tenant.name);
    let written = r.index.written_secs();
    let mut studies: Vec<Study> = grant
        .visible_studies(r.index)?
        .into_iter()
        .filter(|st| s.identifiers.iter().all(|any| any.iter().any(|u| u == st.uid())))
        .filter(|_| s.last_updated.iter().all(|(p, a, b)| date_matches(p, written, *a, *b)))
        .collect();
    // Newest first, then by UID, so that pages are stable.
    studies.sort_by(|a, b| (b.date(), b.time(), a.uid()).cmp(&(a.date(), a.time(), b.uid())));

    let total = studies.len();
    let page_size = s.count.unwrap_or(total.max(1));
    let page: Vec<Study> = studies.iter().skip(s.offset).take(page_size).copied().collect();
    let now = now_secs();

    let link = |offset: Option<usize>| {
        let mut params = s.echoed.clone();
        if let Some(o) = offset {
            params.push(("_offset".into(), o.to_string()));
        }
        let q: Vec<String> =
            params.iter().map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v))).collect();
        if q.is_empty() { format!("{base}/ImagingStudy") } else { format!("{base}/ImagingStudy?{}", q.join("&")) }
    };
    let mut links = vec![json!({"relation": "self", "url": link((s.offset > 0).then_some(s.offset))})];
    // An offset beyond the total is an empty last page; `parse_search` made sure the sum does not wrap.
    let end = s.offset.saturating_add(page_size);
    if s.count.is_some() && page_size > 0 && end < total {
        links.push(json!({"relation": "next", "url": link(Some(end))}));
    }
    let envelope = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    });
    // The entries are spliced in after the envelope's last member: each resource comes pre-serialized from
    // `write_study`, and FHIR JSON has no empty arrays, so an empty result has no `entry` at all.
    // Room for the usual resource sizes up front: the body is built by appending.
    let mut out = Vec::with_capacity(1024 + 8 * 1024 * page.len());
    serde_json::to_writer(&mut out, &envelope).map_err(|e| ApiError::Internal(e.to_string()))?;
    if !page.is_empty() {
        out.pop(); // the envelope's closing brace
        out.extend_from_slice(b",\"entry\":[");
        // Each study's Endpoint, when it is an entry of its own, follows the page's studies.
        let mut endpoints = Vec::new();
        // One random draw per answer names its Endpoint entries; contained Endpoints need none.
        let mut entry_urls = match r.tenant.endpoints {
            EndpointForm::Bundle => Some(EntryUrls::new()?),
            EndpointForm::Contained => None,
        };
        for (n, st) in page.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"fullUrl\":");
            serde_json::to_writer(&mut out, &format!("{base}/ImagingStudy/{}", st.uid()))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            out.extend_from_slice(b",\"resource\":");
            let address = address(r, grant, st, now)?;
            match &mut entry_urls {
                None => write_study(r, grant, st, &address, Place::Contained, &mut out)?,
                Some(urls) => {
                    let full_url = urls.next_url();
                    write_study(r, grant, st, &address, Place::Entry(&full_url), &mut out)?;
                    endpoints.push((full_url, address));
                }
            }
            out.extend_from_slice(b",\"search\":{\"mode\":\"match\"}}");
        }
        for (full_url, address) in endpoints {
            out.push(b',');
            write_endpoint_entry(&full_url, &address, &mut out)?;
        }
        out.extend_from_slice(b"]}");
    }
    Ok(Response::bytes(200, FHIR_JSON, out))
}

pub fn read(r: &Render, grant: &Grant, id: &str) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("ImagingStudy/{id} is not known"));
    let uid = Uid::parse(id).ok_or_else(not_found)?;
    let study = grant.visible_studies(r.index)?.into_iter().find(|s| s.uid() == uid.as_str()).ok_or_else(not_found)?;
    let mut out = Vec::with_capacity(4096);
    let address = address(r, grant, &study, now_secs())?;
    write_study(r, grant, &study, &address, Place::Contained, &mut out)?;
    Ok(Response::bytes(200, FHIR_JSON, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        let uid = |v: &str| study_uid_of_identifier(v).map_err(|e| e.status());
        assert_eq!(uid("urn:dicom:uid|urn:oid:1.2.3"), Ok("1.2.3".into()));
        assert_eq!(uid("urn:oid:1.2.3"), Ok("1.2.3".into()));
        assert_eq!(uid("1.2.3"), Ok("1.2.3".into()));
        assert_eq!(uid("|1.2.3"), Ok("1.2.3".into()));
        assert_eq!(uid("http://x|1.2.3"), Err(400));
        assert_eq!(uid("urn:oid:abc"), Err(400));
    }

    #[test]
    fn date_prefixes() {
        let (a, b) = fhir_range("2024-05-01").unwrap();
        let inside = a + 10;
        assert!(date_matches("eq", inside, a, b));
        assert!(!date_matches("gt", inside, a, b));
        assert!(date_matches("ge", inside, a, b));
        assert!(!date_matches("lt", inside, a, b));
        assert!(date_matches("le", inside, a, b));
        assert!(date_matches("gt", b, a, b));
        assert!(date_matches("lt", a - 1, a, b));
        assert_eq!(split_prefix("ge2024"), ("ge", "2024"));
        assert_eq!(split_prefix("2024"), ("eq", "2024"));
    }
}

//! The checks at the FHIR base that need a token or a patient: how tokens are refused (RFC 6750), and the
//! ImagingStudy search: the Bundle, the profile's required elements, each study's WADO-RS Endpoint in any
//! of its three forms (`endpoint`), `_include`, `identifier`, and another patient refused.

use serde_json::Value;

use super::Context;
use super::endpoint::{self, Form, Missing, Wado};
use super::report::shorten;
use super::rules::*;
use crate::http::percent_encode;

/// How many pages of one search the probe follows.
const MAX_PAGES: usize = 20;

/// A study the search found with a WADO-RS Endpoint: what the retrieval checks work on.
#[derive(Debug, Clone)]
pub struct Study {
    pub uid: String,
    pub wado: Wado,
}

/// `auth.no-token` and `auth.invalid-token`.
pub fn auth(ctx: &Context) -> Vec<Check> {
    if let Some(why) = ctx.tokens_moot() {
        return vec![AUTH_NO_TOKEN.skip(why.clone()), AUTH_INVALID_TOKEN.skip(why)];
    }
    let url = search_url(ctx.base, ctx.patient.unwrap_or("example"));
    let accept = [("Accept", "application/fhir+json")];
    let no_token = match ctx.client.get(&url, None, &accept) {
        Err(e) => AUTH_NO_TOKEN.fail(e),
        Ok(a) => {
            let challenge = a.header_joined("www-authenticate");
            if a.status != 401 {
                AUTH_NO_TOKEN.fail(format!("a search without a token answered {}", a.said()))
            } else if !is_bearer_challenge(&challenge) {
                AUTH_NO_TOKEN.fail(format!("401, but WWW-Authenticate is {challenge:?}, not a Bearer challenge"))
            } else {
                AUTH_NO_TOKEN.pass(format!("401, WWW-Authenticate: {challenge}"))
            }
        }
    };
    let invalid = match crate::random::hex_id(16) {
        Err(e) => AUTH_INVALID_TOKEN.fail(e),
        Ok(garbage) => match ctx.client.get(&url, Some(&format!("probe-invalid-{garbage}")), &accept) {
            Err(e) => AUTH_INVALID_TOKEN.fail(e),
            Ok(a) => {
                let challenge = a.header_joined("www-authenticate");
                let names_it =
                    challenge.contains("error=\"invalid_token\"") || challenge.contains("error=invalid_token");
                if a.status != 401 {
                    AUTH_INVALID_TOKEN.fail(format!("a search with an unknown token answered {}", a.said()))
                } else if !is_bearer_challenge(&challenge) || !names_it {
                    AUTH_INVALID_TOKEN
                        .fail(format!("401, but WWW-Authenticate is {challenge:?}, without error=\"invalid_token\""))
                } else {
                    AUTH_INVALID_TOKEN.pass(format!("401, WWW-Authenticate: {challenge}"))
                }
            }
        },
    };
    vec![no_token, invalid]
}

fn is_bearer_challenge(value: &str) -> bool {
    let v = value.trim_start();
    v.len() >= 6 && v[..6].eq_ignore_ascii_case("bearer") && v[6..].chars().next().is_none_or(|c| c == ' ' || c == ',')
}

fn search_url(base: &str, patient: &str) -> String {
    format!("{base}/ImagingStudy?patient={}", percent_encode(patient))
}

/// One page of a search answer.
struct Page {
    bundle: Value,
    media: String,
}

/// The pages of a search, following `next` links; an error says what the first failing page answered.
fn pages(ctx: &Context, url: &str, token: Option<&str>) -> Result<(Vec<Page>, bool), String> {
    let mut out = Vec::new();
    let mut next = Some(url.to_string());
    while let Some(url) = next.take() {
        if out.len() == MAX_PAGES {
            return Ok((out, false));
        }
        let answer = ctx.client.get(&url, token, &[("Accept", "application/fhir+json")])?;
        if answer.status != 200 {
            let why = answer.json().and_then(|o| diagnostics(&o)).map(|d| format!(" ({d})")).unwrap_or_default();
            return Err(format!("{} answered {}{why}", shorten(&url), answer.said()));
        }
        let bundle = answer.json().ok_or_else(|| format!("{} answered a body that is not JSON", shorten(&url)))?;
        next = bundle
            .get("link")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
            .and_then(|l| l.get("url"))
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(Page { bundle, media: answer.media_type() });
    }
    Ok((out, true))
}

/// The first diagnostics or details text of an OperationOutcome.
fn diagnostics(outcome: &Value) -> Option<String> {
    let issue = outcome.get("issue")?.as_array()?.first()?;
    let text = issue.get("diagnostics").or_else(|| issue.get("details").and_then(|d| d.get("text")))?;
    text.as_str().map(|s| s.chars().take(160).collect())
}

/// The entries of a page that are search matches: `search.mode = match`, or an ImagingStudy without a mode.
fn matches(page: &Value) -> Vec<&Value> {
    entries(page)
        .filter(|e| match e.get("search").and_then(|s| s.get("mode")).and_then(Value::as_str) {
            Some(mode) => mode == "match",
            None => {
                e.get("resource").and_then(|r| r.get("resourceType")).and_then(Value::as_str) == Some("ImagingStudy")
            }
        })
        .filter_map(|e| e.get("resource"))
        .collect()
}

fn entries(page: &Value) -> impl Iterator<Item = &Value> {
    page.get("entry").and_then(Value::as_array).into_iter().flatten()
}

fn id_of(study: &Value) -> String {
    study.get("id").and_then(Value::as_str).unwrap_or("(no id)").to_string()
}

/// The StudyInstanceUID of the `urn:dicom:uid` identifier, or what is wrong with it.
fn study_uid(study: &Value) -> Result<String, String> {
    let identifiers = study.get("identifier").and_then(Value::as_array).into_iter().flatten();
    let dicom: Vec<&Value> =
        identifiers.filter(|i| i.get("system").and_then(Value::as_str) == Some("urn:dicom:uid")).collect();
    let [one] = dicom.as_slice() else {
        return Err(format!("{} identifiers with system urn:dicom:uid, not one", dicom.len()));
    };
    let value = one.get("value").and_then(Value::as_str).unwrap_or_default();
    let uid = value.strip_prefix("urn:oid:").ok_or_else(|| format!("identifier value {value:?} is not urn:oid:UID"))?;
    let valid = !uid.is_empty()
        && uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')));
    if valid { Ok(uid.to_string()) } else { Err(format!("{uid:?} is not a DICOM UID")) }
}

/// The problems of a match against the ImagingStudy profile's required elements.
fn profile_problems(study: &Value) -> Vec<String> {
    let id = id_of(study);
    let kind = study.get("resourceType").and_then(Value::as_str).unwrap_or_default();
    if kind != "ImagingStudy" {
        return vec![format!("a match is a {kind:?}, not an ImagingStudy")];
    }
    let mut problems = Vec::new();
    if let Err(e) = study_uid(study) {
        problems.push(format!("ImagingStudy/{id}: {e}"));
    }
    if study.get("status").and_then(Value::as_str).is_none_or(str::is_empty) {
        problems.push(format!("ImagingStudy/{id}: no status"));
    }
    let subject = study.get("subject");
    if !subject.is_some_and(|s| s.get("reference").is_some() || s.get("identifier").is_some()) {
        problems.push(format!("ImagingStudy/{id}: no subject reference or identifier"));
    }
    problems
}

/// How each study's Endpoint references resolved.
#[derive(Default)]
struct Resolution {
    /// Studies with their first WADO-RS Endpoint.
    studies: Vec<Study>,
    /// What is wrong with the Endpoints of studies.
    endpoint: Vec<String>,
    /// `urn:uuid:` references not on their study's page.
    not_on_page: Vec<String>,
    /// How many references were response-local.
    local: usize,
}

/// Resolves the Endpoints of every match of `pages`; references to entries not on the page are looked for
/// in `included` (the pages of the `_include` search), when there are some.
fn resolve_all(pages: &[Page], included: &[Page]) -> Resolution {
    let mut out = Resolution::default();
    for page in pages {
        for study in matches(&page.bundle) {
            let id = id_of(study);
            let refs = endpoint::references(study);
            if refs.is_empty() {
                out.endpoint.push(format!("ImagingStudy/{id} has no endpoint"));
                continue;
            }
            let mut wado: Option<Wado> = None;
            let mut reasons = Vec::new();
            for reference in &refs {
                let found = match endpoint::resolve(reference, study, &page.bundle) {
                    Ok(found) => Ok(found),
                    Err(Missing::Elsewhere(r)) => included
                        .iter()
                        .find_map(|p| endpoint::resolve(&r, &Value::Null, &p.bundle).ok())
                        .ok_or(Missing::Elsewhere(r)),
                    Err(other) => Err(other),
                };
                match found {
                    Ok((form, resource)) => {
                        if form == Form::ResponseLocal {
                            out.local += 1;
                        }
                        if !endpoint::is_wado(resource) {
                            reasons.push(format!("{reference} is not a dicom-wado-rs Endpoint"));
                            continue;
                        }
                        match endpoint::read_wado(resource) {
                            Ok(w) => wado = wado.or(Some(w)),
                            Err(e) => reasons.push(format!("{reference} {e}")),
                        }
                    }
                    Err(Missing::NotOnPage(r)) => {
                        out.not_on_page.push(format!("ImagingStudy/{id} references {r}, which is not on its page"));
                        reasons.push(format!("{r} is not on the study's page"));
                    }
                    Err(missing) => reasons.push(missing.to_string()),
                }
            }
            match (wado, study_uid(study)) {
                (Some(wado), Ok(uid)) => out.studies.push(Study { uid, wado }),
                (Some(_), Err(_)) => {} // the profile check names the identifier
                (None, _) => {
                    out.endpoint.push(format!("ImagingStudy/{id}: no usable WADO-RS Endpoint: {}", reasons.join(", ")))
                }
            }
        }
    }
    out
}

/// The search checks; the studies with a WADO-RS Endpoint for the retrieval checks, or why there are none.
pub fn search(ctx: &Context) -> (Vec<Check>, Result<Vec<Study>, String>) {
    let all = [
        SEARCH_BUNDLE,
        SEARCH_PROFILE,
        SEARCH_ENDPOINT,
        SEARCH_ENDPOINT_SAME_PAGE,
        SEARCH_INCLUDE,
        SEARCH_IDENTIFIER,
        SEARCH_OTHER_PATIENT,
    ];
    let (Some(patient), None) = (ctx.patient, ctx.cannot_search()) else {
        let why = ctx.cannot_search().unwrap_or_default();
        return (all.iter().map(|r| r.skip(why.clone())).collect(), Err(why));
    };
    let url = search_url(ctx.base, patient);
    let mut checks = Vec::new();
    let (found, complete) = match pages(ctx, &url, ctx.token) {
        Ok(found) => found,
        Err(e) => {
            checks.push(SEARCH_BUNDLE.fail(e));
            let why = "the search failed".to_string();
            checks.extend(all[1..6].iter().map(|r| r.skip(why.clone())));
            checks.push(other_patient(ctx, patient));
            return (checks, Err(why));
        }
    };
    checks.push(bundle(&found, complete));
    let profile: Vec<String> = found.iter().flat_map(|p| matches(&p.bundle)).flat_map(profile_problems).collect();
    let count = found.iter().map(|p| matches(&p.bundle).len()).sum::<usize>();
    checks.push(
        SEARCH_PROFILE.judge(&profile, format!("{count} ImagingStudy matches with identifier, status and subject")),
    );
    let include_url = format!("{url}&_include={}", percent_encode("ImagingStudy:endpoint"));
    let included = pages(ctx, &include_url, ctx.token);
    let resolved = resolve_all(&found, included.as_ref().map_or(&[][..], |(p, _)| p.as_slice()));
    if count == 0 {
        checks.push(SEARCH_ENDPOINT.skip(format!("patient {patient} has no studies here")));
    } else {
        let ok =
            format!("{} studies, each with a dicom-wado-rs Endpoint with an absolute address", resolved.studies.len());
        checks.push(SEARCH_ENDPOINT.judge(&resolved.endpoint, ok));
    }
    checks.push(if !resolved.not_on_page.is_empty() {
        SEARCH_ENDPOINT_SAME_PAGE.fail(resolved.not_on_page.join("; "))
    } else if resolved.local == 0 {
        SEARCH_ENDPOINT_SAME_PAGE.skip("no study references a response-local (urn:uuid) Endpoint")
    } else {
        SEARCH_ENDPOINT_SAME_PAGE.pass(format!("{} urn:uuid Endpoints, each on its study's page", resolved.local))
    });
    checks.push(include(&found, included));
    checks.push(identifier(ctx, &url, &resolved.studies));
    checks.push(other_patient(ctx, patient));
    let studies = if resolved.studies.is_empty() {
        Err(if count == 0 {
            format!("patient {patient} has no studies here")
        } else {
            "no study has a usable WADO-RS Endpoint".into()
        })
    } else {
        Ok(resolved.studies)
    };
    (checks, studies)
}

fn bundle(pages: &[Page], complete: bool) -> Check {
    let mut problems = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        let b = &page.bundle;
        if b.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            problems.push(format!("page {} is not a Bundle", n + 1));
        } else if b.get("type").and_then(Value::as_str) != Some("searchset") {
            problems.push(format!(
                "page {} is a Bundle of type {}, not searchset",
                n + 1,
                b.get("type").unwrap_or(&Value::Null)
            ));
        }
        if !matches!(page.media.as_str(), "application/fhir+json" | "application/json") {
            problems.push(format!("page {} came as {:?}, not FHIR JSON", n + 1, page.media));
        }
    }
    let count = pages.iter().map(|p| matches(&p.bundle).len()).sum::<usize>();
    match pages.first().and_then(|p| p.bundle.get("total")) {
        None => problems.push("no total".to_string()),
        Some(total) => match total.as_u64() {
            Some(t) if complete && t as usize != count => {
                problems.push(format!("total {t}, but {count} matches on {} pages", pages.len()));
            }
            Some(_) => {}
            None => problems.push(format!("total {total} is not a count")),
        },
    }
    SEARCH_BUNDLE.judge(&problems, format!("searchset Bundle, total {count}, {} page(s)", pages.len()))
}

fn include(found: &[Page], included: Result<(Vec<Page>, bool), String>) -> Check {
    let (pages, _) = match included {
        Ok(p) => p,
        Err(e) => return SEARCH_INCLUDE.fail(e),
    };
    let ids = |pages: &[Page]| {
        let mut ids: Vec<String> = pages.iter().flat_map(|p| matches(&p.bundle)).map(id_of).collect();
        ids.sort();
        ids
    };
    let mut problems = Vec::new();
    if pages.iter().any(|p| p.bundle.get("type").and_then(Value::as_str) != Some("searchset")) {
        problems.push("the answer is not a searchset Bundle".to_string());
    }
    if ids(&pages) != ids(found) {
        problems.push(format!("matches {:?}, not the plain search's {:?}", ids(&pages), ids(found)));
    }
    let resolved = resolve_all(&pages, &[]);
    problems.extend(resolved.endpoint);
    for page in &pages {
        for e in entries(&page.bundle) {
            let is_endpoint =
                e.get("resource").and_then(|r| r.get("resourceType")).and_then(Value::as_str) == Some("Endpoint");
            let mode = e.get("search").and_then(|s| s.get("mode")).and_then(Value::as_str);
            if is_endpoint && mode != Some("include") {
                problems.push(format!("an Endpoint entry has search.mode {mode:?}, not include"));
            }
        }
    }
    SEARCH_INCLUDE
        .judge(&problems, format!("accepted: the same {} studies, each with its Endpoint", resolved.studies.len()))
}

fn identifier(ctx: &Context, url: &str, studies: &[Study]) -> Check {
    let Some(study) = studies.first() else {
        return SEARCH_IDENTIFIER.skip("no study with a UID and an Endpoint to narrow to");
    };
    let narrowed = format!("{url}&identifier={}", percent_encode(&format!("urn:oid:{}", study.uid)));
    let mut problems = Vec::new();
    match pages(ctx, &narrowed, ctx.token) {
        Err(e) => problems.push(e),
        Ok((pages, _)) => {
            let uids: Vec<String> =
                pages.iter().flat_map(|p| matches(&p.bundle)).map(|s| study_uid(s).unwrap_or_default()).collect();
            if uids != [study.uid.clone()] {
                problems.push(format!("identifier=urn:oid:{} found {uids:?}", study.uid));
            }
        }
    }
    let absent = crate::random::hex_id(8).map(|h| format!("2.25.{}", u64::from_str_radix(&h, 16).unwrap_or(1)));
    match absent {
        Err(e) => problems.push(e),
        Ok(uid) => {
            match pages(ctx, &format!("{url}&identifier={}", percent_encode(&format!("urn:oid:{uid}"))), ctx.token) {
                Err(e) => problems.push(e),
                Ok((pages, _)) => {
                    let n = pages.iter().map(|p| matches(&p.bundle).len()).sum::<usize>();
                    if n != 0 {
                        problems.push(format!("identifier=urn:oid:{uid}, a UID nobody has, found {n} studies"));
                    }
                }
            }
        }
    }
    SEARCH_IDENTIFIER
        .judge(&problems, format!("urn:oid:{} finds that study alone; an unknown UID finds none", study.uid))
}

fn other_patient(ctx: &Context, patient: &str) -> Check {
    if let Some(why) = ctx.tokens_moot() {
        return SEARCH_OTHER_PATIENT.skip(why);
    }
    let other = if patient == "probe-other-patient" { "probe-other-patient-2" } else { "probe-other-patient" };
    match ctx.client.get(&search_url(ctx.base, other), ctx.token, &[("Accept", "application/fhir+json")]) {
        Err(e) => SEARCH_OTHER_PATIENT.fail(e),
        Ok(a) if a.status == 403 => {
            SEARCH_OTHER_PATIENT.pass(format!("patient={other} with patient {patient}'s token: 403"))
        }
        Ok(a) if a.status == 200 => {
            let n = a.json().map(|b| matches(&b).len()).unwrap_or(0);
            SEARCH_OTHER_PATIENT
                .fail(format!("patient={other} with patient {patient}'s token answered 200 with {n} studies"))
        }
        Ok(a) => {
            SEARCH_OTHER_PATIENT.fail(format!("patient={other} with patient {patient}'s token answered {}", a.said()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(bundle: Value) -> Page {
        Page { bundle, media: "application/fhir+json".into() }
    }

    fn study(id: &str, reference: &str) -> Value {
        json!({
            "resourceType": "ImagingStudy", "id": id, "status": "available",
            "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:2.25.{}", id.len())}],
            "subject": {"reference": "Patient/p1"},
            "endpoint": [{"reference": reference}],
        })
    }

    fn wado(id: &str) -> Value {
        json!({"resourceType": "Endpoint", "id": id, "status": "active",
            "connectionType": {"code": "dicom-wado-rs"}, "payloadType": [{"text": "any"}],
            "address": format!("https://img.example/wado/{id}")})
    }

    #[test]
    fn the_three_forms_resolve() {
        let mut contained = study("a", "#w");
        contained["contained"] = json!([wado("w")]);
        let main = page(json!({"entry": [
            {"resource": contained, "search": {"mode": "match"}},
            {"resource": study("bb", "urn:uuid:1"), "search": {"mode": "match"}},
            {"fullUrl": "urn:uuid:1", "resource": wado("u"), "search": {"mode": "include"}},
            {"resource": study("ccc", "Endpoint/x"), "search": {"mode": "match"}},
        ]}));
        let included = page(
            json!({"entry": [{"fullUrl": "https://img.example/fhir/Endpoint/x", "resource": wado("x"), "search": {"mode": "include"}}]}),
        );
        let r = resolve_all(&[main], &[included]);
        assert!(r.endpoint.is_empty(), "{:?}", r.endpoint);
        let addresses: Vec<&str> = r.studies.iter().map(|s| s.wado.address.as_str()).collect();
        assert_eq!(
            addresses,
            ["https://img.example/wado/w", "https://img.example/wado/u", "https://img.example/wado/x"]
        );
        assert_eq!(r.local, 1);
    }

    #[test]
    fn a_response_local_endpoint_on_another_page_is_named() {
        let first = page(json!({"entry": [{"resource": study("a", "urn:uuid:1"), "search": {"mode": "match"}}]}));
        let second =
            page(json!({"entry": [{"fullUrl": "urn:uuid:1", "resource": wado("u"), "search": {"mode": "include"}}]}));
        let r = resolve_all(&[first, second], &[]);
        assert_eq!(r.not_on_page.len(), 1, "{:?}", r.not_on_page);
        assert!(r.studies.is_empty());
    }

    #[test]
    fn study_uids_and_profile() {
        assert_eq!(study_uid(&study("a", "#w")).unwrap(), "2.25.1");
        let mut bad = study("a", "#w");
        bad["identifier"][0]["value"] = json!("2.25.1");
        assert!(study_uid(&bad).unwrap_err().contains("urn:oid"));
        bad["identifier"][0]["value"] = json!("urn:oid:2.025.1");
        assert!(study_uid(&bad).is_err());
        let mut no_subject = study("a", "#w");
        no_subject.as_object_mut().unwrap().remove("subject");
        assert_eq!(profile_problems(&no_subject).len(), 1);
        assert!(
            is_bearer_challenge("Bearer realm=\"x\"") && is_bearer_challenge("bearer") && !is_bearer_challenge("Basic")
        );
    }

    #[test]
    fn total_must_count_the_matches() {
        let one = page(json!({"resourceType": "Bundle", "type": "searchset", "total": 2,
            "entry": [{"resource": study("a", "#w"), "search": {"mode": "match"}}]}));
        assert!(bundle(&[one], true).detail.contains("total 2, but 1"));
    }
}

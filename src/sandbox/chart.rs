//! The patients' charts (docs/ehr.md, The chart): search and read of the US Core-shaped resources of
//! `config::CHART_TYPES`, each behind the matching SMART scope, as searchset Bundles.
//!
//! Search parameters: `patient` (`p1`, `Patient/p1` or `{issuer}/Patient/p1`), `clinical-status`
//! (AllergyIntolerance, Condition), `status` (MedicationRequest, Observation, DiagnosticReport), `category`
//! (each a list of `code` or `system|code`, any of which matches), `_count`, and `_offset` for the `next`
//! link. Other parameters are ignored, as FHIR's lenient handling does, and left out of the `self` link.
//!
//! Invariants: a token reads a type only with a scope that allows it (`auth::scope::allows`: v1 `read`, v2
//! `r`/`s`, wildcards); a `patient/` scope reads only its own patient's resources (a search naming another
//! patient is 403, a read of another patient's resource 404); a backend token needs a `system/` scope and
//! an app token a `patient/` or `user/` one.

use serde_json::{Value, json};

use super::store::{Kind, Lookup};
use super::{Issuer, Sandbox, fhir, oauth};
use crate::auth::patient::normalise_reference;
use crate::auth::scope::{Context, Need, allows};
use crate::config::CHART_TYPES;
use crate::http::{Request, Response, parse_query};
use crate::time::now_secs;

/// Who asks: the token's client, its short name, and the patient its `patient/` scopes are about (`None`:
/// any patient, for `user/` and `system/` scopes).
struct Reader {
    client: String,
    token: String,
    only: Option<String>,
}

/// Whether the request's token may `need` on `kind`, and for which patients.
fn reader(sb: &Sandbox, req: &Request, kind: &str, need: Need) -> Result<Reader, Response> {
    let refuse = |status: u16, why: &str| {
        log::info!(target: "sandbox", "{kind}: refused ({status}): {why}");
        let resp = fhir::outcome(status, if status == 401 { "login" } else { "forbidden" }, why);
        if status == 401 {
            resp.with_header("WWW-Authenticate", "Bearer realm=\"sandbox\", error=\"invalid_token\"")
        } else {
            resp.with_header("WWW-Authenticate", "Bearer realm=\"sandbox\", error=\"insufficient_scope\"")
        }
    };
    let Some(token) = oauth::bearer(req) else {
        return Err(refuse(401, "a bearer token is required"));
    };
    let store = sb.store();
    let Lookup::Active(t) = store.token(token, now_secs()) else {
        return Err(refuse(401, "the bearer token is not active"));
    };
    let only = match t.kind {
        Kind::Backend if allows(&t.scope, Context::System, kind, need) => None,
        Kind::App if allows(&t.scope, Context::User, kind, need) => None,
        Kind::App if allows(&t.scope, Context::Patient, kind, need) => match &t.patient {
            Some(p) => Some(p.clone()),
            None => return Err(refuse(403, "a patient/ scope, but the token has no patient in context")),
        },
        _ => {
            let what = if need == Need::Read { "read" } else { "search" };
            return Err(refuse(403, &format!("the token's scopes do not allow to {what} {kind}")));
        }
    };
    Ok(Reader { client: t.client_id.clone(), token: t.short.clone(), only })
}

/// The element of `kind` that names its patient.
fn patient_element(kind: &str) -> &'static str {
    CHART_TYPES.iter().find(|(k, _)| *k == kind).map_or("subject", |(_, e)| e)
}

/// The id of the patient a resource is about.
fn patient_of<'a>(resource: &'a Value, kind: &str) -> Option<&'a str> {
    resource[patient_element(kind)]["reference"].as_str()?.strip_prefix("Patient/")
}

/// `GET {issuer}/{kind}/{id}`.
pub fn read(sb: &Sandbox, req: &Request, kind: &str, id: &str) -> Response {
    let who = match reader(sb, req, kind, Need::Read) {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let found = sb.settings.patients.iter().flat_map(|p| &p.chart).find(|r| r["resourceType"] == kind && r["id"] == id);
    let visible = found.filter(|r| who.only.as_deref().is_none_or(|p| patient_of(r, kind) == Some(p)));
    match visible {
        Some(resource) => {
            log::info!(target: "sandbox", "{kind}/{id} read by client {:?} (token {})", who.client, who.token);
            super::fhir(200, resource)
        }
        None => {
            log::info!(target: "sandbox", "{kind}/{id}: not found for client {:?}", who.client);
            fhir::outcome(404, "not-found", &format!("no {kind}/{id} that this token may read"))
        }
    }
}

/// A search parameter's token list: each `code` or `system|code`.
fn tokens(value: &str) -> Vec<(Option<&str>, &str)> {
    value
        .split(',')
        .map(|t| t.split_once('|').map_or((None, t), |(s, c)| (Some(s).filter(|s| !s.is_empty()), c)))
        .collect()
}

/// The codings of a CodeableConcept (or of each in an array of them), as `(system, code)`.
fn codings(concept: &Value) -> Vec<(Option<&str>, &str)> {
    let concepts: Vec<&Value> = match concept {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for c in concepts {
        match c {
            // AllergyIntolerance.category is a list of codes.
            Value::String(code) => out.push((None, code.as_str())),
            _ => {
                for coding in c["coding"].as_array().into_iter().flatten() {
                    if let Some(code) = coding["code"].as_str() {
                        out.push((coding["system"].as_str(), code));
                    }
                }
            }
        }
    }
    out
}

/// Whether a resource's value at `element` matches any of `wanted`.
fn matches(resource: &Value, element: &str, wanted: &[(Option<&str>, &str)]) -> bool {
    let have = match &resource[element] {
        Value::String(code) => vec![(None, code.as_str())],
        other => codings(other),
    };
    wanted.iter().any(|(ws, wc)| have.iter().any(|(hs, hc)| hc == wc && (ws.is_none() || ws == hs)))
}

/// The element a token search parameter looks at in `kind`, or `None` when `kind` has no such parameter.
fn element_of(kind: &str, param: &str) -> Option<&'static str> {
    match (param, kind) {
        ("clinical-status", "AllergyIntolerance" | "Condition") => Some("clinicalStatus"),
        ("status", "MedicationRequest" | "Observation" | "DiagnosticReport") => Some("status"),
        ("category", _) => Some("category"),
        _ => None,
    }
}

/// `GET {issuer}/{kind}?…`.
pub fn search(sb: &Sandbox, req: &Request, issuer: &Issuer, kind: &str) -> Response {
    let who = match reader(sb, req, kind, Need::Search) {
        Ok(who) => who,
        Err(refused) => return refused,
    };
    let Ok(params) = parse_query(&req.query) else {
        return fhir::outcome(400, "invalid", "a malformed percent-escape in the query");
    };
    let base = issuer.fhir_base(&sb.base);
    let mut patient: Option<&str> = None;
    let (mut count, mut offset) = (None, 0usize);
    let mut filters: Vec<(&'static str, Vec<(Option<&str>, &str)>)> = Vec::new();
    let mut used: Vec<(String, String)> = Vec::new();
    for (name, value) in &params {
        match name.as_str() {
            "patient" | "subject" => match normalise_reference(value, &base) {
                Some(id) => patient = Some(id),
                None => return fhir::outcome(400, "invalid", "patient must be p1, Patient/p1 or {issuer}/Patient/p1"),
            },
            "_count" => match value.parse::<usize>() {
                Ok(n) => count = Some(n),
                Err(_) => return fhir::outcome(400, "invalid", "_count must be a whole number"),
            },
            "_offset" => match value.parse::<usize>() {
                Ok(n) => offset = n,
                Err(_) => return fhir::outcome(400, "invalid", "_offset must be a whole number"),
            },
            other => match element_of(kind, other) {
                Some(element) => filters.push((element, tokens(value))),
                None => continue,
            },
        }
        if name != "_offset" {
            used.push((name.clone(), value.clone()));
        }
    }
    if let (Some(only), Some(asked)) = (&who.only, patient) {
        if only != asked {
            log::info!(target: "sandbox", "{kind} search by client {:?}: refused: patient {asked}, token's {only}", who.client);
            return fhir::outcome(403, "forbidden", "this token is for another patient")
                .with_header("WWW-Authenticate", "Bearer realm=\"sandbox\", error=\"insufficient_scope\"");
        }
    }
    let patient = patient.or(who.only.as_deref());
    let found: Vec<&Value> = sb
        .settings
        .patients
        .iter()
        .filter(|p| patient.is_none_or(|id| p.id == id))
        .flat_map(|p| &p.chart)
        .filter(|r| r["resourceType"] == kind)
        .filter(|r| filters.iter().all(|(element, wanted)| matches(r, element, wanted)))
        .collect();
    let total = found.len();
    let page: Vec<&Value> = found.iter().skip(offset).take(count.unwrap_or(usize::MAX)).copied().collect();
    let link = |offset: Option<usize>| {
        let mut pairs = used.clone();
        if let Some(n) = offset {
            pairs.push(("_offset".into(), n.to_string()));
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", crate::http::percent_encode(n), crate::http::percent_encode(v)))
            .collect();
        if query.is_empty() { format!("{base}/{kind}") } else { format!("{base}/{kind}?{}", query.join("&")) }
    };
    let mut links = vec![json!({"relation": "self", "url": link((offset > 0).then_some(offset))})];
    if offset + page.len() < total {
        links.push(json!({"relation": "next", "url": link(Some(offset + page.len()))}));
    }
    let entries: Vec<Value> = page
        .iter()
        .map(|r| {
            json!({
                "fullUrl": format!("{base}/{kind}/{}", r["id"].as_str().unwrap_or_default()),
                "resource": r,
                "search": {"mode": "match"},
            })
        })
        .collect();
    log::info!(
        target: "sandbox",
        "{kind} search by client {:?} (token {}) for {}: {} of {total} matched",
        who.client,
        who.token,
        patient.map_or_else(|| "every patient".to_string(), |p| format!("patient {p}")),
        entries.len(),
    );
    super::fhir(
        200,
        &json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": entries}),
    )
}

/// The chart's part of the CapabilityStatement: each type with read and search, and its search parameters.
pub fn capabilities() -> Vec<Value> {
    CHART_TYPES
        .iter()
        .map(|(kind, _)| {
            let mut params = vec![("patient", "reference"), ("category", "token"), ("_count", "number")];
            if element_of(kind, "clinical-status").is_some() {
                params.push(("clinical-status", "token"));
            }
            if element_of(kind, "status").is_some() {
                params.push(("status", "token"));
            }
            let params: Vec<Value> = params.iter().map(|(n, t)| json!({"name": n, "type": t})).collect();
            json!({
                "type": kind,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": params,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parameters_match_codes_with_or_without_their_system() {
        let condition = json!({
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "category": [{"coding": [{"system": "s", "code": "problem-list-item"}]}],
        });
        assert!(matches(&condition, "clinicalStatus", &tokens("active")));
        assert!(matches(&condition, "clinicalStatus", &tokens("resolved,active")));
        assert!(matches(
            &condition,
            "clinicalStatus",
            &tokens("http://terminology.hl7.org/CodeSystem/condition-clinical|active")
        ));
        assert!(!matches(&condition, "clinicalStatus", &tokens("other|active")));
        assert!(!matches(&condition, "clinicalStatus", &tokens("resolved")));
        assert!(matches(&condition, "category", &tokens("problem-list-item")));
        assert!(matches(&json!({"status": "active"}), "status", &tokens("active")));
        assert!(matches(&json!({"category": ["medication"]}), "category", &tokens("medication")));
        assert_eq!(element_of("Observation", "clinical-status"), None, "not a parameter of Observation");
    }
}

//! Finding a study's Endpoints in a search answer, in the three forms SMART Imaging Access lets a server use:
//! a contained Endpoint (`#id`), a response-local Bundle entry (`urn:uuid:…`, which must be on the same page
//! as the study), and an Endpoint entry added by `_include=ImagingStudy:endpoint` (matched by `fullUrl`, or
//! by `Endpoint/{id}`); and reading a WADO-RS Endpoint out of what was found.
//!
//! Pure: values in, values out, no HTTP.

use serde_json::Value;

pub const WADO_RS: &str = "dicom-wado-rs";
const CONNECTION_TYPES: &str = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type";
const REQUIRES_ACCESS_TOKEN: &str = "http://fhir.org/argonaut/smart-imaging/StructureDefinition/requires-access-token";

/// Where a reference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Contained,
    /// A `urn:uuid:` entry of the same page.
    ResponseLocal,
    /// An entry matched by its `fullUrl` or `Endpoint/{id}`.
    Entry,
}

/// Why a reference was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// `#id` that the study does not contain.
    Contained(String),
    /// `urn:uuid:…` that no entry of the study's page has as `fullUrl`.
    NotOnPage(String),
    /// Any other reference, not on this page: it may be in an `_include` answer.
    Elsewhere(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Contained(r) => write!(f, "{r} is not a contained resource of the study"),
            Missing::NotOnPage(r) => write!(f, "{r} is not the fullUrl of any entry on the study's page"),
            Missing::Elsewhere(r) => write!(f, "{r} is not on the study's page"),
        }
    }
}

/// The `endpoint[].reference` values of a study (an endpoint without a reference is given as `""`).
pub fn references(study: &Value) -> Vec<String> {
    study
        .get("endpoint")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| e.get("reference").and_then(Value::as_str).unwrap_or_default().to_string())
        .collect()
}

/// Finds the resource `reference` names, for `study`, within `page` (the Bundle page the study is on).
pub fn resolve<'a>(reference: &str, study: &'a Value, page: &'a Value) -> Result<(Form, &'a Value), Missing> {
    if let Some(id) = reference.strip_prefix('#') {
        return study
            .get("contained")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
            .map(|r| (Form::Contained, r))
            .ok_or_else(|| Missing::Contained(reference.to_string()));
    }
    let entries = || page.get("entry").and_then(Value::as_array).into_iter().flatten();
    let resource_of = |e: &'a Value| e.get("resource").filter(|r| r.is_object());
    if reference.starts_with("urn:uuid:") {
        return entries()
            .find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(reference))
            .and_then(resource_of)
            .map(|r| (Form::ResponseLocal, r))
            .ok_or_else(|| Missing::NotOnPage(reference.to_string()));
    }
    let by_full_url = entries().find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(reference));
    let by_id = || {
        let id = endpoint_id(reference)?;
        entries().find(|e| {
            let r = e.get("resource");
            r.and_then(|r| r.get("resourceType")).and_then(Value::as_str) == Some("Endpoint")
                && r.and_then(|r| r.get("id")).and_then(Value::as_str) == Some(id)
        })
    };
    by_full_url
        .or_else(by_id)
        .and_then(resource_of)
        .map(|r| (Form::Entry, r))
        .ok_or_else(|| Missing::Elsewhere(reference.to_string()))
}

/// The id of an `Endpoint/{id}` reference, relative or absolute, with or without `/_history/{v}`.
fn endpoint_id(reference: &str) -> Option<&str> {
    let path = reference.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    let at = segments.iter().rposition(|s| *s == "Endpoint")?;
    segments.get(at + 1).copied().filter(|id| !id.is_empty())
}

/// A WADO-RS Endpoint, as the probe retrieves from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wado {
    pub address: String,
    /// The `requires-access-token` extension, when the Endpoint carries it.
    pub requires_token: Option<bool>,
}

/// Whether `endpoint` is a DICOMweb WADO-RS Endpoint (apps ignore the other connection types).
pub fn is_wado(endpoint: &Value) -> bool {
    let ct = endpoint.get("connectionType");
    ct.and_then(|c| c.get("code")).and_then(Value::as_str) == Some(WADO_RS)
        && ct.and_then(|c| c.get("system")).and_then(Value::as_str).is_none_or(|s| s == CONNECTION_TYPES)
}

/// Reads a WADO-RS Endpoint, or says what is wrong with it: not an Endpoint, no status or payloadType
/// (both required by FHIR R4), an address that is not an absolute http(s) URL or not a WADO-RS base (no
/// trailing slash, no `/studies` at the end: apps append `/studies/{uid}`).
pub fn read_wado(endpoint: &Value) -> Result<Wado, String> {
    if endpoint.get("resourceType").and_then(Value::as_str) != Some("Endpoint") {
        return Err(format!("is a {}, not an Endpoint", endpoint.get("resourceType").unwrap_or(&Value::Null)));
    }
    let mut problems = Vec::new();
    if endpoint.get("status").and_then(Value::as_str).is_none() {
        problems.push("has no status".to_string());
    }
    if endpoint.get("payloadType").and_then(Value::as_array).is_none_or(|p| p.is_empty()) {
        problems.push("has no payloadType".to_string());
    }
    let address = endpoint.get("address").and_then(Value::as_str).unwrap_or_default();
    if !is_absolute(address) {
        problems.push(format!("address {:?} is not an absolute http(s) URL", super::report::shorten(address)));
    } else if address.ends_with('/') || address.trim_end_matches('/').ends_with("/studies") {
        problems.push("address is not a WADO-RS base (it ends with / or /studies)".to_string());
    }
    if !problems.is_empty() {
        return Err(problems.join(", "));
    }
    let requires_token = endpoint
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|x| x.get("url").and_then(Value::as_str) == Some(REQUIRES_ACCESS_TOKEN))
        .and_then(|x| x.get("valueBoolean"))
        .and_then(Value::as_bool);
    Ok(Wado { address: address.to_string(), requires_token })
}

/// An absolute http(s) URL with a host.
pub fn is_absolute(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(id: &str) -> Value {
        json!({
            "resourceType": "Endpoint", "id": id, "status": "active",
            "connectionType": {"system": CONNECTION_TYPES, "code": "dicom-wado-rs"},
            "payloadType": [{"text": "DICOM"}],
            "address": format!("https://img.example/wado/{id}"),
        })
    }

    #[test]
    fn contained() {
        let study = json!({"contained": [endpoint("e")], "endpoint": [{"reference": "#e"}]});
        let page = json!({"entry": [{"resource": study.clone()}]});
        assert_eq!(references(&study), ["#e"]);
        let (form, found) = resolve("#e", &study, &page).unwrap();
        assert_eq!(form, Form::Contained);
        assert_eq!(read_wado(found).unwrap().address, "https://img.example/wado/e");
        assert_eq!(resolve("#x", &study, &page), Err(Missing::Contained("#x".into())));
    }

    #[test]
    fn response_local_only_on_the_same_page() {
        let study = json!({"endpoint": [{"reference": "urn:uuid:1"}]});
        let page = json!({"entry": [
            {"fullUrl": "https://img.example/fhir/ImagingStudy/s", "resource": study.clone(), "search": {"mode": "match"}},
            {"fullUrl": "urn:uuid:1", "resource": endpoint("u"), "search": {"mode": "include"}},
        ]});
        assert_eq!(resolve("urn:uuid:1", &study, &page).unwrap().0, Form::ResponseLocal);
        let other_page = json!({"entry": [{"resource": study.clone()}]});
        assert_eq!(resolve("urn:uuid:1", &study, &other_page), Err(Missing::NotOnPage("urn:uuid:1".into())));
    }

    #[test]
    fn included_by_full_url_or_by_id() {
        let study = json!({});
        let page = json!({"entry": [
            {"fullUrl": "https://img.example/fhir/Endpoint/a", "resource": endpoint("a")},
        ]});
        assert_eq!(resolve("https://img.example/fhir/Endpoint/a", &study, &page).unwrap().0, Form::Entry);
        assert_eq!(resolve("Endpoint/a", &study, &page).unwrap().0, Form::Entry);
        assert_eq!(resolve("Endpoint/a/_history/2", &study, &page).unwrap().0, Form::Entry);
        assert_eq!(resolve("Endpoint/b", &study, &page), Err(Missing::Elsewhere("Endpoint/b".into())));
    }

    #[test]
    fn wado_endpoints_and_their_problems() {
        assert!(is_wado(&endpoint("a")));
        let mut qido = endpoint("a");
        qido["connectionType"]["code"] = json!("dicom-qido-rs");
        assert!(!is_wado(&qido));
        let mut relative = endpoint("a");
        relative["address"] = json!("/wado/a");
        assert!(read_wado(&relative).unwrap_err().contains("not an absolute"));
        let mut studies = endpoint("a");
        studies["address"] = json!("https://img.example/wado/studies");
        assert!(read_wado(&studies).unwrap_err().contains("not a WADO-RS base"));
        let mut bare = endpoint("a");
        bare.as_object_mut().unwrap().remove("payloadType");
        assert!(read_wado(&bare).unwrap_err().contains("payloadType"));
        let mut bearer = endpoint("a");
        bearer["extension"] = json!([{"url": REQUIRES_ACCESS_TOKEN, "valueBoolean": false}]);
        assert_eq!(read_wado(&bearer).unwrap().requires_token, Some(false));
        assert!(is_absolute("http://h") && !is_absolute("http:///x") && !is_absolute("//h/x") && !is_absolute("h/x"));
    }
}

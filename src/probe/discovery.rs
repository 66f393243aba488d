//! The checks that need no token: the imaging base's `.well-known/smart-configuration` (JSON whatever the
//! `Accept`, absolute URLs, the SMART fields, PKCE, the SMART Imaging Access capabilities and the grant types
//! that go with them), its `metadata`, and CORS on both.

use serde_json::Value;

use super::client::{Answer, Client};
use super::endpoint::is_absolute;
use super::rules::*;

pub const IMAGING_ACCESS: &str = "smart-imaging-access";
pub const APP_LAUNCH: &str = "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch";
pub const BACKEND_SERVICES: &str = "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services";

/// The field in which this project's mock tenants say they have no authorization server.
const NO_AUTHORIZATION_FIELD: &str = "smart_imaging_authorization";

/// The fields of a SMART configuration whose values are URLs (SMART App Launch 2.2, Conformance).
const URL_FIELDS: [&str; 9] = [
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "management_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
    "user_access_brand_bundle",
];

/// The `Accept` values discovery is asked with; `None` sends none.
const ACCEPTS: [Option<&str>; 5] =
    [Some("application/json"), Some("application/fhir+json"), Some("text/html"), Some("*/*"), None];

/// The origin a browser app would send.
const ORIGIN: &str = "https://app.example.org";

/// What the discovery checks learnt.
pub struct Discovered {
    /// The statement of a server whose discovery says it takes any bearer token (a mock tenant of this
    /// project: `smart_imaging_authorization: "none: …"`).
    pub any_token: Option<String>,
}

pub fn check(client: &Client, base: &str) -> (Vec<Check>, Discovered) {
    let url = format!("{base}/.well-known/smart-configuration");
    let mut checks = Vec::new();
    let doc = match client.get(&url, None, &[("Accept", "application/json")]) {
        Err(e) => {
            checks.push(DISCOVERY_SERVED.fail(format!("no answer: {e}")));
            None
        }
        Ok(a) if a.status != 200 => {
            checks.push(DISCOVERY_SERVED.fail(format!("{url} answered {}", a.said())));
            None
        }
        Ok(a) => match a.json().filter(Value::is_object) {
            Some(doc) => {
                checks.push(DISCOVERY_SERVED.pass(format!("{url} answered 200 with a JSON object")));
                Some(doc)
            }
            None => {
                checks.push(DISCOVERY_SERVED.fail(format!("{url} answered 200 with a body that is not a JSON object")));
                None
            }
        },
    };
    let Some(doc) = doc else {
        let why = "no discovery document to look at";
        for rule in [
            DISCOVERY_CONTENT_TYPE,
            DISCOVERY_ABSOLUTE_URLS,
            DISCOVERY_REQUIRED_FIELDS,
            DISCOVERY_PKCE,
            DISCOVERY_IMAGING_CAPABILITY,
            DISCOVERY_MODE_CAPABILITY,
            DISCOVERY_GRANT_TYPES,
            DISCOVERY_BACKEND_AUTH,
        ] {
            checks.push(rule.skip(why));
        }
        checks.push(cors(client, &url, DISCOVERY_CORS));
        checks.extend(metadata(client, base));
        return (checks, Discovered { any_token: None });
    };
    checks.push(content_type(client, &url));
    checks.push(absolute_urls(&doc));
    let any_token = doc
        .get(NO_AUTHORIZATION_FIELD)
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("none") && s.contains("any bearer token"))
        .map(str::to_string);
    let capabilities = strings(&doc, "capabilities");
    let grants = strings(&doc, "grant_types_supported");
    match &any_token {
        Some(statement) => {
            let why = format!("it names no authorization server ({NO_AUTHORIZATION_FIELD}: {statement:?})");
            for rule in [DISCOVERY_REQUIRED_FIELDS, DISCOVERY_PKCE] {
                checks.push(rule.skip(why.clone()));
            }
            checks.push(imaging_capability(&capabilities));
            for rule in [DISCOVERY_MODE_CAPABILITY, DISCOVERY_GRANT_TYPES, DISCOVERY_BACKEND_AUTH] {
                checks.push(rule.skip(why.clone()));
            }
        }
        None => {
            checks.push(required_fields(&doc, &capabilities));
            checks.push(pkce(&doc));
            checks.push(imaging_capability(&capabilities));
            checks.push(mode_capability(&capabilities));
            checks.push(grant_types(&capabilities, &grants));
            checks.push(backend_auth(&doc, &capabilities));
        }
    }
    checks.push(cors(client, &url, DISCOVERY_CORS));
    checks.extend(metadata(client, base));
    (checks, Discovered { any_token })
}

/// The strings of array field `name`.
fn strings<'a>(doc: &'a Value, name: &str) -> Vec<&'a str> {
    doc.get(name).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
}

fn content_type(client: &Client, url: &str) -> Check {
    let mut problems = Vec::new();
    for accept in ACCEPTS {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let asked = accept.map_or("no Accept".to_string(), |a| format!("Accept: {a}"));
        match client.get(url, None, &headers) {
            Err(e) => problems.push(format!("with {asked}: {e}")),
            Ok(a) if a.status != 200 || a.media_type() != "application/json" => {
                problems.push(format!("with {asked}: answered {}", a.said()));
            }
            Ok(a) if !a.json().is_some_and(|d| d.is_object()) => {
                problems.push(format!("with {asked}: the body is not a JSON object"));
            }
            Ok(_) => {}
        }
    }
    DISCOVERY_CONTENT_TYPE.judge(&problems, format!("application/json with each of {} Accept values", ACCEPTS.len()))
}

fn absolute_urls(doc: &Value) -> Check {
    let mut problems = Vec::new();
    let mut seen = 0;
    for field in URL_FIELDS {
        if let Some(value) = doc.get(field) {
            seen += 1;
            if !value.as_str().is_some_and(is_absolute) {
                problems.push(format!("{field} is {value}, not an absolute http(s) URL"));
            }
        }
    }
    for (n, assoc) in doc.get("associated_endpoints").and_then(Value::as_array).into_iter().flatten().enumerate() {
        seen += 1;
        let url = assoc.get("url");
        if !url.and_then(Value::as_str).is_some_and(is_absolute) {
            problems.push(format!("associated_endpoints[{n}].url is {}, not absolute", url.unwrap_or(&Value::Null)));
        }
    }
    let ok = if seen == 0 { "no URL field".to_string() } else { format!("{seen} URL fields, all absolute") };
    DISCOVERY_ABSOLUTE_URLS.judge(&problems, ok)
}

fn required_fields(doc: &Value, capabilities: &[&str]) -> Check {
    let mut problems = Vec::new();
    if !doc.get("token_endpoint").is_some_and(Value::is_string) {
        problems.push("no token_endpoint".to_string());
    }
    for field in ["grant_types_supported", "capabilities", "code_challenge_methods_supported"] {
        if !doc.get(field).is_some_and(Value::is_array) {
            problems.push(format!("no {field} array"));
        }
    }
    let launches = capabilities.iter().any(|c| c.starts_with("launch-") || *c == APP_LAUNCH);
    if launches && !doc.get("authorization_endpoint").is_some_and(Value::is_string) {
        problems.push("a launch capability but no authorization_endpoint".to_string());
    }
    if capabilities.contains(&"sso-openid-connect") {
        for field in ["issuer", "jwks_uri"] {
            if doc.get(field).is_none() {
                problems.push(format!("sso-openid-connect but no {field}"));
            }
        }
    }
    DISCOVERY_REQUIRED_FIELDS.judge(&problems, "token_endpoint, grant_types_supported, capabilities, code_challenge_methods_supported and the conditional fields")
}

fn pkce(doc: &Value) -> Check {
    let methods = strings(doc, "code_challenge_methods_supported");
    if !methods.contains(&"S256") {
        DISCOVERY_PKCE.fail(format!("code_challenge_methods_supported is {methods:?}, without S256"))
    } else if methods.contains(&"plain") {
        DISCOVERY_PKCE.fail(format!("code_challenge_methods_supported is {methods:?}: plain must not be offered"))
    } else {
        DISCOVERY_PKCE.pass(format!("code_challenge_methods_supported {methods:?}"))
    }
}

fn imaging_capability(capabilities: &[&str]) -> Check {
    if capabilities.contains(&IMAGING_ACCESS) {
        DISCOVERY_IMAGING_CAPABILITY.pass(format!("capabilities lists {IMAGING_ACCESS}"))
    } else {
        DISCOVERY_IMAGING_CAPABILITY.fail(format!("capabilities {capabilities:?} lacks {IMAGING_ACCESS}"))
    }
}

fn mode_capability(capabilities: &[&str]) -> Check {
    let modes: Vec<&str> =
        capabilities.iter().copied().filter(|c| *c == APP_LAUNCH || *c == BACKEND_SERVICES).collect();
    if modes.is_empty() {
        DISCOVERY_MODE_CAPABILITY
            .fail(format!("capabilities names no mode: neither {APP_LAUNCH} nor {BACKEND_SERVICES}"))
    } else {
        DISCOVERY_MODE_CAPABILITY.pass(format!("modes {modes:?}"))
    }
}

fn grant_types(capabilities: &[&str], grants: &[&str]) -> Check {
    let mut problems = Vec::new();
    for (mode, grant) in [(APP_LAUNCH, "authorization_code"), (BACKEND_SERVICES, "client_credentials")] {
        match (capabilities.contains(&mode), grants.contains(&grant)) {
            (true, false) => problems.push(format!("{mode} without {grant} in grant_types_supported")),
            (false, true) => problems.push(format!("{grant} in grant_types_supported without {mode}")),
            _ => {}
        }
    }
    DISCOVERY_GRANT_TYPES.judge(&problems, format!("grant_types_supported {grants:?} matches the modes"))
}

fn backend_auth(doc: &Value, capabilities: &[&str]) -> Check {
    if !capabilities.contains(&BACKEND_SERVICES) {
        return DISCOVERY_BACKEND_AUTH.skip("no backend-services capability");
    }
    let mut problems = Vec::new();
    let methods = strings(doc, "token_endpoint_auth_methods_supported");
    if !methods.contains(&"private_key_jwt") {
        problems.push(format!("token_endpoint_auth_methods_supported {methods:?} lacks private_key_jwt"));
    }
    let algs = strings(doc, "token_endpoint_auth_signing_alg_values_supported");
    if !algs.iter().any(|a| *a == "RS384" || *a == "ES384") {
        problems.push(format!("token_endpoint_auth_signing_alg_values_supported {algs:?} has neither RS384 nor ES384"));
    }
    DISCOVERY_BACKEND_AUTH.judge(&problems, format!("private_key_jwt with {algs:?}"))
}

/// A cross-origin GET and its preflight (asking for `Authorization`, which every request for data carries).
fn cors(client: &Client, url: &str, rule: Rule) -> Check {
    let mut problems = Vec::new();
    match client.get(url, None, &[("Origin", ORIGIN), ("Accept", "application/json")]) {
        Err(e) => problems.push(format!("GET: {e}")),
        Ok(a) => problems.extend(allow_origin(&a).map(|p| format!("GET: {p}"))),
    }
    let preflight = [
        ("Origin", ORIGIN),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "authorization"),
    ];
    match client.options(url, &preflight) {
        Err(e) => problems.push(format!("preflight: {e}")),
        Ok(a) if !(200..300).contains(&a.status) => problems.push(format!("preflight answered {}", a.said())),
        Ok(a) => {
            problems.extend(allow_origin(&a).map(|p| format!("preflight: {p}")));
            let headers = a.header_joined("access-control-allow-headers").to_ascii_lowercase();
            // `*` does not cover Authorization (Fetch, CORS-preflight fetch): it must be named.
            if !headers.split(',').any(|h| h.trim() == "authorization") {
                problems
                    .push(format!("preflight: Access-Control-Allow-Headers {headers:?} does not name Authorization"));
            }
            let methods = a.header_joined("access-control-allow-methods").to_ascii_uppercase();
            if !methods.is_empty() && !methods.split(',').any(|m| matches!(m.trim(), "GET" | "*")) {
                problems.push(format!("preflight: Access-Control-Allow-Methods {methods:?} does not allow GET"));
            }
        }
    }
    rule.judge(&problems, "GET and preflight allow any origin, Authorization allowed")
}

/// What is wrong with the `Access-Control-Allow-Origin` of an answer to `ORIGIN`.
fn allow_origin(answer: &Answer) -> Option<String> {
    let origin = answer.header("access-control-allow-origin");
    let credentials = answer.header("access-control-allow-credentials").is_some_and(|c| c.trim() == "true");
    match origin.map(str::trim) {
        None => Some("no Access-Control-Allow-Origin".into()),
        Some("*") if credentials => {
            Some("Access-Control-Allow-Origin * with credentials, which browsers refuse".into())
        }
        Some("*") => None,
        Some(o) if o == ORIGIN => None,
        Some(o) => Some(format!("Access-Control-Allow-Origin {o:?} is not this origin")),
    }
}

fn metadata(client: &Client, base: &str) -> Vec<Check> {
    let url = format!("{base}/metadata");
    let served = match client.get(&url, None, &[("Accept", "application/fhir+json")]) {
        Err(e) => METADATA_SERVED.fail(format!("no answer: {e}")),
        Ok(a) if a.status != 200 => METADATA_SERVED.fail(format!("{url} answered {}", a.said())),
        Ok(a) => {
            let doc = a.json().unwrap_or(Value::Null);
            let mut problems = Vec::new();
            if !matches!(a.media_type().as_str(), "application/fhir+json" | "application/json") {
                problems.push(format!("Content-Type {:?} is not FHIR JSON", a.media_type()));
            }
            if doc.get("resourceType").and_then(Value::as_str) != Some("CapabilityStatement") {
                problems.push("the body is not a CapabilityStatement".to_string());
            }
            let version = doc.get("fhirVersion").and_then(Value::as_str).unwrap_or_default();
            if !version.starts_with("4.0") {
                problems.push(format!("fhirVersion {version:?} is not R4 (4.0.x)"));
            }
            let searches_studies = doc.get("rest").and_then(Value::as_array).into_iter().flatten().any(|rest| {
                rest.get("resource").and_then(Value::as_array).into_iter().flatten().any(|r| {
                    r.get("type").and_then(Value::as_str) == Some("ImagingStudy")
                        && r.get("interaction")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .any(|i| i.get("code").and_then(Value::as_str) == Some("search-type"))
                })
            });
            if !searches_studies {
                problems.push("no rest.resource ImagingStudy with interaction search-type".to_string());
            }
            METADATA_SERVED.judge(&problems, format!("CapabilityStatement, FHIR {version}, ImagingStudy search-type"))
        }
    };
    vec![served, cors(client, &url, METADATA_CORS)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::rules::Outcome;
    use serde_json::json;

    #[test]
    fn grant_types_follow_the_modes_both_ways() {
        assert_eq!(grant_types(&[APP_LAUNCH], &["authorization_code"]).outcome, Outcome::Pass);
        assert_eq!(grant_types(&[APP_LAUNCH], &["client_credentials"]).outcome, Outcome::Fail);
        assert_eq!(grant_types(&[APP_LAUNCH], &["authorization_code", "client_credentials"]).outcome, Outcome::Fail);
        let both = [APP_LAUNCH, BACKEND_SERVICES];
        assert_eq!(grant_types(&both, &["authorization_code", "client_credentials"]).outcome, Outcome::Pass);
        assert_eq!(grant_types(&[BACKEND_SERVICES], &["authorization_code"]).outcome, Outcome::Fail);
    }

    #[test]
    fn pkce_wants_s256_and_no_plain() {
        assert_eq!(pkce(&json!({"code_challenge_methods_supported": ["S256"]})).outcome, Outcome::Pass);
        assert_eq!(pkce(&json!({"code_challenge_methods_supported": ["S256", "plain"]})).outcome, Outcome::Fail);
        assert_eq!(pkce(&json!({})).outcome, Outcome::Fail);
    }

    #[test]
    fn urls_are_absolute() {
        assert_eq!(absolute_urls(&json!({"token_endpoint": "https://a/token"})).outcome, Outcome::Pass);
        assert_eq!(absolute_urls(&json!({"token_endpoint": "/token"})).outcome, Outcome::Fail);
        assert_eq!(absolute_urls(&json!({"associated_endpoints": [{"url": "fhir"}]})).outcome, Outcome::Fail);
    }

    #[test]
    fn required_fields_follow_the_capabilities() {
        let doc = json!({"token_endpoint": "https://a/t", "grant_types_supported": [], "capabilities": ["launch-standalone"],
            "code_challenge_methods_supported": ["S256"]});
        let check = required_fields(&doc, &["launch-standalone"]);
        assert!(check.detail.contains("authorization_endpoint"), "{}", check.detail);
        let mut with = doc.clone();
        with["authorization_endpoint"] = json!("https://a/authorize");
        assert_eq!(required_fields(&with, &["launch-standalone"]).outcome, Outcome::Pass);
    }
}

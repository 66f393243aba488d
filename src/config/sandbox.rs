//! The `[sandbox]` section (docs/ehr.md, The built-in sandbox EHR): its raw form, refusing unknown keys, and the
//! validated form `sandbox::` runs on; and the `{sandbox}` placeholder that tenants may put in front of
//! `fhirBaseUrl`, replaced once the sandbox is bound.
//!
//! Invariants: a sandbox has at least one patient; patient ids are FHIR ids, unique, and not the names of
//! the sandbox's own paths; a client's JWKS holds only public EC P-384 or RSA keys; a listen address that
//! is an IP literal must be loopback unless `allow_remote = true` (a host name is checked once bound).

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

use super::{Authorization, Config, RawIdentifier};
use crate::auth::patient::{Identifier, is_fhir_id};

/// What a tenant writes in front of its `fhirBaseUrl` to mean "the sandbox's public URL, once bound".
pub const SANDBOX_PLACEHOLDER: &str = "{sandbox}";

pub const DEFAULT_SANDBOX_LISTEN: &str = "127.0.0.1:8001";
pub const DEFAULT_TOKEN_LIFETIME: u64 = 3600;
pub const DEFAULT_CODE_LIFETIME: u64 = 60;

/// Path segments of the sandbox itself, which a patient id must not take.
const RESERVED_IDS: [&str; 2] = ["fhir", "auth"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSandbox {
    listen: Option<String>,
    base_url: Option<String>,
    #[serde(default)]
    allow_remote: bool,
    token_lifetime: Option<u64>,
    code_lifetime: Option<u64>,
    #[serde(default)]
    clients: Vec<RawSandboxClient>,
    #[serde(default)]
    patient: Vec<RawSandboxPatient>,
    #[serde(default)]
    app: Vec<RawSandboxApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandboxApp {
    name: String,
    launch_url: String,
    client_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandboxClient {
    id: String,
    jwks: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSandboxPatient {
    id: String,
    name: Option<String>,
    birth_date: Option<String>,
    gender: Option<String>,
    #[serde(default)]
    identifier: Vec<RawIdentifier>,
    chart: Option<String>,
}

/// The validated `[sandbox]`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub listen: String,
    /// `None`: the bound address decides.
    pub base_url: Option<String>,
    pub allow_remote: bool,
    /// Seconds an access token lives.
    pub token_lifetime: u64,
    /// Seconds an authorization code may wait for its exchange.
    pub code_lifetime: u64,
    pub clients: Vec<SandboxClient>,
    pub patients: Vec<SandboxPatient>,
    /// The apps its patient pages launch (EHR launch).
    pub apps: Vec<SandboxApp>,
}

/// An app the sandbox's page for a patient launches: `launch_url?iss=…&launch=…`.
#[derive(Debug, Clone)]
pub struct SandboxApp {
    pub name: String,
    /// Absolute, or starting with `{imaging}`: the imaging server's public URL, filled in at start.
    pub launch_url: String,
    pub client_id: String,
}

/// A confidential backend client (`private_key_jwt`): its id and its public keys.
#[derive(Debug, Clone)]
pub struct SandboxClient {
    pub id: String,
    /// Public JWKs, each EC P-384 or RSA.
    pub keys: Vec<Value>,
}

/// A patient the sandbox serves as `Patient/{id}`.
#[derive(Debug, Clone)]
pub struct SandboxPatient {
    pub id: String,
    pub name: Option<String>,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub identifiers: Vec<Identifier>,
    /// The patient's chart: FHIR resources (`CHART_TYPES`), each with its `resourceType`, `id`, and the
    /// reference to this patient (`patient` or `subject`).
    pub chart: Vec<Value>,
}

/// The resource types a chart may hold, and the element each names its patient in.
pub const CHART_TYPES: [(&str, &str); 5] = [
    ("AllergyIntolerance", "patient"),
    ("Condition", "subject"),
    ("MedicationRequest", "subject"),
    ("Observation", "subject"),
    ("DiagnosticReport", "subject"),
];

/// What an imaging server's public URL is written as in a `launch_url`, filled in at start.
pub const IMAGING_PLACEHOLDER: &str = "{imaging}";

pub(super) fn validate(raw: RawSandbox, resolve: &dyn Fn(&str) -> PathBuf) -> Result<Sandbox, String> {
    let listen = raw.listen.unwrap_or_else(|| DEFAULT_SANDBOX_LISTEN.to_string());
    let well_formed =
        listen.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !well_formed {
        return Err(format!("listen {listen:?}: expected HOST:PORT, e.g. {DEFAULT_SANDBOX_LISTEN}"));
    }
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        if !addr.ip().is_loopback() && !raw.allow_remote {
            return Err(not_loopback(&format!("listen {listen:?}")));
        }
    }
    if let Some(url) = &raw.base_url {
        super::check_base_url(url).map_err(|m| format!("base_url: {m}"))?;
    }
    let lifetime = |key: &str, value: Option<u64>, default: u64, most: u64| match value.unwrap_or(default) {
        n if n == 0 || n > most => Err(format!("{key} must be between 1 and {most} seconds, not {n}")),
        n => Ok(n),
    };
    let token_lifetime = lifetime("token_lifetime", raw.token_lifetime, DEFAULT_TOKEN_LIFETIME, 86_400)?;
    let code_lifetime = lifetime("code_lifetime", raw.code_lifetime, DEFAULT_CODE_LIFETIME, 600)?;
    let mut clients: Vec<SandboxClient> = Vec::new();
    for (n, c) in raw.clients.into_iter().enumerate() {
        if c.id.is_empty() || c.id.chars().any(|ch| ch.is_control()) {
            return Err(format!("clients[{n}].id must be a non-empty client id"));
        }
        if clients.iter().any(|k| k.id == c.id) {
            return Err(format!("clients[{n}].id {:?} is listed twice", c.id));
        }
        let path = resolve(&c.jwks);
        let keys = public_keys(&path).map_err(|m| format!("clients[{n}].jwks: {}: {m}", path.display()))?;
        clients.push(SandboxClient { id: c.id, keys });
    }
    if raw.patient.is_empty() {
        return Err("patient: the sandbox needs at least one [[sandbox.patient]]".into());
    }
    let mut patients: Vec<SandboxPatient> = Vec::new();
    for (n, p) in raw.patient.into_iter().enumerate() {
        let at = format!("patient[{n}]");
        if !is_fhir_id(&p.id) || RESERVED_IDS.contains(&p.id.as_str()) {
            return Err(format!("{at}.id {:?} must be a FHIR id other than fhir and auth", p.id));
        }
        if patients.iter().any(|q| q.id == p.id) {
            return Err(format!("{at}.id {:?} is listed twice", p.id));
        }
        if let Some(g) = &p.gender {
            if !["male", "female", "other", "unknown"].contains(&g.as_str()) {
                return Err(format!("{at}.gender {g:?} must be male, female, other or unknown"));
            }
        }
        if let Some(d) = &p.birth_date {
            if !is_fhir_date(d) {
                return Err(format!("{at}.birthDate {d:?} must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)"));
            }
        }
        if p.identifier.iter().any(|i| i.value.is_empty()) {
            return Err(format!("{at}.identifier: every entry needs a value"));
        }
        let identifiers = p
            .identifier
            .into_iter()
            .map(|i| Identifier { system: i.system, value: i.value, type_code: i.type_code })
            .collect();
        let chart = match &p.chart {
            Some(file) => {
                let path = resolve(file);
                chart_of(&path, &p.id).map_err(|m| format!("{at}.chart: {}: {m}", path.display()))?
            }
            None => Vec::new(),
        };
        for resource in &chart {
            let same = |q: &&SandboxPatient| {
                q.chart.iter().any(|r| r["resourceType"] == resource["resourceType"] && r["id"] == resource["id"])
            };
            if let Some(other) = patients.iter().find(same) {
                return Err(format!(
                    "{at}.chart: {}/{} is in patient {}'s chart too",
                    resource["resourceType"].as_str().unwrap_or_default(),
                    resource["id"].as_str().unwrap_or_default(),
                    other.id
                ));
            }
        }
        patients.push(SandboxPatient {
            id: p.id,
            name: p.name.filter(|n| !n.trim().is_empty()),
            birth_date: p.birth_date,
            gender: p.gender,
            identifiers,
            chart,
        });
    }
    let mut apps: Vec<SandboxApp> = Vec::new();
    for (n, a) in raw.app.into_iter().enumerate() {
        let at = format!("app[{n}]");
        if a.name.trim().is_empty() || a.client_id.is_empty() || a.client_id.chars().any(|c| c.is_control()) {
            return Err(format!("{at}: name and client_id must be non-empty"));
        }
        let rest = a.launch_url.strip_prefix(IMAGING_PLACEHOLDER).map(|r| format!("http://imaging{r}"));
        let url = rest.as_deref().unwrap_or(&a.launch_url);
        let absolute = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
        if !absolute.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) || url.contains(['#', ' ']) {
            return Err(format!(
                "{at}.launch_url {:?}: an absolute http(s) URL without a fragment, or {IMAGING_PLACEHOLDER}/path",
                a.launch_url
            ));
        }
        apps.push(SandboxApp { name: a.name, launch_url: a.launch_url, client_id: a.client_id });
    }
    Ok(Sandbox {
        listen,
        base_url: raw.base_url.map(|u| u.trim_end_matches('/').to_string()),
        allow_remote: raw.allow_remote,
        token_lifetime,
        code_lifetime,
        clients,
        patients,
        apps,
    })
}

/// The resources of patient `id` in the chart file at `path`: its table `[id]`, whose keys are resource
/// types holding arrays of resources (`[[p1.Condition]]`). Each resource needs a FHIR `id`, unique within its
/// type, and must not name its type or patient, which the sandbox fills in. An attachment of `presentedForm`
/// may give `text`, served as base64 `data`.
fn chart_of(path: &Path, id: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| format!("not TOML: {e}"))?;
    let Some(table) = doc.get(id) else {
        return Ok(Vec::new());
    };
    let table = table.as_table().ok_or_else(|| format!("{id} is not a table of resource types"))?;
    let mut out: Vec<Value> = Vec::new();
    for (kind, entries) in table {
        let Some((kind, reference)) = CHART_TYPES.iter().find(|(k, _)| k == kind) else {
            let known: Vec<&str> = CHART_TYPES.iter().map(|(k, _)| *k).collect();
            return Err(format!("{id}.{kind}: not a resource type a chart holds ({})", known.join(", ")));
        };
        let entries = entries.as_array().ok_or_else(|| format!("{id}.{kind} is not an array ([[{id}.{kind}]])"))?;
        for (n, entry) in entries.iter().enumerate() {
            let at = format!("{id}.{kind}[{n}]");
            let mut resource = serde_json::to_value(entry).map_err(|e| format!("{at}: {e}"))?;
            let Some(fields) = resource.as_object_mut() else {
                return Err(format!("{at} is not a table"));
            };
            let rid = fields.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            if !is_fhir_id(&rid) {
                return Err(format!("{at}.id {rid:?} must be a FHIR id"));
            }
            if out.iter().any(|r| r["resourceType"] == *kind && r["id"] == rid.as_str()) {
                return Err(format!("{at}.id {rid:?} is listed twice"));
            }
            for taken in ["resourceType", reference] {
                if fields.contains_key(taken) {
                    return Err(format!("{at}.{taken}: the sandbox fills it in"));
                }
            }
            if let Some(Value::Array(forms)) = fields.get_mut("presentedForm") {
                for form in forms.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(Value::String(text)) = form.remove("text") {
                        use base64::Engine as _;
                        let data = base64::engine::general_purpose::STANDARD.encode(text.trim_start());
                        form.insert("data".into(), Value::from(data));
                    }
                }
            }
            fields.insert("resourceType".into(), Value::from(*kind));
            fields.insert((*reference).into(), serde_json::json!({"reference": format!("Patient/{id}")}));
            out.push(resource);
        }
    }
    Ok(out)
}

/// The refusal of a listen address other machines could reach.
pub fn not_loopback(what: &str) -> String {
    format!(
        "{what} is not a loopback address: the sandbox is for teaching and tests (it approves every app without a \
         login); set sandbox.allow_remote = true to serve it to other machines anyway"
    )
}

/// A `{sandbox}`-prefixed URL: the placeholder, then nothing or a path.
pub(super) fn check_placeholder_url(url: &str, have_sandbox: bool) -> Option<Result<(), String>> {
    let rest = url.strip_prefix(SANDBOX_PLACEHOLDER)?;
    Some(if !have_sandbox {
        Err(format!("{SANDBOX_PLACEHOLDER} names the sandbox, but the configuration has no [sandbox] section"))
    } else if !(rest.is_empty() || rest.starts_with('/')) || rest.contains(['?', '#']) {
        Err(format!("{url:?}: {SANDBOX_PLACEHOLDER} must be followed by nothing or a path"))
    } else {
        Ok(())
    })
}

/// FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, digits where digits go.
fn is_fhir_date(d: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = d.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    parts.iter().all(|p| digits(p)) && matches!(lens.as_slice(), [4] | [4, 2] | [4, 2, 2])
}

/// The public keys of a JWKS (`{"keys": […]}`) or JWK file.
fn public_keys(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = match doc.get("keys") {
        Some(Value::Array(keys)) => keys.clone(),
        Some(_) => return Err("\"keys\" is not an array".into()),
        None => vec![doc],
    };
    if keys.is_empty() {
        return Err("holds no key".into());
    }
    for key in &keys {
        if key.get("d").is_some() {
            return Err("holds a private key: give the sandbox the public JWK (keygen's .public.jwk.json)".into());
        }
        let has = |name: &str| key.get(name).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        let ok = match key.get("kty").and_then(Value::as_str) {
            Some("EC") => key.get("crv").and_then(Value::as_str) == Some("P-384") && has("x") && has("y"),
            Some("RSA") => has("n") && has("e"),
            _ => false,
        };
        if !ok {
            return Err("every key must be a public EC P-384 (ES384) or RSA (RS384) JWK".into());
        }
    }
    Ok(keys)
}

impl Config {
    /// Puts the sandbox's public URL, once bound, where a tenant wrote `{sandbox}`: in `fhirBaseUrl`,
    /// `tokenEndpoint` and `introspectionEndpoint`.
    pub fn use_sandbox_url(&mut self, url: &str) {
        self.sandbox_url = Some(url.to_string());
        let fill = |s: &mut String| {
            if let Some(rest) = s.strip_prefix(SANDBOX_PLACEHOLDER) {
                *s = format!("{url}{rest}");
            }
        };
        for tenant in self.tenants.values_mut() {
            if let Authorization::SmartOnFhir(settings) = &mut tenant.auth {
                fill(&mut settings.fhir_base_url);
                settings.token_endpoint.iter_mut().for_each(fill);
                settings.introspection_endpoint.iter_mut().for_each(fill);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(tables: &str) -> Result<Config, String> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("smart-imaging-sandbox-config-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("client.public.jwk.json"), r#"{"kty":"EC","crv":"P-384","x":"AAAA","y":"BBBB"}"#)
            .unwrap();
        std::fs::write(dir.join("client.private.jwk.json"), r#"{"kty":"EC","crv":"P-384","x":"A","y":"B","d":"C"}"#)
            .unwrap();
        let text = format!(
            "[images]\nindex = \"i.toml\"\n[tenants.open]\nauthorization = {{ type = \"mock\", ignorePatient = true }}\n\
             images = {{ lookup = \"all-studies\" }}\n{tables}"
        );
        Config::parse(&text, &dir.join("smart-imaging.toml")).map_err(|e| e.to_string())
    }

    const PATIENT: &str = "[[sandbox.patient]]\nid = \"p1\"\nname = \"Anna Müller\"\nbirthDate = \"1970-04-12\"\n\
                           gender = \"female\"\nidentifier = [{ value = \"MRN-1001\", type = \"MR\" }]\n";

    #[test]
    fn a_sandbox_with_defaults() {
        let c =
            check(&format!("[sandbox]\nclients = [{{ id = \"c\", jwks = \"client.public.jwk.json\" }}]\n{PATIENT}"))
                .unwrap();
        let s = c.sandbox.unwrap();
        assert_eq!(s.listen, DEFAULT_SANDBOX_LISTEN);
        assert_eq!((s.token_lifetime, s.code_lifetime, s.allow_remote), (3600, 60, false));
        assert_eq!(s.clients[0].keys.len(), 1);
        assert_eq!(s.patients[0].identifiers[0].type_code.as_deref(), Some("MR"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = check(&format!("[sandbox]\nlisten_on = \"x\"\n{PATIENT}")).unwrap_err();
        assert!(e.contains("listen_on"), "{e}");
        let e = check(&PATIENT.replace("gender", "sex")).unwrap_err();
        assert!(e.contains("sex"), "{e}");
        let e = check(&format!("[sandbox]\n{}", PATIENT.replace("female", "f"))).unwrap_err();
        assert!(e.contains("sandbox.patient[0].gender"), "{e}");
        let e = check(&format!("[sandbox]\n{}", PATIENT.replace("1970-04-12", "12.4.1970"))).unwrap_err();
        assert!(e.contains("sandbox.patient[0].birthDate"), "{e}");
        let e = check(&format!("[sandbox]\n{}", PATIENT.replace("\"p1\"", "\"fhir\""))).unwrap_err();
        assert!(e.contains("sandbox.patient[0].id"), "{e}");
        let e = check("[sandbox]\n").unwrap_err();
        assert!(e.contains("sandbox.patient"), "{e}");
        let e = check(&format!("[sandbox]\ntoken_lifetime = 0\n{PATIENT}")).unwrap_err();
        assert!(e.contains("sandbox.token_lifetime"), "{e}");
        let e =
            check(&format!("[sandbox]\nclients = [{{ id = \"c\", jwks = \"client.private.jwk.json\" }}]\n{PATIENT}"))
                .unwrap_err();
        assert!(e.contains("sandbox.clients[0].jwks") && e.contains("private"), "{e}");
    }

    #[test]
    fn a_remote_listen_address_needs_allow_remote() {
        let e = check(&format!("[sandbox]\nlisten = \"0.0.0.0:8001\"\n{PATIENT}")).unwrap_err();
        assert!(e.contains("sandbox.listen") && e.contains("sandbox.allow_remote = true"), "{e}");
        let c = check(&format!("[sandbox]\nlisten = \"0.0.0.0:8001\"\nallow_remote = true\n{PATIENT}")).unwrap();
        assert!(c.sandbox.unwrap().allow_remote);
        let e = check(&format!("[sandbox]\nlisten = \"8001\"\n{PATIENT}")).unwrap_err();
        assert!(e.contains("HOST:PORT"), "{e}");
    }

    #[test]
    fn the_placeholder_needs_a_sandbox_and_is_filled_in() {
        let smart = "[tenants.smart]\nauthorization.type = \"smart-on-fhir\"\n\
                     authorization.fhirBaseUrl = \"{sandbox}/fhir\"\n\
                     authorization.client = { id = \"c\", secret = \"s\" }\nimages.lookup = \"studies-by-context\"\n";
        let e = check(smart).unwrap_err();
        assert!(e.contains("tenants.smart.authorization.fhirBaseUrl") && e.contains("[sandbox]"), "{e}");
        let e =
            check(&format!("{}[sandbox]\n{PATIENT}", smart.replace("{sandbox}/fhir", "{sandbox}fhir"))).unwrap_err();
        assert!(e.contains("followed by nothing or a path"), "{e}");
        let mut c = check(&format!("{smart}[sandbox]\n{PATIENT}")).unwrap();
        c.use_sandbox_url("http://127.0.0.1:9");
        assert_eq!(c.tenants["smart"].ehr_base(), Some("http://127.0.0.1:9/fhir"));
    }

    #[test]
    fn fhir_dates() {
        for good in ["1970", "1970-04", "1970-04-12"] {
            assert!(is_fhir_date(good), "{good}");
        }
        for bad in ["70", "1970-4-12", "1970-04-12T00:00", "", "abcd"] {
            assert!(!is_fhir_date(bad), "{bad}");
        }
    }
}

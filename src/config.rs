//! The configuration file (docs/operations.md, Configuration): a raw form that serde reads, refusing unknown keys
//! and values, and a validated form the server runs on, converted once at start.
//!
//! Invariants: nothing outside this module sees the raw form; every relative path is resolved against the
//! folder of the configuration file; every error names the file and the key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::ehr::{ClientAuth, Settings as SmartOnFhir};
use crate::auth::jwk::SigningKey;
use crate::auth::patient::{IdSelector, Identifier, PatientContext};
use crate::auth::visibility::Visibility;

pub mod restart;
mod sandbox;
pub use sandbox::{
    CHART_TYPES, DEFAULT_SANDBOX_LISTEN, IMAGING_PLACEHOLDER, Sandbox, SandboxClient, SandboxPatient, not_loopback,
};

// ---------------------------------------------------------------------------------------------------
// Raw form, as written in the TOML file.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    images: RawImages,
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
    #[serde(default)]
    audit: RawAudit,
    sandbox: Option<sandbox::RawSandbox>,
    #[serde(default)]
    viewer: RawViewer,
}

/// `[viewer]`: where other viewers live.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawViewer {
    ohif: Option<String>,
}

/// `[audit]`: where the audit trail goes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    base_url: Option<String>,
    threads: Option<usize>,
    key_file: Option<String>,
    study_token_ttl: Option<u64>,
    read_timeout: Option<u64>,
    write_timeout: Option<u64>,
    shutdown_timeout: Option<u64>,
    max_connections: Option<usize>,
    min_send_rate: Option<u64>,
    input_budget: Option<u64>,
    metrics: Option<bool>,
    inflate_budget: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImages {
    index: String,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    authorization: RawAuthorization,
    images: RawTenantImages,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
enum AuthType {
    #[serde(rename = "mock")]
    Mock,
    #[serde(rename = "smart-on-fhir")]
    SmartOnFhir,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAuthorization {
    #[serde(rename = "type")]
    kind: AuthType,
    #[serde(default)]
    ignore_patient: bool,
    patient: Option<RawPatient>,
    fhir_base_url: Option<String>,
    client: Option<RawClient>,
    token_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    introspection_cache_seconds: Option<u64>,
    negative_cache_seconds: Option<u64>,
    patient_cache_seconds: Option<u64>,
    cache_size: Option<usize>,
    timeout_seconds: Option<u64>,
    backend_services: Option<RawBackendServices>,
}

/// `authorization.backendServices`: the backend clients whose `system/` scopes this tenant honours.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackendServices {
    clients: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: String,
    jwk: Option<String>,
    secret: Option<String>,
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatient {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    identifier: Vec<RawIdentifier>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentifier {
    value: String,
    system: Option<String>,
    #[serde(rename = "type")]
    type_code: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    #[serde(rename = "studies-by-context")]
    StudiesByContext,
    #[serde(rename = "all-studies")]
    AllStudies,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTenantImages {
    lookup: Lookup,
    patient_id: Option<RawIdSelector>,
    /// DICOM IssuerOfPatientID → Patient.identifier.system.
    issuers: Option<BTreeMap<String, String>>,
    endpoints: Option<EndpointForm>,
}

/// Where a search answer puts each study's WADO-RS Endpoint (`images.endpoints`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointForm {
    /// A Bundle entry of its own, `fullUrl` `urn:uuid:…`, `search.mode` `include`, on the study's page.
    #[default]
    #[serde(rename = "bundle")]
    Bundle,
    /// Contained in the ImagingStudy, referenced as `#wado`.
    #[serde(rename = "contained")]
    Contained,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdSelector {
    system: Option<String>,
    #[serde(rename = "type")]
    type_code: Option<String>,
    #[serde(default)]
    any: bool,
}

// ---------------------------------------------------------------------------------------------------
// Validated form.

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub listen: String,
    /// `None` when neither the file nor the command line sets it: the bound address decides.
    pub base_url: Option<String>,
    pub threads: usize,
    pub key_file: Option<PathBuf>,
    pub study_token_ttl: u64,
    /// Seconds a connection has to bring a complete request, after opening or after its previous response.
    pub read_timeout: u64,
    /// Seconds a blocked write to a client may wait before the connection is dropped.
    pub write_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    pub shutdown_timeout: u64,
    /// Open client connections allowed; `None` derives the cap from the open-file limit at start.
    pub max_connections: Option<usize>,
    /// Bytes per second, averaged over 10 s, below which a client taking a response is dropped.
    pub min_send_rate: u64,
    /// Bytes that all connections' unfinished requests may hold together; past it the connections holding
    /// the most are closed.
    pub input_budget: u64,
    /// Bytes that the deflated data sets inflated for responses may hold at once, all responses together.
    pub inflate_budget: u64,
    pub index_path: PathBuf,
    /// The UTC offset, as `+hh:mm`, for study times that carry none.
    pub timezone: String,
    pub tenants: BTreeMap<String, Tenant>,
    /// Whether `GET /metrics` answers (`server.metrics`, on by default).
    pub metrics: bool,
    /// The audit trail's file (`audit.file`); `None` keeps no audit trail.
    pub audit_file: Option<PathBuf>,
    /// Where an OHIF Viewer is served (`viewer.ohif`), for the viewer page's "Open in OHIF" links.
    pub ohif_url: Option<String>,
    /// The built-in sandbox EHR, when `[sandbox]` is configured.
    pub sandbox: Option<Sandbox>,
    /// The sandbox's per-patient issuers, `(patient's name or id, issuer URL)`, once it is bound: what the
    /// viewer offers to sign in at. Filled in at start, not read from the file.
    pub sandbox_issuers: Vec<(String, String)>,
    /// The sandbox's public URL, once bound: what `{sandbox}` was filled in with (`use_sandbox_url`).
    pub sandbox_url: Option<String>,
    /// The `[sandbox]` table as written, to tell whether a reload changed it.
    pub sandbox_table: Option<toml::Value>,
}

/// The capability string of a server of SMART Imaging Access (the IG's Discovery section).
pub const IMAGING_ACCESS: &str = "smart-imaging-access";

/// The capability string of a SMART Imaging Access deployment that an app reaches by SMART App Launch: a
/// token got at the EHR by `authorization_code`, brought here (the IG's Discovery section).
pub const IMAGING_APP_LAUNCH: &str = "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch";

/// The capability string of a SMART Imaging Access deployment that backend clients reach with SMART Backend
/// Services: `client_credentials` tokens with `system/ImagingStudy.rs`, each request naming its patient.
pub const IMAGING_BACKEND_SERVICES: &str = "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services";

#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub auth: Authorization,
    /// Who sees which study: `images.lookup` and `authorization.ignorePatient`, as one policy.
    pub visibility: Visibility,
    pub id_selector: IdSelector,
    /// Where search answers put the Endpoints (`images.endpoints`); a read always contains its Endpoint.
    pub endpoints: EndpointForm,
    /// What the tenant was made from, to tell whether a reload changed it.
    pub source: Source,
}

/// What a tenant is made from: its `[tenants.NAME]` table as written and the files it names (its client's
/// key). Two tenants of equal sources are the same tenant, so a reload keeps the one serving (and its EHR
/// client's caches) when its source is unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    table: Option<toml::Value>,
    files: Vec<String>,
}

impl Tenant {
    /// The FHIR base of the tenant's EHR, which absolute patient references must be under; `None` for a
    /// mock tenant, which has none.
    pub fn ehr_base(&self) -> Option<&str> {
        match &self.auth {
            Authorization::SmartOnFhir(s) => Some(&s.fhir_base_url),
            Authorization::Mock { .. } => None,
        }
    }

    /// The SMART Imaging Access capabilities of the tenant: in its own `.well-known/smart-configuration`,
    /// and in the `associated_endpoints` of the sandbox EHR when it is the tenant's EHR, so the two agree.
    /// A mock tenant has no authorization server, so no App Launch; Backend Services only where configured.
    pub fn imaging_capabilities(&self) -> &'static [&'static str] {
        match &self.auth {
            Authorization::SmartOnFhir(s) if !s.backend_clients.is_empty() => {
                &[IMAGING_ACCESS, IMAGING_APP_LAUNCH, IMAGING_BACKEND_SERVICES]
            }
            Authorization::SmartOnFhir(_) => &[IMAGING_ACCESS, IMAGING_APP_LAUNCH],
            Authorization::Mock { .. } => &[IMAGING_ACCESS],
        }
    }
}

#[derive(Debug, Clone)]
pub enum Authorization {
    /// No introspection; the configured patient (if any) is the context.
    Mock { patient: Option<Arc<PatientContext>> },
    /// Token introspection and Patient reads at an EHR (docs/ehr.md, Connecting to an EHR).
    SmartOnFhir(SmartOnFhir),
}

/// A start-up failure: always exits with status 2 and one message.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
pub const DEFAULT_THREADS: usize = 32;
pub const DEFAULT_TTL: u64 = 3600;
pub const DEFAULT_MIN_SEND_RATE: u64 = 16 * 1024;
/// The default `server.input_budget`: 64 MiB.
pub const DEFAULT_INPUT_BUDGET: u64 = 64 << 20;
/// The default `server.inflate_budget`: 256 MiB.
pub const DEFAULT_INFLATE_BUDGET: u64 = 256 << 20;
/// The most connections the derived cap allows: each holds a tiny_http thread.
pub const MAX_DERIVED_CONNECTIONS: usize = 4096;

impl Config {
    /// The connection cap: `server.max_connections`, else derived from the open-file limit, leaving room for
    /// the files the server maps and its EHR calls (each connection holds two descriptors in tiny_http).
    pub fn connection_cap(&self, open_files: u64) -> usize {
        if let Some(n) = self.max_connections {
            return n;
        }
        let reserve = 64 + 4 * self.threads as u64;
        let derived = open_files.saturating_sub(reserve) / 2;
        usize::try_from(derived).unwrap_or(usize::MAX).clamp(16, MAX_DERIVED_CONNECTIONS)
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { file: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { file: path.to_path_buf(), message };
        let raw: RawConfig = toml::from_str(text).map_err(|e| err(one_line(&e.to_string())))?;
        // The tables as written, beside their typed form, for a reload to compare.
        let mut tables: toml::Table = toml::from_str(text).map_err(|e| err(one_line(&e.to_string())))?;
        let mut tenant_tables = match tables.remove("tenants") {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| if p.is_empty() { dir.clone() } else { dir.join(p) };

        let threads = raw.server.threads.unwrap_or(DEFAULT_THREADS);
        if threads == 0 || threads > 4096 {
            return Err(err(format!("server.threads must be between 1 and 4096, not {threads}")));
        }
        let study_token_ttl = raw.server.study_token_ttl.unwrap_or(DEFAULT_TTL);
        if study_token_ttl == 0 {
            return Err(err("server.study_token_ttl must be at least 1 second".into()));
        }
        let seconds = |key: &str, value: Option<u64>, default: u64| match value.unwrap_or(default) {
            0 => Err(err(format!("server.{key} must be at least 1 second"))),
            n if n > 86_400 => Err(err(format!("server.{key} must be at most 86400 seconds"))),
            n => Ok(n),
        };
        let read_timeout = seconds("read_timeout", raw.server.read_timeout, 30)?;
        let write_timeout = seconds("write_timeout", raw.server.write_timeout, 60)?;
        let shutdown_timeout = seconds("shutdown_timeout", raw.server.shutdown_timeout, 10)?;
        if let Some(n) = raw.server.max_connections {
            if !(1..=1_000_000).contains(&n) {
                return Err(err(format!("server.max_connections must be between 1 and 1000000, not {n}")));
            }
        }
        let min_send_rate = raw.server.min_send_rate.unwrap_or(DEFAULT_MIN_SEND_RATE);
        if min_send_rate == 0 {
            return Err(err("server.min_send_rate must be at least 1 byte per second".into()));
        }
        let input_budget = raw.server.input_budget.unwrap_or(DEFAULT_INPUT_BUDGET);
        if input_budget < 1 << 20 {
            return Err(err(format!("server.input_budget must be at least 1048576 bytes (1 MiB), not {input_budget}")));
        }
        let inflate_budget = raw.server.inflate_budget.unwrap_or(DEFAULT_INFLATE_BUDGET);
        if inflate_budget < 1 << 20 {
            return Err(err(format!(
                "server.inflate_budget must be at least 1048576 bytes (1 MiB), not {inflate_budget}"
            )));
        }
        if let Some(url) = &raw.viewer.ohif {
            check_base_url(url).map_err(|m| err(format!("viewer.ohif: {m}")))?;
        }
        if let Some(url) = &raw.server.base_url {
            check_base_url(url).map_err(|m| err(format!("server.base_url: {m}")))?;
        }
        let timezone = match raw.images.timezone.as_deref() {
            None => "+00:00".to_string(),
            Some(tz) => crate::time::normalise_offset(tz)
                .ok_or_else(|| err(format!("images.timezone: {tz:?} is not an offset like +01:00")))?,
        };
        if raw.images.index.is_empty() {
            return Err(err("images.index must name the index file".into()));
        }
        if raw.tenants.is_empty() {
            return Err(err("no [tenants.NAME] table: at least one tenant is required".into()));
        }
        let sandbox =
            raw.sandbox.map(|s| sandbox::validate(s, &resolve)).transpose().map_err(|m| err(format!("sandbox.{m}")))?;
        let mut tenants = BTreeMap::new();
        for (name, t) in raw.tenants {
            let source = Source { table: tenant_tables.remove(&name), files: Vec::new() };
            let tenant = validate_tenant(&name, t, source, threads, &resolve, sandbox.is_some())
                .map_err(|m| err(format!("tenants.{name}.{m}")))?;
            tenants.insert(name, tenant);
        }
        Ok(Config {
            path: path.to_path_buf(),
            listen: raw.server.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            base_url: raw.server.base_url.map(|u| u.trim_end_matches('/').to_string()),
            threads,
            key_file: raw.server.key_file.as_deref().map(resolve),
            study_token_ttl,
            read_timeout,
            write_timeout,
            shutdown_timeout,
            max_connections: raw.server.max_connections,
            min_send_rate,
            input_budget,
            inflate_budget,
            index_path: resolve(&raw.images.index),
            timezone,
            tenants,
            metrics: raw.server.metrics.unwrap_or(true),
            audit_file: match raw.audit.file.as_deref() {
                Some("") => return Err(err("audit.file must name a file".into())),
                file => file.map(resolve),
            },
            sandbox,
            sandbox_issuers: Vec::new(),
            sandbox_url: None,
            sandbox_table: tables.remove("sandbox"),
            ohif_url: raw.viewer.ohif.map(|u| u.trim_end_matches('/').to_string()),
        })
    }
}

fn validate_tenant(
    name: &str,
    t: RawTenant,
    mut source: Source,
    threads: usize,
    resolve: &dyn Fn(&str) -> PathBuf,
    have_sandbox: bool,
) -> Result<Tenant, String> {
    if !is_tenant_name(name) {
        return Err("the tenant name may hold only letters, digits, '-' and '_'".into());
    }
    let ignore_patient = t.authorization.ignore_patient;
    let issuers = t.images.issuers.unwrap_or_default();
    if let Some((issuer, system)) = issuers.iter().find(|(i, s)| i.is_empty() || s.is_empty()) {
        return Err(format!("images.issuers: {issuer:?} = {system:?}: neither side may be empty"));
    }
    let issuers = Arc::new(issuers);
    let id_selector = match t.images.patient_id {
        None => IdSelector { issuers, ..IdSelector::default() },
        Some(s) => {
            if s.any && (s.system.is_some() || s.type_code.is_some()) {
                return Err("images.patientId: any = true takes every identifier; drop system and type".into());
            }
            if s.system.as_deref() == Some("") || s.type_code.as_deref() == Some("") {
                return Err("images.patientId: system and type must not be empty".into());
            }
            IdSelector { system: s.system, type_code: s.type_code, any: s.any, issuers }
        }
    };
    let a = t.authorization;
    let auth = match a.kind {
        AuthType::Mock => {
            let smart_keys = [
                ("fhirBaseUrl", a.fhir_base_url.is_some()),
                ("client", a.client.is_some()),
                ("tokenEndpoint", a.token_endpoint.is_some()),
                ("introspectionEndpoint", a.introspection_endpoint.is_some()),
                ("introspectionCacheSeconds", a.introspection_cache_seconds.is_some()),
                ("negativeCacheSeconds", a.negative_cache_seconds.is_some()),
                ("patientCacheSeconds", a.patient_cache_seconds.is_some()),
                ("cacheSize", a.cache_size.is_some()),
                ("timeoutSeconds", a.timeout_seconds.is_some()),
                ("backendServices", a.backend_services.is_some()),
            ];
            if let Some((key, _)) = smart_keys.iter().find(|(_, set)| *set) {
                return Err(format!("authorization.{key} applies only to type = \"smart-on-fhir\""));
            }
            let patient = a.patient.map(|p| mock_patient(p, &id_selector)).transpose()?.map(Arc::new);
            let needs_patient =
                Visibility::of(t.images.lookup == Lookup::StudiesByContext, ignore_patient) != Visibility::Everything;
            if patient.is_none() && needs_patient {
                return Err("authorization.patient is required for a mock tenant unless \
                            ignorePatient = true and images.lookup = \"all-studies\""
                    .into());
            }
            Authorization::Mock { patient }
        }
        AuthType::SmartOnFhir => {
            if a.patient.is_some() {
                return Err("authorization.patient applies only to type = \"mock\"; the EHR names the patient".into());
            }
            let fhir_base_url = a.fhir_base_url.ok_or("authorization.fhirBaseUrl is required for smart-on-fhir")?;
            for (key, url) in [
                ("fhirBaseUrl", Some(&fhir_base_url)),
                ("tokenEndpoint", a.token_endpoint.as_ref()),
                ("introspectionEndpoint", a.introspection_endpoint.as_ref()),
            ] {
                if let Some(url) = url {
                    sandbox::check_placeholder_url(url, have_sandbox)
                        .unwrap_or_else(|| check_base_url(url))
                        .map_err(|m| format!("authorization.{key}: {m}"))?;
                }
            }
            let client = a.client.ok_or("authorization.client is required for smart-on-fhir")?;
            if client.id.is_empty() {
                return Err("authorization.client.id must not be empty".into());
            }
            let client_auth = match (client.jwk, client.secret) {
                (Some(path), None) => {
                    let path = resolve(&path);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("authorization.client.jwk: cannot read {}: {e}", path.display()))?;
                    let key = SigningKey::from_jwk(&text)
                        .map_err(|e| format!("authorization.client.jwk: {}: {e}", path.display()))?;
                    source.files.push(text);
                    ClientAuth::Jwt(Arc::new(key))
                }
                (None, Some(secret)) if !secret.is_empty() => ClientAuth::Secret(secret),
                _ => return Err("authorization.client needs exactly one of jwk or secret".into()),
            };
            let backend_clients = match a.backend_services {
                None => Vec::new(),
                Some(b) if b.clients.is_empty() || b.clients.iter().any(String::is_empty) => {
                    return Err("authorization.backendServices.clients must name at least one client id, \
                                none of them empty"
                        .into());
                }
                Some(b) => b.clients,
            };
            let timeout_secs = a.timeout_seconds.unwrap_or(10);
            if timeout_secs == 0 || timeout_secs > 120 {
                return Err("authorization.timeoutSeconds must be between 1 and 120".into());
            }
            Authorization::SmartOnFhir(SmartOnFhir {
                fhir_base_url: fhir_base_url.trim_end_matches('/').to_string(),
                client_id: client.id,
                client_auth,
                scope: client.scope.unwrap_or_else(|| "system/Patient.rs".into()),
                token_endpoint: a.token_endpoint,
                introspection_endpoint: a.introspection_endpoint,
                introspection_cache_secs: a.introspection_cache_seconds.unwrap_or(60),
                negative_cache_secs: a.negative_cache_seconds.unwrap_or(10),
                patient_cache_secs: a.patient_cache_seconds.unwrap_or(300),
                cache_size: a.cache_size.unwrap_or(10_000).max(1),
                timeout_secs,
                max_in_flight: ehr_share(threads),
                backend_clients,
            })
        }
    };
    let visibility = Visibility::of(t.images.lookup == Lookup::StudiesByContext, ignore_patient);
    let endpoints = t.images.endpoints.unwrap_or_default();
    Ok(Tenant { name: name.to_string(), auth, visibility, id_selector, endpoints, source })
}

/// How many workers one `smart-on-fhir` tenant may hold waiting on its EHR: half of `server.threads`, but
/// at least 2 (one fetch and one request waiting for it) and at most all of them.
pub fn ehr_share(threads: usize) -> usize {
    (threads / 2).max(2).min(threads)
}

fn mock_patient(p: RawPatient, selector: &IdSelector) -> Result<PatientContext, String> {
    if p.id.is_empty() || p.id.contains('/') {
        return Err("authorization.patient.id must be a plain FHIR id".into());
    }
    if p.identifier.iter().any(|i| i.value.is_empty()) {
        return Err("authorization.patient.identifier: every entry needs a value".into());
    }
    let identifiers = p
        .identifier
        .into_iter()
        .map(|i| Identifier { system: i.system, value: i.value, type_code: i.type_code })
        .collect();
    Ok(PatientContext::new(p.id.clone(), format!("Patient/{}", p.id), p.name, identifiers, selector))
}

fn is_tenant_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn check_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("must name a host".into());
    }
    if url.contains('?') || url.contains('#') {
        return Err("must not carry a query or fragment".into());
    }
    Ok(())
}

/// serde/toml errors span several lines with a source excerpt; keep them readable in one message.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/si/smart-imaging.toml")).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = r#"
[images]
index = "data/index.toml"
[tenants.open]
authorization = { type = "mock", ignorePatient = true }
images = { lookup = "all-studies" }
"#;

    #[test]
    fn an_ohif_viewer_is_an_absolute_url_without_query() {
        assert_eq!(check(MINIMAL).unwrap().ohif_url, None, "no default");
        let with = |url: &str| check(&format!("{MINIMAL}\n[viewer]\nohif = \"{url}\"\n"));
        assert_eq!(with("https://ohif.example.org/").unwrap().ohif_url.as_deref(), Some("https://ohif.example.org"));
        for bad in ["ohif.example.org", "https://ohif.example.org/?x=1"] {
            let e = with(bad).unwrap_err();
            assert!(e.contains("viewer.ohif"), "{bad}: {e}");
        }
        assert!(check(&format!("{MINIMAL}\n[viewer]\nohfi = \"x\"\n")).unwrap_err().contains("ohfi"));
    }

    #[test]
    fn minimal_config_and_relative_paths() {
        let c = check(MINIMAL).unwrap();
        assert_eq!(c.index_path, PathBuf::from("/etc/si/data/index.toml"));
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.threads, DEFAULT_THREADS);
        assert_eq!(c.timezone, "+00:00");
        assert_eq!(c.tenants["open"].visibility, Visibility::Everything);
        assert_eq!(c.inflate_budget, DEFAULT_INFLATE_BUDGET);
    }

    #[test]
    fn inflate_budget_is_bytes_of_at_least_a_mebibyte() {
        let server = |keys: &str| check(&format!("[server]\n{keys}\n{MINIMAL}"));
        assert_eq!(server("inflate_budget = 8388608").unwrap().inflate_budget, 8 << 20);
        let e = server("inflate_budget = 1000").unwrap_err();
        assert!(e.contains("server.inflate_budget") && e.contains("1048576"), "{e}");
        let e = server("inflate_budget = -1").unwrap_err();
        assert!(e.contains("inflate_budget"), "{e}");
        let e = server("inflate_budget = \"256M\"").unwrap_err();
        assert!(e.contains("inflate_budget"), "{e}");
    }

    #[test]
    fn unknown_keys_and_values_are_named() {
        let e = check(&MINIMAL.replace("[images]", "[images]\nindx = 1")).unwrap_err();
        assert!(e.contains("indx") && e.contains("smart-imaging.toml"), "{e}");
        let e = check(&MINIMAL.replace("all-studies", "some-studies")).unwrap_err();
        assert!(e.contains("some-studies"), "{e}");
        let e = check(&MINIMAL.replace("type = \"mock\"", "type = \"magic\"")).unwrap_err();
        assert!(e.contains("magic"), "{e}");
        let e = check(&MINIMAL.replace("ignorePatient", "ignorePatients")).unwrap_err();
        assert!(e.contains("ignorePatients"), "{e}");
    }

    #[test]
    fn missing_keys_are_named() {
        let e = check("[tenants.x]\nauthorization.type='mock'\nimages.lookup='all-studies'").unwrap_err();
        assert!(e.contains("images"), "{e}");
        let e = check("[images]\nindex='i.toml'").unwrap_err();
        assert!(e.contains("tenant"), "{e}");
    }

    #[test]
    fn mock_by_context_needs_a_patient() {
        let e = check(&MINIMAL.replace("all-studies", "studies-by-context")).unwrap_err();
        assert!(e.contains("tenants.open.authorization.patient"), "{e}");
    }

    #[test]
    fn patient_id_selection_and_issuers() {
        let demo = |images: &str| {
            check(&format!(
                "[images]\nindex = \"i.toml\"\n[tenants.demo]\nauthorization.type = \"mock\"\n\
                 authorization.patient = {{ id = \"p1\", identifier = [{{ value = \"A\" }}] }}\n\
                 images.lookup = \"studies-by-context\"\n{images}\n"
            ))
        };
        let c = demo("images.patientId = { any = true }\nimages.issuers = { \"HOSP-A\" = \"http://h\" }").unwrap();
        let selector = &c.tenants["demo"].id_selector;
        assert!(selector.any);
        assert_eq!(selector.issuers.get("HOSP-A").map(String::as_str), Some("http://h"));
        let e = demo("images.patientId = { any = true, type = \"MR\" }").unwrap_err();
        assert!(e.contains("tenants.demo.images.patientId"), "{e}");
        let e = demo("images.patientId = { every = true }").unwrap_err();
        assert!(e.contains("every"), "{e}");
        let e = demo("images.issuers = { \"HOSP-A\" = \"\" }").unwrap_err();
        assert!(e.contains("images.issuers"), "{e}");
        let e = demo("images.issuer = {}").unwrap_err();
        assert!(e.contains("issuer"), "{e}");
    }

    #[test]
    fn a_tenant_is_the_same_when_its_table_is_however_written() {
        let source = |text: &str| check(text).unwrap().tenants["open"].source.clone();
        let spaced =
            MINIMAL.replace("{ type = \"mock\", ignorePatient = true }", "{ ignorePatient = true,  type = \"mock\" }");
        assert_eq!(source(MINIMAL), source(&spaced), "the order and spacing of keys do not matter");
        let dotted = MINIMAL.replace(
            "authorization = { type = \"mock\", ignorePatient = true }",
            "authorization.type = \"mock\"\nauthorization.ignorePatient = true",
        );
        assert_eq!(source(MINIMAL), source(&dotted), "nor dotted keys against an inline table");
        let contained = MINIMAL.replace("all-studies\" }", "all-studies\", endpoints = \"contained\" }");
        assert_ne!(source(MINIMAL), source(&contained), "a changed setting makes another tenant");
    }

    #[test]
    fn base_url_is_checked() {
        assert!(check_base_url("http://localhost:8000").is_ok());
        assert!(check_base_url("https://img.example.org/base").is_ok());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("http://").is_err());
        assert!(check_base_url("http://x/?a").is_err());
    }
}

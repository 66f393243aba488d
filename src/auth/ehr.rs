//! The EHR client of a `smart-on-fhir` tenant (docs/ehr.md, Connecting to an EHR): discovery, the Backend Services
//! token, token introspection (RFC 7662) and Patient reads, each a cached single flight (`flight::Flight`).
//!
//! Invariants: every call has a timeout, and one request's calls together never take longer than
//! `timeoutSeconds`; no redirect is followed, and any answer that is not the one asked for (a 3xx, a body
//! over `MAX_ANSWER`, a Patient with another id) is `Unavailable` (503), never access; no lock is held
//! across a call: one discovery and one backend-token fetch are in flight at a time, and one introspection
//! per token and one read per Patient, which the other requests needing the same one wait for and share;
//! at most `max_in_flight` requests of the tenant wait on the EHR at once, by a call of their own or by
//! waiting for another's once that call is older than `YOUNG` (the rest are 503 at once); a cached
//! introspection never outlives the token's `exp`; the introspection cache and its fetches in flight are
//! keyed by a SHA-256 of the token, so tokens are not kept; no token is logged.

use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::flight::{Caller, Flight, Gate};
use crate::auth::jwk::SigningKey;
use crate::auth::patient::{IdSelector, Identifier, PatientContext, normalise_reference};
use crate::auth::scope::{Need, grants, grants_system};
use crate::http::ApiError;
use crate::time::now_secs;

/// Largest EHR answer read; anything longer is garbage to us.
const MAX_ANSWER: u64 = 1 << 20;

/// How long a call to the EHR is young: a healthy EHR answers well within it, a hung one does not. Others
/// join a young call without a place in the tenant's gate (`Caller::needs_place_at`).
const YOUNG: Duration = Duration::from_millis(500);

/// The v2-0203 identifier type system, as FHIR R4 and as DSTU2 name it.
const V2_0203: [&str; 2] = ["http://terminology.hl7.org/CodeSystem/v2-0203", "http://hl7.org/fhir/v2/0203"];

/// The settings of a `smart-on-fhir` tenant, validated by the configuration: where the EHR is and how this
/// server authenticates to it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub fhir_base_url: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub scope: String,
    pub token_endpoint: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub introspection_cache_secs: u64,
    pub negative_cache_secs: u64,
    pub patient_cache_secs: u64,
    pub cache_size: usize,
    pub timeout_secs: u64,
    /// How many requests of this tenant may wait on its EHR at once (docs/operations.md, A slow EHR).
    pub max_in_flight: usize,
    /// The backend clients (`client_id`s) whose `system/` ImagingStudy scopes are honoured
    /// (`authorization.backendServices`); empty: none, the default.
    pub backend_clients: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `private_key_jwt` with this key (ES384 or RS384).
    Jwt(Arc<SigningKey>),
    /// `client_secret_basic`.
    Secret(String),
}

/// What discovery found at `{fhirBaseUrl}/.well-known/smart-configuration`.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    /// The whole document, for the imaging base's own smart-configuration.
    pub document: Value,
}

/// An introspection answer reduced to what is checked.
#[derive(Debug, Clone)]
struct Introspection {
    active: bool,
    exp: Option<u64>,
    scope: String,
    patient: Option<String>,
    /// `client_id` and `sub` of the answer, for the audit trail only.
    client_id: Option<String>,
    subject: Option<String>,
}

/// What a valid access token is in context of.
#[derive(Debug)]
pub enum Context {
    /// An app's token, for the patient in context.
    Patient(Arc<PatientContext>),
    /// A listed backend client's system access: each request names its patient.
    System,
}

/// What `Ehr::authorize` proved of a token.
#[derive(Debug)]
pub struct Proven {
    pub context: Context,
    /// When the token expires (Unix seconds).
    pub expires: u64,
    pub who: Who,
    /// The SHA-256 of the token: the key of its cached introspection, and what study tokens are bound to.
    pub token_hash: [u8; 32],
}

/// Who an access token speaks for, as its introspection answer says (for the audit trail only).
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub client_id: Option<String>,
    pub subject: Option<String>,
}

#[derive(Debug)]
pub struct Ehr {
    cfg: Settings,
    selector: IdSelector,
    agent: ureq::Agent,
    discovered: Flight<(), Discovered>,
    /// The backend access token, until shortly before it expires.
    backend: Flight<(), String>,
    /// The requests of this tenant that wait on the EHR now.
    gate: Gate,
    /// Introspections by the SHA-256 of the token.
    introspections: Flight<[u8; 32], Arc<Introspection>>,
    /// Patients by id.
    patients: Flight<String, Arc<PatientContext>>,
}

fn unavailable(step: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("{step}: {detail}"))
}

/// What is left of a deadline, for a call's timeout; 503 when nothing is.
fn time_left(deadline: Instant, step: &str) -> Result<Duration, ApiError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(unavailable(step, "timed out")) } else { Ok(left) }
}

impl Ehr {
    pub fn new(cfg: Settings, selector: IdSelector) -> Ehr {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(cfg.timeout_secs)))
            .http_status_as_error(false)
            // A redirect is answered as it came, and refused (`call`): never followed, with or without
            // the credentials.
            .max_redirects(0)
            .build();
        let capacity = cfg.cache_size;
        let gate = Gate::new(cfg.max_in_flight, YOUNG);
        Ehr {
            cfg,
            selector,
            agent: ureq::Agent::new_with_config(config),
            // A failure is repeated to `discover_public` within `Retry-After`, never to a request that waits.
            discovered: Flight::new("discovery", 1).backoff(u64::from(crate::http::error::RETRY_AFTER_SECS)),
            backend: Flight::new("backend token", 1),
            gate,
            introspections: Flight::new("introspection", capacity).counted("introspection"),
            patients: Flight::new("patient read", capacity).counted("patient"),
        }
    }

    /// The deadline of a request's calls to this EHR: `timeoutSeconds` for them all together.
    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.cfg.timeout_secs)
    }

    /// Validates an access token for `need` and resolves its context: the patient in context of an app's
    /// token, or a listed backend client's system access, which names its patient per request
    /// (`system_patient`); and when the token expires (Unix seconds). Making the grant of it is
    /// `auth::authorize`'s.
    ///
    /// Patient scopes with a patient claim make an app's grant, whatever else the token holds: scopes of
    /// two contexts are never added up into more. System scopes count only for a listed client, and a
    /// token in patient context without a patient is refused, never taken for system access.
    pub fn authorize(&self, token: &str, need: Need) -> Result<Proven, ApiError> {
        let now = now_secs();
        let mut caller = Caller::new(&self.gate, self.deadline());
        let key: [u8; 32] = sha256(token.as_bytes());
        let info = self.introspections.get(key, now, &mut caller, |caller| {
            let info = Arc::new(self.introspect(token, caller)?);
            let ttl = if info.active { self.cfg.introspection_cache_secs } else { self.cfg.negative_cache_secs };
            // Never past the token's own expiry; a ttl of 0 keeps nothing.
            let until = info.exp.map_or(now + ttl, |exp| exp.min(now + ttl));
            Ok((info, until))
        })?;
        if !info.active {
            return Err(ApiError::InvalidToken("the access token is not active".into()));
        }
        let exp = info
            .exp
            .filter(|exp| *exp > now)
            .ok_or_else(|| ApiError::InvalidToken("the access token has expired".into()))?;
        let who = Who { client_id: info.client_id.clone(), subject: info.subject.clone() };
        let in_patient_context = grants(&info.scope, need);
        if !(in_patient_context && info.patient.is_some()) && self.system_access(&info, need) {
            return Ok(Proven { context: Context::System, expires: exp, who, token_hash: key });
        }
        if !in_patient_context {
            return Err(ApiError::InsufficientScope(
                "the access token grants no ImagingStudy access in patient context".into(),
            ));
        }
        let claim = info
            .patient
            .as_deref()
            .ok_or_else(|| ApiError::Forbidden("the access token has no patient in context".into()))?;
        let id = normalise_reference(claim, &self.cfg.fhir_base_url).ok_or_else(|| {
            ApiError::InvalidToken("the access token's patient claim is not a patient of this EHR".into())
        })?;
        let patient = self.resolve_patient(id, now, &mut caller)?;
        Ok(Proven { context: Context::Patient(patient), expires: exp, who, token_hash: key })
    }

    /// Whether an active token is a listed backend client's with a system scope granting `need`.
    fn system_access(&self, info: &Introspection, need: Need) -> bool {
        let listed = info.client_id.as_ref().is_some_and(|c| self.cfg.backend_clients.contains(c));
        listed && grants_system(&info.scope, need)
    }

    /// The patient `id` (a FHIR id at this EHR) that a system grant's request names, resolved as an app's
    /// patient in context is: read at the EHR with the backend token, cached for `patientCacheSeconds`.
    pub fn system_patient(&self, id: &str) -> Result<Arc<PatientContext>, ApiError> {
        let mut caller = Caller::new(&self.gate, self.deadline());
        self.resolve_patient(id, now_secs(), &mut caller)
    }

    fn resolve_patient(&self, id: &str, now: u64, caller: &mut Caller<'_>) -> Result<Arc<PatientContext>, ApiError> {
        self.patients.get(id.to_string(), now, caller, |caller| {
            let patient = Arc::new(self.patient(id, caller)?);
            // Kept from when the EHR answered; a ttl of 0 keeps nothing.
            let ttl = self.cfg.patient_cache_secs;
            Ok((patient, if ttl > 0 { now_secs() + ttl } else { now }))
        })
    }

    /// The EHR's SMART configuration for a request that proved nothing (the imaging server's own
    /// smart-configuration): the cached one, else a fetch of it, but never a wait on another request's
    /// fetch, nor a new fetch within `Retry-After` of a failed one.
    pub fn discover_public(&self) -> Result<Discovered, ApiError> {
        if let Some(d) = self.discovered.cached(&(), now_secs()) {
            return Ok(d);
        }
        let mut caller = Caller::impatient(&self.gate, self.deadline());
        caller.enter()?;
        self.discovered.get((), now_secs(), &mut caller, |caller| self.fetch_discovery(caller.deadline()))
    }

    /// The EHR's SMART configuration, fetched once; a failure is not repeated to a request that waits, so a
    /// later request retries.
    fn discover(&self, caller: &mut Caller<'_>) -> Result<Discovered, ApiError> {
        self.discovered.get((), now_secs(), caller, |caller| self.fetch_discovery(caller.deadline()))
    }

    fn fetch_discovery(&self, deadline: Instant) -> Result<(Discovered, u64), ApiError> {
        let step = "discovery";
        let url = format!("{}/.well-known/smart-configuration", self.cfg.fhir_base_url);
        let request = self.agent.get(&url).config().timeout_global(Some(time_left(deadline, step)?)).build();
        let (status, doc) = self.call(request.header("Accept", "application/json").call(), step)?;
        if status != 200 {
            return Err(unavailable(step, format!("{url} answered {status}")));
        }
        let endpoint = |name: &str, configured: &Option<String>| {
            configured
                .clone()
                .or_else(|| doc.get(name).and_then(Value::as_str).map(str::to_string))
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                .ok_or_else(|| unavailable(step, format!("{url} names no http(s) {name}")))
        };
        let d = Discovered {
            token_endpoint: endpoint("token_endpoint", &self.cfg.token_endpoint)?,
            introspection_endpoint: endpoint("introspection_endpoint", &self.cfg.introspection_endpoint)?,
            document: doc,
        };
        Ok((d, u64::MAX))
    }

    /// Introspects at the EHR with the backend token, getting a fresh backend token once if it is refused.
    fn introspect(&self, token: &str, caller: &mut Caller<'_>) -> Result<Introspection, ApiError> {
        let (step, deadline) = ("introspection", caller.deadline());
        let endpoint = self.discover(caller)?.introspection_endpoint;
        let mut retried = false;
        loop {
            let backend = self.backend_token(caller)?;
            let answer = self
                .agent
                .post(&endpoint)
                .config()
                .timeout_global(Some(time_left(deadline, step)?))
                .build()
                .header("Accept", "application/json")
                .header("Authorization", &format!("Bearer {backend}"))
                .send_form([("token", token)]);
            let (status, body) = self.call(answer, step)?;
            match status {
                200 => return parse_introspection(&body),
                401 if !retried => {
                    retried = true;
                    self.backend.forget_if(&(), |t| *t == backend);
                }
                other => return Err(unavailable(step, format!("answered {other}"))),
            }
        }
    }

    /// The Backend Services access token (SMART Backend Services, `client_credentials`), cached until
    /// shortly before it expires; one fetch at a time, which the others wait for.
    fn backend_token(&self, caller: &mut Caller<'_>) -> Result<String, ApiError> {
        self.backend.get((), now_secs(), caller, |caller| self.fetch_backend_token(caller))
    }

    fn fetch_backend_token(&self, caller: &mut Caller<'_>) -> Result<(String, u64), ApiError> {
        let (step, deadline) = ("backend token", caller.deadline());
        let endpoint = self.discover(caller)?.token_endpoint;
        let now = now_secs();
        let mut form = vec![("grant_type", "client_credentials".to_string()), ("scope", self.cfg.scope.clone())];
        let mut request = self
            .agent
            .post(&endpoint)
            .config()
            .timeout_global(Some(time_left(deadline, step)?))
            .build()
            .header("Accept", "application/json");
        match &self.cfg.client_auth {
            ClientAuth::Jwt(key) => {
                let assertion =
                    key.client_assertion(&self.cfg.client_id, &endpoint, now).map_err(ApiError::Internal)?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion));
            }
            ClientAuth::Secret(secret) => {
                // RFC 6749 §2.3.1: both parts form-encoded, then Basic.
                use base64::Engine as _;
                let pair = format!("{}:{}", form_encode(&self.cfg.client_id), form_encode(secret));
                let basic = base64::engine::general_purpose::STANDARD.encode(pair);
                request = request.header("Authorization", &format!("Basic {basic}"));
            }
        }
        let (status, body) = self.call(request.send_form(form.iter().map(|(k, v)| (*k, v.as_str()))), step)?;
        if status != 200 {
            return Err(unavailable(step, format!("the token endpoint answered {status}")));
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unavailable(step, "no access_token in the answer"))?
            .to_string();
        let lifetime = body.get("expires_in").and_then(Value::as_u64).unwrap_or(300);
        // Stop using it a little before it expires: a minute, or a tenth of a short lifetime.
        let until = now + lifetime.saturating_sub(60.min(lifetime / 10));
        Ok((token, until))
    }

    /// Reads `Patient/{id}`; the answer must be that Patient.
    fn patient(&self, id: &str, caller: &mut Caller<'_>) -> Result<PatientContext, ApiError> {
        let (step, deadline) = ("patient read", caller.deadline());
        let backend = self.backend_token(caller)?;
        let url = format!("{}/Patient/{id}", self.cfg.fhir_base_url);
        let answer = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(time_left(deadline, step)?))
            .build()
            .header("Accept", "application/fhir+json")
            .header("Authorization", &format!("Bearer {backend}"))
            .call();
        let (status, body) = self.call(answer, step)?;
        match status {
            200 => {}
            404 | 410 => return Err(ApiError::Forbidden("the patient in context is not known to the EHR".into())),
            other => return Err(unavailable(step, format!("answered {other}"))),
        }
        if body.get("resourceType").and_then(Value::as_str) != Some("Patient") {
            return Err(unavailable(step, "the answer is not a Patient"));
        }
        if body.get("id").and_then(Value::as_str) != Some(id) {
            return Err(unavailable(step, format!("the answer is not Patient/{id} but another resource")));
        }
        let reference = format!("{}/Patient/{id}", self.cfg.fhir_base_url);
        Ok(PatientContext::new(id.to_string(), reference, display_name(&body), identifiers(&body), &self.selector))
    }

    /// Turns a call's outcome into (status, JSON body); transport failures, redirects, bodies over
    /// `MAX_ANSWER` and bodies that are not JSON are the EHR being unavailable.
    fn call(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        step: &'static str,
    ) -> Result<(u16, Value), ApiError> {
        let answer = self.answer(result, step);
        let outcome = match &answer {
            Ok((status, _)) if *status < 400 => "ok",
            Ok(_) => "refused",
            Err(_) => "failed",
        };
        crate::metrics::ehr_call(step, outcome);
        answer
    }

    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        step: &str,
    ) -> Result<(u16, Value), ApiError> {
        let mut resp = result.map_err(|e| unavailable(step, e))?;
        let status = resp.status().as_u16();
        log::debug!("{step}: the EHR answered {status}");
        if (300..400).contains(&status) {
            return Err(unavailable(step, format!("answered {status}, a redirect, which is not followed")));
        }
        let bytes = resp.body_mut().with_config().limit(MAX_ANSWER).read_to_vec().map_err(|e| unavailable(step, e))?;
        if status == 401 || status == 404 || status == 410 {
            return Ok((status, Value::Null));
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|_| unavailable(step, format!("answered {status} with a body that is not JSON")))?;
        Ok((status, value))
    }
}

/// RFC 7662 §2.2: `active` is required and boolean; the rest is read only when active.
fn parse_introspection(body: &Value) -> Result<Introspection, ApiError> {
    let active = body
        .get("active")
        .and_then(Value::as_bool)
        .ok_or_else(|| unavailable("introspection", "the answer has no boolean \"active\""))?;
    Ok(Introspection {
        active,
        exp: body.get("exp").and_then(|e| e.as_u64().or_else(|| e.as_f64().map(|f| f as u64))),
        scope: body.get("scope").and_then(Value::as_str).unwrap_or_default().to_string(),
        patient: body.get("patient").and_then(Value::as_str).map(str::to_string),
        client_id: body.get("client_id").and_then(Value::as_str).map(str::to_string),
        subject: body.get("sub").and_then(Value::as_str).map(str::to_string),
    })
}

fn identifiers(patient: &Value) -> Vec<Identifier> {
    let list = patient.get("identifier").and_then(Value::as_array).cloned().unwrap_or_default();
    list.iter()
        .filter_map(|i| {
            let value = i.get("value").and_then(Value::as_str)?.to_string();
            let system = i.get("system").and_then(Value::as_str).map(str::to_string);
            // The v2-0203 code when a coding has one (MR, SS, …), else the first code of any system.
            let codings = i.pointer("/type/coding").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let is_v2 = |c: &&Value| c.get("system").and_then(Value::as_str).is_some_and(|s| V2_0203.contains(&s));
            let type_code = codings
                .iter()
                .filter(is_v2)
                .chain(codings.iter())
                .find_map(|c| c.get("code").and_then(Value::as_str))
                .map(str::to_string);
            Some(Identifier { system, value, type_code })
        })
        .collect()
}

fn display_name(patient: &Value) -> Option<String> {
    let name = patient.get("name")?.as_array()?.first()?;
    if let Some(text) = name.get("text").and_then(Value::as_str) {
        return Some(text.to_string());
    }
    let given: Vec<&str> = name
        .get("given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let family = name.get("family").and_then(Value::as_str);
    let parts: Vec<&str> = given.into_iter().chain(family).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn introspection_answers() {
        let ok =
            parse_introspection(&json!({"active": true, "exp": 10, "scope": "a b", "patient": "Patient/1"})).unwrap();
        assert!(ok.active);
        assert_eq!(ok.exp, Some(10));
        assert_eq!(ok.patient.as_deref(), Some("Patient/1"));
        assert!(!parse_introspection(&json!({"active": false})).unwrap().active);
        assert!(parse_introspection(&json!({"active": "true"})).is_err(), "a string is not a boolean");
        assert!(parse_introspection(&json!([1])).is_err());
    }

    #[test]
    fn patient_fields() {
        let p = json!({
            "resourceType": "Patient",
            "name": [{"given": ["Anna"], "family": "Müller"}],
            "identifier": [
                {"system": "s", "value": "1", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
                {"value": "2"},
                {"system": "no value"}
            ]
        });
        assert_eq!(display_name(&p).as_deref(), Some("Anna Müller"));
        let ids = identifiers(&p);
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0].type_code.as_deref(), Some("MR"));
        let local_first = json!({"identifier": [{"value": "1", "type": {"coding": [
            {"system": "http://local", "code": "X"},
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
        ]}}]});
        assert_eq!(identifiers(&local_first)[0].type_code.as_deref(), Some("MR"), "the v2-0203 code wins");
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }
}

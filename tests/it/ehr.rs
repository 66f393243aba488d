//! `smart-on-fhir` tenants against a fake EHR (README, Connecting to an EHR; Errors): a real HTTP server inside the test process
//! with a SMART configuration, a token endpoint that verifies the client assertion, an introspection
//! endpoint that requires the backend token, and Patient reads. It counts every call it gets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::harness::*;

const MRN_A: &str = "MRN-1001";
const MRN_B: &str = "MRN-2002";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// How the fake EHR misbehaves, when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Discovery answers 500.
    DiscoveryFails,
    /// Introspection answers 200 with a body that is not JSON.
    Garbage,
    /// Introspection answers after this many milliseconds.
    Slow(u64),
}

#[derive(Debug, Default)]
struct Counts {
    discovery: usize,
    token: usize,
    introspect: usize,
    patient: usize,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    client_id: String,
    /// The public JWK the client registered, for private_key_jwt; or the secret for client_secret_basic.
    public_jwk: Option<Value>,
    secret: Option<String>,
    token_url: String,
    backend_tokens: HashSet<String>,
    backend_expires_in: u64,
    jtis: HashSet<String>,
    /// Introspection answers, by access token.
    tokens: HashMap<String, Value>,
    patients: HashMap<String, Value>,
    counts: Counts,
    /// Why the last refused token request was refused.
    refusals: Vec<String>,
}

struct FakeEhr {
    base: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeEhr {
    fn start(client_id: &str, public_jwk: Option<Value>, secret: Option<&str>) -> FakeEhr {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("fake EHR cannot bind"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let base = format!("http://{addr}/fhir");
        let mut patients = HashMap::new();
        patients.insert("pA".to_string(), patient("pA", MRN_A, "Anna", "Müller"));
        patients.insert("pB".to_string(), patient("pB", MRN_B, "Yuki", "Tanaka"));
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Normal,
            client_id: client_id.into(),
            public_jwk,
            secret: secret.map(Into::into),
            token_url: format!("http://{addr}/auth/token"),
            backend_tokens: HashSet::new(),
            backend_expires_in: 300,
            jtis: HashSet::new(),
            tokens: HashMap::new(),
            patients,
            counts: Counts::default(),
            refusals: Vec::new(),
        }));
        let (s, st) = (Arc::clone(&server), Arc::clone(&state));
        let thread = std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let st = Arc::clone(&st);
                // One thread per request, so a slow answer does not hold up the others.
                std::thread::spawn(move || answer(&st, request));
            }
        });
        FakeEhr { base, state, server, thread: Some(thread) }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Registers an access token the EHR issued to an app.
    fn issue(&self, token: &str, answer: Value) {
        self.state.lock().unwrap().tokens.insert(token.into(), answer);
    }

    fn counts(&self) -> (usize, usize, usize, usize) {
        let s = self.state.lock().unwrap();
        (s.counts.discovery, s.counts.token, s.counts.introspect, s.counts.patient)
    }

    fn revoke_backend_tokens(&self) {
        self.state.lock().unwrap().backend_tokens.clear();
    }

    fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// Stops answering: the port is closed.
    fn stop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeEhr {
    fn drop(&mut self) {
        self.stop();
    }
}

fn patient(id: &str, mrn: &str, given: &str, family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        "name": [{"given": [given], "family": family}],
        "identifier": [
            {"system": "http://ssa.example.org", "value": format!("SSN-{id}"),
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]}},
            {"system": "http://hospital.example.org", "value": mrn,
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}
        ]
    })
}

fn reply(request: tiny_http::Request, status: u16, body: &str) {
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
    let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(status).with_header(header));
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn header(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

fn answer(state: &Mutex<State>, mut request: tiny_http::Request) {
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let url = request.url().to_string();
    let mode = state.lock().unwrap().mode;
    match url.as_str() {
        "/fhir/.well-known/smart-configuration" => {
            state.lock().unwrap().counts.discovery += 1;
            if mode == Mode::DiscoveryFails {
                return reply(request, 500, "{}");
            }
            let host = header(&request, "Host").unwrap_or_default();
            let doc = json!({
                "issuer": format!("http://{host}/auth"),
                "authorization_endpoint": format!("http://{host}/auth/authorize"),
                "token_endpoint": format!("http://{host}/auth/token"),
                "introspection_endpoint": format!("http://{host}/auth/introspect"),
                "grant_types_supported": ["authorization_code", "client_credentials"],
                "code_challenge_methods_supported": ["S256"],
                "capabilities": ["launch-ehr", "context-ehr-patient"],
            });
            reply(request, 200, &doc.to_string())
        }
        "/auth/token" => {
            let mut s = state.lock().unwrap();
            s.counts.token += 1;
            match check_client(&mut s, &form(&body), header(&request, "Authorization")) {
                Ok(()) => {
                    let token = format!("backend-{}", s.counts.token);
                    s.backend_tokens.insert(token.clone());
                    let expires_in = s.backend_expires_in;
                    drop(s);
                    let answer = json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in});
                    reply(request, 200, &answer.to_string())
                }
                Err(why) => {
                    s.refusals.push(why);
                    drop(s);
                    reply(request, 401, r#"{"error":"invalid_client"}"#)
                }
            }
        }
        "/auth/introspect" => {
            let authorized = {
                let mut s = state.lock().unwrap();
                s.counts.introspect += 1;
                let bearer = header(&request, "Authorization").unwrap_or_default();
                bearer.strip_prefix("Bearer ").is_some_and(|t| s.backend_tokens.contains(t))
            };
            if !authorized {
                return reply(request, 401, r#"{"error":"invalid_token"}"#);
            }
            match mode {
                Mode::Garbage => return reply(request, 200, "<html>oops</html>"),
                Mode::Slow(ms) => std::thread::sleep(Duration::from_millis(ms)),
                _ => {}
            }
            let token = form(&body).get("token").cloned().unwrap_or_default();
            let answer = state.lock().unwrap().tokens.get(&token).cloned().unwrap_or(json!({"active": false}));
            reply(request, 200, &answer.to_string())
        }
        path if path.starts_with("/fhir/Patient/") => {
            let (found, authorized) = {
                let mut s = state.lock().unwrap();
                s.counts.patient += 1;
                let bearer = header(&request, "Authorization").unwrap_or_default();
                let authorized = bearer.strip_prefix("Bearer ").is_some_and(|t| s.backend_tokens.contains(t));
                (s.patients.get(&path["/fhir/Patient/".len()..]).cloned(), authorized)
            };
            match (authorized, found) {
                (false, _) => reply(request, 401, "{}"),
                (true, Some(p)) => reply(request, 200, &p.to_string()),
                (true, None) => reply(request, 404, r#"{"resourceType":"OperationOutcome"}"#),
            }
        }
        _ => reply(request, 404, "{}"),
    }
}

/// The checks a real authorization server makes on a Backend Services token request.
fn check_client(s: &mut State, form: &HashMap<String, String>, authorization: Option<String>) -> Result<(), String> {
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err("grant_type is not client_credentials".into());
    }
    if let Some(secret) = &s.secret {
        // RFC 6749 §2.3.1: Basic over the form-encoded id and secret.
        let basic = authorization.as_deref().and_then(|a| a.strip_prefix("Basic ")).ok_or("no Basic credentials")?;
        let pair = String::from_utf8(STANDARD.decode(basic).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let (id, given) = pair.split_once(':').ok_or("no colon in Basic credentials")?;
        return if decode(id) == s.client_id && decode(given) == *secret { Ok(()) } else { Err("bad secret".into()) };
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err("client_assertion_type".into());
    }
    let jwt = form.get("client_assertion").ok_or("no client_assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not a compact JWS".into());
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if header["alg"] != "ES384" || header["typ"] != "JWT" {
        return Err(format!("header {header}"));
    }
    let jwk = s.public_jwk.as_ref().ok_or("no registered key")?;
    if header["kid"] != jwk["kid"] {
        return Err("kid does not name the registered key".into());
    }
    let coord = |n: &str| URL_SAFE_NO_PAD.decode(jwk[n].as_str().unwrap()).unwrap();
    let mut point = vec![4u8];
    point.extend(coord("x"));
    point.extend(coord("y"));
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, &point)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|_| "signature does not verify")?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if claims["iss"] != s.client_id.as_str() || claims["sub"] != s.client_id.as_str() {
        return Err("iss/sub".into());
    }
    if claims["aud"] != s.token_url.as_str() {
        return Err(format!("aud {} is not {}", claims["aud"], s.token_url));
    }
    let exp = claims["exp"].as_u64().ok_or("no exp")?;
    if exp <= now() || exp > now() + 300 {
        return Err("exp not within 5 minutes".into());
    }
    let jti = claims["jti"].as_str().ok_or("no jti")?.to_string();
    if !s.jtis.insert(jti) {
        return Err("jti replayed".into());
    }
    Ok(())
}

fn active(patient: &str, scope: &str, exp: u64) -> Value {
    json!({"active": true, "client_id": "app", "scope": scope, "patient": patient, "exp": exp})
}

const SCOPES: &str = "launch/patient openid patient/ImagingStudy.rs";

/// A server with one `smart-on-fhir` tenant `ehr` pointed at `ehr`, keyed with a key made by `keygen`.
struct Setup {
    ehr: FakeEhr,
    server: Server,
    _dir: TempDir,
}

fn setup_with(extra: &str, secret: Option<&str>) -> Setup {
    let dir = TempDir::new("ehr");
    let (client, public) = match secret {
        None => {
            let prefix = dir.path().join("client");
            let run = run_cli(&["keygen", "--out", prefix.to_str().unwrap()], dir.path());
            assert_eq!(run.code(), Some(0), "keygen failed: {run:?}");
            let public: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.path().join("client.public.jwk.json")).unwrap())
                    .unwrap();
            (r#"{ id = "imaging-server", jwk = "client.private.jwk.json" }"#.to_string(), Some(public))
        }
        Some(secret) => (format!("{{ id = \"imaging-server\", secret = {} }}", toml_string(secret)), None),
    };
    let ehr = FakeEhr::start("imaging-server", public, secret);
    let config = dir.config(&format!(
        "[server]\nstudy_token_ttl = 600\n\n[tenants.ehr]\nauthorization.type = \"smart-on-fhir\"\n\
         authorization.fhirBaseUrl = {base}\nauthorization.client = {client}\n{extra}\n\
         images.lookup = \"studies-by-context\"\n",
        base = toml_string(&ehr.base),
    ));
    let server = Launch::new(config).env(KEY_VAR, "ehr-tests-shared-key-0123456789").start();
    Setup { ehr, server, _dir: dir }
}

fn setup() -> Setup {
    setup_with("", None)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn search(s: &Setup, patient: &str, token: &str) -> Reply {
    s.server.get_with(&format!("/ehr/fhir/ImagingStudy?patient={patient}"), &[("Authorization", &bearer(token))])
}

fn assert_outcome(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    assert_eq!(reply.json()["resourceType"], "OperationOutcome", "{what}: an OperationOutcome, not data");
}

#[test]
fn a_valid_token_sees_only_its_patients_studies_and_downloads_them() {
    let s = setup();
    s.ehr.issue("tA", active("Patient/pA", SCOPES, now() + 600));
    let reply = search(&s, "pA", "tA");
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), s.server.dump());
    let bundle = reply.json();
    let index = IndexFile::sample();
    let expected = sorted(index.studies_of(MRN_A).iter().map(|st| st.uid.clone()));
    assert_eq!(sorted(ids(&bundle)), expected, "only the studies whose PatientID is pA's MR identifier");
    for study in resources(&bundle) {
        assert_eq!(
            study["subject"]["reference"],
            format!("{}/Patient/pA", s.ehr.base),
            "subject is the absolute reference to the EHR's Patient"
        );
        let address = wado_address(study);
        let uid = study["id"].as_str().unwrap();
        let got = get(&format!("{address}/studies/{uid}"), &[("Authorization", &bearer("tA"))]);
        assert_eq!(got.status, 200, "download {uid}: {}", got.text());
        assert_dicom_parts(&got, &index.study(uid).instances(), "smart-on-fhir download");
    }
    let read =
        s.server.get_with(&format!("/ehr/fhir/ImagingStudy/{}", expected[0]), &[("Authorization", &bearer("tA"))]);
    assert_eq!(read.status, 200, "read by id: {}", read.text());
    let other = &index.studies_of(MRN_B)[0].uid;
    let read = s.server.get_with(&format!("/ehr/fhir/ImagingStudy/{other}"), &[("Authorization", &bearer("tA"))]);
    assert_eq!(read.status, 404, "another patient's study cannot be read by id");
}

#[test]
fn wrong_patient_is_403() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    assert_outcome(&search(&s, "pB", "tA"), 403, "searching another patient");
    let missing = s.server.get_with("/ehr/fhir/ImagingStudy", &[("Authorization", &bearer("tA"))]);
    assert_outcome(&missing, 403, "searching without a patient");
}

#[test]
fn token_failures_are_401_with_the_right_challenge() {
    let s = setup();
    s.ehr.issue("expired", active("pA", SCOPES, now() - 10));
    let none = s.server.get("/ehr/fhir/ImagingStudy?patient=pA");
    assert_outcome(&none, 401, "no token");
    let challenge = none.header_or_empty("www-authenticate");
    assert!(challenge.starts_with("Bearer realm=") && !challenge.contains("error="), "no token: {challenge}");

    let inactive = search(&s, "pA", "never-issued");
    assert_outcome(&inactive, 401, "an inactive token");
    assert!(inactive.header_or_empty("www-authenticate").contains("error=\"invalid_token\""), "inactive challenge");

    let expired = search(&s, "pA", "expired");
    assert_outcome(&expired, 401, "a token whose exp has passed, though the EHR says active");
    assert!(expired.header_or_empty("www-authenticate").contains("error=\"invalid_token\""), "expired challenge");
}

#[test]
fn scope_and_patient_claim_failures_are_403() {
    let s = setup();
    s.ehr.issue("no-imaging", active("pA", "launch/patient patient/Observation.rs user/ImagingStudy.rs", now() + 600));
    s.ehr.issue("no-patient", json!({"active": true, "scope": SCOPES, "exp": now() + 600}));
    let reply = search(&s, "pA", "no-imaging");
    assert_outcome(&reply, 403, "no imaging scope");
    assert!(reply.header_or_empty("www-authenticate").contains("error=\"insufficient_scope\""), "scope challenge");
    assert_outcome(&search(&s, "pA", "no-patient"), 403, "no patient claim");
}

#[test]
fn a_study_token_of_patient_a_is_refused_with_patient_bs_token() {
    let s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.issue("tB", active("pB", SCOPES, now() + 600));
    let bundle = search(&s, "pA", "tA").json();
    let study = resources(&bundle)[0].clone();
    let url = format!("{}/studies/{}", wado_address(&study), study["id"].as_str().unwrap());
    let refused = get(&url, &[("Authorization", &bearer("tB"))]);
    assert_eq!(refused.status, 403, "patient B's token on patient A's study token: {}", refused.text());
    assert!(!refused.body_contains(b"DICM"), "no DICOM bytes in a refusal");
    let none = get(&url, &[]);
    assert_eq!(none.status, 401, "no bearer token on WADO");
    assert_eq!(get(&url, &[("Authorization", &bearer("tA"))]).status, 200, "patient A's own token");
}

#[test]
fn the_ehr_stopped_is_503_with_retry_after_and_never_data() {
    let mut s = setup();
    s.ehr.issue("tA", active("pA", SCOPES, now() + 600));
    s.ehr.issue("tA2", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "tA").status, 200, "the EHR up");
    s.ehr.stop();
    let reply = search(&s, "pA", "tA2");
    assert_outcome(&reply, 503, "the EHR stopped");
    let retry = reply.header_or_empty("retry-after");
    assert!(retry.parse::<u32>().is_ok(), "Retry-After is an integer, not {retry:?}");
    assert!(s.server.log().contains("introspection"), "the log says which step failed");
}

#[test]
fn garbage_and_slow_answers_are_503() {
    let s = setup_with("authorization.timeoutSeconds = 1", None);
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    s.ehr.issue("t2", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::Garbage);
    assert_outcome(&search(&s, "pA", "t1"), 503, "introspection answering HTML");
    s.ehr.set_mode(Mode::Slow(2500));
    assert_outcome(&search(&s, "pA", "t2"), 503, "introspection slower than the 1 s timeout");
    s.ehr.set_mode(Mode::Normal);
    assert_eq!(search(&s, "pA", "t2").status, 200, "failures are not cached: the same token works once the EHR does");
}

#[test]
fn the_backend_token_and_introspections_are_cached() {
    let s = setup();
    for t in ["t1", "t2", "t3"] {
        s.ehr.issue(t, active("pA", SCOPES, now() + 600));
    }
    for _ in 0..3 {
        assert_eq!(search(&s, "pA", "t1").status, 200);
    }
    let (discovery, token, introspect, patient) = s.ehr.counts();
    assert_eq!(introspect, 1, "the same token is introspected once while cached");
    assert_eq!(token, 1, "one backend token");
    assert_eq!(discovery, 1, "discovery once");
    assert_eq!(patient, 1, "the patient read once");
    assert_eq!(search(&s, "pA", "t2").status, 200);
    assert_eq!(search(&s, "pA", "t3").status, 200);
    let (_, token, introspect, _) = s.ehr.counts();
    assert_eq!(introspect, 3, "each new token is introspected");
    assert_eq!(token, 1, "the backend token is reused across requests and tokens");
    assert!(s.ehr.refusals().is_empty(), "the EHR refused a client assertion: {:?}", s.ehr.refusals());
}

#[test]
fn a_cached_token_is_refused_once_its_exp_passes() {
    let s = setup();
    let exp = now() + 2;
    s.ehr.issue("short", active("pA", SCOPES, exp));
    assert_eq!(search(&s, "pA", "short").status, 200, "valid before exp");
    // The one sleep of this suite: the token's own expiry is what is under test.
    while now() <= exp {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_outcome(&search(&s, "pA", "short"), 401, "after exp, though the introspection was cached for 60 s");
}

#[test]
fn a_refused_backend_token_is_replaced_once() {
    let s = setup();
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    s.ehr.issue("t2", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "t1").status, 200);
    s.ehr.revoke_backend_tokens();
    assert_eq!(search(&s, "pA", "t2").status, 200, "introspection's 401 makes the server get a new backend token");
    let (_, token, introspect, _) = s.ehr.counts();
    assert_eq!((token, introspect), (2, 3), "one new backend token, one retried introspection");
}

#[test]
fn a_failed_discovery_is_retried() {
    let s = setup();
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    s.ehr.set_mode(Mode::DiscoveryFails);
    assert_outcome(&search(&s, "pA", "t1"), 503, "discovery failing");
    s.ehr.set_mode(Mode::Normal);
    assert_eq!(search(&s, "pA", "t1").status, 200, "a failed discovery is not cached");
    assert_eq!(s.ehr.counts().0, 2, "discovery asked twice");
}

#[test]
fn client_secret_basic_works() {
    let s = setup_with("", Some("s3cret:with/odd chars+%"));
    s.ehr.issue("t1", active("pA", SCOPES, now() + 600));
    assert_eq!(search(&s, "pA", "t1").status, 200, "client_secret_basic: {}", s.server.dump());
    assert!(s.ehr.refusals().is_empty(), "{:?}", s.ehr.refusals());
}

#[test]
fn the_imaging_smart_configuration_carries_the_ehrs_endpoints() {
    let s = setup();
    let reply = s.server.get("/ehr/fhir/.well-known/smart-configuration");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc = reply.json();
    let host = s.ehr.base.trim_end_matches("/fhir");
    assert_eq!(doc["authorization_endpoint"], format!("{host}/auth/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{host}/auth/token"));
    assert!(doc["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "authorization_code"));
    assert!(doc["code_challenge_methods_supported"].as_array().unwrap().iter().any(|g| g == "S256"));
    assert!(doc["capabilities"].as_array().unwrap().iter().any(|c| c == "smart-imaging-access"));
}

#[test]
fn a_bad_jwk_stops_the_start_naming_the_key() {
    let dir = TempDir::new("badjwk");
    dir.write("key.json", r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA","d":"AA"}"#);
    for (client, what) in [
        (r#"{ id = "c", jwk = "missing.json" }"#, "missing.json"),
        (r#"{ id = "c", jwk = "key.json" }"#, "key.json"),
        (r#"{ id = "c" }"#, "client"),
    ] {
        let config = dir.config(&format!(
            "[tenants.ehr]\nauthorization.type = \"smart-on-fhir\"\nauthorization.fhirBaseUrl = \"http://127.0.0.1:9/fhir\"\n\
             authorization.client = {client}\nimages.lookup = \"studies-by-context\"\n"
        ));
        let run = run_cli(&["check", "--config", config.to_str().unwrap()], dir.path());
        assert_eq!(run.code(), Some(2), "{what}: {run:?}");
        assert!(run.stderr.contains("tenants.ehr.authorization.client") && run.stderr.contains(what), "{run:?}");
    }
}

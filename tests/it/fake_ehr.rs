//! A fake EHR for the `smart-on-fhir` tests (docs/ehr.md, Connecting to an EHR): a real HTTP server inside the
//! test process with a SMART configuration, a token endpoint that verifies the client assertion, an
//! introspection endpoint that requires the backend token, and Patient reads. It counts every call it gets,
//! and misbehaves on purpose when told to (a `Mode`): redirects to an attacker's host, wrong answers, slow
//! or held answers. The attacker's host is a second server on another loopback address (127.0.0.2).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::harness::*;

pub const MRN_A: &str = "MRN-1001";
pub const MRN_B: &str = "MRN-2002";

/// What every backend token the fake EHR issues ends with: long and distinctive, so a test can look for
/// it in a log.
pub const BACKEND_TOKEN_TAIL: &str = "Zq8Xv3Lm9Tr2Wp5Ys7Nb4Kd6Hg1Jc0Fa";

/// How long a held answer waits for its release at most, so that no test thread outlives its test by much.
const HOLD_AT_MOST: Duration = Duration::from_secs(90);

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// How the fake EHR misbehaves, when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Discovery answers 500.
    DiscoveryFails,
    /// Introspection answers 200 with a body that is not JSON.
    Garbage,
    /// Introspection answers after this many milliseconds.
    Slow(u64),
    /// Introspection and Patient reads each answer after this many milliseconds.
    SlowEach(u64),
    /// Introspection answers `302 Found` with this `Location`.
    IntrospectionRedirect(String),
    /// `Patient/{id}` answers `302 Found` with this `Location` followed by the path asked for.
    PatientRedirect(String),
    /// Discovery does not answer until the mode changes.
    HoldDiscovery,
    /// The token endpoint does not answer until the mode changes.
    HoldToken,
    /// Introspection does not answer until the mode changes.
    HoldIntrospection,
    /// `Patient/{id}` does not answer until the mode changes.
    HoldPatient,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub discovery: usize,
    pub token: usize,
    pub introspect: usize,
    pub patient: usize,
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
    /// Every client assertion received, to look for in logs.
    assertions: Vec<String>,
    /// Introspection answers, by access token.
    tokens: HashMap<String, Value>,
    patients: HashMap<String, Value>,
    counts: Counts,
    /// Why the last refused token request was refused.
    refusals: Vec<String>,
}

/// The state and the condition variable that wakes held answers and those waiting for a count.
type Shared = Arc<(Mutex<State>, Condvar)>;

pub struct FakeEhr {
    pub base: String,
    shared: Shared,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FakeEhr {
    pub fn start(client_id: &str, public_jwk: Option<Value>, secret: Option<&str>) -> FakeEhr {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("fake EHR cannot bind"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let base = format!("http://{addr}/fhir");
        let mut patients = HashMap::new();
        patients.insert("pA".to_string(), patient("pA", MRN_A, "Anna", "Müller"));
        patients.insert("pB".to_string(), patient("pB", MRN_B, "Yuki", "Tanaka"));
        let state = State {
            mode: Mode::Normal,
            client_id: client_id.into(),
            public_jwk,
            secret: secret.map(Into::into),
            token_url: format!("http://{addr}/auth/token"),
            backend_tokens: HashSet::new(),
            backend_expires_in: 300,
            jtis: HashSet::new(),
            assertions: Vec::new(),
            tokens: HashMap::new(),
            patients,
            counts: Counts::default(),
            refusals: Vec::new(),
        };
        let shared: Shared = Arc::new((Mutex::new(state), Condvar::new()));
        let (s, st) = (Arc::clone(&server), Arc::clone(&shared));
        let thread = std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let st = Arc::clone(&st);
                // One thread per request, so a slow answer does not hold up the others.
                std::thread::spawn(move || answer(&st, request));
            }
        });
        FakeEhr { base, shared, server, thread: Some(thread) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the mode; held answers see the change at once.
    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = mode;
        self.shared.1.notify_all();
    }

    /// Registers an access token the EHR issued to an app.
    pub fn issue(&self, token: &str, answer: Value) {
        self.state().tokens.insert(token.into(), answer);
    }

    /// Sets what `GET Patient/{id}` answers.
    pub fn set_patient(&self, id: &str, resource: Value) {
        self.state().patients.insert(id.into(), resource);
    }

    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let c = self.state().counts;
        (c.discovery, c.token, c.introspect, c.patient)
    }

    /// Waits until the counts satisfy `done`, at most 20 seconds; panics naming `what` otherwise.
    pub fn wait_for(&self, what: &str, done: impl Fn(&Counts) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut state = self.state();
        while !done(&state.counts) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the fake EHR never saw {what}: {:?}", state.counts);
            state = self.shared.1.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    pub fn revoke_backend_tokens(&self) {
        self.state().backend_tokens.clear();
    }

    /// Every backend token it issued (revoked or not).
    pub fn issued_backend_tokens(&self) -> Vec<String> {
        (1..=self.state().counts.token).map(|n| format!("backend-{n}-{BACKEND_TOKEN_TAIL}")).collect()
    }

    /// The client assertions it received.
    pub fn assertions(&self) -> Vec<String> {
        self.state().assertions.clone()
    }

    pub fn refusals(&self) -> Vec<String> {
        self.state().refusals.clone()
    }

    /// Stops answering: the port is closed.
    pub fn stop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeEhr {
    fn drop(&mut self) {
        // Release anything held, so no answer thread waits on after its test.
        self.set_mode(Mode::Normal);
        self.stop();
    }
}

/// A Patient with an SSN (typed SS) and an MRN (typed MR).
pub fn patient(id: &str, mrn: &str, given: &str, family: &str) -> Value {
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

pub fn reply(request: tiny_http::Request, status: u16, body: &str) {
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
    let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(status).with_header(header));
}

fn redirect(request: tiny_http::Request, location: &str) {
    let header = tiny_http::Header::from_bytes("Location", location).unwrap();
    let _ = request.respond(tiny_http::Response::from_string("").with_status_code(302).with_header(header));
}

fn form(body: &str) -> HashMap<String, String> {
    body.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
pub fn decode(s: &str) -> String {
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

pub fn header(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// Counts an arrival and wakes whoever waits for counts.
fn arrive(shared: &Shared, count: impl FnOnce(&mut Counts)) -> Mode {
    let mut s = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    count(&mut s.counts);
    shared.1.notify_all();
    s.mode.clone()
}

/// Waits while the mode is `held` (at most `HOLD_AT_MOST`).
fn hold(shared: &Shared, held: &Mode) {
    let deadline = Instant::now() + HOLD_AT_MOST;
    let mut s = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    while s.mode == *held {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        s = shared.1.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
    }
}

fn answer(shared: &Shared, mut request: tiny_http::Request) {
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let url = request.url().to_string();
    let state = &shared.0;
    match url.as_str() {
        "/fhir/.well-known/smart-configuration" => {
            let mode = arrive(shared, |c| c.discovery += 1);
            match mode {
                Mode::DiscoveryFails => return reply(request, 500, "{}"),
                Mode::HoldDiscovery => hold(shared, &mode),
                _ => {}
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
            let mode = arrive(shared, |c| c.token += 1);
            if mode == Mode::HoldToken {
                hold(shared, &mode);
            }
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            match check_client(&mut s, &form(&body), header(&request, "Authorization")) {
                Ok(()) => {
                    let token = format!("backend-{}-{BACKEND_TOKEN_TAIL}", s.counts.token);
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
            let mode = arrive(shared, |c| c.introspect += 1);
            let authorized = {
                let s = state.lock().unwrap_or_else(|e| e.into_inner());
                let bearer = header(&request, "Authorization").unwrap_or_default();
                bearer.strip_prefix("Bearer ").is_some_and(|t| s.backend_tokens.contains(t))
            };
            if !authorized {
                return reply(request, 401, r#"{"error":"invalid_token"}"#);
            }
            match mode {
                Mode::Garbage => return reply(request, 200, "<html>oops</html>"),
                Mode::Slow(ms) | Mode::SlowEach(ms) => std::thread::sleep(Duration::from_millis(ms)),
                Mode::IntrospectionRedirect(location) => return redirect(request, &location),
                Mode::HoldIntrospection => hold(shared, &mode),
                _ => {}
            }
            let token = form(&body).get("token").cloned().unwrap_or_default();
            let answer = state.lock().unwrap().tokens.get(&token).cloned().unwrap_or(json!({"active": false}));
            reply(request, 200, &answer.to_string())
        }
        path if path.starts_with("/fhir/Patient/") => {
            let mode = arrive(shared, |c| c.patient += 1);
            let (found, authorized) = {
                let s = state.lock().unwrap_or_else(|e| e.into_inner());
                let bearer = header(&request, "Authorization").unwrap_or_default();
                let authorized = bearer.strip_prefix("Bearer ").is_some_and(|t| s.backend_tokens.contains(t));
                (s.patients.get(&path["/fhir/Patient/".len()..]).cloned(), authorized)
            };
            match mode {
                Mode::PatientRedirect(location) => return redirect(request, &format!("{location}{path}")),
                Mode::SlowEach(ms) => std::thread::sleep(Duration::from_millis(ms)),
                Mode::HoldPatient => hold(shared, &mode),
                _ => {}
            }
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
    s.assertions.push(jwt.clone());
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

// ---------------------------------------------------------------------------------------------------
// The attacker's host.

/// What a redirect from the EHR points at: a server on 127.0.0.2, another host, that answers every
/// introspection with an active token for patient pB and every Patient read with a Patient of MRN-2002
/// under whatever id was asked. It records every request it gets.
pub struct Attacker {
    /// `http://127.0.0.2:PORT`.
    pub base: String,
    seen: Arc<Mutex<Vec<String>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Attacker {
    pub fn start() -> Attacker {
        let server = Arc::new(tiny_http::Server::http("127.0.0.2:0").expect("the attacker's host binds 127.0.0.2"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, log) = (Arc::clone(&server), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let url = request.url().to_string();
                let auth = header(&request, "Authorization").unwrap_or_default();
                log.lock().unwrap().push(format!("{} {url} [{auth}]", request.method()));
                if let Some(id) = url.rsplit_once("/Patient/").map(|(_, id)| id.to_string()) {
                    reply(request, 200, &patient(&id, MRN_B, "Eve", "Mallory").to_string());
                } else {
                    reply(request, 200, &active("pB", SCOPES, now() + 600).to_string());
                }
            }
        });
        Attacker { base: format!("http://{addr}"), seen, server, thread: Some(thread) }
    }

    /// Every request it got, as `METHOD URL [Authorization]`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// A server with a `smart-on-fhir` tenant pointed at a fake EHR.

pub fn active(patient: &str, scope: &str, exp: u64) -> Value {
    json!({"active": true, "client_id": "app", "scope": scope, "patient": patient, "exp": exp})
}

pub const SCOPES: &str = "launch/patient openid patient/ImagingStudy.rs";

/// A server with one `smart-on-fhir` tenant `ehr` pointed at `ehr`, keyed with a key made by `keygen`.
pub struct Setup {
    pub ehr: FakeEhr,
    pub server: Server,
    pub _dir: TempDir,
}

/// How to start a `Setup`: lines added to the `ehr` tenant, to `[server]`, tables after the tenant (more
/// tenants), the client secret (else a key made by `keygen`), extra environment.
#[derive(Debug, Default)]
pub struct Options<'a> {
    pub tenant: &'a str,
    pub server: &'a str,
    pub tables: &'a str,
    pub secret: Option<&'a str>,
    pub env: &'a [(&'a str, &'a str)],
}

pub fn setup_opts(o: Options) -> Setup {
    let dir = TempDir::new("ehr");
    let (client, public) = match o.secret {
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
    let ehr = FakeEhr::start("imaging-server", public, o.secret);
    let config = dir.config(&format!(
        "[server]\nstudy_token_ttl = 600\n{server}\n\n[tenants.ehr]\nauthorization.type = \"smart-on-fhir\"\n\
         authorization.fhirBaseUrl = {base}\nauthorization.client = {client}\n{extra}\n\
         images.lookup = \"studies-by-context\"\n\n{tables}\n",
        server = o.server,
        base = toml_string(&ehr.base),
        extra = o.tenant,
        tables = o.tables,
    ));
    let mut launch = Launch::new(config).env(KEY_VAR, "ehr-tests-shared-key-0123456789");
    for (name, value) in o.env {
        launch = launch.env(name, value);
    }
    let server = launch.start();
    Setup { ehr, server, _dir: dir }
}

pub fn setup_with(extra: &str, secret: Option<&str>) -> Setup {
    setup_opts(Options { tenant: extra, secret, ..Options::default() })
}

pub fn setup() -> Setup {
    setup_with("", None)
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn search(s: &Setup, patient: &str, token: &str) -> Reply {
    search_with(s, &format!("patient={patient}"), token)
}

/// An ImagingStudy search of the `ehr` tenant with this query.
pub fn search_with(s: &Setup, query: &str, token: &str) -> Reply {
    s.server.get_with(&format!("/ehr/fhir/ImagingStudy?{query}"), &[("Authorization", &bearer(token))])
}

/// Sends `n` GETs of `path` at once, the `i`th with the bearer token `token(i)`, each on a connection opened
/// (one after the other) before any is sent; the replies arrive on the channel as they come.
pub fn burst(s: &Setup, path: &str, token: impl Fn(usize) -> String, n: usize) -> mpsc::Receiver<Reply> {
    // Each connection is opened with a `/healthz` answered on it: the workers run by then (`listening on`
    // comes before they start), and no connection is opened at the same moment as another.
    let clients: Vec<KeptAlive> = (0..n).map(|_| KeptAlive::open(&s.server)).collect();
    let (tx, rx) = mpsc::channel();
    for (i, client) in clients.into_iter().enumerate() {
        let (path, tx) = (path.to_string(), tx.clone());
        let auth = bearer(&token(i));
        std::thread::spawn(move || {
            let _ = tx.send(client.get(&path, &[("Authorization", &auth)]));
        });
    }
    rx
}

/// The next reply of a burst, within the harness's patience.
pub fn next(rx: &mpsc::Receiver<Reply>, what: &str) -> Reply {
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("{what}: no reply in 20 s"))
}

/// Waits until the server's `/metrics`, asked on `client`'s connection, counts at least `n` lookups in its
/// `cache` ("introspection", "patient") that missed, at most 20 seconds: that many requests got as far as
/// needing the EHR for it.
pub fn wait_for_misses(client: &KeptAlive, cache: &str, n: usize) {
    let line = format!("smart_imaging_cache_lookups_total{{cache=\"{cache}\",result=\"miss\"}} ");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = client.get("/metrics", &[]).text();
        let misses = metrics.lines().find_map(|l| l.strip_prefix(line.as_str())).map_or(0, |v| v.parse().unwrap());
        if misses >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{misses} of {n} requests missed the {cache} cache:\n{metrics}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn assert_outcome(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    assert_eq!(reply.json()["resourceType"], "OperationOutcome", "{what}: an OperationOutcome, not data");
}

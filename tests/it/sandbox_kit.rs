//! What the sandbox tests share: a server with the built-in sandbox EHR (the repository's own configuration,
//! or a test's own with a key made by `keygen`), an HTTP client that follows no redirect and can POST
//! forms, the authorization-code flow with PKCE as an app runs it, and client assertions signed with the
//! imaging tenant's key.

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::fake_ehr::decode;
use crate::harness::*;

pub const APP: &str = "test-app";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub const SCOPES: &str = "launch/patient patient/ImagingStudy.rs";
pub const BACKEND: &str = "smart-imaging";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The sandbox's two patients, as the repository's configuration has them.
pub const PATIENTS: &str = r#"
[[sandbox.patient]]
id = "p1"
name = "Anna Müller"
birthDate = "1970-04-12"
gender = "female"
identifier = [{ system = "http://hospital.example.org", value = "MRN-1001", type = "MR" }]

[[sandbox.patient]]
id = "p2"
name = "Yuki Tanaka"
gender = "male"
identifier = [{ system = "http://hospital.example.org", value = "MRN-2002", type = "MR" }]
"#;

/// An imaging server with a sandbox EHR, and what a test needs to talk to both.
pub struct Sandboxed {
    pub server: Server,
    /// The sandbox's public URL.
    pub sandbox: String,
    /// The imaging tenant's private JWK, which the sandbox knows as client `smart-imaging`.
    pub key: Value,
    pub _dir: Option<TempDir>,
}

/// `http://ADDR` of the `sandbox listening on http://ADDR (public URL URL; …)` line, and its public URL.
fn sandbox_of(server: &Server) -> String {
    let log = server.log();
    let line = log.lines().find(|l| l.contains("sandbox listening on http://")).unwrap_or_else(|| {
        panic!("the server printed no `sandbox listening on` line\n{}", server.dump());
    });
    let url = line.split("(public URL ").nth(1).and_then(|r| r.split(';').next()).expect("the public URL");
    url.to_string()
}

/// The repository's own `smart-imaging.toml`, with its sandbox on port 0.
pub fn start_sample() -> Sandboxed {
    let server = Launch::new(sample_config()).start();
    let sandbox = sandbox_of(&server);
    let key = read_json(&data_dir().join("sandbox/smart-tenant.private.jwk.json"));
    Sandboxed { server, sandbox, key, _dir: None }
}

/// A test's own configuration: a `[sandbox]` on 127.0.0.1:0 with `sandbox_lines` added, the patients p1 and
/// p2, the backend client `smart-imaging` with a key made by `keygen`, and the `smart` tenant using it.
pub fn start_with(sandbox_lines: &str) -> Sandboxed {
    start_opts("", sandbox_lines)
}

/// As `start_with`, with `server_lines` in `[server]`.
pub fn start_opts(server_lines: &str, sandbox_lines: &str) -> Sandboxed {
    start_launched(server_lines, sandbox_lines, |launch| launch)
}

/// As `start_opts`, with the launch changed by `edit` (an open-file limit, say).
pub fn start_launched(server_lines: &str, sandbox_lines: &str, edit: impl FnOnce(Launch) -> Launch) -> Sandboxed {
    let dir = TempDir::new("sandbox");
    let prefix = dir.path().join("client");
    let run = run_cli(&["keygen", "--out", prefix.to_str().unwrap()], dir.path());
    assert_eq!(run.code(), Some(0), "keygen failed: {run}");
    let config = dir.config(&format!(
        "[server]\n{server_lines}\n\n[sandbox]\nlisten = \"127.0.0.1:0\"\nclients = [{{ id = \"{BACKEND}\", jwks = \"client.public.jwk.json\" }}]\n\
         {sandbox_lines}\n{PATIENTS}\n[tenants.smart]\nauthorization.type = \"smart-on-fhir\"\n\
         authorization.fhirBaseUrl = \"{{sandbox}}/fhir\"\n\
         authorization.client = {{ id = \"{BACKEND}\", jwk = \"client.private.jwk.json\" }}\n\
         images.lookup = \"studies-by-context\"\n"
    ));
    let server = edit(Launch::new(config).env(KEY_VAR, "sandbox-tests-key-0123456789")).start();
    let sandbox = sandbox_of(&server);
    let key = read_json(&dir.path().join("client.private.jwk.json"));
    Sandboxed { server, sandbox, key, _dir: Some(dir) }
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

impl Sandboxed {
    /// The sandbox's address, for raw requests.
    pub fn addr(&self) -> SocketAddr {
        self.sandbox.strip_prefix("http://").unwrap().parse().expect("the sandbox listens on an IP address")
    }

    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.sandbox)
    }

    /// The imaging `smart` tenant's FHIR base, which apps ask their tokens for (`aud`).
    pub fn imaging_fhir(&self) -> String {
        self.server.url("/smart/fhir")
    }

    /// An app's authorization-code flow at the issuer of patient `p1`.
    pub fn flow(&self) -> Flow {
        Flow::new(&format!("{}/p1/auth/authorize", self.sandbox), &self.token_url(), &self.imaging_fhir())
    }

    /// A client assertion of the backend client, with `edit` applied to its claims.
    pub fn assertion(&self, edit: impl Fn(&mut Value)) -> String {
        let now = unix_now();
        let mut claims = json!({
            "iss": BACKEND, "sub": BACKEND, "aud": self.token_url(),
            "iat": now, "exp": now + 240, "jti": random_text(),
        });
        edit(&mut claims);
        sign(&self.key, &claims)
    }

    /// `client_credentials` with this assertion and scope.
    pub fn client_credentials(&self, assertion: &str, scope: &str) -> Reply {
        post_form(
            &self.token_url(),
            &[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
            ],
            &[],
        )
    }

    /// A backend access token of the client `smart-imaging`.
    pub fn backend_token(&self) -> String {
        let reply = self.client_credentials(&self.assertion(|_| {}), "system/Patient.rs");
        assert_eq!(reply.status, 200, "client_credentials: {}\n{}", reply.text(), self.server.dump());
        reply.json()["access_token"].as_str().unwrap().to_string()
    }

    /// Introspects `token`, with `bearer` as the caller's token when given.
    pub fn introspect(&self, bearer: Option<&str>, token: &str) -> Reply {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        post_form(&format!("{}/auth/introspect", self.sandbox), &[("token", token)], &headers)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// 32 random bytes as base64url: a PKCE verifier, a state, a jti.
pub fn random_text() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// An ES384 JWS of `claims` with the private JWK `key`.
pub fn sign(key: &Value, claims: &Value) -> String {
    let field = |n: &str| URL_SAFE_NO_PAD.decode(key[n].as_str().unwrap()).unwrap();
    let public = [vec![4u8], field("x"), field("y")].concat();
    let rng = ring::rand::SystemRandom::new();
    let pair =
        EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P384_SHA384_FIXED_SIGNING, &field("d"), &public, &rng)
            .expect("an ES384 key");
    let header = json!({"alg": "ES384", "typ": "JWT", "kid": key["kid"]});
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = pair.sign(&rng, input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

// ---------------------------------------------------------------------------------------------------
// HTTP without redirects.

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into()
}

/// `GET url`, following no redirect.
pub fn fetch(url: &str, headers: &[(&str, &str)]) -> Reply {
    assert!(url.starts_with("http://127.0.0.1:"), "the tests only talk to 127.0.0.1, not {url}");
    let mut request = agent().get(url);
    for (n, v) in headers {
        request = request.header(*n, *v);
    }
    reply_of(&format!("GET {url}"), request.call())
}

/// `POST url` with a form body.
pub fn post_form(url: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Reply {
    assert!(url.starts_with("http://127.0.0.1:"), "the tests only talk to 127.0.0.1, not {url}");
    let mut request = agent().post(url);
    for (n, v) in headers {
        request = request.header(*n, *v);
    }
    reply_of(&format!("POST {url}"), request.send_form(form.iter().copied()))
}

/// The decoded value of a query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').filter_map(|p| p.split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| decode(v))
}

// ---------------------------------------------------------------------------------------------------
// The authorization-code flow, as an app runs it.

/// One app's authorization request and token request, with parameters a test may change.
#[derive(Debug, Clone)]
pub struct Flow {
    pub authorize_url: String,
    pub token_url: String,
    pub params: Vec<(String, String)>,
    pub verifier: String,
}

impl Flow {
    pub fn new(authorize_url: &str, token_url: &str, aud: &str) -> Flow {
        let verifier = random_text();
        let params = [
            ("response_type", "code"),
            ("client_id", APP),
            ("redirect_uri", REDIRECT),
            ("scope", SCOPES),
            ("state", &random_text()),
            ("aud", aud),
            ("code_challenge", &s256(&verifier)),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        Flow { authorize_url: authorize_url.into(), token_url: token_url.into(), params, verifier }
    }

    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }

    /// The same flow with a parameter set (added when absent).
    pub fn set(mut self, name: &str, value: &str) -> Flow {
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some(p) => p.1 = value.into(),
            None => self.params.push((name.into(), value.into())),
        }
        self
    }

    pub fn without(mut self, name: &str) -> Flow {
        self.params.retain(|(n, _)| n != name);
        self
    }

    /// The authorization request's URL.
    pub fn url(&self) -> String {
        let query: Vec<String> = self.params.iter().map(|(n, v)| format!("{n}={}", encode(v))).collect();
        format!("{}?{}", self.authorize_url, query.join("&"))
    }

    /// `GET` the authorization endpoint, following no redirect.
    pub fn authorize(&self) -> Reply {
        fetch(&self.url(), &[])
    }

    /// The authorization request approved: its redirect's `Location`.
    pub fn approved(&self) -> String {
        let reply = self.authorize();
        assert_eq!(reply.status, 302, "authorize {}: {}", self.url(), reply.text());
        reply.header_or_empty("location").to_string()
    }

    /// The code of an approved authorization request.
    pub fn code(&self) -> String {
        let location = self.approved();
        query_param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"))
    }

    /// The token request for `code`, with the flow's client id, redirect URI and verifier.
    pub fn exchange(&self, code: &str) -> Reply {
        self.exchange_with(code, &[])
    }

    /// The token request for `code` with some of its parameters replaced.
    pub fn exchange_with(&self, code: &str, replaced: &[(&str, &str)]) -> Reply {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.param("redirect_uri")),
            ("client_id", self.param("client_id")),
            ("code_verifier", self.verifier.as_str()),
        ];
        for (name, value) in replaced {
            form.retain(|(n, _)| n != name);
            if !value.is_empty() {
                form.push((name, value));
            }
        }
        post_form(&self.token_url, &form, &[])
    }

    /// The whole flow: the token answer.
    pub fn token(&self) -> Value {
        let reply = self.exchange(&self.code());
        assert_eq!(reply.status, 200, "token: {}", reply.text());
        reply.json()
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `error` of a refused authorization request's redirect, having checked that it went to the exact
/// `redirect_uri` with the exact `state`.
pub fn redirected_error(flow: &Flow, reply: &Reply) -> String {
    assert_eq!(reply.status, 302, "a refusal is a redirect to the app: {}", reply.text());
    let location = reply.header_or_empty("location");
    assert!(location.starts_with(&format!("{REDIRECT}?")), "to the redirect_uri: {location}");
    assert_eq!(query_param(location, "state").as_deref(), Some(flow.param("state")), "state echoed: {location}");
    assert!(query_param(location, "code").is_none(), "no code with an error: {location}");
    query_param(location, "error").unwrap_or_else(|| panic!("no error in {location}"))
}

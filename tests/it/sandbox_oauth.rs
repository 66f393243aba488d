//! The sandbox EHR's OAuth rules (docs/ehr.md, Its OAuth rules), one test each against the real binary:
//! PKCE S256 required; `redirect_uri` and `state` echoed exactly; codes single-use and expiring; scopes
//! never broadened; `client_credentials` with a `private_key_jwt` assertion checked (signature, `iss` =
//! `sub`, `aud`, `exp`, `jti` replay); introspection only with a backend bearer token, answering `active`,
//! `scope`, `client_id`, `exp` and `patient`; expired and unknown tokens inactive. Each test fails when its
//! rule is taken out of `src/sandbox/`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::sandbox_kit::*;

fn oauth_error(reply: &Reply, status: u16, error: &str, what: &str) -> String {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], error, "{what}: {body}");
    assert!(body.get("access_token").is_none(), "{what}: no token in a refusal");
    body["error_description"].as_str().unwrap_or_default().to_string()
}

#[test]
fn pkce_s256_is_required_and_its_verifier_checked() {
    let k = start_sample();
    let flow = k.flow();
    for (what, refused) in [
        ("no code_challenge_method", flow.clone().without("code_challenge_method")),
        ("no code_challenge", flow.clone().without("code_challenge")),
        ("no PKCE at all", flow.clone().without("code_challenge").without("code_challenge_method")),
        ("the plain method", flow.clone().set("code_challenge_method", "plain").set("code_challenge", &flow.verifier)),
        ("a challenge that is not S256's length", flow.clone().set("code_challenge", "abc")),
    ] {
        assert_eq!(redirected_error(&refused, &refused.authorize()), "invalid_request", "{what}");
    }
    let wrong = flow.exchange_with(&flow.code(), &[("code_verifier", &random_text())]);
    let why = oauth_error(&wrong, 400, "invalid_grant", "another verifier");
    assert!(why.contains("code_verifier"), "{why}");
    let missing = flow.exchange_with(&flow.code(), &[("code_verifier", "")]);
    oauth_error(&missing, 400, "invalid_request", "no verifier");
    let the_challenge = flow.exchange_with(&flow.code(), &[("code_verifier", flow.param("code_challenge"))]);
    oauth_error(&the_challenge, 400, "invalid_grant", "the challenge sent as the verifier");
    let good = flow.exchange(&flow.code());
    assert_eq!(good.status, 200, "the right verifier: {}", good.text());
}

#[test]
fn the_redirect_uri_is_echoed_exactly_and_must_match_at_the_token_endpoint() {
    let k = start_sample();
    let uri = "http://127.0.0.1:9/callback?app=1&x=a%20b";
    let flow = k.flow().set("redirect_uri", uri);
    let location = flow.approved();
    assert!(location.starts_with(&format!("{uri}&code=")), "the redirect_uri exactly, its query kept: {location}");
    for other in [
        "http://127.0.0.1:9/callback?app=1&x=a%20b/",
        "http://127.0.0.1:9/callback",
        "http://127.0.0.2:9/callback?app=1&x=a%20b",
    ] {
        let reply = flow.exchange_with(&flow.code(), &[("redirect_uri", other)]);
        let why = oauth_error(&reply, 400, "invalid_grant", other);
        assert!(why.contains("redirect_uri"), "{why}");
    }
    assert_eq!(flow.exchange(&flow.code()).status, 200, "the same redirect_uri");
    for (what, bad) in [
        ("no redirect_uri", k.flow().without("redirect_uri")),
        ("a javascript: URI", k.flow().set("redirect_uri", "javascript:alert(1)")),
        ("a fragment", k.flow().set("redirect_uri", "http://127.0.0.1:9/cb#x")),
        ("no client_id", k.flow().without("client_id")),
    ] {
        let reply = bad.authorize();
        assert_eq!(reply.status, 400, "{what}: a page, never a redirect: {}", reply.text());
        assert!(reply.header("location").is_none(), "{what}");
        assert!(reply.text().contains("teaching and tests"), "{what}: the page says it is a sandbox");
    }
}

#[test]
fn the_state_is_echoed_exactly_and_required() {
    let k = start_sample();
    let state = "a b/c?d=e&f+g%h~ü=";
    let flow = k.flow().set("state", state);
    assert_eq!(query_param(&flow.approved(), "state").as_deref(), Some(state), "approved");
    let refused = flow.clone().without("code_challenge");
    assert_eq!(redirected_error(&refused, &refused.authorize()), "invalid_request", "refused, state echoed");
    let stateless = k.flow().without("state").authorize();
    assert_eq!(stateless.status, 302);
    let location = stateless.header_or_empty("location");
    assert_eq!(query_param(location, "error").as_deref(), Some("invalid_request"), "no state: {location}");
    assert!(query_param(location, "code").is_none(), "no code without a state: {location}");
}

#[test]
fn a_code_is_good_once_and_its_second_use_revokes_the_first_token() {
    let k = start_sample();
    let flow = k.flow();
    let code = flow.code();
    let first = flow.exchange(&code);
    assert_eq!(first.status, 200, "{}", first.text());
    let token = first.json()["access_token"].as_str().unwrap().to_string();
    let backend = k.backend_token();
    assert_eq!(k.introspect(Some(&backend), &token).json()["active"], true, "the first token works");
    oauth_error(&flow.exchange(&code), 400, "invalid_grant", "the same code again");
    assert_eq!(k.introspect(Some(&backend), &token).json()["active"], false, "the code's token is revoked");
    oauth_error(&flow.exchange("0123456789abcdef"), 400, "invalid_grant", "a code never issued");
    let log = k.server.wait_for_log("the replay", |l| l.contains("came back a second time"));
    assert!(!log.contains(&code) && !log.contains(&token), "no code or token in the log");
}

#[test]
fn a_code_expires() {
    let k = start_with("code_lifetime = 1");
    let flow = k.flow();
    let code = flow.code();
    // Not a wait for readiness: the code lives one second, and two have passed.
    std::thread::sleep(Duration::from_millis(2100));
    let why = oauth_error(&flow.exchange(&code), 400, "invalid_grant", "an expired code");
    assert!(why.contains("expired"), "{why}");
}

#[test]
fn scopes_are_never_broadened() {
    let k = start_sample();
    let asked = "launch/patient openid fhirUser offline_access patient/ImagingStudy.rs system/Patient.rs";
    let token = k.flow().set("scope", asked).token();
    let granted = token["scope"].as_str().unwrap();
    assert_eq!(granted, "launch/patient patient/ImagingStudy.rs", "no system scope for an app, nothing unsupported");
    let asked_set: Vec<&str> = asked.split(' ').collect();
    assert!(granted.split(' ').all(|s| asked_set.contains(&s)), "only scopes asked for");
    let backend = k.backend_token();
    let seen = k.introspect(Some(&backend), token["access_token"].as_str().unwrap()).json();
    assert_eq!(seen["scope"], granted, "introspection says the same");

    let narrow = k.flow().set("scope", "patient/ImagingStudy.rs").token();
    assert_eq!(narrow["scope"], "patient/ImagingStudy.rs");
    assert!(narrow.get("patient").is_none(), "no launch/patient asked, no patient in context: {narrow}");

    let reply = k.client_credentials(&k.assertion(|_| {}), "system/Patient.rs patient/ImagingStudy.rs user/*.rs");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["scope"], "system/Patient.rs", "a backend client gets only the system scopes it asked for");
    let none = k.client_credentials(&k.assertion(|_| {}), "patient/ImagingStudy.rs");
    oauth_error(&none, 400, "invalid_scope", "a backend client asking no system scope");
    let refused = k.flow().set("scope", "openid system/Patient.rs");
    assert_eq!(redirected_error(&refused, &refused.authorize()), "invalid_scope", "nothing an app may be granted");
}

#[test]
fn client_credentials_checks_the_private_key_jwt_assertion() {
    let k = start_sample();
    let (other_key, _) = {
        let dir = TempDir::new("other-key");
        let run = run_cli(&["keygen", "--out", "other"], dir.path());
        assert_eq!(run.code(), Some(0), "{run}");
        let text = std::fs::read_to_string(dir.path().join("other.private.jwk.json")).unwrap();
        (serde_json::from_str::<Value>(&text).unwrap(), dir)
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let good = k.client_credentials(&k.assertion(|_| {}), "system/Patient.rs");
    assert_eq!(good.status, 200, "a good assertion: {}", good.text());
    let forged = sign(
        &other_key,
        &json!({"iss": BACKEND, "sub": BACKEND, "aud": k.token_url(), "exp": now + 200, "jti": random_text()}),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("signed with another key", forged, "signature"),
        ("iss is not sub", k.assertion(|c| c["sub"] = json!("someone-else")), "iss and sub"),
        (
            "an unregistered client",
            k.assertion(|c| {
                c["iss"] = json!("stranger");
                c["sub"] = json!("stranger");
            }),
            "not registered",
        ),
        ("aud another URL", k.assertion(|c| c["aud"] = json!(format!("{}/fhir", k.sandbox))), "aud"),
        ("exp passed", k.assertion(|c| c["exp"] = json!(now - 5)), "expired"),
        ("exp an hour ahead", k.assertion(|c| c["exp"] = json!(now + 3600)), "five minutes"),
        (
            "no exp",
            k.assertion(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "exp",
        ),
        (
            "no jti",
            k.assertion(|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "jti",
        ),
        (
            "alg none",
            {
                let signed = k.assertion(|_| {});
                let claims = signed.split('.').nth(1).unwrap().to_string();
                format!("{}.{claims}.", encode_json(&json!({"alg": "none", "typ": "JWT"})))
            },
            "alg",
        ),
    ];
    for (what, assertion, cause) in &cases {
        let why = oauth_error(&k.client_credentials(assertion, "system/Patient.rs"), 401, "invalid_client", what);
        assert!(why.contains(cause), "{what}: {why}");
    }
    let once = k.assertion(|_| {});
    assert_eq!(k.client_credentials(&once, "system/Patient.rs").status, 200, "first use");
    let why = oauth_error(&k.client_credentials(&once, "system/Patient.rs"), 401, "invalid_client", "replayed");
    assert!(why.contains("jti"), "{why}");
    let typed = post_form(
        &k.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            ("client_assertion", &k.assertion(|_| {})),
        ],
        &[],
    );
    oauth_error(&typed, 401, "invalid_client", "no client_assertion_type");
    let basic = post_form(&k.token_url(), &[("grant_type", "client_credentials")], &[("Authorization", "Basic YTpi")]);
    oauth_error(&basic, 401, "invalid_client", "client_secret_basic");
}

fn encode_json(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn introspection_requires_a_backend_clients_bearer_token() {
    let k = start_sample();
    let app = k.flow().token()["access_token"].as_str().unwrap().to_string();
    for (what, bearer) in [
        ("no bearer token", None),
        ("an app's token", Some(app.as_str())),
        ("a made-up token", Some("x".repeat(64).leak() as &str)),
    ] {
        let reply = k.introspect(bearer, &app);
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert!(reply.header_or_empty("www-authenticate").starts_with("Bearer "), "{what}: a Bearer challenge");
        assert!(reply.json().get("active").is_none(), "{what}: says nothing of the token");
    }
    assert_eq!(k.introspect(Some(&k.backend_token()), &app).status, 200, "the backend client's token");
}

#[test]
fn introspection_answers_active_scope_client_exp_and_patient() {
    let k = start_sample();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let token = k.flow().token();
    assert_eq!(token["patient"], "p1", "the token answer names the patient: {token}");
    assert_eq!(token["token_type"], "Bearer");
    let answer = k.introspect(Some(&k.backend_token()), token["access_token"].as_str().unwrap()).json();
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["scope"], SCOPES);
    assert_eq!(answer["client_id"], APP);
    assert_eq!(answer["patient"], "p1");
    let exp = answer["exp"].as_u64().expect("exp");
    assert!(exp > before && exp <= before + 3600 + 5, "exp {exp} one token lifetime ahead");
    assert_eq!(k.introspect(Some(&k.backend_token()), "never-issued").json(), json!({"active": false}));
}

#[test]
fn expired_tokens_are_inactive_here_and_refused_by_the_imaging_server() {
    let k = start_with("token_lifetime = 1");
    let token = k.flow().token()["access_token"].as_str().unwrap().to_string();
    // Not a wait for readiness: the token lives one second, and two have passed.
    std::thread::sleep(Duration::from_millis(2100));
    let backend = k.backend_token();
    assert_eq!(k.introspect(Some(&backend), &token).json(), json!({"active": false}), "expired");
    let search =
        k.server.get_with("/smart/fhir/ImagingStudy?patient=p1", &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(search.status, 401, "the imaging server refuses an expired token: {}", search.text());
    k.server.wait_for_log("the inactive introspection", |l| l.contains("inactive (expired)"));
}

//! `--sandbox-launch ISS`: the probe gets its own token by a SMART standalone launch (authorization code with
//! PKCE S256) at an authorization server that approves without a person, such as this project's sandbox
//! issuers `{sandbox}/{patientId}/fhir`. The redirect URI is never contacted: the code is read from the
//! `Location` of the authorization endpoint's redirect.

use base64::Engine as _;
use serde_json::Value;

use super::client::Client;
use super::rules::{Check, LAUNCH_AUTHORIZE, LAUNCH_DISCOVERY, LAUNCH_TOKEN};
use crate::http::{parse_query, percent_encode};

/// The public client the probe launches as (public clients need no registration at a sandbox).
const CLIENT_ID: &str = "smart-imaging-probe";
/// Where the code is sent; read from the redirect, never fetched.
const REDIRECT_URI: &str = "http://127.0.0.1/smart-imaging-probe/callback";
const SCOPE: &str = "launch/patient patient/ImagingStudy.rs";

/// What a launch got.
pub struct Launched {
    pub token: String,
    pub patient: Option<String>,
}

/// Launches at `iss` for the imaging FHIR base `aud`.
pub fn standalone(client: &Client, iss: &str, aud: &str) -> (Vec<Check>, Option<Launched>) {
    let mut checks = Vec::new();
    let stopped = |checks: &mut Vec<Check>, rules: &[super::rules::Rule], at: &str| {
        for rule in rules {
            checks.push(rule.skip(format!("the launch stopped at {at}")));
        }
    };
    let (authorize, token) = match endpoints(client, iss) {
        Ok(found) => {
            checks.push(LAUNCH_DISCOVERY.pass(format!("{iss} names its authorize and token endpoints and S256")));
            found
        }
        Err(e) => {
            checks.push(LAUNCH_DISCOVERY.fail(e));
            stopped(&mut checks, &[LAUNCH_AUTHORIZE, LAUNCH_TOKEN], "discovery");
            return (checks, None);
        }
    };
    let pkce = match Pkce::new() {
        Ok(p) => p,
        Err(e) => {
            checks.push(LAUNCH_AUTHORIZE.fail(e));
            stopped(&mut checks, &[LAUNCH_TOKEN], "authorize");
            return (checks, None);
        }
    };
    let code = match code(client, &authorize, aud, &pkce) {
        Ok(code) => {
            checks.push(LAUNCH_AUTHORIZE.pass("redirected at once with a code and the state"));
            code
        }
        Err(e) => {
            checks.push(LAUNCH_AUTHORIZE.fail(e));
            stopped(&mut checks, &[LAUNCH_TOKEN], "authorize");
            return (checks, None);
        }
    };
    match exchange(client, &token, &code, &pkce) {
        Ok(launched) => {
            let patient = launched.patient.as_deref().unwrap_or("none");
            checks.push(LAUNCH_TOKEN.pass(format!("a Bearer access token for patient {patient}")));
            (checks, Some(launched))
        }
        Err(e) => {
            checks.push(LAUNCH_TOKEN.fail(e));
            (checks, None)
        }
    }
}

/// The issuer's authorization and token endpoints, from its discovery.
fn endpoints(client: &Client, iss: &str) -> Result<(String, String), String> {
    let url = format!("{}/.well-known/smart-configuration", iss.trim_end_matches('/'));
    let answer = client.get(&url, None, &[("Accept", "application/json")])?;
    if answer.status != 200 {
        return Err(format!("{url} answered {}", answer.said()));
    }
    let doc = answer.json().ok_or_else(|| format!("{url} answered a body that is not JSON"))?;
    let field = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .filter(|u| super::endpoint::is_absolute(u))
            .map(str::to_string)
            .ok_or_else(|| format!("{url} names no absolute {name}"))
    };
    let methods = doc.get("code_challenge_methods_supported").and_then(Value::as_array);
    if !methods.into_iter().flatten().any(|m| m == "S256") {
        return Err(format!("{url} does not offer PKCE S256"));
    }
    Ok((field("authorization_endpoint")?, field("token_endpoint")?))
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2), and a state.
struct Pkce {
    verifier: String,
    challenge: String,
    state: String,
}

impl Pkce {
    fn new() -> Result<Pkce, String> {
        // 64 hex characters: within the 43 to 128 unreserved characters a verifier has.
        let verifier = crate::random::hex_id(32)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok(Pkce { verifier, challenge, state: crate::random::hex_id(16)? })
    }
}

/// Asks for a code and reads it from the redirect.
fn code(client: &Client, authorize: &str, aud: &str, pkce: &Pkce) -> Result<String, String> {
    let pairs = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("scope", SCOPE),
        ("state", pkce.state.as_str()),
        ("aud", aud),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={}", percent_encode(v))).collect();
    let sep = if authorize.contains('?') { '&' } else { '?' };
    let url = format!("{authorize}{sep}{}", query.join("&"));
    let answer = client.get(&url, None, &[])?;
    if !matches!(answer.status, 302 | 303 | 307) {
        return Err(format!(
            "the authorization endpoint answered {} instead of redirecting (does it ask a person?)",
            answer.said()
        ));
    }
    let location = answer.header("location").unwrap_or_default();
    let query = location
        .strip_prefix(REDIRECT_URI)
        .and_then(|rest| rest.strip_prefix('?'))
        .ok_or_else(|| format!("redirected to {location:?}, not to the redirect_uri"))?;
    let params = parse_query(query.split('#').next().unwrap_or_default())
        .map_err(|_| "the redirect's query is malformed".to_string())?;
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if let Some(error) = param("error") {
        return Err(format!("refused: {error}: {}", param("error_description").unwrap_or_default()));
    }
    if param("state") != Some(pkce.state.as_str()) {
        return Err("the redirect does not carry the state sent".into());
    }
    param("code").filter(|c| !c.is_empty()).map(str::to_string).ok_or_else(|| "the redirect carries no code".into())
}

fn exchange(client: &Client, token: &str, code: &str, pkce: &Pkce) -> Result<Launched, String> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", CLIENT_ID),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let answer = client.post_form(token, &form)?;
    if answer.status != 200 {
        return Err(format!("the token endpoint answered {}", answer.said()));
    }
    let body = answer.json().ok_or("the token endpoint answered a body that is not JSON")?;
    let access = body.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty());
    let kind = body.get("token_type").and_then(Value::as_str).unwrap_or_default();
    let patient = body.get("patient").and_then(Value::as_str).map(str::to_string);
    match access {
        None => Err("no access_token in the answer".into()),
        Some(_) if !kind.eq_ignore_ascii_case("bearer") => Err(format!("token_type {kind:?}, not Bearer")),
        Some(_) if patient.is_none() => Err("no patient in the answer, though launch/patient was asked".into()),
        Some(t) => Ok(Launched { token: t.to_string(), patient }),
    }
}

//! The sandbox's OAuth 2.0: the authorization endpoint (authorization code with PKCE S256 only), the token
//! endpoint (`authorization_code` for any public client, `client_credentials` with a `private_key_jwt`
//! assertion for the clients in `sandbox.clients`), and RFC 7662 introspection for backend clients.
//!
//! Invariants: an authorization request whose `client_id` or `redirect_uri` is missing or malformed is
//! answered with a page, never a redirect; every other refusal redirects to the exact `redirect_uri` with
//! `error` and the exact `state`; PKCE S256 is required (plain and a missing challenge are refused); a code
//! is spent by its first exchange, whatever the outcome, and a second exchange revokes the token of the
//! first; codes expire after `code_lifetime`; granted scopes are a subset of those asked for; a token is
//! active only until its `exp`; introspection answers only a backend client's bearer token; no code or
//! token is logged, only its short digest.

use serde_json::json;

use super::assertion;
use super::store::{Code, Kind, Launch, Lookup, Taken, Token, short};
use super::{Issuer, Sandbox, no_store, pages};
use crate::auth::scope::{Context, Need, allows};
use crate::http::{Request, Response};
use crate::http::{parse_query, percent_encode};
use crate::time::now_secs;

/// The shortest life of a backend client's token, whatever `token_lifetime` says: backend clients keep
/// their token for many requests, and a test's one-second app tokens must not take theirs along.
pub const BACKEND_MIN_LIFETIME: u64 = 300;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Scopes the sandbox never grants to an app: it issues no id_token and no refresh token. (`launch` is
/// granted only with a valid `launch` parameter.)
const NOT_GRANTED: [&str; 5] = ["openid", "fhirUser", "profile", "offline_access", "online_access"];

/// Seconds a launch waits for its app's authorization request.
pub const LAUNCH_LIFETIME: u64 = 300;

/// A request's parameters, each named at most once (RFC 6749 §3.1).
#[derive(Debug)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses a query or form body; `Err` names a malformed escape or a parameter given twice.
    pub fn parse(text: &str) -> Result<Params, String> {
        let pairs = parse_query(text).map_err(|_| "a malformed percent-escape".to_string())?;
        for (n, (name, _)) in pairs.iter().enumerate() {
            if pairs[..n].iter().any(|(other, _)| other == name) {
                return Err(format!("the parameter {name:?} is given more than once"));
            }
        }
        Ok(Params(pairs))
    }

    /// A parameter's value; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// base64url(SHA-256(verifier)), the S256 code challenge of RFC 7636 §4.2.
pub fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An S256 challenge is the base64url of 32 bytes: 43 characters.
fn is_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 6749 §3.3 scope-token characters.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// The scopes granted of those asked for, in the order asked, without repeats: for an app (`backend` false)
/// everything but `system/` scopes and those in `NOT_GRANTED`; for a backend client only `system/` scopes.
/// Never a scope that was not asked for.
pub fn grant_scopes(asked: &str, backend: bool) -> Vec<&str> {
    let mut granted: Vec<&str> = Vec::new();
    for s in asked.split(' ').filter(|s| !s.is_empty()) {
        let system = s.starts_with("system/");
        let keep = if backend { system } else { !system && !NOT_GRANTED.contains(&s) };
        if keep && !granted.contains(&s) {
            granted.push(s);
        }
    }
    granted
}

/// A `redirect_uri` the sandbox redirects to: an absolute http(s) URL with a host and no fragment.
fn is_redirect_uri(uri: &str) -> bool {
    let rest = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with(['/', '?']))
        && uri.len() <= 2048
        && !uri.contains('#')
        && !uri.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

/// `uri` with `pairs` added to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    for (n, (name, value)) in pairs.iter().enumerate() {
        let sep = if n == 0 && !uri.contains('?') { '?' } else { '&' };
        out.push(sep);
        out.push_str(&format!("{name}={}", percent_encode(value)));
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// The authorization endpoint.

/// `GET` (or `POST`) `{issuer}/auth/authorize`.
pub fn authorize(sb: &Sandbox, issuer: &Issuer, text: &str) -> Response {
    let params = match Params::parse(text) {
        Ok(p) => p,
        Err(why) => return refusal_page(&why),
    };
    let Some(client_id) = params.get("client_id").filter(|c| c.len() <= 256 && !c.contains(char::is_control)) else {
        return refusal_page("client_id is required");
    };
    let Some(redirect_uri) = params.get("redirect_uri").filter(|u| is_redirect_uri(u)) else {
        return refusal_page("redirect_uri is required: an absolute http(s) URL without a fragment");
    };
    let state = params.get("state");
    let refuse = |error: &str, why: &str| {
        log::info!(
            target: "sandbox",
            "authorize at {}: refused for client {client_id:?}: {error}: {why}",
            issuer.fhir_base(&sb.base)
        );
        let mut pairs = vec![("error", error), ("error_description", why)];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        super::redirect(&with_query(redirect_uri, &pairs))
    };
    match params.get("response_type") {
        Some("code") => {}
        None => return refuse("invalid_request", "response_type=code is required"),
        Some(_) => return refuse("unsupported_response_type", "only response_type=code is supported"),
    }
    if state.is_none_or(|s| s.len() > 1024) {
        return refuse("invalid_request", "state is required (at most 1024 characters)");
    }
    match params.get("code_challenge_method") {
        Some("S256") => {}
        None => {
            return refuse("invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256");
        }
        Some(other) => {
            return refuse("invalid_request", &format!("code_challenge_method {other:?} is not supported: use S256"));
        }
    }
    let Some(challenge) = params.get("code_challenge").filter(|c| is_challenge(c)) else {
        return refuse(
            "invalid_request",
            "code_challenge is required: base64url(SHA-256(code_verifier)), 43 characters",
        );
    };
    let asked = params.get("scope").unwrap_or_default();
    if asked.is_empty() || !asked.split(' ').filter(|s| !s.is_empty()).all(is_scope_token) {
        return refuse("invalid_scope", "scope is required: space-separated scopes such as launch/patient");
    }
    let audiences = sb.audiences(issuer);
    match params.get("aud") {
        Some(aud) if audiences.iter().any(|a| a == aud.trim_end_matches('/')) => {}
        Some(aud) => {
            let why = format!("aud {aud:?} is neither this FHIR server nor an imaging server that uses it");
            return refuse("invalid_request", &why);
        }
        None => return refuse("invalid_request", "aud is required: the FHIR base URL the app will call"),
    }
    // EHR launch: the launch value the sandbox's page gave the app, good once, for the app it was made for.
    let launched = match params.get("launch") {
        None => None,
        Some(value) => match sb.store().take_launch(value, now_secs()) {
            Some(l) if l.client_id == client_id => Some(l),
            Some(l) => {
                let why = format!("this launch was made for client {:?}", l.client_id);
                return refuse("invalid_request", &why);
            }
            None => return refuse("invalid_request", "launch is unknown, expired or used already"),
        },
    };
    let mut granted: Vec<&str> = grant_scopes(asked, false);
    if launched.is_none() {
        granted.retain(|s| *s != "launch");
    }
    let granted = granted.join(" ");
    if granted.is_empty() {
        return refuse("invalid_scope", "none of the scopes asked for can be granted to an app");
    }
    if params.get("deny").is_some() {
        return refuse("access_denied", "the person at the sandbox's page denied access");
    }
    let wants_patient = granted.split(' ').any(|s| s == "launch/patient" || s == "launch");
    let chosen = match (&launched, params.get("patient")) {
        (Some(l), Some(other)) if other != l.patient => {
            return refuse("invalid_request", "patient is not the launch's patient");
        }
        (Some(l), _) => Some(l.patient.as_str()),
        (None, chosen) => chosen,
    };
    let patient = match issuer {
        Issuer::Patient(p) => match chosen {
            Some(other) if other != p.id => {
                return refuse("invalid_request", &format!("this issuer approves patient {} only", p.id));
            }
            _ => Some(p.id.clone()),
        },
        Issuer::Picker => match chosen {
            None if wants_patient => {
                log::info!(
                    target: "sandbox",
                    "authorize at {}: patient picker shown to client {client_id:?} for scopes {granted:?}",
                    issuer.fhir_base(&sb.base)
                );
                return super::html(200, pages::picker(sb, issuer, client_id, &granted, params.pairs()));
            }
            None => None,
            Some(id) => match sb.patient(id) {
                Some(p) => Some(p.id.clone()),
                None => return refuse("invalid_request", &format!("the sandbox has no patient {id:?}")),
            },
        },
    };
    let patient = patient.filter(|_| wants_patient);
    let Ok(code) = crate::random::hex_id(32) else {
        return refuse("server_error", "the random generator failed");
    };
    let now = now_secs();
    let grant = Code {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        challenge: challenge.to_string(),
        scope: granted.clone(),
        patient: patient.clone(),
        expires: now + sb.settings.code_lifetime,
        launched: launched.is_some(),
    };
    sb.store().add_code(&code, grant, now);
    log::info!(
        target: "sandbox",
        "authorize at {}: approved {} for client {client_id:?}{} with scopes {granted:?}: code {} (valid {} s) sent to {redirect_uri}",
        issuer.fhir_base(&sb.base),
        patient.as_deref().map_or_else(|| "no patient (launch/patient not asked)".to_string(), |p| format!("patient {p}")),
        params.get("launch").map_or_else(String::new, |l| format!(" (EHR launch {})", short(l))),
        short(&code),
        sb.settings.code_lifetime,
    );
    super::redirect(&with_query(redirect_uri, &[("code", &code), ("state", state.unwrap_or_default())]))
}

/// `POST {sandbox}/launch` (`app`, `patient`): the "Launch app" button of a patient's page. Makes a launch
/// value for that app and patient and sends the browser to the app's `launch_url` with `iss` and `launch`.
pub fn launch(sb: &Sandbox, req: &Request, body: &[u8]) -> Response {
    let params = match form(req, body) {
        Ok(p) => p,
        Err(why) => return super::text(400, &why),
    };
    let app = params.get("app").and_then(|n| n.parse::<usize>().ok()).and_then(|n| sb.settings.apps.get(n));
    let (Some(app), Some(patient)) = (app, params.get("patient").and_then(|id| sb.patient(id))) else {
        return super::text(400, "app (a configured app's number) and patient (a patient's id) are required");
    };
    let Ok(value) = crate::random::hex_id(32) else {
        return super::text(500, "the random generator failed");
    };
    let now = now_secs();
    let info = Launch { client_id: app.client_id.clone(), patient: patient.id.clone(), expires: now + LAUNCH_LIFETIME };
    sb.store().add_launch(&value, info, now);
    let iss = Issuer::Picker.fhir_base(&sb.base);
    log::info!(
        target: "sandbox",
        "EHR launch of {:?} (client {:?}) for patient {}: launch {} (good once, for {LAUNCH_LIFETIME} s), iss {iss}",
        app.name,
        app.client_id,
        patient.id,
        short(&value),
    );
    let location = with_query(&app.launch_url, &[("iss", &iss), ("launch", &value)]);
    super::redirect(&location).with_status(303)
}

fn refusal_page(why: &str) -> Response {
    log::info!(target: "sandbox", "authorize: refused with a page (no redirect): {why}");
    super::html(400, pages::error(why))
}

// ---------------------------------------------------------------------------------------------------
// The token endpoint.

/// An OAuth error answer (RFC 6749 §5.2).
fn oauth_error(status: u16, error: &str, why: &str) -> Response {
    no_store(super::json(status, &json!({"error": error, "error_description": why})))
}

/// The form of a POST to the token or introspection endpoint.
fn form(req: &Request, body: &[u8]) -> Result<Params, String> {
    let media = req.header("content-type").unwrap_or_default();
    let media = media.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err("send the parameters as application/x-www-form-urlencoded".into());
    }
    let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8".to_string())?;
    Params::parse(text)
}

/// `POST {sandbox}/auth/token`.
pub fn token(sb: &Sandbox, req: &Request, body: &[u8]) -> Response {
    let params = match form(req, body) {
        Ok(p) => p,
        Err(why) => return oauth_error(400, "invalid_request", &why),
    };
    if req.header("authorization").is_some() {
        let why = "the sandbox knows no client secrets: a public app sends client_id, a backend client a \
                   private_key_jwt client_assertion";
        return oauth_error(401, "invalid_client", why);
    }
    let resp = match params.get("grant_type") {
        Some("authorization_code") => code_grant(sb, &params),
        Some("client_credentials") => backend_grant(sb, &params),
        None => Err(("invalid_request", "grant_type is required".to_string())),
        Some(other) => Err(("unsupported_grant_type", format!("grant_type {other:?} is not supported"))),
    };
    resp.unwrap_or_else(|(error, why)| {
        log::info!(target: "sandbox", "token: refused: {error}: {why}");
        oauth_error(if error == "invalid_client" { 401 } else { 400 }, error, &why)
    })
}

type Refused = (&'static str, String);

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, Refused> {
    params.get(name).ok_or_else(|| ("invalid_request", format!("{name} is required")))
}

fn code_grant(sb: &Sandbox, params: &Params) -> Result<Response, Refused> {
    let code = required(params, "code")?;
    let redirect_uri = required(params, "redirect_uri")?;
    let client_id = required(params, "client_id")?;
    let verifier = required(params, "code_verifier")?;
    if params.get("client_assertion").is_some() {
        return Err(("invalid_request", "the authorization-code flow here is for public clients".into()));
    }
    let now = now_secs();
    let mut store = sb.store();
    let grant = match store.take_code(code, now, sb.settings.token_lifetime) {
        Taken::Fresh(grant) => grant,
        Taken::Spent(token) => {
            let revoked = token.and_then(|t| store.revoke(&t));
            let what = revoked.map_or_else(String::new, |t| format!("; its token {t} is revoked"));
            log::info!(target: "sandbox", "token: code {} came back a second time{what}", short(code));
            return Err((
                "invalid_grant",
                "this code was exchanged already; the token issued for it is revoked".into(),
            ));
        }
        Taken::Unknown => return Err(("invalid_grant", "unknown code".into())),
    };
    if now >= grant.expires {
        return Err((
            "invalid_grant",
            format!("the code expired ({} s after it was issued)", sb.settings.code_lifetime),
        ));
    }
    if client_id != grant.client_id {
        return Err(("invalid_grant", "the code was issued to another client_id".into()));
    }
    if redirect_uri != grant.redirect_uri {
        return Err(("invalid_grant", "redirect_uri is not exactly the one of the authorization request".into()));
    }
    if !is_verifier(verifier) {
        return Err(("invalid_grant", "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~".into()));
    }
    if s256(verifier) != grant.challenge {
        return Err(("invalid_grant", "code_verifier does not match the code_challenge (S256)".into()));
    }
    let token = crate::random::hex_id(32).map_err(|e| ("server_error", e))?;
    let info = Token {
        kind: Kind::App,
        client_id: grant.client_id.clone(),
        scope: grant.scope.clone(),
        patient: grant.patient.clone(),
        issued: now,
        expires: now + sb.settings.token_lifetime,
        short: short(&token),
    };
    store.add_token(&token, info, now);
    store.spent_for(code, &token);
    drop(store);
    log::info!(
        target: "sandbox",
        "token: code {}{} exchanged by client {client_id:?}: access token {} for {} with scopes {:?}, expires in {} s",
        short(code),
        if grant.launched { " (EHR launch)" } else { "" },
        short(&token),
        grant.patient.as_deref().map_or_else(|| "no patient".to_string(), |p| format!("patient {p}")),
        grant.scope,
        sb.settings.token_lifetime,
    );
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": sb.settings.token_lifetime,
        "scope": grant.scope,
    });
    if let Some(p) = grant.patient {
        // The app shows who the patient is: the sandbox opens it in a window of its own, without the EHR's banner.
        body["patient"] = json!(p);
        body["need_patient_banner"] = json!(true);
    }
    Ok(no_store(super::json(200, &body)))
}

fn backend_grant(sb: &Sandbox, params: &Params) -> Result<Response, Refused> {
    if params.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(("invalid_client", format!("client_assertion_type must be {JWT_BEARER} (private_key_jwt)")));
    }
    let jws = params.get("client_assertion").ok_or(("invalid_client", "client_assertion is required".to_string()))?;
    let now = now_secs();
    let verified =
        assertion::verify(&sb.settings.clients, jws, &sb.token_url(), now).map_err(|why| ("invalid_client", why))?;
    if params.get("client_id").is_some_and(|id| id != verified.client_id) {
        return Err(("invalid_client", "client_id is not the assertion's iss".into()));
    }
    let mut store = sb.store();
    if !store.use_jti(&verified.client_id, &verified.jti, verified.exp, now) {
        return Err(("invalid_client", format!("jti {:?} was used before: an assertion is good once", verified.jti)));
    }
    let granted = grant_scopes(params.get("scope").unwrap_or_default(), true).join(" ");
    if granted.is_empty() {
        return Err(("invalid_scope", "ask for system/ scopes, such as system/Patient.rs".into()));
    }
    let token = crate::random::hex_id(32).map_err(|e| ("server_error", e))?;
    let lifetime = sb.settings.token_lifetime.max(BACKEND_MIN_LIFETIME);
    let info = Token {
        kind: Kind::Backend,
        client_id: verified.client_id.clone(),
        scope: granted.clone(),
        patient: None,
        issued: now,
        expires: now + lifetime,
        short: short(&token),
    };
    store.add_token(&token, info, now);
    drop(store);
    log::info!(
        target: "sandbox",
        "token: client_credentials for backend client {:?} (private_key_jwt verified): access token {} with scopes {granted:?}, expires in {lifetime} s",
        verified.client_id,
        short(&token),
    );
    let body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": granted,
    });
    Ok(no_store(super::json(200, &body)))
}

// ---------------------------------------------------------------------------------------------------
// Introspection.

/// The active backend token in a request's `Authorization: Bearer`, as its client id and short name.
pub fn backend_caller(sb: &Sandbox, req: &Request) -> Option<(String, String)> {
    let token = bearer(req)?;
    match sb.store().token(token, now_secs()) {
        Lookup::Active(t) if t.kind == Kind::Backend => Some((t.client_id.clone(), t.short.clone())),
        _ => None,
    }
}

/// The bearer token of a request, if it has exactly one well-formed one.
pub fn bearer(req: &Request) -> Option<&str> {
    let mut values = req.headers.iter().filter(|(n, _)| n == "authorization").map(|(_, v)| v.trim());
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' ')).then_some(token)
}

/// `POST {sandbox}/auth/introspect` (RFC 7662).
pub fn introspect(sb: &Sandbox, req: &Request, body: &[u8]) -> Response {
    let Some((caller, _)) = backend_caller(sb, req) else {
        log::info!(target: "sandbox", "introspection: refused: no active backend bearer token");
        let why = "introspection needs the bearer token of a backend client (client_credentials)";
        return oauth_error(401, "invalid_token", why)
            .with_header("WWW-Authenticate", "Bearer realm=\"sandbox\", error=\"invalid_token\"");
    };
    let params = match form(req, body) {
        Ok(p) => p,
        Err(why) => return oauth_error(400, "invalid_request", &why),
    };
    let Some(token) = params.get("token") else {
        return oauth_error(400, "invalid_request", "token is required");
    };
    let now = now_secs();
    let answer = match sb.store().token(token, now) {
        Lookup::Active(t) => {
            log::info!(
                target: "sandbox",
                "introspection by {caller:?}: token {} active: client {:?}, {}, scopes {:?}, {} s left",
                t.short,
                t.client_id,
                t.patient.as_deref().map_or_else(|| "no patient".to_string(), |p| format!("patient {p}")),
                t.scope,
                t.expires.saturating_sub(now),
            );
            let mut answer = json!({
                "active": true,
                "scope": t.scope,
                "client_id": t.client_id,
                "token_type": "Bearer",
                "exp": t.expires,
                "iat": t.issued,
                "iss": sb.base,
            });
            if let Some(p) = &t.patient {
                answer["patient"] = json!(p);
            }
            answer
        }
        other => {
            let why = if matches!(other, Lookup::Expired) { "expired" } else { "unknown or revoked" };
            log::info!(target: "sandbox", "introspection by {caller:?}: token {} inactive ({why})", short(token));
            json!({"active": false})
        }
    };
    no_store(super::json(200, &answer))
}

/// Does an active token allow reading `Patient/{id}`? A backend token with a `system/` Patient read scope,
/// or an app's token with a `patient/` one for that very patient, or a `user/` one.
pub fn may_read_patient(sb: &Sandbox, req: &Request, id: &str) -> Result<(String, String), (u16, &'static str)> {
    let token = bearer(req).ok_or((401, "a bearer token is required"))?;
    let store = sb.store();
    let Lookup::Active(t) = store.token(token, now_secs()) else {
        return Err((401, "the bearer token is not active"));
    };
    let reads = |context| allows(&t.scope, context, "Patient", Need::Read);
    let allowed = match t.kind {
        Kind::Backend => reads(Context::System),
        Kind::App => reads(Context::User) || (reads(Context::Patient) && t.patient.as_deref() == Some(id)),
    };
    if allowed {
        Ok((t.client_id.clone(), t.short.clone()))
    } else {
        Err((403, "the token's scopes do not allow reading this Patient"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_rfc_7636s_example() {
        // RFC 7636 Appendix B.
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
        assert!(is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="));
    }

    #[test]
    fn scopes_are_never_broadened() {
        let asked = "launch/patient openid fhirUser patient/ImagingStudy.rs system/Patient.rs patient/ImagingStudy.rs";
        assert_eq!(grant_scopes(asked, false), ["launch/patient", "patient/ImagingStudy.rs"]);
        assert_eq!(grant_scopes(asked, true), ["system/Patient.rs"]);
        assert!(grant_scopes("", false).is_empty());
        assert!(grant_scopes("patient/ImagingStudy.rs", true).is_empty(), "no system scope asked, none granted");
    }

    #[test]
    fn parameters_are_named_once() {
        assert!(Params::parse("a=1&b=2").is_ok());
        assert!(Params::parse("a=1&a=2").unwrap_err().contains("\"a\" is given more than once"));
        assert!(Params::parse("a=%zz").is_err());
        assert_eq!(Params::parse("state=a+b%26c").unwrap().get("state"), Some("a b&c"));
        assert_eq!(Params::parse("scope=").unwrap().get("scope"), None, "empty is absent");
    }

    #[test]
    fn redirect_uris() {
        assert!(is_redirect_uri("http://localhost:9999/callback"));
        assert!(is_redirect_uri("https://app.example/cb?x=1"));
        for bad in ["javascript:alert(1)", "http://", "http:///x", "/cb", "http://a/cb#f", "http://a/c b", "urn:x"] {
            assert!(!is_redirect_uri(bad), "{bad}");
        }
        assert_eq!(
            with_query("http://a/cb", &[("code", "c"), ("state", "a b&c")]),
            "http://a/cb?code=c&state=a%20b%26c"
        );
        assert_eq!(with_query("http://a/cb?x=1", &[("code", "c")]), "http://a/cb?x=1&code=c");
    }
}

//! Client assertions (`private_key_jwt`, RFC 7523 and SMART Backend Services): a compact JWS verified
//! against the public JWKs of the client in `sandbox.clients`.
//!
//! Invariants: only ES384 and RS384 are accepted (never `none`, never an HMAC); the signature is checked
//! before any claim is believed; `iss` and `sub` are both the client's id; `aud` is the token endpoint;
//! `exp` is in the future and at most five minutes (and a minute of clock skew) ahead; `jti` is present
//! (its replay is the caller's check, against the store).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde_json::Value;

use crate::config::SandboxClient;

/// The most seconds ahead an assertion's `exp` may be: five minutes, and a minute of clock skew.
pub const MAX_AHEAD: u64 = 300 + 60;

/// What a verified assertion says.
#[derive(Debug)]
pub struct Verified {
    pub client_id: String,
    pub jti: String,
    pub exp: u64,
}

fn part(text: &str, what: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("the assertion's {what} is not base64url"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| format!("the assertion's {what} is not JSON"))?;
    if value.is_object() { Ok(value) } else { Err(format!("the assertion's {what} is not a JSON object")) }
}

fn b64(key: &Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(key.get(name)?.as_str()?.trim_end_matches('=')).ok()
}

/// Does `sig` over `input` verify with this public JWK for `alg`?
fn verifies(key: &Value, alg: &str, input: &[u8], sig: &[u8]) -> bool {
    match (alg, key.get("kty").and_then(Value::as_str)) {
        ("ES384", Some("EC")) => {
            let (Some(x), Some(y)) = (b64(key, "x"), b64(key, "y")) else { return false };
            let point = [&[4u8][..], &x, &y].concat();
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, &point).verify(input, sig).is_ok()
        }
        ("RS384", Some("RSA")) => {
            let (Some(n), Some(e)) = (b64(key, "n"), b64(key, "e")) else { return false };
            signature::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA384, input, sig)
                .is_ok()
        }
        _ => false,
    }
}

fn number(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Verifies `jws` as a client assertion for the token endpoint `audience` at `now`.
pub fn verify(clients: &[SandboxClient], jws: &str, audience: &str, now: u64) -> Result<Verified, String> {
    let pieces: Vec<&str> = jws.split('.').collect();
    let [h, c, s] = pieces.as_slice() else {
        return Err("the assertion is not a compact JWS (three parts)".into());
    };
    let header = part(h, "header")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
    if alg != "ES384" && alg != "RS384" {
        return Err(format!("alg {alg:?} is not accepted: sign with ES384 or RS384"));
    }
    if let Some(typ) = header.get("typ") {
        if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(format!("typ {typ} is not JWT"));
        }
    }
    let claims = part(c, "claims")?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    if iss.is_empty() || iss != sub {
        return Err("iss and sub must both be the client id".into());
    }
    let client = clients
        .iter()
        .find(|k| k.id == iss)
        .ok_or_else(|| format!("client {iss:?} is not registered (sandbox.clients)"))?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| "the assertion's signature is not base64url".to_string())?;
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<&Value> = client
        .keys
        .iter()
        .filter(|k| match (kid, k.get("kid").and_then(Value::as_str)) {
            (Some(wanted), Some(has)) => wanted == has,
            _ => true,
        })
        .collect();
    let input = format!("{h}.{c}");
    if !candidates.iter().any(|k| verifies(k, alg, input.as_bytes(), &sig)) {
        return Err(format!("the signature does not verify with a registered {alg} key of {iss:?}"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("aud must be the token endpoint {audience}"));
    }
    let exp = number(claims.get("exp")).ok_or("exp is required")?;
    if exp <= now {
        return Err("the assertion has expired (exp)".into());
    }
    if exp > now + MAX_AHEAD {
        return Err("exp is more than five minutes ahead".into());
    }
    if number(claims.get("nbf")).is_some_and(|nbf| nbf > now + 60) {
        return Err("the assertion is not valid yet (nbf)".into());
    }
    let jti = claims.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty() && j.len() <= 256);
    let jti = jti.ok_or("jti is required (1 to 256 characters)")?;
    Ok(Verified { client_id: iss.to_string(), jti: jti.to_string(), exp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwk::{SigningKey, generate_es384};
    use serde_json::json;

    const AUD: &str = "http://sandbox/auth/token";

    fn client(public: &Value) -> Vec<SandboxClient> {
        vec![SandboxClient { id: "backend".into(), keys: vec![public.clone()] }]
    }

    fn claims(now: u64) -> Value {
        json!({"iss": "backend", "sub": "backend", "aud": AUD, "exp": now + 300, "jti": "j1"})
    }

    #[test]
    fn a_good_assertion_and_each_way_to_spoil_it() {
        let (private, public) = generate_es384().unwrap();
        let key = SigningKey::from_jwk(&private.to_string()).unwrap();
        let now = 1_000_000;
        let clients = client(&public);
        let sign = |c: &Value| key.sign_jwt(c).unwrap();
        let ok = verify(&clients, &sign(&claims(now)), AUD, now).unwrap();
        assert_eq!((ok.client_id.as_str(), ok.jti.as_str()), ("backend", "j1"));

        let edit = |f: &dyn Fn(&mut Value)| {
            let mut c = claims(now);
            f(&mut c);
            verify(&clients, &sign(&c), AUD, now).unwrap_err()
        };
        assert!(edit(&|c| c["sub"] = json!("other")).contains("iss and sub"));
        assert!(edit(&|c| c["aud"] = json!("http://elsewhere/token")).contains("aud"));
        assert!(edit(&|c| c["exp"] = json!(now - 1)).contains("expired"));
        assert!(edit(&|c| c["exp"] = json!(now + 3600)).contains("five minutes"));
        assert!(
            edit(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            })
            .contains("jti")
        );
        assert!(edit(&|c| c["iss"] = json!("nobody")).contains("iss and sub"));
        let mut stranger = claims(now);
        stranger["iss"] = json!("nobody");
        stranger["sub"] = json!("nobody");
        assert!(verify(&clients, &sign(&stranger), AUD, now).unwrap_err().contains("not registered"));
        assert!(verify(&clients, &sign(&claims(now)), "http://sandbox/other", now).unwrap_err().contains("aud"));

        let (other_private, _) = generate_es384().unwrap();
        let other = SigningKey::from_jwk(&other_private.to_string()).unwrap();
        let forged = other.sign_jwt(&claims(now)).unwrap();
        assert!(verify(&clients, &forged, AUD, now).unwrap_err().contains("signature"));

        let jws = sign(&claims(now));
        let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
        parts[0] = URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string());
        assert!(verify(&clients, &parts.join("."), AUD, now).unwrap_err().contains("alg"));
        parts[0] = URL_SAFE_NO_PAD.encode(json!({"alg": "HS384"}).to_string());
        assert!(verify(&clients, &parts.join("."), AUD, now).unwrap_err().contains("alg"));
        assert!(verify(&clients, "a.b", AUD, now).is_err());
    }
}

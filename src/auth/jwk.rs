//! The server's own identity at the EHR (SMART Backend Services, `private_key_jwt`): loading a private JWK,
//! signing client assertions with ES384 or RS384, and `smart-imaging keygen`.
//!
//! Invariants: private key material never leaves this module except into the key file `keygen` writes; a
//! loaded key has been checked by ring (its public half matches its private half).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

/// A key that signs client assertions.
pub struct SigningKey {
    kind: KeyKind,
    kid: String,
    rng: SystemRandom,
}

enum KeyKind {
    Es384(EcdsaKeyPair),
    Rs384(RsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey {{ alg: {}, kid: {} }}", self.alg(), self.kid)
    }
}

fn field<'a>(jwk: &'a Value, name: &str) -> Result<Vec<u8>, String> {
    let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("the JWK has no \"{name}\""))?;
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| format!("the JWK's \"{name}\" is not base64url"))
}

impl SigningKey {
    /// Reads one private JWK: EC P-384 (ES384) or RSA (RS384).
    pub fn from_jwk(text: &str) -> Result<SigningKey, String> {
        let jwk: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON JWK: {e}"))?;
        let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
        let rng = SystemRandom::new();
        let kind = match kty {
            "EC" => {
                if jwk.get("crv").and_then(Value::as_str) != Some("P-384") {
                    return Err("an EC key must be on curve P-384 (ES384)".into());
                }
                let (x, y, d) = (field(&jwk, "x")?, field(&jwk, "y")?, field(&jwk, "d")?);
                let mut public = vec![4u8];
                public.extend_from_slice(&x);
                public.extend_from_slice(&y);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    &d,
                    &public,
                    &rng,
                )
                .map_err(|e| format!("the EC key was rejected: {e}"))?;
                KeyKind::Es384(pair)
            }
            "RSA" => {
                let names = ["n", "e", "d", "p", "q", "dp", "dq", "qi"];
                let v: Vec<Vec<u8>> = names.iter().map(|n| field(&jwk, n)).collect::<Result<_, _>>()?;
                let components = ring::rsa::KeyPairComponents {
                    public_key: ring::rsa::PublicKeyComponents { n: &v[0], e: &v[1] },
                    d: &v[2],
                    p: &v[3],
                    q: &v[4],
                    dP: &v[5],
                    dQ: &v[6],
                    qInv: &v[7],
                };
                let pair =
                    RsaKeyPair::from_components(&components).map_err(|e| format!("the RSA key was rejected: {e}"))?;
                KeyKind::Rs384(pair)
            }
            other => return Err(format!("unsupported JWK kty {other:?}; use EC P-384 or RSA")),
        };
        let public = public_jwk_of(&jwk)?;
        let kid = match jwk.get("kid").and_then(Value::as_str) {
            Some(kid) => kid.to_string(),
            None => thumbprint(&public),
        };
        Ok(SigningKey { kind, kid, rng })
    }

    pub fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Es384(_) => "ES384",
            KeyKind::Rs384(_) => "RS384",
        }
    }

    /// A SMART client assertion (asymmetric client authentication) of `client_id` for the token endpoint
    /// `audience`: `iss` = `sub` = the client, `exp` five minutes from `now`, a fresh `jti`.
    pub fn client_assertion(&self, client_id: &str, audience: &str, now: u64) -> Result<String, String> {
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": crate::random::hex_id(16)?,
        });
        self.sign_jwt(&claims)
    }

    /// A compact JWS over `claims` (RFC 7515), with `alg`, `kid` and `typ: JWT` in the header.
    pub fn sign_jwt(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = match &self.kind {
            // ring's FIXED encoding is r || s, exactly the JWS form for ES384 (RFC 7518 §3.4).
            KeyKind::Es384(pair) => {
                pair.sign(&self.rng, input.as_bytes()).map_err(|_| "ES384 signing failed")?.as_ref().to_vec()
            }
            KeyKind::Rs384(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA384, &self.rng, input.as_bytes(), &mut sig)
                    .map_err(|_| "RS384 signing failed")?;
                sig
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The public members of a private JWK.
fn public_jwk_of(jwk: &Value) -> Result<Value, String> {
    let keep: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["kty", "crv", "x", "y"],
        Some("RSA") => &["kty", "n", "e"],
        _ => return Err("unsupported JWK".into()),
    };
    let mut out = serde_json::Map::new();
    for k in keep {
        out.insert((*k).to_string(), jwk.get(*k).cloned().ok_or_else(|| format!("the JWK has no \"{k}\""))?);
    }
    Ok(Value::Object(out))
}

/// The RFC 7638 thumbprint: SHA-256 over the required members in lexical order, without spaces.
fn thumbprint(public: &Value) -> String {
    // serde_json's Map keeps keys sorted, and `to_string` writes no spaces: the RFC 7638 form.
    let canonical = public.to_string();
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()))
}

/// Makes a new ES384 key pair as (private JWK, public JWK), both with the same `kid`.
pub fn generate_es384() -> Result<(Value, Value), String> {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| "key generation failed")?;
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|_| "key generation failed")?;
    let d = private_scalar(pkcs8.as_ref()).ok_or("cannot read the generated key")?;
    let public_point = pair.public_key().as_ref();
    // An uncompressed P-384 point: 0x04 || x (48 bytes) || y (48 bytes).
    let (x, y) = public_point.get(1..).ok_or("bad public key")?.split_at(48);
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let mut public = json!({"kty": "EC", "crv": "P-384", "x": b64(x), "y": b64(y)});
    let kid = thumbprint(&public);
    public["kid"] = json!(kid);
    public["alg"] = json!("ES384");
    public["use"] = json!("sig");
    let mut private = public.clone();
    private["d"] = json!(b64(&d));
    // Prove the pair before handing it out: it must load and its signature must verify.
    let key = SigningKey::from_jwk(&private.to_string())?;
    let jws = key.sign_jwt(&json!({"check": true}))?;
    verify_es384(&public, &jws)?;
    Ok((private, public))
}

/// The private scalar of a P-384 PKCS#8 document (RFC 5915 ECPrivateKey inside RFC 5208): the OCTET STRING
/// of 48 bytes that follows `INTEGER 1`.
fn private_scalar(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let marker = [0x02, 0x01, 0x01, 0x04, 0x30];
    let pos = pkcs8.windows(marker.len()).position(|w| w == marker)?;
    pkcs8.get(pos + marker.len()..pos + marker.len() + 48).map(<[u8]>::to_vec)
}

/// Verifies a compact ES384 JWS against a public JWK (used by `keygen`'s self-check and by the tests).
pub fn verify_es384(public: &Value, jws: &str) -> Result<Value, String> {
    let (x, y) = (field(public, "x")?, field(public, "y")?);
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let mut parts = jws.split('.');
    let (h, c, s) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| "bad signature encoding")?;
    signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, &point)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "signature does not verify")?;
    let claims = URL_SAFE_NO_PAD.decode(c).map_err(|_| "bad claims encoding")?;
    serde_json::from_slice(&claims).map_err(|e| e.to_string())
}

/// `smart-imaging keygen`: writes a new ES384 key pair, `PREFIX.private.jwk.json` (mode 0600) and
/// `PREFIX.public.jwk.json`, never over an existing file. The folder of PREFIX is made (mode 0700) when it
/// is missing.
pub fn keygen(prefix: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let private_path = format!("{prefix}.private.jwk.json");
    let public_path = format!("{prefix}.public.jwk.json");
    for path in [&private_path, &public_path] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(format!("{path} exists; keygen never overwrites a key (choose another --out)"));
        }
    }
    if let Some(folder) = std::path::Path::new(&private_path).parent().filter(|p| !p.as_os_str().is_empty()) {
        if folder.exists() && !folder.is_dir() {
            return Err(format!("cannot make the folder {}: a file of that name is in the way", folder.display()));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(|e| format!("cannot make the folder {}: {e}", folder.display()))?;
    }
    let (private, public) = generate_es384()?;
    let write = |path: &str, value: &serde_json::Value, mode: u32| -> Result<(), String> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!("{path} exists; keygen never overwrites a key (choose another --out)")
            } else {
                format!("cannot write {path}: {e}")
            }
        })?;
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        file.write_all(format!("{text}\n").as_bytes()).map_err(|e| format!("cannot write {path}: {e}"))
    };
    write(&private_path, &private, 0o600)?;
    write(&public_path, &public, 0o644)?;
    println!("wrote {private_path} (keep it secret; point authorization.client.jwk at it)");
    println!("wrote {public_path} (register it at the EHR; kid {})", public["kid"].as_str().unwrap_or_default());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify() {
        let (private, public) = generate_es384().unwrap();
        assert!(public.get("d").is_none(), "the public JWK must not hold the private scalar");
        let key = SigningKey::from_jwk(&private.to_string()).unwrap();
        assert_eq!(key.alg(), "ES384");
        let jws = key.sign_jwt(&json!({"iss": "me"})).unwrap();
        assert_eq!(verify_es384(&public, &jws).unwrap()["iss"], "me");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jws.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES384");
        assert_eq!(header["kid"], public["kid"]);
        // Another key's public half must not verify it.
        let (_, other) = generate_es384().unwrap();
        assert!(verify_es384(&other, &jws).is_err());
    }

    #[test]
    fn rsa_keys_sign_rs384() {
        // A 2048-bit key made for this test only (with Python's cryptography package); it guards nothing.
        let text = include_str!("testdata/rsa-test-only.private.jwk.json");
        let key = SigningKey::from_jwk(text).unwrap();
        assert_eq!(key.alg(), "RS384");
        let jws = key.sign_jwt(&json!({"iss": "me"})).unwrap();
        let jwk: Value = serde_json::from_str(text).unwrap();
        let (n, e) = (field(&jwk, "n").unwrap(), field(&jwk, "e").unwrap());
        let parts: Vec<&str> = jws.split('.').collect();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public = signature::RsaPublicKeyComponents { n: &n, e: &e };
        public
            .verify(&signature::RSA_PKCS1_2048_8192_SHA384, format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("an RS384 signature that verifies with the public key");
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS384");
    }

    #[test]
    fn bad_jwks_are_refused() {
        assert!(SigningKey::from_jwk("{").is_err());
        assert!(SigningKey::from_jwk(r#"{"kty":"oct","k":"AAAA"}"#).is_err());
        assert!(SigningKey::from_jwk(r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}"#).is_err());
        let (private, _) = generate_es384().unwrap();
        let mut wrong = private.clone();
        wrong["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 48]));
        assert!(SigningKey::from_jwk(&wrong.to_string()).is_err(), "d must match x and y");
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1's RSA example key and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let public = json!({"kty": "RSA", "n": n, "e": "AQAB"});
        assert_eq!(thumbprint(&public), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}

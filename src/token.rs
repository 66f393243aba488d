//! Study tokens (docs/api.md, Choices: study tokens): opaque, URL-safe capabilities sealed with AES-256-GCM,
//! embedded in the WADO-RS base address of each ImagingStudy's Endpoint.
//!
//! Invariants: a token is accepted only when its seal opens under this server's key; its claims are never
//! trusted before that; tokens are never logged (the server's log redacts the path segment that holds one).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Bound into every seal so a ciphertext made for another purpose or format version cannot open.
const AAD: &[u8] = b"smart-imaging study token v1";

/// What a study token says, once opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "s")]
    pub study: String,
    /// The FHIR id of the patient the token was minted for, when there was one.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The backend client of system access the token was minted for; `None` for an app's token.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The digest of the access token it was minted under; `None` on a mock tenant.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The DICOM PatientIDs that matched at minting.
    #[serde(rename = "i", default)]
    pub patient_ids: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires: u64,
}

/// Why a token was refused; all of these answer 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Seal,
    Expired,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Malformed => "study token is malformed",
            Refusal::Seal => "study token is not genuine",
            Refusal::Expired => "study token has expired",
        })
    }
}

pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer { key: <secret> }")
    }
}

impl Sealer {
    /// A sealer whose key is SHA-256 of the given secret, so any length of configured secret works.
    pub fn from_secret(secret: &[u8]) -> Sealer {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret);
        Sealer::from_key_bytes(digest.as_ref())
    }

    /// A sealer with a fresh random key: its tokens die with the process.
    pub fn random() -> Result<Sealer, String> {
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key).map_err(|_| "no system randomness for the study-token key")?;
        Ok(Sealer::from_key_bytes(&key))
    }

    fn from_key_bytes(bytes: &[u8]) -> Sealer {
        // AES-256 takes exactly 32 bytes, and both callers pass 32.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!("32-byte key"));
        Sealer { key: LessSafeKey::new(unbound), rng: SystemRandom::new() }
    }

    pub fn seal(&self, claims: &Claims) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| "no system randomness for a nonce")?;
        let mut data = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut data)
            .map_err(|_| "sealing failed")?;
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a token and checks its expiry against `now`; the caller checks tenant, study and patient.
    pub fn open(&self, token: &str, now: u64) -> Result<Claims, Refusal> {
        if token.len() > 4096 {
            return Err(Refusal::Malformed);
        }
        let mut raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| Refusal::Malformed)?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Refusal::Malformed);
        }
        let mut sealed = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| Refusal::Malformed)?;
        let plain = self.key.open_in_place(nonce, Aad::from(AAD), &mut sealed).map_err(|_| Refusal::Seal)?;
        let claims: Claims = serde_json::from_slice(plain).map_err(|_| Refusal::Seal)?;
        if claims.expires <= now {
            return Err(Refusal::Expired);
        }
        Ok(claims)
    }
}

/// The study-token key: `server.key_file`, else `SMART_IMAGING_KEY`, else random for this process only.
pub fn configured(config: &Config) -> Result<Sealer, String> {
    if let Some(path) = &config.key_file {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
            log::warn!(
                "server.key_file {} is readable by every user: anyone who reads it can forge study tokens; \
                 chmod 600 it",
                path.display()
            );
        }
        let secret = std::fs::read(path)
            .map_err(|e| format!("{}: server.key_file: cannot read {}: {e}", config.path.display(), path.display()))?;
        let secret = secret.trim_ascii();
        if secret.len() < 16 {
            return Err(format!(
                "{}: server.key_file: {} holds {} bytes; a key needs at least 16",
                config.path.display(),
                path.display(),
                secret.len()
            ));
        }
        return Ok(Sealer::from_secret(secret));
    }
    match std::env::var("SMART_IMAGING_KEY") {
        Ok(key) if key.len() >= 16 => Ok(Sealer::from_secret(key.as_bytes())),
        Ok(_) => Err("SMART_IMAGING_KEY must be at least 16 characters".into()),
        Err(_) => {
            log::warn!(
                "no study-token key configured (server.key_file or SMART_IMAGING_KEY): a random key is used, \
                 so study tokens stop working when this process exits"
            );
            Sealer::random()
        }
    }
}

/// A study token lives `ttl` seconds, and never past the access token it was minted under: a grant that
/// ends ends the study tokens made from it.
pub fn expiry(now: u64, ttl: u64, token_exp: Option<u64>) -> u64 {
    let own = now.saturating_add(ttl);
    token_exp.map_or(own, |exp| own.min(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            tenant: "demo".into(),
            study: "1.2.3".into(),
            patient: Some("p1".into()),
            client: None,
            token: None,
            patient_ids: vec!["MRN-1001".into()],
            expires: 2_000,
        }
    }

    #[test]
    fn seal_and_open() {
        let s = Sealer::from_secret(b"secret");
        let t = s.seal(&claims()).unwrap();
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
        assert_eq!(s.open(&t, 1_000).unwrap(), claims());
        assert_ne!(t, s.seal(&claims()).unwrap(), "every seal uses a fresh nonce");
    }

    #[test]
    fn same_secret_opens_across_instances() {
        let t = Sealer::from_secret(b"shared").seal(&claims()).unwrap();
        assert!(Sealer::from_secret(b"shared").open(&t, 1_000).is_ok());
        assert_eq!(Sealer::from_secret(b"other").open(&t, 1_000), Err(Refusal::Seal));
    }

    #[test]
    fn refusals() {
        let s = Sealer::from_secret(b"secret");
        let t = s.seal(&claims()).unwrap();
        assert_eq!(s.open(&t, 2_000), Err(Refusal::Expired));
        // Another key (a new key_file, or a restart with a random key) opens none of the old tokens.
        assert_eq!(Sealer::from_secret(b"another secret").open(&t, 0), Err(Refusal::Seal));
        assert_eq!(s.open("not base64!", 0), Err(Refusal::Malformed));
        assert_eq!(s.open("abc", 0), Err(Refusal::Malformed));
        // Flip one bit in each position of the sealed text: none may open.
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 1;
            let r = s.open(&URL_SAFE_NO_PAD.encode(&bad), 0);
            assert!(matches!(r, Err(Refusal::Seal) | Err(Refusal::Malformed)), "byte {i}");
        }
    }

    #[test]
    fn study_tokens_never_outlive_the_access_token() {
        assert_eq!(expiry(100, 3600, None), 3700);
        assert_eq!(expiry(100, 3600, Some(200)), 200);
        assert_eq!(expiry(100, 60, Some(5000)), 160);
    }
}

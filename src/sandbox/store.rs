//! What the sandbox remembers: authorization codes waiting for their exchange, codes already exchanged (so
//! that a second use revokes the token of the first), access tokens, and the `jti`s of client assertions
//! until they expire.
//!
//! Invariants: codes and tokens are kept only as SHA-256 digests, never in the clear; every entry has an
//! expiry and expired entries are dropped before a full store refuses a new one; each map holds at most
//! `MAX_ENTRIES`, so no client can make the sandbox grow without bound.

use std::collections::HashMap;

/// The most entries of each kind kept at once.
pub const MAX_ENTRIES: usize = 10_000;

/// A SHA-256 digest: how a code or a token is known here.
pub type Digest = [u8; 32];

pub fn digest(secret: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `#` and the first 8 hex digits of the digest: enough to follow one code or token through the log, and
/// nothing that could be used as it.
pub fn short(secret: &str) -> String {
    let d = digest(secret);
    format!("#{}", d[..4].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// An authorization code's grant, waiting for the token request.
#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 `code_challenge`.
    pub challenge: String,
    pub scope: String,
    pub patient: Option<String>,
    pub expires: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// From the authorization-code flow: an app's token.
    App,
    /// From `client_credentials`: a backend client's token, which may introspect.
    Backend,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub kind: Kind,
    pub client_id: String,
    pub scope: String,
    pub patient: Option<String>,
    pub issued: u64,
    pub expires: u64,
    /// The short name used in the log.
    pub short: String,
}

/// What a token is now.
#[derive(Debug)]
pub enum Lookup<'a> {
    Active(&'a Token),
    Expired,
    Unknown,
}

/// What taking a code found.
#[derive(Debug)]
pub enum Taken {
    /// A code never exchanged before; it is now spent.
    Fresh(Code),
    /// A code exchanged before, and the token issued for it then, if any.
    Spent(Option<Digest>),
    Unknown,
}

/// The store is full of live entries.
#[derive(Debug)]
pub struct Full;

#[derive(Debug, Default)]
pub struct Store {
    codes: HashMap<Digest, Code>,
    /// Exchanged codes: until when they are remembered, and the token issued for each.
    spent: HashMap<Digest, (u64, Option<Digest>)>,
    tokens: HashMap<Digest, Token>,
    /// (client id, jti) → the assertion's `exp`.
    jtis: HashMap<(String, String), u64>,
}

/// Makes room for one more entry: drops the expired ones when the map is full; `Full` when none had expired.
fn room<K, V>(map: &mut HashMap<K, V>, now: u64, expiry: impl Fn(&V) -> u64) -> Result<(), Full> {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| expiry(v) > now);
    }
    if map.len() >= MAX_ENTRIES { Err(Full) } else { Ok(()) }
}

impl Store {
    pub fn add_code(&mut self, code: &str, grant: Code, now: u64) -> Result<(), Full> {
        room(&mut self.codes, now, |c| c.expires)?;
        self.codes.insert(digest(code), grant);
        Ok(())
    }

    /// Takes a code out: whatever the exchange does next, the code is spent, and remembered as spent for
    /// `remember` seconds.
    pub fn take_code(&mut self, code: &str, now: u64, remember: u64) -> Result<Taken, Full> {
        let key = digest(code);
        if let Some((until, token)) = self.spent.get(&key) {
            if *until > now {
                return Ok(Taken::Spent(*token));
            }
        }
        match self.codes.remove(&key) {
            Some(grant) => {
                room(&mut self.spent, now, |(until, _)| *until)?;
                self.spent.insert(key, (now + remember, None));
                Ok(Taken::Fresh(grant))
            }
            None => Ok(Taken::Unknown),
        }
    }

    /// Records the token issued for a spent code, to revoke it if the code comes back.
    pub fn spent_for(&mut self, code: &str, token: &str) {
        if let Some(entry) = self.spent.get_mut(&digest(code)) {
            entry.1 = Some(digest(token));
        }
    }

    pub fn add_token(&mut self, token: &str, info: Token, now: u64) -> Result<(), Full> {
        room(&mut self.tokens, now, |t| t.expires)?;
        self.tokens.insert(digest(token), info);
        Ok(())
    }

    pub fn token(&self, token: &str, now: u64) -> Lookup<'_> {
        match self.tokens.get(&digest(token)) {
            Some(t) if t.expires > now => Lookup::Active(t),
            Some(_) => Lookup::Expired,
            None => Lookup::Unknown,
        }
    }

    /// Forgets a token: from now on it is unknown, so inactive. Returns its short name when there was one.
    pub fn revoke(&mut self, key: &Digest) -> Option<String> {
        self.tokens.remove(key).map(|t| t.short)
    }

    /// Records an assertion's `jti`; `Ok(false)` when the client used it before (a replay).
    pub fn use_jti(&mut self, client: &str, jti: &str, exp: u64, now: u64) -> Result<bool, Full> {
        let key = (client.to_string(), jti.to_string());
        if self.jtis.get(&key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        room(&mut self.jtis, now, |until| *until)?;
        self.jtis.insert(key, exp.max(now + 1));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires: u64) -> Code {
        Code {
            client_id: "app".into(),
            redirect_uri: "http://app/cb".into(),
            challenge: "c".into(),
            scope: "launch/patient".into(),
            patient: Some("p1".into()),
            expires,
        }
    }

    #[test]
    fn a_code_is_taken_once_and_then_known_as_spent() {
        let mut s = Store::default();
        s.add_code("code-1", grant(100), 10).unwrap();
        assert!(matches!(s.take_code("code-1", 11, 60).unwrap(), Taken::Fresh(_)));
        s.spent_for("code-1", "token-1");
        assert!(matches!(s.take_code("code-1", 12, 60).unwrap(), Taken::Spent(Some(d)) if d == digest("token-1")));
        assert!(matches!(s.take_code("code-2", 12, 60).unwrap(), Taken::Unknown));
    }

    #[test]
    fn tokens_expire_and_are_revoked() {
        let mut s = Store::default();
        let t = Token {
            kind: Kind::App,
            client_id: "app".into(),
            scope: String::new(),
            patient: None,
            issued: 0,
            expires: 20,
            short: short("t"),
        };
        s.add_token("t", t, 0).unwrap();
        assert!(matches!(s.token("t", 19), Lookup::Active(_)));
        assert!(matches!(s.token("t", 20), Lookup::Expired));
        assert!(matches!(s.token("u", 0), Lookup::Unknown));
        assert!(s.revoke(&digest("t")).is_some());
        assert!(matches!(s.token("t", 0), Lookup::Unknown));
    }

    #[test]
    fn a_jti_is_used_once_per_client() {
        let mut s = Store::default();
        assert!(s.use_jti("a", "j", 100, 0).unwrap());
        assert!(!s.use_jti("a", "j", 100, 1).unwrap(), "a replay");
        assert!(s.use_jti("b", "j", 100, 1).unwrap(), "another client's jti is its own");
    }

    #[test]
    fn a_full_store_drops_expired_entries_first() {
        let mut s = Store::default();
        for n in 0..MAX_ENTRIES {
            s.use_jti("a", &n.to_string(), 5, 0).unwrap();
        }
        assert!(s.use_jti("a", "one more", 5, 1).is_err(), "full of live entries");
        assert!(s.use_jti("a", "one more", 50, 6).unwrap(), "the expired ones made room");
    }

    #[test]
    fn short_names_are_not_the_secret() {
        let name = short("0123456789abcdef0123456789abcdef");
        assert_eq!(name.len(), 9);
        assert!(!"0123456789abcdef0123456789abcdef".contains(&name[1..]));
    }
}

//! What the sandbox remembers: EHR launches waiting for their app, authorization codes waiting for their
//! exchange, codes already exchanged (so that a second use revokes the token of the first), access tokens,
//! and the `jti`s of client assertions until they expire.
//!
//! Invariants: launches, codes and tokens are kept only as SHA-256 digests, never in the clear; every entry
//! has an expiry and belongs to a client; each kind holds at most `PER_CLIENT` entries of one client and
//! `MAX_ENTRIES` in all, and making room drops expired entries first, then the oldest of the client that
//! needs the room (or, when the whole store is full, of the client holding the most). So one client that
//! spends codes or tokens by the thousand only ever drops its own, and never refuses another client.

use std::collections::{HashMap, VecDeque};

/// The most entries of each kind kept at once.
pub const MAX_ENTRIES: usize = 10_000;

/// The most entries of each kind one client keeps at once.
pub const PER_CLIENT: usize = 1_000;

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

/// Entries of one kind, by digest, each with its client and expiry, bounded per client and in all.
#[derive(Debug)]
struct Bounded<V> {
    entries: HashMap<Digest, (String, u64, V)>,
    /// Each client's keys, oldest first.
    order: HashMap<String, VecDeque<Digest>>,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Bounded { entries: HashMap::new(), order: HashMap::new() }
    }
}

impl<V> Bounded<V> {
    fn get(&self, key: &Digest) -> Option<&V> {
        self.entries.get(key).map(|(_, _, v)| v)
    }

    fn get_mut(&mut self, key: &Digest) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(_, _, v)| v)
    }

    fn remove(&mut self, key: &Digest) -> Option<V> {
        let (client, _, value) = self.entries.remove(key)?;
        if let Some(keys) = self.order.get_mut(&client) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.order.remove(&client);
            }
        }
        Some(value)
    }

    /// Keeps `value` under `key` for `client` until `expires`, having made room for it.
    fn insert(&mut self, key: Digest, client: &str, expires: u64, value: V, now: u64) {
        self.remove(&key);
        if self.order.get(client).is_some_and(|keys| keys.len() >= PER_CLIENT) {
            self.make_room(client, now);
        }
        if self.entries.len() >= MAX_ENTRIES {
            let expired: Vec<Digest> =
                self.entries.iter().filter(|(_, (_, until, _))| *until <= now).map(|(k, _)| *k).collect();
            for k in &expired {
                self.remove(k);
            }
            if self.entries.len() >= MAX_ENTRIES {
                let biggest = self.order.iter().max_by_key(|(_, keys)| keys.len()).map(|(c, _)| c.clone());
                if let Some(biggest) = biggest {
                    self.make_room(&biggest, now);
                }
            }
        }
        self.entries.insert(key, (client.to_string(), expires, value));
        self.order.entry(client.to_string()).or_default().push_back(key);
    }

    /// Drops `client`'s expired entries, or when none had expired, its oldest.
    fn make_room(&mut self, client: &str, now: u64) {
        let keys: Vec<Digest> = self.order.get(client).map(|k| k.iter().copied().collect()).unwrap_or_default();
        let expired: Vec<Digest> =
            keys.iter().filter(|k| self.entries.get(*k).is_some_and(|(_, until, _)| *until <= now)).copied().collect();
        for k in &expired {
            self.remove(k);
        }
        if expired.is_empty() {
            if let Some(oldest) = keys.first() {
                self.remove(oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// An EHR launch: the app the sandbox's page opened, and the patient it was opened for.
#[derive(Debug, Clone)]
pub struct Launch {
    pub client_id: String,
    pub patient: String,
    pub expires: u64,
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
    /// Whether it came from an EHR launch.
    pub launched: bool,
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

#[derive(Debug, Default)]
pub struct Store {
    launches: Bounded<Launch>,
    codes: Bounded<Code>,
    /// Exchanged codes, and the token issued for each.
    spent: Bounded<Option<Digest>>,
    tokens: Bounded<Token>,
    /// Digests of (client id, jti), kept until the assertion's `exp`.
    jtis: Bounded<()>,
}

impl Store {
    pub fn add_launch(&mut self, launch: &str, info: Launch, now: u64) {
        let (client, expires) = (info.client_id.clone(), info.expires);
        self.launches.insert(digest(launch), &client, expires, info, now);
    }

    /// Takes a launch out: it is good for one authorization request, and only while it lives.
    pub fn take_launch(&mut self, launch: &str, now: u64) -> Option<Launch> {
        self.launches.remove(&digest(launch)).filter(|l| l.expires > now)
    }

    pub fn add_code(&mut self, code: &str, grant: Code, now: u64) {
        let (client, expires) = (grant.client_id.clone(), grant.expires);
        self.codes.insert(digest(code), &client, expires, grant, now);
    }

    /// Takes a code out: whatever the exchange does next, the code is spent, and remembered as spent for
    /// `remember` seconds.
    pub fn take_code(&mut self, code: &str, now: u64, remember: u64) -> Taken {
        let key = digest(code);
        if let Some(token) = self.spent.get(&key) {
            return Taken::Spent(*token);
        }
        match self.codes.remove(&key) {
            Some(grant) => {
                self.spent.insert(key, &grant.client_id, now + remember, None, now);
                Taken::Fresh(grant)
            }
            None => Taken::Unknown,
        }
    }

    /// Records the token issued for a spent code, to revoke it if the code comes back.
    pub fn spent_for(&mut self, code: &str, token: &str) {
        if let Some(entry) = self.spent.get_mut(&digest(code)) {
            *entry = Some(digest(token));
        }
    }

    pub fn add_token(&mut self, token: &str, info: Token, now: u64) {
        let (client, expires) = (info.client_id.clone(), info.expires);
        self.tokens.insert(digest(token), &client, expires, info, now);
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

    /// Records an assertion's `jti`; `false` when the client used it before (a replay).
    pub fn use_jti(&mut self, client: &str, jti: &str, exp: u64, now: u64) -> bool {
        let key = digest(&format!("{client}\0{jti}"));
        if self.jtis.entries.get(&key).is_some_and(|(_, until, _)| *until > now) {
            return false;
        }
        self.jtis.insert(key, client, exp.max(now + 1), (), now);
        true
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
            launched: false,
        }
    }

    #[test]
    fn a_code_is_taken_once_and_then_known_as_spent() {
        let mut s = Store::default();
        s.add_code("code-1", grant(100), 10);
        assert!(matches!(s.take_code("code-1", 11, 60), Taken::Fresh(_)));
        s.spent_for("code-1", "token-1");
        assert!(matches!(s.take_code("code-1", 12, 60), Taken::Spent(Some(d)) if d == digest("token-1")));
        assert!(matches!(s.take_code("code-2", 12, 60), Taken::Unknown));
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
        s.add_token("t", t, 0);
        assert!(matches!(s.token("t", 19), Lookup::Active(_)));
        assert!(matches!(s.token("t", 20), Lookup::Expired));
        assert!(matches!(s.token("u", 0), Lookup::Unknown));
        assert!(s.revoke(&digest("t")).is_some());
        assert!(matches!(s.token("t", 0), Lookup::Unknown));
    }

    #[test]
    fn a_jti_is_used_once_per_client() {
        let mut s = Store::default();
        assert!(s.use_jti("a", "j", 100, 0));
        assert!(!s.use_jti("a", "j", 100, 1), "a replay");
        assert!(s.use_jti("b", "j", 100, 1), "another client's jti is its own");
    }

    #[test]
    fn a_client_over_its_share_drops_its_expired_then_its_oldest_entries_and_nobody_elses() {
        let mut s = Store::default();
        s.add_code("other", Code { client_id: "other".into(), ..grant(1_000) }, 0);
        for n in 0..PER_CLIENT {
            s.add_code(&format!("old-{n}"), grant(if n < 10 { 5 } else { 1_000 }), 0);
        }
        s.add_code("new-1", grant(1_000), 6);
        assert!(matches!(s.take_code("old-0", 6, 60), Taken::Unknown), "an expired one went first");
        assert!(matches!(s.take_code("old-10", 6, 60), Taken::Fresh(_)), "the live ones stayed");
        for n in 0..3 * PER_CLIENT {
            s.add_code(&format!("flood-{n}"), grant(1_000), 7);
        }
        assert!(s.codes.len() <= PER_CLIENT + 1, "{}", s.codes.len());
        assert!(matches!(s.take_code("flood-0", 8, 60), Taken::Unknown), "its oldest went");
        assert!(matches!(s.take_code(&format!("flood-{}", 3 * PER_CLIENT - 1), 8, 60), Taken::Fresh(_)));
        assert!(matches!(s.take_code("other", 8, 60), Taken::Fresh(_)), "another client's code stayed");
    }

    #[test]
    fn a_full_store_takes_room_from_the_client_holding_the_most() {
        let mut s = Store::default();
        for n in 0..MAX_ENTRIES {
            s.use_jti(&format!("client-{}", n % 10 + usize::from(n >= 9_990) * 10), &n.to_string(), 100, 0);
        }
        assert_eq!(s.jtis.len(), MAX_ENTRIES);
        assert!(s.use_jti("newcomer", "j", 100, 1), "a new client is never refused");
        assert_eq!(s.jtis.len(), MAX_ENTRIES);
        assert!(!s.use_jti("newcomer", "j", 100, 1), "and its jti is remembered");
    }

    #[test]
    fn a_launch_is_good_once_and_only_while_it_lives() {
        let mut s = Store::default();
        s.add_launch("l", Launch { client_id: "app".into(), patient: "p1".into(), expires: 10 }, 0);
        assert_eq!(s.take_launch("l", 1).map(|l| l.patient).as_deref(), Some("p1"));
        assert!(s.take_launch("l", 1).is_none(), "used");
        s.add_launch("m", Launch { client_id: "app".into(), patient: "p1".into(), expires: 10 }, 0);
        assert!(s.take_launch("m", 10).is_none(), "expired");
    }

    #[test]
    fn short_names_are_not_the_secret() {
        let name = short("0123456789abcdef0123456789abcdef");
        assert_eq!(name.len(), 9);
        assert!(!"0123456789abcdef0123456789abcdef".contains(&name[1..]));
    }
}

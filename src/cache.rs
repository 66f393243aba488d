//! A small map whose entries expire, with a bound on its size: what the EHR client's flights keep their
//! answers in, and what the DICOMweb handlers keep their verdicts on moved files in. A leaf: it knows no
//! other module.
//!
//! Invariants: an entry is never returned at or after its expiry; the map never holds more than its
//! capacity; when full, expired entries go first, then the entry that would expire soonest. Reads take
//! `&self`, so cached answers can be served under a shared read lock.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: HashMap<K, (V, u64)>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> TtlCache<K, V> {
        TtlCache { entries: HashMap::new(), capacity: capacity.max(1) }
    }

    /// The value for `key` if it is still fresh at `now` (Unix seconds). Readers share the cache, so an
    /// expired entry stays until an insert needs its room.
    pub fn get(&self, key: &K, now: u64) -> Option<V> {
        self.entries.get(key).filter(|(_, expires)| now < *expires).map(|(v, _)| v.clone())
    }

    /// Keeps `value` until `expires`; an entry already expired is not kept at all.
    pub fn insert(&mut self, key: K, value: V, expires: u64, now: u64) {
        if expires <= now {
            self.entries.remove(&key);
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= self.capacity {
                let soonest = self.entries.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(key, (value, expires));
    }

    /// Drops the entry for `key` if `stale` says so.
    pub fn remove_if(&mut self, key: &K, stale: impl Fn(&V) -> bool) {
        if self.entries.get(key).is_some_and(|(v, _)| stale(v)) {
            self.entries.remove(key);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_exclusive() {
        let mut c = TtlCache::new(4);
        c.insert("a", 1, 100, 50);
        assert_eq!(c.get(&"a", 99), Some(1));
        assert_eq!(c.get(&"a", 100), None);
        c.insert("b", 2, 10, 10);
        assert_eq!(c.get(&"b", 0), None, "an already expired entry is not kept");
    }

    #[test]
    fn bounded() {
        let mut c = TtlCache::new(3);
        c.insert(1, "x", 110, 0);
        c.insert(2, "x", 105, 0);
        c.insert(3, "x", 120, 0);
        c.insert(4, "x", 130, 0);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&2, 0), None, "the soonest to expire made room");
        c.insert(5, "x", 200, 112);
        assert_eq!(c.get(&1, 112), None, "expired entries go first");
        assert_eq!(c.get(&3, 112), Some("x"));
        assert!(c.len() <= 3);
    }
}

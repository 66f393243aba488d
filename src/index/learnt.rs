//! What the server learns about the indexed files while it serves them, kept with the index it learnt it
//! under (a reload may bring other files under the same paths, so nothing of it outlives its index): the
//! lengths of instances transcoded or inflated, measured the first time each is needed, and whether files
//! modified since indexing still hold their instances.
//!
//! Invariants: at most one length per indexed file, which the static index bounds; at most `VERDICTS`
//! verdicts, each kept at most `VERDICT_SECS`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::cache::TtlCache;

/// The lengths of instances learnt the first time each is needed, kept with the index they were measured
/// under.
#[derive(Debug, Default)]
pub struct Lengths {
    /// As Explicit VR Little Endian, when transcoded.
    pub transcoded: Measured,
    /// Of a deflated file with its data set inflated (`dicom::dataset::inflated_file_len`).
    pub inflated: Measured,
}

/// One length for each instance, by its path: at most one entry per indexed file, which the static index
/// bounds, and no value that outlives the index.
#[derive(Debug, Default)]
pub struct Measured(Mutex<HashMap<String, u64>>);

impl Measured {
    pub fn get(&self, path: &str) -> Option<u64> {
        self.0.lock().ok()?.get(path).copied()
    }

    pub fn put(&self, path: &str, length: u64) {
        if let Ok(mut lengths) = self.0.lock() {
            lengths.insert(path.to_string(), length);
        }
    }

    /// Forgets a length that no longer holds, so that the next request measures again.
    pub fn forget(&self, path: &str) {
        if let Ok(mut lengths) = self.0.lock() {
            lengths.remove(path);
        }
    }
}

/// Whether a file modified since it was indexed still holds its indexed instance, by its path, size and
/// modification time: its header is read again once for each, not on every request. At most `VERDICTS`
/// entries, each kept at most `VERDICT_SECS`; when it is full, the oldest goes first.
#[derive(Debug)]
pub struct Verdicts(Mutex<TtlCache<(String, u64, u64), bool>>);

/// How many verdicts are kept: a copy of a large archive brings more moved times than that, whose headers are
/// then read again in turn.
const VERDICTS: usize = 10_000;
/// How long a verdict is kept: a file rewritten with its size and time put back is seen within it.
const VERDICT_SECS: u64 = 3600;

impl Default for Verdicts {
    fn default() -> Verdicts {
        Verdicts(Mutex::new(TtlCache::new(VERDICTS)))
    }
}

impl Verdicts {
    pub fn get(&self, key: &(String, u64, u64)) -> Option<bool> {
        self.0.lock().ok()?.get(key, crate::time::now_secs())
    }

    pub fn put(&self, key: (String, u64, u64), same: bool) {
        let now = crate::time::now_secs();
        if let Ok(mut verdicts) = self.0.lock() {
            verdicts.insert(key, same, now + VERDICT_SECS, now);
        }
    }
}

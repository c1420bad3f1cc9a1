//! The receiver's map from a series' label pairs, as a sender spells them,
//! to the storage ref of that series.
//!
//! Senders repeat every series' labels in every request (1.0 even once per
//! sample). Without this map each series of each request is validated,
//! built into a [`Labels`] (one allocation), hashed and looked up in the
//! head's label-hash shards; with it, a series seen before costs a hash of
//! its pairs, one lookup here and a check of the stored labels under the
//! series' shard lock ([`Appender::ref_matches`]), which it needs anyway to
//! append.
//!
//! Invariants:
//! - an entry is only inserted for pairs that passed validation and were
//!   appended, so pairs equal to an entry's stored labels (with no empty
//!   value, see [`pairs_match`]) are valid under the receiver's rules;
//! - an entry is a hint, never trusted alone: a hash collision or a series
//!   removed since (head truncation) fails the check and takes the full
//!   path, which overwrites the entry;
//! - memory is bounded: a shard that reaches its share of the capacity is
//!   emptied (entries of series that no longer arrive are dropped that way;
//!   live ones come back at the cost of one full lookup each).
//!
//! [`Appender::ref_matches`]: tidemark_storage::Appender::ref_matches

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::Mutex;
use tidemark_storage::Labels;
use xxhash_rust::xxh3::xxh3_64;

/// Shards (a power of two): concurrent requests rarely meet on one lock.
const SHARDS: usize = 64;

/// Passes a key that is already a good 64-bit hash through unchanged.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; fold anything else in for safety.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Shard = HashMap<u64, u64, BuildHasherDefault<KeyHasher>>;

/// Key of a series' label pairs → its storage ref, bounded in size.
pub(crate) struct SeriesCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl std::fmt::Debug for SeriesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesCache").field("capacity", &(self.per_shard * SHARDS)).finish_non_exhaustive()
    }
}

impl SeriesCache {
    /// A cache of at most about `max_entries` entries; 0 disables it.
    pub(crate) fn new(max_entries: usize) -> SeriesCache {
        let per_shard = max_entries.div_ceil(SHARDS);
        SeriesCache { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(), per_shard }
    }

    /// Whether the cache is in use.
    pub(crate) fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        // Bits 32.. pick the shard; the map itself uses the low bits for the
        // bucket and the top 7 for its tag, so neither is constant within
        // a shard.
        &self.shards[(key >> 32) as usize & (SHARDS - 1)]
    }

    /// The ref last stored for `key`, if any.
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        self.shard(key).lock().get(&key).copied()
    }

    /// Stores `series_ref` for `key`, emptying the shard first when full.
    pub(crate) fn insert(&self, key: u64, series_ref: u64) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.shard(key).lock();
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.clear();
        }
        shard.insert(key, series_ref);
    }

    /// Entries held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The key of label pairs as sent: xxh3 of each name and value with its
/// length in front (so `("ab","c")` and `("a","bc")` differ). `scratch` is
/// reused between calls.
pub(crate) fn key(pairs: &[(&str, &str)], scratch: &mut Vec<u8>) -> u64 {
    scratch.clear();
    for (n, v) in pairs {
        for s in [n, v] {
            scratch.extend_from_slice(&(s.len() as u32).to_le_bytes());
            scratch.extend_from_slice(s.as_bytes());
        }
    }
    xxh3_64(scratch)
}

/// Whether `pairs`, as sent, are exactly `labels`: the same names and
/// values in the same order, none with an empty value. (Pairs with empty
/// values would be valid too but must be checked for order by the full
/// path; senders do not send them in practice.)
pub(crate) fn pairs_match(pairs: &[(&str, &str)], labels: &Labels) -> bool {
    labels.matches_pairs(pairs.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_match_exactly() {
        let l = Labels::new([("__name__", "up"), ("job", "a")]).unwrap();
        assert!(pairs_match(&[("__name__", "up"), ("job", "a")], &l));
        assert!(!pairs_match(&[("__name__", "up")], &l));
        assert!(!pairs_match(&[("__name__", "up"), ("job", "a"), ("x", "1")], &l));
        assert!(!pairs_match(&[("__name__", "up"), ("job", "b")], &l));
        // Valid, but the empty value is left to the full path.
        assert!(!pairs_match(&[("__name__", "up"), ("env", ""), ("job", "a")], &l));
        assert!(!pairs_match(&[("job", "a"), ("__name__", "up")], &l));
    }

    #[test]
    fn keys_separate_names_from_values() {
        let mut s = Vec::new();
        let a = key(&[("ab", "c")], &mut s);
        let b = key(&[("a", "bc")], &mut s);
        let c = key(&[("a", "b"), ("c", "")], &mut s);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, key(&[("ab", "c")], &mut s));
    }

    #[test]
    fn bounded_and_disabled() {
        let c = SeriesCache::new(SHARDS * 2);
        for k in 0..10_000u64 {
            // Spread over shards like real keys.
            let key = xxh3_64(&k.to_le_bytes());
            c.insert(key, k);
            assert_eq!(c.get(key), Some(k));
        }
        assert!(c.len() <= SHARDS * 2);
        let off = SeriesCache::new(0);
        assert!(!off.enabled());
        off.insert(1, 1);
        assert_eq!(off.get(1), None);
    }
}

//! The receiver's map from a series' label pairs, as a sender spells them,
//! to the storage ref of that series.
//!
//! Senders repeat every series' labels in every request (1.0 even once per
//! sample). Without this map each series of each request is validated,
//! built into a [`Labels`](tidemark_storage::Labels) (one allocation), hashed and looked up in the
//! head's label-hash shards; with it, a series seen before costs a hash of
//! its pairs, one lookup here and a check of the stored labels under the
//! series' shard lock, in the same step as its first append
//! ([`Appender::append_ref_if`]).
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
//! [`Appender::append_ref_if`]: tidemark_storage::Appender::append_ref_if

use parking_lot::Mutex;
use xxhash_rust::xxh3::xxh3_64;

/// Shards (a power of two): concurrent requests rarely meet on one lock.
const SHARDS: usize = 64;

/// The key stored for the key 0, which marks an empty slot. A key is only
/// a hint (see the module invariants), so merging 0 into 1 is harmless.
const EMPTY: u64 = 0;

/// One shard: an open-addressing table of `(key, ref)` pairs with linear
/// probing. A pair sits in one 16-byte slot, so a lookup that hits reads
/// one cache line (a general-purpose map reads its control bytes and then
/// its bucket: two). Nothing is ever removed alone (the shard is emptied
/// when full), so probing needs no tombstones.
#[derive(Default)]
struct Shard {
    /// Power-of-two length (or empty before the first insert); at most
    /// three quarters full.
    slots: Vec<(u64, u64)>,
    len: usize,
}

impl Shard {
    /// The slot `key` is in, or the empty slot where it would go. The
    /// table must not be empty.
    #[inline]
    fn find(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = key as usize & mask;
        loop {
            let k = self.slots[i].0;
            if k == key || k == EMPTY {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        let (k, r) = self.slots[self.find(key)];
        (k == key).then_some(r)
    }

    /// Inserts or overwrites; empties the table first if it holds `cap`
    /// entries and `key` is not one of them.
    fn insert(&mut self, key: u64, series_ref: u64, cap: usize) {
        if self.slots.is_empty() {
            self.slots = vec![(EMPTY, 0); 16];
        }
        let mut i = self.find(key);
        if self.slots[i].0 == EMPTY {
            if self.len >= cap {
                self.slots.fill((EMPTY, 0));
                self.len = 0;
            } else if (self.len + 1) * 4 > self.slots.len() * 3 {
                self.grow();
            }
            i = self.find(key);
            self.len += 1;
        }
        self.slots[i] = (key, series_ref);
    }

    fn grow(&mut self) {
        let doubled = vec![(EMPTY, 0); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for (k, r) in old {
            if k != EMPTY {
                let i = self.find(k);
                self.slots[i] = (k, r);
            }
        }
    }
}

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
        // Bits 32.. pick the shard; the table uses the low bits for the
        // slot, so they are not constant within a shard.
        &self.shards[(key >> 32) as usize & (SHARDS - 1)]
    }

    /// The ref last stored for `key`, if any.
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        let key = key.max(1);
        self.shard(key).lock().get(key)
    }

    /// Stores `series_ref` for `key`, emptying the shard first when full.
    pub(crate) fn insert(&self, key: u64, series_ref: u64) {
        if !self.enabled() {
            return;
        }
        let key = key.max(1);
        self.shard(key).lock().insert(key, series_ref, self.per_shard);
    }

    /// Entries held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len).sum()
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
pub(crate) fn pairs_match(pairs: &[(&str, &str)], labels: tidemark_storage::head::LabelsView<'_>) -> bool {
    labels.matches_pairs(pairs.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_storage::Labels;

    #[test]
    fn pairs_match_exactly() {
        use tidemark_storage::head::{Head, HeadOptions};
        let l = Labels::new([("__name__", "up"), ("job", "a")]).unwrap();
        let head = Head::new(HeadOptions::default(), None);
        let mut app = head.appender();
        let r = app.append(&l, 1_000, 1.0).unwrap();
        let m = |pairs: &[(&str, &str)]| app.ref_matches(r, |stored| pairs_match(pairs, stored));
        assert!(m(&[("__name__", "up"), ("job", "a")]));
        assert!(!m(&[("__name__", "up")]));
        assert!(!m(&[("__name__", "up"), ("job", "a"), ("x", "1")]));
        assert!(!m(&[("__name__", "up"), ("job", "b")]));
        // Valid, but the empty value is left to the full path.
        assert!(!m(&[("__name__", "up"), ("env", ""), ("job", "a")]));
        assert!(!m(&[("job", "a"), ("__name__", "up")]));
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
    fn table_grows_and_overwrites() {
        let mut t = Shard::default();
        assert_eq!(t.get(5), None);
        // Keys sharing their low bits probe past each other.
        for k in 1..=1000u64 {
            t.insert(k << 20, k, usize::MAX);
            t.insert(k, k + 7, usize::MAX);
        }
        assert_eq!(t.len, 2000);
        assert!(t.len * 4 <= t.slots.len() * 3);
        for k in 1..=1000u64 {
            assert_eq!(t.get(k << 20), Some(k));
            assert_eq!(t.get(k), Some(k + 7));
        }
        t.insert(3, 42, usize::MAX);
        assert_eq!((t.get(3), t.len), (Some(42), 2000));
        assert_eq!(t.get(1001), None);
    }

    proptest::proptest! {
        /// Against a plain map: a hit is always the last ref stored for the
        /// key, and nothing is lost until a shard reaches its capacity.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((0u64..40, 0u64..5, proptest::bool::ANY), 1..300), cap in 1usize..40) {
            let c = SeriesCache::new(cap * SHARDS);
            let mut model = std::collections::HashMap::new();
            for (k, r, insert) in ops {
                // Keys 0 and 1 share a slot on purpose; spread the rest.
                let key = if k < 2 { k } else { xxh3_64(&k.to_le_bytes()) & !0xff };
                let key_of_model = key.max(1);
                if insert {
                    c.insert(key, r);
                    model.insert(key_of_model, r);
                    proptest::prop_assert_eq!(c.get(key), Some(r));
                } else if let Some(got) = c.get(key) {
                    proptest::prop_assert_eq!(Some(&got), model.get(&key_of_model));
                }
            }
            if cap >= 40 {
                for (k, r) in &model {
                    proptest::prop_assert_eq!(c.get(*k), Some(*r));
                }
            }
        }
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

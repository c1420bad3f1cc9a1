//! A `u32 → u32` map for the label-hash shards: a sorted array while it is
//! small, a hash map once it is large.
//!
//! The head splits its label-hash map over 16,384 lock shards, so at 1 M
//! series a shard holds ~61 entries. A hash table doubles its buckets (and
//! keeps an eighth free), so right after a doubling it is under half full:
//! 128 buckets of 9 bytes for 61 entries is ~19 bytes per series. A sorted
//! array of 8-byte entries that grows by an eighth holds the same in ~8.5
//! bytes, and a binary search over 64 entries is as quick as a probe. An
//! insert or remove shifts the entries after it, which is cheap at this size
//! but not for a few large shards (a head configured with few stripes): past
//! [`SORTED_MAX`] entries the map turns into a hash map, and stays one.

use super::index::FxHashMap;

/// Most entries kept in the sorted array: shifting half of them on an insert
/// moves at most 4 KiB.
pub(crate) const SORTED_MAX: usize = 1024;

/// A `u32 → u32` map. See the module docs.
#[derive(Debug)]
pub(crate) enum KeyMap {
    /// Entries sorted by key, keys unique.
    Sorted(Vec<(u32, u32)>),
    /// Once more than [`SORTED_MAX`] entries were held.
    Hashed(FxHashMap<u32, u32>),
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap::Sorted(Vec::new())
    }
}

impl KeyMap {
    /// The value of `k`.
    #[inline]
    pub(crate) fn get(&self, k: u32) -> Option<u32> {
        match self {
            KeyMap::Sorted(v) => v.binary_search_by_key(&k, |e| e.0).ok().map(|i| v[i].1),
            KeyMap::Hashed(m) => m.get(&k).copied(),
        }
    }

    /// Stores `k → value` unless `k` is present; returns whether it stored.
    pub(crate) fn insert_new(&mut self, k: u32, value: u32) -> bool {
        match self {
            KeyMap::Sorted(v) => {
                let Err(i) = v.binary_search_by_key(&k, |e| e.0) else { return false };
                if v.len() >= SORTED_MAX {
                    let mut m: FxHashMap<u32, u32> = v.iter().copied().collect();
                    m.insert(k, value);
                    *self = KeyMap::Hashed(m);
                    return true;
                }
                if v.len() == v.capacity() {
                    // Grow by an eighth (at least 4 entries), not double.
                    v.reserve_exact((v.len() / 8).max(4));
                }
                v.insert(i, (k, value));
                true
            }
            KeyMap::Hashed(m) => match m.entry(k) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(value);
                    true
                }
                std::collections::hash_map::Entry::Occupied(_) => false,
            },
        }
    }

    /// Removes `k`; returns its value.
    pub(crate) fn remove(&mut self, k: u32) -> Option<u32> {
        match self {
            KeyMap::Sorted(v) => {
                let i = v.binary_search_by_key(&k, |e| e.0).ok()?;
                let (_, value) = v.remove(i);
                // Give memory back when a churned shard is mostly empty.
                if v.capacity() > 16 && v.len() < v.capacity() / 2 {
                    v.shrink_to(v.len() + v.len() / 8);
                }
                Some(value)
            }
            KeyMap::Hashed(m) => m.remove(&k),
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        match self {
            KeyMap::Sorted(v) => v.len(),
            KeyMap::Hashed(m) => m.len(),
        }
    }

    /// Heap bytes held: the array's capacity, or the hash table's buckets
    /// (an entry and a control byte each; hashbrown keeps at least an
    /// eighth of its buckets free).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            KeyMap::Sorted(v) => v.capacity() * std::mem::size_of::<(u32, u32)>(),
            KeyMap::Hashed(m) if m.capacity() == 0 => 0,
            KeyMap::Hashed(m) => (m.capacity() * 8 / 7).next_power_of_two() * 9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Any sequence of inserts and removes gives the answers of a
        /// `BTreeMap`, across the switch to a hash map.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..3000, any::<u32>()), 0..4000)) {
            let mut m = KeyMap::default();
            let mut want = BTreeMap::new();
            for (insert, k, value) in ops {
                if insert {
                    let stored = m.insert_new(k, value);
                    prop_assert_eq!(stored, !want.contains_key(&k));
                    want.entry(k).or_insert(value);
                } else {
                    prop_assert_eq!(m.remove(k), want.remove(&k));
                }
                prop_assert_eq!(m.len(), want.len());
            }
            for k in 0..3000 {
                prop_assert_eq!(m.get(k), want.get(&k).copied());
            }
        }
    }

    #[test]
    fn small_maps_stay_sorted_and_dense_large_ones_hash() {
        let mut m = KeyMap::default();
        // Keys in a scattered order, as label hashes come.
        for i in 0..61u32 {
            assert!(m.insert_new(i.wrapping_mul(2_654_435_761), i));
        }
        assert!(!m.insert_new(5u32.wrapping_mul(2_654_435_761), 99));
        match &m {
            KeyMap::Sorted(v) => {
                assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
                // Within an eighth (plus the 4-entry minimum step) of full.
                assert!(v.capacity() <= 61 + 61 / 8 + 4, "{}", v.capacity());
            }
            KeyMap::Hashed(_) => panic!("61 entries should stay sorted"),
        }
        assert!(m.heap_bytes() < 61 * 10);
        for i in 61..=SORTED_MAX as u32 {
            m.insert_new(i.wrapping_mul(2_654_435_761), i);
        }
        assert!(matches!(m, KeyMap::Hashed(_)));
        assert_eq!(m.len(), SORTED_MAX + 1);
        for i in 0..=SORTED_MAX as u32 {
            assert_eq!(m.get(i.wrapping_mul(2_654_435_761)), Some(i));
        }
    }

    #[test]
    fn emptied_maps_give_memory_back() {
        let mut m = KeyMap::default();
        for i in 0..500u32 {
            m.insert_new(i, i);
        }
        for i in 0..490u32 {
            assert_eq!(m.remove(i), Some(i));
        }
        assert!(m.heap_bytes() <= 64 * 8, "{}", m.heap_bytes());
        assert_eq!(m.get(495), Some(495));
    }
}

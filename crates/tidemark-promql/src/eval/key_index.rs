//! Finding a key (a label set's bytes) among many without building a
//! [`Labels`](tidemark_storage::Labels) or SipHashing it.
//!
//! Aggregations map every input series to the group of its grouping labels,
//! and range functions check that no two outputs share a label set. Doing
//! that with a `HashMap<Labels, _>` costs, per series, a new label set (an
//! allocation) and a SipHash of it. Here a key is a byte string written
//! into one reused buffer, hashed once with xxh3, and compared byte for byte
//! with the stored keys of the same hash; the stored keys live in one
//! growing arena, so only a series that brings a new key copies bytes, and
//! nothing is allocated per series.
//!
//! Hash collisions are resolved exactly: keys with the same hash are chained
//! and compared in full, so two different keys never share an index.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_64;

/// Ends a name and a value inside an encoded label list: the byte 0xFF never
/// occurs in UTF-8, so two different lists of pairs never encode alike.
const SEP: u8 = 0xFF;

/// Distinct keys, numbered `0, 1, 2, …` in the order they were first seen.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    /// Hash → the newest key with that hash.
    heads: HashMap<u64, usize, BuildHasherDefault<PassThrough>>,
    /// Per key: its bytes' range in `arena`, and the previous key with the
    /// same hash (a chain, usually of one).
    entries: Vec<Entry>,
    arena: Vec<u8>,
    /// Reused by [`find_or_insert_pairs`](Self::find_or_insert_pairs).
    scratch: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    prev: Option<usize>,
}

impl KeyIndex {
    pub(crate) fn new() -> KeyIndex {
        KeyIndex::default()
    }

    /// Number of distinct keys seen.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The index of `key`, and whether it was new (then it gets the next
    /// index, [`len`](Self::len) before the call).
    pub(crate) fn find_or_insert(&mut self, key: &[u8]) -> (usize, bool) {
        self.find_or_insert_hashed(xxh3_64(key), key)
    }

    /// [`find_or_insert`](Self::find_or_insert) for a list of label pairs
    /// (in label order), encoded as `name 0xFF value 0xFF …`.
    pub(crate) fn find_or_insert_pairs<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> (usize, bool) {
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        for (name, value) in pairs {
            key.extend_from_slice(name.as_bytes());
            key.push(SEP);
            key.extend_from_slice(value.as_bytes());
            key.push(SEP);
        }
        let found = self.find_or_insert(&key);
        self.scratch = key;
        found
    }

    /// The lookup itself, with the hash supplied (tests force collisions).
    fn find_or_insert_hashed(&mut self, hash: u64, key: &[u8]) -> (usize, bool) {
        let mut cur = self.heads.get(&hash).copied();
        while let Some(i) = cur {
            let e = self.entries[i];
            if self.arena[e.start..e.end] == *key {
                return (i, false);
            }
            cur = e.prev;
        }
        let i = self.entries.len();
        let start = self.arena.len();
        self.arena.extend_from_slice(key);
        let prev = self.heads.insert(hash, i);
        self.entries.push(Entry { start, end: self.arena.len(), prev });
        (i, true)
    }
}

/// A `Hasher` for keys that are already good 64-bit hashes.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the map's key is a u64); kept correct
        // for any other input all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn same_keys_same_index_in_first_seen_order() {
        let mut ix = KeyIndex::new();
        assert_eq!(ix.find_or_insert(b"a"), (0, true));
        assert_eq!(ix.find_or_insert(b"b"), (1, true));
        assert_eq!(ix.find_or_insert(b"a"), (0, false));
        assert_eq!(ix.find_or_insert(b""), (2, true));
        assert_eq!(ix.find_or_insert(b""), (2, false));
        assert_eq!(ix.len(), 3);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_their_bytes() {
        let mut ix = KeyIndex::new();
        for (i, k) in [&b"x"[..], b"y", b"z"].iter().enumerate() {
            assert_eq!(ix.find_or_insert_hashed(7, k), (i, true));
        }
        assert_eq!(ix.find_or_insert_hashed(7, b"x"), (0, false));
        assert_eq!(ix.find_or_insert_hashed(7, b"z"), (2, false));
        assert_eq!(ix.find_or_insert_hashed(7, b"y"), (1, false));
        assert_eq!(ix.find_or_insert_hashed(8, b"y"), (3, true));
    }

    #[test]
    fn pairs_encode_unambiguously() {
        let mut ix = KeyIndex::new();
        let (a, _) = ix.find_or_insert_pairs([("ab", "c")].into_iter());
        let (b, _) = ix.find_or_insert_pairs([("a", "bc")].into_iter());
        let (c, _) = ix.find_or_insert_pairs([("a", ""), ("b", "c")].into_iter());
        let (d, _) = ix.find_or_insert_pairs(std::iter::empty());
        assert_eq!([a, b, c, d], [0, 1, 2, 3]);
        assert_eq!(ix.find_or_insert_pairs([("a", "bc")].into_iter()), (1, false));
    }

    proptest! {
        /// The index numbers keys exactly as a `HashMap` of owned keys does.
        #[test]
        fn numbers_keys_like_a_hash_map(keys in proptest::collection::vec(
            proptest::collection::vec((0u8..3, 0u8..3), 0..3), 0..60)) {
            let mut ix = KeyIndex::new();
            let mut reference: HashMap<Vec<(String, String)>, usize> = HashMap::new();
            for k in keys {
                let pairs: Vec<(String, String)> = k.iter().map(|(n, v)| (format!("n{n}"), format!("v{v}"))).collect();
                let was_new = !reference.contains_key(&pairs);
                let next = reference.len();
                let want = *reference.entry(pairs.clone()).or_insert(next);
                let (got, new) = ix.find_or_insert_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                prop_assert_eq!(got, want);
                prop_assert_eq!(new, was_new);
            }
            prop_assert_eq!(ix.len(), reference.len());
        }
    }
}

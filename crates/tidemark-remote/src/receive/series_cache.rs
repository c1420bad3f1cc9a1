//! The receiver's map from a series' labels as a sender spells them to the
//! storage series (a [`SeriesHandle`]: its ref and address), trusted on a
//! hit.
//!
//! Senders repeat every series' labels in every request (1.0 even once per
//! sample). Without this map each series of each request is validated,
//! built into a [`Labels`](tidemark_storage::Labels) (one allocation),
//! hashed and looked up in the head's label-hash shards. With it, a series
//! seen before costs one 128-bit hash of its label bytes as sent and one
//! lookup here, and its samples go straight to
//! [`Appender::append_handle`]: no validation, no label walk through the
//! head's symbol table, and (while no series has been removed from the
//! head since the handle was taken) no search of the head's series map.
//! Lookups of a request are made together ([`SeriesCache::get_many`]),
//! one lock per shard, their slots prefetched.
//!
//! # Keys
//!
//! A [`Key`] is xxh3-128 with a seed drawn at random when the cache is
//! created (secret to the process) of
//! - 1.0: the series' label fields exactly as they sit in the request
//!   ([`SeriesView::label_bytes`](super::SeriesView::label_bytes));
//! - 2.0 (and 1.0 labels not sent together): each name and value with its
//!   length in front, under a second seed, so the two spellings never
//!   share a key by construction.
//!
//! In both cases equal input bytes decode to equal label pairs.
//!
//! # Why a hit needs no check
//!
//! (a) An entry is inserted only after the full path validated the pairs
//!     and the validated [`Labels`](tidemark_storage::Labels) are exactly
//!     those pairs (same count: validation only drops pairs with an empty
//!     value, so none was dropped), and the series they name got a sample
//!     appended. Validation is a function of the pairs and of the
//!     receiver's fixed options, so equal pairs are valid again and name
//!     the same series.
//! (b) Series refs are never reused within a process: the head hands out
//!     `next_ref` by `fetch_add` and replay only raises it (`fetch_max`);
//!     nothing lowers it. A handle's address is used only while the
//!     head's removal epoch is the one it was taken at (the invariant of
//!     [`SeriesHandle`]); otherwise the series is searched for by ref. A
//!     series removed since (head truncation) makes the cached handle
//!     fail [`Appender::append_handle`] with `UnknownSeriesRef`, and the
//!     series takes the full path, which overwrites the entry: a stale
//!     entry never reaches another series.
//!     (Refs may repeat across restarts, but this map lives in memory and
//!     starts empty.)
//! (c) Two different label spellings share a key only by a collision of a
//!     128-bit hash: among N live entries the chance any two collide is
//!     about N²/2¹²⁹, i.e. 1.5·10⁻²⁵ at 10 M series. The seed is secret, so
//!     no one can search for colliding label sets offline; and a sender
//!     would gain nothing by one: it can write to any series directly.
//!     What a collision would do (the second series' samples stored under
//!     the first) is shown by a test with the key forced.
//! (d) A hit also vouches for the label bytes' UTF-8 (equal bytes to ones
//!     that were valid).
//!
//! # Memory
//!
//! A slot is 32 bytes: the key (16) and the handle packed into 16
//! ([`PackedHandle`]: the address, and the ref and epoch in one word; a
//! handle that does not fit, past 2^40 refs or 2^24 epochs, is not
//! cached). Each of the [`SHARDS`] tables is a power of two at most three
//! quarters full, so a table is 1.33–2.67 slots per entry: 368,695 series
//! ⇒ 64 × 8,192 slots = 17 MB; 1 M series ⇒ 64 × 32,768 slots = 67 MB. A shard that reaches its share of the
//! capacity is emptied (entries of series that no longer arrive go that
//! way; live ones come back at the cost of one full lookup each).
//!
//! [`Appender::append_handle`]: tidemark_storage::Appender::append_handle

use std::hash::{BuildHasher, Hasher};

use parking_lot::Mutex;
use tidemark_storage::head::{PackedHandle, SeriesHandle};
use tidemark_storage::prefetch::prefetch;
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Shards (a power of two): concurrent requests rarely meet on one lock.
pub(crate) const SHARDS: usize = 64;

/// A series' key: 128 bits of a seeded hash of its labels as sent.
pub(crate) type Key = u128;

/// A value as the cache stores it: packed into (at most) 16 bytes, so a
/// slot with its key is 32.
pub(crate) trait Packable: Copy {
    /// The stored form (`Option` of it 16 bytes for the handle).
    type Packed: Copy;
    /// The stored form; `None` if this value cannot be stored.
    fn pack(&self) -> Option<Self::Packed>;
    /// The value back, exactly.
    fn unpack(p: Self::Packed) -> Self;
}

impl Packable for SeriesHandle {
    type Packed = PackedHandle;
    #[inline]
    fn pack(&self) -> Option<PackedHandle> {
        SeriesHandle::pack(self)
    }
    #[inline]
    fn unpack(p: PackedHandle) -> SeriesHandle {
        p.unpack()
    }
}

/// Tests store plain numbers.
#[cfg(test)]
impl Packable for u64 {
    type Packed = u64;
    fn pack(&self) -> Option<u64> {
        Some(*self)
    }
    fn unpack(p: u64) -> u64 {
        p
    }
}

/// One slot: the key's halves and the (packed) value (`None`: a free
/// slot).
#[derive(Clone, Copy)]
struct Slot<V> {
    lo: u64,
    hi: u64,
    value: Option<V>,
}

impl<V> Slot<V> {
    const FREE: Slot<V> = Slot { lo: 0, hi: 0, value: None };
}

/// One shard: an open-addressing table of slots with linear probing.
/// Nothing is ever removed alone (the shard is emptied when full), so
/// probing needs no tombstones.
struct Shard<V> {
    /// Power-of-two length (or empty before the first insert); at most
    /// three quarters full.
    slots: Vec<Slot<V>>,
    len: usize,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Shard { slots: Vec::new(), len: 0 }
    }
}

#[inline]
fn halves(key: Key) -> (u64, u64) {
    (key as u64, (key >> 64) as u64)
}

impl<V: Copy> Shard<V> {
    /// The slot probing for `key` starts at. The table must not be empty.
    #[inline]
    fn home(&self, key: Key) -> usize {
        key as u64 as usize & (self.slots.len() - 1)
    }

    /// The slot `key` is in, or the free slot where it would go. The
    /// table must not be empty.
    #[inline]
    fn find(&self, key: Key) -> usize {
        let (lo, hi) = halves(key);
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let slot = &self.slots[i];
            if slot.value.is_none() || (slot.lo == lo && slot.hi == hi) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn get(&self, key: Key) -> Option<V> {
        if self.slots.is_empty() {
            return None;
        }
        self.slots[self.find(key)].value
    }

    /// Inserts or overwrites; empties the table first if it holds `cap`
    /// entries and `key` is not one of them.
    fn insert(&mut self, key: Key, value: V, cap: usize) {
        if self.slots.is_empty() {
            self.slots = vec![Slot::FREE; 16];
        }
        let mut i = self.find(key);
        if self.slots[i].value.is_none() {
            if self.len >= cap {
                self.slots.fill(Slot::FREE);
                self.len = 0;
            } else if (self.len + 1) * 4 > self.slots.len() * 3 {
                self.grow();
            }
            i = self.find(key);
            self.len += 1;
        }
        let (lo, hi) = halves(key);
        self.slots[i] = Slot { lo, hi, value: Some(value) };
    }

    fn grow(&mut self) {
        let doubled = vec![Slot::FREE; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        for slot in old {
            if slot.value.is_some() {
                let i = self.find(u128::from(slot.lo) | u128::from(slot.hi) << 64);
                self.slots[i] = slot;
            }
        }
    }
}

/// The shard of `key`: its high half picks it; the table uses the low bits
/// of the low half for the slot.
#[inline]
fn shard_of(key: Key) -> usize {
    (key >> 64) as usize & (SHARDS - 1)
}

/// Key of a series' labels as sent → the series in storage (its
/// [`SeriesHandle`], or for tests any `V`), bounded in size.
pub(crate) struct SeriesCache<V: Packable = SeriesHandle> {
    shards: Box<[Mutex<Shard<V::Packed>>]>,
    per_shard: usize,
    /// Seeds of the two spellings' keys (see the module docs).
    seed_bytes: u64,
    seed_pairs: u64,
    /// Test hook: every key is this one, to show what a collision does.
    #[cfg(test)]
    forced_key: Option<Key>,
}

impl<V: Packable> std::fmt::Debug for SeriesCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesCache").field("capacity", &(self.per_shard * SHARDS)).finish_non_exhaustive()
    }
}

/// 64 random bits from the standard library's per-process random keys
/// (which seed `HashMap`s against the same kind of attack).
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7469_6465_6d61_726b);
    h.finish()
}

impl<V: Packable> SeriesCache<V> {
    /// A cache of at most about `max_entries` entries; 0 disables it.
    pub(crate) fn new(max_entries: usize) -> SeriesCache<V> {
        let per_shard = max_entries.div_ceil(SHARDS);
        let seed_bytes = random_seed();
        // Distinct from `seed_bytes` whatever the draw.
        let seed_pairs = random_seed() | 1;
        SeriesCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            seed_bytes: seed_bytes & !1,
            seed_pairs,
            #[cfg(test)]
            forced_key: None,
        }
    }

    /// [`SeriesCache::new`] whose every key is `key`: a collision on every
    /// pair of series.
    #[cfg(test)]
    pub(crate) fn with_forced_key(max_entries: usize, key: Key) -> SeriesCache<V> {
        SeriesCache { forced_key: Some(key), ..SeriesCache::new(max_entries) }
    }

    /// Whether the cache is in use.
    pub(crate) fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    fn shard(&self, key: Key) -> &Mutex<Shard<V::Packed>> {
        &self.shards[shard_of(key)]
    }

    /// The key of a series: of its label bytes when given (1.0), else of
    /// its pairs. `scratch` is reused between calls.
    #[inline]
    pub(crate) fn key(&self, label_bytes: Option<&[u8]>, pairs: &[(&str, &str)], scratch: &mut Vec<u8>) -> Key {
        #[cfg(test)]
        if let Some(k) = self.forced_key {
            return k;
        }
        match label_bytes {
            Some(b) => xxh3_128_with_seed(b, self.seed_bytes),
            None => {
                scratch.clear();
                for (n, v) in pairs {
                    for s in [n, v] {
                        scratch.extend_from_slice(&(s.len() as u32).to_le_bytes());
                        scratch.extend_from_slice(s.as_bytes());
                    }
                }
                xxh3_128_with_seed(scratch, self.seed_pairs)
            }
        }
    }

    /// The value last stored for `key`, if any.
    #[inline]
    pub(crate) fn get(&self, key: Key) -> Option<V> {
        self.shard(key).lock().get(key).map(V::unpack)
    }

    /// [`SeriesCache::get`] of many keys at once: `out[i]` is set to the
    /// entry of each `(key, i)` of `keys` (which this reorders). Each
    /// shard's lock is taken once, and the slots of all its keys are
    /// prefetched before the first is read, so their cache misses overlap
    /// instead of following one another (a table of several MB does not
    /// stay in the CPU's caches).
    pub(crate) fn get_many(&self, keys: &mut [(Key, u32)], out: &mut [Option<V>]) {
        keys.sort_unstable_by_key(|&(k, _)| shard_of(k));
        for group in keys.chunk_by(|a, b| shard_of(a.0) == shard_of(b.0)) {
            let shard = self.shards[shard_of(group[0].0)].lock();
            if shard.slots.is_empty() {
                continue;
            }
            for &(k, _) in group {
                prefetch(&shard.slots[shard.home(k)]);
            }
            for &(k, i) in group {
                out[i as usize] = shard.get(k).map(V::unpack);
            }
        }
    }

    /// Stores `value` for `key`, emptying the shard first when full. The
    /// caller upholds the module's invariant (a). A value that cannot be
    /// packed is not stored (an older entry for `key`, if any, stays: it
    /// names the same series, and a stale handle is caught by its epoch).
    pub(crate) fn insert(&self, key: Key, value: V) {
        if !self.enabled() {
            return;
        }
        let Some(packed) = value.pack() else { return };
        self.shard(key).lock().insert(key, packed, self.per_shard);
    }

    /// Entries held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    /// A key spread like a real one from a small number.
    fn spread(k: u64) -> Key {
        u128::from(xxh3_64(&k.to_le_bytes())) | u128::from(xxh3_64(&(!k).to_le_bytes())) << 64
    }

    #[test]
    fn keys_separate_names_from_values_and_spellings() {
        let c = SeriesCache::<u64>::new(100);
        let mut s = Vec::new();
        let a = c.key(None, &[("ab", "c")], &mut s);
        let b = c.key(None, &[("a", "bc")], &mut s);
        let d = c.key(None, &[("a", "b"), ("c", "")], &mut s);
        assert_ne!(a, b);
        assert_ne!(a, d);
        assert_eq!(a, c.key(None, &[("ab", "c")], &mut s));
        // Bytes and pairs are hashed under different seeds: the pairs'
        // scratch bytes given as label bytes make another key.
        c.key(None, &[("ab", "c")], &mut s);
        let same_bytes = s.clone();
        assert_ne!(c.key(Some(&same_bytes), &[], &mut s), a);
        assert_eq!(c.key(Some(b"xyz"), &[], &mut s), c.key(Some(b"xyz"), &[("ignored", "")], &mut s));
        // Seeds differ between caches (processes).
        let other = SeriesCache::<u64>::new(100);
        assert_ne!(other.key(Some(b"xyz"), &[], &mut s), c.key(Some(b"xyz"), &[], &mut s));
    }

    #[test]
    fn table_grows_and_overwrites() {
        let mut t = Shard::<u64>::default();
        assert_eq!(t.get(5), None);
        // Keys sharing their low bits probe past each other; keys equal in
        // one half differ in the other.
        for k in 1..=1000u128 {
            t.insert(k << 20, k as u64, usize::MAX);
            t.insert(k, k as u64 + 7, usize::MAX);
            t.insert(k << 64, k as u64 + 9, usize::MAX);
        }
        assert_eq!(t.len, 3000);
        assert!(t.len * 4 <= t.slots.len() * 3);
        for k in 1..=1000u128 {
            assert_eq!(t.get(k << 20), Some(k as u64));
            assert_eq!(t.get(k), Some(k as u64 + 7));
            assert_eq!(t.get(k << 64), Some(k as u64 + 9));
        }
        t.insert(3, 42, usize::MAX);
        assert_eq!((t.get(3), t.len), (Some(42), 3000));
        assert_eq!(t.get(1001), None);
        // The key 0 is a key like any other (emptiness is in the value).
        t.insert(0, 5, usize::MAX);
        assert_eq!(t.get(0), Some(5));
    }

    proptest::proptest! {
        /// Against a plain map: a hit is always the last ref stored for the
        /// key, and nothing is lost until a shard reaches its capacity.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((0u64..40, 1u64..5, proptest::bool::ANY), 1..300), cap in 1usize..40) {
            let c = SeriesCache::<u64>::new(cap * SHARDS);
            let mut model = std::collections::HashMap::new();
            for (k, r, insert) in ops {
                // Keys 0 and 1 differ in one bit of one half; spread the rest.
                let key = if k < 2 { u128::from(k) } else { spread(k) & !0xff };
                if insert {
                    c.insert(key, r);
                    model.insert(key, r);
                    proptest::prop_assert_eq!(c.get(key), Some(r));
                } else if let Some(got) = c.get(key) {
                    proptest::prop_assert_eq!(Some(&got), model.get(&key));
                }
            }
            // `get_many` answers as `get` does, key by key.
            let mut keys: Vec<(Key, u32)> = (0..45u64)
                .map(|k| if k < 2 { u128::from(k) } else { spread(k) & !0xff })
                .zip(0..)
                .collect();
            let mut many = vec![None; keys.len()];
            c.get_many(&mut keys, &mut many);
            for (k, i) in keys {
                proptest::prop_assert_eq!(many[i as usize], c.get(k));
            }
            if cap >= 40 {
                for (k, r) in &model {
                    proptest::prop_assert_eq!(c.get(*k), Some(*r));
                }
            }
        }
    }

    #[test]
    fn slots_are_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot<PackedHandle>>(), 32);
    }

    #[test]
    fn handles_round_trip_and_unpackable_ones_are_not_stored() {
        use tidemark_storage::head::{Head, HeadOptions};
        use tidemark_storage::Labels;
        let head = Head::new(HeadOptions::default(), None);
        let mut app = head.appender();
        let r = app.append(&Labels::new([("__name__", "up")]).unwrap(), 1_000, 1.0).unwrap();
        let wide = 1u64 << PackedHandle::REF_BITS;
        head.replay_series(wide, Labels::new([("__name__", "wide")]).unwrap());
        let c = SeriesCache::<SeriesHandle>::new(1000);
        let h = app.handle(r).unwrap();
        c.insert(7, h);
        assert_eq!(c.get(7), Some(h));
        // A ref past 2^40 does not fit the packed word: not cached, and an
        // older entry for the key stays as it was.
        let w = app.handle(wide).unwrap();
        assert_eq!(w.series_ref(), wide);
        assert_eq!(w.pack(), None);
        c.insert(7, w);
        c.insert(8, w);
        assert_eq!((c.get(7), c.get(8)), (Some(h), None));
    }

    #[test]
    fn bounded_and_disabled() {
        let c = SeriesCache::<u64>::new(SHARDS * 2);
        for k in 1..10_000u64 {
            let key = spread(k);
            c.insert(key, k);
            assert_eq!(c.get(key), Some(k));
        }
        assert!(c.len() <= SHARDS * 2);
        let off = SeriesCache::<u64>::new(0);
        assert!(!off.enabled());
        off.insert(1, 1);
        assert_eq!(off.get(1), None);
    }
}

//! The head's inverted index: label name → label value → sorted series refs.
//!
//! Names and values are stored once each (the map keys), so a value shared
//! by many series costs its bytes once plus 4 bytes per series (8 once refs
//! pass `u32::MAX`, see [`RefList`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::postings::PostingsIndex;
use crate::Labels;

/// A small, fast, non-cryptographic hasher (FxHash's multiply-rotate) for
/// in-memory maps keyed by refs, label hashes or label strings. It is never
/// used for anything persisted.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The inverted index. Every list is sorted and free of duplicates.
#[derive(Default)]
pub(crate) struct MemIndex {
    postings: FxHashMap<Box<str>, FxHashMap<Box<str>, RefList>>,
    all: RefList,
}

/// A sorted, duplicate-free list of series refs.
///
/// The head's refs count up from 1, so they fit in 32 bits until four
/// billion series have been created: the list holds 4-byte ids (half the
/// memory of the 7 or so lists every series is in) and widens to 8-byte
/// ids for good the first time a larger ref arrives. Readers always get
/// `u64`s.
///
/// Large lists grow by an eighth of their length instead of doubling, so
/// the big lists (`job`, common metric names) carry at most ~12% spare
/// capacity instead of up to 50%.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefList {
    /// Every ref fits in `u32`.
    Narrow(Vec<u32>),
    /// Some ref did not fit in `u32`.
    Wide(Vec<u64>),
}

impl Default for RefList {
    fn default() -> RefList {
        RefList::Narrow(Vec::new())
    }
}

/// Inserts `r` into the sorted list `v`, growing it by an eighth of its
/// length (at least 4) when full. Refs are mostly created in increasing
/// order, so this is usually a push.
fn insert_sorted<T: Ord + Copy>(v: &mut Vec<T>, r: T) {
    let at = match v.last() {
        Some(&last) if last >= r => match v.binary_search(&r) {
            Ok(_) => return,
            Err(i) => i,
        },
        _ => v.len(),
    };
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(4));
    }
    v.insert(at, r);
}

impl RefList {
    /// A list holding only `r`, with capacity 1 (most values belong to
    /// few series).
    fn one(r: u64) -> RefList {
        match u32::try_from(r) {
            Ok(n) => RefList::Narrow(vec![n]),
            Err(_) => RefList::Wide(vec![r]),
        }
    }

    /// Inserts `r` (no-op if present).
    fn insert(&mut self, r: u64) {
        match self {
            RefList::Narrow(v) => match u32::try_from(r) {
                Ok(n) => insert_sorted(v, n),
                Err(_) => {
                    let mut wide: Vec<u64> = v.iter().map(|&n| u64::from(n)).collect();
                    insert_sorted(&mut wide, r);
                    *self = RefList::Wide(wide);
                }
            },
            RefList::Wide(v) => insert_sorted(v, r),
        }
    }

    /// Keeps the refs for which `keep` holds; releases spare capacity when
    /// more than half of it is unused.
    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        fn shrink<T>(v: &mut Vec<T>) {
            if v.capacity() > 2 * v.len() + 4 {
                v.shrink_to_fit();
            }
        }
        match self {
            RefList::Narrow(v) => {
                v.retain(|&n| keep(u64::from(n)));
                shrink(v);
            }
            RefList::Wide(v) => {
                v.retain(|&r| keep(r));
                shrink(v);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            RefList::Narrow(v) => v.len(),
            RefList::Wide(v) => v.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn first(&self) -> Option<u64> {
        match self {
            RefList::Narrow(v) => v.first().map(|&n| u64::from(n)),
            RefList::Wide(v) => v.first().copied(),
        }
    }

    fn last(&self) -> Option<u64> {
        match self {
            RefList::Narrow(v) => v.last().map(|&n| u64::from(n)),
            RefList::Wide(v) => v.last().copied(),
        }
    }

    /// The refs, in order.
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (narrow, wide) = match self {
            RefList::Narrow(v) => (&v[..], &[][..]),
            RefList::Wide(v) => (&[][..], &v[..]),
        };
        narrow.iter().map(|&n| u64::from(n)).chain(wide.iter().copied())
    }

    /// The refs as a new vector.
    fn to_vec(&self) -> Vec<u64> {
        match self {
            RefList::Narrow(v) => v.iter().map(|&n| u64::from(n)).collect(),
            RefList::Wide(v) => v.clone(),
        }
    }

    /// Heap bytes reserved.
    fn heap_bytes(&self) -> usize {
        match self {
            RefList::Narrow(v) => v.capacity() * 4,
            RefList::Wide(v) => v.capacity() * 8,
        }
    }
}

impl MemIndex {
    /// Adds series `r` with `labels`.
    pub(crate) fn add(&mut self, r: u64, labels: &Labels) {
        self.all.insert(r);
        for l in labels {
            let values = match self.postings.get_mut(l.name) {
                Some(v) => v,
                None => self.postings.entry(l.name.into()).or_default(),
            };
            match values.get_mut(l.value) {
                Some(list) => list.insert(r),
                None => {
                    values.insert(l.value.into(), RefList::one(r));
                }
            }
        }
    }

    /// Removes the series in `removed` (sorted refs, with their labels).
    pub(crate) fn remove(&mut self, removed: &[(u64, Labels)]) {
        if removed.is_empty() {
            return;
        }
        let mut refs: Vec<u64> = removed.iter().map(|(r, _)| *r).collect();
        refs.sort_unstable();
        let gone = |r: &u64| refs.binary_search(r).is_ok();
        self.all.retain(|r| !gone(&r));
        // Touch each affected list once, whatever the number of removals.
        let mut keys: Vec<(&str, &str)> =
            removed.iter().flat_map(|(_, l)| l.iter().map(|l| (l.name, l.value))).collect();
        keys.sort_unstable();
        keys.dedup();
        for (name, value) in keys {
            let Some(values) = self.postings.get_mut(name) else { continue };
            if let Some(list) = values.get_mut(value) {
                list.retain(|r| !gone(&r));
                if list.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.postings.remove(name);
            }
        }
    }

    /// Number of series indexed.
    pub(crate) fn all_postings_len(&self) -> usize {
        self.all.len()
    }

    /// Every label name, sorted.
    pub(crate) fn label_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.postings.keys().map(|k| k.to_string()).collect();
        v.sort_unstable();
        v
    }

    /// Cardinality statistics, each list the `limit` largest entries by
    /// count (ties by name), as Prometheus' `MemPostings.Stats` computes
    /// them: series per value of `by_label` (normally `__name__`), distinct
    /// values per label name, bytes of the distinct values per label name
    /// (Prometheus 2.x's measure), and series per `name=value` pair.
    pub(crate) fn cardinality(&self, by_label: &str, limit: usize) -> IndexCardinality {
        let mut metrics = TopK::new(limit);
        let mut names = TopK::new(limit);
        let mut bytes = TopK::new(limit);
        let mut pairs = TopK::new(limit);
        let mut num_label_pairs = 0u64;
        for (name, values) in &self.postings {
            names.push(values.len() as u64, || name.to_string());
            num_label_pairs += values.len() as u64;
            let mut size = 0u64;
            for (value, refs) in values {
                let n = refs.len() as u64;
                if &**name == by_label {
                    metrics.push(n, || value.to_string());
                }
                // Only pairs that can enter the top list pay for a string.
                pairs.push(n, || format!("{name}={value}"));
                size += value.len() as u64;
            }
            bytes.push(size, || name.to_string());
        }
        IndexCardinality {
            num_label_pairs,
            series_count_by_metric_name: metrics.into_sorted(),
            label_value_count_by_label_name: names.into_sorted(),
            memory_in_bytes_by_label_name: bytes.into_sorted(),
            series_count_by_label_value_pair: pairs.into_sorted(),
        }
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Box<str>, RefList)>() + 1;
        self.all.heap_bytes()
            + self
                .postings
                .iter()
                .map(|(k, vs)| {
                    k.len()
                        + vs.capacity() * entry
                        + vs.iter().map(|(v, l)| v.len() + l.heap_bytes()).sum::<usize>()
                        + std::mem::size_of::<(Box<str>, FxHashMap<Box<str>, RefList>)>()
                })
                .sum::<usize>()
    }
}

/// What [`MemIndex::cardinality`] computes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IndexCardinality {
    pub(crate) num_label_pairs: u64,
    pub(crate) series_count_by_metric_name: Vec<(String, u64)>,
    pub(crate) label_value_count_by_label_name: Vec<(String, u64)>,
    pub(crate) memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub(crate) series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// The `k` entries with the largest counts (ties: smallest name), kept in a
/// min-heap so a pass over `n` entries costs O(n log k).
struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, std::cmp::Reverse<String>)>>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK { k, heap: std::collections::BinaryHeap::with_capacity(k.min(1024) + 1) }
    }

    /// Offers an entry; `name` is only built when the entry is kept.
    fn push(&mut self, count: u64, name: impl FnOnce() -> String) {
        use std::cmp::Reverse;
        if self.k == 0 {
            return;
        }
        if self.heap.len() == self.k {
            let Some(Reverse((min, _))) = self.heap.peek() else { return };
            if count < *min {
                return;
            }
        }
        self.heap.push(Reverse((count, Reverse(name()))));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    /// Largest count first; equal counts by name.
    fn into_sorted(self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.heap.into_iter().map(|r| (r.0 .1 .0, r.0 .0)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

impl PostingsIndex for MemIndex {
    type Id = u64;

    fn all_postings(&self) -> Vec<u64> {
        self.all.to_vec()
    }

    fn label_values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> =
            self.postings.get(name).map(|vs| vs.keys().map(|k| k.to_string()).collect()).unwrap_or_default();
        v.sort_unstable();
        v
    }

    fn postings(&self, name: &str, value: &str) -> Vec<u64> {
        self.postings.get(name).and_then(|vs| vs.get(value)).map(RefList::to_vec).unwrap_or_default()
    }

    fn postings_for_values(&self, name: &str, values: &[&str]) -> Vec<u64> {
        let Some(vs) = self.postings.get(name) else { return Vec::new() };
        let lists: Vec<&RefList> = values.iter().filter_map(|v| vs.get(*v)).collect();
        merge_all(&lists)
    }
}

/// Union of sorted, duplicate-free lists by a balanced tree of pairwise
/// merges: O(total · log(lists)), no sorting.
fn merge_all(lists: &[&RefList]) -> Vec<u64> {
    match lists {
        [] => return Vec::new(),
        [one] => return one.to_vec(),
        _ => {}
    }
    // Many lists over a dense range of refs (e.g. `instance=~".+"`): a
    // bitmap over the range is linear in the input.
    let total: usize = lists.iter().map(|l| l.len()).sum();
    let lo = lists.iter().filter_map(|l| l.first()).min().unwrap_or(0);
    let hi = lists.iter().filter_map(|l| l.last()).max().unwrap_or(0);
    let span = hi.saturating_sub(lo).saturating_add(1);
    if lists.len() > 16 && span / 64 <= total as u64 {
        let mut bits = vec![0u64; span.div_ceil(64) as usize];
        for r in lists.iter().flat_map(|l| l.iter()) {
            let i = r - lo;
            bits[(i / 64) as usize] |= 1 << (i % 64);
        }
        let mut out = Vec::with_capacity(total);
        for (w, &word) in bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                out.push(lo + w as u64 * 64 + u64::from(word.trailing_zeros()));
                word &= word - 1;
            }
        }
        return out;
    }
    let mut work: Vec<Vec<u64>> = Vec::with_capacity(lists.len().div_ceil(2));
    for pair in lists.chunks(2) {
        work.push(match pair {
            [a, b] => merge_two(&a.to_vec(), &b.to_vec()),
            [a] => a.to_vec(),
            _ => Vec::new(),
        });
    }
    while work.len() > 1 {
        let mut next = Vec::with_capacity(work.len().div_ceil(2));
        let mut it = work.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => merge_two(&a, &b),
                None => a,
            });
        }
        work = next;
    }
    work.pop().unwrap_or_default()
}

fn merge_two(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out.push(x.min(y));
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_keep_lists_sorted_and_drop_empty_keys() {
        let a = Labels::new([("__name__", "up"), ("job", "a")]).unwrap();
        let b = Labels::new([("__name__", "up"), ("job", "b")]).unwrap();
        let mut ix = MemIndex::default();
        ix.add(5, &a);
        ix.add(2, &b);
        ix.add(9, &b);
        assert_eq!(ix.all_postings(), vec![2, 5, 9]);
        assert_eq!(ix.postings("__name__", "up"), vec![2, 5, 9]);
        assert_eq!(ix.label_values("job"), vec!["a", "b"]);
        assert_eq!(ix.postings_for_values("job", &["b", "a", "zz"]), vec![2, 5, 9]);
        ix.remove(&[(5, a.clone()), (2, b.clone())]);
        assert_eq!(ix.all_postings(), vec![9]);
        assert_eq!(ix.label_values("job"), vec!["b"]);
        assert_eq!(ix.postings("job", "a"), Vec::<u64>::new());
        ix.remove(&[(9, b)]);
        assert!(ix.label_names().is_empty());
    }

    #[test]
    fn cardinality_counts_series_values_bytes_and_pairs() {
        let mut ix = MemIndex::default();
        let series = [
            [("__name__", "up"), ("job", "api"), ("instance", "a")],
            [("__name__", "up"), ("job", "api"), ("instance", "b")],
            [("__name__", "up"), ("job", "db"), ("instance", "c")],
            [("__name__", "http_requests_total"), ("job", "api"), ("instance", "a")],
        ];
        for (r, s) in series.iter().enumerate() {
            ix.add(r as u64, &Labels::new(*s).unwrap());
        }
        let c = ix.cardinality("__name__", 10);
        let own = |v: &[(&str, u64)]| v.iter().map(|(n, c)| (n.to_string(), *c)).collect::<Vec<_>>();
        assert_eq!(c.num_label_pairs, 2 + 2 + 3);
        assert_eq!(c.series_count_by_metric_name, own(&[("up", 3), ("http_requests_total", 1)]));
        assert_eq!(c.label_value_count_by_label_name, own(&[("instance", 3), ("__name__", 2), ("job", 2)]));
        assert_eq!(c.memory_in_bytes_by_label_name, own(&[("__name__", 21), ("job", 5), ("instance", 3)]));
        assert_eq!(c.series_count_by_label_value_pair.len(), 7);
        assert_eq!(
            c.series_count_by_label_value_pair[..3],
            own(&[("__name__=up", 3), ("job=api", 3), ("instance=a", 2)])
        );
        // The limit keeps the largest entries, ties broken by name.
        let top = ix.cardinality("__name__", 2);
        assert_eq!(top.series_count_by_label_value_pair, own(&[("__name__=up", 3), ("job=api", 3)]));
        assert_eq!(top.label_value_count_by_label_name, own(&[("instance", 3), ("__name__", 2)]));
        assert!(ix.cardinality("__name__", 0).series_count_by_metric_name.is_empty());
    }

    #[test]
    fn merge_all_is_a_sorted_union() {
        let list = |v: &[u64]| {
            let mut l = RefList::default();
            v.iter().for_each(|&r| l.insert(r));
            l
        };
        let lists: Vec<RefList> = [&[1, 4, 9][..], &[2, 4], &[], &[0, 9, 10], &[3]].into_iter().map(list).collect();
        let refs: Vec<&RefList> = lists.iter().collect();
        assert_eq!(merge_all(&refs), vec![0, 1, 2, 3, 4, 9, 10]);
        assert_eq!(merge_all(&refs[..1]), vec![1, 4, 9]);
        assert!(merge_all(&[]).is_empty());
        // Enough lists to take the bitmap path, with overlaps.
        let many: Vec<Vec<u64>> = (0..40u64).map(|i| (0..50).map(|k| 1000 + i * 7 + k * 13).collect()).collect();
        let lists: Vec<RefList> = many.iter().map(|v| list(v)).collect();
        let refs: Vec<&RefList> = lists.iter().collect();
        let mut want: Vec<u64> = many.iter().flatten().copied().collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(merge_all(&refs), want);
    }

    #[test]
    fn refs_past_u32_widen_the_list_and_keep_order() {
        let a = Labels::new([("__name__", "up"), ("job", "a")]).unwrap();
        let big = u64::from(u32::MAX) + 7;
        let mut ix = MemIndex::default();
        ix.add(3, &a);
        ix.add(big, &a);
        ix.add(1, &a);
        assert_eq!(ix.postings("job", "a"), vec![1, 3, big]);
        assert_eq!(ix.all_postings(), vec![1, 3, big]);
        assert!(matches!(ix.all, RefList::Wide(_)));
        assert_eq!(ix.postings_for_values("job", &["a"]), vec![1, 3, big]);
        ix.remove(&[(big, a.clone())]);
        assert_eq!(ix.postings("job", "a"), vec![1, 3]);
    }

    #[test]
    fn narrow_lists_take_four_bytes_per_ref() {
        let mut l = RefList::default();
        for r in 1..=1000u64 {
            l.insert(r);
        }
        // Growth by an eighth: at most ~1/8 spare (plus the minimum step).
        assert!(l.heap_bytes() <= 1000 * 4 * 9 / 8 + 16, "{}", l.heap_bytes());
        assert_eq!(RefList::one(5).heap_bytes(), 4);
    }

    proptest::proptest! {
        /// A `RefList` behaves as a sorted set of `u64`, whatever the mix
        /// of refs below and above `u32::MAX` and the order of inserts.
        #[test]
        fn ref_list_is_a_sorted_set(
            ops in proptest::collection::vec((0u8..3, proptest::prop_oneof![0u64..200, (u64::from(u32::MAX) - 3)..(u64::from(u32::MAX) + 3)]), 0..200),
        ) {
            let mut l = RefList::default();
            let mut model = std::collections::BTreeSet::new();
            for (op, r) in ops {
                if op < 2 {
                    l.insert(r);
                    model.insert(r);
                } else {
                    l.retain(|x| x != r);
                    model.remove(&r);
                }
                proptest::prop_assert_eq!(l.to_vec(), model.iter().copied().collect::<Vec<_>>());
                proptest::prop_assert_eq!(l.iter().collect::<Vec<_>>(), l.to_vec());
                proptest::prop_assert_eq!(l.len(), model.len());
                proptest::prop_assert_eq!(l.first(), model.first().copied());
                proptest::prop_assert_eq!(l.last(), model.last().copied());
            }
        }
    }
}

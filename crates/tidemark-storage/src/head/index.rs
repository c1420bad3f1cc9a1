//! The head's inverted index: label name → label value → sorted series refs.
//!
//! Names and values are stored once each (the map keys), so a value shared
//! by many series costs its bytes once plus 8 bytes per series.

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
    postings: FxHashMap<Box<str>, FxHashMap<Box<str>, Vec<u64>>>,
    all: Vec<u64>,
}

/// Inserts `r` into the sorted list `v`. Refs are mostly created in
/// increasing order, so this is usually a push.
fn insert_sorted(v: &mut Vec<u64>, r: u64) {
    match v.last() {
        Some(&last) if last >= r => {
            if let Err(i) = v.binary_search(&r) {
                v.insert(i, r);
            }
        }
        _ => v.push(r),
    }
}

impl MemIndex {
    /// Adds series `r` with `labels`.
    pub(crate) fn add(&mut self, r: u64, labels: &Labels) {
        insert_sorted(&mut self.all, r);
        for l in labels {
            let values = match self.postings.get_mut(l.name) {
                Some(v) => v,
                None => self.postings.entry(l.name.into()).or_default(),
            };
            match values.get_mut(l.value) {
                Some(list) => insert_sorted(list, r),
                None => {
                    // Most values belong to few series: start exact-size
                    // (`vec![r]` allocates capacity 1).
                    values.insert(l.value.into(), vec![r]);
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
        self.all.retain(|r| !gone(r));
        // Touch each affected list once, whatever the number of removals.
        let mut keys: Vec<(&str, &str)> =
            removed.iter().flat_map(|(_, l)| l.iter().map(|l| (l.name, l.value))).collect();
        keys.sort_unstable();
        keys.dedup();
        for (name, value) in keys {
            let Some(values) = self.postings.get_mut(name) else { continue };
            if let Some(list) = values.get_mut(value) {
                list.retain(|r| !gone(r));
                if list.is_empty() {
                    values.remove(value);
                } else if list.capacity() > 2 * list.len() + 4 {
                    list.shrink_to_fit();
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
        let entry = std::mem::size_of::<(Box<str>, Vec<u64>)>() + 1;
        self.all.capacity() * 8
            + self
                .postings
                .iter()
                .map(|(k, vs)| {
                    k.len()
                        + vs.capacity() * entry
                        + vs.iter().map(|(v, l)| v.len() + l.capacity() * 8).sum::<usize>()
                        + std::mem::size_of::<(Box<str>, FxHashMap<Box<str>, Vec<u64>>)>()
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
        self.all.clone()
    }

    fn label_values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> =
            self.postings.get(name).map(|vs| vs.keys().map(|k| k.to_string()).collect()).unwrap_or_default();
        v.sort_unstable();
        v
    }

    fn postings(&self, name: &str, value: &str) -> Vec<u64> {
        self.postings.get(name).and_then(|vs| vs.get(value)).cloned().unwrap_or_default()
    }

    fn postings_for_values(&self, name: &str, values: &[&str]) -> Vec<u64> {
        let Some(vs) = self.postings.get(name) else { return Vec::new() };
        let lists: Vec<&Vec<u64>> = values.iter().filter_map(|v| vs.get(*v)).collect();
        merge_all(&lists)
    }
}

/// Union of sorted, duplicate-free lists by a balanced tree of pairwise
/// merges: O(total · log(lists)), no sorting.
fn merge_all(lists: &[&Vec<u64>]) -> Vec<u64> {
    match lists {
        [] => return Vec::new(),
        [one] => return (*one).clone(),
        _ => {}
    }
    // Many lists over a dense range of refs (e.g. `instance=~".+"`): a
    // bitmap over the range is linear in the input.
    let total: usize = lists.iter().map(|l| l.len()).sum();
    let lo = lists.iter().filter_map(|l| l.first()).min().copied().unwrap_or(0);
    let hi = lists.iter().filter_map(|l| l.last()).max().copied().unwrap_or(0);
    let span = hi.saturating_sub(lo).saturating_add(1);
    if lists.len() > 16 && span / 64 <= total as u64 {
        let mut bits = vec![0u64; span.div_ceil(64) as usize];
        for &r in lists.iter().flat_map(|l| l.iter()) {
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
            [a, b] => merge_two(a, b),
            [a] => (*a).clone(),
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
        let lists: Vec<Vec<u64>> = vec![vec![1, 4, 9], vec![2, 4], vec![], vec![0, 9, 10], vec![3]];
        let refs: Vec<&Vec<u64>> = lists.iter().collect();
        assert_eq!(merge_all(&refs), vec![0, 1, 2, 3, 4, 9, 10]);
        assert_eq!(merge_all(&refs[..1]), vec![1, 4, 9]);
        assert!(merge_all(&[]).is_empty());
        // Enough lists to take the bitmap path, with overlaps.
        let many: Vec<Vec<u64>> = (0..40u64).map(|i| (0..50).map(|k| 1000 + i * 7 + k * 13).collect()).collect();
        let refs: Vec<&Vec<u64>> = many.iter().collect();
        let mut want: Vec<u64> = many.iter().flatten().copied().collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(merge_all(&refs), want);
    }
}

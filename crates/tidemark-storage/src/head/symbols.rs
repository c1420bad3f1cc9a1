//! The head's symbol table: every label name and value held by a head
//! series, stored once, and each series' labels as a short string of
//! symbol ids.
//!
//! Most label names and values repeat across series (`__name__`, `job`,
//! `instance`, `le`, …), so a series' label set as ids costs ~1–2 bytes
//! per string instead of the string itself: ~25 bytes for 7 pairs where
//! the [`Labels`] buffer took ~170.
//!
//! Invariants:
//! - a symbol's reference count is the number of its occurrences in the
//!   [`SymLabels`] of live series; a symbol whose count drops to 0 is freed
//!   at once (its string dropped, its id put on the free list), so the
//!   table holds exactly the strings of the live series and never grows
//!   without bound under churn;
//! - ids are reused smallest-first from the free list, so they stay small
//!   and their varints short;
//! - a [`SymLabels`] only ever holds ids interned for it and not yet
//!   released, so resolving them cannot fail.
//!
//! Locking: the head keeps the table behind one `RwLock`, taken only for
//! short moments and always last (never while waiting for a shard or
//! index lock): readers resolve ids under the read lock; series creation
//! (intern) and removal (release) take the write lock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::index::FxHashMap;
use crate::labels::{Label, Labels};
use crate::varint::put_uvarint;

/// Interned label strings with reference counts.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    /// id → string; `None` for a freed id.
    strings: Vec<Option<Arc<str>>>,
    /// id → occurrences in live series' labels.
    counts: Vec<u32>,
    ids: FxHashMap<Arc<str>, u32>,
    /// Freed ids, smallest first.
    free: BinaryHeap<std::cmp::Reverse<u32>>,
}

/// A series' labels as symbol ids, with bytes the series attaches after
/// them, in one exact-size allocation:
/// `uvarint(len(ids)) ids tail`, where `ids` holds for each pair in name
/// order `uvarint(name id) uvarint(value id)`.
///
/// The tail is opaque here: the head's series keep the references of their
/// closed chunks in it (`series.rs`), so a series' labels and chunk list
/// share one allocation (and one pointer in the series) instead of two.
/// Empty (the default) means no labels and no tail.
#[derive(Debug, Clone, Default)]
pub(crate) struct SymLabels(Box<[u8]>);

impl SymLabels {
    /// A buffer of `ids` followed by `tail`.
    fn build(ids: &[u8], tail: &[u8]) -> SymLabels {
        let mut out = Vec::with_capacity(2 + ids.len() + tail.len());
        put_uvarint(&mut out, ids.len() as u64);
        out.extend_from_slice(ids);
        out.extend_from_slice(tail);
        SymLabels(out.into_boxed_slice())
    }

    /// Where the ids start and end in the buffer.
    #[inline]
    fn ids_span(&self) -> (usize, usize) {
        let mut pos = 0;
        // The prefix is always a well-formed length (written by `build`);
        // an empty buffer has no prefix, no ids and no tail.
        let len = next_len(&self.0, &mut pos);
        (pos, (pos + len).min(self.0.len()))
    }

    /// The id string.
    #[inline]
    fn ids(&self) -> &[u8] {
        let (a, b) = self.ids_span();
        &self.0[a..b]
    }

    /// The bytes attached after the ids.
    #[inline]
    pub(crate) fn tail(&self) -> &[u8] {
        &self.0[self.ids_span().1..]
    }

    /// The attached bytes, to overwrite in place (same length).
    pub(crate) fn tail_mut(&mut self) -> &mut [u8] {
        let end = self.ids_span().1;
        &mut self.0[end..]
    }

    /// Replaces the attached bytes by `tail` (one reallocation: the buffer
    /// stays exact-size).
    pub(crate) fn set_tail(&mut self, tail: &[u8]) {
        *self = SymLabels::build(self.ids(), tail);
    }

    /// Appends `more` to the attached bytes (one reallocation).
    pub(crate) fn extend_tail(&mut self, more: &[u8]) {
        let mut buf = std::mem::take(&mut self.0).into_vec();
        if buf.is_empty() {
            // No prefix yet: no labels.
            buf.push(0);
        }
        buf.reserve_exact(more.len());
        buf.extend_from_slice(more);
        self.0 = buf.into_boxed_slice();
    }

    /// Heap bytes of the ids and their length prefix (the tail is its
    /// owner's to count).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ids_span().1
    }

    /// Where the id string starts (for a prefetch hint).
    #[inline]
    pub(crate) fn addr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// A view that resolves the ids through `syms` (which must be the table
    /// these labels were interned in).
    pub(crate) fn view<'a>(&'a self, syms: &'a SymbolTable) -> LabelsView<'a> {
        LabelsView { ids: self.ids(), syms }
    }
}

/// Decodes the ids' length prefix at `pos` (0 if there is none).
#[inline]
fn next_len(b: &[u8], pos: &mut usize) -> usize {
    // Fast path: fewer than 128 bytes of ids, a one-byte prefix.
    match b.first() {
        None => 0,
        Some(&n) if n < 0x80 => {
            *pos = 1;
            usize::from(n)
        }
        Some(_) => next_id(b, pos).map_or(0, |n| n as usize),
    }
}

impl SymbolTable {
    /// The id of `s`, adding it if new; counts one more use.
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            let c = &mut self.counts[id as usize];
            *c = c.saturating_add(1);
            return id;
        }
        let arc: Arc<str> = Arc::from(s);
        let id = match self.pop_free() {
            Some(id) => {
                self.strings[id as usize] = Some(arc.clone());
                self.counts[id as usize] = 1;
                id
            }
            None => {
                // More than u32::MAX distinct strings cannot fit in memory
                // besides their series anyway.
                let id = u32::try_from(self.strings.len()).expect("fewer than 2^32 symbols");
                self.strings.push(Some(arc.clone()));
                self.counts.push(1);
                id
            }
        };
        self.ids.insert(arc, id);
        id
    }

    /// One use of `id` fewer; frees it at the last. A saturated count
    /// (2^32 − 1 uses) is never decremented: such a symbol stays.
    fn release(&mut self, id: u32) {
        let i = id as usize;
        let Some(c) = self.counts.get_mut(i) else { return };
        if *c == u32::MAX || *c == 0 {
            return;
        }
        *c -= 1;
        if *c == 0 {
            if let Some(s) = self.strings[i].take() {
                self.ids.remove(&*s);
            }
            self.free.push(std::cmp::Reverse(id));
            // Trailing free ids shrink the vectors, so after mass removals
            // they are bounded by the live symbols. The free list may then
            // hold ids past the end (or, once the end grows again, ids in
            // use): `pop_free` skips those, and they are swept out when they
            // outnumber the live slots.
            while self.strings.last().is_some_and(Option::is_none) {
                self.strings.pop();
                self.counts.pop();
            }
            if self.free.len() > 2 * self.strings.len() + 16 {
                let strings = &self.strings;
                self.free.retain(|r| strings.get(r.0 as usize).is_some_and(Option::is_none));
            }
            if self.strings.len() < self.strings.capacity() / 4 {
                self.strings.shrink_to_fit();
                self.counts.shrink_to_fit();
                self.ids.shrink_to_fit();
                self.free.shrink_to_fit();
            }
        }
    }

    /// The smallest free id still inside the table and unused.
    fn pop_free(&mut self) -> Option<u32> {
        while let Some(std::cmp::Reverse(id)) = self.free.pop() {
            if self.strings.get(id as usize).is_some_and(Option::is_none) {
                return Some(id);
            }
        }
        None
    }

    /// The string of a live id.
    #[inline]
    fn resolve(&self, id: u32) -> &str {
        // Ids come only from `SymLabels` interned in this table.
        self.strings.get(id as usize).and_then(Option::as_deref).unwrap_or("")
    }

    /// Interns `labels` (one use of each name and value).
    pub(crate) fn encode(&mut self, labels: &Labels) -> SymLabels {
        // A one-byte length prefix first (fewer than 128 bytes of ids, the
        // usual case); rebuilt with a longer prefix otherwise.
        let mut out = Vec::with_capacity(1 + labels.len() * 3);
        out.push(0);
        for l in labels {
            put_uvarint(&mut out, u64::from(self.intern(l.name)));
            put_uvarint(&mut out, u64::from(self.intern(l.value)));
        }
        match u8::try_from(out.len() - 1) {
            Ok(n) if n < 0x80 => {
                out[0] = n;
                SymLabels(out.into_boxed_slice())
            }
            _ => SymLabels::build(&out[1..], &[]),
        }
    }

    /// Releases every symbol `labels` uses (the series is gone).
    pub(crate) fn release_labels(&mut self, labels: &SymLabels) {
        let mut pos = 0;
        let ids = labels.ids();
        while let Some(id) = next_id(ids, &mut pos) {
            self.release(id);
        }
    }

    /// Live symbols.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Approximate heap bytes of the table (strings, ids, map, free list).
    pub(crate) fn heap_bytes(&self) -> usize {
        let strings: usize = self.strings.iter().flatten().map(|s| s.len() + 16).sum();
        strings
            + self.strings.capacity() * std::mem::size_of::<Option<Arc<str>>>()
            + self.counts.capacity() * 4
            + self.ids.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1)
            + self.free.capacity() * 4
    }
}

/// Decodes the next id (ids are < 2^32; a longer varint cannot occur in a
/// `SymLabels`, and ends the walk).
#[inline]
fn next_id(b: &[u8], pos: &mut usize) -> Option<u32> {
    let mut x: u32 = 0;
    let mut shift = 0;
    while let Some(&byte) = b.get(*pos) {
        *pos += 1;
        if shift > 28 {
            return None;
        }
        x |= u32::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(x);
        }
        shift += 7;
    }
    None
}

/// A head series' labels, borrowed: the ids and the table that resolves
/// them. Compares and iterates without building a [`Labels`];
/// [`LabelsView::to_labels`] materialises one.
///
/// ```
/// use tidemark_storage::head::{Head, HeadOptions};
/// use tidemark_storage::Labels;
///
/// let head = Head::new(HeadOptions::default(), None);
/// let up = Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
/// let mut app = head.appender();
/// let r = app.append(&up, 1_000, 1.0).unwrap();
/// assert!(app.ref_matches(r, |l| l == up && l.matches_pairs([("__name__", "up"), ("job", "api")])));
/// assert!(app.ref_matches(r, |l| l.to_labels() == up && l.len() == 2));
/// ```
#[derive(Clone, Copy)]
pub struct LabelsView<'a> {
    ids: &'a [u8],
    syms: &'a SymbolTable,
}

impl<'a> LabelsView<'a> {
    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = Label<'a>> + 'a {
        let (ids, syms) = (self.ids, self.syms);
        let mut pos = 0;
        std::iter::from_fn(move || {
            let n = next_id(ids, &mut pos)?;
            let v = next_id(ids, &mut pos)?;
            Some(Label { name: syms.resolve(n), value: syms.resolve(v) })
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.ids.iter().filter(|&&b| b < 0x80).count() / 2
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|l| l.name == name).map(|l| l.value)
    }

    /// A [`Labels`] with the same pairs (one allocation).
    pub fn to_labels(&self) -> Labels {
        Labels::from_sorted(self.iter().map(|l| (l.name, l.value)))
    }

    /// Whether `pairs` are exactly these labels, in order (as
    /// [`Labels::matches_pairs`]).
    pub fn matches_pairs<'p>(&self, pairs: impl IntoIterator<Item = (&'p str, &'p str)>) -> bool {
        let mut mine = self.iter();
        for (n, v) in pairs {
            match mine.next() {
                Some(l) if l.name == n && l.value == v => {}
                _ => return false,
            }
        }
        mine.next().is_none()
    }

    /// Orders as the materialised [`Labels`] would ([`Labels`]' `Ord`).
    pub fn cmp_labels(&self, other: &Labels) -> Ordering {
        let mut a = self.iter();
        let mut b = other.iter();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match x.name.cmp(y.name).then_with(|| x.value.cmp(y.value)) {
                    Ordering::Equal => {}
                    o => return o,
                },
            }
        }
    }
}

impl PartialEq<Labels> for LabelsView<'_> {
    fn eq(&self, other: &Labels) -> bool {
        self.matches_pairs(other.iter().map(|l| (l.name, l.value)))
    }
}

impl PartialEq<&Labels> for LabelsView<'_> {
    fn eq(&self, other: &&Labels) -> bool {
        *self == **other
    }
}

impl std::fmt::Debug for LabelsView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.to_labels(), f)
    }
}

impl std::fmt::Display for LabelsView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.to_labels(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels_strategy() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-c_]{1,3}", "[a-c0-9é]{1,3}", 0..6)
            .prop_map(|m| Labels::new(m).expect("valid"))
    }

    proptest! {
        #[test]
        fn symbol_labels_round_trip_and_compare_as_labels(
            sets in proptest::collection::vec(labels_strategy(), 1..20),
            drop_mask in any::<u32>(),
        ) {
            let mut syms = SymbolTable::default();
            let coded: Vec<SymLabels> = sets.iter().map(|l| syms.encode(l)).collect();
            // Release some sets: the others must still resolve.
            let mut kept = Vec::new();
            for (i, (l, c)) in sets.iter().zip(&coded).enumerate() {
                if drop_mask & (1 << (i % 32)) != 0 {
                    syms.release_labels(c);
                } else {
                    kept.push((l.clone(), c.clone()));
                }
            }
            // Re-interning after releases reuses ids.
            let again: Vec<(Labels, SymLabels)> = sets.iter().take(3).map(|l| (l.clone(), syms.encode(l))).collect();
            kept.extend(again);
            for (l, c) in &kept {
                let v = c.view(&syms);
                prop_assert_eq!(&v.to_labels(), l);
                prop_assert_eq!(v.len(), l.len());
                prop_assert!(v == *l);
                prop_assert!(v.matches_pairs(l.iter().map(|p| (p.name, p.value))));
                for (m, _) in &kept {
                    prop_assert_eq!(v.cmp_labels(m), l.cmp(m));
                    prop_assert_eq!(v == *m, l == m);
                }
                for p in l {
                    prop_assert_eq!(v.get(p.name), Some(p.value));
                }
            }
        }
    }

    #[test]
    fn table_shrinks_when_series_go() {
        let mut syms = SymbolTable::default();
        let mk = |i: usize| Labels::new([("__name__", "up".to_string()), ("pod", format!("pod-{i}"))]).unwrap();
        let coded: Vec<SymLabels> = (0..1000).map(|i| syms.encode(&mk(i))).collect();
        assert_eq!(syms.len(), 1003);
        let full = syms.heap_bytes();
        for c in &coded[10..] {
            syms.release_labels(c);
        }
        assert_eq!(syms.len(), 13);
        assert!(syms.heap_bytes() < full / 4, "{} vs {full}", syms.heap_bytes());
        for (i, c) in coded[..10].iter().enumerate() {
            assert_eq!(c.view(&syms).to_labels(), mk(i));
        }
        // Churn: new series reuse the freed ids; the table stays bounded.
        for round in 0..5 {
            let more: Vec<SymLabels> = (0..1000).map(|i| syms.encode(&mk(10_000 * (round + 1) + i))).collect();
            assert_eq!(syms.len(), 1013);
            more.iter().for_each(|c| syms.release_labels(c));
        }
        assert_eq!(syms.len(), 13);
        for c in &coded[..10] {
            syms.release_labels(c);
        }
        assert_eq!(syms.len(), 0);
        assert!(syms.strings.is_empty());
    }

    #[test]
    fn ids_stay_short() {
        let mut syms = SymbolTable::default();
        let l = Labels::new([("__name__", "up"), ("job", "api"), ("le", "0.5")]).unwrap();
        let c = syms.encode(&l);
        assert_eq!(c.heap_bytes(), 7, "a length byte, then one byte per string while ids are < 128");
        assert_eq!(syms.encode(&l).0, c.0);
    }

    #[test]
    fn tail_rides_behind_the_ids() {
        let mut syms = SymbolTable::default();
        // Short and long id strings (the long one needs a two-byte prefix).
        let short = Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
        let long = Labels::new((0..100).map(|i| (format!("n{i:03}"), format!("v{i}")))).unwrap();
        for l in [&short, &long] {
            let mut c = syms.encode(l);
            assert!(c.tail().is_empty());
            c.extend_tail(&[1, 2, 3]);
            c.extend_tail(&[4]);
            assert_eq!(c.tail(), &[1, 2, 3, 4]);
            c.tail_mut()[0] = 9;
            assert_eq!(c.tail(), &[9, 2, 3, 4]);
            assert_eq!(c.view(&syms).to_labels(), *l);
            c.set_tail(&[7]);
            assert_eq!(c.tail(), &[7]);
            assert_eq!(c.view(&syms).to_labels(), *l);
            assert_eq!(c.0.len(), c.heap_bytes() + 1);
            c.set_tail(&[]);
            assert!(c.tail().is_empty());
            syms.release_labels(&c);
        }
        assert_eq!(syms.len(), 0, "the tail is never read as ids");
        // No labels: a tail alone.
        let mut none = SymLabels::default();
        assert!(none.tail().is_empty() && none.view(&syms).is_empty());
        none.extend_tail(&[5, 6]);
        assert_eq!(none.tail(), &[5, 6]);
        assert!(none.view(&syms).is_empty());
        none.set_tail(&[]);
        assert!(none.tail().is_empty());
    }
}

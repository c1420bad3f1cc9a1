//! Sorting many label sets into [`Labels`] order without comparing whole
//! label sets over and over.
//!
//! A query over the head selects up to every series and must hand them out
//! in label order. A comparison sort compares `n log n` pairs, and the
//! label sets of one selection share long prefixes (`__name__`, the job,
//! the same instance…): each comparison walks those prefixes again, through
//! a pointer to a separate heap block per label set, so the sort was a
//! third of `count({__name__=~".+"})` at 368 k series.
//!
//! Here the sort is a most-significant-digit string sort instead. A label
//! set is read as a stream of *symbols* whose plain integer order is the
//! order of [`Labels::cmp`]: for each string (name, value, name, value…)
//! its bytes as `byte + 2`, then a terminator `1`; after the last string
//! the stream holds `0` forever. (The terminator below every byte makes a
//! string sort before its extensions, and the end below the terminator
//! makes a label set sort before the sets it is a prefix of, exactly as
//! comparing pair by pair does.) Each round skips the symbols the whole
//! group shares, packs the next [`KEY_SYMBOLS`] into a `u64` per label set,
//! sorts `(key, index)` pairs — small, contiguous, compared as integers —
//! and goes on within each group of equal keys; small groups fall back to
//! comparing label sets. Ties (equal label sets) keep their input order,
//! so the result is the one of a stable `sort_by(Labels::cmp)`.

#[cfg(test)]
use std::cmp::Ordering;

use crate::labels::raw_str;
use crate::prefetch::prefetch;
use crate::Labels;

/// Symbols packed into one key: 7 × 9 bits (258 symbol values) fit a `u64`.
const KEY_SYMBOLS: usize = 7;
const SYMBOL_BITS: u32 = 9;

/// Below this many items a group is sorted by comparing label sets.
const SMALL: usize = 24;

/// The symbol after the last string.
const END: u16 = 0;
/// The symbol after each string's bytes.
const TERM: u16 = 1;

/// Sorts `items` by their labels in [`Labels`] order, stable, like
/// `items.sort_by(|a, b| labels(a).cmp(labels(b)))` but with far fewer
/// label-set comparisons when there are many items.
pub(crate) fn sort_by_labels<T>(items: &mut [T], labels: impl Fn(&T) -> &Labels) {
    sort_with_threads(items, labels, 1);
}

/// Below this many items a selection is read and sorted on one thread.
const PARALLEL_MIN: usize = 16_384;

/// At most this many threads read or sort one selection.
const PARALLEL_MAX: usize = 4;

/// Threads worth using on `n` items of a selection: one below
/// [`PARALLEL_MIN`], else the machine's cores (at most [`PARALLEL_MAX`]),
/// each with at least `PARALLEL_MIN / 2` items.
pub(crate) fn threads_for(n: usize) -> usize {
    if n < PARALLEL_MIN {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    cores.min(PARALLEL_MAX).min(n / (PARALLEL_MIN / 2)).max(1)
}

/// [`sort_by_labels`] on a large list with [`threads_for`] threads: the
/// first round (the shared prefix of all items, their keys and the sort of
/// the keys) is split over the threads, then the groups of equal keys,
/// which are sorted independently, are shared out among them. The order is
/// a total one (labels, then input position), so the result is exactly
/// [`sort_by_labels`]'s.
pub(crate) fn sort_by_labels_parallel<T: Send>(mut items: Vec<T>, labels: impl Fn(&T) -> &Labels + Sync) -> Vec<T> {
    let threads = threads_for(items.len());
    sort_with_threads(&mut items, labels, threads);
    items
}

/// [`sort_by_labels`] with up to `threads` threads.
fn sort_with_threads<T>(items: &mut [T], labels: impl Fn(&T) -> &Labels, threads: usize) {
    let n = items.len();
    if n < SMALL || u32::try_from(n).is_err() {
        items.sort_by(|a, b| labels(a).cmp(labels(b)));
        return;
    }
    let mut perm = {
        // Each item's encoding, read once in item order: the sort then
        // reaches an encoding through this compact list instead of through
        // the item (one dependent load less per look, and a list that
        // stays in cache while the items do not).
        let encs: Vec<&[u8]> = items.iter().map(|x| labels(x).encoded()).collect();
        let mut order: Vec<(u64, u32)> = (0..n as u32).map(|i| (0, i)).collect();
        if threads <= 1 {
            sort_order(&mut order, &encs);
        } else {
            sort_order_parallel(&mut order, &encs, threads);
        }
        order.into_iter().map(|(_, i)| i).collect::<Vec<u32>>()
    };
    apply_permutation(items, &mut perm);
}

/// Items ahead of the one being read whose encoding is asked for early
/// ([`prefetch`]): the encodings are separate heap blocks, each a cache
/// miss when read in sorted rather than allocation order.
const PREFETCH_AHEAD: usize = 8;

/// Asks for the first bytes of item `e.1`'s encoding, if there is one.
#[inline(always)]
fn prefetch_item(encs: &[&[u8]], e: Option<&(u64, u32)>) {
    if let Some(&(_, i)) = e {
        if let Some(enc) = encs.get(i as usize) {
            prefetch(enc.as_ptr());
        }
    }
}

/// How many symbols every item of `group` shares from `depth` on (walked
/// against the group's first item, from the string boundary `boundary`
/// they all share whole), `usize::MAX` if their label sets are all equal.
fn group_shared(group: &[(u64, u32)], encs: &[&[u8]], boundary: (usize, usize), depth: usize) -> usize {
    let first = encs[group[0].1 as usize];
    let mut shared = usize::MAX;
    // The shortest common run wins, and each walk stops at the shortest
    // so far, so a group costs about its size in steps.
    for k in 1..group.len() {
        prefetch_item(encs, group.get(k + PREFETCH_AHEAD));
        shared = common_prefix_from(first, encs[group[k].1 as usize], boundary, depth, shared);
        if shared == 0 {
            break;
        }
    }
    shared
}

/// Sets each entry's key to the [`KEY_SYMBOLS`] symbols of its encoding
/// after byte `from` (a string boundary), `skip` symbols on.
fn set_keys(group: &mut [(u64, u32)], encs: &[&[u8]], from: usize, skip: usize) {
    for k in 0..group.len() {
        prefetch_item(encs, group.get(k + PREFETCH_AHEAD));
        let e = &mut group[k];
        e.0 = key_at(encs[e.1 as usize], from, skip);
    }
}

/// Pushes the runs of equal keys of `group` (sorted by key), which starts
/// at `start` in the whole list, for the next round at `depth`.
fn push_runs(group: &[(u64, u32)], start: usize, depth: usize, stack: &mut Vec<Group>) {
    let mut a = 0;
    while a < group.len() {
        let k = group[a].0;
        let mut b = a + 1;
        while b < group.len() && group[b].0 == k {
            b += 1;
        }
        if b - a > 1 {
            stack.push((start + a, start + b, depth));
        }
        a = b;
    }
}

/// Sorts `order` (`(scratch key, index)` pairs) by the label sets encoded
/// in `encs[index]`, ties by index.
fn sort_order(order: &mut [(u64, u32)], encs: &[&[u8]]) {
    sort_groups(order, encs, vec![(0, order.len(), 0)]);
}

/// A group of the list still to sort: `(start, end, depth)`, its items
/// `order[start..end]` sharing their first `depth` symbols.
type Group = (usize, usize, usize);

/// Runs the rounds of [`sort_order`] on the groups in `stack`: `(start,
/// end, depth)`, every item of the group sharing its first `depth`
/// symbols. An explicit stack of groups instead of recursion: a group can
/// only be split further where its label sets still differ, but very long
/// shared label values could make deep levels.
fn sort_groups(order: &mut [(u64, u32)], encs: &[&[u8]], mut stack: Vec<Group>) {
    let enc = |i: u32| encs[i as usize];
    while let Some((start, end, depth)) = stack.pop() {
        // The next group's encodings start loading while this one is sorted
        // (a small group is sorted by comparisons that read all of them).
        if let Some(&(s, e, _)) = stack.last() {
            if e - s < SMALL {
                for x in &order[s..e] {
                    prefetch_item(encs, Some(x));
                }
            }
        }
        let group = &mut order[start..end];
        if group.len() < SMALL {
            // The group shares its first `depth` symbols, so its encodings
            // are the same bytes up to the string holding symbol `depth`:
            // compared from there (a group of `le` values under one
            // instance and route no longer walks the shared name, job and
            // instance for every comparison).
            let (from, _) = shared_strings_end(enc(group[0].1), depth);
            group.sort_by(|a, b| cmp_from(enc(a.1), enc(b.1), from).then(a.1.cmp(&b.1)));
            continue;
        }
        // Skip what the whole group shares, walked from the string boundary
        // all of the group shares.
        let boundary = shared_strings_end(enc(group[0].1), depth);
        let shared = group_shared(group, encs, boundary, depth);
        if shared == usize::MAX {
            // Equal label sets: input order.
            group.sort_unstable_by_key(|e| e.1);
            continue;
        }
        let depth = depth + shared;
        // Every item's stream is walked from the same string boundary, not
        // from its start.
        let (from, before) = shared_strings_end(enc(group[0].1), depth);
        set_keys(group, encs, from, depth - before);
        // Unique (key, index) pairs: unstable is stable here.
        group.sort_unstable();
        push_runs(group, start, depth + KEY_SYMBOLS, &mut stack);
    }
}

/// [`sort_order`] with `threads` threads: the first round (the shared
/// prefix, the keys and their sort) on contiguous parts at once, then the
/// groups it leaves shared out in contiguous ranges of about equal size.
fn sort_order_parallel(order: &mut Vec<(u64, u32)>, encs: &[&[u8]], threads: usize) {
    let n = order.len();
    let per = n.div_ceil(threads);
    let first = encs[order[0].1 as usize];
    let boundary = shared_strings_end(first, 0);
    // The part walks are against the same first item, so the least of
    // their shared runs is the whole list's.
    let shared = std::thread::scope(|scope| {
        let handles: Vec<_> = order[per..]
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    let mut shared = usize::MAX;
                    for k in 0..part.len() {
                        prefetch_item(encs, part.get(k + PREFETCH_AHEAD));
                        shared = common_prefix_from(first, encs[part[k].1 as usize], boundary, 0, shared);
                        if shared == 0 {
                            break;
                        }
                    }
                    shared
                })
            })
            .collect();
        let mut shared = group_shared(&order[..per], encs, boundary, 0);
        for h in handles {
            shared = shared.min(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        shared
    });
    if shared == usize::MAX {
        // Equal label sets: input order, which the list is in.
        return;
    }
    let (from, before) = shared_strings_end(first, shared);
    std::thread::scope(|scope| {
        let mut parts = order.chunks_mut(per);
        let head = parts.next();
        for part in parts {
            scope.spawn(move || {
                set_keys(part, encs, from, shared - before);
                part.sort_unstable();
            });
        }
        if let Some(part) = head {
            set_keys(part, encs, from, shared - before);
            part.sort_unstable();
        }
    });
    merge_sorted_parts(order, per);
    let mut groups = Vec::new();
    push_runs(order, 0, shared + KEY_SYMBOLS, &mut groups);
    // Stack order pops the last group first; `groups` is in list order.
    // Contiguous ranges of groups of about `n / threads` items each.
    let mut ranges: Vec<(usize, usize, Vec<Group>)> = Vec::with_capacity(threads);
    let target = n.div_ceil(threads);
    for g in groups {
        let full = ranges.len() == threads;
        match ranges.last_mut() {
            Some(r) if r.1 - r.0 < target || full => {
                r.1 = g.1;
                r.2.push(g);
            }
            _ => ranges.push((g.0, g.1, vec![g])),
        }
    }
    std::thread::scope(|scope| {
        let mut rest: &mut [(u64, u32)] = order;
        let mut at = 0;
        let mut mine = None;
        for (s, e, gs) in ranges {
            let tail = std::mem::take(&mut rest);
            let (_, tail) = tail.split_at_mut(s - at);
            let (part, tail) = tail.split_at_mut(e - s);
            rest = tail;
            at = e;
            // Group bounds relative to the part.
            let stack: Vec<Group> = gs.into_iter().map(|(a, b, d)| (a - s, b - s, d)).collect();
            if mine.is_none() {
                mine = Some((part, stack));
            } else {
                scope.spawn(move || sort_groups(part, encs, stack));
            }
        }
        if let Some((part, stack)) = mine {
            sort_groups(part, encs, stack);
        }
    });
}

/// Merges the sorted runs of `per` entries each that make up `order`
/// (integer pairs, unique) into one sorted list.
fn merge_sorted_parts(order: &mut Vec<(u64, u32)>, per: usize) {
    let mut runs: Vec<&[(u64, u32)]> = order.chunks(per).collect();
    if runs.len() <= 1 {
        return;
    }
    let mut out = Vec::with_capacity(order.len());
    loop {
        // The run whose head is least (at most PARALLEL_MAX runs).
        let mut best: Option<usize> = None;
        for (r, run) in runs.iter().enumerate() {
            if let Some(x) = run.first() {
                if best.is_none_or(|b| *x < runs[b][0]) {
                    best = Some(r);
                }
            }
        }
        let Some(b) = best else { break };
        out.push(runs[b][0]);
        runs[b] = &runs[b][1..];
    }
    *order = out;
}

/// Where the strings that lie wholly within the first `depth` symbols of
/// `enc`'s stream end: a byte offset in `enc` at a string boundary. Label
/// sets that share their first `depth` symbols have the same bytes before
/// it (the same whole strings, lengths included).
/// Returns the offset and the number of symbols before it.
fn shared_strings_end(enc: &[u8], depth: usize) -> (usize, usize) {
    let (mut pos, mut symbols) = (0usize, 0usize);
    loop {
        let mut next = pos;
        match raw_str(enc, &mut next) {
            // A string and its terminator, if all of it is shared.
            Some(s) if symbols + s.len() < depth => {
                symbols += s.len() + 1;
                pos = next;
            }
            _ => return (pos, symbols),
        }
    }
}

/// [`Labels::cmp`] of two encodings that are the same bytes before `from`,
/// a string boundary in both: the strings from there on, pair by pair (a
/// string before its extensions, the shorter list of strings first), which
/// is the order of their symbol streams.
fn cmp_from(a: &[u8], b: &[u8], from: usize) -> std::cmp::Ordering {
    let (mut pa, mut pb) = (from, from);
    loop {
        match (raw_str(a, &mut pa), raw_str(b, &mut pb)) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

/// [`Labels::cmp`] on encoded label sets through the symbol streams: what
/// the tests check the symbol order against.
#[cfg(test)]
fn cmp_encoded(a: &[u8], b: &[u8]) -> Ordering {
    let (mut x, mut y) = (Symbols::at(a, 0), Symbols::at(b, 0));
    loop {
        let (s, t) = (x.next_symbol(), y.next_symbol());
        match s.cmp(&t) {
            Ordering::Equal if s == END => return Ordering::Equal,
            Ordering::Equal => {}
            o => return o,
        }
    }
}

/// How many symbols from `depth` on the two streams share, at most
/// `limit`; `usize::MAX` if they are equal to the end (and `limit` is).
///
/// Walks the two encodings a string at a time rather than a symbol at a
/// time: while the strings are equal (most of them: a group's label sets
/// share their name, job, most of their instance…) so are their symbols,
/// one slice comparison each; only the first differing pair is looked into
/// byte by byte. `depth` is where the caller's group starts to differ, so
/// every symbol before it is shared and only counts.
#[cfg(test)]
fn common_prefix(a: &[u8], b: &[u8], depth: usize, limit: usize) -> usize {
    common_prefix_from(a, b, (0, 0), depth, limit)
}

/// [`common_prefix`] for two streams known to be the same bytes before
/// `start.0`, a string boundary with `start.1` symbols before it (see
/// [`shared_strings_end`]): the walk starts there.
fn common_prefix_from(a: &[u8], b: &[u8], start: (usize, usize), depth: usize, limit: usize) -> usize {
    let (mut pa, mut pb) = (start.0, start.0);
    // Symbols before the current pair of strings.
    let mut base = start.1;
    // Where the streams first differ, or `None` if they are equal to the end
    // (then `base` is the number of symbols before the end).
    let differ = loop {
        match (raw_str(a, &mut pa), raw_str(b, &mut pb)) {
            (None, None) => break None,
            // The end against a string's first symbol (a byte or, for an
            // empty string, its terminator): never equal.
            (None, Some(_)) | (Some(_), None) => break Some(base),
            (Some(x), Some(y)) => {
                if x == y {
                    base += x.len() + 1;
                    continue;
                }
                // The first differing byte, or where the shorter one ends
                // (its terminator against a byte of the longer one).
                let same = x.iter().zip(y).take_while(|(p, q)| p == q).count();
                break Some(base + same);
            }
        }
    };
    match differ {
        Some(at) => at.saturating_sub(depth).min(limit),
        None => {
            let shared = base.saturating_sub(depth);
            if shared < limit {
                usize::MAX
            } else {
                limit
            }
        }
    }
}

/// [`common_prefix`] symbol by symbol, through [`Symbols`]: the definition
/// the tests check the string-at-a-time walk against.
#[cfg(test)]
fn common_prefix_by_symbols(a: &[u8], b: &[u8], depth: usize, limit: usize) -> usize {
    let (mut x, mut y) = (Symbols::at(a, depth), Symbols::at(b, depth));
    let mut n = 0;
    loop {
        if n == limit {
            return n;
        }
        let (s, t) = (x.next_symbol(), y.next_symbol());
        if s != t {
            return n;
        }
        if s == END {
            return usize::MAX;
        }
        n += 1;
    }
}

/// The [`KEY_SYMBOLS`] symbols from `skip` symbols after byte `from` (a
/// string boundary) on, packed so that integer order is stream order.
fn key_at(enc: &[u8], from: usize, skip: usize) -> u64 {
    let mut it = Symbols::at_from(enc, from, skip);
    let mut k = 0u64;
    for _ in 0..KEY_SYMBOLS {
        k = (k << SYMBOL_BITS) | u64::from(it.next_symbol());
    }
    k
}

/// The symbol stream of an encoded label set (see the module comment).
/// Reads the strings with [`crate::labels::raw_str`]; a malformed buffer
/// (which [`Labels`] never holds) ends the stream early instead of
/// panicking.
struct Symbols<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes of the current string not yet returned; `None` at a boundary
    /// between strings.
    left: Option<&'a [u8]>,
}

impl<'a> Symbols<'a> {
    /// The stream from symbol `skip` on.
    #[cfg(test)]
    fn at(buf: &'a [u8], skip: usize) -> Symbols<'a> {
        Symbols::at_from(buf, 0, skip)
    }

    /// The stream from `skip` symbols after byte `pos` (a string boundary).
    fn at_from(buf: &'a [u8], mut pos: usize, mut skip: usize) -> Symbols<'a> {
        loop {
            let Some(s) = raw_str(buf, &mut pos) else {
                return Symbols { buf, pos: buf.len(), left: None };
            };
            if skip > s.len() {
                // The whole string and its terminator are skipped.
                skip -= s.len() + 1;
            } else {
                return Symbols { buf, pos, left: Some(&s[skip..]) };
            }
        }
    }

    #[inline]
    fn next_symbol(&mut self) -> u16 {
        loop {
            match self.left {
                Some([]) => {
                    self.left = None;
                    return TERM;
                }
                Some([b, rest @ ..]) => {
                    self.left = Some(rest);
                    return u16::from(*b) + 2;
                }
                None => match raw_str(self.buf, &mut self.pos) {
                    Some(s) => self.left = Some(s),
                    None => {
                        self.pos = self.buf.len();
                        return END;
                    }
                },
            }
        }
    }
}

/// Reorders `items` so that position `k` holds what was at `perm[k]`
/// (`perm` a permutation of `0..items.len()`; it is consumed), one swap per
/// moved item, following each cycle.
fn apply_permutation<T>(items: &mut [T], perm: &mut [u32]) {
    for i in 0..perm.len() {
        let mut j = i;
        loop {
            let next = perm[j] as usize;
            perm[j] = j as u32;
            if next == i || next == j {
                break;
            }
            items.swap(j, next);
            j = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(String, String)]) -> Labels {
        let mut seen = std::collections::BTreeMap::new();
        for (n, v) in pairs {
            seen.insert(n.clone(), v.clone());
        }
        Labels::from_sorted(seen.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    #[test]
    fn sorting_on_threads_is_one_stable_sort() {
        // Many equal label sets, so ties cross the threads' parts.
        let mut items: Vec<(Labels, usize)> = Vec::new();
        for i in 0..20_000usize {
            let k = (i * 7919) % 4_001;
            let l = Labels::new([("__name__", "up"), ("instance", &format!("h{k}")), ("job", "api")]).unwrap();
            items.push((l, i));
        }
        // Groups of very different sizes after the first round (one
        // instance holds half the list), and label sets all equal.
        let mut skewed: Vec<(Labels, usize)> = Vec::new();
        for i in 0..9_000usize {
            let inst = if i % 2 == 0 { "big".to_string() } else { format!("h{}", i % 97) };
            let l = Labels::new([("instance", inst.as_str()), ("n", &format!("{}", (i * 31) % 1_000))]).unwrap();
            skewed.push((l, i));
        }
        let same: Vec<(Labels, usize)> = (0..5_000).map(|i| (Labels::new([("__name__", "up")]).unwrap(), i)).collect();
        for list in [items, skewed, same] {
            let mut want = list.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            for threads in [1, 2, 3, 4, 7] {
                let mut got = list.clone();
                sort_with_threads(&mut got, |x| &x.0, threads);
                assert!(got.iter().map(|x| x.1).eq(want.iter().map(|x| x.1)), "{threads} threads");
            }
            let got = sort_by_labels_parallel(list.clone(), |x| &x.0);
            assert!(got.iter().map(|x| x.1).eq(want.iter().map(|x| x.1)));
        }
        let mut empty = Vec::<(Labels, usize)>::new();
        sort_with_threads(&mut empty, |x| &x.0, 2);
        assert!(empty.is_empty());
        assert_eq!(threads_for(10), 1);
        assert!((1..=PARALLEL_MAX).contains(&threads_for(1 << 20)));
    }

    #[test]
    fn sorted_parts_merge_into_one_sorted_list() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for (n, per) in [(0usize, 1usize), (1, 1), (5, 2), (100, 7), (1000, 250), (1001, 334), (64, 64), (64, 100)] {
            let mut order: Vec<(u64, u32)> = (0..n as u32)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 50, i)
                })
                .collect();
            let mut want = order.clone();
            want.sort_unstable();
            for part in order.chunks_mut(per) {
                part.sort_unstable();
            }
            merge_sorted_parts(&mut order, per);
            assert_eq!(order, want, "{n} in parts of {per}");
        }
    }

    #[test]
    fn symbol_order_is_labels_order_on_edge_cases() {
        let long = "x".repeat(200);
        let sets: Vec<Labels> = vec![
            Labels::empty(),
            Labels::new([("a", "b")]).unwrap(),
            Labels::new([("a", "b"), ("c", "d")]).unwrap(),
            Labels::new([("a", "bb")]).unwrap(),
            Labels::new([("a", "b\u{0}")]).unwrap(),
            Labels::new([("a", "b\u{1}")]).unwrap(),
            Labels::new([("a", "\u{ff}")]).unwrap(),
            Labels::new([("a", long.as_str())]).unwrap(),
            Labels::new([("a", long.as_str()), ("b", "1")]).unwrap(),
            Labels::new([("ab", "b")]).unwrap(),
            Labels::new([("b", "a")]).unwrap(),
        ];
        for x in &sets {
            for y in &sets {
                assert_eq!(cmp_encoded(x.encoded(), y.encoded()), x.cmp(y), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn many_similar_series_sort_like_a_comparison_sort() {
        // The production shape in small: shared name and job, instances
        // with numbers of different widths, several labels after them.
        let mut items: Vec<(Labels, usize)> = Vec::new();
        for i in 0..300 {
            for route in ["/", "/api", "/api/v1", "/login"] {
                for status in ["200", "404", "500"] {
                    let l = Labels::new([
                        ("__name__", "http_requests_total"),
                        ("instance", &format!("host-{}:9100", (i * 7919) % 1000)),
                        ("job", "api"),
                        ("route", route),
                        ("status", status),
                    ])
                    .unwrap();
                    items.push((l, items.len()));
                }
            }
        }
        // Equal label sets too (the function is a stable sort in general).
        items.push((items[5].0.clone(), items.len()));
        let mut want = items.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        sort_by_labels(&mut items, |x| &x.0);
        assert_eq!(items, want);
    }

    proptest! {
        #[test]
        fn sorts_like_a_stable_comparison_sort(
            sets in prop::collection::vec(
                prop::collection::vec(("[a-c_]{1,3}", "[ab\u{0}\u{7f}é]{1,4}|x{120,140}"), 0..4),
                0..120,
            ),
            dup in prop::collection::vec(0usize..120, 0..10),
        ) {
            let mut items: Vec<(Labels, usize)> = sets.iter().map(|p| labels(p)).enumerate().map(|(i, l)| (l, i)).collect();
            for d in dup {
                if let Some(x) = items.get(d % items.len().max(1)).map(|x| x.0.clone()) {
                    items.push((x, items.len()));
                }
            }
            let mut want = items.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            sort_by_labels(&mut items, |x| &x.0);
            prop_assert_eq!(items, want);
        }

        #[test]
        fn symbol_comparison_is_labels_comparison(
            a in prop::collection::vec(("[a-c]{1,2}", "[ab\u{0}]{1,3}|y{127,130}"), 0..4),
            b in prop::collection::vec(("[a-c]{1,2}", "[ab\u{0}]{1,3}|y{127,130}"), 0..4),
        ) {
            let (a, b) = (labels(&a), labels(&b));
            prop_assert_eq!(cmp_encoded(a.encoded(), b.encoded()), a.cmp(&b));
        }

        #[test]
        fn string_walk_finds_the_shared_symbols(
            a in prop::collection::vec(("[a-c]{1,2}", "[ab\u{0}]{1,3}|y{127,130}"), 0..4),
            b in prop::collection::vec(("[a-c]{1,2}", "[ab\u{0}]{1,3}|y{127,130}"), 0..4),
            limit in prop_oneof![Just(usize::MAX), 0usize..12],
        ) {
            let (a, b) = (labels(&a), labels(&b));
            let (x, y) = (a.encoded(), b.encoded());
            // Every depth up to where the streams part (the caller's
            // precondition: the symbols before `depth` are shared).
            let parted = common_prefix_by_symbols(x, y, 0, usize::MAX);
            let last = if parted == usize::MAX { x.len() * 2 + 2 } else { parted };
            for depth in 0..=last {
                prop_assert_eq!(
                    common_prefix(x, y, depth, limit),
                    common_prefix_by_symbols(x, y, depth, limit),
                    "depth {} limit {}", depth, limit
                );
                // From the boundary of the strings both share whole, the
                // same; and from there the key and the order are too.
                let start = shared_strings_end(x, depth);
                prop_assert_eq!(start, shared_strings_end(y, depth));
                prop_assert_eq!(x[..start.0].to_vec(), y[..start.0].to_vec());
                prop_assert_eq!(
                    common_prefix_from(x, y, start, depth, limit),
                    common_prefix_by_symbols(x, y, depth, limit)
                );
                prop_assert_eq!(key_at(x, start.0, depth - start.1), key_at(x, 0, depth));
                prop_assert_eq!(cmp_from(x, y, start.0), a.cmp(&b));
            }
        }

        #[test]
        fn permutation_is_applied(n in 0usize..200, seed in any::<u64>()) {
            let mut perm: Vec<u32> = (0..n as u32).collect();
            let mut s = seed | 1;
            for i in (1..n).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                perm.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let want: Vec<u32> = perm.clone();
            let mut items: Vec<u32> = (0..n as u32).collect();
            apply_permutation(&mut items, &mut perm);
            prop_assert_eq!(items, want);
        }
    }
}

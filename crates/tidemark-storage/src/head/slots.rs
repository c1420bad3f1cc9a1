//! One lock shard's series, keyed by ref: a dense array indexed by the
//! ref's position within the shard, with a hash map for refs that do not
//! fit it.
//!
//! The head hands out refs in sequence and puts ref `r` in shard
//! `r & mask`, so the refs of one shard are `low, low + n, low + 2n, …`
//! (`n` shards) and `r >> shift` numbers them densely. A slot costs one
//! pointer (8 bytes, `None` when the series is gone) where a hash map entry
//! costs 17 bytes at a load factor that falls to ~0.48 right after a
//! table doubles: at 1 M series over 16,384 shards every shard table was
//! at 128 buckets for 61 series (~36 bytes per series).
//!
//! The array covers `[base, base + slots.len())` in shard positions. Its
//! front is trimmed when the oldest series go (churn moves the window
//! forward), and it grows by an eighth at a time rather than doubling. A
//! ref that would leave the array less than half full (a ref far ahead of
//! the others, or behind `base`, as a replayed log with unusual refs may
//! give) goes to the side map instead, so memory stays bounded whatever
//! the refs.

use super::index::FxHashMap;
use super::series::MemSeries;

/// The series of one lock shard, by ref. See the module docs.
pub(crate) struct SeriesSlots {
    /// `Some` for each live series in the window.
    slots: Vec<Option<Box<MemSeries>>>,
    /// Position of `slots[0]`.
    base: u64,
    /// Series whose refs fall outside the window (rare: boxed, so an
    /// unused side map costs one word).
    sparse: Option<Box<FxHashMap<u64, Box<MemSeries>>>>,
    /// Number of `Some` in `slots`.
    dense: u32,
    /// The ref bits that select this shard (`r & mask`, below 2^20).
    low: u32,
    /// `log2` of the number of shards: `r >> shift` is the position.
    shift: u32,
}

impl SeriesSlots {
    /// An empty shard holding the refs `r` with `r & (2^shift - 1) == low`.
    pub(crate) fn new(low: u32, shift: u32) -> SeriesSlots {
        SeriesSlots { slots: Vec::new(), base: 0, sparse: None, dense: 0, low, shift }
    }

    /// The index in `slots` of `r`, if it falls in the window.
    #[inline]
    fn index(&self, r: u64) -> Option<usize> {
        let i = (r >> self.shift).wrapping_sub(self.base);
        (i < self.slots.len() as u64).then_some(i as usize)
    }

    /// The ref of `slots[i]`.
    #[inline]
    fn ref_at(&self, i: usize) -> u64 {
        ((self.base + i as u64) << self.shift) | u64::from(self.low)
    }

    /// Number of series.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.dense as usize + self.sparse.as_ref().map_or(0, |m| m.len())
    }

    /// The series `r`, if held. Returns the box, as the map this type
    /// replaced did: callers compare box addresses with the series
    /// pointers appenders keep.
    #[inline]
    #[allow(clippy::borrowed_box)]
    pub(crate) fn get(&self, r: &u64) -> Option<&Box<MemSeries>> {
        match self.index(*r) {
            Some(i) => self.slots[i].as_ref(),
            None => self.sparse.as_ref()?.get(r),
        }
    }

    /// Where the slot of `r` is (`None` for a ref outside the dense
    /// window), for a prefetch hint: the slot is not read.
    #[inline]
    pub(crate) fn slot_addr(&self, r: u64) -> Option<*const u8> {
        self.index(r).map(|i| self.slots.as_ptr().wrapping_add(i).cast::<u8>())
    }

    /// The series `r`, mutably, if held.
    #[inline]
    pub(crate) fn get_mut(&mut self, r: &u64) -> Option<&mut Box<MemSeries>> {
        match self.index(*r) {
            Some(i) => self.slots[i].as_mut(),
            None => self.sparse.as_mut()?.get_mut(r),
        }
    }

    /// Whether the series `r` is held.
    pub(crate) fn contains_key(&self, r: &u64) -> bool {
        self.get(r).is_some()
    }

    /// Stores `s` as series `r`, returning the series it replaces.
    pub(crate) fn insert(&mut self, r: u64, s: Box<MemSeries>) -> Option<Box<MemSeries>> {
        debug_assert_eq!(r & ((1u64 << self.shift) - 1), u64::from(self.low), "ref in the wrong shard");
        if let Some(i) = self.index(r) {
            let old = self.slots[i].replace(s);
            if old.is_none() {
                self.dense += 1;
            }
            return old;
        }
        let pos = r >> self.shift;
        if self.slots.is_empty() {
            self.base = pos;
        }
        // Extending the window to `pos` must keep it at least half full.
        let fits = pos >= self.base && pos - self.base < 2 * (u64::from(self.dense) + 1) + 8;
        if !fits {
            return self.sparse.get_or_insert_with(Box::default).insert(r, s);
        }
        let need = (pos - self.base + 1) as usize;
        if need > self.slots.capacity() {
            let grow = (need - self.slots.len()).max(self.slots.len() / 8).max(4);
            self.slots.reserve_exact(grow);
        }
        self.slots.resize_with(need, || None);
        self.slots[need - 1] = Some(s);
        self.dense += 1;
        None
    }

    /// Removes and returns the series `r`.
    pub(crate) fn remove(&mut self, r: &u64) -> Option<Box<MemSeries>> {
        let Some(i) = self.index(*r) else {
            let m = self.sparse.as_mut()?;
            let s = m.remove(r);
            if m.is_empty() {
                self.sparse = None;
            }
            return s;
        };
        let s = self.slots[i].take()?;
        self.dense -= 1;
        self.trim();
        Some(s)
    }

    /// Drops empty slots at both ends of the window and spare capacity
    /// once more than half of it is unused.
    fn trim(&mut self) {
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        let lead = self.slots.iter().take_while(|s| s.is_none()).count();
        if lead > 0 {
            self.slots.drain(..lead);
            self.base += lead as u64;
        }
        if self.slots.capacity() > 2 * self.slots.len() + 8 {
            self.slots.shrink_to_fit();
        }
    }

    /// The series with their refs: the window in ref order, then the side
    /// map in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &MemSeries)> + '_ {
        let dense = self.slots.iter().enumerate().filter_map(|(i, s)| s.as_deref().map(|s| (self.ref_at(i), s)));
        dense.chain(self.sparse.iter().flat_map(|m| m.iter()).map(|(&r, s)| (r, &**s)))
    }

    /// Like [`SeriesSlots::iter`], mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut MemSeries)> + '_ {
        let (low, shift, base) = (u64::from(self.low), self.shift, self.base);
        let dense = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(move |(i, s)| s.as_deref_mut().map(|s| (((base + i as u64) << shift) | low, s)));
        dense.chain(self.sparse.iter_mut().flat_map(|m| m.iter_mut()).map(|(&r, s)| (r, &mut **s)))
    }

    /// Heap bytes of the shard's own tables (not of the series): the
    /// window's capacity and the side map's buckets with their control
    /// bytes (hashbrown keeps at least an eighth of its buckets free).
    pub(crate) fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<Option<Box<MemSeries>>>();
        let entry = std::mem::size_of::<(u64, Box<MemSeries>)>() + 1;
        let side = self.sparse.as_ref().map_or(0, |m| {
            let buckets = if m.capacity() == 0 { 0 } else { (m.capacity() * 8 / 7).next_power_of_two() };
            std::mem::size_of_val(&**m) + buckets * entry
        });
        self.slots.capacity() * slot + side
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::symbols::SymbolTable;
    use crate::Labels;

    fn series(table: &mut SymbolTable, i: u64) -> Box<MemSeries> {
        let l = Labels::new([("__name__", format!("m{i}"))]).unwrap();
        Box::new(MemSeries::new(table.encode(&l)))
    }

    /// The ref → labels map a shard should hold, read back through the API.
    fn contents(s: &SeriesSlots, table: &SymbolTable) -> Vec<(u64, String)> {
        let mut v: Vec<(u64, String)> =
            s.iter().map(|(r, m)| (r, m.labels.view(table).to_labels().get("__name__").unwrap().to_string())).collect();
        v.sort();
        v
    }

    #[test]
    fn dense_refs_use_the_window_and_come_back_with_their_refs() {
        let mut t = SymbolTable::default();
        // Shard 3 of 16: refs 3, 19, 35, ...
        let mut s = SeriesSlots::new(3, 4);
        for k in 0..100u64 {
            assert!(s.insert((k << 4) | 3, series(&mut t, k)).is_none());
        }
        assert_eq!(s.len(), 100);
        assert!(s.sparse.is_none(), "sequential refs all fit the window");
        assert!(s.slots.capacity() <= 100 + 100 / 8 + 4, "grows by an eighth: {}", s.slots.capacity());
        for k in 0..100u64 {
            let r = (k << 4) | 3;
            assert!(s.contains_key(&r));
            assert_eq!(s.get(&r).unwrap().labels.view(&t).to_labels().get("__name__"), Some(format!("m{k}").as_str()));
        }
        assert!(s.get(&((100 << 4) | 3)).is_none());
        let want: Vec<(u64, String)> = (0..100u64).map(|k| ((k << 4) | 3, format!("m{k}"))).collect();
        let mut want = want;
        want.sort();
        assert_eq!(contents(&s, &t), want);
        let refs: Vec<u64> = s.iter_mut().map(|(r, _)| r).collect();
        assert_eq!(refs, (0..100u64).map(|k| (k << 4) | 3).collect::<Vec<_>>());
    }

    #[test]
    fn removing_old_series_moves_the_window_forward() {
        let mut t = SymbolTable::default();
        let mut s = SeriesSlots::new(0, 2);
        // Churn: series come and go in ref order, a few alive at a time.
        for k in 0..10_000u64 {
            assert!(s.insert(k << 2, series(&mut t, k)).is_none());
            if k >= 10 {
                assert!(s.remove(&((k - 10) << 2)).is_some());
            }
            assert!(s.len() <= 11);
            assert!(s.slots.len() <= 11, "window {} at k={k}", s.slots.len());
        }
        assert!(s.sparse.is_none());
        assert_eq!(s.len(), 10);
        assert!(s.slots.capacity() <= 32, "capacity {}", s.slots.capacity());
        assert!(s.get(&(9_989 << 2)).is_none());
        assert!(s.remove(&(9_989 << 2)).is_none());
        assert!(s.get(&(9_990 << 2)).is_some());
    }

    #[test]
    fn refs_far_apart_or_behind_go_to_the_side_map() {
        let mut t = SymbolTable::default();
        let mut s = SeriesSlots::new(1, 1);
        assert!(s.insert((1000 << 1) | 1, series(&mut t, 1000)).is_none());
        // Behind the window's start.
        assert!(s.insert((10 << 1) | 1, series(&mut t, 10)).is_none());
        // Far ahead: would leave the window almost empty.
        assert!(s.insert((u64::MAX >> 1 << 1) | 1, series(&mut t, 7)).is_none());
        assert!(s.insert((1001 << 1) | 1, series(&mut t, 1001)).is_none());
        assert_eq!(s.len(), 4);
        assert_eq!(s.sparse.as_ref().unwrap().len(), 2);
        assert!(s.slots.len() <= 2);
        let got: Vec<u64> = contents(&s, &t).into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, vec![(10 << 1) | 1, (1000 << 1) | 1, (1001 << 1) | 1, u64::MAX]);
        // Replacing returns the old series, wherever it lives.
        assert!(s.insert((10 << 1) | 1, series(&mut t, 11)).is_some());
        assert!(s.insert((1000 << 1) | 1, series(&mut t, 12)).is_some());
        assert_eq!(s.len(), 4);
        assert!(s.remove(&u64::MAX).is_some());
        assert!(s.remove(&((10 << 1) | 1)).is_some());
        assert!(s.remove(&((1000 << 1) | 1)).is_some());
        assert!(s.remove(&((1001 << 1) | 1)).is_some());
        assert_eq!(s.len(), 0);
        assert!(s.slots.is_empty());
        // Empty again: the next ref starts a new window wherever it is.
        assert!(s.insert((5 << 1) | 1, series(&mut t, 5)).is_none());
        assert!(s.sparse.is_none() && s.slots.len() == 1);
    }

    #[test]
    fn gaps_inside_the_window_are_kept_while_it_stays_half_full() {
        let mut t = SymbolTable::default();
        let mut s = SeriesSlots::new(0, 0);
        // Every other ref: the window is half full, so all fit.
        for k in 0..200u64 {
            assert!(s.insert(2 * k, series(&mut t, k)).is_none());
        }
        assert!(s.sparse.is_none());
        for k in 0..200u64 {
            assert!(s.get(&(2 * k)).is_some());
            assert!(s.get(&(2 * k + 1)).is_none());
        }
        // A gap of a thousand positions does not fit.
        assert!(s.insert(2 * 200 + 1000, series(&mut t, 9)).is_none());
        assert_eq!(s.sparse.as_ref().unwrap().len(), 1);
        assert!(s.get(&(2 * 200 + 1000)).is_some());
    }
}

//! Sort-and-spill of samples under a memory bound.
//!
//! Samples arrive in file order as `(series id, t, v)` records of
//! [`RECORD_BYTES`] in memory. When the buffer reaches its capacity it is
//! sorted by `(group, series labels, t)` and written to a run file of
//! fixed 20-byte little-endian records (`u32` series id, `i64` t, `u64`
//! value bits). [`Sorter::finish`] sorts the last buffer in memory and
//! returns a [`Merged`] stream: a k-way merge of every run by `(group,
//! series rank, t)`, where the rank of a series is its position in label
//! order among all series (known once the input is read). Within a run the
//! order by labels equals the order by final rank, so the merge is sound.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tidemark_storage::Labels;

/// Bytes one buffered sample takes in memory.
pub const RECORD_BYTES: u64 = std::mem::size_of::<Rec>() as u64;
/// Bytes of one sample in a run file.
const FILE_RECORD_BYTES: usize = 20;
/// Read buffer per run during the merge: at most this…
const MAX_RUN_READ_BUFFER: usize = 64 << 10;
/// … and at least this; with more runs than the budget allows at this
/// size, runs are first merged into fewer, longer runs.
const MIN_RUN_READ_BUFFER: usize = 4 << 10;

fn encode(r: &Rec) -> [u8; FILE_RECORD_BYTES] {
    let mut rec = [0u8; FILE_RECORD_BYTES];
    rec[..4].copy_from_slice(&r.series.to_le_bytes());
    rec[4..12].copy_from_slice(&r.t.to_le_bytes());
    rec[12..].copy_from_slice(&r.v.to_le_bytes());
    rec
}

/// One buffered sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    /// Time in ms.
    pub t: i64,
    /// Value bits.
    pub v: u64,
    /// Series id (index into the series table).
    pub series: u32,
}

/// Which group (block window) a timestamp belongs to.
pub type GroupFn = fn(i64, i64) -> i64;

/// The buffering side: push records, spill sorted runs when full.
pub struct Sorter {
    buf: Vec<Rec>,
    capacity: usize,
    dir: PathBuf,
    runs: Vec<PathBuf>,
    group: GroupFn,
    group_arg: i64,
    /// Largest number of records the buffer had room for at once.
    pub peak_records: usize,
}

impl Sorter {
    /// A sorter holding at most `capacity` records (at least 1) in memory,
    /// spilling into `dir` (created on the first spill).
    pub fn new(capacity: usize, dir: &Path, group: GroupFn, group_arg: i64) -> Sorter {
        Sorter {
            buf: Vec::new(),
            capacity: capacity.max(1),
            dir: dir.to_path_buf(),
            runs: Vec::new(),
            group,
            group_arg,
            peak_records: 0,
        }
    }

    /// Adds a record; spills when the buffer is full. `labels` is the
    /// series table (for the sort order).
    pub fn push(&mut self, rec: Rec, labels: &[Labels]) -> std::io::Result<()> {
        if self.buf.len() >= self.capacity || self.buf.capacity() > self.capacity {
            self.spill(labels)?;
            if self.buf.capacity() > self.capacity {
                self.buf.shrink_to(self.capacity);
            }
        }
        if self.buf.len() == self.buf.capacity() {
            // Grow by doubling up to the bound, never past it.
            let more = self.buf.capacity().max(1 << 12).min(self.capacity.saturating_sub(self.buf.len()).max(1));
            self.buf.reserve_exact(more);
        }
        self.buf.push(rec);
        self.peak_records = self.peak_records.max(self.buf.capacity());
        Ok(())
    }

    /// Changes the bound (at least 1 record); a smaller bound takes effect
    /// at the next push.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
    }

    /// Records the buffer has room for now (its allocation).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// Records in memory now.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Runs spilled so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn sort_buf(&mut self, cmp: impl Fn(&Rec, &Rec) -> Ordering) {
        self.buf.sort_unstable_by(cmp);
    }

    fn spill(&mut self, labels: &[Labels]) -> std::io::Result<()> {
        let (g, a) = (self.group, self.group_arg);
        self.sort_buf(|x, y| {
            g(x.t, a)
                .cmp(&g(y.t, a))
                .then_with(|| {
                    if x.series == y.series {
                        Ordering::Equal
                    } else {
                        labels[x.series as usize].cmp(&labels[y.series as usize])
                    }
                })
                .then(x.t.cmp(&y.t))
        });
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("run-{:06}", self.runs.len()));
        let mut w = BufWriter::with_capacity(MIN_RUN_READ_BUFFER, File::create(&path)?);
        for r in &self.buf {
            w.write_all(&encode(r))?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        self.runs.push(path);
        self.buf.clear();
        Ok(())
    }

    /// Sorts what is left in memory and merges it with every run; `rank`
    /// gives each series id its position in label order.
    pub fn finish(mut self, rank: &[u32], read_budget: u64) -> std::io::Result<Merged> {
        let (g, a) = (self.group, self.group_arg);
        self.sort_buf(|x, y| {
            g(x.t, a).cmp(&g(y.t, a)).then(rank[x.series as usize].cmp(&rank[y.series as usize])).then(x.t.cmp(&y.t))
        });
        // Merge runs in passes until one read buffer per run fits the budget.
        let max_ways = usize::try_from(read_budget / MIN_RUN_READ_BUFFER as u64).unwrap_or(usize::MAX).max(2);
        let mut next_id = self.runs.len();
        while self.runs.len() > max_ways {
            let group: Vec<PathBuf> = self.runs.drain(..max_ways).collect();
            let per = usize::try_from(read_budget / group.len() as u64)
                .unwrap_or(MAX_RUN_READ_BUFFER)
                .clamp(MIN_RUN_READ_BUFFER, MAX_RUN_READ_BUFFER);
            let mut sources = Vec::with_capacity(group.len());
            for p in &group {
                sources.push(Source::File(BufReader::with_capacity(per, File::open(p)?)));
            }
            let mut m =
                Merged { sources, heap: BinaryHeap::new(), rank: rank.to_vec(), group: g, group_arg: a, read_bytes: 0 };
            for i in 0..m.sources.len() {
                m.refill(i)?;
            }
            let path = self.dir.join(format!("run-{next_id:06}"));
            next_id += 1;
            let mut w = BufWriter::with_capacity(MIN_RUN_READ_BUFFER, File::create(&path)?);
            while let Some((_, r)) = m.next_rec()? {
                w.write_all(&encode(&r))?;
            }
            w.into_inner().map_err(|e| e.into_error())?;
            for p in &group {
                std::fs::remove_file(p)?;
            }
            self.runs.push(path);
        }
        let per_run = usize::try_from(read_budget / (self.runs.len() as u64).max(1))
            .unwrap_or(MAX_RUN_READ_BUFFER)
            .clamp(MIN_RUN_READ_BUFFER, MAX_RUN_READ_BUFFER);
        let mut sources = Vec::with_capacity(self.runs.len() + 1);
        for p in &self.runs {
            sources.push(Source::File(BufReader::with_capacity(per_run, File::open(p)?)));
        }
        sources.push(Source::Memory(std::mem::take(&mut self.buf).into_iter()));
        let read_bytes = per_run * self.runs.len();
        let mut m =
            Merged { sources, heap: BinaryHeap::new(), rank: rank.to_vec(), group: g, group_arg: a, read_bytes };
        for i in 0..m.sources.len() {
            m.refill(i)?;
        }
        Ok(m)
    }
}

enum Source {
    File(BufReader<File>),
    Memory(std::vec::IntoIter<Rec>),
}

impl Source {
    fn next(&mut self) -> std::io::Result<Option<Rec>> {
        match self {
            Source::Memory(it) => Ok(it.next()),
            Source::File(r) => {
                let mut b = [0u8; FILE_RECORD_BYTES];
                match r.read_exact(&mut b) {
                    Ok(()) => Ok(Some(Rec {
                        series: u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
                        t: i64::from_le_bytes(b[4..12].try_into().expect("8 bytes")),
                        v: u64::from_le_bytes(b[12..].try_into().expect("8 bytes")),
                    })),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// Heap key: (group, rank, t, source index) smallest first; the record rides along.
type Key = Reverse<(i64, u32, i64, usize, u32, u64)>;

/// The merged, sorted stream of every record.
pub struct Merged {
    sources: Vec<Source>,
    heap: BinaryHeap<Key>,
    rank: Vec<u32>,
    group: GroupFn,
    group_arg: i64,
    read_bytes: usize,
}

impl Merged {
    /// Bytes of read buffers over the spilled runs.
    pub fn read_buffer_bytes(&self) -> usize {
        self.read_bytes
    }

    fn refill(&mut self, i: usize) -> std::io::Result<()> {
        if let Some(r) = self.sources[i].next()? {
            let g = (self.group)(r.t, self.group_arg);
            self.heap.push(Reverse((g, self.rank[r.series as usize], r.t, i, r.series, r.v)));
        }
        Ok(())
    }

    /// The next record in `(group, rank, t)` order (ties by source order:
    /// earlier runs hold earlier lines of the input).
    pub fn next_rec(&mut self) -> std::io::Result<Option<(i64, Rec)>> {
        let Some(Reverse((g, _, t, i, series, v))) = self.heap.pop() else { return Ok(None) };
        self.refill(i)?;
        Ok(Some((g, Rec { t, v, series })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(t: i64, w: i64) -> i64 {
        t.div_euclid(w)
    }

    #[test]
    fn spilled_and_in_memory_records_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let labels: Vec<Labels> =
            ["c", "a", "b"].iter().map(|v| Labels::new([("__name__", "m"), ("k", *v)]).unwrap()).collect();
        let rank = vec![2u32, 0, 1];
        let mut s = Sorter::new(3, dir.path(), window, 100);
        let mut input = Vec::new();
        for i in 0..40i64 {
            let series = (i * 7 % 3) as u32;
            let t = (i * 37) % 250;
            input.push(Rec { t, v: i as u64, series });
        }
        for r in &input {
            s.push(*r, &labels).unwrap();
        }
        assert!(s.runs() >= 10);
        assert!(s.peak_records <= 3);
        let mut m = s.finish(&rank, 3 * (4 << 10)).unwrap();
        assert!(m.read_buffer_bytes() <= 3 * (4 << 10));
        let mut out = Vec::new();
        while let Some((g, r)) = m.next_rec().unwrap() {
            out.push((g, rank[r.series as usize], r.t, r.v));
        }
        let mut want: Vec<_> = input.iter().map(|r| (window(r.t, 100), rank[r.series as usize], r.t, r.v)).collect();
        want.sort_by_key(|x| (x.0, x.1, x.2));
        assert_eq!(out.len(), want.len());
        let keys = |v: &[(i64, u32, i64, u64)]| v.iter().map(|x| (x.0, x.1, x.2)).collect::<Vec<_>>();
        assert_eq!(keys(&out), keys(&want));
    }
}

//! One in-memory series: its labels, closed chunks, the open chunk, and
//! out-of-order samples. All methods run under the series' stripe lock.

use std::sync::Arc;

use super::chunk_file::{ChunkRef, HeadChunkError, HeadChunks};
use super::histograms::{HistApplied, HistData};
use super::open_copies::OpenCopy;
use super::symbols::SymLabels;
use crate::chunkenc::{sealed, Chunk, ChunkBytes, Encoding, XorAppender, XorIterator};
use crate::histogram::{HistogramSample, HistogramValue};
use crate::sample::Sample;

/// How many out-of-order samples are buffered (sorted, uncompressed) before
/// they are compressed into an out-of-order chunk (Prometheus' default
/// `out_of_order_cap_max` is 32).
pub(crate) const OOO_CAP: usize = 32;

/// A closed in-order chunk, its bytes in the head chunk store: 24 bytes
/// in RAM whatever the chunk's size ([`STORED_CHUNK_LEN`] when kept in a
/// series' buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredChunk {
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) at: ChunkRef,
}

/// Bytes of one [`StoredChunk`] in a series' buffer: `mint`, `maxt`,
/// segment and offset, little-endian.
pub(crate) const STORED_CHUNK_LEN: usize = 24;

/// Reads a little-endian `u64` at `at` (the caller passes whole records).
#[inline]
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl StoredChunk {
    /// The record's bytes.
    fn to_bytes(self) -> [u8; STORED_CHUNK_LEN] {
        let mut b = [0u8; STORED_CHUNK_LEN];
        b[..8].copy_from_slice(&self.mint.to_le_bytes());
        b[8..16].copy_from_slice(&self.maxt.to_le_bytes());
        b[16..20].copy_from_slice(&self.at.segment().to_le_bytes());
        b[20..].copy_from_slice(&self.at.offset().to_le_bytes());
        b
    }

    /// Decodes a record written by [`StoredChunk::to_bytes`]; `b` is
    /// exactly [`STORED_CHUNK_LEN`] bytes.
    #[inline]
    fn from_bytes(b: &[u8]) -> StoredChunk {
        let at = le_u64(b, 16);
        StoredChunk {
            mint: le_u64(b, 0) as i64,
            maxt: le_u64(b, 8) as i64,
            at: ChunkRef::new(at as u32, (at >> 32) as u32),
        }
    }

    fn to_chunk(self, series_ref: u64, store: &HeadChunks) -> Result<Chunk, HeadChunkError> {
        // XOR or sealed, as the store chose (see `chunk_file`).
        let (encoding, bytes, summary) = store.read_summarized(self.at, Some(series_ref), self.mint, self.maxt)?;
        Ok(Chunk { mint: self.mint, maxt: self.maxt, encoding, bytes, timestamps: None, summary })
    }

    fn decode_into(
        self,
        series_ref: Option<u64>,
        store: &HeadChunks,
        out: &mut Vec<Sample>,
    ) -> Result<(), HeadChunkError> {
        match store.read(self.at, series_ref, self.mint, self.maxt)? {
            (Encoding::Xor, bytes) => decode_xor(bytes.as_ref(), out),
            (Encoding::Sealed, bytes) => {
                // Checked by the record's CRC: only a bug could fail here.
                if let Err(e) = sealed::decode(bytes.as_ref(), out) {
                    tracing::error!(error = %e, "head chunk failed to decode");
                }
            }
            (encoding @ (Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram), bytes) => {
                // Not written by the head yet: the chunk's float view.
                let c = Chunk { mint: self.mint, maxt: self.maxt, encoding, bytes, timestamps: None, summary: None };
                if let Err(e) = c.decode_into(out) {
                    tracing::error!(error = %e, "head chunk failed to decode");
                }
            }
        }
        Ok(())
    }
}

/// A closed, immutable out-of-order chunk (these stay on the heap). The
/// bytes are exact-size and shared with readers without copying.
#[derive(Debug, Clone)]
pub(crate) struct ClosedChunk {
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) bytes: Arc<[u8]>,
}

impl ClosedChunk {
    fn from_samples(samples: &[Sample]) -> Option<ClosedChunk> {
        let (first, last) = (samples.first()?, samples.last()?);
        let mut app = XorAppender::new();
        for s in samples {
            app.append(s.t, s.v);
        }
        Some(ClosedChunk { mint: first.t, maxt: last.t, bytes: app.into_bytes().into() })
    }

    fn to_chunk(&self) -> Chunk {
        Chunk {
            mint: self.mint,
            maxt: self.maxt,
            encoding: Encoding::Xor,
            bytes: ChunkBytes::Heap(self.bytes.clone()),
            timestamps: None,
            summary: None,
        }
    }

    fn decode_into(&self, out: &mut Vec<Sample>) {
        decode_xor(&self.bytes, out);
    }
}

/// Decodes bytes the head itself encoded. They cannot be corrupt; if they
/// were, the samples decoded before the damage are kept and the error is
/// reported through `tracing` rather than by panicking.
fn decode_xor(bytes: &[u8], out: &mut Vec<Sample>) {
    if let Err(e) = XorIterator::new(bytes).decode_into(out) {
        tracing::error!(error = %e, "head chunk failed to decode");
    }
}

/// A series' closed in-order chunks, sorted by time: the records kept
/// after its labels (see [`SymLabels`]), read in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredChunks<'a>(&'a [u8]);

impl<'a> StoredChunks<'a> {
    /// Number of chunks.
    #[inline]
    pub(crate) fn len(self) -> usize {
        self.0.len() / STORED_CHUNK_LEN
    }

    /// Whether there are none.
    #[inline]
    pub(crate) fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The `i`-th chunk.
    #[inline]
    pub(crate) fn get(self, i: usize) -> Option<StoredChunk> {
        self.0.get(i * STORED_CHUNK_LEN..(i + 1) * STORED_CHUNK_LEN).map(StoredChunk::from_bytes)
    }

    /// The oldest chunk.
    pub(crate) fn first(self) -> Option<StoredChunk> {
        self.get(0)
    }

    /// The newest chunk.
    pub(crate) fn last(self) -> Option<StoredChunk> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Heap bytes of the records.
    #[inline]
    pub(crate) fn byte_len(self) -> usize {
        self.0.len()
    }

    /// Where the newest chunk's record ends (its last byte), for a
    /// prefetch hint.
    #[inline]
    pub(crate) fn newest_record_end(self) -> Option<*const u8> {
        self.0.last().map(|b| b as *const u8)
    }

    /// The chunks in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = StoredChunk> + 'a {
        self.0.chunks_exact(STORED_CHUNK_LEN).map(StoredChunk::from_bytes)
    }

    /// The chunks from `from` (inclusive) to `to` (exclusive).
    fn range(self, from: usize, to: usize) -> StoredChunks<'a> {
        StoredChunks(&self.0[from * STORED_CHUNK_LEN..to * STORED_CHUNK_LEN])
    }

    /// The index of the first chunk for which `pred` is false (`pred`
    /// true for a prefix of the chunks), as `slice::partition_point`.
    pub(crate) fn partition_point(self, mut pred: impl FnMut(&StoredChunk) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid) {
                Some(c) if pred(&c) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }
}

/// The chunk samples are being appended to. It is never empty (created
/// with its first sample), and its start time is that sample's, decoded
/// from the bytes when needed (rarely: chunk cuts and reads) rather than
/// kept: 8 bytes per series.
#[derive(Debug)]
pub(crate) struct OpenChunk {
    pub(crate) app: XorAppender,
}

impl OpenChunk {
    /// Timestamp of the first sample.
    #[inline]
    pub(crate) fn mint(&self) -> i64 {
        // Never empty (see above); an empty one would hold no sample, so
        // its start is the end.
        self.app.first_t().unwrap_or_else(|| self.app.last_t())
    }
}

/// The parts of a series most series never have, boxed: out-of-order
/// floats (closed chunks, which may overlap each other and the in-order
/// chunks, and a small sorted buffer) and native histograms.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// The series' histogram samples, if it ever had any.
    pub(crate) hist: Option<Box<HistData>>,
    pub(crate) chunks: Vec<ClosedChunk>,
    /// Sorted by strictly increasing `t`; at most [`OOO_CAP`] samples.
    pub(crate) buf: Vec<Sample>,
}

impl Extra {
    /// Whether it holds nothing (and can be dropped).
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.buf.is_empty() && self.hist.is_none()
    }
}

/// The parameters chunk cutting needs, and where closed chunks go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CutParams<'a> {
    pub(crate) chunk_range: i64,
    pub(crate) samples_per_chunk: usize,
    /// Cut on a grid shifted per series (see `staggered_chunk_end`).
    pub(crate) stagger: bool,
    pub(crate) store: &'a HeadChunks,
}

/// What applying one sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    InOrder,
    OutOfOrder,
    /// An identical sample was already stored: nothing changed.
    Identical,
    RejectedOutOfOrder,
    RejectedDuplicate,
}

/// One series held by the head.
///
/// Invariants: closed in-order chunks are sorted by time, do not overlap
/// and all end before the open chunk starts; every in-order sample is older
/// than the open chunk's last sample. Out-of-order samples can be anywhere.
#[derive(Debug)]
pub(crate) struct MemSeries {
    /// The labels as ids in the head's symbol table (see `symbols.rs`),
    /// and after them, in the same exact-size allocation, the closed
    /// in-order chunks ([`MemSeries::chunks`]): one is added per ~120
    /// samples, so a spare slot would rarely be used; sharing the labels'
    /// allocation saves a pointer and a length in the series and one
    /// allocation (its header and rounding) per series.
    pub(crate) labels: SymLabels,
    pub(crate) open: Option<OpenChunk>,
    /// The open chunk is cut when a sample at or after this time arrives
    /// (Prometheus' `nextAt`).
    pub(crate) next_at: i64,
    pub(crate) extra: Option<Box<Extra>>,
    /// Holds by open appenders: one per buffered, not yet applied sample,
    /// plus one by the appender that created the series until it commits
    /// or rolls back. A held series is never garbage-collected.
    pub(crate) pending: u32,
    /// Whether the series' `Series` record has reached the commit log.
    pub(crate) logged: bool,
}

impl MemSeries {
    pub(crate) fn new(labels: SymLabels) -> MemSeries {
        MemSeries { labels, open: None, next_at: i64::MIN, extra: None, pending: 0, logged: false }
    }

    /// The closed in-order chunks, sorted by time.
    #[inline]
    pub(crate) fn chunks(&self) -> StoredChunks<'_> {
        StoredChunks(self.labels.tail())
    }

    /// The newest in-order sample as (t, value bits).
    #[inline]
    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.open.as_ref().map(|c| (c.app.last_t(), c.app.last_v_bits()))
    }

    /// Whether the series holds no samples at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_none() && self.chunks().is_empty() && self.extra.as_ref().is_none_or(|o| o.is_empty())
    }

    /// Value bits of the stored sample at `t`, if any (in-order or OOO).
    /// Decodes at most the chunks whose range covers `t`; used only on the
    /// out-of-order path.
    /// `series_ref`, when known, is checked against the stored chunk.
    pub(crate) fn value_at(&self, series_ref: Option<u64>, t: i64, store: &HeadChunks) -> Option<u64> {
        let mut buf = Vec::new();
        let find = |buf: &Vec<Sample>| buf.iter().find(|s| s.t == t).map(|s| s.v.to_bits());
        if let Some(o) = &self.extra {
            if let Ok(i) = o.buf.binary_search_by_key(&t, |s| s.t) {
                return Some(o.buf[i].v.to_bits());
            }
            for c in o.chunks.iter().filter(|c| c.mint <= t && t <= c.maxt) {
                buf.clear();
                c.decode_into(&mut buf);
                if let Some(v) = find(&buf) {
                    return Some(v);
                }
            }
        }
        if let Some(c) = &self.open {
            if c.mint() <= t && t <= c.app.last_t() {
                buf.clear();
                decode_xor(c.app.bytes(), &mut buf);
                return find(&buf);
            }
        }
        let closed = self.chunks();
        match closed.get(closed.partition_point(|c| c.maxt < t)) {
            Some(c) if c.mint <= t => {
                buf.clear();
                if let Err(e) = c.decode_into(series_ref, store, &mut buf) {
                    // Unreadable: the sample cannot be a known duplicate.
                    tracing::error!(?series_ref, error = %e, "head chunk unreadable");
                }
                find(&buf)
            }
            _ => None,
        }
    }

    /// Stores one sample that passed the appender's checks (or comes from
    /// replay). The decision depends only on this series' data, so
    /// replaying a log in commit order reproduces the same state.
    pub(crate) fn apply(&mut self, series_ref: u64, t: i64, v: f64, ooo_enabled: bool, p: CutParams<'_>) -> Applied {
        // A timestamp holds one sample: a histogram there makes this a
        // duplicate (only series that ever had histograms look).
        if self.hist().is_some_and(|h| h.has_at(t)) {
            return Applied::RejectedDuplicate;
        }
        match self.last() {
            Some((lt, lv)) if t == lt => {
                if lv == v.to_bits() {
                    Applied::Identical
                } else {
                    Applied::RejectedDuplicate
                }
            }
            Some((lt, _)) if t < lt => {
                if !ooo_enabled {
                    return Applied::RejectedOutOfOrder;
                }
                match self.value_at(Some(series_ref), t, p.store) {
                    Some(bits) if bits == v.to_bits() => Applied::Identical,
                    Some(_) => Applied::RejectedDuplicate,
                    None => {
                        self.insert_ooo(t, v);
                        Applied::OutOfOrder
                    }
                }
            }
            _ => {
                self.append_in_order(series_ref, t, v, p);
                Applied::InOrder
            }
        }
    }

    /// The series' histogram samples, if it has any.
    #[inline]
    pub(crate) fn hist(&self) -> Option<&HistData> {
        self.extra.as_ref()?.hist.as_deref()
    }

    /// Stores one histogram sample that passed the appender's checks (or
    /// comes from replay). A timestamp that holds a float is a duplicate.
    pub(crate) fn apply_histogram(
        &mut self,
        series_ref: u64,
        t: i64,
        h: &HistogramValue,
        ooo_enabled: bool,
        store: &HeadChunks,
    ) -> Applied {
        let float_at_t = match self.last() {
            None => false,
            Some((lt, _)) if t > lt => false,
            _ => self.value_at(Some(series_ref), t, store).is_some(),
        };
        if float_at_t {
            return Applied::RejectedDuplicate;
        }
        let extra = self.extra.get_or_insert_with(Default::default);
        let hist = extra.hist.get_or_insert_with(Default::default);
        match hist.apply(t, h, ooo_enabled) {
            HistApplied::InOrder => Applied::InOrder,
            HistApplied::OutOfOrder => Applied::OutOfOrder,
            HistApplied::Identical => Applied::Identical,
            HistApplied::RejectedOutOfOrder => Applied::RejectedOutOfOrder,
            HistApplied::RejectedDuplicate => Applied::RejectedDuplicate,
        }
    }

    /// Every histogram sample with `mint <= t < maxt`, sorted.
    pub(crate) fn histograms_in(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        self.hist().map_or_else(Vec::new, |h| h.samples_in(mint, maxt))
    }

    /// Appends a sample newer than every in-order sample, cutting chunks by
    /// Prometheus' rules (`head_append.go`: `appendPreprocessor`).
    fn append_in_order(&mut self, series_ref: u64, t: i64, v: f64, p: CutParams<'_>) {
        let cut = match &self.open {
            None => true,
            Some(c) => {
                let n = c.app.num_samples();
                // At a quarter of the target size, predict an end time that
                // spreads the rest of this block range evenly over chunks
                // (staggered: the next point of this series' own grid).
                if n == p.samples_per_chunk / 4 {
                    self.next_at = if p.stagger {
                        staggered_chunk_end(series_ref, c.mint(), c.app.last_t(), p.chunk_range)
                    } else {
                        compute_chunk_end_time(c.mint(), c.app.last_t(), self.next_at, 4)
                    };
                }
                // Twice the target means the rate went up: cut regardless.
                t >= self.next_at || n >= p.samples_per_chunk * 2 || c.app.is_full()
            }
        };
        if cut {
            if let Some(old) = self.open.take() {
                self.push_closed(series_ref, old.mint(), old.app.last_t(), old.app.bytes(), p.store);
            }
            self.open = Some(OpenChunk { app: XorAppender::new() });
            self.next_at = range_end(t, p.chunk_range);
        }
        if let Some(c) = &mut self.open {
            c.app.append(t, v);
        }
    }

    /// Writes a closed in-order chunk to the store (staged for the sealer,
    /// or re-encoded here: [`HeadChunks::write_closed`]) and keeps its
    /// reference.
    fn push_closed(&mut self, series_ref: u64, mint: i64, maxt: i64, bytes: &[u8], store: &HeadChunks) {
        let at = store.write_closed(series_ref, mint, maxt, bytes);
        self.labels.extend_tail(&StoredChunk { mint, maxt, at }.to_bytes());
    }

    /// Moves the reference of the closed chunk starting at `mint` from
    /// `old` to `new` (the sealer's swap), only if the series still holds
    /// exactly `old` for it. Returns whether it did.
    pub(crate) fn replace_chunk_ref(&mut self, mint: i64, old: ChunkRef, new: ChunkRef) -> bool {
        let chunks = self.chunks();
        let i = chunks.partition_point(|c| c.mint < mint);
        match chunks.get(i) {
            Some(c) if c.mint == mint && c.at == old => {
                let rec = StoredChunk { at: new, ..c }.to_bytes();
                self.labels.tail_mut()[i * STORED_CHUNK_LEN..(i + 1) * STORED_CHUNK_LEN].copy_from_slice(&rec);
                true
            }
            _ => false,
        }
    }

    fn insert_ooo(&mut self, t: i64, v: f64) {
        let o = self.extra.get_or_insert_with(Default::default);
        let i = o.buf.partition_point(|s| s.t < t);
        o.buf.insert(i, Sample::new(t, v));
        if o.buf.len() >= OOO_CAP {
            if let Some(c) = ClosedChunk::from_samples(&o.buf) {
                o.chunks.push(c);
            }
            o.buf = Vec::new();
        }
    }

    /// Time range of all samples, if any.
    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let mut r: Option<(i64, i64)> = None;
        let mut add = |lo: i64, hi: i64| {
            r = Some(match r {
                None => (lo, hi),
                Some((a, b)) => (a.min(lo), b.max(hi)),
            })
        };
        if let Some(c) = self.chunks().first() {
            add(c.mint, c.maxt);
        }
        if let Some(c) = self.chunks().last() {
            add(c.mint, c.maxt);
        }
        if let Some(c) = &self.open {
            add(c.mint(), c.app.last_t());
        }
        if let Some(o) = &self.extra {
            for c in &o.chunks {
                add(c.mint, c.maxt);
            }
            if let (Some(a), Some(b)) = (o.buf.first(), o.buf.last()) {
                add(a.t, b.t);
            }
            if let Some((a, b)) = o.hist.as_ref().and_then(|h| h.time_range()) {
                add(a, b);
            }
        }
        r
    }

    /// Whether any sample may lie in `[mint, maxt]` (chunk granularity).
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let hit = |lo: i64, hi: i64| lo <= maxt && hi >= mint;
        self.chunks().iter().any(|c| hit(c.mint, c.maxt))
            || self.open.as_ref().is_some_and(|c| hit(c.mint(), c.app.last_t()))
            || self.extra.as_ref().is_some_and(|o| {
                o.chunks.iter().any(|c| hit(c.mint, c.maxt))
                    || o.buf.iter().any(|s| mint <= s.t && s.t <= maxt)
                    || o.hist.as_ref().is_some_and(|h| h.overlaps(mint, maxt))
            })
    }

    /// Chunks overlapping `[mint, maxt]`: in-order ones, the open chunk
    /// copied, then out-of-order ones; sorted by `mint`. Stored chunks that
    /// cannot be read back are left out and their errors pushed to `damaged`.
    ///
    /// When the series has no out-of-order data, the open chunk (if in
    /// range) is not in the list: its bytes are appended to `copies` and
    /// its place is returned as an [`OpenCopy`], for the caller to push as
    /// the list's last chunk once `copies` is frozen into a buffer shared by
    /// a run of series (the list has room reserved for it). With
    /// out-of-order data the open chunk is copied into its own allocation
    /// and sorted in with the others, and no `OpenCopy` is returned.
    pub(crate) fn chunks_in(
        &self,
        series_ref: u64,
        mint: i64,
        maxt: i64,
        store: &HeadChunks,
        damaged: &mut Vec<HeadChunkError>,
        copies: &mut Vec<u8>,
    ) -> (Vec<Chunk>, Option<OpenCopy>) {
        let hit = |lo: i64, hi: i64| lo <= maxt && hi >= mint;
        // Closed chunks are sorted and do not overlap: the ones in range
        // are one run, found by binary search instead of a scan.
        let closed = self.chunks();
        let first = closed.partition_point(|c| c.maxt < mint);
        let last = first + closed.range(first, closed.len()).partition_point(|c| c.mint <= maxt);
        let open = self.open.as_ref().filter(|c| hit(c.mint(), c.app.last_t()));
        // Sized once: the list is held for the whole query, and growing it
        // from empty allocated room for four chunks where one or two is usual.
        let ooo_hint = self.extra.as_ref().map_or(0, |o| o.chunks.len() + 1);
        let mut out: Vec<Chunk> = Vec::with_capacity(last - first + usize::from(open.is_some()) + ooo_hint);
        for c in closed.range(first, last).iter() {
            match c.to_chunk(series_ref, store) {
                Ok(c) => out.push(c),
                Err(e) => damaged.push(e),
            }
        }
        let Some(o) = &self.extra else {
            // In-order data only: the open chunk comes last, from the
            // shared buffer.
            let copy = open.map(|c| {
                let bytes = c.app.bytes();
                let start = copies.len();
                copies.extend_from_slice(bytes);
                // A chunk holds at most 65,535 samples of at most ~20
                // bytes each, and the caller freezes `copies` long before
                // 4 GiB: both fit a `u32`.
                OpenCopy { mint: c.mint(), maxt: c.app.last_t(), start: start as u32, len: bytes.len() as u32 }
            });
            return (out, copy);
        };
        if let Some(c) = open {
            out.push(Chunk {
                mint: c.mint(),
                maxt: c.app.last_t(),
                encoding: Encoding::Xor,
                bytes: ChunkBytes::Heap(c.app.bytes().into()),
                timestamps: None,
                summary: None,
            });
        }
        // In-order chunks (closed, then the open one) are already sorted by
        // `mint`; only out-of-order chunks need sorting in.
        out.extend(o.chunks.iter().filter(|c| hit(c.mint, c.maxt)).map(ClosedChunk::to_chunk));
        if o.buf.iter().any(|s| mint <= s.t && s.t <= maxt) {
            out.extend(ClosedChunk::from_samples(&o.buf).map(|c| c.to_chunk()));
        }
        if let Some(h) = &o.hist {
            h.chunks_in(mint, maxt, &mut out);
        }
        out.sort_by_key(|c| c.mint);
        (out, None)
    }

    /// Appends the samples with `mint <= t <= maxt` (`range`) to `out`, oldest first,
    /// exactly as iterating over [`MemSeries::chunks_in`]'s chunks clipped
    /// to the range gives them, but read in place: the open chunk is
    /// decoded from the series' own bytes (no copy, no chunk list), and a
    /// closed chunk from its record through `scratch`. A series with
    /// out-of-order data is read through the chunk list and the querier's
    /// merging iterator, as a select reads it. Closed chunks that cannot be
    /// read back are left out and pushed to `damaged`.
    pub(crate) fn samples_between(
        &self,
        series_ref: u64,
        (mint, maxt): (i64, i64),
        store: &HeadChunks,
        damaged: &mut Vec<HeadChunkError>,
        out: &mut Vec<Sample>,
        scratch: &mut Vec<Sample>,
    ) {
        if self.extra.is_some() {
            // Overlapping chunks: merged as the general path merges them
            // (one sample per timestamp), not re-implemented here.
            let (chunks, _) = self.chunks_in(series_ref, mint, maxt, store, damaged, &mut Vec::new());
            if !chunks.is_empty() {
                let mut it = crate::querier::SeriesIterator::new(chunks, mint, maxt);
                crate::sample::SampleIterator::drain_into(&mut it, out);
                if let Some(e) = crate::sample::SampleIterator::err(&it) {
                    tracing::error!(error = %e, "head chunk failed to decode");
                }
            }
            return;
        }
        // In-order data only: closed chunks are sorted, do not overlap and
        // end before the open chunk starts, and each holds strictly
        // increasing timestamps; their samples in range, one chunk after
        // the other, are what the iterator yields.
        let closed = self.chunks();
        let first = closed.partition_point(|c| c.maxt < mint);
        let last = first + closed.range(first, closed.len()).partition_point(|c| c.mint <= maxt);
        for c in closed.range(first, last).iter() {
            scratch.clear();
            match c.decode_into(Some(series_ref), store, scratch) {
                Ok(()) => out.extend(scratch.iter().filter(|s| mint <= s.t && s.t <= maxt)),
                Err(e) => damaged.push(e),
            }
        }
        if let Some(c) = self.open.as_ref().filter(|c| c.app.last_t() >= mint) {
            // Decoding stops at the first sample past `maxt`; the head
            // encoded these bytes itself, so they cannot fail to decode.
            if XorIterator::new(c.app.bytes()).drain_range(mint, maxt, out) == crate::chunkenc::DrainEnd::Failed {
                tracing::error!(series_ref, "open head chunk failed to decode");
            }
        }
    }

    /// Every sample with `mint <= t < maxt`, sorted, one per timestamp
    /// (in-order and out-of-order data merged). Fails if a stored chunk
    /// cannot be read back.
    pub(crate) fn samples_in(
        &self,
        series_ref: u64,
        mint: i64,
        maxt: i64,
        store: &HeadChunks,
    ) -> Result<Vec<Sample>, HeadChunkError> {
        let hit = |lo: i64, hi: i64| lo < maxt && hi >= mint;
        let mut out = Vec::new();
        for c in self.chunks().iter().filter(|c| hit(c.mint, c.maxt)) {
            c.decode_into(Some(series_ref), store, &mut out)?;
        }
        if let Some(c) = &self.open {
            if hit(c.mint(), c.app.last_t()) {
                decode_xor(c.app.bytes(), &mut out);
            }
        }
        let mut unsorted = false;
        if let Some(o) = &self.extra {
            for c in o.chunks.iter().filter(|c| hit(c.mint, c.maxt)) {
                c.decode_into(&mut out);
                unsorted = true;
            }
            out.extend_from_slice(&o.buf);
            unsorted |= !o.buf.is_empty();
        }
        out.retain(|s| mint <= s.t && s.t < maxt);
        if unsorted {
            // Stable: for equal timestamps the in-order sample (pushed
            // first) wins; duplicates hold identical values anyway.
            out.sort_by_key(|s| s.t);
            out.dedup_by_key(|s| s.t);
        }
        Ok(out)
    }

    /// Drops every sample with `t < mint`. Chunks entirely below `mint` are
    /// freed; a chunk that straddles `mint` is re-encoded without the old
    /// samples. Returns the number of chunks freed.
    pub(crate) fn truncate(&mut self, series_ref: u64, mint: i64, store: &HeadChunks) -> usize {
        let before = self.chunks().len();
        if self.chunks().iter().any(|c| c.maxt < mint) {
            let kept: Vec<u8> =
                self.chunks().iter().filter(|c| c.maxt >= mint).flat_map(StoredChunk::to_bytes).collect();
            self.labels.set_tail(&kept);
        }
        let mut freed = before - self.chunks().len();
        if let Some(first) = self.chunks().first() {
            if first.mint < mint {
                // Re-encoded without the old samples, as a new record; the
                // old one goes with its segment.
                let mut samples = Vec::new();
                match first.decode_into(Some(series_ref), store, &mut samples) {
                    Ok(()) => {
                        samples.retain(|s| s.t >= mint);
                        if let Some(c) = ClosedChunk::from_samples(&samples) {
                            let at = store.write(series_ref, c.mint, c.maxt, &c.bytes);
                            let rec = StoredChunk { mint: c.mint, maxt: c.maxt, at }.to_bytes();
                            self.labels.tail_mut()[..STORED_CHUNK_LEN].copy_from_slice(&rec);
                        }
                    }
                    // Kept as it is: readers report it, and it is dropped
                    // once wholly older than the head.
                    Err(e) => tracing::error!(series_ref, error = %e, "head chunk unreadable at truncation"),
                }
            }
        }
        if let Some(c) = &mut self.open {
            if c.app.last_t() < mint {
                self.open = None;
                freed += 1;
            } else if c.mint() < mint {
                let mut samples = Vec::new();
                decode_xor(c.app.bytes(), &mut samples);
                let mut app = XorAppender::new();
                for s in samples.iter().filter(|s| s.t >= mint) {
                    app.append(s.t, s.v);
                }
                // `last_t >= mint`, so at least one sample survives and
                // the chunk stays non-empty.
                c.app = app;
            }
        }
        if let Some(o) = &mut self.extra {
            let before = o.chunks.len();
            o.chunks.retain(|c| c.maxt >= mint);
            freed += before - o.chunks.len();
            for c in o.chunks.iter_mut().filter(|c| c.mint < mint) {
                *c = reencode_from(c, mint);
            }
            o.buf.retain(|s| s.t >= mint);
            if let Some(h) = &mut o.hist {
                freed += h.truncate(mint);
                if h.is_empty() {
                    o.hist = None;
                }
            }
            if o.is_empty() {
                self.extra = None;
            }
        }
        freed
    }

    /// Number of chunks held (in-order closed + open + out-of-order closed).
    pub(crate) fn num_chunks(&self) -> usize {
        self.chunks().len()
            + usize::from(self.open.is_some())
            + self.extra.as_ref().map_or(0, |o| o.chunks.len() + o.hist.as_ref().map_or(0, |h| h.num_chunks()))
    }

    /// Approximate heap bytes owned by this series (its box included; the
    /// bytes of stored chunks are the store's).
    pub(crate) fn heap_bytes(&self) -> usize {
        let closed = |cs: &Vec<ClosedChunk>| {
            cs.capacity() * std::mem::size_of::<ClosedChunk>() + cs.iter().map(|c| c.bytes.len() + 16).sum::<usize>()
        };
        std::mem::size_of::<MemSeries>()
            + self.labels.heap_bytes()
            + self.chunks().byte_len()
            + self.open.as_ref().map_or(0, |c| c.app.heap_bytes())
            + self.extra.as_ref().map_or(0, |o| {
                std::mem::size_of::<Extra>()
                    + closed(&o.chunks)
                    + o.buf.capacity() * std::mem::size_of::<Sample>()
                    + o.hist.as_ref().map_or(0, |h| h.heap_bytes())
            })
    }
}

/// A closed chunk without its samples older than `mint` (at least one
/// sample, its last, is `>= mint`).
fn reencode_from(c: &ClosedChunk, mint: i64) -> ClosedChunk {
    let mut samples = Vec::new();
    c.decode_into(&mut samples);
    samples.retain(|s| s.t >= mint);
    ClosedChunk::from_samples(&samples).unwrap_or_else(|| c.clone())
}

/// End of the block range containing `t`: the next multiple of `range`
/// (ranges are aligned to 0). Prometheus' `rangeForTimestamp`.
pub(crate) fn range_end(t: i64, range: i64) -> i64 {
    t.div_euclid(range).saturating_mul(range).saturating_add(range)
}

/// Where a series cuts the chunk it started at `start`, seen at `cur`
/// (the chunk is a quarter of its target size), when cuts are staggered.
///
/// The rate seen so far gives the chunk length `len` that splits a whole
/// block range into `n` equal chunks (as Prometheus' prediction does from a
/// range start). The series cuts on the grid `range_start + phase + k·len`,
/// `phase` in `[0, len)` fixed by its ref (a Fibonacci hash, so consecutive
/// refs spread evenly), and always at the range's end. The chunk ends at
/// the first grid point after `cur`: between a quarter and 1¼ of `len`.
/// Every series of a fleet scraped together is then at a different point
/// of its chunk at any moment, so the open chunks hold half a chunk each on
/// average instead of all filling up at once (the head's peak memory), for
/// about one more chunk per range. When a range holds one chunk or less
/// (sparse series) the rule is Prometheus' own: cut at the range's end.
///
/// Depends only on the ref and the chunk's samples, so replaying the same
/// samples cuts the same chunks.
pub(crate) fn staggered_chunk_end(series_ref: u64, start: i64, cur: i64, range: i64) -> i64 {
    let end = range_end(start, range);
    let quarter = i128::from(cur) - i128::from(start) + 1;
    let n = i128::from(range) / (quarter * 4).max(1);
    if n <= 1 {
        return end;
    }
    let len = i128::from(range) / n;
    let phase = ((u128::from(series_ref.wrapping_mul(0x9E37_79B9_7F4A_7C15)) * len as u128) >> 64) as i128;
    let base = i128::from(end) - i128::from(range) + phase;
    let cur = i128::from(cur);
    let k = if cur < base { 0 } else { (cur - base) / len + 1 };
    // `base + k·len > cur >= start`; capped at the range end, which fits.
    (base + k * len).min(i128::from(end)) as i64
}

/// Prometheus' `computeChunkEndTime`: assuming samples keep arriving at the
/// rate seen between `start` and `cur`, and that the chunk is
/// `1/ratio_to_full` full, the end time that splits `[start, max)` into
/// equally sized chunks.
pub(crate) fn compute_chunk_end_time(start: i64, cur: i64, max: i64, ratio_to_full: i64) -> i64 {
    let span = (max as f64) - (start as f64);
    let n = span / (((cur as f64) - (start as f64) + 1.0) * ratio_to_full as f64);
    if n <= 1.0 {
        return max;
    }
    (start as f64 + span / n.floor()) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_struct_stays_small() {
        // One per series, boxed: every word here costs ~8 MB at 1 M series.
        // ≤ 88 bytes: glibc serves the box from a 96-byte chunk (8 bytes of
        // header, 16-byte steps), where 104 took a 112-byte one. The open
        // chunk's appender is 48 of them.
        assert!(std::mem::size_of::<MemSeries>() <= 88, "{}", std::mem::size_of::<MemSeries>());
        assert!(std::mem::size_of::<Option<OpenChunk>>() <= 48);
        assert_eq!(std::mem::size_of::<StoredChunk>(), 24);
    }

    #[test]
    fn chunk_end_time_splits_the_range_evenly() {
        // 15 s scrapes from 0: after 30 samples the 2 h range is predicted
        // to hold 4 chunks of 120 samples.
        assert_eq!(compute_chunk_end_time(0, 29 * 15_000, 7_200_000, 4), 1_800_000);
        // Sparse data: one chunk for the whole range.
        assert_eq!(compute_chunk_end_time(0, 6_000_000, 7_200_000, 4), 7_200_000);
        assert_eq!(range_end(-1, 100), 0);
        assert_eq!(range_end(0, 100), 100);
        assert_eq!(range_end(199, 100), 200);
    }

    const RANGE: i64 = 7_200_000;

    fn params(store: &HeadChunks, stagger: bool) -> CutParams<'_> {
        CutParams { chunk_range: RANGE, samples_per_chunk: 120, stagger, store }
    }

    /// Samples in each chunk (closed ones, then the open one).
    fn chunk_sizes(s: &MemSeries, store: &HeadChunks) -> Vec<usize> {
        let mut sizes = Vec::new();
        for c in s.chunks().iter() {
            let mut out = Vec::new();
            c.decode_into(None, store, &mut out).unwrap();
            sizes.push(out.len());
        }
        sizes.extend(s.open.as_ref().map(|c| c.app.num_samples()));
        sizes
    }

    #[test]
    fn staggered_cuts_stay_within_a_quarter_and_one_and_a_quarter_chunks() {
        let store = HeadChunks::in_memory();
        for r in 1..=300u64 {
            let mut s = MemSeries::new(SymLabels::default());
            // 15 s scrapes over two whole block ranges.
            for i in 0..960 {
                assert_eq!(s.apply(r, i * 15_000, i as f64, false, params(&store, true)), Applied::InOrder);
            }
            let sizes = chunk_sizes(&s, &store);
            assert_eq!(sizes.iter().sum::<usize>(), 960, "ref {r}: {sizes:?}");
            assert!(sizes.iter().all(|&n| (1..=150).contains(&n)), "ref {r}: {sizes:?}");
            // The interior chunks are whole: 120 samples.
            assert!(sizes.iter().filter(|&&n| n != 120).count() <= 4, "ref {r}: {sizes:?}");
            assert!((8..=10).contains(&sizes.len()), "ref {r}: {sizes:?}");
            // No chunk crosses the range boundary.
            for c in s.chunks().iter() {
                assert_eq!(range_end(c.mint, RANGE), range_end(c.maxt, RANGE), "ref {r}");
            }
        }
    }

    #[test]
    fn staggered_open_chunks_hold_half_a_chunk_on_average() {
        // 1,000 series scraped together: with aligned cuts every open chunk
        // holds 120 samples just before each cut; staggered, the sum over
        // the series stays near half that at every scrape.
        let store = HeadChunks::in_memory();
        let n = 1000u64;
        for stagger in [false, true] {
            let mut fleet: Vec<MemSeries> = (0..n).map(|_| MemSeries::new(SymLabels::default())).collect();
            let mut peak = 0usize;
            for i in 0..480i64 {
                for (r, s) in fleet.iter_mut().enumerate() {
                    s.apply(r as u64 + 1, i * 15_000, 1.0, false, params(&store, stagger));
                }
                if i >= 120 {
                    let open: usize = fleet.iter().map(|s| s.open.as_ref().map_or(0, |c| c.app.num_samples())).sum();
                    peak = peak.max(open);
                }
            }
            let per_series = peak as f64 / n as f64;
            if stagger {
                assert!(per_series < 75.0, "{per_series}");
            } else {
                assert_eq!(peak, 120 * n as usize);
            }
        }
    }

    #[test]
    fn staggered_end_falls_back_to_the_range_end() {
        // Sparse: a quarter chunk spans more than a quarter range.
        assert_eq!(staggered_chunk_end(7, 0, 2_000_000, RANGE), RANGE);
        // Extreme times do not overflow.
        let t = i64::MAX - 10;
        assert!(staggered_chunk_end(u64::MAX, t - 5, t, RANGE) > t);
        let t = i64::MIN + 10;
        assert!(staggered_chunk_end(3, t, t + 5, RANGE) > t + 5);
        // Always after `cur`, never past the range's end.
        for r in 0..1000u64 {
            let e = staggered_chunk_end(r, 0, 29 * 15_000, RANGE);
            assert!(e > 29 * 15_000 && e <= RANGE, "{r}: {e}");
        }
    }
}

//! A series' native-histogram samples in the head: an in-order stream of
//! histogram chunks (closed ones on the heap, one open appender) and a
//! sorted buffer of out-of-order histograms.
//!
//! Floats and histograms of one series are two streams, each in time order
//! on its own; a timestamp holds a sample of one kind at most (an append at
//! a timestamp the other kind holds is a duplicate). Readers get the
//! histogram stream as chunks of [`Encoding::Histogram`] /
//! [`Encoding::FloatHistogram`] beside the float chunks; the querier's
//! series iterator reads the two streams apart and merges them by time.
//!
//! Chunks are cut as Prometheus cuts them (the appender reports a counter
//! reset, a schema or zero-threshold change, new custom bounds, a switch
//! between counter and gauge, or integer and float counts), and at
//! [`SAMPLES_PER_HISTOGRAM_CHUNK`] samples or [`HISTOGRAM_CHUNK_BYTES`]
//! bytes, whichever comes first.

use std::sync::Arc;

use crate::chunkenc::{AppendOutcome, Chunk, ChunkBytes, Encoding, FloatHistogramAppender, HistogramAppender};
use crate::histogram::{HistogramSample, HistogramValue};
use crate::sample::SampleIterator;

/// Samples after which an open histogram chunk is cut (Prometheus cuts
/// histogram chunks by size; 120 keeps them comparable to float chunks).
pub(crate) const SAMPLES_PER_HISTOGRAM_CHUNK: usize = 120;

/// Bytes after which an open histogram chunk is cut (Prometheus' target
/// size for histogram chunks is 1 KiB).
pub(crate) const HISTOGRAM_CHUNK_BYTES: usize = 1024;

/// A closed histogram chunk.
#[derive(Debug, Clone)]
pub(crate) struct HistChunk {
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) encoding: Encoding,
    pub(crate) bytes: Arc<[u8]>,
}

impl HistChunk {
    fn to_chunk(&self) -> Chunk {
        Chunk {
            mint: self.mint,
            maxt: self.maxt,
            encoding: self.encoding,
            bytes: ChunkBytes::Heap(Arc::clone(&self.bytes)),
            timestamps: None,
            summary: None,
        }
    }

    /// Appends the chunk's samples to `out` (the head wrote it: it decodes).
    fn decode_into(&self, out: &mut Vec<HistogramSample>) {
        decode_chunk(&self.to_chunk(), out);
    }
}

/// Appends every histogram sample of `c` to `out`.
pub(crate) fn decode_chunk(c: &Chunk, out: &mut Vec<HistogramSample>) {
    let mut it = c.iter();
    let mut floats = Vec::new();
    it.drain_mixed_into(&mut floats, out);
    if let Some(e) = it.err() {
        tracing::error!(error = %e, "head histogram chunk failed to decode");
    }
}

/// The open chunk of the stream: integer or float counts.
#[derive(Debug)]
enum OpenHist {
    Integer(HistogramAppender),
    Float(FloatHistogramAppender),
}

impl OpenHist {
    fn encoding(&self) -> Encoding {
        match self {
            OpenHist::Integer(_) => Encoding::Histogram,
            OpenHist::Float(_) => Encoding::FloatHistogram,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            OpenHist::Integer(a) => a.bytes(),
            OpenHist::Float(a) => a.bytes(),
        }
    }

    fn num_samples(&self) -> usize {
        match self {
            OpenHist::Integer(a) => a.num_samples(),
            OpenHist::Float(a) => a.num_samples(),
        }
    }

    fn first_t(&self) -> Option<i64> {
        match self {
            OpenHist::Integer(a) => a.first_t(),
            OpenHist::Float(a) => a.first_t(),
        }
    }

    fn last_t(&self) -> Option<i64> {
        match self {
            OpenHist::Integer(a) => a.last_t(),
            OpenHist::Float(a) => a.last_t(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            OpenHist::Integer(a) => a.heap_bytes(),
            OpenHist::Float(a) => a.heap_bytes(),
        }
    }

    /// A chunk of the open appender's bytes (copied).
    fn to_chunk(&self) -> Option<Chunk> {
        Some(Chunk {
            mint: self.first_t()?,
            maxt: self.last_t()?,
            encoding: self.encoding(),
            bytes: ChunkBytes::Heap(self.bytes().into()),
            timestamps: None,
            summary: None,
        })
    }

    fn close(&self) -> Option<HistChunk> {
        Some(HistChunk {
            mint: self.first_t()?,
            maxt: self.last_t()?,
            encoding: self.encoding(),
            bytes: self.bytes().into(),
        })
    }

    /// Whether a sample of `h`'s kind can go into this chunk by size.
    fn takes(&self, h: &HistogramValue) -> bool {
        let same_kind = matches!(
            (self, h),
            (OpenHist::Integer(_), HistogramValue::Integer(_)) | (OpenHist::Float(_), HistogramValue::Float(_))
        );
        same_kind && self.num_samples() < SAMPLES_PER_HISTOGRAM_CHUNK && self.bytes().len() < HISTOGRAM_CHUNK_BYTES
    }
}

/// Encodes sorted samples (one per timestamp) into chunks, cutting where
/// an appender says so and at the size limits. Samples an appender refuses
/// (they passed validation, so only a bug could make it) are logged and
/// left out.
pub(crate) fn encode_chunks(samples: &[HistogramSample]) -> Vec<HistChunk> {
    let mut out = Vec::new();
    let mut open: Option<OpenHist> = None;
    for s in samples {
        push_sample(&mut open, &mut out, s.t, &s.h);
    }
    out.extend(open.and_then(|o| o.close()));
    out
}

/// Appends `(t, h)` to the open chunk, closing it into `closed` and starting
/// the next one where needed. Returns whether the sample was stored.
fn push_sample(open: &mut Option<OpenHist>, closed: &mut Vec<HistChunk>, t: i64, h: &HistogramValue) -> bool {
    let res = match (open.as_mut(), h) {
        (Some(o), h) if o.takes(h) => match (o, h) {
            (OpenHist::Integer(a), HistogramValue::Integer(h)) => a.append(t, h).map(|r| match r {
                AppendOutcome::Cut { next, .. } => Some(OpenHist::Integer(next)),
                _ => None,
            }),
            (OpenHist::Float(a), HistogramValue::Float(h)) => a.append(t, h).map(|r| match r {
                AppendOutcome::Cut { next, .. } => Some(OpenHist::Float(next)),
                _ => None,
            }),
            _ => unreachable!("`takes` checked the kind"),
        },
        // A new chunk after a full one (or one of the other kind), with
        // the header Prometheus gives a chunk that follows another.
        (Some(OpenHist::Integer(a)), HistogramValue::Integer(h)) => {
            a.start_next(t, h).map(|a| Some(OpenHist::Integer(a)))
        }
        (Some(OpenHist::Float(a)), HistogramValue::Float(h)) => a.start_next(t, h).map(|a| Some(OpenHist::Float(a))),
        (_, HistogramValue::Integer(h)) => {
            let mut a = HistogramAppender::new();
            a.append(t, h).map(|_| Some(OpenHist::Integer(a)))
        }
        (_, HistogramValue::Float(h)) => {
            let mut a = FloatHistogramAppender::new();
            a.append(t, h).map(|_| Some(OpenHist::Float(a)))
        }
    };
    match res {
        Ok(None) => true,
        Ok(Some(next)) => {
            if let Some(c) = open.take().and_then(|o| o.close()) {
                closed.push(c);
            }
            *open = Some(next);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, t, "histogram refused by the chunk appender");
            false
        }
    }
}

/// What applying one histogram sample did (see `MemSeries::apply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistApplied {
    InOrder,
    OutOfOrder,
    Identical,
    RejectedOutOfOrder,
    RejectedDuplicate,
}

/// A series' histogram samples.
#[derive(Debug, Default)]
pub(crate) struct HistData {
    /// Closed in-order chunks, sorted, not overlapping.
    closed: Vec<HistChunk>,
    open: Option<OpenHist>,
    /// The newest in-order sample (for duplicate checks and the appender).
    last: Option<HistogramSample>,
    /// Out-of-order samples, sorted by strictly increasing `t`.
    ooo: Vec<HistogramSample>,
}

impl HistData {
    /// The newest in-order sample.
    pub(crate) fn last(&self) -> Option<&HistogramSample> {
        self.last.as_ref()
    }

    /// Whether no sample is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.is_none() && self.ooo.is_empty()
    }

    /// The stored sample at `t`, if any.
    pub(crate) fn value_at(&self, t: i64) -> Option<HistogramValue> {
        if let Ok(i) = self.ooo.binary_search_by_key(&t, |s| s.t) {
            return Some(self.ooo[i].h.clone());
        }
        let mut buf = Vec::new();
        for c in self.closed.iter().filter(|c| c.mint <= t && t <= c.maxt) {
            buf.clear();
            c.decode_into(&mut buf);
            if let Some(s) = buf.iter().find(|s| s.t == t) {
                return Some(s.h.clone());
            }
        }
        if let Some(c) = self.open.as_ref().and_then(OpenHist::to_chunk).filter(|c| c.mint <= t && t <= c.maxt) {
            buf.clear();
            decode_chunk(&c, &mut buf);
            return buf.into_iter().find(|s| s.t == t).map(|s| s.h);
        }
        None
    }

    /// Whether a sample is stored at `t` (of any value).
    pub(crate) fn has_at(&self, t: i64) -> bool {
        let in_range = |lo: i64, hi: i64| lo <= t && t <= hi;
        let may = self.ooo.binary_search_by_key(&t, |s| s.t).is_ok()
            || self.closed.iter().any(|c| in_range(c.mint, c.maxt))
            || self.open.as_ref().is_some_and(|o| o.first_t().zip(o.last_t()).is_some_and(|(a, b)| in_range(a, b)));
        may && self.value_at(t).is_some()
    }

    /// Stores one sample that passed the appender's checks (or comes from
    /// replay); the decision depends only on this series' data.
    pub(crate) fn apply(&mut self, t: i64, h: &HistogramValue, ooo_enabled: bool) -> HistApplied {
        match &self.last {
            Some(l) if t == l.t => {
                if l.h.same_data(h) {
                    HistApplied::Identical
                } else {
                    HistApplied::RejectedDuplicate
                }
            }
            Some(l) if t < l.t => {
                if !ooo_enabled {
                    return HistApplied::RejectedOutOfOrder;
                }
                match self.value_at(t) {
                    Some(v) if v.same_data(h) => HistApplied::Identical,
                    Some(_) => HistApplied::RejectedDuplicate,
                    None => {
                        let i = self.ooo.partition_point(|s| s.t < t);
                        self.ooo.insert(i, HistogramSample { t, h: h.clone() });
                        HistApplied::OutOfOrder
                    }
                }
            }
            _ => {
                if push_sample(&mut self.open, &mut self.closed, t, h) {
                    self.last = Some(HistogramSample { t, h: h.clone() });
                    HistApplied::InOrder
                } else {
                    HistApplied::RejectedDuplicate
                }
            }
        }
    }

    /// Chunks overlapping `[mint, maxt]`: closed in-order ones, the open one
    /// copied, and the out-of-order samples in range encoded; sorted by
    /// `mint` (out-of-order chunks may overlap the others).
    pub(crate) fn chunks_in(&self, mint: i64, maxt: i64, out: &mut Vec<Chunk>) {
        let hit = |lo: i64, hi: i64| lo <= maxt && hi >= mint;
        out.extend(self.closed.iter().filter(|c| hit(c.mint, c.maxt)).map(HistChunk::to_chunk));
        out.extend(self.open.as_ref().and_then(OpenHist::to_chunk).filter(|c| hit(c.mint, c.maxt)));
        let lo = self.ooo.partition_point(|s| s.t < mint);
        let hi = self.ooo.partition_point(|s| s.t <= maxt);
        if lo < hi {
            out.extend(encode_chunks(&self.ooo[lo..hi]).iter().map(HistChunk::to_chunk));
        }
    }

    /// Every sample with `mint <= t < maxt`, sorted, one per timestamp.
    pub(crate) fn samples_in(&self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        let hit = |lo: i64, hi: i64| lo < maxt && hi >= mint;
        let mut out = Vec::new();
        for c in self.closed.iter().filter(|c| hit(c.mint, c.maxt)) {
            c.decode_into(&mut out);
        }
        if let Some(c) = self.open.as_ref().and_then(OpenHist::to_chunk).filter(|c| hit(c.mint, c.maxt)) {
            decode_chunk(&c, &mut out);
        }
        out.extend(self.ooo.iter().filter(|s| mint <= s.t && s.t < maxt).cloned());
        out.retain(|s| mint <= s.t && s.t < maxt);
        // Stable: an in-order sample (pushed first) wins a tie.
        out.sort_by_key(|s| s.t);
        out.dedup_by_key(|s| s.t);
        out
    }

    /// Time range of all samples, if any.
    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let mut lo = i64::MAX;
        let mut hi = i64::MIN;
        let mut add = |a: i64, b: i64| {
            lo = lo.min(a);
            hi = hi.max(b);
        };
        for c in &self.closed {
            add(c.mint, c.maxt);
        }
        if let Some((a, b)) = self.open.as_ref().and_then(|o| o.first_t().zip(o.last_t())) {
            add(a, b);
        }
        if let (Some(a), Some(b)) = (self.ooo.first(), self.ooo.last()) {
            add(a.t, b.t);
        }
        (lo <= hi).then_some((lo, hi))
    }

    /// Whether any sample may lie in `[mint, maxt]` (chunk granularity).
    pub(crate) fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let hit = |lo: i64, hi: i64| lo <= maxt && hi >= mint;
        self.closed.iter().any(|c| hit(c.mint, c.maxt))
            || self.open.as_ref().and_then(|o| o.first_t().zip(o.last_t())).is_some_and(|(a, b)| hit(a, b))
            || self.ooo.iter().any(|s| mint <= s.t && s.t <= maxt)
    }

    /// Drops every sample with `t < mint`; chunks that straddle `mint` are
    /// re-encoded without the old samples. Returns the chunks freed.
    pub(crate) fn truncate(&mut self, mint: i64) -> usize {
        let before = self.closed.len() + usize::from(self.open.is_some());
        let mut kept = Vec::with_capacity(self.closed.len());
        for c in std::mem::take(&mut self.closed) {
            if c.maxt < mint {
                continue;
            }
            if c.mint < mint {
                let mut s = Vec::new();
                c.decode_into(&mut s);
                s.retain(|s| s.t >= mint);
                kept.extend(encode_chunks(&s));
            } else {
                kept.push(c);
            }
        }
        self.closed = kept;
        if let Some(o) = &self.open {
            match (o.first_t(), o.last_t()) {
                (_, Some(last)) if last < mint => {
                    self.open = None;
                    self.last = None;
                }
                (Some(first), Some(_)) if first < mint => {
                    let mut s = Vec::new();
                    if let Some(c) = o.to_chunk() {
                        decode_chunk(&c, &mut s);
                    }
                    s.retain(|s| s.t >= mint);
                    self.open = None;
                    for smp in &s {
                        push_sample(&mut self.open, &mut self.closed, smp.t, &smp.h);
                    }
                }
                _ => {}
            }
        }
        self.ooo.retain(|s| s.t >= mint);
        before.saturating_sub(self.closed.len() + usize::from(self.open.is_some()))
    }

    /// Number of chunks held (closed + open).
    pub(crate) fn num_chunks(&self) -> usize {
        self.closed.len() + usize::from(self.open.is_some())
    }

    /// Approximate heap bytes owned.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<HistData>()
            + self.closed.capacity() * std::mem::size_of::<HistChunk>()
            + self.closed.iter().map(|c| c.bytes.len() + 16).sum::<usize>()
            + self.open.as_ref().map_or(0, OpenHist::heap_bytes)
            + self.ooo.capacity() * std::mem::size_of::<HistogramSample>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{FloatHistogram, Histogram, Span};

    fn int(count: u64) -> HistogramValue {
        HistogramValue::Integer(Histogram {
            schema: 1,
            count,
            sum: count as f64 * 0.5,
            positive_spans: vec![Span { offset: 0, length: 2 }],
            positive_buckets: vec![count as i64 / 2, 0],
            ..Histogram::default()
        })
    }

    fn float(count: f64) -> HistogramValue {
        HistogramValue::Float(FloatHistogram {
            schema: 0,
            count,
            sum: count,
            positive_spans: vec![Span { offset: 0, length: 1 }],
            positive_buckets: vec![count],
            ..FloatHistogram::default()
        })
    }

    fn times(s: &[HistogramSample]) -> Vec<i64> {
        s.iter().map(|s| s.t).collect()
    }

    #[test]
    fn in_order_samples_read_back_across_cuts_and_kinds() {
        let mut d = HistData::default();
        let mut want = Vec::new();
        for i in 0..300i64 {
            // A reset at 150, float counts from 250 on.
            let h = if i >= 250 { float(i as f64) } else { int(((i % 150) * 2) as u64) };
            assert_eq!(d.apply(i * 10, &h, false), HistApplied::InOrder);
            want.push(HistogramSample { t: i * 10, h });
        }
        assert!(d.num_chunks() >= 4, "cut at the reset, by size and at the kind switch: {}", d.num_chunks());
        let got = d.samples_in(i64::MIN, i64::MAX);
        assert_eq!(times(&got), times(&want));
        for (g, w) in got.iter().zip(&want) {
            match (&g.h, &w.h) {
                (HistogramValue::Integer(a), HistogramValue::Integer(b)) => {
                    assert_eq!((a.count, a.sum.to_bits()), (b.count, b.sum.to_bits()))
                }
                (HistogramValue::Float(a), HistogramValue::Float(b)) => assert_eq!(a.count, b.count),
                _ => panic!("kind changed at {}", g.t),
            }
        }
    }

    #[test]
    fn duplicates_out_of_order_and_truncation() {
        let mut d = HistData::default();
        for i in 0..10 {
            d.apply(i * 10, &int(i as u64 * 2), false);
        }
        assert_eq!(d.apply(90, &int(18), false), HistApplied::Identical);
        assert_eq!(d.apply(90, &int(20), false), HistApplied::RejectedDuplicate);
        assert_eq!(d.apply(55, &int(11), false), HistApplied::RejectedOutOfOrder);
        assert_eq!(d.apply(55, &int(11), true), HistApplied::OutOfOrder);
        assert_eq!(d.apply(50, &int(10), true), HistApplied::Identical);
        assert_eq!(d.apply(50, &int(12), true), HistApplied::RejectedDuplicate);
        assert!(d.has_at(55) && d.has_at(50) && !d.has_at(51));
        let mut chunks = Vec::new();
        d.chunks_in(50, 60, &mut chunks);
        assert!(chunks.iter().all(|c| matches!(c.encoding, Encoding::Histogram)));
        assert_eq!(times(&d.samples_in(40, 61)), vec![40, 50, 55, 60]);
        d.truncate(52);
        assert_eq!(times(&d.samples_in(i64::MIN, i64::MAX)), vec![55, 60, 70, 80, 90]);
        assert_eq!(d.time_range(), Some((55, 90)));
        d.truncate(100);
        assert!(d.is_empty());
    }
}

//! The integer histogram chunk (Prometheus' `EncHistogram`, byte for byte).
//!
//! Layout (see `docs/format/histogram_chunks.md`): a 2-byte big-endian
//! sample count, a flag byte whose two top bits are the
//! [`CounterResetHeader`], then a bit stream: the bucket layout (zero
//! threshold, schema, spans, custom bounds) once, then per sample
//!
//! | field | first sample | later samples |
//! |---|---|---|
//! | timestamp | varbit | varbit delta of deltas |
//! | count, zero count | unsigned varbit | varbit delta of deltas |
//! | sum | 64 raw bits | XOR with the previous sum |
//! | each bucket (positive, then negative) | varbit (the bucket's delta to the previous bucket) | varbit delta of deltas |
//!
//! A staleness marker (sum = [`STALE_NAN_BITS`](crate::STALE_NAN_BITS))
//! stores no buckets and zero count deltas of deltas; it reads back as a
//! histogram with that sum and nothing else. A chunk holds nothing but
//! markers after its first marker.
//!
//! The layout is the first sample's. A later sample with new buckets makes
//! the appender rewrite the chunk with the wider layout (the earlier samples
//! get the new buckets, empty), so a growing histogram stays in one chunk;
//! what a chunk cannot hold (a counter reset, another schema or zero
//! threshold or custom bounds, a non-empty bucket gone) starts a new chunk:
//! see [`AppendOutcome`].

use std::borrow::Cow;

use super::bstream::{BitReader, BitWriter};
use super::histogram_meta::{
    adjust_for_inserts, check_layout, count_spans, custom_bounds_match, expand_spans_and_buckets,
    expand_spans_both_ways, insert_deltas, new_chunk_writer, put_varbit_int, put_varbit_uint, put_xor, read_header,
    read_layout, read_varbit_int, read_varbit_uint, read_xor, skip_varbit, write_layout, AppendOutcome, BucketReset,
    CounterResetHeader, CutReason, HistogramAppendError, Insert, Layout, XorState, FLAG_POS, HEADER_LEN, MAX_SAMPLES,
};
use crate::error::ChunkError;
use crate::histogram::{
    is_custom_buckets, CounterResetHint, FloatHistogram, Histogram, HistogramSample, HistogramValue, Span,
};
use crate::sample::{is_stale_nan, Sample, SampleIterator, ValueKind};

/// Appends integer histograms to a chunk.
#[derive(Debug, Clone)]
pub struct HistogramAppender {
    /// The chunk's bytes, header included.
    w: BitWriter,
    /// The layout written before the first sample.
    layout: Layout,
    first_t: i64,
    t: i64,
    t_delta: i64,
    cnt: u64,
    zcnt: u64,
    cnt_delta: i64,
    zcnt_delta: i64,
    /// The last sample's buckets (deltas between buckets, as stored).
    p_buckets: Vec<i64>,
    n_buckets: Vec<i64>,
    /// Their change since the sample before.
    p_deltas: Vec<i64>,
    n_deltas: Vec<i64>,
    sum: XorState,
}

impl Default for HistogramAppender {
    fn default() -> Self {
        HistogramAppender::new()
    }
}

/// The result of checking a counter histogram against a chunk: the forward
/// (chunk) and backward (sample) inserts, positive and negative.
type Expansion = (Vec<Insert>, Vec<Insert>, Vec<Insert>, Vec<Insert>);

impl HistogramAppender {
    /// A new, empty chunk. Its first sample sets its counter-reset header
    /// from its hint ([`CounterResetHint::Gauge`] and
    /// [`CounterResetHint::CounterReset`] are kept, anything else is
    /// [`CounterResetHeader::Unknown`]); use
    /// [`HistogramAppender::start_next`] to start the chunk after another.
    pub fn new() -> HistogramAppender {
        HistogramAppender::with_header(CounterResetHeader::Unknown)
    }

    /// A new, empty chunk with the given header.
    fn with_header(header: CounterResetHeader) -> HistogramAppender {
        HistogramAppender {
            w: new_chunk_writer(header),
            layout: Layout::default(),
            first_t: 0,
            t: 0,
            t_delta: 0,
            cnt: 0,
            zcnt: 0,
            cnt_delta: 0,
            zcnt_delta: 0,
            p_buckets: Vec::new(),
            n_buckets: Vec::new(),
            p_deltas: Vec::new(),
            n_deltas: Vec::new(),
            sum: XorState::new(0),
        }
    }

    /// An appender continuing the chunk `bytes` (such as one read back from
    /// a file), which is decoded and encoded again: the samples and header
    /// are kept, and the bytes are the same as the appender that wrote them
    /// had, unless another encoder wrote them.
    pub fn from_bytes(bytes: &[u8]) -> Result<HistogramAppender, crate::Error> {
        let mut it = HistogramIterator::new(bytes);
        let mut a = HistogramAppender::with_header(it.counter_reset_header());
        let mut h = Histogram::default();
        while it.next() {
            it.at_histogram_into(&mut h);
            a.append_raw(it.t, &h).map_err(|_| ChunkError::Corrupt("histogram chunk does not re-encode"))?;
        }
        match it.err {
            Some(e) => Err(e),
            None => Ok(a),
        }
    }

    /// Number of samples appended.
    pub fn num_samples(&self) -> usize {
        let b = self.w.bytes();
        usize::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Whether the chunk cannot take another sample.
    pub fn is_full(&self) -> bool {
        self.num_samples() >= MAX_SAMPLES
    }

    /// The chunk's counter-reset header.
    pub fn counter_reset_header(&self) -> CounterResetHeader {
        CounterResetHeader::from_flag_byte(self.w.bytes()[FLAG_POS])
    }

    /// Timestamp of the first sample; `None` when empty.
    pub fn first_t(&self) -> Option<i64> {
        (self.num_samples() > 0).then_some(self.first_t)
    }

    /// Timestamp of the last sample; `None` when empty.
    pub fn last_t(&self) -> Option<i64> {
        (self.num_samples() > 0).then_some(self.t)
    }

    /// The encoded chunk (header included). Valid at any time.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Heap bytes held by the chunk's buffer (spare room included).
    pub fn heap_bytes(&self) -> usize {
        self.w.capacity()
    }

    /// The encoded chunk, without spare room.
    pub fn into_bytes(self) -> Vec<u8> {
        self.w.into_bytes()
    }

    fn set_num_samples(&mut self, n: usize) {
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        self.w.bytes_mut()[..2].copy_from_slice(&n.to_be_bytes());
    }

    fn set_header(&mut self, header: CounterResetHeader) {
        let b = &mut self.w.bytes_mut()[FLAG_POS];
        *b = (*b & 0b0011_1111) | header.flag_bits();
    }

    /// Appends the sample at `t` (the caller keeps timestamps increasing;
    /// the codec stores any). See [`AppendOutcome`] for what may happen: in
    /// particular a sample that cannot join this chunk comes back as the
    /// first sample of a new one. An error leaves the chunk unchanged.
    pub fn append(&mut self, t: i64, h: &Histogram) -> Result<AppendOutcome<HistogramAppender>, HistogramAppendError> {
        check(h)?;
        let num = self.num_samples();
        if num == 0 {
            self.append_raw(t, h)?;
            match h.counter_reset_hint {
                CounterResetHint::Gauge => self.set_header(CounterResetHeader::Gauge),
                CounterResetHint::CounterReset => self.set_header(CounterResetHeader::CounterReset),
                _ => {}
            }
            return Ok(AppendOutcome::Appended);
        }
        if num >= MAX_SAMPLES {
            return Ok(AppendOutcome::Cut { reason: CutReason::Full, next: self.start_next(t, h)? });
        }
        let mut h = Cow::Borrowed(h);
        let (pf, nf) = if h.counter_reset_hint != CounterResetHint::Gauge {
            let (pf, nf, pb, nb) = match self.appendable(&h) {
                Ok(e) => e,
                Err((reason, header)) => {
                    return Ok(AppendOutcome::Cut { reason, next: HistogramAppender::first(t, &h, header)? });
                }
            };
            if !pb.is_empty() || !nb.is_empty() {
                // The sample lacks empty buckets of the chunk: give it them.
                let hm = h.to_mut();
                if pf.is_empty() && nf.is_empty() {
                    hm.positive_spans = self.layout.positive_spans.clone();
                    hm.negative_spans = self.layout.negative_spans.clone();
                } else {
                    hm.positive_spans = adjust_for_inserts(&hm.positive_spans, &pb);
                    hm.negative_spans = adjust_for_inserts(&hm.negative_spans, &nb);
                }
                widen(&mut hm.positive_buckets, &pb);
                widen(&mut hm.negative_buckets, &nb);
            }
            (pf, nf)
        } else {
            let (pf, nf, pb, nb, p_merged, n_merged) = match self.appendable_gauge(&h) {
                Ok(e) => e,
                Err(reason) => {
                    let next = HistogramAppender::first(t, &h, CounterResetHeader::Gauge)?;
                    return Ok(AppendOutcome::Cut { reason, next });
                }
            };
            if !pb.is_empty() || !nb.is_empty() {
                let hm = h.to_mut();
                hm.positive_spans = p_merged;
                hm.negative_spans = n_merged;
                widen(&mut hm.positive_buckets, &pb);
                widen(&mut hm.negative_buckets, &nb);
            }
            (pf, nf)
        };
        if pf.is_empty() && nf.is_empty() {
            self.append_raw(t, &h)?;
            return Ok(AppendOutcome::Appended);
        }
        self.recode(&pf, &nf, &h.positive_spans, &h.negative_spans)?;
        self.append_raw(t, &h)?;
        Ok(AppendOutcome::Recoded)
    }

    /// A new chunk that follows this one, holding `h` at `t` as its first
    /// sample, for a caller that cuts chunks itself (at a size limit). Its
    /// header is what Prometheus computes for a chunk cut after another: the
    /// sample's hint when it is [`CounterResetHint::Gauge`] or
    /// [`CounterResetHint::CounterReset`], else whether `h` could have been
    /// appended to this chunk ([`CounterResetHeader::NotCounterReset`]), is
    /// a counter reset, or cannot be told ([`CounterResetHeader::Unknown`]).
    pub fn start_next(&self, t: i64, h: &Histogram) -> Result<HistogramAppender, HistogramAppendError> {
        check(h)?;
        let header = match h.counter_reset_hint {
            CounterResetHint::Gauge => CounterResetHeader::Gauge,
            CounterResetHint::CounterReset => CounterResetHeader::CounterReset,
            _ if self.num_samples() == 0 => CounterResetHeader::Unknown,
            _ => match self.appendable(h) {
                Ok(_) => CounterResetHeader::NotCounterReset,
                Err((_, header)) => header,
            },
        };
        HistogramAppender::first(t, h, header)
    }

    /// A new chunk with `header` holding `h` at `t`.
    fn first(t: i64, h: &Histogram, header: CounterResetHeader) -> Result<HistogramAppender, HistogramAppendError> {
        let mut a = HistogramAppender::with_header(header);
        a.append_raw(t, h)?;
        Ok(a)
    }

    /// Whether a counter histogram can join the chunk (Prometheus'
    /// `appendable`): the inserts it needs, or why not and the header the
    /// next chunk gets.
    fn appendable(&self, h: &Histogram) -> Result<Expansion, (CutReason, CounterResetHeader)> {
        use CounterResetHeader as H;
        if self.num_samples() > 0 && self.counter_reset_header() == H::Gauge {
            return Err((CutReason::KindChanged, H::NotCounterReset));
        }
        if h.counter_reset_hint == CounterResetHint::CounterReset {
            return Err((CutReason::ExplicitCounterReset, H::CounterReset));
        }
        if is_stale_nan(h.sum) {
            return Ok(Default::default());
        }
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Err((CutReason::AfterStaleMarker, H::Unknown));
        }
        if h.count < self.cnt {
            return Err((CutReason::CountDecreased, H::CounterReset));
        }
        if h.schema != self.layout.schema {
            return Err((CutReason::SchemaChanged, H::Unknown));
        }
        if h.zero_threshold != self.layout.zero_threshold {
            return Err((CutReason::ZeroThresholdChanged, H::Unknown));
        }
        if is_custom_buckets(h.schema) && !custom_bounds_match(&h.custom_values, &self.layout.custom_values) {
            return Err((CutReason::CustomValuesChanged, H::CounterReset));
        }
        if h.zero_count < self.zcnt {
            return Err((CutReason::ZeroCountDecreased, H::CounterReset));
        }
        let reset = |r: BucketReset| match r {
            BucketReset::Decreased => (CutReason::BucketDecreased, H::CounterReset),
            BucketReset::Vanished => (CutReason::BucketVanished, H::CounterReset),
        };
        let (pf, pb) = expand_spans_and_buckets(
            &self.layout.positive_spans,
            &h.positive_spans,
            absolute(&self.p_buckets),
            absolute(&h.positive_buckets),
        )
        .map_err(reset)?;
        let (nf, nb) = expand_spans_and_buckets(
            &self.layout.negative_spans,
            &h.negative_spans,
            absolute(&self.n_buckets),
            absolute(&h.negative_buckets),
        )
        .map_err(reset)?;
        Ok((pf, nf, pb, nb))
    }

    /// Whether a gauge histogram can join the chunk (Prometheus'
    /// `appendableGauge`): forward and backward inserts and the merged
    /// spans, or why not.
    #[allow(clippy::type_complexity)]
    fn appendable_gauge(
        &self,
        h: &Histogram,
    ) -> Result<(Vec<Insert>, Vec<Insert>, Vec<Insert>, Vec<Insert>, Vec<Span>, Vec<Span>), CutReason> {
        if self.num_samples() > 0 && self.counter_reset_header() != CounterResetHeader::Gauge {
            return Err(CutReason::KindChanged);
        }
        if is_stale_nan(h.sum) {
            return Ok(Default::default());
        }
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Err(CutReason::AfterStaleMarker);
        }
        if h.schema != self.layout.schema {
            return Err(CutReason::SchemaChanged);
        }
        if h.zero_threshold != self.layout.zero_threshold {
            return Err(CutReason::ZeroThresholdChanged);
        }
        if is_custom_buckets(h.schema) && !custom_bounds_match(&h.custom_values, &self.layout.custom_values) {
            return Err(CutReason::CustomValuesChanged);
        }
        let (pf, pb, pm) = expand_spans_both_ways(&self.layout.positive_spans, &h.positive_spans);
        let (nf, nb, nm) = expand_spans_both_ways(&self.layout.negative_spans, &h.negative_spans);
        Ok((pf, nf, pb, nb, pm, nm))
    }

    /// Writes a sample whose buckets match the chunk's layout (any sample
    /// for an empty chunk, which takes its layout).
    fn append_raw(&mut self, t: i64, h: &Histogram) -> Result<(), HistogramAppendError> {
        let stale = is_stale_nan(h.sum);
        let num = self.num_samples();
        let w = &mut self.w;
        if num == 0 {
            self.layout = if stale {
                Layout::default()
            } else {
                Layout {
                    schema: h.schema,
                    zero_threshold: h.zero_threshold,
                    positive_spans: h.positive_spans.clone(),
                    negative_spans: h.negative_spans.clone(),
                    custom_values: if is_custom_buckets(h.schema) { h.custom_values.clone() } else { Vec::new() },
                }
            };
            let l = &self.layout;
            write_layout(w, l.schema, l.zero_threshold, &l.positive_spans, &l.negative_spans, &l.custom_values);
            let (cnt, zcnt, pb, nb): (u64, u64, &[i64], &[i64]) = if stale {
                (0, 0, &[], &[])
            } else {
                (h.count, h.zero_count, &h.positive_buckets, &h.negative_buckets)
            };
            put_varbit_int(w, t);
            put_varbit_uint(w, cnt);
            put_varbit_uint(w, zcnt);
            w.write_bits(h.sum.to_bits(), 64);
            for &b in pb.iter().chain(nb) {
                put_varbit_int(w, b);
            }
            self.p_buckets = pb.to_vec();
            self.n_buckets = nb.to_vec();
            self.p_deltas = vec![0; pb.len()];
            self.n_deltas = vec![0; nb.len()];
            self.sum = XorState::new(h.sum.to_bits());
            self.first_t = t;
            (self.t_delta, self.cnt_delta, self.zcnt_delta) = (0, 0, 0);
            (self.cnt, self.zcnt) = (cnt, zcnt);
        } else {
            if !stale
                && (h.positive_buckets.len() != self.p_buckets.len()
                    || h.negative_buckets.len() != self.n_buckets.len())
            {
                return Err(HistogramAppendError::Inconsistent(ChunkError::Corrupt(
                    "histogram buckets do not match the chunk's layout",
                )));
            }
            let (cnt, zcnt) = if stale { (0, 0) } else { (h.count, h.zero_count) };
            let t_delta = t.wrapping_sub(self.t);
            let cnt_delta = cnt.wrapping_sub(self.cnt) as i64;
            let zcnt_delta = zcnt.wrapping_sub(self.zcnt) as i64;
            put_varbit_int(w, t_delta.wrapping_sub(self.t_delta));
            if stale {
                put_varbit_int(w, 0);
                put_varbit_int(w, 0);
            } else {
                put_varbit_int(w, cnt_delta.wrapping_sub(self.cnt_delta));
                put_varbit_int(w, zcnt_delta.wrapping_sub(self.zcnt_delta));
            }
            put_xor(w, &mut self.sum, h.sum.to_bits());
            if !stale {
                for (new, (old, delta)) in h
                    .positive_buckets
                    .iter()
                    .zip(self.p_buckets.iter_mut().zip(&mut self.p_deltas))
                    .chain(h.negative_buckets.iter().zip(self.n_buckets.iter_mut().zip(&mut self.n_deltas)))
                {
                    let d = new.wrapping_sub(*old);
                    put_varbit_int(w, d.wrapping_sub(*delta));
                    *delta = d;
                    *old = *new;
                }
            }
            (self.t_delta, self.cnt_delta, self.zcnt_delta) = (t_delta, cnt_delta, zcnt_delta);
            (self.cnt, self.zcnt) = (cnt, zcnt);
        }
        self.t = t;
        self.set_num_samples(num + 1);
        Ok(())
    }

    /// Rewrites the chunk with the buckets of the inserts added to every
    /// sample (empty), and the given spans.
    fn recode(
        &mut self,
        pf: &[Insert],
        nf: &[Insert],
        positive_spans: &[Span],
        negative_spans: &[Span],
    ) -> Result<(), HistogramAppendError> {
        let mut it = HistogramIterator::new(self.w.bytes());
        let mut next = HistogramAppender::with_header(self.counter_reset_header());
        let mut h = Histogram::default();
        while it.next() {
            it.at_histogram_into(&mut h);
            if !is_stale_nan(h.sum) {
                h.positive_spans.clear();
                h.positive_spans.extend_from_slice(positive_spans);
                h.negative_spans.clear();
                h.negative_spans.extend_from_slice(negative_spans);
                widen(&mut h.positive_buckets, pf);
                widen(&mut h.negative_buckets, nf);
            }
            next.append_raw(it.t, &h)?;
        }
        if it.err.is_some() {
            return Err(HistogramAppendError::Inconsistent(ChunkError::Corrupt(
                "histogram chunk failed to decode while recoding",
            )));
        }
        *self = next;
        Ok(())
    }
}

/// Adds the inserts' empty buckets to delta-encoded buckets.
fn widen(buckets: &mut Vec<i64>, inserts: &[Insert]) {
    if !inserts.is_empty() {
        *buckets = insert_deltas(buckets, inserts);
    }
}

/// Absolute bucket counts from deltas.
fn absolute(deltas: &[i64]) -> impl Iterator<Item = i64> + '_ {
    deltas.iter().scan(0i64, |acc, &d| {
        *acc = acc.wrapping_add(d);
        Some(*acc)
    })
}

/// What an integer histogram must satisfy to be stored (nothing for a
/// staleness marker, whose layout and buckets are dropped).
fn check(h: &Histogram) -> Result<(), HistogramAppendError> {
    if is_stale_nan(h.sum) {
        return Ok(());
    }
    check_layout(
        h.schema,
        &h.positive_spans,
        h.positive_buckets.len(),
        &h.negative_spans,
        h.negative_buckets.len(),
        &h.custom_values,
    )
}

/// Decodes an integer histogram chunk sample by sample. `B` is anything
/// that derefs to the chunk bytes.
#[derive(Debug, Clone)]
pub struct HistogramIterator<B> {
    r: BitReader<B>,
    /// Bits after the header: bounds the buckets a layout may declare.
    data_bits: u64,
    total: u16,
    read: u16,
    header: CounterResetHeader,
    layout: Layout,
    t: i64,
    t_delta: i64,
    cnt: u64,
    zcnt: u64,
    cnt_delta: i64,
    zcnt_delta: i64,
    p_buckets: Vec<i64>,
    n_buckets: Vec<i64>,
    p_deltas: Vec<i64>,
    n_deltas: Vec<i64>,
    sum: XorState,
    done: bool,
    err: Option<crate::Error>,
}

impl<B: AsRef<[u8]>> HistogramIterator<B> {
    /// Starts decoding `bytes`. A chunk shorter than its header yields an
    /// error on the first `next`.
    pub fn new(bytes: B) -> HistogramIterator<B> {
        let b = bytes.as_ref();
        let data_bits = (b.len().saturating_sub(HEADER_LEN) as u64) * 8;
        let (total, header, err) = match read_header(b) {
            Ok((n, h)) => (n, h, None),
            Err(why) => (0, CounterResetHeader::Unknown, Some(ChunkError::Corrupt(why).into())),
        };
        HistogramIterator {
            r: BitReader::new(bytes, HEADER_LEN),
            data_bits,
            total,
            read: 0,
            header,
            layout: Layout::default(),
            t: 0,
            t_delta: 0,
            cnt: 0,
            zcnt: 0,
            cnt_delta: 0,
            zcnt_delta: 0,
            p_buckets: Vec::new(),
            n_buckets: Vec::new(),
            p_deltas: Vec::new(),
            n_deltas: Vec::new(),
            sum: XorState::reading(0),
            done: err.is_some(),
            err,
        }
    }

    /// Number of samples the chunk declares.
    pub fn num_samples(&self) -> usize {
        usize::from(self.total)
    }

    /// The chunk's counter-reset header.
    pub fn counter_reset_header(&self) -> CounterResetHeader {
        self.header
    }

    /// Timestamp of the sample under the cursor.
    pub fn at_t(&self) -> i64 {
        self.t
    }

    /// Whether the sample under the cursor is a staleness marker.
    pub fn is_stale(&self) -> bool {
        is_stale_nan(f64::from_bits(self.sum.bits))
    }

    /// The histogram under the cursor (see [`HistogramIterator::at_histogram_into`]).
    pub fn histogram(&self) -> Histogram {
        let mut h = Histogram::default();
        self.at_histogram_into(&mut h);
        h
    }

    /// Writes the histogram under the cursor into `h`, reusing its vectors.
    /// Its hint is the chunk header's for the sample's position (see
    /// [`CounterResetHeader::sample_hint`]). A staleness marker is a
    /// histogram with the marker sum and nothing else (hint
    /// [`CounterResetHint::Unknown`]).
    pub fn at_histogram_into(&self, h: &mut Histogram) {
        h.positive_spans.clear();
        h.negative_spans.clear();
        h.positive_buckets.clear();
        h.negative_buckets.clear();
        h.custom_values.clear();
        h.sum = f64::from_bits(self.sum.bits);
        if self.is_stale() {
            h.counter_reset_hint = CounterResetHint::Unknown;
            (h.schema, h.zero_threshold, h.zero_count, h.count) = (0, 0.0, 0, 0);
            return;
        }
        h.counter_reset_hint = self.header.sample_hint(usize::from(self.read));
        h.schema = self.layout.schema;
        h.zero_threshold = self.layout.zero_threshold;
        h.zero_count = self.zcnt;
        h.count = self.cnt;
        h.positive_spans.extend_from_slice(&self.layout.positive_spans);
        h.negative_spans.extend_from_slice(&self.layout.negative_spans);
        h.positive_buckets.extend_from_slice(&self.p_buckets);
        h.negative_buckets.extend_from_slice(&self.n_buckets);
        h.custom_values.extend_from_slice(&self.layout.custom_values);
    }

    /// The histogram under the cursor with float counts.
    pub fn float_histogram(&self) -> FloatHistogram {
        self.histogram().to_float()
    }

    fn fail(&mut self, why: &'static str) -> bool {
        self.done = true;
        self.err = Some(ChunkError::Corrupt(why).into());
        false
    }

    fn step(&mut self) -> Result<(), &'static str> {
        const END: &str = "histogram chunk ends before its declared sample count";
        let r = &mut self.r;
        if self.read == 0 {
            self.layout = read_layout(r, self.data_bits)?;
            let np = count_spans(&self.layout.positive_spans) as usize;
            let nn = count_spans(&self.layout.negative_spans) as usize;
            self.t = read_varbit_int(r).ok_or(END)?;
            self.cnt = read_varbit_uint(r).ok_or(END)?;
            self.zcnt = read_varbit_uint(r).ok_or(END)?;
            self.sum = XorState::reading(r.read_bits(64).ok_or(END)?);
            self.p_buckets.clear();
            self.n_buckets.clear();
            for _ in 0..np {
                self.p_buckets.push(read_varbit_int(r).ok_or(END)?);
            }
            for _ in 0..nn {
                self.n_buckets.push(read_varbit_int(r).ok_or(END)?);
            }
            self.p_deltas = vec![0; np];
            self.n_deltas = vec![0; nn];
            return Ok(());
        }
        let t_dod = read_varbit_int(r).ok_or(END)?;
        let cnt_dod = read_varbit_int(r).ok_or(END)?;
        let zcnt_dod = read_varbit_int(r).ok_or(END)?;
        read_xor(r, &mut self.sum).ok_or(END)?;
        self.t_delta = self.t_delta.wrapping_add(t_dod);
        self.t = self.t.wrapping_add(self.t_delta);
        self.cnt_delta = self.cnt_delta.wrapping_add(cnt_dod);
        self.cnt = self.cnt.wrapping_add(self.cnt_delta as u64);
        self.zcnt_delta = self.zcnt_delta.wrapping_add(zcnt_dod);
        self.zcnt = self.zcnt.wrapping_add(self.zcnt_delta as u64);
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Ok(());
        }
        for (b, d) in
            self.p_buckets.iter_mut().zip(&mut self.p_deltas).chain(self.n_buckets.iter_mut().zip(&mut self.n_deltas))
        {
            let dod = read_varbit_int(r).ok_or(END)?;
            *d = d.wrapping_add(dod);
            *b = b.wrapping_add(*d);
        }
        Ok(())
    }
}

impl<B: AsRef<[u8]>> SampleIterator for HistogramIterator<B> {
    fn next(&mut self) -> bool {
        if self.done || self.read >= self.total {
            self.done = true;
            return false;
        }
        if let Err(why) = self.step() {
            return self.fail(why);
        }
        self.read += 1;
        true
    }

    /// The sample's timestamp; its value is NaN (read the histogram with
    /// [`SampleIterator::at_histogram`]).
    fn at(&self) -> Sample {
        Sample { t: self.t, v: f64::NAN }
    }

    fn started(&self) -> bool {
        self.read > 0 && !self.done
    }

    fn err(&self) -> Option<&crate::Error> {
        self.err.as_ref()
    }

    fn has_histograms(&self) -> bool {
        true
    }

    fn kind(&self) -> ValueKind {
        ValueKind::Histogram
    }

    fn at_histogram(&self) -> Option<HistogramSample> {
        self.started().then(|| HistogramSample { t: self.t, h: HistogramValue::Integer(self.histogram()) })
    }
}

/// Appends the timestamps of an integer histogram chunk to `out` without
/// building its histograms (fields are skipped, not accumulated).
pub fn decode_timestamps(bytes: &[u8], out: &mut Vec<i64>) -> Result<(), crate::Error> {
    const END: &str = "histogram chunk ends before its declared sample count";
    let corrupt = |why: &'static str| crate::Error::from(ChunkError::Corrupt(why));
    let (total, _) = read_header(bytes).map_err(corrupt)?;
    if total == 0 {
        return Ok(());
    }
    let mut r = BitReader::new(bytes, HEADER_LEN);
    let layout = read_layout(&mut r, (bytes.len() - HEADER_LEN) as u64 * 8).map_err(corrupt)?;
    let buckets = count_spans(&layout.positive_spans) + count_spans(&layout.negative_spans);
    let mut t = read_varbit_int(&mut r).ok_or(corrupt(END))?;
    skip_varbit(&mut r).ok_or(corrupt(END))?;
    skip_varbit(&mut r).ok_or(corrupt(END))?;
    let mut sum = XorState::reading(r.read_bits(64).ok_or(corrupt(END))?);
    for _ in 0..buckets {
        skip_varbit(&mut r).ok_or(corrupt(END))?;
    }
    out.reserve(usize::from(total));
    out.push(t);
    let mut t_delta = 0i64;
    for _ in 1..total {
        let dod = read_varbit_int(&mut r).ok_or(corrupt(END))?;
        t_delta = t_delta.wrapping_add(dod);
        t = t.wrapping_add(t_delta);
        skip_varbit(&mut r).ok_or(corrupt(END))?;
        skip_varbit(&mut r).ok_or(corrupt(END))?;
        read_xor(&mut r, &mut sum).ok_or(corrupt(END))?;
        if !is_stale_nan(f64::from_bits(sum.bits)) {
            for _ in 0..buckets {
                skip_varbit(&mut r).ok_or(corrupt(END))?;
            }
        }
        out.push(t);
    }
    Ok(())
}

#[cfg(test)]
#[path = "histogram_tests.rs"]
mod tests;

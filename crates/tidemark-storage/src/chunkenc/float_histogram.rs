//! The float histogram chunk (Prometheus' `EncFloatHistogram`, byte for
//! byte).
//!
//! The header and layout are the integer chunk's (see
//! [`super::histogram`] and `docs/format/histogram_chunks.md`); per sample:
//!
//! | field | first sample | later samples |
//! |---|---|---|
//! | timestamp | varbit | varbit delta of deltas |
//! | count, zero count, sum | 64 raw bits each | XOR with the field's previous value |
//! | each bucket (positive, then negative; absolute counts) | 64 raw bits | XOR with the bucket's previous value |
//!
//! Every float keeps its bit pattern. Staleness markers, recoding and cuts
//! work as for integer histograms.

use std::borrow::Cow;

use super::bstream::{BitReader, BitWriter};
use super::histogram_meta::{
    adjust_for_inserts, check_layout, count_spans, custom_bounds_match, expand_spans_and_buckets,
    expand_spans_both_ways, insert_absolute, new_chunk_writer, put_varbit_int, put_xor, read_header, read_layout,
    read_varbit_int, read_xor, write_layout, AppendOutcome, BucketReset, CounterResetHeader, CutReason,
    HistogramAppendError, Insert, Layout, XorState, FLAG_POS, HEADER_LEN, MAX_SAMPLES,
};
use crate::error::ChunkError;
use crate::histogram::{is_custom_buckets, CounterResetHint, FloatHistogram, HistogramSample, HistogramValue, Span};
use crate::sample::{is_stale_nan, Sample, SampleIterator, ValueKind};

/// Appends float histograms to a chunk.
#[derive(Debug, Clone)]
pub struct FloatHistogramAppender {
    /// The chunk's bytes, header included.
    w: BitWriter,
    /// The layout written before the first sample.
    layout: Layout,
    first_t: i64,
    t: i64,
    t_delta: i64,
    cnt: XorState,
    zcnt: XorState,
    sum: XorState,
    /// The last sample's buckets (absolute counts) and their XOR windows.
    p_buckets: Vec<XorState>,
    n_buckets: Vec<XorState>,
}

impl Default for FloatHistogramAppender {
    fn default() -> Self {
        FloatHistogramAppender::new()
    }
}

/// The forward (chunk) and backward (sample) inserts, positive and negative.
type Expansion = (Vec<Insert>, Vec<Insert>, Vec<Insert>, Vec<Insert>);

impl FloatHistogramAppender {
    /// A new, empty chunk. Its first sample sets its counter-reset header
    /// from its hint ([`CounterResetHint::Gauge`] and
    /// [`CounterResetHint::CounterReset`] are kept, anything else is
    /// [`CounterResetHeader::Unknown`]); use
    /// [`FloatHistogramAppender::start_next`] to start the chunk after
    /// another.
    pub fn new() -> FloatHistogramAppender {
        FloatHistogramAppender::with_header(CounterResetHeader::Unknown)
    }

    fn with_header(header: CounterResetHeader) -> FloatHistogramAppender {
        FloatHistogramAppender {
            w: new_chunk_writer(header),
            layout: Layout::default(),
            first_t: 0,
            t: 0,
            t_delta: 0,
            cnt: XorState::new(0),
            zcnt: XorState::new(0),
            sum: XorState::new(0),
            p_buckets: Vec::new(),
            n_buckets: Vec::new(),
        }
    }

    /// An appender continuing the chunk `bytes`, which is decoded and
    /// encoded again (see [`super::HistogramAppender::from_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<FloatHistogramAppender, crate::Error> {
        let mut it = FloatHistogramIterator::new(bytes);
        let mut a = FloatHistogramAppender::with_header(it.counter_reset_header());
        let mut h = FloatHistogram::default();
        while it.next() {
            it.at_float_histogram_into(&mut h);
            a.append_raw(it.t, &h).map_err(|_| ChunkError::Corrupt("float histogram chunk does not re-encode"))?;
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

    /// Appends the sample at `t`; see [`AppendOutcome`]. An error leaves
    /// the chunk unchanged.
    pub fn append(
        &mut self,
        t: i64,
        h: &FloatHistogram,
    ) -> Result<AppendOutcome<FloatHistogramAppender>, HistogramAppendError> {
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
                Err(reason) => {
                    // Prometheus marks a cut chunk as a reset or leaves it
                    // unknown (never "not a reset") for float histograms.
                    let header = if reason.is_counter_reset() {
                        CounterResetHeader::CounterReset
                    } else {
                        CounterResetHeader::Unknown
                    };
                    return Ok(AppendOutcome::Cut { reason, next: FloatHistogramAppender::first(t, &h, header)? });
                }
            };
            if !pb.is_empty() || !nb.is_empty() {
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
                    let next = FloatHistogramAppender::first(t, &h, CounterResetHeader::Gauge)?;
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
    /// sample, for a caller that cuts chunks itself. Its header is what
    /// Prometheus computes for a float chunk cut after another: the sample's
    /// hint when it is [`CounterResetHint::Gauge`] or
    /// [`CounterResetHint::CounterReset`], else
    /// [`CounterResetHeader::CounterReset`] when `h` is a counter reset
    /// against this chunk and [`CounterResetHeader::NotCounterReset`]
    /// otherwise.
    pub fn start_next(&self, t: i64, h: &FloatHistogram) -> Result<FloatHistogramAppender, HistogramAppendError> {
        check(h)?;
        let header = match h.counter_reset_hint {
            CounterResetHint::Gauge => CounterResetHeader::Gauge,
            CounterResetHint::CounterReset => CounterResetHeader::CounterReset,
            _ if self.num_samples() == 0 => CounterResetHeader::Unknown,
            _ => match self.appendable(h) {
                Err(reason) if reason.is_counter_reset() => CounterResetHeader::CounterReset,
                _ => CounterResetHeader::NotCounterReset,
            },
        };
        FloatHistogramAppender::first(t, h, header)
    }

    fn first(
        t: i64,
        h: &FloatHistogram,
        header: CounterResetHeader,
    ) -> Result<FloatHistogramAppender, HistogramAppendError> {
        let mut a = FloatHistogramAppender::with_header(header);
        a.append_raw(t, h)?;
        Ok(a)
    }

    /// Whether a counter histogram can join the chunk (Prometheus'
    /// `appendable` for float histograms).
    fn appendable(&self, h: &FloatHistogram) -> Result<Expansion, CutReason> {
        if self.num_samples() > 0 && self.counter_reset_header() == CounterResetHeader::Gauge {
            return Err(CutReason::KindChanged);
        }
        if h.counter_reset_hint == CounterResetHint::CounterReset {
            return Err(CutReason::ExplicitCounterReset);
        }
        if is_stale_nan(h.sum) {
            return Ok(Default::default());
        }
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Err(CutReason::AfterStaleMarker);
        }
        if h.count < f64::from_bits(self.cnt.bits) {
            return Err(CutReason::CountDecreased);
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
        if h.zero_count < f64::from_bits(self.zcnt.bits) {
            return Err(CutReason::ZeroCountDecreased);
        }
        let reset = |r: BucketReset| match r {
            BucketReset::Decreased => CutReason::BucketDecreased,
            BucketReset::Vanished => CutReason::BucketVanished,
        };
        let (pf, pb) = expand_spans_and_buckets(
            &self.layout.positive_spans,
            &h.positive_spans,
            self.p_buckets.iter().map(|x| f64::from_bits(x.bits)),
            h.positive_buckets.iter().copied(),
        )
        .map_err(reset)?;
        let (nf, nb) = expand_spans_and_buckets(
            &self.layout.negative_spans,
            &h.negative_spans,
            self.n_buckets.iter().map(|x| f64::from_bits(x.bits)),
            h.negative_buckets.iter().copied(),
        )
        .map_err(reset)?;
        Ok((pf, nf, pb, nb))
    }

    /// Whether a gauge histogram can join the chunk (Prometheus'
    /// `appendableGauge`).
    #[allow(clippy::type_complexity)]
    fn appendable_gauge(
        &self,
        h: &FloatHistogram,
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
    fn append_raw(&mut self, t: i64, h: &FloatHistogram) -> Result<(), HistogramAppendError> {
        let stale = is_stale_nan(h.sum);
        let num = self.num_samples();
        let (cnt, zcnt, pb, nb): (f64, f64, &[f64], &[f64]) = if stale {
            (0.0, 0.0, &[], &[])
        } else {
            (h.count, h.zero_count, &h.positive_buckets, &h.negative_buckets)
        };
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
            put_varbit_int(w, t);
            for v in [cnt, zcnt, h.sum].iter().chain(pb).chain(nb) {
                w.write_bits(v.to_bits(), 64);
            }
            self.cnt = XorState::new(cnt.to_bits());
            self.zcnt = XorState::new(zcnt.to_bits());
            self.sum = XorState::new(h.sum.to_bits());
            self.p_buckets = pb.iter().map(|v| XorState::new(v.to_bits())).collect();
            self.n_buckets = nb.iter().map(|v| XorState::new(v.to_bits())).collect();
            self.first_t = t;
            self.t_delta = 0;
        } else {
            if pb.len() != if stale { 0 } else { self.p_buckets.len() }
                || nb.len() != if stale { 0 } else { self.n_buckets.len() }
            {
                return Err(HistogramAppendError::Inconsistent(ChunkError::Corrupt(
                    "float histogram buckets do not match the chunk's layout",
                )));
            }
            let t_delta = t.wrapping_sub(self.t);
            put_varbit_int(w, t_delta.wrapping_sub(self.t_delta));
            put_xor(w, &mut self.cnt, cnt.to_bits());
            put_xor(w, &mut self.zcnt, zcnt.to_bits());
            put_xor(w, &mut self.sum, h.sum.to_bits());
            for (v, st) in pb.iter().zip(&mut self.p_buckets).chain(nb.iter().zip(&mut self.n_buckets)) {
                put_xor(w, st, v.to_bits());
            }
            self.t_delta = t_delta;
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
        let mut it = FloatHistogramIterator::new(self.w.bytes());
        let mut next = FloatHistogramAppender::with_header(self.counter_reset_header());
        let mut h = FloatHistogram::default();
        while it.next() {
            it.at_float_histogram_into(&mut h);
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
                "float histogram chunk failed to decode while recoding",
            )));
        }
        *self = next;
        Ok(())
    }
}

/// Adds the inserts' empty buckets to absolute buckets.
fn widen(buckets: &mut Vec<f64>, inserts: &[Insert]) {
    if !inserts.is_empty() {
        *buckets = insert_absolute(buckets, inserts);
    }
}

/// What a float histogram must satisfy to be stored (nothing for a
/// staleness marker, whose layout and buckets are dropped).
fn check(h: &FloatHistogram) -> Result<(), HistogramAppendError> {
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

/// Decodes a float histogram chunk sample by sample.
#[derive(Debug, Clone)]
pub struct FloatHistogramIterator<B> {
    r: BitReader<B>,
    data_bits: u64,
    total: u16,
    read: u16,
    header: CounterResetHeader,
    layout: Layout,
    t: i64,
    t_delta: i64,
    cnt: XorState,
    zcnt: XorState,
    sum: XorState,
    p_buckets: Vec<XorState>,
    n_buckets: Vec<XorState>,
    done: bool,
    err: Option<crate::Error>,
}

impl<B: AsRef<[u8]>> FloatHistogramIterator<B> {
    /// Starts decoding `bytes`. A chunk shorter than its header yields an
    /// error on the first `next`.
    pub fn new(bytes: B) -> FloatHistogramIterator<B> {
        let b = bytes.as_ref();
        let data_bits = (b.len().saturating_sub(HEADER_LEN) as u64) * 8;
        let (total, header, err) = match read_header(b) {
            Ok((n, h)) => (n, h, None),
            Err(why) => (0, CounterResetHeader::Unknown, Some(ChunkError::Corrupt(why).into())),
        };
        FloatHistogramIterator {
            r: BitReader::new(bytes, HEADER_LEN),
            data_bits,
            total,
            read: 0,
            header,
            layout: Layout::default(),
            t: 0,
            t_delta: 0,
            cnt: XorState::reading(0),
            zcnt: XorState::reading(0),
            sum: XorState::reading(0),
            p_buckets: Vec::new(),
            n_buckets: Vec::new(),
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

    /// The histogram under the cursor.
    pub fn float_histogram(&self) -> FloatHistogram {
        let mut h = FloatHistogram::default();
        self.at_float_histogram_into(&mut h);
        h
    }

    /// Writes the histogram under the cursor into `h`, reusing its vectors;
    /// hint and staleness markers as
    /// [`super::HistogramIterator::at_histogram_into`].
    pub fn at_float_histogram_into(&self, h: &mut FloatHistogram) {
        h.positive_spans.clear();
        h.negative_spans.clear();
        h.positive_buckets.clear();
        h.negative_buckets.clear();
        h.custom_values.clear();
        h.sum = f64::from_bits(self.sum.bits);
        if self.is_stale() {
            h.counter_reset_hint = CounterResetHint::Unknown;
            (h.schema, h.zero_threshold, h.zero_count, h.count) = (0, 0.0, 0.0, 0.0);
            return;
        }
        h.counter_reset_hint = self.header.sample_hint(usize::from(self.read));
        h.schema = self.layout.schema;
        h.zero_threshold = self.layout.zero_threshold;
        h.zero_count = f64::from_bits(self.zcnt.bits);
        h.count = f64::from_bits(self.cnt.bits);
        h.positive_spans.extend_from_slice(&self.layout.positive_spans);
        h.negative_spans.extend_from_slice(&self.layout.negative_spans);
        h.positive_buckets.extend(self.p_buckets.iter().map(|x| f64::from_bits(x.bits)));
        h.negative_buckets.extend(self.n_buckets.iter().map(|x| f64::from_bits(x.bits)));
        h.custom_values.extend_from_slice(&self.layout.custom_values);
    }

    fn fail(&mut self, why: &'static str) -> bool {
        self.done = true;
        self.err = Some(ChunkError::Corrupt(why).into());
        false
    }

    fn step(&mut self) -> Result<(), &'static str> {
        const END: &str = "float histogram chunk ends before its declared sample count";
        let r = &mut self.r;
        if self.read == 0 {
            // A raw bucket takes 64 bits: bound the declared buckets by that.
            self.layout = read_layout(r, self.data_bits / 64)?;
            let np = count_spans(&self.layout.positive_spans) as usize;
            let nn = count_spans(&self.layout.negative_spans) as usize;
            self.t = read_varbit_int(r).ok_or(END)?;
            self.cnt = XorState::reading(r.read_bits(64).ok_or(END)?);
            self.zcnt = XorState::reading(r.read_bits(64).ok_or(END)?);
            self.sum = XorState::reading(r.read_bits(64).ok_or(END)?);
            self.p_buckets.clear();
            self.n_buckets.clear();
            for _ in 0..np {
                self.p_buckets.push(XorState::reading(r.read_bits(64).ok_or(END)?));
            }
            for _ in 0..nn {
                self.n_buckets.push(XorState::reading(r.read_bits(64).ok_or(END)?));
            }
            return Ok(());
        }
        let t_dod = read_varbit_int(r).ok_or(END)?;
        self.t_delta = self.t_delta.wrapping_add(t_dod);
        self.t = self.t.wrapping_add(self.t_delta);
        read_xor(r, &mut self.cnt).ok_or(END)?;
        read_xor(r, &mut self.zcnt).ok_or(END)?;
        read_xor(r, &mut self.sum).ok_or(END)?;
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Ok(());
        }
        for st in self.p_buckets.iter_mut().chain(&mut self.n_buckets) {
            read_xor(r, st).ok_or(END)?;
        }
        Ok(())
    }
}

impl<B: AsRef<[u8]>> SampleIterator for FloatHistogramIterator<B> {
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
        ValueKind::FloatHistogram
    }

    fn at_histogram(&self) -> Option<HistogramSample> {
        self.started().then(|| HistogramSample { t: self.t, h: HistogramValue::Float(self.float_histogram()) })
    }
}

/// Appends the timestamps of a float histogram chunk to `out` without
/// building its histograms.
pub fn decode_timestamps(bytes: &[u8], out: &mut Vec<i64>) -> Result<(), crate::Error> {
    let mut it = FloatHistogramIterator::new(bytes);
    out.reserve(it.num_samples());
    // XOR fields must be followed to know their widths: the iterator's
    // state is the least there is to keep; only the histograms are not
    // built.
    while it.next() {
        out.push(it.t);
    }
    match it.err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

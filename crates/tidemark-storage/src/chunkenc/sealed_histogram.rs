//! The sealed native-histogram chunk encoding ([`super::Encoding::SealedHistogram`]):
//! a dense, lossless, non-appendable encoding for histogram runs in blocks.
//!
//! A chunk holds a run of samples of one kind (integer or float counts).
//! Each field is a column of changes from the previous sample (timestamps
//! as deltas of deltas, counts and bucket counts as differences, float bit
//! patterns and sums XORed with the previous ones, bucket layouts only
//! where they change), and the columns are compressed together with zstd.
//! Every field round-trips bit for bit (the sum's bits included, so
//! staleness markers survive), including custom bucket bounds, zero
//! thresholds and spans, which may change from sample to sample. See
//! `docs/format/sealed_histogram.md` for the bytes.
//!
//! Counter-reset hints are stored per sample; the encoder stores the first
//! sample's as [`CounterResetHint::Unknown`] unless it is
//! [`CounterResetHint::Gauge`] (as a Prometheus chunk reports its first
//! sample: the chunk before it may be gone).
//!
//! The decoder checks every length against the bytes that remain and
//! bounds what it builds by the chunk's uncompressed size (see
//! [`MAX_ELEMENTS_PER_BYTE`]), so corrupt input gives an error, never a
//! panic or an outsized allocation.

use crate::error::ChunkError;
use crate::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramSample, HistogramValue, Span};
use crate::sample::{Sample, SampleIterator, ValueKind};
use crate::varint::{put_uvarint, put_varint, unzigzag, zigzag};

use super::sealed::{compress_magicless, decompress_magicless, DEFAULT_ZSTD_LEVEL};

/// The format version byte.
pub const VERSION: u8 = 1;
/// Flag: float counts ([`FloatHistogram`]); integer counts otherwise.
const FLAG_FLOAT: u8 = 1;
/// Flag: the body is a zstd frame without its magic number.
const FLAG_ZSTD: u8 = 2;
/// Layout change flags: which parts follow.
const LAYOUT_SCHEMA: u8 = 1;
const LAYOUT_ZERO_THRESHOLD: u8 = 2;
const LAYOUT_CUSTOM: u8 = 4;
const LAYOUT_POSITIVE: u8 = 8;
const LAYOUT_NEGATIVE: u8 = 16;
const LAYOUT_ALL: u8 = 31;
/// Most samples in one chunk.
pub const MAX_SAMPLES: usize = 1 << 16;
/// Most spans, buckets and custom bounds (summed over the decoded samples)
/// per byte of uncompressed body, plus [`ELEMENT_SLACK`]: bounds what a
/// small hostile chunk can make the decoder build. The encoder refuses a
/// run beyond it ([`EncodeError::TooLarge`]); real runs are far below
/// (each bucket costs at least one body byte per sample; only custom bounds
/// and empty spans are repeated for free).
pub const MAX_ELEMENTS_PER_BYTE: usize = 32;
/// See [`MAX_ELEMENTS_PER_BYTE`].
const ELEMENT_SLACK: usize = 4096;
/// Largest uncompressed body the decoder accepts (64 MiB).
const MAX_BODY: u64 = 64 << 20;

/// Why a run cannot be encoded (the block writer then falls back to the
/// Prometheus histogram encodings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The run is empty.
    #[error("empty histogram run")]
    Empty,
    /// The run has more than [`MAX_SAMPLES`] samples.
    #[error("histogram run of {0} samples exceeds the chunk limit")]
    TooManySamples(usize),
    /// The run mixes integer and float histograms.
    #[error("histogram run mixes integer and float counts")]
    MixedKinds,
    /// Timestamps are not strictly increasing.
    #[error("histogram run is not sorted by strictly increasing time")]
    Unsorted,
    /// The run repeats more spans or custom bounds than the decoder's
    /// bound allows (see [`MAX_ELEMENTS_PER_BYTE`]).
    #[error("histogram run repeats too many spans or custom bounds for one chunk")]
    TooLarge,
    /// A histogram's spans name a different number of buckets than it has.
    #[error("histogram spans and buckets disagree")]
    SpansMismatch,
    /// zstd failed.
    #[error("zstd compression failed")]
    Compression,
}

/// The fields of one sample in the kind-agnostic form the columns use:
/// integer counts as `u64`, float counts as bit patterns; bucket counts
/// absolute (integer deltas summed).
struct Parts<'a> {
    hint: CounterResetHint,
    schema: i32,
    zero_threshold: f64,
    custom: &'a [f64],
    pos: &'a [Span],
    neg: &'a [Span],
    count: u64,
    zero: u64,
    sum: u64,
    pbuckets: Vec<u64>,
    nbuckets: Vec<u64>,
}

fn absolute(deltas: &[i64]) -> Vec<u64> {
    let mut a = 0i64;
    deltas
        .iter()
        .map(|d| {
            a = a.wrapping_add(*d);
            a as u64
        })
        .collect()
}

fn parts(h: &HistogramValue) -> Parts<'_> {
    match h {
        HistogramValue::Integer(h) => Parts {
            hint: h.counter_reset_hint,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            custom: &h.custom_values,
            pos: &h.positive_spans,
            neg: &h.negative_spans,
            count: h.count,
            zero: h.zero_count,
            sum: h.sum.to_bits(),
            pbuckets: absolute(&h.positive_buckets),
            nbuckets: absolute(&h.negative_buckets),
        },
        HistogramValue::Float(h) => Parts {
            hint: h.counter_reset_hint,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            custom: &h.custom_values,
            pos: &h.positive_spans,
            neg: &h.negative_spans,
            count: h.count.to_bits(),
            zero: h.zero_count.to_bits(),
            sum: h.sum.to_bits(),
            pbuckets: h.positive_buckets.iter().map(|v| v.to_bits()).collect(),
            nbuckets: h.negative_buckets.iter().map(|v| v.to_bits()).collect(),
        },
    }
}

/// Whether two samples share a layout (schema, zero threshold bits, custom
/// bounds bits, spans).
fn same_layout(a: &Parts<'_>, b: &Parts<'_>) -> bool {
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.custom.len() == b.custom.len()
        && a.custom.iter().zip(b.custom).all(|(x, y)| x.to_bits() == y.to_bits())
        && a.pos == b.pos
        && a.neg == b.neg
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, i64::from(s.offset));
        put_uvarint(out, u64::from(s.length));
    }
}

/// The bucket indexes a layout's spans name, in bucket order (the first
/// span's offset is its start index, a later one's the gap after the
/// previous span's end). `i64`: no overflow on any spans.
fn indexes(spans: &[Span], out: &mut Vec<i64>) {
    out.clear();
    let mut i = 0i64;
    for s in spans {
        i += i64::from(s.offset);
        for _ in 0..s.length {
            out.push(i);
            i += 1;
        }
    }
}

/// The previous sample's value at bucket `idx`, walking `prev` (the
/// previous sample's `(index, value)` pairs) with cursor `p`; 0 where it
/// had no such bucket. Deterministic on any spans (the encoder and the
/// decoder walk alike), exact lookups when indexes increase.
#[inline]
fn baseline(prev: &[(i64, u64)], p: &mut usize, idx: i64) -> u64 {
    while *p < prev.len() && prev[*p].0 < idx {
        *p += 1;
    }
    match prev.get(*p) {
        Some(&(i, v)) if i == idx => v,
        _ => 0,
    }
}

/// Encodes a sorted run of histogram samples of one kind into `out`
/// (appended). On error `out` is left as it was.
pub fn encode(run: &[HistogramSample], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_with_level(run, DEFAULT_ZSTD_LEVEL, out)
}

/// [`encode`] at an explicit zstd level; `0` stores the body uncompressed.
pub fn encode_with_level(run: &[HistogramSample], zstd_level: i32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let first = run.first().ok_or(EncodeError::Empty)?;
    if run.len() > MAX_SAMPLES {
        return Err(EncodeError::TooManySamples(run.len()));
    }
    let float = matches!(first.h, HistogramValue::Float(_));
    if run.iter().any(|s| matches!(s.h, HistogramValue::Float(_)) != float) {
        return Err(EncodeError::MixedKinds);
    }
    if run.windows(2).any(|w| w[0].t >= w[1].t) {
        return Err(EncodeError::Unsorted);
    }
    let all: Vec<Parts<'_>> = run.iter().map(|s| parts(&s.h)).collect();
    let n = run.len();
    let mut body = Vec::with_capacity(n * 8);
    // Timestamps.
    put_varint(&mut body, first.t);
    let mut prev_delta = 0i64;
    for w in run.windows(2) {
        let d = w[1].t.wrapping_sub(w[0].t);
        put_varint(&mut body, d.wrapping_sub(prev_delta));
        prev_delta = d;
    }
    // Buckets first (into their own buffer, written last), noting the
    // samples where a count went down.
    let (buckets, decreased) = bucket_column(&all, float)?;
    // Hints.
    for (i, p) in all.iter().enumerate() {
        let hint = match p.hint {
            CounterResetHint::Gauge => CounterResetHint::Gauge,
            _ if i == 0 => CounterResetHint::Unknown,
            // A "no reset" hint the data contradicts (a count went down, or
            // the layout changed) is stored as unknown: a reader then
            // compares the samples itself, as it would across chunks.
            CounterResetHint::NotCounterReset
                if decreased[i]
                    || !same_layout(p, &all[i - 1])
                    || less(float, p.count, all[i - 1].count)
                    || less(float, p.zero, all[i - 1].zero) =>
            {
                CounterResetHint::Unknown
            }
            h => h,
        };
        body.push(hint as u8);
    }
    // Layouts, where they change.
    let changes: Vec<usize> = (0..n).filter(|&i| i == 0 || !same_layout(&all[i], &all[i - 1])).collect();
    put_uvarint(&mut body, changes.len() as u64);
    let mut last = 0;
    for &i in &changes {
        let p = &all[i];
        put_uvarint(&mut body, (i - last) as u64);
        last = i;
        // What changed from the previous layout (all of it for the first).
        let what = match i.checked_sub(1).map(|j| &all[j]) {
            None => LAYOUT_ALL,
            Some(q) => {
                let flag = |changed: bool, bit: u8| if changed { bit } else { 0 };
                let custom_changed = p.custom.len() != q.custom.len()
                    || p.custom.iter().zip(q.custom).any(|(x, y)| x.to_bits() != y.to_bits());
                flag(p.schema != q.schema, LAYOUT_SCHEMA)
                    | flag(p.zero_threshold.to_bits() != q.zero_threshold.to_bits(), LAYOUT_ZERO_THRESHOLD)
                    | flag(custom_changed, LAYOUT_CUSTOM)
                    | flag(p.pos != q.pos, LAYOUT_POSITIVE)
                    | flag(p.neg != q.neg, LAYOUT_NEGATIVE)
            }
        };
        body.push(what);
        if what & LAYOUT_SCHEMA != 0 {
            put_varint(&mut body, i64::from(p.schema));
        }
        if what & LAYOUT_ZERO_THRESHOLD != 0 {
            body.extend_from_slice(&p.zero_threshold.to_bits().to_le_bytes());
        }
        if what & LAYOUT_CUSTOM != 0 {
            put_uvarint(&mut body, p.custom.len() as u64);
            for c in p.custom {
                body.extend_from_slice(&c.to_bits().to_le_bytes());
            }
        }
        if what & LAYOUT_POSITIVE != 0 {
            put_spans(&mut body, p.pos);
        }
        if what & LAYOUT_NEGATIVE != 0 {
            put_spans(&mut body, p.neg);
        }
    }
    let diff = |body: &mut Vec<u8>, prev: u64, cur: u64| put_diff(body, float, prev, cur);
    // Count and zero count.
    let (mut pc, mut pz) = (0u64, 0u64);
    for p in &all {
        diff(&mut body, pc, p.count);
        diff(&mut body, pz, p.zero);
        (pc, pz) = (p.count, p.zero);
    }
    // Sums.
    let mut ps = 0u64;
    for p in &all {
        put_uvarint(&mut body, ps ^ p.sum);
        ps = p.sum;
    }
    // What the decoder will build, counted as it counts (see
    // `decode_body`): each layout's parts, then each sample's.
    let layout_elements: usize =
        changes.iter().map(|&i| all[i].pos.len() + all[i].neg.len() + all[i].custom.len()).sum();
    let elements: usize = layout_elements
        + all
            .iter()
            .map(|p| p.pos.len() + p.neg.len() + p.custom.len() + p.pbuckets.len() + p.nbuckets.len())
            .sum::<usize>();
    body.extend_from_slice(&buckets);
    if elements > body.len().saturating_mul(MAX_ELEMENTS_PER_BYTE).saturating_add(ELEMENT_SLACK)
        || body.len() as u64 > MAX_BODY
    {
        return Err(EncodeError::TooLarge);
    }
    let frame = if zstd_level != 0 { compress_magicless(&body, zstd_level) } else { None };
    let start = out.len();
    out.push(VERSION);
    let mut flags = if float { FLAG_FLOAT } else { 0 };
    match frame {
        Some(f) if f.len() < body.len() => {
            flags |= FLAG_ZSTD;
            out.push(flags);
            put_uvarint(out, n as u64);
            put_uvarint(out, body.len() as u64);
            out.extend_from_slice(&f);
        }
        _ => {
            out.push(flags);
            put_uvarint(out, n as u64);
            out.extend_from_slice(&body);
        }
    }
    debug_assert!(out.len() > start);
    Ok(())
}

/// Whether count `a` is below `b` (float counts as bit patterns).
fn less(float: bool, a: u64, b: u64) -> bool {
    if float {
        f64::from_bits(a) < f64::from_bits(b)
    } else {
        (a as i64) < (b as i64)
    }
}

/// The bucket column: every sample's bucket counts, each against the
/// previous sample's count at its index; and per sample whether a bucket
/// count went down or a non-zero bucket vanished.
fn bucket_column(all: &[Parts<'_>], float: bool) -> Result<(Vec<u8>, Vec<bool>), EncodeError> {
    let mut out = Vec::new();
    let mut decreased = vec![false; all.len()];
    let mut prev: [Vec<(i64, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut next: Vec<(i64, u64)> = Vec::new();
    let mut idx = Vec::new();
    for (si, p) in all.iter().enumerate() {
        for (side, (spans, vals)) in [(p.pos, &p.pbuckets), (p.neg, &p.nbuckets)].into_iter().enumerate() {
            // A histogram whose spans and buckets disagree is invalid; the
            // encoding keeps only what its spans describe, so refuse it
            // rather than lose buckets.
            if spans.iter().map(|s| u64::from(s.length)).sum::<u64>() != vals.len() as u64 {
                return Err(EncodeError::SpansMismatch);
            }
            indexes(spans, &mut idx);
            next.clear();
            let mut cur = 0;
            for (&i, &v) in idx.iter().zip(vals.iter()) {
                let before = baseline(&prev[side], &mut cur, i);
                decreased[si] |= less(float, v, before);
                put_diff(&mut out, float, before, v);
                next.push((i, v));
            }
            // Non-zero buckets of the previous sample missing now.
            let zero = if float { 0f64.to_bits() } else { 0 };
            let kept = |i: i64| idx.binary_search(&i).is_ok();
            if prev[side].iter().any(|&(i, v)| v != zero && !(float && f64::from_bits(v) == 0.0) && !kept(i)) {
                decreased[si] = true;
            }
            std::mem::swap(&mut prev[side], &mut next);
        }
    }
    Ok((out, decreased))
}

/// Writes `cur` as a change from `prev`.
#[inline]
fn put_diff(out: &mut Vec<u8>, float: bool, prev: u64, cur: u64) {
    if float {
        put_uvarint(out, prev ^ cur);
    } else {
        put_uvarint(out, zigzag(cur.wrapping_sub(prev) as i64));
    }
}

/// A bounds-checked reader over the body.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

const TRUNCATED: ChunkError = ChunkError::Corrupt("sealed histogram chunk truncated");

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, ChunkError> {
        let v = *self.b.get(self.at).ok_or(TRUNCATED)?;
        self.at += 1;
        Ok(v)
    }
    fn uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(ChunkError::Corrupt("sealed histogram varint overflows"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ChunkError::Corrupt("sealed histogram varint overflows"))
    }
    fn varint(&mut self) -> Result<i64, ChunkError> {
        Ok(unzigzag(self.uvarint()?))
    }
    fn u64_le(&mut self) -> Result<u64, ChunkError> {
        let end = self.at.checked_add(8).ok_or(TRUNCATED)?;
        let s = self.b.get(self.at..end).ok_or(TRUNCATED)?;
        self.at = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn rest(&self) -> usize {
        self.b.len() - self.at
    }
    /// A count of items that each take at least one more byte.
    fn count(&mut self) -> Result<usize, ChunkError> {
        let v = self.uvarint()?;
        if v > self.rest() as u64 {
            return Err(ChunkError::Corrupt("sealed histogram count exceeds the chunk"));
        }
        Ok(v as usize)
    }
    fn spans(&mut self) -> Result<Vec<Span>, ChunkError> {
        let k = self.count()?;
        let mut out = Vec::with_capacity(k);
        for _ in 0..k {
            let offset = i32::try_from(self.varint()?)
                .map_err(|_| ChunkError::Corrupt("sealed histogram span offset out of range"))?;
            let length = u32::try_from(self.uvarint()?)
                .map_err(|_| ChunkError::Corrupt("sealed histogram span length out of range"))?;
            out.push(Span { offset, length });
        }
        Ok(out)
    }
}

/// A layout read from the chunk.
#[derive(Clone)]
struct Layout {
    start: usize,
    schema: i32,
    zero_threshold: f64,
    custom: Vec<f64>,
    pos: Vec<Span>,
    neg: Vec<Span>,
}

/// Summary of a chunk's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Number of samples.
    pub samples: usize,
    /// Whether the counts are floats.
    pub float: bool,
    /// Whether the body is zstd-compressed.
    pub zstd: bool,
}

/// Reads a chunk's header without decoding its samples.
pub fn inspect(bytes: &[u8]) -> Result<ChunkInfo, ChunkError> {
    let (info, _, _) = header(bytes)?;
    Ok(info)
}

/// The header, the declared body length (compressed chunks) and the
/// payload.
fn header(bytes: &[u8]) -> Result<(ChunkInfo, usize, &[u8]), ChunkError> {
    let mut r = Reader { b: bytes, at: 0 };
    if r.byte()? != VERSION {
        return Err(ChunkError::Corrupt("unknown sealed histogram chunk version"));
    }
    let flags = r.byte()?;
    if flags & !(FLAG_FLOAT | FLAG_ZSTD) != 0 {
        return Err(ChunkError::Corrupt("unknown sealed histogram chunk flags"));
    }
    let n = r.uvarint()?;
    if n == 0 || n > MAX_SAMPLES as u64 {
        return Err(ChunkError::Corrupt("sealed histogram chunk sample count out of range"));
    }
    let zstd = flags & FLAG_ZSTD != 0;
    let mut raw_len = 0usize;
    if zstd {
        let l = r.uvarint()?;
        // zstd blocks decode to at most 128 KiB each and take at least 3
        // bytes: a small frame cannot legitimately expand further.
        if l > MAX_BODY || l > (r.rest() as u64 / 3 + 1) * (128 << 10) {
            return Err(ChunkError::Corrupt("sealed histogram chunk declares an impossible length"));
        }
        raw_len = l as usize;
    }
    let info = ChunkInfo { samples: n as usize, float: flags & FLAG_FLOAT != 0, zstd };
    Ok((info, raw_len, &bytes[r.at..]))
}

/// Decodes a chunk written by [`encode`], appending its samples to `out`.
/// On error `out` is left as it was.
pub fn decode(bytes: &[u8], out: &mut Vec<HistogramSample>) -> Result<(), ChunkError> {
    let (info, raw_len, payload) = header(bytes)?;
    if info.zstd {
        let mut body = Vec::new();
        decompress_magicless(payload, raw_len, &mut body)
            .map_err(|_| ChunkError::Corrupt("sealed histogram chunk zstd data invalid"))?;
        decode_body(&body, info, out)
    } else {
        if payload.len() as u64 > MAX_BODY {
            return Err(ChunkError::Corrupt("sealed histogram chunk too large"));
        }
        decode_body(payload, info, out)
    }
}

fn decode_body(body: &[u8], info: ChunkInfo, out: &mut Vec<HistogramSample>) -> Result<(), ChunkError> {
    let n = info.samples;
    let float = info.float;
    let mut r = Reader { b: body, at: 0 };
    // Every sample takes at least one hint byte and a count, zero count and
    // sum byte each.
    if (n as u64).saturating_mul(4) > body.len() as u64 {
        return Err(TRUNCATED);
    }
    let mut ts = Vec::with_capacity(n);
    let mut t = r.varint()?;
    ts.push(t);
    let mut delta = 0i64;
    for _ in 1..n {
        delta = delta.wrapping_add(r.varint()?);
        t = t.wrapping_add(delta);
        if t <= ts[ts.len() - 1] {
            return Err(ChunkError::Corrupt("sealed histogram timestamps not increasing"));
        }
        ts.push(t);
    }
    let mut hints = Vec::with_capacity(n);
    for _ in 0..n {
        hints.push(
            CounterResetHint::from_code(r.byte()?)
                .ok_or(ChunkError::Corrupt("sealed histogram chunk has an unknown counter-reset hint"))?,
        );
    }
    let k = r.count()?;
    if k == 0 || k > n {
        return Err(ChunkError::Corrupt("sealed histogram chunk layout count out of range"));
    }
    let budget = body.len().saturating_mul(MAX_ELEMENTS_PER_BYTE).saturating_add(ELEMENT_SLACK);
    let mut elements = 0usize;
    let mut layouts: Vec<Layout> = Vec::with_capacity(k);
    let mut at = 0usize;
    for j in 0..k {
        let gap = r.uvarint()?;
        if (j == 0) != (gap == 0) || gap >= (n - at) as u64 {
            return Err(ChunkError::Corrupt("sealed histogram layout change out of place"));
        }
        at += gap as usize;
        let what = r.byte()?;
        if what & !LAYOUT_ALL != 0 || (j == 0 && what != LAYOUT_ALL) || what == 0 {
            return Err(ChunkError::Corrupt("sealed histogram layout change flags invalid"));
        }
        let mut l = match layouts.last() {
            Some(p) => Layout { start: at, ..p.clone() },
            None => Layout {
                start: 0,
                schema: 0,
                zero_threshold: 0.0,
                custom: Vec::new(),
                pos: Vec::new(),
                neg: Vec::new(),
            },
        };
        if what & LAYOUT_SCHEMA != 0 {
            l.schema =
                i32::try_from(r.varint()?).map_err(|_| ChunkError::Corrupt("sealed histogram schema out of range"))?;
        }
        if what & LAYOUT_ZERO_THRESHOLD != 0 {
            l.zero_threshold = f64::from_bits(r.u64_le()?);
        }
        if what & LAYOUT_CUSTOM != 0 {
            let c = r.count()?;
            l.custom = Vec::with_capacity(c);
            for _ in 0..c {
                l.custom.push(f64::from_bits(r.u64_le()?));
            }
        }
        if what & LAYOUT_POSITIVE != 0 {
            l.pos = r.spans()?;
        }
        if what & LAYOUT_NEGATIVE != 0 {
            l.neg = r.spans()?;
        }
        // Layouts repeat the unchanged parts of the previous one: count
        // them against the same bound as the samples.
        elements = elements.saturating_add(l.custom.len() + l.pos.len() + l.neg.len());
        if elements > budget {
            return Err(ChunkError::Corrupt("sealed histogram chunk repeats too much for its size"));
        }
        layouts.push(l);
    }
    let undiff = |r: &mut Reader<'_>, prev: u64| -> Result<u64, ChunkError> {
        let v = r.uvarint()?;
        Ok(if float { prev ^ v } else { prev.wrapping_add(unzigzag(v) as u64) })
    };
    let mut cz = Vec::with_capacity(n);
    let (mut pc, mut pz) = (0u64, 0u64);
    for _ in 0..n {
        pc = undiff(&mut r, pc)?;
        pz = undiff(&mut r, pz)?;
        cz.push((pc, pz));
    }
    let mut sums = Vec::with_capacity(n);
    let mut ps = 0u64;
    for _ in 0..n {
        ps ^= r.uvarint()?;
        sums.push(ps);
    }
    let mut prev: [Vec<(i64, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut next: Vec<(i64, u64)> = Vec::new();
    let mut idx = Vec::new();
    let mut li = 0usize;
    let mut decoded = Vec::with_capacity(n);
    for i in 0..n {
        while li + 1 < layouts.len() && layouts[li + 1].start <= i {
            li += 1;
        }
        let l = &layouts[li];
        elements = elements.saturating_add(l.pos.len() + l.neg.len() + l.custom.len());
        let mut vals: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for (side, spans) in [&l.pos, &l.neg].into_iter().enumerate() {
            // Each bucket takes at least one byte: a layout naming more
            // buckets than bytes remain is corrupt (checked before the
            // indexes are built).
            let want: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
            if want > r.rest() as u64 {
                return Err(TRUNCATED);
            }
            elements = elements.saturating_add(want as usize);
            if elements > budget {
                return Err(ChunkError::Corrupt("sealed histogram chunk repeats too much for its size"));
            }
            indexes(spans, &mut idx);
            next.clear();
            vals[side].reserve_exact(idx.len());
            let mut cur = 0;
            for &bi in &idx {
                let before = baseline(&prev[side], &mut cur, bi);
                let v = undiff(&mut r, before)?;
                vals[side].push(v);
                next.push((bi, v));
            }
            std::mem::swap(&mut prev[side], &mut next);
        }
        let (count, zero) = cz[i];
        let [pv, nv] = vals;
        let h = if float {
            HistogramValue::Float(FloatHistogram {
                counter_reset_hint: hints[i],
                schema: l.schema,
                zero_threshold: l.zero_threshold,
                zero_count: f64::from_bits(zero),
                count: f64::from_bits(count),
                sum: f64::from_bits(sums[i]),
                positive_spans: l.pos.clone(),
                negative_spans: l.neg.clone(),
                positive_buckets: pv.into_iter().map(f64::from_bits).collect(),
                negative_buckets: nv.into_iter().map(f64::from_bits).collect(),
                custom_values: l.custom.clone(),
            })
        } else {
            HistogramValue::Integer(Histogram {
                counter_reset_hint: hints[i],
                schema: l.schema,
                zero_threshold: l.zero_threshold,
                zero_count: zero,
                count,
                sum: f64::from_bits(sums[i]),
                positive_spans: l.pos.clone(),
                negative_spans: l.neg.clone(),
                positive_buckets: deltas(&pv),
                negative_buckets: deltas(&nv),
                custom_values: l.custom.clone(),
            })
        };
        decoded.push(HistogramSample { t: ts[i], h });
    }
    if r.rest() != 0 {
        return Err(ChunkError::Corrupt("trailing bytes after sealed histogram chunk"));
    }
    out.append(&mut decoded);
    Ok(())
}

/// Integer bucket deltas from absolute counts.
fn deltas(abs: &[u64]) -> Vec<i64> {
    let mut p = 0u64;
    abs.iter()
        .map(|&x| {
            let d = x.wrapping_sub(p) as i64;
            p = x;
            d
        })
        .collect()
}

/// Iterates over a sealed histogram chunk, decoded up front. Its float
/// view ([`SampleIterator::at`]) is each sample's timestamp with a NaN
/// value, as the Prometheus histogram iterators'.
#[derive(Debug)]
pub struct SealedHistogramIterator {
    samples: Vec<HistogramSample>,
    /// Index of the current sample plus one (0: not started).
    pos: usize,
    err: Option<crate::Error>,
}

impl SealedHistogramIterator {
    /// Decodes `bytes`; a decoding error is reported by
    /// [`SampleIterator::err`] after the first `next`.
    pub fn new(bytes: &[u8]) -> SealedHistogramIterator {
        let mut samples = Vec::new();
        let err = decode(bytes, &mut samples).err().map(crate::Error::from);
        SealedHistogramIterator { samples, pos: 0, err }
    }

    fn current(&self) -> Option<&HistogramSample> {
        self.pos.checked_sub(1).and_then(|i| self.samples.get(i))
    }
}

impl SampleIterator for SealedHistogramIterator {
    fn next(&mut self) -> bool {
        if self.pos <= self.samples.len() {
            self.pos += 1;
        }
        self.pos <= self.samples.len()
    }

    fn seek(&mut self, t: i64) -> bool {
        if let Some(c) = self.current() {
            if c.t >= t {
                return true;
            }
        }
        let from = self.pos.min(self.samples.len());
        let i = from + self.samples[from..].partition_point(|s| s.t < t);
        self.pos = (i + 1).min(self.samples.len() + 1);
        self.pos <= self.samples.len()
    }

    fn at(&self) -> Sample {
        Sample { t: self.current().map_or(i64::MIN, |s| s.t), v: f64::NAN }
    }

    fn started(&self) -> bool {
        self.pos > 0 && self.pos <= self.samples.len()
    }

    fn err(&self) -> Option<&crate::Error> {
        self.err.as_ref()
    }

    fn has_histograms(&self) -> bool {
        true
    }

    fn kind(&self) -> ValueKind {
        match self.current().or(self.samples.first()) {
            Some(HistogramSample { h: HistogramValue::Float(_), .. }) => ValueKind::FloatHistogram,
            _ => ValueKind::Histogram,
        }
    }

    fn at_histogram(&self) -> Option<HistogramSample> {
        self.current().cloned()
    }

    fn drain_mixed_into(&mut self, _floats: &mut Vec<Sample>, histograms: &mut Vec<HistogramSample>) {
        if self.pos < self.samples.len() {
            histograms.extend_from_slice(&self.samples[self.pos..]);
        }
        self.pos = self.samples.len() + 1;
    }
}

#[cfg(test)]
#[path = "sealed_histogram_tests.rs"]
mod tests;

//! The columns of a type-5 record, **histogram samples**: integer and
//! float native histograms (exponential and custom-bucket schemas) of one
//! commit. The envelope (count, flags, optional zstd) is the one types 3
//! and 4 use (`record.rs`); the layout is specified in `docs/format/wal.md`.
//!
//! One record type holds every kind of histogram sample: each sample says
//! whether its counts are integers or floats, and its schema says whether
//! it has custom bucket bounds (which it then carries). Prometheus gives
//! custom-bucket histograms record types of their own only so that its
//! older releases, which would read their bounds as garbage, fail on them
//! instead; no binary of ours ever read histogram records without custom
//! bounds, so one type loses nothing.

use crate::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span};
use crate::varint::{put_uvarint, put_varint, uvarint_len, zigzag};

use super::record::{decimal_of, POW10};
use super::RefHistogramSample;

/// Value kind of a float field: stored as its 8 raw bytes. Kinds `0..=9`
/// are decimals with that many digits after the point, as in type 4.
const KIND_RAW: u8 = 0xff;

/// Bits 0-1 of a sample's meta byte: the counter-reset hint.
const META_HINT_MASK: u8 = 0b11;
/// Bit 2 of a sample's meta byte: the counts are floats.
const META_FLOAT: u8 = 0b100;

/// Smallest column bytes one sample can take: a byte each for its ref
/// delta, time delta, meta byte, schema, zero count, count, the two span
/// list lengths, the two bucket list lengths and the custom-bounds length,
/// two each for the zero threshold and sum (a kind byte and at least one
/// more).
pub(crate) const MIN_HISTOGRAM_COLUMN_LEN: usize = 15;

/// Why the columns of a histogram samples record do not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub(crate) enum HistogramRecordError {
    /// The columns end inside a field.
    Truncated,
    /// A varint is longer than 10 bytes or does not fit 64 bits.
    VarintOverflow,
    /// A sample's meta byte has bits set beyond the hint and kind.
    UnknownMeta,
    /// A schema does not fit 32 bits.
    SchemaOutOfRange,
    /// A span offset does not fit 32 bits.
    SpanOffsetOutOfRange,
    /// A span length does not fit 32 bits.
    SpanLengthOutOfRange,
    /// A float field's kind byte is neither `0..=9` nor 255.
    UnknownValueKind,
    /// A count (of samples, spans, buckets or bounds) is larger than the
    /// bytes left could hold: rejected before anything is allocated.
    CountExceedsRecord,
    /// Bytes are left after the last sample.
    TrailingBytes,
}

impl HistogramRecordError {
    /// The reason as a static string (the WAL's damage reports carry these).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HistogramRecordError::Truncated => "truncated histogram record",
            HistogramRecordError::VarintOverflow => "varint overflows 64 bits",
            HistogramRecordError::UnknownMeta => "unknown histogram meta bits",
            HistogramRecordError::SchemaOutOfRange => "histogram schema out of range",
            HistogramRecordError::SpanOffsetOutOfRange => "histogram span offset out of range",
            HistogramRecordError::SpanLengthOutOfRange => "histogram span length out of range",
            HistogramRecordError::UnknownValueKind => "unknown value kind",
            HistogramRecordError::CountExceedsRecord => "histogram record count exceeds record length",
            HistogramRecordError::TrailingBytes => "trailing bytes after histogram samples",
        }
    }
}

type Result<T> = std::result::Result<T, HistogramRecordError>;

/// Appends the columns of a type-5 record for `samples` to `out`.
pub(crate) fn put_histogram_columns(out: &mut Vec<u8>, samples: &[RefHistogramSample]) {
    let mut prev = 0u64;
    for s in samples {
        put_varint(out, s.series_ref.wrapping_sub(prev) as i64);
        prev = s.series_ref;
    }
    let mut prev = 0i64;
    for s in samples {
        put_varint(out, s.t.wrapping_sub(prev));
        prev = s.t;
    }
    for s in samples {
        match &s.h {
            HistogramValue::Integer(h) => put_integer(out, h),
            HistogramValue::Float(h) => put_float_histogram(out, h),
        }
    }
}

/// Bytes [`put_histogram_columns`] appends for `samples`, computed without
/// writing them.
pub(crate) fn histogram_columns_len(samples: &[RefHistogramSample]) -> u64 {
    let vlen = |v: i64| uvarint_len(zigzag(v)) as u64;
    let ulen = |v: u64| uvarint_len(v) as u64;
    let spans = |s: &[Span]| {
        ulen(s.len() as u64) + s.iter().map(|s| vlen(s.offset.into()) + ulen(s.length.into())).sum::<u64>()
    };
    let floats = |v: &[f64]| ulen(v.len() as u64) + v.iter().map(|&f| float_len(f)).sum::<u64>();
    let mut n = 0u64;
    let (mut prev_ref, mut prev_t) = (0u64, 0i64);
    for s in samples {
        n += vlen(s.series_ref.wrapping_sub(prev_ref) as i64) + vlen(s.t.wrapping_sub(prev_t));
        (prev_ref, prev_t) = (s.series_ref, s.t);
        n += match &s.h {
            HistogramValue::Integer(h) => {
                let deltas = |v: &[i64]| ulen(v.len() as u64) + v.iter().map(|&d| vlen(d)).sum::<u64>();
                1 + vlen(h.schema.into())
                    + float_len(h.zero_threshold)
                    + ulen(h.zero_count)
                    + ulen(h.count)
                    + float_len(h.sum)
                    + spans(&h.positive_spans)
                    + spans(&h.negative_spans)
                    + deltas(&h.positive_buckets)
                    + deltas(&h.negative_buckets)
                    + floats(&h.custom_values)
            }
            HistogramValue::Float(h) => {
                1 + vlen(h.schema.into())
                    + float_len(h.zero_threshold)
                    + float_len(h.zero_count)
                    + float_len(h.count)
                    + float_len(h.sum)
                    + spans(&h.positive_spans)
                    + spans(&h.negative_spans)
                    + floats(&h.positive_buckets)
                    + floats(&h.negative_buckets)
                    + floats(&h.custom_values)
            }
        };
    }
    n
}

fn meta(hint: CounterResetHint, float: bool) -> u8 {
    (hint as u8 & META_HINT_MASK) | if float { META_FLOAT } else { 0 }
}

fn put_integer(out: &mut Vec<u8>, h: &Histogram) {
    out.push(meta(h.counter_reset_hint, false));
    put_varint(out, h.schema.into());
    put_float(out, h.zero_threshold);
    put_uvarint(out, h.zero_count);
    put_uvarint(out, h.count);
    put_float(out, h.sum);
    put_spans(out, &h.positive_spans);
    put_spans(out, &h.negative_spans);
    for deltas in [&h.positive_buckets, &h.negative_buckets] {
        put_uvarint(out, deltas.len() as u64);
        for &d in deltas {
            put_varint(out, d);
        }
    }
    put_floats(out, &h.custom_values);
}

fn put_float_histogram(out: &mut Vec<u8>, h: &FloatHistogram) {
    out.push(meta(h.counter_reset_hint, true));
    put_varint(out, h.schema.into());
    put_float(out, h.zero_threshold);
    put_float(out, h.zero_count);
    put_float(out, h.count);
    put_float(out, h.sum);
    put_spans(out, &h.positive_spans);
    put_spans(out, &h.negative_spans);
    put_floats(out, &h.positive_buckets);
    put_floats(out, &h.negative_buckets);
    put_floats(out, &h.custom_values);
}

fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(out, spans.len() as u64);
    for s in spans {
        put_varint(out, s.offset.into());
        put_uvarint(out, s.length.into());
    }
}

fn put_floats(out: &mut Vec<u8>, values: &[f64]) {
    put_uvarint(out, values.len() as u64);
    for &v in values {
        put_float(out, v);
    }
}

/// A float field: its kind byte, then the decimal's mantissa (kinds
/// `0..=9`, as type 4 stores values) or the 8 raw bytes of its bit pattern
/// (kind 255: NaN payloads, the staleness marker, -0.0, infinities, long
/// fractions).
fn put_float(out: &mut Vec<u8>, v: f64) {
    let bits = v.to_bits();
    match decimal_of(bits) {
        Some((k, m)) => {
            out.push(k as u8);
            put_varint(out, m);
        }
        None => {
            out.push(KIND_RAW);
            out.extend_from_slice(&bits.to_le_bytes());
        }
    }
}

fn float_len(v: f64) -> u64 {
    match decimal_of(v.to_bits()) {
        Some((_, m)) => 1 + uvarint_len(zigzag(m)) as u64,
        None => 9,
    }
}

/// Decodes the columns of a type-5 record of `n` samples, which must be
/// exactly `cols`. Never panics; every allocation is bounded by the bytes
/// left in `cols` (each element takes at least one byte).
pub(crate) fn read_histogram_columns(cols: &[u8], n: u64) -> Result<Vec<RefHistogramSample>> {
    let mut c = Cursor { buf: cols, pos: 0 };
    let n = c.capacity(n, MIN_HISTOGRAM_COLUMN_LEN)?;
    let mut refs = Vec::with_capacity(n);
    let mut series_ref = 0u64;
    for _ in 0..n {
        series_ref = series_ref.wrapping_add(c.varint()? as u64);
        refs.push(series_ref);
    }
    let mut times = Vec::with_capacity(n);
    let mut t = 0i64;
    for _ in 0..n {
        t = t.wrapping_add(c.varint()?);
        times.push(t);
    }
    let mut samples = Vec::with_capacity(n);
    for (series_ref, t) in refs.into_iter().zip(times) {
        let h = c.histogram()?;
        samples.push(RefHistogramSample { series_ref, t, h });
    }
    if c.remaining() != 0 {
        return Err(HistogramRecordError::TrailingBytes);
    }
    Ok(samples)
}

/// A read position in the columns, with typed errors.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// `n` entries of at least `min_size` bytes each must fit in what is left.
    fn capacity(&self, n: u64, min_size: usize) -> Result<usize> {
        if n > (self.remaining() / min_size) as u64 {
            return Err(HistogramRecordError::CountExceedsRecord);
        }
        Ok(n as usize)
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(HistogramRecordError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(HistogramRecordError::VarintOverflow);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(HistogramRecordError::VarintOverflow)
    }

    fn varint(&mut self) -> Result<i64> {
        Ok(crate::varint::unzigzag(self.uvarint()?))
    }

    fn float(&mut self) -> Result<f64> {
        let k = self.byte()?;
        if k == KIND_RAW {
            let end =
                self.pos.checked_add(8).filter(|&e| e <= self.buf.len()).ok_or(HistogramRecordError::Truncated)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(&self.buf[self.pos..end]);
            self.pos = end;
            return Ok(f64::from_bits(u64::from_le_bytes(a)));
        }
        let pow = *POW10.get(usize::from(k)).ok_or(HistogramRecordError::UnknownValueKind)?;
        // The encoder checked exactly this expression gives the value back.
        Ok(self.varint()? as f64 / pow)
    }

    fn floats(&mut self) -> Result<Vec<f64>> {
        let n = self.uvarint()?;
        // A kind byte and at least one more per value.
        let n = self.capacity(n, 2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.float()?);
        }
        Ok(v)
    }

    fn deltas(&mut self) -> Result<Vec<i64>> {
        let n = self.uvarint()?;
        let n = self.capacity(n, 1)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.varint()?);
        }
        Ok(v)
    }

    fn spans(&mut self) -> Result<Vec<Span>> {
        let n = self.uvarint()?;
        // Offset and length: at least one byte each.
        let n = self.capacity(n, 2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let offset = i32::try_from(self.varint()?).map_err(|_| HistogramRecordError::SpanOffsetOutOfRange)?;
            let length = u32::try_from(self.uvarint()?).map_err(|_| HistogramRecordError::SpanLengthOutOfRange)?;
            v.push(Span { offset, length });
        }
        Ok(v)
    }

    fn histogram(&mut self) -> Result<HistogramValue> {
        let meta = self.byte()?;
        if meta & !(META_HINT_MASK | META_FLOAT) != 0 {
            return Err(HistogramRecordError::UnknownMeta);
        }
        let counter_reset_hint =
            CounterResetHint::from_code(meta & META_HINT_MASK).ok_or(HistogramRecordError::UnknownMeta)?;
        let schema = i32::try_from(self.varint()?).map_err(|_| HistogramRecordError::SchemaOutOfRange)?;
        let zero_threshold = self.float()?;
        Ok(if meta & META_FLOAT == 0 {
            let zero_count = self.uvarint()?;
            let count = self.uvarint()?;
            let sum = self.float()?;
            let positive_spans = self.spans()?;
            let negative_spans = self.spans()?;
            let positive_buckets = self.deltas()?;
            let negative_buckets = self.deltas()?;
            let custom_values = self.floats()?;
            HistogramValue::Integer(Histogram {
                counter_reset_hint,
                schema,
                zero_threshold,
                zero_count,
                count,
                sum,
                positive_spans,
                negative_spans,
                positive_buckets,
                negative_buckets,
                custom_values,
            })
        } else {
            let zero_count = self.float()?;
            let count = self.float()?;
            let sum = self.float()?;
            let positive_spans = self.spans()?;
            let negative_spans = self.spans()?;
            let positive_buckets = self.floats()?;
            let negative_buckets = self.floats()?;
            let custom_values = self.floats()?;
            HistogramValue::Float(FloatHistogram {
                counter_reset_hint,
                schema,
                zero_threshold,
                zero_count,
                count,
                sum,
                positive_spans,
                negative_spans,
                positive_buckets,
                negative_buckets,
                custom_values,
            })
        })
    }
}

/// Whether two histogram values are the same bit for bit: every float
/// compared by its bit pattern, so NaN sums (the staleness marker) equal
/// themselves and `0.0` differs from `-0.0`.
pub(crate) fn bits_eq(a: &HistogramValue, b: &HistogramValue) -> bool {
    fn floats_eq(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }
    match (a, b) {
        (HistogramValue::Integer(a), HistogramValue::Integer(b)) => {
            a.counter_reset_hint == b.counter_reset_hint
                && a.schema == b.schema
                && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
                && a.zero_count == b.zero_count
                && a.count == b.count
                && a.sum.to_bits() == b.sum.to_bits()
                && a.positive_spans == b.positive_spans
                && a.negative_spans == b.negative_spans
                && a.positive_buckets == b.positive_buckets
                && a.negative_buckets == b.negative_buckets
                && floats_eq(&a.custom_values, &b.custom_values)
        }
        (HistogramValue::Float(a), HistogramValue::Float(b)) => {
            a.counter_reset_hint == b.counter_reset_hint
                && a.schema == b.schema
                && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
                && a.zero_count.to_bits() == b.zero_count.to_bits()
                && a.count.to_bits() == b.count.to_bits()
                && a.sum.to_bits() == b.sum.to_bits()
                && a.positive_spans == b.positive_spans
                && a.negative_spans == b.negative_spans
                && floats_eq(&a.positive_buckets, &b.positive_buckets)
                && floats_eq(&a.negative_buckets, &b.negative_buckets)
                && floats_eq(&a.custom_values, &b.custom_values)
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::super::record::{decode_body, encode_frame, envelope_count, v1_frame_len, FRAME_HEADER_LEN};
    use super::super::Record;
    use super::*;
    use crate::histogram::CUSTOM_BUCKETS_SCHEMA;
    use crate::{stale_nan, STALE_NAN_BITS};

    /// A histogram of one of seven shapes (by `seed % 7`), its numbers
    /// varied by the rest of the seed: integer and float counts, positive
    /// and negative buckets with a negative first offset, the staleness
    /// marker, custom buckets, an empty histogram, a gauge with a NaN sum.
    pub(crate) fn example(seed: u64) -> HistogramValue {
        let k = seed / 7;
        let spans = vec![Span { offset: -2, length: 2 }, Span { offset: 3, length: 1 }];
        let neg = vec![Span { offset: 1, length: 1 }];
        match seed % 7 {
            0 => HistogramValue::Integer(Histogram {
                counter_reset_hint: CounterResetHint::NotCounterReset,
                schema: 3,
                zero_threshold: 2f64.powi(-128),
                zero_count: k,
                count: 10 + 2 * k,
                sum: 12.5 + k as f64,
                positive_spans: spans,
                negative_spans: neg,
                positive_buckets: vec![2, -1, (k % 5) as i64],
                negative_buckets: vec![4],
                custom_values: vec![],
            }),
            1 => HistogramValue::Float(FloatHistogram {
                counter_reset_hint: CounterResetHint::Unknown,
                schema: -2,
                zero_threshold: 0.001,
                zero_count: 0.5,
                count: 7.25 + k as f64,
                sum: 1.0 / 3.0,
                positive_spans: spans,
                negative_spans: vec![],
                positive_buckets: vec![1.5, 0.1 + 0.2, k as f64],
                negative_buckets: vec![],
                custom_values: vec![],
            }),
            2 => HistogramValue::Integer(Histogram { sum: stale_nan(), ..Histogram::default() }),
            3 => HistogramValue::Integer(Histogram {
                counter_reset_hint: CounterResetHint::CounterReset,
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 6 + k,
                sum: 0.75,
                positive_spans: vec![Span { offset: 0, length: 4 }],
                positive_buckets: vec![1, 2, -1, k as i64],
                custom_values: vec![0.005, 0.1, 1.0, 10.0 + k as f64],
                ..Histogram::default()
            }),
            4 => HistogramValue::Float(FloatHistogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: 3.0,
                sum: f64::INFINITY,
                positive_spans: vec![Span { offset: 1, length: 1 }],
                positive_buckets: vec![3.0],
                custom_values: vec![-1.0, 2.0f64.sqrt()],
                ..FloatHistogram::default()
            }),
            5 => HistogramValue::Integer(Histogram { schema: 0, ..Histogram::default() }),
            _ => HistogramValue::Float(FloatHistogram {
                counter_reset_hint: CounterResetHint::Gauge,
                schema: 8,
                zero_threshold: -0.0,
                sum: f64::from_bits(0x7ff8_dead_beef_0001),
                count: f64::from_bits(0x7ff0_0000_0000_0002),
                ..FloatHistogram::default()
            }),
        }
    }

    /// Floats a WAL must keep bit for bit, and short decimals.
    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(stale_nan()),
            Just(f64::NAN),
            Just(f64::from_bits(0x7ff8_dead_beef_0001)),
            Just(-0.0),
            Just(0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(2f64.powi(-128)),
            (any::<i32>(), 0i32..=12).prop_map(|(m, k)| f64::from(m) / 10f64.powi(k)),
            (0u32..1000).prop_map(f64::from),
        ]
    }

    fn hint() -> impl Strategy<Value = CounterResetHint> {
        (0u8..4).prop_map(|c| CounterResetHint::from_code(c).unwrap())
    }

    fn schema() -> impl Strategy<Value = i32> {
        prop_oneof![-4i32..=8, Just(CUSTOM_BUCKETS_SCHEMA), any::<i32>()]
    }

    fn spans() -> impl Strategy<Value = Vec<Span>> {
        let offset = prop_oneof![-5i32..5, any::<i32>(), Just(i32::MIN), Just(i32::MAX)];
        let length = prop_oneof![0u32..4, any::<u32>()];
        prop::collection::vec((offset, length).prop_map(|(offset, length)| Span { offset, length }), 0..5)
    }

    fn deltas() -> impl Strategy<Value = Vec<i64>> {
        prop::collection::vec(prop_oneof![-10i64..10, any::<i64>()], 0..12)
    }

    fn floats(max: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(float(), 0..max)
    }

    fn count() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..1000, any::<u64>()]
    }

    /// Any histogram value, valid or not: the WAL stores what it is given.
    pub(crate) fn arb_histogram_value() -> impl Strategy<Value = HistogramValue> {
        let integer =
            ((hint(), schema(), float(), count(), count(), float()), (spans(), spans(), deltas(), deltas(), floats(6)))
                .prop_map(|((hint, schema, zt, zc, c, sum), (ps, ns, pb, nb, cv))| {
                    HistogramValue::Integer(Histogram {
                        counter_reset_hint: hint,
                        schema,
                        zero_threshold: zt,
                        zero_count: zc,
                        count: c,
                        sum,
                        positive_spans: ps,
                        negative_spans: ns,
                        positive_buckets: pb,
                        negative_buckets: nb,
                        custom_values: cv,
                    })
                });
        let float_h = (
            (hint(), schema(), float(), float(), float(), float()),
            (spans(), spans(), floats(12), floats(12), floats(6)),
        )
            .prop_map(|((hint, schema, zt, zc, c, sum), (ps, ns, pb, nb, cv))| {
                HistogramValue::Float(FloatHistogram {
                    counter_reset_hint: hint,
                    schema,
                    zero_threshold: zt,
                    zero_count: zc,
                    count: c,
                    sum,
                    positive_spans: ps,
                    negative_spans: ns,
                    positive_buckets: pb,
                    negative_buckets: nb,
                    custom_values: cv,
                })
            });
        prop_oneof![integer, float_h, any::<u64>().prop_map(example)]
    }

    fn arb_sample() -> impl Strategy<Value = RefHistogramSample> {
        let series_ref = prop_oneof![0u64..5000, any::<u64>()];
        let t = prop_oneof![1_700_000_000_000i64..1_700_000_100_000, any::<i64>()];
        (series_ref, t, arb_histogram_value()).prop_map(|(series_ref, t, h)| RefHistogramSample { series_ref, t, h })
    }

    fn body(rec: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(rec, &mut out).unwrap();
        out.split_off(FRAME_HEADER_LEN)
    }

    /// The body with the columns stored uncompressed (flags 0).
    fn plain_body(samples: &[RefHistogramSample]) -> Vec<u8> {
        let mut out = vec![5];
        put_uvarint(&mut out, samples.len() as u64);
        out.push(0);
        put_histogram_columns(&mut out, samples);
        out
    }

    fn decode_plain(b: &[u8]) -> Result<Vec<RefHistogramSample>> {
        // Type, count, flags: the tests' counts stay below 128.
        read_histogram_columns(&b[3..], u64::from(b[1]))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn histogram_samples_round_trip_bit_exactly(samples in prop::collection::vec(arb_sample(), 0..40)) {
            let rec = Record::HistogramSamples(samples.clone());
            let b = body(&rec);
            prop_assert_eq!(b[0], 5);
            prop_assert_eq!(decode_body(&b).unwrap(), rec.clone());
            // Uncompressed too, and its length is what retention counts.
            let plain = plain_body(&samples);
            prop_assert_eq!(decode_body(&plain).unwrap(), rec.clone());
            prop_assert_eq!(v1_frame_len(&rec), (FRAME_HEADER_LEN + plain.len()) as u64);
            prop_assert!(b.len() <= plain.len());
        }

        #[test]
        fn every_truncation_of_a_record_is_an_error(samples in prop::collection::vec(arb_sample(), 1..6)) {
            let plain = plain_body(&samples);
            for cut in 0..plain.len() {
                prop_assert!(decode_body(&plain[..cut]).is_err(), "cut at {}", cut);
            }
        }

        #[test]
        fn no_histogram_body_makes_the_decoder_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut b = vec![5];
            b.extend_from_slice(&bytes);
            let _ = decode_body(&b);
            let _ = envelope_count(&b);
            // The same bytes as uncompressed columns of up to 20 samples.
            let n = bytes.first().map_or(0, |&x| u64::from(x % 21));
            let _ = read_histogram_columns(&bytes, n);
        }

        #[test]
        fn damaged_histogram_bodies_never_panic(samples in prop::collection::vec(arb_sample(), 1..30), at in any::<usize>(), x in 1u8..=255) {
            for mut b in [body(&Record::HistogramSamples(samples.clone())), plain_body(&samples)] {
                let i = at % b.len();
                b[i] ^= x;
                let _ = decode_body(&b);
                let _ = envelope_count(&b);
            }
        }
    }

    #[test]
    fn a_small_record_is_laid_out_as_documented() {
        let h = HistogramValue::Integer(Histogram {
            counter_reset_hint: CounterResetHint::CounterReset,
            schema: -1,
            zero_threshold: 0.0,
            zero_count: 1,
            count: 4,
            sum: 2.5,
            positive_spans: vec![Span { offset: -1, length: 2 }],
            negative_spans: vec![],
            positive_buckets: vec![2, -1],
            negative_buckets: vec![],
            custom_values: vec![],
        });
        let rec = Record::HistogramSamples(vec![RefHistogramSample { series_ref: 3, t: -2, h }]);
        #[rustfmt::skip]
        let want = [
            5, 1, 0,        // type, count, flags (not compressed)
            6,              // ref delta 3, zig-zag
            3,              // time delta -2, zig-zag
            0b001,          // meta: hint 1 (counter reset), integer counts
            1,              // schema -1
            0, 0,           // zero threshold: decimal 0 with 0 decimals
            1, 4,           // zero count, count
            1, 50,          // sum: 25 (zig-zag 50) / 10^1
            1, 1, 2,        // one positive span: offset -1, length 2
            0,              // no negative spans
            2, 4, 1,        // two positive deltas: 2, -1
            0,              // no negative deltas
            0,              // no custom bounds
        ];
        assert_eq!(body(&rec), want);
        assert_eq!(decode_body(&want).unwrap(), rec);
    }

    #[test]
    fn special_floats_are_kept_bit_exactly() {
        let rec = Record::HistogramSamples(
            (0..7).map(|s| RefHistogramSample { series_ref: s, t: 0, h: example(s) }).collect(),
        );
        let Record::HistogramSamples(got) = decode_body(&body(&rec)).unwrap() else { panic!("wrong record type") };
        assert_eq!(got[2].h.sum().to_bits(), STALE_NAN_BITS);
        assert!(got[2].h.is_stale());
        assert_eq!(got[6].h.sum().to_bits(), 0x7ff8_dead_beef_0001);
        let HistogramValue::Float(f) = &got[6].h else { panic!("kind changed") };
        assert_eq!(f.zero_threshold.to_bits(), (-0.0f64).to_bits());
        assert_eq!(f.counter_reset_hint, CounterResetHint::Gauge);
        let HistogramValue::Integer(i) = &got[3].h else { panic!("kind changed") };
        assert_eq!(i.custom_values, [0.005, 0.1, 1.0, 10.0]);
        assert_eq!(Record::HistogramSamples(got), rec);
        // Bit-exact equality: a different NaN payload or sign of zero differs.
        let a = RefHistogramSample { series_ref: 1, t: 1, h: example(2) };
        let mut b = a.clone();
        assert_eq!(a, b);
        if let HistogramValue::Integer(h) = &mut b.h {
            h.sum = f64::NAN;
        }
        assert_ne!(a, b);
        assert_ne!(
            RefHistogramSample { series_ref: 1, t: 1, h: HistogramValue::Integer(Histogram::default()) },
            RefHistogramSample { series_ref: 1, t: 1, h: HistogramValue::Float(FloatHistogram::default()) },
        );
    }

    #[test]
    fn corrupt_columns_give_typed_errors() {
        let one = [RefHistogramSample { series_ref: 1, t: 1, h: example(0) }];
        let plain = plain_body(&one);
        // Meta byte (after type, count, flags, ref, time) with an unknown bit.
        let mut b = plain.clone();
        assert_eq!(b[5], 0b010);
        b[5] |= 0x80;
        assert_eq!(decode_plain(&b), Err(HistogramRecordError::UnknownMeta));
        // A schema beyond 32 bits.
        let mut b = plain[..6].to_vec();
        put_varint(&mut b, i64::from(i32::MAX) + 1);
        b.extend_from_slice(&plain[7..]);
        assert_eq!(decode_plain(&b), Err(HistogramRecordError::SchemaOutOfRange));
        // An unknown float kind (the zero threshold's, after the schema).
        let mut b = plain.clone();
        assert_eq!(b[7], KIND_RAW);
        b[7] = 10;
        assert!(matches!(
            decode_plain(&b),
            Err(HistogramRecordError::UnknownValueKind | HistogramRecordError::CountExceedsRecord)
        ));
        // Trailing bytes.
        let mut b = plain.clone();
        b.push(0);
        assert_eq!(decode_plain(&b), Err(HistogramRecordError::TrailingBytes));
        assert!(decode_body(&b).is_err());
        // Truncated.
        assert_eq!(decode_plain(&plain[..plain.len() - 1]), Err(HistogramRecordError::Truncated));
        // A span offset or length beyond 32 bits.
        let spans = |offset: i64, length: u64| {
            let mut c = vec![0u8, 0, 0, 0]; // ref, time, meta, schema
            c.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // zt, zero count, count, sum
            c.push(1);
            put_varint(&mut c, offset);
            put_uvarint(&mut c, length);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c.extend_from_slice(&[0; 8]); // padding so the count bound holds
            read_histogram_columns(&c, 1)
        };
        assert_eq!(spans(i64::from(i32::MIN) - 1, 1), Err(HistogramRecordError::SpanOffsetOutOfRange));
        assert_eq!(spans(0, u64::from(u32::MAX) + 1), Err(HistogramRecordError::SpanLengthOutOfRange));
        assert_eq!(spans(i64::from(i32::MIN), u64::from(u32::MAX)), Err(HistogramRecordError::TrailingBytes));
        // An overlong varint.
        let mut c = vec![0xffu8; 10];
        c.extend_from_slice(&[0; 20]);
        assert_eq!(read_histogram_columns(&c, 1), Err(HistogramRecordError::VarintOverflow));
    }

    #[test]
    fn hostile_lengths_are_rejected_before_allocating() {
        // More samples than the columns could hold.
        assert_eq!(read_histogram_columns(&[0; 29], 2), Err(HistogramRecordError::CountExceedsRecord));
        let mut b = vec![5];
        put_uvarint(&mut b, 1 << 40);
        b.extend_from_slice(&[0, 1, 2, 3]);
        assert!(decode_body(&b).is_err());
        // A bucket list claiming 2^62 entries in a short record.
        let mut c = vec![0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // up to the sum
        c.push(0); // no positive spans
        c.push(0); // no negative spans
        put_uvarint(&mut c, 1 << 62);
        c.extend_from_slice(&[0; 4]);
        assert_eq!(read_histogram_columns(&c, 1), Err(HistogramRecordError::CountExceedsRecord));
        // A compressed record declaring more than zstd could expand to.
        let mut b = vec![5];
        put_uvarint(&mut b, 10);
        b.push(1);
        put_uvarint(&mut b, 1 << 29);
        b.extend_from_slice(&[0; 4]);
        assert_eq!(decode_body(&b), Err("record declares an impossible length"));
        // Count above what the declared length holds.
        let mut b = vec![5];
        put_uvarint(&mut b, 100);
        b.push(1);
        put_uvarint(&mut b, 100 * MIN_HISTOGRAM_COLUMN_LEN as u64 - 1);
        b.extend_from_slice(&[0; 4]);
        assert_eq!(decode_body(&b), Err("record count exceeds record length"));
        assert_eq!(envelope_count(&b), None);
    }

    #[test]
    fn envelope_counts_histogram_samples_as_samples() {
        let samples: Vec<RefHistogramSample> =
            (0..50).map(|i| RefHistogramSample { series_ref: i, t: 1000, h: example(i) }).collect();
        let mut b = body(&Record::HistogramSamples(samples));
        assert_eq!(b[2], 1, "50 histograms are compressed");
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(decode_body(&b).is_err());
        assert_eq!(envelope_count(&b), Some((true, 50)));
    }

    #[test]
    fn a_batch_of_histograms_compresses() {
        let samples: Vec<RefHistogramSample> = (0..500)
            .map(|i| RefHistogramSample { series_ref: 100 + i, t: 1_700_000_000_000, h: example(i * 7) })
            .collect();
        let rec = Record::HistogramSamples(samples);
        let b = body(&rec);
        assert!((b.len() as u64) * 3 < v1_frame_len(&rec), "{} bytes", b.len());
        assert_eq!(decode_body(&b).unwrap(), rec);
    }
}

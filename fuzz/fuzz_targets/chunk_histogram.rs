//! Decoding arbitrary bytes as an integer or a float histogram chunk must
//! never panic (in the iterators, `decode_timestamps` and the appenders'
//! `from_bytes`), and any sequence of valid histograms must read back as
//! written. The input is both: the whole of it is decoded as a chunk of
//! each kind, and the same bytes, read with `arbitrary`, give the
//! histograms to encode (appended through `append`, cutting chunks where
//! it says so).
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tidemark_storage::chunkenc::{
    float_histogram, histogram, AppendOutcome, FloatHistogramAppender, FloatHistogramIterator, HistogramAppender,
    HistogramIterator,
};
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Histogram, Span, CUSTOM_BUCKETS_SCHEMA};
use tidemark_storage::{SampleIterator, STALE_NAN_BITS};

/// One sample to encode, drawn with `arbitrary`.
#[derive(Debug, Arbitrary)]
struct Raw {
    t: i64,
    /// Index into `SCHEMAS`.
    schema: u8,
    gauge: bool,
    reset: bool,
    zero_threshold: u8,
    count: u64,
    zero_count: u64,
    sum: u64,
    stale: bool,
    positive: Vec<(u8, u8)>,
    negative: Vec<(u8, u8)>,
    buckets: Vec<i64>,
    custom: Vec<u16>,
    /// Float samples: counts from the integer ones, or these bits.
    float_bits: bool,
}

const SCHEMAS: [i32; 5] = [0, 3, -4, 8, CUSTOM_BUCKETS_SCHEMA];

fn spans(raw: &[(u8, u8)]) -> Vec<Span> {
    raw.iter()
        .take(6)
        .enumerate()
        .map(|(i, &(o, l))| Span {
            offset: if i == 0 { i32::from(o) - 128 } else { i32::from(o % 8) },
            length: u32::from(l % 6),
        })
        .collect()
}

fn histogram_of(r: &Raw) -> Histogram {
    if r.stale {
        return Histogram { sum: f64::from_bits(STALE_NAN_BITS), ..Histogram::default() };
    }
    let schema = SCHEMAS[usize::from(r.schema) % SCHEMAS.len()];
    let custom = schema == CUSTOM_BUCKETS_SCHEMA;
    let positive_spans = spans(&r.positive);
    let negative_spans = if custom { Vec::new() } else { spans(&r.negative) };
    let np: u32 = positive_spans.iter().map(|s| s.length).sum();
    let nn: u32 = negative_spans.iter().map(|s| s.length).sum();
    let pool = if r.buckets.is_empty() { vec![1] } else { r.buckets.clone() };
    Histogram {
        counter_reset_hint: if r.gauge {
            CounterResetHint::Gauge
        } else if r.reset {
            CounterResetHint::CounterReset
        } else {
            CounterResetHint::Unknown
        },
        schema,
        zero_threshold: if custom { 0.0 } else { [0.0, 2f64.powi(-128), 0.001][usize::from(r.zero_threshold) % 3] },
        zero_count: r.zero_count,
        count: r.count,
        sum: f64::from_bits(r.sum),
        positive_buckets: pool.iter().cycle().take(np as usize).copied().collect(),
        negative_buckets: pool.iter().rev().cycle().take(nn as usize).copied().collect(),
        positive_spans,
        negative_spans,
        custom_values: if custom {
            r.custom.iter().take(8).map(|&c| f64::from(c) / 1000.0).collect()
        } else {
            Vec::new()
        },
    }
}

/// Absolute counts by bucket index, empty buckets left out (a chunk may
/// add empty buckets to a sample).
fn by_index(spans: &[Span], abs: &[u64]) -> BTreeMap<i64, u64> {
    let mut out = BTreeMap::new();
    let (mut idx, mut k) = (0i64, 0usize);
    for s in spans {
        idx += i64::from(s.offset);
        for _ in 0..s.length {
            if abs[k] != 0 && abs[k] != (-0.0f64).to_bits() {
                out.insert(idx, abs[k]);
            }
            idx += 1;
            k += 1;
        }
    }
    out
}

type Key = (i32, u64, u64, u64, u64, Vec<u64>, BTreeMap<i64, u64>, BTreeMap<i64, u64>);

fn int_key(h: &Histogram) -> Key {
    let abs = |d: &[i64]| {
        d.iter()
            .scan(0i64, |a, &x| {
                *a = a.wrapping_add(x);
                Some(*a as u64)
            })
            .collect::<Vec<_>>()
    };
    if h.sum.to_bits() == STALE_NAN_BITS {
        return (0, 0, 0, 0, STALE_NAN_BITS, Vec::new(), BTreeMap::new(), BTreeMap::new());
    }
    (
        h.schema,
        h.zero_threshold.to_bits(),
        h.count,
        h.zero_count,
        h.sum.to_bits(),
        h.custom_values.iter().map(|v| v.to_bits()).collect(),
        by_index(&h.positive_spans, &abs(&h.positive_buckets)),
        by_index(&h.negative_spans, &abs(&h.negative_buckets)),
    )
}

fn float_key(h: &FloatHistogram) -> Key {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if h.sum.to_bits() == STALE_NAN_BITS {
        return (0, 0, 0, 0, STALE_NAN_BITS, Vec::new(), BTreeMap::new(), BTreeMap::new());
    }
    (
        h.schema,
        h.zero_threshold.to_bits(),
        h.count.to_bits(),
        h.zero_count.to_bits(),
        h.sum.to_bits(),
        bits(&h.custom_values),
        by_index(&h.positive_spans, &bits(&h.positive_buckets)),
        by_index(&h.negative_spans, &bits(&h.negative_buckets)),
    )
}

fuzz_target!(|bytes: &[u8]| {
    // Arbitrary bytes: errors, never panics.
    let mut it = HistogramIterator::new(bytes);
    while it.next() {
        let _ = it.at_histogram();
    }
    let mut it = FloatHistogramIterator::new(bytes);
    while it.next() {
        let _ = it.at_histogram();
    }
    let _ = histogram::decode_timestamps(bytes, &mut Vec::new());
    let _ = float_histogram::decode_timestamps(bytes, &mut Vec::new());
    let _ = HistogramAppender::from_bytes(bytes);
    let _ = FloatHistogramAppender::from_bytes(bytes);

    // Valid histograms: round trip.
    let raws = Vec::<Raw>::arbitrary_take_rest(Unstructured::new(bytes)).unwrap_or_default();
    let samples: Vec<(i64, Histogram)> = raws.iter().take(200).map(|r| (r.t, histogram_of(r))).collect();
    let mut chunks = Vec::new();
    let mut app = HistogramAppender::new();
    for (t, h) in &samples {
        if let AppendOutcome::Cut { next, .. } = app.append(*t, h).expect("valid histogram appends") {
            chunks.push(std::mem::replace(&mut app, next).into_bytes());
        }
    }
    chunks.push(app.into_bytes());
    let mut got = Vec::new();
    for c in &chunks {
        let mut it = HistogramIterator::new(&c[..]);
        while it.next() {
            got.push((it.at_t(), int_key(&it.histogram())));
        }
        assert!(it.err().is_none(), "own chunk decodes: {:?}", it.err());
    }
    let want: Vec<(i64, Key)> = samples.iter().map(|(t, h)| (*t, int_key(h))).collect();
    assert_eq!(got, want);

    let floats: Vec<(i64, FloatHistogram)> = raws
        .iter()
        .zip(&samples)
        .map(|(r, (t, h))| {
            let mut f = h.to_float();
            if r.float_bits && !r.stale {
                f.count = f64::from_bits(h.count);
                f.zero_count = f64::from_bits(h.zero_count);
                for (b, raw) in f.positive_buckets.iter_mut().zip(&h.positive_buckets) {
                    *b = f64::from_bits(*raw as u64);
                }
            }
            (*t, f)
        })
        .collect();
    let mut chunks = Vec::new();
    let mut app = FloatHistogramAppender::new();
    for (t, h) in &floats {
        if let AppendOutcome::Cut { next, .. } = app.append(*t, h).expect("valid histogram appends") {
            chunks.push(std::mem::replace(&mut app, next).into_bytes());
        }
    }
    chunks.push(app.into_bytes());
    let mut got = Vec::new();
    for c in &chunks {
        let mut it = FloatHistogramIterator::new(&c[..]);
        while it.next() {
            got.push((it.at_t(), float_key(&it.float_histogram())));
        }
        assert!(it.err().is_none(), "own chunk decodes: {:?}", it.err());
    }
    let want: Vec<(i64, Key)> = floats.iter().map(|(t, h)| (*t, float_key(h))).collect();
    assert_eq!(got, want);
});

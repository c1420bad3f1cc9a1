//! Decoding arbitrary bytes as a sealed histogram chunk must never panic
//! (directly and through its chunk iterator), and any run of histograms
//! the encoder accepts must decode to what was encoded, bit for bit,
//! counter-reset hints aside. The input is both: decoded whole, and read
//! with `arbitrary` for the histograms to encode.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tidemark_storage::chunkenc::{sealed_histogram, SealedHistogramIterator};
use tidemark_storage::histogram::{
    CounterResetHint, Histogram, HistogramSample, HistogramValue, Span, CUSTOM_BUCKETS_SCHEMA,
};
use tidemark_storage::SampleIterator;

/// One sample to encode, drawn with `arbitrary`.
#[derive(Debug, Arbitrary)]
struct Raw {
    dt: u16,
    schema: u8,
    hint: u8,
    zero_threshold: u64,
    count: u64,
    zero_count: u64,
    sum: u64,
    positive: Vec<(i8, u8)>,
    negative: Vec<(i8, u8)>,
    buckets: Vec<i64>,
    custom: Vec<u64>,
}

const SCHEMAS: [i32; 5] = [0, 3, -4, 8, CUSTOM_BUCKETS_SCHEMA];

fn spans(raw: &[(i8, u8)]) -> Vec<Span> {
    raw.iter().take(6).map(|&(o, l)| Span { offset: i32::from(o), length: u32::from(l % 6) }).collect()
}

fn histogram_of(r: &Raw) -> Histogram {
    let positive_spans = spans(&r.positive);
    let negative_spans = spans(&r.negative);
    let np: u32 = positive_spans.iter().map(|s| s.length).sum();
    let nn: u32 = negative_spans.iter().map(|s| s.length).sum();
    let pool = if r.buckets.is_empty() { vec![1] } else { r.buckets.clone() };
    Histogram {
        counter_reset_hint: CounterResetHint::from_code(r.hint % 4).unwrap_or_default(),
        schema: SCHEMAS[usize::from(r.schema) % SCHEMAS.len()],
        zero_threshold: f64::from_bits(r.zero_threshold),
        zero_count: r.zero_count,
        count: r.count,
        sum: f64::from_bits(r.sum),
        positive_buckets: pool.iter().cycle().take(np as usize).copied().collect(),
        negative_buckets: pool.iter().rev().cycle().take(nn as usize).copied().collect(),
        positive_spans,
        negative_spans,
        custom_values: r.custom.iter().take(8).map(|&c| f64::from_bits(c)).collect(),
    }
}

/// Every field's bits but the hint.
fn key(s: &HistogramSample) -> String {
    let h = match &s.h {
        HistogramValue::Integer(h) => h.to_float(),
        HistogramValue::Float(h) => h.clone(),
    };
    let b = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let raw = match &s.h {
        HistogramValue::Integer(h) => {
            format!("{} {} {:?} {:?}", h.count, h.zero_count, h.positive_buckets, h.negative_buckets)
        }
        HistogramValue::Float(_) => String::new(),
    };
    format!(
        "{} {} {:x} {:x} {:x} {:x} {:?} {:?} {:?} {:?} {:?} {raw}",
        s.t,
        h.schema,
        h.zero_threshold.to_bits(),
        h.count.to_bits(),
        h.zero_count.to_bits(),
        h.sum.to_bits(),
        h.positive_spans,
        h.negative_spans,
        b(&h.positive_buckets),
        b(&h.negative_buckets),
        b(&h.custom_values)
    )
}

fuzz_target!(|bytes: &[u8]| {
    // Arbitrary bytes: errors, never panics.
    let _ = sealed_histogram::decode(bytes, &mut Vec::new());
    let _ = sealed_histogram::inspect(bytes);
    let mut it = SealedHistogramIterator::new(bytes);
    while it.next() {
        let _ = it.at_histogram();
    }

    // Valid runs: round trip, integer and float.
    let raws = Vec::<Raw>::arbitrary_take_rest(Unstructured::new(bytes)).unwrap_or_default();
    let mut t = 0i64;
    let ints: Vec<HistogramSample> = raws
        .iter()
        .take(300)
        .map(|r| {
            t += i64::from(r.dt) + 1;
            HistogramSample { t, h: HistogramValue::Integer(histogram_of(r)) }
        })
        .collect();
    if ints.is_empty() {
        return;
    }
    let floats: Vec<HistogramSample> = ints
        .iter()
        .map(|s| match &s.h {
            HistogramValue::Integer(h) => HistogramSample { t: s.t, h: HistogramValue::Float(h.to_float()) },
            HistogramValue::Float(_) => s.clone(),
        })
        .collect();
    for run in [ints, floats] {
        for level in [0, 3] {
            let mut out = Vec::new();
            sealed_histogram::encode_with_level(&run, level, &mut out).expect("a valid run encodes");
            let mut got = Vec::new();
            sealed_histogram::decode(&out, &mut got).expect("own chunk decodes");
            assert_eq!(got.iter().map(key).collect::<Vec<_>>(), run.iter().map(key).collect::<Vec<_>>());
        }
    }
});

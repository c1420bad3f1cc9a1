use proptest::prelude::*;

use super::*;
use crate::chunkenc::{Chunk, Encoding};
use crate::histogram::CUSTOM_BUCKETS_SCHEMA;

/// What the encoder promises for hints: the first sample's is unknown
/// unless gauge; a "no reset" the data contradicts becomes unknown.
fn expected_hint(i: usize, run: &[HistogramSample]) -> CounterResetHint {
    let (h, prev) = (hint_of(&run[i].h), i.checked_sub(1).map(|j| &run[j].h));
    match (h, prev) {
        (CounterResetHint::Gauge, _) => CounterResetHint::Gauge,
        (_, None) => CounterResetHint::Unknown,
        (CounterResetHint::NotCounterReset, Some(p)) => {
            let (a, b) = (parts(&run[i].h), parts(p));
            let float = matches!(run[i].h, HistogramValue::Float(_));
            let dec = bucket_column(&[b, a], float).unwrap().1[1];
            let (a, b) = (parts(&run[i].h), parts(p));
            if dec || !same_layout(&a, &b) || less(float, a.count, b.count) || less(float, a.zero, b.zero) {
                CounterResetHint::Unknown
            } else {
                CounterResetHint::NotCounterReset
            }
        }
        (h, _) => h,
    }
}

fn hint_of(h: &HistogramValue) -> CounterResetHint {
    match h {
        HistogramValue::Integer(h) => h.counter_reset_hint,
        HistogramValue::Float(h) => h.counter_reset_hint,
    }
}

fn set_hint(h: &mut HistogramValue, hint: CounterResetHint) {
    match h {
        HistogramValue::Integer(h) => h.counter_reset_hint = hint,
        HistogramValue::Float(h) => h.counter_reset_hint = hint,
    }
}

/// Every field's bits, for comparing NaNs and signed zeros exactly.
fn bits(s: &HistogramSample) -> String {
    match &s.h {
        HistogramValue::Integer(h) => format!(
            "{} I {:?} {} {:x} {} {} {:x} {:?} {:?} {:?} {:?} {:?}",
            s.t,
            h.counter_reset_hint,
            h.schema,
            h.zero_threshold.to_bits(),
            h.zero_count,
            h.count,
            h.sum.to_bits(),
            h.positive_spans,
            h.negative_spans,
            h.positive_buckets,
            h.negative_buckets,
            h.custom_values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        ),
        HistogramValue::Float(h) => format!(
            "{} F {:?} {} {:x} {:x} {:x} {:x} {:?} {:?} {:?} {:?} {:?}",
            s.t,
            h.counter_reset_hint,
            h.schema,
            h.zero_threshold.to_bits(),
            h.zero_count.to_bits(),
            h.count.to_bits(),
            h.sum.to_bits(),
            h.positive_spans,
            h.negative_spans,
            h.positive_buckets.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            h.negative_buckets.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            h.custom_values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        ),
    }
}

fn check_round_trip(run: &[HistogramSample], level: i32) {
    let mut bytes = vec![0xAA];
    encode_with_level(run, level, &mut bytes).unwrap();
    let mut out = vec![run[0].clone()];
    decode(&bytes[1..], &mut out).unwrap();
    assert_eq!(out.len(), run.len() + 1);
    for (i, (got, want)) in out[1..].iter().zip(run).enumerate() {
        let mut want = want.clone();
        set_hint(&mut want.h, expected_hint(i, run));
        assert_eq!(bits(got), bits(&want), "sample {i}");
    }
}

fn spans_strategy() -> impl Strategy<Value = Vec<Span>> {
    prop::collection::vec((-3i32..6, 0u32..4), 0..4)
        .prop_map(|v| v.into_iter().map(|(offset, length)| Span { offset, length }).collect())
}

fn sum_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e6f64..1e6,
        1 => Just(crate::stale_nan()),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => any::<u64>().prop_map(f64::from_bits),
    ]
}

/// A histogram sample of either kind with random layout and counts.
fn value_strategy(float: bool) -> impl Strategy<Value = HistogramValue> {
    (
        prop_oneof![Just(0), Just(3), Just(-2), Just(8), Just(CUSTOM_BUCKETS_SCHEMA)],
        spans_strategy(),
        spans_strategy(),
        prop::collection::vec(-20i64..40, 16),
        (0u64..1000, 0u64..50, sum_strategy(), 0u8..4, prop_oneof![Just(0.0), Just(1e-3), Just(2.938735877055719e-39)]),
        prop::collection::vec(0.1f64..10.0, 0..4),
    )
        .prop_map(move |(schema, pos, neg, raw, (count, zero, sum, hint, zt), custom)| {
            let np: usize = pos.iter().map(|s| s.length as usize).sum();
            let nn: usize = neg.iter().map(|s| s.length as usize).sum();
            let hint = CounterResetHint::from_code(hint).unwrap();
            let pb: Vec<i64> = raw.iter().cycle().take(np).copied().collect();
            let nb: Vec<i64> = raw.iter().rev().cycle().take(nn).copied().collect();
            let h = Histogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold: zt,
                zero_count: zero,
                count,
                sum,
                positive_spans: pos,
                negative_spans: neg,
                positive_buckets: pb,
                negative_buckets: nb,
                custom_values: if schema == CUSTOM_BUCKETS_SCHEMA { custom } else { Vec::new() },
            };
            if float {
                let mut f = h.to_float();
                f.counter_reset_hint = hint;
                f.sum = sum;
                HistogramValue::Float(f)
            } else {
                HistogramValue::Integer(h)
            }
        })
}

/// A run: a base sample repeated with small changes (so that layouts
/// repeat), now and then a wholly new one.
fn run_strategy(float: bool) -> impl Strategy<Value = Vec<HistogramSample>> {
    (prop::collection::vec((value_strategy(float), 0u8..4, 1i64..30_000), 1..40), -1_000_000i64..1_000_000).prop_map(
        |(vals, t0)| {
            let mut t = t0;
            let mut out: Vec<HistogramSample> = Vec::new();
            for (v, keep, dt) in vals {
                t += dt;
                let h = match (keep, out.last()) {
                    // Same layout, counts grown.
                    (0 | 1, Some(prev)) => {
                        let mut h = prev.h.clone();
                        match &mut h {
                            HistogramValue::Integer(h) => {
                                h.count += u64::from(keep) + 1;
                                if let Some(b) = h.positive_buckets.first_mut() {
                                    *b += 1;
                                }
                                h.counter_reset_hint = CounterResetHint::NotCounterReset;
                            }
                            HistogramValue::Float(h) => {
                                h.count += 1.5;
                                if let Some(b) = h.positive_buckets.first_mut() {
                                    *b += 0.5;
                                }
                                h.counter_reset_hint = CounterResetHint::NotCounterReset;
                            }
                        }
                        h
                    }
                    _ => v,
                };
                out.push(HistogramSample { t, h });
            }
            out
        },
    )
}

proptest! {
    #[test]
    fn integer_runs_round_trip(run in run_strategy(false), zstd in any::<bool>()) {
        check_round_trip(&run, if zstd { 3 } else { 0 });
    }

    #[test]
    fn float_runs_round_trip(run in run_strategy(true), zstd in any::<bool>()) {
        check_round_trip(&run, if zstd { 3 } else { 0 });
    }

    #[test]
    fn corrupt_chunks_give_errors_not_panics(run in run_strategy(false), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = Vec::new();
        encode_with_level(&run, 0, &mut bytes).unwrap();
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut], &mut Vec::new()).is_err(), "prefix of {} bytes", cut);
        }
        let i = at.index(bytes.len());
        bytes[i] = b;
        let mut out = Vec::new();
        // May decode (a changed value) or fail; never panics, and on error
        // leaves `out` untouched.
        if decode(&bytes, &mut out).is_err() {
            prop_assert!(out.is_empty());
        }
    }
}

fn counter(t: i64, count: u64, buckets: Vec<i64>, spans: Vec<Span>) -> HistogramSample {
    HistogramSample {
        t,
        h: HistogramValue::Integer(Histogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: 3,
            zero_threshold: 1e-3,
            count,
            sum: count as f64 * 0.5,
            positive_spans: spans,
            positive_buckets: buckets,
            ..Histogram::default()
        }),
    }
}

#[test]
fn hints_follow_prometheus_rule_and_resets_become_unknown() {
    let sp = vec![Span { offset: 2, length: 2 }];
    let run = vec![
        counter(1_000, 3, vec![1, 1], sp.clone()),
        counter(2_000, 5, vec![2, 1], sp.clone()),
        // Counter reset: count and buckets went down.
        counter(3_000, 1, vec![1, -1], sp.clone()),
        counter(4_000, 2, vec![1, 0], sp.clone()),
        // A bucket vanished (layout change).
        counter(5_000, 2, vec![2], vec![Span { offset: 2, length: 1 }]),
    ];
    let mut bytes = Vec::new();
    encode(&run, &mut bytes).unwrap();
    let mut out = Vec::new();
    decode(&bytes, &mut out).unwrap();
    let hints: Vec<_> = out.iter().map(|s| hint_of(&s.h)).collect();
    use CounterResetHint::*;
    assert_eq!(hints, vec![Unknown, NotCounterReset, Unknown, NotCounterReset, Unknown]);
}

#[test]
fn encoder_refuses_bad_runs() {
    let sp = vec![Span { offset: 0, length: 1 }];
    let mut out = Vec::new();
    assert_eq!(encode(&[], &mut out), Err(EncodeError::Empty));
    let a = counter(10, 1, vec![1], sp.clone());
    assert_eq!(encode(&[a.clone(), a.clone()], &mut out), Err(EncodeError::Unsorted));
    let mut f = a.clone();
    f.t = 20;
    f.h = HistogramValue::Float(f.h.to_float());
    assert_eq!(encode(&[a.clone(), f], &mut out), Err(EncodeError::MixedKinds));
    let bad = counter(10, 1, vec![1, 2], sp);
    assert_eq!(encode(&[bad], &mut out), Err(EncodeError::SpansMismatch));
    // A span naming billions of buckets is refused without building them.
    let huge = counter(10, 1, vec![1], vec![Span { offset: 0, length: u32::MAX }]);
    assert_eq!(encode(&[huge], &mut out), Err(EncodeError::SpansMismatch));
    assert!(out.is_empty());
}

#[test]
fn hostile_chunks_are_bounded() {
    // A layout whose span names 2^32-1 buckets, in a tiny chunk.
    let mut body = Vec::new();
    put_varint(&mut body, 0); // t
    body.push(0); // hint
    put_uvarint(&mut body, 1); // layouts
    put_uvarint(&mut body, 0);
    body.push(LAYOUT_ALL);
    put_varint(&mut body, 0);
    body.extend_from_slice(&0u64.to_le_bytes());
    put_uvarint(&mut body, 0);
    put_uvarint(&mut body, 1);
    put_varint(&mut body, 0);
    put_uvarint(&mut body, u64::from(u32::MAX));
    put_uvarint(&mut body, 0);
    body.extend_from_slice(&[0, 0, 0, 0, 0]);
    let mut chunk = vec![VERSION, 0];
    put_uvarint(&mut chunk, 1);
    chunk.extend_from_slice(&body);
    assert!(decode(&chunk, &mut Vec::new()).is_err());
    // A zstd chunk declaring a huge body.
    let mut chunk = vec![VERSION, FLAG_ZSTD];
    put_uvarint(&mut chunk, 1);
    put_uvarint(&mut chunk, 1 << 40);
    chunk.extend_from_slice(&[0; 8]);
    assert!(decode(&chunk, &mut Vec::new()).is_err());
    // Unknown version, flags, zero samples.
    for c in [&[2u8, 0, 1][..], &[VERSION, 4, 1], &[VERSION, 0, 0], &[]] {
        assert!(decode(c, &mut Vec::new()).is_err());
    }
}

#[test]
fn chunk_iterator_reads_sealed_histograms() {
    let sp = vec![Span { offset: 0, length: 2 }];
    let run: Vec<_> = (1..=5).map(|i| counter(i * 10, i as u64 * 2, vec![i, 0], sp.clone())).collect();
    let mut bytes = Vec::new();
    encode(&run, &mut bytes).unwrap();
    let c = Chunk {
        mint: 10,
        maxt: 50,
        encoding: Encoding::SealedHistogram,
        bytes: bytes.into(),
        timestamps: None,
        summary: None,
    };
    let mut it = c.iter();
    assert!(it.has_histograms());
    assert!(it.seek(25));
    assert_eq!(it.at().t, 30);
    assert_eq!(it.kind(), ValueKind::Histogram);
    assert_eq!(it.at_histogram().unwrap().h.to_float().count, 6.0);
    assert!(it.seek(20), "seek never moves back");
    assert_eq!(it.at().t, 30);
    assert!(it.next());
    assert_eq!(it.at().t, 40);
    let (mut floats, mut hists) = (Vec::new(), Vec::new());
    c.decode_mixed_into(&mut floats, &mut hists).unwrap();
    assert!(floats.is_empty());
    assert_eq!(hists.len(), 5);
    let mut out = Vec::new();
    c.decode_into(&mut out).unwrap();
    assert!(out.is_empty(), "no floats in a histogram chunk");
    let mut out = Vec::new();
    assert_eq!(c.iter().drain_range(20, 40, &mut out), crate::chunkenc::DrainEnd::PastEnd);
    assert_eq!(out.iter().map(|s| s.t).collect::<Vec<_>>(), vec![20, 30, 40]);
    let bad = Chunk { bytes: vec![VERSION, 0, 9, 1].into(), ..c.clone() };
    assert!(bad.decode_into(&mut Vec::new()).is_err());
    let mut it = bad.iter();
    assert!(!it.next());
    assert!(it.err().is_some());
}

#[test]
fn what_the_encoder_accepts_the_decoder_accepts() {
    // Empty custom-bucket histograms with many bounds, the bounds changing
    // every sample: the decoder's bound on repeated parts is the tightest
    // here. Whatever the encoder writes must decode.
    for (bounds, samples) in [(10usize, 100usize), (200, 300), (1000, 2000), (3000, 50)] {
        let run: Vec<HistogramSample> = (0..samples)
            .map(|i| HistogramSample {
                t: i as i64,
                h: HistogramValue::Integer(Histogram {
                    schema: CUSTOM_BUCKETS_SCHEMA,
                    custom_values: (0..bounds).map(|b| (b + i % 2) as f64).collect(),
                    ..Histogram::default()
                }),
            })
            .collect();
        let mut bytes = Vec::new();
        match encode(&run, &mut bytes) {
            Ok(()) => {
                let mut out = Vec::new();
                decode(&bytes, &mut out).unwrap();
                assert_eq!(out.len(), run.len());
            }
            Err(e) => assert_eq!(e, EncodeError::TooLarge, "{bounds} bounds × {samples}"),
        }
    }
}

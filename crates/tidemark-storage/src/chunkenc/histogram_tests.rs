//! Tests of the integer and float histogram chunk codecs.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::chunkenc::float_histogram::{self, FloatHistogramAppender, FloatHistogramIterator};
use crate::chunkenc::histogram::{self, HistogramAppender, HistogramIterator};
use crate::chunkenc::histogram_meta::{
    AppendOutcome, CounterResetHeader, CutReason, HistogramAppendError, MAX_SAMPLES,
};
use crate::histogram::{CounterResetHint, FloatHistogram, Histogram, Span, CUSTOM_BUCKETS_SCHEMA};
use crate::sample::{stale_nan, SampleIterator, ValueKind, STALE_NAN_BITS};

// ---------------------------------------------------------------------------
// Helpers.

/// Spans and delta buckets from (index, count) pairs sorted by index.
fn int_layout(buckets: &[(i64, i64)]) -> (Vec<Span>, Vec<i64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut deltas = Vec::new();
    let (mut last_idx, mut last_count) = (0i64, 0i64);
    for (k, &(idx, count)) in buckets.iter().enumerate() {
        match spans.last_mut() {
            Some(s) if idx == last_idx + 1 => s.length += 1,
            _ if k == 0 => spans.push(Span { offset: idx as i32, length: 1 }),
            _ => spans.push(Span { offset: (idx - last_idx - 1) as i32, length: 1 }),
        }
        deltas.push(count - last_count);
        (last_idx, last_count) = (idx, count);
    }
    (spans, deltas)
}

fn hist(schema: i32, count: u64, zero: u64, sum: f64, pos: &[(i64, i64)], neg: &[(i64, i64)]) -> Histogram {
    let (positive_spans, positive_buckets) = int_layout(pos);
    let (negative_spans, negative_buckets) = int_layout(neg);
    Histogram {
        schema,
        zero_threshold: if schema == CUSTOM_BUCKETS_SCHEMA { 0.0 } else { 2f64.powi(-128) },
        count,
        zero_count: zero,
        sum,
        positive_spans,
        positive_buckets,
        negative_spans,
        negative_buckets,
        custom_values: if schema == CUSTOM_BUCKETS_SCHEMA { vec![0.005, 0.01, 0.1, 1.0, 10.0] } else { vec![] },
        ..Histogram::default()
    }
}

/// Absolute counts by index, empty buckets left out (a chunk may add
/// empty buckets to a sample).
fn index_counts<T: Copy + PartialEq + Default>(spans: &[Span], abs: &[T]) -> BTreeMap<i64, T> {
    let mut out = BTreeMap::new();
    let mut idx = 0i64;
    let mut k = 0;
    for s in spans {
        idx += i64::from(s.offset);
        for _ in 0..s.length {
            if abs[k] != T::default() {
                out.insert(idx, abs[k]);
            }
            idx += 1;
            k += 1;
        }
    }
    out
}

fn abs_int(deltas: &[i64]) -> Vec<i64> {
    deltas
        .iter()
        .scan(0i64, |a, &d| {
            *a = a.wrapping_add(d);
            Some(*a)
        })
        .collect()
}

/// Whether `got` is `want` as a chunk stores it: staleness markers carry
/// only their sum; empty buckets may be added; the hint is the chunk's.
fn same_int(want: &Histogram, got: &Histogram) -> Result<(), String> {
    if want.sum.to_bits() == STALE_NAN_BITS {
        return if got.sum.to_bits() == STALE_NAN_BITS && (Histogram { sum: 0.0, ..got.clone() }) == Histogram::default()
        {
            Ok(())
        } else {
            Err(format!("stale marker came back as {got:?}"))
        };
    }
    let fields = |h: &Histogram| {
        (
            h.schema,
            h.zero_threshold.to_bits(),
            h.count,
            h.zero_count,
            h.sum.to_bits(),
            h.custom_values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            index_counts(&h.positive_spans, &abs_int(&h.positive_buckets)),
            index_counts(&h.negative_spans, &abs_int(&h.negative_buckets)),
        )
    };
    if fields(want) == fields(got) {
        Ok(())
    } else {
        Err(format!("want {want:?}\n got {got:?}"))
    }
}

fn same_float(want: &FloatHistogram, got: &FloatHistogram) -> Result<(), String> {
    if want.sum.to_bits() == STALE_NAN_BITS {
        let ok = got.sum.to_bits() == STALE_NAN_BITS
            && FloatHistogram { sum: 0.0, ..got.clone() } == FloatHistogram::default();
        return if ok { Ok(()) } else { Err(format!("stale marker came back as {got:?}")) };
    }
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let fields = |h: &FloatHistogram| {
        (
            h.schema,
            h.zero_threshold.to_bits(),
            h.count.to_bits(),
            h.zero_count.to_bits(),
            h.sum.to_bits(),
            bits(&h.custom_values),
            index_counts(&h.positive_spans, &bits(&h.positive_buckets)),
            index_counts(&h.negative_spans, &bits(&h.negative_buckets)),
        )
    };
    // A bucket of +0.0 may be one a chunk added; compare without those.
    if fields(want) == fields(got) {
        Ok(())
    } else {
        Err(format!("want {want:?}\n got {got:?}"))
    }
}

/// Appends every sample, cutting chunks as the appender says; returns the
/// chunks' bytes and the reasons of the cuts.
fn encode_int(samples: &[(i64, Histogram)]) -> (Vec<Vec<u8>>, Vec<CutReason>) {
    let mut chunks = Vec::new();
    let mut reasons = Vec::new();
    let mut app = HistogramAppender::new();
    for (t, h) in samples {
        match app.append(*t, h).unwrap() {
            AppendOutcome::Appended | AppendOutcome::Recoded => {}
            AppendOutcome::Cut { reason, next } => {
                chunks.push(std::mem::replace(&mut app, next).into_bytes());
                reasons.push(reason);
            }
        }
    }
    if app.num_samples() > 0 {
        chunks.push(app.into_bytes());
    }
    (chunks, reasons)
}

fn encode_float(samples: &[(i64, FloatHistogram)]) -> (Vec<Vec<u8>>, Vec<CutReason>) {
    let mut chunks = Vec::new();
    let mut reasons = Vec::new();
    let mut app = FloatHistogramAppender::new();
    for (t, h) in samples {
        match app.append(*t, h).unwrap() {
            AppendOutcome::Appended | AppendOutcome::Recoded => {}
            AppendOutcome::Cut { reason, next } => {
                chunks.push(std::mem::replace(&mut app, next).into_bytes());
                reasons.push(reason);
            }
        }
    }
    if app.num_samples() > 0 {
        chunks.push(app.into_bytes());
    }
    (chunks, reasons)
}

fn decode_int(bytes: &[u8]) -> Result<Vec<(i64, Histogram)>, crate::Error> {
    let mut it = HistogramIterator::new(bytes);
    let mut out = Vec::new();
    while it.next() {
        assert_eq!(it.kind(), ValueKind::Histogram);
        assert!(it.at().v.is_nan());
        out.push((it.at_t(), it.histogram()));
    }
    match it.err() {
        Some(e) => Err(e.clone()),
        None => Ok(out),
    }
}

fn decode_float(bytes: &[u8]) -> Result<Vec<(i64, FloatHistogram)>, crate::Error> {
    let mut it = FloatHistogramIterator::new(bytes);
    let mut out = Vec::new();
    while it.next() {
        assert_eq!(it.kind(), ValueKind::FloatHistogram);
        out.push((it.at_t(), it.float_histogram()));
    }
    match it.err() {
        Some(e) => Err(e.clone()),
        None => Ok(out),
    }
}

/// Decodes the chunks, checks hints and timestamps, and compares with the
/// samples.
fn check_int_round_trip(samples: &[(i64, Histogram)], chunks: &[Vec<u8>]) -> Result<(), String> {
    let mut got = Vec::new();
    for c in chunks {
        let header = HistogramIterator::new(&c[..]).counter_reset_header();
        let decoded = decode_int(c).map_err(|e| e.to_string())?;
        let mut ts = Vec::new();
        histogram::decode_timestamps(c, &mut ts).map_err(|e| e.to_string())?;
        if ts != decoded.iter().map(|s| s.0).collect::<Vec<_>>() {
            return Err("decode_timestamps disagrees".into());
        }
        for (i, (_, h)) in decoded.iter().enumerate() {
            let want =
                if h.sum.to_bits() == STALE_NAN_BITS { CounterResetHint::Unknown } else { header.sample_hint(i + 1) };
            if h.counter_reset_hint != want {
                return Err(format!("sample {i} of a {header:?} chunk has hint {:?}", h.counter_reset_hint));
            }
        }
        got.extend(decoded);
    }
    if got.len() != samples.len() {
        return Err(format!("{} samples back of {}", got.len(), samples.len()));
    }
    for ((wt, wh), (gt, gh)) in samples.iter().zip(&got) {
        if wt != gt {
            return Err(format!("timestamp {gt} instead of {wt}"));
        }
        same_int(wh, gh)?;
    }
    Ok(())
}

fn check_float_round_trip(samples: &[(i64, FloatHistogram)], chunks: &[Vec<u8>]) -> Result<(), String> {
    let mut got = Vec::new();
    for c in chunks {
        let header = FloatHistogramIterator::new(&c[..]).counter_reset_header();
        let decoded = decode_float(c).map_err(|e| e.to_string())?;
        let mut ts = Vec::new();
        float_histogram::decode_timestamps(c, &mut ts).map_err(|e| e.to_string())?;
        if ts != decoded.iter().map(|s| s.0).collect::<Vec<_>>() {
            return Err("decode_timestamps disagrees".into());
        }
        for (i, (_, h)) in decoded.iter().enumerate() {
            let want =
                if h.sum.to_bits() == STALE_NAN_BITS { CounterResetHint::Unknown } else { header.sample_hint(i + 1) };
            if h.counter_reset_hint != want {
                return Err(format!("sample {i} of a {header:?} chunk has hint {:?}", h.counter_reset_hint));
            }
        }
        got.extend(decoded);
    }
    if got.len() != samples.len() {
        return Err(format!("{} samples back of {}", got.len(), samples.len()));
    }
    for ((wt, wh), (gt, gh)) in samples.iter().zip(&got) {
        if wt != gt {
            return Err(format!("timestamp {gt} instead of {wt}"));
        }
        same_float(wh, gh)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A model of a counter histogram series for the proptests.

/// One scrape's changes.
#[derive(Debug, Clone)]
struct Step {
    /// Observations: (bucket index, negative?, how many).
    observe: Vec<(i8, bool, u8)>,
    zero: u8,
    /// 0: counter reset, 1: schema change, 2: zero threshold change,
    /// 3: NaN sum, 4: empty buckets dropped from the layout, 5: staleness
    /// marker, 6: gauge-style decrease of a bucket; else a plain scrape.
    special: u8,
    jitter: i16,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (proptest::collection::vec((-6i8..12, any::<bool>(), 0u8..4), 0..6), 0u8..3, 0u8..60, -500i16..500)
            .prop_map(|(observe, zero, special, jitter)| Step { observe, zero, special, jitter }),
        1..80,
    )
}

/// The series the steps make: counter histograms of `schema` (or custom
/// buckets), growing, with the special events the steps ask for.
fn series(schema: i32, steps: &[Step], gauge: bool) -> Vec<(i64, Histogram)> {
    let custom = schema == CUSTOM_BUCKETS_SCHEMA;
    let mut schema = schema;
    let mut zt = if custom { 0.0 } else { 2f64.powi(-128) };
    let mut pos: BTreeMap<i64, i64> = BTreeMap::new();
    let mut neg: BTreeMap<i64, i64> = BTreeMap::new();
    let (mut zero, mut sum) = (0u64, 0.0f64);
    let mut t = 1_700_000_000_000i64;
    let mut out = Vec::new();
    for s in steps {
        t += 15_000 + i64::from(s.jitter);
        let mut nan_sum = false;
        match s.special {
            0 => {
                pos.clear();
                neg.clear();
                zero = 0;
                sum = 0.0;
            }
            1 if !custom => schema = if schema == 3 { 2 } else { 3 },
            2 if !custom => zt = if zt == 0.001 { 2f64.powi(-128) } else { 0.001 },
            3 => nan_sum = true,
            4 => {
                pos.retain(|_, c| *c != 0);
                neg.retain(|_, c| *c != 0);
            }
            5 => {
                // A gauge series' marker says so (else it would cut a chunk
                // of its own: a chunk holds one kind, see `KindChanged`).
                let hint = if gauge { CounterResetHint::Gauge } else { CounterResetHint::Unknown };
                out.push((t, Histogram { sum: stale_nan(), counter_reset_hint: hint, ..Histogram::default() }));
                continue;
            }
            6 => {
                if let Some(c) = pos.values_mut().next() {
                    *c = (*c - 1).max(0);
                }
            }
            _ => {}
        }
        for &(i, is_neg, n) in &s.observe {
            let (map, idx) = if custom {
                (&mut pos, i64::from(i.rem_euclid(6)))
            } else if is_neg {
                (&mut neg, i64::from(i))
            } else {
                (&mut pos, i64::from(i))
            };
            *map.entry(idx).or_insert(0) += i64::from(n);
            sum += f64::from(n) * (idx as f64 * 0.37);
        }
        if !custom {
            zero += u64::from(s.zero);
        }
        let count = zero + pos.values().chain(neg.values()).map(|&c| c as u64).sum::<u64>();
        let p: Vec<(i64, i64)> = pos.iter().map(|(&i, &c)| (i, c)).collect();
        let n: Vec<(i64, i64)> = neg.iter().map(|(&i, &c)| (i, c)).collect();
        let mut h = hist(schema, count, zero, if nan_sum { f64::NAN } else { sum }, &p, &n);
        h.zero_threshold = zt;
        if gauge {
            h.counter_reset_hint = CounterResetHint::Gauge;
        }
        out.push((t, h));
    }
    out
}

fn schemas() -> impl Strategy<Value = i32> {
    prop_oneof![Just(3), Just(0), Just(-4), Just(8), Just(CUSTOM_BUCKETS_SCHEMA)]
}

/// Arbitrary valid integer histograms, unrelated to each other.
fn any_histogram() -> impl Strategy<Value = Histogram> {
    let spans = || {
        proptest::collection::vec((0i32..3, 0u32..4), 0..4).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (o, l))| Span { offset: if i == 0 { o - 2 } else { o }, length: l })
                .collect::<Vec<_>>()
        })
    };
    (
        (schemas(), spans(), spans(), any::<u64>(), any::<u64>()),
        prop_oneof![Just(0.0), Just(2f64.powi(-128)), Just(0.001), Just(1e-300)],
        prop_oneof![any::<u64>().prop_map(f64::from_bits), Just(stale_nan()), Just(f64::NAN), Just(-0.0)],
        proptest::collection::vec(any::<i64>(), 12),
        proptest::collection::vec(
            prop_oneof![any::<u64>().prop_map(f64::from_bits), (0u32..40_000_000).prop_map(|v| f64::from(v) / 1000.0)],
            0..5,
        ),
    )
        .prop_map(|((schema, ps, ns, count, zero), zt, sum, pool, cv)| {
            let custom = schema == CUSTOM_BUCKETS_SCHEMA;
            let ns = if custom { vec![] } else { ns };
            let np: u32 = ps.iter().map(|s| s.length).sum();
            let nn: u32 = ns.iter().map(|s| s.length).sum();
            Histogram {
                counter_reset_hint: CounterResetHint::Unknown,
                schema,
                zero_threshold: zt,
                zero_count: zero,
                count,
                sum,
                positive_buckets: pool.iter().cycle().take(np as usize).copied().collect(),
                negative_buckets: pool.iter().rev().cycle().take(nn as usize).copied().collect(),
                positive_spans: ps,
                negative_spans: ns,
                custom_values: if custom { cv } else { vec![] },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A counter series of any schema, with growth, resets, layout changes,
    /// NaN sums and markers, reads back as written.
    #[test]
    fn counter_series_round_trip(schema in schemas(), steps in steps()) {
        let samples = series(schema, &steps, false);
        let (chunks, _) = encode_int(&samples);
        check_int_round_trip(&samples, &chunks).map_err(TestCaseError::fail)?;
        let floats: Vec<(i64, FloatHistogram)> = samples.iter().map(|(t, h)| (*t, h.to_float())).collect();
        let (fchunks, _) = encode_float(&floats);
        check_float_round_trip(&floats, &fchunks).map_err(TestCaseError::fail)?;
    }

    /// The same for gauge histograms: buckets may come and go and counts go
    /// down without a cut.
    #[test]
    fn gauge_series_round_trip(schema in schemas(), steps in steps()) {
        let samples = series(schema, &steps, true);
        let (chunks, reasons) = encode_int(&samples);
        check_int_round_trip(&samples, &chunks).map_err(TestCaseError::fail)?;
        for r in &reasons {
            prop_assert!(matches!(r, CutReason::SchemaChanged | CutReason::ZeroThresholdChanged | CutReason::AfterStaleMarker), "{r:?}");
        }
        for c in &chunks {
            prop_assert_eq!(HistogramIterator::new(&c[..]).counter_reset_header(), CounterResetHeader::Gauge);
        }
        let floats: Vec<(i64, FloatHistogram)> = samples.iter().map(|(t, h)| (*t, h.to_float())).collect();
        let (fchunks, _) = encode_float(&floats);
        check_float_round_trip(&floats, &fchunks).map_err(TestCaseError::fail)?;
    }

    /// Unrelated histograms of any shape (any counts, wrapping deltas, any
    /// sums and custom bounds) read back as written, however often the
    /// appender cuts.
    #[test]
    fn arbitrary_histograms_round_trip(hs in proptest::collection::vec((any::<i64>(), any_histogram(), any::<bool>()), 1..30)) {
        let samples: Vec<(i64, Histogram)> = hs.iter().map(|(t, h, gauge)| {
            let mut h = h.clone();
            if *gauge { h.counter_reset_hint = CounterResetHint::Gauge; }
            (*t, h)
        }).collect();
        let (chunks, _) = encode_int(&samples);
        check_int_round_trip(&samples, &chunks).map_err(TestCaseError::fail)?;
        let floats: Vec<(i64, FloatHistogram)> = samples.iter().enumerate().map(|(i, (t, h))| {
            let mut f = h.to_float();
            // Float counts of every bit pattern too.
            if i % 2 == 1 {
                f.count = f64::from_bits(h.count);
                f.positive_buckets.iter_mut().for_each(|b| *b = f64::from_bits(b.to_bits().rotate_left(i as u32)));
            }
            (*t, f)
        }).collect();
        let (fchunks, _) = encode_float(&floats);
        check_float_round_trip(&floats, &fchunks).map_err(TestCaseError::fail)?;
    }

    /// Decoding arbitrary bytes, or a valid chunk with bits flipped or cut
    /// short, never panics, in any reader.
    #[test]
    fn corrupt_input_never_panics(
        schema in schemas(), steps in steps(),
        raw in proptest::collection::vec(any::<u8>(), 0..300),
        flips in proptest::collection::vec(any::<usize>(), 0..4),
        cut in any::<proptest::sample::Index>(),
    ) {
        let samples = series(schema, &steps, false);
        let (chunks, _) = encode_int(&samples);
        let floats: Vec<(i64, FloatHistogram)> = samples.iter().map(|(t, h)| (*t, h.to_float())).collect();
        let (fchunks, _) = encode_float(&floats);
        let mut inputs = vec![raw];
        for mut c in chunks.into_iter().chain(fchunks).take(3) {
            for f in &flips {
                let bit = f % (c.len() * 8);
                c[bit / 8] ^= 0x80 >> (bit % 8);
            }
            let n = cut.index(c.len() + 1);
            inputs.push(c[..n].to_vec());
            inputs.push(c);
        }
        for b in &inputs {
            let _ = decode_int(b);
            let _ = decode_float(b);
            let _ = histogram::decode_timestamps(b, &mut Vec::new());
            let _ = float_histogram::decode_timestamps(b, &mut Vec::new());
            let _ = HistogramAppender::from_bytes(b);
            let _ = FloatHistogramAppender::from_bytes(b);
        }
    }
}

// ---------------------------------------------------------------------------
// Cuts, headers and recoding.

fn cut_reason_int(first: &Histogram, second: &Histogram) -> (Option<CutReason>, CounterResetHeader) {
    let mut a = HistogramAppender::new();
    assert!(matches!(a.append(1000, first).unwrap(), AppendOutcome::Appended));
    match a.append(2000, second).unwrap() {
        AppendOutcome::Cut { reason, next } => {
            assert_eq!(a.num_samples(), 1, "a cut leaves the chunk as it was");
            assert_eq!(next.num_samples(), 1);
            let got = decode_int(next.bytes()).unwrap();
            same_int(second, &got[0].1).unwrap();
            (Some(reason), next.counter_reset_header())
        }
        _ => (None, a.counter_reset_header()),
    }
}

fn cut_reason_float(first: &Histogram, second: &Histogram) -> (Option<CutReason>, CounterResetHeader) {
    let mut a = FloatHistogramAppender::new();
    assert!(matches!(a.append(1000, &first.to_float()).unwrap(), AppendOutcome::Appended));
    match a.append(2000, &second.to_float()).unwrap() {
        AppendOutcome::Cut { reason, next } => (Some(reason), next.counter_reset_header()),
        _ => (None, a.counter_reset_header()),
    }
}

#[test]
fn every_cut_reason_and_the_header_it_gives() {
    use CounterResetHeader as H;
    let base = hist(3, 10, 2, 5.0, &[(0, 3), (1, 5)], &[(-1, 0)]);
    let with = |f: &dyn Fn(&mut Histogram)| {
        let mut h = base.clone();
        f(&mut h);
        h
    };
    let cases: Vec<(&str, Histogram, Option<CutReason>, H, H)> = vec![
        ("same", base.clone(), None, H::Unknown, H::Unknown),
        (
            "explicit",
            with(&|h| h.counter_reset_hint = CounterResetHint::CounterReset),
            Some(CutReason::ExplicitCounterReset),
            H::CounterReset,
            H::CounterReset,
        ),
        ("count", with(&|h| h.count = 9), Some(CutReason::CountDecreased), H::CounterReset, H::CounterReset),
        (
            "zero count",
            with(&|h| h.zero_count = 1),
            Some(CutReason::ZeroCountDecreased),
            H::CounterReset,
            H::CounterReset,
        ),
        (
            "bucket",
            hist(3, 10, 2, 5.0, &[(0, 3), (1, 4)], &[(-1, 0)]),
            Some(CutReason::BucketDecreased),
            H::CounterReset,
            H::CounterReset,
        ),
        (
            "vanished",
            hist(3, 10, 2, 5.0, &[(1, 8)], &[(-1, 0)]),
            Some(CutReason::BucketVanished),
            H::CounterReset,
            H::CounterReset,
        ),
        ("schema", with(&|h| h.schema = 2), Some(CutReason::SchemaChanged), H::Unknown, H::Unknown),
        ("threshold", with(&|h| h.zero_threshold = 0.5), Some(CutReason::ZeroThresholdChanged), H::Unknown, H::Unknown),
        (
            "gauge after counter",
            with(&|h| h.counter_reset_hint = CounterResetHint::Gauge),
            Some(CutReason::KindChanged),
            H::Gauge,
            H::Gauge,
        ),
    ];
    for (name, second, reason, header_int, header_float) in cases {
        assert_eq!(cut_reason_int(&base, &second), (reason, header_int), "int: {name}");
        assert_eq!(cut_reason_float(&base, &second), (reason, header_float), "float: {name}");
    }
    // An empty bucket may disappear: no cut, the sample gets it back.
    let empty_gone = hist(3, 10, 2, 5.0, &[(0, 3), (1, 5)], &[]);
    assert_eq!(cut_reason_int(&base, &empty_gone).0, None);
    assert_eq!(cut_reason_float(&base, &empty_gone).0, None);

    // Custom buckets: other bounds are a reset.
    let c1 = hist(CUSTOM_BUCKETS_SCHEMA, 3, 0, 1.0, &[(0, 1), (2, 2)], &[]);
    let mut c2 = c1.clone();
    c2.custom_values[0] = 0.004;
    assert_eq!(cut_reason_int(&c1, &c2), (Some(CutReason::CustomValuesChanged), H::CounterReset));
    assert_eq!(cut_reason_float(&c1, &c2), (Some(CutReason::CustomValuesChanged), H::CounterReset));

    // After a marker only markers; a counter after gauges.
    let stale = Histogram { sum: stale_nan(), ..Histogram::default() };
    assert_eq!(cut_reason_int(&stale, &base), (Some(CutReason::AfterStaleMarker), H::Unknown));
    assert_eq!(cut_reason_float(&stale, &base), (Some(CutReason::AfterStaleMarker), H::Unknown));
    assert_eq!(cut_reason_int(&base, &stale), (None, H::Unknown));
    let gauge = with(&|h| h.counter_reset_hint = CounterResetHint::Gauge);
    assert_eq!(cut_reason_int(&gauge, &base), (Some(CutReason::KindChanged), H::NotCounterReset));
    assert_eq!(cut_reason_float(&gauge, &base), (Some(CutReason::KindChanged), H::Unknown));
    // Gauges go down and lose buckets without a cut.
    let gauge_down = hist(3, 1, 0, 5.0, &[(4, 1)], &[]);
    let gauge_down = Histogram { counter_reset_hint: CounterResetHint::Gauge, ..gauge_down };
    assert_eq!(cut_reason_int(&gauge, &gauge_down), (None, H::Gauge));
    assert_eq!(cut_reason_float(&gauge, &gauge_down), (None, H::Gauge));
}

#[test]
fn start_next_computes_the_header_against_the_previous_chunk() {
    use CounterResetHeader as H;
    let a1 = hist(0, 10, 0, 5.0, &[(0, 10)], &[]);
    let mut a = HistogramAppender::new();
    a.append(1, &a1).unwrap();
    let mut f = FloatHistogramAppender::new();
    f.append(1, &a1.to_float()).unwrap();
    let grown = hist(0, 12, 0, 6.0, &[(0, 11), (3, 1)], &[]);
    let reset = hist(0, 2, 0, 1.0, &[(0, 2)], &[]);
    let other_schema = hist(1, 12, 0, 6.0, &[(0, 12)], &[]);
    assert_eq!(a.start_next(2, &grown).unwrap().counter_reset_header(), H::NotCounterReset);
    assert_eq!(a.start_next(2, &reset).unwrap().counter_reset_header(), H::CounterReset);
    assert_eq!(a.start_next(2, &other_schema).unwrap().counter_reset_header(), H::Unknown);
    assert_eq!(f.start_next(2, &grown.to_float()).unwrap().counter_reset_header(), H::NotCounterReset);
    assert_eq!(f.start_next(2, &reset.to_float()).unwrap().counter_reset_header(), H::CounterReset);
    assert_eq!(f.start_next(2, &other_schema.to_float()).unwrap().counter_reset_header(), H::NotCounterReset);
    // A chunk after nothing keeps the sample's own gauge/reset hint only.
    let mut e = HistogramAppender::new();
    e.append(1, &Histogram { counter_reset_hint: CounterResetHint::NotCounterReset, ..a1.clone() }).unwrap();
    assert_eq!(e.counter_reset_header(), H::Unknown);
    let mut e = HistogramAppender::new();
    e.append(1, &Histogram { counter_reset_hint: CounterResetHint::CounterReset, ..a1.clone() }).unwrap();
    assert_eq!(e.counter_reset_header(), H::CounterReset);
    // The first sample of any non-gauge chunk reads back with an unknown
    // hint (Prometheus' rule), later ones as not-a-reset.
    let mut it = HistogramIterator::new(e.bytes());
    assert!(it.next());
    assert_eq!(it.histogram().counter_reset_hint, CounterResetHint::Unknown);
    assert_eq!(it.counter_reset_header(), H::CounterReset);
}

#[test]
fn new_buckets_recode_the_chunk() {
    let s1 = hist(0, 4, 1, 1.0, &[(0, 1), (2, 2)], &[(1, 1)]);
    let s2 = hist(0, 6, 1, 2.0, &[(0, 1), (2, 3)], &[(1, 1)]);
    // New buckets before, between and after, positive and negative.
    let s3 = hist(0, 13, 1, 3.0, &[(-2, 1), (0, 1), (1, 1), (2, 4), (5, 1)], &[(0, 1), (1, 1)]);
    let s4 = hist(0, 14, 1, 4.0, &[(-2, 1), (0, 1), (1, 1), (2, 5), (5, 1)], &[(0, 1), (1, 1)]);
    for (kind, samples) in [("int", [s1.clone(), s2.clone(), s3.clone(), s4.clone()])] {
        let mut a = HistogramAppender::new();
        let mut outcomes = Vec::new();
        for (i, h) in samples.iter().enumerate() {
            outcomes.push(match a.append(i as i64 * 15_000, h).unwrap() {
                AppendOutcome::Appended => "appended",
                AppendOutcome::Recoded => "recoded",
                AppendOutcome::Cut { .. } => "cut",
            });
        }
        assert_eq!(outcomes, ["appended", "appended", "recoded", "appended"], "{kind}");
        let got = decode_int(a.bytes()).unwrap();
        // Every sample now has the final layout.
        for (g, w) in got.iter().zip(&samples) {
            assert_eq!(g.1.positive_spans, s4.positive_spans);
            assert_eq!(g.1.negative_spans, s4.negative_spans);
            same_int(w, &g.1).unwrap();
        }
        // The recoded bytes equal a chunk written with the wide layout
        // from the start.
        let widen = |h: &Histogram| {
            let abs = abs_int(&h.positive_buckets);
            let map = index_counts(&h.positive_spans, &abs);
            let pos: Vec<(i64, i64)> =
                [-2i64, 0, 1, 2, 5].iter().map(|i| (*i, map.get(i).copied().unwrap_or(0))).collect();
            let nabs = abs_int(&h.negative_buckets);
            let nmap = index_counts(&h.negative_spans, &nabs);
            let neg: Vec<(i64, i64)> = [0i64, 1].iter().map(|i| (*i, nmap.get(i).copied().unwrap_or(0))).collect();
            hist(0, h.count, h.zero_count, h.sum, &pos, &neg)
        };
        let mut direct = HistogramAppender::new();
        for (i, h) in samples.iter().enumerate() {
            direct.append(i as i64 * 15_000, &widen(h)).unwrap();
        }
        assert_eq!(a.bytes(), direct.bytes());
    }
    // The same with float histograms.
    let mut f = FloatHistogramAppender::new();
    let mut recoded = 0;
    for (i, h) in [&s1, &s2, &s3, &s4].iter().enumerate() {
        if let AppendOutcome::Recoded = f.append(i as i64 * 15_000, &h.to_float()).unwrap() {
            recoded += 1;
        }
    }
    assert_eq!(recoded, 1);
    let got = decode_float(f.bytes()).unwrap();
    for (g, w) in got.iter().zip([&s1, &s2, &s3, &s4]) {
        same_float(&w.to_float(), &g.1).unwrap();
    }
}

#[test]
fn staleness_markers_round_trip_bit_exactly() {
    let h = hist(3, 5, 1, 2.5, &[(0, 4)], &[]);
    let stale = Histogram { sum: stale_nan(), ..h.clone() };
    let mut a = HistogramAppender::new();
    a.append(1, &h).unwrap();
    assert!(matches!(a.append(2, &stale).unwrap(), AppendOutcome::Appended));
    assert!(matches!(a.append(3, &stale).unwrap(), AppendOutcome::Appended));
    let got = decode_int(a.bytes()).unwrap();
    assert_eq!(got[1].1.sum.to_bits(), STALE_NAN_BITS);
    assert_eq!(Histogram { sum: 0.0, ..got[1].1.clone() }, Histogram::default());
    let mut f = FloatHistogramAppender::new();
    f.append(1, &h.to_float()).unwrap();
    f.append(2, &stale.to_float()).unwrap();
    let got = decode_float(f.bytes()).unwrap();
    assert_eq!(got[1].1.sum.to_bits(), STALE_NAN_BITS);
    // A marker first: an empty layout.
    let mut a = HistogramAppender::new();
    a.append(1, &stale).unwrap();
    let got = decode_int(a.bytes()).unwrap();
    assert_eq!(got[0].1.sum.to_bits(), STALE_NAN_BITS);
    assert!(HistogramIterator::new(a.bytes()).next());
}

#[test]
fn invalid_histograms_are_refused_and_change_nothing() {
    let good = hist(0, 1, 0, 1.0, &[(0, 1)], &[]);
    let mut a = HistogramAppender::new();
    a.append(1, &good).unwrap();
    let before = a.bytes().to_vec();
    let bad = [
        (Histogram { schema: 9, ..good.clone() }, "schema"),
        (Histogram { positive_buckets: vec![1, 1], ..good.clone() }, "mismatch"),
        (
            Histogram {
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: -1, length: 1 }],
                positive_buckets: vec![1, 0],
                ..good.clone()
            },
            "negative offset",
        ),
        (Histogram { custom_values: vec![1.0], ..good.clone() }, "custom values"),
    ];
    for (h, what) in &bad {
        let e = a.append(2, h).unwrap_err();
        assert!(!matches!(e, HistogramAppendError::Inconsistent(_)), "{what}");
        assert!(FloatHistogramAppender::new().append(2, &h.to_float()).is_err(), "{what}");
        assert_eq!(a.bytes(), &before[..], "{what}");
    }
}

#[test]
fn truncated_chunks_report_errors() {
    let samples = series(
        3,
        &(0..30)
            .map(|i| Step { observe: vec![(i % 7, i % 3 == 0, 2)], zero: 1, special: 40, jitter: 0 })
            .collect::<Vec<_>>(),
        false,
    );
    let (chunks, _) = encode_int(&samples);
    assert_eq!(chunks.len(), 1);
    let c = &chunks[0];
    for cut in 0..c.len() {
        assert!(decode_int(&c[..cut]).is_err(), "cut at {cut} of {}", c.len());
        assert!(histogram::decode_timestamps(&c[..cut], &mut Vec::new()).is_err(), "cut at {cut}");
    }
    let floats: Vec<(i64, FloatHistogram)> = samples.iter().map(|(t, h)| (*t, h.to_float())).collect();
    let (fchunks, _) = encode_float(&floats);
    let c = &fchunks[0];
    for cut in 0..c.len() {
        assert!(decode_float(&c[..cut]).is_err(), "cut at {cut} of {}", c.len());
    }
}

#[test]
fn from_bytes_continues_where_the_chunk_ends() {
    let steps: Vec<Step> = (0..40i32)
        .map(|i| Step {
            observe: vec![((i % 9 - 2) as i8, i % 4 == 0, 1)],
            zero: 0,
            special: 50,
            jitter: (i * 37 % 100) as i16,
        })
        .collect();
    let samples = series(2, &steps, false);
    let (chunks, _) = encode_int(&samples);
    assert_eq!(chunks.len(), 1);
    for split in [1, 2, 17, 39] {
        let (head, tail) = samples.split_at(split);
        let (first, _) = encode_int(head);
        let mut a = HistogramAppender::from_bytes(&first[0]).unwrap();
        assert_eq!(a.bytes(), &first[0][..], "re-encoding is exact");
        for (t, h) in tail {
            a.append(*t, h).unwrap();
        }
        assert_eq!(a.bytes(), &chunks[0][..], "split {split}");
        let floats: Vec<(i64, FloatHistogram)> = samples.iter().map(|(t, h)| (*t, h.to_float())).collect();
        let (all, _) = encode_float(&floats);
        let (first, _) = encode_float(&floats[..split]);
        let mut f = FloatHistogramAppender::from_bytes(&first[0]).unwrap();
        for (t, h) in &floats[split..] {
            f.append(*t, h).unwrap();
        }
        assert_eq!(f.bytes(), &all[0][..], "float split {split}");
    }
}

#[test]
fn seek_and_sample_iterator_contract() {
    let samples: Vec<(i64, Histogram)> =
        (0..50).map(|i| (i * 10, hist(0, i as u64, 0, i as f64, &[(0, i)], &[]))).collect();
    let (chunks, _) = encode_int(&samples);
    let mut it = HistogramIterator::new(&chunks[0][..]);
    assert!(it.has_histograms());
    assert!(!it.started());
    assert!(it.at_histogram().is_none());
    assert!(it.seek(255));
    assert_eq!(it.at().t, 260);
    let hs = it.at_histogram().unwrap();
    assert_eq!(hs.t, 260);
    assert!(it.seek(0));
    assert_eq!(it.at().t, 260);
    assert!(!it.seek(5_000));
    assert!(!it.started());
    assert!(it.err().is_none());
    // drain_mixed_into puts every sample in the histogram list.
    let mut it = HistogramIterator::new(&chunks[0][..]);
    let (mut fl, mut hs) = (Vec::new(), Vec::new());
    it.drain_mixed_into(&mut fl, &mut hs);
    assert!(fl.is_empty());
    assert_eq!(hs.len(), 50);
}

#[test]
fn a_full_chunk_cuts() {
    let h = hist(0, 1, 0, 1.0, &[(0, 1)], &[]);
    let mut a = HistogramAppender::new();
    for i in 0..MAX_SAMPLES as i64 {
        assert!(matches!(a.append(i, &h).unwrap(), AppendOutcome::Appended));
    }
    assert!(a.is_full());
    match a.append(MAX_SAMPLES as i64, &h).unwrap() {
        AppendOutcome::Cut { reason: CutReason::Full, next } => {
            assert_eq!(next.counter_reset_header(), CounterResetHeader::NotCounterReset);
            assert_eq!(next.first_t(), Some(MAX_SAMPLES as i64));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(decode_int(a.bytes()).unwrap().len(), MAX_SAMPLES);
}

/// A realistic request-latency histogram: schema 3, a 15 s scrape with a
/// little jitter, a few observations per scrape spread over ~12 buckets
/// around 100 ms, new buckets appearing now and then.
fn latency_series(n: usize) -> Vec<(i64, Histogram)> {
    let mut buckets: BTreeMap<i64, i64> = BTreeMap::new();
    let (mut count, mut sum) = (0u64, 0.0f64);
    let mut t = 1_700_000_000_000i64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut out = Vec::new();
    for _ in 0..n {
        t += 15_000 + (next() % 5) as i64 - 2;
        for _ in 0..(2 + next() % 5) {
            // log2(latency) around log2(0.1) ~ -3.3, spread ±0.8: schema 3
            // buckets are 2^(1/8) wide, so indices around -27 ± 6.
            let idx = -27 + (next() % 7) as i64 - (next() % 7) as i64;
            *buckets.entry(idx).or_insert(0) += 1;
            count += 1;
            sum += 2f64.powf(idx as f64 / 8.0);
        }
        let pos: Vec<(i64, i64)> = buckets.iter().map(|(&i, &c)| (i, c)).collect();
        out.push((t, hist(3, count, 0, sum, &pos, &[])));
    }
    out
}

#[test]
fn realistic_series_bytes_per_sample() {
    let samples = latency_series(120);
    let (chunks, reasons) = encode_int(&samples);
    assert!(reasons.is_empty(), "{reasons:?}");
    check_int_round_trip(&samples, &chunks).unwrap();
    let bytes = chunks[0].len();
    let per_sample = bytes as f64 / 120.0;
    let floats: Vec<(i64, FloatHistogram)> = samples.iter().map(|(t, h)| (*t, h.to_float())).collect();
    let (fchunks, _) = encode_float(&floats);
    let fper = fchunks[0].len() as f64 / 120.0;
    eprintln!("120-sample schema-3 latency series: integer {bytes} B ({per_sample:.1} B/sample), float {} B ({fper:.1} B/sample)", fchunks[0].len());
    // 13 buckets; per sample: timestamp ~1-2 bits + 2 count fields + sum
    // XOR (~50 bits) + a few bits per bucket.
    assert!(per_sample < 16.0, "{per_sample} B/sample");
    assert!(fper < 40.0, "{fper} B/sample");
}

/// The worked example of `docs/format/histogram_chunks.md`, bit for bit.
#[test]
fn the_documented_example_chunk() {
    let h1 = Histogram {
        schema: 0,
        zero_threshold: 2f64.powi(-128),
        zero_count: 1,
        count: 4,
        sum: 3.5,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![2, -1],
        ..Histogram::default()
    };
    let h2 = Histogram { count: 6, sum: 6.0, positive_buckets: vec![3, -1], ..h1.clone() };
    let mut a = HistogramAppender::new();
    a.append(1000, &h1).unwrap();
    a.append(16_000, &h2).unwrap();
    let fields = [
        // Layout: zero threshold 2^-128 (byte 116), schema 0, one positive
        // span of length 2 at offset 0, no negative spans.
        "01110100",
        "0",
        "10001",
        "10010",
        "0",
        "0",
        // Sample 1: t = 1000, count 4, zero count 1, sum 3.5 raw, bucket
        // deltas 2 and -1.
        "11110001111101000",
        "10100",
        "10001",
        "0100000000001100000000000000000000000000000000000000000000000000",
        "10010",
        "10111",
        // Sample 2: t delta of deltas 15000, count 2, zero count 0, sum XOR
        // in a new window (11 leading zeros, 3 meaningful bits 101), bucket
        // delta of deltas 1 and 0.
        "111110000011101010011000",
        "10010",
        "0",
        "1101011000011101",
        "10001",
        "0",
    ];
    let bits: String = fields.concat();
    let mut want = vec![0u8, 2, 0];
    for chunk in bits.as_bytes().chunks(8) {
        let mut b = 0u8;
        for (i, c) in chunk.iter().enumerate() {
            if *c == b'1' {
                b |= 0x80 >> i;
            }
        }
        want.push(b);
    }
    assert_eq!(bits.len(), 174);
    assert_eq!(a.bytes(), &want[..]);
    assert_eq!(a.bytes().len(), 25);
}

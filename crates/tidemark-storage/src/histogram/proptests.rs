//! Property tests of the histogram operations.

use proptest::prelude::*;

use super::{FloatHistogram, Histogram, Span};

/// A valid exponential float histogram: schema, zero bucket, and up to
/// three spans per side with integer-valued counts (so sums are exact).
fn float_histogram() -> impl Strategy<Value = FloatHistogram> {
    let side = prop::collection::vec((0i32..4, 1u32..4), 0..4).prop_flat_map(|spans| {
        let n: u32 = spans.iter().map(|s| s.1).sum();
        (Just(spans), prop::collection::vec(0u32..20, n as usize))
    });
    (-4i32..=8, prop::bool::ANY, 0u32..5, -5i32..5, side.clone(), side).prop_map(
        |(schema, has_zero, zc, first, (ps, pb), (ns, nb))| {
            let spans = |s: &[(i32, u32)]| -> Vec<Span> {
                s.iter()
                    .enumerate()
                    .map(|(i, &(o, l))| Span { offset: if i == 0 { first + o } else { o }, length: l })
                    .collect()
            };
            let pos: Vec<f64> = pb.iter().map(|&v| f64::from(v)).collect();
            let neg: Vec<f64> = nb.iter().map(|&v| f64::from(v)).collect();
            let zero_count = if has_zero { f64::from(zc) } else { 0.0 };
            let count = zero_count + pos.iter().sum::<f64>() + neg.iter().sum::<f64>();
            FloatHistogram {
                schema,
                // Below every generated bucket (real histograms have no
                // bucket inside the zero bucket).
                zero_threshold: if has_zero { 1e-31 } else { 0.0 },
                zero_count,
                count,
                sum: count * 1.5,
                positive_spans: spans(&ps),
                negative_spans: spans(&ns),
                positive_buckets: pos,
                negative_buckets: neg,
                ..FloatHistogram::default()
            }
        },
    )
}

/// Populated buckets as (index, count).
type Populated = Vec<(i32, f64)>;

/// All populated buckets, per side.
fn populated(h: &FloatHistogram) -> (Populated, Populated) {
    let p = h.positive_buckets_iter().filter(|b| b.count != 0.0).map(|b| (b.index, b.count)).collect();
    let n = h.negative_buckets_iter().filter(|b| b.count != 0.0).map(|b| (b.index, b.count)).collect();
    (p, n)
}

proptest! {
    #[test]
    fn generated_histograms_are_valid(h in float_histogram()) {
        prop_assert!(h.validate().is_ok());
    }

    #[test]
    fn add_then_sub_is_identity_on_the_same_layout(a in float_histogram(), b in float_histogram()) {
        let mut b = b;
        b.schema = a.schema;
        b.zero_threshold = a.zero_threshold;
        let mut r = a.clone();
        r.add(&b).unwrap();
        r.sub(&b).unwrap();
        r.compact(0);
        let mut want = a.clone();
        want.compact(0);
        prop_assert_eq!(r.count, a.count);
        prop_assert_eq!(r.sum, a.sum);
        prop_assert_eq!(r.zero_count, a.zero_count);
        prop_assert_eq!(populated(&r), populated(&want));
    }

    #[test]
    fn add_is_commutative_in_its_buckets(a in float_histogram(), b in float_histogram()) {
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.add(&b).unwrap();
        ba.add(&a).unwrap();
        ab.compact(0);
        ba.compact(0);
        prop_assert_eq!(ab.schema, ba.schema);
        prop_assert_eq!(ab.count, ba.count);
        prop_assert_eq!(ab.zero_count, ba.zero_count);
        prop_assert_eq!(populated(&ab), populated(&ba));
        prop_assert!(ab.validate().is_ok());
    }

    #[test]
    fn reduce_resolution_preserves_counts(h in float_histogram(), down in 1i32..4) {
        let target = (h.schema - down).max(-4);
        prop_assume!(target < h.schema);
        let mut r = h.clone();
        r.reduce_resolution(target).unwrap();
        prop_assert!(r.validate().is_ok());
        prop_assert_eq!(r.count, h.count);
        prop_assert_eq!(r.sum, h.sum);
        prop_assert_eq!(r.positive_buckets.iter().sum::<f64>(), h.positive_buckets.iter().sum::<f64>());
        prop_assert_eq!(r.negative_buckets.iter().sum::<f64>(), h.negative_buckets.iter().sum::<f64>());
        // Same as merging while iterating.
        let merged: Vec<(i32, f64)> = super::FloatBucketIter::new(&h, true, 0.0, target).map(|b| (b.index, b.count)).collect();
        let direct: Vec<(i32, f64)> = r.positive_buckets_iter().map(|b| (b.index, b.count)).collect();
        prop_assert_eq!(merged, direct);
    }

    #[test]
    fn compact_preserves_populated_buckets(h in float_histogram(), max_empty in 0usize..4) {
        let mut c = h.clone();
        c.compact(max_empty);
        prop_assert!(c.validate().is_ok());
        prop_assert_eq!(populated(&c), populated(&h));
        let mut x = h.clone();
        x.compact(max_empty);
        prop_assert!(c.equals(&x));
        // Compacting twice changes nothing.
        let mut again = c.clone();
        again.compact(max_empty);
        prop_assert_eq!(&again, &c);
        // No span (after the first) starts right after the previous one.
        prop_assert!(c.positive_spans.iter().skip(1).all(|s| s.offset > 0 && s.length > 0));
    }

    #[test]
    fn integer_compact_matches_float_compact(h in float_histogram(), max_empty in 0usize..4) {
        // The integer form of h, delta-encoded.
        let deltas = |b: &[f64]| -> Vec<i64> {
            let mut prev = 0i64;
            b.iter().map(|&v| { let v = v as i64; let d = v - prev; prev = v; d }).collect()
        };
        let mut ih = Histogram {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: h.zero_count as u64,
            count: h.count as u64,
            sum: h.sum,
            positive_spans: h.positive_spans.clone(),
            negative_spans: h.negative_spans.clone(),
            positive_buckets: deltas(&h.positive_buckets),
            negative_buckets: deltas(&h.negative_buckets),
            ..Histogram::default()
        };
        prop_assert!(ih.validate().is_ok());
        ih.compact(max_empty);
        prop_assert!(ih.validate().is_ok());
        let mut fh = h.clone();
        fh.compact(max_empty);
        prop_assert_eq!(ih.to_float(), fh);
    }

    #[test]
    fn detect_reset_sees_growth_and_shrinkage(h in float_histogram(), b in float_histogram()) {
        let mut b = b;
        b.schema = h.schema;
        b.zero_threshold = h.zero_threshold;
        let mut grown = h.clone();
        grown.add(&b).unwrap();
        prop_assert!(!grown.detect_reset(&h));
        if b.count > 0.0 {
            prop_assert!(h.detect_reset(&grown));
        }
    }
}

//! Classic-histogram math: quantiles and fractions over `le` buckets.
//!
//! Both entry points follow Prometheus' `BucketQuantile` / `BucketFraction`
//! step by step, including how they rearrange the caller's buckets: the
//! slice is sorted by upper bound, buckets with equal upper bounds are merged
//! into a prefix of the slice (the rest of the slice keeps its old contents),
//! and [`bucket_quantile`] additionally rewrites counts in that prefix to make
//! them monotonic. Prometheus' `histogram_quantiles` calls `BucketQuantile`
//! once per quantile on the same, already rearranged slice; a caller that
//! wants the identical results does the same with these functions.

use super::math::go_min;

/// One cumulative bucket: the count of observations `<= upper_bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub(crate) upper_bound: f64,
    pub(crate) count: f64,
}

/// The result of [`bucket_quantile`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BucketQuantile {
    pub(crate) value: f64,
    /// Counts decreased somewhere and were raised to make them monotonic.
    pub(crate) forced_monotonicity: bool,
    /// Counts differed only by floating-point noise and were treated as equal.
    pub(crate) fixed_precision: bool,
    /// The lowest upper bound whose count was raised for monotonicity
    /// (+Inf when none was; 0 when the computation stopped before the check).
    /// Prometheus prints it in the "needed to be fixed for monotonicity" info.
    pub(crate) min_bucket: f64,
    /// The highest upper bound whose count was raised (-Inf when none was;
    /// 0 when the computation stopped before the check).
    pub(crate) max_bucket: f64,
    /// The largest decrease that was removed (0 when none was).
    pub(crate) max_diff: f64,
}

impl BucketQuantile {
    /// A result reached before the buckets were examined for monotonicity.
    fn early(value: f64) -> BucketQuantile {
        BucketQuantile {
            value,
            forced_monotonicity: false,
            fixed_precision: false,
            min_bucket: 0.0,
            max_bucket: 0.0,
            max_diff: 0.0,
        }
    }
}

/// Relative differences between neighbouring bucket counts below this are
/// treated as floating-point noise (Prometheus' `smallDeltaTolerance`): such
/// noise appears when bucket counts come from sums computed in different
/// orders, e.g. sharded queries.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// The `q` quantile of a classic histogram (Prometheus' `BucketQuantile`).
/// `buckets` may be in any order; it is sorted in place.
///
/// NaN `q` gives NaN, `q < 0` gives -Inf and `q > 1` gives +Inf (before the
/// buckets are looked at). Otherwise the result is NaN when there are no
/// buckets, when the highest bucket is not `+Inf`, when fewer than two
/// distinct upper bounds remain after merging equal ones, or when the
/// histogram holds no observations. A quantile in the `+Inf` bucket is the
/// upper bound of the second-highest bucket; one in the lowest bucket is that
/// bucket's upper bound if it is ≤ 0 and is otherwise interpolated from a
/// lower bound of 0; anywhere else it is interpolated linearly inside the
/// bucket it falls in.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [Bucket]) -> BucketQuantile {
    if q.is_nan() {
        return BucketQuantile::early(f64::NAN);
    }
    if q < 0.0 {
        return BucketQuantile::early(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return BucketQuantile::early(f64::INFINITY);
    }
    if buckets.is_empty() {
        return BucketQuantile::early(f64::NAN);
    }
    sort_by_upper_bound(buckets);
    if buckets[buckets.len() - 1].upper_bound != f64::INFINITY {
        return BucketQuantile::early(f64::NAN);
    }

    let len = coalesce_buckets(buckets);
    let buckets = &mut buckets[..len];
    let fix = ensure_monotonic_and_ignore_small_deltas(buckets, SMALL_DELTA_TOLERANCE);
    let result = |value: f64| BucketQuantile {
        value,
        forced_monotonicity: fix.forced_monotonicity,
        fixed_precision: fix.fixed_precision,
        min_bucket: fix.min_bucket,
        max_bucket: fix.max_bucket,
        max_diff: fix.max_diff,
    };

    if len < 2 {
        return result(f64::NAN);
    }
    let observations = buckets[len - 1].count;
    if observations == 0.0 {
        return result(f64::NAN);
    }
    let mut rank = q * observations;
    // The first bucket (ignoring +Inf) whose cumulative count reaches the
    // rank; `len - 1` when none does.
    let b = go_search(len - 1, |i| buckets[i].count >= rank);

    let value = if b == len - 1 {
        buckets[len - 2].upper_bound
    } else if b == 0 && buckets[0].upper_bound <= 0.0 {
        buckets[0].upper_bound
    } else {
        let bucket_end = buckets[b].upper_bound;
        let mut bucket_start = 0.0;
        let mut count = buckets[b].count;
        if b > 0 {
            bucket_start = buckets[b - 1].upper_bound;
            count -= buckets[b - 1].count;
            rank -= buckets[b - 1].count;
        }
        bucket_start + (bucket_end - bucket_start) * (rank / count)
    };
    result(value)
}

/// The estimated fraction of observations between `lower` and `upper`
/// (Prometheus' `BucketFraction`). `buckets` is sorted in place.
///
/// NaN when there are no buckets, when the highest bucket is not `+Inf`, when
/// the histogram holds no observations, or when either bound is NaN; 0 when
/// `lower >= upper`. Bounds inside a bucket are interpolated linearly. The
/// lowest bucket starts at 0 if its upper bound is positive and at -Inf
/// otherwise. Nothing is interpolated inside a bucket with an infinite
/// bound: a bound inside the bucket reaching down to -Inf counts that whole
/// bucket as below it, one inside the +Inf bucket counts none of it.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [Bucket]) -> f64 {
    if buckets.is_empty() {
        return f64::NAN;
    }
    sort_by_upper_bound(buckets);
    if buckets[buckets.len() - 1].upper_bound != f64::INFINITY {
        return f64::NAN;
    }
    let len = coalesce_buckets(buckets);
    let buckets = &buckets[..len];

    let count = buckets[len - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }

    // `rank` is the cumulative count below the current bucket.
    let mut rank = 0.0;
    let mut lower_rank = 0.0;
    let mut upper_rank = 0.0;
    let mut lower_set = false;
    let mut upper_set = false;
    let mut lower_bound = if buckets[0].upper_bound <= 0.0 { f64::NEG_INFINITY } else { 0.0 };

    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper_bound;
        }
        let upper_bound = b.upper_bound;
        // The cumulative count at `v` inside this bucket. A bucket reaching
        // down to -Inf has no width to interpolate in: it counts as a whole.
        // (One reaching up to +Inf yields `rank`, as (v−lb)/Inf is 0.)
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };

        if !lower_set && lower_bound >= lower {
            // The lower value lies at or below this bucket's lower boundary.
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Sorts by upper bound ascending. Prometheus assumes bounds are never NaN;
/// here a NaN bound sorts after +Inf (a total order is needed for sorting),
/// which makes such a histogram lack a final +Inf bucket and so yield NaN.
fn sort_by_upper_bound(buckets: &mut [Bucket]) {
    buckets.sort_unstable_by(|a, b| {
        let (x, y) = (a.upper_bound, b.upper_bound);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        }
    });
}

/// Merges neighbouring buckets with equal upper bounds (summing their
/// counts) into a prefix of the sorted, non-empty slice and returns the
/// prefix length. Equal bounds arise from different spellings of one `le`
/// value, such as "0.2" and "2e-1".
fn coalesce_buckets(buckets: &mut [Bucket]) -> usize {
    let mut last = buckets[0];
    let mut i = 0;
    for j in 1..buckets.len() {
        let b = buckets[j];
        if b.upper_bound == last.upper_bound {
            last.count += b.count;
        } else {
            buckets[i] = last;
            last = b;
            i += 1;
        }
    }
    buckets[i] = last;
    i + 1
}

/// What [`ensure_monotonic_and_ignore_small_deltas`] changed.
struct MonotonicFix {
    forced_monotonicity: bool,
    fixed_precision: bool,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
}

/// Makes cumulative counts usable for the binary search in
/// [`bucket_quantile`]: counts that differ from the last accepted count only
/// by a relative `tolerance` are set equal to it (floating-point noise, in
/// either direction), and any decrease is removed by raising the count to
/// the last accepted one. Decreases happen when buckets were scraped or
/// recorded at slightly different moments, or summed imprecisely.
fn ensure_monotonic_and_ignore_small_deltas(buckets: &mut [Bucket], tolerance: f64) -> MonotonicFix {
    let mut fix = MonotonicFix {
        forced_monotonicity: false,
        fixed_precision: false,
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        max_diff: 0.0,
    };
    let Some(first) = buckets.first() else {
        return fix;
    };
    let mut prev = first.count;
    for bucket in buckets.iter_mut().skip(1) {
        let curr = bucket.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, tolerance) {
            // `prev` stays: the noise is ignored, not accepted.
            bucket.count = prev;
            fix.fixed_precision = true;
            continue;
        }
        if curr < prev {
            bucket.count = prev;
            fix.forced_monotonicity = true;
            if bucket.upper_bound < fix.min_bucket {
                fix.min_bucket = bucket.upper_bound;
            }
            if bucket.upper_bound > fix.max_bucket {
                fix.max_bucket = bucket.upper_bound;
            }
            let diff = prev - curr;
            if diff > fix.max_diff {
                fix.max_diff = diff;
            }
            continue;
        }
        prev = curr;
    }
    fix
}

/// Prometheus' `almost.Equal`: true when `a` and `b` differ by less than
/// `epsilon` relative to their magnitude (or, near zero, by less than
/// `epsilon` times the smallest normal float). Two NaNs count as equal.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / go_min(abs_sum, f64::MAX) < epsilon
}

/// Go's `sort.Search`: the smallest `i` in `[0, n)` for which `f(i)` holds,
/// assuming `f` is false then true; `n` when it never holds. Written as the
/// same bisection so that the answer for a non-monotonic `f` (possible with
/// NaN counts) is the one Prometheus gets too.
fn go_search(n: usize, f: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = i + (j - i) / 2;
        if !f(h) {
            i = h + 1;
        } else {
            j = h;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn buckets(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs.iter().map(|&(upper_bound, count)| Bucket { upper_bound, count }).collect()
    }

    fn quantile_of(q: f64, pairs: &[(f64, f64)]) -> f64 {
        bucket_quantile(q, &mut buckets(pairs)).value
    }

    fn fraction_of(lower: f64, upper: f64, pairs: &[(f64, f64)]) -> f64 {
        bucket_fraction(lower, upper, &mut buckets(pairs))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    // histograms.test, `testhistogram` at 50m (counts ×10 of the loaded
    // increments), listed out of order to exercise the sort.
    const POSITIVE: [(f64, f64); 4] = [(1.0, 110.0), (0.1, 50.0), (INF, 120.0), (0.2, 70.0)];
    const NEGATIVE: [(f64, f64); 4] = [(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 30.0)];

    #[test]
    fn quantile_matches_testhistogram_expectations() {
        let cases = [(0.0, 0.0, -0.2), (0.2, 0.048, -0.2), (0.5, 0.15, -0.15), (0.8, 0.72, 0.3), (1.0, 1.0, 0.3)];
        for (q, pos, neg) in cases {
            assert!(close(quantile_of(q, &POSITIVE), pos), "q={q} positive");
            assert!(close(quantile_of(q, &NEGATIVE), neg), "q={q} negative");
        }
    }

    #[test]
    fn quantile_in_the_middle_of_a_bucket() {
        // testhistogram2 at 7m.
        let h = [(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (INF, 3.0)];
        assert!(close(quantile_of(1.0 / 6.0, &h), 1.0));
        assert!(close(quantile_of(0.5, &h), 3.0));
        assert!(close(quantile_of(5.0 / 6.0, &h), 5.0));
    }

    #[test]
    fn quantile_of_testhistogram3() {
        // testhistogram3 at 50m.
        let pos = [(0.0, 0.0), (0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 110.0)];
        let neg = [(-0.25, 0.0), (-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 20.0)];
        let cases =
            [(0.0, 0.0, -0.25), (0.25, 0.055, -0.225), (0.5, 0.125, -0.2), (0.75, 0.45, -0.15), (1.0, 1.0, -0.1)];
        for (q, p, n) in cases {
            assert!(close(quantile_of(q, &pos), p), "q={q} positive");
            assert!(close(quantile_of(q, &neg), n), "q={q} negative");
        }
    }

    #[test]
    fn quantile_out_of_range_or_nan_phi_ignores_the_buckets() {
        assert_eq!(quantile_of(-0.1, &POSITIVE), f64::NEG_INFINITY);
        assert_eq!(quantile_of(1.01, &POSITIVE), f64::INFINITY);
        assert!(quantile_of(f64::NAN, &POSITIVE).is_nan());
        // Even without a +Inf bucket, as Prometheus checks φ first.
        assert_eq!(quantile_of(-1.0, &[(1.0, 1.0)]), f64::NEG_INFINITY);
        assert_eq!(quantile_of(2.0, &[]), f64::INFINITY);
    }

    #[test]
    fn quantile_is_nan_without_inf_bucket_with_one_bucket_or_no_observations() {
        assert!(quantile_of(0.5, &[]).is_nan());
        assert!(quantile_of(0.5, &[(1.0, 1.0), (2.0, 2.0)]).is_nan());
        assert!(quantile_of(0.5, &[(INF, 5.0)]).is_nan());
        // Two spellings of +Inf merge into one bucket: still too few.
        assert!(quantile_of(0.5, &[(INF, 0.0), (INF, 0.0)]).is_nan());
        assert!(quantile_of(0.2, &[(0.1, 0.0), (0.2, 0.0), (INF, 0.0)]).is_nan());
        assert!(quantile_of(1.0, &[(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (INF, 0.0)]).is_nan());
    }

    #[test]
    fn quantile_merges_equal_upper_bounds() {
        // histograms.test, rate(mixed_bucket[10m]) for ins1: four buckets
        // at 0.1, 0.2, 2e-1, 2.0e-1 with one observation rate each.
        let r = 1.0 / 300.0;
        let h = [(0.1, r), (0.2, r), (0.2, r), (0.2, r), (INF, 4.0 * r)];
        assert!(close(quantile_of(0.5, &h), 0.15));
        assert!(close(quantile_of(0.75, &h), 0.2));
        assert!(close(quantile_of(1.0, &h), 0.2));
    }

    #[test]
    fn quantile_rearranges_the_slice_like_prometheus_so_reuse_sees_merged_prefix() {
        // After one call the prefix holds the merged buckets and the tail
        // keeps stale entries; a second call on the same slice merges those
        // again, exactly as Prometheus' histogram_quantiles does.
        let mut h = buckets(&[(0.1, 1.0), (0.2, 1.0), (0.2, 1.0), (0.2, 1.0), (INF, 4.0)]);
        assert!(close(bucket_quantile(0.5, &mut h).value, 0.15));
        assert_eq!(&h[..3], &buckets(&[(0.1, 1.0), (0.2, 3.0), (INF, 4.0)])[..]);
        // Now 0.1:1, 0.2:4, +Inf:8 → rank 4 falls at the top of the 0.2 bucket.
        assert!(close(bucket_quantile(0.5, &mut h).value, 0.2));
    }

    #[test]
    fn quantile_forces_monotonicity_and_reports_where() {
        // histograms.test, nonmonotonic_bucket at 50m.
        let h = [(0.1, 20.0), (1.0, 10.0), (10.0, 50.0), (100.0, 40.0), (1000.0, 90.0), (INF, 80.0)];
        let r = bucket_quantile(0.01, &mut buckets(&h));
        assert!(close(r.value, 0.0045));
        assert!(r.forced_monotonicity);
        assert!(!r.fixed_precision);
        assert_eq!(r.min_bucket, 1.0);
        assert_eq!(r.max_bucket, INF);
        assert_eq!(r.max_diff, 10.0);
        assert!(close(quantile_of(0.5, &h), 8.5));
        assert!(close(quantile_of(0.99, &h), 979.75));
    }

    #[test]
    fn quantile_ignores_floating_point_noise_between_buckets() {
        // 100 then 100·(1 − 1e-15): a relative delta far below 1e-12, fixed
        // silently (no forced-monotonicity info).
        let noisy = 100.0 * (1.0 - 1e-15);
        assert!(noisy < 100.0);
        let h = [(1.0, 100.0), (2.0, noisy), (INF, 100.0)];
        let r = bucket_quantile(0.5, &mut buckets(&h));
        assert!(r.fixed_precision);
        assert!(!r.forced_monotonicity);
        assert_eq!(r.min_bucket, INF);
        assert_eq!(r.max_bucket, f64::NEG_INFINITY);
        assert!(close(r.value, 0.5));
        // A delta above the tolerance is a real decrease.
        let h = [(1.0, 100.0), (2.0, 99.0), (INF, 100.0)];
        let r = bucket_quantile(0.5, &mut buckets(&h));
        assert!(r.forced_monotonicity && !r.fixed_precision);
        assert_eq!((r.min_bucket, r.max_bucket, r.max_diff), (2.0, 2.0, 1.0));
    }

    #[test]
    fn quantile_in_lowest_bucket_with_nonpositive_bound_is_that_bound() {
        let h = [(-1.0, 10.0), (0.0, 20.0), (INF, 20.0)];
        assert_eq!(quantile_of(0.25, &h), -1.0);
        assert!(close(quantile_of(0.75, &h), -0.5));
    }

    #[test]
    fn quantile_in_inf_bucket_is_second_highest_bound() {
        let h = [(1.0, 1.0), (2.0, 2.0), (INF, 100.0)];
        assert_eq!(quantile_of(0.5, &h), 2.0);
    }

    #[test]
    fn quantile_survives_nan_and_infinite_counts_and_bounds() {
        for h in [
            vec![(1.0, f64::NAN), (INF, f64::NAN)],
            vec![(1.0, f64::NAN), (2.0, 1.0), (INF, 2.0)],
            vec![(1.0, INF), (INF, INF)],
            vec![(f64::NAN, 1.0), (INF, 2.0)],
            vec![(f64::NEG_INFINITY, 1.0), (INF, 2.0)],
            vec![(-1e308, 1.0), (1e308, 2.0), (INF, 3.0)],
        ] {
            let _ = quantile_of(0.5, &h);
            let _ = fraction_of(-1.0, 1.0, &h);
        }
        // A NaN bound sorts after +Inf, leaving no final +Inf bucket.
        assert!(quantile_of(0.5, &[(f64::NAN, 1.0), (INF, 2.0)]).is_nan());
    }

    #[test]
    fn fraction_matches_histograms_test_expectations() {
        let steps = [(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (INF, 100.0)];
        let neg = [(-3.0, 10.0), (-2.0, 12.0), (-1.0, 15.0), (INF, 100.0)];
        let t2 = [(0.0, 0.0), (2.0, 10.0), (4.0, 20.0), (6.0, 30.0), (INF, 30.0)];
        type Case<'a> = (f64, f64, &'a [(f64, f64)], f64);
        let cases: Vec<Case<'_>> = vec![
            (0.0, 4.0, &t2, 2.0 / 3.0),
            (0.0, 6.0, &t2, 1.0),
            (0.0, 3.5, &t2, 0.5833333333333334),
            (0.0, 1.5, &steps, 0.02),
            (-4.0, -2.0, &neg, 0.02),
            (f64::NEG_INFINITY, -1.5, &neg, 0.135),
            (f64::NEG_INFINITY, INF, &steps, 1.0),
            (f64::NEG_INFINITY, INF, &neg, 1.0),
            (4.0, 5.0, &steps, 0.0),
            (0.0, 1.0, &neg, 0.0),
            (2.0, 5.0, &steps, 0.03),
            (400.0, INF, &steps, 0.94),
            (2.0, 2.0, &steps, 0.0),
            (3.0, 2.0, &steps, 0.0),
            (2.0, 3.5, &steps, 0.03),
            (0.5, 2.0, &steps, 0.025),
            (1.0, 3.0, &steps, 0.05),
            (0.1, 0.75, &[(0.5, 2.5), (1.0, 7.5), (INF, 100.0)], 0.045),
            (-1.0, 1.0, &[(-2.0, 5.0), (-1.0, 10.0), (0.0, 15.0), (1.0, 20.0), (INF, 100.0)], 0.1),
            (-10.0, -5.0, &[(1.0, 1.0), (2.0, 3.0), (INF, 10.0)], 0.0),
            (5.0, 10.0, &[(1.0, 1.0), (2.0, 3.0), (INF, 10.0)], 0.0),
            (0.0, 1.0, &[(INF, 100.0)], 0.0),
        ];
        for (lower, upper, h, want) in cases {
            let got = fraction_of(lower, upper, h);
            assert!(close(got, want), "fraction({lower}, {upper}, {h:?}) = {got}, want {want}");
        }
    }

    #[test]
    fn fraction_of_testhistogram3() {
        let pos = [(0.0, 0.0), (0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 110.0)];
        let neg = [(-0.25, 0.0), (-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 20.0)];
        assert!(close(fraction_of(0.0, 0.2, &pos), 0.6363636363636364));
        assert_eq!(fraction_of(0.0, 0.2, &neg), 0.0);
    }

    #[test]
    fn fraction_nan_rules() {
        let steps = [(1.0, 1.0), (INF, 100.0)];
        assert!(fraction_of(f64::NAN, 1.0, &steps).is_nan());
        assert!(fraction_of(0.0, f64::NAN, &steps).is_nan());
        assert!(fraction_of(0.0, 5.0, &[(1.0, 0.0), (2.0, 0.0), (INF, 0.0)]).is_nan());
        assert!(fraction_of(0.0, 5.0, &[(1.0, 1.0), (2.0, 3.0)]).is_nan());
        assert!(fraction_of(0.0, 5.0, &[]).is_nan());
        // Zero observations win over lower >= upper.
        assert!(fraction_of(3.0, 2.0, &[(1.0, 0.0), (INF, 0.0)]).is_nan());
    }

    #[test]
    fn fraction_merges_equal_upper_bounds() {
        let h = [(1.0, 1.0), (1.0, 1.0), (INF, 4.0)];
        // Merged: 1:2, +Inf:4 → [0, 1] holds 2 of 4.
        assert!(close(fraction_of(0.0, 1.0, &h), 0.5));
    }

    #[test]
    fn almost_equal_follows_prometheus() {
        assert!(almost_equal(f64::NAN, f64::NAN, 1e-12));
        assert!(!almost_equal(f64::NAN, 1.0, 1e-12));
        assert!(almost_equal(1.0, 1.0 + 1e-13, 1e-12));
        assert!(!almost_equal(1.0, 1.0 + 1e-11, 1e-12));
        assert!(!almost_equal(0.0, 1e-300, 1e-12));
        assert!(almost_equal(0.0, 0.0, 1e-12));
        assert!(!almost_equal(INF, f64::MAX, 1e-12));
    }

    #[test]
    fn go_search_finds_first_true() {
        assert_eq!(go_search(0, |_| true), 0);
        assert_eq!(go_search(5, |i| i >= 3), 3);
        assert_eq!(go_search(5, |_| false), 5);
    }
}

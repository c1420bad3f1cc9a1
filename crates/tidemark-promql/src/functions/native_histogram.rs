//! Native-histogram math: `histogram_quantile`, `histogram_fraction`,
//! `histogram_stddev`, `histogram_stdvar` and `histogram_avg` over one
//! [`FloatHistogram`], as Prometheus' `HistogramQuantile`,
//! `HistogramFraction` (`promql/quantile.go`) and `histogramVariance`
//! (`promql/functions.go`).
//!
//! Interpolation inside a bucket is exponential (on a log2 scale) for the
//! exponential schemas and linear for custom buckets and the zero bucket.
//! A histogram with only positive buckets has 0 as the zero bucket's lower
//! bound, one with only negative buckets 0 as its upper bound.
//!
//! The functions return plain numbers plus flags for the info annotations
//! Prometheus attaches (all are about the histogram argument, so they carry
//! its position and metric name).

use tidemark_storage::histogram::{Bucket, FloatHistogram};

use super::kahan::kahan_sum_inc;

/// The result of [`histogram_quantile`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NativeQuantile {
    /// The quantile.
    pub(crate) value: f64,
    /// The rank lies above all buckets because the histogram has NaN
    /// observations, so the result is NaN: Prometheus'
    /// `NewNativeHistogramQuantileNaNResultInfo` ("input to
    /// histogram_quantile has NaN observations, result is NaN").
    pub(crate) nan_result: bool,
    /// The histogram has NaN observations (sum NaN, count above the bucket
    /// total), which the result treats as +Inf: Prometheus'
    /// `NewNativeHistogramQuantileNaNSkewInfo` ("... result is skewed
    /// higher").
    pub(crate) nan_skew: bool,
}

/// The result of [`histogram_fraction`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NativeFraction {
    /// The fraction.
    pub(crate) value: f64,
    /// The histogram has NaN observations, which are in no bucket, so
    /// `histogram_fraction(-Inf, +Inf, h)` is below 1: Prometheus'
    /// `NewNativeHistogramFractionNaNsInfo`.
    pub(crate) nan_observations: bool,
}

/// Prometheus' `HistogramQuantile(q, h)`.
///
/// Special cases: q < 0 gives −Inf, q > 1 +Inf (checked first, so also for
/// an empty histogram); a count of 0 or a NaN q gives NaN. For q < 0.5 (or
/// a NaN sum) the rank is counted from below, otherwise from above. A rank
/// in the first custom bucket (lower bound −Inf) interpolates from 0, or
/// returns its upper bound if that is ≤ 0; one in the last custom bucket
/// (+Inf) returns its lower bound.
pub(crate) fn histogram_quantile(q: f64, h: &FloatHistogram) -> NativeQuantile {
    let plain = |value| NativeQuantile { value, nan_result: false, nan_skew: false };
    if q < 0.0 {
        return plain(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return plain(f64::INFINITY);
    }
    if h.count == 0.0 || q.is_nan() {
        return plain(f64::NAN);
    }

    let forward = h.sum.is_nan() || q < 0.5;
    let (mut it, mut rank) =
        if forward { (h.all_buckets(), q * h.count) } else { (h.all_buckets_reverse(), (1.0 - q) * h.count) };
    let mut bucket =
        Bucket { lower: 0.0, upper: 0.0, lower_inclusive: false, upper_inclusive: false, count: 0.0, index: 0 };
    let mut count = 0.0;
    for b in it.by_ref() {
        bucket = b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let custom = h.uses_custom_buckets();
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return plain(bucket.upper);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return plain(bucket.lower);
        }
    }
    // Rounding can make the bucket total exceed the count.
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        // Only NaN observations (counted, but in no bucket) get here.
        if h.sum.is_nan() {
            return NativeQuantile { value: f64::NAN, nan_result: true, nan_skew: false };
        }
        return plain(bucket.upper);
    }

    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut nan_skew = false;
    if h.sum.is_nan() {
        for b in it {
            count += b.count;
        }
        nan_skew = count < h.count;
    }

    let fraction = rank / bucket.count;
    let value = if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        bucket.lower + (bucket.upper - bucket.lower) * fraction
    } else {
        let log_lower = bucket.lower.abs().log2();
        let log_upper = bucket.upper.abs().log2();
        if bucket.lower > 0.0 {
            (log_lower + (log_upper - log_lower) * fraction).exp2()
        } else {
            -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
        }
    };
    NativeQuantile { value, nan_result: false, nan_skew }
}

/// Prometheus' `HistogramFraction(lower, upper, h)`: the estimated fraction
/// of observations in `[lower, upper]`.
///
/// Special cases: a count of 0 or a NaN bound gives NaN; `lower >= upper`
/// gives 0. Buckets with an infinite bound contribute nothing when a bound
/// falls inside them. NaN observations are in no bucket, so the fraction of
/// everything may be below 1 (see [`NativeFraction::nan_observations`]).
pub(crate) fn histogram_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> NativeFraction {
    let plain = |value| NativeFraction { value, nan_observations: false };
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return plain(f64::NAN);
    }
    if lower >= upper {
        return plain(0.0);
    }
    let custom = h.uses_custom_buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut it = h.all_buckets();
    for mut b in it.by_ref() {
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let interpolate = |v: f64| {
            if custom || zero_bucket {
                // Nothing to interpolate in a bucket reaching to −Inf.
                if b.lower == f64::NEG_INFINITY {
                    return b.count;
                }
                rank + b.count * b.fraction_below(v, true)
            } else {
                rank + b.count * b.fraction_below(v, false)
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut nan_observations = false;
    if h.sum.is_nan() {
        for b in it {
            count += b.count;
        }
        nan_observations = count < h.count;
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    NativeFraction { value: (upper_rank - lower_rank) / h.count, nan_observations }
}

/// `histogram_stdvar(h)`: the variance of the observations, estimated from
/// each bucket's representative value — the arithmetic midpoint for custom
/// buckets, 0 for the zero bucket, the geometric mean of the bounds for
/// exponential buckets (negated for negative ones) — around the mean
/// `sum / count`, with a Kahan sum.
pub(crate) fn histogram_stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let custom = h.uses_custom_buckets();
    let (mut variance, mut c) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if custom {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -g
            } else {
                g
            }
        };
        let delta = val - mean;
        (variance, c) = kahan_sum_inc(b.count * delta * delta, variance, c);
    }
    (variance + c) / h.count
}

/// `histogram_stddev(h)`: the square root of [`histogram_stdvar`].
pub(crate) fn histogram_stddev(h: &FloatHistogram) -> f64 {
    histogram_stdvar(h).sqrt()
}

/// `histogram_avg(h)`: `sum / count`.
pub(crate) fn histogram_avg(h: &FloatHistogram) -> f64 {
    h.sum / h.count
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_storage::histogram::{CounterResetHint, Span};

    /// A histogram as promqltest's `{{schema:s count:c sum:s z_bucket:z
    /// z_bucket_w:w buckets:[…] n_buckets:[…]}}` (both sides at offset 0).
    fn nh(schema: i32, count: f64, sum: f64, z: f64, zw: f64, pos: &[f64], neg: &[f64]) -> FloatHistogram {
        let span = |b: &[f64]| if b.is_empty() { vec![] } else { vec![Span { offset: 0, length: b.len() as u32 }] };
        FloatHistogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema,
            zero_threshold: zw,
            zero_count: z,
            count,
            sum,
            positive_spans: span(pos),
            negative_spans: span(neg),
            positive_buckets: pos.to_vec(),
            negative_buckets: neg.to_vec(),
            custom_values: vec![],
        }
    }

    fn nhcb(count: f64, sum: f64, bounds: &[f64], buckets: &[f64]) -> FloatHistogram {
        FloatHistogram { schema: -53, custom_values: bounds.to_vec(), ..nh(0, count, sum, 0.0, 0.0, buckets, &[]) }
    }

    /// Interpolated values may differ from Prometheus' in the last bit (Go's
    /// `math.Log2`/`Exp2` and FMA contraction on some platforms are not
    /// libm's): equal within 4 ulps.
    #[track_caller]
    fn assert_ulps(got: f64, want: f64) {
        assert!((got - want).abs() <= 4.0 * f64::EPSILON * want.abs(), "got {got}, want {want}");
    }

    /// promqltest's comparison: equal, both NaN, or within 1e-6 relative.
    #[track_caller]
    fn assert_close(got: f64, want: f64) {
        let ok =
            got == want || (got.is_nan() && want.is_nan()) || ((got - want).abs() <= 1e-6 * want.abs().max(got.abs()));
        assert!(ok, "got {got}, want {want}");
    }

    #[test]
    fn quantile_positive_buckets_with_zero_bucket() {
        let h = nh(0, 12.0, 100.0, 2.0, 0.001, &[2.0, 3.0, 0.0, 1.0, 4.0], &[]);
        let q = |q| histogram_quantile(q, &h).value;
        assert_eq!(q(1.001), f64::INFINITY);
        assert_eq!(q(1.0), 16.0);
        assert_ulps(q(0.99), 15.67072476139083);
        assert_ulps(q(0.9), 12.99603834169977);
        assert_ulps(q(0.6), 4.594793419988138);
        assert_ulps(q(0.5), 1.5874010519681994);
        assert_close(q(0.1), 0.0006);
        assert_eq!(q(0.0), 0.0);
        assert_eq!(q(-1.0), f64::NEG_INFINITY);
        assert!(q(f64::NAN).is_nan());
    }

    #[test]
    fn quantile_negative_buckets_with_zero_bucket() {
        let h = nh(0, 12.0, 100.0, 2.0, 0.001, &[], &[2.0, 3.0, 0.0, 1.0, 4.0]);
        let q = |q| histogram_quantile(q, &h).value;
        assert_eq!(q(1.0), 0.0);
        assert_close(q(0.99), -0.00006);
        assert_close(q(0.9), -0.0006);
        assert_ulps(q(0.5), -1.5874010519681996);
        assert_ulps(q(0.1), -12.996038341699768);
        assert_eq!(q(0.0), -16.0);
    }

    #[test]
    fn quantile_both_sides() {
        let b = [2.0, 3.0, 0.0, 1.0, 4.0];
        let h = nh(0, 24.0, 100.0, 4.0, 0.001, &b, &b);
        let q = |q| histogram_quantile(q, &h).value;
        assert_eq!(q(1.0), 16.0);
        assert_ulps(q(0.99), 15.34822590920423);
        assert_ulps(q(0.9), 10.556063286183155);
        assert_ulps(q(0.7), 1.2030250360821164);
        assert_close(q(0.55), 0.0006);
        assert_eq!(q(0.5), 0.0);
        assert_close(q(0.45), -0.0006);
        assert_ulps(q(0.3), -1.2030250360821169);
        assert_ulps(q(0.1), -10.556063286183155);
        assert_ulps(q(0.01), -15.34822590920423);
        assert_eq!(q(0.0), -16.0);
    }

    #[test]
    fn quantile_and_fraction_across_schemas() {
        for (schema, sum, q1, q2) in [
            (-1, 6.0, 2.0, 8.0),
            (0, 4.0, std::f64::consts::SQRT_2, 2.82842712474619),
            (1, 4.0, 1.189207, 1.6817928305074292),
        ] {
            let h = nh(schema, 5.0, sum, 0.0, 0.0, &[0.0, 5.0], &[]);
            assert_close(histogram_quantile(0.5, &h).value, q1);
            assert_close(histogram_fraction(0.0, q1, &h).value, 0.5);
            let n = nh(schema, 5.0, sum, 0.0, 0.0, &[], &[0.0, 5.0]);
            assert_close(histogram_quantile(0.5, &n).value, -q1);
            assert_close(histogram_fraction(-q1, 0.0, &n).value, 0.5);
            let h = nh(schema, 5.0, sum, 0.0, 0.0, &[0.0, 0.0, 5.0], &[]);
            assert_close(histogram_quantile(0.5, &h).value, q2);
            assert_close(histogram_fraction(0.0, q2, &h).value, 0.5);
            let n = nh(schema, 5.0, sum, 0.0, 0.0, &[], &[0.0, 0.0, 5.0]);
            assert_close(histogram_quantile(0.5, &n).value, -q2);
            assert_close(histogram_fraction(-q2, 0.0, &n).value, 0.5);
        }
    }

    #[test]
    fn quantile_edge_cases() {
        let empty = FloatHistogram::default();
        assert!(histogram_quantile(0.5, &empty).value.is_nan());
        assert_eq!(histogram_quantile(2.0, &empty).value, f64::INFINITY);
        assert_eq!(histogram_quantile(-2.0, &empty).value, f64::NEG_INFINITY);
        // Count without buckets (NaN observations only).
        let nan_only = nh(0, 3.0, f64::NAN, 0.0, 0.0, &[], &[]);
        let r = histogram_quantile(0.5, &nan_only);
        assert!(r.value.is_nan());
        assert!(r.nan_result);
        // One NaN observation among 4: the median is in the buckets, skewed.
        let skewed = nh(0, 4.0, f64::NAN, 0.0, 0.0, &[1.0, 2.0], &[]);
        let r = histogram_quantile(0.5, &skewed);
        assert!(r.nan_skew && !r.nan_result);
        assert_close(r.value, 2f64.powf(0.5));
        // The 0.9 quantile is above all buckets: NaN.
        let r = histogram_quantile(0.9, &skewed);
        assert!(r.value.is_nan() && r.nan_result);
        // A sum of NaN from ±Inf observations, no NaN observation: no skew.
        let inf = nh(0, 3.0, f64::NAN, 0.0, 0.0, &[1.0, 2.0], &[]);
        let r = histogram_quantile(0.5, &inf);
        assert!(!r.nan_skew && !r.nan_result);
    }

    #[test]
    fn quantile_custom_buckets() {
        let h = nhcb(4.0, 5.0, &[5.0, 10.0], &[1.0, 2.0, 1.0]);
        assert_eq!(histogram_quantile(0.5, &h).value, 7.5);
        assert_eq!(histogram_quantile(0.1, &h).value, 2.0);
        assert_eq!(histogram_quantile(0.9, &h).value, 10.0);
        assert_eq!(histogram_quantile(0.0, &h).value, 0.0);
        assert_eq!(histogram_quantile(1.0, &h).value, 10.0);
        // First bucket with a non-positive upper bound returns that bound.
        let neg = nhcb(2.0, -5.0, &[-2.0, 3.0], &[2.0]);
        assert_eq!(histogram_quantile(0.3, &neg).value, -2.0);
    }

    #[test]
    fn fraction_positive_and_zero_buckets() {
        let h = nh(0, 12.0, 100.0, 2.0, 0.001, &[2.0, 3.0, 0.0, 1.0, 4.0], &[]);
        let f = |l, u| histogram_fraction(l, u, &h).value;
        assert_eq!(f(0.0, f64::INFINITY), 1.0);
        assert_eq!(f(f64::NEG_INFINITY, 0.0), 0.0);
        assert_eq!(f(-0.001, 0.0), 0.0);
        assert_ulps(f(0.0, 0.001), 0.16666666666666666);
        assert_ulps(f(0.001, f64::INFINITY), 0.8333333333333334);
        assert_ulps(f(0.0, 0.0005), 0.08333333333333333);
        assert_close(histogram_quantile(0.08333333333333333, &h).value, 0.0005);
        assert_eq!(f(f64::NEG_INFINITY, -0.001), 0.0);
        assert_eq!(f(1.0, 2.0), 0.25);
        assert_ulps(f(0.0, 1.5), 0.4795739585136224);
        assert_ulps(f(1.5, 2.0), 0.10375937481971091);
        assert_ulps(f(1.0, 8.0), 0.3333333333333333);
        assert_ulps(f(0.0, 6.0), 0.6320802083934297);
        assert_close(histogram_quantile(0.6320802083934297, &h).value, 6.0);
        assert_ulps(f(1.0, 6.0), 0.29874687506009634);
        assert_ulps(f(1.5, 6.0), 0.15250624987980724);
        assert_eq!(f(-2.0, -1.0), 0.0);
        assert_eq!(f(3.0, 3.0), 0.0);
        assert!(f(f64::NAN, 1.0).is_nan());
        assert!(histogram_fraction(3.0, 42.0, &FloatHistogram::default()).value.is_nan());
    }

    #[test]
    fn fraction_custom_buckets_and_nans() {
        let h = nhcb(4.0, 5.0, &[5.0, 10.0], &[1.0, 2.0, 1.0]);
        assert_eq!(histogram_fraction(f64::NEG_INFINITY, 7.5, &h).value, 0.5);
        // The first bucket straddles 0 and the histogram has no negative
        // buckets, so it is taken as (0, 5] and interpolated linearly.
        assert_eq!(histogram_fraction(f64::NEG_INFINITY, 2.0, &h).value, 0.1);
        // Inside the bucket reaching to +Inf the interpolated share below 12
        // is 0: all its observations count as above.
        assert_eq!(histogram_fraction(12.0, f64::INFINITY, &h).value, 0.25);
        assert_eq!(histogram_fraction(5.0, 12.0, &h).value, 0.5);
        let nan = nh(0, 4.0, f64::NAN, 0.0, 0.0, &[1.0, 2.0], &[]);
        let r = histogram_fraction(f64::NEG_INFINITY, f64::INFINITY, &nan);
        assert_eq!(r.value, 0.75);
        assert!(r.nan_observations);
    }

    #[test]
    fn stddev_and_stdvar() {
        let h = nh(2, 4.0, 10.0, 0.0, 0.0, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0], &[]);
        assert_close(histogram_stddev(&h), 1.0787993180043811);
        assert_close(histogram_stdvar(&h), 1.163807968526718);
        let h = nh(8, 10.0, 10.0, 0.0, 0.0, &[1.0, 2.0, 3.0, 4.0], &[]);
        assert_close(histogram_stddev(&h), 0.0048960313898237465);
        assert_close(histogram_stdvar(&h), 2.3971123370139447e-05);
        let n: Vec<f64> =
            [0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 3, 0, 0, 0, 1, 0, 0, 1].iter().map(|&v| f64::from(v)).collect();
        let h = nh(0, 10.0, -112946.0, 0.0, 0.0, &[], &n);
        assert_close(histogram_stddev(&h), 27556.344499842);
        assert_close(histogram_stdvar(&h), 759352122.1939945);
        let h = nh(0, 10.0, -100.0, 0.0, 0.0, &[], &[0.0, 0.0, 0.0, 0.0, 10.0]);
        assert_close(histogram_stddev(&h), 1.3137084989848);
        assert_close(histogram_stdvar(&h), 1.725830020304794);
        let mut pos = vec![0.0; 55];
        for i in [13, 24, 26, 54] {
            pos[i] = 1.0;
        }
        let mut neg = vec![0.0; 47];
        for i in [24, 46] {
            neg[i] = 1.0;
        }
        let h = nh(3, 7.0, 62.0, 1.0, 0.0, &pos, &neg);
        assert_close(histogram_stddev(&h), 42.94723640026);
        assert_close(histogram_stdvar(&h), 1844.4651144196398);
        let h = nh(3, 7.0, f64::NAN, 1.0, 0.0, &pos, &neg);
        assert!(histogram_stddev(&h).is_nan());
        let h = nh(3, 7.0, f64::INFINITY, 1.0, 0.0, &pos, &neg);
        assert_eq!(histogram_stdvar(&h), f64::INFINITY);
        // Custom buckets use the arithmetic midpoint.
        let h = nhcb(2.0, 10.0, &[2.0, 8.0], &[0.0, 2.0]);
        assert_eq!(histogram_stdvar(&h), 0.0);
        assert_eq!(histogram_avg(&h), 5.0);
    }
}

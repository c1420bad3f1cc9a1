//! Classic-histogram math: quantiles and fractions over `le` buckets.

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
}

/// The `q` quantile of a classic histogram (Prometheus' `BucketQuantile`).
/// `buckets` may be in any order; it is sorted in place.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [Bucket]) -> BucketQuantile {
    let _ = (q, buckets);
    BucketQuantile { value: f64::NAN, forced_monotonicity: false, fixed_precision: false }
}

/// The estimated fraction of observations between `lower` and `upper`
/// (Prometheus' `BucketFraction`). `buckets` is sorted in place.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [Bucket]) -> f64 {
    let _ = (lower, upper, buckets);
    f64::NAN
}

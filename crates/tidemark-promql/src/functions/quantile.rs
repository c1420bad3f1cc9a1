//! The φ-quantile of a set of floats, as `quantile` and `quantile_over_time` compute it.

use std::cmp::Ordering;

/// Prometheus' `quantile`: φ < 0 gives -Inf, φ > 1 gives +Inf, NaN φ gives
/// NaN, no values give NaN; otherwise linear interpolation between the
/// closest ranks. `values` is reordered.
///
/// The checks run in Prometheus' order: an empty input is NaN even when φ is
/// out of range. The values are sorted ascending with NaN below every number
/// (Prometheus sorts with "NaN is less than anything"), so NaN samples take
/// the lowest ranks. The rank of φ is `φ·(n−1)`; the result is the weighted
/// mean `lower·(1−w) + upper·w` of the two samples around it, computed in
/// exactly that form so that infinities behave as in Prometheus (for example
/// `0·Inf` yields NaN).
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_unstable_by(nan_first);

    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    // `rank` lies in [0, n−1] because 0 ≤ q ≤ 1, so both indexes are in
    // bounds; the clamps mirror Prometheus and guard the `as usize` casts.
    let lower_index = rank.floor().max(0.0);
    let upper_index = (lower_index + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let lower = values[(lower_index as usize).min(values.len() - 1)];
    let upper = values[(upper_index as usize).min(values.len() - 1)];
    lower * (1.0 - weight) + upper * weight
}

/// Total order used for sorting samples by value: NaN before every number,
/// NaNs equal to each other, numbers by `<` (so -0 and +0 are equal).
fn nan_first(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_nan_whatever_phi() {
        assert!(quantile(0.5, &mut []).is_nan());
        assert!(quantile(-1.0, &mut []).is_nan());
        assert!(quantile(2.0, &mut []).is_nan());
    }

    #[test]
    fn out_of_range_phi_gives_infinities_and_nan_phi_gives_nan() {
        assert_eq!(quantile(-0.1, &mut [1.0, 2.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(1.1, &mut [1.0, 2.0]), f64::INFINITY);
        assert!(quantile(f64::NAN, &mut [1.0, 2.0]).is_nan());
    }

    #[test]
    fn interpolates_between_neighbouring_ranks() {
        let mut v = [40.0, 10.0, 30.0, 20.0];
        assert_eq!(quantile(0.0, &mut v), 10.0);
        assert_eq!(quantile(1.0, &mut v), 40.0);
        assert_eq!(quantile(0.5, &mut v), 25.0);
        // rank 0.9 → 10·0.1 + 20·0.9 = 19.
        assert!((quantile(0.3, &mut v) - 19.0).abs() < 1e-12);
    }

    #[test]
    fn aggregators_test_values() {
        // aggregators.test, `quantile without(point)(0.8, data)`.
        let cases: [(&[f64], f64); 3] = [(&[0.0, 1.0], 0.8), (&[0.0, 1.0, 2.0], 1.6), (&[0.0, 1.0, 4.0], 2.8)];
        for (values, want) in cases {
            let mut v = values.to_vec();
            assert!((quantile(0.8, &mut v) - want).abs() < 1e-12, "{values:?}");
        }
        // "NaN sample": 0, 1, NaN — NaN is the smallest, so the order is
        // NaN, 0, 1; rank 1.6 → 0·0.4 + 1·0.6 = 0.6.
        let mut v = [0.0, 1.0, f64::NAN];
        assert!((quantile(0.8, &mut v) - 0.6).abs() < 1e-12);
        // At φ = 0.2 the rank 0.4 falls between NaN and 0: NaN.
        let mut v = [0.0, 1.0, f64::NAN];
        assert!(quantile(0.2, &mut v).is_nan());
        // `quantile without(point)(0.2, data)` for "uneven samples".
        let mut v = [4.0, 0.0, 1.0];
        assert!((quantile(0.2, &mut v) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn nan_values_sort_first() {
        let mut v = [2.0, f64::NAN, 1.0, f64::NAN];
        assert!(quantile(0.0, &mut v).is_nan());
        assert!(v[0].is_nan() && v[1].is_nan());
        assert_eq!(&v[2..], &[1.0, 2.0]);
        let mut v = [2.0, f64::NAN, 1.0];
        assert_eq!(quantile(1.0, &mut v), 2.0);
    }

    #[test]
    fn zero_weight_on_an_infinite_neighbour_yields_nan_as_in_prometheus() {
        // rank 0 → 1·1 + Inf·0 = NaN, exactly as the Go formula computes;
        // at φ = 1 both neighbours are the +Inf sample: Inf·1 + Inf·0 = NaN.
        let mut v = [1.0, f64::INFINITY];
        assert!(quantile(0.0, &mut v).is_nan());
        assert!(quantile(1.0, &mut v).is_nan());
        assert_eq!(quantile(0.5, &mut v), f64::INFINITY);
        let mut v = [f64::INFINITY, f64::INFINITY, 1.0];
        assert_eq!(quantile(0.75, &mut v), f64::INFINITY);
    }

    #[test]
    fn single_value_is_every_quantile() {
        for q in [0.0, 0.25, 1.0] {
            assert_eq!(quantile(q, &mut [7.0]), 7.0);
        }
    }
}

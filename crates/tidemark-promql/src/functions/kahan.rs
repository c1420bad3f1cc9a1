//! Kahan–Babuška (Neumaier) compensated summation, as Prometheus uses for
//! `sum`, `avg`, `sum_over_time` and friends.

/// Adds `inc` to the running `(sum, compensation)` pair and returns the new pair.
#[inline]
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kahan_sum(values: &[f64]) -> f64 {
        let (mut s, mut c) = (0.0, 0.0);
        for &v in values {
            (s, c) = kahan_sum_inc(v, s, c);
        }
        s + c
    }

    #[test]
    fn compensates_cancellation() {
        assert_eq!(kahan_sum(&[1.0, 1e100, 1.0, -1e100]), 2.0);
        assert_eq!(kahan_sum(&[0.1; 10]), 1.0);
    }

    #[test]
    fn infinities_stay_infinite() {
        assert_eq!(kahan_sum(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert!(kahan_sum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    }
}

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

/// A running compensated sum.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    /// Adds one value.
    #[inline]
    pub(crate) fn add(&mut self, v: f64) {
        (self.sum, self.c) = kahan_sum_inc(v, self.sum, self.c);
    }

    /// The compensated total.
    #[inline]
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.c
    }
}

/// Compensated sum of a slice.
pub(crate) fn kahan_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut k = KahanSum::default();
    for v in values {
        k.add(v);
    }
    k.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensates_cancellation() {
        assert_eq!(kahan_sum([1.0, 1e100, 1.0, -1e100]), 2.0);
        assert_eq!(kahan_sum([0.1; 10]), 1.0);
    }

    #[test]
    fn infinities_stay_infinite() {
        assert_eq!(kahan_sum([f64::INFINITY, 1.0]), f64::INFINITY);
        assert!(kahan_sum([f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    }
}

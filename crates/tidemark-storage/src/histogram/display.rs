//! Text forms of histograms exactly as Prometheus prints them: `String()`
//! (the [`Display`](std::fmt::Display) impls) and `TestExpression()` (the
//! promqltest notation), with Go's float formatting.

use std::fmt::{self, Write as _};

use super::buckets::Bucket;
use super::{CounterResetHint, FloatHistogram, Histogram};

/// Go's spelling of a non-finite value, or `None` for a finite one.
fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// Formats `v` as Go's `%g` / `%v` (`strconv.FormatFloat(v, 'g', -1, 64)`):
/// the shortest digits that read back exactly, in exponent form (with at
/// least two exponent digits) when the decimal exponent is below −4 or at
/// least 6, and `NaN`, `+Inf`, `-Inf` for the non-finite values.
///
/// ```
/// use tidemark_storage::histogram::go_g;
/// assert_eq!(go_g(123456.0), "123456");
/// assert_eq!(go_g(1e6), "1e+06");
/// assert_eq!(go_g(0.0001), "0.0001");
/// assert_eq!(go_g(0.00001234), "1.234e-05");
/// assert_eq!(go_g(f64::INFINITY), "+Inf");
/// ```
pub fn go_g(v: f64) -> String {
    if let Some(s) = non_finite(v) {
        return s.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e6".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Formats `v` as Go's `%f` (six decimals; `NaN`, `+Inf`, `-Inf`).
pub fn go_f(v: f64) -> String {
    non_finite(v).map_or_else(|| format!("{v:.6}"), str::to_string)
}

impl fmt::Display for Bucket<f64> {
    /// `(lower,upper]:count` with `[`/`]` for inclusive bounds, as
    /// Prometheus' `Bucket.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_bucket(f, self.lower, self.upper, self.lower_inclusive, self.upper_inclusive)?;
        write!(f, ":{}", go_g(self.count))
    }
}

impl fmt::Display for Bucket<u64> {
    /// As for float buckets, with an integer count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_bucket(f, self.lower, self.upper, self.lower_inclusive, self.upper_inclusive)?;
        write!(f, ":{}", self.count)
    }
}

fn write_bucket(f: &mut fmt::Formatter<'_>, lower: f64, upper: f64, li: bool, ui: bool) -> fmt::Result {
    f.write_char(if li { '[' } else { '(' })?;
    write!(f, "{},{}", go_g(lower), go_g(upper))?;
    f.write_char(if ui { ']' } else { ')' })
}

impl fmt::Display for FloatHistogram {
    /// Prometheus' `FloatHistogram.String()`: count, sum, then the populated
    /// buckets from the lowest to the highest.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let h = FloatHistogram {
    ///     count: 5.0,
    ///     sum: 8.5,
    ///     zero_threshold: 0.001,
    ///     zero_count: 1.0,
    ///     positive_spans: vec![Span { offset: 0, length: 2 }],
    ///     positive_buckets: vec![1.0, 2.0],
    ///     negative_spans: vec![Span { offset: 1, length: 1 }],
    ///     negative_buckets: vec![1.0],
    ///     ..FloatHistogram::default()
    /// };
    /// assert_eq!(h.to_string(), "{count:5, sum:8.5, [-2,-1):1, [-0.001,0.001]:1, (0.5,1]:1, (1,2]:2}");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{count:{}, sum:{}", go_g(self.count), go_g(self.sum))?;
        let negative: Vec<_> = self.negative_buckets_iter().filter(|b| b.count != 0.0).collect();
        for b in negative.iter().rev() {
            write!(f, ", {b}")?;
        }
        if self.zero_count != 0.0 {
            write!(f, ", {}", self.zero_bucket())?;
        }
        for b in self.positive_buckets_iter().filter(|b| b.count != 0.0) {
            write!(f, ", {b}")?;
        }
        f.write_char('}')
    }
}

impl fmt::Display for Histogram {
    /// Prometheus' `Histogram.String()` (integer counts).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{count:{}, sum:{}", self.count, go_g(self.sum))?;
        let negative: Vec<_> = self.negative_buckets_iter().filter(|b| b.count != 0).collect();
        for b in negative.iter().rev() {
            write!(f, ", {b}")?;
        }
        if self.zero_count != 0 {
            write!(f, ", {}", self.zero_bucket())?;
        }
        for b in self.positive_buckets_iter().filter(|b| b.count != 0) {
            write!(f, ", {b}")?;
        }
        f.write_char('}')
    }
}

impl FloatHistogram {
    /// The histogram in promqltest notation, as Prometheus'
    /// `TestExpression()`: `{{schema:1 count:4 sum:5 z_bucket:1
    /// z_bucket_w:0.001 custom_values:[…] counter_reset_hint:gauge offset:1
    /// buckets:[1 2] n_offset:0 n_buckets:[…]}}`, leaving out zero and
    /// default fields. Buckets are compacted into one span per side first
    /// (gaps become explicit zero buckets).
    ///
    /// ```
    /// use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Span};
    /// let h = FloatHistogram {
    ///     counter_reset_hint: CounterResetHint::Gauge,
    ///     schema: 1,
    ///     count: 4.0,
    ///     sum: 5.0,
    ///     positive_spans: vec![Span { offset: 1, length: 1 }, Span { offset: 1, length: 1 }],
    ///     positive_buckets: vec![1.0, 3.0],
    ///     ..FloatHistogram::default()
    /// };
    /// assert_eq!(
    ///     h.test_expression(),
    ///     "{{schema:1 count:4 sum:5 counter_reset_hint:gauge offset:1 buckets:[1 0 3]}}"
    /// );
    /// ```
    pub fn test_expression(&self) -> String {
        let mut m = self.clone();
        m.compact(usize::MAX);
        let mut res: Vec<String> = Vec::new();
        if m.schema != 0 {
            res.push(format!("schema:{}", m.schema));
        }
        if m.count != 0.0 {
            res.push(format!("count:{}", go_g(m.count)));
        }
        if m.sum != 0.0 {
            res.push(format!("sum:{}", go_g(m.sum)));
        }
        if m.zero_count != 0.0 {
            res.push(format!("z_bucket:{}", go_g(m.zero_count)));
        }
        if m.zero_threshold != 0.0 {
            res.push(format!("z_bucket_w:{}", go_g(m.zero_threshold)));
        }
        if m.uses_custom_buckets() {
            let cv: Vec<String> = m.custom_values.iter().map(|v| go_g(*v)).collect();
            res.push(format!("custom_values:[{}]", cv.join(" ")));
        }
        match m.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => res.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotCounterReset => res.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => res.push("counter_reset_hint:gauge".into()),
        }
        push_side(&mut res, "buckets", "offset", &m.positive_buckets, &m.positive_spans);
        push_side(&mut res, "n_buckets", "n_offset", &m.negative_buckets, &m.negative_spans);
        format!("{{{{{}}}}}", res.join(" "))
    }
}

/// Appends one side's offset and buckets. After a full compaction there is
/// at most one span per side; should there be more (only with an invalid
/// layout, where Prometheus panics), each span's offset is printed.
fn push_side(res: &mut Vec<String>, buckets_key: &str, offset_key: &str, buckets: &[f64], spans: &[super::Span]) {
    for span in spans {
        if span.offset != 0 {
            res.push(format!("{offset_key}:{}", span.offset));
        }
    }
    if !buckets.is_empty() {
        let b: Vec<String> = buckets.iter().map(|v| go_g(*v)).collect();
        res.push(format!("{buckets_key}:[{}]", b.join(" ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_matches_go() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (100000.0, "100000"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (1.5e-300, "1.5e-300"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::from_bits(1), "5e-324"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
            (123.456, "123.456"),
            (0.7071067811865475, "0.7071067811865475"),
        ];
        for (v, want) in cases {
            assert_eq!(go_g(*v), *want, "{v:e}");
        }
    }

    #[test]
    fn go_f_matches_go() {
        assert_eq!(go_f(1.0), "1.000000");
        assert_eq!(go_f(-2.5), "-2.500000");
        assert_eq!(go_f(f64::INFINITY), "+Inf");
        assert_eq!(go_f(f64::NEG_INFINITY), "-Inf");
    }
}

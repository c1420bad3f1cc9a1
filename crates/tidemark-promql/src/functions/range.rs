//! Functions over a range vector window (`rate`, `*_over_time`, …).
//!
//! Each kernel reproduces the float arithmetic of Prometheus 3.x
//! (`promql/functions.go`) operation by operation, so results agree to the
//! last bit wherever Go's and Rust's IEEE-754 arithmetic agree. Native
//! histograms, start timestamps and the experimental `anchored`/`smoothed`
//! selector modifiers are not handled here.

use tidemark_storage::Sample;

use super::kahan::kahan_sum_inc;
use super::quantile::quantile;

/// One window of one series, as a range function sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RangeWindow<'a> {
    /// Float samples with `range_start < t <= range_end`, oldest first;
    /// staleness markers already removed.
    pub(crate) samples: &'a [Sample],
    /// The step's evaluation time in ms (the `@` time if one is given).
    pub(crate) eval_t: i64,
    /// Exclusive start of the window: `eval_t - offset - range`.
    pub(crate) range_start: i64,
    /// Inclusive end of the window: `eval_t - offset`.
    pub(crate) range_end: i64,
}

/// A function that takes a range vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeFunction {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Resets,
    Changes,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    QuantileOverTime,
    StddevOverTime,
    StdvarOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    MadOverTime,
    DoubleExponentialSmoothing,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    TsOfLastOverTime,
    TsOfFirstOverTime,
}

impl RangeFunction {
    /// The function called `name`, if it takes a range vector and is not
    /// `absent_over_time` (which the evaluator handles itself).
    pub(crate) fn from_name(name: &str) -> Option<RangeFunction> {
        use RangeFunction::*;
        Some(match name {
            "rate" => Rate,
            "increase" => Increase,
            "delta" => Delta,
            "irate" => Irate,
            "idelta" => Idelta,
            "deriv" => Deriv,
            "predict_linear" => PredictLinear,
            "resets" => Resets,
            "changes" => Changes,
            "avg_over_time" => AvgOverTime,
            "sum_over_time" => SumOverTime,
            "count_over_time" => CountOverTime,
            "min_over_time" => MinOverTime,
            "max_over_time" => MaxOverTime,
            "quantile_over_time" => QuantileOverTime,
            "stddev_over_time" => StddevOverTime,
            "stdvar_over_time" => StdvarOverTime,
            "last_over_time" => LastOverTime,
            "first_over_time" => FirstOverTime,
            "present_over_time" => PresentOverTime,
            "mad_over_time" => MadOverTime,
            "double_exponential_smoothing" => DoubleExponentialSmoothing,
            "ts_of_min_over_time" => TsOfMinOverTime,
            "ts_of_max_over_time" => TsOfMaxOverTime,
            "ts_of_last_over_time" => TsOfLastOverTime,
            "ts_of_first_over_time" => TsOfFirstOverTime,
            _ => return None,
        })
    }

    /// Evaluates the function on one window. `args` are the function's scalar
    /// arguments at this step, in call order without the range vector
    /// (`quantile_over_time(φ, …)` → `[φ]`, `predict_linear(…, t)` → `[t]`,
    /// `double_exponential_smoothing(…, sf, tf)` → `[sf, tf]`).
    /// `None` means the series has no output at this step.
    ///
    /// A missing scalar argument (a caller bug) also yields `None` rather
    /// than a panic.
    pub(crate) fn eval(self, w: &RangeWindow<'_>, args: &[f64]) -> Option<f64> {
        use RangeFunction::*;
        let s = w.samples;
        // Every function drops the series when the window holds no sample.
        let (first, last) = (s.first()?, s.last()?);
        match self {
            Rate => extrapolated_rate(w, true, true),
            Increase => extrapolated_rate(w, true, false),
            Delta => extrapolated_rate(w, false, false),
            Irate => instant_value(s, true),
            Idelta => instant_value(s, false),
            Deriv => {
                if s.len() < 2 {
                    return None;
                }
                // Regressing around the first sample keeps the x values small,
                // which protects the sums from cancellation (Prometheus #2674).
                Some(linear_regression(s, first.t).0)
            }
            PredictLinear => {
                let duration = *args.first()?;
                if s.len() < 2 {
                    return None;
                }
                let (slope, intercept) = linear_regression(s, w.eval_t);
                Some(slope * duration + intercept)
            }
            Resets => Some(count_pairs(s, |prev, cur| cur < prev)),
            // NaN → NaN is not a change, although `NaN != NaN`.
            Changes => Some(count_pairs(s, |prev, cur| cur != prev && !(cur.is_nan() && prev.is_nan()))),
            AvgOverTime => Some(avg_over_time(s)),
            SumOverTime => Some(sum_over_time(s)),
            CountOverTime => Some(s.len() as f64),
            // `cur < best || best.is_nan()`: the first of equal values wins,
            // and a NaN is replaced by whatever follows it.
            MinOverTime => Some(select_over_time(s, |cur, best| cur < best || best.is_nan()).v),
            MaxOverTime => Some(select_over_time(s, |cur, best| cur > best || best.is_nan()).v),
            // With `<=`/`>=` the last of equal values wins, as in Prometheus.
            TsOfMinOverTime => Some(ms_to_secs(select_over_time(s, |cur, best| cur <= best || best.is_nan()).t)),
            TsOfMaxOverTime => Some(ms_to_secs(select_over_time(s, |cur, best| cur >= best || best.is_nan()).t)),
            QuantileOverTime => {
                let phi = *args.first()?;
                let mut values: Vec<f64> = s.iter().map(|p| p.v).collect();
                Some(quantile(phi, &mut values))
            }
            StdvarOverTime => Some(variance_over_time(s)),
            StddevOverTime => Some(variance_over_time(s).sqrt()),
            LastOverTime => Some(last.v),
            FirstOverTime => Some(first.v),
            TsOfLastOverTime => Some(ms_to_secs(last.t)),
            TsOfFirstOverTime => Some(ms_to_secs(first.t)),
            PresentOverTime => Some(1.0),
            MadOverTime => Some(mad_over_time(s)),
            DoubleExponentialSmoothing => {
                let (&sf, &tf) = (args.first()?, args.get(1)?);
                double_exponential_smoothing(s, sf, tf)
            }
        }
    }
}

/// Checks `double_exponential_smoothing`'s factors and returns Prometheus'
/// error text when one is out of range. Both must lie strictly between 0 and
/// 1. A NaN factor passes, exactly as in Prometheus (every comparison with
/// NaN is false), and then makes the result NaN.
pub(crate) fn validate_smoothing_args(sf: f64, tf: f64) -> Result<(), String> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {}", go_format_f(sf)));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(format!("invalid trend factor. Expected: 0 < tf < 1, got: {}", go_format_f(tf)));
    }
    Ok(())
}

/// Formats `v` as Go's `%f` does: six decimals, with `+Inf`, `-Inf` and
/// `NaN` for the non-finite values.
fn go_format_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v:.6}")
    }
}

/// A millisecond timestamp in seconds.
#[inline]
fn ms_to_secs(t: i64) -> f64 {
    t as f64 / 1000.0
}

/// `later - earlier` in seconds. The subtraction wraps like Go's int64
/// arithmetic instead of panicking on absurd timestamps.
#[inline]
fn secs_between(later: i64, earlier: i64) -> f64 {
    later.wrapping_sub(earlier) as f64 / 1000.0
}

/// A range of `ms` milliseconds in seconds, computed as Go's
/// `time.Duration.Seconds` does (whole seconds plus the fraction separately),
/// so that `rate` divides by the very same number as Prometheus.
#[inline]
fn duration_secs(ms: i64) -> f64 {
    let whole = ms / 1000;
    let nanos = (ms % 1000) * 1_000_000;
    whole as f64 + nanos as f64 / 1e9
}

/// `rate`, `increase` and `delta` (Prometheus' `extrapolatedRate`).
///
/// The difference between the last and first sample (plus, for counters,
/// the value before every reset) is extrapolated towards the window edges:
/// all the way to an edge when the nearest sample is within 1.1 average
/// sample intervals of it, else by half an average interval (the series is
/// assumed to start or end inside the window). A counter is never
/// extrapolated below zero.
fn extrapolated_rate(w: &RangeWindow<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);

    let mut result = last.v - first.v;
    if is_counter {
        // A drop means the counter restarted from zero; what it had counted
        // before the drop is part of the increase.
        for pair in s.windows(2) {
            if pair[1].v < pair[0].v {
                result += pair[0].v;
            }
        }
    }

    let mut duration_to_start = secs_between(first.t, w.range_start);
    let mut duration_to_end = secs_between(w.range_end, last.t);
    let sampled_interval = secs_between(last.t, first.t);
    let average_interval = sampled_interval / (s.len() - 1) as f64;
    let threshold = average_interval * 1.1;

    if duration_to_start >= threshold {
        duration_to_start = average_interval / 2.0;
    }
    if is_counter {
        // Where a straight line through the samples would reach zero; the
        // counter cannot have started before that.
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first.v >= 0.0 {
            duration_to_zero = sampled_interval * (first.v / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_interval / 2.0;
    }

    let mut factor = 1.0;
    if sampled_interval != 0.0 {
        factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    }
    if is_rate {
        factor /= duration_secs(w.range_end.wrapping_sub(w.range_start));
    }
    Some(result * factor)
}

/// `irate` and `idelta`: the last two samples only. For `irate` a drop is a
/// counter reset, so the increase is the last value itself; the result is
/// per second. Two samples at the same time give no result.
fn instant_value(s: &[Sample], is_rate: bool) -> Option<f64> {
    let [.., prev, cur] = s else {
        return None;
    };
    let interval_ms = cur.t.wrapping_sub(prev.t);
    if interval_ms == 0 {
        return None;
    }
    // The reset branch needs `cur < prev`; with a NaN on either side that is
    // false and the difference (NaN) is taken, as in Prometheus.
    let result = if is_rate && cur.v < prev.v { cur.v } else { cur.v - prev.v };
    if is_rate {
        Some(result / (interval_ms as f64 / 1000.0))
    } else {
        Some(result)
    }
}

/// Least-squares fit of value against time (in seconds relative to
/// `intercept_t`), with compensated sums. Returns `(slope, intercept)`, the
/// intercept being the fitted value at `intercept_t`. A constant series
/// gives slope 0 (NaN for both if the constant is infinite). Needs at least
/// one sample.
fn linear_regression(s: &[Sample], intercept_t: i64) -> (f64, f64) {
    let init_y = s[0].v;
    let mut const_y = true;
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    for p in s {
        // `!=`, so a NaN anywhere also ends the constant case.
        if const_y && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = secs_between(p.t, intercept_t);
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        // A flat series gets an exact zero slope, free of the rounding noise
        // the general formula could leave; an infinite constant has no
        // meaningful line (the formula would compute ∞ − ∞).
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;

    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// How many consecutive pairs `(prev, cur)` satisfy `hit`.
#[inline]
fn count_pairs(s: &[Sample], hit: impl Fn(f64, f64) -> bool) -> f64 {
    s.windows(2).filter(|pair| hit(pair[0].v, pair[1].v)).count() as f64
}

/// The sample that wins a scan where `replace(cur, best)` says the current
/// sample displaces the best so far (Prometheus' `compareOverTime`).
/// `s` must not be empty.
#[inline]
fn select_over_time(s: &[Sample], replace: impl Fn(f64, f64) -> bool) -> Sample {
    let mut best = s[0];
    for &p in &s[1..] {
        if replace(p.v, best.v) {
            best = p;
        }
    }
    best
}

/// `sum_over_time`: compensated sum; an infinite sum is returned as is,
/// since adding the compensation term could only turn it into NaN.
fn sum_over_time(s: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for p in s {
        (sum, c) = kahan_sum_inc(p.v, sum, c);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + c
    }
}

/// `avg_over_time`: the compensated sum divided by the count while the sum
/// stays finite (the more accurate method, see Prometheus #16714); from the
/// first overflow on, an incremental mean that cannot overflow. `s` must not
/// be empty.
fn avg_over_time(s: &[Sample]) -> f64 {
    let mut sum = s[0].v;
    let mut c = 0.0;
    let mut mean = 0.0;
    let mut incremental = false;
    for (i, p) in s.iter().enumerate().skip(1) {
        let count = (i + 1) as f64;
        if !incremental {
            let (new_sum, new_c) = kahan_sum_inc(p.v, sum, c);
            if !new_sum.is_infinite() {
                (sum, c) = (new_sum, new_c);
                continue;
            }
            // The sum overflowed: continue with the mean of the samples so
            // far, scaling the compensation term alike.
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_sum_inc(p.v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        let count = s.len() as f64;
        sum / count + c / count
    }
}

/// Population variance by Welford's method with compensated running mean
/// and sum of squared deviations (`stdvar_over_time`).
fn variance_over_time(s: &[Sample]) -> f64 {
    let mut count = 0.0;
    let (mut mean, mut c_mean) = (0.0, 0.0);
    let (mut aux, mut c_aux) = (0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// `mad_over_time`: the median of the absolute deviations from the median.
/// A NaN sample makes the median undefined, so the result is NaN.
fn mad_over_time(s: &[Sample]) -> f64 {
    if s.iter().any(|p| p.v.is_nan()) {
        return f64::NAN;
    }
    let mut values: Vec<f64> = s.iter().map(|p| p.v).collect();
    let median = quantile(0.5, &mut values);
    for v in &mut values {
        *v = (*v - median).abs();
    }
    quantile(0.5, &mut values)
}

/// `double_exponential_smoothing` (Holt's linear method): smoothing factor
/// `sf` weights the newest value against the smoothed history, trend factor
/// `tf` weights the newest slope against the smoothed trend. The initial
/// level is the first value and the initial trend the first difference.
/// Needs two samples.
fn double_exponential_smoothing(s: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    // s1 is the current smoothed level, s0 the previous one, b the trend.
    let mut s0 = 0.0;
    let mut s1 = s[0].v;
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        // The first step keeps the initial trend; later steps blend the
        // latest level change into it.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

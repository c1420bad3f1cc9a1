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
use crate::go_fmt::go_format_f;

/// One window of one series, as a range function sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RangeWindow<'a> {
    /// Float samples with `range_start < t <= range_end`, oldest first;
    /// staleness markers already removed.
    pub(crate) samples: &'a [Sample],
    /// The step's evaluation time in ms. Only `predict_linear` reads it, and
    /// Prometheus predicts from the step time even when the selector carries
    /// an `@` modifier: `predict_linear(x[55m] @ 3000, 3600)` evaluated at
    /// 10m extrapolates to 600 s + 3600 s (upstream `functions.test`).
    pub(crate) eval_t: i64,
    /// Exclusive start of the window: `range_end - range`. `rate`,
    /// `increase` and `delta` extrapolate to these edges.
    pub(crate) range_start: i64,
    /// Inclusive end of the window: the selector's time (the `@` time if one
    /// is given, else the step time) minus its offset.
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

/// Every range function by its PromQL name.
const NAMES: [(&str, RangeFunction); 26] = {
    use RangeFunction::*;
    [
        ("rate", Rate),
        ("increase", Increase),
        ("delta", Delta),
        ("irate", Irate),
        ("idelta", Idelta),
        ("deriv", Deriv),
        ("predict_linear", PredictLinear),
        ("resets", Resets),
        ("changes", Changes),
        ("avg_over_time", AvgOverTime),
        ("sum_over_time", SumOverTime),
        ("count_over_time", CountOverTime),
        ("min_over_time", MinOverTime),
        ("max_over_time", MaxOverTime),
        ("quantile_over_time", QuantileOverTime),
        ("stddev_over_time", StddevOverTime),
        ("stdvar_over_time", StdvarOverTime),
        ("last_over_time", LastOverTime),
        ("first_over_time", FirstOverTime),
        ("present_over_time", PresentOverTime),
        ("mad_over_time", MadOverTime),
        ("double_exponential_smoothing", DoubleExponentialSmoothing),
        ("ts_of_min_over_time", TsOfMinOverTime),
        ("ts_of_max_over_time", TsOfMaxOverTime),
        ("ts_of_last_over_time", TsOfLastOverTime),
        ("ts_of_first_over_time", TsOfFirstOverTime),
    ]
};

impl RangeFunction {
    /// The function called `name`, if it takes a range vector and is not
    /// `absent_over_time` (which the evaluator handles itself).
    pub(crate) fn from_name(name: &str) -> Option<RangeFunction> {
        NAMES.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
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
            // Prometheus takes the later of the last float's and the last
            // histogram's timestamp, with 0 standing in for "no histogram",
            // so a last sample before 1970 reports 0. Kept for parity.
            TsOfLastOverTime => Some(ms_to_secs(last.t.max(0))),
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
/// 1; a NaN factor passes, exactly as in Prometheus (every comparison with
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
    // A drop means the counter restarted from zero; what it had counted
    // before the drop is part of the increase.
    let resets = w.samples.windows(2).filter(|pair| is_reset(pair[0].v, pair[1].v)).map(|pair| pair[0].v);
    extrapolated_rate_with(w, is_counter, is_rate, resets)
}

/// Whether a counter going from `prev` to `cur` was reset (a NaN on either
/// side is not a reset).
#[inline]
pub(crate) fn is_reset(prev: f64, cur: f64) -> bool {
    cur < prev
}

/// The counter resets of a series: for every sample `i` whose value is below
/// the one before, `(i, value before)`, in sample order. A range function
/// sliding over many windows of one series looks up each window's resets
/// here instead of scanning the window again at every step.
pub(crate) fn counter_resets(s: &[Sample], out: &mut Vec<(usize, f64)>) {
    out.clear();
    for (i, pair) in s.windows(2).enumerate() {
        if is_reset(pair[0].v, pair[1].v) {
            out.push((i + 1, pair[0].v));
        }
    }
}

impl RangeFunction {
    /// Whether [`eval_with_resets`](Self::eval_with_resets) applies.
    pub(crate) fn uses_counter_resets(self) -> bool {
        matches!(self, RangeFunction::Rate | RangeFunction::Increase)
    }

    /// `rate` or `increase` of a window whose counter resets are given
    /// (the values before each reset inside the window, in sample order, as
    /// [`counter_resets`] lists them). The result is the very same float as
    /// [`eval`](Self::eval)'s: the same corrections added in the same order.
    pub(crate) fn eval_with_resets(self, w: &RangeWindow<'_>, resets: impl Iterator<Item = f64>) -> Option<f64> {
        match self {
            RangeFunction::Rate => extrapolated_rate_with(w, true, true, resets),
            RangeFunction::Increase => extrapolated_rate_with(w, true, false, resets),
            other => other.eval(w, &[]),
        }
    }
}

/// [`extrapolated_rate`] with the counter corrections (the value before each
/// reset, oldest first) supplied by the caller; ignored unless `is_counter`.
fn extrapolated_rate_with(
    w: &RangeWindow<'_>,
    is_counter: bool,
    is_rate: bool,
    resets: impl Iterator<Item = f64>,
) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);

    let mut result = last.v - first.v;
    if is_counter {
        for before in resets {
            result += before;
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
    for (i, p) in s.iter().enumerate() {
        // `!=`, so a NaN anywhere after the first sample also ends the
        // constant case.
        if const_y && i > 0 && p.v != init_y {
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

#[cfg(test)]
mod tests {
    use super::RangeFunction::*;
    use super::*;

    const S: i64 = 1000;
    const M: i64 = 60 * S;

    /// Samples `values[i]` at `i * step_ms`, like a promqltest `load` line;
    /// `None` is a gap (`_`).
    fn load(step_ms: i64, values: &[Option<f64>]) -> Vec<Sample> {
        values.iter().enumerate().filter_map(|(i, v)| v.map(|v| Sample::new(i as i64 * step_ms, v))).collect()
    }

    /// `load` without gaps.
    fn load_dense(step_ms: i64, values: &[f64]) -> Vec<Sample> {
        values.iter().enumerate().map(|(i, &v)| Sample::new(i as i64 * step_ms, v)).collect()
    }

    /// `a+bxN`: N+1 values a, a+b, …
    fn series(a: f64, b: f64, n: usize) -> Vec<f64> {
        (0..=n).map(|i| a + b * i as f64).collect()
    }

    /// Runs `f` over `x[range] offset offset` evaluated at `eval_t`, cutting
    /// the window out of `all` as the evaluator does.
    fn eval_at(f: RangeFunction, all: &[Sample], eval_t: i64, range: i64, offset: i64, args: &[f64]) -> Option<f64> {
        let range_end = eval_t - offset;
        let range_start = range_end - range;
        let lo = all.partition_point(|s| s.t <= range_start);
        let hi = all.partition_point(|s| s.t <= range_end);
        let w = RangeWindow { samples: &all[lo..hi], eval_t, range_start, range_end };
        f.eval(&w, args)
    }

    /// `eval_at` without offset or arguments.
    fn at(f: RangeFunction, all: &[Sample], eval_t: i64, range: i64) -> Option<f64> {
        eval_at(f, all, eval_t, range, 0, &[])
    }

    /// Equal within a relative 1e-12 (far tighter than promqltest's 1e-6);
    /// NaN equals NaN.
    #[track_caller]
    fn assert_close(got: Option<f64>, want: f64) {
        let got = got.unwrap_or_else(|| panic!("no result, want {want}"));
        if want.is_nan() {
            assert!(got.is_nan(), "got {got}, want NaN");
        } else if want.is_infinite() || want == 0.0 {
            assert_eq!(got, want);
        } else {
            assert!(((got - want) / want).abs() <= 1e-12, "got {got:e}, want {want:e}");
        }
    }

    #[test]
    fn every_function_is_named() {
        for name in [
            "rate",
            "increase",
            "delta",
            "irate",
            "idelta",
            "deriv",
            "predict_linear",
            "resets",
            "changes",
            "avg_over_time",
            "sum_over_time",
            "count_over_time",
            "min_over_time",
            "max_over_time",
            "quantile_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "last_over_time",
            "first_over_time",
            "present_over_time",
            "mad_over_time",
            "double_exponential_smoothing",
            "ts_of_min_over_time",
            "ts_of_max_over_time",
            "ts_of_last_over_time",
            "ts_of_first_over_time",
        ] {
            assert!(RangeFunction::from_name(name).is_some(), "{name}");
        }
        assert_eq!(RangeFunction::from_name("absent_over_time"), None);
        assert_eq!(RangeFunction::from_name("abs"), None);
    }

    #[test]
    fn empty_window_gives_no_result_for_every_function() {
        let w = RangeWindow { samples: &[], eval_t: 60 * S, range_start: 0, range_end: 60 * S };
        for (_, f) in NAMES {
            assert_eq!(f.eval(&w, &[0.5, 0.5]), None, "{f:?}");
        }
    }

    #[test]
    fn missing_scalar_arguments_give_no_result() {
        let all = load_dense(S, &[1.0, 2.0, 3.0]);
        let w = RangeWindow { samples: &all, eval_t: 3 * S, range_start: -S, range_end: 3 * S };
        assert_eq!(PredictLinear.eval(&w, &[]), None);
        assert_eq!(QuantileOverTime.eval(&w, &[]), None);
        assert_eq!(DoubleExponentialSmoothing.eval(&w, &[0.5]), None);
        assert!(DoubleExponentialSmoothing.eval(&w, &[0.5, 0.5]).is_some());
    }

    #[test]
    fn extreme_inputs_never_panic() {
        let nasty = [
            Sample::new(i64::MIN, f64::NAN),
            Sample::new(-1, f64::NEG_INFINITY),
            Sample::new(0, -0.0),
            Sample::new(1, f64::MAX),
            Sample::new(2, f64::MIN_POSITIVE),
            Sample::new(i64::MAX - 1, f64::INFINITY),
            Sample::new(i64::MAX, -f64::MAX),
        ];
        let windows = [(i64::MIN, i64::MAX, i64::MAX), (i64::MAX, i64::MIN, i64::MIN), (0, i64::MIN, i64::MAX)];
        for (eval_t, range_start, range_end) in windows {
            for len in 0..=nasty.len() {
                let w = RangeWindow { samples: &nasty[..len], eval_t, range_start, range_end };
                for (_, f) in NAMES {
                    for args in [&[][..], &[f64::NAN, f64::NAN], &[1e300, -1e300]] {
                        let _ = f.eval(&w, args);
                    }
                }
            }
        }
    }

    // --- rate, increase, delta ---------------------------------------------

    #[test]
    fn rate_is_per_second_over_the_whole_window() {
        // calculate_rate_window_total 0+80x10 (5m steps), rate(…[50m]) at 50m.
        // (0, 50m] holds 80…800: 720 over 45m, extrapolated 5m back to the
        // window start (the zero point is exactly 5m back too) = 800 / 3000 s.
        let all = load_dense(5 * M, &series(0.0, 80.0, 10));
        assert_close(at(Rate, &all, 50 * M, 50 * M), 0.26666666666666666);
    }

    #[test]
    fn rate_with_offset_uses_the_shifted_window() {
        // calculate_rate_offset_total{x="a"} 0+10x10: rate(…[10m] offset 5m)
        // at 50m sees 80 at 40m and 90 at 45m: 10 extrapolated 5m back = 20
        // over 600 s.
        let a = load_dense(5 * M, &series(0.0, 10.0, 10));
        assert_close(eval_at(Rate, &a, 50 * M, 10 * M, 5 * M, &[]), 0.03333333333333333);
        let b = load_dense(5 * M, &series(0.0, 20.0, 10));
        assert_close(eval_at(Rate, &b, 50 * M, 10 * M, 5 * M, &[]), 0.06666666666666667);
    }

    #[test]
    fn rate_adds_the_value_before_a_counter_reset() {
        // testcounter_reset_middle_total 0+27x4 0+27x5: rate(…[50m]) at 50m.
        let mut v = series(0.0, 27.0, 4);
        v.extend(series(0.0, 27.0, 5));
        let all = load_dense(5 * M, &v);
        assert_close(at(Rate, &all, 50 * M, 50 * M), 0.08);
    }

    #[test]
    fn rate_needs_two_samples_and_treats_a_final_drop_as_reset() {
        // testcounter_reset_end_total 0+10x9 0 10.
        let mut v = series(0.0, 10.0, 9);
        v.extend([0.0, 10.0]);
        let all = load_dense(5 * M, &v);
        assert_eq!(at(Rate, &all, 50 * M, 5 * M), None);
        // 90 then 0: a reset, so the increase is 0 - 90 + 90.
        assert_eq!(at(Rate, &all, 50 * M, 6 * M), Some(0.0));
    }

    #[test]
    fn rate_cuts_left_extrapolation_at_the_counter_zero_point() {
        // testcounter_zero_cutoff_total (4m steps), rate(…[20m]) at 10m: the
        // window (-10m, 10m] holds samples at 0, 4m, 8m. The start is farther
        // than 1.1 intervals away, so extrapolation goes half an interval
        // (2m) back, unless the counter would hit zero sooner.
        let want = [(0.0, 0.5), (60.0, 0.55), (120.0, 0.6), (180.0, 0.6), (240.0, 0.6), (300.0, 0.6)];
        for (start, rate) in want {
            let all = load_dense(4 * M, &series(start, 240.0, 10));
            assert_close(at(Rate, &all, 10 * M, 20 * M), rate);
            // At 50m the window is full and no zero cutoff applies.
            assert_close(at(Rate, &all, 50 * M, 20 * M), 0.6);
        }
    }

    #[test]
    fn increase_extrapolates_to_edges_and_zero_point() {
        let foo = load_dense(5 * M, &series(0.0, 10.0, 10));
        let mut bar_v = series(0.0, 18.0, 5);
        bar_v.extend(series(0.0, 18.0, 5));
        let bar = load_dense(5 * M, &bar_v);
        let dings = load_dense(5 * M, &series(10.0, 10.0, 10));
        let bumms = load_dense(5 * M, &series(1.0, 10.0, 10));

        assert_close(at(Increase, &foo, 50 * M, 50 * M), 100.0);
        assert_close(at(Increase, &bar, 50 * M, 50 * M), 160.0);
        assert_close(at(Increase, &dings, 50 * M, 50 * M), 100.0);
        assert_close(at(Increase, &bumms, 50 * M, 50 * M), 100.0);

        // [100m]: the start is 50m before the first sample. foo and bar are
        // 0 at t=0 (zero point reached: no extrapolation); dings (10 at t=0)
        // extrapolates the usual 2m30s; bumms (1 at t=0) reaches zero 30s
        // back, so only that far.
        assert_close(at(Increase, &foo, 50 * M, 100 * M), 100.0);
        assert_close(at(Increase, &bar, 50 * M, 100 * M), 162.0);
        assert_close(at(Increase, &dings, 50 * M, 100 * M), 105.0);
        assert_close(at(Increase, &bumms, 50 * M, 100 * M), 101.0);
    }

    #[test]
    fn increase_treats_a_drop_as_a_restart_from_zero() {
        // 0 1 2 3 2 3 4, increase(…[30m]) at 30m: 3 2 reads as 3 0 1 2.
        let all = load_dense(5 * M, &[0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
        assert_close(at(Increase, &all, 30 * M, 30 * M), 7.0);
    }

    #[test]
    fn delta_extrapolates_gauges_both_ways() {
        let up = load_dense(5 * M, &[0.0, 50.0, 100.0, 150.0, 200.0]);
        let down = load_dense(5 * M, &[200.0, 150.0, 100.0, 50.0, 0.0]);
        assert_close(at(Delta, &up, 20 * M, 20 * M), 200.0);
        assert_close(at(Delta, &down, 20 * M, 20 * M), -200.0);
        // A gauge may go negative: no zero-point cutoff, and no reset
        // handling.
        let neg = load_dense(10 * S, &[-5.0, -3.0, 10.0]);
        // The window (0s, 30s] holds -3 at 10s and 10 at 20s: 13 over 10s,
        // extrapolated 10s to each edge = 39.
        assert_close(at(Delta, &neg, 30 * S, 30 * S), 39.0);
    }

    #[test]
    fn extrapolation_threshold_is_one_point_one_intervals() {
        // Samples 1, 2, 3 at 10s, 20s, 30s: interval 10s, threshold
        // 10 * 1.1 = 11 s (exactly, in floating point).
        let all = vec![Sample::new(10 * S, 1.0), Sample::new(20 * S, 2.0), Sample::new(30 * S, 3.0)];
        let w = |start, end| RangeWindow { samples: &all, eval_t: end, range_start: start, range_end: end };
        // 10s to each edge: extrapolate all the way, 2 * 40/20.
        assert_close(Delta.eval(&w(0, 40 * S), &[]), 4.0);
        // 10.999s is below the threshold: all the way.
        assert_close(Delta.eval(&w(-999, 40 * S), &[]), 2.0 * 40.999 / 20.0);
        // Exactly at the threshold counts as too far: half an interval.
        assert_close(Delta.eval(&w(-S, 40 * S), &[]), 2.0 * 35.0 / 20.0);
        // 12s: only half an interval (5s) on that side.
        assert_close(Delta.eval(&w(-2 * S, 40 * S), &[]), 2.0 * 35.0 / 20.0);
        assert_close(Delta.eval(&w(0, 42 * S), &[]), 2.0 * 35.0 / 20.0);
        // Samples on the edges: no extrapolation at all.
        assert_close(Delta.eval(&w(10 * S - 1, 30 * S), &[]), 2.0 * 20.001 / 20.0);
        // Rate divides by the window length, not the sampled interval.
        assert_close(Rate.eval(&w(-2 * S, 40 * S), &[]), 2.0 * 35.0 / 20.0 / 42.0);
    }

    #[test]
    fn counter_zero_point_caps_start_extrapolation_but_not_end() {
        // 5, 10, 15 at 10s, 20s, 30s in (-100s, 100s]: half-interval
        // extrapolation (5s) on both sides; the zero point is 10s back,
        // farther than 5s, so it does not bind: 10 * 30/20.
        let all = vec![Sample::new(10 * S, 5.0), Sample::new(20 * S, 10.0), Sample::new(30 * S, 15.0)];
        let w = RangeWindow { samples: &all, eval_t: 100 * S, range_start: -100 * S, range_end: 100 * S };
        assert_close(Increase.eval(&w, &[]), 15.0);
        // Starting at 2: zero is 4s back (20 * 2/10), so 10 * (20+4+5)/20.
        let low = vec![Sample::new(10 * S, 2.0), Sample::new(20 * S, 7.0), Sample::new(30 * S, 12.0)];
        let w = RangeWindow { samples: &low, ..w };
        assert_close(Increase.eval(&w, &[]), 14.5);
        // delta ignores the zero point: 10 * 30/20.
        assert_close(Delta.eval(&w, &[]), 15.0);
        // A negative first value disables the cutoff for counters too.
        let neg = vec![Sample::new(10 * S, -2.0), Sample::new(20 * S, 3.0), Sample::new(30 * S, 8.0)];
        let w = RangeWindow { samples: &neg, ..w };
        assert_close(Increase.eval(&w, &[]), 15.0);
    }

    #[test]
    fn rate_of_samples_at_one_instant_is_unextrapolated() {
        // Two samples at the same time: sampled interval 0, factor 1.
        let all = vec![Sample::new(10 * S, 1.0), Sample::new(10 * S, 4.0)];
        let w = RangeWindow { samples: &all, eval_t: 20 * S, range_start: 0, range_end: 20 * S };
        assert_close(Delta.eval(&w, &[]), 3.0);
        assert_close(Rate.eval(&w, &[]), 3.0 / 20.0);
    }

    #[test]
    fn rate_propagates_nan_and_infinity() {
        let all = vec![Sample::new(10 * S, 1.0), Sample::new(20 * S, f64::NAN), Sample::new(30 * S, 3.0)];
        let w = RangeWindow { samples: &all, eval_t: 30 * S, range_start: 0, range_end: 30 * S };
        // NaN comparisons are false, so no reset is seen; the difference of
        // the ends is finite and the NaN in the middle does not show.
        assert_close(Increase.eval(&w, &[]), 3.0);
        let inf = vec![Sample::new(10 * S, 1.0), Sample::new(20 * S, f64::INFINITY)];
        let w = RangeWindow { samples: &inf, ..w };
        assert_eq!(Rate.eval(&w, &[]), Some(f64::INFINITY));
    }

    #[test]
    fn duration_seconds_match_go() {
        assert_eq!(duration_secs(901_000), 901.0);
        assert_eq!(duration_secs(1_500), 1.5);
        assert_eq!(duration_secs(10), 0.01);
        assert_eq!(duration_secs(123_456), 123.0 + 0.456);
    }

    // --- irate, idelta -----------------------------------------------------

    #[test]
    fn irate_uses_the_last_two_samples() {
        let foo = load_dense(5 * M, &series(0.0, 10.0, 10));
        let mut bar_v = series(0.0, 10.0, 5);
        bar_v.extend(series(0.0, 10.0, 5));
        let bar = load_dense(5 * M, &bar_v);
        assert_close(at(Irate, &foo, 50 * M, 50 * M), 0.03333333333333333);
        assert_close(at(Irate, &bar, 50 * M, 50 * M), 0.03333333333333333);
        // At 30m bar has just reset from 50 to 0: the increase is 0.
        assert_close(at(Irate, &foo, 30 * M, 50 * M), 0.03333333333333333);
        assert_eq!(at(Irate, &bar, 30 * M, 50 * M), Some(0.0));
    }

    #[test]
    fn irate_and_idelta_with_nan() {
        // http_requests_nan 1 NaN NaN 5 11, range 0..20m step 5m, [15m1s].
        let all = load_dense(5 * M, &[1.0, f64::NAN, f64::NAN, 5.0, 11.0]);
        let r = 15 * M + S;
        assert_eq!(at(Irate, &all, 0, r), None);
        for t in [5 * M, 10 * M, 15 * M] {
            assert!(at(Irate, &all, t, r).unwrap().is_nan());
            assert!(at(Idelta, &all, t, r).unwrap().is_nan());
        }
        assert_close(at(Irate, &all, 20 * M, r), 0.02);
        assert_close(at(Idelta, &all, 20 * M, r), 6.0);
    }

    #[test]
    fn idelta_is_the_plain_last_difference() {
        let foo = load_dense(5 * M, &[0.0, 50.0, 100.0, 150.0]);
        let bar = load_dense(5 * M, &[0.0, 50.0, 100.0, 50.0]);
        assert_close(at(Idelta, &foo, 20 * M, 20 * M), 50.0);
        assert_close(at(Idelta, &bar, 20 * M, 20 * M), -50.0);
    }

    #[test]
    fn irate_needs_two_samples_at_distinct_times() {
        let one = [Sample::new(S, 1.0)];
        let w = RangeWindow { samples: &one, eval_t: 2 * S, range_start: 0, range_end: 2 * S };
        assert_eq!(Irate.eval(&w, &[]), None);
        assert_eq!(Idelta.eval(&w, &[]), None);
        let same = [Sample::new(S, 1.0), Sample::new(S, 2.0)];
        let w = RangeWindow { samples: &same, ..w };
        assert_eq!(Irate.eval(&w, &[]), None);
        assert_eq!(Idelta.eval(&w, &[]), None);
    }

    // --- deriv, predict_linear ---------------------------------------------

    /// testcounter_reset_middle_total 0+10x4 0+10x5 (5m steps).
    fn reset_middle() -> Vec<Sample> {
        let mut v = series(0.0, 10.0, 4);
        v.extend(series(0.0, 10.0, 5));
        load_dense(5 * M, &v)
    }

    #[test]
    fn deriv_is_the_least_squares_slope() {
        let lin = load_dense(5 * M, &series(0.0, 80.0, 10));
        assert_close(at(Deriv, &lin, 50 * M, 50 * M), 0.26666666666666666);
        // All 11 samples: slope 105000 / 9900000.
        assert_close(at(Deriv, &reset_middle(), 50 * M, 100 * M), 0.010606060606060607);
    }

    #[test]
    fn deriv_of_constant_and_infinite_series() {
        let flat = load_dense(10 * S, &[3.5; 5]);
        assert_eq!(at(Deriv, &flat, 40 * S, M), Some(0.0));
        let inf = load_dense(10 * S, &[f64::INFINITY; 3]);
        assert!(at(Deriv, &inf, 20 * S, M).unwrap().is_nan());
        // http_requests_inf -Inf 0+80x10 Inf, deriv(…[100m]) at 100m.
        let mut v = vec![f64::NEG_INFINITY];
        v.extend(series(0.0, 80.0, 10));
        v.push(f64::INFINITY);
        let all = load_dense(5 * M, &v);
        assert!(at(Deriv, &all, 100 * M, 100 * M).unwrap().is_nan());
        assert!(eval_at(PredictLinear, &all, 100 * M, 100 * M, 0, &[6000.0]).unwrap().is_nan());
    }

    #[test]
    fn deriv_and_predict_linear_need_two_samples() {
        let one = [Sample::new(S, 1.0)];
        let w = RangeWindow { samples: &one, eval_t: 2 * S, range_start: 0, range_end: 2 * S };
        assert_eq!(Deriv.eval(&w, &[]), None);
        assert_eq!(PredictLinear.eval(&w, &[60.0]), None);
    }

    #[test]
    fn predict_linear_extrapolates_from_the_step_time() {
        let all = reset_middle();
        assert_close(eval_at(PredictLinear, &all, 50 * M, 50 * M, 0, &[3600.0]), 70.0);
        // With `@ 3000` the window is fixed at (-5m, 50m] but the intercept
        // follows the step time: 3000 s, 600 s and 4200 s, each + 3600 s.
        let w = |eval_t| RangeWindow { samples: &all, eval_t, range_start: -5 * M, range_end: 50 * M };
        assert_close(PredictLinear.eval(&w(50 * M), &[3600.0]), 76.81818181818181);
        assert_close(PredictLinear.eval(&w(10 * M), &[3600.0]), 51.36363636363637);
        assert_close(PredictLinear.eval(&w(70 * M), &[3600.0]), 89.54545454545455);
        // The regression's intercept at the step time itself.
        assert_close(PredictLinear.eval(&w(50 * M), &[0.0]), 38.63636363636364);
        assert_close(PredictLinear.eval(&w(0), &[0.0]), 6.818181818181818);
    }

    #[test]
    fn predict_linear_on_an_exact_line_hits_the_line() {
        let all = load_dense(5 * M, &series(0.0, 80.0, 10));
        // Value at 50m is 800, slope 80 per 300 s: 800 + 3600 * 80/300.
        assert_close(eval_at(PredictLinear, &all, 50 * M, 50 * M, 0, &[3600.0]), 1760.0);
    }

    // --- resets, changes ---------------------------------------------------

    fn opt(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().map(|&x| Some(x)).collect()
    }

    #[test]
    fn resets_counts_drops() {
        let foo = load(5 * M, &opt(&[1.0, 2.0, 3.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0]));
        let bar = load(5 * M, &opt(&[1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        let biz = load(5 * M, &opt(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]));
        // (45m, 50m] is empty: the last sample is at 45m.
        assert_eq!(at(Resets, &foo, 50 * M, 5 * M), None);
        for (range, want) in
            [(10 * M, [0.0, 0.0, 0.0]), (20 * M, [1.0, 0.0, 0.0]), (32 * M, [2.0, 1.0, 0.0]), (50 * M, [3.0, 1.0, 0.0])]
        {
            for (s, w) in [&foo, &bar, &biz].into_iter().zip(want) {
                assert_eq!(at(Resets, s, 50 * M, range), Some(w), "range {range}");
            }
        }
        // A single sample has no pair: zero resets, not "no result".
        assert_eq!(at(Resets, &foo, 50 * M, 6 * M), Some(0.0));
    }

    #[test]
    fn changes_counts_value_changes() {
        let foo = load(5 * M, &opt(&[1.0, 2.0, 3.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0]));
        let bar = load(5 * M, &opt(&[1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        let biz = load(5 * M, &opt(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]));
        assert_eq!(at(Changes, &foo, 50 * M, 5 * M), None);
        for (range, want) in
            [(6 * M, [0.0, 0.0, 0.0]), (20 * M, [2.0, 2.0, 0.0]), (30 * M, [3.0, 4.0, 0.0]), (50 * M, [7.0, 8.0, 1.0])]
        {
            for (s, w) in [&foo, &bar, &biz].into_iter().zip(want) {
                assert_eq!(at(Changes, s, 50 * M, range), Some(w), "range {range}");
            }
        }
    }

    #[test]
    fn changes_treats_nan_to_nan_as_no_change() {
        let b = load_dense(5 * M, &[f64::NAN, f64::NAN, f64::NAN]);
        let c = load_dense(5 * M, &[0.0, f64::NAN, 0.0]);
        assert_eq!(at(Changes, &b, 15 * M, 20 * M), Some(0.0));
        assert_eq!(at(Changes, &c, 15 * M, 20 * M), Some(2.0));
        // Nor is NaN after a number a reset.
        assert_eq!(at(Resets, &c, 15 * M, 20 * M), Some(0.0));
        // -0 and +0 are equal values.
        let z = load_dense(S, &[0.0, -0.0]);
        assert_eq!(at(Changes, &z, 2 * S, 5 * S), Some(0.0));
    }

    // --- avg, sum, count ---------------------------------------------------

    fn avg_of(v: &[f64]) -> Option<f64> {
        let all = load_dense(10 * S, v);
        at(AvgOverTime, &all, (v.len() as i64) * 10 * S, M * 100)
    }

    fn sum_of(v: &[f64]) -> Option<f64> {
        let all = load_dense(10 * S, v);
        at(SumOverTime, &all, (v.len() as i64) * 10 * S, M * 100)
    }

    #[test]
    fn avg_and_sum_over_time_basic() {
        let all = load_dense(10 * S, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(at(AvgOverTime, &all, 55 * S, 10 * S), None);
        assert_eq!(at(AvgOverTime, &all, 55 * S, 20 * S), Some(5.0));
        assert_eq!(at(AvgOverTime, &all, 55 * S, M), Some(3.0));
        assert_eq!(at(SumOverTime, &all, 55 * S, M), Some(15.0));
        assert_eq!(at(CountOverTime, &all, 55 * S, M), Some(5.0));
        assert_eq!(at(PresentOverTime, &all, 55 * S, M), Some(1.0));
    }

    #[test]
    fn avg_over_time_with_infinities_and_nan() {
        let (inf, ninf, nan) = (f64::INFINITY, f64::NEG_INFINITY, f64::NAN);
        assert_eq!(avg_of(&[1.0, 2.0, 3.0, 4.0, inf]), Some(inf));
        assert_eq!(avg_of(&[1.0, 2.0, 3.0, 4.0, ninf]), Some(ninf));
        assert!(avg_of(&[1.0, 2.0, 3.0, inf, ninf]).unwrap().is_nan());
        assert_eq!(avg_of(&[inf, 0.0, inf]), Some(inf));
        assert!(avg_of(&[inf, inf, inf, ninf]).unwrap().is_nan());
        assert_eq!(avg_of(&[1.0, 2.0, 3.0, ninf, ninf]), Some(ninf));
        assert_eq!(avg_of(&[ninf, 0.0, ninf]), Some(ninf));
        assert!(avg_of(&[ninf, ninf, ninf, inf]).unwrap().is_nan());
        assert!(avg_of(&[1.0, 2.0, ninf, ninf, inf]).unwrap().is_nan());
        assert!(avg_of(&[1.0, 2.0, 3.0, nan, nan]).unwrap().is_nan());
        assert_eq!(sum_of(&[1.0, 2.0, 3.0, 4.0, inf]), Some(inf));
        assert!(sum_of(&[1.0, 2.0, 3.0, inf, ninf]).unwrap().is_nan());
        assert!(sum_of(&[1.0, nan]).unwrap().is_nan());
    }

    #[test]
    fn avg_over_time_survives_sum_overflow() {
        let big = 9.988_465_674_311_58e307;
        // The sum overflows; the incremental mean does not.
        assert_eq!(avg_of(&[big, big]), Some(big));
        assert_eq!(sum_of(&[big, big]), Some(f64::INFINITY));
        assert_eq!(avg_of(&[-big, -big, -big]), Some(-big));
        assert_eq!(avg_of(&[-big, big]), Some(0.0));
    }

    #[test]
    fn avg_and_sum_over_time_compensate_cancellation() {
        assert_eq!(sum_of(&[1.0, 1e100, 1.0, -1e100]), Some(2.0));
        assert_eq!(avg_of(&[1.0, 1e100, 1.0, -1e100]), Some(0.5));
        // foo 52+0x100: the direct mean is exactly 52 for any count.
        for n in [10, 11, 12, 13] {
            assert_eq!(avg_of(&vec![52.0; n]), Some(52.0));
        }
    }

    #[test]
    fn avg_over_time_extreme_magnitudes() {
        // Expectations from upstream functions.test ("More tests for
        // extreme values"), checked to 1e-12 rather than 1e-6.
        let cases: [(&[f64], f64); 9] = [
            (&[1e10, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6], 1.6666666666666675e9),
            (
                &[
                    5.30921651659898,
                    0.961118537914768,
                    1.62091361305318,
                    0.865089463758091,
                    0.323055185914577,
                    0.951811357687154,
                ],
                1.67186744582113,
            ),
            (&[1.78264e50, 0.76342771, 1.9592258, 7.69805412, 458.90154], 3.56528e49),
            (&[0.76342771, 1.9592258, 7.69805412, 1.78264e50, 458.90154], 3.56528e49),
            (&[1.78264e50, 0.76342771, 1.9592258, 2.258e220, 7.69805412, 458.90154], 3.76333333333333e219),
            (&[-1.78264e50, 0.76342771, 1.9592258, -2.258e220, 7.69805412, -458.90154], -3.76333333333333e219),
            (&[-1.78264e215, 0.76342771, 1.9592258, 2.258e220, 7.69805412, -458.90154], 3.76330362266667e219),
            (
                &[-1.78264e215, 0.76342771, 1.9592258, 2.258e220, 7.69805412, 1.78264e215, -458.90154],
                3.225714285714286e219,
            ),
            (
                &[
                    -1.78264e219,
                    0.76342771,
                    1.9592258,
                    2.3757689e217,
                    -2.3757689e217,
                    2.258e220,
                    7.69805412,
                    1.78264e219,
                    -458.90154,
                ],
                2.5088888888888888e219,
            ),
        ];
        for (v, want) in cases {
            let got = avg_of(v).unwrap();
            // Several expectations are given to 15 digits only.
            assert!(((got - want) / want).abs() < 1e-13, "{v:?}: got {got:e}, want {want:e}");
        }
        // Kahan summation cannot rescue this one; Prometheus documents 0.
        let v = [
            -2.258e220,
            -1.78264e219,
            0.76342771,
            1.9592258,
            2.3757689e217,
            -2.3757689e217,
            2.258e220,
            7.69805412,
            1.78264e219,
            -458.90154,
        ];
        assert_eq!(avg_of(&v), Some(0.0));
    }

    #[test]
    fn sum_over_time_of_dense_samples() {
        // metric 1+0x4000 at 1ms steps: sum_over_time(…[Nms]) at 4s = N.
        let all = load_dense(1, &[1.0; 4001]);
        for n in [1000, 1001, 1003, 2002, 3003] {
            assert_eq!(at(SumOverTime, &all, 4 * S, n), Some(n as f64));
            assert_eq!(at(CountOverTime, &all, 4 * S, n), Some(n as f64));
        }
    }

    // --- min, max, first, last and their timestamps ------------------------

    #[test]
    fn min_and_max_over_time_replace_nan() {
        let nan = f64::NAN;
        let cases: [([f64; 3], f64, f64); 5] = [
            ([2.0, 0.0, 3.0], 0.0, 3.0),
            ([2.0, 0.0, nan], 0.0, 2.0),
            ([2.0, nan, 1.0], 1.0, 2.0),
            ([nan, 0.0, 1.0], 0.0, 1.0),
            ([nan, nan, nan], nan, nan),
        ];
        for (v, min, max) in cases {
            let all = load_dense(10 * S, &v);
            assert_close(at(MinOverTime, &all, M, 2 * M), min);
            assert_close(at(MaxOverTime, &all, M, 2 * M), max);
        }
        let sparse = load(10 * S, &[None, Some(5.0), Some(2.0), None, Some(4.0), None]);
        assert_eq!(at(MinOverTime, &sparse, M, 2 * M), Some(2.0));
        assert_eq!(at(MaxOverTime, &sparse, M, 2 * M), Some(5.0));
        let inf = load_dense(S, &[f64::NEG_INFINITY, f64::INFINITY]);
        assert_eq!(at(MinOverTime, &inf, 2 * S, M), Some(f64::NEG_INFINITY));
        assert_eq!(at(MaxOverTime, &inf, 2 * S, M), Some(f64::INFINITY));
    }

    #[test]
    fn first_and_last_over_time() {
        let nan = f64::NAN;
        let cases: [([f64; 3], f64, f64); 4] = [
            ([2.0, 0.0, 3.0], 2.0, 3.0),
            ([2.0, 0.0, nan], 2.0, nan),
            ([nan, 0.0, 1.0], nan, 1.0),
            ([nan; 3], nan, nan),
        ];
        for (v, first, last) in cases {
            let all = load_dense(10 * S, &v);
            assert_close(at(FirstOverTime, &all, M, 2 * M), first);
            assert_close(at(LastOverTime, &all, M, 2 * M), last);
        }
        let sparse = load(10 * S, &[None, Some(5.0), Some(2.0), None, Some(4.0), None]);
        assert_eq!(at(FirstOverTime, &sparse, M, 2 * M), Some(5.0));
        assert_eq!(at(LastOverTime, &sparse, M, 2 * M), Some(4.0));
    }

    #[test]
    fn ts_of_min_and_max_over_time() {
        // load 10s53ms: metric 1 2 3 0 5 6 2 1 4, at 90s over [90s].
        let all = load_dense(10_053, &[1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 2.0, 1.0, 4.0]);
        assert_eq!(at(TsOfMinOverTime, &all, 90 * S, 90 * S), Some(30.159));
        assert_eq!(at(TsOfMaxOverTime, &all, 90 * S, 90 * S), Some(50.265));
    }

    #[test]
    fn ts_of_min_and_max_pick_the_last_of_ties_and_skip_nan() {
        let v = |vals: &[f64]| load_dense(S, vals);
        let nan = f64::NAN;
        // Ties: the later sample wins (`>=` / `<=`), unlike the value
        // functions where it does not matter.
        assert_eq!(at(TsOfMaxOverTime, &v(&[1.0, 3.0, 3.0, 2.0]), 10 * S, M), Some(2.0));
        assert_eq!(at(TsOfMinOverTime, &v(&[1.0, 0.0, 5.0, 0.0]), 10 * S, M), Some(3.0));
        // A NaN best is replaced by the next sample, NaN or not; a NaN never
        // displaces a number.
        assert_eq!(at(TsOfMaxOverTime, &v(&[nan, 1.0, nan]), 10 * S, M), Some(1.0));
        assert_eq!(at(TsOfMinOverTime, &v(&[nan, 1.0, nan]), 10 * S, M), Some(1.0));
        assert_eq!(at(TsOfMaxOverTime, &v(&[nan, nan, nan]), 10 * S, M), Some(2.0));
        assert_eq!(at(TsOfMinOverTime, &v(&[nan, nan]), 10 * S, M), Some(1.0));
        assert_eq!(at(TsOfMaxOverTime, &v(&[7.0]), 10 * S, M), Some(0.0));
    }

    #[test]
    fn ts_of_first_and_last_over_time() {
        // load 10s53ms: metric _ _ 1 2 3 _ _ (first); metric 1 2 3 (last).
        let first = load(10_053, &[None, None, Some(1.0), Some(2.0), Some(3.0), None, None]);
        assert_eq!(at(TsOfFirstOverTime, &first, 90 * S, 90 * S), Some(20.106));
        assert_eq!(at(TsOfFirstOverTime, &first, 95 * S, 90 * S), Some(20.106));
        assert_eq!(at(TsOfFirstOverTime, &first, 15 * S, 90 * S), None);
        let last = load(10_053, &[Some(1.0), Some(2.0), Some(3.0), None, None]);
        assert_eq!(at(TsOfLastOverTime, &last, 90 * S, 90 * S), Some(20.106));
        assert_eq!(at(TsOfLastOverTime, &last, 95 * S, 90 * S), Some(20.106));
        // Before 1970: the first timestamp is exact, the last one is
        // clamped to 0 as Prometheus does (see `eval`).
        let neg = [Sample::new(-2_500, 1.0), Sample::new(-1_500, 1.0)];
        let w = RangeWindow { samples: &neg, eval_t: 0, range_start: -M, range_end: 0 };
        assert_eq!(TsOfFirstOverTime.eval(&w, &[]), Some(-2.5));
        assert_eq!(TsOfLastOverTime.eval(&w, &[]), Some(0.0));
    }

    // --- stddev, stdvar ----------------------------------------------------

    #[test]
    fn stdvar_and_stddev_over_time() {
        let all = load_dense(10 * S, &[0.0, 8.0, 8.0, 2.0, 3.0]);
        assert_close(at(StdvarOverTime, &all, M, 2 * M), 10.56);
        assert_close(at(StddevOverTime, &all, M, 2 * M), 10.56f64.sqrt());
        assert!((at(StddevOverTime, &all, M, 2 * M).unwrap() - 3.249615).abs() < 1e-6);
    }

    #[test]
    fn stdvar_of_constant_series_is_exactly_zero() {
        let all = load_dense(10 * S, &[1.5990505637277868; 3]);
        assert_eq!(at(StdvarOverTime, &all, 55 * S, M), Some(0.0));
        assert_eq!(at(StddevOverTime, &all, 55 * S, M), Some(0.0));
        let one = load_dense(10 * S, &[42.0]);
        assert_eq!(at(StdvarOverTime, &one, 0, M), Some(0.0));
    }

    #[test]
    fn stdvar_with_nan_and_infinity_is_nan() {
        let nan = load_dense(S, &[1.0, f64::NAN, 2.0]);
        assert!(at(StdvarOverTime, &nan, 5 * S, M).unwrap().is_nan());
        let inf = load_dense(S, &[1.0, f64::INFINITY]);
        assert!(at(StddevOverTime, &inf, 5 * S, M).unwrap().is_nan());
    }

    // --- quantile, mad (their arithmetic is `functions::quantile`) --------

    #[test]
    fn quantile_over_time_interpolates_between_ranks() {
        let two = load_dense(10 * S, &[0.0, 1.0]);
        let three = load_dense(10 * S, &[0.0, 1.0, 2.0]);
        let uneven = load_dense(10 * S, &[0.0, 1.0, 4.0]);
        let q = |all: &[Sample], phi: f64| eval_at(QuantileOverTime, all, M, 2 * M, 0, &[phi]);
        for (phi, want) in [
            (0.0, [0.0, 0.0, 0.0]),
            (0.5, [0.5, 1.0, 1.0]),
            (0.75, [0.75, 1.5, 2.5]),
            (0.8, [0.8, 1.6, 2.8]),
            (1.0, [1.0, 2.0, 4.0]),
            (-1.0, [f64::NEG_INFINITY; 3]),
            (2.0, [f64::INFINITY; 3]),
        ] {
            for (all, w) in [&two, &three, &uneven].into_iter().zip(want) {
                assert_close(q(all, phi), w);
            }
        }
        assert!(q(&three, f64::NAN).unwrap().is_nan());
        // NaN samples sort below every number.
        let nan = load_dense(10 * S, &[2.0, f64::NAN, 1.0]);
        assert!(q(&nan, 0.0).unwrap().is_nan());
        assert_eq!(q(&nan, 1.0), Some(2.0));
        // The window's samples are left untouched (a scratch copy is sorted).
        let unsorted = load_dense(10 * S, &[3.0, 1.0, 2.0]);
        assert_eq!(q(&unsorted, 0.5), Some(2.0));
        assert_eq!(unsorted[0].v, 3.0);
    }

    #[test]
    fn mad_over_time_is_the_median_absolute_deviation() {
        // Upstream: metric 4 6 2 1 999 1 2 at 70s over [70s] sees 6 2 1 999
        // 1 2: median 2, deviations 4 0 1 997 1 0, their median 1.
        let all = load_dense(10 * S, &[4.0, 6.0, 2.0, 1.0, 999.0, 1.0, 2.0]);
        assert_eq!(at(MadOverTime, &all, 70 * S, 70 * S), Some(1.0));
        let odd = load_dense(10 * S, &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(at(MadOverTime, &odd, 40 * S, 50 * S), Some(1.0));
        let equal = load_dense(10 * S, &[7.0; 5]);
        assert_eq!(at(MadOverTime, &equal, 40 * S, 50 * S), Some(0.0));
        let single = load_dense(10 * S, &[5.0]);
        assert_eq!(at(MadOverTime, &single, 0, 10 * S), Some(0.0));
        // A NaN makes the median undefined.
        let nan = load_dense(10 * S, &[1.0, 2.0, f64::NAN, 4.0]);
        assert!(at(MadOverTime, &nan, 30 * S, 40 * S).unwrap().is_nan());
        // An infinite sample: Prometheus' interpolation computes the median
        // of [1, 2, Inf] as 2·1 + Inf·0 = NaN, so the result is NaN too.
        let inf = load_dense(10 * S, &[1.0, 2.0, f64::INFINITY]);
        assert!(at(MadOverTime, &inf, 20 * S, M).unwrap().is_nan());
    }

    // --- double_exponential_smoothing ---------------------------------------

    #[test]
    fn double_exponential_smoothing_by_hand() {
        // 1, 3, 4 with sf = tf = 0.5: level 1, trend 2; step 1: 0.5*3 +
        // 0.5*(1+2) = 3; step 2: trend 0.5*(3-1) + 0.5*2 = 2, level
        // 0.5*4 + 0.5*(3+2) = 4.5.
        let all = load_dense(S, &[1.0, 3.0, 4.0]);
        assert_eq!(eval_at(DoubleExponentialSmoothing, &all, 2 * S, M, 0, &[0.5, 0.5]), Some(4.5));
        let one = load_dense(S, &[1.0]);
        assert_eq!(eval_at(DoubleExponentialSmoothing, &one, 2 * S, M, 0, &[0.5, 0.5]), None);
    }

    #[test]
    fn double_exponential_smoothing_follows_linear_trends() {
        // Upstream: 0+10x1000 etc. (10s steps) at 8000s over [1m], sf 0.01,
        // tf 0.1: a perfectly linear series is reproduced.
        for (a, b, want) in [(0.0, 10.0, 8000.0), (0.0, 20.0, 16000.0), (0.0, 40.0, 32000.0), (0.0, -20.0, -16000.0)] {
            let all = load_dense(10 * S, &series(a, b, 1000));
            let got = eval_at(DoubleExponentialSmoothing, &all, 8000 * S, M, 0, &[0.01, 0.1]).unwrap();
            assert!(((got - want) / want).abs() < 1e-9, "got {got}, want {want}");
        }
        let down = load_dense(10 * S, &series(8000.0, -10.0, 1000));
        let got = eval_at(DoubleExponentialSmoothing, &down, 8000 * S, M, 0, &[0.01, 0.1]).unwrap();
        assert!(got.abs() < 1e-6, "got {got}");
    }

    #[test]
    fn smoothing_factors_are_validated_with_prometheus_messages() {
        assert_eq!(validate_smoothing_args(0.5, 0.5), Ok(()));
        assert_eq!(
            validate_smoothing_args(1.0, 0.5),
            Err("invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000".to_string())
        );
        assert_eq!(
            validate_smoothing_args(0.0, 0.5),
            Err("invalid smoothing factor. Expected: 0 < sf < 1, got: 0.000000".to_string())
        );
        assert_eq!(
            validate_smoothing_args(-0.25, 2.0),
            Err("invalid smoothing factor. Expected: 0 < sf < 1, got: -0.250000".to_string())
        );
        assert_eq!(
            validate_smoothing_args(0.5, 0.0),
            Err("invalid trend factor. Expected: 0 < tf < 1, got: 0.000000".to_string())
        );
        assert_eq!(
            validate_smoothing_args(0.5, f64::INFINITY),
            Err("invalid trend factor. Expected: 0 < tf < 1, got: +Inf".to_string())
        );
        assert_eq!(
            validate_smoothing_args(f64::NEG_INFINITY, 0.5),
            Err("invalid smoothing factor. Expected: 0 < sf < 1, got: -Inf".to_string())
        );
        // NaN slips through every comparison, as in Prometheus.
        assert_eq!(validate_smoothing_args(f64::NAN, f64::NAN), Ok(()));
    }

    proptest::proptest! {
        /// Every window's `rate`/`increase` from the series' reset list is
        /// bit-for-bit the value of scanning the window.
        #[test]
        fn resets_from_the_list_equal_a_scan(
            values in proptest::collection::vec(
                proptest::prop_oneof![8 => 0.0..1e6f64, 1 => proptest::strategy::Just(f64::NAN), 1 => proptest::strategy::Just(0.0)],
                2..60,
            ),
            gaps in proptest::collection::vec(1i64..40_000, 60),
            range in 1i64..400_000,
        ) {
            let mut t = 0;
            let all: Vec<Sample> = values.iter().zip(&gaps).map(|(&v, &g)| { t += g; Sample::new(t, v) }).collect();
            let mut resets = Vec::new();
            counter_resets(&all, &mut resets);
            for f in [Rate, Increase] {
                for eval_t in (0..t + range).step_by(7_001) {
                    let (range_start, range_end) = (eval_t - range, eval_t);
                    let lo = all.partition_point(|s| s.t <= range_start);
                    let hi = all.partition_point(|s| s.t <= range_end);
                    if lo >= hi {
                        continue;
                    }
                    let w = RangeWindow { samples: &all[lo..hi], eval_t, range_start, range_end };
                    let inside = resets.iter().filter(|r| r.0 > lo && r.0 < hi).map(|r| r.1);
                    let a = f.eval(&w, &[]).map(f64::to_bits);
                    let b = f.eval_with_resets(&w, inside).map(f64::to_bits);
                    proptest::prop_assert_eq!(a, b);
                }
            }
        }
    }
}

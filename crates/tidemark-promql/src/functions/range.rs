//! Functions over a range vector window (`rate`, `*_over_time`, …).

use tidemark_storage::Sample;

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
    pub(crate) fn eval(self, w: &RangeWindow<'_>, args: &[f64]) -> Option<f64> {
        let _ = (w, args);
        None
    }
}

/// Checks `double_exponential_smoothing`'s smoothing and trend factors.
pub(crate) fn validate_smoothing_args(sf: f64, tf: f64) -> Result<(), String> {
    if !(sf > 0.0 && sf < 1.0) {
        return Err(format!("invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"));
    }
    if !(tf > 0.0 && tf < 1.0) {
        return Err(format!("invalid trend factor. Expected: 0 < tf < 1, got: {tf}"));
    }
    Ok(())
}

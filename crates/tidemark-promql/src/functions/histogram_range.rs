//! Range functions over windows that hold native histograms (alone or
//! mixed with floats), as Prometheus' `promql/functions.go` treats them:
//!
//! - `rate`, `increase`, `delta` extrapolate a histogram difference (with
//!   counter-reset correction for the first two); `irate`, `idelta` take
//!   the last two samples; all give a gauge histogram, compacted.
//! - `sum_over_time`, `avg_over_time` add histograms (Kahan-compensated;
//!   the mean switches to an incremental form when the sum overflows).
//! - `resets`, `changes`, `count_over_time`, `present_over_time`,
//!   `last_over_time`, `first_over_time`, `ts_of_last/first_over_time`
//!   look at floats and histograms together.
//! - The float-only functions (`min/max/stddev/stdvar/quantile/mad_over_time`,
//!   `ts_of_min/max_over_time`, `deriv`, `predict_linear`,
//!   `double_exponential_smoothing`) ignore the histograms and say so.
//!
//! A window that mixes floats and histograms where the function needs one
//! kind gives nothing and a warning. Annotations are returned as [`Note`]s;
//! the evaluator renders them with the series' metric name and position.

use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, HistogramOpError};
use tidemark_storage::Sample;

use super::range::{RangeFunction, RangeWindow};
use crate::value::HistogramPoint;

/// The operation during which histograms were combined, as Prometheus
/// names it in its annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistOp {
    /// "addition".
    Add,
    /// "subtraction".
    Sub,
    /// "aggregation" (`sum_over_time`, `avg_over_time`).
    Agg,
}

impl HistOp {
    fn name(self) -> &'static str {
        match self {
            HistOp::Add => "addition",
            HistOp::Sub => "subtraction",
            HistOp::Agg => "aggregation",
        }
    }
}

/// An annotation a range function raises about one series' window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    /// Warning: the window mixes floats and histograms where the function
    /// needs one kind.
    MixedFloatsHistograms,
    /// Warning: a counter function saw a gauge histogram.
    NotCounter,
    /// Warning: a gauge function saw a counter histogram.
    NotGauge,
    /// Warning: exponential and custom-bucket histograms were mixed.
    MixedExponentialCustom,
    /// Info: custom buckets with different bounds were reconciled.
    MismatchedCustomBuckets(HistOp),
    /// Warning: `CounterReset` and `NotCounterReset` hints were combined.
    CounterResetCollision(HistOp),
    /// Info: the function read the floats only and ignored histograms.
    IgnoredInMixedRange,
}

impl Note {
    /// Whether this is a warning (else an info).
    pub(crate) fn is_warning(self) -> bool {
        !matches!(self, Note::MismatchedCustomBuckets(_) | Note::IgnoredInMixedRange)
    }

    /// Prometheus' message for this note about series `metric`.
    pub(crate) fn message(self, metric: &str) -> String {
        match self {
            Note::MixedFloatsHistograms => {
                format!("encountered a mix of histograms and floats for metric name {metric:?}")
            }
            Note::NotCounter => format!("this native histogram metric is not a counter: {metric:?}"),
            Note::NotGauge => format!("this native histogram metric is not a gauge: {metric:?}"),
            Note::MixedExponentialCustom => format!(
                "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
            ),
            Note::MismatchedCustomBuckets(op) => format!("mismatched custom buckets were reconciled during {}", op.name()),
            Note::CounterResetCollision(op) => format!("conflicting counter resets during histogram {}", op.name()),
            Note::IgnoredInMixedRange => format!(
                "ignored histograms in a range containing both floats and histograms for metric name {metric:?}"
            ),
        }
    }
}

/// The notes raised while evaluating the windows of one series, each once.
#[derive(Debug, Default)]
pub(crate) struct Notes(Vec<Note>);

impl Notes {
    /// Adds `n` unless it is already there.
    pub(crate) fn add(&mut self, n: Note) {
        if !self.0.contains(&n) {
            self.0.push(n);
        }
    }

    /// The notes, in the order first raised.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Note> + '_ {
        self.0.iter().copied()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One window of a series holding histograms: its floats and histograms
/// (each oldest first, staleness markers removed) and the window's times
/// (see [`RangeWindow`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MixedWindow<'a> {
    /// Float samples in the window.
    pub(crate) floats: &'a [Sample],
    /// Histogram samples in the window.
    pub(crate) histograms: &'a [HistogramPoint],
    /// The step's evaluation time (see [`RangeWindow::eval_t`]).
    pub(crate) eval_t: i64,
    /// Exclusive start of the window.
    pub(crate) range_start: i64,
    /// Inclusive end of the window.
    pub(crate) range_end: i64,
}

/// A range function's value at one step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MixedValue {
    /// A float.
    Float(f64),
    /// A histogram.
    Histogram(FloatHistogram),
}

/// Records what a failed histogram operation means (only a schema mix has
/// an annotation; Prometheus never sees invalid histograms).
fn op_failed(e: HistogramOpError, notes: &mut Notes) {
    if e == HistogramOpError::IncompatibleSchema {
        notes.add(Note::MixedExponentialCustom);
    }
}

impl RangeFunction {
    /// Evaluates the function on a window that may hold histograms. With
    /// no histogram in the window this is [`RangeFunction::eval`]. `None`
    /// means no output at this step.
    pub(crate) fn eval_mixed(self, w: &MixedWindow<'_>, args: &[f64], notes: &mut Notes) -> Option<MixedValue> {
        use RangeFunction::*;
        let fw =
            RangeWindow { samples: w.floats, eval_t: w.eval_t, range_start: w.range_start, range_end: w.range_end };
        let (floats, hists) = (w.floats, w.histograms);
        if hists.is_empty() {
            return self.eval(&fw, args).map(MixedValue::Float);
        }
        let float = |v: Option<f64>| v.map(MixedValue::Float);
        match self {
            Rate | Increase | Delta => {
                if !floats.is_empty() {
                    notes.add(Note::MixedFloatsHistograms);
                    return None;
                }
                let is_counter = self != Delta;
                histogram_extrapolated_rate(w, is_counter, self == Rate, notes).map(MixedValue::Histogram)
            }
            Irate | Idelta => histogram_instant_value(floats, hists, self == Irate, notes),
            Resets | Changes => Some(MixedValue::Float(count_transitions(floats, hists, self == Resets))),
            CountOverTime => Some(MixedValue::Float((floats.len() + hists.len()) as f64)),
            PresentOverTime => Some(MixedValue::Float(1.0)),
            LastOverTime => {
                let h = hists.last()?;
                match floats.last() {
                    Some(f) if h.t < f.t => Some(MixedValue::Float(f.v)),
                    _ => Some(MixedValue::Histogram(h.h.clone())),
                }
            }
            FirstOverTime => {
                let h = hists.first()?;
                match floats.first() {
                    Some(f) if f.t < h.t => Some(MixedValue::Float(f.v)),
                    _ => Some(MixedValue::Histogram(h.h.clone())),
                }
            }
            TsOfLastOverTime => {
                // Prometheus takes 0 for a kind that is missing.
                let tf = floats.last().map_or(0, |p| p.t);
                let th = hists.last().map_or(0, |h| h.t);
                Some(MixedValue::Float(tf.max(th) as f64 / 1000.0))
            }
            TsOfFirstOverTime => {
                let tf = floats.first().map_or(i64::MAX, |p| p.t);
                let th = hists.first().map_or(i64::MAX, |h| h.t);
                Some(MixedValue::Float(tf.min(th) as f64 / 1000.0))
            }
            SumOverTime | AvgOverTime => {
                if !floats.is_empty() {
                    notes.add(Note::MixedFloatsHistograms);
                    return None;
                }
                let r = if self == SumOverTime { histogram_sum(hists, notes) } else { histogram_avg(hists, notes) };
                match r {
                    Ok(h) => Some(MixedValue::Histogram(h)),
                    Err(e) => {
                        op_failed(e, notes);
                        None
                    }
                }
            }
            MinOverTime | MaxOverTime | TsOfMinOverTime | TsOfMaxOverTime | QuantileOverTime | StddevOverTime
            | StdvarOverTime | MadOverTime => {
                if floats.is_empty() {
                    return None;
                }
                notes.add(Note::IgnoredInMixedRange);
                float(self.eval(&fw, args))
            }
            Deriv | PredictLinear | DoubleExponentialSmoothing => {
                match floats.len() {
                    0 => return None,
                    1 => {
                        notes.add(Note::IgnoredInMixedRange);
                        return None;
                    }
                    _ => {}
                }
                let v = self.eval(&fw, args);
                notes.add(Note::IgnoredInMixedRange);
                float(v)
            }
        }
    }
}

/// `resets` (a kind change counts as a reset) or `changes` (a kind change
/// counts as a change) over floats and histograms in time order.
fn count_transitions(floats: &[Sample], hists: &[HistogramPoint], resets: bool) -> f64 {
    enum Cur<'a> {
        F(f64),
        H(&'a FloatHistogram),
    }
    let (mut i, mut j) = (0, 0);
    let mut prev: Option<Cur<'_>> = None;
    let mut n = 0usize;
    while i < floats.len() || j < hists.len() {
        let cur = if j >= hists.len() || (i < floats.len() && floats[i].t < hists[j].t) {
            i += 1;
            Cur::F(floats[i - 1].v)
        } else {
            j += 1;
            Cur::H(&hists[j - 1].h)
        };
        if let Some(p) = &prev {
            let hit = match (p, &cur) {
                (Cur::F(a), Cur::F(b)) => {
                    if resets {
                        b < a
                    } else {
                        b != a && !(a.is_nan() && b.is_nan())
                    }
                }
                (Cur::H(a), Cur::H(b)) => {
                    if resets {
                        b.detect_reset(a)
                    } else {
                        !b.equals(a)
                    }
                }
                _ => true,
            };
            if hit {
                n += 1;
            }
        }
        prev = Some(cur);
    }
    n as f64
}

/// `rate`, `increase`, `delta` of a window of histograms only (Prometheus'
/// `extrapolatedRate` with `histogramRate`).
fn histogram_extrapolated_rate(
    w: &MixedWindow<'_>,
    is_counter: bool,
    is_rate: bool,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let hs = w.histograms;
    if hs.len() < 2 {
        return None;
    }
    let mut result = histogram_rate(hs, is_counter, notes)?;
    let (first, last) = (&hs[0], &hs[hs.len() - 1]);
    let secs = |later: i64, earlier: i64| later.wrapping_sub(earlier) as f64 / 1000.0;
    let mut to_start = secs(first.t, w.range_start);
    let mut to_end = secs(w.range_end, last.t);
    let sampled = secs(last.t, first.t);
    let average = sampled / (hs.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if is_counter {
        let mut to_zero = to_start;
        if result.count > 0.0 && first.h.count >= 0.0 {
            to_zero = sampled * (first.h.count / result.count);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = 1.0;
    if sampled != 0.0 {
        factor = (sampled + to_start + to_end) / sampled;
    }
    if is_rate {
        let ms = w.range_end.wrapping_sub(w.range_start);
        factor /= (ms / 1000) as f64 + ((ms % 1000) * 1_000_000) as f64 / 1e9;
    }
    result.mul(factor);
    Some(result)
}

/// The difference between the last and first histogram, corrected for
/// counter resets if `is_counter` (Prometheus' `histogramRate`); a gauge
/// histogram, compacted. `None` (with a note) if the histograms cannot be
/// combined.
fn histogram_rate(points: &[HistogramPoint], is_counter: bool, notes: &mut Notes) -> Option<FloatHistogram> {
    let last = &points[points.len() - 1].h;
    let mut prev = &points[0].h;
    let mut custom = prev.uses_custom_buckets();
    if is_counter
        && (prev.counter_reset_hint == CounterResetHint::Gauge || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        notes.add(Note::NotCounter);
    }
    // A reset between the first two samples: the first one does not count
    // (its bucket layout may be anything).
    let empty;
    if is_counter {
        let second = &points[1].h;
        if second.detect_reset(prev) {
            empty = FloatHistogram {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..FloatHistogram::default()
            };
            prev = &empty;
            custom = second.uses_custom_buckets();
        }
    }
    if last.uses_custom_buckets() != custom {
        notes.add(Note::MixedExponentialCustom);
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    if is_counter {
        for p in &points[1..points.len() - 1] {
            if p.h.counter_reset_hint == CounterResetHint::Gauge {
                notes.add(Note::NotCounter);
            }
            min_schema = min_schema.min(p.h.schema);
            if p.h.uses_custom_buckets() != custom {
                notes.add(Note::MixedExponentialCustom);
                return None;
            }
        }
    }
    let mut h = match last.copy_to_schema(min_schema) {
        Ok(h) => h,
        Err(e) => {
            op_failed(e, notes);
            return None;
        }
    };
    match h.sub(prev) {
        Ok(o) => {
            if o.nhcb_bounds_reconciled {
                notes.add(Note::MismatchedCustomBuckets(HistOp::Sub));
            }
        }
        Err(HistogramOpError::IncompatibleSchema) => {
            notes.add(Note::MixedExponentialCustom);
            return None;
        }
        Err(_) => {}
    }
    if is_counter {
        for p in &points[1..] {
            if p.h.detect_reset(prev) {
                match h.add(prev) {
                    Ok(o) => {
                        if o.nhcb_bounds_reconciled {
                            notes.add(Note::MismatchedCustomBuckets(HistOp::Add));
                        }
                    }
                    Err(HistogramOpError::IncompatibleSchema) => {
                        notes.add(Note::MixedExponentialCustom);
                        return None;
                    }
                    Err(_) => {}
                }
            }
            prev = &p.h;
        }
    } else if points[0].h.counter_reset_hint != CounterResetHint::Gauge
        || last.counter_reset_hint != CounterResetHint::Gauge
    {
        notes.add(Note::NotGauge);
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact(0);
    Some(h)
}

/// `irate` / `idelta` of a window holding histograms (Prometheus'
/// `instantValue`): the last two samples of either kind.
fn histogram_instant_value(
    floats: &[Sample],
    hists: &[HistogramPoint],
    is_rate: bool,
    notes: &mut Notes,
) -> Option<MixedValue> {
    if floats.len() + hists.len() < 2 {
        return None;
    }
    #[derive(Clone, Copy)]
    enum P<'a> {
        F(i64, f64),
        H(i64, &'a FloatHistogram),
    }
    let t_of = |p: &P<'_>| match p {
        P::F(t, _) | P::H(t, _) => *t,
    };
    let mut ss: Vec<P<'_>> = floats[floats.len().saturating_sub(2)..].iter().map(|p| P::F(p.t, p.v)).collect();
    for h in &hists[hists.len().saturating_sub(2)..] {
        let s = P::H(h.t, &h.h);
        match ss.len() {
            0 => ss.push(s),
            1 => {
                if h.t < t_of(&ss[0]) {
                    ss.insert(0, s);
                } else {
                    ss.push(s);
                }
            }
            _ => {
                if h.t < t_of(&ss[0]) {
                } else if h.t > t_of(&ss[1]) {
                    ss[0] = ss[1];
                    ss[1] = s;
                } else {
                    ss[0] = s;
                }
            }
        }
    }
    let (a, b) = (ss[0], ss[1]);
    let interval = t_of(&b).wrapping_sub(t_of(&a));
    if interval == 0 {
        return None;
    }
    let per_sec = interval as f64 / 1000.0;
    match (a, b) {
        (P::F(_, x), P::F(_, y)) => {
            let mut v = y;
            if !is_rate || y >= x || x.is_nan() || y.is_nan() {
                v = y - x;
            }
            if is_rate {
                v /= per_sec;
            }
            Some(MixedValue::Float(v))
        }
        (P::H(_, x), P::H(_, y)) => {
            let mut r = y.clone();
            let gauge = |h: &FloatHistogram| h.counter_reset_hint == CounterResetHint::Gauge;
            if is_rate && (gauge(y) || gauge(x)) {
                notes.add(Note::NotCounter);
            }
            if !is_rate && (!gauge(y) || !gauge(x)) {
                notes.add(Note::NotGauge);
            }
            if !is_rate || !y.detect_reset(x) {
                match r.sub(x) {
                    Ok(o) => {
                        if o.nhcb_bounds_reconciled {
                            notes.add(Note::MismatchedCustomBuckets(HistOp::Sub));
                        }
                    }
                    Err(HistogramOpError::IncompatibleSchema) => {
                        notes.add(Note::MixedExponentialCustom);
                        return None;
                    }
                    Err(_) => {}
                }
            }
            r.counter_reset_hint = CounterResetHint::Gauge;
            r.compact(0);
            if is_rate {
                r.div(per_sec);
            }
            Some(MixedValue::Histogram(r))
        }
        _ => {
            notes.add(Note::MixedFloatsHistograms);
            None
        }
    }
}

/// Notes a collision of counter-reset hints over `hs` (both `CounterReset`
/// and `NotCounterReset` seen).
fn note_hint_collision(hs: &[HistogramPoint], notes: &mut Notes) {
    let reset = hs.iter().any(|h| h.h.counter_reset_hint == CounterResetHint::CounterReset);
    let not_reset = hs.iter().any(|h| h.h.counter_reset_hint == CounterResetHint::NotCounterReset);
    if reset && not_reset {
        notes.add(Note::CounterResetCollision(HistOp::Agg));
    }
}

/// `sum_over_time` of histograms: a Kahan-compensated sum.
fn histogram_sum(hs: &[HistogramPoint], notes: &mut Notes) -> Result<FloatHistogram, HistogramOpError> {
    note_hint_collision(hs, notes);
    let mut sum = hs[0].h.clone();
    let mut comp = None;
    let mut reconciled = false;
    for h in &hs[1..] {
        reconciled |= sum.kahan_add(&h.h, &mut comp)?.nhcb_bounds_reconciled;
    }
    if let Some(c) = comp {
        reconciled |= sum.add(&c)?.nhcb_bounds_reconciled;
    }
    if reconciled {
        notes.add(Note::MismatchedCustomBuckets(HistOp::Agg));
    }
    Ok(sum)
}

/// `avg_over_time` of histograms: the Kahan-compensated sum divided by the
/// count, switching to an incremental mean once the sum overflows.
fn histogram_avg(hs: &[HistogramPoint], notes: &mut Notes) -> Result<FloatHistogram, HistogramOpError> {
    note_hint_collision(hs, notes);
    let mut reconciled = false;
    let r = (|| {
        let mut sum = hs[0].h.clone();
        let mut comp: Option<FloatHistogram> = None;
        let mut mean: Option<FloatHistogram> = None;
        let mut count = 1.0;
        for (i, h) in hs[1..].iter().enumerate() {
            count = (i + 2) as f64;
            if mean.is_none() {
                let mut sum_copy = sum.clone();
                let mut comp_copy = comp.clone();
                reconciled |= sum_copy.kahan_add(&h.h, &mut comp_copy)?.nhcb_bounds_reconciled;
                if !sum_copy.has_overflow() {
                    sum = sum_copy;
                    comp = comp_copy;
                    continue;
                }
                let mut m = sum.clone();
                m.div(count - 1.0);
                mean = Some(m);
                if let Some(c) = comp.as_mut() {
                    c.div(count - 1.0);
                }
            }
            let q = (count - 1.0) / count;
            if let Some(c) = comp.as_mut() {
                c.mul(q);
            }
            let mut to_add = h.h.clone();
            to_add.div(count);
            let m = mean.as_mut().expect("set above");
            m.mul(q);
            reconciled |= m.kahan_add(&to_add, &mut comp)?.nhcb_bounds_reconciled;
        }
        if let Some(mut m) = mean {
            if let Some(c) = comp {
                m.add(&c)?;
            }
            return Ok(m);
        }
        sum.div(count);
        if let Some(mut c) = comp {
            c.div(count);
            sum.add(&c)?;
        }
        Ok(sum)
    })();
    if reconciled {
        notes.add(Note::MismatchedCustomBuckets(HistOp::Agg));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_storage::histogram::Span;

    fn h(count: f64, buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            count,
            sum: count,
            positive_spans: vec![Span { offset: 0, length: buckets.len() as u32 }],
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    fn pts(hs: &[(i64, FloatHistogram)]) -> Vec<HistogramPoint> {
        hs.iter().map(|(t, h)| HistogramPoint { t: *t, h: h.clone() }).collect()
    }

    fn window<'a>(floats: &'a [Sample], hists: &'a [HistogramPoint], end: i64, range: i64) -> MixedWindow<'a> {
        MixedWindow { floats, histograms: hists, eval_t: end, range_start: end - range, range_end: end }
    }

    #[test]
    fn increase_corrects_for_a_reset_and_extrapolates() {
        // Counts 4, 1 (a reset), 3 at 60 s, 120 s, 180 s in (0, 180 s]: the
        // first sample is dropped by the reset, so the increase is 3 over
        // 120 s, extrapolated 60 s to the start (within 1.1 intervals, and
        // the zero point 120 * 4/3 s is further away): factor 180 / 120.
        let hs = pts(&[(60_000, h(4.0, &[4.0])), (120_000, h(1.0, &[1.0])), (180_000, h(3.0, &[3.0]))]);
        let mut notes = Notes::default();
        let w = window(&[], &hs, 180_000, 180_000);
        let Some(MixedValue::Histogram(r)) = RangeFunction::Increase.eval_mixed(&w, &[], &mut notes) else {
            panic!("no histogram")
        };
        let want = 3.0 * 1.5;
        assert!((r.count - want).abs() < 1e-9, "{}", r.count);
        assert_eq!(r.counter_reset_hint, CounterResetHint::Gauge);
        assert!(notes.is_empty());
    }

    #[test]
    fn mixed_windows_warn_or_ignore_histograms() {
        let hs = pts(&[(10_000, h(1.0, &[1.0]))]);
        let fs = [Sample { t: 20_000, v: 5.0 }, Sample { t: 30_000, v: 7.0 }];
        let w = window(&fs, &hs, 30_000, 60_000);
        let mut notes = Notes::default();
        assert_eq!(RangeFunction::Rate.eval_mixed(&w, &[], &mut notes), None);
        assert_eq!(RangeFunction::SumOverTime.eval_mixed(&w, &[], &mut notes), None);
        assert_eq!(notes.iter().collect::<Vec<_>>(), vec![Note::MixedFloatsHistograms]);
        let mut notes = Notes::default();
        assert_eq!(RangeFunction::MaxOverTime.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(7.0)));
        assert_eq!(notes.iter().collect::<Vec<_>>(), vec![Note::IgnoredInMixedRange]);
        assert_eq!(RangeFunction::CountOverTime.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(3.0)));
        assert_eq!(RangeFunction::LastOverTime.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(7.0)));
        assert_eq!(
            RangeFunction::FirstOverTime.eval_mixed(&w, &[], &mut notes),
            Some(MixedValue::Histogram(h(1.0, &[1.0])))
        );
        // Histogram → float is both a change and a reset.
        assert_eq!(RangeFunction::Changes.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(2.0)));
        assert_eq!(RangeFunction::Resets.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(1.0)));
    }

    #[test]
    fn sum_and_avg_over_time_of_histograms() {
        let hs = pts(&[(1, h(1.0, &[1.0])), (2, h(3.0, &[3.0])), (3, h(5.0, &[5.0]))]);
        let w = window(&[], &hs, 3, 10);
        let mut notes = Notes::default();
        let Some(MixedValue::Histogram(s)) = RangeFunction::SumOverTime.eval_mixed(&w, &[], &mut notes) else {
            panic!()
        };
        assert_eq!((s.count, s.positive_buckets.clone()), (9.0, vec![9.0]));
        let Some(MixedValue::Histogram(a)) = RangeFunction::AvgOverTime.eval_mixed(&w, &[], &mut notes) else {
            panic!()
        };
        assert_eq!((a.count, a.positive_buckets.clone()), (3.0, vec![3.0]));
        assert!(notes.is_empty());
    }

    #[test]
    fn irate_of_histograms_is_per_second_and_gauge() {
        let mut g = h(2.0, &[2.0]);
        g.counter_reset_hint = CounterResetHint::Gauge;
        let hs = pts(&[(0, h(1.0, &[1.0])), (10_000, h(3.0, &[3.0])), (20_000, h(7.0, &[7.0]))]);
        let w = window(&[], &hs, 20_000, 30_000);
        let mut notes = Notes::default();
        let Some(MixedValue::Histogram(r)) = RangeFunction::Irate.eval_mixed(&w, &[], &mut notes) else { panic!() };
        assert_eq!((r.count, r.counter_reset_hint), (0.4, CounterResetHint::Gauge));
        // idelta of counter histograms warns that they are not gauges.
        let Some(MixedValue::Histogram(r)) = RangeFunction::Idelta.eval_mixed(&w, &[], &mut notes) else { panic!() };
        assert_eq!(r.count, 4.0);
        assert_eq!(notes.iter().collect::<Vec<_>>(), vec![Note::NotGauge]);
        // A gauge histogram in irate warns that it is not a counter.
        let hs = pts(&[(0, g.clone()), (10_000, g)]);
        let w = window(&[], &hs, 20_000, 30_000);
        let mut notes = Notes::default();
        RangeFunction::Irate.eval_mixed(&w, &[], &mut notes);
        assert_eq!(notes.iter().collect::<Vec<_>>(), vec![Note::NotCounter]);
    }

    #[test]
    fn exponential_and_custom_mix_is_a_warning() {
        let mut c = h(2.0, &[2.0]);
        c.schema = tidemark_storage::histogram::CUSTOM_BUCKETS_SCHEMA;
        c.custom_values = vec![1.0];
        let hs = pts(&[(0, h(1.0, &[1.0])), (10_000, c)]);
        let w = window(&[], &hs, 10_000, 30_000);
        let mut notes = Notes::default();
        assert_eq!(RangeFunction::Delta.eval_mixed(&w, &[], &mut notes), None);
        assert!(notes.iter().any(|n| n == Note::MixedExponentialCustom));
        assert!(Note::MixedExponentialCustom.is_warning());
        assert!(!Note::IgnoredInMixedRange.is_warning());
    }

    #[test]
    fn delta_of_gauges_is_quiet_and_of_counters_warns() {
        let mut g1 = h(1.0, &[1.0]);
        g1.counter_reset_hint = CounterResetHint::Gauge;
        let mut g2 = h(4.0, &[4.0]);
        g2.counter_reset_hint = CounterResetHint::Gauge;
        let hs = pts(&[(0, g1), (60_000, g2)]);
        let w = window(&[], &hs, 60_000, 120_000);
        let mut notes = Notes::default();
        let Some(MixedValue::Histogram(r)) = RangeFunction::Delta.eval_mixed(&w, &[], &mut notes) else { panic!() };
        // 3 over the sampled 60 s, extrapolated 60 s back to the window's
        // start (within 1.1 intervals) and not at all at its end.
        assert_eq!(r.count, 6.0);
        assert!(notes.is_empty());
        let hs = pts(&[(0, h(1.0, &[1.0])), (60_000, h(4.0, &[4.0]))]);
        let w = window(&[], &hs, 60_000, 120_000);
        RangeFunction::Delta.eval_mixed(&w, &[], &mut notes);
        assert_eq!(notes.iter().collect::<Vec<_>>(), vec![Note::NotGauge]);
        // rate of gauges warns the other way.
        let mut notes = Notes::default();
        let mut g = h(1.0, &[1.0]);
        g.counter_reset_hint = CounterResetHint::Gauge;
        let hs = pts(&[(0, g.clone()), (60_000, g)]);
        let w = window(&[], &hs, 60_000, 120_000);
        RangeFunction::Rate.eval_mixed(&w, &[], &mut notes);
        assert_eq!(notes.iter().collect::<Vec<_>>(), vec![Note::NotCounter]);
    }

    #[test]
    fn resets_and_changes_of_histograms() {
        let a = h(3.0, &[3.0]);
        let b = h(1.0, &[1.0]);
        let hs = pts(&[(1, a.clone()), (2, a.clone()), (3, b.clone()), (4, b), (5, a)]);
        let w = window(&[], &hs, 5, 10);
        let mut notes = Notes::default();
        assert_eq!(RangeFunction::Resets.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(1.0)));
        assert_eq!(RangeFunction::Changes.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(2.0)));
        assert_eq!(RangeFunction::CountOverTime.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(5.0)));
        assert_eq!(RangeFunction::TsOfFirstOverTime.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(0.001)));
        assert_eq!(RangeFunction::TsOfLastOverTime.eval_mixed(&w, &[], &mut notes), Some(MixedValue::Float(0.005)));
        // Float-only functions give nothing for histograms alone, quietly.
        assert_eq!(RangeFunction::MaxOverTime.eval_mixed(&w, &[], &mut notes), None);
        assert_eq!(RangeFunction::Deriv.eval_mixed(&w, &[], &mut notes), None);
        assert!(notes.is_empty());
    }

    #[test]
    fn avg_over_time_switches_to_an_incremental_mean_on_overflow() {
        let big = h(f64::MAX, &[f64::MAX]);
        let hs = pts(&[(1, big.clone()), (2, big.clone()), (3, big)]);
        let w = window(&[], &hs, 3, 10);
        let mut notes = Notes::default();
        let Some(MixedValue::Histogram(a)) = RangeFunction::AvgOverTime.eval_mixed(&w, &[], &mut notes) else {
            panic!()
        };
        // Finite, and the mean of equal values up to rounding.
        for v in [a.count, a.positive_buckets[0]] {
            assert!(v.is_finite() && (v / f64::MAX - 1.0).abs() < 1e-12, "{v}");
        }
        // The plain sum overflows.
        let Some(MixedValue::Histogram(s)) = RangeFunction::SumOverTime.eval_mixed(&w, &[], &mut notes) else {
            panic!()
        };
        assert!(s.count.is_infinite());
    }

    #[test]
    fn conflicting_hints_in_sum_over_time_warn() {
        let mut r = h(1.0, &[1.0]);
        r.counter_reset_hint = CounterResetHint::CounterReset;
        let mut n = h(1.0, &[1.0]);
        n.counter_reset_hint = CounterResetHint::NotCounterReset;
        let hs = pts(&[(1, n), (2, r)]);
        let w = window(&[], &hs, 2, 10);
        let mut notes = Notes::default();
        RangeFunction::SumOverTime.eval_mixed(&w, &[], &mut notes);
        assert_eq!(notes.iter().collect::<Vec<_>>(), vec![Note::CounterResetCollision(HistOp::Agg)]);
        assert_eq!(
            Note::CounterResetCollision(HistOp::Agg).message(""),
            "conflicting counter resets during histogram aggregation"
        );
    }
}

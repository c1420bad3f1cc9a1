//! Checking a query's outcome against an eval's expectations: errors,
//! annotations and values, as upstream's `compareResult`,
//! `checkAnnotations` and `checkExpectedFailure` do.

use std::collections::HashMap;

use tidemark_promql::{Annotations, Error, RangeSeries, Value, VectorSample};
use tidemark_storage::{is_stale_nan, Labels};

use crate::histo::{compact, histograms_match, test_expression};
use crate::notation::{HistPoint, Point};
use crate::script::{Eval, EvalKind, ExpectKind, Expected, ExpectedSeries};

/// Relative tolerance for sample values (upstream's `defaultEpsilon`).
pub const EPSILON: f64 = 1e-6;

/// Go's `almost.Equal(a, b, epsilon)`: equal bit patterns for staleness
/// markers only, NaN equals NaN, otherwise a relative comparison (with an
/// absolute floor near zero).
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Formats a float as Go's `%v` does for the common cases.
pub fn fmt_f64(v: f64) -> String {
    if is_stale_nan(v) {
        return "stale".into();
    }
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    format!("{v}")
}

fn fmt_points(points: &[Point]) -> String {
    let items: Vec<String> = points
        .iter()
        .map(|p| match p {
            Point::Omitted => "_".into(),
            Point::Float(v) => fmt_f64(*v),
            Point::Histogram(hp) => test_expression(&hp.h),
        })
        .collect();
    format!("[{}]", items.join(" "))
}

/// A result series as upstream's `formatSeriesResult` shows it: its float
/// points and its histogram points.
pub fn fmt_series(s: &RangeSeries) -> String {
    let floats: Vec<String> = s.samples.iter().map(|p| format!("{} @[{}]", fmt_f64(p.v), p.t)).collect();
    let hists: Vec<String> = s.histograms.iter().map(|p| format!("{} @[{}]", test_expression(&p.h), p.t)).collect();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "{} float point{} [{}] and {} histogram point{} [{}]",
        s.samples.len(),
        plural(s.samples.len()),
        floats.join(", "),
        s.histograms.len(),
        plural(s.histograms.len()),
        hists.join(", ")
    )
}

/// An instant-vector element's value as text: a float or `{{…}}`.
fn fmt_element(s: &VectorSample) -> String {
    match &s.h {
        Some(h) => test_expression(h),
        None => fmt_f64(s.v),
    }
}

/// Whether an expected histogram matches an actual one, both compacted
/// first as upstream does.
fn hist_matches(exp: &HistPoint, cur: &tidemark_storage::histogram::FloatHistogram) -> bool {
    histograms_match(&compact(&exp.h, 0), &compact(cur, 0), exp.hint_set)
}

/// Checks an error the query returned against the eval's `fail` expectations.
/// Only called when the eval expects a failure.
pub fn check_expected_failure(ev: &Eval, err: &Error) -> Result<(), String> {
    let text = err.to_string();
    if let Some(m) = ev.expects_of(ExpectKind::Fail).next() {
        if !m.matches(&text) {
            return Err(format!("expected error matching {m}, but got: {text}"));
        }
    }
    Ok(())
}

/// Checks the annotations of a successful query.
pub fn check_annotations(ev: &Eval, annos: &Annotations) -> Result<(), String> {
    let warnings: Vec<String> = annos.warnings().map(|a| a.to_string()).collect();
    let infos: Vec<String> = annos.infos().map(|a| a.to_string()).collect();
    if ev.warn && warnings.is_empty() {
        return Err("expected warnings but got none".into());
    }
    if ev.info && infos.is_empty() {
        return Err("expected info annotations but got none".into());
    }
    check_annotations_of_kind(ev, ExpectKind::Warn, &warnings, "warn")?;
    check_annotations_of_kind(ev, ExpectKind::Info, &infos, "info")?;
    if ev.has(ExpectKind::NoWarn) && !warnings.is_empty() {
        return Err(format!("unexpected warning annotations: {warnings:?}"));
    }
    if ev.has(ExpectKind::NoInfo) && !infos.is_empty() {
        return Err(format!("unexpected info annotations: {infos:?}"));
    }
    Ok(())
}

/// Every expect line of `kind` must match some annotation, and every
/// annotation of that kind must be matched by some expect line.
fn check_annotations_of_kind(ev: &Eval, kind: ExpectKind, actual: &[String], name: &str) -> Result<(), String> {
    let expected: Vec<_> = ev.expects_of(kind).collect();
    if expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!("expected {name} annotations but none were found"));
    }
    for e in &expected {
        if !actual.iter().any(|a| e.matches(a)) {
            return Err(format!(
                "expected {name} annotation matching {e} but no matching annotation was found, found: {actual:?}"
            ));
        }
    }
    for a in actual {
        if !expected.iter().any(|e| e.matches(a)) {
            return Err(format!("unexpected {name} annotation {a:?} found"));
        }
    }
    Ok(())
}

/// Whether a matrix is sorted by labels, as every range result must be.
pub fn check_matrix_sorted(series: &[tidemark_promql::RangeSeries]) -> Result<(), String> {
    for (i, w) in series.windows(2).enumerate() {
        if w[0].labels > w[1].labels {
            return Err(format!(
                "matrix results should always be sorted by labels, but series at index {} with labels {} sorts before series at index {i} with labels {}",
                i + 1,
                w[1].labels,
                w[0].labels
            ));
        }
    }
    Ok(())
}

/// The time window expected matrix points are laid out on: `(start, end, step)`.
fn expected_grid(ev: &Eval) -> (i64, i64, i64) {
    match (ev.kind, ev.range_vector) {
        (_, Some(rv)) => rv,
        (EvalKind::Range { start, end, step }, None) => (start, end, step),
        // An instant eval without `expect range vector` has no grid: any
        // expected point lies outside it (upstream's zero end time).
        (EvalKind::Instant { t }, None) => (t, i64::MIN, 0),
    }
}

/// Compares a result value with the eval's expectation. `eval_t` is the
/// evaluation time of an instant query (vector and scalar timestamps must
/// equal it); `None` for range queries.
pub fn compare_result(ev: &Eval, value: &Value, eval_t: Option<i64>) -> Result<(), String> {
    let expected_series: &[ExpectedSeries] = match &ev.expected {
        Expected::Series(s) => s,
        Expected::Scalar(_) => &[],
    };
    let expect_scalar = matches!(ev.expected, Expected::Scalar(_));
    let by_labels: HashMap<&Labels, &ExpectedSeries> = expected_series.iter().map(|s| (&s.labels, s)).collect();
    match value {
        Value::Matrix(series) => {
            if ev.is_ordered() {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if expect_scalar {
                return Err(format!("expected scalar result, but got matrix with {} series", series.len()));
            }
            check_matrix_sorted(series)?;
            let (start, end, step) = expected_grid(ev);
            let mut seen: Vec<&Labels> = Vec::new();
            for s in series {
                let Some(exp) = by_labels.get(&s.labels) else {
                    return Err(format!("unexpected metric {} in result, has {}", s.labels, fmt_series(s)));
                };
                seen.push(&s.labels);
                let mut floats: Vec<(i64, f64)> = Vec::new();
                let mut histograms: Vec<(i64, &HistPoint)> = Vec::new();
                for (i, p) in exp.points.iter().enumerate() {
                    let t = (i as i64).checked_mul(step).and_then(|o| start.checked_add(o));
                    let t = match t {
                        Some(t) if t <= end => t,
                        _ => {
                            return Err(format!(
                                "expected {} points for {}, but query time range cannot return this many points",
                                exp.points.len(),
                                s.labels
                            ))
                        }
                    };
                    match p {
                        Point::Float(v) => floats.push((t, *v)),
                        Point::Histogram(h) => histograms.push((t, h)),
                        Point::Omitted => {}
                    }
                }
                if floats.len() != s.samples.len() || histograms.len() != s.histograms.len() {
                    return Err(format!(
                        "expected {} float points and {} histogram points for {}, but got {}",
                        floats.len(),
                        histograms.len(),
                        s.labels,
                        fmt_series(s)
                    ));
                }
                for (i, ((et, ev_), got)) in floats.iter().zip(&s.samples).enumerate() {
                    if *et != got.t {
                        return Err(format!(
                            "expected float value at index {i} for {} to have timestamp {et}, but it had timestamp {} (result has {})",
                            s.labels,
                            got.t,
                            fmt_series(s)
                        ));
                    }
                    if !almost_equal(got.v, *ev_, EPSILON) {
                        return Err(format!(
                            "expected float value at index {i} (t={}) for {} to be {}, but got {} (result has {})",
                            got.t,
                            s.labels,
                            fmt_f64(*ev_),
                            fmt_f64(got.v),
                            fmt_series(s)
                        ));
                    }
                }
                for (i, ((et, eh), got)) in histograms.iter().zip(&s.histograms).enumerate() {
                    if *et != got.t {
                        return Err(format!(
                            "expected histogram value at index {i} for {} to have timestamp {et}, but it had timestamp {} (result has {})",
                            s.labels,
                            got.t,
                            fmt_series(s)
                        ));
                    }
                    if !hist_matches(eh, &got.h) {
                        return Err(format!(
                            "expected histogram value at index {i} (t={}) for {} to be {}, but got {} (result has {})",
                            got.t,
                            s.labels,
                            test_expression(&eh.h),
                            test_expression(&got.h),
                            fmt_series(s)
                        ));
                    }
                }
            }
            for e in expected_series {
                if !seen.contains(&&e.labels) {
                    return Err(format!("expected metric {} not found", e.labels));
                }
            }
            Ok(())
        }
        Value::Vector(samples) => {
            if expect_scalar {
                return Err(format!("expected scalar result, but got vector {}", fmt_vector(samples)));
            }
            compare_vector(ev, samples, expected_series, &by_labels, eval_t)
        }
        Value::Scalar { t, v } => {
            let Expected::Scalar(exp) = ev.expected else {
                return Err(format!("expected vector or matrix result, but got scalar {}", fmt_f64(*v)));
            };
            if let Some(et) = eval_t {
                if *t != et {
                    return Err(format!("expected scalar timestamp {et}, but got {t}"));
                }
            }
            if !almost_equal(exp, *v, EPSILON) {
                return Err(format!("expected scalar {} but got {}", fmt_f64(exp), fmt_f64(*v)));
            }
            Ok(())
        }
        Value::String { s, .. } => {
            let exp = ev.expected_string.as_deref().unwrap_or("");
            if exp != s {
                return Err(format!("expected string {exp:?} but got {s:?}"));
            }
            Ok(())
        }
    }
}

fn fmt_vector(samples: &[VectorSample]) -> String {
    let items: Vec<String> = samples.iter().map(|s| format!("{} => {} @[{}]", s.labels, fmt_element(s), s.t)).collect();
    format!("[{}]", items.join(", "))
}

fn compare_vector(
    ev: &Eval,
    samples: &[VectorSample],
    expected: &[ExpectedSeries],
    by_labels: &HashMap<&Labels, &ExpectedSeries>,
    eval_t: Option<i64>,
) -> Result<(), String> {
    let mut seen: Vec<&Labels> = Vec::new();
    for (pos, s) in samples.iter().enumerate() {
        let Some(exp) = by_labels.get(&s.labels) else {
            return Err(format!("unexpected metric {} in result, has value {}", s.labels, fmt_element(s)));
        };
        if ev.is_ordered() && exp.pos != pos + 1 {
            return Err(format!(
                "expected metric {} with {} at position {} but was at {}",
                s.labels,
                fmt_points(&exp.points),
                exp.pos,
                pos + 1
            ));
        }
        // Upstream compares an omitted expected value as a zero float.
        let (exp_v, exp_h) = match exp.points.first() {
            Some(Point::Float(v)) => (*v, None),
            Some(Point::Histogram(h)) => (0.0, Some(h)),
            Some(Point::Omitted) => (0.0, None),
            None => return Err(format!("expected series {} has no value", s.labels)),
        };
        if let Some(et) = eval_t {
            if s.t != et {
                return Err(format!("expected timestamp {et} for {} but got {}", s.labels, s.t));
            }
        }
        match (exp_h, &s.h) {
            (None, Some(h)) => {
                return Err(format!(
                    "expected float value {} for {} but got histogram {}",
                    fmt_f64(exp_v),
                    s.labels,
                    test_expression(h)
                ))
            }
            (Some(e), None) => {
                return Err(format!(
                    "expected histogram {} for {} but got float value {}",
                    test_expression(&e.h),
                    s.labels,
                    fmt_f64(s.v)
                ))
            }
            (Some(e), Some(h)) => {
                if !hist_matches(e, h) {
                    return Err(format!(
                        "expected {} for {} but got {}",
                        test_expression(&e.h),
                        s.labels,
                        test_expression(h)
                    ));
                }
            }
            (None, None) => {
                if !almost_equal(exp_v, s.v, EPSILON) {
                    return Err(format!("expected {} for {} but got {}", fmt_f64(exp_v), s.labels, fmt_f64(s.v)));
                }
            }
        }
        seen.push(&s.labels);
    }
    for e in expected {
        if !seen.contains(&&e.labels) {
            return Err(format!("expected metric {} with {} not found", e.labels, fmt_points(&e.points)));
        }
    }
    Ok(())
}

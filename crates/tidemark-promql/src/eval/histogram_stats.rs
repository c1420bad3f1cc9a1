//! Selectors read for `histogram_count`, `histogram_sum` and
//! `histogram_avg` only: Prometheus reads them through its
//! `HistogramStatsIterator`, which drops the buckets and, reading the
//! series in order, turns an unknown counter-reset hint into "reset" or
//! "not a reset" by comparing each histogram with the one before. Those
//! hints are what the aggregations above see (and what their "conflicting
//! counter resets" warning reports), so the same selectors get the same
//! treatment here.

use std::collections::HashSet;

use promql_parser::parser::{Expr, VectorSelector};
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, HistogramSample, HistogramValue};

/// The selectors of `expr` read as histogram statistics: those with a
/// `histogram_count`, `histogram_sum` or `histogram_avg` call above them
/// and no subquery, `histogram_quantile(s)` or `histogram_fraction` (which
/// need the buckets) above them (Prometheus' `detectHistogramStatsDecoding`).
/// Keyed by the selector's address in the query's syntax tree.
pub(crate) fn stats_selectors(expr: &Expr) -> HashSet<usize> {
    let mut out = HashSet::new();
    walk(expr, false, &mut out);
    out
}

fn walk(e: &Expr, stats: bool, out: &mut HashSet<usize>) {
    match e {
        Expr::VectorSelector(vs) => mark(vs, stats, out),
        Expr::MatrixSelector(ms) => mark(&ms.vs, stats, out),
        // Below a subquery nothing is read as statistics: its counter-reset
        // detection needs the buckets.
        Expr::Subquery(_) => {}
        Expr::Call(c) => {
            let (stats, blocked) = match c.func.name {
                "histogram_count" | "histogram_sum" | "histogram_avg" => (true, false),
                "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => (false, true),
                _ => (stats, false),
            };
            if !blocked {
                for a in &c.args.args {
                    walk(a, stats, out);
                }
            }
        }
        Expr::Aggregate(a) => {
            walk(&a.expr, stats, out);
            if let Some(p) = &a.param {
                walk(p, stats, out);
            }
        }
        Expr::Unary(u) => walk(&u.expr, stats, out),
        Expr::Binary(b) => {
            walk(&b.lhs, stats, out);
            walk(&b.rhs, stats, out);
        }
        Expr::Paren(p) => walk(&p.expr, stats, out),
        _ => {}
    }
}

fn mark(vs: &VectorSelector, stats: bool, out: &mut HashSet<usize>) {
    if stats {
        out.insert(vs as *const VectorSelector as usize);
    }
}

/// Replaces a series' histograms (in time order, as read) by their
/// statistics: counter-reset hint, schema, count and sum. An unknown hint
/// becomes "reset" or "not a reset" by comparison with the previous
/// histogram read (unknown for the first); staleness markers pass as they
/// are and are not compared with.
pub(crate) fn to_stats(samples: &mut [HistogramSample]) {
    let mut last: Option<FloatHistogram> = None;
    for s in samples {
        let cur = s.h.to_float();
        let stale = s.h.is_stale();
        let hint = if stale || cur.counter_reset_hint != CounterResetHint::Unknown {
            cur.counter_reset_hint
        } else {
            match &last {
                None => CounterResetHint::Unknown,
                Some(prev) if cur.detect_reset(prev) => CounterResetHint::CounterReset,
                Some(_) => CounterResetHint::NotCounterReset,
            }
        };
        s.h = HistogramValue::Float(FloatHistogram {
            counter_reset_hint: hint,
            schema: cur.schema,
            count: cur.count,
            sum: cur.sum,
            ..FloatHistogram::default()
        });
        if !stale {
            last = Some(FloatHistogram { counter_reset_hint: hint, ..cur });
        }
    }
}

#[cfg(test)]
mod tests {
    use tidemark_storage::histogram::Span;

    use super::*;

    fn h(count: f64, hint: CounterResetHint) -> HistogramSample {
        HistogramSample {
            t: 0,
            h: HistogramValue::Float(FloatHistogram {
                counter_reset_hint: hint,
                count,
                sum: count,
                positive_spans: vec![Span { offset: 0, length: 1 }],
                positive_buckets: vec![count],
                ..FloatHistogram::default()
            }),
        }
    }

    #[test]
    fn unknown_hints_are_detected_and_buckets_dropped() {
        use CounterResetHint::*;
        let mut s = vec![h(5.0, Unknown), h(6.0, Unknown), h(2.0, Unknown), h(3.0, NotCounterReset), h(1.0, Gauge)];
        to_stats(&mut s);
        let hints: Vec<_> = s.iter().map(|s| s.h.to_float().counter_reset_hint).collect();
        assert_eq!(hints, vec![Unknown, NotCounterReset, CounterReset, NotCounterReset, Gauge]);
        assert!(s.iter().all(|s| s.h.to_float().positive_buckets.is_empty()));
        assert_eq!(s[2].h.to_float().count, 2.0);
    }

    #[test]
    fn only_selectors_under_a_statistics_function_without_a_blocker() {
        let count = |q: &str| stats_selectors(&promql_parser::parser::parse(q).unwrap()).len();
        assert_eq!(count("histogram_count(sum(a))"), 1);
        assert_eq!(count("histogram_sum(rate(a[5m])) + b"), 1);
        assert_eq!(count("histogram_count(increase(a[40m:9m]))"), 0);
        assert_eq!(count("histogram_quantile(0.5, histogram_count(a))"), 0);
        assert_eq!(count("sum(a)"), 0);
    }
}

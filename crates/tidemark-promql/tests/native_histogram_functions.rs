//! Functions over native histograms through the whole engine: range
//! functions (`rate`, `*_over_time`) over selectors and subqueries,
//! `histogram_quantile` and `histogram_fraction` over native and classic
//! histograms, and the annotations Prometheus gives for mixed inputs.

use tidemark_promql::{Engine, EngineOptions, MemStorage, Value};
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Span};
use tidemark_storage::Labels;

/// A histogram with `count` observations, all in the bucket (1, 2] of
/// schema 0, summing to `count`.
fn hist(count: f64) -> FloatHistogram {
    FloatHistogram {
        count,
        sum: count,
        positive_spans: vec![Span { offset: 1, length: 1 }],
        positive_buckets: vec![count],
        ..FloatHistogram::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().map(|&(n, v)| (n.to_string(), v.to_string()))).unwrap()
}

fn engine() -> Engine {
    Engine::new(EngineOptions { enable_experimental_functions: true, ..EngineOptions::default() })
}

/// `requests` counts 0, 10, 20, 30, then resets to 5, 15 (one a minute).
fn store() -> MemStorage {
    let s = MemStorage::new();
    let l = labels(&[("__name__", "requests"), ("job", "api")]);
    for (i, c) in [0.0, 10.0, 20.0, 30.0, 5.0, 15.0].into_iter().enumerate() {
        s.add_float_histogram(&l, i as i64 * 60_000, hist(c));
    }
    s
}

fn messages(r: &tidemark_promql::QueryResult) -> Vec<String> {
    r.annotations.iter().map(|a| a.to_string()).collect()
}

#[test]
fn increase_of_a_histogram_counter_adds_the_value_before_a_reset() {
    let s = store();
    // Window (0, 300 s]: 10, 20, 30, 5, 15 → 30 - 10 + 30 = 35 over 240 s,
    // extrapolated 60 s back to the start (one interval; the zero point is
    // 240 * 10/35 s ≈ 69 s back), so × 300/240.
    let r = engine().instant_query(&s, "increase(requests[5m])", 300_000).unwrap();
    assert!(r.annotations.is_empty(), "{:?}", messages(&r));
    let Value::Vector(v) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(v.len(), 1);
    let h = v[0].h.as_deref().expect("a histogram");
    assert!((h.count - 35.0 * 300.0 / 240.0).abs() < 1e-9, "{}", h.count);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
    assert_eq!(v[0].labels, labels(&[("job", "api")]));
}

#[test]
fn histogram_quantile_of_a_rate_of_native_histograms() {
    let s = store();
    let r = engine().range_query(&s, "histogram_quantile(0.5, rate(requests[2m]))", 120_000, 180_000, 60_000).unwrap();
    let Value::Matrix(m) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(m.len(), 1);
    // All observations in (1, 2]: the median interpolates exponentially
    // to √2.
    for p in &m[0].samples {
        assert!((p.v - 2f64.sqrt()).abs() < 1e-12, "{p:?}");
    }
    assert_eq!(m[0].samples.len(), 2);
}

#[test]
fn a_native_and_a_classic_histogram_with_the_same_labels_are_both_dropped() {
    let s = MemStorage::new();
    s.add_float_histogram(&labels(&[("__name__", "lat")]), 0, hist(4.0));
    for (le, v) in [("1", 1.0), ("+Inf", 4.0)] {
        s.add(&labels(&[("__name__", "lat"), ("le", le)]), 0, v);
    }
    s.add_float_histogram(&labels(&[("__name__", "other")]), 0, hist(4.0));
    let r = engine().instant_query(&s, "histogram_fraction(0, 2, {__name__=~\"lat|other\"})", 0).unwrap();
    let notes = messages(&r);
    let Value::Vector(v) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].labels, Labels::empty());
    assert_eq!(v[0].v, 1.0);
    assert_eq!(
        notes,
        vec!["PromQL warning: vector contains a mix of classic and native histograms (1:26)".to_string()]
    );
}

#[test]
fn over_time_functions_on_a_series_mixing_floats_and_histograms() {
    let s = MemStorage::new();
    let l = labels(&[("__name__", "mixed")]);
    s.add(&l, 0, 3.0);
    s.add_float_histogram(&l, 60_000, hist(2.0));
    s.add(&l, 120_000, 7.0);
    let q = |query: &str| engine().instant_query(&s, query, 120_000).unwrap();

    let r = q("sum_over_time(mixed[5m])");
    assert!(matches!(&r.value, Value::Vector(v) if v.is_empty()), "{:?}", r.value);
    assert_eq!(
        messages(&r),
        vec!["PromQL warning: encountered a mix of histograms and floats for metric name \"mixed\" (1:15)".to_string()]
    );

    let r = q("max_over_time(mixed[5m])");
    assert!(matches!(&r.value, Value::Vector(v) if v.len() == 1 && v[0].v == 7.0), "{:?}", r.value);
    assert_eq!(
        messages(&r),
        vec![
            "PromQL info: ignored histograms in a range containing both floats and histograms for metric name \"mixed\" (1:15)"
                .to_string()
        ]
    );

    let r = q("count_over_time(mixed[5m])");
    assert!(matches!(&r.value, Value::Vector(v) if v.len() == 1 && v[0].v == 3.0), "{:?}", r.value);
    let r = q("first_over_time(mixed[5m])");
    assert!(matches!(&r.value, Value::Vector(v) if v.len() == 1 && v[0].v == 3.0 && v[0].h.is_none()));
    let r = q("last_over_time(mixed[90s] offset 30s)");
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v[0].h.as_deref(), Some(&hist(2.0)));
    assert_eq!(v[0].labels, l, "last_over_time keeps the name");
}

#[test]
fn step_invariant_and_subquery_results_keep_histograms() {
    let s = store();
    // Pinned by `@`: the same histogram at every step.
    let r = engine().range_query(&s, "last_over_time(requests[1m] @ 180)", 0, 120_000, 60_000).unwrap();
    let Value::Matrix(m) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].histograms.iter().map(|h| (h.t, h.h.count)).collect::<Vec<_>>(),
        vec![(0, 30.0), (60_000, 30.0), (120_000, 30.0)]
    );
    // A subquery's histograms feed a range function; the reset between
    // 180 s and 240 s is found although the hints are cleared.
    let r = engine().instant_query(&s, "resets(requests[5m:1m])", 300_000).unwrap();
    let Value::Vector(v) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(v[0].v, 1.0);
    // And a subquery on its own returns its histograms in the window.
    let r = engine().instant_query(&s, "requests[2m:1m]", 300_000).unwrap();
    let Value::Matrix(m) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(m[0].histograms.iter().map(|h| h.t).collect::<Vec<_>>(), vec![240_000, 300_000]);
}

#[test]
fn gauge_histograms_in_rate_warn_and_idelta_is_quiet() {
    let s = MemStorage::new();
    let l = labels(&[("__name__", "g")]);
    for (i, c) in [4.0, 2.0, 6.0].into_iter().enumerate() {
        let mut h = hist(c);
        h.counter_reset_hint = CounterResetHint::Gauge;
        s.add_float_histogram(&l, i as i64 * 60_000, h);
    }
    let r = engine().instant_query(&s, "rate(g[5m])", 120_000).unwrap();
    assert_eq!(
        messages(&r),
        vec!["PromQL warning: this native histogram metric is not a counter: \"g\" (1:6)".to_string()]
    );
    let r = engine().instant_query(&s, "idelta(g[5m])", 120_000).unwrap();
    assert!(r.annotations.is_empty(), "{:?}", messages(&r));
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v[0].h.as_deref().map(|h| h.count), Some(4.0));
}

//! Engine-level behaviour: result shapes, limits, cancellation, experimental
//! gating, delayed name removal, and reading from Tidemark's own storage.

use std::time::Duration;

use tidemark_promql::{
    AnnotationKind, CancellationToken, Engine, EngineOptions, Error, MemStorage, QueryOptions, Value,
};
use tidemark_storage::{Db, Labels};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

/// `n_series` counters `requests_total{instance="i"}` rising by `i+1` per
/// 15 s scrape for `minutes` minutes.
fn counters(n_series: usize, minutes: i64) -> MemStorage {
    let s = MemStorage::new();
    for i in 0..n_series {
        let l = labels(&[("__name__", "requests_total"), ("instance", &i.to_string()), ("job", "api")]);
        for k in 0..=(minutes * 4) {
            s.add(&l, k * 15_000, (k as f64) * (i as f64 + 1.0));
        }
    }
    s
}

fn vector(v: Value) -> Vec<(Labels, f64)> {
    match v {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

#[test]
fn instant_selector_returns_latest_sample_with_eval_timestamp() {
    let s = counters(2, 10);
    let r = Engine::default().instant_query(&s, "requests_total", 100_000).unwrap();
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v.len(), 2);
    assert!(v.iter().all(|x| x.t == 100_000));
    // Sample at 90 s (k = 6) is the newest at or before 100 s.
    assert_eq!(v[0].v, 6.0);
    assert_eq!(v[1].v, 12.0);
}

#[test]
fn rate_sum_and_ratio_match_hand_computed_values() {
    let s = counters(3, 30);
    let e = Engine::default();
    // Each series rises by (i+1) every 15 s: rate = (i+1)/15 per second.
    let v = vector(e.instant_query(&s, "sum(rate(requests_total[5m]))", 1_200_000).unwrap().value);
    assert_eq!(v.len(), 1);
    assert!((v[0].1 - 6.0 / 15.0).abs() < 1e-9, "{v:?}");
    let v = vector(
        e.instant_query(
            &s,
            r#"sum(rate(requests_total{instance="0"}[5m])) / sum(rate(requests_total[5m]))"#,
            1_200_000,
        )
        .unwrap()
        .value,
    );
    assert!((v[0].1 - 1.0 / 6.0).abs() < 1e-9, "{v:?}");
}

#[test]
fn range_query_returns_one_point_per_step_sorted_by_labels() {
    let s = counters(3, 30);
    let r = Engine::default().range_query(&s, "requests_total * 2", 600_000, 1_200_000, 60_000).unwrap();
    let Value::Matrix(m) = r.value else { panic!() };
    assert_eq!(m.len(), 3);
    assert!(m.windows(2).all(|w| w[0].labels < w[1].labels));
    for series in &m {
        assert_eq!(series.samples.len(), 11);
        assert_eq!(series.samples[0].t, 600_000);
        // Arithmetic drops the metric name.
        assert_eq!(series.labels.get("__name__"), None);
    }
}

#[test]
fn range_query_of_a_range_vector_is_rejected() {
    let s = counters(1, 5);
    let err = Engine::default().range_query(&s, "requests_total[1m]", 0, 60_000, 15_000).unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(ref m) if m.contains("range vector")), "{err}");
}

#[test]
fn bad_step_and_inverted_range_are_rejected() {
    let s = MemStorage::new();
    let e = Engine::default();
    assert!(matches!(e.range_query(&s, "1", 0, 10, 0), Err(Error::InvalidQuery(_))));
    assert!(matches!(e.range_query(&s, "1", 10, 0, 1), Err(Error::InvalidQuery(_))));
}

#[test]
fn parse_errors_are_typed() {
    let s = MemStorage::new();
    let err = Engine::default().instant_query(&s, "sum(rate(x[5m]) by (job)", 0).unwrap_err();
    assert!(matches!(err, Error::Parse(_)), "{err:?}");
}

#[test]
fn too_many_samples_stops_the_query() {
    let s = counters(20, 30);
    let e = Engine::new(EngineOptions { max_samples: 100, ..EngineOptions::default() });
    let err = e.range_query(&s, "requests_total", 0, 1_800_000, 15_000).unwrap_err();
    assert_eq!(err, Error::TooManySamples { limit: 100 });
    // A small query under the same limit still works.
    assert!(e.instant_query(&s, r#"requests_total{instance="1"}"#, 60_000).is_ok());
}

#[test]
fn cancelled_query_stops_with_cancelled_error() {
    let s = counters(5, 30);
    let token = CancellationToken::new();
    token.cancel();
    let opts = QueryOptions { cancellation: Some(token), ..QueryOptions::default() };
    let err = Engine::default().range_query_with(&s, "requests_total", 0, 1_800_000, 15_000, &opts).unwrap_err();
    assert_eq!(err, Error::Cancelled);
}

#[test]
fn zero_timeout_times_out() {
    let s = counters(5, 30);
    let opts = QueryOptions { timeout: Some(Duration::ZERO), ..QueryOptions::default() };
    let err = Engine::default().range_query_with(&s, "requests_total", 0, 1_800_000, 15_000, &opts).unwrap_err();
    assert_eq!(err, Error::Timeout);
}

#[test]
fn per_query_lookback_overrides_the_engine_default() {
    let s = MemStorage::new();
    s.add(&labels(&[("__name__", "g")]), 0, 1.0);
    let e = Engine::default();
    assert_eq!(vector(e.instant_query(&s, "g", 200_000).unwrap().value).len(), 1);
    let opts = QueryOptions { lookback_delta: Some(Duration::from_secs(60)), ..QueryOptions::default() };
    assert_eq!(vector(e.instant_query_with(&s, "g", 200_000, &opts).unwrap().value).len(), 0);
}

#[test]
fn experimental_functions_are_off_by_default() {
    let s = counters(2, 5);
    let e = Engine::default();
    for q in [
        "limitk(1, requests_total)",
        "mad_over_time(requests_total[1m])",
        "sort_by_label(requests_total, \"job\")",
        "requests_total + fill(0) requests_total",
    ] {
        assert!(matches!(e.instant_query(&s, q, 60_000), Err(Error::InvalidQuery(_))), "{q}");
    }
    let on = Engine::new(EngineOptions { enable_experimental_functions: true, ..EngineOptions::default() });
    assert_eq!(vector(on.instant_query(&s, "limitk(1, requests_total)", 60_000).unwrap().value).len(), 1);
}

#[test]
fn range_functions_refuse_colliding_outputs_unless_one_name_is_selected() {
    let s = MemStorage::new();
    for (name, x) in [("a_total", "1"), ("b_total", "1"), ("a_total", "2")] {
        for t in [0, 30_000, 60_000] {
            s.add(&labels(&[("__name__", name), ("x", x)]), t, t as f64);
        }
    }
    let e = Engine::default();
    // Two names, one label set once the names go: refused, whether the
    // output is the answer or goes into an aggregation.
    for q in [r#"rate({x="1"}[5m])"#, r#"sum(rate({__name__=~"a_total|b_total"}[5m]))"#, r#"rate({x=~"1|2"}[5m])"#] {
        let r = e.instant_query(&s, q, 60_000);
        assert!(matches!(r, Err(Error::Execution(ref m)) if m.contains("same labelset")), "{q}: {r:?}");
    }
    // One name, by name or by an equality matcher on `__name__`: distinct
    // series stay distinct without it.
    for q in ["rate(a_total[5m])", r#"rate({__name__="a_total"}[5m])"#, r#"rate({__name__="a_total", x=~".+"}[5m])"#] {
        let v = vector(e.instant_query(&s, q, 60_000).unwrap().value);
        assert_eq!(v.len(), 2, "{q}");
        assert_eq!(v[0].0, labels(&[("x", "1")]), "{q}");
    }
}

#[test]
fn aggregations_group_range_function_outputs_as_if_their_names_were_gone() {
    // `sum by (…)` over a range function may take its outputs with the
    // metric name still on (it groups by other labels only); a grouping
    // that names `__name__` or `__type__` must see them gone, and the
    // non-counter info is the same either way.
    let s = MemStorage::new();
    for (name, job, ty) in [("a_total", "x", "counter"), ("a_total", "y", "counter"), ("gauge_g", "z", "gauge")] {
        for t in [0, 30_000, 60_000] {
            s.add(&labels(&[("__name__", name), ("job", job), ("__type__", ty)]), t, t as f64 / 1000.0);
        }
    }
    let e = Engine::default();
    // Every series holds the same samples: one rate, summed exactly.
    let r = vector(e.instant_query(&s, "rate(a_total[5m])", 60_000).unwrap().value)[0].1;
    assert!(r > 0.0);
    for (q, want) in [
        (
            r#"sum by (job) (rate({__name__=~"a_total|gauge_g"}[5m]))"#,
            vec![(labels(&[("job", "x")]), r), (labels(&[("job", "y")]), r), (labels(&[("job", "z")]), r)],
        ),
        (
            "sum by (__name__, job) (rate(a_total[5m]))",
            vec![(labels(&[("job", "x")]), r), (labels(&[("job", "y")]), r)],
        ),
        ("sum by (__type__) (rate(a_total[5m]))", vec![(labels(&[]), 2.0 * r)]),
        (
            "sum by (job, __unit__) (rate(a_total[5m]))",
            vec![(labels(&[("job", "x")]), r), (labels(&[("job", "y")]), r)],
        ),
        ("sum without (job) (rate(a_total[5m]))", vec![(labels(&[]), 2.0 * r)]),
        ("sum(rate(gauge_g[5m]))", vec![(labels(&[]), r)]),
    ] {
        let res = e.instant_query(&s, q, 60_000).unwrap();
        let infos: Vec<String> = res.annotations.infos().map(|i| i.to_string()).collect();
        assert_eq!(vector(res.value), want, "{q}");
        assert_eq!(infos.iter().any(|i| i.contains("\"gauge_g\"")), q.contains("gauge_g"), "{q}: {infos:?}");
    }
}

#[test]
fn name_removal_modes_differ_only_in_when_the_name_goes() {
    let s = MemStorage::new();
    s.add(&labels(&[("__name__", "a"), ("x", "1")]), 0, 1.0);
    s.add(&labels(&[("__name__", "b"), ("x", "1")]), 0, 2.0);
    let q = r#"abs({x="1"}) > 1"#;
    // Eagerly, abs() drops both names at once and the two series collide.
    let eager = Engine::default().instant_query(&s, q, 0);
    assert!(matches!(eager, Err(Error::Execution(ref m)) if m.contains("same labelset")), "{eager:?}");
    // Delayed, the comparison first filters `a` out; only `b` loses its name at the end.
    let delayed = Engine::new(EngineOptions { delayed_name_removal: true, ..EngineOptions::default() });
    let v = vector(delayed.instant_query(&s, q, 0).unwrap().value);
    assert_eq!(v, vec![(labels(&[("x", "1")]), 2.0)]);
    // Without the filter both modes fail.
    assert!(delayed.instant_query(&s, r#"abs({x="1"})"#, 0).is_err());
}

#[test]
fn rate_on_a_gauge_name_adds_an_info_annotation() {
    let s = MemStorage::new();
    let l = labels(&[("__name__", "temperature")]);
    for k in 0..20 {
        s.add(&l, k * 15_000, k as f64);
    }
    let r = Engine::default().instant_query(&s, "rate(temperature[5m])", 290_000).unwrap();
    let infos: Vec<_> = r.annotations.iter().filter(|a| a.kind == AnnotationKind::Info).collect();
    assert_eq!(infos.len(), 1, "{:?}", r.annotations);
    assert!(infos[0].message.contains("metric might not be a counter"));
}

#[test]
fn reads_from_tidemark_storage() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let l = labels(&[("__name__", "http_requests_total"), ("code", "200")]);
    let mut app = db.appender();
    for k in 0..=40 {
        app.append(&l, k * 15_000, (k * 30) as f64).unwrap();
    }
    app.commit().unwrap();
    let v = vector(Engine::default().instant_query(&db, "rate(http_requests_total[5m])", 600_000).unwrap().value);
    assert_eq!(v.len(), 1);
    assert!((v[0].1 - 2.0).abs() < 1e-9, "{v:?}");
}

#[test]
fn hostile_queries_fail_cleanly_or_answer() {
    let s = counters(2, 10);
    let e = Engine::new(EngineOptions { max_samples: 1_000_000, ..EngineOptions::default() });
    for q in [
        "sum_over_time(requests_total[100y:1ms])",
        "requests_total[100y:1ms]",
        "count_over_time(requests_total[1y:1ms] offset 1000y)",
        "requests_total @ 1e18",
        "requests_total @ 9.2e15 offset -100y",
        "rate(requests_total[1y] @ -9.2e15 offset 100000000y)",
        "requests_total[5m:1m] @ 9.2e15 offset -1000000y",
        "requests_total @ -1e18 offset -100y",
        "rate(requests_total[300000000y])",
        "requests_total offset 292y",
        "max_over_time((time() > 0)[100y:1s])",
        "absent_over_time(nothing[100y:1ms])",
        "topk(1e300, requests_total)",
        "quantile(-Inf, requests_total)",
        "label_replace(requests_total, \"x\", \"$99999999999\", \"job\", \"(.*)\")",
        "round(requests_total, 0)",
        "histogram_quantile(0.5, requests_total)",
        "vector(1) / on() group_left() vector(0)",
        "-(-(-(-(-(-(-(-(-(-requests_total))))))))))",
    ] {
        // Any answer or a typed error is fine; a panic or an abort is not.
        let _ = e.instant_query(&s, q, 600_000);
        let _ = e.range_query(&s, q, 0, 600_000, 60_000);
    }
    // Extreme query ranges are refused, not overflowed.
    assert!(e.range_query(&s, "requests_total", i64::MIN, i64::MAX, 1).is_err());
    assert!(e.range_query(&s, "requests_total", 0, i64::MAX, 1).is_err());
}

/// A store that records in which order each selection was asked for.
struct OrderLog {
    mem: MemStorage,
    unordered: std::sync::atomic::AtomicUsize,
    ordered: std::sync::atomic::AtomicUsize,
}

impl tidemark_promql::SeriesSource for OrderLog {
    fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[tidemark_storage::Matcher],
    ) -> Result<Vec<tidemark_promql::SelectedSeries>, String> {
        self.ordered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.mem.select(mint, maxt, matchers)
    }

    fn select_unordered_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[tidemark_storage::Matcher],
    ) -> Result<(Vec<tidemark_promql::SelectedSeries>, Vec<String>), String> {
        self.unordered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Reversed: an order the engine must not depend on.
        let mut s = self.mem.select(mint, maxt, matchers)?;
        s.reverse();
        Ok((s, Vec::new()))
    }

    fn select_unlabelled_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[tidemark_storage::Matcher],
    ) -> Result<(Vec<tidemark_promql::SelectedSeries>, Vec<String>), String> {
        // Reversed and without labels: the engine may use neither.
        let (mut s, w) = self.select_unordered_with_warnings(mint, maxt, matchers)?;
        for x in &mut s {
            x.labels = Labels::empty();
        }
        Ok((s, w))
    }
}

#[test]
fn only_a_count_into_one_group_selects_unordered() {
    let src = OrderLog { mem: counters(6, 10), unordered: Default::default(), ordered: Default::default() };
    let reference = counters(6, 10);
    let engine = Engine::default();
    for (q, unordered) in [
        ("count(requests_total)", 1),
        ("group(requests_total)", 1),
        ("count by () (requests_total)", 1),
        ("count(requests_total offset 1m)", 1),
        ("count(requests_total or requests_total)", 0),
        ("count(requests_total) + sum(requests_total)", 1),
        ("sum(requests_total)", 0),
        ("max(requests_total)", 0),
        ("count by (instance) (requests_total)", 0),
        ("count without (job) (requests_total)", 0),
        ("count(rate(requests_total[5m]))", 0),
        ("count(sum by (instance) (requests_total))", 0),
        ("count_values(\"v\", requests_total)", 0),
        ("requests_total", 0),
    ] {
        for range in [false, true] {
            src.unordered.store(0, std::sync::atomic::Ordering::Relaxed);
            let (got, want) = if range {
                (
                    engine.range_query(&src, q, 0, 600_000, 60_000).unwrap().value,
                    engine.range_query(&reference, q, 0, 600_000, 60_000).unwrap().value,
                )
            } else {
                (
                    engine.instant_query(&src, q, 600_000).unwrap().value,
                    engine.instant_query(&reference, q, 600_000).unwrap().value,
                )
            };
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{q} (range: {range})");
            let n = src.unordered.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(n, unordered, "unordered selections of {q} (range: {range})");
        }
    }
    assert!(src.ordered.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

#[test]
fn counts_over_tidemark_storage_match_the_sorted_answers() {
    // Series created out of label order: the head's ref order is not label
    // order, and `count`/`group` read it unsorted.
    let db = Db::in_memory().unwrap();
    let mem = MemStorage::new();
    let mut app = db.appender();
    for job in ["z", "b", "x", "a"] {
        for i in (0..40).rev() {
            let l = labels(&[("__name__", "up"), ("instance", &format!("{i}")), ("job", job)]);
            for k in 0..8 {
                // Some series end in a staleness marker, some in a NaN
                // value (a point), some stop early (no point at the end).
                let v = match (i % 7, k) {
                    (0, 7) => f64::NAN,
                    (1, 5..) => tidemark_storage::stale_nan(),
                    _ => i as f64 * 0.1 + k as f64,
                };
                if i % 7 == 2 && k >= 3 {
                    continue;
                }
                app.append(&l, k * 15_000, v).unwrap();
                mem.add(&l, k * 15_000, v);
            }
        }
    }
    app.commit().unwrap();
    let engine = Engine::default();
    for q in [
        "count(up)",
        "group(up)",
        "count(up{job!=\"b\"})",
        "count({__name__=~\".+\"})",
        "sum(up)",
        "count by (job) (up)",
        "count(up offset 1m)",
        "group({__name__=\"up\", job=~\"a|b\"})",
        "count({__name__=\"up\", job=\"a\" or job=\"b\"})",
    ] {
        for at in [105_000, 400_000] {
            let got = engine.instant_query(&db, q, at).unwrap().value;
            let want = engine.instant_query(&mem, q, at).unwrap().value;
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{q} at {at}");
        }
        let got = engine.range_query(&db, q, 0, 105_000, 15_000).unwrap().value;
        let want = engine.range_query(&mem, q, 0, 105_000, 15_000).unwrap().value;
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{q} range");
    }
}

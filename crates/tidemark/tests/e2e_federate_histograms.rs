//! End to end: a real Prometheus 2.42 with native histograms enabled
//! federates from our `/federate` (over 127.0.0.1) and must read our native
//! histograms (integer, float, gauge), a custom-bucket histogram (as a
//! classic one) and a float with the values we hold.
//!
//! Needs Debian's `prometheus`; fails, never skips, without it. Takes a few
//! seconds (until Prometheus has scraped twice), bounded by 60 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tidemark::api::{router, ApiOptions, ApiState};
use tidemark::storage::histogram::{
    CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span, CUSTOM_BUCKETS_SCHEMA,
};
use tidemark::storage::{Db, Labels};
use tidemark_testkit::{free_port, now_ms, url_encode, Http, Prometheus, PrometheusConfig};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

fn query(http: &Http, prom: &Prometheus, q: &str) -> Vec<Json> {
    let r = http.get(&format!("{}/api/v1/query?query={}", prom.url(), url_encode(q))).expect("query Prometheus");
    let v: Json = serde_json::from_slice(&r.body).expect("JSON");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn scalar(r: &[Json]) -> Option<f64> {
    r.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_2_42_federates_native_histograms_from_us() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let db = Arc::new(Db::in_memory().unwrap());
    let t = now_ms() - 2_000;
    let mut ap = db.appender();
    let int = Histogram {
        schema: 1,
        zero_threshold: 1e-9,
        zero_count: 1,
        count: 10,
        sum: 25.5,
        positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 1 }],
        positive_buckets: vec![2, 2, -1], // 2, 4, 3
        ..Histogram::default()
    };
    let float = FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: 0,
        zero_threshold: 1e-9,
        zero_count: 0.5,
        count: 3.0,
        sum: -1.5,
        positive_spans: vec![Span { offset: 1, length: 1 }],
        positive_buckets: vec![2.5],
        ..FloatHistogram::default()
    };
    let custom = Histogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 6,
        sum: 9.0,
        positive_spans: vec![Span { offset: 0, length: 3 }],
        positive_buckets: vec![1, 2, -1], // 1, 3, 2 (the last is +Inf)
        custom_values: vec![1.0, 5.0],
        ..Histogram::default()
    };
    ap.append_histogram(&labels(&[("__name__", "fed_int"), ("job", "src")]), t, HistogramValue::Integer(int)).unwrap();
    ap.append_histogram(&labels(&[("__name__", "fed_gauge"), ("job", "src")]), t, HistogramValue::Float(float))
        .unwrap();
    ap.append_histogram(&labels(&[("__name__", "fed_cb"), ("job", "src")]), t, HistogramValue::Integer(custom))
        .unwrap();
    ap.append(&labels(&[("__name__", "fed_up"), ("job", "src")]), t, 7.25).unwrap();
    ap.commit().unwrap();

    let port = free_port();
    let app = router(Arc::new(ApiState::new(db, ApiOptions::default())));
    let listener = rt.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port))).unwrap();
    let server = rt.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PrometheusConfig::new(dir.path().join("data"));
    cfg.config_yaml = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    \
         metrics_path: /federate\n    params:\n      'match[]': ['{{__name__=~\"fed_.*\"}}']\n    \
         static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    cfg.args = vec!["--enable-feature=native-histograms".into()];
    let prom = Prometheus::start(cfg).expect("start Prometheus 2.42");
    let http = Http::new(Duration::from_secs(5));

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready =
            ["fed_int", "fed_gauge", "fed_cb_count", "fed_up"].iter().all(|q| !query(&http, &prom, q).is_empty());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus did not federate in time:\n{}", prom.log_tail(40));
        std::thread::sleep(Duration::from_millis(300));
    }

    // Native histograms arrive as native histograms, with our numbers.
    let h = query(&http, &prom, "fed_int");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["metric"]["job"], "src", "honor_labels keeps our job: {h:?}");
    assert_eq!(h[0]["histogram"][1]["count"], "10", "{h:?}");
    assert_eq!(h[0]["histogram"][1]["sum"], "25.5", "{h:?}");
    // Zero bucket plus three populated buckets.
    assert_eq!(h[0]["histogram"][1]["buckets"].as_array().map(Vec::len), Some(4), "{h:?}");
    assert_eq!(scalar(&query(&http, &prom, "histogram_count(fed_gauge)")), Some(3.0));
    assert_eq!(scalar(&query(&http, &prom, "histogram_sum(fed_gauge)")), Some(-1.5));
    // Buckets of schema 0: (1, 2] holds 2.5.
    let g = query(&http, &prom, "fed_gauge");
    let buckets = g[0]["histogram"][1]["buckets"].as_array().cloned().unwrap_or_default();
    assert!(buckets.iter().any(|b| b[1] == "1" && b[2] == "2" && b[3] == "2.5"), "{g:?}");
    // The custom-bucket histogram arrives as a classic one.
    assert_eq!(scalar(&query(&http, &prom, "fed_cb_count")), Some(6.0));
    assert_eq!(scalar(&query(&http, &prom, "fed_cb_sum")), Some(9.0));
    assert_eq!(scalar(&query(&http, &prom, "fed_cb_bucket{le=\"5.0\"}")), Some(4.0));
    assert_eq!(scalar(&query(&http, &prom, "fed_cb_bucket{le=\"+Inf\"}")), Some(6.0));
    assert_eq!(scalar(&query(&http, &prom, "fed_up")), Some(7.25));
    // With our timestamp, not the scrape's.
    let up = query(&http, &prom, "timestamp(fed_up)");
    assert_eq!(scalar(&up).map(|s| (s * 1000.0).round() as i64), Some(t));

    drop(prom);
    server.abort();
    rt.shutdown_timeout(Duration::from_secs(5));
}

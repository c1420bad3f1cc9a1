//! `/federate` with native histograms: the delimited protobuf exposition
//! (negotiated by `Accept`) carries them with their stored kind, decoded
//! here with the same prost messages; the text format leaves exponential
//! native histograms out and writes custom-bucket ones as classic
//! histograms, and is unchanged for floats.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use prost::Message;
use tidemark::api::exposition::{
    Bucket, BucketSpan, Histogram as PHistogram, LabelPair, Metric, MetricFamily, MetricType, Untyped,
    PROTO_DELIMITED_CONTENT_TYPE,
};
use tidemark::api::{router, ApiOptions, ApiState};
use tidemark::storage::histogram::{
    CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span, CUSTOM_BUCKETS_SCHEMA,
};
use tidemark::storage::{Db, Labels, STALE_NAN_BITS};
use tower::ServiceExt;

/// What Prometheus 2.42 sends when scraping with native histograms on.
const SCRAPE_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

async fn get(app: &Router, uri: &str, accept: Option<&str>) -> Answer {
    let mut req = Request::get(uri);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req.body(Body::empty()).unwrap()))
        .await
        .expect("request timed out")
        .unwrap();
    let status = resp.status();
    let content_type =
        resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec();
    Answer { status, content_type, body }
}

fn decode_all(mut body: &[u8]) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    while !body.is_empty() {
        out.push(MetricFamily::decode_length_delimited(&mut body).expect("a delimited MetricFamily"));
    }
    out
}

fn int_hist(scale: u64, hint: CounterResetHint) -> Histogram {
    // Buckets 2·s, 3·s, (gap), 1·s; zero bucket s; one negative bucket s.
    Histogram {
        counter_reset_hint: hint,
        schema: 2,
        zero_threshold: 0.001,
        zero_count: scale,
        count: 8 * scale,
        sum: 12.5 * scale as f64,
        positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 3, length: 1 }],
        positive_buckets: vec![2 * scale as i64, scale as i64, -2 * scale as i64],
        negative_spans: vec![Span { offset: 1, length: 1 }],
        negative_buckets: vec![scale as i64],
        custom_values: vec![],
    }
}

fn float_hist(hint: CounterResetHint) -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: hint,
        schema: 0,
        zero_threshold: 0.0,
        zero_count: 0.5,
        count: 4.0,
        sum: -3.25,
        positive_spans: vec![Span { offset: 1, length: 2 }],
        positive_buckets: vec![1.25, 2.25],
        negative_spans: vec![],
        negative_buckets: vec![],
        custom_values: vec![],
    }
}

fn custom_hist() -> Histogram {
    // Bounds 0.1, 0.5, 1: buckets 0 (3) and 2 (4), +Inf bucket (3) 1.
    Histogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: CUSTOM_BUCKETS_SCHEMA,
        zero_threshold: 0.0,
        zero_count: 0,
        count: 8,
        sum: 6.0,
        positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 1, length: 2 }],
        positive_buckets: vec![3, 1, -3],
        negative_spans: vec![],
        negative_buckets: vec![],
        custom_values: vec![0.1, 0.5, 1.0],
    }
}

fn stale_hist() -> Histogram {
    Histogram { sum: f64::from_bits(STALE_NAN_BITS), ..int_hist(1, CounterResetHint::Unknown) }
}

/// The data set and the times its latest samples have.
struct Fixture {
    app: Router,
    now: i64,
}

fn fixture() -> Fixture {
    let db = Arc::new(Db::in_memory().unwrap());
    let now = now_ms();
    let mut ap = db.appender();
    let up = labels(&[("__name__", "up"), ("job", "api")]);
    let lat = labels(&[("__name__", "lat"), ("job", "api")]);
    let lat_f = labels(&[("__name__", "lat"), ("job", "batch")]);
    let lat_float_now = labels(&[("__name__", "lat"), ("job", "zz_float_now")]);
    let gauge = labels(&[("__name__", "queue"), ("instance", "q1")]);
    let custom = labels(&[("__name__", "req"), ("job", "api")]);
    let gone = labels(&[("__name__", "lat"), ("job", "gone")]);
    // Floats first, then a histogram later in the same series: the latest
    // is the histogram, with its integer kind.
    ap.append(&lat, now - 30_000, 1.0).unwrap();
    ap.append_histogram(&lat, now - 20_000, HistogramValue::Integer(int_hist(1, CounterResetHint::Unknown))).unwrap();
    ap.append_histogram(&lat, now - 10_000, HistogramValue::Integer(int_hist(3, CounterResetHint::NotCounterReset)))
        .unwrap();
    ap.append_histogram(&lat_f, now - 9_000, HistogramValue::Float(float_hist(CounterResetHint::Unknown))).unwrap();
    // A histogram, then a float: the float is the latest.
    ap.append_histogram(&lat_float_now, now - 9_000, HistogramValue::Integer(int_hist(1, CounterResetHint::Unknown)))
        .unwrap();
    ap.append(&lat_float_now, now - 8_000, 42.0).unwrap();
    ap.append_histogram(&gauge, now - 7_000, HistogramValue::Float(float_hist(CounterResetHint::Gauge))).unwrap();
    ap.append_histogram(&custom, now - 6_000, HistogramValue::Integer(custom_hist())).unwrap();
    ap.append_histogram(&gone, now - 20_000, HistogramValue::Integer(int_hist(1, CounterResetHint::Unknown))).unwrap();
    ap.append_histogram(&gone, now - 5_000, HistogramValue::Integer(stale_hist())).unwrap();
    ap.append(&up, now - 5_000, 1.0).unwrap();
    ap.commit().unwrap();
    let opts = ApiOptions { external_labels: vec![("dc".into(), "eu".into())], ..ApiOptions::default() };
    Fixture { app: router(Arc::new(ApiState::new(db, opts))), now }
}

fn lp(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs.iter().map(|(k, v)| LabelPair { name: k.to_string(), value: v.to_string() }).collect()
}

fn family(name: &str, ty: MetricType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily { name: name.into(), help: String::new(), r#type: ty as i32, metric }
}

const ALL: &str = "/federate?match[]=%7B__name__%3D~%22.%2B%22%7D";

#[tokio::test]
async fn protobuf_federation_carries_native_histograms_with_their_kind() {
    let f = fixture();
    let r = get(&f.app, ALL, Some(SCRAPE_ACCEPT)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, PROTO_DELIMITED_CONTENT_TYPE);
    let got = decode_all(&r.body);
    let now = f.now;
    let int3 = PHistogram {
        sample_count: 24,
        sample_sum: 37.5,
        schema: 2,
        zero_threshold: 0.001,
        zero_count: 3,
        positive_span: vec![BucketSpan { offset: -2, length: 2 }, BucketSpan { offset: 3, length: 1 }],
        positive_delta: vec![6, 3, -6],
        negative_span: vec![BucketSpan { offset: 1, length: 1 }],
        negative_delta: vec![3],
        ..PHistogram::default()
    };
    let float = PHistogram {
        sample_count_float: 4.0,
        sample_sum: -3.25,
        schema: 0,
        zero_count_float: 0.5,
        positive_span: vec![BucketSpan { offset: 1, length: 2 }],
        positive_count: vec![1.25, 2.25],
        ..PHistogram::default()
    };
    let classic = PHistogram {
        sample_count: 8,
        sample_sum: 6.0,
        bucket: vec![
            Bucket { cumulative_count: 3, cumulative_count_float: 0.0, upper_bound: 0.1 },
            Bucket { cumulative_count: 3, cumulative_count_float: 0.0, upper_bound: 0.5 },
            Bucket { cumulative_count: 7, cumulative_count_float: 0.0, upper_bound: 1.0 },
        ],
        ..PHistogram::default()
    };
    let want = vec![
        // `lat`: two histogram series, then a float series: two families.
        family(
            "lat",
            MetricType::Histogram,
            vec![
                Metric {
                    label: lp(&[("job", "api"), ("dc", "eu"), ("instance", "")]),
                    histogram: Some(int3),
                    timestamp_ms: now - 10_000,
                    untyped: None,
                },
                Metric {
                    label: lp(&[("job", "batch"), ("dc", "eu"), ("instance", "")]),
                    histogram: Some(float.clone()),
                    timestamp_ms: now - 9_000,
                    untyped: None,
                },
            ],
        ),
        family(
            "lat",
            MetricType::Untyped,
            vec![Metric {
                label: lp(&[("job", "zz_float_now"), ("dc", "eu"), ("instance", "")]),
                untyped: Some(Untyped { value: 42.0 }),
                histogram: None,
                timestamp_ms: now - 8_000,
            }],
        ),
        family(
            "queue",
            MetricType::GaugeHistogram,
            vec![Metric {
                label: lp(&[("instance", "q1"), ("dc", "eu")]),
                histogram: Some(float),
                timestamp_ms: now - 7_000,
                untyped: None,
            }],
        ),
        family(
            "req",
            MetricType::Histogram,
            vec![Metric {
                label: lp(&[("job", "api"), ("dc", "eu"), ("instance", "")]),
                histogram: Some(classic),
                timestamp_ms: now - 6_000,
                untyped: None,
            }],
        ),
        family(
            "up",
            MetricType::Untyped,
            vec![Metric {
                label: lp(&[("job", "api"), ("dc", "eu"), ("instance", "")]),
                untyped: Some(Untyped { value: 1.0 }),
                histogram: None,
                timestamp_ms: now - 5_000,
            }],
        ),
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn text_federation_leaves_native_histograms_out_and_writes_custom_buckets_as_classic() {
    let f = fixture();
    let now = f.now;
    for accept in [None, Some("text/plain;version=0.0.4"), Some("application/json")] {
        let r = get(&f.app, ALL, accept).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
        let t = |d: i64| now - d;
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            format!(
                "# TYPE lat untyped\n\
                 lat{{job=\"zz_float_now\",dc=\"eu\",instance=\"\"}} 42 {}\n\
                 # TYPE req histogram\n\
                 req_bucket{{job=\"api\",dc=\"eu\",instance=\"\",le=\"0.1\"}} 3 {t6}\n\
                 req_bucket{{job=\"api\",dc=\"eu\",instance=\"\",le=\"0.5\"}} 3 {t6}\n\
                 req_bucket{{job=\"api\",dc=\"eu\",instance=\"\",le=\"1\"}} 7 {t6}\n\
                 req_bucket{{job=\"api\",dc=\"eu\",instance=\"\",le=\"+Inf\"}} 8 {t6}\n\
                 req_sum{{job=\"api\",dc=\"eu\",instance=\"\"}} 6 {t6}\n\
                 req_count{{job=\"api\",dc=\"eu\",instance=\"\"}} 8 {t6}\n\
                 # TYPE up untyped\n\
                 up{{job=\"api\",dc=\"eu\",instance=\"\"}} 1 {}\n",
                t(8_000),
                t(5_000),
                t6 = t(6_000),
            )
        );
    }
}

#[tokio::test]
async fn float_only_answers_are_the_same_text_and_protobuf_floats() {
    let db = Arc::new(Db::in_memory().unwrap());
    let now = now_ms();
    let mut ap = db.appender();
    let a = labels(&[("__name__", "up"), ("job", "x\"y")]);
    let b = labels(&[("__name__", "up"), ("instance", "i"), ("job", "z")]);
    let c = labels(&[("__name__", "b")]);
    ap.append(&a, now - 1_000, 1_000_000.0).unwrap();
    ap.append(&b, now - 2_000, -0.0).unwrap();
    ap.append(&c, now - 3_000, f64::INFINITY).unwrap();
    ap.commit().unwrap();
    let opts = ApiOptions { external_labels: vec![("dc".into(), "eu".into())], ..ApiOptions::default() };
    let app = router(Arc::new(ApiState::new(db, opts)));
    let r = get(&app, "/federate?match[]=up&match[]=b", None).await;
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        format!(
            "# TYPE b untyped\n\
             b{{dc=\"eu\",instance=\"\"}} +Inf {}\n\
             # TYPE up untyped\n\
             up{{instance=\"i\",job=\"z\",dc=\"eu\"}} 0 {}\n\
             up{{job=\"x\\\"y\",dc=\"eu\",instance=\"\"}} 1e+06 {}\n",
            now - 3_000,
            now - 2_000,
            now - 1_000
        )
    );
    let r = get(&app, "/federate?match[]=up&match[]=b", Some(SCRAPE_ACCEPT)).await;
    let fams = decode_all(&r.body);
    let names: Vec<(&str, i32, usize)> = fams.iter().map(|f| (f.name.as_str(), f.r#type, f.metric.len())).collect();
    assert_eq!(names, vec![("b", MetricType::Untyped as i32, 1), ("up", MetricType::Untyped as i32, 2)]);
    // (-0 goes as proto3's default 0, as the text format writes it too.)
    assert_eq!(fams[1].metric[0].untyped, Some(Untyped { value: 0.0 }));
    assert_eq!(fams[1].metric[1].untyped, Some(Untyped { value: 1_000_000.0 }));
    // Nothing matched: an empty body in both formats.
    for accept in [None, Some(SCRAPE_ACCEPT)] {
        let r = get(&app, "/federate?match[]=nothing", accept).await;
        assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    }
}

#[tokio::test]
async fn a_stale_histogram_hides_its_series_and_an_empty_histogram_stays_native() {
    let db = Arc::new(Db::in_memory().unwrap());
    let now = now_ms();
    let mut ap = db.appender();
    let s = labels(&[("__name__", "h"), ("job", "stale")]);
    let e = labels(&[("__name__", "h"), ("job", "empty")]);
    ap.append_histogram(&s, now - 2_000, HistogramValue::Integer(int_hist(1, CounterResetHint::Unknown))).unwrap();
    ap.append_histogram(&s, now - 1_000, HistogramValue::Integer(stale_hist())).unwrap();
    ap.append_histogram(&e, now - 1_000, HistogramValue::Integer(Histogram::default())).unwrap();
    ap.commit().unwrap();
    let app = router(Arc::new(ApiState::new(db, ApiOptions::default())));
    let fams = decode_all(&get(&app, "/federate?match[]=h", Some(SCRAPE_ACCEPT)).await.body);
    assert_eq!(fams.len(), 1);
    assert_eq!(fams[0].metric.len(), 1);
    let m = &fams[0].metric[0];
    assert_eq!(m.label, lp(&[("job", "empty"), ("instance", "")]));
    let h = m.histogram.as_ref().unwrap();
    // Prometheus' parser takes a histogram with no spans, zero bucket or
    // threshold for a classic one; the empty span keeps it native.
    assert_eq!(h.positive_span, vec![BucketSpan { offset: 0, length: 0 }]);
    assert_eq!((h.sample_count, h.sample_count_float), (0, 0.0));
}

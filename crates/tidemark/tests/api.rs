//! The Prometheus HTTP API through the router (no network): every endpoint,
//! GET and POST, the exact JSON Prometheus answers with, and the error paths
//! with their exact type, message and status.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use tidemark::api::{router, ApiOptions, ApiState};
use tidemark::promql::{Engine, EngineOptions};
use tidemark::remote::{MetricKind, MetricMetadata};
use tidemark::storage::{Db, Labels, Matcher, NameValidation};
use tower::ServiceExt;

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

/// Three `up` series and one counter, a sample every 15 s for 10 minutes.
fn load(db: &Db) {
    let series = [
        (labels(&[("__name__", "up"), ("job", "api"), ("instance", "a")]), 1.0, 0.0),
        (labels(&[("__name__", "up"), ("job", "api"), ("instance", "b")]), 0.0, 0.0),
        (labels(&[("__name__", "up"), ("job", "db"), ("instance", "c")]), 1.0, 0.0),
        (labels(&[("__name__", "http_requests_total"), ("job", "api"), ("code", "200")]), 0.0, 1.5),
    ];
    let mut app = db.appender();
    for i in 0..=40 {
        let t = T0 + i * 15_000;
        for (l, base, slope) in &series {
            app.append(l, t, base + slope * i as f64).unwrap();
        }
    }
    app.commit().unwrap();
}

fn state_with(opts: ApiOptions) -> Arc<ApiState> {
    let db = Arc::new(Db::in_memory().unwrap());
    load(&db);
    Arc::new(ApiState::new(db, opts))
}

fn app() -> Router {
    router(state_with(ApiOptions::default()))
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req))
        .await
        .expect("request timed out")
        .unwrap();
    let status = resp.status();
    let content_type =
        resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    Answer { status, content_type, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_form(app: &Router, uri: &str, form: &str) -> Answer {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    send(app, req).await
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[track_caller]
fn ok(a: &Answer, want: &str) {
    assert_eq!(a.status, StatusCode::OK, "body: {}", a.body);
    assert_eq!(a.content_type, "application/json");
    assert_eq!(a.body, want);
}

#[track_caller]
fn err(a: &Answer, status: u16, kind: &str, msg: &str) {
    let want = serde_json::json!({"status": "error", "errorType": kind, "error": msg});
    let got: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.body));
    assert_eq!(got, want);
    assert_eq!(a.status.as_u16(), status, "body: {}", a.body);
    assert_eq!(a.content_type, "application/json");
    assert!(a.body.starts_with(r#"{"status":"error","errorType":"#), "{}", a.body);
}

#[tokio::test]
async fn instant_query_vector_scalar_string_and_matrix() {
    let app = app();
    let q = format!("/api/v1/query?query={}&time=1700000060", enc(r#"up{instance="a"}"#));
    ok(
        &get(&app, &q).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1700000060,"1"]}]}}"#,
    );
    // Same through a form POST, time as RFC 3339 with a fraction.
    let form = format!("query={}&time=2023-11-14T22:14:20.5Z", enc("http_requests_total"));
    ok(
        &post_form(&app, "/api/v1/query", &form).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"http_requests_total","code":"200","job":"api"},"value":[1700000060.500,"6"]}]}}"#,
    );
    ok(
        &get(&app, "/api/v1/query?query=1.5&time=1700000000.123").await,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"1.5"]}}"#,
    );
    ok(
        &get(&app, &format!("/api/v1/query?query={}&time=1700000000", enc(r#""a<b""#))).await,
        r#"{"status":"success","data":{"resultType":"string","result":[1700000000,"a\u003cb"]}}"#,
    );
    ok(
        &get(&app, &format!("/api/v1/query?query={}&time=1700000000", enc("1/0"))).await,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"+Inf"]}}"#,
    );
    ok(
        &get(&app, &format!("/api/v1/query?query={}&time=1700000000.120", enc("1e-7"))).await,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.12,"0.0000001"]}}"#,
    );
    ok(
        &get(&app, &format!("/api/v1/query?query={}&time=1700000000.120", enc("vector(1e-7)"))).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.120,"1e-07"]}]}}"#,
    );
    let q = format!("/api/v1/query?query={}&time=1700000030", enc(r#"up{instance="b"}[30s]"#));
    ok(
        &get(&app, &q).await,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"b","job":"api"},"values":[[1700000015,"0"],[1700000030,"0"]]}]}}"#,
    );
    // No match: an empty vector, not null.
    ok(
        &get(&app, "/api/v1/query?query=nothing&time=1700000000").await,
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
    );
}

#[tokio::test]
async fn range_query_shapes_and_step_forms() {
    let app = app();
    let want = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"http_requests_total","code":"200","job":"api"},"values":[[1700000000,"0"],[1700000030,"3"],[1700000060,"6"]]}]}}"#;
    for step in ["30s", "30", "30.0", "0m30s"] {
        let q = format!("/api/v1/query_range?query=http_requests_total&start=1700000000&end=1700000060&step={step}");
        ok(&get(&app, &q).await, want);
    }
    let form = "query=http_requests_total&start=2023-11-14T22:13:20Z&end=2023-11-14T23:14:20%2B01:00&step=30s";
    ok(&post_form(&app, "/api/v1/query_range", form).await, want);
}

#[tokio::test]
async fn query_parameter_errors_match_prometheus() {
    let app = app();
    let base = "/api/v1/query_range?query=up&start=1700000000&end=1700000060";
    err(
        &get(&app, &format!("{base}&step=abc")).await,
        400,
        "bad_data",
        r#"invalid parameter "step": cannot parse "abc" to a valid duration"#,
    );
    err(&get(&app, base).await, 400, "bad_data", r#"invalid parameter "step": cannot parse "" to a valid duration"#);
    let zero = r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#;
    err(&get(&app, &format!("{base}&step=0")).await, 400, "bad_data", zero);
    err(&get(&app, &format!("{base}&step=-15")).await, 400, "bad_data", zero);
    err(
        &get(&app, &format!("{base}&step=-15s")).await,
        400,
        "bad_data",
        r#"invalid parameter "step": cannot parse "-15s" to a valid duration"#,
    );
    err(
        &get(&app, "/api/v1/query_range?query=up&start=1700000060&end=1700000000&step=15").await,
        400,
        "bad_data",
        r#"invalid parameter "end": end timestamp must not be before start time"#,
    );
    err(
        &get(&app, "/api/v1/query_range?query=up&start=yesterday&end=1700000000&step=15").await,
        400,
        "bad_data",
        r#"invalid parameter "start": cannot parse "yesterday" to a valid timestamp"#,
    );
    // 11,000 points per series at most: 11,000 steps pass, 11,001 do not.
    let a = get(&app, "/api/v1/query_range?query=up&start=0&end=11000&step=1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    err(
        &get(&app, "/api/v1/query_range?query=up&start=0&end=11001&step=1").await,
        400,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
    );
    err(
        &get(&app, "/api/v1/query?query=up&time=tomorrow").await,
        400,
        "bad_data",
        r#"invalid parameter "time": invalid time value for 'time': cannot parse "tomorrow" to a valid timestamp"#,
    );
    err(
        &get(&app, &format!("/api/v1/query?query={}", enc("sum(up"))).await,
        400,
        "bad_data",
        r#"invalid parameter "query": 1:4: parse error: unclosed left parenthesis"#,
    );
    err(
        &get(&app, "/api/v1/query?query=up&limit=x").await,
        400,
        "bad_data",
        r#"invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax"#,
    );
    err(
        &get(&app, "/api/v1/query?query=up&limit=-1").await,
        400,
        "bad_data",
        r#"invalid parameter "limit": limit must be non-negative"#,
    );
    err(
        &get(&app, "/api/v1/query?query=up&timeout=soon").await,
        400,
        "bad_data",
        r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#,
    );
    err(
        &get(&app, "/api/v1/query?query=up&lookback_delta=far").await,
        400,
        "bad_data",
        r#"error parsing lookback delta duration: cannot parse "far" to a valid duration"#,
    );
    let a = get(&app, &format!("/api/v1/query?query={}&time=1700000600", enc("up + on(job) up"))).await;
    assert_eq!(a.status.as_u16(), 422, "{}", a.body);
    assert!(a.body.starts_with(r#"{"status":"error","errorType":"execution","error":"#), "{}", a.body);
}

#[tokio::test]
async fn engine_limits_map_to_error_types() {
    // One sample in memory at most: any selector exceeds it.
    let db = Arc::new(Db::in_memory().unwrap());
    load(&db);
    let mut st = ApiState::new(db, ApiOptions::default());
    st.engine = Arc::new(Engine::new(EngineOptions { max_samples: 1, ..EngineOptions::default() }));
    let app = router(Arc::new(st));
    err(
        &get(&app, "/api/v1/query_range?query=up&start=1700000000&end=1700000600&step=15").await,
        422,
        "execution",
        "query processing would load too many samples into memory in query execution",
    );
    // A zero timeout expires before evaluation gets anywhere.
    let app = self::app();
    err(
        &get(&app, "/api/v1/query_range?query=up&start=1700000000&end=1700000600&step=15&timeout=0s").await,
        503,
        "timeout",
        "query timed out in query execution",
    );
}

#[tokio::test]
async fn lookback_delta_parameter_applies() {
    let app = app();
    // The last samples are at T0+600 s; 4 minutes later they are still seen
    // with the default lookback, not with a 1-minute one.
    let q = "/api/v1/query?query=up&time=1700000840";
    let a = get(&app, q).await;
    assert!(a.body.contains(r#""instance":"a""#), "{}", a.body);
    ok(
        &get(&app, &format!("{q}&lookback_delta=1m")).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
    );
}

#[tokio::test]
async fn query_limit_truncates_with_a_warning() {
    let app = app();
    let q = format!("/api/v1/query?query={}&time=1700000000&limit=1", enc(r#"sort_desc(up{instance=~"a|b"})"#));
    ok(
        &get(&app, &q).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1700000000,"1"]}]},"warnings":["results truncated due to limit"]}"#,
    );
    let q = format!("/api/v1/query_range?query={}&start=1700000000&end=1700000015&step=15&limit=1", enc("up"));
    let a = get(&app, &q).await;
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1, "{}", a.body);
    assert_eq!(v["warnings"], serde_json::json!(["results truncated due to limit"]));
    // A limit that is not exceeded adds nothing.
    let a = get(&app, &format!("/api/v1/query?query={}&time=1700000000&limit=5", enc(r#"up{instance="a"}"#))).await;
    assert!(!a.body.contains("warnings"), "{}", a.body);
}

#[tokio::test]
async fn annotations_become_infos() {
    let app = app();
    let a = get(&app, &format!("/api/v1/query?query={}&time=1700000600", enc(r#"rate(up{instance="a"}[5m])"#))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.ends_with(
            r#""infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"]}"#
        ),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn series_endpoint() {
    let app = app();
    let api_up = r#"{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"}"#;
    ok(
        &get(&app, &format!("/api/v1/series?match[]={}", enc(r#"up{job="api"}"#))).await,
        &format!(r#"{{"status":"success","data":[{api_up}]}}"#),
    );
    // Several selectors: the union, sorted, without duplicates; POST form.
    let form = format!("match[]={}&match[]={}&match%5B%5D=up", enc("http_requests_total"), enc(r#"up{job="db"}"#));
    ok(
        &post_form(&app, "/api/v1/series", &form).await,
        &format!(
            r#"{{"status":"success","data":[{{"__name__":"http_requests_total","code":"200","job":"api"}},{api_up},{{"__name__":"up","instance":"c","job":"db"}}]}}"#
        ),
    );
    // Outside the data's time range: nothing.
    ok(
        &get(&app, "/api/v1/series?match[]=up&start=1600000000&end=1600000100").await,
        r#"{"status":"success","data":[]}"#,
    );
    ok(
        &get(&app, "/api/v1/series?match[]=up&limit=1").await,
        r#"{"status":"success","data":[{"__name__":"up","instance":"a","job":"api"}],"warnings":["results truncated due to limit"]}"#,
    );
    err(&get(&app, "/api/v1/series").await, 400, "bad_data", "no match[] parameter provided");
    err(
        &get(&app, &format!("/api/v1/series?match[]={}", enc("sum(up)"))).await,
        400,
        "bad_data",
        r#"invalid parameter "match[]": 1:1: parse error: expected a series selector, got an aggregation"#,
    );
    err(
        &get(&app, &format!("/api/v1/series?match[]={}", enc(r#"{job=~".*"}"#))).await,
        400,
        "bad_data",
        r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#,
    );
    err(
        &get(&app, "/api/v1/series?match[]=up&x=%zz").await,
        400,
        "bad_data",
        r#"error parsing form values: invalid URL escape "%zz""#,
    );
}

#[tokio::test]
async fn labels_and_label_values() {
    let app = app();
    ok(&get(&app, "/api/v1/labels").await, r#"{"status":"success","data":["__name__","code","instance","job"]}"#);
    ok(
        &post_form(&app, "/api/v1/labels", "match[]=http_requests_total").await,
        r#"{"status":"success","data":["__name__","code","job"]}"#,
    );
    ok(
        &get(&app, "/api/v1/labels?limit=2").await,
        r#"{"status":"success","data":["__name__","code"],"warnings":["results truncated due to limit"]}"#,
    );
    ok(&get(&app, "/api/v1/label/job/values").await, r#"{"status":"success","data":["api","db"]}"#);
    ok(
        &get(&app, "/api/v1/label/__name__/values").await,
        r#"{"status":"success","data":["http_requests_total","up"]}"#,
    );
    ok(
        &get(&app, &format!("/api/v1/label/instance/values?match[]={}", enc(r#"up{job="api"}"#))).await,
        r#"{"status":"success","data":["a","b"]}"#,
    );
    ok(
        &get(&app, "/api/v1/label/instance/values?limit=1").await,
        r#"{"status":"success","data":["a"],"warnings":["results truncated due to limit"]}"#,
    );
    ok(&get(&app, "/api/v1/label/nope/values").await, r#"{"status":"success","data":[]}"#);
    // `U__` escaping of names in the path: U__job is "job".
    ok(&get(&app, "/api/v1/label/U__job/values").await, r#"{"status":"success","data":["api","db"]}"#);
    ok(
        &get(&app, "/api/v1/label/job/values?start=1600000000&end=1600000100").await,
        r#"{"status":"success","data":[]}"#,
    );
    let a = get(&app, "/api/v1/labels?match[]=%7B").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(a.body.starts_with(r#"{"status":"error","errorType":"bad_data","error":"1:"#), "{}", a.body);
    // Legacy name rules reject what UTF-8 rules allow.
    let legacy = router(state_with(ApiOptions { name_validation: NameValidation::Legacy, ..ApiOptions::default() }));
    err(&get(&legacy, "/api/v1/label/foo-bar/values").await, 400, "bad_data", r#"invalid label name: "foo-bar""#);
    ok(&get(&app, "/api/v1/label/foo-bar/values").await, r#"{"status":"success","data":[]}"#);
}

#[tokio::test]
async fn metadata_endpoint() {
    let st = state_with(ApiOptions::default());
    let m = |kind, help: &str| MetricMetadata { kind, help: help.into(), unit: String::new() };
    st.metadata.record("http_requests", m(MetricKind::Counter, "Requests <served>."));
    st.metadata.record("up", m(MetricKind::Gauge, "Up."));
    st.metadata.record("up", m(MetricKind::Gauge, "Target up."));
    let app = router(st);
    ok(
        &get(&app, "/api/v1/metadata").await,
        r#"{"status":"success","data":{"http_requests":[{"type":"counter","help":"Requests \u003cserved\u003e.","unit":""}],"up":[{"type":"gauge","help":"Up.","unit":""},{"type":"gauge","help":"Target up.","unit":""}]}}"#,
    );
    ok(
        &get(&app, "/api/v1/metadata?limit=1").await,
        r#"{"status":"success","data":{"http_requests":[{"type":"counter","help":"Requests \u003cserved\u003e.","unit":""}]}}"#,
    );
    ok(&get(&app, "/api/v1/metadata?limit=0").await, r#"{"status":"success","data":{}}"#);
    ok(
        &get(&app, "/api/v1/metadata?metric=up&limit_per_metric=1").await,
        r#"{"status":"success","data":{"up":[{"type":"gauge","help":"Up.","unit":""}]}}"#,
    );
    ok(&get(&app, "/api/v1/metadata?metric=nope").await, r#"{"status":"success","data":{}}"#);
    err(&get(&app, "/api/v1/metadata?limit=x").await, 400, "bad_data", "limit must be a number");
    err(&get(&app, "/api/v1/metadata?limit_per_metric=x").await, 400, "bad_data", "limit_per_metric must be a number");
}

#[tokio::test]
async fn status_endpoints() {
    let app = app();
    let v = env!("CARGO_PKG_VERSION");
    ok(
        &get(&app, "/api/v1/status/buildinfo").await,
        &format!(
            r#"{{"status":"success","data":{{"version":"3.0.0","revision":"unknown","branch":"unknown","buildUser":"unknown","buildDate":"unknown","goVersion":"rust","tidemarkVersion":"{v}"}}}}"#
        ),
    );
    ok(
        &get(&app, "/api/v1/status/flags").await,
        r#"{"status":"success","data":{"query.lookback-delta":"5m","query.max-concurrency":"20","query.max-samples":"50000000","query.timeout":"2m","storage.tsdb.path":"","storage.tsdb.retention":"","web.enable-admin-api":"false","web.enable-remote-write-receiver":"true"}}"#,
    );
    ok(
        &get(&app, "/api/v1/status/config").await,
        r#"{"status":"success","data":{"yaml":"global:\n  evaluation_interval: 1m\n"}}"#,
    );
    let a = get(&app, "/api/v1/status/runtimeinfo").await;
    assert_eq!(a.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    for key in [
        "startTime",
        "CWD",
        "hostname",
        "serverTime",
        "reloadConfigSuccess",
        "lastConfigTime",
        "corruptionCount",
        "goroutineCount",
        "GOMAXPROCS",
        "GOMEMLIMIT",
        "GOGC",
        "GODEBUG",
        "storageRetention",
    ] {
        assert!(v["data"].get(key).is_some(), "{key} missing: {}", a.body);
    }
    assert!(v["data"]["startTime"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn tsdb_status() {
    let app = app();
    ok(
        &get(&app, "/api/v1/status/tsdb?limit=2").await,
        r#"{"status":"success","data":{"headStats":{"numSeries":4,"numLabelPairs":8,"chunkCount":4,"minTime":1700000000000,"maxTime":1700000600000},"seriesCountByMetricName":[{"name":"up","value":3},{"name":"http_requests_total","value":1}],"labelValueCountByLabelName":[{"name":"instance","value":3},{"name":"__name__","value":2}],"memoryInBytesByLabelName":[{"name":"__name__","value":21},{"name":"job","value":5}],"seriesCountByLabelValuePair":[{"name":"__name__=up","value":3},{"name":"job=api","value":3}],"tidemarkDamage":{"walCorruptions":0,"walRecordsSkipped":0,"walSamplesLost":0,"chunksCorrupt":0,"blocksQuarantined":0,"scrubs":0,"lastScrubTime":null,"wal":[],"chunks":[],"quarantinedBlocks":[]}}}"#,
    );
    let a = get(&app, "/api/v1/status/tsdb").await;
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["data"]["seriesCountByLabelValuePair"].as_array().unwrap().len(), 8, "{}", a.body);
    err(&get(&app, "/api/v1/status/tsdb?limit=0").await, 400, "bad_data", "limit must be a positive number");
    err(&get(&app, "/api/v1/status/tsdb?limit=x").await, 400, "bad_data", "limit must be a positive number");
    err(&get(&app, "/api/v1/status/tsdb?limit=10001").await, 400, "bad_data", "limit must not exceed 10000");
}

#[tokio::test]
async fn format_query() {
    let app = app();
    ok(
        &get(&app, &format!("/api/v1/format_query?query={}", enc("sum(rate(x[5m]))by(job)"))).await,
        r#"{"status":"success","data":"sum by (job) (rate(x[5m]))"}"#,
    );
    ok(
        &post_form(&app, "/api/v1/format_query", &format!("query={}", enc(r#"foo{a="b"}>1"#))).await,
        r#"{"status":"success","data":"foo{a=\"b\"} \u003e 1"}"#,
    );
    err(
        &get(&app, &format!("/api/v1/format_query?query={}", enc("sum(up"))).await,
        400,
        "bad_data",
        r#"invalid parameter "query": 1:4: parse error: unclosed left parenthesis"#,
    );
}

#[tokio::test]
async fn snapshot_creates_an_openable_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Arc::new(Db::open(&data).unwrap());
    load(&db);
    let opts = ApiOptions { data_dir: Some(data.clone()), enable_admin_api: true, ..ApiOptions::default() };
    let app = router(Arc::new(ApiState::new(db.clone(), opts)));
    let up = [Matcher::equal("__name__", "up")];
    let a = send(&app, Request::post("/api/v1/admin/tsdb/snapshot").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let name = v["data"]["name"].as_str().unwrap().to_string();
    let b = name.as_bytes();
    assert_eq!(b.len(), "20231114T221320Z-".len() + 16, "{name}");
    assert!(b[8] == b'T' && b[15] == b'Z' && b[16] == b'-', "{name}");
    assert_eq!(a.body, format!(r#"{{"status":"success","data":{{"name":"{name}"}}}}"#));
    let snap = Db::open(data.join("snapshots").join(&name)).unwrap();
    let series = snap.querier(T0, T0 + 600_000).select(&up).unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(series[0].samples().unwrap().len(), 41);
    snap.close().unwrap();
    // PUT works too; skip_head leaves the head out (no blocks yet: empty).
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/admin/tsdb/snapshot?skip_head=true")
        .body(Body::empty())
        .unwrap();
    let a = send(&app, req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let empty = Db::open(data.join("snapshots").join(v["data"]["name"].as_str().unwrap())).unwrap();
    assert!(empty.querier(T0, T0 + 600_000).select(&up).unwrap().is_empty());
    empty.close().unwrap();
    err(
        &send(&app, Request::post("/api/v1/admin/tsdb/snapshot?skip_head=maybe").body(Body::empty()).unwrap()).await,
        400,
        "bad_data",
        r#"invalid parameter "skip_head": unable to parse boolean: strconv.ParseBool: parsing "maybe": invalid syntax"#,
    );
    // GET does not take a snapshot.
    assert_eq!(get(&app, "/api/v1/admin/tsdb/snapshot").await.status, StatusCode::METHOD_NOT_ALLOWED);
    db.close().unwrap();

    let in_memory = router(state_with(ApiOptions { enable_admin_api: true, ..ApiOptions::default() }));
    err(
        &send(&in_memory, Request::post("/api/v1/admin/tsdb/snapshot").body(Body::empty()).unwrap()).await,
        500,
        "unavailable",
        "snapshots need an on-disk database; this one is in memory",
    );
    // Off by default, as in Prometheus without --web.enable-admin-api.
    let disabled = self::app();
    err(
        &send(&disabled, Request::post("/api/v1/admin/tsdb/snapshot").body(Body::empty()).unwrap()).await,
        500,
        "unavailable",
        "admin APIs disabled",
    );
}

#[tokio::test]
async fn snapshots_are_bounded_in_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Arc::new(Db::open(&data).unwrap());
    load(&db);
    let opts =
        ApiOptions { data_dir: Some(data.clone()), enable_admin_api: true, max_snapshots: 2, ..ApiOptions::default() };
    let app = router(Arc::new(ApiState::new(db.clone(), opts)));
    let snap = || Request::post("/api/v1/admin/tsdb/snapshot").body(Body::empty()).unwrap();
    for _ in 0..2 {
        let a = send(&app, snap()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let third = send(&app, snap()).await;
    let root = data.join("snapshots");
    err(
        &third,
        500,
        "unavailable",
        &format!(
            "snapshot limit reached: 2 snapshots in {} (at most 2 are kept); delete old ones first",
            root.display()
        ),
    );
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
    // Deleting one makes room again.
    let first = std::fs::read_dir(&root).unwrap().next().unwrap().unwrap().path();
    std::fs::remove_dir_all(first).unwrap();
    assert_eq!(send(&app, snap()).await.status, StatusCode::OK);
    db.close().unwrap();
}

/// Under a size limit, a snapshot of the head that would not fit is refused
/// (size retention would otherwise delete blocks to pay for it); one
/// without the head (hard links only) still works.
#[tokio::test]
async fn snapshots_that_would_pass_the_size_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Arc::new(Db::builder(&data).retention_size(Some(1 << 20)).maintenance_interval(None).open().unwrap());
    // About 1.2 MB of WAL (a fresh series per sample) in a 1 MiB directory
    // limit: the head's snapshot cannot fit beside it.
    let t0 = 1_700_000_000_000i64;
    for batch in 0..30 {
        let mut app = db.appender();
        for i in 0..400 {
            let l = Labels::new([("__name__", "snap_room"), ("i", &format!("{batch}-{i}"))]).unwrap();
            app.append(&l, t0 + i64::from(batch), 1.0).unwrap();
        }
        if app.commit().is_err() {
            break; // the limit itself refused more: enough data for the test
        }
    }
    let opts = ApiOptions { data_dir: Some(data.clone()), enable_admin_api: true, ..ApiOptions::default() };
    let app = router(Arc::new(ApiState::new(db.clone(), opts)));
    let with_head = send(&app, Request::post("/api/v1/admin/tsdb/snapshot").body(Body::empty()).unwrap()).await;
    assert_eq!(with_head.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", with_head.body);
    assert!(with_head.body.contains("would push the data directory"), "{}", with_head.body);
    assert!(!data.join("snapshots").exists() || std::fs::read_dir(data.join("snapshots")).unwrap().count() == 0);
    let blocks_only =
        send(&app, Request::post("/api/v1/admin/tsdb/snapshot?skip_head=true").body(Body::empty()).unwrap()).await;
    assert_eq!(blocks_only.status, StatusCode::OK, "{}", blocks_only.body);
    db.close().unwrap();
}

#[tokio::test]
async fn state_changing_endpoints_refuse_cross_origin_browser_requests() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Arc::new(Db::open(&data).unwrap());
    let opts = ApiOptions { data_dir: Some(data.clone()), enable_admin_api: true, ..ApiOptions::default() };
    let app = router(Arc::new(ApiState::new(db.clone(), opts)));
    // What a browser sends for a form on http://evil.example posting to us.
    let form_post = |uri: &str, extra: (&str, &str)| {
        Request::post(uri)
            .header(header::HOST, "127.0.0.1:9201")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(extra.0, extra.1)
            .body(Body::from("skip_head=false"))
            .unwrap()
    };
    for extra in [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site"), ("origin", "null")] {
        for uri in ["/api/v1/admin/tsdb/snapshot", "/api/v1/write"] {
            let a = send(&app, form_post(uri, extra)).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri} {extra:?}: {}", a.body);
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(v["errorType"], "forbidden", "{}", a.body);
            assert!(v["error"].as_str().unwrap().starts_with("cross-origin request refused"), "{}", a.body);
        }
    }
    assert!(!data.join("snapshots").exists(), "a refused snapshot call wrote to disk");
    // The same page origin (Prometheus-style UI on our own host) passes,
    // and so do clients that send no Origin at all.
    let same = send(&app, form_post("/api/v1/admin/tsdb/snapshot", ("origin", "http://127.0.0.1:9201"))).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    let curl = Request::post("/api/v1/admin/tsdb/snapshot").body(Body::empty()).unwrap();
    assert_eq!(send(&app, curl).await.status, StatusCode::OK);
    // Read-only endpoints are not affected.
    let q = Request::get("/api/v1/query?query=1").header("origin", "http://evil.example").body(Body::empty()).unwrap();
    assert_eq!(send(&app, q).await.status, StatusCode::OK);
    db.close().unwrap();
}

#[tokio::test]
async fn federate_writes_the_latest_samples_as_text() {
    let db = Arc::new(Db::in_memory().unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut ap = db.appender();
    let a = labels(&[("__name__", "up"), ("job", "api"), ("instance", "a")]);
    let b = labels(&[("__name__", "up"), ("job", "db")]);
    let c = labels(&[("__name__", "errors_total"), ("job", "api")]);
    let stale = labels(&[("__name__", "up"), ("job", "gone")]);
    let old = labels(&[("__name__", "up"), ("job", "old")]);
    ap.append(&old, now - 3_600_000, 1.0).unwrap();
    ap.append(&a, now - 20_000, 0.0).unwrap();
    ap.append(&stale, now - 20_000, 1.0).unwrap();
    ap.append(&a, now - 5_000, 1.0).unwrap();
    ap.append(&b, now - 5_000, 2_500_000.0).unwrap();
    ap.append(&stale, now - 5_000, tidemark::storage::stale_nan()).unwrap();
    ap.append(&c, now - 4_000, 7.0).unwrap();
    ap.commit().unwrap();
    let app = router(Arc::new(ApiState::new(db, ApiOptions::default())));
    let r = get(&app, &format!("/federate?match[]=up&match[]={}", enc(r#"{__name__="errors_total"}"#))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        r.body,
        format!(
            "# TYPE errors_total untyped\nerrors_total{{job=\"api\",instance=\"\"}} 7 {}\n# TYPE up untyped\nup{{instance=\"a\",job=\"api\"}} 1 {}\nup{{job=\"db\",instance=\"\"}} 2.5e+06 {}\n",
            now - 4_000,
            now - 5_000,
            now - 5_000
        )
    );
    let r = get(&app, "/federate?match[]=%7B").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.starts_with("1:") && r.body.ends_with('\n'), "{}", r.body);
    let r = get(&app, "/federate").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn remote_write_route_reaches_the_receiver() {
    use prost::Message;
    use tidemark::remote::proto::{v1, Sample};

    let st = state_with(ApiOptions { max_remote_write_body: 4096, ..ApiOptions::default() });
    let app = router(st.clone());
    let req = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: "pushed".into() },
                v1::Label { name: "job".into(), value: "rw".into() },
            ],
            samples: vec![Sample { value: 4.5, timestamp: T0 }],
            ..Default::default()
        }],
        metadata: Vec::new(),
    };
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    let ct = "application/x-protobuf";
    let post = |body: Vec<u8>| {
        Request::post("/api/v1/write")
            .header(header::CONTENT_TYPE, ct)
            .header(header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(Body::from(body))
            .unwrap()
    };
    // The route answers exactly what the receiver answers for the same
    // request (checked on a body the receiver must refuse, which leaves no
    // state behind), so the route is wired to it.
    let garbage = b"not snappy".to_vec();
    let direct = st.receiver.handle(Some(ct), Some("snappy"), &garbage);
    let a = send(&app, post(garbage)).await;
    assert_eq!((a.status.as_u16(), a.body.as_str()), (direct.status, direct.body.as_str()));
    assert!(direct.status >= 400, "garbage accepted: {direct:?}");

    let a = send(&app, post(body)).await;
    if a.status.is_success() {
        // With the receiver built: the sample is stored and queryable.
        ok(
            &get(&app, "/api/v1/query?query=pushed&time=1700000000").await,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"pushed","job":"rw"},"value":[1700000000,"4.5"]}]}}"#,
        );
    } else {
        // Until the receiver's body lands it answers 501 to everything.
        assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED, "{}", a.body);
    }

    let a = send(&app, post(vec![0u8; 5000])).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    // (The request above declares no length, so the body was read up to the
    // limit.) A declared length over the limit is refused without reading.
    let declared = Request::post("/api/v1/write")
        .header(header::CONTENT_TYPE, ct)
        .header(header::CONTENT_LENGTH, "999999")
        .body(Body::from(vec![0u8; 10]))
        .unwrap();
    let a = send(&app, declared).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "request body larger than 4096 bytes\n"));
    assert_eq!(get(&app, "/api/v1/write").await.status, StatusCode::METHOD_NOT_ALLOWED);
    // A form post (what a browser or a confused API client sends) is not a
    // remote write: 415 with the accepted content types, as the remote write
    // spec asks (found by the `http_params` fuzz target).
    let a = post_form(&app, "/api/v1/write", "query=up&time=1014146450.5").await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.body);
    assert!(a.body.contains("unsupported content type") && a.body.contains("x-www-form-urlencoded"), "{}", a.body);
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let app = app();
    let a = get(&app, "/-/healthy").await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "Tidemark is Healthy.\n"));
    let a = get(&app, "/-/ready").await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "Tidemark is Ready.\n"));
    let head = send(&app, Request::head("/-/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(head.status, StatusCode::OK);
    err(&get(&app, "/api/v1/nope").await, 404, "not_found", "unknown API endpoint /api/v1/nope");
    err(
        &send(&app, Request::post("/api/v1/unknown").body(Body::empty()).unwrap()).await,
        404,
        "not_found",
        "unknown API endpoint /api/v1/unknown",
    );
    // Remote read exists: an empty body is a bad request, in plain text.
    let a = send(&app, Request::post("/api/v1/read").body(Body::empty()).unwrap()).await;
    assert_eq!((a.status, a.body.as_str()), (StatusCode::BAD_REQUEST, "snappy: corrupt input (empty)\n"));
}

/// Hostile or absurd parameters get an answer, never a crashed handler.
#[tokio::test]
async fn extreme_inputs_get_answers() {
    let app = app();
    let queries = ["up", "up offset -5y", "up[100y]", "max_over_time(up[1y:1s])", "timestamp(up)", "", "{", "\u{0}"];
    let times =
        ["-9.1e15", "9.1e15", "1e300", "-0", "0.0005", "9999-12-31T23:59:59.999999999Z", "0000-01-01T00:00:00Z"];
    for q in queries {
        for t in times {
            let a = get(&app, &format!("/api/v1/query?query={}&time={}", enc(q), enc(t))).await;
            assert!(!a.body.contains("request handler failed"), "{q} @ {t}: {}", a.body);
        }
        for (start, end, step) in
            [("-9.1e15", "9.1e15", "1e12"), ("0", "1", "1e-9"), ("0", "1e15", "1e11"), ("1", "1", "1ms")]
        {
            let a =
                get(&app, &format!("/api/v1/query_range?query={}&start={start}&end={end}&step={step}", enc(q))).await;
            assert!(!a.body.contains("request handler failed"), "{q} {start}..{end}/{step}: {}", a.body);
        }
    }
    for path in [
        "/api/v1/series?match[]=up&start=-9.1e15&end=9.1e15",
        "/api/v1/labels?start=9e15&end=-9e15",
        "/api/v1/label/%FF/values",
        "/api/v1/label/U__%F0%9F%98%80/values",
        "/api/v1/label/U___110000_/values",
        "/api/v1/status/tsdb?limit=99999999999999999999999",
        "/federate?match[]=up&match[]=%7B__name__%3D~%22.%2B%22%7D",
        "/api/v1/query?query=up&timeout=1e300",
        "/api/v1/query?query=up&limit=99999999999999999999",
    ] {
        let a = get(&app, path).await;
        assert!(
            !a.body.contains("request handler failed") && a.status != StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {} {}",
            a.status,
            a.body
        );
    }
}

#[tokio::test]
async fn features_tidemark_lacks_answer_empty() {
    let app = app();
    ok(&get(&app, "/api/v1/rules").await, r#"{"status":"success","data":{"groups":[]}}"#);
    ok(&get(&app, "/api/v1/alerts").await, r#"{"status":"success","data":{"alerts":[]}}"#);
    ok(&get(&app, "/api/v1/targets").await, r#"{"status":"success","data":{"activeTargets":[],"droppedTargets":[]}}"#);
    ok(
        &post_form(&app, "/api/v1/query_exemplars", "query=up&start=0&end=1").await,
        r#"{"status":"success","data":[]}"#,
    );
    err(
        &get(&app, "/api/v1/query_exemplars?query=up&start=2&end=1").await,
        400,
        "bad_data",
        "end timestamp must not be before start timestamp",
    );
}

#[tokio::test]
async fn post_body_values_come_before_query_string_values() {
    let app = app();
    // Go's r.FormValue: the body's `query` wins over the URL's.
    let form = format!("query={}", enc(r#"up{instance="c"}"#));
    ok(
        &post_form(&app, "/api/v1/query?query=nothing&time=1700000000", &form).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"c","job":"db"},"value":[1700000000,"1"]}]}}"#,
    );
    // A body that is not form-encoded is ignored.
    let req = Request::post("/api/v1/query?query=1&time=1700000000")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("query=2"))
        .unwrap();
    ok(&send(&app, req).await, r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}"#);
}

/// `/series`, `/labels`, label values and `/federate` run within the query
/// timeout like queries do (here a zero timeout: nothing may run at all),
/// and answer `timeout` rather than working on.
#[tokio::test]
async fn index_lookups_and_federation_observe_the_query_timeout() {
    let db = Arc::new(Db::in_memory().unwrap());
    load(&db);
    let opts = ApiOptions { query_timeout: Duration::ZERO, ..ApiOptions::default() };
    let app = router(Arc::new(ApiState::new(db, opts)));
    for uri in ["/api/v1/series?match[]=up", "/api/v1/labels", "/api/v1/label/job/values"] {
        err(&get(&app, uri).await, 503, "timeout", "query timed out in query execution");
    }
    let f = get(&app, "/federate?match[]=up").await;
    assert_eq!(f.status, StatusCode::SERVICE_UNAVAILABLE, "{}", f.body);
    assert_eq!(f.body, "query timed out in query execution\n");
}

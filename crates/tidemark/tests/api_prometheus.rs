//! Differential test of the HTTP API against a real Prometheus 2.42 on
//! 127.0.0.1: the same samples are loaded into both (Prometheus through
//! `promtool tsdb create-blocks-from openmetrics`, Tidemark through an
//! appender), then the same requests go to both and the answers (status,
//! content type, body) must be byte-identical.
//!
//! Left out because Prometheus 2.42 differs by design or by version: the
//! `limit` and `lookback_delta` parameters (added in later versions), the
//! lowercase "invalid time value" (Prometheus 3's wording; 2.42 capitalises
//! it), range selectors with a sample exactly at their start (left-open
//! since Prometheus 3),
//! info/warning annotations (Prometheus 3), parse error wording and
//! positions (our parser reports them its own way), build and runtime
//! information, TSDB statistics (Prometheus holds this data in blocks, not
//! the head), the admin API (off by default in Prometheus) and the JSON 404
//! for unknown `/api/v1/` paths (Prometheus answers plain text).
//!
//! Fails (never skips) when `prometheus` or `promtool` is missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use tidemark::api::{router, ApiOptions, ApiState};
use tidemark::storage::{Db, Labels, NameValidation};
use tidemark_testkit::{Prometheus, PrometheusConfig};
use tower::ServiceExt;

/// 2023-11-14T22:13:20Z, in seconds.
const T0: i64 = 1_700_000_000;

/// The samples, as (metric name, labels, [(seconds, value)]).
type Data = Vec<(&'static str, Vec<(&'static str, &'static str)>, Vec<(i64, f64)>)>;

fn data(now_s: i64) -> Data {
    let steps = |f: &dyn Fn(i64) -> f64| (0..=40).map(|i| (T0 + i * 15, f(i))).collect::<Vec<_>>();
    vec![
        ("up", vec![("job", "api"), ("instance", "a")], steps(&|_| 1.0)),
        ("up", vec![("job", "api"), ("instance", "b")], steps(&|_| 0.0)),
        ("up", vec![("job", "db"), ("instance", "c")], steps(&|_| 1.0)),
        ("http_requests_total", vec![("job", "api"), ("code", "200")], steps(&|i| 1.5 * i as f64)),
        ("tiny", vec![("job", "x")], steps(&|i| i as f64 * 1e-9)),
        // Recent samples, for /federate.
        ("fed_up", vec![("job", "api"), ("instance", "a")], vec![(now_s - 100, 0.0), (now_s - 40, 1.0)]),
        ("fed_up", vec![("job", "db")], vec![(now_s - 40, 2_500_000.0)]),
        ("fed_bytes", vec![("job", "api")], vec![(now_s - 30, 0.125)]),
    ]
}

fn openmetrics(d: &Data) -> String {
    let mut out = String::new();
    let mut families: Vec<&str> = d.iter().map(|(n, _, _)| *n).collect();
    families.dedup();
    for fam in families {
        out.push_str(&format!("# TYPE {fam} gauge\n"));
        for (name, labels, samples) in d.iter().filter(|(n, _, _)| *n == fam) {
            let ls: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            for (t, v) in samples {
                out.push_str(&format!("{name}{{{}}} {v} {t}\n", ls.join(",")));
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn load(db: &Db, d: &Data) {
    let mut app = db.appender();
    for (name, labels, samples) in d {
        let l = Labels::new(labels.iter().copied().chain([("__name__", *name)])).unwrap();
        for (t, v) in samples {
            app.append(&l, t * 1000, *v).unwrap();
        }
    }
    app.commit().unwrap();
}

/// A plain HTTP/1.0 request: status, content type, body.
fn http(port: u16, method: &str, path: &str, form: Option<&str>) -> Result<(u16, String, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some(f) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{f}",
            f.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8(buf).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP response")?;
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("malformed status line")?;
    let ct = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Ok((status, ct, body.to_string()))
}

async fn ours(app: &Router, method: &str, path: &str, form: Option<&str>) -> (u16, String, String) {
    let mut b = Request::builder().method(method).uri(path);
    if form.is_some() {
        b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let req = b.body(Body::from(form.unwrap_or("").to_string())).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req)).await.unwrap().unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

fn enc(s: &str) -> String {
    tidemark_testkit::url_encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_prometheus_2_42() {
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let d = data(now_s);
    let work = tempfile::tempdir().unwrap();
    let om = work.path().join("data.om");
    std::fs::write(&om, openmetrics(&d)).unwrap();
    let tsdb = work.path().join("tsdb");
    let (om_arg, tsdb_arg) = (om.display().to_string(), tsdb.display().to_string());
    tidemark_testkit::promtool(["tsdb", "create-blocks-from", "openmetrics", &om_arg, &tsdb_arg])
        .and_then(|o| o.into_stdout())
        .unwrap_or_else(|e| panic!("{e}"));
    let prom = tokio::task::spawn_blocking(move || {
        let mut config = PrometheusConfig::new(tsdb);
        config.args = vec!["--storage.tsdb.retention.time=100y".into(), "--query.lookback-delta=5m".into()];
        Prometheus::start(config).unwrap_or_else(|e| panic!("{e}"))
    })
    .await
    .unwrap();

    let db = Arc::new(Db::in_memory().unwrap());
    load(&db, &d);
    // Prometheus 2.42 validates label names with the legacy rules.
    let opts = ApiOptions { name_validation: NameValidation::Legacy, ..ApiOptions::default() };
    let app = router(Arc::new(ApiState::new(db, opts)));

    let q = |query: &str, rest: &str| format!("/api/v1/query?query={}&{rest}", enc(query));
    let qr = |query: &str, rest: &str| format!("/api/v1/query_range?query={}&{rest}", enc(query));
    let gets: Vec<String> = vec![
        q(r#"up{instance="a"}"#, "time=1700000060"),
        q("up", "time=1700000060"),
        q("http_requests_total", "time=2023-11-14T22:14:20.5Z"),
        q("http_requests_total", "time=2023-11-15T00:14:20.123%2B02:00"),
        q("1.5", "time=1700000000.120"),
        q(r#""a<b&""#, "time=1700000000.120"),
        q("1/0", "time=1700000000"),
        q("-1/0", "time=1700000000"),
        q("0/0", "time=1700000000"),
        q("scalar(vector(1e21))", "time=1700000000.001"),
        q("vector(1e21)", "time=1700000000.001"),
        q("vector(1e-7)", "time=1700000000.120"),
        q("tiny", "time=1700000600"),
        q("sum by (job) (tiny)", "time=1700000300"),
        // 31 s, not 30 s: Prometheus 3 (and we) exclude a sample exactly at
        // the range's start, 2.42 includes it.
        q(r#"up{instance="b"}[31s]"#, "time=1700000030"),
        q("nothing", "time=1700000000"),
        q("up", "time=1700000840"),
        q("up", "time=1700000000&timeout=soon"),
        qr("http_requests_total", "start=1700000000&end=1700000060&step=30s"),
        qr("http_requests_total", "start=1700000000&end=1700000060&step=30"),
        qr("http_requests_total", "start=1700000000.5&end=1700000060&step=0.5"),
        qr("up", "start=2023-11-14T22:13:20Z&end=2023-11-14T22:14:20Z&step=1m"),
        qr("rate(http_requests_total[100s])", "start=1700000000&end=1700000600&step=60"),
        qr("up", "start=1700000000&end=1700000060"),
        qr("up", "start=1700000000&end=1700000060&step=abc"),
        qr("up", "start=1700000000&end=1700000060&step=0"),
        qr("up", "start=1700000000&end=1700000060&step=-15"),
        qr("up", "start=1700000000&end=1700000060&step=-15s"),
        qr("up", "start=1700000060&end=1700000000&step=15"),
        qr("up", "start=yesterday&end=1700000000&step=15"),
        qr("up", "start=0&end=11001&step=1"),
        "/api/v1/series?match[]=up".into(),
        format!("/api/v1/series?match[]={}", enc(r#"up{job="api"}"#)),
        format!("/api/v1/series?match[]={}&match[]=up&match[]={}", enc("http_requests_total"), enc(r#"{job="db"}"#)),
        "/api/v1/series?match[]=up&start=1600000000&end=1600000100".into(),
        "/api/v1/series?match[]=up&start=2023-11-14T22:13:20Z&end=1700000000".into(),
        "/api/v1/series".into(),
        format!("/api/v1/series?match[]={}", enc(r#"{job=~".*"}"#)),
        "/api/v1/series?match[]=up&x=%zz".into(),
        "/api/v1/labels".into(),
        "/api/v1/labels?match[]=http_requests_total".into(),
        "/api/v1/labels?start=1600000000&end=1600000100".into(),
        "/api/v1/label/job/values".into(),
        "/api/v1/label/__name__/values".into(),
        format!("/api/v1/label/instance/values?match[]={}", enc(r#"up{job="api"}"#)),
        "/api/v1/label/nope/values".into(),
        "/api/v1/label/foo-bar/values".into(),
        "/api/v1/metadata".into(),
        "/api/v1/metadata?limit=x".into(),
        format!("/federate?match[]=fed_up&match[]={}", enc(r#"{__name__="fed_bytes"}"#)),
        "/federate?match[]=nothing".into(),
        "/api/v1/rules".into(),
        "/api/v1/alerts".into(),
        "/api/v1/targets".into(),
        format!("/api/v1/query_exemplars?query={}&start=1700000000&end=1700000600", enc("up")),
        "/api/v1/query_exemplars?query=up&start=1700000600&end=1700000000".into(),
        q("", "time=1700000000"),
    ];
    let formats = [
        r#"sum by (job, instance) (rate(http_requests_total{job="api", code=~"5.."}[5m])) / on (job, instance) group_left sum by (job, instance) (rate(http_requests_total{job="api"}[5m])) > 0.01"#,
        r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[5m])))"#,
        "max_over_time(up[1h:5m] offset 1d) unless ignoring(instance) up @ 1700000000",
        "-a + (b * c) ^ 2 % 3",
        r#"topk(5, count by (__name__) ({__name__=~".+"}))"#,
        "sum(rate(x[5m]))by(job)",
    ];
    let mut requests: Vec<(String, Option<String>)> = gets.into_iter().map(|g| (g, None)).collect();
    for f in formats {
        requests.push((format!("/api/v1/format_query?query={}", enc(f)), None));
    }
    // Form POSTs, with a URL parameter the body overrides.
    requests.push(("/api/v1/query?query=nothing".into(), Some(format!("query={}&time=1700000060", enc("up")))));
    requests.push(("/api/v1/query_range".into(), Some("query=up&start=1700000000&end=1700000060&step=15".into())));
    requests.push(("/api/v1/series".into(), Some(format!("match[]={}", enc(r#"up{job="db"}"#)))));
    requests.push(("/api/v1/labels".into(), Some("match[]=up".into())));
    requests.push(("/api/v1/format_query".into(), Some(format!("query={}", enc("a>b")))));

    let mut failures = Vec::new();
    for (path, form) in &requests {
        let method = if form.is_some() { "POST" } else { "GET" };
        let theirs = {
            let (p, f, port) = (path.clone(), form.clone(), prom.port());
            tokio::task::spawn_blocking(move || http(port, method, &p, f.as_deref()))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("request to prometheus failed: {e}; log:\n{}", prom.log_tail(30)))
        };
        let mine = ours(&app, method, path, form.as_deref()).await;
        if mine != theirs {
            failures.push(format!("{method} {path} {form:?}\n  prometheus: {theirs:?}\n  tidemark:   {mine:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} requests differ:\n{}", failures.len(), requests.len(), failures.join("\n"));
}

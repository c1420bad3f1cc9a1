//! Compressed API answers: the query, lookup, status, rules and federation
//! routes compress by `Accept-Encoding` (gzip, zstd; q-values respected),
//! others answer as they are; through the router, then through
//! `tidemark serve` with curl and promtool (Go's HTTP client asks for gzip
//! on its own and decompresses transparently) as the clients.

use std::io::Read;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use tidemark::api::{router, ApiOptions, ApiState};
use tidemark::storage::{Db, Labels};
use tidemark_testkit::{Tidemark, TidemarkConfig};
use tower::ServiceExt;

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

/// 50 series × 240 samples at 15 s: a `query_range` answer of ~200 KB.
fn app() -> Router {
    let db = Arc::new(Db::in_memory().unwrap());
    let mut app = db.appender();
    for i in 0..50 {
        let l = Labels::new([
            ("__name__", "http_requests_total"),
            ("instance", &format!("host-{i:02}:9100")),
            ("job", "api"),
        ])
        .unwrap();
        for k in 0..240i64 {
            app.append(&l, T0 + k * 15_000, (k * (i + 1)) as f64 * 1.5).unwrap();
        }
    }
    // `/federate` answers the newest samples within the lookback of now.
    let now = tidemark_testkit::now_ms();
    for i in 0..50 {
        let l = Labels::new([("__name__", "up"), ("instance", &format!("host-{i:02}:9100")), ("job", "api")]).unwrap();
        app.append(&l, now - 10_000, 1.0).unwrap();
    }
    app.commit().unwrap();
    router(Arc::new(ApiState::new(db, ApiOptions::default())))
}

struct Answer {
    status: StatusCode,
    encoding: Option<String>,
    vary: Option<String>,
    body: Vec<u8>,
}

async fn send(app: &Router, method: &str, uri: &str, accept: Option<&str>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT_ENCODING, a);
    }
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req.body(Body::empty()).unwrap()))
        .await
        .expect("request timed out")
        .unwrap();
    let h = |n| resp.headers().get(n).map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned());
    let (status, encoding, vary) = (resp.status(), h(header::CONTENT_ENCODING), h(header::VARY));
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec();
    Answer { status, encoding, vary, body }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).expect("valid gzip");
    out
}

fn unzstd(b: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(b).expect("valid zstd")
}

const RANGE: &str = "/api/v1/query_range?query=rate(http_requests_total[1m])&start=1700000000&end=1700003600&step=15";

#[tokio::test]
async fn query_answers_compress_by_accept_encoding() {
    let app = app();
    let plain = send(&app, "GET", RANGE, None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.encoding, None);
    assert!(plain.body.len() > 100_000, "answer of {} bytes", plain.body.len());
    assert!(plain.body.starts_with(br#"{"status":"success","data":{"resultType":"matrix""#));

    let gz = send(&app, "GET", RANGE, Some("gzip")).await;
    assert_eq!((gz.status, gz.encoding.as_deref()), (StatusCode::OK, Some("gzip")));
    assert_eq!(gz.vary.as_deref(), Some("accept-encoding"));
    assert_eq!(gunzip(&gz.body), plain.body);
    assert!(gz.body.len() * 5 < plain.body.len(), "gzip {} of {} bytes", gz.body.len(), plain.body.len());

    let zs = send(&app, "GET", RANGE, Some("zstd")).await;
    assert_eq!(zs.encoding.as_deref(), Some("zstd"));
    assert_eq!(unzstd(&zs.body), plain.body);

    // Both allowed: zstd. q-values win over that preference, q=0 refuses.
    assert_eq!(send(&app, "GET", RANGE, Some("gzip, deflate, br, zstd")).await.encoding.as_deref(), Some("zstd"));
    assert_eq!(send(&app, "GET", RANGE, Some("zstd;q=0.5, gzip")).await.encoding.as_deref(), Some("gzip"));
    assert_eq!(send(&app, "GET", RANGE, Some("zstd;q=0, gzip;q=0.1")).await.encoding.as_deref(), Some("gzip"));
    // Nothing we offer: as it is.
    for accept in ["identity", "br", "gzip;q=0", "compress"] {
        let a = send(&app, "GET", RANGE, Some(accept)).await;
        assert_eq!((a.encoding.as_deref(), &a.body), (None, &plain.body), "Accept-Encoding: {accept}");
    }
    // POST answers too.
    let post = send(&app, "POST", RANGE, Some("gzip")).await;
    assert_eq!(gunzip(&post.body), plain.body);
}

#[tokio::test]
async fn lookup_and_federation_routes_compress_others_do_not() {
    let app = app();
    for uri in [
        "/api/v1/query?query=http_requests_total&time=1700003000",
        "/api/v1/series?match[]=http_requests_total",
        "/api/v1/labels",
        "/api/v1/label/instance/values",
        "/api/v1/status/tsdb",
        "/federate?match[]=up",
    ] {
        let plain = send(&app, "GET", uri, None).await;
        assert_eq!(plain.status, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&plain.body));
        let gz = send(&app, "GET", uri, Some("gzip")).await;
        assert_eq!(gz.encoding.as_deref(), Some("gzip"), "{uri}");
        assert_eq!(gunzip(&gz.body), plain.body, "{uri}");
        let zs = send(&app, "GET", uri, Some("zstd")).await;
        assert_eq!(unzstd(&zs.body), plain.body, "{uri}");
    }
    // Short answers and the remote write route stay as they are.
    let healthy = send(&app, "GET", "/-/healthy", Some("gzip")).await;
    assert_eq!((healthy.status, healthy.encoding), (StatusCode::OK, None));
    let write = send(&app, "POST", "/api/v1/write", Some("gzip")).await;
    assert_eq!(write.encoding, None);
    assert!(write.status.is_client_error(), "{}", write.status);
}

/// Through the real server: curl asks for gzip and zstd by name, promtool's
/// Go client asks for gzip by itself; both read the same answer as a client
/// that asks for nothing.
#[test]
fn serve_compresses_for_real_clients() {
    use prost::Message;
    use tidemark::remote::proto::v1;

    let dir = tempfile::tempdir().unwrap();
    let config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), dir.path());
    let server = Tidemark::start(config).unwrap_or_else(|e| panic!("{e}"));
    let base = server.url();
    let now = tidemark_testkit::now_ms();
    let timeseries = (0..20)
        .map(|i| v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: "jobs_total".into() },
                v1::Label { name: "instance".into(), value: format!("host-{i:02}") },
            ],
            samples: (0..120)
                .map(|k| v1::Sample { value: (k * i) as f64, timestamp: now - 3_600_000 + k * 30_000 })
                .collect(),
            ..Default::default()
        })
        .collect();
    let body = v1::WriteRequest { timeseries, metadata: Vec::new() }.encode_to_vec();
    let body = snap::raw::Encoder::new().compress_vec(&body).unwrap();
    let resp = tidemark_testkit::post(
        &format!("{base}/api/v1/write"),
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    )
    .unwrap();
    assert!(resp.is_success(), "{}", resp.text());

    let (start, end) = ((now - 3_600_000) / 1000, now / 1000);
    let url = format!("{base}/api/v1/query_range?query=sum%20by%20(instance)%20(rate(jobs_total%5B5m%5D))&start={start}&end={end}&step=30");
    let curl = |accept: Option<&str>| {
        let headers = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "-D"]).arg(headers.path());
        if let Some(a) = accept {
            cmd.args(["-H", &format!("Accept-Encoding: {a}")]);
        }
        let out = cmd.arg(&url).output().expect("curl runs");
        assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
        let headers = std::fs::read_to_string(headers.path()).unwrap().to_ascii_lowercase();
        let encoding = headers.lines().find_map(|l| l.strip_prefix("content-encoding: ")).map(|v| v.trim().to_owned());
        (encoding, out.stdout)
    };
    let (enc, plain) = curl(None);
    assert_eq!(enc, None);
    assert!(plain.starts_with(
        br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"host-00"}"#
    ));
    let (enc, gz) = curl(Some("gzip"));
    assert_eq!(enc.as_deref(), Some("gzip"));
    assert_eq!(gunzip(&gz), plain);
    let (enc, zs) = curl(Some("zstd"));
    assert_eq!(enc.as_deref(), Some("zstd"));
    assert_eq!(unzstd(&zs), plain);

    // promtool (Go's net/http: `Accept-Encoding: gzip` added and undone by
    // the transport) reads the compressed answer.
    let out = tidemark_testkit::promtool([
        "query",
        "range",
        "--start",
        &start.to_string(),
        "--end",
        &end.to_string(),
        "--step",
        "30s",
        &base,
        "sum by (instance) (rate(jobs_total[5m]))",
    ])
    .unwrap();
    assert!(out.success(), "promtool: {out:?}");
    let text = out.into_stdout().unwrap();
    assert_eq!(text.matches("{instance=\"host-").count(), 20, "{text}");
    let metrics = tidemark_testkit::get(&format!("{base}/metrics")).unwrap().text();
    // Every query above reached the server: curl three times, promtool once.
    assert!(
        metrics.contains("tidemark_http_requests_total{handler=\"/api/v1/query_range\",code=\"200\"} 4"),
        "{metrics}"
    );
}

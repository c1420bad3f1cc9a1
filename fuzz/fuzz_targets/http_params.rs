//! Arbitrary HTTP API requests through the real router of an in-memory
//! `Tidemark` holding a small fixed data set: an endpoint, a method, and a
//! query string or form body built from key/value pairs whose keys are
//! mostly the real parameter names (drawn with `arbitrary`, or, for inputs
//! starting with `GET /` or `POST /`, read as the text form the seeds use).
//! Checks: no panic; the status is one the Prometheus API uses (500 only
//! for `unavailable`, as Prometheus does); every JSON answer is JSON with
//! `status` `success` (on 200), or `error` with `errorType` and `error`
//! strings (not on 2xx).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::http::{header, Method, Request};
use libfuzzer_sys::fuzz_target;
use tidemark::{Tidemark, TidemarkOptions};
use tidemark_storage::{stale_nan, Labels};
use tower::ServiceExt;

/// Samples are at `BASE + k * 15 s`, so `time`/`start`/`end` seeds near
/// 1.7e9 s hit data.
const BASE: i64 = 1_700_000_000_000;

fn instance() -> &'static Tidemark {
    static T: OnceLock<Tidemark> = OnceLock::new();
    T.get_or_init(|| {
        let opts = TidemarkOptions {
            // Each execution must stay short: a hostile query gives up after
            // a second or a small sample budget.
            query_timeout: Duration::from_secs(1),
            query_max_samples: 100_000,
            // Keep everything: the fixed data set is far in the past.
            retention_time: None,
            // The snapshot endpoint's parameters are fuzzed too (in memory
            // it answers `unavailable` after parsing them).
            enable_admin_api: true,
            ..TidemarkOptions::in_memory()
        };
        let t = Tidemark::open(opts).expect("in-memory instance");
        let mut app = t.db().appender();
        for (i, job) in ["api", "db"].iter().enumerate() {
            let c = Labels::new([("__name__", "http_requests_total"), ("job", job), ("code", "200")]).expect("labels");
            let g = Labels::new([("__name__", "temperature"), ("job", job)]).expect("labels");
            for k in 0..40i64 {
                app.append(&c, BASE + k * 15_000, (k * (i as i64 + 1)) as f64).expect("append");
                app.append(&g, BASE + k * 15_000 + 7, (k as f64).sin() * 10.0).expect("append");
            }
            app.append(&g, BASE + 40 * 15_000 + 7, stale_nan()).expect("append");
            for (b, le) in ["0.1", "1", "+Inf"].iter().enumerate() {
                let h = Labels::new([("__name__", "latency_bucket"), ("job", job), ("le", le)]).expect("labels");
                for k in 0..40i64 {
                    app.append(&h, BASE + k * 15_000, (k * (b as i64 + 1)) as f64).expect("append");
                }
            }
        }
        app.commit().expect("commit");
        t
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
}

#[derive(Debug, Arbitrary)]
enum Endpoint {
    Query,
    QueryRange,
    Series,
    Labels,
    LabelValues(String),
    FormatQuery,
    Metadata,
    Federate,
    Buildinfo,
    Runtimeinfo,
    Flags,
    Config,
    Tsdb,
    Snapshot,
    QueryExemplars,
    Rules,
    Other(String),
}

impl Endpoint {
    fn path(&self) -> String {
        match self {
            Endpoint::Query => "/api/v1/query".into(),
            Endpoint::QueryRange => "/api/v1/query_range".into(),
            Endpoint::Series => "/api/v1/series".into(),
            Endpoint::Labels => "/api/v1/labels".into(),
            Endpoint::LabelValues(name) => format!("/api/v1/label/{}/values", escape(name)),
            Endpoint::FormatQuery => "/api/v1/format_query".into(),
            Endpoint::Metadata => "/api/v1/metadata".into(),
            Endpoint::Federate => "/federate".into(),
            Endpoint::Buildinfo => "/api/v1/status/buildinfo".into(),
            Endpoint::Runtimeinfo => "/api/v1/status/runtimeinfo".into(),
            Endpoint::Flags => "/api/v1/status/flags".into(),
            Endpoint::Config => "/api/v1/status/config".into(),
            Endpoint::Tsdb => "/api/v1/status/tsdb".into(),
            Endpoint::Snapshot => "/api/v1/admin/tsdb/snapshot".into(),
            Endpoint::QueryExemplars => "/api/v1/query_exemplars".into(),
            Endpoint::Rules => "/api/v1/rules".into(),
            Endpoint::Other(p) => format!("/api/v1/{}", escape(p)),
        }
    }
}

/// A parameter name: mostly the real ones, sometimes anything.
#[derive(Debug, Arbitrary)]
enum Key {
    Query,
    Time,
    Start,
    End,
    Step,
    Timeout,
    Match,
    Limit,
    LimitPerMetric,
    LookbackDelta,
    Stats,
    Metric,
    SkipHead,
    Other(String),
}

impl Key {
    fn name(&self) -> &str {
        match self {
            Key::Query => "query",
            Key::Time => "time",
            Key::Start => "start",
            Key::End => "end",
            Key::Step => "step",
            Key::Timeout => "timeout",
            Key::Match => "match[]",
            Key::Limit => "limit",
            Key::LimitPerMetric => "limit_per_metric",
            Key::LookbackDelta => "lookback_delta",
            Key::Stats => "stats",
            Key::Metric => "metric",
            Key::SkipHead => "skip_head",
            Key::Other(s) => s,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum How {
    Get,
    PostForm,
    Put,
    Delete,
}

#[derive(Debug, Arbitrary)]
struct Input {
    endpoint: Endpoint,
    how: How,
    params: Vec<(Key, String)>,
    /// Sent as `Accept`, when present.
    accept: Option<String>,
}

/// Percent-encodes everything but unreserved characters, as a form encoder would.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request, as the two input forms describe it.
struct Req {
    method: Method,
    path: String,
    params: Vec<(String, String)>,
    accept: Option<String>,
}

impl From<Input> for Req {
    fn from(i: Input) -> Req {
        let method = match i.how {
            How::Get => Method::GET,
            How::PostForm => Method::POST,
            How::Put => Method::PUT,
            How::Delete => Method::DELETE,
        };
        let params = i.params.into_iter().map(|(k, v)| (k.name().to_owned(), v)).collect();
        Req { method, path: i.endpoint.path(), params, accept: i.accept }
    }
}

/// The text form the seeds use (readable, and built from real parameter
/// sets): a first line `GET /path` or `POST /path`, then one `key=value`
/// per line (raw, encoded when sent).
fn parse_text(text: &str) -> Option<Req> {
    let mut lines = text.split('\n');
    let (method, path) = lines.next()?.split_once(' ')?;
    let method = match method {
        "GET" => Method::GET,
        "POST" => Method::POST,
        _ => return None,
    };
    let params = lines.filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    Some(Req { method, path: path.to_owned(), params, accept: None })
}

fuzz_target!(|data: &[u8]| {
    let text_form = data.starts_with(b"GET /") || data.starts_with(b"POST /");
    let req = if text_form {
        let Some(r) = std::str::from_utf8(data).ok().and_then(parse_text) else { return };
        r
    } else {
        let Ok(i) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
        Req::from(i)
    };
    if req.params.len() > 16 {
        return;
    }
    let encoded: Vec<String> = req.params.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect();
    let encoded = encoded.join("&");
    let accept = req.accept;
    // Keep the path's slashes; encode what a client would.
    let mut path = String::new();
    for b in req.path.bytes() {
        if b.is_ascii_graphic() && b != b'?' && b != b'#' && b != b'%' {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    let (method, uri, body) = if req.method == Method::GET || req.method == Method::DELETE {
        (req.method, format!("{path}?{encoded}"), String::new())
    } else {
        (req.method, path, encoded)
    };
    let mut req = Request::builder().method(method).uri(&uri);
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    if let Some(a) = &accept {
        req = req.header(header::ACCEPT, a.as_str());
    }
    // Arbitrary header bytes may not form a valid request: not our concern.
    let Ok(req) = req.body(Body::from(body)) else { return };

    let router = instance().router();
    let (status, content_type, bytes) = runtime().block_on(async move {
        let resp = router.oneshot(req).await.expect("the router is infallible");
        let status = resp.status().as_u16();
        let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.expect("body");
        (status, ct, bytes)
    });
    let is_json = content_type.as_deref().is_some_and(|c| c.starts_with("application/json"));
    // Prometheus answers `unavailable` (e.g. snapshots without a disk) with
    // 500, like any error type without a code of its own; an `internal`
    // error has no excuse here (in memory, fixed data).
    let unavailable = is_json
        && serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|v| v.get("errorType").and_then(|e| e.as_str()) == Some("unavailable"));
    // The remote write route answers as the remote write spec says: 413 for
    // a body over the limit, 415 for a content type that is not a write
    // request (e.g. a form post).
    let write_status = uri.starts_with("/api/v1/write") && matches!(status, 413 | 415);
    assert!(
        matches!(status, 200 | 204 | 400 | 404 | 405 | 406 | 422 | 503)
            || (status == 500 && unavailable)
            || write_status,
        "{uri}: status {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if is_json {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{uri}: invalid JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        match v.get("status").and_then(|s| s.as_str()) {
            Some("success") => assert!(status == 200, "{uri}: success with status {status}"),
            Some("error") => {
                assert!(v.get("errorType").is_some_and(|e| e.is_string()), "{uri}: no errorType: {v}");
                assert!(v.get("error").is_some_and(|e| e.is_string()), "{uri}: no error: {v}");
                assert!(status != 200 && status != 204, "{uri}: error with status {status}");
            }
            _ => panic!("{uri}: no status in {v}"),
        }
    }
});

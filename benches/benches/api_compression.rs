//! What response compression costs and saves on a large `query_range`
//! answer through the server's router (`tidemark::api::router`): the whole
//! request (evaluation, JSON, compression) with no `Accept-Encoding`, with
//! `gzip` and with `zstd`, and the answer's size in each case (printed
//! before measuring).
//!
//! The data: 1,000 `http_requests_total` counters × 1 h at 15 s in the head;
//! the query `rate(http_requests_total[1m])` over that hour at a 15 s step
//! answers 1,000 series × 241 points (~11 MB of JSON), the size of a
//! Grafana panel over a large fleet.
//!
//! ```text
//! cargo bench -p tidemark-bench --bench api_compression
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidemark::api::{router, ApiOptions, ApiState};
use tidemark_storage::{Db, Labels};
use tower::ServiceExt;

const T0: i64 = 1_700_000_000_000;
const URI: &str = "/api/v1/query_range?query=rate(http_requests_total[1m])&start=1700000000&end=1700003600&step=15";

fn app() -> axum::Router {
    let db = Arc::new(Db::in_memory().expect("in-memory db"));
    let mut app = db.appender();
    for i in 0..1_000 {
        let instance = format!("10.0.{}.{}:9100", i / 250, i % 250);
        let l = Labels::new([("__name__", "http_requests_total"), ("instance", instance.as_str()), ("job", "api")])
            .expect("labels");
        // Irregular increments (a fixed pseudo-random sequence), so rates
        // have as many distinct digits as real ones do.
        let mut v = 0.0;
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
        for k in 0..241i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v += (x % 10_000) as f64 / 7.0;
            app.append(&l, T0 + k * 15_000, v).expect("append");
        }
    }
    app.commit().expect("commit");
    router(Arc::new(ApiState::new(db, ApiOptions::default())))
}

/// One request; the answer's (encoded) body length.
async fn request(app: &axum::Router, accept: Option<&str>) -> usize {
    let mut req = Request::get(URI);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT_ENCODING, a);
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).expect("request")).await.expect("router");
    assert!(resp.status().is_success());
    let encoding = resp.headers().get(header::CONTENT_ENCODING).map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(encoding.as_deref(), accept);
    axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body").len()
}

fn api_compression(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let app = app();
    let plain = rt.block_on(request(&app, None));
    let mut g = c.benchmark_group("api_compression");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    // Throughput in bytes of the uncompressed answer, so the three rows compare directly.
    g.throughput(Throughput::Bytes(plain as u64));
    for (name, accept) in [("identity", None), ("gzip", Some("gzip")), ("zstd", Some("zstd"))] {
        let size = rt.block_on(request(&app, accept));
        eprintln!("api_compression/{name}: {size} bytes ({:.1}% of {plain})", size as f64 * 100.0 / plain as f64);
        g.bench_function(name, |b| b.iter(|| rt.block_on(request(&app, accept))));
    }
    g.finish();
}

criterion_group!(benches, api_compression);
criterion_main!(benches);

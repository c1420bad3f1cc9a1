//! A service that embeds Tidemark in a few lines: it records its own
//! metrics, accepts Prometheus remote write, answers PromQL and evaluates
//! recording and alerting rules built in code, all inside
//! its own axum server (Tidemark's routes mounted under `/tidemark`, which is
//! also the URL to give Grafana as a Prometheus data source).
//!
//! Run it: `cargo run -p tidemark --example embedded`. It serves on a free
//! loopback port, feeds itself through both paths, prints the answers, and
//! exits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::Router;
use prost::Message;
use tidemark::remote::proto::v1;
use tidemark::rules::{GroupSpec, RuleSpec};
use tidemark::storage::Labels;
use tidemark::{Tidemark, TidemarkOptions};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let tm = Tidemark::open(TidemarkOptions::new(dir.path()))?;

    // The service's own routes, with Tidemark mounted beside them.
    let app = Router::new().route("/", get(|| async { "my service\n" })).nest("/tidemark", tm.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/tidemark", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // 1. The service records its own metrics straight into the store.
    let jobs = Labels::new([("__name__", "jobs_processed_total"), ("service", "example")])?;
    let start = now_ms() - 60_000;
    let mut app = tm.db().appender();
    let series = app.append(&jobs, start, 0.0)?;
    for i in 1..=60 {
        app.append_ref(series, start + i * 1_000, (i * 3) as f64)?;
    }
    app.commit()?;

    // 2. Another process (Prometheus, Alloy, the OTel collector) sends
    //    remote write 1.0: snappy-compressed protobuf.
    let request = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: "up".into() },
                v1::Label { name: "job".into(), value: "node".into() },
            ],
            samples: vec![v1::Sample { value: 1.0, timestamp: now_ms() - 1_000 }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())?;
    let write_url = format!("{base}/api/v1/write");
    let status = tokio::task::spawn_blocking(move || {
        ureq::post(&write_url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .send(&body[..])
            .map(|r| r.status().as_u16())
    })
    .await??;
    println!("remote write answered {status}");

    // 3. PromQL, in process and over the Prometheus HTTP API.
    let result = tm.instant_query("rate(jobs_processed_total[30s])", now_ms())?;
    println!("in process: rate(jobs_processed_total[30s]) = {:?}", result.value);
    let query_url = format!("{base}/api/v1/query?query=up");
    let json = tokio::task::spawn_blocking(move || ureq::get(&query_url).call()?.body_mut().read_to_string()).await??;
    println!("over HTTP: {json}");

    // 4. Rules built in code, evaluated every second like a rule file's.
    //    (Appending keeps jobs_processed_total fresh while they run.)
    tm.set_rule_groups(vec![GroupSpec::new("example")
        .interval(Duration::from_secs(1))
        .rule(RuleSpec::recording("service:jobs:rate30s", "rate(jobs_processed_total[30s])"))
        .rule(
            RuleSpec::alerting("JobsFlowing", "service:jobs:rate30s > 1")
                .label("severity", "info")
                .annotation("summary", "{{ $labels.service }} processes {{ $value | humanize }} jobs/s"),
        )])?;
    let mut recorded = None;
    for i in 61..=80 {
        let mut app = tm.db().appender();
        app.append(&jobs, now_ms(), (i * 3) as f64)?;
        app.commit()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let tidemark::promql::Value::Vector(v) = tm.instant_query("service:jobs:rate30s", now_ms())?.value {
            if let Some(s) = v.first() {
                recorded = Some(s.v);
                break;
            }
        }
    }
    println!("recorded by a rule: service:jobs:rate30s = {recorded:?}");
    let alerts_url = format!("{base}/api/v1/alerts");
    let alerts =
        tokio::task::spawn_blocking(move || ureq::get(&alerts_url).call()?.body_mut().read_to_string()).await??;
    println!("alerts: {alerts}");

    server.abort();
    tokio::time::sleep(Duration::from_millis(10)).await;
    tm.close()?;
    if status != 204 || !json.contains("\"job\":\"node\"") || recorded.is_none() || !alerts.contains("JobsFlowing") {
        return Err("the example did not get the expected answers".into());
    }
    Ok(())
}

//! Exemplars end to end with a real sender: a tiny HTTP target exposes a
//! counter and a histogram with exemplars in the OpenMetrics text format
//! (`# {trace_id="abc123"} 0.67 1700000000.123`); Debian's Prometheus 2.42,
//! started with `--enable-feature=exemplar-storage`, scrapes it every second
//! and remote-writes (1.0, `send_exemplars: true`) to `tidemark serve`. Then
//! Tidemark's `/api/v1/query_exemplars` must answer what Prometheus' own
//! does for the same queries (series labels modulo the external label
//! Prometheus adds when sending, the exemplars exactly), the trace ids must
//! be there, and after a restart of `tidemark serve` on the same data
//! directory (WAL replay) the answer must be the same again.
//!
//! The target's exemplars change for the first [`CHANGING`] scrapes (new
//! trace ids, newer timestamps) and then stay as they are, so once both
//! servers hold them the two answers are fixed and comparable.
//!
//! Needs Debian's `prometheus` (2.42): fails, never skips, without it.
//! Takes about 20 s.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tidemark_testkit::{url_encode, Http, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig};

/// The whole test must finish within this (a hang is a failure).
const TIME_LIMIT: Duration = Duration::from_secs(150);
/// Scrapes whose exemplars differ from the previous scrape's.
const CHANGING: u64 = 5;
/// The external label Prometheus adds to what it sends.
const EXTERNAL: (&str, &str) = ("cluster", "e2e");

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition at scrape `n` (1-based).
fn body(n: u64) -> String {
    let k = n.min(CHANGING);
    // Exemplar timestamps in seconds with milliseconds, newer each
    // changing scrape (a series' exemplars are kept in order).
    let ts = |extra: u64| format!("{}.{:03}", 1_700_000_000 + k * 10 + extra, 123);
    format!(
        r#"# HELP rpc_requests Requests served.
# TYPE rpc_requests counter
rpc_requests_total{{path="/api"}} {total} # {{trace_id="abc123"}} 0.67 1700000000.123
rpc_requests_total{{path="/admin"}} {total} # {{trace_id="adm{k:03}",span_id="s{k}"}} {k} {ts0}
# HELP rpc_latency_seconds Request latency.
# TYPE rpc_latency_seconds histogram
rpc_latency_seconds_bucket{{path="/api",le="0.1"}} {b1} # {{trace_id="fast{k:03}"}} 0.0{k} {ts1}
rpc_latency_seconds_bucket{{path="/api",le="1"}} {b2} # {{trace_id="slow{k:03}"}} 0.{k}5 {ts2}
rpc_latency_seconds_bucket{{path="/api",le="+Inf"}} {b3}
rpc_latency_seconds_sum{{path="/api"}} {sum}
rpc_latency_seconds_count{{path="/api"}} {b3}
# EOF
"#,
        total = 10 * n,
        b1 = n,
        b2 = 2 * n,
        b3 = 3 * n,
        sum = 1.5 * n as f64,
        ts0 = ts(0),
        ts1 = ts(1),
        ts2 = ts(2),
    )
}

/// The scrape target on 127.0.0.1 (`tidemark_testkit::ScrapeTarget`).
fn start_target() -> tidemark_testkit::ScrapeTarget {
    tidemark_testkit::ScrapeTarget::start("application/openmetrics-text", CONTENT_TYPE, |n| body(n).into_bytes())
        .expect("scrape target")
}

/// `/api/v1/query_exemplars` answer's `data` (GET, or POST as a form), or why not.
fn exemplars(http: &Http, url: &str, q: &str, post: bool) -> Result<Json, String> {
    let params = format!("query={}&start=1699999000&end=1800000000", url_encode(q));
    let r = if post {
        http.post(
            &format!("{url}/api/v1/query_exemplars"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            params.as_bytes(),
        )
    } else {
        http.get(&format!("{url}/api/v1/query_exemplars?{params}"))
    }
    .map_err(|e| e.to_string())?;
    let json: Json = serde_json::from_slice(&r.body).map_err(|e| format!("{}: {e}: {}", r.status, r.text()))?;
    if json["status"] != "success" {
        return Err(format!("{}: {}", r.status, r.text()));
    }
    Ok(json["data"].clone())
}

/// An answer with the external label taken out of the series labels and
/// the series sorted by their labels.
fn normalized(mut data: Json) -> Json {
    if let Some(list) = data.as_array_mut() {
        for s in list.iter_mut() {
            if let Some(l) = s["seriesLabels"].as_object_mut() {
                if l.get(EXTERNAL.0).and_then(Json::as_str) == Some(EXTERNAL.1) {
                    l.remove(EXTERNAL.0);
                }
            }
        }
        list.sort_by_key(|s| s["seriesLabels"].to_string());
    }
    data
}

/// The trace ids in an answer, sorted.
fn trace_ids(data: &Json) -> Vec<String> {
    let mut out: Vec<String> = data
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

const QUERIES: [&str; 5] = [
    "rpc_requests_total",
    r#"rpc_latency_seconds_bucket{le!="+Inf"}"#,
    r#"sum by (le) (rate(rpc_latency_seconds_bucket[1m])) / on() group_left sum(rate(rpc_requests_total{path="/api"}[1m]))"#,
    r#"{__name__=~"rpc_.+"}"#,
    "nothing_here",
];

#[test]
fn prometheus_remote_writes_exemplars_to_tidemark_and_both_answer_the_same() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("tidemark");
    let mut tidemark = Tidemark::start(TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), &data_dir))
        .unwrap_or_else(|e| panic!("{e}"));
    let target = start_target();
    let mut config = PrometheusConfig::new(dir.path().join("prometheus"));
    config.config_yaml = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels: {{{ext_name}: {ext_value}}}
scrape_configs:
  - job_name: ex
    static_configs: [{{targets: ["{target}"]}}]
remote_write:
  - url: {url}
    remote_timeout: 10s
    send_exemplars: true
    queue_config:
      min_shards: 1
      max_shards: 1
      batch_send_deadline: 200ms
      min_backoff: 100ms
      max_backoff: 1s
"#,
        ext_name = EXTERNAL.0,
        ext_value = EXTERNAL.1,
        target = target.addr,
        url = tidemark.remote_write_url(),
    );
    config.args = vec!["--enable-feature=exemplar-storage".into(), "--log.level=warn".into()];
    let mut prom = Prometheus::start(config).unwrap_or_else(|e| panic!("{e}"));
    let (p, t) = (prom.url(), tidemark.url());
    let http = Http::new(Duration::from_secs(10));
    let logs = |prom: &Prometheus, tidemark: &Tidemark| {
        format!("Prometheus' log:\n{}\nTidemark's log:\n{}", prom.log_tail(30), tidemark.log_tail(30))
    };

    // Past the changing scrapes, and a few more so the last exemplars were
    // sent (Prometheus sends within its 200 ms batch deadline).
    while target.scrapes.load(Ordering::SeqCst) < CHANGING + 3 {
        assert!(
            started.elapsed() < TIME_LIMIT / 2,
            "only {} scrapes so far\n{}",
            target.scrapes.load(Ordering::SeqCst),
            logs(&prom, &tidemark)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Poll until Tidemark answers every query as Prometheus does (it may
    // still be a batch behind), then require equality.
    let want_ids: Vec<String> = {
        let mut v = vec!["abc123".to_string()];
        for k in 1..=CHANGING {
            v.extend([format!("adm{k:03}"), format!("fast{k:03}"), format!("slow{k:03}")]);
        }
        v.sort();
        v
    };
    let mut answers = Vec::new();
    loop {
        let mut problems = Vec::new();
        answers.clear();
        for (i, q) in QUERIES.iter().enumerate() {
            let want = exemplars(&http, &p, q, false).unwrap_or_else(|e| panic!("Prometheus: {q}: {e}"));
            let got = exemplars(&http, &t, q, i % 2 == 1);
            match got {
                Ok(g) if normalized(g.clone()) == normalized(want.clone()) => answers.push(g),
                other => problems.push(format!("{q}\n  Prometheus: {want}\n  Tidemark:   {other:?}")),
            }
        }
        if problems.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < TIME_LIMIT * 2 / 3,
            "{} answers differ:\n{}\n{}",
            problems.len(),
            problems.join("\n"),
            logs(&prom, &tidemark)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Equal answers could be two empty ones: the trace ids must be there,
    // on the series Prometheus sent, with the external label.
    let all = &answers[3];
    assert_eq!(trace_ids(all), want_ids, "{all}");
    let api: Vec<&Json> = all
        .as_array()
        .expect("array")
        .iter()
        .filter(|s| s["seriesLabels"]["__name__"] == "rpc_requests_total" && s["seriesLabels"]["path"] == "/api")
        .collect();
    assert_eq!(api.len(), 1, "{all}");
    assert_eq!(api[0]["seriesLabels"][EXTERNAL.0], EXTERNAL.1, "{all}");
    assert_eq!(api[0]["seriesLabels"]["job"], "ex");
    // The exemplar exactly as the target exposed it (the same one every
    // scrape: stored once).
    assert_eq!(
        api[0]["exemplars"],
        serde_json::json!([{"labels": {"trace_id": "abc123"}, "value": "0.67", "timestamp": 1700000000.123}])
    );
    assert_eq!(answers[4], serde_json::json!([]), "no series, no exemplars");
    // A query without selectors: 204 and no body, as Prometheus answers.
    for url in [&p, &t] {
        let r = http.get(&format!("{url}/api/v1/query_exemplars?query={}", url_encode("1 + 1"))).expect("get");
        assert_eq!((r.status, r.body.len()), (204, 0), "{url}: {}", r.text());
    }
    // A bad query is 400 bad_data, as in Prometheus.
    let bad = http.get(&format!("{t}/api/v1/query_exemplars?query={}", url_encode("rate(x[5m]"))).expect("get");
    assert_eq!(bad.status, 400, "{}", bad.text());
    let bad: Json = serde_json::from_slice(&bad.body).expect("json");
    assert_eq!(bad["errorType"], "bad_data");

    // /metrics counts what the receiver stored.
    let metrics = http.get(&format!("{t}/metrics")).expect("metrics").text();
    let appended = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tidemark_remote_write_exemplars_appended_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tidemark_remote_write_exemplars_appended_total in /metrics:\n{metrics}"));
    assert!(appended >= want_ids.len() as f64, "{appended} exemplars appended");

    // Restart on the same data directory: the WAL brings them back.
    prom.terminate(Duration::from_secs(10)).expect("stop prometheus");
    tidemark.terminate(Duration::from_secs(20)).expect("stop tidemark");
    let tidemark = Tidemark::start(TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), &data_dir))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = tidemark.url();
    for (q, before) in QUERIES.iter().zip(&answers) {
        let after = exemplars(&http, &t, q, false).unwrap_or_else(|e| panic!("after restart: {q}: {e}"));
        assert_eq!(&after, before, "{q} after restart\nTidemark's log:\n{}", tidemark.log_tail(30));
    }
    assert!(started.elapsed() < TIME_LIMIT, "took {:?}", started.elapsed());
}

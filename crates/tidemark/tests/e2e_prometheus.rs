//! End to end with the real peers: a Prometheus 2.42 ("A") scrapes itself
//! and a node_exporter every second and remote-writes everything to the
//! receiver under test ("B"); then `promtool query instant` and `promtool
//! query range` ask A and B the same questions — the queries our users run
//! (../shared/seed-queries.md, copied below, also where they match nothing
//! here) and our own over Prometheus' and node_exporter's metrics — and the
//! answers must be the same: same series, same timestamps, values within
//! 1e-9 relative, NaN equal to NaN, the same error class for invalid
//! queries. `promtool query labels` and `promtool query series` must agree
//! too.
//!
//! B is `tidemark serve` (the `tidemark` binary cargo builds for this
//! test). Until the server exists, [`RECEIVER`] selects a second Prometheus
//! with `--web.enable-remote-write-receiver`, which exercises the harness:
//! switching to Tidemark is that one line.
//!
//! Making the comparison deterministic:
//! - **Remote-write lag.** A sends with one shard, so B receives samples in
//!   A's WAL order. The evaluation time T lies in the past, and the queries
//!   start only once B holds, for every scrape target, an `up` sample newer
//!   than T: by then B holds everything up to T (a scrape is one commit in
//!   A, and one shard keeps the order). Only data up to T is compared.
//! - **Range boundaries.** Prometheus 2.42's range selectors are closed at
//!   the left, 3.x's (ours) left-open. Scrape timestamps sit on a fixed
//!   millisecond phase per target; T's phase is chosen far from them and
//!   all ranges and steps are whole seconds, so no sample ever sits on a
//!   boundary.
//! - **Counter extrapolation at a series' birth.** 2.42 and 3.x legitimately
//!   differ in `rate`/`increase` when the window holds a counter's first
//!   sample (3.x applies the zero-point clamp after the extrapolation
//!   threshold). Queries that use them declare how far back they reach, and
//!   their range starts late enough that no window holds a series' first
//!   sample (all the series they select are born by the second scrape, and
//!   B is only ever polled through B, so A grows no new HTTP series before T).
//!
//! Needs Debian's `prometheus` (with `promtool`) and
//! `prometheus-node-exporter`: it fails, never skips, without them
//! (./scripts/test installs them). Takes 45–70 s: about 40 s of scraping,
//! then ~500 promtool runs, four at a time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tidemark_testkit::{
    free_port, now_ms, promtool, secs, url_encode, Http, NodeExporter, Prometheus, PrometheusConfig, Tidemark,
    TidemarkConfig,
};

/// Who receives A's remote write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(dead_code)] // one of the two is selected at a time
enum Receiver {
    /// `tidemark serve`: the real test.
    Tidemark,
    /// A second Prometheus 2.42: the harness check while `tidemark serve`
    /// is being written.
    PrometheusStandIn,
}

/// The receiver under test.
const RECEIVER: Receiver = Receiver::Tidemark;

/// Data before T (after every series' birth): long enough for the
/// rate/increase windows (up to 16 s back) of a range query of at least
/// three steps to lie entirely after every birth.
const DATA_BEFORE_T: Duration = Duration::from_secs(32);

/// How long B may lag behind A before the test fails.
const MAX_LAG: Duration = Duration::from_secs(30);

/// The whole test must finish within this (a hang is a failure).
const TIME_LIMIT: Duration = Duration::from_secs(150);

/// Queries from ../shared/seed-queries.md: what our users' dashboards and
/// alerts run. Most name application metrics that are absent here; both
/// sides must then agree on the empty answer.
const SEED_QUERIES: &[&str] = &[
    r#"sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) * 100"#,
    r#"sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05"#,
    r#"sum(rate(http_requests_total[5m])) by (job)"#,
    r#"rate(http_requests_total[5m])"#,
    r#"( sum(rate(http_requests_total{job="api-gateway",code!~"5.."}[5m])) / sum(rate(http_requests_total{job="api-gateway"}[5m])) ) * 100"#,
    r#"sum(rate(http_requests_total{job="api-gateway"}[5m]))"#,
    r#"sum(rate(http_requests_total{job="api-gateway",code=~"5.."}[5m])) / sum(rate(http_requests_total{job="api-gateway"}[5m])) * 100"#,
    r#"rate(websocket_messages_total[5m]) / rate(websocket_batches_sent_total[5m])"#,
    r#"(1 - (rate(websocket_batches_sent_total[5m]) / rate(websocket_messages_total[5m]))) * 100"#,
    r#"rate(websocket_compression_savings_bytes[5m])"#,
    r#"rate(graphql_request_duration_seconds_count[5m])"#,
    r#"rate(graphql_errors_total[5m])"#,
    r#"rate(cdn_cache_hits_total[5m]) / (rate(cdn_cache_hits_total[5m]) + rate(cdn_cache_misses_total[5m]))"#,
    r#"rate(cdn_bandwidth_saved_bytes[5m])"#,
    r#"rate(ml_load_balancer_requests_total[5m])"#,
    r#"sum by (pool) (rate(db_read_write_split_total[5m]))"#,
    r#"rate(hypersdk_jobs_completed_total[5m]) * 3600"#,
    r#"( rate(hypersdk_jobs_completed_total[5m]) / (rate(hypersdk_jobs_completed_total[5m]) + rate(hypersdk_jobs_failed_total[5m])) ) * 100"#,
    r#"sum by (provider) (hypersdk_provider_jobs_total)"#,
    r#"rate(hypersdk_http_errors_total[5m]) / rate(hypersdk_http_requests_total[5m]) > 0.05"#,
    r#"( sum(rate(video_processing_total{status="success"}[5m])) / sum(rate(video_processing_total[5m])) ) * 100"#,
    r#"rate(video_processing_batches_total[5m])"#,
    r#"rate(kube_pod_container_status_restarts_total[5m])"#,
    r#"increase(kube_pod_container_status_restarts_total[1h]) > 5"#,
    r#"rate(socketio_disconnect_total[5m]) > 10"#,
    r#"histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{job="api-gateway"}[5m])) by (le))"#,
    r#"histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) > 0.5"#,
    r#"histogram_quantile(0.95, rate(graphql_request_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(db_query_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(ml_task_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(cdn_response_time_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.95, rate(hypersdk_job_duration_seconds_bucket[5m]))"#,
    r#"histogram_quantile(0.99, rate(hypersdk_http_response_time_seconds_bucket[5m])) * 1000"#,
    r#"histogram_quantile(0.95, rate(hypersdk_http_response_time_seconds_bucket[5m])) > 1"#,
    r#"histogram_quantile(0.99, sum(rate(ml_inference_duration_seconds_bucket{job="ml-pipeline"}[5m])) by (le))"#,
    r#"rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])"#,
    r#"rate(hypersdk_job_duration_seconds_sum[5m]) / rate(hypersdk_job_duration_seconds_count[5m])"#,
    r#"avg by (provider) (rate(hypersdk_job_duration_seconds_sum[5m]) / rate(hypersdk_job_duration_seconds_count[5m]))"#,
    r#"sum(rate(container_cpu_usage_seconds_total[5m])) by (pod)"#,
    r#"avg(rate(container_cpu_usage_seconds_total[5m])) by (deployment)"#,
    r#"container_memory_working_set_bytes / container_spec_memory_limit_bytes * 100"#,
    r#"container_memory_working_set_bytes / container_spec_memory_limit_bytes > 0.9"#,
    r#"rate(container_network_receive_bytes_total[5m])"#,
    r#"100 - (avg by(instance) (irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)"#,
    r#"( (node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / node_memory_MemTotal_bytes ) * 100"#,
    r#"( (node_filesystem_size_bytes - node_filesystem_avail_bytes) / node_filesystem_size_bytes ) * 100"#,
    r#"( kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes ) * 100"#,
    r#"db_pool_connections{pool="write", state="active"} / (db_pool_connections{pool="write", state="active"} + db_pool_connections{pool="write", state="idle"})"#,
    r#"websocket_active_connections{supports_batching="true"}"#,
    r#"kube_node_status_condition{condition="Ready",status="true"}"#,
    r#"up{job=~"api-gateway|video-ingestion|ml-pipeline|analytics-engine"}"#,
    r#"up{job="hypersdk"} == 0"#,
    r#"avg(nvidia_gpu_utilization_gpu{job="ml-pipeline"})"#,
    r#"avg(ml_model_accuracy_score{job="ml-pipeline"}) * 100"#,
    r#"hypersdk_memory_bytes > 2147483648"#,
    r#"db_replication_lag_seconds > 5"#,
    r#"ml_tasks_queued > 100"#,
    r#"socketio_connected_clients"#,
    r#"sli:platform_availability:rate5m < 0.99"#,
    r#"( (1 - sli:platform_availability:rate5m) / (1 - 0.999) ) > 14.4"#,
    r#"1 - ( (1 - sli:platform_availability:rate5m) / (1 - 0.999) )"#,
    r#"sli:platform_availability:rate5m * 100"#,
    r#"hypersdk:job_success_rate"#,
    // The two invalid ones, and their valid forms.
    r#"topk(10, histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) by (route))"#,
    r#"topk(10, histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket[5m]))))"#,
    r#"increase(socketio_disconnect_total[5m]) by (reason)"#,
    r#"sum by (reason) (increase(socketio_disconnect_total[5m]))"#,
];

/// The seed queries Prometheus must reject (a parse error on both sides).
const INVALID_SEEDS: &[&str] = &[
    r#"topk(10, histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) by (route))"#,
    r#"increase(socketio_disconnect_total[5m]) by (reason)"#,
];

/// Our own queries over the metrics that exist here, each with how many
/// seconds before an evaluation time its `rate`/`increase` windows reach
/// (0: no rate/increase; see the module comment). All must be non-empty on
/// A at T, so a typo cannot turn one into a vacuous comparison.
const OWN_QUERIES: &[(&str, u32)] = &[
    // Raw and instant selections.
    ("up", 0),
    ("up == 1", 0),
    ("up * 2 + 1", 0),
    ("scrape_duration_seconds", 0),
    ("scrape_samples_scraped", 0),
    ("scrape_series_added", 0),
    (r#"prometheus_http_requests_total{handler="/metrics"}"#, 0),
    ("go_gc_duration_seconds", 0),
    (r#"go_gc_duration_seconds{quantile="0.5"}"#, 0),
    ("go_gc_duration_seconds_count", 0),
    ("go_gc_duration_seconds_sum / go_gc_duration_seconds_count", 0),
    ("sum by (job) (go_goroutines)", 0),
    ("prometheus_tsdb_head_series", 0),
    ("node_load1", 0),
    ("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", 0),
    ("count by (mode) (node_cpu_seconds_total)", 0),
    ("process_resident_memory_bytes / on (instance, job) process_virtual_memory_bytes", 0),
    ("process_resident_memory_bytes > bool 1e6", 0),
    ("topk(1, process_resident_memory_bytes)", 0),
    ("bottomk(1, process_resident_memory_bytes)", 0),
    ("max by (job) (scrape_duration_seconds) < 1", 0),
    ("scrape_duration_seconds offset 10s", 0),
    (r#"label_replace(up, "port", "$1", "instance", ".*:(.*)")"#, 0),
    ("absent(nonexistent_metric)", 0),
    ("vector(1) + on() group_left count(up)", 0),
    ("time() - timestamp(up) < 5", 0),
    // Over time, without extrapolation.
    ("count_over_time(up[20s])", 0),
    ("max_over_time(scrape_duration_seconds[15s])", 0),
    ("avg_over_time(go_goroutines[20s])", 0),
    ("min_over_time(node_load1[30s])", 0),
    ("quantile_over_time(0.9, scrape_duration_seconds[20s])", 0),
    ("last_over_time(go_memstats_heap_alloc_bytes[10s])", 0),
    ("changes(prometheus_tsdb_head_series[20s])", 0),
    ("resets(go_gc_duration_seconds_count[20s])", 0),
    ("deriv(process_resident_memory_bytes[20s])", 0),
    ("delta(go_memstats_heap_alloc_bytes[15s])", 0),
    ("irate(process_cpu_seconds_total[10s])", 0),
    ("irate(node_cpu_seconds_total[5s])", 0),
    ("idelta(go_gc_duration_seconds_count[10s])", 0),
    ("max_over_time(irate(process_cpu_seconds_total[5s])[20s:2s])", 0),
    // rate / increase, windows clear of every series' birth.
    ("rate(process_cpu_seconds_total[10s])", 10),
    (r#"rate(prometheus_http_requests_total{handler="/metrics"}[10s])"#, 10),
    ("increase(go_gc_duration_seconds_count[15s])", 15),
    ("sum by (job) (rate(process_cpu_seconds_total[10s]))", 10),
    (r#"sum by (mode) (rate(node_cpu_seconds_total[10s]))"#, 10),
    (r#"100 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[10s])) * 100"#, 10),
    ("rate(prometheus_tsdb_head_samples_appended_total[10s])", 10),
    (
        r#"histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket{handler="/metrics"}[10s])))"#,
        10,
    ),
    (r#"histogram_quantile(0.5, rate(prometheus_http_request_duration_seconds_bucket{handler="/metrics"}[10s]))"#, 10),
    (
        r#"rate(prometheus_http_request_duration_seconds_sum{handler="/metrics"}[10s]) / rate(prometheus_http_request_duration_seconds_count{handler="/metrics"}[10s])"#,
        10,
    ),
    ("topk(2, rate(node_cpu_seconds_total[10s]))", 10),
    ("rate(process_cpu_seconds_total[10s] offset 5s)", 15),
    ("max_over_time(rate(process_cpu_seconds_total[4s])[10s:2s])", 16),
];

/// One side's answer to one query.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// Series (sorted `name="value"` labels) → points (ms, value). A
    /// vector is a matrix of one point per series; a scalar is the series
    /// with no labels.
    Data(BTreeMap<String, Vec<(i64, f64)>>),
    /// promtool failed: the API's error type ("bad_data"), and whether it
    /// is a parse error.
    Error { class: String, parse: bool, message: String },
}

/// Runs promtool with `args` and reads its `-o json` answer or its error.
fn ask(args: &[String]) -> Answer {
    let out = promtool(args).unwrap_or_else(|e| panic!("{e}"));
    if !out.success() {
        // `query error: bad_data: invalid parameter "query": 1:48: parse error: …`
        let msg = out.stderr.trim().to_string();
        let class = msg.strip_prefix("query error: ").and_then(|r| r.split(':').next()).unwrap_or("?").to_string();
        return Answer::Error { class, parse: msg.contains("parse error"), message: msg };
    }
    let json: Json = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("`promtool {}` printed non-JSON ({e}): {}", out.args, out.stdout));
    parse_answer(&json)
        .unwrap_or_else(|e| panic!("`promtool {}`: cannot read its answer ({e}): {}", out.args, out.stdout))
}

fn parse_answer(json: &Json) -> Result<Answer, String> {
    let arr = json.as_array().ok_or("not an array")?;
    let mut out = BTreeMap::new();
    // A scalar or a string prints as its bare `[t, "v"]` pair.
    if arr.len() == 2 && arr[0].is_number() {
        out.insert(String::new(), vec![point(json)?]);
        return Ok(Answer::Data(out));
    }
    for s in arr {
        let metric = s["metric"].as_object().ok_or("no metric")?;
        let mut labels: Vec<String> =
            metric.iter().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default())).collect();
        labels.sort();
        let points = match s["values"].as_array() {
            Some(vs) => vs.iter().map(point).collect::<Result<Vec<_>, _>>()?,
            None => vec![point(&s["value"])?],
        };
        if out.insert(labels.join(","), points).is_some() {
            return Err(format!("duplicate series {metric:?}"));
        }
    }
    Ok(Answer::Data(out))
}

fn point(p: &Json) -> Result<(i64, f64), String> {
    let t = p[0].as_f64().ok_or_else(|| format!("bad timestamp in {p}"))?;
    let v = p[1].as_str().ok_or_else(|| format!("bad value in {p}"))?;
    let v = match v {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(((t * 1000.0).round() as i64, v))
}

/// `None` when the answers agree, else what differs.
fn differ(a: &Answer, b: &Answer) -> Option<String> {
    match (a, b) {
        (Answer::Error { class: ca, parse: pa, .. }, Answer::Error { class: cb, parse: pb, .. }) => {
            (ca != cb || pa != pb).then(|| format!("error classes differ: {a:?} vs {b:?}"))
        }
        (Answer::Data(x), Answer::Data(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (Some(px), Some(py)) = (x.get(k), y.get(k)) else {
                    return Some(format!(
                        "series {{{k}}} only in {} ({} vs {} series)",
                        if x.contains_key(k) { "A" } else { "B" },
                        x.len(),
                        y.len()
                    ));
                };
                if px.len() != py.len() {
                    return Some(format!("{{{k}}}: {} vs {} points: {px:?} vs {py:?}", px.len(), py.len()));
                }
                for (&(ta, va), &(tb, vb)) in px.iter().zip(py) {
                    if ta != tb {
                        return Some(format!("{{{k}}}: timestamp {ta} vs {tb}"));
                    }
                    if !same_value(va, vb) {
                        return Some(format!("{{{k}}} at {ta}: {va:?} vs {vb:?}"));
                    }
                }
            }
            None
        }
        _ => Some(format!("one side failed: {a:?} vs {b:?}")),
    }
}

/// Equal within 1e-9 relative; NaN equals NaN; infinities exactly.
fn same_value(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Starts the receiver under test in `dir`.
enum Peer {
    Prometheus(Prometheus),
    Tidemark(Tidemark),
}

impl Peer {
    fn url(&self) -> String {
        match self {
            Peer::Prometheus(p) => p.url(),
            Peer::Tidemark(t) => t.url(),
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Peer::Prometheus(p) => p.log_tail(30),
            Peer::Tidemark(t) => t.log_tail(30),
        }
    }
}

fn start_receiver(dir: &Path) -> Peer {
    match RECEIVER {
        Receiver::Tidemark => {
            let config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), dir.join("tidemark"));
            Peer::Tidemark(Tidemark::start(config).unwrap_or_else(|e| panic!("{e}")))
        }
        Receiver::PrometheusStandIn => {
            let mut config = PrometheusConfig::new(dir.join("receiver"));
            config.args = vec!["--web.enable-remote-write-receiver".into(), "--log.level=warn".into()];
            Peer::Prometheus(Prometheus::start(config).unwrap_or_else(|e| panic!("{e}")))
        }
    }
}

/// `GET /api/v1/query` on B, for the control polls (never on A: that would
/// create HTTP series in A that B lacks for a moment).
fn instant_json(http: &Http, url: &str, query: &str, t_ms: i64) -> Result<Json, String> {
    let r = http
        .get(&format!("{url}/api/v1/query?query={}&time={}", url_encode(query), secs(t_ms)))
        .map_err(|e| e.to_string())?;
    let json: Json = serde_json::from_slice(&r.body).map_err(|e| format!("{}: {e}: {}", r.status, r.text()))?;
    if json["status"] != "success" {
        return Err(format!("{}: {}", r.status, r.text()));
    }
    Ok(json)
}

/// Every `up` sample B holds in the last `window_s` before now, by job:
/// (first timestamp, last timestamp, all timestamps).
fn up_samples(http: &Http, url: &str, window_s: u32) -> Result<BTreeMap<String, Vec<i64>>, String> {
    let json = instant_json(http, url, &format!("up[{window_s}s]"), now_ms())?;
    let mut out = BTreeMap::new();
    for s in json["data"]["result"].as_array().ok_or("no result")? {
        let job = s["metric"]["job"].as_str().unwrap_or_default().to_string();
        let ts: Vec<i64> = s["values"]
            .as_array()
            .ok_or("no values")?
            .iter()
            .map(|p| point(p).map(|(t, _)| t))
            .collect::<Result<_, _>>()?;
        out.insert(job, ts);
    }
    Ok(out)
}

/// The millisecond phase (mod 1000) farthest from every scrape phase and
/// from 0 (where subquery steps align).
fn quiet_phase(scrape_phases: &[i64]) -> i64 {
    let dist = |a: i64, b: i64| {
        let d = (a - b).rem_euclid(1000);
        d.min(1000 - d)
    };
    (0..1000)
        .step_by(10)
        .max_by_key(|&p| scrape_phases.iter().chain(&[0]).map(|&s| dist(p, s)).min().unwrap_or(0))
        .unwrap_or(500)
}

#[test]
fn prometheus_remote_writes_to_tidemark_and_promtool_gets_the_same_answers() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = start_receiver(dir.path());
    let node = NodeExporter::start(&[
        // The collectors the seed queries and ours read; fewer series keep
        // the 1 s scrape cheap.
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.meminfo",
        "--collector.filesystem",
        "--collector.loadavg",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut config = PrometheusConfig::new(dir.path().join("sender"));
    config.port = Some(port);
    config.config_yaml = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: node
    static_configs: [{{targets: ["{node}"]}}]
remote_write:
  - url: {url}/api/v1/write
    remote_timeout: 10s
    queue_config:
      # One shard: B receives in A's WAL order (see the module comment).
      min_shards: 1
      max_shards: 1
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 5s
"#,
        node = node.target(),
        url = receiver.url(),
    );
    config.args = vec!["--log.level=warn".into()];
    let sender = Prometheus::start(config).unwrap_or_else(|e| panic!("{e}"));
    let a = sender.url();
    let b = receiver.url();
    let http = Http::new(Duration::from_secs(10));

    // Wait for the first scrapes to reach B, let data accumulate, then
    // pick T in the past, on a quiet phase.
    let deadline = Instant::now() + MAX_LAG;
    let first_scrape = loop {
        let ups = up_samples(&http, &b, 120).unwrap_or_default();
        if ups.len() == 2 {
            break ups.values().filter_map(|ts| ts.first().copied()).max().unwrap_or(0);
        }
        assert!(
            Instant::now() < deadline,
            "B holds no `up` for both jobs {MAX_LAG:?} after A started (got {:?})\nA's log:\n{}\nB's log:\n{}",
            ups.keys().collect::<Vec<_>>(),
            sender.log_tail(30),
            receiver.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Every series is born by the second scrape of its target.
    let births_done = first_scrape + 1_000;
    let wait = births_done + DATA_BEFORE_T.as_millis() as i64 + 4_000 - now_ms();
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    let ups = up_samples(&http, &b, 120).unwrap_or_else(|e| panic!("cannot ask B for `up`: {e}"));
    let phases: Vec<i64> = ups.values().flat_map(|ts| ts.iter().map(|t| t.rem_euclid(1000))).collect();
    let t = (now_ms() - 3_000).div_euclid(1000) * 1000 + quiet_phase(&phases);
    let t = if t > now_ms() - 2_000 { t - 1000 } else { t };
    assert!(
        t - births_done >= DATA_BEFORE_T.as_millis() as i64,
        "T is only {} ms after the scrapes began",
        t - births_done
    );

    // Wait until B has every target's scrape after T (then it has all up to T).
    let deadline = Instant::now() + MAX_LAG;
    loop {
        let ups = up_samples(&http, &b, 30).unwrap_or_default();
        let behind: Vec<&str> = ["node", "prometheus"]
            .into_iter()
            .filter(|j| ups.get(*j).and_then(|ts| ts.last()).is_none_or(|&l| l <= t))
            .collect();
        if behind.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B did not receive A's samples up to T={t} within {MAX_LAG:?} (remote write lag or loss; jobs {behind:?}); A's log:\n{}\nB's log:\n{}",
            sender.log_tail(30),
            receiver.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut problems: Vec<String> = Vec::new();
    let setup = started.elapsed();

    // 1. The raw samples: B holds exactly what A holds up to T.
    let raw = r#"{__name__=~".+"}[2m]"#;
    let args = |server: &str| -> Vec<String> {
        vec![
            "query".into(),
            "instant".into(),
            "-o".into(),
            "json".into(),
            format!("--time={}", secs(t)),
            server.into(),
            raw.into(),
        ]
    };
    let (ra, rb) = (ask(&args(&a)), ask(&args(&b)));
    match (&ra, differ(&ra, &rb)) {
        (Answer::Data(series), None) => {
            let samples: usize = series.values().map(Vec::len).sum();
            assert!(
                series.len() > 300 && samples > 10_000,
                "too little data: {} series, {samples} samples",
                series.len()
            );
            println!("raw samples up to T: {} series, {samples} samples, identical", series.len());
        }
        (_, d) => problems.push(format!("raw samples {raw}: {}", d.unwrap_or_else(|| format!("{ra:?}")))),
    }

    // 2. The query set, instant at T and range over [T-60 s, T] (later for
    //    rate/increase, see OWN_QUERIES), four promtool pairs at a time.
    struct Eval {
        query: &'static str,
        own: bool,
        args: Vec<String>,
    }
    let mut evals = Vec::new();
    let queries = SEED_QUERIES.iter().map(|q| (*q, false, 0u32)).chain(OWN_QUERIES.iter().map(|(q, r)| (*q, true, *r)));
    for (query, own, reach) in queries {
        evals.push(Eval {
            query,
            own,
            args: vec!["query".into(), "instant".into(), "-o".into(), "json".into(), format!("--time={}", secs(t))],
        });
        // The range start: T-60 s, or late enough that no rate window holds
        // a birth (windows end at most `reach` s before the evaluation time).
        let mut start = t - 60_000;
        while reach > 0 && start - i64::from(reach) * 1000 <= births_done {
            start += 5_000;
        }
        assert!(start <= t - 10_000, "{query}: reaches back too far for this test's {DATA_BEFORE_T:?} of data");
        evals.push(Eval {
            query,
            own,
            args: vec![
                "query".into(),
                "range".into(),
                "-o".into(),
                "json".into(),
                format!("--start={}", secs(start)),
                format!("--end={}", secs(t)),
                "--step=5s".into(),
            ],
        });
    }
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    let empty_own = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = evals.get(i) else { break };
                if started.elapsed() > TIME_LIMIT {
                    break;
                }
                let run = |server: &str| {
                    let mut args = e.args.clone();
                    args.push(server.to_string());
                    args.push(e.query.to_string());
                    ask(&args)
                };
                let (ra, rb) = (run(&a), run(&b));
                let is_invalid = INVALID_SEEDS.contains(&e.query);
                let mut bad = Vec::new();
                if let Some(d) = differ(&ra, &rb) {
                    bad.push(format!("{} `{}`: {d}", e.args[1], e.query));
                }
                match &ra {
                    Answer::Error { parse, .. } if is_invalid && *parse => {}
                    Answer::Error { message, .. } if !is_invalid => {
                        bad.push(format!("`{}` fails on A: {message}", e.query))
                    }
                    Answer::Data(_) if is_invalid => bad.push(format!("`{}` should be rejected by A", e.query)),
                    Answer::Data(d) if e.own && d.is_empty() => empty_own.lock().unwrap().push(e.query),
                    _ => {}
                }
                found.lock().unwrap().extend(bad);
            });
        }
    });
    assert!(started.elapsed() <= TIME_LIMIT, "the end-to-end test ran longer than {TIME_LIMIT:?}");
    problems.extend(found.into_inner().unwrap());
    for q in empty_own.into_inner().unwrap() {
        // An own query must mean something here: empty on A is a typo.
        problems.push(format!("`{q}` is empty on A (fix the query)"));
    }
    println!(
        "{} evaluations ({} queries) compared; setup and scraping {setup:.1?}, queries {:.1?}",
        evals.len(),
        evals.len() / 2,
        started.elapsed() - setup
    );

    // 3. Label values and series.
    let range = [format!("--start={}", secs(first_scrape)), format!("--end={}", secs(t))];
    let meta_queries: Vec<Vec<String>> = vec![
        vec!["labels".into(), range[0].clone(), range[1].clone(), "SERVER".into(), "job".into()],
        vec!["labels".into(), range[0].clone(), range[1].clone(), "SERVER".into(), "instance".into()],
        vec![
            "labels".into(),
            range[0].clone(),
            range[1].clone(),
            r#"--match={job="node"}"#.into(),
            "SERVER".into(),
            "__name__".into(),
        ],
        vec!["series".into(), "--match=up".into(), range[0].clone(), range[1].clone(), "SERVER".into()],
        vec![
            "series".into(),
            r#"--match=go_gc_duration_seconds{job="prometheus"}"#.into(),
            r#"--match=node_cpu_seconds_total{mode="idle"}"#.into(),
            range[0].clone(),
            range[1].clone(),
            "SERVER".into(),
        ],
    ];
    for q in meta_queries {
        let run = |server: &str| {
            let mut args = vec!["query".to_string()];
            args.extend(q.iter().map(|x| if x == "SERVER" { server.to_string() } else { x.clone() }));
            let out = promtool(&args).and_then(|o| o.into_stdout()).unwrap_or_else(|e| panic!("{e}"));
            let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        let (la, lb) = (run(&a), run(&b));
        if la.is_empty() {
            problems.push(format!("promtool query {}: empty on A", q.join(" ")));
        } else if la != lb {
            problems.push(format!("promtool query {}:\nA: {la:?}\nB: {lb:?}", q.join(" ")));
        }
    }

    println!("end-to-end test took {:.1?}", started.elapsed());
    assert!(
        problems.is_empty(),
        "{} difference(s) between A (Prometheus) and B ({RECEIVER:?}):\n{}\nB's log:\n{}",
        problems.len(),
        problems.join("\n"),
        receiver.log_tail()
    );
}

#[test]
fn the_comparison_catches_what_it_must() {
    let data = |pts: &[(i64, f64)]| Answer::Data(BTreeMap::from([("job=\"x\"".to_string(), pts.to_vec())]));
    assert_eq!(differ(&data(&[(1, f64::NAN)]), &data(&[(1, f64::NAN)])), None);
    assert_eq!(differ(&data(&[(1, 1.0)]), &data(&[(1, 1.0 + 1e-12)])), None);
    assert!(differ(&data(&[(1, 1.0)]), &data(&[(1, 1.0 + 1e-6)])).is_some());
    assert!(differ(&data(&[(1, 1.0)]), &data(&[(2, 1.0)])).is_some());
    assert!(differ(&data(&[(1, 1.0)]), &data(&[(1, 1.0), (2, 1.0)])).is_some());
    assert!(differ(&data(&[(1, f64::NAN)]), &data(&[(1, 0.0)])).is_some());
    assert!(differ(&data(&[(1, f64::INFINITY)]), &data(&[(1, f64::NEG_INFINITY)])).is_some());
    assert!(differ(&data(&[]), &Answer::Data(BTreeMap::new())).is_some());
    let err = |class: &str, parse| Answer::Error { class: class.into(), parse, message: String::new() };
    assert_eq!(differ(&err("bad_data", true), &err("bad_data", true)), None);
    assert!(differ(&err("bad_data", true), &err("bad_data", false)).is_some());
    assert!(differ(&err("bad_data", true), &err("execution", true)).is_some());
    assert!(differ(&err("bad_data", true), &data(&[])).is_some());
    let json: Json =
        serde_json::from_str(r#"[{"metric":{"b":"2","a":"1"},"values":[[1.5,"NaN"],[2,"+Inf"]]}]"#).unwrap();
    let want =
        Answer::Data(BTreeMap::from([("a=\"1\",b=\"2\"".to_string(), vec![(1500, f64::NAN), (2000, f64::INFINITY)])]));
    assert_eq!(differ(&parse_answer(&json).expect("parse"), &want), None);
    let scalar: Json = serde_json::from_str(r#"[1700000000.123,"-1.5"]"#).unwrap();
    assert_eq!(
        parse_answer(&scalar),
        Ok(Answer::Data(BTreeMap::from([(String::new(), vec![(1_700_000_000_123, -1.5)])])))
    );
}

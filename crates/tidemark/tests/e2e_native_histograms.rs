//! Native histograms end to end with a real sender: a tiny HTTP target
//! exposes native histograms in the protobuf exposition format (an integer
//! histogram of schema 3 with negative, zero and positive buckets and a
//! counter reset, a float histogram, a gauge histogram); Debian's
//! Prometheus 2.42, started with `--enable-feature=native-histograms`,
//! scrapes it every second and remote-writes (1.0, `send_native_histograms:
//! true`, which 2.42 needs to send them at all) to `tidemark serve`. Then
//! the same queries go to Prometheus and to Tidemark at one evaluation
//! time T and the answers must be equal: the raw histograms over the whole
//! run (`x[5m]`: every sample, its count, sum and every bucket as the JSON
//! API renders them), `histogram_count(x)` and `histogram_sum(x)`. If
//! Tidemark dropped histograms the raw answers would be empty and the test
//! fails; it also checks that Tidemark's `/metrics` counts them.
//!
//! Deterministic: Prometheus sends with one shard, so Tidemark receives in
//! Prometheus' WAL order; T lies half a scrape interval after a scrape and
//! the queries start once Tidemark holds a sample after T (then it holds
//! everything up to T). `x[5m]` reaches back before the first scrape, so
//! the left-closed (2.42) and left-open (3.x) range boundaries select the
//! same samples.
//!
//! A second test gives both the same rule file over these histograms and
//! compares what the rules record (see [`RULES`]).
//!
//! Needs Debian's `prometheus` (2.42): fails, never skips, without it.
//! Takes about 30 s (the two tests run side by side).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value as Json;
use tidemark_testkit::{now_ms, secs, url_encode, Http, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig};

/// The whole test must finish within this (a hang is a failure).
const TIME_LIMIT: Duration = Duration::from_secs(120);
/// Scrapes to let happen before choosing T (the integer histogram resets
/// at scrape [`RESET_AT`]).
const SCRAPES: u64 = 12;
/// The scrape at which the integer histogram's counts start again.
const RESET_AT: u64 = 8;

/// The `io.prometheus.client` exposition messages the target writes: the
/// server's own (`/federate` writes them too).
use tidemark::api::exposition as client;

fn spans(s: &[(i32, u32)]) -> Vec<client::BucketSpan> {
    s.iter().map(|&(offset, length)| client::BucketSpan { offset, length }).collect()
}

fn deltas(counts: &[u64]) -> Vec<i64> {
    let mut prev = 0i64;
    counts
        .iter()
        .map(|&c| {
            let d = c as i64 - prev;
            prev = c as i64;
            d
        })
        .collect()
}

/// The families exposed at scrape `n` (1-based).
fn families(n: u64) -> Vec<client::MetricFamily> {
    // Integer, schema 3: counts grow, then start again at RESET_AT.
    let m = if n >= RESET_AT { n - RESET_AT + 1 } else { n };
    let pos = [m, 2 * m, 1, 3 * m, m];
    let neg = [m];
    let latency = client::Histogram {
        sample_count: m + pos.iter().sum::<u64>() + neg.iter().sum::<u64>(),
        sample_sum: 1.25 * m as f64 - 0.5,
        schema: 3,
        zero_threshold: 1e-3,
        zero_count: m,
        positive_span: spans(&[(-2, 3), (4, 2)]),
        positive_delta: deltas(&pos),
        negative_span: spans(&[(0, 1)]),
        negative_delta: deltas(&neg),
        ..Default::default()
    };
    // Float counts, schema 0 (2.42 takes a histogram as native only with
    // integer deltas, a zero count or a zero threshold: hence the latter).
    let f = n as f64;
    let float = client::Histogram {
        sample_count_float: 0.5 * f + 0.25 * f + 1.5 * f,
        sample_sum: 3.75 * f,
        schema: 0,
        zero_threshold: 1e-3,
        zero_count_float: 0.5 * f,
        positive_span: spans(&[(0, 2)]),
        positive_count: vec![0.25 * f, 1.5 * f],
        ..Default::default()
    };
    // A gauge histogram: counts go up and down.
    let g = n % 4 + 1;
    let gauge = client::Histogram {
        sample_count: 3 * g,
        sample_sum: 2.0 * g as f64,
        schema: 1,
        zero_threshold: 1e-3,
        zero_count: g,
        positive_span: spans(&[(1, 2)]),
        positive_delta: deltas(&[g, g]),
        ..Default::default()
    };
    let family = |name: &str, kind: client::MetricType, h: client::Histogram| client::MetricFamily {
        name: name.into(),
        help: format!("{name} for the end-to-end test."),
        r#type: kind as i32,
        metric: vec![client::Metric {
            label: vec![client::LabelPair { name: "path".into(), value: "/api".into() }],
            histogram: Some(h),
            ..Default::default()
        }],
    };
    vec![
        family("nh_latency_seconds", client::MetricType::Histogram, latency),
        family("nh_float_histogram", client::MetricType::Histogram, float),
        family("nh_queue_depth", client::MetricType::GaugeHistogram, gauge),
    ]
}

/// The exposition body: each family length-delimited.
fn body(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families(n) {
        f.encode_length_delimited(&mut out).expect("a Vec grows");
    }
    out
}

const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The scrape target on 127.0.0.1 (`tidemark_testkit::ScrapeTarget`).
fn start_target() -> tidemark_testkit::ScrapeTarget {
    tidemark_testkit::ScrapeTarget::start("application/vnd.google.protobuf", CONTENT_TYPE, body).expect("scrape target")
}

/// Prometheus 2.42 with native histograms on, scraping `target` every
/// second and remote-writing (1.0) to `tidemark` in WAL order. `global_extra`
/// is YAML appended to the `global:` section (indented) and after it.
fn start_prometheus(
    dir: &std::path::Path,
    target: &tidemark_testkit::ScrapeTarget,
    tidemark: &Tidemark,
    global_extra: &str,
) -> Prometheus {
    let mut config = PrometheusConfig::new(dir.join("prometheus"));
    config.config_yaml = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
{global_extra}scrape_configs:
  - job_name: nh
    static_configs: [{{targets: ["{target}"]}}]
remote_write:
  - url: {url}
    remote_timeout: 10s
    # 2.42 sends native histograms only when asked to.
    send_native_histograms: true
    queue_config:
      # One shard: Tidemark receives in Prometheus' WAL order.
      min_shards: 1
      max_shards: 1
      batch_send_deadline: 200ms
      min_backoff: 100ms
      max_backoff: 1s
"#,
        target = target.addr,
        url = tidemark.remote_write_url(),
    );
    config.args = vec!["--enable-feature=native-histograms".into(), "--log.level=warn".into()];
    Prometheus::start(config).unwrap_or_else(|e| panic!("{e}"))
}

/// `GET /api/v1/query` answer's `data`, or why not.
fn query(http: &Http, url: &str, q: &str, t_ms: i64) -> Result<Json, String> {
    let r = http
        .get(&format!("{url}/api/v1/query?query={}&time={}", url_encode(q), secs(t_ms)))
        .map_err(|e| e.to_string())?;
    let json: Json = serde_json::from_slice(&r.body).map_err(|e| format!("{}: {e}: {}", r.status, r.text()))?;
    if json["status"] != "success" {
        return Err(format!("{}: {}", r.status, r.text()));
    }
    Ok(json["data"].clone())
}

/// The timestamps (ms) of `name`'s histograms in the last 5 minutes.
fn histogram_times(http: &Http, url: &str, name: &str) -> Vec<i64> {
    let Ok(data) = query(http, url, &format!("{name}[5m]"), now_ms()) else { return Vec::new() };
    let Some(series) = data["result"].as_array().and_then(|r| r.first()) else { return Vec::new() };
    series["histograms"]
        .as_array()
        .map(|h| h.iter().filter_map(|p| p[0].as_f64()).map(|s| (s * 1000.0).round() as i64).collect())
        .unwrap_or_default()
}

/// A result with its series sorted by labels (both servers sort, but the
/// comparison should not depend on it).
fn sorted(mut data: Json) -> Json {
    if let Some(r) = data["result"].as_array_mut() {
        r.sort_by_key(|s| s["metric"].to_string());
    }
    data
}

#[test]
fn prometheus_remote_writes_native_histograms_to_tidemark_and_both_answer_the_same() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let tidemark = Tidemark::start(TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), dir.path().join("tidemark")))
        .unwrap_or_else(|e| panic!("{e}"));
    let target = start_target();
    let prom = start_prometheus(dir.path(), &target, &tidemark, "");
    let (p, t) = (prom.url(), tidemark.url());
    let http = Http::new(Duration::from_secs(10));
    let logs = || format!("Prometheus' log:\n{}\nTidemark's log:\n{}", prom.log_tail(30), tidemark.log_tail(30));

    // Let SCRAPES scrapes happen (the reset among them).
    while target.scrapes.load(Ordering::SeqCst) < SCRAPES {
        assert!(
            started.elapsed() < TIME_LIMIT / 2,
            "only {} scrapes so far\n{}",
            target.scrapes.load(Ordering::SeqCst),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // T: half an interval after the newest scrape Prometheus stored.
    let in_prom = histogram_times(&http, &p, "nh_latency_seconds");
    let last = *in_prom.last().unwrap_or_else(|| panic!("Prometheus stored no native histogram\n{}", logs()));
    let t_eval = last + 500;
    // Wait until Tidemark holds a histogram after T: then it holds all up to T.
    loop {
        let times = histogram_times(&http, &t, "nh_latency_seconds");
        if times.last().is_some_and(|&l| l > t_eval) {
            break;
        }
        assert!(
            started.elapsed() < TIME_LIMIT,
            "Tidemark holds no native histogram after T={t_eval} (it holds {} of them): dropped or not received\n{}",
            times.len(),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut problems = Vec::new();
    for name in ["nh_latency_seconds", "nh_float_histogram", "nh_queue_depth"] {
        for q in [
            format!("{name}[5m]"),
            name.to_string(),
            format!("histogram_count({name})"),
            format!("histogram_sum({name})"),
        ] {
            let want = query(&http, &p, &q, t_eval).unwrap_or_else(|e| panic!("Prometheus: {q}: {e}"));
            let got = query(&http, &t, &q, t_eval);
            let ok = matches!(&got, Ok(g) if sorted(g.clone()) == sorted(want.clone()));
            if !ok {
                problems.push(format!("{q}\n  Prometheus: {want}\n  Tidemark:   {got:?}"));
            }
        }
        // The raw answer holds every scrape (the comparison above would also
        // pass on two empty answers).
        let raw = query(&http, &p, &format!("{name}[5m]"), t_eval).expect("Prometheus");
        let n = raw["result"][0]["histograms"].as_array().map_or(0, Vec::len) as u64;
        assert!(n + 2 >= SCRAPES, "{name}: Prometheus holds only {n} histograms");
    }
    assert!(problems.is_empty(), "{} answers differ:\n{}\n{}", problems.len(), problems.join("\n"), logs());

    // /metrics tells the truth about what the receiver stored.
    let metrics = http.get(&format!("{t}/metrics")).expect("metrics").text();
    let appended = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tidemark_remote_write_histograms_appended_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tidemark_remote_write_histograms_appended_total in /metrics:\n{metrics}"));
    assert!(appended >= (3 * SCRAPES) as f64, "{appended} histograms appended");
    assert!(started.elapsed() < TIME_LIMIT, "took {:?}", started.elapsed());
}

/// Rules over native histograms, evaluated by both: one rule file, given to
/// Prometheus (`rule_files`) and to `tidemark serve` (`--rules.file`) by the
/// same absolute path, so the group runs on the same slot in both and
/// records at the same timestamps. Every rule reads its input 10 s in the
/// past (`offset 10s`; Prometheus sends within 200 ms), so at each
/// evaluation both hold the same data. The recorded histograms (a `sum by`
/// over the integer histogram, `h + h` over the float one), a float rule
/// over a recorded histogram and the `ALERTS` of an alert on it must be
/// equal at every timestamp both recorded.
const RULES: &str = r#"groups:
  - name: native-histograms
    interval: 1s
    rules:
      - record: job:nh_latency_seconds:sum
        expr: sum by (job) (nh_latency_seconds offset 10s)
      - record: job:nh_latency_seconds:count
        expr: histogram_count(job:nh_latency_seconds:sum)
      - record: nh_float_histogram:double
        expr: nh_float_histogram offset 10s + nh_float_histogram offset 10s
      - alert: LatencyObserved
        expr: histogram_count(job:nh_latency_seconds:sum) > 0
        labels:
          severity: info
"#;

/// `name`'s points of the last 2 minutes by timestamp (ms): each a
/// histogram or a float value as the JSON API renders it.
fn points(http: &Http, url: &str, name: &str) -> std::collections::BTreeMap<(String, i64), Json> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(data) = query(http, url, &format!("{name}[2m]"), now_ms()) else { return out };
    for s in data["result"].as_array().into_iter().flatten() {
        let labels = s["metric"].to_string();
        for key in ["values", "histograms"] {
            for p in s[key].as_array().into_iter().flatten() {
                let t = (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
                out.insert((labels.clone(), t), p[1].clone());
            }
        }
    }
    out
}

#[test]
fn rules_over_native_histograms_record_what_prometheus_records() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("rule file");
    let rules = rules.display().to_string();
    let tidemark = Tidemark::start(
        TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), dir.path().join("tidemark"))
            .with_args(&["--rules.file", &rules]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let target = start_target();
    let prom = start_prometheus(
        dir.path(),
        &target,
        &tidemark,
        &format!("  evaluation_interval: 1s\nrule_files: [\"{rules}\"]\n"),
    );
    let (p, t) = (prom.url(), tidemark.url());
    let http = Http::new(Duration::from_secs(10));
    let logs = || format!("Prometheus' log:\n{}\nTidemark's log:\n{}", prom.log_tail(30), tidemark.log_tail(30));

    // Scrapes past the reset and 10 s more, so that several evaluations
    // read data from both sides of it.
    while target.scrapes.load(Ordering::SeqCst) < RESET_AT + 16 {
        assert!(started.elapsed() < TIME_LIMIT / 2, "too few scrapes\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let both finish the evaluation in progress.
    std::thread::sleep(Duration::from_millis(1500));

    let mut compared = 0;
    let mut problems = Vec::new();
    for name in ["job:nh_latency_seconds:sum", "job:nh_latency_seconds:count", "nh_float_histogram:double", "ALERTS"] {
        let theirs = points(&http, &p, name);
        let ours = points(&http, &t, name);
        let common: Vec<_> = theirs.keys().filter(|k| ours.contains_key(k)).collect();
        if common.len() < 5 {
            problems.push(format!(
                "{name}: only {} timestamps recorded by both (Prometheus {:?}, Tidemark {:?})",
                common.len(),
                theirs.keys().map(|k| k.1).collect::<Vec<_>>(),
                ours.keys().map(|k| k.1).collect::<Vec<_>>()
            ));
        }
        for k in common {
            compared += 1;
            if theirs[k] != ours[k] {
                problems.push(format!("{name} {} @{}: Prometheus {} Tidemark {}", k.0, k.1, theirs[k], ours[k]));
            }
        }
    }
    eprintln!("rules over native histograms: {compared} recorded points equal in Prometheus 2.42 and Tidemark");
    assert!(problems.is_empty(), "{} differences:\n{}\n{}", problems.len(), problems.join("\n"), logs());
    // The recorded histograms are histograms in both (not floats).
    let data = query(&http, &t, "job:nh_latency_seconds:sum", now_ms() - 2000).expect("Tidemark");
    assert!(data["result"][0]["histogram"].is_array(), "not a histogram: {data}");
    assert!(compared >= 20, "only {compared} points compared");
    assert!(started.elapsed() < TIME_LIMIT, "took {:?}", started.elapsed());
}

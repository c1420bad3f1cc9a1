//! HA-pair deduplication end to end with real senders: two Debian
//! Prometheus 2.42 processes, the replicas of one HA pair (external labels
//! `cluster="a"` and `__replica__="r1"` / `"r2"`), scrape the same
//! node_exporter every second and remote-write to one `tidemark serve
//! --ha.replica-label __replica__ --ha.failover-timeout 5s`.
//!
//! While both run:
//! - neither sender fails or retries a sample
//!   (`prometheus_remote_storage_samples_failed_total` and `_retried_total`
//!   0), Tidemark rejects nothing (no 400, no rejected sample) and counts
//!   the other replica's samples as dropped (`not_elected`);
//! - Tidemark holds one series per target series: `count(up)` is 1, no
//!   series has a `__replica__` label, and for every metric name of the
//!   node job it holds as many series as a replica does;
//! - the samples of `up` come from the elected replica only: every
//!   timestamp is one of the elected replica's own scrape timestamps (the
//!   two replicas scrape at different millisecond phases) and none is one
//!   of the other's.
//!
//! Then the elected replica is killed (SIGKILL). The other one is elected
//! once the first has been silent for the failover timeout, and the longest
//! gap between two stored samples of `up` (raw samples through a range
//! selector) is at most [`MAX_GAP`] = failover timeout + scrape interval +
//! flush slack (the sender's `batch_send_deadline` and a request's
//! latency): the last accepted request of the dead replica held samples up
//! to one flush before it, and the survivor's first accepted request (the
//! first one after the timeout) holds those of its last flush. Every
//! sample after the kill is the survivor's; no sample after the gap is the
//! dead replica's.
//!
//! Needs Debian's `prometheus` and `prometheus-node-exporter`: it fails,
//! never skips, without them. Takes about 30 s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tidemark_testkit::{
    now_ms, secs, url_encode, Http, NodeExporter, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig,
};

/// The whole test must finish within this (a hang is a failure).
const TIME_LIMIT: Duration = Duration::from_secs(90);
/// `--ha.failover-timeout`.
const FAILOVER: Duration = Duration::from_secs(5);
/// The replicas' scrape interval.
const SCRAPE: Duration = Duration::from_secs(1);
/// The replicas' `batch_send_deadline`: how long a sample may wait in a
/// sender's queue.
const FLUSH: Duration = Duration::from_secs(1);
/// Request latency and scheduling on a busy machine.
const SLACK: Duration = Duration::from_secs(1);
/// The longest gap allowed in the stored `up` series across a failover.
const MAX_GAP: Duration =
    Duration::from_secs(FAILOVER.as_secs() + SCRAPE.as_secs() + FLUSH.as_secs() + SLACK.as_secs());

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

/// The timestamps (ms) of the raw samples of `up` in the last 5 minutes
/// (the single series: callers check there is one).
fn up_times(http: &Http, url: &str) -> Vec<i64> {
    let Ok(data) = query(http, url, "up[5m]", now_ms()) else { return Vec::new() };
    let Some(series) = data["result"].as_array().and_then(|r| r.first()) else { return Vec::new() };
    series["values"]
        .as_array()
        .map(|v| v.iter().filter_map(|p| p[0].as_f64()).map(|s| (s * 1000.0).round() as i64).collect())
        .unwrap_or_default()
}

/// `count by (__name__)(q)` as a map.
fn counts_by_name(http: &Http, url: &str, q: &str, t_ms: i64) -> BTreeMap<String, u64> {
    let data = query(http, url, &format!("count by (__name__)({q})"), t_ms).unwrap_or_else(|e| panic!("{url}: {e}"));
    data["result"]
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            let name = s["metric"]["__name__"].as_str().unwrap_or_default().to_owned();
            (name, s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(0))
        })
        .collect()
}

/// Sum of every sample of `name` (any labels) in a `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let bare = series.split('{').next()?;
            (bare == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The elected replica of cluster `a` per Tidemark's `/metrics`.
fn elected(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with("tidemark_ha_elected_replica{") && l.contains(r#"cluster="a""#))
        .and_then(|l| l.split(r#"replica=""#).nth(1))
        .and_then(|r| r.split('"').next())
        .map(str::to_owned)
}

fn replica(dir: &std::path::Path, name: &str, target: &str, tidemark: &str) -> Prometheus {
    let mut config = PrometheusConfig::new(dir.join(name));
    config.config_yaml = format!(
        r#"global:
  scrape_interval: {scrape}s
  scrape_timeout: {scrape}s
  external_labels:
    cluster: a
    __replica__: {name}
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ["{target}"]}}]
remote_write:
  - url: {tidemark}
    remote_timeout: 5s
    queue_config:
      batch_send_deadline: {flush}s
      min_backoff: 100ms
      max_backoff: 1s
"#,
        scrape = SCRAPE.as_secs(),
        flush = FLUSH.as_secs(),
    );
    config.args = vec!["--log.level=warn".into()];
    Prometheus::start(config).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn an_ha_pair_of_prometheus_makes_one_series_and_fails_over_within_the_timeout() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeExporter::start(&[]).unwrap_or_else(|e| panic!("{e}"));
    let failover = format!("{}s", FAILOVER.as_secs());
    let tidemark =
        Tidemark::start(TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), dir.path().join("tidemark")).with_args(&[
            "--ha.replica-label",
            "__replica__",
            "--ha.failover-timeout",
            &failover,
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = tidemark.url();
    let mut replicas: BTreeMap<String, Prometheus> = ["r1", "r2"]
        .into_iter()
        .map(|name| (name.to_owned(), replica(dir.path(), name, &node.target(), &tidemark.remote_write_url())))
        .collect();
    let http = Http::new(Duration::from_secs(10));
    let tidemark_metrics = || http.get(&format!("{t}/metrics")).expect("tidemark /metrics").text();
    let logs = |replicas: &BTreeMap<String, Prometheus>| {
        let mut s = format!("Tidemark's log:\n{}\n", tidemark.log_tail(30));
        for (name, p) in replicas {
            s.push_str(&format!("{name}'s log:\n{}\n", p.log_tail(20)));
        }
        s
    };

    // Both replicas send; one is elected and the other's samples dropped.
    let mut times;
    loop {
        let m = tidemark_metrics();
        times = up_times(&http, &t);
        if times.len() >= 8 && metric(&m, "tidemark_remote_write_ha_dropped_samples_total") > 0.0 {
            break;
        }
        assert!(
            started.elapsed() < TIME_LIMIT / 3,
            "no steady state: {} samples of up\n{}",
            times.len(),
            logs(&replicas)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let m = tidemark_metrics();
    let first = elected(&m).unwrap_or_else(|| panic!("no elected replica in /metrics:\n{m}"));
    let other = if first == "r1" { "r2" } else { "r1" }.to_owned();

    // One series per target series, from one replica at a time.
    let now = now_ms();
    let up = query(&http, &t, "up", now).expect("up");
    assert_eq!(up["result"].as_array().map(Vec::len), Some(1), "up: {up}");
    assert_eq!(
        up["result"][0]["metric"],
        serde_json::json!({"__name__": "up", "cluster": "a", "instance": node.target(), "job": "node"})
    );
    let with_replica = query(&http, &t, r#"{__replica__!=""}"#, now).expect("select");
    assert_eq!(with_replica["result"], serde_json::json!([]), "series with a __replica__ label");
    let ours = counts_by_name(&http, &t, r#"{job="node"}"#, now);
    let theirs = counts_by_name(&http, &replicas[&first].url(), r#"{job="node"}"#, now);
    assert!(ours.len() > 100, "only {} metric names stored", ours.len());
    assert_eq!(ours, theirs, "series per metric name: Tidemark vs the elected replica");
    let mine: BTreeSet<i64> = up_times(&http, &replicas[&first].url()).into_iter().collect();
    let theirs: BTreeSet<i64> = up_times(&http, &replicas[&other].url()).into_iter().collect();
    assert!(
        mine.is_disjoint(&theirs),
        "the replicas scrape at the same instants: the origin check cannot tell them apart"
    );
    let stray: Vec<i64> = times.iter().copied().filter(|t| !mine.contains(t)).collect();
    assert!(stray.is_empty(), "samples of up not scraped by the elected {first}: {stray:?} (stored: {times:?})");

    // Kill the elected replica; its last samples arrive within a flush.
    let sender_counters = |p: &Prometheus| {
        let text = http.get(&format!("{}/metrics", p.url())).expect("prometheus /metrics").text();
        (
            metric(&text, "prometheus_remote_storage_samples_total"),
            metric(&text, "prometheus_remote_storage_samples_failed_total"),
            metric(&text, "prometheus_remote_storage_samples_retried_total"),
        )
    };
    let (sent, failed, retried) = sender_counters(&replicas[&first]);
    assert!(sent > 0.0 && failed == 0.0 && retried == 0.0, "{first}: sent {sent}, failed {failed}, retried {retried}");
    let killed_at = now_ms();
    drop(replicas.remove(&first));

    // The survivor takes over after the timeout and keeps sending.
    let survivor = &replicas[&other];
    let settle = FAILOVER + MAX_GAP + Duration::from_secs(3);
    loop {
        times = up_times(&http, &t);
        let newest = times.last().copied().unwrap_or(0);
        if elected(&tidemark_metrics()).as_deref() == Some(other.as_str())
            && newest > killed_at + settle.as_millis() as i64
        {
            break;
        }
        assert!(
            started.elapsed() < TIME_LIMIT,
            "no failover to {other}: elected {:?}, newest sample {newest}, killed at {killed_at}\n{}",
            elected(&tidemark_metrics()),
            logs(&replicas)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let survivors: BTreeSet<i64> = up_times(&http, &survivor.url()).into_iter().collect();
    // Samples in order: the dead replica's, then the survivor's, never
    // back (the dead one's are those the survivor did not scrape).
    let origins: Vec<bool> = times.iter().map(|t| survivors.contains(t)).collect();
    let switch = origins.iter().position(|&s| s).expect("no sample of the survivor stored");
    assert!(
        origins[switch..].iter().all(|&s| s),
        "samples of {first} after {other}'s: {times:?}\nsurvivor: {survivors:?}"
    );
    assert!(origins[..switch].iter().all(|&s| !s), "samples of {other} before the failover: {times:?}");
    assert!(
        times[switch] > killed_at,
        "{other}'s sample at {} (before the kill at {killed_at}) was stored",
        times[switch]
    );
    let (gap, at) = times.windows(2).map(|w| (w[1] - w[0], w[0])).max().expect("two samples");
    assert!(
        gap <= MAX_GAP.as_millis() as i64,
        "longest gap {gap} ms (from {at}; killed at {killed_at}) exceeds {} ms\n{}",
        MAX_GAP.as_millis(),
        logs(&replicas)
    );
    eprintln!(
        "longest gap across the failover: {gap} ms (bound {} ms), {} samples of up",
        MAX_GAP.as_millis(),
        times.len()
    );

    // Nothing failed or was rejected anywhere; the other replica's samples
    // were dropped, counted, and answered as success.
    let (sent, failed, retried) = sender_counters(survivor);
    assert!(sent > 0.0 && failed == 0.0 && retried == 0.0, "{other}: sent {sent}, failed {failed}, retried {retried}");
    let m = tidemark_metrics();
    for name in ["tidemark_remote_write_samples_rejected_total", "tidemark_remote_write_histograms_rejected_total"] {
        assert_eq!(metric(&m, name), 0.0, "{name}\n{m}");
    }
    let responses = |prefix: &str| {
        m.lines()
            .filter(|l| l.starts_with(&format!(r#"tidemark_remote_write_responses_total{{code="{prefix}"#)))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!((responses("4"), responses("5")), (0.0, 0.0), "error answers:\n{m}");
    assert!(responses("202") > 0.0, "no request answered 202:\n{m}");
    assert!(m.contains(r#"tidemark_remote_write_ha_dropped_samples_total{reason="too_many_clusters"} 0"#), "{m}");
    assert!(m.contains(r#"tidemark_ha_elected_replica_changes_total{cluster="a"} 1"#), "{m}");
    // One series per target series after the failover too.
    let ours = counts_by_name(&http, &t, r#"{job="node"}"#, now_ms());
    assert_eq!(ours.get("up"), Some(&1));
    assert!(started.elapsed() < TIME_LIMIT, "took {:?}", started.elapsed());
}

//! The kit against the real peers: each starts, answers, and is gone after
//! its drop. Needs Debian's `prometheus`, `victoria-metrics` and
//! `prometheus-node-exporter` (./scripts/test installs them); fails, never
//! skips, without them.

use std::path::Path;

use tidemark_testkit::{
    get, now_ms, post, promtool, secs, NodeExporter, Prometheus, PrometheusConfig, VictoriaMetrics,
    VictoriaMetricsConfig,
};

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn prometheus_starts_answers_promtool_and_is_killed_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = PrometheusConfig::new(dir.path().join("tsdb"));
    cfg.args.push("--web.enable-remote-write-receiver".into());
    let prom = Prometheus::start(cfg).unwrap_or_else(|e| panic!("{e}"));
    let t = now_ms();
    let out = promtool(["query", "instant", "-o", "json", &format!("--time={}", secs(t)), &prom.url(), "vector(7)"])
        .and_then(|o| o.into_stdout())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("\"7\""), "{out}");
    // A failed query is an answer, with the error class on stderr.
    let bad = promtool(["query", "instant", &prom.url(), "sum("]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!bad.success() && bad.stderr.contains("bad_data"), "{bad:?}");
    // The receiver is there: an empty body is not a valid snappy block.
    let r = post(&prom.remote_write_url(), &[("Content-Type", "application/x-protobuf")], b"")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 400, "{}", r.text());
    let stats = prom.stats().unwrap_or_else(|e| panic!("{e}"));
    assert!(stats.peak_rss_bytes > 1 << 20 && stats.cpu_seconds > 0.0, "{stats:?}");
    let pid = prom.pid();
    drop(prom);
    assert!(gone(pid), "prometheus {pid} survived its drop");
}

#[test]
fn victoria_metrics_and_node_exporter_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vm =
        VictoriaMetrics::start(VictoriaMetricsConfig::new(dir.path().join("vm"))).unwrap_or_else(|e| panic!("{e}"));
    let ne = NodeExporter::start(&[]).unwrap_or_else(|e| panic!("{e}"));
    let metrics = get(&format!("{}/metrics", ne.url())).unwrap_or_else(|e| panic!("{e}"));
    assert!(metrics.text().contains("node_cpu_seconds_total"), "{}", metrics.status);
    let health = get(&format!("{}/health", vm.url())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health.status, 200);
    let (a, b) = (vm.pid(), ne.pid());
    drop((vm, ne));
    assert!(gone(a) && gone(b));
}

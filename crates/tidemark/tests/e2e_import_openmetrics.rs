//! `tidemark import openmetrics` against `promtool tsdb create-blocks-from
//! openmetrics` on real data: the capture in `../shared/data` (a Prometheus
//! 2.42 scraping node_exporter and itself every 5 s for about 2 h: 941
//! series, 1,297,784 samples, already OpenMetrics text with timestamps) is
//! decompressed, backfilled by promtool into a Prometheus data directory and
//! imported by the built `tidemark` binary into a Tidemark data directory.
//! Then Debian's Prometheus 2.42 serves its directory and `tidemark serve`
//! ours, and the same queries go to both:
//! - every sample: `{__name__=~".+"}[30m]` at instants tiling the whole
//!   imported range (so each sample is compared once, value and timestamp);
//! - instant and range queries over the range: selectors, `rate`,
//!   `sum by`, `histogram_quantile` over the classic histogram
//!   `prometheus_http_request_duration_seconds_bucket`, `*_over_time`,
//!   `count`, `topk`.
//!
//! Evaluation times are whole seconds and the capture's timestamps all have
//! a millisecond part, so the left-closed (2.42) and left-open (3.x) range
//! boundaries select the same samples. Both servers run with a long
//! retention: the capture is older than the default 15 days.
//!
//! Needs `prometheus` and `promtool` (2.42): fails, never skips, without
//! them. Takes about a minute.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;
use tidemark_testkit::{
    promtool_with_timeout, url_encode, Http, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig,
};

/// The capture next to the workspace, or next to the nearest ancestor
/// directory that has it (a git worktree), or `$TIDEMARK_CAPTURE`.
fn capture_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TIDEMARK_CAPTURE") {
        return PathBuf::from(p);
    }
    let name = "shared/data/node-and-prometheus-5s.om.zst";
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found above {}", env!("CARGO_MANIFEST_DIR")))
}

fn decompress(from: &Path, to: &Path) {
    let mut dec = zstd::stream::read::Decoder::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut out = std::fs::File::create(to).unwrap();
    std::io::copy(&mut dec, &mut out).unwrap();
}

/// An answer: series (sorted label text) → points (t ms, value).
type Answer = BTreeMap<String, Vec<(i64, f64)>>;

fn point(p: &Json) -> (i64, f64) {
    let t = p[0].as_f64().expect("timestamp");
    let v = match p[1].as_str().expect("value") {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().expect("number"),
    };
    ((t * 1000.0).round() as i64, v)
}

fn answer(http: &Http, base: &str, path_and_query: &str) -> Answer {
    let url = format!("{base}{path_and_query}");
    let resp = http.get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let json: Json = serde_json::from_slice(&resp.body).unwrap_or_else(|e| panic!("{url}: {e}: {}", resp.text()));
    assert_eq!(json["status"], "success", "{url}: {json}");
    let data = &json["data"];
    let mut out = Answer::new();
    let result = &data["result"];
    if data["resultType"] == "scalar" {
        out.insert(String::new(), vec![point(result)]);
        return out;
    }
    for s in result.as_array().expect("result array") {
        let metric = s["metric"].as_object().expect("metric");
        let mut labels: Vec<String> =
            metric.iter().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default())).collect();
        labels.sort();
        let points = match s["values"].as_array() {
            Some(vs) => vs.iter().map(point).collect(),
            None => vec![point(&s["value"])],
        };
        assert!(out.insert(labels.join(","), points).is_none(), "{url}: duplicate series");
    }
    out
}

/// Equal within 1e-9 relative; NaN equals NaN.
fn same_value(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn differ(a: &Answer, b: &Answer) -> Option<String> {
    for k in a.keys().chain(b.keys()) {
        let (Some(pa), Some(pb)) = (a.get(k), b.get(k)) else {
            return Some(format!("series {{{k}}} only on one side ({} vs {} series)", a.len(), b.len()));
        };
        if pa.len() != pb.len() {
            return Some(format!("{{{k}}}: {} vs {} points", pa.len(), pb.len()));
        }
        for (&(ta, va), &(tb, vb)) in pa.iter().zip(pb) {
            if ta != tb || !same_value(va, vb) {
                return Some(format!("{{{k}}}: ({ta}, {va}) vs ({tb}, {vb})"));
            }
        }
    }
    None
}

fn samples_in(a: &Answer) -> usize {
    a.values().map(Vec::len).sum()
}

#[test]
fn imported_openmetrics_answers_like_promtool_backfilled_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let om = tmp.path().join("capture.om");
    decompress(&capture_path(), &om);

    // promtool's backfill into a Prometheus data directory.
    let prom_dir = tmp.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let out = promtool_with_timeout(
        ["tsdb".as_ref(), "create-blocks-from".as_ref(), "openmetrics".as_ref(), om.as_os_str(), prom_dir.as_os_str()],
        Duration::from_secs(300),
    )
    .unwrap();
    assert!(out.success(), "promtool failed: {}\n{}", out.stdout, out.stderr);

    // Ours, with the built binary and a small memory bound (the capture's
    // samples alone take ~31 MB in the importer's buffers: several runs spill).
    let tm_dir = tmp.path().join("tidemark");
    let run = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["import", "openmetrics", "--data-dir"])
        .arg(&tm_dir)
        .args(["--max-memory", "8MiB"])
        .arg(&om)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "import failed: {stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("series:            941"), "{stdout}");
    assert!(stdout.contains("float samples:     1297784"), "{stdout}");
    assert!(stdout.contains("verified:          yes"), "{stdout}");
    let range = stdout.lines().find(|l| l.starts_with("time range:")).expect("time range line");
    let (min_ms, max_ms) = {
        let inner = range.rsplit('(').next().unwrap().trim_end_matches(" ms)");
        let (a, b) = inner.split_once(" .. ").unwrap();
        (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap())
    };

    // A running Tidemark holds the lock: a second import is refused.
    let tidemark = Tidemark::start(
        TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), &tm_dir).with_args(&["--retention.time", "100y"]),
    )
    .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["import", "openmetrics", "--quiet", "--data-dir"])
        .arg(&tm_dir)
        .arg(&om)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("stop it before importing"));

    let mut pc = PrometheusConfig::new(&prom_dir);
    pc.args = vec!["--storage.tsdb.retention.time=100y".into()];
    let prometheus = Prometheus::start(pc).unwrap();
    let http = Http::new(Duration::from_secs(60));
    let (p_url, t_url) = (prometheus.url(), tidemark.base_url());
    let ask = |q: &str| {
        let a = answer(&http, &p_url, q);
        let b = answer(&http, &t_url, q);
        if let Some(d) = differ(&a, &b) {
            panic!("{q}: Prometheus and Tidemark differ: {d}");
        }
        a
    };

    // Every sample: 30-minute windows ending on whole seconds, tiling the range.
    let first_end = (min_ms / 1000 + 1) * 1000 + 1_800_000 - 1_000;
    let mut end = first_end;
    let mut seen = 0;
    while end - 1_800_000 <= max_ms {
        let q = format!("/api/v1/query?query={}&time={}", url_encode("{__name__=~\".+\"}[30m]"), end / 1000);
        seen += samples_in(&ask(&q));
        end += 1_800_000;
    }
    assert_eq!(seen, 1_297_784, "every sample compared once");

    let instant = [
        "up",
        "count({__name__=~\".+\"})",
        "node_cpu_seconds_total",
        "rate(node_cpu_seconds_total[5m])",
        "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
        "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[10m])))",
        "histogram_quantile(0.5, sum by (le, handler) (rate(prometheus_http_request_duration_seconds_bucket[30m])))",
        "avg_over_time(process_resident_memory_bytes[30m])",
        "max_over_time(node_load1[1h])",
        "topk(3, rate(node_network_receive_bytes_total[5m]))",
        "increase(prometheus_tsdb_head_samples_appended_total[1h])",
    ];
    let mid = (min_ms / 1000 + 3_700).max((min_ms + max_ms) / 2 / 1000 + 1_800);
    // Every instant lies more than an hour into the data: a window that
    // starts before a counter's first sample is extrapolated as Prometheus
    // 3.x does it (the half-interval cap before the clamp at zero), which
    // 2.42 does the other way round (`increase(x[1h])` 10 min into the
    // data: 110323.98 vs 110377.65): a PromQL version difference, not the
    // import's.
    let times = [min_ms / 1000 + 3_700, mid, max_ms / 1000, max_ms / 1000 + 200];
    let mut compared = 0;
    for q in instant {
        for t in times {
            let a = ask(&format!("/api/v1/query?query={}&time={t}", url_encode(q)));
            compared += usize::from(!a.is_empty());
        }
        let r = ask(&format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            url_encode(q),
            min_ms / 1000 + 3_700,
            max_ms / 1000 + 60
        ));
        assert!(!r.is_empty(), "{q}: empty range answer");
    }
    assert!(compared >= instant.len() * 3, "most instant answers hold data: {compared}");
}

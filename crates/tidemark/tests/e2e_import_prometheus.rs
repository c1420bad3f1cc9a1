//! `tidemark import prometheus` end to end with a data directory written by
//! a real Prometheus 2.42:
//!
//! 1. `promtool tsdb create-blocks-from openmetrics` backfills the whole
//!    capture in `../shared/data` (941 series, 1.3 M samples of a real
//!    node_exporter and Prometheus, 2026-11-21) as blocks;
//! 2. Prometheus 2.42 runs on that directory twice (a restart starts a new
//!    WAL segment), scraping itself and a tiny target that serves native
//!    histograms (integer with a counter reset, float, gauge) every second,
//!    with `--storage.tsdb.min-block-duration=10s` so that its head is cut
//!    into blocks holding histogram chunks while it runs; during the second
//!    run series are deleted through the admin API, in old blocks (a whole
//!    series, a time range) and in the head (time ranges of a float and a
//!    histogram series): tombstones in blocks and in the WAL;
//! 3. after SIGTERM the directory is imported with its WAL and verified;
//! 4. Prometheus starts again on its directory (replaying its WAL) and
//!    `tidemark serve` on the imported one, and the same queries go to
//!    both: every series' raw samples (`{__name__="…"}[30d]`, one query per
//!    metric name, floats and histograms as the JSON API renders them) must
//!    be identical, and `rate`/`sum by` over the backfilled data equal
//!    within 1e-9 relative.
//!
//! Raw ranges reach back before every series' first sample, so the
//! left-closed (2.42) and left-open (3.x) range selectors select the same
//! samples; rate windows start after every series' birth and end off the
//! scrape grid.
//!
//! Needs Debian's `prometheus` and `promtool` (2.42): fails, never skips,
//! without them. Takes about 90 s.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value as Json;
use tidemark_import::prometheus::import_dir;
use tidemark_import::summary::ImportOptions;
use tidemark_testkit::{
    free_port, now_ms, promtool_with_timeout, secs, url_encode, Http, Prometheus, PrometheusConfig, Tidemark,
    TidemarkConfig,
};

/// The whole test must finish within this (a hang is a failure).
const TIME_LIMIT: Duration = Duration::from_secs(300);
/// Scraping time of each of the two Prometheus runs.
const RUN: Duration = Duration::from_secs(24);

/// The capture's time range (ms), from its README and its first/last lines.
const OM_MIN: i64 = 1_795_257_283_533;
const OM_MAX: i64 = 1_795_264_238_732;

/// The `io.prometheus.client` exposition messages the target writes: the
/// server's own (`/federate` writes them too).
use tidemark::api::exposition as client;

fn spans(s: &[(i32, u32)]) -> Vec<client::BucketSpan> {
    s.iter().map(|&(offset, length)| client::BucketSpan { offset, length }).collect()
}

/// Bucket counts as the deltas the exposition carries.
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

/// The exposition body of scrape `n` (1-based), each family
/// length-delimited.
fn body(n: u64) -> Vec<u8> {
    // Integer, schema 3, counts restarting every 15 scrapes (a counter
    // reset inside the data).
    let m = (n - 1) % 15 + 1;
    let pos = [m, 2 * m, 1, 3 * m];
    let neg = [m];
    let latency = client::Histogram {
        sample_count: m + pos.iter().sum::<u64>() + neg.iter().sum::<u64>(),
        sample_sum: 0.75 * m as f64 + 0.5,
        schema: 3,
        zero_threshold: 1e-3,
        zero_count: m,
        positive_span: spans(&[(-1, 2), (3, 2)]),
        positive_delta: deltas(&pos),
        negative_span: spans(&[(0, 1)]),
        negative_delta: deltas(&neg),
        ..Default::default()
    };
    // Float counts (2.42 takes a histogram as native only with a zero
    // threshold, a zero count or integer deltas: hence the threshold).
    let f = n as f64;
    let float = client::Histogram {
        sample_count_float: 2.25 * f,
        sample_sum: 3.5 * f,
        schema: 0,
        zero_threshold: 1e-3,
        zero_count_float: 0.5 * f,
        positive_span: spans(&[(0, 2)]),
        positive_count: vec![0.25 * f, 1.5 * f],
        ..Default::default()
    };
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
        help: format!("{name} for the import test."),
        r#type: kind as i32,
        metric: vec![client::Metric {
            label: vec![client::LabelPair { name: "path".into(), value: "/api".into() }],
            histogram: Some(h),
            ..Default::default()
        }],
    };
    let mut out = Vec::new();
    for f in [
        family("nh_latency_seconds", client::MetricType::Histogram, latency),
        family("nh_float_histogram", client::MetricType::Histogram, float),
        family("nh_queue_depth", client::MetricType::GaugeHistogram, gauge),
    ] {
        f.encode_length_delimited(&mut out).expect("a Vec grows");
    }
    out
}

/// The scrape target on 127.0.0.1 (`tidemark_testkit::ScrapeTarget`).
fn start_target() -> tidemark_testkit::ScrapeTarget {
    // Any scraper gets the protobuf body (the Prometheus runs ask for it).
    tidemark_testkit::ScrapeTarget::start(
        "",
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
        body,
    )
    .expect("scrape target")
}

/// The capture, decompressed into `dir`.
fn capture(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/node-and-prometheus-5s.om.zst");
    let input = std::fs::File::open(&src).unwrap_or_else(|e| panic!("{}: {e} (the shared data set)", src.display()));
    let out = dir.join("capture.om");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out).expect("create capture.om"));
    zstd::stream::copy_decode(input, &mut w).expect("decompress the capture");
    w.flush().expect("flush capture.om");
    out
}

/// A Prometheus 2.42 on `dir` that keeps data forever; `scrape` selects the
/// self-scrape and the histogram target (then with 10 s head blocks).
fn prometheus(dir: &Path, scrape: Option<&tidemark_testkit::ScrapeTarget>) -> Prometheus {
    let mut cfg = PrometheusConfig::new(dir);
    cfg.args = vec!["--storage.tsdb.retention.time=10y".into(), "--web.enable-admin-api".into()];
    if let Some(t) = scrape {
        let port = free_port();
        cfg.port = Some(port);
        cfg.config_yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  \
             - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n  \
             - job_name: histograms\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr
        );
        cfg.args.extend([
            "--enable-feature=native-histograms".into(),
            "--storage.tsdb.min-block-duration=10s".into(),
            "--storage.tsdb.max-block-duration=10s".into(),
        ]);
    }
    Prometheus::start(cfg).expect("start prometheus 2.42")
}

fn delete_series(http: &Http, url: &str, matcher: &str, range: Option<(i64, i64)>) {
    let mut body = format!("match[]={}", url_encode(matcher));
    if let Some((a, b)) = range {
        body.push_str(&format!("&start={}&end={}", secs(a), secs(b)));
    }
    let r = http
        .post(
            &format!("{url}/api/v1/admin/tsdb/delete_series"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .expect("delete_series");
    assert_eq!(r.status, 204, "delete_series {matcher}: {}", r.text());
}

/// `data` of a successful query answer.
fn query(http: &Http, url: &str, path_and_query: &str) -> Json {
    let r = http.get(&format!("{url}{path_and_query}")).unwrap_or_else(|e| panic!("{url}{path_and_query}: {e}"));
    let json: Json = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{}: {e}: {}", r.status, r.text()));
    assert_eq!(json["status"], "success", "{url}{path_and_query}: {}", r.text());
    json["data"].clone()
}

/// Series sorted by labels (the comparison must not depend on order).
fn sorted(mut data: Json) -> Json {
    if let Some(r) = data["result"].as_array_mut() {
        r.sort_by_key(|s| s["metric"].to_string());
    }
    data
}

/// Equal, floats within 1e-9 relative (NaN equal to NaN).
fn close(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::String(x), Json::String(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= 1e-9 * p.abs().max(q.abs()),
            _ => x == y,
        },
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q)),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

fn block_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the data directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn a_real_prometheus_data_directory_imports_completely_and_answers_the_same() {
    let started = Instant::now();
    let work = tempfile::tempdir().expect("tempdir");
    let prom_dir = work.path().join("prometheus");
    let tm_dir = work.path().join("tidemark");
    let http = Http::new(Duration::from_secs(60));

    // 1. Backfill the capture into blocks.
    let om = capture(work.path());
    let out = promtool_with_timeout(
        [
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            om.to_str().expect("utf-8 path"),
            prom_dir.to_str().expect("utf-8"),
        ],
        Duration::from_secs(120),
    )
    .expect("run promtool");
    assert!(out.success(), "promtool create-blocks-from openmetrics failed: {out:?}");
    let backfilled = block_dirs(&prom_dir);
    assert!(!backfilled.is_empty(), "promtool wrote no block");

    // 2. Two runs of Prometheus scraping, deletions in the second.
    let target = start_target();
    let mut p = prometheus(&prom_dir, Some(&target));
    std::thread::sleep(RUN);
    p.terminate(Duration::from_secs(30)).expect("stop prometheus (run 1)");
    let mut p = prometheus(&prom_dir, Some(&target));
    std::thread::sleep(RUN / 2);
    let url = p.url();
    delete_series(&http, &url, r#"go_gc_duration_seconds{quantile="0"}"#, None);
    delete_series(&http, &url, "node_load1", Some((OM_MIN + 600_000, OM_MIN + 1_200_000)));
    let now = now_ms();
    delete_series(&http, &url, r#"up{job="self"}"#, Some((now - 5_000, now - 2_000)));
    delete_series(&http, &url, "nh_queue_depth", Some((now - 6_000, now - 3_000)));
    std::thread::sleep(RUN / 2);
    p.terminate(Duration::from_secs(30)).expect("stop prometheus (run 2)");
    drop(target);
    let blocks = block_dirs(&prom_dir);
    assert!(
        blocks.len() > backfilled.len(),
        "Prometheus cut no head block in {RUN:?} with 10 s blocks: {blocks:?}; log: {}",
        p.log_tail(30)
    );
    assert!(blocks.iter().any(|b| b.join("tombstones").is_file()), "no block has tombstones after the deletions");
    let wal: Vec<String> = std::fs::read_dir(prom_dir.join("wal"))
        .expect("wal/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("Prometheus wrote {} blocks; wal/ holds {wal:?}", blocks.len());

    // 3. Import with the WAL, verified.
    let opts = ImportOptions {
        data_dir: tm_dir.clone(),
        block_duration: Duration::from_secs(7200),
        max_memory_bytes: 256 << 20,
        progress: false,
        verify: true,
    };
    let t = Instant::now();
    let summary = import_dir(&prom_dir, true, &opts).expect("import");
    eprintln!("import took {:?}: {summary:#?}", t.elapsed());
    assert!(summary.verified);
    assert!(summary.series > 941, "the capture's 941 series and the scraped ones: {summary:?}");
    assert!(summary.float_samples > 1_290_000, "{summary:?}");
    assert!(summary.histogram_samples > 0, "no native histogram imported: {summary:?}");
    assert_eq!(summary.min_time_ms, OM_MIN, "{summary:?}");
    let deleted = summary.skipped.iter().find(|s| s.0 == "samples deleted by tombstones").map_or(0, |s| s.1);
    assert!(deleted > 0, "tombstones were not applied: {summary:?}");
    // The importer refuses a directory that is in use.
    let tm = Tidemark::start(
        TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), &tm_dir).with_args(&["--retention.time", "3650d"]),
    )
    .expect("start tidemark serve");
    let again = import_dir(&prom_dir, false, &ImportOptions { verify: false, ..opts.clone() });
    assert!(
        matches!(again, Err(tidemark_import::prometheus::PrometheusImportError::Locked(_))),
        "import into a served directory must be refused: {again:?}"
    );
    // The same through the command line: exit status 1 and the reason.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["import", "prometheus", "--quiet", "--wal", "--data-dir"])
        .arg(&tm_dir)
        .arg(&prom_dir)
        .output()
        .expect("run tidemark import prometheus");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");

    // 4. Prometheus on its own directory (WAL replayed) against Tidemark.
    let p = prometheus(&prom_dir, None);
    let (purl, turl) = (p.url(), tm.base_url());
    let t_eval = now_ms();
    let names = query(&http, &purl, "/api/v1/label/__name__/values");
    let tm_names = query(&http, &turl, "/api/v1/label/__name__/values");
    assert_eq!(names, tm_names, "metric names differ");
    let names: Vec<String> =
        names.as_array().expect("names").iter().filter_map(|n| n.as_str().map(str::to_string)).collect();
    assert!(names.len() > 200, "{names:?}");
    let mut samples = 0usize;
    let mut histograms = 0usize;
    let mut mismatches = BTreeMap::new();
    for name in &names {
        assert!(started.elapsed() < TIME_LIMIT, "over the time limit at {name}");
        let q = format!(
            "/api/v1/query?query={}&time={}",
            url_encode(&format!("{{__name__=\"{name}\"}}[30d]")),
            secs(t_eval)
        );
        let (a, b) = (sorted(query(&http, &purl, &q)), sorted(query(&http, &turl, &q)));
        for s in a["result"].as_array().into_iter().flatten() {
            samples += s["values"].as_array().map_or(0, Vec::len);
            histograms += s["histograms"].as_array().map_or(0, Vec::len);
        }
        if a != b {
            mismatches.insert(
                name.clone(),
                (
                    a.to_string().chars().take(400).collect::<String>(),
                    b.to_string().chars().take(400).collect::<String>(),
                ),
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} metrics differ, e.g. {:?}",
        mismatches.len(),
        names.len(),
        mismatches.iter().next()
    );
    assert!(samples > 1_290_000 && histograms > 0, "compared {samples} samples, {histograms} histograms");
    // The deletions hold on both sides.
    let q = format!(
        "/api/v1/query?query={}&time={}",
        url_encode(r#"go_gc_duration_seconds{quantile="0"}[30d]"#),
        secs(t_eval)
    );
    assert_eq!(query(&http, &turl, &q)["result"], Json::Array(vec![]));

    // Functions over the backfilled data. Both targets were scraped every
    // 5 s at phases .533 and .731 s past OM_MIN's grid; evaluation times
    // 2.5 s off that grid keep every window boundary off a sample, where
    // 2.42's left-closed and 3.x's left-open windows would differ.
    let start = OM_MIN + 600_000 + 2_500;
    let end = OM_MAX - 60_000;
    for expr in [
        "sum by (mode) (rate(node_cpu_seconds_total[1m]))",
        "sum by (job) (rate(process_cpu_seconds_total[2m]))",
        "rate(prometheus_http_requests_total[5m])",
        "sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes)",
        "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[5m])))",
        "max_over_time(node_load1[10m])",
    ] {
        let q =
            format!("/api/v1/query_range?query={}&start={}&end={}&step=60", url_encode(expr), secs(start), secs(end));
        let (a, b) = (sorted(query(&http, &purl, &q)), sorted(query(&http, &turl, &q)));
        assert!(a["result"].as_array().is_some_and(|r| !r.is_empty()), "{expr}: Prometheus has no answer");
        assert!(
            close(&a, &b),
            "{expr}:\nprometheus {}\ntidemark   {}",
            a.to_string().chars().take(600).collect::<String>(),
            b.to_string().chars().take(600).collect::<String>()
        );
    }
    eprintln!(
        "compared {} metric names, {samples} float samples and {histograms} histograms: equal; took {:?}",
        names.len(),
        started.elapsed()
    );
}

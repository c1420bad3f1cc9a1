//! Differential test of native-histogram PromQL: our engine against a real
//! Prometheus (Debian's 2.42, `--enable-feature=native-histograms`).
//!
//! Both get the same generated data (`differential/histograms.rs`): our
//! engine reads it from a [`Db`] (the first hour persisted to a block, the
//! rest in the head), Prometheus receives it through its remote-write
//! receiver, in time order. Every query of
//! `testdata/promql/differential-histogram-queries.txt` then runs on both as
//! instant queries at several times and as range queries; answers must be
//! equal: same label sets and timestamps, floats up to rounding, histograms
//! by count, sum and non-empty buckets (bounds and counts).
//!
//! 2.42 is not the 3.x our engine follows, and native histograms changed
//! more than floats between them; the differences are listed, each with its
//! reason, in [`KNOWN_DIFFERENCES`]. Details: testdata/promql/DIFFERENTIAL.md.
//!
//! Run it with `cargo test -p tidemark-promql --test differential_histograms`.

#[path = "differential/data.rs"]
#[allow(dead_code)] // the float data generator: only its clock and LCG are used here
mod data;
#[path = "differential/histograms.rs"]
mod histograms;
// Shared with the float test, which uses parts this one does not.
#[path = "differential/prom.rs"]
#[allow(dead_code)]
mod prom;
#[path = "differential/result.rs"]
#[allow(dead_code)]
mod result;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidemark_promql::Engine;
use tidemark_remote::proto::v1;
use tidemark_storage::histogram::HistogramSample;
use tidemark_storage::{Db, Labels};

use data::{SPAN, T0};
use histograms::Val;
use result::{compare, ours, Mismatch, Outcome};

/// 3.x interpolates exponentially within exponential buckets (quantile.go:
/// `histogramQuantile`, `HistogramFraction`); 2.42 interpolated linearly.
const INTERPOLATION: &str = "3.x interpolates exponentially inside exponential buckets, 2.42 linearly";
/// 2.42's `histogramQuantile` stops at the first bucket with `count >= rank`,
/// which for q = 0 is an empty zero bucket, and divides 0 by 0.
const QUANTILE_ZERO: &str = "2.42 answers NaN for q = 0 (0/0 in an empty zero bucket); 3.x the lowest populated bound";
/// 2.42's `vectorElemBinop` knew only `h + h`; every other operator worked
/// on the histogram's (zero) float field or passed the histogram through.
const ARITHMETIC: &str = "2.42 has no histogram arithmetic but h + h (3.x: h - h, h * f, h / f, -h, h == h; \
                          other operators drop histograms)";
/// 2.42's irate, idelta, changes, resets and *_over_time read only float
/// samples (a histogram sample counted as its float field, 0).
const RANGE_FUNCTIONS: &str = "2.42's irate/idelta/changes/resets/*_over_time ignore histogram values";
/// 2.42's aggregation: only sum handled histograms; avg, min, max, topk,
/// quantile and stddev used the float field (0).
const AGGREGATIONS: &str = "2.42 aggregates histograms only in sum (3.x: avg too; min/max/topk/quantile/stddev \
                            skip them)";

/// Queries whose answers differ between Prometheus 2.42 and 3.x by design:
/// native histograms were experimental in 2.42 and many operators and
/// functions did not handle them yet. A mismatch on one of these is
/// reported but does not fail the test; answering one of them exactly like
/// 2.42 fails (the 3.x behaviour is missing). Anything else that differs is
/// a bug. Their 3.x answers are covered by the upstream promqltest files.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    ("histogram_fraction(-10, 0, nh_balance_change)", INTERPOLATION),
    ("histogram_fraction(0, 0.1, nh_latency_seconds)", INTERPOLATION),
    ("histogram_fraction(0, 0.1, rate(nh_latency_seconds[5m]))", INTERPOLATION),
    ("histogram_fraction(10, 100, nh_queue_depth)", INTERPOLATION),
    ("histogram_quantile(0.1, nh_balance_change)", INTERPOLATION),
    ("histogram_quantile(0.5, nh_balance_change)", INTERPOLATION),
    ("histogram_quantile(0.5, nh_latency_seconds)", INTERPOLATION),
    ("histogram_quantile(0.5, nh_nan_seconds)", INTERPOLATION),
    ("histogram_quantile(0.5, sum(rate(nh_latency_seconds[5m])))", INTERPOLATION),
    ("histogram_quantile(0.75, nh_mem_ratio)", INTERPOLATION),
    ("histogram_quantile(0.9, rate(nh_latency_seconds[5m]))", INTERPOLATION),
    ("histogram_quantile(0.99, rate(nh_payload_bytes[10m]))", INTERPOLATION),
    ("histogram_quantile(0, nh_queue_depth)", QUANTILE_ZERO),
    ("-nh_queue_depth", ARITHMETIC),
    ("2 * nh_latency_seconds", ARITHMETIC),
    ("nh_latency_seconds * 2", ARITHMETIC),
    ("nh_payload_bytes / 4", ARITHMETIC),
    ("nh_queue_depth / 0", ARITHMETIC),
    ("nh_latency_seconds * on(instance) group_left nh_scale", ARITHMETIC),
    ("nh_latency_seconds / on(instance) group_left nh_scale", ARITHMETIC),
    ("rate(nh_latency_seconds[5m]) * 60", ARITHMETIC),
    ("nh_queue_depth == nh_queue_depth", ARITHMETIC),
    ("nh_latency_seconds + 1", ARITHMETIC),
    ("nh_latency_seconds * nh_latency_seconds", ARITHMETIC),
    ("nh_queue_depth - nh_queue_depth", ARITHMETIC),
    ("nh_queue_depth{instance=\"w-1\"} - ignoring(instance) nh_queue_depth{instance=\"w-2\"}", ARITHMETIC),
    ("sum(nh_latency_seconds{schema=~\"0|8\"}) - sum(nh_latency_seconds{schema=\"8\"})", ARITHMETIC),
    ("irate(nh_latency_seconds[5m])", RANGE_FUNCTIONS),
    ("irate(nh_payload_bytes[2m])", RANGE_FUNCTIONS),
    ("idelta(nh_queue_depth[2m])", RANGE_FUNCTIONS),
    ("idelta(nh_mem_ratio[2m])", RANGE_FUNCTIONS),
    ("changes(nh_latency_seconds[10m])", RANGE_FUNCTIONS),
    ("changes(nh_queue_depth[5m])", RANGE_FUNCTIONS),
    ("changes(nh_mixed[20m])", RANGE_FUNCTIONS),
    ("resets(nh_latency_seconds[30m])", RANGE_FUNCTIONS),
    ("resets(nh_payload_bytes[1h])", RANGE_FUNCTIONS),
    ("sum_over_time(nh_queue_depth[2m])", RANGE_FUNCTIONS),
    ("sum_over_time(nh_mem_ratio[1m])", RANGE_FUNCTIONS),
    ("sum_over_time(rate(nh_payload_bytes[5m])[10m:1m])", RANGE_FUNCTIONS),
    ("avg_over_time(nh_queue_depth[5m])", RANGE_FUNCTIONS),
    ("avg_over_time(nh_mem_ratio[3m])", RANGE_FUNCTIONS),
    ("last_over_time(nh_queue_depth[5m])", RANGE_FUNCTIONS),
    ("last_over_time(nh_mixed[3m])", RANGE_FUNCTIONS),
    ("last_over_time(nh_latency_seconds[10m:1m])", RANGE_FUNCTIONS),
    ("avg by (job) (rate(nh_latency_seconds[5m]))", AGGREGATIONS),
    ("avg(nh_queue_depth)", AGGREGATIONS),
    ("min(nh_queue_depth)", AGGREGATIONS),
    ("max(nh_queue_depth)", AGGREGATIONS),
    ("topk(1, nh_queue_depth)", AGGREGATIONS),
    ("quantile(0.5, nh_queue_depth)", AGGREGATIONS),
    ("stddev(nh_queue_depth)", AGGREGATIONS),
];

/// Instant query times, in seconds after T0; whole seconds, never a
/// multiple of 15 s (see the float test).
const INSTANT_TIMES: &[i64] = &[
    47,         // the first minute: windows reaching before the data
    1_837,      // the batch job and api-2 have just appeared
    3_637,      // just after api-1's restart; nh_mixed holds histograms
    4_337,      // the batch job went stale; api-2's float payload reset
    5_117,      // api-5 stopped (stale marker); nh_mixed back to floats
    7_177,      // the data's last half minute
    SPAN + 197, // after the data, within the 5 m lookback
];

/// Range queries: (start, end, step) in seconds after T0.
const RANGES: &[(i64, i64, i64)] = &[
    (1_237, 3_037, 60), // 30 minutes across the batch job's start
    (3_613, 5_113, 45), // unaligned; resets, staleness, the float switch
    (6_637, 7_837, 60), // across the end of the data
    (22, 7_522, 300),   // the whole data, coarse
];

/// The whole comparison must stay well inside this.
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// Samples up to this time (seconds after T0) go to a block; later ones
/// stay in the head.
const BLOCK_UNTIL: i64 = 3_600;

/// One line of the query file.
struct Query {
    text: String,
    may_be_empty: bool,
    expect_error: bool,
}

fn load_queries() -> Vec<Query> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/promql/differential-histogram-queries.txt");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut q = Query { text: String::new(), may_be_empty: false, expect_error: false };
        let mut rest = line;
        loop {
            if let Some(r) = rest.strip_prefix("error:") {
                q.expect_error = true;
                rest = r.trim_start();
            } else if let Some(r) = rest.strip_prefix("empty:") {
                q.may_be_empty = true;
                rest = r.trim_start();
            } else {
                break;
            }
        }
        q.text = rest.to_string();
        out.push(q);
    }
    out
}

/// Milliseconds of `s` seconds after T0.
fn ms(s: i64) -> i64 {
    (T0 + s) * 1000
}

fn storage_labels(l: &BTreeMap<String, String>) -> Labels {
    Labels::new(l.iter().map(|(k, v)| (k.as_str(), v.as_str()))).expect("valid labels")
}

/// Every sample of every series in global time order: `(t, series, sample)`.
fn in_time_order(data: &[histograms::Series]) -> Vec<(i64, usize, &Val)> {
    let mut all: Vec<(i64, usize, &Val)> =
        data.iter().enumerate().flat_map(|(i, s)| s.samples.iter().map(move |(t, v)| (*t, i, v))).collect();
    all.sort_by_key(|&(t, i, _)| (t, i));
    all
}

/// Loads our database: samples up to [`BLOCK_UNTIL`] are flushed into a
/// block, the rest stays in the head.
fn load_ours(data: &[histograms::Series], dir: &std::path::Path) -> Db {
    // One-hour blocks, so flushing the first hour leaves the second to the head.
    let db = Db::builder(dir).block_range(3_600_000).maintenance_interval(None).open().expect("open db");
    let labels: Vec<Labels> = data.iter().map(|s| storage_labels(&s.labels)).collect();
    let all = in_time_order(data);
    let split = all.partition_point(|&(t, _, _)| t <= ms(BLOCK_UNTIL));
    for (part, flush) in [(&all[..split], true), (&all[split..], false)] {
        let mut app = db.appender();
        for &(t, i, v) in part {
            match v {
                Val::Float(f) => app.append(&labels[i], t, *f).map(|_| ()),
                Val::Hist(h) => app.append_histogram(&labels[i], t, h.clone()).map(|_| ()),
            }
            .unwrap_or_else(|e| panic!("our db refuses {:?} at {t}: {e}", data[i].labels));
        }
        app.commit().expect("commit");
        if flush {
            let blocks = db.flush_head().expect("flush head");
            assert!(blocks > 0, "no block written");
        }
    }
    db
}

/// Sends the samples to Prometheus by remote write, in time order, several
/// requests. Prometheus appends a series' floats before its histograms
/// within one request, so a request never holds both kinds for one series.
fn load_prometheus(data: &[histograms::Series], prometheus: &prom::Prometheus) -> usize {
    let all = in_time_order(data);
    let mut requests = 0;
    let mut series: BTreeMap<usize, v1::TimeSeries> = BTreeMap::new();
    let mut samples = 0;
    let flush = |series: &mut BTreeMap<usize, v1::TimeSeries>, requests: &mut usize| {
        if series.is_empty() {
            return;
        }
        let req = v1::WriteRequest { timeseries: std::mem::take(series).into_values().collect(), metadata: Vec::new() };
        prometheus.remote_write(&tidemark_remote::codec::encode_v1(&req));
        *requests += 1;
    };
    for (t, i, v) in all {
        let conflict = series.get(&i).is_some_and(|ts| match v {
            Val::Float(_) => !ts.histograms.is_empty(),
            Val::Hist(_) => !ts.samples.is_empty(),
        });
        if conflict || samples >= 2_000 {
            flush(&mut series, &mut requests);
            samples = 0;
        }
        let ts = series.entry(i).or_insert_with(|| v1::TimeSeries {
            labels: data[i].labels.iter().map(|(k, v)| v1::Label { name: k.clone(), value: v.clone() }).collect(),
            ..Default::default()
        });
        match v {
            Val::Float(f) => ts.samples.push(v1::Sample { value: *f, timestamp: t }),
            Val::Hist(h) => {
                ts.histograms.push(tidemark_remote::histogram::to_proto(&HistogramSample { t, h: h.clone() }))
            }
        }
        samples += 1;
    }
    flush(&mut series, &mut requests);
    requests
}

#[test]
fn our_engine_answers_native_histogram_queries_like_prometheus_2_42() {
    let started = Instant::now();
    prom::require_binaries();
    let queries = load_queries();
    assert!(queries.len() >= 80, "the query list looks truncated ({} queries)", queries.len());
    let times = INSTANT_TIMES.iter().copied().chain(RANGES.iter().flat_map(|&(s, e, st)| (s..=e).step_by(st as usize)));
    for t in times {
        assert!(t % 15 != 0, "evaluation time T0+{t}s is a multiple of 15 s");
    }
    for (q, _) in KNOWN_DIFFERENCES {
        assert!(queries.iter().any(|x| x.text == *q), "KNOWN_DIFFERENCES names {q:?}, which is not in the query list");
    }

    let data = histograms::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = load_ours(&data, &dir.path().join("ours"));
    let prometheus = prom::Prometheus::start_with(
        &dir.path().join("prometheus"),
        &["--enable-feature=native-histograms", "--web.enable-remote-write-receiver"],
    );
    let requests = load_prometheus(&data, &prometheus);
    let engine = Engine::default();
    let loaded_at = started.elapsed();

    // The raw samples first, one metric name at a time: both stores must
    // hold the same data (range selectors leave stale markers out).
    let names: std::collections::BTreeSet<&str> = data.iter().map(|s| s.labels["__name__"].as_str()).collect();
    let mut loaded = 0;
    for name in names {
        let raw = format!("{name}[{}s]", SPAN + 10);
        let want = prometheus.instant(&raw, ms(SPAN + 5));
        let got = ours(|| engine.instant_query(&db, &raw, ms(SPAN + 5)));
        if let Some(d) = compare(&want, &got, false) {
            panic!("{name}: the two stores do not hold the same samples: {d}");
        }
        if let Outcome::Ok(result::Res::Matrix(m)) = &want {
            loaded += m.iter().map(|(_, p)| p.len()).sum::<usize>();
        }
    }
    let total: usize = data.iter().map(|s| s.samples.iter().filter(|(_, v)| !v.is_stale()).count()).sum();
    let histogram_samples: usize =
        data.iter().map(|s| s.samples.iter().filter(|(_, v)| matches!(v, Val::Hist(_))).count()).sum();
    assert_eq!(loaded, total, "Prometheus does not hold every generated sample");

    let mut mismatches = Vec::new();
    let mut known = Vec::new();
    let mut problems = Vec::new();
    let mut evaluations = 0;
    // Evaluations where Prometheus answered with histograms.
    let mut histogram_answers = 0;
    let known_reasons: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    for q in &queries {
        assert!(started.elapsed() < TIME_LIMIT, "the differential test ran longer than {TIME_LIMIT:?}");
        let query = q.text.as_str();
        let mut runs: Vec<(String, Outcome, Outcome)> = Vec::new();
        for &t in INSTANT_TIMES {
            let want = prometheus.instant(query, ms(t));
            let got = ours(|| engine.instant_query(&db, query, ms(t)));
            runs.push((format!("instant at T0+{t}s"), want, got));
        }
        for &(start, end, step) in RANGES {
            let want = prometheus.range(query, ms(start), ms(end), step * 1000);
            let got = ours(|| engine.range_query(&db, query, ms(start), ms(end), step * 1000));
            runs.push((format!("range T0+{start}s..T0+{end}s step {step}s"), want, got));
        }
        evaluations += runs.len();
        let (mut any_data, mut any_success, mut any_error) = (false, false, false);
        for (at, want, got) in &runs {
            match want {
                Outcome::Ok(r) => {
                    any_success = true;
                    any_data |= r.has_data();
                    histogram_answers += usize::from(r.has_histograms());
                }
                Outcome::Err { .. } => any_error = true,
            }
            if let Some(detail) = compare(want, got, false) {
                let m = Mismatch { query: query.into(), at: at.clone(), detail };
                if known_reasons.contains_key(query) {
                    known.push(m);
                } else {
                    mismatches.push(m);
                }
            }
        }
        if known_reasons.contains_key(query) {
            if !known.iter().any(|m| m.query == query) {
                problems.push(format!(
                    "{query}: listed in KNOWN_DIFFERENCES ({}), yet we answer exactly like 2.42: the 3.x behaviour \
                     is missing",
                    known_reasons[query]
                ));
            }
        } else if q.expect_error {
            if !any_error {
                problems.push(format!("{query}: marked `error:` but Prometheus never fails on it"));
            }
        } else if !any_success {
            problems.push(format!("{query}: Prometheus rejects it everywhere (typo in the query list?)"));
        } else if !any_data && !q.may_be_empty {
            problems.push(format!("{query}: Prometheus returns no data at any evaluation (mark it `empty:`?)"));
        }
    }

    let elapsed = started.elapsed();
    println!(
        "differential_histograms: {} series / {total} samples ({histogram_samples} histograms) loaded in {:.1}s \
         ({requests} remote-write requests); {} queries ({} known differences), {evaluations} evaluations ({histogram_answers} with \
         histogram answers) in {:.1}s; {} mismatches, {} evaluations differ as known",
        data.len(),
        loaded_at.as_secs_f64(),
        queries.len(),
        KNOWN_DIFFERENCES.len(),
        elapsed.as_secs_f64(),
        mismatches.len(),
        known.len()
    );
    for m in &known {
        println!("KNOWN ({}): {} [{}]: {}", known_reasons[m.query.as_str()], m.query, m.at, m.detail);
    }
    for p in &problems {
        println!("QUERY LIST: {p}");
    }
    let mut by_query: BTreeMap<&str, Vec<&Mismatch>> = BTreeMap::new();
    for m in &mismatches {
        by_query.entry(m.query.as_str()).or_default().push(m);
    }
    for (q, ms) in &by_query {
        println!("MISMATCH: {q}\n    {} of the evaluations differ; first [{}]: {}", ms.len(), ms[0].at, ms[0].detail);
    }
    drop(prometheus);
    assert!(
        mismatches.is_empty() && problems.is_empty(),
        "{} queries differ from Prometheus ({} evaluations), {} query-list problems; see the output above",
        by_query.len(),
        mismatches.len(),
        problems.len()
    );
}

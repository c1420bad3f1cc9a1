//! PromQL engine latency against Prometheus on the same data, in one run.
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin promql_compare -- [--runs 5] [--small] [--no-prometheus]
//! ```
//!
//! 1. Generates the benchmark dataset (`tidemark_bench::promql_data`: 10k
//!    counters + 1k histograms × 12 buckets, 2 h at 15 s, 10.56 M samples),
//!    appends it to a [`Db`] one scrape at a time and flushes it to a block.
//! 2. Runs every benchmark query once to warm up, then `--runs` times, with
//!    our engine at parallelism 1 and at the default (one worker per core),
//!    and reports the median wall time of `Engine::instant_query` /
//!    `range_query` (parse + select + evaluate + sort), samples read per
//!    second, the engine's peak samples, and the peak heap growth during the
//!    query (a counting global allocator: bytes requested, not RSS).
//! 3. If `promtool` and `prometheus` are on `PATH`, writes the same data as
//!    OpenMetrics, builds a block with `promtool tsdb create-blocks-from
//!    openmetrics`, starts `prometheus` on 127.0.0.1 over it, runs the same
//!    queries through `/api/v1/query(_range)?…&stats=all` (warm-up, then
//!    `--runs` times) and takes Prometheus' own `evalTotalTime` (HTTP and
//!    JSON encoding excluded) and `peakSamples`. Results are compared
//!    series by series (values within 1e-9 relative). Prometheus is stopped
//!    at the end, also on errors.
//!
//! `--small` uses a tenth of the series, for a quick check.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tidemark_bench::counting_alloc::{self, CountingAlloc};
use tidemark_bench::promql_data::{
    build_db, generate, sample_count, write_openmetrics, BenchQuery, Shape, END, QUERIES, T0, WINDOW_MS,
};
use tidemark_promql::{Engine, EngineOptions, QueryResult, Value};
use tidemark_storage::Db;
use tidemark_testkit::{find_binary, promtool_with_timeout, secs, url_encode, Http, Prometheus, PrometheusConfig};

type BoxError = Box<dyn std::error::Error>;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

struct Args {
    runs: usize,
    small: bool,
    prometheus: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args { runs: 5, small: false, prometheus: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => a.runs = it.next().ok_or("--runs needs a number")?.parse()?,
            "--small" => a.small = true,
            "--no-prometheus" => a.prometheus = false,
            other => {
                return Err(format!(
                    "unknown argument {other} (usage: promql_compare [--runs N] [--small] [--no-prometheus])"
                )
                .into())
            }
        }
    }
    if a.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(a)
}

/// One query's figures in one system.
#[derive(Debug, Clone, Default)]
struct Measured {
    /// Median latency in seconds.
    median_s: f64,
    /// Samples read from storage (ours) or `totalQueryableSamples` (Prometheus).
    samples: u64,
    /// Peak samples held, as the engine itself counts them.
    peak_samples: u64,
    /// Largest heap growth during a run, bytes (ours only).
    heap_peak: Option<u64>,
    /// The result in a comparable form.
    result: Series,
}

/// Result series keyed by their sorted `name="value"` labels, each a list of
/// (timestamp ms, value).
type Series = BTreeMap<String, Vec<(i64, f64)>>;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn run_ours(engine: &Engine, db: &Db, q: &BenchQuery) -> Result<QueryResult, BoxError> {
    Ok(match q.step_ms {
        None => engine.instant_query(db, q.promql, END)?,
        Some(step) => engine.range_query(db, q.promql, q.start(), END, step)?,
    })
}

fn our_series(v: &Value) -> Series {
    let key = |l: &tidemark_storage::Labels| {
        let mut parts: Vec<String> = l.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
        parts.sort();
        parts.join(",")
    };
    let mut out = Series::new();
    match v {
        Value::Vector(v) => {
            for s in v {
                out.insert(key(&s.labels), vec![(s.t, s.v)]);
            }
        }
        Value::Matrix(m) => {
            for s in m {
                out.insert(key(&s.labels), s.samples.iter().map(|p| (p.t, p.v)).collect());
            }
        }
        Value::Scalar { t, v } => {
            out.insert(String::new(), vec![(*t, *v)]);
        }
        Value::String { .. } => {}
    }
    out
}

fn measure_ours(engine: &Engine, db: &Db, q: &BenchQuery, runs: usize) -> Result<Measured, BoxError> {
    let warm = run_ours(engine, db, q)?;
    let mut times = Vec::with_capacity(runs);
    let mut heap_peak = 0u64;
    for _ in 0..runs {
        let base = counting_alloc::reset_peak();
        let t = Instant::now();
        let r = run_ours(engine, db, q)?;
        times.push(t.elapsed().as_secs_f64());
        heap_peak = heap_peak.max((counting_alloc::peak() - base).max(0) as u64);
        drop(r);
    }
    Ok(Measured {
        median_s: median(times),
        samples: warm.stats.samples_read,
        peak_samples: warm.stats.peak_samples as u64,
        heap_peak: Some(heap_peak),
        result: our_series(&warm.value),
    })
}

/// Writes the data as OpenMetrics, builds a block with promtool, and starts
/// Prometheus on a free local port over it (killed when dropped).
fn start_prometheus(
    dir: &Path,
    data: &[(tidemark_storage::Labels, Vec<tidemark_storage::Sample>)],
) -> Result<Prometheus, BoxError> {
    let om = dir.join("data.om");
    let t = Instant::now();
    write_openmetrics(data, BufWriter::with_capacity(1 << 20, std::fs::File::create(&om)?))?;
    println!("wrote {} ({:.0} MB) in {:.1?}", om.display(), std::fs::metadata(&om)?.len() as f64 / 1e6, t.elapsed());
    let tsdb = dir.join("prometheus-data");
    let t = Instant::now();
    let args = [
        "tsdb".as_ref(),
        "create-blocks-from".as_ref(),
        "openmetrics".as_ref(),
        "--quiet".as_ref(),
        om.as_os_str(),
        tsdb.as_os_str(),
    ];
    promtool_with_timeout(args, Duration::from_secs(1800))?.into_stdout()?;
    println!("promtool tsdb create-blocks-from openmetrics: {:.1?}", t.elapsed());
    std::fs::remove_file(&om)?;

    let mut config = PrometheusConfig::new(&tsdb);
    config.config_yaml = "global:\n  scrape_interval: 15s\nscrape_configs: []\n".into();
    config.args = vec![
        // Retention is measured from the newest block, but make sure the
        // (old) benchmark block is never a candidate.
        "--storage.tsdb.retention.time=100y".into(),
        "--log.level=warn".into(),
    ];
    config.ready_timeout = Duration::from_secs(120);
    Ok(Prometheus::start(config)?)
}

fn prom_query(http: &Http, prom: &Prometheus, q: &BenchQuery) -> Result<Json, BoxError> {
    let path = match q.step_ms {
        None => format!("/api/v1/query?query={}&time={}&stats=all", url_encode(q.promql), secs(END)),
        Some(step) => format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}&stats=all",
            url_encode(q.promql),
            secs(q.start()),
            secs(END),
            secs(step)
        ),
    };
    let resp = http.get(&format!("{}{path}", prom.url()))?;
    let status = resp.status;
    let json: Json = serde_json::from_slice(&resp.body)?;
    if status != 200 || json["status"] != "success" {
        return Err(format!("Prometheus answered {status} to {}: {}", q.name, json["error"]).into());
    }
    Ok(json)
}

fn prom_num(v: &Json) -> Result<f64, BoxError> {
    match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| "number out of range".into()),
        // Values come as strings ("NaN", "+Inf" included).
        Json::String(s) => Ok(match s.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse()?,
        }),
        other => Err(format!("expected a number, got {other}").into()),
    }
}

fn prom_point(p: &Json) -> Result<(i64, f64), BoxError> {
    let t = prom_num(&p[0])?;
    Ok(((t * 1000.0).round() as i64, prom_num(&p[1])?))
}

fn prom_series(json: &Json) -> Result<Series, BoxError> {
    let mut out = Series::new();
    let result = json["data"]["result"].as_array().ok_or("no result array")?;
    for s in result {
        let metric = s["metric"].as_object().ok_or("no metric")?;
        let mut parts: Vec<String> =
            metric.iter().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default())).collect();
        parts.sort();
        let points = if let Some(values) = s["values"].as_array() {
            values.iter().map(prom_point).collect::<Result<Vec<_>, _>>()?
        } else {
            vec![prom_point(&s["value"])?]
        };
        out.insert(parts.join(","), points);
    }
    Ok(out)
}

fn measure_prometheus(http: &Http, prom: &Prometheus, q: &BenchQuery, runs: usize) -> Result<Measured, BoxError> {
    let warm = prom_query(http, prom, q)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let j = prom_query(http, prom, q)?;
        times.push(j["data"]["stats"]["timings"]["evalTotalTime"].as_f64().ok_or("no evalTotalTime in stats")?);
    }
    let samples = &warm["data"]["stats"]["samples"];
    Ok(Measured {
        median_s: median(times),
        samples: samples["totalQueryableSamples"].as_u64().unwrap_or(0),
        peak_samples: samples["peakSamples"].as_u64().unwrap_or(0),
        heap_peak: None,
        result: prom_series(&warm)?,
    })
}

/// Compares two results: "identical", "same" (within 1e-9 relative) or
/// what differs.
///
/// Points whose `[5m]` window reaches back before the first sample are
/// judged apart: there `rate` extrapolates towards the series' start, and
/// Prometheus 3.x (our semantics) clamps that extrapolation to the counter's
/// zero point *after* limiting it to half a scrape interval, whereas 2.42
/// clamps first, so the two legitimately differ on some of those points.
fn compare(ours: &Series, theirs: &Series) -> String {
    if ours.len() != theirs.len() {
        return format!("{} vs {} series", ours.len(), theirs.len());
    }
    let mut max_rel = 0.0f64;
    let mut worst = String::new();
    let (mut edge, mut edge_differ) = (0usize, 0usize);
    for (k, a) in ours {
        let Some(b) = theirs.get(k) else { return format!("series {k} missing in Prometheus") };
        if a.len() != b.len() {
            return format!("{k}: {} vs {} points", a.len(), b.len());
        }
        for (&(ta, va), &(tb, vb)) in a.iter().zip(b) {
            if ta != tb {
                return format!("{k}: timestamp {ta} vs {tb}");
            }
            let rel = if va.is_nan() && vb.is_nan() || va == vb {
                0.0
            } else {
                let r = (va - vb).abs() / va.abs().max(vb.abs());
                if r.is_nan() {
                    f64::INFINITY
                } else {
                    r
                }
            };
            if ta < T0 + WINDOW_MS {
                edge += 1;
                edge_differ += usize::from(rel > 1e-9);
            } else if rel > max_rel {
                max_rel = rel;
                worst = format!("{{{k}}} at {ta}: {va} vs {vb}");
            }
        }
    }
    let mut verdict = if max_rel == 0.0 {
        "identical".to_string()
    } else if max_rel <= 1e-9 {
        format!("same (max rel. diff {max_rel:.0e})")
    } else {
        format!("values differ (max rel. diff {max_rel:.1e}: {worst})")
    };
    if edge_differ > 0 {
        verdict.push_str(&format!(
            "; {edge_differ} of {edge} points in the first 5 min differ (3.x vs 2.42 extrapolation)"
        ));
    }
    verdict
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let shape = if args.small { Shape { request_instances: 200, histogram_instances: 100 } } else { Shape::default() };
    let t = Instant::now();
    let data = generate(shape);
    let total = sample_count(&data);
    println!("dataset: {} series, {total} samples, generated in {:.1?}", data.len(), t.elapsed());

    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let db = build_db(&dir.path().join("tidemark"), &data)?;
    println!("Tidemark: appended and flushed to {} block(s) in {:.1?}", db.blocks().len(), t.elapsed());

    let cores = EngineOptions::default().parallelism;
    let engines = [
        ("p1", Engine::new(EngineOptions { parallelism: 1, ..EngineOptions::default() })),
        ("default", Engine::new(EngineOptions::default())),
    ];
    let mut ours: Vec<[Measured; 2]> = Vec::new();
    for q in &QUERIES {
        let mut pair: [Measured; 2] = Default::default();
        for (i, (name, engine)) in engines.iter().enumerate() {
            pair[i] = measure_ours(engine, &db, q, args.runs)?;
            println!(
                "ours {name:>7} {:<34} {:>9.2} ms  {:>10} samples  peak {:>9} samples  heap +{:.1} MiB",
                q.name,
                pair[i].median_s * 1e3,
                pair[i].samples,
                pair[i].peak_samples,
                pair[i].heap_peak.unwrap_or(0) as f64 / (1 << 20) as f64
            );
        }
        // Parallel evaluation must not change the answer.
        let same = compare(&pair[0].result, &pair[1].result);
        if same != "identical" {
            println!("warning: {}: parallelism 1 and {cores} disagree: {same}", q.name);
        }
        ours.push(pair);
    }

    let mut theirs: Vec<Option<Measured>> = vec![None; QUERIES.len()];
    if !args.prometheus {
        println!("--no-prometheus: skipping Prometheus");
    } else if let Err(e) = find_binary("promtool").and_then(|_| find_binary("prometheus")) {
        println!("skipping Prometheus: {e}");
    } else {
        let prom = start_prometheus(dir.path(), &data)?;
        // Long queries: the 2 h range queries over 10 M samples take seconds.
        let http = Http::new(Duration::from_secs(300));
        drop(data);
        for (i, q) in QUERIES.iter().enumerate() {
            let m = measure_prometheus(&http, &prom, q, args.runs)?;
            println!(
                "Prometheus   {:<34} {:>9.2} ms  {:>10} queryable samples  peak {:>9} samples",
                q.name,
                m.median_s * 1e3,
                m.samples,
                m.peak_samples
            );
            theirs[i] = Some(m);
        }
        drop(prom);
    }

    println!();
    println!(
        "| query | kind | Tidemark p=1 | Tidemark p={cores} | Prometheus | Prometheus ÷ Tidemark p=1 / p={cores} | samples read | M samples/s p=1 / p={cores} | peak samples Tidemark / Prometheus | heap peak Tidemark | result vs Prometheus |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (i, q) in QUERIES.iter().enumerate() {
        let [p1, pn] = &ours[i];
        let kind = match q.step_ms {
            None => "instant".to_string(),
            Some(s) => format!("range 2 h / {} s", s / 1000),
        };
        let ms = |s: f64| format!("{:.1} ms", s * 1e3);
        let (prom_ms, ratio, prom_peak, agree) = match &theirs[i] {
            Some(m) => (
                ms(m.median_s),
                format!("{:.2} / {:.2}", m.median_s / p1.median_s, m.median_s / pn.median_s),
                m.peak_samples.to_string(),
                compare(&p1.result, &m.result),
            ),
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        println!(
            "| `{}` | {kind} | {} | {} | {prom_ms} | {ratio} | {} | {:.0} / {:.0} | {} / {prom_peak} | {:.1} MiB | {agree} |",
            q.promql,
            ms(p1.median_s),
            ms(pn.median_s),
            p1.samples,
            p1.samples as f64 / p1.median_s / 1e6,
            pn.samples as f64 / pn.median_s / 1e6,
            p1.peak_samples,
            p1.heap_peak.unwrap_or(0).max(pn.heap_peak.unwrap_or(0)) as f64 / (1 << 20) as f64,
        );
    }
    Ok(())
}

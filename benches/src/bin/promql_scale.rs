//! The heavy PromQL queries of issue 13 at production scale, in process.
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin promql_scale -- [--series 368695] [--samples 257]
//!     [--runs 5] [--parallelism 1] [--only NAME] [--loop-secs S] [--digests FILE]
//!     [--end-offset-min M] [--no-pushdown]
//! ```
//!
//! Builds an in-memory [`Db`] with the comparison tool's synthetic fleet
//! (`compare::load::Load::synthetic`, seed 42: by default 368,695 series with
//! 257 samples each at 15 s, ~94.8 M samples, all in the head), then runs each
//! heavy query once to warm up and `--runs` times, and reports per query the
//! median wall time, the median process CPU time (user + system, all
//! threads, from `/proc/self/stat`), the peak heap the query adds (counting
//! allocator: bytes requested, not RSS), samples read and result size.
//!
//! `--only NAME,…` measures only those queries (by short name); with
//! `--loop-secs S` it runs each over and over for S seconds instead, for
//! `perf record`. `--digests FILE` writes one line
//! per query with a hash of the exact result (labels, timestamps and the bits
//! of every value): two builds answer identically iff their files are equal.
//!
//! By default the last scrape falls exactly on a 2 h boundary, where every
//! series' last sample opens a new chunk: an instant query there reads each
//! series' closed (sealed) chunk. `--end-offset-min M` moves the whole load
//! (and the query time) M minutes later, so that instant queries read the
//! open chunks in their middle, as a server's queries at the end of its
//! load do (`--end-offset-min 37`, say). `--no-pushdown` turns off the
//! engine's evaluation of instant range functions inside the select
//! (`EngineOptions::push_down_windows`), for comparing the two paths in one
//! binary.

use std::hash::{Hash, Hasher};
use std::time::Instant;

use tidemark_bench::compare::load::{Load, SyntheticOptions};
use tidemark_bench::counting_alloc::{self, CountingAlloc};
use tidemark_promql::{Engine, EngineOptions, QueryResult, Value};
use tidemark_storage::{Db, Labels};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

type BoxError = Box<dyn std::error::Error>;

/// Last scrape round of the fleet: 2026-12-05T12:00:00Z.
const END_MS: i64 = 1_796_472_000_000;
const HOUR_MS: i64 = 3_600_000;

struct Args {
    series: usize,
    samples: usize,
    runs: usize,
    parallelism: usize,
    only: Option<String>,
    loop_secs: f64,
    digests: Option<String>,
    end_offset_min: i64,
    pushdown: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        series: 368_695,
        samples: 257,
        runs: 5,
        parallelism: 1,
        only: None,
        loop_secs: 0.0,
        digests: None,
        end_offset_min: 0,
        pushdown: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--series" => a.series = val()?.parse()?,
            "--samples" => a.samples = val()?.parse()?,
            "--runs" => a.runs = val()?.parse()?,
            "--parallelism" => a.parallelism = val()?.parse()?,
            "--only" => a.only = Some(val()?),
            "--loop-secs" => a.loop_secs = val()?.parse()?,
            "--digests" => a.digests = Some(val()?),
            "--end-offset-min" => a.end_offset_min = val()?.parse()?,
            "--no-pushdown" => a.pushdown = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// One heavy query: instant at `at`, or a 1 h range ending at `at`.
struct Q {
    name: &'static str,
    promql: &'static str,
    step_ms: Option<i64>,
}

const QUERIES: &[Q] = &[
    Q { name: "rate_instant", promql: "rate(http_requests_total[5m])", step_ms: None },
    Q { name: "sum_by_60s", promql: "sum by (job, status) (rate(http_requests_total[5m]))", step_ms: Some(60_000) },
    Q { name: "sum_by_15s", promql: "sum by (job, status) (rate(http_requests_total[5m]))", step_ms: Some(15_000) },
    Q {
        name: "hq_le_60s",
        promql: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        step_ms: Some(60_000),
    },
    Q {
        name: "hq_le_15s",
        promql: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        step_ms: Some(15_000),
    },
    Q {
        name: "hq_route_instant",
        promql: "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket[5m])))",
        step_ms: None,
    },
    Q {
        name: "topk_cpu_instant",
        promql: r#"topk(10, sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m])))"#,
        step_ms: None,
    },
    Q { name: "topk_rate_60s", promql: "topk(10, rate(http_requests_total[5m]))", step_ms: Some(60_000) },
    Q { name: "topk_rate_15s", promql: "topk(10, rate(http_requests_total[5m]))", step_ms: Some(15_000) },
    Q {
        name: "cpu_busy_60s",
        promql: r#"100 - (avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)"#,
        step_ms: Some(60_000),
    },
    Q {
        name: "cpu_busy_15s",
        promql: r#"100 - (avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)"#,
        step_ms: Some(15_000),
    },
    Q { name: "count_all", promql: r#"count({__name__=~".+"})"#, step_ms: None },
    Q { name: "max_max_1h", promql: "max(max_over_time(process_resident_memory_bytes[1h]))", step_ms: None },
];

/// User + system CPU seconds of the whole process so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let ut: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    (ut + st) / tick
}

fn build(args: &Args) -> Result<(Db, i64), BoxError> {
    let load = Load::synthetic(SyntheticOptions {
        series: args.series,
        targets: None,
        samples_per_series: args.samples,
        end_ms: END_MS + args.end_offset_min * 60_000,
        seed: 42,
    });
    let labels: Vec<Labels> = load
        .series
        .iter()
        .map(|l| Labels::new(l.iter().map(|(n, v)| (n.as_str(), v.as_str()))))
        .collect::<Result<_, _>>()?;
    let db = Db::builder_in_memory().maintenance_interval(None).open()?;
    let mut refs: Vec<Option<u64>> = vec![None; labels.len()];
    let mut app = db.appender();
    let mut pending = 0usize;
    let mut err: Option<BoxError> = None;
    load.for_each_sample(|i, t, v| {
        if err.is_some() {
            return;
        }
        let r = match refs[i] {
            Some(r) => app.append_ref(r, t, v).map(|_| r),
            None => app.append(&labels[i], t, v),
        };
        match r {
            Ok(r) => refs[i] = Some(r),
            Err(e) => err = Some(e.into()),
        }
        pending += 1;
        if pending >= 200_000 {
            pending = 0;
            let full = std::mem::replace(&mut app, db.appender());
            if let Err(e) = full.commit() {
                err = Some(e.into());
            }
        }
    });
    app.commit()?;
    if let Some(e) = err {
        return Err(e);
    }
    let at = tidemark_bench::compare::queries::query_time(&load);
    Ok((db, at))
}

fn run(engine: &Engine, db: &Db, q: &Q, at: i64) -> Result<QueryResult, BoxError> {
    Ok(match q.step_ms {
        None => engine.instant_query(db, q.promql, at)?,
        Some(step) => engine.range_query(db, q.promql, at - HOUR_MS, at, step)?,
    })
}

/// Hash of the exact answer: labels, timestamps, value bits.
fn digest(v: &Value) -> (u64, usize) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let n = match v {
        Value::Vector(s) => {
            for x in s {
                x.labels.to_string().hash(&mut h);
                x.t.hash(&mut h);
                x.v.to_bits().hash(&mut h);
            }
            s.len()
        }
        Value::Matrix(s) => {
            for x in s {
                x.labels.to_string().hash(&mut h);
                for p in &x.samples {
                    p.t.hash(&mut h);
                    p.v.to_bits().hash(&mut h);
                }
            }
            s.len()
        }
        Value::Scalar { t, v } => {
            t.hash(&mut h);
            v.to_bits().hash(&mut h);
            1
        }
        Value::String { s, .. } => {
            s.hash(&mut h);
            1
        }
    };
    (h.finish(), n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let t0 = Instant::now();
    let (db, at) = build(&args)?;
    eprintln!(
        "built {} series × {} samples in {:.1} s; heap {:.0} MiB",
        args.series,
        args.samples,
        t0.elapsed().as_secs_f64(),
        counting_alloc::current() as f64 / 1048576.0
    );
    let engine = Engine::new(EngineOptions {
        parallelism: args.parallelism,
        max_samples: usize::MAX / 2,
        timeout: None,
        push_down_windows: args.pushdown,
        ..EngineOptions::default()
    });
    if let (Some(only), true) = (&args.only, args.loop_secs > 0.0) {
        // Comma-separated names, each looped for `--loop-secs`; a line
        // `START <name>` on stderr marks the start of each (for `perf record -p`).
        for name in only.split(',') {
            let q = QUERIES.iter().find(|q| q.name == name).ok_or_else(|| format!("no query {name}"))?;
            eprintln!("START {name}");
            let start = Instant::now();
            let c0 = cpu_secs();
            let mut n = 0;
            while n == 0 || start.elapsed().as_secs_f64() < args.loop_secs {
                run(&engine, &db, q, at)?;
                n += 1;
            }
            // CPU per run over the whole loop: finer than one run's CPU
            // time, which the kernel counts in 10 ms ticks.
            let cpu_ms = (cpu_secs() - c0) * 1e3 / n as f64;
            eprintln!("END {}: {n} runs in {:.1} s, {cpu_ms:.2} CPU ms per run", q.name, start.elapsed().as_secs_f64());
        }
        return Ok(());
    }
    let mut digests = String::new();
    println!("| query | kind | wall ms (median) | CPU ms (median) | peak extra heap | samples read | result series |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let wanted = |q: &Q| args.only.as_ref().is_none_or(|o| o.split(',').any(|n| n == q.name));
    for q in QUERIES.iter().filter(|q| wanted(q)) {
        let r = run(&engine, &db, q, at)?;
        let (d, nseries) = digest(&r.value);
        digests.push_str(&format!("{} {d:016x} {nseries}\n", q.name));
        let (mut walls, mut cpus, mut heaps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let base = counting_alloc::reset_peak();
            let c0 = cpu_secs();
            let w0 = Instant::now();
            let r = run(&engine, &db, q, at)?;
            walls.push(w0.elapsed().as_secs_f64() * 1e3);
            cpus.push((cpu_secs() - c0) * 1e3);
            heaps.push((counting_alloc::peak() - base) as f64);
            drop(r);
        }
        let kind = match q.step_ms {
            None => "instant".to_string(),
            Some(s) => format!("1 h, {} s step", s / 1000),
        };
        println!(
            "| `{}` ({}) | {kind} | {:.1} | {:.0} | {:.1} MiB | {} | {nseries} |",
            q.promql,
            q.name,
            median(walls),
            median(cpus),
            median(heaps) / 1048576.0,
            r.stats.samples_read
        );
    }
    if let Some(path) = &args.digests {
        std::fs::write(path, digests)?;
    }
    Ok(())
}

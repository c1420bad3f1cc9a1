//! PromQL functions and aggregations over a persisted block, in samples read
//! from storage per second: counter and gauge range functions, the
//! `*_over_time` family, label and math functions, every aggregation,
//! vector matching with `on`/`ignoring`/`group_left`, comparison filters
//! and a subquery (the list is `FUNCTION_QUERIES` in
//! `tidemark_bench::promql_data`).
//!
//! The data is that of `promql.rs` (10k `http_requests_total` counters and
//! 1k latency histograms × 12 buckets) plus 2k
//! `process_resident_memory_bytes` gauges, 2 h at a 15 s scrape
//! (11.52 M samples), appended through a `Db` one scrape at a time and
//! flushed to one block. Range queries cover the 2 h at a 60 s step.
//!
//! One engine at parallelism 1: Prometheus evaluates a query on one
//! goroutine, and on the shared 2-core benchmark machine a single worker
//! gives the steadier figure (`promql.rs` measures the gain of a second).
//! Each query runs once before measuring, to check it returns something and
//! to learn how many samples it reads; that count is the throughput.
//!
//! ```text
//! cargo bench -p tidemark-bench --bench promql_functions -- --warm-up-time 1 --measurement-time 3
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidemark_bench::promql_data::{
    build_db, generate, generate_gauges, sample_count, BenchQuery, Shape, END, FUNCTION_QUERIES,
};
use tidemark_promql::{Engine, EngineOptions, QueryResult, SeriesSource, Value};

fn run(engine: &Engine, db: &dyn SeriesSource, q: &BenchQuery) -> QueryResult {
    let result = match q.step_ms {
        None => engine.instant_query(db, q.promql, END),
        Some(step) => engine.range_query(db, q.promql, q.start(), END, step),
    };
    result.unwrap_or_else(|e| panic!("{}: {e}", q.name))
}

/// Series in the result and points over all of them.
fn result_size(v: &Value) -> (usize, usize) {
    match v {
        Value::Vector(v) => (v.len(), v.len()),
        Value::Matrix(m) => (m.len(), m.iter().map(|s| s.samples.len()).sum()),
        Value::Scalar { .. } | Value::String { .. } => (1, 1),
    }
}

fn functions(c: &mut Criterion) {
    let shape = Shape::default();
    let mut data = generate(shape);
    data.extend(generate_gauges(shape));
    let total = sample_count(&data);
    let num_series = data.len();
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = build_db(dir.path(), &data).expect("building the database");
    drop(data);
    eprintln!("promql_functions data: {num_series} series, {total} samples in {} block(s)", db.blocks().len());

    let engine = Engine::new(EngineOptions { parallelism: 1, ..EngineOptions::default() });
    let mut g = c.benchmark_group("promql_fn");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for q in &FUNCTION_QUERIES {
        let probe = run(&engine, &db, q);
        let (series, points) = result_size(&probe.value);
        eprintln!(
            "{}: {} samples read, peak {} samples, {series} result series, {points} points",
            q.name, probe.stats.samples_read, probe.stats.peak_samples
        );
        // An empty answer would mean the query measures nothing (a typo in
        // a metric name, or data outside the evaluated range).
        assert!(points > 0, "{}: empty result", q.name);
        assert!(probe.stats.samples_read > 0, "{}: no samples read", q.name);
        g.throughput(Throughput::Elements(probe.stats.samples_read));
        g.bench_function(q.name, |b| b.iter(|| run(&engine, &db, q)));
    }
    g.finish();
}

criterion_group!(benches, functions);
criterion_main!(benches);

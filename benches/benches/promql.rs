//! PromQL engine throughput over a persisted block: `rate`, aggregation,
//! `histogram_quantile` and `topk`, in samples read from storage per second.
//!
//! The data (see `tidemark_bench::promql_data`) is 10k `http_requests_total`
//! counters plus 1k latency histograms × 12 buckets, 2 h at a 15 s scrape
//! (10.56 M samples), appended through a `Db` one scrape at a time and
//! flushed to a block, so queries take the real read path (block index,
//! chunk decoding, engine). Each query runs once per engine (parallelism 1
//! and the default, one worker per core) before measuring, to report how
//! many samples it reads; that count is the criterion throughput.
//!
//! ```text
//! cargo bench -p tidemark-bench --bench promql
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidemark_bench::promql_data::{build_db, generate, sample_count, BenchQuery, Shape, END, QUERIES};
use tidemark_promql::{Engine, EngineOptions, QueryResult, SeriesSource, Value};

fn run(engine: &Engine, db: &dyn SeriesSource, q: &BenchQuery) -> QueryResult {
    let result = match q.step_ms {
        None => engine.instant_query(db, q.promql, END),
        Some(step) => engine.range_query(db, q.promql, q.start(), END, step),
    };
    result.unwrap_or_else(|e| panic!("{}: {e}", q.name))
}

fn result_series(v: &Value) -> usize {
    match v {
        Value::Vector(v) => v.len(),
        Value::Matrix(m) => m.len(),
        Value::Scalar { .. } | Value::String { .. } => 1,
    }
}

fn promql(c: &mut Criterion) {
    let data = generate(Shape::default());
    let total = sample_count(&data);
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = build_db(dir.path(), &data).expect("building the database");
    drop(data);
    eprintln!("promql bench data: {total} samples in {} block(s)", db.blocks().len());

    let parallelism = EngineOptions::default().parallelism;
    let mut engines = vec![("p1", Engine::new(EngineOptions { parallelism: 1, ..EngineOptions::default() }))];
    if parallelism > 1 {
        engines.push(("default", Engine::new(EngineOptions::default())));
    }
    for (engine_name, engine) in &engines {
        let mut g = c.benchmark_group(format!("promql_{engine_name}"));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
        for q in &QUERIES {
            let probe = run(engine, &db, q);
            eprintln!(
                "{engine_name}/{}: {} samples read, peak {} samples, {} result series",
                q.name,
                probe.stats.samples_read,
                probe.stats.peak_samples,
                result_series(&probe.value)
            );
            g.throughput(Throughput::Elements(probe.stats.samples_read));
            g.bench_function(q.name, |b| b.iter(|| run(engine, &db, q)));
        }
        g.finish();
    }
}

criterion_group!(benches, promql);
criterion_main!(benches);

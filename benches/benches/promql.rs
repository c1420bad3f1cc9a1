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
//! The `promql_read` group reads every sample of head series (open and
//! closed XOR chunks, 257 samples each, the production shape) once sample
//! by sample through `SampleIterator::next` and once in batches through
//! `SampleIterator::drain_into`, the way the engine loads a series. The
//! `promql_instant` group reads what an instant selector needs one minute
//! past a chunk boundary: the whole lookback window, or the newest sample
//! only (`SampleIterator::drain_last_into`), and an instant `count` and
//! `sum`. The `promql_select_order` group selects every head series in
//! label order (`Querier::select`) and in the head's own order
//! (`Querier::select_unordered`), and without labels
//! (`Querier::select_unlabelled`, which `count` uses).
//!
//! ```text
//! cargo bench -p tidemark-bench --bench promql
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidemark_bench::promql_data::{build_db, generate, sample_count, BenchQuery, Shape, END, QUERIES};
use tidemark_promql::{Engine, EngineOptions, QueryResult, SeriesSource, Value};
use tidemark_storage::{Db, Labels, Matcher, Sample, SampleIterator};

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

/// Head series read whole: per-sample `next` against batch `drain_into`.
fn promql_read(c: &mut Criterion) {
    const SERIES: usize = 5_000;
    const SAMPLES: i64 = 257;
    let db = Db::in_memory().expect("in-memory database");
    let labels: Vec<Labels> = (0..SERIES)
        .map(|i| Labels::new([("__name__", "c"), ("instance", &format!("i{i}"))]).expect("labels"))
        .collect();
    for k in 0..SAMPLES {
        let mut app = db.appender();
        for (i, l) in labels.iter().enumerate() {
            let v = (k * (i as i64 % 7 + 1)) as f64 + 0.25 * (k % 3) as f64;
            app.append(l, k * 15_000 + (i as i64 % 13), v).expect("append");
        }
        app.commit().expect("commit");
    }
    let read = |batch: bool| -> usize {
        for_each_series(&db, 0, SAMPLES * 15_000, |it, buf| {
            if batch {
                it.drain_into(buf);
            } else {
                while it.next() {
                    buf.push(it.at());
                }
            }
            buf.len()
        })
    };
    assert_eq!(read(true), read(false));
    let mut g = c.benchmark_group("promql_read");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(SERIES as u64 * SAMPLES as u64));
    g.bench_function("next", |b| b.iter(|| read(false)));
    g.bench_function("drain_into", |b| b.iter(|| read(true)));
    g.finish();

    // An instant selector's read: the 5 minutes before a time one minute
    // past a chunk boundary (chunks of 120 samples end at 30 and 60 min),
    // as a whole window (`drain_into`) and as the newest sample only
    // (`drain_last_into`, which decodes the last chunk alone); then the
    // engine's instant `count` over the same series.
    let at = 3_600_000 + 60_000;
    let newest = |last_only: bool| -> usize {
        for_each_series(&db, at - 300_000 + 1, at, |it, buf| {
            if last_only {
                it.drain_last_into(buf);
            } else {
                it.drain_into(buf);
            }
            usize::from(buf.last().is_some())
        })
    };
    assert_eq!(newest(true), newest(false));
    let engine = Engine::new(EngineOptions { parallelism: 1, ..EngineOptions::default() });
    let mut g = c.benchmark_group("promql_instant");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("window_drain_into", |b| b.iter(|| newest(false)));
    g.bench_function("newest_drain_last_into", |b| b.iter(|| newest(true)));
    g.bench_function("count_instant", |b| b.iter(|| engine.instant_query(&db, "count(c)", at).expect("count").value));
    // `sum` over the same series: the same read, but selected in label order.
    g.bench_function("sum_instant", |b| b.iter(|| engine.instant_query(&db, "sum(c)", at).expect("sum").value));
    g.finish();

    // The head's selection of every series (created in an order that is not
    // label order: `i10` sorts before `i2`), sorted into label order as most
    // readers need it, and in ref order for readers that only count
    // (`Querier::select_unordered`, what `count` and `group` into one group
    // use).
    let all = [Matcher::equal("__name__", "c")];
    let q = db.querier(at - 300_000 + 1, at);
    assert_eq!(q.select(&all).expect("select").len(), q.select_unordered(&all).expect("select").len());
    let mut g = c.benchmark_group("promql_select_order");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("select_label_order", |b| b.iter(|| q.select(&all).expect("select").len()));
    g.bench_function("select_unordered", |b| b.iter(|| q.select_unordered(&all).expect("select").len()));
    // Without labels (`Querier::select_unlabelled`, what `count` and
    // `group` into one group use since round 6).
    assert_eq!(q.select(&all).expect("select").len(), q.select_unlabelled(&all).expect("select").len());
    g.bench_function("select_unlabelled", |b| b.iter(|| q.select_unlabelled(&all).expect("select").len()));
    g.finish();
}

/// Reads every series `c` of `db` in `[mint, maxt]` through `read` (given
/// the series' iterator and an emptied buffer) and sums what it returns.
fn for_each_series(
    db: &Db,
    mint: i64,
    maxt: i64,
    mut read: impl FnMut(&mut tidemark_storage::SeriesIterator, &mut Vec<Sample>) -> usize,
) -> usize {
    let q = db.querier(mint, maxt);
    let series = q.select(&[Matcher::equal("__name__", "c")]).expect("select");
    let mut buf: Vec<Sample> = Vec::new();
    let mut n = 0;
    for s in series {
        let (_, mut it) = s.into_parts();
        buf.clear();
        n += read(&mut it, &mut buf);
    }
    n
}

criterion_group!(benches, promql, promql_read);
criterion_main!(benches);

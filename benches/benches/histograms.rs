//! Native histograms on their hot paths: the chunk codec (append with
//! bucket growth, decode), appends through the head, and the query every
//! latency dashboard runs, `histogram_quantile(0.9, sum(rate(h[5m])))`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidemark_promql::Engine;
use tidemark_storage::chunkenc::{HistogramAppender, HistogramIterator};
use tidemark_storage::histogram::{Histogram, HistogramValue, Span};
use tidemark_storage::{Db, Labels, SampleIterator};

const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 15_000;

/// A request-latency counter histogram at schema 3 after `i` scrapes: 16
/// populated buckets growing by a few observations per scrape, a new
/// bucket every 40 scrapes.
fn latency(i: u64, series: u64) -> Histogram {
    let extra = (i / 40).min(4) as u32;
    let n = 16 + extra as usize;
    let mut abs: Vec<i64> = (0..n as i64).map(|b| (i as i64 + 1) * (1 + (b + series as i64) % 5)).collect();
    abs[n - 1] += 1;
    let mut prev = 0;
    let deltas = abs
        .iter()
        .map(|&a| {
            let d = a - prev;
            prev = a;
            d
        })
        .collect();
    Histogram {
        schema: 3,
        zero_threshold: 1e-128,
        count: abs.iter().sum::<i64>() as u64,
        sum: i as f64 * 0.37 + series as f64,
        positive_spans: vec![Span { offset: 10, length: n as u32 }],
        positive_buckets: deltas,
        ..Histogram::default()
    }
}

fn chunk(c: &mut Criterion) {
    let hs: Vec<Histogram> = (0..120).map(|i| latency(i, 0)).collect();
    let mut g = c.benchmark_group("histogram_chunk");
    g.throughput(Throughput::Elements(hs.len() as u64));
    g.bench_function("encode_120", |b| {
        b.iter(|| {
            let mut a = HistogramAppender::new();
            for (i, h) in hs.iter().enumerate() {
                a.append(T0 + i as i64 * STEP, h).unwrap();
            }
            a.into_bytes()
        })
    });
    let mut a = HistogramAppender::new();
    for (i, h) in hs.iter().enumerate() {
        a.append(T0 + i as i64 * STEP, h).unwrap();
    }
    let bytes = a.into_bytes();
    g.bench_function("decode_120", |b| {
        b.iter(|| {
            let mut it = HistogramIterator::new(&bytes[..]);
            let mut h = Histogram::default();
            let mut count = 0;
            while it.next() {
                it.at_histogram_into(&mut h);
                count += h.count;
            }
            count
        })
    });
    g.finish();
}

fn labels(s: u64) -> Labels {
    Labels::new([("__name__", "http_request_duration_seconds"), ("route", &format!("/r{s}"))]).unwrap()
}

fn head_and_query(c: &mut Criterion) {
    const SERIES: u64 = 100;
    let mut g = c.benchmark_group("histogram_head");
    g.throughput(Throughput::Elements(SERIES));
    // One scrape of 100 histogram series into the head, committed.
    g.bench_function("append_commit_100_series", |b| {
        let db = Db::in_memory().unwrap();
        let refs: Vec<u64> = {
            let mut app = db.appender();
            let r = (0..SERIES)
                .map(|s| app.append_histogram(&labels(s), T0, HistogramValue::Integer(latency(0, s))).unwrap())
                .collect();
            app.commit().unwrap();
            r
        };
        let mut i = 1u64;
        b.iter(|| {
            let mut app = db.appender();
            for (s, &r) in refs.iter().enumerate() {
                app.append_histogram_ref(r, T0 + i as i64 * STEP, HistogramValue::Integer(latency(i, s as u64)))
                    .unwrap();
            }
            app.commit().unwrap();
            i += 1;
        })
    });
    g.finish();

    // An hour of 100 series, then the dashboard query over it.
    let db = Db::in_memory().unwrap();
    for i in 0..240u64 {
        let mut app = db.appender();
        for s in 0..SERIES {
            app.append_histogram(&labels(s), T0 + i as i64 * STEP, HistogramValue::Integer(latency(i, s))).unwrap();
        }
        app.commit().unwrap();
    }
    let engine = Engine::default();
    let end = T0 + 239 * STEP;
    let mut g = c.benchmark_group("histogram_query");
    g.bench_function("quantile_sum_rate_100_series_instant", |b| {
        b.iter(|| {
            engine
                .instant_query(&db, "histogram_quantile(0.9, sum(rate(http_request_duration_seconds[5m])))", end)
                .unwrap()
        })
    });
    g.bench_function("quantile_sum_rate_100_series_1h_range", |b| {
        b.iter(|| {
            engine
                .range_query(
                    &db,
                    "histogram_quantile(0.9, sum(rate(http_request_duration_seconds[5m])))",
                    T0,
                    end,
                    60_000,
                )
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, chunk, head_and_query);
criterion_main!(benches);

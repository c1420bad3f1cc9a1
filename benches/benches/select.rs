//! The head's select at the shape of issue 13's heavy instant queries:
//! 100k series of a fleet (one metric name per 1,000 series, instances,
//! routes and status codes, so label sets share long prefixes), 20 samples
//! each, selected over the last 5 minutes. `all` is
//! `{__name__=~".+"}` (every series: `count({__name__=~".+"})`), `one_name`
//! one metric of 1,000 series, `big_name` a metric of 40,000 series (the
//! shape of `rate(http_requests_total[5m])`). The time is postings,
//! the chunk lists and the sort into label order;
//! `big_name_read_and_dropped_elsewhere` adds a second thread that reads
//! every series' chunk bytes and drops it, as a query's evaluation
//! threads do (the frees of the select's allocations); `big_name_windows`
//! reads the same series' windows in place (`Head::select_windows`, the
//! path of an instant `rate` pushed into the select). `labels/cmp_neighbours`
//! and `labels/without_name` time the two label-set operations a heavy
//! instant query does per series besides: comparing label sets that share
//! long prefixes (the sort's small groups and the merge of its runs) and
//! dropping `__name__` from a `rate` output.
//!
//! ```text
//! cargo bench -p tidemark-bench --bench select -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use tidemark_storage::head::{Head, HeadOptions};
use tidemark_storage::{Labels, MatchOp, Matcher, Sample};

const SERIES: usize = 100_000;
const SAMPLES: i64 = 20;
const STEP_MS: i64 = 15_000;

fn labels(i: usize) -> Labels {
    // 40% of the series are one big metric, the rest 60 smaller ones.
    let name = if i % 5 < 2 { "http_requests_total".to_string() } else { format!("node_metric_{}", i % 60) };
    Labels::new([
        ("__name__", name),
        ("instance", format!("service-{}.prod.example.com:8080", (i / 40) % 2000)),
        ("job", format!("job-{}", i % 7)),
        ("route", format!("/api/v1/resource/{}", i % 11)),
        ("status", ["200", "404", "500"][i % 3].to_string()),
        ("uid", i.to_string()),
    ])
    .expect("valid labels")
}

fn select(c: &mut Criterion) {
    let head = Head::new(HeadOptions::default(), None);
    let mut app = head.appender();
    let refs: Vec<u64> = (0..SERIES).map(|i| app.append(&labels(i), 0, i as f64).expect("append")).collect();
    app.commit().expect("commit");
    for k in 1..SAMPLES {
        let mut app = head.appender();
        for (i, &r) in refs.iter().enumerate() {
            app.append_ref(r, k * STEP_MS, (k + i as i64) as f64).expect("append_ref");
        }
        app.commit().expect("commit");
    }
    let maxt = (SAMPLES - 1) * STEP_MS;
    let mint = maxt - 300_000 + 1;
    let mut g = c.benchmark_group("head_select");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, ms, want) in [
        ("all", vec![Matcher::new(MatchOp::Regex, "__name__", ".+").expect("regex")], SERIES),
        ("big_name", vec![Matcher::equal("__name__", "http_requests_total")], SERIES * 2 / 5),
        // Every `i` with `i % 60 == 7` has `i % 5 == 2`, so all of them.
        ("one_name", vec![Matcher::equal("__name__", "node_metric_7")], (0..SERIES).filter(|i| i % 60 == 7).count()),
    ] {
        g.throughput(Throughput::Elements(want as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let out = head.select(&ms, mint, maxt);
                assert_eq!(out.len(), want);
                out.len()
            })
        });
    }
    // As a query uses a selection: another thread reads each series' chunk
    // bytes and drops the series (and with them the select's allocations:
    // chunk lists, open-chunk copies), one after another.
    let ms = vec![Matcher::equal("__name__", "http_requests_total")];
    g.throughput(Throughput::Elements((SERIES * 2 / 5) as u64));
    g.bench_function("big_name_read_and_dropped_elsewhere", |b| {
        b.iter(|| {
            let out = head.select(&ms, mint, maxt);
            std::thread::scope(|s| {
                s.spawn(move || {
                    let mut bytes = 0usize;
                    for cs in out {
                        bytes += cs.chunks.iter().map(|c| c.bytes.as_ref().len()).sum::<usize>();
                    }
                    bytes
                })
                .join()
                .expect("reader thread")
            })
        })
    });
    // The same selection as the instant range function pushed down reads
    // it: each series' samples in the window decoded in place and reduced
    // to one point (here their last), no chunk list or copy per series.
    let last = |s: &[Sample]| s.last().copied();
    g.bench_function("big_name_windows", |b| {
        b.iter(|| {
            let (out, read) = head.select_windows(&ms, mint, maxt, &last, &mut Vec::new());
            assert_eq!(out.len(), SERIES * 2 / 5);
            read
        })
    });
    g.finish();

    let mut sets: Vec<Labels> = (0..SERIES).map(labels).collect();
    sets.sort();
    let mut g = c.benchmark_group("labels");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("cmp_neighbours", |b| b.iter(|| sets.windows(2).filter(|w| w[0] < w[1]).count()));
    g.bench_function("without_name", |b| b.iter(|| sets.iter().map(|l| l.without(&["__name__"]).len()).sum::<usize>()));
    g.finish();
}

criterion_group!(benches, select);
criterion_main!(benches);

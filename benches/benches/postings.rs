//! Postings: matcher selection over the head's inverted index (100k
//! series) for typical PromQL selectors, in series selected per second; and
//! the list operations under it (`intersect`, `union`, `difference` of
//! sorted id lists) on large lists, in input ids per second.
//!
//! ```text
//! cargo bench -p tidemark-bench --bench postings -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use tidemark_storage::head::{Head, HeadOptions};
use tidemark_storage::postings::{difference, intersect, union};
use tidemark_storage::{Labels, MatchOp, Matcher};

const SERIES: usize = 100_000;

fn build() -> Head {
    let head = Head::new(HeadOptions::default(), None);
    let mut app = head.appender();
    for i in 0..SERIES {
        let l = Labels::new([
            ("__name__", format!("metric_{}", i % 100)),
            ("instance", format!("host-{}", i / 100 % 1000)),
            ("job", format!("job-{}", i % 10)),
            ("mode", ["idle", "user", "system", "iowait"][i % 4].to_string()),
            ("series", i.to_string()),
        ])
        .expect("valid labels");
        app.append(&l, 0, 0.0).expect("append");
    }
    app.commit().expect("commit");
    head
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).expect("valid matcher")
}

fn postings(c: &mut Criterion) {
    let head = build();
    let cases: Vec<(&str, Vec<Matcher>)> = vec![
        ("name_eq", vec![m(MatchOp::Equal, "__name__", "metric_7")]),
        ("name_eq_job_eq", vec![m(MatchOp::Equal, "__name__", "metric_7"), m(MatchOp::Equal, "job", "job-7")]),
        ("job_alternation", vec![m(MatchOp::Regex, "job", "job-1|job-2|job-3")]),
        (
            "name_eq_instance_regex",
            vec![m(MatchOp::Equal, "__name__", "metric_7"), m(MatchOp::Regex, "instance", "host-1.*")],
        ),
        ("name_eq_mode_neq", vec![m(MatchOp::Equal, "__name__", "metric_7"), m(MatchOp::NotEqual, "mode", "idle")]),
        (
            "name_eq_instance_not_regex",
            vec![m(MatchOp::Equal, "__name__", "metric_7"), m(MatchOp::NotRegex, "instance", "host-9.*")],
        ),
        ("instance_nonempty", vec![m(MatchOp::Regex, "instance", ".+")]),
    ];
    let mut g = c.benchmark_group("head_postings_100k");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, ms) in &cases {
        // Throughput in series selected: the size of the answer, what the
        // caller then has to read.
        let selected = head.series_refs(ms).len() as u64;
        assert!(selected > 0, "{name} selects nothing");
        g.throughput(Throughput::Elements(selected));
        g.bench_function(*name, |b| b.iter(|| head.series_refs(ms).len()));
    }
    g.finish();
}

/// Sorted ids `start, start + stride, …` below `end`: a postings list.
fn ids(start: u64, stride: u64, end: u64) -> Vec<u64> {
    (start..end).step_by(stride as usize).collect()
}

/// The list operations on 1M-id lists (a large Prometheus' `job="…"` or
/// `__name__="…"` postings). Inputs are cloned outside the measurement;
/// throughput is the number of input ids.
fn list_ops(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let cases: Vec<(&str, &str, Vec<Vec<u64>>)> = vec![
        // Two big lists sharing a sixth of the ids.
        ("intersect", "2_lists_500k_333k", vec![ids(0, 2, N), ids(0, 3, N)]),
        // A small list against a big one: the binary-search path.
        ("intersect", "1k_vs_1M", vec![ids(7, 997, N), ids(0, 1, N)]),
        // Five lists, as `name="…", job="…", instance=~"…", mode!="…"` gives.
        (
            "intersect",
            "5_lists_1M_to_100k",
            vec![ids(0, 1, N), ids(0, 2, N), ids(0, 3, N), ids(0, 5, N), ids(0, 10, N)],
        ),
        // Two lists: the merge path.
        ("union", "2_lists_500k", vec![ids(0, 2, N), ids(1, 2, N)]),
        // Many lists, as a regex over a high-cardinality label gives.
        ("union", "100_lists_10k", (0..100).map(|i| ids(i, 100, N)).collect()),
    ];
    let mut g = c.benchmark_group("postings_lists");
    g.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (op, name, lists) in &cases {
        let input: u64 = lists.iter().map(|l| l.len() as u64).sum();
        g.throughput(Throughput::Elements(input));
        let f: fn(Vec<Vec<u64>>) -> Vec<u64> = if *op == "intersect" { intersect } else { union };
        assert!(!f(lists.clone()).is_empty());
        g.bench_function(format!("{op}_{name}"), |b| b.iter_batched(|| lists.clone(), f, BatchSize::LargeInput));
    }
    // `mode!="idle"`-style subtraction: all ids minus a quarter of them.
    let (all, idle) = (ids(0, 1, N), ids(0, 4, N));
    g.throughput(Throughput::Elements(N + idle.len() as u64));
    assert_eq!(difference(&all, &idle).len() as u64, N - idle.len() as u64);
    g.bench_function("difference_1M_minus_250k", |b| b.iter(|| difference(&all, &idle).len()));
    g.finish();
}

criterion_group!(benches, postings, list_ops);
criterion_main!(benches);

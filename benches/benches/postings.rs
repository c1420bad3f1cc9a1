//! Matcher selection over the head's inverted index (100k series):
//! `postings_for_matchers` throughput for typical PromQL selectors.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tidemark_storage::head::{Head, HeadOptions};
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
        g.bench_function(*name, |b| b.iter(|| head.series_refs(ms).len()));
    }
    g.finish();
}

criterion_group!(benches, postings);
criterion_main!(benches);

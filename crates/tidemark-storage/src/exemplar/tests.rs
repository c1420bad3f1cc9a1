use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::MatchOp;

fn series(job: &str) -> Labels {
    Labels::new([("__name__", "rpc_seconds_bucket"), ("job", job)]).unwrap()
}

fn ex(trace: &str, v: f64, t: i64) -> Exemplar {
    Exemplar { labels: Labels::new([("trace_id", trace)]).unwrap(), value: v, t }
}

fn all() -> Vec<Vec<Matcher>> {
    vec![vec![Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()]]
}

#[test]
fn per_series_order_duplicates_and_out_of_order() {
    let s = ExemplarStorage::new(10);
    assert_eq!(s.add(&series("a"), &ex("t1", 1.0, 100)), Ok(Added::Stored));
    assert_eq!(s.add(&series("a"), &ex("t1", 1.0, 100)), Ok(Added::Duplicate));
    assert_eq!(s.add(&series("a"), &ex("t2", 1.0, 100)), Err(ExemplarError::OutOfOrder { t: 100, newest: 100 }));
    assert_eq!(s.add(&series("a"), &ex("t0", 1.0, 50)), Err(ExemplarError::OutOfOrder { t: 50, newest: 100 }));
    // Another series has its own order.
    assert_eq!(s.add(&series("b"), &ex("t0", 1.0, 50)), Ok(Added::Stored));
    let st = s.stats();
    assert_eq!(
        (st.exemplars_in_storage, st.series_with_exemplars, st.appended_total, st.out_of_order_total),
        (2, 2, 2, 2)
    );
}

#[test]
fn label_sets_over_128_characters_are_refused() {
    let s = ExemplarStorage::new(10);
    // "trace_id" is 8 characters: 120 more make 128, allowed.
    let ok = Labels::new([("trace_id", "é".repeat(120))]).unwrap();
    assert_eq!(s.add(&series("a"), &Exemplar { labels: ok, value: 1.0, t: 1 }), Ok(Added::Stored));
    let long = Labels::new([("trace_id", "é".repeat(121))]).unwrap();
    assert_eq!(
        s.add(&series("a"), &Exemplar { labels: long, value: 1.0, t: 2 }),
        Err(ExemplarError::LabelSetTooLong { runes: 129 })
    );
}

#[test]
fn a_disabled_store_ignores_everything() {
    let s = ExemplarStorage::new(0);
    assert!(!s.enabled());
    assert_eq!(s.add(&series("a"), &ex("t1", 1.0, 100)), Ok(Added::Disabled));
    assert!(s.select(i64::MIN, i64::MAX, &all()).is_empty());
}

#[test]
fn select_filters_by_time_and_matcher_sets_and_sorts_series() {
    let s = ExemplarStorage::new(100);
    for (i, job) in ["c", "a", "b"].iter().enumerate() {
        for t in 0..5 {
            s.add(&series(job), &ex(&format!("{job}{t}"), i as f64, t * 10)).unwrap();
        }
    }
    let got = s.select(10, 30, &[vec![Matcher::equal("job", "a")], vec![Matcher::equal("job", "c")]]);
    assert_eq!(got.iter().map(|g| g.series_labels.get("job").unwrap()).collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(got[0].exemplars.iter().map(|e| e.t).collect::<Vec<_>>(), [10, 20, 30]);
    assert!(s.select(41, 100, &all()).is_empty());
    assert!(s.select(0, 100, &[]).is_empty(), "no matcher set matches nothing");
}

#[test]
fn resize_keeps_the_newest() {
    let s = ExemplarStorage::new(5);
    for t in 0..8 {
        s.add(&series(if t % 2 == 0 { "a" } else { "b" }), &ex("x", 1.0, t)).unwrap();
    }
    assert_eq!(s.resize(3), 3);
    let mut ts = Vec::new();
    s.for_each(|_, e| ts.push(e.t));
    assert_eq!(ts, [5, 6, 7]);
    assert_eq!(s.resize(10), 3);
    s.add(&series("a"), &ex("x", 1.0, 9)).unwrap();
    let mut ts = Vec::new();
    s.for_each(|_, e| ts.push(e.t));
    assert_eq!(ts, [5, 6, 7, 9]);
    assert_eq!(s.resize(0), 0);
    assert_eq!(s.stats().exemplars_in_storage, 0);
}

/// The ring against a plain model: a queue of the last `limit` stored
/// exemplars, and per series the newest one for the order rules.
#[derive(Debug, Clone)]
enum Op {
    Add { series: u8, trace: u8, t: i64 },
    Resize(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0u8..6, 0u8..3, 0i64..60).prop_map(|(series, trace, t)| Op::Add { series, trace, t }),
        1 => (0usize..12).prop_map(Op::Resize),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_a_queue_model(limit in 0usize..10, ops in prop::collection::vec(op(), 0..200)) {
        let s = ExemplarStorage::new(limit);
        let mut limit = limit;
        let mut model: VecDeque<(Labels, Exemplar)> = VecDeque::new();
        for op in ops {
            match op {
                Op::Add { series: n, trace, t } => {
                    let l = series(&n.to_string());
                    let e = ex(&trace.to_string(), 1.0, t);
                    let newest = model.iter().rev().find(|(sl, _)| *sl == l).map(|(_, e)| e.clone());
                    let want = if limit == 0 {
                        Ok(Added::Disabled)
                    } else {
                        match newest {
                            Some(n) if n.same(&e) => Ok(Added::Duplicate),
                            Some(n) if e.t <= n.t => Err(ExemplarError::OutOfOrder { t: e.t, newest: n.t }),
                            _ => Ok(Added::Stored),
                        }
                    };
                    prop_assert_eq!(s.add(&l, &e), want.clone());
                    if want == Ok(Added::Stored) {
                        model.push_back((l, e));
                        if model.len() > limit {
                            model.pop_front();
                        }
                    }
                }
                Op::Resize(n) => {
                    limit = n;
                    while model.len() > limit {
                        model.pop_front();
                    }
                    s.resize(n);
                }
            }
            let mut got = Vec::new();
            s.for_each(|l, e| got.push((l.clone(), e.clone())));
            prop_assert_eq!(&got, &model.iter().cloned().collect::<Vec<_>>());
            let mut series_got = 0;
            for g in s.select(i64::MIN, i64::MAX, &all()) {
                series_got += 1;
                let want: Vec<_> = model.iter().filter(|(l, _)| *l == g.series_labels).map(|(_, e)| e.clone()).collect();
                prop_assert_eq!(g.exemplars, want);
            }
            let mut distinct: Vec<_> = model.iter().map(|(l, _)| l.clone()).collect();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(series_got, distinct.len());
            prop_assert_eq!(s.stats().series_with_exemplars, distinct.len() as u64);
        }
    }
}

#[test]
fn bytes_per_exemplar_is_what_the_docs_say() {
    assert_eq!(BYTES_PER_EXEMPLAR, 40);
}

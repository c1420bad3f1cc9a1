//! Model-based test: random sequences of appends, commits, rollbacks, head
//! persistence, compactions, crashes, reopens, retention passes and queries,
//! checked against a plain `BTreeMap` model of what was committed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use tidemark_storage::{AppendError, Db, Labels, MatchOp, Matcher};

const SERIES: usize = 6;
const RANGE: i64 = 10_000; // small block range so blocks are cut often

#[derive(Debug, Clone)]
enum Op {
    /// Append to series `s` at `now + dt`; `v` is the value.
    Append {
        s: usize,
        dt: i64,
        v: i16,
    },
    /// Re-append the last committed sample of a series: identical (accepted) or different (rejected).
    Duplicate {
        s: usize,
        same: bool,
    },
    Commit,
    Rollback,
    PersistHead,
    FlushHead,
    Compact,
    Retention,
    /// Close cleanly and reopen.
    Reopen,
    /// Copy the directory while open (what kill -9 leaves) and continue from the copy.
    Crash,
    Query {
        s: Option<usize>,
        from: i64,
        len: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0..SERIES, 0i64..3000, any::<i16>()).prop_map(|(s, dt, v)| Op::Append { s, dt, v }),
        3 => (0..SERIES, any::<bool>()).prop_map(|(s, same)| Op::Duplicate { s, same }),
        10 => Just(Op::Commit),
        2 => Just(Op::Rollback),
        2 => Just(Op::PersistHead),
        1 => Just(Op::FlushHead),
        2 => Just(Op::Compact),
        2 => Just(Op::Retention),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        5 => (proptest::option::of(0..SERIES), 0i64..200_000, 0i64..200_000).prop_map(|(s, from, len)| Op::Query { s, from, len }),
    ]
}

fn labels(s: usize) -> Labels {
    Labels::new([("__name__", "m"), ("series", &s.to_string()), ("even", if s.is_multiple_of(2) { "yes" } else { "" })])
        .unwrap()
}

struct Model {
    committed: BTreeMap<usize, BTreeMap<i64, u64>>,
    pending: Vec<(usize, i64, u64)>,
    /// Samples older than this may have been removed by retention.
    retained_from: i64,
}

/// The database lives for the whole process (an appender borrows it across
/// reopen steps); `close` releases its directory.
impl Model {
    /// After a retention pass: everything newer than the newest committed
    /// sample minus the retention time (60 s) must still be there.
    fn note_retention(&mut self) {
        self.retained_from = self.retained_from.max(newest_committed(self).saturating_sub(60_000));
    }
}

fn open(dir: &Path) -> &'static Db {
    let db = Db::builder(dir)
        .block_range(RANGE)
        .retention_time(Some(Duration::from_millis(60_000)))
        .max_block_range(Some(270_000))
        .maintenance_interval(None)
        .open()
        .expect("open");
    Box::leak(Box::new(db))
}

fn check_query(db: &Db, model: &Model, s: Option<usize>, mint: i64, maxt: i64) {
    let q = db.querier(mint, maxt);
    let ms = match s {
        Some(s) => vec![Matcher::equal("series", s.to_string())],
        None => vec![Matcher::new(MatchOp::Regex, "__name__", "m").unwrap()],
    };
    let got = q.select(&ms).expect("select");
    let mut got_map: BTreeMap<usize, Vec<(i64, u64)>> = BTreeMap::new();
    let mut prev: Option<Labels> = None;
    for series in &got {
        assert!(prev.as_ref().is_none_or(|p| p < series.labels()), "series sorted by labels");
        prev = Some(series.labels().clone());
        let idx: usize = series.labels().get("series").unwrap().parse().unwrap();
        let samples: Vec<(i64, u64)> =
            series.samples().expect("iterate").iter().map(|x| (x.t, x.v.to_bits())).collect();
        if !samples.is_empty() {
            got_map.insert(idx, samples);
        }
    }
    for idx in 0..SERIES {
        if s.is_some_and(|s| s != idx) {
            continue;
        }
        let want: Vec<(i64, u64)> = model
            .committed
            .get(&idx)
            .map(|m| m.range(mint..=maxt).map(|(&t, &v)| (t, v)).collect())
            .unwrap_or_default();
        let have = got_map.remove(&idx).unwrap_or_default();
        // Retention may have removed old samples: everything returned must be
        // in the model, and everything at or after `retained_from` must be returned.
        let must: Vec<(i64, u64)> = want.iter().copied().filter(|(t, _)| *t >= model.retained_from).collect();
        let have_recent: Vec<(i64, u64)> = have.iter().copied().filter(|(t, _)| *t >= model.retained_from).collect();
        assert_eq!(have_recent, must, "series {idx} in [{mint}, {maxt}]");
        for x in &have {
            assert!(want.contains(x), "series {idx}: returned sample {x:?} was never committed");
        }
    }
    assert!(got_map.is_empty(), "unexpected series {:?}", got_map.keys());
}

/// What the cases exercised, summed over all cases, so the test fails if the
/// generator stops reaching the interesting paths.
#[derive(Default, Debug)]
struct Coverage {
    blocks_written: u64,
    compactions: u64,
    retention_deletions: u64,
    crashes: u64,
}

#[test]
fn database_matches_a_btreemap_model() {
    let coverage = std::cell::RefCell::new(Coverage::default());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    runner
        .run(&proptest::collection::vec(op(), 1..150), |ops| {
            run_case(ops, &mut coverage.borrow_mut());
            Ok(())
        })
        .unwrap();
    let c = coverage.into_inner();
    assert!(c.blocks_written > 0 && c.compactions > 0 && c.retention_deletions > 0 && c.crashes > 0, "{c:?}");
}

fn run_case(ops: Vec<Op>, cov: &mut Coverage) {
    {
        let root = tempfile::tempdir().unwrap();
        let mut gen = 0;
        let mut dir = root.path().join(format!("db{gen}"));
        let mut db = open(&dir);
        let _ = &mut db;
        let mut model = Model { committed: BTreeMap::new(), pending: Vec::new(), retained_from: i64::MIN };
        let mut app = Some(db.appender());
        let mut now: i64 = 1_000;
        // Newest committed timestamp per series and overall.
        let mut last: BTreeMap<usize, i64> = BTreeMap::new();
        // After flush_head the head refuses samples below the end of the
        // last range it wrote.
        let mut flush_floor = i64::MIN;

        for op in ops {
            match op {
                Op::Append { s, dt, v } => {
                    // Strictly newer than anything in the batch or committed for this series.
                    now += dt + 1;
                    let r = app.as_mut().unwrap().append(&labels(s), now, f64::from(v));
                    match r {
                        Ok(_) => model.pending.push((s, now, f64::from(v).to_bits())),
                        Err(AppendError::TooOld { .. }) if now < flush_floor => {}
                        Err(e) => panic!("unexpected append error {e}"),
                    }
                }
                Op::Duplicate { s, same } => {
                    let Some(&t) = last.get(&s) else { continue };
                    let Some(&v) = model.committed.get(&s).and_then(|m| m.get(&t)) else { continue };
                    let newv = if same { f64::from_bits(v) } else { f64::from_bits(v) + 1.0 };
                    let r = app.as_mut().unwrap().append(&labels(s), t, newv);
                    if model.pending.iter().any(|p| p.0 == s) {
                        // Pending newer samples in this batch make this out of order; skip checking.
                        continue;
                    }
                    match (same, r) {
                        (true, Ok(_)) => {}
                        (false, Err(AppendError::DuplicateTimestamp { .. })) => {}
                        // Out of bounds: more than half a block range behind the newest sample.
                        (_, Err(AppendError::TooOld { .. }))
                            if t < flush_floor || t < newest_committed(&model) - RANGE / 2 => {}
                        (same, r) => panic!("duplicate same={same}: {r:?}"),
                    }
                }
                Op::Commit => {
                    app.take().unwrap().commit().expect("commit");
                    for (s, t, v) in model.pending.drain(..) {
                        model.committed.entry(s).or_default().insert(t, v);
                        last.insert(s, t);
                    }
                    app = Some(db.appender());
                }
                Op::Rollback => {
                    app.take().unwrap().rollback();
                    model.pending.clear();
                    app = Some(db.appender());
                }
                Op::PersistHead | Op::FlushHead | Op::Compact | Op::Retention => {
                    app.take().unwrap().rollback();
                    model.pending.clear();
                    match op {
                        Op::PersistHead => {
                            db.persist_head().expect("persist");
                        }
                        Op::FlushHead => {
                            db.flush_head().expect("flush");
                            if let Some(newest) = model.committed.values().filter_map(|m| m.keys().next_back()).max() {
                                flush_floor = flush_floor.max(newest - newest.rem_euclid(RANGE) + RANGE);
                            }
                        }
                        Op::Compact => {
                            db.compact().expect("compact");
                        }
                        _ => {
                            db.apply_retention().expect("retention");
                            model.note_retention();
                        }
                    }
                    app = Some(db.appender());
                }
                Op::Reopen | Op::Crash => {
                    app.take().unwrap().rollback();
                    model.pending.clear();
                    let st = db.stats();
                    cov.blocks_written += st.head_persists;
                    cov.compactions += st.compactions;
                    cov.retention_deletions += st.retention_time_deletions + st.retention_size_deletions;
                    if matches!(op, Op::Crash) {
                        cov.crashes += 1;
                        gen += 1;
                        let copy = root.path().join(format!("db{gen}"));
                        copy_dir(&dir, &copy);
                        let _ = std::fs::remove_file(copy.join("lock"));
                        db.close().expect("close");
                        dir = copy;
                    } else {
                        db.close().expect("close");
                    }
                    db = open(&dir);
                    // Reopen may apply retention.
                    model.note_retention();
                    app = Some(db.appender());
                }
                Op::Query { s, from, len } => {
                    check_query(db, &model, s, from, from + len);
                }
            }
        }
        app.take().unwrap().rollback();
        check_query(db, &model, None, i64::MIN, i64::MAX);
        let st = db.stats();
        cov.blocks_written += st.head_persists;
        cov.compactions += st.compactions;
        cov.retention_deletions += st.retention_time_deletions + st.retention_size_deletions;
        db.close().unwrap();
    }
}

fn newest_committed(model: &Model) -> i64 {
    model.committed.values().filter_map(|m| m.keys().next_back()).max().copied().unwrap_or(i64::MIN)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

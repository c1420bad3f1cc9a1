//! Exemplars through the database: stored with the batch, answered by
//! matchers and time, kept across restarts (WAL replay) and checkpoints,
//! bounded by the limit, and dropped with a rolled-back batch.

use std::path::Path;

use tidemark_storage::exemplar::{Exemplar, ExemplarError};
use tidemark_storage::{Db, DbBuilder, Labels, MatchOp, Matcher};

const MIN: i64 = 60_000;

fn builder(dir: &Path) -> DbBuilder {
    Db::builder(dir).block_range(10 * MIN).maintenance_interval(None).retention_time(None)
}

fn series(i: u64) -> Labels {
    Labels::new([("__name__", "rpc_seconds_bucket".to_string()), ("le", i.to_string())]).unwrap()
}

fn trace(t: i64) -> Labels {
    Labels::new([("trace_id", format!("{t:016x}"))]).unwrap()
}

/// `rounds` rounds of 15 s for 4 series, an exemplar for each series every
/// other round.
fn fill(db: &Db, from: i64, rounds: i64) {
    for k in 0..rounds {
        let t = from + k * 15_000;
        let mut app = db.appender();
        for i in 0..4 {
            let r = app.append(&series(i), t, (k * 10 + i as i64) as f64).unwrap();
            if k % 2 == 0 {
                app.append_exemplar(r, Exemplar { labels: trace(t + i as i64), value: 0.5 + i as f64, t: t - 1 })
                    .unwrap();
            }
        }
        app.commit().unwrap();
    }
}

fn all(db: &Db, mint: i64, maxt: i64) -> Vec<(Labels, Vec<Exemplar>)> {
    db.exemplars(&[vec![Matcher::new(MatchOp::Regex, "__name__", "rpc.*").unwrap()]], mint, maxt)
        .into_iter()
        .map(|s| (s.series_labels, s.exemplars))
        .collect()
}

#[test]
fn exemplars_survive_restart_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_400_000;
    let before;
    {
        let db = builder(dir.path()).open().unwrap();
        fill(&db, t0, 80);
        before = all(&db, i64::MIN, i64::MAX);
        assert_eq!(before.len(), 4);
        assert!(before.iter().all(|(_, e)| e.len() == 40));
        db.close().unwrap();
    }
    {
        let db = builder(dir.path()).open().unwrap();
        assert_eq!(all(&db, i64::MIN, i64::MAX), before, "replayed from the WAL");
        // Persisting the head checkpoints the WAL: exemplars older than the
        // persisted range are dropped from the checkpoint, as Prometheus does.
        assert!(db.persist_head().unwrap() > 0);
        db.close().unwrap();
    }
    let db = builder(dir.path()).open().unwrap();
    let after = all(&db, i64::MIN, i64::MAX);
    let head_min = db.blocks().iter().map(|b| b.max_time).max().unwrap();
    let want: Vec<_> = before
        .iter()
        .map(|(l, e)| (l.clone(), e.iter().filter(|e| e.t >= head_min).cloned().collect::<Vec<_>>()))
        .filter(|(_, e)| !e.is_empty())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(after, want);
    // Time range and matcher sets.
    let some = db.exemplars(&[vec![Matcher::equal("le", "2")], vec![Matcher::equal("le", "3")]], t0, t0 + 60 * 15_000);
    assert_eq!(some.iter().map(|s| s.series_labels.get("le").unwrap()).collect::<Vec<_>>(), ["2", "3"]);
    db.close().unwrap();
}

#[test]
fn the_limit_bounds_the_store_and_zero_disables_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).max_exemplars(10).open().unwrap();
    fill(&db, 1_000_000, 20);
    let got = all(&db, i64::MIN, i64::MAX);
    assert_eq!(got.iter().map(|(_, e)| e.len()).sum::<usize>(), 10);
    let st = db.exemplar_stats();
    assert_eq!((st.max_exemplars, st.exemplars_in_storage, st.appended_total), (10, 10, 40));
    db.close().unwrap();
    // Reopened with a smaller limit: the newest that fit are replayed.
    let db = builder(dir.path()).max_exemplars(4).open().unwrap();
    let got = all(&db, i64::MIN, i64::MAX);
    assert_eq!(got.iter().map(|(_, e)| e.len()).sum::<usize>(), 4);
    assert!(got.iter().all(|(_, e)| e[0].t == 1_000_000 + 18 * 15_000 - 1));
    db.close().unwrap();

    let db = builder(dir.path()).max_exemplars(0).open().unwrap();
    assert!(all(&db, i64::MIN, i64::MAX).is_empty());
    let mut app = db.appender();
    let r = app.append(&series(0), 2_000_000, 1.0).unwrap();
    app.append_exemplar(r, Exemplar { labels: trace(1), value: 1.0, t: 2_000_000 }).unwrap();
    app.commit().unwrap();
    assert!(all(&db, i64::MIN, i64::MAX).is_empty());
    db.close().unwrap();
}

#[test]
fn refused_and_rolled_back_exemplars_are_not_stored() {
    let db = Db::in_memory().unwrap();
    let mut app = db.appender();
    let r = app.append(&series(0), 10_000, 1.0).unwrap();
    app.append_exemplar(r, Exemplar { labels: trace(1), value: 1.0, t: 10_000 }).unwrap();
    // Out of order within the batch.
    assert_eq!(
        app.append_exemplar(r, Exemplar { labels: trace(2), value: 1.0, t: 9_000 }),
        Err(ExemplarError::OutOfOrder { t: 9_000, newest: 10_000 })
    );
    // Too long.
    let long = Labels::new([("trace_id", "x".repeat(200))]).unwrap();
    assert!(matches!(
        app.append_exemplar(r, Exemplar { labels: long, value: 1.0, t: 11_000 }),
        Err(ExemplarError::LabelSetTooLong { .. })
    ));
    assert_eq!(
        app.append_exemplar(9_999_999, Exemplar { labels: trace(3), value: 1.0, t: 12_000 }),
        Err(ExemplarError::UnknownSeriesRef(9_999_999))
    );
    app.commit().unwrap();
    assert_eq!(all(&db, i64::MIN, i64::MAX)[0].1.len(), 1);

    let mut app = db.appender();
    app.append_exemplar(r, Exemplar { labels: trace(4), value: 1.0, t: 20_000 }).unwrap();
    app.rollback();
    assert_eq!(all(&db, i64::MIN, i64::MAX)[0].1.len(), 1);
    // Out of order against the store.
    let mut app = db.appender();
    assert!(matches!(
        app.append_exemplar(r, Exemplar { labels: trace(5), value: 1.0, t: 5_000 }),
        Err(ExemplarError::OutOfOrder { .. })
    ));
    drop(app);
}

#[test]
fn an_exemplar_for_a_series_without_a_sample_in_the_batch_is_logged_with_its_series() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = builder(dir.path()).open().unwrap();
        let mut app = db.appender();
        let r = app.append(&series(7), 1_000, 1.0).unwrap();
        app.commit().unwrap();
        let mut app = db.appender();
        app.append_exemplar(r, Exemplar { labels: trace(9), value: 2.0, t: 1_500 }).unwrap();
        app.commit().unwrap();
        db.close().unwrap();
    }
    let db = builder(dir.path()).open().unwrap();
    let got = all(&db, i64::MIN, i64::MAX);
    assert_eq!(got, vec![(series(7), vec![Exemplar { labels: trace(9), value: 2.0, t: 1_500 }])]);
    db.close().unwrap();
}

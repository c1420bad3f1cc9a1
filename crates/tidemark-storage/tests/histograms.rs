//! Native histograms in the database: appended, read back exactly, kept
//! across a restart (WAL replay), mixed with floats in one series.

use std::time::Duration;

use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramSample, HistogramValue, Span};
use tidemark_storage::{stale_nan, AppendError, Db, DbBuilder, Labels, MatchOp, Matcher, Sample, SampleIterator};

fn builder(dir: &std::path::Path) -> DbBuilder {
    Db::builder(dir).maintenance_interval(None).scrub_interval(None).retention_time(None)
}

/// A counter histogram after `n` scrapes: buckets grow, a new bucket
/// appears at 20, the counter resets at 50.
fn counter(n: u64) -> Histogram {
    let n = if n >= 50 { n - 50 } else { n };
    let (spans, buckets) = if n >= 20 {
        (vec![Span { offset: -2, length: 3 }, Span { offset: 2, length: 1 }], vec![n as i64, 1, -1, 2])
    } else {
        (vec![Span { offset: -2, length: 3 }], vec![n as i64, 1, -1])
    };
    let total: i64 = {
        let mut acc = 0;
        buckets
            .iter()
            .map(|d| {
                acc += d;
                acc
            })
            .sum()
    };
    Histogram {
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: n / 3,
        count: total as u64 + n / 3,
        sum: n as f64 * 0.37,
        positive_spans: spans,
        positive_buckets: buckets,
        ..Histogram::default()
    }
}

fn gauge(i: u64) -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: -53,
        count: (i % 7) as f64 + 0.5,
        sum: if i.is_multiple_of(11) { f64::NAN } else { i as f64 },
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![(i % 7) as f64, 0.5],
        custom_values: vec![0.25, 1.0],
        ..FloatHistogram::default()
    }
}

fn labels(name: &str) -> Labels {
    Labels::new([("__name__", name), ("job", "api")]).unwrap()
}

/// Histograms and floats of a series as read back, histograms compacted
/// (a chunk gives earlier samples the empty buckets later ones added).
fn read(db: &Db, name: &str) -> (Vec<Sample>, Vec<HistogramSample>) {
    let q = db.querier(i64::MIN, i64::MAX);
    let series = q.select(&[Matcher::new(MatchOp::Equal, "__name__", name).unwrap()]).unwrap();
    assert_eq!(series.len(), 1, "{name}");
    let mut it = series[0].iter();
    assert!(it.has_histograms());
    let (mut f, mut h) = (Vec::new(), Vec::new());
    it.drain_mixed_into(&mut f, &mut h);
    assert!(it.err().is_none(), "{:?}", it.err());
    (f, h)
}

fn check(db: &Db) {
    let (f, h) = read(db, "latency_seconds");
    assert!(f.is_empty());
    assert_eq!(h.len(), 100);
    for (i, s) in h.iter().enumerate() {
        assert_eq!(s.t, i as i64 * 15_000);
        assert!(s.h.same_data(&HistogramValue::Integer(counter(i as u64))), "sample {i}: {:?}", s.h);
    }
    // The reset at 50 starts a chunk whose first sample reads "unknown"
    // (Prometheus' rule); the ones after it "not a reset".
    assert_eq!(h[51].h.to_float().counter_reset_hint, CounterResetHint::NotCounterReset);

    let (f, h) = read(db, "queue_depth");
    assert_eq!(f.iter().map(|s| s.t).collect::<Vec<_>>(), (0..20).map(|i| i * 15_000 + 7_500).collect::<Vec<_>>());
    assert_eq!(h.len(), 41);
    for s in &h[..40] {
        let i = (s.t / 15_000) as u64;
        assert!(s.h.same_data(&HistogramValue::Float(gauge(i))), "{:?}", s.h);
        assert_eq!(s.h.to_float().counter_reset_hint, CounterResetHint::Gauge);
    }
    assert!(h[40].h.is_stale(), "the staleness marker keeps its bits");
}

fn fill(db: &Db) {
    let (lat, q) = (labels("latency_seconds"), labels("queue_depth"));
    for i in 0..100u64 {
        let t = i as i64 * 15_000;
        let mut app = db.appender();
        app.append_histogram(&lat, t, HistogramValue::Integer(counter(i))).unwrap();
        if i < 40 {
            app.append_histogram(&q, t, HistogramValue::Float(gauge(i))).unwrap();
        }
        if i < 20 {
            // Floats between the histograms of the same series.
            app.append(&q, t + 7_500, i as f64).unwrap();
        }
        if i == 40 {
            let stale = FloatHistogram { sum: stale_nan(), ..FloatHistogram::default() };
            app.append_histogram(&q, t, HistogramValue::Float(stale)).unwrap();
        }
        app.commit().unwrap();
    }
}

#[test]
fn histograms_read_back_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).open().unwrap();
    fill(&db);
    check(&db);
    db.close().unwrap();
    drop(db);
    let db = builder(dir.path()).open().unwrap();
    check(&db);
    db.close().unwrap();
}

#[test]
fn invalid_histograms_and_duplicates_are_refused() {
    let db = Db::in_memory().unwrap();
    let l = labels("h");
    let mut app = db.appender();
    // Spans cover two buckets, one given.
    let bad = Histogram {
        count: 1,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![1],
        ..Histogram::default()
    };
    assert!(matches!(
        app.append_histogram(&l, 1_000, HistogramValue::Integer(bad)),
        Err(AppendError::InvalidHistogram(_))
    ));
    app.append_histogram(&l, 1_000, HistogramValue::Integer(counter(1))).unwrap();
    app.commit().unwrap();
    let mut app = db.appender();
    // A float where a histogram is: a duplicate.
    assert!(matches!(app.append(&l, 1_000, 1.0), Err(AppendError::DuplicateTimestamp { t: 1_000 })));
    assert!(matches!(
        app.append_histogram(&l, 1_000, HistogramValue::Integer(counter(2))),
        Err(AppendError::DuplicateTimestamp { .. })
    ));
    // The same value again is accepted and changes nothing.
    app.append_histogram(&l, 1_000, HistogramValue::Integer(counter(1))).unwrap();
    // Older without an out-of-order window: refused.
    assert!(matches!(
        app.append_histogram(&l, 500, HistogramValue::Integer(counter(0))),
        Err(AppendError::OutOfOrder { .. })
    ));
    app.commit().unwrap();
    let (f, h) = read(&db, "h");
    assert!(f.is_empty());
    assert_eq!(h.iter().map(|s| s.t).collect::<Vec<_>>(), vec![1_000]);
}

#[test]
fn out_of_order_histograms_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let open = || builder(dir.path()).out_of_order_window(Duration::from_secs(600)).open().unwrap();
    let db = open();
    let l = labels("ooo");
    for t in [10_000, 40_000, 20_000, 30_000, 5_000] {
        let mut app = db.appender();
        app.append_histogram(&l, t, HistogramValue::Integer(counter((t / 1000) as u64))).unwrap();
        app.commit().unwrap();
    }
    let times = |db: &Db| read(db, "ooo").1.iter().map(|s| s.t).collect::<Vec<_>>();
    assert_eq!(times(&db), vec![5_000, 10_000, 20_000, 30_000, 40_000]);
    db.close().unwrap();
    drop(db);
    let db = open();
    assert_eq!(times(&db), vec![5_000, 10_000, 20_000, 30_000, 40_000]);
    db.close().unwrap();
}

/// Histograms go into blocks with the head (alternating with floats in one
/// series, so a block holds runs of both kinds), survive compaction of
/// those blocks, and read back exactly after a restart.
#[test]
fn histograms_survive_blocks_and_compaction() {
    const MIN: i64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let open = || builder(dir.path()).block_range(10 * MIN).open().unwrap();
    let db = open();
    let (lat, q) = (labels("latency_seconds"), labels("queue_depth"));
    let mut want_q_floats = Vec::new();
    for i in 0..160u64 {
        let t = i as i64 * 15_000;
        let mut app = db.appender();
        app.append_histogram(&lat, t, HistogramValue::Integer(counter(i % 100))).unwrap();
        // `queue_depth` alternates: 8 histograms, then 8 floats.
        if (i / 8) % 2 == 0 {
            app.append_histogram(&q, t, HistogramValue::Float(gauge(i))).unwrap();
        } else {
            app.append(&q, t, i as f64).unwrap();
            want_q_floats.push(t);
        }
        app.commit().unwrap();
    }
    let check = |db: &Db| {
        let (f, h) = read(db, "latency_seconds");
        assert!(f.is_empty());
        assert_eq!(h.len(), 160);
        for (i, s) in h.iter().enumerate() {
            assert!(s.h.same_data(&HistogramValue::Integer(counter(i as u64 % 100))), "sample {i}: {:?}", s.h);
        }
        let (f, h) = read(db, "queue_depth");
        assert_eq!(f.iter().map(|s| s.t).collect::<Vec<_>>(), want_q_floats);
        assert_eq!(h.len(), 80);
        for s in &h {
            assert!(s.h.same_data(&HistogramValue::Float(gauge((s.t / 15_000) as u64))), "{:?}", s.h);
        }
    };
    check(&db);
    assert!(db.persist_head().unwrap() >= 2, "blocks were cut");
    check(&db);
    let before = db.blocks().len();
    assert!(db.compact().unwrap() >= 1, "blocks were compacted");
    assert!(db.blocks().len() < before);
    check(&db);
    db.close().unwrap();
    drop(db);
    let db = open();
    assert!(!db.blocks().is_empty());
    check(&db);
    db.close().unwrap();
}

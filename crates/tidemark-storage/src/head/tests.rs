use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::chunkenc::ChunkBytes;
use crate::error::AppendError;
use crate::matcher::MatchOp;
use crate::sample::{collect_samples, stale_nan};
use crate::wal::{Record, RefSample};

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

fn head_with(f: impl FnOnce(&mut HeadOptions)) -> Head {
    let mut o = HeadOptions { stripes: 64, ..HeadOptions::default() };
    f(&mut o);
    Head::new(o, None)
}

fn head() -> Head {
    head_with(|_| {})
}

/// All samples of one series as the querier would see them: every chunk
/// decoded, merged by time, deduplicated.
fn merged(cs: &ChunkSeries) -> Vec<Sample> {
    let mut all = Vec::new();
    for c in &cs.chunks {
        let mut it = c.iter();
        all.extend(collect_samples(&mut it).unwrap());
    }
    all.sort_by_key(|s| s.t);
    all.dedup_by_key(|s| s.t);
    all
}

fn series_samples(h: &Head, l: &Labels) -> Vec<Sample> {
    let ms: Vec<Matcher> = l.iter().map(|p| Matcher::equal(p.name, p.value)).collect();
    let sel = h.select(&ms, i64::MIN, i64::MAX);
    let found: Vec<_> = sel.iter().filter(|s| &s.labels == l).collect();
    found.first().map(|s| merged(s)).unwrap_or_default()
}

/// A log that records everything and can be told to fail.
#[derive(Default)]
struct MemLog {
    records: parking_lot::Mutex<Vec<Record>>,
    fail: std::sync::atomic::AtomicBool,
}

impl CommitLog for MemLog {
    fn log(&self, records: &[Record]) -> Result<(), crate::Error> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::Error::Poisoned("log failure injected".into()));
        }
        self.records.lock().extend_from_slice(records);
        Ok(())
    }
}

fn replay_into(h: &Head, records: &[Record]) {
    for r in records {
        match r {
            Record::Series(ss) => ss.iter().for_each(|s| h.replay_series(s.series_ref, s.labels.clone())),
            Record::Samples(ss) => h.replay_samples(ss),
            Record::HistogramSamples(ss) => h.replay_histograms(ss),
            Record::Exemplars(e) => h.replay_exemplars(e),
        }
    }
}

#[test]
fn head_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Head>();
}

#[test]
fn append_select_round_trip_preserves_bits() {
    let h = head();
    let a = lbl(&[("__name__", "up"), ("job", "a")]);
    let mut app = h.appender();
    let r = app.append(&a, 1000, 1.0).unwrap();
    let weird = [stale_nan(), f64::NAN, -0.0, f64::INFINITY, f64::from_bits(0x7ff8_dead_beef_0001)];
    for (i, v) in weird.iter().enumerate() {
        app.append_ref(r, 2000 + i as i64, *v).unwrap();
    }
    assert_eq!(h.min_time(), i64::MAX, "nothing visible before commit");
    let st = app.commit().unwrap();
    assert_eq!(st.samples_applied, 6);
    assert_eq!(st.series_created, 1);
    let got = series_samples(&h, &a);
    let mut want = vec![Sample::new(1000, 1.0)];
    want.extend(weird.iter().enumerate().map(|(i, v)| Sample::new(2000 + i as i64, *v)));
    assert_eq!(got, want);
    assert_eq!((h.min_time(), h.max_time()), (1000, 2004));
    // Same labels again return the same ref.
    let mut app = h.appender();
    assert_eq!(app.append(&a, 3000, 2.0).unwrap(), r);
    app.commit().unwrap();
    assert_eq!(h.stats().num_series, 1);
}

#[test]
fn invalid_labels_and_unknown_refs_are_typed_errors() {
    let h = head();
    let mut app = h.appender();
    assert!(matches!(app.append(&Labels::empty(), 1, 1.0), Err(AppendError::InvalidLabels(_))));
    assert!(matches!(app.append(&lbl(&[("job", "x")]), 1, 1.0), Err(AppendError::InvalidLabels(_))));
    assert_eq!(app.append_ref(12345, 1, 1.0), Err(AppendError::UnknownSeriesRef(12345)));
}

#[test]
fn select_matches_brute_force_for_every_matcher_shape() {
    let h = head();
    let mut all = Vec::new();
    let mut app = h.appender();
    for a in ["", "1", "2", "10"] {
        for b in ["", "x", "y"] {
            for n in ["up", "down"] {
                let l = lbl(&[("__name__", n), ("a", a), ("b", b)]);
                app.append(&l, 100, 1.0).unwrap();
                all.push(l);
            }
        }
    }
    app.commit().unwrap();
    all.sort();
    let ops = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex];
    let vals = ["", "1", "1|", "1|2", ".*", ".+", "1.*", "x", "nope", "[12]"];
    for op in ops {
        for v in vals {
            for op2 in ops {
                for v2 in ["", "x", "x|y", ".*", "u.*"] {
                    let ms = vec![Matcher::new(op, "a", v).unwrap(), Matcher::new(op2, "__name__", v2).unwrap()];
                    let want: Vec<Labels> = all
                        .iter()
                        .filter(|l| ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
                        .cloned()
                        .collect();
                    let got: Vec<Labels> = h.select(&ms, 0, 1000).into_iter().map(|s| s.labels).collect();
                    assert_eq!(got, want, "{ms:?}");
                    // Outside the data's time range nothing is selected.
                    assert!(h.select(&ms, 200, 300).is_empty());
                }
            }
        }
    }
}

#[test]
fn a_large_selection_read_by_several_threads_is_the_one_thread_answer() {
    // More series than `label_sort::PARALLEL_MIN`, created out of label
    // order, with samples at different times so some fall outside the range.
    let h = head();
    let mut app = h.appender();
    let n = 40_000usize;
    for i in 0..n {
        let k = (i * 7919) % n;
        let l = lbl(&[
            ("__name__", "up"),
            ("instance", &format!("h{k}")),
            ("job", if k.is_multiple_of(3) { "a" } else { "b" }),
        ]);
        app.append(&l, (k % 10) as i64 * 100, k as f64).unwrap();
    }
    app.commit().unwrap();
    for ms in [vec![Matcher::equal("__name__", "up")], vec![Matcher::new(MatchOp::NotEqual, "job", "a").unwrap()]] {
        let (mint, maxt) = (100, 700);
        let refs = h.series_refs(&ms);
        let mut warnings = Vec::new();
        let one_thread = h.select_refs(&refs, mint, maxt, true, &mut warnings);
        let in_ref_order = h.select_in_ref_order(&ms, mint, maxt, &mut warnings);
        assert!(warnings.is_empty());
        assert!(one_thread.len() > crate::label_sort::threads_for(0) * 16_384);
        let labels = |v: &[ChunkSeries]| v.iter().map(|c| c.labels.clone()).collect::<Vec<_>>();
        assert_eq!(labels(&in_ref_order), labels(&one_thread));
        for (a, b) in in_ref_order.iter().zip(&one_thread) {
            assert_eq!(merged(a), merged(b));
        }
        let mut want = labels(&one_thread);
        want.sort();
        assert_eq!(labels(&h.select(&ms, mint, maxt)), want);
    }
}

#[test]
fn label_names_and_values_respect_matchers_and_time() {
    let h = head();
    let mut app = h.appender();
    app.append(&lbl(&[("__name__", "up"), ("job", "a"), ("zone", "eu")]), 100, 1.0).unwrap();
    app.append(&lbl(&[("__name__", "up"), ("job", "b")]), 5000, 1.0).unwrap();
    app.append(&lbl(&[("__name__", "cpu"), ("mode", "idle")]), 100, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(h.label_names(&[], i64::MIN, i64::MAX), vec!["__name__", "job", "mode", "zone"]);
    assert_eq!(h.label_names(&[Matcher::equal("__name__", "up")], 0, 10_000), vec!["__name__", "job", "zone"]);
    assert_eq!(h.label_names(&[], 1000, 10_000), vec!["__name__", "job"]);
    assert_eq!(h.label_values("job", &[], i64::MIN, i64::MAX), vec!["a", "b"]);
    assert_eq!(h.label_values("job", &[], 1000, 10_000), vec!["b"]);
    let not_b = Matcher::new(MatchOp::NotEqual, "job", "b").unwrap();
    assert_eq!(h.label_values("__name__", &[not_b], 0, 10_000), vec!["cpu", "up"]);
    assert!(h.label_values("nope", &[], 0, 10_000).is_empty());
}

#[test]
fn chunks_are_cut_at_120_samples_for_regular_scrapes() {
    // Prometheus' rule: every series cuts at the same instants.
    let h = head_with(|o| o.stagger_chunk_cuts = false);
    let l = lbl(&[("__name__", "up")]);
    let mut app = h.appender();
    let r = app.append(&l, 0, 0.0).unwrap();
    // 15 s scrapes for 2 h: 480 samples fill exactly one block range.
    for i in 1..480 {
        app.append_ref(r, i * 15_000, i as f64).unwrap();
    }
    app.commit().unwrap();
    let sel = h.select(&[], i64::MIN, i64::MAX);
    let sizes: Vec<usize> = sel[0].chunks.iter().map(|c| collect_samples(&mut c.iter()).unwrap().len()).collect();
    assert_eq!(sizes, vec![120, 120, 120, 120]);
    assert_eq!(h.stats().num_chunks, 4);
}

#[test]
fn chunks_never_cross_a_block_range_boundary() {
    let range = 1000;
    let h = head_with(|o| o.chunk_range = range);
    let l = lbl(&[("__name__", "up")]);
    let mut app = h.appender();
    let r = app.append(&l, 10, 0.0).unwrap();
    // Sparse samples: a chunk would hold them all, but ranges split them.
    for t in (10..5000).step_by(70).skip(1) {
        app.append_ref(r, t, 1.0).unwrap();
    }
    app.commit().unwrap();
    let sel = h.select(&[], i64::MIN, i64::MAX);
    assert!(sel[0].chunks.len() >= 5);
    for c in &sel[0].chunks {
        assert_eq!(c.mint.div_euclid(range), c.maxt.div_euclid(range), "chunk {}..{} crosses", c.mint, c.maxt);
    }
    // Dense samples: the 2x cap applies when the prediction is wrong.
    let h = head();
    let mut app = h.appender();
    let r = app.append(&l, 0, 0.0).unwrap();
    for t in 1..30 {
        app.append_ref(r, t * 1000, 0.0).unwrap();
    }
    // Rate jumps by 1000x after the end time was predicted.
    for t in 30_000..31_000 {
        app.append_ref(r, t, 0.0).unwrap();
    }
    app.commit().unwrap();
    let sel = h.select(&[], i64::MIN, i64::MAX);
    for c in &sel[0].chunks {
        assert!(collect_samples(&mut c.iter()).unwrap().len() <= 240);
    }
}

#[test]
fn rejections_follow_prometheus_precedence() {
    let h = head_with(|o| o.chunk_range = 1000);
    let a = lbl(&[("__name__", "a")]);
    let b = lbl(&[("__name__", "b")]);
    let mut app = h.appender();
    let ra = app.append(&a, 10_000, 1.0).unwrap();
    let rb = app.append(&b, 9_000, 1.0).unwrap();
    app.commit().unwrap();
    let mut app = h.appender();
    // Older than max_time - chunk_range/2: out of bounds, even for a fresh series.
    assert_eq!(app.append_ref(rb, 9_400, 1.0), Err(AppendError::TooOld { t: 9_400, min_valid_t: 9_500 }));
    // Within bounds but older than the series' last sample.
    app.append_ref(rb, 9_600, 1.0).unwrap();
    assert_eq!(app.append_ref(rb, 9_550, 1.0), Err(AppendError::OutOfOrder { t: 9_550, last_t: 9_600 }));
    // Same timestamp: identical is a silent no-op, different is an error.
    assert_eq!(app.append_ref(ra, 10_000, 1.0), Ok(()));
    assert_eq!(app.append_ref(ra, 10_000, 2.0), Err(AppendError::DuplicateTimestamp { t: 10_000 }));
    // NaN payloads compare by bits.
    app.append_ref(ra, 10_100, f64::NAN).unwrap();
    assert_eq!(app.append_ref(ra, 10_100, f64::NAN), Ok(()));
    assert_eq!(app.append_ref(ra, 10_100, stale_nan()), Err(AppendError::DuplicateTimestamp { t: 10_100 }));
    assert_eq!(app.len(), 2, "identical duplicates are not buffered");
    let st = app.commit().unwrap();
    assert_eq!(st.samples_applied, 2);
    let s = h.stats();
    assert_eq!((s.rejected_too_old, s.rejected_out_of_order, s.rejected_duplicate), (1, 1, 2));
    // Truncation raises the minimum valid time.
    h.truncate(9_900);
    let mut app = h.appender();
    let err = app.append_ref(ra, 9_800, 1.0);
    assert_eq!(err, Err(AppendError::TooOld { t: 9_800, min_valid_t: 9_900 }));
}

#[test]
fn batch_checks_see_earlier_samples_of_the_same_batch() {
    let h = head();
    let a = lbl(&[("__name__", "a")]);
    let mut app = h.appender();
    let r = app.append(&a, 100, 1.0).unwrap();
    assert_eq!(app.append_ref(r, 50, 1.0), Err(AppendError::OutOfOrder { t: 50, last_t: 100 }));
    assert_eq!(app.append_ref(r, 100, 2.0), Err(AppendError::DuplicateTimestamp { t: 100 }));
    assert_eq!(app.append_ref(r, 100, 1.0), Ok(()));
    app.commit().unwrap();
    assert_eq!(series_samples(&h, &a), vec![Sample::new(100, 1.0)]);
}

#[test]
fn racing_commits_drop_and_count_stale_samples() {
    let h = head();
    let a = lbl(&[("__name__", "a")]);
    let mut first = h.appender();
    let r = first.append(&a, 100, 1.0).unwrap();
    first.commit().unwrap();
    let mut slow = h.appender();
    slow.append_ref(r, 150, 1.0).unwrap();
    let mut fast = h.appender();
    fast.append_ref(r, 200, 1.0).unwrap();
    fast.commit().unwrap();
    let st = slow.commit().unwrap();
    assert_eq!((st.samples_applied, st.rejected_out_of_order), (0, 1));
    assert_eq!(series_samples(&h, &a), vec![Sample::new(100, 1.0), Sample::new(200, 1.0)]);
}

#[test]
fn ooo_window_accepts_late_samples_and_merges_them() {
    let h = head_with(|o| {
        o.ooo_window = 1000;
        o.chunk_range = 100_000;
    });
    let a = lbl(&[("__name__", "a")]);
    let mut app = h.appender();
    let r = app.append(&a, 10_000, 1.0).unwrap();
    app.append_ref(r, 10_100, 1.0).unwrap();
    app.commit().unwrap();
    let mut app = h.appender();
    // Late but within the window.
    app.append_ref(r, 9_500, 5.0).unwrap();
    app.append_ref(r, 9_200, 4.0).unwrap();
    app.append_ref(r, 10_050, 6.0).unwrap();
    // Duplicates of stored samples: identical is a no-op, different an error.
    assert_eq!(app.append_ref(r, 10_000, 1.0), Ok(()));
    assert_eq!(app.append_ref(r, 10_000, 2.0), Err(AppendError::DuplicateTimestamp { t: 10_000 }));
    // Older than max_time - window.
    assert_eq!(app.append_ref(r, 9_099, 1.0), Err(AppendError::TooOld { t: 9_099, min_valid_t: 9_100 }));
    let st = app.commit().unwrap();
    assert_eq!((st.samples_applied, st.out_of_order_applied), (3, 3));
    let ts: Vec<i64> = series_samples(&h, &a).iter().map(|s| s.t).collect();
    assert_eq!(ts, vec![9_200, 9_500, 10_000, 10_050, 10_100]);
    let sel = h.select(&[], 9_400, 9_600);
    assert_eq!(sel.len(), 1, "the OOO chunk overlaps the query");
    // Many OOO samples are compressed into OOO chunks (32 at a time).
    let mut app = h.appender();
    for t in (9_201..9_300).rev() {
        app.append_ref(r, t, t as f64).unwrap();
    }
    app.commit().unwrap();
    let got = series_samples(&h, &a);
    assert_eq!(got.len(), 104);
    assert!(got.windows(2).all(|w| w[0].t < w[1].t));
    assert_eq!(h.stats().out_of_order_samples_appended, 102);
    assert_eq!(h.samples_for_block(9_000, 10_101), vec![(a, got)]);
}

#[test]
fn rollback_leaves_nothing() {
    let h = head();
    let kept = lbl(&[("__name__", "kept")]);
    let mut app = h.appender();
    let rk = app.append(&kept, 100, 1.0).unwrap();
    app.commit().unwrap();
    let before = h.stats();
    let mut app = h.appender();
    app.append(&lbl(&[("__name__", "new"), ("x", "1")]), 200, 1.0).unwrap();
    app.append_ref(rk, 200, 2.0).unwrap();
    app.rollback();
    {
        // Dropping without commit is a rollback too.
        let mut app = h.appender();
        app.append(&lbl(&[("__name__", "new2")]), 200, 1.0).unwrap();
    }
    let after = h.stats();
    assert_eq!(
        (after.num_series, after.num_chunks, after.samples_appended, after.min_time, after.max_time),
        (before.num_series, before.num_chunks, before.samples_appended, before.min_time, before.max_time)
    );
    assert_eq!(h.label_names(&[], i64::MIN, i64::MAX), vec!["__name__"]);
    assert_eq!(h.label_values("__name__", &[], i64::MIN, i64::MAX), vec!["kept"]);
    assert_eq!(series_samples(&h, &kept), vec![Sample::new(100, 1.0)]);
    // The rolled-back series is created afresh with a new ref.
    let mut app = h.appender();
    app.append(&lbl(&[("__name__", "new")]), 300, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(h.stats().num_series, 2);
}

#[test]
fn commit_logs_series_then_samples_and_a_failed_log_applies_nothing() {
    let log = Arc::new(MemLog::default());
    let h = Head::new(HeadOptions { stripes: 16, ..HeadOptions::default() }, Some(log.clone()));
    let a = lbl(&[("__name__", "a")]);
    let mut app = h.appender();
    let r = app.append(&a, 100, 1.0).unwrap();
    app.commit().unwrap();
    let mut app = h.appender();
    app.append_ref(r, 200, 2.0).unwrap();
    app.commit().unwrap();
    {
        let recs = log.records.lock();
        assert_eq!(recs.len(), 3);
        assert!(matches!(&recs[0], Record::Series(s) if s.len() == 1 && s[0].series_ref == r && s[0].labels == a));
        assert_eq!(recs[1], Record::Samples(vec![RefSample { series_ref: r, t: 100, v: 1.0 }]));
        assert_eq!(recs[2], Record::Samples(vec![RefSample { series_ref: r, t: 200, v: 2.0 }]));
    }
    log.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut app = h.appender();
    app.append_ref(r, 300, 3.0).unwrap();
    app.append(&lbl(&[("__name__", "b")]), 300, 3.0).unwrap();
    assert!(app.commit().is_err());
    assert_eq!(h.stats().num_series, 1);
    assert_eq!(h.max_time(), 200);
    // Once the log works again the new series is logged before its samples.
    log.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut app = h.appender();
    app.append(&lbl(&[("__name__", "b")]), 300, 3.0).unwrap();
    app.commit().unwrap();
    assert!(matches!(&log.records.lock()[3], Record::Series(s) if s.len() == 1));
}

#[test]
fn replay_reproduces_committed_state_including_ooo() {
    let log = Arc::new(MemLog::default());
    let opts = HeadOptions { stripes: 16, ooo_window: 10_000, chunk_range: 50_000, ..HeadOptions::default() };
    let h = Head::new(opts, Some(log.clone()));
    let mut refs = Vec::new();
    for round in 0..5i64 {
        let mut app = h.appender();
        for s in 0..20 {
            let l = lbl(&[("__name__", "m"), ("s", &s.to_string())]);
            let base = round * 2_000;
            let r = app.append(&l, base + 1_500, s as f64).unwrap();
            refs.push(r);
            for k in 0..30 {
                // Mixed: forward steps and late (OOO) samples.
                let t = if k % 3 == 0 { base - k * 7 } else { base + 1_500 + k * 10 };
                let _ = app.append_ref(r, t, (k * s) as f64);
            }
        }
        app.commit().unwrap();
    }
    let records = log.records.lock().clone();
    let h2 = Head::new(opts, None);
    replay_into(&h2, &records);
    assert_eq!(h2.samples_for_block(i64::MIN, i64::MAX), h.samples_for_block(i64::MIN, i64::MAX));
    assert_eq!((h2.min_time(), h2.max_time()), (h.min_time(), h.max_time()));
    let (s1, s2) = (h.stats(), h2.stats());
    assert_eq!((s1.num_series, s1.num_chunks), (s2.num_series, s2.num_chunks));
    assert!(s1.out_of_order_samples_appended > 0);
    // New refs continue after the replayed ones; unknown refs are counted.
    let mut app = h2.appender();
    let r = app.append(&lbl(&[("__name__", "fresh")]), 20_000, 1.0).unwrap();
    assert!(r > *refs.iter().max().unwrap());
    app.commit().unwrap();
    h2.replay_samples(&[RefSample { series_ref: 999_999, t: 1, v: 1.0 }]);
    assert_eq!(h2.stats().replay_unknown_refs, 1);
    // A duplicate series record becomes an alias of the first ref.
    h2.replay_series(5_000_000, lbl(&[("__name__", "fresh")]));
    h2.replay_samples(&[RefSample { series_ref: 5_000_000, t: 20_001, v: 2.0 }]);
    assert_eq!(series_samples(&h2, &lbl(&[("__name__", "fresh")])).len(), 2);
    assert!(h2.is_live(5_000_000));
}

#[test]
fn truncate_drops_old_data_and_empty_series() {
    let h = head_with(|o| o.chunk_range = 1000);
    let old = lbl(&[("__name__", "old")]);
    let new = lbl(&[("__name__", "new")]);
    let mut app = h.appender();
    let ro = app.append(&old, 100, 1.0).unwrap();
    let rn = app.append(&new, 100, 1.0).unwrap();
    for t in (200..=1_400).step_by(100) {
        app.append_ref(rn, t, t as f64).unwrap();
    }
    app.commit().unwrap();
    // A series in use by an open appender survives even without samples.
    let mut pending = h.appender();
    let rp = pending.append(&lbl(&[("__name__", "pending")]), 1_450, 1.0).unwrap();
    let dropped = h.truncate(1_050);
    assert_eq!(dropped, vec![ro]);
    assert!(!h.is_live(ro) && h.is_live(rn) && h.is_live(rp));
    // The straddling chunk was re-encoded: nothing below 1050 remains.
    let ts: Vec<i64> = series_samples(&h, &new).iter().map(|s| s.t).collect();
    assert_eq!(ts, vec![1_100, 1_200, 1_300, 1_400]);
    assert_eq!((h.min_time(), h.max_time()), (1_100, 1_400));
    // Over the whole head range the index answers, and it already lists the
    // series the open appender created; a narrower range checks the data.
    assert_eq!(h.label_values("__name__", &[], 0, 2_000), vec!["new", "pending"]);
    assert_eq!(h.label_values("__name__", &[], 1_200, 2_000), vec!["new"]);
    assert_eq!(h.select(&[Matcher::equal("__name__", "old")], i64::MIN, i64::MAX).len(), 0);
    assert_eq!(h.stats().num_series, 2);
    let mut app = h.appender();
    assert_eq!(app.append_ref(ro, 2_000, 1.0), Err(AppendError::UnknownSeriesRef(ro)));
    drop(app);
    pending.commit().unwrap();
    assert_eq!(h.truncate(5_000).len(), 2);
    assert_eq!(h.stats().num_series, 0);
    assert_eq!((h.min_time(), h.max_time()), (i64::MAX, i64::MIN));
}

#[test]
fn samples_for_block_merges_sorts_and_bounds() {
    let h = head_with(|o| o.ooo_window = 10_000);
    let b = lbl(&[("__name__", "b")]);
    let a = lbl(&[("__name__", "a")]);
    let mut app = h.appender();
    let rb = app.append(&b, 1_000, 1.0).unwrap();
    app.append_ref(rb, 2_000, 2.0).unwrap();
    app.append(&a, 3_000, 3.0).unwrap();
    app.commit().unwrap();
    let mut app = h.appender();
    app.append_ref(rb, 1_500, 1.5).unwrap();
    app.commit().unwrap();
    let streamed = |lo, hi| {
        let all = h.series_for_block(lo, hi).collect::<Result<Vec<_>, _>>().unwrap();
        all.into_iter().map(|s| (s.labels, s.floats)).collect::<Vec<_>>()
    };
    assert_eq!(streamed(1_000, 3_000), h.samples_for_block(1_000, 3_000));
    assert_eq!(streamed(0, 10_000), h.samples_for_block(0, 10_000));
    assert_eq!(h.series_for_block(4_000, 5_000).count(), 0);
    let got = h.samples_for_block(1_000, 3_000);
    assert_eq!(got, vec![(b.clone(), vec![Sample::new(1_000, 1.0), Sample::new(1_500, 1.5), Sample::new(2_000, 2.0)])]);
    let all = h.samples_for_block(0, 10_000);
    assert_eq!(all.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>(), vec![a, b]);
    assert!(h.samples_for_block(4_000, 5_000).is_empty());
}

#[test]
fn concurrent_appends_and_selects_lose_nothing() {
    let h = Head::new(HeadOptions { stripes: 8, ..HeadOptions::default() }, None);
    let threads = 3;
    let per = 40;
    let samples = 300;
    std::thread::scope(|sc| {
        for th in 0..threads {
            let h = &h;
            sc.spawn(move || {
                let mut refs = Vec::new();
                for i in 0..per {
                    let mut app = h.appender();
                    // Every thread also writes to a shared series set.
                    let l = lbl(&[("__name__", "m"), ("t", &th.to_string()), ("i", &i.to_string())]);
                    refs.push(app.append(&l, 0, 0.0).unwrap());
                    app.commit().unwrap();
                }
                for t in 1..samples {
                    let mut app = h.appender();
                    for &r in &refs {
                        app.append_ref(r, t * 1000, t as f64).unwrap();
                    }
                    app.commit().unwrap();
                }
            });
        }
        sc.spawn(|| {
            for _ in 0..50 {
                for s in h.select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX) {
                    let got = merged(&s);
                    // Every snapshot is a gap-free prefix.
                    assert!(got.iter().enumerate().all(|(i, x)| x.t == i as i64 * 1000));
                }
            }
        });
    });
    let sel = h.select(&[], i64::MIN, i64::MAX);
    assert_eq!(sel.len(), threads * per);
    for s in &sel {
        assert_eq!(merged(s).len(), samples as usize);
    }
    assert_eq!(h.stats().samples_appended, (threads * per) as u64 * samples as u64);
}

#[test]
fn selects_holding_the_symbol_table_run_beside_series_creation_and_removal() {
    // A select holds the symbol table's read lock over runs of series and
    // only tries their shard locks, while appenders hold a shard and wait
    // to add symbols, and truncation removes series and their symbols: all
    // of them finish, and every selection is the series that existed.
    let h = head_with(|o| o.stripes = 4);
    let base = 20_000;
    {
        let mut app = h.appender();
        for i in 0..base {
            app.append(&lbl(&[("__name__", "m"), ("i", &i.to_string())]), 1_000_000, 1.0).unwrap();
        }
        app.commit().unwrap();
    }
    std::thread::scope(|sc| {
        for th in 0..2 {
            let h = &h;
            sc.spawn(move || {
                for round in 0..20 {
                    let mut app = h.appender();
                    for i in 0..200 {
                        let l = lbl(&[("__name__", "other"), ("t", &th.to_string()), ("i", &format!("{round}-{i}"))]);
                        // Refused once the other thread truncated past it:
                        // the series is created all the same.
                        let _ = app.append(&l, 1_000 * (round + 1), 1.0);
                    }
                    app.commit().unwrap();
                    if round % 5 == 4 {
                        h.truncate(1_000 * (round - 1));
                    }
                }
            });
        }
        for _ in 0..2 {
            let h = &h;
            sc.spawn(move || {
                for _ in 0..6 {
                    let sel = h.select(&[Matcher::equal("__name__", "m")], 0, 2_000_000);
                    assert_eq!(sel.len(), base);
                    assert!(sel.windows(2).all(|w| w[0].labels < w[1].labels));
                }
            });
        }
    });
}

#[test]
fn concurrent_creation_of_the_same_series_yields_one_ref() {
    let h = Head::new(HeadOptions { stripes: 4, ..HeadOptions::default() }, None);
    let refs: Vec<Vec<u64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                sc.spawn(|| {
                    (0..200)
                        .map(|i| {
                            let mut app = h.appender();
                            let r = app.append(&lbl(&[("__name__", "x"), ("i", &i.to_string())]), 5, 1.0).unwrap();
                            app.commit().unwrap();
                            r
                        })
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    assert_eq!(refs[0], refs[1]);
    assert_eq!(refs[1], refs[2]);
    assert_eq!(h.stats().num_series, 200);
}

#[derive(Debug, Clone)]
enum Op {
    Append { series: u8, dt: i64, v: u8 },
    Commit,
    Rollback,
    Truncate { back: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..4, -60i64..60, 0u8..3).prop_map(|(series, dt, v)| Op::Append { series, dt, v }),
        2 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => (0i64..100).prop_map(|back| Op::Truncate { back }),
    ]
}

/// The reference model: per series, the committed samples by time, plus
/// the appender's logic written the naive way.
#[derive(Default, Clone)]
struct Model {
    series: BTreeMap<u8, BTreeMap<i64, u64>>,
    in_order_last: BTreeMap<u8, i64>,
    min_valid: i64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn head_matches_a_btreemap_model(ops in proptest::collection::vec(op(), 1..120), ooo in any::<bool>()) {
        let window = if ooo { 50 } else { 0 };
        let h = head_with(|o| { o.chunk_range = 200; o.samples_per_chunk = 8; o.ooo_window = window; });
        let labels: Vec<Labels> = (0..4).map(|i| lbl(&[("__name__", "m"), ("s", &i.to_string())])).collect();
        let mut model = Model { min_valid: i64::MIN, ..Model::default() };
        let mut app = Some(h.appender());
        let mut pending: Vec<(u8, i64, u64, bool)> = Vec::new();
        let mut batch_last: BTreeMap<u8, (i64, u64)> = BTreeMap::new();
        let mut clock = 1_000i64;
        for o in ops {
            match o {
                Op::Append { series, dt, v } => {
                    clock += 3;
                    let t = clock + dt;
                    let v = f64::from(v);
                    let res = app.as_mut().unwrap().append(&labels[series as usize], t, v);
                    // Model: committed head max and the series' last sample.
                    let head_max = model.series.values().flat_map(|m| m.keys().next_back()).max().copied();
                    let committed_last = model.in_order_last.get(&series).map(|&lt| (lt, model.series[&series][&lt]));
                    let last = match (batch_last.get(&series).copied(), committed_last) {
                        (Some(b), Some(c)) => Some(if c.0 > b.0 { c } else { b }),
                        (b, c) => b.or(c),
                    };
                    let stored = model.series.get(&series).and_then(|m| m.get(&t)).copied();
                    let vb = v.to_bits();
                    let cw = head_max.map_or(i64::MIN, |m| m - 100).max(model.min_valid);
                    let expect: Result<Option<bool>, ()> = if t < model.min_valid {
                        Err(())
                    } else if t >= cw && last.is_none_or(|l| t > l.0) {
                        Ok(Some(true))
                    } else if t >= cw && last.is_some_and(|l| t == l.0) {
                        if last.unwrap().1 == vb { Ok(None) } else { Err(()) }
                    } else if window > 0 && t >= head_max.map_or(i64::MIN, |m| m - window) {
                        match last {
                            Some(l) if t == l.0 => if l.1 == vb { Ok(None) } else { Err(()) },
                            Some(l) if t < l.0 => match stored {
                                Some(s) if s == vb => Ok(None),
                                Some(_) => Err(()),
                                None => Ok(Some(false)),
                            },
                            _ => Ok(Some(true)),
                        }
                    } else {
                        Err(())
                    };
                    match expect {
                        Ok(Some(in_order)) => {
                            prop_assert!(res.is_ok(), "t={} res={:?}", t, res);
                            pending.push((series, t, vb, in_order));
                            if in_order { batch_last.insert(series, (t, vb)); }
                        }
                        Ok(None) => prop_assert!(res.is_ok(), "identical t={} res={:?}", t, res),
                        Err(()) => prop_assert!(res.is_err(), "t={} expected an error, got {:?}", t, res),
                    }
                }
                Op::Commit => {
                    app.take().unwrap().commit().unwrap();
                    // Apply in order with the per-series rule.
                    for (s, t, vb, _) in pending.drain(..) {
                        if t < model.min_valid { continue; }
                        let last = model.in_order_last.get(&s).copied();
                        let m = model.series.entry(s).or_default();
                        match last {
                            Some(lt) if t == lt => {}
                            Some(lt) if t < lt => {
                                if window > 0 { m.entry(t).or_insert(vb); }
                            }
                            _ => { m.insert(t, vb); model.in_order_last.insert(s, t); }
                        }
                    }
                    batch_last.clear();
                    app = Some(h.appender());
                }
                Op::Rollback => {
                    app.take().unwrap().rollback();
                    pending.clear();
                    batch_last.clear();
                    app = Some(h.appender());
                }
                Op::Truncate { back } => {
                    let mint = clock - back;
                    h.truncate(mint);
                    model.min_valid = model.min_valid.max(mint);
                    for (s, m) in model.series.iter_mut() {
                        *m = m.split_off(&mint);
                        if m.is_empty() { model.in_order_last.remove(s); }
                    }
                    model.series.retain(|_, m| !m.is_empty());
                }
            }
        }
        drop(app);
        let got: BTreeMap<String, Vec<(i64, u64)>> = h
            .samples_for_block(i64::MIN, i64::MAX)
            .into_iter()
            .map(|(l, s)| (l.get("s").unwrap().to_string(), s.iter().map(|x| (x.t, x.v.to_bits())).collect()))
            .collect();
        let want: BTreeMap<String, Vec<(i64, u64)>> = model
            .series
            .iter()
            .map(|(s, m)| (s.to_string(), m.iter().map(|(&t, &v)| (t, v)).collect()))
            .collect();
        prop_assert_eq!(&got, &want);
        // select agrees with samples_for_block.
        for cs in h.select(&[], i64::MIN, i64::MAX) {
            let s = cs.labels.get("s").unwrap().to_string();
            let m: Vec<(i64, u64)> = merged(&cs).iter().map(|x| (x.t, x.v.to_bits())).collect();
            prop_assert_eq!(Some(&m), want.get(&s));
        }
    }
}

#[test]
fn truncation_concurrent_with_appends_keeps_everything_newer() {
    let h = Head::new(HeadOptions { stripes: 8, chunk_range: 50_000, ..HeadOptions::default() }, None);
    let n = 20;
    let steps = 1500i64;
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut refs = Vec::new();
            let mut app = h.appender();
            for i in 0..n {
                refs.push(app.append(&lbl(&[("__name__", "m"), ("i", &i.to_string())]), 1000, 0.0).unwrap());
            }
            app.commit().unwrap();
            for t in 2..=steps {
                let mut app = h.appender();
                for &r in &refs {
                    app.append_ref(r, t * 1000, t as f64).unwrap();
                }
                let st = app.commit().unwrap();
                assert_eq!(st.samples_applied, n as u64, "nothing newer than the cut is dropped");
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        sc.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let max = h.max_time();
                if max > 20_000 {
                    assert!(h.truncate(max - 20_000).is_empty(), "no series becomes empty");
                }
                std::thread::yield_now();
            }
        });
    });
    let cut = h.min_valid_time().max(1000);
    let want: Vec<i64> = (1..=steps).map(|t| t * 1000).filter(|&t| t >= cut).collect();
    let sel = h.select(&[], i64::MIN, i64::MAX);
    assert_eq!(sel.len(), n);
    for s in &sel {
        let ts: Vec<i64> = merged(s).iter().map(|x| x.t).collect();
        assert_eq!(ts, want);
    }
}

#[test]
fn symbol_table_shrinks_when_truncation_drops_series() {
    let h = head();
    let mut app = h.appender();
    for i in 0..200 {
        let l = lbl(&[("__name__", "up"), ("job", "api"), ("pod", &format!("pod-{i}"))]);
        // The first 50 series get a late sample, so they survive truncation.
        app.append(&l, 1_000, 1.0).unwrap();
        if i < 50 {
            app.append(&l, 100_000, 2.0).unwrap();
        }
    }
    app.commit().unwrap();
    assert_eq!(h.memory_breakdown().symbols, 5 + 200);
    let before = h.memory_breakdown().symbol_table;
    assert_eq!(h.truncate(50_000).len(), 150);
    let m = h.memory_breakdown();
    assert_eq!(m.symbols, 5 + 50, "the dropped pods' values are freed");
    assert!(m.symbol_table < before);
    // The survivors read back exactly, and a dropped label set can come back.
    for i in 0..50 {
        let l = lbl(&[("__name__", "up"), ("job", "api"), ("pod", &format!("pod-{i}"))]);
        assert_eq!(series_samples(&h, &l), vec![Sample::new(100_000, 2.0)]);
    }
    let back = lbl(&[("__name__", "up"), ("job", "api"), ("pod", "pod-199")]);
    let mut app = h.appender();
    app.append(&back, 200_000, 3.0).unwrap();
    app.commit().unwrap();
    assert_eq!(series_samples(&h, &back), vec![Sample::new(200_000, 3.0)]);
    let sel = h.select(&[Matcher::equal("job", "api")], 0, i64::MAX);
    assert_eq!(sel.len(), 51);
    assert!(sel.windows(2).all(|w| w[0].labels < w[1].labels), "sorted by labels");
}

#[test]
fn a_handle_reaches_its_series_until_series_are_removed() {
    let h = Head::new(HeadOptions { stripes: 4, ..HeadOptions::default() }, None);
    let mut app = h.appender();
    let a = app.append(&lbl(&[("__name__", "a")]), 1_000, 1.0).unwrap();
    let b = app.append(&lbl(&[("__name__", "b")]), 100_000, 1.0).unwrap();
    app.commit().unwrap();
    let mut app = h.appender();
    let (mut ha, mut hb) = (app.handle(a).unwrap(), app.handle(b).unwrap());
    assert_eq!((ha.series_ref(), hb.series_ref()), (a, b));
    assert!(app.handle(999).is_none());
    // Nothing removed: the handle is used as it is.
    let before = hb;
    app.append_handle(&mut hb, 101_000, 2.0).unwrap();
    assert_eq!(hb, before);
    app.commit().unwrap();
    // Truncation removes `a`: its handle reports it gone; `b`'s is
    // refreshed (the epoch moved) and still reaches `b`.
    assert_eq!(h.truncate(50_000), vec![a]);
    let mut app = h.appender();
    assert!(matches!(app.append_handle(&mut ha, 60_000, 1.0), Err(AppendError::UnknownSeriesRef(r)) if r == a));
    app.append_handle(&mut hb, 102_000, 3.0).unwrap();
    assert_ne!(hb, before);
    assert_eq!(hb.series_ref(), b);
    let refreshed = hb;
    app.append_handle(&mut hb, 103_000, 4.0).unwrap();
    assert_eq!(hb, refreshed);
    app.commit().unwrap();
    let sel = h.select(&[Matcher::equal("__name__", "b")], i64::MIN, i64::MAX);
    let ts: Vec<i64> = merged(&sel[0]).iter().map(|x| x.t).collect();
    assert_eq!(ts, vec![100_000, 101_000, 102_000, 103_000]);
    // A handle of another head never passes its epoch check: there it is
    // only a ref (unknown here).
    let other = Head::new(HeadOptions::default(), None);
    let mut app = other.appender();
    assert!(matches!(app.append_handle(&mut hb, 104_000, 1.0), Err(AppendError::UnknownSeriesRef(_))));
}

/// Handles kept across commits while truncation removes series that went
/// quiet: every append through a handle either reaches its series (the
/// `cfg(test)` assertions in `append_handle` and `apply` check the address
/// against the map) or reports it gone, never another series.
#[test]
fn handles_stay_sound_under_concurrent_removal() {
    let h = Head::new(HeadOptions { stripes: 8, chunk_range: 50_000, ..HeadOptions::default() }, None);
    let n = 24;
    let steps = 1200i64;
    let done = std::sync::atomic::AtomicBool::new(false);
    let applied = std::thread::scope(|sc| {
        let writer = sc.spawn(|| {
            let labels: Vec<Labels> = (0..n).map(|i| lbl(&[("__name__", "m"), ("i", &i.to_string())])).collect();
            let mut handles: Vec<Option<SeriesHandle>> = vec![None; n];
            let (mut applied, mut gone) = (0u64, 0u64);
            for t in 1..=steps {
                let mut app = h.appender();
                for (i, slot) in handles.iter_mut().enumerate() {
                    // Each series goes quiet for 60 steps in turn, long
                    // enough for truncation to remove it.
                    if (t / 60 + i as i64) % 3 == 0 {
                        continue;
                    }
                    let res = match slot {
                        Some(hd) => app.append_handle(hd, t * 1000, t as f64),
                        None => Err(AppendError::UnknownSeriesRef(0)),
                    };
                    match res {
                        Ok(()) => {}
                        Err(AppendError::UnknownSeriesRef(_)) => {
                            gone += u64::from(slot.is_some());
                            let r = app.append(&labels[i], t * 1000, t as f64).unwrap();
                            *slot = app.handle(r);
                        }
                        Err(AppendError::TooOld { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                applied += app.commit().unwrap().samples_applied;
                // Removals also happen here, whatever the scheduling.
                if t % 50 == 0 {
                    h.truncate(t * 1000 - 20_000);
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            assert!(gone > 0, "truncation removed series under live handles");
            applied
        });
        sc.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let max = h.max_time();
                if max > 20_000 {
                    h.truncate(max - 20_000);
                }
                std::thread::yield_now();
            }
        });
        writer.join().unwrap()
    });
    assert_eq!(h.stats().samples_appended, applied);
}

#[test]
fn open_chunk_copies_share_one_buffer_per_run_and_read_back_exactly() {
    // More series than one run of the select (`SELECT_SYMBOLS_RUN`), with
    // open chunks of every length (some with closed chunks before them),
    // every seventh series with out-of-order data (its open chunk is copied
    // on its own and sorted in with the out-of-order chunks).
    let h = head_with(|o| o.ooo_window = 1_000_000);
    let n = 1_000usize;
    let mut app = h.appender();
    for i in 0..n {
        let l = lbl(&[("__name__", "m"), ("i", &format!("{i:04}"))]);
        let samples = 1 + (i * 37) % 300;
        let r = app.append(&l, 0, i as f64).unwrap();
        for k in 1..samples as i64 {
            app.append_ref(r, k * 15_000, (i as f64) * 0.5 + (k * k) as f64 * 0.25).unwrap();
        }
        if i % 7 == 0 && samples > 1 {
            // Late: between the last two samples.
            app.append_ref(r, (samples as i64 - 1) * 15_000 - 7_000, -1.5).unwrap();
        }
    }
    app.commit().unwrap();
    let ms = [Matcher::equal("__name__", "m")];
    for (mint, maxt) in [(i64::MIN, i64::MAX), (0, 15_000), (1_000_000, 2_000_000), (3_000_000, 4_000_000)] {
        let refs = h.series_refs(&ms);
        let mut warnings = Vec::new();
        let got = h.select_refs(&refs, mint, maxt, true, &mut warnings);
        assert!(warnings.is_empty());
        // The model: every sample in range, read by another path.
        let upper = if maxt == i64::MAX { maxt } else { maxt + 1 };
        let want: BTreeMap<Labels, Vec<Sample>> = h.samples_for_block(mint, upper).into_iter().collect();
        let mut seen = 0;
        let mut buffers = std::collections::HashSet::new();
        for cs in &got {
            assert!(cs.chunks.windows(2).all(|w| w[0].mint <= w[1].mint), "chunks sorted by mint");
            let in_range: Vec<Sample> = merged(cs).into_iter().filter(|s| mint <= s.t && s.t <= maxt).collect();
            let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            if let Some(w) = want.get(&cs.labels) {
                assert_eq!(bits(&in_range), bits(w), "{}", cs.labels);
                seen += 1;
            } else {
                assert!(in_range.is_empty(), "{}", cs.labels);
            }
            for c in &cs.chunks {
                if let ChunkBytes::Shared { buf, start, len } = &c.bytes {
                    assert_eq!(c.bytes.as_ref().len(), *len as usize);
                    assert!((*start + *len) as usize <= buf.len());
                    buffers.insert(Arc::as_ptr(buf) as *const u8 as usize);
                }
            }
        }
        assert_eq!(seen, want.len());
        if mint == i64::MIN {
            // Every series has an open chunk in range; those without
            // out-of-order data share a buffer with their run.
            assert!(!buffers.is_empty() && buffers.len() >= n.div_ceil(SELECT_SYMBOLS_RUN));
            assert!(buffers.len() < n / 10, "{} buffers", buffers.len());
        }
    }
}

#[test]
fn select_windows_reads_exactly_the_samples_the_select_gives() {
    // Series over several runs of the select, open chunks of every length
    // (some with closed chunks before them, sealed in the chunk store),
    // staleness markers, every seventh series with out-of-order data (read
    // through the merging iterator), windows on and beside chunk edges.
    let h = head_with(|o| o.ooo_window = 1_000_000);
    let n = 700usize;
    let mut app = h.appender();
    for i in 0..n {
        let l = lbl(&[("__name__", "m"), ("i", &format!("{i:04}"))]);
        let samples = 1 + (i * 37) % 400;
        let r = app.append(&l, 0, i as f64).unwrap();
        for k in 1..samples as i64 {
            let v = if k % 29 == 0 { stale_nan() } else { (i as f64) * 0.5 + (k * k) as f64 * 0.25 };
            app.append_ref(r, k * 15_000, v).unwrap();
        }
        if i % 7 == 0 && samples > 3 {
            app.append_ref(r, (samples as i64 - 1) * 15_000 - 7_000, -1.5).unwrap();
            app.append_ref(r, 15_003, 99.0).unwrap();
        }
    }
    app.commit().unwrap();
    let ms = [Matcher::equal("__name__", "m")];
    let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
    let ranges =
        [(i64::MIN, i64::MAX), (0, 15_000), (1_785_000, 1_800_000), (1_799_999, 1_800_001), (3_000_001, 4_000_000)];
    for (mint, maxt) in ranges {
        // The function hands back a digest of the window it was given:
        // every sample's time and value bits hashed, and its length.
        let digest = |s: &[Sample]| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bits(s).hash(&mut h);
            Sample { t: h.finish() as i64, v: s.len() as f64 }
        };
        let f = |s: &[Sample]| Some(digest(s));
        let mut warnings = Vec::new();
        let (got, read) = h.select_windows(&ms, mint, maxt, &f, &mut warnings);
        assert!(warnings.is_empty());
        let want: Vec<(Labels, Vec<Sample>)> = h
            .select(&ms, mint, maxt)
            .iter()
            .map(|cs| (cs.labels.clone(), merged(cs).into_iter().filter(|s| mint <= s.t && s.t <= maxt).collect()))
            .filter(|(_, s): &(Labels, Vec<Sample>)| !s.is_empty())
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{mint}..{maxt}");
        assert_eq!(read, want.iter().map(|w| w.1.len()).sum::<usize>());
        for ((gl, gp), (wl, ws)) in got.iter().zip(&want) {
            assert_eq!(gl, wl);
            let d = digest(ws);
            assert_eq!((gp.t, gp.v.to_bits()), (d.t, d.v.to_bits()), "{gl} {mint}..{maxt}");
        }
    }
}

/// A log whose commits are logged only when the test releases their
/// tickets, in any order: it lets later commits finish logging first.
#[derive(Default)]
struct GatedLog {
    records: parking_lot::Mutex<Vec<Record>>,
    released: parking_lot::Mutex<std::collections::HashSet<u64>>,
    changed: parking_lot::Condvar,
}

impl GatedLog {
    fn release(&self, ticket: u64) {
        self.released.lock().insert(ticket);
        self.changed.notify_all();
    }

    /// Waits until `n` commits have queued their records.
    fn wait_queued(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.queued() < n {
            assert!(std::time::Instant::now() < deadline, "a commit never queued");
            std::thread::yield_now();
        }
    }

    fn queued(&self) -> usize {
        self.records.lock().iter().filter(|r| matches!(r, Record::Samples(_))).count()
    }
}

impl CommitLog for GatedLog {
    fn log(&self, records: &[Record]) -> Result<(), crate::Error> {
        self.records.lock().extend_from_slice(records);
        Ok(())
    }

    fn submit(&self, records: &[Record], _durable: bool) -> Result<Option<crate::wal::WalTicket>, crate::Error> {
        let mut all = self.records.lock();
        let ticket = all.iter().filter(|r| matches!(r, Record::Samples(_))).count() as u64;
        all.extend_from_slice(records);
        Ok(Some(crate::wal::WalTicket::for_tests(ticket)))
    }

    fn wait(&self, ticket: crate::wal::WalTicket) -> Result<(), crate::Error> {
        let mut released = self.released.lock();
        while !released.contains(&ticket.for_tests_seq()) {
            self.changed.wait(&mut released);
        }
        Ok(())
    }
}

/// Commits to disjoint series apply as soon as they are logged, in any
/// order; commits to one series apply in log order even when the later
/// one is logged first, so the head keeps what replay keeps.
#[test]
fn commits_apply_in_log_order_per_series_only() {
    use std::sync::mpsc;
    use std::time::Duration;
    let log = Arc::new(GatedLog::default());
    let h = Arc::new(Head::new(HeadOptions { stripes: 4, ..HeadOptions::default() }, Some(log.clone())));
    let commit = |name: &'static str, t: i64, v: f64| {
        let (tx, rx) = mpsc::channel();
        let h = Arc::clone(&h);
        std::thread::spawn(move || {
            let mut app = h.appender();
            app.append(&lbl(&[("__name__", name)]), t, v).unwrap();
            tx.send(app.commit().unwrap()).unwrap();
        });
        rx
    };
    let wait = Duration::from_secs(10);
    // Tickets 0 (x) and 1 (y): y's log write finishes first and y applies
    // without waiting for x.
    let x = commit("x", 1_000, 1.0);
    log.wait_queued(1);
    let y = commit("y", 1_000, 1.0);
    log.wait_queued(2);
    log.release(1);
    assert_eq!(y.recv_timeout(wait).expect("y waited for x").samples_applied, 1);
    assert!(x.try_recv().is_err(), "x applied before it was logged");
    log.release(0);
    assert_eq!(x.recv_timeout(wait).unwrap().samples_applied, 1);
    // Series z exists; tickets 2 and 3 both write z at t=2000 with
    // different values. Ticket 3 is logged first but must wait for 2.
    let z0 = commit("z", 1_000, 0.0);
    log.wait_queued(3);
    log.release(2);
    z0.recv_timeout(wait).unwrap();
    let (tx, first) = mpsc::channel();
    let (tx2, second) = mpsc::channel();
    let (h1, h2) = (Arc::clone(&h), Arc::clone(&h));
    // Both appenders buffer before either commits: neither sees the
    // other's sample yet.
    let (ready_tx, ready) = mpsc::channel();
    let (go1_tx, go1) = mpsc::channel::<()>();
    let (go2_tx, go2) = mpsc::channel::<()>();
    let r1 = ready_tx.clone();
    std::thread::spawn(move || {
        let mut app = h1.appender();
        app.append(&lbl(&[("__name__", "z")]), 2_000, 1.0).unwrap();
        r1.send(()).unwrap();
        go1.recv().unwrap();
        tx.send(app.commit().unwrap()).unwrap();
    });
    std::thread::spawn(move || {
        let mut app = h2.appender();
        app.append(&lbl(&[("__name__", "z")]), 2_000, 2.0).unwrap();
        ready_tx.send(()).unwrap();
        go2.recv().unwrap();
        tx2.send(app.commit().unwrap()).unwrap();
    });
    ready.recv_timeout(wait).unwrap();
    ready.recv_timeout(wait).unwrap();
    go1_tx.send(()).unwrap();
    log.wait_queued(4);
    go2_tx.send(()).unwrap();
    log.wait_queued(5);
    log.release(4);
    std::thread::sleep(Duration::from_millis(100));
    assert!(second.try_recv().is_err(), "the later commit to z applied before the earlier one");
    log.release(3);
    let (a, b) = (first.recv_timeout(wait).unwrap(), second.recv_timeout(wait).unwrap());
    assert_eq!((a.samples_applied, b.samples_applied, b.rejected_duplicate), (1, 0, 1));
    let z = lbl(&[("__name__", "z")]);
    assert_eq!(series_samples(&h, &z), vec![Sample::new(1_000, 0.0), Sample::new(2_000, 1.0)]);
    // Replaying the log keeps exactly the same samples.
    let replayed = Head::new(HeadOptions { stripes: 4, ..HeadOptions::default() }, None);
    replay_into(&replayed, &log.records.lock().clone());
    assert_eq!(replayed.samples_for_block(i64::MIN, i64::MAX), h.samples_for_block(i64::MIN, i64::MAX));
}

//! End-to-end behaviour of the `Db` facade: lifecycle, persistence,
//! retention, snapshots, quarantine and concurrency.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidemark_storage::{AppendError, Db, Error, LabelError, Labels, MatchOp, Matcher, NameValidation, Sample};

const MIN: i64 = 60_000;

fn series(i: usize) -> Labels {
    Labels::new([("__name__", "req_total"), ("instance", &format!("host-{i}")), ("job", "api")]).unwrap()
}

fn builder(dir: &Path) -> tidemark_storage::DbBuilder {
    Db::builder(dir).block_range(10 * MIN).maintenance_interval(None)
}

/// Appends `n_series` series at every `step` in `[from, to)`, value = t.
fn fill(db: &Db, n_series: usize, from: i64, to: i64, step: i64) {
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for i in 0..n_series {
            app.append(&series(i), t, t as f64).unwrap();
        }
        app.commit().unwrap();
        t += step;
    }
}

fn all(db: &Db, mint: i64, maxt: i64) -> Vec<(Labels, Vec<Sample>)> {
    db.querier(mint, maxt)
        .select(&[Matcher::equal("__name__", "req_total")])
        .unwrap()
        .into_iter()
        .map(|s| (s.labels().clone(), s.samples().unwrap()))
        .collect()
}

fn count(db: &Db) -> usize {
    all(db, i64::MIN, i64::MAX).iter().map(|(_, s)| s.len()).sum()
}

#[test]
fn a_locked_directory_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).open().unwrap();
    assert!(matches!(builder(dir.path()).open(), Err(Error::Locked(_))));
    db.close().unwrap();
    let again = builder(dir.path()).open().unwrap();
    again.close().unwrap();
}

#[test]
fn reopen_restores_committed_samples_but_not_rolled_back_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = builder(dir.path()).open().unwrap();
        fill(&db, 5, 0, 10 * 15_000, 15_000);
        let mut app = db.appender();
        app.append(&series(99), 1_000_000, 1.0).unwrap();
        app.rollback();
        db.close().unwrap();
    }
    let db = builder(dir.path()).open().unwrap();
    let got = all(&db, i64::MIN, i64::MAX);
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|(_, s)| s.len() == 10));
    assert_eq!(got[0].1[3], Sample::new(45_000, 45_000.0));
}

#[test]
fn data_moves_from_head_to_blocks_and_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).open().unwrap();
    fill(&db, 20, 0, 60 * MIN, 15_000);
    let before = all(&db, i64::MIN, i64::MAX);
    assert!(db.persist_head().unwrap() >= 4, "complete ranges are persisted");
    assert!(!db.blocks().is_empty());
    assert_eq!(all(&db, i64::MIN, i64::MAX), before, "same answer from blocks + head");
    // Partial ranges straddling block and head.
    let cut = all(&db, 7 * MIN + 1, 33 * MIN - 1);
    for (_, s) in &cut {
        assert_eq!(s.first().unwrap().t, 7 * MIN + 15_000);
        assert_eq!(s.last().unwrap().t, 33 * MIN - 15_000);
    }
    db.compact().unwrap();
    assert!(db.stats().compactions > 0);
    assert_eq!(all(&db, i64::MIN, i64::MAX), before, "same answer after compaction");
    db.close().unwrap();
    let db = builder(dir.path()).open().unwrap();
    assert_eq!(all(&db, i64::MIN, i64::MAX), before, "same answer after reopen");
}

#[test]
fn wal_stays_bounded_as_the_head_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).wal_segment_size(64 << 10).open().unwrap();
    let mut peak = 0;
    for hour in 0..6 {
        fill(&db, 50, hour * 60 * MIN, (hour + 1) * 60 * MIN, 15_000);
        db.maintain().unwrap();
        peak = peak.max(db.stats().wal_bytes);
    }
    let st = db.stats();
    assert!(st.head_persists >= 30, "{st:?}");
    // Six hours of data went through the WAL; at most ~1.5 block ranges
    // (15 of 360 minutes) may remain in it.
    let all_samples = 50 * 6 * 240;
    assert!(st.wal_bytes < peak * 2 / 3 || st.wal_bytes < (all_samples as u64) * 2, "{st:?} peak {peak}");
    assert_eq!(count(&db), all_samples);
}

#[test]
fn time_retention_deletes_wholly_expired_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path())
        .retention_time(Some(Duration::from_secs(30 * 60)))
        .max_block_range(Some(10 * MIN))
        .open()
        .unwrap();
    fill(&db, 3, 0, 120 * MIN, 60_000);
    db.maintain().unwrap();
    let st = db.stats();
    assert!(st.retention_time_deletions > 0, "{st:?}");
    let newest = 120 * MIN - 60_000;
    for (_, s) in all(&db, i64::MIN, i64::MAX) {
        // Everything within the retention period is still there...
        assert!(s.iter().any(|x| x.t <= newest - 30 * MIN));
        // ...and nothing from blocks that ended before the cutoff.
        assert!(s.first().unwrap().t >= newest - 30 * MIN - 10 * MIN, "first {}", s.first().unwrap().t);
    }
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        du(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Like [`fill`], but a commit refused for size is retried after a round of
/// maintenance (what the background thread does); returns the refusals and
/// the largest directory size seen after any commit or maintenance.
fn fill_under_limit(db: &Db, dir: &Path, n_series: usize, from: i64, to: i64, step: i64) -> (usize, u64) {
    let (mut refused, mut peak) = (0, 0);
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for i in 0..n_series {
            // Full-precision values: the WAL compresses them little, so it
            // grows about as fast as before compressed records existed.
            let bits = (t as u64 ^ (i as u64) << 40).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 12;
            app.append(&series(i), t, f64::from_bits(0x3ff0_0000_0000_0000 | bits)).unwrap();
        }
        match app.commit() {
            Ok(()) => t += step,
            Err(Error::StorageFull { .. }) => {
                refused += 1;
                assert!(refused < 10_000, "writes never resumed: {:?} {}", db.stats(), du(dir));
                db.maintain().unwrap();
            }
            Err(e) => panic!("commit failed: {e}"),
        }
        peak = peak.max(du(dir));
    }
    (refused, peak)
}

#[test]
fn size_retention_keeps_the_directory_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 200_000;
    let db = builder(dir.path())
        .retention_time(None)
        .retention_size(Some(limit))
        .block_encoding(tidemark_storage::chunkenc::Encoding::Xor)
        .max_block_range(Some(10 * MIN))
        .wal_segment_size(32 << 10)
        .open()
        .unwrap();
    let mut peak = 0;
    for hour in 0..8 {
        let (_, p) = fill_under_limit(&db, dir.path(), 100, hour * 60 * MIN, (hour + 1) * 60 * MIN, 15_000);
        db.maintain().unwrap();
        peak = peak.max(p).max(du(dir.path()));
    }
    let st = db.stats();
    assert!(st.retention_size_deletions > 0, "{st:?}");
    assert!(peak <= limit, "the directory reached {peak} bytes, over the limit of {limit}");
    // The newest data is kept.
    let got = all(&db, 8 * 60 * MIN - MIN, i64::MAX);
    assert_eq!(got.len(), 100);
}

/// A snapshot inside the data directory hard-links every block: it takes
/// no extra room, so size retention must not delete blocks to pay for it.
#[test]
fn snapshots_hard_links_do_not_count_twice_against_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = builder(dir.path()).retention_time(None).open().unwrap();
        fill(&db, 50, 0, 120 * MIN, 15_000);
        db.flush_head().unwrap();
        db.close().unwrap();
    }
    // A limit with room for the data once, not twice.
    let used = du(dir.path());
    let db = builder(dir.path()).retention_time(None).retention_size(Some(used * 2 - used / 3)).open().unwrap();
    let blocks = db.blocks().len();
    assert!(blocks >= 2, "{blocks} blocks");
    db.snapshot(&dir.path().join("snapshots").join("s1"), true).unwrap();
    db.snapshot(&dir.path().join("snapshots").join("s2"), true).unwrap();
    db.apply_retention().unwrap();
    assert_eq!(db.blocks().len(), blocks, "retention deleted blocks for hard links: {:?}", db.stats());
    assert_eq!(db.stats().retention_size_deletions, 0);
}

#[test]
fn snapshot_opens_as_a_database_with_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let snap = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).open().unwrap();
    fill(&db, 10, 0, 45 * MIN, 30_000);
    db.persist_head().unwrap();
    assert!(!db.blocks().is_empty());
    let want = all(&db, i64::MIN, i64::MAX);
    db.snapshot(&snap.path().join("s"), false).unwrap();
    let copy = builder(&snap.path().join("s")).open().unwrap();
    assert_eq!(all(&copy, i64::MIN, i64::MAX), want);
    // Without the head only persisted data is in the snapshot.
    db.snapshot(&snap.path().join("blocks-only"), true).unwrap();
    let blocks_only = builder(&snap.path().join("blocks-only")).open().unwrap();
    assert!(count(&blocks_only) < want.iter().map(|(_, s)| s.len()).sum::<usize>());
}

/// The head goes into a snapshot as one block, as Prometheus writes it,
/// even when its data crosses block-range boundaries (10 min here): cutting
/// it would store each series' index entry and chunk overhead per piece.
#[test]
fn snapshot_writes_the_head_as_one_block_across_block_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let snap = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).open().unwrap();
    fill(&db, 7, 5 * MIN, 17 * MIN, 15_000);
    assert!(db.blocks().is_empty());
    let want = all(&db, i64::MIN, i64::MAX);
    db.snapshot(&snap.path().join("s"), false).unwrap();
    let copy = builder(&snap.path().join("s")).open().unwrap();
    let metas = copy.blocks();
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert_eq!((metas[0].min_time, metas[0].max_time), (5 * MIN, 17 * MIN - 15_000 + 1));
    assert_eq!(all(&copy, i64::MIN, i64::MAX), want);
}

#[test]
fn a_corrupt_block_is_quarantined_and_the_rest_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = builder(dir.path()).open().unwrap();
        fill(&db, 4, 0, 40 * MIN, 60_000);
        db.persist_head().unwrap();
        db.close().unwrap();
    }
    let blocks: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("meta.json").exists())
        .collect();
    assert!(blocks.len() >= 2);
    let victim = blocks[0].path();
    let index = victim.join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&index, bytes).unwrap();

    let db = builder(dir.path()).open().unwrap();
    assert_eq!(db.stats().quarantined_blocks, 1);
    assert!(dir.path().join("quarantine").join(victim.file_name().unwrap()).exists());
    assert_eq!(db.blocks().len(), blocks.len() - 1);
    assert!(count(&db) > 0);
}

#[test]
fn in_memory_database_works_without_a_directory() {
    let db = Db::builder_in_memory()
        .retention_time(Some(Duration::from_secs(600)))
        .maintenance_interval(None)
        .open()
        .unwrap();
    fill(&db, 3, 0, 60 * MIN, 60_000);
    assert_eq!(count(&db), 180);
    db.maintain().unwrap();
    let left = all(&db, i64::MIN, i64::MAX);
    assert!(left[0].1.first().unwrap().t >= 59 * MIN - 10 * MIN - 2 * 60 * MIN / 2, "old data trimmed");
    assert!(left[0].1.len() < 60);
    assert_eq!(db.stats().wal_bytes, 0);
}

#[test]
fn appends_are_validated() {
    let db = Db::builder_in_memory().name_validation(NameValidation::Legacy).open().unwrap();
    let mut app = db.appender();
    let dotted = Labels::new([("__name__", "http.requests")]).unwrap();
    assert!(matches!(app.append(&dotted, 0, 1.0), Err(AppendError::InvalidLabels(LabelError::InvalidMetricName(_)))));
    let nameless = Labels::new([("job", "x")]).unwrap();
    assert!(matches!(app.append(&nameless, 0, 1.0), Err(AppendError::InvalidLabels(LabelError::MissingMetricName))));
    let ok = Labels::new([("__name__", "up")]).unwrap();
    let r = app.append(&ok, 10, 1.0).unwrap();
    app.append_ref(r, 20, 2.0).unwrap();
    assert!(matches!(app.append_ref(r, 15, 2.0), Err(AppendError::OutOfOrder { .. })));
    app.commit().unwrap();
    let mut app = db.appender();
    app.append_ref(r, 20, 2.0).unwrap(); // identical duplicate: accepted silently
    assert!(matches!(app.append_ref(r, 20, 3.0), Err(AppendError::DuplicateTimestamp { t: 20 })));
    app.commit().unwrap();
    db.close().unwrap();
    assert!(matches!(db.appender().commit(), Err(Error::Closed)));
}

#[test]
fn out_of_order_window_accepts_late_samples_durably() {
    let dir = tempfile::tempdir().unwrap();
    let open = || builder(dir.path()).out_of_order_window(Duration::from_secs(30 * 60)).open().unwrap();
    {
        let db = open();
        let s = series(0);
        let mut app = db.appender();
        for t in (0..60).map(|m| m * MIN) {
            if t % (2 * MIN) == 0 {
                app.append(&s, t, t as f64).unwrap();
            }
        }
        app.commit().unwrap();
        // Late samples for the odd minutes within the last 30 minutes.
        let mut app = db.appender();
        for m in (31..60).step_by(2) {
            app.append(&s, m * MIN, (m * MIN) as f64).unwrap();
        }
        assert!(matches!(app.append(&s, MIN, 1.0), Err(AppendError::TooOld { .. })), "outside the window");
        app.commit().unwrap();
        // 59 min is newer than the last sample (58 min): in order.
        assert_eq!(db.stats().out_of_order_samples_appended, 14);
        db.close().unwrap();
    }
    let db = open();
    let got = &all(&db, i64::MIN, i64::MAX)[0].1;
    assert_eq!(got.len(), 30 + 15, "replayed from the WAL");
    assert!(got.windows(2).all(|w| w[0].t < w[1].t));
    db.flush_head().unwrap();
    assert_eq!(all(&db, i64::MIN, i64::MAX)[0].1, *got, "persisted into blocks");
}

#[test]
fn concurrent_appends_queries_and_maintenance_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Db::builder(dir.path())
            .block_range(10 * MIN)
            .maintenance_interval(Some(Duration::from_millis(5)))
            .open()
            .unwrap(),
    );
    // Writers stay within a few steps of each other: a writer that falls
    // more than half a block range behind the newest sample is rejected as
    // out of bounds, correctly.
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let db = db.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                for step in 0..400i64 {
                    if step % 5 == 0 {
                        barrier.wait();
                    }
                    let mut app = db.appender();
                    for i in 0..10 {
                        app.append(&series(w * 10 + i), step * 15_000, step as f64).unwrap();
                    }
                    app.commit().unwrap();
                }
            })
        })
        .collect();
    // The reader keeps reading until the writers are done (200 reads at
    // least): a fixed number of reads can all finish before the first
    // commit, and then prove nothing.
    let writers_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let db = db.clone();
        let writers_done = writers_done.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            let mut rounds = 0;
            while rounds < 200 || !writers_done.load(std::sync::atomic::Ordering::Acquire) {
                rounds += 1;
                let q = db.querier(0, i64::MAX);
                let m = Matcher::new(MatchOp::Regex, "instance", "host-1.*").unwrap();
                for s in q.select(&[m]).unwrap() {
                    let samples = s.samples().unwrap();
                    assert!(samples.windows(2).all(|w| w[0].t < w[1].t));
                    reads += samples.len();
                }
            }
            reads
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    writers_done.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    db.maintain().unwrap();
    assert_eq!(count(&db), 20 * 400);
    assert!(db.stats().head_persists > 0);
}

/// Commits racing on the same series (each writer's samples interleave
/// with the others', so some lose their race at apply time and are
/// dropped) apply in exactly their log order: the state replayed from the
/// WAL equals the state they left, sample for sample and bit for bit. The
/// commits wait for their shared fsync outside the head's locks, so their
/// writes really overlap.
#[test]
fn racing_commits_replay_to_the_state_they_left() {
    let dir = tempfile::tempdir().unwrap();
    let open = || builder(dir.path()).open().unwrap();
    let db = Arc::new(open());
    std::thread::scope(|sc| {
        for w in 0..4i64 {
            let db = db.clone();
            sc.spawn(move || {
                for step in 0..60i64 {
                    let mut app = db.appender();
                    for i in 0..8 {
                        // Writers share series 0..8 and send nearby
                        // timestamps: some of each other's land out of order.
                        let t = step * 1_000 + ((w + i as i64) % 4) * 300;
                        let _ = app.append(&series(i), t, (w * 1_000 + step) as f64);
                    }
                    app.commit().unwrap();
                }
            });
        }
    });
    let before = all(&db, i64::MIN, i64::MAX);
    assert_eq!(before.len(), 8);
    db.close().unwrap();
    drop(db);
    let db = open();
    let after = all(&db, i64::MIN, i64::MAX);
    let bits = |v: &[(Labels, Vec<Sample>)]| -> Vec<(Labels, Vec<(i64, u64)>)> {
        v.iter().map(|(l, s)| (l.clone(), s.iter().map(|s| (s.t, s.v.to_bits())).collect())).collect()
    };
    assert_eq!(bits(&after), bits(&before));
}

#[test]
fn writes_are_refused_instead_of_filling_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 20_000;
    let db = builder(dir.path()).retention_time(None).retention_size(Some(limit)).open().unwrap();
    // One batch whose WAL record alone would be over the limit: refused
    // before it is written, so the directory never passes the limit.
    let mut app = db.appender();
    for i in 0..2_000 {
        app.append(&series(i), 1_000, i as f64).unwrap();
    }
    match app.commit() {
        Err(Error::StorageFull { used, limit: l }) => assert!(used > l && l <= limit),
        other => panic!("expected StorageFull, got {other:?}"),
    }
    assert!(du(dir.path()) <= limit);
    // The refused batch is not visible; a small one is accepted.
    let q = db.querier(1_000, 1_000);
    assert!(q.select(&[Matcher::equal("instance", "host-0")]).unwrap().iter().all(|s| s.samples().unwrap().is_empty()));
    let mut app = db.appender();
    app.append(&series(0), 2_000, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(db.stats().commit_failures_storage_full, 1);
}

#[test]
fn size_pressure_persists_the_head_early_so_the_wal_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    // (100 kB before WAL records were compressed; the same samples now take
    // about 9 bytes each instead of 12.)
    let limit = 60_000;
    let db =
        builder(dir.path()).retention_time(None).retention_size(Some(limit)).wal_segment_size(16 << 10).open().unwrap();
    // 13 minutes of 200 series: about 95 KB of WAL, above the limit,
    // all within two block ranges, the first never "ready" by normal rules.
    let (refused, peak) = fill_under_limit(&db, dir.path(), 200, 0, 13 * MIN, 15_000);
    let st = db.stats();
    assert!(peak <= limit, "the directory reached {peak} bytes, over the limit of {limit}");
    assert!(st.head_persists >= 2, "the head was cut early, not just at range ends: {st:?}");
    assert!(refused < 100, "writes were refused {refused} times");
    // Every sample was accepted in the end; what size retention deleted is
    // exactly what lies below the floor, everything newer is readable.
    let floor = st.retention_floor;
    let kept_steps = (0..13 * MIN).step_by(15_000).filter(|&t| t >= floor).count();
    assert_eq!(count(&db), 200 * kept_steps, "floor {floor}");
    assert!(kept_steps >= 4, "at least the last minute is kept, floor {floor}");
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// One load for [`maintenance_never_writes_more_than_the_reserve`].
#[derive(Debug, Clone)]
struct Load {
    series: usize,
    samples_per_series: usize,
    label_len: usize,
    /// Values: integers counting up (compress best) or arbitrary doubles.
    float_values: bool,
}

fn load() -> impl proptest::strategy::Strategy<Value = Load> {
    use proptest::prelude::*;
    prop_oneof![
        // Many series, few samples: the WAL compresses them far better
        // than a block's index of those series.
        (1usize..3000, 1usize..4, 1usize..40, any::<bool>()),
        // Few series, many samples.
        (1usize..20, 100usize..2000, 1usize..20, any::<bool>()),
        // Long label values.
        (10usize..300, 1usize..50, 100usize..2000, any::<bool>()),
    ]
    .prop_map(|(series, samples_per_series, label_len, float_values)| Load {
        series,
        samples_per_series,
        label_len,
        float_values,
    })
}

/// What maintenance writes (a block of the head up to some time `end`, and
/// a checkpoint of the series still live and the samples from `end` on:
/// each sample goes to one of them) never exceeds
/// `maintenance_reserve(wal_uncompressed_bytes)` computed before, whatever
/// the load and however well the WAL's records compress. Checked at both
/// extremes: the whole head as a block plus a checkpoint keeping every
/// series, and no block plus a checkpoint keeping everything. The bound is
/// recomputed at open (it survives a restart).
#[test]
fn maintenance_never_writes_more_than_the_reserve() {
    use proptest::prelude::*;
    use tidemark_storage::retention::maintenance_reserve;
    use tidemark_storage::wal::{Wal, WalOptions};
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 16, ..ProptestConfig::default() });
    runner
        .run(&load(), |l| {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::builder(dir.path()).maintenance_interval(None).open().unwrap();
            let pad = "x".repeat(l.label_len);
            let labels: Vec<Labels> = (0..l.series)
                .map(|i| {
                    Labels::new([
                        ("__name__", "load_metric"),
                        ("instance", &format!("host-{i}.{pad}")),
                        ("job", "load"),
                    ])
                    .unwrap()
                })
                .collect();
            let t0 = 1_700_000_000_000i64;
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for k in 0..l.samples_per_series {
                let mut app = db.appender();
                for (i, s) in labels.iter().enumerate() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let v = if l.float_values { f64::from_bits(x >> 2) } else { (k * 10 + i) as f64 };
                    app.append(s, t0 + k as i64 * 15_000, v).unwrap();
                }
                app.commit().unwrap();
            }
            let before = db.stats();
            let reserve = maintenance_reserve(before.wal_uncompressed_bytes);
            prop_assert!(before.wal_uncompressed_bytes >= before.wal_bytes);
            db.close().unwrap();
            drop(db);

            // The largest checkpoints, of copies of the WAL: every series,
            // with no samples and with all of them.
            let checkpoint = |mint: i64| {
                let copy = tempfile::tempdir().unwrap();
                copy_dir(&dir.path().join("wal"), copy.path());
                let wal = Wal::open(copy.path(), WalOptions::default()).unwrap();
                let upto = wal.cut_segment().unwrap();
                wal.checkpoint(upto, |_| true, mint).unwrap();
                dir_bytes(&copy.path().join(format!("checkpoint.{upto:08}")))
            };
            let (series_only, everything) = (checkpoint(i64::MAX), checkpoint(i64::MIN));
            prop_assert!(
                everything <= reserve,
                "{l:?}: checkpoint of everything {everything} > reserve {reserve} (WAL {} bytes, {} uncompressed)",
                before.wal_bytes,
                before.wal_uncompressed_bytes
            );

            let db = Db::builder(dir.path()).maintenance_interval(None).open().unwrap();
            let reopened = db.stats();
            prop_assert!(
                reopened.wal_uncompressed_bytes >= before.wal_uncompressed_bytes,
                "the bound shrank on reopen: {} -> {}",
                before.wal_uncompressed_bytes,
                reopened.wal_uncompressed_bytes
            );
            db.flush_head().unwrap();
            let block = db.stats().block_bytes;
            prop_assert!(
                block + series_only <= reserve,
                "{l:?}: block {block} + checkpoint of the series {series_only} > reserve {reserve} (WAL {} bytes, {} uncompressed)",
                before.wal_bytes,
                before.wal_uncompressed_bytes
            );
            db.close().unwrap();
            Ok(())
        })
        .unwrap();
}

fn stored_version(dir: &Path) -> u64 {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tidemark.json")).unwrap()).unwrap();
    json["format_version"].as_u64().unwrap()
}

/// A directory written by a newer format (WAL records this code does not
/// know) is refused with a typed error before anything is read: not taken
/// for damage, nothing quarantined, nothing changed.
#[test]
fn a_directory_of_a_newer_format_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = builder(dir.path()).open().unwrap();
        fill(&db, 3, 0, 5 * MIN, 15_000);
        db.close().unwrap();
    }
    assert_eq!(stored_version(dir.path()), 4, "new directories are of format 4");
    let path = dir.path().join("tidemark.json");
    let newer = String::from_utf8(std::fs::read(&path).unwrap())
        .unwrap()
        .replace("\"format_version\": 4", "\"format_version\": 5");
    std::fs::write(&path, &newer).unwrap();
    let wal = dir.path().join("wal");
    let listing = |d: &Path| {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
            .collect();
        v.sort();
        v
    };
    let (top, wal_files) = (listing(dir.path()), listing(&wal));
    match builder(dir.path()).open() {
        Err(Error::UnsupportedFormat { found: 5, supported: 4, .. }) => {}
        other => panic!("expected UnsupportedFormat, got {:?}", other.map(|_| ())),
    }
    assert_eq!(listing(dir.path()), top, "nothing created or removed");
    assert_eq!(listing(&wal), wal_files, "the WAL is untouched");
    assert!(!dir.path().join("quarantine").exists());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);
    // Put back at the version this code writes: everything is there.
    std::fs::write(&path, newer.replace("\"format_version\": 5", "\"format_version\": 4")).unwrap();
    let db = builder(dir.path()).open().unwrap();
    assert_eq!(count(&db), 3 * 20);
    db.close().unwrap();
}

/// A format-1 directory opens and is raised to the current format 4 (its
/// WAL gets records of the new types from then on).
#[test]
fn a_format_1_directory_is_raised_to_format_4() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tidemark.json"), r#"{ "format_version": 1, "block_range_ms": 600000 }"#).unwrap();
    let db = builder(dir.path()).open().unwrap();
    fill(&db, 2, 0, MIN, 15_000);
    db.close().unwrap();
    assert_eq!(stored_version(dir.path()), 4);
}

/// WAL segment numbers and checkpoint names in `wal/`.
fn wal_listing(dir: &Path) -> (Vec<u64>, Vec<String>) {
    let (mut segments, mut checkpoints) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir.join("wal")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(n) = name.parse::<u64>() {
            segments.push(n);
        } else if name.starts_with("checkpoint.") {
            checkpoints.push(name);
        }
    }
    segments.sort_unstable();
    (segments, checkpoints)
}

#[test]
fn a_block_cut_deletes_the_wal_segments_it_covers_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).wal_segment_size(512).open().unwrap();
    // One block range (10 min) of data in segments of their own, noted by a
    // maintenance round, then more data in later segments.
    fill(&db, 20, 0, 10 * MIN, 15_000);
    db.maintain().unwrap();
    let (before, _) = wal_listing(dir.path());
    assert!(before.len() >= 3, "{before:?}");
    fill(&db, 20, 10 * MIN, 15 * MIN + 15_000, 15_000);
    db.maintain().unwrap();
    assert_eq!(db.blocks().len(), 1, "[0, 10 min) is cut once the head is half a range past it");
    let (after, checkpoints) = wal_listing(dir.path());
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?} {before:?} {after:?}");
    let last_covered = *before.last().unwrap() - 1;
    assert!(after.iter().all(|&s| s > last_covered), "segments {after:?} up to {last_covered} deleted");
    // The checkpoint holds the series, not the samples the head still has.
    let cp = dir.path().join("wal").join(&checkpoints[0]);
    let cp_bytes: u64 = std::fs::read_dir(&cp).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
    let seg_bytes: u64 =
        after.iter().map(|s| std::fs::metadata(dir.path().join(format!("wal/{s:08}"))).unwrap().len()).sum();
    assert!(cp_bytes < seg_bytes / 4, "checkpoint {cp_bytes} bytes, segments kept {seg_bytes}");
    let want = count(&db);
    assert_eq!(want, 20 * 61);
    // Every sample comes back after a crash-like reopen (no close: the WAL
    // and the block are all there is).
    drop(db);
    let db = builder(dir.path()).open().unwrap();
    assert_eq!(count(&db), want);
    assert_eq!(all(&db, 0, i64::MAX)[0].1.first().map(|s| s.t), Some(0));
}

#[test]
fn segments_shared_by_a_block_and_the_head_stay_and_replay_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).wal_segment_size(512).open().unwrap();
    // No maintenance round sees the segments before the cut: every one
    // may hold samples on both sides of the block's end, so none goes.
    fill(&db, 20, 8 * MIN, 15 * MIN + 15_000, 15_000);
    let (before, _) = wal_listing(dir.path());
    db.maintain().unwrap();
    assert_eq!(db.blocks().len(), 1);
    let (after, checkpoints) = wal_listing(dir.path());
    assert!(checkpoints.is_empty(), "{checkpoints:?}");
    assert!(before.iter().all(|s| after.contains(s)), "{before:?} {after:?}");
    let want = count(&db);
    assert_eq!(want, 20 * 29);
    // Replay reads samples the block holds too; they do not come back twice.
    drop(db);
    let db = builder(dir.path()).open().unwrap();
    assert_eq!(count(&db), want);
    // The next cut deletes them (a round noted them meanwhile).
    fill(&db, 20, 15 * MIN + 15_000, 20 * MIN, 15_000);
    db.maintain().unwrap();
    fill(&db, 20, 20 * MIN, 26 * MIN, 15_000);
    db.maintain().unwrap();
    assert_eq!(db.blocks().len(), 2);
    let (later, checkpoints) = wal_listing(dir.path());
    assert_eq!(checkpoints.len(), 1, "{later:?}");
    assert!(later.iter().all(|s| !before.contains(s)), "{before:?} {later:?}");
    assert_eq!(count(&db), want + 20 * 43);
}

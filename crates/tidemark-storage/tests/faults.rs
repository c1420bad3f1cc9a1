//! Write-side faults injected through the file layer (`vfs::FaultFs`): a
//! full disk, EIO and failing fsync never lose an acknowledged sample, never
//! acknowledge one that is not durable, and never stop ingestion for good.
//! Also: deleted data is not resurrected by a later replay.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidemark_storage::vfs::{FaultFs, FaultKind, Op};
use tidemark_storage::{Db, DbBuilder, Error, Labels, Matcher};

const MIN: i64 = 60_000;

fn series(i: usize) -> Labels {
    Labels::new([("__name__", "m"), ("i", &format!("{i}"))]).unwrap()
}

/// Every WAL commit grows its segment (no zeros written ahead), so that a
/// full disk fails the next commit.
fn builder(dir: &Path, faults: &FaultFs) -> DbBuilder {
    Db::builder(dir)
        .block_range(10 * MIN)
        .maintenance_interval(None)
        .wal_zero_ahead(0)
        .file_system(Arc::new(faults.clone()))
}

/// Commits one sample per series at `t`; returns whether it was acknowledged.
fn commit(db: &Db, n: usize, t: i64) -> Result<(), Error> {
    let mut app = db.appender();
    for i in 0..n {
        app.append(&series(i), t, t as f64).unwrap();
    }
    app.commit()
}

/// Every (series, timestamp) the database holds.
fn contents(db: &Db) -> BTreeSet<(String, i64)> {
    let mut out = BTreeSet::new();
    for s in db.querier(i64::MIN, i64::MAX).select(&[Matcher::equal("__name__", "m")]).unwrap() {
        for x in s.samples().unwrap() {
            assert_eq!(x.v, x.t as f64);
            out.insert((s.labels().get("i").unwrap().to_string(), x.t));
        }
    }
    out
}

fn expect(acked: &[i64], n: usize) -> BTreeSet<(String, i64)> {
    acked.iter().flat_map(|&t| (0..n).map(move |i| (i.to_string(), t))).collect()
}

#[test]
fn full_disk_fails_commits_until_space_is_back_and_replay_has_exactly_the_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultFs::new();
    let db = builder(dir.path(), &faults).open().unwrap();
    let mut acked = Vec::new();
    for step in 0..300i64 {
        let t = step * 1000;
        // The disk fills at step 100 with a few hundred bytes left (a record
        // is torn mid-way), and is freed at step 200.
        if step == 100 {
            faults.set_space(Some(700));
        }
        if step == 200 {
            let why = db.write_failure().expect("a full disk is reported");
            assert!(why.contains("No space left"), "{why}");
            faults.set_space(None);
            // No commit needed: maintenance sees the room and clears it.
            db.maintain().unwrap();
            assert_eq!(db.write_failure(), None);
        }
        match commit(&db, 20, t) {
            Ok(()) => acked.push(t),
            Err(Error::Io { source, .. }) => {
                assert!(tidemark_storage::vfs::is_no_space(&source), "{source}");
                assert!((100..200).contains(&step), "step {step} failed");
            }
            Err(e) => panic!("unexpected error at step {step}: {e}"),
        }
    }
    assert!(acked.len() >= 200 && acked.len() < 300, "{} acknowledged", acked.len());
    assert!(acked.contains(&299_000), "writes resumed after space came back");
    let st = db.stats();
    assert!(st.commit_failures_no_space > 0, "{st:?}");
    assert_eq!(contents(&db), expect(&acked, 20));
    db.close().unwrap();
    drop(db);
    let db = Db::builder(dir.path()).block_range(10 * MIN).maintenance_interval(None).open().unwrap();
    assert_eq!(contents(&db), expect(&acked, 20), "replay holds exactly the acknowledged samples");
}

#[test]
fn failed_fsync_acknowledges_nothing_and_later_commits_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultFs::new();
    let db = builder(dir.path(), &faults).open().unwrap();
    commit(&db, 5, 1_000).unwrap();
    faults.fail_once(Op::Sync, "wal", FaultKind::Io);
    assert!(matches!(commit(&db, 5, 2_000), Err(Error::Io { .. })));
    assert_eq!(contents(&db), expect(&[1_000], 5), "the failed commit is not visible");
    commit(&db, 5, 3_000).unwrap();
    let st = db.stats();
    assert_eq!(st.commit_failures_io, 1, "{st:?}");
    db.close().unwrap();
    drop(db);
    let db = Db::builder(dir.path()).block_range(10 * MIN).maintenance_interval(None).open().unwrap();
    assert_eq!(contents(&db), expect(&[1_000, 3_000], 5));
}

#[test]
fn eio_in_block_writes_and_checkpoints_fails_maintenance_not_ingestion() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultFs::new();
    // Small segments and a maintenance round once the first range is
    // written, as the server's periodic rounds would: the checkpoint after
    // the block then has segments that the block covers entirely.
    let db = builder(dir.path(), &faults).retention_time(None).wal_segment_size(1024).open().unwrap();
    let mut acked = Vec::new();
    for t in (0..20 * MIN).step_by(15_000) {
        if t == 10 * MIN {
            db.maintain().unwrap();
        }
        commit(&db, 10, t).unwrap();
        acked.push(t);
    }
    // Block output (`<ulid>.tmp/...`) fails: no block, nothing lost.
    faults.fail(Op::Write, ".tmp/chunks", FaultKind::Io);
    assert!(db.maintain().is_err());
    assert!(db.blocks().is_empty());
    assert!(db.stats().maintenance_failures >= 1);
    assert!(
        !dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")),
        "a failed block write leaves no temporary directory"
    );
    // Ingestion continues meanwhile.
    commit(&db, 10, 20 * MIN).unwrap();
    acked.push(20 * MIN);
    faults.clear();
    // The checkpoint (`checkpoint.N.tmp`) fails on ENOSPC: the block is
    // written, the WAL keeps its segments, the checkpoint is retried.
    faults.fail(Op::Write, "checkpoint", FaultKind::NoSpace);
    assert!(db.maintain().is_err());
    assert_eq!(db.blocks().len(), 1);
    faults.clear();
    db.maintain().unwrap();
    let wal = dir.path().join("wal");
    assert!(wal.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("checkpoint.")));
    assert_eq!(contents(&db), expect(&acked, 10));
    db.close().unwrap();
    drop(db);
    let db = Db::builder(dir.path()).block_range(10 * MIN).maintenance_interval(None).open().unwrap();
    assert_eq!(contents(&db), expect(&acked, 10));
}

#[test]
fn unrepairable_wal_reports_failure_heals_by_maintenance_and_close_is_ok() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultFs::new();
    let db = builder(dir.path(), &faults).open().unwrap();
    commit(&db, 3, 1_000).unwrap();
    // The disk is full and even cutting the torn tail fails: the WAL stays
    // unwritable, and says so.
    faults.set_space(Some(10));
    faults.fail(Op::SetLen, "", FaultKind::Io);
    assert!(commit(&db, 3, 2_000).is_err());
    let why = db.write_failure().expect("write failure reported");
    assert!(why.contains("WAL"), "{why}");
    assert!(db.stats().write_failure.is_some());
    assert!(commit(&db, 3, 3_000).is_err());
    // Space is back; no commit comes, maintenance repairs the log.
    faults.clear();
    db.maintain().unwrap();
    assert_eq!(db.write_failure(), None);
    commit(&db, 3, 4_000).unwrap();
    // A fault that is still there at close does not make close fail:
    // nothing acknowledged depends on it.
    faults.set_space(Some(0));
    faults.fail(Op::SetLen, "", FaultKind::Io);
    assert!(commit(&db, 3, 5_000).is_err());
    db.close().unwrap();
    drop(db);
    faults.clear();
    let db = Db::builder(dir.path()).block_range(10 * MIN).maintenance_interval(None).open().unwrap();
    assert_eq!(contents(&db), expect(&[1_000, 4_000], 3));
}

#[test]
fn background_maintenance_resumes_writes_within_one_interval() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultFs::new();
    let db = Db::builder(dir.path())
        .maintenance_interval(Some(Duration::from_millis(200)))
        .wal_zero_ahead(0)
        .file_system(Arc::new(faults.clone()))
        .open()
        .unwrap();
    commit(&db, 3, 1_000).unwrap();
    faults.set_space(Some(0));
    faults.fail(Op::SetLen, "", FaultKind::Io);
    assert!(commit(&db, 3, 2_000).is_err());
    assert!(db.write_failure().is_some());
    faults.clear();
    let freed = std::time::Instant::now();
    while db.write_failure().is_some() {
        assert!(freed.elapsed() < Duration::from_secs(2), "not repaired within the maintenance interval");
        std::thread::sleep(Duration::from_millis(10));
    }
    commit(&db, 3, 3_000).unwrap();
    db.close().unwrap();
}

/// A reader's hold keeps old WAL segments; time retention deletes the
/// blocks made from them. Reopening must not replay the deleted samples
/// back into the head.
#[test]
fn deleted_data_is_not_resurrected_by_replaying_a_held_wal() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Db::builder(dir.path())
            .block_range(10 * MIN)
            .retention_time(Some(Duration::from_secs(30 * 60)))
            .maintenance_interval(None)
            .open()
            .unwrap()
    };
    let db = open();
    let hold = db.hold_wal("stalled-reader").unwrap();
    for t in (0..120 * MIN).step_by(15_000) {
        commit(&db, 5, t).unwrap();
        if t % (5 * MIN) == 0 {
            db.maintain().unwrap();
        }
    }
    db.maintain().unwrap();
    assert!(db.stats().retention_time_deletions > 0);
    let floor = db.stats().retention_floor;
    assert!(floor > 0, "retention recorded what it deleted");
    let before = contents(&db);
    assert!(before.iter().all(|&(_, t)| t >= floor));
    assert!(hold.segment() <= 1, "the hold still keeps the oldest segments");
    db.close().unwrap();
    drop(db);
    let db = open();
    let after = contents(&db);
    let old: Vec<_> = after.iter().filter(|&&(_, t)| t < floor).take(3).collect();
    assert!(old.is_empty(), "deleted samples came back after reopen: {old:?} (floor {floor})");
    assert_eq!(after, before);
}

/// The case: size retention deletes every block while the WAL
/// (here kept by a reader's hold) still holds their samples; then the
/// process crashes. Replay must not bring the deleted samples back.
#[test]
fn size_retention_deletions_stay_deleted_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let open = |limit: Option<u64>| {
        Db::builder(dir.path())
            .block_range(10 * MIN)
            .retention_time(None)
            .retention_size(limit)
            .maintenance_interval(None)
            .open()
            .unwrap()
    };
    let db = open(None);
    let _hold = db.hold_wal("stalled-reader").unwrap();
    for t in (0..60 * MIN).step_by(15_000) {
        commit(&db, 10, t).unwrap();
    }
    db.maintain().unwrap();
    assert!(!db.blocks().is_empty() && db.stats().head_persists >= 3, "{:?}", db.stats());
    db.close().unwrap();
    drop(db);
    // Reopened with a limit the blocks do not fit in: retention deletes them all.
    let db = open(Some(1));
    assert!(db.blocks().is_empty());
    let floor = db.stats().retention_floor;
    assert!(floor >= 40 * MIN, "floor {floor}");
    let before = contents(&db);
    assert!(!before.is_empty() && before.iter().all(|&(_, t)| t >= floor));
    // Crash: copy the directory as it is on disk, without closing.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(dir.path(), copy.path());
    drop(db);
    let db =
        Db::builder(copy.path()).block_range(10 * MIN).retention_time(None).maintenance_interval(None).open().unwrap();
    let after = contents(&db);
    let old: Vec<_> = after.iter().filter(|&&(_, t)| t < floor).take(3).collect();
    assert!(old.is_empty(), "deleted samples came back after a crash: {old:?} (floor {floor})");
    assert_eq!(after, before);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn a_full_disk_at_open_does_not_keep_the_database_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultFs::new();
    let db = builder(dir.path(), &faults).open().unwrap();
    commit(&db, 4, 1_000).unwrap();
    db.close().unwrap();
    drop(db);
    // Not even a new WAL segment fits.
    faults.set_space(Some(0));
    let db = builder(dir.path(), &faults).open().unwrap();
    assert_eq!(contents(&db), expect(&[1_000], 4), "queries are served");
    assert!(db.write_failure().is_some());
    assert!(matches!(commit(&db, 4, 2_000), Err(Error::Io { .. })));
    faults.set_space(None);
    commit(&db, 4, 3_000).unwrap();
    assert_eq!(db.write_failure(), None);
    db.close().unwrap();
    drop(db);
    let db = builder(dir.path(), &FaultFs::new()).open().unwrap();
    assert_eq!(contents(&db), expect(&[1_000, 3_000], 4));
}

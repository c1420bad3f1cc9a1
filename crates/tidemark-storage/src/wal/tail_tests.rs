//! Tests of the WAL tail reader and of WAL holds.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::record::encode_frame;
use super::segment::{segment_path, SEGMENT_HEADER};
use super::*;
use crate::{stale_nan, Db, Labels, Matcher};

fn labels(i: u64) -> Labels {
    Labels::new([("__name__", "metric".to_string()), ("i", i.to_string())]).unwrap()
}

fn series(refs: impl IntoIterator<Item = u64>) -> Record {
    Record::Series(refs.into_iter().map(|r| RefSeries { series_ref: r, labels: labels(r) }).collect())
}

fn samples(items: impl IntoIterator<Item = (u64, i64, f64)>) -> Record {
    Record::Samples(items.into_iter().map(|(series_ref, t, v)| RefSample { series_ref, t, v }).collect())
}

fn sample_list(records: &[Record]) -> Vec<RefSample> {
    records
        .iter()
        .flat_map(|r| match r {
            Record::Samples(s) => s.clone(),
            Record::Series(_) | Record::HistogramSamples(_) | Record::Exemplars(_) => Vec::new(),
        })
        .collect()
}

fn series_refs(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .flat_map(|r| match r {
            Record::Series(s) => s.iter().map(|s| s.series_ref).collect(),
            Record::Samples(_) | Record::HistogramSamples(_) | Record::Exemplars(_) => Vec::new(),
        })
        .collect()
}

/// Reads until a read returns nothing new.
fn drain(t: &mut WalTailer, budget: u64) -> (Vec<Record>, Vec<WalSkip>) {
    let (mut recs, mut skips) = (Vec::new(), Vec::new());
    loop {
        let r = t.read(budget).unwrap();
        assert_eq!(r.position, t.position());
        skips.extend(r.skips);
        if r.records.is_empty() {
            return (recs, skips);
        }
        recs.extend(r.records);
    }
}

fn opts(segment_size: u64) -> WalOptions {
    WalOptions { segment_size, sync: SyncPolicy::Never, ..WalOptions::default() }
}

#[test]
fn follows_appends_bit_exactly_and_only_returns_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(DEFAULT_SEGMENT_SIZE)).unwrap();
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    assert!(t.read(1 << 20).unwrap().records.is_empty());
    let odd = [stale_nan(), f64::from_bits(0x7ff8_0000_dead_beef), -0.0, f64::INFINITY];
    wal.log(&[series([1, 2]), samples(odd.iter().enumerate().map(|(i, &v)| (1 + i as u64 % 2, i as i64, v)))]).unwrap();
    let (recs, skips) = drain(&mut t, 1 << 20);
    assert!(skips.is_empty());
    assert_eq!(series_refs(&recs), vec![1, 2]);
    let got = sample_list(&recs);
    assert_eq!(got.len(), 4);
    for (g, want) in got.iter().zip(odd) {
        assert_eq!(g.v.to_bits(), want.to_bits());
    }
    wal.log(&[samples([(1, 10, 1.0)])]).unwrap();
    let (recs, _) = drain(&mut t, 1 << 20);
    assert_eq!(sample_list(&recs), vec![RefSample { series_ref: 1, t: 10, v: 1.0 }]);
}

#[test]
fn a_record_being_written_is_not_yet_read_and_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(DEFAULT_SEGMENT_SIZE)).unwrap();
    wal.log(&[series([1]), samples([(1, 1, 1.0)])]).unwrap();
    let seg = wal.segment_range().1;
    wal.close().unwrap();
    drop(wal);
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    assert_eq!(sample_list(&drain(&mut t, 1 << 20).0).len(), 1);

    // Half of a frame lands, then the rest.
    let mut frame = Vec::new();
    encode_frame(&samples([(1, 2, 2.0), (1, 3, 3.0)]), &mut frame).unwrap();
    let path = segment_path(dir.path(), seg);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    for cut in [3, frame.len() - 1] {
        f.write_all(&frame[..cut]).unwrap();
        let r = t.read(1 << 20).unwrap();
        assert!(r.records.is_empty() && r.skips.is_empty(), "cut at {cut}: {r:?}");
        // Put the file back to the frame boundary to try a longer cut.
        f.set_len(f.metadata().unwrap().len() - cut as u64).unwrap();
    }
    f.write_all(&frame).unwrap();
    let (recs, skips) = drain(&mut t, 1 << 20);
    assert!(skips.is_empty());
    assert_eq!(sample_list(&recs).iter().map(|s| s.t).collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn rolls_over_segments_in_order_with_a_small_budget() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(200)).unwrap();
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    wal.log(&[series(0..3)]).unwrap();
    let mut want = Vec::new();
    let mut got = Vec::new();
    for i in 0..300i64 {
        let s = RefSample { series_ref: (i % 3) as u64, t: i, v: i as f64 * 0.5 };
        want.push(s);
        wal.log(&[Record::Samples(vec![s])]).unwrap();
        if i % 37 == 0 {
            got.extend(sample_list(&drain(&mut t, 1).0));
        }
    }
    assert!(wal.segment_range().1 > 10, "the test needs many segments");
    let (recs, skips) = drain(&mut t, 100);
    got.extend(sample_list(&recs));
    assert!(skips.is_empty());
    assert_eq!(got, want);
    assert_eq!(t.position().segment, wal.segment_range().1);
}

#[test]
fn resuming_from_a_position_returns_earlier_series_but_not_earlier_samples() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(300)).unwrap();
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    for i in 0..50u64 {
        wal.log(&[series([i]), samples([(i, i as i64, 1.0)])]).unwrap();
    }
    // Read part of the log and remember where.
    let first = t.read(400).unwrap();
    let seen = sample_list(&first.records).len();
    assert!(seen > 0 && seen < 50);
    let mut resumed = WalTailer::open(dir.path(), Some(first.position)).unwrap();
    let (recs, skips) = drain(&mut resumed, 1 << 20);
    assert!(skips.is_empty());
    let mut refs = series_refs(&recs);
    refs.sort_unstable();
    assert_eq!(refs, (0..50).collect::<Vec<_>>(), "every series, once");
    let ts: Vec<i64> = sample_list(&recs).iter().map(|s| s.t).collect();
    assert_eq!(ts, (seen as i64..50).collect::<Vec<_>>());
}

#[test]
fn segments_deleted_by_a_checkpoint_are_reported_and_series_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(200)).unwrap();
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    wal.log(&[series([1, 2])]).unwrap();
    for i in 0..40 {
        wal.log(&[samples([(1, i, 1.0), (2, i, 2.0)])]).unwrap();
    }
    let closed = wal.cut_segment().unwrap();
    wal.checkpoint(closed, |r| r == 1, 30).unwrap();
    wal.log(&[samples([(1, 100, 5.0)])]).unwrap();
    let (recs, skips) = drain(&mut t, 1 << 20);
    assert_eq!(skips.len(), 1);
    assert_eq!(skips[0].reason, SkipReason::Deleted);
    assert_eq!(skips[0].from, WalPosition::start_of(1));
    assert_eq!(skips[0].to, WalPosition::start_of(closed + 1));
    assert_eq!(skips[0].segments, closed);
    assert_eq!(series_refs(&recs), vec![1], "series of the checkpoint");
    assert_eq!(sample_list(&recs), vec![RefSample { series_ref: 1, t: 100, v: 5.0 }]);
}

#[test]
fn a_corrupt_complete_segment_is_skipped_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(DEFAULT_SEGMENT_SIZE)).unwrap();
    wal.log(&[series([1]), samples([(1, 1, 1.0)]), samples([(1, 2, 1.0)])]).unwrap();
    let closed = wal.cut_segment().unwrap();
    wal.log(&[samples([(1, 3, 1.0)])]).unwrap();
    // Flip a byte in the last record of the closed segment.
    let path = segment_path(dir.path(), closed);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    let (recs, skips) = drain(&mut t, 1 << 20);
    assert_eq!(skips.len(), 1);
    assert!(matches!(skips[0].reason, SkipReason::Corrupt(_)));
    assert_eq!(sample_list(&recs).iter().map(|s| s.t).collect::<Vec<_>>(), vec![1, 3]);
}

#[test]
fn header_only_segment_and_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    assert!(t.read(1 << 20).unwrap().records.is_empty());
    std::fs::write(segment_path(dir.path(), 3), &SEGMENT_HEADER[..5]).unwrap();
    let r = t.read(1 << 20).unwrap();
    assert!(r.records.is_empty() && r.skips.is_empty(), "the first segment to appear is the start: {r:?}");
    assert_eq!(t.position(), WalPosition::start_of(3));
}

#[test]
fn checkpoint_bound_respects_holds_up_to_the_byte_limit() {
    let size = |_| 100;
    assert_eq!(checkpoint_bound(10, 1, None, 1000, size), Some(10));
    assert_eq!(checkpoint_bound(10, 1, Some(11), 1000, size), Some(10));
    assert_eq!(checkpoint_bound(10, 1, Some(5), 1000, size), Some(4));
    assert_eq!(checkpoint_bound(10, 5, Some(5), 1000, size), None, "nothing below the hold");
    // Holding segments 1..=10 is 1000 bytes: at the limit, still held.
    assert_eq!(checkpoint_bound(10, 1, Some(1), 1000, size), None);
    // Over the limit: the oldest held segments go.
    assert_eq!(checkpoint_bound(10, 1, Some(1), 450, size), Some(6));
    assert_eq!(checkpoint_bound(10, 1, Some(3), 0, size), Some(10));
}

fn db_with_small_segments(dir: &Path, hold_max: u64) -> Db {
    Db::builder(dir)
        .block_range(10_000)
        .wal_segment_size(512)
        .wal_hold_max_bytes(hold_max)
        .maintenance_interval(None)
        .open()
        .unwrap()
}

fn write(db: &Db, from: i64, to: i64) {
    for t in (from..to).step_by(1000) {
        let mut app = db.appender();
        for i in 0..3 {
            app.append(&labels(i), t, t as f64).unwrap();
        }
        app.commit().unwrap();
    }
}

/// Writes `[from, to)` one block range (10 s) at a time with a maintenance
/// round after each, as the server's periodic maintenance would: the rounds
/// note how new each WAL segment's samples are, so that a block cut
/// checkpoints the segments the block covers entirely.
fn write_maintained(db: &Db, from: i64, to: i64) {
    for start in (from..to).step_by(10_000) {
        write(db, start, (start + 10_000).min(to));
        db.maintain().unwrap();
    }
}

#[test]
fn a_hold_keeps_unread_segments_across_checkpoints_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_small_segments(dir.path(), 1 << 30);
    let hold = db.hold_wal("fwd").unwrap();
    let wal_dir = db.wal_dir().unwrap();
    write_maintained(&db, 0, 40_000);
    assert!(!db.blocks().is_empty(), "blocks written, WAL checkpoint attempted");
    assert!(
        !std::fs::read_dir(&wal_dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint.")),
        "the hold at the first segment defers the checkpoint"
    );
    db.close().unwrap();
    drop(db);
    drop(hold);

    // The hold is persisted: after a restart it still protects the segments.
    let db = db_with_small_segments(dir.path(), 1 << 30);
    write_maintained(&db, 40_000, 60_000);
    db.persist_head().unwrap();
    db.maintain().unwrap();
    let mut t = WalTailer::open(&wal_dir, None).unwrap();
    let (recs, skips) = drain(&mut t, 1 << 20);
    assert!(skips.is_empty(), "{skips:?}");
    assert_eq!(sample_list(&recs).len(), 3 * 60, "every sample is still in the WAL");

    // Once the reader advances, the deferred checkpoint happens.
    let hold = db.hold_wal("fwd").unwrap();
    hold.advance(t.position().segment).unwrap();
    db.maintain().unwrap();
    let mut fresh = WalTailer::open(&wal_dir, Some(WalPosition::start_of(1))).unwrap();
    let (_, skips) = drain(&mut fresh, 1 << 20);
    assert_eq!(skips.len(), 1, "segments before the hold are gone");
    assert!(skips[0].to.segment <= t.position().segment);
    // The database's own data is intact.
    let n: usize = db
        .querier(0, 100_000)
        .select(&[Matcher::equal("__name__", "metric")])
        .unwrap()
        .iter()
        .map(|s| s.samples().unwrap().len())
        .sum();
    assert_eq!(n, 3 * 60);
    assert!(db.release_wal_hold("fwd").unwrap());
    assert!(!db.release_wal_hold("fwd").unwrap());
}

#[test]
fn a_stalled_hold_is_overridden_beyond_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Below one segment's bytes (segments of 512 bytes; the first ones the
    // blocks cover hold ~500).
    let db = db_with_small_segments(dir.path(), 300);
    let _hold = db.hold_wal("stalled").unwrap();
    write_maintained(&db, 0, 40_000);
    db.persist_head().unwrap();
    let wal_dir = db.wal_dir().unwrap();
    let mut t = WalTailer::open(&wal_dir, Some(WalPosition::start_of(1))).unwrap();
    let (_, skips) = drain(&mut t, 1 << 20);
    assert_eq!(skips.len(), 1, "the hold was overridden and the reader sees the loss");
    assert!(db.hold_wal("bad/name").is_err());
    assert!(Db::in_memory().unwrap().hold_wal("x").is_err());
}

#[test]
fn a_checkpoint_behind_the_reader_is_announced_with_its_live_series() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(DEFAULT_SEGMENT_SIZE)).unwrap();
    let mut t = WalTailer::open(dir.path(), None).unwrap();
    wal.log(&[series([1, 2]), samples([(1, 1, 1.0), (2, 1, 1.0)])]).unwrap();
    let first = t.read(1 << 20).unwrap();
    assert_eq!(first.checkpoint, None, "no checkpoint yet");
    let closed = wal.cut_segment().unwrap();
    wal.log(&[samples([(1, 2, 1.0)])]).unwrap();
    assert_eq!(sample_list(&drain(&mut t, 1 << 20).0).len(), 1);
    assert_eq!(t.position().segment, closed + 1);
    wal.checkpoint(closed, |r| r == 1, 0).unwrap();
    let r = t.read(1 << 20).unwrap();
    assert!(r.skips.is_empty(), "the reader was past the checkpointed segments");
    assert_eq!(r.checkpoint, Some(closed));
    assert_eq!(series_refs(&r.records), vec![1], "only the live series");
    assert_eq!(t.read(1 << 20).unwrap().checkpoint, None, "announced once");
}

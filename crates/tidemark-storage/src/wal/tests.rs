//! Behaviour tests for the WAL: round trips, crashes at every offset,
//! corruption, checkpoints, group commit and the poisoned state.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::segment::{checkpoint_path, list_dir, segment_path, SEGMENT_HEADER};
use super::*;
use crate::{stale_nan, Labels};

fn labels(i: u64) -> Labels {
    Labels::new([("__name__", "metric".to_string()), ("i", i.to_string())]).unwrap()
}

fn series(refs: impl IntoIterator<Item = u64>) -> Record {
    Record::Series(refs.into_iter().map(|r| RefSeries { series_ref: r, labels: labels(r) }).collect())
}

fn samples(items: impl IntoIterator<Item = (u64, i64, f64)>) -> Record {
    Record::Samples(items.into_iter().map(|(series_ref, t, v)| RefSample { series_ref, t, v }).collect())
}

/// Histogram samples `(ref, t, seed)`: the seed picks one of the shapes
/// of [`histogram_record::tests::example`] (integer and float, stale,
/// custom buckets, negative offsets).
fn histograms(items: impl IntoIterator<Item = (u64, i64, u64)>) -> Record {
    Record::HistogramSamples(
        items
            .into_iter()
            .map(|(series_ref, t, seed)| RefHistogramSample {
                series_ref,
                t,
                h: histogram_record::tests::example(seed),
            })
            .collect(),
    )
}

fn opts(segment_size: u64, sync: SyncPolicy) -> WalOptions {
    WalOptions { segment_size, sync, ..WalOptions::default() }
}

fn replay_all(dir: &Path) -> (Vec<Record>, ReplayStats) {
    let mut out = Vec::new();
    let stats = Wal::replay(dir, |r| out.push(r)).unwrap();
    (out, stats)
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// A mix of every record kind (empty ones too) and awkward float bit
/// patterns.
fn varied_records(n: u64) -> Vec<Record> {
    let specials =
        [f64::NAN, f64::from_bits(0x7ff8_0000_dead_beef), stale_nan(), -0.0, f64::INFINITY, f64::NEG_INFINITY];
    let mut out = Vec::new();
    for i in 0..n {
        out.push(series([i * 2, i * 2 + 1]));
        out.push(samples((0..5).map(|k| {
            let v = if k % 2 == 0 { specials[(i as usize + k) % specials.len()] } else { i as f64 * 1.5 };
            (i * 2 + (k as u64 % 2), 1_700_000_000_000 + (i as i64) * 15_000 - k as i64, v)
        })));
    }
    // Histogram samples of every shape, for the last two series only (so
    // damage to an earlier series record orphans none of them).
    if let Some(last) = n.checked_sub(1) {
        out.push(histograms(
            (0..7).map(|k| (last * 2 + k % 2, 1_700_000_000_000 + (last as i64) * 15_000 + k as i64, k)),
        ));
    }
    // Exemplars of the last two series (empty and multi-byte labels,
    // special values), after their series.
    if let Some(last) = n.checked_sub(1) {
        out.push(exemplars(
            (0..4).map(|k| {
                (last * 2 + k % 2, 1_700_000_000_000 + (last as i64) * 15_000 + k as i64, specials[k as usize])
            }),
        ));
    }
    out.push(Record::Samples(vec![]));
    out.push(Record::Series(vec![]));
    out.push(Record::HistogramSamples(vec![]));
    out.push(Record::Exemplars(vec![]));
    out
}

/// Exemplars `(ref, t, v)`, with labels that vary with `t`: none, a trace
/// id, and a multi-byte value.
fn exemplars(items: impl IntoIterator<Item = (u64, i64, f64)>) -> Record {
    Record::Exemplars(
        items
            .into_iter()
            .map(|(series_ref, t, v)| RefExemplar {
                series_ref,
                t,
                v,
                labels: match t % 3 {
                    0 => Labels::empty(),
                    1 => Labels::new([("trace_id", format!("{t:032x}"))]).unwrap(),
                    _ => Labels::new([("span", "zé"), ("trace_id", "🙂")]).unwrap(),
                },
            })
            .collect(),
    )
}

#[test]
fn records_round_trip_bit_exactly_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let recs = varied_records(50);
    let wal = Wal::open(dir.path(), opts(256, SyncPolicy::Never)).unwrap();
    for r in &recs {
        wal.log(std::slice::from_ref(r)).unwrap();
    }
    let (first, last) = wal.segment_range();
    assert_eq!(first, 1);
    assert!(last > 10, "small segments should have been cut, got {last}");
    wal.close().unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, recs);
    assert_eq!(stats.stopped_at, None);
    assert_eq!(stats.records, recs.len() as u64);
    // 250 float samples and 7 histogram samples.
    assert_eq!(stats.samples, 257);
    assert_eq!(stats.series, 100);
    assert_eq!(stats.segments, last);
}

#[test]
fn a_record_larger_than_a_segment_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(MIN_SEGMENT_SIZE, SyncPolicy::Never)).unwrap();
    let big = samples((0..100).map(|i| (i, i as i64, i as f64)));
    wal.log(&[series([1]), big.clone(), series([2])]).unwrap();
    assert_eq!(wal.segment_range(), (1, 3));
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, vec![series([1]), big, series([2])]);
}

#[test]
fn reopen_starts_a_new_segment_and_appends_after_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.log(&[series([1])]).unwrap();
    assert_eq!(wal.cut_segment().unwrap(), 1);
    wal.log(&[samples([(1, 10, 1.0)])]).unwrap();
    drop(wal);
    let mut seen = Vec::new();
    let (wal, stats) = Wal::open_and_replay(dir.path(), WalOptions::default(), |r| seen.push(r)).unwrap();
    assert_eq!(seen, vec![series([1]), samples([(1, 10, 1.0)])]);
    assert_eq!(stats.segments, 2);
    assert_eq!(wal.segment_range(), (1, 3));
    wal.log(&[samples([(1, 20, 2.0)])]).unwrap();
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, vec![series([1]), samples([(1, 10, 1.0)]), samples([(1, 20, 2.0)])]);
}

#[test]
fn replay_of_a_missing_directory_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (got, stats) = replay_all(&dir.path().join("nope"));
    assert!(got.is_empty());
    assert_eq!(stats, ReplayStats::default());
}

#[test]
fn invalid_options_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(Wal::open(dir.path(), opts(8, SyncPolicy::Never)), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Wal::open(dir.path(), opts(1024, SyncPolicy::Interval(Duration::ZERO))),
        Err(Error::InvalidArgument(_))
    ));
}

/// Logs each record in its own call and returns the segment length after each.
fn log_recording_offsets(dir: &Path, recs: &[Record]) -> Vec<u64> {
    let wal = Wal::open(dir, opts(1 << 20, SyncPolicy::Never)).unwrap();
    // The file runs ahead of the data with zeros: the data ends after the
    // header and what was written.
    let header = SEGMENT_HEADER.len() as u64;
    let mut offsets = vec![header + wal.bytes_written()];
    for r in recs {
        wal.log(std::slice::from_ref(r)).unwrap();
        offsets.push(header + wal.bytes_written());
    }
    offsets
}

#[test]
fn crash_at_every_record_boundary_replays_exactly_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let recs = varied_records(10);
    let offsets = log_recording_offsets(dir.path(), &recs);
    let seg = segment_path(dir.path(), 1);
    for (k, &off) in offsets.iter().enumerate() {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        truncate(&segment_path(copy.path(), 1), off);
        let (got, stats) = replay_all(copy.path());
        assert_eq!(got, recs[..k], "cut at record boundary {k}");
        assert_eq!(stats.stopped_at, None);
    }
    assert_eq!(fs::metadata(seg).unwrap().len(), *offsets.last().unwrap());
}

#[test]
fn crash_at_every_byte_of_the_last_records_replays_only_complete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let recs = vec![series([1, 2]), samples([(1, 5, 1.0), (2, 6, stale_nan())]), series([3]), samples([(3, 9, -0.0)])];
    let offsets = log_recording_offsets(dir.path(), &recs);
    let end = *offsets.last().unwrap();
    for cut in 0..end {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let seg = segment_path(copy.path(), 1);
        truncate(&seg, cut);
        let complete = offsets.iter().filter(|&&o| o <= cut).count().saturating_sub(1);
        let (got, stats) = replay_all(copy.path());
        assert_eq!(got, recs[..complete], "cut at byte {cut}");
        assert_eq!(stats.stopped_at.is_some(), !offsets.contains(&cut), "cut at byte {cut}: {stats:?}");

        // Open repairs the tail; new writes replay after the surviving records.
        let wal = Wal::open(copy.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
        wal.log(&[series([99])]).unwrap();
        drop(wal);
        let (after, stats) = replay_all(copy.path());
        assert_eq!(stats.stopped_at, None, "cut at byte {cut}");
        assert_eq!(after[..complete], recs[..complete]);
        assert_eq!(after[complete..], [series([99])]);
    }
}

/// Writes `recs` one per log call into segment 1 and closes.
fn write_log(dir: &Path, recs: &[Record]) -> Vec<u64> {
    log_recording_offsets(dir, recs)
}

#[test]
fn zero_filled_tail_is_the_end_of_data_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let recs = varied_records(3);
    write_log(dir.path(), &recs);
    let seg = segment_path(dir.path(), 1);
    let len = fs::metadata(&seg).unwrap().len();
    truncate(&seg, len + 32 * 1024); // like preallocated pages
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, recs);
    assert_eq!(stats.stopped_at, None);
    // Also a partial zero frame header.
    truncate(&seg, len + 3);
    assert_eq!(replay_all(dir.path()).0, recs);
}

#[test]
fn garbage_tail_is_truncated_at_the_last_good_record() {
    let dir = tempfile::tempdir().unwrap();
    let recs = varied_records(3);
    let offsets = write_log(dir.path(), &recs);
    let seg = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&seg).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(x as u8);
    }
    fs::write(&seg, &bytes).unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, recs);
    let Some(WalError::Corrupt { segment: 1, offset, .. }) = stats.stopped_at else { panic!("{stats:?}") };
    assert_eq!(offset, *offsets.last().unwrap());

    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), offset, "open truncates the garbage");
    wal.log(&[series([7])]).unwrap();
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!(stats.stopped_at, None);
    assert_eq!(got.len(), recs.len() + 1);
    assert_eq!(got.last(), Some(&series([7])));
}

#[test]
fn bit_flip_in_the_middle_skips_only_the_damaged_record_and_open_keeps_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let recs = varied_records(5);
    let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
    for (i, r) in recs.iter().enumerate() {
        wal.log(std::slice::from_ref(r)).unwrap();
        if i == recs.len() / 2 {
            wal.cut_segment().unwrap();
        }
    }
    drop(wal);
    let first_in_seg2 = recs.len() / 2 + 1;
    // Segment 1 holds recs[..first_in_seg2]; flip one bit inside its 3rd
    // record, the series record of refs 2 and 3.
    let seg1 = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&seg1).unwrap();
    let probe = tempfile::tempdir().unwrap();
    let offs = log_recording_offsets(probe.path(), &recs[..first_in_seg2]);
    let flip_at = (offs[2] + offs[3]) / 2;
    bytes[flip_at as usize] ^= 0x10;
    fs::write(&seg1, &bytes).unwrap();

    // Everything but the damaged record and the samples of its series
    // (recs[3] only holds samples of refs 2 and 3) comes back.
    let mut want: Vec<Record> = recs[..2].to_vec();
    want.extend_from_slice(&recs[4..]);
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, want);
    assert_eq!(stats.stopped_at, None);
    let d = stats.damage.clone().expect("damage is reported");
    assert_eq!(d.regions.len(), 1);
    assert_eq!((d.regions[0].segment, d.regions[0].offset), (1, offs[2]));
    assert_eq!(d.regions[0].len, offs[3] - offs[2]);
    assert_eq!(d.regions[0].reason, "frame checksum mismatch");
    assert_eq!(d.records_skipped, 1);
    assert_eq!((d.orphan_samples, d.orphan_series_refs), (5, 2));
    assert_eq!(d.quarantined_to, None, "replay changes nothing");

    let (wal, stats) = Wal::open_and_replay(dir.path(), WalOptions::default(), |_| {}).unwrap();
    let q = stats.damage.unwrap().quarantined_to.expect("damaged files were copied aside");
    assert_eq!(fs::read(q.join("00000001")).unwrap(), bytes, "the damaged segment is kept as it was");
    // The log was rewritten as checkpoint.2; writing continues in segment 3.
    assert!(checkpoint_path(dir.path(), 2).exists());
    assert_eq!(wal.segment_range(), (3, 3));
    wal.log(&[series([42])]).unwrap();
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!((stats.stopped_at, stats.damage), (None, None), "the second open is clean");
    assert_eq!(got[..want.len()], want[..]);
    assert_eq!(got[want.len()..], [series([42])]);
}

#[test]
fn every_single_bit_flip_is_detected_and_never_alters_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let recs = vec![series([1]), samples([(1, 1, 1.0), (1, 2, f64::NAN)])];
    write_log(dir.path(), &recs);
    let seg = segment_path(dir.path(), 1);
    let orig = fs::read(&seg).unwrap();
    for byte in 0..orig.len() {
        for bit in 0..8 {
            let mut b = orig.clone();
            b[byte] ^= 1 << bit;
            fs::write(&seg, &b).unwrap();
            let (got, stats) = replay_all(dir.path());
            // A flip can only drop records, never alter one.
            let mut it = recs.iter();
            assert!(got.iter().all(|g| it.any(|r| r == g)), "byte {byte} bit {bit}: {got:?}");
            assert!(stats.stopped_at.is_some() || stats.damage.is_some(), "byte {byte} bit {bit} undetected");
            // A damaged header alone loses nothing: the frames are intact.
            if byte < SEGMENT_HEADER.len() {
                assert_eq!(got, recs, "byte {byte} bit {bit}");
            }
        }
    }
}

#[test]
fn torn_or_empty_segment_header_is_repaired() {
    for len in [0u64, 3, 7] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[series([1])]);
        let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
        drop(wal);
        truncate(&segment_path(dir.path(), 2), len);
        let (got, stats) = replay_all(dir.path());
        assert_eq!(got, [series([1])]);
        assert!(len == 0 || stats.stopped_at.is_some());
        let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(wal.segment_range(), (1, 3));
        wal.log(&[series([2])]).unwrap();
        drop(wal);
        let (got, stats) = replay_all(dir.path());
        assert_eq!((got, stats.stopped_at), (vec![series([1]), series([2])], None));
    }
}

#[test]
fn missing_segment_is_reported_and_later_segments_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    for i in 0..3 {
        wal.log(&[series([i])]).unwrap();
        wal.cut_segment().unwrap();
    }
    drop(wal);
    fs::remove_file(segment_path(dir.path(), 2)).unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, [series([0]), series([2])]);
    let d = stats.damage.unwrap();
    assert_eq!((d.regions.len(), d.regions[0].segment, d.regions[0].len), (1, 2, 0));
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(wal.segment_range(), (5, 5));
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!((got, stats.damage), (vec![series([0]), series([2])], None));
}

#[test]
fn unrelated_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[series([1])]);
    fs::write(dir.path().join("README"), b"hello").unwrap();
    fs::write(dir.path().join("checkpoint.x"), b"hello").unwrap();
    assert_eq!(replay_all(dir.path()).0, [series([1])]);
    Wal::open(dir.path(), WalOptions::default()).unwrap();
}

#[test]
fn checkpoint_keeps_live_series_and_recent_samples_and_shrinks_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(4096, SyncPolicy::Never)).unwrap();
    wal.log(&[series(0..10)]).unwrap();
    for t in 0..200i64 {
        wal.log(&[samples((0..10).map(|r| (r, t, t as f64)))]).unwrap();
    }
    let upto = wal.cut_segment().unwrap();
    wal.log(&[samples([(0, 500, 5.0), (9, 500, 9.0)])]).unwrap();
    let before = wal.size_bytes();
    let keep = |r: u64| r.is_multiple_of(2);
    let stats = wal.checkpoint(upto, keep, 150).unwrap();
    assert_eq!(stats.upto, upto);
    assert_eq!((stats.series_kept, stats.series_dropped), (5, 5));
    assert_eq!(stats.samples_kept, 5 * 50);
    assert_eq!(stats.samples_dropped, 2000 - 250);
    assert_eq!(stats.segments_removed, upto);
    assert_eq!(stats.size_before, before);
    assert!(stats.size_after < before / 2, "{stats:?}");
    assert_eq!(wal.size_bytes(), stats.size_after);
    assert_eq!(wal.segment_range(), (upto + 1, upto + 1));
    for s in 1..=upto {
        assert!(!segment_path(dir.path(), s).exists());
    }
    wal.log(&[samples([(2, 600, 6.0)])]).unwrap();
    drop(wal);

    let (got, rstats) = replay_all(dir.path());
    assert_eq!(rstats.checkpoint, Some(upto));
    assert_eq!(rstats.stopped_at, None);
    let mut series_seen = Vec::new();
    let mut sample_count = 0;
    for r in &got {
        match r {
            Record::Series(s) => series_seen.extend(s.iter().map(|s| s.series_ref)),
            Record::Samples(s) => {
                for x in s {
                    if x.t < 500 {
                        assert!(x.t >= 150 && keep(x.series_ref), "{x:?}");
                    }
                    sample_count += 1;
                }
            }
            Record::HistogramSamples(_) | Record::Exemplars(_) => {
                unreachable!("this test logs no histogram samples or exemplars")
            }
        }
    }
    assert_eq!(series_seen, [0, 2, 4, 6, 8]);
    assert_eq!(sample_count, 250 + 2 + 1);
    assert_eq!(got[got.len() - 2..], [samples([(0, 500, 5.0), (9, 500, 9.0)]), samples([(2, 600, 6.0)])]);
}

#[test]
fn checkpoint_keeps_histogram_samples_of_live_series_at_or_after_mint() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(4096, SyncPolicy::Never)).unwrap();
    wal.log(&[series(0..6)]).unwrap();
    for t in 0..40i64 {
        // Histogram and float samples in one commit, as an appender logs them.
        wal.log(&[histograms((0..6).map(|r| (r, t * 10, r + t as u64))), samples([(5, t * 10, t as f64)])]).unwrap();
    }
    let upto = wal.cut_segment().unwrap();
    // After the checkpoint's range: kept whatever its series and time.
    wal.log(&[histograms([(0, 5, 3)])]).unwrap();
    let keep = |r: u64| !r.is_multiple_of(3);
    let mint = 200;
    let stats = wal.checkpoint(upto, keep, mint).unwrap();
    assert_eq!((stats.series_kept, stats.series_dropped), (4, 2));
    // t = 200..=390: 20 timestamps, 4 kept series' histograms plus series
    // 5's float sample each.
    assert_eq!(stats.samples_kept, 20 * 4 + 20);
    assert_eq!(stats.samples_dropped, 40 * 7 - (20 * 4 + 20));
    drop(wal);

    let (got, rstats) = replay_all(dir.path());
    assert_eq!((rstats.checkpoint, rstats.stopped_at), (Some(upto), None));
    let mut kept = Vec::new();
    for r in &got {
        if let Record::HistogramSamples(s) = r {
            kept.extend(s.iter().cloned());
        }
    }
    let mut want: Vec<RefHistogramSample> = Vec::new();
    for t in 20..40i64 {
        for r in (0..6).filter(|&r| keep(r)) {
            want.push(RefHistogramSample {
                series_ref: r,
                t: t * 10,
                h: histogram_record::tests::example(r + t as u64),
            });
        }
    }
    want.push(RefHistogramSample { series_ref: 0, t: 5, h: histogram_record::tests::example(3) });
    // In log order, bit for bit (stale markers and NaN sums included).
    assert_eq!(kept, want);
    assert_eq!(rstats.samples, 20 * 4 + 20 + 1);
}

#[test]
fn damage_drops_histogram_samples_of_lost_series_and_counts_lost_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let recs = vec![
        series([1]),
        series([2]),
        histograms([(1, 10, 0), (2, 10, 3)]),
        histograms([(1, 20, 2), (2, 20, 6), (1, 21, 4)]),
        histograms([(1, 30, 1)]),
    ];
    let offs = log_recording_offsets(dir.path(), &recs);
    // Reopen: segment 1 is complete, so a bad frame in it is damage.
    drop(Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap());
    let seg = segment_path(dir.path(), 1);
    let mut b = fs::read(&seg).unwrap();
    // Damage the series record of ref 2 and the second histogram record.
    b[offs[1] as usize + 10] ^= 0x01;
    b[offs[3] as usize + 20] ^= 0x01;
    fs::write(&seg, &b).unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, [series([1]), histograms([(1, 10, 0)]), histograms([(1, 30, 1)])]);
    let d = stats.damage.unwrap();
    assert_eq!(d.records_skipped, 2);
    assert_eq!((d.orphan_samples, d.orphan_series_refs), (1, 1));
    assert_eq!(d.samples_lost, 3);
    assert_eq!(d.series_lost, 1);
    assert_eq!(stats.samples, 2);
}

#[test]
fn a_second_checkpoint_builds_on_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.log(&[series([1, 2]), samples([(1, 1, 1.0), (2, 1, 2.0)])]).unwrap();
    let a = wal.cut_segment().unwrap();
    wal.checkpoint(a, |_| true, 0).unwrap();
    wal.log(&[series([3]), samples([(3, 2, 3.0)])]).unwrap();
    let b = wal.cut_segment().unwrap();
    wal.checkpoint(b, |r| r != 1, 0).unwrap();
    assert!(!checkpoint_path(dir.path(), a).exists(), "older checkpoint deleted");
    assert!(checkpoint_path(dir.path(), b).exists());
    // Re-checkpointing the same range or the live segment is refused.
    assert!(matches!(wal.checkpoint(b, |_| true, 0), Err(Error::InvalidArgument(_))));
    assert!(matches!(wal.checkpoint(wal.segment_range().1, |_| true, 0), Err(Error::InvalidArgument(_))));
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!(stats.checkpoint, Some(b));
    assert_eq!(
        got,
        [
            Record::Series(vec![RefSeries { series_ref: 2, labels: labels(2) }]),
            samples([(2, 1, 2.0)]),
            series([3]),
            samples([(3, 2, 3.0)]),
        ]
    );
}

#[test]
fn crash_during_checkpoint_leaves_a_tmp_dir_that_open_removes() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.log(&[series([1]), samples([(1, 1, 1.0)])]).unwrap();
    let upto = wal.cut_segment().unwrap();
    drop(wal);
    // A crash before the rename: a half-written tmp checkpoint with junk.
    let tmp = dir.path().join(format!("checkpoint.{upto:08}.tmp"));
    fs::create_dir(&tmp).unwrap();
    fs::write(tmp.join("00000000"), b"TMWL\x01\x00\x00\x00garbage").unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(stats.checkpoint, None);
    assert_eq!(got, [series([1]), samples([(1, 1, 1.0)])]);
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(!tmp.exists());
    // And checkpointing works afterwards.
    wal.checkpoint(upto, |_| true, 0).unwrap();
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, [series([1]), samples([(1, 1, 1.0)])]);
}

#[test]
fn crash_after_checkpoint_rename_ignores_and_removes_leftover_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.log(&[series([1])]).unwrap();
    let upto = wal.cut_segment().unwrap();
    wal.log(&[series([2])]).unwrap();
    drop(wal);
    let saved = fs::read(segment_path(dir.path(), upto)).unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.checkpoint(upto, |_| true, 0).unwrap();
    drop(wal);
    // Simulate the crash before the old segment was deleted.
    fs::write(segment_path(dir.path(), upto), saved).unwrap();
    assert_eq!(replay_all(dir.path()).0, [series([1]), series([2])]);
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(!segment_path(dir.path(), upto).exists());
    assert_eq!(wal.segment_range().0, upto + 1);
}

#[test]
fn corrupt_checkpoint_is_set_aside_and_open_continues_with_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.log(&[series([1, 2, 3])]).unwrap();
    wal.log(&[series([4])]).unwrap();
    let upto = wal.cut_segment().unwrap();
    wal.checkpoint(upto, |_| true, 0).unwrap();
    wal.log(&[samples([(4, 10, 1.0), (1, 10, 2.0)])]).unwrap();
    drop(wal);
    // Damage the first record of the checkpoint (series 1, 2, 3).
    let seg = checkpoint_path(dir.path(), upto).join("00000000");
    let mut b = fs::read(&seg).unwrap();
    b[SEGMENT_HEADER.len() + 12] ^= 0xff;
    fs::write(&seg, &b).unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, [series([4]), samples([(4, 10, 1.0)])]);
    let d = stats.damage.unwrap();
    assert_eq!(d.checkpoint, Some(upto));
    assert_eq!((d.records_skipped, d.orphan_samples, d.orphan_series_refs), (1, 1, 1));
    assert_eq!(d.lost_time_range, Some((10, 10)));

    let (wal, stats) = Wal::open_and_replay(dir.path(), WalOptions::default(), |_| {}).unwrap();
    let q = stats.damage.unwrap().quarantined_to.unwrap();
    let name = checkpoint_path(dir.path(), upto).file_name().unwrap().to_owned();
    assert_eq!(fs::read(q.join(name).join("00000000")).unwrap(), b, "the damaged checkpoint is kept aside");
    assert!(!checkpoint_path(dir.path(), upto).exists());
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!((got, stats.damage), (vec![series([4]), samples([(4, 10, 1.0)])], None));
}

#[test]
fn concurrent_writers_share_commits_and_every_acknowledged_record_replays() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), opts(2048, SyncPolicy::EveryCommit)).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|th| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let r = th * 1000 + i;
                    wal.log(&[series([r]), samples([(r, i as i64, th as f64)])]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(wal.segment_range().1 > 1);
    wal.close().unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(stats.stopped_at, None);
    assert_eq!(got.len(), 400);
    // Each call's two records stay adjacent and in order.
    for pair in got.chunks(2) {
        let (Record::Series(s), Record::Samples(x)) = (&pair[0], &pair[1]) else { panic!("{pair:?}") };
        assert_eq!(s[0].series_ref, x[0].series_ref);
    }
    let mut refs: Vec<u64> = got
        .iter()
        .filter_map(|r| match r {
            Record::Series(s) => Some(s[0].series_ref),
            _ => None,
        })
        .collect();
    refs.sort_unstable();
    let want: Vec<u64> = (0..4).flat_map(|th| (0..50).map(move |i| th * 1000 + i)).collect();
    assert_eq!(refs, want);
}

#[test]
fn callers_queued_behind_a_slow_write_share_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), WalOptions::default()).unwrap());
    // Holding the segment lock stands in for a slow fsync by the first leader.
    let io = wal.inner.io.lock();
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || wal.log(&[series([i])]).unwrap())
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wal.inner.commit.lock().next_seq < 8 {
        assert!(std::time::Instant::now() < deadline, "writers never queued");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(io);
    for t in threads {
        t.join().unwrap();
    }
    // The first caller's batch, then one batch (one write + one fsync) for the other seven.
    assert_eq!(wal.inner.commit.lock().batches, 2);
    wal.close().unwrap();
    assert_eq!(replay_all(dir.path()).0.len(), 8);
}

#[test]
fn callers_queued_behind_a_batch_wake_once_one_of_them_to_lead() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), WalOptions::default()).unwrap());
    for round in 0..3u64 {
        let before = { wal.inner.commit.lock().wakeups };
        // The first caller leads and stalls on the segment lock (a slow
        // fsync); the other seven queue behind it.
        let io = wal.inner.io.lock();
        let threads: Vec<_> = (0..8u64)
            .map(|i| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || wal.log(&[series([round * 100 + i])]).unwrap())
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while wal.inner.commit.lock().asleep < 7 {
            assert!(std::time::Instant::now() < deadline, "writers never queued");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(io);
        for t in threads {
            t.join().unwrap();
        }
        // Every caller but the first leader slept once and woke once: the
        // ones the first batch carried when it ended, the ones queued
        // behind it when theirs ended, except the one woken to lead it.
        // (Waking all of them at the end of the first batch would wake
        // the ones queued behind it twice.)
        let st = wal.inner.commit.lock();
        assert_eq!(st.wakeups - before, 7, "round {round}");
        assert_eq!(st.done_seq, (round + 1) * 8);
    }
    wal.close().unwrap();
    assert_eq!(replay_all(dir.path()).0.len(), 24);
}

#[test]
fn enqueued_records_keep_their_order_in_one_batch_and_close_writes_unwaited_ones() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let a = wal.enqueue(Encoded::new(&[series([1]), samples([(1, 10, 1.0)])]).unwrap(), true).unwrap().unwrap();
    let b = wal.enqueue(Encoded::new(&[samples([(1, 20, 2.0)])]).unwrap(), true).unwrap().unwrap();
    assert!(wal.enqueue(Encoded::new(&[]).unwrap(), true).unwrap().is_none());
    // Waiting on the later ticket writes both, in queue order, in one batch.
    wal.wait(b).unwrap();
    wal.wait(a).unwrap();
    assert_eq!(wal.inner.commit.lock().batches, 1);
    // Queued, never waited on: close writes it.
    let _unwaited = wal.enqueue(Encoded::new(&[samples([(1, 30, 3.0)])]).unwrap(), true).unwrap();
    wal.close().unwrap();
    assert!(matches!(wal.enqueue(Encoded::new(&[samples([(1, 40, 4.0)])]).unwrap(), true), Err(Error::Closed)));
    let (records, _) = replay_all(dir.path());
    let ts: Vec<i64> = records
        .iter()
        .flat_map(|r| match r {
            Record::Samples(s) => s.iter().map(|s| s.t).collect(),
            Record::HistogramSamples(s) => s.iter().map(|s| s.t).collect(),
            Record::Exemplars(e) => e.iter().map(|e| e.t).collect(),
            Record::Series(_) => vec![-1],
        })
        .collect();
    assert_eq!(ts, [-1, 10, 20, 30]);
}

fn open_faulty(dir: &Path, o: WalOptions) -> (Wal, crate::vfs::FaultFs) {
    let faults = crate::vfs::FaultFs::new();
    let (wal, _) = Wal::open_and_replay_on(Arc::new(faults.clone()), dir, o, &dir.join("damaged"), |_| {}).unwrap();
    (wal, faults)
}

/// Options whose writes grow the file (no zeros written ahead), so that a
/// full disk can tear a frame.
fn plain_appends() -> WalOptions {
    WalOptions { zero_ahead: 0, ..WalOptions::default() }
}

#[test]
fn segment_runs_ahead_with_zeros_and_is_cut_to_its_data_when_closed() {
    let dir = tempfile::tempdir().unwrap();
    let o = WalOptions { segment_size: 1 << 20, zero_ahead: 64 << 10, ..WalOptions::default() };
    let wal = Wal::open(dir.path(), o.clone()).unwrap();
    let first = wal.segment_range().1;
    let path = segment_path(dir.path(), first);
    wal.log(&[series([1, 2])]).unwrap();
    let data = SEGMENT_HEADER.len() as u64 + wal.bytes_written();
    assert_eq!(fs::metadata(&path).unwrap().len(), data + (64 << 10), "zeros written ahead");
    assert_eq!(wal.size_bytes(), data, "the log's size leaves the zeros out");
    // A commit inside the zeros leaves the length alone.
    wal.log(&[samples([(1, 5, 1.0)])]).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), data + (64 << 10));
    // A reader of the live log (a crash now: nothing more is written)
    // sees every record and a clean end.
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, [series([1, 2]), samples([(1, 5, 1.0)])]);
    assert_eq!(stats.stopped_at, None);
    assert_eq!(stats.damage, None);
    // Closing a segment cuts its zeros.
    let closed = wal.cut_segment().unwrap();
    let data = SEGMENT_HEADER.len() as u64 + wal.bytes_written();
    assert_eq!(fs::metadata(&path).unwrap().len(), data, "closed segment is exact");
    wal.log(&[samples([(2, 9, 2.5)])]).unwrap();
    wal.close().unwrap();
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, [series([1, 2]), samples([(1, 5, 1.0)]), samples([(2, 9, 2.5)])]);
    assert_eq!(stats.stopped_at, None);
    assert!(closed < list_dir(dir.path()).unwrap().segments.last().copied().unwrap());

    // Never past the segment size: the zeros stop there.
    let small = tempfile::tempdir().unwrap();
    let wal = Wal::open(small.path(), WalOptions { segment_size: 4096, zero_ahead: 64 << 10, ..o }).unwrap();
    wal.log(&[series([1])]).unwrap();
    let cur = segment_path(small.path(), wal.segment_range().1);
    assert_eq!(fs::metadata(&cur).unwrap().len(), 4096);
}

#[test]
fn a_nearly_full_disk_without_room_for_the_zeros_ahead_still_takes_commits_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let o = WalOptions { zero_ahead: 1 << 20, ..WalOptions::default() };
    let (wal, faults) = open_faulty(dir.path(), o);
    let path = segment_path(dir.path(), wal.segment_range().1);
    // Room for the record, not for 1 MiB of zeros.
    faults.set_space(Some(2000));
    wal.log(&[series([1])]).unwrap();
    assert!(fs::metadata(&path).unwrap().len() <= SEGMENT_HEADER.len() as u64 + 2000);
    assert_eq!(wal.failure(), None);
    // Space is back: the zeros ahead are written again.
    faults.set_space(None);
    wal.log(&[series([2])]).unwrap();
    assert!(fs::metadata(&path).unwrap().len() > 1 << 20);
    wal.close().unwrap();
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, [series([1]), series([2])]);
}

fn seg_files(dir: &Path) -> Vec<u64> {
    list_dir(dir).unwrap().segments
}

#[test]
fn enospc_mid_record_fails_the_commit_rolls_it_back_and_later_commits_succeed() {
    use crate::vfs::{FaultKind, Op};
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_faulty(dir.path(), plain_appends());
    wal.log(&[series([1])]).unwrap();
    let seg = wal.segment_range().1;
    let len_before = fs::metadata(segment_path(dir.path(), seg)).unwrap().len();
    // Three bytes fit: a torn frame header lands in the file.
    faults.set_space(Some(3));
    let err = wal.log(&[series([2]), samples([(2, 5, 1.0)])]).unwrap_err();
    assert!(matches!(&err, Error::Io { source, .. } if crate::vfs::is_no_space(source)), "{err}");
    // Rolled back at once: the partial frame is gone, same segment, writable.
    assert_eq!(fs::metadata(segment_path(dir.path(), seg)).unwrap().len(), len_before);
    assert_eq!(wal.segment_range().1, seg, "ENOSPC keeps the segment");
    assert_eq!(wal.failure(), None);
    // Still full: fails again, never poisoned for good.
    assert!(wal.log(&[series([3])]).is_err());
    faults.set_space(None);
    wal.log(&[series([4])]).unwrap();
    // Truncation itself failing: the log stays unwritable until it succeeds.
    faults.set_space(Some(0));
    faults.fail(Op::SetLen, "", FaultKind::Io);
    assert!(wal.log(&[series([5])]).is_err());
    assert!(wal.failure().is_some());
    assert!(wal.log(&[series([6])]).is_err(), "refused while the tail cannot be cut");
    faults.clear();
    wal.log(&[series([7])]).unwrap();
    assert_eq!(wal.failure(), None);
    wal.close().unwrap();
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, [series([1]), series([4]), series([7])]);
    assert!(faults.injected() >= 4);
}

#[test]
fn enospc_after_a_complete_frame_moves_to_a_fresh_segment_for_tailers() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_faulty(dir.path(), plain_appends());
    wal.log(&[series([1])]).unwrap();
    let seg = wal.segment_range().1;
    // The first frame of the batch fits completely, the second is torn: a
    // tailer may have read the first, so its offset is not reused.
    let mut first = Vec::new();
    super::record::encode_frame(&series([2]), &mut first).unwrap();
    faults.set_space(Some(first.len() as u64 + 3));
    assert!(wal.log(&[series([2]), series([3])]).is_err());
    // The disk is still full: the fresh segment cannot be created yet.
    assert!(wal.failure().is_some());
    faults.set_space(None);
    wal.log(&[series([4])]).unwrap();
    assert_eq!(wal.segment_range().1, seg + 1);
    wal.close().unwrap();
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, [series([1]), series([4])]);
}

#[test]
fn failed_fsync_is_not_acknowledged_and_writing_moves_to_a_fresh_segment() {
    use crate::vfs::{FaultKind, Op};
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_faulty(dir.path(), WalOptions::default());
    wal.log(&[series([1])]).unwrap();
    let seg = wal.segment_range().1;
    faults.fail_once(Op::Sync, "", FaultKind::Io);
    assert!(matches!(wal.log(&[series([2])]), Err(Error::Io { .. })));
    assert_eq!(wal.segment_range().1, seg + 1, "a segment whose fsync failed is not appended to");
    wal.log(&[series([3])]).unwrap();
    wal.close().unwrap();
    drop(wal);
    // The unacknowledged record was cut out of the old segment.
    assert_eq!(replay_all(dir.path()).0, [series([1]), series([3])]);
    assert_eq!(seg_files(dir.path()), [seg, seg + 1]);

    // Under the interval policy a failed background fsync also moves on.
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_faulty(dir.path(), opts(1 << 20, SyncPolicy::Interval(Duration::from_millis(5))));
    let seg = wal.segment_range().1;
    faults.fail_once(Op::Sync, "", FaultKind::Io);
    wal.log(&[series([1])]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while faults.injected() == 0 {
        assert!(std::time::Instant::now() < deadline, "the background fsync never ran");
        std::thread::sleep(Duration::from_millis(2));
    }
    wal.log(&[series([2])]).unwrap();
    assert_eq!(wal.segment_range().1, seg + 1);
    wal.close().unwrap();
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, [series([1]), series([2])]);

    // A failed fsync while cutting: the cut fails, the next write repairs.
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_faulty(dir.path(), opts(1 << 20, SyncPolicy::Interval(Duration::from_secs(3600))));
    faults.fail_once(Op::Sync, "", FaultKind::Io);
    assert!(matches!(wal.cut_segment(), Err(Error::Io { .. })));
    wal.log(&[series([3])]).unwrap();
    wal.close().unwrap();
}

#[test]
fn grouped_commits_of_a_failed_batch_all_fail_and_later_ones_succeed() {
    use crate::vfs::{FaultKind, Op};
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_faulty(dir.path(), WalOptions::default());
    let wal = Arc::new(wal);
    // Hold the io lock so eight callers queue into one batch behind a leader.
    let io = wal.inner.io.lock();
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let wal = wal.clone();
            std::thread::spawn(move || wal.log(&[series([i])]))
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wal.inner.commit.lock().next_seq < 8 {
        assert!(std::time::Instant::now() < deadline, "writers never queued");
        std::thread::sleep(Duration::from_millis(1));
    }
    faults.fail(Op::Sync, "", FaultKind::Io);
    drop(io);
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(results.iter().all(|r| r.is_err()), "no commit of a failed fsync is acknowledged");
    assert!(wal.inner.commit.lock().failures.is_empty(), "every caller collected its error");
    faults.clear();
    wal.log(&[series([100])]).unwrap();
    wal.close().unwrap();
    drop(wal);
    assert_eq!(replay_all(dir.path()).0, [series([100])]);
}

#[test]
fn removed_directory_fails_writes_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let wal = Wal::open(&wal_dir, opts(MIN_SEGMENT_SIZE, SyncPolicy::Never)).unwrap();
    wal.log(&[series([1])]).unwrap();
    fs::remove_dir_all(&wal_dir).unwrap();
    assert!(matches!(wal.log(&[series([2]), series([3])]), Err(Error::Io { .. })));
    assert!(matches!(wal.log(&[series([4])]), Err(Error::Io { .. })));
    fs::create_dir(&wal_dir).unwrap();
    wal.log(&[series([5])]).unwrap();
}

#[test]
fn interval_policy_syncs_in_the_background_and_close_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Interval(Duration::from_millis(1)))).unwrap();
    for i in 0..20 {
        wal.log(&[series([i])]).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wal.inner.io.lock().dirty {
        assert!(std::time::Instant::now() < deadline, "the background thread never fsynced");
        std::thread::sleep(Duration::from_millis(1));
    }
    wal.close().unwrap();
    wal.close().unwrap();
    assert!(wal.syncer.lock().is_none(), "the syncer thread was joined");
    assert!(matches!(wal.log(&[series([99])]), Err(Error::Closed)));
    drop(wal);
    assert_eq!(replay_all(dir.path()).0.len(), 20);
}

#[test]
fn frame_claiming_more_than_the_size_limit_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[series([1])]);
    let seg = segment_path(dir.path(), 1);
    let good = fs::metadata(&seg).unwrap().len();
    let mut b = fs::read(&seg).unwrap();
    b.extend_from_slice(&(super::record::MAX_BODY_LEN as u32 + 1).to_le_bytes());
    b.extend_from_slice(&[0xaa; 12]);
    fs::write(&seg, b).unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, [series([1])]);
    assert!(matches!(stats.stopped_at, Some(WalError::Corrupt { segment: 1, offset, .. }) if offset == good));
}

#[test]
fn wal_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Wal>();
}

fn arb_value() -> impl Strategy<Value = f64> {
    prop_oneof![any::<u64>().prop_map(f64::from_bits), Just(stale_nan()), Just(-0.0), Just(f64::INFINITY), any::<f64>(),]
}

fn arb_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        prop::collection::vec((any::<u64>(), "[a-z]{1,6}", "[ -~]{1,8}"), 0..4).prop_map(|v| Record::Series(
            v.into_iter()
                .map(|(r, n, val)| RefSeries { series_ref: r, labels: Labels::new([(n, val)]).unwrap() })
                .collect()
        )),
        prop::collection::vec((any::<u64>(), any::<i64>(), arb_value()), 0..20).prop_map(|v| Record::Samples(
            v.into_iter().map(|(series_ref, t, v)| RefSample { series_ref, t, v }).collect()
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_record_sequences_round_trip(
        batches in prop::collection::vec(prop::collection::vec(arb_record(), 0..4), 0..12),
        segment_size in 64u64..2048,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), opts(segment_size, SyncPolicy::Never)).unwrap();
        for b in &batches {
            wal.log(b).unwrap();
        }
        drop(wal);
        let (got, stats) = replay_all(dir.path());
        let want: Vec<Record> = batches.into_iter().flatten().collect();
        prop_assert_eq!(stats.stopped_at, None);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_segment_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), with_header in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut content = if with_header { SEGMENT_HEADER.to_vec() } else { Vec::new() };
        content.extend_from_slice(&bytes);
        fs::write(segment_path(dir.path(), 1), &content).unwrap();
        let (before, _) = replay_all(dir.path());
        let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
        wal.log(&[series([5])]).unwrap();
        drop(wal);
        let (after, stats) = replay_all(dir.path());
        prop_assert_eq!(stats.stopped_at, None);
        prop_assert_eq!(&after[..before.len()], &before[..]);
        prop_assert_eq!(&after[before.len()..], &[series([5])][..]);
    }
}

/// In the child process: log records forever, printing each acknowledged one.
const KILL_CHILD_ENV: &str = "TIDEMARK_WAL_KILL_CHILD_DIR";

#[test]
fn acknowledged_records_survive_kill_9() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    if let Ok(dir) = std::env::var(KILL_CHILD_ENV) {
        // Child: no fsync at all; kill -9 must still not lose acknowledged records,
        // because every acknowledged record has been written to the kernel.
        let wal = Wal::open(Path::new(&dir), opts(4096, SyncPolicy::Never)).unwrap();
        let mut out = std::io::stdout();
        for i in 0u64.. {
            wal.log(&[series([i]), samples([(i, i as i64, i as f64)])]).unwrap();
            writeln!(out, "ACK {i}").unwrap();
            out.flush().unwrap();
        }
        unreachable!();
    }

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "wal::tests::acknowledged_records_survive_kill_9", "--nocapture", "--test-threads=1"])
        .env(KILL_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut last_ack = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ACK ") {
            let n: u64 = n.parse().unwrap();
            last_ack = Some(n);
            if n >= 300 {
                child.kill().unwrap(); // SIGKILL on Unix
                break;
            }
        }
    }
    child.wait().unwrap();
    let last_ack = last_ack.expect("child acknowledged records");

    let (got, stats) = replay_all(dir.path());
    // Records after the last acknowledgement may or may not be there (a torn
    // tail is allowed); every acknowledged one must be, in order.
    let want: Vec<Record> = (0..=last_ack).flat_map(|i| [series([i]), samples([(i, i as i64, i as f64)])]).collect();
    assert!(got.len() >= want.len(), "lost acknowledged records: {stats:?}");
    assert_eq!(got[..want.len()], want[..]);
    assert!(stats.segments > 1);
}

/// Format version 1, byte for byte (see docs/format/wal.md). If this test
/// fails, the on-disk format changed: bump the version and keep reading v1.
const GOLDEN_V1_SEGMENT: [u8; 72] = [
    84, 77, 87, 76, 1, 0, 0, 0, // "TMWL", version 1, reserved
    22, 0, 0, 0, 74, 38, 114, 184, // frame: length 22, CRC32-C
    1, 1, 1, 18, 8, 95, 95, 110, 97, 109, 101, 95, 95, 2, 117, 112, 3, 106, 111, 98, 1, 97, // series
    26, 0, 0, 0, 72, 6, 139, 228, // frame: length 26, CRC32-C
    2, 2, 1, 208, 15, // samples: count 2, base ref 1, base t 1000
    0, 0, 0, 0, 0, 0, 0, 0, 240, 63, // +0, +0, 1.0
    0, 208, 15, 2, 0, 0, 0, 0, 0, 240, 127, // +0, +1000, stale marker
];

fn golden_records() -> Vec<Record> {
    vec![
        Record::Series(vec![RefSeries {
            series_ref: 1,
            labels: Labels::new([("__name__", "up"), ("job", "a")]).unwrap(),
        }]),
        samples([(1, 1000, 1.0), (1, 2000, stale_nan())]),
    ]
}

/// What the writer produces since 2026-12-05: record types 3 and 4 (too
/// small to be compressed here; `record.rs` tests the compressed form).
const GOLDEN_V2_SEGMENT: [u8; 67] = [
    84, 77, 87, 76, 1, 0, 0, 0, // "TMWL", version 1, reserved
    23, 0, 0, 0, 154, 245, 8, 79, // frame: length 23, CRC32-C
    3, 1, 0, // series v2: count 1, flags 0 (not compressed)
    1, 18, 8, 95, 95, 110, 97, 109, 101, 95, 95, 2, 117, 112, 3, 106, 111, 98, 1, 97, // ref 1, labels
    20, 0, 0, 0, 77, 22, 60, 223, // frame: length 20, CRC32-C
    4, 2, 0, // samples v2: count 2, flags 0
    2, 0, // refs: +1, +0
    208, 15, 208, 15, // times: +1000, +1000
    0, 255, // kinds: 0 decimals, raw
    2,   // mantissa 1
    2, 0, 0, 0, 0, 0, 240, 127, // raw: stale marker
];

#[test]
fn format_v1_fixture_is_still_read_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 1), GOLDEN_V1_SEGMENT).unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, golden_records());
    assert_eq!(stats.stopped_at, None);
}

#[test]
fn format_v2_fixture_is_written_and_read_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
    wal.log(&golden_records()).unwrap();
    drop(wal);
    assert_eq!(fs::read(segment_path(dir.path(), 1)).unwrap(), GOLDEN_V2_SEGMENT);

    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 1), GOLDEN_V2_SEGMENT).unwrap();
    let (got, stats) = replay_all(dir.path());
    assert_eq!(got, golden_records());
    assert_eq!(stats.stopped_at, None);
}

#[test]
fn a_log_mixing_v1_and_v2_segments_replays_and_checkpoints_into_v2() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 1), GOLDEN_V1_SEGMENT).unwrap();
    let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
    wal.log(&[samples([(1, 3000, 2.5)])]).unwrap();
    let upto = wal.cut_segment().unwrap();
    wal.checkpoint(upto, |_| true, i64::MIN).unwrap();
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    let mut want = golden_records();
    want.push(samples([(1, 3000, 2.5)]));
    assert_eq!(got, want);
    assert_eq!((stats.stopped_at, stats.damage), (None, None));
    // The checkpoint rewrote the v1 records in the v2 types.
    let ck = fs::read(checkpoint_path(dir.path(), upto).join("00000000")).unwrap();
    assert_eq!(ck[..GOLDEN_V2_SEGMENT.len()], GOLDEN_V2_SEGMENT);
}

#[derive(Debug, Clone)]
enum Op {
    Log(Vec<Record>),
    Cut,
    Checkpoint {
        drop_mod3: u64,
        mint: i64,
    },
    /// Drop without close (the process dies; written bytes stay) and reopen.
    Reopen,
    /// A torn write: garbage appended to the segment being written, then reopen.
    TornReopen(Vec<u8>),
}

fn arb_small_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        prop::collection::vec(0u64..10, 0..3).prop_map(series),
        prop::collection::vec((0u64..10, 0i64..100, arb_value()), 0..6).prop_map(samples),
        prop::collection::vec((0u64..10, 0i64..100, any::<u64>()), 0..4).prop_map(histograms),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(arb_small_record(), 1..4).prop_map(Op::Log),
        1 => Just(Op::Cut),
        1 => (0u64..3, 0i64..100).prop_map(|(drop_mod3, mint)| Op::Checkpoint { drop_mod3, mint }),
        1 => Just(Op::Reopen),
        1 => prop::collection::vec(1u8..=255, 1..40).prop_map(Op::TornReopen),
    ]
}

/// What the checkpoint keeps of one record, as the model sees it.
fn model_filter(rec: &Record, keep: impl Fn(u64) -> bool, mint: i64) -> Option<Record> {
    let out = match rec {
        Record::Series(s) => Record::Series(s.iter().filter(|s| keep(s.series_ref)).cloned().collect()),
        Record::Samples(s) => {
            Record::Samples(s.iter().filter(|s| s.t >= mint && keep(s.series_ref)).copied().collect())
        }
        Record::HistogramSamples(s) => {
            Record::HistogramSamples(s.iter().filter(|s| s.t >= mint && keep(s.series_ref)).cloned().collect())
        }
        Record::Exemplars(e) => {
            Record::Exemplars(e.iter().filter(|e| e.t >= mint && keep(e.series_ref)).cloned().collect())
        }
    };
    match &out {
        Record::Series(s) if s.is_empty() => None,
        Record::Samples(s) if s.is_empty() => None,
        Record::HistogramSamples(s) if s.is_empty() => None,
        Record::Exemplars(e) if e.is_empty() => None,
        _ => Some(out),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random logs, cuts, checkpoints, crashes and torn writes, checked
    /// against a plain list of what must replay.
    #[test]
    fn random_operations_and_crashes_match_a_model(ops in prop::collection::vec(arb_op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let o = || opts(1 << 20, SyncPolicy::Never);
        let mut wal = Some(Wal::open(dir.path(), o()).unwrap());
        // (segment the record is in, or 0 once it lives in a checkpoint; record)
        let mut model: Vec<(u64, Record)> = Vec::new();
        let mut seg = 1u64;
        for op in ops {
            let w = wal.as_ref().unwrap();
            match op {
                Op::Log(recs) => {
                    w.log(&recs).unwrap();
                    model.extend(recs.into_iter().map(|r| (seg, r)));
                }
                Op::Cut => {
                    prop_assert_eq!(w.cut_segment().unwrap(), seg);
                    seg += 1;
                }
                Op::Checkpoint { drop_mod3, mint } => {
                    let upto = w.cut_segment().unwrap();
                    seg += 1;
                    let keep = move |r: u64| r % 3 != drop_mod3;
                    w.checkpoint(upto, keep, mint).unwrap();
                    prop_assert_eq!(w.segment_range(), (upto + 1, seg));
                    model = model
                        .into_iter()
                        .filter_map(|(s, r)| if s <= upto { model_filter(&r, keep, mint).map(|r| (0, r)) } else { Some((s, r)) })
                        .collect();
                }
                Op::Reopen | Op::TornReopen(_) => {
                    drop(wal.take());
                    if let Op::TornReopen(garbage) = &op {
                        let mut f = OpenOptions::new().append(true).open(segment_path(dir.path(), seg)).unwrap();
                        std::io::Write::write_all(&mut f, garbage).unwrap();
                    }
                    let mut got = Vec::new();
                    let (w, stats) = Wal::open_and_replay(dir.path(), o(), |r| got.push(r)).unwrap();
                    let want: Vec<Record> = model.iter().map(|(_, r)| r.clone()).collect();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(stats.stopped_at.is_some(), matches!(op, Op::TornReopen(_)));
                    seg += 1;
                    prop_assert_eq!(w.segment_range().1, seg);
                    wal = Some(w);
                }
            }
        }
        drop(wal);
        let (got, stats) = replay_all(dir.path());
        prop_assert_eq!(stats.stopped_at, None);
        let want: Vec<Record> = model.into_iter().map(|(_, r)| r).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn checkpoint_over_a_segment_that_rotted_keeps_every_intact_record() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
    wal.log(&[series([1, 2])]).unwrap();
    let s1 = wal.cut_segment().unwrap();
    wal.log(&[samples([(1, 10, 1.0), (2, 10, 2.0)])]).unwrap();
    wal.log(&[samples([(1, 20, 3.0)])]).unwrap();
    wal.log(&[samples([(2, 30, 4.0)])]).unwrap();
    let s2 = wal.cut_segment().unwrap();
    // The middle record of segment s2 rots while the WAL is open.
    let path = segment_path(dir.path(), s2);
    let offs = {
        let probe = tempfile::tempdir().unwrap();
        log_recording_offsets(probe.path(), &[samples([(1, 10, 1.0), (2, 10, 2.0)]), samples([(1, 20, 3.0)])])
    };
    let mut b = fs::read(&path).unwrap();
    b[offs[1] as usize + 12] ^= 0x01;
    fs::write(&path, &b).unwrap();
    let stats = wal.checkpoint(s2, |_| true, i64::MIN).unwrap();
    let d = stats.damage.expect("damage is reported");
    assert_eq!((d.records_skipped, d.samples_lost), (1, 1));
    let q = d.quarantined_to.unwrap();
    assert_eq!(fs::read(q.join(path.file_name().unwrap())).unwrap(), b);
    assert!(s1 < s2 && !path.exists());
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!(stats.damage, None);
    assert_eq!(got, [series([1, 2]), samples([(1, 10, 1.0), (2, 10, 2.0)]), samples([(2, 30, 4.0)])]);
}

#[test]
fn a_tailer_behind_a_recovered_log_reports_the_skip_and_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let recs = varied_records(4);
    let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
    for (i, r) in recs.iter().enumerate() {
        wal.log(std::slice::from_ref(r)).unwrap();
        if i % 3 == 2 {
            wal.cut_segment().unwrap();
        }
    }
    drop(wal);
    let mut tail = WalTailer::open(dir.path(), None).unwrap();
    let first = tail.read(200).unwrap();
    assert!(!first.records.is_empty());
    // Damage the second segment, then open (recovering) and log more.
    let seg2 = segment_path(dir.path(), 2);
    let mut b = fs::read(&seg2).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    fs::write(&seg2, b).unwrap();
    let (wal, stats) = Wal::open_and_replay(dir.path(), opts(1 << 20, SyncPolicy::Never), |_| {}).unwrap();
    assert!(stats.damage.is_some());
    wal.log(&[series([99])]).unwrap();
    let mut skips = Vec::new();
    let mut got = Vec::new();
    for _ in 0..20 {
        let r = tail.read(1 << 20).unwrap();
        skips.extend(r.skips);
        got.extend(r.records);
    }
    assert!(skips.iter().any(|s| s.reason == SkipReason::Deleted), "{skips:?}");
    assert_eq!(got.last(), Some(&series([99])), "reading continues after the recovery");
    drop(wal);
}

/// A log of series records (new refs) and samples records (of declared
/// refs only), as a database writes it.
fn plausible_log(plan: &[(bool, u8)]) -> Vec<Record> {
    let mut next_ref = 1u64;
    let mut out = vec![series([next_ref])];
    next_ref += 1;
    for (i, &(new_series, p)) in plan.iter().enumerate() {
        if new_series {
            let k = 1 + u64::from(p % 2);
            out.push(series(next_ref..next_ref + k));
            next_ref += k;
        } else if p >= 200 {
            let n = 1 + usize::from(p % 3);
            out.push(histograms(
                (0..n).map(|j| (1 + (u64::from(p) + j as u64) % (next_ref - 1), i as i64 * 10 + j as i64, j as u64)),
            ));
        } else {
            let n = 1 + usize::from(p % 4);
            out.push(samples(
                (0..n).map(|j| (1 + (u64::from(p) + j as u64) % (next_ref - 1), i as i64 * 10 + j as i64, j as f64)),
            ));
        }
    }
    out
}

/// (segment path, frame start, frame end) of every record, in log order.
fn frame_map(dir: &Path) -> Vec<(std::path::PathBuf, usize, usize)> {
    let listing = super::segment::list_dir(dir).unwrap();
    let mut out = Vec::new();
    for s in listing.segments {
        let path = segment_path(dir, s);
        let b = fs::read(&path).unwrap();
        let mut p = SEGMENT_HEADER.len();
        while p + 8 <= b.len() {
            let len = u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) as usize;
            out.push((path.clone(), p, p + 8 + len));
            p += 8 + len;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Damage anywhere in a complete segment loses exactly the records
    /// whose bytes it touched, plus samples whose series record it touched;
    /// open repairs the log so that a second replay is identical and clean.
    #[test]
    fn damage_in_a_complete_segment_loses_exactly_the_touched_records(
        plan in prop::collection::vec((any::<bool>(), any::<u8>()), 4..40),
        seg_pick in any::<prop::sample::Index>(),
        at_pick in any::<prop::sample::Index>(),
        len in 1usize..16,
        mask in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let recs = plausible_log(&plan);
        let wal = Wal::open(dir.path(), opts(160, SyncPolicy::Never)).unwrap();
        for r in &recs {
            wal.log(std::slice::from_ref(r)).unwrap();
        }
        drop(wal);
        // Reopening starts a new, empty segment: every segment holding
        // records is now complete, so a bad frame anywhere is damage.
        drop(Wal::open(dir.path(), opts(160, SyncPolicy::Never)).unwrap());
        let map = frame_map(dir.path());
        prop_assert_eq!(map.len(), recs.len());
        let mut segs: Vec<std::path::PathBuf> = map.iter().map(|m| m.0.clone()).collect();
        segs.dedup();
        let victim = seg_pick.get(&segs).clone();
        let mut bytes = fs::read(&victim).unwrap();
        let at = at_pick.index(bytes.len());
        let end = (at + len).min(bytes.len());
        for b in &mut bytes[at..end] {
            *b ^= mask;
        }
        fs::write(&victim, &bytes).unwrap();

        let mut want = Vec::new();
        let mut known = std::collections::HashSet::new();
        for (r, (path, s, e)) in recs.iter().zip(&map) {
            if *path == victim && *s < end && *e > at {
                continue;
            }
            match r {
                Record::Series(v) => {
                    known.extend(v.iter().map(|x| x.series_ref));
                    want.push(r.clone());
                }
                Record::Samples(v) => {
                    let kept: Vec<RefSample> = v.iter().copied().filter(|x| known.contains(&x.series_ref)).collect();
                    if !kept.is_empty() || v.is_empty() {
                        want.push(Record::Samples(kept));
                    }
                }
                Record::HistogramSamples(v) => {
                    let kept: Vec<RefHistogramSample> =
                        v.iter().filter(|x| known.contains(&x.series_ref)).cloned().collect();
                    if !kept.is_empty() || v.is_empty() {
                        want.push(Record::HistogramSamples(kept));
                    }
                }
                // After damage, orphan exemplars are dropped; the record
                // is handed out even when that empties it.
                Record::Exemplars(v) => {
                    want.push(Record::Exemplars(v.iter().filter(|x| known.contains(&x.series_ref)).cloned().collect()));
                }
            }
        }
        let (got, stats) = replay_all(dir.path());
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(stats.stopped_at, None);
        prop_assert!(stats.damage.is_some());
        let (wal, _) = Wal::open_and_replay(dir.path(), opts(160, SyncPolicy::Never), |_| {}).unwrap();
        drop(wal);
        let (again, stats) = replay_all(dir.path());
        prop_assert_eq!(again, want);
        prop_assert_eq!((stats.stopped_at, stats.damage), (None, None));
    }
}

#[test]
fn megabytes_of_garbage_between_good_records_are_skipped_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let recs = varied_records(3);
    write_log(dir.path(), &recs[..2]);
    let seg = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&seg).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..(4 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(x as u8);
    }
    let mut tail = Vec::new();
    for r in &recs[2..] {
        encode_frame(r, &mut tail).unwrap();
    }
    bytes.extend_from_slice(&tail);
    fs::write(&seg, &bytes).unwrap();
    let t = std::time::Instant::now();
    let (got, stats) = replay_all(dir.path());
    let took = t.elapsed();
    assert_eq!(got, recs);
    let d = stats.damage.unwrap();
    assert_eq!(d.regions.len(), 1);
    assert_eq!(d.regions[0].len, 4 << 20);
    eprintln!("4 MiB of garbage scanned in {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn a_failed_repair_still_opens_with_every_intact_record() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(1 << 20, SyncPolicy::Never)).unwrap();
    for i in 0..3 {
        wal.log(&[series([i])]).unwrap();
        wal.cut_segment().unwrap();
    }
    drop(wal);
    let seg2 = segment_path(dir.path(), 2);
    let mut b = fs::read(&seg2).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x01;
    fs::write(&seg2, &b).unwrap();
    // The quarantine path is a file: copying the damaged segment fails.
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, b"x").unwrap();
    let mut got = Vec::new();
    let (wal, stats) =
        Wal::open_and_replay_with_quarantine(dir.path(), WalOptions::default(), &blocker, |r| got.push(r)).unwrap();
    assert_eq!(got, [series([0]), series([2])]);
    assert_eq!(stats.damage.unwrap().quarantined_to, None);
    assert!(seg2.exists(), "the damaged segment is left in place");
    wal.log(&[series([7])]).unwrap();
    drop(wal);
    // A later open with a usable quarantine repairs it.
    let (wal, stats) = Wal::open_and_replay(dir.path(), WalOptions::default(), |_| {}).unwrap();
    assert!(stats.damage.unwrap().quarantined_to.is_some());
    drop(wal);
    let (got, stats) = replay_all(dir.path());
    assert_eq!((got, stats.damage), (vec![series([0]), series([2]), series([7])], None));
}

#[test]
fn relaxed_logs_are_written_without_their_own_fsync_and_made_durable_by_the_next() {
    use crate::vfs::{FaultKind, Op};
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = open_faulty(dir.path(), WalOptions::default());
    wal.log(&[series([1])]).unwrap();
    // Every fsync fails from now on: a relaxed log does not fsync, so it
    // succeeds; a durable one fails.
    faults.fail(Op::Sync, "", FaultKind::Io);
    wal.log_relaxed(&[series([2])]).unwrap();
    wal.log_relaxed(&[series([3])]).unwrap();
    assert_eq!(faults.injected(), 0, "no fsync was attempted for relaxed logs");
    assert!(matches!(wal.log(&[series([4])]), Err(Error::Io { .. })));
    assert!(faults.injected() > 0);
    faults.clear();
    wal.log(&[series([5])]).unwrap();
    wal.close().unwrap();
    drop(wal);
    let records = replay_all(dir.path()).0;
    assert!(records.contains(&series([2])) && records.contains(&series([3])), "relaxed records are kept: {records:?}");
    assert!(!records.contains(&series([4])), "the failed durable batch is rolled back");
    assert_eq!(records.last(), Some(&series([5])));
}

//! Damaged files lose only what is damaged: WAL segments, WAL checkpoints,
//! chunk files and indexes are damaged at rest, the database is reopened,
//! and each test checks exactly which samples survive, what is reported
//! (counters, damage report, query warnings), which files were set aside,
//! and that a second open is clean and loses nothing more.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidemark_storage::{Db, Labels, Matcher, Sample};

const MIN: i64 = 60_000;
const STEP: i64 = 15_000;

fn series(i: usize) -> Labels {
    Labels::new([("__name__", "m"), ("instance", &format!("host-{i:03}"))]).unwrap()
}

fn value(i: usize, t: i64) -> f64 {
    (i as f64) * 1e9 + t as f64
}

fn builder(dir: &Path) -> tidemark_storage::DbBuilder {
    Db::builder(dir).block_range(10 * MIN).maintenance_interval(None).scrub_interval(None)
}

/// Appends series `0..n` at every step in `[from, to)`, one commit per step.
fn fill(db: &Db, n: usize, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for i in 0..n {
            app.append(&series(i), t, value(i, t)).unwrap();
        }
        app.commit().unwrap();
        t += STEP;
    }
}

type Data = BTreeMap<Labels, Vec<Sample>>;

fn expected(n: usize, from: i64, to: i64) -> Data {
    let mut d = Data::new();
    for i in 0..n {
        let mut t = from;
        let v = d.entry(series(i)).or_default();
        while t < to {
            v.push(Sample::new(t, value(i, t)));
            t += STEP;
        }
    }
    d
}

/// Everything the database answers for `m` over `[mint, maxt]`, and the
/// querier's warnings.
fn read(db: &Db, mint: i64, maxt: i64) -> (Data, Vec<String>) {
    let q = db.querier(mint, maxt);
    let out = q
        .select(&[Matcher::equal("__name__", "m")])
        .unwrap()
        .into_iter()
        .map(|s| (s.labels().clone(), s.samples().unwrap()))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    (out, q.warnings())
}

/// Samples in `want` that `got` lacks; panics if `got` has a sample `want`
/// does not (damage must never alter or invent a sample).
fn missing(want: &Data, got: &Data) -> Vec<(Labels, Sample)> {
    for (l, ss) in got {
        let w = want.get(l).unwrap_or_else(|| panic!("unexpected series {l}"));
        for s in ss {
            assert!(w.iter().any(|x| x.t == s.t && x.v.to_bits() == s.v.to_bits()), "{l} has a wrong sample {s:?}");
        }
    }
    let mut out = Vec::new();
    for (l, ss) in want {
        let g = got.get(l).map(Vec::as_slice).unwrap_or(&[]);
        for s in ss {
            if !g.iter().any(|x| x.t == s.t) {
                out.push((l.clone(), *s));
            }
        }
    }
    out
}

/// A WAL frame: offset, body length, record type (1: series, 2: samples,
/// whichever format version wrote it), entry count.
#[derive(Debug, Clone, Copy)]
struct Frame {
    off: usize,
    len: usize,
    ty: u8,
    count: u64,
}

impl Frame {
    fn end(&self) -> usize {
        self.off + 8 + self.len
    }
}

fn uvarint(b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x < 0x80 {
            break;
        }
    }
    v
}

/// The frames of a WAL segment file (format: docs/format/wal.md).
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut p = 8;
    while p + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
        if len == 0 || p + 8 + len > bytes.len() {
            break;
        }
        let body = &bytes[p + 8..p + 8 + len];
        // Types 3 and 4 are the compressed forms of series (1) and samples (2).
        let ty = match body[0] {
            3 => 1,
            4 => 2,
            t => t,
        };
        out.push(Frame { off: p, len, ty, count: uvarint(&body[1..]) });
        p += 8 + len;
    }
    out
}

fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().unwrap().to_str().unwrap().bytes().all(|b| b.is_ascii_digit()))
        .collect();
    v.sort();
    v
}

fn checkpoint_dir(dir: &Path) -> PathBuf {
    fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("checkpoint.") && p.is_dir())
        .expect("a checkpoint")
}

fn quarantine_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir.join("quarantine")) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn block_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().len() == 26)
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, at: usize, n: usize) {
    let mut b = fs::read(path).unwrap();
    for x in &mut b[at..at + n] {
        *x ^= 0xff;
    }
    fs::write(path, b).unwrap();
}

#[test]
fn eight_flipped_bytes_in_a_middle_wal_segment_lose_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let (n, to) = (20, 400 * STEP);
    let db = builder(dir.path()).wal_segment_size(4 << 10).open().unwrap();
    fill(&db, n, 0, to);
    db.close().unwrap();
    drop(db);
    let segs = wal_segments(dir.path());
    assert!(segs.len() >= 5, "{} segments", segs.len());
    let victim = &segs[segs.len() / 2];
    let fr = frames(&fs::read(victim).unwrap());
    let f = fr[fr.len() / 2];
    assert_eq!((f.ty, f.count), (2, n as u64), "a samples record of one commit");
    // The last 8 bytes of the body: inside the record's (compressed) columns.
    flip(victim, f.end() - 8, 8);
    let damaged = fs::read(victim).unwrap();

    let db = builder(dir.path()).open().unwrap();
    let want = expected(n, 0, to);
    let (got, _) = read(&db, 0, to);
    let lost = missing(&want, &got);
    assert_eq!(lost.len(), n, "exactly the damaged record's samples are lost");
    assert!(lost.iter().all(|(_, s)| s.t == lost[0].1.t), "all at one commit's timestamp");
    let st = db.stats();
    assert_eq!((st.wal_corruptions, st.wal_records_skipped, st.wal_samples_lost), (1, 1, n as u64));
    let report = db.damage_report();
    let d = &report.wal[0].damage;
    assert_eq!(d.regions[0].file, *victim);
    assert_eq!(d.regions[0].offset, f.off as u64);
    // The times are known only if the damaged body still decodes; damage
    // inside compressed columns leaves only the count (from the envelope).
    assert!(d.lost_time_range.is_none_or(|r| r == (lost[0].1.t, lost[0].1.t)), "{:?}", d.lost_time_range);
    let q = d.quarantined_to.clone().unwrap();
    assert!(q.starts_with(dir.path().join("quarantine")));
    assert_eq!(fs::read(q.join(victim.file_name().unwrap())).unwrap(), damaged, "the damaged segment is kept aside");
    db.close().unwrap();
    drop(db);

    let db = builder(dir.path()).open().unwrap();
    assert_eq!(db.stats().wal_corruptions, 0, "the second open is clean");
    assert_eq!(read(&db, 0, to).0, got, "and loses nothing more");
}

#[test]
fn a_damaged_series_record_length_loses_that_series_and_counts_its_orphan_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (n, steps) = (20usize, 400i64);
    let db = builder(dir.path()).wal_segment_size(16 << 10).open().unwrap();
    // Series i starts at step 20 * i, so its series record is written then.
    let mut want = Data::new();
    for k in 0..steps {
        let t = k * STEP;
        let mut app = db.appender();
        for i in (0..n).filter(|&i| k >= 20 * i as i64) {
            app.append(&series(i), t, value(i, t)).unwrap();
            want.entry(series(i)).or_default().push(Sample::new(t, value(i, t)));
        }
        app.commit().unwrap();
    }
    db.close().unwrap();
    drop(db);
    // The 11th series record (series 10, created at step 200).
    let mut seen = 0;
    let mut target = None;
    for seg in wal_segments(dir.path()) {
        for f in frames(&fs::read(&seg).unwrap()) {
            if f.ty == 1 {
                if seen == 10 {
                    target = Some((seg.clone(), f));
                }
                seen += 1;
            }
        }
    }
    let (seg, f) = target.unwrap();
    assert_eq!(f.count, 1);
    let mut b = fs::read(&seg).unwrap();
    b[f.off..f.off + 4].copy_from_slice(&0xffff_ff00u32.to_le_bytes());
    fs::write(&seg, b).unwrap();

    let db = builder(dir.path()).open().unwrap();
    let (got, _) = read(&db, 0, steps * STEP);
    let lost = missing(&want, &got);
    let orphans = (steps - 200) as u64;
    assert_eq!(lost.len() as u64, orphans);
    assert!(lost.iter().all(|(l, _)| *l == series(10)), "only series 10 is lost");
    let st = db.stats();
    assert_eq!((st.wal_corruptions, st.wal_records_skipped, st.wal_samples_lost), (1, 1, orphans));
    let d = &db.damage_report().wal[0].damage;
    assert_eq!((d.orphan_samples, d.orphan_series_refs), (orphans, 1));
    assert_eq!(d.lost_time_range, Some((200 * STEP, (steps - 1) * STEP)));
    db.close().unwrap();
    drop(db);
    let db = builder(dir.path()).open().unwrap();
    assert_eq!((db.stats().wal_corruptions, db.stats().wal_samples_lost), (0, 0));
    assert_eq!(read(&db, 0, steps * STEP).0, got);
}

/// 10 series over 50 minutes: blocks for [0, 30m), a checkpoint holding
/// [30m, 40m) and WAL segments after it.
fn db_with_checkpoint(dir: &Path) -> Data {
    let db = builder(dir).open().unwrap();
    fill(&db, 10, 0, 40 * MIN);
    assert_eq!(db.persist_head().unwrap(), 3);
    db.close().unwrap();
    drop(db);
    // The database checkpoints only segments its blocks cover entirely
    // (these hold [30m, 40m) too, so it keeps them): checkpoint them here,
    // keeping the samples from 30m on, as a checkpoint under size pressure
    // would.
    let wal = tidemark_storage::wal::Wal::open(&dir.join("wal"), tidemark_storage::wal::WalOptions::default()).unwrap();
    let closed = wal.cut_segment().unwrap();
    wal.checkpoint(closed, |_| true, 30 * MIN).unwrap();
    wal.close().unwrap();
    drop(wal);
    let db = builder(dir).open().unwrap();
    fill(&db, 10, 40 * MIN, 50 * MIN);
    db.close().unwrap();
    expected(10, 0, 50 * MIN)
}

#[test]
fn a_flipped_record_in_the_checkpoint_loses_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let want = db_with_checkpoint(dir.path());
    let ckpt = checkpoint_dir(dir.path());
    let seg = ckpt.join("00000000");
    let fr = frames(&fs::read(&seg).unwrap());
    let f = *fr.iter().filter(|f| f.ty == 2).nth(5).unwrap();
    flip(&seg, f.end() - 8, 8);
    let damaged = fs::read(&seg).unwrap();

    let db = builder(dir.path()).open().unwrap();
    let (got, _) = read(&db, 0, 50 * MIN);
    let lost = missing(&want, &got);
    assert_eq!(lost.len() as u64, f.count);
    let st = db.stats();
    assert_eq!((st.wal_corruptions, st.wal_records_skipped, st.wal_samples_lost), (1, 1, f.count));
    let d = &db.damage_report().wal[0].damage;
    let n: u64 = ckpt.file_name().unwrap().to_str().unwrap()["checkpoint.".len()..].parse().unwrap();
    assert_eq!(d.checkpoint, Some(n));
    let q = d.quarantined_to.clone().unwrap();
    assert_eq!(fs::read(q.join(ckpt.file_name().unwrap()).join("00000000")).unwrap(), damaged);
    assert!(!ckpt.exists(), "the damaged checkpoint was replaced");
    db.close().unwrap();
    drop(db);
    let db = builder(dir.path()).open().unwrap();
    assert_eq!(db.stats().wal_corruptions, 0);
    assert_eq!(read(&db, 0, 50 * MIN).0, got);
}

#[test]
fn a_checkpoint_cut_in_half_starts_and_keeps_everything_before_the_cut_and_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let want = db_with_checkpoint(dir.path());
    let seg = checkpoint_dir(dir.path()).join("00000000");
    let bytes = fs::read(&seg).unwrap();
    let cut = bytes.len() / 2;
    let lost_in_cut: u64 = frames(&bytes).iter().filter(|f| f.end() > cut && f.ty == 2).map(|f| f.count).sum();
    assert!(frames(&bytes).iter().filter(|f| f.end() > cut).all(|f| f.ty == 2), "only samples records are cut");
    fs::write(&seg, &bytes[..cut]).unwrap();

    let db = builder(dir.path()).open().expect("a damaged checkpoint does not stop startup");
    let (got, _) = read(&db, 0, 50 * MIN);
    let lost = missing(&want, &got);
    assert_eq!(lost.len() as u64, lost_in_cut);
    eprintln!("checkpoint cut in half: {lost_in_cut} of {} samples lost", 10 * 200);
    assert!(lost.iter().all(|(_, s)| (30 * MIN..40 * MIN).contains(&s.t)), "only checkpointed samples are lost");
    assert_eq!(db.stats().wal_corruptions, 1);
    assert!(db.damage_report().wal[0].damage.checkpoint.is_some());
    db.close().unwrap();
    drop(db);
    let db = builder(dir.path()).open().unwrap();
    assert_eq!(db.stats().wal_corruptions, 0);
    assert_eq!(read(&db, 0, 50 * MIN).0, got);
}

/// 50 series: a block over [0, 10m) and head data in [10m, 12m).
fn db_with_block(dir: &Path, n: usize) -> (Data, PathBuf) {
    let db = builder(dir).open().unwrap();
    fill(&db, n, 0, 10 * MIN);
    assert_eq!(db.flush_head().unwrap(), 1);
    fill(&db, n, 10 * MIN, 12 * MIN);
    db.close().unwrap();
    let blocks = block_dirs(dir);
    assert_eq!(blocks.len(), 1);
    (expected(n, 0, 12 * MIN), blocks[0].clone())
}

#[test]
fn a_flipped_chunk_byte_loses_that_chunk_only_and_queries_warn_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let (want, block) = db_with_block(dir.path(), 50);
    let chunk_file = block.join("chunks").join("000001");
    let len = fs::metadata(&chunk_file).unwrap().len() as usize;
    flip(&chunk_file, len / 2, 1);
    let ulid = block.file_name().unwrap().to_str().unwrap().to_string();

    let db = builder(dir.path()).open().unwrap();
    let (got, warnings) = read(&db, 0, 12 * MIN);
    let lost = missing(&want, &got);
    // Small chunks are stored in groups of up to 15 series (one record,
    // `docs/format/chunks.md`): the flip costs the chunks of its group,
    // 40 block samples per series, and nothing else.
    let k = lost.len() / 40;
    assert!(lost.len().is_multiple_of(40) && (1..=15).contains(&k), "{} samples lost", lost.len());
    assert!(lost.iter().all(|(_, s)| s.t < 10 * MIN));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&ulid) && warnings[0].contains(&format!("{k} unreadable chunk")), "{}", warnings[0]);
    let st = db.stats();
    assert_eq!((st.chunks_corrupt, st.quarantined_blocks), (k as u64, 0));
    let report = db.damage_report();
    assert_eq!(report.chunks[0].block, ulid);
    assert!(report.chunks.iter().any(|c| c.series == lost[0].0.to_string()));
    assert_eq!(report.chunks[0].file, "chunks/000001");
    // A second read does not count the same chunks again.
    read(&db, 0, 12 * MIN);
    assert_eq!(db.stats().chunks_corrupt, k as u64);

    // Maintenance rewrites the block without the damaged chunk.
    db.maintain().unwrap();
    let st = db.stats();
    assert_eq!((st.chunks_corrupt, st.quarantined_blocks, st.blocks), (k as u64, 1, 1));
    assert_eq!(quarantine_entries(dir.path()), [dir.path().join("quarantine").join(&ulid)]);
    assert_ne!(db.blocks()[0].ulid, ulid);
    let (again, warnings) = read(&db, 0, 12 * MIN);
    assert_eq!(again, got);
    assert!(warnings.is_empty(), "{warnings:?}");
    db.close().unwrap();
    drop(db);

    let db = builder(dir.path()).open().unwrap();
    let st = db.stats();
    assert_eq!((st.chunks_corrupt, st.quarantined_blocks), (0, 0), "the second open is clean");
    assert_eq!(db.scrub().unwrap(), vec![]);
    assert_eq!(read(&db, 0, 12 * MIN), (got, vec![]));
}

#[test]
fn a_chunk_file_cut_in_half_loses_the_chunks_past_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200;
    let (want, block) = db_with_block(dir.path(), n);
    let chunk_file = block.join("chunks").join("000001");
    let len = fs::metadata(&chunk_file).unwrap().len();
    fs::OpenOptions::new().write(true).open(&chunk_file).unwrap().set_len(len / 2).unwrap();

    let db = builder(dir.path()).open().unwrap();
    let found = db.scrub().unwrap();
    assert!(!found.is_empty());
    let (got, warnings) = read(&db, 0, 12 * MIN);
    assert!(warnings.is_empty(), "the block was already rewritten: {warnings:?}");
    let lost = missing(&want, &got);
    let mut lost_series: Vec<Labels> = lost.iter().map(|(l, _)| l.clone()).collect();
    lost_series.dedup();
    assert_eq!(lost_series.len(), found.len(), "one chunk per series");
    assert_eq!(lost.len(), found.len() * 40);
    // Chunks are written in label order: the series past the cut are the last ones.
    let mut all: Vec<Labels> = (0..n).map(series).collect();
    all.sort();
    assert_eq!(lost_series, all[n - found.len()..]);
    assert!(found.len() > n / 3 && found.len() < 2 * n / 3, "{} of {n}", found.len());
    let st = db.stats();
    assert_eq!((st.chunks_corrupt, st.quarantined_blocks), (found.len() as u64, 1));
    eprintln!("chunk file cut in half: {} of {n} chunks lost, {} of {} samples", found.len(), lost.len(), n * 48);
}

#[test]
fn a_damaged_index_quarantines_its_block_and_the_rest_is_served_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let db = builder(dir.path()).open().unwrap();
    fill(&db, 10, 0, 10 * MIN);
    db.flush_head().unwrap();
    fill(&db, 10, 10 * MIN, 20 * MIN);
    db.flush_head().unwrap();
    db.close().unwrap();
    drop(db);
    let blocks = block_dirs(dir.path());
    let first = blocks.iter().find(|b| tidemark_storage::block::BlockMeta::read(b).unwrap().min_time == 0).unwrap();
    let index = first.join("index");
    let len = fs::metadata(&index).unwrap().len() as usize;
    flip(&index, len / 2, 1);

    let db = builder(dir.path()).open().unwrap();
    let (got, warnings) = read(&db, 0, 20 * MIN);
    assert_eq!(got, expected(10, 10 * MIN, 20 * MIN));
    let name = first.file_name().unwrap().to_str().unwrap();
    assert!(warnings.len() == 1 && warnings[0].contains(name), "{warnings:?}");
    assert_eq!(db.stats().quarantined_blocks, 1);
    let q = &db.damage_report().quarantined_blocks[0];
    assert_eq!((q.block.as_str(), q.time_range), (name, Some((0, 10 * MIN))));
    // A query that does not touch the lost range gets no warning.
    assert!(read(&db, 10 * MIN, 20 * MIN).1.is_empty());
}

#[test]
fn the_background_scrub_finds_and_cuts_out_damage_nobody_queried() {
    let dir = tempfile::tempdir().unwrap();
    let (want, block) = db_with_block(dir.path(), 50);
    let chunk_file = block.join("chunks").join("000001");
    let len = fs::metadata(&chunk_file).unwrap().len() as usize;
    flip(&chunk_file, len / 3, 1);
    let db = builder(dir.path()).scrub_interval(Some(Duration::from_millis(100))).open().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.stats().quarantined_blocks == 0 {
        assert!(Instant::now() < deadline, "no scrub within 20 s: {:?}", db.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = db.stats();
    assert!(st.scrubs >= 1);
    // One chunk group's members (up to 15 series, 40 samples each).
    assert!((1..=15).contains(&st.chunks_corrupt), "{:?}", st);
    let (got, warnings) = read(&db, 0, 12 * MIN);
    assert_eq!(missing(&want, &got).len() as u64, 40 * st.chunks_corrupt);
    assert!(warnings.is_empty());
    db.close().unwrap();
}

#[test]
fn a_chunk_file_cut_short_is_found_right_after_open_without_any_query() {
    let dir = tempfile::tempdir().unwrap();
    let (want, block) = db_with_block(dir.path(), 100);
    let chunk_file = block.join("chunks").join("000001");
    let len = fs::metadata(&chunk_file).unwrap().len();
    fs::OpenOptions::new().write(true).open(&chunk_file).unwrap().set_len(len * 3 / 4).unwrap();
    // Default scrub interval (24 h): only the check at open can find it.
    let db = Db::builder(dir.path()).block_range(10 * MIN).maintenance_interval(None).open().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.stats().quarantined_blocks == 0 {
        assert!(Instant::now() < deadline, "not found within 20 s: {:?}", db.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = db.stats();
    assert!(st.chunks_corrupt > 0 && st.chunks_corrupt < 100, "{st:?}");
    let (got, warnings) = read(&db, 0, 12 * MIN);
    assert_eq!(missing(&want, &got).len() as u64, st.chunks_corrupt * 40);
    assert!(warnings.is_empty(), "{warnings:?}");
    eprintln!(
        "cut to 3/4: {} of 100 chunks lost, {} of {} samples",
        st.chunks_corrupt,
        st.chunks_corrupt * 40,
        100 * 48
    );
}

#[test]
fn a_block_whose_only_chunk_is_damaged_is_quarantined_without_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let (want, block) = db_with_block(dir.path(), 1);
    let chunk_file = block.join("chunks").join("000001");
    let len = fs::metadata(&chunk_file).unwrap().len() as usize;
    flip(&chunk_file, len / 2, 1);
    let db = builder(dir.path()).open().unwrap();
    assert_eq!(db.scrub().unwrap().len(), 1);
    assert!(db.blocks().is_empty());
    let st = db.stats();
    assert_eq!((st.chunks_corrupt, st.quarantined_blocks), (1, 1));
    let (got, warnings) = read(&db, 0, 12 * MIN);
    assert_eq!(missing(&want, &got).len(), 40);
    let name = block.file_name().unwrap().to_str().unwrap();
    assert!(warnings.len() == 1 && warnings[0].contains(name), "{warnings:?}");
    assert_eq!(db.damage_report().quarantined_blocks[0].replaced_by, None);
}

/// The issue's case: 134,400 samples over several segments, 8 bytes flipped
/// in the middle of the middle segment (wherever they fall). Before, replay
/// stopped there and open deleted every later segment (28,800 samples lost
/// in the issue's run); now exactly the records the 8 bytes touch are lost.
#[test]
fn the_issue_case_loses_only_the_records_the_flipped_bytes_touch() {
    let dir = tempfile::tempdir().unwrap();
    let (n, steps) = (112usize, 1200i64);
    let db = builder(dir.path()).wal_segment_size(256 << 10).open().unwrap();
    fill(&db, n, 0, steps * STEP);
    db.close().unwrap();
    drop(db);
    let segs = wal_segments(dir.path());
    let victim = &segs[segs.len() / 2];
    let bytes = fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    let touched: Vec<Frame> = frames(&bytes).into_iter().filter(|f| f.off < at + 8 && f.end() > at).collect();
    assert!(touched.iter().all(|f| f.ty == 2));
    let expect_lost: u64 = touched.iter().map(|f| f.count).sum();
    // What the old rule (truncate at the bad frame, delete later segments) dropped.
    let old_rule: u64 = frames(&bytes).iter().filter(|f| f.end() > at && f.ty == 2).map(|f| f.count).sum::<u64>()
        + segs
            .iter()
            .filter(|s| *s > victim)
            .map(|s| frames(&fs::read(s).unwrap()).iter().filter(|f| f.ty == 2).map(|f| f.count).sum::<u64>())
            .sum::<u64>();
    flip(victim, at, 8);

    let t = Instant::now();
    let db = builder(dir.path()).open().unwrap();
    let open_time = t.elapsed();
    let want = expected(n, 0, steps * STEP);
    let (got, _) = read(&db, 0, steps * STEP);
    let lost = missing(&want, &got);
    assert_eq!(lost.len() as u64, expect_lost);
    let st = db.stats();
    assert_eq!((st.wal_corruptions, st.wal_records_skipped), (1, touched.len() as u64));
    eprintln!(
        "issue case: {} segments, 8 bytes flipped at offset {at} of {}: {} of {} samples lost ({:.3} %), reported lost {}, open with repair took {open_time:?}; the old rule would have lost {old_rule}",
        segs.len(),
        victim.display(),
        lost.len(),
        n as i64 * steps,
        lost.len() as f64 * 100.0 / (n as f64 * steps as f64),
        st.wal_samples_lost,
    );
}

#[test]
fn an_index_that_rots_while_open_is_found_by_the_scrub_and_quarantined() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let (want, block) = db_with_block(dir.path(), 10);
    let db = builder(dir.path()).open().unwrap();
    let (before, warnings) = read(&db, 0, 12 * MIN);
    assert!(missing(&want, &before).is_empty() && warnings.is_empty());
    // Rewrite one byte in place (never truncate a mapped file).
    let index = block.join("index");
    let len = fs::metadata(&index).unwrap().len();
    let mut f = fs::OpenOptions::new().read(true).write(true).open(&index).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    let mut b = [0u8; 1];
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&[b[0] ^ 0x20]).unwrap();
    f.sync_all().unwrap();
    drop(f);

    assert_eq!(db.scrub().unwrap(), vec![]);
    let st = db.stats();
    assert_eq!((st.quarantined_blocks, st.blocks), (1, 0));
    let name = block.file_name().unwrap().to_str().unwrap();
    assert!(db.damage_report().quarantined_blocks[0].reason.contains("index"));
    let (got, warnings) = read(&db, 0, 12 * MIN);
    assert_eq!(got, expected(10, 10 * MIN, 12 * MIN), "the head is still served");
    assert!(warnings.len() == 1 && warnings[0].contains(name), "{warnings:?}");
}

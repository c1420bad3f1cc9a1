//! Old data directories keep opening: each `testdata/datadir-v<N>/` was
//! written by the code of its day and must read back exactly, sample for
//! sample, with every later version.
//!
//! - `datadir-v1/`: the code of 2026-12-05 (WAL record types 1 and 2 only,
//!   before compressed records existed).
//! - `datadir-v2/`: the code of 2026-12-07 (main `62dd83d`: compressed and
//!   columnar WAL records, chunk-group blocks with sealed chunks), the last
//!   format before native histograms.
//!
//! The fixture holds a block (the first 10-minute range), a WAL checkpoint
//! (written when that block was persisted), several WAL segments after it
//! (2 KiB segments), out-of-order samples, a series that ended before the
//! block (dropped from the checkpoint), a series that started after it, and
//! the special values a WAL must keep bit for bit (NaN payloads, the
//! staleness marker, -0.0, infinities, i64-sized integers).
//!
//! The expected samples come from [`plan`], the same function that wrote the
//! fixture. To regenerate it (only ever needed if the fixture is lost: the
//! point is that it stays as the old code wrote it):
//!
//! ```text
//! cargo test -p tidemark-storage --test datadir_fixture -- --ignored regenerate
//! ```
//!
//! It writes [`NEWEST`]; before a change to any on-disk format, add the
//! next version (bump [`NEWEST`], regenerate, commit, add its test) so the
//! format being replaced stays covered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tidemark_storage::{Db, DbBuilder, Labels, MatchOp, Matcher, STALE_NAN_BITS};

const MIN: i64 = 60_000;
/// Start of the data: a multiple of the 10-minute block range.
const T0: i64 = 1_700_000_400_000;
const STEP: i64 = 15_000;
/// Scrape rounds: 40 minutes.
const ROUNDS: i64 = 160;
/// The head is persisted (block + checkpoint) after this round.
const PERSIST_AFTER: i64 = 100;

/// The fixture [`regenerate`] writes: the newest format.
const NEWEST: &str = "datadir-v2";

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(name)
}

fn builder(dir: &Path) -> DbBuilder {
    Db::builder(dir)
        .block_range(10 * MIN)
        .maintenance_interval(None)
        .scrub_interval(None)
        .retention_time(None)
        .out_of_order_window(Duration::from_secs(600))
        .wal_segment_size(2048)
}

fn labels(i: usize) -> Labels {
    let (name, job) = match i {
        0 | 1 => ("http_requests_total", "api"),
        2 => ("node_memory_free_bytes", "node"),
        3 => ("ml_model_accuracy_score", "ml"),
        4 => ("short_lived", "batch"),
        5 => ("late_starter", "batch"),
        _ => ("odd_values", "test"),
    };
    Labels::new([("__name__", name), ("instance", &format!("host-{i}:9100")), ("job", job)]).unwrap()
}

const SERIES: usize = 7;

/// A deterministic 64-bit mix (splitmix64).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The value of series `i` in round `r` (`None`: no sample that round).
fn value(i: usize, r: i64) -> Option<f64> {
    let h = mix((i as u64) << 32 | r as u64);
    match i {
        0 => Some((r * 7 + (h % 5) as i64) as f64),
        1 => Some(if r == 60 { 0.0 } else { (r * 3) as f64 + 0.25 }),
        2 => Some(((h % 1_000_000) * 4096) as f64),
        3 => Some(f64::from_bits(0x3fe0_0000_0000_0000 | (h & 0x000f_ffff_ffff_ffff))),
        4 => (r < 30).then_some(r as f64 * 1.5),
        5 => (r >= 120).then_some(-(r as f64) / 3.0),
        _ => Some(match r % 8 {
            0 => f64::from_bits(STALE_NAN_BITS),
            1 => f64::from_bits(0x7ff8_dead_beef_0001),
            2 => -0.0,
            3 => f64::INFINITY,
            4 => f64::NEG_INFINITY,
            5 => 9_007_199_254_740_993.0,
            6 => f64::MIN_POSITIVE / 8.0,
            _ => -1e300,
        }),
    }
}

/// One commit: `(series, t, v)` in append order.
type Commit = Vec<(usize, i64, f64)>;

/// Every commit, in order: one per scrape round, and after every 10th
/// round one more holding an out-of-order sample of series 0 (7.5 s
/// before its newest sample).
fn plan() -> Vec<Commit> {
    let mut commits = Vec::new();
    for r in 0..ROUNDS {
        let t = T0 + r * STEP;
        commits.push((0..SERIES).filter_map(|i| value(i, r).map(|v| (i, t + i as i64, v))).collect());
        if r % 10 == 9 {
            commits.push(vec![(0, t - 7_500, -(r as f64))]);
        }
    }
    commits
}

/// What a reader must see: per series, its samples sorted by time.
fn expected() -> BTreeMap<usize, Vec<(i64, u64)>> {
    let mut m: BTreeMap<usize, Vec<(i64, u64)>> = BTreeMap::new();
    for c in plan() {
        for (i, t, v) in c {
            m.entry(i).or_default().push((t, v.to_bits()));
        }
    }
    for s in m.values_mut() {
        s.sort_unstable();
    }
    m
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn datadir_v1_opens_and_reads_back_every_sample() {
    opens_and_reads_back_every_sample("datadir-v1");
}

#[test]
fn datadir_v2_opens_and_reads_back_every_sample() {
    opens_and_reads_back_every_sample("datadir-v2");
}

fn opens_and_reads_back_every_sample(name: &str) {
    let src = fixture_dir(name);
    // The fixture has every part a WAL replay reads: a block, a checkpoint
    // and segments after it (today's compressed records fill two 2 KiB
    // segments where the first format filled three).
    let names: Vec<String> =
        std::fs::read_dir(src.join("wal")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.starts_with("checkpoint.")), "{names:?}");
    assert!(names.iter().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).count() >= 2, "{names:?}");

    // Opening may repair or rewrite: work on a copy.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&src, tmp.path());
    let db = builder(tmp.path()).open().unwrap();
    assert!(!db.blocks().is_empty(), "the fixture holds a block");
    let q = db.querier(i64::MIN, i64::MAX);
    let mut got = BTreeMap::new();
    for s in q.select(&[Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()]).unwrap() {
        let i = (0..SERIES).find(|&i| labels(i) == *s.labels()).expect("an expected series");
        let samples: Vec<(i64, u64)> = s.samples().unwrap().iter().map(|s| (s.t, s.v.to_bits())).collect();
        got.insert(i, samples);
    }
    let want = expected();
    assert_eq!(got.len(), want.len());
    for (i, w) in &want {
        assert_eq!(got.get(i), Some(w), "series {i}");
    }
    assert!(q.warnings().is_empty(), "{:?}", q.warnings());
    let damage = db.damage_report();
    assert!(damage.wal.is_empty() && damage.wal_corruptions == 0, "{damage:?}");
    db.close().unwrap();

    // Reopening after this code rewrote nothing (or everything) still reads the same.
    let db = builder(tmp.path()).open().unwrap();
    let n: usize = db
        .querier(i64::MIN, i64::MAX)
        .select(&[Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()])
        .unwrap()
        .iter()
        .map(|s| s.samples().unwrap().len())
        .sum();
    assert_eq!(n, want.values().map(Vec::len).sum::<usize>());
    db.close().unwrap();
}

/// Writes the fixture with the current code (see the module comment).
#[test]
#[ignore = "regenerates the newest testdata/datadir-v<N>; run only on purpose"]
fn regenerate() {
    let dir = fixture_dir(NEWEST);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = builder(&dir).open().unwrap();
    let mut round = 0;
    for c in plan() {
        let mut app = db.appender();
        for &(i, t, v) in &c {
            app.append(&labels(i), t, v).unwrap();
        }
        app.commit().unwrap();
        if c.len() > 1 {
            round += 1;
            if round == PERSIST_AFTER {
                assert!(db.persist_head().unwrap() >= 1);
            }
        }
    }
    db.close().unwrap();
    // The lock file is recreated at open; leave nothing host-specific behind.
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "lock" {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

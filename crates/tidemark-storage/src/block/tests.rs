//! Behaviour of written and reopened blocks.

use std::path::{Path, PathBuf};

use super::chunks::chunk_file_name;
use super::writer::write_block_with;
use super::*;
use crate::chunkenc::ChunkSeries;
use crate::{stale_nan, Error, Labels, MatchOp, Matcher, Sample};

const H2: i64 = 2 * 3_600_000;

/// Deterministic test series: three metric names, optional `job`, a unique
/// `i`, and special float values sprinkled in.
fn gen_series(n: usize, samples: usize, step: i64, t0: i64) -> Vec<(Labels, Vec<Sample>)> {
    let specials =
        [f64::NAN, stale_nan(), -0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, f64::from_bits(0x7ff8_dead_beef_0001)];
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..n)
        .map(|i| {
            let name = ["up", "http_requests_total", "node_cpu"][i % 3];
            let job = if i % 5 == 0 { "" } else { ["api", "web", "db"][(i / 3) % 3] };
            let l = Labels::new([
                ("__name__", name),
                ("job", job),
                ("i", &format!("{i:04}")),
                ("zone", if i % 7 == 0 { "eu\nwest" } else { "us" }),
            ])
            .unwrap();
            let s: Vec<Sample> = (0..samples)
                .map(|k| {
                    let t = t0 + k as i64 * step + (k as i64 * 7 + i as i64) % 3;
                    let v = if k % 17 == 3 { specials[(k + i) % specials.len()] } else { (i * 1000 + k) as f64 * 0.25 };
                    Sample::new(t, v)
                })
                .collect();
            (l, s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Like [`gen_series`], with scrape-like timestamps: series `i` belongs to
/// jitter group `i % groups`, and a group's timestamps are `k · 15 s` plus
/// a pseudo-random jitter below 250 ms, the same for every series of the
/// group (series scraped from one target together).
fn jitter_series(n: usize, samples: usize, groups: usize) -> Vec<(Labels, Vec<Sample>)> {
    let mut v = gen_series(n, samples, 15_000, 0);
    for (i, (_, s)) in v.iter_mut().enumerate() {
        let mut x = ((i % groups) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1;
        for (k, smp) in s.iter_mut().enumerate() {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            smp.t = k as i64 * 15_000 + ((x >> 33) % 250) as i64;
        }
    }
    v
}

fn write(dir: &Path, series: &[(Labels, Vec<Sample>)], opts: &BlockWriteOptions) -> BlockMeta {
    write_block(dir, 0, H2, CompactionMeta::level1(), series.iter().cloned(), opts).unwrap()
}

fn decode(cs: &ChunkSeries) -> Vec<Sample> {
    let mut out = Vec::new();
    for c in &cs.chunks {
        c.decode_into(&mut out).unwrap();
    }
    out
}

fn brute<'a>(series: &'a [(Labels, Vec<Sample>)], ms: &[Matcher]) -> Vec<&'a (Labels, Vec<Sample>)> {
    series.iter().filter(|(l, _)| ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or("")))).collect()
}

fn matcher_cases() -> Vec<Vec<Matcher>> {
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    use MatchOp::*;
    vec![
        vec![],
        vec![m(Equal, "__name__", "up")],
        vec![m(Equal, "__name__", "nope")],
        vec![m(Equal, "job", "")],
        vec![m(NotEqual, "job", "")],
        vec![m(NotEqual, "job", "api")],
        vec![m(Regex, "job", "api|web")],
        vec![m(Regex, "job", "a.*")],
        vec![m(Regex, "job", ".*")],
        vec![m(Regex, "job", ".+")],
        vec![m(Regex, "job", "api|")],
        vec![m(NotRegex, "job", "a.*")],
        vec![m(NotRegex, "job", ".*")],
        vec![m(Equal, "__name__", "node_cpu"), m(Regex, "i", "00[0-4].")],
        vec![m(Regex, "zone", "eu.west")],
        vec![m(NotEqual, "missing", "x"), m(Equal, "zone", "us")],
        vec![m(Equal, "missing", "")],
        vec![m(Regex, "__name__", ".*_total"), m(NotRegex, "job", "web|")],
    ]
}

#[test]
fn select_round_trip_matches_brute_force_for_every_matcher_kind() {
    for opts in [BlockWriteOptions::default(), BlockWriteOptions::xor()] {
        let dir = tempfile::tempdir().unwrap();
        let series = gen_series(300, 200, 15_000, 1_000);
        let meta = write(dir.path(), &series, &opts);
        assert_eq!(meta.stats.num_series, 300);
        assert_eq!(meta.stats.num_samples, 300 * 200);
        assert_eq!(meta.compaction.sources, vec![meta.ulid.clone()]);
        let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
        assert_eq!(b.meta(), &meta);
        for ms in matcher_cases() {
            let got = b.select(&ms, i64::MIN, i64::MAX).unwrap();
            let want = brute(&series, &ms);
            assert_eq!(got.len(), want.len(), "matchers {ms:?}");
            for (g, (l, s)) in got.iter().zip(want) {
                assert_eq!(&g.labels, l);
                assert!(g.chunks.iter().all(|c| c.encoding == opts.encoding));
                assert_eq!(&decode(g), s, "bit-exact samples for {l}");
            }
        }
    }
}

#[test]
fn select_returns_only_chunks_overlapping_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let series = gen_series(20, 480, 15_000, 0);
    let meta = write(dir.path(), &series, &BlockWriteOptions::xor());
    assert_eq!(meta.stats.num_chunks, 20 * 4, "120 samples per XOR chunk");
    let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
    let all = b.select(&[], i64::MIN, i64::MAX).unwrap();
    for (mint, maxt) in [(0, 0), (1_000_000, 1_800_000), (1_799_999, 1_800_001), (3_000_000, 9_000_000), (-5, -1)] {
        let got = b.select(&[], mint, maxt).unwrap();
        for (full, (l, samples)) in all.iter().zip(&series) {
            let want: Vec<_> = full.chunks.iter().filter(|c| c.maxt >= mint && c.mint <= maxt).collect();
            let g = got.iter().find(|g| &g.labels == l);
            match g {
                None => assert!(want.is_empty(), "{l} missing for [{mint}, {maxt}]"),
                Some(g) => {
                    assert_eq!(g.chunks.len(), want.len());
                    for (a, w) in g.chunks.iter().zip(want) {
                        assert_eq!((a.mint, a.maxt), (w.mint, w.maxt));
                    }
                    // Every sample in the range is in the returned chunks.
                    let decoded = decode(g);
                    for s in samples.iter().filter(|s| s.t >= mint && s.t <= maxt) {
                        assert!(decoded.contains(s));
                    }
                }
            }
        }
    }
    assert!(b.select(&[], H2, i64::MAX).unwrap().is_empty(), "max_time is exclusive");
    assert!(b.select(&[], 10, 5).unwrap().is_empty(), "inverted range");
}

#[test]
fn label_names_and_values_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let series = gen_series(100, 3, 1000, 0);
    let meta = write(dir.path(), &series, &BlockWriteOptions::default());
    let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
    for ms in matcher_cases() {
        let sel = brute(&series, &ms);
        let mut names: Vec<String> = sel.iter().flat_map(|(l, _)| l.iter().map(|p| p.name.to_string())).collect();
        names.sort();
        names.dedup();
        assert_eq!(b.label_names(&ms).unwrap(), names, "{ms:?}");
        for name in ["__name__", "job", "zone", "missing"] {
            let mut vals: Vec<String> = sel.iter().filter_map(|(l, _)| l.get(name).map(str::to_string)).collect();
            vals.sort();
            vals.dedup();
            assert_eq!(b.label_values(name, &ms).unwrap(), vals, "{name} {ms:?}");
        }
    }
}

#[test]
fn series_without_samples_are_skipped_and_empty_blocks_open() {
    let dir = tempfile::tempdir().unwrap();
    let a = Labels::new([("__name__", "a")]).unwrap();
    let b_ = Labels::new([("__name__", "b")]).unwrap();
    let series = vec![(a.clone(), vec![]), (b_.clone(), vec![Sample::new(5, 1.0)])];
    let meta = write(dir.path(), &series, &BlockWriteOptions::default());
    assert_eq!(meta.stats, BlockStats { num_samples: 1, num_series: 1, num_chunks: 1 });
    let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
    assert_eq!(b.label_values("__name__", &[]).unwrap(), vec!["b"]);
    let meta = write(dir.path(), &[], &BlockWriteOptions::default());
    let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
    assert!(b.select(&[], i64::MIN, i64::MAX).unwrap().is_empty());
    assert!(b.label_names(&[]).unwrap().is_empty());
    assert_eq!(b.all_series().unwrap().count(), 0);
}

fn block_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn invalid_writer_input_is_an_error_and_leaves_nothing_behind() {
    let l = |v: &str| Labels::new([("__name__", v)]).unwrap();
    let s = |t: i64| Sample::new(t, 1.0);
    type Case = (Vec<(Labels, Vec<Sample>)>, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (vec![(l("b"), vec![s(1)]), (l("a"), vec![s(1)])], |e| {
            matches!(e, Error::Block(BlockError::SeriesOutOfOrder { .. }))
        }),
        (vec![(l("a"), vec![s(1)]), (l("a"), vec![s(2)])], |e| {
            matches!(e, Error::Block(BlockError::SeriesOutOfOrder { .. }))
        }),
        (vec![(l("a"), vec![s(2), s(2)])], |e| matches!(e, Error::Block(BlockError::SampleOutOfOrder { .. }))),
        (vec![(l("a"), vec![s(3), s(2)])], |e| matches!(e, Error::Block(BlockError::SampleOutOfOrder { .. }))),
        (vec![(l("a"), vec![s(H2)])], |e| matches!(e, Error::Block(BlockError::SampleOutOfRange { .. }))),
        (vec![(l("a"), vec![s(-1)])], |e| matches!(e, Error::Block(BlockError::SampleOutOfRange { .. }))),
        (vec![(Labels::empty(), vec![s(1)])], |e| matches!(e, Error::Block(BlockError::EmptyLabels))),
    ];
    for (series, check) in cases {
        let dir = tempfile::tempdir().unwrap();
        let err = write_block(dir.path(), 0, H2, CompactionMeta::level1(), series.into_iter(), &Default::default())
            .unwrap_err();
        assert!(check(&err), "unexpected error {err}");
        assert!(block_dirs(dir.path()).is_empty(), "failed write left files behind");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = write_block(dir.path(), 5, 5, CompactionMeta::level1(), std::iter::empty(), &Default::default());
    assert!(matches!(err, Err(Error::Block(BlockError::InvalidRange { .. }))));
    let opts = BlockWriteOptions { max_samples_per_chunk: 0, ..BlockWriteOptions::xor() };
    assert!(write_block(dir.path(), 0, 5, CompactionMeta::level1(), std::iter::empty(), &opts).is_err());
}

#[test]
fn chunk_files_are_split_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let series = gen_series(50, 500, 10_000, 0);
    let meta = write_block_with(
        &crate::vfs::os(),
        dir.path(),
        0,
        H2,
        CompactionMeta::level1(),
        series.iter().cloned().map(|(l, f)| Ok(crate::block::writer::SeriesData::floats(l, f))),
        &BlockWriteOptions::xor(),
        4096,
    )
    .unwrap();
    let bdir = dir.path().join(&meta.ulid);
    let files = std::fs::read_dir(bdir.join(CHUNKS_DIRNAME)).unwrap().count();
    assert!(files > 5, "only {files} chunk files");
    let b = Block::open(&bdir).unwrap();
    let got: Vec<_> = b.all_series().unwrap().map(|s| s.unwrap()).collect();
    assert_eq!(got.len(), series.len());
    for (g, (l, s)) in got.iter().zip(&series) {
        assert_eq!(&g.labels, l);
        assert_eq!(&decode(g), s);
    }
    // A missing middle file is detected at open.
    std::fs::remove_file(bdir.join(CHUNKS_DIRNAME).join(chunk_file_name(2))).unwrap();
    assert!(matches!(Block::open(&bdir), Err(Error::Block(BlockError::Corrupt { .. }))));
}

/// Opens the block and decodes every chunk once.
fn open_and_scan(dir: &Path) -> Result<usize, Error> {
    let b = Block::open(dir)?;
    let mut n = 0;
    for s in b.all_series()? {
        n += decode_checked(&s?)?;
    }
    Ok(n)
}

/// Opens the block and reads everything; any error is fine, a panic is not.
fn open_and_read(dir: &Path) -> Result<usize, Error> {
    let b = Block::open(dir)?;
    let mut n = 0;
    for s in b.all_series()? {
        n += decode_checked(&s?)?;
    }
    for ms in matcher_cases() {
        for s in b.select(&ms, i64::MIN, i64::MAX)? {
            n += decode_checked(&s)?;
        }
        b.label_names(&ms)?;
        b.label_values("job", &ms)?;
    }
    Ok(n)
}

fn decode_checked(s: &ChunkSeries) -> Result<usize, Error> {
    let mut out = Vec::new();
    for c in &s.chunks {
        c.decode_into(&mut out)?;
    }
    Ok(out.len())
}

fn tiny_block(dir: &Path, opts: &BlockWriteOptions) -> PathBuf {
    let series = gen_series(4, 5, 1000, 0);
    dir.join(write(dir, &series, opts).ulid)
}

#[test]
fn every_truncation_of_index_or_chunk_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = tiny_block(dir.path(), &BlockWriteOptions::xor());
    assert_eq!(open_and_read(&bdir).unwrap(), expected_reads(), "baseline");
    for file in [bdir.join(INDEX_FILENAME), bdir.join(CHUNKS_DIRNAME).join(chunk_file_name(1))] {
        let orig = std::fs::read(&file).unwrap();
        for n in 0..orig.len() {
            std::fs::write(&file, &orig[..n]).unwrap();
            assert!(open_and_scan(&bdir).is_err(), "{} truncated to {n} bytes was accepted", file.display());
        }
        std::fs::write(&file, &orig).unwrap();
    }
    assert!(open_and_read(&bdir).is_ok());
}

/// Samples `open_and_read` decodes from the intact tiny block.
fn expected_reads() -> usize {
    let series = gen_series(4, 5, 1000, 0);
    4 * 5 + matcher_cases().iter().map(|ms| brute(&series, ms).len() * 5).sum::<usize>()
}

#[test]
fn every_bit_flip_in_index_or_chunk_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [BlockWriteOptions::xor(), BlockWriteOptions::default()] {
        let bdir = tiny_block(dir.path(), &opts);
        for file in [bdir.join(INDEX_FILENAME), bdir.join(CHUNKS_DIRNAME).join(chunk_file_name(1))] {
            let orig = std::fs::read(&file).unwrap();
            for i in 0..orig.len() {
                let bit = i % 8;
                let mut b = orig.clone();
                b[i] ^= 1 << bit;
                std::fs::write(&file, &b).unwrap();
                assert!(open_and_scan(&bdir).is_err(), "flip of bit {bit} at {i} in {} accepted", file.display());
            }
            std::fs::write(&file, &orig).unwrap();
        }
    }
}

#[test]
fn arbitrary_index_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let bdir = tiny_block(dir.path(), &BlockWriteOptions::default());
    let orig = std::fs::read(bdir.join(INDEX_FILENAME)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..300 {
        let mut b = orig.clone();
        for _ in 0..rng.gen_range(1..8) {
            let i = rng.gen_range(0..b.len());
            b[i] = rng.gen();
        }
        std::fs::write(bdir.join(INDEX_FILENAME), &b).unwrap();
        let _ = open_and_read(&bdir);
        let junk: Vec<u8> = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect();
        std::fs::write(bdir.join(INDEX_FILENAME), &junk).unwrap();
        assert!(open_and_read(&bdir).is_err());
    }
}

#[test]
fn missing_or_damaged_meta_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = tiny_block(dir.path(), &BlockWriteOptions::default());
    let meta = std::fs::read(bdir.join(META_FILENAME)).unwrap();
    std::fs::write(bdir.join(META_FILENAME), &meta[..meta.len() / 2]).unwrap();
    assert!(matches!(Block::open(&bdir), Err(Error::Block(BlockError::Corrupt { .. }))));
    std::fs::remove_file(bdir.join(META_FILENAME)).unwrap();
    assert!(matches!(Block::open(&bdir), Err(Error::Io { .. })));
    // A meta whose series count disagrees with the index.
    let mut m = BlockMeta::from_json(&meta, "x").unwrap();
    m.stats.num_series += 1;
    std::fs::write(bdir.join(META_FILENAME), m.to_json()).unwrap();
    assert!(matches!(Block::open(&bdir), Err(Error::Block(BlockError::Corrupt { .. }))));
}

#[test]
fn half_written_block_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = tiny_block(dir.path(), &BlockWriteOptions::default());
    // Simulate a crash before meta.json and the rename: a .tmp directory
    // holding the index and chunks only.
    let tmp = dir.path().join(format!("{}{TMP_SUFFIX}", new_block_id()));
    std::fs::create_dir_all(tmp.join(CHUNKS_DIRNAME)).unwrap();
    std::fs::copy(bdir.join(INDEX_FILENAME), tmp.join(INDEX_FILENAME)).unwrap();
    std::fs::copy(
        bdir.join(CHUNKS_DIRNAME).join(chunk_file_name(1)),
        tmp.join(CHUNKS_DIRNAME).join(chunk_file_name(1)),
    )
    .unwrap();
    assert!(Block::open(&tmp).is_err(), "no meta.json, no block");
    let removed = crate::compact::remove_tmp_dirs(dir.path()).unwrap();
    assert_eq!(removed, vec![tmp.clone()]);
    assert!(!tmp.exists());
    assert!(Block::open(&bdir).is_ok(), "complete blocks are untouched");
}

#[test]
fn block_reports_its_size_and_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Block>();
    let dir = tempfile::tempdir().unwrap();
    let bdir = tiny_block(dir.path(), &BlockWriteOptions::default());
    let b = Block::open(&bdir).unwrap();
    let on_disk: u64 = [bdir.join(META_FILENAME), bdir.join(INDEX_FILENAME), bdir.join("chunks/000001")]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(b.size_bytes(), on_disk);
    assert_eq!(b.dir(), bdir.as_path());
}

const FIXTURE_ULID: &str = "01JD0000000000000000000001";

fn fixture_v1_series() -> Vec<(Labels, Vec<Sample>)> {
    gen_series(6, 40, 15_000, 1_000)
}

/// A block written by format version 1 (XOR chunks, index without
/// timestamps section) is kept in the tree: every build must still open it
/// and read back exactly the series it was written from.
#[test]
fn format_v1_fixture_still_opens() {
    let b = Block::open(&fixture_dir("v1-xor", FIXTURE_ULID)).unwrap();
    assert_eq!(b.meta().ulid, FIXTURE_ULID);
    assert_eq!((b.meta().min_time, b.meta().max_time), (0, H2));
    assert_eq!(b.num_timestamp_columns(), 0);
    let got: Vec<(Labels, Vec<Sample>)> =
        b.all_series().unwrap().map(|s| s.unwrap()).map(|s| (s.labels.clone(), decode(&s))).collect();
    assert_eq!(got, fixture_v1_series());
    let sel = b.select(&[Matcher::equal("__name__", "up")], 0, H2).unwrap();
    assert_eq!(sel.len(), brute(&fixture_v1_series(), &[Matcher::equal("__name__", "up")]).len());
}

const FIXTURE_V2_ULID: &str = "01JD0000000000000000000002";
const FIXTURE_V3_ULID: &str = "01JD0000000000000000000003";

fn fixture_series() -> Vec<(Labels, Vec<Sample>)> {
    jitter_series(6, 40, 3)
}

fn fixture_dir(name: &str, ulid: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/block/testdata").join(name).join(ulid)
}

/// Opens the fixture block in `fixture` and checks every sample against
/// [`fixture_series`].
fn check_fixture(fixture: &Path, ulid: &str, index_version: u8) {
    let b = Block::open(fixture).unwrap();
    assert_eq!(b.meta().ulid, ulid);
    assert_eq!(b.index.version(), index_version);
    assert_eq!(b.num_timestamp_columns(), 3, "three jitter patterns, each shared by two series");
    let got: Vec<(Labels, Vec<Sample>)> =
        b.all_series().unwrap().map(|s| s.unwrap()).map(|s| (s.labels.clone(), decode(&s))).collect();
    let bits = |v: &[(Labels, Vec<Sample>)]| {
        v.iter()
            .map(|(l, s)| (l.clone(), s.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&got), bits(&fixture_series()));
}

/// A block written with index format version 2 (sealed chunks, shared
/// timestamp columns, one offset per series, `u32` postings) is kept in the
/// tree: every build must still open it and read every sample back.
#[test]
fn format_v2_fixture_still_opens() {
    check_fixture(&fixture_dir("v2-sealed-shared", FIXTURE_V2_ULID), FIXTURE_V2_ULID, index::INDEX_VERSION_2);
}

/// A block written with index format version 3 (series entries in
/// groups of 16, delta postings, every chunk a record of its own) is kept
/// in the tree: every build must still open it and read every sample back.
#[test]
fn format_v3_fixture_still_opens() {
    check_fixture(&fixture_dir("v3-grouped", FIXTURE_V3_ULID), FIXTURE_V3_ULID, index::INDEX_VERSION_3);
}

const FIXTURE_V4_ULID: &str = "01JD0000000000000000000004";

/// A block written with index format version 4 and sealed chunks of
/// format version 2 (ivarint decimal columns) is kept in the tree: every
/// build must still open it and read every sample back.
#[test]
fn format_v4_fixture_still_opens() {
    check_fixture(&fixture_dir("v4-chunk-groups", FIXTURE_V4_ULID), FIXTURE_V4_ULID, index::INDEX_VERSION);
}

const FIXTURE_V4_SEALED_V3_ULID: &str = "01JD0000000000000000000005";

/// The current format (index version 4, small sealed chunks in chunk
/// groups, sealed chunks of format version 3 with byte-plane columns) is
/// kept in the tree too: every build must open it, and the writer must
/// still produce the same bytes for the same input (so a format change is
/// a deliberate act with a version bump and a new fixture). Set
/// `TIDEMARK_REGEN_FIXTURES=1` to rewrite it.
#[test]
fn format_v4_sealed_v3_fixture_still_opens_and_writer_output_is_unchanged() {
    let fixture = fixture_dir("v4-sealed-v3", FIXTURE_V4_SEALED_V3_ULID);
    let dir = tempfile::tempdir().unwrap();
    let fresh = write(dir.path(), &fixture_series(), &BlockWriteOptions::default());
    let fresh_dir = dir.path().join(&fresh.ulid);
    let chunk1 = Path::new(CHUNKS_DIRNAME).join(chunk_file_name(1));
    if std::env::var_os("TIDEMARK_REGEN_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(&fixture);
        std::fs::create_dir_all(fixture.join(CHUNKS_DIRNAME)).unwrap();
        std::fs::copy(fresh_dir.join(INDEX_FILENAME), fixture.join(INDEX_FILENAME)).unwrap();
        std::fs::copy(fresh_dir.join(&chunk1), fixture.join(&chunk1)).unwrap();
        let mut m = fresh.clone();
        m.ulid = FIXTURE_V4_SEALED_V3_ULID.into();
        m.compaction.sources = vec![FIXTURE_V4_SEALED_V3_ULID.into()];
        std::fs::write(fixture.join(META_FILENAME), m.to_json()).unwrap();
    }
    check_fixture(&fixture, FIXTURE_V4_SEALED_V3_ULID, index::INDEX_VERSION);
    for f in [Path::new(INDEX_FILENAME), chunk1.as_path()] {
        assert!(
            std::fs::read(fresh_dir.join(f)).unwrap() == std::fs::read(fixture.join(f)).unwrap(),
            "writer output for {} changed; bump the format version",
            f.display()
        );
    }
    // The fixture's chunks use the version 3 byte planes somewhere (the
    // jittered counters of `fixture_series`), so the test covers them.
    let raw = std::fs::read(fixture.join(&chunk1)).unwrap();
    assert_ne!(raw, std::fs::read(fixture_dir("v4-chunk-groups", FIXTURE_V4_ULID).join(&chunk1)).unwrap());
}

/// Series with every timestamp pattern the shared-column writer
/// distinguishes: groups sharing jittered timestamps, groups sharing
/// regular timestamps (too cheap to be worth a shared column: `gen_series`
/// gives series `i` the jitter `i % 3`), a series with timestamps of its own,
/// short series below [`writer::MIN_SHARED_LEN`], and a late-starting
/// series whose chunks only partly line up with the others.
fn mixed_series() -> Vec<(Labels, Vec<Sample>)> {
    let mut v = jitter_series(12, 300, 3);
    for (l, s) in gen_series(6, 300, 15_000, 0) {
        let l = Labels::new(l.iter().map(|p| (p.name, p.value)).chain([("regular", "yes")])).unwrap();
        v.push((l, s));
    }
    let own: Vec<Sample> = (0..300).map(|k| Sample::new(k * 15_000 + (k * k) % 11, k as f64)).collect();
    v.push((Labels::new([("__name__", "own_timestamps")]).unwrap(), own));
    v.push((Labels::new([("__name__", "short_a")]).unwrap(), (0..5).map(|k| Sample::new(k * 1000, 1.0)).collect()));
    v.push((Labels::new([("__name__", "short_b")]).unwrap(), (0..5).map(|k| Sample::new(k * 1000, 2.0)).collect()));
    let late: Vec<Sample> = v[0].1[100..].iter().map(|s| Sample::new(s.t, crate::stale_nan())).collect();
    v.push((Labels::new([("__name__", "late_stale")]).unwrap(), late));
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn shared_timestamp_columns_round_trip_for_mixed_timestamp_patterns() {
    let series = mixed_series();
    for max_samples_per_chunk in [64, 16384] {
        let dir = tempfile::tempdir().unwrap();
        let opts = BlockWriteOptions { max_samples_per_chunk, ..BlockWriteOptions::default() };
        let shared = write(dir.path(), &series, &opts);
        let own = write(dir.path(), &series, &BlockWriteOptions { shared_timestamps: false, ..opts.clone() });
        let b = Block::open(&dir.path().join(&shared.ulid)).unwrap();
        let plain = Block::open(&dir.path().join(&own.ulid)).unwrap();
        assert_eq!(plain.num_timestamp_columns(), 0);
        // Three jitter groups; with 64-sample chunks each of the 5 chunk
        // positions is a column of its own (the last is 44 samples long).
        // Regular timestamps cost next to nothing in a chunk, so they are
        // not worth a column.
        let want_cols = if max_samples_per_chunk == 64 { 15 } else { 3 };
        assert_eq!(b.num_timestamp_columns(), want_cols);
        assert!(
            b.size_bytes() < plain.size_bytes(),
            "sharing saves space: {} vs {}",
            b.size_bytes(),
            plain.size_bytes()
        );
        let got: Vec<(Labels, Vec<Sample>)> =
            b.all_series().unwrap().map(|s| s.unwrap()).map(|s| (s.labels.clone(), decode(&s))).collect();
        assert_eq!(got.len(), series.len());
        for ((gl, gs), (wl, ws)) in got.iter().zip(&series) {
            assert_eq!(gl, wl);
            let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(gs), bits(ws), "series {gl}");
        }
        for ms in matcher_cases() {
            for (mint, maxt) in [(0, H2), (1_000_000, 2_000_000), (2_000_000, 2_000_000)] {
                for s in b.select(&ms, mint, maxt).unwrap() {
                    let got: Vec<Sample> = decode(&s).into_iter().filter(|x| x.t >= mint && x.t <= maxt).collect();
                    let want: Vec<Sample> = series
                        .iter()
                        .find(|(l, _)| *l == s.labels)
                        .unwrap()
                        .1
                        .iter()
                        .filter(|x| x.t >= mint && x.t <= maxt)
                        .copied()
                        .collect();
                    assert_eq!(got.len(), want.len());
                    assert!(got.iter().zip(&want).all(|(a, b)| a.t == b.t && a.v.to_bits() == b.v.to_bits()));
                }
            }
        }
        // Chunks of shared columns carry them; the others do not.
        let mut with_cols = 0;
        for s in b.all_series().unwrap() {
            for c in s.unwrap().chunks {
                if let Some(ts) = &c.timestamps {
                    assert_eq!((ts[0], ts[ts.len() - 1]), (c.mint, c.maxt));
                    with_cols += 1;
                }
            }
        }
        let total_chunks = b.meta().stats.num_chunks as usize;
        assert!(with_cols > 0 && with_cols < total_chunks, "{with_cols} of {total_chunks}");
    }
}

/// A small block with shared timestamp columns (three, each used by two
/// series), for damage tests.
fn shared_block(dir: &Path) -> PathBuf {
    let series = jitter_series(6, 40, 3);
    let m = write(dir, &series, &BlockWriteOptions::default());
    let bdir = dir.join(m.ulid);
    assert_eq!(Block::open(&bdir).unwrap().num_timestamp_columns(), 3);
    bdir
}

#[test]
fn every_bit_flip_in_a_block_with_shared_columns_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = shared_block(dir.path());
    assert_eq!(open_and_scan(&bdir).unwrap(), 6 * 40);
    for file in [bdir.join(INDEX_FILENAME), bdir.join(CHUNKS_DIRNAME).join(chunk_file_name(1))] {
        let orig = std::fs::read(&file).unwrap();
        for i in 0..orig.len() {
            let mut b = orig.clone();
            b[i] ^= 1 << (i % 8);
            std::fs::write(&file, &b).unwrap();
            assert!(open_and_scan(&bdir).is_err(), "flip at {i} in {} accepted", file.display());
        }
        std::fs::write(&file, &orig).unwrap();
    }
}

#[test]
fn damaged_shared_column_behind_a_valid_section_checksum_is_a_corrupt_block_error() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = shared_block(dir.path());
    let path = bdir.join(INDEX_FILENAME);
    let orig = std::fs::read(&path).unwrap();
    // The timestamps section is the last one: 3 columns, 3 offsets, data.
    let toc = orig.len() - index::TOC_LEN;
    let start = u64::from_le_bytes(orig[toc + 100..toc + 108].try_into().unwrap()) as usize;
    let data = start + 4 + 3 * 8;
    let mut rejected = 0;
    for i in data..toc {
        let mut b = orig.clone();
        b[i] ^= 0x04;
        index::repair_checksums(&mut b);
        std::fs::write(&path, &b).unwrap();
        match open_and_scan(&bdir) {
            Err(Error::Block(BlockError::Corrupt { reason, .. })) => {
                assert!(reason.contains("timestamp column"), "{reason}");
                rejected += 1;
            }
            other => panic!("damage at {i} gave {other:?}"),
        }
    }
    assert_eq!(rejected, toc - data);
    std::fs::write(&path, &orig).unwrap();
    assert_eq!(open_and_scan(&bdir).unwrap(), 6 * 40);
}

#[test]
fn chunk_meta_pointing_at_the_wrong_shared_column_is_a_corrupt_block_error() {
    let dir = tempfile::tempdir().unwrap();
    let bdir = shared_block(dir.path());
    let path = bdir.join(INDEX_FILENAME);
    let orig = std::fs::read(&path).unwrap();
    let ix = index::IndexReader::open(&orig[..]).unwrap();
    let mut metas = Vec::new();
    ix.series(0, &mut metas).unwrap();
    let k = metas[0].shared_ts.expect("series 0 uses a shared column");
    // Rewrite the index with series 0 pointing at another column of the
    // same length: its chunk then decodes against the wrong timestamps,
    // which the reader notices from the chunk's time range.
    let mut entries = Vec::new();
    for id in 0..ix.num_series() {
        let l = ix.series(id, &mut metas).unwrap();
        if id == 0 {
            metas[0].shared_ts = Some((k + 1) % 3);
        }
        entries.push((l, metas.clone()));
    }
    let cols: Vec<Vec<u8>> = (0..3).map(|i| ix.timestamp_column(i).unwrap().to_vec()).collect();
    std::fs::write(&path, index::write_index(&entries, &cols).unwrap()).unwrap();
    match open_and_scan(&bdir) {
        Err(Error::Block(BlockError::Corrupt { reason, .. })) => assert!(reason.contains("does not span"), "{reason}"),
        other => panic!("wrong column accepted: {other:?}"),
    }
}

/// Chunk groups: the same series written split at a boundary into two
/// blocks, with and without groups, read back bit for bit, and the grouped
/// blocks are smaller. Every member is read in label order (one group
/// decompression per group) and again backwards (cache misses).
#[test]
fn grouped_chunks_read_back_exactly_and_take_fewer_bytes() {
    let series = jitter_series(200, 60, 4);
    let cut = 20 * 15_000;
    let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
    let mut sizes = Vec::new();
    for group_chunks in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let opts = BlockWriteOptions { group_chunks, ..BlockWriteOptions::default() };
        let mut total = 0;
        for (lo, hi) in [(0, cut), (cut, H2)] {
            let part: Vec<(Labels, Vec<Sample>)> = series
                .iter()
                .map(|(l, s)| (l.clone(), s.iter().filter(|x| x.t >= lo && x.t < hi).copied().collect()))
                .collect();
            let meta = write_block(dir.path(), lo, hi, CompactionMeta::level1(), part.iter().cloned(), &opts).unwrap();
            let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
            total += b.size_bytes();
            let got: Vec<ChunkSeries> = b.all_series().unwrap().map(|s| s.unwrap()).collect();
            assert_eq!(got.len(), part.len());
            for (cs, (l, s)) in got.iter().zip(&part) {
                assert_eq!(&cs.labels, l);
                assert_eq!(bits(&decode(cs)), bits(s), "groups={group_chunks} {l}");
            }
            for (l, s) in part.iter().rev() {
                let ms: Vec<Matcher> = l.iter().map(|p| Matcher::equal(p.name, p.value)).collect();
                let sel = b.select(&ms, lo, hi).unwrap();
                assert_eq!(sel.len(), 1);
                assert_eq!(bits(&decode(&sel[0])), bits(s));
            }
            let grouped = b.index.cursor_refs().into_iter().filter(|&r| group::slot_of(r) != 0).count();
            assert_eq!(grouped > 0, group_chunks, "groups={group_chunks}: {grouped} grouped chunks");
        }
        sizes.push(total);
    }
    assert!(sizes[1] < sizes[0], "grouped {} bytes, one record per chunk {}", sizes[1], sizes[0]);
}

/// A damaged group record costs the chunks of its members, and only them:
/// every other chunk still reads, and `verify` names exactly the members.
#[test]
fn a_damaged_group_record_damages_only_its_members() {
    let series = jitter_series(40, 30, 2);
    let dir = tempfile::tempdir().unwrap();
    let meta = write(dir.path(), &series, &BlockWriteOptions::default());
    let bdir = dir.path().join(&meta.ulid);
    let refs = Block::open(&bdir).unwrap().index.cursor_refs();
    let victim = group::record_of(*refs.iter().find(|&&r| group::slot_of(r) != 0).unwrap());
    let members = refs.iter().filter(|&&r| group::record_of(r) == victim).count();
    let path = bdir.join(CHUNKS_DIRNAME).join(chunk_file_name((victim >> 32) as u32));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(victim & 0xffff_ffff) as usize + 6] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let b = Block::open(&bdir).unwrap();
    let damaged = b.verify(&mut |_| {}).unwrap();
    assert_eq!(damaged.len(), members);
    assert!(damaged.iter().all(|d| group::record_of(d.chunk_ref) == victim));
}

mod group_props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Random series (any float bits, random scrape grids, some series
        /// sharing timestamps), split at a random boundary into two grouped
        /// blocks: every sample comes back with its exact bits.
        #[test]
        fn random_series_split_anywhere_round_trip_bit_exactly(
            nseries in 1usize..60,
            nsamples in 1usize..90,
            split in 0.0f64..1.0,
            seed in any::<u64>(),
        ) {
            let mut x = seed | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut series: Vec<(Labels, Vec<Sample>)> = (0..nseries)
                .map(|i| {
                    let l = Labels::new([("__name__", format!("m{}", i % 3)), ("i", format!("{i:03}"))]).unwrap();
                    let jitter = i % 3 != 0;
                    let mut t = (next() % 1000) as i64 * (i as i64 % 2);
                    let s = (0..nsamples)
                        .map(|k| {
                            t += if jitter { 15_000 + (next() % 100) as i64 } else { 15_000 };
                            let v = match next() % 5 {
                                0 => f64::from_bits(next()),
                                1 => stale_nan(),
                                2 => -0.0,
                                _ => (k * (i + 1)) as f64 * 0.5,
                            };
                            Sample::new(t, v)
                        })
                        .collect();
                    (l, s)
                })
                .collect();
            series.sort_by(|a, b| a.0.cmp(&b.0));
            let end = series.iter().map(|(_, s)| s.last().unwrap().t).max().unwrap() + 1;
            let cut = ((end as f64) * split) as i64;
            let dir = tempfile::tempdir().unwrap();
            let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            for (lo, hi) in [(i64::MIN / 2, cut), (cut, end)] {
                if lo >= hi {
                    continue;
                }
                let part: Vec<(Labels, Vec<Sample>)> = series
                    .iter()
                    .map(|(l, s)| (l.clone(), s.iter().filter(|x| x.t >= lo && x.t < hi).copied().collect::<Vec<_>>()))
                    .filter(|(_, s)| !s.is_empty())
                    .collect();
                let meta = write_block(dir.path(), lo, hi, CompactionMeta::level1(), part.iter().cloned(), &BlockWriteOptions::default()).unwrap();
                let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
                let got: Vec<(Labels, Vec<(i64, u64)>)> =
                    b.all_series().unwrap().map(|s| s.unwrap()).map(|s| (s.labels.clone(), bits(&decode(&s)))).collect();
                let want: Vec<(Labels, Vec<(i64, u64)>)> = part.iter().map(|(l, s)| (l.clone(), bits(s))).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

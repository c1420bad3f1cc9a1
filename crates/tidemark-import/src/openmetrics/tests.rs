use std::fmt::Write as _;
use std::time::Duration;

use tidemark_storage::{Db, Labels, Matcher};

use super::*;

fn opts(dir: &Path) -> ImportOptions {
    let mut o = ImportOptions::new(dir);
    o.progress = false;
    o
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn block_dirs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| tidemark_storage::block::is_block_id(n))
        .collect();
    v.sort();
    v
}

fn read_back(dir: &Path, name: &str) -> Vec<(i64, f64)> {
    let db = Db::builder(dir).retention_time(None).maintenance_interval(None).open().unwrap();
    let q = db.querier(i64::MIN / 2, i64::MAX / 2);
    let s = q.select(&[Matcher::equal("__name__", name)]).unwrap();
    s.iter().flat_map(|s| s.samples().unwrap()).map(|s| (s.t, s.v)).collect()
}

const H: i64 = 3_600_000;

#[test]
fn imports_blocks_aligned_like_promtool_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Samples at 1h, 1h30, 2h (next window), 5h59m.
    let text = "# HELP req_total Requests.\n# TYPE req_total counter\n\
        req_total{code=\"200\"} 1 3600\nreq_total{code=\"200\"} 2 5400.5\n\
        req_total{code=\"200\"} 3 7200 # {trace_id=\"x\"} 1 7200\nreq_total{code=\"500\"} 9 21540\n# EOF\n";
    let file = write(tmp.path(), "in.om", text);
    let s = import_file(&file, &opts(&data)).unwrap();
    assert_eq!((s.series, s.float_samples, s.histogram_samples), (2, 4, 0));
    assert_eq!((s.min_time_ms, s.max_time_ms), (H, 21_540_000));
    assert_eq!(s.blocks_written.len(), 3, "windows [0, 2h), [2h, 4h), [4h, 6h)");
    assert!(s.verified);
    assert!(s.skipped.iter().any(|(r, n)| r.starts_with("metadata") && *n == 2), "{:?}", s.skipped);
    assert!(s.skipped.iter().any(|(r, n)| r.starts_with("exemplars") && *n == 1), "{:?}", s.skipped);
    assert_eq!(block_dirs(&data), {
        let mut b = s.blocks_written.clone();
        b.sort();
        b
    });
    assert!(!data.join(STAGING_DIR).exists());
    // Block ranges: the samples' span inside each 2 h window, end exclusive.
    let mut ranges: Vec<(i64, i64)> = s
        .blocks_written
        .iter()
        .map(|b| {
            let m = tidemark_storage::block::BlockMeta::read(&data.join(b)).unwrap();
            (m.min_time, m.max_time)
        })
        .collect();
    ranges.sort();
    assert_eq!(ranges, vec![(H, 5_400_500 + 1), (2 * H, 2 * H + 1), (21_540_000, 21_540_000 + 1)]);
    let got = read_back(&data, "req_total");
    assert_eq!(got, vec![(H, 1.0), (5_400_500, 2.0), (2 * H, 3.0), (21_540_000, 9.0)]);
}

#[test]
fn block_duration_is_rounded_as_promtool_rounds_it() {
    assert_eq!(compatible_block_duration(0), 2 * H);
    assert_eq!(compatible_block_duration(H), 2 * H);
    assert_eq!(compatible_block_duration(5 * H), 2 * H);
    assert_eq!(compatible_block_duration(6 * H), 6 * H);
    assert_eq!(compatible_block_duration(24 * H), 18 * H);
    assert_eq!(compatible_block_duration(i64::MAX), 2 * H * 3i64.pow(9));
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "in.om", "a 1 0\na 2 7200\na 3 21599\n# EOF\n");
    let mut o = opts(&tmp.path().join("data"));
    o.block_duration = Duration::from_secs(6 * 3600);
    assert_eq!(import_file(&file, &o).unwrap().blocks_written.len(), 1);
}

#[test]
fn missing_timestamp_is_refused_with_its_line_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = write(tmp.path(), "in.om", "a 1 1\n# TYPE b gauge\nb{x=\"y\"} 2\n# EOF\n");
    let e = import_file(&file, &opts(&data)).unwrap_err();
    assert!(matches!(e, ImportError::MissingTimestamp { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("line 3: expected timestamp for series b{x=\"y\"}"), "{e}");
    assert!(block_dirs(&data).is_empty());
    assert!(!data.join(STAGING_DIR).exists());
}

#[test]
fn parse_errors_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (text, line) in [("a 1 1\na{ 1 1\n# EOF\n", 2), ("a 1 1\n", 1), ("a 1 1\n# EOF\na 2 2\n", 3)] {
        let file = write(tmp.path(), "in.om", text);
        match import_file(&file, &opts(&data)) {
            Err(ImportError::Parse { source, .. }) => assert_eq!(source.line, line, "{text:?}: {source}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let file = write(tmp.path(), "in.om", "a{x=\"1\",x=\"2\"} 1 1\n# EOF\n");
    assert!(matches!(import_file(&file, &opts(&data)), Err(ImportError::InvalidLabels { line: 1, .. })));
}

#[test]
fn duplicates_identical_are_dropped_conflicting_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Two spellings of one series, one repeated sample.
    let file = write(
        tmp.path(),
        "in.om",
        "a{x=\"1\",y=\"2\"} 5 10\na{y=\"2\",x=\"1\"} 5 10\na{x=\"1\",y=\"2\"} 6 20\n# EOF\n",
    );
    let s = import_file(&file, &opts(&data)).unwrap();
    assert_eq!((s.series, s.float_samples), (1, 2));
    assert!(s.skipped.iter().any(|(r, n)| r.starts_with("duplicate") && *n == 1));
    let data2 = tmp.path().join("data2");
    let file = write(tmp.path(), "in2.om", "a 5 10\nb 1 10\na 6 10\n# EOF\n");
    let e = import_file(&file, &opts(&data2)).unwrap_err();
    assert!(matches!(e, ImportError::DuplicateSample { t: 10_000, .. }), "{e}");
    assert!(block_dirs(&data2).is_empty(), "a failed import leaves no block");
    assert!(!data2.join(STAGING_DIR).exists());
}

#[test]
fn unsorted_input_is_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = write(tmp.path(), "in.om", "a 3 30\nb 1 5\na 1 10\na 2 20\n# EOF\n");
    let s = import_file(&file, &opts(&data)).unwrap();
    assert!(s.verified);
    assert_eq!(read_back(&data, "a"), vec![(10_000, 1.0), (20_000, 2.0), (30_000, 3.0)]);
}

#[test]
fn a_locked_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = Db::builder(&data).retention_time(None).maintenance_interval(None).open().unwrap();
    let file = write(tmp.path(), "in.om", "a 1 1\n# EOF\n");
    let e = import_file(&file, &opts(&data)).unwrap_err();
    assert!(matches!(e, ImportError::Locked(_)), "{e}");
    assert!(e.to_string().contains("stop it before importing"), "{e}");
    db.close().unwrap();
    assert!(import_file(&file, &opts(&data)).is_ok());
}

#[test]
fn data_reaching_into_the_head_is_refused_older_data_is_imported_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    {
        let db = Db::builder(&data).retention_time(None).maintenance_interval(None).open().unwrap();
        let mut app = db.appender();
        app.append(&Labels::new([("__name__", "live")]).unwrap(), 100 * H, 7.0).unwrap();
        app.commit().unwrap();
        db.close().unwrap();
    }
    let newer = write(tmp.path(), "newer.om", &format!("a 1 {}\n# EOF\n", 100 * 3600));
    let e = import_file(&newer, &opts(&data)).unwrap_err();
    assert!(matches!(e, ImportError::Conflict(crate::target::Conflict::OverlapsHead { .. })), "{e}");
    let older = write(tmp.path(), "older.om", &format!("a 1 {}\n# EOF\n", 90 * 3600));
    assert!(import_file(&older, &opts(&data)).unwrap().verified);
    assert_eq!(read_back(&data, "live"), vec![(100 * H, 7.0)], "the head survives the import");
    assert_eq!(read_back(&data, "a"), vec![(90 * H, 1.0)]);
}

#[test]
fn overlapping_an_existing_block_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = write(tmp.path(), "1.om", "a 1 0\na 1 10\n# EOF\n");
    let second = write(tmp.path(), "2.om", "a 2 5\na 9 10\n# EOF\n");
    let third = write(tmp.path(), "3.om", "a 2 10.001\n# EOF\n");
    let s1 = import_file(&first, &opts(&data)).unwrap();
    let e = import_file(&second, &opts(&data)).unwrap_err();
    assert!(
        matches!(&e, ImportError::Conflict(crate::target::Conflict::OverlapsBlock { block, .. }) if *block == s1.blocks_written[0]),
        "{e}"
    );
    assert_eq!(block_dirs(&data).len(), 1);
    // Right after the block's end (exclusive 10.001 s) is fine.
    assert!(import_file(&third, &opts(&data)).unwrap().verified);
    assert_eq!(read_back(&data, "a"), vec![(0, 1.0), (10_000, 1.0), (10_001, 2.0)]);
}

/// A generated file much larger than the memory bound imports completely
/// with the buffers, the series table and the merge's read buffers inside it.
#[test]
fn a_large_file_imports_within_a_small_memory_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let (series, per_series) = (300usize, 1500i64);
    let mut text = String::new();
    // Scrape order: every series at each timestamp, 5 s apart (2 h 5 min: two blocks).
    for i in 0..per_series {
        for s in 0..series {
            let _ = writeln!(
                text,
                "node_metric{{instance=\"host-{}\",cpu=\"{}\"}} {} {}.{:03}",
                s % 30,
                s / 30,
                (i * 7 + s as i64) as f64 / 4.0,
                1_700_000_000 + i * 5,
                s % 1000
            );
        }
    }
    text.push_str("# EOF\n");
    let file = write(tmp.path(), "big.om", &text);
    let bound: u64 = 256 << 10;
    let mut o = opts(&tmp.path().join("small"));
    o.max_memory_bytes = bound;
    let (s, stats) = import_file_with_stats(&file, &o).unwrap();
    assert_eq!(s.float_samples, series as u64 * per_series as u64);
    assert_eq!(s.series, series as u64);
    assert!(s.verified);
    let samples_bytes = s.float_samples * spill::RECORD_BYTES;
    assert!(samples_bytes > 20 * bound, "the input ({samples_bytes} B of samples) dwarfs the bound");
    assert!(stats.runs_spilled > 20, "{stats:?}");
    assert!(stats.peak_bytes <= bound, "{stats:?}");
    assert!(stats.peak_bytes > bound / 2, "the bound is used, not avoided: {stats:?}");
    // The same file with room to spare writes the same data.
    let big = opts(&tmp.path().join("big"));
    let (s2, stats2) = import_file_with_stats(&file, &big).unwrap();
    assert_eq!(stats2.runs_spilled, 0);
    assert_eq!(
        (s2.series, s2.float_samples, s2.min_time_ms, s2.max_time_ms),
        (s.series, s.float_samples, s.min_time_ms, s.max_time_ms)
    );
    assert_eq!(s2.blocks_written.len(), s.blocks_written.len());
    // Too small a bound for the series table is a clear error.
    let mut tiny = opts(&tmp.path().join("tiny"));
    tiny.max_memory_bytes = 40 << 10;
    assert!(matches!(import_file(&file, &tiny), Err(ImportError::MemoryTooSmall { .. })));
}

#[test]
fn an_empty_import_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = write(tmp.path(), "in.om", "# TYPE a gauge\n# EOF\n");
    let s = import_file(&file, &opts(&data)).unwrap();
    assert_eq!(s.float_samples, 0);
    assert!(s.blocks_written.is_empty());
    assert!(!s.verified);
}

#[test]
fn data_below_the_retention_floor_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("deleted_before"), tidemark_storage::floor::encode(50 * H)).unwrap();
    let file = write(tmp.path(), "in.om", &format!("a 1 {}\na 1 {}\n# EOF\n", 49 * 3600, 51 * 3600));
    let e = import_file(&file, &opts(&data)).unwrap_err();
    assert!(
        matches!(e, ImportError::Conflict(crate::target::Conflict::BelowRetentionFloor { floor_ms, .. }) if floor_ms == 50 * H),
        "{e}"
    );
    let file = write(tmp.path(), "in.om", &format!("a 1 {}\n# EOF\n", 51 * 3600));
    assert!(import_file(&file, &opts(&data)).unwrap().verified);
}

mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Random series and samples, written as OpenMetrics lines in a random
    /// order with random label order and identical repeats, under a random
    /// small memory bound: what reads back is exactly the model.
    /// (metric, label, t ms, value × 8) samples; lines to repeat; memory bound.
    type Case = (Vec<(u8, u8, i64, i32)>, Vec<usize>, u64);

    fn case() -> impl Strategy<Value = Case> {
        (
            proptest::collection::vec((0u8..4, 0u8..3, 0i64..40_000_000, -1000i32..1000), 1..300),
            proptest::collection::vec(0usize..1000, 0..40),
            prop_oneof![Just(64u64 << 10), Just(1u64 << 20)],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
        #[test]
        fn import_reads_back_as_the_model((samples, repeats, bound) in case()) {
            let tmp = tempfile::tempdir().unwrap();
            let mut model: BTreeMap<(u8, u8), BTreeMap<i64, f64>> = BTreeMap::new();
            let mut lines = Vec::new();
            for &(m, l, t, v) in &samples {
                let v = f64::from(v) / 8.0;
                // The text gives seconds; promtool's int64(seconds × 1000)
                // may land 1 ms lower (8194.862 s → 8194861 ms).
                let secs = format!("{}.{:03}", t / 1000, t % 1000);
                let t = (secs.parse::<f64>().unwrap() * 1000.0) as i64;
                // One value per series and timestamp (conflicts are refused, tested elsewhere).
                let v = *model.entry((m, l)).or_default().entry(t).or_insert(v);
                let line = if t % 2 == 0 {
                    format!("m{m}{{l=\"{l}\",z=\"q\\\"\"}} {v} {secs}\n")
                } else {
                    format!("m{m}{{z=\"q\\\"\",l=\"{l}\"}} {v} {secs}\n")
                };
                lines.push(line);
            }
            for &r in &repeats {
                let again = lines[r % lines.len()].clone();
                lines.push(again);
            }
            let mut text: String = lines.concat();
            text.push_str("# EOF\n");
            let file = write(tmp.path(), "in.om", &text);
            let mut o = opts(&tmp.path().join("data"));
            o.max_memory_bytes = bound;
            let s = import_file(&file, &o).unwrap();
            prop_assert!(s.verified);
            prop_assert_eq!(s.series, model.len() as u64);
            prop_assert_eq!(s.float_samples, model.values().map(|m| m.len() as u64).sum::<u64>());
            let db = Db::builder(tmp.path().join("data")).retention_time(None).maintenance_interval(None).open().unwrap();
            let q = db.querier(0, 40_000_000);
            for ((m, l), want) in &model {
                let sel = q.select(&[Matcher::equal("__name__", format!("m{m}")), Matcher::equal("l", l.to_string())]).unwrap();
                prop_assert_eq!(sel.len(), 1);
                prop_assert_eq!(sel[0].labels().get("z"), Some("q\""));
                let got: Vec<(i64, f64)> = sel[0].samples().unwrap().iter().map(|s| (s.t, s.v)).collect();
                let want: Vec<(i64, f64)> = want.iter().map(|(&t, &v)| (t, v)).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

//! Old data directories keep opening: each `testdata/datadir-v<N>/` was
//! written by the code of its day and must read back exactly, sample for
//! sample, with every later version.
//!
//! - `datadir-v1/`: the code of 2026-12-05 (WAL record types 1 and 2 only,
//!   before compressed records existed).
//! - `datadir-v2/`: the code of 2026-12-07 (main `62dd83d`: compressed and
//!   columnar WAL records, chunk-group blocks with sealed chunks), the last
//!   format before native histograms.
//! - `datadir-v3/`: the code of 2026-12-07 with native histograms (WAL
//!   record type 5, histogram chunks in the block in the sealed histogram
//!   encoding 6): the same floats plus two
//!   histogram series (an integer counter histogram with a reset and new
//!   buckets, a float gauge histogram with custom buckets ending in a
//!   staleness marker).
//! - `datadir-v4/`: the code of 2026-12-07 with exemplars (WAL record type
//!   6): the same floats and histograms plus exemplars on two float series
//!   and the counter histogram, in the checkpoint (the ones not older than
//!   the block) and in the segments after it.
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

use tidemark_storage::exemplar::Exemplar;
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span};
use tidemark_storage::{Db, DbBuilder, Labels, MatchOp, Matcher, SampleIterator, STALE_NAN_BITS};

const MIN: i64 = 60_000;
/// Start of the data: a multiple of the 10-minute block range.
const T0: i64 = 1_700_000_400_000;
const STEP: i64 = 15_000;
/// Scrape rounds: 40 minutes.
const ROUNDS: i64 = 160;
/// The head is persisted (block + checkpoint) after this round.
const PERSIST_AFTER: i64 = 100;

/// The fixture [`regenerate`] writes: the newest format.
const NEWEST: &str = "datadir-v4";

/// The fixtures that hold histogram series.
const WITH_HISTOGRAMS: &[&str] = &["datadir-v3", "datadir-v4"];

/// The fixtures that hold exemplars.
const WITH_EXEMPLARS: &[&str] = &["datadir-v4"];

/// Every exemplar of the fixtures from v4 on, in append order:
/// `(series labels, round, exemplar)`. Series 0 and 2 every round, the
/// counter histogram every third; trace ids, an empty label set, a
/// multi-byte value and special values.
fn exemplar_plan() -> Vec<(Labels, i64, Exemplar)> {
    let mut out = Vec::new();
    for r in 0..ROUNDS {
        let t = T0 + r * STEP;
        for (i, l) in [(0, labels(0)), (2, labels(2))] {
            let ex_labels = match r % 5 {
                4 => Labels::empty(),
                3 => Labels::new([("span", "ré"), ("trace_id", &format!("{:032x}", mix(r as u64 + i)))]).unwrap(),
                _ => Labels::new([("trace_id", format!("{:032x}", mix(r as u64 + i)))]).unwrap(),
            };
            let value = if r % 7 == 6 { f64::from_bits(0x7ff8_dead_beef_0001) } else { r as f64 * 0.001 + i as f64 };
            out.push((l, r, Exemplar { labels: ex_labels, value, t: t + i as i64 - 3 }));
        }
        if r % 3 == 0 {
            let ex = Exemplar { labels: Labels::new([("trace_id", format!("h{r}"))]).unwrap(), value: 0.25, t: t + 10 };
            out.push((hist_labels(0), r, ex));
        }
    }
    out
}

/// The histogram series (`k` = 0, 1) of the fixtures from v3 on.
fn hist_labels(k: usize) -> Labels {
    let name = if k == 0 { "hist_latency_seconds" } else { "hist_queue_gauge" };
    Labels::new([("__name__", name), ("job", "hist")]).unwrap()
}

/// Histogram `k` in scrape round `r` (`None`: no sample that round).
fn hist_value(k: usize, r: i64) -> Option<HistogramValue> {
    if k == 0 {
        // A counter; it resets at round 80, and a bucket appears at 40.
        let n = if r >= 80 { r - 80 } else { r };
        let mut h = Histogram {
            schema: 2,
            zero_threshold: 0.001,
            zero_count: (n / 4) as u64,
            sum: n as f64 * 0.125,
            positive_spans: vec![Span { offset: -1, length: 2 }],
            positive_buckets: vec![n, 1 - n],
            negative_spans: vec![Span { offset: 0, length: 1 }],
            negative_buckets: vec![n / 8],
            ..Histogram::default()
        };
        if r % 80 >= 40 {
            h.positive_spans.push(Span { offset: 3, length: 1 });
            h.positive_buckets.push(2);
        }
        let buckets = |d: &[i64]| {
            let mut acc = 0i64;
            d.iter()
                .map(|x| {
                    acc += x;
                    acc
                })
                .sum::<i64>()
        };
        h.count = (buckets(&h.positive_buckets) + buckets(&h.negative_buckets)) as u64 + h.zero_count;
        return Some(HistogramValue::Integer(h));
    }
    match r {
        150 => {
            Some(HistogramValue::Float(FloatHistogram { sum: f64::from_bits(STALE_NAN_BITS), ..Default::default() }))
        }
        r if r < 150 && r % 2 == 0 => {
            let c = (r % 9) as f64 + 0.5;
            Some(HistogramValue::Float(FloatHistogram {
                counter_reset_hint: CounterResetHint::Gauge,
                schema: -53,
                count: c + 1.0,
                sum: c * 3.0,
                positive_spans: vec![Span { offset: 0, length: 3 }],
                positive_buckets: vec![c, 0.0, 1.0],
                custom_values: vec![0.5, 1.0, 4.0],
                ..Default::default()
            }))
        }
        _ => None,
    }
}

/// Every histogram sample of the fixtures from v3 on: `(series, t, value)`.
fn hist_plan() -> Vec<(usize, i64, HistogramValue)> {
    let mut out = Vec::new();
    for r in 0..ROUNDS {
        for k in 0..2 {
            if let Some(h) = hist_value(k, r) {
                out.push((k, T0 + r * STEP + 10 + k as i64, h));
            }
        }
    }
    out
}

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

#[test]
fn datadir_v3_opens_and_reads_back_every_sample() {
    opens_and_reads_back_every_sample("datadir-v3");
}

#[test]
fn datadir_v4_opens_and_reads_back_every_sample_and_exemplar() {
    opens_and_reads_back_every_sample("datadir-v4");
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
    let with_histograms = WITH_HISTOGRAMS.contains(&name);
    let mut got_hist: BTreeMap<usize, Vec<(i64, HistogramValue)>> = BTreeMap::new();
    for s in q.select(&[Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()]).unwrap() {
        if let Some(k) = (0..2).find(|&k| hist_labels(k) == *s.labels()) {
            assert!(with_histograms, "{name} holds no histogram series");
            let mut it = s.iter();
            let (mut f, mut h) = (Vec::new(), Vec::new());
            it.drain_mixed_into(&mut f, &mut h);
            assert!(it.err().is_none() && f.is_empty(), "{:?}", it.err());
            got_hist.insert(k, h.into_iter().map(|s| (s.t, s.h)).collect());
            continue;
        }
        let i = (0..SERIES).find(|&i| labels(i) == *s.labels()).expect("an expected series");
        let samples: Vec<(i64, u64)> = s.samples().unwrap().iter().map(|s| (s.t, s.v.to_bits())).collect();
        got.insert(i, samples);
    }
    let want = expected();
    assert_eq!(got.len(), want.len());
    for (i, w) in &want {
        assert_eq!(got.get(i), Some(w), "series {i}");
    }
    if with_histograms {
        let mut want_hist: BTreeMap<usize, Vec<(i64, HistogramValue)>> = BTreeMap::new();
        for (k, t, h) in hist_plan() {
            want_hist.entry(k).or_default().push((t, h));
        }
        assert_eq!(got_hist.len(), 2);
        for (k, w) in &want_hist {
            let g = &got_hist[k];
            assert_eq!(g.len(), w.len(), "histogram series {k}");
            for ((gt, gh), (wt, wh)) in g.iter().zip(w) {
                assert_eq!(gt, wt, "histogram series {k}");
                let stale = wh.is_stale() && gh.is_stale();
                assert!(stale || gh.same_data(wh), "histogram series {k} at {gt}: {gh:?} != {wh:?}");
            }
        }
    }
    assert!(q.warnings().is_empty(), "{:?}", q.warnings());
    let all = [vec![Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()]];
    let got_ex = db.exemplars(&all, i64::MIN, i64::MAX);
    if WITH_EXEMPLARS.contains(&name) {
        // The checkpoint dropped the exemplars older than the block's end.
        let mint = db.blocks().iter().map(|b| b.max_time).max().unwrap();
        let mut want: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
        for (l, _, e) in exemplar_plan() {
            if e.t >= mint {
                want.entry(l).or_default().push(e);
            }
        }
        assert_eq!(got_ex.len(), 3);
        let before_block = exemplar_plan().iter().filter(|(_, _, e)| e.t < mint).count();
        assert!(before_block > 0 && want.values().map(Vec::len).sum::<usize>() > 100);
        for s in &got_ex {
            let w = &want[&s.series_labels];
            assert_eq!(s.exemplars.len(), w.len(), "{}", s.series_labels);
            for (g, w) in s.exemplars.iter().zip(w) {
                assert!(g.same(w), "{}: {g:?} != {w:?}", s.series_labels);
            }
        }
    } else {
        assert!(got_ex.is_empty(), "{name} holds no exemplars");
    }
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
    let mut hists = hist_plan().into_iter().peekable();
    let mut exemplars = exemplar_plan().into_iter().peekable();
    for c in plan() {
        let mut app = db.appender();
        let mut refs = BTreeMap::new();
        for &(i, t, v) in &c {
            refs.insert(labels(i), app.append(&labels(i), t, v).unwrap());
        }
        // A round's histograms and exemplars go with its floats.
        if c.len() > 1 {
            let end = T0 + round * STEP + STEP;
            while let Some((k, t, h)) = hists.next_if(|(_, t, _)| *t < end) {
                refs.insert(hist_labels(k), app.append_histogram(&hist_labels(k), t, h).unwrap());
            }
            while let Some((l, _, e)) = exemplars.next_if(|(_, r, _)| *r == round) {
                app.append_exemplar(refs[&l], e).unwrap();
            }
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

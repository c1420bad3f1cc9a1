//! Model-based target: random sequences of appends (in and out of order,
//! duplicates, NaN payloads, stale markers, new and existing series),
//! commits, rollbacks, head persistence, compactions, retention passes,
//! clean reopens, simulated `kill -9` crashes and queries, run against a
//! real on-disk `Db` and a plain `BTreeMap` model.
//!
//! The model applies the database's acceptance rules from the outside:
//! every append the database accepts goes into the model's pending batch,
//! and a commit applies the batch in order (a timestamp that already holds
//! a value keeps it: identical re-appends are no-ops, different values are
//! dropped, as `MemSeries::apply` does). Every rejection must be one the
//! model can justify (a duplicate needs a different value at that
//! timestamp, out of order needs a newer sample in the series, too old
//! needs the timestamp below an upper bound of the head's minimum valid
//! time). Queries must return exactly the model's samples, bit for bit
//! (NaN payloads included).
//!
//! Native histograms (integer and float, any schema, custom buckets, bucket
//! layouts that grow and shrink, counter resets, gauge hints, staleness
//! markers) go to the same series as floats, at other timestamps or the
//! same ones: a timestamp holds one sample of either kind. Floats and
//! histograms are each in order within their kind (a histogram may go
//! behind the newest float and vice versa); a commit applies the batch's
//! histograms before its floats. Histograms read back with their kind and
//! are compared after `compact(0)` (a stored sample reads back with the
//! empty buckets a later sample of its chunk added), hints ignored.
//!
//! Retention is block-granular, so the model follows the blocks: samples in
//! the range of a block that retention deleted are removed from the model,
//! unless another surviving block overlaps that range, in which case they
//! become "maybe" samples (may be missing; if returned, must be exact).
//!
//! A crash is simulated as `kill -9` leaves the disk: with
//! `SyncPolicy::EveryCommit` and no background thread, after each operation
//! returns, the files in the data directory are exactly what a killed
//! process would leave (the page cache survives a process kill), so the
//! directory is copied file by file (lock file included, as a killed
//! process leaves it) and the copy is opened; the old database is closed
//! afterwards, which only touches the old directory. What this does not
//! reach is a kill in the middle of an operation (e.g. halfway through a
//! compaction): `tests/kill9.rs` covers that with a real SIGKILL.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tidemark_fuzz::model::{Input, Op};
use tidemark_storage::block::BlockMeta;
use tidemark_storage::histogram::{HistogramSample, HistogramValue};
use tidemark_storage::{AppendError, Db, Labels, MatchOp, Matcher, Sample, SampleIterator, SyncPolicy};

/// Block range: small so that blocks are cut often.
const RANGE: i64 = 10_000;
const RETENTION: i64 = 60_000;
const OOO_WINDOW: i64 = 20_000;
const SERIES: u8 = 6;

/// A sample's value: float bits or a histogram.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    F(u64),
    H(HistogramValue),
}

impl Value {
    fn is_hist(&self) -> bool {
        matches!(self, Value::H(_))
    }

    /// The same data: floats bit for bit, histograms of the same kind equal
    /// after dropping empty buckets, hints ignored.
    fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::F(a), Value::F(b)) => a == b,
            (Value::H(a), Value::H(b)) => same_hist(a, b),
            _ => false,
        }
    }
}

fn same_hist(a: &HistogramValue, b: &HistogramValue) -> bool {
    // A staleness marker reads back bare (no layout): markers are equal.
    if a.is_stale() && b.is_stale() {
        return matches!(
            (a, b),
            (HistogramValue::Integer(_), HistogramValue::Integer(_))
                | (HistogramValue::Float(_), HistogramValue::Float(_))
        );
    }
    match (a, b) {
        (HistogramValue::Integer(x), HistogramValue::Integer(y)) => {
            let (mut x, mut y) = (x.clone(), y.clone());
            x.compact(0).equals(y.compact(0))
        }
        (HistogramValue::Float(x), HistogramValue::Float(y)) => {
            let (mut x, mut y) = (x.clone(), y.clone());
            x.compact(0).equals(y.compact(0))
        }
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Stored {
    v: Value,
    /// False once retention may or may not have removed it.
    certain: bool,
}

#[derive(Default)]
struct Model {
    window: i64,
    committed: BTreeMap<u8, BTreeMap<i64, Stored>>,
    pending: Vec<(u8, i64, Value)>,
    /// Newest committed timestamp ever (not lowered by retention): an upper
    /// bound of the head's max time.
    newest: i64,
    /// Upper bound of the head's minimum valid time (raised when blocks are
    /// written: at most the end of the range holding the newest sample).
    floor: i64,
    cursor: i64,
}

impl Model {
    /// The values a timestamp holds: committed, and every pending one.
    fn values_at(&self, s: u8, t: i64) -> Vec<&Value> {
        let c = self.committed.get(&s).and_then(|m| m.get(&t)).map(|x| &x.v);
        c.into_iter().chain(self.pending.iter().filter(|p| p.0 == s && p.1 == t).map(|p| &p.2)).collect()
    }

    /// The newest timestamp holding a sample of this kind (floats or
    /// histograms), committed or pending.
    fn last_t(&self, s: u8, hist: bool) -> Option<i64> {
        let c =
            self.committed.get(&s).and_then(|m| m.iter().rev().find(|(_, x)| x.v.is_hist() == hist).map(|(&t, _)| t));
        let p = self.pending.iter().filter(|p| p.0 == s && p.2.is_hist() == hist).map(|p| p.1).max();
        c.max(p)
    }

    fn too_old_bound(&self) -> i64 {
        if self.newest == i64::MIN {
            return self.floor;
        }
        let slack = if self.window > 0 { self.window } else { RANGE / 2 };
        self.floor.max(self.newest.saturating_sub(slack))
    }

    fn commit(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        // Histograms first, then floats, each in append order.
        let (hists, floats): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| p.2.is_hist());
        for (s, t, v) in hists.into_iter().chain(floats) {
            let m = self.committed.entry(s).or_default();
            if m.contains_key(&t) {
                // Identical: a no-op; different: dropped at apply time.
                continue;
            }
            m.insert(t, Stored { v, certain: true });
            self.newest = self.newest.max(t);
        }
    }

    fn blocks_written(&mut self) {
        if self.newest != i64::MIN {
            self.floor = self.floor.max(self.newest - self.newest.rem_euclid(RANGE) + RANGE);
        }
    }

    /// Retention deleted `gone`; `after` survive.
    fn retention_deleted(&mut self, gone: &[BlockMeta], after: &[BlockMeta]) {
        for b in gone {
            for m in self.committed.values_mut() {
                let ts: Vec<i64> = m.range(b.min_time..b.max_time).map(|(&t, _)| t).collect();
                for t in ts {
                    if after.iter().any(|a| a.min_time <= t && t < a.max_time) {
                        if let Some(x) = m.get_mut(&t) {
                            x.certain = false;
                        }
                    } else {
                        m.remove(&t);
                    }
                }
            }
        }
    }
}

fn labels(s: u8) -> Labels {
    let parity = if s.is_multiple_of(2) { "even" } else { "odd" };
    Labels::new([("__name__", "m"), ("series", &s.to_string()), ("parity", parity)]).expect("valid labels")
}

fn open(dir: &Path, window: i64) -> Db {
    Db::builder(dir)
        .block_range(RANGE)
        .retention_time(Some(Duration::from_millis(RETENTION as u64)))
        .max_block_range(Some(4 * RANGE))
        .out_of_order_window(Duration::from_millis(window as u64))
        .wal_sync(SyncPolicy::EveryCommit)
        .maintenance_interval(None)
        .open()
        .expect("open")
}

fn scratch_root() -> tempfile::TempDir {
    // Prefer memory-backed storage: every commit is fsynced.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

enum End {
    Done,
    Reopen,
    Crash,
}

fuzz_target!(|data: &[u8]| {
    let input = Input::from_bytes(data);
    let root = scratch_root();
    let window = if input.out_of_order { OOO_WINDOW } else { 0 };
    let mut model = Model { window, newest: i64::MIN, floor: i64::MIN, cursor: 100_000, ..Model::default() };
    let mut gen = 0;
    let mut dir = root.path().join("db0");
    let mut db = open(&dir, window);
    let mut ops = input.ops.into_iter();
    loop {
        let end = run_generation(&db, &mut ops, &mut model);
        let before = db.blocks();
        match end {
            End::Done => {
                check_query(&db, &model, None, i64::MIN, i64::MAX);
                db.close().expect("close");
                return;
            }
            End::Reopen => {
                db.close().expect("close");
                drop(db);
            }
            End::Crash => {
                gen += 1;
                let copy = root.path().join(format!("db{gen}"));
                copy_dir(&dir, &copy);
                db.close().expect("close");
                drop(db);
                dir = copy;
            }
        }
        db = open(&dir, window);
        let after = db.blocks();
        // Opening applies retention; it deletes nothing else.
        let gone: Vec<BlockMeta> = before.into_iter().filter(|b| !after.iter().any(|a| a.ulid == b.ulid)).collect();
        model.retention_deleted(&gone, &after);
        check_query(&db, &model, None, i64::MIN, i64::MAX);
    }
});

/// Runs operations on one open database until the input ends or asks for a
/// reopen or crash. Pending appends are rolled back before returning.
fn run_generation(db: &Db, ops: &mut impl Iterator<Item = Op>, model: &mut Model) -> End {
    let mut app = db.appender();
    for op in ops.by_ref() {
        match op {
            Op::Append { s, dt, v } => {
                let s = s % SERIES;
                let t = model.cursor.saturating_add(i64::from(dt) * 10);
                if dt > 0 {
                    model.cursor = t;
                }
                append(&mut app, model, s, t, Value::F(v.bits()));
            }
            Op::AppendHistogram { s, dt, h } => {
                let s = s % SERIES;
                let t = model.cursor.saturating_add(i64::from(dt) * 10);
                if dt > 0 {
                    model.cursor = t;
                }
                append(&mut app, model, s, t, Value::H(h.build()));
            }
            Op::Duplicate { s, nth, same } => {
                let s = s % SERIES;
                let Some(m) = model.committed.get(&s).filter(|m| !m.is_empty()) else { continue };
                let (&t, x) = m.iter().nth(usize::from(nth) % m.len()).expect("non-empty");
                let v = match (&x.v, same) {
                    (v, true) => v.clone(),
                    (Value::F(bits), false) => Value::F((f64::from_bits(*bits) + 1.0).to_bits()),
                    // The other kind at a histogram's timestamp.
                    (Value::H(_), false) => Value::F(1.0f64.to_bits()),
                };
                append(&mut app, model, s, t, v);
            }
            Op::Commit => {
                app.commit().expect("commit");
                model.commit();
                app = db.appender();
            }
            Op::Rollback => {
                app.rollback();
                model.pending.clear();
                app = db.appender();
            }
            Op::PersistHead | Op::FlushHead | Op::Compact | Op::Retention => {
                app.rollback();
                model.pending.clear();
                let before = db.blocks();
                match op {
                    Op::PersistHead => {
                        db.persist_head().expect("persist_head");
                        model.blocks_written();
                    }
                    Op::FlushHead => {
                        db.flush_head().expect("flush_head");
                        model.blocks_written();
                    }
                    Op::Compact => {
                        db.compact().expect("compact");
                        let after = db.blocks();
                        // Compaction replaces blocks by one covering their range.
                        for b in before.iter().filter(|b| !after.iter().any(|a| a.ulid == b.ulid)) {
                            assert!(
                                after.iter().any(|a| a.min_time <= b.min_time && b.max_time <= a.max_time),
                                "compaction lost the range of {b:?}: {after:?}"
                            );
                        }
                    }
                    _ => {
                        let deleted = db.apply_retention().expect("apply_retention");
                        let after = db.blocks();
                        let gone: Vec<BlockMeta> = before.into_iter().filter(|b| deleted.contains(&b.ulid)).collect();
                        assert_eq!(gone.len(), deleted.len(), "retention deleted unknown blocks");
                        model.retention_deleted(&gone, &after);
                    }
                }
                app = db.appender();
            }
            Op::Reopen | Op::Crash => {
                app.rollback();
                model.pending.clear();
                return if matches!(op, Op::Reopen) { End::Reopen } else { End::Crash };
            }
            Op::Query { s, from, len } => {
                let mint = model.cursor.saturating_add(i64::from(from) * 10);
                let maxt = mint.saturating_add(i64::from(len) * 10);
                check_query(db, model, s.map(|s| s % SERIES), mint, maxt);
            }
        }
    }
    app.rollback();
    model.pending.clear();
    End::Done
}

fn append(app: &mut tidemark_storage::Appender<'_>, model: &mut Model, s: u8, t: i64, v: Value) {
    let existing = model.values_at(s, t);
    let differs = existing.iter().any(|e| !e.same(&v));
    let certain_committed = model.committed.get(&s).and_then(|m| m.get(&t)).filter(|x| x.certain).map(|x| &x.v);
    let hist = v.is_hist();
    let res = match &v {
        Value::F(bits) => app.append(&labels(s), t, f64::from_bits(*bits)).map(|_| ()),
        Value::H(h) => app.append_histogram(&labels(s), t, h.clone()).map(|_| ()),
    };
    match res {
        Ok(()) => {
            if let (Some(old), false) = (certain_committed, hist) {
                // A float is refused at a timestamp holding anything else
                // (a histogram at one holding a float not newest among the
                // floats may be accepted and then dropped at commit).
                assert!(old.same(&v), "series {s} t {t}: accepted a different float at a committed timestamp");
            }
            if model.window == 0 {
                if let Some(last) = model.last_t(s, hist) {
                    assert!(t >= last, "series {s}: accepted t {t} behind {last} without an out-of-order window");
                    if t == last && !hist {
                        let other = existing.iter().any(|e| !e.is_hist() && !e.same(&v));
                        assert!(!other, "series {s}: accepted a different value at its last t {t}");
                    }
                }
            }
            model.pending.push((s, t, v));
        }
        Err(AppendError::DuplicateTimestamp { .. }) => {
            assert!(differs, "series {s} t {t}: duplicate without a different value");
        }
        Err(AppendError::OutOfOrder { .. }) => {
            assert!(model.window == 0, "out of order rejected with a window");
            assert!(model.last_t(s, hist).is_some_and(|l| t < l), "series {s} t {t}: out of order with nothing newer");
        }
        Err(AppendError::TooOld { .. }) => {
            let bound = model.too_old_bound();
            assert!(t < bound, "series {s} t {t}: too old, but the head's bound is {bound}");
        }
        Err(e) => panic!("unexpected append error: {e}"),
    }
}

/// A series' samples in the query range, floats and histograms in time
/// order.
fn read(series: &tidemark_storage::Series) -> Vec<(i64, Value)> {
    let mut it = series.iter();
    let mut floats: Vec<Sample> = Vec::new();
    let mut hists: Vec<HistogramSample> = Vec::new();
    it.drain_mixed_into(&mut floats, &mut hists);
    if let Some(e) = it.err() {
        panic!("iterate: {e}");
    }
    let mut out: Vec<(i64, Value)> = floats
        .into_iter()
        .map(|x| (x.t, Value::F(x.v.to_bits())))
        .chain(hists.into_iter().map(|h| (h.t, Value::H(h.h))))
        .collect();
    out.sort_by_key(|x| x.0);
    out
}

fn check_query(db: &Db, model: &Model, s: Option<u8>, mint: i64, maxt: i64) {
    let q = db.querier(mint, maxt);
    let ms = match s {
        Some(s) => vec![Matcher::equal("series", s.to_string())],
        None => vec![Matcher::new(MatchOp::Regex, "__name__", "m|other").expect("regex")],
    };
    let got = q.select(&ms).expect("select");
    let mut prev: Option<Labels> = None;
    let mut seen = Vec::new();
    for series in &got {
        assert!(prev.as_ref().is_none_or(|p| p < series.labels()), "series sorted and unique by labels");
        prev = Some(series.labels().clone());
        let idx: u8 = series.labels().get("series").and_then(|v| v.parse().ok()).expect("our labels");
        assert_eq!(series.labels(), &labels(idx));
        seen.push(idx);
        let samples = read(series);
        let empty = BTreeMap::new();
        let want = model.committed.get(&idx).unwrap_or(&empty);
        let mut last = None;
        for (t, v) in &samples {
            let t = *t;
            assert!(last.is_none_or(|l| l < t), "series {idx}: timestamps not strictly increasing");
            last = Some(t);
            assert!(mint <= t && t <= maxt, "series {idx}: sample at {t} outside [{mint}, {maxt}]");
            match want.get(&t) {
                Some(w) => assert!(w.v.same(v), "series {idx} t {t}: value {v:?} instead of {:?}", w.v),
                None => panic!("series {idx}: returned sample {t} {v:?} that the model lacks"),
            }
        }
        for (&t, w) in want.range(mint..=maxt).filter(|(_, w)| w.certain) {
            assert!(samples.iter().any(|x| x.0 == t), "series {idx}: sample at {t} ({:?}) missing", w.v);
        }
    }
    for (&idx, m) in &model.committed {
        if s.is_some_and(|s| s != idx) || seen.contains(&idx) {
            continue;
        }
        let missing: Vec<i64> = m.range(mint..=maxt).filter(|(_, w)| w.certain).map(|(&t, _)| t).collect();
        assert!(missing.is_empty(), "series {idx} not returned; samples {missing:?} missing");
    }
}

fn copy_dir(from: &Path, to: &PathBuf) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("dir entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

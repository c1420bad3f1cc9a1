//! Compaction: choosing blocks to merge ([`plan`]), merging them
//! ([`compact`]), and cleaning up after a crash ([`leftover_blocks`],
//! [`remove_tmp_dirs`]).
//!
//! The planner follows Prometheus' leveled compactor (`tsdb/compact.go`):
//! overlapping blocks are merged first (vertical compaction); otherwise,
//! for each range of the ladder after the first, blocks are grouped by the
//! aligned window of that size that contains them, and the first group with
//! more than one block that either fills its whole window or lies entirely
//! before the newest block is chosen. The newest block is never merged
//! through the second rule, so it can still be backed up or grow its window.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::block::chunks::MAX_CHUNK_FILE_SIZE;
use crate::block::meta::CompactionMeta;
use crate::block::writer::{write_block_with, SeriesData};
use crate::block::{Block, BlockError, BlockMeta, BlockWriteOptions, TMP_SUFFIX};
use crate::chunkenc::ChunkSeries;
use crate::error::Error;
use crate::histogram::HistogramSample;
use crate::{Labels, Sample};

/// Range ladder helper: `base`, `3·base`, `9·base`, … while `<= max`.
/// Empty if `base <= 0`.
///
/// ```
/// use tidemark_storage::compact::exponential_ranges;
/// let h = 3_600_000;
/// assert_eq!(exponential_ranges(2 * h, 54 * h), vec![2 * h, 6 * h, 18 * h, 54 * h]);
/// ```
pub fn exponential_ranges(base: i64, max: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut r = base;
    while r > 0 && r <= max {
        out.push(r);
        match r.checked_mul(3) {
            Some(n) => r = n,
            None => break,
        }
    }
    out
}

/// Pure planner (Prometheus' `LeveledCompactor.Plan`): given the metas of
/// all blocks and the range ladder (e.g. `[2h, 6h, 18h, 54h]`, capped by the
/// caller), the ulids of the blocks to merge next, or `None`.
///
/// 1. Overlapping blocks first: blocks sorted by `min_time`, the first run
///    of blocks that overlap each other (vertical compaction).
/// 2. Otherwise, leaving out the block with the newest `min_time`: for each
///    range `r` after the first, group blocks by the aligned window
///    `[k·r, (k+1)·r)` containing them (blocks larger than the window are
///    skipped); pick the first group of two or more blocks that spans the
///    whole window or ends before the newest block starts.
pub fn plan(metas: &[BlockMeta], ranges: &[i64]) -> Option<Vec<String>> {
    let mut ms: Vec<&BlockMeta> = metas.iter().collect();
    ms.sort_by(|a, b| a.min_time.cmp(&b.min_time).then_with(|| a.ulid.cmp(&b.ulid)));
    let overlapping = select_overlapping(&ms);
    if !overlapping.is_empty() {
        return Some(overlapping);
    }
    if ms.len() < 2 {
        return None;
    }
    // The newest block (by start) may still be joined by a successor in its
    // window; Prometheus leaves it out too.
    let high_time = ms[ms.len() - 1].min_time;
    let ms = &ms[..ms.len() - 1];
    select_dirs(ms, ranges, high_time).map(|g| g.into_iter().map(|m| m.ulid.clone()).collect())
}

fn select_overlapping(ms: &[&BlockMeta]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(first) = ms.first() else { return out };
    let mut global_maxt = first.max_time;
    for i in 1..ms.len() {
        let m = ms[i];
        if m.min_time < global_maxt {
            if out.is_empty() {
                out.push(ms[i - 1].ulid.clone());
            }
            out.push(m.ulid.clone());
        } else if !out.is_empty() {
            break;
        }
        global_maxt = global_maxt.max(m.max_time);
    }
    out
}

fn select_dirs<'a>(ms: &[&'a BlockMeta], ranges: &[i64], high_time: i64) -> Option<Vec<&'a BlockMeta>> {
    if ranges.len() < 2 || ms.is_empty() {
        return None;
    }
    for &r in &ranges[1..] {
        for group in split_by_range(ms, r) {
            let mint = group[0].min_time;
            let maxt = group[group.len() - 1].max_time;
            if group.len() > 1 && (maxt.wrapping_sub(mint) == r || maxt <= high_time) {
                return Some(group);
            }
        }
    }
    None
}

/// Groups blocks (sorted by `min_time`) by the aligned window of size `r`
/// holding them; blocks that do not fit inside one window are skipped.
fn split_by_range<'a>(ms: &[&'a BlockMeta], r: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut out = Vec::new();
    if r <= 0 {
        return out;
    }
    let mut i = 0;
    while i < ms.len() {
        let t0 = ms[i].min_time.div_euclid(r).saturating_mul(r);
        let end = t0.saturating_add(r);
        if ms[i].max_time > end {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < ms.len() && ms[i].max_time <= end {
            group.push(ms[i]);
            i += 1;
        }
        out.push(group);
    }
    out
}

/// Merges `blocks` into one new block in `parent_dir` and returns its meta.
///
/// Series are merged k-way by labels; a series' samples are merged by
/// timestamp, and where several blocks hold a sample at the same timestamp
/// the one from the block with the later ulid wins. The new block covers
/// the union of the inputs' ranges, has `level = max(level) + 1`, `sources`
/// = union of the inputs' sources and `parents` = the inputs. The inputs are
/// NOT deleted: the caller does that once the new block is durable (a crash
/// in between is repaired by [`leftover_blocks`]).
pub fn compact(parent_dir: &Path, blocks: &[&Block], opts: &BlockWriteOptions) -> Result<BlockMeta, Error> {
    compact_with(&crate::vfs::os(), parent_dir, blocks, opts, MAX_CHUNK_FILE_SIZE)
}

/// [`compact`] through the file layer `fs`, with a configurable chunk file size.
pub(crate) fn compact_with(
    fs: &crate::vfs::SharedFs,
    parent_dir: &Path,
    blocks: &[&Block],
    opts: &BlockWriteOptions,
    max_chunk_file_size: u64,
) -> Result<BlockMeta, Error> {
    if blocks.is_empty() {
        return Err(BlockError::InvalidCompaction("no blocks to compact".into()).into());
    }
    let mut ordered: Vec<&Block> = blocks.to_vec();
    // Priority = position: later ulids come later and win ties.
    ordered.sort_by(|a, b| a.meta().ulid.cmp(&b.meta().ulid));
    for w in ordered.windows(2) {
        if w[0].meta().ulid == w[1].meta().ulid {
            return Err(BlockError::InvalidCompaction(format!("block {} given twice", w[0].meta().ulid)).into());
        }
    }
    let mint = ordered.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let maxt = ordered.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let level = ordered.iter().map(|b| b.meta().compaction.level).max().unwrap_or(0).saturating_add(1);
    let sources: BTreeSet<String> = ordered.iter().flat_map(|b| b.meta().compaction.sources.iter().cloned()).collect();
    let parents: Vec<String> = ordered.iter().map(|b| b.meta().ulid.clone()).collect();
    let compaction = CompactionMeta { level, sources: sources.into_iter().collect(), parents };

    let mut iters = Vec::with_capacity(ordered.len());
    for b in &ordered {
        iters.push(b.all_series()?.peekable());
    }
    let merged = MergeSeries { iters, failed: false };
    write_block_with(fs, parent_dir, mint, maxt, compaction, merged, opts, max_chunk_file_size)
}

/// K-way merge of the inputs' series streams by labels.
struct MergeSeries<I: Iterator<Item = Result<ChunkSeries, Error>>> {
    iters: Vec<std::iter::Peekable<I>>,
    failed: bool,
}

impl<I: Iterator<Item = Result<ChunkSeries, Error>>> Iterator for MergeSeries<I> {
    type Item = Result<SeriesData, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // Surface the first error from any input.
        for it in &mut self.iters {
            if let Some(Err(_)) = it.peek() {
                self.failed = true;
                if let Some(Err(e)) = it.next() {
                    return Some(Err(e));
                }
            }
        }
        let min: Labels = self
            .iters
            .iter_mut()
            .filter_map(|it| match it.peek() {
                Some(Ok(s)) => Some(&s.labels),
                _ => None,
            })
            .min()?
            .clone();
        let mut runs: Vec<(usize, Vec<Sample>)> = Vec::new();
        let mut hist_runs: Vec<(usize, Vec<HistogramSample>)> = Vec::new();
        for (prio, it) in self.iters.iter_mut().enumerate() {
            if !matches!(it.peek(), Some(Ok(s)) if s.labels == min) {
                continue;
            }
            let Some(Ok(series)) = it.next() else { continue };
            let mut samples = Vec::new();
            let mut histograms = Vec::new();
            for c in &series.chunks {
                if let Err(e) = c.decode_mixed_into(&mut samples, &mut histograms) {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
            runs.push((prio, samples));
            if !histograms.is_empty() {
                hist_runs.push((prio, histograms));
            }
        }
        let floats = merge_runs(runs);
        let mut histograms = merge_runs(hist_runs);
        if !histograms.is_empty() && !floats.is_empty() {
            // A timestamp holds one sample: should two blocks disagree on
            // its kind, the float stays (as the head refuses a second kind).
            histograms.retain(|h| floats.binary_search_by_key(&h.t, |s| s.t).is_err());
        }
        Some(Ok(SeriesData { labels: min, floats, histograms }))
    }
}

/// A sample of either kind, for [`merge_runs`].
trait Timed: Clone {
    fn t(&self) -> i64;
}

impl Timed for Sample {
    fn t(&self) -> i64 {
        self.t
    }
}

impl Timed for HistogramSample {
    fn t(&self) -> i64 {
        self.t
    }
}

/// Merges sorted sample runs of one series. Where timestamps collide the
/// sample of the run with the highest priority wins.
fn merge_runs<S: Timed>(mut runs: Vec<(usize, Vec<S>)>) -> Vec<S> {
    runs.retain(|(_, r)| !r.is_empty());
    if runs.len() <= 1 {
        return runs.pop().map(|(_, r)| r).unwrap_or_default();
    }
    // Common case: the runs come from adjacent blocks and do not interleave.
    runs.sort_by_key(|(_, r)| r[0].t());
    if runs.windows(2).all(|w| w[0].1[w[0].1.len() - 1].t() < w[1].1[0].t()) {
        return runs.into_iter().flat_map(|(_, r)| r).collect();
    }
    let mut by_t: BTreeMap<i64, (usize, S)> = BTreeMap::new();
    for (prio, run) in runs {
        for s in run {
            match by_t.entry(s.t()) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert((prio, s));
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    if prio >= e.get().0 {
                        e.insert((prio, s));
                    }
                }
            }
        }
    }
    by_t.into_values().map(|(_, s)| s).collect()
}

/// Ulids of blocks whose data another block already holds, left over by a
/// crash between writing a compacted block and deleting its inputs: blocks
/// named in another block's `parents`, and blocks whose `sources` are a
/// subset of another block's (strictly smaller, or equal with an older
/// ulid). The database deletes them at open. Sorted.
pub fn leftover_blocks(metas: &[BlockMeta]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for b in metas {
        let bs: BTreeSet<&String> = b.compaction.sources.iter().collect();
        for a in metas {
            if a.ulid == b.ulid {
                continue;
            }
            let named_parent = a.compaction.parents.contains(&b.ulid);
            let covered = !bs.is_empty() && {
                let as_: BTreeSet<&String> = a.compaction.sources.iter().collect();
                bs.is_subset(&as_) && (as_.len() > bs.len() || a.ulid > b.ulid)
            };
            if named_parent || covered {
                out.insert(b.ulid.clone());
                break;
            }
        }
    }
    out.into_iter().collect()
}

/// Removes every `*.tmp` directory in `parent_dir` (blocks whose writing was
/// interrupted) and returns their paths.
pub fn remove_tmp_dirs(parent_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let rd = std::fs::read_dir(parent_dir).map_err(|e| Error::io(parent_dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(parent_dir, e))?;
        let path = ent.path();
        let is_dir = ent.file_type().map_err(|e| Error::io(&path, e))?.is_dir();
        if is_dir && ent.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        crate::block::writer::sync_dir(parent_dir)?;
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{new_block_id, write_block, BlockStats, META_VERSION};
    use crate::{stale_nan, Matcher};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const H: i64 = 3_600_000;

    fn meta(min: i64, max: i64) -> BlockMeta {
        let ulid = new_block_id();
        BlockMeta {
            ulid: ulid.clone(),
            min_time: min,
            max_time: max,
            stats: BlockStats::default(),
            compaction: CompactionMeta { level: 1, sources: vec![ulid], parents: vec![] },
            version: META_VERSION,
        }
    }

    fn ids(ms: &[&BlockMeta]) -> Vec<String> {
        ms.iter().map(|m| m.ulid.clone()).collect()
    }

    type Model = BTreeMap<Labels, BTreeMap<i64, u64>>;

    fn labels(i: usize) -> Labels {
        Labels::new([("__name__", "m"), ("i", &format!("{i:03}"))]).unwrap()
    }

    /// Writes a level-1 block with `samples(i)` for series `i` in `series`,
    /// and records it in `model` (later writes overwrite, as later ulids win).
    fn write_l1(
        dir: &Path,
        mint: i64,
        maxt: i64,
        series: impl Iterator<Item = usize>,
        samples: impl Fn(usize) -> Vec<Sample>,
        model: &mut Model,
    ) -> Block {
        let mut input: Vec<(Labels, Vec<Sample>)> = series.map(|i| (labels(i), samples(i))).collect();
        input.sort_by(|a, b| a.0.cmp(&b.0));
        for (l, s) in &input {
            let e = model.entry(l.clone()).or_default();
            for x in s {
                e.insert(x.t, x.v.to_bits());
            }
        }
        let m = write_block(dir, mint, maxt, CompactionMeta::level1(), input.into_iter(), &BlockWriteOptions::xor())
            .unwrap();
        Block::open(&dir.join(m.ulid)).unwrap()
    }

    fn read_all(b: &Block) -> Model {
        let mut out = Model::new();
        for s in b.all_series().unwrap() {
            let s = s.unwrap();
            let mut v = Vec::new();
            for c in &s.chunks {
                c.decode_into(&mut v).unwrap();
            }
            assert!(v.windows(2).all(|w| w[0].t < w[1].t));
            out.insert(s.labels, v.into_iter().map(|x| (x.t, x.v.to_bits())).collect());
        }
        out
    }

    #[test]
    fn exponential_ranges_triple_until_the_cap() {
        assert_eq!(exponential_ranges(2 * H, 2 * H), vec![2 * H]);
        assert_eq!(exponential_ranges(2 * H, 20 * H), vec![2 * H, 6 * H, 18 * H]);
        assert!(exponential_ranges(0, 100).is_empty());
        assert_eq!(exponential_ranges(i64::MAX / 2, i64::MAX), vec![i64::MAX / 2]);
    }

    #[test]
    fn planner_climbs_the_ladder_2h_6h_18h() {
        let ranges = exponential_ranges(2 * H, 54 * H);
        // Three 2h blocks fill [0, 6h); a fourth starts the next window.
        let b: Vec<BlockMeta> = (0..4).map(|i| meta(i * 2 * H, (i + 1) * 2 * H)).collect();
        assert_eq!(plan(&b[..2], &ranges), None, "the newest block is left out, one block remains");
        // Without the newest block, [0, 4h) ends where the newest starts.
        assert_eq!(plan(&b[..3], &ranges), Some(ids(&[&b[0], &b[1]])));
        assert_eq!(plan(&b, &ranges), Some(ids(&[&b[0], &b[1], &b[2]])));
        // Two blocks that do not fill the window, but lie before the newest one.
        let c = [meta(0, 2 * H), meta(2 * H, 4 * H), meta(6 * H, 8 * H)];
        assert_eq!(plan(&c, &ranges), Some(ids(&[&c[0], &c[1]])));
        // Three 6h blocks fill [0, 18h) once a newer block exists.
        let d: Vec<BlockMeta> =
            (0..3).map(|i| meta(i * 6 * H, (i + 1) * 6 * H)).chain([meta(18 * H, 20 * H)]).collect();
        assert_eq!(plan(&d, &ranges), Some(ids(&[&d[0], &d[1], &d[2]])));
        // A block spanning the top range is never merged further.
        let e = [meta(0, 54 * H), meta(54 * H, 56 * H)];
        assert_eq!(plan(&e, &ranges), None);
        // Blocks straddling window boundaries are left alone.
        let f = [meta(H, 3 * H), meta(5 * H, 7 * H), meta(8 * H, 10 * H)];
        assert_eq!(plan(&f, &ranges[..2]), None);
        assert_eq!(plan(&[], &ranges), None);
        assert_eq!(plan(&b, &ranges[..1]), None, "a single range never compacts");
    }

    #[test]
    fn planner_merges_overlapping_blocks_first() {
        let ranges = exponential_ranges(2 * H, 54 * H);
        let a = meta(0, 2 * H);
        let b = meta(2 * H, 4 * H);
        let c = meta(H, 3 * H); // overlaps both
        let d = meta(4 * H, 6 * H);
        let e = meta(6 * H, 8 * H);
        let got = plan(&[d.clone(), a.clone(), e.clone(), b.clone(), c.clone()], &ranges).unwrap();
        assert_eq!(got, ids(&[&a, &c, &b]));
        // The newest block is included when it overlaps.
        let f = meta(7 * H, 9 * H);
        assert_eq!(plan(&[d.clone(), e.clone(), f.clone()], &ranges), Some(ids(&[&e, &f])));
    }

    fn arb_metas() -> impl Strategy<Value = Vec<BlockMeta>> {
        prop::collection::vec((0i64..40, 1i64..10), 0..10)
            .prop_map(|v| v.into_iter().map(|(s, len)| meta(s * H, (s + len) * H)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn plan_invariants(metas in arb_metas()) {
            let ranges = exponential_ranges(2 * H, 54 * H);
            let overlapping = metas.iter().enumerate().any(|(i, a)| metas.iter().skip(i + 1)
                .any(|b| a.min_time < b.max_time && b.min_time < a.max_time));
            let Some(chosen) = plan(&metas, &ranges) else {
                prop_assert!(!overlapping, "overlapping blocks must be planned");
                return Ok(());
            };
            prop_assert!(chosen.len() >= 2);
            let set: BTreeSet<&String> = chosen.iter().collect();
            prop_assert_eq!(set.len(), chosen.len(), "no block twice");
            let picked: Vec<&BlockMeta> = metas.iter().filter(|m| set.contains(&m.ulid)).collect();
            prop_assert_eq!(picked.len(), chosen.len(), "only known blocks");
            if overlapping {
                // Every chosen block overlaps another chosen block's span chain.
                let mut p = picked.clone();
                p.sort_by_key(|m| m.min_time);
                let mut maxt = p[0].max_time;
                for m in &p[1..] {
                    prop_assert!(m.min_time < maxt, "chosen set is one overlapping run");
                    maxt = maxt.max(m.max_time);
                }
            } else {
                let newest = metas.iter().map(|m| m.min_time).max().unwrap();
                prop_assert!(picked.iter().all(|m| m.min_time < newest), "newest block is left alone");
                let mint = picked.iter().map(|m| m.min_time).min().unwrap();
                let maxt = picked.iter().map(|m| m.max_time).max().unwrap();
                let fits = ranges[1..].iter().any(|&r| mint.div_euclid(r) * r + r >= maxt);
                prop_assert!(fits, "group fits one aligned window of a larger range");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// Model-based: random (possibly overlapping) level-1 blocks, then
        /// plan → compact → delete inputs until the planner is done. Every
        /// sample survives exactly once and no overlap remains.
        #[test]
        fn plan_and_compact_until_done_preserves_every_sample(
            specs in prop::collection::vec((0i64..16, 1i64..5, prop::collection::btree_set(0usize..6, 1..4)), 1..7)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut model = Model::new();
            let mut blocks: Vec<Block> = Vec::new();
            for (start, len, set) in &specs {
                let (mint, maxt) = (start * H, (start + len) * H);
                // Values depend only on (series, t), so duplicates agree and
                // the model does not depend on which block wins.
                let samples = |i: usize| (0..len * 6).map(|k| {
                    let t = mint + k * 600_000 + i as i64;
                    Sample::new(t, (i as i64 * 1_000_000_007 + t) as f64)
                }).collect();
                blocks.push(write_l1(dir.path(), mint, maxt, set.iter().copied(), samples, &mut model));
            }
            let ranges = exponential_ranges(2 * H, 18 * H);
            let mut rounds = 0;
            while let Some(chosen) = plan(&blocks.iter().map(|b| b.meta().clone()).collect::<Vec<_>>(), &ranges) {
                rounds += 1;
                prop_assert!(rounds <= specs.len(), "planner does not converge");
                let (inputs, rest): (Vec<Block>, Vec<Block>) =
                    blocks.into_iter().partition(|b| chosen.contains(&b.meta().ulid));
                let refs: Vec<&Block> = inputs.iter().collect();
                let m = compact(dir.path(), &refs, &BlockWriteOptions::default()).unwrap();
                let metas: Vec<BlockMeta> = inputs.iter().chain(&rest).map(|b| b.meta().clone()).chain([m.clone()]).collect();
                let mut left = leftover_blocks(&metas);
                left.sort();
                let mut want = chosen.clone();
                want.sort();
                prop_assert_eq!(left, want, "inputs are leftovers until deleted");
                for b in inputs {
                    std::fs::remove_dir_all(b.dir()).unwrap();
                }
                blocks = rest;
                blocks.push(Block::open(&dir.path().join(&m.ulid)).unwrap());
            }
            let mut got = Model::new();
            for b in &blocks {
                for (l, s) in read_all(b) {
                    got.entry(l).or_default().extend(s);
                }
            }
            prop_assert_eq!(got, model);
            let mut ms: Vec<&BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
            ms.sort_by_key(|m| m.min_time);
            for w in ms.windows(2) {
                prop_assert!(w[0].max_time <= w[1].min_time, "overlap left after planning");
            }
            prop_assert!(leftover_blocks(&blocks.iter().map(|b| b.meta().clone()).collect::<Vec<_>>()).is_empty());
        }
    }

    #[test]
    fn compacting_adjacent_blocks_gives_exactly_the_union() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let step = 15_000;
        let mk = |start: i64| {
            move |i: usize| -> Vec<Sample> {
                (0..480)
                    .map(|k| Sample::new(start + k * step, if k == 7 { stale_nan() } else { (i as i64 * k) as f64 }))
                    .collect()
            }
        };
        // Series come and go between blocks.
        let a = write_l1(dir.path(), 0, 2 * H, 0..40, mk(0), &mut model);
        let b = write_l1(dir.path(), 2 * H, 4 * H, 20..60, mk(2 * H), &mut model);
        let c = write_l1(dir.path(), 4 * H, 6 * H, (0..60).step_by(3), mk(4 * H), &mut model);
        let m = compact(dir.path(), &[&c, &a, &b], &BlockWriteOptions::default()).unwrap();
        assert_eq!((m.min_time, m.max_time), (0, 6 * H));
        assert_eq!(m.compaction.level, 2);
        let mut srcs = vec![a.meta().ulid.clone(), b.meta().ulid.clone(), c.meta().ulid.clone()];
        srcs.sort();
        assert_eq!(m.compaction.sources, srcs);
        assert_eq!(m.compaction.parents, srcs);
        let merged = Block::open(&dir.path().join(&m.ulid)).unwrap();
        assert_eq!(read_all(&merged), model);
        let total: usize = model.values().map(BTreeMap::len).sum();
        assert_eq!(m.stats.num_samples, total as u64);
        assert_eq!(m.stats.num_series, 60);
        // Inputs are untouched.
        assert!(a.dir().exists() && b.dir().exists() && c.dir().exists());
        // And queries on the merged block see series from every input.
        let sel = merged.select(&[Matcher::equal("i", "057")], 5 * H, 5 * H).unwrap();
        assert_eq!(sel.len(), 1);
    }

    /// Timestamps of scrape target `g` in `[start, start + 2h)`: every 15 s
    /// plus a jitter below 250 ms that all series of the target repeat.
    fn target_timestamps(g: usize, start: i64) -> Vec<i64> {
        let mut x = (g as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ start as u64;
        (0..480)
            .map(|k| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                start + k * 15_000 + ((x >> 33) % 250) as i64
            })
            .collect()
    }

    /// Writes a sealed (format v2) block of series `range`, series `i`
    /// scraped from target `i % 3`, and records it in `model`.
    fn write_v2(dir: &Path, start: i64, range: std::ops::Range<usize>, model: &mut Model) -> Block {
        let mut input: Vec<(Labels, Vec<Sample>)> = range
            .map(|i| {
                let ts = target_timestamps(i % 3, start);
                let s = ts
                    .iter()
                    .enumerate()
                    .map(|(k, &t)| Sample::new(t, if k == 9 { stale_nan() } else { (i * 7 + k) as f64 * 0.5 }))
                    .collect();
                (labels(i), s)
            })
            .collect();
        input.sort_by(|a, b| a.0.cmp(&b.0));
        for (l, s) in &input {
            let e = model.entry(l.clone()).or_default();
            for x in s {
                e.insert(x.t, x.v.to_bits());
            }
        }
        let m =
            write_block(dir, start, start + 2 * H, CompactionMeta::level1(), input.into_iter(), &Default::default())
                .unwrap();
        Block::open(&dir.join(m.ulid)).unwrap()
    }

    #[test]
    fn compacting_blocks_with_shared_timestamp_columns_keeps_every_sample_and_shares_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let a = write_v2(dir.path(), 0, 0..12, &mut model);
        let b = write_v2(dir.path(), 2 * H, 0..12, &mut model);
        assert_eq!((a.num_timestamp_columns(), b.num_timestamp_columns()), (3, 3));
        let m = compact(dir.path(), &[&a, &b], &BlockWriteOptions::default()).unwrap();
        let merged = Block::open(&dir.path().join(&m.ulid)).unwrap();
        assert_eq!(read_all(&merged), model);
        // Each target's two 2 h columns join into one 4 h column.
        assert_eq!(merged.num_timestamp_columns(), 3);
        assert!(merged.size_bytes() < a.size_bytes() + b.size_bytes());

        // A v1 (XOR) block and a v2 block compact into a v2 block; series
        // 12.. are scraped from the targets too, so they share columns.
        let c = write_l1(
            dir.path(),
            4 * H,
            6 * H,
            20..26,
            |i| target_timestamps(i % 3, 4 * H).iter().map(|&t| Sample::new(t, i as f64)).collect(),
            &mut model,
        );
        assert_eq!(c.num_timestamp_columns(), 0);
        let m2 = compact(dir.path(), &[&merged, &c], &BlockWriteOptions::default()).unwrap();
        let all = Block::open(&dir.path().join(&m2.ulid)).unwrap();
        assert_eq!(read_all(&all), model);
        assert!(all.num_timestamp_columns() >= 3);
    }

    #[test]
    fn compacting_overlapping_blocks_dedups_with_the_later_block_winning() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        // Older block: every 10 s; newer, overlapping block (out-of-order
        // data): every 15 s with different values, shifted by an hour.
        let a = write_l1(
            dir.path(),
            0,
            2 * H,
            0..10,
            |i| (0..720).map(|k| Sample::new(k * 10_000, (i * k as usize) as f64)).collect(),
            &mut model,
        );
        let b = write_l1(
            dir.path(),
            H,
            3 * H,
            5..15,
            |i| (0..480).map(|k| Sample::new(H + k * 15_000, -((i + k as usize) as f64))).collect(),
            &mut model,
        );
        assert!(a.meta().ulid < b.meta().ulid);
        let ranges = exponential_ranges(2 * H, 54 * H);
        assert_eq!(
            plan(&[a.meta().clone(), b.meta().clone()], &ranges),
            Some(vec![a.meta().ulid.clone(), b.meta().ulid.clone()])
        );
        // Order of the arguments does not matter: ulid order decides.
        let m = compact(dir.path(), &[&b, &a], &BlockWriteOptions::xor()).unwrap();
        assert_eq!((m.min_time, m.max_time), (0, 3 * H));
        let merged = Block::open(&dir.path().join(&m.ulid)).unwrap();
        assert_eq!(read_all(&merged), model);
        // Spot check a collision: t = 1h exists in both; b's value wins.
        let got = read_all(&merged);
        assert_eq!(got[&labels(7)][&H], (-7.0f64).to_bits());
        // Compacting again with a level-2 block bumps the level.
        let c = write_l1(dir.path(), 3 * H, 4 * H, 0..3, |_| vec![Sample::new(3 * H, 1.0)], &mut model);
        let m2 = compact(dir.path(), &[&merged, &c], &BlockWriteOptions::default()).unwrap();
        assert_eq!(m2.compaction.level, 3);
        assert_eq!(m2.compaction.sources.len(), 3);
        assert_eq!(read_all(&Block::open(&dir.path().join(&m2.ulid)).unwrap()), model);
    }

    #[test]
    fn compaction_input_errors_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let a = write_l1(dir.path(), 0, H, 0..3, |_| vec![Sample::new(1, 1.0)], &mut model);
        assert!(compact(dir.path(), &[], &BlockWriteOptions::default()).is_err());
        assert!(compact(dir.path(), &[&a, &a], &BlockWriteOptions::default()).is_err());
        // Damage a chunk after opening: the merge fails and leaves no block.
        let chunk = a.dir().join("chunks/000001");
        let mut bytes = std::fs::read(&chunk).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 0xff;
        std::fs::write(&chunk, &bytes).unwrap();
        let a = Block::open(a.dir()).unwrap();
        let before = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(compact(dir.path(), &[&a], &BlockWriteOptions::default()).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
    }

    #[test]
    fn leftover_blocks_after_a_crash_between_compaction_and_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let a = write_l1(dir.path(), 0, 2 * H, 0..3, |_| vec![Sample::new(1, 1.0)], &mut model);
        let b = write_l1(dir.path(), 2 * H, 4 * H, 0..3, |_| vec![Sample::new(2 * H, 1.0)], &mut model);
        let c = write_l1(dir.path(), 4 * H, 6 * H, 0..3, |_| vec![Sample::new(4 * H, 1.0)], &mut model);
        let m = compact(dir.path(), &[&a, &b], &BlockWriteOptions::default()).unwrap();
        // "Crash": the inputs were never deleted. Reload every meta from disk.
        let metas: Vec<BlockMeta> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| BlockMeta::read(&e.unwrap().path()).unwrap()).collect();
        let mut want = vec![a.meta().ulid.clone(), b.meta().ulid.clone()];
        want.sort();
        assert_eq!(leftover_blocks(&metas), want);
        // A level-3 block makes the level-2 block (and its inputs) redundant
        // even if the level-2 block is not its direct parent.
        let m2 =
            compact(dir.path(), &[&Block::open(&dir.path().join(&m.ulid)).unwrap(), &c], &Default::default()).unwrap();
        let mut metas2 = metas.clone();
        metas2.push(m2.clone());
        let mut want2 = vec![a.meta().ulid.clone(), b.meta().ulid.clone(), c.meta().ulid.clone(), m.ulid.clone()];
        want2.sort();
        assert_eq!(leftover_blocks(&metas2), want2);
        // Without the compacted block nothing is redundant.
        let alone: Vec<BlockMeta> = metas.into_iter().filter(|x| x.ulid != m.ulid).collect();
        assert!(leftover_blocks(&alone).is_empty());
    }

    #[test]
    fn merge_runs_prefers_higher_priority_on_collisions() {
        let r = |p, v: &[(i64, f64)]| (p, v.iter().map(|&(t, x)| Sample::new(t, x)).collect::<Vec<_>>());
        let got = merge_runs(vec![r(1, &[(1, 10.0), (3, 30.0)]), r(0, &[(0, 0.0), (1, -1.0), (2, -2.0)])]);
        assert_eq!(got, vec![Sample::new(0, 0.0), Sample::new(1, 10.0), Sample::new(2, -2.0), Sample::new(3, 30.0)]);
        let got = merge_runs(vec![r(0, &[(5, 1.0)]), r(1, &[(1, 2.0)]), r(2, &[])]);
        assert_eq!(got, vec![Sample::new(1, 2.0), Sample::new(5, 1.0)]);
    }
}

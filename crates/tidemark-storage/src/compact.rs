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
use crate::block::writer::write_block_with;
use crate::block::{Block, BlockError, BlockMeta, BlockWriteOptions, TMP_SUFFIX};
use crate::chunkenc::ChunkSeries;
use crate::error::Error;
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
    compact_with(parent_dir, blocks, opts, MAX_CHUNK_FILE_SIZE)
}

pub(crate) fn compact_with(
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
    write_block_with(parent_dir, mint, maxt, compaction, merged, opts, max_chunk_file_size)
}

/// K-way merge of the inputs' series streams by labels.
struct MergeSeries<I: Iterator<Item = Result<ChunkSeries, Error>>> {
    iters: Vec<std::iter::Peekable<I>>,
    failed: bool,
}

impl<I: Iterator<Item = Result<ChunkSeries, Error>>> Iterator for MergeSeries<I> {
    type Item = Result<(Labels, Vec<Sample>), Error>;

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
        for (prio, it) in self.iters.iter_mut().enumerate() {
            if !matches!(it.peek(), Some(Ok(s)) if s.labels == min) {
                continue;
            }
            let Some(Ok(series)) = it.next() else { continue };
            let mut samples = Vec::new();
            for c in &series.chunks {
                if let Err(e) = c.decode_into(&mut samples) {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
            runs.push((prio, samples));
        }
        Some(Ok((min, merge_runs(runs))))
    }
}

/// Merges sorted sample runs of one series. Where timestamps collide the
/// sample of the run with the highest priority wins.
fn merge_runs(mut runs: Vec<(usize, Vec<Sample>)>) -> Vec<Sample> {
    runs.retain(|(_, r)| !r.is_empty());
    if runs.len() <= 1 {
        return runs.pop().map(|(_, r)| r).unwrap_or_default();
    }
    // Common case: the runs come from adjacent blocks and do not interleave.
    runs.sort_by_key(|(_, r)| r[0].t);
    if runs.windows(2).all(|w| w[0].1[w[0].1.len() - 1].t < w[1].1[0].t) {
        return runs.into_iter().flat_map(|(_, r)| r).collect();
    }
    let mut by_t: BTreeMap<i64, (usize, f64)> = BTreeMap::new();
    for (prio, run) in runs {
        for s in run {
            let e = by_t.entry(s.t).or_insert((prio, s.v));
            if prio >= e.0 {
                *e = (prio, s.v);
            }
        }
    }
    by_t.into_iter().map(|(t, (_, v))| Sample::new(t, v)).collect()
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

//! What the database lost to damaged files, for the operator: the WAL
//! damage recovered from (at open or while checkpointing), damaged chunks found by reads and
//! scrubs, and blocks moved to `quarantine/`. Kept in memory since open
//! (the log has the history); read with [`crate::Db::damage_report`].

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::block::ChunkDamage;
use crate::wal::WalDamage;

/// Most damaged chunks kept in [`DamageReport::chunks`] (the counters keep
/// counting past it).
pub const MAX_REPORTED_CHUNKS: usize = 100;

/// WAL damage found when the database was opened or while it checkpointed
/// the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalDamageEvent {
    /// When it was found, ms since the epoch.
    pub at_ms: i64,
    /// What was damaged and lost.
    pub damage: WalDamage,
}

/// A block moved to `quarantine/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedBlock {
    /// The block's id.
    pub block: String,
    /// Why: the error that made it unreadable, or the damaged chunks cut
    /// out of it (a replacement block holds the rest).
    pub reason: String,
    /// Where it is now.
    pub moved_to: PathBuf,
    /// The block's time range `[min, max)`, when its `meta.json` was readable.
    pub time_range: Option<(i64, i64)>,
    /// The id of the block that replaced it (holding everything else).
    pub replaced_by: Option<String>,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// Everything damaged files cost since open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DamageReport {
    /// WAL damage recovered from (at open, or while checkpointing).
    pub wal: Vec<WalDamageEvent>,
    /// Damaged chunks (first [`MAX_REPORTED_CHUNKS`]).
    pub chunks: Vec<ChunkDamage>,
    /// Blocks moved to `quarantine/`.
    pub quarantined_blocks: Vec<QuarantinedBlock>,
    /// Damaged regions of the WAL skipped.
    pub wal_corruptions: u64,
    /// WAL records skipped (at least one per region).
    pub wal_records_skipped: u64,
    /// WAL samples lost: in skipped records whose body still decoded, plus
    /// samples whose series record was lost.
    pub wal_samples_lost: u64,
    /// Distinct damaged chunks found.
    pub chunks_corrupt: u64,
    /// Blocks moved to `quarantine/`.
    pub blocks_quarantined: u64,
    /// Completed scrubs of all blocks.
    pub scrubs: u64,
    /// When the last scrub finished, ms since the epoch.
    pub last_scrub_ms: Option<i64>,
}

/// The database's damage bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct DamageLog {
    report: Mutex<DamageReport>,
    /// (block, chunk ref) already counted.
    seen: Mutex<HashSet<(String, u64)>>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl DamageLog {
    pub(crate) fn snapshot(&self) -> DamageReport {
        self.report.lock().clone()
    }

    pub(crate) fn wal(&self, damage: WalDamage) {
        let mut r = self.report.lock();
        r.wal_corruptions += damage.regions.len() as u64;
        r.wal_records_skipped += damage.records_skipped;
        r.wal_samples_lost += damage.total_samples_lost();
        r.wal.push(WalDamageEvent { at_ms: now_ms(), damage });
    }

    /// Counts and logs (at ERROR) the damaged chunks not seen before.
    pub(crate) fn chunks(&self, found: &[ChunkDamage]) {
        if found.is_empty() {
            return;
        }
        let mut seen = self.seen.lock();
        let mut r = self.report.lock();
        for d in found {
            if !seen.insert((d.block.clone(), d.chunk_ref)) {
                continue;
            }
            tracing::error!(
                block = %d.block, file = %d.file, offset = d.offset, series = %d.series,
                mint = d.mint, maxt = d.maxt, reason = %d.reason,
                "damaged chunk: its samples are unreadable and left out of queries"
            );
            r.chunks_corrupt += 1;
            if r.chunks.len() < MAX_REPORTED_CHUNKS {
                r.chunks.push(d.clone());
            }
        }
    }

    pub(crate) fn quarantined(&self, q: QuarantinedBlock) {
        let mut r = self.report.lock();
        r.blocks_quarantined += 1;
        r.quarantined_blocks.push(q);
    }

    pub(crate) fn scrubbed(&self) {
        let mut r = self.report.lock();
        r.scrubs += 1;
        r.last_scrub_ms = Some(now_ms());
    }

    /// Quarantined blocks whose time range overlaps `[mint, maxt]`.
    pub(crate) fn quarantined_overlapping(&self, mint: i64, maxt: i64) -> Vec<QuarantinedBlock> {
        let r = self.report.lock();
        r.quarantined_blocks
            .iter()
            .filter(|q| q.replaced_by.is_none())
            .filter(|q| q.time_range.is_some_and(|(lo, hi)| hi > mint && lo <= maxt))
            .cloned()
            .collect()
    }
}

/// One query warning per block summarising the damaged chunks a read
/// skipped in it.
pub(crate) fn chunk_warnings(skipped: &[ChunkDamage]) -> Vec<String> {
    let mut by_block: BTreeMap<&str, (u64, HashSet<&str>, i64, i64)> = BTreeMap::new();
    for d in skipped {
        let e = by_block.entry(&d.block).or_insert((0, HashSet::new(), i64::MAX, i64::MIN));
        e.0 += 1;
        e.1.insert(&d.series);
        e.2 = e.2.min(d.mint);
        e.3 = e.3.max(d.maxt);
    }
    by_block
        .into_iter()
        .map(|(block, (chunks, series, lo, hi))| {
            format!(
                "damaged data skipped: {chunks} unreadable chunk(s) of {} series in block {block} (samples between {lo} and {hi} ms); the rest of the result is complete",
                series.len()
            )
        })
        .collect()
}

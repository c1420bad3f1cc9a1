//! Retention policies as pure functions: given what is on disk, which blocks
//! to delete. The database applies them at open, after every block it
//! writes, and periodically.

/// What retention needs to know about one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block id (its directory name).
    pub id: String,
    /// Oldest sample timestamp (inclusive, ms).
    pub min_time: i64,
    /// End of the block's range (exclusive, ms).
    pub max_time: i64,
    /// Bytes of all the block's files.
    pub size_bytes: u64,
}

/// Blocks that lie wholly before `newest - retention`: every sample in them
/// is older than the retention period, measured back from `newest` (the
/// newest timestamp in the database, not the wall clock, so backfilled or
/// replayed data is not deleted the moment it lands). A block that straddles
/// the boundary is kept until all of it has expired.
pub fn beyond_time(blocks: &[BlockInfo], newest: i64, retention_ms: i64) -> Vec<String> {
    if retention_ms <= 0 || newest == i64::MIN {
        return Vec::new();
    }
    let cutoff = newest.saturating_sub(retention_ms);
    blocks.iter().filter(|b| b.max_time <= cutoff).map(|b| b.id.clone()).collect()
}

/// The oldest blocks to delete so that `other_bytes` (WAL, checkpoints,
/// leftovers — everything on disk that is not a block) plus the remaining
/// blocks fit in `limit` bytes. Newer blocks are kept first; once one block
/// does not fit, it and every older block are deleted.
pub fn beyond_size(blocks: &[BlockInfo], other_bytes: u64, limit: u64) -> Vec<String> {
    if limit == 0 {
        return Vec::new();
    }
    let mut by_age: Vec<&BlockInfo> = blocks.iter().collect();
    // Newest first; ties broken by id so the result is deterministic.
    by_age.sort_by(|a, b| b.max_time.cmp(&a.max_time).then_with(|| b.id.cmp(&a.id)));
    let mut total = other_bytes;
    let mut out = Vec::new();
    let mut over = false;
    for b in by_age {
        total = total.saturating_add(b.size_bytes);
        if over || total > limit {
            over = true;
            out.push(b.id.clone());
        }
    }
    out
}

/// Bytes of a block that do not grow with its series and samples (meta.json,
/// the index's header, table of contents and section headers, the chunk
/// file's header: about 700 bytes today) plus a checkpoint segment's header,
/// with room for the block format to grow.
pub const MAINTENANCE_FIXED_BYTES: u64 = 8 << 10;

/// Bytes the database keeps free under a size limit so that maintenance can
/// always persist the head to a block and checkpoint the WAL without
/// passing the limit, given `wal_uncompressed_bytes`, the WAL's size in
/// uncompressed (format-1) records (`Wal::uncompressed_bytes`). Never the
/// WAL's size on disk: compressed records of many series with few samples
/// take far less than a block's index of the same series.
///
/// The bound, `1.5 × wal_uncompressed_bytes + MAINTENANCE_FIXED_BYTES`.
/// Maintenance writes a block of the head up to some time `end` and a
/// checkpoint of the series still live and the samples from `end` on, so
/// each sample goes to one of them and each series' labels to both. In
/// format-1 terms a sample costs at least 10 bytes (two varint deltas and
/// an 8-byte value) and a series its labels in full plus its reference.
/// The block stores a sample in less (a Gorilla-coded sample of an
/// arbitrary double with regular timestamps takes about 9.6 bytes at most,
/// typical ones 1–2) and a series once: its label strings at most once in
/// the symbol table, plus fixed-width references, postings and chunk
/// entries. The checkpoint re-encodes a subset of the records. Together:
/// the WAL's records once, a second copy of the labels, which the half
/// bounds, and the block's fixed bytes. `tests/db.rs`
/// (`maintenance_never_writes_more_than_the_reserve`) checks it for loads
/// from one sample per series with long labels to many samples per series,
/// integer and arbitrary values.
pub fn maintenance_reserve(wal_uncompressed_bytes: u64) -> u64 {
    wal_uncompressed_bytes.saturating_add(wal_uncompressed_bytes / 2).saturating_add(MAINTENANCE_FIXED_BYTES)
}

/// Size of the WAL beyond which, under a size limit of `limit` bytes, the
/// head is persisted (up to shortly before its newest sample) and the WAL
/// checkpointed, instead of waiting for a block range to complete: one
/// eighth of the limit, so WAL and reserve stay well inside it.
pub fn wal_budget(limit: u64) -> u64 {
    limit / 8
}

/// WAL segment size used under a size limit: at most `limit / 32` (so that
/// checkpoints can free space in small steps and one segment never
/// overshoots the limit), at least 64 KiB, never above `configured`.
pub fn segment_size_for_limit(configured: u64, limit: u64) -> u64 {
    configured.min((limit / 32).max(64 << 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn block(id: &str, start_h: i64, end_h: i64, size: u64) -> BlockInfo {
        BlockInfo { id: id.into(), min_time: start_h * H, max_time: end_h * H, size_bytes: size }
    }

    #[test]
    fn time_retention_drops_only_wholly_expired_blocks() {
        let blocks = [block("a", 0, 2, 1), block("b", 2, 4, 1), block("c", 4, 6, 1)];
        // Newest data at 7h, keep 4h: cutoff 3h. "a" ends at 2h (expired),
        // "b" straddles 3h (kept).
        assert_eq!(beyond_time(&blocks, 7 * H, 4 * H), ["a"]);
        assert_eq!(beyond_time(&blocks, 7 * H, 100 * H), Vec::<String>::new());
        assert_eq!(beyond_time(&blocks, 7 * H, 0), Vec::<String>::new(), "0 disables");
        assert_eq!(beyond_time(&blocks, 8 * H, 4 * H), ["a", "b"], "boundary is inclusive of max_time");
    }

    #[test]
    fn size_retention_keeps_the_newest_blocks_that_fit() {
        let blocks = [block("a", 0, 2, 100), block("b", 2, 4, 100), block("c", 4, 6, 100)];
        assert_eq!(beyond_size(&blocks, 50, 400), Vec::<String>::new());
        assert_eq!(beyond_size(&blocks, 50, 300), ["a"]);
        assert_eq!(beyond_size(&blocks, 50, 149), ["c", "b", "a"]);
        assert_eq!(beyond_size(&blocks, 0, 0), Vec::<String>::new(), "0 disables");
    }

    #[test]
    fn room_kept_under_a_limit() {
        assert_eq!(maintenance_reserve(1000), 1500 + MAINTENANCE_FIXED_BYTES);
        assert_eq!(maintenance_reserve(u64::MAX), u64::MAX, "saturates");
        assert_eq!(wal_budget(32 << 20), 4 << 20);
        // 128 MiB configured, 32 MiB limit: 1 MiB segments.
        assert_eq!(segment_size_for_limit(128 << 20, 32 << 20), 1 << 20);
        // Tiny limits still get usable segments; never above what is configured.
        assert_eq!(segment_size_for_limit(128 << 20, 100_000), 64 << 10);
        assert_eq!(segment_size_for_limit(16 << 10, 100_000), 16 << 10);
    }

    #[test]
    fn size_retention_deletes_everything_older_than_the_first_misfit() {
        // A big middle block that does not fit also evicts the small older one,
        // so retention never leaves a gap of missing time in the middle.
        let blocks = [block("a", 0, 2, 10), block("b", 2, 4, 1000), block("c", 4, 6, 100)];
        assert_eq!(beyond_size(&blocks, 0, 500), ["b", "a"]);
    }
}

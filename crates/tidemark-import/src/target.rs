//! The Tidemark data directory an import writes into: its lock, and what
//! it already holds, which imported data must not overlap.
//!
//! Tidemark reads overlapping blocks (queries merge them, compaction merges
//! them vertically), but where two blocks hold different values at one
//! timestamp a query answers the older block's and compaction keeps the
//! newer one's; and opening a directory drops head samples older than its
//! newest block, and deletes data below the retention floor. So every
//! importer refuses data that would overlap an existing block, reach into
//! the head, or start below the floor ([`Target::check`]).

use std::fs::File;
use std::path::{Path, PathBuf};

use tidemark_storage::Db;

/// Imported data conflicts with what the data directory holds.
#[derive(Debug, thiserror::Error)]
pub enum Conflict {
    /// The data would reach into the data directory's head.
    #[error(
        "the imported data ends at {import_max_ms} ms, at or after the start of the data directory's head \
         ({head_min_ms} ms, not yet in blocks): opening the directory would then drop head samples; import only \
         data older than the head, or let the head be written into blocks first"
    )]
    OverlapsHead {
        /// Newest imported timestamp.
        import_max_ms: i64,
        /// Oldest head timestamp.
        head_min_ms: i64,
    },
    /// The data overlaps a block already in the data directory.
    #[error(
        "the imported data [{import_min_ms}, {import_max_ms}] ms overlaps block {block} [{block_min_ms}, {block_max_ms}) \
         of the data directory: Tidemark's queries and its compaction could disagree on which of two values at one \
         timestamp wins, so an import never overlaps existing blocks; import into another data directory or \
         leave out that time range"
    )]
    OverlapsBlock {
        /// Oldest imported timestamp.
        import_min_ms: i64,
        /// Newest imported timestamp.
        import_max_ms: i64,
        /// The block's ULID.
        block: String,
        /// The block's first millisecond.
        block_min_ms: i64,
        /// The block's end (exclusive).
        block_max_ms: i64,
    },
    /// The data starts below the data directory's retention floor.
    #[error(
        "the imported data starts at {import_min_ms} ms, below the data directory's retention floor \
         ({floor_ms} ms): it would be deleted when the directory is opened"
    )]
    BelowRetentionFloor {
        /// Oldest imported timestamp.
        import_min_ms: i64,
        /// The floor.
        floor_ms: i64,
    },
}

/// What a data directory holds, as far as an import cares.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// (ULID, first ms, end ms exclusive) of every block.
    blocks: Vec<(String, i64, i64)>,
    /// Oldest head timestamp, meaningful when `head_series > 0`.
    head_min: i64,
    head_series: u64,
    /// Retention floor (`i64::MIN` if none).
    floor: i64,
}

impl Target {
    /// Opens `dir` (created if missing) briefly, without background work or
    /// retention, to read its blocks, head start and retention floor.
    pub(crate) fn inspect(dir: &Path) -> Result<Target, tidemark_storage::Error> {
        let db = open_quiet(dir)?;
        let st = db.stats();
        let blocks = db.blocks().into_iter().map(|m| (m.ulid, m.min_time, m.max_time)).collect();
        let t = Target { blocks, head_min: st.head_min_time, head_series: st.head_series, floor: st.retention_floor };
        db.close()?;
        Ok(t)
    }

    /// Whether data spanning `[min_ms, max_ms]` (both inclusive) may be
    /// written: no overlap with a block, the head or below the floor.
    pub(crate) fn check(&self, min_ms: i64, max_ms: i64) -> Result<(), Conflict> {
        if let Some((block, bmin, bmax)) = self.blocks.iter().find(|(_, bmin, bmax)| min_ms < *bmax && max_ms >= *bmin)
        {
            return Err(Conflict::OverlapsBlock {
                import_min_ms: min_ms,
                import_max_ms: max_ms,
                block: block.clone(),
                block_min_ms: *bmin,
                block_max_ms: *bmax,
            });
        }
        if self.head_series > 0 && max_ms >= self.head_min {
            return Err(Conflict::OverlapsHead { import_max_ms: max_ms, head_min_ms: self.head_min });
        }
        if self.floor != i64::MIN && min_ms < self.floor {
            return Err(Conflict::BelowRetentionFloor { import_min_ms: min_ms, floor_ms: self.floor });
        }
        Ok(())
    }
}

/// Opens the data directory as an import reads it: no retention (imported
/// history may be older than any retention window, and checking it must
/// never delete it), no maintenance or scrub threads.
pub(crate) fn open_quiet(dir: &Path) -> Result<Db, tidemark_storage::Error> {
    Db::builder(dir).retention_time(None).maintenance_interval(None).scrub_interval(None).open()
}

/// The data directory's lock could not be taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// A running Tidemark holds it.
    Locked(PathBuf),
    /// The lock file could not be opened.
    Io { path: PathBuf, source: std::io::Error },
}

/// Takes the data directory's lock as `Db::open` does (creating the
/// directory if needed); held until the returned file is dropped.
pub(crate) fn take_lock(dir: &Path) -> Result<File, LockError> {
    std::fs::create_dir_all(dir).map_err(|source| LockError::Io { path: dir.to_path_buf(), source })?;
    let path = dir.join("lock");
    let f = match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
        Ok(f) => f,
        Err(source) => return Err(LockError::Io { path, source }),
    };
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

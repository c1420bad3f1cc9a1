//! Importing a Prometheus 2.x/3.x data directory: its blocks (index,
//! chunks, tombstones) and, optionally, its write-ahead log, written into a
//! Tidemark data directory as blocks.
//!
//! - Each Prometheus block becomes one Tidemark block over the same time
//!   range. Series are decoded one at a time as the block writer pulls them,
//!   so memory holds one series' samples plus the writer's index (the
//!   bound Prometheus' own compactor has). Blocks marked `deletable` are
//!   skipped (their data lives in the block that replaced them).
//! - Tombstones are applied: deleted samples are not imported.
//! - With `wal`, the WAL (newest checkpoint first, then later segments) is
//!   replayed as Prometheus does on startup: samples older than the end of
//!   the newest block are dropped (they are already in a block), and the
//!   rest is written as blocks aligned to `block_duration`. When the
//!   replayed samples would exceed `max_memory_bytes`, what is held is
//!   written out first, so several blocks may cover the same range; the
//!   out-of-order log `wbl/` is not read (counted in `skipped`).
//! - Overlap with blocks already in the target directory is allowed: our
//!   queries merge overlapping blocks and compaction merges them (the newer
//!   block, the imported one, wins where both hold a timestamp).
//! - The target directory must not be open in a running Tidemark: its
//!   lock is taken for the whole import.
//!
//! The readers are public for fuzzing and tools: [`index`], [`chunks`],
//! [`tombstones`], [`wal`], [`meta`].
//!
//! ```no_run
//! use std::path::Path;
//! use tidemark_import::prometheus::import_dir;
//! use tidemark_import::summary::ImportOptions;
//!
//! let opts = ImportOptions {
//!     data_dir: "/var/lib/tidemark".into(),
//!     block_duration: std::time::Duration::from_secs(7200),
//!     max_memory_bytes: 1 << 30,
//!     progress: true,
//!     verify: true,
//! };
//! let s = import_dir(Path::new("/var/lib/prometheus"), true, &opts).unwrap();
//! println!("{} series, {} samples", s.series, s.float_samples + s.histogram_samples);
//! ```

pub mod chunks;
mod decbuf;
mod format;
mod import;
pub mod index;
pub mod meta;
pub mod tombstones;
mod verify;
pub mod wal;

use std::path::PathBuf;

use crate::summary::{ImportOptions, ImportSummary};
pub use format::FormatError;
pub use import::import_dir;

/// Why an import of a Prometheus data directory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrometheusImportError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not in the format Prometheus writes.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// The source holds no block and (with `--wal`) no WAL.
    #[error("{0}: not a Prometheus data directory (no block with a meta.json, no wal/)")]
    NotPrometheusDir(PathBuf),
    /// The target data directory is open in a running Tidemark.
    #[error("{0}: the data directory is in use (stop the Tidemark that has it open)")]
    Locked(PathBuf),
    /// The data would overlap what the target data directory holds.
    #[error(transparent)]
    Conflict(#[from] crate::target::Conflict),
    /// Writing or reading Tidemark blocks failed.
    #[error("tidemark storage: {0}")]
    Storage(#[from] tidemark_storage::Error),
    /// A sample did not read back as imported.
    #[error("verification failed: {0}")]
    Verify(String),
}

impl PrometheusImportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PrometheusImportError::Io { path: path.into(), source }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, source: FormatError) -> Self {
        PrometheusImportError::Format { path: path.into(), source }
    }
}

impl From<chunks::ChunkReadError> for PrometheusImportError {
    fn from(e: chunks::ChunkReadError) -> Self {
        match e {
            chunks::ChunkReadError::Io(p, e) => PrometheusImportError::io(p, e),
            chunks::ChunkReadError::Format(p, e) => PrometheusImportError::format(p, e),
        }
    }
}

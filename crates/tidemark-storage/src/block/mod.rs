//! Immutable on-disk blocks: the head's data cut into time partitions.
//!
//! A block is a directory named by its ULID holding
//! - `chunks/000001`, `chunks/000002`, …: chunk files (see [`chunks`]),
//! - `index`: symbols, series with chunk references, postings and (format
//!   version 2) the timestamp columns shared by sealed chunks (see [`index`]),
//! - `meta.json`: time range, statistics and compaction lineage ([`BlockMeta`]).
//!
//! Blocks follow the writer → serializer → reader pattern:
//! [`write_block`] streams sorted series into a `<ulid>.tmp` directory, fsyncs
//! it and renames it into place, so a directory without the `.tmp` suffix is
//! always complete; [`Block::open`] maps the files, validates magic numbers,
//! versions and checksums, and answers `select`s zero-copy from the maps.
//! Series scraped together repeat the same jittered timestamps; the writer
//! stores such a column once and writes the sealed chunks without it, and
//! the reader decodes each column once per block and hands it to the chunks
//! ([`crate::chunkenc::Chunk::timestamps`]). Version 1 blocks still open.
//! Byte layouts are specified in `docs/format/{index,chunks,meta}.md`.
//!
//! ```
//! use tidemark_storage::block::{write_block, Block, BlockWriteOptions, CompactionMeta};
//! use tidemark_storage::{Labels, Matcher, Sample};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let series = vec![
//!     (Labels::new([("__name__", "up"), ("job", "api")]).unwrap(), vec![Sample::new(1_000, 1.0)]),
//!     (Labels::new([("__name__", "up"), ("job", "web")]).unwrap(), vec![Sample::new(2_000, 0.0)]),
//! ];
//! let meta = write_block(dir.path(), 0, 7_200_000, CompactionMeta::level1(), series.into_iter(),
//!     &BlockWriteOptions::default()).unwrap();
//! let block = Block::open(&dir.path().join(&meta.ulid)).unwrap();
//! let found = block.select(&[Matcher::equal("job", "web")], 0, 10_000).unwrap();
//! assert_eq!(found.len(), 1);
//! let mut samples = Vec::new();
//! found[0].chunks[0].decode_into(&mut samples).unwrap();
//! assert_eq!(samples, vec![Sample::new(2_000, 0.0)]);
//! ```

pub mod chunks;
mod enc;
pub mod group;
pub mod index;
pub mod meta;
pub mod reader;
pub mod scrub;
pub mod writer;

pub use meta::{
    block_id_time, is_block_id, new_block_id, BlockMeta, BlockStats, CompactionMeta, META_FILENAME, META_VERSION,
};
pub use reader::Block;
pub use scrub::ChunkDamage;
pub use writer::{write_block, write_block_series, BlockWriteOptions, SeriesData};

/// Name of the index file inside a block directory.
pub const INDEX_FILENAME: &str = "index";
/// Name of the directory holding the chunk files inside a block directory.
pub const CHUNKS_DIRNAME: &str = "chunks";
/// Suffix of a block directory that is still being written. Such a directory
/// is never opened as a block; crash recovery deletes it.
pub const TMP_SUFFIX: &str = ".tmp";

/// A block could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The block's files are damaged.
    #[error("corrupt block {block}: {reason}")]
    Corrupt {
        /// Block directory name.
        block: String,
        /// What was wrong.
        reason: String,
    },
    /// Series given to the writer were not sorted by labels (or repeated).
    #[error("series not in strictly increasing label order: {prev} then {next}")]
    SeriesOutOfOrder {
        /// The previous series' labels.
        prev: String,
        /// The offending series' labels.
        next: String,
    },
    /// A series given to the writer had no labels.
    #[error("series without labels")]
    EmptyLabels,
    /// Timestamps of a series given to the writer were not strictly increasing.
    #[error("series {series}: timestamp {t} is not after the previous timestamp {prev_t}")]
    SampleOutOfOrder {
        /// The series' labels.
        series: String,
        /// The offending timestamp.
        t: i64,
        /// The timestamp before it.
        prev_t: i64,
    },
    /// A sample given to the writer lies outside the block's `[mint, maxt)`.
    #[error("series {series}: timestamp {t} outside the block range [{mint}, {maxt})")]
    SampleOutOfRange {
        /// The series' labels.
        series: String,
        /// The offending timestamp.
        t: i64,
        /// The block's first millisecond.
        mint: i64,
        /// The block's end (exclusive).
        maxt: i64,
    },
    /// The block's time range is empty (`mint >= maxt`).
    #[error("invalid block time range [{mint}, {maxt})")]
    InvalidRange {
        /// The requested first millisecond.
        mint: i64,
        /// The requested end (exclusive).
        maxt: i64,
    },
    /// The block would exceed a limit of the format (e.g. more than 2^32 series).
    #[error("block exceeds a format limit: {0}")]
    Limit(String),
    /// Blocks to compact were inconsistent (e.g. none given, or the same block twice).
    #[error("invalid compaction input: {0}")]
    InvalidCompaction(String),
}

#[cfg(test)]
mod tests;

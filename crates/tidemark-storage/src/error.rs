//! The crate's error types: one enum per operation family, and [`Error`]
//! that wraps them all.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::block::BlockError;
pub use crate::labels::LabelError;
pub use crate::wal::WalError;

/// Shorthand for results with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one sample (or series) was not appended. Callers can match on these
/// to count rejected samples by reason, as Prometheus does.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The sample is older than the newest sample of its series and the
    /// out-of-order window is disabled (Prometheus: "out of order sample").
    #[error("out of order sample: timestamp {t} is before the series' last timestamp {last_t}")]
    OutOfOrder {
        /// The rejected timestamp.
        t: i64,
        /// The newest timestamp already in the series.
        last_t: i64,
    },
    /// The sample is older than the oldest time the head accepts
    /// (Prometheus: "out of bounds"; with an out-of-order window: "too old sample").
    #[error("too old sample: timestamp {t} is before the minimum valid time {min_valid_t}")]
    TooOld {
        /// The rejected timestamp.
        t: i64,
        /// The oldest timestamp that would have been accepted.
        min_valid_t: i64,
    },
    /// A different value already exists at this timestamp
    /// (Prometheus: "duplicate sample for timestamp").
    #[error("duplicate sample for timestamp {t} with a different value")]
    DuplicateTimestamp {
        /// The timestamp that already holds another value.
        t: i64,
    },
    /// A cached series reference is not (or no longer) known to the head.
    #[error("unknown series reference {0}")]
    UnknownSeriesRef(u64),
    /// The label set is invalid.
    #[error("invalid labels: {0}")]
    InvalidLabels(#[from] LabelError),
    /// A native histogram is not valid (inconsistent spans and buckets,
    /// negative counts, unknown schema…); the text is Prometheus' message.
    #[error("invalid histogram: {0}")]
    InvalidHistogram(String),
}

/// A chunk's bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The bytes are not a valid chunk of the declared encoding.
    #[error("corrupt chunk: {0}")]
    Corrupt(&'static str),
    /// The chunk declares an encoding this version does not know.
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
}

/// Every error the storage engine returns.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A file's contents are not what its format requires.
    #[error("corrupt data in {path}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An append was rejected.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A label set was rejected.
    #[error(transparent)]
    Labels(#[from] LabelError),
    /// A chunk could not be decoded.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A block could not be written or read.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Another process holds the data directory's lock.
    #[error("data directory {0} is locked by another process")]
    Locked(PathBuf),
    /// A write failed in a way that may have lost data (e.g. fsync failed);
    /// the database refuses further writes until reopened.
    #[error("database refuses writes after an earlier failure: {0}")]
    Poisoned(String),
    /// Accepting the commit would take the data directory past its size
    /// limit, counting the room kept free for persisting the head: writes
    /// are refused until maintenance (already woken) has made room.
    /// Retrying later succeeds.
    #[error("storage full: {used} bytes (data directory, this commit and room reserved for maintenance) would exceed the size limit of {limit} bytes")]
    StorageFull {
        /// Bytes the directory would need: what it holds, this commit's WAL
        /// bytes and the room reserved for maintenance.
        used: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The data directory was written by a newer version of the format
    /// (`format_version` in `tidemark.json`) than this code knows; nothing
    /// in it was read or changed. Open it with a newer version.
    #[error("data directory format version {found} in {path} is newer than this version supports ({supported}); nothing was read or changed: open it with a newer version")]
    UnsupportedFormat {
        /// The `tidemark.json` file.
        path: PathBuf,
        /// The version it records.
        found: u32,
        /// The newest version this code reads.
        supported: u32,
    },
    /// The database was closed.
    #[error("database is closed")]
    Closed,
    /// An option or argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { path: path.into(), source: Arc::new(source) }
    }
}

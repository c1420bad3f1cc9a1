//! Tidemark's storage engine: an embeddable, crash-safe time-series store.
//!
//! Data model: a series is a sorted label set ([`Labels`], including
//! `__name__`); a sample is a millisecond timestamp and an `f64`
//! ([`Sample`]). Samples are appended to an in-memory head (Gorilla chunks,
//! inverted label index), logged to a write-ahead log, cut into immutable
//! memory-mapped blocks, compacted and expired by retention.
#![deny(missing_docs)]

pub mod chunkenc;
mod error;
pub mod exemplar;
pub mod floor;
pub mod histogram;
mod label_sort;
mod labels;
mod matcher;
pub mod postings;
pub mod prefetch;
mod querier;
pub mod retention;
mod sample;
mod varint;
pub mod vfs;

pub mod block;
pub mod compact;
pub mod damage;
mod db;
pub mod head;
pub mod wal;

pub use damage::DamageReport;
pub use db::{Appender, Db, DbBuilder, DbStats, Options, SCRUB_FIRST_DELAY};
pub use error::{AppendError, BlockError, ChunkError, Error, Result, WalError};
pub use labels::{Label, LabelError, Labels, LabelsIter, NameValidation, METRIC_NAME};
pub use matcher::{MatchOp, Matcher};
pub use querier::{Querier, Series, SeriesIterator, WindowFn, WindowPoints};
pub use sample::{
    collect_samples, is_stale_nan, stale_nan, MixedIterator, Sample, SampleIterator, ValueKind, VecIterator,
    STALE_NAN_BITS,
};
pub use wal::SyncPolicy;

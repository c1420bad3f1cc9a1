//! Migration and backfill: data from other systems written into a Tidemark
//! data directory as blocks.
//!
//! - [`openmetrics`]: an OpenMetrics text file with timestamps, the input of
//!   `promtool tsdb create-blocks-from openmetrics`;
//! - [`prometheus`]: a Prometheus 2.x/3.x data directory (its blocks and,
//!   optionally, its WAL).
//!
//! Both report what they did as an [`summary::ImportSummary`] and show
//! progress through [`progress`].
#![deny(missing_docs)]

pub mod openmetrics;
pub mod progress;
pub mod prometheus;
pub mod summary;
pub mod target;

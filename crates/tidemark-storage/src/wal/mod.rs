//! Write-ahead log. (Being written: see the WAL work item.)

use crate::Labels;

/// A write-ahead log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A record failed its checksum or framing.
    #[error("corrupt WAL record in segment {segment} at offset {offset}: {reason}")]
    Corrupt {
        /// Segment number.
        segment: u64,
        /// Byte offset of the bad record in the segment.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}

/// A new series and the reference later sample records use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSeries {
    /// The head's reference for the series.
    pub series_ref: u64,
    /// The series' labels.
    pub labels: Labels,
}

/// One sample of a series known by reference.
#[derive(Debug, Clone, Copy)]
pub struct RefSample {
    /// The series reference (from an earlier [`RefSeries`]).
    pub series_ref: u64,
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value, stored bit-exactly.
    pub v: f64,
}

impl PartialEq for RefSample {
    fn eq(&self, o: &RefSample) -> bool {
        self.series_ref == o.series_ref && self.t == o.t && self.v.to_bits() == o.v.to_bits()
    }
}

/// One logical WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Series created in a commit; always logged before samples that use them.
    Series(Vec<RefSeries>),
    /// Samples appended in a commit.
    Samples(Vec<RefSample>),
}

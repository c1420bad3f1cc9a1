//! Write-ahead log. (Being written: see the WAL work item.)

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

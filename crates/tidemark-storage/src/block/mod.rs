//! Immutable on-disk blocks. (Being written: see the block work item.)

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
}

//! Errors a query can fail with.

use std::fmt;

use crate::annotations::Position;

/// A query that does not parse, with where and (when we know one) how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong, in the parser's words.
    pub message: String,
    /// Where the problem was detected, if known.
    pub position: Option<Position>,
    /// A valid form of the query, when a common mistake is recognised.
    pub hint: Option<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.position {
            write!(f, "{p}: ")?;
        }
        write!(f, "parse error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (did you mean: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The query text is not valid PromQL.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The query parses but cannot be evaluated as written (disabled
    /// experimental function, wrong argument, bad parameter).
    #[error("{0}")]
    InvalidQuery(String),
    /// Evaluation found data it cannot combine, e.g. two series with the same
    /// labels in one vector or many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples in memory than allowed.
    #[error("query processing would load too many samples into memory in query execution (limit {limit})")]
    TooManySamples {
        /// The configured limit.
        limit: usize,
    },
    /// The query ran longer than its timeout.
    #[error("query timed out in query execution")]
    Timeout,
    /// The query was cancelled through its [`crate::CancellationToken`].
    #[error("query was canceled in query execution")]
    Cancelled,
    /// The storage failed to return series.
    #[error("storage error: {0}")]
    Storage(String),
    /// The query text or tree exceeds one of the [`crate::QueryLimits`].
    #[error("{0}")]
    Limit(#[from] crate::limits::LimitError),
    /// The engine itself failed (a bug: a panic while evaluating, or no
    /// thread could be started); the process carries on.
    #[error("internal error: {0}")]
    Internal(String),
}

//! Why a rule's evaluation, or building a group, failed.

/// A rule error: the text is what the API shows as `lastError` and is
/// Prometheus' where Prometheus has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The expression failed to evaluate (the engine's message).
    #[error("{0}")]
    Query(String),
    /// The expression does not parse (when a group is built).
    #[error("group {group:?}, rule {index}, {name:?}: could not parse expression: {message}")]
    Parse {
        /// Group name.
        group: String,
        /// 1-based rule index.
        index: usize,
        /// Rule name.
        name: String,
        /// The parser's message.
        message: String,
    },
    /// Two result series of a recording rule have the same labels.
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateRecordedLabelSet,
    /// Two alerts of an alerting rule have the same labels.
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateAlertLabelSet,
    /// The group's `limit` was exceeded.
    #[error("exceeded limit of {limit} with {count} {what}")]
    Limit {
        /// The limit.
        limit: usize,
        /// How many there were.
        count: usize,
        /// `series` or `alerts`.
        what: &'static str,
    },
    /// A label set could not be built.
    #[error("invalid labels: {0}")]
    Labels(String),
    /// Two groups of one file have the same name.
    #[error("{file}: groupname: \"{name}\" is repeated in the same file")]
    DuplicateGroup {
        /// The file.
        file: String,
        /// The group name.
        name: String,
    },
    /// Appending the results to storage failed.
    #[error("{0}")]
    Append(String),
}

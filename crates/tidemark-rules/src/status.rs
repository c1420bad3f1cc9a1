//! A rule's health as the API shows it: last error, last evaluation and how
//! long it took.

use std::time::Duration;

/// Whether a rule's last evaluation succeeded (Prometheus' `RuleHealth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleHealth {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// The last evaluation succeeded.
    Good,
    /// The last evaluation failed (see the last error).
    Bad,
}

impl RuleHealth {
    /// The API's spelling: `unknown`, `ok` or `err`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Good => "ok",
            RuleHealth::Bad => "err",
        }
    }
}

/// The outcome of a rule's last evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleStatus {
    /// Health of the last evaluation.
    pub health: RuleHealth,
    /// Error of the last evaluation, if it failed.
    pub last_error: Option<String>,
    /// Wall-clock start of the last evaluation (ms since the epoch; 0 = never).
    pub last_evaluation_ms: i64,
    /// How long the last evaluation took.
    pub evaluation_time: Duration,
}

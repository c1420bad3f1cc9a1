//! PLACEHOLDER replaced by the notifier helper's module at merge time.
use std::collections::BTreeMap;

/// An alert as sent to Alertmanager.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// startsAt.
    pub starts_at_ms: i64,
    /// endsAt.
    pub ends_at_ms: Option<i64>,
    /// generatorURL.
    pub generator_url: String,
}

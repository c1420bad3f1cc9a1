//! PLACEHOLDER replaced by the template helper's module at merge time:
//! expands nothing. Only the signatures the core calls are here.
use std::collections::BTreeMap;

/// What `.` is in an alert template.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The external labels.
    pub external_labels: BTreeMap<String, String>,
    /// The external URL.
    pub external_url: String,
    /// The alert's value.
    pub value: f64,
}

/// One sample of a template query's result.
#[derive(Debug, Clone)]
pub struct QuerySample {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Runs PromQL for the `query` template function.
pub trait QueryRunner: Send + Sync {
    /// Evaluates `expr` at `t_ms`.
    fn query(&self, expr: &str, t_ms: i64) -> Result<Vec<QuerySample>, String>;
}

/// A template error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// Expands an alert template.
pub fn expand_alert_template(
    _alert_name: &str,
    text: &str,
    _data: &TemplateData,
    _t_ms: i64,
    _query: Option<&dyn QueryRunner>,
) -> Result<String, TemplateError> {
    Ok(text.to_string())
}

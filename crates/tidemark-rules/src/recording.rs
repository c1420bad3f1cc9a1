//! Recording rules: the expression's result stored under a new metric name.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tidemark_storage::Labels;

use crate::env::{labels_to_map, RuleEnv, RuleSample};
use crate::error::RuleError;
use crate::status::RuleStatus;

/// A recording rule ready to evaluate.
#[derive(Debug)]
pub struct RecordingRule {
    pub(crate) name: String,
    pub(crate) expr: String,
    /// The expression as Prometheus prints it, for the API.
    pub(crate) query: String,
    /// Rule labels with the group's labels merged in (the rule's win).
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) status: Mutex<RuleStatus>,
}

impl RecordingRule {
    pub(crate) fn new(name: String, expr: String, query: String, labels: BTreeMap<String, String>) -> RecordingRule {
        RecordingRule { name, expr, query, labels, status: Mutex::default() }
    }

    /// The recorded metric name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The expression as Prometheus prints it (`expr.String()`), as the
    /// rules API shows it.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Evaluates the rule at `ts_ms - offset_ms`: the result (floats and
    /// native histograms) with `__name__` set to the rule's name and its
    /// labels applied, as Prometheus' `RecordingRule.Eval`.
    pub(crate) fn eval(&self, env: &RuleEnv, t_ms: i64, limit: usize) -> Result<Vec<RuleSample>, RuleError> {
        let result = env.query_vector(&self.expr, t_ms).map_err(RuleError::Query)?;
        let mut out = Vec::with_capacity(result.len());
        for s in result {
            let mut m = labels_to_map(&s.labels);
            m.insert("__name__".to_string(), self.name.clone());
            for (k, v) in &self.labels {
                m.insert(k.clone(), v.clone());
            }
            let l = Labels::new(&m).map_err(|e| RuleError::Labels(e.to_string()))?;
            out.push(match s.h {
                Some(h) => RuleSample::Histogram(l, h),
                None => RuleSample::Float(l, s.v),
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(out.len());
        if !out.iter().all(|s| seen.insert(s.labels().clone())) {
            return Err(RuleError::DuplicateRecordedLabelSet);
        }
        if limit > 0 && out.len() > limit {
            return Err(RuleError::Limit { limit, count: out.len(), what: "series" });
        }
        Ok(out)
    }
}

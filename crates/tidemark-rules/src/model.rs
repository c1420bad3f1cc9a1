//! Rule groups and rules as written: what a rule file holds, or what a
//! service builds in code. Everything else in the crate starts from these.

use std::collections::BTreeMap;
use std::time::Duration;

/// A named group of rules, evaluated in order on one schedule.
///
/// ```
/// use std::time::Duration;
/// use tidemark_rules::{GroupSpec, RuleSpec};
///
/// let group = GroupSpec::new("api")
///     .interval(Duration::from_secs(30))
///     .rule(RuleSpec::recording("job:http_requests:rate5m", "sum by (job) (rate(http_requests_total[5m]))"))
///     .rule(
///         RuleSpec::alerting("HighErrorRate", "job:http_requests:rate5m > 100")
///             .for_duration(Duration::from_secs(300))
///             .label("severity", "critical")
///             .annotation("summary", "{{ $labels.job }} serves {{ $value }} requests/s"),
///     );
/// assert_eq!(group.rules.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    /// Group name; unique within a file.
    pub name: String,
    /// File the group came from (empty for groups built in code).
    pub file: String,
    /// Evaluation interval; `None` takes the global evaluation interval.
    pub interval: Option<Duration>,
    /// Most series an alerting rule may produce or a recording rule may
    /// record in one evaluation; 0 means no limit.
    pub limit: usize,
    /// How far in the past every rule of the group is evaluated; `None`
    /// takes the global rule query offset.
    pub query_offset: Option<Duration>,
    /// Labels added to every rule's result (a rule's own labels win).
    pub labels: BTreeMap<String, String>,
    /// The rules, in evaluation order.
    pub rules: Vec<RuleSpec>,
}

impl GroupSpec {
    /// An empty group with default settings.
    pub fn new(name: impl Into<String>) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            file: String::new(),
            interval: None,
            limit: 0,
            query_offset: None,
            labels: BTreeMap::new(),
            rules: Vec::new(),
        }
    }

    /// Sets the evaluation interval.
    pub fn interval(mut self, d: Duration) -> GroupSpec {
        self.interval = Some(d);
        self
    }

    /// Sets the per-rule series limit.
    pub fn limit(mut self, n: usize) -> GroupSpec {
        self.limit = n;
        self
    }

    /// Sets the query offset.
    pub fn query_offset(mut self, d: Duration) -> GroupSpec {
        self.query_offset = Some(d);
        self
    }

    /// Adds a group label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> GroupSpec {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Appends a rule.
    pub fn rule(mut self, rule: RuleSpec) -> GroupSpec {
        self.rules.push(rule);
        self
    }
}

/// Whether a rule records a series or raises alerts, with what only that
/// kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// `record: NAME`: the expression's result is stored under `NAME`.
    Recording {
        /// The metric name recorded.
        record: String,
    },
    /// `alert: NAME`: every series of the result is an alert.
    Alerting {
        /// The alert name (the `alertname` label).
        alert: String,
        /// How long a result must persist before the alert fires.
        for_duration: Duration,
        /// How long a firing alert keeps firing after its result is gone.
        keep_firing_for: Duration,
        /// Templated annotations.
        annotations: BTreeMap<String, String>,
    },
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// Recording or alerting, with the kind's own fields.
    pub kind: RuleKind,
    /// The PromQL expression.
    pub expr: String,
    /// Labels added to the result (templated for alerting rules).
    pub labels: BTreeMap<String, String>,
    /// 1-based line of the rule in its file (0 when built in code).
    pub line: usize,
}

impl RuleSpec {
    /// A recording rule.
    pub fn recording(record: impl Into<String>, expr: impl Into<String>) -> RuleSpec {
        RuleSpec {
            kind: RuleKind::Recording { record: record.into() },
            expr: expr.into(),
            labels: BTreeMap::new(),
            line: 0,
        }
    }

    /// An alerting rule that fires at once (no `for`).
    pub fn alerting(alert: impl Into<String>, expr: impl Into<String>) -> RuleSpec {
        RuleSpec {
            kind: RuleKind::Alerting {
                alert: alert.into(),
                for_duration: Duration::ZERO,
                keep_firing_for: Duration::ZERO,
                annotations: BTreeMap::new(),
            },
            expr: expr.into(),
            labels: BTreeMap::new(),
            line: 0,
        }
    }

    /// The recorded metric or the alert name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Recording { record } => record,
            RuleKind::Alerting { alert, .. } => alert,
        }
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> RuleSpec {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Sets `for` (alerting rules only; ignored otherwise).
    pub fn for_duration(mut self, d: Duration) -> RuleSpec {
        if let RuleKind::Alerting { for_duration, .. } = &mut self.kind {
            *for_duration = d;
        }
        self
    }

    /// Sets `keep_firing_for` (alerting rules only; ignored otherwise).
    pub fn keep_firing_for(mut self, d: Duration) -> RuleSpec {
        if let RuleKind::Alerting { keep_firing_for, .. } = &mut self.kind {
            *keep_firing_for = d;
        }
        self
    }

    /// Adds an annotation (alerting rules only; ignored otherwise).
    pub fn annotation(mut self, name: impl Into<String>, value: impl Into<String>) -> RuleSpec {
        if let RuleKind::Alerting { annotations, .. } = &mut self.kind {
            annotations.insert(name.into(), value.into());
        }
        self
    }
}

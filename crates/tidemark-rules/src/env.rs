//! What every rule group shares: the database it reads and writes, the
//! PromQL engine, where alerts go, and the global rule settings.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tidemark_promql::{CancellationToken, Engine, QueryOptions, Value, VectorSample};
use tidemark_storage::histogram::FloatHistogram;
use tidemark_storage::{Db, Labels};

use crate::notifier::Alert;
use crate::template::{QueryRunner, QuerySample};

/// Receives the alerts a group decides to send (Prometheus' `NotifyFunc`):
/// the notifier in a server, a collector in tests.
pub trait AlertSink: Send + Sync {
    /// Takes one evaluation's alerts to send; must not block on the network.
    fn send(&self, alerts: Vec<Alert>);
}

/// Settings and handles shared by every group (Prometheus' `ManagerOptions`).
///
/// ```
/// use std::sync::Arc;
/// use tidemark_rules::RuleEnv;
/// let db = Arc::new(tidemark_storage::Db::in_memory().unwrap());
/// let engine = Arc::new(tidemark_promql::Engine::default());
/// let env = RuleEnv::new(db, engine);
/// assert_eq!(env.evaluation_interval.as_secs(), 60);
/// ```
#[derive(Clone)]
pub struct RuleEnv {
    /// Where rules read from and where recorded samples and `ALERTS` go.
    pub db: Arc<Db>,
    /// The engine that evaluates rule expressions.
    pub engine: Arc<Engine>,
    /// Labels added to every alert sent and visible to templates as
    /// `$externalLabels`.
    pub external_labels: BTreeMap<String, String>,
    /// The URL under which this server is reached (`$externalURL`,
    /// `generatorURL`).
    pub external_url: String,
    /// Interval of groups that do not set one (default 1 minute).
    pub evaluation_interval: Duration,
    /// Query offset of groups that do not set one (default 0).
    pub query_offset: Duration,
    /// Longest outage after which `for` state is still restored (default 1h).
    pub outage_tolerance: Duration,
    /// Least time an alert waits to fire after a restart (default 10m).
    pub for_grace_period: Duration,
    /// Least time between two sends of the same firing alert (default 1m).
    pub resend_delay: Duration,
    /// Where alerts go; `None` drops them (they still show in the API).
    pub sink: Option<Arc<dyn AlertSink>>,
    /// Parent of every rule query's cancellation token: cancelled when the
    /// rules stop for good.
    pub cancel: CancellationToken,
}

impl fmt::Debug for RuleEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleEnv")
            .field("external_labels", &self.external_labels)
            .field("external_url", &self.external_url)
            .field("evaluation_interval", &self.evaluation_interval)
            .field("query_offset", &self.query_offset)
            .field("outage_tolerance", &self.outage_tolerance)
            .field("for_grace_period", &self.for_grace_period)
            .field("resend_delay", &self.resend_delay)
            .field("sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl RuleEnv {
    /// Prometheus' defaults over `db` and `engine`, sending nowhere.
    pub fn new(db: Arc<Db>, engine: Arc<Engine>) -> RuleEnv {
        RuleEnv {
            db,
            engine,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            evaluation_interval: Duration::from_secs(60),
            query_offset: Duration::ZERO,
            outage_tolerance: Duration::from_secs(3600),
            for_grace_period: Duration::from_secs(600),
            resend_delay: Duration::from_secs(60),
            sink: None,
            cancel: CancellationToken::new(),
        }
    }

    /// Evaluates a rule expression at `t_ms` as Prometheus' `EngineQueryFunc`
    /// does: a vector as is (floats and native histograms), a scalar as one
    /// float sample without labels, anything else an error.
    pub fn query_vector(&self, expr: &str, t_ms: i64) -> Result<Vec<VectorSample>, String> {
        let opts = QueryOptions { cancellation: Some(self.cancel.child()), ..QueryOptions::default() };
        let result = self.engine.instant_query_with(&*self.db, expr, t_ms, &opts).map_err(|e| e.to_string())?;
        match result.value {
            Value::Vector(v) => Ok(v),
            Value::Scalar { t, v } => Ok(vec![VectorSample { labels: Labels::empty(), t, v, h: None }]),
            _ => Err("rule result is not a vector or scalar".to_string()),
        }
    }

    /// [`RuleEnv::query_vector`] as floats, for alerts and templates: a
    /// native histogram's value is 0, as Prometheus' `Sample.F` of a
    /// histogram sample.
    pub fn query(&self, expr: &str, t_ms: i64) -> Result<Vec<(Labels, f64)>, String> {
        Ok(self.query_vector(expr, t_ms)?.into_iter().map(|s| (s.labels, float_value(s.v, &s.h))).collect())
    }
}

/// A sample a rule writes: a float (recorded values, `ALERTS`,
/// `ALERTS_FOR_STATE`) or a recorded native histogram.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSample {
    /// A float sample of the series.
    Float(Labels, f64),
    /// A native-histogram sample of the series (stored with float counts,
    /// as Prometheus' rule manager appends them).
    Histogram(Labels, Box<FloatHistogram>),
}

impl RuleSample {
    /// The series the sample belongs to.
    pub fn labels(&self) -> &Labels {
        match self {
            RuleSample::Float(l, _) | RuleSample::Histogram(l, _) => l,
        }
    }
}

/// The float value Prometheus gives a sample: its float, or 0 for a native
/// histogram.
pub(crate) fn float_value(v: f64, h: &Option<Box<FloatHistogram>>) -> f64 {
    if h.is_some() {
        0.0
    } else {
        v
    }
}

impl QueryRunner for RuleEnv {
    fn query(&self, expr: &str, t_ms: i64) -> Result<Vec<QuerySample>, String> {
        Ok(RuleEnv::query(self, expr, t_ms)?
            .into_iter()
            .map(|(l, value)| QuerySample { labels: labels_to_map(&l), value })
            .collect())
    }
}

/// A label set as a name → value map.
pub(crate) fn labels_to_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter().map(|p| (p.name.to_string(), p.value.to_string())).collect()
}

impl AlertSink for crate::notifier::Notifier {
    fn send(&self, alerts: Vec<Alert>) {
        crate::notifier::Notifier::send(self, alerts);
    }
}

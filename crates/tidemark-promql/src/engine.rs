//! The query engine: options, limits, and the instant/range query entry points.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::annotations::Annotations;
use crate::error::Error;
use crate::storage::SeriesSource;
use crate::value::Value;

/// Engine-wide settings. The defaults are Prometheus 3.x's.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back a selector looks for the latest sample (default 5 minutes).
    pub lookback_delta: Duration,
    /// Most samples a query may hold in memory at once (default 50 million).
    pub max_samples: usize,
    /// Longest a query may run (default 2 minutes); `None` means no limit.
    pub timeout: Option<Duration>,
    /// Allow functions and aggregations Prometheus keeps behind
    /// `--enable-feature=promql-experimental-functions` (`limitk`,
    /// `limit_ratio`, `sort_by_label`, `mad_over_time`,
    /// `double_exponential_smoothing`, `ts_of_*_over_time`, …). Default off.
    pub enable_experimental_functions: bool,
    /// Remove `__name__` only at the end of evaluation instead of at each
    /// function or operator (`--enable-feature=promql-delayed-name-removal`).
    /// Default off, as in Prometheus; the upstream test suite turns it on.
    pub delayed_name_removal: bool,
    /// Step of a subquery written without one (`x[10m:]`); in a server this is
    /// the global evaluation interval. Default 1 minute.
    pub default_subquery_step: Duration,
    /// Worker threads a large query may use (default: available cores).
    pub parallelism: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Some(Duration::from_secs(120)),
            enable_experimental_functions: false,
            delayed_name_removal: false,
            default_subquery_step: Duration::from_secs(60),
            parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// Per-query settings that override the engine's.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Lookback delta for this query only.
    pub lookback_delta: Option<Duration>,
    /// Timeout for this query only.
    pub timeout: Option<Duration>,
    /// Cancels the query when triggered from another thread.
    pub cancellation: Option<CancellationToken>,
}

/// A handle that cancels a running query.
///
/// ```
/// let token = tidemark_promql::CancellationToken::new();
/// let for_other_thread = token.clone();
/// for_other_thread.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancellationToken(Arc<AtomicBool>);

impl CancellationToken {
    /// A token that has not been triggered.
    pub fn new() -> CancellationToken {
        CancellationToken::default()
    }

    /// Asks every query holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters describing the work a query did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Samples read from storage.
    pub samples_read: u64,
    /// The most samples held in memory at one time.
    pub peak_samples: usize,
}

/// A query's answer: the value, annotations, and statistics.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The result.
    pub value: Value,
    /// Warnings and infos, as Prometheus returns them next to the data.
    pub annotations: Annotations,
    /// Work done.
    pub stats: QueryStats,
}

/// A PromQL engine. Cheap to share between threads.
///
/// ```
/// use tidemark_promql::{Engine, MemStorage, Value};
/// use tidemark_storage::Labels;
///
/// let storage = MemStorage::new();
/// let series = Labels::new([("__name__", "http_requests_total"), ("job", "api")]).unwrap();
/// for i in 0..=10 {
///     storage.add(&series, i * 60_000, (i * 120) as f64); // +2 per second
/// }
/// let engine = Engine::default();
/// let result = engine.instant_query(&storage, "rate(http_requests_total[5m])", 600_000).unwrap();
/// match result.value {
///     Value::Vector(v) => assert!((v[0].v - 2.0).abs() < 1e-9),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with the given options.
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at time `t` (milliseconds since the Unix epoch).
    pub fn instant_query(&self, source: &dyn SeriesSource, query: &str, t: i64) -> Result<QueryResult, Error> {
        self.instant_query_with(source, query, t, &QueryOptions::default())
    }

    /// [`instant_query`](Self::instant_query) with per-query options.
    pub fn instant_query_with(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        t: i64,
        qopts: &QueryOptions,
    ) -> Result<QueryResult, Error> {
        let expr = crate::parse::parse(query)?;
        let ctx = self.context(source, query, qopts);
        crate::eval::evaluate(&ctx, &expr, t, t, 0, true)
    }

    /// Evaluates `query` at every `step` from `start` to `end` (milliseconds,
    /// both inclusive). The result is a matrix sorted by labels.
    pub fn range_query(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, Error> {
        self.range_query_with(source, query, start, end, step, &QueryOptions::default())
    }

    /// [`range_query`](Self::range_query) with per-query options.
    pub fn range_query_with(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
        qopts: &QueryOptions,
    ) -> Result<QueryResult, Error> {
        if step <= 0 {
            return Err(Error::InvalidQuery(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(Error::InvalidQuery("end timestamp must not be before start time".into()));
        }
        let expr = crate::parse::parse(query)?;
        let ctx = self.context(source, query, qopts);
        crate::eval::evaluate(&ctx, &expr, start, end, step, false)
    }

    fn context<'a>(&'a self, source: &'a dyn SeriesSource, query: &'a str, qopts: &QueryOptions) -> QueryContext<'a> {
        let lookback = qopts.lookback_delta.unwrap_or(self.opts.lookback_delta);
        let timeout = qopts.timeout.or(self.opts.timeout);
        QueryContext {
            opts: &self.opts,
            source,
            query,
            lookback_ms: lookback.as_millis() as i64,
            deadline: timeout.map(|d| Instant::now() + d),
            cancellation: qopts.cancellation.clone(),
        }
    }
}

/// Everything evaluation needs to know about the query being run.
pub(crate) struct QueryContext<'a> {
    pub(crate) opts: &'a EngineOptions,
    pub(crate) source: &'a dyn SeriesSource,
    pub(crate) query: &'a str,
    pub(crate) lookback_ms: i64,
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancellation: Option<CancellationToken>,
}

impl QueryContext<'_> {
    /// Fails if the query was cancelled or ran out of time.
    pub(crate) fn check_interrupt(&self) -> Result<(), Error> {
        if let Some(c) = &self.cancellation {
            if c.is_cancelled() {
                return Err(Error::Cancelled);
            }
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                return Err(Error::Timeout);
            }
        }
        Ok(())
    }
}

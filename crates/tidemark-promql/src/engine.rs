//! The query engine: options, limits, and the instant/range query entry points.
//!
//! Every query runs the same way: its text is checked against the
//! [`QueryLimits`] (cheap, no recursion), it waits for one of the
//! [`EngineOptions::max_concurrency`] slots (the wait counts against its
//! timeout and ends if it is cancelled), and then it is parsed, evaluated
//! and its tree dropped on a thread of its own whose stack is sized for the
//! deepest tree the limits allow, so no allowed query can overflow a stack
//! and a panic becomes [`Error::Internal`] instead of ending the process.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use promql_parser::parser::Expr;

use crate::annotations::Annotations;
use crate::error::Error;
use crate::eval::points_pool::PointsPool;
use crate::limits::QueryLimits;
use crate::storage::SeriesSource;
use crate::value::Value;

/// Stack reserved per level of query tree on a query thread. Measured needs
/// are about 4 KiB per level (subqueries, the deepest frames); the margin
/// covers printing and dropping the tree and future growth.
const STACK_PER_TREE_LEVEL: usize = 32 << 10;
/// Smallest query thread stack. The memory is reserved, not touched: only
/// the pages a query actually uses are ever backed.
const MIN_QUERY_STACK: usize = 16 << 20;
/// How often a query waiting for a slot looks at its cancellation token.
const QUEUE_POLL: Duration = Duration::from_millis(25);

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
    /// Most queries evaluated at once (default 20, as Prometheus'
    /// `--query.max-concurrency`); more wait in a queue, first come first
    /// served, within their own timeout. 0 means no limit.
    pub max_concurrency: usize,
    /// Limits on the size and shape of a query (defaults: see [`QueryLimits`]).
    pub limits: QueryLimits,
    /// Evaluate a range function of a plain selector at a single step
    /// (`rate(x[5m])` in an instant query, alone or under an aggregation)
    /// inside the storage's select, over each series' samples where they
    /// are stored (see [`crate::SeriesSource::select_windows`]), instead of
    /// selecting the series and reading them afterwards. The answers are
    /// the same either way; off only to compare the two paths. Default on.
    pub push_down_windows: bool,
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
            max_concurrency: 20,
            limits: QueryLimits::default(),
            push_down_windows: true,
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
/// A [`child`](Self::child) token is cancelled with its parent, so one
/// token can stop every query of a server while each request still has its
/// own.
///
/// ```
/// let token = tidemark_promql::CancellationToken::new();
/// let for_other_thread = token.clone();
/// for_other_thread.cancel();
/// assert!(token.is_cancelled());
///
/// let server = tidemark_promql::CancellationToken::new();
/// let request = server.child();
/// assert!(!request.is_cancelled());
/// server.cancel();
/// assert!(request.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancellationToken(Arc<TokenState>);

#[derive(Debug, Default)]
struct TokenState {
    cancelled: AtomicBool,
    parent: Option<CancellationToken>,
}

impl CancellationToken {
    /// A token that has not been triggered.
    pub fn new() -> CancellationToken {
        CancellationToken::default()
    }

    /// A new token that is also cancelled when this one is.
    pub fn child(&self) -> CancellationToken {
        CancellationToken(Arc::new(TokenState { cancelled: AtomicBool::new(false), parent: Some(self.clone()) }))
    }

    /// Asks every query holding this token (or a child of it) to stop.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called on this token or one of
    /// its ancestors.
    pub fn is_cancelled(&self) -> bool {
        let mut t = Some(self);
        while let Some(token) = t {
            if token.0.cancelled.load(Ordering::Relaxed) {
                return true;
            }
            t = token.0.parent.as_ref();
        }
        false
    }
}

/// The concurrency slots: how many queries run, and the queue of those
/// waiting, served first come, first served.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    active: usize,
    /// Tickets of the waiting queries, oldest first.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

/// A running query's slot, given back when dropped.
struct Permit<'a>(&'a Gate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.state.lock().active -= 1;
        // Every waiter checks whether it is now at the head of the queue.
        self.0.freed.notify_all();
    }
}

impl Gate {
    /// Waits for a slot (`max` 0: no limit) until `deadline`, giving up
    /// when `cancel` fires. Queries get slots in the order they asked.
    fn acquire(
        &self,
        max: usize,
        deadline: Option<Instant>,
        cancel: Option<&CancellationToken>,
    ) -> Result<Permit<'_>, Error> {
        let mut st = self.state.lock();
        if max == 0 || (st.active < max && st.waiting.is_empty()) {
            st.active += 1;
            return Ok(Permit(self));
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.waiting.push_back(ticket);
        let outcome = loop {
            if st.active < max && st.waiting.front() == Some(&ticket) {
                st.active += 1;
                break Ok(Permit(self));
            }
            if cancel.is_some_and(|c| c.is_cancelled()) {
                break Err(Error::Cancelled);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                break Err(Error::Timeout);
            }
            // Woken when a slot frees; the poll notices cancellation.
            let wait = deadline.map_or(QUEUE_POLL, |d| (d - now).min(QUEUE_POLL));
            self.freed.wait_for(&mut st, wait);
        };
        if let Some(i) = st.waiting.iter().position(|&t| t == ticket) {
            st.waiting.remove(i);
        }
        // Leaving the queue may put another waiter at its head.
        self.freed.notify_all();
        outcome
    }
}

/// Queries running and waiting in an [`Engine`], for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConcurrencyStats {
    /// Queries being evaluated.
    pub active: usize,
    /// Queries waiting for a slot.
    pub queued: usize,
    /// The configured limit ([`EngineOptions::max_concurrency`]; 0: none).
    pub max: usize,
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
    gate: Arc<Gate>,
}

impl Engine {
    /// An engine with the given options.
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts, gate: Arc::default() }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// How many queries run and wait now (shared by every clone of this engine).
    pub fn concurrency(&self) -> ConcurrencyStats {
        let st = self.gate.state.lock();
        ConcurrencyStats { active: st.active, queued: st.waiting.len(), max: self.opts.max_concurrency }
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
        self.execute(source, query, qopts, move |ctx, expr| crate::eval::evaluate(ctx, expr, t, t, 0, true))
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
        self.execute(source, query, qopts, move |ctx, expr| crate::eval::evaluate(ctx, expr, start, end, step, false))
    }

    /// The query formatted over several lines, exactly as Prometheus'
    /// `promtool promql format` (and `promql-parser`'s `prettify`) would,
    /// under the same limits, timeout and cancellation as a query (but
    /// without taking a concurrency slot: formatting reads no data).
    ///
    /// ```
    /// let engine = tidemark_promql::Engine::default();
    /// let q = "sum by (job) (rate(http_requests_total{job=\"api\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))";
    /// let pretty = engine.format_query(q, &Default::default()).unwrap();
    /// assert_eq!(pretty.lines().count(), 3);
    /// ```
    pub fn format_query(&self, query: &str, qopts: &QueryOptions) -> Result<String, Error> {
        let deadline = self.deadline(qopts);
        self.opts.limits.check_text(query)?;
        let interrupt = Interrupt { deadline, cancellation: qopts.cancellation.as_ref() };
        interrupt.check()?;
        let limits = self.opts.limits;
        on_query_stack(&limits, || {
            let expr = crate::parse::parse_unlimited(query)?;
            limits.check_tree(&expr)?;
            crate::format::prettify(&expr, &|| interrupt.check())
        })
    }

    /// When a query with these options must be done, counted from now.
    fn deadline(&self, qopts: &QueryOptions) -> Option<Instant> {
        qopts.timeout.or(self.opts.timeout).map(|d| Instant::now().checked_add(d).unwrap_or_else(far_future))
    }

    /// Checks the limits, waits for a slot, then parses and runs `run` on a
    /// query thread.
    fn execute<T: Send>(
        &self,
        source: &dyn SeriesSource,
        query: &str,
        qopts: &QueryOptions,
        run: impl FnOnce(&QueryContext<'_>, &Expr) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        let deadline = self.deadline(qopts);
        self.opts.limits.check_text(query)?;
        let _permit = self.gate.acquire(self.opts.max_concurrency, deadline, qopts.cancellation.as_ref())?;
        let limits = self.opts.limits;
        on_query_stack(&limits, || {
            let ctx = self.context(source, query, qopts, deadline);
            ctx.check_interrupt()?;
            let expr = crate::parse::parse_unlimited(query)?;
            limits.check_tree(&expr)?;
            ctx.check_interrupt()?;
            run(&ctx, &expr)
            // `expr` is dropped here, on the query thread: dropping a deep
            // tree recurses as deep as the tree.
        })
    }

    fn context<'a>(
        &'a self,
        source: &'a dyn SeriesSource,
        query: &'a str,
        qopts: &QueryOptions,
        deadline: Option<Instant>,
    ) -> QueryContext<'a> {
        let lookback = qopts.lookback_delta.unwrap_or(self.opts.lookback_delta);
        QueryContext {
            opts: &self.opts,
            source,
            query,
            lookback_ms: lookback.as_millis() as i64,
            deadline,
            cancellation: qopts.cancellation.clone(),
            // A worker batch's outputs are alive at once at most.
            spare_points: PointsPool::new(crate::eval::selector::max_spare_point_buffers(self.opts.parallelism)),
        }
    }
}

/// A moment no query reaches (for a timeout too large to add to now).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

/// Runs `f` on a new thread with a stack sized for the deepest tree
/// `limits` allow, and waits for it. A panic in `f` becomes
/// [`Error::Internal`].
fn on_query_stack<T: Send>(limits: &QueryLimits, f: impl FnOnce() -> Result<T, Error> + Send) -> Result<T, Error> {
    let stack = limits.max_tree_depth.saturating_mul(STACK_PER_TREE_LEVEL).max(MIN_QUERY_STACK);
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("tidemark-query".into())
            .stack_size(stack)
            .spawn_scoped(scope, f)
            .map_err(|e| Error::Internal(format!("cannot start a query thread: {e}")))?;
        handle.join().unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Internal(format!("query evaluation panicked: {what}")))
        })
    })
}

/// The timeout and cancellation of work outside evaluation (formatting).
#[derive(Clone, Copy)]
struct Interrupt<'a> {
    deadline: Option<Instant>,
    cancellation: Option<&'a CancellationToken>,
}

impl Interrupt<'_> {
    fn check(&self) -> Result<(), Error> {
        if self.cancellation.is_some_and(|c| c.is_cancelled()) {
            return Err(Error::Cancelled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Timeout);
        }
        Ok(())
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
    /// Point buffers that folding consumers hand back for reuse.
    pub(crate) spare_points: PointsPool,
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

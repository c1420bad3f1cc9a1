//! Runs a parsed script against Tidemark's engine and `MemStorage`, the way
//! upstream's `test.exec` does: loads accumulate until `clear`; each eval
//! runs as written, then (instant evals) with `@` variants and in range mode.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use promql_parser::label::Matcher as ParserMatcher;
use promql_parser::parser::{Expr, VectorSelector};
use tidemark_promql::{Engine, EngineOptions, Error, MemStorage, QueryResult, Value, VectorSample};
use tidemark_storage::Labels;

use crate::compare::{check_annotations, check_expected_failure, check_matrix_sorted, compare_result};
use crate::nhcb;
use crate::notation::Point;
use crate::readback::{read_back, Loaded};
use crate::script::{Command, Eval, EvalKind, Load};
use crate::variants::{at_modifier_variants, uses_query_context_functions};

/// The engine settings of upstream's test engine (`NewTestEngine`).
pub fn test_engine_options() -> EngineOptions {
    EngineOptions {
        lookback_delta: Duration::from_secs(5 * 60),
        max_samples: 10_000,
        timeout: Some(Duration::from_secs(100)),
        enable_experimental_functions: true,
        delayed_name_removal: true,
        default_subquery_step: Duration::from_secs(60),
        ..EngineOptions::default()
    }
}

/// How one eval ended.
#[derive(Debug)]
pub struct EvalOutcome {
    /// 1-based line of the eval.
    pub line: usize,
    /// The query as written.
    pub expr: String,
    /// `None` when every variant passed; otherwise the first failure.
    pub failure: Option<Failure>,
}

/// Why an eval failed.
#[derive(Debug)]
pub struct Failure {
    /// Which run failed: "as written", "@ variant at t=…", "range mode", …
    pub variant: String,
    /// The query text of that run.
    pub query: String,
    /// What went wrong.
    pub message: String,
}

/// Outcome of one file.
#[derive(Debug, Default)]
pub struct FileOutcome {
    /// One entry per eval, in file order.
    pub evals: Vec<EvalOutcome>,
    /// Script problems outside evals (invalid commands, bad load lines).
    pub script_errors: Vec<String>,
}

thread_local! {
    /// Where the last panic on this thread happened, recorded by our hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Name of the threads queries run on; our panic hook stays quiet on them.
const QUERY_THREAD: &str = "promqltest-query";

/// Installs a panic hook that records panics on query threads (they become
/// eval failures) and reports all others as usual.
pub fn install_panic_hook(verbose: bool) {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some(QUERY_THREAD) {
            let loc = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(loc));
            if verbose {
                default_hook(info);
            }
        } else {
            default_hook(info);
        }
    }));
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// A query to run: instant at `t`, or range.
#[derive(Debug, Clone, Copy)]
enum QueryKind {
    Instant(i64),
    Range(i64, i64, i64),
}

/// The state of one script run.
pub struct Runner {
    engine: Engine,
    storage: Arc<MemStorage>,
    /// Every sample loaded since the last `clear`, as written, per series:
    /// a load re-derives what the store holds for the series it touches
    /// (see `readback.rs`), which depends on the whole series.
    loaded: BTreeMap<Labels, BTreeMap<i64, Loaded>>,
    /// Load lines that failed to parse since the last `clear`.
    broken_loads: Vec<String>,
    /// Series that had `@st` start timestamps, which we skip (out of scope).
    st_series: Vec<Labels>,
    /// Longest a single query may run before the harness gives up on it.
    watchdog: Duration,
}

impl Runner {
    /// A runner with an empty store.
    pub fn new(watchdog: Duration) -> Runner {
        Runner {
            engine: Engine::new(test_engine_options()),
            storage: Arc::new(MemStorage::new()),
            loaded: BTreeMap::new(),
            broken_loads: Vec::new(),
            st_series: Vec::new(),
            watchdog,
        }
    }

    /// The store the loads went into.
    pub fn storage(&self) -> &MemStorage {
        &self.storage
    }

    /// Runs every command of a script.
    pub fn run_script(&mut self, cmds: &[Command]) -> FileOutcome {
        let mut out = FileOutcome::default();
        for cmd in cmds {
            match cmd {
                Command::Clear => self.clear(),
                Command::Load(l) => self.load(l, &mut out.script_errors),
                Command::Invalid { line, message } => out.script_errors.push(format!("line {line}: {message}")),
                Command::Eval(ev) => {
                    let failure = self.run_eval(ev).map(|mut f| {
                        if self.reads_st_series(ev) {
                            f.message.push_str(
                                " (note: the data has @st start timestamps, which this harness does not load)",
                            );
                        }
                        f
                    });
                    out.evals.push(EvalOutcome { line: ev.line, expr: ev.expr.clone(), failure });
                }
            }
        }
        out
    }

    fn clear(&mut self) {
        // A fresh store rather than `clear()`: a query abandoned by the
        // watchdog may still hold the old one.
        self.storage = Arc::new(MemStorage::new());
        self.loaded.clear();
        self.broken_loads.clear();
        self.st_series.clear();
    }

    fn load(&mut self, l: &Load, errors: &mut Vec<String>) {
        for (line, msg) in &l.errors {
            errors.push(format!("line {line}: {msg}"));
            self.broken_loads.push(format!("line {line}: {msg}"));
        }
        self.st_series.extend(l.st_series.iter().cloned());
        let mut touched: BTreeSet<Labels> = BTreeSet::new();
        for s in &l.series {
            let series = self.loaded.entry(s.labels.clone()).or_default();
            for (i, p) in s.points.iter().enumerate() {
                let t = (i as i64).saturating_mul(l.step_ms);
                match p {
                    Point::Float(v) => {
                        series.insert(t, Loaded::Float(*v));
                    }
                    Point::Histogram(h) => {
                        series.insert(t, Loaded::Histogram(h.h.clone()));
                    }
                    Point::Omitted => {}
                }
            }
            touched.insert(s.labels.clone());
        }
        if l.with_nhcb {
            match nhcb::convert(&l.series, l.step_ms) {
                Ok(converted) => {
                    for (labels, samples) in converted {
                        let series = self.loaded.entry(labels.clone()).or_default();
                        for (t, h) in samples {
                            series.insert(t, Loaded::Histogram(h));
                        }
                        touched.insert(labels);
                    }
                }
                Err(e) => {
                    let msg = format!("line {}: load_with_nhcb: {e}", l.line);
                    errors.push(msg.clone());
                    self.broken_loads.push(msg);
                }
            }
        }
        for labels in touched {
            let Some(series) = self.loaded.get(&labels) else { continue };
            for (t, v) in read_back(series) {
                match v {
                    Loaded::Float(v) => self.storage.add(&labels, t, v),
                    Loaded::Histogram(h) => self.storage.add_float_histogram(&labels, t, h),
                }
            }
        }
    }

    /// Whether the eval reads a series loaded with `@st` lines.
    fn reads_st_series(&self, ev: &Eval) -> bool {
        if self.st_series.is_empty() {
            return false;
        }
        let Ok(expr) = promql_parser::parser::parse(&ev.expr) else { return false };
        let mut selectors = Vec::new();
        collect_selectors(&expr, &mut selectors);
        selectors.iter().any(|vs| self.st_series.iter().any(|l| selector_matches(vs, l)))
    }

    /// Why this eval cannot pass, if a load before it failed.
    fn unsupported_reason(&self) -> Option<String> {
        self.broken_loads.first().map(|b| format!("data could not be loaded ({b})"))
    }

    fn run_eval(&self, ev: &Eval) -> Option<Failure> {
        let as_written = |message: String| Failure { variant: "as written".into(), query: ev.expr.clone(), message };
        if let Some(p) = &ev.problem {
            return Some(as_written(format!("invalid eval block: {p}")));
        }
        if let Some(reason) = self.unsupported_reason() {
            return Some(as_written(reason));
        }
        match ev.kind {
            EvalKind::Range { start, end, step } => {
                self.check_run(ev, &ev.expr, QueryKind::Range(start, end, step), "as written").err()
            }
            EvalKind::Instant { t } => self.run_instant_eval(ev, t).err(),
        }
    }

    fn run_instant_eval(&self, ev: &Eval, t: i64) -> Result<(), Failure> {
        let variants = at_modifier_variants(&ev.expr, t).map_err(|e| Failure {
            variant: "@ variants".into(),
            query: ev.expr.clone(),
            message: e,
        })?;
        let mut runs = vec![(ev.expr.clone(), t, "as written".to_string())];
        runs.extend(variants.into_iter().map(|v| (v.expr, v.t, format!("@ variant at t={}ms", v.t))));
        for (query, at, name) in runs {
            let value = match self.check_run(ev, &query, QueryKind::Instant(at), &name)? {
                Some(v) => v,
                None => continue, // failed as expected
            };
            if ev.exclude_from_range_query || uses_query_context_functions(&query) {
                continue;
            }
            self.check_range_mode(ev, &query, at, &value, &name)?;
        }
        Ok(())
    }

    /// Runs one query and checks error, annotations and value. Returns the
    /// value when the query succeeded (and was meant to), `None` when it
    /// failed as expected.
    fn check_run(&self, ev: &Eval, query: &str, kind: QueryKind, name: &str) -> Result<Option<Value>, Failure> {
        let fail = |message: String| Failure { variant: name.to_string(), query: query.to_string(), message };
        match self.execute(query, kind) {
            Err(e) => {
                if ev.is_fail() {
                    check_expected_failure(ev, &e).map_err(fail)?;
                    Ok(None)
                } else {
                    Err(fail(format!("error evaluating query: {e}")))
                }
            }
            Ok(res) => {
                if ev.is_fail() {
                    return Err(fail("expected error evaluating query but got none".into()));
                }
                check_annotations(ev, &res.annotations).map_err(fail)?;
                let eval_t = match kind {
                    QueryKind::Instant(t) => Some(t),
                    QueryKind::Range(..) => None,
                };
                compare_result(ev, &res.value, eval_t).map_err(fail)?;
                Ok(Some(res.value))
            }
        }
    }

    /// Re-runs an instant query as a range query t-1m..t+1m and checks the
    /// middle step against the same expectations.
    fn check_range_mode(&self, ev: &Eval, query: &str, t: i64, instant: &Value, name: &str) -> Result<(), Failure> {
        let variant = format!("range mode of {name}");
        let fail = |message: String| Failure { variant: variant.clone(), query: query.to_string(), message };
        let res = self
            .execute(query, QueryKind::Range(t - 60_000, t + 60_000, 60_000))
            .map_err(|e| fail(format!("error evaluating query in range mode: {e}")))?;
        if ev.is_ordered() {
            // Range results are sorted by labels, so the order cannot match.
            return Ok(());
        }
        let Value::Matrix(series) = &res.value else {
            return Err(fail(format!("range query returned a {}, not a matrix", res.value.type_name())));
        };
        check_matrix_sorted(series).map_err(fail)?;
        let mut vec = Vec::new();
        for s in series {
            // A series has a float or a histogram at a step, not both.
            if let Some(p) = s.samples.iter().find(|p| p.t == t) {
                vec.push(VectorSample { labels: s.labels.clone(), t: p.t, v: p.v, h: None });
            }
            if let Some(p) = s.histograms.iter().find(|p| p.t == t) {
                vec.push(VectorSample { labels: s.labels.clone(), t: p.t, v: 0.0, h: Some(Box::new(p.h.clone())) });
            }
        }
        let value = if matches!(instant, Value::Scalar { .. }) {
            match vec.first() {
                Some(s) => Value::Scalar { t, v: s.v },
                None => return Err(fail("range mode returned no point at the evaluation time for a scalar".into())),
            }
        } else {
            Value::Vector(vec)
        };
        compare_result(ev, &value, Some(t)).map_err(fail)
    }

    /// Runs a query on a worker thread, turning panics and hangs into errors.
    fn execute(&self, query: &str, kind: QueryKind) -> Result<QueryResult, Error> {
        let engine = self.engine.clone();
        let storage = Arc::clone(&self.storage);
        let q = query.to_string();
        run_guarded(
            move || match kind {
                QueryKind::Instant(t) => engine.instant_query(&*storage, &q, t),
                QueryKind::Range(s, e, st) => engine.range_query(&*storage, &q, s, e, st),
            },
            self.watchdog,
        )
    }
}

/// Runs `f` on a fresh query thread: a panic becomes an error naming where
/// it happened, and a run longer than `watchdog` is abandoned (the thread
/// is left to finish on its own) and reported as an error.
pub fn run_guarded<F>(f: F, watchdog: Duration) -> Result<QueryResult, Error>
where
    F: FnOnce() -> Result<QueryResult, Error> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name(QUERY_THREAD.into()).spawn(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            let loc = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            format!("engine panicked at {loc}: {}", panic_message(&*payload))
        });
        // The receiver may have given up (watchdog); nothing to do then.
        let _ = tx.send(r);
    });
    if let Err(e) = spawned {
        return Err(Error::Execution(format!("promqltest: cannot start a query thread: {e}")));
    }
    match rx.recv_timeout(watchdog) {
        Ok(Ok(r)) => r,
        Ok(Err(panic_text)) => Err(Error::Execution(format!("promqltest: {panic_text}"))),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(Error::Execution(format!("promqltest: query still running after {watchdog:?}; abandoned")))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(Error::Execution("promqltest: query thread ended without a result".into()))
        }
    }
}

/// Every vector selector of a query (including those inside range selectors).
fn collect_selectors<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Subquery(sq) => collect_selectors(&sq.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, out);
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn matcher_matches(m: &ParserMatcher, labels: &Labels) -> bool {
    m.is_match(labels.get(&m.name).unwrap_or(""))
}

/// Whether a selector selects a series with these labels.
fn selector_matches(vs: &VectorSelector, labels: &Labels) -> bool {
    if let Some(name) = &vs.name {
        if labels.metric_name() != Some(name.as_str()) {
            return false;
        }
    }
    if vs.matchers.or_matchers.is_empty() {
        vs.matchers.matchers.iter().all(|m| matcher_matches(m, labels))
    } else {
        vs.matchers.or_matchers.iter().any(|group| group.iter().all(|m| matcher_matches(m, labels)))
    }
}

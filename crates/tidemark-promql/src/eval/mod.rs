//! Evaluation of a parsed expression over a time range.
//!
//! Every node evaluates for all steps of its evaluator at once and returns its
//! result series-major ([`Val`]): one [`StepSeries`] per output series, holding
//! a point for each step at which the series has a value. Selectors and range
//! functions therefore stream storage one series at a time, and only the
//! per-step operators (binary operators, aggregations, some functions) look
//! across series, one step at a time, as Prometheus' `rangeEval` does.
//!
//! Sub-evaluators with their own start, end and interval run subqueries and
//! step-invariant sub-trees (those fixed by `@`), which are evaluated once and
//! repeated for every step, as Prometheus does.

mod aggregate;
mod aggregate_histogram;
mod binary;
mod binary_histogram;
mod call;
mod histogram_stats;
mod info;
mod key_index;
mod native;
pub(crate) mod points_pool;
pub(crate) mod selector;
mod series;

use std::cell::{Cell, RefCell};

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, Offset};
use tidemark_storage::{Labels, Sample};

use crate::annotations::{Annotation, Annotations, Position};
use crate::engine::{QueryContext, QueryResult, QueryStats};
use crate::error::Error;
use crate::position::PositionMap;
use crate::value::{HistogramPoint, RangeSeries, Value, VectorSample};

pub(crate) use series::{StepSeries, Val};

/// State shared by the evaluators of one query.
pub(crate) struct Shared<'a> {
    pub(crate) ctx: &'a QueryContext<'a>,
    positions: PositionMap,
    annotations: RefCell<Annotations>,
    current_samples: Cell<usize>,
    peak_samples: Cell<usize>,
    samples_read: Cell<u64>,
    /// Start and end of the whole query, for `@ start()` / `@ end()`.
    query_start: i64,
    query_end: i64,
    /// Interrupt checks are rate-limited with this counter.
    ticks: Cell<u32>,
    /// Selectors read as histogram statistics (see `histogram_stats`).
    stats_selectors: std::collections::HashSet<usize>,
}

impl Shared<'_> {
    /// Whether `vs` is read as histogram statistics (buckets dropped,
    /// counter resets detected on the fly).
    pub(crate) fn stats_only(&self, vs: &promql_parser::parser::VectorSelector) -> bool {
        !self.stats_selectors.is_empty() && self.stats_selectors.contains(&(vs as *const _ as usize))
    }

    /// Records that `n` more samples are held in memory; fails past the limit.
    pub(crate) fn hold(&self, n: usize) -> Result<(), Error> {
        let cur = self.current_samples.get() + n;
        self.current_samples.set(cur);
        if cur > self.peak_samples.get() {
            self.peak_samples.set(cur);
        }
        if cur > self.ctx.opts.max_samples {
            return Err(Error::TooManySamples { limit: self.ctx.opts.max_samples });
        }
        Ok(())
    }

    /// Records that `n` samples held earlier were released.
    pub(crate) fn release(&self, n: usize) {
        self.current_samples.set(self.current_samples.get().saturating_sub(n));
    }

    pub(crate) fn count_read(&self, n: usize) {
        self.samples_read.set(self.samples_read.get() + n as u64);
    }

    /// Checks cancellation and timeout every so often.
    pub(crate) fn tick(&self) -> Result<(), Error> {
        let t = self.ticks.get().wrapping_add(1);
        self.ticks.set(t);
        if t.is_multiple_of(64) {
            self.ctx.check_interrupt()?;
        }
        Ok(())
    }

    pub(crate) fn position(&self, e: &Expr) -> Option<Position> {
        self.positions.get(e)
    }

    pub(crate) fn warn(&self, msg: impl Into<String>, at: &Expr) {
        self.annotations.borrow_mut().add(Annotation::warning(msg, self.position(at)));
    }

    pub(crate) fn info(&self, msg: impl Into<String>, at: &Expr) {
        self.annotations.borrow_mut().add(Annotation::info(msg, self.position(at)));
    }

    pub(crate) fn delayed_name_removal(&self) -> bool {
        self.ctx.opts.delayed_name_removal
    }
}

/// Evaluates expressions at `start, start+interval, …, end`.
#[derive(Clone, Copy)]
pub(crate) struct Evaluator<'s, 'a> {
    pub(crate) sh: &'s Shared<'a>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) interval: i64,
}

/// Evaluates `expr` at every `step` in `[start, end]` (`instant` = one step).
pub(crate) fn evaluate(
    ctx: &QueryContext<'_>,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
) -> Result<QueryResult, Error> {
    ctx.check_interrupt()?;
    check_experimental(ctx, expr)?;
    let sh = Shared {
        ctx,
        positions: PositionMap::build(ctx.query, expr),
        annotations: RefCell::new(Annotations::default()),
        current_samples: Cell::new(0),
        peak_samples: Cell::new(0),
        samples_read: Cell::new(0),
        query_start: start,
        query_end: end,
        ticks: Cell::new(0),
        stats_selectors: histogram_stats::stats_selectors(expr),
    };
    let ev = Evaluator { sh: &sh, start, end, interval: if instant { 1 } else { step } };
    if !instant && matches!(expr.value_type(), ValueType::Matrix | ValueType::String) {
        return Err(Error::InvalidQuery(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            type_name(expr.value_type())
        )));
    }
    let val = ev.eval(expr)?;
    let value = match val {
        Val::Scalar(v) => {
            if instant {
                Value::Scalar { t: start, v: v[0] }
            } else {
                Value::Matrix(vec![RangeSeries {
                    labels: Labels::empty(),
                    samples: v.iter().enumerate().map(|(i, &v)| Sample { t: ev.ts(i), v }).collect(),
                    histograms: Vec::new(),
                }])
            }
        }
        Val::String(s) => Value::String { t: start, s },
        Val::Vector(series) => {
            let series = ev.finish_names(series)?;
            if instant {
                // Each series' points are freed here: on several threads
                // for a large answer, as the name check before.
                let threads = finish_threads(ctx, series.len());
                let mut series = series;
                let out: Vec<VectorSample> = map_parts(&mut series, threads, |part| {
                    part.iter_mut()
                        .filter_map(|s| {
                            if let Some(h) = s.histograms.pop() {
                                let labels = std::mem::take(&mut s.labels);
                                return Some(VectorSample { labels, t: h.t, v: 0.0, h: Some(Box::new(h.h)) });
                            }
                            let p = *s.points.first()?;
                            s.points = Vec::new();
                            Some(VectorSample { labels: std::mem::take(&mut s.labels), t: p.t, v: p.v, h: None })
                        })
                        .collect()
                });
                // Emptied: nothing left to free one by one.
                drop(series);
                Value::Vector(out)
            } else {
                let mut out: Vec<RangeSeries> = series
                    .into_iter()
                    .filter(|s| !s.points.is_empty() || !s.histograms.is_empty())
                    .map(|s| RangeSeries { labels: s.labels, samples: s.points, histograms: s.histograms })
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(out)
            }
        }
        Val::Matrix(series) => {
            let series = ev.finish_names(series)?;
            let mut out: Vec<RangeSeries> = series
                .into_iter()
                .map(|s| RangeSeries { labels: s.labels, samples: s.points, histograms: s.histograms })
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Matrix(out)
        }
    };
    Ok(QueryResult {
        value,
        annotations: sh.annotations.into_inner(),
        stats: QueryStats { samples_read: sh.samples_read.get(), peak_samples: sh.peak_samples.get() },
    })
}

pub(crate) fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

/// Rejects experimental functions and aggregations unless enabled.
fn check_experimental(ctx: &QueryContext<'_>, expr: &Expr) -> Result<(), Error> {
    if ctx.opts.enable_experimental_functions {
        return Ok(());
    }
    let mut err = None;
    walk(expr, &mut |e| {
        if err.is_some() {
            return;
        }
        match e {
            Expr::Call(c) if c.func.experimental || is_experimental_function(c.func.name) => {
                err = Some(Error::InvalidQuery(format!(
                    "function \"{}\" is not enabled (experimental functions are off)",
                    c.func.name
                )));
            }
            Expr::Binary(b)
                if b.modifier.as_ref().is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some()) =>
            {
                err = Some(Error::InvalidQuery(
                    "fill(), fill_left() and fill_right() are experimental and must be enabled".into(),
                ));
            }
            Expr::Aggregate(a) => {
                let op = a.op.to_string();
                if op == "limitk" || op == "limit_ratio" {
                    err = Some(Error::InvalidQuery(format!(
                        "limitk() and limit_ratio() are experimental and must be enabled (aggregation \"{op}\")"
                    )));
                }
            }
            _ => {}
        }
    });
    err.map_or(Ok(()), Err)
}

fn is_experimental_function(name: &str) -> bool {
    matches!(
        name,
        "mad_over_time"
            | "sort_by_label"
            | "sort_by_label_desc"
            | "double_exponential_smoothing"
            | "ts_of_min_over_time"
            | "ts_of_max_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
            | "info"
            | "histogram_quantiles"
            | "start"
            | "end"
            | "range"
            | "step"
            | "min_of"
            | "max_of"
    )
}

/// Calls `f` on every node of the tree, parents first.
pub(crate) fn walk<'e>(e: &'e Expr, f: &mut impl FnMut(&'e Expr)) {
    f(e);
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, f);
            }
            walk(&a.expr, f);
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::MatrixSelector(_) | Expr::VectorSelector(_) | Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, f);
            }
        }
        Expr::Extension(_) => {}
    }
}

/// Times and durations are clamped to ±2^60 ms (±36 million years), so
/// sums of a few of them can never overflow an `i64`.
const TIME_LIMIT_MS: i64 = 1 << 60;

fn clamp_ms(ms: u128) -> i64 {
    ms.min(TIME_LIMIT_MS as u128) as i64
}

/// Offset in milliseconds (negative offsets look into the future).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => clamp_ms(d.as_millis()),
        Some(Offset::Neg(d)) => -clamp_ms(d.as_millis()),
    }
}

pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    clamp_ms(d.as_millis())
}

impl<'s, 'a> Evaluator<'s, 'a> {
    pub(crate) fn nsteps(&self) -> usize {
        ((self.end - self.start) / self.interval) as usize + 1
    }

    pub(crate) fn ts(&self, step: usize) -> i64 {
        self.start + step as i64 * self.interval
    }

    pub(crate) fn step_of(&self, t: i64) -> usize {
        ((t - self.start) / self.interval) as usize
    }

    pub(crate) fn is_instant(&self) -> bool {
        self.start == self.end
    }

    /// The timestamp an `@` modifier pins evaluation to.
    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.sh.query_start),
            Some(AtModifier::End) => Some(self.sh.query_end),
            Some(AtModifier::At(t)) => Some(match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => clamp_ms(d.as_millis()),
                Err(e) => -clamp_ms(e.duration().as_millis()),
            }),
        }
    }

    /// A single-step evaluator at this one's start.
    fn single_step(&self) -> Evaluator<'s, 'a> {
        Evaluator { end: self.start, ..*self }
    }

    /// Evaluates any expression.
    pub(crate) fn eval(&self, e: &Expr) -> Result<Val, Error> {
        self.sh.ctx.check_interrupt()?;
        // Every step may hold a value, and some loops visit every step: a
        // grid finer than the sample limit (say `x[100y:1ms]`) cannot be
        // evaluated within it.
        if self.end < self.start || self.interval <= 0 {
            return Err(Error::InvalidQuery("invalid evaluation range".into()));
        }
        let span =
            self.end.checked_sub(self.start).ok_or_else(|| Error::InvalidQuery("time range too large".into()))?;
        if span / self.interval >= self.sh.ctx.opts.max_samples as i64 {
            return Err(Error::TooManySamples { limit: self.sh.ctx.opts.max_samples });
        }
        if self.nsteps() > 1 && should_wrap_step_invariant(e) {
            let one = self.single_step().eval_node(e)?;
            return self.repeat_steps(one);
        }
        self.eval_node(e)
    }

    /// Repeats a single-step result at every step.
    fn repeat_steps(&self, one: Val) -> Result<Val, Error> {
        let n = self.nsteps();
        Ok(match one {
            Val::Scalar(v) => Val::Scalar(vec![v[0]; n]),
            Val::Vector(mut series) => {
                for s in &mut series {
                    if let Some(p) = s.points.first().copied() {
                        self.sh.hold(n - 1)?;
                        s.points = (0..n).map(|i| Sample { t: self.ts(i), v: p.v }).collect();
                    } else if let Some(h) = s.histograms.pop() {
                        self.sh.hold((n - 1) * series::histogram_weight(&h.h))?;
                        s.histograms = (0..n).map(|i| HistogramPoint { t: self.ts(i), h: h.h.clone() }).collect();
                    }
                }
                Val::Vector(series)
            }
            other => other,
        })
    }

    fn eval_node(&self, e: &Expr) -> Result<Val, Error> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.nsteps()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => {
                let v = self.eval(&u.expr)?;
                self.negate(v)
            }
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs)?)),
            Expr::MatrixSelector(ms) => {
                if !self.is_instant() {
                    return Err(Error::InvalidQuery("cannot do range evaluation of matrix selector".into()));
                }
                Ok(Val::Matrix(self.eval_matrix_selector_raw(ms)?))
            }
            Expr::Subquery(sq) => {
                let (series, _) = self.eval_subquery(sq)?;
                if !self.is_instant() {
                    return Err(Error::InvalidQuery("cannot do range evaluation of a subquery".into()));
                }
                // As a value, a subquery is the range vector of its points in the window.
                let t = self.at_ms(&sq.at).unwrap_or(self.start) - offset_ms(&sq.offset);
                let range = duration_ms(&sq.range);
                let mut out = Vec::with_capacity(series.len());
                for mut s in series {
                    s.points.retain(|p| p.t > t - range && p.t <= t);
                    s.histograms.retain(|p| p.t > t - range && p.t <= t);
                    if !s.points.is_empty() || !s.histograms.is_empty() {
                        out.push(s);
                    }
                }
                Ok(Val::Matrix(out))
            }
            Expr::Call(c) => self.eval_call(e, c),
            Expr::Aggregate(a) => self.eval_aggregate(e, a),
            Expr::Binary(b) => self.eval_binary(e, b),
            Expr::Extension(_) => Err(Error::InvalidQuery("extension expressions are not supported".into())),
        }
    }

    /// Evaluates `e` series by series into `sink` if it is a node that can
    /// produce its series independently (a selector, or a range function over
    /// a range selector or subquery). Returns `false`, having done nothing,
    /// for any other node. `order` is the order the sink needs the series
    /// in; only a selector streamed directly may take [`selector::Order::Any`]
    /// (a range function's annotations follow its input's order).
    /// `labels_used` says which labels of a range function's outputs the
    /// sink reads (see [`call::LabelUse`]).
    pub(crate) fn try_stream(
        &self,
        e: &Expr,
        order: selector::Order,
        labels_used: call::LabelUse<'_>,
        sink: &mut dyn FnMut(StepSeries) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let e = unparen(e);
        if self.nsteps() > 1 && should_wrap_step_invariant(e) {
            return Ok(false);
        }
        match e {
            Expr::VectorSelector(vs) => {
                self.stream_vector_selector(vs, false, order, sink)?;
                Ok(true)
            }
            Expr::Call(c) => {
                let Some(f) = crate::functions::range::RangeFunction::from_name(c.func.name) else { return Ok(false) };
                let args: Vec<&Expr> = c.args.args.iter().map(|a| unparen(a)).collect();
                if !args.iter().any(|a| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_))) {
                    return Ok(false);
                }
                self.stream_range_function(c, f, &args, labels_used, sink)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn negate(&self, v: Val) -> Result<Val, Error> {
        match v {
            Val::Scalar(mut v) => {
                for x in &mut v {
                    *x = -*x;
                }
                Ok(Val::Scalar(v))
            }
            Val::Vector(mut series) => {
                for s in &mut series {
                    self.mark_drop_name(s);
                    for p in &mut s.points {
                        p.v = -p.v;
                    }
                    binary_histogram::negate_histograms(&mut s.histograms);
                }
                if !self.sh.delayed_name_removal() {
                    series = series::merge_same_labels(series)?;
                }
                Ok(Val::Vector(series))
            }
            other => Err(Error::InvalidQuery(format!(
                "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Marks a series' name for removal: now, or at the end with delayed removal.
    pub(crate) fn mark_drop_name(&self, s: &mut StepSeries) {
        if !self.sh.delayed_name_removal() {
            drop_metric_name(&mut s.labels);
        }
        s.drop_name = true;
    }

    /// Applies delayed name removal at the end of evaluation and checks that
    /// no two series ended up with the same labels at the same time.
    /// A large answer is checked on several threads: a look at every
    /// series' labels, serial work after the evaluation otherwise.
    fn finish_names(&self, mut series: Vec<StepSeries>) -> Result<Vec<StepSeries>, Error> {
        let threads = finish_threads(self.sh.ctx, series.len());
        let changed = for_each_part(&mut series, threads, |part| {
            let mut changed = false;
            for s in part {
                // One pass over the names (three lookups walked each set
                // to its end when none of them is there, as in most).
                if s.drop_name && s.labels.iter().any(|l| METADATA_LABELS.contains(&l.name)) {
                    drop_metric_name(&mut s.labels);
                    changed = true;
                }
            }
            changed
        });
        if changed.contains(&true) || self.sh.delayed_name_removal() {
            series = series::merge_same_labels(series)?;
        }
        Ok(series)
    }
}

/// Below this many output series the end of an evaluation (name checks,
/// conversion to the answer) runs on the calling thread only.
const PARALLEL_FINISH_MIN: usize = 8192;

/// Threads for the end of an evaluation with `n` output series: up to the
/// engine's parallelism, each with at least [`PARALLEL_FINISH_MIN`] / 2.
fn finish_threads(ctx: &QueryContext<'_>, n: usize) -> usize {
    if n < PARALLEL_FINISH_MIN {
        return 1;
    }
    ctx.opts.parallelism.min(n / (PARALLEL_FINISH_MIN / 2)).max(1)
}

/// Runs `f` on `threads` contiguous parts of `items` at once (the first
/// on the calling thread) and returns the parts' results in order.
fn for_each_part<T: Send, R: Send>(items: &mut [T], threads: usize, f: impl Fn(&mut [T]) -> R + Sync) -> Vec<R> {
    if threads <= 1 || items.len() < 2 {
        return vec![f(items)];
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let (first, rest) = items.split_at_mut(per.min(items.len()));
        let handles: Vec<_> = rest.chunks_mut(per).map(|part| scope.spawn(move || f(part))).collect();
        let mut out = vec![f(first)];
        for h in handles {
            out.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

/// Maps `items` to a list by `threads` contiguous parts at once (the first
/// on the calling thread), each part a slice of `items` (nothing is copied
/// out of it; `f` may empty what it takes, so it is freed by the thread
/// that read it), and joins the parts' lists in order: the list one
/// `f(items)` would give.
fn map_parts<T: Send, U: Send>(items: &mut [T], threads: usize, f: impl Fn(&mut [T]) -> Vec<U> + Sync) -> Vec<U> {
    if threads <= 1 || items.len() < 2 {
        return f(items);
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    let (first, rest) = items.split_at_mut(per.min(items.len()));
    let (mut out, done): (Vec<U>, Vec<Vec<U>>) = std::thread::scope(|scope| {
        let handles: Vec<_> = rest.chunks_mut(per).map(|part| scope.spawn(move || f(part))).collect();
        let first = f(first);
        let done = handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect();
        (first, done)
    });
    out.reserve(done.iter().map(Vec::len).sum());
    for d in done {
        out.extend(d);
    }
    out
}

/// Labels that describe the metric rather than the series: the name, and
/// the `__type__`/`__unit__` labels Prometheus' type-and-unit feature adds.
/// They go together whenever a function or operator changes the meaning of
/// a value (Prometheus' `DropReserved(schema.IsMetadataLabel)`).
const METADATA_LABELS: [&str; 3] = [tidemark_storage::METRIC_NAME, "__type__", "__unit__"];

/// Removes `__name__` and the metadata labels that travel with it.
pub(crate) fn drop_metric_name(labels: &mut Labels) {
    if METADATA_LABELS.iter().any(|n| labels.get(n).is_some()) {
        *labels = labels.without(&METADATA_LABELS);
    }
}

/// Functions whose result depends on the evaluation time, so a call to them
/// can never be step-invariant (Prometheus' `AtModifierUnsafeFunctions`).
fn at_modifier_unsafe(name: &str) -> bool {
    matches!(
        name,
        "days_in_month"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "end"
            | "hour"
            | "minute"
            | "month"
            | "year"
            | "predict_linear"
            | "range"
            | "start"
            | "step"
            | "time"
            | "timestamp"
    )
}

/// Whether `e` evaluates to the same value at every step (it is pinned by
/// `@`), following Prometheus' `preprocessExprHelper`.
pub(crate) fn is_step_invariant(e: &Expr) -> bool {
    match e {
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Subquery(sq) => sq.at.is_some(),
        Expr::Aggregate(a) => is_step_invariant(&a.expr),
        Expr::Binary(b) => is_step_invariant(&b.lhs) && is_step_invariant(&b.rhs),
        Expr::Call(c) => {
            let args: Vec<&Expr> = c.args.args.iter().map(|a| unparen(a)).collect();
            let all = args.iter().all(|a| is_step_invariant(a));
            if c.func.name == "timestamp" {
                return all && args.iter().all(|a| matches!(a, Expr::VectorSelector(_)));
            }
            !at_modifier_unsafe(c.func.name) && all
        }
        Expr::Paren(p) => is_step_invariant(&p.expr),
        Expr::Unary(u) => is_step_invariant(&u.expr),
        Expr::StringLiteral(_) | Expr::NumberLiteral(_) => true,
        Expr::Extension(_) => false,
    }
}

/// Whether `e` is the top of a step-invariant sub-tree worth evaluating once.
fn should_wrap_step_invariant(e: &Expr) -> bool {
    !matches!(
        e,
        Expr::MatrixSelector(_) | Expr::Subquery(_) | Expr::StringLiteral(_) | Expr::NumberLiteral(_) | Expr::Paren(_)
    ) && is_step_invariant(e)
}

/// Strips any parentheses around an expression.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::{for_each_part, map_parts};

    #[test]
    fn parts_are_mapped_in_order_on_any_number_of_threads() {
        for n in [0usize, 1, 2, 3, 7, 100, 1001] {
            let items: Vec<usize> = (0..n).collect();
            let one: Vec<String> = items.iter().map(|i| format!("#{i}")).collect();
            for threads in 1..=5 {
                let mapped =
                    map_parts(&mut items.clone(), threads, |part| part.iter().map(|i| format!("#{i}")).collect());
                assert_eq!(mapped, one, "{n} items, {threads} threads");
                let mut edited = items.clone();
                let sums = for_each_part(&mut edited, threads, |part| {
                    for x in part.iter_mut() {
                        *x *= 2;
                    }
                    part.iter().sum::<usize>()
                });
                assert_eq!(edited, items.iter().map(|i| i * 2).collect::<Vec<_>>());
                assert_eq!(sums.iter().sum::<usize>(), n * n.saturating_sub(1));
                assert!(sums.len() <= threads.max(1));
            }
        }
    }
}

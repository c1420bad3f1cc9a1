//! Function calls.

use std::collections::HashMap;

use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{Call, Expr, VectorSelector};
use tidemark_storage::chunkenc::Extreme;
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram};
use tidemark_storage::{Labels, Sample, METRIC_NAME};

use super::selector::{load_extreme_samples, load_mixed_samples, load_samples, StepGrid};
use super::series::{asc_nan_last, desc_nan_last, merge_same_labels, SeriesBuilder, StepCursor, DUPLICATE_LABELSET};
use super::{drop_metric_name, duration_ms, offset_ms, unparen, Evaluator, StepSeries, Val};
use crate::error::Error;
use crate::functions::histogram::{bucket_fraction, bucket_quantile, Bucket};
use crate::functions::histogram_range::{MixedValue, MixedWindow, Notes};
use crate::functions::math::{go_max, go_min, rfc3339_utc, MathFunction};
use crate::functions::native_histogram;
use crate::functions::range::{counter_resets, validate_smoothing_args, RangeFunction, RangeWindow};
use crate::go_fmt::{format_openmetrics_float, go_g, go_g_precision};
use crate::value::HistogramPoint;

/// Longest label value `label_replace` and `label_join` may make. Each can
/// multiply the length of what it reads (`label_join(x, "a", "", "a", "a")`
/// doubles `a`), and nesting them multiplies again: without a bound a short
/// query could ask for terabytes and end the process.
const MAX_LABEL_VALUE_BYTES: usize = 1 << 20;

/// Label bytes made by the label functions count against the sample limit
/// as this many bytes per sample (a sample held is 16 bytes).
const LABEL_BYTES_PER_SAMPLE: usize = 16;

/// Monotonicity fixes of one metric, merged over the steps of a query.
struct MonotonicityFix {
    min_t: i64,
    max_t: i64,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
    count: usize,
}

/// One histogram handed to `histogram_quantile` and its kin.
enum HistInput<'a> {
    /// The buckets of a classic histogram (series differing only in `le`),
    /// in no particular order.
    Classic(&'a mut Vec<Bucket>),
    /// A native histogram.
    Native(&'a FloatHistogram),
}

/// `msg` with ` for metric name "name"` appended unless `name` is empty
/// (Prometheus' `maybeAddMetricName`).
pub(crate) fn with_metric_name(msg: &str, name: &str) -> String {
    if name.is_empty() {
        msg.to_string()
    } else {
        format!("{msg} for metric name {name:?}")
    }
}

/// Where the range-vector argument of a call comes from.
enum RangeArg<'e> {
    Selector(&'e promql_parser::parser::MatrixSelector),
    Subquery(&'e promql_parser::parser::SubqueryExpr),
}

impl Evaluator<'_, '_> {
    pub(crate) fn eval_call(&self, call_expr: &Expr, c: &Call) -> Result<Val, Error> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| unparen(a)).collect();
        let n = self.nsteps();
        match name {
            "time" => return Ok(Val::Scalar((0..n).map(|i| self.ts(i) as f64 / 1000.0).collect())),
            "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
            "start" => return Ok(Val::Scalar(vec![self.sh.query_start as f64 / 1000.0; n])),
            "end" => return Ok(Val::Scalar(vec![self.sh.query_end as f64 / 1000.0; n])),
            "range" => return Ok(Val::Scalar(vec![(self.sh.query_end - self.sh.query_start) as f64 / 1000.0; n])),
            "step" => {
                let step = if self.sh.query_start == self.sh.query_end { 0.0 } else { self.interval as f64 / 1000.0 };
                return Ok(Val::Scalar(vec![step; n]));
            }
            "vector" => {
                let v = self.eval_scalar(args[0])?;
                let points: Vec<Sample> = v.iter().enumerate().map(|(i, &v)| Sample { t: self.ts(i), v }).collect();
                self.sh.hold(points.len())?;
                return Ok(Val::Vector(vec![StepSeries {
                    labels: Labels::empty(),
                    drop_name: false,
                    points,
                    histograms: Vec::new(),
                }]));
            }
            "scalar" => {
                let series = self.eval_vector(args[0])?;
                let mut cur = StepCursor::new(series.len());
                let mut out = vec![f64::NAN; n];
                for (step, slot) in out.iter_mut().enumerate() {
                    let t = self.ts(step);
                    let mut found = None;
                    let mut count = 0;
                    for i in 0..series.len() {
                        if let Some(v) = cur.value_at(&series, i, t) {
                            count += 1;
                            found = Some(v);
                        }
                    }
                    if count == 1 {
                        *slot = found.unwrap_or(f64::NAN);
                    }
                }
                return Ok(Val::Scalar(out));
            }
            "timestamp" => return self.eval_timestamp(args[0]),
            "label_replace" => return self.eval_label_replace(&args),
            "info" => return self.eval_info(&args),
            "label_join" => return self.eval_label_join(&args),
            "absent" => return self.eval_absent(args[0]),
            "absent_over_time" => return self.eval_absent_over_time(args[0]),
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
                return self.eval_sort(call_expr, name, &args);
            }
            "histogram_quantile" => return self.eval_histogram_quantile(&args),
            "histogram_quantiles" => {
                let label = self.eval_string(args[1])?;
                return self.eval_histogram_quantiles(args[0], &args[2..], Some(&label));
            }
            "min_of" | "max_of" => {
                let a = self.eval_scalar(args[0])?;
                let b = self.eval_scalar(args[1])?;
                let f = if name == "min_of" { go_min } else { go_max };
                return Ok(Val::Scalar(a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect()));
            }
            "histogram_fraction" => return self.eval_histogram_fraction(&args),
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
                let p = super::native::HistogramProperty::from_name(name).ok_or_else(|| unsupported(name))?;
                return self.eval_histogram_property(p, args[0]);
            }
            "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute" | "month" | "year"
                if args.is_empty() =>
            {
                let f = MathFunction::from_name(name).ok_or_else(|| unsupported(name))?;
                let points: Vec<Sample> = (0..n)
                    .filter_map(|i| {
                        let t = self.ts(i);
                        f.date_at(t / 1000).map(|v| Sample { t, v })
                    })
                    .collect();
                return Ok(Val::Vector(vec![StepSeries {
                    labels: Labels::empty(),
                    drop_name: false,
                    points,
                    histograms: Vec::new(),
                }]));
            }
            _ => {}
        }
        if let Some(f) = RangeFunction::from_name(name) {
            return self.eval_range_function(c, f, &args);
        }
        if let Some(f) = MathFunction::from_name(name) {
            return self.eval_math(f, &args);
        }
        Err(unsupported(name))
    }

    /// Evaluates an argument that must be a scalar.
    pub(crate) fn eval_scalar(&self, e: &Expr) -> Result<Vec<f64>, Error> {
        match self.eval(e)? {
            Val::Scalar(v) => Ok(v),
            other => Err(Error::InvalidQuery(format!("expected scalar, got {}", other.type_name()))),
        }
    }

    /// Evaluates an argument that must be an instant vector.
    pub(crate) fn eval_vector(&self, e: &Expr) -> Result<Vec<StepSeries>, Error> {
        match self.eval(e)? {
            Val::Vector(v) => Ok(v),
            other => Err(Error::InvalidQuery(format!("expected instant vector, got {}", other.type_name()))),
        }
    }

    fn eval_string(&self, e: &Expr) -> Result<String, Error> {
        match unparen(e) {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            _ => Err(Error::InvalidQuery("expected string literal".into())),
        }
    }

    /// Element-wise functions; the arguments after the vector are scalars.
    fn eval_math(&self, f: MathFunction, args: &[&Expr]) -> Result<Val, Error> {
        let mut series = self.eval_vector(args[0])?;
        let scalars: Vec<Vec<f64>> = args[1..].iter().map(|a| self.eval_scalar(a)).collect::<Result<_, _>>()?;
        let mut argv = vec![0.0; scalars.len()];
        for s in &mut series {
            self.mark_drop_name(s);
            // Element-wise math reads floats only (Prometheus skips
            // histogram samples without an annotation).
            s.histograms.clear();
            let mut kept = 0;
            for i in 0..s.points.len() {
                let p = s.points[i];
                let step = self.step_of(p.t);
                for (slot, vals) in argv.iter_mut().zip(&scalars) {
                    *slot = vals[step];
                }
                if let Some(v) = f.apply(p.v, &argv) {
                    s.points[kept] = Sample { t: p.t, v };
                    kept += 1;
                }
            }
            s.points.truncate(kept);
        }
        series.retain(|s| !s.points.is_empty());
        self.check_unique_unless_delayed(series).map(Val::Vector)
    }

    /// Prometheus fails right away when a function's output has two series
    /// with the same labels, unless name removal is delayed.
    pub(crate) fn check_unique_unless_delayed(&self, series: Vec<StepSeries>) -> Result<Vec<StepSeries>, Error> {
        if self.sh.delayed_name_removal() {
            return Ok(series);
        }
        merge_same_labels(series)
    }

    fn eval_timestamp(&self, arg: &Expr) -> Result<Val, Error> {
        let mut series = if let Expr::VectorSelector(vs) = arg {
            self.eval_vector_selector_with(vs, true)?
        } else {
            let mut s = self.eval_vector(arg)?;
            for x in &mut s {
                for p in &mut x.points {
                    p.v = p.t as f64 / 1000.0;
                }
                // A histogram's timestamp is a float like any other.
                if !x.histograms.is_empty() {
                    x.points.extend(x.histograms.drain(..).map(|h| Sample { t: h.t, v: h.t as f64 / 1000.0 }));
                    x.points.sort_by_key(|p| p.t);
                }
            }
            s
        };
        for s in &mut series {
            self.mark_drop_name(s);
        }
        self.check_unique_unless_delayed(series).map(Val::Vector)
    }

    fn eval_label_replace(&self, args: &[&Expr]) -> Result<Val, Error> {
        let dst = self.eval_string(args[1])?;
        let repl = self.eval_string(args[2])?;
        let src = self.eval_string(args[3])?;
        let re_str = self.eval_string(args[4])?;
        let re = regex::Regex::new(&format!("^(?s:{})$", crate::regex_compat::ascii_perl_classes(&re_str)))
            .map_err(|_| Error::InvalidQuery(format!("invalid regular expression in label_replace(): {re_str}")))?;
        if dst.is_empty() || !self.string_literal_is_utf8(args[1]) {
            return Err(Error::InvalidQuery(format!("invalid destination label name in label_replace(): {dst}")));
        }
        let mut series = self.eval_vector(args[0])?;
        let mut cache: HashMap<Labels, Labels> = HashMap::new();
        for s in &mut series {
            let value = s.labels.get(&src).unwrap_or("");
            let Some(caps) = re.captures(value) else { continue };
            let new = match cache.get(&s.labels) {
                Some(l) => l.clone(),
                None => {
                    // Every `$` of the replacement adds at most one capture,
                    // and a capture is at most the whole source value.
                    let most = repl.len().saturating_add(repl.matches('$').count().saturating_mul(value.len()));
                    self.check_label_value("label_replace", most)?;
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    self.sh.hold(res.len().div_ceil(LABEL_BYTES_PER_SAMPLE))?;
                    let l = s.labels.with(&dst, &res).map_err(|e| Error::InvalidQuery(e.to_string()))?;
                    cache.insert(s.labels.clone(), l.clone());
                    l
                }
            };
            s.labels = new;
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        merge_same_labels(series).map(Val::Vector)
    }

    fn eval_label_join(&self, args: &[&Expr]) -> Result<Val, Error> {
        let dst = self.eval_string(args[1])?;
        let sep = self.eval_string(args[2])?;
        let srcs: Vec<String> = args[3..].iter().map(|a| self.eval_string(a)).collect::<Result<_, _>>()?;
        if dst.is_empty() || !self.string_literal_is_utf8(args[1]) {
            return Err(Error::InvalidQuery(format!("invalid destination label name in label_join(): {dst}")));
        }
        for (a, src) in args[3..].iter().zip(&srcs) {
            if !self.string_literal_is_utf8(a) {
                return Err(Error::InvalidQuery(format!("invalid source label name in label_join(): {src}")));
            }
        }
        let mut series = self.eval_vector(args[0])?;
        for s in &mut series {
            let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
            let len = joined.iter().map(|v| v.len()).fold(0usize, usize::saturating_add);
            let len = len.saturating_add(sep.len().saturating_mul(joined.len().saturating_sub(1)));
            self.check_label_value("label_join", len)?;
            self.sh.hold(len.div_ceil(LABEL_BYTES_PER_SAMPLE))?;
            let joined = joined.join(&sep);
            s.labels = s.labels.with(&dst, &joined).map_err(|e| Error::InvalidQuery(e.to_string()))?;
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
        merge_same_labels(series).map(Val::Vector)
    }

    /// Fails if a label value `len` bytes long, made by `func`, is longer
    /// than [`MAX_LABEL_VALUE_BYTES`].
    fn check_label_value(&self, func: &str, len: usize) -> Result<(), Error> {
        if len > MAX_LABEL_VALUE_BYTES {
            return Err(Error::Execution(format!(
                "{func}: the resulting label value of {len} bytes exceeds the limit of {MAX_LABEL_VALUE_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Whether a string literal, as Go would decode it from the query text,
    /// is valid UTF-8. The parser hands us Rust strings, in which `"\xff"`
    /// has become the valid character U+00FF; Go keeps the single byte 0xFF,
    /// which is not a valid label name.
    fn string_literal_is_utf8(&self, e: &Expr) -> bool {
        self.string_literal_bytes_if_not_utf8(e).is_none()
    }

    /// The bytes Go would decode string literal `e` to, when they are not
    /// valid UTF-8 (see [`Evaluator::string_literal_is_utf8`]).
    pub(crate) fn string_literal_bytes_if_not_utf8(&self, e: &Expr) -> Option<Vec<u8>> {
        let pos = self.sh.position(e)?;
        let query = self.sh.ctx.query;
        let start = byte_offset(query, pos.line, pos.column)?;
        go_unquote_bytes(&query[start..]).filter(|bytes| std::str::from_utf8(bytes).is_err())
    }

    /// `absent(v)`: 1 at the steps where `v` has no series.
    fn eval_absent(&self, arg: &Expr) -> Result<Val, Error> {
        let series = self.eval_vector(arg)?;
        let n = self.nsteps();
        let mut present = vec![false; n];
        for s in &series {
            for p in &s.points {
                present[self.step_of(p.t)] = true;
            }
            for h in &s.histograms {
                present[self.step_of(h.t)] = true;
            }
        }
        let points: Vec<Sample> = (0..n).filter(|&i| !present[i]).map(|i| Sample { t: self.ts(i), v: 1.0 }).collect();
        if points.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        Ok(Val::Vector(vec![StepSeries {
            labels: absent_labels(arg),
            drop_name: false,
            points,
            histograms: Vec::new(),
        }]))
    }

    fn eval_absent_over_time(&self, arg: &Expr) -> Result<Val, Error> {
        let n = self.nsteps();
        let mut present = vec![false; n];
        let (range, offset, at, inner) = match arg {
            Expr::MatrixSelector(ms) => (duration_ms(&ms.range), offset_ms(&ms.vs.offset), self.at_ms(&ms.vs.at), None),
            Expr::Subquery(sq) => (duration_ms(&sq.range), offset_ms(&sq.offset), self.at_ms(&sq.at), Some(sq)),
            _ => return Err(Error::InvalidQuery("absent_over_time expects a range vector".into())),
        };
        let mut mark = |samples: &[Sample]| {
            self.for_each_window(samples, range, offset, at, |step, _, _, _, _| present[step] = true)
        };
        match (arg, inner) {
            (Expr::MatrixSelector(ms), _) => {
                let (lo, hi) = self.window_bounds(range, offset, at);
                let mut buf = Vec::new();
                let mut hbuf = Vec::new();
                for mut s in self.select(&ms.vs, lo + 1, hi)? {
                    self.sh.tick()?;
                    if s.samples.has_histograms() {
                        let read = load_mixed_samples(&mut s, &mut buf, &mut hbuf, true)?;
                        self.sh.count_read(read);
                        // Only the times matter: histograms join as samples.
                        buf.extend(hbuf.iter().map(|h| Sample { t: h.t, v: 0.0 }));
                        buf.sort_by_key(|p| p.t);
                    } else {
                        self.load(&mut s, &mut buf, true)?;
                    }
                    mark(&buf)?;
                }
            }
            (_, Some(sq)) => {
                let (series, _) = self.eval_subquery(sq)?;
                for s in &series {
                    mark(&s.points)?;
                    if !s.histograms.is_empty() {
                        let times: Vec<Sample> = s.histograms.iter().map(|h| Sample { t: h.t, v: 0.0 }).collect();
                        mark(&times)?;
                    }
                }
            }
            _ => unreachable!("checked above"),
        }
        let points: Vec<Sample> = (0..n).filter(|&i| !present[i]).map(|i| Sample { t: self.ts(i), v: 1.0 }).collect();
        if points.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        Ok(Val::Vector(vec![StepSeries {
            labels: absent_labels(arg),
            drop_name: true,
            points,
            histograms: Vec::new(),
        }]))
    }

    /// The oldest exclusive window start and newest inclusive window end.
    fn window_bounds(&self, range: i64, offset: i64, at: Option<i64>) -> (i64, i64) {
        match at {
            Some(a) => (a - offset - range, a - offset),
            None => (self.start - offset - range, self.end - offset),
        }
    }

    fn eval_sort(&self, call_expr: &Expr, name: &str, args: &[&Expr]) -> Result<Val, Error> {
        if !self.is_instant() {
            self.sh.warn("sort is ineffective for range queries since results are always ordered by labels", call_expr);
        }
        let mut series = self.eval_vector(args[0])?;
        if name == "sort" || name == "sort_desc" {
            // Prometheus sorts floats only: histogram samples are dropped.
            for s in &mut series {
                s.histograms.clear();
            }
            series.retain(|s| !s.points.is_empty());
        }
        if !self.is_instant() {
            return Ok(Val::Vector(series));
        }
        let value = |s: &StepSeries| s.points.first().map_or(f64::NAN, |p| p.v);
        match name {
            "sort" => series.sort_by(|a, b| asc_nan_last(value(a), value(b))),
            "sort_desc" => series.sort_by(|a, b| desc_nan_last(value(a), value(b))),
            _ => {
                let names: Vec<String> = args[1..].iter().map(|a| self.eval_string(a)).collect::<Result<_, _>>()?;
                let desc = name == "sort_by_label_desc";
                series.sort_by(|a, b| {
                    for n in &names {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        let o = natural_cmp(x, y);
                        if o != std::cmp::Ordering::Equal {
                            return if desc { o.reverse() } else { o };
                        }
                    }
                    let o = a.labels.cmp(&b.labels);
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                });
            }
        }
        Ok(Val::Vector(series))
    }

    /// Groups the histograms of `series` per step and calls `f` with each:
    /// classic ones as the buckets of the series that differ only in `le`,
    /// native ones one by one (Prometheus' `resetHistograms`).
    fn per_histogram(
        &self,
        series: &[StepSeries],
        arg: &Expr,
        f: impl FnMut(HistInput<'_>, &Labels, i64, usize) -> Result<Option<f64>, Error>,
    ) -> Result<Vec<StepSeries>, Error> {
        self.per_histogram_variants(series, arg, None, f)
    }

    /// Like [`per_histogram`](Self::per_histogram), but calls `f` once per
    /// variant (index into `variants.1`) and labels each output with
    /// `variants.0 = variants.1[i]`.
    ///
    /// At a step where a native histogram has the labels of a classic
    /// histogram's buckets (without `le`), neither is evaluated and the
    /// "mix of classic and native histograms" warning is given. Native
    /// histograms come first in each step's output, as in Prometheus.
    fn per_histogram_variants(
        &self,
        series: &[StepSeries],
        arg: &Expr,
        variants: Option<(&str, &[String])>,
        mut f: impl FnMut(HistInput<'_>, &Labels, i64, usize) -> Result<Option<f64>, Error>,
    ) -> Result<Vec<StepSeries>, Error> {
        let delayed = self.sh.delayed_name_removal();
        // Group float series by labels without `le`; remember each one's bound.
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut group_labels: Vec<Labels> = Vec::new();
        let mut member: Vec<Option<(usize, f64)>> = Vec::with_capacity(series.len());
        for s in series {
            if s.points.is_empty() {
                member.push(None);
                continue;
            }
            let le = s.labels.get("le").unwrap_or("");
            match parse_go_float(le) {
                Some(bound) => {
                    let key = s.labels.without(&["le"]);
                    let g = *groups.entry(key.clone()).or_insert_with(|| {
                        group_labels.push(key);
                        group_labels.len() - 1
                    });
                    member.push(Some((g, bound)));
                }
                None => {
                    let name = if delayed { s.labels.metric_name().unwrap_or("") } else { "" };
                    let mut msg = format!("bucket label \"le\" is missing or has a malformed value of {le:?}");
                    if !name.is_empty() {
                        msg.push_str(&format!(" for metric name {name:?}"));
                    }
                    self.sh.warn(msg, arg);
                    member.push(None);
                }
            }
        }
        // Series holding native histograms, with the classic group of the
        // same labels if there is one, and a cursor into their points.
        let natives: Vec<(usize, Option<usize>)> = series
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.histograms.is_empty())
            .map(|(i, s)| (i, groups.get(&s.labels).copied()))
            .collect();
        let mut native_pos = vec![0usize; natives.len()];
        let native_labels: Vec<Labels> = natives
            .iter()
            .map(|&(i, _)| {
                let mut l = series[i].labels.clone();
                if !delayed {
                    drop_metric_name(&mut l);
                }
                l
            })
            .collect();
        let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); group_labels.len()];
        let mut cur = StepCursor::new(series.len());
        let mut out = SeriesBuilder::new();
        let nvariants = variants.map_or(1, |(_, v)| v.len());
        let labelled = |labels: &Labels, variant: usize| -> Result<Labels, Error> {
            match variants {
                Some((name, values)) => {
                    labels.with(name, &values[variant]).map_err(|e| Error::InvalidQuery(e.to_string()))
                }
                None => Ok(labels.clone()),
            }
        };
        for step in 0..self.nsteps() {
            let t = self.ts(step);
            for b in &mut buckets {
                b.clear();
            }
            for (i, m) in member.iter().enumerate() {
                let Some((g, bound)) = *m else { continue };
                if let Some(v) = cur.value_at(series, i, t) {
                    buckets[g].push(Bucket { upper_bound: bound, count: v });
                }
            }
            for (k, &(i, g)) in natives.iter().enumerate() {
                let hs = &series[i].histograms;
                let p = &mut native_pos[k];
                while *p < hs.len() && hs[*p].t < t {
                    *p += 1;
                }
                let Some(h) = hs.get(*p).filter(|h| h.t == t) else { continue };
                if let Some(g) = g.filter(|&g| !buckets[g].is_empty()) {
                    let name = if delayed { series[i].labels.metric_name().unwrap_or("") } else { "" };
                    let mut msg = "vector contains a mix of classic and native histograms".to_string();
                    if !name.is_empty() {
                        msg.push_str(&format!(" for metric name {name:?}"));
                    }
                    self.sh.warn(msg, arg);
                    buckets[g].clear();
                    continue;
                }
                for variant in 0..nvariants {
                    if let Some(v) = f(HistInput::Native(&h.h), &series[i].labels, t, variant)? {
                        out.push(&labelled(&native_labels[k], variant)?, true, t, v)?;
                    }
                }
            }
            for (g, b) in buckets.iter_mut().enumerate() {
                if b.is_empty() {
                    continue;
                }
                for variant in 0..nvariants {
                    if let Some(v) = f(HistInput::Classic(b), &group_labels[g], t, variant)? {
                        let mut labels = group_labels[g].clone();
                        if !delayed {
                            drop_metric_name(&mut labels);
                        }
                        out.push(&labelled(&labels, variant)?, true, t, v)?;
                    }
                }
            }
        }
        Ok(out.finish())
    }

    fn eval_histogram_quantile(&self, args: &[&Expr]) -> Result<Val, Error> {
        self.eval_histogram_quantiles(args[1], &[args[0]], None)
    }

    /// `histogram_quantile(φ, v)`, and `histogram_quantiles(v, "label", φ…)`
    /// which labels each φ's output with `label`.
    fn eval_histogram_quantiles(&self, vector: &Expr, phis: &[&Expr], label: Option<&str>) -> Result<Val, Error> {
        let qs: Vec<Vec<f64>> = phis.iter().map(|e| self.eval_scalar(e)).collect::<Result<_, _>>()?;
        let series = self.eval_vector(vector)?;
        // Prometheus warns about φ at every step, with or without data.
        for (q, e) in qs.iter().zip(phis) {
            for &phi in q {
                if phi.is_nan() || !(0.0..=1.0).contains(&phi) {
                    self.sh.warn(format!("quantile value should be between 0 and 1, got {}", go_g(phi)), e);
                }
            }
        }
        let args = [phis[0], vector];
        let names: Vec<String> = qs.iter().map(|q| format_openmetrics_float(q[0])).collect();
        let variants = label.map(|l| (l, names.as_slice()));
        let delayed = self.sh.delayed_name_removal();
        let mut monotonicity: std::collections::BTreeMap<String, MonotonicityFix> = Default::default();
        let out = self.per_histogram_variants(&series, vector, variants, |input, labels, t, variant| {
            let phi = qs[variant][self.step_of(t)];
            let b = match input {
                HistInput::Native(h) => {
                    let r = native_histogram::histogram_quantile(phi, h);
                    let name = if delayed { labels.metric_name().unwrap_or("") } else { "" };
                    if r.nan_result {
                        self.sh.info(
                            with_metric_name("input to histogram_quantile has NaN observations, result is NaN", name),
                            vector,
                        );
                    }
                    if r.nan_skew {
                        self.sh.info(
                            with_metric_name(
                                "input to histogram_quantile has NaN observations, result is skewed higher",
                                name,
                            ),
                            vector,
                        );
                    }
                    return Ok(Some(r.value));
                }
                HistInput::Classic(b) => b,
            };
            let r = bucket_quantile(phi, b);
            if r.forced_monotonicity {
                let name = if delayed { labels.metric_name().unwrap_or("") } else { "" };
                let m = monotonicity.entry(name.to_string()).or_insert(MonotonicityFix {
                    min_t: t,
                    max_t: t,
                    min_bucket: r.min_bucket,
                    max_bucket: r.max_bucket,
                    max_diff: r.max_diff,
                    count: 0,
                });
                m.min_t = m.min_t.min(t);
                m.max_t = m.max_t.max(t);
                m.min_bucket = m.min_bucket.min(r.min_bucket);
                m.max_bucket = m.max_bucket.max(r.max_bucket);
                m.max_diff = m.max_diff.max(r.max_diff);
                m.count += 1;
            }
            Ok(Some(r.value))
        })?;
        for (name, m) in monotonicity {
            let mut msg = "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".to_string();
            if !name.is_empty() {
                msg.push_str(&format!(" for metric name {name:?}"));
            }
            msg.push_str(&format!(
                ", from buckets {} to {}, with a max diff of {}, over {} samples from {} to {}",
                go_g(m.min_bucket),
                go_g(m.max_bucket),
                go_g_precision(m.max_diff, 2),
                m.count,
                rfc3339_utc(m.min_t / 1000),
                rfc3339_utc(m.max_t / 1000)
            ));
            self.sh.info(msg, args[1]);
        }
        Ok(Val::Vector(out))
    }

    fn eval_histogram_fraction(&self, args: &[&Expr]) -> Result<Val, Error> {
        let lower = self.eval_scalar(args[0])?;
        let upper = self.eval_scalar(args[1])?;
        let series = self.eval_vector(args[2])?;
        let delayed = self.sh.delayed_name_removal();
        let out = self.per_histogram(&series, args[2], |input, labels, t, _| {
            let step = self.step_of(t);
            Ok(Some(match input {
                HistInput::Classic(b) => bucket_fraction(lower[step], upper[step], b),
                HistInput::Native(h) => {
                    let r = native_histogram::histogram_fraction(lower[step], upper[step], h);
                    if r.nan_observations {
                        let name = if delayed { labels.metric_name().unwrap_or("") } else { "" };
                        self.sh.info(
                            with_metric_name(
                                "input to histogram_fraction has NaN observations, which are excluded from all fractions",
                                name,
                            ),
                            args[2],
                        );
                    }
                    r.value
                }
            }))
        })?;
        Ok(Val::Vector(out))
    }

    fn eval_range_function(&self, c: &Call, f: RangeFunction, args: &[&Expr]) -> Result<Val, Error> {
        let mut out = Vec::new();
        self.stream_range_function(c, f, args, LabelUse::All, &mut |s| {
            self.sh.hold(s.points.len() + super::series::histogram_points_weight(&s.histograms))?;
            out.push(s);
            Ok(())
        })?;
        Ok(Val::Vector(out))
    }

    /// Evaluates a function over a range vector and hands each output series
    /// to `sink` as soon as it is computed, so a consumer that folds series
    /// (an aggregation) never holds them all. With [`LabelUse::Only`] the
    /// sink reads only the labels named (none of them the metric name or a
    /// metadata label), so an output series may carry just those.
    pub(crate) fn stream_range_function(
        &self,
        c: &Call,
        f: RangeFunction,
        args: &[&Expr],
        labels_used: LabelUse<'_>,
        sink: &mut dyn FnMut(StepSeries) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let name = c.func.name;
        let Some(mi) = args.iter().position(|a| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_))) else {
            return Err(Error::InvalidQuery(format!("{name}() expects a range vector argument")));
        };
        let range_arg = match args[mi] {
            Expr::MatrixSelector(ms) => RangeArg::Selector(ms),
            Expr::Subquery(sq) => RangeArg::Subquery(sq),
            _ => unreachable!("checked above"),
        };
        let scalars: Vec<Vec<f64>> = args
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != mi)
            .map(|(_, a)| self.eval_scalar(a))
            .collect::<Result<_, _>>()?;
        if f == RangeFunction::QuantileOverTime {
            if let Some(phi) = scalars[0].iter().find(|p| p.is_nan() || !(0.0..=1.0).contains(*p)) {
                self.sh.warn(format!("quantile value should be between 0 and 1, got {}", go_g(*phi)), args[0]);
            }
        }
        let keeps_name = matches!(f, RangeFunction::LastOverTime | RangeFunction::FirstOverTime);
        let grid = self.grid();
        let ctx = self.sh.ctx;
        let interrupt = || ctx.check_interrupt();
        // Computes one series' output points; pure, so workers can run it.
        let smoothing = f == RangeFunction::DoubleExponentialSmoothing;
        let compute = |samples: &[Sample], range: i64, offset: i64, at: Option<i64>| -> Result<Vec<Sample>, Error> {
            let mut argv = vec![0.0; scalars.len()];
            // At most one point per step whose window can hold a sample:
            // sized once instead of grown by doubling (seven reallocations
            // and copies per series over 241 steps).
            // (A buffer a folding consumer handed back, if there is one.)
            let mut points = ctx.spare_points.take(grid.max_windows(samples, range));
            let mut err = None;
            if f.uses_counter_resets() && grid.nsteps > 1 {
                // Windows of neighbouring steps overlap: list the series'
                // resets once and add, per window, those whose both samples
                // lie inside it (in the order a scan would meet them).
                let mut resets = Vec::new();
                counter_resets(samples, &mut resets);
                let mut first = 0usize;
                grid.for_each_window_at(samples, range, offset, at, &interrupt, |_, ts, lo, hi, start, end| {
                    while first < resets.len() && resets[first].0 <= lo {
                        first += 1;
                    }
                    let inside = resets[first..].iter().take_while(|r| r.0 < hi).map(|r| r.1);
                    let w = RangeWindow { samples: &samples[lo..hi], eval_t: ts, range_start: start, range_end: end };
                    if let Some(v) = f.eval_with_resets(&w, inside) {
                        points.push(Sample { t: ts, v });
                    }
                })?;
                return Ok(points);
            }
            grid.for_each_window(samples, range, offset, at, &interrupt, |step, ts, window, start, end| {
                for (slot, vals) in argv.iter_mut().zip(&scalars) {
                    *slot = vals[step];
                }
                // Like Prometheus, the factors are only checked where there is data.
                if smoothing && err.is_none() {
                    if let Err(e) = validate_smoothing_args(argv[0], argv[1]) {
                        err = Some(Error::InvalidQuery(e));
                    }
                }
                let w = RangeWindow { samples: window, eval_t: ts, range_start: start, range_end: end };
                if let Some(v) = f.eval(&w, &argv) {
                    points.push(Sample { t: ts, v });
                }
            })?;
            err.map_or(Ok(points), Err)
        };
        // One series holding histograms (rarely taken: floats-only series
        // never come here): floats and histograms per window.
        let compute_mixed = |floats: &[Sample],
                             hists: &[HistogramPoint],
                             range: i64,
                             offset: i64,
                             at: Option<i64>|
         -> Result<MixedOut, Error> {
            let mut out = MixedOut::default();
            let mut argv = vec![0.0; scalars.len()];
            let mut err = None;
            for_each_mixed_window(grid, floats, hists, (range, offset, at), &interrupt, |step, w| {
                for (slot, vals) in argv.iter_mut().zip(&scalars) {
                    *slot = vals[step];
                }
                if smoothing && err.is_none() {
                    if let Err(e) = validate_smoothing_args(argv[0], argv[1]) {
                        err = Some(Error::InvalidQuery(e));
                    }
                }
                match f.eval_mixed(w, &argv, &mut out.notes) {
                    Some(MixedValue::Float(v)) => out.points.push(Sample { t: w.eval_t, v }),
                    Some(MixedValue::Histogram(h)) => out.histograms.push(HistogramPoint { t: w.eval_t, h }),
                    None => {}
                }
            })?;
            err.map_or(Ok(out), Err)
        };
        // Where a range function's annotations point: its range argument
        // (Prometheus points `quantile_over_time`'s at its first argument).
        let note_at = if f == RangeFunction::QuantileOverTime { args[0] } else { args[mi] };
        // Without delayed name removal, two outputs with the same labels are
        // an error, as in Prometheus. Series selected with one metric name
        // cannot collide: the storage holds each label set once, and
        // removing the same name from distinct sets keeps them distinct.
        let one_name = matches!(range_arg, RangeArg::Selector(ms) if selects_one_metric_name(&ms.vs));
        let check_unique = !self.sh.delayed_name_removal() && !one_name;
        // The output label sets seen so far, by their bytes: no clone and no
        // SipHash per series (see `KeyIndex`).
        let mut seen_labels = super::key_index::KeyIndex::new();
        let counter_check = matches!(f, RangeFunction::Rate | RangeFunction::Increase);
        let delayed = self.sh.delayed_name_removal();
        // An output's labels as its consumer gets them, and the metric name
        // to report as perhaps not a counter: pure, so workers can run it
        // (on the calling thread it was serial work between the workers'
        // batches). A consumer that reads only some labels, none of them a
        // metadata label, gets the labels as selected (their name needs no
        // removal: it is not read), or none if it reads none; unless the
        // duplicate check needs the whole edited set. (A copy of just the
        // labels read was an allocation per series on a worker and a free
        // on the consumer's thread, both contending for the allocator.)
        let relabel = |labels: &mut Labels, drop: bool| -> Option<String> {
            let not_counter = if counter_check { not_counter_name(labels) } else { None };
            match labels_used {
                LabelUse::Only([]) if !check_unique => *labels = Labels::empty(),
                LabelUse::Only(_) if !check_unique => {}
                _ => {
                    if drop && !delayed {
                        drop_metric_name(labels);
                    }
                }
            }
            not_counter
        };
        let mut emit_mixed = |labels: Labels, drop: bool, out: MixedOut, not_counter: Option<String>| {
            let MixedOut { points, histograms, notes, metric } = out;
            for n in notes.iter() {
                let msg = n.message(&metric);
                if n.is_warning() {
                    self.sh.warn(msg, note_at);
                } else {
                    self.sh.info(msg, note_at);
                }
            }
            if points.is_empty() && histograms.is_empty() {
                ctx.spare_points.give(points);
                return Ok(());
            }
            // Prometheus' counter hint is only about float outputs.
            let not_counter = if points.is_empty() { None } else { not_counter };
            if let Some(metric) = not_counter {
                self.sh.info(
                    format!(
                        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
                    ),
                    args[mi],
                );
            }
            if check_unique && !seen_labels.find_or_insert(labels.encoded()).1 {
                return Err(Error::Execution(DUPLICATE_LABELSET.into()));
            }
            sink(StepSeries { labels, drop_name: drop, points, histograms })
        };
        match range_arg {
            RangeArg::Selector(ms) => {
                let range = duration_ms(&ms.range);
                let offset = offset_ms(&ms.vs.offset);
                let at = self.at_ms(&ms.vs.at);
                let (lo, hi) = self.window_bounds(range, offset, at);
                let extreme = extreme_window(f, grid, range, offset, at);
                let drop = !keeps_name;
                // One step, no scalar argument, every sample read: the
                // function's one window per series is evaluated inside the
                // storage's select, where the samples are (same samples,
                // same code, same order: the same answer).
                let pushable = ctx.opts.push_down_windows
                    && grid.nsteps == 1
                    && extreme.is_none()
                    && scalars.is_empty()
                    && !smoothing;
                if pushable {
                    if let Some(sel) = self.select_windows(&ms.vs, lo + 1, hi, f, grid, (range, offset, at))? {
                        self.sh.count_read(sel.samples_read);
                        let mut outputs = sel.points;
                        // The outputs' label edits (the metric name dropped:
                        // a new label set per series) on the worker threads,
                        // as the general path does them; then each is handed
                        // to the sink in order.
                        let threads = ctx.opts.parallelism.max(1).min(outputs.len() / PUSHED_RELABEL_MIN_SERIES).max(1);
                        let notes = relabel_all(&mut outputs, threads, &|labels| relabel(labels, drop));
                        for ((labels, p), not_counter) in outputs.into_iter().zip(notes) {
                            self.sh.tick()?;
                            let mut points = ctx.spare_points.take(1);
                            points.push(p);
                            emit_mixed(labels, drop, MixedOut::floats(points), not_counter)?;
                        }
                        return Ok(());
                    }
                }
                let selected = self.select(&ms.vs, lo + 1, hi)?;
                let stats_only = self.sh.stats_only(&ms.vs);
                self.map_series(
                    selected,
                    |s, buf| {
                        if s.samples.has_histograms() {
                            let mut hbuf = Vec::new();
                            let read = load_mixed_samples(s, buf, &mut hbuf, true)?;
                            if stats_only {
                                super::histogram_stats::to_stats(&mut hbuf);
                            }
                            let hists: Vec<HistogramPoint> =
                                hbuf.iter().map(|h| HistogramPoint { t: h.t, h: h.h.to_float() }).collect();
                            let mut out = compute_mixed(buf, &hists, range, offset, at)?;
                            if !out.notes.is_empty() {
                                out.metric = s.labels.metric_name().unwrap_or("").to_string();
                            }
                            let has_output = !out.points.is_empty() || !out.histograms.is_empty();
                            let not_counter = if has_output { relabel(&mut s.labels, drop) } else { None };
                            return Ok((read, (out, not_counter)));
                        }
                        let read = match extreme {
                            Some((e, mint, maxt)) => load_extreme_samples(s, buf, e, mint, maxt)?,
                            None => load_samples(s, buf, true)?,
                        };
                        let points = compute(buf, range, offset, at)?;
                        let not_counter = if points.is_empty() { None } else { relabel(&mut s.labels, drop) };
                        Ok((read, (MixedOut::floats(points), not_counter)))
                    },
                    |labels, read, (out, not_counter)| {
                        self.sh.count_read(read);
                        emit_mixed(labels, drop, out, not_counter)
                    },
                )?;
            }
            RangeArg::Subquery(sq) => {
                let range = duration_ms(&sq.range);
                let offset = offset_ms(&sq.offset);
                let at = self.at_ms(&sq.at);
                let (series, held) = self.eval_subquery(sq)?;
                for mut s in series {
                    self.sh.tick()?;
                    // As in Prometheus, explicit reset hints do not survive
                    // a subquery: it may skip the sample with the reset, or
                    // return it several times.
                    for h in &mut s.histograms {
                        if matches!(
                            h.h.counter_reset_hint,
                            CounterResetHint::CounterReset | CounterResetHint::NotCounterReset
                        ) {
                            h.h.counter_reset_hint = CounterResetHint::Unknown;
                        }
                    }
                    let out = if s.histograms.is_empty() {
                        MixedOut::floats(compute(&s.points, range, offset, at)?)
                    } else {
                        let mut out = compute_mixed(&s.points, &s.histograms, range, offset, at)?;
                        if !out.notes.is_empty() {
                            out.metric = s.labels.metric_name().unwrap_or("").to_string();
                        }
                        out
                    };
                    if out.points.is_empty() && out.histograms.is_empty() {
                        emit_mixed(s.labels, false, out, None)?;
                        continue;
                    }
                    let drop = !keeps_name || s.drop_name;
                    let mut labels = s.labels;
                    let not_counter = relabel(&mut labels, drop);
                    emit_mixed(labels, drop, out, not_counter)?;
                }
                self.sh.release(held);
            }
        }
        Ok(())
    }
}

impl Evaluator<'_, '_> {
    /// Range function `f` of the selector `vs` at the single step of
    /// `grid`, evaluated by the storage over each series' samples in
    /// `[mint, maxt]` where they are stored (see
    /// [`crate::SeriesSource::select_windows`]); `window` is the matrix
    /// selector's (range, offset, `@`). Staleness markers are dropped and
    /// the window evaluated exactly as the general path does after
    /// `load_samples`. `None` when the storage has no such path (blocks in
    /// the range, another source) or the selector has several matcher
    /// sets: then the caller selects the series.
    fn select_windows(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        f: RangeFunction,
        grid: StepGrid,
        window: (i64, i64, Option<i64>),
    ) -> Result<Option<crate::storage::WindowSelection>, Error> {
        let sets = super::selector::matcher_sets(vs)?;
        let [set] = &sets[..] else { return Ok(None) };
        let (range, offset, at) = window;
        let no_interrupt = || Ok(());
        let value = |samples: &[Sample]| -> Option<Sample> {
            let mut out = None;
            let mut eval = |samples: &[Sample]| {
                // One step: at most one window. Its errors are interrupts
                // only, and this one never interrupts.
                let _ = grid.for_each_window(samples, range, offset, at, &no_interrupt, |_, ts, w, start, end| {
                    let w = RangeWindow { samples: w, eval_t: ts, range_start: start, range_end: end };
                    out = f.eval(&w, &[]).map(|v| Sample { t: ts, v });
                });
            };
            if samples.iter().any(|p| tidemark_storage::is_stale_nan(p.v)) {
                let live: Vec<Sample> =
                    samples.iter().filter(|p| !tidemark_storage::is_stale_nan(p.v)).copied().collect();
                eval(&live);
            } else {
                eval(samples);
            }
            out
        };
        let Some(r) = self.sh.ctx.source.select_windows(mint, maxt, set, &value) else { return Ok(None) };
        let sel = r.map_err(Error::Storage)?;
        let mut ann = self.sh.annotations.borrow_mut();
        for w in &sel.warnings {
            ann.add(crate::annotations::Annotation::warning(w.clone(), None));
        }
        Ok(Some(sel))
    }
}

/// A range function's output for one series: float and histogram points,
/// the notes raised, and the series' metric name for them (set only when
/// there are notes).
#[derive(Default)]
struct MixedOut {
    points: Vec<Sample>,
    histograms: Vec<HistogramPoint>,
    notes: Notes,
    metric: String,
}

impl MixedOut {
    fn floats(points: Vec<Sample>) -> MixedOut {
        MixedOut { points, ..MixedOut::default() }
    }
}

/// Calls `f(step, window)` for every step whose window `(end - range, end]`
/// (`window` = `(range, offset, at)`; `end` = the step's time or `at`,
/// minus `offset`) holds a float or a
/// histogram; [`StepGrid::for_each_window`] over two sample lists.
fn for_each_mixed_window(
    grid: StepGrid,
    floats: &[Sample],
    hists: &[HistogramPoint],
    window: (i64, i64, Option<i64>),
    interrupt: &(dyn Fn() -> Result<(), Error> + Sync),
    mut f: impl FnMut(usize, &MixedWindow<'_>),
) -> Result<(), Error> {
    let (range, offset, at) = window;
    let (mut flo, mut fhi, mut hlo, mut hhi) = (0usize, 0usize, 0usize, 0usize);
    for step in 0..grid.nsteps {
        if step % 1024 == 1023 {
            interrupt()?;
        }
        let ts = grid.start + step as i64 * grid.interval;
        let end = at.unwrap_or(ts) - offset;
        let start = end - range;
        while fhi < floats.len() && floats[fhi].t <= end {
            fhi += 1;
        }
        while flo < fhi && floats[flo].t <= start {
            flo += 1;
        }
        while hhi < hists.len() && hists[hhi].t <= end {
            hhi += 1;
        }
        while hlo < hhi && hists[hlo].t <= start {
            hlo += 1;
        }
        if flo < fhi || hlo < hhi {
            let w = MixedWindow {
                floats: &floats[flo..fhi],
                histograms: &hists[hlo..hhi],
                eval_t: ts,
                range_start: start,
                range_end: end,
            };
            f(step, &w);
        }
    }
    Ok(())
}

/// Fewest pushed-down outputs per thread that edit their labels on several
/// threads (a label set without its name is an allocation and a copy).
const PUSHED_RELABEL_MIN_SERIES: usize = 2048;

/// Applies `relabel` to every output's labels, on `threads` threads (in
/// contiguous runs), and returns what it said for each, in order.
fn relabel_all(
    outputs: &mut [(Labels, Sample)],
    threads: usize,
    relabel: &(dyn Fn(&mut Labels) -> Option<String> + Sync),
) -> Vec<Option<String>> {
    if threads <= 1 {
        return outputs.iter_mut().map(|(l, _)| relabel(l)).collect();
    }
    let (n, per) = (outputs.len(), outputs.len().div_ceil(threads).max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = outputs
            .chunks_mut(per)
            .map(|part| scope.spawn(move || part.iter_mut().map(|(l, _)| relabel(l)).collect::<Vec<_>>()))
            .collect();
        let mut notes = Vec::with_capacity(n);
        for h in handles {
            notes.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        notes
    })
}

/// Which labels of a function's output series their consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelUse<'a> {
    /// All of them: a series whose name the function drops must arrive
    /// without it.
    All,
    /// Only these, none of them the metric name or a metadata label
    /// (`__type__`, `__unit__`): an aggregation grouping `by` them. A series
    /// may arrive with its labels as selected, its name not removed even
    /// where the function drops it (its `drop_name` says so), or with any
    /// labels but these missing (none at all if there are none).
    Only(&'a [String]),
}

/// The metric name of `labels` if it does not end like a counter's
/// (`_total`, `_sum`, `_count`, `_bucket`): what `rate` and `increase`
/// report as an info annotation.
fn not_counter_name(labels: &Labels) -> Option<String> {
    let metric = labels.metric_name()?;
    if ["_total", "_sum", "_count", "_bucket"].iter().any(|suf| metric.ends_with(suf)) {
        return None;
    }
    Some(metric.to_string())
}

/// Whether every series `vs` selects has the same metric name: one set of
/// matchers (no `or`) with an equality matcher on `__name__` (which a bare
/// metric name before the braces is).
pub(crate) fn selects_one_metric_name(vs: &VectorSelector) -> bool {
    vs.matchers.or_matchers.is_empty()
        && (vs.name.is_some() || vs.matchers.matchers.iter().any(|m| m.name == METRIC_NAME && m.op == ParserOp::Equal))
}

/// For `max_over_time`/`min_over_time` evaluated at a single step, the
/// extreme wanted and the window `[mint, maxt]` (inclusive) of that step:
/// the storage may then read a closed chunk lying wholly inside the window
/// as its stored extreme instead of decoding it, which gives the same
/// answer bit for bit (see `SampleIterator::drain_extreme_into`). `None`
/// for every other function, or when there are several steps (their
/// windows differ, so one chunk's extreme would not serve them all).
fn extreme_window(
    f: RangeFunction,
    grid: StepGrid,
    range: i64,
    offset: i64,
    at: Option<i64>,
) -> Option<(Extreme, i64, i64)> {
    let e = match f {
        RangeFunction::MaxOverTime => Extreme::Max,
        RangeFunction::MinOverTime => Extreme::Min,
        _ => return None,
    };
    if grid.nsteps != 1 {
        return None;
    }
    // The window `for_each_window` gives step 0: `(end - range, end]`.
    let end = at.unwrap_or(grid.start).checked_sub(offset)?;
    let start = end.checked_sub(range)?;
    Some((e, start.checked_add(1)?, end))
}

fn unsupported(name: &str) -> Error {
    Error::InvalidQuery(format!("function \"{name}\" is not supported"))
}

/// Labels for `absent`: the equality matchers of a plain selector argument,
/// except labels matched more than once.
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unparen(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut has: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == ParserOp::Equal && !has.contains(&m.name.as_str()) {
            pairs.retain(|(n, _)| n != &m.name);
            pairs.push((m.name.clone(), m.value.clone()));
            has.push(&m.name);
        } else {
            pairs.retain(|(n, _)| n != &m.name);
        }
    }
    Labels::new(pairs).unwrap_or_default()
}

/// The byte offset of a 1-based line and character column.
fn byte_offset(query: &str, line: usize, column: usize) -> Option<usize> {
    let mut offset = 0;
    for (i, l) in query.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return l.char_indices().nth(column.checked_sub(1)?).map(|(b, _)| offset + b);
        }
        offset += l.len();
    }
    None
}

/// Decodes the quoted string at the start of `text` into the bytes Go's
/// `strconv.Unquote` would produce. `None` if `text` does not start with a
/// well-formed quoted string.
fn go_unquote_bytes(text: &str) -> Option<Vec<u8>> {
    let mut chars = text.chars();
    let quote = chars.next()?;
    if !matches!(quote, '"' | '\'' | '`') {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        if c == quote {
            return Some(out);
        }
        if c != '\\' || quote == '`' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = chars.next()?;
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' | '"' | '\'' => out.push(e as u8),
            'x' => {
                let h: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&h, 16).ok()?);
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&format!("{e}{rest}"), 8).ok()?);
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let h: String = chars.by_ref().take(n).collect();
                let c = char::from_u32(u32::from_str_radix(&h, 16).ok()?)?;
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return None,
        }
    }
    None
}

/// Parses a float the way Go's `strconv.ParseFloat` accepts `le` values.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let t = s.trim_start_matches(['+', '-']);
    let lower = t.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        return s.parse::<f64>().ok();
    }
    if lower.starts_with("0x") {
        return None;
    }
    if !t.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_')) {
        return None;
    }
    s.replace('_', "").parse::<f64>().ok()
}

/// Compares strings with embedded numbers in natural order, as
/// `sort_by_label` does.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_edits_on_threads_keep_every_output_in_place() {
        // Uneven runs (n not a multiple of the threads), one thread, more
        // threads than outputs: every output edited once, in place, and the
        // notes in output order.
        for n in [0usize, 1, 7, 1000] {
            for threads in [1usize, 2, 3, 8] {
                let mut outputs: Vec<(Labels, Sample)> = (0..n)
                    .map(|i| {
                        let name = if i % 3 == 0 { "up".to_string() } else { format!("m_{i}_total") };
                        let l = Labels::new([("__name__", name), ("i", i.to_string())]).unwrap();
                        (l, Sample { t: i as i64, v: i as f64 })
                    })
                    .collect();
                let relabel = |l: &mut Labels| {
                    let note = not_counter_name(l);
                    drop_metric_name(l);
                    note
                };
                let notes = relabel_all(&mut outputs, threads, &relabel);
                assert_eq!(notes.len(), n);
                for (i, ((l, p), note)) in outputs.iter().zip(&notes).enumerate() {
                    assert_eq!(l, &Labels::new([("i", i.to_string())]).unwrap());
                    assert_eq!(p.t, i as i64);
                    assert_eq!(note.is_some(), i % 3 == 0, "{i}");
                }
            }
        }
    }

    #[test]
    fn le_values_parse_like_go() {
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("0.5"), Some(0.5));
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float(""), None);
        assert_eq!(parse_go_float("Hello World"), None);
    }

    #[test]
    fn go_unquote_keeps_raw_bytes() {
        assert_eq!(go_unquote_bytes(r#""\xff" rest"#), Some(vec![0xff]));
        assert_eq!(go_unquote_bytes(r#"'a\n'"#), Some(b"a\n".to_vec()));
        assert_eq!(go_unquote_bytes("`\\x`"), Some(b"\\x".to_vec()));
        assert_eq!(go_unquote_bytes(r#""\u00ff""#), Some("\u{ff}".as_bytes().to_vec()));
        assert_eq!(go_unquote_bytes("no quote"), None);
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        assert_eq!(natural_cmp("a2", "a10"), std::cmp::Ordering::Less);
        assert_eq!(natural_cmp("b", "a"), std::cmp::Ordering::Greater);
    }
}

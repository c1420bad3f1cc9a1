//! Aggregations: sum, avg, min, max, group, count, stddev, stdvar, quantile,
//! count_values, topk, bottomk, limitk and limit_ratio, with `by`/`without`.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use tidemark_storage::{Labels, METRIC_NAME};

use super::aggregate_histogram::{any_histograms, ignored_histogram_msg, HistCell};
use super::call::LabelUse;
use super::key_index::KeyIndex;
use super::selector::Order;
use super::series::{asc_nan_last, desc_nan_last, HistCursor, MixedBuilder, SeriesBuilder, StepCursor};
use super::{Evaluator, StepSeries, Val};
use crate::error::Error;
use crate::functions::kahan::kahan_sum_inc;
use crate::functions::quantile::quantile;
use crate::go_fmt::{format_float_f, go_g};
use crate::value::HistogramPoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Sum,
    Avg,
    Min,
    Max,
    Group,
    Count,
    Stddev,
    Stdvar,
    Quantile,
    CountValues,
    Topk,
    Bottomk,
    Limitk,
    LimitRatio,
}

impl Op {
    fn from_name(s: &str) -> Option<Op> {
        Some(match s {
            "sum" => Op::Sum,
            "avg" => Op::Avg,
            "min" => Op::Min,
            "max" => Op::Max,
            "group" => Op::Group,
            "count" => Op::Count,
            "stddev" => Op::Stddev,
            "stdvar" => Op::Stdvar,
            "quantile" => Op::Quantile,
            "count_values" => Op::CountValues,
            "topk" => Op::Topk,
            "bottomk" => Op::Bottomk,
            "limitk" => Op::Limitk,
            "limit_ratio" => Op::LimitRatio,
            _ => return None,
        })
    }

    /// The operator's name in PromQL.
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Sum => "sum",
            Op::Avg => "avg",
            Op::Min => "min",
            Op::Max => "max",
            Op::Group => "group",
            Op::Count => "count",
            Op::Stddev => "stddev",
            Op::Stdvar => "stdvar",
            Op::Quantile => "quantile",
            Op::CountValues => "count_values",
            Op::Topk => "topk",
            Op::Bottomk => "bottomk",
            Op::Limitk => "limitk",
            Op::LimitRatio => "limit_ratio",
        }
    }
}

/// How series are grouped.
pub(super) struct Grouping {
    without: bool,
    names: Vec<String>,
}

impl Grouping {
    fn of(a: &AggregateExpr) -> Grouping {
        match &a.modifier {
            None => Grouping { without: false, names: Vec::new() },
            Some(LabelModifier::Include(l)) => Grouping { without: false, names: l.labels.clone() },
            Some(LabelModifier::Exclude(l)) => Grouping { without: true, names: l.labels.clone() },
        }
    }

    /// The pairs (in label order) of the group a series belongs to.
    fn pairs<'a>(&'a self, labels: &'a Labels) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        labels
            .iter()
            .filter(move |l| {
                if self.without {
                    l.name != METRIC_NAME && !self.names.iter().any(|n| n == l.name)
                } else {
                    self.names.iter().any(|n| n == l.name)
                }
            })
            .map(|l| (l.name, l.value))
    }

    /// Whether the group of a series and its labels never depend on the
    /// series' metric name or metadata labels (`__type__`, `__unit__`): a
    /// grouping `by` labels that are none of them.
    fn ignores_metadata_labels(&self) -> bool {
        !self.without && !self.names.iter().any(|n| super::METADATA_LABELS.contains(&n.as_str()))
    }

    /// Whether every series falls into one group (no grouping, or `by ()`).
    fn is_single_group(&self) -> bool {
        !self.without && self.names.is_empty()
    }

    /// The labels of the group a series belongs to.
    fn group_labels(&self, labels: &Labels) -> Labels {
        if self.is_single_group() {
            return Labels::empty();
        }
        Labels::from_sorted(self.pairs(labels))
    }
}

/// Running state of one group at one step (Prometheus' `groupedAggregation`)
/// for every operator that folds values into a few numbers (all but
/// `quantile`'s list, which [`GroupState`] adds). 32 bytes: a streamed
/// aggregation keeps one per group and step, and walks a group's states
/// once per input series, so their size is memory traffic.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Fold {
    /// `sum`, `avg` (while its sum is finite), `min`, `max`, `group` and the
    /// first value: the running result. `avg` once its sum overflowed: the
    /// running mean. `stddev`/`stdvar`: the sum of squared deviations.
    value: f64,
    /// `sum`/`avg`: the Kahan compensation. `stddev`/`stdvar`: the running
    /// mean.
    aux: f64,
    /// Values folded (`avg`, `count`, `stddev`, `stdvar`).
    count: f64,
    pub(super) seen: bool,
    /// `avg` went over to an incremental mean (its sum overflowed).
    incremental_mean: bool,
    pub(super) drop_name: bool,
}

impl Fold {
    /// Folds one value into the group (Prometheus' `aggregation`, one step).
    #[inline(always)]
    pub(super) fn add(&mut self, op: Op, f: f64, drop_name: bool) {
        if !self.seen {
            *self = Fold { value: f, aux: 0.0, count: 1.0, seen: true, incremental_mean: false, drop_name };
            match op {
                Op::Stddev | Op::Stdvar => {
                    self.value = if f.is_nan() || f.is_infinite() { f64::NAN } else { 0.0 };
                    self.aux = f;
                }
                Op::Group => self.value = 1.0,
                _ => {}
            }
            return;
        }
        self.drop_name |= drop_name;
        match op {
            Op::Sum => (self.value, self.aux) = kahan_sum_inc(f, self.value, self.aux),
            Op::Avg => {
                self.count += 1.0;
                if !self.incremental_mean {
                    let (nv, nc) = kahan_sum_inc(f, self.value, self.aux);
                    if !nv.is_infinite() {
                        (self.value, self.aux) = (nv, nc);
                        return;
                    }
                    // The sum overflowed: continue with an incremental mean
                    // (held in `value` from now on).
                    self.incremental_mean = true;
                    self.value /= self.count - 1.0;
                    self.aux /= self.count - 1.0;
                }
                let q = (self.count - 1.0) / self.count;
                (self.value, self.aux) = kahan_sum_inc(f / self.count, q * self.value, q * self.aux);
            }
            Op::Group => {}
            Op::Max => {
                if self.value < f || self.value.is_nan() {
                    self.value = f;
                }
            }
            Op::Min => {
                if self.value > f || self.value.is_nan() {
                    self.value = f;
                }
            }
            Op::Count => self.count += 1.0,
            Op::Stddev | Op::Stdvar => {
                self.count += 1.0;
                let delta = f - self.aux;
                self.aux += delta / self.count;
                self.value += delta * (f - self.aux);
            }
            Op::Quantile | Op::CountValues | Op::Topk | Op::Bottomk | Op::Limitk | Op::LimitRatio => {}
        }
    }

    /// The group's result for every operator but `quantile`.
    fn finish(&self, op: Op) -> f64 {
        match op {
            Op::Avg => {
                if self.incremental_mean {
                    self.value + self.aux
                } else {
                    self.value / self.count + self.aux / self.count
                }
            }
            Op::Count => self.count,
            Op::Stdvar => self.value / self.count,
            Op::Stddev => (self.value / self.count).sqrt(),
            Op::Sum => self.value + self.aux,
            _ => self.value,
        }
    }
}

/// [`Fold`] plus the values `quantile` keeps: the state of one group at one
/// step of a materialised aggregation.
#[derive(Debug, Clone, Default)]
pub(super) struct GroupState {
    pub(super) fold: Fold,
    values: Vec<f64>,
}

impl GroupState {
    /// Folds one value into the group (Prometheus' `aggregation`, one step).
    pub(super) fn add(&mut self, op: Op, f: f64, drop_name: bool) {
        if op == Op::Quantile {
            if !self.fold.seen {
                self.values.clear();
            }
            self.values.push(f);
        }
        self.fold.add(op, f, drop_name);
    }

    /// The group's result; `q` is the quantile parameter at this step.
    pub(super) fn finish(&mut self, op: Op, q: f64) -> f64 {
        match op {
            Op::Quantile => quantile(q, &mut self.values),
            _ => self.fold.finish(op),
        }
    }
}

/// Scalar parameter of topk/bottomk/quantile/limitk/limit_ratio over all steps.
pub(super) struct Params {
    pub(super) values: Vec<f64>,
    min: f64,
    max: f64,
    any_nan: bool,
}

impl Params {
    fn new(values: Vec<f64>) -> Params {
        let mut min = f64::MAX;
        let mut max = -f64::MAX;
        let mut any_nan = false;
        for &v in &values {
            // Go's math.Max/Min propagate NaN.
            max = if v.is_nan() || max.is_nan() { f64::NAN } else { max.max(v) };
            min = if v.is_nan() || min.is_nan() { f64::NAN } else { min.min(v) };
            any_nan |= v.is_nan();
        }
        Params { values, min, max, any_nan }
    }
}

impl Evaluator<'_, '_> {
    /// Evaluates aggregation `a`, which is the node `e`.
    pub(crate) fn eval_aggregate(&self, e: &Expr, a: &AggregateExpr) -> Result<Val, Error> {
        let op_name = a.op.to_string();
        let op = Op::from_name(&op_name)
            .ok_or_else(|| Error::InvalidQuery(format!("unknown aggregation operator {op_name:?}")))?;
        let grouping = Grouping::of(a);
        if op == Op::CountValues {
            return self.eval_count_values(a, grouping);
        }
        let params = match &a.param {
            Some(p) if op != Op::CountValues => Some(Params::new(self.eval_scalar(p)?)),
            _ => None,
        };
        if params.is_none() {
            if let Some(v) = self.aggregate_streaming(op, &grouping, &a.expr)? {
                return Ok(v);
            }
        }
        if let Some(p) = &params {
            if let Some(v) = self.aggregate_k_streaming(op, &grouping, e, &a.expr, p)? {
                return Ok(v);
            }
        }
        let input = self.eval_vector(&a.expr)?;
        match op {
            Op::Topk | Op::Bottomk | Op::Limitk | Op::LimitRatio => {
                let params = params.ok_or_else(|| Error::InvalidQuery(format!("{op_name} needs a parameter")))?;
                self.aggregate_k(e, a, op, &grouping, &input, params)
            }
            _ => {
                if op == Op::Quantile {
                    if let (Some(p), Some(param)) = (&params, &a.param) {
                        if p.any_nan {
                            self.sh.warn("quantile value should be between 0 and 1, got NaN", param);
                        }
                        if p.max > 1.0 {
                            self.sh
                                .warn(format!("quantile value should be between 0 and 1, got {}", go_g(p.max)), param);
                        }
                        if p.min < 0.0 {
                            self.sh
                                .warn(format!("quantile value should be between 0 and 1, got {}", go_g(p.min)), param);
                        }
                    }
                }
                if any_histograms(&input) {
                    return self.aggregate_mixed(op, &grouping, &input, params.as_ref(), &a.expr);
                }
                self.aggregate(op, &grouping, &input, params.as_ref())
            }
        }
    }

    pub(super) fn groups_of(&self, grouping: &Grouping, input: &[StepSeries]) -> (Vec<Labels>, Vec<usize>) {
        let mut index = KeyIndex::new();
        let mut labels = Vec::new();
        let mut member = Vec::with_capacity(input.len());
        for s in input {
            let (i, new) = index.find_or_insert_pairs(grouping.pairs(&s.labels));
            if new {
                labels.push(grouping.group_labels(&s.labels));
            }
            member.push(i);
        }
        (labels, member)
    }

    fn aggregate(
        &self,
        op: Op,
        grouping: &Grouping,
        input: &[StepSeries],
        params: Option<&Params>,
    ) -> Result<Val, Error> {
        let (labels, member) = self.groups_of(grouping, input);
        let mut out: Vec<StepSeries> = labels
            .into_iter()
            .map(|l| StepSeries { labels: l, drop_name: false, points: Vec::new(), histograms: Vec::new() })
            .collect();
        let mut groups = vec![GroupState::default(); out.len()];
        let mut cur = StepCursor::new(input.len());
        for step in 0..self.nsteps() {
            self.sh.tick()?;
            let t = self.ts(step);
            for g in &mut groups {
                g.fold.seen = false;
            }
            for (si, s) in input.iter().enumerate() {
                let Some(f) = cur.value_at(input, si, t) else { continue };
                groups[member[si]].add(op, f, s.drop_name);
            }
            for (gi, g) in groups.iter_mut().enumerate() {
                if !g.fold.seen {
                    continue;
                }
                let v = g.finish(op, params.map_or(f64::NAN, |p| p.values[step]));
                let o = &mut out[gi];
                o.points.push(tidemark_storage::Sample { t, v });
                o.drop_name = g.fold.drop_name;
            }
        }
        out.retain(|s| !s.points.is_empty());
        self.sh.hold(super::series::total_points(&out))?;
        Ok(Val::Vector(out))
    }

    /// Aggregates a selector or range function without materialising it:
    /// each input series is folded into per-group, per-step state as soon as
    /// it is computed (the model of Grafana Mimir's streaming engine). Peak
    /// memory is one state per group and step instead of one point per
    /// input series and step. Returns `None` if `e` cannot be streamed.
    ///
    /// A series with histogram points also folds them (see
    /// `aggregate_histogram`): `sum`/`avg` into per-step histogram states
    /// made for its group on first use, the other operators into the float
    /// states (`count`, `group`) or nowhere (with an info). Series arrive in
    /// the order the materialised path visits them at each step, so each
    /// (group, step) sees its floats and histograms in the same order.
    fn aggregate_streaming(&self, op: Op, grouping: &Grouping, e: &Expr) -> Result<Option<Val>, Error> {
        if !matches!(op, Op::Sum | Op::Avg | Op::Count | Op::Min | Op::Max | Op::Group | Op::Stddev | Op::Stdvar) {
            return Ok(None);
        }
        let n = self.nsteps();
        // A series' group is found from its grouping labels' bytes; the
        // group's `Labels` is built only when a series opens a new group.
        let mut index = KeyIndex::new();
        let mut group_labels: Vec<Labels> = Vec::new();
        let mut states: Vec<Vec<Fold>> = Vec::new();
        // Per group: its histogram states of `sum`/`avg`, one per step, made
        // when a series of the group first brings histograms (else empty).
        let mut hist_states: Vec<Vec<Option<HistCell>>> = Vec::new();
        // `count` and `group` into one group give the same answer whatever
        // order the series come in and whatever their labels (a count of
        // those with a point at each step; `drop_name` is or-ed): the
        // selection may skip its sort into label order and building each
        // series' labels. Any other operator or grouping keeps label order,
        // as float sums round by the order of their terms and groups are
        // output in the order they are first seen.
        let order = if matches!(op, Op::Count | Op::Group) && grouping.is_single_group() {
            Order::Unlabelled
        } else {
            Order::Labels
        };
        // A grouping `by` labels other than the metric name and the
        // metadata labels reads only those: a range function may hand its
        // outputs over without removing their names (no copy of each
        // label set), or with no labels when there is no grouping.
        let labels_used =
            if grouping.ignores_metadata_labels() { LabelUse::Only(&grouping.names) } else { LabelUse::All };
        let streamed = self.try_stream(e, order, labels_used, &mut |s| {
            self.sh.tick()?;
            let (g, new) = index.find_or_insert_pairs(grouping.pairs(&s.labels));
            if new {
                self.sh.hold(n)?;
                group_labels.push(grouping.group_labels(&s.labels));
                states.push(vec![Fold::default(); n]);
                hist_states.push(Vec::new());
            }
            let cells = &mut states[g];
            let d = s.drop_name;
            // One loop per operator, each with its own `add` inlined (the
            // operator is known inside it), instead of a dispatch per point.
            match op {
                Op::Sum => self.fold_series(cells, &s.points, |c, v| c.add(Op::Sum, v, d)),
                Op::Avg => self.fold_series(cells, &s.points, |c, v| c.add(Op::Avg, v, d)),
                Op::Count => self.fold_series(cells, &s.points, |c, v| c.add(Op::Count, v, d)),
                Op::Min => self.fold_series(cells, &s.points, |c, v| c.add(Op::Min, v, d)),
                Op::Max => self.fold_series(cells, &s.points, |c, v| c.add(Op::Max, v, d)),
                _ => self.fold_series(cells, &s.points, |c, v| c.add(op, v, d)),
            }
            if !s.histograms.is_empty() {
                self.fold_streamed_histograms(op, cells, &mut hist_states[g], &s, e)?;
            }
            // Folded: the buffer serves the next series.
            self.sh.ctx.spare_points.give(s.points);
            Ok(())
        })?;
        if !streamed {
            return Ok(None);
        }
        let with_histograms = hist_states.iter().filter(|h| !h.is_empty()).count();
        self.sh.release(n * (group_labels.len() + with_histograms));
        let mut out = Vec::with_capacity(group_labels.len());
        for ((labels, cells), hist_cells) in group_labels.into_iter().zip(states).zip(hist_states) {
            let mut drop_name = false;
            let mut points = Vec::new();
            let mut histograms = Vec::new();
            let mut hist_cells = hist_cells.into_iter();
            for (step, c) in cells.into_iter().enumerate() {
                if let Some(cell) = hist_cells.next().flatten() {
                    if let Some((h, d)) = self.finish_histogram_cell(op, cell, &c, e) {
                        drop_name = d;
                        histograms.push(HistogramPoint { t: self.ts(step), h });
                    }
                    continue;
                }
                if c.seen {
                    drop_name = c.drop_name;
                    points.push(tidemark_storage::Sample { t: self.ts(step), v: c.finish(op) });
                }
            }
            if !points.is_empty() || !histograms.is_empty() {
                self.sh.hold(points.len() + super::series::histogram_points_weight(&histograms))?;
                out.push(StepSeries { labels, drop_name, points, histograms });
            }
        }
        Ok(Some(Val::Vector(out)))
    }

    /// Folds one streamed series' points into its group's per-step states
    /// with `add`. Streamed points lie on this evaluator's grid, oldest
    /// first: the grid is walked alongside them instead of dividing per
    /// point (a point off the grid, which no streamed source produces,
    /// would still land on its step through `step_of`).
    #[inline(always)]
    fn fold_series(&self, cells: &mut [Fold], points: &[tidemark_storage::Sample], add: impl Fn(&mut Fold, f64)) {
        let n = cells.len();
        let (mut step, mut ts) = (0usize, self.start);
        for p in points {
            while ts < p.t && step + 1 < n {
                step += 1;
                ts += self.interval;
            }
            let at = if ts == p.t { step } else { self.step_of(p.t) };
            add(&mut cells[at], p.v);
        }
    }

    fn eval_count_values(&self, a: &AggregateExpr, mut grouping: Grouping) -> Result<Val, Error> {
        let label = match a.param.as_deref().map(super::unparen) {
            Some(Expr::StringLiteral(s)) => s.val.clone(),
            _ => return Err(Error::InvalidQuery("count_values needs a string parameter".into())),
        };
        if label.is_empty() {
            return Err(Error::InvalidQuery(format!("invalid label name {label:?}")));
        }
        if let Some(bytes) = a.param.as_deref().and_then(|p| self.string_literal_bytes_if_not_utf8(p)) {
            return Err(Error::InvalidQuery(format!("invalid label name {}", crate::go_fmt::quote_bytes(&bytes))));
        }
        if !grouping.without {
            grouping.names.push(label.clone());
        }
        let input = self.eval_vector(&a.expr)?;
        let mut cur = StepCursor::new(input.len());
        let mut hcur = HistCursor::new(input.len());
        let mut out = SeriesBuilder::new();
        for step in 0..self.nsteps() {
            self.sh.tick()?;
            let t = self.ts(step);
            let mut counts: Vec<(Labels, f64)> = Vec::new();
            let mut index: HashMap<Labels, usize> = HashMap::new();
            for (si, s) in input.iter().enumerate() {
                // A histogram counts by its `String()` form.
                let value = match cur.value_at(&input, si, t) {
                    Some(f) => format_float_f(f),
                    None if s.histograms.is_empty() => continue,
                    None => match hcur.at(&input, si, t) {
                        Some(h) => h.to_string(),
                        None => continue,
                    },
                };
                let with = s.labels.with(&label, &value).map_err(|e| Error::InvalidQuery(e.to_string()))?;
                let g = grouping.group_labels(&with);
                match index.get(&g) {
                    Some(&i) => counts[i].1 += 1.0,
                    None => {
                        index.insert(g.clone(), counts.len());
                        counts.push((g, 1.0));
                    }
                }
            }
            for (l, c) in counts {
                out.push(&l, false, t, c)?;
            }
        }
        let out = out.finish();
        self.sh.hold(super::series::total_points(&out))?;
        Ok(Val::Vector(out))
    }

    /// `topk`, `bottomk`, `limitk` and `limit_ratio` over a materialised
    /// input; `agg` is the aggregation (where topk/bottomk place the info
    /// for an ignored histogram). `limitk`/`limit_ratio` keep histogram
    /// samples as they are.
    fn aggregate_k(
        &self,
        agg: &Expr,
        a: &AggregateExpr,
        op: Op,
        grouping: &Grouping,
        input: &[StepSeries],
        params: Params,
    ) -> Result<Val, Error> {
        match op {
            Op::Topk | Op::Bottomk | Op::Limitk => {
                if params.max < 1.0 {
                    return Ok(Val::Vector(Vec::new()));
                }
                if params.any_nan {
                    return Err(Error::Execution("Parameter value is NaN".into()));
                }
                if params.min <= i64::MIN as f64 {
                    return Err(Error::Execution(format!("Scalar value {} underflows int64", go_g(params.min))));
                }
                if params.max >= i64::MAX as f64 {
                    return Err(Error::Execution(format!("Scalar value {} overflows int64", go_g(params.max))));
                }
            }
            _ => {
                if params.max == 0.0 && params.min == 0.0 {
                    return Ok(Val::Vector(Vec::new()));
                }
                if params.any_nan {
                    return Err(Error::Execution("Ratio value is NaN".into()));
                }
                if let Some(p) = &a.param {
                    if params.max > 1.0 {
                        self.sh.warn(
                            format!("ratio value should be between -1 and 1, got {}, capping to 1", go_g(params.max)),
                            p,
                        );
                    }
                    if params.min < -1.0 {
                        self.sh.warn(
                            format!("ratio value should be between -1 and 1, got {}, capping to -1", go_g(params.min)),
                            p,
                        );
                    }
                }
            }
        }
        let (labels, member) = self.groups_of(grouping, input);
        let ngroups = labels.len();
        let mut heaps: Vec<Vec<(f64, usize)>> = vec![Vec::new(); ngroups];
        let mut cur = StepCursor::new(input.len());
        // Histogram samples: ignored by topk/bottomk, kept by limitk and
        // limit_ratio (whose heap entries then carry an unused value).
        let has_histograms = any_histograms(input);
        let mut hcur = HistCursor::new(if has_histograms { input.len() } else { 0 });
        let mut mixed_out = MixedBuilder::default();
        let instant = self.is_instant();
        let mut instant_out: Vec<StepSeries> = Vec::new();
        let mut out = SeriesBuilder::new();
        for step in 0..self.nsteps() {
            self.sh.tick()?;
            let t = self.ts(step);
            let p = params.values[step];
            for h in &mut heaps {
                h.clear();
            }
            let k = match op {
                Op::LimitRatio => 0,
                _ => (p as i64).min(input.len() as i64),
            };
            if op != Op::LimitRatio && k < 1 {
                continue;
            }
            if op == Op::LimitRatio && p == 0.0 {
                continue;
            }
            let r = p.clamp(-1.0, 1.0);
            for (si, s) in input.iter().enumerate() {
                let f = match cur.value_at(input, si, t) {
                    Some(f) => f,
                    None if s.histograms.is_empty() => continue,
                    None => {
                        if hcur.at(input, si, t).is_none() {
                            continue;
                        }
                        if matches!(op, Op::Topk | Op::Bottomk) {
                            self.sh.info(ignored_histogram_msg(op.name()), agg);
                            continue;
                        }
                        0.0
                    }
                };
                let h = &mut heaps[member[si]];
                match op {
                    Op::Topk => {
                        if (h.len() as i64) < k {
                            heap_push(h, (f, si), top_less);
                        } else if h[0].0 < f || (h[0].0.is_nan() && !f.is_nan()) {
                            h[0] = (f, si);
                            if k > 1 {
                                heap_fix(h, 0, top_less);
                            }
                        }
                    }
                    Op::Bottomk => {
                        if (h.len() as i64) < k {
                            heap_push(h, (f, si), bottom_less);
                        } else if h[0].0 > f || (h[0].0.is_nan() && !f.is_nan()) {
                            h[0] = (f, si);
                            if k > 1 {
                                heap_fix(h, 0, bottom_less);
                            }
                        }
                    }
                    Op::Limitk => {
                        if (h.len() as i64) < k {
                            h.push((f, si));
                        }
                    }
                    _ => {
                        if ratio_selects(r, &s.labels) {
                            h.push((f, si));
                        }
                    }
                }
            }
            for h in &mut heaps {
                match op {
                    // Descending for topk, ascending for bottomk; NaN last.
                    Op::Topk => h.sort_by(|x, y| desc_nan_last(x.0, y.0)),
                    Op::Bottomk => h.sort_by(|x, y| asc_nan_last(x.0, y.0)),
                    _ => {}
                }
                for &(f, si) in h.iter() {
                    let s = &input[si];
                    let hist = if has_histograms && !s.histograms.is_empty() { hcur.at(input, si, t) } else { None };
                    match (hist, instant) {
                        (Some(hist), true) => instant_out.push(StepSeries {
                            labels: s.labels.clone(),
                            drop_name: s.drop_name,
                            points: Vec::new(),
                            histograms: vec![HistogramPoint { t, h: hist.clone() }],
                        }),
                        (Some(hist), false) => mixed_out.push_histogram(&s.labels, s.drop_name, t, hist.clone())?,
                        (None, true) => instant_out.push(StepSeries {
                            labels: s.labels.clone(),
                            drop_name: s.drop_name,
                            points: vec![tidemark_storage::Sample { t, v: f }],
                            histograms: Vec::new(),
                        }),
                        (None, false) if has_histograms => mixed_out.push(&s.labels, s.drop_name, t, f)?,
                        (None, false) => out.push(&s.labels, s.drop_name, t, f)?,
                    }
                }
            }
        }
        let result = if instant {
            instant_out
        } else if has_histograms {
            mixed_out.finish()
        } else {
            out.finish()
        };
        self.sh.hold(super::series::total_points(&result))?;
        Ok(Val::Vector(result))
    }
}

impl Evaluator<'_, '_> {
    /// `topk`/`bottomk` into one group, folding a selector or range function
    /// series by series instead of materialising it: each series' points
    /// go into the heap of their step as the series is computed, and only
    /// the labels of series that entered some heap are kept. Peak memory is
    /// `k` entries per step instead of one point per input series and step,
    /// and each series' points are read once, in order, instead of every
    /// series being visited at every step.
    ///
    /// The answer is [`aggregate_k`](Self::aggregate_k)'s, bit for bit and
    /// in the same order: series arrive in the order `aggregate_k` visits
    /// them at each step, so every step's heap sees the same pushes and
    /// replacements. Returns `None` (having done nothing) for other
    /// operators, for `by`/`without` groupings (a heap per group and step
    /// could outweigh the input), for parameters that make `aggregate_k`
    /// fail or answer nothing (it evaluates its input first, so its errors
    /// come first), and for an expression that cannot be streamed.
    /// Histogram points are ignored with Prometheus' info, placed at the
    /// aggregation `agg` (`e` is its argument).
    fn aggregate_k_streaming(
        &self,
        op: Op,
        grouping: &Grouping,
        agg: &Expr,
        e: &Expr,
        params: &Params,
    ) -> Result<Option<Val>, Error> {
        if !matches!(op, Op::Topk | Op::Bottomk) || !grouping.is_single_group() {
            return Ok(None);
        }
        if params.max < 1.0 || params.any_nan || params.min <= i64::MIN as f64 || params.max >= i64::MAX as f64 {
            return Ok(None);
        }
        let n = self.nsteps();
        // `aggregate_k` takes `min(k, input series)`; with at most that many
        // series at a step, every one of them is pushed either way, so `k`
        // alone gives the same heaps.
        let ks: Vec<i64> = params.values.iter().map(|&p| p as i64).collect();
        let less = if op == Op::Topk { top_less } else { bottom_less };
        let mut heaps: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
        // Per input series (in arrival order): its labels and name flag if
        // it entered a heap at some step, else `None`.
        let mut members: Vec<Option<(Labels, bool)>> = Vec::new();
        let mut held = 0usize;
        let streamed = self.try_stream(e, Order::Labels, LabelUse::All, &mut |s| {
            self.sh.tick()?;
            let StepSeries { labels, drop_name, points, histograms } = s;
            if !histograms.is_empty() {
                self.sh.info(ignored_histogram_msg(op.name()), agg);
            }
            let si = members.len();
            let mut entered = false;
            // Streamed points lie on the grid, oldest first; a point off
            // the grid (which no streamed source produces) is skipped, as
            // `aggregate_k`'s cursor would never find it at a step time.
            let (mut step, mut ts) = (0usize, self.start);
            for p in &points {
                while ts < p.t && step + 1 < n {
                    step += 1;
                    ts += self.interval;
                }
                if ts != p.t {
                    continue;
                }
                let k = ks[step];
                if k < 1 {
                    continue;
                }
                let (h, f) = (&mut heaps[step], p.v);
                if (h.len() as i64) < k {
                    self.sh.hold(1)?;
                    held += 1;
                    heap_push(h, (f, si), less);
                    entered = true;
                } else if replaces(op, h[0].0, f) {
                    h[0] = (f, si);
                    if k > 1 {
                        heap_fix(h, 0, less);
                    }
                    entered = true;
                }
            }
            members.push(entered.then_some((labels, drop_name)));
            // Folded: the buffer serves the next series.
            self.sh.ctx.spare_points.give(points);
            Ok(())
        })?;
        if !streamed {
            return Ok(None);
        }
        self.sh.release(held);
        let instant = self.is_instant();
        let mut instant_out: Vec<StepSeries> = Vec::new();
        let mut out = SeriesBuilder::new();
        for (step, h) in heaps.iter_mut().enumerate() {
            self.sh.tick()?;
            let t = self.ts(step);
            // Descending for topk, ascending for bottomk; NaN last.
            if op == Op::Topk {
                h.sort_by(|x, y| desc_nan_last(x.0, y.0));
            } else {
                h.sort_by(|x, y| asc_nan_last(x.0, y.0));
            }
            for &(f, si) in h.iter() {
                let Some((labels, drop_name)) = members.get(si).and_then(Option::as_ref) else {
                    return Err(Error::Execution("topk: a heap entry lost its series".into()));
                };
                if instant {
                    instant_out.push(StepSeries {
                        labels: labels.clone(),
                        drop_name: *drop_name,
                        points: vec![tidemark_storage::Sample { t, v: f }],
                        histograms: Vec::new(),
                    });
                } else {
                    out.push(labels, *drop_name, t, f)?;
                }
            }
        }
        let result = if instant { instant_out } else { out.finish() };
        self.sh.hold(super::series::total_points(&result))?;
        Ok(Some(Val::Vector(result)))
    }
}

/// Whether `f` replaces the root `root` of a full `topk`/`bottomk` heap.
#[inline]
fn replaces(op: Op, root: f64, f: f64) -> bool {
    let nan_root = root.is_nan() && !f.is_nan();
    if op == Op::Topk {
        root < f || nan_root
    } else {
        root > f || nan_root
    }
}

/// Whether `limit_ratio(r, …)` keeps a series: the hash of its labels
/// mapped to [0, 1) is below `r` (or, for negative `r`, at least `1 + r`).
/// The hash is Prometheus' `labels.Hash` (xxHash64 of every `name 0xff
/// value 0xff`), so the same series are kept as by Prometheus.
fn ratio_selects(r: f64, labels: &Labels) -> bool {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for l in labels.iter() {
        h.update(l.name.as_bytes());
        h.update(&[0xff]);
        h.update(l.value.as_bytes());
        h.update(&[0xff]);
    }
    let offset = h.digest() as f64 / u64::MAX as f64;
    if r >= 0.0 {
        offset < r
    } else {
        offset >= 1.0 + r
    }
}

fn top_less(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

fn bottom_less(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}

/// Go's `container/heap` push (sift up) with a `less` on values.
fn heap_push(h: &mut Vec<(f64, usize)>, x: (f64, usize), less: fn(f64, f64) -> bool) {
    h.push(x);
    let mut j = h.len() - 1;
    while j > 0 {
        let i = (j - 1) / 2;
        if i == j || !less(h[j].0, h[i].0) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

/// Go's `container/heap.Fix` at index 0 (sift down).
fn heap_fix(h: &mut [(f64, usize)], mut i: usize, less: fn(f64, f64) -> bool) {
    let n = h.len();
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(h[j2].0, h[j1].0) {
            j = j2;
        }
        if !less(h[j].0, h[i].0) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed aggregation keeps one `Fold` per group and step and walks
    /// them once per input series: two fit in a cache line.
    #[test]
    fn a_fold_is_32_bytes() {
        assert!(std::mem::size_of::<Fold>() <= 32, "{}", std::mem::size_of::<Fold>());
    }

    /// Prometheus' `aggregation` for one group at one step, written with
    /// a field per quantity (how `GroupState` held it before `Fold` shared
    /// the fields): the reference `Fold` must agree with bit for bit.
    #[derive(Default)]
    struct Reference {
        seen: bool,
        value: f64,
        mean: f64,
        kahan_c: f64,
        count: f64,
        incremental_mean: bool,
    }

    impl Reference {
        fn add(&mut self, op: Op, f: f64) {
            if !self.seen {
                *self = Reference { seen: true, value: f, mean: f, kahan_c: 0.0, count: 1.0, incremental_mean: false };
                match op {
                    Op::Stddev | Op::Stdvar => self.value = if f.is_nan() || f.is_infinite() { f64::NAN } else { 0.0 },
                    Op::Group => self.value = 1.0,
                    _ => {}
                }
                return;
            }
            match op {
                Op::Sum => (self.value, self.kahan_c) = kahan_sum_inc(f, self.value, self.kahan_c),
                Op::Avg => {
                    self.count += 1.0;
                    if !self.incremental_mean {
                        let (nv, nc) = kahan_sum_inc(f, self.value, self.kahan_c);
                        if !nv.is_infinite() {
                            (self.value, self.kahan_c) = (nv, nc);
                            return;
                        }
                        self.incremental_mean = true;
                        self.mean = self.value / (self.count - 1.0);
                        self.kahan_c /= self.count - 1.0;
                    }
                    let q = (self.count - 1.0) / self.count;
                    (self.mean, self.kahan_c) = kahan_sum_inc(f / self.count, q * self.mean, q * self.kahan_c);
                }
                Op::Max if self.value < f || self.value.is_nan() => self.value = f,
                Op::Min if self.value > f || self.value.is_nan() => self.value = f,
                Op::Count => self.count += 1.0,
                Op::Stddev | Op::Stdvar => {
                    self.count += 1.0;
                    let delta = f - self.mean;
                    self.mean += delta / self.count;
                    self.value += delta * (f - self.mean);
                }
                _ => {}
            }
        }

        fn finish(&self, op: Op) -> f64 {
            match op {
                Op::Avg if self.incremental_mean => self.mean + self.kahan_c,
                Op::Avg => self.value / self.count + self.kahan_c / self.count,
                Op::Count => self.count,
                Op::Stdvar => self.value / self.count,
                Op::Stddev => (self.value / self.count).sqrt(),
                Op::Sum => self.value + self.kahan_c,
                _ => self.value,
            }
        }
    }

    /// Every folding operator over many sequences of awkward values
    /// (overflowing sums, infinities, NaNs, signed zeros, tiny and huge
    /// magnitudes): `Fold` gives the reference's result bit for bit after
    /// every value (any NaN for a NaN).
    #[test]
    fn fold_agrees_with_the_reference_bit_for_bit() {
        let pool =
            [0.0, -0.0, 1.0, -1.5, 1e308, -1e308, 1.7e308, 3e-320, 0.1, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let ops = [Op::Sum, Op::Avg, Op::Count, Op::Min, Op::Max, Op::Group, Op::Stddev, Op::Stdvar];
        let mut checked = 0;
        for _ in 0..2_000 {
            let len = 1 + (next() % 12) as usize;
            let values: Vec<f64> = (0..len).map(|_| pool[(next() % pool.len() as u64) as usize]).collect();
            for op in ops {
                let (mut fold, mut reference) = (Fold::default(), Reference::default());
                for &v in &values {
                    fold.add(op, v, false);
                    reference.add(op, v);
                    let (got, want) = (fold.finish(op), reference.finish(op));
                    // A NaN's sign and payload depend on the order the
                    // compiler gave a commutative operation's operands, and
                    // no answer shows them (JSON has one `NaN`).
                    assert!(got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(), "{op:?} {values:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 50_000);
    }
}

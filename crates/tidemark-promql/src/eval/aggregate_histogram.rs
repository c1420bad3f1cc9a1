//! Native histograms in aggregations (Prometheus' `aggregation`,
//! `aggregationK` and `aggregationCountValues` for histogram samples).
//!
//! - `sum` and `avg` add histograms with Kahan compensation (schemas are
//!   reduced to the lowest, zero buckets widened, custom bounds reconciled
//!   to the common ones with an info). A group mixing floats and histograms
//!   at a step has no result there and a warning; one mixing exponential
//!   and custom buckets has no result there and a warning naming the
//!   metric; one whose histograms disagree on counter resets (one says
//!   `CounterReset`, another `NotCounterReset`) gets a warning.
//! - `count` and `group` count a histogram like a float.
//! - `min`, `max`, `quantile`, `stddev`, `stdvar`, `topk` and `bottomk`
//!   ignore histograms with an info.
//! - `count_values` counts a histogram by its `String()` form.
//! - `limitk` and `limit_ratio` keep histogram samples as they are.
//!
//! Everything here runs only for series that carry histogram points: the
//! float paths of `aggregate.rs` test `histograms.is_empty()` once per
//! series (or once per input) and are otherwise untouched.

use promql_parser::parser::Expr;
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, HistogramOpError};
use tidemark_storage::{Labels, Sample, METRIC_NAME};

use super::aggregate::{Fold, GroupState, Grouping, Op, Params};
use super::series::{HistCursor, StepCursor};
use super::{Evaluator, StepSeries, Val};
use crate::error::Error;
use crate::value::HistogramPoint;

/// Info: a histogram was left out of an aggregation that reads floats only.
pub(super) fn ignored_histogram_msg(op: &str) -> String {
    format!("ignored histogram in {op} aggregation")
}

/// Warning: a group of `sum`/`avg` had floats and histograms at one step.
pub(super) const MIXED_FLOATS_HISTOGRAMS_MSG: &str = "encountered a mix of histograms and floats for aggregation";

/// Warning: a group of `sum`/`avg` mixed exponential and custom buckets.
pub(super) fn mixed_exponential_custom_msg(metric_name: &str) -> String {
    format!("vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric_name:?}")
}

/// Info: custom buckets with different bounds were added on common bounds.
pub(super) const MISMATCHED_CUSTOM_BUCKETS_MSG: &str = "mismatched custom buckets were reconciled during aggregation";

/// Warning: histograms of one group disagreed on counter resets.
pub(super) const COUNTER_RESET_COLLISION_MSG: &str = "conflicting counter resets during histogram aggregation";

/// What a [`HistCell`] gives for its group and step.
#[derive(Debug)]
pub(super) enum CellResult {
    /// Floats and histograms were mixed: no result, a warning.
    Mixed,
    /// Histograms could not be combined (already warned): no result.
    Nothing,
    /// The aggregated histogram; `collision` asks for the counter-reset
    /// collision warning.
    Histogram { h: FloatHistogram, collision: bool },
}

/// The histogram side of one group at one step of `sum` or `avg`
/// (Prometheus' `groupedAggregation` fields for histograms). It exists
/// once a histogram reached the group; the floats of the group stay in
/// their [`Fold`], whose `seen` flag is read when a histogram arrives, so
/// the outcome is Prometheus' for any order of floats and histograms:
///
/// - a float before the first histogram: mixed (histograms are not added);
/// - histograms first: added until two cannot be combined (exponential
///   and custom buckets); a float that arrives before that makes the group
///   mixed, one that arrives after it is skipped as Prometheus skips every
///   sample of an incompatible group.
#[derive(Debug, Clone)]
pub(super) struct HistCell {
    /// The running sum (`avg`: until it overflows). `None` if a float came
    /// first.
    value: Option<FloatHistogram>,
    /// Kahan compensation of `value` (or of `mean`).
    comp: Option<FloatHistogram>,
    /// `avg` after its sum overflowed: the running mean.
    mean: Option<FloatHistogram>,
    /// Histograms folded.
    count: f64,
    incremental_mean: bool,
    incompatible: bool,
    /// The group had a float when it became incompatible.
    float_before_incompatible: bool,
    counter_reset_seen: bool,
    not_counter_reset_seen: bool,
    drop_name: bool,
}

/// What went wrong adding one histogram into a [`HistCell`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AddNote {
    /// Added (or skipped); nothing to report.
    None,
    /// Added; custom bounds were reconciled (info).
    Reconciled,
    /// Exponential and custom buckets: the group is now incompatible
    /// (warning naming the series' metric).
    MixedSchemas,
    /// An operand was invalid: the group is now incompatible, silently
    /// (Prometheus never sees such histograms).
    Failed,
}

impl HistCell {
    /// A cell for the first histogram of a group at a step; `float_seen`
    /// says whether the group already had a float.
    pub(super) fn start(h: &FloatHistogram, float_seen: bool, drop_name: bool) -> HistCell {
        let mut c = HistCell {
            value: None,
            comp: None,
            mean: None,
            count: 1.0,
            incremental_mean: false,
            incompatible: false,
            float_before_incompatible: false,
            counter_reset_seen: false,
            not_counter_reset_seen: false,
            drop_name,
        };
        if !float_seen {
            c.value = Some(h.clone());
            c.note_hint(h);
        }
        c
    }

    fn note_hint(&mut self, h: &FloatHistogram) {
        match h.counter_reset_hint {
            CounterResetHint::CounterReset => self.counter_reset_seen = true,
            CounterResetHint::NotCounterReset => self.not_counter_reset_seen = true,
            _ => {}
        }
    }

    /// Folds one more histogram of the group (`op` is `sum` or `avg`);
    /// `float_seen` says whether the group has had a float so far.
    pub(super) fn add(&mut self, op: Op, h: &FloatHistogram, float_seen: bool, drop_name: bool) -> AddNote {
        if self.incompatible {
            return AddNote::None;
        }
        self.drop_name |= drop_name;
        self.count += 1.0;
        if self.value.is_none() {
            // A float came first: the group is mixed whatever follows.
            return AddNote::None;
        }
        self.note_hint(h);
        let result = if op == Op::Avg { self.add_avg(h) } else { self.add_sum(h) };
        match result {
            Ok(false) => AddNote::None,
            Ok(true) => AddNote::Reconciled,
            Err(e) => {
                self.incompatible = true;
                self.float_before_incompatible = float_seen;
                if e == HistogramOpError::IncompatibleSchema {
                    AddNote::MixedSchemas
                } else {
                    AddNote::Failed
                }
            }
        }
    }

    /// `sum`: Kahan-adds `h`; `Ok(true)` if custom bounds were reconciled.
    fn add_sum(&mut self, h: &FloatHistogram) -> Result<bool, HistogramOpError> {
        let Some(v) = self.value.as_mut() else { return Ok(false) };
        Ok(v.kahan_add(h, &mut self.comp)?.nhcb_bounds_reconciled)
    }

    /// `avg`: adds `h` to the sum while the sum stays finite, then goes on
    /// with an incremental mean (`mean = mean·(n−1)/n + h/n`, Kahan
    /// compensated), as Prometheus does.
    fn add_avg(&mut self, h: &FloatHistogram) -> Result<bool, HistogramOpError> {
        let n = self.count;
        let mut reconciled = false;
        if !self.incremental_mean {
            let Some(value) = self.value.as_ref() else { return Ok(false) };
            let mut v = value.clone();
            let mut c = self.comp.clone();
            reconciled |= v.kahan_add(h, &mut c)?.nhcb_bounds_reconciled;
            if !v.has_overflow() {
                (self.value, self.comp) = (Some(v), c);
                return Ok(reconciled);
            }
            self.incremental_mean = true;
            let mut mean = value.clone();
            mean.div(n - 1.0);
            self.mean = Some(mean);
            if let Some(c) = self.comp.as_mut() {
                c.div(n - 1.0);
            }
        }
        let q = (n - 1.0) / n;
        if let Some(c) = self.comp.as_mut() {
            c.mul(q);
        }
        let mut to_add = h.clone();
        to_add.div(n);
        let Some(mean) = self.mean.as_mut() else { return Ok(reconciled) };
        mean.mul(q);
        reconciled |= mean.kahan_add(&to_add, &mut self.comp)?.nhcb_bounds_reconciled;
        Ok(reconciled)
    }

    /// The group's result; `float_seen` says whether it had a float at all.
    pub(super) fn finish(self, op: Op, float_seen: bool) -> CellResult {
        let mixed = if self.value.is_none() {
            true
        } else if self.incompatible {
            self.float_before_incompatible
        } else {
            float_seen
        };
        if mixed {
            return CellResult::Mixed;
        }
        if self.incompatible {
            return CellResult::Nothing;
        }
        let collision = self.counter_reset_seen && self.not_counter_reset_seen;
        let HistCell { value, comp, mean, count, incremental_mean, .. } = self;
        let Some(mut h) = value else { return CellResult::Nothing };
        if op == Op::Avg {
            if incremental_mean {
                if let Some(m) = mean {
                    h = m;
                }
                if let Some(c) = &comp {
                    // Cannot fail: every earlier addition succeeded.
                    let _ = h.add(c);
                }
            } else {
                h.div(count);
                if let Some(mut c) = comp {
                    c.div(count);
                    let _ = h.add(&c);
                }
            }
        } else if let Some(c) = &comp {
            let _ = h.add(c);
        }
        h.compact(0);
        CellResult::Histogram { h, collision }
    }

    /// Whether a series folded into the cell has its metric name to be
    /// dropped (delayed name removal).
    pub(super) fn drop_name(&self) -> bool {
        self.drop_name
    }
}

/// Whether any series of `input` carries histogram points.
pub(super) fn any_histograms(input: &[StepSeries]) -> bool {
    input.iter().any(|s| !s.histograms.is_empty())
}

impl Evaluator<'_, '_> {
    /// Folds histogram `h` of a series (labels `labels`, name flag
    /// `drop_name`) into its group's float state `fold` and histogram state
    /// `cell` at one step, with the annotations Prometheus gives; `at` is
    /// the aggregated expression.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fold_histogram(
        &self,
        op: Op,
        fold: &mut Fold,
        cell: &mut Option<HistCell>,
        h: &FloatHistogram,
        labels: &Labels,
        drop_name: bool,
        at: &Expr,
    ) {
        match op {
            Op::Sum | Op::Avg => match cell {
                None => *cell = Some(HistCell::start(h, fold.seen, drop_name)),
                Some(c) => match c.add(op, h, fold.seen, drop_name) {
                    AddNote::None | AddNote::Failed => {}
                    AddNote::Reconciled => self.sh.info(MISMATCHED_CUSTOM_BUCKETS_MSG, at),
                    AddNote::MixedSchemas => {
                        self.sh.warn(mixed_exponential_custom_msg(labels.get(METRIC_NAME).unwrap_or("")), at)
                    }
                },
            },
            // A histogram counts as one sample.
            Op::Count | Op::Group => fold.add(op, 0.0, drop_name),
            _ => {
                self.sh.info(ignored_histogram_msg(op.name()), at);
                // Prometheus marks the group's name for removal before it
                // skips the histogram (once the group has a value).
                if fold.seen {
                    fold.drop_name |= drop_name;
                }
            }
        }
    }

    /// The result of one group at one step whose histogram state is `cell`
    /// (its floats are in `fold`): `Some` histogram with its name flag, or
    /// `None` (with the warning Prometheus gives).
    pub(super) fn finish_histogram_cell(
        &self,
        op: Op,
        cell: HistCell,
        fold: &Fold,
        at: &Expr,
    ) -> Option<(FloatHistogram, bool)> {
        let drop_name = cell.drop_name();
        match cell.finish(op, fold.seen) {
            CellResult::Mixed => {
                self.sh.warn(MIXED_FLOATS_HISTOGRAMS_MSG, at);
                None
            }
            CellResult::Nothing => None,
            CellResult::Histogram { h, collision } => {
                if collision {
                    self.sh.warn(COUNTER_RESET_COLLISION_MSG, at);
                }
                Some((h, drop_name))
            }
        }
    }

    /// `sum`, `avg`, `count`, `group`, `min`, `max`, `stddev`, `stdvar` and
    /// `quantile` over an input some of whose series carry histograms
    /// (`aggregate` for float-only inputs).
    pub(super) fn aggregate_mixed(
        &self,
        op: Op,
        grouping: &Grouping,
        input: &[StepSeries],
        params: Option<&Params>,
        at: &Expr,
    ) -> Result<Val, Error> {
        let (labels, member) = self.groups_of(grouping, input);
        let mut out: Vec<StepSeries> = labels
            .into_iter()
            .map(|l| StepSeries { labels: l, drop_name: false, points: Vec::new(), histograms: Vec::new() })
            .collect();
        let mut groups = vec![GroupState::default(); out.len()];
        let mut cells: Vec<Option<HistCell>> = vec![None; out.len()];
        let mut cur = StepCursor::new(input.len());
        let mut hcur = HistCursor::new(input.len());
        for step in 0..self.nsteps() {
            self.sh.tick()?;
            let t = self.ts(step);
            for g in &mut groups {
                g.fold.seen = false;
            }
            for (si, s) in input.iter().enumerate() {
                let g = member[si];
                if let Some(f) = cur.value_at(input, si, t) {
                    // After histograms of the group proved incompatible,
                    // Prometheus skips its floats too; the cell's result
                    // does not depend on them then (see `HistCell`).
                    groups[g].add(op, f, s.drop_name);
                    continue;
                }
                if s.histograms.is_empty() {
                    continue;
                }
                let Some(h) = hcur.at(input, si, t) else { continue };
                let state = &mut groups[g];
                self.fold_histogram(op, &mut state.fold, &mut cells[g], h, &s.labels, s.drop_name, at);
            }
            for (gi, g) in groups.iter_mut().enumerate() {
                let o = &mut out[gi];
                if let Some(cell) = cells[gi].take() {
                    if let Some((h, drop_name)) = self.finish_histogram_cell(op, cell, &g.fold, at) {
                        o.histograms.push(HistogramPoint { t, h });
                        o.drop_name = drop_name;
                    }
                    continue;
                }
                if !g.fold.seen {
                    continue;
                }
                let v = g.finish(op, params.map_or(f64::NAN, |p| p.values[step]));
                o.points.push(Sample { t, v });
                o.drop_name = g.fold.drop_name;
            }
        }
        out.retain(|s| !s.points.is_empty() || !s.histograms.is_empty());
        self.sh.hold(super::series::total_points(&out))?;
        Ok(Val::Vector(out))
    }

    /// The step whose time is `t`, if `t` is one.
    fn grid_step(&self, t: i64) -> Option<usize> {
        if t == self.start {
            return Some(0);
        }
        if t < self.start || self.interval <= 0 || (t - self.start) % self.interval != 0 {
            return None;
        }
        usize::try_from((t - self.start) / self.interval).ok()
    }

    /// Folds the histogram points of one streamed series into its group's
    /// per-step float states `folds` and histogram states `cells` (sized on
    /// first use), as [`fold_histogram`](Self::fold_histogram) does for
    /// one step.
    pub(super) fn fold_streamed_histograms(
        &self,
        op: Op,
        folds: &mut [Fold],
        cells: &mut Vec<Option<HistCell>>,
        s: &StepSeries,
        at: &Expr,
    ) -> Result<(), Error> {
        if matches!(op, Op::Sum | Op::Avg) && cells.is_empty() {
            self.sh.hold(folds.len())?;
            cells.resize(folds.len(), None);
        }
        for p in &s.histograms {
            // Streamed points lie on the grid; one off it (which no
            // streamed source produces) has no step.
            let Some(step) = self.grid_step(p.t) else { continue };
            let Some(fold) = folds.get_mut(step) else { continue };
            let mut none = None;
            let cell = cells.get_mut(step).unwrap_or(&mut none);
            self.fold_histogram(op, fold, cell, &p.h, &s.labels, s.drop_name, at);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tidemark_storage::histogram::{Span, CUSTOM_BUCKETS_SCHEMA};

    use super::*;

    fn exp(count: f64, hint: CounterResetHint) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: hint,
            count,
            sum: count / 2.0,
            positive_spans: vec![Span { offset: 0, length: 1 }],
            positive_buckets: vec![count],
            ..FloatHistogram::default()
        }
    }

    fn custom(bounds: Vec<f64>, counts: Vec<f64>) -> FloatHistogram {
        let count = counts.iter().sum();
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: count,
            positive_spans: vec![Span { offset: 0, length: counts.len() as u32 }],
            positive_buckets: counts,
            custom_values: bounds,
            ..FloatHistogram::default()
        }
    }

    fn result(c: HistCell, op: Op, float_seen: bool) -> Option<FloatHistogram> {
        match c.finish(op, float_seen) {
            CellResult::Histogram { h, .. } => Some(h),
            _ => None,
        }
    }

    #[test]
    fn sums_and_averages_histograms() {
        let u = CounterResetHint::Unknown;
        let mut c = HistCell::start(&exp(1.0, u), false, false);
        for v in [2.0, 3.0] {
            assert_eq!(c.add(Op::Sum, &exp(v, u), false, false), AddNote::None);
        }
        let h = result(c.clone(), Op::Sum, false).unwrap();
        assert_eq!((h.count, h.sum, h.positive_buckets.clone()), (6.0, 3.0, vec![6.0]));
        let mut a = HistCell::start(&exp(1.0, u), false, false);
        for v in [2.0, 3.0] {
            a.add(Op::Avg, &exp(v, u), false, false);
        }
        let h = result(a, Op::Avg, false).unwrap();
        assert_eq!((h.count, h.sum, h.positive_buckets.clone()), (2.0, 1.0, vec![2.0]));
    }

    /// Kahan compensation keeps small terms next to huge ones.
    #[test]
    fn sum_is_compensated() {
        let u = CounterResetHint::Unknown;
        let mut c = HistCell::start(&exp(1.0, u), false, false);
        for v in [1e100, 1.0, -1e100] {
            c.add(Op::Sum, &exp(v, u), false, false);
        }
        let h = result(c, Op::Sum, false).unwrap();
        assert_eq!((h.count, h.sum), (2.0, 1.0));
    }

    /// An average whose sum overflows goes on as an incremental mean.
    #[test]
    fn avg_survives_an_overflowing_sum() {
        let u = CounterResetHint::Unknown;
        let mut c = HistCell::start(&exp(1e308, u), false, false);
        c.add(Op::Avg, &exp(1e308, u), false, false);
        c.add(Op::Avg, &exp(1e308, u), false, false);
        let h = result(c, Op::Avg, false).unwrap();
        assert!((h.count - 1e308).abs() / 1e308 < 1e-12, "{}", h.count);
        assert!(!h.has_overflow());
    }

    #[test]
    fn floats_and_histograms_do_not_mix() {
        let u = CounterResetHint::Unknown;
        // A float first.
        let mut c = HistCell::start(&exp(1.0, u), true, false);
        c.add(Op::Sum, &exp(1.0, u), true, false);
        assert!(matches!(c.finish(Op::Sum, true), CellResult::Mixed));
        // A histogram first, a float later.
        let c = HistCell::start(&exp(1.0, u), false, false);
        assert!(matches!(c.finish(Op::Sum, true), CellResult::Mixed));
    }

    #[test]
    fn exponential_and_custom_buckets_are_incompatible() {
        let u = CounterResetHint::Unknown;
        let mut c = HistCell::start(&exp(1.0, u), false, false);
        assert_eq!(c.add(Op::Sum, &custom(vec![1.0], vec![1.0, 1.0]), false, false), AddNote::MixedSchemas);
        // Nothing more is folded, and a float after it makes no mix.
        assert_eq!(c.add(Op::Sum, &custom(vec![1.0], vec![1.0, 1.0]), true, false), AddNote::None);
        assert!(matches!(c.clone().finish(Op::Sum, true), CellResult::Nothing));
        // A float before it does.
        let mut c = HistCell::start(&exp(1.0, u), false, false);
        c.add(Op::Avg, &custom(vec![1.0], vec![1.0, 1.0]), true, false);
        assert!(matches!(c.finish(Op::Avg, true), CellResult::Mixed));
    }

    #[test]
    fn custom_bounds_are_reconciled() {
        let mut c = HistCell::start(&custom(vec![1.0, 2.0], vec![1.0, 1.0, 1.0]), false, false);
        assert_eq!(c.add(Op::Sum, &custom(vec![2.0], vec![1.0, 1.0]), false, false), AddNote::Reconciled);
        let h = result(c, Op::Sum, false).unwrap();
        assert_eq!(h.custom_values, vec![2.0]);
        assert_eq!(h.positive_buckets, vec![3.0, 2.0]);
    }

    #[test]
    fn counter_reset_collision_is_reported() {
        let mut c = HistCell::start(&exp(1.0, CounterResetHint::CounterReset), false, false);
        c.add(Op::Sum, &exp(1.0, CounterResetHint::NotCounterReset), false, false);
        assert!(matches!(c.finish(Op::Sum, false), CellResult::Histogram { collision: true, .. }));
        let mut c = HistCell::start(&exp(1.0, CounterResetHint::CounterReset), false, false);
        c.add(Op::Sum, &exp(1.0, CounterResetHint::Unknown), false, false);
        assert!(matches!(c.finish(Op::Sum, false), CellResult::Histogram { collision: false, .. }));
    }

    #[test]
    fn cursor_finds_exact_times_only() {
        let s = StepSeries {
            labels: Labels::empty(),
            drop_name: false,
            points: Vec::new(),
            histograms: vec![
                HistogramPoint { t: 10, h: exp(1.0, CounterResetHint::Unknown) },
                HistogramPoint { t: 30, h: exp(3.0, CounterResetHint::Unknown) },
            ],
        };
        let input = [s];
        let mut cur = HistCursor::new(1);
        assert!(cur.at(&input, 0, 0).is_none());
        assert_eq!(cur.at(&input, 0, 10).map(|h| h.count), Some(1.0));
        assert_eq!(cur.at(&input, 0, 10).map(|h| h.count), Some(1.0));
        assert!(cur.at(&input, 0, 20).is_none());
        assert_eq!(cur.at(&input, 0, 30).map(|h| h.count), Some(3.0));
        assert!(cur.at(&input, 0, 40).is_none());
    }
}

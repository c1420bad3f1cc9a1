//! The experimental `info()` function: enriching series with the data labels
//! of "info" series (by default `target_info`), joined on the identifying
//! labels `instance` and `job`, as Prometheus' `promql/info.go` does.
//!
//! `info(v)` adds, at every step, the labels of the `target_info` series that
//! has the same `instance` and `job` as a series of `v` and a sample within
//! the lookback window. `info(v, {matchers})` chooses the info metrics with
//! `__name__` matchers and restricts the added labels to those named by the
//! other matchers. Labels a series already has are never overwritten, series
//! of `v` that are info series themselves pass through unchanged, and so do
//! series without a matching info series, unless a data label matcher
//! requires a value.
//!
//! The info series are read as of the time the first argument's selector
//! reads its samples: an `@` or `offset` on it (or on an enclosing subquery)
//! moves the info lookup with it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{Expr, SubqueryExpr, VectorSelector};
use tidemark_storage::histogram::FloatHistogram;
use tidemark_storage::{Labels, MatchOp, Matcher, METRIC_NAME};

use super::selector::{load_mixed_samples, Latest};
use super::series::{total_points, HistCursor, MixedBuilder, StepCursor};
use super::{offset_ms, unparen, Evaluator, StepSeries, Val};
use crate::error::Error;

/// The info metric `info(v)` uses when no `__name__` matcher says otherwise.
const TARGET_INFO: &str = "target_info";

/// The labels that tie a series to its info series. Prometheus hard-codes
/// them, so that no per-metric knowledge of info metrics is needed.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

/// Longest alternation of identifying label values handed to storage as a
/// regex matcher. Past it, selection relies on the other matchers and the
/// values are checked afterwards: a regex of many thousand alternatives can
/// exceed the regex engine's size limit and would be slow to build.
const MAX_ID_REGEX_LEN: usize = 64 * 1024;

/// The second argument of `info()`, split the way Prometheus uses it.
struct DataSelector {
    /// Matchers on `__name__`: which info metrics to read.
    name_matchers: Vec<Matcher>,
    /// Matchers on other labels: they select info series, and the labels they
    /// name are the only ones added (all are added when there are none).
    data_matchers: Vec<Matcher>,
}

impl DataSelector {
    /// `info(v)`: every data label of `target_info`.
    fn target_info() -> DataSelector {
        DataSelector { name_matchers: vec![Matcher::equal(METRIC_NAME, TARGET_INFO)], data_matchers: Vec::new() }
    }

    /// Reads the label selector `{...}` given as the second argument.
    fn from_expr(e: &Expr) -> Result<DataSelector, Error> {
        let Expr::VectorSelector(vs) = unparen(e) else {
            return Err(Error::InvalidQuery(
                "the second argument of info() must be a label selector such as {__name__=\"build_info\"}".into(),
            ));
        };
        if !vs.matchers.or_matchers.is_empty() {
            return Err(Error::InvalidQuery("the label selector of info() cannot use \"or\"".into()));
        }
        let mut all = Vec::with_capacity(vs.matchers.matchers.len() + 1);
        // `foo{...}` names the metric outside the braces; it means `__name__="foo"`.
        if let Some(name) = &vs.name {
            let named_inside = vs
                .matchers
                .matchers
                .iter()
                .any(|m| m.name == METRIC_NAME && m.op == ParserOp::Equal && &m.value == name);
            if !named_inside {
                all.push(Matcher::equal(METRIC_NAME, name.as_str()));
            }
        }
        for m in &vs.matchers.matchers {
            let op = match m.op {
                ParserOp::Equal => MatchOp::Equal,
                ParserOp::NotEqual => MatchOp::NotEqual,
                ParserOp::Re(_) => MatchOp::Regex,
                ParserOp::NotRe(_) => MatchOp::NotRegex,
            };
            let matcher = Matcher::new(op, m.name.as_str(), m.value.as_str())
                .map_err(|e| Error::InvalidQuery(format!("invalid regular expression {:?}: {e}", m.value)))?;
            all.push(matcher);
        }
        let (name_matchers, data_matchers) = all.into_iter().partition(|m| m.name == METRIC_NAME);
        Ok(DataSelector { name_matchers, data_matchers })
    }

    /// The `__name__` matchers info series are selected with: as given when
    /// at least one is positive; with only negative ones, limited to metrics
    /// named `*_info`; with none, `target_info`.
    fn effective_name_matchers(&self) -> Result<Vec<Matcher>, Error> {
        if self.name_matchers.iter().any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex)) {
            return Ok(self.name_matchers.clone());
        }
        if self.name_matchers.is_empty() {
            return Ok(vec![Matcher::equal(METRIC_NAME, TARGET_INFO)]);
        }
        let any_info = Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info")
            .map_err(|e| Error::Execution(format!("building the info metric matcher: {e}")))?;
        let mut out = vec![any_info];
        out.extend(self.name_matchers.iter().cloned());
        Ok(out)
    }

    /// Whether a series without any matching info series is still returned:
    /// only when no data label matcher requires a non-empty value.
    fn keeps_unmatched(&self) -> bool {
        self.data_matchers.iter().all(Matcher::matches_empty)
    }
}

/// One info series, read at every step of the evaluator.
struct InfoSeries {
    labels: Labels,
    /// `(step, timestamp of the sample found for that step)`, by step. The
    /// sample's own time decides between two info series of the same
    /// identity: the newer one wins.
    points: Vec<(usize, i64)>,
    /// The steps at which the sample found is a native histogram: info
    /// samples must be floats, so such a step fails the query where a
    /// series to enrich has a value (as Prometheus' `combineWithInfoVector`).
    histogram_steps: Vec<usize>,
}

/// Which info series an info metric identity (name plus identifying labels)
/// has, as positions in the sorted list of info series.
type Groups = Vec<Vec<usize>>;

/// The identity an info series is matched on: its metric name and the values
/// of the identifying labels it has.
type Identity<'l> = (&'l str, [Option<&'l str>; 2]);

fn identifying_values(labels: &Labels) -> [Option<&str>; 2] {
    IDENTIFYING_LABELS.map(|n| labels.get(n))
}

impl Evaluator<'_, '_> {
    /// `info(v)` and `info(v, {data label matchers})`.
    pub(crate) fn eval_info(&self, args: &[&Expr]) -> Result<Val, Error> {
        let Some(first) = args.first() else {
            return Err(Error::InvalidQuery("info() needs an instant vector argument".into()));
        };
        // Read before evaluating: the reference time comes from the argument's syntax.
        let (pin, offset) = self.info_reference_time(first);
        let selector = match args.get(1) {
            Some(e) => DataSelector::from_expr(e)?,
            None => DataSelector::target_info(),
        };
        let base = self.eval_vector(first)?;

        // Info series are not enriched themselves: a series of `v` is one when
        // its name matches every `__name__` matcher info series are chosen by.
        let name_matchers = selector.effective_name_matchers()?;
        let ignored: Vec<bool> = base
            .iter()
            .map(|s| {
                let name = s.labels.get(METRIC_NAME).unwrap_or("");
                name_matchers.iter().all(|m| m.matches(name))
            })
            .collect();

        let info = self.fetch_info_series(&base, &ignored, &selector, &name_matchers, pin, offset)?;
        let out = self.combine_with_info(&base, &ignored, &info, &selector)?;
        self.sh.hold(total_points(&out))?;
        Ok(Val::Vector(out))
    }

    /// The `@` time (if any) and offset in milliseconds that the first
    /// vector selector in `e` reads its samples at, counting the offsets of
    /// enclosing subqueries up to the innermost one with an `@`.
    fn info_reference_time(&self, e: &Expr) -> (Option<i64>, i64) {
        let mut path = Vec::new();
        self.first_selector_time(e, &mut path).unwrap_or((None, 0))
    }

    /// Depth-first search, children in Prometheus' order, for the first
    /// vector selector; `path` holds the subqueries around the current node.
    fn first_selector_time<'e>(&self, e: &'e Expr, path: &mut Vec<&'e SubqueryExpr>) -> Option<(Option<i64>, i64)> {
        match e {
            Expr::VectorSelector(vs) => Some(self.selector_time(vs, path)),
            Expr::MatrixSelector(ms) => Some(self.selector_time(&ms.vs, path)),
            Expr::Subquery(sq) => {
                path.push(sq);
                let found = self.first_selector_time(&sq.expr, path);
                path.pop();
                found
            }
            Expr::Aggregate(a) => self
                .first_selector_time(&a.expr, path)
                .or_else(|| a.param.as_ref().and_then(|p| self.first_selector_time(p, path))),
            Expr::Binary(b) => {
                self.first_selector_time(&b.lhs, path).or_else(|| self.first_selector_time(&b.rhs, path))
            }
            Expr::Call(c) => c.args.args.iter().find_map(|a| self.first_selector_time(a, path)),
            Expr::Paren(p) => self.first_selector_time(&p.expr, path),
            Expr::Unary(u) => self.first_selector_time(&u.expr, path),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => None,
        }
    }

    /// The `@` time and offset a selector reads at: its own, or, while no
    /// `@` pins it, shifted by each enclosing subquery from the inside out
    /// until one with an `@` anchors it.
    fn selector_time(&self, vs: &VectorSelector, path: &[&SubqueryExpr]) -> (Option<i64>, i64) {
        let mut at = self.at_ms(&vs.at);
        let mut offset = offset_ms(&vs.offset);
        for sq in path.iter().rev() {
            if at.is_some() {
                break;
            }
            offset += offset_ms(&sq.offset);
            at = self.at_ms(&sq.at);
        }
        (at, offset)
    }

    /// Reads the info series that may match a series of `base` and evaluates
    /// them at every step, as of `pin` (or the step) minus `offset`.
    fn fetch_info_series(
        &self,
        base: &[StepSeries],
        ignored: &[bool],
        selector: &DataSelector,
        name_matchers: &[Matcher],
        pin: Option<i64>,
        offset: i64,
    ) -> Result<Vec<InfoSeries>, Error> {
        // The identifying label values the series to enrich have.
        let mut wanted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (s, _) in base.iter().zip(ignored).filter(|(_, &ig)| !ig) {
            for name in IDENTIFYING_LABELS {
                if let Some(v) = s.labels.get(name) {
                    wanted.entry(name).or_default().insert(v);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }

        let mut matchers = Vec::new();
        for (name, values) in &wanted {
            let re = values.iter().map(|v| regex::escape(v)).collect::<Vec<_>>().join("|");
            if re.len() <= MAX_ID_REGEX_LEN {
                if let Ok(m) = Matcher::new(MatchOp::Regex, *name, re) {
                    matchers.push(m);
                }
            }
        }
        matchers.extend(selector.data_matchers.iter().cloned());
        matchers.extend(name_matchers.iter().cloned());

        let lookback = self.sh.ctx.lookback_ms;
        let (lo, hi) = match pin {
            Some(t) => (t, t),
            None => (self.start, self.end),
        };
        // Samples exactly one lookback before the reference time are out of reach.
        let mint = lo.saturating_sub(lookback.saturating_sub(1)).saturating_sub(offset);
        let maxt = hi.saturating_sub(offset);
        if mint > maxt {
            return Ok(Vec::new());
        }
        let mut selected = self.sh.ctx.source.select(mint, maxt, &matchers).map_err(Error::Storage)?;
        // Storage may have skipped an over-long value matcher; the values are checked here in any case.
        selected.retain(|s| wanted.iter().all(|(name, values)| s.labels.get(name).is_some_and(|v| values.contains(v))));

        let grid = self.grid();
        let mut out = Vec::new();
        self.map_series(
            selected,
            |s, buf| {
                let mut hbuf = Vec::new();
                let read = load_mixed_samples(s, buf, &mut hbuf, false)?;
                let (mut points, mut histogram_steps) = (Vec::new(), Vec::new());
                grid.for_each_latest_mixed(buf, &hbuf, pin, offset, lookback, |step, _, latest| match latest {
                    Latest::Float(p) => points.push((step, p.t)),
                    Latest::Histogram(h) => {
                        points.push((step, h.t));
                        histogram_steps.push(step);
                    }
                });
                Ok((read, (points, histogram_steps)))
            },
            |labels, read, (points, histogram_steps)| {
                self.sh.count_read(read);
                if !points.is_empty() {
                    self.sh.hold(points.len())?;
                    out.push(InfoSeries { labels, points, histogram_steps });
                }
                Ok(())
            },
        )?;
        // Label order makes conflict detection and its message deterministic,
        // matching the sorted series Prometheus' storage returns.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Adds the data labels of the matching info series to every point of
    /// `base`, step by step.
    fn combine_with_info(
        &self,
        base: &[StepSeries],
        ignored: &[bool],
        info: &[InfoSeries],
        selector: &DataSelector,
    ) -> Result<Vec<StepSeries>, Error> {
        // Group the info series by identity; several series of one identity
        // are the same info metric with changing data labels.
        let mut group_of: HashMap<Identity<'_>, usize> = HashMap::new();
        let mut groups: Groups = Vec::new();
        let mut info_names: BTreeSet<&str> = BTreeSet::new();
        for (k, s) in info.iter().enumerate() {
            let name = s.labels.get(METRIC_NAME).unwrap_or("");
            info_names.insert(name);
            let id = (name, identifying_values(&s.labels));
            let g = *group_of.entry(id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(k);
        }
        // For every series to enrich, the groups it joins with: one per info
        // metric name that has a series with the same identifying labels.
        let base_groups: Vec<Vec<usize>> = base
            .iter()
            .zip(ignored)
            .map(|(s, &ig)| {
                if ig || groups.is_empty() {
                    return Vec::new();
                }
                let ids = identifying_values(&s.labels);
                info_names.iter().filter_map(|&name| group_of.get(&(name, ids)).copied()).collect()
            })
            .collect();

        let data_names: HashSet<&str> = selector.data_matchers.iter().map(|m| m.name.as_str()).collect();
        let keeps_unmatched = selector.keeps_unmatched();
        let mut base_cursor = StepCursor::new(base.len());
        let mut base_hist_cursor = HistCursor::new(base.len());
        let mut info_pos = vec![0usize; info.len()];
        let mut info_hist_pos = vec![0usize; info.len()];
        let mut winners: Vec<Option<(usize, i64)>> = vec![None; groups.len()];
        // The last label set built for each base series and the info series it came from.
        let mut cache: Vec<Option<(Vec<usize>, Labels)>> = vec![None; base.len()];
        let mut present: Vec<(usize, StepValue<'_>)> = Vec::new();
        let mut matched: Vec<usize> = Vec::new();
        let mut out = MixedBuilder::default();
        let emit = |out: &mut MixedBuilder, labels: &Labels, drop_name: bool, t: i64, v: &StepValue<'_>| match v {
            StepValue::Float(v) => out.push(labels, drop_name, t, *v),
            StepValue::Histogram(h) => out.push_histogram(labels, drop_name, t, (*h).clone()),
        };

        for step in 0..self.nsteps() {
            self.sh.tick()?;
            let t = self.ts(step);
            present.clear();
            for i in 0..base.len() {
                if let Some(v) = base_cursor.value_at(base, i, t) {
                    present.push((i, StepValue::Float(v)));
                } else if let Some(h) = base_hist_cursor.at(base, i, t) {
                    present.push((i, StepValue::Histogram(h)));
                }
            }
            if present.is_empty() {
                continue;
            }

            // The newest info series of every identity at this step.
            for (g, members) in groups.iter().enumerate() {
                winners[g] = None;
                for &k in members {
                    let Some(orig_t) = info_point_at(&info[k].points, &mut info_pos[k], step) else { continue };
                    if step_listed(&info[k].histogram_steps, &mut info_hist_pos[k], step) {
                        return Err(Error::Execution("info sample should be float".into()));
                    }
                    match winners[g] {
                        Some((_, existing_t)) if existing_t > orig_t => {}
                        Some((existing, existing_t)) if existing_t == orig_t => {
                            return Err(Error::Execution(format!(
                                "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                                info[existing].labels, existing_t, info[k].labels, orig_t
                            )));
                        }
                        _ => winners[g] = Some((k, orig_t)),
                    }
                }
            }

            for (i, v) in &present {
                let (i, s) = (*i, &base[*i]);
                if ignored[i] {
                    emit(&mut out, &s.labels, s.drop_name, t, v)?;
                    continue;
                }
                matched.clear();
                matched.extend(base_groups[i].iter().filter_map(|&g| winners[g].map(|(k, _)| k)));
                if matched.is_empty() {
                    if keeps_unmatched {
                        emit(&mut out, &s.labels, s.drop_name, t, v)?;
                    }
                    continue;
                }
                let reuse = matches!(&cache[i], Some((from, _)) if *from == matched);
                if !reuse {
                    let labels = enriched_labels(&s.labels, matched.iter().map(|&k| &info[k].labels), &data_names)?;
                    cache[i] = Some((matched.clone(), labels));
                }
                if let Some((_, labels)) = &cache[i] {
                    emit(&mut out, labels, s.drop_name, t, v)?;
                }
            }
        }
        Ok(out.finish())
    }
}

/// A value of a series to enrich at one step.
enum StepValue<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

/// Whether `steps` (increasing) holds `step`; `pos` is a cursor into
/// `steps` for steps asked in increasing order.
fn step_listed(steps: &[usize], pos: &mut usize, step: usize) -> bool {
    while *pos < steps.len() && steps[*pos] < step {
        *pos += 1;
    }
    steps.get(*pos) == Some(&step)
}

/// The sample time info series `points` has at `step`, if any; `pos` is a
/// cursor into `points` for steps asked in increasing order.
fn info_point_at(points: &[(usize, i64)], pos: &mut usize, step: usize) -> Option<i64> {
    while *pos < points.len() && points[*pos].0 < step {
        *pos += 1;
    }
    points.get(*pos).filter(|p| p.0 == step).map(|p| p.1)
}

/// `base` plus the data labels of `infos` it does not have yet (only those
/// in `data_names`, unless that is empty). Two info series giving one label
/// different values is an error.
fn enriched_labels<'l>(
    base: &Labels,
    infos: impl Iterator<Item = &'l Labels>,
    data_names: &HashSet<&str>,
) -> Result<Labels, Error> {
    let mut added: BTreeMap<&str, &str> = BTreeMap::new();
    for labels in infos {
        for l in labels.iter() {
            if l.name == METRIC_NAME || (!data_names.is_empty() && !data_names.contains(l.name)) {
                continue;
            }
            if added.get(l.name).is_some_and(|&v| v != l.value) {
                return Err(Error::Execution(format!("conflicting label: {}", l.name)));
            }
            if base.get(l.name).is_none() {
                added.insert(l.name, l.value);
            }
        }
    }
    if added.is_empty() {
        return Ok(base.clone());
    }
    Labels::new(base.iter().map(|l| (l.name, l.value)).chain(added)).map_err(|e| Error::Execution(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn enriched_labels_add_only_missing_data_labels() {
        let base = labels(&[("__name__", "m"), ("instance", "a"), ("data", "base")]);
        let info = labels(&[("__name__", "target_info"), ("instance", "a"), ("data", "info"), ("x", "1")]);
        let got = enriched_labels(&base, [&info].into_iter(), &HashSet::new()).unwrap();
        assert_eq!(got, labels(&[("__name__", "m"), ("instance", "a"), ("data", "base"), ("x", "1")]));
    }

    #[test]
    fn enriched_labels_respect_the_data_label_filter() {
        let base = labels(&[("__name__", "m"), ("instance", "a")]);
        let info = labels(&[("__name__", "target_info"), ("instance", "a"), ("data", "info"), ("x", "1")]);
        let names: HashSet<&str> = ["x"].into_iter().collect();
        let got = enriched_labels(&base, [&info].into_iter(), &names).unwrap();
        assert_eq!(got, labels(&[("__name__", "m"), ("instance", "a"), ("x", "1")]));
    }

    #[test]
    fn enriched_labels_fail_on_conflicting_info_values() {
        let base = labels(&[("__name__", "m"), ("instance", "a")]);
        let a = labels(&[("__name__", "target_info"), ("instance", "a"), ("x", "1")]);
        let b = labels(&[("__name__", "build_info"), ("instance", "a"), ("x", "2")]);
        let err = enriched_labels(&base, [&a, &b].into_iter(), &HashSet::new()).unwrap_err();
        assert_eq!(err, Error::Execution("conflicting label: x".into()));
    }

    #[test]
    fn enriched_labels_ignore_disagreement_on_labels_the_base_has() {
        let base = labels(&[("__name__", "m"), ("instance", "a"), ("x", "0")]);
        let a = labels(&[("__name__", "target_info"), ("instance", "a"), ("x", "1")]);
        let b = labels(&[("__name__", "build_info"), ("instance", "a"), ("x", "2")]);
        let got = enriched_labels(&base, [&a, &b].into_iter(), &HashSet::new()).unwrap();
        assert_eq!(got, base);
    }

    #[test]
    fn only_negative_name_matchers_are_limited_to_info_metrics() {
        let sel = DataSelector {
            name_matchers: vec![Matcher::new(MatchOp::NotEqual, METRIC_NAME, "target_info").unwrap()],
            data_matchers: Vec::new(),
        };
        let eff = sel.effective_name_matchers().unwrap();
        let ok = |n: &str| eff.iter().all(|m| m.matches(n));
        assert!(ok("build_info"));
        assert!(!ok("target_info"));
        assert!(!ok("metric"));
    }

    #[test]
    fn no_name_matcher_means_target_info() {
        let sel = DataSelector { name_matchers: Vec::new(), data_matchers: Vec::new() };
        let eff = sel.effective_name_matchers().unwrap();
        assert_eq!(eff, vec![Matcher::equal(METRIC_NAME, TARGET_INFO)]);
    }

    #[test]
    fn info_point_cursor_finds_only_exact_steps() {
        let pts = [(0usize, 10i64), (2, 30)];
        let mut pos = 0;
        assert_eq!(info_point_at(&pts, &mut pos, 0), Some(10));
        assert_eq!(info_point_at(&pts, &mut pos, 1), None);
        assert_eq!(info_point_at(&pts, &mut pos, 2), Some(30));
        assert_eq!(info_point_at(&pts, &mut pos, 3), None);
    }
}

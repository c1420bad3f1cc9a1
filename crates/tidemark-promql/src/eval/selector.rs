//! Selecting data: instant vector selectors (lookback and staleness), range
//! selectors, and subqueries.

use std::collections::HashSet;

use parking_lot::{Condvar, Mutex};

use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{MatrixSelector, SubqueryExpr, VectorSelector};
use tidemark_storage::chunkenc::Extreme;
use tidemark_storage::histogram::HistogramSample;
use tidemark_storage::prefetch::prefetch;
use tidemark_storage::{is_stale_nan, Labels, MatchOp, Matcher, Sample, METRIC_NAME};

use super::{duration_ms, offset_ms, Evaluator, StepSeries, Val};
use crate::annotations::Annotation;
use crate::error::Error;
use crate::storage::SelectedSeries;
use crate::value::HistogramPoint;

/// The matcher sets of a selector: usually one; several when the selector
/// uses `or` between matcher groups.
pub(crate) fn matcher_sets(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, Error> {
    let convert = |group: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, Error> {
        let mut out = Vec::with_capacity(group.len() + 1);
        if let Some(name) = &vs.name {
            if !group.iter().any(|m| m.name == METRIC_NAME && m.op == ParserOp::Equal && &m.value == name) {
                out.push(Matcher::equal(METRIC_NAME, name.as_str()));
            }
        }
        for m in group {
            let op = match m.op {
                ParserOp::Equal => MatchOp::Equal,
                ParserOp::NotEqual => MatchOp::NotEqual,
                ParserOp::Re(_) => MatchOp::Regex,
                ParserOp::NotRe(_) => MatchOp::NotRegex,
            };
            let value = match op {
                MatchOp::Regex | MatchOp::NotRegex => crate::regex_compat::ascii_perl_classes(&m.value),
                _ => m.value.clone(),
            };
            let matcher = Matcher::new(op, m.name.as_str(), value)
                .map_err(|e| Error::InvalidQuery(format!("invalid regular expression {:?}: {e}", m.value)))?;
            out.push(matcher);
        }
        Ok(out)
    };
    let mut sets = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        sets.push(convert(&vs.matchers.matchers)?);
    } else {
        for g in &vs.matchers.or_matchers {
            sets.push(convert(g)?);
        }
    }
    Ok(sets)
}

/// The order a selection's series are wanted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Sorted by labels: what every evaluation whose answer can depend on
    /// the order gets (float sums add in this order, groups are output in
    /// the order they are first seen).
    Labels,
    /// Any order: the consumer only counts series (`count`/`group` into a
    /// single group).
    Any,
    /// Any order, and the labels may be empty: the consumer uses neither
    /// (`count`/`group` into a single group of a selector streamed
    /// directly). With several matcher sets (`or`), which are de-duplicated
    /// by labels, it is [`Order::Any`].
    Unlabelled,
}

impl Evaluator<'_, '_> {
    /// The series a selector matches with samples in `[mint, maxt]`.
    pub(crate) fn select(&self, vs: &VectorSelector, mint: i64, maxt: i64) -> Result<Vec<SelectedSeries>, Error> {
        self.select_in(vs, mint, maxt, Order::Labels)
    }

    /// [`Evaluator::select`], in label order or (with [`Order::Any`], for a
    /// consumer whose answer cannot depend on the order) in whatever order
    /// the storage finds cheapest.
    pub(crate) fn select_in(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        order: Order,
    ) -> Result<Vec<SelectedSeries>, Error> {
        let sets = matcher_sets(vs)?;
        if mint > maxt {
            return Ok(Vec::new());
        }
        let order = if order == Order::Unlabelled && sets.len() > 1 { Order::Any } else { order };
        let source = self.sh.ctx.source;
        // Data the storage could not read (damaged files) is reported as a
        // warning on the whole query rather than failing it.
        let select = |set: &[Matcher]| -> Result<Vec<SelectedSeries>, Error> {
            let (series, warnings) = match order {
                Order::Labels => source.select_with_warnings(mint, maxt, set),
                Order::Any => source.select_unordered_with_warnings(mint, maxt, set),
                Order::Unlabelled => source.select_unlabelled_with_warnings(mint, maxt, set),
            }
            .map_err(Error::Storage)?;
            let mut ann = self.sh.annotations.borrow_mut();
            for w in warnings {
                ann.add(Annotation::warning(w, None));
            }
            Ok(series)
        };
        if sets.len() == 1 {
            return select(&sets[0]);
        }
        let mut seen: HashSet<Labels> = HashSet::new();
        let mut out = Vec::new();
        for set in &sets {
            for s in select(set)? {
                if seen.insert(s.labels.clone()) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// Reads a selected series' samples into `buf` (cleared first).
    pub(crate) fn load(&self, s: &mut SelectedSeries, buf: &mut Vec<Sample>, drop_stale: bool) -> Result<(), Error> {
        let read = load_samples(s, buf, drop_stale)?;
        self.sh.count_read(read);
        Ok(())
    }

    /// An instant vector selector at every step: the newest sample within
    /// the lookback window `(t - lookback, t]`, unless it is a staleness
    /// marker. With `sample_time`, the value is the sample's own timestamp in
    /// seconds (what `timestamp()` reports).
    pub(crate) fn eval_vector_selector_with(
        &self,
        vs: &VectorSelector,
        sample_time: bool,
    ) -> Result<Vec<StepSeries>, Error> {
        let mut out = Vec::new();
        self.stream_vector_selector(vs, sample_time, Order::Labels, &mut |s| {
            self.sh.hold(s.points.len() + super::series::histogram_points_weight(&s.histograms))?;
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`eval_vector_selector_with`](Self::eval_vector_selector_with), handing
    /// each series to `sink` as soon as it is computed.
    pub(crate) fn stream_vector_selector(
        &self,
        vs: &VectorSelector,
        sample_time: bool,
        order: Order,
        sink: &mut dyn FnMut(StepSeries) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let lookback = self.sh.ctx.lookback_ms;
        let (lo, hi) = match at {
            Some(a) => (a - offset, a - offset),
            None => (self.start - offset, self.end - offset),
        };
        let selected = self.select_in(vs, lo - lookback + 1, hi, order)?;
        let grid = self.grid();
        // One evaluation time for every step (an instant query, or `@`):
        // only each series' newest sample in the window can be chosen.
        let newest_only = at.is_some() || grid.nsteps <= 1;
        let spare = &self.sh.ctx.spare_points;
        let stats_only = self.sh.stats_only(vs);
        self.map_series(
            selected,
            |s, buf| {
                if s.samples.has_histograms() {
                    let mut hbuf = Vec::new();
                    let read = load_mixed_samples(s, buf, &mut hbuf, false)?;
                    if stats_only {
                        super::histogram_stats::to_stats(&mut hbuf);
                    }
                    let mut points = spare.take(0);
                    let mut histograms = Vec::new();
                    grid.for_each_latest_mixed(buf, &hbuf, at, offset, lookback, |_, ts, latest| match latest {
                        Latest::Float(p) => {
                            let v = if sample_time { p.t as f64 / 1000.0 } else { p.v };
                            points.push(Sample { t: ts, v });
                        }
                        Latest::Histogram(h) if sample_time => points.push(Sample { t: ts, v: h.t as f64 / 1000.0 }),
                        Latest::Histogram(h) => histograms.push(HistogramPoint { t: ts, h: h.h.to_float() }),
                    });
                    return Ok((read, (points, histograms)));
                }
                let read = if newest_only { load_newest_samples(s, buf)? } else { load_samples(s, buf, false)? };
                let mut points = spare.take(0);
                grid.for_each_latest(buf, at, offset, lookback, |_, ts, p| {
                    let v = if sample_time { p.t as f64 / 1000.0 } else { p.v };
                    points.push(Sample { t: ts, v });
                });
                Ok((read, (points, Vec::new())))
            },
            |labels, read, (points, histograms)| {
                self.sh.count_read(read);
                if points.is_empty() && histograms.is_empty() {
                    spare.give(points);
                    return Ok(());
                }
                sink(StepSeries { labels, drop_name: false, points, histograms })
            },
        )
    }

    pub(crate) fn eval_vector_selector(&self, vs: &VectorSelector) -> Result<Vec<StepSeries>, Error> {
        self.eval_vector_selector_with(vs, false)
    }

    /// A range selector evaluated on its own (instant queries only): the raw
    /// samples in `(t - range, t]`, without staleness markers.
    pub(crate) fn eval_matrix_selector_raw(&self, ms: &MatrixSelector) -> Result<Vec<StepSeries>, Error> {
        let offset = offset_ms(&ms.vs.offset);
        let t = self.at_ms(&ms.vs.at).unwrap_or(self.start) - offset;
        let range = duration_ms(&ms.range);
        let selected = self.select(&ms.vs, t - range + 1, t)?;
        let mut out = Vec::with_capacity(selected.len());
        let mut buf = Vec::new();
        let mut hbuf = Vec::new();
        for mut s in selected {
            self.sh.tick()?;
            let histograms = if s.samples.has_histograms() {
                let read = load_mixed_samples(&mut s, &mut buf, &mut hbuf, true)?;
                if self.sh.stats_only(&ms.vs) {
                    super::histogram_stats::to_stats(&mut hbuf);
                }
                self.sh.count_read(read);
                hbuf.iter()
                    .filter(|h| h.t > t - range && h.t <= t)
                    .map(|h| HistogramPoint { t: h.t, h: h.h.to_float() })
                    .collect()
            } else {
                self.load(&mut s, &mut buf, true)?;
                Vec::new()
            };
            buf.retain(|p| p.t > t - range && p.t <= t);
            if !buf.is_empty() || !histograms.is_empty() {
                self.sh.hold(buf.len() + super::series::histogram_points_weight(&histograms))?;
                out.push(StepSeries { labels: s.labels, drop_name: false, points: buf.clone(), histograms });
            }
        }
        Ok(out)
    }

    /// Evaluates a subquery's inner expression on the subquery's own step
    /// grid, covering every window the outer steps will need. Returns the
    /// inner series and the number of points held.
    pub(crate) fn eval_subquery(&self, sq: &SubqueryExpr) -> Result<(Vec<StepSeries>, usize), Error> {
        let offset = offset_ms(&sq.offset);
        let range = duration_ms(&sq.range);
        let step = match sq.step.as_ref().map(duration_ms) {
            Some(s) if s > 0 => s,
            _ => self.sh.ctx.opts.default_subquery_step.as_millis() as i64,
        };
        if step <= 0 {
            return Err(Error::InvalidQuery("subquery step must be positive".into()));
        }
        let (outer_start, outer_end) = match self.at_ms(&sq.at) {
            Some(a) => (a, a),
            None => (self.start, self.start + ((self.end - self.start) / self.interval) * self.interval),
        };
        let end = outer_end - offset;
        let first = outer_start - offset - range;
        let mut start = step * (first / step);
        if start <= first {
            start += step;
        }
        if start > end {
            return Ok((Vec::new(), 0));
        }
        let child = Evaluator { sh: self.sh, start, end, interval: step };
        let series = match child.eval(&sq.expr)? {
            Val::Vector(s) => s,
            Val::Scalar(v) => vec![StepSeries {
                labels: Labels::empty(),
                drop_name: false,
                points: v.iter().enumerate().map(|(i, &v)| Sample { t: child.ts(i), v }).collect(),
                histograms: Vec::new(),
            }],
            other => {
                return Err(Error::InvalidQuery(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )))
            }
        };
        let held = super::series::total_points(&series);
        Ok((series, held))
    }

    /// Calls `f(step, eval_t, window, range_start, range_end)` for every step
    /// whose window `(range_start, range_end]` over `samples` is non-empty.
    /// `at` pins every window to one time. Fails if the query is cancelled
    /// or times out meanwhile.
    pub(crate) fn for_each_window(
        &self,
        samples: &[Sample],
        range: i64,
        offset: i64,
        at: Option<i64>,
        f: impl FnMut(usize, i64, &[Sample], i64, i64),
    ) -> Result<(), Error> {
        let ctx = self.sh.ctx;
        self.grid().for_each_window(samples, range, offset, at, &|| ctx.check_interrupt(), f)
    }

    /// The evaluator's step grid, which worker threads can share.
    pub(crate) fn grid(&self) -> StepGrid {
        StepGrid { start: self.start, interval: self.interval, nsteps: self.nsteps() }
    }
}

/// The steps an evaluator runs at: `start + i * interval` for `i < nsteps`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepGrid {
    pub(crate) start: i64,
    pub(crate) interval: i64,
    pub(crate) nsteps: usize,
}

impl StepGrid {
    /// Calls `f(step, eval_t, sample)` for every step at which an instant
    /// selector sees a sample: the newest one at or before `at.unwrap_or(t) -
    /// offset` and newer than `lookback` before it, unless it is a staleness
    /// marker (Prometheus' `vectorSelectorSingle`). `samples` must be sorted.
    pub(crate) fn for_each_latest(
        &self,
        samples: &[Sample],
        at: Option<i64>,
        offset: i64,
        lookback: i64,
        mut f: impl FnMut(usize, i64, Sample),
    ) {
        let mut j = 0;
        for step in 0..self.nsteps {
            let ts = self.start + step as i64 * self.interval;
            let r = at.unwrap_or(ts).saturating_sub(offset);
            while j < samples.len() && samples[j].t <= r {
                j += 1;
            }
            let Some(p) = j.checked_sub(1).map(|k| samples[k]) else { continue };
            if p.t <= r.saturating_sub(lookback) || is_stale_nan(p.v) {
                continue;
            }
            f(step, ts, p);
        }
    }

    /// [`StepGrid::for_each_latest`] over a series holding floats and
    /// histograms (each sorted, no timestamp in both): at each step the
    /// newest sample of either kind, unless it is a staleness marker.
    pub(crate) fn for_each_latest_mixed<'a>(
        &self,
        floats: &'a [Sample],
        histograms: &'a [HistogramSample],
        at: Option<i64>,
        offset: i64,
        lookback: i64,
        mut f: impl FnMut(usize, i64, Latest<'a>),
    ) {
        let (mut i, mut j) = (0, 0);
        for step in 0..self.nsteps {
            let ts = self.start + step as i64 * self.interval;
            let r = at.unwrap_or(ts).saturating_sub(offset);
            while i < floats.len() && floats[i].t <= r {
                i += 1;
            }
            while j < histograms.len() && histograms[j].t <= r {
                j += 1;
            }
            let fl = i.checked_sub(1).map(|k| &floats[k]);
            let hi = j.checked_sub(1).map(|k| &histograms[k]);
            let latest = match (fl, hi) {
                (Some(p), Some(h)) if h.t > p.t => Latest::Histogram(h),
                (Some(p), _) => Latest::Float(*p),
                (None, Some(h)) => Latest::Histogram(h),
                (None, None) => continue,
            };
            let (t, stale) = match &latest {
                Latest::Float(p) => (p.t, is_stale_nan(p.v)),
                Latest::Histogram(h) => (h.t, h.h.is_stale()),
            };
            if t <= r.saturating_sub(lookback) || stale {
                continue;
            }
            f(step, ts, latest);
        }
    }

    /// An upper bound on the steps whose window of length `range` can hold
    /// one of `samples` (sorted): no more than the steps, nor than the steps
    /// spanned by the samples plus one window. A capacity for one point per
    /// such step, so a sparse series over a long range reserves little.
    pub(crate) fn max_windows(&self, samples: &[Sample], range: i64) -> usize {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return 0 };
        if self.interval <= 0 {
            return self.nsteps;
        }
        let span = last.t.saturating_sub(first.t).saturating_add(range.max(0));
        let steps = usize::try_from(span / self.interval).unwrap_or(usize::MAX).saturating_add(2);
        steps.min(self.nsteps)
    }

    /// See [`Evaluator::for_each_window`]. `interrupt` is called whenever
    /// about [`WINDOW_WORK_PER_CHECK`] samples of windows were handed to
    /// `f`: one series with many steps and long windows (a subquery over a
    /// subquery) can take minutes on its own, so checking between series is
    /// not enough.
    pub(crate) fn for_each_window(
        &self,
        samples: &[Sample],
        range: i64,
        offset: i64,
        at: Option<i64>,
        interrupt: &(dyn Fn() -> Result<(), Error> + Sync),
        mut f: impl FnMut(usize, i64, &[Sample], i64, i64),
    ) -> Result<(), Error> {
        self.for_each_window_at(samples, range, offset, at, interrupt, |step, ts, lo, hi, start, end| {
            f(step, ts, &samples[lo..hi], start, end)
        })
    }

    /// [`for_each_window`](Self::for_each_window), handing `f` the window
    /// as the index range `lo..hi` of `samples` (non-empty; both ends only
    /// move forward from step to step).
    pub(crate) fn for_each_window_at(
        &self,
        samples: &[Sample],
        range: i64,
        offset: i64,
        at: Option<i64>,
        interrupt: &(dyn Fn() -> Result<(), Error> + Sync),
        mut f: impl FnMut(usize, i64, usize, usize, i64, i64),
    ) -> Result<(), Error> {
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut work = 0usize;
        for step in 0..self.nsteps {
            work += 1 + (hi - lo);
            if work >= WINDOW_WORK_PER_CHECK {
                work = 0;
                interrupt()?;
            }
            let ts = self.start + step as i64 * self.interval;
            let end = at.unwrap_or(ts) - offset;
            let start = end - range;
            while hi < samples.len() && samples[hi].t <= end {
                hi += 1;
            }
            while lo < hi && samples[lo].t <= start {
                lo += 1;
            }
            if lo < hi {
                f(step, ts, lo, hi, start, end);
            }
        }
        Ok(())
    }
}

/// Samples of range windows processed between two interrupt checks (about
/// a millisecond of work).
const WINDOW_WORK_PER_CHECK: usize = 1 << 20;

/// Reads a selected series' samples into `buf` (cleared first), dropping
/// staleness markers if asked. Returns the number of samples read.
pub(crate) fn load_samples(s: &mut SelectedSeries, buf: &mut Vec<Sample>, drop_stale: bool) -> Result<usize, Error> {
    buf.clear();
    // One batch call: storage iterators decode a chunk at a time instead of
    // a chain of dynamic calls per sample.
    s.samples.drain_into(buf);
    if let Some(e) = s.samples.err() {
        return Err(Error::Storage(e.to_string()));
    }
    let read = buf.len();
    if drop_stale {
        buf.retain(|p| !is_stale_nan(p.v));
    }
    Ok(read)
}

/// Reads a selected series that may hold histograms: floats into `buf`,
/// histograms into `hbuf` (both cleared first), dropping staleness markers
/// of both kinds if asked. Returns the number of samples read.
pub(crate) fn load_mixed_samples(
    s: &mut SelectedSeries,
    buf: &mut Vec<Sample>,
    hbuf: &mut Vec<HistogramSample>,
    drop_stale: bool,
) -> Result<usize, Error> {
    buf.clear();
    hbuf.clear();
    s.samples.drain_mixed_into(buf, hbuf);
    if let Some(e) = s.samples.err() {
        return Err(Error::Storage(e.to_string()));
    }
    let read = buf.len() + hbuf.len();
    if drop_stale {
        buf.retain(|p| !is_stale_nan(p.v));
        hbuf.retain(|h| !h.h.is_stale());
    }
    Ok(read)
}

/// The sample an instant selector picks at one step.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Latest<'a> {
    Float(Sample),
    Histogram(&'a HistogramSample),
}

/// [`load_samples`] for an extreme-only reader (staleness markers dropped):
/// chunks wholly inside `[mint, maxt]` may arrive as one sample holding
/// their `extreme`. Returns the number of samples the series holds in the
/// selection, as `load_samples` would.
pub(crate) fn load_extreme_samples(
    s: &mut SelectedSeries,
    buf: &mut Vec<Sample>,
    extreme: Extreme,
    mint: i64,
    maxt: i64,
) -> Result<usize, Error> {
    buf.clear();
    let read = s.samples.drain_extreme_into(extreme, mint, maxt, buf);
    if let Some(e) = s.samples.err() {
        return Err(Error::Storage(e.to_string()));
    }
    buf.retain(|p| !is_stale_nan(p.v));
    Ok(read)
}

/// Reads into `buf` (cleared first) at least a selected series' newest
/// sample: a suffix of what [`load_samples`] would read, all that an instant
/// selector evaluated at one time looks at (see
/// `SampleIterator::drain_last_into`). Staleness markers are kept. Returns
/// the number of samples read.
pub(crate) fn load_newest_samples(s: &mut SelectedSeries, buf: &mut Vec<Sample>) -> Result<usize, Error> {
    buf.clear();
    s.samples.drain_last_into(buf);
    if let Some(e) = s.samples.err() {
        return Err(Error::Storage(e.to_string()));
    }
    Ok(buf.len())
}

/// One series after [`Evaluator::map_series_parallel`]: labels, samples read, output.
pub(crate) type Mapped<T> = (Labels, usize, T);

/// Below this many series a query runs on the calling thread only.
const PARALLEL_MIN_SERIES: usize = 512;

/// Series each worker takes per batch.
const PARALLEL_BATCH_PER_THREAD: usize = 1024;

/// How many spare point buffers a query keeps for reuse: the outputs of two
/// batches per worker are alive at once at most (the workers stay that
/// close to the sink, see [`Evaluator::map_series`]),
/// so keeping that many recycles every one of them without raising the peak.
pub(crate) fn max_spare_point_buffers(parallelism: usize) -> usize {
    2 * parallelism.max(1) * PARALLEL_BATCH_PER_THREAD
}

impl Evaluator<'_, '_> {
    /// Runs `work` on every selected series and hands `(labels, samples
    /// read, output)` to `sink` in selection order. Large selections are
    /// processed in batches by up to `EngineOptions::parallelism` worker
    /// threads, the sink taking each batch's outputs in order while the
    /// workers compute the next ones (at most two batches per worker
    /// ahead); each worker reuses one sample buffer, so memory stays
    /// proportional to one series per worker plus two batches of outputs
    /// per worker.
    pub(crate) fn map_series<T: Send>(
        &self,
        selected: Vec<SelectedSeries>,
        work: impl Fn(&mut SelectedSeries, &mut Vec<Sample>) -> Result<(usize, T), Error> + Sync,
        mut sink: impl FnMut(Labels, usize, T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let ctx = self.sh.ctx;
        let threads = ctx.opts.parallelism.max(1).min(selected.len() / PARALLEL_MIN_SERIES).max(1);
        if threads <= 1 {
            let mut buf = Vec::new();
            let mut it = selected.into_iter();
            for i in 0usize.. {
                hint_ahead(it.as_slice());
                let Some(mut s) = it.next() else { break };
                if i % 64 == 0 {
                    ctx.check_interrupt()?;
                }
                let (read, v) = work(&mut s, &mut buf)?;
                sink(s.labels, read, v)?;
            }
            return Ok(());
        }
        let run_chunk = |chunk: Vec<SelectedSeries>| -> Result<Vec<Mapped<T>>, Error> {
            let mut buf = Vec::new();
            let mut out = Vec::with_capacity(chunk.len());
            let mut it = chunk.into_iter();
            for i in 0usize.. {
                hint_ahead(it.as_slice());
                let Some(mut s) = it.next() else { break };
                if i % 64 == 0 {
                    ctx.check_interrupt()?;
                }
                let (read, v) = work(&mut s, &mut buf)?;
                out.push((s.labels, read, v));
            }
            Ok(out)
        };
        // Batches of the selection, in order, are taken by `threads`
        // workers started once (not once per round: a large selection made
        // dozens of threads per query), and this thread hands each batch's
        // outputs to the sink in order (an aggregation's group lookups and
        // sums, or an answer's edits) while the workers compute the next
        // ones. Workers stay at most `window` batches ahead of the sink, so
        // at most that many batches of outputs are alive.
        let per = PARALLEL_BATCH_PER_THREAD;
        let mut todo = std::collections::VecDeque::new();
        let mut it = selected.into_iter();
        loop {
            let c: Vec<SelectedSeries> = it.by_ref().take(per).collect();
            if c.is_empty() {
                break;
            }
            todo.push_back((todo.len(), c));
        }
        run_batches(todo, threads, &run_chunk, &mut sink)
    }
}

/// Runs `run` on every batch of `todo` (in order of their places, which
/// are `0, 1, 2, …`) on `threads` workers and hands the outputs to `sink`
/// on this thread, batch after batch in order, the workers at most two
/// batches each ahead of it. The first error (a batch's or the sink's)
/// stops everything and is returned.
fn run_batches<T: Send>(
    todo: std::collections::VecDeque<(usize, Vec<SelectedSeries>)>,
    threads: usize,
    run: &(impl Fn(Vec<SelectedSeries>) -> Result<Vec<Mapped<T>>, Error> + Sync),
    sink: &mut impl FnMut(Labels, usize, T) -> Result<(), Error>,
) -> Result<(), Error> {
    let batches = todo.len();
    let window = 2 * threads.max(1);
    let queue = BatchQueue {
        state: Mutex::new(QueueState { todo, done: (0..batches).map(|_| None).collect(), sunk: 0, stop: false }),
        changed: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| queue.work(window, run));
        }
        // However this thread leaves (the end, an error, a panic in the
        // sink), the workers stop after their current batch instead of
        // waiting for the sink forever, so the scope can end.
        let _stop = StopOnDrop(&queue);
        (0..batches).try_for_each(|i| {
            let outputs = queue.wait_for(i);
            let sunk = outputs.and_then(|out| out.into_iter().try_for_each(|(l, read, v)| sink(l, read, v)));
            queue.sunk(i + 1, sunk.is_err());
            sunk
        })
    })
}

/// Stops a [`BatchQueue`]'s workers when dropped.
struct StopOnDrop<'a, T>(&'a BatchQueue<T>);

impl<T> Drop for StopOnDrop<'_, T> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.stop = true;
        self.0.changed.notify_all();
    }
}

/// The batches of one [`Evaluator::map_series`] and their outputs, shared
/// by its workers and the thread that sinks the outputs.
struct BatchQueue<T> {
    state: Mutex<QueueState<T>>,
    /// Signalled when a batch is done, the sink moves on, or work stops.
    changed: Condvar,
}

struct QueueState<T> {
    /// Batches not yet taken, with their place in the selection.
    todo: std::collections::VecDeque<(usize, Vec<SelectedSeries>)>,
    /// Outputs of finished batches not yet sunk, by place.
    done: Vec<Option<Result<Vec<Mapped<T>>, Error>>>,
    /// Batches handed to the sink so far.
    sunk: usize,
    /// Set when the sink stops (an error, or the end): no more batches.
    stop: bool,
}

impl<T> BatchQueue<T> {
    /// A worker: takes batches in order, at most `window` ahead of the
    /// sink, until none are left or work stops. A panic in `run` becomes
    /// the batch's error, so the sink never waits for a batch that cannot
    /// come.
    fn work(&self, window: usize, run: &(impl Fn(Vec<SelectedSeries>) -> Result<Vec<Mapped<T>>, Error> + Sync)) {
        loop {
            let (i, batch) = {
                let mut st = self.state.lock();
                loop {
                    if st.stop {
                        return;
                    }
                    let next = st.todo.front().map(|&(i, _)| i);
                    match next {
                        None => return,
                        Some(i) if i >= st.sunk + window => self.changed.wait(&mut st),
                        Some(_) => break,
                    }
                }
                match st.todo.pop_front() {
                    Some(b) => b,
                    None => return,
                }
            };
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(batch)))
                .unwrap_or_else(|_| Err(Error::Execution("query worker panicked".into())));
            let mut st = self.state.lock();
            st.done[i] = Some(out);
            self.changed.notify_all();
        }
    }

    /// Waits for the outputs of batch `i` and takes them.
    fn wait_for(&self, i: usize) -> Result<Vec<Mapped<T>>, Error> {
        let mut st = self.state.lock();
        loop {
            if let Some(out) = st.done[i].take() {
                return out;
            }
            self.changed.wait(&mut st);
        }
    }

    /// Records that the first `n` batches were sunk (and, with `stop`, that
    /// no more are wanted), letting the workers move on.
    fn sunk(&self, n: usize, stop: bool) {
        let mut st = self.state.lock();
        st.sunk = st.sunk.max(n);
        st.stop |= stop;
        self.changed.notify_all();
    }
}

/// Series ahead of the one being read at which [`hint_ahead`] starts
/// loading each step of the chain a read follows: the iterator's state and
/// the labels, then what the state points to, then one step further. One
/// series takes a microsecond or more to read, far more than a memory
/// latency, so a short distance per step is enough.
const HINT_STATE_AHEAD: usize = 3;
const HINT_HOP0_AHEAD: usize = 2;
const HINT_HOP1_AHEAD: usize = 1;

/// Starts loading what reading the series in `ahead` (the ones still to be
/// read, in order) will touch, a few series before it is read: each
/// series' iterator state, its labels (a range function edits them) and,
/// through the iterator ([`tidemark_storage::SampleIterator::prefetch`]),
/// its chunk list and chunk bytes. A selection's series were made by other
/// threads long before (during the select and the sort), so each of these
/// is a cache miss, one depending on the other.
#[inline]
fn hint_ahead(ahead: &[SelectedSeries]) {
    if let Some(s) = ahead.get(HINT_STATE_AHEAD) {
        prefetch((&*s.samples as *const (dyn tidemark_storage::SampleIterator + Send)).cast::<u8>());
        prefetch(s.labels.encoded().as_ptr());
    }
    if let Some(s) = ahead.get(HINT_HOP0_AHEAD) {
        s.samples.prefetch(0);
    }
    if let Some(s) = ahead.get(HINT_HOP1_AHEAD) {
        s.samples.prefetch(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` batches of one series each, the series' place as its label.
    fn batches(n: usize) -> std::collections::VecDeque<(usize, Vec<SelectedSeries>)> {
        (0..n)
            .map(|i| {
                let labels = Labels::new([("i", i.to_string())]).unwrap();
                (i, vec![SelectedSeries { labels, samples: Box::new(tidemark_storage::VecIterator::default()) }])
            })
            .collect()
    }

    fn run_one(batch: Vec<SelectedSeries>) -> Result<Vec<Mapped<usize>>, Error> {
        Ok(batch.into_iter().map(|s| (s.labels, 1, 7)).collect())
    }

    #[test]
    fn batches_reach_the_sink_in_order_and_the_first_error_stops_them() {
        for threads in 1..=3 {
            let mut seen = Vec::new();
            let r = run_batches(batches(40), threads, &run_one, &mut |l: Labels, _, _| {
                seen.push(l.get("i").unwrap().parse::<usize>().unwrap());
                Ok(())
            });
            assert!(r.is_ok());
            assert_eq!(seen, (0..40).collect::<Vec<_>>(), "{threads} threads");
            // A batch's error comes after every earlier batch was sunk.
            let failing = |b: Vec<SelectedSeries>| {
                if b[0].labels.get("i") == Some("13") {
                    return Err(Error::Execution("batch 13".into()));
                }
                run_one(b)
            };
            let mut sunk = 0;
            let r = run_batches(batches(40), threads, &failing, &mut |_, _, _| {
                sunk += 1;
                Ok(())
            });
            assert!(matches!(r, Err(Error::Execution(ref m)) if m == "batch 13"));
            assert_eq!(sunk, 13);
        }
    }

    #[test]
    fn a_panicking_batch_is_an_error_and_a_panicking_sink_does_not_hang() {
        let panicking = |b: Vec<SelectedSeries>| {
            if b[0].labels.get("i") == Some("2") {
                panic!("worker");
            }
            run_one(b)
        };
        let r = run_batches(batches(10), 2, &panicking, &mut |_, _, _| Ok(()));
        assert!(matches!(r, Err(Error::Execution(ref m)) if m.contains("panicked")));
        // The workers are ahead of the sink (waiting for it) when it panics:
        // they stop, and the panic comes out.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batches(batches(50), 2, &run_one, &mut |_, _, _| -> Result<(), Error> { panic!("sink") })
        }));
        assert!(out.is_err());
    }

    #[test]
    fn max_windows_bounds_the_windows_that_hold_samples() {
        let grid = StepGrid { start: 0, interval: 15_000, nsteps: 241 };
        let never = |_: ()| -> Result<(), Error> { Ok(()) };
        for (first, count, every, range) in
            [(0, 241, 15_000, 300_000), (1_000_000, 3, 7_000, 60_000), (3_500_000, 1, 1, 0), (-90_000, 5, 30_000, 10)]
        {
            let samples: Vec<Sample> = (0..count).map(|i| Sample::new(first + i * every, 1.0)).collect();
            let mut windows = 0;
            grid.for_each_window_at(&samples, range, 0, None, &|| never(()), |_, _, _, _, _, _| windows += 1).unwrap();
            let bound = grid.max_windows(&samples, range);
            assert!(windows <= bound && bound <= grid.nsteps, "{windows} windows, bound {bound}");
        }
        assert_eq!(grid.max_windows(&[], 300_000), 0);
    }
}

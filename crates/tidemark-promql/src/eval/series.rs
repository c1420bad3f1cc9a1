//! The evaluator's intermediate values and the helpers that assemble them.

use std::collections::HashMap;

use tidemark_storage::histogram::FloatHistogram;
use tidemark_storage::{Labels, Sample};

use crate::error::Error;
use crate::value::HistogramPoint;

/// One output series of a node: labels, whether `__name__` is to be dropped
/// at the end (delayed name removal), and its points (one per step at most,
/// or raw samples in a range vector), oldest first.
#[derive(Debug, Clone)]
pub(crate) struct StepSeries {
    pub(crate) labels: Labels,
    pub(crate) drop_name: bool,
    /// Float points.
    pub(crate) points: Vec<Sample>,
    /// Native-histogram points, oldest first; a step's value is a float
    /// or a histogram, never both.
    pub(crate) histograms: Vec<HistogramPoint>,
}

/// What a node evaluates to, for all steps of its evaluator.
#[derive(Debug)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    /// An instant vector at every step.
    Vector(Vec<StepSeries>),
    /// A range vector (only in instant evaluation): raw samples per series.
    Matrix(Vec<StepSeries>),
}

impl Val {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::String(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }
}

pub(crate) const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// Merges series that have the same labels; fails if two of them have a
/// point at the same time (Prometheus' `mergeSeriesWithSameLabelset`).
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, Error> {
    if series.len() <= 1 {
        return Ok(series);
    }
    // Label sets are found by their bytes: no clone per series.
    let mut index = super::key_index::KeyIndex::new();
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    let mut merged_any = false;
    for s in series {
        let (i, new) = index.find_or_insert(s.labels.encoded());
        if new {
            out.push(s);
        } else {
            let target = &mut out[i];
            target.points.extend_from_slice(&s.points);
            target.histograms.extend(s.histograms);
            target.drop_name |= s.drop_name;
            merged_any = true;
        }
    }
    if merged_any {
        for s in &mut out {
            s.points.sort_by_key(|p| p.t);
            if s.points.windows(2).any(|w| w[0].t == w[1].t) {
                return Err(Error::Execution(DUPLICATE_LABELSET.into()));
            }
            if !s.histograms.is_empty() {
                s.histograms.sort_by_key(|p| p.t);
                let clash = s.histograms.windows(2).any(|w| w[0].t == w[1].t)
                    || s.histograms.iter().any(|h| s.points.binary_search_by_key(&h.t, |p| p.t).is_ok());
                if clash {
                    return Err(Error::Execution(DUPLICATE_LABELSET.into()));
                }
            }
        }
    }
    Ok(out)
}

/// Collects the per-step output of an operator into series keyed by labels,
/// failing when two outputs of the same step have the same labels.
#[derive(Debug, Default)]
pub(crate) struct SeriesBuilder {
    index: HashMap<Labels, usize>,
    series: Vec<StepSeries>,
}

impl SeriesBuilder {
    pub(crate) fn new() -> SeriesBuilder {
        SeriesBuilder::default()
    }

    /// Adds the value of series `labels` at time `t`. Steps must be added in
    /// increasing time order.
    pub(crate) fn push(&mut self, labels: &Labels, drop_name: bool, t: i64, v: f64) -> Result<(), Error> {
        match self.index.get(labels) {
            Some(&i) => {
                let s = &mut self.series[i];
                if s.points.last().is_some_and(|p| p.t == t) {
                    return Err(Error::Execution(DUPLICATE_LABELSET.into()));
                }
                s.points.push(Sample { t, v });
                s.drop_name |= drop_name;
            }
            None => {
                self.index.insert(labels.clone(), self.series.len());
                self.series.push(StepSeries {
                    labels: labels.clone(),
                    drop_name,
                    points: vec![Sample { t, v }],
                    histograms: Vec::new(),
                });
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<StepSeries> {
        self.series
    }
}

/// Walks the points of many series step by step.
pub(crate) struct StepCursor {
    pos: Vec<usize>,
}

impl StepCursor {
    pub(crate) fn new(n: usize) -> StepCursor {
        StepCursor { pos: vec![0; n] }
    }

    /// The value of series `i` at time `t`, if it has one. Times must be
    /// asked in increasing order per series.
    #[inline]
    pub(crate) fn value_at(&mut self, series: &[StepSeries], i: usize, t: i64) -> Option<f64> {
        let pts = &series[i].points;
        let p = &mut self.pos[i];
        while *p < pts.len() && pts[*p].t < t {
            *p += 1;
        }
        if *p < pts.len() && pts[*p].t == t {
            Some(pts[*p].v)
        } else {
            None
        }
    }
}

/// Walks the histogram points of many series step by step (the histogram
/// counterpart of [`StepCursor`]).
pub(crate) struct HistCursor {
    pos: Vec<usize>,
}

impl HistCursor {
    pub(crate) fn new(n: usize) -> HistCursor {
        HistCursor { pos: vec![0; n] }
    }

    /// The histogram of series `i` at time `t`, if it has one. Times must
    /// be asked in non-decreasing order per series.
    pub(crate) fn at<'a>(&mut self, series: &'a [StepSeries], i: usize, t: i64) -> Option<&'a FloatHistogram> {
        let hs = &series[i].histograms;
        let p = &mut self.pos[i];
        while *p < hs.len() && hs[*p].t < t {
            *p += 1;
        }
        hs.get(*p).filter(|h| h.t == t).map(|h| &h.h)
    }
}

/// Collects per-step output series with float and histogram points,
/// keyed by labels (the mixed counterpart of [`SeriesBuilder`]).
#[derive(Debug, Default)]
pub(crate) struct MixedBuilder {
    index: HashMap<Labels, usize>,
    series: Vec<StepSeries>,
}

impl MixedBuilder {
    fn entry(&mut self, labels: &Labels, drop_name: bool, t: i64) -> Result<&mut StepSeries, Error> {
        let i = match self.index.get(labels) {
            Some(&i) => {
                let s = &self.series[i];
                if s.points.last().is_some_and(|p| p.t == t) || s.histograms.last().is_some_and(|p| p.t == t) {
                    return Err(Error::Execution(DUPLICATE_LABELSET.into()));
                }
                i
            }
            None => {
                self.index.insert(labels.clone(), self.series.len());
                self.series.push(StepSeries {
                    labels: labels.clone(),
                    drop_name: false,
                    points: Vec::new(),
                    histograms: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[i];
        s.drop_name |= drop_name;
        Ok(s)
    }

    /// Adds the float value of series `labels` at time `t` (steps in
    /// increasing time order).
    pub(crate) fn push(&mut self, labels: &Labels, drop_name: bool, t: i64, v: f64) -> Result<(), Error> {
        self.entry(labels, drop_name, t)?.points.push(Sample { t, v });
        Ok(())
    }

    /// Adds the histogram value of series `labels` at time `t`.
    pub(crate) fn push_histogram(
        &mut self,
        labels: &Labels,
        drop_name: bool,
        t: i64,
        h: FloatHistogram,
    ) -> Result<(), Error> {
        self.entry(labels, drop_name, t)?.histograms.push(HistogramPoint { t, h });
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<StepSeries> {
        self.series
    }
}

/// Points held by a list of series (for the sample limit).
/// A histogram point counts as many samples as the 16-byte float points its
/// memory would hold (Prometheus' `HPoint.size`: the histogram's
/// `FloatHistogram.Size()` plus the timestamp, over 16), so the sample limit
/// bounds memory whether a query holds floats or wide histograms.
pub(crate) fn total_points(series: &[StepSeries]) -> usize {
    series.iter().map(|s| s.points.len() + histogram_points_weight(&s.histograms)).sum()
}

/// The samples `histograms` count as against the sample limit (see
/// [`total_points`]).
pub(crate) fn histogram_points_weight(histograms: &[HistogramPoint]) -> usize {
    histograms.iter().map(|p| histogram_weight(&p.h)).sum()
}

/// [`total_points`]' weight of one histogram: 168 bytes of fixed fields, 8
/// per span, bucket and custom bound, 8 for the timestamp, over 16.
pub(crate) fn histogram_weight(h: &FloatHistogram) -> usize {
    let bytes = 168
        + 8 * (h.positive_spans.len()
            + h.negative_spans.len()
            + h.positive_buckets.len()
            + h.negative_buckets.len()
            + h.custom_values.len());
    (bytes + 8) / 16
}

/// Orders values from largest to smallest, NaN last (`sort_desc`, `topk`).
pub(crate) fn desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Orders values from smallest to largest, NaN last (`sort`, `bottomk`).
pub(crate) fn asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

//! Functions of native histograms that read one histogram per step:
//! `histogram_count`, `histogram_sum`, `histogram_avg`,
//! `histogram_stddev`, `histogram_stdvar`.

use promql_parser::parser::Expr;
use tidemark_storage::histogram::FloatHistogram;
use tidemark_storage::Sample;

use super::{Evaluator, StepSeries, Val};
use crate::error::Error;
use crate::functions::native_histogram;

/// A number read off one histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistogramProperty {
    /// `histogram_count`: the number of observations.
    Count,
    /// `histogram_sum`: the sum of observations.
    Sum,
    /// `histogram_avg`: their mean, sum / count.
    Avg,
    /// `histogram_stddev`: the estimated standard deviation.
    StdDev,
    /// `histogram_stdvar`: the estimated variance.
    StdVar,
}

impl HistogramProperty {
    pub(crate) fn from_name(name: &str) -> Option<HistogramProperty> {
        Some(match name {
            "histogram_count" => HistogramProperty::Count,
            "histogram_sum" => HistogramProperty::Sum,
            "histogram_avg" => HistogramProperty::Avg,
            "histogram_stddev" => HistogramProperty::StdDev,
            "histogram_stdvar" => HistogramProperty::StdVar,
            _ => return None,
        })
    }

    fn of(self, h: &FloatHistogram) -> f64 {
        match self {
            HistogramProperty::Count => h.count,
            HistogramProperty::Sum => h.sum,
            HistogramProperty::Avg => native_histogram::histogram_avg(h),
            HistogramProperty::StdDev => native_histogram::histogram_stddev(h),
            HistogramProperty::StdVar => native_histogram::histogram_stdvar(h),
        }
    }
}

impl Evaluator<'_, '_> {
    /// One float per histogram point of the argument; float points are
    /// ignored (Prometheus gives no annotation for them). The metric name
    /// is dropped.
    pub(crate) fn eval_histogram_property(&self, p: HistogramProperty, arg: &Expr) -> Result<Val, Error> {
        let series = self.eval_vector(arg)?;
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            if s.histograms.is_empty() {
                continue;
            }
            let points: Vec<Sample> = s.histograms.iter().map(|h| Sample { t: h.t, v: p.of(&h.h) }).collect();
            let mut o = StepSeries { labels: s.labels, drop_name: s.drop_name, points, histograms: Vec::new() };
            self.mark_drop_name(&mut o);
            out.push(o);
        }
        self.check_unique_unless_delayed(out).map(Val::Vector)
    }
}

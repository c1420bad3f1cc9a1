//! `load_with_nhcb`: the classic histograms of a load block also become
//! native histograms with custom buckets (NHCB), as upstream's
//! `appendCustomHistogram` and `util/convertnhcb` make them.
//!
//! - Every `<base>_bucket` series (its `le` parsed as a float; a series whose
//!   `le` does not parse or is NaN is skipped), `<base>_count` and
//!   `<base>_sum` series of the block contributes, by timestamp, to the
//!   series `<base>{labels without le}`; histogram values in them are
//!   ignored, omitted steps contribute nothing.
//! - Bucket counts must be cumulative (a higher `le` never counts less);
//!   a repeated `le` (`0.2`, `2e-1`) is ignored; a negative count is an
//!   error, and so is a `_count` that differs from the `+Inf` bucket.
//! - Without a `_count` the count is the highest bucket's; without a
//!   `+Inf` bucket one is added holding the count; without a `_sum` the
//!   sum is 0.
//! - The result has float counts; its layout is compacted as upstream's
//!   integer path (`Compact(2)`, when every count is a whole number) or
//!   float path (`Compact(0)`) leaves it.
//!
//! An error fails the whole load, as it fails upstream's test.

use std::collections::BTreeMap;

use tidemark_storage::histogram::{FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};
use tidemark_storage::Labels;

use crate::histo::compact;
use crate::notation::{parse_go_float, Point};
use crate::script::LoadSeries;

/// One timestamp's classic histogram while it is collected
/// (upstream's `TempHistogram`).
#[derive(Debug, Default, Clone)]
struct Temp {
    /// `(le, cumulative count)`, ascending by `le`.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    err: Option<String>,
}

impl Temp {
    fn set_bucket(&mut self, le: f64, count: f64) {
        if self.err.is_some() {
            return;
        }
        if count < 0.0 {
            self.err = Some(format!("bucket count must be non-negative: le={le}, count={count}"));
            return;
        }
        let i = self.buckets.partition_point(|(l, _)| *l < le);
        if self.buckets.get(i).is_some_and(|(l, _)| *l == le) {
            return; // a duplicate bucket: ignored
        }
        if i > 0 && count < self.buckets[i - 1].1 {
            self.err = Some(format!("count is not cumulative: {count} < {}", self.buckets[i - 1].1));
            return;
        }
        if let Some((_, next)) = self.buckets.get(i) {
            if count > *next {
                self.err = Some(format!("count is not cumulative: {count} > {next}"));
                return;
            }
        }
        self.buckets.insert(i, (le, count));
    }

    fn set_count(&mut self, count: f64) {
        if self.err.is_some() {
            return;
        }
        if count < 0.0 {
            self.err = Some(format!("count must be non-negative: count={count}"));
            return;
        }
        self.count = Some(count);
    }

    fn convert(mut self) -> Result<FloatHistogram, String> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let count = match (self.count, self.buckets.last()) {
            (Some(c), _) => c,
            (None, Some((_, c))) => *c,
            (None, None) => 0.0,
        };
        if self.buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
            self.buckets.push((f64::INFINITY, count));
        }
        let whole = |v: f64| v == v.round();
        let integral = whole(count) && self.buckets.iter().all(|(_, c)| whole(*c));
        let mut prev = 0.0;
        let mut counts = Vec::with_capacity(self.buckets.len());
        for (_, c) in &self.buckets {
            counts.push(c - prev);
            prev = *c;
        }
        let custom_values: Vec<f64> =
            self.buckets.iter().map(|(le, _)| *le).filter(|le| *le != f64::INFINITY).collect();
        let (last_le, last_count) = self.buckets[self.buckets.len() - 1];
        if count != last_count {
            return Err(format!("count mismatch: count={count} != le={last_le} count={last_count}"));
        }
        let h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: vec![Span { offset: 0, length: counts.len() as u32 }],
            positive_buckets: counts,
            custom_values,
            ..FloatHistogram::default()
        };
        Ok(compact(&h, if integral { 2 } else { 0 }))
    }
}

/// What a classic series contributes.
enum Part {
    Bucket(f64),
    Count,
    Sum,
}

/// One converted series: its labels and its samples, oldest first.
pub type NhcbSeries = (Labels, Vec<(i64, FloatHistogram)>);

/// The NHCB series a `load_with_nhcb` block adds, in label order.
/// `step_ms` is the block's interval.
pub fn convert(series: &[LoadSeries], step_ms: i64) -> Result<Vec<NhcbSeries>, String> {
    let mut by_base: BTreeMap<Labels, BTreeMap<i64, Temp>> = BTreeMap::new();
    for s in series {
        let name = s.labels.get("__name__").unwrap_or("");
        let (part, base) = if let Some(b) = name.strip_suffix("_bucket") {
            let le = s.labels.get("le").ok_or_else(|| format!("expected bucket label in metric {}", s.labels))?;
            match parse_go_float(le) {
                Some(le) if !le.is_nan() => (Part::Bucket(le), b),
                _ => continue,
            }
        } else if let Some(b) = name.strip_suffix("_count") {
            (Part::Count, b)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (Part::Sum, b)
        } else {
            continue;
        };
        let base_labels = s
            .labels
            .without(&["le"])
            .with("__name__", base)
            .map_err(|e| format!("cannot name the NHCB series of {}: {e}", s.labels))?;
        let temps = by_base.entry(base_labels).or_default();
        for (i, p) in s.points.iter().enumerate() {
            let Point::Float(v) = p else { continue };
            let t = (i as i64).saturating_mul(step_ms);
            let temp = temps.entry(t).or_default();
            match part {
                Part::Bucket(le) => temp.set_bucket(le, *v),
                Part::Count => temp.set_count(*v),
                Part::Sum => {
                    if temp.err.is_none() {
                        temp.sum = *v;
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(by_base.len());
    for (labels, temps) in by_base {
        let mut samples = Vec::with_capacity(temps.len());
        for (t, temp) in temps {
            let h = temp.convert().map_err(|e| format!("converting {labels} at t={t}ms to NHCB: {e}"))?;
            samples.push((t, h));
        }
        if !samples.is_empty() {
            out.push((labels, samples));
        }
    }
    Ok(out)
}

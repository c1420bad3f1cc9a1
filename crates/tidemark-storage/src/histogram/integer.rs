//! Operations on integer [`Histogram`]s that Prometheus has for them:
//! compaction, resolution reduction and equality.

use super::float::HistogramOpError;
use super::generic::{compact_buckets, reduce_resolution, spans_match};
use super::schema::custom_bucket_bounds_match;
use super::{is_custom_buckets, Histogram};

impl Histogram {
    /// Compacts the buckets as [`FloatHistogram::compact`](super::FloatHistogram::compact)
    /// does, keeping the delta encoding right (Prometheus' `Histogram.Compact`).
    ///
    /// ```
    /// use tidemark_storage::histogram::{Histogram, Span};
    /// let mut h = Histogram {
    ///     count: 3,
    ///     positive_spans: vec![Span { offset: 0, length: 4 }],
    ///     positive_buckets: vec![1, -1, 0, 2], // absolute 1, 0, 0, 2
    ///     ..Histogram::default()
    /// };
    /// h.compact(0);
    /// assert_eq!(h.positive_spans, vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 1 }]);
    /// assert_eq!(h.positive_buckets, vec![1, 1]);
    /// ```
    pub fn compact(&mut self, max_empty_buckets: usize) -> &mut Self {
        compact_buckets(&mut self.positive_buckets, None, &mut self.positive_spans, max_empty_buckets, true);
        compact_buckets(&mut self.negative_buckets, None, &mut self.negative_spans, max_empty_buckets, true);
        self
    }

    /// Merges buckets into the lower exponential schema `target_schema`
    /// (Prometheus' `Histogram.ReduceResolution`), with the same errors as
    /// [`FloatHistogram::reduce_resolution`](super::FloatHistogram::reduce_resolution).
    ///
    /// ```
    /// use tidemark_storage::histogram::{Histogram, Span};
    /// let mut h = Histogram {
    ///     schema: 1,
    ///     count: 6,
    ///     positive_spans: vec![Span { offset: 0, length: 3 }],
    ///     positive_buckets: vec![1, 1, 1], // absolute 1, 2, 3
    ///     ..Histogram::default()
    /// };
    /// h.reduce_resolution(0).unwrap();
    /// assert_eq!(h.positive_spans, vec![Span { offset: 0, length: 2 }]);
    /// assert_eq!(h.positive_buckets, vec![1, 4]); // absolute 1, 5
    /// ```
    pub fn reduce_resolution(&mut self, target_schema: i32) -> Result<(), HistogramOpError> {
        if self.uses_custom_buckets() {
            return Err(HistogramOpError::ReduceCustomBuckets);
        }
        if is_custom_buckets(target_schema) {
            return Err(HistogramOpError::ReduceToCustomBuckets);
        }
        if target_schema >= self.schema {
            return Err(HistogramOpError::NotLowerSchema { from: self.schema, to: target_schema });
        }
        let (ps, pb) =
            reduce_resolution(&self.positive_spans, &self.positive_buckets, self.schema, target_schema, true)?;
        let (ns, nb) =
            reduce_resolution(&self.negative_spans, &self.negative_buckets, self.schema, target_schema, true)?;
        (self.positive_spans, self.positive_buckets, self.negative_spans, self.negative_buckets) = (ps, pb, ns, nb);
        self.schema = target_schema;
        Ok(())
    }

    /// Whether `self` and `other` are the same histogram as data
    /// (Prometheus' `Histogram.Equals`): as
    /// [`FloatHistogram::equals`](super::FloatHistogram::equals), with the
    /// delta-encoded buckets compared as stored.
    pub fn equals(&self, other: &Histogram) -> bool {
        if self.schema != other.schema || self.count != other.count || self.sum.to_bits() != other.sum.to_bits() {
            return false;
        }
        if self.uses_custom_buckets() && !custom_bucket_bounds_match(&self.custom_values, &other.custom_values) {
            return false;
        }
        self.zero_threshold == other.zero_threshold
            && self.zero_count == other.zero_count
            && spans_match(&self.negative_spans, &other.negative_spans)
            && self.negative_buckets == other.negative_buckets
            && spans_match(&self.positive_spans, &other.positive_spans)
            && self.positive_buckets == other.positive_buckets
    }
}

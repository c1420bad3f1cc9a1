//! Consistency checks of histograms, with Prometheus' error texts
//! (`Validate` in `model/histogram`).

use std::fmt;

use super::display::{go_f, go_g};
use super::schema::is_exponential_schema;
use super::{
    is_custom_buckets, FloatHistogram, Histogram, Span, CUSTOM_BUCKETS_SCHEMA, EXPONENTIAL_SCHEMA_MAX,
    EXPONENTIAL_SCHEMA_MIN,
};
use crate::histogram::schema::{EXPONENTIAL_SCHEMA_MAX_RESERVED, EXPONENTIAL_SCHEMA_MIN_RESERVED};

/// Which part of a histogram an error is about; printed as the prefix
/// Prometheus puts before the error (`positive side: …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramPart {
    /// The positive buckets of an exponential histogram.
    PositiveSide,
    /// The negative buckets of an exponential histogram.
    NegativeSide,
    /// The buckets and bounds of a custom-bucket histogram.
    CustomBuckets,
}

impl fmt::Display for HistogramPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HistogramPart::PositiveSide => "positive side",
            HistogramPart::NegativeSide => "negative side",
            HistogramPart::CustomBuckets => "custom buckets",
        })
    }
}

/// A bucket count as Prometheus prints it in an error: integer histograms
/// print integers, float histograms Go's `%v` of a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CountValue {
    /// An integer histogram's (absolute) bucket count.
    Int(i64),
    /// A float histogram's count.
    Float(f64),
}

impl fmt::Display for CountValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CountValue::Int(v) => write!(f, "{v}"),
            CountValue::Float(v) => f.write_str(&go_g(*v)),
        }
    }
}

/// Why a histogram is invalid. The messages are Prometheus' own, including
/// the context it wraps around its sentinel errors; [`HistogramError::kind`]
/// gives the sentinel (what Go code tests with `errors.Is`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// The error happened in one part of the histogram.
    #[error("{part}: {source}")]
    In {
        /// Which part.
        part: HistogramPart,
        /// What is wrong there.
        source: Box<HistogramError>,
    },
    /// The schema is neither −4…8 nor −53.
    #[error("histogram has an invalid schema, which must be between {EXPONENTIAL_SCHEMA_MIN} and {EXPONENTIAL_SCHEMA_MAX} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets, got schema {schema}")]
    InvalidSchema {
        /// The schema found.
        schema: i32,
    },
    /// The schema is not even one Prometheus would reduce (−9…52 or −53).
    #[error("histogram has an unknown schema, which must be between {EXPONENTIAL_SCHEMA_MIN_RESERVED} and {EXPONENTIAL_SCHEMA_MAX_RESERVED} for exponential buckets, or {CUSTOM_BUCKETS_SCHEMA} for custom buckets, got schema {schema}")]
    UnknownSchema {
        /// The schema found.
        schema: i32,
    },
    /// A span other than the first (or, for custom buckets, any span) has a
    /// negative offset.
    #[error("span number {span} with offset {offset}: histogram has a span whose offset is negative")]
    SpanNegativeOffset {
        /// 1-based number of the span.
        span: usize,
        /// Its offset.
        offset: i32,
    },
    /// The span lengths do not add up to the number of buckets.
    #[error("spans need {spans_need} buckets, have {have} buckets: histogram spans specify different number of buckets than provided")]
    SpansBucketsMismatch {
        /// Sum of the span lengths.
        spans_need: usize,
        /// Number of buckets.
        have: usize,
    },
    /// The spans need more buckets than there are (found while reducing the
    /// resolution).
    #[error(
        "have {have} buckets but spans need more: histogram spans specify different number of buckets than provided"
    )]
    TooFewBuckets {
        /// Number of buckets.
        have: usize,
    },
    /// A bucket (1-based `bucket`, absolute count) is negative.
    #[error("bucket number {bucket} has observation count of {count}: histogram has a bucket whose observation count is negative")]
    NegativeBucketCount {
        /// 1-based number of the bucket.
        bucket: usize,
        /// Its absolute count.
        count: CountValue,
    },
    /// The zero bucket's count is negative.
    #[error("zero bucket has observation count of {}: histogram has a bucket whose observation count is negative", go_g(*.count))]
    NegativeZeroCount {
        /// The zero count.
        count: f64,
    },
    /// The count is negative (float histograms).
    #[error("observation count is  {}: histogram's observation count is negative", go_g(*.count))]
    NegativeCount {
        /// The count.
        count: f64,
    },
    /// The sum is NaN and the buckets hold more observations than the count.
    #[error("{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets")]
    CountNotBigEnough {
        /// Observations in all buckets.
        in_buckets: u64,
        /// The count field.
        count: u64,
    },
    /// The sum is not NaN and the buckets do not hold exactly the count.
    #[error("{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)")]
    CountMismatch {
        /// Observations in all buckets.
        in_buckets: u64,
        /// The count field.
        count: u64,
    },
    /// The custom bounds are not strictly increasing.
    #[error("previous bound is {} and current is {}: histogram custom bounds must be in strictly increasing order", go_f(*.previous), go_f(*.current))]
    CustomBucketsInvalid {
        /// The earlier bound.
        previous: f64,
        /// The bound not above it.
        current: f64,
    },
    /// The last custom bound is +Inf.
    #[error("last +Inf bound must not be explicitly defined: histogram custom bounds must be finite")]
    CustomBucketsInfinite,
    /// A custom bound is NaN.
    #[error("histogram custom bounds must not be NaN")]
    CustomBucketsNaN,
    /// There are fewer custom bounds than the spans need.
    #[error("only {bounds} custom bounds defined which is insufficient to cover total span length of {span_length}: histogram custom bounds are too few")]
    CustomBucketsMismatch {
        /// Number of custom bounds.
        bounds: usize,
        /// Total span length (offsets plus lengths).
        span_length: i64,
    },
    /// A custom-bucket histogram has a zero count.
    #[error("custom buckets: must have zero count of 0")]
    CustomBucketsZeroCount,
    /// A custom-bucket histogram has a zero threshold.
    #[error("custom buckets: must have zero threshold of 0")]
    CustomBucketsZeroThreshold,
    /// A custom-bucket histogram has negative spans.
    #[error("custom buckets: must not have negative spans")]
    CustomBucketsNegativeSpans,
    /// A custom-bucket histogram has negative buckets.
    #[error("custom buckets: must not have negative buckets")]
    CustomBucketsNegativeBuckets,
    /// An exponential histogram has custom bounds.
    #[error("histogram with exponential schema must not have custom bounds")]
    ExponentialSchemaCustomBounds,
}

/// The sentinel behind a [`HistogramError`] (Prometheus' `ErrHistogram…`
/// variables), for callers that branch on the kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistogramErrorKind {
    /// `ErrHistogramsInvalidSchema`.
    InvalidSchema,
    /// `ErrHistogramsUnknownSchema`.
    UnknownSchema,
    /// `ErrHistogramSpanNegativeOffset`.
    SpanNegativeOffset,
    /// `ErrHistogramSpansBucketsMismatch`.
    SpansBucketsMismatch,
    /// `ErrHistogramNegativeBucketCount`.
    NegativeBucketCount,
    /// `ErrHistogramNegativeCount`.
    NegativeCount,
    /// `ErrHistogramCountNotBigEnough`.
    CountNotBigEnough,
    /// `ErrHistogramCountMismatch`.
    CountMismatch,
    /// `ErrHistogramCustomBucketsInvalid`.
    CustomBucketsInvalid,
    /// `ErrHistogramCustomBucketsInfinite`.
    CustomBucketsInfinite,
    /// `ErrHistogramCustomBucketsNaN`.
    CustomBucketsNaN,
    /// `ErrHistogramCustomBucketsMismatch`.
    CustomBucketsMismatch,
    /// `ErrHistogramCustomBucketsZeroCount`.
    CustomBucketsZeroCount,
    /// `ErrHistogramCustomBucketsZeroThresh`.
    CustomBucketsZeroThreshold,
    /// `ErrHistogramCustomBucketsNegSpans`.
    CustomBucketsNegativeSpans,
    /// `ErrHistogramCustomBucketsNegBuckets`.
    CustomBucketsNegativeBuckets,
    /// `ErrHistogramExpSchemaCustomBounds`.
    ExponentialSchemaCustomBounds,
}

impl HistogramError {
    /// The sentinel kind, looking through [`HistogramError::In`].
    pub fn kind(&self) -> HistogramErrorKind {
        use HistogramErrorKind as K;
        match self {
            HistogramError::In { source, .. } => source.kind(),
            HistogramError::InvalidSchema { .. } => K::InvalidSchema,
            HistogramError::UnknownSchema { .. } => K::UnknownSchema,
            HistogramError::SpanNegativeOffset { .. } => K::SpanNegativeOffset,
            HistogramError::SpansBucketsMismatch { .. } | HistogramError::TooFewBuckets { .. } => {
                K::SpansBucketsMismatch
            }
            HistogramError::NegativeBucketCount { .. } | HistogramError::NegativeZeroCount { .. } => {
                K::NegativeBucketCount
            }
            HistogramError::NegativeCount { .. } => K::NegativeCount,
            HistogramError::CountNotBigEnough { .. } => K::CountNotBigEnough,
            HistogramError::CountMismatch { .. } => K::CountMismatch,
            HistogramError::CustomBucketsInvalid { .. } => K::CustomBucketsInvalid,
            HistogramError::CustomBucketsInfinite => K::CustomBucketsInfinite,
            HistogramError::CustomBucketsNaN => K::CustomBucketsNaN,
            HistogramError::CustomBucketsMismatch { .. } => K::CustomBucketsMismatch,
            HistogramError::CustomBucketsZeroCount => K::CustomBucketsZeroCount,
            HistogramError::CustomBucketsZeroThreshold => K::CustomBucketsZeroThreshold,
            HistogramError::CustomBucketsNegativeSpans => K::CustomBucketsNegativeSpans,
            HistogramError::CustomBucketsNegativeBuckets => K::CustomBucketsNegativeBuckets,
            HistogramError::ExponentialSchemaCustomBounds => K::ExponentialSchemaCustomBounds,
        }
    }

    fn within(self, part: HistogramPart) -> HistogramError {
        HistogramError::In { part, source: Box::new(self) }
    }
}

/// Checks that the spans cover exactly `num_buckets` buckets and only the
/// first one has a negative offset.
pub(crate) fn check_spans(spans: &[Span], num_buckets: usize) -> Result<(), HistogramError> {
    let mut need = 0usize;
    for (n, span) in spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset { span: n + 1, offset: span.offset });
        }
        need += span.length as usize;
    }
    if need != num_buckets {
        return Err(HistogramError::SpansBucketsMismatch { spans_need: need, have: num_buckets });
    }
    Ok(())
}

/// Checks delta-encoded buckets for negative absolute counts and returns
/// their total.
fn check_int_buckets(deltas: &[i64]) -> Result<u64, HistogramError> {
    let mut last = 0i64;
    let mut total = 0u64;
    for (i, &d) in deltas.iter().enumerate() {
        let c = last.wrapping_add(d);
        if c < 0 {
            return Err(HistogramError::NegativeBucketCount { bucket: i + 1, count: CountValue::Int(c) });
        }
        last = c;
        total = total.wrapping_add(c as u64);
    }
    Ok(total)
}

/// Checks absolute float buckets for negative counts.
fn check_float_buckets(buckets: &[f64]) -> Result<(), HistogramError> {
    for (i, &c) in buckets.iter().enumerate() {
        if c < 0.0 {
            return Err(HistogramError::NegativeBucketCount { bucket: i + 1, count: CountValue::Float(c) });
        }
    }
    Ok(())
}

/// Checks custom bounds (strictly increasing, not NaN, last not +Inf) and
/// that the spans (all offsets non-negative) fit them and the buckets.
pub(crate) fn check_custom_bounds(bounds: &[f64], spans: &[Span], num_buckets: usize) -> Result<(), HistogramError> {
    let mut prev = f64::NEG_INFINITY;
    for (i, &curr) in bounds.iter().enumerate() {
        if curr.is_nan() {
            return Err(HistogramError::CustomBucketsNaN);
        }
        if i > 0 && curr <= prev {
            return Err(HistogramError::CustomBucketsInvalid { previous: prev, current: curr });
        }
        prev = curr;
    }
    if prev == f64::INFINITY {
        return Err(HistogramError::CustomBucketsInfinite);
    }
    let mut need = 0usize;
    let mut total_length = 0i64;
    for (n, span) in spans.iter().enumerate() {
        if span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset { span: n + 1, offset: span.offset });
        }
        need += span.length as usize;
        total_length += i64::from(span.length) + i64::from(span.offset);
    }
    if need != num_buckets {
        return Err(HistogramError::SpansBucketsMismatch { spans_need: need, have: num_buckets });
    }
    if (bounds.len() as i64 + 1) < total_length {
        return Err(HistogramError::CustomBucketsMismatch { bounds: bounds.len(), span_length: total_length });
    }
    Ok(())
}

impl Histogram {
    /// Checks the histogram as Prometheus' `Histogram.Validate`: a valid
    /// schema; spans consistent with the buckets (only the first span may
    /// have a negative offset; none for custom buckets); no negative
    /// absolute bucket count; for custom buckets, valid bounds, enough of
    /// them, no zero bucket and no negative buckets; for exponential
    /// schemas, no custom bounds; and the buckets (with the zero bucket)
    /// hold exactly `count` observations, or at most `count` if the sum is
    /// NaN (NaN observations count but are in no bucket).
    ///
    /// ```
    /// use tidemark_storage::histogram::{Histogram, Span};
    /// let mut h = Histogram {
    ///     count: 3,
    ///     sum: 3.5,
    ///     positive_spans: vec![Span { offset: 0, length: 2 }],
    ///     positive_buckets: vec![2, -1],
    ///     ..Histogram::default()
    /// };
    /// assert!(h.validate().is_ok());
    /// h.count = 4;
    /// assert_eq!(
    ///     h.validate().unwrap_err().to_string(),
    ///     "3 observations found in buckets, but the Count field is 4: histogram's observation count \
    ///      should equal the number of observations found in the buckets (in absence of NaN)"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), HistogramError> {
        let mut n_count = 0u64;
        if is_custom_buckets(self.schema) {
            check_custom_bounds(&self.custom_values, &self.positive_spans, self.positive_buckets.len())
                .map_err(|e| e.within(HistogramPart::CustomBuckets))?;
            if self.zero_count != 0 {
                return Err(HistogramError::CustomBucketsZeroCount);
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBucketsZeroThreshold);
            }
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeSpans);
            }
            if !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeBuckets);
            }
        } else if is_exponential_schema(self.schema) {
            check_spans(&self.positive_spans, self.positive_buckets.len())
                .map_err(|e| e.within(HistogramPart::PositiveSide))?;
            check_spans(&self.negative_spans, self.negative_buckets.len())
                .map_err(|e| e.within(HistogramPart::NegativeSide))?;
            n_count = check_int_buckets(&self.negative_buckets).map_err(|e| e.within(HistogramPart::NegativeSide))?;
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialSchemaCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema { schema: self.schema });
        }
        let p_count = check_int_buckets(&self.positive_buckets).map_err(|e| e.within(HistogramPart::PositiveSide))?;
        let in_buckets = n_count.wrapping_add(p_count).wrapping_add(self.zero_count);
        if self.sum.is_nan() {
            if in_buckets > self.count {
                return Err(HistogramError::CountNotBigEnough { in_buckets, count: self.count });
            }
        } else if in_buckets != self.count {
            return Err(HistogramError::CountMismatch { in_buckets, count: self.count });
        }
        Ok(())
    }
}

impl FloatHistogram {
    /// Checks the histogram as Prometheus' `FloatHistogram.Validate`: as
    /// [`Histogram::validate`], except that the count is only checked to be
    /// non-negative, not against the buckets (float rounding would make that
    /// check fail on good data), and the zero count must not be negative.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let h = FloatHistogram {
    ///     count: 1.0,
    ///     positive_spans: vec![Span { offset: 0, length: 2 }],
    ///     positive_buckets: vec![1.0, -0.5],
    ///     ..FloatHistogram::default()
    /// };
    /// assert_eq!(
    ///     h.validate().unwrap_err().to_string(),
    ///     "positive side: bucket number 2 has observation count of -0.5: \
    ///      histogram has a bucket whose observation count is negative"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), HistogramError> {
        if is_custom_buckets(self.schema) {
            check_custom_bounds(&self.custom_values, &self.positive_spans, self.positive_buckets.len())
                .map_err(|e| e.within(HistogramPart::CustomBuckets))?;
            if self.zero_count != 0.0 {
                return Err(HistogramError::CustomBucketsZeroCount);
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBucketsZeroThreshold);
            }
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeSpans);
            }
            if !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeBuckets);
            }
        } else if is_exponential_schema(self.schema) {
            check_spans(&self.positive_spans, self.positive_buckets.len())
                .map_err(|e| e.within(HistogramPart::PositiveSide))?;
            check_spans(&self.negative_spans, self.negative_buckets.len())
                .map_err(|e| e.within(HistogramPart::NegativeSide))?;
            check_float_buckets(&self.negative_buckets).map_err(|e| e.within(HistogramPart::NegativeSide))?;
            if self.zero_count < 0.0 {
                return Err(HistogramError::NegativeZeroCount { count: self.zero_count });
            }
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialSchemaCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema { schema: self.schema });
        }
        if self.count < 0.0 {
            return Err(HistogramError::NegativeCount { count: self.count });
        }
        check_float_buckets(&self.positive_buckets).map_err(|e| e.within(HistogramPart::PositiveSide))?;
        Ok(())
    }
}

//! Native histograms: Prometheus' sparse, exponential-bucket histograms
//! and their custom-bucket variant (NHCB), as data.
//!
//! Two representations, as in Prometheus (`model/histogram`):
//!
//! - [`Histogram`]: integer counts, buckets stored as deltas (each bucket's
//!   count minus the previous one's, the first one absolute). This is what
//!   an instrumented counter exposes and what remote write 1.0/2.0 carry
//!   as "int" histograms; the head stores it losslessly.
//! - [`FloatHistogram`]: float counts, buckets stored as absolute values.
//!   The result of every PromQL operation (rate, sum, scaling), and what a
//!   sender uses for gauge histograms with fractional counts.
//!
//! Buckets are addressed by index. For the exponential schemas −4…8 the
//! bucket with index `i` covers `(base^(i-1), base^i]` with
//! `base = 2^(2^-schema)`, mirrored for negative observations; values in
//! `[-zero_threshold, zero_threshold]` count in the zero bucket. For the
//! custom-bucket schema [`CUSTOM_BUCKETS_SCHEMA`] (−53) the upper bounds are
//! listed in `custom_values` and bucket `i` covers
//! `(custom_values[i-1], custom_values[i]]` (the last one up to +Inf);
//! there are no negative buckets and no zero bucket.
//!
//! Which bucket indices are populated is said by spans: runs of
//! consecutive buckets, each starting `offset` buckets after the end of
//! the previous run (the first one's offset is the first index).
//!
//! ```
//! use tidemark_storage::histogram::{Histogram, Span};
//!
//! // Three observations: two in bucket 0 (0.5, 1], one in bucket 1 (1, 2].
//! let h = Histogram {
//!     schema: 0,
//!     count: 3,
//!     sum: 3.5,
//!     positive_spans: vec![Span { offset: 0, length: 2 }],
//!     positive_buckets: vec![2, -1], // deltas: 2, then 2 - 1 = 1
//!     ..Histogram::default()
//! };
//! assert_eq!(h.to_float().positive_buckets, vec![2.0, 1.0]);
//! ```

mod buckets;
mod display;
mod float;
mod generic;
mod integer;
mod schema;
mod validate;

#[cfg(test)]
mod prom_cases;
#[cfg(test)]
mod proptests;

pub use buckets::{
    AllFloatBucketIter, Bucket, CumulativeBucketIter, FloatBucketIter, IntBucketIter, ReverseFloatBucketIter,
};
pub use display::{go_f, go_g};
pub use float::{AddOutcome, HistogramOpError};
pub use schema::{
    custom_bucket_bounds_match, exponential_bound, get_bound, is_exponential_schema, is_known_schema, target_idx,
    EXPONENTIAL_SCHEMA_MAX_RESERVED, EXPONENTIAL_SCHEMA_MIN_RESERVED,
};
pub use validate::{CountValue, HistogramError, HistogramErrorKind, HistogramPart};

/// The schema of native histograms with custom bucket boundaries (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The smallest exponential schema (the coarsest resolution, base 2^16).
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
/// The largest exponential schema (the finest resolution, base 2^(1/256)).
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;

/// Whether `schema` is one this module defines: −4…8 or −53.
pub fn is_valid_schema(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA || (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

/// Whether `schema` is the custom-bucket schema.
pub fn is_custom_buckets(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA
}

/// A run of consecutive populated buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// Gap to the previous span's end (for the first span: the index of its
    /// first bucket). May be negative only in the first span.
    pub offset: i32,
    /// Number of consecutive buckets.
    pub length: u32,
}

/// What the sender says about counter resets, stored with each sample as
/// Prometheus does (two bits in its chunk header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum CounterResetHint {
    /// Not known: a reader compares with the previous sample.
    #[default]
    Unknown = 0,
    /// A counter reset happened just before this sample.
    CounterReset = 1,
    /// Definitely no counter reset since the previous sample.
    NotCounterReset = 2,
    /// A gauge histogram: counts go up and down; resets do not apply.
    Gauge = 3,
}

impl CounterResetHint {
    /// The hint for its numeric code (the order above); `None` above 3.
    pub fn from_code(code: u8) -> Option<CounterResetHint> {
        Some(match code {
            0 => CounterResetHint::Unknown,
            1 => CounterResetHint::CounterReset,
            2 => CounterResetHint::NotCounterReset,
            3 => CounterResetHint::Gauge,
            _ => return None,
        })
    }
}

/// A native histogram with integer counts (Prometheus' `histogram.Histogram`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// See [`CounterResetHint`].
    pub counter_reset_hint: CounterResetHint,
    /// −4…8, or [`CUSTOM_BUCKETS_SCHEMA`].
    pub schema: i32,
    /// Width of the zero bucket: observations in `[-zero_threshold,
    /// zero_threshold]` count there. Zero for custom buckets.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// All observations (also counts NaN observations, which are in no
    /// bucket).
    pub count: u64,
    /// Sum of all observations. Its bit pattern is kept exactly: the
    /// staleness marker of a histogram series is a histogram whose sum is
    /// [`crate::STALE_NAN_BITS`].
    pub sum: f64,
    /// Populated positive buckets (for custom buckets: all buckets).
    pub positive_spans: Vec<Span>,
    /// Populated negative buckets (empty for custom buckets).
    pub negative_spans: Vec<Span>,
    /// One delta per bucket in `positive_spans`, in index order: the first
    /// is the first bucket's count, each later one the difference to the
    /// previous bucket's count.
    pub positive_buckets: Vec<i64>,
    /// As `positive_buckets`, for `negative_spans`.
    pub negative_buckets: Vec<i64>,
    /// Custom bucket upper bounds, strictly increasing, without +Inf (only
    /// for [`CUSTOM_BUCKETS_SCHEMA`]; empty otherwise).
    pub custom_values: Vec<f64>,
}

/// A native histogram with float counts (Prometheus' `histogram.FloatHistogram`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    /// See [`CounterResetHint`].
    pub counter_reset_hint: CounterResetHint,
    /// −4…8, or [`CUSTOM_BUCKETS_SCHEMA`].
    pub schema: i32,
    /// See [`Histogram::zero_threshold`].
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// All observations.
    pub count: f64,
    /// Sum of all observations (bit pattern kept, see [`Histogram::sum`]).
    pub sum: f64,
    /// Populated positive buckets (for custom buckets: all buckets).
    pub positive_spans: Vec<Span>,
    /// Populated negative buckets.
    pub negative_spans: Vec<Span>,
    /// One absolute count per bucket in `positive_spans`, in index order.
    pub positive_buckets: Vec<f64>,
    /// One absolute count per bucket in `negative_spans`, in index order.
    pub negative_buckets: Vec<f64>,
    /// Custom bucket upper bounds (see [`Histogram::custom_values`]).
    pub custom_values: Vec<f64>,
}

impl Histogram {
    /// The same histogram with float counts and absolute buckets.
    pub fn to_float(&self) -> FloatHistogram {
        fn absolute(deltas: &[i64]) -> Vec<f64> {
            let mut acc = 0i64;
            deltas
                .iter()
                .map(|&d| {
                    acc = acc.wrapping_add(d);
                    acc as f64
                })
                .collect()
        }
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count as f64,
            count: self.count as f64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: absolute(&self.positive_buckets),
            negative_buckets: absolute(&self.negative_buckets),
            custom_values: self.custom_values.clone(),
        }
    }
}

/// A histogram sample's value as stored: integer or float counts. A sample's
/// kind is what the writer gave; it is never guessed from the numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramValue {
    /// Integer counts.
    Integer(Histogram),
    /// Float counts.
    Float(FloatHistogram),
}

impl HistogramValue {
    /// The value with float counts (a copy for [`HistogramValue::Integer`]).
    pub fn to_float(&self) -> FloatHistogram {
        match self {
            HistogramValue::Integer(h) => h.to_float(),
            HistogramValue::Float(h) => h.clone(),
        }
    }

    /// The sum, whose bits mark staleness.
    pub fn sum(&self) -> f64 {
        match self {
            HistogramValue::Integer(h) => h.sum,
            HistogramValue::Float(h) => h.sum,
        }
    }

    /// Whether this is a staleness marker (the sum is the stale NaN).
    pub fn is_stale(&self) -> bool {
        crate::is_stale_nan(self.sum())
    }

    /// Whether two values are the same data: Prometheus' `Equals` (sum by
    /// bits, counter-reset hints not compared) after empty buckets are
    /// dropped, since a stored sample reads back with the empty buckets a
    /// later sample of its chunk added; any two staleness markers are equal
    /// (a marker reads back bare). Integer and float values never are.
    ///
    /// ```
    /// use tidemark_storage::histogram::{Histogram, HistogramValue, Span};
    /// let a = Histogram { count: 1, positive_spans: vec![Span { offset: 0, length: 1 }], positive_buckets: vec![1], ..Histogram::default() };
    /// let mut b = a.clone();
    /// b.positive_spans = vec![Span { offset: 0, length: 2 }];
    /// b.positive_buckets = vec![1, -1]; // an empty second bucket
    /// assert!(HistogramValue::Integer(a).same_data(&HistogramValue::Integer(b)));
    /// ```
    pub fn same_data(&self, other: &HistogramValue) -> bool {
        if self.is_stale() && other.is_stale() {
            return true;
        }
        match (self, other) {
            (HistogramValue::Integer(x), HistogramValue::Integer(y)) => {
                let (mut x, mut y) = (x.clone(), y.clone());
                x.compact(0).equals(y.compact(0))
            }
            (HistogramValue::Float(x), HistogramValue::Float(y)) => {
                let (mut x, mut y) = (x.clone(), y.clone());
                x.compact(0).equals(y.compact(0))
            }
            _ => false,
        }
    }
}

/// One histogram sample: a timestamp in milliseconds and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value.
    pub h: HistogramValue,
}

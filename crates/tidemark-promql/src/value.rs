//! Query results: scalars, strings, instant vectors and range vectors.

use std::fmt;

use tidemark_storage::histogram::FloatHistogram;
use tidemark_storage::{Labels, Sample};

/// One element of an instant vector: a series' labels and its value at `t`,
/// a float or a native histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    /// The series' labels (after any `__name__` removal).
    pub labels: Labels,
    /// Evaluation timestamp in milliseconds.
    pub t: i64,
    /// The value when the element is a float (meaningless when `h` is set).
    pub v: f64,
    /// The value when the element is a native histogram.
    pub h: Option<Box<FloatHistogram>>,
}

/// One histogram point of a range vector: a timestamp and a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value.
    pub h: FloatHistogram,
}

/// One series of a range vector (matrix): labels, float samples and
/// histogram samples, each in time order (a timestamp is in one of them at
/// most).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Float samples, oldest first.
    pub samples: Vec<Sample>,
    /// Histogram samples, oldest first.
    pub histograms: Vec<HistogramPoint>,
}

/// The value a query evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single number at the evaluation time.
    Scalar {
        /// Evaluation timestamp in milliseconds.
        t: i64,
        /// The value.
        v: f64,
    },
    /// A string literal at the evaluation time.
    String {
        /// Evaluation timestamp in milliseconds.
        t: i64,
        /// The string.
        s: String,
    },
    /// An instant vector (the result of an instant query).
    Vector(Vec<VectorSample>),
    /// A range vector: either the result of a range query (one sample per
    /// step, series sorted by labels) or an instant query of a range selector.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The Prometheus API name of the value's type: `scalar`, `string`,
    /// `vector` or `matrix`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar { t, v } => write!(f, "scalar: {v} @[{t}]"),
            Value::String { t, s } => write!(f, "string: {s:?} @[{t}]"),
            Value::Vector(samples) => {
                for s in samples {
                    writeln!(f, "{} => {} @[{}]", s.labels, s.v, s.t)?;
                }
                Ok(())
            }
            Value::Matrix(series) => {
                for s in series {
                    write!(f, "{} =>", s.labels)?;
                    for p in &s.samples {
                        write!(f, " {} @[{}]", p.v, p.t)?;
                    }
                    writeln!(f)?;
                }
                Ok(())
            }
        }
    }
}

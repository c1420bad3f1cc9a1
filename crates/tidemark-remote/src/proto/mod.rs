//! Remote write and remote read wire messages, as `prost` derive structs (no `protoc` at
//! build time). Field numbers and types follow the published `.proto` files:
//! `prompb/types.proto` + `prompb/remote.proto` for 1.0 ([`v1`]) and
//! `prompb/io/prometheus/write/v2/types.proto` for 2.0 ([`v2`]); remote
//! read's requests and answers in [`read`].
//!
//! ```
//! use prost::Message;
//! use tidemark_remote::proto::v1;
//! let req = v1::WriteRequest {
//!     timeseries: vec![v1::TimeSeries {
//!         labels: vec![v1::Label { name: "__name__".into(), value: "up".into() }],
//!         samples: vec![v1::Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
//!         ..Default::default()
//!     }],
//!     metadata: vec![],
//! };
//! let bytes = req.encode_to_vec();
//! assert_eq!(v1::WriteRequest::decode(bytes.as_slice()).unwrap(), req);
//! ```

pub mod read;
pub mod v1;
pub mod v2;

/// The metric type both protocol versions share (same numbers in 1.0's
/// `MetricMetadata.MetricType` and 2.0's `Metadata.MetricType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Unknown or untyped.
    Unknown = 0,
    /// Counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Histogram.
    Histogram = 3,
    /// Gauge histogram.
    Gaugehistogram = 4,
    /// Summary.
    Summary = 5,
    /// Info.
    Info = 6,
    /// State set.
    Stateset = 7,
}

/// A span of consecutive native-histogram buckets (both versions).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span (or the starting index of the first span).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Number of consecutive buckets.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// Reset hint of a native histogram (both versions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResetHint {
    /// Unknown whether a counter reset happened.
    Unknown = 0,
    /// A counter reset happened.
    Yes = 1,
    /// No counter reset happened.
    No = 2,
    /// A gauge histogram: resets are meaningless.
    Gauge = 3,
}

/// A native histogram sample (identical layout in both versions).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Observation count, integer or float flavour.
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: Option<histogram::Count>,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Resolution schema (-4..=8, or -53 for custom buckets).
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Width of the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Zero bucket count, integer or float flavour.
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<histogram::ZeroCount>,
    /// Negative bucket spans.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Negative bucket counts as deltas (integer histograms).
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Negative bucket counts (float histograms).
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    /// Positive bucket spans.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Positive bucket counts as deltas (integer histograms).
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Positive bucket counts (float histograms).
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// Counter-reset hint.
    #[prost(enumeration = "ResetHint", tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Bucket bounds for custom-bucket histograms (schema -53).
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// The `oneof` fields of [`Histogram`].
pub mod histogram {
    /// Observation count.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Count {
        /// Integer histogram.
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        /// Float histogram.
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    /// Zero-bucket count.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum ZeroCount {
        /// Integer histogram.
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        /// Float histogram.
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }
}

/// One float sample (identical layout in both versions).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// The value; staleness markers are a specific NaN, kept bit-exactly.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

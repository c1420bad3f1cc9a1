//! Remote write 2.0: `io.prometheus.write.v2.Request`, every string
//! interned in one symbol table and referenced by index.

pub use super::{BucketSpan, Histogram, MetricType, ResetHint, Sample};

/// The request body (snappy block-compressed on the wire).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// The symbol table; entry 0 must be the empty string. Fields 1 to 3
    /// are reserved (they would clash with 1.0's fields).
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    /// The series.
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series, its strings given as references into [`Request::symbols`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Pairs of (name, value) symbol references, sorted by name.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Float samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histogram samples.
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<Histogram>,
    /// Exemplars.
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<Exemplar>,
    /// The series' metadata.
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<Metadata>,
    /// When the series (a counter, summary or histogram) was created, in ms; 0 if unknown.
    #[prost(int64, tag = "6")]
    pub created_timestamp: i64,
}

/// An exemplar, labels by symbol reference.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Pairs of (name, value) symbol references.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// A series' metadata (field 2 is reserved).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// The metric type.
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// Symbol reference of the help text.
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    /// Symbol reference of the unit.
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

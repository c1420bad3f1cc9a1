//! Remote read: `prometheus.ReadRequest` and its two answers, the
//! `SAMPLES` [`ReadResponse`] and the `STREAMED_XOR_CHUNKS`
//! [`ChunkedReadResponse`] frames (`prompb/remote.proto`, `types.proto`).
//! Series, labels, samples and histograms are remote write 1.0's messages
//! ([`super::v1`]).
//!
//! ```
//! use prost::Message;
//! use tidemark_remote::proto::read::{LabelMatcher, MatcherType, Query, ReadRequest, ResponseType};
//! let req = ReadRequest {
//!     queries: vec![Query {
//!         start_timestamp_ms: 0,
//!         end_timestamp_ms: 60_000,
//!         matchers: vec![LabelMatcher { r#type: MatcherType::Eq as i32, name: "__name__".into(), value: "up".into() }],
//!         hints: None,
//!     }],
//!     accepted_response_types: vec![ResponseType::StreamedXorChunks as i32],
//! };
//! let back = ReadRequest::decode(req.encode_to_vec().as_slice()).unwrap();
//! assert_eq!(back, req);
//! ```

pub use super::v1::{Label, TimeSeries};

/// A remote read request (snappy block-compressed on the wire).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    /// The queries, answered in order.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Response types the client accepts, preferred first; empty means
    /// [`ResponseType::Samples`].
    #[prost(enumeration = "ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// How the server may answer (`ReadRequest.ResponseType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    /// One snappy-compressed [`ReadResponse`] with raw samples.
    Samples = 0,
    /// A stream of [`ChunkedReadResponse`] frames holding XOR (and
    /// histogram) chunks.
    StreamedXorChunks = 1,
}

/// One query: a time range and label matchers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    /// Start of the range, inclusive, in ms since the epoch.
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// End of the range, inclusive, in ms since the epoch.
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// Every matcher must hold.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    /// What the query that caused this read is about (advisory).
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// The matcher operators (`LabelMatcher.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatcherType {
    /// `=`.
    Eq = 0,
    /// `!=`.
    Neq = 1,
    /// `=~` (anchored).
    Re = 2,
    /// `!~` (anchored).
    Nre = 3,
}

/// A label matcher.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    /// The operator ([`MatcherType`]).
    #[prost(enumeration = "MatcherType", tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value, or the regex for `=~`/`!~`.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// What the PromQL query behind a read selects (Prometheus' `SelectHints`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    /// Query step in ms.
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    /// The surrounding function or aggregation.
    #[prost(string, tag = "2")]
    pub func: String,
    /// Start in ms.
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    /// End in ms.
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    /// Label names of the aggregation's grouping.
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    /// Whether the grouping is `by` (else `without`).
    #[prost(bool, tag = "6")]
    pub by: bool,
    /// Range of the range selector in ms.
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// The `SAMPLES` answer: one result per query, in order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// The results.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// The series one query selected, with their samples and histograms.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One frame of a `STREAMED_XOR_CHUNKS` answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedReadResponse {
    /// The series of this frame (Prometheus sends exactly one, possibly
    /// split over several frames).
    #[prost(message, repeated, tag = "1")]
    pub chunked_series: Vec<ChunkedSeries>,
    /// Index of the query in the request.
    #[prost(int64, tag = "2")]
    pub query_index: i64,
}

/// A series and some of its chunks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChunkedSeries {
    /// Sorted labels.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Chunks, in time order, not overlapping.
    #[prost(message, repeated, tag = "2")]
    pub chunks: Vec<Chunk>,
}

/// One chunk in one of Prometheus' chunk encodings.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    /// First sample's timestamp.
    #[prost(int64, tag = "1")]
    pub min_time_ms: i64,
    /// Last sample's timestamp.
    #[prost(int64, tag = "2")]
    pub max_time_ms: i64,
    /// The encoding ([`ChunkEncoding`]).
    #[prost(enumeration = "ChunkEncoding", tag = "3")]
    pub r#type: i32,
    /// The chunk's bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// Prometheus' chunk encodings (`Chunk.Encoding`, equal to its
/// `chunkenc.Encoding` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ChunkEncoding {
    /// Not set.
    Unknown = 0,
    /// Gorilla XOR floats (Prometheus' `EncXOR`).
    Xor = 1,
    /// Integer native histograms (`EncHistogram`).
    Histogram = 2,
    /// Float native histograms (`EncFloatHistogram`).
    FloatHistogram = 3,
}

//! Prometheus remote write and remote read for Tidemark.
//!
//! - [`proto`]: the wire messages of remote write 1.0
//!   (`prometheus.WriteRequest`) and 2.0 (`io.prometheus.write.v2.Request`),
//!   as `prost` structs.
//! - [`metadata`]: the metric metadata (type, help, unit) senders attach,
//!   kept for `/api/v1/metadata`.
//! - [`receive`]: the receiver, which decodes, validates and appends
//!   requests; its module docs describe the status codes and the
//!   partial-acceptance semantics.
//! - [`codec`]: encoding requests (protobuf + snappy) and the 2.0 symbol
//!   table, for senders, tests and benchmarks.
//! - [`forward`]: the forwarder, which ships the WAL to another endpoint.
//! - [`read`]: the remote read handler (`SAMPLES` and
//!   `STREAMED_XOR_CHUNKS` answers from a database).
//!
//! # Receiving: what is stored, what is answered
//!
//! [`Receiver::handle`] takes the `Content-Type` and `Content-Encoding`
//! headers and the body, and answers as the remote write specs require
//! (details and the full status table in [`receive`]):
//!
//! - **204** when every sample was stored. 2.0 answers (all of them once
//!   the content type was accepted) carry
//!   `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written`.
//! - **Partial acceptance, both versions.** Valid samples are stored even
//!   when others in the same request are not; a rejected sample (out of
//!   order, too old, another value at an existing timestamp, more than
//!   10 minutes in the future by default) or series (unsorted, duplicate or
//!   empty label names, invalid names, no `__name__`, unresolvable 2.0
//!   symbol references) yields **400** with counts by reason and the first
//!   rejected series, named `{__name__="x", a="b"}`, with their reason. The
//!   sender does not retry a 400, and its good part is already stored.
//!   (Prometheus' own 1.0 receiver rolls the whole request back instead.)
//! - **413** for a body over the limit, or a snappy header declaring more
//!   decompressed bytes than allowed (checked before allocating); **415**
//!   for an unsupported content type or encoding; **400** for corrupt
//!   snappy or protobuf.
//! - **5xx** only when retrying can help (storage full: 503; I/O error or
//!   a poisoned WAL: 500), and then nothing of the request was stored.
//!
//! Native histograms (integer, float and custom-bucket) are stored as
//! native histogram samples, with the same partial acceptance as floats
//! (plus `invalid_histogram` for one storage's validation refuses).
//! Staleness markers are kept bit-exactly, floats' and histograms' alike;
//! classic histograms and summaries are plain series; metadata feeds the
//! [`MetadataStore`]; exemplars are counted and dropped until storage
//! keeps them. [`Receiver::stats`] exposes the counters for `/metrics`.
//!
//! The [`forward`]er ships float and native histogram samples alike.
#![deny(missing_docs)]

pub mod codec;
pub mod forward;
pub mod histogram;
pub mod metadata;
pub mod proto;
pub mod read;

pub use forward::{Forwarder, ForwarderOptions, ForwarderStats};
pub use metadata::{MetadataStore, MetricKind, MetricMetadata};
pub mod receive;

pub use codec::{encode_v1, encode_v2, SymbolTable};
pub use receive::{Protocol, ReceiveError, Receiver, ReceiverOptions, ReceiverStats, RejectReason, WriteResponse};

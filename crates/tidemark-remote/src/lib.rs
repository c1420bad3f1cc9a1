//! Prometheus remote write for Tidemark.
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
#![deny(missing_docs)]

pub mod codec;
pub mod forward;
pub mod metadata;
pub mod proto;

pub use forward::{Forwarder, ForwarderOptions, ForwarderStats};
pub use metadata::{MetadataStore, MetricKind, MetricMetadata};
pub mod receive;

pub use codec::{encode_v1, encode_v2, SymbolTable};
pub use receive::{Protocol, ReceiveError, Receiver, ReceiverOptions, ReceiverStats, RejectReason, WriteResponse};

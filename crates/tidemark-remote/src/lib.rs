//! Prometheus remote write for Tidemark.
//!
//! - [`proto`]: the wire messages of remote write 1.0
//!   (`prometheus.WriteRequest`) and 2.0 (`io.prometheus.write.v2.Request`),
//!   as `prost` structs.
//! - [`metadata`]: the metric metadata (type, help, unit) senders attach,
//!   kept for `/api/v1/metadata`.
//! - [`receive`]: the receiver, which decodes, validates and appends requests.
//! - [`forward`]: the forwarder, which ships the WAL to another endpoint.
#![deny(missing_docs)]

pub mod forward;
pub mod metadata;
pub mod proto;

pub use forward::{Forwarder, ForwarderOptions, ForwarderStats};
pub use metadata::{MetadataStore, MetricKind, MetricMetadata};
pub mod receive;

pub use receive::{Receiver, ReceiverOptions, WriteResponse};

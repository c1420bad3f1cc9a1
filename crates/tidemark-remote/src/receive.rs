//! The remote write receiver: decodes a request body (1.0 or 2.0, chosen by
//! `Content-Type`), validates it and appends it to a [`Db`].
//!
//! [`Receiver::handle`] is independent of any HTTP framework: the server
//! passes the two headers and the body and turns the [`WriteResponse`] into
//! its own response type.

use std::sync::Arc;

use tidemark_storage::Db;

use crate::MetadataStore;

/// Limits and policies of a [`Receiver`].
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Largest compressed body accepted, in bytes (413 above). Default 32 MiB.
    pub max_body_bytes: usize,
    /// Largest decompressed body accepted, in bytes, checked against the
    /// length snappy declares before anything is allocated. Default 128 MiB.
    pub max_decompressed_bytes: usize,
}

impl Default for ReceiverOptions {
    fn default() -> ReceiverOptions {
        ReceiverOptions { max_body_bytes: 32 << 20, max_decompressed_bytes: 128 << 20 }
    }
}

/// What to answer: status, extra headers and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResponse {
    /// HTTP status code.
    pub status: u16,
    /// Extra response headers (e.g. 2.0's `X-Prometheus-Remote-Write-Samples-Written`).
    pub headers: Vec<(&'static str, String)>,
    /// Plain-text body: empty on success, the reason otherwise.
    pub body: String,
}

/// Receives remote write requests into a database.
#[derive(Debug)]
pub struct Receiver {
    db: Arc<Db>,
    metadata: Arc<MetadataStore>,
    opts: ReceiverOptions,
}

impl Receiver {
    /// A receiver appending to `db` and recording metadata in `metadata`.
    pub fn new(db: Arc<Db>, metadata: Arc<MetadataStore>, opts: ReceiverOptions) -> Receiver {
        Receiver { db, metadata, opts }
    }

    /// The options.
    pub fn options(&self) -> &ReceiverOptions {
        &self.opts
    }

    /// The metadata store requests feed.
    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.metadata
    }

    /// The database requests are appended to.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Handles one request: `content_type` and `content_encoding` are the
    /// request's headers (if present), `body` its raw bytes. Blocking (the
    /// append waits for the WAL): call it off the async executor.
    pub fn handle(&self, content_type: Option<&str>, content_encoding: Option<&str>, body: &[u8]) -> WriteResponse {
        let _ = (content_type, content_encoding, body);
        WriteResponse { status: 501, headers: Vec::new(), body: "remote write decoding is not built yet".into() }
    }
}

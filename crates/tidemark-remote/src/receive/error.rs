//! Why a request was refused, and the HTTP status each reason maps to.

use tidemark_storage::Error as StorageError;

/// Why a remote write request was not (fully) accepted. Each variant maps to
/// one HTTP status ([`ReceiveError::status`]) following the remote write
/// specs: 4xx when the sender must not retry, 5xx when retrying can succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// `Content-Type` is not protobuf or names an unknown message (415).
    #[error("unsupported content type {0:?}: expected application/x-protobuf with proto=prometheus.WriteRequest (1.0) or proto=io.prometheus.write.v2.Request (2.0)")]
    UnsupportedContentType(String),
    /// `Content-Encoding` is not snappy (415).
    #[error("unsupported content encoding {0:?}: only snappy is accepted")]
    UnsupportedEncoding(String),
    /// The compressed body is larger than the limit (413).
    #[error("request body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Body size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The decompressed size snappy declares is larger than the limit (413).
    /// Checked before decompressing, so a small "bomb" allocates nothing.
    #[error("decompressed size of {declared} bytes exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The size the snappy header declares.
        declared: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not valid snappy block-format data (400).
    #[error("corrupt snappy data: {0}")]
    CorruptSnappy(String),
    /// The decompressed body is not a valid protobuf message of the
    /// negotiated type (400).
    #[error("cannot decode {message}: {reason}")]
    BadProtobuf {
        /// The message type expected.
        message: &'static str,
        /// What prost reported.
        reason: String,
    },
    /// A body negotiated as 2.0 holds none of 2.0's fields but some of the
    /// fields 2.0 reserves and 1.0 uses (400): answering 204 would tell the
    /// sender its samples were stored when none were.
    #[error("the body looks like a remote write 1.0 body (prometheus.WriteRequest) sent with the 2.0 content type (proto=io.prometheus.write.v2.Request): it has {fields} field(s) numbered 1 to 3, which 1.0 uses for timeseries and metadata and 2.0 does not define, and no 2.0 symbols or timeseries; send it with Content-Type: application/x-protobuf (or proto=prometheus.WriteRequest), or encode it as 2.0")]
    V1BodyWithV2ContentType {
        /// How many such fields the body held.
        fields: usize,
    },
    /// The 2.0 symbol table is malformed (400): its first entry must be
    /// the empty string.
    #[error("invalid symbol table: {0}")]
    BadSymbolTable(String),
    /// Part of the batch was invalid or could not be stored (400). The rest
    /// was stored; the message lists the first rejected series and reasons.
    #[error("{0}")]
    PartiallyRejected(String),
    /// The HA tracker dropped the request: it comes from a replica of its
    /// cluster that is not the elected one (202: the sender must not
    /// retry, the elected replica's copy of the data is stored).
    #[error("deduplicated: replica {replica:?} of cluster {cluster:?} is not the elected replica {elected:?}; its samples were dropped")]
    HaDeduplicated {
        /// The cluster.
        cluster: String,
        /// The replica that sent the request.
        replica: String,
        /// The elected replica.
        elected: String,
    },
    /// The request names a new HA cluster while the tracker holds its
    /// limit of clusters (400).
    #[error("too many HA clusters (limit {limit}): the request's cluster is new; its samples were dropped")]
    TooManyHaClusters {
        /// The limit ([`super::ha::HaOptions::max_clusters`]).
        limit: usize,
    },
    /// Storing the batch failed in a way retrying can fix (e.g. the disk is
    /// full): nothing of the batch was stored (503 or 500).
    #[error("storage error, nothing of this request was stored: {0}")]
    Storage(#[source] StorageError),
}

impl ReceiveError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            ReceiveError::UnsupportedContentType(_) | ReceiveError::UnsupportedEncoding(_) => 415,
            ReceiveError::BodyTooLarge { .. } | ReceiveError::DecompressedTooLarge { .. } => 413,
            ReceiveError::CorruptSnappy(_)
            | ReceiveError::BadProtobuf { .. }
            | ReceiveError::BadSymbolTable(_)
            | ReceiveError::V1BodyWithV2ContentType { .. }
            | ReceiveError::PartiallyRejected(_)
            | ReceiveError::TooManyHaClusters { .. } => 400,
            ReceiveError::HaDeduplicated { .. } => 202,
            // Temporary conditions: come back later.
            ReceiveError::Storage(StorageError::StorageFull { .. } | StorageError::Closed) => 503,
            // The disk is full: as temporary as the size limit (writes
            // resume by themselves once space is freed).
            ReceiveError::Storage(StorageError::Io { source, .. }) if tidemark_storage::vfs::is_no_space(source) => 503,
            // I/O failures and a poisoned WAL: the sender must keep the data
            // and retry (5xx), but the cause is internal.
            ReceiveError::Storage(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_map_to_retryable_statuses() {
        let io = |e: std::io::Error| ReceiveError::Storage(StorageError::io("wal/00000001", e));
        // A full disk is as temporary as the size limit: 503.
        assert_eq!(io(std::io::Error::from_raw_os_error(28)).status(), 503);
        assert_eq!(io(std::io::Error::new(std::io::ErrorKind::StorageFull, "full")).status(), 503);
        assert_eq!(ReceiveError::Storage(StorageError::StorageFull { used: 2, limit: 1 }).status(), 503);
        // Other I/O failures (EIO, failed fsync) are internal, still retryable.
        assert_eq!(io(std::io::Error::from_raw_os_error(5)).status(), 500);
    }
}

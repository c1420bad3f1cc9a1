//! The error every Prometheus format reader returns: what was wrong with the
//! bytes, without the file name (callers add it).

/// Bytes that are not what Prometheus writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The data ends before a field does.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A file starts with the wrong magic number.
    #[error("bad magic number {got:#010x} (want {want:#010x})")]
    BadMagic {
        /// What was found.
        got: u32,
        /// What the format starts with.
        want: u32,
    },
    /// A format version we do not read.
    #[error("unsupported {what} version {got}")]
    UnsupportedVersion {
        /// Which format.
        what: &'static str,
        /// The version found.
        got: u8,
    },
    /// A CRC32-Castagnoli checksum does not match.
    #[error("checksum mismatch in {0}")]
    Checksum(&'static str),
    /// Anything else that breaks the format's rules.
    #[error("{0}")]
    Invalid(String),
}

impl FormatError {
    pub(crate) fn invalid(msg: impl Into<String>) -> FormatError {
        FormatError::Invalid(msg.into())
    }
}

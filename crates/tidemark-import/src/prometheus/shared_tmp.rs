//! Private copies of the shared import API (`tidemark_import::summary`),
//! with the agreed names and fields, until the module lands; the lead
//! deletes this file at merge and points the imports at `crate::summary`.

use std::path::PathBuf;
use std::time::Duration;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Tidemark data directory written into.
    pub data_dir: PathBuf,
    /// Span of the blocks written (default 2 h).
    pub block_duration: Duration,
    /// Memory the import may hold for samples.
    pub max_memory_bytes: u64,
    /// Show progress bars.
    pub progress: bool,
    /// Read every imported sample back.
    pub verify: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Series imported.
    pub series: u64,
    /// Float samples imported.
    pub float_samples: u64,
    /// Native-histogram samples imported.
    pub histogram_samples: u64,
    /// Earliest sample time.
    pub min_time_ms: i64,
    /// Latest sample time.
    pub max_time_ms: i64,
    /// Ulids of the blocks written.
    pub blocks_written: Vec<String>,
    /// What was left out, by reason, with counts.
    pub skipped: Vec<(String, u64)>,
    /// Whether every imported sample was read back.
    pub verified: bool,
}

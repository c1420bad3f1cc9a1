//! What an import is asked to do ([`ImportOptions`]) and what it did
//! ([`ImportSummary`]): the types every importer shares.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default block duration: 2 h, Prometheus' and Tidemark's smallest block.
pub const DEFAULT_BLOCK_DURATION: Duration = Duration::from_secs(2 * 3600);
/// Default memory bound of an import's sample buffers: 512 MiB.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 512 << 20;

/// Options of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The Tidemark data directory to write blocks into (created if missing).
    /// No Tidemark may be running on it: its lock must be free.
    pub data_dir: PathBuf,
    /// Time span of the blocks written. Default: [`DEFAULT_BLOCK_DURATION`].
    /// Importers round it as `promtool` does (see each importer).
    pub block_duration: Duration,
    /// Bound on the memory the importer's sample buffers use, in bytes.
    /// Default: [`DEFAULT_MAX_MEMORY_BYTES`]. What it covers is documented
    /// by each importer.
    pub max_memory_bytes: u64,
    /// Show progress bars (only ever on a terminal). Default: `true`.
    pub progress: bool,
    /// After writing, reopen the data directory and read every imported
    /// sample back. Default: `true`.
    pub verify: bool,
}

impl ImportOptions {
    /// The defaults, writing into `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ImportOptions {
        ImportOptions {
            data_dir: data_dir.into(),
            block_duration: DEFAULT_BLOCK_DURATION,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            progress: true,
            verify: true,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Distinct series imported.
    pub series: u64,
    /// Float samples imported.
    pub float_samples: u64,
    /// Native-histogram samples imported.
    pub histogram_samples: u64,
    /// Earliest imported timestamp (ms since the epoch; 0 if nothing was imported).
    pub min_time_ms: i64,
    /// Latest imported timestamp (ms since the epoch; 0 if nothing was imported).
    pub max_time_ms: i64,
    /// The ULIDs of the blocks written, oldest first.
    pub blocks_written: Vec<String>,
    /// What was left out or could not be kept, and how often: (reason, count).
    pub skipped: Vec<(String, u64)>,
    /// Whether every imported sample was read back through a reopened
    /// database (`false` when verification was not asked for).
    pub verified: bool,
}

impl ImportSummary {
    /// Adds `n` to the count of `reason` in [`ImportSummary::skipped`].
    pub fn skip(&mut self, reason: &str, n: u64) {
        if n == 0 {
            return;
        }
        match self.skipped.iter_mut().find(|(r, _)| r == reason) {
            Some((_, c)) => *c += n,
            None => self.skipped.push((reason.to_string(), n)),
        }
    }
}

/// `2026-11-21T10:00:00.000Z` for a millisecond timestamp (UTC, proleptic
/// Gregorian calendar).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "series:            {}", self.series)?;
        writeln!(f, "float samples:     {}", self.float_samples)?;
        writeln!(f, "histogram samples: {}", self.histogram_samples)?;
        if self.float_samples + self.histogram_samples > 0 {
            writeln!(
                f,
                "time range:        {} .. {} ({} .. {} ms)",
                format_rfc3339_ms(self.min_time_ms),
                format_rfc3339_ms(self.max_time_ms),
                self.min_time_ms,
                self.max_time_ms
            )?;
        } else {
            writeln!(f, "time range:        (no samples)")?;
        }
        writeln!(f, "blocks written:    {}", self.blocks_written.len())?;
        for b in &self.blocks_written {
            writeln!(f, "  {b}")?;
        }
        for (reason, n) in &self.skipped {
            writeln!(f, "skipped:           {n} × {reason}")?;
        }
        write!(f, "verified:          {}", if self.verified { "yes, every sample read back" } else { "no" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(format_rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn skip_accumulates_per_reason() {
        let mut s = ImportSummary::default();
        s.skip("a", 2);
        s.skip("b", 0);
        s.skip("a", 3);
        assert_eq!(s.skipped, vec![("a".to_string(), 5)]);
        let text = s.to_string();
        assert!(text.contains("5 × a"), "{text}");
        assert!(text.contains("(no samples)"), "{text}");
    }
}

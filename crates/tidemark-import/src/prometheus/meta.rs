//! A Prometheus block's `meta.json` (version 1): the fields the import
//! needs.

use super::format::FormatError;

/// What a block's `meta.json` says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromBlockMeta {
    /// The block's ulid.
    pub ulid: String,
    /// First millisecond covered (inclusive).
    pub min_time: i64,
    /// End of the covered range (exclusive).
    pub max_time: i64,
    /// Compaction level.
    pub level: u64,
    /// Marked for deletion: its data was compacted into another block that
    /// replaces it.
    pub deletable: bool,
    /// A compaction of this block with others failed once (its data is
    /// still valid).
    pub compaction_failed: bool,
    /// Samples, as the block's stats count them (0 if absent).
    pub num_samples: u64,
    /// Series, as the block's stats count them (0 if absent).
    pub num_series: u64,
}

/// Parses a `meta.json`.
pub fn parse_meta(b: &[u8]) -> Result<PromBlockMeta, FormatError> {
    let v: serde_json::Value =
        serde_json::from_slice(b).map_err(|e| FormatError::invalid(format!("meta.json: {e}")))?;
    let version = v.get("version").and_then(|x| x.as_u64());
    if version != Some(1) {
        return Err(FormatError::invalid(format!("meta.json: unsupported version {version:?} (want 1)")));
    }
    let ulid =
        v.get("ulid").and_then(|x| x.as_str()).ok_or_else(|| FormatError::invalid("meta.json: no ulid"))?.to_string();
    let int =
        |k: &str| v.get(k).and_then(|x| x.as_i64()).ok_or_else(|| FormatError::invalid(format!("meta.json: no {k}")));
    let min_time = int("minTime")?;
    let max_time = int("maxTime")?;
    if min_time >= max_time {
        return Err(FormatError::invalid(format!("meta.json: empty range [{min_time}, {max_time})")));
    }
    let c = v.get("compaction");
    let flag = |k: &str| c.and_then(|c| c.get(k)).and_then(|x| x.as_bool()).unwrap_or(false);
    let stat = |k: &str| v.get("stats").and_then(|s| s.get(k)).and_then(|x| x.as_u64()).unwrap_or(0);
    Ok(PromBlockMeta {
        ulid,
        min_time,
        max_time,
        level: c.and_then(|c| c.get("level")).and_then(|x| x.as_u64()).unwrap_or(1),
        deletable: flag("deletable"),
        compaction_failed: flag("failed"),
        num_samples: stat("numSamples"),
        num_series: stat("numSeries"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_prometheus_writes() {
        let m = parse_meta(
            br#"{"ulid":"01GQ7X1Y2Z3A4B5C6D7E8F9G0H","minTime":1000,"maxTime":7201000,
            "stats":{"numSamples":10,"numSeries":2,"numChunks":2},
            "compaction":{"level":2,"sources":["a","b"],"deletable":true},"version":1}"#,
        )
        .unwrap();
        assert_eq!((m.min_time, m.max_time, m.level, m.deletable, m.num_series), (1000, 7201000, 2, true, 2));
        assert!(!m.compaction_failed);
        assert!(parse_meta(br#"{"ulid":"x","minTime":1,"maxTime":2,"version":2}"#).is_err());
        assert!(parse_meta(br#"{"ulid":"x","minTime":2,"maxTime":2,"version":1}"#).is_err());
        assert!(parse_meta(b"{").is_err());
    }
}

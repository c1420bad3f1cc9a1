//! Where a load's timestamps sit against the 2 h ranges a head cuts blocks
//! at, so that a preset's figures do not depend on the time of day.
//!
//! The three systems treat data time like this:
//!
//! * **Tidemark** cuts `[B - 2 h, B)` (`B` a multiple of 2 h since the
//!   epoch) into a block once the newest sample reaches `B + 1 h` (half a
//!   range past the range's end), in its next maintenance round (every
//!   30 s), then truncates its head and WAL.
//! * **Prometheus 2.42** compacts its head once it spans more than 1.5 × 2 h
//!   of data time (newest − oldest sample), so a load shorter than 3 h is
//!   never cut, wherever it sits.
//! * **VictoriaMetrics 1.79** cuts nothing; it refuses samples older than
//!   its retention (1 month by default) or more than 2 days ahead.
//!
//! So a load is placed in the past (it ends at least a minute before the
//! run starts, well inside every retention) and at a fixed offset from a 2 h
//! boundary:
//!
//! * [`BlockCut::None`]: the first scrape round starts exactly on a
//!   boundary `B`. Tidemark cuts nothing while the data stays below
//!   `B + 3 h`: everything stays in the head (issue 13's "still in the
//!   head"), for loads up to 3 h.
//! * [`BlockCut::During`]: the first scrape round starts
//!   [`DURING_LEAD_MS`] (2 min) before `B`. Tidemark writes the block
//!   `[B - 2 h, B)` (those 2 minutes) once the data reaches `B + 1 h`, i.e.
//!   62 min into the load; the tool then waits for that block, and for
//!   any WAL checkpoint after it to finish, before it measures (the cut
//!   lands in a maintenance round up to 30 s later),
//!   so the figures always include one block cut and its WAL truncation.
//!
//! `B` is the latest boundary for which the whole load still ends a minute
//! before now.

/// Length of the head's block range (Tidemark's and Prometheus' default).
pub const BLOCK_RANGE_MS: i64 = 2 * 3_600_000;

/// [`BlockCut::During`]: the first scrape round is this long before a 2 h
/// boundary.
pub const DURING_LEAD_MS: i64 = 2 * 60_000;

/// The newest sample is at least this far behind the run's start (every
/// system takes the data as already past; VictoriaMetrics shows all of it).
const BEHIND_NOW_MS: i64 = 60_000;

/// Whether the load makes Tidemark cut a head block while it is sent
/// (`--block-cut`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockCut {
    /// Everything stays in the head: the first round starts on a 2 h
    /// boundary (loads up to 3 h).
    None,
    /// One block is cut during ingest: the first round starts 2 min before
    /// a 2 h boundary (loads of at least 62 min).
    During,
}

impl BlockCut {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            BlockCut::None => "none",
            BlockCut::During => "during",
        }
    }

    /// Offset of the first scrape round from its 2 h boundary.
    pub fn offset_ms(self) -> i64 {
        match self {
            BlockCut::None => 0,
            BlockCut::During => -DURING_LEAD_MS,
        }
    }
}

/// Where a load goes: its first scrape round and the boundary it is
/// placed against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The 2 h boundary `B`.
    pub boundary_ms: i64,
    /// The first scrape round starts here (`B` + the case's offset).
    pub first_ms: i64,
}

/// Places a load whose samples span `span_ms` from its first round's start
/// (the newest sample's time minus the first round's start), for the case
/// `cut`, on a run started at `now_ms`.
///
/// Errors when the case cannot happen for that span: no cut needs the data
/// below `B + 3 h` (Tidemark and Prometheus both cut past it); a cut needs
/// the data to reach `B + 1 h`.
pub fn place(cut: BlockCut, span_ms: i64, now_ms: i64) -> Result<Placement, String> {
    let offset = cut.offset_ms();
    match cut {
        BlockCut::None if span_ms >= BLOCK_RANGE_MS * 3 / 2 => {
            return Err(format!(
                "--block-cut none needs a load shorter than 3 h (this one spans {:.2} h): use --block-cut during",
                span_ms as f64 / 3.6e6
            ))
        }
        BlockCut::During if offset + span_ms < BLOCK_RANGE_MS / 2 => {
            return Err(format!(
                "--block-cut during needs a load of at least {} min (this one spans {:.1} min)",
                (BLOCK_RANGE_MS / 2 - offset) / 60_000,
                span_ms as f64 / 60_000.0
            ))
        }
        _ => {}
    }
    let latest_first = now_ms - BEHIND_NOW_MS - span_ms;
    let boundary_ms = (latest_first - offset).div_euclid(BLOCK_RANGE_MS) * BLOCK_RANGE_MS;
    Ok(Placement { boundary_ms, first_ms: boundary_ms + offset })
}

/// Whether Tidemark's data directory holds a block (a top-level directory
/// with a `meta.json`; snapshots live under `snapshots/`).
pub fn has_block(data_dir: &std::path::Path) -> bool {
    std::fs::read_dir(data_dir)
        .map(|entries| entries.flatten().any(|e| e.path().join("meta.json").is_file()))
        .unwrap_or(false)
}

/// Whether Tidemark is writing a WAL checkpoint (a `wal/checkpoint.N.tmp`
/// directory exists): the directory then holds the WAL twice for a while.
pub fn checkpoint_in_progress(data_dir: &std::path::Path) -> bool {
    std::fs::read_dir(data_dir.join("wal"))
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("checkpoint.") && name.ends_with(".tmp")
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// The production preset: 264 rounds at 15 s, targets offset under
    /// 15 s, plus jitter.
    const PRODUCTION_SPAN: i64 = 263 * 15_000 + 15_000 + 24;
    // Prometheus never compacts a head of under 3 h: no case cuts there.
    const _: () = assert!(PRODUCTION_SPAN < 3 * HOUR);

    /// Tidemark's rule: is `[B - 2 h, B)` cut once the newest sample is
    /// `newest` (with data below `B`)?
    fn tidemark_cuts(p: Placement, newest: i64) -> bool {
        p.first_ms < p.boundary_ms && newest >= p.boundary_ms + HOUR || newest >= p.boundary_ms + BLOCK_RANGE_MS + HOUR
    }

    #[test]
    fn the_placement_does_not_depend_on_the_time_of_day() {
        for cut in [BlockCut::None, BlockCut::During] {
            let mut seen = Vec::new();
            // Every 7 minutes over a day.
            for k in 0..(24 * 60 / 7) {
                let now = 1_800_000_000_000 + k * 7 * 60_000;
                let p = place(cut, PRODUCTION_SPAN, now).unwrap();
                assert_eq!(p.boundary_ms.rem_euclid(BLOCK_RANGE_MS), 0);
                assert_eq!(p.first_ms - p.boundary_ms, cut.offset_ms());
                // In the past, by at least a minute, and at most 2 h more.
                let newest = p.first_ms + PRODUCTION_SPAN;
                assert!(newest <= now - 60_000, "{cut:?} at {now}");
                assert!(newest > now - 60_000 - BLOCK_RANGE_MS, "{cut:?} at {now}");
                // The cut happens in one case and not in the other.
                assert_eq!(tidemark_cuts(p, newest), cut == BlockCut::During, "{cut:?} at {now}");
                seen.push(p.first_ms - p.boundary_ms);
            }
            seen.dedup();
            assert_eq!(seen.len(), 1);
        }
    }

    #[test]
    fn the_during_cut_comes_62_minutes_into_the_load() {
        let p = place(BlockCut::During, PRODUCTION_SPAN, 1_800_000_000_000).unwrap();
        assert_eq!(p.boundary_ms + HOUR - p.first_ms, 62 * 60_000);
        assert!(!tidemark_cuts(p, p.first_ms + 62 * 60_000 - 1));
        assert!(tidemark_cuts(p, p.first_ms + 62 * 60_000));
    }

    #[test]
    fn impossible_cases_are_refused() {
        // The long preset (8 h 5 min) cannot stay in the head.
        assert!(place(BlockCut::None, 1_941 * 15_000, 1_800_000_000_000).is_err());
        assert!(place(BlockCut::During, 1_941 * 15_000, 1_800_000_000_000).is_ok());
        // 3 h minus a round still fits; 30 min cannot reach the cut.
        assert!(place(BlockCut::None, 3 * HOUR - 15_000, 1_800_000_000_000).is_ok());
        assert!(place(BlockCut::During, HOUR / 2, 1_800_000_000_000).is_err());
        assert!(place(BlockCut::During, 62 * 60_000, 1_800_000_000_000).is_ok());
    }

    #[test]
    fn blocks_are_found_beside_the_wal_not_in_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("wal")).unwrap();
        std::fs::create_dir_all(dir.path().join("snapshots/x/01ABC")).unwrap();
        std::fs::write(dir.path().join("snapshots/x/01ABC/meta.json"), b"{}").unwrap();
        assert!(!has_block(dir.path()));
        std::fs::create_dir_all(dir.path().join("01XYZ")).unwrap();
        std::fs::write(dir.path().join("01XYZ/meta.json"), b"{}").unwrap();
        assert!(has_block(dir.path()));
        assert!(!checkpoint_in_progress(dir.path()));
        std::fs::create_dir_all(dir.path().join("wal/checkpoint.00000002.tmp")).unwrap();
        assert!(checkpoint_in_progress(dir.path()));
    }
}

//! Tailing the WAL of a running database: a read-only reader that follows
//! the log as it is written, for senders such as a remote-write forwarder.
//!
//! A [`WalTailer`] reads records from a [`WalPosition`] onwards and reports
//! where it stopped. It never writes to the directory and copes with what a
//! live log does underneath it:
//!
//! - **The segment being written.** A torn or short frame at the end of the
//!   newest segment is a record still being written: the read stops before
//!   it ("no more yet") and the next read tries again.
//! - **Rollover.** Once the next segment exists, the current one is complete
//!   (the writer never appends to a segment after creating the next), so the
//!   reader finishes it and moves on.
//! - **Checkpoints.** When the position's segment has been deleted by a
//!   checkpoint, the data in it is gone. The reader jumps to the oldest
//!   segment still on disk, hands out the series of the newest checkpoint
//!   again (so later samples can be resolved) and reports a [`WalSkip`]
//!   (also logged with `tracing::warn!`) so that the caller counts the loss.
//!
//! Series records written before the start position are needed to resolve
//! the sample records after it, so the first read also returns the series
//! (only) of the newest checkpoint and of the segments before the position.
//!
//! ```
//! use tidemark_storage::wal::{Record, RefSample, RefSeries, Wal, WalOptions, WalTailer};
//! use tidemark_storage::Labels;
//! let dir = tempfile::tempdir().unwrap();
//! let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
//! let labels = Labels::new([("__name__", "up")]).unwrap();
//! wal.log(&[Record::Series(vec![RefSeries { series_ref: 1, labels }])]).unwrap();
//! let mut tail = WalTailer::open(dir.path(), None).unwrap();
//! assert_eq!(tail.read(1 << 20).unwrap().records.len(), 1);
//!
//! wal.log(&[Record::Samples(vec![RefSample { series_ref: 1, t: 1000, v: 1.0 }])]).unwrap();
//! let read = tail.read(1 << 20).unwrap();
//! assert!(matches!(&read.records[0], Record::Samples(s) if s.len() == 1));
//! assert_eq!(read.position, tail.position());
//! assert!(tail.read(1 << 20).unwrap().records.is_empty()); // nothing new yet
//! ```

use std::io;
use std::path::{Path, PathBuf};

use super::segment::{list_dir, scan_segment_from, segment_path, ScanEnd, SEGMENT_HEADER};
use super::{read_checkpoint, Record, ReplayStats};
use crate::Error;

/// A place in the log: a segment number and a byte offset in it. Offsets are
/// 0 (the start of the segment) or the end of a record frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WalPosition {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

impl WalPosition {
    /// The start of `segment`.
    pub fn start_of(segment: u64) -> WalPosition {
        WalPosition { segment, offset: 0 }
    }
}

impl std::fmt::Display for WalPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// Why a [`WalTailer`] jumped over data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The segments were deleted (checkpointed) before they were read.
    Deleted,
    /// A complete (no longer written) segment has a bad record; the rest of
    /// that segment was skipped. The text says what was wrong.
    Corrupt(String),
}

/// Data a [`WalTailer`] could not read and jumped over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSkip {
    /// Where reading should have continued.
    pub from: WalPosition,
    /// Where reading continues.
    pub to: WalPosition,
    /// Segments lost entirely or in part: `to.segment - from.segment`.
    pub segments: u64,
    /// Why.
    pub reason: SkipReason,
}

/// What one [`WalTailer::read`] returned.
#[derive(Debug, Clone, Default)]
pub struct TailRead {
    /// Records in log order. After an open or a skip, the series records
    /// needed to resolve later samples come first (samples before the
    /// position are not returned).
    pub records: Vec<Record>,
    /// The position after the last record read: pass it to
    /// [`WalTailer::open`] to continue from here later.
    pub position: WalPosition,
    /// Data jumped over during this read; the caller should count it as lost.
    pub skips: Vec<WalSkip>,
    /// Set when this read handed out the series of checkpoint `n` (first,
    /// after an open or a skip, or when a newer checkpoint appeared). The
    /// checkpoint holds every series still alive up to segment `n`: series
    /// last seen in segments `<= n` and absent from it are gone, and a
    /// caller keeping a map of series may forget them.
    pub checkpoint: Option<u64>,
}

/// Reads a WAL directory from a position onwards while the database writes
/// to it. Read-only; any number of tailers may follow one log.
#[derive(Debug)]
pub struct WalTailer {
    dir: PathBuf,
    pos: WalPosition,
    /// The series before `pos` still have to be handed out.
    need_series: bool,
    /// The newest checkpoint whose series were handed out.
    seen_checkpoint: Option<u64>,
    /// Opened at "the oldest segment" of an empty directory: the position
    /// is fixed by the first segment that appears, without a skip.
    floating: bool,
}

impl WalTailer {
    /// A tailer of the WAL in `dir` starting at `from`, or at the oldest
    /// segment on disk when `None`. Checks that the directory can be listed;
    /// reading starts with the first [`WalTailer::read`].
    pub fn open(dir: &Path, from: Option<WalPosition>) -> Result<WalTailer, Error> {
        let listing = list_dir(dir)?;
        let (pos, floating) = match from {
            Some(p) => (p, false),
            None => {
                let ckpt = listing.checkpoints.last().copied();
                let first = listing.segments.iter().copied().find(|&s| ckpt.is_none_or(|c| s > c));
                match first.or(ckpt.map(|c| c + 1)) {
                    Some(f) => (WalPosition::start_of(f), false),
                    None => (WalPosition::default(), true),
                }
            }
        };
        Ok(WalTailer { dir: dir.to_path_buf(), pos, need_series: true, seen_checkpoint: None, floating })
    }

    /// The position after everything read so far.
    pub fn position(&self) -> WalPosition {
        self.pos
    }

    /// Reads the records available after the current position, stopping
    /// once about `max_bytes` of frames have been read (at least one record
    /// is returned when one is available). Returns no records when nothing
    /// new has been written: call again later. I/O errors are returned; the
    /// position is then unchanged.
    pub fn read(&mut self, max_bytes: u64) -> Result<TailRead, Error> {
        let mut out = TailRead { position: self.pos, ..TailRead::default() };
        let mut pos = self.pos;
        let mut need_series = self.need_series;
        let mut budget = max_bytes.max(1);
        // A segment can vanish between listing and opening it (a checkpoint
        // ran); each vanishing costs one more pass, and checkpoints are rare.
        for _attempt in 0..16 {
            let listing = list_dir(&self.dir)?;
            let ckpt = listing.checkpoints.last().copied();
            let live: Vec<u64> = listing.segments.iter().copied().filter(|&s| ckpt.is_none_or(|c| s > c)).collect();
            let first = live.first().copied().or(ckpt.map(|c| c + 1));
            if self.floating {
                match first {
                    Some(f) => {
                        pos = WalPosition::start_of(f);
                        self.floating = false;
                    }
                    None => break, // still nothing written
                }
            }
            if let Some(first) = first.filter(|&f| pos.segment < f) {
                let to = WalPosition::start_of(first);
                let skip = WalSkip { from: pos, to, segments: first - pos.segment, reason: SkipReason::Deleted };
                tracing::warn!(dir = %self.dir.display(), from = %skip.from, to = %skip.to, segments = skip.segments, "WAL segments were deleted before they were read: their data is lost to this reader");
                out.skips.push(skip);
                pos = to;
                need_series = true;
            }
            if need_series {
                match self.series_before(ckpt, &live, pos, &mut out.records) {
                    Ok(()) => {
                        need_series = false;
                        out.checkpoint = ckpt;
                    }
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(e),
                }
            } else if ckpt > self.seen_checkpoint.max(out.checkpoint) {
                // A checkpoint appeared behind the reader: its series tell
                // the caller which of the older series are still alive.
                let (c, start) = (ckpt.unwrap_or(0), out.records.len());
                let mut keep = |rec: Record| {
                    if matches!(rec, Record::Series(_)) {
                        out.records.push(rec);
                    }
                };
                match read_checkpoint(&self.dir, c, &mut keep, &mut ReplayStats::default()) {
                    Ok(()) => out.checkpoint = ckpt,
                    Err(e) if is_not_found(&e) => {
                        out.records.truncate(start);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match self.read_segments(&mut pos, &mut budget, &mut out) {
                Ok(()) => break,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            }
        }
        self.pos = pos;
        self.need_series = need_series;
        self.seen_checkpoint = self.seen_checkpoint.max(out.checkpoint);
        out.position = pos;
        Ok(out)
    }

    /// Appends the series records of checkpoint `ckpt` and of the segments
    /// before `pos` (and of `pos.segment` up to `pos.offset`).
    fn series_before(
        &self,
        ckpt: Option<u64>,
        live: &[u64],
        pos: WalPosition,
        records: &mut Vec<Record>,
    ) -> Result<(), Error> {
        let start = records.len();
        let mut keep = |rec: Record| {
            if matches!(rec, Record::Series(_)) {
                records.push(rec);
            }
        };
        let res = (|| {
            if let Some(c) = ckpt {
                read_checkpoint(&self.dir, c, &mut keep, &mut ReplayStats::default())?;
            }
            for &s in live.iter().filter(|&&s| s <= pos.segment) {
                let mut until_pos = |rec: Record, end: u64| {
                    if s < pos.segment || end <= pos.offset {
                        keep(rec);
                    }
                    s < pos.segment || end < pos.offset
                };
                if s == pos.segment && pos.offset <= SEGMENT_HEADER.len() as u64 {
                    break;
                }
                scan_segment_from(&segment_path(&self.dir, s), 0, &mut until_pos)?;
            }
            Ok(())
        })();
        if res.is_err() {
            records.truncate(start);
        }
        res
    }

    /// Reads forward from `pos` through complete segments into the newest.
    fn read_segments(&self, pos: &mut WalPosition, budget: &mut u64, out: &mut TailRead) -> Result<(), Error> {
        loop {
            // Checked before reading: if the next segment exists now, every
            // record of this one is already written, so a short read below
            // is the real end (or damage), not a write in progress.
            let complete = segment_path(&self.dir, pos.segment + 1).exists();
            let path = segment_path(&self.dir, pos.segment);
            let mut stopped_early = false;
            let start = pos.offset;
            let scan = {
                let b = &mut *budget;
                let records = &mut out.records;
                let mut take = |rec: Record, end: u64| {
                    records.push(rec);
                    let used = end.saturating_sub(start);
                    if used >= *b {
                        stopped_early = true;
                        return false;
                    }
                    true
                };
                match scan_segment_from(&path, start, &mut take) {
                    Ok(s) => s,
                    // Not created yet (the writer has not started it):
                    // nothing to read. A deleted segment always has a
                    // successor, so it is reported to the caller, which
                    // lists the directory again and sees the skip.
                    Err(e) if is_not_found(&e) && !complete => return Ok(()),
                    Err(e) => return Err(e),
                }
            };
            if scan.valid_len > start {
                *budget = budget.saturating_sub(scan.valid_len - start);
                pos.offset = scan.valid_len;
            }
            if stopped_early || *budget == 0 {
                return Ok(());
            }
            if !complete {
                // The segment being written: a torn end is a record in flight.
                return Ok(());
            }
            if let ScanEnd::Stopped(reason) = scan.end {
                let to = WalPosition::start_of(pos.segment + 1);
                let skip = WalSkip { from: *pos, to, segments: 1, reason: SkipReason::Corrupt(reason) };
                tracing::warn!(dir = %self.dir.display(), from = %skip.from, reason = ?skip.reason, "corrupt record in a complete WAL segment: skipping the rest of it");
                out.skips.push(skip);
            }
            *pos = WalPosition::start_of(pos.segment + 1);
        }
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

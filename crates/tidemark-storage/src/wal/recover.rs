//! Reading a log that may be damaged in the middle, and rewriting it so the
//! damage is gone while every intact record is kept.
//!
//! A torn tail (the last frames of the newest segment cut short by a crash)
//! is normal and is only truncated (see `repair` in the parent module).
//! Anything else that fails its checks is *damage*: a bad frame followed by
//! more data, a bad frame in a segment that has a successor, a missing
//! segment, or any bad frame in a checkpoint (checkpoints are fsynced before
//! they are renamed into place, so they are never torn). Reading
//! resynchronises after damage: if the damaged frame's length still leads
//! to a valid frame, exactly that frame is skipped; otherwise the bytes are
//! scanned for the next offset where a frame with a valid length, CRC and
//! body starts (a false match needs a 32-bit CRC collision *and* a body that
//! decodes). Every later segment is still read.
//!
//! Samples of series whose series record was lost cannot be attributed to a
//! series: once damage has been seen, samples with a reference no earlier
//! series record declared are counted as orphans and left out.
//!
//! At open, damage is repaired by [`rewrite`]: the damaged files are copied
//! to the quarantine directory, every record replay handed out is written
//! as a fresh checkpoint covering the whole log, and the old files are then
//! deleted by the usual checkpoint cleanup, so the next open reads a clean
//! log and loses nothing more.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::histogram_record::MIN_HISTOGRAM_COLUMN_LEN;
use super::record::{decode_body, envelope_count, frame_crc, FRAME_HEADER_LEN, MAX_BODY_LEN};
use super::segment::{
    checkpoint_path, list_dir, scan_segment_from, segment_path, sync_dir, Listing, ScanEnd, SEGMENT_HEADER, TMP_SUFFIX,
};
use super::{count, CheckpointWriter, Record, ReplayStats, WalError};
use crate::vfs::{OsFs, SharedFs};
use crate::Error;

/// One damaged stretch of a WAL file that replay skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRegion {
    /// The damaged file (a segment, or a segment inside a checkpoint).
    pub file: PathBuf,
    /// The checkpoint the file belongs to, if it is a checkpoint segment.
    pub checkpoint: Option<u64>,
    /// Segment number (inside the checkpoint directory for checkpoints).
    pub segment: u64,
    /// Byte offset where the damage starts.
    pub offset: u64,
    /// Bytes skipped (0 for a missing file).
    pub len: u64,
    /// What was wrong at `offset`.
    pub reason: String,
}

/// Damage found in the middle of a WAL (never a torn tail), what it cost,
/// and where the damaged files were put. Counts of records, series and
/// samples *inside* damaged bytes are lower bounds: a damaged frame whose
/// body still decodes is counted exactly, bytes that had to be scanned over
/// count as one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalDamage {
    /// Each damaged stretch, in log order.
    pub regions: Vec<DamagedRegion>,
    /// The checkpoint that was damaged, if any.
    pub checkpoint: Option<u64>,
    /// Records skipped (at least one per region).
    pub records_skipped: u64,
    /// Series entries in skipped records whose body still decoded.
    pub series_lost: u64,
    /// Sample entries in skipped records whose body still decoded.
    pub samples_lost: u64,
    /// Samples read after the damage whose series record was lost: they
    /// cannot be attributed to a series and are left out.
    pub orphan_samples: u64,
    /// Distinct series references of those orphan samples.
    pub orphan_series_refs: u64,
    /// Oldest and newest timestamp of the lost and orphan samples, when any
    /// of them is known.
    pub lost_time_range: Option<(i64, i64)>,
    /// Where the damaged files were copied (set by [`super::Wal::open`];
    /// `None` after a read-only [`super::Wal::replay`]).
    pub quarantined_to: Option<PathBuf>,
}

impl WalDamage {
    fn note_time(&mut self, t: i64) {
        self.lost_time_range = Some(match self.lost_time_range {
            None => (t, t),
            Some((lo, hi)) => (lo.min(t), hi.max(t)),
        });
    }

    /// Samples known lost: in skipped records plus orphans.
    pub fn total_samples_lost(&self) -> u64 {
        self.samples_lost + self.orphan_samples
    }
}

/// What reading one file produced, in order.
enum Event {
    Record(Record),
    /// Damage that later frames of the file follow.
    Damage(DamagedRegion, Option<Lost>),
}

/// What a skipped record held, as far as its damaged bytes still tell.
enum Lost {
    /// The body still decodes: exactly these entries were lost.
    Record(Record),
    /// The body does not decode (damage inside compressed columns), but its
    /// uncompressed envelope still gives the type and entry count; the
    /// samples' times are unknown.
    Counted { samples: bool, count: u64 },
}

/// What the damaged frame `body` held, if anything can be told.
fn lost_entries(body: &[u8]) -> Option<Lost> {
    match decode_body(body) {
        Ok(r) => Some(Lost::Record(r)),
        Err(_) => envelope_count(body).map(|(samples, count)| Lost::Counted { samples, count }),
    }
}

/// How a file read with [`scan_lenient`] ended.
struct LenientEnd {
    /// Bytes of good frames (including the header).
    good_bytes: u64,
    /// Bad bytes at the end of the file with no valid frame after them:
    /// (offset, length, reason).
    tail: Option<(u64, u64, String)>,
}

/// Whether a complete, valid frame starts at `p`; returns its end and record.
fn frame_at(bytes: &[u8], p: usize) -> Option<(usize, Record)> {
    let head = bytes.get(p..p + FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_BODY_LEN {
        return None;
    }
    let end = (p + FRAME_HEADER_LEN).checked_add(len)?;
    let body = bytes.get(p + FRAME_HEADER_LEN..end)?;
    if !plausible_body(body) {
        return None;
    }
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if frame_crc([head[0], head[1], head[2], head[3]], body) != crc {
        return None;
    }
    decode_body(body).ok().map(|r| (end, r))
}

/// A cheap filter run before the checksum while scanning damaged bytes, so
/// that garbage whose length field happens to be plausible rarely costs a
/// CRC over a large body: a known type, and an entry count that fits the
/// body's length (a version-1 sample entry takes 10 to 28 bytes, a series
/// entry at least 2; in the version-2 types 3 and 4 a flags byte of 0 or 1
/// follows the count, and uncompressed columns take 2 bytes per series and
/// 4 to 31 bytes per sample; type 5 likewise, its uncompressed columns at
/// least 15 bytes per histogram sample).
fn plausible_body(body: &[u8]) -> bool {
    let Some((&ty, rest)) = body.split_first() else { return false };
    let mut count = 0u64;
    let mut n = 0usize;
    loop {
        let Some(&b) = rest.get(n) else { return false };
        if n == 10 {
            return false;
        }
        count |= u64::from(b & 0x7f) << (7 * n);
        n += 1;
        if b < 0x80 {
            break;
        }
    }
    let payload = (body.len() - 1 - n) as u64;
    match ty {
        1 => payload >= count.saturating_mul(2) && (count > 0 || payload == 0),
        2 if count == 0 => payload == 0,
        2 => payload >= count.saturating_mul(10) && payload <= count.saturating_mul(28).saturating_add(20),
        3..=5 => {
            let Some(&flags) = rest.get(n) else { return false };
            let cols = payload - 1;
            let (min, max) = match ty {
                3 => (2, u64::MAX),
                4 => (4, 31),
                _ => (MIN_HISTOGRAM_COLUMN_LEN as u64, u64::MAX),
            };
            match flags {
                0 => cols >= count.saturating_mul(min) && cols <= count.saturating_mul(max) && (count > 0 || cols == 0),
                // A compressed record is never empty: its length and data follow.
                1 => count > 0 && cols >= 2,
                _ => false,
            }
        }
        _ => false,
    }
}

/// The next valid frame after damage at `off`, and the damaged frame's
/// record when its own length leads exactly to that frame and its body
/// still decodes (it is then known exactly what was lost). The first valid
/// frame after `off` is always taken: trusting a damaged length could jump
/// over intact frames.
fn resync(bytes: &[u8], off: usize) -> Option<(usize, Option<Lost>)> {
    let header = SEGMENT_HEADER.len();
    let from = (off + 1).max(header);
    let next = (from..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1)).find(|&p| frame_at(bytes, p).is_some())?;
    let mut lost = None;
    if off >= header && next >= off + FRAME_HEADER_LEN {
        let h = &bytes[off..off + FRAME_HEADER_LEN];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if off + FRAME_HEADER_LEN + len == next {
            lost = lost_entries(&bytes[off + FRAME_HEADER_LEN..next]);
        }
    }
    Some((next, lost))
}

/// Reads every good frame of a segment file, resynchronising after damage.
/// I/O errors are returned; damage is reported through `on` and the end.
fn scan_lenient(
    path: &Path,
    checkpoint: Option<u64>,
    segment: u64,
    on: &mut dyn FnMut(Event),
) -> Result<LenientEnd, Error> {
    let mut start = 0u64;
    let mut good = 0u64;
    let mut bytes: Option<Vec<u8>> = None;
    loop {
        let scan = scan_segment_from(path, start, &mut |rec, _| {
            on(Event::Record(rec));
            true
        })?;
        good += scan.valid_len.saturating_sub(start);
        let ScanEnd::Stopped(reason) = scan.end else { return Ok(LenientEnd { good_bytes: good, tail: None }) };
        let bytes = match &bytes {
            Some(b) => b,
            None => bytes.insert(fs::read(path).map_err(|e| Error::io(path, e))?),
        };
        let off = scan.valid_len as usize;
        match resync(bytes, off) {
            Some((next, lost)) => {
                let region = DamagedRegion {
                    file: path.to_path_buf(),
                    checkpoint,
                    segment,
                    offset: off as u64,
                    len: (next - off) as u64,
                    reason,
                };
                on(Event::Damage(region, lost));
                start = next as u64;
            }
            None => {
                let len = (bytes.len() - off.min(bytes.len())) as u64;
                return Ok(LenientEnd { good_bytes: good, tail: Some((off as u64, len, reason)) });
            }
        }
    }
}

/// Hands records to `f`, leaving out (and counting) samples whose series
/// record was lost once damage has been seen.
struct Emitter<'a> {
    f: &'a mut dyn FnMut(Record),
    known: HashSet<u64>,
    orphan_refs: HashSet<u64>,
    damage: Option<WalDamage>,
}

impl Emitter<'_> {
    fn record(&mut self, stats: &mut ReplayStats, rec: Record) {
        let rec = match rec {
            Record::Series(s) => {
                self.known.extend(s.iter().map(|s| s.series_ref));
                Record::Series(s)
            }
            Record::Samples(mut s) => {
                if !self.drop_orphans(&mut s, |x| (x.series_ref, x.t)) {
                    return;
                }
                Record::Samples(s)
            }
            Record::HistogramSamples(mut s) => {
                if !self.drop_orphans(&mut s, |x| (x.series_ref, x.t)) {
                    return;
                }
                Record::HistogramSamples(s)
            }
            Record::Exemplars(mut e) => {
                // Exemplars are no samples: an orphan is dropped, not counted.
                if self.damage.is_some() {
                    e.retain(|x| self.known.contains(&x.series_ref));
                }
                Record::Exemplars(e)
            }
        };
        count(stats, &rec);
        (self.f)(rec);
    }

    /// Once damage has been seen, removes (and counts) the samples whose
    /// series reference no series record declared; `key` gives a sample's
    /// reference and time. False when a non-empty record lost every sample
    /// (it is then not handed out at all).
    fn drop_orphans<T>(&mut self, s: &mut Vec<T>, key: impl Fn(&T) -> (u64, i64)) -> bool {
        let Some(d) = &mut self.damage else { return true };
        let before = s.len();
        s.retain(|x| {
            let (series_ref, t) = key(x);
            let ok = self.known.contains(&series_ref);
            if !ok {
                d.orphan_samples += 1;
                self.orphan_refs.insert(series_ref);
                d.lost_time_range = Some(match d.lost_time_range {
                    None => (t, t),
                    Some((lo, hi)) => (lo.min(t), hi.max(t)),
                });
            }
            ok
        });
        before == 0 || !s.is_empty()
    }

    fn damage(&mut self, region: DamagedRegion, lost: Option<Lost>) {
        let d = self.damage.get_or_insert_with(WalDamage::default);
        d.records_skipped += 1;
        match lost {
            Some(Lost::Counted { samples: false, count }) => d.series_lost += count,
            Some(Lost::Counted { samples: true, count }) => d.samples_lost += count,
            Some(Lost::Record(Record::Series(s))) => d.series_lost += s.len() as u64,
            Some(Lost::Record(Record::Samples(s))) => {
                d.samples_lost += s.len() as u64;
                for x in &s {
                    d.note_time(x.t);
                }
            }
            Some(Lost::Record(Record::HistogramSamples(s))) => {
                d.samples_lost += s.len() as u64;
                for x in &s {
                    d.note_time(x.t);
                }
            }
            // Lost exemplars are not samples; the region is reported.
            Some(Lost::Record(Record::Exemplars(_))) | None => {}
        }
        if region.checkpoint.is_some() {
            d.checkpoint = region.checkpoint;
        }
        d.regions.push(region);
    }
}

/// What a lenient read of the whole directory found.
pub(crate) struct LenientReplay {
    pub stats: ReplayStats,
    pub listing: Listing,
}

/// Reads the newest checkpoint and every later segment, skipping damage
/// (see the module docs). A bad end of the newest segment with no valid
/// frame after it is a torn tail: reported in `stats.stopped_at`, not as
/// damage.
pub(crate) fn read_all(dir: &Path, f: &mut dyn FnMut(Record)) -> Result<LenientReplay, Error> {
    let listing = list_dir(dir)?;
    let mut stats = ReplayStats::default();
    let mut em = Emitter { f, known: HashSet::new(), orphan_refs: HashSet::new(), damage: None };
    let ckpt = listing.checkpoints.last().copied();
    if let Some(c) = ckpt {
        stats.checkpoint = Some(c);
        read_checkpoint_lenient(dir, c, &mut em, &mut stats)?;
    }
    let segs: Vec<u64> = listing.segments.iter().copied().filter(|&s| ckpt.is_none_or(|c| s > c)).collect();
    let mut expected = ckpt.map(|c| c + 1);
    for (i, &s) in segs.iter().enumerate() {
        if let Some(e) = expected.filter(|&e| e != s) {
            em.damage(
                DamagedRegion {
                    file: segment_path(dir, e),
                    checkpoint: None,
                    segment: e,
                    offset: 0,
                    len: 0,
                    reason: format!("segments {e}..{s} missing"),
                },
                None,
            );
        }
        let last = i + 1 == segs.len();
        let end = read_file(&segment_path(dir, s), None, s, last, &mut em, &mut stats)?;
        stats.segments += 1;
        stats.bytes += end.good_bytes;
        if let Some((offset, _, reason)) = end.tail.filter(|_| last) {
            stats.stopped_at = Some(WalError::Corrupt { segment: s, offset, reason });
        }
        expected = Some(s + 1);
    }
    if let Some(mut d) = em.damage.take() {
        d.orphan_series_refs = em.orphan_refs.len() as u64;
        stats.damage = Some(d);
    }
    Ok(LenientReplay { stats, listing })
}

fn read_checkpoint_lenient(dir: &Path, c: u64, em: &mut Emitter<'_>, stats: &mut ReplayStats) -> Result<(), Error> {
    let cdir = checkpoint_path(dir, c);
    let inner = list_dir(&cdir)?;
    let mut expected = 0u64;
    for &s in &inner.segments {
        if s != expected {
            em.damage(
                DamagedRegion {
                    file: segment_path(&cdir, expected),
                    checkpoint: Some(c),
                    segment: expected,
                    offset: 0,
                    len: 0,
                    reason: format!("checkpoint segments {expected}..{s} missing"),
                },
                None,
            );
        }
        expected = s + 1;
        read_file(&segment_path(&cdir, s), Some(c), s, false, em, stats)?;
    }
    Ok(())
}

/// Reads checkpoint `prev` (if any) and the complete segments
/// `from..=upto` for a new checkpoint, skipping damage as replay does (a
/// bad end of any of them is damage: none is being written). Returns the
/// damage, if any.
pub(crate) fn read_for_checkpoint(
    dir: &Path,
    prev: Option<u64>,
    from: u64,
    upto: u64,
    f: &mut dyn FnMut(Record),
) -> Result<Option<WalDamage>, Error> {
    let mut stats = ReplayStats::default();
    let mut em = Emitter { f, known: HashSet::new(), orphan_refs: HashSet::new(), damage: None };
    if let Some(c) = prev {
        read_checkpoint_lenient(dir, c, &mut em, &mut stats)?;
    }
    for s in from..=upto {
        let path = segment_path(dir, s);
        if !path.exists() {
            let reason = format!("segment {s} missing");
            em.damage(DamagedRegion { file: path, checkpoint: None, segment: s, offset: 0, len: 0, reason }, None);
            continue;
        }
        read_file(&path, None, s, false, &mut em, &mut stats)?;
    }
    Ok(em.damage.take().map(|mut d| {
        d.orphan_series_refs = em.orphan_refs.len() as u64;
        d
    }))
}

/// Reads one file into the emitter. A bad end of a file is damage unless
/// it is the newest segment's (`last`), which is a torn tail.
fn read_file(
    path: &Path,
    checkpoint: Option<u64>,
    segment: u64,
    last: bool,
    em: &mut Emitter<'_>,
    stats: &mut ReplayStats,
) -> Result<LenientEnd, Error> {
    let end = scan_lenient(path, checkpoint, segment, &mut |ev| match ev {
        Event::Record(r) => em.record(stats, r),
        Event::Damage(region, lost) => em.damage(region, lost),
    })?;
    if let (Some((offset, len, reason)), false) = (&end.tail, last) {
        let region = DamagedRegion {
            file: path.to_path_buf(),
            checkpoint,
            segment,
            offset: *offset,
            len: *len,
            reason: reason.clone(),
        };
        em.damage(region, None);
    }
    Ok(end)
}

/// Repairs damage found by [`read_all`]: copies the damaged files into a
/// new directory under `quarantine`, writes every record a replay hands out
/// as `checkpoint.L` (L = the newest segment, or one past the checkpoint),
/// and returns L. The caller deletes segments `<= L` and older checkpoints
/// (the usual cleanup after a checkpoint). A crash before the rename leaves
/// the damaged log as it was (plus a `.tmp` directory that open deletes);
/// after it, the old files are leftovers that replay ignores.
pub(crate) fn rewrite(
    files: &SharedFs,
    dir: &Path,
    quarantine: &Path,
    listing: &Listing,
    segment_size: u64,
    damage: &mut WalDamage,
) -> Result<u64, Error> {
    copy_damaged(dir, quarantine, damage)?;
    let ckpt = listing.checkpoints.last().copied();
    let upto = listing.segments.last().copied().max(ckpt.map(|c| c + 1)).unwrap_or(1);
    let final_path = checkpoint_path(dir, upto);
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", final_path.display()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let res = (|| {
        let mut w = CheckpointWriter::new(files.clone(), &tmp, segment_size)?;
        w.keep_empty = true;
        let mut failed: Option<Error> = None;
        read_all(dir, &mut |rec| {
            if failed.is_none() {
                if let Err(e) = w.write(&rec) {
                    failed = Some(e);
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        w.finish()?;
        sync_dir(&**files, &tmp)
    })();
    if let Err(e) = res {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if final_path.exists() {
        // Only possible when the damaged checkpoint is the newest segment
        // number itself, which `upto` rules out; refuse rather than merge.
        let _ = fs::remove_dir_all(&tmp);
        return Err(Error::InvalidArgument(format!("{} already exists", final_path.display())));
    }
    files.rename(&tmp, &final_path).map_err(|e| Error::io(&tmp, e))?;
    sync_dir(&**files, dir)?;
    Ok(upto)
}

/// Copies every file named by `damage` (whole directories for a damaged
/// checkpoint) into a new `wal-<unix ms>` directory under `quarantine`.
pub(crate) fn copy_damaged(dir: &Path, quarantine: &Path, damage: &mut WalDamage) -> Result<(), Error> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let q = quarantine.join(format!("wal-{stamp}"));
    fs::create_dir_all(&q).map_err(|e| Error::io(&q, e))?;
    let mut copied: HashSet<PathBuf> = HashSet::new();
    for r in &damage.regions {
        let (src, name) = match r.checkpoint {
            Some(c) => {
                let p = checkpoint_path(dir, c);
                let name = p.file_name().map(|n| n.to_owned()).unwrap_or_default();
                (p, name)
            }
            None => (r.file.clone(), r.file.file_name().map(|n| n.to_owned()).unwrap_or_default()),
        };
        if !src.exists() || !copied.insert(src.clone()) {
            continue;
        }
        copy_tree(&src, &q.join(name))?;
    }
    sync_dir(&OsFs, &q)?;
    if let Some(parent) = q.parent() {
        sync_dir(&OsFs, parent)?;
    }
    damage.quarantined_to = Some(q);
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), Error> {
    if src.is_dir() {
        fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
        for e in fs::read_dir(src).map_err(|e| Error::io(src, e))? {
            let e = e.map_err(|e| Error::io(src, e))?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        sync_dir(&OsFs, dst)
    } else {
        fs::copy(src, dst).map_err(|e| Error::io(dst, e))?;
        fs::File::open(dst).and_then(|f| f.sync_all()).map_err(|e| Error::io(dst, e))
    }
}

//! Segment files: names, the header, creating them, listing a directory and
//! reading frames back. The layout is specified in `docs/format/wal.md`.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{decode_body, frame_crc, FRAME_HEADER_LEN, MAX_BODY_LEN};
use super::Record;
use crate::vfs::{FileSystem, WritableFile};
use crate::Error;

/// The fixed segment header: magic `TMWL`, version 1, three reserved zeros.
pub(crate) const SEGMENT_HEADER: [u8; 8] = *b"TMWL\x01\x00\x00\x00";
pub(crate) const CHECKPOINT_PREFIX: &str = "checkpoint.";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn segment_name(n: u64) -> String {
    format!("{n:08}")
}

pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(segment_name(n))
}

pub(crate) fn checkpoint_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{CHECKPOINT_PREFIX}{n:08}"))
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What a WAL directory (or a checkpoint directory) contains.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Segment numbers, ascending.
    pub segments: Vec<u64>,
    /// Complete checkpoint numbers, ascending.
    pub checkpoints: Vec<u64>,
    /// Unfinished checkpoint directories.
    pub tmp_dirs: Vec<PathBuf>,
}

pub(crate) fn list_dir(dir: &Path) -> Result<Listing, Error> {
    let mut l = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(l),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = parse_number(name) {
            l.segments.push(n);
        } else if let Some(rest) = name.strip_prefix(CHECKPOINT_PREFIX) {
            if let Some(num) = rest.strip_suffix(TMP_SUFFIX) {
                if parse_number(num).is_some() {
                    l.tmp_dirs.push(entry.path());
                }
            } else if let Some(n) = parse_number(rest) {
                l.checkpoints.push(n);
            }
        }
    }
    l.segments.sort_unstable();
    l.checkpoints.sort_unstable();
    Ok(l)
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(), Error> {
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Creates segment `n` in `dir` with its header, for positional writes
/// ([`WritableFile::write_at`]; `write_all` continues after the header).
/// With `sync`, the file and the directory are fsynced so the empty
/// segment itself survives a crash.
/// On failure the partial file is removed (best effort; a leftover is a torn
/// header at the end of the log, which open repairs).
pub(crate) fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    n: u64,
    sync: bool,
) -> Result<Box<dyn WritableFile>, Error> {
    let path = segment_path(dir, n);
    let f = fs.create_new_positional(&path).map_err(|e| Error::io(&path, e))?;
    let res = f.write_all(&SEGMENT_HEADER).and_then(|()| if sync { f.sync_all() } else { Ok(()) });
    if let Err(e) = res {
        drop(f);
        let _ = fs.remove_file(&path);
        return Err(Error::io(&path, e));
    }
    if sync {
        sync_dir(fs, dir)?;
    }
    Ok(f)
}

/// How reading a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// End of file or zero fill after the last frame.
    Clean,
    /// A frame at `valid_len` is torn or corrupt.
    Stopped(String),
}

/// The result of reading one segment.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    /// Bytes up to the end of the last good frame (or 0 if the header is bad).
    pub valid_len: u64,
    pub end: ScanEnd,
    pub records: u64,
}

/// Reads every good frame of the segment at `path`, calling `f` per record,
/// until the end of its data or the first bad frame. I/O errors are returned
/// as `Err`; damaged bytes are reported in [`SegmentScan::end`]. Never panics.
pub(crate) fn scan_segment(path: &Path, f: &mut dyn FnMut(Record)) -> Result<SegmentScan, Error> {
    scan_segment_from(path, 0, &mut |rec, _| {
        f(rec);
        true
    })
}

/// Like [`scan_segment`], but starts at byte `start` (0, or the end of an
/// earlier frame: a position a previous scan returned) and hands `f` each
/// record with the offset just past its frame. `f` returns `false` to stop
/// early; the scan then ends [`ScanEnd::Clean`] with `valid_len` just past
/// the record it was given. A `start` past the end of the file reads nothing.
pub(crate) fn scan_segment_from(
    path: &Path,
    start: u64,
    f: &mut dyn FnMut(Record, u64) -> bool,
) -> Result<SegmentScan, Error> {
    let io_err = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut scan = SegmentScan { valid_len: 0, end: ScanEnd::Clean, records: 0 };
    let mut pos;
    if start < SEGMENT_HEADER.len() as u64 {
        let mut header = [0u8; 8];
        let n = read_full(&mut file, &mut header).map_err(io_err)?;
        if n < header.len() {
            scan.end = ScanEnd::Stopped(format!("torn segment header ({n} of 8 bytes)"));
            return Ok(scan);
        }
        if header != SEGMENT_HEADER {
            let reason = if header[..4] == SEGMENT_HEADER[..4] {
                format!("unsupported segment version {}", header[4])
            } else {
                "bad segment magic".to_string()
            };
            scan.end = ScanEnd::Stopped(reason);
            return Ok(scan);
        }
        pos = header.len() as u64;
    } else {
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        pos = start;
    }
    scan.valid_len = pos;
    let mut r = BufReader::with_capacity(256 * 1024, file);

    let mut body = Vec::new();
    loop {
        let mut fh = [0u8; FRAME_HEADER_LEN];
        let n = read_full(&mut r, &mut fh).map_err(io_err)?;
        if n == 0 {
            return Ok(scan);
        }
        let len = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]);
        let crc = u32::from_le_bytes([fh[4], fh[5], fh[6], fh[7]]);
        if n < FRAME_HEADER_LEN || len == 0 {
            // Zero fill up to the end of the file is where the data ends.
            if fh[..n].iter().all(|&b| b == 0) && rest_is_zero(&mut r).map_err(io_err)? {
                return Ok(scan);
            }
            scan.end = ScanEnd::Stopped(if n < FRAME_HEADER_LEN {
                format!("torn frame header ({n} of 8 bytes)")
            } else {
                "zero-length frame followed by data".to_string()
            });
            return Ok(scan);
        }
        let len = len as usize;
        if len > MAX_BODY_LEN || len as u64 > file_len.saturating_sub(pos + FRAME_HEADER_LEN as u64) {
            scan.end = ScanEnd::Stopped(format!("frame length {len} runs past the end of the segment (torn write)"));
            return Ok(scan);
        }
        body.resize(len, 0);
        if read_full(&mut r, &mut body).map_err(io_err)? < len {
            // The file shrank while being read.
            scan.end = ScanEnd::Stopped("frame body cut short".to_string());
            return Ok(scan);
        }
        if frame_crc(fh[..4].try_into().unwrap_or_default(), &body) != crc {
            scan.end = ScanEnd::Stopped("frame checksum mismatch".to_string());
            return Ok(scan);
        }
        let rec = match decode_body(&body) {
            Ok(rec) => rec,
            Err(reason) => {
                scan.end = ScanEnd::Stopped(reason.to_string());
                return Ok(scan);
            }
        };
        scan.records += 1;
        pos += (FRAME_HEADER_LEN + len) as u64;
        scan.valid_len = pos;
        if !f(rec, pos) {
            return Ok(scan);
        }
    }
}

/// Reads until `buf` is full or the end of file; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn rest_is_zero(r: &mut impl Read) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    loop {
        let n = read_full(r, &mut buf)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if n < buf.len() {
            return Ok(true);
        }
    }
}

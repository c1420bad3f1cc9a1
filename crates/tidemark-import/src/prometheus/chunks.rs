//! Reader of a Prometheus block's chunk segment files (`chunks/000001`, …)
//! and decoder of the chunks in them.
//!
//! A segment starts with an 8-byte header: magic `0x85BD40DD` (4 bytes,
//! big-endian), format version 1 (1 byte), 3 bytes of padding. Then chunk
//! records: data length (uvarint), encoding (1 byte), data, CRC32-Castagnoli
//! of encoding and data (4 bytes, big-endian). A chunk reference from the
//! index holds the segment's position in the sorted file list in its upper
//! 32 bits and the record's byte offset in its lower 32.
//!
//! Encodings: 1 XOR floats, 2 integer native histograms, 3 float native
//! histograms. XOR chunks differ from ours in one field and are translated
//! by [`prom_xor::from_prometheus`]; both histogram encodings are the ones
//! our [`HistogramIterator`] and [`FloatHistogramIterator`] read.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tidemark_storage::chunkenc::{prom_xor, FloatHistogramIterator, HistogramIterator, XorIterator};
use tidemark_storage::histogram::{HistogramSample, HistogramValue};
use tidemark_storage::{Sample, SampleIterator};

use super::decbuf::{crc32c, Decbuf};
use super::format::FormatError;

/// First four bytes of a chunk segment file.
pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
/// Segment header: magic, version, padding.
pub const SEGMENT_HEADER_LEN: usize = 8;
/// Prometheus' XOR float chunk.
pub const ENC_XOR: u8 = 1;
/// Prometheus' integer native-histogram chunk.
pub const ENC_HISTOGRAM: u8 = 2;
/// Prometheus' float native-histogram chunk.
pub const ENC_FLOAT_HISTOGRAM: u8 = 3;

/// The samples of one chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkSamples {
    /// Float samples.
    Floats(Vec<Sample>),
    /// Native-histogram samples.
    Histograms(Vec<HistogramSample>),
}

/// Checks a segment file's 8-byte header.
pub fn check_segment_header(h: &[u8]) -> Result<(), FormatError> {
    let mut d = Decbuf::new(h);
    let magic = d.be32().ok_or(FormatError::Truncated("chunk segment header"))?;
    if magic != MAGIC_CHUNKS {
        return Err(FormatError::BadMagic { got: magic, want: MAGIC_CHUNKS });
    }
    let v = d.byte().ok_or(FormatError::Truncated("chunk segment header"))?;
    if v != 1 {
        return Err(FormatError::UnsupportedVersion { what: "chunk segment", got: v });
    }
    if d.len() < 3 {
        return Err(FormatError::Truncated("chunk segment header"));
    }
    Ok(())
}

/// Parses the chunk record at the start of `b`: returns its encoding and
/// data after checking the CRC.
pub fn parse_chunk_record(b: &[u8]) -> Result<(u8, &[u8]), FormatError> {
    const W: &str = "chunk record";
    let mut d = Decbuf::new(b);
    let len = d.uvarint().ok_or(FormatError::Truncated(W))?;
    let len = usize::try_from(len).map_err(|_| FormatError::Truncated(W))?;
    let body = d.rest();
    let enc_and_data =
        body.get(..len.checked_add(1).ok_or(FormatError::Truncated(W))?).ok_or(FormatError::Truncated(W))?;
    let mut t = Decbuf::new(&body[enc_and_data.len()..]);
    let crc = t.be32().ok_or(FormatError::Truncated(W))?;
    if crc32c(enc_and_data) != crc {
        return Err(FormatError::Checksum(W));
    }
    Ok((enc_and_data[0], &enc_and_data[1..]))
}

/// Decodes every sample of a chunk of encoding `enc`.
pub fn decode_chunk(enc: u8, data: &[u8]) -> Result<ChunkSamples, FormatError> {
    let err = |e: &tidemark_storage::Error| FormatError::invalid(format!("chunk (encoding {enc}): {e}"));
    match enc {
        ENC_XOR => {
            let ours = prom_xor::from_prometheus(data).map_err(|e| FormatError::invalid(format!("XOR chunk: {e}")))?;
            let mut it = XorIterator::new(&ours[..]);
            let mut out = Vec::new();
            while it.next() {
                out.push(it.at());
            }
            if let Some(e) = it.err() {
                return Err(err(e));
            }
            Ok(ChunkSamples::Floats(out))
        }
        ENC_HISTOGRAM => {
            let mut it = HistogramIterator::new(data);
            let mut out = Vec::with_capacity(it.num_samples());
            while it.next() {
                out.push(HistogramSample { t: it.at_t(), h: HistogramValue::Integer(it.histogram()) });
            }
            if let Some(e) = it.err() {
                return Err(err(e));
            }
            Ok(ChunkSamples::Histograms(out))
        }
        ENC_FLOAT_HISTOGRAM => {
            let mut it = FloatHistogramIterator::new(data);
            let mut out = Vec::new();
            while it.next() {
                out.push(HistogramSample { t: it.at_t(), h: HistogramValue::Float(it.float_histogram()) });
            }
            if let Some(e) = it.err() {
                return Err(err(e));
            }
            Ok(ChunkSamples::Histograms(out))
        }
        other => Err(FormatError::invalid(format!("unknown chunk encoding {other}"))),
    }
}

/// The chunk segment files of one block, opened for positional reads (the
/// files are never loaded whole).
#[derive(Debug)]
pub struct ChunkFiles {
    files: Vec<(PathBuf, File, u64)>,
}

/// A failure reading a chunk: the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ChunkReadError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The bytes are not a valid chunk.
    #[error("{0}: {1}")]
    Format(PathBuf, #[source] FormatError),
}

impl ChunkFiles {
    /// Opens every segment file in `dir` (names of digits only, sorted) and
    /// checks their headers.
    pub fn open(dir: &Path) -> Result<ChunkFiles, ChunkReadError> {
        let io = |e| ChunkReadError::Io(dir.to_path_buf(), e);
        let mut names = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(io)?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !name.is_empty() && name.bytes().all(|c| c.is_ascii_digit()) {
                        names.push(name);
                    }
                }
            }
            // A block without series has no chunks directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for n in names {
            let p = dir.join(n);
            let f = File::open(&p).map_err(|e| ChunkReadError::Io(p.clone(), e))?;
            let size = f.metadata().map_err(|e| ChunkReadError::Io(p.clone(), e))?.len();
            let mut h = [0u8; SEGMENT_HEADER_LEN];
            let got = read_at_most(&f, &mut h, 0).map_err(|e| ChunkReadError::Io(p.clone(), e))?;
            check_segment_header(&h[..got]).map_err(|e| ChunkReadError::Format(p.clone(), e))?;
            files.push((p, f, size));
        }
        Ok(ChunkFiles { files })
    }

    /// Number of segment files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the block has no segment file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total bytes of the segment files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.2).sum()
    }

    /// Reads the chunk at `chunk_ref`: its encoding and data.
    pub fn read(&self, chunk_ref: u64, buf: &mut Vec<u8>) -> Result<u8, ChunkReadError> {
        let seg = (chunk_ref >> 32) as usize;
        let off = chunk_ref & 0xffff_ffff;
        let Some((p, f, size)) = self.files.get(seg) else {
            let p = self.files.first().map(|f| f.0.clone()).unwrap_or_default();
            return Err(ChunkReadError::Format(
                p,
                FormatError::invalid(format!("chunk reference {chunk_ref:#x}: no segment {seg}")),
            ));
        };
        let fmt = |e| ChunkReadError::Format(p.clone(), e);
        if off < SEGMENT_HEADER_LEN as u64 || off >= *size {
            return Err(fmt(FormatError::invalid(format!("chunk offset {off} outside the file"))));
        }
        // Length (≤ 5 bytes for a 32-bit value) and encoding first, then the rest.
        let mut head = [0u8; 6];
        let got = read_at_most(f, &mut head, off).map_err(|e| ChunkReadError::Io(p.clone(), e))?;
        let mut d = Decbuf::new(&head[..got]);
        let len = d.uvarint32().ok_or_else(|| fmt(FormatError::Truncated("chunk length")))?;
        let len_bytes = got - d.len();
        let total = len_bytes as u64 + 1 + u64::from(len) + 4;
        if off + total > *size {
            return Err(fmt(FormatError::Truncated("chunk record")));
        }
        buf.clear();
        buf.resize(total as usize, 0);
        f.read_exact_at(buf, off).map_err(|e| ChunkReadError::Io(p.clone(), e))?;
        let (enc, data) = parse_chunk_record(buf).map_err(fmt)?;
        let data_start = data.as_ptr() as usize - buf.as_ptr() as usize;
        let data_len = data.len();
        buf.copy_within(data_start..data_start + data_len, 0);
        buf.truncate(data_len);
        Ok(enc)
    }
}

fn read_at_most(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], off + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_storage::chunkenc::XorAppender;

    fn record(enc: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut n = data.len() as u64;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        let mut body = vec![enc];
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32c(&body).to_be_bytes());
        out
    }

    #[test]
    fn records_are_checked_and_decoded() {
        let mut app = XorAppender::new();
        for i in 0..50 {
            app.append(1000 + i * 15_000, i as f64 * 0.5);
        }
        let prom = prom_xor::to_prometheus(app.bytes()).unwrap();
        let rec = record(ENC_XOR, &prom);
        let (enc, data) = parse_chunk_record(&rec).unwrap();
        assert_eq!(enc, ENC_XOR);
        let ChunkSamples::Floats(s) = decode_chunk(enc, data).unwrap() else { panic!("floats") };
        assert_eq!(s.len(), 50);
        assert_eq!((s[49].t, s[49].v), (1000 + 49 * 15_000, 24.5));
        let mut bad = rec.clone();
        let last = bad.len() - 5;
        bad[last] ^= 1;
        assert_eq!(parse_chunk_record(&bad), Err(FormatError::Checksum("chunk record")));
        assert!(matches!(parse_chunk_record(&rec[..rec.len() - 1]), Err(FormatError::Truncated(_))));
        assert!(decode_chunk(9, data).is_err());
    }

    #[test]
    fn segment_files_read_by_reference() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = MAGIC_CHUNKS.to_be_bytes().to_vec();
        file.extend_from_slice(&[1, 0, 0, 0]);
        let mut app = XorAppender::new();
        app.append(5, 1.0);
        let off = file.len() as u64;
        file.extend_from_slice(&record(ENC_XOR, &prom_xor::to_prometheus(app.bytes()).unwrap()));
        std::fs::write(dir.path().join("000001"), &file).unwrap();
        let cf = ChunkFiles::open(dir.path()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(cf.read(off, &mut buf).unwrap(), ENC_XOR);
        assert_eq!(buf, prom_xor::to_prometheus(app.bytes()).unwrap());
        assert!(cf.read(1 << 32 | off, &mut buf).is_err());
        assert!(cf.read(3, &mut buf).is_err());
        assert!(cf.read(file.len() as u64 - 2, &mut buf).is_err());
        std::fs::write(dir.path().join("000002"), b"\x85\xbd\x40\xdd\x02\0\0\0").unwrap();
        assert!(matches!(
            ChunkFiles::open(dir.path()),
            Err(ChunkReadError::Format(_, FormatError::UnsupportedVersion { .. }))
        ));
    }
}

//! Reader of a Prometheus write-ahead log (`wal/`): segment files of
//! 32 KiB pages holding fragmented, checksummed, optionally compressed
//! records, and the decoder of the records the head writes.
//!
//! Fragment header (7 bytes): type (1 byte: bits 0–2 the fragment kind —
//! 0 padding to the end of the page, 1 full, 2 first, 3 middle, 4 last;
//! bit 3 snappy, bit 4 zstd), data length (2 bytes, big-endian),
//! CRC32-Castagnoli of the fragment's data (4 bytes). A fragment never
//! crosses a page; fewer than 7 bytes left in a page are padding. A record
//! is compressed whole, then split into fragments.

use std::path::{Path, PathBuf};

use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span};

use super::decbuf::{crc32c, Decbuf};
use super::format::FormatError;

/// WAL page size.
pub const PAGE_SIZE: usize = 32 * 1024;
const HEADER_LEN: usize = 7;
const SNAPPY: u8 = 1 << 3;
const ZSTD: u8 = 1 << 4;
const KIND_MASK: u8 = SNAPPY - 1;
/// Largest record we accept after decompression (Prometheus' own records
/// are far smaller; this bounds memory on corrupt input).
const MAX_RECORD: usize = 256 << 20;

/// Reassembles the records of consecutive segment files, one segment at a
/// time.
#[derive(Debug, Default)]
pub struct RecordReader {
    partial: Vec<u8>,
    partial_flags: u8,
    in_record: bool,
}

impl RecordReader {
    /// A reader with no record under way.
    pub fn new() -> RecordReader {
        RecordReader::default()
    }

    /// Whether a record started in an earlier segment is still incomplete.
    pub fn in_record(&self) -> bool {
        self.in_record
    }

    /// Reads the segment `seg` (a whole file) and calls `f` with every
    /// complete record, decompressed. A record may continue from the
    /// previous segment given to the same reader.
    pub fn read_segment(
        &mut self,
        seg: &[u8],
        mut f: impl FnMut(&[u8]) -> Result<(), FormatError>,
    ) -> Result<(), FormatError> {
        let mut scratch = Vec::new();
        for page in seg.chunks(PAGE_SIZE) {
            let mut d = Decbuf::new(page);
            while d.len() >= HEADER_LEN {
                let ty = d.byte().ok_or(FormatError::Truncated("WAL fragment"))?;
                let kind = ty & KIND_MASK;
                if kind == 0 {
                    // Padding: the rest of the page must be zeros.
                    if ty != 0 || d.rest().iter().any(|&b| b != 0) {
                        return Err(FormatError::invalid("WAL page padding is not zeros"));
                    }
                    break;
                }
                let len = u16::from_be_bytes([d.byte().unwrap_or(0), d.byte().unwrap_or(0)]) as usize;
                let crc = d.be32().ok_or(FormatError::Truncated("WAL fragment header"))?;
                let data = d.bytes(len).ok_or(FormatError::Truncated("WAL fragment"))?;
                if crc32c(data) != crc {
                    return Err(FormatError::Checksum("WAL fragment"));
                }
                let flags = ty & !KIND_MASK;
                match kind {
                    1 | 2 if self.in_record => return Err(FormatError::invalid("WAL record starts inside another")),
                    3 | 4 if !self.in_record => {
                        return Err(FormatError::invalid("WAL record continues without a start"))
                    }
                    1..=4 => {}
                    k => return Err(FormatError::invalid(format!("unknown WAL fragment kind {k}"))),
                }
                if kind == 1 || kind == 2 {
                    self.partial.clear();
                    self.partial_flags = flags;
                }
                if self.partial.len() + data.len() > MAX_RECORD {
                    return Err(FormatError::invalid("WAL record too large"));
                }
                self.partial.extend_from_slice(data);
                self.in_record = kind == 2 || kind == 3;
                if !self.in_record {
                    let rec = decompress(self.partial_flags, &self.partial, &mut scratch)?;
                    f(rec.unwrap_or(&self.partial))?;
                }
            }
            if !d.is_empty() && d.rest().iter().any(|&b| b != 0) {
                return Err(FormatError::invalid("WAL page ends in non-zero bytes"));
            }
        }
        Ok(())
    }
}

/// The decompressed record, or `None` when it was not compressed.
fn decompress<'a>(flags: u8, b: &[u8], scratch: &'a mut Vec<u8>) -> Result<Option<&'a [u8]>, FormatError> {
    if flags & SNAPPY != 0 && flags & ZSTD != 0 {
        return Err(FormatError::invalid("WAL record flagged both snappy and zstd"));
    }
    if flags & !(SNAPPY | ZSTD) != 0 {
        return Err(FormatError::invalid(format!("unknown WAL record flags {flags:#x}")));
    }
    if flags & SNAPPY != 0 {
        let n = snap::raw::decompress_len(b).map_err(|e| FormatError::invalid(format!("snappy: {e}")))?;
        if n > MAX_RECORD {
            return Err(FormatError::invalid("WAL record too large"));
        }
        scratch.clear();
        scratch.resize(n, 0);
        let got = snap::raw::Decoder::new()
            .decompress(b, scratch)
            .map_err(|e| FormatError::invalid(format!("snappy: {e}")))?;
        scratch.truncate(got);
        return Ok(Some(scratch));
    }
    if flags & ZSTD != 0 {
        scratch.clear();
        let mut dec = zstd::stream::read::Decoder::new(b).map_err(|e| FormatError::invalid(format!("zstd: {e}")))?;
        use std::io::Read;
        (&mut dec)
            .take(MAX_RECORD as u64 + 1)
            .read_to_end(scratch)
            .map_err(|e| FormatError::invalid(format!("zstd: {e}")))?;
        if scratch.len() > MAX_RECORD {
            return Err(FormatError::invalid("WAL record too large"));
        }
        return Ok(Some(scratch));
    }
    Ok(None)
}

/// One decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series: head reference and label pairs.
    Series(Vec<(u64, Vec<(String, String)>)>),
    /// Float samples: reference, time, value.
    Samples(Vec<(u64, i64, f64)>),
    /// Deletions: reference and closed interval.
    Tombstones(Vec<(u64, i64, i64)>),
    /// Native-histogram samples (integer or float, any schema).
    Histograms(Vec<(u64, i64, HistogramValue)>),
    /// A record we do not import (exemplars, metadata, memory-map markers,
    /// the start-timestamp records of Prometheus 3.x, unknown types): its
    /// type byte.
    Skipped(u8),
}

/// WAL record type numbers.
pub mod record_type {
    /// Series.
    pub const SERIES: u8 = 1;
    /// Float samples.
    pub const SAMPLES: u8 = 2;
    /// Tombstones.
    pub const TOMBSTONES: u8 = 3;
    /// Exemplars.
    pub const EXEMPLARS: u8 = 4;
    /// Memory-mapped chunk markers.
    pub const MMAP_MARKERS: u8 = 5;
    /// Metric metadata.
    pub const METADATA: u8 = 6;
    /// Integer native histograms.
    pub const HISTOGRAMS: u8 = 7;
    /// Float native histograms.
    pub const FLOAT_HISTOGRAMS: u8 = 8;
    /// Integer histograms with custom buckets (3.x).
    pub const CUSTOM_BUCKETS_HISTOGRAMS: u8 = 9;
    /// Float histograms with custom buckets (3.x).
    pub const CUSTOM_BUCKETS_FLOAT_HISTOGRAMS: u8 = 10;
}

const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

fn t(what: &'static str) -> FormatError {
    FormatError::Truncated(what)
}

fn utf8(b: &[u8]) -> Result<String, FormatError> {
    String::from_utf8(b.to_vec()).map_err(|_| FormatError::invalid("label is not UTF-8"))
}

/// Decodes one record.
pub fn decode_record(rec: &[u8]) -> Result<Record, FormatError> {
    use record_type::*;
    let mut d = Decbuf::new(rec);
    let ty = d.byte().ok_or(t("WAL record type"))?;
    match ty {
        SERIES => {
            let mut out = Vec::new();
            while !d.is_empty() {
                let r = d.be64().ok_or(t("series record"))?;
                let n = d.uvarint().ok_or(t("series record"))?;
                if n > d.len() as u64 / 2 {
                    return Err(FormatError::invalid("series record declares too many labels"));
                }
                let mut ls = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let name = utf8(d.uvarint_bytes().ok_or(t("series record label"))?)?;
                    let value = utf8(d.uvarint_bytes().ok_or(t("series record label"))?)?;
                    ls.push((name, value));
                }
                out.push((r, ls));
            }
            Ok(Record::Series(out))
        }
        SAMPLES => {
            let mut out = Vec::new();
            if d.is_empty() {
                return Ok(Record::Samples(out));
            }
            let base_ref = d.be64().ok_or(t("samples record"))?;
            let base_t = d.be64().ok_or(t("samples record"))? as i64;
            while !d.is_empty() {
                let dr = d.varint().ok_or(t("sample"))?;
                let dt = d.varint().ok_or(t("sample"))?;
                let v = d.be64_f64().ok_or(t("sample"))?;
                out.push(((base_ref as i64).wrapping_add(dr) as u64, base_t.wrapping_add(dt), v));
            }
            Ok(Record::Samples(out))
        }
        TOMBSTONES => {
            let mut out = Vec::new();
            while !d.is_empty() {
                let r = d.be64().ok_or(t("tombstones record"))?;
                let a = d.varint().ok_or(t("tombstones record"))?;
                let b = d.varint().ok_or(t("tombstones record"))?;
                out.push((r, a, b));
            }
            Ok(Record::Tombstones(out))
        }
        HISTOGRAMS | FLOAT_HISTOGRAMS | CUSTOM_BUCKETS_HISTOGRAMS | CUSTOM_BUCKETS_FLOAT_HISTOGRAMS => {
            let float = ty == FLOAT_HISTOGRAMS || ty == CUSTOM_BUCKETS_FLOAT_HISTOGRAMS;
            let mut out = Vec::new();
            if d.is_empty() {
                return Ok(Record::Histograms(out));
            }
            let base_ref = d.be64().ok_or(t("histogram record"))?;
            let base_t = d.be64().ok_or(t("histogram record"))? as i64;
            while !d.is_empty() {
                let dr = d.varint().ok_or(t("histogram sample"))?;
                let dt = d.varint().ok_or(t("histogram sample"))?;
                let h = if float {
                    HistogramValue::Float(float_histogram(&mut d)?)
                } else {
                    HistogramValue::Integer(histogram(&mut d)?)
                };
                out.push(((base_ref as i64).wrapping_add(dr) as u64, base_t.wrapping_add(dt), h));
            }
            Ok(Record::Histograms(out))
        }
        other => Ok(Record::Skipped(other)),
    }
}

fn hint(d: &mut Decbuf<'_>) -> Result<CounterResetHint, FormatError> {
    let c = d.byte().ok_or(t("histogram"))?;
    CounterResetHint::from_code(c).ok_or_else(|| FormatError::invalid(format!("unknown counter reset hint {c}")))
}

fn spans(d: &mut Decbuf<'_>) -> Result<Vec<Span>, FormatError> {
    let n = d.uvarint().ok_or(t("histogram spans"))?;
    if n > d.len() as u64 / 2 {
        return Err(FormatError::invalid("histogram declares too many spans"));
    }
    (0..n)
        .map(|_| {
            let offset = i32::try_from(d.varint().ok_or(t("span"))?)
                .map_err(|_| FormatError::invalid("span offset out of range"))?;
            let length = d.uvarint32().ok_or(t("span"))?;
            Ok(Span { offset, length })
        })
        .collect()
}

fn count(d: &mut Decbuf<'_>, per: u64) -> Result<usize, FormatError> {
    let n = d.uvarint().ok_or(t("histogram buckets"))?;
    if n > d.len() as u64 / per {
        return Err(FormatError::invalid("histogram declares too many buckets"));
    }
    Ok(n as usize)
}

fn custom_values(d: &mut Decbuf<'_>, schema: i32) -> Result<Vec<f64>, FormatError> {
    if schema != CUSTOM_BUCKETS_SCHEMA {
        return Ok(Vec::new());
    }
    let n = count(d, 8)?;
    (0..n).map(|_| d.be64_f64().ok_or(t("custom bucket bound"))).collect()
}

fn histogram(d: &mut Decbuf<'_>) -> Result<Histogram, FormatError> {
    let counter_reset_hint = hint(d)?;
    let schema =
        i32::try_from(d.varint().ok_or(t("histogram"))?).map_err(|_| FormatError::invalid("schema out of range"))?;
    let zero_threshold = d.be64_f64().ok_or(t("histogram"))?;
    let zero_count = d.uvarint().ok_or(t("histogram"))?;
    let count_ = d.uvarint().ok_or(t("histogram"))?;
    let sum = d.be64_f64().ok_or(t("histogram"))?;
    let positive_spans = spans(d)?;
    let negative_spans = spans(d)?;
    let n = count(d, 1)?;
    let positive_buckets = (0..n).map(|_| d.varint().ok_or(t("bucket"))).collect::<Result<_, _>>()?;
    let n = count(d, 1)?;
    let negative_buckets = (0..n).map(|_| d.varint().ok_or(t("bucket"))).collect::<Result<_, _>>()?;
    let custom_values = custom_values(d, schema)?;
    Ok(Histogram {
        counter_reset_hint,
        schema,
        zero_threshold,
        zero_count,
        count: count_,
        sum,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values,
    })
}

fn float_histogram(d: &mut Decbuf<'_>) -> Result<FloatHistogram, FormatError> {
    let counter_reset_hint = hint(d)?;
    let schema =
        i32::try_from(d.varint().ok_or(t("histogram"))?).map_err(|_| FormatError::invalid("schema out of range"))?;
    let zero_threshold = d.be64_f64().ok_or(t("histogram"))?;
    let zero_count = d.be64_f64().ok_or(t("histogram"))?;
    let count_ = d.be64_f64().ok_or(t("histogram"))?;
    let sum = d.be64_f64().ok_or(t("histogram"))?;
    let positive_spans = spans(d)?;
    let negative_spans = spans(d)?;
    let n = count(d, 8)?;
    let positive_buckets = (0..n).map(|_| d.be64_f64().ok_or(t("bucket"))).collect::<Result<_, _>>()?;
    let n = count(d, 8)?;
    let negative_buckets = (0..n).map(|_| d.be64_f64().ok_or(t("bucket"))).collect::<Result<_, _>>()?;
    let custom_values = custom_values(d, schema)?;
    Ok(FloatHistogram {
        counter_reset_hint,
        schema,
        zero_threshold,
        zero_count,
        count: count_,
        sum,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values,
    })
}

/// The segment files to replay from a WAL directory, in order: those of
/// the newest complete checkpoint (`checkpoint.NNNNNNNN/`), then the WAL's
/// own segments numbered above `NNNNNNNN`.
pub fn segments_to_read(wal_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn numbered(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.is_empty() && name.bytes().all(|c| c.is_ascii_digit()) && e.file_type()?.is_file() {
                if let Ok(n) = name.parse::<u64>() {
                    out.push((n, e.path()));
                }
            }
        }
        out.sort();
        Ok(out)
    }
    let mut checkpoint: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(wal_dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        // `checkpoint.N.tmp` is a checkpoint being written: ignored.
        if let Some(n) = name.strip_prefix("checkpoint.").and_then(|n| n.parse::<u64>().ok()) {
            if e.file_type()?.is_dir() && checkpoint.as_ref().is_none_or(|c| c.0 < n) {
                checkpoint = Some((n, e.path()));
            }
        }
    }
    let mut out = Vec::new();
    let mut after = None;
    if let Some((n, dir)) = checkpoint {
        out.extend(numbered(&dir)?.into_iter().map(|s| s.1));
        after = Some(n);
    }
    out.extend(numbered(wal_dir)?.into_iter().filter(|s| after.is_none_or(|a| s.0 > a)).map(|s| s.1));
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes records into pages the way Prometheus' WAL does (no compression
    /// unless `snappy`), splitting across pages.
    pub(crate) fn encode_segment(records: &[Vec<u8>], snappy: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            let data = if snappy { snap::raw::Encoder::new().compress_vec(r).unwrap() } else { r.clone() };
            let mut rest = &data[..];
            let mut first = true;
            loop {
                let left = PAGE_SIZE - out.len() % PAGE_SIZE;
                if left < HEADER_LEN + 1 {
                    out.resize(out.len() + left, 0);
                    continue;
                }
                let n = rest.len().min(left - HEADER_LEN);
                let last = n == rest.len();
                let kind = match (first, last) {
                    (true, true) => 1,
                    (true, false) => 2,
                    (false, false) => 3,
                    (false, true) => 4,
                };
                out.push(kind | if snappy { SNAPPY } else { 0 });
                out.extend_from_slice(&(n as u16).to_be_bytes());
                out.extend_from_slice(&crc32c(&rest[..n]).to_be_bytes());
                out.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                first = false;
                if last {
                    break;
                }
            }
        }
        out
    }

    pub(crate) fn series_record(entries: &[(u64, &[(&str, &str)])]) -> Vec<u8> {
        let mut b = vec![record_type::SERIES];
        for (r, ls) in entries {
            b.extend_from_slice(&r.to_be_bytes());
            uv(&mut b, ls.len() as u64);
            for (n, v) in *ls {
                uv(&mut b, n.len() as u64);
                b.extend_from_slice(n.as_bytes());
                uv(&mut b, v.len() as u64);
                b.extend_from_slice(v.as_bytes());
            }
        }
        b
    }

    pub(crate) fn samples_record(s: &[(u64, i64, f64)]) -> Vec<u8> {
        let mut b = vec![record_type::SAMPLES];
        b.extend_from_slice(&s[0].0.to_be_bytes());
        b.extend_from_slice(&s[0].1.to_be_bytes());
        for &(r, ts, v) in s {
            vi(&mut b, r as i64 - s[0].0 as i64);
            vi(&mut b, ts - s[0].1);
            b.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        b
    }

    pub(crate) fn uv(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    pub(crate) fn vi(out: &mut Vec<u8>, n: i64) {
        uv(out, ((n << 1) ^ (n >> 63)) as u64);
    }

    fn read_all(seg: &[u8]) -> Result<Vec<Record>, FormatError> {
        let mut out = Vec::new();
        RecordReader::new().read_segment(seg, |r| {
            out.push(decode_record(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn records_round_trip_through_pages_and_compression() {
        let big: Vec<(u64, i64, f64)> = (0..5000).map(|i| (i % 7, 1000 + i as i64, i as f64)).collect();
        let recs = vec![
            series_record(&[(1, &[("__name__", "up"), ("job", "a")]), (2, &[("__name__", "x")])]),
            samples_record(&big),
            samples_record(&[(2, -5, f64::NAN)]),
        ];
        for snappy in [false, true] {
            let seg = encode_segment(&recs, snappy);
            let got = read_all(&seg).unwrap();
            assert_eq!(got.len(), 3);
            let Record::Series(s) = &got[0] else { panic!("series") };
            assert_eq!(s[0].1[1], ("job".to_string(), "a".to_string()));
            let Record::Samples(s) = &got[1] else { panic!("samples") };
            assert_eq!(s.len(), 5000);
            assert_eq!(s[4999], (4999 % 7, 5999, 4999.0));
        }
        // The big record spans pages without compression.
        assert!(encode_segment(&recs, false).len() > PAGE_SIZE);
    }

    #[test]
    fn corruption_is_an_error() {
        let seg = encode_segment(&[samples_record(&[(1, 2, 3.0)])], false);
        let mut bad = seg.clone();
        let n = bad.len() - 1;
        bad[n] ^= 0xff;
        assert_eq!(read_all(&bad), Err(FormatError::Checksum("WAL fragment")));
        assert!(read_all(&seg[..seg.len() - 2]).is_err());
        assert!(decode_record(&[record_type::SAMPLES, 0, 0]).is_err());
        assert_eq!(decode_record(&[record_type::EXEMPLARS, 1, 2]), Ok(Record::Skipped(4)));
        // A continuation without a start.
        let mut cont = seg.clone();
        cont[0] = 4;
        assert!(read_all(&cont).is_err());
    }

    #[test]
    fn histogram_records_decode() {
        let mut b = vec![record_type::HISTOGRAMS];
        b.extend_from_slice(&9u64.to_be_bytes());
        b.extend_from_slice(&100i64.to_be_bytes());
        vi(&mut b, 0);
        vi(&mut b, 0);
        b.push(2); // not a counter reset
        vi(&mut b, 3); // schema
        b.extend_from_slice(&0.001f64.to_bits().to_be_bytes());
        uv(&mut b, 1); // zero count
        uv(&mut b, 4); // count
        b.extend_from_slice(&2.5f64.to_bits().to_be_bytes());
        uv(&mut b, 1);
        vi(&mut b, 2);
        uv(&mut b, 2); // one span of two buckets
        uv(&mut b, 0); // no negative spans
        uv(&mut b, 2);
        vi(&mut b, 1);
        vi(&mut b, 1); // buckets 1, 2
        uv(&mut b, 0);
        let Record::Histograms(h) = decode_record(&b).unwrap() else { panic!("histograms") };
        let HistogramValue::Integer(h0) = &h[0].2 else { panic!("integer") };
        assert_eq!((h[0].0, h[0].1), (9, 100));
        assert_eq!((h0.schema, h0.count, h0.zero_count, h0.sum), (3, 4, 1, 2.5));
        assert_eq!(h0.positive_spans, vec![Span { offset: 2, length: 2 }]);
        assert_eq!(h0.positive_buckets, vec![1, 1]);
        assert_eq!(h0.counter_reset_hint, CounterResetHint::NotCounterReset);
        assert!(decode_record(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn checkpoint_then_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["00000001", "00000002", "00000003"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("checkpoint.00000002")).unwrap();
        std::fs::write(dir.path().join("checkpoint.00000002/00000000"), b"").unwrap();
        std::fs::create_dir(dir.path().join("checkpoint.00000003.tmp")).unwrap();
        let got = segments_to_read(dir.path()).unwrap();
        let names: Vec<String> =
            got.iter().map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["checkpoint.00000002/00000000", "00000003"]);
    }
}

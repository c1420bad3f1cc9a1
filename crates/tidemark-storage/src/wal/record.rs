//! Record bodies and frames: the bytes of one logical record.
//! The layout is specified in `docs/format/wal.md`.

use std::cell::RefCell;

use super::histogram_record::{
    histogram_columns_len, put_histogram_columns, read_histogram_columns, MIN_HISTOGRAM_COLUMN_LEN,
};
use super::{Record, RefSample, RefSeries};
use crate::chunkenc::sealed::round_mantissa;
use crate::Labels;

/// Bytes of a frame header: `u32` body length, `u32` CRC32-C.
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// Largest body a frame may carry. Bounds allocations on read.
pub(crate) const MAX_BODY_LEN: usize = 1 << 30;

/// Series record of format version 1 (uncompressed). Read, never written.
const TYPE_SERIES: u8 = 1;
/// Samples record of format version 1 (row-wise, raw values). Read, never written.
const TYPE_SAMPLES: u8 = 2;
/// Series record, optionally zstd-compressed. Written since 2026-12-05.
const TYPE_SERIES_V2: u8 = 3;
/// Samples record in columns, values as exact decimals where they are
/// ones, optionally zstd-compressed. Written since 2026-12-05.
const TYPE_SAMPLES_V2: u8 = 4;
/// Histogram samples (integer and float, every schema) in columns,
/// optionally zstd-compressed. Written since 2026-12-07.
const TYPE_HISTOGRAMS: u8 = 5;
/// Exemplars in columns, optionally zstd-compressed. Written since
/// 2026-12-07 (data directory format 4).
const TYPE_EXEMPLARS: u8 = 6;

/// Flag bit of the v2 types: the columns are zstd-compressed.
const FLAG_ZSTD: u8 = 1;
/// zstd level of the v2 types: level 1 is within a few percent of level 3
/// on remote-write batches at a third more speed (`benches/results/perf-wal-2026-12-05.md`).
const ZSTD_LEVEL: i32 = 1;
/// Columns shorter than this are stored as they are: zstd's frame costs
/// more than it could save.
const MIN_COMPRESS_LEN: usize = 48;
/// Value kind: the value is stored as its 8 raw bytes.
const KIND_RAW: u8 = 0xff;
/// Most decimals a value column entry may have; `10^MAX_DECIMALS` and the
/// mantissas below 2^53 are exact doubles, so `m / 10^k` is one correctly
/// rounded division, the same on every IEEE-754 machine.
const MAX_DECIMALS: usize = 9;
pub(super) const POW10: [f64; MAX_DECIMALS + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest column bytes one sample can take: ref and time varints (10 + 10),
/// its kind byte, and a mantissa varint (10) or raw value (8).
const MAX_SAMPLE_COLUMN_LEN: u64 = 31;
/// Smallest column bytes one sample can take: one byte each for its ref
/// delta, time delta, kind and (at least) value.
const MIN_SAMPLE_COLUMN_LEN: usize = 4;

/// Appends one frame (header + body) for `rec` to `out`. Returns `Err` with
/// the body length if the record is larger than [`MAX_BODY_LEN`]; `out` is
/// then left as it was. Writes the v2 types (3 and 4) and type 5.
pub(crate) fn encode_frame(rec: &Record, out: &mut Vec<u8>) -> Result<(), usize> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    SCRATCH.with(|cell| {
        // Taken out of the cell so a panic-free nested use cannot alias it.
        let mut cols = std::mem::take(&mut *cell.borrow_mut());
        cols.clear();
        let count = match rec {
            Record::Series(series) => {
                out.push(TYPE_SERIES_V2);
                put_series_entries(&mut cols, series);
                series.len()
            }
            Record::Samples(samples) => {
                out.push(TYPE_SAMPLES_V2);
                put_sample_columns(&mut cols, samples);
                samples.len()
            }
            Record::HistogramSamples(samples) => {
                out.push(TYPE_HISTOGRAMS);
                put_histogram_columns(&mut cols, samples);
                samples.len()
            }
            Record::Exemplars(exemplars) => {
                out.push(TYPE_EXEMPLARS);
                crate::exemplar::put_exemplar_columns(&mut cols, exemplars);
                exemplars.len()
            }
        };
        put_uvarint(out, count as u64);
        put_maybe_compressed(out, &cols);
        if cols.capacity() <= 1 << 22 {
            *cell.borrow_mut() = cols;
        }
    });
    let body_len = out.len() - start - FRAME_HEADER_LEN;
    if body_len > MAX_BODY_LEN {
        out.truncate(start);
        return Err(body_len);
    }
    let len_bytes = (body_len as u32).to_le_bytes();
    let crc = frame_crc(len_bytes, &out[start + FRAME_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Bytes `rec` takes as a frame of the uncompressed format-1 types (1 and
/// 2), computed without encoding it. Size retention bounds what persisting
/// the head and checkpointing write by the log's size in these terms
/// (`docs/retention.md`), which compression does not shrink. Histogram
/// samples have no format-1 type: theirs is the frame of their type-5
/// record with the columns stored uncompressed.
pub(crate) fn v1_frame_len(rec: &Record) -> u64 {
    let ulen = |v: u64| crate::varint::uvarint_len(v) as u64;
    let vlen = |v: i64| ulen(crate::varint::zigzag(v));
    let body = match rec {
        Record::Series(series) => {
            ulen(series.len() as u64)
                + series
                    .iter()
                    .map(|s| {
                        let l = s.labels.encoded().len() as u64;
                        ulen(s.series_ref) + ulen(l) + l
                    })
                    .sum::<u64>()
        }
        Record::Samples(samples) => {
            let head = samples.first().map_or(0, |f| ulen(f.series_ref) + vlen(f.t));
            let entries: u64 = samples
                .iter()
                .map(|s| {
                    let (r0, t0) = (samples[0].series_ref, samples[0].t);
                    vlen(s.series_ref.wrapping_sub(r0) as i64) + vlen(s.t.wrapping_sub(t0)) + 8
                })
                .sum();
            ulen(samples.len() as u64) + head + entries
        }
        Record::HistogramSamples(samples) => ulen(samples.len() as u64) + 1 + histogram_columns_len(samples),
        Record::Exemplars(e) => ulen(e.len() as u64) + 1 + crate::exemplar::exemplar_columns_len(e),
    };
    FRAME_HEADER_LEN as u64 + 1 + body
}

/// The entries of a series record (types 1 and 3 share them).
fn put_series_entries(out: &mut Vec<u8>, series: &[RefSeries]) {
    for s in series {
        put_uvarint(out, s.series_ref);
        let l = s.labels.encoded();
        put_uvarint(out, l.len() as u64);
        out.extend_from_slice(l);
    }
}

/// The columns of a type-4 samples record (see `docs/format/wal.md`).
fn put_sample_columns(out: &mut Vec<u8>, samples: &[RefSample]) {
    let mut prev = 0u64;
    for s in samples {
        put_varint(out, s.series_ref.wrapping_sub(prev) as i64);
        prev = s.series_ref;
    }
    let mut prev = 0i64;
    for s in samples {
        put_varint(out, s.t.wrapping_sub(prev));
        prev = s.t;
    }
    // Kinds first (one byte each), mantissas after them, raw values last;
    // the kinds column's place is reserved and filled in one pass.
    let kinds_at = out.len();
    out.resize(kinds_at + samples.len(), 0);
    for (i, s) in samples.iter().enumerate() {
        let bits = s.v.to_bits();
        match decimal_of(bits) {
            Some((k, m)) => {
                out[kinds_at + i] = k as u8;
                put_varint(out, m);
            }
            None => out[kinds_at + i] = KIND_RAW,
        }
    }
    // The raw values, in sample order, found again by their kind byte (no
    // list of them kept on the side).
    for (i, s) in samples.iter().enumerate() {
        if out[kinds_at + i] == KIND_RAW {
            out.extend_from_slice(&s.v.to_bits().to_le_bytes());
        }
    }
}

/// The value as `(k, m)` with the fewest decimals `k` for which
/// `m as f64 / 10^k` (the decoder's formula) is bit-identical to `bits`.
/// `None` for values with more decimals, NaN, infinities and -0.0: those
/// are stored raw.
#[inline]
// Rounding without `f64::round`, which baseline x86-64 has no instruction
// for (a libm call, up to ten per value here): `round_mantissa`, shared
// with the sealed chunk codec's decimal columns.
pub(super) fn decimal_of(bits: u64) -> Option<(usize, i64)> {
    let v = f64::from_bits(bits);
    let fit = |k: usize| {
        let m = round_mantissa(v * POW10[k])?;
        ((m as f64 / POW10[k]).to_bits() == bits).then_some((k, m))
    };
    (0..=MAX_DECIMALS).find_map(fit)
}

/// Appends `flags`, then `cols` zstd-compressed (with its length first) if
/// that is shorter, else as it is.
fn put_maybe_compressed(out: &mut Vec<u8>, cols: &[u8]) {
    if cols.len() >= MIN_COMPRESS_LEN {
        let at = out.len();
        out.push(FLAG_ZSTD);
        put_uvarint(out, cols.len() as u64);
        let data_at = out.len();
        out.resize(data_at + zstd::zstd_safe::compress_bound(cols.len()), 0);
        let n = COMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = new_compressor();
            }
            slot.as_mut().and_then(|c| c.compress_to_buffer(cols, &mut out[data_at..]).ok())
        });
        match n {
            Some(n) if data_at - at + n < 1 + cols.len() => {
                out.truncate(data_at + n);
                return;
            }
            // zstd failed or did not pay: store the columns as they are.
            _ => out.truncate(at),
        }
    }
    out.push(0);
    out.extend_from_slice(cols);
}

/// A level-1 compressor writing bare frames: no checksum (the WAL frame has
/// its CRC32-C), no content size (the record states it), no dictionary id.
fn new_compressor() -> Option<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(false)).ok()?;
    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false)).ok()?;
    c.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false)).ok()?;
    Some(c)
}

thread_local! {
    // Reused across records: creating a zstd context costs more than
    // compressing one commit's record.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    /// Uncompressed columns of the record being encoded.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Decompressed columns of the record being decoded.
    static DECODE_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The checksum stored in a frame: CRC32-C over the length bytes, then the body.
pub(crate) fn frame_crc(len_bytes: [u8; 4], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_bytes), body)
}

/// Decodes a frame body (type byte + payload) of any record type ever
/// written (1 to 6). Never panics; every allocation is bounded by the
/// body's length (for compressed records: by what zstd can expand it to).
pub(crate) fn decode_body(body: &[u8]) -> Result<Record, &'static str> {
    let (&ty, payload) = body.split_first().ok_or("empty record body")?;
    let mut r = Reader { buf: payload, pos: 0 };
    let rec = match ty {
        TYPE_SERIES => {
            let n = r.uvarint()?;
            Record::Series(read_series_entries(&mut r, n)?)
        }
        TYPE_SAMPLES => {
            let n = r.uvarint()?;
            // Each sample takes at least 10 bytes (two varints, 8 value bytes).
            let mut samples = Vec::with_capacity(bounded_capacity(n, r.remaining(), 10)?);
            if n > 0 {
                let base_ref = r.uvarint()?;
                let base_t = r.varint()?;
                for _ in 0..n {
                    let series_ref = base_ref.wrapping_add(r.varint()? as u64);
                    let t = base_t.wrapping_add(r.varint()?);
                    let v = f64::from_bits(r.u64_le()?);
                    samples.push(RefSample { series_ref, t, v });
                }
            }
            Record::Samples(samples)
        }
        TYPE_SERIES_V2 => {
            let n = r.uvarint()?;
            // Each entry takes at least 2 bytes (ref and length varints).
            with_columns(&mut r, n, 2, u64::MAX, |c| read_series_entries(c, n).map(Record::Series))?
        }
        TYPE_SAMPLES_V2 => {
            let n = r.uvarint()?;
            let max = n.saturating_mul(MAX_SAMPLE_COLUMN_LEN);
            with_columns(&mut r, n, MIN_SAMPLE_COLUMN_LEN, max, |c| read_sample_columns(c, n).map(Record::Samples))?
        }
        TYPE_HISTOGRAMS => {
            let n = r.uvarint()?;
            with_columns(&mut r, n, MIN_HISTOGRAM_COLUMN_LEN, u64::MAX, |c| {
                let cols = c.bytes(c.remaining() as u64)?;
                read_histogram_columns(cols, n).map(Record::HistogramSamples).map_err(|e| e.reason())
            })?
        }
        TYPE_EXEMPLARS => {
            let n = r.uvarint()?;
            with_columns(&mut r, n, crate::exemplar::MIN_EXEMPLAR_COLUMN_LEN, u64::MAX, |c| {
                let cols = c.bytes(c.remaining() as u64)?;
                crate::exemplar::read_exemplar_columns(cols, n).map(Record::Exemplars)
            })?
        }
        _ => return Err("unknown record type"),
    };
    if r.remaining() != 0 {
        return Err("trailing bytes after record payload");
    }
    Ok(rec)
}

fn read_series_entries(r: &mut Reader<'_>, n: u64) -> Result<Vec<RefSeries>, &'static str> {
    // Each entry takes at least 2 bytes (ref and length varints).
    let mut series = Vec::with_capacity(bounded_capacity(n, r.remaining(), 2)?);
    for _ in 0..n {
        let series_ref = r.uvarint()?;
        let len = r.uvarint()?;
        let bytes = r.bytes(len)?;
        let labels = Labels::from_encoded(bytes).map_err(|_| "invalid labels in series record")?;
        series.push(RefSeries { series_ref, labels });
    }
    Ok(series)
}

/// Reads the flags (and, when compressed, the columns' length) of a v2
/// record of `n` entries, and calls `f` with a reader over its columns,
/// which `f` must consume exactly. `min_entry`/`max_len` bound the
/// declared length before anything is allocated.
fn with_columns<T>(
    r: &mut Reader<'_>,
    n: u64,
    min_entry: usize,
    max_len: u64,
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, &'static str>,
) -> Result<T, &'static str> {
    let flags = r.byte()?;
    if flags & !FLAG_ZSTD != 0 {
        return Err("unknown record flags");
    }
    if flags & FLAG_ZSTD == 0 {
        let cols = r.bytes(r.remaining() as u64)?;
        let mut c = Reader { buf: cols, pos: 0 };
        let out = f(&mut c)?;
        return if c.remaining() == 0 { Ok(out) } else { Err("trailing bytes after record columns") };
    }
    let raw_len = r.uvarint()?;
    let data = r.bytes(r.remaining() as u64)?;
    // zstd blocks decode to at most 128 KiB each and take at least 3 bytes,
    // so `data` cannot legitimately expand beyond this: a small hostile
    // record cannot make us reserve much memory.
    let expandable = (data.len() as u64 / 3 + 1) * (128 << 10);
    if raw_len > max_len || raw_len > expandable || raw_len > MAX_BODY_LEN as u64 {
        return Err("record declares an impossible length");
    }
    if n > raw_len / min_entry as u64 {
        return Err("record count exceeds record length");
    }
    let raw_len = raw_len as usize;
    DECODE_SCRATCH.with(|cell| {
        let mut buf = std::mem::take(&mut *cell.borrow_mut());
        buf.clear();
        buf.reserve_exact(raw_len);
        let got = DECOMPRESSOR.with(|d| {
            let mut slot = d.borrow_mut();
            if slot.is_none() {
                *slot = zstd::bulk::Decompressor::new().ok();
            }
            // The buffer's capacity bounds what zstd may write.
            slot.as_mut().and_then(|d| d.decompress_to_buffer(data, &mut buf).ok())
        });
        let res = match got {
            Some(len) if len == raw_len && buf.len() == raw_len => {
                let mut c = Reader { buf: &buf, pos: 0 };
                f(&mut c).and_then(|out| {
                    if c.remaining() == 0 {
                        Ok(out)
                    } else {
                        Err("trailing bytes after record columns")
                    }
                })
            }
            _ => Err("invalid zstd data in record"),
        };
        // Do not keep a huge buffer alive after an unusually large record.
        if buf.capacity() <= 1 << 22 {
            *cell.borrow_mut() = buf;
        }
        res
    })
}

/// Reads the columns of a type-4 samples record of `n` samples.
fn read_sample_columns(r: &mut Reader<'_>, n: u64) -> Result<Vec<RefSample>, &'static str> {
    let n = bounded_capacity(n, r.remaining(), MIN_SAMPLE_COLUMN_LEN)?;
    let mut samples = Vec::with_capacity(n);
    let mut series_ref = 0u64;
    for _ in 0..n {
        series_ref = series_ref.wrapping_add(r.varint()? as u64);
        samples.push(RefSample { series_ref, t: 0, v: 0.0 });
    }
    let mut t = 0i64;
    for s in &mut samples {
        t = t.wrapping_add(r.varint()?);
        s.t = t;
    }
    let kinds = r.bytes(n as u64)?;
    let raw_count = kinds.iter().filter(|&&k| k == KIND_RAW).count();
    // The raw values are the last bytes; the mantissas fill the rest exactly.
    let mantissa_end = r.remaining().checked_sub(raw_count * 8).ok_or("raw values exceed record")?;
    let mut raw = Reader { buf: &r.buf[r.pos + mantissa_end..], pos: 0 };
    let mut mant = Reader { buf: &r.buf[r.pos..r.pos + mantissa_end], pos: 0 };
    for (s, &k) in samples.iter_mut().zip(kinds) {
        s.v = if k == KIND_RAW {
            f64::from_bits(raw.u64_le()?)
        } else {
            let pow = *POW10.get(usize::from(k)).ok_or("unknown value kind")?;
            // The encoder's check used exactly this expression.
            mant.varint()? as f64 / pow
        };
    }
    if mant.remaining() != 0 {
        return Err("trailing bytes after mantissas");
    }
    r.pos = r.buf.len();
    Ok(samples)
}

/// For a body of the v2 types (3, 4) or type 5 that does not decode:
/// whether it is a samples record (float or histogram), and the entry count its uncompressed envelope states,
/// if the envelope itself is well-formed. Lets damage reports count what a
/// record whose compressed columns were damaged held.
pub(crate) fn envelope_count(body: &[u8]) -> Option<(bool, u64)> {
    let (&ty, payload) = body.split_first()?;
    let min_entry = match ty {
        TYPE_SERIES_V2 => 2,
        TYPE_SAMPLES_V2 => MIN_SAMPLE_COLUMN_LEN,
        TYPE_HISTOGRAMS => MIN_HISTOGRAM_COLUMN_LEN,
        _ => return None,
    };
    let mut r = Reader { buf: payload, pos: 0 };
    let n = r.uvarint().ok()?;
    let flags = r.byte().ok()?;
    // Only a count the declared columns could hold is believed.
    let cols = if flags == FLAG_ZSTD {
        r.uvarint().ok()?
    } else if flags == 0 {
        r.remaining() as u64
    } else {
        return None;
    };
    (n <= cols / min_entry as u64).then_some((ty != TYPE_SERIES_V2, n))
}

/// `n` entries of at least `min_size` bytes must fit in `remaining` bytes.
fn bounded_capacity(n: u64, remaining: usize, min_size: usize) -> Result<usize, &'static str> {
    if n > (remaining / min_size) as u64 {
        return Err("record count exceeds record length");
    }
    Ok(n as usize)
}

pub(crate) use crate::varint::{put_uvarint, put_varint};

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn uvarint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint overflows 64 bits")
    }

    fn varint(&mut self) -> Result<i64, &'static str> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.buf.get(self.pos).ok_or("truncated record")?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], &'static str> {
        if len > self.remaining() as u64 {
            return Err("length exceeds record");
        }
        let s = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(s)
    }

    fn u64_le(&mut self) -> Result<u64, &'static str> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::chunkenc::sealed::MAX_MANTISSA;

    /// A body of the version-1 types, as the code before 2026-12-05 wrote
    /// it (kept to prove such records still read back).
    fn body_v1(rec: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        match rec {
            Record::Series(series) => {
                out.push(TYPE_SERIES);
                put_uvarint(&mut out, series.len() as u64);
                put_series_entries(&mut out, series);
            }
            Record::Samples(samples) => {
                out.push(TYPE_SAMPLES);
                put_uvarint(&mut out, samples.len() as u64);
                if let Some(first) = samples.first() {
                    put_uvarint(&mut out, first.series_ref);
                    put_varint(&mut out, first.t);
                    for s in samples {
                        put_varint(&mut out, s.series_ref.wrapping_sub(first.series_ref) as i64);
                        put_varint(&mut out, s.t.wrapping_sub(first.t));
                        out.extend_from_slice(&s.v.to_bits().to_le_bytes());
                    }
                }
            }
            Record::HistogramSamples(_) | Record::Exemplars(_) => {
                panic!("histogram samples and exemplars have no format-1 record type")
            }
        }
        out
    }

    /// Values a WAL must keep bit for bit, and ones near decimals.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(f64::from_bits(crate::STALE_NAN_BITS)),
            Just(f64::from_bits(0x7ff8_dead_beef_0001)),
            Just(f64::from_bits(0xfff0_0000_0000_0001)),
            Just(-0.0),
            Just(0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE / 4.0),
            Just(9_007_199_254_740_993.0),
            Just(-9_007_199_254_740_992.0),
            Just(i64::MAX as f64),
            Just(0.1 + 0.2),
            (any::<i32>(), 0usize..=12).prop_map(|(m, k)| f64::from(m) / 10f64.powi(k as i32)),
            // One ULP beside a short decimal: must not be taken for it.
            (any::<i32>(), 0usize..=9, -2i64..=2)
                .prop_map(|(m, k, d)| { f64::from_bits((f64::from(m) / POW10[k]).to_bits().wrapping_add(d as u64)) }),
            (0u64..1 << 40).prop_map(|c| c as f64),
        ]
    }

    fn sample() -> impl Strategy<Value = RefSample> {
        let series_ref = prop_oneof![0u64..5000, any::<u64>(), Just(u64::MAX), Just(0)];
        let t = prop_oneof![1_700_000_000_000i64..1_700_000_100_000, any::<i64>(), Just(i64::MIN), Just(i64::MAX)];
        (series_ref, t, value()).prop_map(|(series_ref, t, v)| RefSample { series_ref, t, v })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn samples_round_trip_in_both_formats(samples in prop::collection::vec(sample(), 0..300)) {
            let rec = Record::Samples(samples);
            prop_assert_eq!(v1_frame_len(&rec), (FRAME_HEADER_LEN + body_v1(&rec).len()) as u64);
            prop_assert_eq!(decode_body(&body(&rec)).unwrap(), rec.clone());
            prop_assert_eq!(decode_body(&body_v1(&rec)).unwrap(), rec);
        }

        #[test]
        fn series_round_trip_in_both_formats(
            names in prop::collection::vec(("[a-z_]{1,12}", "[ -~]{0,20}", any::<u64>()), 0..60)
        ) {
            let series: Vec<RefSeries> = names
                .iter()
                .map(|(n, v, r)| RefSeries {
                    series_ref: *r,
                    labels: Labels::new([("__name__", n.as_str()), ("instance", v.as_str())]).unwrap(),
                })
                .collect();
            let rec = Record::Series(series);
            prop_assert_eq!(v1_frame_len(&rec), (FRAME_HEADER_LEN + body_v1(&rec).len()) as u64);
            prop_assert_eq!(decode_body(&body(&rec)).unwrap(), rec.clone());
            prop_assert_eq!(decode_body(&body_v1(&rec)).unwrap(), rec);
        }

        #[test]
        fn no_body_makes_the_decoder_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), ty in 1u8..=4) {
            let mut b = vec![ty];
            b.extend_from_slice(&bytes);
            let _ = decode_body(&b);
        }

        #[test]
        fn damaged_compressed_bodies_never_panic(samples in prop::collection::vec(sample(), 30..200), at in any::<usize>(), x in 1u8..=255) {
            let mut b = body(&Record::Samples(samples));
            let i = at % b.len();
            b[i] ^= x;
            let _ = decode_body(&b);
        }
    }

    fn exemplar() -> impl Strategy<Value = crate::wal::RefExemplar> {
        let labels = prop_oneof![
            Just(Labels::empty()),
            "[0-9a-f]{1,32}".prop_map(|t| Labels::new([("trace_id", t)]).unwrap()),
            ("[ -~é🙂]{1,20}", "[a-z_]{1,8}").prop_map(|(v, n)| Labels::new([(n, v)]).unwrap()),
        ];
        (prop_oneof![0u64..50, any::<u64>()], any::<i64>(), value(), labels)
            .prop_map(|(series_ref, t, v, labels)| crate::wal::RefExemplar { series_ref, t, v, labels })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn exemplars_round_trip_bit_exactly(e in prop::collection::vec(exemplar(), 0..200)) {
            let rec = Record::Exemplars(e);
            let b = body(&rec);
            prop_assert_eq!(b[0], TYPE_EXEMPLARS);
            prop_assert_eq!(decode_body(&b).unwrap(), rec.clone());
            // The format-1 size counts the columns uncompressed.
            let Record::Exemplars(e) = &rec else { unreachable!() };
            let mut cols = Vec::new();
            crate::exemplar::put_exemplar_columns(&mut cols, e);
            prop_assert_eq!(cols.len() as u64, crate::exemplar::exemplar_columns_len(e));
            prop_assert_eq!(
                v1_frame_len(&rec),
                (FRAME_HEADER_LEN + 1 + crate::varint::uvarint_len(e.len() as u64) + 1 + cols.len()) as u64
            );
        }

        #[test]
        fn damaged_exemplar_bodies_never_panic(e in prop::collection::vec(exemplar(), 1..100), at in any::<usize>(), x in 1u8..=255) {
            let mut b = body(&Record::Exemplars(e));
            let i = at % b.len();
            b[i] ^= x;
            let _ = decode_body(&b);
        }
    }

    #[test]
    fn hostile_exemplar_records_are_rejected() {
        // More exemplars than the columns can hold.
        let mut b = vec![TYPE_EXEMPLARS];
        put_uvarint(&mut b, 1 << 40);
        b.extend_from_slice(&[0; 30]);
        assert_eq!(decode_body(&b), Err("record count exceeds record length"));
        // Labels that are not canonical (unsorted names).
        let mut cols = vec![2, 2];
        cols.extend_from_slice(&1f64.to_bits().to_le_bytes());
        let bad = [1, b'b', 1, b'x', 1, b'a', 1, b'y'];
        cols.push(bad.len() as u8);
        cols.extend_from_slice(&bad);
        let mut b = vec![TYPE_EXEMPLARS, 1, 0];
        b.extend_from_slice(&cols);
        assert_eq!(decode_body(&b), Err("invalid labels in exemplar record"));
        // A label length past the end.
        let mut b = vec![TYPE_EXEMPLARS, 1, 0, 2, 2];
        b.extend_from_slice(&1f64.to_bits().to_le_bytes());
        b.push(5);
        assert_eq!(decode_body(&b), Err("truncated exemplar record"));
    }

    /// A remote-write-like batch: consecutive refs, one timestamp per
    /// target, counters and decimals.
    fn batch(n: u64) -> Record {
        Record::Samples(
            (0..n)
                .map(|i| RefSample {
                    series_ref: 1000 + i,
                    t: 1_700_000_000_000 + (i / 100) as i64 * 10,
                    v: if i % 3 == 0 { (i * 12_345) as f64 } else { (i * 7) as f64 / 100.0 },
                })
                .collect(),
        )
    }

    #[test]
    fn large_records_are_compressed_and_small_ones_not() {
        let big = body(&batch(2000));
        assert_eq!(big[0], TYPE_SAMPLES_V2);
        let mut r = Reader { buf: &big[1..], pos: 0 };
        assert_eq!(r.uvarint().unwrap(), 2000);
        assert_eq!(r.byte().unwrap(), FLAG_ZSTD);
        // Unique 4-5 digit values: little to share, yet a third of v1's 12 bytes.
        assert!(big.len() < 2000 * 4, "{} bytes", big.len());
        assert!(big.len() * 3 < body_v1(&batch(2000)).len());
        assert_eq!(decode_body(&big).unwrap(), batch(2000));

        let small = body(&batch(2));
        assert_eq!(&small[..3], &[TYPE_SAMPLES_V2, 2, 0]);
        assert_eq!(decode_body(&small).unwrap(), batch(2));
    }

    /// `decimal_of`'s rounding as it was written first, with `f64::round`.
    fn round_mantissa_libm(y: f64) -> Option<i64> {
        let m = y.round();
        if m.is_nan() || m.abs() >= MAX_MANTISSA {
            return None;
        }
        Some(m as i64)
    }

    #[test]
    fn mantissas_round_as_f64_round_does() {
        let mut edges = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4503599627370495.5,
            -4503599627370495.5,
            4503599627370496.0,
            MAX_MANTISSA,
            -MAX_MANTISSA,
            MAX_MANTISSA - 1.0,
            -(MAX_MANTISSA - 1.0),
            MAX_MANTISSA - 0.5,
            1e300,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        // Values around every power of two up to 2^54, and their halves.
        for e in 0..=54 {
            let p = (1u64 << e) as f64;
            for d in [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0] {
                edges.push(p + d);
                edges.push(-(p + d));
                edges.push(f64::from_bits((p + d).to_bits().wrapping_add(1)));
                edges.push(f64::from_bits((p + d).to_bits().wrapping_sub(1)));
            }
        }
        for y in edges {
            assert_eq!(round_mantissa(y), round_mantissa_libm(y), "{y:?}");
        }
        // Pseudo-random bit patterns and decimal-looking values scaled as
        // `decimal_of` scales them.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let y = f64::from_bits(x);
            assert_eq!(round_mantissa(y), round_mantissa_libm(y), "{y:?}");
            let d = (x % 2_000_000_000) as f64 / 1000.0 - 1e6;
            for p in POW10 {
                assert_eq!(round_mantissa(d * p), round_mantissa_libm(d * p), "{d:?} * {p}");
            }
        }
    }

    #[test]
    fn decimals_are_exact_and_special_values_raw() {
        for (v, want) in [
            (1.0, Some((0, 1))),
            (0.25, Some((2, 25))),
            (123.45, Some((2, 12345))),
            (-7.5, Some((1, -75))),
            (0.0, Some((0, 0))),
            (-0.0, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
            (0.1 + 0.2, None),
            (1e300, None),
            (9_007_199_254_740_993.0, None),
        ] {
            assert_eq!(decimal_of(f64::to_bits(v)), want, "{v}");
        }
    }

    #[test]
    fn hostile_v2_headers_are_rejected() {
        // Declared length beyond what zstd could expand the data to.
        let mut b = vec![TYPE_SAMPLES_V2];
        put_uvarint(&mut b, 1000);
        b.push(FLAG_ZSTD);
        put_uvarint(&mut b, 1 << 29);
        b.extend_from_slice(&[0; 4]);
        assert_eq!(decode_body(&b), Err("record declares an impossible length"));
        // Unknown flags.
        assert_eq!(decode_body(&[TYPE_SERIES_V2, 0, 0x80]), Err("unknown record flags"));
        // A value kind past the largest decimal count.
        let mut b = body(&Record::Samples(vec![RefSample { series_ref: 1, t: 1, v: 1.0 }]));
        assert_eq!(&b[..5], &[TYPE_SAMPLES_V2, 1, 0, 2, 2]);
        b[5] = 10;
        assert_eq!(decode_body(&b), Err("unknown value kind"));
        // More samples than the columns can hold.
        let mut b = vec![TYPE_SAMPLES_V2];
        put_uvarint(&mut b, 1 << 40);
        b.extend_from_slice(&[0, 1, 2, 3, 4]);
        assert_eq!(decode_body(&b), Err("record count exceeds record length"));
    }

    fn body(rec: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(rec, &mut out).unwrap();
        out.split_off(FRAME_HEADER_LEN)
    }

    #[test]
    fn varints_round_trip_extremes() {
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40, -(1 << 40)] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader { buf: &out, pos: 0 };
            assert_eq!(r.varint().unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bytes = [0xffu8; 10];
        assert!(Reader { buf: &bytes, pos: 0 }.uvarint().is_err());
        let mut bytes = [0x80u8; 10];
        bytes[9] = 0x02;
        assert!(Reader { buf: &bytes, pos: 0 }.uvarint().is_err());
    }

    #[test]
    fn samples_with_extreme_refs_and_times_round_trip() {
        let rec = Record::Samples(vec![
            RefSample { series_ref: u64::MAX, t: i64::MIN, v: f64::from_bits(0x7ff8_dead_beef_0001) },
            RefSample { series_ref: 0, t: i64::MAX, v: -0.0 },
            RefSample { series_ref: 7, t: 0, v: f64::NEG_INFINITY },
        ]);
        assert_eq!(decode_body(&body(&rec)).unwrap(), rec);
    }

    #[test]
    fn huge_counts_are_rejected_without_allocating() {
        let mut b = vec![TYPE_SAMPLES];
        put_uvarint(&mut b, u64::MAX);
        assert_eq!(decode_body(&b), Err("record count exceeds record length"));
        let mut b = vec![TYPE_SERIES];
        put_uvarint(&mut b, 1 << 40);
        assert_eq!(decode_body(&b), Err("record count exceeds record length"));
    }

    #[test]
    fn trailing_bytes_and_unknown_types_are_rejected() {
        let mut b = body(&Record::Series(vec![]));
        b.push(0);
        assert!(decode_body(&b).is_err());
        assert_eq!(decode_body(&[9]), Err("unknown record type"));
        assert_eq!(decode_body(&[]), Err("empty record body"));
    }
}

//! Record bodies and frames: the bytes of one logical record.
//! The layout is specified in `docs/format/wal.md`.

use super::{Record, RefSample, RefSeries};
use crate::Labels;

/// Bytes of a frame header: `u32` body length, `u32` CRC32-C.
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// Largest body a frame may carry. Bounds allocations on read.
pub(crate) const MAX_BODY_LEN: usize = 1 << 30;

const TYPE_SERIES: u8 = 1;
const TYPE_SAMPLES: u8 = 2;

/// Appends one frame (header + body) for `rec` to `out`. Returns `Err` with
/// the body length if the record is larger than [`MAX_BODY_LEN`]; `out` is
/// then left as it was.
pub(crate) fn encode_frame(rec: &Record, out: &mut Vec<u8>) -> Result<(), usize> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    match rec {
        Record::Series(series) => {
            out.push(TYPE_SERIES);
            put_uvarint(out, series.len() as u64);
            for s in series {
                put_uvarint(out, s.series_ref);
                let l = s.labels.encoded();
                put_uvarint(out, l.len() as u64);
                out.extend_from_slice(l);
            }
        }
        Record::Samples(samples) => {
            out.push(TYPE_SAMPLES);
            put_uvarint(out, samples.len() as u64);
            if let Some(first) = samples.first() {
                put_uvarint(out, first.series_ref);
                put_varint(out, first.t);
                for s in samples {
                    put_varint(out, s.series_ref.wrapping_sub(first.series_ref) as i64);
                    put_varint(out, s.t.wrapping_sub(first.t));
                    out.extend_from_slice(&s.v.to_bits().to_le_bytes());
                }
            }
        }
    }
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

/// The checksum stored in a frame: CRC32-C over the length bytes, then the body.
pub(crate) fn frame_crc(len_bytes: [u8; 4], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_bytes), body)
}

/// Decodes a frame body (type byte + payload). Never panics; every
/// allocation is bounded by the body's length.
pub(crate) fn decode_body(body: &[u8]) -> Result<Record, &'static str> {
    let (&ty, payload) = body.split_first().ok_or("empty record body")?;
    let mut r = Reader { buf: payload, pos: 0 };
    let rec = match ty {
        TYPE_SERIES => {
            let n = r.uvarint()?;
            // Each entry takes at least 2 bytes (ref and length varints).
            let mut series = Vec::with_capacity(bounded_capacity(n, r.remaining(), 2)?);
            for _ in 0..n {
                let series_ref = r.uvarint()?;
                let len = r.uvarint()?;
                let bytes = r.bytes(len)?;
                let labels = Labels::from_encoded(bytes).map_err(|_| "invalid labels in series record")?;
                series.push(RefSeries { series_ref, labels });
            }
            Record::Series(series)
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
        _ => return Err("unknown record type"),
    };
    if r.remaining() != 0 {
        return Err("trailing bytes after record payload");
    }
    Ok(rec)
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
    use super::*;

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

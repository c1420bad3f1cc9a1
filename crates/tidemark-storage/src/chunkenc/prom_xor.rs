//! Prometheus' XOR chunk encoding (its chunk encoding 1, `EncXOR`), as
//! found in Prometheus blocks and in remote read's `STREAMED_XOR_CHUNKS`
//! responses, translated to and from our [`xor`](super::xor) chunks.
//!
//! The two encodings share every bit but one field: a chunk is a 2-byte
//! big-endian sample count, the first sample's timestamp as a zig-zag
//! varint and its value as 64 raw bits, then the second sample's timestamp
//! delta, then the same delta-of-delta and XOR-value bit stream. We write
//! that second delta as a zig-zag varint (so any order round-trips);
//! Prometheus writes it as an unsigned varint of the delta's two's
//! complement. Everything before the delta ends on a byte boundary, and the
//! delta is whole bytes, so translating is a byte splice: the bit stream
//! after it is copied unchanged, in O(n) with no bit-level work.
//!
//! ```
//! use tidemark_storage::chunkenc::{prom_xor, XorAppender, XorIterator};
//! use tidemark_storage::SampleIterator;
//!
//! let mut app = XorAppender::new();
//! for (t, v) in [(1000, 1.0), (2000, 2.0), (3000, 3.0)] {
//!     app.append(t, v);
//! }
//! let prom = prom_xor::to_prometheus(app.bytes()).unwrap();
//! let ours = prom_xor::from_prometheus(&prom).unwrap();
//! assert_eq!(ours, app.bytes());
//! let mut it = XorIterator::new(&ours[..]);
//! assert!(it.next());
//! assert_eq!((it.at().t, it.at().v), (1000, 1.0));
//! ```

use super::xor::HEADER_LEN;
use crate::error::ChunkError;
use crate::varint::{get_uvarint, put_uvarint, put_varint, unzigzag};

/// Where the second sample's delta starts and ends in a chunk of either
/// encoding, and its value as written, once the chunk holds two samples or
/// more; `None` for shorter chunks (identical in both encodings).
fn delta_field(b: &[u8]) -> Result<Option<(usize, usize, u64)>, ChunkError> {
    let Some(count) = b.get(..HEADER_LEN) else { return Err(ChunkError::Corrupt("XOR chunk shorter than its header")) };
    let count = u16::from_be_bytes([count[0], count[1]]);
    if count < 2 {
        return Ok(None);
    }
    let mut pos = HEADER_LEN;
    get_uvarint(b, &mut pos).ok_or(ChunkError::Corrupt("XOR chunk: bad first timestamp"))?;
    pos += 8; // the first value's raw bits
    let start = pos;
    let raw = get_uvarint(b, &mut pos).ok_or(ChunkError::Corrupt("XOR chunk: bad second timestamp delta"))?;
    Ok(Some((start, pos, raw)))
}

/// Splices `b` with the delta field at `start..end` replaced by `write`.
fn splice(b: &[u8], start: usize, end: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 10);
    out.extend_from_slice(&b[..start]);
    write(&mut out);
    out.extend_from_slice(&b[end..]);
    out
}

/// Our XOR chunk `b` in Prometheus' XOR encoding. Only the header fields up
/// to the second timestamp delta are checked; a corrupt bit stream after
/// them is copied as it is (and fails whoever decodes it).
pub fn to_prometheus(b: &[u8]) -> Result<Vec<u8>, ChunkError> {
    match delta_field(b)? {
        None => Ok(b.to_vec()),
        Some((start, end, raw)) => {
            let delta = unzigzag(raw);
            Ok(splice(b, start, end, |out| put_uvarint(out, delta as u64)))
        }
    }
}

/// A Prometheus XOR chunk `b` in our XOR encoding, readable by
/// [`XorIterator`](super::XorIterator). Checked as [`to_prometheus`] checks.
pub fn from_prometheus(b: &[u8]) -> Result<Vec<u8>, ChunkError> {
    match delta_field(b)? {
        None => Ok(b.to_vec()),
        Some((start, end, raw)) => Ok(splice(b, start, end, |out| put_varint(out, raw as i64))),
    }
}

/// Bytes [`to_prometheus`] would return for `b` (for sizing a response
/// before writing it).
pub fn prometheus_len(b: &[u8]) -> Result<usize, ChunkError> {
    Ok(match delta_field(b)? {
        None => b.len(),
        Some((start, end, raw)) => {
            let delta = unzigzag(raw) as u64;
            b.len() - (end - start) + crate::varint::uvarint_len(delta)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunkenc::{XorAppender, XorIterator};
    use crate::sample::SampleIterator;
    use proptest::prelude::*;

    /// Packs a string of '0'/'1' (spaces ignored) into bytes, zero-padded.
    fn bits(s: &str) -> Vec<u8> {
        let bits: Vec<u8> = s.bytes().filter(|b| *b != b' ').map(|b| b - b'0').collect();
        bits.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |acc, (i, b)| acc | (b << (7 - i)))).collect()
    }

    /// What Prometheus' `xorAppender` writes for (1000, 1.0), (2000, 2.0),
    /// (3000, 3.0), worked out by hand from its Go source.
    fn prometheus_golden() -> Vec<u8> {
        let mut b = vec![0x00, 0x03]; // three samples
        b.extend([0xD0, 0x0F]); // varint(1000): zig-zag 2000
        b.extend(1.0f64.to_bits().to_be_bytes());
        b.extend([0xE8, 0x07]); // uvarint(1000)
                                // Sample 2: value 2.0 ^ 1.0 = 0x7FF0…: `1` `1`, leading 1 in 5 bits,
                                // 11 significant bits in 6, the bits 0x7FF. Sample 3: dod `0`;
                                // 3.0 ^ 2.0 = 0x0008…: leading 12, trailing 51 < 52: new window
                                // `1` `1`, 01100, 000001, `1`.
        b.extend(bits("11 00001 001011 11111111111 0 11 01100 000001 1"));
        b
    }

    #[test]
    fn reads_what_prometheus_writes() {
        let ours = from_prometheus(&prometheus_golden()).unwrap();
        let mut it = XorIterator::new(&ours[..]);
        let mut got = Vec::new();
        while it.next() {
            let s = it.at();
            got.push((s.t, s.v));
        }
        assert_eq!(got, vec![(1000, 1.0), (2000, 2.0), (3000, 3.0)]);
    }

    #[test]
    fn writes_what_prometheus_writes() {
        let mut app = XorAppender::new();
        for (t, v) in [(1000, 1.0), (2000, 2.0), (3000, 3.0)] {
            app.append(t, v);
        }
        let prom = to_prometheus(app.bytes()).unwrap();
        assert_eq!(prom, prometheus_golden());
        assert_eq!(prometheus_len(app.bytes()).unwrap(), prom.len());
    }

    #[test]
    fn short_and_corrupt_chunks() {
        assert!(to_prometheus(&[]).is_err());
        assert!(from_prometheus(&[0]).is_err());
        assert_eq!(to_prometheus(&[0, 0]).unwrap(), vec![0, 0]);
        // Two samples declared, the first timestamp cut short.
        assert!(from_prometheus(&[0, 2, 0x80]).is_err());
        // Two samples declared, the delta missing.
        let mut b = vec![0, 2, 0x02];
        b.extend([0u8; 8]);
        assert!(to_prometheus(&b).is_err());
    }

    proptest! {
        #[test]
        fn translation_round_trips(first in any::<i64>(), deltas in proptest::collection::vec(-1_000_000i64..1_000_000, 0..200),
                                   values in proptest::collection::vec(any::<f64>(), 201)) {
            let mut app = XorAppender::new();
            let mut t = first;
            app.append(t, values[0]);
            for (i, d) in deltas.iter().enumerate() {
                t = t.wrapping_add(*d);
                app.append(t, values[i + 1]);
            }
            let prom = to_prometheus(app.bytes()).unwrap();
            prop_assert_eq!(prom.len(), prometheus_len(app.bytes()).unwrap());
            let back = from_prometheus(&prom).unwrap();
            prop_assert_eq!(&back[..], app.bytes());
            if let Some(d) = deltas.first() {
                // The second delta as Prometheus writes it: uvarint of the
                // two's complement, never zig-zag.
                let (start, _, raw) = delta_field(&prom).unwrap().unwrap();
                prop_assert!(start > 0);
                prop_assert_eq!(raw, *d as u64);
            }
        }
    }
}

//! The sealed encoding for block data. (Being written: see the sealed-codec
//! work item.) Until then it stores samples uncompressed.

use crate::error::ChunkError;
use crate::sample::Sample;

/// Appends the lossless encoding of `samples` (sorted by strictly increasing
/// timestamp) to `out`.
pub fn encode(samples: &[Sample], out: &mut Vec<u8>) {
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.t.to_le_bytes());
        out.extend_from_slice(&s.v.to_bits().to_le_bytes());
    }
}

/// Decodes a sealed chunk, appending its samples to `out`. Never panics.
pub fn decode(bytes: &[u8], out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    let n = bytes.get(..4).ok_or(ChunkError::Corrupt("sealed chunk too short"))?;
    let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
    let body = &bytes[4..];
    if body.len() != n.checked_mul(16).ok_or(ChunkError::Corrupt("sealed count overflow"))? {
        return Err(ChunkError::Corrupt("sealed chunk length mismatch"));
    }
    for c in body.chunks_exact(16) {
        let t = i64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
        let v = f64::from_bits(u64::from_le_bytes(c[8..].try_into().expect("8 bytes")));
        out.push(Sample { t, v });
    }
    Ok(())
}

//! Reader of a Prometheus block's `tombstones` file: deleted time ranges
//! per series.
//!
//! Layout: magic `0x0130BA30` (4 bytes, big-endian), format version 1
//! (1 byte), then entries of series id (uvarint), mint (varint), maxt
//! (varint), then a CRC32-Castagnoli (4 bytes) over the entries (the bytes
//! after the version). Intervals are closed: `[mint, maxt]`. A block
//! without the file has no deletions.

use std::collections::HashMap;

use super::decbuf::{crc32c, Decbuf};
use super::format::FormatError;

/// First four bytes of a tombstones file.
pub const MAGIC_TOMBSTONES: u32 = 0x0130_BA30;

/// Deleted intervals by series id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_series: HashMap<u64, Vec<(i64, i64)>>,
}

impl Tombstones {
    /// Parses a whole tombstones file.
    pub fn parse(b: &[u8]) -> Result<Tombstones, FormatError> {
        const W: &str = "tombstones";
        if b.len() < 4 + 1 + 4 {
            return Err(FormatError::Truncated(W));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let mut d = Decbuf::new(body);
        let magic = d.be32().ok_or(FormatError::Truncated(W))?;
        if magic != MAGIC_TOMBSTONES {
            return Err(FormatError::BadMagic { got: magic, want: MAGIC_TOMBSTONES });
        }
        let v = d.byte().ok_or(FormatError::Truncated(W))?;
        if v != 1 {
            return Err(FormatError::UnsupportedVersion { what: W, got: v });
        }
        if crc32c(d.rest()) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(FormatError::Checksum(W));
        }
        let mut t = Tombstones::default();
        while !d.is_empty() {
            let id = d.uvarint().ok_or(FormatError::Truncated("tombstone"))?;
            let mint = d.varint().ok_or(FormatError::Truncated("tombstone"))?;
            let maxt = d.varint().ok_or(FormatError::Truncated("tombstone"))?;
            t.add(id, mint, maxt);
        }
        Ok(t)
    }

    /// Adds the closed interval `[mint, maxt]` for series `id`.
    pub fn add(&mut self, id: u64, mint: i64, maxt: i64) {
        if mint <= maxt {
            self.by_series.entry(id).or_default().push((mint, maxt));
        }
    }

    /// Whether nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Number of series with deletions.
    pub fn num_series(&self) -> usize {
        self.by_series.len()
    }

    /// Whether the sample of series `id` at `t` is deleted.
    pub fn is_deleted(&self, id: u64, t: i64) -> bool {
        self.by_series.get(&id).is_some_and(|ivs| ivs.iter().any(|&(a, b)| a <= t && t <= b))
    }

    /// The intervals of series `id`.
    pub fn intervals(&self, id: u64) -> &[(i64, i64)] {
        self.by_series.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(u64, i64, i64)]) -> Vec<u8> {
        fn uv(out: &mut Vec<u8>, mut n: u64) {
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        }
        let mut body = Vec::new();
        for &(id, a, b) in entries {
            uv(&mut body, id);
            uv(&mut body, ((a << 1) ^ (a >> 63)) as u64);
            uv(&mut body, ((b << 1) ^ (b >> 63)) as u64);
        }
        let mut out = MAGIC_TOMBSTONES.to_be_bytes().to_vec();
        out.push(1);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32c(&body).to_be_bytes());
        out
    }

    #[test]
    fn parses_intervals_and_checks_crc() {
        let b = file(&[(3, 10, 20), (3, 40, 40), (7, -5, i64::MAX)]);
        let t = Tombstones::parse(&b).unwrap();
        assert_eq!(t.num_series(), 2);
        assert!(t.is_deleted(3, 10) && t.is_deleted(3, 20) && t.is_deleted(3, 40));
        assert!(!t.is_deleted(3, 21) && !t.is_deleted(3, 9) && !t.is_deleted(4, 15));
        assert!(t.is_deleted(7, i64::MAX));
        let mut bad = b.clone();
        bad[6] ^= 1;
        assert_eq!(Tombstones::parse(&bad), Err(FormatError::Checksum("tombstones")));
        assert!(Tombstones::parse(&file(&[])).unwrap().is_empty());
        assert!(Tombstones::parse(&b[..6]).is_err());
    }
}

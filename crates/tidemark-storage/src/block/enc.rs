//! Bounds-checked little-endian and varint decoding over byte slices, and the
//! matching encoders. Every read returns `Err` instead of panicking, so the
//! block reader can take arbitrary bytes.

/// Why decoding failed; turned into `BlockError::Corrupt` by the caller.
pub(crate) type DecResult<T> = Result<T, String>;

/// A cursor over a byte slice.
#[derive(Clone, Copy)]
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize) -> DecResult<Dec<'a>> {
        if pos > buf.len() {
            return Err(format!("offset {pos} beyond {} bytes", buf.len()));
        }
        Ok(Dec { buf, pos })
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> DecResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            format!("need {n} bytes at offset {} but only {} remain", self.pos, self.buf.len() - self.pos)
        })?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    pub(crate) fn u8(&mut self) -> DecResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> DecResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> DecResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn uvarint(&mut self) -> DecResult<u64> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err("uvarint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err("uvarint longer than 10 bytes".into());
            }
        }
    }

    pub(crate) fn varint(&mut self) -> DecResult<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A uvarint that must fit a `u32` (symbol ids, counts).
    pub(crate) fn uvarint32(&mut self) -> DecResult<u32> {
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| format!("value {v} does not fit 32 bits"))
    }
}

/// Reads a little-endian `u32` at `pos` of `buf`, bounds-checked.
pub(crate) fn u32_at(buf: &[u8], pos: usize) -> DecResult<u32> {
    Dec::at(buf, pos)?.u32()
}

/// Reads a little-endian `u64` at `pos` of `buf`, bounds-checked.
pub(crate) fn u64_at(buf: &[u8], pos: usize) -> DecResult<u64> {
    Dec::at(buf, pos)?.u64()
}

pub(crate) use crate::varint::{put_uvarint, put_varint};

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_extremes() {
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut d = Dec::new(&b);
            assert_eq!(d.varint().unwrap(), v);
            assert_eq!(d.remaining(), 0);
        }
        let mut b = Vec::new();
        put_uvarint(&mut b, u64::MAX);
        assert_eq!(Dec::new(&b).uvarint().unwrap(), u64::MAX);
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        assert!(Dec::new(&[0xff; 11]).uvarint().is_err());
        assert!(Dec::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).uvarint().is_err());
        assert!(Dec::new(&[0x80]).uvarint().is_err());
        assert!(Dec::new(&[1, 2, 3]).u32().is_err());
        assert!(u64_at(&[0; 8], 1).is_err());
        assert!(Dec::at(&[0; 2], 3).is_err());
    }
}

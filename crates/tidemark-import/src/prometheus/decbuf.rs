//! A bounds-checked reader over Prometheus' on-disk integers: big-endian
//! fixed widths and Go's varints (LEB128 unsigned, zig-zag signed). Every
//! read returns `None` past the end or on an overlong varint, never panics.

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Decbuf<'a> {
    b: &'a [u8],
}

impl<'a> Decbuf<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Decbuf<'a> {
        Decbuf { b }
    }

    /// Bytes left.
    pub(crate) fn len(&self) -> usize {
        self.b.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// The bytes left, unread.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.b
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }

    pub(crate) fn byte(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    pub(crate) fn be32(&mut self) -> Option<u32> {
        self.bytes(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn be64(&mut self) -> Option<u64> {
        self.bytes(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_be_bytes(a)
        })
    }

    pub(crate) fn be64_f64(&mut self) -> Option<f64> {
        self.be64().map(f64::from_bits)
    }

    /// Go's `binary.Uvarint`: at most 10 bytes, the tenth at most 1.
    pub(crate) fn uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        for (i, &byte) in self.b.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return None;
            }
            x |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.b = &self.b[i + 1..];
                return Some(x);
            }
        }
        None
    }

    /// Go's `binary.Varint` (zig-zag).
    pub(crate) fn varint(&mut self) -> Option<i64> {
        self.uvarint().map(|u| ((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A uvarint that must fit in 32 bits.
    pub(crate) fn uvarint32(&mut self) -> Option<u32> {
        self.uvarint().and_then(|v| u32::try_from(v).ok())
    }

    /// A uvarint length followed by that many bytes.
    pub(crate) fn uvarint_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.uvarint()?;
        self.bytes(usize::try_from(n).ok()?)
    }
}

/// CRC32-Castagnoli, the checksum of every Prometheus section and record.
pub(crate) fn crc32c(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_as_go_writes_them() {
        // Go: binary.PutUvarint(300) = ac 02; PutVarint(-3) = 05; PutVarint(3) = 06.
        let mut d = Decbuf::new(&[0xac, 0x02, 0x05, 0x06]);
        assert_eq!(d.uvarint(), Some(300));
        assert_eq!(d.varint(), Some(-3));
        assert_eq!(d.varint(), Some(3));
        assert!(d.is_empty());
        assert_eq!(d.uvarint(), None);
        // Overlong and truncated varints are errors, not panics.
        assert_eq!(Decbuf::new(&[0xff; 11]).uvarint(), None);
        assert_eq!(Decbuf::new(&[0x80]).uvarint(), None);
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(Decbuf::new(&max).uvarint(), Some(u64::MAX));
    }

    #[test]
    fn fixed_widths_are_big_endian_and_bounded() {
        let mut d = Decbuf::new(&[0, 0, 1, 0, 7]);
        assert_eq!(d.be32(), Some(256));
        assert_eq!(d.be32(), None);
        assert_eq!(d.byte(), Some(7));
    }

    #[test]
    fn crc_is_castagnoli() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}

//! Bit-level writer and reader used by the Gorilla codec.
//!
//! Bits are written most-significant first into bytes, so the stream is
//! byte-order independent. The reader keeps a left-aligned 64-bit window and
//! refills it a byte at a time; reading past the end returns `None` instead
//! of panicking, which is what makes decoding arbitrary bytes safe.

/// Appends bits to a byte buffer.
///
/// The buffer is a boxed slice plus a used length rather than a `Vec`, so
/// that an owner keeping many writers' state at rest (the head keeps one
/// XOR appender per series) can store it in 16 + 4 + 1 bytes beside its own
/// small fields: see [`BitWriter::from_parts`] and [`BitWriter::into_parts`].
/// Bytes past the used length are always zero.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    buf: Box<[u8]>,
    /// Used bytes of `buf`.
    len: usize,
    /// Unused low bits in the last used byte (0..=7; 0 means full).
    free: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> BitWriter {
        BitWriter::default()
    }

    /// A writer that continues after `prefix` (whose last byte is full).
    pub fn with_bytes(prefix: Vec<u8>) -> BitWriter {
        let len = prefix.len();
        BitWriter { buf: prefix.into_boxed_slice(), len, free: 0 }
    }

    /// A writer resuming from the parts [`BitWriter::into_parts`] gave.
    /// Inconsistent parts (a length past the buffer, `free` over 7 or
    /// non-zero with nothing written) are clamped, never trusted.
    #[inline]
    pub fn from_parts(buf: Box<[u8]>, len: u32, free: u8) -> BitWriter {
        let len = (len as usize).min(buf.len());
        let free = if len == 0 { 0 } else { u32::from(free.min(7)) };
        BitWriter { buf, len, free }
    }

    /// The writer's state as (buffer including spare room, used length,
    /// unused bits of the last used byte). The length fits a `u32`: a
    /// writer longer than 4 GiB panics here.
    #[inline]
    pub fn into_parts(self) -> (Box<[u8]>, u32, u8) {
        let len = u32::try_from(self.len).expect("bit stream over 4 GiB");
        (self.buf, len, self.free as u8)
    }

    /// Writes one bit.
    #[inline]
    pub fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.push_byte(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            self.buf[self.len - 1] |= 1 << self.free;
        }
    }

    /// Writes the `n` low bits of `v`, most significant first (`n <= 64`).
    #[inline]
    pub fn write_bits(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        // Left-align the payload so the next bit to write is bit 63.
        let mut v = v << (64 - n);
        if self.buf.len() - self.len >= 8 {
            // Room for 8 more bytes: OR the payload into the 8 bytes from
            // the partly used one (or the next one) with one load and
            // store; the bytes past `len` are zero, and so are the payload's
            // bits past `n`, so they stay zero.
            let (start, used) = if self.free == 0 { (self.len, 0) } else { (self.len - 1, 8 - self.free) };
            let word = &mut self.buf[start..start + 8];
            let cur = u64::from_be_bytes(<[u8; 8]>::try_from(&*word).expect("8 bytes"));
            word.copy_from_slice(&(cur | (v >> used)).to_be_bytes());
            if used + n > 64 {
                // The last `used` bits spill into a ninth byte (`start + 8`
                // is below `len + 8`, so in the buffer).
                self.buf[start + 8] |= (v << (64 - used) >> 56) as u8;
            }
            let end = used + n;
            self.len = start + end.div_ceil(8) as usize;
            self.free = (8 - end % 8) % 8;
            return;
        }
        let mut n = n;
        if self.free > 0 {
            let take = self.free.min(n);
            let bits = (v >> (64 - take)) as u8;
            self.buf[self.len - 1] |= bits << (self.free - take);
            self.free -= take;
            n -= take;
            v = if take == 64 { 0 } else { v << take };
        }
        while n >= 8 {
            self.push_byte((v >> 56) as u8);
            v <<= 8;
            n -= 8;
        }
        if n > 0 {
            self.push_byte((v >> 56) as u8);
            self.free = 8 - n;
        }
    }

    /// Appends one byte, growing the buffer by an eighth of its length (at
    /// least 32 bytes) when it is full instead of doubling it: the head
    /// keeps one writer per series open, and a doubled buffer is on average
    /// a quarter empty, an eighth-step one ~1/16 (~26 bytes at 420).
    #[inline(always)]
    fn push_byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.grow((self.len / 8).max(32));
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// Grows the buffer by exactly `additional` zeroed bytes.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(additional);
        v.resize(v.len() + additional, 0);
        self.buf = v.into_boxed_slice();
    }

    /// The bytes written so far (the last byte may be partly used).
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Mutable access to the written bytes (for patching headers).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Consumes the writer, returning its bytes (spare room dropped).
    pub fn into_bytes(self) -> Vec<u8> {
        let mut v = self.buf.into_vec();
        v.truncate(self.len);
        v
    }

    /// Makes room for at least `additional` more bytes, growing the
    /// buffer by exactly what is missing when it must grow (no doubling).
    #[inline]
    pub fn reserve_exact(&mut self, additional: usize) {
        let spare = self.spare();
        if spare < additional {
            self.grow(additional - spare);
        }
    }

    /// Bytes that fit before the buffer must grow.
    #[inline]
    pub fn spare(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Heap bytes reserved by the writer.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Releases spare capacity.
    pub fn shrink_to_fit(&mut self) {
        if self.spare() > 0 {
            let mut v = std::mem::take(&mut self.buf).into_vec();
            v.truncate(self.len);
            self.buf = v.into_boxed_slice();
        }
    }
}

/// Reads bits from a byte slice held by `B`.
#[derive(Debug, Clone)]
pub struct BitReader<B> {
    data: B,
    /// Next byte of `data` to load into `window`.
    pos: usize,
    /// Left-aligned unread bits.
    window: u64,
    /// Number of valid bits in `window`.
    valid: u32,
}

/// A [`BitReader`]'s position: the next byte to load and the unread bits
/// already loaded.
#[derive(Debug, Clone, Copy)]
pub struct BitPos {
    pos: usize,
    window: u64,
    valid: u32,
}

impl<B: AsRef<[u8]>> BitReader<B> {
    /// Bits [`BitReader::fill`] loads at least, unless the data ends first:
    /// a refill takes whole bytes, so below 57 bits it can always add one.
    pub const FILLED: u32 = 57;

    /// A reader starting at byte `start` of `data`.
    pub fn new(data: B, start: usize) -> BitReader<B> {
        BitReader { data, pos: start, window: 0, valid: 0 }
    }

    #[inline(always)]
    fn refill(&mut self) {
        let data = self.data.as_ref();
        if self.pos + 8 <= data.len() {
            // Fast path: one unaligned 8-byte load, keeping the whole bytes
            // that fit below the unread bits.
            let bytes = (64 - self.valid) / 8;
            if bytes == 0 {
                return;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&data[self.pos..self.pos + 8]);
            let chunk = u64::from_be_bytes(b);
            let add_bits = bytes * 8;
            // Keep only the first `add_bits` bits of the chunk.
            let chunk = if add_bits == 64 { chunk } else { chunk & !(u64::MAX >> add_bits) };
            self.window |= chunk >> self.valid;
            self.valid += add_bits;
            self.pos += bytes as usize;
            return;
        }
        self.refill_tail();
    }

    /// Refills byte by byte near the end of the data (out of line: a chunk
    /// reaches it only for its last 8 bytes).
    #[cold]
    #[inline(never)]
    fn refill_tail(&mut self) {
        let data = self.data.as_ref();
        let rest = data.get(self.pos..).unwrap_or(&[]);
        // As many whole bytes as fit below the unread bits, as the fast
        // path takes, but no more than are left; loaded in one step.
        let bytes = ((64 - self.valid) / 8).min(rest.len() as u32);
        if bytes == 0 {
            return;
        }
        let mut b = [0u8; 8];
        b[..bytes as usize].copy_from_slice(&rest[..bytes as usize]);
        // `bytes >= 1`, so `valid <= 56`: the shift is in range.
        self.window |= u64::from_be_bytes(b) >> self.valid;
        self.valid += bytes * 8;
        self.pos += bytes as usize;
    }

    /// A reader over the same bytes at the same position that borrows them,
    /// so that a decoding loop can keep it in locals (registers) and hand its
    /// position back with [`BitReader::resume_from`].
    #[inline(always)]
    pub fn borrowed(&self) -> BitReader<&[u8]> {
        BitReader { data: self.data.as_ref(), pos: self.pos, window: self.window, valid: self.valid }
    }

    /// Where this reader is, to hand back with [`BitReader::resume_at`].
    #[inline(always)]
    pub fn position(&self) -> BitPos {
        BitPos { pos: self.pos, window: self.window, valid: self.valid }
    }

    /// Continues from `at`, the [`BitReader::position`] of a reader over the
    /// same bytes (such as one from [`BitReader::borrowed`]).
    #[inline(always)]
    pub fn resume_at(&mut self, at: BitPos) {
        debug_assert!(at.pos <= self.data.as_ref().len());
        self.pos = at.pos;
        self.window = at.window;
        self.valid = at.valid;
    }

    /// The window loaded with at least [`BitReader::FILLED`] bits where the
    /// data still holds them, and how many of its bits are real (the ones
    /// past them are zero): for a decoder that reads several fields out of
    /// one window and consumes them with [`BitReader::skip_bits`].
    #[inline(always)]
    pub fn fill(&mut self) -> (u64, u32) {
        if self.valid < Self::FILLED {
            self.refill();
        }
        (self.window, self.valid)
    }

    /// The next `n <= 32` bits without consuming them, zero-padded past the
    /// end of the data. Returns how many of them are real.
    #[inline(always)]
    pub fn peek_bits(&mut self, n: u32) -> (u64, u32) {
        debug_assert!((1..=32).contains(&n));
        if self.valid < n {
            self.refill();
        }
        (self.window >> (64 - n), self.valid.min(n))
    }

    /// Consumes `n` bits previously seen with [`BitReader::peek_bits`].
    #[inline(always)]
    pub fn skip_bits(&mut self, n: u32) {
        debug_assert!(n <= self.valid);
        self.window = if n >= 64 { 0 } else { self.window << n };
        self.valid -= n;
    }

    /// Reads one bit, or `None` at the end of the data.
    #[inline]
    pub fn read_bit(&mut self) -> Option<bool> {
        if self.valid == 0 {
            self.refill();
            if self.valid == 0 {
                return None;
            }
        }
        let bit = self.window >> 63 == 1;
        self.window <<= 1;
        self.valid -= 1;
        Some(bit)
    }

    /// Reads `n <= 64` bits as an unsigned integer, or `None` past the end.
    #[inline(always)]
    pub fn read_bits(&mut self, n: u32) -> Option<u64> {
        debug_assert!(n <= 64);
        if n == 0 {
            return Some(0);
        }
        if self.valid < n {
            self.refill();
            if self.valid < n {
                return self.read_bits_split(n);
            }
        }
        let v = self.window >> (64 - n);
        self.window = if n == 64 { 0 } else { self.window << n };
        self.valid -= n;
        Some(v)
    }

    /// A read of `n` bits that the window cannot hold after a refill: near
    /// the end of the data, or a read of more than 32 bits after a refill
    /// that kept a partial byte out. A window holds at most 64 bits, so such
    /// a read takes two steps.
    #[cold]
    #[inline(never)]
    fn read_bits_split(&mut self, n: u32) -> Option<u64> {
        if n > 32 && self.pos < self.data.as_ref().len() {
            let hi = self.read_bits(32)?;
            let lo = self.read_bits(n - 32)?;
            return Some((hi << (n - 32)) | lo);
        }
        None
    }

    /// Reads an unsigned LEB128 varint aligned on the bit stream.
    pub fn read_uvarint(&mut self) -> Option<u64> {
        // Fast path: a varint of up to 8 bytes whose bytes are all in the
        // window. The window's bits past `valid` are zero, so only a stop
        // byte (top bit clear) among the valid bytes counts.
        if self.valid < 64 {
            self.refill();
        }
        let whole = self.valid / 8;
        let stops = !self.window & 0x8080_8080_8080_8080;
        let last = stops.leading_zeros() / 8;
        if last < whole {
            let mut x = 0u64;
            for i in 0..=last {
                x |= ((self.window >> (56 - 8 * i)) & 0x7f) << (7 * i);
            }
            self.skip_bits(8 * (last + 1));
            return Some(x);
        }
        self.read_uvarint_slow()
    }

    /// [`BitReader::read_uvarint`] byte by byte: a varint longer than 8
    /// bytes, or one that runs to or past the end of the data.
    #[cold]
    #[inline(never)]
    fn read_uvarint_slow(&mut self) -> Option<u64> {
        let mut x: u64 = 0;
        let mut shift = 0u32;
        for i in 0..10 {
            let b = self.read_bits(8)?;
            if i == 9 && b > 1 {
                return None;
            }
            x |= (b & 0x7f) << shift;
            if b < 0x80 {
                return Some(x);
            }
            shift += 7;
        }
        None
    }

    /// Reads a zig-zag encoded signed varint.
    pub fn read_varint(&mut self) -> Option<i64> {
        self.read_uvarint().map(crate::varint::unzigzag)
    }
}

impl BitWriter {
    /// Writes an unsigned LEB128 varint on the bit stream.
    pub fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_bits((v & 0x7f) | 0x80, 8);
            v >>= 7;
        }
        self.write_bits(v, 8);
    }

    /// Writes a zig-zag encoded signed varint.
    pub fn write_varint(&mut self, v: i64) {
        self.write_uvarint(crate::varint::zigzag(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items {
                w.write_bits(v, n);
            }
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes[..], 0);
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n), Some(v & mask));
            }
        }

        #[test]
        fn varints_round_trip(vs in proptest::collection::vec(any::<i64>(), 0..50), pad in 0u32..8) {
            let mut w = BitWriter::new();
            w.write_bits(0, pad);
            for &v in &vs { w.write_varint(v); }
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes[..], 0);
            r.read_bits(pad);
            for &v in &vs { prop_assert_eq!(r.read_varint(), Some(v)); }
        }
    }

    proptest! {
        /// Writing with room to spare (the 8-byte path) gives the same
        /// bytes as writing into a full buffer (the byte-at-a-time path),
        /// and the spare room stays zero.
        #[test]
        fn spare_room_does_not_change_the_bytes(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..100), room in 0usize..64) {
            let mut tight = BitWriter::new();
            let mut roomy = BitWriter::new();
            for &(v, n) in &items {
                tight.write_bits(v, n);
                roomy.reserve_exact(room);
                roomy.write_bits(v, n);
                prop_assert_eq!(tight.bytes(), roomy.bytes());
                prop_assert_eq!(tight.free, roomy.free);
                prop_assert!(roomy.buf[roomy.len..].iter().all(|&b| b == 0));
            }
        }
    }

    #[test]
    fn varints_read_at_every_offset_and_at_the_end() {
        // Every length (1 to 10 bytes), after 0..=13 pad bits, with nothing
        // after it (the byte-by-byte tail) and with more data after it.
        let values = [0u64, 1, 127, 128, 16_383, 16_384, 1 << 35, 1 << 49, 1 << 56, 1 << 63, u64::MAX];
        for &v in &values {
            for pad in 0u32..=13 {
                for trailer in [0u32, 8, 64] {
                    let mut w = BitWriter::new();
                    w.write_bits(0, pad);
                    w.write_uvarint(v);
                    w.write_bits(u64::MAX, trailer);
                    let bytes = w.into_bytes();
                    let mut r = BitReader::new(&bytes[..], 0);
                    r.read_bits(pad);
                    assert_eq!(r.read_uvarint(), Some(v), "v {v} pad {pad} trailer {trailer}");
                    if trailer > 0 {
                        assert_eq!(r.read_bits(trailer), Some(u64::MAX >> (64 - trailer)));
                    }
                }
            }
        }
        // A varint cut short, or with its 10th byte too large, is refused.
        let mut w = BitWriter::new();
        w.write_uvarint(1 << 40);
        let bytes = w.into_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(BitReader::new(&bytes[..cut], 0).read_uvarint(), None, "cut {cut}");
        }
        let overlong = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(BitReader::new(&overlong[..], 0).read_uvarint(), None);
    }

    #[test]
    fn reading_past_the_end_is_none() {
        let mut r = BitReader::new(&[0xffu8][..], 0);
        assert_eq!(r.read_bits(4), Some(0xf));
        assert_eq!(r.read_bits(8), None);
        let mut r = BitReader::new(&[][..], 0);
        assert_eq!(r.read_bit(), None);
    }
}

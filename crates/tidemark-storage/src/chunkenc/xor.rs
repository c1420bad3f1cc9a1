//! The Gorilla codec: delta-of-delta timestamps and XOR-encoded floats.
//!
//! Layout (see `docs/format/chunks.md`): a 2-byte big-endian sample count,
//! then a bit stream. The first sample stores its timestamp as a zig-zag
//! varint and its value as 64 raw bits; the second stores the timestamp delta
//! as a zig-zag varint; later samples store the delta of deltas in one of
//! five variable-width buckets. Values are XORed with the previous value and
//! only the meaningful bits are written. All timestamp arithmetic wraps, so
//! any sequence of `i64` round-trips, and values round-trip bit-exactly.

use super::bstream::{BitReader, BitWriter};
use crate::error::ChunkError;
use crate::sample::{Sample, SampleIterator};

/// Bytes before the bit stream: the big-endian sample count.
pub const HEADER_LEN: usize = 2;

/// Most samples one XOR chunk can hold (the count is a `u16`).
pub const MAX_SAMPLES: usize = u16::MAX as usize;

/// (prefix bits, prefix length, payload bits) of the delta-of-delta buckets
/// after the zero bucket (`0`).
const DOD_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// Appends samples to an XOR chunk. Holds the encoder state in 48 bytes
/// besides the bytes, so the head keeps one per open chunk.
///
/// The bit writer's state is kept as its parts (buffer, used length, free
/// bits) beside the appender's own small fields rather than as a nested
/// [`BitWriter`], whose padding could not be shared: 48 bytes instead of 64.
/// The sample count is not kept either: it is the chunk's 2-byte header.
#[derive(Debug, Clone)]
pub struct XorAppender {
    /// The chunk's bytes (header included) and spare room, all zero past
    /// `len`.
    buf: Box<[u8]>,
    /// Used bytes of `buf`.
    len: u32,
    /// Unused low bits in the last used byte.
    free: u8,
    leading: u8,
    trailing: u8,
    t: i64,
    t_delta: i64,
    v: u64,
}

impl Default for XorAppender {
    fn default() -> Self {
        XorAppender::new()
    }
}

impl XorAppender {
    /// A new, empty chunk.
    pub fn new() -> XorAppender {
        XorAppender {
            buf: vec![0; HEADER_LEN].into_boxed_slice(),
            len: HEADER_LEN as u32,
            free: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0xff,
            trailing: 0,
        }
    }

    /// The sample count, read from the header.
    #[inline]
    fn num(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }

    /// Number of samples appended.
    pub fn num_samples(&self) -> usize {
        usize::from(self.num())
    }

    /// Whether the chunk cannot take another sample.
    pub fn is_full(&self) -> bool {
        self.num() == u16::MAX
    }

    /// Timestamp of the first sample, decoded from the chunk's bytes (the
    /// head derives its open chunks' start from it instead of keeping a
    /// copy); `None` when empty.
    pub fn first_t(&self) -> Option<i64> {
        if self.num() == 0 {
            return None;
        }
        BitReader::new(self.bytes(), HEADER_LEN).read_varint()
    }

    /// Timestamp of the last appended sample (meaningless when empty).
    pub fn last_t(&self) -> i64 {
        self.t
    }

    /// Bits of the last appended value (meaningless when empty).
    pub fn last_v_bits(&self) -> u64 {
        self.v
    }

    /// Appends a sample. The caller keeps timestamps increasing (the codec
    /// itself round-trips any order). Panics if the chunk is full; check
    /// [`XorAppender::is_full`].
    #[inline]
    pub fn append(&mut self, t: i64, v: f64) {
        let num = self.num();
        assert!(num != u16::MAX, "XOR chunk is full");
        // The writer grows its buffer by an eighth when a byte does not fit
        // (see `BitWriter::push_byte`): no spare room is reserved ahead.
        let mut w = BitWriter::from_parts(std::mem::take(&mut self.buf), self.len, self.free);
        let vb = v.to_bits();
        match num {
            0 => {
                w.write_varint(t);
                w.write_bits(vb, 64);
            }
            1 => {
                let d = t.wrapping_sub(self.t);
                w.write_varint(d);
                self.t_delta = d;
                self.write_value(&mut w, vb);
            }
            _ => {
                let d = t.wrapping_sub(self.t);
                let dod = d.wrapping_sub(self.t_delta);
                write_dod(&mut w, dod);
                self.t_delta = d;
                self.write_value(&mut w, vb);
            }
        }
        self.t = t;
        self.v = vb;
        w.bytes_mut()[..HEADER_LEN].copy_from_slice(&(num + 1).to_be_bytes());
        (self.buf, self.len, self.free) = w.into_parts();
    }

    #[inline]
    fn write_value(&mut self, w: &mut BitWriter, vb: u64) {
        let delta = vb ^ self.v;
        if delta == 0 {
            w.write_bit(false);
            return;
        }
        // Leading zeros are stored in 5 bits, so clamp to 31.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            // Fits the previous window: reuse it (control bits `10`, then
            // the window's bits; one write when they fit a word).
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            let bits = delta >> self.trailing;
            if sig <= 62 {
                w.write_bits((0b10 << sig) | bits, sig + 2);
            } else {
                w.write_bits(0b10, 2);
                w.write_bits(bits, sig);
            }
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // Control bits `11`, leading zeros in 5 bits, and the significant
        // bit count in 6 (64 is written as 0), in one write.
        w.write_bits((0b11 << 11) | (u64::from(leading) << 6) | (u64::from(sig) & 0x3f), 13);
        w.write_bits(delta >> trailing, sig);
    }

    /// The encoded chunk (header included). Valid at any time.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Heap bytes held (including spare capacity).
    pub fn heap_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Releases spare capacity (call when the chunk is closed).
    pub fn into_bytes(self) -> Vec<u8> {
        let mut w = BitWriter::from_parts(self.buf, self.len, self.free);
        w.shrink_to_fit();
        w.into_bytes()
    }
}

/// Writes a delta of deltas in its bucket.
#[inline]
fn write_dod(w: &mut BitWriter, dod: i64) {
    if dod == 0 {
        w.write_bit(false);
        return;
    }
    for (prefix, plen, bits) in DOD_BUCKETS {
        if fits(dod, bits) {
            // The prefix and the payload's low `bits` bits in one write.
            let payload = dod as u64 & ((1u64 << bits) - 1);
            w.write_bits((prefix << bits) | payload, plen + bits);
            return;
        }
    }
    w.write_bits(0b1111, 4);
    w.write_bits(dod as u64, 64);
}

/// Whether `x` fits the signed `bits`-wide bucket (Prometheus' `bitRange`).
#[inline]
fn fits(x: i64, bits: u32) -> bool {
    let half = 1i64 << (bits - 1);
    -(half - 1) <= x && x <= half
}

/// Why a batch decode ([`XorIterator::drain_range`],
/// [`super::ChunkIterator::drain_range`]) stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// The chunk has no more samples.
    Exhausted,
    /// A sample newer than the bound was reached (and not appended): later
    /// chunks cannot be in range either.
    PastEnd,
    /// The chunk is corrupt; the iterator's `err` says how.
    Failed,
}

/// Decodes an XOR chunk sample by sample. `B` is anything that derefs to the
/// chunk bytes (a slice, an `Arc<[u8]>`, a mapped region).
#[derive(Debug, Clone)]
pub struct XorIterator<B> {
    r: BitReader<B>,
    total: u16,
    read: u16,
    t: i64,
    t_delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
    done: bool,
    err: Option<crate::Error>,
}

/// Reads one delta of delta of a timestamp (the third sample on).
#[inline(always)]
fn read_dod<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Option<i64> {
    // The prefix is up to four 1 bits ended by a 0 (or four 1s): peek
    // four bits and count the leading ones in one step.
    let (peek, real) = r.peek_bits(4);
    let ones = ((peek << 60).leading_ones()).min(4);
    let prefix_len = if ones == 4 { 4 } else { ones + 1 };
    if prefix_len > real {
        return None;
    }
    r.skip_bits(prefix_len);
    let bits = match ones {
        0 => return Some(0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => return r.read_bits(64).map(|v| v as i64),
    };
    let raw = r.read_bits(bits)?;
    // Sign-extend within the bucket, matching `fits`.
    let half = 1u64 << (bits - 1);
    Some(if raw > half { raw as i64 - (1i64 << bits) } else { raw as i64 })
}

/// Reads one XOR'd value (the second sample on) into `v`, updating the
/// window of meaningful bits (`leading`, `trailing`).
#[inline(always)]
fn read_value<B: AsRef<[u8]>>(r: &mut BitReader<B>, v: &mut u64, leading: &mut u8, trailing: &mut u8) -> Option<()> {
    // Control bits: `0` (same value), `10` (reuse the window) or `11`
    // (new window follows).
    let (peek, real) = r.peek_bits(2);
    if real == 0 {
        return None;
    }
    if peek & 0b10 == 0 {
        r.skip_bits(1);
        return Some(());
    }
    if real < 2 {
        return None;
    }
    r.skip_bits(2);
    if peek & 0b01 == 1 {
        let lead = r.read_bits(5)? as u8;
        let mut sig = r.read_bits(6)? as u8;
        if sig == 0 {
            sig = 64;
        }
        if u32::from(lead) + u32::from(sig) > 64 {
            return None;
        }
        *leading = lead;
        *trailing = 64 - lead - sig;
    }
    let sig = 64 - u32::from(*leading) - u32::from(*trailing);
    let bits = r.read_bits(sig)?;
    *v ^= bits << *trailing;
    Some(())
}

/// One sample from the third on (a delta of deltas, then a value), read out
/// of a window of `valid >= BitReader::FILLED` bits (`w`, left-aligned)
/// without touching the reader: the delta of deltas, the bits to XOR into
/// the value and how many bits the sample took, with `leading`/`trailing`
/// updated for a new window of meaningful bits. `None`, with nothing
/// changed, for what does not fit the window (a 64-bit delta of deltas, a
/// value of many meaningful bits) or is malformed: the bit-by-bit reads
/// ([`read_dod`], [`read_value`]) take those from the same place, with the
/// same outcome.
#[inline(always)]
fn sample_from_window(w: u64, valid: u32, leading: &mut u8, trailing: &mut u8) -> Option<(i64, u64, u32)> {
    // The delta of deltas: `0`, or a prefix of one to three 1s ended by a
    // 0 and a payload of 14, 17 or 20 bits (sign-extended as `read_dod`
    // does); `1111` and its 64 bits are left to `read_dod`.
    let (dod, used) = match w >> 60 {
        0..=7 => (0i64, 1u32),
        8..=11 => (bucket_value(w << 2 >> 50, 14), 16),
        12 | 13 => (bucket_value(w << 3 >> 47, 17), 20),
        14 => (bucket_value(w << 4 >> 44, 20), 24),
        _ => return None,
    };
    // `used <= 24`, and `valid >= 57`: the control bits and a new window's
    // 11 bits are in the window. The three kinds of value (`0` the same,
    // `10` the previous window, `11` a new one) are told apart by selects,
    // not branches: which comes next is not predictable (a counter's
    // increments vary), and a mispredicted branch per sample cost more than
    // the decoding.
    let rest = w << used;
    let same = rest >> 63 == 0;
    let new = rest >> 62 == 0b11;
    let new_lead = (rest << 2 >> 59) as u32;
    let new_sig = match (rest << 7 >> 58) as u32 {
        0 => 64,
        n => n,
    };
    let cur_lead = u32::from(*leading);
    let lead = if new { new_lead } else { cur_lead };
    let sig = if new { new_sig } else { 64 - cur_lead - u32::from(*trailing) };
    let header = if new { 13 } else { 2 };
    // A window never has fewer than one bit nor more than 64 (`sig` is in
    // 1..=64); a malformed one, or one whose bits run past `valid`, is left
    // to the bit-by-bit reads.
    let bad = (lead + sig > 64) | (used + header + sig > valid);
    if !same & bad {
        return None;
    }
    // With `same` the window is the current one (`new` needs a leading 1),
    // so `trail` is the current trailing count and nothing changes; else
    // the window is good and within `valid`, so `sig <= 61`. Either way
    // the shifts are in range.
    let trail = 64 - lead - sig;
    let bits = rest << header >> (64 - sig);
    *leading = lead as u8;
    *trailing = trail as u8;
    let xor = if same { 0 } else { bits << trail };
    let taken = if same { used + 1 } else { used + header + sig };
    Some((dod, xor, taken))
}

/// A delta-of-deltas payload of `bits` bits as a signed value, as
/// [`read_dod`] reads it (matching `fits`).
#[inline(always)]
fn bucket_value(raw: u64, bits: u32) -> i64 {
    let half = 1u64 << (bits - 1);
    if raw > half {
        raw as i64 - (1i64 << bits)
    } else {
        raw as i64
    }
}

impl<B: AsRef<[u8]>> XorIterator<B> {
    /// Starts decoding `bytes`. A chunk shorter than its header yields an
    /// error on the first `next`.
    pub fn new(bytes: B) -> XorIterator<B> {
        let b = bytes.as_ref();
        let (total, err) = if b.len() < HEADER_LEN {
            (0, Some(ChunkError::Corrupt("XOR chunk shorter than its header").into()))
        } else {
            (u16::from_be_bytes([b[0], b[1]]), None)
        };
        XorIterator {
            r: BitReader::new(bytes, HEADER_LEN),
            total,
            read: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            done: err.is_some(),
            err,
        }
    }

    /// Number of samples the chunk declares.
    pub fn num_samples(&self) -> usize {
        usize::from(self.total)
    }

    fn fail(&mut self, why: &'static str) -> bool {
        self.done = true;
        self.err = Some(ChunkError::Corrupt(why).into());
        false
    }

    fn step(&mut self) -> Option<()> {
        match self.read {
            0 => {
                self.t = self.r.read_varint()?;
                self.v = self.r.read_bits(64)?;
            }
            1 => {
                self.t_delta = self.r.read_varint()?;
                self.t = self.t.wrapping_add(self.t_delta);
                read_value(&mut self.r, &mut self.v, &mut self.leading, &mut self.trailing)?;
            }
            _ => {
                let dod = read_dod(&mut self.r)?;
                self.t_delta = self.t_delta.wrapping_add(dod);
                self.t = self.t.wrapping_add(self.t_delta);
                read_value(&mut self.r, &mut self.v, &mut self.leading, &mut self.trailing)?;
            }
        }
        Some(())
    }

    /// Decodes the remaining samples into `out` in one loop, as `seek(from)`
    /// followed by `next` until a sample is newer than `maxt` would return
    /// them: samples older than `from` are skipped only until the first one
    /// at or after it (so a chunk whose timestamps are out of order yields
    /// the same samples both ways). Says why it stopped.
    pub fn drain_range(&mut self, from: i64, maxt: i64, out: &mut Vec<Sample>) -> DrainEnd {
        let mut seeking = true;
        // The first two samples have encodings of their own: one by one.
        while !self.done && self.read < self.total.min(2) {
            if self.step().is_none() {
                self.fail("XOR chunk ends before its declared sample count");
                return DrainEnd::Failed;
            }
            self.read += 1;
            let t = self.t;
            if seeking {
                if t < from {
                    continue;
                }
                seeking = false;
            }
            if t > maxt {
                return DrainEnd::PastEnd;
            }
            out.push(Sample { t, v: f64::from_bits(self.v) });
        }
        if !self.done && self.read < self.total {
            // The rest in one loop whose whole state (the bit reader
            // included) lives in locals, written back once at the end.
            let mut r = self.r.borrowed();
            let (mut t, mut t_delta, mut v) = (self.t, self.t_delta, self.v);
            let (mut leading, mut trailing) = (self.leading, self.trailing);
            let mut read = self.read;
            let total = self.total;
            let mut end = DrainEnd::Exhausted;
            while read < total {
                // Most samples are read out of one full window; the rest
                // (near the end of the data, wide fields) bit by bit.
                let (w, valid) = r.fill();
                let fast = if valid >= BitReader::<&[u8]>::FILLED {
                    sample_from_window(w, valid, &mut leading, &mut trailing)
                } else {
                    None
                };
                if let Some((dod, xor, used)) = fast {
                    r.skip_bits(used);
                    t_delta = t_delta.wrapping_add(dod);
                    t = t.wrapping_add(t_delta);
                    v ^= xor;
                } else {
                    let Some(dod) = read_dod(&mut r) else {
                        end = DrainEnd::Failed;
                        break;
                    };
                    t_delta = t_delta.wrapping_add(dod);
                    t = t.wrapping_add(t_delta);
                    if read_value(&mut r, &mut v, &mut leading, &mut trailing).is_none() {
                        end = DrainEnd::Failed;
                        break;
                    }
                }
                read += 1;
                if seeking {
                    if t < from {
                        continue;
                    }
                    seeking = false;
                }
                if t > maxt {
                    end = DrainEnd::PastEnd;
                    break;
                }
                out.push(Sample { t, v: f64::from_bits(v) });
            }
            let at = r.position();
            self.r.resume_at(at);
            (self.t, self.t_delta, self.v, self.leading, self.trailing, self.read) =
                (t, t_delta, v, leading, trailing, read);
            match end {
                DrainEnd::Exhausted => {}
                DrainEnd::PastEnd => return DrainEnd::PastEnd,
                DrainEnd::Failed => {
                    self.fail("XOR chunk ends before its declared sample count");
                    return DrainEnd::Failed;
                }
            }
        }
        self.done = true;
        if self.err.is_some() {
            DrainEnd::Failed
        } else {
            DrainEnd::Exhausted
        }
    }

    /// Decodes every remaining sample into `out`.
    pub fn decode_into(&mut self, out: &mut Vec<Sample>) -> Result<(), crate::Error> {
        out.reserve(usize::from(self.total.saturating_sub(self.read)));
        self.drain_range(i64::MIN, i64::MAX, out);
        match self.err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<B: AsRef<[u8]>> SampleIterator for XorIterator<B> {
    #[inline]
    fn next(&mut self) -> bool {
        if self.done || self.read >= self.total {
            self.done = true;
            return false;
        }
        if self.step().is_none() {
            return self.fail("XOR chunk ends before its declared sample count");
        }
        self.read += 1;
        true
    }

    fn at(&self) -> Sample {
        Sample { t: self.t, v: f64::from_bits(self.v) }
    }

    fn started(&self) -> bool {
        self.read > 0 && !self.done
    }

    fn err(&self) -> Option<&crate::Error> {
        self.err.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appender_state_is_48_bytes() {
        // The head keeps one per series: the writer's parts sit beside the
        // appender's fields with no padding between them.
        assert_eq!(std::mem::size_of::<XorAppender>(), 48);
        assert_eq!(std::mem::size_of::<Option<XorAppender>>(), 48);
    }

    #[test]
    fn append_matches_a_plain_bit_writer_and_grows_by_an_eighth() {
        // The appender's bytes equal what a fresh writer makes of the same
        // samples (header patched), its spare room stays zero, and past
        // 256 bytes it grows by an eighth of its length.
        let mut a = XorAppender::new();
        let mut sizes = Vec::new();
        for i in 0..2_000i64 {
            a.append(i * 15_000 + (i * 7919) % 13, (i as f64).sqrt());
            if sizes.last() != Some(&a.heap_bytes()) {
                sizes.push(a.heap_bytes());
            }
            assert_eq!(a.num_samples(), (i + 1) as usize);
            assert!(a.buf[a.len as usize..].iter().all(|&b| b == 0));
        }
        for w in sizes.windows(2).filter(|w| w[0] >= 256) {
            assert_eq!(w[1], w[0] + w[0] / 8, "{sizes:?}");
        }
        let bytes = a.clone().into_bytes();
        assert_eq!(bytes, a.bytes());
        let got = collect_samples(&mut XorIterator::new(&bytes[..])).unwrap();
        assert_eq!(got.len(), 2_000);
        for (i, s) in got.iter().enumerate() {
            let i = i as i64;
            assert_eq!((s.t, s.v), (i * 15_000 + (i * 7919) % 13, (i as f64).sqrt()));
        }
    }

    #[test]
    fn first_t_is_decoded_from_the_bytes() {
        let mut a = XorAppender::new();
        assert_eq!(a.first_t(), None);
        for t in [-5_000_000_000_000i64, -4, 17, 1_700_000_000_000] {
            a.append(t, 1.5);
            assert_eq!(a.first_t(), Some(-5_000_000_000_000));
        }
    }
    use crate::sample::collect_samples;
    use proptest::prelude::*;

    fn encode(samples: &[Sample]) -> Vec<u8> {
        let mut a = XorAppender::new();
        for s in samples {
            a.append(s.t, s.v);
        }
        a.into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Sample>, crate::Error> {
        collect_samples(&mut XorIterator::new(bytes))
    }

    fn any_f64_bits() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            Just(crate::sample::stale_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(0.0),
            (0i64..1000).prop_map(|i| i as f64 * 0.25),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_bit_exactly(samples in proptest::collection::vec((any::<i64>(), any_f64_bits()), 0..300)) {
            let samples: Vec<Sample> = samples.into_iter().map(|(t, v)| Sample::new(t, v)).collect();
            prop_assert_eq!(decode(&encode(&samples)).unwrap(), samples);
        }

        #[test]
        fn round_trips_regular_series(start in -1i64<<50..1i64<<50, step in 1i64..100_000, jitter in proptest::collection::vec(-3000i64..3000, 1..250), base in any::<f64>()) {
            let mut t = start;
            let mut samples = Vec::new();
            for (i, j) in jitter.iter().enumerate() {
                t += step + j;
                samples.push(Sample::new(t, base + i as f64));
            }
            prop_assert_eq!(decode(&encode(&samples)).unwrap(), samples);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        /// The batch decoder (which reads most samples out of one window)
        /// and `next` (which reads field by field) agree on every stream:
        /// encoded samples of every shape, with bits flipped or not, and
        /// truncated or not; the same samples, bit for bit, and the same
        /// failure.
        #[test]
        fn batch_and_sample_by_sample_decoding_agree(
            samples in proptest::collection::vec((prop_oneof![
                3 => (-2_000i64..2_000).prop_map(|j| 15_000 + j),
                1 => -600_000i64..600_000,
                1 => any::<i64>(),
            ], any_f64_bits()), 0..200),
            flips in proptest::collection::vec(any::<usize>(), 0..3),
            cut in any::<proptest::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut t = 1_700_000_000_000i64;
            let samples: Vec<Sample> = samples.into_iter().map(|(d, v)| { t = t.wrapping_add(d); Sample::new(t, v) }).collect();
            let mut bytes = encode(&samples);
            if bytes.len() > HEADER_LEN {
                for f in &flips {
                    let bit = HEADER_LEN * 8 + f % ((bytes.len() - HEADER_LEN) * 8);
                    bytes[bit / 8] ^= 0x80 >> (bit % 8);
                }
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let mut one = XorIterator::new(&bytes[..]);
            let mut by_next = Vec::new();
            while one.next() {
                by_next.push(one.at());
            }
            let mut batch = XorIterator::new(&bytes[..]);
            let mut drained = Vec::new();
            batch.drain_range(i64::MIN, i64::MAX, &mut drained);
            let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            prop_assert_eq!(bits(&drained), bits(&by_next));
            prop_assert_eq!(batch.err().is_some(), one.err().is_some());
            if flips.is_empty() && !truncate {
                prop_assert_eq!(bits(&drained), bits(&samples));
            }
        }
    }

    #[test]
    fn special_values_survive() {
        let vals = [
            crate::sample::stale_nan(),
            f64::NAN,
            f64::from_bits(0x7ff8_dead_beef_0001),
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE / 2.0,
        ];
        let samples: Vec<Sample> = vals.iter().enumerate().map(|(i, &v)| Sample::new(i as i64 * 15_000, v)).collect();
        let got = decode(&encode(&samples)).unwrap();
        for (a, b) in got.iter().zip(&samples) {
            assert_eq!(a.v.to_bits(), b.v.to_bits());
        }
    }

    #[test]
    fn regular_scrapes_compress_well() {
        let samples: Vec<Sample> = (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 15_000, 42.0)).collect();
        let bytes = encode(&samples);
        // 19 bytes for the first two samples, then 2 bits per sample.
        assert!(bytes.len() <= 50, "{} bytes", bytes.len());
    }

    #[test]
    fn truncated_chunk_reports_error() {
        let samples: Vec<Sample> = (0..50).map(|i| Sample::new(i * 1000 + (i * i) % 7, i as f64 * 1.1)).collect();
        let bytes = encode(&samples);
        for cut in 0..bytes.len() - 1 {
            let r = decode(&bytes[..cut]);
            assert!(r.is_err(), "cut at {cut} decoded silently");
        }
    }

    #[test]
    fn seek_moves_forward() {
        let samples: Vec<Sample> = (0..100).map(|i| Sample::new(i * 10, i as f64)).collect();
        let bytes = encode(&samples);
        let mut it = XorIterator::new(&bytes[..]);
        assert!(it.seek(255));
        assert_eq!(it.at().t, 260);
        assert!(it.seek(0));
        assert_eq!(it.at().t, 260);
        assert!(!it.seek(5000));
    }
}

//! The sealed encoding: a dense, lossless, non-appendable encoding for the
//! samples of one series inside an immutable block.
//!
//! The byte layout is specified in `docs/format/sealed.md`. In short:
//!
//! - timestamps: zig-zag LEB128 varints, either delta-of-deltas or offsets
//!   from a fixed grid `t0 + i·step` (scrape jitter), whichever the entropy
//!   estimate favours; or no column at all when the reader supplies a
//!   timestamp column shared by many series ([`encode_with`] /
//!   [`decode_with`], [`encode_timestamps`] for the column itself);
//! - values, one scheme per chunk:
//!   - *decimal*: every value (bar a few exceptions) equals
//!     `m as f64 / 10^k` bit for bit, for one `k` in `0..=22` shared by the
//!     chunk and integers `|m| < 2^53`; the `m` are stored raw, as deltas or
//!     as delta-of-deltas (smallest estimate wins), and values that do not
//!     fit (NaN payloads such as the staleness marker, ±Inf, -0.0, values
//!     with more decimals) are kept as raw bits in an exception list.
//!     Optionally a small per-value ULP correction turns float artefacts
//!     such as `11.515870999999999` into `11515871 / 10^6` minus one ULP;
//!   - *xor*: each value's bits XOR the previous value's bits, split into
//!     eight byte planes so that the constant high bytes compress;
//! - the column bytes are compressed with zstd when that is smaller;
//! - a CRC32-C over the whole chunk closes it.
//!
//! Exactness argument for the decimal scheme: `m` (below 2^53) and `10^k`
//! (for `k <= 22`) are both exactly representable, and IEEE division is
//! correctly rounded, so the decoder's `m as f64 / 10^k` is a pure function
//! of `(m, k)`. The encoder evaluates that very expression and keeps `m` only
//! when it reproduces the original bits, so decoding is bit-exact whatever
//! the platform's rounding of intermediate steps in the encoder.

use std::cell::RefCell;

use crate::error::ChunkError;
use crate::sample::Sample;

/// The format version written in the first byte: 3, which is version 2
/// plus byte-plane decimal columns (flag bit 6, see [`plane_layout`]).
pub const VERSION: u8 = 3;
/// Format version 2, still decoded: chunks carry no checksum of their own
/// (their container checks them: a block's chunk file record, the index
/// section of shared timestamp columns) and store their zstd frame without
/// its 4-byte magic number.
pub const VERSION_2: u8 = 2;
/// Format version 1, still decoded: a trailing CRC32-C, zstd frames with
/// their magic number.
pub const VERSION_1: u8 = 1;

/// The 4 bytes every zstd frame starts with (little-endian `0xFD2FB528`);
/// version 2 leaves them out.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The largest sample count a sealed chunk may declare. Guards the decoder's
/// allocations against corrupt or hostile counts.
pub const MAX_SAMPLES: usize = 1 << 24;

/// The zstd level [`encode`] uses (chosen by measurement on the real capture,
/// see `docs/format/sealed.md`).
pub const DEFAULT_ZSTD_LEVEL: i32 = 9;

/// Largest decimal exponent: `10^22` is the largest exactly representable
/// power of ten.
const MAX_DECIMALS: usize = 22;

/// Values reach exactly up to, not including, `2^53` in magnitude (the
/// WAL's decimal mantissas too).
pub(crate) const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0;

/// Exact powers of ten `10^0 ..= 10^22`.
const POW10: [f64; MAX_DECIMALS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

// Flag byte layout.
const SCHEME_MASK: u8 = 0b0000_0011;
const SCHEME_DECIMAL_DELTA: u8 = 0;
const SCHEME_DECIMAL_DOD: u8 = 1;
const SCHEME_XOR: u8 = 2;
const SCHEME_DECIMAL_RAW: u8 = 3;
const FLAG_ZSTD: u8 = 0b0000_0100;
const FLAG_TIME_GRID: u8 = 0b0000_1000;
const FLAG_TIME_SHARED: u8 = 0b0001_0000;
const FLAG_ULP: u8 = 0b0010_0000;
const FLAG_PLANES: u8 = 0b0100_0000;
const KNOWN_FLAGS: u8 = SCHEME_MASK | FLAG_ZSTD | FLAG_TIME_GRID | FLAG_TIME_SHARED | FLAG_ULP | FLAG_PLANES;

/// The largest correction (in units in the last place) the encoder stores
/// for a value that is *nearly* a short decimal (such as
/// `11.515870999999999`, a float artefact of `11.515871`).
const MAX_ULP_CORRECTION: i64 = 64;

/// Bytes of the trailing checksum.
const CRC_LEN: usize = 4;

/// The value scheme of a sealed chunk, as reported by [`inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueScheme {
    /// Decimal mantissas stored as deltas.
    DecimalDelta,
    /// Decimal mantissas stored as delta-of-deltas.
    DecimalDeltaOfDelta,
    /// XOR of consecutive value bits, in byte planes.
    Xor,
    /// Decimal mantissas stored as they are (noisy gauges).
    DecimalRaw,
}

/// What a sealed chunk's header says, as reported by [`inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Number of samples.
    pub samples: usize,
    /// The value scheme (`None` for an empty chunk).
    pub scheme: Option<ValueScheme>,
    /// Whether the columns are zstd-compressed.
    pub zstd: bool,
    /// Whether timestamps are stored as offsets from a fixed grid (else as
    /// delta-of-deltas).
    pub time_grid: bool,
    /// Whether the timestamp column is omitted because the reader supplies
    /// it (see [`EncodeOptions::shared_timestamps`]).
    pub shared_timestamps: bool,
    /// Number of decimals `k` of the decimal scheme.
    pub decimals: Option<u8>,
    /// Number of exceptions of the decimal scheme.
    pub exceptions: usize,
    /// Whether the decimal scheme carries per-value ULP corrections.
    pub ulp_corrections: bool,
}

/// Appends the lossless encoding of `samples` (sorted by strictly increasing
/// timestamp) to `out`, compressing with [`DEFAULT_ZSTD_LEVEL`].
pub fn encode(samples: &[Sample], out: &mut Vec<u8>) {
    encode_with_level(samples, DEFAULT_ZSTD_LEVEL, out)
}

/// Like [`encode`] with an explicit zstd level; `0` disables zstd. Any level
/// produces chunks that [`decode`] reads.
pub fn encode_with_level(samples: &[Sample], zstd_level: i32, out: &mut Vec<u8>) {
    encode_with(samples, &EncodeOptions { zstd_level, shared_timestamps: None }, out);
}

/// Options of [`encode_with`].
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// zstd level for the columns; `0` disables zstd. Default
    /// [`DEFAULT_ZSTD_LEVEL`].
    pub zstd_level: i32,
    /// A timestamp column the reader will hand to [`decode_with`] (for
    /// instance one stored once per block for all series scraped together,
    /// see [`encode_timestamps`]). When the samples' timestamps equal it
    /// exactly, the chunk omits its own timestamp column. Default `None`.
    pub shared_timestamps: Option<&'a [i64]>,
}

impl Default for EncodeOptions<'_> {
    fn default() -> Self {
        EncodeOptions { zstd_level: DEFAULT_ZSTD_LEVEL, shared_timestamps: None }
    }
}

/// Appends the lossless encoding of `samples` (sorted by strictly
/// increasing timestamp) to `out`. Returns whether the timestamp column was
/// left out in favour of `opts.shared_timestamps`; if so, the chunk must be
/// decoded with [`decode_with`] and that same column.
pub fn encode_with(samples: &[Sample], opts: &EncodeOptions<'_>, out: &mut Vec<u8>) -> bool {
    encode_version(samples, opts, VERSION, out)
}

/// [`encode_with`] in format version 2 (decimal columns as ivarints, never
/// byte planes), which decoders keep reading: for comparisons (benches,
/// `block_bytes`) and tests. Returns whether the timestamps were left out.
///
/// ```
/// use tidemark_storage::chunkenc::sealed::{self, EncodeOptions};
/// use tidemark_storage::Sample;
/// let samples: Vec<Sample> = (0..100).map(|i| Sample::new(i * 15_000, (i * 1_013 % 977) as f64 / 100.0)).collect();
/// let mut v2 = Vec::new();
/// sealed::encode_version_2(&samples, &EncodeOptions::default(), &mut v2);
/// assert_eq!(v2[0], sealed::VERSION_2);
/// let mut out = Vec::new();
/// sealed::decode(&v2, &mut out).unwrap();
/// assert_eq!(out, samples);
/// ```
pub fn encode_version_2(samples: &[Sample], opts: &EncodeOptions<'_>, out: &mut Vec<u8>) -> bool {
    encode_version(samples, opts, VERSION_2, out)
}

/// [`encode_with`] in format `version` (1, 2 or 3; tests keep writing
/// versions 1 and 2 to check that they still decode).
pub(crate) fn encode_version(samples: &[Sample], opts: &EncodeOptions<'_>, version: u8, out: &mut Vec<u8>) -> bool {
    debug_assert!(version == VERSION || version == VERSION_2 || version == VERSION_1);
    debug_assert!(samples.windows(2).all(|w| w[0].t < w[1].t), "samples not strictly increasing");
    let shared = !samples.is_empty()
        && opts
            .shared_timestamps
            .is_some_and(|ts| ts.len() == samples.len() && ts.iter().zip(samples).all(|(&t, s)| t == s.t));
    let start = out.len();
    out.push(version);
    put_uvarint(out, samples.len() as u64);
    if !samples.is_empty() {
        // The columns and their compressed frame are built in per-thread
        // buffers kept from chunk to chunk (a head closes a chunk every few
        // appends: growing fresh vectors each time cost more than zstd).
        let (mut body, mut frame_buf) = ENCODE.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        body.clear();
        body.reserve(samples.len() * 10 + 32);
        let time_flags = if shared { FLAG_TIME_SHARED } else { put_timestamps(&mut body, samples) };
        let scheme = time_flags | put_values(&mut body, samples, version == VERSION);
        let compressed = opts.zstd_level != 0 && compress_into(&body, opts.zstd_level, &mut frame_buf);
        // Version 2 stores the frame without the magic number every frame
        // starts with.
        let frame = compressed.then(|| match frame_buf.strip_prefix(&ZSTD_MAGIC) {
            Some(rest) if version != VERSION_1 => rest,
            _ => &frame_buf[..],
        });
        match frame {
            Some(c) if c.len() + uvarint_len(body.len() as u64) < body.len() => {
                out.push(scheme | FLAG_ZSTD);
                put_uvarint(out, body.len() as u64);
                out.extend_from_slice(c);
            }
            _ => {
                out.push(scheme);
                out.extend_from_slice(&body);
            }
        }
        // Keep the buffers unless a huge chunk made them huge.
        if body.capacity() <= 1 << 20 && frame_buf.capacity() <= 1 << 20 {
            ENCODE.with(|cell| *cell.borrow_mut() = (body, frame_buf));
        }
    }
    if version == VERSION_1 {
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    shared
}

/// Encodes a timestamp column on its own (to be shared by many chunks, see
/// [`EncodeOptions::shared_timestamps`]): a sealed chunk whose values are
/// all `0.0`, which cost next to nothing. `timestamps` must be strictly
/// increasing.
pub fn encode_timestamps(timestamps: &[i64], out: &mut Vec<u8>) {
    let samples: Vec<Sample> = timestamps.iter().map(|&t| Sample { t, v: 0.0 }).collect();
    // Version 1, with its own CRC: a column is shared by many chunks, so
    // damage to it must be caught whenever it is decoded, not only by the
    // index section's checksum at open. Columns are few; 4 bytes each.
    encode_version(&samples, &EncodeOptions::default(), VERSION_1, out);
}

/// Decodes a column written by [`encode_timestamps`], appending to `out`.
/// Never panics; on error `out` is left as it was.
pub fn decode_timestamps(bytes: &[u8], out: &mut Vec<i64>) -> Result<(), ChunkError> {
    let mut samples = Vec::new();
    decode(bytes, &mut samples)?;
    out.extend(samples.iter().map(|s| s.t));
    Ok(())
}

/// Decodes a sealed chunk, appending its samples to `out`. Never panics; on
/// error `out` is left as it was.
pub fn decode(bytes: &[u8], out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    decode_with(bytes, None, out)
}

/// Decodes a sealed chunk whose timestamp column may have been left out in
/// favour of `shared_timestamps` (see [`encode_with`]). A chunk that needs
/// the column but gets none, or one of the wrong length, is an error. Never
/// panics; on error `out` is left as it was.
pub fn decode_with(bytes: &[u8], shared_timestamps: Option<&[i64]>, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    let base = out.len();
    let r = decode_inner(bytes, shared_timestamps, out);
    if r.is_err() {
        out.truncate(base);
    }
    r
}

/// Reads a chunk's header (after checking the checksum of a version 1
/// chunk) without decoding
/// the samples.
pub fn inspect(bytes: &[u8]) -> Result<ChunkInfo, ChunkError> {
    let mut info = ChunkInfo {
        samples: 0,
        scheme: None,
        zstd: false,
        time_grid: false,
        shared_timestamps: false,
        decimals: None,
        exceptions: 0,
        ulp_corrections: false,
    };
    let h = parse_header(bytes)?;
    info.samples = h.n;
    let Some(flags) = h.flags else { return Ok(info) };
    info.zstd = flags & FLAG_ZSTD != 0;
    info.time_grid = flags & FLAG_TIME_GRID != 0;
    info.shared_timestamps = flags & FLAG_TIME_SHARED != 0;
    info.ulp_corrections = flags & FLAG_ULP != 0;
    info.scheme = Some(match flags & SCHEME_MASK {
        SCHEME_DECIMAL_DELTA => ValueScheme::DecimalDelta,
        SCHEME_DECIMAL_DOD => ValueScheme::DecimalDeltaOfDelta,
        SCHEME_DECIMAL_RAW => ValueScheme::DecimalRaw,
        _ => ValueScheme::Xor,
    });
    if info.scheme != Some(ValueScheme::Xor) {
        with_body(&h, |body| {
            let mut r = Reader::new(body);
            let time_values = match (info.shared_timestamps, info.time_grid && h.n > 1) {
                (true, _) => 0,
                (false, true) => h.n + 1,
                (false, false) => h.n,
            };
            for _ in 0..time_values {
                r.uvarint()?;
            }
            info.decimals = Some(r.byte()?);
            info.exceptions = r.uvarint()? as usize;
            Ok(())
        })?;
    }
    Ok(info)
}

// ---------------------------------------------------------------------------
// Encoding.

/// Writes the timestamp column; returns its flag bits.
///
/// Two layouts, whichever the entropy estimate favours: delta-of-deltas
/// (best when the interval drifts or jumps), or offsets from a fixed grid
/// `t0 + i·step` with `step` the median interval (best for scrapes with
/// millisecond jitter around a fixed interval: the jitter itself has fewer
/// distinct values than its differences).
fn put_timestamps(body: &mut Vec<u8>, samples: &[Sample]) -> u8 {
    // Wrapping arithmetic: any i64 sequence round-trips, including extremes
    // whose differences overflow.
    let t0 = samples[0].t;
    put_ivarint(body, t0);
    let n = samples.len();
    if n == 1 {
        return 0;
    }
    // The delta-of-deltas, built once in a per-thread buffer.
    let (mut dods, spare) = COLUMNS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    dods.clear();
    let mut prev_d = 0i64;
    for (i, w) in samples.windows(2).enumerate() {
        let d = w[1].t.wrapping_sub(w[0].t);
        dods.push(if i == 0 { d } else { d.wrapping_sub(prev_d) });
        prev_d = d;
    }
    let dod_cost = estimate_bits(dods.iter().copied());
    // The mean interval, so that offsets from the grid stay bounded when
    // the samples jitter around a fixed period (the median can sit off it).
    let span = (samples[n - 1].t as i128) - (t0 as i128);
    let step = (span + (n as i128 - 1) / 2).div_euclid(n as i128 - 1) as i64;
    let offset = |i: usize| samples[i].t.wrapping_sub(t0.wrapping_add(step.wrapping_mul(i as i64)));
    let grid_cost = ivarint_len(step) as f64 * 8.0 + estimate_bits((1..n).map(offset));
    let flags = if grid_cost < dod_cost {
        put_ivarint(body, step);
        for i in 1..n {
            put_ivarint(body, offset(i));
        }
        FLAG_TIME_GRID
    } else {
        for &v in &dods {
            put_ivarint(body, v);
        }
        0
    };
    if dods.capacity() <= 1 << 16 {
        COLUMNS.with(|cell| *cell.borrow_mut() = (dods, spare));
    }
    flags
}

/// Estimated size in bits of `values` after entropy coding, used only to
/// choose between layouts. A two-part code: each value costs its order-0
/// entropy (`log2(N / count)`), and each distinct value is spelled out once
/// (its bit length). Repetitive columns are cheap, noisy ones cost about
/// their magnitude.
///
/// The terms are summed in ascending order of the zig-zagged distinct
/// values, so that the floating-point sum (and with it every choice the
/// encoder makes) is the same whichever way the counts are found:
///
/// - a column with at most [`TABLE_DISTINCT`] distinct values (regular
///   timestamps, steady counters) is counted in a small hash table, and only
///   its distinct values are sorted;
/// - a noisier column falls back to sorting all the values.
///
/// Both work in per-thread scratch (no allocation per call) and take one
/// `log2` per distinct value that occurs more than once: a value seen once
/// costs `log2(N)`, computed once (`1 * (N / 1).log2()` is that very
/// number, so the sum is bit for bit what the plain formula gives).
fn estimate_bits(values: impl Iterator<Item = i64>) -> f64 {
    // A nested call cannot happen; take the buffer anyway rather than hold
    // a borrow across the caller's iterator.
    let mut z = ESTIMATE.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    z.clear();
    z.extend(values.map(zigzag));
    let total = z.len() as f64;
    let once = total.log2();
    let term = |value: u64, count: usize| {
        let c = count as f64;
        let entropy = if count == 1 { once } else { c * (total / c).log2() };
        entropy + (65 - value.leading_zeros()) as f64
    };
    let mut bits = 0f64;
    // The table's borrow covers no code but its own.
    let counted = DISTINCT.with(|cell| {
        let Ok(mut table) = cell.try_borrow_mut() else { return false };
        if !table.count(&z) {
            return false;
        }
        for &(value, count) in table.distinct_sorted() {
            bits += term(value, count as usize);
        }
        true
    });
    if !counted {
        z.sort_unstable();
        for run in z.chunk_by(|a, b| a == b) {
            bits += term(run[0], run.len());
        }
    }
    if z.capacity() <= 1 << 16 {
        ESTIMATE.with(|cell| *cell.borrow_mut() = z);
    }
    bits
}

/// Most distinct values [`DistinctTable`] counts before [`estimate_bits`]
/// sorts the column instead.
const TABLE_DISTINCT: usize = 32;
/// Slots of [`DistinctTable`]: twice [`TABLE_DISTINCT`], so probes stay short.
const TABLE_SLOTS: usize = 2 * TABLE_DISTINCT;

/// An open-addressing hash table counting up to [`TABLE_DISTINCT`] distinct
/// values (linear probing; a slot with count 0 is free).
struct DistinctTable {
    keys: [u64; TABLE_SLOTS],
    counts: [u32; TABLE_SLOTS],
    /// The distinct values and their counts after [`DistinctTable::count`].
    distinct: Vec<(u64, u32)>,
}

impl Default for DistinctTable {
    fn default() -> Self {
        DistinctTable { keys: [0; TABLE_SLOTS], counts: [0; TABLE_SLOTS], distinct: Vec::with_capacity(TABLE_DISTINCT) }
    }
}

impl DistinctTable {
    /// Counts `values`; false (and the table left unusable until the next
    /// call) if they hold more than [`TABLE_DISTINCT`] distinct values or
    /// more than `u32::MAX` of them.
    fn count(&mut self, values: &[u64]) -> bool {
        if values.len() > u32::MAX as usize {
            return false;
        }
        self.counts = [0; TABLE_SLOTS];
        let mut distinct = 0;
        for &v in values {
            // Fibonacci hashing: the multiply spreads small and strided
            // values over the top bits.
            let mut slot = (v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_SLOTS.trailing_zeros())) as usize;
            loop {
                if self.counts[slot] == 0 {
                    if distinct == TABLE_DISTINCT {
                        return false;
                    }
                    distinct += 1;
                    self.keys[slot] = v;
                    self.counts[slot] = 1;
                    break;
                }
                if self.keys[slot] == v {
                    self.counts[slot] += 1;
                    break;
                }
                slot = (slot + 1) % TABLE_SLOTS;
            }
        }
        self.distinct.clear();
        for (slot, &c) in self.counts.iter().enumerate() {
            if c != 0 {
                self.distinct.push((self.keys[slot], c));
            }
        }
        true
    }

    /// The distinct values counted by the last successful
    /// [`DistinctTable::count`] and their counts, in ascending order of value.
    fn distinct_sorted(&mut self) -> &[(u64, u32)] {
        self.distinct.sort_unstable_by_key(|&(v, _)| v);
        &self.distinct
    }
}

/// `x.round()` (half away from zero) as an integer, for `|x| < 2^53`;
/// `None` otherwise (NaN and ±Inf included). Same result as
/// `f64::round`, without its library call: below 2^53 the truncation
/// through `i64` is exact and so is `x - trunc(x)`.
#[inline(always)]
fn round_small(x: f64) -> Option<i64> {
    if x.abs() < MAX_MANTISSA {
        let t = x as i64;
        let frac = x - t as f64;
        Some(if frac >= 0.5 {
            t + 1
        } else if frac <= -0.5 {
            t - 1
        } else {
            t
        })
    } else {
        None
    }
}

/// `y` rounded to the nearest integer, halves away from zero (as
/// `f64::round`), if that is below 2^53 in magnitude; `None` for larger
/// values, infinities and NaN. The WAL's decimal columns round with it too.
#[inline(always)]
pub(crate) fn round_mantissa(y: f64) -> Option<i64> {
    round_small(y).filter(|m| m.unsigned_abs() < 1 << 53)
}

/// The mantissa nearest the value `bits` scaled by `10^k`, if it is below
/// 2^53 in magnitude (NaN and ±Inf have none).
#[inline(always)]
fn nearest_mantissa(bits: u64, k: usize) -> Option<i64> {
    round_mantissa(f64::from_bits(bits) * POW10[k])
}

/// The decoder's formula. The encoder keeps a mantissa only if this exact
/// expression gives back the original bits.
#[inline(always)]
fn decimal_value(m: i64, k: usize) -> f64 {
    m as f64 / POW10[k]
}

/// The mantissa `m` with `decimal_value(m, k)` bit-identical to `bits`, if any.
#[inline]
fn decimal_fit(bits: u64, k: usize) -> Option<i64> {
    let m = nearest_mantissa(bits, k)?;
    (decimal_value(m, k).to_bits() == bits).then_some(m)
}

/// The mantissa and ULP correction with which `decimal_value(m, k)`, its
/// bits shifted by the correction, gives back `bits`, if the correction is
/// small. Exact fits have correction 0.
#[inline]
fn near_decimal_fit(bits: u64, k: usize) -> Option<(i64, i64)> {
    let m = nearest_mantissa(bits, k)?;
    let c = bits.wrapping_sub(decimal_value(m, k).to_bits()) as i64;
    (c.unsigned_abs() <= MAX_ULP_CORRECTION as u64).then_some((m, c))
}

/// The smallest number of decimals for which `fits` holds, searching from
/// the hint `k` (usually the previous value's).
fn min_decimals(bits: u64, hint: usize, fits: impl Fn(u64, usize) -> bool) -> Option<usize> {
    let lowest_from = |k: usize| {
        let mut k = k;
        while k > 0 && fits(bits, k - 1) {
            k -= 1;
        }
        k
    };
    if fits(bits, hint) {
        return Some(lowest_from(hint));
    }
    // Look above the hint, then below (a value with fewer decimals may
    // still overflow 2^53 at `hint`).
    ((hint + 1)..=MAX_DECIMALS).chain((0..hint).rev()).find(|&k| fits(bits, k)).map(lowest_from)
}

/// The smallest `k` for which at most `max_left_out` values have no fit,
/// given per-value minimal `k`s.
fn choose_decimals(samples: &[Sample], max_left_out: usize, fits: impl Fn(u64, usize) -> bool) -> Option<usize> {
    let mut hist = [0usize; MAX_DECIMALS + 1];
    let mut hint = 0;
    let mut left_out = 0;
    for s in samples {
        match min_decimals(s.v.to_bits(), hint, &fits) {
            Some(k) => {
                hist[k] += 1;
                hint = k;
            }
            None => left_out += 1,
        }
    }
    let mut above = samples.len() - left_out;
    for (k, &count) in hist.iter().enumerate() {
        above -= count;
        if above + left_out <= max_left_out {
            return Some(k);
        }
    }
    None
}

/// Writes the value column; returns the scheme bits.
fn put_values(body: &mut Vec<u8>, samples: &[Sample], planes: bool) -> u8 {
    let n = samples.len();
    // Allow up to n/32 exceptions (at least one, for a trailing staleness
    // marker) before giving up on a decimal scheme.
    let max_exceptions = (n / 32).max(1);

    // First choice: exact decimals. Second: decimals with small ULP
    // corrections (float artefacts of short decimals). Else XOR.
    let exact = choose_decimals(samples, max_exceptions, |b, k| decimal_fit(b, k).is_some());
    let near = || choose_decimals(samples, max_exceptions, |b, k| near_decimal_fit(b, k).is_some());
    let (k, with_ulp) = match exact {
        Some(k) => (k, false),
        None => match near() {
            Some(k) => (k, true),
            None => {
                put_xor(body, samples);
                return SCHEME_XOR;
            }
        },
    };
    let mut mant = Vec::with_capacity(n);
    let mut corrections = Vec::with_capacity(if with_ulp { n } else { 0 });
    let mut exceptions: Vec<(usize, u64)> = Vec::new();
    let mut prev = 0i64;
    for (i, s) in samples.iter().enumerate() {
        let bits = s.v.to_bits();
        let fit = if with_ulp { near_decimal_fit(bits, k) } else { decimal_fit(bits, k).map(|m| (m, 0)) };
        match fit {
            Some((m, c)) => {
                mant.push(m);
                corrections.push(c);
                prev = m;
            }
            None => {
                // Repeat the previous mantissa: a zero delta is cheapest.
                exceptions.push((i, bits));
                mant.push(prev);
                corrections.push(0);
            }
        }
    }
    if exceptions.len() > max_exceptions {
        // Values that fit at their own k but overflow 2^53 at the chosen one.
        put_xor(body, samples);
        return SCHEME_XOR;
    }
    let decimal_start = body.len();
    let scheme = put_decimal(body, k, &mant, &exceptions, with_ulp.then_some(&corrections[..]), planes);
    // With many decimals the mantissas are nearly random; XOR planes may
    // then be smaller, so compare.
    if (body.len() - decimal_start) / n >= 4 {
        let mut xor = Vec::with_capacity(n * 8);
        put_xor(&mut xor, samples);
        if xor.len() < body.len() - decimal_start {
            body.truncate(decimal_start);
            body.extend_from_slice(&xor);
            return SCHEME_XOR;
        }
    }
    scheme
}

/// Writes a decimal value column; returns the scheme and flag bits.
fn put_decimal(
    body: &mut Vec<u8>,
    k: usize,
    mant: &[i64],
    exceptions: &[(usize, u64)],
    ulp: Option<&[i64]>,
    planes: bool,
) -> u8 {
    // Mantissas are below 2^53 in magnitude, so deltas and delta-of-deltas
    // fit in i64 without wrapping. The three candidate columns are built
    // once (in per-thread buffers), then estimated and written from slices.
    let (mut deltas, mut dods) = COLUMNS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    deltas.clear();
    dods.clear();
    let (mut prev_m, mut prev_d) = (0i64, 0i64);
    for (i, &m) in mant.iter().enumerate() {
        let d = if i == 0 { m } else { m - prev_m };
        deltas.push(d);
        dods.push(if i <= 1 { d } else { d - prev_d });
        (prev_m, prev_d) = (m, d);
    }
    let costs = [
        (estimate_bits(deltas.iter().copied()), SCHEME_DECIMAL_DELTA),
        (estimate_bits(dods.iter().copied()), SCHEME_DECIMAL_DOD),
        (estimate_bits(mant.iter().copied()), SCHEME_DECIMAL_RAW),
    ];
    // Ties go to the earlier (cheaper to decode, more regular) layout.
    let scheme = costs.iter().fold(costs[0], |best, c| if c.0 < best.0 { *c } else { best }).1;
    body.push(k as u8);
    put_uvarint(body, exceptions.len() as u64);
    let mut prev_i = 0usize;
    for (j, &(i, bits)) in exceptions.iter().enumerate() {
        put_uvarint(body, if j == 0 { i } else { i - prev_i - 1 } as u64);
        body.extend_from_slice(&bits.to_le_bytes());
        prev_i = i;
    }
    let x: &[i64] = match scheme {
        SCHEME_DECIMAL_DELTA => &deltas,
        SCHEME_DECIMAL_DOD => &dods,
        _ => mant,
    };
    let mut flags = scheme;
    match if planes { plane_layout(x) } else { None } {
        Some((base, width)) => {
            flags |= FLAG_PLANES;
            put_ivarint(body, x[0]);
            put_ivarint(body, base);
            body.push(width as u8);
            let start = body.len();
            let rows = x.len() - 1;
            body.resize(start + width * rows, 0);
            let planes = &mut body[start..];
            for (i, &v) in x[1..].iter().enumerate() {
                let u = (v.wrapping_sub(base) as u64).to_le_bytes();
                for (p, &b) in u[..width].iter().enumerate() {
                    planes[p * rows + i] = b;
                }
            }
        }
        None => {
            for &v in x {
                put_ivarint(body, v);
            }
        }
    }
    if deltas.capacity() <= 1 << 16 {
        COLUMNS.with(|cell| *cell.borrow_mut() = (deltas, dods));
    }
    if let Some(corrections) = ulp {
        for &c in corrections {
            put_ivarint(body, c);
        }
        return flags | FLAG_ULP;
    }
    flags
}

/// Whether to store a decimal column's entries `x[1..]` as byte planes
/// (flag bit 6) rather than as ivarints, and if so with which base and
/// width: `Some((base, width))` unless the planes would take more than
/// twice the ivarints' bytes (an outlier, such as a counter reset, widens
/// every entry; zstd then removes most but not all of that).
///
/// Why planes: zstd codes literals with one Huffman table per block, so
/// in an ivarint stream the nearly uniform low bytes and the nearly
/// constant high bytes of a column share one table and each byte costs at
/// least a bit. As offsets from the column's minimum in fixed-width
/// little-endian planes, the constant high bytes become runs (matched for
/// almost nothing) and the low bytes lose the continuation bit. A column
/// with one outlier (a counter reset) needs wide planes throughout and
/// keeps ivarints; so does a constant one (`width` would be 0).
fn plane_layout(x: &[i64]) -> Option<(i64, usize)> {
    let rest = x.get(1..).filter(|r| !r.is_empty())?;
    let base = *rest.iter().min()?;
    let width = rest.iter().map(|&v| 8 - (v.wrapping_sub(base) as u64).leading_zeros() as usize / 8).max()?;
    if width == 0 {
        return None;
    }
    let varint_bytes: usize = rest.iter().map(|&v| ivarint_len(v)).sum();
    (width * rest.len() <= 2 * varint_bytes).then_some((base, width))
}

fn put_xor(body: &mut Vec<u8>, samples: &[Sample]) {
    let n = samples.len();
    let start = body.len();
    body.resize(start + 8 * n, 0);
    let planes = &mut body[start..];
    let mut prev = 0u64;
    for (i, s) in samples.iter().enumerate() {
        let bits = s.v.to_bits();
        let x = (bits ^ prev).to_le_bytes();
        prev = bits;
        for (p, b) in x.iter().enumerate() {
            planes[p * n + i] = *b;
        }
    }
}

thread_local! {
    // Reused across chunks: creating a zstd context costs more than
    // (de)compressing a typical chunk.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    // The column bytes and the zstd frame of [`encode_version`].
    static ENCODE: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    // The zig-zagged values [`estimate_bits`] counts or sorts.
    static ESTIMATE: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    // The delta and delta-of-delta columns of [`put_decimal`].
    static COLUMNS: RefCell<(Vec<i64>, Vec<i64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    // The table [`estimate_bits`] counts few distinct values in.
    static DISTINCT: RefCell<DistinctTable> = RefCell::new(DistinctTable::default());
    // A version 2 frame with its magic number put back, for the decoder.
    static FRAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// zstd-compresses `body` without frame checksum, content size or
/// dictionary id (the chunk carries its own length and CRC). `None` if zstd
/// fails, in which case the chunk stays uncompressed.
fn compress(body: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut dst = Vec::new();
    compress_into(body, level, &mut dst).then_some(dst)
}

/// [`compress`] into `dst` (cleared first, grown as needed); false if zstd
/// fails.
fn compress_into(body: &[u8], level: i32, dst: &mut Vec<u8>) -> bool {
    dst.clear();
    dst.reserve(zstd::zstd_safe::compress_bound(body.len()));
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let Ok(mut c) = zstd::bulk::Compressor::new(level) else { return false };
            let params = [
                zstd::zstd_safe::CParameter::ChecksumFlag(false),
                zstd::zstd_safe::CParameter::ContentSizeFlag(false),
                zstd::zstd_safe::CParameter::DictIdFlag(false),
            ];
            if params.into_iter().any(|p| c.set_parameter(p).is_err()) {
                return false;
            }
            *slot = Some((level, c));
        }
        let Some((_, c)) = slot.as_mut() else { return false };
        c.compress_to_buffer(body, dst).is_ok()
    })
}

/// zstd-compresses `body` at `level` into a frame without magic number,
/// checksum, content size or dictionary id (as version 2 chunks store it),
/// for containers that compress several chunks together (the block's chunk
/// groups). `None` if zstd fails.
pub(crate) fn compress_magicless(body: &[u8], level: i32) -> Option<Vec<u8>> {
    let c = compress(body, level)?;
    c.strip_prefix(&ZSTD_MAGIC).map(<[u8]>::to_vec)
}

/// Decompresses a frame written by [`compress_magicless`] into `out`
/// (cleared), which must come out exactly `raw_len` bytes long; the
/// output's capacity is `raw_len`, so a hostile frame cannot expand
/// further. The caller bounds `raw_len`.
pub(crate) fn decompress_magicless(payload: &[u8], raw_len: usize, out: &mut Vec<u8>) -> Result<(), ChunkError> {
    out.clear();
    out.reserve_exact(raw_len);
    let got = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        let d = slot.as_mut()?;
        FRAME.with(|frame| {
            let mut frame = frame.borrow_mut();
            frame.clear();
            frame.extend_from_slice(&ZSTD_MAGIC);
            frame.extend_from_slice(payload);
            let r = d.decompress_to_buffer(&frame[..], out).ok();
            if frame.capacity() > 1 << 20 {
                *frame = Vec::new();
            }
            r
        })
    });
    match got {
        Some(len) if len == raw_len && out.len() == raw_len => Ok(()),
        _ => Err(ChunkError::Corrupt("zstd frame invalid")),
    }
}

// ---------------------------------------------------------------------------
// Decoding.

struct Header<'a> {
    /// Whether the zstd frame is stored without its magic number (v2).
    magicless: bool,
    n: usize,
    /// `None` for an empty chunk.
    flags: Option<u8>,
    /// Declared uncompressed length when zstd is used.
    raw_len: usize,
    /// Column bytes (compressed or not).
    payload: &'a [u8],
}

fn parse_header(bytes: &[u8]) -> Result<Header<'_>, ChunkError> {
    let data = match bytes.first() {
        Some(&(VERSION | VERSION_2)) if bytes.len() >= 2 => bytes,
        Some(&VERSION_1) => {
            if bytes.len() < 2 + CRC_LEN {
                return Err(ChunkError::Corrupt("sealed chunk too short"));
            }
            let (data, crc) = bytes.split_at(bytes.len() - CRC_LEN);
            let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
            if crc32c::crc32c(data) != want {
                return Err(ChunkError::Corrupt("sealed chunk checksum mismatch"));
            }
            data
        }
        Some(&(VERSION | VERSION_2)) | None => return Err(ChunkError::Corrupt("sealed chunk too short")),
        Some(_) => return Err(ChunkError::Corrupt("unknown sealed chunk version")),
    };
    let mut r = Reader::new(data);
    let version = r.byte()?;
    let magicless = version != VERSION_1;
    let n = r.uvarint()?;
    if n > MAX_SAMPLES as u64 {
        return Err(ChunkError::Corrupt("sealed chunk declares too many samples"));
    }
    let n = n as usize;
    if n == 0 {
        if !r.is_empty() {
            return Err(ChunkError::Corrupt("trailing bytes after empty sealed chunk"));
        }
        return Ok(Header { magicless, n, flags: None, raw_len: 0, payload: &[] });
    }
    let flags = r.byte()?;
    if flags & !KNOWN_FLAGS != 0
        || flags & FLAG_TIME_SHARED != 0 && flags & FLAG_TIME_GRID != 0
        || flags & (FLAG_ULP | FLAG_PLANES) != 0 && flags & SCHEME_MASK == SCHEME_XOR
        || flags & FLAG_PLANES != 0 && version != VERSION
    {
        return Err(ChunkError::Corrupt("unknown sealed chunk flags"));
    }
    let mut raw_len = 0;
    if flags & FLAG_ZSTD != 0 {
        let l = r.uvarint()?;
        // The largest legitimate column size: 10-byte varints for the
        // timestamps, and for the values either 8 planes or an exception
        // (10 + 8 bytes), a mantissa and a correction varint (10 + 10)
        // per sample, plus a header.
        if l > (n as u64) * 48 + 32 {
            return Err(ChunkError::Corrupt("sealed chunk declares an impossible length"));
        }
        // zstd blocks decode to at most 128 KiB each and take at least 3
        // bytes, so a frame of `len` bytes cannot legitimately expand beyond
        // this: a small hostile chunk cannot make us reserve much memory.
        if l > (r.rest().len() as u64 / 3 + 1) * (128 << 10) {
            return Err(ChunkError::Corrupt("sealed chunk declares an impossible length"));
        }
        raw_len = l as usize;
    }
    Ok(Header { magicless, n, flags: Some(flags), raw_len, payload: r.rest() })
}

/// Runs `f` on the uncompressed column bytes.
fn with_body<T>(h: &Header<'_>, f: impl FnOnce(&[u8]) -> Result<T, ChunkError>) -> Result<T, ChunkError> {
    if h.flags.unwrap_or(0) & FLAG_ZSTD == 0 {
        return f(h.payload);
    }
    SCRATCH.with(|scratch| {
        // Take the buffer out so that a nested call cannot observe a borrow.
        let mut buf = std::mem::take(&mut *scratch.borrow_mut());
        buf.clear();
        buf.reserve_exact(h.raw_len);
        let got = DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = zstd::bulk::Decompressor::new().ok();
            }
            match slot.as_mut() {
                // The output buffer's capacity bounds what zstd may write,
                // so a hostile frame cannot expand beyond the declared size.
                Some(d) if h.magicless => FRAME.with(|frame| {
                    let mut frame = frame.borrow_mut();
                    frame.clear();
                    frame.extend_from_slice(&ZSTD_MAGIC);
                    frame.extend_from_slice(h.payload);
                    let r = d.decompress_to_buffer(&frame[..], &mut buf).ok();
                    if frame.capacity() > 1 << 20 {
                        *frame = Vec::new();
                    }
                    r
                }),
                Some(d) => d.decompress_to_buffer(h.payload, &mut buf).ok(),
                None => None,
            }
        });
        let r = match got {
            Some(len) if len == h.raw_len && buf.len() == h.raw_len => f(&buf),
            _ => Err(ChunkError::Corrupt("sealed chunk zstd data invalid")),
        };
        // Do not keep a huge buffer alive after an unusually large chunk.
        if buf.capacity() <= 1 << 20 {
            *scratch.borrow_mut() = buf;
        }
        r
    })
}

fn decode_inner(bytes: &[u8], shared: Option<&[i64]>, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    let h = parse_header(bytes)?;
    let Some(flags) = h.flags else { return Ok(()) };
    let n = h.n;
    with_body(&h, |body| {
        // Every sample takes at least one byte of values, so a count larger
        // than the body is corrupt; checked before reserving memory.
        if n > body.len() {
            return Err(ChunkError::Corrupt("sealed chunk count exceeds its data"));
        }
        let mut r = Reader::new(body);
        let base = out.len();
        let ts = if flags & FLAG_TIME_SHARED != 0 {
            let ts = shared.ok_or(ChunkError::Corrupt("sealed chunk needs a shared timestamp column"))?;
            if ts.len() != n {
                return Err(ChunkError::Corrupt("shared timestamp column has the wrong length"));
            }
            Some(ts)
        } else {
            None
        };
        // Sized up front: the loops below write by position, not push.
        out.resize(base + n, Sample::default());
        let samples = &mut out[base..];
        match ts {
            Some(ts) => samples.iter_mut().zip(ts).for_each(|(s, &t)| s.t = t),
            None => read_timestamps(&mut r, flags & FLAG_TIME_GRID != 0, samples)?,
        }
        match flags & SCHEME_MASK {
            SCHEME_XOR => decode_xor(&mut r, samples)?,
            scheme => decode_decimal(&mut r, scheme, flags & FLAG_ULP != 0, flags & FLAG_PLANES != 0, samples)?,
        }
        if !r.is_empty() {
            return Err(ChunkError::Corrupt("trailing bytes in sealed chunk"));
        }
        Ok(())
    })
}

/// Fills `samples[..].t` from the timestamp column.
fn read_timestamps(r: &mut Reader<'_>, grid: bool, samples: &mut [Sample]) -> Result<(), ChunkError> {
    let Some((first, rest)) = samples.split_first_mut() else { return Ok(()) };
    let t0 = r.ivarint()?;
    first.t = t0;
    if rest.is_empty() {
        return Ok(());
    }
    let mut t = t0;
    if grid {
        let step = r.ivarint()?;
        let mut g = t0;
        for s in rest {
            g = g.wrapping_add(step);
            let next = g.wrapping_add(r.ivarint()?);
            if next <= t {
                return Err(ChunkError::Corrupt("sealed chunk timestamps not increasing"));
            }
            t = next;
            s.t = t;
        }
        return Ok(());
    }
    let mut d = 0i64;
    for s in rest {
        d = d.wrapping_add(r.ivarint()?);
        let next = t.wrapping_add(d);
        if next <= t {
            return Err(ChunkError::Corrupt("sealed chunk timestamps not increasing"));
        }
        t = next;
        s.t = t;
    }
    Ok(())
}

fn decode_decimal(
    r: &mut Reader<'_>,
    scheme: u8,
    ulp: bool,
    planes: bool,
    samples: &mut [Sample],
) -> Result<(), ChunkError> {
    let n = samples.len();
    let k = r.byte()? as usize;
    if k > MAX_DECIMALS {
        return Err(ChunkError::Corrupt("sealed chunk decimal exponent out of range"));
    }
    let exc_count = r.uvarint()?;
    if exc_count > n as u64 {
        return Err(ChunkError::Corrupt("sealed chunk has more exceptions than samples"));
    }
    // Exceptions come before the mantissas; remember where, patch after.
    let exc_start = r.pos;
    let mut idx = 0u64;
    for j in 0..exc_count {
        let gap = r.uvarint()?;
        idx = if j == 0 { gap } else { idx.saturating_add(gap).saturating_add(1) };
        if idx >= n as u64 {
            return Err(ChunkError::Corrupt("sealed chunk exception index out of range"));
        }
        r.take(8)?;
    }
    let scale = POW10[k];
    if planes {
        // x_0 as an ivarint, then `base`, `width` and `width` planes of
        // n - 1 bytes: x_i = base + (little-endian u64 of the planes' bytes).
        let x0 = r.ivarint()?;
        let base = r.ivarint()?;
        let width = r.byte()? as usize;
        if width == 0 || width > 8 || n < 2 {
            return Err(ChunkError::Corrupt("sealed chunk byte planes invalid"));
        }
        let bytes = r.take(width * (n - 1))?;
        // Plane by plane: each pass is a straight loop the compiler
        // vectorises, unlike gathering `width` strided bytes per entry.
        let mut xs = vec![0u64; n - 1];
        for (p, plane) in bytes.chunks_exact(n - 1).enumerate() {
            for (x, &b) in xs.iter_mut().zip(plane) {
                *x |= (b as u64) << (8 * p);
            }
        }
        let mut it = std::iter::once(x0).chain(xs.into_iter().map(|u| base.wrapping_add(u as i64)));
        let mut next = || it.next().ok_or(ChunkError::Corrupt("sealed chunk byte planes too short"));
        mantissas(scheme, scale, samples, &mut next)?;
    } else {
        mantissas(scheme, scale, samples, &mut || r.ivarint())?;
    }
    if ulp {
        for s in samples.iter_mut() {
            let c = r.ivarint()?;
            s.v = f64::from_bits(s.v.to_bits().wrapping_add(c as u64));
        }
    }
    // Patch the exceptions (indices were validated above).
    let mut er = Reader::new(&r.buf[exc_start..]);
    let mut idx = 0usize;
    for j in 0..exc_count {
        let gap = er.uvarint()? as usize;
        idx = if j == 0 { gap } else { idx + gap + 1 };
        let b = er.take(8)?;
        let bits = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        samples[idx].v = f64::from_bits(bits);
    }
    Ok(())
}

/// Turns the column's entries (from `next`, in order) into values by the
/// layout `scheme`; generic over the source so that each layout's loop
/// stays branch-free for both ivarints and planes.
#[inline(always)]
fn mantissas(
    scheme: u8,
    scale: f64,
    samples: &mut [Sample],
    next: &mut impl FnMut() -> Result<i64, ChunkError>,
) -> Result<(), ChunkError> {
    match scheme {
        SCHEME_DECIMAL_RAW => {
            for s in samples.iter_mut() {
                s.v = next()? as f64 / scale;
            }
        }
        SCHEME_DECIMAL_DELTA => {
            let mut m = 0i64;
            for s in samples.iter_mut() {
                m = m.wrapping_add(next()?);
                s.v = m as f64 / scale;
            }
        }
        _ => {
            // m_0, then m_1 - m_0, then delta-of-deltas: with d starting at
            // 0, "d += x; m += d" reproduces all three uniformly.
            let Some((first, rest)) = samples.split_first_mut() else { return Ok(()) };
            let mut m = next()?;
            first.v = m as f64 / scale;
            let mut d = 0i64;
            for s in rest.iter_mut() {
                d = d.wrapping_add(next()?);
                m = m.wrapping_add(d);
                s.v = m as f64 / scale;
            }
        }
    }
    Ok(())
}

fn decode_xor(r: &mut Reader<'_>, samples: &mut [Sample]) -> Result<(), ChunkError> {
    let n = samples.len();
    let planes = r.take(8 * n)?;
    let (p0, rest) = planes.split_at(n);
    let (p1, rest) = rest.split_at(n);
    let (p2, rest) = rest.split_at(n);
    let (p3, rest) = rest.split_at(n);
    let (p4, rest) = rest.split_at(n);
    let (p5, rest) = rest.split_at(n);
    let (p6, p7) = rest.split_at(n);
    let mut bits = 0u64;
    for (i, s) in samples.iter_mut().enumerate() {
        let x = u64::from_le_bytes([p0[i], p1[i], p2[i], p3[i], p4[i], p5[i], p6[i], p7[i]]);
        bits ^= x;
        s.v = f64::from_bits(bits);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Varints.

use crate::varint::{put_uvarint, put_varint as put_ivarint, unzigzag, uvarint_len, zigzag};

#[inline]
fn ivarint_len(v: i64) -> usize {
    uvarint_len(zigzag(v))
}

/// A bounds-checked cursor over bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn byte(&mut self) -> Result<u8, ChunkError> {
        let b = *self.buf.get(self.pos).ok_or(ChunkError::Corrupt("sealed chunk truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ChunkError> {
        let end = self.pos.checked_add(len).ok_or(ChunkError::Corrupt("sealed chunk truncated"))?;
        let s = self.buf.get(self.pos..end).ok_or(ChunkError::Corrupt("sealed chunk truncated"))?;
        self.pos = end;
        Ok(s)
    }

    #[inline(always)]
    fn uvarint(&mut self) -> Result<u64, ChunkError> {
        // Fast paths for one- and two-byte varints (zero and small deltas,
        // the common cases); longer ones take the general loop.
        if let Some(&b0) = self.buf.get(self.pos) {
            if b0 < 0x80 {
                self.pos += 1;
                return Ok(b0 as u64);
            }
            if let Some(&b1) = self.buf.get(self.pos + 1) {
                if b1 < 0x80 {
                    self.pos += 2;
                    return Ok((b0 & 0x7f) as u64 | (b1 as u64) << 7);
                }
            }
        }
        self.uvarint_slow()
    }

    #[inline(never)]
    fn uvarint_slow(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(ChunkError::Corrupt("sealed chunk varint overflows 64 bits"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ChunkError::Corrupt("sealed chunk varint too long"))
    }

    #[inline(always)]
    fn ivarint(&mut self) -> Result<i64, ChunkError> {
        self.uvarint().map(unzigzag)
    }
}

#[cfg(test)]
mod tests;

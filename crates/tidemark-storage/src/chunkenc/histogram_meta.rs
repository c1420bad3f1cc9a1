//! What the integer and float histogram chunk codecs share: the chunk
//! header, the bucket layout written once per chunk, the "varbit" integer
//! encoding, XOR floats, counter-reset headers, the outcome of an append and
//! the bucket-layout arithmetic (inserting buckets that appear, merging span
//! lists) that lets a growing histogram stay in one chunk.
//!
//! The bit layout is Prometheus' (`tsdb/chunkenc/histogram_meta.go`,
//! `varbit.go`), byte for byte; `docs/format/histogram_chunks.md` describes
//! every bit.

use super::bstream::{BitReader, BitWriter};
use crate::error::ChunkError;
use crate::histogram::{is_custom_buckets, is_valid_schema, CounterResetHint, Span};

/// Bytes before a histogram chunk's bit stream: the big-endian sample
/// count (2 bytes) and the flag byte.
pub const HEADER_LEN: usize = 3;

/// Offset of the flag byte, whose two top bits are the chunk's
/// [`CounterResetHeader`].
pub const FLAG_POS: usize = 2;

/// Most samples one histogram chunk can hold (the count is a `u16`).
pub const MAX_SAMPLES: usize = u16::MAX as usize;

/// Mask of the counter-reset bits in the flag byte.
const COUNTER_RESET_MASK: u8 = 0b1100_0000;

/// What a histogram chunk says about the counter reset before its first
/// sample (Prometheus' `CounterResetHeader`), in the two top bits of its flag
/// byte. Later samples of a chunk never follow a counter reset: the appender
/// cuts a new chunk at every reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CounterResetHeader {
    /// Not known whether the chunk starts after a reset (bits `00`).
    #[default]
    Unknown,
    /// The chunk was cut because the counter was reset (bits `10`).
    CounterReset,
    /// The chunk was cut without a counter reset (bits `01`).
    NotCounterReset,
    /// The chunk holds gauge histograms (bits `11`).
    Gauge,
}

impl CounterResetHeader {
    /// The header in a flag byte (its two top bits; the rest is ignored).
    pub fn from_flag_byte(b: u8) -> CounterResetHeader {
        match b & COUNTER_RESET_MASK {
            0b1000_0000 => CounterResetHeader::CounterReset,
            0b0100_0000 => CounterResetHeader::NotCounterReset,
            0b1100_0000 => CounterResetHeader::Gauge,
            _ => CounterResetHeader::Unknown,
        }
    }

    /// The header's bits, in place in the flag byte.
    pub fn flag_bits(self) -> u8 {
        match self {
            CounterResetHeader::Unknown => 0,
            CounterResetHeader::CounterReset => 0b1000_0000,
            CounterResetHeader::NotCounterReset => 0b0100_0000,
            CounterResetHeader::Gauge => 0b1100_0000,
        }
    }

    /// The header matching a sample's hint (Prometheus'
    /// `CounterResetHintToHeader`).
    pub fn from_hint(hint: CounterResetHint) -> CounterResetHeader {
        match hint {
            CounterResetHint::CounterReset => CounterResetHeader::CounterReset,
            CounterResetHint::NotCounterReset => CounterResetHeader::NotCounterReset,
            CounterResetHint::Gauge => CounterResetHeader::Gauge,
            CounterResetHint::Unknown => CounterResetHeader::Unknown,
        }
    }

    /// The hint a reader gives the `n`th sample (1-based) of a chunk with
    /// this header, as Prometheus' iterators do: every sample of a gauge
    /// chunk is [`CounterResetHint::Gauge`]; from the second sample on,
    /// [`CounterResetHint::NotCounterReset`] (a chunk holds no reset after
    /// its first sample); the first sample [`CounterResetHint::Unknown`]
    /// whatever the header says, because the chunk before it may be gone or
    /// may not be the one the header was computed against (out-of-order
    /// data, backfill): a reader compares it with the previous sample.
    pub fn sample_hint(self, n: usize) -> CounterResetHint {
        match self {
            CounterResetHeader::Gauge => CounterResetHint::Gauge,
            _ if n > 1 => CounterResetHint::NotCounterReset,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// Why an append cut a new chunk instead of adding to the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutReason {
    /// The sample's hint says [`CounterResetHint::CounterReset`].
    ExplicitCounterReset,
    /// The observation count went down: a counter reset.
    CountDecreased,
    /// The zero bucket's count went down: a counter reset.
    ZeroCountDecreased,
    /// A bucket's count went down: a counter reset.
    BucketDecreased,
    /// A bucket with a non-zero count is missing from the sample (a chunk
    /// cannot drop buckets): treated as a counter reset, as Prometheus does.
    BucketVanished,
    /// The custom bucket bounds differ (custom-bucket schema): treated as a
    /// counter reset, as Prometheus does.
    CustomValuesChanged,
    /// The schema differs.
    SchemaChanged,
    /// The zero bucket's width differs.
    ZeroThresholdChanged,
    /// The chunk's last sample is a staleness marker and this one is not:
    /// a chunk holds nothing but markers after its first marker.
    AfterStaleMarker,
    /// A counter histogram after gauge histograms, or the reverse: a chunk
    /// holds one kind only.
    KindChanged,
    /// The chunk holds [`MAX_SAMPLES`] samples.
    Full,
}

impl CutReason {
    /// Whether the cut is a counter reset (the new chunk's header says
    /// [`CounterResetHeader::CounterReset`]).
    pub fn is_counter_reset(self) -> bool {
        matches!(
            self,
            CutReason::ExplicitCounterReset
                | CutReason::CountDecreased
                | CutReason::ZeroCountDecreased
                | CutReason::BucketDecreased
                | CutReason::BucketVanished
                | CutReason::CustomValuesChanged
        )
    }
}

/// What happened to a sample given to an appender's `append`.
#[derive(Debug, Clone)]
pub enum AppendOutcome<A> {
    /// The sample was appended to the chunk.
    Appended,
    /// The sample brought buckets the chunk did not have: the chunk was
    /// rewritten with the wider layout (every earlier sample has the new
    /// buckets, empty) and the sample appended. The chunk's bytes changed
    /// before the sample's, not only after them.
    Recoded,
    /// The sample cannot go into this chunk. `next` is a new chunk holding
    /// the sample as its first, its header set as Prometheus sets it; this
    /// chunk is unchanged and complete.
    Cut {
        /// Why.
        reason: CutReason,
        /// The new chunk.
        next: A,
    },
}

/// A histogram an appender refuses: appending it would lose data or break
/// the chunk's invariants. The chunk is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramAppendError {
    /// The schema is neither −4…8 nor the custom-bucket schema.
    #[error("histogram has invalid schema {0}")]
    InvalidSchema(i32),
    /// The spans' lengths do not add up to the number of buckets.
    #[error("histogram {side} spans cover {spans} buckets but it has {buckets}")]
    SpansBucketsMismatch {
        /// `"positive"` or `"negative"`.
        side: &'static str,
        /// Buckets the spans cover.
        spans: u64,
        /// Buckets given.
        buckets: usize,
    },
    /// A span after the first has a negative offset.
    #[error("histogram {side} span {index} has negative offset {offset}")]
    NegativeSpanOffset {
        /// `"positive"` or `"negative"`.
        side: &'static str,
        /// Index of the span.
        index: usize,
        /// Its offset.
        offset: i32,
    },
    /// Custom bucket bounds on a schema other than the custom one.
    #[error("histogram with schema {0} has custom bucket bounds")]
    CustomValuesWithoutCustomSchema(i32),
    /// The appender's own state is inconsistent (its chunk failed to decode
    /// while being rewritten, or a sample's buckets do not match the layout
    /// after widening): a bug or memory corruption. The chunk is left as it
    /// was.
    #[error("histogram appender state is inconsistent: {0}")]
    Inconsistent(ChunkError),
}

/// Checks what the codec relies on to store a histogram's layout and
/// buckets: a known schema, span lengths matching the bucket counts,
/// negative offsets only in the first span, custom bounds only with the
/// custom schema. (Counts themselves are not checked: the codec stores any.)
pub(crate) fn check_layout(
    schema: i32,
    positive_spans: &[Span],
    positive_buckets: usize,
    negative_spans: &[Span],
    negative_buckets: usize,
    custom_values: &[f64],
) -> Result<(), HistogramAppendError> {
    if !is_valid_schema(schema) {
        return Err(HistogramAppendError::InvalidSchema(schema));
    }
    if !custom_values.is_empty() && !is_custom_buckets(schema) {
        return Err(HistogramAppendError::CustomValuesWithoutCustomSchema(schema));
    }
    for (side, spans, buckets) in
        [("positive", positive_spans, positive_buckets), ("negative", negative_spans, negative_buckets)]
    {
        if let Some((index, s)) = spans.iter().enumerate().skip(1).find(|(_, s)| s.offset < 0) {
            return Err(HistogramAppendError::NegativeSpanOffset { side, index, offset: s.offset });
        }
        let covered = count_spans(spans);
        if covered != buckets as u64 {
            return Err(HistogramAppendError::SpansBucketsMismatch { side, spans: covered, buckets });
        }
    }
    Ok(())
}

/// Buckets the spans cover.
pub(crate) fn count_spans(spans: &[Span]) -> u64 {
    spans.iter().map(|s| u64::from(s.length)).sum()
}

// ---------------------------------------------------------------------------
// Varbit integers.

/// (prefix, prefix bits, payload bits) of the varbit buckets after `0`; a
/// value that fits none takes the prefix `11111111` and 64 bits.
const VARBIT_BUCKETS: [(u64, u32, u32); 7] = [
    (0b10, 2, 3),
    (0b110, 3, 6),
    (0b1110, 4, 9),
    (0b11110, 5, 12),
    (0b111110, 6, 18),
    (0b1111110, 7, 25),
    (0b11111110, 8, 56),
];

/// Whether `x` fits a signed `bits`-wide varbit bucket (Prometheus'
/// `bitRange`: `-(2^(bits-1) - 1) ..= 2^(bits-1)`).
#[inline]
fn fits_signed(x: i64, bits: u32) -> bool {
    let half = 1i64 << (bits - 1);
    -(half - 1) <= x && x <= half
}

/// Writes a signed integer in Prometheus' varbit encoding: `0` for zero,
/// else a prefix of 1s ended by a 0 choosing a payload of 3, 6, 9, 12, 18,
/// 25 or 56 bits, or eight 1s and 64 bits.
pub(crate) fn put_varbit_int(w: &mut BitWriter, v: i64) {
    if v == 0 {
        w.write_bit(false);
        return;
    }
    for (prefix, plen, bits) in VARBIT_BUCKETS {
        if fits_signed(v, bits) {
            let payload = v as u64 & ((1u64 << bits) - 1);
            w.write_bits(prefix, plen);
            w.write_bits(payload, bits);
            return;
        }
    }
    w.write_bits(0xff, 8);
    w.write_bits(v as u64, 64);
}

/// Writes an unsigned integer in the varbit encoding (the same buckets,
/// unsigned payloads).
pub(crate) fn put_varbit_uint(w: &mut BitWriter, v: u64) {
    if v == 0 {
        w.write_bit(false);
        return;
    }
    for (prefix, plen, bits) in VARBIT_BUCKETS {
        if v < (1u64 << bits) {
            w.write_bits(prefix, plen);
            w.write_bits(v, bits);
            return;
        }
    }
    w.write_bits(0xff, 8);
    w.write_bits(v, 64);
}

/// Reads a varbit prefix: the payload width, or 64 for eight 1s; `None` at
/// the end of the data.
#[inline]
fn read_varbit_width<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Option<u32> {
    let mut ones = 0u32;
    while ones < 8 {
        if !r.read_bit()? {
            break;
        }
        ones += 1;
    }
    Some(match ones {
        0 => 0,
        1 => 3,
        2 => 6,
        3 => 9,
        4 => 12,
        5 => 18,
        6 => 25,
        7 => 56,
        _ => 64,
    })
}

/// Reads a signed varbit integer; `None` at the end of the data.
pub(crate) fn read_varbit_int<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Option<i64> {
    match read_varbit_width(r)? {
        0 => Some(0),
        64 => r.read_bits(64).map(|v| v as i64),
        bits => {
            let raw = r.read_bits(bits)?;
            let half = 1u64 << (bits - 1);
            Some(if raw > half { raw as i64 - (1i64 << bits) } else { raw as i64 })
        }
    }
}

/// Reads an unsigned varbit integer; `None` at the end of the data.
pub(crate) fn read_varbit_uint<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Option<u64> {
    match read_varbit_width(r)? {
        0 => Some(0),
        bits => r.read_bits(bits),
    }
}

/// Skips one varbit integer (signed or not); `None` at the end of the data.
pub(crate) fn skip_varbit<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Option<()> {
    let bits = read_varbit_width(r)?;
    r.read_bits(bits).map(|_| ())
}

// ---------------------------------------------------------------------------
// XOR floats.

/// One XOR-encoded float field: its last value's bits and the window of
/// meaningful bits of its last XOR (`leading == 0xff`: no window yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XorState {
    pub(crate) bits: u64,
    pub(crate) leading: u8,
    pub(crate) trailing: u8,
}

impl XorState {
    /// A field whose first value was written raw: no window yet.
    pub(crate) fn new(bits: u64) -> XorState {
        XorState { bits, leading: 0xff, trailing: 0 }
    }

    /// A reader's state for a field whose first value was read raw: a
    /// window of all 64 bits (what a writer never reuses before setting one,
    /// so any valid stream reads the same).
    pub(crate) fn reading(bits: u64) -> XorState {
        XorState { bits, leading: 0, trailing: 0 }
    }
}

/// Writes `bits` XOR the field's last value, Gorilla style: `0` when equal,
/// `10` and the bits in the previous window when they fit it, else `11`,
/// 5 bits of leading zeros, 6 bits of meaningful-bit count (64 as 0) and the
/// meaningful bits.
pub(crate) fn put_xor(w: &mut BitWriter, st: &mut XorState, bits: u64) {
    let delta = bits ^ st.bits;
    st.bits = bits;
    if delta == 0 {
        w.write_bit(false);
        return;
    }
    let leading = (delta.leading_zeros() as u8).min(31);
    let trailing = delta.trailing_zeros() as u8;
    if st.leading != 0xff && leading >= st.leading && trailing >= st.trailing {
        let sig = 64 - u32::from(st.leading) - u32::from(st.trailing);
        w.write_bits(0b10, 2);
        w.write_bits(delta >> st.trailing, sig);
        return;
    }
    st.leading = leading;
    st.trailing = trailing;
    let sig = 64 - u32::from(leading) - u32::from(trailing);
    w.write_bits(0b11, 2);
    w.write_bits(u64::from(leading), 5);
    w.write_bits(u64::from(sig) & 0x3f, 6);
    w.write_bits(delta >> trailing, sig);
}

/// Reads what [`put_xor`] wrote into the field; `None` at the end of the
/// data or for a window wider than 64 bits.
pub(crate) fn read_xor<B: AsRef<[u8]>>(r: &mut BitReader<B>, st: &mut XorState) -> Option<()> {
    if !r.read_bit()? {
        return Some(());
    }
    if r.read_bit()? {
        let leading = r.read_bits(5)? as u8;
        let sig = match r.read_bits(6)? as u8 {
            0 => 64,
            n => n,
        };
        if u32::from(leading) + u32::from(sig) > 64 {
            return None;
        }
        st.leading = leading;
        st.trailing = 64 - leading - sig;
    }
    let sig = 64u32.checked_sub(u32::from(st.leading) + u32::from(st.trailing)).filter(|&s| s > 0)?;
    let v = r.read_bits(sig)?;
    st.bits ^= v << st.trailing;
    Some(())
}

// ---------------------------------------------------------------------------
// The layout.

/// A chunk's bucket layout, written once before its first sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Layout {
    pub(crate) schema: i32,
    pub(crate) zero_threshold: f64,
    pub(crate) positive_spans: Vec<Span>,
    pub(crate) negative_spans: Vec<Span>,
    pub(crate) custom_values: Vec<f64>,
}

/// Writes the zero threshold: `0` for zero; a power of two 2^-243…2^10 as
/// one byte (its `frexp` exponent + 243, 1…254); anything else as 255 and
/// the 64 bits of the float.
fn put_zero_threshold(w: &mut BitWriter, threshold: f64) {
    if threshold == 0.0 {
        w.write_bits(0, 8);
        return;
    }
    let bits = threshold.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & ((1u64 << 52) - 1);
    // A positive normal power of two is 0.5 * 2^exp with exp = biased - 1022.
    let exp = biased - 1022;
    if bits >> 63 == 0 && mantissa == 0 && (1..=2046).contains(&biased) && (-242..=11).contains(&exp) {
        w.write_bits((exp + 243) as u64, 8);
    } else {
        w.write_bits(0xff, 8);
        w.write_bits(bits, 64);
    }
}

fn read_zero_threshold<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Option<f64> {
    Some(match r.read_bits(8)? {
        0 => 0.0,
        255 => f64::from_bits(r.read_bits(64)?),
        // 0.5 * 2^(b - 243) = 2^(b - 244), a normal float for b in 1..=254.
        b => f64::from_bits(((b as i64 - 244 + 1023) as u64) << 52),
    })
}

/// Writes a custom bucket bound: a multiple of 0.001 in 0…33554.430 as the
/// unsigned varbit `bound * 1000 + 1`; anything else as a `0` bit and the 64
/// bits of the float.
fn put_custom_bound(w: &mut BitWriter, f: f64) {
    let tf = f * 1000.0;
    let whole = tf.round();
    if !(0.0..=33_554_430.0).contains(&tf) || whole / 1000.0 != f {
        w.write_bit(false);
        w.write_bits(f.to_bits(), 64);
        return;
    }
    put_varbit_uint(w, whole as u64 + 1);
}

fn read_custom_bound<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Option<f64> {
    match read_varbit_uint(r)? {
        0 => r.read_bits(64).map(f64::from_bits),
        v => Some((v - 1) as f64 / 1000.0),
    }
}

fn put_spans(w: &mut BitWriter, spans: &[Span]) {
    put_varbit_uint(w, spans.len() as u64);
    for s in spans {
        put_varbit_uint(w, u64::from(s.length));
        put_varbit_int(w, i64::from(s.offset));
    }
}

fn read_spans<B: AsRef<[u8]>>(r: &mut BitReader<B>) -> Result<Vec<Span>, &'static str> {
    const END: &str = "histogram chunk ends inside its layout";
    let n = read_varbit_uint(r).ok_or(END)?;
    let mut spans = Vec::new();
    // Each span takes at least two bits: the loop ends at the data's end.
    for i in 0..n {
        let length = read_varbit_uint(r).ok_or(END)?;
        let offset = read_varbit_int(r).ok_or(END)?;
        let length = u32::try_from(length).map_err(|_| "histogram chunk span length over 2^32")?;
        let offset = i32::try_from(offset).map_err(|_| "histogram chunk span offset out of range")?;
        if i > 0 && offset < 0 {
            return Err("histogram chunk span after the first has a negative offset");
        }
        spans.push(Span { offset, length });
    }
    Ok(spans)
}

/// Writes the layout: zero threshold, schema (signed varbit), positive and
/// negative spans (each: count, then length and offset per span), and for
/// the custom-bucket schema the bounds (count, then each bound).
pub(crate) fn write_layout(
    w: &mut BitWriter,
    schema: i32,
    zero_threshold: f64,
    positive_spans: &[Span],
    negative_spans: &[Span],
    custom_values: &[f64],
) {
    put_zero_threshold(w, zero_threshold);
    put_varbit_int(w, i64::from(schema));
    put_spans(w, positive_spans);
    put_spans(w, negative_spans);
    if is_custom_buckets(schema) {
        put_varbit_uint(w, custom_values.len() as u64);
        for &b in custom_values {
            put_custom_bound(w, b);
        }
    }
}

/// Reads a layout; rejects unknown schemas, spans that do not fit their
/// types and bucket counts the data cannot hold (`data_bits` bounds them: a
/// bucket takes at least one bit per sample).
pub(crate) fn read_layout<B: AsRef<[u8]>>(r: &mut BitReader<B>, data_bits: u64) -> Result<Layout, &'static str> {
    const END: &str = "histogram chunk ends inside its layout";
    let zero_threshold = read_zero_threshold(r).ok_or(END)?;
    let schema = read_varbit_int(r).ok_or(END)?;
    let schema = i32::try_from(schema).map_err(|_| "histogram chunk has an invalid schema")?;
    if !is_valid_schema(schema) {
        return Err("histogram chunk has an invalid schema");
    }
    let positive_spans = read_spans(r)?;
    let negative_spans = read_spans(r)?;
    if count_spans(&positive_spans) + count_spans(&negative_spans) > data_bits {
        return Err("histogram chunk declares more buckets than it can hold");
    }
    let mut custom_values = Vec::new();
    if is_custom_buckets(schema) {
        let n = read_varbit_uint(r).ok_or(END)?;
        // Each bound takes at least five bits: the loop ends at the data's end.
        for _ in 0..n {
            custom_values.push(read_custom_bound(r).ok_or(END)?);
        }
    }
    Ok(Layout { schema, zero_threshold, positive_spans, negative_spans, custom_values })
}

/// Whether two lists of custom bounds are equal (by value, as Prometheus'
/// `CustomBucketBoundsMatch`).
pub(crate) fn custom_bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The chunk header of a new chunk: zero samples, the given counter-reset
/// header.
pub(crate) fn new_chunk_writer(header: CounterResetHeader) -> BitWriter {
    BitWriter::with_bytes(vec![0, 0, header.flag_bits()])
}

/// Reads the sample count and header of a chunk's bytes.
pub(crate) fn read_header(b: &[u8]) -> Result<(u16, CounterResetHeader), &'static str> {
    if b.len() < HEADER_LEN {
        return Err("histogram chunk shorter than its header");
    }
    Ok((u16::from_be_bytes([b[0], b[1]]), CounterResetHeader::from_flag_byte(b[FLAG_POS])))
}

// ---------------------------------------------------------------------------
// Bucket layout arithmetic.

/// The bucket indices the spans cover, in order.
#[derive(Debug, Clone)]
pub(crate) struct BucketIndices<'a> {
    spans: &'a [Span],
    /// Span being walked.
    si: usize,
    /// Buckets left in it.
    left: u32,
    /// Index of its next bucket.
    idx: i64,
}

impl<'a> BucketIndices<'a> {
    pub(crate) fn new(spans: &'a [Span]) -> BucketIndices<'a> {
        let (left, idx) = spans.first().map_or((0, 0), |s| (s.length, i64::from(s.offset)));
        BucketIndices { spans, si: 0, left, idx }
    }
}

impl Iterator for BucketIndices<'_> {
    type Item = i64;
    fn next(&mut self) -> Option<i64> {
        loop {
            if self.left > 0 {
                self.left -= 1;
                let i = self.idx;
                self.idx += 1;
                return Some(i);
            }
            self.si += 1;
            let s = self.spans.get(self.si)?;
            self.idx += i64::from(s.offset);
            self.left = s.length;
        }
    }
}

/// Builds spans from increasing bucket indices.
#[derive(Debug, Default)]
struct SpanBuilder {
    spans: Vec<Span>,
    last: i64,
}

impl SpanBuilder {
    fn add(&mut self, idx: i64) {
        match self.spans.last_mut() {
            Some(s) if idx == self.last + 1 => s.length += 1,
            Some(_) => self.spans.push(Span { offset: (idx - self.last - 1) as i32, length: 1 }),
            None => self.spans.push(Span { offset: idx as i32, length: 1 }),
        }
        self.last = idx;
    }
}

/// The next step of walking two increasing index lists together.
enum Step {
    /// Both lists have this index.
    Both(i64),
    /// Only the first list has this index (the lower one).
    OnlyA(i64),
    /// Only the second list has this index (the lower one).
    OnlyB(i64),
    /// Both lists are done.
    Done,
}

fn step(a: Option<i64>, b: Option<i64>) -> Step {
    match (a, b) {
        (Some(x), Some(y)) if x == y => Step::Both(x),
        (Some(x), Some(y)) if x < y => Step::OnlyA(x),
        (Some(x), None) => Step::OnlyA(x),
        (_, Some(y)) => Step::OnlyB(y),
        (None, None) => Step::Done,
    }
}

/// `num` new buckets (empty) to insert before the `pos`th bucket of a list;
/// `bucket_idx` is the index of the first of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Insert {
    pub(crate) pos: usize,
    pub(crate) num: usize,
    pub(crate) bucket_idx: i64,
}

/// Why a counter histogram's buckets are not appendable to a chunk's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketReset {
    /// A bucket's count went down.
    Decreased,
    /// A bucket with a non-zero count is missing.
    Vanished,
}

/// For a counter histogram: the inserts that widen the chunk's layout `a`
/// (last counts `a_counts`, absolute) to take `b`'s new buckets (forward),
/// and the inserts that widen `b` (counts `b_counts`) with `a`'s buckets it
/// lacks, which must be empty in `a` (backward). A bucket that went down, or
/// a non-empty one `b` lacks, is a reset (Prometheus'
/// `expandIntSpansAndBuckets` / `expandFloatSpansAndBuckets`).
pub(crate) fn expand_spans_and_buckets<T: Copy + PartialOrd + Default>(
    a: &[Span],
    b: &[Span],
    mut a_counts: impl Iterator<Item = T>,
    mut b_counts: impl Iterator<Item = T>,
) -> Result<(Vec<Insert>, Vec<Insert>), BucketReset> {
    let zero = T::default();
    let mut ai = BucketIndices::new(a);
    let mut bi = BucketIndices::new(b);
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    let (mut a_inter, mut b_inter) = (Insert::default(), Insert::default());
    let mut a_idx = ai.next();
    let mut b_idx = bi.next();
    let mut a_count = if a_idx.is_some() { a_counts.next().unwrap_or(zero) } else { zero };
    let mut b_count = if b_idx.is_some() { b_counts.next().unwrap_or(zero) } else { zero };

    fn add_insert(inserts: &mut Vec<Insert>, ins: &mut Insert, other_idx: i64) {
        if ins.num == 0 {
            ins.bucket_idx = other_idx;
        } else if ins.bucket_idx + ins.num as i64 != other_idx {
            inserts.push(*ins);
            ins.num = 0;
            ins.bucket_idx = other_idx;
        }
        ins.num += 1;
    }

    macro_rules! advance {
        ($inter:ident, $inserts:ident, $it:ident, $idx:ident, $counts:ident, $count:ident) => {
            if $inter.num > 0 {
                $inserts.push($inter);
                $inter.num = 0;
            }
            $idx = $it.next();
            $inter.pos += 1;
            if $idx.is_some() {
                $count = $counts.next().unwrap_or(zero);
            }
        };
    }

    loop {
        match step(a_idx, b_idx) {
            Step::Both(_) => {
                if a_count > b_count {
                    return Err(BucketReset::Decreased);
                }
                advance!(a_inter, forward, ai, a_idx, a_counts, a_count);
                advance!(b_inter, backward, bi, b_idx, b_counts, b_count);
            }
            Step::OnlyA(x) => {
                // `b` lacks a bucket of `a`: fine if it is empty in `a`.
                if a_count != zero {
                    return Err(BucketReset::Vanished);
                }
                add_insert(&mut backward, &mut b_inter, x);
                advance!(a_inter, forward, ai, a_idx, a_counts, a_count);
            }
            Step::OnlyB(y) => {
                // `a` lacks a bucket of `b`: insert it into `a`.
                add_insert(&mut forward, &mut a_inter, y);
                advance!(b_inter, backward, bi, b_idx, b_counts, b_count);
            }
            Step::Done => {
                if a_inter.num > 0 {
                    forward.push(a_inter);
                }
                if b_inter.num > 0 {
                    backward.push(b_inter);
                }
                return Ok((forward, backward));
            }
        }
    }
}

/// For gauge histograms, where buckets may come and go: the inserts that
/// widen `a` with the buckets only `b` has (forward), those that widen `b`
/// with the buckets only `a` has (backward), and the spans of the union
/// (Prometheus' `expandSpansBothWays`).
pub(crate) fn expand_spans_both_ways(a: &[Span], b: &[Span]) -> (Vec<Insert>, Vec<Insert>, Vec<Span>) {
    let mut ai = BucketIndices::new(a);
    let mut bi = BucketIndices::new(b);
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    let (mut f, mut bk) = (Insert::default(), Insert::default());
    let mut merged = SpanBuilder::default();
    let mut av = ai.next();
    let mut bv = bi.next();
    loop {
        match step(av, bv) {
            Step::Both(x) => {
                if f.num > 0 {
                    forward.push(f);
                    f.num = 0;
                }
                if bk.num > 0 {
                    backward.push(bk);
                    bk.num = 0;
                }
                merged.add(x);
                av = ai.next();
                bv = bi.next();
                f.pos += 1;
                bk.pos += 1;
            }
            Step::OnlyA(x) => {
                // Only in `a`: `b` needs it.
                bk.num += 1;
                if f.num > 0 {
                    forward.push(f);
                    f.num = 0;
                }
                merged.add(x);
                f.pos += 1;
                av = ai.next();
            }
            Step::OnlyB(y) => {
                // Only in `b`: `a` needs it.
                f.num += 1;
                if bk.num > 0 {
                    backward.push(bk);
                    bk.num = 0;
                }
                merged.add(y);
                bk.pos += 1;
                bv = bi.next();
            }
            Step::Done => {
                if f.num > 0 {
                    forward.push(f);
                }
                if bk.num > 0 {
                    backward.push(bk);
                }
                return (forward, backward, merged.spans);
            }
        }
    }
}

/// The spans `spans` widened with the buckets of `inserts` (which name
/// their indices; none of them is in `spans`).
pub(crate) fn adjust_for_inserts(spans: &[Span], inserts: &[Insert]) -> Vec<Span> {
    if inserts.is_empty() {
        return spans.to_vec();
    }
    let mut out = SpanBuilder::default();
    let mut pending = inserts.iter().flat_map(|ins| (0..ins.num as i64).map(move |k| ins.bucket_idx + k)).peekable();
    for idx in BucketIndices::new(spans) {
        while let Some(&p) = pending.peek() {
            if p >= idx {
                break;
            }
            out.add(p);
            pending.next();
        }
        out.add(idx);
    }
    for p in pending {
        out.add(p);
    }
    out.spans
}

/// Delta-encoded buckets (`input`, as integer histograms keep them) with
/// the empty buckets of `inserts` added: each inserted run starts with the
/// delta back to zero, and the bucket after it gets the delta up again.
pub(crate) fn insert_deltas(input: &[i64], inserts: &[Insert]) -> Vec<i64> {
    let mut out = Vec::with_capacity(input.len() + inserts.iter().map(|i| i.num).sum::<usize>());
    let mut v = 0i64;
    let mut ii = 0;
    for (i, &d) in input.iter().enumerate() {
        if ii < inserts.len() && inserts[ii].pos == i {
            let mut first = true;
            while ii < inserts.len() && inserts[ii].pos == i {
                out.push(if first { v.wrapping_neg() } else { 0 });
                first = false;
                out.extend(std::iter::repeat_n(0, inserts[ii].num.saturating_sub(1)));
                ii += 1;
            }
            out.push(d.wrapping_add(v));
        } else {
            out.push(d);
        }
        v = v.wrapping_add(d);
    }
    for ins in &inserts[ii..] {
        out.push(v.wrapping_neg());
        out.extend(std::iter::repeat_n(0, ins.num.saturating_sub(1)));
        v = 0;
    }
    out
}

/// Absolute buckets (float histograms) with the empty buckets of `inserts`
/// added.
pub(crate) fn insert_absolute(input: &[f64], inserts: &[Insert]) -> Vec<f64> {
    let mut out = Vec::with_capacity(input.len() + inserts.iter().map(|i| i.num).sum::<usize>());
    let mut ii = 0;
    for (i, &d) in input.iter().enumerate() {
        while ii < inserts.len() && inserts[ii].pos == i {
            out.extend(std::iter::repeat_n(0.0, inserts[ii].num));
            ii += 1;
        }
        out.push(d);
    }
    for ins in &inserts[ii..] {
        out.extend(std::iter::repeat_n(0.0, ins.num));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sp(v: &[(i32, u32)]) -> Vec<Span> {
        v.iter().map(|&(offset, length)| Span { offset, length }).collect()
    }

    #[test]
    fn varbits_round_trip_at_every_bucket_edge() {
        let mut ints = vec![0i64, 1, -1, i64::MIN, i64::MAX];
        let mut uints = vec![0u64, 1, u64::MAX];
        for bits in [3u32, 6, 9, 12, 18, 25, 56] {
            let half = 1i64 << (bits - 1);
            ints.extend([half, half + 1, -(half - 1), -half]);
            uints.extend([(1u64 << bits) - 1, 1u64 << bits]);
        }
        let mut w = BitWriter::new();
        for &v in &ints {
            put_varbit_int(&mut w, v);
        }
        for &v in &uints {
            put_varbit_uint(&mut w, v);
        }
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes[..], 0);
        for &v in &ints {
            assert_eq!(read_varbit_int(&mut r), Some(v));
        }
        for &v in &uints {
            assert_eq!(read_varbit_uint(&mut r), Some(v));
        }
    }

    #[test]
    fn varbit_sizes_match_prometheus() {
        // 0 → 1 bit, 4 → 5 bits, -3 → 5 bits, 5 → 9 bits, 2^55 → 64 bits,
        // 2^55 + 1 → 72 bits.
        for (v, bits) in [(0i64, 1usize), (4, 5), (-3, 5), (5, 9), (-4, 9), (256, 13), (2048, 17), (1 << 55, 64)] {
            let mut w = BitWriter::new();
            put_varbit_int(&mut w, v);
            w.write_bit(true);
            let len = w.bytes().len();
            assert_eq!(len, (bits + 1).div_ceil(8), "{v}");
        }
        let mut w = BitWriter::new();
        put_varbit_int(&mut w, (1 << 55) + 1);
        assert_eq!(w.bytes().len(), 9, "8 prefix bits and 64");
    }

    #[test]
    fn zero_thresholds_take_one_byte_when_powers_of_two() {
        for (t, len) in
            [(0.0, 1), (2f64.powi(-128), 1), (1.0, 1), (1024.0, 1), (2f64.powi(-243), 1), (2048.0, 9), (0.001, 9)]
        {
            let mut w = BitWriter::new();
            put_zero_threshold(&mut w, t);
            let b = w.into_bytes();
            assert_eq!(b.len(), len, "{t}");
            assert_eq!(read_zero_threshold(&mut BitReader::new(&b[..], 0)), Some(t));
        }
        // The default threshold 2^-128 is byte 116, as in Prometheus.
        let mut w = BitWriter::new();
        put_zero_threshold(&mut w, 2f64.powi(-128));
        assert_eq!(w.bytes(), &[116]);
    }

    #[test]
    fn custom_bounds_round_trip() {
        let bounds = [0.0, 0.001, 0.005, 0.1, 1.0, 2.5, 33_554.43, 33_554.431, -1.0, 1e300, f64::INFINITY, 0.1234567];
        let mut w = BitWriter::new();
        for &b in &bounds {
            put_custom_bound(&mut w, b);
        }
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes[..], 0);
        for &b in &bounds {
            assert_eq!(read_custom_bound(&mut r).map(f64::to_bits), Some(b.to_bits()), "{b}");
        }
    }

    #[test]
    fn bucket_indices_follow_spans() {
        let s = sp(&[(0, 2), (2, 1), (3, 2), (3, 1), (1, 1)]);
        assert_eq!(BucketIndices::new(&s).collect::<Vec<_>>(), vec![0, 1, 4, 8, 9, 13, 15]);
        let s = sp(&[(-3, 0), (2, 2), (0, 0), (0, 1)]);
        assert_eq!(BucketIndices::new(&s).collect::<Vec<_>>(), vec![-1, 0, 1]);
    }

    #[test]
    fn the_prometheus_expansion_example() {
        // From the comment on Prometheus' expandIntSpansAndBuckets.
        let a = sp(&[(0, 2), (2, 1), (3, 2), (3, 1), (1, 1)]);
        let a_counts = [6i64, 3, 3, 2, 4, 5, 1];
        let b = sp(&[(0, 3), (1, 1), (1, 4), (3, 3)]);
        let b_counts = [6i64, 3, 0, 3, 0, 0, 2, 4, 5, 0, 1];
        let (fwd, back) = expand_spans_and_buckets(&a, &b, a_counts.iter().copied(), b_counts.iter().copied()).unwrap();
        assert!(back.is_empty());
        assert_eq!(
            fwd,
            vec![
                Insert { pos: 2, num: 1, bucket_idx: 2 },
                Insert { pos: 3, num: 2, bucket_idx: 6 },
                Insert { pos: 6, num: 1, bucket_idx: 14 },
            ]
        );
        let deltas = [6i64, -3, 0, -1, 2, 1, -4];
        assert_eq!(insert_deltas(&deltas, &fwd), vec![6, -3, -3, 3, -3, 0, 2, 2, 1, -5, 1]);
        assert_eq!(adjust_for_inserts(&a, &fwd), sp(&[(0, 3), (1, 1), (1, 4), (3, 3)]));
    }

    #[test]
    fn resets_are_found() {
        let a = sp(&[(0, 2)]);
        let dec = expand_spans_and_buckets(&a, &a, [2i64, 3].into_iter(), [2i64, 2].into_iter());
        assert_eq!(dec, Err(BucketReset::Decreased));
        let gone = expand_spans_and_buckets(&a, &sp(&[(1, 1)]), [2i64, 3].into_iter(), [4i64].into_iter());
        assert_eq!(gone, Err(BucketReset::Vanished));
        // An empty bucket may go: it comes back as a backward insert.
        let ok = expand_spans_and_buckets(&a, &sp(&[(1, 1)]), [0i64, 3].into_iter(), [4i64].into_iter());
        assert_eq!(ok, Ok((vec![], vec![Insert { pos: 0, num: 1, bucket_idx: 0 }])));
    }

    fn spans_strategy() -> impl Strategy<Value = Vec<Span>> {
        proptest::collection::vec((0i32..4, 0u32..4), 0..5).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (o, l))| Span { offset: if i == 0 { o - 3 } else { o }, length: l })
                .collect()
        })
    }

    proptest! {
        /// Both-ways expansion gives the union of the indices, and the
        /// inserts turn each side's buckets into the union's.
        #[test]
        fn both_ways_expansion_is_the_union(a in spans_strategy(), b in spans_strategy()) {
            let (fwd, back, merged) = expand_spans_both_ways(&a, &b);
            let ia: Vec<i64> = BucketIndices::new(&a).collect();
            let ib: Vec<i64> = BucketIndices::new(&b).collect();
            let mut union: Vec<i64> = ia.iter().chain(&ib).copied().collect();
            union.sort();
            union.dedup();
            prop_assert_eq!(BucketIndices::new(&merged).collect::<Vec<_>>(), union.clone());
            // Tag each bucket with its index (as a float) and insert zeros.
            let va: Vec<f64> = ia.iter().map(|&i| i as f64 + 1000.0).collect();
            let vb: Vec<f64> = ib.iter().map(|&i| i as f64 + 1000.0).collect();
            let wa = insert_absolute(&va, &fwd);
            let wb = insert_absolute(&vb, &back);
            let expect_a: Vec<f64> = union.iter().map(|i| if ia.contains(i) { *i as f64 + 1000.0 } else { 0.0 }).collect();
            let expect_b: Vec<f64> = union.iter().map(|i| if ib.contains(i) { *i as f64 + 1000.0 } else { 0.0 }).collect();
            prop_assert_eq!(wa, expect_a);
            prop_assert_eq!(wb, expect_b);
        }

        /// Counter expansion of a subset (growing histogram): the forward
        /// inserts, applied to the deltas and the spans, give the new
        /// layout with empty new buckets.
        #[test]
        fn counter_expansion_of_a_growing_layout(a in spans_strategy(), b in spans_strategy(), counts in proptest::collection::vec(0i64..5, 0..40)) {
            let ia: Vec<i64> = BucketIndices::new(&a).collect();
            let ib: Vec<i64> = BucketIndices::new(&b).collect();
            let mut union: Vec<i64> = ia.iter().chain(&ib).copied().collect();
            union.sort();
            union.dedup();
            let abs_a: Vec<i64> = ia.iter().enumerate().map(|(k, _)| counts.get(k).copied().unwrap_or(1)).collect();
            let abs_u: Vec<i64> = union.iter().map(|i| ia.iter().position(|x| x == i).map_or(0, |k| abs_a[k]) + 1).collect();
            let mut b2 = SpanBuilder::default();
            for &i in &union { b2.add(i); }
            let (fwd, back) = expand_spans_and_buckets(&a, &b2.spans, abs_a.iter().copied(), abs_u.iter().copied()).unwrap();
            prop_assert!(back.is_empty());
            let deltas: Vec<i64> = abs_a.iter().scan(0, |p, &x| { let d = x - *p; *p = x; Some(d) }).collect();
            let wide = insert_deltas(&deltas, &fwd);
            let abs_wide: Vec<i64> = wide.iter().scan(0, |p, &d| { *p += d; Some(*p) }).collect();
            let expect: Vec<i64> = union.iter().map(|i| ia.iter().position(|x| x == i).map_or(0, |k| abs_a[k])).collect();
            prop_assert_eq!(abs_wide, expect);
            prop_assert_eq!(BucketIndices::new(&adjust_for_inserts(&a, &fwd)).collect::<Vec<_>>(), union);
        }
    }
}

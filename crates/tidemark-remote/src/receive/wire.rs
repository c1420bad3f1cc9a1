//! Zero-copy decoders for remote write 1.0 and 2.0 bodies.
//!
//! prost would allocate a `String` for every label name and value and a
//! `Vec` per series; on a typical request (5 labels per series) that is
//! most of the decoding time. This decoder reads the same wire format and
//! borrows every string from the decompressed buffer, keeping all series'
//! labels and samples in two flat vectors. 2.0 gets the same treatment
//! (symbols borrowed, references and samples flat). Native histogram
//! messages are kept as the bytes of each message (in a third flat vector)
//! after their structure is checked, and decoded with prost only when
//! appended ([`decode_histogram`]); exemplar messages likewise (a fourth
//! flat vector), decoded when stored ([`decode_v1_exemplar`],
//! [`decode_v2_exemplar`]), so that a body prost would refuse is refused
//! here too. Both accept exactly
//! what the message definitions in [`crate::proto`] describe (tests check
//! them against prost on random requests, and fuzz targets on arbitrary
//! bytes).

use crate::proto::Sample;

/// Where one series' labels and samples sit in [`V1Wire`]'s flat vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesSpan {
    /// Range of the series' labels in [`V1Wire::labels`].
    pub labels: (u32, u32),
    /// Range of the series' samples in [`V1Wire::samples`].
    pub samples: (u32, u32),
    /// Range of the series' exemplar messages in [`V1Wire::exemplars`].
    pub exemplars: (u32, u32),
    /// Range of the series' native histogram messages in
    /// [`V1Wire::histograms`].
    pub histograms: (u32, u32),
}

/// One 1.0 `MetricMetadata` entry, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireMetadata<'a> {
    /// The protobuf enum value of the type.
    pub kind: i32,
    /// Family name.
    pub family: &'a str,
    /// Help text.
    pub help: &'a str,
    /// Unit.
    pub unit: &'a str,
}

/// A decoded 1.0 `WriteRequest` borrowing from its buffer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct V1Wire<'a> {
    /// Every series' label pairs, in order.
    pub labels: Vec<(&'a str, &'a str)>,
    /// Every series' samples, in order.
    pub samples: Vec<Sample>,
    /// Every series' native histogram messages (their bytes, structure
    /// checked), in order.
    pub histograms: Vec<&'a [u8]>,
    /// Every series' exemplar messages (their bytes, structure checked),
    /// in order.
    pub exemplars: Vec<&'a [u8]>,
    /// The series.
    pub series: Vec<SeriesSpan>,
    /// Per series (parallel to `series`): the bytes of its label fields as
    /// sent (each field's key, length and `Label` message, back to back),
    /// when they sit together in its `TimeSeries` message with no other
    /// field between them (as every sender writes them); `None` otherwise.
    /// Equal bytes decode to equal label pairs, so the receiver keys its
    /// series cache by them without splitting them again.
    pub label_bytes: Vec<Option<&'a [u8]>>,
    /// The metadata entries.
    pub metadata: Vec<WireMetadata<'a>>,
}

/// Why a body is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(&'static str);

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A varint. Most of a request's varints (keys, short lengths, small
    /// deltas) are one byte: that case is inline, the rest out of line.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }

    /// [`Reader::varint`] of two bytes or more (or truncated).
    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, WireError> {
        let mut x = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(WireError("truncated varint"))?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(WireError("varint overflows 64 bits"));
            }
            x |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(WireError("varint overflows 64 bits"))
    }

    /// The next field's number and wire type.
    #[inline(always)]
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let k = self.varint()?;
        let k = u32::try_from(k).map_err(|_| WireError("invalid field key"))?;
        let (field, wt) = (k >> 3, (k & 7) as u8);
        if field == 0 {
            return Err(WireError("invalid field number 0"));
        }
        Ok((field, wt))
    }

    #[inline(always)]
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| WireError("length overflows"))?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(WireError("truncated field"))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError("string field is not valid UTF-8"))
    }

    /// [`Reader::str`] for a reader whose whole buffer is known to be
    /// ASCII (`ascii`): then every string in it is valid UTF-8 and is not
    /// checked again.
    #[inline]
    fn str_in(&mut self, ascii: bool) -> Result<&'a str, WireError> {
        if ascii {
            let b = self.bytes()?;
            // SAFETY: `b` is part of the reader's buffer, which is all
            // ASCII, and ASCII bytes are valid UTF-8.
            Ok(unsafe { std::str::from_utf8_unchecked(b) })
        } else {
            self.str()
        }
    }

    fn fixed64(&mut self) -> Result<u64, WireError> {
        let end = self.pos.checked_add(8).filter(|&e| e <= self.buf.len()).ok_or(WireError("truncated fixed64"))?;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end;
        Ok(u64::from_le_bytes(b))
    }

    /// Skips a field of an unknown number. Groups (wire types 3 and 4,
    /// deprecated and absent from these messages) are refused.
    fn skip(&mut self, wt: u8) -> Result<(), WireError> {
        match wt {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => {
                let end =
                    self.pos.checked_add(4).filter(|&e| e <= self.buf.len()).ok_or(WireError("truncated fixed32"))?;
                self.pos = end;
                Ok(())
            }
            _ => Err(WireError("unsupported wire type")),
        }
    }
}

fn expect(wt: u8, want: u8) -> Result<(), WireError> {
    if wt == want {
        Ok(())
    } else {
        Err(WireError("invalid wire type for a known field"))
    }
}

/// The emptied vectors of a decoded 1.0 request ([`V1Wire::recycle`]),
/// kept by the thread for its next request: a request of 2,000 series
/// would otherwise grow four vectors from nothing (with their copies) on
/// every call.
#[derive(Default)]
struct Spare {
    labels: Vec<(&'static str, &'static str)>,
    samples: Vec<Sample>,
    histograms: Vec<&'static [u8]>,
    exemplars: Vec<&'static [u8]>,
    series: Vec<SeriesSpan>,
    label_bytes: Vec<Option<&'static [u8]>>,
    metadata: Vec<WireMetadata<'static>>,
}

thread_local! {
    static SPARE: std::cell::RefCell<Spare> = std::cell::RefCell::new(Spare::default());
}

/// A thread keeps a vector for reuse only up to this many elements: a rare
/// huge request does not pin its memory on every thread.
const MAX_KEPT_ELEMENTS: usize = 1 << 17;

/// `v` emptied, as a vector of another lifetime's elements. Nothing of
/// `'a` survives (no element is left), and the standard library collects
/// an emptied vector into one of the same layout in place, so the
/// allocation is kept (were it not, the result would merely be a new empty
/// vector).
fn relabel<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Keeps `v` (emptied) unless it grew past [`MAX_KEPT_ELEMENTS`].
fn keep<T, U>(v: Vec<T>) -> Vec<U> {
    if v.capacity() > MAX_KEPT_ELEMENTS {
        Vec::new()
    } else {
        relabel(v)
    }
}

impl V1Wire<'_> {
    /// Gives the vectors back to the thread for its next [`decode_v1`].
    /// Optional: dropping a `V1Wire` is always fine; this only saves
    /// the next request growing them again.
    pub fn recycle(self) {
        let spare = Spare {
            labels: keep(self.labels),
            samples: keep(self.samples),
            histograms: keep(self.histograms),
            exemplars: keep(self.exemplars),
            series: keep(self.series),
            label_bytes: keep(self.label_bytes),
            metadata: keep(self.metadata),
        };
        SPARE.with(|s| *s.borrow_mut() = spare);
    }
}

/// Decodes a 1.0 `WriteRequest`, every part of it checked.
pub fn decode_v1(buf: &[u8]) -> Result<V1Wire<'_>, WireError> {
    let mut w = decode_v1_lazy(buf)?;
    w.split_labels(|_| true)?;
    Ok(w)
}

/// Decodes a 1.0 `WriteRequest` except the label fields of each series
/// whose labels sit together ([`V1Wire::label_bytes`] is `Some`): those
/// are neither split into pairs nor checked ([`V1Wire::labels_pending`]).
/// Everything else is checked as by [`decode_v1`]. A receiver that finds
/// a series in its cache by those bytes (bytes equal to a label set it
/// split and validated before) never needs them split; it splits the
/// others with [`V1Wire::split_labels`] before trusting the request.
pub fn decode_v1_lazy(buf: &[u8]) -> Result<V1Wire<'_>, WireError> {
    let spare = SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let mut out = V1Wire {
        labels: relabel(spare.labels),
        samples: spare.samples,
        histograms: relabel(spare.histograms),
        exemplars: relabel(spare.exemplars),
        series: spare.series,
        label_bytes: relabel(spare.label_bytes),
        metadata: relabel(spare.metadata),
    };
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (1, wt) => {
                expect(wt, LEN)?;
                let ts = r.bytes()?;
                time_series(ts, &mut out)?;
            }
            (3, wt) => {
                expect(wt, LEN)?;
                let m = r.bytes()?;
                out.metadata.push(metadata(m)?);
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(out)
}

fn len32(n: usize) -> Result<u32, WireError> {
    u32::try_from(n).map_err(|_| WireError("too many elements"))
}

fn time_series<'a>(buf: &'a [u8], out: &mut V1Wire<'a>) -> Result<(), WireError> {
    let (l0, s0, h0, e0) = (out.labels.len(), out.samples.len(), out.histograms.len(), out.exemplars.len());
    // The label fields' byte range so far, and whether another field
    // came between two of them.
    let mut region: Option<(usize, usize)> = None;
    let mut split = false;
    let mut r = Reader::new(buf);
    while !r.done() {
        let start = r.pos;
        match r.key()? {
            (1, wt) => {
                expect(wt, LEN)?;
                r.bytes()?;
                region = match region {
                    None => Some((start, r.pos)),
                    Some((s, e)) => {
                        split |= e != start;
                        Some((s, r.pos))
                    }
                };
            }
            (2, wt) => {
                expect(wt, LEN)?;
                let b = r.bytes()?;
                out.samples.push(sample(b)?);
            }
            (3, wt) => {
                expect(wt, LEN)?;
                let e = r.bytes()?;
                check_v1_exemplar(e)?;
                out.exemplars.push(e);
            }
            (4, wt) => {
                expect(wt, LEN)?;
                let h = r.bytes()?;
                check_histogram(h)?;
                out.histograms.push(h);
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    // Labels apart from one another are split now (no bytes stand for
    // them); together, they are left for `split_labels`.
    if split {
        let mut r = Reader::new(buf);
        while !r.done() {
            match r.key()? {
                (1, _) => out.labels.push(label(r.bytes()?)?),
                (_, wt) => r.skip(wt)?,
            }
        }
    }
    out.series.push(SeriesSpan {
        labels: (len32(l0)?, len32(out.labels.len())?),
        samples: (len32(s0)?, len32(out.samples.len())?),
        exemplars: (len32(e0)?, len32(out.exemplars.len())?),
        histograms: (len32(h0)?, len32(out.histograms.len())?),
    });
    out.label_bytes.push(match region {
        _ if split => None,
        Some((s, e)) => Some(&buf[s..e]),
        None => Some(&[]),
    });
    Ok(())
}

/// Splits the label fields of one series as sent (each field's key, length
/// and `Label` message, back to back: [`V1Wire::label_bytes`]) into pairs,
/// appended to `out`, checking them as [`decode_v1`] does.
pub fn split_label_fields<'a>(bytes: &'a [u8], out: &mut Vec<(&'a str, &'a str)>) -> Result<(), WireError> {
    let mut r = Reader::new(bytes);
    while !r.done() {
        match r.key()? {
            (1, wt) => {
                expect(wt, LEN)?;
                out.push(label(r.bytes()?)?);
            }
            _ => return Err(WireError("a field other than a label among the label fields")),
        }
    }
    Ok(())
}

impl<'a> V1Wire<'a> {
    /// Whether series `i`'s labels are still only its label bytes (a
    /// [`decode_v1_lazy`] left them unsplit and unchecked): its span in
    /// [`V1Wire::labels`] is then empty. Each label field splits into one
    /// pair, so a series with label bytes but no pairs is exactly that.
    pub fn labels_pending(&self, i: usize) -> bool {
        let (s, e) = self.series[i].labels;
        s == e && self.label_bytes[i].is_some_and(|b| !b.is_empty())
    }

    /// Splits (and checks) the pending labels of every series `i` for
    /// which `want(i)` holds, appending their pairs to
    /// [`V1Wire::labels`] and pointing their spans at them.
    pub fn split_labels(&mut self, mut want: impl FnMut(usize) -> bool) -> Result<(), WireError> {
        for i in 0..self.series.len() {
            if !self.labels_pending(i) || !want(i) {
                continue;
            }
            let bytes = self.label_bytes[i].unwrap_or_default();
            let l0 = len32(self.labels.len())?;
            split_label_fields(bytes, &mut self.labels)?;
            self.series[i].labels = (l0, len32(self.labels.len())?);
        }
        Ok(())
    }
}

fn label(buf: &[u8]) -> Result<(&str, &str), WireError> {
    if let Some(pair) = label_usual(buf) {
        return Ok(pair);
    }
    let (mut name, mut value) = ("", "");
    // One ASCII check of the whole message (word at a time) stands for
    // the UTF-8 checks of both strings when, as usual, labels are ASCII
    // (their keys and lengths under 128 are ASCII too); otherwise each
    // string is checked. What is accepted does not change.
    let ascii = buf.is_ascii();
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (1, wt) => {
                expect(wt, LEN)?;
                name = r.str_in(ascii)?;
            }
            (2, wt) => {
                expect(wt, LEN)?;
                value = r.str_in(ascii)?;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok((name, value))
}

/// A `Label` as every sender writes it, read without the general loop:
/// the name (field 1), then the value (field 2), each under 128 bytes,
/// nothing else, all ASCII. `None` for any other shape, which [`label`]
/// then reads field by field (with the same result for this shape).
#[inline(always)]
fn label_usual(buf: &[u8]) -> Option<(&str, &str)> {
    let [0x0a, n, rest @ ..] = buf else { return None };
    if *n >= 0x80 {
        return None;
    }
    let (name, rest) = rest.split_at_checked(usize::from(*n))?;
    let [0x12, m, value @ ..] = rest else { return None };
    if *m >= 0x80 || value.len() != usize::from(*m) || !buf.is_ascii() {
        return None;
    }
    // SAFETY: both are part of `buf`, which is all ASCII, and ASCII bytes
    // are valid UTF-8.
    Some(unsafe { (std::str::from_utf8_unchecked(name), std::str::from_utf8_unchecked(value)) })
}

fn sample(buf: &[u8]) -> Result<Sample, WireError> {
    // As every sender writes it: the value (field 1), then the timestamp
    // (field 2), nothing else. Any other shape (a zero value left out,
    // fields reordered or repeated) takes the general loop below.
    if let [0x09, v0, v1, v2, v3, v4, v5, v6, v7, 0x10, ..] = *buf {
        let mut r = Reader { buf, pos: 10 };
        if let Ok(t) = r.varint() {
            if r.done() {
                let value = f64::from_bits(u64::from_le_bytes([v0, v1, v2, v3, v4, v5, v6, v7]));
                return Ok(Sample { value, timestamp: t as i64 });
            }
        }
    }
    let mut s = Sample { value: 0.0, timestamp: 0 };
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (1, wt) => {
                expect(wt, FIXED64)?;
                s.value = f64::from_bits(r.fixed64()?);
            }
            (2, wt) => {
                expect(wt, VARINT)?;
                s.timestamp = r.varint()? as i64;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(s)
}

fn metadata(buf: &[u8]) -> Result<WireMetadata<'_>, WireError> {
    let mut m = WireMetadata { kind: 0, family: "", help: "", unit: "" };
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (1, wt) => {
                expect(wt, VARINT)?;
                // Enum values are int32 on the wire, sign-extended to 64 bits.
                m.kind = r.varint()? as i32;
            }
            (2, wt) => {
                expect(wt, LEN)?;
                m.family = r.str()?;
            }
            (4, wt) => {
                expect(wt, LEN)?;
                m.help = r.str()?;
            }
            (5, wt) => {
                expect(wt, LEN)?;
                m.unit = r.str()?;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(m)
}

/// A 2.0 series' place in [`V2Wire`]'s flat vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Span {
    /// Range of the series' `labels_refs` in [`V2Wire::refs`].
    pub refs: (u32, u32),
    /// Range of the series' samples in [`V2Wire::samples`].
    pub samples: (u32, u32),
    /// Range of the series' exemplar messages in [`V2Wire::exemplars`].
    pub exemplars: (u32, u32),
    /// Range of the series' native histogram messages in
    /// [`V2Wire::histograms`].
    pub histograms: (u32, u32),
    /// The metadata message, if present: (type, help_ref, unit_ref).
    pub metadata: Option<(i32, u32, u32)>,
}

/// A decoded 2.0 `Request` borrowing its symbols from the buffer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct V2Wire<'a> {
    /// The symbol table.
    pub symbols: Vec<&'a str>,
    /// Every series' `labels_refs`, in order.
    pub refs: Vec<u32>,
    /// Every series' samples, in order.
    pub samples: Vec<Sample>,
    /// Every series' native histogram messages (their bytes, structure
    /// checked), in order.
    pub histograms: Vec<&'a [u8]>,
    /// Every series' exemplar messages (their bytes, structure checked),
    /// in order.
    pub exemplars: Vec<&'a [u8]>,
    /// The series.
    pub series: Vec<V2Span>,
    /// Top-level fields numbered 1 to 3, which 2.0 reserves and 1.0's
    /// `WriteRequest` uses (`timeseries` = 1, `metadata` = 3): a 1.0 body
    /// sent with the 2.0 content type shows up as these and nothing else.
    pub v1_fields: usize,
}

/// Decodes a 2.0 `Request` (symbol references are resolved later).
pub fn decode_v2(buf: &[u8]) -> Result<V2Wire<'_>, WireError> {
    let mut out = V2Wire::default();
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (4, wt) => {
                expect(wt, LEN)?;
                let sym = r.str()?;
                out.symbols.push(sym);
            }
            (5, wt) => {
                expect(wt, LEN)?;
                let ts = r.bytes()?;
                v2_series(ts, &mut out)?;
            }
            (1..=3, wt) => {
                out.v1_fields += 1;
                r.skip(wt)?;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(out)
}

fn v2_series<'a>(buf: &'a [u8], out: &mut V2Wire<'a>) -> Result<(), WireError> {
    let (r0, s0, h0, e0) = (out.refs.len(), out.samples.len(), out.histograms.len(), out.exemplars.len());
    let mut span = V2Span { refs: (0, 0), samples: (0, 0), exemplars: (0, 0), histograms: (0, 0), metadata: None };
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            // Repeated scalars may come packed (the norm) or one by one.
            (1, LEN) => {
                let mut p = Reader::new(r.bytes()?);
                while !p.done() {
                    out.refs.push(p.varint()? as u32);
                }
            }
            (1, wt) => {
                expect(wt, VARINT)?;
                out.refs.push(r.varint()? as u32);
            }
            (2, wt) => {
                expect(wt, LEN)?;
                let b = r.bytes()?;
                out.samples.push(sample(b)?);
            }
            (3, wt) => {
                expect(wt, LEN)?;
                let h = r.bytes()?;
                check_histogram(h)?;
                out.histograms.push(h);
            }
            (4, wt) => {
                expect(wt, LEN)?;
                let e = r.bytes()?;
                check_v2_exemplar(e)?;
                out.exemplars.push(e);
            }
            (5, wt) => {
                expect(wt, LEN)?;
                // A repeated occurrence merges into the earlier one.
                let b = r.bytes()?;
                span.metadata = Some(v2_metadata(b, span.metadata.unwrap_or((0, 0, 0)))?);
            }
            (6, wt) => {
                expect(wt, VARINT)?;
                r.varint()?;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    span.refs = (len32(r0)?, len32(out.refs.len())?);
    span.samples = (len32(s0)?, len32(out.samples.len())?);
    span.histograms = (len32(h0)?, len32(out.histograms.len())?);
    span.exemplars = (len32(e0)?, len32(out.exemplars.len())?);
    out.series.push(span);
    Ok(())
}

fn v2_metadata(buf: &[u8], mut m: (i32, u32, u32)) -> Result<(i32, u32, u32), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (1, wt) => {
                expect(wt, VARINT)?;
                m.0 = r.varint()? as i32;
            }
            (3, wt) => {
                expect(wt, VARINT)?;
                m.1 = r.varint()? as u32;
            }
            (4, wt) => {
                expect(wt, VARINT)?;
                m.2 = r.varint()? as u32;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(m)
}

/// What a field of a message we do not decode here must look like, so
/// that a body prost would refuse is refused here too even though its
/// exemplars are only counted and its histograms decoded later.
#[derive(Clone, Copy)]
enum Shape {
    Varint,
    Fixed64,
    Str,
    Msg(fn(&[u8]) -> Result<(), WireError>),
    /// A repeated varint scalar: packed or not.
    RepeatedVarint,
    /// A repeated 8-byte scalar: packed or not.
    RepeatedFixed64,
}

fn check(buf: &[u8], schema: fn(u32) -> Option<Shape>) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wt) = r.key()?;
        let Some(shape) = schema(field) else {
            r.skip(wt)?;
            continue;
        };
        match (shape, wt) {
            (Shape::Varint | Shape::RepeatedVarint, VARINT) => drop(r.varint()?),
            (Shape::Fixed64 | Shape::RepeatedFixed64, FIXED64) => drop(r.fixed64()?),
            (Shape::Str, LEN) => drop(r.str()?),
            (Shape::Msg(f), LEN) => f(r.bytes()?)?,
            (Shape::RepeatedVarint, LEN) => {
                let mut p = Reader::new(r.bytes()?);
                while !p.done() {
                    p.varint()?;
                }
            }
            (Shape::RepeatedFixed64, LEN) => {
                if r.bytes()?.len() % 8 != 0 {
                    return Err(WireError("packed doubles not a multiple of 8 bytes"));
                }
            }
            _ => return Err(WireError("invalid wire type for a known field")),
        }
    }
    Ok(())
}

fn check_label(buf: &[u8]) -> Result<(), WireError> {
    check(buf, |f| matches!(f, 1 | 2).then_some(Shape::Str))
}

fn check_v1_exemplar(buf: &[u8]) -> Result<(), WireError> {
    check(buf, |f| match f {
        1 => Some(Shape::Msg(check_label)),
        2 => Some(Shape::Fixed64),
        3 => Some(Shape::Varint),
        _ => None,
    })
}

fn check_v2_exemplar(buf: &[u8]) -> Result<(), WireError> {
    check(buf, |f| match f {
        1 => Some(Shape::RepeatedVarint),
        2 => Some(Shape::Fixed64),
        3 => Some(Shape::Varint),
        _ => None,
    })
}

/// An exemplar as sent: its labels (1.0: pairs; 2.0: symbol references,
/// name and value alternating), value and timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct WireExemplar<L> {
    /// The labels.
    pub labels: L,
    /// The value.
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// Decodes a 1.0 `Exemplar` message kept by [`decode_v1`] (fields as prost
/// reads them: the last value and timestamp win, labels accumulate).
pub fn decode_v1_exemplar(buf: &[u8]) -> Result<WireExemplar<Vec<(&str, &str)>>, WireError> {
    let mut out = WireExemplar { labels: Vec::new(), value: 0.0, timestamp: 0 };
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (1, LEN) => out.labels.push(label(r.bytes()?)?),
            (2, FIXED64) => out.value = f64::from_bits(r.fixed64()?),
            (3, VARINT) => out.timestamp = r.varint()? as i64,
            (1..=3, _) => return Err(WireError("invalid wire type for a known field")),
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(out)
}

/// Decodes a 2.0 `Exemplar` message kept by [`decode_v2`]; its label
/// references are resolved by the caller.
pub fn decode_v2_exemplar(buf: &[u8]) -> Result<WireExemplar<Vec<u32>>, WireError> {
    let mut out = WireExemplar { labels: Vec::new(), value: 0.0, timestamp: 0 };
    let mut r = Reader::new(buf);
    while !r.done() {
        match r.key()? {
            (1, LEN) => {
                let mut p = Reader::new(r.bytes()?);
                while !p.done() {
                    out.labels.push(p.varint()? as u32);
                }
            }
            (1, VARINT) => out.labels.push(r.varint()? as u32),
            (2, FIXED64) => out.value = f64::from_bits(r.fixed64()?),
            (3, VARINT) => out.timestamp = r.varint()? as i64,
            (1..=3, _) => return Err(WireError("invalid wire type for a known field")),
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(out)
}

fn check_span(buf: &[u8]) -> Result<(), WireError> {
    check(buf, |f| matches!(f, 1 | 2).then_some(Shape::Varint))
}

/// Decodes one native histogram message kept by [`decode_v1`] or
/// [`decode_v2`] (its structure already checked there, so this fails only
/// on what the structure check does not cover: none of prost's checks
/// remain, but the error is returned rather than assumed away).
pub fn decode_histogram(bytes: &[u8]) -> Result<crate::proto::Histogram, prost::DecodeError> {
    <crate::proto::Histogram as prost::Message>::decode(bytes)
}

/// The native histogram message (identical in both versions).
fn check_histogram(buf: &[u8]) -> Result<(), WireError> {
    check(buf, |f| match f {
        1 | 4 | 6 | 14 | 15 => Some(Shape::Varint),
        2 | 3 | 5 | 7 => Some(Shape::Fixed64),
        8 | 11 => Some(Shape::Msg(check_span)),
        9 | 12 => Some(Shape::RepeatedVarint),
        10 | 13 | 16 => Some(Shape::RepeatedFixed64),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::proto::{v1, v2};

    /// Series as (labels, samples, exemplars as (label pairs, value bits,
    /// timestamp), histogram messages as bytes), and the metadata entries.
    type Flat = (Vec<(Vec<v1::Label>, Vec<Sample>, Vec<FlatExemplar>, Vec<Vec<u8>>)>, Vec<v1::MetricMetadata>);
    type FlatExemplar = (Vec<(String, String)>, u64, i64);

    /// The histogram messages of a series' range, as bytes.
    fn hist_bytes(all: &[&[u8]], (s, e): (u32, u32)) -> Vec<Vec<u8>> {
        all[s as usize..e as usize].iter().map(|b| b.to_vec()).collect()
    }

    /// A series' histograms as prost encodes them (the requests in these
    /// tests are prost's encodings, so the kept bytes must be these).
    fn prost_hist_bytes(h: &[crate::proto::Histogram]) -> Vec<Vec<u8>> {
        h.iter().map(Message::encode_to_vec).collect()
    }

    /// An arbitrary histogram message: either kind, every field set or
    /// left out, NaN sums included.
    fn arb_histogram() -> impl Strategy<Value = crate::proto::Histogram> {
        use crate::proto::histogram::{Count, ZeroCount};
        let span =
            (any::<i32>(), any::<u32>()).prop_map(|(offset, length)| crate::proto::BucketSpan { offset, length });
        (
            any::<i64>(),
            any::<u64>(),
            -60i32..10,
            prop::option::of(prop_oneof![
                any::<u64>().prop_map(Count::CountInt),
                any::<f64>().prop_map(Count::CountFloat)
            ]),
            prop::option::of(prop_oneof![
                any::<u64>().prop_map(ZeroCount::ZeroCountInt),
                any::<f64>().prop_map(ZeroCount::ZeroCountFloat)
            ]),
            prop::collection::vec(span, 0..3),
            prop::collection::vec(any::<i64>(), 0..4),
            prop::collection::vec(any::<f64>(), 0..4),
            0i32..5,
        )
            .prop_map(|(timestamp, sum_bits, schema, count, zero_count, spans, deltas, counts, reset_hint)| {
                crate::proto::Histogram {
                    count,
                    sum: f64::from_bits(sum_bits),
                    schema,
                    zero_threshold: 1e-128,
                    zero_count,
                    negative_spans: spans.clone(),
                    negative_deltas: deltas.clone(),
                    negative_counts: counts.clone(),
                    positive_spans: spans,
                    positive_deltas: deltas,
                    positive_counts: counts.clone(),
                    reset_hint,
                    timestamp,
                    custom_values: counts,
                }
            })
    }

    /// The wire form rebuilt as prost structs (exemplars decoded with
    /// [`decode_v1_exemplar`]; histograms compared by their bytes).
    fn to_prost(w: &V1Wire<'_>) -> Flat {
        let series = w
            .series
            .iter()
            .map(|s| {
                let labels = w.labels[s.labels.0 as usize..s.labels.1 as usize]
                    .iter()
                    .map(|&(n, v)| v1::Label { name: n.into(), value: v.into() })
                    .collect();
                (
                    labels,
                    w.samples[s.samples.0 as usize..s.samples.1 as usize].to_vec(),
                    w.exemplars[s.exemplars.0 as usize..s.exemplars.1 as usize]
                        .iter()
                        .map(|b| {
                            let e = decode_v1_exemplar(b).expect("checked");
                            let l = e.labels.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect();
                            (l, e.value.to_bits(), e.timestamp)
                        })
                        .collect(),
                    hist_bytes(&w.histograms, s.histograms),
                )
            })
            .collect();
        let md = w
            .metadata
            .iter()
            .map(|m| v1::MetricMetadata {
                r#type: m.kind,
                metric_family_name: m.family.into(),
                help: m.help.into(),
                unit: m.unit.into(),
            })
            .collect();
        (series, md)
    }

    fn from_prost(req: &v1::WriteRequest) -> Flat {
        let series = req
            .timeseries
            .iter()
            .map(|t| {
                let ex = t
                    .exemplars
                    .iter()
                    .map(|e| {
                        let l = e.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
                        (l, e.value.to_bits(), e.timestamp)
                    })
                    .collect();
                (t.labels.clone(), t.samples.clone(), ex, prost_hist_bytes(&t.histograms))
            })
            .collect();
        (series, req.metadata.clone())
    }

    fn bits(x: &Flat) -> Vec<Vec<(i64, u64)>> {
        x.0.iter().map(|s| s.1.iter().map(|p| (p.timestamp, p.value.to_bits())).collect()).collect()
    }

    fn arb_request() -> impl Strategy<Value = v1::WriteRequest> {
        let label = ("[a-z_]{0,5}", "\\PC{0,6}").prop_map(|(name, value)| v1::Label { name, value });
        let sample = (any::<i64>(), any::<u64>()).prop_map(|(t, v)| Sample { timestamp: t, value: f64::from_bits(v) });
        let ex_label = ("[a-z_]{1,5}", "\\PC{0,6}").prop_map(|(name, value)| v1::Label { name, value });
        let exemplar = (prop::collection::vec(ex_label, 0..3), any::<u64>(), any::<i64>())
            .prop_map(|(labels, v, t)| v1::Exemplar { labels, value: f64::from_bits(v), timestamp: t });
        let hist = arb_histogram();
        let series = (
            prop::collection::vec(label, 0..5),
            prop::collection::vec(sample, 0..5),
            prop::collection::vec(exemplar, 0..2),
            prop::collection::vec(hist, 0..2),
        )
            .prop_map(|(labels, samples, exemplars, histograms)| v1::TimeSeries {
                labels,
                samples,
                exemplars,
                histograms,
            });
        let md = (any::<i32>(), "\\PC{0,6}", "\\PC{0,6}", "[a-z]{0,3}").prop_map(|(t, f, h, u)| v1::MetricMetadata {
            r#type: t,
            metric_family_name: f,
            help: h,
            unit: u,
        });
        (prop::collection::vec(series, 0..6), prop::collection::vec(md, 0..3))
            .prop_map(|(timeseries, metadata)| v1::WriteRequest { timeseries, metadata })
    }

    proptest! {
        #[test]
        fn agrees_with_prost(req in arb_request()) {
            let buf = req.encode_to_vec();
            let wire = decode_v1(&buf).expect("valid encoding");
            let (ours, theirs) = (to_prost(&wire), from_prost(&req));
            prop_assert_eq!(bits(&ours), bits(&theirs));
            prop_assert_eq!(&ours.1, &theirs.1);
            let labels = |x: &Flat| {
                x.0.iter().map(|s| (s.0.clone(), s.2.clone(), s.3.clone())).collect::<Vec<_>>()
            };
            prop_assert_eq!(labels(&ours), labels(&theirs));
            // Label bytes, when given, are exactly the series' labels.
            prop_assert_eq!(wire.label_bytes.len(), wire.series.len());
            for (b, t) in wire.label_bytes.iter().zip(&req.timeseries) {
                let b = b.expect("an encoder writes labels together");
                let only_labels = v1::TimeSeries::decode(b).expect("label fields");
                prop_assert_eq!(&only_labels.labels, &t.labels);
                prop_assert!(only_labels.samples.is_empty());
            }
        }

        #[test]
        fn never_accepts_what_prost_rejects(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if decode_v1(&bytes).is_ok() {
                prop_assert!(v1::WriteRequest::decode(bytes.as_slice()).is_ok());
            }
            // A lazy decode and its full split accept exactly what the
            // full decode accepts.
            let lazy = decode_v1_lazy(&bytes).and_then(|mut w| w.split_labels(|_| true));
            prop_assert_eq!(lazy.is_ok(), decode_v1(&bytes).is_ok());
        }
    }

    fn arb_request_v2() -> impl Strategy<Value = v2::Request> {
        let sample = (any::<i64>(), any::<u64>()).prop_map(|(t, v)| Sample { timestamp: t, value: f64::from_bits(v) });
        let meta = (any::<i32>(), any::<u32>(), any::<u32>()).prop_map(|(t, h, u)| v2::Metadata {
            r#type: t,
            help_ref: h,
            unit_ref: u,
        });
        let series = (
            prop::collection::vec(any::<u32>(), 0..6),
            prop::collection::vec(sample, 0..5),
            prop::collection::vec(
                (prop::collection::vec(any::<u32>(), 0..4), any::<u64>(), any::<i64>())
                    .prop_map(|(r, v, t)| v2::Exemplar { labels_refs: r, value: f64::from_bits(v), timestamp: t }),
                0..3,
            ),
            prop::collection::vec(arb_histogram(), 0..3),
            prop::option::of(meta),
            any::<i64>(),
        )
            .prop_map(|(labels_refs, samples, e, h, metadata, created_timestamp)| v2::TimeSeries {
                labels_refs,
                samples,
                exemplars: e,
                histograms: h,
                metadata,
                created_timestamp,
            });
        (prop::collection::vec("\\PC{0,6}", 0..5), prop::collection::vec(series, 0..5))
            .prop_map(|(symbols, timeseries)| v2::Request { symbols, timeseries })
    }

    proptest! {
        #[test]
        fn v2_agrees_with_prost(req in arb_request_v2()) {
            let buf = req.encode_to_vec();
            let w = decode_v2(&buf).expect("valid encoding");
            prop_assert_eq!(&w.symbols, &req.symbols.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(w.series.len(), req.timeseries.len());
            for (s, t) in w.series.iter().zip(&req.timeseries) {
                prop_assert_eq!(&w.refs[s.refs.0 as usize..s.refs.1 as usize], t.labels_refs.as_slice());
                let ours: Vec<_> = w.samples[s.samples.0 as usize..s.samples.1 as usize].iter().map(|x| (x.timestamp, x.value.to_bits())).collect();
                let theirs: Vec<_> = t.samples.iter().map(|x| (x.timestamp, x.value.to_bits())).collect();
                prop_assert_eq!(ours, theirs);
                let ours: Vec<_> = w.exemplars[s.exemplars.0 as usize..s.exemplars.1 as usize]
                    .iter()
                    .map(|b| {
                        let e = decode_v2_exemplar(b).expect("checked");
                        (e.labels, e.value.to_bits(), e.timestamp)
                    })
                    .collect();
                let theirs: Vec<_> = t.exemplars.iter().map(|e| (e.labels_refs.clone(), e.value.to_bits(), e.timestamp)).collect();
                prop_assert_eq!(ours, theirs);
                prop_assert_eq!(hist_bytes(&w.histograms, s.histograms), prost_hist_bytes(&t.histograms));
                for (b, h) in w.histograms[s.histograms.0 as usize..s.histograms.1 as usize].iter().zip(&t.histograms) {
                    prop_assert_eq!(decode_histogram(b).expect("checked").encode_to_vec(), h.encode_to_vec());
                }
                prop_assert_eq!(s.metadata, t.metadata.as_ref().map(|m| (m.r#type, m.help_ref, m.unit_ref)));
            }
        }

        #[test]
        fn v2_never_accepts_what_prost_rejects(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if decode_v2(&bytes).is_ok() {
                prop_assert!(v2::Request::decode(bytes.as_slice()).is_ok());
            }
        }
    }

    /// One encoded v1 `Label` message.
    fn label(n: &str, v: &str) -> Vec<u8> {
        v1::Label { name: n.into(), value: v.into() }.encode_to_vec()
    }

    /// A length-delimited field `num` holding `body` (shorter than 128 bytes).
    fn field(num: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![num << 3 | 2, body.len() as u8];
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn label_bytes_only_when_the_labels_sit_together() {
        let sample = Sample { value: 1.0, timestamp: 5 }.encode_to_vec();
        let (a, b) = (field(1, &label("__name__", "up")), field(1, &label("job", "x")));
        let series = |parts: &[&[u8]]| field(1, &parts.concat());
        // Together (samples before or after them do not matter).
        let w_body = series(&[&field(2, &sample), &a, &b, &field(2, &sample)]);
        let w = decode_v1(&w_body).unwrap();
        assert_eq!(w.label_bytes, vec![Some(&[a.as_slice(), b.as_slice()].concat()[..])]);
        // A sample between two labels: no bytes, the labels still decode.
        let split = series(&[&a, &field(2, &sample), &b]);
        let w = decode_v1(&split).unwrap();
        assert_eq!(w.label_bytes, vec![None]);
        assert_eq!(w.labels, vec![("__name__", "up"), ("job", "x")]);
        // No labels at all: empty bytes.
        let none = series(&[&field(2, &sample)]);
        assert_eq!(decode_v1(&none).unwrap().label_bytes, vec![Some(&[][..])]);
    }

    /// A lazy decode leaves labels sent together as bytes, unchecked;
    /// splitting them gives what a full decode gives, and a malformed
    /// label among them is found by the split (as by the full decode).
    #[test]
    fn lazy_decoding_leaves_labels_together_for_the_split() {
        let sample = Sample { value: 1.0, timestamp: 5 }.encode_to_vec();
        let (a, b, c) = (field(1, &label("__name__", "up")), field(1, &label("job", "x")), field(1, &label("i", "1")));
        let series = |parts: &[&[u8]]| field(1, &parts.concat());
        // Together, apart (split at once), together.
        let body = [
            series(&[&a, &b, &field(2, &sample)]),
            series(&[&a, &field(2, &sample), &c]),
            series(&[&b, &c]),
            series(&[&field(2, &sample)]),
        ]
        .concat();
        let full = decode_v1(&body).unwrap();
        let mut lazy = decode_v1_lazy(&body).unwrap();
        let pending: Vec<bool> = (0..4).map(|i| lazy.labels_pending(i)).collect();
        assert_eq!(pending, [true, false, true, false]);
        assert_eq!(lazy.label_bytes, full.label_bytes);
        assert_eq!(lazy.samples, full.samples);
        // Split only the third: the first stays pending.
        lazy.split_labels(|i| i == 2).unwrap();
        assert!(lazy.labels_pending(0) && !lazy.labels_pending(2));
        lazy.split_labels(|_| true).unwrap();
        fn pairs<'a>(w: &V1Wire<'a>, i: usize) -> Vec<(&'a str, &'a str)> {
            let (s, e) = w.series[i].labels;
            w.labels[s as usize..e as usize].to_vec()
        }
        for i in 0..4 {
            assert!(!lazy.labels_pending(i));
            assert_eq!(pairs(&lazy, i), pairs(&full, i), "series {i}");
        }
        assert_eq!(pairs(&full, 0), vec![("__name__", "up"), ("job", "x")]);
        assert_eq!(pairs(&full, 1), vec![("__name__", "up"), ("i", "1")]);
        // A value that is not UTF-8 among labels sent together: the lazy
        // decode takes the body, its split and the full decode refuse it.
        let bad = series(&[&a, &field(1, &[0x0a, 0x01, b'j', 0x12, 0x01, 0xff]), &field(2, &sample)]);
        assert!(decode_v1(&bad).is_err());
        let mut lazy = decode_v1_lazy(&bad).unwrap();
        assert!(lazy.labels_pending(0));
        assert!(lazy.split_labels(|_| true).is_err());
        // Apart, the same label is refused by the lazy decode itself.
        let bad_apart = series(&[&field(1, &[0x0a, 0x01, b'j', 0x12, 0x01, 0xff]), &field(2, &sample), &a]);
        assert!(decode_v1_lazy(&bad_apart).is_err());
        // Split by itself, a region holding another field is refused.
        let mut out = Vec::new();
        assert!(split_label_fields(&[&a[..], &field(2, &sample)].concat(), &mut out).is_err());
    }

    /// The shortcuts for the usual shape of a label and a sample give way
    /// to the general loop for every other shape, with prost's answer.
    #[test]
    fn unusual_labels_and_samples_decode_as_prost_does() {
        let field = |key: u8, body: &[u8]| {
            let mut f = vec![key];
            let mut n = body.len();
            while n >= 0x80 {
                f.push((n as u8) | 0x80);
                n >>= 7;
            }
            f.push(n as u8);
            f.extend_from_slice(body);
            f
        };
        let long = "n".repeat(200);
        let labels: Vec<Vec<u8>> = vec![
            [field(0x0a, b"job"), field(0x12, b"api")].concat(),
            // Value first; a repeated name (the last one counts).
            [field(0x12, b"api"), field(0x0a, b"job")].concat(),
            [field(0x0a, b"a"), field(0x0a, b"job"), field(0x12, b"api")].concat(),
            // No value (an empty one is left out), no name.
            field(0x0a, b"job"),
            field(0x12, b"api"),
            // Over 127 bytes: a two-byte length.
            [field(0x0a, long.as_bytes()), field(0x12, b"x")].concat(),
            [field(0x0a, b"x"), field(0x12, long.as_bytes())].concat(),
            // An unknown field after them.
            [field(0x0a, b"job"), field(0x12, b"api"), vec![0x18, 0x01]].concat(),
            // Not ASCII.
            [field(0x0a, b"job"), field(0x12, "\u{f6}".as_bytes())].concat(),
        ];
        let value = 2.5f64.to_bits().to_le_bytes();
        let samples: Vec<Vec<u8>> = vec![
            [&[0x09][..], &value, &[0x10, 0x05]].concat(),
            // Timestamp first; a long (negative) timestamp; no value.
            [&[0x10, 0x05, 0x09][..], &value].concat(),
            [&[0x09][..], &value, &[0x10], &[0xff; 9], &[0x01]].concat(),
            vec![0x10, 0x05],
            // A repeated value; trailing bytes after the timestamp.
            [&[0x09][..], &value, &[0x10, 0x05, 0x09], &value].concat(),
            [&[0x09][..], &value, &[0x10, 0x05, 0x18, 0x01]].concat(),
        ];
        for l in &labels {
            for s in &samples {
                let body = field(0x0a, &[field(0x0a, l), field(0x12, s)].concat());
                let ours = decode_v1(&body).expect("valid body");
                let theirs = v1::WriteRequest::decode(body.as_slice()).expect("prost decodes it");
                assert_eq!(
                    ours.labels,
                    vec![(theirs.timeseries[0].labels[0].name.as_str(), theirs.timeseries[0].labels[0].value.as_str())]
                );
                let (a, b) = (ours.samples[0], theirs.timeseries[0].samples[0]);
                assert_eq!((a.timestamp, a.value.to_bits()), (b.timestamp, b.value.to_bits()), "{s:?}");
            }
        }
        // A length past the end, in either string: refused by both.
        for bad in [vec![0x0a, 0x05, b'j', 0x12, 0x00], vec![0x0a, 0x01, b'j', 0x12, 0x05, b'a']] {
            let body = field(0x0a, &field(0x0a, &bad));
            assert!(decode_v1(&body).is_err());
            assert!(v1::WriteRequest::decode(body.as_slice()).is_err());
        }
    }

    #[test]
    fn label_strings_are_checked_whatever_their_neighbours() {
        let body = |name: &[u8], value: &[u8]| {
            let mut label = vec![0x0a, name.len() as u8];
            label.extend_from_slice(name);
            label.extend_from_slice(&[0x12, value.len() as u8]);
            label.extend_from_slice(value);
            let mut series = vec![0x0a, label.len() as u8];
            series.extend_from_slice(&label);
            let mut req = vec![0x0a, series.len() as u8];
            req.extend_from_slice(&series);
            req
        };
        let ok = |n: &[u8], v: &[u8]| decode_v1(&body(n, v)).map(|w| w.labels[0].0.len() + w.labels[0].1.len());
        assert_eq!(ok(b"job", b"api"), Ok(6));
        assert_eq!(ok("j\u{f6}b".as_bytes(), "\u{1f600}".as_bytes()), Ok(8));
        assert!(ok(b"job", b"a\xffb").is_err());
        assert!(ok(b"j\xc3", b"x").is_err());
        assert!(ok("\u{f6}".as_bytes(), b"\x80").is_err());
        // A sequence cut between name and value is invalid in both.
        assert!(ok(b"a\xe2\x82", b"\xac").is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(decode_v1(&[0x0a, 0x05, 0x0a]).is_err()); // truncated
        assert!(decode_v1(&[0x08]).is_err()); // field 1 as a varint
        assert!(decode_v1(&[0x00, 0x00]).is_err()); // field number 0
        assert!(decode_v1(&[0xff; 11]).is_err()); // varint overflow
        assert!(decode_v1(&[0x0b]).is_err()); // a group
        assert!(decode_v1(&[0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x01]).is_err()); // label truncated... inner
        assert_eq!(decode_v1(&[0x10, 0x05]).unwrap(), V1Wire::default()); // unknown varint field skipped
    }
}

//! The columns of the WAL's exemplar record (type 6, `docs/format/wal.md`).
//!
//! ```text
//! refs    count × varint   series ref, delta to the previous entry's (the first to 0)
//! times   count × varint   timestamp, delta to the previous entry's (the first to 0)
//! values  count × u64 LE   the value's bit pattern
//! labels  count × (uvarint length, the canonical `Labels::encoded()` bytes)
//! ```
//!
//! The envelope (count, flags, optional zstd) is the one shared by types
//! 3 to 5 and lives in `wal/record.rs`.

use crate::varint::{put_uvarint, put_varint, unzigzag};
use crate::Labels;

/// An exemplar as logged: the series' ref in place of its labels.
#[derive(Debug, Clone)]
pub struct RefExemplar {
    /// The series reference (from an earlier `Series` record).
    pub series_ref: u64,
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value, kept bit for bit.
    pub v: f64,
    /// The exemplar's own labels.
    pub labels: Labels,
}

impl PartialEq for RefExemplar {
    fn eq(&self, o: &RefExemplar) -> bool {
        self.series_ref == o.series_ref && self.t == o.t && self.v.to_bits() == o.v.to_bits() && self.labels == o.labels
    }
}

/// Fewest column bytes one exemplar takes: a byte each for the ref and
/// time deltas and the label length, and the 8 value bytes.
pub(crate) const MIN_EXEMPLAR_COLUMN_LEN: usize = 11;

/// Appends the columns of `exemplars` to `out`.
pub(crate) fn put_exemplar_columns(out: &mut Vec<u8>, exemplars: &[RefExemplar]) {
    let mut prev = 0u64;
    for e in exemplars {
        put_varint(out, e.series_ref.wrapping_sub(prev) as i64);
        prev = e.series_ref;
    }
    let mut prev = 0i64;
    for e in exemplars {
        put_varint(out, e.t.wrapping_sub(prev));
        prev = e.t;
    }
    for e in exemplars {
        out.extend_from_slice(&e.v.to_bits().to_le_bytes());
    }
    for e in exemplars {
        let l = e.labels.encoded();
        put_uvarint(out, l.len() as u64);
        out.extend_from_slice(l);
    }
}

/// Bytes [`put_exemplar_columns`] writes for `exemplars`.
pub(crate) fn exemplar_columns_len(exemplars: &[RefExemplar]) -> u64 {
    let ulen = |v: u64| crate::varint::uvarint_len(v) as u64;
    let mut n = 0;
    let (mut r, mut t) = (0u64, 0i64);
    for e in exemplars {
        let l = e.labels.encoded().len() as u64;
        n += ulen(crate::varint::zigzag(e.series_ref.wrapping_sub(r) as i64))
            + ulen(crate::varint::zigzag(e.t.wrapping_sub(t)))
            + 8
            + ulen(l)
            + l;
        r = e.series_ref;
        t = e.t;
    }
    n
}

/// Decodes the columns of `n` exemplars, which must be all of `cols`.
/// Never panics; allocates at most in proportion to `cols`.
pub(crate) fn read_exemplar_columns(cols: &[u8], n: u64) -> Result<Vec<RefExemplar>, &'static str> {
    if n > (cols.len() / MIN_EXEMPLAR_COLUMN_LEN) as u64 {
        return Err("record count exceeds record length");
    }
    let n = n as usize;
    let mut c = Cols { buf: cols, pos: 0 };
    let mut out = Vec::with_capacity(n);
    let mut r = 0u64;
    for _ in 0..n {
        r = r.wrapping_add(unzigzag(c.uvarint()?) as u64);
        out.push(RefExemplar { series_ref: r, t: 0, v: 0.0, labels: Labels::empty() });
    }
    let mut t = 0i64;
    for e in &mut out {
        t = t.wrapping_add(unzigzag(c.uvarint()?));
        e.t = t;
    }
    for e in &mut out {
        let b = c.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        e.v = f64::from_bits(u64::from_le_bytes(a));
    }
    for e in &mut out {
        let len = c.uvarint()?;
        let b = c.bytes(len)?;
        e.labels = Labels::from_encoded(b).map_err(|_| "invalid labels in exemplar record")?;
    }
    if c.pos != cols.len() {
        return Err("trailing bytes after record columns");
    }
    Ok(out)
}

struct Cols<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cols<'a> {
    fn uvarint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or("truncated exemplar record")?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint overflows 64 bits")
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], &'static str> {
        if len > (self.buf.len() - self.pos) as u64 {
            return Err("truncated exemplar record");
        }
        let s = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok(s)
    }
}

//! Label sets: the identity of a series.
//!
//! A [`Labels`] value is a set of `name="value"` pairs sorted by name, stored
//! in one compact byte buffer (`uvarint(len) bytes` for each name and value).
//! That buffer is also the canonical encoding used on disk and for hashing,
//! so a label set costs one allocation and its hash is stable across
//! processes and versions.
//!
//! Invariants enforced at construction:
//! - names are unique and sorted (byte-wise, as Prometheus sorts them);
//! - no name is empty;
//! - pairs with an empty value are dropped: an empty value means "absent".

use std::cmp::Ordering;
use std::fmt;

use xxhash_rust::xxh3::xxh3_64;

use crate::varint::put_uvarint;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Why a label set was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// A label name was empty.
    #[error("empty label name")]
    EmptyName,
    /// The same label name appeared twice.
    #[error("duplicate label name {0:?}")]
    DuplicateName(String),
    /// A label name does not satisfy the validation scheme.
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    /// The metric name does not satisfy the validation scheme.
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    /// The label set has no `__name__` label.
    #[error("label set has no metric name (__name__)")]
    MissingMetricName,
    /// The canonical encoding could not be decoded.
    #[error("malformed label encoding: {0}")]
    Malformed(&'static str),
}

/// How strictly names are validated, as Prometheus' `metric_name_validation_scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameValidation {
    /// Prometheus 3.x default: any non-empty UTF-8 string is a valid name.
    #[default]
    Utf8,
    /// Prometheus 2.x rules: label names match `[a-zA-Z_][a-zA-Z0-9_]*` and
    /// metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    Legacy,
}

impl NameValidation {
    /// Whether `name` is a valid label name under this scheme.
    pub fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            NameValidation::Utf8 => !name.is_empty(),
            NameValidation::Legacy => {
                let mut bytes = name.bytes();
                matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
                    && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }
        }
    }

    /// Whether `name` is a valid metric name under this scheme.
    pub fn is_valid_metric_name(self, name: &str) -> bool {
        match self {
            NameValidation::Utf8 => !name.is_empty(),
            NameValidation::Legacy => {
                let mut bytes = name.bytes();
                matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
                    && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
            }
        }
    }
}

/// One label pair, borrowed from a [`Labels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label<'a> {
    /// The label name.
    pub name: &'a str,
    /// The label value (never empty).
    pub value: &'a str,
}

/// A sorted, validated set of label pairs identifying one series.
///
/// ```
/// use tidemark_storage::Labels;
/// let l = Labels::new([("job", "api"), ("__name__", "up"), ("env", "")]).unwrap();
/// assert_eq!(l.get("job"), Some("api"));
/// assert_eq!(l.get("env"), None); // empty value means absent
/// assert_eq!(l.metric_name(), Some("up"));
/// assert_eq!(l.to_string(), r#"{__name__="up", job="api"}"#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels {
    data: Box<[u8]>,
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Labels {
        Labels::default()
    }

    /// Builds a label set from pairs in any order. Empty values are dropped;
    /// empty or duplicate names are an error. Names are not checked against a
    /// validation scheme here; see [`Labels::validate`].
    pub fn new<N, V, I>(pairs: I) -> Result<Labels, LabelError>
    where
        N: AsRef<str>,
        V: AsRef<str>,
        I: IntoIterator<Item = (N, V)>,
    {
        let mut v: Vec<(N, V)> = pairs.into_iter().filter(|(_, v)| !v.as_ref().is_empty()).collect();
        v.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        for w in v.windows(2) {
            if w[0].0.as_ref() == w[1].0.as_ref() {
                return Err(LabelError::DuplicateName(w[0].0.as_ref().to_string()));
            }
        }
        let mut data = Vec::with_capacity(v.iter().map(|(n, v)| n.as_ref().len() + v.as_ref().len() + 2).sum());
        for (n, val) in &v {
            if n.as_ref().is_empty() {
                return Err(LabelError::EmptyName);
            }
            put_str(&mut data, n.as_ref());
            put_str(&mut data, val.as_ref());
        }
        Ok(Labels { data: data.into_boxed_slice() })
    }

    /// Builds a label set from pairs that the caller guarantees are sorted by
    /// name, unique, with non-empty names and values (e.g. from an index that
    /// was validated when written). Debug builds check the guarantee.
    pub fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        // Encoded into this thread's reused buffer, then copied once into an
        // allocation of the exact size: growing a fresh `Vec` by doubling and
        // shrinking it took five or six allocator calls per label set, and a
        // query selecting every series builds one label set per series.
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|cell| {
            // A re-entrant call (an iterator that builds labels itself) finds
            // the buffer taken and uses a fresh one.
            let mut fresh = Vec::new();
            let mut guard = cell.try_borrow_mut();
            let data: &mut Vec<u8> = match guard.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut fresh,
            };
            data.clear();
            let mut prev: Option<&str> = None;
            for (n, v) in pairs {
                debug_assert!(!n.is_empty() && !v.is_empty());
                debug_assert!(prev.is_none_or(|p| p < n), "labels not sorted/unique");
                prev = Some(n);
                put_str(data, n);
                put_str(data, v);
            }
            let labels = Labels { data: Box::from(&data[..]) };
            // A huge label set does not keep its buffer alive in the thread.
            if data.capacity() > SCRATCH_KEEP {
                *data = Vec::new();
            }
            labels
        })
    }

    /// Decodes the canonical encoding produced by [`Labels::encoded`],
    /// checking every invariant. Never panics on arbitrary input.
    pub fn from_encoded(bytes: &[u8]) -> Result<Labels, LabelError> {
        let mut pos = 0;
        let mut prev: Option<&str> = None;
        while pos < bytes.len() {
            let name = get_str(bytes, &mut pos)?;
            let value = get_str(bytes, &mut pos)?;
            if name.is_empty() {
                return Err(LabelError::EmptyName);
            }
            if value.is_empty() {
                return Err(LabelError::Malformed("empty label value"));
            }
            if let Some(p) = prev {
                match p.cmp(name) {
                    Ordering::Less => {}
                    Ordering::Equal => return Err(LabelError::DuplicateName(name.to_string())),
                    Ordering::Greater => return Err(LabelError::Malformed("labels not sorted")),
                }
            }
            prev = Some(name);
        }
        Ok(Labels { data: bytes.into() })
    }

    /// The canonical encoding: for each pair in name order,
    /// `uvarint(len(name)) name uvarint(len(value)) value`.
    pub fn encoded(&self) -> &[u8] {
        &self.data
    }

    /// Checks names against `scheme` and requires a `__name__` label.
    pub fn validate(&self, scheme: NameValidation) -> Result<(), LabelError> {
        let mut has_name = false;
        for l in self.iter() {
            if l.name == METRIC_NAME {
                has_name = true;
                if !scheme.is_valid_metric_name(l.value) {
                    return Err(LabelError::InvalidMetricName(l.value.to_string()));
                }
            } else if !scheme.is_valid_label_name(l.name) {
                return Err(LabelError::InvalidName(l.name.to_string()));
            }
        }
        if !has_name {
            return Err(LabelError::MissingMetricName);
        }
        Ok(())
    }

    /// Iterates over the pairs in name order.
    pub fn iter(&self) -> LabelsIter<'_> {
        LabelsIter { data: &self.data, pos: 0 }
    }

    /// Whether `pairs` are exactly these labels, in order: every name and
    /// value equal, none missing or extra. A pair with an empty value never
    /// matches (a label set holds none). Compares bytes of the canonical
    /// encoding without decoding it, so it costs no UTF-8 check.
    ///
    /// ```
    /// use tidemark_storage::Labels;
    /// let l = Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
    /// assert!(l.matches_pairs([("__name__", "up"), ("job", "api")]));
    /// assert!(!l.matches_pairs([("job", "api"), ("__name__", "up")]));
    /// assert!(!l.matches_pairs([("__name__", "up"), ("env", ""), ("job", "api")]));
    /// ```
    pub fn matches_pairs<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let data = &self.data[..];
        let mut pos = 0;
        for (n, v) in pairs {
            for s in [n, v] {
                // The buffer is canonical, so its lengths decode.
                let Ok(b) = get_bytes(data, &mut pos) else { return false };
                if b != s.as_bytes() {
                    return false;
                }
            }
        }
        pos == data.len()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        // Names are compared as bytes; only the value found is decoded.
        let mut pos = 0;
        while let Some(n) = raw_str(&self.data, &mut pos) {
            if n == name.as_bytes() {
                return valid_str(&self.data, &mut pos);
            }
            raw_str(&self.data, &mut pos)?;
        }
        None
    }

    /// The value of `__name__`, if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A stable 64-bit hash (xxh3 of the canonical encoding): the same in
    /// every process and version, so it may be persisted.
    pub fn stable_hash(&self) -> u64 {
        xxh3_64(&self.data)
    }

    /// Bytes of heap memory held by this value.
    pub fn heap_bytes(&self) -> usize {
        self.data.len()
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Result<Labels, LabelError> {
        let pairs =
            self.iter().filter(|l| l.name != name).map(|l| (l.name, l.value)).chain(std::iter::once((name, value)));
        Labels::new(pairs)
    }

    /// A copy without the named labels.
    ///
    /// The encoding is canonical and pairs are encoded one after another,
    /// so the copy is the bytes of the kept pairs as they are: found by
    /// length hops and copied in runs into an allocation of the exact size
    /// (every `rate` output drops `__name__` this way; re-encoding it pair
    /// by pair cost a thousand instructions per series).
    pub fn without(&self, names: &[&str]) -> Labels {
        let data = &self.data[..];
        // Byte ranges of the pairs to drop, in order.
        let mut dropped: Vec<(usize, usize)> = Vec::new();
        let mut pos = 0usize;
        loop {
            let start = pos;
            let Some(name) = raw_str(data, &mut pos) else { break };
            if raw_str(data, &mut pos).is_none() {
                break;
            }
            if names.iter().any(|n| n.as_bytes() == name) {
                dropped.push((start, pos));
            }
        }
        if dropped.is_empty() {
            return self.clone();
        }
        let removed: usize = dropped.iter().map(|(a, b)| b - a).sum();
        let mut out = Vec::with_capacity(data.len() - removed);
        let mut kept_from = 0usize;
        for (a, b) in dropped {
            out.extend_from_slice(&data[kept_from..a]);
            kept_from = b;
        }
        out.extend_from_slice(&data[kept_from..]);
        Labels { data: out.into_boxed_slice() }
    }
}

/// Iterator over the pairs of a [`Labels`].
#[derive(Clone)]
pub struct LabelsIter<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        if self.pos >= self.data.len() {
            return None;
        }
        // The buffer was validated at construction, so decoding cannot fail
        // and its strings need no second UTF-8 check.
        let name = valid_str(self.data, &mut self.pos).expect("labels invariant");
        let value = valid_str(self.data, &mut self.pos).expect("labels invariant");
        Some(Label { name, value })
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = Label<'a>;
    type IntoIter = LabelsIter<'a>;
    fn into_iter(self) -> LabelsIter<'a> {
        self.iter()
    }
}

impl Ord for Labels {
    /// Prometheus' order: pair by pair, name then value; a prefix sorts first.
    ///
    /// Compares the encoded strings as bytes (the order of `str`) without
    /// decoding them as UTF-8 again: sorting the series of a query compares
    /// label sets millions of times.
    fn cmp(&self, other: &Labels) -> Ordering {
        // Label sets compared while sorting a selection share long prefixes
        // (name, job, instance…). Equal bytes up to the first difference
        // are equal strings with the same boundaries, so the string by
        // string comparison starts at the string that holds it: found with
        // a word-at-a-time scan and length hops instead of one slice
        // comparison per string.
        let diff = first_difference(&self.data, &other.data);
        let mut start = 0usize;
        let mut pos = 0usize;
        while raw_str(&self.data, &mut pos).is_some() && pos <= diff {
            start = pos;
        }
        let (mut pa, mut pb) = (start, start);
        // Names and values alternate, so comparing string by string is
        // comparing pair by pair, name then value.
        loop {
            match (raw_str(&self.data, &mut pa), raw_str(&other.data, &mut pb)) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => match x.cmp(y) {
                    Ordering::Equal => {}
                    o => return o,
                },
            }
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Labels {
    /// Prometheus' format: `{a="1", b="2"}` with Go-style escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '"' => f.write_str("\\\"")?,
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Bytes of [`Labels::from_sorted`]'s per-thread buffer kept between calls.
const SCRATCH_KEEP: usize = 64 * 1024;

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The length of the longest common prefix of `a` and `b`, compared eight
/// bytes at a time.
#[inline]
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let mut i = 0usize;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |c: &[u8]| <[u8; 8]>::try_from(c).map_or(0, u64::from_le_bytes);
        let d = word(x) ^ word(y);
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let n = a.len().min(b.len());
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The next string of a validated encoding as bytes, without checking it
/// again (`None` at the end). The encoding was checked when the [`Labels`]
/// was built; on bytes that are not a valid encoding this returns `None`
/// instead of panicking.
#[inline]
pub(crate) fn raw_str<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let first = *buf.get(*pos)?;
    let (len, skip) = if first < 0x80 {
        (usize::from(first), 1)
    } else {
        let mut p = *pos;
        get_str(buf, &mut p).ok()?;
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = *pos;
        loop {
            let b = buf[i];
            i += 1;
            len |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        (len, i - *pos)
    };
    let start = *pos + skip;
    let s = buf.get(start..start.checked_add(len)?)?;
    *pos = start + len;
    Some(s)
}

/// The next string of a [`Labels`]' own buffer as `&str`, without checking
/// its UTF-8 again (`None` at the end).
///
/// Only for `Labels::data`, read string by string from its start: every
/// constructor of [`Labels`] either took each string as `&str` or checked
/// it with [`get_str`] ([`Labels::from_encoded`]), and the buffer is never
/// changed afterwards, so every string this walk reaches is valid UTF-8.
/// Iterating label sets re-validated them on every pass (5–7% of a large
/// instant query's CPU: the engine's group keys, the answer's JSON).
#[inline]
fn valid_str<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let b = raw_str(buf, pos)?;
    debug_assert!(std::str::from_utf8(b).is_ok(), "label string not UTF-8");
    // SAFETY: `buf` is a `Labels`' buffer walked from a string boundary
    // (see above): each of its strings was valid UTF-8 when it was built.
    Some(unsafe { std::str::from_utf8_unchecked(b) })
}

fn get_str<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a str, LabelError> {
    let start = *pos;
    let b = get_bytes(buf, pos)?;
    std::str::from_utf8(b).map_err(|_| {
        *pos = start;
        LabelError::Malformed("invalid UTF-8")
    })
}

/// One length-prefixed string of the encoding, as bytes.
fn get_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], LabelError> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos).ok_or(LabelError::Malformed("truncated length"))?;
        *pos += 1;
        if shift >= 63 && b > 1 {
            return Err(LabelError::Malformed("length overflow"));
        }
        len |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            // Only the shortest form is canonical: a final zero byte after a
            // continuation would give the same label set a second encoding
            // (and a different hash).
            if b == 0 && shift > 0 {
                return Err(LabelError::Malformed("non-minimal length"));
            }
            break;
        }
        shift += 7;
    }
    let end = pos
        .checked_add(usize::try_from(len).map_err(|_| LabelError::Malformed("length overflow"))?)
        .filter(|&e| e <= buf.len())
        .ok_or(LabelError::Malformed("truncated string"))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_drops_empty_values_and_rejects_duplicates() {
        let l = Labels::new([("b", "2"), ("a", "1"), ("c", "")]).unwrap();
        let pairs: Vec<_> = l.iter().map(|l| (l.name, l.value)).collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", "2")]);
        assert_eq!(Labels::new([("a", "1"), ("a", "2")]), Err(LabelError::DuplicateName("a".into())));
        assert_eq!(Labels::new([("", "1")]), Err(LabelError::EmptyName));
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let l = Labels::new([("__name__", "up"), ("job", "a\"b\n"), ("ü", "✓")]).unwrap();
        assert_eq!(Labels::from_encoded(l.encoded()).unwrap(), l);
        assert!(Labels::from_encoded(&[5, b'a']).is_err());
        assert!(Labels::from_encoded(&[1, b'b', 1, b'x', 1, b'a', 1, b'x']).is_err());
        assert!(Labels::from_encoded(&[0xff; 12]).is_err());
        // Found by the labels_decode fuzz target: a non-minimal length varint
        // decoded into a label set equal in content but not in bytes.
        assert!(Labels::from_encoded(&[0x01, 0x26, 0x81, 0x00, 0x00]).is_err());
        assert_eq!(l.to_string(), "{__name__=\"up\", job=\"a\\\"b\\n\", ü=\"✓\"}");
    }

    #[test]
    fn every_constructor_reads_back_its_strings() {
        // Iteration and `get` skip the UTF-8 check (`valid_str`): what any
        // constructor stored must read back exactly, multi-byte characters
        // and multi-byte length prefixes included.
        let long = "é✓".repeat(60);
        let pairs = [("__name__", "up"), ("a", long.as_str()), ("z", "\u{10FFFF}"), ("ü", "✓")];
        let built = Labels::new(pairs).unwrap();
        let sorted = Labels::from_sorted(pairs);
        let decoded = Labels::from_encoded(built.encoded()).unwrap();
        let without = Labels::new([("b", "x")].into_iter().chain(pairs)).unwrap().without(&["b"]);
        for l in [&built, &sorted, &decoded, &without] {
            let back: Vec<(&str, &str)> = l.iter().map(|l| (l.name, l.value)).collect();
            assert_eq!(back, pairs);
            for (n, v) in pairs {
                assert_eq!(l.get(n), Some(v));
            }
            assert_eq!(l.get("b"), None);
        }
        // Bytes that are not UTF-8 never make a label set.
        let mut bad = built.encoded().to_vec();
        let at = bad.iter().position(|&b| b == 0xC3).unwrap();
        bad[at] = 0xFF;
        assert!(Labels::from_encoded(&bad).is_err());
    }

    #[test]
    fn validation_schemes() {
        let ok = Labels::new([("__name__", "http:requests_total"), ("code", "200")]).unwrap();
        assert!(ok.validate(NameValidation::Legacy).is_ok());
        let dotted = Labels::new([("__name__", "http.requests"), ("service.name", "x")]).unwrap();
        assert!(dotted.validate(NameValidation::Utf8).is_ok());
        assert_eq!(dotted.validate(NameValidation::Legacy), Err(LabelError::InvalidMetricName("http.requests".into())));
        let noname = Labels::new([("job", "x")]).unwrap();
        assert_eq!(noname.validate(NameValidation::Utf8), Err(LabelError::MissingMetricName));
        assert!(!NameValidation::Legacy.is_valid_label_name("1abc"));
        assert!(!NameValidation::Legacy.is_valid_label_name("a:b"));
    }

    #[test]
    fn matches_pairs_compares_exactly() {
        let l = Labels::new([("__name__", "up"), ("job", "a\"b"), ("ü", "✓")]).unwrap();
        assert!(l.matches_pairs([("__name__", "up"), ("job", "a\"b"), ("ü", "✓")]));
        assert!(!l.matches_pairs([("__name__", "up"), ("job", "a\"b")]));
        assert!(!l.matches_pairs([("__name__", "up"), ("job", "a\"b"), ("ü", "✓"), ("z", "1")]));
        assert!(!l.matches_pairs([("__name__", "up"), ("job", "a\"c"), ("ü", "✓")]));
        assert!(!l.matches_pairs([("__name__", "up"), ("jo", "ba\"b"), ("ü", "✓")]));
        assert!(!l.matches_pairs([("__name__", "up"), ("env", ""), ("job", "a\"b"), ("ü", "✓")]));
        assert!(Labels::empty().matches_pairs([]));
        assert!(!Labels::empty().matches_pairs([("a", "")]));
        for pairs in [vec![("a", "1")], vec![("__name__", "x"), ("a", "1")], vec![]] {
            assert!(Labels::from_sorted(pairs.iter().copied()).matches_pairs(pairs.iter().copied()));
        }
    }

    #[test]
    fn ordering_matches_prometheus() {
        let a = Labels::new([("a", "1")]).unwrap();
        let ab = Labels::new([("a", "1"), ("b", "1")]).unwrap();
        let a2 = Labels::new([("a", "2")]).unwrap();
        assert!(a < ab && ab < a2);
        assert_eq!(a.stable_hash(), Labels::new([("a", "1")]).unwrap().stable_hash());
    }

    /// The reference order: pair by pair, name then value, as `str`s.
    fn pairwise_cmp(a: &Labels, b: &Labels) -> Ordering {
        let pa: Vec<(&str, &str)> = a.iter().map(|l| (l.name, l.value)).collect();
        let pb: Vec<(&str, &str)> = b.iter().map(|l| (l.name, l.value)).collect();
        pa.cmp(&pb)
    }

    #[test]
    fn long_values_compare_and_get_like_short_ones() {
        // Lengths of 128 bytes and more take a multi-byte length prefix.
        let long = "x".repeat(300);
        let a = Labels::new([("a", long.as_str()), ("b", "1")]).unwrap();
        let b = Labels::new([("a", &long[..200]), ("b", "2")]).unwrap();
        assert_eq!(a.get("b"), Some("1"));
        assert_eq!(a.get("a"), Some(long.as_str()));
        assert_eq!(a.get("c"), None);
        assert_eq!(a.cmp(&b), pairwise_cmp(&a, &b));
        assert_eq!(b.cmp(&a), pairwise_cmp(&b, &a));
    }

    #[test]
    fn without_is_the_filtered_set() {
        let long = "v".repeat(200);
        let l = Labels::new([("__name__", "up"), ("__type__", "counter"), ("a", long.as_str()), ("job", "x")]).unwrap();
        for names in [
            &[][..],
            &["__name__"][..],
            &["__name__", "__type__", "__unit__"][..],
            &["a"][..],
            &["job"][..],
            &["a", "job", "__name__", "__type__"][..],
            &["nope"][..],
        ] {
            let want = Labels::from_sorted(l.iter().filter(|p| !names.contains(&p.name)).map(|p| (p.name, p.value)));
            assert_eq!(l.without(names), want, "{names:?}");
            assert_eq!(l.without(names).encoded(), want.encoded(), "{names:?}");
        }
        assert_eq!(Labels::empty().without(&["a"]), Labels::empty());
    }

    #[test]
    fn first_difference_finds_the_common_prefix() {
        let a: Vec<u8> = (0..40).collect();
        for i in 0..=40 {
            let mut b = a.clone();
            if i < 40 {
                b[i] ^= 0x80;
            }
            assert_eq!(first_difference(&a, &b), i);
            assert_eq!(first_difference(&a[..i], &a), i);
            assert_eq!(first_difference(&a, &a[..i]), i);
        }
    }

    proptest::proptest! {
        #[test]
        fn shared_prefixes_compare_pairwise(
            shared in proptest::collection::vec(("a[a-c]{0,9}", "[a-c]{0,12}|x{120,140}"), 0..6),
            x in proptest::collection::vec(("[b-d]{1,3}", "[a-c\u{0}]{0,3}|x{120,140}"), 0..3),
            y in proptest::collection::vec(("[b-d]{1,3}", "[a-c\u{0}]{0,3}|x{120,140}"), 0..3),
        ) {
            let set = |tail: &[(String, String)]| {
                let mut m = std::collections::BTreeMap::new();
                for (n, v) in shared.iter().chain(tail) { m.insert(n.clone(), v.clone()); }
                Labels::new(m).unwrap()
            };
            let (a, b) = (set(&x), set(&y));
            proptest::prop_assert_eq!(a.cmp(&b), pairwise_cmp(&a, &b));
            proptest::prop_assert_eq!(b.cmp(&a), pairwise_cmp(&b, &a));
            proptest::prop_assert_eq!(a.cmp(&a), Ordering::Equal);
        }

        #[test]
        fn byte_order_is_the_pairwise_order(
            x in proptest::collection::vec(("[a-c]{1,3}", "[a-cé]{0,3}|x{120,140}"), 0..4),
            y in proptest::collection::vec(("[a-c]{1,3}", "[a-cé]{0,3}|x{120,140}"), 0..4),
        ) {
            let dedup = |v: Vec<(String, String)>| {
                let mut m = std::collections::BTreeMap::new();
                for (n, val) in v { m.insert(n, val); }
                Labels::new(m).unwrap()
            };
            let (a, b) = (dedup(x), dedup(y));
            proptest::prop_assert_eq!(a.cmp(&b), pairwise_cmp(&a, &b));
            for l in a.iter() {
                proptest::prop_assert_eq!(a.get(l.name), Some(l.value));
            }
            for l in b.iter() {
                proptest::prop_assert_eq!(a.get(l.name), a.iter().find(|p| p.name == l.name).map(|p| p.value));
            }
        }
    }
}

//! Body decoding: snappy (block format, declared length checked before
//! allocating) and protobuf, into one form both protocol versions share.
//!
//! [`Batch`] holds the decoded message (our zero-copy decoding in
//! [`super::wire`], borrowing from the decompressed buffer) and lends out each
//! series as a [`SeriesView`]: its label pairs as sent (1.0 strings, or 2.0
//! symbol references resolved), its samples, its native histogram
//! messages (as bytes, decoded when appended: [`SeriesView::histogram`])
//! and its exemplar messages (as bytes, decoded when stored:
//! [`SeriesView::exemplar`]). Visiting a batch
//! allocates at most one scratch vector.

use super::error::ReceiveError;
use super::negotiate::Protocol;
use std::borrow::Cow;

use super::wire::{
    decode_v1, decode_v1_exemplar, decode_v1_lazy, decode_v2, decode_v2_exemplar, split_label_fields, V1Wire, V2Span,
    V2Wire, WireError, WireExemplar,
};
use crate::proto::Sample;
use crate::MetricKind;

/// Decompresses a snappy block-format `body`, refusing (before any
/// allocation) a declared decompressed size over `limit`.
pub fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, ReceiveError> {
    let mut out = Vec::new();
    decompress_into(body, limit, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out`, replacing its contents and reusing its
/// capacity: a receiver thread that keeps one buffer across requests
/// neither allocates nor zeroes (and page-faults in) a fresh body-sized
/// buffer per request. On error `out` holds nothing meaningful.
///
/// ```
/// use tidemark_remote::receive::decompress_into;
/// let body = snap::raw::Encoder::new().compress_vec(b"hello").unwrap();
/// let mut buf = b"previous request".to_vec();
/// decompress_into(&body, 1 << 20, &mut buf).unwrap();
/// assert_eq!(buf, b"hello");
/// ```
pub fn decompress_into(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), ReceiveError> {
    let declared = snap::raw::decompress_len(body).map_err(|e| ReceiveError::CorruptSnappy(e.to_string()))?;
    if declared > limit {
        return Err(ReceiveError::DecompressedTooLarge { declared, limit });
    }
    // Only bytes past the old length are zeroed: the decoder overwrites
    // the first `declared` bytes before anything reads them.
    out.resize(declared.max(out.len()), 0);
    let n = snap::raw::Decoder::new()
        .decompress(body, &mut out[..declared])
        .map_err(|e| ReceiveError::CorruptSnappy(e.to_string()))?;
    out.truncate(n);
    Ok(())
}

/// A decoded request of either version, borrowing from the decompressed
/// body.
#[derive(Debug)]
pub enum Batch<'a> {
    /// Remote write 1.0.
    V1(V1Wire<'a>),
    /// Remote write 2.0 (its symbol table checked).
    V2(V2Wire<'a>),
}

/// Metadata a series (2.0) or a family (1.0) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataView<'a> {
    /// The type.
    pub kind: MetricKind,
    /// Help text.
    pub help: &'a str,
    /// Unit.
    pub unit: &'a str,
}

/// One series of a [`Batch`].
#[derive(Debug)]
pub struct SeriesView<'a, 's> {
    /// Label pairs in the order sent (validation checks the order).
    /// Empty while [`SeriesView::labels_pending`]: see [`SeriesView::pairs`].
    pub labels: &'s [(&'a str, &'a str)],
    /// The labels are not split yet (a batch from [`Batch::decode_lazy`]
    /// whose [`Batch::split_labels`] left this series out): they are only
    /// `label_bytes`, unchecked.
    pub labels_pending: bool,
    /// 1.0: the series' label fields as sent, when they sit together
    /// ([`V1Wire::label_bytes`]); equal bytes are equal pairs. `None` for
    /// 2.0 (its labels are references into a per-request symbol table).
    pub label_bytes: Option<&'a [u8]>,
    /// Float samples.
    pub samples: &'a [Sample],
    /// Exemplar messages, as sent (their structure checked; see
    /// [`SeriesView::exemplar`]).
    pub exemplars: &'s [&'a [u8]],
    /// 2.0: the request's symbol table, which exemplar labels refer to.
    pub symbols: Option<&'s [&'a str]>,
    /// Native histogram messages, as sent (their structure checked; see
    /// [`SeriesView::histogram`]).
    pub histograms: &'s [&'a [u8]],
    /// 2.0 per-series metadata, when any field is set.
    pub metadata: Option<MetadataView<'a>>,
}

/// A 2.0 series whose references do not resolve; it is rejected alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRefs {
    /// What is wrong.
    pub reason: String,
    /// Samples it carried (counted as rejected).
    pub samples: usize,
    /// Native histogram samples it carried (counted as rejected).
    pub histograms: usize,
}

impl<'a, 's> SeriesView<'a, 's> {
    /// Exemplar `i` of the series, decoded: its label pairs (2.0: the
    /// references resolved), value and timestamp; or why it is invalid.
    pub fn exemplar(&self, i: usize) -> Result<WireExemplar<Vec<(&'a str, &'a str)>>, String> {
        let bytes = self.exemplars.get(i).ok_or_else(|| format!("no exemplar {i}"))?;
        let Some(symbols) = self.symbols else {
            return decode_v1_exemplar(bytes).map_err(|e| e.to_string());
        };
        let e = decode_v2_exemplar(bytes).map_err(|e| e.to_string())?;
        if !e.labels.len().is_multiple_of(2) {
            return Err(format!("exemplar labels_refs has an odd length {}", e.labels.len()));
        }
        let sym = |r: u32| {
            symbols.get(r as usize).copied().ok_or_else(|| {
                format!("exemplar label reference {r} is outside the symbol table (size {})", symbols.len())
            })
        };
        let mut labels = Vec::with_capacity(e.labels.len() / 2);
        for pair in e.labels.chunks_exact(2) {
            labels.push((sym(pair[0])?, sym(pair[1])?));
        }
        Ok(WireExemplar { labels, value: e.value, timestamp: e.timestamp })
    }

    /// The label pairs: [`SeriesView::labels`], or the label bytes split
    /// (and checked) when they are pending.
    pub fn pairs(&self) -> Result<Cow<'s, [(&'a str, &'a str)]>, ReceiveError> {
        if !self.labels_pending {
            return Ok(Cow::Borrowed(self.labels));
        }
        let mut out = Vec::new();
        split_label_fields(self.label_bytes.unwrap_or_default(), &mut out).map_err(v1_error)?;
        Ok(Cow::Owned(out))
    }

    /// Decodes native histogram message `i` of the series into storage's
    /// model: prost for the message, then
    /// [`crate::histogram::from_proto`]. The error (a message mixing the
    /// integer and float kinds, an unknown reset hint) rejects that sample
    /// alone.
    pub fn histogram(&self, i: usize) -> Result<tidemark_storage::histogram::HistogramSample, String> {
        let bytes = self.histograms.get(i).ok_or_else(|| format!("no histogram {i} in the series"))?;
        let p = super::wire::decode_histogram(bytes).map_err(|e| format!("cannot decode the histogram: {e}"))?;
        crate::histogram::from_proto(&p).map_err(|e| e.to_string())
    }
}

/// A 1.0 body's decoding error as the receiver answers it.
fn v1_error(e: WireError) -> ReceiveError {
    ReceiveError::BadProtobuf { message: "prometheus.WriteRequest", reason: e.to_string() }
}

impl<'a> Batch<'a> {
    /// Decodes a decompressed body of `protocol`, every part of it checked.
    pub fn decode(protocol: Protocol, raw: &'a [u8]) -> Result<Batch<'a>, ReceiveError> {
        match protocol {
            Protocol::V1 => decode_v1(raw).map(Batch::V1).map_err(v1_error),
            Protocol::V2 => Self::decode_v2(raw),
        }
    }

    /// [`Batch::decode`], except that a 1.0 series' labels sent together
    /// are left unsplit and unchecked ([`super::wire::decode_v1_lazy`]).
    /// The batch is not checked until [`Batch::split_labels`] has split
    /// every pending series except those whose label bytes the caller
    /// knows to be those of a label set it validated before.
    pub fn decode_lazy(protocol: Protocol, raw: &'a [u8]) -> Result<Batch<'a>, ReceiveError> {
        match protocol {
            Protocol::V1 => decode_v1_lazy(raw).map(Batch::V1).map_err(v1_error),
            Protocol::V2 => Self::decode_v2(raw),
        }
    }

    /// Splits and checks the pending labels of every series (by index)
    /// for which `want` holds; an error means the body is malformed. A 2.0
    /// batch has none pending.
    pub fn split_labels(&mut self, want: impl FnMut(usize) -> bool) -> Result<(), ReceiveError> {
        match self {
            Batch::V1(w) => w.split_labels(want).map_err(v1_error),
            Batch::V2(_) => Ok(()),
        }
    }

    /// Decodes a 2.0 body and checks its symbol table.
    fn decode_v2(raw: &'a [u8]) -> Result<Batch<'a>, ReceiveError> {
        let req = decode_v2(raw).map_err(|e| ReceiveError::BadProtobuf {
            message: "io.prometheus.write.v2.Request",
            reason: e.to_string(),
        })?;
        if req.symbols.is_empty() && req.series.is_empty() && req.v1_fields > 0 {
            return Err(ReceiveError::V1BodyWithV2ContentType { fields: req.v1_fields });
        }
        if let Some(first) = req.symbols.first() {
            if !first.is_empty() {
                return Err(ReceiveError::BadSymbolTable(format!(
                    "the first symbol must be the empty string, got {first:?}"
                )));
            }
        }
        Ok(Batch::V2(req))
    }

    /// Gives the decoded vectors back for the thread's next request (see
    /// [`V1Wire::recycle`]); dropping the batch instead is always fine.
    pub fn recycle(self) {
        if let Batch::V1(w) = self {
            w.recycle();
        }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        match self {
            Batch::V1(r) => r.series.len(),
            Batch::V2(r) => r.series.len(),
        }
    }

    /// Whether the batch holds no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// 1.0's per-family metadata entries as (family name, metadata).
    pub fn family_metadata(&self) -> impl Iterator<Item = (&str, MetadataView<'_>)> {
        let list: &[super::wire::WireMetadata<'_>] = match self {
            Batch::V1(r) => &r.metadata,
            Batch::V2(_) => &[],
        };
        list.iter()
            .map(|m| (m.family, MetadataView { kind: MetricKind::from_proto(m.kind), help: m.help, unit: m.unit }))
    }

    /// Calls `f` with each series in order, or with why a 2.0 series'
    /// references do not resolve.
    pub fn for_each_series<F>(&self, mut f: F)
    where
        F: FnMut(Result<SeriesView<'_, '_>, BadRefs>),
    {
        let mut scratch: Vec<(&str, &str)> = Vec::new();
        match self {
            Batch::V1(req) => {
                for (i, (s, &label_bytes)) in req.series.iter().zip(&req.label_bytes).enumerate() {
                    f(Ok(SeriesView {
                        labels: &req.labels[s.labels.0 as usize..s.labels.1 as usize],
                        labels_pending: req.labels_pending(i),
                        label_bytes,
                        samples: &req.samples[s.samples.0 as usize..s.samples.1 as usize],
                        exemplars: &req.exemplars[s.exemplars.0 as usize..s.exemplars.1 as usize],
                        symbols: None,
                        histograms: &req.histograms[s.histograms.0 as usize..s.histograms.1 as usize],
                        metadata: None,
                    }));
                }
            }
            Batch::V2(req) => {
                for span in &req.series {
                    scratch.clear();
                    let samples = &req.samples[span.samples.0 as usize..span.samples.1 as usize];
                    let histograms = &req.histograms[span.histograms.0 as usize..span.histograms.1 as usize];
                    match resolve(req, span, &mut scratch) {
                        Ok(metadata) => f(Ok(SeriesView {
                            labels: &scratch,
                            labels_pending: false,
                            label_bytes: None,
                            samples,
                            exemplars: &req.exemplars[span.exemplars.0 as usize..span.exemplars.1 as usize],
                            symbols: Some(&req.symbols),
                            histograms,
                            metadata,
                        })),
                        Err(reason) => f(Err(BadRefs { reason, samples: samples.len(), histograms: histograms.len() })),
                    }
                }
            }
        }
    }
}

/// Resolves a 2.0 series' label and metadata references into `out`.
fn resolve<'a>(
    req: &V2Wire<'a>,
    span: &V2Span,
    out: &mut Vec<(&'a str, &'a str)>,
) -> Result<Option<MetadataView<'a>>, String> {
    let symbols = &req.symbols;
    let refs = &req.refs[span.refs.0 as usize..span.refs.1 as usize];
    if !refs.len().is_multiple_of(2) {
        return Err(format!("labels_refs has an odd length {} ({refs:?})", refs.len()));
    }
    let sym = |r: u32, what: &str| -> Result<&'a str, String> {
        symbols
            .get(r as usize)
            .copied()
            .ok_or_else(|| format!("{what} reference {r} is outside the symbol table (size {})", symbols.len()))
    };
    for pair in refs.chunks_exact(2) {
        out.push((sym(pair[0], "label name")?, sym(pair[1], "label value")?));
    }
    let Some((kind, help_ref, unit_ref)) = span.metadata else { return Ok(None) };
    let help = sym(help_ref, "metadata help")?;
    let unit = sym(unit_ref, "metadata unit")?;
    let kind = MetricKind::from_proto(kind);
    if kind == MetricKind::Unknown && help.is_empty() && unit.is_empty() {
        return Ok(None);
    }
    Ok(Some(MetadataView { kind, help, unit }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_length_is_checked_before_decompressing() {
        // A snappy header is a uvarint of the decompressed length: declare
        // 1 GiB and send nothing else.
        let bomb = [0x80, 0x80, 0x80, 0x80, 0x04];
        match decompress(&bomb, 1 << 20) {
            Err(ReceiveError::DecompressedTooLarge { declared, limit }) => {
                assert_eq!((declared, limit), (1 << 30, 1 << 20));
            }
            other => panic!("expected DecompressedTooLarge, got {other:?}"),
        }
        let ok = crate::codec::compress(b"hello");
        assert_eq!(decompress(&ok, 5).unwrap(), b"hello");
        assert!(matches!(decompress(&ok, 4), Err(ReceiveError::DecompressedTooLarge { .. })));
        assert!(matches!(decompress(&[], 10), Err(ReceiveError::CorruptSnappy(_))));
    }

    #[test]
    fn a_reused_buffer_holds_exactly_each_body_whatever_came_before() {
        let mut buf = Vec::new();
        for body in [&b"a much longer first body"[..], b"short", b"", b"a much longer body, longer than the first"] {
            decompress_into(&crate::codec::compress(body), 1 << 20, &mut buf).unwrap();
            assert_eq!(buf, body);
        }
        // Errors in between leave the next request's body intact.
        assert!(decompress_into(&[0x80, 0x80, 0x80, 0x80, 0x04], 1 << 20, &mut buf).is_err());
        let mut corrupt = crate::codec::compress(b"0123456789");
        corrupt.truncate(corrupt.len() - 3);
        assert!(matches!(decompress_into(&corrupt, 1 << 20, &mut buf), Err(ReceiveError::CorruptSnappy(_))));
        decompress_into(&crate::codec::compress(b"next"), 1 << 20, &mut buf).unwrap();
        assert_eq!(buf, b"next");
    }
}

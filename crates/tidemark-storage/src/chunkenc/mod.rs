//! Chunk encodings: how a run of samples of one series is stored.
//!
//! - [`Encoding::Xor`]: the Gorilla codec, used for the head's open chunks
//!   (appendable, ~120 samples).
//! - [`Encoding::Sealed`]: a denser, lossless, non-appendable encoding for
//!   sealed data in blocks (see [`sealed`]).
//! - [`Encoding::Histogram`] and [`Encoding::FloatHistogram`]: native
//!   histograms with integer or float counts, appendable (see [`histogram`]
//!   and [`float_histogram`]).
//! - [`Encoding::SealedHistogram`]: a denser, lossless, non-appendable
//!   encoding for native-histogram runs in blocks (see [`sealed_histogram`]).
//!
//! A [`Chunk`] pairs an encoding with its bytes, wherever they live (heap or
//! a mapped block file), and hands out a [`ChunkIterator`].

pub mod bstream;
mod decoded;
pub mod float_histogram;
pub mod histogram;
pub mod histogram_meta;
pub mod prom_xor;
pub mod sealed;
pub mod sealed_histogram;
mod summary;
pub mod xor;

use std::sync::Arc;

use crate::error::ChunkError;
use crate::histogram::HistogramSample;
use crate::sample::{Sample, SampleIterator, ValueKind};

pub use decoded::DecodedIterator;
pub use float_histogram::{FloatHistogramAppender, FloatHistogramIterator};
pub use histogram::{HistogramAppender, HistogramIterator};
pub use histogram_meta::{AppendOutcome, CounterResetHeader, CutReason, HistogramAppendError};
pub use sealed_histogram::SealedHistogramIterator;
pub use summary::{ChunkSummary, Extreme};
pub use xor::{DrainEnd, XorAppender, XorIterator};

/// The on-disk encoding byte of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// Gorilla delta-of-delta timestamps + XOR floats.
    Xor = 1,
    /// The sealed block encoding (see [`sealed`]).
    Sealed = 2,
    /// Integer native histograms (see [`histogram`]). Not 3: block chunk
    /// files use 3 for a chunk group record (`block::group::GROUP_ENCODING`).
    Histogram = 4,
    /// Float native histograms (see [`float_histogram`]).
    FloatHistogram = 5,
    /// Native histograms (integer or float counts) in the sealed block
    /// encoding (see [`sealed_histogram`]).
    SealedHistogram = 6,
}

impl Encoding {
    /// Whether chunks of this encoding hold native histograms.
    pub fn is_histogram(self) -> bool {
        matches!(self, Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram)
    }
}

impl TryFrom<u8> for Encoding {
    type Error = ChunkError;
    fn try_from(b: u8) -> Result<Encoding, ChunkError> {
        match b {
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Sealed),
            4 => Ok(Encoding::Histogram),
            5 => Ok(Encoding::FloatHistogram),
            6 => Ok(Encoding::SealedHistogram),
            other => Err(ChunkError::UnknownEncoding(other)),
        }
    }
}

/// Chunk bytes on the heap, in a heap buffer shared with other chunks, or
/// inside a memory-mapped file. Cheap to clone.
#[derive(Clone)]
pub enum ChunkBytes {
    /// Bytes owned on the heap.
    Heap(Arc<[u8]>),
    /// A range of a heap buffer that holds the bytes of several chunks: the
    /// head's select copies the open chunks of a run of series into one
    /// buffer (one allocation, freed once, instead of one per series). The
    /// buffer stays alive while any of its chunks is referenced.
    Shared {
        /// The buffer.
        buf: Arc<[u8]>,
        /// Start offset of the chunk in the buffer.
        start: u32,
        /// Length of the chunk.
        len: u32,
    },
    /// A range of a mapped file; the map stays alive while referenced.
    Mapped {
        /// The mapped file.
        map: Arc<memmap2::Mmap>,
        /// Start offset of the chunk in the map.
        start: usize,
        /// Length of the chunk.
        len: usize,
    },
}

impl AsRef<[u8]> for ChunkBytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        match self {
            ChunkBytes::Heap(b) => b,
            ChunkBytes::Shared { buf, start, len } => &buf[*start as usize..*start as usize + *len as usize],
            ChunkBytes::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkBytes({} bytes)", self.as_ref().len())
    }
}

impl From<Vec<u8>> for ChunkBytes {
    fn from(v: Vec<u8>) -> ChunkBytes {
        ChunkBytes::Heap(v.into())
    }
}

/// An immutable chunk: an encoding, its bytes, the time range it covers and,
/// for a sealed chunk written without its own timestamps, the shared
/// timestamp column it decodes against.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Timestamp of the first sample.
    pub mint: i64,
    /// Timestamp of the last sample.
    pub maxt: i64,
    /// How `bytes` are encoded.
    pub encoding: Encoding,
    /// The encoded samples.
    pub bytes: ChunkBytes,
    /// The shared timestamp column of a [`Encoding::Sealed`] chunk written
    /// without its own (see [`sealed::encode_with`]); `None` for chunks that
    /// carry their timestamps (every XOR chunk). Shared, so cloning a chunk
    /// or handing the column to many chunks copies nothing.
    pub timestamps: Option<Arc<[i64]>>,
    /// The chunk's extremes and sample counts, where the store keeps them
    /// (closed head chunks); `None` elsewhere. Lets a reader that wants only
    /// the largest or smallest value of a window skip decoding a chunk that
    /// lies wholly inside it (see [`SampleIterator::drain_extreme_into`]).
    pub summary: Option<ChunkSummary>,
}

impl Chunk {
    /// An iterator over the chunk's samples.
    pub fn iter(&self) -> ChunkIterator {
        match self.encoding {
            Encoding::Xor => ChunkIterator::Xor(XorIterator::new(self.bytes.clone())),
            Encoding::Sealed => {
                // A buffer another chunk's iterator gave back, if any.
                let mut out = decoded::take_buffer();
                match sealed::decode_with(self.bytes.as_ref(), self.timestamps.as_deref(), &mut out) {
                    Ok(()) => ChunkIterator::Decoded(DecodedIterator::new(out)),
                    Err(e) => ChunkIterator::Decoded(DecodedIterator::failed(e.into(), out)),
                }
            }
            Encoding::Histogram => ChunkIterator::Histogram(Box::new(HistogramIterator::new(self.bytes.clone()))),
            Encoding::FloatHistogram => {
                ChunkIterator::FloatHistogram(Box::new(FloatHistogramIterator::new(self.bytes.clone())))
            }
            Encoding::SealedHistogram => {
                ChunkIterator::SealedHistogram(Box::new(SealedHistogramIterator::new(self.bytes.as_ref())))
            }
        }
    }

    /// Decodes every sample into `out`. A histogram chunk gives its float
    /// view (each sample's timestamp with a NaN value, as its iterator's
    /// [`SampleIterator::at`]): read histograms through [`Chunk::iter`].
    pub fn decode_into(&self, out: &mut Vec<Sample>) -> Result<(), crate::Error> {
        match self.encoding {
            Encoding::Xor => XorIterator::new(self.bytes.as_ref()).decode_into(out),
            Encoding::Sealed => Ok(sealed::decode_with(self.bytes.as_ref(), self.timestamps.as_deref(), out)?),
            Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram => {
                let mut it = self.iter();
                it.drain_into(out);
                match it.err() {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                }
            }
        }
    }

    /// [`Chunk::decode_into`] for a chunk of any encoding: floats to
    /// `floats`, histograms to `histograms`.
    pub fn decode_mixed_into(
        &self,
        floats: &mut Vec<Sample>,
        histograms: &mut Vec<crate::histogram::HistogramSample>,
    ) -> Result<(), crate::Error> {
        match self.encoding {
            Encoding::Xor | Encoding::Sealed => self.decode_into(floats),
            Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram => {
                let mut it = self.iter();
                it.drain_mixed_into(floats, histograms);
                match it.err() {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                }
            }
        }
    }
}

/// One series and its chunks from one source (the head or a block), as
/// returned by a `select`. Chunks are sorted by `mint`; in the head they may
/// overlap (out-of-order data), in a block they do not.
#[derive(Debug, Clone)]
pub struct ChunkSeries {
    /// The series' labels.
    pub labels: crate::Labels,
    /// Chunks overlapping the queried time range.
    pub chunks: Vec<Chunk>,
}

/// Iterates over one chunk, whatever its encoding.
#[derive(Debug)]
pub enum ChunkIterator {
    /// Decoding a Gorilla chunk sample by sample.
    Xor(XorIterator<ChunkBytes>),
    /// Iterating over samples decoded up front (or the decode error).
    Decoded(DecodedIterator),
    /// Decoding an integer histogram chunk sample by sample (boxed: its
    /// state is several times a float iterator's).
    Histogram(Box<HistogramIterator<ChunkBytes>>),
    /// Decoding a float histogram chunk sample by sample (boxed).
    FloatHistogram(Box<FloatHistogramIterator<ChunkBytes>>),
    /// A sealed histogram chunk, decoded up front (boxed).
    SealedHistogram(Box<SealedHistogramIterator>),
}

/// [`ChunkIterator::drain_range`] over an iterator without a batch decoder:
/// `seek(from)`, then `next` while in range.
fn drain_range_by_samples(it: &mut dyn SampleIterator, from: i64, maxt: i64, out: &mut Vec<Sample>) -> DrainEnd {
    let mut more = if it.started() { it.next() } else { it.seek(from) };
    while more {
        let s = it.at();
        if s.t > maxt {
            return DrainEnd::PastEnd;
        }
        out.push(s);
        more = it.next();
    }
    if it.err().is_some() {
        DrainEnd::Failed
    } else {
        DrainEnd::Exhausted
    }
}

impl ChunkIterator {
    /// Appends the remaining samples from the first one at or after `from`
    /// up to `maxt` to `out` (see [`XorIterator::drain_range`]): the batch
    /// form of `seek(from)` then `next` while in range. A started iterator
    /// continues after the sample it rests on.
    pub fn drain_range(&mut self, from: i64, maxt: i64, out: &mut Vec<Sample>) -> DrainEnd {
        match self {
            ChunkIterator::Xor(it) => it.drain_range(from, maxt, out),
            ChunkIterator::Decoded(it) => it.drain_range(from, maxt, out),
            ChunkIterator::Histogram(it) => drain_range_by_samples(it.as_mut(), from, maxt, out),
            ChunkIterator::FloatHistogram(it) => drain_range_by_samples(it.as_mut(), from, maxt, out),
            ChunkIterator::SealedHistogram(it) => drain_range_by_samples(it.as_mut(), from, maxt, out),
        }
    }
}

impl SampleIterator for ChunkIterator {
    #[inline]
    fn next(&mut self) -> bool {
        match self {
            ChunkIterator::Xor(it) => it.next(),
            ChunkIterator::Decoded(it) => it.next(),
            ChunkIterator::Histogram(it) => it.next(),
            ChunkIterator::FloatHistogram(it) => it.next(),
            ChunkIterator::SealedHistogram(it) => it.next(),
        }
    }

    fn seek(&mut self, t: i64) -> bool {
        match self {
            ChunkIterator::Xor(it) => it.seek(t),
            ChunkIterator::Decoded(it) => it.seek(t),
            ChunkIterator::Histogram(it) => it.seek(t),
            ChunkIterator::FloatHistogram(it) => it.seek(t),
            ChunkIterator::SealedHistogram(it) => it.seek(t),
        }
    }

    #[inline]
    fn at(&self) -> Sample {
        match self {
            ChunkIterator::Xor(it) => it.at(),
            ChunkIterator::Decoded(it) => it.at(),
            ChunkIterator::Histogram(it) => it.at(),
            ChunkIterator::FloatHistogram(it) => it.at(),
            ChunkIterator::SealedHistogram(it) => it.at(),
        }
    }

    fn started(&self) -> bool {
        match self {
            ChunkIterator::Xor(it) => it.started(),
            ChunkIterator::Decoded(it) => it.started(),
            ChunkIterator::Histogram(it) => it.started(),
            ChunkIterator::FloatHistogram(it) => it.started(),
            ChunkIterator::SealedHistogram(it) => it.started(),
        }
    }

    fn err(&self) -> Option<&crate::Error> {
        match self {
            ChunkIterator::Xor(it) => it.err(),
            ChunkIterator::Decoded(it) => it.err(),
            ChunkIterator::Histogram(it) => it.err(),
            ChunkIterator::FloatHistogram(it) => it.err(),
            ChunkIterator::SealedHistogram(it) => it.err(),
        }
    }

    fn has_histograms(&self) -> bool {
        matches!(
            self,
            ChunkIterator::Histogram(_) | ChunkIterator::FloatHistogram(_) | ChunkIterator::SealedHistogram(_)
        )
    }

    fn kind(&self) -> ValueKind {
        match self {
            ChunkIterator::Histogram(it) => it.kind(),
            ChunkIterator::FloatHistogram(it) => it.kind(),
            ChunkIterator::SealedHistogram(it) => it.kind(),
            _ => ValueKind::Float,
        }
    }

    fn at_histogram(&self) -> Option<HistogramSample> {
        match self {
            ChunkIterator::Histogram(it) => it.at_histogram(),
            ChunkIterator::FloatHistogram(it) => it.at_histogram(),
            ChunkIterator::SealedHistogram(it) => it.at_histogram(),
            _ => None,
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        match self {
            ChunkIterator::Xor(it) => it.drain_into(out),
            ChunkIterator::Decoded(it) => it.drain_into(out),
            ChunkIterator::Histogram(it) => it.drain_into(out),
            ChunkIterator::FloatHistogram(it) => it.drain_into(out),
            ChunkIterator::SealedHistogram(it) => it.drain_into(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::collect_samples;

    #[test]
    fn encoding_bytes_round_trip_and_skip_the_group_record() {
        for e in
            [Encoding::Xor, Encoding::Sealed, Encoding::Histogram, Encoding::FloatHistogram, Encoding::SealedHistogram]
        {
            assert_eq!(Encoding::try_from(e as u8).unwrap(), e);
        }
        // 3 is a chunk group record in block chunk files.
        assert_eq!(crate::block::group::GROUP_ENCODING, 3);
        assert!(Encoding::try_from(3).is_err());
        assert!(Encoding::try_from(7).is_err());
    }

    #[test]
    fn histogram_chunks_iterate_through_chunk() {
        use crate::histogram::{Histogram, HistogramValue, Span};
        let h = |n: u64| Histogram {
            count: n,
            sum: n as f64,
            positive_spans: vec![Span { offset: 0, length: 1 }],
            positive_buckets: vec![n as i64],
            ..Histogram::default()
        };
        let mut a = HistogramAppender::new();
        let mut f = FloatHistogramAppender::new();
        for i in 1..=5u64 {
            a.append(i as i64 * 10, &h(i)).unwrap();
            f.append(i as i64 * 10, &h(i).to_float()).unwrap();
        }
        for (encoding, bytes, kind) in [
            (Encoding::Histogram, a.bytes().to_vec(), ValueKind::Histogram),
            (Encoding::FloatHistogram, f.bytes().to_vec(), ValueKind::FloatHistogram),
        ] {
            let c = Chunk { mint: 10, maxt: 50, encoding, bytes: bytes.into(), timestamps: None, summary: None };
            let mut it = c.iter();
            assert!(it.has_histograms());
            let (mut floats, mut hists) = (Vec::new(), Vec::new());
            it.drain_mixed_into(&mut floats, &mut hists);
            assert!(floats.is_empty());
            assert_eq!(hists.iter().map(|s| s.t).collect::<Vec<_>>(), vec![10, 20, 30, 40, 50]);
            assert_eq!(hists[2].h.to_float().count, 3.0);
            assert!(matches!(
                (&hists[0].h, kind),
                (HistogramValue::Integer(_), ValueKind::Histogram)
                    | (HistogramValue::Float(_), ValueKind::FloatHistogram)
            ));
            let mut it = c.iter();
            assert!(it.next());
            assert_eq!(it.kind(), kind);
            // The float view: timestamps in range, NaN values.
            let mut out = Vec::new();
            assert_eq!(c.iter().drain_range(20, 40, &mut out), DrainEnd::PastEnd);
            assert_eq!(out.iter().map(|s| s.t).collect::<Vec<_>>(), vec![20, 30, 40]);
            assert!(out.iter().all(|s| s.v.is_nan()));
            // Float readers see no floats in a histogram chunk.
            out.clear();
            c.decode_into(&mut out).unwrap();
            assert!(out.is_empty());
            // Corrupt bytes: an error, not a panic.
            let bad = Chunk { bytes: vec![0u8, 9, 0, 0xff].into(), ..c.clone() };
            assert!(bad.decode_into(&mut Vec::new()).is_err());
            assert_eq!(bad.iter().drain_range(i64::MIN, i64::MAX, &mut Vec::new()), DrainEnd::Failed);
        }
    }

    #[test]
    fn sealed_chunk_without_timestamps_decodes_only_with_its_shared_column() {
        let samples: Vec<Sample> = [(1_003, 1.5), (16_001, f64::NAN), (31_240, crate::stale_nan()), (46_002, -0.0)]
            .iter()
            .map(|&(t, v)| Sample::new(t, v))
            .collect();
        let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
        let mut bytes = Vec::new();
        let opts = sealed::EncodeOptions { shared_timestamps: Some(&ts), ..Default::default() };
        assert!(sealed::encode_with(&samples, &opts, &mut bytes));
        let mut c = Chunk {
            mint: 1_003,
            maxt: 46_002,
            encoding: Encoding::Sealed,
            bytes: bytes.into(),
            timestamps: None,
            summary: None,
        };
        let mut out = Vec::new();
        assert!(c.decode_into(&mut out).is_err(), "no column, no timestamps");
        assert!(collect_samples(&mut c.iter()).is_err());
        c.timestamps = Some(ts.into());
        c.decode_into(&mut out).unwrap();
        let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&out), bits(&samples));
        assert_eq!(bits(&collect_samples(&mut c.iter()).unwrap()), bits(&samples));
        // A column of the wrong length is an error, not a panic.
        c.timestamps = Some(Arc::from(&[1_003i64, 46_002][..]));
        assert!(c.decode_into(&mut Vec::new()).is_err());
    }
}

//! One series' samples as Prometheus chunks, for `STREAMED_XOR_CHUNKS`.
//!
//! Prometheus' reader (`storage/remote/codec.go`, `chunkedSeriesIterator`)
//! decodes the chunks of a series one after another, so they must be in
//! time order and must not overlap. Two ways to get there:
//!
//! - **Splice.** A float series whose chunks do not overlap one another:
//!   each XOR chunk that lies wholly inside the query range goes out as it
//!   is stored, translated by the byte splice of
//!   [`prom_xor::to_prometheus`]
//!   (the head's chunks, block XOR chunks). Any other chunk (our sealed
//!   block encoding, or an XOR chunk reaching outside the range) is
//!   decoded, clipped to the range and re-encoded into XOR chunks of at
//!   most [`SAMPLES_PER_CHUNK`] samples.
//! - **Recode.** A series with native histograms, or whose chunks overlap
//!   (out-of-order data, a block and the head holding the same time): its
//!   merged samples (one per timestamp, as every query sees them) are
//!   re-encoded: floats into XOR chunks, integer and float histograms into
//!   Prometheus' histogram and float-histogram chunks (our
//!   [`HistogramAppender`] and [`FloatHistogramAppender`] write exactly
//!   Prometheus' encodings, counter-reset headers included), a new chunk at
//!   [`SAMPLES_PER_CHUNK`] samples, at a change of kind, and wherever the
//!   appender cuts (counter reset, schema change...).
//!
//! Either way only the chunks of the frame being built are held, never the
//! whole series.

use std::collections::VecDeque;

use tidemark_storage::chunkenc::{
    prom_xor, AppendOutcome, Chunk, Encoding, FloatHistogramAppender, HistogramAppender, XorAppender,
};
use tidemark_storage::histogram::HistogramValue;
use tidemark_storage::{Sample, SampleIterator, Series, SeriesIterator, ValueKind};

use super::ReadError;
use crate::proto::read::{Chunk as ProtoChunk, ChunkEncoding};

/// Most samples in a chunk this module encodes (Prometheus' head cuts its
/// chunks at 120 samples too).
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Hands out one series' chunks in Prometheus' encodings, in time order.
#[derive(Debug)]
pub struct SeriesChunks {
    mode: Mode,
    /// Samples sent so far (floats and histograms).
    pub samples: u64,
}

#[derive(Debug)]
enum Mode {
    Splice {
        chunks: Vec<Chunk>,
        /// Index of the next chunk to send.
        next: usize,
        mint: i64,
        maxt: i64,
        ready: VecDeque<ProtoChunk>,
        scratch: Vec<Sample>,
    },
    Recode {
        it: SeriesIterator,
        open: Open,
        done: bool,
    },
}

impl SeriesChunks {
    /// The chunker of `series` (as selected by a querier over `[mint, maxt]`).
    pub fn new(series: &Series, mint: i64, maxt: i64) -> SeriesChunks {
        let chunks = series.chunks();
        let overlapping = chunks.windows(2).any(|w| w[1].mint <= w[0].maxt);
        let histograms = chunks.iter().any(|c| c.encoding.is_histogram());
        let mode = if overlapping || histograms {
            Mode::Recode { it: series.iter(), open: Open::None, done: false }
        } else {
            Mode::Splice { chunks: chunks.to_vec(), next: 0, mint, maxt, ready: VecDeque::new(), scratch: Vec::new() }
        };
        SeriesChunks { mode, samples: 0 }
    }

    /// The next chunk, `None` after the last.
    pub fn next_chunk(&mut self) -> Result<Option<ProtoChunk>, ReadError> {
        let samples = &mut self.samples;
        match &mut self.mode {
            Mode::Splice { chunks, next, mint, maxt, ready, scratch } => loop {
                if let Some(c) = ready.pop_front() {
                    return Ok(Some(c));
                }
                let Some(c) = chunks.get(*next) else { return Ok(None) };
                *next += 1;
                if c.maxt < *mint || c.mint > *maxt {
                    continue;
                }
                if c.encoding == Encoding::Xor && c.mint >= *mint && c.maxt <= *maxt {
                    let data =
                        prom_xor::to_prometheus(c.bytes.as_ref()).map_err(|e| ReadError::Chunk(e.to_string()))?;
                    let n = u16::from_be_bytes([data[0], data[1]]);
                    if n == 0 {
                        continue;
                    }
                    *samples += u64::from(n);
                    return Ok(Some(ProtoChunk {
                        min_time_ms: c.mint,
                        max_time_ms: c.maxt,
                        r#type: ChunkEncoding::Xor as i32,
                        data,
                    }));
                }
                scratch.clear();
                c.decode_into(scratch).map_err(|e| ReadError::Storage(e.to_string()))?;
                scratch.retain(|s| *mint <= s.t && s.t <= *maxt);
                for run in scratch.chunks(SAMPLES_PER_CHUNK) {
                    let mut app = XorAppender::new();
                    for s in run {
                        app.append(s.t, s.v);
                    }
                    *samples += run.len() as u64;
                    let (first, last) = (run[0].t, run[run.len() - 1].t);
                    ready.push_back(xor_chunk(&app, first, last)?);
                }
            },
            Mode::Recode { it, open, done } => {
                while !*done {
                    if !it.next() {
                        *done = true;
                        if let Some(e) = it.err() {
                            return Err(ReadError::Storage(e.to_string()));
                        }
                        break;
                    }
                    *samples += 1;
                    let finished = match it.kind() {
                        ValueKind::Float => {
                            let s = it.at();
                            open.push_float(s.t, s.v)?
                        }
                        ValueKind::Histogram | ValueKind::FloatHistogram => {
                            let Some(h) = it.at_histogram() else {
                                return Err(ReadError::Storage("a histogram sample without its histogram".into()));
                            };
                            open.push_histogram(h.t, &h.h)?
                        }
                    };
                    if finished.is_some() {
                        return Ok(finished);
                    }
                }
                open.finish()
            }
        }
    }
}

fn xor_chunk(app: &XorAppender, first: i64, last: i64) -> Result<ProtoChunk, ReadError> {
    let data = prom_xor::to_prometheus(app.bytes()).map_err(|e| ReadError::Chunk(e.to_string()))?;
    Ok(ProtoChunk { min_time_ms: first, max_time_ms: last, r#type: ChunkEncoding::Xor as i32, data })
}

/// The chunk being filled in recode mode, with its first and last timestamps.
#[derive(Debug)]
enum Open {
    None,
    Xor(XorAppender, i64, i64),
    Hist(Box<HistogramAppender>, i64, i64),
    FloatHist(Box<FloatHistogramAppender>, i64, i64),
}

impl Open {
    /// The open chunk as a finished message (leaving none open).
    fn finish(&mut self) -> Result<Option<ProtoChunk>, ReadError> {
        Ok(match std::mem::replace(self, Open::None) {
            Open::None => None,
            Open::Xor(app, first, last) => Some(xor_chunk(&app, first, last)?),
            Open::Hist(app, first, last) => Some(ProtoChunk {
                min_time_ms: first,
                max_time_ms: last,
                r#type: ChunkEncoding::Histogram as i32,
                data: app.into_bytes(),
            }),
            Open::FloatHist(app, first, last) => Some(ProtoChunk {
                min_time_ms: first,
                max_time_ms: last,
                r#type: ChunkEncoding::FloatHistogram as i32,
                data: app.into_bytes(),
            }),
        })
    }

    /// Adds a float; returns the chunk it closed, if any.
    fn push_float(&mut self, t: i64, v: f64) -> Result<Option<ProtoChunk>, ReadError> {
        if let Open::Xor(app, _, last) = self {
            if app.num_samples() < SAMPLES_PER_CHUNK {
                app.append(t, v);
                *last = t;
                return Ok(None);
            }
        }
        let done = self.finish()?;
        let mut app = XorAppender::new();
        app.append(t, v);
        *self = Open::Xor(app, t, t);
        Ok(done)
    }

    /// Adds a histogram; returns the chunk it closed, if any.
    fn push_histogram(&mut self, t: i64, h: &HistogramValue) -> Result<Option<ProtoChunk>, ReadError> {
        let bad = |e: tidemark_storage::chunkenc::HistogramAppendError| ReadError::Chunk(e.to_string());
        match (&mut *self, h) {
            (Open::Hist(app, first, last), HistogramValue::Integer(h)) => {
                let next = if app.num_samples() >= SAMPLES_PER_CHUNK {
                    app.start_next(t, h).map_err(bad)?
                } else {
                    match app.append(t, h).map_err(bad)? {
                        AppendOutcome::Appended | AppendOutcome::Recoded => {
                            *last = t;
                            return Ok(None);
                        }
                        AppendOutcome::Cut { next, .. } => next,
                    }
                };
                let done = Some(ProtoChunk {
                    min_time_ms: *first,
                    max_time_ms: *last,
                    r#type: ChunkEncoding::Histogram as i32,
                    data: std::mem::replace(app.as_mut(), next).into_bytes(),
                });
                (*first, *last) = (t, t);
                Ok(done)
            }
            (Open::FloatHist(app, first, last), HistogramValue::Float(h)) => {
                let next = if app.num_samples() >= SAMPLES_PER_CHUNK {
                    app.start_next(t, h).map_err(bad)?
                } else {
                    match app.append(t, h).map_err(bad)? {
                        AppendOutcome::Appended | AppendOutcome::Recoded => {
                            *last = t;
                            return Ok(None);
                        }
                        AppendOutcome::Cut { next, .. } => next,
                    }
                };
                let done = Some(ProtoChunk {
                    min_time_ms: *first,
                    max_time_ms: *last,
                    r#type: ChunkEncoding::FloatHistogram as i32,
                    data: std::mem::replace(app.as_mut(), next).into_bytes(),
                });
                (*first, *last) = (t, t);
                Ok(done)
            }
            (_, HistogramValue::Integer(h)) => {
                let done = self.finish()?;
                let mut app = HistogramAppender::new();
                app.append(t, h).map_err(bad)?;
                *self = Open::Hist(Box::new(app), t, t);
                Ok(done)
            }
            (_, HistogramValue::Float(h)) => {
                let done = self.finish()?;
                let mut app = FloatHistogramAppender::new();
                app.append(t, h).map_err(bad)?;
                *self = Open::FloatHist(Box::new(app), t, t);
                Ok(done)
            }
        }
    }
}

//! The remote read handler (`POST /api/v1/read`): decodes a
//! `prometheus.ReadRequest`, runs each query against a [`Db`] and answers
//! with raw samples (`SAMPLES`) or a stream of chunk frames
//! (`STREAMED_XOR_CHUNKS`), as Prometheus' `storage/remote/read_handler.go`.
//!
//! [`Reader::handle`] is independent of any HTTP framework, like
//! [`Receiver::handle`](crate::Receiver::handle): it takes the body and
//! returns a [`ReadAnswer`] whose body is either complete bytes or a
//! [`FrameStream`] the server writes out frame by frame.
//!
//! # Requests
//!
//! The body is a snappy block-compressed `ReadRequest` (the
//! `Content-Type` and `Content-Encoding` headers are not checked, as
//! Prometheus does not check them). Each query selects the series matching
//! all its matchers in `[start_timestamp_ms, end_timestamp_ms]` (both
//! inclusive); regexes are anchored. A query without matchers is refused.
//!
//! **Hints** (`ReadHints`: step, function, grouping, range) are accepted
//! and ignored: they describe the PromQL around the selector, and the
//! answer must hold every sample in the range whatever the client does
//! with it (Prometheus' own handler passes them to storage, which uses
//! none of them for a plain select).
//!
//! **External labels** ([`ReadOptions::external_labels`]) are added to
//! every series answered (a label of the series itself wins), and an `=`
//! matcher on one with its value is taken as matching its absence, so a
//! client that adds the server's external labels to its selectors still
//! gets the series (Prometheus' `filterExtLabelsFromMatchers`).
//!
//! # Answers
//!
//! The first of `accepted_response_types` that is supported is used; none
//! given means `SAMPLES` (Prometheus' `NegotiateResponseType`).
//!
//! - `SAMPLES`: `Content-Type: application/x-protobuf`,
//!   `Content-Encoding: snappy`, one `ReadResponse` with a result per
//!   query: floats (staleness markers included) and native histograms.
//! - `STREAMED_XOR_CHUNKS`: `Content-Type: application/x-streamed-protobuf;
//!   proto=prometheus.ChunkedReadResponse`, a sequence of frames ([`frame`]),
//!   each one `ChunkedReadResponse` holding one series (or part of one: a
//!   series whose chunks exceed [`ReadOptions::max_bytes_in_frame`] is
//!   split over several frames, as Prometheus splits it), series sorted by
//!   labels within a query, queries in order. Chunks are in Prometheus'
//!   encodings ([`chunks`]). Frames are produced as they are written, so
//!   memory stays bounded by a frame whatever the answer's size.
//!
//! | status | when |
//! |---|---|
//! | 200 | the answer |
//! | 400 | corrupt snappy or protobuf, no supported response type, a query without matchers or with an invalid matcher, a `SAMPLES` answer over [`ReadOptions::sample_limit`] (`exceeded sample limit (N)`, Prometheus' message) |
//! | 413 | body over [`ReadOptions::max_body_bytes`], or snappy declaring more than [`ReadOptions::max_decompressed_bytes`] (Prometheus truncates the body at 32 MiB and fails to decode it: a 400) |
//! | 503 | [`ReadOptions::max_concurrent`] reads already running, and none finished within [`ReadOptions::queue_timeout`] (Prometheus waits for the client to give up) |
//! | 500 | storage failed |
//!
//! An error after the first frame of a stream was sent can no longer
//! change the status: the stream is cut short (the client sees a truncated
//! body) instead of Prometheus' error text appended to the frames.

pub mod chunks;
pub mod frame;
pub mod matchers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use prost::Message;
use tidemark_storage::{Db, Labels, Matcher, SampleIterator, Series, ValueKind};

use self::chunks::SeriesChunks;
use crate::proto::read::{
    ChunkedReadResponse, ChunkedSeries, Label, QueryResult, ReadRequest, ReadResponse, ResponseType, TimeSeries,
};
use crate::proto::Sample;

/// `Content-Type` of a `SAMPLES` answer.
pub const SAMPLES_CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Type` of a `STREAMED_XOR_CHUNKS` answer.
pub const STREAMED_CONTENT_TYPE: &str = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// Limits and settings of a [`Reader`].
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Most samples (floats and histograms) one query of a `SAMPLES`
    /// answer may hold; 0: no limit. Default 50,000,000 (Prometheus'
    /// `--storage.remote.read-sample-limit`). Streamed answers are not
    /// limited: their memory is bounded by a frame.
    pub sample_limit: usize,
    /// Most reads handled at once; 0: no limit. Default 10 (Prometheus'
    /// `--storage.remote.read-concurrent-limit`).
    pub max_concurrent: usize,
    /// How long a read waits for a slot when [`ReadOptions::max_concurrent`]
    /// are running before it is answered 503. Default 2 minutes.
    pub queue_timeout: Duration,
    /// Target size of a streamed frame, in bytes (a frame ends after the
    /// chunk that reaches it). Default 1 MiB (Prometheus'
    /// `--storage.remote.read-max-bytes-in-frame`).
    pub max_bytes_in_frame: usize,
    /// Largest compressed body read, in bytes. Default 32 MiB
    /// (Prometheus' `decodeReadLimit`).
    pub max_body_bytes: usize,
    /// Largest decompressed body, in bytes, checked against snappy's
    /// declared length before allocating. Default 32 MiB.
    pub max_decompressed_bytes: usize,
    /// The server's external labels, added to every series answered.
    /// Default none.
    pub external_labels: Vec<(String, String)>,
    /// Rewrites a matcher's regex before it is compiled, so that it means
    /// what Go's RE2 makes of it (the client is Prometheus): the server
    /// sets PromQL's `regex_compat::ascii_perl_classes`, so a selector
    /// read remotely matches what it matches in a query. Default `None`:
    /// compiled as sent (Rust's `regex`, where `\d` is Unicode).
    pub regex_rewrite: Option<fn(&str) -> String>,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            sample_limit: 50_000_000,
            max_concurrent: 10,
            queue_timeout: Duration::from_secs(120),
            max_bytes_in_frame: 1 << 20,
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 32 << 20,
            external_labels: Vec::new(),
            regex_rewrite: None,
        }
    }
}

/// Why a read failed; [`ReadError::status`] is the HTTP status to answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The compressed body is over the limit (413).
    #[error("request body of {size} bytes is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Snappy declares a decompressed size over the limit (413).
    #[error("snappy: decoded length {declared} exceeds limit {limit}")]
    DecompressedTooLarge {
        /// Declared size.
        declared: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not snappy (400; the decoder's text, which names snappy).
    #[error("{0}")]
    CorruptSnappy(String),
    /// The body is not a `ReadRequest` (400).
    #[error("cannot decode the read request: {0}")]
    BadProtobuf(String),
    /// None of the accepted response types is supported (400).
    #[error(
        "server does not support any of the requested response types: {0:?}; supported: [SAMPLES STREAMED_XOR_CHUNKS]"
    )]
    UnsupportedResponseTypes(Vec<i32>),
    /// A query cannot be run (400).
    #[error("query {index}: {reason}")]
    BadQuery {
        /// Index of the query in the request.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A `SAMPLES` answer would hold too many samples (400, Prometheus' text).
    #[error("exceeded sample limit ({0})")]
    SampleLimit(usize),
    /// Too many reads running (503).
    #[error("too many concurrent remote reads: {limit} running and none finished within {waited:?}; retry later")]
    TooManyConcurrent {
        /// The limit.
        limit: usize,
        /// How long the request waited.
        waited: Duration,
    },
    /// Storage failed to read (500).
    #[error("reading storage failed: {0}")]
    Storage(String),
    /// A chunk could not be translated to Prometheus' encoding (500).
    #[error("cannot encode a chunk: {0}")]
    Chunk(String),
}

impl ReadError {
    /// The HTTP status to answer.
    pub fn status(&self) -> u16 {
        match self {
            ReadError::BodyTooLarge { .. } | ReadError::DecompressedTooLarge { .. } => 413,
            ReadError::CorruptSnappy(_)
            | ReadError::BadProtobuf(_)
            | ReadError::UnsupportedResponseTypes(_)
            | ReadError::BadQuery { .. }
            | ReadError::SampleLimit(_) => 400,
            ReadError::TooManyConcurrent { .. } => 503,
            ReadError::Storage(_) | ReadError::Chunk(_) => 500,
        }
    }
}

/// The body of a [`ReadAnswer`].
#[derive(Debug)]
pub enum ReadBody {
    /// Complete bytes (a `SAMPLES` answer, or an error's text).
    Bytes(Vec<u8>),
    /// Frames to write out one after another.
    Stream(Box<FrameStream>),
}

/// What to answer: status, headers and body.
#[derive(Debug)]
pub struct ReadAnswer {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The body.
    pub body: ReadBody,
}

impl ReadAnswer {
    fn error(e: &ReadError) -> ReadAnswer {
        ReadAnswer {
            status: e.status(),
            headers: vec![("Content-Type", "text/plain; charset=utf-8")],
            body: ReadBody::Bytes(format!("{e}\n").into_bytes()),
        }
    }
}

/// The response type the server uses for `accepted` (values of
/// [`ResponseType`]): the first supported one; `SAMPLES` when the list is
/// empty.
///
/// ```
/// use tidemark_remote::proto::read::ResponseType;
/// use tidemark_remote::read::negotiate;
/// assert_eq!(negotiate(&[]).unwrap(), ResponseType::Samples);
/// assert_eq!(negotiate(&[7, 1, 0]).unwrap(), ResponseType::StreamedXorChunks);
/// assert!(negotiate(&[7]).is_err());
/// ```
pub fn negotiate(accepted: &[i32]) -> Result<ResponseType, ReadError> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    accepted
        .iter()
        .find_map(|&t| ResponseType::try_from(t).ok())
        .ok_or_else(|| ReadError::UnsupportedResponseTypes(accepted.to_vec()))
}

/// What remote reads have done since the [`Reader`] was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Requests answered with `SAMPLES`.
    pub samples_requests: u64,
    /// Requests answered with `STREAMED_XOR_CHUNKS`.
    pub streamed_requests: u64,
    /// Requests refused before an answer started (any 4xx/5xx).
    pub failed_requests: u64,
    /// Reads running (or streaming) now.
    pub in_flight: u64,
    /// Samples sent (floats and histograms, both response types).
    pub samples_sent: u64,
    /// Chunks sent in streamed answers.
    pub chunks_sent: u64,
    /// Body bytes sent (compressed `SAMPLES` bodies and frames).
    pub bytes_sent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    samples_requests: AtomicU64,
    streamed_requests: AtomicU64,
    failed_requests: AtomicU64,
    samples_sent: AtomicU64,
    chunks_sent: AtomicU64,
    bytes_sent: AtomicU64,
}

/// The concurrency gate: a count of running reads under a lock.
#[derive(Debug, Default)]
struct Gate {
    running: Mutex<usize>,
    freed: Condvar,
}

/// A slot of the gate, given back when dropped (a stream holds it until
/// its last frame is written or it is dropped).
#[derive(Debug)]
struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.running.lock() -= 1;
        self.0.freed.notify_one();
    }
}

#[derive(Debug)]
struct Shared {
    db: Arc<Db>,
    opts: ReadOptions,
    /// External labels sorted by name.
    external: Vec<Label>,
    gate: Arc<Gate>,
    counters: Counters,
}

/// Answers remote read requests from a database.
///
/// ```
/// use std::sync::Arc;
/// use prost::Message;
/// use tidemark_remote::proto::read::*;
/// use tidemark_remote::read::{ReadBody, ReadOptions, Reader};
/// use tidemark_storage::{Db, Labels};
///
/// let db = Arc::new(Db::in_memory().unwrap());
/// let mut app = db.appender();
/// app.append(&Labels::new([("__name__", "up"), ("job", "api")]).unwrap(), 1_000, 1.0).unwrap();
/// app.commit().unwrap();
///
/// let reader = Reader::new(db, ReadOptions::default());
/// let req = ReadRequest {
///     queries: vec![Query {
///         start_timestamp_ms: 0,
///         end_timestamp_ms: 10_000,
///         matchers: vec![LabelMatcher { r#type: MatcherType::Eq as i32, name: "job".into(), value: "api".into() }],
///         hints: None,
///     }],
///     accepted_response_types: vec![],
/// };
/// let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
/// let answer = reader.handle(&body);
/// assert_eq!(answer.status, 200);
/// let ReadBody::Bytes(bytes) = answer.body else { panic!("SAMPLES is one body") };
/// let resp = ReadResponse::decode(snap::raw::Decoder::new().decompress_vec(&bytes).unwrap().as_slice()).unwrap();
/// assert_eq!(resp.results[0].timeseries[0].samples[0].value, 1.0);
/// ```
#[derive(Debug, Clone)]
pub struct Reader {
    shared: Arc<Shared>,
}

impl Reader {
    /// A reader over `db`.
    pub fn new(db: Arc<Db>, opts: ReadOptions) -> Reader {
        let mut external: Vec<Label> =
            opts.external_labels.iter().map(|(n, v)| Label { name: n.clone(), value: v.clone() }).collect();
        external.sort_by(|a, b| a.name.cmp(&b.name));
        external.dedup_by(|a, b| a.name == b.name);
        Reader { shared: Arc::new(Shared { db, opts, external, gate: Arc::default(), counters: Counters::default() }) }
    }

    /// The options.
    pub fn options(&self) -> &ReadOptions {
        &self.shared.opts
    }

    /// The counters since creation.
    pub fn stats(&self) -> ReadStats {
        let c = &self.shared.counters;
        ReadStats {
            samples_requests: c.samples_requests.load(Ordering::Relaxed),
            streamed_requests: c.streamed_requests.load(Ordering::Relaxed),
            failed_requests: c.failed_requests.load(Ordering::Relaxed),
            in_flight: *self.shared.gate.running.lock() as u64,
            samples_sent: c.samples_sent.load(Ordering::Relaxed),
            chunks_sent: c.chunks_sent.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
        }
    }

    /// Handles one request body. Blocking (it waits for a slot and reads
    /// storage): call it off the async executor. A streamed answer's
    /// frames are read from storage as [`FrameStream`] is iterated (also
    /// blocking); its first frame is already built, so any error a stream
    /// meets before sending anything is answered with its status.
    pub fn handle(&self, body: &[u8]) -> ReadAnswer {
        match self.process(body) {
            Ok(a) => a,
            Err(e) => {
                self.shared.counters.failed_requests.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, status = e.status(), "remote read refused");
                ReadAnswer::error(&e)
            }
        }
    }

    fn process(&self, body: &[u8]) -> Result<ReadAnswer, ReadError> {
        let opts = &self.shared.opts;
        let req = decode_request(body, opts.max_body_bytes, opts.max_decompressed_bytes)?;
        let response_type = negotiate(&req.accepted_response_types)?;
        let mut queries = Vec::with_capacity(req.queries.len());
        for (i, q) in req.queries.iter().enumerate() {
            let ms = matchers::to_storage(i, &q.matchers, &opts.external_labels, opts.regex_rewrite)?;
            queries.push(Prepared { mint: q.start_timestamp_ms, maxt: q.end_timestamp_ms, matchers: ms });
        }
        let permit = self.enter()?;
        match response_type {
            ResponseType::Samples => {
                let body = self.samples(&queries)?;
                drop(permit);
                let c = &self.shared.counters;
                c.samples_requests.fetch_add(1, Ordering::Relaxed);
                c.bytes_sent.fetch_add(body.len() as u64, Ordering::Relaxed);
                Ok(ReadAnswer {
                    status: 200,
                    headers: vec![("Content-Type", SAMPLES_CONTENT_TYPE), ("Content-Encoding", "snappy")],
                    body: ReadBody::Bytes(body),
                })
            }
            ResponseType::StreamedXorChunks => {
                let mut stream = FrameStream {
                    shared: self.shared.clone(),
                    queries: queries.into_iter(),
                    query_index: 0,
                    next_query: 0,
                    current: None,
                    first: None,
                    failed: false,
                    _permit: permit,
                };
                stream.first = stream.produce()?;
                self.shared.counters.streamed_requests.fetch_add(1, Ordering::Relaxed);
                Ok(ReadAnswer {
                    status: 200,
                    headers: vec![("Content-Type", STREAMED_CONTENT_TYPE)],
                    body: ReadBody::Stream(Box::new(stream)),
                })
            }
        }
    }

    /// Waits for a slot of the gate, at most [`ReadOptions::queue_timeout`].
    fn enter(&self) -> Result<Permit, ReadError> {
        let gate = &self.shared.gate;
        let limit = self.shared.opts.max_concurrent;
        let mut running = gate.running.lock();
        if limit > 0 && *running >= limit {
            let started = std::time::Instant::now();
            let deadline = started + self.shared.opts.queue_timeout;
            while *running >= limit {
                if gate.freed.wait_until(&mut running, deadline).timed_out() && *running >= limit {
                    return Err(ReadError::TooManyConcurrent { limit, waited: started.elapsed() });
                }
            }
        }
        *running += 1;
        Ok(Permit(gate.clone()))
    }

    /// The `SAMPLES` answer: a snappy-compressed `ReadResponse`.
    fn samples(&self, queries: &[Prepared]) -> Result<Vec<u8>, ReadError> {
        let limit = self.shared.opts.sample_limit;
        let mut resp = ReadResponse { results: Vec::with_capacity(queries.len()) };
        let mut sent = 0u64;
        for q in queries {
            let series = select(&self.shared.db, q)?;
            let mut result = QueryResult { timeseries: Vec::with_capacity(series.len()) };
            let mut count = 0usize;
            for s in series {
                let mut ts =
                    TimeSeries { labels: merge_labels(s.labels(), &self.shared.external), ..Default::default() };
                let mut it = s.iter();
                while it.next() {
                    count += 1;
                    if limit > 0 && count > limit {
                        return Err(ReadError::SampleLimit(limit));
                    }
                    match it.kind() {
                        ValueKind::Float => {
                            let p = it.at();
                            ts.samples.push(Sample { value: p.v, timestamp: p.t });
                        }
                        ValueKind::Histogram | ValueKind::FloatHistogram => {
                            if let Some(h) = it.at_histogram() {
                                ts.histograms.push(crate::histogram::to_proto(&h));
                            }
                        }
                    }
                }
                if let Some(e) = it.err() {
                    return Err(ReadError::Storage(e.to_string()));
                }
                result.timeseries.push(ts);
            }
            sent += count as u64;
            resp.results.push(result);
        }
        self.shared.counters.samples_sent.fetch_add(sent, Ordering::Relaxed);
        snap::raw::Encoder::new()
            .compress_vec(&resp.encode_to_vec())
            .map_err(|e| ReadError::Storage(format!("snappy: {e}")))
    }
}

/// Decompresses and decodes a request body within the limits.
pub fn decode_request(body: &[u8], max_body: usize, max_decompressed: usize) -> Result<ReadRequest, ReadError> {
    if body.len() > max_body {
        return Err(ReadError::BodyTooLarge { size: body.len(), limit: max_body });
    }
    let declared = snap::raw::decompress_len(body).map_err(|e| ReadError::CorruptSnappy(e.to_string()))?;
    if declared > max_decompressed {
        return Err(ReadError::DecompressedTooLarge { declared, limit: max_decompressed });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| ReadError::CorruptSnappy(e.to_string()))?;
    ReadRequest::decode(raw.as_slice()).map_err(|e| ReadError::BadProtobuf(e.to_string()))
}

/// A query ready to run.
#[derive(Debug)]
struct Prepared {
    mint: i64,
    maxt: i64,
    matchers: Vec<Matcher>,
}

fn select(db: &Db, q: &Prepared) -> Result<Vec<Series>, ReadError> {
    let querier = db.querier(q.mint, q.maxt);
    let series = querier.select(&q.matchers).map_err(|e| ReadError::Storage(e.to_string()))?;
    for w in querier.warnings() {
        tracing::warn!(warning = %w, "remote read: data left out of the answer");
    }
    Ok(series)
}

/// The series' labels with the external labels merged in (the series'
/// own value wins), sorted by name.
fn merge_labels(labels: &Labels, external: &[Label]) -> Vec<Label> {
    let mut out = Vec::with_capacity(labels.len() + external.len());
    let mut ext = external.iter().peekable();
    for l in labels.iter() {
        while let Some(e) = ext.next_if(|e| e.name.as_str() < l.name) {
            out.push(e.clone());
        }
        ext.next_if(|e| e.name == l.name);
        out.push(Label { name: l.name.to_owned(), value: l.value.to_owned() });
    }
    out.extend(ext.cloned());
    out
}

/// The series of the query being streamed.
#[derive(Debug)]
struct Current {
    series: std::vec::IntoIter<Series>,
    mint: i64,
    maxt: i64,
    /// The series being cut into frames, with its labels.
    open: Option<(Vec<Label>, SeriesChunks)>,
}

/// The frames of a `STREAMED_XOR_CHUNKS` answer, each a complete frame
/// ([`frame::put_frame`]) holding one `ChunkedReadResponse`, produced on
/// demand. Iterating reads storage (blocking). After an `Err` the
/// iterator ends; the HTTP layer should then abort the body.
#[derive(Debug)]
pub struct FrameStream {
    shared: Arc<Shared>,
    queries: std::vec::IntoIter<Prepared>,
    /// Index of the query being streamed, and of the next one.
    query_index: i64,
    next_query: i64,
    current: Option<Current>,
    first: Option<Vec<u8>>,
    failed: bool,
    _permit: Permit,
}

impl FrameStream {
    /// The next frame, `None` at the end.
    fn produce(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let max_bytes = self.shared.opts.max_bytes_in_frame;
        loop {
            let Some(cur) = self.current.as_mut() else {
                let Some(q) = self.queries.next() else { return Ok(None) };
                self.query_index = self.next_query;
                self.next_query += 1;
                let series = select(&self.shared.db, &q)?;
                self.current = Some(Current { series: series.into_iter(), mint: q.mint, maxt: q.maxt, open: None });
                continue;
            };
            if cur.open.is_none() {
                let Some(s) = cur.series.next() else {
                    self.current = None;
                    continue;
                };
                let labels = merge_labels(s.labels(), &self.shared.external);
                cur.open = Some((labels, SeriesChunks::new(&s, cur.mint, cur.maxt)));
            }
            let Some((labels, chunker)) = cur.open.as_mut() else { continue };
            let label_bytes: usize = labels.iter().map(|l| l.encoded_len()).sum();
            let budget = max_bytes.saturating_sub(label_bytes) as i64;
            let mut left = budget;
            let mut chunks = Vec::new();
            let before = chunker.samples;
            let mut exhausted = false;
            // At least one chunk per frame, as Prometheus: a frame may
            // exceed the target by one chunk.
            loop {
                match chunker.next_chunk()? {
                    Some(c) => {
                        left -= c.encoded_len() as i64;
                        chunks.push(c);
                        if left <= 0 {
                            break;
                        }
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            // A frame can end exactly at the series' last chunk: then the
            // next call finds no chunk and closes the series without a frame.
            let sent = chunker.samples - before;
            let labels = if exhausted { cur.open.take().map(|(l, _)| l).unwrap_or_default() } else { labels.clone() };
            if chunks.is_empty() {
                continue;
            }
            let c = &self.shared.counters;
            c.samples_sent.fetch_add(sent, Ordering::Relaxed);
            c.chunks_sent.fetch_add(chunks.len() as u64, Ordering::Relaxed);
            let msg = ChunkedReadResponse {
                chunked_series: vec![ChunkedSeries { labels, chunks }],
                query_index: self.query_index,
            }
            .encode_to_vec();
            let mut out = Vec::with_capacity(msg.len() + frame::overhead(msg.len()));
            frame::put_frame(&mut out, &msg);
            c.bytes_sent.fetch_add(out.len() as u64, Ordering::Relaxed);
            return Ok(Some(out));
        }
    }
}

impl Iterator for FrameStream {
    type Item = Result<Vec<u8>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(f) = self.first.take() {
            return Some(Ok(f));
        }
        if self.failed {
            return None;
        }
        match self.produce() {
            Ok(f) => f.map(Ok),
            Err(e) => {
                self.failed = true;
                tracing::warn!(error = %e, "remote read stream failed after its first frame; the answer is cut short");
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests;

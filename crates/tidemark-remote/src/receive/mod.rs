//! The remote write receiver: decodes a request body (1.0 or 2.0, chosen by
//! `Content-Type`), validates it and appends it to a [`Db`].
//!
//! [`Receiver::handle`] is independent of any HTTP framework: the server
//! passes the two headers and the body and turns the [`WriteResponse`] into
//! its own response type.
//!
//! # Responses
//!
//! | status | when | sender |
//! |---|---|---|
//! | 202 | dropped by HA deduplication: from a replica that is not its cluster's elected one ([`ha`](mod@self::ha)) | done |
//! | 204 | every sample (float or native histogram) stored (or the request held none) | done |
//! | 400 | a new HA cluster beyond [`HaOptions::max_clusters`], bad snappy or protobuf, a bad 2.0 symbol table, a 1.0 body sent with the 2.0 content type (only fields 1–3, which 1.0 uses and 2.0 reserves), or some samples or series rejected (see below) | must not retry |
//! | 413 | body over [`ReceiverOptions::max_body_bytes`], or snappy declares more than [`ReceiverOptions::max_decompressed_bytes`] | must not retry |
//! | 415 | `Content-Type` or `Content-Encoding` not supported ([`negotiate`](mod@self::negotiate)) | must not retry |
//! | 503 | storage full (retention cannot free space) or closing | retries later |
//! | 500 | I/O error, poisoned WAL | retries |
//!
//! 2.0 responses (every one after content negotiation succeeded, errors
//! included) carry `X-Prometheus-Remote-Write-Samples-Written`,
//! `-Histograms-Written` and `-Exemplars-Written` with what was actually
//! stored (float samples, native histogram samples, exemplars).
//!
//! # HA pairs
//!
//! With [`ReceiverOptions::ha`] set, a request whose first series carries
//! the cluster and the replica label goes through the [`HaTracker`]
//! before anything is appended: from the elected replica it is stored
//! with the replica label removed from every series; from another replica
//! it is dropped whole (202, counted in
//! [`ReceiverStats::ha_dropped_samples`]). A 2.0 sender checks the
//! `-Written` headers of a 2xx and counts a request with all of them 0 as
//! failed, so a dropped 2.0 request reports its samples and histograms as
//! written: they are, by the elected replica.
//!
//! # Partial acceptance
//!
//! Both protocol versions get the same semantics (2.0's "partial write";
//! Prometheus' 1.0 receiver instead rolls the whole batch back on one
//! out-of-order sample, so a sender's retry loop can never make progress
//! on data that mixes good and bad samples):
//!
//! - every valid sample of the batch, float or native histogram, is
//!   stored, in one commit;
//! - a sample is rejected alone when it is out of order, too old, a
//!   different value at an existing timestamp, or more than
//!   [`ReceiverOptions::max_future`] ahead of the receiver's clock, and a
//!   native histogram also when it is invalid (storage's validation:
//!   spans against buckets, counts, schema; or a message mixing integer
//!   and float fields: `invalid_histogram`, with the validation's text); a whole
//!   series is rejected when its labels are invalid (unsorted, duplicate or
//!   empty names, names invalid under the validation scheme, no
//!   `__name__`) or its 2.0 symbol references do not resolve;
//! - if anything was rejected the answer is 400 (the sender must not retry:
//!   retrying cannot fix bad data) listing counts by reason and the first
//!   [`ReceiverOptions::max_errors_reported`] series with their reason.
//!   A retry would not change what is stored: a re-sent sample identical
//!   to its series' newest is accepted as a no-op, and re-sent older ones
//!   are rejected as out of order (so a retry is answered 400 again, with
//!   larger counts; with an out-of-order window they are no-ops too);
//! - if the commit itself fails (disk full, I/O error, poisoned WAL),
//!   nothing of the batch is stored and the answer is 5xx so the sender
//!   retries the whole batch.
//!
//! Staleness markers (and every other NaN payload) are stored bit-exactly,
//! in float samples and in native histograms' sums (a histogram whose sum
//! is the staleness NaN is a histogram staleness marker).
//! (`-0.0` arrives as `0.0` from most senders: proto3 encoders, prost's
//! and Prometheus' gogo alike, omit a double that compares equal to zero.)
//! Classic histograms and summaries are ordinary series.
//!
//! # Native histograms
//!
//! A series' `histograms` (1.0 field 4, 2.0 field 3) are stored as native
//! histogram samples of the same series, after its float samples:
//! integer histograms (integer count) as integer histograms, float
//! histograms as float histograms, custom-bucket histograms (schema -53)
//! with their bounds. The wire decode keeps each message's bytes (the
//! request is not copied) and checks their structure, so a malformed one
//! is a 400 for the whole body as any other malformed field; each is then
//! decoded with prost and [`crate::histogram::from_proto`] when appended.
//! Rejections count per reason as for floats ([`ReceiverStats::histograms_rejected`]),
//! and a 2.0 series holding only histograms is valid.
//!
//! Exemplars (1.0 `Exemplar{labels, value, timestamp}`, 2.0
//! `Exemplar{labels_refs, value, timestamp}`) are stored with their series
//! after its samples ([`tidemark_storage::Appender::append_exemplar`]).
//! As in Prometheus' receiver, a refused exemplar (out of order, label set
//! over 128 characters, invalid labels, or of a series none of whose
//! samples was stored) never fails the request: it is counted
//! ([`ReceiverStats::exemplars_dropped`]) and logged (a warning at most
//! every 10 s). 1.0 metadata entries and 2.0 per-series
//! metadata go to the [`MetadataStore`]; 2.0's `created_timestamp` is
//! ignored.

mod decode;
mod error;
pub mod ha;
mod ingest;
pub mod negotiate;
mod series_cache;
mod stats;
mod validate;
pub mod wire;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidemark_storage::{Db, NameValidation};

pub use self::decode::{decompress, decompress_into, BadRefs, Batch, MetadataView, SeriesView};
pub use self::error::ReceiveError;
pub use self::ha::{HaDecision, HaDropReason, HaElection, HaOptions, HaTracker};
pub use self::ingest::Outcome;
pub use self::negotiate::{negotiate, Protocol};
use self::series_cache::SeriesCache;
use self::stats::Counters;
pub use self::stats::{ReceiverStats, RejectReason, STATUSES};
pub use self::validate::{family_name, series_labels, DisplayPairs, SeriesError};
use crate::MetadataStore;

/// Response header: samples stored (2.0).
pub const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
/// Response header: native histogram samples stored (2.0).
pub const HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
/// Response header: exemplars stored (2.0).
pub const EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// How often, at most, dropped exemplars are logged.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Limits and policies of a [`Receiver`].
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Largest compressed body accepted, in bytes (413 above). Default 32 MiB.
    pub max_body_bytes: usize,
    /// Largest decompressed body accepted, in bytes, checked against the
    /// length snappy declares before anything is allocated. Default 128 MiB.
    pub max_decompressed_bytes: usize,
    /// Samples further than this ahead of the receiver's clock are rejected
    /// (`future_timestamp`), as Prometheus' receiver does: a sender with a
    /// wrong clock would otherwise push the head's time forward and make
    /// every later correct sample "too old". Default 10 minutes; `None`
    /// accepts any timestamp.
    pub max_future: Option<Duration>,
    /// Which label and metric names are valid. Default UTF-8 (Prometheus 3);
    /// should match the database's own setting.
    pub name_validation: NameValidation,
    /// Most rejected series listed in a 400 body. Default 10.
    pub max_errors_reported: usize,
    /// Entries of the map from labels as sent to series refs, which lets
    /// a known series skip validation and the label lookup (24-byte slots,
    /// 1.33–2.67 per entry: about 13 MB at 368 k series, 50 MB at 1 M; when
    /// full, a share of it is emptied and refilled). Set it above the
    /// number of series in the head; 0 disables the map.
    /// Default 4 Mi.
    pub series_cache_entries: usize,
    /// Deduplication of HA pairs ([`HaTracker`]). Default `None`: off.
    pub ha: Option<HaOptions>,
}

impl Default for ReceiverOptions {
    fn default() -> ReceiverOptions {
        ReceiverOptions {
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 128 << 20,
            max_future: Some(Duration::from_secs(600)),
            name_validation: NameValidation::Utf8,
            max_errors_reported: 10,
            series_cache_entries: 4 << 20,
            ha: None,
        }
    }
}

/// What to answer: status, extra headers and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResponse {
    /// HTTP status code.
    pub status: u16,
    /// Extra response headers (e.g. 2.0's `X-Prometheus-Remote-Write-Samples-Written`).
    pub headers: Vec<(&'static str, String)>,
    /// Plain-text body: empty on success, the reason otherwise.
    pub body: String,
}

impl WriteResponse {
    /// The value of header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

thread_local! {
    /// The decompressed body of this thread's previous request, kept for
    /// the next one (the server handles requests on a pool of threads).
    static BODY_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A thread keeps its body buffer only up to this capacity: a rare huge
/// request does not pin its memory on every pool thread.
const MAX_KEPT_BODY_BUFFER: usize = 4 << 20;

/// Receives remote write requests into a database.
///
/// ```
/// use std::sync::Arc;
/// use tidemark_remote::codec::encode_v1;
/// use tidemark_remote::proto::v1;
/// use tidemark_remote::{MetadataStore, Receiver, ReceiverOptions};
/// use tidemark_storage::{Db, Matcher};
///
/// let db = Arc::new(Db::in_memory().unwrap());
/// let receiver = Receiver::new(db.clone(), Arc::new(MetadataStore::new()), ReceiverOptions::default());
/// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
/// let body = encode_v1(&v1::WriteRequest {
///     timeseries: vec![v1::TimeSeries {
///         labels: vec![
///             v1::Label { name: "__name__".into(), value: "up".into() },
///             v1::Label { name: "job".into(), value: "api".into() },
///         ],
///         samples: vec![v1::Sample { value: 1.0, timestamp: now }],
///         ..Default::default()
///     }],
///     metadata: vec![],
/// });
/// let resp = receiver.handle(Some("application/x-protobuf"), Some("snappy"), &body);
/// assert_eq!(resp.status, 204, "{}", resp.body);
/// let series = db.querier(now, now).select(&[Matcher::equal("job", "api")]).unwrap();
/// assert_eq!(series[0].samples().unwrap()[0].v, 1.0);
/// ```
#[derive(Debug)]
pub struct Receiver {
    db: Arc<Db>,
    metadata: Arc<MetadataStore>,
    opts: ReceiverOptions,
    cache: SeriesCache,
    counters: Counters,
    ha: Option<HaTracker>,
    created: Instant,
    /// When dropped data was last logged, in ms since `created` (-1: never).
    last_drop_log: AtomicI64,
}

impl Receiver {
    /// A receiver appending to `db` and recording metadata in `metadata`.
    pub fn new(db: Arc<Db>, metadata: Arc<MetadataStore>, opts: ReceiverOptions) -> Receiver {
        Receiver {
            db,
            metadata,
            cache: SeriesCache::new(opts.series_cache_entries),
            ha: opts.ha.clone().map(HaTracker::new),
            opts,
            counters: Counters::default(),
            created: Instant::now(),
            last_drop_log: AtomicI64::new(-1),
        }
    }

    /// The options.
    pub fn options(&self) -> &ReceiverOptions {
        &self.opts
    }

    /// The metadata store requests feed.
    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.metadata
    }

    /// The database requests are appended to.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The HA tracker, when [`ReceiverOptions::ha`] is set.
    pub fn ha(&self) -> Option<&HaTracker> {
        self.ha.as_ref()
    }

    /// The counters since creation.
    pub fn stats(&self) -> ReceiverStats {
        self.counters.snapshot()
    }

    /// Handles one request: `content_type` and `content_encoding` are the
    /// request's headers (if present), `body` its raw bytes. Blocking (the
    /// append waits for the WAL): call it off the async executor.
    pub fn handle(&self, content_type: Option<&str>, content_encoding: Option<&str>, body: &[u8]) -> WriteResponse {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.handle_at(content_type, content_encoding, body, now_ms)
    }

    /// [`Receiver::handle`] with the clock given (ms since the epoch), for
    /// the future-timestamp check and the HA tracker.
    pub fn handle_at(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> WriteResponse {
        let protocol = match negotiate(content_type, content_encoding) {
            Ok(p) => p,
            Err(e) => return self.respond(None, Outcome::default(), Some(e)),
        };
        self.counters.request(protocol);
        let (outcome, error) = match self.process(protocol, body, now_ms) {
            Ok((outcome, error)) => (outcome, error),
            Err(e) => (Outcome::default(), Some(e)),
        };
        self.respond(Some(protocol), outcome, error)
    }

    /// Decodes and stores a request: `Err` when nothing was stored, else
    /// what was stored and, for a partial write, the 400 to answer.
    fn process(
        &self,
        protocol: Protocol,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(Outcome, Option<ReceiveError>), ReceiveError> {
        if body.len() > self.opts.max_body_bytes {
            return Err(ReceiveError::BodyTooLarge { size: body.len(), limit: self.opts.max_body_bytes });
        }
        let mut raw = BODY_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
        let res = self.process_raw(protocol, body, now_ms, &mut raw);
        if raw.capacity() <= MAX_KEPT_BODY_BUFFER {
            BODY_BUFFER.with(|b| *b.borrow_mut() = raw);
        }
        res
    }

    /// [`Receiver::process`] with the thread's reusable buffer for the
    /// decompressed body.
    fn process_raw(
        &self,
        protocol: Protocol,
        body: &[u8],
        now_ms: i64,
        raw: &mut Vec<u8>,
    ) -> Result<(Outcome, Option<ReceiveError>), ReceiveError> {
        decompress_into(body, self.opts.max_decompressed_bytes, raw)?;
        let mut batch = Batch::decode_lazy(protocol, raw)?;
        let strip = match self.ha.as_ref().map(|ha| ha.decide(&batch, now_ms)) {
            None | Some(HaDecision::Untracked) => None,
            Some(HaDecision::Accept) => self.opts.ha.as_ref().map(|o| o.replica_label.as_str()),
            Some(HaDecision::Drop { cluster, replica, elected }) => {
                let (samples, histograms) = ha::batch_samples(&batch);
                self.counters.ha_dropped(HaDropReason::NotElected, samples + histograms);
                tracing::debug!(
                    cluster,
                    replica,
                    elected,
                    samples,
                    histograms,
                    "HA: dropped a request of a replica that is not elected"
                );
                // What the 2.0 headers report (see the module docs).
                let outcome =
                    Outcome { samples_written: samples, histograms_written: histograms, ..Outcome::default() };
                return Ok((outcome, Some(ReceiveError::HaDeduplicated { cluster, replica, elected })));
            }
            Some(HaDecision::TooManyClusters { limit }) => {
                let (samples, histograms) = ha::batch_samples(&batch);
                self.counters.ha_dropped(HaDropReason::TooManyClusters, samples + histograms);
                return Err(ReceiveError::TooManyHaClusters { limit });
            }
        };
        let max_t = match self.opts.max_future {
            Some(d) => now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            None => i64::MAX,
        };
        let mut app = self.db.appender();
        let outcome = ingest::ingest(&mut batch, &mut app, &self.metadata, &self.opts, &self.cache, max_t, strip)?;
        batch.recycle();
        if let Err(e) = app.commit() {
            tracing::error!(error = %e, protocol = protocol.as_str(), "remote write commit failed; the sender will retry");
            return Err(ReceiveError::Storage(e));
        }
        self.counters.add_outcome(&outcome);
        self.log_drops(&outcome);
        if outcome.series_rejected > 0 {
            let summary = outcome.summary();
            tracing::debug!(protocol = protocol.as_str(), "remote write partially rejected: {summary}");
            return Ok((outcome, Some(ReceiveError::PartiallyRejected(summary))));
        }
        Ok((outcome, None))
    }

    fn respond(&self, protocol: Option<Protocol>, outcome: Outcome, error: Option<ReceiveError>) -> WriteResponse {
        let (status, body) = match error {
            None => (204, String::new()),
            Some(e) => (e.status(), e.to_string()),
        };
        self.counters.response(status);
        let mut headers = Vec::new();
        if protocol == Some(Protocol::V2) {
            headers.push((SAMPLES_WRITTEN, outcome.samples_written.to_string()));
            headers.push((HISTOGRAMS_WRITTEN, outcome.histograms_written.to_string()));
            headers.push((EXEMPLARS_WRITTEN, outcome.exemplars_written.to_string()));
        }
        WriteResponse { status, headers, body }
    }

    /// Warns about dropped exemplars, at most every [`DROP_LOG_INTERVAL`]
    /// so a steady stream does not flood the log.
    fn log_drops(&self, o: &Outcome) {
        if o.exemplars_dropped == 0 {
            return;
        }
        let now = i64::try_from(self.created.elapsed().as_millis()).unwrap_or(i64::MAX);
        let last = self.last_drop_log.load(Ordering::Relaxed);
        let due = last < 0 || now - last >= DROP_LOG_INTERVAL.as_millis() as i64;
        if due && self.last_drop_log.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let s = self.counters.snapshot();
            tracing::warn!(
                exemplars = o.exemplars_dropped,
                exemplars_total = s.exemplars_dropped,
                "remote write: dropped exemplars (out of order, invalid, or of a series without stored samples)"
            );
        }
    }
}

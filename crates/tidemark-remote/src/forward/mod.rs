//! The forwarder: a remote-write sender that ships everything a [`Db`]
//! ingests to another endpoint (another Tidemark, Prometheus with
//! `--web.enable-remote-write-receiver`, VictoriaMetrics, Mimir, Thanos
//! Receive).
//!
//! How it works, and what it promises:
//!
//! - **Reads the WAL**, not the append path: one reader thread follows the
//!   log with a [`WalTailer`], so a restart of the forwarder or of the
//!   process loses nothing. A [`WalHold`] asks the database to keep the
//!   segments not yet acknowledged (bounded by
//!   [`Options::wal_hold_max_bytes`](tidemark_storage::Options)).
//! - **Shards by series**: samples of one series always go to the same
//!   shard thread, which sends one batch at a time, so per-series order is
//!   kept. A batch is sent when it holds `max_samples_per_send` samples or
//!   its oldest sample has waited `batch_send_deadline`.
//! - **Retries** 5xx, 429 and network errors with capped exponential backoff
//!   (`min_backoff` doubling up to `max_backoff`), honouring `Retry-After`
//!   (up to 5 minutes). The same batch is retried until it succeeds, so a
//!   stuck endpoint stalls its shard and, once the shard's queue is full,
//!   the reader: data waits in the WAL, not in memory.
//! - **Drops nothing silently**: any other status (400, 401, 404, 413,
//!   415, …) cannot be fixed by retrying; the batch is dropped, counted by
//!   reason in [`ForwarderStats::samples_dropped`] and logged at `error`
//!   with the response body. WAL data deleted before it was read (a stalled
//!   forwarder overridden by the hold limit) is counted in
//!   [`ForwarderStats::wal_segments_skipped`] and logged at `error`.
//!   A remote write 2.0 endpoint that answers 2xx but reports (in
//!   `X-Prometheus-Remote-Write-Samples-Written` and
//!   `-Histograms-Written`) fewer samples or histograms written than sent
//!   has the difference counted as dropped
//!   (`v2_partially_written`, or `v2_nothing_written` for none: typically
//!   a 1.0-only receiver); a 2xx is never retried.
//! - **At least once**: the position persisted in
//!   `<data_dir>/forward/<name>.position` covers only data the endpoint
//!   acknowledged (or that was dropped as above); it is written once a
//!   second and at [`Forwarder::stop`]. After a crash the tail since the
//!   last write is sent again; receivers treat identical duplicates as
//!   no-ops. Run at most one forwarder per name at a time.
//! - **Lag**: [`ForwarderStats::lag_seconds`] is measured in sample time:
//!   the newest timestamp read from the WAL minus the newest timestamp of
//!   the acknowledged prefix (0 when nothing is outstanding).
//!   [`ForwarderStats::wal_bytes_unread`] shows how far the reader itself
//!   trails the log.
//!
//! Starting a forwarder for the first time ships the WAL from its oldest
//! segment (typically the last two to three hours), then follows it.
//! The reader keeps the labels of the series it has seen and forgets those
//! that a WAL checkpoint shows are gone
//! ([`ForwarderStats::series_tracked`]).
//!
//! Float samples and native histogram samples (WAL record type 5) are
//! forwarded: a histogram goes in its series' `histograms` (1.0
//! `TimeSeries` field 4, 2.0 field 3), integer histograms as integer,
//! float histograms as float, custom-bucket bounds included, the sum
//! bit-exact (a NaN sum is the staleness marker). Counters named
//! `samples_*` count both kinds, `histograms_*` the histograms among them.
//! The store holds no exemplars or metadata to forward.
//!
//! ```no_run
//! use tidemark_remote::forward::{Forwarder, ForwarderOptions, Protocol};
//! let db = tidemark_storage::Db::open("./data")?;
//! let mut opts = ForwarderOptions::new("mimir", "https://mimir.example/api/v1/push");
//! opts.protocol = Protocol::V1;
//! opts.headers.push(("X-Scope-OrgID".into(), "tenant-1".into()));
//! let fwd = Forwarder::start(&db, opts)?;
//! // … the service appends to `db` …
//! println!("lag {} s", fwd.stats().lag_seconds);
//! fwd.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod encode;
mod position;
mod queue;
mod shard;
mod url;

pub use url::{is_secret_header, redact_url, redacted_headers, split_userinfo};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tidemark_storage::wal::{Record, WalHold, WalPosition, WalTailer};
use tidemark_storage::{Db, Labels};

use self::client::Client;
use self::encode::{QueuedSample, QueuedValue};
use self::queue::Tracker;

/// Bytes of WAL frames one read takes before handing samples to shards.
const READ_BUDGET: u64 = 4 << 20;
/// How often the acknowledged position is persisted while running.
const PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// Which remote write protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Remote write 1.0 (`prometheus.WriteRequest`): understood by every
    /// receiver, including Prometheus 2.x and VictoriaMetrics. The default.
    #[default]
    V1,
    /// Remote write 2.0 (`io.prometheus.write.v2.Request`, symbol table).
    V2,
}

/// Credentials sent with every request.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <password>)"),
            Auth::Bearer(_) => write!(f, "Bearer(<token>)"),
        }
    }
}

/// TLS settings of the connection to the endpoint (`https://` URLs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates (PEM) to verify the endpoint with, instead of the
    /// built-in web PKI roots. Default none.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) to present. Default none.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM). Default none.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (testing only). Default false.
    pub insecure_skip_verify: bool,
}

/// Options of a [`Forwarder`]. Build with [`ForwarderOptions::new`] and
/// change fields; every field documents its default. Their `Debug` output
/// redacts the URL's credentials and secret header values.
#[derive(Clone)]
pub struct ForwarderOptions {
    /// Identifies the forwarder: its position file and its WAL hold
    /// (`forward.<name>`). 1 to 90 of `[A-Za-z0-9._-]`.
    pub name: String,
    /// The endpoint, e.g. `http://host:9090/api/v1/write`. Credentials in
    /// its userinfo (`https://user:pass@host/…`) become basic auth when
    /// `auth` is unset (both set is an error); they are never printed.
    pub url: String,
    /// Default [`Protocol::V1`].
    pub protocol: Protocol,
    /// Extra headers on every request (e.g. a tenant header). Default none.
    pub headers: Vec<(String, String)>,
    /// Credentials. Default none.
    pub auth: Option<Auth>,
    /// TLS settings. Default: verify against the web PKI roots.
    pub tls: TlsOptions,
    /// Parallel senders; series are spread over them by reference. Default 2.
    pub shards: usize,
    /// Most samples in one request. Default 2000.
    pub max_samples_per_send: usize,
    /// Longest a queued sample waits for its batch to fill. Default 5 s.
    pub batch_send_deadline: Duration,
    /// First retry delay. Default 30 ms.
    pub min_backoff: Duration,
    /// Retry delay cap (doubling from `min_backoff`). Default 5 s.
    pub max_backoff: Duration,
    /// Timeout of one request, connection to last byte. Default 30 s.
    pub timeout: Duration,
    /// Directory of `forward/<name>.position`. Default: the database's
    /// directory.
    pub data_dir: Option<PathBuf>,
    /// How often an idle reader looks for new WAL data. Default 100 ms.
    pub poll_interval: Duration,
    /// How long [`Forwarder::stop`] keeps sending what is queued; what is
    /// not acknowledged by then is sent after the next start. Default 10 s.
    pub flush_deadline: Duration,
    /// Samples queued per shard before the reader waits. Default
    /// 5 × `max_samples_per_send`.
    pub queue_capacity: Option<usize>,
    /// Send the exemplars the WAL holds with their series' samples
    /// (Prometheus' `send_exemplars`). Default true: a receiver that does
    /// not store exemplars ignores them.
    pub send_exemplars: bool,
}

impl ForwarderOptions {
    /// Options with the defaults, sending to `url`.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> ForwarderOptions {
        ForwarderOptions {
            name: name.into(),
            url: url.into(),
            protocol: Protocol::V1,
            headers: Vec::new(),
            auth: None,
            tls: TlsOptions::default(),
            shards: 2,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            data_dir: None,
            poll_interval: Duration::from_millis(100),
            flush_deadline: Duration::from_secs(10),
            queue_capacity: None,
            send_exemplars: true,
        }
    }

    /// Moves credentials from the URL's userinfo into `auth`.
    fn take_url_credentials(&mut self) -> Result<(), ForwardError> {
        let (clean, userinfo) = split_userinfo(&self.url);
        if let Some((username, password)) = userinfo {
            if self.auth.is_some() {
                return Err(ForwardError::InvalidOptions(format!(
                    "url {} has credentials and auth is set too; give one",
                    redact_url(&self.url)
                )));
            }
            self.auth = Some(Auth::Basic { username, password });
            self.url = clean;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ForwardError> {
        let bad = |m: String| Err(ForwardError::InvalidOptions(m));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 90
            && !self.name.starts_with('.')
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return bad(format!("name {:?}: use 1 to 90 of [A-Za-z0-9._-], not starting with '.'", self.name));
        }
        if self.auth.is_some() && self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
            return bad("an Authorization header and auth are both set; give one".into());
        }
        if self.shards == 0 || self.shards > 1024 {
            return bad(format!("shards must be 1..=1024, not {}", self.shards));
        }
        if self.max_samples_per_send == 0 {
            return bad("max_samples_per_send must be positive".into());
        }
        if self.min_backoff.is_zero() || self.max_backoff < self.min_backoff {
            return bad("min_backoff must be positive and at most max_backoff".into());
        }
        if self.timeout.is_zero() || self.poll_interval.is_zero() || self.batch_send_deadline.is_zero() {
            return bad("timeout, poll_interval and batch_send_deadline must be positive".into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for ForwarderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers = redacted_headers(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        f.debug_struct("ForwarderOptions")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("shards", &self.shards)
            .field("max_samples_per_send", &self.max_samples_per_send)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A forwarder could not start or persist its state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// An option is out of range or malformed.
    #[error("invalid forwarder options: {0}")]
    InvalidOptions(String),
    /// The database is in memory: there is no WAL to forward.
    #[error("an in-memory database has no WAL to forward")]
    NoWal,
    /// The storage engine failed (WAL hold, reading the WAL).
    #[error(transparent)]
    Storage(#[from] tidemark_storage::Error),
    /// A file operation on the position file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The position file does not hold a position.
    #[error("corrupt forwarder position file {path}: {content:?}")]
    CorruptPosition {
        /// The file.
        path: PathBuf,
        /// The start of what it holds.
        content: String,
    },
    /// A thread could not be started.
    #[error("starting a forwarder thread: {0}")]
    Thread(std::io::Error),
}

/// Counters and gauges of a [`Forwarder`] (for `/metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ForwarderStats {
    /// Samples read from the WAL, float and native histogram samples.
    pub samples_read: u64,
    /// Samples the endpoint acknowledged, float and native histogram.
    pub samples_sent: u64,
    /// Native histogram samples read from the WAL (also in `samples_read`).
    pub histograms_read: u64,
    /// Native histogram samples the endpoint acknowledged (also in
    /// `samples_sent`).
    pub histograms_sent: u64,
    /// Exemplars read from the WAL (not in `samples_read`; 0 unless
    /// [`ForwarderOptions::send_exemplars`]).
    pub exemplars_read: u64,
    /// Exemplars in requests the endpoint acknowledged (not in
    /// `samples_sent`).
    pub exemplars_sent: u64,
    /// Samples in failed attempts that were retried, by reason (`http_503`,
    /// `http_429`, `network`, `timeout`); a sample counts once per attempt.
    pub samples_failed: BTreeMap<String, u64>,
    /// Samples given up on, by reason: a non-retryable status (`http_400`,
    /// …) or `unknown_series` (a sample whose series record was lost).
    pub samples_dropped: BTreeMap<String, u64>,
    /// Times the reader found WAL data deleted or corrupt before it read it.
    pub wal_skips: u64,
    /// Segments lost to those skips (entirely or in part).
    pub wal_segments_skipped: u64,
    /// Requests retried.
    pub retries: u64,
    /// HTTP requests made (attempts, including retries).
    pub requests: u64,
    /// Compressed body bytes sent (all attempts).
    pub bytes_sent: u64,
    /// Samples read but not yet acknowledged.
    pub pending_samples: u64,
    /// See the module documentation: sample-time lag of acknowledgement, s.
    pub lag_seconds: f64,
    /// Newest sample timestamp read from the WAL (ms).
    pub newest_read_timestamp: Option<i64>,
    /// Newest sample timestamp of the acknowledged prefix (ms).
    pub newest_acked_timestamp: Option<i64>,
    /// Where the reader is in the WAL.
    pub read_position: WalPosition,
    /// The end of the acknowledged prefix (what is persisted).
    pub acked_position: WalPosition,
    /// WAL bytes after `read_position` (the reader's own backlog).
    pub wal_bytes_unread: u64,
    /// Series whose labels the reader keeps (forgotten when a WAL
    /// checkpoint shows they are gone).
    pub series_tracked: u64,
    /// The last failure (request, drop, skip or I/O), for operators.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    samples_read: u64,
    samples_sent: u64,
    histograms_read: u64,
    histograms_sent: u64,
    exemplars_read: u64,
    exemplars_sent: u64,
    samples_failed: BTreeMap<String, u64>,
    samples_dropped: BTreeMap<String, u64>,
    wal_skips: u64,
    wal_segments_skipped: u64,
    retries: u64,
    requests: u64,
    bytes_sent: u64,
    read_position: WalPosition,
    series_tracked: u64,
    last_error: Option<String>,
}

/// State shared by the reader, the shards and the handle.
struct Shared {
    opts: ForwarderOptions,
    client: Client,
    tracker: Mutex<Tracker>,
    counters: Mutex<Counters>,
    /// Set by `stop`: the instant after which queued data is abandoned.
    stop_at: Mutex<Option<Instant>>,
    wake: Condvar,
    hold: WalHold,
    position_path: PathBuf,
    wal_dir: PathBuf,
    /// Last position written to the position file.
    persisted: Mutex<WalPosition>,
}

impl Shared {
    fn stop_deadline(&self) -> Option<Instant> {
        *self.stop_at.lock()
    }

    /// Sleeps up to `d`; returns early (true) when stopping. Used by the
    /// reader's idle polling.
    fn sleep_unless_stopping(&self, d: Duration) -> bool {
        let mut g = self.stop_at.lock();
        if g.is_none() {
            self.wake.wait_for(&mut g, d);
        }
        g.is_some()
    }

    /// Sleeps up to `d` for a retry, but not past the stop deadline.
    fn backoff_sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut g = self.stop_at.lock();
        loop {
            let end = match *g {
                Some(dl) => until.min(dl),
                None => until,
            };
            if Instant::now() >= end {
                return;
            }
            // Woken early by `stop` to re-evaluate against its deadline.
            self.wake.wait_until(&mut g, end);
        }
    }

    fn note_error(&self, e: String) {
        self.counters.lock().last_error = Some(e);
    }

    /// Writes the acknowledged position if it moved, and moves the WAL hold.
    fn persist(&self) -> Result<(), ForwardError> {
        let acked = self.tracker.lock().acked();
        let mut persisted = self.persisted.lock();
        if *persisted == acked {
            return Ok(());
        }
        position::store(&self.position_path, acked)?;
        *persisted = acked;
        // After the position: a crash in between leaves the hold behind the
        // position, which only keeps a segment longer.
        self.hold.advance(acked.segment)?;
        Ok(())
    }
}

/// A running forwarder; see the [module documentation](self).
pub struct Forwarder {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    shards: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("name", &self.shared.opts.name)
            .field("url", &redact_url(&self.shared.opts.url))
            .finish()
    }
}

impl Forwarder {
    /// Starts forwarding `db`'s WAL: from the persisted position of a
    /// forwarder of this name, or from the oldest WAL segment the first
    /// time. Spawns one reader thread and `shards` sender threads.
    pub fn start(db: &Db, mut opts: ForwarderOptions) -> Result<Forwarder, ForwardError> {
        opts.take_url_credentials()?;
        opts.validate()?;
        let client = Client::new(&opts)?;
        let wal_dir = db.wal_dir().ok_or(ForwardError::NoWal)?;
        let data_dir = match &opts.data_dir {
            Some(d) => d.clone(),
            None => wal_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
        };
        // The hold first, so that nothing from here on is checkpointed away.
        let hold = db.hold_wal(&format!("forward.{}", opts.name))?;
        let position_path = position::position_path(&data_dir, &opts.name);
        let start = position::load(&position_path)?.unwrap_or(WalPosition::start_of(hold.segment()));
        let tailer = WalTailer::open(&wal_dir, Some(start))?;
        tracing::info!(name = %opts.name, url = %redact_url(&opts.url), from = %start, "starting the forwarder");

        let capacity = opts.queue_capacity.unwrap_or(opts.max_samples_per_send.saturating_mul(5)).max(1);
        let n_shards = opts.shards;
        let shared = Arc::new(Shared {
            client,
            tracker: Mutex::new(Tracker::new(start)),
            counters: Mutex::new(Counters { read_position: start, ..Counters::default() }),
            stop_at: Mutex::new(None),
            wake: Condvar::new(),
            hold,
            position_path,
            wal_dir,
            persisted: Mutex::new(start),
            opts,
        });
        let mut fwd = Forwarder { shared: shared.clone(), reader: None, shards: Vec::new() };
        let mut senders = Vec::with_capacity(n_shards);
        for i in 0..n_shards {
            let (tx, rx) = mpsc::sync_channel::<QueuedSample>(capacity);
            let sh = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("tidemark-fwd-shard-{i}"))
                .spawn(move || shard::run(&sh, &rx))
                .map_err(ForwardError::Thread)?;
            fwd.shards.push(h);
            senders.push(tx);
        }
        let sh = shared.clone();
        let h = std::thread::Builder::new()
            .name("tidemark-fwd-reader".into())
            .spawn(move || run_reader(&sh, tailer, senders))
            .map_err(ForwardError::Thread)?;
        fwd.reader = Some(h);
        Ok(fwd)
    }

    /// The forwarder's name (from its options).
    pub fn name(&self) -> &str {
        &self.shared.opts.name
    }

    /// Current counters and gauges.
    pub fn stats(&self) -> ForwarderStats {
        let sh = &self.shared;
        let (pending, lag_ms, (read_t, acked_t), acked) = {
            let t = sh.tracker.lock();
            (t.pending(), t.lag_ms(), t.timestamps(), t.acked())
        };
        let c = sh.counters.lock();
        ForwarderStats {
            samples_read: c.samples_read,
            samples_sent: c.samples_sent,
            histograms_read: c.histograms_read,
            histograms_sent: c.histograms_sent,
            exemplars_read: c.exemplars_read,
            exemplars_sent: c.exemplars_sent,
            samples_failed: c.samples_failed.clone(),
            samples_dropped: c.samples_dropped.clone(),
            wal_skips: c.wal_skips,
            wal_segments_skipped: c.wal_segments_skipped,
            retries: c.retries,
            requests: c.requests,
            bytes_sent: c.bytes_sent,
            pending_samples: pending,
            lag_seconds: lag_ms as f64 / 1000.0,
            newest_read_timestamp: read_t,
            newest_acked_timestamp: acked_t,
            read_position: c.read_position,
            acked_position: acked,
            wal_bytes_unread: unread_bytes(&sh.wal_dir, c.read_position),
            series_tracked: c.series_tracked,
            last_error: c.last_error.clone(),
        }
    }

    /// Stops reading, sends what is queued for up to `flush_deadline`,
    /// persists the acknowledged position and returns the final stats.
    /// The WAL hold stays (a later start resumes where this one stopped);
    /// remove it with [`Db::release_wal_hold`] (`forward.<name>`) when the
    /// forwarder is retired.
    pub fn stop(mut self) -> Result<ForwarderStats, ForwardError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<ForwarderStats, ForwardError> {
        *self.shared.stop_at.lock() = Some(Instant::now() + self.shared.opts.flush_deadline);
        self.shared.wake.notify_all();
        // The reader exits at its next step and drops the shards' senders;
        // shards then send what they hold and exit.
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        for h in self.shards.drain(..) {
            let _ = h.join();
        }
        self.shared.persist()?;
        let stats = self.stats();
        tracing::info!(name = %self.shared.opts.name, acked = %stats.acked_position, sent = stats.samples_sent, pending = stats.pending_samples, "forwarder stopped");
        Ok(stats)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if self.reader.is_some() {
            if let Err(e) = self.shutdown() {
                tracing::error!(error = %e, "stopping the forwarder on drop failed");
            }
        }
    }
}

/// Spreads series over shards; one series always lands on the same shard.
fn shard_of(series_ref: u64, shards: usize) -> usize {
    ((series_ref.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shards as u64) as usize
}

/// The reader thread: WAL → shards.
fn run_reader(sh: &Shared, mut tailer: WalTailer, senders: Vec<SyncSender<QueuedSample>>) {
    // Labels of the series seen, by WAL reference, with the segment the
    // series record was read from (or a later one: a read can span
    // segments), to forget series that died (see `TailRead::checkpoint`).
    let mut series: HashMap<u64, (Arc<Labels>, u64)> = HashMap::new();
    let mut last_persist = Instant::now();
    let mut out: Vec<(usize, QueuedSample)> = Vec::new();
    let mut last_pushed = tailer.position();
    while sh.stop_deadline().is_none() {
        let read = match tailer.read(READ_BUDGET) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "forwarder: reading the WAL failed; retrying");
                sh.note_error(format!("reading the WAL: {e}"));
                sh.sleep_unless_stopping(sh.opts.poll_interval.max(Duration::from_secs(1)));
                continue;
            }
        };
        if !read.skips.is_empty() {
            let mut c = sh.counters.lock();
            for skip in &read.skips {
                c.wal_skips += 1;
                c.wal_segments_skipped += skip.segments;
                let msg = format!(
                    "WAL data lost to the forwarder: {} segment(s) from {} to {} ({:?})",
                    skip.segments, skip.from, skip.to, skip.reason
                );
                tracing::error!(name = %sh.opts.name, "{msg}");
                c.last_error = Some(msg);
            }
        }
        let empty = read.records.is_empty();
        out.clear();
        let (mut min_t, mut max_t, mut unknown, mut hists) = (None::<i64>, None::<i64>, 0u64, 0u64);
        let mut exemplars = 0u64;
        let mark = read.position.segment.max(read.checkpoint.map_or(0, |c| c + 1));
        for rec in read.records {
            match rec {
                Record::Series(list) => {
                    for s in list {
                        series.insert(s.series_ref, (Arc::new(s.labels), mark));
                    }
                }
                Record::Samples(list) => {
                    for s in list {
                        let Some((labels, _)) = series.get(&s.series_ref) else {
                            unknown += 1;
                            continue;
                        };
                        min_t = Some(min_t.map_or(s.t, |m| m.min(s.t)));
                        max_t = Some(max_t.map_or(s.t, |m| m.max(s.t)));
                        let q = QueuedSample {
                            series_ref: s.series_ref,
                            labels: labels.clone(),
                            t: s.t,
                            value: QueuedValue::Float(s.v),
                            chunk: 0,
                        };
                        out.push((shard_of(s.series_ref, senders.len()), q));
                    }
                }
                Record::HistogramSamples(list) => {
                    for s in list {
                        let Some((labels, _)) = series.get(&s.series_ref) else {
                            unknown += 1;
                            continue;
                        };
                        min_t = Some(min_t.map_or(s.t, |m| m.min(s.t)));
                        max_t = Some(max_t.map_or(s.t, |m| m.max(s.t)));
                        hists += 1;
                        let q = QueuedSample {
                            series_ref: s.series_ref,
                            labels: labels.clone(),
                            t: s.t,
                            value: QueuedValue::Histogram(Box::new(s.h)),
                            chunk: 0,
                        };
                        out.push((shard_of(s.series_ref, senders.len()), q));
                    }
                }
                // Exemplars go with their series' samples (same shard);
                // one of a series never seen is not worth an error.
                Record::Exemplars(list) if sh.opts.send_exemplars => {
                    for e in list {
                        let Some((labels, _)) = series.get(&e.series_ref) else { continue };
                        exemplars += 1;
                        let q = QueuedSample {
                            series_ref: e.series_ref,
                            labels: labels.clone(),
                            t: e.t,
                            value: QueuedValue::Exemplar(Box::new((e.labels, e.v))),
                            chunk: 0,
                        };
                        out.push((shard_of(e.series_ref, senders.len()), q));
                    }
                }
                Record::Exemplars(_) => {}
            }
        }
        if let Some(c) = read.checkpoint {
            // Live series were just re-read from the checkpoint (and marked
            // with a segment > c); the others have no samples to come.
            series.retain(|_, (_, seg)| *seg > c);
        }
        {
            let mut c = sh.counters.lock();
            c.read_position = read.position;
            c.series_tracked = series.len() as u64;
            c.samples_read += out.len() as u64 - exemplars + unknown;
            c.histograms_read += hists;
            c.exemplars_read += exemplars;
            if unknown > 0 {
                *c.samples_dropped.entry("unknown_series".into()).or_default() += unknown;
                let msg = format!("{unknown} samples of series never seen in the WAL (lost series records) dropped");
                tracing::error!(name = %sh.opts.name, "{msg}");
                c.last_error = Some(msg);
            }
        }
        // Empty reads that moved (past empty segments, over a skip) are
        // chunks too, so the acknowledged position follows them.
        if !empty || read.position != last_pushed {
            last_pushed = read.position;
            let id = sh.tracker.lock().push(read.position, out.len() as u64, min_t, max_t);
            for (shard, mut q) in out.drain(..) {
                q.chunk = id;
                if senders[shard].send(q).is_err() {
                    return; // the shard is gone: only when stopping
                }
            }
        }
        if last_persist.elapsed() >= PERSIST_INTERVAL {
            last_persist = Instant::now();
            if let Err(e) = sh.persist() {
                tracing::error!(error = %e, "forwarder: persisting the position failed");
                sh.note_error(e.to_string());
            }
        }
        if empty {
            sh.sleep_unless_stopping(sh.opts.poll_interval);
        }
    }
}

/// WAL bytes after `pos` (segments are named by number).
fn unread_bytes(wal_dir: &Path, pos: WalPosition) -> u64 {
    let Ok(rd) = std::fs::read_dir(wal_dir) else { return 0 };
    rd.flatten()
        .filter_map(|e| {
            let n: u64 = e.file_name().to_str()?.parse().ok()?;
            let len = e.metadata().ok()?.len();
            match n.cmp(&pos.segment) {
                std::cmp::Ordering::Less => None,
                std::cmp::Ordering::Equal => Some(len.saturating_sub(pos.offset)),
                std::cmp::Ordering::Greater => Some(len),
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_become_basic_auth_and_debug_redacts_them() {
        let mut o = ForwarderOptions::new("t", "https://bob:hunter2@h:1/api/v1/write?token=abc");
        o.headers.push(("Authorization".into(), "Bearer xyz-secret".into()));
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("xyz-secret") && !shown.contains("abc"), "{shown}");
        o.take_url_credentials().unwrap();
        assert_eq!(o.url, "https://h:1/api/v1/write?token=abc");
        assert_eq!(o.auth, Some(Auth::Basic { username: "bob".into(), password: "hunter2".into() }));
        // Both the URL and `auth` carrying credentials is ambiguous.
        let mut both = ForwarderOptions::new("t", "https://bob:hunter2@h:1/x");
        both.auth = Some(Auth::Bearer("t".into()));
        let e = both.take_url_credentials().unwrap_err().to_string();
        assert!(e.contains("give one") && !e.contains("hunter2"), "{e}");
        // So is an Authorization header next to `auth`.
        let mut header = ForwarderOptions::new("t", "https://h:1/x");
        header.auth = Some(Auth::Bearer("t".into()));
        header.headers.push(("authorization".into(), "Bearer u".into()));
        let e = header.validate().unwrap_err().to_string();
        assert!(e.contains("Authorization header and auth are both set"), "{e}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let mut o = ForwarderOptions::new("t", "https://h:1/x");
        o.tls.cert_file = Some("/nonexistent/c.crt".into());
        let e = Client::new(&o).err().expect("refused").to_string();
        assert!(e.contains("cert_file and key_file must be given together"), "{e}");
        o.tls = TlsOptions { ca_file: Some("/nonexistent/ca.crt".into()), ..TlsOptions::default() };
        let e = Client::new(&o).err().expect("refused").to_string();
        assert!(e.contains("/nonexistent/ca.crt"), "{e}");
    }
}

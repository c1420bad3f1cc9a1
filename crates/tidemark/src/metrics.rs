//! The server's own metrics, served at `/metrics` in the OpenMetrics text
//! format with the official `prometheus-client` crate.
//!
//! Two kinds of metric live here:
//! - instruments the server updates as it works (HTTP request counts and
//!   latency histograms by handler, recorded by [`track_requests`]);
//! - collectors that read the components' own counters at scrape time
//!   (storage [`DbStats`], the receiver's and forwarders' statistics, the
//!   process' CPU, memory and file descriptors), so the hot paths keep
//!   plain atomics and pay nothing for being observed.
//!
//! ```
//! use std::sync::Arc;
//! use tidemark::metrics::ServerMetrics;
//! let db = Arc::new(tidemark::storage::Db::in_memory().unwrap());
//! let metrics = ServerMetrics::new(db);
//! metrics.observe_request("/api/v1/query", 200, 0.004);
//! let text = metrics.encode();
//! assert!(text.contains("tidemark_http_requests_total{handler=\"/api/v1/query\",code=\"200\"} 1"));
//! assert!(text.contains("tidemark_head_series 0"));
//! ```

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tidemark_remote::receive::{HaDropReason, STATUSES};
use tidemark_remote::{Forwarder, ForwarderStats, Protocol, Receiver, RejectReason};
use tidemark_storage::Db;

/// The content type of [`ServerMetrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type LabelPairs = Vec<(&'static str, String)>;

/// The registry and the instruments the server updates.
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    requests: Family<LabelPairs, Counter>,
    durations: Family<LabelPairs, Histogram>,
}

impl ServerMetrics {
    /// Metrics for a server over `db`, with the HTTP instruments, the
    /// storage collector and the process collector registered.
    pub fn new(db: Arc<Db>) -> ServerMetrics {
        let mut registry = Registry::default();
        let requests = Family::<LabelPairs, Counter>::default();
        registry.register(
            "tidemark_http_requests",
            "HTTP requests answered, by handler (route pattern) and status code.",
            requests.clone(),
        );
        let durations = Family::<LabelPairs, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "tidemark_http_request_duration_seconds",
            "Time to answer HTTP requests (queries, remote write, metadata), by handler.",
            durations.clone(),
        );
        registry.register_collector(Box::new(DbCollector(db)));
        registry.register_collector(Box::new(ProcessCollector { started: std::time::SystemTime::now() }));
        ServerMetrics { registry, requests, durations }
    }

    /// Registers another collector (e.g. a forwarder's statistics).
    pub fn register_collector(&mut self, collector: Box<dyn prometheus_client::collector::Collector>) {
        self.registry.register_collector(collector);
    }

    /// Records one answered request.
    pub fn observe_request(&self, handler: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&vec![("handler", handler.to_owned()), ("code", status.to_string())]).inc();
        self.durations.get_or_create(&vec![("handler", handler.to_owned())]).observe(seconds);
    }

    /// The exposition text of every registered metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        // Writing into a String cannot fail; a collector error would only
        // come from a formatting bug, which we would rather show than hide.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding /metrics failed");
        }
        out
    }
}

/// 0.5 ms to about 65 s in powers of two: queries span that whole range.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Axum middleware recording every request's handler, status and latency.
/// Requests that matched no route count under the handler `other`, so a
/// scan of random paths cannot create unbounded label values.
pub async fn track_requests(State(metrics): State<Arc<ServerMetrics>>, req: Request, next: Next) -> Response {
    let handler = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    let handler = handler.as_deref().unwrap_or("other");
    metrics.observe_request(handler, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// Encodes one unlabelled gauge.
fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// Encodes one unlabelled float gauge.
fn gauge_f64(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// Encodes one unlabelled counter (`name` without `_total`).
fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

/// Encodes a counter with one label (`name` without `_total`).
pub(crate) fn labelled_counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        let fam = m.encode_family(&labels)?;
        ConstCounter::new(*n).encode(fam)?;
    }
    Ok(())
}

/// Encodes a counter family: one series per label set.
fn counter_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(Vec<(&'static str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, n) in series {
        let fam = m.encode_family(labels)?;
        ConstCounter::new(*n).encode(fam)?;
    }
    Ok(())
}

/// Encodes a float gauge family: one series per label set.
fn gauge_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(Vec<(&'static str, String)>, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        let fam = m.encode_family(labels)?;
        ConstGauge::new(*v).encode(fam)?;
    }
    Ok(())
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Storage statistics, read at scrape time.
#[derive(Debug)]
struct DbCollector(Arc<Db>);

impl prometheus_client::collector::Collector for DbCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        gauge(&mut enc, "tidemark_head_series", "Series in the in-memory head.", clamp_i64(s.head_series))?;
        let e = self.0.exemplar_stats();
        gauge(
            &mut enc,
            "tidemark_exemplars_max",
            "Exemplars the ring holds at most (the limit).",
            clamp_i64(e.max_exemplars),
        )?;
        gauge(&mut enc, "tidemark_exemplars_in_storage", "Exemplars in the ring.", clamp_i64(e.exemplars_in_storage))?;
        gauge(
            &mut enc,
            "tidemark_exemplars_series",
            "Series with exemplars in the ring.",
            clamp_i64(e.series_with_exemplars),
        )?;
        counter(&mut enc, "tidemark_exemplars_appended", "Exemplars stored since start.", e.appended_total)?;
        counter(
            &mut enc,
            "tidemark_exemplars_out_of_order",
            "Exemplars refused since start: not after their series' newest.",
            e.out_of_order_total,
        )?;
        gauge(&mut enc, "tidemark_head_chunks", "Chunks in the in-memory head.", clamp_i64(s.head_chunks))?;
        if s.head_min_time <= s.head_max_time {
            gauge(&mut enc, "tidemark_head_min_time_ms", "Oldest timestamp in the head, ms.", s.head_min_time)?;
            gauge(&mut enc, "tidemark_head_max_time_ms", "Newest timestamp in the head, ms.", s.head_max_time)?;
        }
        counter(&mut enc, "tidemark_samples_appended", "Samples appended to storage since start.", s.samples_appended)?;
        counter(
            &mut enc,
            "tidemark_out_of_order_samples_appended",
            "Out-of-order samples accepted since start.",
            s.out_of_order_samples_appended,
        )?;
        gauge(&mut enc, "tidemark_wal_bytes", "Bytes of WAL segments and checkpoints.", clamp_i64(s.wal_bytes))?;
        gauge(&mut enc, "tidemark_blocks", "Persisted blocks.", clamp_i64(s.blocks))?;
        gauge(&mut enc, "tidemark_block_bytes", "Bytes of all persisted blocks.", clamp_i64(s.block_bytes))?;
        counter(&mut enc, "tidemark_head_persists", "Blocks written from the head since start.", s.head_persists)?;
        counter(&mut enc, "tidemark_compactions", "Compactions run since start.", s.compactions)?;
        labelled_counter(
            &mut enc,
            "tidemark_retention_deletions",
            "Blocks deleted by retention since start, by reason.",
            "reason",
            &[("time", s.retention_time_deletions), ("size", s.retention_size_deletions)],
        )?;
        counter(
            &mut enc,
            "tidemark_quarantined_blocks",
            "Blocks moved to quarantine/: unreadable blocks, and originals of blocks rewritten without damaged chunks.",
            s.quarantined_blocks,
        )?;
        counter(
            &mut enc,
            "tidemark_wal_corruptions",
            "Damaged regions of the WAL or its checkpoint skipped at open or while checkpointing (not torn tails).",
            s.wal_corruptions,
        )?;
        counter(
            &mut enc,
            "tidemark_wal_records_skipped",
            "Damaged WAL records skipped (a lower bound).",
            s.wal_records_skipped,
        )?;
        counter(
            &mut enc,
            "tidemark_wal_samples_lost",
            "WAL samples lost to damage: in damaged records, or whose series record was damaged.",
            s.wal_samples_lost,
        )?;
        counter(
            &mut enc,
            "tidemark_chunks_corrupt",
            "Damaged block chunks found by queries and scrubs; their samples are unreadable.",
            s.chunks_corrupt,
        )?;
        counter(&mut enc, "tidemark_scrubs", "Completed scrubs of every block's checksums.", s.scrubs)?;
        gauge(
            &mut enc,
            "tidemark_storage_writable",
            "1 while commits are accepted; 0 while they fail (WAL unwritable, size limit reached; see /-/ready).",
            i64::from(s.write_failure.is_none()),
        )?;
        labelled_counter(
            &mut enc,
            "tidemark_storage_commit_failures",
            "Commits that failed, by reason: storage_full (size limit), no_space (ENOSPC), io (EIO, failed fsync).",
            "reason",
            &[
                ("storage_full", s.commit_failures_storage_full),
                ("no_space", s.commit_failures_no_space),
                ("io", s.commit_failures_io),
            ],
        )?;
        counter(
            &mut enc,
            "tidemark_maintenance_failures",
            "Maintenance steps (WAL repair, head persistence, compaction, retention) that failed; retried next round.",
            s.maintenance_failures,
        )?;
        if s.disk_limit_bytes > 0 {
            gauge(&mut enc, "tidemark_storage_disk_bytes", "Bytes in the data directory.", clamp_i64(s.disk_bytes))?;
            gauge(
                &mut enc,
                "tidemark_storage_disk_limit_bytes",
                "Size the data directory is kept under (retention size, or less if the disk has less room).",
                clamp_i64(s.disk_limit_bytes),
            )?;
        }
        if s.retention_floor != i64::MIN {
            gauge(
                &mut enc,
                "tidemark_retention_floor_ms",
                "Samples older than this were deleted by retention and are refused.",
                s.retention_floor,
            )?;
        }
        Ok(())
    }
}

/// Remote-write receiver counters, read at scrape time.
#[derive(Debug)]
pub(crate) struct ReceiverCollector(pub(crate) Arc<Receiver>);

impl prometheus_client::collector::Collector for ReceiverCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        labelled_counter(
            &mut enc,
            "tidemark_remote_write_requests",
            "Remote-write requests received, by protocol version.",
            "protocol",
            &[("1.0", s.requests(Protocol::V1)), ("2.0", s.requests(Protocol::V2))],
        )?;
        counter(
            &mut enc,
            "tidemark_remote_write_samples_appended",
            "Float samples from remote write stored.",
            s.samples_appended,
        )?;
        // A float sample is never an invalid histogram: that reason is
        // exported for histograms only.
        let rejected: Vec<(&str, u64)> = RejectReason::ALL
            .iter()
            .filter(|&&r| r != RejectReason::InvalidHistogram)
            .map(|&r| (r.as_str(), s.rejected(r)))
            .collect();
        labelled_counter(
            &mut enc,
            "tidemark_remote_write_samples_rejected",
            "Float samples from remote write not stored, by reason.",
            "reason",
            &rejected,
        )?;
        counter(
            &mut enc,
            "tidemark_remote_write_histograms_appended",
            "Native histogram samples from remote write stored.",
            s.histograms_appended,
        )?;
        let rejected: Vec<(&str, u64)> =
            RejectReason::ALL.iter().map(|&r| (r.as_str(), s.histograms_rejected_for(r))).collect();
        labelled_counter(
            &mut enc,
            "tidemark_remote_write_histograms_rejected",
            "Native histogram samples from remote write not stored, by reason.",
            "reason",
            &rejected,
        )?;
        counter(
            &mut enc,
            "tidemark_remote_write_exemplars_appended",
            "Exemplars from remote write stored.",
            s.exemplars_appended,
        )?;
        counter(
            &mut enc,
            "tidemark_remote_write_exemplars_dropped",
            "Exemplars from remote write not stored (out of order, invalid, or of a series without stored samples).",
            s.exemplars_dropped,
        )?;
        counter(
            &mut enc,
            "tidemark_remote_write_metadata_entries",
            "Metric metadata entries received.",
            s.metadata_entries,
        )?;
        let codes: Vec<String> = STATUSES.iter().map(|c| c.to_string()).collect();
        let responses: Vec<(&str, u64)> =
            STATUSES.iter().zip(&codes).map(|(&c, name)| (name.as_str(), s.responses_with(c))).collect();
        labelled_counter(
            &mut enc,
            "tidemark_remote_write_responses",
            "Remote-write responses, by status code.",
            "code",
            &responses,
        )?;
        let Some(ha) = self.0.ha() else { return Ok(()) };
        let dropped: Vec<(&str, u64)> = HaDropReason::ALL.iter().map(|&r| (r.as_str(), s.ha_dropped(r))).collect();
        labelled_counter(
            &mut enc,
            "tidemark_remote_write_ha_dropped_samples",
            "Samples (float and native histogram) of remote-write requests dropped by HA deduplication, by reason.",
            "reason",
            &dropped,
        )?;
        let elections = ha.elections();
        let elected: Vec<(Vec<(&'static str, String)>, f64)> = elections
            .iter()
            .map(|e| (vec![("cluster", e.cluster.clone()), ("replica", e.replica.clone())], 1.0))
            .collect();
        gauge_family(
            &mut enc,
            "tidemark_ha_elected_replica",
            "The elected replica of each HA cluster (always 1).",
            &elected,
        )?;
        let changes: Vec<(Vec<(&'static str, String)>, u64)> =
            elections.iter().map(|e| (vec![("cluster", e.cluster.clone())], e.changes)).collect();
        counter_family(
            &mut enc,
            "tidemark_ha_elected_replica_changes",
            "Failovers: how many times each HA cluster's elected replica changed.",
            &changes,
        )?;
        let last_seen: Vec<(Vec<(&'static str, String)>, f64)> =
            elections.iter().map(|e| (vec![("cluster", e.cluster.clone())], e.last_seen_ms as f64 / 1000.0)).collect();
        gauge_family(
            &mut enc,
            "tidemark_ha_elected_replica_last_seen_timestamp_seconds",
            "When each HA cluster's elected replica last sent a request (receiver clock).",
            &last_seen,
        )
    }
}

/// The running forwarders, shared between the server (which starts and
/// stops them) and the collector (which reads their statistics).
pub(crate) type ForwarderList = Arc<parking_lot::Mutex<Vec<Forwarder>>>;

/// The query engine's concurrency slots, read at scrape time (Prometheus
/// exposes the same as `prometheus_engine_queries` and
/// `prometheus_engine_queries_concurrent_max`).
#[derive(Debug)]
pub(crate) struct QueryCollector(pub(crate) Arc<tidemark_promql::Engine>);

impl prometheus_client::collector::Collector for QueryCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = self.0.concurrency();
        gauge(&mut enc, "tidemark_queries_active", "Queries being evaluated.", c.active as i64)?;
        gauge(
            &mut enc,
            "tidemark_queries_queued",
            "Queries waiting for one of the --query.max-concurrency slots.",
            c.queued as i64,
        )?;
        gauge(&mut enc, "tidemark_queries_concurrent_max", "The --query.max-concurrency setting.", c.max as i64)
    }
}

/// Alertmanager notification statistics and the outcome of the last rule
/// reload, read at scrape time (Prometheus' `prometheus_notifications_*`
/// and `prometheus_config_last_reload_*`, with our prefix).
#[derive(Debug)]
pub(crate) struct NotifierCollector {
    pub(crate) notifier: Option<Arc<tidemark_rules::Notifier>>,
    pub(crate) reload: Arc<crate::rules::ReloadStatus>,
}

impl prometheus_client::collector::Collector for NotifierCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        gauge(
            &mut enc,
            "tidemark_config_last_reload_successful",
            "Whether the last load of the rule files succeeded (1) or failed (0); a failed one keeps the previous rules.",
            i64::from(self.reload.successful()),
        )?;
        gauge_f64(
            &mut enc,
            "tidemark_config_last_reload_success_timestamp_seconds",
            "When the rule files were last loaded successfully.",
            self.reload.last_success_ms() as f64 / 1000.0,
        )?;
        let Some(n) = &self.notifier else {
            return Ok(());
        };
        let st = n.stats();
        gauge(
            &mut enc,
            "tidemark_notifications_queue_length",
            "Alerts waiting to be sent (the longest Alertmanager queue).",
            st.queue_length as i64,
        )?;
        gauge(
            &mut enc,
            "tidemark_notifications_queue_capacity",
            "Alerts each Alertmanager queue holds at most.",
            st.queue_capacity as i64,
        )?;
        counter(
            &mut enc,
            "tidemark_notifications_dropped",
            "Alerts dropped: queue overflow, failed requests, or sent after stop.",
            st.dropped_total,
        )?;
        gauge(
            &mut enc,
            "tidemark_notifications_alertmanagers_discovered",
            "Alertmanagers alerts are sent to.",
            st.alertmanagers.len() as i64,
        )?;
        let by = |f: &dyn Fn(&tidemark_rules::AlertmanagerStats) -> u64| -> Vec<(Vec<(&'static str, String)>, u64)> {
            st.alertmanagers.iter().map(|a| (vec![("alertmanager", a.alertmanager.clone())], f(a))).collect()
        };
        counter_family(
            &mut enc,
            "tidemark_notifications_sent",
            "Alerts an Alertmanager accepted.",
            &by(&|a| a.sent_total),
        )?;
        counter_family(
            &mut enc,
            "tidemark_notifications_errors",
            "Alerts in requests that failed.",
            &by(&|a| a.errors_total),
        )?;
        counter_family(
            &mut enc,
            "tidemark_notifications_alertmanager_dropped",
            "Alerts dropped for one Alertmanager.",
            &by(&|a| a.dropped_total),
        )?;
        let latency: Vec<(Vec<(&'static str, String)>, f64)> = st
            .alertmanagers
            .iter()
            .map(|a| (vec![("alertmanager", a.alertmanager.clone())], a.last_latency.map_or(0.0, |d| d.as_secs_f64())))
            .collect();
        gauge_family(
            &mut enc,
            "tidemark_notifications_last_latency_seconds",
            "Duration of the last successful request to each Alertmanager.",
            &latency,
        )
    }
}

/// Forwarder statistics, read at scrape time.
#[derive(Debug)]
pub(crate) struct ForwarderCollector(pub(crate) ForwarderList);

impl prometheus_client::collector::Collector for ForwarderCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats: Vec<(String, ForwarderStats)> =
            self.0.lock().iter().map(|f| (f.name().to_owned(), f.stats())).collect();
        if stats.is_empty() {
            return Ok(());
        }
        let by = |f: &dyn Fn(&ForwarderStats) -> u64| -> Vec<(Vec<(&'static str, String)>, u64)> {
            stats.iter().map(|(n, s)| (vec![("forwarder", n.clone())], f(s))).collect()
        };
        counter_family(
            &mut enc,
            "tidemark_forwarder_samples_read",
            "Samples read from the WAL (float and native histogram samples).",
            &by(&|s| s.samples_read),
        )?;
        counter_family(
            &mut enc,
            "tidemark_forwarder_samples_sent",
            "Samples the endpoint acknowledged (float and native histogram samples).",
            &by(&|s| s.samples_sent),
        )?;
        counter_family(
            &mut enc,
            "tidemark_forwarder_histograms_read",
            "Native histogram samples read from the WAL (included in samples_read).",
            &by(&|s| s.histograms_read),
        )?;
        counter_family(
            &mut enc,
            "tidemark_forwarder_histograms_sent",
            "Native histogram samples the endpoint acknowledged (included in samples_sent).",
            &by(&|s| s.histograms_sent),
        )?;
        let by_reason = |m: &dyn Fn(&ForwarderStats) -> &std::collections::BTreeMap<String, u64>| {
            let mut out = Vec::new();
            for (n, s) in &stats {
                for (reason, v) in m(s) {
                    out.push((vec![("forwarder", n.clone()), ("reason", reason.clone())], *v));
                }
            }
            out
        };
        counter_family(
            &mut enc,
            "tidemark_forwarder_samples_failed",
            "Samples in attempts that failed and were retried, by reason.",
            &by_reason(&|s| &s.samples_failed),
        )?;
        counter_family(
            &mut enc,
            "tidemark_forwarder_samples_dropped",
            "Samples given up on (non-retryable answers, WAL data lost), by reason.",
            &by_reason(&|s| &s.samples_dropped),
        )?;
        counter_family(&mut enc, "tidemark_forwarder_requests", "Requests sent.", &by(&|s| s.requests))?;
        counter_family(&mut enc, "tidemark_forwarder_retries", "Requests retried.", &by(&|s| s.retries))?;
        counter_family(&mut enc, "tidemark_forwarder_bytes_sent", "Compressed bytes sent.", &by(&|s| s.bytes_sent))?;
        counter_family(
            &mut enc,
            "tidemark_forwarder_wal_segments_skipped",
            "WAL segments deleted before the forwarder read them (data lost).",
            &by(&|s| s.wal_segments_skipped),
        )?;
        let gauges = |f: &dyn Fn(&ForwarderStats) -> f64| -> Vec<(Vec<(&'static str, String)>, f64)> {
            stats.iter().map(|(n, s)| (vec![("forwarder", n.clone())], f(s))).collect()
        };
        gauge_family(
            &mut enc,
            "tidemark_forwarder_lag_seconds",
            "Newest sample timestamp read from the WAL minus the newest acknowledged one.",
            &gauges(&|s| s.lag_seconds),
        )?;
        gauge_family(
            &mut enc,
            "tidemark_forwarder_pending_samples",
            "Samples read but not yet acknowledged.",
            &gauges(&|s| s.pending_samples as f64),
        )?;
        gauge_family(
            &mut enc,
            "tidemark_forwarder_wal_bytes_unread",
            "WAL bytes written but not yet read by the forwarder.",
            &gauges(&|s| s.wal_bytes_unread as f64),
        )
    }
}

/// The process' own resource use, from `/proc/self` (Linux; elsewhere only
/// the start time is reported).
#[derive(Debug)]
struct ProcessCollector {
    started: std::time::SystemTime,
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let start = self.started.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        gauge_f64(&mut enc, "process_start_time_seconds", "Start time of the process since the Unix epoch.", start)?;
        if let Some(p) = read_proc_self() {
            let m = enc.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(p.cpu_seconds).encode(m)?;
            gauge(&mut enc, "process_resident_memory_bytes", "Resident memory size in bytes.", p.rss_bytes)?;
            gauge(&mut enc, "process_virtual_memory_bytes", "Virtual memory size in bytes.", p.vsize_bytes)?;
            gauge(&mut enc, "process_open_fds", "Number of open file descriptors.", p.open_fds)?;
        }
        Ok(())
    }
}

struct ProcSelf {
    cpu_seconds: f64,
    rss_bytes: i64,
    vsize_bytes: i64,
    open_fds: i64,
}

/// Reads `/proc/self/stat` (fields after the parenthesised command name,
/// which may itself contain spaces) and counts `/proc/self/fd`.
fn read_proc_self() -> Option<ProcSelf> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3 of stat(5), i.e. index 0 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let vsize: i64 = fields.get(20)?.parse().ok()?;
    let rss_pages: i64 = fields.get(21)?.parse().ok()?;
    // USER_HZ is 100 on every Linux configuration Rust supports, and the
    // page size 4 KiB on the platforms we build for.
    let ticks = 100.0;
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as i64).unwrap_or(0);
    Some(ProcSelf {
        cpu_seconds: (utime + stime) / ticks,
        rss_bytes: rss_pages.saturating_mul(4096),
        vsize_bytes: vsize,
        open_fds,
    })
}

/// The rule groups' self-metrics, read at scrape time from the manager:
/// Prometheus' `prometheus_rule_*` families under the `tidemark_` prefix,
/// one series per group labelled `rule_group="<file>;<name>"`.
///
/// ```
/// use std::sync::Arc;
/// use tidemark::metrics::RulesCollector;
/// use tidemark_rules::{GroupSpec, RuleEnv, RuleManager, RuleSpec};
///
/// let db = Arc::new(tidemark::storage::Db::in_memory().unwrap());
/// let manager = Arc::new(RuleManager::unscheduled(RuleEnv::new(db, Arc::new(tidemark_promql::Engine::default()))));
/// manager.update(vec![GroupSpec::new("g").rule(RuleSpec::recording("one", "vector(1)"))]).unwrap();
/// manager.groups()[0].eval_iteration(60_000);
///
/// let mut registry = prometheus_client::registry::Registry::default();
/// registry.register_collector(Box::new(RulesCollector::new(manager)));
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains("tidemark_rule_group_last_evaluation_timestamp_seconds{rule_group=\";g\"} 60.0"));
/// ```
#[derive(Debug)]
pub struct RulesCollector(Arc<tidemark_rules::RuleManager>);

impl RulesCollector {
    /// A collector over `manager`'s groups (whichever are loaded at each
    /// scrape; a reload needs no new collector).
    pub fn new(manager: Arc<tidemark_rules::RuleManager>) -> RulesCollector {
        RulesCollector(manager)
    }
}

impl prometheus_client::collector::Collector for RulesCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let groups: Vec<(String, std::time::Duration, usize, tidemark_rules::GroupStats)> =
            self.0.groups().iter().map(|g| (g.key(), g.interval(), g.rules().len(), g.stats())).collect();
        // Prometheus' client leaves out a family without series; so do we.
        if groups.is_empty() {
            return Ok(());
        }
        type Stats = tidemark_rules::GroupStats;
        let label = |key: &str| vec![("rule_group", key.to_owned())];
        let counters = |f: &dyn Fn(&Stats) -> u64| -> Vec<(Vec<(&'static str, String)>, u64)> {
            groups.iter().map(|(k, _, _, s)| (label(k), f(s))).collect()
        };
        let gauges =
            |f: &dyn Fn(std::time::Duration, usize, &Stats) -> f64| -> Vec<(Vec<(&'static str, String)>, f64)> {
                groups.iter().map(|(k, interval, rules, s)| (label(k), f(*interval, *rules, s))).collect()
            };
        gauge_family(
            &mut enc,
            "tidemark_rule_group_last_duration_seconds",
            "The duration of the last rule group evaluation.",
            &gauges(&|_, _, s| s.last_duration.as_secs_f64()),
        )?;
        gauge_family(
            &mut enc,
            "tidemark_rule_group_last_evaluation_timestamp_seconds",
            "The timestamp of the last rule group evaluation in seconds (its evaluation time, not when it ran).",
            &gauges(&|_, _, s| s.last_eval_timestamp_ms as f64 / 1000.0),
        )?;
        gauge_family(
            &mut enc,
            "tidemark_rule_group_interval_seconds",
            "The interval of a rule group.",
            &gauges(&|interval, _, _| interval.as_secs_f64()),
        )?;
        counter_family(
            &mut enc,
            "tidemark_rule_group_iterations_missed",
            "The total number of rule group evaluations missed due to slow rule group evaluation.",
            &counters(&|s| s.iterations_missed),
        )?;
        counter_family(
            &mut enc,
            "tidemark_rule_group_iterations",
            "The total number of scheduled rule group evaluations, whether executed or missed.",
            &counters(&|s| s.iterations_scheduled),
        )?;
        counter_family(
            &mut enc,
            "tidemark_rule_evaluations",
            "The total number of rule evaluations.",
            &counters(&|s| s.rule_evaluations),
        )?;
        counter_family(
            &mut enc,
            "tidemark_rule_evaluation_failures",
            "The total number of rule evaluation failures.",
            &counters(&|s| s.rule_evaluation_failures),
        )?;
        gauge_family(
            &mut enc,
            "tidemark_rule_group_rules",
            "The number of rules.",
            &gauges(&|_, rules, _| rules as f64),
        )?;
        gauge_family(
            &mut enc,
            "tidemark_rule_group_last_evaluation_samples",
            "The number of samples returned during the last rule group evaluation.",
            &gauges(&|_, _, s| s.last_samples as f64),
        )?;
        // Set once the group has restored its alerts' `for` state, as in
        // Prometheus, whose series appears only then.
        let restored: Vec<(Vec<(&'static str, String)>, f64)> = groups
            .iter()
            .filter_map(|(k, _, _, s)| s.last_restore_duration.map(|d| (label(k), d.as_secs_f64())))
            .collect();
        if !restored.is_empty() {
            gauge_family(
                &mut enc,
                "tidemark_rule_group_last_restore_duration_seconds",
                "The duration of the last alert rules alerts restoration using the `ALERTS_FOR_STATE` series.",
                &restored,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_storage::Labels;

    #[test]
    fn storage_counters_follow_appends() {
        let db = Arc::new(Db::in_memory().unwrap());
        let mut app = db.appender();
        app.append(&Labels::new([("__name__", "up")]).unwrap(), 1_000, 1.0).unwrap();
        app.commit().unwrap();
        let text = ServerMetrics::new(db).encode();
        assert!(text.contains("tidemark_head_series 1\n"), "{text}");
        assert!(text.contains("tidemark_samples_appended_total 1\n"), "{text}");
        assert!(text.contains("tidemark_retention_deletions_total{reason=\"size\"} 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn latency_histogram_counts_by_handler() {
        let m = ServerMetrics::new(Arc::new(Db::in_memory().unwrap()));
        m.observe_request("/api/v1/query_range", 200, 0.001);
        m.observe_request("/api/v1/query_range", 200, 2.0);
        m.observe_request("/api/v1/query_range", 400, 0.0001);
        let text = m.encode();
        assert!(
            text.contains("tidemark_http_request_duration_seconds_count{handler=\"/api/v1/query_range\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tidemark_http_requests_total{handler=\"/api/v1/query_range\",code=\"400\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        let text = ServerMetrics::new(Arc::new(Db::in_memory().unwrap())).encode();
        assert!(text.contains("process_start_time_seconds "), "{text}");
        if cfg!(target_os = "linux") {
            let rss_line = text.lines().find(|l| l.starts_with("process_resident_memory_bytes ")).expect(&text);
            let rss: f64 = rss_line.split(' ').nth(1).unwrap().parse().unwrap();
            assert!(rss > 1e6, "{rss_line}");
        }
    }

    #[test]
    fn rule_group_metrics_follow_evaluations_failures_and_restoration() {
        use std::time::Duration;
        use tidemark_rules::{GroupSpec, RuleEnv, RuleManager, RuleSpec};

        let db = Arc::new(Db::in_memory().unwrap());
        let env = RuleEnv::new(db, Arc::new(tidemark_promql::Engine::default()));
        let manager = Arc::new(RuleManager::unscheduled(env));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RulesCollector::new(manager.clone())));
        let encode = |r: &Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, r).unwrap();
            text
        };
        // No groups: no rule families at all.
        assert!(!encode(&registry).contains("tidemark_rule"), "{}", encode(&registry));

        let a = GroupSpec {
            file: "rules/a.yml".into(),
            ..GroupSpec::new("ok")
                .interval(Duration::from_millis(1500))
                .rule(RuleSpec::recording("two", "vector(1) or label_replace(vector(2), \"x\", \"y\", \"\", \"\")"))
                .rule(RuleSpec::alerting("Always", "vector(1)").for_duration(Duration::from_secs(3600)))
        };
        let b = GroupSpec {
            file: "rules/b.yml".into(),
            // Both results get the same labels: the rule fails every time.
            ..GroupSpec::new("bad").rule(
                RuleSpec::recording("dup", "vector(1) or label_replace(vector(2), \"x\", \"y\", \"\", \"\")")
                    .label("x", "same"),
            )
        };
        manager.update(vec![a, b]).unwrap();
        let groups = manager.groups();
        assert_eq!(groups.len(), 2);
        groups[0].eval_iteration(1_700_000_000_000);
        groups[0].eval_iteration(1_700_000_001_500);
        groups[1].eval_iteration(1_700_000_000_250);
        groups[1].count_missed(3);
        // The first update of a manager restores `for` state.
        assert!(groups[0].should_restore());
        groups[0].restore_for_state(1_700_000_002_000);

        let text = encode(&registry);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        has("tidemark_rule_group_last_evaluation_timestamp_seconds{rule_group=\"rules/a.yml;ok\"} 1700000001.5");
        has("tidemark_rule_group_last_evaluation_timestamp_seconds{rule_group=\"rules/b.yml;bad\"} 1700000000.25");
        has("tidemark_rule_group_interval_seconds{rule_group=\"rules/a.yml;ok\"} 1.5");
        has("tidemark_rule_group_interval_seconds{rule_group=\"rules/b.yml;bad\"} 60.0");
        has("tidemark_rule_group_iterations_total{rule_group=\"rules/a.yml;ok\"} 2");
        has("tidemark_rule_group_iterations_total{rule_group=\"rules/b.yml;bad\"} 4");
        has("tidemark_rule_group_iterations_missed_total{rule_group=\"rules/a.yml;ok\"} 0");
        has("tidemark_rule_group_iterations_missed_total{rule_group=\"rules/b.yml;bad\"} 3");
        has("tidemark_rule_evaluations_total{rule_group=\"rules/a.yml;ok\"} 4");
        has("tidemark_rule_evaluations_total{rule_group=\"rules/b.yml;bad\"} 1");
        has("tidemark_rule_evaluation_failures_total{rule_group=\"rules/a.yml;ok\"} 0");
        has("tidemark_rule_evaluation_failures_total{rule_group=\"rules/b.yml;bad\"} 1");
        has("tidemark_rule_group_rules{rule_group=\"rules/a.yml;ok\"} 2.0");
        has("tidemark_rule_group_rules{rule_group=\"rules/b.yml;bad\"} 1.0");
        // Two recorded series; the alert's `ALERTS` samples are written only
        // after restoration, which came after these evaluations.
        has("tidemark_rule_group_last_evaluation_samples{rule_group=\"rules/a.yml;ok\"} 2.0");
        has("tidemark_rule_group_last_evaluation_samples{rule_group=\"rules/b.yml;bad\"} 0.0");
        has("# TYPE tidemark_rule_group_last_duration_seconds gauge");
        has("# TYPE tidemark_rule_evaluations counter");
        for key in ["rules/a.yml;ok", "rules/b.yml;bad"] {
            let prefix = format!("tidemark_rule_group_last_duration_seconds{{rule_group=\"{key}\"}} ");
            let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix} in\n{text}"));
            let v: f64 = line[prefix.len()..].parse().unwrap();
            assert!(v > 0.0 && v < 60.0, "{line}");
        }
        // Only the group that restored has a restore duration.
        assert!(
            text.contains("tidemark_rule_group_last_restore_duration_seconds{rule_group=\"rules/a.yml;ok\"} "),
            "{text}"
        );
        assert!(
            !text.contains("tidemark_rule_group_last_restore_duration_seconds{rule_group=\"rules/b.yml;bad\"}"),
            "{text}"
        );
    }
}

//! The remote-write load the comparison sends: a synthetic fleet of hosts at
//! any scale, or the real capture in `../shared/data` replayed, built once
//! into snappy-compressed remote write 1.0 requests so every system receives
//! byte-identical bodies.
//!
//! # The synthetic fleet
//!
//! Each host runs two scrape targets, the way a service is monitored in
//! practice:
//!
//! * `job="node"`, a node_exporter: ~120 series of CPU-mode counters with
//!   two decimals (`node_cpu_seconds_total`), byte counters, page-aligned
//!   memory gauges, load averages with two decimals, filesystem sizes;
//! * a service (`job` one of five, named as in `seed-queries.md`): per
//!   route and status `http_requests_total` counters; a classic
//!   `http_request_duration_seconds` histogram per route (12 buckets, `_sum`
//!   with full float precision, `_count`), built from one log-normal
//!   latency distribution so buckets are cumulative and monotonic in `le`;
//!   process and Go runtime gauges; application gauges, some with full
//!   float precision (`ml_model_accuracy_score`) as real services emit.
//!
//! One app target in 200 restarts once (its counters drop to zero), so the
//! `rate` family sees resets. Timestamps are Prometheus-aligned: each target
//! is scraped every interval at its own fixed offset (a multiple of 10 ms,
//! from a hash of the target, as Prometheus spreads targets), and one scrape
//! in ten is a few milliseconds late, as Prometheus' scrape loop is when the
//! machine is busy. Offsets and jitter are even milliseconds, so query times
//! ending in an odd millisecond never fall on a sample (where Prometheus 2.42
//! and 3.x would read different samples).
//!
//! # Requests
//!
//! Requests are built as Prometheus' queue manager sends them: series are
//! sharded over senders (by target here, which keeps a target's samples
//! together), each request holds up to `per_request` samples with one
//! `TimeSeries` per sample and its labels repeated, in scrape order, so each
//! sender's stream is in time order per series.

use prost::Message;
use tidemark_remote::proto::v1;

use super::CompareError;
use crate::capture::load_capture;
use crate::promql_data::Rng;

/// Scrape interval of the synthetic fleet.
pub const SYNTHETIC_INTERVAL_MS: i64 = 15_000;

/// The latest a late scrape comes after its slot (see `TargetState::jitter`).
const MAX_JITTER_MS: i64 = 24;

/// How far the newest sample of a synthetic load of `samples_per_series`
/// rounds can be from the start of its first round: the last round's
/// start, plus a target's offset (under one interval) and a late scrape's
/// jitter.
pub fn synthetic_span_ms(samples_per_series: usize) -> i64 {
    (samples_per_series as i64 - 1).max(0) * SYNTHETIC_INTERVAL_MS + SYNTHETIC_INTERVAL_MS + MAX_JITTER_MS
}

/// One series: its label pairs, sorted by name, `__name__` included.
pub type SeriesLabels = Vec<(String, String)>;

/// A load: every series and its samples, generated round by round.
pub struct Load {
    /// What it is, for the report ("synthetic, 100000 series", "capture …").
    pub description: String,
    /// Short machine-readable kind: `synthetic` or `capture`.
    pub kind: LoadKind,
    /// Every series' labels; a series' index is its position here.
    pub series: Vec<SeriesLabels>,
    /// The scrape targets: ranges of series indexes scraped together.
    pub targets: Vec<std::ops::Range<usize>>,
    /// Samples in the load (NaN included).
    pub samples: u64,
    /// Samples whose value is NaN (MetricsQL's `count_over_time` skips them).
    pub nan_samples: u64,
    /// No sample is older than this (ms).
    pub first_ms: i64,
    /// No sample is newer than this (ms).
    pub last_ms: i64,
    /// Routes of each host's service (synthetic fleet; empty otherwise).
    routes: Vec<usize>,
    source: Source,
}

/// One remote-write request body and how many samples it carries.
pub struct Request {
    /// Snappy-compressed `WriteRequest`.
    pub body: Vec<u8>,
    /// Samples in it.
    pub samples: u32,
}

/// Which kind of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    /// The synthetic fleet.
    Synthetic,
    /// The real capture replayed.
    Capture,
}

enum Source {
    Synthetic(SyntheticOptions),
    /// Per series, its samples `(t, v)`, already shifted in time.
    Capture(Vec<Vec<(i64, f64)>>),
}

/// Shape of the synthetic fleet.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticOptions {
    /// Total series (the last host is cut short to hit it exactly).
    pub series: usize,
    /// Scrape targets (two per host). `None`: hosts of the default shape
    /// (services with 5 routes, ~219 series per host) until `series` is
    /// reached. `Some(n)`: `n / 2` hosts whose services get as many routes
    /// as it takes to reach `series` (busier services, as in production).
    pub targets: Option<usize>,
    /// Samples per series.
    pub samples_per_series: usize,
    /// The last scrape round starts here (ms); each target adds its offset.
    pub end_ms: i64,
    /// Generator seed.
    pub seed: u64,
}

impl Load {
    /// The synthetic fleet of `opts.series` series.
    pub fn synthetic(opts: SyntheticOptions) -> Load {
        let routes = routes_per_host(opts.series, opts.targets);
        let mut series = Vec::with_capacity(opts.series);
        let mut targets = Vec::new();
        let mut host = 0usize;
        while series.len() < opts.series {
            let r = routes.get(host).copied().unwrap_or(ROUTES.len());
            for target in host_targets(host, r) {
                let start = series.len();
                for family in &target.families {
                    for labels in family.series_labels(&target) {
                        if series.len() < opts.series {
                            series.push(labels);
                        }
                    }
                }
                if series.len() > start {
                    targets.push(start..series.len());
                }
            }
            host += 1;
        }
        let routes = (0..host).map(|h| routes.get(h).copied().unwrap_or(ROUTES.len())).collect::<Vec<_>>();
        let rounds = opts.samples_per_series as i64;
        let first_round = opts.end_ms - (rounds - 1) * SYNTHETIC_INTERVAL_MS;
        let (min_routes, max_routes) =
            (routes.iter().copied().min().unwrap_or(0), routes.iter().copied().max().unwrap_or(0));
        let route_text =
            if min_routes == max_routes { format!("{min_routes}") } else { format!("{min_routes}–{max_routes}") };
        Load {
            description: format!(
                "synthetic fleet: {} series, {} targets ({} hosts × node_exporter + service with {} routes), {} samples per series at 15 s ({:.2} h)",
                opts.series,
                targets.len(),
                host,
                route_text,
                opts.samples_per_series,
                opts.samples_per_series as f64 * SYNTHETIC_INTERVAL_MS as f64 / 3.6e6
            ),
            kind: LoadKind::Synthetic,
            samples: opts.series as u64 * opts.samples_per_series as u64,
            nan_samples: 0,
            // Bounds: targets scrape at an offset under one interval, plus
            // a late scrape's jitter.
            first_ms: first_round,
            last_ms: opts.end_ms + SYNTHETIC_INTERVAL_MS + MAX_JITTER_MS,
            series,
            targets,
            routes,
            source: Source::Synthetic(opts),
        }
    }

    /// The capture at `path`, shifted so its last sample is at `end_ms`.
    pub fn capture(path: &std::path::Path, end_ms: i64) -> Result<Load, CompareError> {
        Load::capture_placed(path, |_| Ok(end_ms))
    }

    /// The capture at `path`, shifted so its last sample is at
    /// `end_for(span)`, where `span` is its last sample's time minus its
    /// first's.
    pub fn capture_placed(
        path: &std::path::Path,
        end_for: impl FnOnce(i64) -> Result<i64, CompareError>,
    ) -> Result<Load, CompareError> {
        let data = load_capture(path)
            .map_err(|e| CompareError::Setup(format!("cannot read the capture {}: {e}", path.display())))?;
        let last = data.iter().filter_map(|(_, s)| s.last().map(|s| s.t)).max();
        let first = data.iter().filter_map(|(_, s)| s.first().map(|s| s.t)).min();
        let (Some(first), Some(last)) = (first, last) else {
            return Err(CompareError::Setup(format!("the capture {} is empty", path.display())));
        };
        let end_ms = end_for(last - first)?;
        let shift = end_ms - last;
        let mut series = Vec::with_capacity(data.len());
        let mut samples = Vec::with_capacity(data.len());
        let (mut count, mut nan) = (0u64, 0u64);
        for (labels, points) in data {
            series.push(labels.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect());
            count += points.len() as u64;
            nan += points.iter().filter(|p| p.v.is_nan()).count() as u64;
            samples.push(points.into_iter().map(|p| (p.t + shift, p.v)).collect());
        }
        // The capture's series come from two targets (node_exporter and
        // Prometheus itself); each series is sharded on its own.
        let targets = (0..series.len()).map(|i| i..i + 1).collect();
        Ok(Load {
            description: format!(
                "real capture {} ({} series, {count} samples, 5 s scrapes over {:.0} min)",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
                series.len(),
                (last - first) as f64 / 60_000.0
            ),
            kind: LoadKind::Capture,
            samples: count,
            nan_samples: nan,
            first_ms: first + shift,
            last_ms: end_ms,
            series,
            targets,
            routes: Vec::new(),
            source: Source::Capture(samples),
        })
    }

    /// Distinct metric names, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .series
            .iter()
            .filter_map(|l| l.iter().find(|(n, _)| n == "__name__").map(|(_, v)| v.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Scrape rounds in the load: samples per series (synthetic), or the
    /// longest series' sample count (capture, replayed round-robin).
    pub fn rounds(&self) -> usize {
        match &self.source {
            Source::Synthetic(opts) => opts.samples_per_series,
            Source::Capture(samples) => samples.iter().map(Vec::len).max().unwrap_or(0),
        }
    }

    /// Query time once the first `rounds` scrape rounds are stored: just
    /// after their last sample, on an odd millisecond (sample timestamps of
    /// the synthetic load are even, so no range window starts exactly on a
    /// sample, where Prometheus 2.42 and 3.x read different samples). For
    /// the capture, only the whole load has a time (`last_ms + 1`).
    pub fn time_after_rounds(&self, rounds: usize) -> i64 {
        let t = match &self.source {
            Source::Synthetic(opts) if rounds < opts.samples_per_series => {
                let first_round = opts.end_ms - (opts.samples_per_series as i64 - 1) * SYNTHETIC_INTERVAL_MS;
                // Round `rounds - 1` starts at first_round + (rounds - 1) ×
                // interval; its samples are under one interval plus jitter later.
                first_round + rounds as i64 * SYNTHETIC_INTERVAL_MS + MAX_JITTER_MS + 1
            }
            _ => self.last_ms + 1,
        };
        if t % 2 == 0 {
            t + 1
        } else {
            t
        }
    }

    /// Calls `f(series, t, v)` for every sample in scrape order: round by
    /// round, target by target, so each series' samples come in time order.
    pub fn for_each_sample(&self, f: impl FnMut(usize, i64, f64)) {
        self.cursor().advance(usize::MAX, f);
    }

    /// A cursor at the first scrape round.
    pub fn cursor(&self) -> SampleCursor<'_> {
        let state = match &self.source {
            Source::Capture(samples) => CursorState::Capture { next: vec![0; samples.len()] },
            Source::Synthetic(opts) => {
                let mut rng = Rng(opts.seed);
                let states = self
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(i, r)| TargetState::new(i, r.len(), self.routes.get(i / 2).copied().unwrap_or(0), &mut rng))
                    .collect();
                CursorState::Synthetic { rng, states, values: Vec::new() }
            }
        };
        SampleCursor { load: self, round: 0, state }
    }

    /// Builds all the requests at once: for each of `senders`, its
    /// snappy-compressed `WriteRequest` bodies in send order. `progress` is
    /// told how many samples have been encoded so far.
    pub fn build_requests(&self, senders: usize, per_request: usize, progress: impl FnMut(u64)) -> Vec<Vec<Request>> {
        self.request_builder(senders, per_request).next_rounds(usize::MAX, progress)
    }

    /// A builder that encodes the load a few scrape rounds at a time, so a
    /// load whose request bodies would not fit in memory (1 M series, hours
    /// of data) is sent phase by phase. Concatenating its phases gives
    /// requests carrying the same samples in the same order per sender as
    /// [`Load::build_requests`] (a phase ends with a short request per
    /// sender).
    pub fn request_builder(&self, senders: usize, per_request: usize) -> RequestBuilder<'_> {
        let senders = senders.max(1);
        // Each series' labels encoded once as the `labels` fields of a
        // `TimeSeries`; a sample's `TimeSeries` is those bytes plus its
        // `samples` field, exactly what prost writes for the whole message.
        let label_bytes: Vec<Vec<u8>> = self
            .series
            .iter()
            .map(|labels| {
                v1::TimeSeries {
                    labels: labels.iter().map(|(n, v)| v1::Label { name: n.clone(), value: v.clone() }).collect(),
                    ..Default::default()
                }
                .encode_to_vec()
            })
            .collect();
        let mut shard_of = vec![0usize; self.series.len()];
        for (i, target) in self.targets.iter().enumerate() {
            for s in target.clone() {
                shard_of[s] = i % senders;
            }
        }
        RequestBuilder {
            cursor: self.cursor(),
            label_bytes,
            shard_of,
            senders,
            per_request: per_request.max(1),
            encoder: snap::raw::Encoder::new(),
            done: 0,
        }
    }
}

/// Where a walk through a load's samples is: the next scrape round and,
/// for the synthetic fleet, the generator's state.
pub struct SampleCursor<'a> {
    load: &'a Load,
    round: usize,
    state: CursorState,
}

enum CursorState {
    /// Per series, the index of its next sample.
    Capture {
        next: Vec<usize>,
    },
    Synthetic {
        rng: Rng,
        states: Vec<TargetState>,
        values: Vec<f64>,
    },
}

impl SampleCursor<'_> {
    /// Rounds already walked.
    pub fn round(&self) -> usize {
        self.round
    }

    /// Whether every round has been walked.
    pub fn finished(&self) -> bool {
        self.round >= self.load.rounds()
    }

    /// Calls `f(series, t, v)` for every sample of the next `rounds` scrape
    /// rounds (fewer at the end of the load), in scrape order.
    pub fn advance(&mut self, rounds: usize, mut f: impl FnMut(usize, i64, f64)) {
        let end = self.round.saturating_add(rounds).min(self.load.rounds());
        match (&mut self.state, &self.load.source) {
            (CursorState::Capture { next }, Source::Capture(samples)) => {
                for _ in self.round..end {
                    for (i, s) in samples.iter().enumerate() {
                        if let Some(&(t, v)) = s.get(next[i]) {
                            next[i] += 1;
                            f(i, t, v);
                        }
                    }
                }
            }
            (CursorState::Synthetic { rng, states, values }, Source::Synthetic(opts)) => {
                let first_round = opts.end_ms - (opts.samples_per_series as i64 - 1) * SYNTHETIC_INTERVAL_MS;
                for round in self.round..end {
                    let base = first_round + round as i64 * SYNTHETIC_INTERVAL_MS;
                    for (target, state) in self.load.targets.iter().zip(states.iter_mut()) {
                        let t = base + state.offset_ms + state.jitter(rng);
                        values.clear();
                        state.scrape(round, rng, values);
                        for (k, v) in values.iter().take(target.len()).enumerate() {
                            f(target.start + k, t, *v);
                        }
                    }
                }
            }
            // A cursor is made by its load (`Load::cursor`), so its state
            // always matches the load's source.
            _ => {}
        }
        self.round = end;
    }
}

/// Encodes a load into remote-write requests a phase at a time; see
/// [`Load::request_builder`].
pub struct RequestBuilder<'a> {
    cursor: SampleCursor<'a>,
    label_bytes: Vec<Vec<u8>>,
    shard_of: Vec<usize>,
    senders: usize,
    per_request: usize,
    encoder: snap::raw::Encoder,
    done: u64,
}

impl RequestBuilder<'_> {
    /// Rounds encoded so far.
    pub fn round(&self) -> usize {
        self.cursor.round()
    }

    /// Whether the whole load has been encoded.
    pub fn finished(&self) -> bool {
        self.cursor.finished()
    }

    /// The requests of the next `rounds` scrape rounds: for each sender,
    /// its bodies in send order. `progress` is told how many samples have
    /// been encoded since the builder was made.
    pub fn next_rounds(&mut self, rounds: usize, mut progress: impl FnMut(u64)) -> Vec<Vec<Request>> {
        let (label_bytes, shard_of, per_request) = (&self.label_bytes, &self.shard_of, self.per_request);
        let encoder = &mut self.encoder;
        let done = &mut self.done;
        let mut out: Vec<Vec<Request>> = (0..self.senders).map(|_| Vec::new()).collect();
        let mut pending: Vec<(Vec<u8>, usize)> = vec![(Vec::new(), 0); self.senders];
        self.cursor.advance(rounds, |series, t, v| {
            let shard = shard_of[series];
            let sample = v1::Sample { value: v, timestamp: t };
            let labels = &label_bytes[series];
            // The `TimeSeries` goes straight into the body: its length is
            // known up front, so no per-sample scratch buffer is copied.
            let len = labels.len() + prost::encoding::message::encoded_len(2, &sample);
            let (body, n) = &mut pending[shard];
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, body);
            prost::encoding::encode_varint(len as u64, body);
            body.extend_from_slice(labels);
            prost::encoding::message::encode(2, &sample, body);
            *n += 1;
            if *n == per_request {
                out[shard].push(Request { body: encoder.compress_vec(body).unwrap_or_default(), samples: *n as u32 });
                body.clear();
                *n = 0;
            }
            *done += 1;
            if done.is_multiple_of(100_000) {
                progress(*done);
            }
        });
        for (shard, (body, n)) in pending.into_iter().enumerate() {
            if n > 0 {
                out[shard].push(Request { body: encoder.compress_vec(&body).unwrap_or_default(), samples: n as u32 });
            }
        }
        progress(*done);
        out
    }
}

/// A scrape target of the synthetic fleet and the families it exposes.
struct TargetSpec {
    job: String,
    instance: String,
    families: Vec<Family>,
}

/// A metric family of a target, as the series it yields and how they move.
#[derive(Clone)]
enum Family {
    /// A counter; `decimals` of precision (0: integer counts).
    Counter { name: &'static str, labels: Vec<(&'static str, String)>, decimals: i32 },
    /// A gauge with `decimals` of precision (`None`: full float precision),
    /// rounded to a multiple of `quantum` when set (page-sized memory).
    Gauge { name: &'static str, labels: Vec<(&'static str, String)>, decimals: Option<i32>, quantum: f64 },
    /// A constant (`up`).
    Constant { name: &'static str, value: f64 },
    /// A classic histogram of request latency for one route.
    Histogram { name: &'static str, route: String },
}

/// Bucket bounds of the classic client-library default histogram.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Family {
    fn series_labels(&self, target: &TargetSpec) -> Vec<SeriesLabels> {
        let make = |name: String, extra: &[(&str, String)]| {
            let mut l: SeriesLabels = vec![
                ("__name__".into(), name),
                ("instance".into(), target.instance.clone()),
                ("job".into(), target.job.clone()),
            ];
            l.extend(extra.iter().map(|(n, v)| (n.to_string(), v.clone())));
            l.sort();
            l
        };
        match self {
            Family::Counter { name, labels, .. } | Family::Gauge { name, labels, .. } => {
                vec![make(name.to_string(), labels)]
            }
            Family::Constant { name, .. } => vec![make(name.to_string(), &[])],
            Family::Histogram { name, route } => {
                let mut out: Vec<SeriesLabels> = BUCKETS
                    .iter()
                    .map(|le| format_le(*le))
                    .chain(std::iter::once("+Inf".to_string()))
                    .map(|le| make(format!("{name}_bucket"), &[("route", route.to_string()), ("le", le)]))
                    .collect();
                out.push(make(format!("{name}_sum"), &[("route", route.to_string())]));
                out.push(make(format!("{name}_count"), &[("route", route.to_string())]));
                out
            }
        }
    }

    fn series_count(&self) -> usize {
        match self {
            Family::Histogram { .. } => BUCKETS.len() + 3,
            _ => 1,
        }
    }
}

/// `le` as Go's client libraries print it (shortest float form).
fn format_le(le: f64) -> String {
    format!("{le}")
}

const SERVICE_JOBS: [&str; 5] = ["api-gateway", "video-ingestion", "ml-pipeline", "analytics-engine", "hypersdk"];
/// The routes of the default service; busier services (a fleet with a set
/// number of targets) add [`MORE_ROUTES`], then numbered ones.
const ROUTES: [&str; 5] = ["/api/users", "/api/orders", "/api/search", "/api/upload", "/health"];
const MORE_ROUTES: [&str; 11] = [
    "/api/carts",
    "/api/payments",
    "/api/sessions",
    "/api/products",
    "/api/reviews",
    "/api/inventory",
    "/api/shipping",
    "/api/notifications",
    "/api/recommendations",
    "/api/accounts",
    "/metrics",
];

/// Series of a service's histogram and counters per route: 5 status
/// counters, 12 buckets, `_sum` and `_count`.
const SERIES_PER_ROUTE: usize = 5 + BUCKETS.len() + 3;

/// Route number `i` of a service.
fn route_name(i: usize) -> String {
    match i.checked_sub(ROUTES.len()) {
        None => ROUTES[i].to_string(),
        Some(j) if j < MORE_ROUTES.len() => MORE_ROUTES[j].to_string(),
        Some(j) => format!("/api/v2/resource{}", j - MORE_ROUTES.len()),
    }
}

/// How many routes each host's service has, for `series` series over
/// `targets` targets (two per host): the routes the total needs beyond
/// every host's fixed series, spread evenly (the first hosts get one more).
/// `None` (the default shape): empty, i.e. [`ROUTES`]'s 5 everywhere.
fn routes_per_host(series: usize, targets: Option<usize>) -> Vec<usize> {
    let Some(targets) = targets else { return Vec::new() };
    let hosts = (targets / 2).max(1);
    let fixed = series_of(&node_families()) + series_of(&service_families(0));
    let needed = series.saturating_sub(hosts * fixed).div_ceil(SERIES_PER_ROUTE);
    (0..hosts).map(|h| (needed / hosts + usize::from(h < needed % hosts)).max(1)).collect()
}

fn series_of(families: &[Family]) -> usize {
    families.iter().map(Family::series_count).sum()
}

/// The two targets of host `host`: its node_exporter and its service
/// with `routes` routes.
fn host_targets(host: usize, routes: usize) -> [TargetSpec; 2] {
    let ip = format!("10.{}.{}.{}", host >> 16 & 255, host >> 8 & 255, host & 255);
    [
        TargetSpec { job: "node".into(), instance: format!("{ip}:9100"), families: node_families() },
        TargetSpec {
            job: SERVICE_JOBS[host % SERVICE_JOBS.len()].into(),
            instance: format!("{ip}:8080"),
            families: service_families(routes),
        },
    ]
}

fn counter(name: &'static str, labels: Vec<(&'static str, String)>, decimals: i32) -> Family {
    Family::Counter { name, labels, decimals }
}

fn gauge(name: &'static str, labels: Vec<(&'static str, String)>, decimals: Option<i32>, quantum: f64) -> Family {
    Family::Gauge { name, labels, decimals, quantum }
}

/// What node_exporter exposes for a 4-CPU host with two disks (~120 series).
fn node_families() -> Vec<Family> {
    let mut out = Vec::new();
    for cpu in 0..4 {
        for mode in ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"] {
            out.push(counter("node_cpu_seconds_total", vec![("cpu", cpu.to_string()), ("mode", mode.into())], 2));
        }
    }
    for dev in ["eth0", "lo"] {
        for (name, decimals) in [
            ("node_network_receive_bytes_total", 0),
            ("node_network_transmit_bytes_total", 0),
            ("node_network_receive_packets_total", 0),
            ("node_network_transmit_packets_total", 0),
            ("node_network_receive_errs_total", 0),
            ("node_network_transmit_errs_total", 0),
            ("node_network_receive_drop_total", 0),
            ("node_network_transmit_drop_total", 0),
        ] {
            out.push(counter(name, vec![("device", dev.into())], decimals));
        }
    }
    for dev in ["nvme0n1", "sda"] {
        for (name, decimals) in [
            ("node_disk_reads_completed_total", 0),
            ("node_disk_writes_completed_total", 0),
            ("node_disk_read_bytes_total", 0),
            ("node_disk_written_bytes_total", 0),
            ("node_disk_io_time_seconds_total", 3),
        ] {
            out.push(counter(name, vec![("device", dev.into())], decimals));
        }
    }
    for (dev, fstype, mount) in
        [("/dev/nvme0n1p2", "ext4", "/"), ("/dev/nvme0n1p1", "vfat", "/boot/efi"), ("tmpfs", "tmpfs", "/run")]
    {
        for name in ["node_filesystem_size_bytes", "node_filesystem_avail_bytes", "node_filesystem_free_bytes"] {
            out.push(gauge(
                name,
                vec![("device", dev.into()), ("fstype", fstype.into()), ("mountpoint", mount.into())],
                Some(0),
                4096.0,
            ));
        }
    }
    for name in [
        "node_memory_MemTotal_bytes",
        "node_memory_MemFree_bytes",
        "node_memory_MemAvailable_bytes",
        "node_memory_Buffers_bytes",
        "node_memory_Cached_bytes",
        "node_memory_Active_bytes",
        "node_memory_Inactive_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_SwapFree_bytes",
        "node_memory_Dirty_bytes",
        "node_memory_AnonPages_bytes",
        "node_memory_Mapped_bytes",
        "node_memory_Shmem_bytes",
        "node_memory_Slab_bytes",
        "node_memory_SReclaimable_bytes",
        "node_memory_SUnreclaim_bytes",
        "node_memory_KernelStack_bytes",
        "node_memory_PageTables_bytes",
        "node_memory_Committed_AS_bytes",
        "node_memory_VmallocUsed_bytes",
    ] {
        out.push(gauge(name, vec![], Some(0), 4096.0));
    }
    for name in ["node_load1", "node_load5", "node_load15"] {
        out.push(gauge(name, vec![], Some(2), 0.0));
    }
    for name in ["node_procs_running", "node_procs_blocked", "node_filefd_allocated"] {
        out.push(gauge(name, vec![], Some(0), 0.0));
    }
    for chip in 0..4 {
        out.push(gauge(
            "node_hwmon_temp_celsius",
            vec![("chip", "platform_coretemp_0".into()), ("sensor", format!("temp{}", chip + 1))],
            Some(1),
            0.0,
        ));
    }
    for name in ["node_context_switches_total", "node_intr_total", "node_forks_total"] {
        out.push(counter(name, vec![], 0));
    }
    out.push(counter("process_cpu_seconds_total", vec![], 2));
    for name in ["process_resident_memory_bytes", "go_memstats_alloc_bytes", "go_memstats_heap_inuse_bytes"] {
        out.push(gauge(name, vec![], Some(0), 8.0));
    }
    out.push(gauge("go_goroutines", vec![], Some(0), 0.0));
    out.push(Family::Constant { name: "up", value: 1.0 });
    out
}

/// What an instrumented service with `routes` routes exposes (18 series
/// plus 19 per route: 113 with the default 5 routes).
fn service_families(routes: usize) -> Vec<Family> {
    let mut out = Vec::new();
    let routes: Vec<String> = (0..routes).map(route_name).collect();
    for route in &routes {
        for (method, status) in [("GET", "200"), ("GET", "404"), ("GET", "500"), ("POST", "200"), ("POST", "503")] {
            out.push(counter(
                "http_requests_total",
                vec![("method", method.into()), ("route", route.clone()), ("status", status.into())],
                0,
            ));
        }
    }
    for route in routes {
        out.push(Family::Histogram { name: "http_request_duration_seconds", route });
    }
    out.push(counter("process_cpu_seconds_total", vec![], 2));
    for name in ["process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_alloc_bytes"] {
        out.push(gauge(name, vec![], Some(0), 8.0));
    }
    for name in ["process_open_fds", "go_goroutines", "websocket_active_connections", "socketio_connected_clients"] {
        out.push(gauge(name, vec![], Some(0), 0.0));
    }
    for pool in ["read", "write"] {
        for state in ["active", "idle"] {
            out.push(gauge("db_pool_connections", vec![("pool", pool.into()), ("state", state.into())], Some(0), 0.0));
        }
    }
    out.push(gauge("db_replication_lag_seconds", vec![], Some(3), 0.0));
    out.push(gauge("ml_model_accuracy_score", vec![], None, 0.0));
    out.push(gauge("ml_tasks_queued", vec![], Some(0), 0.0));
    out.push(counter("websocket_messages_total", vec![], 0));
    out.push(counter("websocket_batches_sent_total", vec![], 0));
    out.push(Family::Constant { name: "up", value: 1.0 });
    out
}

/// Where a target's series are, round to round.
struct TargetState {
    offset_ms: i64,
    families: Vec<FamilyState>,
    /// The round at which the target restarts (counters drop to 0), if any.
    restart_round: Option<usize>,
}

enum FamilyState {
    Counter { value: f64, per_scrape: f64, scale: f64 },
    Gauge { value: f64, level: f64, spread: f64, scale: f64, quantum: f64 },
    Constant(f64),
    Histogram { per_scrape: f64, median: f64, buckets: [f64; BUCKETS.len() + 1], sum: f64 },
}

impl TargetState {
    /// State for target number `index` (its kind follows from the fleet's
    /// layout: even targets are node_exporters, odd ones services with
    /// `routes` routes, 0 for the default).
    fn new(index: usize, series: usize, routes: usize, rng: &mut Rng) -> TargetState {
        let routes = if routes == 0 { ROUTES.len() } else { routes };
        let specs = host_targets(index / 2, routes);
        let spec = &specs[index % 2];
        let mut families = Vec::new();
        let mut covered = 0;
        for f in &spec.families {
            if covered >= series {
                break;
            }
            covered += f.series_count();
            families.push(FamilyState::new(f, rng));
        }
        // Prometheus spreads targets over the interval by a hash of the
        // target; offsets are multiples of 10 ms.
        let offset_ms = (rng.next_u64() % (SYNTHETIC_INTERVAL_MS as u64 / 10)) as i64 * 10;
        let restart_round = (index % 2 == 1 && rng.below(200) == 0).then(|| rng.below(1_000) as usize);
        TargetState { offset_ms, families, restart_round }
    }

    /// A late scrape now and then: 0 ms nine times in ten, else 2–24 ms.
    fn jitter(&self, rng: &mut Rng) -> i64 {
        if rng.below(10) == 0 {
            2 * (1 + rng.below(12) as i64)
        } else {
            0
        }
    }

    fn scrape(&mut self, round: usize, rng: &mut Rng, out: &mut Vec<f64>) {
        let restart = self.restart_round == Some(round);
        for f in &mut self.families {
            f.scrape(restart, rng, out);
        }
    }
}

impl FamilyState {
    fn new(f: &Family, rng: &mut Rng) -> FamilyState {
        match f {
            Family::Counter { decimals, .. } => {
                // Rates spread over five decades, as real counters do.
                let per_scrape = 10f64.powf(rng.unit() * 5.0 - 1.0);
                let scale = 10f64.powi(*decimals);
                FamilyState::Counter {
                    value: (rng.unit() * per_scrape * 10_000.0 * scale).round() / scale,
                    per_scrape,
                    scale,
                }
            }
            Family::Gauge { decimals, quantum, .. } => {
                let level = 10f64.powf(rng.unit() * 9.0);
                FamilyState::Gauge {
                    value: level,
                    level,
                    spread: level * 0.01,
                    scale: decimals.map_or(0.0, |d| 10f64.powi(d)),
                    quantum: *quantum,
                }
            }
            Family::Constant { value, .. } => FamilyState::Constant(*value),
            Family::Histogram { .. } => FamilyState::Histogram {
                per_scrape: 10f64.powf(rng.unit() * 4.0),
                // Median latency between 5 ms and 500 ms.
                median: 0.005 * 10f64.powf(rng.unit() * 2.0),
                buckets: [0.0; BUCKETS.len() + 1],
                sum: 0.0,
            },
        }
    }

    fn scrape(&mut self, restart: bool, rng: &mut Rng, out: &mut Vec<f64>) {
        match self {
            FamilyState::Counter { value, per_scrape, scale } => {
                if restart {
                    *value = 0.0;
                }
                let inc = poisson_like(*per_scrape, rng);
                *value = ((*value + inc) * *scale).round() / *scale;
                out.push(*value);
            }
            FamilyState::Gauge { value, level, spread, scale, quantum } => {
                // A mean-reverting walk around the level.
                *value += (rng.unit() - 0.5) * *spread + (*level - *value) * 0.05;
                let mut v = value.max(0.0);
                if *quantum > 0.0 {
                    v = (v / *quantum).round() * *quantum;
                } else if *scale > 0.0 {
                    v = (v * *scale).round() / *scale;
                } else {
                    // Full precision: a ratio such as an accuracy score.
                    v = 1.0 / (1.0 + (-v.ln()).exp());
                }
                out.push(v);
            }
            FamilyState::Constant(v) => out.push(*v),
            FamilyState::Histogram { per_scrape, median, buckets, sum } => {
                if restart {
                    *buckets = [0.0; BUCKETS.len() + 1];
                    *sum = 0.0;
                }
                let n = poisson_like(*per_scrape, rng).round();
                // Log-normal latencies (σ = 1): the share under each bound.
                // Rounding n × share is monotonic in the share, so the
                // cumulative counts stay monotonic in `le`.
                for (b, le) in buckets.iter_mut().zip(BUCKETS) {
                    let z = (le / *median).ln();
                    *b += (n * normal_cdf(z)).round();
                }
                buckets[BUCKETS.len()] += n;
                // Mean of a log-normal with σ = 1 is median × e^0.5; observed
                // sums scatter around it.
                *sum += n * *median * 1.648_721_270_700_128 * (0.8 + 0.4 * rng.unit());
                out.extend_from_slice(&buckets[..]);
                out.push(*sum);
                out.push(buckets[BUCKETS.len()]);
            }
        }
    }
}

/// A count of events in one scrape interval at mean `mean`: mean and
/// spread as a Poisson count's (uniform noise with its standard deviation
/// √mean), so a busy counter's increments vary by a few percent, not by
/// a factor, as request counters do.
fn poisson_like(mean: f64, rng: &mut Rng) -> f64 {
    (mean + mean.sqrt() * (rng.unit() - 0.5) * 12f64.sqrt()).max(0.0)
}

/// Φ(z), the standard normal CDF (Abramowitz–Stegun 7.1.26 on erf; ample
/// for shaping synthetic buckets).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + if x >= 0.0 { erf } else { -erf })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Load {
        Load::synthetic(SyntheticOptions {
            series: 1_000,
            targets: None,
            samples_per_series: 20,
            end_ms: 1_800_000_000_000,
            seed: 7,
        })
    }

    fn label<'a>(labels: &'a SeriesLabels, name: &str) -> Option<&'a str> {
        labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn default_hosts_have_219_series() {
        assert_eq!(series_of(&node_families()), 106);
        assert_eq!(series_of(&service_families(ROUTES.len())), 113);
        assert_eq!(series_of(&service_families(13)), 18 + 13 * SERIES_PER_ROUTE);
        let load = small();
        // 4 full hosts (876 series), the fifth cut short.
        assert_eq!(load.targets.len(), 10);
        assert_eq!(load.targets[0].len(), 106);
        assert_eq!(load.targets[1].len(), 113);
    }

    #[test]
    fn a_set_target_count_makes_busier_services() {
        // Issue 13's production shape: 2,000 targets, 368,695 series.
        let routes = routes_per_host(368_695, Some(2_000));
        assert_eq!(routes.len(), 1_000);
        let total: usize = routes.iter().map(|&r| 124 + r * SERIES_PER_ROUTE).sum();
        assert!(total >= 368_695 && total - 368_695 < SERIES_PER_ROUTE, "{total}");
        assert!(routes.iter().all(|&r| r == 12 || r == 13), "{:?}", &routes[..5]);
        // A small fleet of the same kind, checked series by series.
        let load = Load::synthetic(SyntheticOptions {
            series: 5_000,
            targets: Some(20),
            samples_per_series: 3,
            end_ms: 1_800_000_000_000,
            seed: 7,
        });
        assert_eq!(load.series.len(), 5_000);
        assert_eq!(load.targets.len(), 20);
        assert_eq!(load.targets.iter().map(|t| t.len()).sum::<usize>(), 5_000);
        let unique: std::collections::HashSet<_> = load.series.iter().collect();
        assert_eq!(unique.len(), 5_000, "no duplicate series");
        let jobs: std::collections::HashSet<_> = load.series.iter().filter_map(|l| label(l, "job")).collect();
        assert!(jobs.contains("node") && jobs.contains("api-gateway"), "{jobs:?}");
        let routes: std::collections::HashSet<_> = load.series.iter().filter_map(|l| label(l, "route")).collect();
        // (5,000 / 10 hosts − 124) / 19 ≈ 20 routes per service.
        assert!(routes.len() >= 19, "{routes:?}");
        let mut n = 0u64;
        load.for_each_sample(|_, _, _| n += 1);
        assert_eq!(n, load.samples);
    }

    #[test]
    fn phases_carry_the_same_samples_as_one_build() {
        let load = small();
        let whole = load.build_requests(3, 500, |_| {});
        let mut builder = load.request_builder(3, 500);
        let mut phased: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
        let mut phases = 0;
        while !builder.finished() {
            for (shard, requests) in builder.next_rounds(7, |_| {}).into_iter().enumerate() {
                phased[shard].extend(requests.into_iter().map(|r| r.body));
            }
            phases += 1;
        }
        assert_eq!(phases, 3, "20 rounds in phases of 7");
        assert_eq!(builder.round(), 20);
        // Decoded per sender, the phases give the same (labels, t, v)
        // stream as the single build.
        let decode = |bodies: Vec<&[u8]>| -> Vec<v1::TimeSeries> {
            let mut d = snap::raw::Decoder::new();
            bodies
                .into_iter()
                .flat_map(|b| {
                    v1::WriteRequest::decode(d.decompress_vec(b).expect("snappy").as_slice()).expect("pb").timeseries
                })
                .collect()
        };
        for shard in 0..3 {
            let a = decode(whole[shard].iter().map(|r| r.body.as_slice()).collect());
            let b = decode(phased[shard].iter().map(Vec::as_slice).collect());
            assert_eq!(a, b, "shard {shard}");
        }
    }

    #[test]
    fn query_times_follow_the_rounds_sent() {
        let load = small();
        let mut cursor = load.cursor();
        let last_t: Vec<i64> = (0..20)
            .map(|_| {
                let mut max_t = i64::MIN;
                cursor.advance(1, |_, t, _| max_t = max_t.max(t));
                max_t
            })
            .collect();
        for rounds in 1..=20 {
            let at = load.time_after_rounds(rounds);
            assert_eq!(at % 2, 1, "odd");
            assert!(at > last_t[rounds - 1], "after every sample sent");
            assert!(at <= load.last_ms + 1);
        }
        assert_eq!(load.time_after_rounds(20), crate::compare::queries::query_time(&load));
    }

    #[test]
    fn synthetic_has_the_requested_shape() {
        let load = small();
        assert_eq!(load.series.len(), 1_000);
        let mut per_series = vec![Vec::new(); 1_000];
        load.for_each_sample(|s, t, v| per_series[s].push((t, v)));
        assert!(per_series.iter().all(|s| s.len() == 20));
        assert_eq!(load.samples, 20_000);
        let mut seen = std::collections::HashSet::new();
        for (labels, samples) in load.series.iter().zip(&per_series) {
            assert!(labels.windows(2).all(|w| w[0].0 < w[1].0), "labels sorted and unique: {labels:?}");
            assert!(seen.insert(labels.clone()), "duplicate series {labels:?}");
            assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "time order");
            assert!(samples.iter().all(|(t, _)| t % 2 == 0), "even-millisecond timestamps");
            let name = &labels.iter().find(|(n, _)| n == "__name__").map(|(_, v)| v.as_str()).unwrap_or("");
            if name.ends_with("_total") {
                // A counter: it only drops when its target restarts (once).
                assert!(samples.windows(2).filter(|w| w[0].1 > w[1].1).count() <= 1, "{name} is a counter");
            }
        }
        assert!(load.first_ms < load.last_ms);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let load = small();
        let mut by_series: std::collections::HashMap<usize, Vec<f64>> = Default::default();
        load.for_each_sample(|s, _, v| by_series.entry(s).or_default().push(v));
        // Group bucket series by (instance, route), ordered by le.
        let mut groups: std::collections::BTreeMap<(String, String), Vec<(f64, usize)>> = Default::default();
        for (i, labels) in load.series.iter().enumerate() {
            let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("__name__").as_deref() == Some("http_request_duration_seconds_bucket") {
                let le: f64 = get("le")
                    .map(|s| if s == "+Inf" { f64::INFINITY } else { s.parse().unwrap_or(f64::NAN) })
                    .unwrap_or(f64::NAN);
                groups
                    .entry((get("instance").unwrap_or_default(), get("route").unwrap_or_default()))
                    .or_default()
                    .push((le, i));
            }
        }
        assert!(!groups.is_empty());
        for buckets in groups.values_mut() {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let columns: Vec<&Vec<f64>> = buckets.iter().map(|(_, s)| &by_series[s]).collect();
            for round in 0..20 {
                let counts: Vec<f64> = columns.iter().map(|c| c[round]).collect();
                assert!(counts.windows(2).all(|w| w[0] <= w[1]), "cumulative: {counts:?}");
            }
        }
    }

    #[test]
    fn requests_decode_to_the_load() {
        let load = small();
        let shards = load.build_requests(3, 777, |_| {});
        let mut got = 0u64;
        let mut decoder = snap::raw::Decoder::new();
        for shard in &shards {
            for r in shard {
                let raw = decoder.decompress_vec(&r.body).expect("snappy");
                let req = v1::WriteRequest::decode(raw.as_slice()).expect("protobuf");
                assert!(req.timeseries.len() <= 777);
                assert_eq!(req.timeseries.len(), r.samples as usize);
                for ts in &req.timeseries {
                    assert_eq!(ts.samples.len(), 1);
                    got += 1;
                }
                // Same bytes as prost's own encoding of the decoded message.
                assert_eq!(req.encode_to_vec(), raw);
            }
        }
        assert_eq!(got, load.samples);
    }
}

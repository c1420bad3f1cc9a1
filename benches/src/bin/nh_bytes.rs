//! Native-histogram bytes per sample, Tidemark against Prometheus 2.42, per
//! shape of histogram series.
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin nh_bytes -- [--series 200] [--hours 2] [--shapes latency,sparse,...] [--no-prometheus]
//! ```
//!
//! For each shape (see [`Shape`]) the tool generates `--series` series of
//! `--hours` hours at a 15 s scrape (deterministic: fixed seed, a few ms of
//! jitter per scrape, one counter reset per series with probability 1/2,
//! i.e. about one every 4 h), ending now, and then:
//!
//! * **Prometheus 2.42**: starts it on 127.0.0.1 with
//!   `--enable-feature=native-histograms --web.enable-remote-write-receiver
//!   --web.enable-admin-api` on a fresh directory, remote-writes the
//!   samples (1.0 protocol, in time order, 20 scrapes of every series per
//!   request), takes `POST /api/v1/admin/tsdb/snapshot` (the head written
//!   as one block) and measures that block's `chunks/` and `index` bytes;
//!   the block's `meta.json` sample count must equal what was sent;
//! * **Tidemark**: appends the same samples to a [`Db`], writes
//!   [`Db::snapshot`] (the head as one block, as Prometheus does) and
//!   measures the same files;
//! * reads every series of Tidemark's snapshot back (the snapshot opened as
//!   a database) and compares each histogram with what was appended, both
//!   sides `compact(0)`ed and counter-reset hints aside (a chunk encoding
//!   keeps a hint per chunk, not per sample), timestamps and every other
//!   field bit for bit.
//!
//! Prometheus 2.42 cannot store custom-bucket (NHCB) histograms: that shape
//! is measured on Tidemark alone. It accepts gauge histograms with float
//! counts but its snapshot of them fails ("detected unexpected counter
//! reset in histogram" while re-encoding a chunk): the tool prints the
//! error and measures Tidemark alone for that shape.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prost::Message;
use tidemark_remote::proto::v1;
use tidemark_storage::histogram::{
    CounterResetHint, FloatHistogram, Histogram, HistogramSample, HistogramValue, Span, CUSTOM_BUCKETS_SCHEMA,
};
use tidemark_storage::{Db, Labels, MatchOp, Matcher, Sample, SampleIterator};
use tidemark_testkit::{now_ms, Http, Prometheus, PrometheusConfig};

/// Scrape interval.
const STEP_MS: i64 = 15_000;
/// Scrapes of every series per remote-write request.
const SCRAPES_PER_REQUEST: usize = 20;
/// Prometheus' default zero threshold (2^-128).
const ZERO_THRESHOLD: f64 = 2.938735877055719e-39;

/// The shapes of series measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Request latency: a counter histogram at schema 3, a few observations
    /// (0–6) per scrape from a log-normal around 120 ms, ~10–20 populated
    /// buckets.
    Latency,
    /// A sparse counter histogram at schema 0: 0–2 observations per scrape
    /// over 0.25–16, 3–6 buckets, now and then one in the zero bucket.
    Sparse,
    /// A wide counter histogram at schema 8: 20–60 observations per scrape
    /// whose centre drifts over the hours, ~100 populated buckets and more
    /// appearing at the edge as the centre moves (the spans shift).
    Wide,
    /// A gauge histogram with float counts at schema 2: the ages of ~40–80
    /// queued items, redrawn every scrape (buckets come and go).
    GaugeFloat,
    /// As [`Shape::GaugeFloat`] with integer counts (a gauge histogram as
    /// an instrumented process exposes it).
    GaugeInt,
    /// A counter histogram with 10 custom bucket bounds (schema −53).
    Nhcb,
}

impl Shape {
    const ALL: [Shape; 6] = [Shape::Latency, Shape::Sparse, Shape::Wide, Shape::GaugeInt, Shape::GaugeFloat, Shape::Nhcb];

    fn name(self) -> &'static str {
        match self {
            Shape::Latency => "latency",
            Shape::Sparse => "sparse",
            Shape::Wide => "wide",
            Shape::GaugeFloat => "gauge-float",
            Shape::GaugeInt => "gauge-int",
            Shape::Nhcb => "nhcb",
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Shape::Latency => "http_request_duration_seconds",
            Shape::Sparse => "batch_job_duration_seconds",
            Shape::Wide => "rpc_payload_bytes",
            Shape::GaugeFloat => "queue_item_age_seconds",
            Shape::GaugeInt => "inflight_request_age_seconds",
            Shape::Nhcb => "db_query_duration_seconds",
        }
    }

    fn prometheus_can_store(self) -> bool {
        self != Shape::Nhcb
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.f().max(1e-300);
        let v = self.f();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The exponential bucket index of `v > 0` at `schema` (bucket `i` holds
/// `(2^((i-1)/2^schema), 2^(i/2^schema)]`).
fn exp_bucket(v: f64, schema: i32) -> i32 {
    (v.log2() * f64::from(1u32 << schema)).ceil() as i32
}

/// Spans and count deltas of sparse buckets (index → count, no zeros).
fn spans_and_deltas(buckets: &BTreeMap<i32, u64>) -> (Vec<Span>, Vec<i64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut deltas = Vec::with_capacity(buckets.len());
    let (mut prev_idx, mut prev_count) = (None::<i32>, 0i64);
    for (&i, &c) in buckets {
        match prev_idx {
            Some(p) if i == p + 1 => spans.last_mut().expect("a span").length += 1,
            Some(p) => spans.push(Span { offset: i - p - 1, length: 1 }),
            None => spans.push(Span { offset: i, length: 1 }),
        }
        deltas.push(c as i64 - prev_count);
        prev_count = c as i64;
        prev_idx = Some(i);
    }
    (spans, deltas)
}

/// One series' generator state.
struct SeriesGen {
    shape: Shape,
    rng: Rng,
    buckets: BTreeMap<i32, u64>,
    zero_count: u64,
    count: u64,
    sum: f64,
    /// Scrape index of this series' counter reset, if any.
    reset_at: Option<usize>,
    /// Per-series scale of the observations.
    scale: f64,
}

/// Custom bucket bounds of the NHCB shape.
const NHCB_BOUNDS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

impl SeriesGen {
    fn new(shape: Shape, seed: u64, scrapes: usize) -> SeriesGen {
        let mut rng = Rng::new(seed);
        let reset_at = (rng.below(2) == 0).then(|| 1 + rng.below(scrapes.max(2) as u64 - 1) as usize);
        let scale = 0.6 + 0.8 * rng.f();
        SeriesGen { shape, rng, buckets: BTreeMap::new(), zero_count: 0, count: 0, sum: 0.0, reset_at, scale }
    }

    fn observe(&mut self, v: f64, schema: i32) {
        self.count += 1;
        self.sum += v;
        if schema == CUSTOM_BUCKETS_SCHEMA {
            let i = NHCB_BOUNDS.partition_point(|&b| b < v) as i32;
            *self.buckets.entry(i).or_insert(0) += 1;
        } else if v.abs() <= ZERO_THRESHOLD {
            self.zero_count += 1;
        } else {
            *self.buckets.entry(exp_bucket(v, schema)).or_insert(0) += 1;
        }
    }

    fn integer(&self, schema: i32) -> Histogram {
        let (positive_spans, positive_buckets) = spans_and_deltas(&self.buckets);
        let custom = schema == CUSTOM_BUCKETS_SCHEMA;
        Histogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema,
            zero_threshold: if custom { 0.0 } else { ZERO_THRESHOLD },
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive_spans,
            negative_spans: Vec::new(),
            positive_buckets,
            negative_buckets: Vec::new(),
            custom_values: if custom { NHCB_BOUNDS.to_vec() } else { Vec::new() },
        }
    }

    /// The histogram of scrape `k` of `scrapes`.
    fn scrape(&mut self, k: usize, scrapes: usize) -> HistogramValue {
        if self.reset_at == Some(k) && !matches!(self.shape, Shape::GaugeFloat | Shape::GaugeInt) {
            self.buckets.clear();
            self.zero_count = 0;
            self.count = 0;
            self.sum = 0.0;
        }
        match self.shape {
            Shape::Latency => {
                for _ in 0..self.rng.below(7) {
                    let v = 0.12 * self.scale * (0.3 * self.rng.normal()).exp();
                    self.observe(v, 3);
                }
                HistogramValue::Integer(self.integer(3))
            }
            Shape::Sparse => {
                for _ in 0..self.rng.below(3) {
                    let v = if self.rng.below(40) == 0 { 0.0 } else { 0.25 * 64f64.powf(self.rng.f()) * self.scale };
                    self.observe(v, 0);
                }
                HistogramValue::Integer(self.integer(0))
            }
            Shape::Wide => {
                // The centre drifts by ±10% over the series' hours.
                let phase = k as f64 / scrapes as f64;
                let centre = 4096.0 * self.scale * (1.0 + 0.1 * (phase * std::f64::consts::TAU).sin());
                for _ in 0..20 + self.rng.below(41) {
                    let v = centre * (0.05 * self.rng.normal()).exp();
                    self.observe(v, 8);
                }
                HistogramValue::Integer(self.integer(8))
            }
            Shape::Nhcb => {
                for _ in 0..self.rng.below(7) {
                    let v = 0.08 * self.scale * (0.9 * self.rng.normal()).exp();
                    self.observe(v, CUSTOM_BUCKETS_SCHEMA);
                }
                HistogramValue::Integer(self.integer(CUSTOM_BUCKETS_SCHEMA))
            }
            Shape::GaugeFloat | Shape::GaugeInt => {
                self.buckets.clear();
                self.zero_count = 0;
                self.count = 0;
                self.sum = 0.0;
                let items = 40 + self.rng.below(41);
                for _ in 0..items {
                    let v = 30.0 * self.scale * (0.6 * self.rng.normal()).exp();
                    self.observe(v, 2);
                }
                let mut h = self.integer(2);
                if self.shape == Shape::GaugeInt {
                    h.counter_reset_hint = CounterResetHint::Gauge;
                    return HistogramValue::Integer(h);
                }
                // Float counts: absolute counts, not deltas.
                let mut abs = 0i64;
                let counts = h
                    .positive_buckets
                    .iter()
                    .map(|d| {
                        abs += d;
                        abs as f64
                    })
                    .collect();
                HistogramValue::Float(FloatHistogram {
                    counter_reset_hint: CounterResetHint::Gauge,
                    schema: 2,
                    zero_threshold: ZERO_THRESHOLD,
                    zero_count: h.zero_count as f64,
                    count: h.count as f64,
                    sum: h.sum,
                    positive_spans: h.positive_spans,
                    negative_spans: Vec::new(),
                    positive_buckets: counts,
                    negative_buckets: Vec::new(),
                    custom_values: Vec::new(),
                })
            }
        }
    }
}

/// One shape's data: labels and samples of every series.
struct ShapeData {
    series: Vec<(Labels, Vec<HistogramSample>)>,
    samples: usize,
    buckets: usize,
}

fn generate(shape: Shape, n_series: usize, scrapes: usize, end_ms: i64) -> ShapeData {
    let start = (end_ms - scrapes as i64 * STEP_MS) / STEP_MS * STEP_MS;
    let mut series = Vec::with_capacity(n_series);
    let mut buckets = 0usize;
    for s in 0..n_series {
        let seed = (Shape::ALL.iter().position(|&x| x == shape).unwrap_or(0) as u64) << 32 | s as u64;
        let mut g = SeriesGen::new(shape, seed + 1, scrapes);
        let labels = Labels::new([
            ("__name__", shape.metric().to_string()),
            ("instance", format!("10.0.{}.{}:8080", s / 250, s % 250)),
            ("job", format!("svc-{}", s % 7)),
        ])
        .expect("valid labels");
        // Every series scrapes at its own offset, with a few ms of jitter.
        let offset = g.rng.below(STEP_MS as u64) as i64;
        let mut out = Vec::with_capacity(scrapes);
        for k in 0..scrapes {
            let t = start + offset + k as i64 * STEP_MS + g.rng.below(4) as i64;
            let h = g.scrape(k, scrapes);
            buckets += match &h {
                HistogramValue::Integer(h) => h.positive_buckets.len(),
                HistogramValue::Float(h) => h.positive_buckets.len(),
            };
            out.push(HistogramSample { t, h });
        }
        series.push((labels, out));
    }
    let samples = series.iter().map(|s| s.1.len()).sum();
    ShapeData { series, samples, buckets }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// What a snapshot's blocks take.
#[derive(Debug, Default, Clone, Copy)]
struct Sizes {
    chunks: u64,
    index: u64,
    blocks: usize,
    samples: u64,
}

/// Sums `chunks/` and `index` over the block directories under `snap`, and
/// the samples their `meta.json` count.
fn block_sizes(snap: &Path) -> Result<Sizes, Box<dyn std::error::Error>> {
    let mut s = Sizes::default();
    for e in std::fs::read_dir(snap)?.flatten() {
        let p = e.path();
        if !p.join("meta.json").is_file() {
            continue;
        }
        s.blocks += 1;
        s.chunks += dir_bytes(&p.join("chunks"));
        s.index += std::fs::metadata(p.join("index"))?.len();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(p.join("meta.json"))?)?;
        s.samples += meta["stats"]["numSamples"].as_u64().unwrap_or(0);
    }
    Ok(s)
}

fn proto_labels(l: &Labels) -> Vec<v1::Label> {
    l.iter().map(|x| v1::Label { name: x.name.to_string(), value: x.value.to_string() }).collect()
}

/// Remote-writes `data` to Prometheus 2.42, snapshots it and measures the
/// snapshot's block.
fn measure_prometheus(data: &ShapeData, keep: Option<&Path>) -> Result<Sizes, Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("nh-bytes-prometheus-").tempdir()?;
    let mut config = PrometheusConfig::new(dir.path());
    config.args = vec![
        "--enable-feature=native-histograms".into(),
        "--web.enable-remote-write-receiver".into(),
        "--web.enable-admin-api".into(),
        "--log.level=warn".into(),
    ];
    config.ready_timeout = Duration::from_secs(120);
    let prom = Prometheus::start(config)?;
    let http = Http::new(Duration::from_secs(600));
    let url = prom.remote_write_url();
    let labels: Vec<Vec<v1::Label>> = data.series.iter().map(|(l, _)| proto_labels(l)).collect();
    let scrapes = data.series.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let mut from = 0;
    while from < scrapes {
        let to = (from + SCRAPES_PER_REQUEST).min(scrapes);
        let req = v1::WriteRequest {
            timeseries: data
                .series
                .iter()
                .zip(&labels)
                .filter(|((_, s), _)| s.len() > from)
                .map(|((_, s), l)| v1::TimeSeries {
                    labels: l.clone(),
                    samples: Vec::new(),
                    exemplars: Vec::new(),
                    histograms: s[from..to.min(s.len())].iter().map(tidemark_remote::histogram::to_proto).collect(),
                })
                .collect(),
            metadata: Vec::new(),
        };
        debug_assert!(req.encoded_len() > 0);
        let body = tidemark_remote::encode_v1(&req);
        let headers = [
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ];
        let r = http.post(&url, &headers, &body)?;
        if !r.is_success() {
            return Err(format!("remote write of scrapes {from}..{to}: {}: {}", r.status, r.text().trim()).into());
        }
        from = to;
    }
    let r = http.post(&format!("{}/api/v1/admin/tsdb/snapshot", prom.url()), &[], b"")?;
    let json: serde_json::Value = serde_json::from_slice(&r.body)?;
    let name = json["data"]["name"].as_str().ok_or_else(|| format!("snapshot: {} {}", r.status, r.text()))?;
    let snap = dir.path().join("snapshots").join(name);
    let sizes = block_sizes(&snap)?;
    if let Some(k) = keep {
        copy_tree(&snap, k)?;
    }
    drop(prom);
    Ok(sizes)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

/// Appends `data` to a fresh [`Db`], snapshots it, measures the block and
/// verifies every histogram read back from the snapshot.
fn measure_tidemark(data: &ShapeData, keep: Option<&Path>) -> Result<(Sizes, usize), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("nh-bytes-tidemark-").tempdir()?;
    let db = Db::builder(dir.path().join("db")).maintenance_interval(None).open()?;
    // In time order, one commit per 20 scrapes of every series (as the
    // remote-write requests to Prometheus).
    let scrapes = data.series.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let mut refs: Vec<Option<u64>> = vec![None; data.series.len()];
    let mut from = 0;
    while from < scrapes {
        let to = (from + SCRAPES_PER_REQUEST).min(scrapes);
        let mut app = db.appender();
        for (i, (labels, samples)) in data.series.iter().enumerate() {
            for s in samples.iter().take(to).skip(from) {
                match refs[i] {
                    Some(r) => app.append_histogram_ref(r, s.t, s.h.clone())?,
                    None => refs[i] = Some(app.append_histogram(labels, s.t, s.h.clone())?),
                }
            }
        }
        app.commit()?;
        from = to;
    }
    let snap = dir.path().join("snapshot");
    db.snapshot(&snap, false)?;
    drop(db);
    let sizes = block_sizes(&snap)?;
    let checked = verify(&snap, data)?;
    if let Some(k) = keep {
        copy_tree(&snap, k)?;
    }
    Ok((sizes, checked))
}

/// A histogram as compared: `compact(0)`ed, hint cleared, float form.
fn normal_form(h: &HistogramValue) -> Result<FloatHistogram, String> {
    match h {
        HistogramValue::Integer(h) => {
            let mut h = h.clone();
            h.compact(0);
            h.counter_reset_hint = CounterResetHint::Unknown;
            let mut abs = 0i64;
            Ok(FloatHistogram {
                counter_reset_hint: CounterResetHint::Unknown,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                zero_count: h.zero_count as f64,
                count: h.count as f64,
                sum: h.sum,
                positive_spans: h.positive_spans,
                negative_spans: h.negative_spans,
                positive_buckets: h
                    .positive_buckets
                    .iter()
                    .map(|d| {
                        abs += d;
                        abs as f64
                    })
                    .collect(),
                negative_buckets: {
                    let mut abs = 0i64;
                    h.negative_buckets
                        .iter()
                        .map(|d| {
                            abs += d;
                            abs as f64
                        })
                        .collect()
                },
                custom_values: h.custom_values,
            })
        }
        HistogramValue::Float(h) => {
            let mut h = h.clone();
            h.compact(0);
            h.counter_reset_hint = CounterResetHint::Unknown;
            Ok(h)
        }
    }
}

/// Bit-exact equality of two normal forms (floats by bit pattern).
fn same(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && a.zero_count.to_bits() == b.zero_count.to_bits()
        && a.count.to_bits() == b.count.to_bits()
        && a.sum.to_bits() == b.sum.to_bits()
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && bits(&a.positive_buckets) == bits(&b.positive_buckets)
        && bits(&a.negative_buckets) == bits(&b.negative_buckets)
        && bits(&a.custom_values) == bits(&b.custom_values)
}

/// Reads every series of the snapshot back and compares it with `data`;
/// returns the histograms compared.
fn verify(snap: &Path, data: &ShapeData) -> Result<usize, Box<dyn std::error::Error>> {
    let db = Db::builder(snap).maintenance_interval(None).open()?;
    let want: HashMap<&Labels, &Vec<HistogramSample>> = data.series.iter().map(|(l, s)| (l, s)).collect();
    let q = db.querier(i64::MIN, i64::MAX);
    let got = q.select(&[Matcher::new(MatchOp::Regex, "__name__", ".+")?])?;
    if got.len() != data.series.len() {
        return Err(format!("{} series read back, {} written", got.len(), data.series.len()).into());
    }
    let mut checked = 0;
    let mut kind_mismatch = 0;
    for s in &got {
        let expect = want.get(s.labels()).ok_or_else(|| format!("unexpected series {}", s.labels()))?;
        let mut it = s.iter();
        let (mut floats, mut hists): (Vec<Sample>, Vec<HistogramSample>) = (Vec::new(), Vec::new());
        it.drain_mixed_into(&mut floats, &mut hists);
        if let Some(e) = it.err() {
            return Err(format!("series {}: {e}", s.labels()).into());
        }
        if !floats.is_empty() || hists.len() != expect.len() {
            return Err(format!(
                "series {}: {} floats + {} histograms read back, {} histograms written",
                s.labels(),
                floats.len(),
                hists.len(),
                expect.len()
            )
            .into());
        }
        for (g, w) in hists.iter().zip(expect.iter()) {
            if matches!(g.h, HistogramValue::Integer(_)) != matches!(w.h, HistogramValue::Integer(_)) {
                kind_mismatch += 1;
            }
            if g.t != w.t || !same(&normal_form(&g.h)?, &normal_form(&w.h)?) {
                return Err(format!("series {} at t={}: read back {:?}, written {:?}", s.labels(), w.t, g.h, w.h).into());
            }
            checked += 1;
        }
    }
    if kind_mismatch > 0 {
        return Err(format!("{kind_mismatch} histograms read back with another count type").into());
    }
    Ok(checked)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut n_series = 200usize;
    let mut hours = 2.0f64;
    let mut shapes: Vec<Shape> = Shape::ALL.to_vec();
    let mut prometheus = true;
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--series" => n_series = args.next().ok_or("--series N")?.parse()?,
            "--hours" => hours = args.next().ok_or("--hours H")?.parse()?,
            "--no-prometheus" => prometheus = false,
            "--keep" => keep = Some(args.next().ok_or("--keep DIR")?.into()),
            "--shapes" => {
                let list = args.next().ok_or("--shapes a,b")?;
                shapes = list
                    .split(',')
                    .map(|n| Shape::ALL.into_iter().find(|s| s.name() == n).ok_or(format!("unknown shape {n}")))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!(
                "unknown argument {other} (usage: nh_bytes [--series N] [--hours H] [--shapes a,b] [--no-prometheus] [--keep DIR])"
            )
            .into()),
        }
    }
    let scrapes = (hours * 3600.0 * 1000.0 / STEP_MS as f64).round() as usize;
    // End a minute before now: every sample is in Prometheus' head range.
    let end = now_ms() - 60_000;
    println!("nh_bytes: {n_series} series × {scrapes} scrapes (15 s) per shape; load average {}", load_average());
    let mut rows = Vec::new();
    for shape in shapes {
        let data = generate(shape, n_series, scrapes, end);
        let t = Instant::now();
        let keep_t = keep.as_ref().map(|k| k.join(format!("{}-tidemark", shape.name())));
        let (ours, checked) = measure_tidemark(&data, keep_t.as_deref())?;
        let ours_time = t.elapsed();
        let theirs = if prometheus && shape.prometheus_can_store() {
            let keep_p = keep.as_ref().map(|k| k.join(format!("{}-prometheus", shape.name())));
            match measure_prometheus(&data, keep_p.as_deref()) {
                Ok(p) if p.samples != data.samples as u64 => {
                    return Err(format!("{}: Prometheus stored {} samples of {}", shape.name(), p.samples, data.samples).into())
                }
                Ok(p) => Some(p),
                Err(e) => {
                    println!("{}: Prometheus 2.42 failed: {e}", shape.name());
                    None
                }
            }
        } else {
            None
        };
        let n = data.samples as f64;
        let bps = |s: &Sizes| (s.chunks as f64 / n, s.index as f64 / n);
        let (oc, oi) = bps(&ours);
        let line = match theirs {
            Some(p) => {
                let (pc, pi) = bps(&p);
                format!(
                    "| {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | **{:.2}** | {:.2} |",
                    shape.name(),
                    data.samples,
                    data.buckets as f64 / n,
                    pc,
                    oc,
                    pi,
                    oi,
                    oc / pc,
                    (oc + oi) / (pc + pi)
                )
            }
            None => format!(
                "| {} | {} | {:.1} | — | {:.3} | — | {:.3} | — | — |",
                shape.name(),
                data.samples,
                data.buckets as f64 / n,
                oc,
                oi
            ),
        };
        println!(
            "{}: tidemark chunks {} B index {} B ({} blocks, {checked} histograms read back equal, {:.1?}); prometheus {:?}; load average {}",
            shape.name(),
            ours.chunks,
            ours.index,
            ours.blocks,
            ours_time,
            theirs,
            load_average()
        );
        rows.push(line);
    }
    println!();
    println!("| shape | samples | buckets/sample | Prometheus 2.42 chunks B/sample | Tidemark chunks B/sample | Prometheus index B/sample | Tidemark index B/sample | chunks ratio T/P | chunks+index ratio T/P |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

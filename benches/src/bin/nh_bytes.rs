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
    const ALL: [Shape; 6] =
        [Shape::Latency, Shape::Sparse, Shape::Wide, Shape::GaugeInt, Shape::GaugeFloat, Shape::Nhcb];

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
                return Err(
                    format!("series {} at t={}: read back {:?}, written {:?}", s.labels(), w.t, g.h, w.h).into()
                );
            }
            checked += 1;
        }
    }
    if kind_mismatch > 0 {
        return Err(format!("{kind_mismatch} histograms read back with another count type").into());
    }
    Ok(checked)
}

/// Encodes every series' run with [`candidate`], decodes it back and checks
/// it bit for bit (hints included); returns the bytes of the chunks as block
/// chunk records (length varint, encoding byte, CRC32 added).
fn measure_candidate(data: &ShapeData) -> Result<u64, Box<dyn std::error::Error>> {
    let mut total = 0u64;
    let mut sections = [0usize; 6];
    for (labels, samples) in &data.series {
        for (a, b) in sections.iter_mut().zip(candidate::breakdown(samples)) {
            *a += b;
        }
        let chunk = candidate::encode(samples);
        let back = candidate::decode(&chunk)?;
        if back != *samples {
            return Err(format!("candidate encoding: series {labels} does not round-trip").into());
        }
        let len = chunk.len() as u64;
        let varint = (64 - len.leading_zeros()).div_ceil(7).max(1) as u64;
        total += varint + 1 + len + 4;
    }
    let n = data.samples as f64;
    let parts: Vec<String> =
        candidate::SECTIONS.iter().zip(sections).map(|(name, b)| format!("{name} {:.3}", b as f64 / n)).collect();
    println!("  candidate sections, each compressed alone, B/sample: {}", parts.join(", "));
    Ok(total)
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
        let cand = measure_candidate(&data)?;
        let theirs = if prometheus && shape.prometheus_can_store() {
            let keep_p = keep.as_ref().map(|k| k.join(format!("{}-prometheus", shape.name())));
            match measure_prometheus(&data, keep_p.as_deref()) {
                Ok(p) if p.samples != data.samples as u64 => {
                    return Err(format!(
                        "{}: Prometheus stored {} samples of {}",
                        shape.name(),
                        p.samples,
                        data.samples
                    )
                    .into())
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
                    "| {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | **{:.2}** |",
                    shape.name(),
                    data.samples,
                    data.buckets as f64 / n,
                    pc,
                    oc,
                    pi,
                    oi,
                    cand as f64 / n,
                    oc / pc,
                    cand as f64 / n / pc
                )
            }
            None => format!(
                "| {} | {} | {:.1} | — | {:.3} | — | {:.3} | {:.3} | — | — |",
                shape.name(),
                data.samples,
                data.buckets as f64 / n,
                oc,
                oi,
                cand as f64 / n
            ),
        };
        println!(
            "{}: tidemark chunks {} B index {} B ({} blocks, {checked} histograms read back equal, {:.1?}); candidate sealed chunks {cand} B (round trip checked); prometheus {:?}; load average {}",
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
    println!("| shape | samples | buckets/sample | Prometheus 2.42 chunks B/sample | Tidemark chunks B/sample | Prometheus index B/sample | Tidemark index B/sample | candidate sealed chunks B/sample | Tidemark / Prometheus chunks | candidate / Prometheus chunks |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

/// A candidate sealed encoding for the histogram runs of a block, measured
/// here to size what a denser block encoding would win (not a storage
/// format: nothing reads it outside this tool, which decodes every chunk it
/// encodes and checks the round trip).
///
/// One chunk holds a series' whole run in the block. Its columns, each a
/// sequence of LEB128 varints (signed ones zigzagged), one column after the
/// other, the whole compressed with zstd level 9:
///
/// 1. header: sample count, kind (0 integer, 1 float), schema (zigzag),
///    zero threshold (8 bytes), custom bounds (count + 8 bytes each);
/// 2. timestamps: the first, then deltas of deltas;
/// 3. counter-reset hints, one byte per sample (zstd turns the runs into a
///    few bytes);
/// 4. layouts: for each sample whose spans differ from the previous one's,
///    its index (delta to the previous change) and its spans (positive then
///    negative: count, then offset and length per span);
/// 5. count and zero count: integer, the delta to the previous sample's;
///    float, the XOR of the bit patterns with the previous sample's;
/// 6. sum: the XOR of its bits with the previous sum's;
/// 7. buckets: per sample, per bucket of its layout (positive then
///    negative), the change of the bucket's absolute count since the
///    previous sample's bucket of the same index (0 before it existed);
///    floats as XORs of bit patterns.
mod candidate {
    use std::collections::HashMap;

    use tidemark_storage::histogram::{
        CounterResetHint, FloatHistogram, Histogram, HistogramSample, HistogramValue, Span,
    };

    fn put_u(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn put_i(out: &mut Vec<u8>, v: i64) {
        put_u(out, ((v << 1) ^ (v >> 63)) as u64)
    }
    struct Rd<'a>(&'a [u8], usize);
    impl Rd<'_> {
        fn u(&mut self) -> Result<u64, String> {
            let mut v = 0u64;
            for shift in (0..70).step_by(7) {
                let b = *self.0.get(self.1).ok_or("truncated")?;
                self.1 += 1;
                v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
                if b < 0x80 {
                    return Ok(v);
                }
            }
            Err("varint too long".into())
        }
        fn i(&mut self) -> Result<i64, String> {
            let u = self.u()?;
            Ok((u >> 1) as i64 ^ -((u & 1) as i64))
        }
        fn f(&mut self) -> Result<f64, String> {
            let b = self.0.get(self.1..self.1 + 8).ok_or("truncated")?;
            self.1 += 8;
            Ok(f64::from_le_bytes(b.try_into().map_err(|_| "truncated")?))
        }
    }

    /// Bucket indexes of a layout, in bucket order.
    fn indexes(spans: &[Span]) -> Vec<i32> {
        let mut out = Vec::new();
        let mut i = 0i32;
        for (n, s) in spans.iter().enumerate() {
            // The first span's offset is its start index, a later one's the
            // gap after the previous span's end.
            let _ = n;
            i += s.offset;
            for _ in 0..s.length {
                out.push(i);
                i += 1;
            }
        }
        out
    }

    /// A sample's parts in the float-or-integer-agnostic form the columns use.
    struct Parts<'a> {
        hint: CounterResetHint,
        pos: &'a [Span],
        neg: &'a [Span],
        /// Count, zero count, sum bits, then absolute bucket counts
        /// (integers as i64, floats as bit patterns).
        count: u64,
        zero: u64,
        sum: u64,
        pbuckets: Vec<u64>,
        nbuckets: Vec<u64>,
    }

    fn absolute(deltas: &[i64]) -> Vec<u64> {
        let mut a = 0i64;
        deltas
            .iter()
            .map(|d| {
                a = a.wrapping_add(*d);
                a as u64
            })
            .collect()
    }

    fn parts(h: &HistogramValue) -> Parts<'_> {
        match h {
            HistogramValue::Integer(h) => Parts {
                hint: h.counter_reset_hint,
                pos: &h.positive_spans,
                neg: &h.negative_spans,
                count: h.count,
                zero: h.zero_count,
                sum: h.sum.to_bits(),
                pbuckets: absolute(&h.positive_buckets),
                nbuckets: absolute(&h.negative_buckets),
            },
            HistogramValue::Float(h) => Parts {
                hint: h.counter_reset_hint,
                pos: &h.positive_spans,
                neg: &h.negative_spans,
                count: h.count.to_bits(),
                zero: h.zero_count.to_bits(),
                sum: h.sum.to_bits(),
                pbuckets: h.positive_buckets.iter().map(|v| v.to_bits()).collect(),
                nbuckets: h.negative_buckets.iter().map(|v| v.to_bits()).collect(),
            },
        }
    }

    fn hint_code(h: CounterResetHint) -> u8 {
        match h {
            CounterResetHint::Unknown => 0,
            CounterResetHint::CounterReset => 1,
            CounterResetHint::NotCounterReset => 2,
            CounterResetHint::Gauge => 3,
        }
    }

    fn put_spans(out: &mut Vec<u8>, spans: &[Span]) {
        put_u(out, spans.len() as u64);
        for s in spans {
            put_i(out, i64::from(s.offset));
            put_u(out, u64::from(s.length));
        }
    }

    /// Encodes one run (same kind, schema, zero threshold and bounds
    /// throughout; the caller splits runs where they change). Returns the
    /// compressed chunk.
    pub fn encode(run: &[HistogramSample]) -> Vec<u8> {
        zstd::bulk::compress(&encode_raw(run).0, 9).expect("zstd compresses")
    }

    /// The sections of a chunk, for [`breakdown`]'s figures.
    pub const SECTIONS: [&str; 6] = ["header+timestamps", "hints", "layouts", "count+zero count", "sum", "buckets"];

    /// The bytes each section of `run`'s chunk takes compressed alone
    /// (zstd 9), in [`SECTIONS`] order.
    pub fn breakdown(run: &[HistogramSample]) -> [usize; 6] {
        let (raw, marks) = encode_raw(run);
        let mut out = [0; 6];
        let mut from = 0;
        for (i, &to) in marks.iter().enumerate() {
            out[i] = zstd::bulk::compress(&raw[from..to], 9).expect("zstd compresses").len();
            from = to;
        }
        out
    }

    /// The uncompressed chunk and the end of each of its sections.
    fn encode_raw(run: &[HistogramSample]) -> (Vec<u8>, [usize; 6]) {
        let mut marks = [0usize; 6];
        let float = matches!(run[0].h, HistogramValue::Float(_));
        let (schema, zt, custom) = match &run[0].h {
            HistogramValue::Integer(h) => (h.schema, h.zero_threshold, h.custom_values.clone()),
            HistogramValue::Float(h) => (h.schema, h.zero_threshold, h.custom_values.clone()),
        };
        let mut out = Vec::new();
        put_u(&mut out, run.len() as u64);
        out.push(u8::from(float));
        put_i(&mut out, i64::from(schema));
        out.extend_from_slice(&zt.to_le_bytes());
        put_u(&mut out, custom.len() as u64);
        for c in &custom {
            out.extend_from_slice(&c.to_le_bytes());
        }
        // Timestamps.
        let (mut pt, mut pd) = (0i64, 0i64);
        for (i, s) in run.iter().enumerate() {
            match i {
                0 => put_i(&mut out, s.t),
                _ => {
                    let d = s.t - pt;
                    put_i(&mut out, d - pd);
                    pd = d;
                }
            }
            pt = s.t;
        }
        marks[0] = out.len();
        let all: Vec<Parts<'_>> = run.iter().map(|s| parts(&s.h)).collect();
        for p in &all {
            out.push(hint_code(p.hint));
        }
        marks[1] = out.len();
        // Layout changes.
        let mut changes = Vec::new();
        let mut last = 0usize;
        for (i, p) in all.iter().enumerate() {
            if i == 0 || p.pos != all[i - 1].pos || p.neg != all[i - 1].neg {
                put_u(&mut changes, (i - last) as u64);
                put_spans(&mut changes, p.pos);
                put_spans(&mut changes, p.neg);
                last = i;
            }
        }
        put_u(&mut out, changes.len() as u64);
        out.extend_from_slice(&changes);
        marks[2] = out.len();
        let diff = |out: &mut Vec<u8>, prev: u64, cur: u64| {
            if float {
                put_u(out, prev ^ cur)
            } else {
                put_i(out, (cur as i64).wrapping_sub(prev as i64))
            }
        };
        let (mut pc, mut pz, mut ps) = (0u64, 0u64, 0u64);
        for p in &all {
            diff(&mut out, pc, p.count);
            diff(&mut out, pz, p.zero);
            pc = p.count;
            pz = p.zero;
        }
        marks[3] = out.len();
        for p in &all {
            put_u(&mut out, ps ^ p.sum);
            ps = p.sum;
        }
        marks[4] = out.len();
        let mut prev: [HashMap<i32, u64>; 2] = [HashMap::new(), HashMap::new()];
        for p in &all {
            for (side, (spans, vals)) in [(p.pos, &p.pbuckets), (p.neg, &p.nbuckets)].into_iter().enumerate() {
                let mut next = HashMap::with_capacity(vals.len());
                for (idx, v) in indexes(spans).into_iter().zip(vals.iter()) {
                    let before = prev[side].get(&idx).copied().unwrap_or(if float { 0f64.to_bits() } else { 0 });
                    diff(&mut out, before, *v);
                    next.insert(idx, *v);
                }
                prev[side] = next;
            }
        }
        marks[5] = out.len();
        (out, marks)
    }

    fn get_spans(r: &mut Rd<'_>) -> Result<Vec<Span>, String> {
        let n = r.u()? as usize;
        (0..n)
            .map(|_| Ok(Span { offset: i32::try_from(r.i()?).map_err(|e| e.to_string())?, length: r.u()? as u32 }))
            .collect()
    }

    /// Decodes what [`encode`] wrote.
    pub fn decode(chunk: &[u8]) -> Result<Vec<HistogramSample>, String> {
        let raw = zstd::stream::decode_all(chunk).map_err(|e| e.to_string())?;
        let mut r = Rd(&raw, 0);
        let n = r.u()? as usize;
        let float = *raw.get(r.1).ok_or("truncated")? == 1;
        r.1 += 1;
        let schema = r.i()? as i32;
        let zt = r.f()?;
        let custom = (0..r.u()?).map(|_| r.f()).collect::<Result<Vec<_>, _>>()?;
        let mut ts = Vec::with_capacity(n);
        let (mut t, mut d) = (0i64, 0i64);
        for i in 0..n {
            if i == 0 {
                t = r.i()?;
            } else {
                d += r.i()?;
                t += d;
            }
            ts.push(t);
        }
        let hints = raw.get(r.1..r.1 + n).ok_or("truncated")?.to_vec();
        r.1 += n;
        let changes_len = r.u()? as usize;
        let end = r.1 + changes_len;
        let mut layouts: Vec<(usize, Vec<Span>, Vec<Span>)> = Vec::new();
        let mut at = 0usize;
        while r.1 < end {
            at += r.u()? as usize;
            let pos = get_spans(&mut r)?;
            let neg = get_spans(&mut r)?;
            layouts.push((at, pos, neg));
        }
        let undiff = |r: &mut Rd<'_>, prev: u64| -> Result<u64, String> {
            Ok(if float { prev ^ r.u()? } else { (prev as i64).wrapping_add(r.i()?) as u64 })
        };
        let (mut pc, mut pz) = (0u64, 0u64);
        let mut cz = Vec::with_capacity(n);
        for _ in 0..n {
            pc = undiff(&mut r, pc)?;
            pz = undiff(&mut r, pz)?;
            cz.push((pc, pz));
        }
        let mut ps = 0u64;
        let mut sums = Vec::with_capacity(n);
        for _ in 0..n {
            ps ^= r.u()?;
            sums.push(ps);
        }
        let mut prev: [HashMap<i32, u64>; 2] = [HashMap::new(), HashMap::new()];
        let mut li = 0usize;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            while li + 1 < layouts.len() && layouts[li + 1].0 <= i {
                li += 1;
            }
            let (_, pos, neg) = layouts.get(li).ok_or("no layout")?;
            let mut vals: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
            for (side, spans) in [pos, neg].into_iter().enumerate() {
                let mut next = HashMap::new();
                for idx in indexes(spans) {
                    let before = prev[side].get(&idx).copied().unwrap_or(0);
                    let v = undiff(&mut r, before)?;
                    vals[side].push(v);
                    next.insert(idx, v);
                }
                prev[side] = next;
            }
            let hint = tidemark_storage::histogram::CounterResetHint::from_code(hints[i]).ok_or("bad hint")?;
            let h = if float {
                HistogramValue::Float(FloatHistogram {
                    counter_reset_hint: hint,
                    schema,
                    zero_threshold: zt,
                    zero_count: f64::from_bits(cz[i].1),
                    count: f64::from_bits(cz[i].0),
                    sum: f64::from_bits(sums[i]),
                    positive_spans: pos.clone(),
                    negative_spans: neg.clone(),
                    positive_buckets: vals[0].iter().map(|b| f64::from_bits(*b)).collect(),
                    negative_buckets: vals[1].iter().map(|b| f64::from_bits(*b)).collect(),
                    custom_values: custom.clone(),
                })
            } else {
                let deltas = |v: &[u64]| {
                    let mut p = 0i64;
                    v.iter()
                        .map(|x| {
                            let d = (*x as i64).wrapping_sub(p);
                            p = *x as i64;
                            d
                        })
                        .collect()
                };
                HistogramValue::Integer(Histogram {
                    counter_reset_hint: hint,
                    schema,
                    zero_threshold: zt,
                    zero_count: cz[i].1,
                    count: cz[i].0,
                    sum: f64::from_bits(sums[i]),
                    positive_spans: pos.clone(),
                    negative_spans: neg.clone(),
                    positive_buckets: deltas(&vals[0]),
                    negative_buckets: deltas(&vals[1]),
                    custom_values: custom.clone(),
                })
            };
            out.push(HistogramSample { t: ts[i], h });
        }
        if r.1 != raw.len() {
            return Err(format!("{} bytes left over", raw.len() - r.1));
        }
        Ok(out)
    }
}

//! Deterministic native-histogram test data for the histogram differential
//! test: about 30 series over two hours from [`T0`], scraped every 15 s with
//! the float test's per-target phase, jitter and missed scrapes (so no
//! sample sits on a whole second, see `data.rs`).
//!
//! What the series cover: exponential schemas −2 and 0…8, buckets appearing
//! over time (so spans change), counter resets, zero buckets (observations of
//! exactly 0, thresholds 0, 1e-3, 1e-2 and 0.5), NaN observations (NaN sums,
//! count above the bucket total), negative buckets, gauge histograms
//! (integer and float), integer and float counter histograms, a series that
//! switches between floats and histograms, series that appear and disappear
//! (with staleness markers), and classic float series for mixed queries.
//! Custom-bucket histograms (schema −53) are not generated: Prometheus 2.42
//! cannot store them.

use std::collections::BTreeMap;

use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span};
use tidemark_storage::stale_nan;

use super::data::{scrape_times, Lcg, SPAN};

/// One sample of a generated series.
#[derive(Debug, Clone)]
pub enum Val {
    /// A float (possibly the stale marker).
    Float(f64),
    /// A native histogram.
    Hist(HistogramValue),
}

impl Val {
    /// Whether this is a staleness marker.
    pub fn is_stale(&self) -> bool {
        matches!(self, Val::Float(v) if v.to_bits() == stale_nan().to_bits())
    }
}

/// One generated series: labels (with `__name__`) and samples in time order.
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, Val)>,
}

/// Observations accumulated into buckets (counts as floats; integer
/// histograms only ever get whole weights).
#[derive(Clone)]
struct Acc {
    schema: i32,
    zero_threshold: f64,
    zero: f64,
    count: f64,
    sum: f64,
    pos: BTreeMap<i32, f64>,
    neg: BTreeMap<i32, f64>,
}

impl Acc {
    fn new(schema: i32, zero_threshold: f64) -> Acc {
        Acc { schema, zero_threshold, zero: 0.0, count: 0.0, sum: 0.0, pos: BTreeMap::new(), neg: BTreeMap::new() }
    }

    /// The bucket index of `v > 0`: bucket `i` holds `(base^(i-1), base^i]`
    /// with `base = 2^(2^-schema)`.
    fn index(&self, v: f64) -> i32 {
        (v.log2() * 2f64.powi(self.schema)).ceil() as i32
    }

    fn observe(&mut self, v: f64, w: f64) {
        self.count += w;
        if v.is_nan() {
            // Counted, summed (the sum becomes NaN), in no bucket.
            self.sum = f64::NAN;
            return;
        }
        self.sum += v * w;
        if v.abs() <= self.zero_threshold {
            self.zero += w;
        } else if v > 0.0 {
            *self.pos.entry(self.index(v)).or_default() += w;
        } else {
            let i = self.index(-v);
            *self.neg.entry(i).or_default() += w;
        }
    }

    fn integer(&self, hint: CounterResetHint) -> HistogramValue {
        let (positive_spans, pos) = spans(&self.pos);
        let (negative_spans, neg) = spans(&self.neg);
        HistogramValue::Integer(Histogram {
            counter_reset_hint: hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero as u64,
            count: self.count as u64,
            sum: self.sum,
            positive_spans,
            negative_spans,
            positive_buckets: deltas(&pos),
            negative_buckets: deltas(&neg),
            custom_values: Vec::new(),
        })
    }

    fn float(&self, hint: CounterResetHint) -> HistogramValue {
        let (positive_spans, positive_buckets) = spans(&self.pos);
        let (negative_spans, negative_buckets) = spans(&self.neg);
        HistogramValue::Float(FloatHistogram {
            counter_reset_hint: hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero,
            count: self.count,
            sum: self.sum,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values: Vec::new(),
        })
    }
}

/// Spans and absolute bucket counts for populated bucket indexes; gaps of
/// up to two buckets are filled with empty buckets (as client libraries do),
/// longer ones start a new span.
fn spans(buckets: &BTreeMap<i32, f64>) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::new();
    let mut prev: Option<i32> = None;
    for (&i, &c) in buckets {
        match prev {
            Some(p) if i - p <= 3 => {
                counts.extend(std::iter::repeat_n(0.0, (i - p - 1) as usize));
                spans.last_mut().expect("a span is open").length += (i - p) as u32;
            }
            Some(p) => spans.push(Span { offset: i - p - 1, length: 1 }),
            None => spans.push(Span { offset: i, length: 1 }),
        }
        counts.push(c);
        prev = Some(i);
    }
    (spans, counts)
}

/// Delta encoding of integer bucket counts.
fn deltas(counts: &[f64]) -> Vec<i64> {
    let mut prev = 0i64;
    counts
        .iter()
        .map(|&c| {
            let c = c as i64;
            let d = c - prev;
            prev = c;
            d
        })
        .collect()
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Lcg) -> f64 {
    let u1 = rng.unit().max(1e-12);
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// An observation: log-normal around `median`, with a spread that keeps
/// the number of buckets moderate at every schema; `zeros` of them are
/// exactly 0.
fn observation(rng: &mut Lcg, median: f64, schema: i32, zeros: f64) -> f64 {
    if rng.chance(zeros) {
        return 0.0;
    }
    let sigma_log2 = (6.0 / 2f64.powi(schema)).min(2.5);
    let v = median * (normal(rng) * sigma_log2).exp2();
    // Three significant decimals keep sums readable.
    let scale = 10f64.powi(3 - v.log10().ceil() as i32);
    (v * scale).round() / scale
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Milliseconds of `s` seconds after T0.
fn at(s: i64) -> i64 {
    (super::data::T0 + s) * 1000
}

/// How a counter histogram series behaves.
struct Counter<'a> {
    labels: &'a [(&'a str, &'a str)],
    schema: i32,
    zero_threshold: f64,
    /// Seconds after T0 of the first and (exclusive) last scrape.
    from_s: i64,
    to_s: i64,
    /// A stale marker after the last scrape.
    stale_at_end: bool,
    /// Restarts (counter resets), seconds after T0.
    resets: &'a [i64],
    median: f64,
    zeros: f64,
    /// Probability that an observation is negative.
    negative: f64,
    /// Probability per scrape of one NaN observation.
    nan: f64,
    /// Float histogram with fractional weights instead of integer counts.
    float: bool,
    /// Observations already counted at the first scrape and at the first
    /// scrape after each restart (a burst at start-up). Large enough that
    /// 3.x's counter zero point for histograms in `rate` (which 2.42 lacks)
    /// never falls inside the extrapolated interval.
    initial: i64,
}

impl Counter<'_> {
    fn generate(&self, rng: &mut Lcg) -> Series {
        let mut acc = Acc::new(self.schema, self.zero_threshold);
        let mut samples = Vec::new();
        let mut reset = 0;
        let mut burst = true;
        for t in scrape_times(rng, self.from_s, self.to_s) {
            if reset < self.resets.len() && t >= at(self.resets[reset]) {
                reset += 1;
                acc = Acc::new(self.schema, self.zero_threshold);
                burst = true;
            }
            let n = if std::mem::take(&mut burst) { self.initial } else { rng.int(0, 12) };
            for _ in 0..n {
                let mut v = observation(rng, self.median, self.schema, self.zeros);
                if rng.chance(self.negative) {
                    v = -v;
                }
                let w = if self.float { rng.int(1, 8) as f64 * 0.25 } else { 1.0 };
                acc.observe(v, w);
            }
            if rng.chance(self.nan) {
                acc.observe(f64::NAN, 1.0);
            }
            let h =
                if self.float { acc.float(CounterResetHint::Unknown) } else { acc.integer(CounterResetHint::Unknown) };
            samples.push((t, Val::Hist(h)));
        }
        if self.stale_at_end {
            let last = samples.last().map(|(t, _)| *t).expect("samples");
            samples.push((last + 15_000, Val::Float(stale_nan())));
        }
        Series { labels: labels(self.labels), samples }
    }
}

/// A gauge histogram: every scrape a fresh snapshot of 5–50 observations.
fn gauge(rng: &mut Lcg, l: &[(&str, &str)], schema: i32, zt: f64, median: f64, float: bool) -> Series {
    let mut samples = Vec::new();
    for t in scrape_times(rng, 0, SPAN) {
        let mut acc = Acc::new(schema, zt);
        for _ in 0..rng.int(5, 50) {
            let v = observation(rng, median, schema, 0.05);
            let w = if float { rng.int(1, 6) as f64 * 0.5 } else { 1.0 };
            acc.observe(v, w);
        }
        let h = if float { acc.float(CounterResetHint::Gauge) } else { acc.integer(CounterResetHint::Gauge) };
        samples.push((t, Val::Hist(h)));
    }
    Series { labels: labels(l), samples }
}

/// A float series: a counter (`rate` ≥ 0) or a gauge in `[lo, hi)`.
fn floats(rng: &mut Lcg, l: &[(&str, &str)], counter: bool, lo: f64, hi: f64) -> Series {
    // Counters start high, away from the float zero-point difference.
    let mut v = if counter { 10_000.0 } else { lo };
    let samples = scrape_times(rng, 0, SPAN)
        .into_iter()
        .map(|t| {
            v = if counter { v + rng.int(0, 40) as f64 } else { rng.int(lo as i64, hi as i64 - 1) as f64 };
            (t, Val::Float(v))
        })
        .collect();
    Series { labels: labels(l), samples }
}

/// Every generated series.
pub fn generate() -> Vec<Series> {
    let mut rng = Lcg::new(0x4e48_4449_4646); // "NHDIFF"
    let mut out = Vec::new();
    let base = Counter {
        labels: &[],
        schema: 0,
        zero_threshold: 1e-3,
        from_s: 0,
        to_s: SPAN,
        stale_at_end: false,
        resets: &[],
        median: 0.08,
        zeros: 0.05,
        negative: 0.0,
        nan: 0.0,
        float: false,
        initial: 300,
    };
    // One API instance per schema; some start late, stop, or restart.
    for schema in [-2, 0, 1, 2, 3, 4, 5, 6, 7, 8] {
        let s = schema.to_string();
        let instance = format!("api-{}", if schema < 0 { format!("m{}", -schema) } else { s.clone() });
        let l = [
            ("__name__", "nh_latency_seconds"),
            ("job", "api"),
            ("instance", instance.as_str()),
            ("schema", s.as_str()),
        ];
        let c = Counter {
            labels: &l,
            schema,
            zero_threshold: if schema == 8 { 0.0 } else { 1e-3 },
            from_s: if schema == 2 { 1_800 } else { 0 },
            to_s: if schema == 5 { 5_000 } else { SPAN },
            stale_at_end: schema == 5,
            resets: match schema {
                1 => &[3_600],
                4 => &[2_400, 5_400],
                _ => &[],
            },
            ..base
        };
        out.push(c.generate(&mut rng));
    }
    // Float counter histograms (weighted observations), two schemas.
    for (instance, schema, resets) in [("api-1", 1, &[][..]), ("api-2", 3, &[4_000][..])] {
        let c = Counter {
            labels: &[("__name__", "nh_payload_bytes"), ("job", "api"), ("instance", instance)],
            schema,
            zero_threshold: 0.5,
            resets,
            median: 900.0,
            float: true,
            initial: 200,
            ..base
        };
        out.push(c.generate(&mut rng));
    }
    // Negative and positive observations.
    out.push(
        Counter {
            labels: &[("__name__", "nh_balance_change"), ("job", "ledger")],
            schema: 3,
            zero_threshold: 1e-2,
            median: 5.0,
            zeros: 0.1,
            negative: 0.4,
            ..base
        }
        .generate(&mut rng),
    );
    // NaN observations now and then: NaN sums from the first on.
    out.push(
        Counter {
            labels: &[("__name__", "nh_nan_seconds"), ("job", "batch")],
            schema: 0,
            median: 2.0,
            nan: 0.01,
            ..base
        }
        .generate(&mut rng),
    );
    // A batch job: appears, goes stale, comes back (a reset).
    let job = [("__name__", "nh_job_seconds"), ("job", "batch"), ("instance", "b-1")];
    let first =
        Counter { labels: &job, schema: 3, from_s: 1_800, to_s: 4_200, stale_at_end: true, median: 30.0, ..base }
            .generate(&mut rng);
    let second =
        Counter { labels: &job, schema: 3, from_s: 5_400, to_s: SPAN, median: 30.0, ..base }.generate(&mut rng);
    out.push(Series { labels: first.labels, samples: first.samples.into_iter().chain(second.samples).collect() });
    // Gauge histograms.
    out.push(gauge(
        &mut rng,
        &[("__name__", "nh_queue_depth"), ("job", "worker"), ("instance", "w-1")],
        2,
        0.0,
        20.0,
        false,
    ));
    out.push(gauge(
        &mut rng,
        &[("__name__", "nh_queue_depth"), ("job", "worker"), ("instance", "w-2")],
        2,
        0.0,
        8.0,
        false,
    ));
    out.push(gauge(
        &mut rng,
        &[("__name__", "nh_mem_ratio"), ("job", "worker"), ("instance", "w-1")],
        4,
        1e-3,
        0.3,
        true,
    ));
    // Floats, then integer histograms, then floats again.
    {
        let l = [("__name__", "nh_mixed"), ("job", "mixed")];
        let hist =
            Counter { labels: &l, schema: 2, from_s: 2_400, to_s: 4_800, median: 1.0, ..base }.generate(&mut rng);
        let mut samples: Vec<(i64, Val)> = Vec::new();
        // Starts high: the float counter zero point is applied in a
        // different order by 2.42 (see the float test).
        let mut v = 5_000.0;
        for t in scrape_times(&mut rng, 0, 2_400) {
            v += rng.int(0, 9) as f64;
            samples.push((t, Val::Float(v)));
        }
        samples.extend(hist.samples);
        for t in scrape_times(&mut rng, 4_800, SPAN) {
            v += rng.int(0, 9) as f64;
            samples.push((t, Val::Float(v)));
        }
        // Two scrapes can land in the same few seconds at a switch: keep
        // strictly increasing timestamps.
        samples.dedup_by(|b, a| b.0 <= a.0);
        out.push(Series { labels: labels(&l), samples });
    }
    // Classic float series for mixed queries.
    for schema in ["0", "3", "8"] {
        let instance = format!("api-{schema}");
        out.push(floats(
            &mut rng,
            &[("__name__", "nh_requests_total"), ("job", "api"), ("instance", &instance)],
            true,
            0.0,
            0.0,
        ));
        out.push(floats(
            &mut rng,
            &[("__name__", "nh_scale"), ("job", "api"), ("instance", &instance)],
            false,
            1.0,
            5.0,
        ));
    }
    out
}

//! The synthetic dataset and queries of the PromQL engine benchmarks
//! (`benches/benches/promql.rs` and the `promql_compare` binary), so both
//! measure exactly the same thing; plus gauges and a wider query list for
//! the function and aggregation benchmark (`promql_functions.rs`).
//!
//! Two metrics over one 2 h block `[T0, T0 + 2h)` at a 15 s scrape interval
//! (480 samples per series):
//!
//! * `http_requests_total{job, instance, status}`: 10k counters (10 jobs ×
//!   200 instances × 5 status codes). One instance in 20 restarts once in the
//!   middle of the window, so `rate` sees counter resets.
//! * `http_request_duration_seconds_bucket{job, instance, le}`: 1k
//!   histograms × 12 buckets (the classic client-library defaults plus
//!   `+Inf`), cumulative and monotonic in `le`.
//!
//! Values come from a fixed-seed generator, so every run (ours, Prometheus')
//! sees identical data.

use std::io::{self, Write};
use std::path::Path;

use tidemark_storage::{Db, Labels, Sample, SyncPolicy};

/// First sample time: 2026-01-01T00:00:00Z, on a 2 h block boundary so the
/// data fills exactly one Prometheus block.
pub const T0: i64 = 1_767_225_600_000;
/// Scrape interval (ms).
pub const SCRAPE_MS: i64 = 15_000;
/// Samples per series: 2 h at 15 s.
pub const SAMPLES_PER_SERIES: usize = 480;
/// The last sample's timestamp.
pub const LAST_SAMPLE: i64 = T0 + (SAMPLES_PER_SERIES as i64 - 1) * SCRAPE_MS;
/// Queries are evaluated half a scrape interval off the sample grid, so no
/// range window starts exactly on a sample. Prometheus 3.x (our semantics)
/// excludes a sample on a window's left edge and 2.42 (the version we compare
/// with) includes it; off the grid both read the same samples and must agree.
pub const EVAL_OFFSET: i64 = SCRAPE_MS / 2;
/// Instant queries run here, and range queries end here: just after the
/// last sample.
pub const END: i64 = LAST_SAMPLE + EVAL_OFFSET;

const JOBS: [&str; 10] = ["api", "web", "auth", "billing", "search", "cart", "checkout", "catalog", "users", "notify"];
const STATUSES: [&str; 5] = ["200", "201", "404", "500", "503"];
/// Relative request rate of each status code.
const STATUS_WEIGHT: [u64; 5] = [60, 10, 5, 2, 1];
/// Upper bounds of the histogram buckets (Prometheus client defaults + `+Inf`).
const LE: [&str; 12] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];

/// How many series of each metric to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Instances exporting `http_requests_total` (×5 status codes each).
    pub request_instances: usize,
    /// Instances exporting the latency histogram (×12 buckets each).
    pub histogram_instances: usize,
}

impl Default for Shape {
    /// 10k counter series and 1k histograms (12k bucket series): 10.56 M samples.
    fn default() -> Shape {
        Shape { request_instances: 2_000, histogram_instances: 1_000 }
    }
}

/// A query of the benchmark: either instant (at [`END`]) or a range query
/// over the whole 2 h window (from `T0 + EVAL_OFFSET` to [`END`]) with the
/// given step.
#[derive(Debug, Clone, Copy)]
pub struct BenchQuery {
    /// Short name used in benchmark ids and tables.
    pub name: &'static str,
    /// The PromQL text.
    pub promql: &'static str,
    /// `None` for an instant query at [`END`], `Some(step_ms)` for a range
    /// query from `T0 + EVAL_OFFSET` to [`END`].
    pub step_ms: Option<i64>,
}

impl BenchQuery {
    /// Start of the evaluation range (equals [`END`] for instant queries).
    pub fn start(&self) -> i64 {
        if self.step_ms.is_some() {
            T0 + EVAL_OFFSET
        } else {
            END
        }
    }
}

/// The range of every range selector in [`QUERIES`] (`[5m]`).
pub const WINDOW_MS: i64 = 300_000;

/// The benchmarked queries.
pub const QUERIES: [BenchQuery; 10] = [
    BenchQuery { name: "sum_rate_instant", promql: "sum(rate(http_requests_total[5m]))", step_ms: None },
    BenchQuery { name: "rate_range_60s", promql: "rate(http_requests_total[5m])", step_ms: Some(60_000) },
    BenchQuery {
        name: "sum_by_job_status_rate_range_15s",
        promql: "sum by (job, status) (rate(http_requests_total[5m]))",
        step_ms: Some(15_000),
    },
    BenchQuery {
        name: "histogram_quantile_instant",
        promql: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        step_ms: None,
    },
    BenchQuery {
        name: "histogram_quantile_range_60s",
        promql: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        step_ms: Some(60_000),
    },
    BenchQuery {
        name: "topk_rate_range_60s",
        promql: "topk(10, rate(http_requests_total[5m]))",
        step_ms: Some(60_000),
    },
    // Every window of a 15 s step overlaps 19 others: the case where `rate`
    // takes each window's counter resets from a per-series list.
    BenchQuery { name: "rate_range_15s", promql: "rate(http_requests_total[5m])", step_ms: Some(15_000) },
    // `topk` over every window of a 15 s step: folded series by series
    // into one heap per step, the input never materialised.
    BenchQuery {
        name: "topk_rate_range_15s",
        promql: "topk(10, rate(http_requests_total[5m]))",
        step_ms: Some(15_000),
    },
    // Many groups of few series each at a 15 s step (the shape of issue 13's
    // CPU-busy query): the per-group, per-step states are walked once per series.
    BenchQuery {
        name: "avg_by_instance_irate_range_15s",
        promql: "avg by (instance) (irate(http_requests_total[5m]))",
        step_ms: Some(15_000),
    },
    // Every series selected and sorted by labels (issue 13's heaviest instant query).
    BenchQuery { name: "count_all_instant", promql: r#"count({__name__=~".+"})"#, step_ms: None },
];

/// splitmix64: a tiny fixed-seed generator, so the data never depends on a
/// crate version.
/// Shared by the data generators of the benchmark binaries.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn instance(i: usize) -> String {
    format!("10.{}.{}.{}:8080", i / 65_536 % 256, i / 256 % 256, i % 256)
}

/// Generates the dataset: every series with its 480 samples, counters first.
pub fn generate(shape: Shape) -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Rng(SEED);
    let mut out = Vec::with_capacity(shape.request_instances * STATUSES.len() + shape.histogram_instances * LE.len());
    for i in 0..shape.request_instances {
        let job = JOBS[i % JOBS.len()];
        let inst = instance(i);
        // One instance in 20 restarts at a random scrape: its counters drop to 0.
        let restart_at = if i % 20 == 7 { Some(1 + rng.below(SAMPLES_PER_SERIES as u64 - 2) as usize) } else { None };
        let base_rate = 1 + rng.below(20);
        for (s, status) in STATUSES.iter().enumerate() {
            let labels = Labels::new([
                ("__name__", "http_requests_total"),
                ("job", job),
                ("instance", &inst),
                ("status", status),
            ])
            .expect("valid labels");
            let mut v = rng.below(1_000_000) as f64;
            let samples = (0..SAMPLES_PER_SERIES)
                .map(|k| {
                    if Some(k) == restart_at {
                        v = 0.0;
                    }
                    v += rng.below(base_rate * STATUS_WEIGHT[s] * 15 / 10 + 1) as f64;
                    Sample::new(T0 + k as i64 * SCRAPE_MS, v)
                })
                .collect();
            out.push((labels, samples));
        }
    }
    for i in 0..shape.histogram_instances {
        let job = JOBS[i % JOBS.len()];
        let inst = instance(i);
        // Cumulative counts per bucket; each scrape adds a batch of requests
        // whose latencies fall into buckets with a skewed distribution.
        let mut counts = [0u64; LE.len()];
        let mut series: Vec<Vec<Sample>> = vec![Vec::with_capacity(SAMPLES_PER_SERIES); LE.len()];
        let per_scrape = 20 + rng.below(200);
        for k in 0..SAMPLES_PER_SERIES {
            let n = per_scrape / 2 + rng.below(per_scrape);
            let mut per_bucket = [0u64; LE.len()];
            for _ in 0..n {
                // Latency bucket: mostly low, with a long tail.
                let r = rng.below(1000);
                let b = match r {
                    0..=99 => 0,
                    100..=299 => 1,
                    300..=549 => 2,
                    550..=749 => 3,
                    750..=879 => 4,
                    880..=949 => 5,
                    950..=979 => 6,
                    980..=991 => 7,
                    992..=996 => 8,
                    997..=998 => 9,
                    _ => 10 + rng.below(2) as usize,
                };
                per_bucket[b] += 1;
            }
            let mut cumulative = 0;
            for b in 0..LE.len() {
                cumulative += per_bucket[b];
                counts[b] += cumulative;
                series[b].push(Sample::new(T0 + k as i64 * SCRAPE_MS, counts[b] as f64));
            }
        }
        for (b, samples) in series.into_iter().enumerate() {
            let labels = Labels::new([
                ("__name__", "http_request_duration_seconds_bucket"),
                ("job", job),
                ("instance", &inst),
                ("le", LE[b]),
            ])
            .expect("valid labels");
            out.push((labels, samples));
        }
    }
    out
}

/// The generator's seed.
const SEED: u64 = 0x71de_4a2c;

/// Seed of [`generate_gauges`], separate from [`SEED`] so adding gauges
/// leaves the counters and histograms of [`generate`] untouched.
const GAUGE_SEED: u64 = 0x9a06_e5ed;

/// Page size of the memory gauge: resident memory moves in whole pages.
const PAGE: u64 = 4096;

/// Gauges for the function benchmarks (`benches/benches/promql_functions.rs`):
/// `process_resident_memory_bytes{job, instance}`, one per request instance
/// of `shape`, over the same 480 scrapes as [`generate`]. Each is a random
/// walk of whole pages around a per-instance base of 64–1088 MiB that goes
/// up and down (so `delta`, `deriv` and `predict_linear` see both signs)
/// and stays unchanged on about a third of the scrapes (so `changes` has
/// something to count).
pub fn generate_gauges(shape: Shape) -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Rng(GAUGE_SEED);
    (0..shape.request_instances)
        .map(|i| {
            let labels = Labels::new([
                ("__name__", "process_resident_memory_bytes"),
                ("job", JOBS[i % JOBS.len()]),
                ("instance", &instance(i)),
            ])
            .expect("valid labels");
            let base_pages = (64 << 20) / PAGE + rng.below((1024 << 20) / PAGE);
            let mut pages = base_pages as i64;
            let samples = (0..SAMPLES_PER_SERIES)
                .map(|k| {
                    if rng.below(3) != 0 {
                        // ±2 MiB per scrape, never below 16 MiB.
                        pages = (pages + rng.below(1025) as i64 - 512).max(((16 << 20) / PAGE) as i64);
                    }
                    Sample::new(T0 + k as i64 * SCRAPE_MS, (pages as u64 * PAGE) as f64)
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

/// Queries of the function and aggregation benchmark
/// (`benches/benches/promql_functions.rs`), over [`generate`] plus
/// [`generate_gauges`]. Range queries cover the whole 2 h at a 60 s step
/// (121 steps), like the range queries of [`QUERIES`]; the few instant ones
/// run at [`END`].
pub const FUNCTION_QUERIES: [BenchQuery; 42] = [
    // Counter functions.
    q("irate", "irate(http_requests_total[5m])"),
    q("increase", "increase(http_requests_total[5m])"),
    q("resets_30m", "resets(http_requests_total[30m])"),
    // Gauge functions.
    q("delta_gauge", "delta(process_resident_memory_bytes[5m])"),
    q("idelta_gauge", "idelta(process_resident_memory_bytes[5m])"),
    q("deriv_gauge", "deriv(process_resident_memory_bytes[5m])"),
    q("predict_linear_gauge", "predict_linear(process_resident_memory_bytes[15m], 3600)"),
    q("changes_gauge_30m", "changes(process_resident_memory_bytes[30m])"),
    // `*_over_time` on the gauges.
    q("avg_over_time", "avg_over_time(process_resident_memory_bytes[5m])"),
    q("max_over_time", "max_over_time(process_resident_memory_bytes[5m])"),
    q("quantile_over_time", "quantile_over_time(0.9, process_resident_memory_bytes[5m])"),
    q("stddev_over_time", "stddev_over_time(process_resident_memory_bytes[5m])"),
    q("count_over_time", "count_over_time(process_resident_memory_bytes[5m])"),
    q("last_over_time", "last_over_time(process_resident_memory_bytes[5m])"),
    // Label manipulation and element-wise math on the 10k counters.
    q("label_replace", r#"label_replace(http_requests_total, "host", "$1", "instance", "(.*):\\d+")"#),
    q("abs", "abs(http_requests_total)"),
    q("clamp", "clamp(http_requests_total, 1000, 500000)"),
    q("round", "round(http_requests_total, 10)"),
    // Aggregations over the 10k per-series rates.
    q("sum_rate", "sum(rate(http_requests_total[5m]))"),
    q("avg_by_job_rate", "avg by (job) (rate(http_requests_total[5m]))"),
    q("min_by_status_rate", "min by (status) (rate(http_requests_total[5m]))"),
    q("max_by_status_rate", "max by (status) (rate(http_requests_total[5m]))"),
    q("count_by_job", "count by (job) (http_requests_total)"),
    q("stddev_by_job_rate", "stddev by (job) (rate(http_requests_total[5m]))"),
    q("quantile_by_job_rate", "quantile by (job) (0.9, rate(http_requests_total[5m]))"),
    // This query and the two `group_left` ones below cost per series and
    // step, not per sample: over all 10k counters they took 2.2–3.1 s at
    // p=1 (against 0.3–0.4 s for the `rate` alone), a minute of the run
    // with criterion's 10 samples each, so they select one job (1k
    // counters, 200 instances).
    q("count_values_rate_job", r#"count_values("rps", round(rate(http_requests_total{job="api"}[5m])))"#),
    q("bottomk_rate", "bottomk(10, rate(http_requests_total[5m]))"),
    q("group_by_job_instance", "group by (job, instance) (http_requests_total)"),
    // Vector-vector binary operators.
    q(
        "div_ignoring_status",
        r#"rate(http_requests_total{status="500"}[5m]) / ignoring (status) rate(http_requests_total{status="200"}[5m])"#,
    ),
    q(
        "div_on_group_left_job",
        r#"rate(http_requests_total{job="api"}[5m]) / on (job, instance) group_left sum by (job, instance) (rate(http_requests_total{job="api"}[5m]))"#,
    ),
    q(
        "mul_on_group_left_gauge_job",
        r#"rate(http_requests_total{job="api"}[5m]) * on (job, instance) group_left process_resident_memory_bytes{job="api"}"#,
    ),
    // Comparison filters.
    q("gt_filter_rate", "rate(http_requests_total[5m]) > 10"),
    q("gt_bool_rate", "rate(http_requests_total[5m]) > bool 10"),
    q(
        "gt_vector_filter",
        "process_resident_memory_bytes > on (job, instance) avg_over_time(process_resident_memory_bytes[30m])",
    ),
    // Subquery.
    q("subquery_max_rate_30m_1m", "max_over_time(rate(http_requests_total[5m])[30m:1m])"),
    // Instant queries.
    i("quantile_over_time_1h_instant", "quantile_over_time(0.99, process_resident_memory_bytes[1h])"),
    i("predict_linear_1h_instant", "predict_linear(process_resident_memory_bytes[1h], 14400)"),
    i("increase_1h_instant", "increase(http_requests_total[1h])"),
    i("count_values_instant", r#"count_values("rps", round(rate(http_requests_total[5m])))"#),
    i("quantile_by_job_instant", "quantile by (job) (0.99, rate(http_request_duration_seconds_bucket[5m]))"),
    i("div_on_group_left_instant", "rate(http_requests_total[5m]) / on (job, instance) group_left sum by (job, instance) (rate(http_requests_total[5m]))"),
    i("subquery_max_rate_30m_1m_instant", "max_over_time(rate(http_requests_total[5m])[30m:1m])"),
];

/// A range query of [`FUNCTION_QUERIES`]: the whole 2 h at a 60 s step.
const fn q(name: &'static str, promql: &'static str) -> BenchQuery {
    BenchQuery { name, promql, step_ms: Some(60_000) }
}

/// An instant query of [`FUNCTION_QUERIES`], at [`END`].
const fn i(name: &'static str, promql: &'static str) -> BenchQuery {
    BenchQuery { name, promql, step_ms: None }
}

/// Total samples in a dataset.
pub fn sample_count(data: &[(Labels, Vec<Sample>)]) -> u64 {
    data.iter().map(|(_, s)| s.len() as u64).sum()
}

/// Appends the dataset to `db` one scrape at a time (every series' sample at
/// one timestamp per commit, through cached series refs), as a scraper would.
pub fn ingest(db: &Db, data: &[(Labels, Vec<Sample>)]) -> Result<(), Box<dyn std::error::Error>> {
    let mut refs: Vec<u64> = Vec::with_capacity(data.len());
    let mut app = db.appender();
    for (labels, samples) in data {
        let Some(first) = samples.first() else { continue };
        refs.push(app.append(labels, first.t, first.v)?);
    }
    app.commit()?;
    let max_len = data.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    for k in 1..max_len {
        let mut app = db.appender();
        for ((_, samples), r) in data.iter().filter(|(_, s)| !s.is_empty()).zip(&refs) {
            if let Some(s) = samples.get(k) {
                app.append_ref(*r, s.t, s.v)?;
            }
        }
        app.commit()?;
    }
    Ok(())
}

/// Opens a database in `dir` (no background maintenance, no WAL fsync),
/// [`ingest`]s the dataset and flushes the head, so queries read one
/// persisted block, as Prometheus does after `create-blocks-from`.
pub fn build_db(dir: &Path, data: &[(Labels, Vec<Sample>)]) -> Result<Db, Box<dyn std::error::Error>> {
    let db = Db::builder(dir).maintenance_interval(None).wal_sync(SyncPolicy::Never).open()?;
    ingest(&db, data)?;
    db.flush_head()?;
    Ok(db)
}

/// Writes the dataset as OpenMetrics text (timestamps in seconds), series by
/// series, ending with `# EOF`, the input `promtool tsdb
/// create-blocks-from openmetrics` takes.
pub fn write_openmetrics(data: &[(Labels, Vec<Sample>)], mut w: impl Write) -> io::Result<()> {
    for (labels, samples) in data {
        let name = labels.get("__name__").unwrap_or("");
        let mut key = String::with_capacity(128);
        key.push_str(name);
        key.push('{');
        let mut first = true;
        for l in labels.iter() {
            if l.name == "__name__" {
                continue;
            }
            if !first {
                key.push(',');
            }
            first = false;
            key.push_str(l.name);
            key.push_str("=\"");
            for c in l.value.chars() {
                match c {
                    '\\' => key.push_str("\\\\"),
                    '"' => key.push_str("\\\""),
                    '\n' => key.push_str("\\n"),
                    c => key.push(c),
                }
            }
            key.push('"');
        }
        key.push('}');
        for s in samples {
            // Millisecond timestamps as exact decimal seconds.
            let (sign, ms) = if s.t < 0 { ("-", s.t.unsigned_abs()) } else { ("", s.t.unsigned_abs()) };
            writeln!(w, "{key} {} {sign}{}.{:03}", s.v, ms / 1000, ms % 1000)?;
        }
    }
    writeln!(w, "# EOF")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_has_the_advertised_shape_and_monotonic_buckets() {
        let data = generate(Shape { request_instances: 8, histogram_instances: 2 });
        assert_eq!(data.len(), 8 * 5 + 2 * 12);
        assert_eq!(sample_count(&data), (8 * 5 + 2 * 12) * SAMPLES_PER_SERIES as u64);
        for (_, s) in &data {
            assert_eq!(s.first().map(|s| s.t), Some(T0));
            assert_eq!(s.last().map(|s| s.t), Some(LAST_SAMPLE));
        }
        // Buckets of one histogram are cumulative: each count ≤ the next le's.
        let buckets = &data[40..52];
        for k in 0..SAMPLES_PER_SERIES {
            for b in 1..12 {
                assert!(buckets[b - 1].1[k].v <= buckets[b].1[k].v);
            }
        }
        // Instance 0's counters never drop; instance 7's (i % 20 == 7) drop once.
        let drops = |i: usize| data[i].1.windows(2).filter(|w| w[1].v < w[0].v).count();
        assert_eq!(drops(0), 0);
        assert_eq!(drops(7 * 5), 1);
    }

    #[test]
    fn gauges_cover_the_window_move_both_ways_and_sometimes_stay() {
        let shape = Shape { request_instances: 20, histogram_instances: 1 };
        let gauges = generate_gauges(shape);
        assert_eq!(gauges.len(), 20);
        assert_eq!(gauges, generate_gauges(shape));
        let (mut up, mut down, mut same) = (0, 0, 0);
        for (l, s) in &gauges {
            assert_eq!(l.get("__name__"), Some("process_resident_memory_bytes"));
            assert_eq!(s.len(), SAMPLES_PER_SERIES);
            assert_eq!(s.first().map(|s| s.t), Some(T0));
            assert_eq!(s.last().map(|s| s.t), Some(LAST_SAMPLE));
            for w in s.windows(2) {
                assert_eq!(w[1].v % PAGE as f64, 0.0);
                match w[1].v.partial_cmp(&w[0].v) {
                    Some(std::cmp::Ordering::Greater) => up += 1,
                    Some(std::cmp::Ordering::Less) => down += 1,
                    _ => same += 1,
                }
            }
        }
        // Every kind of step is common, none dominates.
        let all = (up + down + same) as f64;
        for n in [up, down, same] {
            assert!(n as f64 > all / 5.0, "up {up} down {down} same {same}");
        }
    }

    #[test]
    fn function_query_names_are_unique() {
        let mut names: Vec<_> = FUNCTION_QUERIES.iter().map(|q| q.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FUNCTION_QUERIES.len());
    }

    #[test]
    fn same_shape_gives_identical_data() {
        let shape = Shape { request_instances: 8, histogram_instances: 1 };
        assert_eq!(generate(shape), generate(shape));
    }

    #[test]
    fn openmetrics_lines_carry_labels_value_and_seconds() {
        let l = Labels::new([("__name__", "m"), ("a", "x\"y")]).unwrap();
        // (Negative times only check the formatting; real series are ordered.)
        let data = vec![(l, vec![Sample::new(1_500, 2.5), Sample::new(-1, 1.0)])];
        let mut out = Vec::new();
        write_openmetrics(&data, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "m{a=\"x\\\"y\"} 2.5 1.500\nm{a=\"x\\\"y\"} 1 -0.001\n# EOF\n");
    }
}

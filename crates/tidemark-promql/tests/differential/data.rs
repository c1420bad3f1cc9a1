//! Deterministic test data: about 380 series over two hours, scraped every
//! 15 s with per-target phase and per-sample jitter.
//!
//! Every sample timestamp has a non-zero millisecond part, while every query
//! time, step, range, offset and `@` time in the differential test is a whole
//! second. So no sample ever sits exactly on a range or lookback boundary,
//! which is where Prometheus 2.x (closed ranges) and 3.x (left-open ranges)
//! differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Start of the data, in seconds since the epoch (2023-11-14T22:00:00Z, an
/// hour boundary so date functions have round answers to reason about).
pub const T0: i64 = 1_699_999_200;
/// Length of the data in seconds.
pub const SPAN: i64 = 7_200;
/// Scrape interval in milliseconds.
const SCRAPE_MS: i64 = 15_000;

/// One generated series: labels (including `__name__`) and samples `(ms, value)`.
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, f64)>,
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): enough
/// randomness for test data, and identical on every machine.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        f64::from(self.next_u32()) / 4_294_967_296.0
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (u64::from(self.next_u32()) % ((hi - lo + 1) as u64)) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Rounds to three decimals, so values print briefly in the OpenMetrics file.
fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The scrape timestamps (ms) of one target between `from_s` and `to_s`
/// seconds after [`T0`]: a fixed per-target phase, ±400 ms jitter, about one
/// scrape in 60 missed, and never a whole second.
pub fn scrape_times(rng: &mut Lcg, from_s: i64, to_s: i64) -> Vec<i64> {
    let phase = rng.int(0, 14_000);
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let base = (T0 + from_s) * 1000 + i * SCRAPE_MS + phase;
        if base >= (T0 + to_s) * 1000 {
            break;
        }
        i += 1;
        if rng.chance(1.0 / 60.0) {
            continue;
        }
        let mut t = base + rng.int(-400, 400);
        if t % 1000 == 0 {
            t += 1;
        }
        out.push(t);
    }
    out
}

/// A counter: increments of about `per_s` per second (integers when
/// `integer`), and a reset to a small value at every time in `resets_ms`
/// (the first sample at or after it).
fn counter(rng: &mut Lcg, times: &[i64], start: f64, per_s: f64, integer: bool, resets_ms: &[i64]) -> Vec<f64> {
    let mut v = start;
    let mut prev_t = None;
    let mut reset_idx = 0;
    times
        .iter()
        .map(|&t| {
            if let Some(p) = prev_t {
                let inc = per_s * ((t - p) as f64 / 1000.0) * rng.range(0.3, 1.7);
                let inc = if integer { inc.round() } else { r3(inc) };
                if reset_idx < resets_ms.len() && t >= resets_ms[reset_idx] {
                    reset_idx += 1;
                    v = inc;
                } else {
                    v += inc;
                }
                if !integer {
                    v = r3(v);
                }
            }
            prev_t = Some(t);
            v
        })
        .collect()
}

/// A gauge: `base` plus a slow sine of `amplitude` plus uniform noise.
fn gauge(rng: &mut Lcg, times: &[i64], base: f64, amplitude: f64, noise: f64, integer: bool) -> Vec<f64> {
    let period_s = rng.range(1_800.0, 5_400.0);
    let shift = rng.range(0.0, std::f64::consts::TAU);
    times
        .iter()
        .map(|&t| {
            let x = (t as f64 / 1000.0 - T0 as f64) / period_s * std::f64::consts::TAU + shift;
            let v = base + amplitude * x.sin() + rng.range(-noise, noise);
            if integer {
                v.round()
            } else {
                r3(v)
            }
        })
        .collect()
}

/// Collects series and writes them as OpenMetrics text.
#[derive(Default)]
pub struct Data {
    pub series: Vec<Series>,
}

impl Data {
    fn add(&mut self, name: &str, labels: &[(&str, &str)], times: &[i64], values: Vec<f64>) {
        let mut l: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert("__name__".into(), name.into());
        let samples = times.iter().copied().zip(values).collect();
        self.series.push(Series { labels: l, samples });
    }

    /// Adds a classic histogram `name_bucket{le}` + `name_sum` + `name_count`
    /// sharing the target's timestamps. Observations per second follow
    /// `per_s`; each falls in a bucket drawn from a distribution whose scale
    /// drifts with `slow` (0 = fast service, 1 = slow). Buckets are cumulative,
    /// so monotone in `le`, and everything resets together at `resets_ms`.
    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &mut self,
        rng: &mut Lcg,
        name: &str,
        labels: &[(&str, &str)],
        times: &[i64],
        les: &[f64],
        per_s: f64,
        slow: f64,
        resets_ms: &[i64],
    ) {
        let n = les.len();
        let mut counts = vec![0.0f64; n + 1]; // per bucket, non-cumulative; last is +Inf overflow
        let mut sum = 0.0f64;
        let mut bucket_series = vec![Vec::with_capacity(times.len()); n + 1];
        let mut sums = Vec::with_capacity(times.len());
        let mut prev_t = None;
        let mut reset_idx = 0;
        for &t in times {
            if reset_idx < resets_ms.len() && t >= resets_ms[reset_idx] {
                reset_idx += 1;
                counts.iter_mut().for_each(|c| *c = 0.0);
                sum = 0.0;
            }
            if let Some(p) = prev_t {
                let observations = (per_s * ((t - p) as f64 / 1000.0) * rng.range(0.5, 1.5)).round() as usize;
                let drift = ((t / 1000 - T0) as f64 / 2_000.0).sin() * 0.5 + 0.5;
                for _ in 0..observations.min(400) {
                    // Heavy-tailed latency: an exponential-ish draw scaled by
                    // the service's slowness and the current drift.
                    let x = -(1.0 - rng.unit()).ln() * (0.02 + 0.4 * slow * (0.5 + drift));
                    let b = les.iter().position(|&le| x <= le).unwrap_or(n);
                    counts[b] += 1.0;
                    sum += x;
                }
            }
            prev_t = Some(t);
            let mut cum = 0.0;
            for (b, c) in counts.iter().enumerate() {
                cum += c;
                bucket_series[b].push(cum);
            }
            sums.push(r3(sum));
        }
        for (b, values) in bucket_series.into_iter().enumerate() {
            let le = if b == n { "+Inf".to_string() } else { format!("{}", les[b]) };
            let mut l = labels.to_vec();
            l.push(("le", &le));
            if b == n {
                self.add(&format!("{name}_count"), labels, times, values.clone());
            }
            self.add(&format!("{name}_bucket"), &l, times, values);
        }
        self.add(&format!("{name}_sum"), labels, times, sums);
    }

    /// The OpenMetrics text of every series (no `# TYPE` lines: every family
    /// is "unknown", which keeps names free), ending with `# EOF`.
    pub fn openmetrics(&self) -> String {
        let mut out = String::with_capacity(self.series.len() * 480 * 60);
        let mut order: Vec<&Series> = self.series.iter().collect();
        // Families must be contiguous; sorting by labels (name first) groups them.
        order.sort_by(|a, b| a.labels["__name__"].cmp(&b.labels["__name__"]).then(a.labels.cmp(&b.labels)));
        for s in order {
            let mut head = s.labels["__name__"].clone();
            let rest: Vec<String> =
                s.labels.iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            if !rest.is_empty() {
                head.push('{');
                head.push_str(&rest.join(","));
                head.push('}');
            }
            for &(t, v) in &s.samples {
                let value = if v.is_nan() { "NaN".to_string() } else { format!("{v}") };
                let _ = writeln!(out, "{head} {value} {}.{:03}", t / 1000, t % 1000);
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// Seconds after [`T0`] as absolute milliseconds.
fn at(s: i64) -> i64 {
    (T0 + s) * 1000
}

/// Builds the whole data set. Every metric of the seed queries has data, with
/// values chosen so that their filters (`> 0.05`, `> 10`, `== 0`, …) keep
/// something at some point in the two hours.
pub fn generate() -> Data {
    let mut d = Data::default();
    let rng = &mut Lcg::new(20_231_114);
    let latency_les = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let short_les = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

    // HTTP requests: api-gateway labels the status `code`, web labels it
    // `status`. web's second instance restarts at 50 min (every series
    // resets); a third web instance lives from 40 to 80 min, starting at 0.
    let statuses = [("200", 20.0), ("404", 1.0), ("500", 0.6), ("503", 0.25)];
    for (job, status_label, instances) in [
        ("api-gateway", "code", &[("10.0.0.1:8080", 0, SPAN), ("10.0.0.2:8080", 0, SPAN)][..]),
        (
            "web",
            "status",
            &[("10.0.1.1:8080", 0, SPAN), ("10.0.1.2:8080", 0, SPAN), ("10.0.1.3:8080", 2_400, 4_800)][..],
        ),
    ] {
        for &(instance, from, to) in instances {
            let times = scrape_times(rng, from, to);
            let resets: Vec<i64> = if instance == "10.0.1.2:8080" { vec![at(3_000)] } else { vec![] };
            for method in ["GET", "POST"] {
                for (status, per_s) in statuses {
                    // web's 500s are frequent enough to cross a 5 % error ratio.
                    let per_s = if job == "web" && status == "500" { 2.5 } else { per_s };
                    let per_s = if method == "POST" { per_s / 3.0 } else { per_s };
                    let start = if from == 0 { rng.range(5_000.0, 50_000.0).round() } else { 0.0 };
                    let v = counter(rng, &times, start, per_s, true, &resets);
                    let labels = [("job", job), ("instance", instance), ("method", method), (status_label, status)];
                    d.add("http_requests_total", &labels, &times, v);
                }
            }
            let slow = if job == "api-gateway" { 1.0 } else { 0.3 };
            d.histogram(
                rng,
                "http_request_duration_seconds",
                &[("job", job), ("instance", instance)],
                &times,
                &latency_les,
                8.0,
                slow,
                &resets,
            );
        }
    }

    // Up: one hypersdk instance is down (0) from 60 to 70 min.
    for (job, instances) in [
        ("api-gateway", &["10.0.0.1:8080", "10.0.0.2:8080"][..]),
        ("video-ingestion", &["10.0.2.1:9100"][..]),
        ("ml-pipeline", &["10.0.3.1:9100", "10.0.3.2:9100"][..]),
        ("analytics-engine", &["10.0.4.1:9100"][..]),
        ("hypersdk", &["10.0.5.1:8081", "10.0.5.2:8081"][..]),
    ] {
        for &instance in instances {
            let times = scrape_times(rng, 0, SPAN);
            let v = times
                .iter()
                .map(|&t| if instance == "10.0.5.2:8081" && (at(3_600)..at(4_200)).contains(&t) { 0.0 } else { 1.0 })
                .collect();
            d.add("up", &[("job", job), ("instance", instance)], &times, v);
        }
    }

    // WebSockets.
    for instance in ["ws-1", "ws-2"] {
        let times = scrape_times(rng, 0, SPAN);
        let l = [("job", "websocket"), ("instance", instance)];
        let messages = counter(rng, &times, 1e6, 300.0, true, &[]);
        let batches: Vec<f64> = messages.iter().map(|m| (m / rng.range(7.5, 8.5)).round()).collect();
        // Keep batches monotone: a counter derived from a noisy ratio could dip.
        let batches = batches
            .iter()
            .scan(0.0f64, |hi, &b| {
                *hi = hi.max(b);
                Some(*hi)
            })
            .collect();
        d.add("websocket_messages_total", &l, &times, messages);
        d.add("websocket_batches_sent_total", &l, &times, batches);
        let saved = counter(rng, &times, 3e8, 50_000.0, true, &[]);
        d.add("websocket_compression_savings_bytes", &l, &times, saved);
        for batching in ["true", "false"] {
            let v = gauge(rng, &times, 400.0, 150.0, 20.0, true);
            d.add(
                "websocket_active_connections",
                &[("job", "websocket"), ("instance", instance), ("supports_batching", batching)],
                &times,
                v,
            );
        }
    }
    {
        let times = scrape_times(rng, 0, SPAN);
        for (reason, per_s) in [("transport close", 12.0), ("ping timeout", 0.5), ("server namespace disconnect", 0.05)]
        {
            let v = counter(rng, &times, 20_000.0, per_s, true, &[]);
            d.add("socketio_disconnect_total", &[("job", "websocket"), ("reason", reason)], &times, v);
        }
        let v = gauge(rng, &times, 2_000.0, 500.0, 50.0, true);
        d.add("socketio_connected_clients", &[("job", "websocket")], &times, v);
    }

    // GraphQL.
    {
        let times = scrape_times(rng, 0, SPAN);
        let l = [("job", "graphql"), ("instance", "gql-1")];
        d.histogram(rng, "graphql_request_duration_seconds", &l, &times, &short_les, 5.0, 0.6, &[]);
        for kind in ["validation", "execution"] {
            let v = counter(rng, &times, 300.0, 0.2, true, &[]);
            d.add("graphql_errors_total", &[("job", "graphql"), ("instance", "gql-1"), ("type", kind)], &times, v);
        }
    }

    // CDN.
    for region in ["eu", "us"] {
        let times = scrape_times(rng, 0, SPAN);
        let l = [("job", "cdn"), ("region", region)];
        let hits = counter(rng, &times, 5e6, 900.0, true, &[]);
        let misses = counter(rng, &times, 4e5, 80.0, true, &[]);
        let saved = counter(rng, &times, 7e10, 2e6, true, &[]);
        d.add("cdn_cache_hits_total", &l, &times, hits);
        d.add("cdn_cache_misses_total", &l, &times, misses);
        d.add("cdn_bandwidth_saved_bytes", &l, &times, saved);
        d.histogram(rng, "cdn_response_time_seconds", &l, &times, &short_les, 6.0, 0.2, &[]);
    }

    // Databases.
    {
        let times = scrape_times(rng, 0, SPAN);
        let l = [("job", "db"), ("instance", "pg-1")];
        d.histogram(rng, "db_query_duration_seconds", &l, &times, &latency_les, 10.0, 0.1, &[]);
        for (pool, per_s) in [("read", 40.0), ("write", 9.0)] {
            let v = counter(rng, &times, 1e5, per_s, true, &[]);
            d.add("db_read_write_split_total", &[("job", "db"), ("pool", pool)], &times, v);
            for (state, base) in [("active", 12.0), ("idle", 8.0)] {
                let v = gauge(rng, &times, base, 5.0, 2.0, true);
                d.add("db_pool_connections", &[("job", "db"), ("pool", pool), ("state", state)], &times, v);
            }
        }
        for (instance, base) in [("pg-replica-1", 2.0), ("pg-replica-2", 5.0)] {
            let v = gauge(rng, &times, base, 3.0, 1.0, false);
            d.add("db_replication_lag_seconds", &[("job", "db"), ("instance", instance)], &times, v);
        }
    }

    // ML pipeline.
    {
        let times = scrape_times(rng, 0, SPAN);
        let l = [("job", "ml-pipeline")];
        d.histogram(rng, "ml_task_duration_seconds", &l, &times, &[0.5, 1.0, 5.0, 10.0, 30.0, 60.0], 2.0, 1.0, &[]);
        for model in ["resnet", "bert"] {
            let lm = [("job", "ml-pipeline"), ("model", model)];
            d.histogram(rng, "ml_inference_duration_seconds", &lm, &times, &short_les, 4.0, 0.5, &[]);
            let v = gauge(rng, &times, 0.93, 0.03, 0.005, false);
            d.add("ml_model_accuracy_score", &lm, &times, v);
        }
        for gpu in ["0", "1"] {
            let v = gauge(rng, &times, 70.0, 25.0, 5.0, false);
            d.add("nvidia_gpu_utilization_gpu", &[("job", "ml-pipeline"), ("gpu", gpu)], &times, v);
        }
        let v = gauge(rng, &times, 90.0, 40.0, 10.0, true);
        d.add("ml_tasks_queued", &l, &times, v);
        for backend in ["gpu-a", "gpu-b"] {
            let v = counter(rng, &times, 8e4, 15.0, true, &[]);
            d.add("ml_load_balancer_requests_total", &[("job", "ml-pipeline"), ("backend", backend)], &times, v);
        }
    }

    // HyperSDK jobs, per provider; the error ratio crosses 5 % now and then.
    for provider in ["aws", "gcp"] {
        let times = scrape_times(rng, 0, SPAN);
        let l = [("job", "hypersdk"), ("provider", provider)];
        let completed = counter(rng, &times, 4e4, 2.0, true, &[]);
        let failed = counter(rng, &times, 900.0, 0.1, true, &[]);
        d.add("hypersdk_jobs_completed_total", &l, &times, completed);
        d.add("hypersdk_jobs_failed_total", &l, &times, failed);
        let total = counter(rng, &times, 2e5, 3.0, true, &[]);
        d.add("hypersdk_provider_jobs_total", &l, &times, total);
        d.histogram(
            rng,
            "hypersdk_job_duration_seconds",
            &l,
            &times,
            &[1.0, 5.0, 10.0, 30.0, 60.0, 120.0],
            2.0,
            1.0,
            &[],
        );
        let requests = counter(rng, &times, 3e5, 30.0, true, &[]);
        let errors = counter(rng, &times, 1e4, 1.5, true, &[]);
        d.add("hypersdk_http_requests_total", &l, &times, requests);
        d.add("hypersdk_http_errors_total", &l, &times, errors);
        d.histogram(rng, "hypersdk_http_response_time_seconds", &l, &times, &short_les, 6.0, 1.5, &[]);
        let base = if provider == "aws" { 2.3e9 } else { 1.6e9 };
        let v = gauge(rng, &times, base, 3e8, 2e7, true);
        d.add("hypersdk_memory_bytes", &l, &times, v);
    }
    {
        let times = scrape_times(rng, 0, SPAN);
        let v = gauge(rng, &times, 0.97, 0.02, 0.005, false);
        d.add("hypersdk:job_success_rate", &[("job", "hypersdk")], &times, v);
        let v: Vec<f64> = gauge(rng, &times, 0.99, 0.008, 0.002, false).into_iter().map(|x| x.min(1.0)).collect();
        d.add("sli:platform_availability:rate5m", &[], &times, v);
    }

    // Video processing.
    {
        let times = scrape_times(rng, 0, SPAN);
        for (status, per_s) in [("success", 3.0), ("failure", 0.1)] {
            let v = counter(rng, &times, 2e4, per_s, true, &[]);
            d.add("video_processing_total", &[("job", "video-ingestion"), ("status", status)], &times, v);
        }
        let v = counter(rng, &times, 3e3, 0.3, true, &[]);
        d.add("video_processing_batches_total", &[("job", "video-ingestion")], &times, v);
    }

    // Kubernetes: containers, pods, nodes, volumes.
    for (deployment, pods) in
        [("api", &["api-7f9c-abcde", "api-7f9c-fghij"][..]), ("worker", &["worker-5d4-klmno"][..])]
    {
        for &pod in pods {
            let times = scrape_times(rng, 0, SPAN);
            let l = [("namespace", "prod"), ("deployment", deployment), ("pod", pod), ("container", deployment)];
            let cpu = counter(rng, &times, 5_000.0, 0.6, false, &[]);
            d.add("container_cpu_usage_seconds_total", &l, &times, cpu);
            let limit = if deployment == "api" { 1.073_741_824e9 } else { 2.147_483_648e9 };
            let base = if pod == "api-7f9c-fghij" { 0.9 } else { 0.6 } * limit;
            let ws: Vec<f64> = gauge(rng, &times, base, limit * 0.08, limit * 0.01, true);
            d.add("container_memory_working_set_bytes", &l, &times, ws);
            d.add("container_spec_memory_limit_bytes", &l, &times, vec![limit; times.len()]);
            let rx = counter(rng, &times, 1e9, 2e5, true, &[]);
            let mut ln = l.to_vec();
            ln.push(("interface", "eth0"));
            d.add("container_network_receive_bytes_total", &ln, &times, rx);
            // Restarts: the worker restarts every ~5 min (increase over 1h > 5).
            let every_s = if deployment == "worker" { 300 } else { 100_000 };
            let v = times.iter().map(|&t| ((t / 1000 - T0) / every_s) as f64).collect();
            d.add("kube_pod_container_status_restarts_total", &l, &times, v);
        }
    }
    // A short-lived pod (20–35 min) for lookback at its end.
    {
        let times = scrape_times(rng, 1_200, 2_100);
        let l = [("namespace", "prod"), ("deployment", "batch"), ("pod", "batch-job-xyz"), ("container", "batch")];
        let cpu = counter(rng, &times, 0.0, 0.9, false, &[]);
        d.add("container_cpu_usage_seconds_total", &l, &times, cpu);
    }
    for node in ["node-a", "node-b"] {
        let times = scrape_times(rng, 0, SPAN);
        for condition in ["Ready", "MemoryPressure"] {
            for status in ["true", "false", "unknown"] {
                let truth = match (node, condition) {
                    ("node-b", "Ready") => {
                        // node-b is not ready from 80 to 90 min.
                        |t: i64| !(at(4_800)..at(5_400)).contains(&t)
                    }
                    (_, "Ready") => |_t: i64| true,
                    _ => |_t: i64| false,
                };
                let v = times
                    .iter()
                    .map(|&t| {
                        let is = truth(t);
                        match status {
                            "true" => f64::from(u8::from(is)),
                            "false" => f64::from(u8::from(!is)),
                            _ => 0.0,
                        }
                    })
                    .collect();
                d.add(
                    "kube_node_status_condition",
                    &[("node", node), ("condition", condition), ("status", status)],
                    &times,
                    v,
                );
            }
        }
        let (claim, cap) = (format!("data-{node}"), 1e11);
        let used = gauge(rng, &times, cap * 0.7, cap * 0.1, cap * 0.001, true);
        let l = [("namespace", "prod"), ("persistentvolumeclaim", claim.as_str())];
        d.add("kubelet_volume_stats_used_bytes", &l, &times, used);
        d.add("kubelet_volume_stats_capacity_bytes", &l, &times, vec![cap; times.len()]);
    }

    // Node exporter.
    for instance in ["node-a:9100", "node-b:9100"] {
        let times = scrape_times(rng, 0, SPAN);
        for cpu in ["0", "1"] {
            for (mode, share) in [("idle", 0.7), ("user", 0.2), ("system", 0.07), ("iowait", 0.03)] {
                let v = counter(rng, &times, 1e6 * share, share, false, &[]);
                d.add("node_cpu_seconds_total", &[("instance", instance), ("cpu", cpu), ("mode", mode)], &times, v);
            }
        }
        let total = 1.6e10;
        d.add("node_memory_MemTotal_bytes", &[("instance", instance)], &times, vec![total; times.len()]);
        let avail = gauge(rng, &times, total * 0.4, total * 0.15, total * 0.01, true);
        d.add("node_memory_MemAvailable_bytes", &[("instance", instance)], &times, avail);
        for (mountpoint, device, size) in [("/", "/dev/sda1", 1e11), ("/data", "/dev/sdb1", 5e11)] {
            let l = [("instance", instance), ("mountpoint", mountpoint), ("device", device), ("fstype", "ext4")];
            d.add("node_filesystem_size_bytes", &l, &times, vec![size; times.len()]);
            let avail = gauge(rng, &times, size * 0.5, size * 0.2, size * 0.001, true);
            d.add("node_filesystem_avail_bytes", &l, &times, avail);
        }
    }

    // A gauge that goes negative, for abs/sgn/clamp/trig/rounding, and one
    // sensor that reports NaN now and then.
    {
        let times = scrape_times(rng, 0, SPAN);
        for sensor in ["inlet", "outlet"] {
            let v = gauge(rng, &times, 5.0, 20.0, 3.0, false);
            d.add("temperature_celsius", &[("sensor", sensor)], &times, v);
        }
        let mut v = gauge(rng, &times, 0.5, 0.4, 0.05, false);
        for (i, x) in v.iter_mut().enumerate() {
            if i % 37 == 5 {
                *x = f64::NAN;
            }
        }
        d.add("temperature_celsius", &[("sensor", "faulty")], &times, v);
    }
    d
}

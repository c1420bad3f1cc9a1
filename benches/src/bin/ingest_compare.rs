//! Remote-write ingestion, side by side: `tidemark serve`, Prometheus 2.42's
//! receiver and VictoriaMetrics, fed the same request bodies.
//!
//! ```text
//! cargo build --release -p tidemark
//! cargo run --release -p tidemark-bench --bin ingest_compare -- \
//!     [--tidemark-bin target/release/tidemark] [--systems tidemark,tidemark-nosync,prometheus,victoria-metrics] \
//!     [--series 10000] [--samples 100] [--per-request 2000] [--senders 4] [--runs 3] [--capture [PATH]]
//! ```
//!
//! 1. Builds remote write 1.0 requests once, the way Prometheus' sender
//!    does: one `TimeSeries` per sample (labels repeated), `--per-request`
//!    samples per request, protobuf then snappy. The series are
//!    node_exporter-like (`--series` series of `--samples` samples at 15 s,
//!    ending now) or, with `--capture`, the real capture of
//!    `../shared/data` (941 series, 1.3 M samples, shifted to end now).
//!    Series are sharded over `--senders` by index, so each sender's
//!    requests are in time order per series and no receiver sees an
//!    out-of-order sample.
//! 2. For each system, starts it on 127.0.0.1 with a fresh data directory,
//!    sends every request with `--senders` concurrent HTTP/1.1 keep-alive
//!    clients, waits 3 s for deferred work (VictoriaMetrics flushes in the
//!    background), then reads the server's CPU time (`/proc/<pid>/stat`
//!    utime + stime, before and after) and peak RSS (`VmHWM`), and counts
//!    the stored samples with `sum(count_over_time({__name__="…"}[…]))`
//!    for every metric name.
//! 3. Repeats that `--runs` times, the systems interleaved, and prints a
//!    markdown table of the medians (peak RSS: the largest). Any non-2xx
//!    answer or a stored count that differs from what was sent is
//!    reported, and the exit status is 1.
//!
//! The sending threads run on the same machine and take CPU from the
//! servers; the CPU column counts the server process only.
//!
//! `tidemark` runs with its default `--wal.sync=every-commit` (durable when
//! the answer is sent); `tidemark-nosync` with `--wal.sync=never`, the
//! durability Prometheus and VictoriaMetrics offer (neither fsyncs per
//! request).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;
use tidemark_bench::capture::{default_capture_path, load_capture};
use tidemark_remote::proto::v1;
use tidemark_testkit::{
    now_ms, secs, url_encode, Http, PeerProcess, ProcessStats, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig,
    VictoriaMetrics, VictoriaMetricsConfig,
};

type BoxError = Box<dyn std::error::Error>;

const SYSTEMS: [&str; 4] = ["tidemark", "tidemark-nosync", "prometheus", "victoria-metrics"];

struct Args {
    tidemark_bin: PathBuf,
    systems: Vec<String>,
    series: usize,
    samples: usize,
    per_request: usize,
    senders: usize,
    runs: usize,
    capture: Option<PathBuf>,
}

const USAGE: &str = "usage: ingest_compare [--tidemark-bin PATH] [--systems a,b,…] [--series N] [--samples N] \
                     [--per-request N] [--senders N] [--runs N] [--capture [PATH]]";

fn parse_args() -> Result<Args, BoxError> {
    let mut a = Args {
        tidemark_bin: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/tidemark")),
        systems: SYSTEMS.iter().map(|s| s.to_string()).collect(),
        series: 10_000,
        samples: 100,
        per_request: 2_000,
        senders: 4,
        runs: 3,
        capture: None,
    };
    let mut it = std::env::args().skip(1).peekable();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value; {USAGE}"));
        match arg.as_str() {
            "--tidemark-bin" => a.tidemark_bin = value("--tidemark-bin")?.into(),
            "--systems" => a.systems = value("--systems")?.split(',').map(str::to_string).collect(),
            "--series" => a.series = value("--series")?.parse()?,
            "--samples" => a.samples = value("--samples")?.parse()?,
            "--per-request" => a.per_request = value("--per-request")?.parse()?,
            "--senders" => a.senders = value("--senders")?.parse()?,
            "--runs" => a.runs = value("--runs")?.parse()?,
            "--capture" => {
                a.capture = Some(match it.peek() {
                    Some(p) if !p.starts_with("--") => PathBuf::from(it.next().unwrap_or_default()),
                    _ => default_capture_path(),
                })
            }
            other => return Err(format!("unknown argument {other}; {USAGE}").into()),
        }
    }
    for s in &a.systems {
        if !SYSTEMS.contains(&s.as_str()) {
            return Err(format!("unknown system {s} (known: {})", SYSTEMS.join(", ")).into());
        }
    }
    if a.series == 0 || a.samples == 0 || a.per_request == 0 || a.senders == 0 || a.runs == 0 {
        return Err("--series, --samples, --per-request, --senders and --runs must be at least 1".into());
    }
    Ok(a)
}

/// One series of a host: metric name, labels besides name/instance/job,
/// and whether it is a counter.
type Family = (String, Vec<(&'static str, String)>, bool);

/// The label sets node_exporter exposes for one host (about 120).
fn host_families() -> Vec<Family> {
    let mut out = Vec::new();
    for cpu in 0..4 {
        for mode in ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"] {
            out.push(("node_cpu_seconds_total".into(), vec![("cpu", cpu.to_string()), ("mode", mode.into())], true));
        }
    }
    for dev in ["eth0", "lo"] {
        for dir in ["receive", "transmit"] {
            for what in ["bytes", "packets", "errs", "drop"] {
                out.push((format!("node_network_{dir}_{what}_total"), vec![("device", dev.into())], true));
            }
        }
    }
    for dev in ["nvme0n1", "sda"] {
        for what in ["reads_completed", "writes_completed", "read_bytes", "written_bytes", "io_time_seconds"] {
            out.push((format!("node_disk_{what}_total"), vec![("device", dev.into())], true));
        }
    }
    for (dev, mount) in [("/dev/nvme0n1p2", "/"), ("/dev/nvme0n1p1", "/boot/efi"), ("tmpfs", "/run")] {
        for what in ["size", "avail", "free"] {
            out.push((
                format!("node_filesystem_{what}_bytes"),
                vec![("device", dev.into()), ("fstype", "ext4".into()), ("mountpoint", mount.into())],
                false,
            ));
        }
    }
    for m in [
        "MemTotal",
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "SwapCached",
        "Active",
        "Inactive",
        "SwapTotal",
        "SwapFree",
        "Dirty",
        "Writeback",
        "AnonPages",
        "Mapped",
        "Shmem",
        "Slab",
        "SReclaimable",
        "SUnreclaim",
        "KernelStack",
        "PageTables",
        "Committed_AS",
        "VmallocUsed",
        "HugePages_Total",
        "Hugepagesize",
    ] {
        out.push((format!("node_memory_{m}_bytes"), vec![], false));
    }
    for n in ["node_load1", "node_load5", "node_load15", "node_procs_running", "node_procs_blocked"] {
        out.push((n.into(), vec![], false));
    }
    for n in ["node_context_switches_total", "node_intr_total", "node_forks_total"] {
        out.push((n.into(), vec![], true));
    }
    for n in
        ["go_goroutines", "go_memstats_alloc_bytes", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes"]
    {
        out.push((n.into(), vec![], false));
    }
    out.push(("process_cpu_seconds_total".into(), vec![], true));
    out.push(("up".into(), vec![], false));
    out
}

/// One series to send: sorted labels and its samples.
type Series = (Vec<v1::Label>, Vec<v1::Sample>);

fn label(name: &str, value: &str) -> v1::Label {
    v1::Label { name: name.into(), value: value.into() }
}

/// `n` node_exporter-like series of `samples` samples at 15 s ending at `end_ms`.
fn synthetic(n: usize, samples: usize, end_ms: i64) -> Vec<Series> {
    let families = host_families();
    let mut rng = tidemark_bench::promql_data::Rng(42);
    let start = end_ms - (samples as i64 - 1) * 15_000;
    (0..n)
        .map(|i| {
            let host = i / families.len();
            let (name, extra, counter) = &families[i % families.len()];
            let mut labels = vec![
                label("__name__", name),
                label("instance", &format!("10.{}.{}.{}:9100", host >> 16 & 255, host >> 8 & 255, host & 255)),
                label("job", "node"),
            ];
            labels.extend(extra.iter().map(|(k, v)| label(k, v)));
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            // Counters climb by a per-series rate with noise; gauges wander
            // around a per-series level (integers for byte-like gauges).
            let scale = 10f64.powi((rng.next_u64() % 10) as i32);
            let mut v = (rng.unit() * scale * 1000.0).round();
            let points = (0..samples)
                .map(|j| {
                    v = if *counter {
                        v + (rng.unit() * scale).round()
                    } else if name.ends_with("_bytes") {
                        (v + (rng.unit() - 0.5) * scale).max(0.0).round()
                    } else {
                        ((v + (rng.unit() - 0.5) * scale * 0.01).max(0.0) * 100.0).round() / 100.0
                    };
                    v1::Sample { value: v, timestamp: start + j as i64 * 15_000 }
                })
                .collect();
            (labels, points)
        })
        .collect()
}

/// The real capture, timestamps shifted so its last sample is at `end_ms`.
fn capture(path: &std::path::Path, end_ms: i64) -> Result<Vec<Series>, BoxError> {
    let data = load_capture(path).map_err(|e| format!("cannot read the capture {}: {e}", path.display()))?;
    let last = data.iter().filter_map(|(_, s)| s.last().map(|s| s.t)).max().ok_or("the capture is empty")?;
    let shift = end_ms - last;
    Ok(data
        .into_iter()
        .map(|(l, s)| {
            let labels = l.iter().map(|l| label(l.name, l.value)).collect();
            (labels, s.into_iter().map(|s| v1::Sample { value: s.v, timestamp: s.t + shift }).collect())
        })
        .collect())
}

/// Snappy-compressed `WriteRequest`s per sender, in send order.
fn build_requests(series: &[Series], senders: usize, per_request: usize) -> Result<Vec<Vec<Vec<u8>>>, BoxError> {
    let mut out = vec![Vec::new(); senders];
    let mut encoder = snap::raw::Encoder::new();
    for (shard, requests) in out.iter_mut().enumerate() {
        let mine: Vec<&Series> = series.iter().skip(shard).step_by(senders).collect();
        let longest = mine.iter().map(|s| s.1.len()).max().unwrap_or(0);
        let mut req = v1::WriteRequest::default();
        // Time order per series: all series' j-th samples, then the (j+1)-th.
        for j in 0..longest {
            for (labels, samples) in &mine {
                let Some(s) = samples.get(j) else { continue };
                req.timeseries.push(v1::TimeSeries { labels: labels.clone(), samples: vec![*s], ..Default::default() });
                if req.timeseries.len() == per_request {
                    requests.push(encoder.compress_vec(&std::mem::take(&mut req).encode_to_vec())?);
                }
            }
        }
        if !req.timeseries.is_empty() {
            requests.push(encoder.compress_vec(&req.encode_to_vec())?);
        }
    }
    Ok(out)
}

/// A started system under test, whatever its kind.
enum Server {
    Tidemark(Tidemark),
    Prometheus(Prometheus),
    Victoria(VictoriaMetrics),
}

impl Server {
    fn process(&self) -> &PeerProcess {
        match self {
            Server::Tidemark(t) => t,
            Server::Prometheus(p) => p,
            Server::Victoria(v) => v,
        }
    }
}

fn start(system: &str, args: &Args, dir: &std::path::Path) -> Result<Server, BoxError> {
    Ok(match system {
        "tidemark" | "tidemark-nosync" => {
            let mut config = TidemarkConfig::new(&args.tidemark_bin, dir);
            config.args = vec!["--log.level=warn".into(), "--retention.time=0".into()];
            if system == "tidemark-nosync" {
                config.args.push("--wal.sync=never".into());
            }
            Server::Tidemark(Tidemark::start(config)?)
        }
        "prometheus" => {
            let mut config = PrometheusConfig::new(dir);
            config.args = vec!["--web.enable-remote-write-receiver".into(), "--log.level=warn".into()];
            Server::Prometheus(Prometheus::start(config)?)
        }
        _ => {
            let mut config = VictoriaMetricsConfig::new(dir);
            // Make just-written samples queryable for the stored-count check
            // (by default VictoriaMetrics hides the last 30 s).
            config.args =
                vec!["-search.latencyOffset=0s".into(), "-search.disableCache".into(), "-loggerLevel=WARN".into()];
            Server::Victoria(VictoriaMetrics::start(config)?)
        }
    })
}

struct Outcome {
    system: String,
    samples: usize,
    wall: Duration,
    cpu_seconds: f64,
    peak_rss: u64,
    non_2xx: usize,
    failed: usize,
    first_error: Option<String>,
    stored: Result<u64, String>,
}

fn run(
    system: &str,
    args: &Args,
    requests: &[Vec<Vec<u8>>],
    samples: usize,
    span_ms: i64,
    end_ms: i64,
) -> Result<Outcome, BoxError> {
    let dir = tempfile::tempdir()?;
    let server = start(system, args, dir.path())?;
    let url = format!("{}/api/v1/write", server.process().url());
    let before: ProcessStats = server.process().stats()?;
    let non_2xx = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let t0 = Instant::now();
    let (non_2xx, failed, first_error, url) = (&non_2xx, &failed, &first_error, &url);
    std::thread::scope(|s| {
        for mine in requests {
            s.spawn(move || {
                let http = Http::new(Duration::from_secs(120));
                for body in mine {
                    let headers = [
                        ("Content-Type", "application/x-protobuf"),
                        ("Content-Encoding", "snappy"),
                        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                        ("User-Agent", "tidemark-ingest-compare"),
                    ];
                    let problem = match http.post(url, &headers, body) {
                        Ok(r) if r.is_success() => None,
                        Ok(r) => {
                            non_2xx.fetch_add(1, Ordering::Relaxed);
                            Some(format!("{}: {}", r.status, r.text().trim()))
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            Some(e.to_string())
                        }
                    };
                    if let Some(p) = problem {
                        first_error.lock().map(|mut f| f.get_or_insert(p).clone()).ok();
                    }
                }
            });
        }
    });
    let wall = t0.elapsed();
    // Deferred work (VictoriaMetrics' in-memory parts, head bookkeeping)
    // belongs to ingestion too.
    std::thread::sleep(Duration::from_secs(3));
    let after = server.process().stats()?;
    let stored = stored_samples(&server, span_ms, end_ms);
    Ok(Outcome {
        system: system.to_string(),
        samples,
        wall,
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        peak_rss: after.peak_rss_bytes,
        non_2xx: non_2xx.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        first_error: first_error.lock().map(|f| f.clone()).unwrap_or_default(),
        stored,
    })
}

/// How many samples the server holds, by asking it in PromQL, one metric
/// name at a time (`count_over_time` drops the name, so one query over all
/// names would collide on label sets that differ only in the name).
fn stored_samples(server: &Server, span_ms: i64, end_ms: i64) -> Result<u64, String> {
    let http = Http::new(Duration::from_secs(120));
    let base = server.process().url();
    if let Server::Victoria(_) = server {
        http.get(&format!("{base}/internal/force_flush")).map_err(|e| e.to_string())?;
    }
    let get = |path: &str| -> Result<serde_json::Value, String> {
        let r = http.get(&format!("{base}{path}")).map_err(|e| e.to_string())?;
        let json: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|e| format!("{} {path}: {e}", r.status))?;
        if json["status"] != "success" {
            return Err(format!("{} {path}: {}", r.status, r.text()));
        }
        Ok(json)
    };
    let (start, end) = (secs(end_ms - span_ms - 60_000), secs(end_ms + 1_000));
    let names = get(&format!("/api/v1/label/__name__/values?start={start}&end={end}"))?;
    let window_s = span_ms / 1000 + 60;
    let mut total = 0u64;
    for name in names["data"].as_array().ok_or("no label values")? {
        let name = name.as_str().ok_or("label value is not a string")?;
        let q = format!(r#"sum(count_over_time({{__name__="{name}"}}[{window_s}s]))"#);
        let json = get(&format!("/api/v1/query?query={}&time={end}", url_encode(&q)))?;
        let v = &json["data"]["result"][0]["value"][1];
        total += v.as_str().and_then(|s| s.parse::<f64>().ok()).ok_or_else(|| format!("{q}: {json}"))? as u64;
    }
    Ok(total)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    format!("{} × {}, {:.1} GiB RAM", cores, model.unwrap_or("unknown CPU"), mem as f64 / (1 << 20) as f64)
}

/// The installed Debian package's version (the Debian build of
/// VictoriaMetrics prints no version of its own).
fn package_version(package: &str) -> String {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown version".into())
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    if args.systems.iter().any(|s| s.starts_with("tidemark")) && !args.tidemark_bin.is_file() {
        return Err(format!(
            "{} does not exist: build it (cargo build --release -p tidemark), pass --tidemark-bin, \
             or leave Tidemark out (--systems prometheus,victoria-metrics)",
            args.tidemark_bin.display()
        )
        .into());
    }
    // End a minute ago, on a whole 15 s, so every system accepts the data
    // as recent and the stored-count query sees all of it.
    let end_ms = (now_ms() - 60_000).div_euclid(15_000) * 15_000;
    let t = Instant::now();
    let series = match &args.capture {
        Some(path) => capture(path, end_ms)?,
        None => synthetic(args.series, args.samples, end_ms),
    };
    let samples: usize = series.iter().map(|s| s.1.len()).sum();
    // MetricsQL's count_over_time skips NaN samples (the capture has some:
    // summaries with no observations), so VictoriaMetrics' count is checked
    // against the non-NaN ones.
    let nan_samples: usize = series.iter().flat_map(|s| &s.1).filter(|p| p.value.is_nan()).count();
    let first = series.iter().filter_map(|s| s.1.first().map(|p| p.timestamp)).min().unwrap_or(end_ms);
    let requests = build_requests(&series, args.senders, args.per_request)?;
    drop(series);
    let bodies: usize = requests.iter().map(Vec::len).sum();
    let bytes: usize = requests.iter().flatten().map(Vec::len).sum();
    println!(
        "data: {} series, {samples} samples in {bodies} requests of ≤{} samples ({:.1} MB snappy, {:.0} bytes/sample), {} senders; built in {:.1?}",
        if args.capture.is_some() { "capture".to_string() } else { format!("{} synthetic", args.series) },
        args.per_request,
        bytes as f64 / 1e6,
        bytes as f64 / samples as f64,
        args.senders,
        t.elapsed()
    );
    println!("machine: {}", machine());
    println!(
        "Debian packages: prometheus {}, victoria-metrics {}",
        package_version("prometheus"),
        package_version("victoria-metrics")
    );

    // Runs interleave the systems, so a change in the machine's load
    // (it may be shared) hits all of them alike; medians are reported.
    let mut outcomes: Vec<Vec<Outcome>> = args.systems.iter().map(|_| Vec::new()).collect();
    for round in 1..=args.runs {
        for (i, system) in args.systems.iter().enumerate() {
            let o = run(system, &args, &requests, samples, end_ms - first, end_ms)?;
            println!(
                "run {round} {:<17} {:>6.2} s  {:>10.0} samples/s  CPU {:.2} s  peak RSS {:.0} MiB  non-2xx {}  failed {}  stored {}",
                o.system,
                o.wall.as_secs_f64(),
                o.samples as f64 / o.wall.as_secs_f64(),
                o.cpu_seconds,
                o.peak_rss as f64 / (1 << 20) as f64,
                o.non_2xx,
                o.failed,
                match &o.stored {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("? ({e})"),
                }
            );
            if let Some(e) = &o.first_error {
                println!("  first error: {e}");
            }
            outcomes[i].push(o);
        }
    }

    println!();
    println!("| system | samples/s | CPU s per 1 M samples | peak RSS | non-2xx | stored samples |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for (system, runs) in args.systems.iter().zip(&outcomes) {
        let nan_skipped = if system == "victoria-metrics" { nan_samples } else { 0 };
        let mut stored = Vec::new();
        for o in runs {
            stored.push(match &o.stored {
                Ok(n) if *n == o.samples as u64 => format!("{n} (all)"),
                Ok(n) if *n == (o.samples - nan_skipped) as u64 => {
                    format!("{n} (all; MetricsQL does not count the {nan_skipped} NaN)")
                }
                Ok(n) => {
                    ok = false;
                    format!("{n} of {}", o.samples)
                }
                Err(_) => {
                    ok = false;
                    "?".into()
                }
            });
            ok &= o.non_2xx == 0 && o.failed == 0;
        }
        stored.dedup();
        let rate = median(runs.iter().map(|o| o.samples as f64 / o.wall.as_secs_f64()).collect());
        let cpu = median(runs.iter().map(|o| o.cpu_seconds / (o.samples as f64 / 1e6)).collect());
        let rss = runs.iter().map(|o| o.peak_rss).max().unwrap_or(0);
        println!(
            "| {system} | {rate:.0} | {cpu:.2} | {:.0} MiB | {} | {} |",
            rss as f64 / (1 << 20) as f64,
            runs.iter().map(|o| o.non_2xx + o.failed).sum::<usize>(),
            stored.join("; "),
        );
    }
    if !ok {
        return Err("some requests failed or some samples were not stored (see above)".into());
    }
    Ok(())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

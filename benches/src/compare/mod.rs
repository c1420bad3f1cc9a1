//! `tidemark-bench compare`: Tidemark, Prometheus and VictoriaMetrics side
//! by side, in one run, on 127.0.0.1.
//!
//! For each load (the real capture replayed, then the synthetic fleet at
//! each requested size), one system at a time:
//!
//! 1. start it on a fresh data directory;
//! 2. send every request of the load (the same bytes to every system) with
//!    concurrent keep-alive senders; any non-2xx answer is an error;
//! 3. after 3 s of settling, read its CPU time (user + system, from
//!    `/proc`, compared with before the load) and memory (`VmHWM`, `VmRSS`);
//! 4. persist the data in its long-term format and measure the bytes (see
//!    [`systems::Running::persist`]);
//! 5. check that every sample is stored, counting them back per metric name
//!    with `count_over_time`;
//! 6. time the query set over HTTP (warm-up, then several runs; median and
//!    p99), keeping the answers;
//! 7. stop it.
//!
//! Then every answer is compared with Prometheus' (the reference for PromQL
//! semantics), and the figures are printed as tables with ratios to
//! Prometheus and written as JSON.

pub mod load;
pub mod queries;
pub mod report;
pub mod rules;
pub mod systems;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tidemark_testkit::{now_ms, url_encode, Http, KitError};

use load::{Load, SyntheticOptions};
use queries::{agreement, heavy_queries, query_time, seed_queries, ties_free_to_differ, time_query, QuerySpec, Timed};
use report::{IngestFigures, LoadReport, QueryBySystem, QueryReport, Report, SystemReport};
use systems::{Running, SystemKind};

/// What can stop a comparison.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Preparing the run failed (arguments, files, building, installing).
    #[error("{0}")]
    Setup(String),
    /// A system could not be started or stopped.
    #[error(transparent)]
    Kit(#[from] KitError),
    /// A system misbehaved (refused writes, lost samples, failed to persist).
    #[error("{0}")]
    Peer(String),
}

/// Options of `tidemark-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Synthetic fleet sizes to run, in series (comma-separated); 0 for none.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    pub series: Vec<usize>,
    /// Samples per synthetic series, at 15 s (261 = 65 min: the 1 h range
    /// queries plus their first 5 min window).
    #[arg(long, default_value_t = 261)]
    pub samples_per_series: usize,
    /// Replay the real capture too (the default; `--capture false` skips it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub capture: bool,
    /// The capture file (default: `shared/data/node-and-prometheus-5s.om.zst`
    /// beside the workspace, or `$TIDEMARK_CAPTURE`).
    #[arg(long)]
    pub capture_path: Option<PathBuf>,
    /// Systems, in run order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tidemark,prometheus,victoria-metrics")]
    pub systems: Vec<SystemKind>,
    /// Concurrent remote-write senders.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Samples per remote-write request (Prometheus 3.x sends up to 2000).
    #[arg(long, default_value_t = 2000)]
    pub per_request: usize,
    /// Timed runs of each heavy query (after one warm-up run).
    #[arg(long, default_value_t = 10)]
    pub query_runs: usize,
    /// Timed runs of each seed query.
    #[arg(long, default_value_t = 3)]
    pub seed_runs: usize,
    /// The seed queries (default: `shared/seed-queries.md` beside the
    /// workspace, or `$TIDEMARK_SEED_QUERIES`).
    #[arg(long)]
    pub seed_queries: Option<PathBuf>,
    /// Skip the seed queries.
    #[arg(long)]
    pub no_seed_queries: bool,
    /// The `tidemark` binary (default: build it with `cargo build --release
    /// -p tidemark`).
    #[arg(long)]
    pub tidemark_bin: Option<PathBuf>,
    /// Fail (exit status 1) when any answer of Tidemark's differs from
    /// Prometheus' (for CI; the peers' versions differ in a few documented
    /// corner cases, which this load avoids).
    #[arg(long)]
    pub require_agreement: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/compare.json")]
    pub json: PathBuf,
}

/// Runs the whole comparison and returns its report (also printed).
pub fn run(args: &CompareArgs) -> Result<Report, CompareError> {
    if args.systems.is_empty() {
        return Err(CompareError::Setup("--systems is empty".into()));
    }
    if args.senders == 0 || args.per_request == 0 || args.samples_per_series == 0 {
        return Err(CompareError::Setup("--senders, --per-request and --samples-per-series must be at least 1".into()));
    }
    systems::ensure_peers_installed(&args.systems)?;
    let needs_tidemark = args.systems.iter().any(|s| matches!(s, SystemKind::Tidemark | SystemKind::TidemarkNosync));
    let tidemark_bin = match &args.tidemark_bin {
        Some(p) => p.clone(),
        None if needs_tidemark => systems::build_tidemark()?,
        None => PathBuf::new(),
    };
    let seeds_path = args.seed_queries.clone().unwrap_or_else(queries::default_seed_queries_path);
    let mut report = Report::new(&tidemark_bin);
    eprintln!("machine: {}", report.machine);

    // End a minute ago on a whole interval: every system takes the data as
    // recent, and VictoriaMetrics (latency offset 0) shows all of it.
    let end_ms = (now_ms() - 60_000).div_euclid(15_000) * 15_000;
    let mut loads: Vec<Box<dyn Fn() -> Result<Load, CompareError>>> = Vec::new();
    if args.capture {
        let path = args.capture_path.clone().unwrap_or_else(crate::capture::default_capture_path);
        loads.push(Box::new(move || Load::capture(&path, end_ms)));
    }
    for &series in args.series.iter().filter(|&&s| s > 0) {
        let samples_per_series = args.samples_per_series;
        loads.push(Box::new(move || {
            Ok(Load::synthetic(SyntheticOptions { series, samples_per_series, end_ms, seed: 42 }))
        }));
    }
    for make in loads {
        let load = make()?;
        let load_report = run_load(args, &load, &tidemark_bin, &seeds_path)?;
        report::print_load(&load_report, &report.versions);
        let disagreements = disagreements(&load_report);
        report.loads.push(load_report);
        report.write_json(&args.json)?;
        if args.require_agreement && !disagreements.is_empty() {
            return Err(CompareError::Peer(format!(
                "Tidemark's answers differ from Prometheus' on: {}",
                disagreements.join("; ")
            )));
        }
    }
    report::print_goals(&report);
    eprintln!("JSON report: {}", args.json.display());
    Ok(report)
}

/// Queries where a Tidemark answer differs from Prometheus', or where one
/// of them answered and the other refused.
fn disagreements(l: &LoadReport) -> Vec<String> {
    let mut out = Vec::new();
    for q in &l.queries {
        let prom = q.by_system.iter().find(|b| b.system == SystemKind::Prometheus);
        for b in q.by_system.iter().filter(|b| matches!(b.system, SystemKind::Tidemark | SystemKind::TidemarkNosync)) {
            let problem = match (&b.agreement, prom) {
                (Some(a), _) if !a.agrees() => Some(format!(
                    "{} of {} points differ, {} missing / {} extra series; e.g. {}",
                    a.differing_points,
                    a.points,
                    a.missing_series,
                    a.extra_series,
                    a.example.as_deref().unwrap_or("?")
                )),
                (None, Some(p)) if b.timed.error.is_some() != p.timed.error.is_some() => Some(format!(
                    "tidemark: {}, prometheus: {}",
                    b.timed.error.as_deref().unwrap_or("answered"),
                    p.timed.error.as_deref().unwrap_or("answered")
                )),
                _ => None,
            };
            if let Some(p) = problem {
                out.push(format!("{} `{}` ({p})", b.system.name(), q.query.promql));
            }
        }
    }
    out
}

fn progress_bar(len: u64, prefix: String) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:40}] {human_pos}/{human_len} samples  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

/// One load against every system.
fn run_load(
    args: &CompareArgs,
    load: &Load,
    tidemark_bin: &std::path::Path,
    seeds_path: &std::path::Path,
) -> Result<LoadReport, CompareError> {
    eprintln!("\nload: {}", load.description);
    let t = Instant::now();
    let bar = progress_bar(load.samples, "building requests".into());
    let requests = load.build_requests(args.senders, args.per_request, |n| bar.set_position(n));
    bar.finish_and_clear();
    let bodies: usize = requests.iter().map(Vec::len).sum();
    let bytes: usize = requests.iter().flatten().map(|r| r.body.len()).sum();
    eprintln!(
        "  {bodies} requests, {:.1} MB snappy ({:.1} bytes/sample), built in {:.1?}",
        bytes as f64 / 1e6,
        bytes as f64 / load.samples as f64,
        t.elapsed()
    );
    let at = query_time(load);
    let mut specs = heavy_queries(load, at);
    if !args.no_seed_queries {
        specs.extend(seed_queries(seeds_path, at).map_err(CompareError::Setup)?);
    }
    let mut systems = Vec::new();
    for &kind in &args.systems {
        systems.push(run_system(args, kind, load, &requests, &specs, tidemark_bin)?);
    }
    // Agreement with Prometheus' answers, where Prometheus answered.
    let reference = systems.iter().position(|s: &(SystemReport, Vec<Timed>)| s.0.system == SystemKind::Prometheus);
    let mut query_reports: Vec<QueryReport> =
        specs.iter().map(|q| QueryReport { query: q.clone(), by_system: Vec::new() }).collect();
    for (report, timed) in &systems {
        for (i, t) in timed.iter().enumerate() {
            let agreement = reference.and_then(|r| {
                let want = systems[r].1[i].data.as_ref()?;
                let got = t.data.as_ref()?;
                Some(agreement(want, got, ties_free_to_differ(&specs[i].promql)))
            });
            query_reports[i].by_system.push(QueryBySystem { system: report.system, timed: t.clone(), agreement });
        }
    }
    Ok(LoadReport {
        description: load.description.clone(),
        kind: load.kind,
        series: load.series.len(),
        samples: load.samples,
        request_bytes: bytes as u64,
        requests: bodies,
        systems: systems.into_iter().map(|s| s.0).collect(),
        queries: query_reports,
    })
}

fn run_system(
    args: &CompareArgs,
    kind: SystemKind,
    load: &Load,
    requests: &[Vec<load::Request>],
    specs: &[QuerySpec],
    tidemark_bin: &std::path::Path,
) -> Result<(SystemReport, Vec<Timed>), CompareError> {
    let running = Running::start(kind, tidemark_bin)?;
    let url = format!("{}/api/v1/write", running.process().url());
    let before = running.process().stats()?;
    let bar = progress_bar(load.samples, format!("→ {}", kind.name()));
    let sent = AtomicU64::new(0);
    let non_2xx = AtomicUsize::new(0);
    let first_error = Mutex::new(None::<String>);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for mine in requests {
            let (url, bar, sent, non_2xx, first_error) = (&url, &bar, &sent, &non_2xx, &first_error);
            s.spawn(move || {
                let http = Http::new(Duration::from_secs(300));
                for r in mine {
                    if let Some(p) = post_remote_write(&http, url, &r.body, "tidemark-bench-compare") {
                        non_2xx.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(p);
                        }
                    }
                    let n = sent.fetch_add(u64::from(r.samples), Ordering::Relaxed) + u64::from(r.samples);
                    bar.set_position(n);
                }
            });
        }
    });
    let wall = t0.elapsed();
    bar.finish_and_clear();
    let non_2xx = non_2xx.load(Ordering::Relaxed);
    if non_2xx > 0 {
        let first = first_error.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
        return Err(CompareError::Peer(format!(
            "{}: {non_2xx} write requests failed; first: {first}; log:\n{}",
            kind.name(),
            running.process().log_tail(20)
        )));
    }
    // Deferred work (VictoriaMetrics' in-memory parts, head bookkeeping)
    // belongs to ingestion too.
    std::thread::sleep(Duration::from_secs(3));
    let after = running.process().stats()?;
    let ingest = IngestFigures {
        seconds: wall.as_secs_f64(),
        samples_per_second: load.samples as f64 / wall.as_secs_f64(),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        cpu_seconds_per_million: (after.cpu_seconds - before.cpu_seconds) / (load.samples as f64 / 1e6),
        peak_rss_bytes: after.peak_rss_bytes,
        rss_bytes: after.rss_bytes,
        peak_rss_per_series: after.peak_rss_bytes as f64 / load.series.len() as f64,
    };
    eprintln!(
        "  {:<17} {:>8.0} samples/s  {:.2} CPU-s/M samples  peak RSS {:.0} MiB ({:.2} KiB/series)",
        kind.name(),
        ingest.samples_per_second,
        ingest.cpu_seconds_per_million,
        ingest.peak_rss_bytes as f64 / (1 << 20) as f64,
        ingest.peak_rss_per_series / 1024.0
    );
    let persisted = running.persist()?;
    eprintln!(
        "  {:<17} persisted {:.1} MB = {:.3} bytes/sample in {:.1} s",
        kind.name(),
        persisted.bytes as f64 / 1e6,
        persisted.bytes as f64 / load.samples as f64,
        persisted.seconds
    );
    let stored = stored_samples(&running, load)?;
    let expected = match kind {
        // MetricsQL's count_over_time skips NaN samples.
        SystemKind::VictoriaMetrics => load.samples - load.nan_samples,
        _ => load.samples,
    };
    if stored != expected {
        return Err(CompareError::Peer(format!(
            "{}: stores {stored} samples of the {expected} sent (counted with count_over_time per metric name)",
            kind.name()
        )));
    }
    let http = queries::client();
    let base = running.process().url();
    let bar = ProgressBar::new(specs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos}/{len} queries  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("? {}", kind.name()));
    let timed: Vec<Timed> = specs
        .iter()
        .map(|q| {
            bar.set_message(q.name.chars().take(40).collect::<String>());
            let t = time_query(&http, &base, q, if q.heavy { args.query_runs } else { args.seed_runs });
            bar.inc(1);
            t
        })
        .collect();
    bar.finish_and_clear();
    let end = running.process().stats()?;
    running.stop()?;
    Ok((
        SystemReport {
            system: kind,
            ingest,
            bytes_per_sample: persisted.bytes as f64 / load.samples as f64,
            persisted,
            stored_samples: stored,
            peak_rss_after_queries: end.peak_rss_bytes,
        },
        timed,
    ))
}

/// How many samples `running` holds, asked in PromQL one metric name at a
/// time (`count_over_time` drops the name, so one query over all names
/// would collide on label sets that differ only in the name).
fn stored_samples(running: &Running, load: &Load) -> Result<u64, CompareError> {
    let http = queries::client();
    let base = running.process().url();
    let fail = |e: String| CompareError::Peer(format!("{}: counting stored samples: {e}", running.kind.name()));
    let at = query_time(load);
    let window_s = (at - load.first_ms) / 1000 + 60;
    let mut total = 0u64;
    for name in load.metric_names() {
        let q = format!(r#"sum(count_over_time({{__name__="{name}"}}[{window_s}s]))"#);
        let path = format!("{base}/api/v1/query?query={}&time={}", url_encode(&q), tidemark_testkit::secs(at));
        let r = http.get(&path).map_err(|e| fail(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|e| fail(format!("{q}: {} {e}", r.status)))?;
        let v = &json["data"]["result"][0]["value"][1];
        // A name whose samples are all NaN has no count in MetricsQL.
        let n = match v.as_str() {
            Some(s) => s.parse::<f64>().map_err(|e| fail(format!("{q}: {e}")))? as u64,
            None if json["status"] == "success" => 0,
            None => return Err(fail(format!("{q}: {json}"))),
        };
        total += n;
    }
    Ok(total)
}

/// Posts one remote-write 1.0 body (snappy protobuf) as Prometheus' queue
/// manager does; `None` if the server answered 2xx, else what went wrong.
pub(crate) fn post_remote_write(http: &Http, url: &str, body: &[u8], user_agent: &str) -> Option<String> {
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ("User-Agent", user_agent),
    ];
    match http.post(url, &headers, body) {
        Ok(resp) if resp.is_success() => None,
        Ok(resp) => Some(format!("{}: {}", resp.status, resp.text().trim())),
        Err(e) => Some(e.to_string()),
    }
}

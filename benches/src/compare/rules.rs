//! `tidemark-bench compare-rules`: 1,000 recording and alerting rules in 50
//! groups over the synthetic fleet, evaluated by Tidemark and by Prometheus
//! 2.42 in one run, on 127.0.0.1, one system at a time.
//!
//! For each system:
//!
//! 1. the rule file ([`generate::RuleFile::at_scale`]) is first written
//!    empty (`groups: []`) at one path shared by every system, and the
//!    system is started with it on a fresh data directory;
//! 2. the fleet's samples are remote-written: the same values and the same
//!    timestamps relative to an *anchor* (the start, rounded down to 30 s).
//!    The data runs from 16 min before the anchor (the longest rule window,
//!    15 min, plus a minute) to 9 min after it: samples "in the future"
//!    stand for the scrapes a live server would take while the rules run,
//!    so every evaluation of the rule phase reads fresh data without
//!    ingestion competing with the rules for CPU. Both systems accept
//!    samples up to 10 min ahead of their clock;
//! 3. after 3 s of settling, the full rule file is written and the system
//!    is told to reload it (`POST /-/reload`): the **rule phase** starts;
//! 4. every `--poll-ms` the phase reads `/api/v1/rules` (each group's
//!    `lastEvaluation` and `evaluationTime`, each rule's `health`) and the
//!    process' resident memory, until every group has been seen completing
//!    `--iterations` iterations; the server's CPU time (from `/proc`) over
//!    the phase is the difference between its end and its start;
//! 5. a sample of recorded series is read back raw (`name[20m]`) for the
//!    agreement check, and the system is stopped.
//!
//! **Agreement.** Both systems place a group's evaluations on the same
//! slots (Prometheus' per-group offset, a hash of the file path and group
//! name, modulo the interval); as the anchors are multiples of every
//! interval, the k-th slot after each anchor reads the same data in both
//! systems. Recorded samples are therefore compared at equal timestamps
//! relative to each system's anchor: same label sets, values within 1e-9
//! relative (or both NaN).

pub mod generate;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tidemark_testkit::{now_ms, url_encode, Http, PeerProcess, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig};

use super::load::{Load, Request, SyntheticOptions, SYNTHETIC_INTERVAL_MS};
use super::systems::{self, SystemKind};
use super::CompareError;
use generate::RuleFile;

/// Options of `tidemark-bench compare-rules`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareRulesArgs {
    /// Series in the synthetic fleet.
    #[arg(long, default_value_t = 100_000)]
    pub series: usize,
    /// Iterations every group must complete in the rule phase.
    #[arg(long, default_value_t = 8)]
    pub iterations: usize,
    /// Systems, in run order: tidemark, tidemark-nosync, prometheus
    /// (VictoriaMetrics evaluates rules only through vmalert, a separate
    /// process; it is not part of this comparison).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tidemark,prometheus")]
    pub systems: Vec<SystemKind>,
    /// Concurrent remote-write senders.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// Samples per remote-write request.
    #[arg(long, default_value_t = 2000)]
    pub per_request: usize,
    /// How often the rule phase reads `/api/v1/rules` and the memory (ms).
    #[arg(long, default_value_t = 2000)]
    pub poll_ms: u64,
    /// The `tidemark` binary (default: build it with `cargo build --release
    /// -p tidemark`).
    #[arg(long)]
    pub tidemark_bin: Option<PathBuf>,
    /// Only write the rule file here and exit (to read it or check it with
    /// `promtool check rules`).
    #[arg(long)]
    pub write_rules: Option<PathBuf>,
    /// Fail (exit status 1) when a rule evaluation failed or a recorded
    /// sample differs from Prometheus'.
    #[arg(long)]
    pub require_agreement: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/compare-rules.json")]
    pub json: PathBuf,
}

/// History before the anchor: the longest rule window plus a minute.
const HISTORY_MS: i64 = generate::LONGEST_WINDOW_MS + 60_000;
/// Data after the anchor, read by the rule phase as it happens.
const FUTURE_MS: i64 = 9 * 60_000;
/// Anchors are multiples of this (every group interval divides it).
const ANCHOR_MS: i64 = 30_000;
/// Longest group interval, for the phase's time limit.
const MAX_INTERVAL_MS: i64 = 30_000;

// The load spans every rule window before the first evaluation, stays within
// the 10 min both receivers accept ahead of their clock, and anchors fall on
// every group's slot grid.
const _: () = assert!(HISTORY_MS > generate::LONGEST_WINDOW_MS);
const _: () = assert!(FUTURE_MS + SYNTHETIC_INTERVAL_MS < 10 * 60_000);
const _: () = assert!(ANCHOR_MS % 15_000 == 0 && ANCHOR_MS % MAX_INTERVAL_MS == 0);

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
pub struct RulesReport {
    /// When and where.
    pub machine: String,
    /// Versions of Prometheus and Tidemark.
    pub versions: Vec<(String, String)>,
    /// The command line.
    pub command: String,
    /// The load.
    pub load: String,
    /// Series and samples sent to each system.
    pub series: usize,
    /// See `series`.
    pub samples: u64,
    /// Groups and rules in the rule file.
    pub groups: usize,
    /// See `groups`.
    pub rules: usize,
    /// `/proc/loadavg` before the first system started and after the last stopped.
    pub loadavg_before: String,
    /// See `loadavg_before`.
    pub loadavg_after: String,
    /// One entry per system, in run order.
    pub systems: Vec<SystemRules>,
    /// Recorded samples of each non-Prometheus system against Prometheus'.
    pub agreement: Vec<(SystemKind, RecordedAgreement)>,
}

/// One system's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemRules {
    /// Which system.
    pub system: SystemKind,
    /// Wall time of the remote-write load (not part of the rule figures).
    pub ingest_seconds: f64,
    /// Wall time of the rule phase (reload to the last group's N-th iteration).
    pub phase_seconds: f64,
    /// Group iterations seen in the phase (all groups).
    pub iterations: usize,
    /// Fewest iterations seen of one group.
    pub min_group_iterations: usize,
    /// Median over groups of each group's median iteration duration (ms).
    pub group_median_ms: f64,
    /// Largest iteration duration of any group (ms).
    pub group_max_ms: f64,
    /// Sum over groups of their median durations: one round of all groups (ms).
    pub round_ms: f64,
    /// Per group: median and max duration (ms), iterations seen.
    pub per_group: BTreeMap<String, (f64, f64, usize)>,
    /// Server CPU (user + system) over the rule phase.
    pub cpu_seconds: f64,
    /// `cpu_seconds` per group iteration (ms).
    pub cpu_ms_per_group_iteration: f64,
    /// Resident memory when the phase started.
    pub rss_before_bytes: u64,
    /// Largest resident memory seen during the phase.
    pub rss_max_bytes: u64,
    /// Peak resident memory of the process' life (`VmHWM`) at the end.
    pub peak_rss_bytes: u64,
    /// Rule evaluations seen failing (health `err`), over all iterations seen.
    pub failed_evaluations: usize,
    /// The first failure's group, rule and error.
    pub first_failure: Option<String>,
    /// Whether the phase ended before the load's last sample (else the last
    /// evaluations read data that was running out).
    pub phase_within_data: bool,
    /// Alerts pending and firing at the end of the phase (`/api/v1/alerts`).
    pub alerts_pending: usize,
    /// See `alerts_pending`.
    pub alerts_firing: usize,
    /// Series of the sampled recordings read back, and their samples.
    pub recorded_series: usize,
    /// See `recorded_series`.
    pub recorded_samples: usize,
}

/// Recorded samples of one system compared with Prometheus'.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecordedAgreement {
    /// Recorded metric names compared.
    pub names: usize,
    /// Series present in both.
    pub common_series: usize,
    /// Series only Prometheus recorded / only the other one did.
    pub missing_series: usize,
    /// See `missing_series`.
    pub extra_series: usize,
    /// Samples at timestamps (relative to the anchor) present in both.
    pub common_points: usize,
    /// Of those, samples whose values differ beyond 1e-9 relative.
    pub differing_points: usize,
    /// Largest relative difference seen.
    pub max_relative_difference: f64,
    /// An example difference.
    pub example: Option<String>,
}

impl RecordedAgreement {
    /// Whether everything compared agrees and something was compared.
    pub fn agrees(&self) -> bool {
        self.common_points > 0 && self.differing_points == 0 && self.missing_series == 0 && self.extra_series == 0
    }
}

/// Recorded series read back: labels (as text) → samples at timestamps
/// relative to the anchor.
type Recorded = HashMap<String, Vec<(i64, f64)>>;

/// Runs the comparison, prints its tables and writes its JSON.
pub fn run(args: &CompareRulesArgs) -> Result<RulesReport, CompareError> {
    let file = RuleFile::at_scale();
    if let Some(path) = &args.write_rules {
        std::fs::write(path, file.to_yaml())
            .map_err(|e| CompareError::Setup(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("{} rules in {} groups written to {}", file.rule_count(), file.groups.len(), path.display());
        return Ok(RulesReport::empty(&file));
    }
    if args.systems.is_empty() {
        return Err(CompareError::Setup("--systems is empty".into()));
    }
    if let Some(k) = args.systems.iter().find(|k| **k == SystemKind::VictoriaMetrics) {
        return Err(CompareError::Setup(format!(
            "{}: VictoriaMetrics evaluates Prometheus rule files only through vmalert, a separate process that \
             queries it over HTTP and writes results back by remote write; compare-rules measures servers that \
             evaluate rules themselves (tidemark, tidemark-nosync, prometheus)",
            k.name()
        )));
    }
    if args.series == 0 || args.iterations == 0 || args.senders == 0 || args.per_request == 0 {
        return Err(CompareError::Setup(
            "--series, --iterations, --senders and --per-request must be at least 1".into(),
        ));
    }
    systems::ensure_peers_installed(&args.systems)?;
    let needs_tidemark = args.systems.iter().any(|s| matches!(s, SystemKind::Tidemark | SystemKind::TidemarkNosync));
    let tidemark_bin = match &args.tidemark_bin {
        Some(p) => p.clone(),
        None if needs_tidemark => systems::build_tidemark()?,
        None => PathBuf::new(),
    };
    let work = tempfile::Builder::new()
        .prefix("tidemark-compare-rules-")
        .tempdir()
        .map_err(|e| CompareError::Setup(format!("cannot create a work directory: {e}")))?;
    // One path for every system: Prometheus' group offsets hash it.
    let rule_path = work.path().join("rules-at-scale.yml");
    let mut report = RulesReport::empty(&file);
    report.versions = vec![
        ("prometheus".into(), systems::package_version("prometheus")),
        ("tidemark".into(), tidemark_version(&tidemark_bin)),
    ];
    report.loadavg_before = loadavg();
    eprintln!("machine: {}; load average {}", report.machine, report.loadavg_before);
    let mut recorded: Vec<(SystemKind, Recorded)> = Vec::new();
    for &kind in &args.systems {
        let (figures, rec) = run_system(args, kind, &file, &rule_path, &tidemark_bin, &mut report)?;
        print_system(&figures);
        report.systems.push(figures);
        recorded.push((kind, rec));
    }
    report.loadavg_after = loadavg();
    if let Some((_, reference)) = recorded.iter().find(|(k, _)| *k == SystemKind::Prometheus) {
        let names = sampled_names(&file).len();
        for (kind, rec) in recorded.iter().filter(|(k, _)| *k != SystemKind::Prometheus) {
            let mut a = compare_recorded(reference, rec);
            a.names = names;
            report.agreement.push((*kind, a));
        }
    }
    print_report(&report);
    write_json(&report, &args.json)?;
    eprintln!("JSON report: {}", args.json.display());
    if args.require_agreement {
        let mut problems = Vec::new();
        for s in report.systems.iter().filter(|s| s.failed_evaluations > 0) {
            problems.push(format!(
                "{}: {} failed rule evaluations (first: {})",
                s.system.name(),
                s.failed_evaluations,
                s.first_failure.as_deref().unwrap_or("?")
            ));
        }
        for (k, a) in report.agreement.iter().filter(|(_, a)| !a.agrees()) {
            problems.push(format!("{}: recorded samples differ from Prometheus' ({a:?})", k.name()));
        }
        if !problems.is_empty() {
            return Err(CompareError::Peer(problems.join("; ")));
        }
    }
    Ok(report)
}

impl RulesReport {
    fn empty(file: &RuleFile) -> RulesReport {
        RulesReport {
            machine: super::report::machine(),
            versions: Vec::new(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            load: String::new(),
            series: 0,
            samples: 0,
            groups: file.groups.len(),
            rules: file.rule_count(),
            loadavg_before: String::new(),
            loadavg_after: String::new(),
            systems: Vec::new(),
            agreement: Vec::new(),
        }
    }
}

fn tidemark_version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn write_json(report: &RulesReport, path: &Path) -> Result<(), CompareError> {
    let io = |e: std::io::Error| CompareError::Setup(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(report).map_err(|e| CompareError::Setup(e.to_string()))?;
    std::fs::write(path, text).map_err(io)
}

/// A started system with rules.
enum Server {
    Tidemark(Tidemark),
    Prometheus(Prometheus),
}

impl Server {
    fn process(&self) -> &PeerProcess {
        match self {
            Server::Tidemark(t) => t,
            Server::Prometheus(p) => p,
        }
    }

    fn stop(&mut self) {
        let p: &mut PeerProcess = match self {
            Server::Tidemark(t) => t,
            Server::Prometheus(p) => p,
        };
        let _ = p.terminate(Duration::from_secs(60));
    }
}

fn start(kind: SystemKind, rule_path: &Path, data_dir: &Path, tidemark_bin: &Path) -> Result<Server, CompareError> {
    Ok(match kind {
        SystemKind::Tidemark | SystemKind::TidemarkNosync => {
            let mut config = TidemarkConfig::new(tidemark_bin, data_dir);
            config.args = vec![
                "--log.level=warn".into(),
                "--query.timeout=5m".into(),
                "--query.max-samples=1000000000".into(),
                format!("--rules.file={}", rule_path.display()),
                "--rules.evaluation-interval=30s".into(),
            ];
            if kind == SystemKind::TidemarkNosync {
                config.args.push("--wal.sync=never".into());
            }
            config.ready_timeout = Duration::from_secs(120);
            Server::Tidemark(Tidemark::start(config)?)
        }
        SystemKind::Prometheus => {
            let mut config = PrometheusConfig::new(data_dir);
            config.config_yaml = format!(
                "global:\n  evaluation_interval: 30s\nrule_files:\n  - {}\nscrape_configs: []\n",
                serde_json::to_string(&rule_path.display().to_string()).unwrap_or_default()
            );
            config.args = vec![
                "--web.enable-remote-write-receiver".into(),
                "--web.enable-lifecycle".into(),
                "--log.level=warn".into(),
                "--query.timeout=5m".into(),
                "--query.max-samples=1000000000".into(),
            ];
            config.ready_timeout = Duration::from_secs(120);
            Server::Prometheus(Prometheus::start(config)?)
        }
        SystemKind::VictoriaMetrics => {
            return Err(CompareError::Setup("victoria-metrics does not evaluate rules itself".into()))
        }
        SystemKind::TidemarkB => {
            return Err(CompareError::Setup("tidemark-b is only for compare's A/B mode (--tidemark-b-bin)".into()))
        }
    })
}

fn run_system(
    args: &CompareRulesArgs,
    kind: SystemKind,
    file: &RuleFile,
    rule_path: &Path,
    tidemark_bin: &Path,
    report: &mut RulesReport,
) -> Result<(SystemRules, Recorded), CompareError> {
    let write = |text: &str| {
        std::fs::write(rule_path, text)
            .map_err(|e| CompareError::Setup(format!("cannot write {}: {e}", rule_path.display())))
    };
    write("groups: []\n")?;
    // The anchor: now, on a 30 s boundary. The load is built before the
    // system starts, so its "future" samples stay within 10 min of the clock.
    let anchor = now_ms().div_euclid(ANCHOR_MS) * ANCHOR_MS;
    let samples_per_series = ((HISTORY_MS + FUTURE_MS) / SYNTHETIC_INTERVAL_MS + 1) as usize;
    let load = Load::synthetic(SyntheticOptions {
        series: args.series,
        targets: None,
        samples_per_series,
        end_ms: anchor + FUTURE_MS,
        seed: 42,
    });
    eprintln!("\n{}: building {} samples ({})", kind.name(), load.samples, load.description);
    let requests = load.build_requests(args.senders, args.per_request, |_| {});
    report.load = format!(
        "{}; from {} min before the start to {} min after it",
        load.description,
        HISTORY_MS / 60_000,
        FUTURE_MS / 60_000
    );
    report.series = load.series.len();
    report.samples = load.samples;

    let data_dir = tempfile::Builder::new()
        .prefix(&format!("tidemark-compare-rules-{}-", kind.name()))
        .tempdir()
        .map_err(|e| CompareError::Setup(format!("cannot create a data directory: {e}")))?;
    let mut server = start(kind, rule_path, data_dir.path(), tidemark_bin)?;
    let result = measure(args, kind, file, rule_path, &load, &requests, anchor, &server, &write);
    server.stop();
    result
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &CompareRulesArgs,
    kind: SystemKind,
    file: &RuleFile,
    rule_path: &Path,
    load: &Load,
    requests: &[Vec<Request>],
    anchor: i64,
    server: &Server,
    write: &dyn Fn(&str) -> Result<(), CompareError>,
) -> Result<(SystemRules, Recorded), CompareError> {
    let process = server.process();
    let base = process.url();
    let peer = |what: String| CompareError::Peer(format!("{}: {what}", kind.name()));

    let t0 = Instant::now();
    send(&format!("{base}/api/v1/write"), requests)
        .map_err(|e| peer(format!("{e}; log:\n{}", process.log_tail(20))))?;
    let ingest_seconds = t0.elapsed().as_secs_f64();
    eprintln!("  ingested in {ingest_seconds:.1} s");
    std::thread::sleep(Duration::from_secs(3));

    // The rule phase.
    let http = Http::new(Duration::from_secs(60));
    let before = process.stats()?;
    write(&file.to_yaml())?;
    let phase_start = Instant::now();
    let r = http.post(&format!("{base}/-/reload"), &[], b"").map_err(|e| peer(format!("reload: {e}")))?;
    if !r.is_success() {
        return Err(peer(format!("reload of {} answered {}: {}", rule_path.display(), r.status, r.text())));
    }
    let mut seen: HashMap<String, BTreeMap<String, f64>> = HashMap::new();
    let mut failed = 0usize;
    let mut first_failure = None;
    let mut rss_max = before.rss_bytes;
    let limit =
        Duration::from_millis((args.iterations as i64 + 3) as u64 * MAX_INTERVAL_MS as u64) + Duration::from_secs(120);
    loop {
        std::thread::sleep(Duration::from_millis(args.poll_ms));
        rss_max = rss_max.max(process.stats()?.rss_bytes);
        let r = http.get(&format!("{base}/api/v1/rules")).map_err(|e| peer(format!("/api/v1/rules: {e}")))?;
        let json: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
            peer(format!("/api/v1/rules: {} {e}: {}", r.status, r.text().chars().take(300).collect::<String>()))
        })?;
        let groups = json["data"]["groups"].as_array().ok_or_else(|| {
            peer(format!("/api/v1/rules: no data.groups: {}", json.to_string().chars().take(300).collect::<String>()))
        })?;
        for g in groups {
            let name = g["name"].as_str().unwrap_or("?").to_string();
            let last = g["lastEvaluation"].as_str().unwrap_or("").to_string();
            let Some(secs) = g["evaluationTime"].as_f64() else { continue };
            // Never evaluated: Go's zero time (or nothing).
            if last.is_empty() || last.starts_with("0001-") {
                continue;
            }
            let iterations = seen.entry(name.clone()).or_default();
            if iterations.insert(last, secs * 1000.0).is_none() {
                for rule in g["rules"].as_array().into_iter().flatten() {
                    if rule["health"].as_str() == Some("err") {
                        failed += 1;
                        first_failure.get_or_insert_with(|| {
                            format!(
                                "{name}/{}: {}",
                                rule["name"].as_str().unwrap_or("?"),
                                rule["lastError"].as_str().unwrap_or("?")
                            )
                        });
                    }
                }
            }
        }
        let done = seen.len() == file.groups.len() && seen.values().all(|s| s.len() >= args.iterations);
        if done {
            break;
        }
        if phase_start.elapsed() > limit {
            let behind: Vec<String> = file
                .groups
                .iter()
                .map(|g| (g.name.as_str(), seen.get(&g.name).map_or(0, BTreeMap::len)))
                .filter(|(_, n)| *n < args.iterations)
                .map(|(g, n)| format!("{g} ({n})"))
                .take(10)
                .collect();
            return Err(peer(format!(
                "groups did not complete {} iterations within {:.0?}: {}; log:\n{}",
                args.iterations,
                limit,
                behind.join(", "),
                process.log_tail(20)
            )));
        }
    }
    let phase_seconds = phase_start.elapsed().as_secs_f64();
    let after = process.stats()?;
    let phase_within_data = now_ms() < load.last_ms - SYNTHETIC_INTERVAL_MS;

    let mut per_group = BTreeMap::new();
    for (name, its) in &seen {
        let mut d: Vec<f64> = its.values().copied().collect();
        d.sort_by(f64::total_cmp);
        per_group.insert(name.clone(), (median(&d), d.last().copied().unwrap_or(0.0), d.len()));
    }
    let mut medians: Vec<f64> = per_group.values().map(|v| v.0).collect();
    medians.sort_by(f64::total_cmp);
    let iterations: usize = per_group.values().map(|v| v.2).sum();
    let cpu_seconds = after.cpu_seconds - before.cpu_seconds;

    let (alerts_pending, alerts_firing) = alert_counts(&http, &base).map_err(peer)?;
    let recorded = read_recorded(&http, &base, file, anchor).map_err(peer)?;
    let figures = SystemRules {
        system: kind,
        ingest_seconds,
        phase_seconds,
        iterations,
        min_group_iterations: per_group.values().map(|v| v.2).min().unwrap_or(0),
        group_median_ms: median(&medians),
        group_max_ms: per_group.values().map(|v| v.1).fold(0.0, f64::max),
        round_ms: medians.iter().sum(),
        per_group,
        cpu_seconds,
        cpu_ms_per_group_iteration: cpu_seconds * 1000.0 / iterations.max(1) as f64,
        rss_before_bytes: before.rss_bytes,
        rss_max_bytes: rss_max.max(after.rss_bytes),
        peak_rss_bytes: after.peak_rss_bytes,
        failed_evaluations: failed,
        first_failure,
        phase_within_data,
        alerts_pending,
        alerts_firing,
        recorded_series: recorded.len(),
        recorded_samples: recorded.values().map(Vec::len).sum(),
    };
    Ok((figures, recorded))
}

/// Alerts pending and firing, from `/api/v1/alerts`.
fn alert_counts(http: &Http, base: &str) -> Result<(usize, usize), String> {
    let r = http.get(&format!("{base}/api/v1/alerts")).map_err(|e| format!("/api/v1/alerts: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("/api/v1/alerts: {} {e}", r.status))?;
    let alerts = json["data"]["alerts"].as_array().ok_or_else(|| format!("/api/v1/alerts: {}", r.text()))?;
    let count = |state: &str| alerts.iter().filter(|a| a["state"].as_str() == Some(state)).count();
    Ok((count("pending"), count("firing")))
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Sends every request (one thread per sender); any non-2xx is an error.
fn send(url: &str, requests: &[Vec<Request>]) -> Result<(), String> {
    let failures = AtomicUsize::new(0);
    let first = Mutex::new(None::<String>);
    std::thread::scope(|s| {
        for mine in requests {
            let (failures, first) = (&failures, &first);
            s.spawn(move || {
                let http = Http::new(Duration::from_secs(300));
                for r in mine {
                    if let Some(p) = super::post_remote_write(&http, url, &r.body, "tidemark-bench-compare-rules") {
                        failures.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = first.lock() {
                            f.get_or_insert(p);
                        }
                    }
                }
            });
        }
    });
    match failures.load(Ordering::Relaxed) {
        0 => Ok(()),
        n => Err(format!(
            "{n} write requests failed; first: {}",
            first.lock().ok().and_then(|f| f.clone()).unwrap_or_default()
        )),
    }
}

/// The recorded names read back for the agreement check: every recording
/// of one SLO group (the names are shared by all 25, so all of them are
/// read), of one service group (likewise all 5), and of the four node
/// groups at 5 m.
pub fn sampled_names(file: &RuleFile) -> Vec<String> {
    let mut names: Vec<String> = file
        .recorded_names()
        .into_iter()
        .filter(|(g, _)| g == "slo-api-gateway-api-users" || g == "service-api-gateway" || g.ends_with("-5m"))
        .map(|(_, n)| n)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn read_recorded(http: &Http, base: &str, file: &RuleFile, anchor: i64) -> Result<Recorded, String> {
    let at = now_ms();
    let mut out = Recorded::new();
    for name in sampled_names(file) {
        let q = format!("{name}[20m]");
        let path = format!("{base}/api/v1/query?query={}&time={}", url_encode(&q), tidemark_testkit::secs(at));
        let r = http.get(&path).map_err(|e| format!("{q}: {e}"))?;
        let json: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| format!("{q}: {} {e}", r.status))?;
        let result = json["data"]["result"].as_array().ok_or_else(|| format!("{q}: {json}"))?;
        for series in result {
            let key = series["metric"].to_string();
            let points = series["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let t = (p[0].as_f64()? * 1000.0).round() as i64;
                    let v = p[1].as_str()?.parse::<f64>().ok()?;
                    Some((t - anchor, v))
                })
                .collect();
            out.insert(key, points);
        }
    }
    Ok(out)
}

/// Compares recorded samples at equal anchor-relative timestamps.
pub fn compare_recorded(reference: &Recorded, other: &Recorded) -> RecordedAgreement {
    let mut a = RecordedAgreement::default();
    for (key, want) in reference {
        let Some(got) = other.get(key) else {
            a.missing_series += 1;
            a.example.get_or_insert_with(|| format!("missing {key}"));
            continue;
        };
        a.common_series += 1;
        let got: HashMap<i64, f64> = got.iter().copied().collect();
        for (t, w) in want {
            let Some(g) = got.get(t) else { continue };
            a.common_points += 1;
            let rel = relative_difference(*w, *g);
            if rel > 1e-9 {
                a.differing_points += 1;
                a.example.get_or_insert_with(|| format!("{key} at anchor{t:+} ms: prometheus {w}, got {g}"));
            }
            if rel.is_finite() {
                a.max_relative_difference = a.max_relative_difference.max(rel);
            }
        }
    }
    a.extra_series = other.keys().filter(|k| !reference.contains_key(*k)).count();
    if a.extra_series > 0 {
        if let Some(k) = other.keys().find(|k| !reference.contains_key(*k)) {
            a.example.get_or_insert_with(|| format!("extra {k}"));
        }
    }
    a
}

/// |a − b| relative to the larger magnitude; 0 for equal values (infinities
/// and NaNs included), infinite when only one is NaN.
fn relative_difference(a: f64, b: f64) -> f64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
        return f64::INFINITY;
    }
    (a - b).abs() / a.abs().max(b.abs())
}

fn print_system(s: &SystemRules) {
    eprintln!(
        "  {}: {} iterations in {:.0} s; group median {:.1} ms, max {:.1} ms, round {:.1} ms; CPU {:.1} s; RSS {:.0} → {:.0} MiB; {} failures",
        s.system.name(),
        s.iterations,
        s.phase_seconds,
        s.group_median_ms,
        s.group_max_ms,
        s.round_ms,
        s.cpu_seconds,
        mib(s.rss_before_bytes),
        mib(s.rss_max_bytes),
        s.failed_evaluations
    );
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// Prints the tables (markdown), with ratios to Prometheus.
pub fn print_report(r: &RulesReport) {
    let prom = r.systems.iter().find(|s| s.system == SystemKind::Prometheus);
    println!("\n### Rules at scale: {} rules in {} groups over {} series\n", r.rules, r.groups, r.series);
    println!("{} ({} samples per system).", r.load, r.samples);
    println!("Machine: {}. Load average before {}, after {}.\n", r.machine, r.loadavg_before, r.loadavg_after);
    let header: Vec<String> = r
        .systems
        .iter()
        .map(|s| match s.system {
            SystemKind::Prometheus => {
                let v = r.versions.iter().find(|(n, _)| n == "prometheus").map_or("", |(_, v)| v.as_str());
                format!("prometheus {}", v.split(['+', '-']).next().unwrap_or(v))
            }
            k => k.name().to_string(),
        })
        .collect();
    let ratio_title = if prom.is_some() { " (ratio to Prometheus)" } else { "" };
    println!("| {ratio_title} | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    type Row<'a> = (&'a str, Box<dyn Fn(&SystemRules) -> f64>, usize);
    let rows: Vec<Row<'_>> = vec![
        ("group evaluation, median over groups, ms", Box::new(|s| s.group_median_ms), 1),
        ("group evaluation, max over groups, ms", Box::new(|s| s.group_max_ms), 1),
        ("one round of all 50 groups (sum of medians), ms", Box::new(|s| s.round_ms), 0),
        ("server CPU over the rule phase, s", Box::new(|s| s.cpu_seconds), 1),
        ("server CPU per group iteration, ms", Box::new(|s| s.cpu_ms_per_group_iteration), 1),
        ("RSS when the rules start, MiB", Box::new(|s| mib(s.rss_before_bytes)), 0),
        ("largest RSS during the rule phase, MiB", Box::new(|s| mib(s.rss_max_bytes)), 0),
        ("rule evaluations failed", Box::new(|s| s.failed_evaluations as f64), 0),
    ];
    for (name, get, decimals) in &rows {
        let cells: Vec<String> = r
            .systems
            .iter()
            .map(|s| {
                let x = get(s);
                match prom.map(get) {
                    Some(p) if p > 0.0 && s.system != SystemKind::Prometheus => {
                        format!("{x:.decimals$} ({:.2}×)", x / p)
                    }
                    _ => format!("{x:.decimals$}"),
                }
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let info: Vec<String> = r
        .systems
        .iter()
        .map(|s| {
            format!(
                "{} it. in {:.0} s{}",
                s.iterations,
                s.phase_seconds,
                if s.phase_within_data { "" } else { " (past the data!)" }
            )
        })
        .collect();
    println!("| group iterations seen, rule phase wall time | {} |", info.join(" | "));
    let alerts: Vec<String> = r.systems.iter().map(|s| format!("{} / {}", s.alerts_pending, s.alerts_firing)).collect();
    println!("| alerts pending / firing at the end | {} |", alerts.join(" | "));
    let ingest: Vec<String> = r.systems.iter().map(|s| format!("{:.1}", s.ingest_seconds)).collect();
    println!("| (ingest before the phase, s; not part of the figures) | {} |", ingest.join(" | "));
    for (k, a) in &r.agreement {
        println!(
            "\nRecorded samples, {} against Prometheus ({} recorded names): {} series in both, {} missing, {} extra; \
             {} samples at equal anchor-relative timestamps, {} differ (max relative difference {:.1e}){}.",
            k.name(),
            a.names,
            a.common_series,
            a.missing_series,
            a.extra_series,
            a.common_points,
            a.differing_points,
            a.max_relative_difference,
            a.example.as_ref().map(|e| format!("; e.g. {e}")).unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(entries: &[(&str, &[(i64, f64)])]) -> Recorded {
        entries.iter().map(|(k, p)| (k.to_string(), p.to_vec())).collect()
    }

    #[test]
    fn recorded_samples_are_compared_at_common_relative_times() {
        let prom = rec(&[("a", &[(0, 1.0), (15_000, 2.0), (30_000, f64::NAN)]), ("b", &[(0, 5.0)])]);
        let same =
            rec(&[("a", &[(15_000, 2.0 * (1.0 + 1e-12)), (30_000, f64::NAN), (45_000, 9.0)]), ("b", &[(0, 5.0)])]);
        let a = compare_recorded(&prom, &same);
        assert_eq!((a.common_series, a.common_points, a.differing_points), (2, 3, 0));
        assert!(a.agrees(), "{a:?}");

        let off = rec(&[("a", &[(15_000, 2.1)]), ("c", &[(0, 1.0)])]);
        let a = compare_recorded(&prom, &off);
        assert_eq!((a.common_series, a.missing_series, a.extra_series), (1, 1, 1));
        assert_eq!((a.common_points, a.differing_points), (1, 1));
        assert!(!a.agrees());
        assert!((a.max_relative_difference - 0.1 / 2.1).abs() < 1e-12);

        // Nothing at common timestamps is not agreement.
        let shifted = rec(&[("a", &[(7_000, 1.0)]), ("b", &[(7_000, 5.0)])]);
        assert!(!compare_recorded(&prom, &shifted).agrees());
    }

    #[test]
    fn relative_differences() {
        assert_eq!(relative_difference(1.0, 1.0), 0.0);
        assert_eq!(relative_difference(f64::NAN, f64::NAN), 0.0);
        assert_eq!(relative_difference(f64::INFINITY, f64::INFINITY), 0.0);
        assert_eq!(relative_difference(f64::NAN, 1.0), f64::INFINITY);
        assert_eq!(relative_difference(-2.0, 2.0), 2.0);
        assert_eq!(median(&[1.0, 2.0, 10.0]), 2.0);
        assert_eq!(median(&[1.0, 3.0]), 2.0);
    }

    #[test]
    fn sampled_names_cover_every_kind_of_group() {
        let file = RuleFile::at_scale();
        let names = sampled_names(&file);
        for want in [
            "job_route:http_error_ratio:rate5m",
            "job_route:http_request_duration_seconds:p99_5m",
            "job:db_pool_utilisation:max",
            "instance:node_cpu_utilisation:rate5m",
            "instance_mountpoint:node_filesystem_avail_bytes:predict4h5m",
            "instance:node_network_bytes_excluding_lo:rate5m",
            "instance_device:node_disk_bytes_per_io:ratio5m",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not sampled");
        }
        assert!(
            !names.iter().any(|n| n == "instance:node_cpu_utilisation:rate1m"),
            "one window of the node groups is enough"
        );
    }
}

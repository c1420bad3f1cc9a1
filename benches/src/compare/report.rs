//! The comparison's figures: markdown tables with ratios to Prometheus, a
//! verdict on each goal, and the JSON report.

use std::path::Path;

use super::load::LoadKind;
use super::placement::BlockCut;
use super::queries::{Agreement, QuerySpec, Timed};
use super::sweep::{self, IngestSweep};
use super::systems::{package_version, Persisted, SystemKind};
use super::{CompareError, Timing};

/// Everything one run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// CPU model, cores, memory.
    pub machine: String,
    /// Versions of the peers (Debian packages) and of Tidemark.
    pub versions: Vec<(String, String)>,
    /// The command line.
    pub command: String,
    /// One entry per load (none with `--ingest-sweep-only`).
    pub loads: Vec<LoadReport>,
    /// The ingest sweep of each load (`--ingest-sweep`; empty without).
    pub sweeps: Vec<IngestSweep>,
}

/// One load's figures.
#[derive(Debug, serde::Serialize)]
pub struct LoadReport {
    /// What the load is.
    pub description: String,
    /// Synthetic or capture.
    pub kind: LoadKind,
    /// Series in the load.
    pub series: usize,
    /// Scrape targets in the load.
    pub targets: usize,
    /// Samples in the load.
    pub samples: u64,
    /// Remote-write requests sent to each system, and their total bytes.
    pub requests: usize,
    /// See `requests`.
    pub request_bytes: u64,
    /// Ingest phases the load was encoded and sent in.
    pub phases: usize,
    /// Concurrent remote-write senders (`--senders`): the fixed client.
    pub senders: usize,
    /// How query latency was taken.
    pub timing: Timing,
    /// Where the load sits against the 2 h block boundaries.
    pub block_cut: BlockCut,
    /// The load's first sample time (ms), placed by `block_cut`.
    pub first_ms: i64,
    /// `/proc/loadavg` when the load started and when it ended (the
    /// machine is shared: wall-clock figures depend on it).
    pub loadavg_start: String,
    /// See `loadavg_start`.
    pub loadavg_end: String,
    /// Peak RSS of the bench process itself so far (request bodies,
    /// series labels, answers kept for the agreement check).
    pub bench_peak_rss_bytes: u64,
    /// Each system's ingestion and storage figures.
    pub systems: Vec<SystemReport>,
    /// The query set at each query point (the last is the end of the load).
    pub query_points: Vec<QueryPointReport>,
}

impl LoadReport {
    /// The query set at the end of the load.
    pub fn final_queries(&self) -> &[QueryReport] {
        self.query_points.last().map_or(&[], |p| p.queries.as_slice())
    }
}

/// Ingestion figures of one system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestFigures {
    /// Wall time spent sending (the sum over phases, from each phase's
    /// first request to its last answer).
    pub seconds: f64,
    /// Samples ÷ `seconds`.
    pub samples_per_second: f64,
    /// Server CPU (user + system) from before the first write to 3 s after
    /// the last, less the CPU spent during query points in between.
    pub cpu_seconds: f64,
    /// `cpu_seconds` per million samples.
    pub cpu_seconds_per_million: f64,
    /// Peak resident memory (`VmHWM`) after the load.
    pub peak_rss_bytes: u64,
    /// Resident memory (`VmRSS`) after the load.
    pub rss_bytes: u64,
    /// `peak_rss_bytes` ÷ series.
    pub peak_rss_per_series: f64,
    /// The rate of each phase in order (the first creates every series;
    /// empty where phases are not timed apart, e.g. in a sweep).
    pub phase_samples_per_second: Vec<f64>,
}

/// One system's figures for one load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemReport {
    /// Which system.
    pub system: SystemKind,
    /// Ingestion.
    pub ingest: IngestFigures,
    /// The data directory right after ingest, before any snapshot or
    /// forced flush (while data is in the head: mostly the WAL).
    pub live_data_dir_bytes: u64,
    /// `live_data_dir_bytes` by top-level entry (`wal`, `chunks_head`,
    /// `blocks (n)`, …), largest first.
    pub live_data_dir_by_entry: Vec<(String, u64)>,
    /// Whether Tidemark had cut a head block when the figures were taken
    /// (`None` for the other systems).
    pub block_written: Option<bool>,
    /// Tidemark: seconds from a restart after SIGKILL (at the end of the
    /// run) to ready, i.e. opening blocks and replaying the WAL.
    pub replay_seconds: Option<f64>,
    /// Persisted form.
    pub persisted: Persisted,
    /// Persisted bytes ÷ samples.
    pub bytes_per_sample: f64,
    /// Samples counted back with `count_over_time`.
    pub stored_samples: u64,
    /// Peak RSS (`VmHWM`) after the final query set.
    pub peak_rss_after_queries: u64,
    /// RSS (`VmRSS`) after the final query set.
    pub rss_after_queries: u64,
}

/// The query set at one point of the load.
#[derive(Debug, serde::Serialize)]
pub struct QueryPointReport {
    /// Scrape rounds stored when the set ran.
    pub after_rounds: usize,
    /// The same in hours of data-time.
    pub data_hours: f64,
    /// Evaluation time of the instant queries (end of the range ones).
    pub at_ms: i64,
    /// Each system's memory and CPU around the set.
    pub memory: Vec<QueryMemory>,
    /// Each query's figures.
    pub queries: Vec<QueryReport>,
}

/// What a query set cost a system in memory and CPU.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryMemory {
    /// Which system.
    pub system: SystemKind,
    /// `VmHWM` before and after the set.
    pub peak_rss_before: u64,
    /// See `peak_rss_before`.
    pub peak_rss_after: u64,
    /// `VmRSS` before and after the set.
    pub rss_before: u64,
    /// See `rss_before`.
    pub rss_after: u64,
    /// CPU (user + system) the system spent during the set.
    pub cpu_seconds: f64,
}

/// One query's figures on every system.
#[derive(Debug, serde::Serialize)]
pub struct QueryReport {
    /// The query.
    pub query: QuerySpec,
    /// Per system, in run order.
    pub by_system: Vec<QueryBySystem>,
}

/// One system's answer to one query.
#[derive(Debug, serde::Serialize)]
pub struct QueryBySystem {
    /// Which system.
    pub system: SystemKind,
    /// Its latency.
    #[serde(flatten)]
    pub timed: Timed,
    /// How its answer agrees with Prometheus' (`None` when either did not
    /// answer).
    pub agreement: Option<Agreement>,
}

impl Report {
    /// An empty report for this run.
    pub fn new(tidemark_bin: &Path) -> Report {
        let tidemark_version = std::process::Command::new(tidemark_bin)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Report {
            started: rfc3339_now(),
            machine: machine(),
            versions: vec![
                ("prometheus".into(), package_version("prometheus")),
                ("victoria-metrics".into(), package_version("victoria-metrics")),
                ("tidemark".into(), tidemark_version),
            ],
            command: std::env::args().collect::<Vec<_>>().join(" "),
            loads: Vec::new(),
            sweeps: Vec::new(),
        }
    }

    /// Writes the report as pretty JSON to `path` (creating its directory).
    pub fn write_json(&self, path: &Path) -> Result<(), CompareError> {
        let io = |e: std::io::Error| CompareError::Setup(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| CompareError::Setup(e.to_string()))?;
        std::fs::write(path, text).map_err(io)
    }
}

fn rfc3339_now() -> String {
    let ms = tidemark_testkit::now_ms();
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000) / 1000;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// CPU model, cores and memory of this machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok())))
        .unwrap_or(0);
    format!("{cores} × {}, {:.1} GiB RAM", model.unwrap_or("unknown CPU"), mem_kib as f64 / (1 << 20) as f64)
}

/// A system's column title, with the peer's version from the report's
/// `versions` (read once, when the report was made).
pub(super) fn label(kind: SystemKind, versions: &[(String, String)]) -> String {
    match kind {
        SystemKind::Prometheus | SystemKind::VictoriaMetrics => {
            let version = versions.iter().find(|(name, _)| name == kind.name()).map_or("", |(_, v)| v.as_str());
            format!("{} {}", kind.name(), short_version(version))
        }
        k => k.name().to_string(),
    }
}

fn short_version(v: &str) -> &str {
    v.split(['+', '-']).next().unwrap_or(v)
}

pub(super) fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", x);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// `ours / theirs` as `0.52×`, or `–` when either is missing.
pub(super) fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// `/proc/loadavg` (the 1, 5 and 15 min load averages, runnable/total
/// threads), or empty off Linux.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// This process' peak RSS (`VmHWM`), 0 if unknown.
pub fn own_peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

/// Writes `text` to `path` (creating its directory).
pub fn write_text(path: &Path, text: &str) -> Result<(), CompareError> {
    let io = |e: std::io::Error| CompareError::Setup(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// The markdown report's heading: when, where, what.
pub fn render_header(r: &Report) -> String {
    let versions: Vec<String> = r.versions.iter().map(|(n, v)| format!("{n} {v}")).collect();
    format!(
        "# tidemark-bench compare, {}\n\n`{}`\n\nMachine: {}. Versions: {}.\n",
        r.started,
        r.command,
        r.machine,
        versions.join(", ")
    )
}

/// The Tidemark system a load's ratios are about: `tidemark`, else
/// `tidemark-nosync`.
fn ours(kinds: &[SystemKind]) -> Option<usize> {
    kinds
        .iter()
        .position(|&k| k == SystemKind::Tidemark)
        .or_else(|| kinds.iter().position(|&k| k == SystemKind::TidemarkNosync))
}

/// The positions of `tidemark` (A) and `tidemark-b` (B) in an A/B run.
fn ab_pair(kinds: &[SystemKind]) -> Option<(usize, usize)> {
    let a = kinds.iter().position(|&k| k == SystemKind::Tidemark)?;
    let b = kinds.iter().position(|&k| k == SystemKind::TidemarkB)?;
    Some((a, b))
}

/// The B / A column's title (nothing outside an A/B run).
fn ab_title(ab: Option<(usize, usize)>) -> &'static str {
    if ab.is_some() {
        " tidemark-b / tidemark |"
    } else {
        ""
    }
}

/// The B / A column's alignment row cell.
fn ab_rule(ab: Option<(usize, usize)>) -> &'static str {
    if ab.is_some() {
        "---:|"
    } else {
        ""
    }
}

/// One load's tables as markdown: every figure of issue 13's table per
/// system with Tidemark's ratios to VictoriaMetrics and Prometheus, then
/// each query point's latencies (median and spread) and memory.
pub fn render_load(l: &LoadReport, versions: &[(String, String)]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let kinds: Vec<SystemKind> = l.systems.iter().map(|s| s.system).collect();
    let (t, v, p) = (
        ours(&kinds),
        kinds.iter().position(|&k| k == SystemKind::VictoriaMetrics),
        kinds.iter().position(|&k| k == SystemKind::Prometheus),
    );
    let _ = writeln!(o, "\n## {}\n", l.description);
    let _ = writeln!(
        o,
        "{} series in {} targets, {} samples in {} remote-write 1.0 requests ({:.1} MB snappy), sent in {} phases to one system at a time; queries timed {}. Load average {} at the start, {} at the end; the bench process peaked at {:.0} MiB RSS.\n",
        thousands(l.series as f64),
        thousands(l.targets as f64),
        thousands(l.samples as f64),
        thousands(l.requests as f64),
        l.request_bytes as f64 / 1e6,
        l.phases,
        match l.timing {
            Timing::Interleaved => "interleaved (every system up, each query's runs alternating between them)",
            Timing::Sequential => "sequentially (one system up at a time)",
        },
        l.loadavg_start,
        l.loadavg_end,
        mib(l.bench_peak_rss_bytes)
    );
    let header: Vec<String> = kinds.iter().map(|&k| label(k, versions)).collect();
    let ab = ab_pair(&kinds);
    let _ = writeln!(o, "| figure | {} | Tidemark / VM | Tidemark / Prometheus |{}", header.join(" | "), ab_title(ab));
    let _ = writeln!(o, "|---|{}---:|---:|{}", "---:|".repeat(header.len()), ab_rule(ab));
    let final_memory = l.query_points.last().map(|p| p.memory.as_slice()).unwrap_or_default();
    let query_growth = |s: &SystemReport| {
        final_memory
            .iter()
            .find(|m| m.system == s.system)
            .map_or(f64::NAN, |m| mib(m.peak_rss_after.saturating_sub(m.peak_rss_before)))
    };
    type Row<'a> = (&'a str, Box<dyn Fn(&SystemReport) -> f64 + 'a>, fn(f64) -> String);
    let rows: Vec<Row<'_>> = vec![
        ("ingest samples/s", Box::new(|s| s.ingest.samples_per_second), thousands),
        ("server CPU-s per 1 M samples", Box::new(|s| s.ingest.cpu_seconds_per_million), |x| format!("{x:.2}")),
        ("peak RSS after ingest, MiB", Box::new(|s| mib(s.ingest.peak_rss_bytes)), |x| format!("{x:.0}")),
        ("RSS after ingest, MiB", Box::new(|s| mib(s.ingest.rss_bytes)), |x| format!("{x:.0}")),
        ("peak RSS after ingest per series, KiB", Box::new(|s| s.ingest.peak_rss_per_series / 1024.0), |x| {
            format!("{x:.2}")
        }),
        ("peak RSS after the query set, MiB", Box::new(|s| mib(s.peak_rss_after_queries)), |x| format!("{x:.0}")),
        ("peak RSS the final query set added, MiB", Box::new(query_growth), |x| format!("{x:.0}")),
        ("bytes/sample persisted", Box::new(|s| s.bytes_per_sample), |x| format!("{x:.3}")),
        ("live data dir after ingest (before any snapshot), MiB", Box::new(|s| mib(s.live_data_dir_bytes)), |x| {
            format!("{x:.0}")
        }),
    ];
    for (name, get, fmt) in &rows {
        let vals: Vec<f64> = l.systems.iter().map(get).collect();
        let cells: Vec<String> = vals.iter().map(|&x| if x.is_finite() { fmt(x) } else { "–".into() }).collect();
        let at = |i: Option<usize>| i.map(|i| vals[i]);
        let ab_cell = ab.map(|(a, b)| format!(" {} |", ratio(at(Some(b)), at(Some(a))))).unwrap_or_default();
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} |{ab_cell}",
            cells.join(" | "),
            ratio(at(t), at(v)),
            ratio(at(t), at(p))
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Block cut: **{}** ({}); the first sample at {} ms.\n",
        l.block_cut.name(),
        super::cut_description(l.block_cut),
        l.first_ms
    );
    for s in &l.systems {
        let _ = writeln!(o, "- {} persisted: {}", s.system.name(), s.persisted.how);
        let entries: Vec<String> =
            s.live_data_dir_by_entry.iter().map(|(name, b)| format!("{name} {:.1}", mib(*b))).collect();
        let _ = writeln!(o, "- {} live data dir by entry, MiB: {}", s.system.name(), entries.join(", "));
        if let Some(w) = s.block_written {
            let _ = writeln!(o, "- {} had written a head block when measured: {}", s.system.name(), w);
        }
        if let Some(r) = s.replay_seconds {
            let _ = writeln!(o, "- {} restart after SIGKILL to ready (WAL replay): {r:.1} s", s.system.name());
        }
        if !s.ingest.phase_samples_per_second.is_empty() {
            let rates: Vec<String> =
                s.ingest.phase_samples_per_second.iter().map(|r| format!("{:.3}", r / 1e6)).collect();
            let _ = writeln!(
                o,
                "- {} ingest rate by phase (the first creates the series), M samples/s: {}",
                s.system.name(),
                rates.join(", ")
            );
        }
    }
    for point in &l.query_points {
        render_point(&mut o, point, &kinds, &header, (t, v, p));
    }
    o
}

fn render_point(
    o: &mut String,
    point: &QueryPointReport,
    kinds: &[SystemKind],
    header: &[String],
    (t, v, p): (Option<usize>, Option<usize>, Option<usize>),
) {
    use std::fmt::Write;
    let _ = writeln!(o, "\n### Query set after {:.2} h of data\n", point.data_hours);
    let _ = writeln!(o, "Each cell: median ms [p10–p90] (min–max) over the timed runs; ratios are of medians.\n");
    let ab = ab_pair(kinds);
    let _ = writeln!(o, "| query | {} | Tidemark / VM | Tidemark / Prometheus |{}", header.join(" | "), ab_title(ab));
    let _ = writeln!(o, "|---|{}---:|---:|{}", "---:|".repeat(header.len()), ab_rule(ab));
    let mut seed_totals = vec![(0.0f64, 0usize, 0usize, 0usize); kinds.len()];
    for q in &point.queries {
        let by: Vec<Option<&QueryBySystem>> =
            kinds.iter().map(|&k| q.by_system.iter().find(|b| b.system == k)).collect();
        let median =
            |i: Option<usize>| i.and_then(|i| by[i]).filter(|b| b.timed.error.is_none()).map(|b| b.timed.median_ms);
        if !q.query.heavy {
            for (i, b) in by.iter().enumerate() {
                let Some(b) = b else { continue };
                if b.timed.error.is_none() {
                    seed_totals[i].0 += b.timed.median_ms;
                    seed_totals[i].1 += 1;
                }
                if b.agreement.as_ref().is_some_and(Agreement::agrees) {
                    seed_totals[i].2 += 1;
                }
                if b.agreement.is_some() {
                    seed_totals[i].3 += 1;
                }
            }
            continue;
        }
        let cells: Vec<String> = by
            .iter()
            .map(|b| match b {
                None => "–".into(),
                Some(b) => match &b.timed.error {
                    Some(e) => format!("error: {}", e.chars().take(60).collect::<String>()),
                    None => {
                        let s = &b.timed.spread;
                        let agrees = match &b.agreement {
                            Some(a) if b.system != SystemKind::Prometheus && !a.agrees() => format!(
                                " ≠ {} of {} points, {} missing / {} extra series",
                                a.differing_points, a.points, a.missing_series, a.extra_series
                            ),
                            _ => String::new(),
                        };
                        format!(
                            "{:.1} [{:.1}–{:.1}] ({:.1}–{:.1}){agrees}",
                            s.median_ms, s.p10_ms, s.p90_ms, s.min_ms, s.max_ms
                        )
                    }
                },
            })
            .collect();
        let ab_cell = ab.map(|(a, b)| format!(" {} |", ratio(median(Some(b)), median(Some(a))))).unwrap_or_default();
        let _ = writeln!(
            o,
            "| {} `{}` | {} | {} | {} |{ab_cell}",
            q.query.name,
            q.query.promql.replace('|', "\\|"),
            cells.join(" | "),
            ratio(median(t), median(v)),
            ratio(median(t), median(p))
        );
    }
    if point.queries.iter().any(|q| !q.query.heavy) {
        let n = point.queries.iter().filter(|q| !q.query.heavy).count();
        let total = |i: Option<usize>| i.map(|i| seed_totals[i].0);
        let cells: Vec<String> = seed_totals
            .iter()
            .zip(kinds)
            .map(|((total, answered, agree, compared), k)| {
                let agreement =
                    if *k == SystemKind::Prometheus { String::new() } else { format!(", {agree}/{compared} agree") };
                format!("{total:.1} total, {answered} answered{agreement}")
            })
            .collect();
        let ab_cell = ab.map(|(a, b)| format!(" {} |", ratio(total(Some(b)), total(Some(a))))).unwrap_or_default();
        let _ = writeln!(
            o,
            "| the {n} seed queries, instant (sum of medians) | {} | {} | {} |{ab_cell}",
            cells.join(" | "),
            ratio(total(t), total(v)),
            ratio(total(t), total(p))
        );
    }
    let _ = writeln!(o, "\n| memory and CPU of this query set | {} |", header.join(" | "));
    let _ = writeln!(o, "|---|{}", "---:|".repeat(header.len()));
    let mem: Vec<Option<&QueryMemory>> = kinds.iter().map(|&k| point.memory.iter().find(|m| m.system == k)).collect();
    type MemRow = (&'static str, fn(&QueryMemory) -> String);
    let rows: [MemRow; 4] = [
        ("peak RSS (VmHWM) before → after, MiB", |m| {
            format!("{:.0} → {:.0}", mib(m.peak_rss_before), mib(m.peak_rss_after))
        }),
        ("peak RSS added, MiB", |m| format!("{:.0}", mib(m.peak_rss_after.saturating_sub(m.peak_rss_before)))),
        ("RSS (VmRSS) before → after, MiB", |m| format!("{:.0} → {:.0}", mib(m.rss_before), mib(m.rss_after))),
        ("server CPU-s during the set", |m| format!("{:.1}", m.cpu_seconds)),
    ];
    for (name, f) in rows {
        let cells: Vec<String> = mem.iter().map(|m| m.map_or("–".into(), f)).collect();
        let _ = writeln!(o, "| {name} | {} |", cells.join(" | "));
    }
}

/// Issue 13's goals, each with a verdict from the measured ratios of the
/// `tidemark` system to the peers. A goal whose peer is not in the run is
/// listed as not judged, so a partial run still says what it could and
/// could not decide.
pub fn render_goals(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "\n## Goals of issue 13 (Tidemark against both peers, per load)\n");
    for l in &r.loads {
        let get = |k: SystemKind| l.systems.iter().find(|s| s.system == k);
        let Some(t) = get(SystemKind::Tidemark) else {
            let _ = writeln!(o, "{}: not judged (Tidemark is not in this run)\n", l.description);
            continue;
        };
        let (p, v) = (get(SystemKind::Prometheus), get(SystemKind::VictoriaMetrics));
        let _ = writeln!(o, "{}:\n", l.description);
        for g in goal_verdicts(t, p, v, l.final_queries(), l.senders) {
            let _ = writeln!(o, "- {g}");
        }
        let _ = writeln!(o);
    }
    for s in &r.sweeps {
        let _ = writeln!(
            o,
            "{}, ingest sweep over {:?} senders (the ingest goals both ways: with the fixed client every system gets the same sender count; at its best count each system gets the concurrency that suits it):\n",
            s.description, s.sender_counts
        );
        match sweep::goal_lines(s) {
            Some(lines) => {
                for g in lines {
                    let _ = writeln!(o, "- {g}");
                }
            }
            None => {
                let _ = writeln!(o, "- not judged (Tidemark is not in this run)");
            }
        }
        let _ = writeln!(o);
    }
    o
}

/// One goal's line: "met" or "NOT met" with the ratio of Tidemark's figure
/// to the peer's (`peer`: both figures), or "not judged" when the peer
/// (`missing`) did not run or a figure is missing.
pub(super) fn judge(what: &str, peer: Option<(f64, f64)>, met: fn(f64) -> bool, missing: &str) -> String {
    match peer {
        Some((ours, theirs)) if theirs > 0.0 && ours.is_finite() && theirs.is_finite() => {
            let ratio = ours / theirs;
            format!("{what}: {} ({ratio:.2}×)", if met(ratio) { "met" } else { "NOT met" })
        }
        Some(_) => format!("{what}: not judged (no figure measured)"),
        None => format!("{what}: not judged ({missing} not in this run)"),
    }
}

/// One line per goal of issue 13: "met", "NOT met" with the ratio, or "not
/// judged" when the peer it is measured against did not run.
fn goal_verdicts(
    t: &SystemReport,
    p: Option<&SystemReport>,
    v: Option<&SystemReport>,
    queries: &[QueryReport],
    senders: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut goal = |what: &str, peer: Option<(f64, f64)>, met: fn(f64) -> bool, missing: &str| {
        out.push(judge(what, peer, met, missing));
    };
    const VM: &str = "VictoriaMetrics";
    const PROM: &str = "Prometheus";
    goal(
        &format!("server CPU per sample ≤ 0.5× VictoriaMetrics' — fixed client, both at {senders} senders"),
        v.map(|v| (t.ingest.cpu_seconds_per_million, v.ingest.cpu_seconds_per_million)),
        |r| r <= 0.5,
        VM,
    );
    goal(
        &format!("ingest rate ≥ 1.5× VictoriaMetrics' — fixed client, both at {senders} senders"),
        v.map(|v| (t.ingest.samples_per_second, v.ingest.samples_per_second)),
        |r| r >= 1.5,
        VM,
    );
    goal(
        "peak RSS after ingest ≤ 0.8× VictoriaMetrics'",
        v.map(|v| (t.ingest.peak_rss_bytes as f64, v.ingest.peak_rss_bytes as f64)),
        |r| r <= 0.8,
        VM,
    );
    goal(
        "live data dir after ingest ≤ 0.5× Prometheus'",
        p.map(|p| (t.live_data_dir_bytes as f64, p.live_data_dir_bytes as f64)),
        |r| r <= 0.5,
        PROM,
    );
    goal(
        "fewer persisted bytes per sample than VictoriaMetrics",
        v.map(|v| (t.bytes_per_sample, v.bytes_per_sample)),
        |r| r < 1.0,
        VM,
    );
    // Heavy queries: each bound is judged against the peers that ran.
    let median = |q: &QueryReport, k: SystemKind| {
        q.by_system.iter().find(|b| b.system == k && b.timed.error.is_none()).map(|b| b.timed.median_ms)
    };
    for (peer, kind, bound, name, possessive) in
        [(v, SystemKind::VictoriaMetrics, 0.7, VM, "VM's"), (p, SystemKind::Prometheus, 0.3, PROM, "Prometheus'")]
    {
        let what = format!("every heavy query ≤ {bound}× {possessive} median");
        if peer.is_none() {
            out.push(format!("{what}: not judged ({name} not in this run)"));
            continue;
        }
        let mut slow = Vec::new();
        let mut compared = 0;
        for q in queries.iter().filter(|q| q.query.heavy) {
            if let (Some(ours), Some(theirs)) = (median(q, SystemKind::Tidemark), median(q, kind)) {
                compared += 1;
                if ours > bound * theirs {
                    slow.push(format!("{} ({:.2}×)", q.query.name, ours / theirs));
                }
            }
        }
        out.push(if compared == 0 {
            format!("{what}: not judged (no heavy query answered by both)")
        } else if slow.is_empty() {
            format!("{what}: met ({compared} queries)")
        } else {
            format!("{what}: NOT met on {} of {compared}: {}", slow.len(), slow.join("; "))
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(system: SystemKind, cpu: f64, rate: f64, rss: u64, live: u64, bps: f64) -> SystemReport {
        SystemReport {
            system,
            ingest: IngestFigures {
                seconds: 1.0,
                samples_per_second: rate,
                cpu_seconds: cpu,
                cpu_seconds_per_million: cpu,
                peak_rss_bytes: rss,
                rss_bytes: rss,
                peak_rss_per_series: 0.0,
                phase_samples_per_second: Vec::new(),
            },
            live_data_dir_bytes: live,
            live_data_dir_by_entry: Vec::new(),
            block_written: None,
            replay_seconds: None,
            persisted: Persisted { bytes: 0, how: String::new(), data_dir_bytes: 0, seconds: 0.0 },
            bytes_per_sample: bps,
            stored_samples: 0,
            peak_rss_after_queries: 0,
            rss_after_queries: 0,
        }
    }

    #[test]
    fn goals_are_judged_against_the_peers_that_ran() {
        let t = system(SystemKind::Tidemark, 1.0, 300.0, 70, 10, 1.2);
        let v = system(SystemKind::VictoriaMetrics, 1.0, 100.0, 100, 99, 1.3);
        let lines = goal_verdicts(&t, None, Some(&v), &[], 4);
        assert_eq!(lines.len(), 7, "{lines:#?}");
        assert_eq!(
            lines[0],
            "server CPU per sample ≤ 0.5× VictoriaMetrics' — fixed client, both at 4 senders: NOT met (1.00×)"
        );
        assert_eq!(lines[1], "ingest rate ≥ 1.5× VictoriaMetrics' — fixed client, both at 4 senders: met (3.00×)");
        assert_eq!(lines[2], "peak RSS after ingest ≤ 0.8× VictoriaMetrics': met (0.70×)");
        assert_eq!(lines[3], "live data dir after ingest ≤ 0.5× Prometheus': not judged (Prometheus not in this run)");
        assert!(lines[4].ends_with(": met (0.92×)"), "{}", lines[4]);
        assert_eq!(lines[5], "every heavy query ≤ 0.7× VM's median: not judged (no heavy query answered by both)");
        assert_eq!(lines[6], "every heavy query ≤ 0.3× Prometheus' median: not judged (Prometheus not in this run)");
        let p = system(SystemKind::Prometheus, 3.0, 50.0, 300, 40, 1.5);
        let lines = goal_verdicts(&t, Some(&p), None, &[], 8);
        assert_eq!(
            lines[0],
            "server CPU per sample ≤ 0.5× VictoriaMetrics' — fixed client, both at 8 senders: not judged (VictoriaMetrics not in this run)"
        );
        assert_eq!(lines[3], "live data dir after ingest ≤ 0.5× Prometheus': met (0.25×)");
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(thousands(f64::NAN), "–");
        assert_eq!(ratio(Some(2.0), Some(4.0)), "0.50×");
        assert_eq!(ratio(Some(2.0), None), "–");
        assert_eq!(ratio(Some(2.0), Some(0.0)), "–");
        assert_eq!(short_version("2.42.0+ds-5+deb12u1"), "2.42.0");
        let now = rfc3339_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}

//! The comparison's figures: markdown tables with ratios to Prometheus, a
//! verdict on each goal, and the JSON report.

use std::path::Path;

use super::load::LoadKind;
use super::queries::{Agreement, QuerySpec, Timed};
use super::systems::{package_version, Persisted, SystemKind};
use super::CompareError;

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
    /// One entry per load.
    pub loads: Vec<LoadReport>,
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
    /// Samples in the load.
    pub samples: u64,
    /// Remote-write requests sent to each system, and their total bytes.
    pub requests: usize,
    /// See `requests`.
    pub request_bytes: u64,
    /// Each system's ingestion and storage figures.
    pub systems: Vec<SystemReport>,
    /// Each query's latency per system.
    pub queries: Vec<QueryReport>,
}

/// Ingestion figures of one system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestFigures {
    /// Wall time from the first request to the last answer.
    pub seconds: f64,
    /// Samples ÷ `seconds`.
    pub samples_per_second: f64,
    /// Server CPU (user + system) during the load and 3 s after.
    pub cpu_seconds: f64,
    /// `cpu_seconds` per million samples.
    pub cpu_seconds_per_million: f64,
    /// Peak resident memory (`VmHWM`) after the load.
    pub peak_rss_bytes: u64,
    /// Resident memory (`VmRSS`) after the load.
    pub rss_bytes: u64,
    /// `peak_rss_bytes` ÷ series.
    pub peak_rss_per_series: f64,
}

/// One system's figures for one load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemReport {
    /// Which system.
    pub system: SystemKind,
    /// Ingestion.
    pub ingest: IngestFigures,
    /// Persisted form.
    pub persisted: Persisted,
    /// Persisted bytes ÷ samples.
    pub bytes_per_sample: f64,
    /// Samples counted back with `count_over_time`.
    pub stored_samples: u64,
    /// Peak RSS at the end, queries included.
    pub peak_rss_after_queries: u64,
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
fn label(kind: SystemKind, versions: &[(String, String)]) -> String {
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

/// `x` next to its ratio to Prometheus' figure, `x (0.52×)`.
fn with_ratio(x: f64, prometheus: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    match prometheus {
        Some(p) if p > 0.0 && x.is_finite() => format!("{} ({:.2}×)", fmt(x), x / p),
        _ => fmt(x),
    }
}

fn thousands(x: f64) -> String {
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

/// Prints one load's tables (markdown) to stdout.
pub fn print_load(l: &LoadReport, versions: &[(String, String)]) {
    let prom = l.systems.iter().find(|s| s.system == SystemKind::Prometheus);
    println!("\n### {}\n", l.description);
    println!(
        "{} samples in {} remote-write 1.0 requests ({:.1} MB snappy). Ratios are to Prometheus (below 1 is less).\n",
        thousands(l.samples as f64),
        l.requests,
        l.request_bytes as f64 / 1e6
    );
    let header: Vec<String> = l.systems.iter().map(|s| label(s.system, versions)).collect();
    println!("| | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    type Row<'a> = (&'a str, Box<dyn Fn(&SystemReport) -> f64>, Box<dyn Fn(f64) -> String>);
    let rows: Vec<Row<'_>> = vec![
        ("ingestion, samples/s", Box::new(|s| s.ingest.samples_per_second), Box::new(thousands)),
        (
            "server CPU-s per 1 M samples",
            Box::new(|s| s.ingest.cpu_seconds_per_million),
            Box::new(|x| format!("{x:.2}")),
        ),
        (
            "peak RSS, MiB",
            Box::new(|s| s.ingest.peak_rss_bytes as f64 / (1 << 20) as f64),
            Box::new(|x| format!("{x:.0}")),
        ),
        (
            "peak RSS per series, KiB",
            Box::new(|s| s.ingest.peak_rss_per_series / 1024.0),
            Box::new(|x| format!("{x:.2}")),
        ),
        ("persisted bytes/sample", Box::new(|s| s.bytes_per_sample), Box::new(|x| format!("{x:.3}"))),
        (
            "data dir after the load, MB",
            Box::new(|s| s.persisted.data_dir_bytes as f64 / 1e6),
            Box::new(|x| format!("{x:.1}")),
        ),
    ];
    for (name, get, fmt) in &rows {
        let cells: Vec<String> = l.systems.iter().map(|s| with_ratio(get(s), prom.map(get), fmt)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    println!();
    println!("| query (median / p99 ms; ratio of medians) | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    let mut seed_totals = vec![(0.0f64, 0usize, 0usize, 0usize); l.systems.len()];
    for q in &l.queries {
        let prom_median = q.by_system.iter().find(|b| b.system == SystemKind::Prometheus).map(|b| b.timed.median_ms);
        if !q.query.heavy {
            for (i, b) in q.by_system.iter().enumerate() {
                let (t, a) = (&b.timed, &b.agreement);
                if t.error.is_none() {
                    seed_totals[i].0 += t.median_ms;
                    seed_totals[i].1 += 1;
                }
                if a.as_ref().is_some_and(Agreement::agrees) {
                    seed_totals[i].2 += 1;
                }
                if a.is_some() {
                    seed_totals[i].3 += 1;
                }
            }
            continue;
        }
        let cells: Vec<String> = q
            .by_system
            .iter()
            .map(|b| (&b.system, &b.timed, &b.agreement))
            .map(|(kind, t, a)| match &t.error {
                Some(e) => format!("error: {}", e.chars().take(60).collect::<String>()),
                None => {
                    let ratio = match prom_median {
                        Some(p) if p > 0.0 && *kind != SystemKind::Prometheus => format!(" ({:.2}×)", t.median_ms / p),
                        _ => String::new(),
                    };
                    let agrees = match a {
                        Some(a) if *kind != SystemKind::Prometheus && !a.agrees() => format!(
                            " ≠ {} of {} points, {} missing / {} extra series",
                            a.differing_points, a.points, a.missing_series, a.extra_series
                        ),
                        _ => String::new(),
                    };
                    format!("{:.1} / {:.1}{ratio}{agrees}", t.median_ms, t.p99_ms)
                }
            })
            .collect();
        println!("| {} `{}` | {} |", q.query.name, q.query.promql.replace('|', "\\|"), cells.join(" | "));
    }
    if l.queries.iter().any(|q| !q.query.heavy) {
        let n = l.queries.iter().filter(|q| !q.query.heavy).count();
        let prom_total = l.systems.iter().position(|s| s.system == SystemKind::Prometheus).map(|i| seed_totals[i].0);
        let cells: Vec<String> = seed_totals
            .iter()
            .zip(&l.systems)
            .map(|((total, answered, agree, compared), s)| {
                let ratio = match prom_total {
                    Some(p) if p > 0.0 && s.system != SystemKind::Prometheus => format!(" ({:.2}×)", total / p),
                    _ => String::new(),
                };
                let agreement = if s.system == SystemKind::Prometheus {
                    String::new()
                } else {
                    format!(", {agree}/{compared} agree")
                };
                format!("{total:.1} total, {answered} answered{agreement}{ratio}")
            })
            .collect();
        println!("| the {n} seed queries, instant (sum of medians) | {} |", cells.join(" | "));
    }
}

/// Prints the goals with a verdict from the measured ratios.
pub fn print_goals(r: &Report) {
    println!("\n### Goals (Tidemark against both peers, per load)\n");
    for l in &r.loads {
        let get = |k: SystemKind| l.systems.iter().find(|s| s.system == k);
        let (Some(t), Some(p), Some(v)) =
            (get(SystemKind::Tidemark), get(SystemKind::Prometheus), get(SystemKind::VictoriaMetrics))
        else {
            continue;
        };
        println!("{}:", l.description);
        let verdict = |ours: f64, a: f64, b: f64| {
            let met = ours < a && ours < b;
            format!(
                "{} ({:.2}× Prometheus, {:.2}× VictoriaMetrics)",
                if met { "met" } else { "NOT met" },
                ours / a,
                ours / b
            )
        };
        println!("- fewer bytes per sample: {}", verdict(t.bytes_per_sample, p.bytes_per_sample, v.bytes_per_sample));
        println!(
            "- less server CPU per sample: {}",
            verdict(
                t.ingest.cpu_seconds_per_million,
                p.ingest.cpu_seconds_per_million,
                v.ingest.cpu_seconds_per_million
            )
        );
        println!(
            "- less RSS per series: {}",
            verdict(t.ingest.peak_rss_per_series, p.ingest.peak_rss_per_series, v.ingest.peak_rss_per_series)
        );
        let mut slower = Vec::new();
        for q in l.queries.iter().filter(|q| q.query.heavy) {
            let m = |k: SystemKind| {
                q.by_system.iter().find(|b| b.system == k && b.timed.error.is_none()).map(|b| b.timed.median_ms)
            };
            if let (Some(ours), Some(pm), Some(vm)) =
                (m(SystemKind::Tidemark), m(SystemKind::Prometheus), m(SystemKind::VictoriaMetrics))
            {
                if !(ours < pm && ours < vm) {
                    slower.push(format!("{} ({:.2}× / {:.2}×)", q.query.name, ours / pm, ours / vm));
                }
            }
        }
        if slower.is_empty() {
            println!("- lower median latency on every heavy query: met");
        } else {
            println!("- lower median latency on every heavy query: NOT met on {}", slower.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(with_ratio(2.0, Some(4.0), |x| format!("{x:.1}")), "2.0 (0.50×)");
        assert_eq!(with_ratio(2.0, None, |x| format!("{x:.1}")), "2.0");
        assert_eq!(short_version("2.42.0+ds-5+deb12u1"), "2.42.0");
        let now = rfc3339_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}

//! The ingest sweep (`--ingest-sweep 2,4,8,16`): ingest alone, measured for
//! each system at several client concurrencies, so that each system is
//! seen at the sender count that suits it and the whole curve is shown.
//!
//! A real remote-write client does not send with a fixed number of
//! connections: Prometheus' queue manager grows its shards from the
//! measured send latency and the backlog (see `benches/README.md`, "Why an
//! ingest sweep"). A throughput comparison at one fixed sender count
//! favours whichever system that count happens to suit.
//!
//! Each point of the sweep is one sender count: every system of the run is
//! started on a fresh data directory, the whole load is encoded once for
//! that many senders and each phase is sent to the systems one after the
//! other (the same code as the main run: [`super::send_load`]), then after
//! the same settling the wall rate, the server CPU per million samples and
//! the peak RSS are read and the systems are stopped. The systems' order
//! is reversed at every other point, so a machine's drift during the sweep
//! hits every system alike. The `--senders` value is always one of the
//! points, so the fixed-client ratios come from the same conditions as the
//! best-point ones. No query runs and nothing is persisted or counted back
//! (any refused write still fails the run).

use std::fmt::Write;

use super::load::Load;
use super::report::{self, IngestFigures};
use super::systems::{SystemKind, TidemarkBins};
use super::{ingest_figures, send_load, settle, start_members, CompareArgs, CompareError};

/// One system at one sender count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepPoint {
    /// Concurrent remote-write senders.
    pub senders: usize,
    /// Which system.
    pub system: SystemKind,
    /// Its ingest figures for the whole load.
    pub ingest: IngestFigures,
    /// Its place in this point's send order (0: it got each phase first).
    pub order: usize,
}

/// A system's best point: the sender count with the highest wall rate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepBest {
    /// Which system.
    pub system: SystemKind,
    /// Its best sender count.
    pub senders: usize,
    /// Its figures there.
    pub ingest: IngestFigures,
}

/// The sweep of one load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestSweep {
    /// The load (as in the main run's tables).
    pub description: String,
    /// Series and samples of the load.
    pub series: usize,
    /// See `series`.
    pub samples: u64,
    /// The sender counts measured, in run order.
    pub sender_counts: Vec<usize>,
    /// `--senders`: the fixed client of the main run.
    pub fixed_senders: usize,
    /// `/proc/loadavg` when the sweep started and ended.
    pub loadavg_start: String,
    /// See `loadavg_start`.
    pub loadavg_end: String,
    /// Every point, in run order.
    pub points: Vec<SweepPoint>,
    /// Each system's best point (see [`best_points`]).
    pub best: Vec<SweepBest>,
}

/// The sender counts of a sweep: the listed ones and `fixed` (the
/// `--senders` value), ascending, each once. Empty when none are listed.
pub fn sender_counts(listed: &[usize], fixed: usize) -> Result<Vec<usize>, CompareError> {
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    if listed.contains(&0) {
        return Err(CompareError::Setup("--ingest-sweep: every sender count must be at least 1".into()));
    }
    let mut counts: Vec<usize> = listed.iter().copied().chain(std::iter::once(fixed)).collect();
    counts.sort_unstable();
    counts.dedup();
    Ok(counts)
}

/// The send order of the systems at each sweep point: as given at the
/// first, reversed at the second, and so on, so no system is always the
/// one that gets a phase first (or last).
pub fn point_order(kinds: &[SystemKind], point: usize) -> Vec<SystemKind> {
    let mut order = kinds.to_vec();
    if point % 2 == 1 {
        order.reverse();
    }
    order
}

/// Each system's best point: its highest wall rate; of equal rates, the
/// fewer senders. Systems in the order of their first point.
pub fn best_points(points: &[SweepPoint]) -> Vec<SweepBest> {
    let mut best: Vec<SweepBest> = Vec::new();
    for p in points {
        let candidate = SweepBest { system: p.system, senders: p.senders, ingest: p.ingest.clone() };
        match best.iter_mut().find(|b| b.system == p.system) {
            None => best.push(candidate),
            Some(b) => {
                let (new, old) = (p.ingest.samples_per_second, b.ingest.samples_per_second);
                if new > old || (new == old && p.senders < b.senders) {
                    *b = candidate;
                }
            }
        }
    }
    best
}

/// Runs the sweep of `load` over `counts` for the systems of `kinds`.
pub fn run(
    args: &CompareArgs,
    kinds: &[SystemKind],
    counts: &[usize],
    load: &Load,
    bins: &TidemarkBins,
) -> Result<IngestSweep, CompareError> {
    eprintln!("\ningest sweep of {}: {counts:?} senders", load.description);
    let loadavg_start = report::loadavg();
    let mut points = Vec::new();
    for (i, &senders) in counts.iter().enumerate() {
        let order = point_order(kinds, i);
        eprintln!("  {senders} senders: {}", order.iter().map(|k| k.name()).collect::<Vec<_>>().join(", then "));
        let mut members = start_members(&order, bins)?;
        // One query point, at the end: `send_load` runs none.
        send_load(args, &mut members, load, senders, 1, &[])?;
        settle(args, &members, load);
        for (place, m) in members.iter().enumerate() {
            let ingest = ingest_figures(m, load)?;
            eprintln!(
                "  {:<17} {senders:>3} senders {:>10.0} samples/s  {:.2} CPU-s/M samples  peak RSS {:.0} MiB",
                m.running.kind.name(),
                ingest.samples_per_second,
                ingest.cpu_seconds_per_million,
                ingest.peak_rss_bytes as f64 / (1 << 20) as f64
            );
            points.push(SweepPoint { senders, system: m.running.kind, ingest, order: place });
        }
        for m in members {
            m.running.stop()?;
        }
    }
    Ok(IngestSweep {
        description: load.description.clone(),
        series: load.series.len(),
        samples: load.samples,
        sender_counts: counts.to_vec(),
        fixed_senders: args.senders,
        loadavg_start,
        loadavg_end: report::loadavg(),
        best: best_points(&points),
        points,
    })
}

impl IngestSweep {
    /// `kind`'s figures at `senders`, if measured.
    pub fn at(&self, kind: SystemKind, senders: usize) -> Option<&IngestFigures> {
        self.points.iter().find(|p| p.system == kind && p.senders == senders).map(|p| &p.ingest)
    }

    /// `kind`'s best point, if it ran.
    pub fn best_of(&self, kind: SystemKind) -> Option<&SweepBest> {
        self.best.iter().find(|b| b.system == kind)
    }

    /// The systems of the sweep, in the order of their first point.
    fn kinds(&self) -> Vec<SystemKind> {
        self.best.iter().map(|b| b.system).collect()
    }
}

/// The sweep as markdown: every point per system and sender count, then
/// the summary at each system's best sender count and at the fixed
/// `--senders`, with Tidemark's ratios to VictoriaMetrics and Prometheus.
pub fn render(s: &IngestSweep, versions: &[(String, String)]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\n## Ingest sweep: {}\n", s.description);
    let _ = writeln!(
        o,
        "Ingest alone, the whole load ({} series, {} samples) sent to every system at each sender count, on fresh data directories; in each point the systems get each phase one after the other, their order reversed at every other point. Load average {} at the start, {} at the end. The client runs on the same machine.\n",
        report::thousands(s.series as f64),
        report::thousands(s.samples as f64),
        s.loadavg_start,
        s.loadavg_end
    );
    let _ = writeln!(
        o,
        "| system | senders | samples/s | server CPU-s per 1 M samples | peak RSS after ingest, MiB | send wall, s |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    for kind in s.kinds() {
        for &senders in &s.sender_counts {
            let Some(f) = s.at(kind, senders) else { continue };
            let best = s.best_of(kind).is_some_and(|b| b.senders == senders);
            let mark = if best { " (best)" } else { "" };
            let _ = writeln!(
                o,
                "| {} | {senders}{mark} | {} | {:.2} | {:.0} | {:.1} |",
                report::label(kind, versions),
                report::thousands(f.samples_per_second),
                f.cpu_seconds_per_million,
                report::mib(f.peak_rss_bytes),
                f.seconds
            );
        }
    }
    for row in summary_rows(s, versions) {
        let _ = writeln!(o, "{row}");
    }
    o
}

/// The summary table's lines: each system's best sender count, its rate,
/// CPU and peak RSS there, then the same at the fixed `--senders`; the
/// last two columns are Tidemark's ratios.
pub fn summary_rows(s: &IngestSweep, versions: &[(String, String)]) -> Vec<String> {
    let kinds = s.kinds();
    let header: Vec<String> = kinds.iter().map(|&k| report::label(k, versions)).collect();
    let pos = |k: SystemKind| kinds.iter().position(|&x| x == k);
    let (t, v, p) = (pos(SystemKind::Tidemark), pos(SystemKind::VictoriaMetrics), pos(SystemKind::Prometheus));
    let mut out = vec![
        String::new(),
        format!("| summary | {} | Tidemark / VM | Tidemark / Prometheus |", header.join(" | ")),
        format!("|---|{}---:|---:|", "---:|".repeat(header.len())),
    ];
    let best: Vec<Option<&IngestFigures>> = kinds.iter().map(|&k| s.best_of(k).map(|b| &b.ingest)).collect();
    let fixed: Vec<Option<&IngestFigures>> = kinds.iter().map(|&k| s.at(k, s.fixed_senders)).collect();
    let senders: Vec<String> =
        kinds.iter().map(|&k| s.best_of(k).map_or("–".into(), |b| b.senders.to_string())).collect();
    out.push(format!("| best sender count (highest samples/s) | {} | | |", senders.join(" | ")));
    type Figure = (&'static str, fn(&IngestFigures) -> f64, fn(f64) -> String);
    let figures: [Figure; 3] = [
        ("samples/s", |f| f.samples_per_second, report::thousands),
        ("server CPU-s per 1 M samples", |f| f.cpu_seconds_per_million, |x| format!("{x:.2}")),
        ("peak RSS after ingest, MiB", |f| report::mib(f.peak_rss_bytes), |x| format!("{x:.0}")),
    ];
    for (at, column) in [("at each system's best sender count", &best), (&*fixed_label(s), &fixed)] {
        for (name, get, fmt) in &figures {
            let vals: Vec<Option<f64>> = column.iter().map(|f| f.map(get)).collect();
            let cells: Vec<String> = vals.iter().map(|x| x.map_or("–".into(), fmt)).collect();
            let of = |i: Option<usize>| i.and_then(|i| vals[i]);
            out.push(format!(
                "| {name} {at} | {} | {} | {} |",
                cells.join(" | "),
                report::ratio(of(t), of(v)),
                report::ratio(of(t), of(p))
            ));
        }
    }
    out
}

fn fixed_label(s: &IngestSweep) -> String {
    format!("at the fixed {} senders (`--senders`)", s.fixed_senders)
}

/// Issue 13's ingest goals judged on the sweep, both ways: with the fixed
/// client (`--senders`, every system at the same count) and with each
/// system at its best sender count. `None` without Tidemark in the sweep.
pub fn goal_lines(s: &IngestSweep) -> Option<Vec<String>> {
    let t = SystemKind::Tidemark;
    s.best_of(t)?;
    let v = SystemKind::VictoriaMetrics;
    let n = s.fixed_senders;
    let fixed = |k: SystemKind| s.at(k, n);
    let best = |k: SystemKind| s.best_of(k).map(|b| &b.ingest);
    let where_best = match (s.best_of(t), s.best_of(v)) {
        (Some(a), Some(b)) => format!("Tidemark at {} senders, VictoriaMetrics at {}", a.senders, b.senders),
        (Some(a), None) => format!("Tidemark at {} senders", a.senders),
        _ => String::new(),
    };
    let pair = |ours: Option<&IngestFigures>, theirs: Option<&IngestFigures>, f: fn(&IngestFigures) -> f64| {
        ours.zip(theirs).map(|(a, b)| (f(a), f(b)))
    };
    let rate: fn(&IngestFigures) -> f64 = |f| f.samples_per_second;
    let cpu: fn(&IngestFigures) -> f64 = |f| f.cpu_seconds_per_million;
    const VM: &str = "VictoriaMetrics";
    Some(vec![
        report::judge(
            &format!("ingest rate ≥ 1.5× VictoriaMetrics' — fixed client, both at {n} senders"),
            pair(fixed(t), fixed(v), rate),
            |r| r >= 1.5,
            VM,
        ),
        report::judge(
            &format!("ingest rate ≥ 1.5× VictoriaMetrics' — each system at its best sender count ({where_best})"),
            pair(best(t), best(v), rate),
            |r| r >= 1.5,
            VM,
        ),
        report::judge(
            &format!("server CPU per sample ≤ 0.5× VictoriaMetrics' — fixed client, both at {n} senders"),
            pair(fixed(t), fixed(v), cpu),
            |r| r <= 0.5,
            VM,
        ),
        report::judge(
            &format!(
                "server CPU per sample ≤ 0.5× VictoriaMetrics' — each at its best-rate sender count ({where_best})"
            ),
            pair(best(t), best(v), cpu),
            |r| r <= 0.5,
            VM,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rate: f64, cpu: f64, rss_mib: u64) -> IngestFigures {
        IngestFigures {
            seconds: 100.0,
            samples_per_second: rate,
            cpu_seconds: cpu,
            cpu_seconds_per_million: cpu,
            peak_rss_bytes: rss_mib << 20,
            rss_bytes: rss_mib << 20,
            peak_rss_per_series: 0.0,
            phase_samples_per_second: Vec::new(),
        }
    }

    fn point(system: SystemKind, senders: usize, rate: f64, cpu: f64) -> SweepPoint {
        SweepPoint { senders, system, ingest: figures(rate, cpu, 100), order: 0 }
    }

    fn sweep(points: Vec<SweepPoint>, fixed: usize) -> IngestSweep {
        let mut counts: Vec<usize> = points.iter().map(|p| p.senders).collect();
        counts.sort_unstable();
        counts.dedup();
        IngestSweep {
            description: "test load".into(),
            series: 10,
            samples: 1000,
            sender_counts: counts,
            fixed_senders: fixed,
            loadavg_start: String::new(),
            loadavg_end: String::new(),
            best: best_points(&points),
            points,
        }
    }

    /// Tidemark and VictoriaMetrics at 4 (the fixed count) and 8 senders;
    /// both are fastest at 8.
    fn two_systems_two_counts() -> IngestSweep {
        use SystemKind::*;
        let points = vec![
            point(Tidemark, 4, 1.2e6, 0.8),
            point(VictoriaMetrics, 4, 1.0e6, 1.6),
            point(VictoriaMetrics, 8, 1.25e6, 1.5),
            point(Tidemark, 8, 2.0e6, 0.6),
        ];
        sweep(points, 4)
    }

    #[test]
    fn the_sender_counts_include_the_fixed_one_once() {
        assert_eq!(sender_counts(&[], 4).ok(), Some(vec![]));
        assert_eq!(sender_counts(&[16, 2, 8], 4).ok(), Some(vec![2, 4, 8, 16]));
        assert_eq!(sender_counts(&[4, 8, 4], 4).ok(), Some(vec![4, 8]));
        assert_eq!(sender_counts(&[1], 1).ok(), Some(vec![1]));
        assert!(matches!(sender_counts(&[2, 0], 4), Err(CompareError::Setup(_))));
    }

    #[test]
    fn the_send_order_alternates() {
        use SystemKind::*;
        let kinds = [Tidemark, VictoriaMetrics, Prometheus];
        assert_eq!(point_order(&kinds, 0), kinds);
        assert_eq!(point_order(&kinds, 1), [Prometheus, VictoriaMetrics, Tidemark]);
        assert_eq!(point_order(&kinds, 2), kinds);
    }

    #[test]
    fn the_best_point_is_the_highest_rate_and_ties_go_to_fewer_senders() {
        use SystemKind::*;
        let points = vec![
            point(Tidemark, 4, 1.3e6, 0.8),
            point(VictoriaMetrics, 4, 1.2e6, 1.6),
            point(VictoriaMetrics, 8, 1.26e6, 1.5),
            point(Tidemark, 8, 1.9e6, 0.7),
            point(Tidemark, 16, 1.9e6, 0.75),
            point(VictoriaMetrics, 16, 1.1e6, 1.7),
        ];
        let best = best_points(&points);
        assert_eq!(best.len(), 2);
        assert_eq!((best[0].system, best[0].senders), (Tidemark, 8));
        assert_eq!((best[1].system, best[1].senders), (VictoriaMetrics, 8));
        assert_eq!(best[1].ingest.cpu_seconds_per_million, 1.5);
        assert!(best_points(&[]).is_empty());
    }

    #[test]
    fn the_summary_gives_ratios_at_the_best_and_at_the_fixed_count() {
        let s = two_systems_two_counts();
        let versions = [("victoria-metrics".to_string(), "1.79.0+ds-1".to_string())];
        let rows = summary_rows(&s, &versions);
        let find = |start: &str| rows.iter().find(|r| r.starts_with(start)).cloned().unwrap_or_default();
        assert_eq!(
            find("| summary"),
            "| summary | tidemark | victoria-metrics 1.79.0 | Tidemark / VM | Tidemark / Prometheus |"
        );
        assert_eq!(find("| best sender count"), "| best sender count (highest samples/s) | 8 | 8 | | |");
        assert_eq!(
            find("| samples/s at each system's best"),
            "| samples/s at each system's best sender count | 2,000,000 | 1,250,000 | 1.60× | – |"
        );
        assert_eq!(
            find("| server CPU-s per 1 M samples at each"),
            "| server CPU-s per 1 M samples at each system's best sender count | 0.60 | 1.50 | 0.40× | – |"
        );
        assert_eq!(
            find("| samples/s at the fixed 4"),
            "| samples/s at the fixed 4 senders (`--senders`) | 1,200,000 | 1,000,000 | 1.20× | – |"
        );
        assert_eq!(
            find("| peak RSS after ingest, MiB at the fixed"),
            "| peak RSS after ingest, MiB at the fixed 4 senders (`--senders`) | 100 | 100 | 1.00× | – |"
        );
        let text = render(&s, &versions);
        assert!(text.contains("| tidemark | 8 (best) | 2,000,000 | 0.60 | 100 | 100.0 |"), "{text}");
        assert!(text.contains("| victoria-metrics 1.79.0 | 4 | 1,000,000 | 1.60 | 100 | 100.0 |"), "{text}");
    }

    #[test]
    fn the_ingest_goals_are_judged_both_ways() {
        use SystemKind::*;
        let s = two_systems_two_counts();
        let lines = goal_lines(&s).unwrap_or_default();
        assert_eq!(
            lines,
            [
                "ingest rate ≥ 1.5× VictoriaMetrics' — fixed client, both at 4 senders: NOT met (1.20×)",
                "ingest rate ≥ 1.5× VictoriaMetrics' — each system at its best sender count (Tidemark at 8 senders, VictoriaMetrics at 8): met (1.60×)",
                "server CPU per sample ≤ 0.5× VictoriaMetrics' — fixed client, both at 4 senders: met (0.50×)",
                "server CPU per sample ≤ 0.5× VictoriaMetrics' — each at its best-rate sender count (Tidemark at 8 senders, VictoriaMetrics at 8): met (0.40×)",
            ]
        );
        // Without VictoriaMetrics: not judged, said so.
        let only = sweep(vec![point(Tidemark, 4, 1.0, 1.0)], 4);
        let lines = goal_lines(&only).unwrap_or_default();
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.ends_with("not judged (VictoriaMetrics not in this run)")), "{lines:#?}");
        // Without Tidemark: nothing to judge.
        assert!(goal_lines(&sweep(vec![point(VictoriaMetrics, 4, 1.0, 1.0)], 4)).is_none());
    }
}

//! `tidemark-bench compare`: Tidemark, Prometheus and VictoriaMetrics side
//! by side, in one run, on 127.0.0.1.
//!
//! For each load (the real capture replayed, then the synthetic fleet at
//! each requested size; or a named [`Preset`] such as `production`, the
//! shape of issue 13):
//!
//! 1. every system starts on a fresh data directory, and (in the default
//!    interleaved timing) all of them stay up until the load is done;
//! 2. the load is encoded phase by phase (a few scrape rounds of data-time
//!    at a time, so 1 M series never need all their request bodies in
//!    memory) into the same remote write 1.0 bytes for every system; each
//!    phase is sent to one system after the other with concurrent
//!    keep-alive senders (any non-2xx answer is an error), so ingest
//!    figures are taken one system at a time;
//! 3. at each query point (the end of the load, and for the `long` preset
//!    points during ingest too, so queries read blocks and the head while
//!    blocks are being written and compacted) the query set runs with
//!    every system up: each query A, B, C, B, C, A, … for the set number of
//!    rounds ([`queries::time_interleaved`]), so the machine's drift hits
//!    every system alike; the memory the set adds is read before and after;
//! 4. after ingest and 3 s of settling: CPU time (user + system, from
//!    `/proc`, less the CPU of the query points in between), memory
//!    (`VmHWM`, `VmRSS`) and the live data directory (before any snapshot:
//!    mostly the WAL while data is in the head);
//! 5. then each system persists its data in its long-term format and the
//!    bytes are measured ([`systems::Running::persist`]), and every sample
//!    is counted back per metric name with `count_over_time`.
//!
//! `--timing sequential` keeps the older mode: one system at a time goes
//! through all of it and is stopped before the next starts (its query
//! timings are minutes apart from the others', so drift can decide a
//! ratio; use it for ingest figures with no other system resident).
//!
//! Every answer is compared with Prometheus' (the reference for PromQL
//! semantics), and the figures are printed as markdown tables with
//! Tidemark's ratios to VictoriaMetrics and Prometheus, and written as
//! markdown and JSON.

pub mod load;
pub mod placement;
pub mod queries;
pub mod report;
pub mod rules;
pub mod sweep;
pub mod systems;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tidemark_testkit::{now_ms, url_encode, Http, KitError};

use load::{Load, RequestBuilder, SyntheticOptions, SYNTHETIC_INTERVAL_MS};
use placement::BlockCut;
use queries::{
    agreement, heavy_queries, seed_queries, ties_free_to_differ, time_interleaved, time_query, QuerySpec, Timed,
};
use report::{
    IngestFigures, LoadReport, QueryBySystem, QueryMemory, QueryPointReport, QueryReport, Report, SystemReport,
};
use systems::{Running, SystemKind, TidemarkBins};

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

/// A named load shape (`--preset`); explicit flags override its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Issue 13's production shape: 2,000 scrape targets (1,000 hosts ×
    /// node_exporter + a busy service with 12–13 routes), 368,695 series,
    /// 264 samples per series at 15 s (1.1 h: everything is still in the
    /// head), no capture, one query point at the end; the first scrape
    /// round on a 2 h boundary (`--block-cut none`), whatever the time of
    /// day.
    Production,
    /// The production shape at 1,000,000 series (5,424 targets).
    Million,
    /// At least 6 h of the default fleet: 50,000 series, 8 h 5 min at 15 s
    /// (1,941 samples per series), sent in time order so that blocks are
    /// written (and compacted) during ingest; the query set runs at 4
    /// points (after 2 h, 4 h, 6 h and 8 h of data-time), reading blocks as
    /// well as the head. The first scrape round 2 min before a 2 h
    /// boundary (`--block-cut during`): the first block is cut 62 min in.
    Long,
}

/// The shape a preset (or the defaults) gives a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Synthetic fleet sizes, in series.
    pub series: Vec<usize>,
    /// Targets for a fleet of `n` series (`None`: the default shape).
    pub targets_per: TargetsRule,
    /// Samples per synthetic series.
    pub samples_per_series: usize,
    /// Replay the real capture too.
    pub capture: bool,
    /// Query points per load (evenly spaced in data-time, the last at the
    /// end).
    pub query_points: usize,
    /// Where the load sits against the 2 h block boundaries.
    pub block_cut: BlockCut,
}

/// How many scrape targets a fleet of a given size has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetsRule {
    /// Hosts of the default shape (services with 5 routes) until the
    /// series are reached.
    Default,
    /// Exactly this many targets.
    Fixed(usize),
    /// The production ratio: 2,000 targets per 368,695 series (an even
    /// count, at least 2).
    Production,
}

/// Series of issue 13's production run.
pub const PRODUCTION_SERIES: usize = 368_695;
/// Scrape targets of issue 13's production run.
pub const PRODUCTION_TARGETS: usize = 2_000;

impl TargetsRule {
    /// Targets for `series` series (`None`: the default shape).
    pub fn targets(self, series: usize) -> Option<usize> {
        match self {
            TargetsRule::Default => None,
            TargetsRule::Fixed(n) => Some(n),
            TargetsRule::Production => {
                let t = (series as f64 * PRODUCTION_TARGETS as f64 / PRODUCTION_SERIES as f64 / 2.0).round() as usize;
                Some((2 * t).max(2))
            }
        }
    }
}

impl Preset {
    /// The preset's shape.
    pub fn shape(self) -> Shape {
        match self {
            Preset::Production => Shape {
                series: vec![PRODUCTION_SERIES],
                targets_per: TargetsRule::Production,
                samples_per_series: 264,
                capture: false,
                query_points: 1,
                block_cut: BlockCut::None,
            },
            Preset::Million => Shape { series: vec![1_000_000], ..Preset::Production.shape() },
            Preset::Long => Shape {
                series: vec![50_000],
                targets_per: TargetsRule::Default,
                samples_per_series: 8 * 240 + 21,
                capture: false,
                query_points: 4,
                block_cut: BlockCut::During,
            },
        }
    }
}

/// How query latency is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// Every system up at once; each query's runs alternate between them.
    Interleaved,
    /// One system at a time, started, loaded, queried and stopped.
    Sequential,
}

/// Options of `tidemark-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// A named shape: `production` (issue 13: 2,000 targets, 368,695
    /// series, 1.1 h), `million` (the same at 1 M series) or `long` (50,000
    /// series over 8 h, queried at 4 points during ingest). Flags given
    /// explicitly override the preset's values.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Synthetic fleet sizes to run, in series (comma-separated); 0 for
    /// none [default: 100000, or the preset's].
    #[arg(long, value_delimiter = ',')]
    pub series: Vec<usize>,
    /// Scrape targets of the synthetic fleet (two per host; services get
    /// as many routes as the series need) [default: hosts of ~219 series,
    /// or the preset's].
    #[arg(long)]
    pub targets: Option<usize>,
    /// Samples per synthetic series, at 15 s [default: 261 = 65 min, the
    /// 1 h range queries plus their first 5 min window; or the preset's].
    #[arg(long)]
    pub samples_per_series: Option<usize>,
    /// Replay the real capture too [default: true, false for presets].
    #[arg(long, action = clap::ArgAction::Set)]
    pub capture: Option<bool>,
    /// The capture file (default: `shared/data/node-and-prometheus-5s.om.zst`
    /// beside the workspace, or `$TIDEMARK_CAPTURE`).
    #[arg(long)]
    pub capture_path: Option<PathBuf>,
    /// Systems, in run order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tidemark,prometheus,victoria-metrics")]
    pub systems: Vec<SystemKind>,
    /// How query latency is taken [default: interleaved when more than one
    /// system runs].
    #[arg(long, value_enum)]
    pub timing: Option<Timing>,
    /// Query points per synthetic load, evenly spaced in data-time, the
    /// last at the end [default: 1, or the preset's].
    #[arg(long)]
    pub query_points: Option<usize>,
    /// Where the load's timestamps sit against the 2 h ranges a head cuts
    /// blocks at (`placement`): `none` starts the first scrape round on a
    /// 2 h boundary, so Tidemark keeps everything in its head; `during`
    /// starts it 2 min before one, so Tidemark cuts one block 62 min into
    /// the load (the figures are taken once it has). Either way the load
    /// ends at least a minute before the run starts, at the same offset
    /// from the boundary whatever the time of day [default: `none`;
    /// `during` for the `long` preset].
    #[arg(long, value_enum)]
    pub block_cut: Option<BlockCut>,
    /// Samples encoded per ingest phase (bounds the request bodies held in
    /// memory: ~18 bytes per sample).
    #[arg(long, default_value_t = 10_000_000)]
    pub phase_samples: u64,
    /// Concurrent remote-write senders.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// After the main run, measure ingest alone at each of these sender
    /// counts (comma-separated, e.g. `2,4,8,16`; `--senders` is always
    /// added): for each count every system starts on a fresh data directory
    /// and gets the whole load, and its wall rate, server CPU per sample and
    /// peak RSS are reported per system and count, with the ratios at each
    /// system's best count and at `--senders`.
    #[arg(long, value_delimiter = ',')]
    pub ingest_sweep: Vec<usize>,
    /// Run only the `--ingest-sweep`, not the main run (no queries, no
    /// persisted bytes).
    #[arg(long, requires = "ingest_sweep")]
    pub ingest_sweep_only: bool,
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
    /// Before every query run (each system's, warm-ups included), wait
    /// until no server has used CPU for 50 ms (at most 3 s), so that work a
    /// server left behind after its own run (a Go server's garbage
    /// collection after a heavy query) is not timed as part of the next
    /// system's run. Applies to every system alike; each run's wait is in
    /// the JSON report (`settle_ms`).
    #[arg(long)]
    pub settle_queries: bool,
    /// The `tidemark` binary (default: build it with `cargo build --release
    /// -p tidemark`).
    #[arg(long)]
    pub tidemark_bin: Option<PathBuf>,
    /// A second `tidemark` binary for an A/B comparison: adds the system
    /// `tidemark-b` (this binary, default durability) after `tidemark`
    /// (the A: `--tidemark-bin` or the build), sends it the same load and
    /// times its queries interleaved with the others; the tables get a
    /// B / A column, and its answers are compared with Prometheus' (or
    /// with A's when Prometheus is not in the run).
    #[arg(long)]
    pub tidemark_b_bin: Option<PathBuf>,
    /// Fail (exit status 1) when any answer of Tidemark's differs from
    /// Prometheus' (for CI; the peers' versions differ in a few documented
    /// corner cases, which this load avoids).
    #[arg(long)]
    pub require_agreement: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/compare.json")]
    pub json: PathBuf,
    /// Where to write the markdown report (the tables printed).
    #[arg(long, default_value = "target/compare.md")]
    pub markdown: PathBuf,
}

impl CompareArgs {
    /// The run's shape: the preset's (or the defaults), overridden by the
    /// flags given.
    pub fn shape(&self) -> Shape {
        let mut shape = match self.preset {
            Some(p) => p.shape(),
            None => Shape {
                series: vec![100_000],
                targets_per: TargetsRule::Default,
                samples_per_series: 261,
                capture: true,
                query_points: 1,
                block_cut: BlockCut::None,
            },
        };
        if !self.series.is_empty() {
            shape.series = self.series.clone();
        }
        if let Some(t) = self.targets {
            shape.targets_per = TargetsRule::Fixed(t);
        }
        if let Some(n) = self.samples_per_series {
            shape.samples_per_series = n;
        }
        if let Some(c) = self.capture {
            shape.capture = c;
        }
        if let Some(q) = self.query_points {
            shape.query_points = q;
        }
        if let Some(c) = self.block_cut {
            shape.block_cut = c;
        }
        shape
    }

    /// The systems in run order: `--systems`, with `tidemark-b` right
    /// after `tidemark` when `--tidemark-b-bin` is given (and `tidemark`
    /// added first if it was not listed: B is always measured beside A).
    pub fn systems(&self) -> Vec<SystemKind> {
        let mut systems: Vec<SystemKind> = self.systems.clone();
        if self.tidemark_b_bin.is_none() {
            systems.retain(|&k| k != SystemKind::TidemarkB);
            return systems;
        }
        if !systems.contains(&SystemKind::Tidemark) {
            systems.insert(0, SystemKind::Tidemark);
        }
        systems.retain(|&k| k != SystemKind::TidemarkB);
        let a = systems.iter().position(|&k| k == SystemKind::Tidemark).unwrap_or(0);
        systems.insert(a + 1, SystemKind::TidemarkB);
        systems
    }

    /// The timing mode: the flag's, else interleaved for several systems.
    pub fn timing(&self) -> Timing {
        self.timing.unwrap_or(if self.systems().len() > 1 { Timing::Interleaved } else { Timing::Sequential })
    }
}

/// Makes a load and says at how many points its query set runs.
type MakeLoad = Box<dyn Fn() -> Result<(Load, usize), CompareError>>;

/// Runs the whole comparison and returns its report (also printed).
pub fn run(args: &CompareArgs) -> Result<Report, CompareError> {
    let systems = args.systems();
    if systems.is_empty() {
        return Err(CompareError::Setup("--systems is empty".into()));
    }
    let shape = args.shape();
    if args.senders == 0 || args.per_request == 0 || shape.samples_per_series == 0 || args.phase_samples == 0 {
        return Err(CompareError::Setup(
            "--senders, --per-request, --samples-per-series and --phase-samples must be at least 1".into(),
        ));
    }
    systems::ensure_peers_installed(&systems)?;
    let needs_tidemark = systems.iter().any(|s| s.is_tidemark());
    let tidemark_bin = match &args.tidemark_bin {
        Some(p) => p.clone(),
        None if needs_tidemark => systems::build_tidemark()?,
        None => PathBuf::new(),
    };
    let bins = TidemarkBins { a: tidemark_bin.clone(), b: args.tidemark_b_bin.clone() };
    let seeds_path = args.seed_queries.clone().unwrap_or_else(queries::default_seed_queries_path);
    let mut report = Report::new(&tidemark_bin);
    eprintln!("machine: {}", report.machine);

    // Each load at the same offset from a 2 h boundary whatever the time
    // of day, ending at least a minute ago (see `placement`).
    let (now, cut) = (now_ms(), shape.block_cut);
    eprintln!("block cut: {} ({})", cut.name(), cut_description(cut));
    let mut loads: Vec<MakeLoad> = Vec::new();
    if shape.capture {
        let path = args.capture_path.clone().unwrap_or_else(crate::capture::default_capture_path);
        loads.push(Box::new(move || {
            let load = Load::capture_placed(&path, |span| {
                placement::place(cut, span, now).map(|p| p.first_ms + span).map_err(CompareError::Setup)
            })?;
            Ok((load, 1))
        }));
    }
    for &series in shape.series.iter().filter(|&&s| s > 0) {
        let (samples_per_series, targets) = (shape.samples_per_series, shape.targets_per.targets(series));
        let points = shape.query_points.max(1);
        // Check the case is possible before anything starts.
        let span = load::synthetic_span_ms(samples_per_series);
        let first = placement::place(cut, span, now).map_err(CompareError::Setup)?.first_ms;
        let end_ms = first + (samples_per_series as i64 - 1) * SYNTHETIC_INTERVAL_MS;
        loads.push(Box::new(move || {
            let opts = SyntheticOptions { series, targets, samples_per_series, end_ms, seed: 42 };
            Ok((Load::synthetic(opts), points))
        }));
    }
    let sweep_counts = sweep::sender_counts(&args.ingest_sweep, args.senders)?;
    let mut markdown = String::new();
    for make in loads {
        let (load, points) = make()?;
        if !sweep_counts.is_empty() && args.ingest_sweep_only {
            run_sweep(args, &systems, &sweep_counts, &load, &bins, &mut report, &mut markdown)?;
            continue;
        }
        let load_report = run_load(args, &load, points, &bins, &seeds_path)?;
        let text = report::render_load(&load_report, &report.versions);
        println!("{text}");
        markdown.push_str(&text);
        let disagreements = disagreements(&load_report);
        report.loads.push(load_report);
        report.write_json(&args.json)?;
        report::write_text(&args.markdown, &format!("{}{markdown}", report::render_header(&report)))?;
        if args.require_agreement && !disagreements.is_empty() {
            return Err(CompareError::Peer(format!(
                "Tidemark's answers differ from Prometheus' on: {}",
                disagreements.join("; ")
            )));
        }
        if !sweep_counts.is_empty() {
            run_sweep(args, &systems, &sweep_counts, &load, &bins, &mut report, &mut markdown)?;
        }
    }
    let goals = report::render_goals(&report);
    println!("{goals}");
    markdown.push_str(&goals);
    report::write_text(&args.markdown, &format!("{}{markdown}", report::render_header(&report)))?;
    eprintln!("JSON report: {}; markdown: {}", args.json.display(), args.markdown.display());
    Ok(report)
}

/// Runs the ingest sweep of one load, adds it to the report and its tables
/// to the markdown, and writes both files.
fn run_sweep(
    args: &CompareArgs,
    systems: &[SystemKind],
    counts: &[usize],
    load: &Load,
    bins: &TidemarkBins,
    report: &mut Report,
    markdown: &mut String,
) -> Result<(), CompareError> {
    let s = sweep::run(args, systems, counts, load, bins)?;
    let text = sweep::render(&s, &report.versions);
    println!("{text}");
    markdown.push_str(&text);
    report.sweeps.push(s);
    report.write_json(&args.json)?;
    report::write_text(&args.markdown, &format!("{}{markdown}", report::render_header(report)))
}

/// The case in words, for the log and the report.
pub fn cut_description(cut: BlockCut) -> String {
    match cut {
        BlockCut::None => "first scrape round on a 2 h boundary: no system cuts a block (loads under 3 h)".into(),
        BlockCut::During => format!(
            "first scrape round {} min before a 2 h boundary: Tidemark cuts one block once the data reaches 1 h past it",
            placement::DURING_LEAD_MS / 60_000
        ),
    }
}

/// Queries where a Tidemark answer differs from Prometheus', or where one
/// of them answered and the other refused, at any query point.
fn disagreements(l: &LoadReport) -> Vec<String> {
    let mut out = Vec::new();
    for q in l.query_points.iter().flat_map(|p| &p.queries) {
        let prom = q.by_system.iter().find(|b| b.system == SystemKind::Prometheus);
        for b in q.by_system.iter().filter(|b| b.system.is_tidemark()) {
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

/// The ingest phases of a load of `rounds` scrape rounds: how many rounds
/// each phase sends, and whether the query set runs after it. Phases hold
/// at most `phase_rounds` rounds; the `points` query points are evenly
/// spaced (the point `k` of `points` after `⌈k × rounds / points⌉`
/// rounds), the last at the end.
pub fn plan_phases(rounds: usize, phase_rounds: usize, points: usize) -> Vec<(usize, bool)> {
    let phase_rounds = phase_rounds.max(1);
    let points = points.clamp(1, rounds.max(1));
    let stops: Vec<usize> = (1..=points).map(|k| (k * rounds).div_ceil(points)).collect();
    let mut out = Vec::new();
    let mut done = 0;
    for stop in stops {
        while done < stop {
            let n = phase_rounds.min(stop - done);
            done += n;
            out.push((n, done == stop));
        }
    }
    out
}

/// One load against every system.
fn run_load(
    args: &CompareArgs,
    load: &Load,
    points: usize,
    bins: &TidemarkBins,
    seeds_path: &Path,
) -> Result<LoadReport, CompareError> {
    eprintln!("\nload: {}", load.description);
    let loadavg_start = report::loadavg();
    let seeds = if args.no_seed_queries {
        Vec::new()
    } else {
        // Only the time matters here; each point sets its own.
        seed_queries(seeds_path, 0).map_err(CompareError::Setup)?
    };
    let groups: Vec<Vec<SystemKind>> = match args.timing() {
        Timing::Interleaved => vec![args.systems()],
        Timing::Sequential => args.systems().iter().map(|&k| vec![k]).collect(),
    };
    let mut systems: Vec<SystemReport> = Vec::new();
    let mut point_results: Vec<PointResult> = Vec::new();
    let (mut requests, mut request_bytes, mut phases) = (0usize, 0u64, 0usize);
    for group in &groups {
        let g = run_group(args, group, load, points, &seeds, bins)?;
        systems.extend(g.systems);
        (requests, request_bytes, phases) = (g.requests, g.request_bytes, g.phases);
        if point_results.is_empty() {
            point_results = g.points;
        } else {
            for (mine, theirs) in point_results.iter_mut().zip(g.points) {
                mine.memory.extend(theirs.memory);
                for (q, t) in mine.timed.iter_mut().zip(theirs.timed) {
                    q.extend(t);
                }
            }
        }
    }
    let kinds: Vec<SystemKind> = systems.iter().map(|s| s.system).collect();
    let reference = answer_reference(&kinds);
    let query_points = point_results
        .into_iter()
        .map(|p| {
            let queries = p
                .specs
                .iter()
                .zip(p.timed)
                .map(|(spec, timed)| {
                    let by_system = kinds
                        .iter()
                        .zip(&timed)
                        .map(|(&system, t)| {
                            let agreement = reference.and_then(|r| {
                                let want = timed[r].data.as_ref()?;
                                let got = t.data.as_ref()?;
                                Some(agreement(want, got, ties_free_to_differ(&spec.promql)))
                            });
                            QueryBySystem { system, timed: t.clone(), agreement }
                        })
                        .collect();
                    QueryReport { query: spec.clone(), by_system }
                })
                .collect();
            QueryPointReport {
                after_rounds: p.after_rounds,
                data_hours: p.after_rounds as f64 * load_interval_ms(load) as f64 / 3.6e6,
                at_ms: p.at_ms,
                memory: p.memory,
                queries,
            }
        })
        .collect();
    Ok(LoadReport {
        description: load.description.clone(),
        kind: load.kind,
        series: load.series.len(),
        targets: load.targets.len(),
        samples: load.samples,
        request_bytes,
        requests,
        phases,
        senders: args.senders,
        timing: args.timing(),
        block_cut: args.shape().block_cut,
        first_ms: load.first_ms,
        loadavg_start,
        loadavg_end: report::loadavg(),
        bench_peak_rss_bytes: report::own_peak_rss(),
        systems,
        query_points,
    })
}

/// Interval between scrape rounds (the capture's is 5 s).
fn load_interval_ms(load: &Load) -> i64 {
    match load.kind {
        load::LoadKind::Synthetic => SYNTHETIC_INTERVAL_MS,
        load::LoadKind::Capture => 5_000,
    }
}

/// What one group of systems (all up at once) gave.
struct GroupResult {
    systems: Vec<SystemReport>,
    points: Vec<PointResult>,
    requests: usize,
    request_bytes: u64,
    phases: usize,
}

/// One query point: per query, per system of the group, its timings.
struct PointResult {
    after_rounds: usize,
    at_ms: i64,
    specs: Vec<QuerySpec>,
    memory: Vec<QueryMemory>,
    /// `[query][system]`.
    timed: Vec<Vec<Timed>>,
}

/// A system of a group and its running totals.
struct Member {
    running: Running,
    url: String,
    cpu_start: f64,
    cpu_in_queries: f64,
    /// Samples and wall seconds of each phase sent, in order (their sum is
    /// the member's sending time).
    phases: Vec<(u64, f64)>,
}

impl Member {
    /// Wall seconds spent sending, over every phase.
    fn send_seconds(&self) -> f64 {
        self.phases.iter().map(|&(_, s)| s).sum()
    }
}

/// Starts every system of `kinds`, sends them the load phase by phase and
/// runs the query points, then persists, counts and stops them.
fn run_group(
    args: &CompareArgs,
    kinds: &[SystemKind],
    load: &Load,
    points: usize,
    seeds: &[QuerySpec],
    bins: &TidemarkBins,
) -> Result<GroupResult, CompareError> {
    let mut members = start_members(kinds, bins)?;
    let sent = send_load(args, &mut members, load, args.senders, points, seeds)?;
    let (requests, request_bytes) = (sent.requests, sent.request_bytes);
    let (plan_len, mut point_results) = (sent.phases, sent.points);
    let rounds = load.rounds();
    settle(args, &members, load);
    let cut = args.shape().block_cut;
    let mut ingest = Vec::new();
    for m in &members {
        let figures = ingest_figures(m, load)?;
        let live = systems::dir_bytes(m.running.data_dir());
        let by_entry = systems::dir_bytes_by_entry(m.running.data_dir());
        let block = is_tidemark(m.running.kind).then(|| placement::has_block(m.running.data_dir()));
        eprintln!(
            "  {:<17} {:>8.0} samples/s  {:.2} CPU-s/M samples  peak RSS {:.0} MiB ({:.2} KiB/series)  data dir {:.0} MiB ({}){}",
            m.running.kind.name(),
            figures.samples_per_second,
            figures.cpu_seconds_per_million,
            figures.peak_rss_bytes as f64 / (1 << 20) as f64,
            figures.peak_rss_per_series / 1024.0,
            live as f64 / (1 << 20) as f64,
            by_entry.iter().map(|(n, b)| format!("{n} {:.1}", *b as f64 / (1 << 20) as f64)).collect::<Vec<_>>().join(", "),
            match block {
                Some(true) => "; a head block is written",
                Some(false) => "; no head block",
                None => "",
            }
        );
        if block == Some(cut == BlockCut::None) && load.kind == load::LoadKind::Synthetic {
            eprintln!(
                "  WARNING: block cut {} asked for, but a head block is {}",
                cut.name(),
                if cut == BlockCut::None { "written" } else { "not written" }
            );
        }
        ingest.push((figures, live, by_entry, block));
    }
    point_results.push(run_point(args, &mut members, load, rounds, seeds, &ProgressBar::hidden())?);
    let mut reports = Vec::new();
    for (m, (ingest, live, by_entry, block)) in members.iter_mut().zip(ingest) {
        let after_queries = m.running.process().stats()?;
        let persisted = m.running.persist()?;
        eprintln!(
            "  {:<17} persisted {:.1} MB = {:.3} bytes/sample in {:.1} s",
            m.running.kind.name(),
            persisted.bytes as f64 / 1e6,
            persisted.bytes as f64 / load.samples as f64,
            persisted.seconds
        );
        let stored = stored_samples(&m.running, load)?;
        let expected = match m.running.kind {
            // MetricsQL's count_over_time skips NaN samples.
            SystemKind::VictoriaMetrics => load.samples - load.nan_samples,
            _ => load.samples,
        };
        if stored != expected {
            return Err(CompareError::Peer(format!(
                "{}: stores {stored} samples of the {expected} sent (counted with count_over_time per metric name)",
                m.running.kind.name()
            )));
        }
        let replay = m.running.kill_and_replay()?;
        if let Some(r) = replay {
            eprintln!("  {:<17} restart after SIGKILL to ready (WAL replay) in {r:.1} s", m.running.kind.name());
        }
        reports.push(SystemReport {
            system: m.running.kind,
            ingest,
            live_data_dir_bytes: live,
            live_data_dir_by_entry: by_entry,
            block_written: block,
            replay_seconds: replay,
            bytes_per_sample: persisted.bytes as f64 / load.samples as f64,
            persisted,
            stored_samples: stored,
            peak_rss_after_queries: after_queries.peak_rss_bytes,
            rss_after_queries: after_queries.rss_bytes,
        });
    }
    for m in members {
        m.running.stop()?;
    }
    Ok(GroupResult { systems: reports, points: point_results, requests, request_bytes, phases: plan_len })
}

/// Starts every system of `kinds` on a fresh data directory, noting the
/// CPU each has used before the first write.
fn start_members(kinds: &[SystemKind], bins: &TidemarkBins) -> Result<Vec<Member>, CompareError> {
    let mut members = Vec::new();
    for &kind in kinds {
        let running = Running::start(kind, &bins.for_kind(kind))?;
        let url = format!("{}/api/v1/write", running.process().url());
        let cpu_start = running.process().stats()?.cpu_seconds;
        members.push(Member { running, url, cpu_start, cpu_in_queries: 0.0, phases: Vec::new() });
    }
    Ok(members)
}

/// What sending a whole load gave.
struct Sent {
    requests: usize,
    request_bytes: u64,
    phases: usize,
    /// The query points run during ingest (not the one at the end).
    points: Vec<PointResult>,
}

/// Encodes the load phase by phase for `senders` concurrent senders and
/// sends each phase to every member in turn (their order as given), running
/// the query points that fall before the end of the load.
fn send_load(
    args: &CompareArgs,
    members: &mut [Member],
    load: &Load,
    senders: usize,
    points: usize,
    seeds: &[QuerySpec],
) -> Result<Sent, CompareError> {
    let rounds = load.rounds();
    let per_round = (load.samples / rounds.max(1) as u64).max(1);
    let phase_rounds = (args.phase_samples / per_round).max(1) as usize;
    let plan = plan_phases(rounds, phase_rounds, points);
    let mut builder: RequestBuilder<'_> = load.request_builder(senders, args.per_request);
    let (mut requests, mut request_bytes) = (0usize, 0u64);
    let mut point_results = Vec::new();
    let bar = progress_bar(load.samples * members.len() as u64, "ingest".into());
    let sent = AtomicU64::new(0);
    let build_time = Instant::now();
    let mut build_seconds = 0.0;
    for &(phase_rounds, query_after) in &plan {
        let t = Instant::now();
        let phase = builder.next_rounds(phase_rounds, |_| {});
        build_seconds += t.elapsed().as_secs_f64();
        requests += phase.iter().map(Vec::len).sum::<usize>();
        request_bytes += phase.iter().flatten().map(|r| r.body.len() as u64).sum::<u64>();
        let phase_samples = phase.iter().flatten().map(|r| u64::from(r.samples)).sum::<u64>();
        for m in members.iter_mut() {
            bar.set_prefix(format!("→ {}", m.running.kind.name()));
            let seconds = send_phase(&m.running, &m.url, &phase, &bar, &sent)?;
            m.phases.push((phase_samples, seconds));
        }
        drop(phase);
        if query_after && !builder.finished() {
            let r = run_point(args, members, load, builder.round(), seeds, &bar)?;
            point_results.push(r);
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "  {} phases, {requests} requests from {senders} senders, {:.1} MB snappy ({:.1} bytes/sample), encoded in {build_seconds:.1} s of {:.1?}",
        plan.len(),
        request_bytes as f64 / 1e6,
        request_bytes as f64 / load.samples as f64,
        build_time.elapsed()
    );
    Ok(Sent { requests, request_bytes, phases: plan.len(), points: point_results })
}

/// Lets deferred ingest work finish before the figures are taken: 3 s for
/// every system (VictoriaMetrics' in-memory parts, head bookkeeping), and
/// with `--block-cut during` until Tidemark has cut its block and
/// checkpointed (at most 5 min). That CPU counts as ingest.
fn settle(args: &CompareArgs, members: &[Member], load: &Load) {
    std::thread::sleep(Duration::from_secs(3));
    if args.shape().block_cut == BlockCut::During && load.kind == load::LoadKind::Synthetic {
        // The cut lands in a maintenance round (every 30 s) after the data
        // reached it: take the figures once it has, so they always include
        // it.
        let t0 = Instant::now();
        for m in members.iter().filter(|m| is_tidemark(m.running.kind)) {
            let dir = m.running.data_dir();
            while (!placement::has_block(dir) || placement::checkpoint_in_progress(dir))
                && t0.elapsed() < Duration::from_secs(300)
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        eprintln!(
            "  waited {:.1} s after ingest for Tidemark's block cut and its checkpoint",
            t0.elapsed().as_secs_f64()
        );
    }
}

/// A member's ingest figures for the whole load, now (after [`settle`]).
fn ingest_figures(m: &Member, load: &Load) -> Result<IngestFigures, CompareError> {
    let after = m.running.process().stats()?;
    let cpu = after.cpu_seconds - m.cpu_start - m.cpu_in_queries;
    Ok(IngestFigures {
        seconds: m.send_seconds(),
        samples_per_second: load.samples as f64 / m.send_seconds(),
        cpu_seconds: cpu,
        cpu_seconds_per_million: cpu / (load.samples as f64 / 1e6),
        peak_rss_bytes: after.peak_rss_bytes,
        rss_bytes: after.rss_bytes,
        peak_rss_per_series: after.peak_rss_bytes as f64 / load.series.len() as f64,
        phase_samples_per_second: m.phases.iter().map(|&(n, s)| n as f64 / s.max(1e-9)).collect(),
    })
}

fn is_tidemark(kind: SystemKind) -> bool {
    kind.is_tidemark()
}

/// The system whose answers the others' are compared with: Prometheus,
/// else (an A/B run without it) `tidemark`, so B's answers are checked
/// against A's.
fn answer_reference(kinds: &[SystemKind]) -> Option<usize> {
    kinds.iter().position(|&k| k == SystemKind::Prometheus).or_else(|| {
        kinds.contains(&SystemKind::TidemarkB).then(|| kinds.iter().position(|&k| k == SystemKind::Tidemark)).flatten()
    })
}

/// Sends one phase's requests to one system (each sender's requests in
/// order, on its own keep-alive connection); the wall time it took.
fn send_phase(
    running: &Running,
    url: &str,
    phase: &[Vec<load::Request>],
    bar: &ProgressBar,
    sent: &AtomicU64,
) -> Result<f64, CompareError> {
    let non_2xx = AtomicUsize::new(0);
    let first_error = Mutex::new(None::<String>);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for mine in phase {
            let (non_2xx, first_error) = (&non_2xx, &first_error);
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
    let wall = t0.elapsed().as_secs_f64();
    let non_2xx = non_2xx.load(Ordering::Relaxed);
    if non_2xx > 0 {
        let first = first_error.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
        return Err(CompareError::Peer(format!(
            "{}: {non_2xx} write requests failed; first: {first}; log:\n{}",
            running.kind.name(),
            running.process().log_tail(20)
        )));
    }
    Ok(wall)
}

/// Runs the query set with every member up, once the first `rounds`
/// rounds are stored: interleaved when there are several members. The CPU
/// the members spend meanwhile is kept out of their ingest figures.
fn run_point(
    args: &CompareArgs,
    members: &mut [Member],
    load: &Load,
    rounds: usize,
    seeds: &[QuerySpec],
    bar: &ProgressBar,
) -> Result<PointResult, CompareError> {
    let at = load.time_after_rounds(rounds);
    let mut specs = heavy_queries(load, at);
    specs.extend(
        seeds.iter().map(|q| QuerySpec { evaluation: queries::Evaluation::Instant { time_ms: at }, ..q.clone() }),
    );
    let before: Vec<_> = members.iter().map(|m| m.running.process().stats()).collect::<Result<_, _>>()?;
    let http = queries::client();
    let bases: Vec<String> = members.iter().map(|m| m.running.process().url()).collect();
    bar.suspend(|| {
        eprintln!(
            "  query set at {:.2} h of data ({} queries, {} systems)",
            rounds as f64 * load_interval_ms(load) as f64 / 3.6e6,
            specs.len(),
            members.len()
        )
    });
    let qbar = ProgressBar::new(specs.len() as u64);
    qbar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos}/{len} queries  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    qbar.set_prefix("? queries");
    let procs: Vec<&tidemark_testkit::PeerProcess> = members.iter().map(|m| m.running.process()).collect();
    let settle = || if args.settle_queries { wait_until_quiet(&procs) } else { 0.0 };
    let timed: Vec<Vec<Timed>> = specs
        .iter()
        .map(|q| {
            qbar.set_message(q.name.chars().take(40).collect::<String>());
            let runs = if q.heavy { args.query_runs } else { args.seed_runs };
            let t = if bases.len() == 1 {
                vec![time_query(&http, &bases[0], q, runs, &settle)]
            } else {
                time_interleaved(&http, &bases, q, runs, &settle)
            };
            qbar.inc(1);
            t
        })
        .collect();
    qbar.finish_and_clear();
    let mut memory = Vec::new();
    for (m, b) in members.iter_mut().zip(before) {
        let after = m.running.process().stats()?;
        m.cpu_in_queries += after.cpu_seconds - b.cpu_seconds;
        memory.push(QueryMemory {
            system: m.running.kind,
            peak_rss_before: b.peak_rss_bytes,
            peak_rss_after: after.peak_rss_bytes,
            rss_before: b.rss_bytes,
            rss_after: after.rss_bytes,
            cpu_seconds: after.cpu_seconds - b.cpu_seconds,
        });
    }
    Ok(PointResult { after_rounds: rounds, at_ms: at, specs, memory, timed })
}

/// Sampling interval of [`wait_until_quiet`].
const QUIET_WINDOW: Duration = Duration::from_millis(50);

/// CPU all servers together may use in one [`QUIET_WINDOW`] for it to count
/// as quiet: less than one clock tick (`/proc` counts CPU in 10 ms ticks),
/// so a server with a thread busy for most of the window is not quiet.
const QUIET_CPU_SECONDS: f64 = 0.005;

/// Longest [`wait_until_quiet`] waits (a server that never goes quiet
/// delays each run by this much, and no more).
const QUIET_MAX: Duration = Duration::from_secs(3);

/// Waits until none of `procs` used CPU over a [`QUIET_WINDOW`] (or
/// [`QUIET_MAX`] passed), so that the next timed query run does not share
/// the cores with work an earlier run left behind in another server (Go's
/// garbage collector after a heavy query). Returns the wait in ms (at least
/// one window). Applies to every system alike: see [`queries::Settle`].
fn wait_until_quiet(procs: &[&tidemark_testkit::PeerProcess]) -> f64 {
    let t0 = Instant::now();
    let cpu = || procs.iter().filter_map(|p| p.stats().ok()).map(|s| s.cpu_seconds).sum::<f64>();
    let mut before = cpu();
    loop {
        std::thread::sleep(QUIET_WINDOW);
        let now = cpu();
        if now - before < QUIET_CPU_SECONDS || t0.elapsed() >= QUIET_MAX {
            return t0.elapsed().as_secs_f64() * 1e3;
        }
        before = now;
    }
}

/// How many samples `running` holds, asked in PromQL one metric name at a
/// time (`count_over_time` drops the name, so one query over all names
/// would collide on label sets that differ only in the name).
fn stored_samples(running: &Running, load: &Load) -> Result<u64, CompareError> {
    let http = queries::client();
    let base = running.process().url();
    let fail = |e: String| CompareError::Peer(format!("{}: counting stored samples: {e}", running.kind.name()));
    let at = queries::query_time(load);
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CompareArgs,
    }

    fn args(line: &[&str]) -> CompareArgs {
        Cli::parse_from(std::iter::once("compare").chain(line.iter().copied())).args
    }

    #[test]
    fn the_production_preset_is_issue_13s_shape() {
        let shape = args(&["--preset", "production"]).shape();
        assert_eq!(shape.series, [368_695]);
        assert_eq!(shape.samples_per_series, 264);
        assert!(!shape.capture);
        assert_eq!(shape.targets_per.targets(368_695), Some(2_000));
        assert_eq!(shape.targets_per.targets(1_000_000), Some(5_424));
        assert_eq!(shape.targets_per.targets(10), Some(2));
        // 1.1 h at 15 s.
        assert!((shape.samples_per_series as f64 * 15.0 / 3600.0 - 1.1).abs() < 0.01);
        let million = args(&["--preset", "million"]).shape();
        assert_eq!(million.series, [1_000_000]);
        assert_eq!(million.samples_per_series, 264);
        // "Everything still in the head", whatever the time of day.
        assert_eq!((shape.block_cut, million.block_cut), (BlockCut::None, BlockCut::None));
    }

    #[test]
    fn the_block_cut_is_chosen_explicitly() {
        assert_eq!(args(&["--preset", "long"]).shape().block_cut, BlockCut::During);
        assert_eq!(args(&[]).shape().block_cut, BlockCut::None);
        let a = args(&["--preset", "production", "--block-cut", "during"]);
        assert_eq!(a.shape().block_cut, BlockCut::During);
        assert_eq!(a.shape().series, [PRODUCTION_SERIES]);
        // Both cases are possible at the production shape.
        let span = load::synthetic_span_ms(a.shape().samples_per_series);
        for cut in [BlockCut::None, BlockCut::During] {
            assert!(placement::place(cut, span, 1_800_000_000_000).is_ok());
        }
    }

    #[test]
    fn the_long_preset_spans_6_hours_and_queries_during_ingest() {
        let shape = args(&["--preset", "long"]).shape();
        assert!(shape.samples_per_series as i64 * SYNTHETIC_INTERVAL_MS >= 6 * 3_600_000);
        assert!(shape.query_points >= 3);
        assert_eq!(shape.targets_per, TargetsRule::Default);
        let series = shape.series[0];
        assert!((50_000..=100_000).contains(&series));
    }

    #[test]
    fn flags_override_presets_and_defaults_stay() {
        let a = args(&["--preset", "production", "--series", "1000", "--capture", "true", "--query-points", "2"]);
        let shape = a.shape();
        assert_eq!(shape.series, [1_000]);
        assert!(shape.capture);
        assert_eq!(shape.query_points, 2);
        assert_eq!(shape.targets_per.targets(1_000), Some(6));
        // The CI invocation of scripts/test.
        let ci = args(&["--series", "3000", "--query-runs", "1", "--seed-runs", "1", "--require-agreement"]);
        let shape = ci.shape();
        assert_eq!((shape.series.as_slice(), shape.samples_per_series, shape.capture), (&[3_000][..], 261, true));
        assert_eq!(shape.targets_per.targets(3_000), None);
        assert_eq!(ci.timing(), Timing::Interleaved);
        assert_eq!(args(&["--systems", "tidemark"]).timing(), Timing::Sequential);
        assert_eq!(args(&["--timing", "sequential"]).timing(), Timing::Sequential);
        assert_eq!(args(&[]).shape().series, [100_000]);
    }

    #[test]
    fn a_b_bin_adds_tidemark_b_right_after_tidemark() {
        use SystemKind::*;
        // Without a B binary nothing changes (and a listed tidemark-b is dropped).
        assert_eq!(args(&[]).systems(), [Tidemark, Prometheus, VictoriaMetrics]);
        assert_eq!(args(&["--systems", "tidemark,tidemark-b"]).systems(), [Tidemark]);
        let ab = args(&["--systems", "tidemark", "--tidemark-b-bin", "/tmp/new"]);
        assert_eq!(ab.systems(), [Tidemark, TidemarkB]);
        // Two systems: timed interleaved.
        assert_eq!(ab.timing(), Timing::Interleaved);
        assert_eq!(ab.tidemark_b_bin.as_deref(), Some(Path::new("/tmp/new")));
        let all = args(&["--tidemark-b-bin", "b", "--systems", "prometheus,tidemark,victoria-metrics"]);
        assert_eq!(all.systems(), [Prometheus, Tidemark, TidemarkB, VictoriaMetrics]);
        // B is always measured beside A, once.
        let only_b = args(&["--tidemark-b-bin", "b", "--systems", "tidemark-b,victoria-metrics,tidemark-b"]);
        assert_eq!(only_b.systems(), [Tidemark, TidemarkB, VictoriaMetrics]);
        // Names in tables and JSON.
        assert_eq!(TidemarkB.name(), "tidemark-b");
        assert_eq!(serde_json::to_value(TidemarkB).ok(), Some(serde_json::json!("tidemark-b")));
        assert!(TidemarkB.is_tidemark() && !Prometheus.is_tidemark());
        // Each Tidemark system runs its binary.
        let bins = TidemarkBins { a: "a".into(), b: Some("b".into()) };
        assert_eq!(bins.for_kind(Tidemark), Path::new("a"));
        assert_eq!(bins.for_kind(TidemarkNosync), Path::new("a"));
        assert_eq!(bins.for_kind(TidemarkB), Path::new("b"));
        assert_eq!(bins.for_kind(VictoriaMetrics), Path::new(""));
        // B's answers are checked against Prometheus', else against A's.
        assert_eq!(answer_reference(&[Tidemark, TidemarkB, Prometheus]), Some(2));
        assert_eq!(answer_reference(&[Tidemark, TidemarkB]), Some(0));
        assert_eq!(answer_reference(&[Tidemark, VictoriaMetrics]), None);
    }

    #[test]
    fn phases_stop_at_the_query_points() {
        assert_eq!(plan_phases(10, 100, 1), [(10, true)]);
        assert_eq!(plan_phases(10, 4, 1), [(4, false), (4, false), (2, true)]);
        assert_eq!(plan_phases(10, 4, 2), [(4, false), (1, true), (4, false), (1, true)]);
        let long = plan_phases(1_941, 200, 4);
        assert_eq!(long.iter().map(|p| p.0).sum::<usize>(), 1_941);
        assert!(long.iter().all(|p| p.0 <= 200));
        let mut done = 0;
        let stops: Vec<usize> = long
            .iter()
            .filter_map(|&(n, q)| {
                done += n;
                q.then_some(done)
            })
            .collect();
        assert_eq!(stops, [486, 971, 1_456, 1_941]);
        // More points than rounds: one per round.
        assert_eq!(plan_phases(2, 5, 9), [(1, true), (1, true)]);
    }
}

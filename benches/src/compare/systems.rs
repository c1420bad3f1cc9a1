//! The systems under comparison: how each is started on 127.0.0.1 with a
//! fresh data directory, how its data is made persistent, and how much disk
//! that takes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidemark_testkit::{
    Http, PeerProcess, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig, VictoriaMetrics, VictoriaMetricsConfig,
};

use super::CompareError;

/// A system under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemKind {
    /// `tidemark serve`, default durability (the WAL is fsynced before a
    /// write request is answered).
    Tidemark,
    /// `tidemark serve --wal.sync=never`: the durability Prometheus and
    /// VictoriaMetrics offer (neither fsyncs per request).
    TidemarkNosync,
    /// Prometheus (Debian's 2.42) with its remote-write receiver.
    Prometheus,
    /// Single-node VictoriaMetrics (Debian's 1.79).
    VictoriaMetrics,
    /// A second `tidemark serve` (default durability) from the binary of
    /// `--tidemark-b-bin`: the B of an A/B comparison with `tidemark`.
    TidemarkB,
}

impl SystemKind {
    /// Its name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Tidemark => "tidemark",
            SystemKind::TidemarkNosync => "tidemark-nosync",
            SystemKind::Prometheus => "prometheus",
            SystemKind::VictoriaMetrics => "victoria-metrics",
            SystemKind::TidemarkB => "tidemark-b",
        }
    }

    /// Whether it is a `tidemark serve`.
    pub fn is_tidemark(self) -> bool {
        matches!(self, SystemKind::Tidemark | SystemKind::TidemarkNosync | SystemKind::TidemarkB)
    }
}

/// The `tidemark` binaries of a run: the one every Tidemark system runs,
/// and the one `tidemark-b` runs instead when an A/B comparison is asked.
#[derive(Debug, Clone, Default)]
pub struct TidemarkBins {
    /// `tidemark` and `tidemark-nosync`.
    pub a: PathBuf,
    /// `tidemark-b` (`--tidemark-b-bin`).
    pub b: Option<PathBuf>,
}

impl TidemarkBins {
    /// The binary `kind` runs (empty for the peers).
    pub fn for_kind(&self, kind: SystemKind) -> PathBuf {
        match (kind, &self.b) {
            (SystemKind::TidemarkB, Some(b)) => b.clone(),
            (k, _) if k.is_tidemark() => self.a.clone(),
            _ => PathBuf::new(),
        }
    }
}

/// Limits raised on every system so that no query of the set is refused
/// at 1M series (Prometheus' default 50M samples per query; VictoriaMetrics'
/// 300k series per query).
const QUERY_TIMEOUT: &str = "5m";
const MAX_SAMPLES: &str = "1000000000";

/// A started system, its data directory and process.
pub struct Running {
    /// Which system.
    pub kind: SystemKind,
    /// Its binary (Tidemark only; empty for the peers).
    bin: PathBuf,
    server: Server,
    data_dir: tempfile::TempDir,
}

enum Server {
    Tidemark(Tidemark),
    Prometheus(Prometheus),
    Victoria(VictoriaMetrics),
}

/// What persisting the data took on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Persisted {
    /// Bytes of the persisted form (all its files).
    pub bytes: u64,
    /// How it was persisted and measured.
    pub how: String,
    /// Bytes of the whole data directory at that time (WAL included).
    pub data_dir_bytes: u64,
    /// Wall time the persisting took.
    pub seconds: f64,
}

impl Running {
    /// Starts `kind` on a fresh temporary data directory (a Tidemark
    /// system from `tidemark_bin`).
    pub fn start(kind: SystemKind, tidemark_bin: &Path) -> Result<Running, CompareError> {
        let data_dir = tempfile::Builder::new()
            .prefix(&format!("tidemark-compare-{}-", kind.name()))
            .tempdir()
            .map_err(|e| CompareError::Setup(format!("cannot create a data directory: {e}")))?;
        let dir = data_dir.path().to_path_buf();
        let server = match kind {
            SystemKind::Tidemark | SystemKind::TidemarkNosync | SystemKind::TidemarkB => {
                Server::Tidemark(Tidemark::start(tidemark_config(kind, tidemark_bin, &dir))?)
            }
            SystemKind::Prometheus => {
                let mut config = PrometheusConfig::new(&dir);
                config.args = vec![
                    "--web.enable-remote-write-receiver".into(),
                    "--web.enable-admin-api".into(),
                    "--log.level=warn".into(),
                    format!("--query.timeout={QUERY_TIMEOUT}"),
                    format!("--query.max-samples={MAX_SAMPLES}"),
                ];
                config.ready_timeout = Duration::from_secs(120);
                Server::Prometheus(Prometheus::start(config)?)
            }
            SystemKind::VictoriaMetrics => {
                let mut config = VictoriaMetricsConfig::new(&dir);
                config.args = vec![
                    // Make just-written samples queryable (by default the
                    // last 30 s are hidden) and measure queries, not its
                    // rollup result cache.
                    "-search.latencyOffset=0s".into(),
                    "-search.disableCache".into(),
                    "-loggerLevel=WARN".into(),
                    format!("-search.maxQueryDuration={QUERY_TIMEOUT}"),
                    "-search.maxUniqueTimeseries=100000000".into(),
                    format!("-search.maxSamplesPerQuery={MAX_SAMPLES}"),
                ];
                config.ready_timeout = Duration::from_secs(120);
                Server::Victoria(VictoriaMetrics::start(config)?)
            }
        };
        let bin = if kind.is_tidemark() { tidemark_bin.to_path_buf() } else { PathBuf::new() };
        Ok(Running { kind, bin, server, data_dir })
    }

    /// The process, for its URL and `/proc` figures.
    pub fn process(&self) -> &PeerProcess {
        match &self.server {
            Server::Tidemark(t) => t,
            Server::Prometheus(p) => p,
            Server::Victoria(v) => v,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Makes every received sample persistent in the system's long-term
    /// format and measures it:
    ///
    /// * Tidemark and Prometheus: the snapshot endpoint, which writes the
    ///   in-memory head as blocks (and links existing ones) under
    ///   `snapshots/<name>`; the bytes are that directory's, i.e. the
    ///   blocks the system writes for this data (chunks, index, metadata),
    ///   without the WAL.
    /// * VictoriaMetrics: `/internal/force_flush`, then
    ///   `/internal/force_merge`, waiting until no forced merge is active
    ///   and the directory's size has settled; the bytes are the whole data
    ///   directory (data parts, index, metadata).
    pub fn persist(&self) -> Result<Persisted, CompareError> {
        let http = Http::new(Duration::from_secs(600));
        let base = self.process().url();
        let t0 = Instant::now();
        let fail = |what: &str, e: String| CompareError::Peer(format!("{}: {what}: {e}", self.kind.name()));
        let (bytes, how) = match &self.server {
            Server::Tidemark(_) | Server::Prometheus(_) => {
                let r = http
                    .post(&format!("{base}/api/v1/admin/tsdb/snapshot"), &[], b"")
                    .map_err(|e| fail("snapshot", e.to_string()))?;
                let json: serde_json::Value = serde_json::from_slice(&r.body)
                    .map_err(|e| fail("snapshot", format!("{} {e}: {}", r.status, r.text())))?;
                let name = json["data"]["name"]
                    .as_str()
                    .ok_or_else(|| fail("snapshot", format!("{} {}", r.status, r.text())))?;
                let dir = self.data_dir().join("snapshots").join(name);
                (dir_bytes(&dir), "blocks written by /api/v1/admin/tsdb/snapshot (head included)".to_string())
            }
            Server::Victoria(_) => {
                for path in ["/internal/force_flush", "/internal/force_merge"] {
                    let r = http.get(&format!("{base}{path}")).map_err(|e| fail(path, e.to_string()))?;
                    if !r.is_success() {
                        return Err(fail(path, format!("{} {}", r.status, r.text())));
                    }
                }
                self.wait_victoria_merges(&http, &base)?;
                (dir_bytes(self.data_dir()), "whole data dir after force_flush + force_merge".to_string())
            }
        };
        let data_dir_bytes = dir_bytes_except(self.data_dir(), "snapshots");
        Ok(Persisted { bytes, how, data_dir_bytes, seconds: t0.elapsed().as_secs_f64() })
    }

    /// Waits (up to 10 min) until VictoriaMetrics reports no active forced
    /// merge and its data directory has kept one size for 5 s (background
    /// merges of freshly flushed parts settle too).
    fn wait_victoria_merges(&self, http: &Http, base: &str) -> Result<(), CompareError> {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut last = (u64::MAX, Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let active = http
                .get(&format!("{base}/metrics"))
                .map(|r| {
                    r.text()
                        .lines()
                        .filter(|l| l.starts_with("vm_active_force_merges"))
                        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                        .sum::<f64>()
                })
                .unwrap_or(1.0);
            let size = dir_bytes(self.data_dir());
            if size != last.0 {
                last = (size, Instant::now());
            }
            if active == 0.0 && last.1.elapsed() >= Duration::from_secs(5) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CompareError::Peer("victoria-metrics: merges did not finish within 10 min".into()));
            }
        }
    }

    /// Tidemark only: kills the server with SIGKILL (so nothing is written
    /// on the way out, as in a crash) and starts it again on the same data
    /// directory; returns the seconds until `/-/ready` answered, i.e. the
    /// time to open the blocks and replay the WAL (checkpoint, segments,
    /// head chunk files). `None` for the other systems.
    pub fn kill_and_replay(&mut self) -> Result<Option<f64>, CompareError> {
        let Server::Tidemark(t) = &mut self.server else { return Ok(None) };
        let kill = tidemark_testkit::find_binary("kill")?;
        let status = std::process::Command::new(kill)
            .arg("-KILL")
            .arg(t.pid().to_string())
            .status()
            .map_err(|e| CompareError::Setup(format!("cannot run kill: {e}")))?;
        if !status.success() {
            return Err(CompareError::Setup(format!("kill -KILL {} failed ({status})", t.pid())));
        }
        // Reaps it (already dead: the SIGTERM that goes first finds a zombie).
        let _ = t.terminate(Duration::from_secs(10));
        let t0 = Instant::now();
        let config = tidemark_config(self.kind, &self.bin, self.data_dir.path());
        self.server = Server::Tidemark(Tidemark::start(config)?);
        Ok(Some(t0.elapsed().as_secs_f64()))
    }

    /// Stops the system (SIGTERM, then kill after 60 s).
    pub fn stop(mut self) -> Result<(), CompareError> {
        let p: &mut PeerProcess = match &mut self.server {
            Server::Tidemark(t) => t,
            Server::Prometheus(p) => p,
            Server::Victoria(v) => v,
        };
        p.terminate(Duration::from_secs(60))?;
        Ok(())
    }
}

/// How `tidemark serve` runs in the comparison.
fn tidemark_config(kind: SystemKind, tidemark_bin: &Path, dir: &Path) -> TidemarkConfig {
    let mut config = TidemarkConfig::new(tidemark_bin, dir);
    config.args = vec![
        "--log.level=warn".into(),
        // The on-disk size is measured through a snapshot.
        "--web.enable-admin-api".into(),
        format!("--query.timeout={QUERY_TIMEOUT}"),
        format!("--query.max-samples={MAX_SAMPLES}"),
    ];
    if kind == SystemKind::TidemarkNosync {
        config.args.push("--wal.sync=never".into());
    }
    config.ready_timeout = Duration::from_secs(600);
    config
}

/// Bytes under each top-level entry of `dir`, largest first; blocks (any
/// directory holding a `meta.json`) are summed as one `blocks (n)` entry,
/// loose files as `files`.
pub fn dir_bytes_by_entry(dir: &Path) -> Vec<(String, u64)> {
    let (mut out, mut blocks, mut block_bytes, mut files) = (Vec::new(), 0usize, 0u64, 0u64);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() && path.join("meta.json").is_file() => {
                    blocks += 1;
                    block_bytes += dir_bytes(&path);
                }
                Ok(t) if t.is_dir() => out.push((e.file_name().to_string_lossy().into_owned(), dir_bytes(&path))),
                Ok(t) if t.is_file() => files += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    if blocks > 0 {
        out.push((format!("blocks ({blocks})"), block_bytes));
    }
    if files > 0 {
        out.push(("files".into(), files));
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Total size of the regular files under `dir` (0 if it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    dir_bytes_except(dir, "")
}

/// Like [`dir_bytes`], skipping the top-level entry named `skip`.
fn dir_bytes_except(dir: &Path, skip: &str) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    let mut top = true;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if top && !skip.is_empty() && e.file_name() == skip {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
        top = false;
    }
    total
}

/// The installed Debian package's version, e.g. `2.42.0+ds-5+deb12u1`.
pub fn package_version(package: &str) -> String {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown version".into())
}

/// Installs Debian's `prometheus` and `victoria-metrics` when their
/// binaries are missing (`apt-get update` first, as on a fresh machine).
pub fn ensure_peers_installed(kinds: &[SystemKind]) -> Result<(), CompareError> {
    let mut missing = Vec::new();
    for (kind, binary, package) in [
        (SystemKind::Prometheus, "prometheus", "prometheus"),
        (SystemKind::VictoriaMetrics, "victoria-metrics", "victoria-metrics"),
    ] {
        if kinds.contains(&kind) && tidemark_testkit::find_binary(binary).is_err() {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    let run = |args: &[&str]| -> Result<(), CompareError> {
        let status = std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| CompareError::Setup(format!("cannot run apt-get: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(CompareError::Setup(format!("apt-get {} failed ({status})", args.join(" "))))
        }
    };
    run(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q"];
    args.extend(missing);
    run(&args)
}

/// Builds `tidemark` (release) with the cargo that runs us, and returns
/// its path in the workspace's target directory.
pub fn build_tidemark() -> Result<PathBuf, CompareError> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building tidemark (cargo build --release -p tidemark)");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "tidemark", "--bin", "tidemark"])
        .current_dir(&workspace)
        .status()
        .map_err(|e| CompareError::Setup(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(CompareError::Setup(format!("cargo build --release -p tidemark failed ({status})")));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release").join("tidemark"))
}

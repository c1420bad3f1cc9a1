//! The peers we run: Prometheus, VictoriaMetrics, node_exporter and
//! `tidemark serve`.

use std::ffi::OsString;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use crate::{find_binary, free_port, Http, KitError, PeerProcess};

fn work_dir(name: &str) -> Result<tempfile::TempDir, KitError> {
    tempfile::Builder::new().prefix(&format!("tidemark-testkit-{name}-")).tempdir().map_err(|source| KitError::Io {
        what: "create a temporary directory for",
        path: name.into(),
        source,
    })
}

macro_rules! peer_deref {
    ($t:ty) => {
        impl Deref for $t {
            type Target = PeerProcess;
            fn deref(&self) -> &PeerProcess {
                &self.process
            }
        }
        impl DerefMut for $t {
            fn deref_mut(&mut self) -> &mut PeerProcess {
                &mut self.process
            }
        }
    };
}

/// How to run a Prometheus server.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// The content of `prometheus.yml`. Default: `scrape_configs: []`.
    pub config_yaml: String,
    /// `--storage.tsdb.path`; created by Prometheus if missing.
    pub storage_dir: PathBuf,
    /// Extra command-line arguments, after the ones the kit sets
    /// (`--config.file`, `--storage.tsdb.path`, `--web.listen-address`).
    pub args: Vec<String>,
    /// The port to listen on (127.0.0.1). Default: `None`, a
    /// [`free_port`]; set it when the config must name it (a self-scrape).
    pub port: Option<u16>,
    /// How long to wait for `/-/ready`. Default: 30 s.
    pub ready_timeout: Duration,
}

impl PrometheusConfig {
    /// The defaults, over the TSDB in `storage_dir`.
    pub fn new(storage_dir: impl Into<PathBuf>) -> PrometheusConfig {
        PrometheusConfig {
            config_yaml: "scrape_configs: []\n".into(),
            storage_dir: storage_dir.into(),
            args: Vec::new(),
            port: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A running Prometheus (Debian's 2.42 in our CI), ready to serve queries.
/// Derefs to its [`PeerProcess`] (`url()`, `log_tail()`, `stats()`…).
#[derive(Debug)]
pub struct Prometheus {
    process: PeerProcess,
}
peer_deref!(Prometheus);

impl Prometheus {
    /// Writes the config, starts `prometheus` and waits until `/-/ready`
    /// answers 200.
    pub fn start(config: PrometheusConfig) -> Result<Prometheus, KitError> {
        match config.port {
            Some(port) => Prometheus::start_on(&config, port),
            None => retry_if_port_taken(|| Prometheus::start_on(&config, free_port())),
        }
    }

    /// [`Prometheus::start`] on `port`.
    fn start_on(config: &PrometheusConfig, port: u16) -> Result<Prometheus, KitError> {
        let bin = find_binary("prometheus")?;
        let work = work_dir("prometheus")?;
        let file = work.path().join("prometheus.yml");
        std::fs::write(&file, &config.config_yaml).map_err(|source| KitError::Io {
            what: "write",
            path: file.clone(),
            source,
        })?;
        let mut args: Vec<OsString> = vec![
            format!("--config.file={}", file.display()).into(),
            format!("--storage.tsdb.path={}", config.storage_dir.display()).into(),
            format!("--web.listen-address=127.0.0.1:{port}").into(),
        ];
        args.extend(config.args.iter().map(OsString::from));
        let mut process = PeerProcess::spawn("prometheus", &bin, &args, port, work)?;
        process.wait_ready("/-/ready", config.ready_timeout)?;
        Ok(Prometheus { process })
    }

    /// The remote-write receiver URL (`/api/v1/write`; needs
    /// `--web.enable-remote-write-receiver`).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }
}

/// How to run a single-node VictoriaMetrics.
#[derive(Debug, Clone)]
pub struct VictoriaMetricsConfig {
    /// `-storageDataPath`.
    pub data_dir: PathBuf,
    /// Extra flags, after the ones the kit sets (`-storageDataPath`,
    /// `-httpListenAddr`).
    pub args: Vec<String>,
    /// How long to wait for `/health`. Default: 30 s.
    pub ready_timeout: Duration,
}

impl VictoriaMetricsConfig {
    /// The defaults, storing in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> VictoriaMetricsConfig {
        VictoriaMetricsConfig { data_dir: data_dir.into(), args: Vec::new(), ready_timeout: Duration::from_secs(30) }
    }
}

/// A running VictoriaMetrics (binary `victoria-metrics` from Debian).
/// Derefs to its [`PeerProcess`].
#[derive(Debug)]
pub struct VictoriaMetrics {
    process: PeerProcess,
}
peer_deref!(VictoriaMetrics);

impl VictoriaMetrics {
    /// Starts `victoria-metrics` and waits until `/health` answers 200.
    pub fn start(config: VictoriaMetricsConfig) -> Result<VictoriaMetrics, KitError> {
        let bin = find_binary("victoria-metrics")?;
        retry_if_port_taken(|| {
            let work = work_dir("victoria-metrics")?;
            let port = free_port();
            let mut args: Vec<OsString> = vec![
                format!("-storageDataPath={}", config.data_dir.display()).into(),
                format!("-httpListenAddr=127.0.0.1:{port}").into(),
            ];
            args.extend(config.args.iter().map(OsString::from));
            let mut process = PeerProcess::spawn("victoria-metrics", &bin, &args, port, work)?;
            process.wait_ready("/health", config.ready_timeout)?;
            Ok(VictoriaMetrics { process })
        })
    }

    /// The Prometheus remote-write URL (`/api/v1/write`).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.url())
    }
}

/// A running `prometheus-node-exporter` (Debian's node_exporter), a source
/// of real host metrics to scrape. Derefs to its [`PeerProcess`].
#[derive(Debug)]
pub struct NodeExporter {
    process: PeerProcess,
}
peer_deref!(NodeExporter);

impl NodeExporter {
    /// Starts it with `args` added to the listen address and waits (at most
    /// 30 s) until `/metrics` answers 200.
    pub fn start(args: &[&str]) -> Result<NodeExporter, KitError> {
        let bin = find_binary("prometheus-node-exporter")?;
        retry_if_port_taken(|| {
            let work = work_dir("node-exporter")?;
            let port = free_port();
            let mut all: Vec<OsString> = vec![format!("--web.listen-address=127.0.0.1:{port}").into()];
            all.extend(args.iter().map(OsString::from));
            let mut process = PeerProcess::spawn("node-exporter", &bin, &all, port, work)?;
            process.wait_ready("/metrics", Duration::from_secs(30))?;
            Ok(NodeExporter { process })
        })
    }

    /// `127.0.0.1:<port>`, as a scrape target.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }
}

/// How to run `tidemark serve`.
#[derive(Debug, Clone)]
pub struct TidemarkConfig {
    /// The `tidemark` executable. Inside the tidemark crate's own tests it
    /// is `env!("CARGO_BIN_EXE_tidemark")`; elsewhere, e.g.
    /// `target/release/tidemark`.
    pub binary: PathBuf,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// Extra arguments after `serve --listen 127.0.0.1:<port> --data-dir <dir>`.
    pub args: Vec<String>,
    /// How long to wait for `/-/ready` (WAL replay included). Default: 30 s.
    pub ready_timeout: Duration,
    /// The client that polls `/-/ready`, and whether the server speaks
    /// HTTPS: set it when `args` include a `--web.config.file` with TLS or
    /// basic auth. Default: `None`, plain HTTP without credentials.
    pub ready_client: Option<(Http, bool)>,
}

impl TidemarkConfig {
    /// The defaults for `binary` storing in `data_dir`.
    pub fn new(binary: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> TidemarkConfig {
        TidemarkConfig {
            binary: binary.into(),
            data_dir: data_dir.into(),
            args: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            ready_client: None,
        }
    }

    /// These defaults with `args` as the extra arguments.
    pub fn with_args(mut self, args: &[&str]) -> TidemarkConfig {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// A running `tidemark serve`. Derefs to its [`PeerProcess`].
#[derive(Debug)]
pub struct Tidemark {
    process: PeerProcess,
    https: bool,
}
peer_deref!(Tidemark);

impl Tidemark {
    /// Starts `tidemark serve --listen 127.0.0.1:<free port> --data-dir …`
    /// and waits until `/-/ready` answers 200.
    pub fn start(config: TidemarkConfig) -> Result<Tidemark, KitError> {
        if !config.binary.is_file() {
            return Err(KitError::Spawn {
                name: "tidemark".into(),
                path: config.binary.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file (build it: cargo build --release -p tidemark)",
                ),
            });
        }
        retry_if_port_taken(|| Tidemark::start_on(&config, free_port()))
    }

    /// [`Tidemark::start`] on `port`.
    fn start_on(config: &TidemarkConfig, port: u16) -> Result<Tidemark, KitError> {
        let work = work_dir("tidemark")?;
        let mut args: Vec<OsString> = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}").into(),
            "--data-dir".into(),
            config.data_dir.clone().into(),
        ];
        args.extend(config.args.iter().map(OsString::from));
        let mut process = PeerProcess::spawn("tidemark", &config.binary, &args, port, work)?;
        let https = match &config.ready_client {
            None => {
                process.wait_ready("/-/ready", config.ready_timeout)?;
                false
            }
            Some((client, https)) => {
                let scheme = if *https { "https" } else { "http" };
                let url = format!("{scheme}://127.0.0.1:{port}/-/ready");
                process.wait_ready_with(client, &url, config.ready_timeout)?;
                *https
            }
        };
        Ok(Tidemark { process, https })
    }

    /// `https://127.0.0.1:<port>` when served over TLS, else the plain
    /// [`PeerProcess::url`].
    pub fn base_url(&self) -> String {
        if self.https {
            format!("https://127.0.0.1:{}", self.port())
        } else {
            self.url()
        }
    }

    /// The remote-write URL (`/api/v1/write`).
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.base_url())
    }
}

/// Runs `start` again (at most five times in all) while it fails because
/// the port [`free_port`] chose was taken before the peer bound it: by
/// another test's process, or by an outgoing connection the kernel gave it
/// as its ephemeral port. Any other failure is returned at once.
fn retry_if_port_taken<T>(mut start: impl FnMut() -> Result<T, KitError>) -> Result<T, KitError> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(KitError::Exited { log, .. })
                if attempt < 5 && log.to_ascii_lowercase().contains("address already in use") =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(log: &str) -> KitError {
        KitError::Exited { name: "peer".into(), status: "exit status: 1".into(), log: log.into() }
    }

    #[test]
    fn a_taken_port_is_retried_and_other_failures_are_not() {
        let mut calls = 0;
        let r = retry_if_port_taken(|| {
            calls += 1;
            if calls < 3 {
                Err(exited("cannot listen on 127.0.0.1:1: Address already in use (os error 98)"))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);

        let mut calls = 0;
        let r: Result<(), _> = retry_if_port_taken(|| {
            calls += 1;
            Err(exited("bind: address already in use"))
        });
        assert!(r.is_err());
        assert_eq!(calls, 5, "gives up after five attempts");

        let mut calls = 0;
        let r: Result<(), _> = retry_if_port_taken(|| {
            calls += 1;
            Err(exited("invalid flag"))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}

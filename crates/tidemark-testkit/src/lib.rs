//! Drives real peer processes for Tidemark's tests and benchmarks: Prometheus,
//! `promtool`, VictoriaMetrics, `prometheus-node-exporter` and `tidemark
//! serve` itself, all on 127.0.0.1.
//!
//! Every process runs as a [`PeerProcess`]: it listens on a port picked by
//! the OS ([`free_port`]), writes its stdout and stderr to a log file in a
//! private temporary directory (its last lines go into every error message),
//! and is killed and reaped when the value is dropped — also when a test
//! panics, so no test leaves a server behind. Starting waits, with a bounded
//! timeout, until the peer's readiness endpoint answers 200.
//!
//! Binaries are looked up on `PATH` with [`find_binary`], which fails (it
//! never skips) with a message naming the Debian package to install.
//!
//! ```no_run
//! use tidemark_testkit::{promtool, Prometheus, PrometheusConfig};
//!
//! # fn main() -> Result<(), tidemark_testkit::KitError> {
//! let dir = tempfile::tempdir().unwrap();
//! let prom = Prometheus::start(PrometheusConfig::new(dir.path().join("tsdb")))?;
//! let out = promtool(["query", "instant", "-o", "json", &prom.url(), "vector(1)"])?.into_stdout()?;
//! assert!(out.contains("\"1\""));
//! # Ok(())
//! # }   // `prom` is dropped here: Prometheus is killed and reaped
//! ```
#![deny(missing_docs)]

mod alertmanager;
mod error;
mod http;
mod peers;
mod process;
mod promtool;
mod scrape_target;
mod webhook;

pub use alertmanager::{Alertmanager, AlertmanagerConfig};
pub use error::KitError;
pub use http::{get, post, url_encode, Http, HttpResponse, TlsClient};
pub use peers::{
    NodeExporter, Prometheus, PrometheusConfig, Tidemark, TidemarkConfig, VictoriaMetrics, VictoriaMetricsConfig,
};
pub use process::{find_binary, free_port, PeerProcess, ProcessStats};
pub use promtool::{promtool, promtool_with_env, promtool_with_timeout, PromtoolOutput};
pub use scrape_target::ScrapeTarget;
pub use webhook::{ReceivedRequest, WebhookReceiver};

/// Milliseconds since the Unix epoch as the decimal seconds that
/// Prometheus' HTTP API and `promtool` accept (`1700000000.123`).
///
/// ```
/// assert_eq!(tidemark_testkit::secs(1_700_000_000_123), "1700000000.123");
/// assert_eq!(tidemark_testkit::secs(-1), "-1.999");
/// ```
pub fn secs(ms: i64) -> String {
    // div/rem_euclid keep the fraction positive, which is what a decimal
    // parser expects: -1 ms is -1 s + 0.999 s.
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

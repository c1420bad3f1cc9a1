//! Configuration of `tidemark serve`: command-line flags, an optional TOML
//! file, and defaults, resolved in that order of precedence into one
//! [`ServeConfig`].
//!
//! ```
//! use clap::Parser;
//! use tidemark::config::{ServeArgs, ServeConfig};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     serve: ServeArgs,
//! }
//! let cli = Cli::parse_from(["tidemark", "--listen", "127.0.0.1:0", "--retention.time", "7d"]);
//! let config = ServeConfig::resolve(&cli.serve).unwrap();
//! assert_eq!(config.instance.retention_time, Some(std::time::Duration::from_secs(7 * 86_400)));
//! assert_eq!(config.data_dir(), std::path::Path::new("./data"));
//! ```
//!
//! A configuration file (`--config.file tidemark.toml`) holds the same
//! settings; a flag given on the command line wins over the file:
//!
//! ```toml
//! listen = "127.0.0.1:9201"
//! data_dir = "/var/lib/tidemark"
//! retention_time = "30d"
//! retention_size = "100GB"
//! out_of_order_window = "10m"
//! wal_sync = "every-commit"      # or "never", or an interval like "1s"
//! external_labels = { cluster = "eu-1" }   # added to alerts and /federate
//!
//! [query]
//! timeout = "2m"
//! max_samples = 50000000
//! lookback_delta = "5m"
//! max_concurrency = 20           # queries evaluated at once; more wait
//!
//! [remote_write]
//! max_body_size = "32MB"
//! max_decompressed_size = "128MB"
//!
//! [remote_write.ha]                # HA-pair deduplication (README: HA pairs)
//! replica_label = "__replica__"    # setting it turns deduplication on
//! cluster_label = "cluster"
//! failover_timeout = "30s"
//! [remote_read]                  # POST /api/v1/read
//! sample_limit = 50000000        # per query of a SAMPLES answer; 0: none
//! concurrent_limit = 10          # 0: none
//! max_bytes_in_frame = 1048576   # streamed answers
//!
//! [rules]
//! files = ["rules/*.yml"]        # Prometheus rule files (docs/rules.md)
//! evaluation_interval = "1m"
//! query_offset = "0s"
//! for_outage_tolerance = "1h"
//! for_grace_period = "10m"
//! resend_delay = "1m"
//!
//! [alerting]
//! alertmanagers = ["http://127.0.0.1:9093"]
//! notification_queue_capacity = 10000
//! timeout = "10s"
//!
//! [web]
//! config_file = "web.yml"        # TLS and basic auth, Prometheus' format (docs/security.md)
//! external_url = "https://tidemark.example.com"
//! enable_admin_api = false
//! max_connections = 512
//! read_header_timeout = "10s"
//! idle_timeout = "2m"
//! read_timeout = "5m"
//!
//! [storage.exemplars]
//! max_exemplars = 100000         # one ring for all series; 0 disables exemplars
//!
//! [[forward]]
//! name = "mimir"
//! url = "https://mimir:9009/api/v1/push"
//! protocol = "1.0"               # or "2.0"
//! headers = { "X-Scope-OrgID" = "team-a" }
//! basic_auth = { username = "tidemark", password_file = "/etc/tidemark/mimir.pass" }
//! # or: authorization = { type = "Bearer", credentials_file = "/etc/tidemark/token" }
//! tls_config = { ca_file = "/etc/tidemark/ca.crt" }
//! ```
//!
//! Credentials are never printed: a forward URL's userinfo
//! (`https://user:pass@host/…`) becomes basic auth and is removed from the
//! URL, and logs, `Debug` output and error messages show URLs through
//! [`redact_url`](tidemark_remote::forward::redact_url).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tidemark_remote::forward::{redact_url, redacted_headers, split_userinfo, Auth, TlsOptions};
use tidemark_remote::receive::HaOptions;
use tidemark_storage::SyncPolicy;

use crate::rules::RulesOptions;
use crate::web::ListenOptions;
use crate::TidemarkOptions;

/// The default listen address: loopback only, and a port that does not
/// clash with Prometheus (9090), the Pushgateway (9091), Alertmanager
/// (9093) or node_exporter (9100). 9201 is the port remote-storage
/// adapters customarily use.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9201";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// A setting could not be understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for our settings.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (line and column included).
        message: String,
    },
    /// One setting has an invalid value.
    #[error("invalid value {value:?} for {setting}: {reason}")]
    Invalid {
        /// The flag or key.
        setting: &'static str,
        /// The value given.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// The flags of `tidemark serve`. Every flag is optional; unset flags take
/// the config file's value, then the default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see the docs of `tidemark::config`).
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9201].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Data directory [default: ./data].
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Delete data older than this (e.g. 15d, 12h; 0 keeps data forever) [default: 15d].
    #[arg(long = "retention.time", value_name = "DURATION")]
    pub retention_time: Option<String>,
    /// Keep blocks and WAL under this size (e.g. 50GB; units are powers of 1024; 0 disables) [default: none].
    #[arg(long = "retention.size", value_name = "SIZE")]
    pub retention_size: Option<String>,
    /// Accept samples this far behind a series' newest sample (e.g. 10m) [default: 0, disabled].
    #[arg(long = "out-of-order-window", value_name = "DURATION")]
    pub out_of_order_window: Option<String>,
    /// When the WAL is fsynced: every-commit, never, or an interval such as 1s [default: every-commit].
    #[arg(long = "wal.sync", value_name = "POLICY")]
    pub wal_sync: Option<String>,
    /// Longest a query may run [default: 2m].
    #[arg(long = "query.timeout", value_name = "DURATION")]
    pub query_timeout: Option<String>,
    /// Most samples a query may hold in memory at once [default: 50000000].
    #[arg(long = "query.max-samples", value_name = "N")]
    pub query_max_samples: Option<usize>,
    /// How far back a selector looks for a sample [default: 5m].
    #[arg(long = "query.lookback-delta", value_name = "DURATION")]
    pub query_lookback_delta: Option<String>,
    /// Most queries evaluated at once; more wait in a queue, within their timeout [default: 20].
    #[arg(long = "query.max-concurrency", value_name = "N")]
    pub query_max_concurrency: Option<usize>,
    /// Largest compressed remote-write body [default: 32MB].
    #[arg(long = "remote-write.max-body-size", value_name = "SIZE")]
    pub remote_write_max_body_size: Option<String>,
    /// Forward everything ingested to this remote-write URL (repeatable; protocol 1.0).
    #[arg(long = "forward.url", value_name = "URL")]
    pub forward_url: Vec<String>,
    /// Log filter, in `RUST_LOG` syntax (e.g. info, tidemark=debug) [default: info].
    #[arg(long = "log.level", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Web configuration file: TLS, HTTP/2, response headers and basic auth users, in Prometheus' exporter-toolkit format (see docs/security.md) [default: none: plain HTTP, no authentication].
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Serve the admin endpoints (/api/v1/admin/tsdb/snapshot) [default: off].
    #[arg(long = "web.enable-admin-api")]
    pub web_enable_admin_api: bool,
    /// Most connections served at once; more wait in the kernel's backlog (0: no limit) [default: 512].
    #[arg(long = "web.max-connections", value_name = "N")]
    pub web_max_connections: Option<usize>,
    /// Longest a client may take to complete a TLS handshake or send a request's headers [default: 10s].
    #[arg(long = "web.read-header-timeout", value_name = "DURATION")]
    pub web_read_header_timeout: Option<String>,
    /// Close connections idle (no request) this long [default: 2m].
    #[arg(long = "web.idle-timeout", value_name = "DURATION")]
    pub web_idle_timeout: Option<String>,
    /// Longest a request body may take to arrive after its headers [default: 5m].
    #[arg(long = "web.read-timeout", value_name = "DURATION")]
    pub web_read_timeout: Option<String>,
    /// The URL users reach Tidemark at: `$externalURL` in templates and the base of alerts' generatorURL [default: http://<hostname>:<port>].
    #[arg(long = "web.external-url", value_name = "URL")]
    pub web_external_url: Option<String>,
    /// Rule files to load, as a glob (repeatable; re-read on SIGHUP and POST /-/reload).
    #[arg(long = "rules.file", value_name = "GLOB")]
    pub rules_file: Vec<String>,
    /// Evaluation interval of rule groups that set none; also the default subquery step [default: 1m].
    #[arg(long = "rules.evaluation-interval", value_name = "DURATION")]
    pub rules_evaluation_interval: Option<String>,
    /// How far in the past rule groups that set no query_offset evaluate [default: 0s].
    #[arg(long = "rules.query-offset", value_name = "DURATION")]
    pub rules_query_offset: Option<String>,
    /// Longest outage after which an alert's 'for' state is still restored at startup [default: 1h].
    #[arg(long = "rules.alert.for-outage-tolerance", value_name = "DURATION")]
    pub rules_alert_for_outage_tolerance: Option<String>,
    /// Least time an alert with a restored 'for' state waits before firing [default: 10m].
    #[arg(long = "rules.alert.for-grace-period", value_name = "DURATION")]
    pub rules_alert_for_grace_period: Option<String>,
    /// Least time between two sends of the same alert to Alertmanager [default: 1m].
    #[arg(long = "rules.alert.resend-delay", value_name = "DURATION")]
    pub rules_alert_resend_delay: Option<String>,
    /// Alertmanager to send alerts to (repeatable), e.g. http://127.0.0.1:9093.
    #[arg(long = "alertmanager.url", value_name = "URL")]
    pub alertmanager_url: Vec<String>,
    /// Alerts queued for Alertmanager at most; more drop the oldest [default: 10000].
    #[arg(long = "alertmanager.notification-queue-capacity", value_name = "N")]
    pub alertmanager_notification_queue_capacity: Option<usize>,
    /// Timeout of one request to an Alertmanager [default: 10s].
    #[arg(long = "alertmanager.timeout", value_name = "DURATION")]
    pub alertmanager_timeout: Option<String>,
    /// A label added to every alert sent and to /federate output, as NAME=VALUE (repeatable).
    #[arg(long = "external-label", value_name = "NAME=VALUE")]
    pub external_label: Vec<String>,
    /// Deduplicate HA pairs of senders told apart by this label (e.g. __replica__): per cluster, store one replica's samples, drop the others', strip this label [default: off].
    #[arg(long = "ha.replica-label", value_name = "NAME")]
    pub ha_replica_label: Option<String>,
    /// The label naming an HA pair's cluster (needs --ha.replica-label) [default: cluster].
    #[arg(long = "ha.cluster-label", value_name = "NAME")]
    pub ha_cluster_label: Option<String>,
    /// Elect another replica of a cluster once the elected one has sent nothing this long (needs --ha.replica-label) [default: 30s].
    #[arg(long = "ha.failover-timeout", value_name = "DURATION")]
    pub ha_failover_timeout: Option<String>,
    /// Most exemplars kept, in one in-memory ring shared by all series, about 40 bytes each plus their labels; 0 disables exemplar storage [default: 100000].
    #[arg(long = "storage.exemplars.exemplars-limit", value_name = "N")]
    pub storage_exemplars_limit: Option<usize>,
    /// Most samples one query of a remote read SAMPLES answer may hold (0: no limit) [default: 50000000].
    #[arg(long = "storage.remote.read-sample-limit", value_name = "N")]
    pub remote_read_sample_limit: Option<usize>,
    /// Most remote read requests handled at once; more wait up to 2m, then get 503 (0: no limit) [default: 10].
    #[arg(long = "storage.remote.read-concurrent-limit", value_name = "N")]
    pub remote_read_concurrent_limit: Option<usize>,
    /// Target size in bytes of one frame of a streamed remote read answer [default: 1048576].
    #[arg(long = "storage.remote.read-max-bytes-in-frame", value_name = "BYTES")]
    pub remote_read_max_bytes_in_frame: Option<usize>,
}

/// The remote-write protocol a forward target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardProtocol {
    /// Remote write 1.0 (`prometheus.WriteRequest`): every receiver speaks it.
    V1,
    /// Remote write 2.0 (`io.prometheus.write.v2.Request`).
    V2,
}

/// One endpoint that receives a copy of everything ingested. Its `Debug`
/// output redacts credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    /// A name for logs, metrics and the position file (unique).
    pub name: String,
    /// The remote-write URL, without userinfo.
    pub url: String,
    /// The protocol.
    pub protocol: ForwardProtocol,
    /// Extra request headers (authentication, tenant).
    pub headers: BTreeMap<String, String>,
    /// Basic auth (also from the URL's userinfo) or a bearer token.
    pub auth: Option<Auth>,
    /// TLS settings.
    pub tls: TlsOptions,
}

impl std::fmt::Debug for ForwardTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers = redacted_headers(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        f.debug_struct("ForwardTarget")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The resolved configuration of the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The database, query and remote-write settings (`data_dir` is always set).
    pub instance: TidemarkOptions,
    /// Forward targets.
    pub forward: Vec<ForwardTarget>,
    /// Log filter.
    pub log_filter: String,
    /// `--web.config.file`, if any.
    pub web_config_file: Option<PathBuf>,
    /// Connection limit and timeouts.
    pub web: ListenOptions,
}

impl ServeConfig {
    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.instance.data_dir.as_deref().unwrap_or(Path::new(DEFAULT_DATA_DIR))
    }
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    retention_time: Option<String>,
    retention_size: Option<String>,
    out_of_order_window: Option<String>,
    wal_sync: Option<String>,
    log_level: Option<String>,
    #[serde(default)]
    query: FileQuery,
    #[serde(default)]
    remote_write: FileRemoteWrite,
    #[serde(default)]
    forward: Vec<FileForward>,
    #[serde(default)]
    web: FileWeb,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: FileRules,
    #[serde(default)]
    alerting: FileAlerting,
    #[serde(default)]
    storage: FileStorage,
    #[serde(default)]
    remote_read: FileRemoteRead,
}

/// `[storage.exemplars]`, as Prometheus' `storage: exemplars: max_exemplars`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    #[serde(default)]
    exemplars: FileExemplars,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExemplars {
    max_exemplars: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRemoteRead {
    sample_limit: Option<usize>,
    concurrent_limit: Option<usize>,
    max_bytes_in_frame: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRules {
    #[serde(default)]
    files: Vec<String>,
    evaluation_interval: Option<String>,
    query_offset: Option<String>,
    for_outage_tolerance: Option<String>,
    for_grace_period: Option<String>,
    resend_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerting {
    #[serde(default)]
    alertmanagers: Vec<String>,
    notification_queue_capacity: Option<usize>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    config_file: Option<PathBuf>,
    external_url: Option<String>,
    enable_admin_api: Option<bool>,
    max_connections: Option<usize>,
    read_header_timeout: Option<String>,
    idle_timeout: Option<String>,
    read_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuthorization {
    #[serde(rename = "type")]
    kind: Option<String>,
    credentials: Option<String>,
    credentials_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    timeout: Option<String>,
    max_samples: Option<usize>,
    lookback_delta: Option<String>,
    max_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRemoteWrite {
    max_body_size: Option<String>,
    max_decompressed_size: Option<String>,
    #[serde(default)]
    ha: FileHa,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHa {
    replica_label: Option<String>,
    cluster_label: Option<String>,
    failover_timeout: Option<String>,
}

/// HA deduplication: on when a replica label is set (flag or file).
fn resolve_ha(args: &ServeArgs, file: &FileHa) -> Result<Option<HaOptions>, ConfigError> {
    let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or_else(|| file.clone());
    let cluster = pick(&args.ha_cluster_label, &file.cluster_label);
    let timeout = pick(&args.ha_failover_timeout, &file.failover_timeout);
    let Some(replica_label) = pick(&args.ha_replica_label, &file.replica_label) else {
        if let Some((setting, value)) =
            cluster.map(|c| ("ha.cluster-label", c)).or_else(|| timeout.map(|t| ("ha.failover-timeout", t)))
        {
            return Err(ConfigError::Invalid {
                setting,
                value,
                reason: "HA deduplication is off: set --ha.replica-label (remote_write.ha.replica_label) to turn it on"
                    .into(),
            });
        }
        return Ok(None);
    };
    let defaults = HaOptions::default();
    let cluster_label = cluster.unwrap_or(defaults.cluster_label);
    for (setting, name) in [("ha.replica-label", &replica_label), ("ha.cluster-label", &cluster_label)] {
        if name.is_empty() || name == tidemark_storage::METRIC_NAME {
            return Err(ConfigError::Invalid {
                setting,
                value: name.clone(),
                reason: "not a usable label name".into(),
            });
        }
    }
    if cluster_label == replica_label {
        return Err(ConfigError::Invalid {
            setting: "ha.cluster-label",
            value: cluster_label,
            reason: "the cluster and replica labels must differ".into(),
        });
    }
    let failover_timeout = match timeout {
        None => defaults.failover_timeout,
        Some(t) => parse_positive_duration("ha.failover-timeout", &t)?,
    };
    Ok(Some(HaOptions { cluster_label, replica_label, failover_timeout, ..defaults }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForward {
    name: Option<String>,
    url: String,
    protocol: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    basic_auth: Option<FileBasicAuth>,
    authorization: Option<FileAuthorization>,
    tls_config: Option<FileTls>,
}

/// A secret given inline or in a file (read once, at startup; surrounding
/// whitespace trimmed, as Prometheus does).
fn secret(setting: &'static str, inline: &Option<String>, file: &Option<PathBuf>) -> Result<String, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            setting,
            value: "<redacted>".into(),
            reason: "give the secret inline or as a file, not both".into(),
        }),
        (Some(s), None) => Ok(s.clone()),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .map_err(|source| ConfigError::Read { path: p.clone(), source }),
        (None, None) => Err(ConfigError::Invalid {
            setting,
            value: String::new(),
            reason: "missing: give it inline or as a file".into(),
        }),
    }
}

fn forward_auth(f: &FileForward) -> Result<Option<Auth>, ConfigError> {
    match (&f.basic_auth, &f.authorization) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            setting: "forward.basic_auth",
            value: f.name.clone().unwrap_or_default(),
            reason: "basic_auth and authorization are mutually exclusive".into(),
        }),
        (Some(b), None) => Ok(Some(Auth::Basic {
            username: b.username.clone(),
            password: secret("forward.basic_auth.password", &b.password, &b.password_file)?,
        })),
        (None, Some(a)) => {
            let kind = a.kind.as_deref().unwrap_or("Bearer");
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(ConfigError::Invalid {
                    setting: "forward.authorization.type",
                    value: kind.to_owned(),
                    reason: "only Bearer is supported".into(),
                });
            }
            Ok(Some(Auth::Bearer(secret("forward.authorization.credentials", &a.credentials, &a.credentials_file)?)))
        }
        (None, None) => Ok(None),
    }
}

fn forward_tls(t: Option<&FileTls>) -> Result<TlsOptions, ConfigError> {
    let Some(t) = t else {
        return Ok(TlsOptions::default());
    };
    if let Some(name) = &t.server_name {
        return Err(ConfigError::Invalid {
            setting: "forward.tls_config.server_name",
            value: name.clone(),
            reason: "not supported: the URL's host name is verified; use that name in the URL".into(),
        });
    }
    if t.cert_file.is_some() != t.key_file.is_some() {
        return Err(ConfigError::Invalid {
            setting: "forward.tls_config.cert_file",
            value: String::new(),
            reason: "cert_file and key_file must be given together".into(),
        });
    }
    Ok(TlsOptions {
        ca_file: t.ca_file.clone(),
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
        insecure_skip_verify: t.insecure_skip_verify,
    })
}

/// A forward URL checked, with credentials in its userinfo moved into basic
/// auth (an error if `auth` is already set).
fn forward_url(url: &str, auth: Option<Auth>) -> Result<(String, Option<Auth>), ConfigError> {
    let url = check_url(url)?;
    let (clean, userinfo) = split_userinfo(&url);
    match (userinfo, auth) {
        (None, auth) => Ok((clean, auth)),
        (Some((username, password)), None) => Ok((clean, Some(Auth::Basic { username, password }))),
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            setting: "forward.url",
            value: redact_url(&url),
            reason: "the URL carries credentials and basic_auth/authorization is set too; give one".into(),
        }),
    }
}

impl ServeConfig {
    /// Resolves flags, the config file they name (if any) and defaults.
    pub fn resolve(args: &ServeArgs) -> Result<ServeConfig, ConfigError> {
        let file = match &args.config_file {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or_else(|| file.clone());

        let listen_s = pick(&args.listen, &file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_s.parse::<SocketAddr>().map_err(|e| ConfigError::Invalid {
            setting: "listen",
            value: listen_s.clone(),
            reason: e.to_string(),
        })?;
        let data_dir =
            args.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));

        let retention_time = match pick(&args.retention_time, &file.retention_time) {
            None => Some(Duration::from_secs(15 * 86_400)),
            Some(s) => parse_duration_or_zero("retention.time", &s)?.filter(|d| !d.is_zero()),
        };
        let retention_size = match pick(&args.retention_size, &file.retention_size) {
            None => None,
            Some(s) => Some(parse_size("retention.size", &s)?).filter(|&b| b > 0),
        };
        let out_of_order_window = match pick(&args.out_of_order_window, &file.out_of_order_window) {
            None => Duration::ZERO,
            Some(s) => parse_duration_or_zero("out-of-order-window", &s)?.unwrap_or(Duration::ZERO),
        };
        let wal_sync = match pick(&args.wal_sync, &file.wal_sync) {
            None => SyncPolicy::EveryCommit,
            Some(s) => parse_sync_policy(&s)?,
        };
        let query_timeout = match pick(&args.query_timeout, &file.query.timeout) {
            None => Duration::from_secs(120),
            Some(s) => parse_positive_duration("query.timeout", &s)?,
        };
        let query_max_samples = args.query_max_samples.or(file.query.max_samples).unwrap_or(50_000_000);
        let query_max_concurrency = args.query_max_concurrency.or(file.query.max_concurrency).unwrap_or(20);
        if query_max_concurrency == 0 {
            return Err(ConfigError::Invalid {
                setting: "query.max-concurrency",
                value: "0".into(),
                reason: "at least one query must be able to run".into(),
            });
        }
        let lookback_delta = match pick(&args.query_lookback_delta, &file.query.lookback_delta) {
            None => Duration::from_secs(300),
            Some(s) => parse_positive_duration("query.lookback-delta", &s)?,
        };
        let remote_write_max_body = match pick(&args.remote_write_max_body_size, &file.remote_write.max_body_size) {
            None => 32 << 20,
            Some(s) => size_to_usize("remote-write.max-body-size", &s)?,
        };
        let remote_write_max_decompressed = match &file.remote_write.max_decompressed_size {
            None => (remote_write_max_body.saturating_mul(4)).max(128 << 20),
            Some(s) => size_to_usize("remote_write.max_decompressed_size", s)?,
        };

        let mut forward = Vec::new();
        for (i, f) in file.forward.iter().enumerate() {
            let protocol = match f.protocol.as_deref() {
                None | Some("1.0") | Some("1") | Some("v1") => ForwardProtocol::V1,
                Some("2.0") | Some("2") | Some("v2") => ForwardProtocol::V2,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        setting: "forward.protocol",
                        value: other.to_owned(),
                        reason: "expected \"1.0\" or \"2.0\"".into(),
                    })
                }
            };
            let name = f.name.clone().unwrap_or_else(|| format!("forward-{i}"));
            let (url, auth) = forward_url(&f.url, forward_auth(f)?)?;
            let tls = forward_tls(f.tls_config.as_ref())?;
            forward.push(ForwardTarget { name, url, protocol, headers: f.headers.clone(), auth, tls });
        }
        for (i, url) in args.forward_url.iter().enumerate() {
            let (url, auth) = forward_url(url, None)?;
            forward.push(ForwardTarget {
                name: format!("flag-{i}"),
                url,
                protocol: ForwardProtocol::V1,
                headers: BTreeMap::new(),
                auth,
                tls: TlsOptions::default(),
            });
        }
        let mut names: Vec<&str> = forward.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid {
                setting: "forward.name",
                value: w[0].to_owned(),
                reason: "forward names must be unique".into(),
            });
        }
        if let Some(bad) = forward.iter().find(|f| !valid_forward_name(&f.name)) {
            return Err(ConfigError::Invalid {
                setting: "forward.name",
                value: bad.name.clone(),
                reason: "use letters, digits, '-' and '_' only".into(),
            });
        }

        let log_filter = pick(&args.log_level, &file.log_level).unwrap_or_else(|| "info".to_owned());
        let mut instance = TidemarkOptions::new(data_dir);
        instance.retention_time = retention_time;
        instance.retention_size = retention_size;
        instance.out_of_order_window = out_of_order_window;
        instance.wal_sync = wal_sync;
        instance.query_timeout = query_timeout;
        instance.query_max_samples = query_max_samples;
        instance.query_max_concurrency = query_max_concurrency;
        instance.lookback_delta = lookback_delta;
        instance.receiver.max_body_bytes = remote_write_max_body;
        instance.receiver.max_decompressed_bytes = remote_write_max_decompressed;
        instance.receiver.ha = resolve_ha(args, &file.remote_write.ha)?;
        instance.enable_admin_api = args.web_enable_admin_api || file.web.enable_admin_api.unwrap_or(false);
        instance.max_exemplars = args
            .storage_exemplars_limit
            .or(file.storage.exemplars.max_exemplars)
            .unwrap_or(tidemark_storage::exemplar::DEFAULT_MAX_EXEMPLARS);

        let defaults = ListenOptions::default();
        let web = ListenOptions {
            max_connections: args.web_max_connections.or(file.web.max_connections).unwrap_or(defaults.max_connections),
            read_header_timeout: match pick(&args.web_read_header_timeout, &file.web.read_header_timeout) {
                None => defaults.read_header_timeout,
                Some(s) => parse_positive_duration("web.read-header-timeout", &s)?,
            },
            idle_timeout: match pick(&args.web_idle_timeout, &file.web.idle_timeout) {
                None => defaults.idle_timeout,
                Some(s) => parse_positive_duration("web.idle-timeout", &s)?,
            },
            read_timeout: match pick(&args.web_read_timeout, &file.web.read_timeout) {
                None => defaults.read_timeout,
                Some(s) => parse_positive_duration("web.read-timeout", &s)?,
            },
            drain_timeout: defaults.drain_timeout,
        };
        instance.rules = resolve_rules(args, &file, listen)?;
        let read_defaults = tidemark_remote::read::ReadOptions::default();
        instance.remote_read = tidemark_remote::read::ReadOptions {
            sample_limit: args
                .remote_read_sample_limit
                .or(file.remote_read.sample_limit)
                .unwrap_or(read_defaults.sample_limit),
            max_concurrent: args
                .remote_read_concurrent_limit
                .or(file.remote_read.concurrent_limit)
                .unwrap_or(read_defaults.max_concurrent),
            max_bytes_in_frame: args
                .remote_read_max_bytes_in_frame
                .or(file.remote_read.max_bytes_in_frame)
                .unwrap_or(read_defaults.max_bytes_in_frame),
            ..read_defaults
        };
        let web_config_file = args.web_config_file.clone().or_else(|| file.web.config_file.clone());
        Ok(ServeConfig { listen, instance, forward, log_filter, web_config_file, web })
    }
}

/// Rule and alerting settings: flags win over the file; a repeatable flag
/// given at all replaces the file's list.
fn resolve_rules(args: &ServeArgs, file: &FileConfig, listen: SocketAddr) -> Result<RulesOptions, ConfigError> {
    let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or_else(|| file.clone());
    let list = |flag: &Vec<String>, file: &Vec<String>| if flag.is_empty() { file.clone() } else { flag.clone() };
    let defaults = RulesOptions::default();
    let positive = |setting, v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => parse_positive_duration(setting, &s),
    };
    let mut external_labels = file.external_labels.clone();
    if !args.external_label.is_empty() {
        external_labels.clear();
        for pair in &args.external_label {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(ConfigError::Invalid {
                    setting: "external-label",
                    value: pair.clone(),
                    reason: "expected NAME=VALUE".into(),
                });
            };
            external_labels.insert(k.to_owned(), v.to_owned());
        }
    }
    for (k, v) in &external_labels {
        if !tidemark_storage::NameValidation::Legacy.is_valid_label_name(k) || k.starts_with("__") || v.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "external-label",
                value: format!("{k}={v}"),
                reason: "the name must be a valid label name not starting with __, and the value non-empty".into(),
            });
        }
    }
    let alertmanagers = list(&args.alertmanager_url, &file.alerting.alertmanagers);
    for url in &alertmanagers {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "alertmanager.url",
                value: redact_url(url),
                reason: "expected an http:// or https:// URL".into(),
            });
        }
    }
    let external_url = match pick(&args.web_external_url, &file.web.external_url) {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("http://{}:{}", hostname(), listen.port()),
    };
    Ok(RulesOptions {
        files: list(&args.rules_file, &file.rules.files),
        evaluation_interval: positive(
            "rules.evaluation-interval",
            pick(&args.rules_evaluation_interval, &file.rules.evaluation_interval),
            defaults.evaluation_interval,
        )?,
        query_offset: match pick(&args.rules_query_offset, &file.rules.query_offset) {
            None => defaults.query_offset,
            Some(s) => parse_duration_allow_zero("rules.query-offset", &s)?,
        },
        outage_tolerance: positive(
            "rules.alert.for-outage-tolerance",
            pick(&args.rules_alert_for_outage_tolerance, &file.rules.for_outage_tolerance),
            defaults.outage_tolerance,
        )?,
        for_grace_period: match pick(&args.rules_alert_for_grace_period, &file.rules.for_grace_period) {
            None => defaults.for_grace_period,
            Some(s) => parse_duration_allow_zero("rules.alert.for-grace-period", &s)?,
        },
        resend_delay: positive(
            "rules.alert.resend-delay",
            pick(&args.rules_alert_resend_delay, &file.rules.resend_delay),
            defaults.resend_delay,
        )?,
        external_labels,
        external_url,
        alertmanagers,
        notification_queue_capacity: args
            .alertmanager_notification_queue_capacity
            .or(file.alerting.notification_queue_capacity)
            .unwrap_or(defaults.notification_queue_capacity),
        alertmanager_timeout: positive(
            "alertmanager.timeout",
            pick(&args.alertmanager_timeout, &file.alerting.timeout),
            defaults.alertmanager_timeout,
        )?,
    })
}

/// This machine's host name, for the default external URL (as Prometheus).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: toml_message(&text, &e) })
}

/// The parser's message with a line and column, but without the excerpt of
/// the file that `toml`'s `Display` adds: that line may hold a password.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// Forward names become file names (`<data>/forward/<name>.position`).
fn valid_forward_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_url(url: &str) -> Result<String, ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err(ConfigError::Invalid {
            setting: "forward.url",
            value: redact_url(url),
            reason: "expected an http:// or https:// URL".into(),
        })
    }
}

/// Parses a Prometheus-style duration (`1h30m`, `15d`, `500ms`, `2w`, `1y`)
/// where `0` means "off" (`None`).
pub fn parse_duration_or_zero(setting: &'static str, s: &str) -> Result<Option<Duration>, ConfigError> {
    if s.trim() == "0" {
        return Ok(None);
    }
    parse_positive_duration(setting, s).map(Some)
}

/// Parses a Prometheus-style duration that may be zero (`0`, `0s`).
pub fn parse_duration_allow_zero(setting: &'static str, s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    // `0`, `0s`, `0ms`, `0h`…: zero in any unit.
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !digits.is_empty()
        && digits.bytes().all(|b| b == b'0')
        && matches!(&t[digits.len()..], "" | "ms" | "s" | "m" | "h" | "d" | "w" | "y")
    {
        return Ok(Duration::ZERO);
    }
    parse_positive_duration(setting, s)
}

/// Parses a Prometheus-style duration that must be positive.
pub fn parse_positive_duration(setting: &'static str, s: &str) -> Result<Duration, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { setting, value: s.to_owned(), reason };
    let s = s.trim();
    // The parser reads bare numbers as float seconds through a function that
    // panics on negative or huge values; we only take unit-suffixed forms.
    if s.parse::<f64>().is_ok() {
        return Err(invalid("give a unit, e.g. 30s, 5m, 2h, 15d".into()));
    }
    let d = promql_parser::util::parse_duration(s).map_err(invalid)?;
    if d.is_zero() {
        return Err(invalid("must be greater than zero".into()));
    }
    Ok(d)
}

/// Parses a byte size: a plain number of bytes, or a number with one of the
/// units B, KB, MB, GB, TB, PB (powers of 1024, as Prometheus'
/// `--storage.tsdb.retention.size` reads them; `KiB`… are accepted too).
pub fn parse_size(setting: &'static str, s: &str) -> Result<u64, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { setting, value: s.to_owned(), reason: reason.to_owned() };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| invalid("expected a whole number with an optional unit, e.g. 512MB"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "KB" | "KIB" | "K" => 10,
        "MB" | "MIB" | "M" => 20,
        "GB" | "GIB" | "G" => 30,
        "TB" | "TIB" | "T" => 40,
        "PB" | "PIB" | "P" => 50,
        _ => return Err(invalid("unknown unit; use B, KB, MB, GB, TB or PB")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| invalid("too large"))
}

fn size_to_usize(setting: &'static str, s: &str) -> Result<usize, ConfigError> {
    let b = parse_size(setting, s)?;
    if b == 0 {
        return Err(ConfigError::Invalid { setting, value: s.to_owned(), reason: "must be greater than zero".into() });
    }
    usize::try_from(b).map_err(|_| ConfigError::Invalid { setting, value: s.to_owned(), reason: "too large".into() })
}

fn parse_sync_policy(s: &str) -> Result<SyncPolicy, ConfigError> {
    match s.trim() {
        "every-commit" => Ok(SyncPolicy::EveryCommit),
        "never" => Ok(SyncPolicy::Never),
        other => match parse_positive_duration("wal.sync", other) {
            Ok(d) => Ok(SyncPolicy::Interval(d)),
            Err(_) => Err(ConfigError::Invalid {
                setting: "wal.sync",
                value: other.to_owned(),
                reason: "expected every-commit, never, or an interval such as 1s".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut ServeArgs)) -> ServeArgs {
        let mut a = ServeArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn defaults_listen_on_loopback_9201_with_15d_retention() {
        let c = ServeConfig::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9201".parse().unwrap());
        assert_eq!(c.data_dir(), Path::new("./data"));
        assert_eq!(c.instance.retention_time, Some(Duration::from_secs(15 * 86_400)));
        assert_eq!(c.instance.retention_size, None);
        assert_eq!(c.instance.wal_sync, SyncPolicy::EveryCommit);
        assert_eq!(c.instance.query_timeout, Duration::from_secs(120));
        assert_eq!(c.instance.lookback_delta, Duration::from_secs(300));
        assert_eq!(c.instance.query_max_concurrency, 20);
        assert!(c.forward.is_empty());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:7000"
retention_time = "30d"
retention_size = "2GB"
wal_sync = "1s"
[query]
timeout = "30s"
max_concurrency = 4
[[forward]]
name = "vm"
url = "http://127.0.0.1:8428/api/v1/write"
protocol = "2.0"
headers = { "X-Scope-OrgID" = "a" }
"#,
        )
        .unwrap();
        let c = ServeConfig::resolve(&args(|a| {
            a.config_file = Some(path.clone());
            a.listen = Some("127.0.0.1:7001".into());
        }))
        .unwrap();
        assert_eq!(c.listen.port(), 7001);
        assert_eq!(c.instance.retention_time, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(c.instance.retention_size, Some(2 << 30));
        assert_eq!(c.instance.wal_sync, SyncPolicy::Interval(Duration::from_secs(1)));
        assert_eq!(c.instance.query_timeout, Duration::from_secs(30));
        assert_eq!(c.instance.query_max_concurrency, 4);
        assert_eq!(c.forward.len(), 1);
        assert_eq!(c.forward[0].protocol, ForwardProtocol::V2);
        assert_eq!(c.forward[0].headers["X-Scope-OrgID"], "a");
    }

    #[test]
    fn the_exemplar_limit_comes_from_the_flag_the_file_or_the_default() {
        let c = ServeConfig::resolve(&args(|_| {})).unwrap();
        assert_eq!(c.instance.max_exemplars, 100_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[storage.exemplars]\nmax_exemplars = 0\n").unwrap();
        let c = ServeConfig::resolve(&args(|a| a.config_file = Some(path.clone()))).unwrap();
        assert_eq!(c.instance.max_exemplars, 0);
        let c = ServeConfig::resolve(&args(|a| {
            a.config_file = Some(path.clone());
            a.storage_exemplars_limit = Some(5);
        }))
        .unwrap();
        assert_eq!(c.instance.max_exemplars, 5);
        std::fs::write(&path, "[storage.exemplars]\nmax = 1\n").unwrap();
        assert!(ServeConfig::resolve(&args(|a| a.config_file = Some(path.clone()))).is_err());
    }

    #[test]
    fn zero_retention_keeps_data_forever() {
        let c = ServeConfig::resolve(&args(|a| a.retention_time = Some("0".into()))).unwrap();
        assert_eq!(c.instance.retention_time, None);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases: Vec<(ServeArgs, &str)> = vec![
            (args(|a| a.listen = Some("nowhere".into())), "listen"),
            (args(|a| a.retention_time = Some("-5d".into())), "retention.time"),
            (args(|a| a.retention_time = Some("1e300".into())), "retention.time"),
            (args(|a| a.retention_size = Some("12XB".into())), "retention.size"),
            (args(|a| a.retention_size = Some("99999999999PB".into())), "retention.size"),
            (args(|a| a.wal_sync = Some("sometimes".into())), "wal.sync"),
            (args(|a| a.query_timeout = Some("0".into())), "query.timeout"),
            (args(|a| a.query_max_concurrency = Some(0)), "query.max-concurrency"),
            (args(|a| a.forward_url = vec!["ftp://x".into()]), "forward.url"),
        ];
        for (a, setting) in cases {
            let e = ServeConfig::resolve(&a).unwrap_err();
            assert!(e.to_string().contains(setting), "{e} should name {setting}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_with_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nretention = \"1d\"\n").unwrap();
        let e = ServeConfig::resolve(&args(|a| a.config_file = Some(path.clone()))).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("retention"), "{e}");
    }

    #[test]
    fn forward_url_credentials_become_basic_auth_and_are_not_printed() {
        let c = ServeConfig::resolve(&args(|a| {
            a.forward_url = vec!["http://bob:hunter2@127.0.0.1:9/api/v1/write?api_key=k3y".into()];
        }))
        .unwrap();
        let f = &c.forward[0];
        assert_eq!(f.url, "http://127.0.0.1:9/api/v1/write?api_key=k3y");
        assert_eq!(f.auth, Some(Auth::Basic { username: "bob".into(), password: "hunter2".into() }));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("k3y"), "{shown}");
        // A bad scheme's error does not echo the password either.
        let e = ServeConfig::resolve(&args(|a| a.forward_url = vec!["ftp://bob:hunter2@h/x".into()])).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn forward_auth_and_tls_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "from-file\n").unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[web]
enable_admin_api = true
max_connections = 7
read_header_timeout = "3s"
idle_timeout = "1m"
config_file = "web.yml"
[[forward]]
name = "a"
url = "https://h/api/v1/write"
basic_auth = {{ username = "u", password_file = "{}" }}
tls_config = {{ ca_file = "/ca.crt", insecure_skip_verify = true }}
[[forward]]
name = "b"
url = "https://h/api/v1/write"
headers = {{ "Authorization" = "Bearer abc", "X-Scope-OrgID" = "t" }}
[[forward]]
name = "c"
url = "https://h/api/v1/write"
authorization = {{ credentials = "t0k3n-xyz" }}
"#,
                pass.display()
            ),
        )
        .unwrap();
        let c = ServeConfig::resolve(&args(|a| a.config_file = Some(path.clone()))).unwrap();
        assert!(c.instance.enable_admin_api);
        assert_eq!(c.web.max_connections, 7);
        assert_eq!(c.web.read_header_timeout, Duration::from_secs(3));
        assert_eq!(c.web.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.web_config_file.as_deref(), Some(Path::new("web.yml")));
        assert_eq!(c.forward[0].auth, Some(Auth::Basic { username: "u".into(), password: "from-file".into() }));
        assert_eq!(c.forward[0].tls.ca_file.as_deref(), Some(Path::new("/ca.crt")));
        assert!(c.forward[0].tls.insecure_skip_verify);
        assert_eq!(c.forward[2].auth, Some(Auth::Bearer("t0k3n-xyz".into())));
        let shown = format!("{:?}", c.forward);
        for secret in ["from-file", "abc", "t0k3n-xyz"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("X-Scope-OrgID"), "{shown}");
        // Defaults: admin API off, Prometheus' connection limit.
        let d = ServeConfig::resolve(&ServeArgs::default()).unwrap();
        assert!(!d.instance.enable_admin_api);
        assert_eq!(d.web, ListenOptions::default());
        let both = ServeConfig::resolve(&args(|a| {
            a.config_file = Some(path.clone());
            a.forward_url = vec!["http://x:y@h/".into()];
        }));
        assert!(both.is_ok(), "flag targets are separate from file targets");
    }

    #[test]
    fn a_malformed_file_is_reported_without_echoing_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "[[forward]]\nurl = \"http://h/\"\nbasic_auth = { username = \"u\", password = \"hunter2 }\n",
        )
        .unwrap();
        let e = ServeConfig::resolve(&args(|a| a.config_file = Some(path.clone()))).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!(parse_size("s", "512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("s", "1KiB").unwrap(), 1024);
        assert_eq!(parse_size("s", "10").unwrap(), 10);
        assert!(parse_size("s", "").is_err());
        assert!(parse_size("s", "1.5GB").is_err());
    }

    #[test]
    fn rules_and_alerting_settings_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            r#"
external_labels = { cluster = "eu-1", replica = "a" }
[rules]
files = ["rules/*.yml", "more.yml"]
evaluation_interval = "30s"
for_grace_period = "0s"
[alerting]
alertmanagers = ["http://127.0.0.1:9093"]
timeout = "3s"
[web]
external_url = "https://tm.example.com/prefix/"
"#,
        )
        .unwrap();
        let c = ServeConfig::resolve(&args(|a| a.config_file = Some(path.clone()))).unwrap();
        let r = &c.instance.rules;
        assert_eq!(r.files, vec!["rules/*.yml", "more.yml"]);
        assert_eq!(r.evaluation_interval, Duration::from_secs(30));
        assert_eq!(r.for_grace_period, Duration::ZERO);
        assert_eq!(r.outage_tolerance, Duration::from_secs(3600));
        assert_eq!(r.alertmanagers, vec!["http://127.0.0.1:9093"]);
        assert_eq!(r.alertmanager_timeout, Duration::from_secs(3));
        assert_eq!(r.external_url, "https://tm.example.com/prefix");
        assert_eq!(r.external_labels.len(), 2);

        // Flags win; a repeatable flag replaces the file's list.
        let c = ServeConfig::resolve(&args(|a| {
            a.config_file = Some(path.clone());
            a.rules_file = vec!["only.yml".into()];
            a.external_label = vec!["cluster=us-2".into()];
            a.rules_evaluation_interval = Some("15s".into());
        }))
        .unwrap();
        assert_eq!(c.instance.rules.files, vec!["only.yml"]);
        assert_eq!(
            c.instance.rules.external_labels.into_iter().collect::<Vec<_>>(),
            vec![("cluster".into(), "us-2".into())]
        );
        assert_eq!(c.instance.rules.evaluation_interval, Duration::from_secs(15));

        // Defaults without either.
        let c = ServeConfig::resolve(&ServeArgs::default()).unwrap();
        assert!(
            c.instance.rules.external_url.starts_with("http://") && c.instance.rules.external_url.ends_with(":9201")
        );

        for (f, why) in [
            (args(|a| a.external_label = vec!["novalue".into()]), "NAME=VALUE"),
            (args(|a| a.external_label = vec!["__x=1".into()]), "valid label name"),
            (args(|a| a.alertmanager_url = vec!["127.0.0.1:9093".into()]), "http://"),
            (args(|a| a.rules_evaluation_interval = Some("0s".into())), "rules.evaluation-interval"),
        ] {
            let e = ServeConfig::resolve(&f).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn ha_deduplication_is_on_with_a_replica_label_from_a_flag_or_the_file() {
        assert_eq!(ServeConfig::resolve(&ServeArgs::default()).unwrap().instance.receiver.ha, None);
        let c = ServeConfig::resolve(&args(|a| a.ha_replica_label = Some("__replica__".into()))).unwrap();
        assert_eq!(c.instance.receiver.ha, Some(HaOptions::default()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "[remote_write.ha]\nreplica_label = \"replica\"\ncluster_label = \"dc\"\nfailover_timeout = \"1m\"\n",
        )
        .unwrap();
        let c = ServeConfig::resolve(&args(|a| {
            a.config_file = Some(path.clone());
            a.ha_failover_timeout = Some("5s".into());
        }))
        .unwrap();
        let ha = c.instance.receiver.ha.expect("on");
        assert_eq!(
            (ha.replica_label.as_str(), ha.cluster_label.as_str(), ha.failover_timeout),
            ("replica", "dc", Duration::from_secs(5))
        );
        for (f, why) in [
            (args(|a| a.ha_cluster_label = Some("dc".into())), "set --ha.replica-label"),
            (args(|a| a.ha_failover_timeout = Some("5s".into())), "set --ha.replica-label"),
            (args(|a| a.ha_replica_label = Some("cluster".into())), "must differ"),
            (args(|a| a.ha_replica_label = Some(String::new())), "ha.replica-label"),
            (
                args(|a| {
                    a.ha_replica_label = Some("r".into());
                    a.ha_failover_timeout = Some("0s".into());
                }),
                "ha.failover-timeout",
            ),
        ] {
            let e = ServeConfig::resolve(&f).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn remote_read_limits_from_flags_file_and_defaults() {
        let c = ServeConfig::resolve(&ServeArgs::default()).unwrap();
        assert_eq!((c.instance.remote_read.sample_limit, c.instance.remote_read.max_concurrent), (50_000_000, 10));
        assert_eq!(c.instance.remote_read.max_bytes_in_frame, 1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[remote_read]\nsample_limit = 7\nconcurrent_limit = 0\nmax_bytes_in_frame = 4096\n")
            .unwrap();
        let c = ServeConfig::resolve(&args(|a| {
            a.config_file = Some(path.clone());
            a.remote_read_sample_limit = Some(0);
        }))
        .unwrap();
        let r = &c.instance.remote_read;
        assert_eq!((r.sample_limit, r.max_concurrent, r.max_bytes_in_frame), (0, 0, 4096), "the flag wins");
        std::fs::write(&path, "[remote_read]\nsample_limits = 7\n").unwrap();
        assert!(ServeConfig::resolve(&args(|a| a.config_file = Some(path.clone()))).is_err(), "unknown keys refused");
    }
}

//! The server's web layer: what `tidemark serve` wraps around
//! [`crate::Tidemark::router`] before a byte reaches it.
//!
//! - [`config`]: the `--web.config.file` format (Prometheus'
//!   exporter-toolkit web configuration: TLS, HTTP/2, response headers,
//!   basic auth users).
//! - [`tls`]: that configuration as a rustls server configuration.
//! - [`auth`]: basic authentication against bcrypt hashes, with a verdict
//!   cache; also an axum middleware for embedders.
//! - [`listener`]: the accept loop: connection limit, TLS handshake,
//!   header-read, body-read and idle timeouts, graceful shutdown with a
//!   bounded drain.
//! - [`deadline`]: a request body that must arrive by a deadline.
//!
//! The web configuration file is re-read when it or a file it names
//! changes (checked at every new connection, by modification time and
//! size), so certificates and users can be rotated without a restart; a
//! changed file that is invalid is logged at `error` and the previous
//! configuration stays in force. HTTP/2 on/off applies to new connections.

pub mod auth;
pub mod config;
pub mod deadline;
pub mod listener;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

pub use auth::{require_basic_auth, BasicAuth};
pub use config::{WebConfig, WebConfigError};
pub use listener::{serve, ListenOptions};

/// One loaded web configuration, ready to serve connections with.
pub struct Loaded {
    /// The TLS acceptor, or `None` for plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Basic auth (disabled when no users are configured).
    pub auth: Arc<BasicAuth>,
    /// Headers added to every response.
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
    /// The checked configuration it came from.
    pub config: WebConfig,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds bcrypt hashes only (never passwords) and file
        // names; inline keys are not printed.
        f.debug_struct("Loaded")
            .field("tls", &self.tls.is_some())
            .field("basic_auth", &self.auth.is_enabled())
            .field("http2", &self.config.http2)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Builds the acceptor and the authenticator of `config` (reads the PEM files).
    pub fn new(config: WebConfig) -> Result<Loaded, WebConfigError> {
        let tls = match &config.tls {
            None => None,
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(t, config.http2)?))),
        };
        let headers = config
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((axum::http::HeaderName::try_from(k.as_str()).ok()?, axum::http::HeaderValue::from_str(v).ok()?))
            })
            .collect();
        Ok(Loaded { tls, auth: Arc::new(BasicAuth::new(config.basic_auth_users.clone())), headers, config })
    }

    /// Plain HTTP, no authentication (no `--web.config.file`).
    pub fn plain() -> Loaded {
        Loaded {
            tls: None,
            auth: Arc::new(BasicAuth::new(Default::default())),
            headers: Vec::new(),
            config: WebConfig { http2: true, ..WebConfig::default() },
        }
    }

    /// `"https"` or `"http"`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// The web configuration in force, reloaded when its files change.
#[derive(Debug)]
pub struct WebState {
    path: Option<PathBuf>,
    current: Mutex<(Arc<Loaded>, Vec<Stamp>)>,
}

/// A file's modification time and size.
type Stamp = (PathBuf, Option<(SystemTime, u64)>);

fn stamp(p: &Path) -> Stamp {
    let meta = std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    (p.to_owned(), meta)
}

fn stamps(path: &Path, config: Option<&WebConfig>) -> Vec<Stamp> {
    let mut out = vec![stamp(path)];
    if let Some(t) = config.and_then(|c| c.tls.as_ref()) {
        for src in [Some(&t.cert), Some(&t.key), t.client_ca.as_ref()].into_iter().flatten() {
            if let config::PemSource::File(p) = src {
                out.push(stamp(p));
            }
        }
    }
    out
}

impl WebState {
    /// Loads `path` (an error stops the server from starting), or plain
    /// HTTP without authentication when `None`.
    pub fn load(path: Option<&Path>) -> Result<WebState, WebConfigError> {
        let Some(path) = path else {
            return Ok(WebState { path: None, current: Mutex::new((Arc::new(Loaded::plain()), Vec::new())) });
        };
        let before = stamps(path, None);
        let loaded = Loaded::new(WebConfig::load(path)?)?;
        let mut st = stamps(path, Some(&loaded.config));
        st[0] = before[0].clone();
        Ok(WebState { path: Some(path.to_owned()), current: Mutex::new((Arc::new(loaded), st)) })
    }

    /// The configuration for a new connection: reloaded first if a file
    /// changed since the last load (an invalid new version is logged and
    /// the previous one kept).
    pub fn current(&self) -> Arc<Loaded> {
        let Some(path) = &self.path else {
            return self.current.lock().0.clone();
        };
        let mut cur = self.current.lock();
        let changed = cur.1.iter().any(|(p, old)| stamp(p).1 != *old);
        if changed {
            let now = stamps(path, Some(&cur.0.config));
            match WebConfig::load(path).and_then(Loaded::new) {
                Ok(loaded) => {
                    tracing::info!(file = %path.display(), "web config reloaded");
                    let mut st = stamps(path, Some(&loaded.config));
                    st[0] = now[0].clone();
                    *cur = (Arc::new(loaded), st);
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "web config changed but cannot be used; keeping the previous one");
                    // Remember the broken version so it is not re-read for every connection.
                    cur.1 = now;
                }
            }
        }
        cur.0.clone()
    }
}

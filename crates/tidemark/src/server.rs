//! `tidemark serve`: a [`Tidemark`] behind a TCP listener (with the web
//! configuration, connection limit and timeouts of [`crate::web`]), with
//! forwarders, a startup summary, and a graceful shutdown on SIGINT/SIGTERM
//! that stops accepting requests, cancels the queries in flight (they answer
//! `canceled`), gives other requests [`SHUTDOWN_DRAIN`] to finish, stops the
//! forwarders (persisting their positions) and closes the database (syncing
//! the WAL).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tidemark_remote::forward::Protocol;
use tidemark_remote::ForwarderOptions;

use crate::config::{ForwardProtocol, ServeConfig};
use crate::instance::{OpenError, Tidemark};
use crate::web::{WebConfigError, WebState};

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The web configuration file cannot be used.
    #[error(transparent)]
    Web(#[from] WebConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A forwarder could not be started.
    #[error("cannot start forwarder {name}: {source}")]
    Forward {
        /// The forwarder's name.
        name: String,
        /// Why.
        source: tidemark_remote::forward::ForwardError,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// Closing the database failed (the WAL may not have been synced).
    #[error("closing the database failed: {0}")]
    Close(#[from] tidemark_storage::Error),
}

/// Runs the server until `shutdown` completes, then shuts down gracefully.
pub async fn serve(config: ServeConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
    // Before anything else: a broken TLS or auth setup must not start an
    // unprotected server.
    let web = Arc::new(WebState::load(config.web_config_file.as_deref())?);
    let opts = config.instance.clone();
    let tm = tokio::task::spawn_blocking(move || Tidemark::open(opts))
        .await
        .map_err(|e| std::io::Error::other(format!("open task failed: {e}")))??;

    for target in &config.forward {
        let mut o = ForwarderOptions::new(target.name.clone(), target.url.clone());
        o.protocol = match target.protocol {
            ForwardProtocol::V1 => Protocol::V1,
            ForwardProtocol::V2 => Protocol::V2,
        };
        o.headers = target.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        o.auth = target.auth.clone();
        o.tls = target.tls.clone();
        let tm2 = tm.clone();
        tokio::task::spawn_blocking(move || tm2.start_forwarder(o))
            .await
            .map_err(|e| std::io::Error::other(format!("forwarder start task failed: {e}")))?
            .map_err(|source| ServeError::Forward { name: target.name.clone(), source })?;
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let local = listener.local_addr()?;
    let stats = tm.db().stats();
    let loaded = web.current();
    let scheme = loaded.scheme();
    tracing::info!(
        listen = %local,
        data_dir = %config.data_dir().display(),
        retention_time = %config.instance.retention_time.map(|d| promql_parser::util::display_duration(&d)).unwrap_or_else(|| "forever".into()),
        retention_size = %config.instance.retention_size.map(|b| format!("{b}B")).unwrap_or_else(|| "none".into()),
        series_loaded = stats.head_series,
        blocks = stats.blocks,
        replay_seconds = (tm.opened_in().as_secs_f64() * 1000.0).round() / 1000.0,
        forwarders = config.forward.len(),
        rule_groups = tm.rules().groups().len(),
        alertmanagers = config.instance.rules.alertmanagers.len(),
        tls = loaded.tls.is_some(),
        basic_auth = loaded.auth.is_enabled(),
        admin_api = config.instance.enable_admin_api,
        max_connections = config.web.max_connections,
        "tidemark serving: remote write at {scheme}://{local}/api/v1/write, Prometheus API at {scheme}://{local}/"
    );
    drop(loaded);

    // SIGHUP re-reads the rule files, as Prometheus re-reads its configuration.
    #[cfg(unix)]
    {
        let tm = tm.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("received SIGHUP: reloading rules");
                        let tm = tm.clone();
                        let _ = tokio::task::spawn_blocking(move || tm.reload_rules()).await;
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "cannot listen for SIGHUP: reloads only through POST /-/reload"),
        }
    }

    let router = tm.router();
    // On the signal, cancel every query first; the listener then drains the
    // other requests for at most `SHUTDOWN_DRAIN`.
    let queries = tm.clone();
    let shutdown = async move {
        shutdown.await;
        queries.cancel_queries();
    };
    let listen = crate::web::ListenOptions { drain_timeout: SHUTDOWN_DRAIN, ..config.web.clone() };
    let served = crate::web::serve(listener, router, web, listen, shutdown).await;
    tracing::info!("shutting down: closing the database");
    let closing = tm.clone();
    let closed = tokio::task::spawn_blocking(move || closing.close())
        .await
        .map_err(|e| std::io::Error::other(format!("close task failed: {e}")))?;
    served?;
    closed?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}

/// How long requests still open after a shutdown signal (queries are
/// cancelled at once) may take before their connections are closed.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// How long blocking work still running when the server has stopped may
/// take before the process exits anyway (cancelled queries stop within
/// milliseconds; the database is closed before this starts).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

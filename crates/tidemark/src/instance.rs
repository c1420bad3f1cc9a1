//! [`Tidemark`]: one database, its PromQL engine, its remote-write receiver
//! and its HTTP API, assembled for a service to embed.
//!
//! `tidemark serve` is this type plus a listener, signal handling and
//! forwarders; a service that already runs an axum server mounts
//! [`Tidemark::router`] inside its own instead.
//!
//! ```
//! use tidemark::{Tidemark, TidemarkOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let tm = Tidemark::open(TidemarkOptions::new(dir.path())).unwrap();
//!
//! // Record a sample directly through the storage API...
//! let up = tidemark::storage::Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
//! let mut app = tm.db().appender();
//! app.append(&up, 1_700_000_000_000, 1.0).unwrap();
//! app.commit().unwrap();
//!
//! // ...and answer PromQL over it.
//! let result = tm.instant_query("sum by (job) (up)", 1_700_000_010_000).unwrap();
//! match result.value {
//!     tidemark::promql::Value::Vector(v) => assert_eq!(v[0].v, 1.0),
//!     other => panic!("expected a vector, got {other:?}"),
//! }
//!
//! // `tm.router()` is an axum Router with remote write and the Prometheus
//! // HTTP API, ready to be served or nested in another router.
//! let _router: axum::Router = tm.router();
//! tm.close().unwrap();
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tidemark_promql::{CancellationToken, Engine, EngineOptions, QueryLimits, QueryResult};
use tidemark_remote::forward::ForwardError;
use tidemark_remote::read::{ReadOptions, Reader};
use tidemark_remote::{Forwarder, ForwarderOptions, ForwarderStats, MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::{Db, SyncPolicy};

use crate::api::{self, ApiOptions, ApiState};
use crate::metrics::{
    self, ForwarderCollector, ForwarderList, NotifierCollector, QueryCollector, ReceiverCollector, RulesCollector,
    ServerMetrics,
};
use crate::rules::{ReloadStatus, RuleSources, RulesError, RulesOptions};
use tidemark_rules::{GroupSpec, Notifier, NotifierOptions, RuleEnv, RuleManager};

/// Options of an embedded [`Tidemark`]. Defaults match `tidemark serve`.
#[derive(Debug, Clone)]
pub struct TidemarkOptions {
    /// Data directory; `None` keeps everything in memory (no WAL, no blocks).
    pub data_dir: Option<PathBuf>,
    /// Time retention (default 15 days; `None` keeps data forever).
    pub retention_time: Option<Duration>,
    /// Size retention in bytes (default none).
    pub retention_size: Option<u64>,
    /// Out-of-order window (default zero: disabled).
    pub out_of_order_window: Duration,
    /// WAL fsync policy (default every commit).
    pub wal_sync: SyncPolicy,
    /// Query timeout (default 2 minutes).
    pub query_timeout: Duration,
    /// Most samples one query may hold (default 50 million).
    pub query_max_samples: usize,
    /// Most queries evaluated at once (default 20); more wait in a queue
    /// within their timeout.
    pub query_max_concurrency: usize,
    /// Limits on the length and shape of a query (defaults: see
    /// [`tidemark_promql::QueryLimits`] and `docs/limits.md`).
    pub query_limits: QueryLimits,
    /// Lookback delta (default 5 minutes).
    pub lookback_delta: Duration,
    /// Remote-write limits.
    pub receiver: ReceiverOptions,
    /// Serve `/api/v1/admin/*` (default false, as Prometheus without
    /// `--web.enable-admin-api`).
    pub enable_admin_api: bool,
    /// Rule evaluation and alert notification (default: no rules).
    pub rules: RulesOptions,
    /// Most exemplars kept (default 100 000; 0 disables exemplar storage):
    /// see [`tidemark_storage::Options::max_exemplars`].
    pub max_exemplars: usize,
    /// Remote read limits (`/api/v1/read`); the external labels are those
    /// of `rules`. Default: see [`ReadOptions`].
    pub remote_read: ReadOptions,
}

impl TidemarkOptions {
    /// Defaults, storing in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> TidemarkOptions {
        TidemarkOptions { data_dir: Some(data_dir.into()), ..TidemarkOptions::in_memory() }
    }

    /// Defaults, in memory only.
    pub fn in_memory() -> TidemarkOptions {
        TidemarkOptions {
            data_dir: None,
            retention_time: Some(Duration::from_secs(15 * 86_400)),
            retention_size: None,
            out_of_order_window: Duration::ZERO,
            wal_sync: SyncPolicy::EveryCommit,
            query_timeout: Duration::from_secs(120),
            query_max_samples: 50_000_000,
            query_max_concurrency: 20,
            query_limits: QueryLimits::default(),
            lookback_delta: Duration::from_secs(300),
            receiver: ReceiverOptions::default(),
            enable_admin_api: false,
            rules: RulesOptions::default(),
            max_exemplars: tidemark_storage::exemplar::DEFAULT_MAX_EXEMPLARS,
            remote_read: ReadOptions::default(),
        }
    }
}

/// Why [`Tidemark::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Storage(#[from] tidemark_storage::Error),
    /// The rule files are invalid.
    #[error("cannot load rules: {0}")]
    Rules(#[from] RulesError),
    /// The Alertmanager settings are invalid.
    #[error("cannot start the notifier: {0}")]
    Notifier(#[from] tidemark_rules::NotifierError),
}

/// A database with its query engine, receiver and HTTP API.
#[derive(Debug, Clone)]
pub struct Tidemark {
    db: Arc<Db>,
    engine: Arc<Engine>,
    metadata: Arc<MetadataStore>,
    receiver: Arc<Receiver>,
    reader: Reader,
    metrics: Arc<ServerMetrics>,
    forwarders: ForwarderList,
    api_options: ApiOptions,
    opened_in: Duration,
    /// Parent of every HTTP query's cancellation token.
    queries: CancellationToken,
    rules: Arc<RuleSources>,
    notifier: Option<Arc<Notifier>>,
}

impl Tidemark {
    /// Opens (creating if needed) the database and assembles the rest.
    /// Opening replays the WAL, which takes a while for a large head.
    pub fn open(opts: TidemarkOptions) -> Result<Tidemark, OpenError> {
        let started = std::time::Instant::now();
        let builder = match &opts.data_dir {
            Some(dir) => Db::builder(dir.clone()),
            None => Db::builder_in_memory(),
        };
        let db = Arc::new(
            builder
                .retention_time(opts.retention_time)
                .retention_size(opts.retention_size)
                .out_of_order_window(opts.out_of_order_window)
                .wal_sync(opts.wal_sync)
                .max_exemplars(opts.max_exemplars)
                .open()?,
        );
        let opened_in = started.elapsed();
        let engine = Arc::new(Engine::new(EngineOptions {
            lookback_delta: opts.lookback_delta,
            max_samples: opts.query_max_samples,
            timeout: Some(opts.query_timeout),
            max_concurrency: opts.query_max_concurrency,
            limits: opts.query_limits,
            default_subquery_step: opts.rules.evaluation_interval,
            ..EngineOptions::default()
        }));
        let metadata = Arc::new(MetadataStore::new());
        let receiver = Arc::new(Receiver::new(db.clone(), metadata.clone(), opts.receiver.clone()));
        let forwarders = ForwarderList::default();
        let mut server_metrics = ServerMetrics::new(db.clone());
        server_metrics.register_collector(Box::new(ReceiverCollector(receiver.clone())));
        server_metrics.register_collector(Box::new(ForwarderCollector(forwarders.clone())));
        server_metrics.register_collector(Box::new(QueryCollector(engine.clone())));
        let notifier = match opts.rules.alertmanagers.is_empty() {
            true => None,
            false => {
                let mut n = NotifierOptions::new(opts.rules.alertmanagers.iter().cloned());
                n.queue_capacity = opts.rules.notification_queue_capacity;
                n.timeout = opts.rules.alertmanager_timeout;
                n.external_labels = opts.rules.external_labels.clone();
                match Notifier::start(n) {
                    Ok(n) => Some(Arc::new(n)),
                    Err(e) => {
                        let _ = db.close();
                        return Err(e.into());
                    }
                }
            }
        };
        let mut env = rule_env(&db, &engine, &opts.rules);
        env.sink = notifier.clone().map(|n| n as Arc<dyn tidemark_rules::AlertSink>);
        let rules = Arc::new(RuleSources::new(Arc::new(RuleManager::new(env)), opts.rules.files.clone()));
        server_metrics.register_collector(Box::new(RulesCollector::new(rules.manager.clone())));
        server_metrics.register_collector(Box::new(NotifierCollector {
            notifier: notifier.clone(),
            reload: rules.status.clone(),
        }));
        let external_labels: Vec<(String, String)> =
            opts.rules.external_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let reader = Reader::new(
            db.clone(),
            ReadOptions {
                external_labels: external_labels.clone(),
                regex_rewrite: Some(tidemark_promql::regex_compat::ascii_perl_classes),
                ..opts.remote_read.clone()
            },
        );
        server_metrics.register_collector(Box::new(api::ReadCollector(reader.clone())));
        let metrics = Arc::new(server_metrics);
        let api_options = ApiOptions {
            query_timeout: opts.query_timeout,
            lookback_delta: opts.lookback_delta,
            data_dir: opts.data_dir.clone(),
            max_remote_write_body: opts.receiver.max_body_bytes,
            storage_retention: retention_text(opts.retention_time, opts.retention_size),
            max_concurrency: opts.query_max_concurrency,
            enable_admin_api: opts.enable_admin_api,
            external_labels,
            remote_read: opts.remote_read.clone(),
            ..ApiOptions::default()
        };
        let queries = CancellationToken::new();
        if !opts.rules.files.is_empty() {
            if let Err(e) = rules.reload() {
                rules.manager.stop();
                if let Some(n) = &notifier {
                    n.stop();
                }
                let _ = db.close();
                return Err(e.into());
            }
        } else {
            rules.status.record(&Ok(()));
        }
        Ok(Tidemark {
            db,
            engine,
            metadata,
            receiver,
            reader,
            metrics,
            forwarders,
            api_options,
            opened_in,
            queries,
            rules,
            notifier,
        })
    }

    /// Starts forwarding everything this database ingests (from its WAL)
    /// to a remote-write endpoint. The forwarder's statistics appear on
    /// `/metrics`; [`Tidemark::close`] stops it, persisting its position.
    /// Needs a data directory (an in-memory instance has no WAL).
    pub fn start_forwarder(&self, opts: ForwarderOptions) -> Result<(), ForwardError> {
        let f = Forwarder::start(&self.db, opts)?;
        self.forwarders.lock().push(f);
        Ok(())
    }

    /// Statistics of the running forwarders, by name.
    pub fn forwarder_stats(&self) -> Vec<(String, ForwarderStats)> {
        self.forwarders.lock().iter().map(|f| (f.name().to_owned(), f.stats())).collect()
    }

    /// The rule manager: running groups, their rules, alerts and statistics.
    pub fn rules(&self) -> &Arc<RuleManager> {
        &self.rules.manager
    }

    /// Replaces the rule files (globs) and loads them with the groups set in
    /// code. On error nothing changes and the old rules keep running.
    /// Returns the number of rules loaded.
    pub fn load_rule_files(&self, patterns: &[String]) -> Result<usize, RulesError> {
        self.rules.set_files(patterns.to_vec())
    }

    /// Replaces the rule groups built in code (they run beside those of the
    /// rule files). On error nothing changes.
    ///
    /// ```
    /// use tidemark::rules::{GroupSpec, RuleSpec};
    /// let tm = tidemark::Tidemark::open(tidemark::TidemarkOptions::in_memory()).unwrap();
    /// tm.set_rule_groups(vec![GroupSpec::new("slo").rule(RuleSpec::recording("one", "vector(1)"))]).unwrap();
    /// assert_eq!(tm.rules().groups()[0].name(), "slo");
    /// tm.close().unwrap();
    /// ```
    pub fn set_rule_groups(&self, groups: Vec<GroupSpec>) -> Result<usize, RulesError> {
        self.rules.set_code_groups(groups)
    }

    /// Re-reads the rule files (what SIGHUP and `POST /-/reload` do). On
    /// error the old rules keep running; the outcome shows on `/metrics`.
    pub fn reload_rules(&self) -> Result<usize, RulesError> {
        self.rules.reload()
    }

    /// The Alertmanager notifier, if `--alertmanager.url`s are set.
    pub fn notifier(&self) -> Option<&Arc<Notifier>> {
        self.notifier.as_ref()
    }

    /// The outcome of the last rule (re)load.
    pub fn reload_status(&self) -> &Arc<ReloadStatus> {
        &self.rules.status
    }

    /// The database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The PromQL engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The remote-write receiver.
    pub fn receiver(&self) -> &Arc<Receiver> {
        &self.receiver
    }

    /// The remote read handler.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Metric metadata received by remote write.
    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.metadata
    }

    /// The server's own metrics.
    pub fn metrics(&self) -> &Arc<ServerMetrics> {
        &self.metrics
    }

    /// How long opening the database (WAL replay included) took.
    pub fn opened_in(&self) -> Duration {
        self.opened_in
    }

    /// Evaluates an instant query at `t_ms` (milliseconds since the epoch).
    pub fn instant_query(&self, query: &str, t_ms: i64) -> Result<QueryResult, tidemark_promql::Error> {
        self.engine.instant_query(&*self.db, query, t_ms)
    }

    /// Evaluates a range query from `start_ms` to `end_ms` every `step_ms`.
    pub fn range_query(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, tidemark_promql::Error> {
        self.engine.range_query(&*self.db, query, start_ms, end_ms, step_ms)
    }

    /// The HTTP layer: remote write (`/api/v1/write`), the Prometheus HTTP
    /// API, `/federate`, health endpoints and `/metrics`, with every request
    /// counted and timed by handler.
    pub fn router(&self) -> axum::Router {
        let state = Arc::new(ApiState {
            db: self.db.clone(),
            engine: self.engine.clone(),
            metadata: self.metadata.clone(),
            receiver: self.receiver.clone(),
            reader: self.reader.clone(),
            options: self.api_options.clone(),
            shutdown: self.queries.clone(),
            rules: Some(self.rules.manager.clone()),
        });
        let metrics_for_route = self.metrics.clone();
        let for_reload = self.clone();
        api::router(state)
            .route(
                "/-/reload",
                axum::routing::post(move || reload_handler(for_reload.clone()))
                    .put({
                        let tm = self.clone();
                        move || reload_handler(tm.clone())
                    })
                    .layer(api::catch_panic_layer()),
            )
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let m = metrics_for_route.clone();
                    async move { ([(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)], m.encode()) }
                })
                .layer(api::catch_panic_layer()),
            )
            .layer(axum::middleware::from_fn_with_state(self.metrics.clone(), metrics::track_requests))
    }

    /// Cancels every query running or queued through the HTTP API (they
    /// answer `canceled` within milliseconds), and every later one: for a
    /// shutdown that must not wait for long queries. Queries made through
    /// [`Tidemark::instant_query`] and [`Tidemark::range_query`] are not
    /// affected.
    pub fn cancel_queries(&self) {
        self.queries.cancel();
    }

    /// Stops the forwarders (each sends what it can within its flush
    /// deadline and persists its position), then flushes and closes the
    /// database (the WAL is synced; the head is replayed from it at the
    /// next open).
    pub fn close(&self) -> Result<(), tidemark_storage::Error> {
        // Rules first (no new alerts), then the notifier sends what is queued.
        self.rules.manager.stop();
        if let Some(n) = &self.notifier {
            n.stop();
        }
        let forwarders = std::mem::take(&mut *self.forwarders.lock());
        for f in forwarders {
            let name = f.name().to_owned();
            match f.stop() {
                Ok(s) => {
                    tracing::info!(forwarder = %name, sent = s.samples_sent, pending = s.pending_samples, "forwarder stopped")
                }
                Err(e) => tracing::error!(forwarder = %name, error = %e, "forwarder did not stop cleanly"),
            }
        }
        self.db.close()
    }
}

/// `POST|PUT /-/reload`: re-reads the rule files, as Prometheus' lifecycle
/// endpoint (200 with an empty body; 500 with `failed to reload config: …`,
/// the old rules still running).
async fn reload_handler(tm: Tidemark) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::task::spawn_blocking(move || tm.reload_rules()).await {
        Ok(Ok(_)) => axum::http::StatusCode::OK.into_response(),
        Ok(Err(e)) => {
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")).into_response()
        }
        Err(e) => {
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")).into_response()
        }
    }
}

/// The environment rules are evaluated in.
fn rule_env(db: &Arc<Db>, engine: &Arc<Engine>, opts: &RulesOptions) -> RuleEnv {
    let mut env = RuleEnv::new(db.clone(), engine.clone());
    env.evaluation_interval = opts.evaluation_interval;
    env.query_offset = opts.query_offset;
    env.outage_tolerance = opts.outage_tolerance;
    env.for_grace_period = opts.for_grace_period;
    env.resend_delay = opts.resend_delay;
    env.external_labels = opts.external_labels.clone();
    env.external_url = opts.external_url.clone();
    env
}

/// Retention as `/api/v1/status/runtimeinfo` reports it (Prometheus: "15d",
/// "10GiB", "15d or 10GiB").
fn retention_text(time: Option<Duration>, size: Option<u64>) -> String {
    let t = time.map(|d| promql_parser::util::display_duration(&d));
    let s = size.map(|b| format!("{}MiB", b >> 20));
    match (t, s) {
        (Some(t), Some(s)) => format!("{t} or {s}"),
        (Some(t), None) => t,
        (None, Some(s)) => s,
        (None, None) => "forever".to_owned(),
    }
}

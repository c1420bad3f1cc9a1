//! The Prometheus HTTP API as an axum [`Router`]: queries, series and label
//! lookups, metadata, status, `format_query`, the snapshot admin endpoint,
//! `/federate`, remote write (`/api/v1/write`), remote read
//! (`/api/v1/read`), the rule manager's rules and alerts, exemplars, and
//! the health checks; plus an empty answer for targets, which Tidemark does
//! not have but Grafana asks for.
//!
//! Behaviour follows Prometheus' `web/api/v1`: GET and form-encoded POST
//! with Go's parameter merging, the same JSON shapes and number formatting,
//! the same error types, messages and status codes.
//!
//! ```
//! use std::sync::Arc;
//! use tidemark::api::{router, ApiOptions, ApiState};
//! use tidemark::storage::Db;
//!
//! let db = Arc::new(Db::in_memory().unwrap());
//! let state = Arc::new(ApiState::new(db, ApiOptions::default()));
//! let app: axum::Router = router(state); // serve it, or nest it in your own router
//! # drop(app);
//! ```
//!
//! Every handler that touches the database or runs a query does so on
//! tokio's blocking pool (storage and engine are synchronous). A query whose
//! HTTP request goes away (client disconnect, server timeout) is cancelled,
//! and so is every query when [`ApiState::shutdown`] fires. The whole
//! request (reading the form body, queueing, parsing, evaluation,
//! formatting, serialisation) counts against the query timeout. A panic in
//! any handler answers that request with a 500 `internal` error.

mod absent;
mod admin;
mod exemplars;
pub mod exposition;
mod federate;
mod format;
mod health;
mod json;
mod metadata;
mod origin;
pub mod params;
mod query;
mod read;
pub mod response;
mod rules;
mod series;
mod status;
mod write;

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use tidemark_promql::{CancellationToken, Engine, EngineOptions};
use tidemark_remote::read::{ReadOptions, Reader};
use tidemark_remote::{MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::{Db, NameValidation};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::{CompressionLayer, CompressionLevel};

pub(crate) use read::ReadCollector;
pub use response::{ApiError, ApiResult, ErrorType, Reply};

/// What `/api/v1/status/buildinfo` reports.
///
/// Grafana reads `version` to decide which Prometheus API features it may
/// use, so `version` is the Prometheus version whose API and PromQL we
/// implement ("3.0.0": Prometheus 3 semantics), not Tidemark's own version,
/// which `tidemark_version` (an extra `tidemarkVersion` field) carries. No
/// `application` field is sent: Grafana takes its absence to mean
/// "Prometheus" (Mimir and Cortex announce themselves there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Prometheus-compatible version (default "3.0.0").
    pub version: String,
    /// Source revision (default "unknown").
    pub revision: String,
    /// Source branch (default "unknown").
    pub branch: String,
    /// Who built it (default "unknown").
    pub build_user: String,
    /// When it was built (default "unknown").
    pub build_date: String,
    /// Prometheus reports its Go version here; we report the toolchain
    /// family (default "rust").
    pub go_version: String,
    /// Tidemark's own version (default: this crate's `CARGO_PKG_VERSION`).
    pub tidemark_version: String,
}

impl Default for BuildInfo {
    fn default() -> BuildInfo {
        BuildInfo {
            version: "3.0.0".into(),
            revision: "unknown".into(),
            branch: "unknown".into(),
            build_user: "unknown".into(),
            build_date: "unknown".into(),
            go_version: "rust".into(),
            tidemark_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Limits and settings of the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Most points per series a range query may ask for (default 11,000).
    pub max_points_per_series: usize,
    /// Longest a query may run (default 2 minutes); a request's `timeout`
    /// parameter can only shorten it.
    pub query_timeout: Duration,
    /// How far back `/federate` looks for each series' latest sample
    /// (default 5 minutes; Prometheus uses its query lookback delta).
    pub lookback_delta: Duration,
    /// Directory under `data_dir` that receives snapshots (default "snapshots").
    pub snapshot_dir_name: String,
    /// The database's directory; `None` for an in-memory database (then
    /// snapshots are unavailable).
    pub data_dir: Option<PathBuf>,
    /// Largest remote write body read, in bytes (default 32 MiB); larger
    /// requests get 413.
    pub max_remote_write_body: usize,
    /// Identity reported by `/api/v1/status/buildinfo`.
    pub build_info: BuildInfo,
    /// Label name rules for `/api/v1/label/<name>/values` (default UTF-8,
    /// as the storage's default).
    pub name_validation: NameValidation,
    /// Serve `/api/v1/admin/*` (default false, as Prometheus without
    /// `--web.enable-admin-api`: every snapshot writes the head to disk, so
    /// it is opt-in). When off, the endpoint answers `unavailable`
    /// "admin APIs disabled", as Prometheus does.
    pub enable_admin_api: bool,
    /// Most snapshots kept under the snapshot directory (default 10): one
    /// more is refused with an error naming the directory, so a loop of
    /// snapshot calls cannot fill the disk (old snapshots also keep blocks
    /// that retention deleted, through their hard links). 0: no limit.
    pub max_snapshots: usize,
    /// Labels `/federate` adds to every series that lacks them (Prometheus'
    /// `external_labels`); default none.
    pub external_labels: Vec<(String, String)>,
    /// Command-line flags reported by `/api/v1/status/flags`, added to the
    /// ones derived from these options; default none.
    pub flags: Vec<(String, String)>,
    /// The configuration `/api/v1/status/config` reports, as YAML; `None`
    /// (the default) renders the settings these options carry.
    pub config_yaml: Option<String>,
    /// Retention reported by `/api/v1/status/runtimeinfo` (e.g. "15d"); default empty.
    pub storage_retention: String,
    /// When the server started (default: when the options were made).
    pub start_time: SystemTime,
    /// Most queries evaluated at once by the engine [`ApiState::new`]
    /// makes (default 20); more wait within their timeout.
    pub max_concurrency: usize,
    /// Remote read limits (`/api/v1/read`); its external labels are
    /// replaced by [`ApiOptions::external_labels`]. Default: see
    /// [`ReadOptions`].
    pub remote_read: ReadOptions,
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            max_points_per_series: 11_000,
            query_timeout: Duration::from_secs(120),
            lookback_delta: Duration::from_secs(300),
            snapshot_dir_name: "snapshots".into(),
            data_dir: None,
            max_remote_write_body: 32 << 20,
            build_info: BuildInfo::default(),
            name_validation: NameValidation::Utf8,
            enable_admin_api: false,
            max_snapshots: 10,
            external_labels: Vec::new(),
            flags: Vec::new(),
            config_yaml: None,
            storage_retention: String::new(),
            start_time: SystemTime::now(),
            max_concurrency: 20,
            remote_read: ReadOptions::default(),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// The database queried and written to.
    pub db: Arc<Db>,
    /// The PromQL engine.
    pub engine: Arc<Engine>,
    /// Metric metadata received by remote write.
    pub metadata: Arc<MetadataStore>,
    /// The remote write receiver behind `/api/v1/write`.
    pub receiver: Arc<Receiver>,
    /// The remote read handler behind `/api/v1/read`.
    pub reader: Reader,
    /// Settings.
    pub options: ApiOptions,
    /// Cancelling this token cancels every query in flight or queued, and
    /// every later one (each request's token is a child of it): a server
    /// fires it when it shuts down.
    pub shutdown: CancellationToken,
    /// The rule manager whose groups and alerts `/api/v1/rules` and
    /// `/api/v1/alerts` show (`None`: no rules, empty answers).
    pub rules: Option<Arc<tidemark_rules::RuleManager>>,
}

impl ApiState {
    /// State over `db` with a default engine (its lookback delta and timeout
    /// taken from `options`), an empty metadata store and a receiver with
    /// default limits (body limit from `options`).
    pub fn new(db: Arc<Db>, options: ApiOptions) -> ApiState {
        let engine = Engine::new(EngineOptions {
            lookback_delta: options.lookback_delta,
            timeout: Some(options.query_timeout),
            max_concurrency: options.max_concurrency,
            ..EngineOptions::default()
        });
        let metadata = Arc::new(MetadataStore::new());
        let receiver_opts =
            ReceiverOptions { max_body_bytes: options.max_remote_write_body, ..ReceiverOptions::default() };
        let receiver = Arc::new(Receiver::new(db.clone(), metadata.clone(), receiver_opts));
        let reader = Reader::new(
            db.clone(),
            ReadOptions {
                external_labels: options.external_labels.clone(),
                regex_rewrite: Some(tidemark_promql::regex_compat::ascii_perl_classes),
                ..options.remote_read.clone()
            },
        );
        ApiState {
            db,
            engine: Arc::new(engine),
            metadata,
            receiver,
            reader,
            options,
            shutdown: CancellationToken::new(),
            rules: None,
        }
    }
}

/// The API routes with `state` applied. Unknown paths under `/api/v1/` get
/// a JSON `not_found` error; other unknown paths are left to the caller's
/// router (this one has no fallback, so it can be merged into another).
///
/// ```
/// use std::sync::Arc;
/// use axum::body::Body;
/// use axum::http::Request;
/// use tidemark::api::{router, ApiOptions, ApiState};
/// use tidemark::storage::{Db, Labels};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let db = Arc::new(Db::in_memory().unwrap());
/// let mut app = db.appender();
/// app.append(&Labels::new([("__name__", "up"), ("job", "api")]).unwrap(), 1_700_000_000_000, 1.0).unwrap();
/// app.commit().unwrap();
///
/// // Mount the API inside your own service's router.
/// let service = axum::Router::new()
///     .route("/hello", axum::routing::get(|| async { "hi" }))
///     .merge(router(Arc::new(ApiState::new(db, ApiOptions::default()))));
///
/// let req = Request::get("/api/v1/query?query=up&time=1700000000").body(Body::empty()).unwrap();
/// let resp = service.oneshot(req).await.unwrap();
/// let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
/// assert_eq!(
///     body,
///     r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"api"},"value":[1700000000,"1"]}]}}"#
/// );
/// # });
/// ```
pub fn router(state: Arc<ApiState>) -> Router {
    // Answers that can be large and compress well (JSON, exposition text
    // and protobuf): compressed when the client asks (see
    // [`compression_layer`]).
    let compressed = Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route("/api/v1/format_query", get(format::format_query).post(format::format_query))
        .route("/api/v1/series", get(series::series).post(series::series))
        .route("/api/v1/labels", get(series::labels).post(series::labels))
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route("/api/v1/metadata", get(metadata::metadata))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/rules", get(rules::rules).post(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts).post(rules::alerts))
        .route("/api/v1/targets", get(absent::targets))
        .route("/api/v1/query_exemplars", get(exemplars::query_exemplars).post(exemplars::query_exemplars))
        .route("/federate", get(federate::federate).post(federate::federate))
        .layer(compression_layer());
    // Remote write answers are a few bytes and remote read's are snappy
    // compressed by its protocol; the admin and health answers are short.
    Router::new()
        .merge(compressed)
        .route("/api/v1/admin/tsdb/snapshot", post(admin::snapshot).put(admin::snapshot))
        .route("/api/v1/write", post(write::write))
        .route("/api/v1/read", post(read::read))
        .route("/api/v1/{*rest}", any(not_found))
        .route("/-/healthy", get(health::healthy))
        .route("/-/ready", get(health::ready))
        .with_state(state)
        .layer(catch_panic_layer())
}

/// Response compression as Prometheus' API offers it, plus zstd: the body
/// is compressed with the best encoding the request's `Accept-Encoding`
/// allows among `zstd` and `gzip` (q-values respected; equal preferences
/// pick zstd, which is faster at a better ratio), and sent as is when it
/// allows neither. Bodies under 32 bytes, and answers that already carry a
/// `Content-Encoding`, stay as they are. The answer says
/// `Vary: Accept-Encoding` either way. [`router`] applies it to its query,
/// lookup, status, rules and federation routes; apply it to routes of your
/// own that sit beside them.
///
/// Both codecs run at their fastest level (gzip 1, zstd 1): on an 8 MB
/// `query_range` answer gzip's default level 6 took 5.8× the time of level
/// 1 for a 21% instead of 30% answer, several times the query itself;
/// zstd 1 is faster than either at 23% (`benches/README.md`).
pub fn compression_layer() -> CompressionLayer {
    CompressionLayer::new().gzip(true).zstd(true).quality(CompressionLevel::Fastest)
}

/// A layer that turns a panic in a handler into a 500 answer with
/// Prometheus' error body (`errorType` internal) for that request; the
/// connection and the process carry on. [`router`] applies it to its
/// routes; apply it to routes of your own that sit beside them.
pub fn catch_panic_layer() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(panic_response as fn(Box<dyn Any + Send + 'static>) -> Response)
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %what, "request handler panicked");
    ApiError::internal(format!("request handler panicked: {what}")).into_response()
}

/// Unknown `/api/v1/…` paths.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorType::NotFound, format!("unknown API endpoint {}", uri.path()))
}

/// Runs `f` on the blocking pool with the request's parameters; a panic in
/// `f` becomes an `internal` error instead of a dropped connection.
pub(crate) async fn blocking<F, R>(f: F) -> Result<R, ApiError>
where
    F: FnOnce() -> Result<R, ApiError> + Send + 'static,
    R: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(format!("request handler failed: {e}"))),
    }
}

/// Checks, between units of a lookup's work, whether it must stop.
pub(crate) type Interrupt<'a> = &'a dyn Fn() -> Result<(), ApiError>;

/// Runs an index lookup (`/series`, `/labels`, label values, `/federate`)
/// on the blocking pool within the server's query timeout, counted from the
/// request's arrival: the answer is `timeout` once it passes, and `f`'s
/// interrupt check (called between series and between matcher sets) fails
/// as soon as the deadline passes, the client goes away (`token` is
/// cancelled with the request) or the server shuts down, so no work outlives
/// its request by more than one unit.
pub(crate) async fn bounded<F>(
    st: &ApiState,
    arrived_at: std::time::Instant,
    token: CancellationToken,
    f: F,
) -> ApiResult
where
    F: FnOnce(Interrupt<'_>) -> ApiResult + Send + 'static,
{
    let deadline = arrived_at + st.options.query_timeout;
    let work_token = token.clone();
    let work = blocking(move || {
        let interrupt = || {
            if work_token.is_cancelled() {
                return Err(tidemark_promql::Error::Cancelled.into());
            }
            if std::time::Instant::now() >= deadline {
                return Err(tidemark_promql::Error::Timeout.into());
            }
            Ok(())
        };
        interrupt()?;
        f(&interrupt)
    });
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(r) => r,
        Err(_) => {
            token.cancel();
            Err(tidemark_promql::Error::Timeout.into())
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom at the handler")
    }

    #[test]
    fn a_panicking_handler_answers_500_with_the_error_envelope() {
        let db = Arc::new(Db::in_memory().unwrap());
        let state = Arc::new(ApiState::new(db, ApiOptions::default()));
        // The API's own routes and a route of the embedding service beside them.
        let app = router(state).merge(Router::new().route("/boom", get(boom)).layer(catch_panic_layer()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for _ in 0..2 {
                let resp = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
                assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
                assert_eq!(resp.headers()["content-type"], "application/json");
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
                assert_eq!(
                    body,
                    r#"{"status":"error","errorType":"internal","error":"request handler panicked: boom at the handler"}"#
                );
            }
            // The rest of the API still answers.
            let req = Request::get("/api/v1/query?query=vector(1)&time=0").body(Body::empty()).unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        });
    }
}

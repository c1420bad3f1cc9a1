//! `/-/healthy` and `/-/ready`.
//!
//! The database is opened (and its WAL replayed) before the router exists,
//! so once this answers at all the process is healthy. Ready means it can
//! also take writes: while commits fail (the WAL cannot be written — e.g.
//! the disk is full — or the data directory is at its size limit),
//! `/-/ready` answers 503 with the reason, and 200 again as soon as writes
//! are accepted (see `docs/durability.md`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use super::ApiState;

/// `GET|HEAD /-/healthy`.
pub(crate) async fn healthy() -> &'static str {
    "Tidemark is Healthy.\n"
}

/// `GET|HEAD /-/ready`: 503 with the reason while writes fail.
pub(crate) async fn ready(State(state): State<Arc<ApiState>>) -> (StatusCode, String) {
    match state.db.write_failure() {
        None => (StatusCode::OK, "Tidemark is Ready.\n".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("Tidemark is not ready: writes fail: {why}\n")),
    }
}

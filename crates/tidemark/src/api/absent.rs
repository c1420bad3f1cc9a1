//! Endpoints for Prometheus features Tidemark does not have — scrape
//! targets — answered the way Prometheus answers them when none
//! are configured, so clients such as Grafana that probe them see "nothing
//! here" rather than an error.

use super::response::Reply;

/// `GET /api/v1/targets`: no targets (Tidemark does not scrape).
pub(crate) async fn targets() -> Reply {
    Reply::new(r#"{"activeTargets":[],"droppedTargets":[]}"#.into())
}

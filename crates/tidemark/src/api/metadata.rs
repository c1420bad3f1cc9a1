//! `/api/v1/metadata`: metric metadata received by remote write.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::params::{go_atoi, Params};
use super::response::{ApiError, Reply};
use super::{json, ApiState};

/// `GET /api/v1/metadata`: `{"<family>":[{"type":…,"help":…,"unit":…}]}`
/// sorted by family; `metric` selects one family, `limit` caps the families
/// (negative: no cap), `limit_per_metric` the entries per family (zero or
/// negative: no cap).
pub(crate) async fn metadata(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    render(&st, &p).into_response()
}

fn render(st: &ApiState, p: &Params) -> Result<Reply, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        p.get(name).map(|s| go_atoi(s).map_err(|_| ApiError::bad_data(format!("{name} must be a number")))).transpose()
    };
    let limit = number("limit")?.and_then(|n| usize::try_from(n).ok());
    let per_metric = number("limit_per_metric")?.and_then(|n| usize::try_from(n).ok()).filter(|&n| n > 0);
    let families = st.metadata.get(p.get("metric"), limit, per_metric);
    let mut out = String::from("{");
    for (i, (name, entries)) in families.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::string(&mut out, name);
        out.push_str(":[");
        for (j, m) in entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"type\":");
            json::string(&mut out, m.kind.as_str());
            out.push_str(",\"help\":");
            json::string(&mut out, &m.help);
            out.push_str(",\"unit\":");
            json::string(&mut out, &m.unit);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    Ok(Reply::new(out))
}

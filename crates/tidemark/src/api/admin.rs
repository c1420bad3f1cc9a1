//! `/api/v1/admin/tsdb/snapshot`.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::params::{format_compact_utc, Params};
use super::response::{ApiError, ErrorType, Reply};
use super::{blocking, json, now_ms, ApiState};

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {s:?}: invalid syntax")),
    }
}

/// 63 random bits (Prometheus uses `rand.Int63`); std's per-process random
/// hash keys are enough to keep snapshot names apart.
fn random63() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    h.write_u64(u64::from(std::process::id()));
    h.finish() >> 1
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot[?skip_head=true]`: hard-links the
/// blocks (and writes the head as blocks unless `skip_head`) into
/// `<data-dir>/snapshots/<UTC time>-<random hex>`; answers
/// `{"name": "<that name>"}`.
pub(crate) async fn snapshot(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !st.options.enable_admin_api {
        return ApiError::new(ErrorType::Unavailable, "admin APIs disabled").into_response();
    }
    blocking(move || {
        let skip_head = match p.get("skip_head") {
            None => false,
            Some(s) => go_parse_bool(s)
                .map_err(|e| ApiError::invalid_param("skip_head", format!("unable to parse boolean: {e}")))?,
        };
        let Some(data_dir) = &st.options.data_dir else {
            return Err(ApiError::new(
                ErrorType::Unavailable,
                "snapshots need an on-disk database; this one is in memory",
            ));
        };
        let name = format!("{}-{:016x}", format_compact_utc(now_ms()), random63());
        let dir = data_dir.join(&st.options.snapshot_dir_name).join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(format!("create snapshot directory: {e}")))?;
        st.db.snapshot(&dir, skip_head).map_err(|e| ApiError::internal(format!("create snapshot: {e}")))?;
        let mut out = String::from("{\"name\":");
        json::string(&mut out, &name);
        out.push('}');
        Ok(Reply::new(out))
    })
    .await
    .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bools_parse_like_go() {
        assert_eq!(super::go_parse_bool("True"), Ok(true));
        assert_eq!(super::go_parse_bool("0"), Ok(false));
        assert_eq!(super::go_parse_bool("yes").unwrap_err(), "strconv.ParseBool: parsing \"yes\": invalid syntax");
    }
}

//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use tidemark_storage::{Labels, Matcher};

use super::params::{unescape_label_name, MAX_TIME, MIN_TIME};
use super::query::Arrived;
use super::response::{ApiError, ErrorType, Reply};
use super::{bounded, json, ApiState, Interrupt};

const TRUNCATED: &str = "results truncated due to limit";

fn storage_error(e: tidemark_storage::Error) -> ApiError {
    ApiError::new(ErrorType::Execution, e.to_string())
}

/// `GET|POST /api/v1/series`: the label sets of the series matching any
/// `match[]` (required) with data in `[start, end]`, sorted, at most `limit`.
pub(crate) async fn series(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let (p, at, token, st2) = (a.params, a.at, a.token, st.clone());
    bounded(&st2, at, token, move |interrupt| {
        if let Some(e) = &p.error {
            return Err(ApiError::bad_data(format!("error parsing form values: {e}")));
        }
        if p.all("match[]").is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let limit = p.limit()?;
        let start = p.time("start", MIN_TIME)?;
        let end = p.time("end", MAX_TIME)?;
        let sets = p.matchers().map_err(|e| ApiError::invalid_param("match[]", e))?;
        let q = st.db.querier(start, end);
        // Each set's answer is sorted; a BTreeSet merges and de-duplicates
        // several of them (one set, the common case, needs no merging).
        let mut all: Vec<Labels> = Vec::new();
        if sets.len() == 1 {
            all = q.select(&sets[0]).map_err(storage_error)?.into_iter().map(|s| s.labels().clone()).collect();
        } else {
            let mut merged = BTreeSet::new();
            for set in &sets {
                interrupt()?;
                merged.extend(q.select(set).map_err(storage_error)?.into_iter().map(|s| s.labels().clone()));
            }
            all.extend(merged);
        }
        interrupt()?;
        let truncated = limit > 0 && all.len() > limit;
        if truncated {
            all.truncate(limit);
        }
        let mut out = String::with_capacity(all.len() * 64 + 2);
        out.push('[');
        for (i, l) in all.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if i % 4096 == 4095 {
                interrupt()?;
            }
            json::labels(&mut out, l);
        }
        out.push(']');
        Ok(with_truncation(Reply::new(out), truncated))
    })
    .await
    .into_response()
}

fn with_truncation(mut r: Reply, truncated: bool) -> Reply {
    if truncated {
        r.warnings.push(TRUNCATED.into());
    }
    r
}

/// Sorted union of `f` over the matcher sets (or over "no matchers").
fn union(
    sets: &[Vec<Matcher>],
    interrupt: Interrupt<'_>,
    f: impl Fn(&[Matcher]) -> Result<Vec<String>, tidemark_storage::Error>,
) -> Result<Vec<String>, ApiError> {
    if sets.len() <= 1 {
        let none: Vec<Matcher> = Vec::new();
        return f(sets.first().unwrap_or(&none)).map_err(storage_error);
    }
    let mut all = BTreeSet::new();
    for set in sets {
        interrupt()?;
        all.extend(f(set).map_err(storage_error)?);
    }
    Ok(all.into_iter().collect())
}

/// Truncates to `limit` and renders a string list.
fn string_list(mut v: Vec<String>, limit: usize) -> Reply {
    let truncated = limit > 0 && v.len() > limit;
    if truncated {
        v.truncate(limit);
    }
    let mut out = String::with_capacity(v.iter().map(|s| s.len() + 3).sum::<usize>() + 2);
    json::string_array(&mut out, v.iter().map(String::as_str));
    with_truncation(Reply::new(out), truncated)
}

/// `GET|POST /api/v1/labels`: label names, optionally of the series
/// matching `match[]`, in `[start, end]`, at most `limit`.
pub(crate) async fn labels(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let (p, at, token, st2) = (a.params, a.at, a.token, st.clone());
    bounded(&st2, at, token, move |interrupt| {
        let limit = p.limit()?;
        let start = p.time("start", MIN_TIME)?;
        let end = p.time("end", MAX_TIME)?;
        let sets = p.matchers().map_err(ApiError::bad_data)?;
        let q = st.db.querier(start, end);
        let names = union(&sets, interrupt, |m| q.label_names(m))?;
        Ok(string_list(names, limit))
    })
    .await
    .into_response()
}

/// `GET /api/v1/label/<name>/values`: the values of one label (`__name__`
/// for metric names; `U__`-escaped names are unescaped), optionally of the
/// series matching `match[]`, in `[start, end]`, at most `limit`.
pub(crate) async fn label_values(State(st): State<Arc<ApiState>>, Path(name): Path<String>, req: Request) -> Response {
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let (p, at, token, st2) = (a.params, a.at, a.token, st.clone());
    bounded(&st2, at, token, move |interrupt| {
        let name = unescape_label_name(&name);
        if !st.options.name_validation.is_valid_label_name(&name) {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        }
        let limit = p.limit()?;
        let start = p.time("start", MIN_TIME)?;
        let end = p.time("end", MAX_TIME)?;
        let sets = p.matchers().map_err(ApiError::bad_data)?;
        let q = st.db.querier(start, end);
        let values = union(&sets, interrupt, |m| q.label_values(&name, m))?;
        Ok(string_list(values, limit))
    })
    .await
    .into_response()
}

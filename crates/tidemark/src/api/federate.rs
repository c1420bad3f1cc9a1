//! `/federate`: the latest sample of every series matching `match[]`, in
//! the Prometheus text exposition format 0.0.4, as Prometheus' federation
//! endpoint writes it.
//!
//! - The latest sample within the lookback window before now; a series
//!   whose latest sample is a staleness marker is left out.
//! - Series are grouped by metric name, each group under a
//!   `# TYPE <name> untyped` line (no `HELP`); nameless series are skipped.
//! - External labels the series lacks are appended after its own labels;
//!   `instance=""` is appended when neither has an `instance` label
//!   (Prometheus does this so the scraping server does not add its own).
//! - Values are printed as Go's `%g`-like `FormatFloat(v, 'g', -1)`,
//!   timestamps in milliseconds.
//!
//! Metric and label names are written as stored; names outside the legacy
//! character set cannot be expressed in 0.0.4 and are not escaped.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tidemark_storage::{is_stale_nan, Labels, SampleIterator, METRIC_NAME};

use super::params::parse_matchers;
use super::query::Arrived;
use super::response::{ApiError, ErrorType};
use super::{bounded, json, now_ms, ApiState, Interrupt, Reply};

fn plain(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `GET|POST /federate?match[]=…`.
pub(crate) async fn federate(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{}\n", e.message)),
    };
    let p = &a.params;
    if let Some(e) = &p.error {
        return plain(StatusCode::BAD_REQUEST, format!("error parsing form values: {e}\n"));
    }
    let sets = match parse_matchers(&p.all("match[]")) {
        Ok(s) => s,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let st2 = st.clone();
    // The text travels in a `Reply` body; the JSON envelope is not used.
    let result = bounded(&st, a.at, a.token.clone(), move |interrupt| {
        collect_and_render(&st2, &sets, interrupt).map(Reply::new)
    })
    .await;
    match result {
        Ok(reply) => {
            let mut r = (StatusCode::OK, reply.data).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            r
        }
        Err(e) => {
            let status = match e.kind {
                ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            plain(status, format!("{}\n", e.message))
        }
    }
}

fn collect_and_render(
    st: &ApiState,
    sets: &[Vec<tidemark_storage::Matcher>],
    interrupt: Interrupt<'_>,
) -> Result<String, ApiError> {
    let maxt = now_ms();
    let lookback = i64::try_from(st.options.lookback_delta.as_millis()).unwrap_or(i64::MAX);
    let q = st.db.querier(maxt.saturating_sub(lookback), maxt);
    let mut latest: Vec<(Labels, i64, f64)> = Vec::new();
    let mut seen: BTreeSet<Labels> = BTreeSet::new();
    for set in sets {
        interrupt()?;
        for (i, s) in q.select(set).map_err(|e| ApiError::internal(e.to_string()))?.into_iter().enumerate() {
            if i % 1024 == 1023 {
                interrupt()?;
            }
            if sets.len() > 1 && !seen.insert(s.labels().clone()) {
                continue;
            }
            let mut it = s.iter();
            let mut last = None;
            while it.next() {
                last = Some(it.at());
            }
            if let Some(e) = it.err() {
                return Err(ApiError::internal(e.to_string()));
            }
            match last {
                Some(smp) if !is_stale_nan(smp.v) => latest.push((s.labels().clone(), smp.t, smp.v)),
                _ => {}
            }
        }
    }
    // Grouped by name; within a name, label order (the sort is stable).
    latest.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
    Ok(render(&latest, &st.options.external_labels))
}

fn escape_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes the text format. `latest` is sorted by metric name.
pub(crate) fn render(latest: &[(Labels, i64, f64)], external: &[(String, String)]) -> String {
    let mut ext: Vec<(&str, &str)> = external.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if !ext.iter().any(|(k, _)| *k == "instance") {
        ext.push(("instance", ""));
    }
    ext.sort();
    let mut out = String::with_capacity(latest.len() * 80);
    let mut last_name: Option<&str> = None;
    for (labels, t, v) in latest {
        let Some(name) = labels.metric_name() else { continue };
        if last_name != Some(name) {
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(" untyped\n");
            last_name = Some(name);
        }
        out.push_str(name);
        let mut first = true;
        let mut pair = |out: &mut String, k: &str, v: &str| {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_value(out, v);
            out.push('"');
        };
        for l in labels.iter().filter(|l| l.name != METRIC_NAME) {
            pair(&mut out, l.name, l.value);
        }
        for (k, v) in &ext {
            if labels.get(k).is_none() {
                pair(&mut out, k, v);
            }
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        // expfmt writes these three exactly, then 'g' formatting.
        if *v == 0.0 {
            out.push('0');
        } else {
            json::push_go_g(&mut out, *v);
        }
        out.push(' ');
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_prometheus_federation() {
        let l = |pairs: &[(&str, &str)]| Labels::new(pairs.iter().copied()).unwrap();
        let latest = vec![
            (l(&[("__name__", "a"), ("job", "x\"y")]), 1000, 1_000_000.0),
            (l(&[("__name__", "a"), ("instance", "i"), ("job", "z")]), 2000, -0.0),
            (l(&[("__name__", "b")]), 3000, f64::NAN),
        ];
        let text = render(&latest, &[("dc".into(), "eu".into())]);
        assert_eq!(
            text,
            "# TYPE a untyped\n\
             a{job=\"x\\\"y\",dc=\"eu\",instance=\"\"} 1e+06 1000\n\
             a{instance=\"i\",job=\"z\",dc=\"eu\"} 0 2000\n\
             # TYPE b untyped\n\
             b{dc=\"eu\",instance=\"\"} NaN 3000\n"
        );
    }
}

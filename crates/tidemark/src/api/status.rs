//! `/api/v1/status/*`: build information, runtime information, flags,
//! configuration, and TSDB cardinality statistics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::json::string_object as object;
use super::params::{format_rfc3339_nanos, go_atoi, Params};
use super::response::{ApiError, Reply};
use super::{json, ApiState};

/// Most entries a `/status/tsdb` list may hold (Prometheus' cap).
const MAX_TSDB_LIMIT: i64 = 10_000;

/// `GET /api/v1/status/buildinfo`.
pub(crate) async fn buildinfo(State(st): State<Arc<ApiState>>) -> Reply {
    let b = &st.options.build_info;
    let mut out = String::new();
    object(
        &mut out,
        [
            ("version", b.version.as_str()),
            ("revision", &b.revision),
            ("branch", &b.branch),
            ("buildUser", &b.build_user),
            ("buildDate", &b.build_date),
            ("goVersion", &b.go_version),
            ("tidemarkVersion", &b.tidemark_version),
        ],
    );
    Reply::new(out)
}

fn rfc3339(t: SystemTime) -> String {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => format_rfc3339_nanos(d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => format_rfc3339_nanos(0, 0),
    }
}

/// Threads of this process (Linux), standing in for Go's goroutine count.
fn thread_count() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|n| n.trim().parse().ok())))
        .unwrap_or(0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// `GET /api/v1/status/runtimeinfo`: Prometheus' fields; the Go-runtime
/// ones carry the nearest equivalent (threads for goroutines, cores for
/// `GOMAXPROCS`, no memory limit).
pub(crate) async fn runtimeinfo(State(st): State<Arc<ApiState>>) -> Reply {
    let o = &st.options;
    let start = rfc3339(o.start_time);
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let mut out = String::from("{\"startTime\":");
    json::string(&mut out, &start);
    out.push_str(",\"CWD\":");
    json::string(&mut out, &cwd);
    out.push_str(",\"hostname\":");
    json::string(&mut out, &hostname());
    out.push_str(",\"serverTime\":");
    json::string(&mut out, &rfc3339(SystemTime::now()));
    out.push_str(",\"reloadConfigSuccess\":true,\"lastConfigTime\":");
    json::string(&mut out, &start);
    let procs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let _ = write!(
        out,
        ",\"corruptionCount\":{},\"goroutineCount\":{},\"GOMAXPROCS\":{procs},\"GOMEMLIMIT\":{},\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":",
        st.db.stats().quarantined_blocks,
        thread_count(),
        i64::MAX
    );
    json::string(&mut out, &o.storage_retention);
    out.push('}');
    Reply::new(out)
}

/// A duration as Prometheus prints one (`model.Duration.String`): `5m`,
/// `1h30m`, `90d`, `2w`, `0s`.
pub(crate) fn prom_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    const DAY: u64 = 86_400_000;
    for (unit, mult, exact) in [
        ("y", 365 * DAY, true),
        ("w", 7 * DAY, true),
        ("d", DAY, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if exact && !ms.is_multiple_of(mult) {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
            ms -= v * mult;
        }
    }
    out
}

fn flag_map(st: &ApiState) -> BTreeMap<String, String> {
    let o = &st.options;
    let e = st.engine.options();
    let mut m = BTreeMap::new();
    let data_dir = o.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
    for (k, v) in [
        ("query.lookback-delta", prom_duration(e.lookback_delta)),
        ("query.max-concurrency", e.max_concurrency.to_string()),
        ("query.max-samples", e.max_samples.to_string()),
        ("query.timeout", prom_duration(o.query_timeout)),
        ("storage.tsdb.path", data_dir),
        ("storage.tsdb.retention", o.storage_retention.clone()),
        ("web.enable-admin-api", o.enable_admin_api.to_string()),
        ("web.enable-remote-write-receiver", "true".to_string()),
    ] {
        m.insert(k.to_string(), v);
    }
    for (k, v) in &o.flags {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// `GET /api/v1/status/flags`: the flags derived from the options, plus
/// (overridden by) the ones the server registered.
pub(crate) async fn flags(State(st): State<Arc<ApiState>>) -> Reply {
    let m = flag_map(&st);
    let mut out = String::new();
    object(&mut out, m.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Reply::new(out)
}

/// YAML scalar quoting for the rendered configuration.
fn yaml_str(s: &str) -> String {
    let mut out = String::new();
    json::string(&mut out, s);
    out
}

/// `GET /api/v1/status/config`: `{"yaml": …}`, the configured YAML or the
/// settings these options carry, in Prometheus' configuration layout.
pub(crate) async fn config(State(st): State<Arc<ApiState>>) -> Reply {
    let yaml = match &st.options.config_yaml {
        Some(y) => y.clone(),
        None => {
            let e = st.engine.options();
            let mut y = String::from("global:\n");
            let _ = writeln!(y, "  evaluation_interval: {}", prom_duration(e.default_subquery_step));
            if !st.options.external_labels.is_empty() {
                y.push_str("  external_labels:\n");
                for (k, v) in &st.options.external_labels {
                    let _ = writeln!(y, "    {}: {}", k, yaml_str(v));
                }
            }
            y
        }
    };
    let mut out = String::from("{\"yaml\":");
    json::string(&mut out, &yaml);
    out.push('}');
    Reply::new(out)
}

/// `GET /api/v1/status/tsdb`: head statistics and the top `limit` (default
/// 10, at most 10,000) entries of each cardinality list, as Prometheus, plus
/// `tidemarkDamage`: what damaged files cost since start (WAL damage
/// recovered at open, damaged chunks, quarantined blocks, scrubs).
pub(crate) async fn tsdb(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let limit = match p.get("limit") {
        None => 10,
        Some(s) => match go_atoi(s) {
            Ok(n) if (1..=MAX_TSDB_LIMIT).contains(&n) => n as usize,
            Ok(n) if n > MAX_TSDB_LIMIT => {
                return ApiError::bad_data(format!("limit must not exceed {MAX_TSDB_LIMIT}")).into_response()
            }
            _ => return ApiError::bad_data("limit must be a positive number").into_response(),
        },
    };
    super::blocking(move || {
        let c = st.db.head_cardinality(limit);
        let chunks = st.db.stats().head_chunks;
        let mut out = String::with_capacity(1024);
        let _ = write!(
            out,
            "{{\"headStats\":{{\"numSeries\":{},\"numLabelPairs\":{},\"chunkCount\":{},\"minTime\":{},\"maxTime\":{}}}",
            c.num_series, c.num_label_pairs, chunks, c.min_time, c.max_time
        );
        for (key, list) in [
            ("seriesCountByMetricName", &c.series_count_by_metric_name),
            ("labelValueCountByLabelName", &c.label_value_count_by_label_name),
            ("memoryInBytesByLabelName", &c.memory_in_bytes_by_label_name),
            ("seriesCountByLabelValuePair", &c.series_count_by_label_value_pair),
        ] {
            let _ = write!(out, ",\"{key}\":[");
            for (i, (name, value)) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"name\":");
                json::string(&mut out, name);
                let _ = write!(out, ",\"value\":{value}}}");
            }
            out.push(']');
        }
        out.push_str(",\"tidemarkDamage\":");
        damage_json(&mut out, &st.db.damage_report());
        out.push('}');
        Ok(Reply::new(out))
    })
    .await
    .into_response()
}

fn opt_i64(out: &mut String, v: Option<i64>) {
    match v {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("null"),
    }
}

fn opt_str(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) => json::string(out, v),
        None => out.push_str("null"),
    }
}

/// Tidemark's addition to `/status/tsdb`: what damaged files cost since
/// start (WAL damage recovered at open, damaged chunks, quarantined blocks).
fn damage_json(out: &mut String, d: &tidemark_storage::DamageReport) {
    let _ = write!(
        out,
        "{{\"walCorruptions\":{},\"walRecordsSkipped\":{},\"walSamplesLost\":{},\"chunksCorrupt\":{},\"blocksQuarantined\":{},\"scrubs\":{},\"lastScrubTime\":",
        d.wal_corruptions, d.wal_records_skipped, d.wal_samples_lost, d.chunks_corrupt, d.blocks_quarantined, d.scrubs
    );
    opt_i64(out, d.last_scrub_ms);
    out.push_str(",\"wal\":[");
    for (i, e) in d.wal.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let w = &e.damage;
        let _ = write!(out, "{{\"time\":{},\"checkpoint\":", e.at_ms);
        opt_i64(out, w.checkpoint.map(|c| c as i64));
        let _ = write!(
            out,
            ",\"recordsSkipped\":{},\"seriesLost\":{},\"samplesLost\":{},\"orphanSamples\":{},\"orphanSeriesRefs\":{},\"lostMinTime\":",
            w.records_skipped, w.series_lost, w.samples_lost, w.orphan_samples, w.orphan_series_refs
        );
        opt_i64(out, w.lost_time_range.map(|r| r.0));
        out.push_str(",\"lostMaxTime\":");
        opt_i64(out, w.lost_time_range.map(|r| r.1));
        out.push_str(",\"quarantinedTo\":");
        opt_str(out, w.quarantined_to.as_ref().map(|p| p.display().to_string()).as_deref());
        out.push_str(",\"regions\":[");
        for (j, r) in w.regions.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"file\":");
            json::string(out, &r.file.display().to_string());
            let _ = write!(out, ",\"offset\":{},\"bytes\":{},\"reason\":", r.offset, r.len);
            json::string(out, &r.reason);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("],\"chunks\":[");
    for (i, c) in d.chunks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"block\":");
        json::string(out, &c.block);
        out.push_str(",\"file\":");
        json::string(out, &c.file);
        let _ = write!(out, ",\"offset\":{},\"series\":", c.offset);
        json::string(out, &c.series);
        let _ = write!(out, ",\"minTime\":{},\"maxTime\":{},\"reason\":", c.mint, c.maxt);
        json::string(out, &c.reason);
        out.push('}');
    }
    out.push_str("],\"quarantinedBlocks\":[");
    for (i, q) in d.quarantined_blocks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"block\":");
        json::string(out, &q.block);
        out.push_str(",\"reason\":");
        json::string(out, &q.reason);
        out.push_str(",\"movedTo\":");
        json::string(out, &q.moved_to.display().to_string());
        out.push_str(",\"minTime\":");
        opt_i64(out, q.time_range.map(|r| r.0));
        out.push_str(",\"maxTime\":");
        opt_i64(out, q.time_range.map(|r| r.1));
        out.push_str(",\"replacedBy\":");
        opt_str(out, q.replaced_by.as_deref());
        let _ = write!(out, ",\"time\":{}}}", q.at_ms);
    }
    out.push_str("]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_prometheus() {
        assert_eq!(prom_duration(Duration::from_secs(300)), "5m");
        assert_eq!(prom_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(prom_duration(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(prom_duration(Duration::from_secs(14 * 86_400)), "2w");
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(prom_duration(Duration::ZERO), "0s");
    }
}

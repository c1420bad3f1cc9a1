//! The query set, its latency as each system answers it over HTTP, and how
//! each answer agrees with Prometheus'.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidemark_testkit::{secs, url_encode, Http};

use super::load::{Load, LoadKind};

/// How a query is evaluated.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Evaluation {
    /// `/api/v1/query` at `time_ms`.
    Instant {
        /// Evaluation time.
        time_ms: i64,
    },
    /// `/api/v1/query_range` from `start_ms` to `end_ms` every `step_ms`.
    Range {
        /// First step.
        start_ms: i64,
        /// Last step.
        end_ms: i64,
        /// Resolution.
        step_ms: i64,
    },
}

/// One query of the set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuerySpec {
    /// Short name for tables.
    pub name: String,
    /// The PromQL.
    pub promql: String,
    /// Instant or range.
    pub evaluation: Evaluation,
    /// A heavy query (the latency goals are judged on these); the seed
    /// queries are not.
    pub heavy: bool,
}

impl QuerySpec {
    fn new(name: &str, promql: &str, evaluation: Evaluation, heavy: bool) -> QuerySpec {
        QuerySpec { name: name.into(), promql: promql.into(), evaluation, heavy }
    }

    /// The request path and query string.
    pub fn path(&self) -> String {
        let q = url_encode(&self.promql);
        match self.evaluation {
            Evaluation::Instant { time_ms } => format!("/api/v1/query?query={q}&time={}", secs(time_ms)),
            Evaluation::Range { start_ms, end_ms, step_ms } => format!(
                "/api/v1/query_range?query={q}&start={}&end={}&step={}",
                secs(start_ms),
                secs(end_ms),
                secs(step_ms)
            ),
        }
    }
}

/// Where queries are evaluated once the whole load is stored (see
/// [`Load::time_after_rounds`]).
pub fn query_time(load: &Load) -> i64 {
    load.time_after_rounds(load.rounds())
}

const HOUR_MS: i64 = 3_600_000;

/// The heavy queries for `load`, evaluated at `at`: every shape of issue
/// 13's table (a rate over every series of the busiest counter; `sum by`
/// and `histogram_quantile` over every bucket as 1 h range queries; a
/// `histogram_quantile` by route, a `topk` of per-instance CPU, a count of
/// every series and a 1 h `max_over_time`, instant), each range shape at
/// both a 60 s step (a dashboard over a longer range) and a 15 s step (what
/// a Grafana panel of the last hour asks for).
pub fn heavy_queries(load: &Load, at: i64) -> Vec<QuerySpec> {
    let instant = Evaluation::Instant { time_ms: at };
    let range = |step_ms| Evaluation::Range { start_ms: at - HOUR_MS, end_ms: at, step_ms };
    let (counter, by, buckets, route) = match load.kind {
        LoadKind::Synthetic => ("http_requests_total", "job, status", "http_request_duration_seconds_bucket", "route"),
        LoadKind::Capture => {
            ("node_cpu_seconds_total", "mode", "prometheus_http_request_duration_seconds_bucket", "handler")
        }
    };
    let mut out =
        vec![QuerySpec::new("rate, every series of a counter", &format!("rate({counter}[5m])"), instant, true)];
    let ranged: [(&str, String); 4] = [
        ("sum by", format!("sum by ({by}) (rate({counter}[5m]))")),
        ("histogram_quantile", format!("histogram_quantile(0.99, sum by (le) (rate({buckets}[5m])))")),
        ("topk", format!("topk(10, rate({counter}[5m]))")),
        (
            "CPU busy by instance",
            r#"100 - (avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)"#.to_string(),
        ),
    ];
    for (name, promql) in &ranged {
        for step_s in [60, 15] {
            out.push(QuerySpec::new(
                &format!("{name}, 1 h range, {step_s} s step"),
                promql,
                range(step_s * 1_000),
                true,
            ));
        }
    }
    out.extend([
        QuerySpec::new(
            "histogram_quantile by route, instant",
            &format!("histogram_quantile(0.95, sum by (le, {route}) (rate({buckets}[5m])))"),
            instant,
            true,
        ),
        QuerySpec::new(
            "topk of CPU by instance, instant",
            r#"topk(10, sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m])))"#,
            instant,
            true,
        ),
        QuerySpec::new("count of every series", r#"count({__name__=~".+"})"#, instant, true),
        QuerySpec::new(
            "max_over_time 1 h, instant",
            "max(max_over_time(process_resident_memory_bytes[1h]))",
            instant,
            true,
        ),
    ]);
    out
}

/// The seed queries (`../shared/seed-queries.md`): every line inside a
/// fenced block, each evaluated as an instant query at `at`.
pub fn seed_queries(path: &Path, at: i64) -> Result<Vec<QuerySpec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if inside && !line.trim().is_empty() {
            let q = line.trim();
            out.push(QuerySpec::new(q, q, Evaluation::Instant { time_ms: at }, false));
        }
    }
    Ok(out)
}

/// Where the seed queries live: `$TIDEMARK_SEED_QUERIES`, else
/// `shared/seed-queries.md` beside the workspace (or an ancestor of it).
pub fn default_seed_queries_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TIDEMARK_SEED_QUERIES") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared/seed-queries.md"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("../shared/seed-queries.md"))
}

/// The spread of a sample of latencies (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    /// Fastest run.
    pub min_ms: f64,
    /// 10th percentile (nearest rank).
    pub p10_ms: f64,
    /// First quartile (nearest rank).
    pub p25_ms: f64,
    /// Median (the mean of the middle two for an even count).
    pub median_ms: f64,
    /// Third quartile (nearest rank).
    pub p75_ms: f64,
    /// 90th percentile (nearest rank).
    pub p90_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
}

impl Spread {
    /// The spread of `runs` (all NaN when empty).
    pub fn of(runs: &[f64]) -> Spread {
        Spread {
            min_ms: percentile(runs, 0.0),
            p10_ms: percentile(runs, 0.1),
            p25_ms: percentile(runs, 0.25),
            median_ms: percentile(runs, 0.5),
            p75_ms: percentile(runs, 0.75),
            p90_ms: percentile(runs, 0.9),
            p99_ms: percentile(runs, 0.99),
            max_ms: percentile(runs, 1.0),
        }
    }
}

/// How one system answered one query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timed {
    /// Latency of each measured run (ms), in run order.
    pub runs_ms: Vec<f64>,
    /// Median of `runs_ms` (also in `spread`; kept for readers of older
    /// reports).
    pub median_ms: f64,
    /// 99th percentile of `runs_ms` (nearest rank).
    pub p99_ms: f64,
    /// Min, percentiles and max of `runs_ms`.
    pub spread: Spread,
    /// Series (or points, for a scalar) in the answer.
    pub result_series: usize,
    /// The error, if the system refused the query.
    pub error: Option<String>,
    /// How long each measured run waited for the servers to go quiet
    /// first (ms, in run order; see [`Settle`]).
    pub settle_ms: Vec<f64>,
    /// The `data` of the last answer, for the agreement check (not written
    /// to the JSON report).
    #[serde(skip)]
    pub data: Option<serde_json::Value>,
}

impl Timed {
    /// Figures from the measured runs, the last answer's `data` and the
    /// error that stopped the runs, if any.
    pub fn from_runs(runs_ms: Vec<f64>, data: Option<serde_json::Value>, error: Option<String>) -> Timed {
        let spread = Spread::of(&runs_ms);
        let result_series = data.as_ref().map_or(0, |d| match &d["result"] {
            serde_json::Value::Array(a) if d["resultType"] == "scalar" || d["resultType"] == "string" => a.len().min(1),
            serde_json::Value::Array(a) => a.len(),
            _ => 0,
        });
        Timed {
            runs_ms,
            median_ms: spread.median_ms,
            p99_ms: spread.p99_ms,
            spread,
            result_series,
            error,
            settle_ms: Vec::new(),
            data,
        }
    }
}

/// Sends `q` once, timing the request from sending it to having read the
/// whole answer; the latency (ms) and the answer's `data`.
pub fn run_once(http: &Http, base: &str, q: &QuerySpec) -> Result<(f64, serde_json::Value), String> {
    let url = format!("{base}{}", q.path());
    let t0 = Instant::now();
    let r = http.get(&url).map_err(|e| e.to_string())?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let json: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("{}: not JSON ({e}): {:.200}", r.status, r.text()))?;
    if json["status"] != "success" {
        return Err(format!("{}: {}", r.status, json["error"].as_str().unwrap_or(&r.text())));
    }
    Ok((ms, json["data"].clone()))
}

/// Called before every run of a query (warm-up included): waits until no
/// server is still busy with work an earlier run left behind, and returns
/// the wait in ms. A server that collects garbage or compacts after a heavy
/// query would otherwise do it during the next system's timed run: with
/// every system up and the runs interleaved, one system's leftover work is
/// charged to whichever system runs next (on a 2-core machine a Go server's
/// idle-priority GC workers take every core nobody else is using). Waiting
/// applies to every system alike; `&|| 0.0` waits for nothing (what
/// `compare` passes unless given `--settle-queries`).
pub type Settle<'a> = &'a dyn Fn() -> f64;

/// Runs `q` once to warm up, then `runs` times (the sequential mode: one
/// system's runs back to back), calling `settle` before each run.
pub fn time_query(http: &Http, base: &str, q: &QuerySpec, runs: usize, settle: Settle<'_>) -> Timed {
    settle();
    let data = match run_once(http, base, q) {
        Err(e) => return Timed::from_runs(Vec::new(), None, Some(e)),
        Ok((_, data)) => data,
    };
    let (mut measured, mut data, mut error, mut waits) = (Vec::new(), Some(data), None, Vec::new());
    for _ in 0..runs {
        waits.push(settle());
        match run_once(http, base, q) {
            Ok((ms, d)) => {
                measured.push(ms);
                data = Some(d);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Timed { settle_ms: waits, ..Timed::from_runs(measured, data, error) }
}

/// The order in which `systems` answer round `round` of an interleaved
/// query: each system once, the first place rotating from round to round
/// (A B C, B C A, C A B, …) so that no system always runs right after the
/// heaviest one or first on a cold cache.
pub fn interleaved_order(systems: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..systems).map(move |k| (k + round) % systems.max(1))
}

/// Times `q` on every one of `bases` (base URLs of systems that are all up)
/// interleaved: one warm-up run each, then `runs` rounds in
/// [`interleaved_order`], so drift of the machine's load hits every system
/// alike; `settle` is called before every run, so work one system leaves
/// behind is not timed as part of the next one's run. A system that
/// refuses the query is not asked again.
pub fn time_interleaved(http: &Http, bases: &[String], q: &QuerySpec, runs: usize, settle: Settle<'_>) -> Vec<Timed> {
    let n = bases.len();
    let mut measured: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut waits: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut data: Vec<Option<serde_json::Value>> = vec![None; n];
    let mut errors: Vec<Option<String>> = vec![None; n];
    for round in 0..=runs {
        for s in interleaved_order(n, round) {
            if errors[s].is_some() {
                continue;
            }
            let waited = settle();
            match run_once(http, &bases[s], q) {
                Ok((ms, d)) => {
                    // Round 0 is the warm-up.
                    if round > 0 {
                        measured[s].push(ms);
                        waits[s].push(waited);
                    }
                    data[s] = Some(d);
                }
                Err(e) => errors[s] = Some(e),
            }
        }
    }
    measured
        .into_iter()
        .zip(waits)
        .zip(data)
        .zip(errors)
        .map(|(((m, w), d), e)| Timed { settle_ms: w, ..Timed::from_runs(m, d, e) })
        .collect()
}

/// Nearest-rank percentile (`p` in [0, 1]: 0 is the minimum, 1 the
/// maximum); the median of an even count is the mean of the two middle
/// values.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if p == 0.5 {
        let n = v.len();
        return if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// How an answer agrees with the reference (Prometheus') answer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// Series in the reference answer with no series of the same labels here.
    pub missing_series: usize,
    /// Series here that the reference does not have.
    pub extra_series: usize,
    /// Points compared (same series, same timestamp), and how many of
    /// those differ by more than 1e-6 relative or are missing on one side.
    pub points: usize,
    /// See `points`.
    pub differing_points: usize,
    /// The first difference found, for a human to look at.
    pub example: Option<String>,
}

impl Agreement {
    /// Same series and every point within tolerance.
    pub fn agrees(&self) -> bool {
        self.missing_series == 0 && self.extra_series == 0 && self.differing_points == 0
    }
}

type Points = HashMap<i64, f64>;

/// Series of a Prometheus API `data` object, keyed by their label set.
fn series_of(data: &serde_json::Value) -> HashMap<String, Points> {
    let point = |p: &serde_json::Value| -> Option<(i64, f64)> {
        let t = p[0].as_f64()?;
        let v = p[1].as_str()?;
        let v = match v {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            s => s.parse().ok()?,
        };
        Some(((t * 1e3).round() as i64, v))
    };
    let mut out = HashMap::new();
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            out.insert(String::new(), point(&data["result"]).into_iter().collect());
        }
        _ => {
            for s in data["result"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let mut labels: Vec<(String, String)> = s["metric"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default();
                labels.sort();
                let key = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(",");
                let points: Points = match s.get("values") {
                    Some(vs) => vs.as_array().map(Vec::as_slice).unwrap_or_default().iter().filter_map(point).collect(),
                    None => point(&s["value"]).into_iter().collect(),
                };
                out.insert(key, points);
            }
        }
    }
    out
}

/// Compares `answer` with `reference` series by series and point by point.
///
/// For `topk` and `bottomk` (`ties_free_to_differ`), which of several
/// series with equal values is kept depends on the order the engine meets
/// them in, and Prometheus meets a head's series in the order they were
/// created, i.e. in whatever order concurrent remote-write requests
/// arrived. Those answers are compared as the sorted values at each
/// timestamp instead, which still catches any wrong value.
pub fn agreement(reference: &serde_json::Value, answer: &serde_json::Value, ties_free_to_differ: bool) -> Agreement {
    let (mut want, mut got) = (series_of(reference), series_of(answer));
    if ties_free_to_differ {
        (want, got) = (values_by_time(&want), values_by_time(&got));
    }
    let mut a = Agreement::default();
    for (key, want_points) in &want {
        let Some(got_points) = got.get(key) else {
            a.missing_series += 1;
            a.example.get_or_insert_with(|| format!("{{{key}}} missing"));
            continue;
        };
        let mut times: Vec<&i64> = want_points.keys().chain(got_points.keys()).collect();
        times.sort();
        times.dedup();
        for t in times {
            let (w, g) = (want_points.get(t), got_points.get(t));
            if w.is_some() {
                a.points += 1;
            }
            let same = matches!((w, g), (Some(w), Some(g)) if close(*w, *g));
            if !same {
                a.differing_points += 1;
                a.example.get_or_insert_with(|| format!("{{{key}}} at {t} ms: want {w:?}, got {g:?}"));
            }
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        a.extra_series += 1;
        a.example.get_or_insert_with(|| format!("{{{key}}} extra"));
    }
    a
}

/// Re-keys series' points as one "series" per timestamp whose points are
/// its values in descending order, keyed by rank.
fn values_by_time(series: &HashMap<String, Points>) -> HashMap<String, Points> {
    let mut by_time: HashMap<i64, Vec<f64>> = HashMap::new();
    for points in series.values() {
        for (t, v) in points {
            by_time.entry(*t).or_default().push(*v);
        }
    }
    by_time
        .into_iter()
        .map(|(t, mut vs)| {
            vs.sort_by(|a, b| b.total_cmp(a));
            (format!("@{t}"), vs.into_iter().enumerate().map(|(i, v)| (i as i64, v)).collect())
        })
        .collect()
}

/// Whether a query's answer may legitimately pick different series among
/// equal values (see [`agreement`]).
pub fn ties_free_to_differ(promql: &str) -> bool {
    promql.contains("topk") || promql.contains("bottomk")
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// An HTTP client for queries (long timeout: the heaviest queries at 1M
/// series take a while on the peers).
pub fn client() -> Http {
    Http::new(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(percentile(&[4.0, 1.0, 2.0, 3.0], 0.5), 2.5);
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&xs, 0.99), 99.0);
        assert_eq!(percentile(&xs[..10], 0.99), 10.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn spread_of_runs() {
        let xs: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = Spread::of(&xs);
        assert_eq!((s.min_ms, s.p10_ms, s.p25_ms, s.median_ms), (1.0, 1.0, 3.0, 5.5));
        assert_eq!((s.p75_ms, s.p90_ms, s.p99_ms, s.max_ms), (8.0, 9.0, 10.0, 10.0));
        let one = Spread::of(&[4.0]);
        assert_eq!((one.min_ms, one.median_ms, one.max_ms), (4.0, 4.0, 4.0));
        assert!(Spread::of(&[]).median_ms.is_nan());
        let t = Timed::from_runs(vec![3.0, 1.0, 2.0], None, None);
        assert_eq!((t.median_ms, t.spread.min_ms, t.spread.max_ms), (2.0, 1.0, 3.0));
    }

    #[test]
    fn interleaving_rotates_the_first_place() {
        let rounds: Vec<Vec<usize>> = (0..4).map(|r| interleaved_order(3, r).collect()).collect();
        assert_eq!(rounds, [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]);
        // Over any 3 consecutive rounds each system holds each place once,
        // and every round asks every system exactly once.
        for start in 0..5 {
            for place in 0..3 {
                let mut who: Vec<usize> =
                    (start..start + 3).map(|r| interleaved_order(3, r).nth(place).unwrap_or(9)).collect();
                who.sort();
                assert_eq!(who, [0, 1, 2]);
            }
        }
        assert_eq!(interleaved_order(1, 5).collect::<Vec<_>>(), [0]);
        assert_eq!(interleaved_order(0, 5).count(), 0);
    }

    #[test]
    fn agreement_counts_differences() {
        let reference = json!({"resultType": "matrix", "result": [
            {"metric": {"a": "1"}, "values": [[1.0, "1"], [2.0, "2"]]},
            {"metric": {"a": "2"}, "values": [[1.0, "NaN"]]},
        ]});
        assert!(agreement(&reference, &reference, false).agrees());
        let other = json!({"resultType": "matrix", "result": [
            {"metric": {"a": "1"}, "values": [[1.0, "1.0000000001"], [2.0, "3"], [3.0, "3"]]},
            {"metric": {"a": "3"}, "values": [[1.0, "1"]]},
        ]});
        let a = agreement(&reference, &other, false);
        assert_eq!((a.missing_series, a.extra_series, a.points, a.differing_points), (1, 1, 2, 2), "{a:?}");
        assert!(a.example.is_some());
        let vector = json!({"resultType": "vector", "result": [{"metric": {}, "value": [5.5, "+Inf"]}]});
        assert!(agreement(&vector, &vector, false).agrees());
        let scalar = json!({"resultType": "scalar", "result": [5.5, "2"]});
        assert!(!agreement(&scalar, &json!({"resultType": "scalar", "result": [5.5, "3"]}), false).agrees());
    }

    #[test]
    fn topk_ties_may_pick_other_series() {
        let reference = json!({"resultType": "matrix", "result": [
            {"metric": {"a": "1"}, "values": [[1.0, "5"], [2.0, "7"]]},
            {"metric": {"a": "2"}, "values": [[1.0, "3"]]},
        ]});
        // At t=1 the second place is a tie between a=2 and a=3.
        let other = json!({"resultType": "matrix", "result": [
            {"metric": {"a": "1"}, "values": [[1.0, "5"], [2.0, "7"]]},
            {"metric": {"a": "3"}, "values": [[1.0, "3"]]},
        ]});
        assert!(!agreement(&reference, &other, false).agrees());
        assert!(agreement(&reference, &other, true).agrees());
        let wrong = json!({"resultType": "matrix", "result": [
            {"metric": {"a": "1"}, "values": [[1.0, "5"], [2.0, "7"]]},
            {"metric": {"a": "3"}, "values": [[1.0, "2"]]},
        ]});
        assert!(!agreement(&reference, &wrong, true).agrees());
        assert!(ties_free_to_differ("topk(10, rate(x[5m]))"));
        assert!(!ties_free_to_differ("rate(x[5m])"));
    }

    #[test]
    fn seed_queries_are_read_from_fenced_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seeds.md");
        std::fs::write(&path, "# t\ntext `x`\n```\nup\n\nrate(x[5m])\n```\nprose\n```\nsum(y)\n```\n").expect("write");
        let qs = seed_queries(&path, 1_000).expect("read");
        assert_eq!(qs.iter().map(|q| q.promql.as_str()).collect::<Vec<_>>(), ["up", "rate(x[5m])", "sum(y)"]);
        assert_eq!(qs[0].path(), "/api/v1/query?query=up&time=1.000");
    }
}

//! The reference side: a real Prometheus 2.42 on 127.0.0.1 over blocks made
//! by `promtool` (floats) or fed by remote write (native histograms), queried
//! through its HTTP API. Starting, stopping and the HTTP client come from
//! `tidemark-testkit`.

use std::path::Path;
use std::time::Duration;

use tidemark_testkit::{find_binary, promtool_with_timeout, secs, url_encode, Http, PrometheusConfig};

use super::result::{Hist, Outcome, Res, V};

/// Fails the test (never skips) when `prometheus` or `promtool` is missing;
/// the message names the Debian package.
pub fn require_binaries() {
    for bin in ["prometheus", "promtool"] {
        if let Err(e) = find_binary(bin) {
            panic!("the differential test needs Debian's Prometheus 2.42: {e}");
        }
    }
}

/// Turns an OpenMetrics file into TSDB blocks in `dir`.
pub fn create_blocks(openmetrics: &Path, dir: &Path) {
    let args = [
        "tsdb".as_ref(),
        "create-blocks-from".as_ref(),
        "openmetrics".as_ref(),
        openmetrics.as_os_str(),
        dir.as_os_str(),
    ];
    if let Err(e) = promtool_with_timeout(args, Duration::from_secs(300)).and_then(|o| o.into_stdout()) {
        panic!("{e}");
    }
}

/// A running Prometheus. Dropping it kills and reaps the process, also when
/// the test fails or panics.
pub struct Prometheus {
    server: tidemark_testkit::Prometheus,
    http: Http,
}

impl Prometheus {
    /// Starts Prometheus over the TSDB in `tsdb` and waits, at most 30 s,
    /// until `/-/ready` answers 200.
    pub fn start(tsdb: &Path) -> Prometheus {
        Prometheus::start_with(tsdb, &[])
    }

    /// [`Prometheus::start`] with extra command-line arguments (feature
    /// flags, the remote-write receiver).
    pub fn start_with(tsdb: &Path, extra: &[&str]) -> Prometheus {
        let mut config = PrometheusConfig::new(tsdb);
        // No scrape targets: the TSDB holds only what promtool or remote
        // write put there.
        config.config_yaml = "scrape_configs: []\n".into();
        config.args = vec![
            "--storage.tsdb.retention.time=100y".into(),
            // The defaults, spelled out because the comparison depends on them.
            "--query.lookback-delta=5m".into(),
            "--query.max-samples=50000000".into(),
        ];
        config.args.extend(extra.iter().map(|a| a.to_string()));
        let server = tidemark_testkit::Prometheus::start(config).unwrap_or_else(|e| panic!("{e}"));
        Prometheus { server, http: Http::new(Duration::from_secs(30)) }
    }

    /// POSTs a snappy-compressed remote-write 1.0 body; fails the test unless
    /// Prometheus accepts it (2xx).
    #[allow(dead_code)] // used by the histogram test only
    pub fn remote_write(&self, body: &[u8]) {
        let headers = [
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ];
        let url = self.server.remote_write_url();
        match self.http.post(&url, &headers, body) {
            Ok(r) if r.is_success() => {}
            Ok(r) => panic!("remote write refused ({}): {}; log:\n{}", r.status, r.text(), self.log_tail()),
            Err(e) => panic!("remote write failed: {e}; log:\n{}", self.log_tail()),
        }
    }

    /// The last lines of Prometheus' log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.server.log_tail(30)
    }

    /// `/api/v1/query` at `t_ms`.
    pub fn instant(&self, query: &str, t_ms: i64) -> Outcome {
        self.api(&format!("/api/v1/query?query={}&time={}", url_encode(query), secs(t_ms)))
    }

    /// `/api/v1/query_range`.
    pub fn range(&self, query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Outcome {
        self.api(&format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            url_encode(query),
            secs(start_ms),
            secs(end_ms),
            secs(step_ms)
        ))
    }

    fn api(&self, path: &str) -> Outcome {
        let resp = match self.http.get(&format!("{}{path}", self.server.url())) {
            Ok(r) => r,
            Err(e) => panic!("HTTP request to prometheus failed: {e}; log:\n{}", self.log_tail()),
        };
        let (status, body) = (resp.status, resp.text());
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("prometheus answered {status} with non-JSON ({e}): {body}"));
        if json["status"] != "success" {
            let kind = json["errorType"].as_str().unwrap_or("?");
            let msg = json["error"].as_str().unwrap_or("?");
            return Outcome::Err { parse: msg.contains("parse error"), msg: format!("{kind}: {msg}") };
        }
        match parse_data(&json["data"]) {
            Ok(r) => Outcome::Ok(r),
            Err(e) => panic!("cannot read prometheus' answer ({e}): {body}"),
        }
    }
}

/// An API timestamp (seconds, possibly fractional) in milliseconds.
fn ts(v: &serde_json::Value) -> Result<i64, String> {
    let s = v.as_f64().ok_or_else(|| format!("bad timestamp {v}"))?;
    Ok((s * 1000.0).round() as i64)
}

/// An API sample value: a string such as "1.5", "NaN", "+Inf" or "-Inf".
fn val(v: &serde_json::Value) -> Result<f64, String> {
    let s = v.as_str().ok_or_else(|| format!("bad value {v}"))?;
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// A histogram as `jsonutil.MarshalHistogram` writes it.
fn hist(v: &serde_json::Value) -> Result<V, String> {
    let mut buckets = Vec::new();
    if let Some(bs) = v.get("buckets") {
        for b in bs.as_array().ok_or("buckets is not an array")? {
            let rule = b[0].as_u64().ok_or_else(|| format!("bad bucket boundaries {b}"))? as u8;
            buckets.push((rule, val(&b[1])?, val(&b[2])?, val(&b[3])?));
        }
    }
    Ok(V::H(Hist { count: val(&v["count"])?, sum: val(&v["sum"])?, buckets }))
}

fn labels(v: &serde_json::Value) -> Result<String, String> {
    let obj = v.as_object().ok_or("metric is not an object")?;
    let pairs: Vec<(String, String)> =
        obj.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
    Ok(super::result::key(pairs))
}

fn parse_data(data: &serde_json::Value) -> Result<Res, String> {
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => Ok(Res::Scalar(ts(&result[0])?, val(&result[1])?)),
        Some("string") => Ok(Res::String(ts(&result[0])?, result[1].as_str().unwrap_or_default().to_string())),
        Some("vector") => {
            let mut out = Vec::new();
            for s in result.as_array().ok_or("vector result is not an array")? {
                if let Some(h) = s.get("histogram") {
                    out.push((labels(&s["metric"])?, ts(&h[0])?, hist(&h[1])?));
                } else {
                    out.push((labels(&s["metric"])?, ts(&s["value"][0])?, V::F(val(&s["value"][1])?)));
                }
            }
            Ok(Res::Vector(out))
        }
        Some("matrix") => {
            let mut out = Vec::new();
            for s in result.as_array().ok_or("matrix result is not an array")? {
                let mut points = Vec::new();
                if let Some(values) = s.get("values") {
                    for p in values.as_array().ok_or("values is not an array")? {
                        points.push((ts(&p[0])?, V::F(val(&p[1])?)));
                    }
                }
                if let Some(hs) = s.get("histograms") {
                    for p in hs.as_array().ok_or("histograms is not an array")? {
                        points.push((ts(&p[0])?, hist(&p[1])?));
                    }
                }
                // Floats and histograms of one series interleave by time.
                points.sort_by_key(|p| p.0);
                out.push((labels(&s["metric"])?, points));
            }
            Ok(Res::Matrix(out))
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

//! The reference side: a real Prometheus 2.42 on 127.0.0.1 over blocks made
//! by `promtool`, queried through its HTTP API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::result::{Outcome, Res};

/// Says how to get the binaries when they are missing.
const INSTALL_HINT: &str = "the differential test needs Debian's Prometheus 2.42 (`prometheus` and `promtool` on \
     PATH): run ./scripts/test, which installs it (or `apt-get install -y prometheus`)";

/// Fails the test (never skips) when `prometheus` or `promtool` is missing.
pub fn require_binaries() {
    for bin in ["prometheus", "promtool"] {
        match Command::new(bin).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("`{bin} --version` failed ({s}); {INSTALL_HINT}"),
            Err(e) => panic!("cannot run `{bin}` ({e}); {INSTALL_HINT}"),
        }
    }
}

/// Turns an OpenMetrics file into TSDB blocks in `dir`.
pub fn create_blocks(openmetrics: &Path, dir: &Path) {
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(openmetrics)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}; {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from openmetrics failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running Prometheus. Dropping it kills and reaps the process, also when
/// the test fails or panics.
pub struct Prometheus {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (the OS picks it; there is a short window in
/// which another process could take it, which start() then reports).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Prometheus {
    /// Starts Prometheus over the TSDB in `tsdb` (with `work` for its config
    /// and log) and waits, at most 30 s, until `/-/ready` answers 200.
    pub fn start(tsdb: &Path, work: &Path) -> Prometheus {
        let config = work.join("prometheus.yml");
        // No scrape targets: the TSDB holds only what promtool wrote.
        std::fs::write(&config, "scrape_configs: []\n").expect("write config");
        let log = work.join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("create log");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=100y")
            // The defaults, spelled out because the comparison depends on them.
            .arg("--query.lookback-delta=5m")
            .arg("--query.max-samples=50000000")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}; {INSTALL_HINT}"));
        let mut p = Prometheus { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited early ({status}); log:\n{}", p.log_tail());
            }
            if let Ok((200, _)) = p.get("/-/ready") {
                return p;
            }
            if Instant::now() > deadline {
                panic!("prometheus not ready after 30 s; log:\n{}", p.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of Prometheus' log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A plain HTTP/1.0 GET (so the answer is neither chunked nor kept
    /// alive): status code and body.
    fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let text = String::from_utf8(buf).map_err(|e| e.to_string())?;
        let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP response")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("malformed status line: {head}"))?;
        Ok((status, body.to_string()))
    }

    /// `/api/v1/query` at `t_ms`.
    pub fn instant(&self, query: &str, t_ms: i64) -> Outcome {
        self.api(&format!("/api/v1/query?query={}&time={}", encode(query), secs(t_ms)))
    }

    /// `/api/v1/query_range`.
    pub fn range(&self, query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Outcome {
        self.api(&format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={}",
            encode(query),
            secs(start_ms),
            secs(end_ms),
            secs(step_ms)
        ))
    }

    fn api(&self, path: &str) -> Outcome {
        let (status, body) = match self.get(path) {
            Ok(r) => r,
            Err(e) => panic!("HTTP request to prometheus failed: {e}; log:\n{}", self.log_tail()),
        };
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

/// Milliseconds as the API's seconds with a fraction.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
                out.push((labels(&s["metric"])?, ts(&s["value"][0])?, val(&s["value"][1])?));
            }
            Ok(Res::Vector(out))
        }
        Some("matrix") => {
            let mut out = Vec::new();
            for s in result.as_array().ok_or("matrix result is not an array")? {
                let mut points = Vec::new();
                for p in s["values"].as_array().ok_or("values is not an array")? {
                    points.push((ts(&p[0])?, val(&p[1])?));
                }
                out.push((labels(&s["metric"])?, points));
            }
            Ok(Res::Matrix(out))
        }
        other => Err(format!("unknown resultType {other:?}")),
    }
}

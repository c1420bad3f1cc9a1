//! The forwarder against real receivers: Prometheus 2.42 with
//! `--web.enable-remote-write-receiver` (remote write 1.0) and
//! VictoriaMetrics (`/api/v1/write`). A known data set is written to a
//! `Db`, forwarded, and read back from each peer sample by sample.
//!
//! Needs the `prometheus` and `victoria-metrics` binaries (Debian packages
//! of those names; `scripts/test` installs them). A missing binary fails the
//! test with a message saying so.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidemark_remote::forward::{Forwarder, ForwarderOptions, Protocol};
use tidemark_storage::{Db, Labels};

/// Kills the process when dropped, also when a test panics.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &'static str, args: &[String], package: &str) -> Proc {
    match Command::new(bin).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
        Ok(child) => Proc { child, name: bin },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{bin}` is not on PATH: this test needs the real binary (Debian: apt-get install -y {package}; scripts/test installs it)"
        ),
        Err(e) => panic!("starting {bin}: {e}"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn get(url: &str) -> Option<(u16, String)> {
    let mut resp = agent().get(url).call().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.body_mut().read_to_string().ok()?))
}

/// Waits until `url` answers 200, failing if the process exits or 60 s pass.
fn wait_ready(p: &mut Proc, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, _)) = get(url) {
            return;
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("{} exited before it was ready: {status}", p.name);
        }
        assert!(Instant::now() < deadline, "{} not ready at {url} after 60 s", p.name);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Series name -> (timestamp ms -> value), what was written.
type DataSet = BTreeMap<String, BTreeMap<i64, f64>>;

/// 6 series × 40 samples, 15 s apart, ending a minute ago (recent enough
/// for Prometheus' head, which refuses samples over an hour older than its
/// newest). Values are exactly representable in VictoriaMetrics' decimal
/// encoding.
fn write_data(db: &Db) -> (DataSet, i64) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let end = now - 60_000;
    let start = end - 39 * 15_000;
    let mut data = DataSet::new();
    for k in 0..40i64 {
        let t = start + k * 15_000;
        let mut app = db.appender();
        for i in 0..6 {
            let l = Labels::new([("__name__", "tidemark_fwd_peer".to_string()), ("i", i.to_string())]).unwrap();
            let v = (i * 1000) as f64 + k as f64 * 0.5 - 7.0;
            app.append(&l, t, v).unwrap();
            data.entry(i.to_string()).or_default().insert(t, v);
        }
        app.commit().unwrap();
    }
    (data, end)
}

/// Forwards the WAL of a fresh `Db` to `url` until every sample is
/// acknowledged; returns the data set and the newest timestamp.
fn forward_to(dir: &Path, url: &str) -> (DataSet, i64) {
    let db = Db::builder(dir).maintenance_interval(None).open().unwrap();
    let (data, end) = write_data(&db);
    let mut o = ForwarderOptions::new("peer", url);
    o.protocol = Protocol::V1;
    o.batch_send_deadline = Duration::from_millis(50);
    o.max_samples_per_send = 100;
    o.timeout = Duration::from_secs(10);
    let fwd = Forwarder::start(&db, o).unwrap();
    let total = (data.len() * 40) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = fwd.stats();
        if s.samples_sent == total && s.pending_samples == 0 {
            break;
        }
        assert!(s.samples_dropped.is_empty(), "the peer rejected data: {s:?}");
        assert!(Instant::now() < deadline, "not everything acknowledged in 30 s: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = fwd.stop().unwrap();
    assert_eq!(stats.samples_sent, total);
    assert_eq!(stats.retries, 0, "{stats:?}");
    db.close().unwrap();
    (data, end)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

#[test]
fn every_sample_arrives_in_a_real_prometheus_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\nscrape_configs: []\n").unwrap();
    let port = free_port();
    let mut prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", tmp.path().join("prom").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".into(),
        ],
        "prometheus",
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&mut prom, &format!("{base}/-/ready"));
    let (data, end) = forward_to(&tmp.path().join("db"), &format!("{base}/api/v1/write"));

    // A range selector at the newest timestamp returns the raw samples.
    let q = format!(
        "{base}/api/v1/query?query=tidemark_fwd_peer%5B1h%5D&time={}.{:03}",
        end.div_euclid(1000),
        end.rem_euclid(1000)
    );
    let (status, body) = get(&q).expect("query Prometheus");
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    let mut got = DataSet::new();
    for series in v["data"]["result"].as_array().expect("a matrix") {
        let i = series["metric"]["i"].as_str().unwrap().to_string();
        for pair in series["values"].as_array().unwrap() {
            let t = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
            let val: f64 = pair[1].as_str().unwrap().parse().unwrap();
            got.entry(i.clone()).or_default().insert(t, val);
        }
    }
    assert_eq!(got, data, "Prometheus holds exactly the forwarded samples");
}

#[test]
fn every_sample_arrives_in_victoria_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut vm = spawn(
        "victoria-metrics",
        &[
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", tmp.path().join("vm").display()),
            "-retentionPeriod=100y".into(),
        ],
        "victoria-metrics",
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&mut vm, &format!("{base}/health"));
    let (data, _) = forward_to(&tmp.path().join("db"), &format!("{base}/api/v1/write"));

    // Make just-ingested data searchable, then export the raw samples.
    let (status, body) = get(&format!("{base}/internal/force_flush")).expect("force_flush");
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&format!("{base}/api/v1/export?match%5B%5D=tidemark_fwd_peer&start=0"))
            .expect("export from VictoriaMetrics");
        assert_eq!(status, 200, "{body}");
        let mut got = DataSet::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let v = json(line);
            let i = v["metric"]["i"].as_str().unwrap().to_string();
            let (vals, ts) = (v["values"].as_array().unwrap(), v["timestamps"].as_array().unwrap());
            for (val, t) in vals.iter().zip(ts) {
                got.entry(i.clone()).or_default().insert(t.as_i64().unwrap(), val.as_f64().unwrap());
            }
        }
        if got == data {
            return;
        }
        // Newly registered series can take a moment to become searchable.
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics export differs from what was forwarded:\n got {got:?}\nwant {data:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

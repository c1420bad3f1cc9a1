//! `tidemark serve` as a process: it starts on the flags scripts rely on,
//! accepts remote write, answers queries and `/metrics`, shuts down cleanly
//! on SIGTERM, and keeps every acknowledged sample across `kill -9`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use tidemark::remote::proto::v1;

/// Kills the server if a test fails before stopping it.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(data_dir: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tidemark serve");
    let server = Server { child: Some(child), base: format!("http://{listen}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut r) = ureq::get(&format!("{}/-/ready", server.base)).call() {
            if r.status() == 200 {
                let _ = r.body_mut().read_to_string();
                return server;
            }
        }
        assert!(Instant::now() < deadline, "tidemark serve did not become ready on {listen}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(base: &str, name: &str, samples: &[(i64, f64)]) -> u16 {
    let req = v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: name.into() },
                v1::Label { name: "job".into(), value: "t".into() },
            ],
            samples: samples.iter().map(|&(timestamp, value)| v1::Sample { value, timestamp }).collect(),
            ..Default::default()
        }],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::MetricType::Counter as i32,
            metric_family_name: name.into(),
            help: "Test counter.".into(),
            unit: String::new(),
        }],
    };
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    agent
        .post(&format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send(&body[..])
        .unwrap()
        .status()
        .as_u16()
}

fn get(url: &str) -> String {
    ureq::get(url).call().unwrap().body_mut().read_to_string().unwrap()
}

fn count_over_time(base: &str, name: &str, t_s: f64) -> String {
    get(&format!("{base}/api/v1/query?query=count_over_time({name}[1h])&time={t_s}"))
}

const T0: i64 = 1_700_000_000_000;

#[test]
fn serves_writes_queries_and_metrics_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    let samples: Vec<(i64, f64)> = (0..10).map(|i| (T0 + i * 15_000, i as f64)).collect();
    assert_eq!(write(&server.base, "jobs_total", &samples), 204);

    let answer = count_over_time(&server.base, "jobs_total", (T0 + 150_000) as f64 / 1000.0);
    assert!(answer.contains(r#""value":[1700000150,"10"]"#), "{answer}");
    let meta = get(&format!("{}/api/v1/metadata", server.base));
    assert!(meta.contains(r#""jobs_total":[{"type":"counter","help":"Test counter.","unit":""}]"#), "{meta}");

    let metrics = get(&format!("{}/metrics", server.base));
    for line in [
        "tidemark_remote_write_samples_appended_total 10",
        "tidemark_remote_write_requests_total{protocol=\"1.0\"} 1",
        "tidemark_head_series 1",
        "tidemark_http_requests_total{handler=\"/api/v1/write\",code=\"204\"} 1",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line:?}:\n{metrics}");
    }

    // SIGTERM: a graceful stop with exit status 0.
    let mut child = server.child.take().unwrap();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");

    // Everything is there after a restart.
    let server = start(dir.path(), &[]);
    let answer = count_over_time(&server.base, "jobs_total", (T0 + 150_000) as f64 / 1000.0);
    assert!(answer.contains(r#""value":[1700000150,"10"]"#), "{answer}");
}

#[test]
fn acknowledged_samples_survive_kill_dash_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    for batch in 0..20 {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (T0 + (batch * 50 + i) * 1_000, 1.0)).collect();
        assert_eq!(write(&server.base, "acked", &samples), 204);
    }
    let mut child = server.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL: no shutdown code runs
    child.wait().unwrap();

    let server = start(dir.path(), &[]);
    let answer = count_over_time(&server.base, "acked", (T0 + 1_000_000) as f64 / 1000.0);
    assert!(answer.contains(r#""value":[1700001000,"1000"]"#), "{answer}");
}

#[test]
fn bad_flags_exit_with_status_2_and_a_message() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_tidemark")).args(["serve", "--listen", "not-an-address"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn forwards_everything_to_another_tidemark() {
    let sink_dir = tempfile::tempdir().unwrap();
    let sink = start(sink_dir.path(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}/api/v1/write", sink.base);
    let source = start(dir.path(), &["--forward.url", &url]);
    let samples: Vec<(i64, f64)> = (0..300).map(|i| (T0 + i * 1_000, i as f64)).collect();
    for chunk in samples.chunks(100) {
        assert_eq!(write(&source.base, "forwarded", chunk), 204);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = count_over_time(&sink.base, "forwarded", (T0 + 300_000) as f64 / 1000.0);
        if answer.contains(r#""value":[1700000300,"300"]"#) {
            break;
        }
        assert!(Instant::now() < deadline, "the sink never got all 300 samples: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = get(&format!("{}/metrics", source.base));
    assert!(metrics.contains("tidemark_forwarder_samples_sent_total{forwarder=\"flag-0\"} 300"), "{metrics}");
}

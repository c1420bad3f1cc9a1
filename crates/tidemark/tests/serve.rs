//! `tidemark serve` as a process: it starts on the flags scripts rely on,
//! accepts remote write, answers queries and `/metrics`, shuts down cleanly
//! on SIGTERM, and keeps every acknowledged sample across `kill -9`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use tidemark::remote::proto::v1;
use tidemark_testkit::{Tidemark, TidemarkConfig};

/// Starts `tidemark serve` on a free loopback port (killed when dropped,
/// also when a test fails).
fn start(data_dir: &Path, extra: &[&str]) -> Tidemark {
    let config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), data_dir).with_args(extra);
    Tidemark::start(config).unwrap_or_else(|e| panic!("{e}"))
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
    assert_eq!(write(&server.url(), "jobs_total", &samples), 204);

    let answer = count_over_time(&server.url(), "jobs_total", (T0 + 150_000) as f64 / 1000.0);
    assert!(answer.contains(r#""value":[1700000150,"10"]"#), "{answer}");
    let meta = get(&format!("{}/api/v1/metadata", server.url()));
    assert!(meta.contains(r#""jobs_total":[{"type":"counter","help":"Test counter.","unit":""}]"#), "{meta}");

    let metrics = get(&format!("{}/metrics", server.url()));
    for line in [
        "tidemark_remote_write_samples_appended_total 10",
        "tidemark_remote_write_requests_total{protocol=\"1.0\"} 1",
        "tidemark_head_series 1",
        "tidemark_http_requests_total{handler=\"/api/v1/write\",code=\"204\"} 1",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line:?}:\n{metrics}");
    }

    // SIGTERM: a graceful stop with exit status 0.
    let status = server.terminate(Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    drop(server);

    // Everything is there after a restart.
    let server = start(dir.path(), &[]);
    let answer = count_over_time(&server.url(), "jobs_total", (T0 + 150_000) as f64 / 1000.0);
    assert!(answer.contains(r#""value":[1700000150,"10"]"#), "{answer}");
}

#[test]
fn acknowledged_samples_survive_kill_dash_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    for batch in 0..20 {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (T0 + (batch * 50 + i) * 1_000, 1.0)).collect();
        assert_eq!(write(&server.url(), "acked", &samples), 204);
    }
    drop(server); // SIGKILL: no shutdown code runs

    let server = start(dir.path(), &[]);
    let answer = count_over_time(&server.url(), "acked", (T0 + 1_000_000) as f64 / 1000.0);
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
    let url = format!("{}/api/v1/write", sink.url());
    let source = start(dir.path(), &["--forward.url", &url]);
    let samples: Vec<(i64, f64)> = (0..300).map(|i| (T0 + i * 1_000, i as f64)).collect();
    for chunk in samples.chunks(100) {
        assert_eq!(write(&source.url(), "forwarded", chunk), 204);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = count_over_time(&sink.url(), "forwarded", (T0 + 300_000) as f64 / 1000.0);
        if answer.contains(r#""value":[1700000300,"300"]"#) {
            break;
        }
        assert!(Instant::now() < deadline, "the sink never got all 300 samples: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = get(&format!("{}/metrics", source.url()));
    assert!(metrics.contains("tidemark_forwarder_samples_sent_total{forwarder=\"flag-0\"} 300"), "{metrics}");
}

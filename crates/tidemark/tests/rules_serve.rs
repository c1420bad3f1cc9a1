//! Rules in `tidemark serve`: `--rules.file` globs are evaluated on their
//! schedule and their results are queryable; `POST /-/reload` and SIGHUP
//! re-read the files; a bad file keeps the old rules running and is
//! reported; a bad file at startup stops the server with the error.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tidemark_testkit::{Tidemark, TidemarkConfig};

fn start(data_dir: &Path, extra: &[&str]) -> Tidemark {
    let config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), data_dir).with_args(extra);
    Tidemark::start(config).unwrap_or_else(|e| panic!("{e}"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// The value of `query` now, if it has exactly one sample.
fn value(base: &str, query: &str) -> Option<String> {
    let mut resp = agent().get(&format!("{base}/api/v1/query")).query("query", query).call().ok()?;
    let body: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
    let result = body["data"]["result"].as_array()?;
    (result.len() == 1).then(|| result[0]["value"][1].as_str().unwrap().to_string())
}

fn wait_for(base: &str, query: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if value(base, query).as_deref() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{query} never became {want} (now {:?})", value(base, query));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A metric of `/metrics` without labels.
fn metric(base: &str, name: &str) -> Option<f64> {
    let text = agent().get(&format!("{base}/metrics")).call().ok()?.body_mut().read_to_string().ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn rule_file(record: &str, expr: &str) -> String {
    format!("groups:\n  - name: fast\n    interval: 1s\n    rules:\n      - record: {record}\n        expr: {expr}\n")
}

#[test]
fn rules_run_reload_on_http_and_sighup_and_bad_files_keep_the_old_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("a.yml"), rule_file("tm:answer", "vector(42)")).unwrap();
    let glob = format!("{}/*.yml", rules.display());
    let tm = start(&dir.path().join("data"), &["--rules.file", &glob]);
    let base = tm.base_url();
    wait_for(&base, "tm:answer", "42");

    // A bad expression: the reload fails with the reason, the old group runs on.
    std::fs::write(rules.join("a.yml"), rule_file("tm:answer", "sum(")).unwrap();
    let mut resp = agent().post(&format!("{base}/-/reload")).send_empty().unwrap();
    assert_eq!(resp.status(), 500);
    let text = resp.body_mut().read_to_string().unwrap();
    assert!(text.starts_with("failed to reload config: "), "{text}");
    assert!(text.contains("could not parse expression"), "{text}");
    assert_eq!(metric(&base, "tidemark_config_last_reload_successful"), Some(0.0));
    let before = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let mut resp = agent().get(&format!("{base}/api/v1/query")).query("query", "timestamp(tm:answer)").call().unwrap();
    let body: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let last_eval: f64 = body["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(now - last_eval < 1.5 + before.elapsed().as_secs_f64(), "the old rule still evaluates every second");

    // A good file again, picked up on SIGHUP.
    std::fs::write(rules.join("a.yml"), rule_file("tm:answer2", "vector(7)")).unwrap();
    let status = Command::new("kill").args(["-HUP", &tm.pid().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for(&base, "tm:answer2", "7");
    assert_eq!(metric(&base, "tidemark_config_last_reload_successful"), Some(1.0));

    // And through the API, a new file matched by the glob.
    std::fs::write(rules.join("b.yml"), rule_file("tm:answer3", "vector(3)").replace("fast", "other")).unwrap();
    let resp = agent().put(&format!("{base}/-/reload")).send_empty().unwrap();
    assert_eq!(resp.status(), 200);
    wait_for(&base, "tm:answer3", "3");
}

#[test]
fn a_bad_rule_file_at_startup_stops_the_server_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(&file, rule_file("tm:bad", "rate(x[5m]")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--rules.file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot load rules") && stderr.contains("could not parse expression"), "{stderr}");
}

#[test]
fn recorded_samples_reach_the_forwarder_like_any_sample() {
    let dir = tempfile::tempdir().unwrap();
    let downstream = start(&dir.path().join("downstream"), &[]);
    let file = dir.path().join("r.yml");
    std::fs::write(&file, rule_file("tm:forwarded", "vector(5)")).unwrap();
    let forward = format!("{}/api/v1/write", downstream.base_url());
    let _upstream =
        start(&dir.path().join("upstream"), &["--rules.file", file.to_str().unwrap(), "--forward.url", &forward]);
    wait_for(&downstream.base_url(), "tm:forwarded", "5");
}

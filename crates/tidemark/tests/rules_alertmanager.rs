//! Rules end to end with the real peers (127.0.0.1 only): `tidemark serve`
//! evaluates the guides' rule file (`../shared/rules/seed-rules.yml`) over
//! data sent by remote write, and a real Alertmanager (Debian's
//! `prometheus-alertmanager`) receives `HighErrorRate`,
//! `PlatformAvailabilityCritical` and `MLQueueBacklog` with the labels and
//! rendered annotations that `promtool test rules` expects for the same
//! data (`rules_alertmanager/seed-alerts.test.yml`, which promtool must
//! pass first), then their resolutions. Tidemark is killed with `kill -9`
//! while `MLQueueBacklog` is pending: after the restart its `for` clock
//! continues (restored from `ALERTS_FOR_STATE`), it does not fire early,
//! and the restart does not cause a burst of notifications.
//!
//! Time is compressed so the test takes about a minute: the rule file is
//! the seed file with every `for` scaled from minutes to 3 s per minute and
//! every group interval set to 1 s (expressions, labels and annotations
//! untouched); `--rules.alert.for-grace-period 3s` scales the grace period
//! the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prost::Message;
use tidemark::remote::proto::v1;
use tidemark_testkit::{Alertmanager, AlertmanagerConfig, Tidemark, TidemarkConfig, WebhookReceiver};

const ALERTS: [&str; 3] = ["HighErrorRate", "PlatformAvailabilityCritical", "MLQueueBacklog"];

fn seed_rules_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/rules/seed-rules.yml")
}

/// The seed rules with `for: Nm` as `for: 3N s` and every interval 1 s.
fn compressed_rules(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(v) = trimmed.strip_prefix("for: ") {
            let minutes: u64 = v.trim().strip_suffix('m').expect("for in minutes").parse().unwrap();
            out.push_str(&format!("{indent}for: {}s\n", minutes * 3));
        } else if trimmed.starts_with("interval: ") {
            out.push_str(&format!("{indent}interval: 1s\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// What the load looks like at time `t`: counters growing at fixed rates
/// from `t0` (plus a jump once `resolve` is set), and the queue gauge.
#[derive(Clone, Copy)]
struct Load {
    t0: i64,
    resolve_at: Option<i64>,
}

impl Load {
    fn series(&self, t: i64) -> Vec<(Vec<(&'static str, &'static str)>, f64)> {
        let secs = (t - self.t0) as f64 / 1000.0;
        // After `resolve_at`, 200s jump by 1e9: the error ratios collapse.
        let jump = if self.resolve_at.is_some_and(|r| t >= r) { 1e9 } else { 0.0 };
        let queued = if self.resolve_at.is_some_and(|r| t >= r) { 5.0 } else { 150.0 };
        vec![
            (vec![("__name__", "http_requests_total"), ("job", "api"), ("status", "200")], 6.0 * secs + jump),
            (vec![("__name__", "http_requests_total"), ("job", "api"), ("status", "500")], 20.0 / 15.0 * secs),
            (vec![("__name__", "http_requests_total"), ("code", "200"), ("job", "api-gateway")], 97.0 / 15.0 * secs + jump),
            (vec![("__name__", "http_requests_total"), ("code", "500"), ("job", "api-gateway")], 3.0 / 15.0 * secs),
            (vec![("__name__", "ml_tasks_queued"), ("job", "ml")], queued),
        ]
    }
}

fn write(base: &str, load: &Load, times: &[i64]) -> Result<(), String> {
    let mut timeseries = Vec::new();
    for &t in times {
        for (labels, v) in load.series(t) {
            timeseries.push(v1::TimeSeries {
                labels: labels.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect(),
                samples: vec![v1::Sample { value: v, timestamp: t }],
                ..Default::default()
            });
        }
    }
    let body = snap::raw::Encoder::new()
        .compress_vec(&v1::WriteRequest { timeseries, metadata: vec![] }.encode_to_vec())
        .unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let resp = agent
        .post(&format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send(&body[..])
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let mut resp = resp;
        Err(format!("write answered {status}: {}", resp.body_mut().read_to_string().unwrap_or_default()))
    }
}

fn query(base: &str, q: &str) -> Vec<serde_json::Value> {
    let agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().new_agent();
    let Ok(mut resp) = agent.get(&format!("{base}/api/v1/query")).query("query", q).call() else {
        return Vec::new();
    };
    let body: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    body["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn metric(base: &str, name: &str) -> f64 {
    let agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().new_agent();
    let text = agent.get(&format!("{base}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    text.lines().filter_map(|l| l.strip_prefix(name)).filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// Every alert Alertmanager posted to the webhook, with when it arrived.
fn received(hook: &WebhookReceiver) -> Vec<serde_json::Value> {
    hook.requests()
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Seconds since the epoch of an RFC 3339 UTC time as Alertmanager prints
/// it (`2026-12-05T14:20:01.123456789Z`).
fn rfc3339_seconds(s: &str) -> f64 {
    let (date, time) = s.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64 + format!("0.{frac}").parse::<f64>().unwrap()
}

/// The expected labels and annotations per alert, from the promtool test file.
fn promtool_expectations(test_file: &Path) -> BTreeMap<String, (BTreeMap<String, String>, BTreeMap<String, String>)> {
    let doc: serde_json::Value = serde_norway::from_str(&std::fs::read_to_string(test_file).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for t in doc["tests"][0]["alert_rule_test"].as_array().unwrap() {
        let name = t["alertname"].as_str().unwrap().to_string();
        let exp = &t["exp_alerts"][0];
        let to_map = |v: &serde_json::Value| -> BTreeMap<String, String> {
            v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect()
        };
        let mut labels = to_map(&exp["exp_labels"]);
        labels.insert("alertname".into(), name.clone());
        out.insert(name, (labels, to_map(&exp["exp_annotations"])));
    }
    out
}

fn start_tidemark(data: &Path, rules: &Path, am: &Alertmanager) -> Tidemark {
    let args = [
        "--rules.file",
        rules.to_str().unwrap(),
        "--alertmanager.url",
        &am.base_url(),
        "--rules.evaluation-interval",
        "1s",
        "--rules.alert.for-grace-period",
        "3s",
        "--web.external-url",
        "http://tidemark.test:9201",
    ];
    let args: Vec<&str> = args.iter().map(|s| &**s).collect();
    Tidemark::start(TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), data).with_args(&args))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seed_alerts_reach_a_real_alertmanager_fire_resolve_and_survive_kill_9_while_pending() {
    let dir = tempfile::tempdir().unwrap();

    // 1. promtool accepts the expectations for the uncompressed seed file.
    let oracle = dir.path().join("oracle");
    std::fs::create_dir(&oracle).unwrap();
    std::fs::copy(seed_rules_path(), oracle.join("seed-rules.yml")).unwrap();
    let test_file = oracle.join("seed-alerts.test.yml");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules_alertmanager/seed-alerts.test.yml"), &test_file)
        .unwrap();
    let out = tidemark_testkit::promtool(["test", "rules", test_file.to_str().unwrap()]).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.success(), "promtool test rules failed: {out:?}");
    let expected = promtool_expectations(&test_file);

    // 2. Alertmanager with a webhook, Tidemark with the compressed rules.
    let hook = WebhookReceiver::start().unwrap_or_else(|e| panic!("{e}"));
    let am = Alertmanager::start(AlertmanagerConfig::new(format!("{}/hook", hook.url()))).unwrap_or_else(|e| panic!("{e}"));
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, compressed_rules(&std::fs::read_to_string(seed_rules_path()).unwrap())).unwrap();
    let data = dir.path().join("data");
    let tm = start_tidemark(&data, &rules, &am);

    // 3. Ten minutes of history, then a sample of each series every second.
    let t0 = now_ms() - 10 * 60_000;
    let load = Arc::new(Mutex::new(Load { t0, resolve_at: None }));
    let history: Vec<i64> = (0..40).map(|i| t0 + i * 15_000).collect();
    write(&tm.base_url(), &load.lock(), &history).unwrap();
    let base = Arc::new(Mutex::new(tm.base_url()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (load, base, stop) = (load.clone(), base.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let l = *load.lock();
                let b = base.lock().clone();
                // Errors while Tidemark is down are expected: the gap is data lost by the sender, not acknowledged.
                let _ = write(&b, &l, &[now_ms()]);
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };

    // 4. MLQueueBacklog (for 30 s here) is pending; note when it became active.
    let active_at = wait("MLQueueBacklog pending", Duration::from_secs(30), || {
        let r = query(&base.lock(), r#"ALERTS_FOR_STATE{alertname="MLQueueBacklog"}"#);
        r.first().map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
    });
    // kill -9 halfway through its `for`.
    let kill_at = active_at + 15.0;
    while (now_ms() as f64) / 1000.0 < kill_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pending = query(&base.lock(), r#"ALERTS{alertname="MLQueueBacklog"}"#);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["metric"]["alertstate"], "pending");
    let status = Command::new("kill").args(["-9", &tm.pid().to_string()]).status().unwrap();
    assert!(status.success());
    drop(tm);
    let restarted_at = now_ms() as f64 / 1000.0;
    let tm = start_tidemark(&data, &rules, &am);
    *base.lock() = tm.base_url();

    // 5. The `for` state was restored: activeAt moved by the downtime only.
    let restored = wait("restored for state", Duration::from_secs(30), || {
        let r = query(&base.lock(), r#"ALERTS_FOR_STATE{alertname="MLQueueBacklog"}"#);
        let v = r.first()?["value"][1].as_str()?.parse::<f64>().ok()?;
        (v != active_at).then_some(v)
    });
    assert!(
        restored > active_at && restored < restarted_at - 5.0,
        "activeAt {active_at} restored to {restored}; restart at {restarted_at}: the clock must continue, not restart"
    );

    // 6. Each alert reaches Alertmanager's webhook firing, with promtool's
    // labels and annotations (and the external URL in generatorURL).
    let firing = wait("all three alerts firing at the webhook", Duration::from_secs(60), || {
        let got = received(&hook);
        let by_name: BTreeMap<String, serde_json::Value> = got
            .iter()
            .filter(|a| a["status"] == "firing")
            .map(|a| (a["labels"]["alertname"].as_str().unwrap().to_string(), a.clone()))
            .collect();
        ALERTS.iter().all(|n| by_name.contains_key(*n)).then_some(by_name)
    });
    // startsAt of a firing alert is when it fired.
    let ml_fired_at = rfc3339_seconds(firing["MLQueueBacklog"]["startsAt"].as_str().unwrap());
    assert!(
        ml_fired_at >= active_at + 30.0,
        "MLQueueBacklog fired at {ml_fired_at}, before its 30 s `for` from {active_at}"
    );
    assert!(
        ml_fired_at < restarted_at + 30.0,
        "MLQueueBacklog fired at {ml_fired_at}: its `for` restarted at the restart ({restarted_at})"
    );
    for name in ALERTS {
        let a = &firing[name];
        let (labels, annotations) = &expected[name];
        let got_labels: BTreeMap<String, String> =
            a["labels"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().into())).collect();
        let got_annotations: BTreeMap<String, String> =
            a["annotations"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().into())).collect();
        assert_eq!(&got_labels, labels, "{name} labels");
        assert_eq!(&got_annotations, annotations, "{name} annotations");
        assert!(a["generatorURL"].as_str().unwrap().starts_with("http://tidemark.test:9201/graph?g0.expr="), "{a}");
    }

    // 7. No burst after the restart: the new process sent each alert about
    // once per resend delay (1 m), so a handful of alerts in all.
    let sent = metric(&base.lock(), "tidemark_notifications_sent_total");
    assert!(sent <= 12.0, "{sent} alerts sent since the restart");

    // 8. The data changes: every alert resolves and Alertmanager says so.
    load.lock().resolve_at = Some(now_ms());
    wait("all three resolved at the webhook", Duration::from_secs(60), || {
        let got = received(&hook);
        ALERTS
            .iter()
            .all(|n| got.iter().any(|a| a["status"] == "resolved" && a["labels"]["alertname"] == *n))
            .then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let _ = am.api_v2_alerts();
}

//! The notifier against a real Alertmanager 0.25 (Debian's
//! `prometheus-alertmanager`) on 127.0.0.1, whose webhook receiver this
//! test runs: a firing alert arrives with its labels and annotations
//! intact, then its resolution.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tidemark_rules::notifier::Alert;
use tidemark_rules::{Notifier, NotifierOptions};
use tidemark_testkit::{now_ms, Alertmanager, AlertmanagerConfig, ReceivedRequest, WebhookReceiver};

const WAIT: Duration = Duration::from_secs(60);

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The webhook notifications (JSON) received so far whose alerts include
/// one in `status` with `alertname`.
fn notifications_with(reqs: &[ReceivedRequest], alertname: &str, status: &str) -> Vec<Value> {
    reqs.iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|v| {
            v["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == alertname && a["status"] == status))
        })
        .collect()
}

#[test]
fn a_firing_alert_and_its_resolution_reach_the_webhook() {
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let am = Alertmanager::start(AlertmanagerConfig::new(format!("{}/hook", hook.url()))).expect("alertmanager");
    let mut opts = NotifierOptions::new([am.url()]);
    opts.external_labels = map(&[("cluster", "eu1")]);
    let notifier = Notifier::start(opts).expect("notifier");

    let now = now_ms();
    let firing = Alert {
        labels: map(&[("alertname", "TidemarkNotifierTest"), ("severity", "page"), ("job", "api")]),
        annotations: map(&[("summary", "api error rate 5.2% <&> \"quoted\" é"), ("description", "line one\nline two")]),
        starts_at_ms: now - 60_000,
        ends_at_ms: Some(now + 3_600_000),
        generator_url: "http://tidemark:9090/graph?g0.expr=rate%28x%5B5m%5D%29&g0.tab=1".into(),
    };
    notifier.send(vec![firing.clone()]);
    let reqs = hook
        .wait_for(|r| !notifications_with(r, "TidemarkNotifierTest", "firing").is_empty(), WAIT)
        .unwrap_or_else(|e| panic!("{e}\nalertmanager log:\n{}", am.log_tail(30)));
    let n = &notifications_with(&reqs, "TidemarkNotifierTest", "firing")[0];
    assert_eq!(reqs[0].path, "/hook");
    assert_eq!(n["status"], "firing");
    let a = &n["alerts"][0];
    assert_eq!(
        a["labels"],
        json!({"alertname": "TidemarkNotifierTest", "severity": "page", "job": "api", "cluster": "eu1"})
    );
    assert_eq!(
        a["annotations"],
        json!({"summary": "api error rate 5.2% <&> \"quoted\" é", "description": "line one\nline two"})
    );
    assert_eq!(a["generatorURL"], firing.generator_url.as_str());
    let starts = a["startsAt"].as_str().expect("startsAt");
    assert!(starts.starts_with(&format_secs(firing.starts_at_ms)), "{starts} vs {}", firing.starts_at_ms);

    // Alertmanager holds it as active.
    let held: Value = serde_json::from_str(&am.api_v2_alerts().expect("GET /api/v2/alerts")).expect("JSON");
    let held = held.as_array().expect("array");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["status"]["state"], "active");
    assert_eq!(held[0]["labels"]["cluster"], "eu1");

    // The same alert, ended a second ago: resolved.
    let resolved = Alert { ends_at_ms: Some(now_ms() - 1_000), ..firing };
    notifier.send(vec![resolved.clone()]);
    let reqs = hook
        .wait_for(|r| !notifications_with(r, "TidemarkNotifierTest", "resolved").is_empty(), WAIT)
        .unwrap_or_else(|e| panic!("{e}\nalertmanager log:\n{}", am.log_tail(30)));
    let n = &notifications_with(&reqs, "TidemarkNotifierTest", "resolved")[0];
    assert_eq!(n["status"], "resolved");
    let a = &n["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "TidemarkNotifierTest");
    assert_eq!(a["annotations"]["summary"], "api error rate 5.2% <&> \"quoted\" é");
    let ends = a["endsAt"].as_str().expect("endsAt");
    assert!(ends.starts_with(&format_secs(resolved.ends_at_ms.unwrap_or_default())), "{ends}");

    let s = notifier.stats();
    assert_eq!(s.alertmanagers[0].sent_total, 2);
    assert_eq!((s.alertmanagers[0].errors_total, s.dropped_total), (0, 0));
    assert_eq!(s.alertmanagers[0].alertmanager, format!("{}/api/v2/alerts", am.url()));
    notifier.stop();
}

#[test]
fn an_alert_without_ends_at_is_accepted_and_kept_active() {
    // Sent as Go's zero time (what Prometheus would send), which
    // Alertmanager must read as "unset": now + resolve_timeout.
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let am = Alertmanager::start(AlertmanagerConfig::new(format!("{}/hook", hook.url()))).expect("alertmanager");
    let notifier = Notifier::start(NotifierOptions::new([am.url()])).expect("notifier");
    let now = now_ms();
    notifier.send(vec![Alert {
        labels: map(&[("alertname", "TidemarkNoEnd")]),
        annotations: BTreeMap::new(),
        starts_at_ms: now,
        ends_at_ms: None,
        generator_url: String::new(),
    }]);
    hook.wait_for(|r| !notifications_with(r, "TidemarkNoEnd", "firing").is_empty(), WAIT)
        .unwrap_or_else(|e| panic!("{e}\nalertmanager log:\n{}", am.log_tail(30)));
    let held: Value = serde_json::from_str(&am.api_v2_alerts().expect("GET /api/v2/alerts")).expect("JSON");
    assert_eq!(held[0]["status"]["state"], "active", "{held}");
    let ends = held[0]["endsAt"].as_str().expect("endsAt").to_string();
    // resolve_timeout is 5 m: the end is minutes ahead, not year 1.
    assert!(ends > format_secs(now + 60_000), "{ends}");
    assert_eq!(notifier.stats().alertmanagers[0].sent_total, 1);
}

/// `ms` as `YYYY-MM-DDTHH:MM:SS` (UTC), the part of an RFC 3339 time that
/// Alertmanager's own formatting (no fixed fraction width) keeps intact.
fn format_secs(ms: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", ms.div_euclid(1000)), "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .expect("date(1)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A CA and a server certificate for 127.0.0.1, and an Alertmanager web
/// config with TLS and basic auth (`alice` / `correct horse`), in `dir`.
fn tls_web_config(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "notifier test CA");
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let mut sp = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("server params");
    sp.distinguished_name.push(DnType::CommonName, "alertmanager");
    let cert = sp.signed_by(&key, &ca).expect("server cert");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write("ca.crt", &ca.pem());
    write("server.crt", &cert.pem());
    write("server.key", &key.serialize_pem());
    let hash = bcrypt::hash("correct horse", 4).expect("bcrypt");
    let web = dir.join("web.yml");
    let cfg = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  alice: '{hash}'\n",
        dir.join("server.crt").display(),
        dir.join("server.key").display()
    );
    std::fs::write(&web, cfg).expect("write web.yml");
    (web, ca.pem())
}

#[test]
fn https_with_a_ca_file_and_url_credentials_reaches_a_tls_alertmanager() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (web, ca_pem) = tls_web_config(dir.path());
    let hook = WebhookReceiver::start().expect("webhook receiver");
    let mut cfg = AlertmanagerConfig::new(format!("{}/hook", hook.url()));
    cfg.args = vec![format!("--web.config.file={}", web.display())];
    let tls = tidemark_testkit::TlsClient { ca_pem: Some(ca_pem.into_bytes()), client_cert: None };
    let client = tidemark_testkit::Http::with_tls(Duration::from_secs(10), &tls).expect("client");
    cfg.client = Some((client.basic_auth("alice", "correct horse"), true));
    let am = Alertmanager::start(cfg).expect("alertmanager over TLS");
    let port = am.port();

    let with = |url: String, ca: bool| {
        let mut o = NotifierOptions::new([url]);
        if ca {
            o.tls.ca_file = Some(dir.path().join("ca.crt"));
        }
        o.timeout = Duration::from_secs(10);
        Notifier::start(o).expect("notifier")
    };
    let good = with(format!("https://alice:correct%20horse@127.0.0.1:{port}"), true);
    let wrong_password = with(format!("https://alice:wrong@127.0.0.1:{port}"), true);
    let untrusted = with(format!("https://alice:correct%20horse@127.0.0.1:{port}"), false);
    let alert = |name: &str| Alert {
        labels: map(&[("alertname", name)]),
        annotations: BTreeMap::new(),
        starts_at_ms: now_ms(),
        ends_at_ms: Some(now_ms() + 600_000),
        generator_url: String::new(),
    };
    good.send(vec![alert("TidemarkTls")]);
    wrong_password.send(vec![alert("TidemarkWrongPassword")]);
    untrusted.send(vec![alert("TidemarkUntrusted")]);
    hook.wait_for(|r| !notifications_with(r, "TidemarkTls", "firing").is_empty(), WAIT)
        .unwrap_or_else(|e| panic!("{e}\nalertmanager log:\n{}", am.log_tail(30)));
    assert_eq!(good.stats().alertmanagers[0].sent_total, 1);

    let failed = |n: &Notifier| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let s = n.stats().alertmanagers[0].clone();
            if s.failed_requests_total > 0 {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "no failure recorded: {s:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let s = failed(&wrong_password);
    assert!(s.last_error.as_deref().unwrap_or("").contains("401"), "{s:?}");
    assert_eq!((s.sent_total, s.errors_total), (0, 1));
    let s = failed(&untrusted);
    assert!(s.last_error.as_deref().unwrap_or("").contains("UnknownIssuer"), "{s:?}");
    assert_eq!((s.sent_total, s.errors_total), (0, 1), "{s:?}");
    // Neither failure leaks the password into what is shown.
    for n in [&good, &wrong_password, &untrusted] {
        let shown = format!("{:?}", n.stats());
        assert!(!shown.contains("correct") && !shown.contains("wrong"), "{shown}");
    }
    let held: Value = serde_json::from_str(&am.api_v2_alerts().expect("GET over TLS")).expect("JSON");
    let names: Vec<&str> =
        held.as_array().expect("array").iter().filter_map(|a| a["labels"]["alertname"].as_str()).collect();
    assert_eq!(names, ["TidemarkTls"]);
}

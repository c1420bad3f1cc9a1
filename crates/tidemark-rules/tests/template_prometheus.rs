//! What `promtool test rules` cannot show: `externalURL`, `pathPrefix` and
//! `$externalURL` with an external URL set. A real Prometheus 2.42 runs
//! an alerting rule on 127.0.0.1 with `--web.external-url`; the
//! annotations it reports on `/api/v1/alerts` must equal ours.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidemark_rules::{expand_alert_template, QueryRunner, QuerySample, TemplateData};
use tidemark_testkit::{Http, Prometheus, PrometheusConfig};

const ANNOTATIONS: &[(&str, &str)] = &[
    ("url_fn", "{{ externalURL }}"),
    ("prefix", "{{ pathPrefix }}"),
    ("url_var", "{{ $externalURL }}|{{ .ExternalURL }}"),
    ("link", "{{ externalURL }}{{ graphLink \"rate(x[5m]) > 1\" }}"),
    ("external", "{{ $externalLabels }}|{{ $externalLabels.region }}"),
    ("value", "{{ $value }}|{{ humanize $value }}|{{ printf \"%.3f\" .Value }}"),
    ("labels", "{{ $labels }}|{{ $labels.team }}"),
    ("query", "{{ query \"vector(7)\" | first | value }}|{{ range query \"vector(7)\" }}{{ .Labels }}{{ end }}"),
];

/// `vector(N)` for the `query` function, as Prometheus' engine answers it.
struct Vectors;

impl QueryRunner for Vectors {
    fn query(&self, expr: &str, _t_ms: i64) -> Result<Vec<QuerySample>, String> {
        let n = expr
            .strip_prefix("vector(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse::<f64>().ok())
            .ok_or_else(|| format!("test runner cannot evaluate {expr:?}"))?;
        Ok(vec![QuerySample { labels: BTreeMap::new(), value: n }])
    }
}

#[test]
fn url_functions_match_prometheus() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rules = String::from(
        "groups:\n- name: urls\n  interval: 1s\n  rules:\n  - alert: Urls\n    expr: label_replace(vector(1234.5), \"team\", \"db\", \"\", \"\")\n    labels:\n      size: '{{ $value | humanize1024 }}'\n    annotations:\n",
    );
    for (name, text) in ANNOTATIONS {
        rules.push_str(&format!("      {name}: {}\n", serde_json::to_string(text).expect("json")));
    }
    let rules_path = dir.path().join("urls.rules.yml");
    std::fs::write(&rules_path, rules).expect("write rules");
    let mut config = PrometheusConfig::new(dir.path().join("data"));
    config.config_yaml = format!(
        "global:\n  evaluation_interval: 1s\n  external_labels:\n    region: eu-west\nrule_files:\n- {}\nscrape_configs: []\n",
        rules_path.display()
    );
    config.args =
        vec!["--web.external-url=http://prom.example.com:9090/some/prefix/".into(), "--web.route-prefix=/".into()];
    let prometheus = Prometheus::start(config).expect("prometheus starts");
    let http = Http::new(Duration::from_secs(5));

    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        let body = http.get(&format!("{}/api/v1/alerts", prometheus.url())).expect("GET /api/v1/alerts").text();
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if let Some(a) = json["data"]["alerts"].as_array().and_then(|a| a.first()) {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no alert within 30 s:\n{}", prometheus.log_tail(30));
        std::thread::sleep(Duration::from_millis(200));
    };

    // Prometheus drops the external URL's trailing slash.
    let data = TemplateData {
        labels: BTreeMap::from([("team".to_string(), "db".to_string())]),
        external_labels: BTreeMap::from([("region".to_string(), "eu-west".to_string())]),
        external_url: "http://prom.example.com:9090/some/prefix".into(),
        value: 1234.5,
    };
    let mut problems = Vec::new();
    for (name, text) in ANNOTATIONS {
        let ours = expand_alert_template("Urls", text, &data, 0, Some(&Vectors))
            .unwrap_or_else(|e| format!("<error expanding template: {e}>"));
        let theirs = alert["annotations"][name].as_str().unwrap_or("<missing>").to_string();
        if ours != theirs {
            problems.push(format!("{name} {text:?}:\n  prometheus: {theirs:?}\n  ours:       {ours:?}"));
        }
    }
    let size = expand_alert_template("Urls", "{{ $value | humanize1024 }}", &data, 0, None).expect("expands");
    if alert["labels"]["size"].as_str() != Some(size.as_str()) {
        problems.push(format!("label size: prometheus {:?}, ours {size:?}", alert["labels"]["size"]));
    }
    assert!(problems.is_empty(), "differs from Prometheus:\n{}", problems.join("\n"));
}

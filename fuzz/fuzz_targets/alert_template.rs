//! An arbitrary alert template, expanded with arbitrary labels and value,
//! must render to text or to Go's error text, never panic, hang or
//! allocate without bound. The `query` function runs against an empty
//! in-memory database.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tidemark_rules::{expand_alert_template, QueryRunner, QuerySample, TemplateData};

#[derive(Debug, Arbitrary)]
struct Input {
    template: String,
    labels: Vec<(String, String)>,
    value: f64,
    t_ms: i64,
}

struct NoData;

impl QueryRunner for NoData {
    fn query(&self, expr: &str, _t_ms: i64) -> Result<Vec<QuerySample>, String> {
        tidemark_promql::parse(expr).map_err(|e| e.to_string())?;
        Ok(vec![QuerySample { labels: BTreeMap::from([("job".to_string(), "x".to_string())]), value: 1.5 }])
    }
}

fuzz_target!(|input: Input| {
    let data = TemplateData {
        labels: input.labels.into_iter().take(16).collect(),
        external_labels: BTreeMap::new(),
        external_url: "http://localhost:9201".into(),
        value: input.value,
    };
    let _ = expand_alert_template("Fuzz", &input.template, &data, input.t_ms, Some(&NoData));
});

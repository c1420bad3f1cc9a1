//! PLACEHOLDER replaced by the rule-file helper's module at merge time: a
//! minimal reader without positions or validation.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{GroupSpec, RuleSpec};

/// Errors of rule files.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuleFileErrors(String);

#[derive(serde::Deserialize)]
struct F {
    groups: Vec<G>,
}
#[derive(serde::Deserialize)]
struct G {
    name: String,
    interval: Option<String>,
    #[serde(default)]
    rules: Vec<R>,
}
#[derive(serde::Deserialize)]
struct R {
    record: Option<String>,
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn dur(s: &Option<String>) -> Option<Duration> {
    let s = s.as_ref()?;
    promql_parser::util::parse_duration(s).ok()
}

/// Reads one file.
pub fn load_rule_file(
    path: &Path,
    _check_template: &dyn Fn(&str, &str) -> Result<(), String>,
) -> Result<Vec<GroupSpec>, RuleFileErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| RuleFileErrors(format!("{}: {e}", path.display())))?;
    let f: F = serde_norway::from_str(&text).map_err(|e| RuleFileErrors(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for g in f.groups {
        let mut spec = GroupSpec::new(g.name);
        spec.file = path.display().to_string();
        spec.interval = dur(&g.interval);
        for r in g.rules {
            let mut rule = match (r.record, r.alert) {
                (Some(n), None) => RuleSpec::recording(n, r.expr),
                (None, Some(n)) => RuleSpec::alerting(n, r.expr).for_duration(dur(&r.for_).unwrap_or_default()),
                _ => return Err(RuleFileErrors("record or alert".into())),
            };
            rule.labels = r.labels;
            for (k, v) in r.annotations {
                rule = rule.annotation(k, v);
            }
            spec.rules.push(rule);
        }
        out.push(spec);
    }
    Ok(out)
}

/// Expands globs.
pub fn expand_globs(patterns: &[String]) -> Result<Vec<PathBuf>, RuleFileErrors> {
    let mut out = Vec::new();
    for p in patterns {
        match p.strip_suffix("*.yml") {
            Some(dir) => {
                let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map_err(|e| RuleFileErrors(e.to_string()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yml"))
                    .collect();
                v.sort();
                out.extend(v);
            }
            None => out.push(PathBuf::from(p)),
        }
    }
    Ok(out)
}

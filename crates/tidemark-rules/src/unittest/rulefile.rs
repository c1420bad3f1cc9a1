//! TEMPORARY: a minimal reader of Prometheus rule files into
//! [`GroupSpec`]s, so the runner works before the crate's own rule-file
//! module (`crate::file`, with line numbers, name and template checks and
//! promtool's messages) lands on main. Replace `load_groups` by a call to it
//! then; nothing else in `unittest/` depends on how files are read.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::spec::parse_duration;
use crate::{GroupSpec, RuleKind, RuleSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: String,
    #[serde(default, rename = "for")]
    for_duration: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn dur(file: &str, what: &str, text: Option<&str>) -> Result<Option<Duration>, String> {
    match text {
        None => Ok(None),
        Some(t) => parse_duration(t)
            .map(|ms| Some(Duration::from_millis(ms as u64)))
            .map_err(|e| format!("{file}: {what}: {e}")),
    }
}

/// Reads one rule file into its groups (each with `file` set to `path`).
/// Once `crate::file` is the real module, this becomes
/// `crate::file::load_rule_file(path, &|alert, text| crate::template::check_alert_template(alert, text).map_err(|e| e.to_string()))`.
pub(crate) fn load_groups(path: &Path) -> Result<Vec<GroupSpec>, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let raw: RawFile = serde_norway::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let mut seen = HashSet::new();
    let mut groups = Vec::with_capacity(raw.groups.len());
    for g in raw.groups {
        if !seen.insert(g.name.clone()) {
            return Err(format!("{file}: groupname: \"{}\" is repeated in the same file", g.name));
        }
        let mut spec = GroupSpec::new(g.name.clone());
        spec.file = file.clone();
        spec.interval = dur(&file, "interval", g.interval.as_deref())?;
        spec.query_offset = dur(&file, "query_offset", g.query_offset.as_deref())?;
        spec.limit = g.limit;
        spec.labels = g.labels;
        for (i, r) in g.rules.into_iter().enumerate() {
            let kind = match (r.record, r.alert) {
                (Some(record), None) => RuleKind::Recording { record },
                (None, Some(alert)) => {
                    // Templates must parse, as rulefmt's validation requires.
                    for (what, texts) in [("label", &r.labels), ("annotation", &r.annotations)] {
                        for (k, text) in texts {
                            crate::template::check_alert_template(&alert, text).map_err(|e| {
                                format!(
                                    "{file}: group {:?}, rule {}, {:?}: msg=invalid {what} {k:?}: {e}",
                                    g.name,
                                    i + 1,
                                    alert
                                )
                            })?;
                        }
                    }
                    RuleKind::Alerting {
                        alert,
                        for_duration: dur(&file, "for", r.for_duration.as_deref())?.unwrap_or_default(),
                        keep_firing_for: dur(&file, "keep_firing_for", r.keep_firing_for.as_deref())?
                            .unwrap_or_default(),
                        annotations: r.annotations,
                    }
                }
                _ => {
                    return Err(format!(
                        "{file}: group {:?}, rule {}: one of 'record' or 'alert' must be set",
                        g.name,
                        i + 1
                    ))
                }
            };
            spec.rules.push(RuleSpec { kind, expr: r.expr, labels: r.labels, line: 0 });
        }
        groups.push(spec);
    }
    Ok(groups)
}

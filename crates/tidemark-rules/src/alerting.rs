//! Alerting rules: per label set, inactive → pending → firing, with `for`,
//! `keep_firing_for`, resolved alerts kept for 15 minutes, and the `ALERTS`
//! and `ALERTS_FOR_STATE` series, as Prometheus' `rules/alerting.go`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tidemark_storage::Labels;

use crate::env::{labels_to_map, RuleEnv};
use crate::error::RuleError;
use crate::notifier;
use crate::status::RuleStatus;
use crate::template::{AlertTemplate, TemplateData, TemplateError};

/// How long a resolved alert is kept (and re-sent) after it resolves.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Metric name of the series of active alerts.
pub const ALERTS_METRIC: &str = "ALERTS";
/// Metric name of the series that remembers when alerts became active.
pub const ALERTS_FOR_STATE_METRIC: &str = "ALERTS_FOR_STATE";

/// The state of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Resolved (kept for a while to be re-sent as resolved).
    Inactive,
    /// Active for less than the rule's `for`.
    Pending,
    /// Active for at least `for`.
    Firing,
}

impl AlertState {
    /// Prometheus' spelling: `inactive`, `pending`, `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert of a rule: a label set of the rule's result and its state.
/// Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// State.
    pub state: AlertState,
    /// Labels: the result's (without `__name__`), the rule's (expanded) and
    /// `alertname`.
    pub labels: BTreeMap<String, String>,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// The expression's value at the last evaluation that returned it.
    pub value: f64,
    /// When the label set first appeared (restored after a restart).
    pub active_at_ms: i64,
    /// When it started firing.
    pub fired_at_ms: Option<i64>,
    /// When it resolved.
    pub resolved_at_ms: Option<i64>,
    /// When it was last sent.
    pub last_sent_at_ms: Option<i64>,
    /// Until when the last send holds (its `endsAt` while firing).
    pub valid_until_ms: Option<i64>,
    /// Since when a firing alert is kept firing without a result.
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        // Resolved since the last send: send the resolution now.
        if let Some(resolved) = self.resolved_at_ms {
            if self.last_sent_at_ms.is_none_or(|sent| resolved > sent) {
                return true;
            }
        }
        self.last_sent_at_ms.is_none_or(|sent| sent + resend_delay_ms < ts)
    }
}

/// An alerting rule ready to evaluate.
#[derive(Debug)]
pub struct AlertingRule {
    pub(crate) name: String,
    pub(crate) expr: String,
    /// The expression as Prometheus prints it, for `generatorURL`.
    pub(crate) expr_display: String,
    pub(crate) hold: Duration,
    pub(crate) keep_firing_for: Duration,
    /// Rule labels with the group's labels merged in (templates, unexpanded).
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    /// The label and annotation templates, parsed once when the rule is
    /// built (Prometheus parses them again for every alert at every
    /// evaluation; the output is the same). A template that does not parse
    /// keeps the text its expansion would have failed with.
    label_templates: Vec<ParsedTemplate>,
    annotation_templates: Vec<ParsedTemplate>,
    /// Alerts by label set.
    pub(crate) active: Mutex<HashMap<Labels, Alert>>,
    /// False until `for` state has been restored after a start; `ALERTS`
    /// is not written before, as in Prometheus.
    pub(crate) restored: AtomicBool,
    pub(crate) status: Mutex<RuleStatus>,
}

impl AlertingRule {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        expr: String,
        expr_display: String,
        hold: Duration,
        keep_firing_for: Duration,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        restored: bool,
    ) -> AlertingRule {
        let label_templates = labels.values().map(|t| ParsedTemplate::parse(&name, t)).collect();
        let annotation_templates = annotations.values().map(|t| ParsedTemplate::parse(&name, t)).collect();
        AlertingRule {
            name,
            expr,
            expr_display,
            hold,
            keep_firing_for,
            labels,
            annotations,
            label_templates,
            annotation_templates,
            active: Mutex::default(),
            restored: AtomicBool::new(restored),
            status: Mutex::default(),
        }
    }

    /// The alert name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The expression as Prometheus prints it (`expr.String()`), as the
    /// rules API shows it.
    pub fn query(&self) -> &str {
        &self.expr_display
    }

    /// How long a result must persist before its alert fires (`for`).
    pub fn hold_duration(&self) -> Duration {
        self.hold
    }

    /// How long a firing alert keeps firing after its result is gone.
    pub fn keep_firing_for(&self) -> Duration {
        self.keep_firing_for
    }

    /// The annotations as written (templates unexpanded).
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// All alerts the rule tracks, resolved ones included, sorted by labels.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.active.lock().values().cloned().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// The rule's state: the highest state of its unresolved alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .lock()
            .values()
            .filter(|a| a.resolved_at_ms.is_none())
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Evaluates the rule at `ts` (the group's evaluation time; the query
    /// runs at `ts - offset_ms`) and returns the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples to write.
    pub(crate) fn eval(
        &self,
        env: &RuleEnv,
        ts: i64,
        offset_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Labels, f64)>, RuleError> {
        let query_t = ts - offset_ms;
        let result = env.query(&self.expr, query_t).map_err(RuleError::Query)?;

        let mut fresh: HashMap<Labels, Alert> = HashMap::with_capacity(result.len());
        for (labels, value) in result {
            let data = TemplateData {
                labels: labels_to_map(&labels),
                external_labels: env.external_labels.clone(),
                external_url: env.external_url.clone(),
                value,
            };
            let expand = |template: &ParsedTemplate| -> String {
                let expanded = match template {
                    ParsedTemplate::Ok(t) => t.expand(&data, ts, Some(env)),
                    ParsedTemplate::Err(e) => Err(e.clone()),
                };
                expanded.unwrap_or_else(|e| {
                    tracing::warn!(alert = %self.name, error = %e, "expanding alert template failed");
                    format!("<error expanding template: {e}>")
                })
            };
            let mut alert_labels = data.labels.clone();
            alert_labels.remove("__name__");
            for (k, template) in self.labels.keys().zip(&self.label_templates) {
                let expanded = expand(template);
                // As Prometheus' label builder: an empty value removes the label.
                if expanded.is_empty() {
                    alert_labels.remove(k);
                } else {
                    alert_labels.insert(k.clone(), expanded);
                }
            }
            alert_labels.insert("alertname".to_string(), self.name.clone());
            let annotations: BTreeMap<String, String> =
                self.annotations.keys().zip(&self.annotation_templates).map(|(k, t)| (k.clone(), expand(t))).collect();
            let key = Labels::new(&alert_labels).map_err(|e| RuleError::Labels(e.to_string()))?;
            if fresh.contains_key(&key) {
                return Err(RuleError::DuplicateAlertLabelSet);
            }
            fresh.insert(
                key,
                Alert {
                    state: AlertState::Pending,
                    labels: alert_labels,
                    annotations,
                    value,
                    active_at_ms: ts,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_at_ms: None,
                    valid_until_ms: None,
                    keep_firing_since_ms: None,
                },
            );
        }

        let mut active = self.active.lock();
        let returned: HashSet<Labels> = fresh.keys().cloned().collect();
        for (key, alert) in fresh {
            match active.get_mut(&key) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                _ => {
                    active.insert(key, alert);
                }
            }
        }

        let hold_ms = self.hold.as_millis() as i64;
        let keep_firing_ms = self.keep_firing_for.as_millis() as i64;
        let restored = self.restored.load(Ordering::Acquire);
        let mut out = Vec::new();
        let mut active_or_pending = 0usize;
        let mut remove = Vec::new();
        for (key, a) in active.iter_mut() {
            if !returned.contains(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_ms > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts);
                    keep_firing = ts - since < keep_firing_ms;
                }
                if a.state == AlertState::Pending || a.resolved_at_ms.is_some_and(|r| ts - r > RESOLVED_RETENTION_MS) {
                    remove.push(key.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            active_or_pending += 1;
            if a.state == AlertState::Pending && ts - a.active_at_ms >= hold_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts);
            }
            // `for` grew in a reload: a firing alert waits again.
            if a.state == AlertState::Firing && ts - a.active_at_ms < hold_ms {
                a.state = AlertState::Pending;
                a.fired_at_ms = None;
                a.last_sent_at_ms = None;
                a.keep_firing_since_ms = None;
            }
            if restored {
                out.push((self.alerts_sample_labels(a)?, 1.0));
                out.push((self.for_state_labels(&a.labels)?, (a.active_at_ms.div_euclid(1000)) as f64));
            }
        }
        for key in remove {
            active.remove(&key);
        }
        if limit > 0 && active_or_pending > limit {
            active.clear();
            return Err(RuleError::Limit { limit, count: active_or_pending, what: "alerts" });
        }
        Ok(out)
    }

    /// `ALERTS{alertname, alertstate, ...}`: the rule's labels as written,
    /// overlaid by the alert's.
    fn alerts_sample_labels(&self, a: &Alert) -> Result<Labels, RuleError> {
        let mut m = self.labels.clone();
        m.extend(a.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        m.insert("__name__".into(), ALERTS_METRIC.into());
        m.insert("alertname".into(), self.name.clone());
        m.insert("alertstate".into(), a.state.as_str().into());
        Labels::new(&m).map_err(|e| RuleError::Labels(e.to_string()))
    }

    /// `ALERTS_FOR_STATE{alertname, ...}`, whose value is `activeAt` in seconds.
    pub(crate) fn for_state_labels(&self, alert_labels: &BTreeMap<String, String>) -> Result<Labels, RuleError> {
        let mut m = self.labels.clone();
        m.extend(alert_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        m.insert("__name__".into(), ALERTS_FOR_STATE_METRIC.into());
        m.insert("alertname".into(), self.name.clone());
        Labels::new(&m).map_err(|e| RuleError::Labels(e.to_string()))
    }

    /// The alerts to send after an evaluation at `ts` (firing ones every
    /// resend delay, resolved ones until their retention ends), marking them
    /// sent, as Prometheus' `sendAlerts` and `sendAlerts` of `main.go`.
    pub(crate) fn alerts_to_send(&self, env: &RuleEnv, ts: i64, interval: Duration) -> Vec<notifier::Alert> {
        let resend_ms = env.resend_delay.as_millis() as i64;
        let delta_ms = interval.max(env.resend_delay).as_millis() as i64;
        let generator_url = format!("{}{}", env.external_url, table_link(&self.expr_display));
        let mut out = Vec::new();
        let mut active = self.active.lock();
        for a in active.values_mut() {
            if !a.needs_sending(ts, resend_ms) {
                continue;
            }
            a.last_sent_at_ms = Some(ts);
            // Allow for two evaluation or Alertmanager send failures.
            a.valid_until_ms = Some(ts + 4 * delta_ms);
            out.push(notifier::Alert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                ends_at_ms: a.resolved_at_ms.or(a.valid_until_ms),
                generator_url: generator_url.clone(),
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Label matchers that select every `ALERTS_FOR_STATE` series of this
    /// rule: its static labels (those without template syntax).
    pub(crate) fn for_state_matchers(&self) -> Vec<tidemark_storage::Matcher> {
        let mut m: BTreeMap<String, String> =
            self.labels.iter().filter(|(_, v)| !v.contains("{{")).map(|(k, v)| (k.clone(), v.clone())).collect();
        m.insert("__name__".into(), ALERTS_FOR_STATE_METRIC.into());
        m.insert("alertname".into(), self.name.clone());
        m.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| tidemark_storage::Matcher::equal(k, v)).collect()
    }
}

/// A label or annotation template of a rule, parsed once.
#[derive(Debug)]
enum ParsedTemplate {
    Ok(AlertTemplate),
    /// The error expanding it gives (Prometheus' "error parsing template").
    Err(TemplateError),
}

impl ParsedTemplate {
    fn parse(alert: &str, text: &str) -> ParsedTemplate {
        match AlertTemplate::parse(alert, text) {
            Ok(t) => ParsedTemplate::Ok(t),
            // `parse` reports as `check rules` does; expansion reports a
            // parse failure as Prometheus' expander does.
            Err(TemplateError::Check { name, message }) => ParsedTemplate::Err(TemplateError::Parse { name, message }),
            Err(e) => ParsedTemplate::Err(e),
        }
    }
}

/// Prometheus' `strutil.TableLinkForExpression`: the graph page's table tab
/// for an expression.
pub fn table_link(expr: &str) -> String {
    format!("/graph?g0.expr={}&g0.tab=1", query_escape(expr))
}

/// Prometheus' `strutil.GraphLinkForExpression`: the graph page's graph tab.
pub fn graph_link(expr: &str) -> String {
    format!("/graph?g0.expr={}&g0.tab=0", query_escape(expr))
}

/// Go's `url.QueryEscape`: space as `+`, every byte outside
/// `A-Z a-z 0-9 - _ . ~` as `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escape_matches_go() {
        // Go: url.QueryEscape(`sum(rate(x{a="b"}[5m])) > 0.05`)
        assert_eq!(
            query_escape(r#"sum(rate(x{a="b"}[5m])) > 0.05"#),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29%29+%3E+0.05"
        );
        assert_eq!(table_link("up == 0"), "/graph?g0.expr=up+%3D%3D+0&g0.tab=1");
    }
}

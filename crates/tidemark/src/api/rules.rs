//! `/api/v1/rules` and `/api/v1/alerts`: the rule manager's groups, rules
//! and alerts in Prometheus' JSON shapes (`web/api/v1/api.go`: `RuleGroup`,
//! `AlertingRule`, `RecordingRule`, `Alert`), with the filters and the
//! pagination of `/api/v1/rules`.
//!
//! What is shown, as Prometheus shows it:
//! - groups in the manager's order (by file, then name); a group none of
//!   whose rules passes the filters is left out;
//! - per rule its last evaluation's health, error, duration and wall-clock
//!   start; never evaluated: health `unknown`, zero duration and Go's zero
//!   time `0001-01-01T00:00:00Z`;
//! - per alerting rule its active alerts (pending or firing; resolved alerts
//!   that are only kept to be re-sent are not shown), sorted by labels, and
//!   the highest of their states as the rule's `state`;
//! - numbers as Go's `encoding/json` writes a `float64` (durations and
//!   intervals in seconds), an alert's value as
//!   `strconv.FormatFloat(v, 'e', -1, 64)`, times as RFC 3339 with
//!   nanosecond precision in UTC.
//!
//! Parameters of `/api/v1/rules` and their errors (`bad_data`, 400):
//! - `rule_name[]`, `rule_group[]`, `file[]` (query string or form body):
//!   keep rules with one of these names, in groups with one of these names,
//!   from one of these files;
//! - `match[]`: keep rules whose labels match one of the selectors;
//! - `type=alert|record` (query string, any case): only alerting or only
//!   recording rules;
//! - `exclude_alerts=true` (query string): `"alerts":null` instead of each
//!   alerting rule's alerts;
//! - `group_limit=N` (query string, 1 ≤ N < 2³¹) returns at most N groups
//!   and, when more follow, a `groupNextToken` to pass back as
//!   `group_next_token` with the same limit (the token is the SHA-256 of
//!   `file;name` of the first group of the next page, as Prometheus makes it).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tidemark_rules::{Alert, AlertState, AlertingRule, Group, RecordingRule, Rule, RuleStatus};
use tidemark_storage::Matcher;

use super::params::{format_rfc3339, Params};
use super::response::{ApiError, Reply};
use super::{blocking, json, ApiState};

/// How Go's `encoding/json` writes a zero `time.Time`.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `GET|POST /api/v1/rules`.
pub(crate) async fn rules(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (form, parts) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // `type`, `exclude_alerts` and the pagination parameters are read from
    // the URL only (`r.URL.Query()` in Prometheus), the lists from the form.
    let url = Params::from_query(parts.uri.query().unwrap_or(""));
    blocking(move || {
        let filter = RulesFilter::parse(&form, &url)?;
        let groups = st.rules.as_ref().map(|m| m.groups()).unwrap_or_default();
        render_rules(&groups, &filter).map(Reply::new)
    })
    .await
    .into_response()
}

/// `GET|POST /api/v1/alerts`: every active alert of every alerting rule.
pub(crate) async fn alerts(State(st): State<Arc<ApiState>>) -> Response {
    blocking(move || {
        let groups = st.rules.as_ref().map(|m| m.groups()).unwrap_or_default();
        Ok(Reply::new(render_alerts(&groups)))
    })
    .await
    .into_response()
}

/// At most this many groups per page, and where the page starts.
#[derive(Debug, Clone, PartialEq)]
struct Page {
    /// `group_limit`, at least 1.
    limit: usize,
    /// `group_next_token`, if given.
    token: Option<String>,
}

/// The parameters of `/api/v1/rules`, checked.
#[derive(Debug, Default)]
struct RulesFilter {
    rule_names: HashSet<String>,
    groups: HashSet<String>,
    files: HashSet<String>,
    matchers: Vec<Vec<Matcher>>,
    /// `type` is empty or `alert`.
    alerting: bool,
    /// `type` is empty or `record`.
    recording: bool,
    exclude_alerts: bool,
    page: Option<Page>,
}

impl RulesFilter {
    /// Reads the parameters in Prometheus' order, so that a request with
    /// several bad ones gets the same error: form, `match[]`, `type`,
    /// `exclude_alerts`, pagination.
    fn parse(form: &Params, url: &Params) -> Result<RulesFilter, ApiError> {
        if let Some(e) = &form.error {
            return Err(ApiError::bad_data(format!("error parsing form values: {e}")));
        }
        let set = |name: &str| form.all(name).into_iter().map(str::to_string).collect::<HashSet<String>>();
        let matchers = form.matchers().map_err(ApiError::bad_data)?;
        let typ = url.get("type").unwrap_or("").to_lowercase();
        if !matches!(typ.as_str(), "" | "alert" | "record") {
            return Err(ApiError::invalid_param("type", format!("not supported value {}", go_quote(&typ))));
        }
        let exclude_alerts = match url.get("exclude_alerts") {
            None => false,
            Some(v) => go_parse_bool(&v.to_lowercase()).map_err(|e| {
                ApiError::invalid_param("exclude_alerts", format!("error converting exclude_alerts: {e}"))
            })?,
        };
        Ok(RulesFilter {
            rule_names: set("rule_name[]"),
            groups: set("rule_group[]"),
            files: set("file[]"),
            matchers,
            alerting: typ != "record",
            recording: typ != "alert",
            exclude_alerts,
            page: parse_page(url)?,
        })
    }

    fn keeps_group(&self, g: &Group) -> bool {
        (self.groups.is_empty() || self.groups.contains(g.name()))
            && (self.files.is_empty() || self.files.contains(g.file()))
    }

    fn keeps_rule(&self, r: &Rule) -> bool {
        let kind_ok = match r {
            Rule::Alerting(_) => self.alerting,
            Rule::Recording(_) => self.recording,
        };
        kind_ok
            && (self.rule_names.is_empty() || self.rule_names.contains(r.name()))
            && matches_any_set(&self.matchers, r.labels())
    }
}

/// Prometheus' `parseListRulesPaginationRequest`.
fn parse_page(url: &Params) -> Result<Option<Page>, ApiError> {
    let token = url.get("group_next_token");
    let Some(limit) = url.get("group_limit") else {
        if token.is_some() {
            return Err(ApiError::invalid_param(
                "group_next_token",
                "group_limit needs to be present in order to paginate over the groups",
            ));
        }
        return Ok(None);
    };
    let n = go_parse_int32(limit)
        .map_err(|e| ApiError::invalid_param("group_limit", format!("group_limit needs to be a valid number: {e}")))?;
    if n <= 0 {
        return Err(ApiError::invalid_param("group_limit", "group_limit needs to be greater than 0"));
    }
    Ok(Some(Page { limit: n as usize, token: token.map(str::to_string) }))
}

/// Whether a rule's labels satisfy every matcher of at least one set (no
/// sets: every rule). A label the rule lacks has the empty value.
fn matches_any_set(sets: &[Vec<Matcher>], labels: &BTreeMap<String, String>) -> bool {
    sets.is_empty()
        || sets.iter().any(|set| set.iter().all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str))))
}

/// The page token of a group: hex SHA-256 of `file;name`.
fn group_token(g: &Group) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{};{}", g.file(), g.name()).as_bytes());
    let mut s = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The `data` of `/api/v1/rules`.
fn render_rules(groups: &[Arc<Group>], f: &RulesFilter) -> Result<String, ApiError> {
    let mut out = String::with_capacity(256 * groups.len() + 16);
    out.push_str("{\"groups\":[");
    let mut shown = 0usize;
    let mut token_found = false;
    let mut next_token = None;
    let mut rules_json = String::new();
    for g in groups {
        if let Some(Page { token: Some(token), .. }) = &f.page {
            if !token_found {
                if *token != group_token(g) {
                    continue;
                }
                token_found = true;
            }
        }
        if !f.keeps_group(g) {
            continue;
        }
        rules_json.clear();
        let mut n = 0;
        for rule in g.rules().iter().filter(|r| f.keeps_rule(r)) {
            if n > 0 {
                rules_json.push(',');
            }
            n += 1;
            match rule {
                Rule::Alerting(a) => alerting_rule(&mut rules_json, a, rule.labels(), &rule.status(), f.exclude_alerts),
                Rule::Recording(r) => recording_rule(&mut rules_json, r, rule.labels(), &rule.status()),
            }
        }
        if n == 0 {
            continue;
        }
        if let Some(page) = &f.page {
            if shown == page.limit {
                // A group beyond the page exists: the next page starts there.
                next_token = Some(group_token(g));
                break;
            }
        }
        if shown > 0 {
            out.push(',');
        }
        shown += 1;
        group(&mut out, g, &rules_json);
    }
    if let Some(Page { token: Some(token), .. }) = &f.page {
        if !token_found {
            return Err(ApiError::invalid_param(
                "group_next_token",
                format!("invalid group_next_token '{token}'. were rule groups changed?"),
            ));
        }
    }
    out.push(']');
    if let Some(t) = next_token {
        out.push_str(",\"groupNextToken\":");
        json::string(&mut out, &t);
    }
    out.push('}');
    Ok(out)
}

/// The `data` of `/api/v1/alerts`.
fn render_alerts(groups: &[Arc<Group>]) -> String {
    let mut out = String::from("{\"alerts\":[");
    let mut first = true;
    for g in groups {
        for rule in g.rules() {
            let Rule::Alerting(a) = rule else { continue };
            for al in active_alerts(a) {
                if !first {
                    out.push(',');
                }
                first = false;
                alert(&mut out, &al);
            }
        }
    }
    out.push_str("]}");
    out
}

/// Prometheus' `ActiveAlerts`: the rule's alerts that have not resolved,
/// sorted by labels.
fn active_alerts(a: &AlertingRule) -> Vec<Alert> {
    let mut v = a.alerts();
    v.retain(|al| al.resolved_at_ms.is_none());
    v
}

fn group(out: &mut String, g: &Group, rules_json: &str) {
    let stats = g.stats();
    out.push_str("{\"name\":");
    json::string(out, g.name());
    out.push_str(",\"file\":");
    json::string(out, g.file());
    out.push_str(",\"rules\":[");
    out.push_str(rules_json);
    out.push_str("],\"interval\":");
    seconds(out, g.interval());
    let _ = write!(out, ",\"limit\":{}", g.spec().limit);
    out.push_str(",\"evaluationTime\":");
    seconds(out, stats.last_duration);
    out.push_str(",\"lastEvaluation\":");
    last_evaluation(out, stats.last_evaluation_ms);
    out.push('}');
}

/// `labels` are the rule's own with the group's merged in ([`Rule::labels`]).
fn alerting_rule(
    out: &mut String,
    a: &AlertingRule,
    labels: &BTreeMap<String, String>,
    status: &RuleStatus,
    exclude_alerts: bool,
) {
    let alerts = active_alerts(a);
    // The highest state of the active alerts, from the same snapshot as
    // the list (`AlertingRule::state` would lock the alerts a second time).
    let state = alerts.iter().map(|al| al.state).max().unwrap_or(AlertState::Inactive);
    out.push_str("{\"state\":");
    json::string(out, state.as_str());
    out.push_str(",\"name\":");
    json::string(out, a.name());
    out.push_str(",\"query\":");
    json::string(out, a.query());
    out.push_str(",\"duration\":");
    seconds(out, a.hold_duration());
    out.push_str(",\"keepFiringFor\":");
    seconds(out, a.keep_firing_for());
    out.push_str(",\"labels\":");
    map(out, labels);
    out.push_str(",\"annotations\":");
    map(out, a.annotations());
    out.push_str(",\"alerts\":");
    if exclude_alerts {
        // Prometheus leaves its slice nil, which Go writes as `null`.
        out.push_str("null");
    } else {
        out.push('[');
        for (i, al) in alerts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            alert(out, al);
        }
        out.push(']');
    }
    health(out, status);
    out.push_str(",\"type\":\"alerting\"}");
}

fn recording_rule(out: &mut String, r: &RecordingRule, labels: &BTreeMap<String, String>, status: &RuleStatus) {
    out.push_str("{\"name\":");
    json::string(out, r.name());
    out.push_str(",\"query\":");
    json::string(out, r.query());
    // `omitempty` in Prometheus' `RecordingRule` (not in `AlertingRule`).
    if !labels.is_empty() {
        out.push_str(",\"labels\":");
        map(out, labels);
    }
    health(out, status);
    out.push_str(",\"type\":\"recording\"}");
}

/// `health`, `lastError` (only when there is one), `evaluationTime`,
/// `lastEvaluation`.
fn health(out: &mut String, status: &RuleStatus) {
    out.push_str(",\"health\":");
    json::string(out, status.health.as_str());
    if let Some(e) = status.last_error.as_deref().filter(|e| !e.is_empty()) {
        out.push_str(",\"lastError\":");
        json::string(out, e);
    }
    out.push_str(",\"evaluationTime\":");
    seconds(out, status.evaluation_time);
    out.push_str(",\"lastEvaluation\":");
    last_evaluation(out, status.last_evaluation_ms);
}

fn alert(out: &mut String, a: &Alert) {
    out.push_str("{\"labels\":");
    map(out, &a.labels);
    out.push_str(",\"annotations\":");
    map(out, &a.annotations);
    out.push_str(",\"state\":");
    json::string(out, a.state.as_str());
    out.push_str(",\"activeAt\":");
    json::string(out, &format_rfc3339(a.active_at_ms));
    if let Some(t) = a.keep_firing_since_ms {
        out.push_str(",\"keepFiringSince\":");
        json::string(out, &format_rfc3339(t));
    }
    out.push_str(",\"value\":\"");
    go_e_format(out, a.value);
    out.push_str("\"}");
}

/// A label or annotation map as a JSON object in name order (Go sorts map
/// keys by bytes, which is `BTreeMap<String, _>` order).
fn map(out: &mut String, m: &BTreeMap<String, String>) {
    json::string_object(out, m.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// A wall-clock start in ms, 0 meaning "never": Go's zero `time.Time`.
fn last_evaluation(out: &mut String, ms: i64) {
    if ms == 0 {
        json::string(out, GO_ZERO_TIME);
    } else {
        json::string(out, &format_rfc3339(ms));
    }
}

/// A duration as Go's `d.Seconds()` written by `encoding/json`.
fn seconds(out: &mut String, d: Duration) {
    go_json_float(out, d.as_secs_f64());
}

/// A finite `f64` as Go's `encoding/json` writes it: the shortest decimal
/// (`'f'` format), switching to the exponent form below 1e-6 and from 1e21
/// on, with negative exponents unpadded (`5e-7`) and positive ones at least
/// two digits with a sign (`1e+21`). Non-finite values cannot occur here
/// (durations); they are written as 0 rather than as invalid JSON.
fn go_json_float(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push('0');
        return;
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        out.push_str(mantissa);
        out.push('e');
        match exp.strip_prefix('-') {
            Some(digits) => {
                out.push('-');
                out.push_str(digits);
            }
            None => {
                out.push('+');
                if exp.len() < 2 {
                    out.push('0');
                }
                out.push_str(exp);
            }
        }
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `2.5e-07`, `NaN`,
/// `+Inf`, `-Inf`.
fn go_e_format(out: &mut String, v: f64) {
    if v.is_finite() {
        json::push_go_exp(out, v);
    } else {
        json::push_go_float(out, v);
    }
}

use tidemark_rules::template::go_quote;

/// Go's `strconv.ParseBool` with its error message.
fn go_parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", go_quote(s))),
    }
}

/// Go's `strconv.ParseInt(s, 10, 32)` with its error messages.
fn go_parse_int32(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)));
    }
    match s.parse::<i64>() {
        Ok(v) if i32::try_from(v).is_ok() => Ok(v),
        _ => Err(format!("strconv.ParseInt: parsing {}: value out of range", go_quote(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        go_json_float(&mut s, v);
        s
    }

    fn e(v: f64) -> String {
        let mut s = String::new();
        go_e_format(&mut s, v);
        s
    }

    #[test]
    fn floats_are_written_as_go_encoding_json_writes_them() {
        assert_eq!(f(0.0), "0");
        assert_eq!(f(60.0), "60");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(0.000123456), "0.000123456");
        assert_eq!(f(0.000001), "0.000001");
        assert_eq!(f(5e-7), "5e-7");
        assert_eq!(f(1.25e-10), "1.25e-10");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(1e20), "100000000000000000000");
        assert_eq!(f(Duration::from_nanos(1_234_567).as_secs_f64()), "0.001234567");
    }

    #[test]
    fn alert_values_use_go_e_format() {
        assert_eq!(e(1.0), "1e+00");
        assert_eq!(e(0.0), "0e+00");
        assert_eq!(e(-0.0), "-0e+00");
        assert_eq!(e(123.456), "1.23456e+02");
        assert_eq!(e(2.5e-7), "2.5e-07");
        assert_eq!(e(1e100), "1e+100");
        assert_eq!(e(f64::NAN), "NaN");
        assert_eq!(e(f64::INFINITY), "+Inf");
        assert_eq!(e(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn go_parsers_and_their_messages() {
        assert_eq!(go_parse_bool("true"), Ok(true));
        assert_eq!(go_parse_bool("0"), Ok(false));
        assert_eq!(go_parse_bool("yes"), Err("strconv.ParseBool: parsing \"yes\": invalid syntax".into()));
        assert_eq!(go_parse_int32("+7"), Ok(7));
        assert_eq!(go_parse_int32("-3"), Ok(-3));
        assert_eq!(go_parse_int32("1e3"), Err("strconv.ParseInt: parsing \"1e3\": invalid syntax".into()));
        assert_eq!(go_parse_int32(""), Err("strconv.ParseInt: parsing \"\": invalid syntax".into()));
        assert_eq!(
            go_parse_int32("2147483648"),
            Err("strconv.ParseInt: parsing \"2147483648\": value out of range".into())
        );
        assert_eq!(go_parse_int32("2147483647"), Ok(2_147_483_647));
        assert_eq!(
            go_parse_int32("99999999999999999999"),
            Err("strconv.ParseInt: parsing \"99999999999999999999\": value out of range".into())
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("alerts"), "\"alerts\"");
        assert_eq!(go_quote("a\"b\\c\n\u{1}\u{7f}é"), "\"a\\\"b\\\\c\\n\\x01\\x7fé\"");
    }

    #[test]
    fn rule_matchers_treat_missing_labels_as_empty() {
        let labels: BTreeMap<String, String> = [("severity".to_string(), "page".to_string())].into();
        let sets = |s: &str| super::super::params::parse_matchers(&[s]).unwrap();
        assert!(matches_any_set(&[], &labels));
        assert!(matches_any_set(&sets(r#"{severity="page"}"#), &labels));
        assert!(!matches_any_set(&sets(r#"{severity="ticket"}"#), &labels));
        assert!(!matches_any_set(&sets(r#"{severity="page",team="db"}"#), &labels));
        assert!(matches_any_set(&sets(r#"{severity="page",team=""}"#), &labels));
        let two = [sets(r#"{severity="ticket"}"#), sets(r#"{severity=~"pa.*"}"#)].concat();
        assert!(matches_any_set(&two, &labels));
    }
}

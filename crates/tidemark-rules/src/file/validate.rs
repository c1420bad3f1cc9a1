//! The semantic checks Prometheus makes on decoded groups and rules
//! (`rulefmt.Validate`), and the building of [`GroupSpec`]s from them.

use std::collections::{BTreeMap, HashSet};

use tidemark_promql::Position;

use super::decode::{Field, Pairs, Problem, RawGroup, RawRule};
use super::error::{RuleFileErrorKind, RuleRef};
use super::names::{is_valid_label_name, is_valid_metric_name};
use crate::model::{GroupSpec, RuleKind, RuleSpec};

/// Checks a template: (alert name, template text) to the parser's message.
pub(crate) type TemplateCheck<'a> = &'a dyn Fn(&str, &str) -> Result<(), String>;

/// Checks every group and rule, adding each problem to `problems`; returns
/// the groups as specs (meaningful only when no problem was found).
pub(crate) fn validate(
    file: &str,
    groups: &[RawGroup],
    check_template: TemplateCheck<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<GroupSpec> {
    let mut seen = HashSet::new();
    let mut specs = Vec::with_capacity(groups.len());
    for g in groups {
        let group_problem =
            |pos: Option<Position>, kind| Problem { pos, pos_alt: None, group: Some(g.name.clone()), rule: None, kind };
        if g.name.is_empty() && !g.name_invalid {
            problems.push(group_problem(g.pos, RuleFileErrorKind::EmptyGroupName));
        }
        if !g.name_invalid && !seen.insert(g.name.as_str()) {
            problems.push(group_problem(g.pos, RuleFileErrorKind::DuplicateGroupName(g.name.clone())));
        }
        if g.limit.value < 0 {
            problems.push(group_problem(g.limit.pos, RuleFileErrorKind::NegativeLimit(g.limit.value)));
        }
        for (name, _) in &g.labels {
            if !is_valid_label_name(&name.value) || name.value == "__name__" {
                problems.push(group_problem(name.pos, RuleFileErrorKind::InvalidLabelName(name.value.clone())));
            }
        }
        let mut spec = GroupSpec::new(g.name.clone());
        spec.file = file.to_string();
        spec.interval = g.interval;
        spec.query_offset = g.query_offset;
        spec.limit = usize::try_from(g.limit.value).unwrap_or(0);
        spec.labels = to_map(&g.labels);
        for (i, rule) in g.rules.iter().enumerate() {
            let rule_ref = RuleRef { index: i + 1, name: rule.display_name().to_string() };
            for (pos, pos_alt, kind) in validate_rule(rule, check_template) {
                problems.push(Problem {
                    pos,
                    pos_alt,
                    group: Some(g.name.clone()),
                    rule: Some(rule_ref.clone()),
                    kind,
                });
            }
            spec.rules.push(to_spec(rule));
        }
        specs.push(spec);
    }
    specs
}

/// One rule's problems: (position, second position, what), in
/// Prometheus' order.
fn validate_rule(
    r: &RawRule,
    check_template: TemplateCheck<'_>,
) -> Vec<(Option<Position>, Option<Position>, RuleFileErrorKind)> {
    use RuleFileErrorKind as K;
    let mut out = Vec::new();
    let record = r.record.is_given();
    let alert = r.alert.is_given();
    if record && alert {
        out.push((r.record.pos(), r.alert.pos(), K::BothRecordAndAlert));
    }
    if !record && !alert {
        // Promtool points at the absent nodes (0:0); the rule itself is
        // the better place.
        out.push((r.record.pos().or(r.alert.pos()).or(r.pos), None, K::NeitherRecordNorAlert));
    }
    match &r.expr {
        Field::Invalid(_) => {}
        Field::Missing => out.push((r.pos, None, K::MissingExpr)),
        Field::Set(e) if e.value.is_empty() => out.push((e.pos.or(r.pos), None, K::MissingExpr)),
        Field::Set(e) => {
            if let Err(err) = tidemark_promql::parse(&e.value) {
                out.push((e.pos, None, K::BadExpr(err)));
            }
        }
    }
    if let Field::Set(rec) = &r.record {
        if !rec.value.is_empty() {
            if !r.annotations.is_empty() {
                out.push((rec.pos, None, K::FieldInRecordingRule("annotations")));
            }
            if !r.for_duration.is_zero() {
                out.push((rec.pos, None, K::FieldInRecordingRule("for")));
            }
            if !r.keep_firing_for.is_zero() {
                out.push((rec.pos, None, K::FieldInRecordingRule("keep_firing_for")));
            }
            if !is_valid_metric_name(&rec.value) {
                out.push((rec.pos, None, K::InvalidRecordName(rec.value.clone())));
            }
            if rec.value.contains(['{', '}']) {
                out.push((rec.pos, None, K::BracesInRecordName(rec.value.clone())));
            }
        }
    }
    for (name, _) in &r.labels {
        if !is_valid_label_name(&name.value) || name.value == "__name__" {
            out.push((name.pos, None, K::InvalidLabelName(name.value.clone())));
        }
    }
    for (name, _) in &r.annotations {
        if !is_valid_label_name(&name.value) {
            out.push((name.pos, None, K::InvalidAnnotationName(name.value.clone())));
        }
    }
    // Templates are expanded for alerting rules only; a recording rule's
    // labels are literal.
    if let Field::Set(a) = &r.alert {
        if !a.value.is_empty() {
            for (what, pairs) in [("label", &r.labels), ("annotation", &r.annotations)] {
                for (name, text) in pairs {
                    if let Err(message) = check_template(&a.value, &text.value) {
                        out.push((text.pos, None, K::BadTemplate { what, name: name.value.clone(), message }));
                    }
                }
            }
        }
    }
    out
}

/// The spec of a rule: an alerting rule when `alert` is set, else a
/// recording rule (only meaningful when the rule passed its checks).
fn to_spec(r: &RawRule) -> RuleSpec {
    let kind = if r.alert.is_given() {
        RuleKind::Alerting {
            alert: r.alert.text().to_string(),
            for_duration: r.for_duration,
            keep_firing_for: r.keep_firing_for,
            annotations: to_map(&r.annotations),
        }
    } else {
        RuleKind::Recording { record: r.record.text().to_string() }
    };
    RuleSpec { kind, expr: r.expr.text().to_string(), labels: to_map(&r.labels), line: r.pos.map_or(0, |p| p.line) }
}

fn to_map(pairs: &Pairs) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.value.clone(), v.value.clone())).collect()
}

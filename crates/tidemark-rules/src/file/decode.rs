//! From a YAML value to the fields of groups and rules, each with where it
//! was written, collecting every unknown field, wrong type and bad
//! duration instead of stopping at the first.
//!
//! Values come from `serde_norway`; positions from the [`PosTree`] of the
//! same text. Scalars become strings as Go's YAML library makes them when
//! it decodes into a string field (`record: 0` is the name "0", a null is
//! the empty string).

use std::time::Duration;

use serde_norway::{Mapping, Value};
use tidemark_promql::Position;

use super::duration::parse_duration;
use super::error::{RuleFileErrorKind, RuleRef};
use super::positions::Cursor;

/// Fields of the top level, of a group and of a rule, in the order the
/// Prometheus documentation lists them (the order error messages list them).
pub(crate) const FILE_FIELDS: &[&str] = &["groups"];
pub(crate) const GROUP_FIELDS: &[&str] = &["name", "interval", "query_offset", "limit", "labels", "rules"];
pub(crate) const RULE_FIELDS: &[&str] = &["record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"];

/// A value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct At<T> {
    pub(crate) value: T,
    pub(crate) pos: Option<Position>,
}

/// A string field of a rule as written.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    /// Not in the mapping.
    Missing,
    /// Present but not a string (already reported).
    Invalid(Option<Position>),
    /// Present.
    Set(At<String>),
}

impl Field {
    /// The text, "" unless set (Go's zero value).
    pub(crate) fn text(&self) -> &str {
        match self {
            Field::Set(a) => &a.value,
            _ => "",
        }
    }

    /// Where the node is, when it is in the file.
    pub(crate) fn pos(&self) -> Option<Position> {
        match self {
            Field::Missing => None,
            Field::Invalid(p) => *p,
            Field::Set(a) => a.pos,
        }
    }

    /// Set to a non-empty text, or present with a value of the wrong type.
    pub(crate) fn is_given(&self) -> bool {
        match self {
            Field::Missing => false,
            Field::Invalid(_) => true,
            Field::Set(a) => !a.value.is_empty(),
        }
    }
}

/// Name-value pairs (`labels`, `annotations`): name position, name, value position, value.
pub(crate) type Pairs = Vec<(At<String>, At<String>)>;

/// A group as decoded, before its semantic checks.
#[derive(Debug)]
pub(crate) struct RawGroup {
    pub(crate) pos: Option<Position>,
    pub(crate) name: String,
    /// `name` is present but not a string (already reported).
    pub(crate) name_invalid: bool,
    pub(crate) interval: Option<Duration>,
    pub(crate) query_offset: Option<Duration>,
    /// As written; a negative limit is a semantic error.
    pub(crate) limit: At<i64>,
    pub(crate) labels: Pairs,
    pub(crate) rules: Vec<RawRule>,
}

/// A rule as decoded, before its semantic checks.
#[derive(Debug)]
pub(crate) struct RawRule {
    pub(crate) pos: Option<Position>,
    pub(crate) record: Field,
    pub(crate) alert: Field,
    pub(crate) expr: Field,
    pub(crate) for_duration: Duration,
    pub(crate) keep_firing_for: Duration,
    pub(crate) labels: Pairs,
    pub(crate) annotations: Pairs,
}

impl RawRule {
    /// The name errors give the rule: its alert, else its record.
    pub(crate) fn display_name(&self) -> &str {
        if self.alert.text().is_empty() {
            self.record.text()
        } else {
            self.alert.text()
        }
    }
}

/// A problem, with the context it is reported in.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) pos: Option<Position>,
    /// A second position (promtool's `record` and `alert` pair).
    pub(crate) pos_alt: Option<Position>,
    pub(crate) group: Option<String>,
    pub(crate) rule: Option<RuleRef>,
    pub(crate) kind: RuleFileErrorKind,
}

/// Where errors go while decoding, with the group and rule being decoded.
struct Sink<'e> {
    errors: &'e mut Vec<Problem>,
    group: Option<String>,
    rule: Option<RuleRef>,
}

impl Sink<'_> {
    fn push(&mut self, pos: Option<Position>, kind: RuleFileErrorKind) {
        self.errors.push(Problem { pos, pos_alt: None, group: self.group.clone(), rule: self.rule.clone(), kind });
    }

    fn wrong_type(&mut self, pos: Option<Position>, field: &str, expected: &'static str, found: &Value) {
        self.push(pos, RuleFileErrorKind::WrongType { field: field.to_string(), expected, found: describe(found) });
    }
}

/// Decodes the document: its groups, and every problem met on the way.
pub(crate) fn decode_file(doc: &Value, at: Cursor<'_>, errors: &mut Vec<Problem>) -> Vec<RawGroup> {
    let mut sink = Sink { errors, group: None, rule: None };
    let doc = untag(doc);
    let map = match doc {
        Value::Null => return Vec::new(),
        Value::Mapping(m) => m,
        other => {
            sink.wrong_type(at.pos(), "groups", "a mapping with a 'groups' list", other);
            return Vec::new();
        }
    };
    let mut groups = Vec::new();
    for_each_field(map, at, FILE_FIELDS, &mut sink, |key, value, key_pos, value_at, sink| {
        debug_assert_eq!(key, "groups");
        match untag(value) {
            Value::Null => {}
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    groups.push(decode_group(item, value_at.index(i), sink.errors));
                }
            }
            other => sink.wrong_type(key_pos, "groups", "a list", other),
        }
    });
    groups
}

fn decode_group(value: &Value, at: Cursor<'_>, errors: &mut Vec<Problem>) -> RawGroup {
    let mut group = RawGroup {
        pos: at.pos(),
        name: String::new(),
        name_invalid: false,
        interval: None,
        query_offset: None,
        limit: At { value: 0, pos: None },
        labels: Vec::new(),
        rules: Vec::new(),
    };
    let mut sink = Sink { errors, group: None, rule: None };
    let map = match untag(value) {
        Value::Mapping(m) => m,
        Value::Null => return group,
        other => {
            sink.wrong_type(at.pos(), "groups", "a list of mappings", other);
            // Already reported: not also an empty name.
            group.name_invalid = true;
            return group;
        }
    };
    // The name first, so every error of the group can name it.
    if let Some(v) = map.get("name") {
        match string_field(v, at.get("name").pos(), "name", &mut sink) {
            Some(name) => group.name = name,
            None => group.name_invalid = true,
        }
    }
    sink.group = Some(group.name.clone());
    for_each_field(map, at, GROUP_FIELDS, &mut sink, |key, value, key_pos, value_at, sink| match key {
        "name" => {}
        "interval" => group.interval = duration_field(value, value_at.pos(), key, sink),
        "query_offset" => group.query_offset = duration_field(value, value_at.pos(), key, sink),
        "limit" => match untag(value) {
            Value::Null => {}
            Value::Number(n) if n.as_i64().is_some() => {
                group.limit = At { value: n.as_i64().unwrap_or(0), pos: value_at.pos() }
            }
            other => sink.wrong_type(value_at.pos(), key, "an integer", other),
        },
        "labels" => group.labels = pairs_field(value, key_pos, value_at, key, sink),
        "rules" => match untag(value) {
            Value::Null => {}
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(rule) = decode_rule(item, value_at.index(i), i + 1, sink) {
                        group.rules.push(rule);
                    }
                }
            }
            other => sink.wrong_type(key_pos, key, "a list", other),
        },
        _ => unreachable!("for_each_field passes known fields only"),
    });
    group
}

fn decode_rule(value: &Value, at: Cursor<'_>, index: usize, sink: &mut Sink<'_>) -> Option<RawRule> {
    let map = match untag(value) {
        Value::Mapping(m) => m,
        other => {
            let kind = RuleFileErrorKind::WrongType {
                field: "rules".into(),
                expected: "a list of mappings",
                found: describe(other),
            };
            sink.errors.push(Problem {
                pos: at.pos(),
                pos_alt: None,
                group: sink.group.clone(),
                rule: Some(RuleRef { index, name: String::new() }),
                kind,
            });
            return None;
        }
    };
    let mut rule = RawRule {
        pos: at.pos(),
        record: Field::Missing,
        alert: Field::Missing,
        expr: Field::Missing,
        for_duration: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        labels: Vec::new(),
        annotations: Vec::new(),
    };
    // The rule's name for its errors is known only once `alert` and
    // `record` are read; read them quietly first.
    let quiet = |key: &str| map.get(key).and_then(scalar_text).unwrap_or_default();
    let name = if quiet("alert").is_empty() { quiet("record") } else { quiet("alert") };
    let mut sink = Sink { errors: sink.errors, group: sink.group.clone(), rule: Some(RuleRef { index, name }) };
    for_each_field(map, at, RULE_FIELDS, &mut sink, |key, value, key_pos, value_at, sink| {
        let text = |sink: &mut Sink<'_>| match string_field(value, value_at.pos(), key, sink) {
            Some(s) => Field::Set(At { value: s, pos: value_at.pos() }),
            None => Field::Invalid(value_at.pos()),
        };
        match key {
            "record" => rule.record = text(sink),
            "alert" => rule.alert = text(sink),
            "expr" => rule.expr = text(sink),
            "for" => rule.for_duration = duration_field(value, value_at.pos(), key, sink).unwrap_or_default(),
            "keep_firing_for" => {
                rule.keep_firing_for = duration_field(value, value_at.pos(), key, sink).unwrap_or_default()
            }
            "labels" => rule.labels = pairs_field(value, key_pos, value_at, key, sink),
            "annotations" => rule.annotations = pairs_field(value, key_pos, value_at, key, sink),
            _ => unreachable!("for_each_field passes known fields only"),
        }
    });
    Some(rule)
}

/// Calls `f(key, value, key position, value cursor)` for each known field
/// of `map`, in the order written; reports the unknown ones.
fn for_each_field<'t>(
    map: &Mapping,
    at: Cursor<'t>,
    known: &'static [&'static str],
    sink: &mut Sink<'_>,
    mut f: impl FnMut(&'static str, &Value, Option<Position>, Cursor<'t>, &mut Sink<'_>),
) {
    for (key, value) in map {
        let key_text = scalar_text(key).unwrap_or_default();
        // serde_norway rejects duplicate keys, so each key occurs once.
        let (key_pos, value_at) = at.entry(&key_text, 0);
        match known.iter().find(|k| **k == key_text) {
            Some(k) => f(k, value, key_pos, value_at, sink),
            None => {
                sink.push(key_pos.or(at.pos()), RuleFileErrorKind::UnknownField { field: key_text, expected: known })
            }
        }
    }
}

fn string_field(value: &Value, pos: Option<Position>, field: &str, sink: &mut Sink<'_>) -> Option<String> {
    let text = scalar_text(value);
    if text.is_none() {
        sink.wrong_type(pos, field, "a string", value);
    }
    text
}

fn duration_field(value: &Value, pos: Option<Position>, field: &str, sink: &mut Sink<'_>) -> Option<Duration> {
    // Null is no value (Go leaves the zero duration), not an empty string.
    if matches!(untag(value), Value::Null) {
        return None;
    }
    let text = string_field(value, pos, field, sink)?;
    match parse_duration(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            sink.push(pos, RuleFileErrorKind::BadDuration(e));
            None
        }
    }
}

fn pairs_field(value: &Value, key_pos: Option<Position>, at: Cursor<'_>, field: &str, sink: &mut Sink<'_>) -> Pairs {
    let map = match untag(value) {
        Value::Null => return Vec::new(),
        Value::Mapping(m) => m,
        other => {
            sink.wrong_type(key_pos, field, "a mapping of names to strings", other);
            return Vec::new();
        }
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        let Some(name) = scalar_text(k) else {
            sink.wrong_type(at.pos(), field, "string names", k);
            continue;
        };
        let (name_pos, value_at) = at.entry(&name, 0);
        let Some(text) = string_field(v, value_at.pos(), field, sink) else { continue };
        pairs.push((At { value: name, pos: name_pos }, At { value: text, pos: value_at.pos() }));
    }
    pairs
}

/// The text of a scalar as a Go string field receives it; `None` for a
/// sequence or mapping.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match untag(value) {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => None,
    }
}

/// The value under any `!tag`s.
fn untag(mut value: &Value) -> &Value {
    while let Value::Tagged(t) = value {
        value = &t.value;
    }
    value
}

/// Names a value's type for messages.
fn describe(value: &Value) -> String {
    match untag(value) {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", super::error::go_quote(s)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

//! The values a template works with: exactly the Go types Prometheus hands
//! to its templates, so that printing, comparing and type errors read as
//! Go's do.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use tidemark_promql::go_fmt::go_g;

/// One sample of a `query` result: Go's `*template.sample`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub labels: Rc<BTreeMap<String, String>>,
    pub value: f64,
}

/// The element type of a map, which decides what a missing key gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// `map[string]string`: a missing key is `""`.
    Strings,
    /// `map[string]interface {}` (from `args`): a missing key is nil.
    Any,
}

/// A Go value as a template sees it.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// No value at all (Go's invalid `reflect.Value`): prints `<no value>`.
    Invalid,
    /// A nil `*template.sample`.
    NilSample,
    Bool(bool),
    /// Go `int`.
    Int(i64),
    /// Go `uint8`, from indexing a string.
    Byte(u8),
    Float(f64),
    Str(Rc<str>),
    /// `html/template.HTML` from `safeHtml`.
    Html(Rc<str>),
    Map(MapKind, Rc<BTreeMap<String, Value>>),
    /// `*template.sample`.
    Sample(Rc<Sample>),
    /// `template.queryResult` (`[]*sample`). Shared and mutable because
    /// Go's `sortByLabel` sorts its argument in place.
    Vector(Rc<RefCell<Vec<Rc<Sample>>>>),
    /// `*time.Time`, as nanoseconds since the epoch, UTC.
    Time(i64),
    /// The alert template data struct.
    Data(Rc<AlertData>),
}

/// Prometheus' `AlertTemplateData` struct.
#[derive(Debug, Clone)]
pub(crate) struct AlertData {
    pub labels: Value,
    pub external_labels: Value,
    pub external_url: Rc<str>,
    pub value: f64,
}

pub(crate) const DATA_TYPE: &str =
    "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }";

impl Value {
    pub fn vector(samples: Vec<Rc<Sample>>) -> Value {
        Value::Vector(Rc::new(RefCell::new(samples)))
    }

    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    pub fn string_map(m: &BTreeMap<String, String>) -> Value {
        Value::Map(MapKind::Strings, Rc::new(m.iter().map(|(k, v)| (k.clone(), Value::str(v))).collect()))
    }

    /// Go's `reflect.Type.String()` of the value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid => "<nil>",
            Value::NilSample | Value::Sample(_) => "*template.sample",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Byte(_) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::Map(MapKind::Strings, _) => "map[string]string",
            Value::Map(MapKind::Any, _) => "map[string]interface {}",
            Value::Vector(_) => "template.queryResult",
            Value::Time(_) => "*time.Time",
            Value::Data(_) => DATA_TYPE,
        }
    }

    /// The text of a string kind (`string` or `template.HTML`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Html(s) => Some(s),
            _ => None,
        }
    }

    /// Go's template truth: the zero value of its type is false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::NilSample => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Byte(b) => *b != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::Map(_, m) => !m.is_empty(),
            Value::Vector(v) => !v.borrow().is_empty(),
            Value::Sample(_) | Value::Time(_) | Value::Data(_) => true,
        }
    }

    /// Go's `%v` of the value, `depth` 0 being the operand itself (Go
    /// prints a pointer to a struct as `&{...}` only there).
    pub fn fmt_v(&self, out: &mut String, depth: usize) {
        match self {
            Value::Invalid => out.push_str("<nil>"),
            Value::NilSample => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Byte(b) => out.push_str(&b.to_string()),
            Value::Float(f) => out.push_str(&go_g(*f)),
            Value::Str(s) | Value::Html(s) => out.push_str(s),
            Value::Map(_, m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.fmt_v(out, depth + 1);
                }
                out.push(']');
            }
            Value::Sample(s) => {
                if depth == 0 {
                    out.push('&');
                    sample_struct(s, out, depth);
                } else {
                    // Go prints the pointer's address here; no two runs agree.
                    out.push_str(&format!("{:#x}", Rc::as_ptr(s) as usize));
                }
            }
            Value::Vector(v) => {
                out.push('[');
                for (i, s) in v.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    Value::Sample(s.clone()).fmt_v(out, depth + 1);
                }
                out.push(']');
            }
            Value::Time(ns) => out.push_str(&super::gotime::time_string(*ns)),
            Value::Data(d) => {
                out.push('{');
                d.labels.fmt_v(out, depth + 1);
                out.push(' ');
                d.external_labels.fmt_v(out, depth + 1);
                out.push(' ');
                out.push_str(&d.external_url);
                out.push(' ');
                out.push_str(&go_g(d.value));
                out.push('}');
            }
        }
    }

    /// `%v` as a string.
    pub fn to_v(&self) -> String {
        let mut s = String::new();
        self.fmt_v(&mut s, 0);
        s
    }

    /// What the template prints for `{{ x }}`: pointers are followed
    /// first, and no value prints as `<no value>`.
    pub fn print_template(&self, out: &mut String) {
        match self {
            Value::Invalid => out.push_str("<no value>"),
            Value::Sample(s) => sample_struct(s, out, 0),
            v => v.fmt_v(out, 0),
        }
    }
}

fn sample_struct(s: &Sample, out: &mut String, depth: usize) {
    out.push('{');
    Value::string_map(&s.labels).fmt_v(out, depth + 1);
    out.push(' ');
    out.push_str(&go_g(s.value));
    out.push('}');
}

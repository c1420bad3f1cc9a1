//! What can be wrong with a rule file, and where: one [`RuleFileError`]
//! per problem, printed in the shape `promtool check rules` prints.

use std::fmt;

use tidemark_promql::Position;

use super::duration::DurationError;

/// Everything wrong with one or more rule files; [`fmt::Display`] prints one
/// error per line.
///
/// ```
/// let err = tidemark_rules::parse_rule_text("r.yml", "groups:\n- name: x\n  rulez: []\n", &|_, _| Ok(())).unwrap_err();
/// assert_eq!(err.to_string(), "r.yml: 3:3: group \"x\": unknown field \"rulez\" (expected one of name, interval, query_offset, limit, labels, rules)");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFileErrors {
    /// The errors, in the order of the file (per file, for several files).
    pub errors: Vec<RuleFileError>,
}

impl RuleFileErrors {
    /// A collection of one error.
    pub(crate) fn one(error: RuleFileError) -> RuleFileErrors {
        RuleFileErrors { errors: vec![error] }
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there are none (never the case for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for RuleFileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleFileErrors {}

/// The rule an error is about: its 1-based index in its group and its name
/// (the `record` or `alert` value, empty when it has neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// 1-based index of the rule in its group.
    pub index: usize,
    /// The recorded metric or alert name.
    pub name: String,
}

/// One problem in a rule file.
///
/// Printed as `FILE: LINE:COL: group "G", rule N, "NAME": MESSAGE`, the parts
/// that do not apply left out; promtool's two-position form (`4:17: 5:16:`)
/// is used when both `record` and `alert` are set, or neither.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFileError {
    /// The file, as it was named to the loader.
    pub file: String,
    /// Where in the file (1-based line and column, in characters), when known.
    pub position: Option<Position>,
    /// A second position (the `alert` node when the first is the `record` node).
    pub position_alt: Option<Position>,
    /// The group's name, for errors inside a group.
    pub group: Option<String>,
    /// The rule, for errors inside a rule.
    pub rule: Option<RuleRef>,
    /// What is wrong.
    pub kind: RuleFileErrorKind,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(p) = self.position {
            write!(f, "{p}: ")?;
        }
        if let Some(p) = self.position_alt {
            write!(f, "{p}: ")?;
        }
        match (&self.group, &self.rule) {
            (Some(g), Some(r)) => write!(f, "group {}, rule {}, {}: ", go_quote(g), r.index, go_quote(&r.name))?,
            // Promtool prints its two group-level errors without a group
            // prefix (the message names the group); ours keep that text.
            (Some(_), None) if self.kind.names_group() => {}
            (Some(g), None) => write!(f, "group {}: ", go_quote(g))?,
            _ => {}
        }
        write!(f, "{}", self.kind)
    }
}

/// What is wrong; the texts are Prometheus' where Prometheus has the check.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleFileErrorKind {
    /// The file could not be read.
    #[error("{0}")]
    Io(String),
    /// The file is not UTF-8 text.
    #[error("yaml: invalid UTF-8 in the file (at byte {0})")]
    NotUtf8(usize),
    /// The text is not YAML, in the YAML parser's words.
    #[error("yaml: {0}")]
    Yaml(String),
    /// A mapping key that is not a field of the object.
    #[error("unknown field {} (expected one of {})", go_quote(.field), .expected.join(", "))]
    UnknownField {
        /// The key as written.
        field: String,
        /// The fields that object has.
        expected: &'static [&'static str],
    },
    /// A key given twice in one mapping.
    #[error("mapping key {} already defined at line {first_line}", go_quote(.key))]
    DuplicateKey {
        /// The key.
        key: String,
        /// Line of its first occurrence.
        first_line: usize,
    },
    /// A value of the wrong YAML type.
    #[error("field '{field}': expected {expected}, got {found}")]
    WrongType {
        /// The field.
        field: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// A duration field that does not hold a Prometheus duration.
    #[error("{0}")]
    BadDuration(#[from] DurationError),
    /// `limit` below zero.
    #[error("invalid field 'limit': {0} is negative (0 means no limit)")]
    NegativeLimit(i64),
    /// A group without a name.
    #[error("Groupname must not be empty")]
    EmptyGroupName,
    /// Two groups of one file with the same name.
    #[error("groupname: \"{0}\" is repeated in the same file")]
    DuplicateGroupName(String),
    /// A rule with both `record` and `alert`.
    #[error("only one of 'record' and 'alert' must be set")]
    BothRecordAndAlert,
    /// A rule with neither `record` nor `alert`.
    #[error("one of 'record' or 'alert' must be set")]
    NeitherRecordNorAlert,
    /// A rule without `expr`.
    #[error("field 'expr' must be set in rule")]
    MissingExpr,
    /// An `expr` that is not PromQL; the error's position is inside the expression.
    #[error("could not parse expression: {0}")]
    BadExpr(tidemark_promql::ParseError),
    /// `for`, `keep_firing_for` or `annotations` on a recording rule.
    #[error("invalid field '{0}' in recording rule")]
    FieldInRecordingRule(&'static str),
    /// A `record` that is not a valid metric name.
    #[error("invalid recording rule name: {0}")]
    InvalidRecordName(String),
    /// A `record` holding braces: a selector where a name belongs.
    #[error("braces present in the recording rule name; should it be in expr?: {0}")]
    BracesInRecordName(String),
    /// A label name that is not valid, or `__name__`.
    #[error("invalid label name: {0}")]
    InvalidLabelName(String),
    /// An annotation name that is not a valid label name.
    #[error("invalid annotation name: {0}")]
    InvalidAnnotationName(String),
    /// A label or annotation template of an alerting rule that does not parse.
    #[error("{what} {}: {message}", go_quote(.name))]
    BadTemplate {
        /// `label` or `annotation`.
        what: &'static str,
        /// The label or annotation name.
        name: String,
        /// The template parser's message.
        message: String,
    },
    /// A glob pattern that is not well formed.
    #[error("syntax error in pattern")]
    BadPattern(String),
}

impl RuleFileErrorKind {
    /// Whether the message names its group itself (promtool's group-level texts).
    fn names_group(&self) -> bool {
        matches!(self, RuleFileErrorKind::EmptyGroupName | RuleFileErrorKind::DuplicateGroupName(_))
    }
}

/// Quotes a string as Go's `%q` does for printable text: backslash and
/// double quote escaped, control characters as escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

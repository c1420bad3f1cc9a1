//! Rule files in Prometheus' format: reading, checking, and finding them by
//! glob.
//!
//! A file is decoded with `serde_norway` (the first YAML document only, as
//! Prometheus reads it), positions come from a second pass over its event
//! stream (`positions`), then every field is decoded (`decode`) and
//! checked as Prometheus' `rulefmt` checks it (`validate`). All problems
//! of a file are reported together, each naming the file, line and column,
//! group and rule, in the text shape of `promtool check rules`.
//!
//! Where this loader differs from Prometheus 2.42:
//! - it accepts the group fields `query_offset` and `labels` of later
//!   Prometheus versions (2.42 rejects them as unknown);
//! - it rejects a negative `limit` (Prometheus takes it as no limit);
//! - it reports every unknown field, wrong type and bad duration with a
//!   line and column, together with the semantic errors of the rest of the
//!   file (promtool stops at the first bad duration, and reports unknown
//!   fields by line only);
//! - errors about a label or annotation carry the position of its name (or
//!   of its template), and errors about an absent `record`/`alert`/`expr`
//!   the position of the rule, where promtool prints none or `0:0`;
//! - like 2.42, and unlike Prometheus 3 (UTF-8 names), names follow the
//!   legacy rules: metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
//!   `[a-zA-Z_][a-zA-Z0-9_]*`;
//! - YAML nested deeper than 128 levels is refused (Go's library allows
//!   10,000), and flow nesting beyond 255 levels is refused before
//!   `serde_norway` sees it, whose parser takes time quadratic in it.

mod decode;
mod duration;
mod error;
mod glob;
mod names;
mod positions;
mod validate;

use std::path::Path;

use serde::Deserialize;
use tidemark_promql::Position;

pub use duration::{parse_duration, DurationError};
pub use error::{RuleFileError, RuleFileErrorKind, RuleFileErrors, RuleRef};
pub use glob::expand_globs;

use decode::Problem;
use positions::PosTree;

/// Parses and checks the text of a rule file named `file` (the name is
/// only used in errors and [`GroupSpec::file`](crate::GroupSpec::file)).
///
/// `check_template(alert_name, text)` checks that a label or annotation of
/// an alerting rule is a template that parses, returning the parser's
/// message if not.
///
/// ```
/// use tidemark_rules::{parse_rule_text, RuleKind};
///
/// let text = "
/// groups:
///   - name: api
///     rules:
///       - alert: HighErrorRate
///         expr: job:errors:rate5m > 0.05
///         for: 5m
///       - record: job:errors:rate5m
///         expr: sum by (job) (rate(errors_total[5m]))
/// ";
/// let no_templates = |_: &str, _: &str| Ok(());
/// let groups = parse_rule_text("api.yml", text, &no_templates).unwrap();
/// assert_eq!(groups[0].rules[1].name(), "job:errors:rate5m");
/// assert_eq!(groups[0].rules[1].line, 8);
///
/// let bad = text.replace("[5m]))", "[5m])");
/// let err = parse_rule_text("api.yml", &bad, &no_templates).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "api.yml: 9:15: group \"api\", rule 2, \"job:errors:rate5m\": could not parse expression: 1:14: parse error: unclosed left parenthesis"
/// );
/// ```
pub fn parse_rule_text(
    file: &str,
    text: &str,
    check_template: &dyn Fn(&str, &str) -> Result<(), String>,
) -> Result<Vec<crate::GroupSpec>, RuleFileErrors> {
    let error = |pos: Option<Position>, kind| RuleFileError {
        file: file.to_string(),
        position: pos,
        position_alt: None,
        group: None,
        rule: None,
        kind,
    };
    let tree = PosTree::build(text);
    if let Some(pos) = tree.too_deep {
        return Err(RuleFileErrors::one(error(Some(pos), RuleFileErrorKind::Yaml("recursion limit exceeded".into()))));
    }
    let doc = match first_document(text) {
        Ok(doc) => doc,
        Err(e) => {
            // serde_norway places a duplicate key at the first occurrence
            // and without a column; the position pass finds the second.
            if e.to_string().contains("duplicate entry") {
                if let Some((key, first, second)) = tree.first_duplicate_key() {
                    let kind = RuleFileErrorKind::DuplicateKey { key, first_line: first.line };
                    return Err(RuleFileErrors::one(error(Some(second), kind)));
                }
            }
            let pos = e.location().map(|l| Position { line: l.line(), column: l.column() });
            return Err(RuleFileErrors::one(error(pos, RuleFileErrorKind::Yaml(e.to_string()))));
        }
    };
    let mut problems = Vec::new();
    let groups = decode::decode_file(&doc, tree.root(), &mut problems);
    let specs = validate::validate(file, &groups, check_template, &mut problems);
    if problems.is_empty() {
        return Ok(specs);
    }
    let errors = problems
        .into_iter()
        .map(|Problem { pos, pos_alt, group, rule, kind }| RuleFileError {
            file: file.to_string(),
            position: pos,
            position_alt: pos_alt,
            group,
            rule,
            kind,
        })
        .collect();
    Err(RuleFileErrors { errors })
}

/// The first YAML document of `text` (null for an empty text).
fn first_document(text: &str) -> Result<serde_norway::Value, serde_norway::Error> {
    match serde_norway::Deserializer::from_str(text).next() {
        Some(doc) => {
            let mut value = serde_norway::Value::deserialize(doc)?;
            // `<<: *defaults` merges as Go's YAML library merges it.
            value.apply_merge()?;
            Ok(value)
        }
        None => Ok(serde_norway::Value::Null),
    }
}

/// Reads and checks a rule file; errors name the file as `path` is written.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("r.yml");
/// std::fs::write(&path, "groups:\n- name: g\n  rules:\n  - record: x:y\n    expr: up\n").unwrap();
/// let groups = tidemark_rules::load_rule_file(&path, &|_, _| Ok(())).unwrap();
/// assert_eq!(groups[0].file, path.display().to_string());
///
/// let missing = dir.path().join("missing.yml");
/// let err = tidemark_rules::load_rule_file(&missing, &|_, _| Ok(())).unwrap_err();
/// assert!(err.to_string().starts_with(&format!("{}: open {}: ", missing.display(), missing.display())));
/// ```
pub fn load_rule_file(
    path: impl AsRef<Path>,
    check_template: &dyn Fn(&str, &str) -> Result<(), String>,
) -> Result<Vec<crate::GroupSpec>, RuleFileErrors> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let error = |kind| {
        RuleFileErrors::one(RuleFileError {
            file: file.clone(),
            position: None,
            position_alt: None,
            group: None,
            rule: None,
            kind,
        })
    };
    let bytes = std::fs::read(path).map_err(|e| {
        // Go's wording: opening a directory succeeds, reading it fails.
        let op = if e.kind() == std::io::ErrorKind::IsADirectory { "read" } else { "open" };
        error(RuleFileErrorKind::Io(format!("{op} {file}: {}", io_text(&e))))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| error(RuleFileErrorKind::NotUtf8(e.utf8_error().valid_up_to())))?;
    parse_rule_text(&file, &text, check_template)
}

/// Loads several rule files, in order, reporting the errors of all of them
/// together. Group names need only be unique within a file.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let (a, b) = (dir.path().join("a.yml"), dir.path().join("b.yml"));
/// std::fs::write(&a, "groups:\n- name: g\n  rules:\n  - record: x:y\n    expr: up\n").unwrap();
/// std::fs::write(&b, "groups:\n- name: g\n  rules:\n  - record: x:z\n    expr: up\n").unwrap();
/// let groups = tidemark_rules::load_rule_files(&[a.clone(), b.clone()], &|_, _| Ok(())).unwrap();
/// assert_eq!(groups.len(), 2);
///
/// std::fs::write(&b, "groups:\n- name: g\n  rules:\n  - record: x-z\n    expr: up\n").unwrap();
/// let err = tidemark_rules::load_rule_files(&[a, b.clone()], &|_, _| Ok(())).unwrap_err();
/// assert_eq!(err.to_string(), format!("{}: 4:13: group \"g\", rule 1, \"x-z\": invalid recording rule name: x-z", b.display()));
/// ```
pub fn load_rule_files(
    paths: &[std::path::PathBuf],
    check_template: &dyn Fn(&str, &str) -> Result<(), String>,
) -> Result<Vec<crate::GroupSpec>, RuleFileErrors> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match load_rule_file(path, check_template) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.extend(e.errors),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(RuleFileErrors { errors })
    }
}

/// An I/O error as Go words it (`no such file or directory`), without
/// Rust's `(os error 2)` suffix.
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

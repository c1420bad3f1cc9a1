//! `tidemark check rules FILE…`: promtool's `check rules`, same output.
//!
//! For each file, `Checking FILE` on `out`; then `  SUCCESS: N rules found`
//! on `out`, or `  FAILED:` and one error per line on `err`; then a blank
//! line on `out`. Like promtool 2.42 (default `--lint=duplicate-rules`), a
//! file whose rules have the same name and labels twice gets a `FAILED:`
//! lint report, which does not fail the check.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::file::load_rule_file;
use crate::GroupSpec;

/// Checks rule files as `promtool check rules` does; returns whether all
/// of them are valid (the exit status should be 0 then, 1 otherwise).
/// A write that fails on `out` or `err` is ignored, as a print is.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("r.yml");
/// std::fs::write(&path, "groups:\n- name: g\n  rules:\n  - record: x:y\n    expr: up\n").unwrap();
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// assert!(tidemark_rules::check::check_rules(&[path.clone()], &|_, _| Ok(()), &mut out, &mut err));
/// assert_eq!(String::from_utf8(out).unwrap(), format!("Checking {}\n  SUCCESS: 1 rules found\n\n", path.display()));
/// assert!(err.is_empty());
/// ```
pub fn check_rules(
    files: &[PathBuf],
    check_template: &dyn Fn(&str, &str) -> Result<(), String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    let mut all_ok = true;
    for file in files {
        let _ = writeln!(out, "Checking {}", file.display());
        match load_rule_file(file, check_template) {
            Ok(groups) => {
                let duplicates = duplicate_rules(&groups);
                if duplicates.is_empty() {
                    let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                    let _ = writeln!(out, "  SUCCESS: {n} rules found");
                } else {
                    let _ = writeln!(err, "  FAILED:");
                    let _ = writeln!(err, "{}", lint_report(&duplicates));
                }
            }
            Err(errors) => {
                all_ok = false;
                let _ = writeln!(err, "  FAILED:");
                for e in &errors.errors {
                    let _ = writeln!(err, "{e}");
                }
            }
        }
        let _ = writeln!(out);
    }
    let _ = out.flush();
    let _ = err.flush();
    all_ok
}

/// A rule's identity for the duplicate lint: its name and its own labels
/// (not the expression).
type RuleKey = (String, BTreeMap<String, String>);

/// Rules that share name and labels with another rule of the file, each
/// once, in promtool's order (by name, then labels).
fn duplicate_rules(groups: &[GroupSpec]) -> Vec<RuleKey> {
    let mut keys: Vec<RuleKey> =
        groups.iter().flat_map(|g| g.rules.iter().map(|r| (r.name().to_string(), r.labels.clone()))).collect();
    keys.sort();
    let mut duplicates: Vec<RuleKey> = Vec::new();
    for pair in keys.windows(2) {
        if pair[0] == pair[1] && duplicates.last() != Some(&pair[1]) {
            duplicates.push(pair[1].clone());
        }
    }
    duplicates
}

/// Promtool's text for duplicate rules.
fn lint_report(duplicates: &[RuleKey]) -> String {
    let mut text = format!("lint error {} duplicate rule(s) found.\n", duplicates.len());
    for (name, labels) in duplicates {
        text.push_str(&format!("Metric: {name}\nLabel(s):\n"));
        for (k, v) in labels {
            text.push_str(&format!("\t{k}: {v}\n"));
        }
    }
    text.push_str("Might cause inconsistency while recording expressions");
    text
}

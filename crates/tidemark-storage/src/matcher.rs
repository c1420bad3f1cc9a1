//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics.
//!
//! Regular expressions are fully anchored and `.` matches newlines, exactly
//! as Prometheus compiles them (`^(?s:<re>)$`).

use regex::Regex;

/// The four matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: the value equals.
    Equal,
    /// `!=`: the value differs.
    NotEqual,
    /// `=~`: the whole value matches the regex.
    Regex,
    /// `!~`: the whole value does not match the regex.
    NotRegex,
}

/// A label matcher, e.g. `job=~"api|web"`. A missing label has the value `""`.
///
/// ```
/// use tidemark_storage::{MatchOp, Matcher};
/// let m = Matcher::new(MatchOp::Regex, "code", "5..").unwrap();
/// assert!(m.matches("503"));
/// assert!(!m.matches("5030"), "regexes are anchored");
/// assert!(!m.matches(""));
/// ```
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or regex source.
    pub value: String,
    regex: Option<Regex>,
    // For regexes that are an alternation of literals (`a|b|c`): those literals.
    set: Option<Vec<String>>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// Builds a matcher; fails only for an invalid regex.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Matcher, regex::Error> {
        let value = value.into();
        let (regex, set) = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                let re = Regex::new(&format!("^(?s:{value})$"))?;
                (Some(re), literal_alternation(&value))
            }
            _ => (None, None),
        };
        Ok(Matcher { name: name.into(), op, value, regex, set })
    }

    /// Shorthand for an `=` matcher.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher::new(MatchOp::Equal, name, value).expect("equality matchers always build")
    }

    /// Whether `value` (use `""` for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.regex_matches(value),
            MatchOp::NotRegex => !self.regex_matches(value),
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        match &self.set {
            Some(set) => set.iter().any(|s| s == value),
            None => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a series without this label is selected.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The matcher with the opposite operator (`=` ↔ `!=`, `=~` ↔ `!~`).
    pub fn inverse(&self) -> Matcher {
        let op = match self.op {
            MatchOp::Equal => MatchOp::NotEqual,
            MatchOp::NotEqual => MatchOp::Equal,
            MatchOp::Regex => MatchOp::NotRegex,
            MatchOp::NotRegex => MatchOp::Regex,
        };
        Matcher {
            name: self.name.clone(),
            op,
            value: self.value.clone(),
            regex: self.regex.clone(),
            set: self.set.clone(),
        }
    }

    /// For `=` and for `=~` over a plain alternation of literals, the exact
    /// values that match: an index can look them up instead of scanning.
    pub fn exact_values(&self) -> Option<Vec<&str>> {
        match self.op {
            MatchOp::Equal => Some(vec![self.value.as_str()]),
            MatchOp::Regex => self.set.as_ref().map(|s| s.iter().map(String::as_str).collect()),
            _ => None,
        }
    }
}

/// If `re` is `lit1|lit2|...` with no regex metacharacters, the literals.
fn literal_alternation(re: &str) -> Option<Vec<String>> {
    const META: &[char] = &['\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$'];
    if re.contains(META) {
        return None;
    }
    let mut v: Vec<String> = re.split('|').map(str::to_string).collect();
    v.sort();
    v.dedup();
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_and_dot_matches_newline() {
        let m = Matcher::new(MatchOp::Regex, "a", "foo.*").unwrap();
        assert!(m.matches("foo\nbar"));
        assert!(!m.matches("xfoo"));
        let alt = Matcher::new(MatchOp::Regex, "a", "x|y").unwrap();
        assert!(alt.matches("x") && !alt.matches("xy"));
        assert_eq!(alt.exact_values(), Some(vec!["x", "y"]));
        let empty_alt = Matcher::new(MatchOp::Regex, "a", "x|").unwrap();
        assert!(empty_alt.matches_empty());
    }

    #[test]
    fn negative_matchers() {
        let m = Matcher::new(MatchOp::NotRegex, "a", "b.*").unwrap();
        assert!(m.matches("") && m.matches("cb") && !m.matches("bc"));
        assert!(Matcher::new(MatchOp::NotEqual, "a", "").unwrap().inverse().matches_empty());
    }
}

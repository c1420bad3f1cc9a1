//! A query's matchers: from the wire to storage matchers, with the
//! server's external labels taken out as Prometheus' read handler does
//! (`filterExtLabelsFromMatchers`).

use tidemark_storage::{MatchOp, Matcher};

use super::ReadError;
use crate::proto::read::{LabelMatcher, MatcherType};

/// The storage matchers of query `index`.
///
/// - No matchers at all is refused (a query must select something; storage
///   would otherwise have to answer with every series or none, silently).
/// - Regexes are anchored and `.` matches newlines, as Prometheus compiles
///   them, after `regex_rewrite` (see [`ReadOptions::regex_rewrite`](super::ReadOptions::regex_rewrite));
///   an invalid regex or operator is refused.
/// - An `=` matcher on an external label's name with that label's value
///   becomes `name=""`: the stored series do not carry the external label
///   (the answer adds it), so the matcher must match its absence. Any other
///   matcher on an external label's name is kept as sent, as Prometheus
///   does (so `cluster=~"eu.*"` selects nothing: stored series have no
///   `cluster`).
pub fn to_storage(
    index: usize,
    matchers: &[LabelMatcher],
    external_labels: &[(String, String)],
    regex_rewrite: Option<fn(&str) -> String>,
) -> Result<Vec<Matcher>, ReadError> {
    if matchers.is_empty() {
        return Err(ReadError::BadQuery { index, reason: "no matchers".into() });
    }
    let mut out = Vec::with_capacity(matchers.len());
    for m in matchers {
        let op = match MatcherType::try_from(m.r#type) {
            Ok(MatcherType::Eq) => MatchOp::Equal,
            Ok(MatcherType::Neq) => MatchOp::NotEqual,
            Ok(MatcherType::Re) => MatchOp::Regex,
            Ok(MatcherType::Nre) => MatchOp::NotRegex,
            Err(_) => {
                return Err(ReadError::BadQuery { index, reason: format!("invalid matcher type {}", m.r#type) });
            }
        };
        let external = external_labels.iter().any(|(n, v)| *n == m.name && *v == m.value);
        let value = match op {
            MatchOp::Equal if external => String::new(),
            MatchOp::Regex | MatchOp::NotRegex => regex_rewrite.map_or_else(|| m.value.clone(), |f| f(&m.value)),
            _ => m.value.clone(),
        };
        let matcher = Matcher::new(op, m.name.clone(), value).map_err(|e| ReadError::BadQuery {
            index,
            reason: format!("invalid regular expression {:?} for label {:?}: {e}", m.value, m.name),
        })?;
        out.push(matcher);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: MatcherType, name: &str, value: &str) -> LabelMatcher {
        LabelMatcher { r#type: t as i32, name: name.into(), value: value.into() }
    }

    #[test]
    fn converts_each_operator_with_anchored_regexes() {
        let ms = [
            m(MatcherType::Eq, "a", "1"),
            m(MatcherType::Neq, "b", "2"),
            m(MatcherType::Re, "c", "x|y"),
            m(MatcherType::Nre, "d", "z.*"),
        ];
        let got = to_storage(0, &ms, &[], None).unwrap();
        let ops: Vec<MatchOp> = got.iter().map(|m| m.op).collect();
        assert_eq!(ops, [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex]);
        assert!(got[2].matches("x") && !got[2].matches("xy"), "anchored");
        assert!(!got[3].matches("z\nz"), "dot matches newline, so z.* matches and !~ refuses");
    }

    #[test]
    fn refuses_no_matchers_bad_types_and_bad_regexes() {
        let e = to_storage(3, &[], &[], None).unwrap_err();
        assert_eq!(e.to_string(), "query 3: no matchers");
        assert_eq!(e.status(), 400);
        let bad_type = LabelMatcher { r#type: 9, name: "a".into(), value: "b".into() };
        assert_eq!(to_storage(0, &[bad_type], &[], None).unwrap_err().to_string(), "query 0: invalid matcher type 9");
        let e = to_storage(1, &[m(MatcherType::Re, "a", "(")], &[], None).unwrap_err();
        assert!(e.to_string().starts_with("query 1: invalid regular expression \"(\" for label \"a\""), "{e}");
    }

    #[test]
    fn the_regex_rewrite_applies_to_regexes_only() {
        fn ascii_digits(re: &str) -> String {
            re.replace("\\d", "[0-9]")
        }
        let ms = [m(MatcherType::Re, "a", "\\d+"), m(MatcherType::Eq, "b", "\\d")];
        let plain = to_storage(0, &ms, &[], None).unwrap();
        assert!(plain[0].matches("\u{0663}"), "Rust's \\d is Unicode");
        let go = to_storage(0, &ms, &[], Some(ascii_digits)).unwrap();
        assert!(!go[0].matches("\u{0663}") && go[0].matches("42"), "Go's \\d is ASCII");
        assert_eq!(go[1].value, "\\d", "an equality value is not a regex");
    }

    #[test]
    fn equality_on_an_external_label_matches_its_absence() {
        let ext = vec![("cluster".to_owned(), "eu".to_owned())];
        let got = to_storage(
            0,
            &[
                m(MatcherType::Eq, "cluster", "eu"),
                m(MatcherType::Eq, "cluster", "us"),
                m(MatcherType::Re, "cluster", "eu"),
            ],
            &ext,
            None,
        )
        .unwrap();
        assert_eq!((got[0].op, got[0].value.as_str()), (MatchOp::Equal, ""));
        assert_eq!(got[1].value, "us", "another value is kept and selects nothing");
        assert_eq!((got[2].op, got[2].value.as_str()), (MatchOp::Regex, "eu"), "only = is rewritten");
    }
}

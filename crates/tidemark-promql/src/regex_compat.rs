//! Go RE2 compatibility for regexes written in queries.
//!
//! Prometheus compiles matcher and `label_replace` regexes with Go's RE2,
//! where the Perl classes `\d`, `\w`, `\s` and the word boundary `\b` are
//! ASCII-only. Rust's `regex` makes them Unicode-aware, so `\d` would also
//! match, say, Arabic-Indic digits. This rewrites those escapes into their
//! ASCII forms before the pattern is compiled; everything else is passed
//! through unchanged.

/// Rewrites `\d \D \w \W \s \S \b \B` (outside and inside character classes)
/// to the ASCII meaning Go gives them.
pub fn ascii_perl_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let inside = class_depth > 0;
                let rewritten = match (e, inside) {
                    ('d', false) => Some("[0-9]"),
                    ('D', false) => Some("[^0-9]"),
                    ('w', false) => Some("[0-9A-Za-z_]"),
                    ('W', false) => Some("[^0-9A-Za-z_]"),
                    ('s', false) => Some("[\\t\\n\\f\\r ]"),
                    ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                    ('b', false) => Some("(?-u:\\b)"),
                    ('B', false) => Some("(?-u:\\B)"),
                    ('d', true) => Some("0-9"),
                    ('w', true) => Some("0-9A-Za-z_"),
                    ('s', true) => Some("\\t\\n\\f\\r "),
                    // Negated classes nest inside a class in Rust's syntax.
                    ('D', true) => Some("[^0-9]"),
                    ('W', true) => Some("[^0-9A-Za-z_]"),
                    ('S', true) => Some("[^\\t\\n\\f\\r ]"),
                    _ => None,
                };
                match rewritten {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' => {
                class_depth += 1;
                out.push('[');
                // A leading `^` and a leading `]` are literal parts of the class.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_match(pattern: &str, text: &str) -> bool {
        regex::Regex::new(&format!("^(?s:{})$", ascii_perl_classes(pattern))).unwrap().is_match(text)
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        assert!(full_match(r"\d+", "123"));
        assert!(!full_match(r"\d+", "١٢٣")); // Arabic-Indic digits: Go's \d does not match them.
        assert!(!full_match(r"\w+", "é"));
        assert!(full_match(r"\w+", "a_1"));
        assert!(!full_match(r"\s", "\u{00a0}"));
        assert!(full_match(r"[\d.]+", "1.5"));
        assert!(!full_match(r"[\d.]+", "٣"));
        assert!(full_match(r"[\D]", "x"));
        assert!(full_match(r"a\bb|a b", "a b"));
    }

    #[test]
    fn other_escapes_and_classes_pass_through() {
        assert_eq!(ascii_perl_classes(r"a\.b[^\]x]\\d"), r"a\.b[^\]x]\\d");
        assert!(full_match(r"[]a]+", "]a"));
        assert!(full_match(r"\p{L}+", "é"));
        assert!(full_match(r"foo|bar", "bar"));
    }
}

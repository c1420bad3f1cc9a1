//! Which metric and label names a rule file may use: Prometheus' legacy
//! (pre-UTF-8) rules, as Prometheus 2.42 checks them.

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for ok in ["a", "job:http_requests:rate5m", "_x", ":x", "A9"] {
            assert!(is_valid_metric_name(ok), "{ok}");
        }
        for bad in ["", "1bad", "a-b", "a b", "x{a=\"b\"}", "é"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        for ok in ["a", "_x", "severity", "__name__", "A9"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1x", "a:b", "a-b", "é"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }
}

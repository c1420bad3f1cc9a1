//! Pretty-printing a query the way `promtool promql format` (and
//! `promql-parser`'s `prettify`) does, in time proportional to its output.
//!
//! `prettify` builds every sub-expression's text as a new `String`, copies it
//! into its parent's, and decides whether a node needs splitting by printing
//! the whole subtree again: cubic in the nesting depth (2,000 nested
//! parentheses took 15 s). This printer makes the same decisions and writes
//! the same text into one buffer; whether a node fits on a line is decided
//! by printing it into a writer that gives up after the line limit. Between
//! nodes it asks the caller whether to stop (timeout, cancellation).

use std::fmt::{self, Write};

use promql_parser::label::Labels;
use promql_parser::parser::{Expr, LabelModifier};
use promql_parser::util::display_duration;

use crate::error::Error;

/// Characters per line before a node is split (as in `promql-parser`).
const MAX_CHARACTERS_PER_LINE: usize = 100;
/// One level of indentation.
const INDENT: &str = "  ";
/// Nodes printed between two calls to the interrupt check.
const CHECK_EVERY: usize = 64;

/// The query formatted over several lines, byte for byte what
/// `Expr::prettify` returns. `interrupt` is called every few nodes; its
/// error stops the printing and is returned.
pub(crate) fn prettify(expr: &Expr, interrupt: &dyn Fn() -> Result<(), Error>) -> Result<String, Error> {
    let mut p = Printer { out: String::new(), interrupt, nodes: 0 };
    p.pretty(expr, 0, true)?;
    Ok(p.out)
}

struct Printer<'a> {
    out: String,
    interrupt: &'a dyn Fn() -> Result<(), Error>,
    nodes: usize,
}

/// A writer that fails once more than `max` bytes were written, so that
/// "does this print on one line" costs at most the line, not the subtree.
struct Bounded {
    len: usize,
    max: usize,
}

impl Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.len += s.len();
        if self.len > self.max {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Whether `e` prints longer than a line (`Prettier::needs_split`).
fn too_long(e: &Expr) -> bool {
    let mut w = Bounded { len: 0, max: MAX_CHARACTERS_PER_LINE };
    write!(w, "{e}").is_err()
}

impl Printer<'_> {
    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push_str(INDENT);
        }
    }

    /// Prints `e` at `level`. `lead` is false where `prettify` trims the
    /// leading whitespace of the node's text (after a unary minus): then the
    /// first line's indentation is not written.
    fn pretty(&mut self, e: &Expr, level: usize, lead: bool) -> Result<(), Error> {
        self.nodes += 1;
        if self.nodes.is_multiple_of(CHECK_EVERY) {
            (self.interrupt)()?;
        }
        let split = matches!(e, Expr::Aggregate(_) | Expr::Binary(_) | Expr::Paren(_) | Expr::Call(_)) && too_long(e);
        match e {
            Expr::Aggregate(a) if split => {
                self.lead(level, lead);
                self.out.push_str(&a.op.to_string());
                match &a.modifier {
                    Some(LabelModifier::Exclude(ls)) => self.grouping(" without (", ls),
                    Some(LabelModifier::Include(ls)) if !ls.is_empty() => self.grouping(" by (", ls),
                    _ => {}
                }
                self.out.push_str("(\n");
                if let Some(param) = &a.param {
                    self.pretty(param, level + 1, true)?;
                    self.out.push_str(",\n");
                }
                self.pretty(&a.expr, level + 1, true)?;
                self.out.push('\n');
                self.indent(level);
                self.out.push(')');
            }
            Expr::Unary(u) => {
                self.lead(level, lead);
                self.out.push('-');
                self.pretty(&u.expr, level, false)?;
            }
            Expr::Binary(b) if split => {
                self.pretty(&b.lhs, level + 1, lead)?;
                self.out.push('\n');
                self.indent(level);
                let _ = write!(self.out, "{}", b.op);
                if let Some(m) = &b.modifier {
                    let _ = write!(self.out, "{m}");
                }
                self.out.push('\n');
                self.pretty(&b.rhs, level + 1, true)?;
            }
            Expr::Paren(p) if split => {
                self.lead(level, lead);
                self.out.push_str("(\n");
                self.pretty(&p.expr, level + 1, true)?;
                self.out.push('\n');
                self.indent(level);
                self.out.push(')');
            }
            Expr::Subquery(s) => {
                self.pretty(&s.expr, level, lead)?;
                let step = s.step.as_ref().map(display_duration).unwrap_or_default();
                let _ = write!(self.out, "[{}:{step}]", display_duration(&s.range));
                if let Some(at) = &s.at {
                    let _ = write!(self.out, " {at}");
                }
                if let Some(offset) = &s.offset {
                    let _ = write!(self.out, " offset {offset}");
                }
            }
            Expr::Call(c) if split => {
                self.lead(level, lead);
                self.out.push_str(c.func.name);
                self.out.push_str("(\n");
                for (i, arg) in c.args.args.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(",\n");
                    }
                    self.pretty(arg, level + 1, true)?;
                }
                self.out.push('\n');
                self.indent(level);
                self.out.push(')');
            }
            Expr::Extension(x) => {
                let _ = write!(self.out, "{x:?}");
            }
            _ => {
                self.lead(level, lead);
                let _ = write!(self.out, "{e}");
            }
        }
        Ok(())
    }

    fn lead(&mut self, level: usize, lead: bool) {
        if lead {
            self.indent(level);
        }
    }

    fn grouping(&mut self, keyword: &str, ls: &Labels) {
        self.out.push_str(keyword);
        let _ = write!(self.out, "{ls}");
        self.out.push_str(") ");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    fn same_as_upstream(q: &str) {
        let e = promql_parser::parser::parse(q).unwrap_or_else(|m| panic!("{q}: {m}"));
        let ours = super::prettify(&e, &|| Ok(())).unwrap();
        assert_eq!(ours, e.prettify(), "query: {q}");
    }

    #[test]
    fn prints_what_prettify_prints() {
        let long = "very_long_metric_name_for_the_line_limit_total";
        for q in [
            "1".to_string(),
            "-x".into(),
            "--x".into(),
            "-(x + y)".into(),
            format!("-({long} + {long} + {long})"),
            format!("---sum by (job, instance) ({long}{{a=\"1\"}} / {long}{{b=\"2\"}} * {long})"),
            format!("sum without (a) (rate({long}[5m])) / on (job) group_left (x) sum by (job) (rate({long}[5m]))"),
            format!("topk(5, sum by () (rate({long}[5m]) > bool 0 unless ignoring (a) {long}))"),
            format!("max_over_time((sum(rate({long}[1m])) / sum(rate({long}[1m])))[1h:1m] @ 100 offset -5m)"),
            format!("histogram_quantile(0.9, sum by (le) (rate({long}_bucket[5m]))) > 1 and {long} or vector(1)"),
            format!("label_replace({long}, \"dst\", \"$1\", \"src\", \"(.*)\") + count_values(\"v\", {long})"),
            format!("(((({long} + {long} + {long}))))"),
            format!("{long} offset 5m @ end() + rate({long}[5m] @ start())"),
            format!("quantile(0.5, -{long}) ^ -{long} % 2 atan2 {long}"),
        ] {
            same_as_upstream(&q);
        }
    }

    #[test]
    fn deep_nesting_is_printed_fast_and_stops_when_asked() {
        let q = format!("{}x{}", "abs(".repeat(200), ")".repeat(200));
        let e = promql_parser::parser::parse(&q).unwrap();
        let t = std::time::Instant::now();
        let out = super::prettify(&e, &|| Ok(())).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(out, e.prettify());
        let stopped = super::prettify(&e, &|| Err(crate::Error::Cancelled));
        assert_eq!(stopped, Err(crate::Error::Cancelled));
    }

    fn query() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("some_rather_long_metric_name_total".to_string()),
            Just("x{job=\"api\",instance=~\"host-.*\"}".to_string()),
            Just("rate(requests_total[5m])".to_string()),
            Just("1.5".to_string()),
        ];
        leaf.prop_recursive(5, 32, 2, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    inner.clone(),
                    prop_oneof![Just("+"), Just(" / on (a) "), Just(" > bool "), Just(" or ")]
                )
                    .prop_map(|(a, b, op)| format!("{a}{op}{b}")),
                inner.clone().prop_map(|a| format!("({a})")),
                inner.clone().prop_map(|a| format!("-({a})")),
                inner.clone().prop_map(|a| format!("sum by (job) ({a})")),
                inner.clone().prop_map(|a| format!("topk(3, {a})")),
                inner.clone().prop_map(|a| format!("abs({a})")),
                inner.clone().prop_map(|a| format!("max_over_time(({a})[10m:1m] offset 1m)")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("clamp_min({a}, scalar({b}))")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn generated_queries_print_as_upstream(q in query()) {
            if let Ok(e) = promql_parser::parser::parse(&q) {
                prop_assert_eq!(super::prettify(&e, &|| Ok(())).unwrap(), e.prettify());
            }
        }
    }
}

//! Where each node of a parsed query starts in the query text, so that
//! annotations can point at the expression they are about, as Prometheus'
//! `(line:col)` suffixes do.
//!
//! `promql-parser` keeps no positions, so this module has its own small
//! tokenizer (also used by [`crate::parse`] to locate errors) and walks the
//! parsed tree in source order with a cursor over the tokens.

use std::collections::HashMap;

use promql_parser::parser::Expr;

use crate::annotations::Position;

/// What kind of text a token is. Only as fine-grained as locating nodes and
/// errors needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// A name: metric, label, function, keyword (`by`, `offset`, `and`, …).
    Ident,
    /// A number or duration (`1`, `.5`, `0x1f`, `1e-3`, `5m`, `1h30m`).
    Number,
    /// A quoted string, closed.
    Str,
    /// A quoted string that runs to the end of the text.
    UnterminatedStr,
    /// Punctuation or an operator: `( ) { } [ ] , : @ + - * / % ^ == != =~ !~ > >= < <= =`.
    Sym,
    /// A character PromQL has no use for.
    Other,
}

/// One token: its kind and its byte range in the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tok {
    pub(crate) kind: TokKind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Tok {
    /// The token's text.
    pub(crate) fn text<'q>(&self, query: &'q str) -> &'q str {
        query.get(self.start..self.end).unwrap_or("")
    }

    /// Whether the token is the symbol `s`.
    pub(crate) fn is_sym(&self, query: &str, s: &str) -> bool {
        self.kind == TokKind::Sym && self.text(query) == s
    }

    /// Whether the token is the keyword `kw` (keywords are case-insensitive in PromQL).
    pub(crate) fn is_kw(&self, query: &str, kw: &str) -> bool {
        self.kind == TokKind::Ident && self.text(query).eq_ignore_ascii_case(kw)
    }
}

/// Splits `query` into tokens, skipping whitespace and `#` comments. Never
/// fails: text PromQL cannot use becomes [`TokKind::Other`] tokens, and an
/// unclosed string becomes one [`TokKind::UnterminatedStr`] token.
pub(crate) fn tokenize(query: &str) -> Vec<Tok> {
    let chars: Vec<(usize, char)> = query.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(query.len(), |&(b, _)| b);
    let mut toks = Vec::new();
    let mut i = 0;
    // Inside `[...]` a `:` separates range and step; elsewhere it is part of a
    // metric name (recording rules: `job:requests:rate5m`).
    let mut bracket_depth = 0usize;
    while let Some(&(start, c)) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' {
            while chars.get(i).is_some_and(|&(_, c)| c != '\n') {
                i += 1;
            }
            continue;
        }
        let kind;
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            let mut closed = false;
            while let Some(&(_, d)) = chars.get(i) {
                i += 1;
                if d == c {
                    closed = true;
                    break;
                }
                // Backslash escapes the next character, except in raw (backtick) strings.
                if d == '\\' && c != '`' {
                    i += 1;
                }
            }
            kind = if closed { TokKind::Str } else { TokKind::UnterminatedStr };
        } else if c.is_ascii_alphabetic() || c == '_' || (c == ':' && bracket_depth == 0) {
            while chars
                .get(i)
                .is_some_and(|&(_, d)| d.is_ascii_alphanumeric() || d == '_' || (d == ':' && bracket_depth == 0))
            {
                i += 1;
            }
            kind = TokKind::Ident;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|&(_, d)| d.is_ascii_digit())) {
            let first = i;
            i += 1;
            while let Some(&(_, d)) = chars.get(i) {
                if d.is_ascii_alphanumeric() || d == '.' || d == '_' {
                    i += 1;
                    continue;
                }
                // An exponent sign belongs to a decimal number: `1e-3`, but not `0x1e-3`.
                let prev = chars[i - 1].1;
                let hex = chars.get(first + 1).is_some_and(|&(_, x)| x == 'x' || x == 'X');
                if (d == '+' || d == '-') && (prev == 'e' || prev == 'E') && !hex {
                    i += 1;
                    continue;
                }
                break;
            }
            kind = TokKind::Number;
        } else {
            let next = chars.get(i + 1).map(|&(_, d)| d);
            let two = matches!((c, next), ('=', Some('=' | '~')) | ('!', Some('=' | '~')) | ('>' | '<', Some('=')));
            i += if two { 2 } else { 1 };
            kind = if "(){}[],:@+-*/%^=!<>".contains(c) { TokKind::Sym } else { TokKind::Other };
            match c {
                '[' => bracket_depth += 1,
                ']' => bracket_depth = bracket_depth.saturating_sub(1),
                _ => {}
            }
        }
        toks.push(Tok { kind, start, end: end_of(i) });
    }
    toks
}

/// For every opening bracket token (`(`, `{`, `[`), the index of the token
/// closing it, if any. Mismatched closers are ignored.
pub(crate) fn matching_closers(query: &str, toks: &[Tok]) -> HashMap<usize, usize> {
    let mut stack: Vec<(usize, &str)> = Vec::new();
    let mut pairs = HashMap::new();
    for (i, t) in toks.iter().enumerate() {
        if t.kind != TokKind::Sym {
            continue;
        }
        match t.text(query) {
            "(" => stack.push((i, ")")),
            "{" => stack.push((i, "}")),
            "[" => stack.push((i, "]")),
            close @ (")" | "}" | "]") => {
                if let Some(at) = stack.iter().rposition(|&(_, c)| c == close) {
                    pairs.insert(stack[at].0, i);
                    stack.truncate(at);
                }
            }
            _ => {}
        }
    }
    pairs
}

/// The 1-based line and character column of byte offset `byte` in `query`
/// (clamped to the end of the text, and to a character boundary).
pub(crate) fn position_at(query: &str, byte: usize) -> Position {
    let mut line = 1;
    let mut column = 1;
    for (b, c) in query.char_indices() {
        if b >= byte {
            break;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Position { line, column }
}

/// Start positions of the nodes of one parsed expression, keyed by node address.
/// The map is only valid for the exact `Expr` tree it was built from.
#[derive(Debug, Default)]
pub(crate) struct PositionMap {
    starts: HashMap<usize, Position>,
}

impl PositionMap {
    /// Computes node positions for `expr`, which was parsed from `query`.
    /// Nodes that cannot be placed (the tree does not match the text) have no entry.
    pub(crate) fn build(query: &str, expr: &Expr) -> PositionMap {
        let toks = tokenize(query);
        let closers = matching_closers(query, &toks);
        let mut walker = Walker { query, toks: &toks, closers: &closers, starts: HashMap::new(), depth: 0 };
        walker.walk(expr, 0);
        PositionMap { starts: walker.starts }
    }

    /// Where `node` (a reference into the tree given to `build`) starts.
    pub(crate) fn get(&self, node: &Expr) -> Option<Position> {
        self.starts.get(&(node as *const Expr as usize)).copied()
    }
}

/// Deepest nesting the walk follows; deeper nodes get no position. This keeps
/// the recursion within a small thread stack on absurdly nested queries.
const MAX_DEPTH: usize = 1_000;

/// The cursor walk over one tree. Every method takes the index of the first
/// token not yet consumed and returns the index after what the node consumed.
struct Walker<'a> {
    query: &'a str,
    toks: &'a [Tok],
    closers: &'a HashMap<usize, usize>,
    starts: HashMap<usize, Position>,
    depth: usize,
}

impl Walker<'_> {
    fn tok(&self, i: usize) -> Option<&Tok> {
        self.toks.get(i)
    }

    fn is_sym(&self, i: usize, s: &str) -> bool {
        self.tok(i).is_some_and(|t| t.is_sym(self.query, s))
    }

    fn is_kw(&self, i: usize, kw: &str) -> bool {
        self.tok(i).is_some_and(|t| t.is_kw(self.query, kw))
    }

    fn record(&mut self, node: &Expr, tok: usize) {
        if let Some(t) = self.tok(tok) {
            self.starts.insert(node as *const Expr as usize, position_at(self.query, t.start));
        }
    }

    /// Index after the bracket group opened at `open`, or `open + 1` if it has no closer.
    fn after_group(&self, open: usize) -> usize {
        self.closers.get(&open).map_or(open + 1, |&c| c + 1)
    }

    /// Skips a parenthesised label list if one starts at `i`.
    fn skip_labels(&self, i: usize) -> usize {
        if self.is_sym(i, "(") {
            self.after_group(i)
        } else {
            i
        }
    }

    /// Skips `offset [+-]dur` and `@ ts|start()|end()` modifiers, in any order.
    fn skip_modifiers(&self, mut i: usize) -> usize {
        loop {
            if self.is_kw(i, "offset") {
                i += 1;
                if self.is_sym(i, "-") || self.is_sym(i, "+") {
                    i += 1;
                }
                i += 1;
            } else if self.is_sym(i, "@") {
                i += 1;
                if self.is_sym(i, "-") || self.is_sym(i, "+") {
                    i += 1;
                }
                if (self.is_kw(i, "start") || self.is_kw(i, "end")) && self.is_sym(i + 1, "(") {
                    i = self.after_group(i + 1);
                } else {
                    i += 1;
                }
            } else {
                return i;
            }
        }
    }

    /// Index of the first token at or after `i` satisfying `pred`: the
    /// fallback when a node does not start right at the cursor.
    fn find(&self, i: usize, pred: impl Fn(&Tok) -> bool) -> Option<usize> {
        (i..self.toks.len()).find(|&j| pred(&self.toks[j]))
    }

    fn walk(&mut self, node: &Expr, i: usize) -> usize {
        if self.depth >= MAX_DEPTH {
            return i;
        }
        self.depth += 1;
        let next = self.walk_inner(node, i);
        self.depth -= 1;
        next
    }

    fn walk_inner(&mut self, node: &Expr, mut i: usize) -> usize {
        let q = self.query;
        match node {
            Expr::NumberLiteral(_) => {
                // A signed literal is folded into the number by the parser
                // (`-1`, `--1`); it starts at its first sign.
                let start = i;
                while self.is_sym(i, "-") || self.is_sym(i, "+") {
                    i += 1;
                }
                let is_number = |t: &Tok| t.kind == TokKind::Number || t.is_kw(q, "inf") || t.is_kw(q, "nan");
                if self.tok(i).is_some_and(is_number) {
                    self.record(node, start);
                    i + 1
                } else {
                    match self.find(i, is_number) {
                        Some(j) => {
                            self.record(node, j);
                            j + 1
                        }
                        None => i,
                    }
                }
            }
            Expr::StringLiteral(_) => {
                i = self.skip_unary_plus(i);
                match self.find(i, |t| t.kind == TokKind::Str) {
                    Some(j) => {
                        self.record(node, j);
                        j + 1
                    }
                    None => i,
                }
            }
            Expr::VectorSelector(vs) => {
                i = self.walk_selector(node, vs.name.as_deref(), i);
                self.skip_modifiers(i)
            }
            Expr::MatrixSelector(ms) => {
                i = self.walk_selector(node, ms.vs.name.as_deref(), i);
                if self.is_sym(i, "[") {
                    i = self.after_group(i);
                }
                self.skip_modifiers(i)
            }
            Expr::Call(call) => {
                i = self.skip_unary_plus(i);
                let name = call.func.name;
                let Some(j) = self.find(i, |t| t.is_kw(q, name)) else { return i };
                self.record(node, j);
                if !self.is_sym(j + 1, "(") {
                    return j + 1;
                }
                let mut k = j + 2;
                for (n, arg) in call.args.args.iter().enumerate() {
                    if n > 0 && self.is_sym(k, ",") {
                        k += 1;
                    }
                    k = self.walk(arg, k);
                }
                self.after_group(j + 1)
            }
            Expr::Aggregate(agg) => {
                i = self.skip_unary_plus(i);
                let op = agg.op.to_string();
                let Some(j) = self.find(i, |t| t.is_kw(q, &op)) else { return i };
                self.record(node, j);
                let mut k = j + 1;
                // `sum by (x) (…)`: the grouping comes before the arguments.
                if self.is_kw(k, "by") || self.is_kw(k, "without") {
                    k = self.skip_labels(k + 1);
                }
                if !self.is_sym(k, "(") {
                    return k;
                }
                let open = k;
                k += 1;
                if let Some(param) = &agg.param {
                    k = self.walk(param, k);
                    if self.is_sym(k, ",") {
                        k += 1;
                    }
                }
                self.walk(&agg.expr, k);
                k = self.after_group(open);
                // `sum(…) by (x)`: the grouping comes after.
                if agg.modifier.is_some() && (self.is_kw(k, "by") || self.is_kw(k, "without")) {
                    k = self.skip_labels(k + 1);
                }
                k
            }
            Expr::Paren(p) => {
                i = self.skip_unary_plus(i);
                let Some(j) = self.find(i, |t| t.is_sym(q, "(")) else { return i };
                self.record(node, j);
                self.walk(&p.expr, j + 1);
                self.after_group(j)
            }
            Expr::Unary(u) => {
                let Some(j) = self.find(i, |t| t.is_sym(q, "-")) else { return i };
                self.record(node, j);
                self.walk(&u.expr, j + 1)
            }
            Expr::Binary(b) => {
                i = self.skip_unary_plus(i);
                let lhs_start = i;
                let k = self.walk(&b.lhs, i);
                // A binary expression starts where its left operand starts.
                if let Some(p) = self.starts.get(&(&*b.lhs as *const Expr as usize)).copied() {
                    self.starts.insert(node as *const Expr as usize, p);
                } else {
                    self.record(node, lhs_start);
                }
                let mut k = k + 1; // the operator
                if self.is_kw(k, "bool") {
                    k += 1;
                }
                if let Some(m) = &b.modifier {
                    if m.matching.is_some() && (self.is_kw(k, "on") || self.is_kw(k, "ignoring")) {
                        k = self.skip_labels(k + 1);
                    }
                    if self.is_kw(k, "group_left") || self.is_kw(k, "group_right") {
                        k = self.skip_labels(k + 1);
                    }
                    while self.is_kw(k, "fill") || self.is_kw(k, "fill_left") || self.is_kw(k, "fill_right") {
                        k = self.skip_labels(k + 1);
                    }
                }
                self.walk(&b.rhs, k)
            }
            Expr::Subquery(sq) => {
                let k = self.walk(&sq.expr, i);
                if let Some(p) = self.starts.get(&(&*sq.expr as *const Expr as usize)).copied() {
                    self.starts.insert(node as *const Expr as usize, p);
                }
                let Some(open) = self.find(k, |t| t.is_sym(q, "[")) else { return k };
                self.skip_modifiers(self.after_group(open))
            }
            Expr::Extension(_) => i,
        }
    }

    /// Skips a unary `+`, which the parser drops from the tree.
    fn skip_unary_plus(&self, mut i: usize) -> usize {
        while self.is_sym(i, "+") {
            i += 1;
        }
        i
    }

    /// Places a selector: its metric name, or its `{` when it has none.
    /// Returns the index after the name and matchers.
    fn walk_selector(&mut self, node: &Expr, name: Option<&str>, i: usize) -> usize {
        let q = self.query;
        let i = self.skip_unary_plus(i);
        let found = match self.tok(i) {
            // The name as written (a keyword-like name keeps its case in the tree).
            Some(t) if t.kind == TokKind::Ident && name.is_some_and(|n| t.text(q) == n) => Some(i),
            Some(t) if t.is_sym(q, "{") => Some(i),
            _ => self.find(i, |t| match name {
                Some(n) => t.kind == TokKind::Ident && t.text(q) == n,
                None => t.is_sym(q, "{"),
            }),
        };
        let Some(j) = found else { return i };
        self.record(node, j);
        let mut k = j;
        if self.tok(k).is_some_and(|t| t.kind == TokKind::Ident) {
            k += 1;
        }
        if self.is_sym(k, "{") {
            k = self.after_group(k);
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node of `query`'s tree in pre-order, as `text@line:col` (or `text@?`).
    fn placed(query: &str) -> Vec<String> {
        let expr = promql_parser::parser::parse(query).expect("test query parses");
        let map = PositionMap::build(query, &expr);
        let mut out = Vec::new();
        fn visit(e: &Expr, map: &PositionMap, out: &mut Vec<String>) {
            let at = map.get(e).map_or("?".to_string(), |p| p.to_string());
            out.push(format!("{e}@{at}"));
            match e {
                Expr::Aggregate(a) => {
                    if let Some(p) = &a.param {
                        visit(p, map, out);
                    }
                    visit(&a.expr, map, out);
                }
                Expr::Unary(u) => visit(&u.expr, map, out),
                Expr::Binary(b) => {
                    visit(&b.lhs, map, out);
                    visit(&b.rhs, map, out);
                }
                Expr::Paren(p) => visit(&p.expr, map, out),
                Expr::Subquery(s) => visit(&s.expr, map, out),
                Expr::Call(c) => c.args.args.iter().for_each(|a| visit(a, map, out)),
                _ => {}
            }
        }
        visit(&expr, &map, &mut out);
        out
    }

    /// Where the first node (pre-order) printed as `node` starts in `query`.
    fn start(query: &str, node: &str) -> String {
        let all = placed(query);
        let prefix = format!("{node}@");
        let hit = all.iter().find(|n| n.starts_with(&prefix) && !n[prefix.len()..].contains('@'));
        hit.map(|n| n[prefix.len()..].to_string()).unwrap_or_else(|| panic!("no node {node:?} in {all:?}"))
    }

    #[test]
    fn call_arguments_start_where_prometheus_points() {
        assert_eq!(start("histogram_quantile(0.8, series)", "series"), "1:25");
        assert_eq!(start("histogram_quantile(0.8, series)", "0.8"), "1:20");
        assert_eq!(start("sum(sort(series))", "sort(series)"), "1:5");
        assert_eq!(start(r#"label_replace(up, "a", "$1", "b", "(.*)")"#, r#""(.*)""#), "1:35");
    }

    #[test]
    fn every_node_is_placed_in_a_mixed_query() {
        let q = r#"sum by (a) (rate(x{a="b"}[5m] @ 10)) / on(a) group_left(b) sum(y) by (a)"#;
        assert_eq!(
            placed(q),
            [
                r#"sum by (a) (rate(x{a="b"}[5m] @ 10.000)) / on (a) group_left (b) sum by (a) (y)@1:1"#,
                r#"sum by (a) (rate(x{a="b"}[5m] @ 10.000))@1:1"#,
                r#"rate(x{a="b"}[5m] @ 10.000)@1:13"#,
                r#"x{a="b"}[5m] @ 10.000@1:18"#,
                "sum by (a) (y)@1:60",
                "y@1:64",
            ]
        );
    }

    #[test]
    fn grouping_before_or_after_aggregation_arguments() {
        let q = r#"sum(x) by (a) + count_values("v", y) - quantile without (a) (0.5, z)"#;
        assert_eq!(start(q, "x"), "1:5");
        assert_eq!(start(q, r#"count_values("v", y)"#), "1:17");
        assert_eq!(start(q, r#""v""#), "1:30");
        assert_eq!(start(q, "y"), "1:35");
        assert_eq!(start(q, "quantile without (a) (0.5, z)"), "1:40");
        assert_eq!(start(q, "0.5"), "1:62");
        assert_eq!(start(q, "z"), "1:67");
    }

    #[test]
    fn signs_folded_into_numbers_and_unary_minus() {
        // `-1` and `--1` become number literals that start at their first sign;
        // `-(2)` stays a unary node; a unary `+` is dropped from the tree.
        let q = "-1 + -(2) - +x offset 5m";
        assert_eq!(start(q, "-1"), "1:1");
        assert_eq!(start(q, "-(2)"), "1:6");
        assert_eq!(start(q, "(2)"), "1:7");
        assert_eq!(start(q, "x offset 5m"), "1:14");
        assert_eq!(start("--1 * -x^2", "1"), "1:1");
        assert_eq!(start("--1 * -x^2", "-x ^ 2"), "1:7");
        assert_eq!(start("--1 * -x^2", "x ^ 2"), "1:8");
    }

    #[test]
    fn binary_expressions_start_at_their_left_operand() {
        let q = "a or b and c unless d == bool e";
        assert_eq!(start(q, "b and c unless d == bool e"), "1:6");
        assert_eq!(start(q, "d == bool e"), "1:21");
        assert_eq!(start(q, "e"), "1:31");
        let q = "sum without () (x) / ignoring (a) group_right y";
        assert_eq!(start(q, "y"), "1:47");
        assert_eq!(start("x atan2 2", "2"), "1:9");
    }

    #[test]
    fn subqueries_parens_and_modifiers() {
        let q = "rate(x[5m] offset 1m @ start()) + max_over_time(topk(3, x)[5m:1m] offset -1m)";
        assert_eq!(start(q, "x[5m] @ start() offset 1m"), "1:6");
        assert_eq!(start(q, "max_over_time(topk(3, x)[5m:1m] offset -1m)"), "1:35");
        assert_eq!(start(q, "topk(3, x)[5m:1m] offset -1m"), "1:49");
        assert_eq!(start(q, "topk(3, x)"), "1:49");
        assert_eq!(start(q, "3"), "1:54");
        assert_eq!(start(q, "x"), "1:57");
        let q = "max_over_time((((x)))[1h:] @ end()) / {__name__=\"x\"}";
        assert_eq!(start(q, "(((x)))[1h:] @ end()"), "1:15");
        assert_eq!(start(q, "((x))"), "1:16");
        assert_eq!(start(q, "x"), "1:18");
        assert_eq!(start(q, "{__name__=\"x\"}"), "1:39");
    }

    #[test]
    fn comments_and_lines_are_skipped_and_counted() {
        let q = "# sum(\n  foo # (bar\n  > bool on() \n 2 ^ -3 ^ 2";
        assert_eq!(start(q, "foo > bool on () 2 ^ -3 ^ 2"), "2:3");
        assert_eq!(start(q, "2 ^ -3 ^ 2"), "4:2");
        assert_eq!(start(q, "-3 ^ 2"), "4:6");
        assert_eq!(start(q, "3 ^ 2"), "4:7");
        assert_eq!(start(q, "2"), "4:2");
    }

    #[test]
    fn names_that_look_like_keywords_and_non_ascii_text() {
        let q = "count_values(\"é\", sum) + max";
        assert_eq!(start(q, "sum"), "1:19");
        assert_eq!(start(q, "max"), "1:26");
        assert_eq!(start("job:req:rate5m{a=\"é\"} * 2", "2"), "1:25");
    }

    #[test]
    fn deep_nesting_places_what_it_can_without_overflowing() {
        let q = format!("{}x{}", "(".repeat(2000), ")".repeat(2000));
        let expr = promql_parser::parser::parse(&q).expect("parses");
        let map = PositionMap::build(&q, &expr);
        assert_eq!(map.get(&expr), Some(Position { line: 1, column: 1 }));
    }

    #[test]
    fn a_tree_from_other_text_never_panics() {
        let expr = promql_parser::parser::parse("sum(rate(x[5m])) by (a) / -2").unwrap();
        for text in ["", "(", "sum", "rate(x[5m]) by", "# comment", "é é é", "2 2 2 2 2"] {
            let _ = PositionMap::build(text, &expr);
        }
    }

    /// Queries built from a small grammar: leaves, nesting, operators,
    /// groupings before and after, subqueries, modifiers, comments and newlines.
    fn query() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop::sample::select(vec![
            "x",
            "sum",
            "job:r:m",
            "y{a=\"b\"}",
            "{a!=\"\"}",
            "1",
            "-2",
            ".5",
            "Inf",
            "rate(x[5m])",
            "x offset 1m",
            "z @ 10",
            "time()",
        ])
        .prop_map(str::to_string);
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| format!("({e})")),
                inner.clone().prop_map(|e| format!("-{e}")),
                inner.clone().prop_map(|e| format!("+ {e}")),
                inner.clone().prop_map(|e| format!("sum by (a) ({e})")),
                inner.clone().prop_map(|e| format!("sum({e}) without (a)")),
                inner.clone().prop_map(|e| format!("topk(2, {e})")),
                inner.clone().prop_map(|e| format!("abs(\n  {e} # note (\n)")),
                inner.clone().prop_map(|e| format!("max_over_time({e}[5m:1m] offset 1m)")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}^{b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} > bool {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} / on(a) group_left {b}")),
                (inner.clone(), inner).prop_map(|(a, b)| format!("{a} and {b}")),
            ]
        })
    }

    /// Every node of the tree, pre-order.
    fn nodes(e: &Expr) -> Vec<&Expr> {
        let mut out = vec![e];
        match e {
            Expr::Aggregate(a) => {
                out.extend(a.param.iter().flat_map(|p| nodes(p)));
                out.extend(nodes(&a.expr));
            }
            Expr::Unary(u) => out.extend(nodes(&u.expr)),
            Expr::Binary(b) => {
                out.extend(nodes(&b.lhs));
                out.extend(nodes(&b.rhs));
            }
            Expr::Paren(p) => out.extend(nodes(&p.expr)),
            Expr::Subquery(s) => out.extend(nodes(&s.expr)),
            Expr::Call(c) => out.extend(c.args.args.iter().flat_map(|a| nodes(a))),
            _ => {}
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Every node of a generated query gets a position, and it points at
        /// the text the node starts with.
        #[test]
        fn every_node_of_a_generated_query_is_placed(q in query()) {
            let Ok(expr) = promql_parser::parser::parse(&q) else { return Ok(()) };
            let map = PositionMap::build(&q, &expr);
            let lines: Vec<&str> = q.split('\n').collect();
            for n in nodes(&expr) {
                let p = map.get(n);
                proptest::prop_assert!(p.is_some(), "{n} unplaced in {q:?}");
                let p = p.unwrap();
                let at: String = lines[p.line - 1].chars().skip(p.column - 1).collect();
                let first = at.chars().next().unwrap_or(' ');
                proptest::prop_assert!(
                    first.is_alphanumeric() || "+-({.:".contains(first),
                    "{n} placed at {p} ({at:?}) in {q:?}"
                );
            }
        }
    }
}

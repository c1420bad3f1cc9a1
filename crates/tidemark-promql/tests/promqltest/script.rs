//! The test-script parser: turns a `.test` file into commands (`load`,
//! `clear`, `eval`), following the line rules of Prometheus' promqltest.
//!
//! Unlike upstream, a malformed command does not abort the whole file: it
//! becomes a [`Command::Invalid`] (or an eval carrying a `problem`), so one
//! bad block only fails itself.

use regex::Regex;
use tidemark_storage::Labels;

use crate::notation::{go_unquote, parse_duration_ms, parse_go_number, parse_series_desc, Point};

/// One command of a script.
#[derive(Debug)]
pub enum Command {
    /// `load <step>` / `load_with_nhcb <step>` and its series lines.
    Load(Load),
    /// `clear`.
    Clear,
    /// `eval …` and its expectations.
    Eval(Box<Eval>),
    /// A line that is not a valid command (or a broken `load` header).
    Invalid {
        /// 1-based line number.
        line: usize,
        /// Why it is invalid.
        message: String,
    },
}

/// A series loaded by a `load` block.
#[derive(Debug)]
pub struct LoadSeries {
    /// The series' labels.
    pub labels: Labels,
    /// One point per step, starting at t = 0.
    pub points: Vec<Point>,
}

/// A `load` block.
#[derive(Debug)]
pub struct Load {
    /// 1-based line of the `load` line.
    pub line: usize,
    /// Interval between points, in milliseconds.
    pub step_ms: i64,
    /// `load_with_nhcb`: classic histograms are also converted to native
    /// histograms with custom buckets (see `nhcb.rs`).
    pub with_nhcb: bool,
    /// The series, in file order. A later line for the same labels replaces
    /// an earlier one, as upstream keys series by label hash.
    pub series: Vec<LoadSeries>,
    /// Series lines that could not be parsed: (1-based line, message).
    pub errors: Vec<(usize, String)>,
    /// Number of `@st` (start timestamp) lines skipped: out of scope.
    pub st_lines: usize,
    /// The series those `@st` lines were about (when their selector parses).
    pub st_series: Vec<Labels>,
}

/// What kind of query an eval runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalKind {
    /// An instant query at `t` (ms).
    Instant {
        /// Evaluation time.
        t: i64,
    },
    /// A range query.
    Range {
        /// First step (ms).
        start: i64,
        /// Last step (ms, inclusive).
        end: i64,
        /// Step width (ms).
        step: i64,
    },
}

/// The kinds of `expect` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    /// `expect ordered`
    Ordered,
    /// `expect fail`
    Fail,
    /// `expect warn`
    Warn,
    /// `expect no_warn`
    NoWarn,
    /// `expect info`
    Info,
    /// `expect no_info`
    NoInfo,
}

/// The text an `expect` line requires, if any.
#[derive(Debug, Clone)]
pub enum TextMatch {
    /// `msg: <text>`: the whole message must equal it.
    Exact(String),
    /// `regex: <re>`, or no text (then `^.*$`, as upstream): an unanchored search.
    Regex(Regex),
}

impl TextMatch {
    /// Whether `s` satisfies this expectation.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            TextMatch::Exact(m) => m == s,
            TextMatch::Regex(r) => r.is_match(s),
        }
    }
}

impl std::fmt::Display for TextMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextMatch::Exact(m) => write!(f, "message {m:?}"),
            TextMatch::Regex(r) => write!(f, "pattern {:?}", r.as_str()),
        }
    }
}

/// One expected result series.
#[derive(Debug, Clone)]
pub struct ExpectedSeries {
    /// Its labels.
    pub labels: Labels,
    /// Expected points (one for instant vectors, one per step otherwise).
    pub points: Vec<Point>,
    /// 1-based position among the result lines, for `expect ordered`.
    pub pos: usize,
}

/// The expected result.
#[derive(Debug, Clone)]
pub enum Expected {
    /// A bare number: a scalar result.
    Scalar(f64),
    /// Series lines (possibly none: an empty result).
    Series(Vec<ExpectedSeries>),
}

/// An `eval` command.
#[derive(Debug)]
pub struct Eval {
    /// 1-based line of the `eval` line (the key into `evals.tsv`).
    pub line: usize,
    /// The query text as written.
    pub expr: String,
    /// Instant or range, with times.
    pub kind: EvalKind,
    /// Deprecated `eval_fail`: any error is expected.
    pub fail: bool,
    /// Deprecated `eval_warn`: at least one warning is expected.
    pub warn: bool,
    /// Deprecated `eval_info`: at least one info is expected.
    pub info: bool,
    /// Deprecated `eval_ordered`.
    pub ordered: bool,
    /// The `expect` lines, in order.
    pub expects: Vec<(ExpectKind, TextMatch)>,
    /// `expect range vector from … to … step …`: (start, end, step) in ms.
    pub range_vector: Option<(i64, i64, i64)>,
    /// `expect string "…"`.
    pub expected_string: Option<String>,
    /// The expected value.
    pub expected: Expected,
    /// Skip the range-mode re-run (range-vector and string expectations).
    pub exclude_from_range_query: bool,
    /// Set when the block could not be parsed: the eval fails with this.
    pub problem: Option<String>,
}

impl Eval {
    /// Whether an error is the expected outcome.
    pub fn is_fail(&self) -> bool {
        self.fail || self.expects_of(ExpectKind::Fail).next().is_some()
    }

    /// Whether the result order is checked.
    pub fn is_ordered(&self) -> bool {
        self.ordered || self.expects_of(ExpectKind::Ordered).next().is_some()
    }

    /// The expectations of one kind.
    pub fn expects_of(&self, kind: ExpectKind) -> impl Iterator<Item = &TextMatch> {
        self.expects.iter().filter(move |(k, _)| *k == kind).map(|(_, m)| m)
    }

    /// Whether any expect line of this kind is present.
    pub fn has(&self, kind: ExpectKind) -> bool {
        self.expects_of(kind).next().is_some()
    }
}

/// Trims lines and blanks out comments, as upstream's `getLines` does.
fn get_lines(input: &str) -> Vec<&str> {
    input
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect()
}

/// Parses a whole script.
pub fn parse_script(input: &str) -> Vec<Command> {
    let lines = get_lines(input);
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l.split([' ', '\t']).next().unwrap_or("").to_ascii_lowercase();
        if word == "clear" {
            cmds.push(Command::Clear);
            i += 1;
        } else if word.starts_with("load") {
            let (next, cmd) = parse_load(&lines, i);
            cmds.push(cmd);
            i = next;
        } else if word.starts_with("eval") {
            let (next, ev) = parse_eval(&lines, i);
            cmds.push(Command::Eval(Box::new(ev)));
            i = next;
        } else {
            cmds.push(Command::Invalid { line: i + 1, message: format!("invalid command {l:?}") });
            i += 1;
        }
    }
    cmds
}

/// Index of the first blank line at or after `i` (or the end).
fn block_end(lines: &[&str], i: usize) -> usize {
    let mut j = i;
    while j < lines.len() && !lines[j].is_empty() {
        j += 1;
    }
    j
}

/// An `@st` line: the first word ends with `@st`.
fn is_st_line(line: &str) -> bool {
    match line.find([' ', '\t']) {
        Some(sp) => line[..sp].ends_with("@st"),
        None => false,
    }
}

fn parse_load(lines: &[&str], i: usize) -> (usize, Command) {
    let header = lines[i];
    let end = block_end(lines, i + 1);
    let mut words = header.split_whitespace();
    let head = words.next().unwrap_or("");
    let with_nhcb = match head {
        "load" => false,
        "load_with_nhcb" => true,
        _ => {
            return (
                end,
                Command::Invalid {
                    line: i + 1,
                    message: "invalid load command. (load[_with_nhcb] <step:duration>)".into(),
                },
            )
        }
    };
    let step_text: String = words.collect::<Vec<_>>().join(" ");
    let step_ms = match parse_duration_ms(&step_text) {
        Ok(s) => s,
        Err(e) => {
            return (
                end,
                Command::Invalid { line: i + 1, message: format!("invalid step definition {step_text:?}: {e}") },
            )
        }
    };
    let mut load = Load {
        line: i + 1,
        step_ms,
        with_nhcb,
        series: Vec::new(),
        errors: Vec::new(),
        st_lines: 0,
        st_series: Vec::new(),
    };
    for (j, line) in lines.iter().enumerate().take(end).skip(i + 1) {
        if is_st_line(line) {
            load.st_lines += 1;
            let sel = line.split([' ', '\t']).next().unwrap_or("");
            if let Ok(l) = crate::notation::parse_labels(sel.trim_end_matches("@st")) {
                load.st_series.push(l);
            }
            continue;
        }
        match parse_series_desc(line) {
            Ok(d) => {
                load.series.retain(|s| s.labels != d.labels);
                load.series.push(LoadSeries { labels: d.labels, points: d.points });
            }
            Err(e) => load.errors.push((j + 1, e)),
        }
    }
    (end, Command::Load(load))
}

/// Splits off the first whitespace-separated word.
fn next_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    match s.find([' ', '\t']) {
        Some(p) => Some((&s[..p], s[p..].trim_start())),
        None => Some((s, "")),
    }
}

/// Parses the `eval…` header into (modifier, kind, expr).
fn parse_eval_header(line: &str) -> Result<(String, EvalKind, String), String> {
    let usage = "invalid evaluation command. Must be either 'eval[_fail|_warn|_ordered|_info] instant at <offset:duration> <query>' or 'eval[_fail|_warn|_info] range from <from> to <to> step <step> <query>'";
    let (head, rest) = next_word(line).ok_or(usage)?;
    let modifier = match head {
        "eval" => "",
        "eval_fail" => "fail",
        "eval_warn" => "warn",
        "eval_info" => "info",
        "eval_ordered" => "ordered",
        _ => return Err(usage.into()),
    }
    .to_string();
    let (kind_word, rest) = next_word(rest).ok_or(usage)?;
    match kind_word {
        "instant" => {
            let (at, rest) = next_word(rest).ok_or(usage)?;
            if at != "at" {
                return Err(usage.into());
            }
            let (t, expr) = next_word(rest).ok_or(usage)?;
            if expr.is_empty() {
                return Err(usage.into());
            }
            let t = parse_duration_ms(t).map_err(|e| format!("invalid timestamp definition {t:?}: {e}"))?;
            Ok((modifier, EvalKind::Instant { t }, expr.to_string()))
        }
        "range" => {
            if modifier == "ordered" {
                return Err(usage.into());
            }
            let mut parts = Vec::new();
            let mut rest = rest;
            for kw in ["from", "to", "step"] {
                let (w, r) = next_word(rest).ok_or(usage)?;
                if w != kw {
                    return Err(usage.into());
                }
                let (v, r) = next_word(r).ok_or(usage)?;
                parts.push(v);
                rest = r;
            }
            if rest.is_empty() {
                return Err(usage.into());
            }
            let (start, end, step) = parse_range_times(parts[0], parts[1], parts[2])?;
            Ok((modifier, EvalKind::Range { start, end, step }, rest.to_string()))
        }
        _ => Err(usage.into()),
    }
}

/// Parses `from`, `to` and `step` durations; `to` must not precede `from`.
fn parse_range_times(from: &str, to: &str, step: &str) -> Result<(i64, i64, i64), String> {
    let start = parse_duration_ms(from).map_err(|e| format!("invalid start timestamp definition {from:?}: {e}"))?;
    let end = parse_duration_ms(to).map_err(|e| format!("invalid end timestamp definition {to:?}: {e}"))?;
    if end < start {
        return Err(format!("invalid test definition, end timestamp ({to}) is before start timestamp ({from})"));
    }
    let step = parse_duration_ms(step).map_err(|e| format!("invalid step definition {step:?}: {e}"))?;
    Ok((start, end, step))
}

/// `expect <type> [msg|regex: <text>]`.
fn parse_expect(line: &str) -> Result<(ExpectKind, TextMatch), String> {
    let rest = line.strip_prefix("expect").unwrap_or(line).trim_start();
    let (word, tail) = match rest.find(|c: char| c.is_whitespace()) {
        Some(p) => (&rest[..p], rest[p..].trim_start()),
        None => (rest, ""),
    };
    let kind = match word {
        "ordered" => ExpectKind::Ordered,
        "fail" => ExpectKind::Fail,
        "warn" => ExpectKind::Warn,
        "no_warn" => ExpectKind::NoWarn,
        "info" => ExpectKind::Info,
        "no_info" => ExpectKind::NoInfo,
        _ => return Err("invalid expect statement, must match `expect <type> <match_type>: <string>` format".into()),
    };
    if tail.is_empty() {
        let any = Regex::new("^.*$").map_err(|e| e.to_string())?;
        return Ok((kind, TextMatch::Regex(any)));
    }
    if let Some(m) = tail.strip_prefix("msg:") {
        if m.is_empty() {
            return Err("invalid expect statement: empty msg".into());
        }
        return Ok((kind, TextMatch::Exact(m.trim().to_string())));
    }
    if let Some(r) = tail.strip_prefix("regex:") {
        let pattern = r.trim();
        if r.is_empty() {
            return Err("invalid expect statement: empty regex".into());
        }
        let re = Regex::new(pattern).map_err(|_| format!("invalid regex {pattern} for {word}"))?;
        return Ok((kind, TextMatch::Regex(re)));
    }
    Err("invalid expect statement, must match `expect <type> <match_type>: <string>` format".into())
}

fn parse_eval(lines: &[&str], i: usize) -> (usize, Eval) {
    let end = block_end(lines, i + 1);
    let mut ev = Eval {
        line: i + 1,
        expr: String::new(),
        kind: EvalKind::Instant { t: 0 },
        fail: false,
        warn: false,
        info: false,
        ordered: false,
        expects: Vec::new(),
        range_vector: None,
        expected_string: None,
        expected: Expected::Series(Vec::new()),
        exclude_from_range_query: false,
        problem: None,
    };
    let (modifier, kind, expr) = match parse_eval_header(lines[i]) {
        Ok(h) => h,
        Err(e) => {
            ev.problem = Some(e);
            return (end, ev);
        }
    };
    ev.expr = expr;
    ev.kind = kind;
    match modifier.as_str() {
        "fail" => ev.fail = true,
        "warn" => ev.warn = true,
        "info" => ev.info = true,
        "ordered" => ev.ordered = true,
        _ => {}
    }
    if let Err(e) = promql_parser::parser::parse(&ev.expr) {
        ev.problem = Some(format!("the query does not parse: {e}"));
        return (end, ev);
    }
    let is_instant = matches!(ev.kind, EvalKind::Instant { .. });
    let mut series: Vec<ExpectedSeries> = Vec::new();
    let mut pos = 0usize;
    let mut j = i + 1;
    while j < end {
        let line = lines[j];
        pos += 1;
        j += 1;
        if line.starts_with("expect range vector") {
            let r = line.strip_prefix("expect range vector").unwrap_or("");
            let parsed = (|| {
                let (f, r) = next_word(r).filter(|(w, _)| *w == "from").and_then(|(_, r)| next_word(r))?;
                let (t, r) = next_word(r).filter(|(w, _)| *w == "to").and_then(|(_, r)| next_word(r))?;
                let (s, r) = next_word(r).filter(|(w, _)| *w == "step").and_then(|(_, r)| next_word(r))?;
                r.is_empty().then_some((f, t, s))
            })();
            match parsed.map(|(f, t, s)| parse_range_times(f, t, s)) {
                Some(Ok((start, stop, step))) => {
                    ev.range_vector = Some((start, stop, step));
                    // Upstream evaluates such an instant query at the end of
                    // the expected range.
                    ev.kind = EvalKind::Instant { t: stop };
                    ev.exclude_from_range_query = true;
                }
                Some(Err(e)) => ev.problem = Some(e),
                None => ev.problem = Some(format!("invalid range vector definition {line:?}")),
            }
            continue;
        }
        if line.starts_with("expect string") {
            let lit = line.strip_prefix("expect string").unwrap_or("");
            match lit.strip_prefix(' ').filter(|s| !s.is_empty()).map(go_unquote) {
                Some(Ok(s)) => {
                    ev.expected_string = Some(s);
                    ev.exclude_from_range_query = true;
                }
                _ => ev.problem = Some(format!("expected string literal not valid in {line:?}")),
            }
            continue;
        }
        if line.split(' ').next() == Some("expect") {
            pos -= 1;
            match parse_expect(line) {
                Ok(e) => ev.expects.push(e),
                Err(e) => ev.problem = Some(e),
            }
            continue;
        }
        if let Ok(v) = parse_go_number(line) {
            // A bare number ends the block, as upstream stops reading there.
            ev.expected = Expected::Scalar(v);
            return (j, finish_eval(ev, series, true));
        }
        match parse_series_desc(line) {
            Ok(d) => {
                if d.points.len() > 1 && is_instant && ev.range_vector.is_none() {
                    ev.problem = Some("expecting multiple values in instant evaluation not allowed. consider using 'expect range vector' directive to enable a range vector result for an instant query".into());
                }
                series.retain(|s| s.labels != d.labels);
                series.push(ExpectedSeries { labels: d.labels, points: d.points, pos });
            }
            Err(e) => ev.problem = Some(format!("line {}: {e}", j)),
        }
    }
    (end, finish_eval(ev, series, false))
}

fn finish_eval(mut ev: Eval, series: Vec<ExpectedSeries>, scalar: bool) -> Eval {
    if !scalar {
        ev.expected = Expected::Series(series);
    }
    if ev.has(ExpectKind::Info) && ev.has(ExpectKind::NoInfo) {
        ev.problem.get_or_insert("invalid expect lines, info and no_info cannot be used together".into());
    }
    if ev.has(ExpectKind::Warn) && ev.has(ExpectKind::NoWarn) {
        ev.problem.get_or_insert("invalid expect lines, warn and no_warn cannot be used together".into());
    }
    if ev.expects_of(ExpectKind::Fail).count() > 1 {
        ev.problem.get_or_insert("invalid expect lines, multiple expect fail lines are not allowed".into());
    }
    ev
}

//! Checks of the harness itself (script parser, value notation, comparison,
//! `@` rewriting, panic and hang guarding), run before any script: with `harness = false` there are
//! no `#[test]`s, and a wrong harness would make every number meaningless.

use std::time::Duration;

use tidemark_promql::{
    Annotation, Annotations, HistogramPoint, Position, RangeSeries, SeriesSource, Value, VectorSample,
};
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, HistogramSample, HistogramValue, Span};
use tidemark_storage::{stale_nan, Labels, Matcher, Sample};

use crate::compare::{almost_equal, check_annotations, compare_result, EPSILON};
use crate::histo::{self, compact, entries, go_g, histograms_match, test_expression};
use crate::nhcb;
use crate::notation::{
    go_unquote, parse_duration_ms, parse_go_number, parse_labels, parse_series_desc, HistPoint, Point,
};
use crate::runner::{run_guarded, Runner};
use crate::script::{parse_script, Command, Eval, EvalKind, ExpectKind, Expected};
use crate::variants::{at_modifier_variants, uses_query_context_functions};

macro_rules! check {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!("{} (at {}:{})", format!($($msg)*), file!(), line!()));
        }
    };
}

fn floats(points: &[Point]) -> Vec<Option<f64>> {
    points
        .iter()
        .map(|p| match p {
            Point::Float(v) => Some(*v),
            _ => None,
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap_or_default()
}

/// Runs every check; the first failure is returned.
pub fn run() -> Result<(), String> {
    durations()?;
    numbers()?;
    series_notation()?;
    histogram_notation()?;
    histogram_expansions()?;
    histogram_text()?;
    histogram_comparison()?;
    nhcb_conversion()?;
    loaded_histograms()?;
    comparison()?;
    scripts()?;
    results()?;
    at_variants()?;
    guarded_runs()?;
    Ok(())
}

fn durations() -> Result<(), String> {
    for (s, ms) in
        [("0", 0), ("5m", 300_000), ("1h30m", 5_400_000), ("20s500ms", 20_500), ("100", 100_000), ("1d", 86_400_000)]
    {
        check!(parse_duration_ms(s) == Ok(ms), "duration {s:?} should be {ms} ms, got {:?}", parse_duration_ms(s));
    }
    for bad in ["", "5x", "1m1h", "m", "-5m", "1.5m"] {
        check!(parse_duration_ms(bad).is_err(), "duration {bad:?} should be rejected");
    }
    Ok(())
}

fn numbers() -> Result<(), String> {
    for (s, v) in [
        ("3", 3.0),
        ("-2.5", -2.5),
        ("1e3", 1000.0),
        ("0x10", 16.0),
        ("010", 8.0),
        ("+Inf", f64::INFINITY),
        ("-Inf", f64::NEG_INFINITY),
    ] {
        check!(parse_go_number(s) == Ok(v), "number {s:?} should be {v}, got {:?}", parse_go_number(s));
    }
    check!(parse_go_number("NaN").is_ok_and(f64::is_nan), "NaN should parse");
    for bad in ["foo", "{} 1", "1 2", "", "infinite"] {
        check!(parse_go_number(bad).is_err(), "{bad:?} is not a number");
    }
    check!(go_unquote(r#""a\"b\n""#).as_deref() == Ok("a\"b\n"), "unquote escapes");
    check!(go_unquote("`x\\y`").as_deref() == Ok("x\\y"), "raw strings keep backslashes");
    check!(go_unquote("\"open").is_err(), "unterminated string");
    Ok(())
}

fn series_notation() -> Result<(), String> {
    let d = parse_series_desc(r#"http_requests{job="api", path="/a b"} 1+2x3 _ 5 stale -1-1x1 _x2 Inf"#)?;
    check!(
        d.labels == labels(&[("__name__", "http_requests"), ("job", "api"), ("path", "/a b")]),
        "labels {}",
        d.labels
    );
    let want = vec![
        Some(1.0),
        Some(3.0),
        Some(5.0),
        Some(7.0),
        None,
        Some(5.0),
        Some(f64::NAN),
        Some(-1.0),
        Some(-2.0),
        None,
        None,
        Some(f64::INFINITY),
    ];
    let got = floats(&d.points);
    check!(got.len() == want.len(), "expanded to {} points, want {}: {got:?}", got.len(), want.len());
    check!(
        matches!(d.points[6], Point::Float(v) if v.to_bits() == stale_nan().to_bits()),
        "stale must be the staleness marker"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let same = match (g, w) {
            (Some(a), Some(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (None, None) => true,
            _ => false,
        };
        check!(same, "point {i}: got {g:?}, want {w:?}");
    }
    let d = parse_series_desc("m 3x2 -Inf NaN 1m")?;
    check!(d.points.len() == 6, "3x2 is three values, got {:?}", d.points);
    check!(matches!(d.points[5], Point::Float(v) if v == 60.0), "a duration value counts in seconds");
    let d = parse_series_desc("m 0.1+0.1x2")?;
    check!(matches!(d.points[2], Point::Float(v) if v == 0.1 + 0.1 + 0.1), "increments accumulate like Go's += ");
    let d = parse_series_desc("{} 7")?;
    check!(d.labels.is_empty() && d.points.len() == 1, "empty label set");
    let d = parse_series_desc(r#"{__name__="a", b="c"} 1"#)?;
    check!(d.labels == labels(&[("__name__", "a"), ("b", "c")]), "name as a matcher: {}", d.labels);
    check!(parse_labels("foo{a=~\"b\"}").is_err(), "regex matchers are not labels");
    for bad in ["m 1x", "m 1+2", "m abc", "m 1+x3", "m {{count:1", "m{a=\"b\" 1"] {
        check!(parse_series_desc(bad).is_err(), "{bad:?} should be rejected");
    }
    Ok(())
}

fn comparison() -> Result<(), String> {
    check!(almost_equal(1.0, 1.0 + 1e-9, EPSILON), "relative tolerance");
    check!(!almost_equal(1.0, 1.001, EPSILON), "outside tolerance");
    check!(almost_equal(1e12, 1e12 + 1.0, EPSILON), "tolerance is relative");
    check!(almost_equal(f64::NAN, f64::NAN, EPSILON), "NaN equals NaN");
    check!(!almost_equal(f64::NAN, stale_nan(), EPSILON), "NaN is not a staleness marker");
    check!(almost_equal(stale_nan(), stale_nan(), EPSILON), "stale equals stale");
    check!(!almost_equal(0.0, 1e-300, EPSILON), "zero against tiny");
    check!(almost_equal(f64::INFINITY, f64::INFINITY, EPSILON), "Inf equals Inf");
    check!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY, EPSILON), "+Inf is not -Inf");
    check!(!almost_equal(f64::INFINITY, f64::MAX, EPSILON), "Inf is not MAX");
    Ok(())
}

fn scripts() -> Result<(), String> {
    let text = r#"
# comment
load 5m
  metric{a="1"} 0+10x2
  metric{a="1"}@st 0 0 0

eval instant at 10m sum(metric)
  expect no_warn
  expect info msg: PromQL info: something (1:5)
  {} 20
   # a comment line ends the block
  bogus

eval range from 0 to 10m step 5m metric
  metric{a="1"} 0 10 _

eval instant at 1m 1 + 1
  2

eval_fail instant at 0m foo(

eval instant at 1m foo[5m]
  expect range vector from 0 to 1m step 30s
  foo 1 2 3

eval instant at 0 "x"
  expect string "x\ty"

clear
"#;
    let cmds = parse_script(text);
    check!(cmds.len() == 9 && matches!(cmds[8], Command::Clear), "expected 9 commands, got {}: {cmds:#?}", cmds.len());
    let Command::Load(l) = &cmds[0] else { return Err(format!("first command {:?}", cmds[0])) };
    check!(l.step_ms == 300_000 && l.series.len() == 1 && l.st_lines == 1, "load block {l:?}");
    let Command::Eval(e) = &cmds[1] else { return Err("second command is not an eval".into()) };
    check!(e.line == 7 && e.expr == "sum(metric)" && e.kind == EvalKind::Instant { t: 600_000 }, "eval header {e:?}");
    check!(e.has(ExpectKind::NoWarn) && e.has(ExpectKind::Info) && e.problem.is_none(), "expect lines {e:?}");
    check!(matches!(&e.expected, Expected::Series(s) if s.len() == 1 && s[0].labels.is_empty()), "expected {e:?}");
    check!(
        matches!(cmds[2], Command::Invalid { line: 12, .. }),
        "the line after a comment is a new command: {:?}",
        cmds[2]
    );
    let Command::Eval(e) = &cmds[3] else { return Err("range eval missing".into()) };
    check!(e.kind == EvalKind::Range { start: 0, end: 600_000, step: 300_000 }, "range {e:?}");
    let Command::Eval(e) = &cmds[4] else { return Err("scalar eval missing".into()) };
    check!(matches!(e.expected, Expected::Scalar(v) if v == 2.0), "scalar {e:?}");
    let Command::Eval(e) = &cmds[5] else { return Err("eval_fail missing".into()) };
    check!(e.fail && e.problem.is_some(), "an unparseable query is a broken eval: {e:?}");
    let Command::Eval(e) = &cmds[6] else { return Err("range vector eval missing".into()) };
    check!(e.range_vector == Some((0, 60_000, 30_000)) && e.exclude_from_range_query && e.problem.is_none(), "{e:?}");
    let Command::Eval(e) = &cmds[7] else { return Err("string eval missing".into()) };
    check!(e.expected_string.as_deref() == Some("x\ty"), "string {e:?}");
    Ok(())
}

/// The single eval of a one-eval script.
fn one_eval(text: &str) -> Result<Eval, String> {
    match parse_script(text).into_iter().find_map(|c| match c {
        Command::Eval(e) => Some(e),
        _ => None,
    }) {
        Some(e) if e.problem.is_none() => Ok(*e),
        Some(e) => Err(format!("eval has a problem: {:?}", e.problem)),
        None => Err(format!("no eval in {text:?}")),
    }
}

fn sample(l: Labels, t: i64, v: f64) -> VectorSample {
    VectorSample { labels: l, t, v, h: None }
}

fn results() -> Result<(), String> {
    let a = labels(&[("__name__", "m"), ("i", "a")]);
    let b = labels(&[("__name__", "m"), ("i", "b")]);
    let ev = one_eval("eval instant at 1m m\n  m{i=\"a\"} 1\n  m{i=\"b\"} 2\n")?;
    let good = Value::Vector(vec![sample(b.clone(), 60_000, 2.0), sample(a.clone(), 60_000, 1.0)]);
    check!(compare_result(&ev, &good, Some(60_000)).is_ok(), "vectors compare unordered");
    let wrong_value = Value::Vector(vec![sample(a.clone(), 60_000, 1.0), sample(b.clone(), 60_000, 2.1)]);
    check!(compare_result(&ev, &wrong_value, Some(60_000)).is_err(), "a wrong value fails");
    let missing = Value::Vector(vec![sample(a.clone(), 60_000, 1.0)]);
    check!(compare_result(&ev, &missing, Some(60_000)).is_err(), "a missing series fails");
    let extra = Value::Vector(vec![
        sample(a.clone(), 60_000, 1.0),
        sample(b.clone(), 60_000, 2.0),
        sample(labels(&[("i", "c")]), 60_000, 3.0),
    ]);
    check!(compare_result(&ev, &extra, Some(60_000)).is_err(), "an unexpected series fails");
    let wrong_time = Value::Vector(vec![sample(a.clone(), 0, 1.0), sample(b.clone(), 60_000, 2.0)]);
    check!(compare_result(&ev, &wrong_time, Some(60_000)).is_err(), "instant results carry the eval time");
    check!(
        compare_result(&ev, &Value::Scalar { t: 60_000, v: 1.0 }, Some(60_000)).is_err(),
        "a scalar is not a vector"
    );

    let ev = one_eval("eval instant at 1m m\n  expect ordered\n  m{i=\"a\"} 1\n  m{i=\"b\"} 2\n")?;
    check!(compare_result(&ev, &good, Some(60_000)).is_err(), "ordered results check the order");

    let ev = one_eval("eval instant at 1m 1 + 1\n  2\n")?;
    check!(compare_result(&ev, &Value::Scalar { t: 60_000, v: 2.0 }, Some(60_000)).is_ok(), "scalar result");
    check!(compare_result(&ev, &Value::Vector(vec![]), Some(60_000)).is_err(), "an empty vector is not a scalar");

    let ev = one_eval("eval range from 0 to 2m step 1m m\n  m{i=\"a\"} 1 _ 3\n  m{i=\"b\"} _ 2 2\n")?;
    let ser = |l: &Labels, pts: &[(i64, f64)]| RangeSeries {
        labels: l.clone(),
        samples: pts.iter().map(|&(t, v)| Sample { t, v }).collect(),
        histograms: Vec::new(),
    };
    let m = Value::Matrix(vec![ser(&a, &[(0, 1.0), (120_000, 3.0)]), ser(&b, &[(60_000, 2.0), (120_000, 2.0)])]);
    check!(compare_result(&ev, &m, None).is_ok(), "matrix with gaps: {:?}", compare_result(&ev, &m, None));
    let unsorted = Value::Matrix(vec![ser(&b, &[(60_000, 2.0), (120_000, 2.0)]), ser(&a, &[(0, 1.0), (120_000, 3.0)])]);
    check!(compare_result(&ev, &unsorted, None).is_err(), "matrices must be sorted by labels");
    let shifted = Value::Matrix(vec![ser(&a, &[(0, 1.0), (60_000, 3.0)]), ser(&b, &[(60_000, 2.0), (120_000, 2.0)])]);
    check!(compare_result(&ev, &shifted, None).is_err(), "matrix timestamps are checked");

    let ev = one_eval("eval instant at 0m m\n  expect info msg: PromQL info: x (1:1)\n  expect no_warn\n")?;
    let mut annos = Annotations::default();
    check!(check_annotations(&ev, &annos).is_err(), "an expected info is missing");
    annos.add(Annotation::info("x", Some(Position { line: 1, column: 1 })));
    check!(check_annotations(&ev, &annos).is_ok(), "the expected info is present");
    annos.add(Annotation::info("y", Some(Position { line: 1, column: 1 })));
    check!(check_annotations(&ev, &annos).is_err(), "every info must be expected");
    let mut warned = Annotations::default();
    warned.add(Annotation::info("x", Some(Position { line: 1, column: 1 })));
    warned.add(Annotation::warning("w", None));
    check!(check_annotations(&ev, &warned).is_err(), "no_warn rejects warnings");
    Ok(())
}

fn at_variants() -> Result<(), String> {
    let v = at_modifier_variants("sum(rate(foo[5m])) + bar offset 1m", 100_000)?;
    let times: Vec<i64> = v.iter().map(|v| v.t).collect();
    check!(times == vec![-1_000_000, 0, 20_000, 100_000, 1_000_000], "eval times {times:?}");
    check!(v[0].expr == "sum(rate(foo[5m] @ 100.000)) + bar @ 100.000 offset 1m", "rewritten {}", v[0].expr);
    let v = at_modifier_variants("foo", 0)?;
    check!(v.iter().map(|v| v.t).collect::<Vec<_>>() == vec![-1000, 0, 1000], "times at 0: {v:?}");
    // Go prints a positive infinite literal as `+Inf` (annotation positions
    // depend on it); strings keep their text.
    let v = at_modifier_variants("histogram_fraction(-Inf, +Inf, h{le=\"Inf\"})", 60_000)?;
    check!(
        v[0].expr == "histogram_fraction(-Inf, +Inf, h{le=\"Inf\"} @ 60.000)",
        "+Inf printed as Go does: {}",
        v[0].expr
    );
    check!(at_modifier_variants("time() - foo", 60_000)?.is_empty(), "time() disables @ variants");
    check!(at_modifier_variants("timestamp(foo)", 60_000)?.is_empty(), "timestamp() disables @ variants");
    let v = at_modifier_variants("max_over_time(timestamp(foo)[5m:1m]) + bar @ 50", 60_000)?;
    check!(v.len() == 5, "functions inside a subquery are not inspected: {v:?}");
    check!(
        v[0].expr == "max_over_time(timestamp(foo)[5m:1m] @ 60.000) + bar @ 50.000",
        "subquery gets @, its inside does not: {}",
        v[0].expr
    );
    let v = at_modifier_variants("foo @ start()", 60_000)?;
    check!(v[0].expr == "foo @ 60.000", "@ start() is replaced: {}", v[0].expr);
    let v = at_modifier_variants(r#"label_replace(m, "\xff", "", "src", "(.*)")"#, 0)?;
    check!(v[0].expr == r#"label_replace(m @ 0.000, "\xff", "", "src", "(.*)")"#, "\\x escapes survive: {}", v[0].expr);
    let v = at_modifier_variants(r#"count_values("a\xc5z", m)"#, 0)?;
    check!(v[0].expr == r#"count_values("a\xc5z", m @ 0.000)"#, "\\x escapes survive: {}", v[0].expr);
    check!(uses_query_context_functions("foo @ end()"), "end() is a query context function");
    check!(!uses_query_context_functions("sum(foo)"), "sum is not");
    Ok(())
}

/// A panicking or hanging query becomes an error, not an aborted run.
fn guarded_runs() -> Result<(), String> {
    let r = run_guarded(|| panic!("boom"), Duration::from_secs(10));
    check!(
        matches!(&r, Err(e) if e.to_string().contains("panicked") && e.to_string().contains("boom")),
        "panic: {r:?}"
    );
    let r = run_guarded(
        || {
            std::thread::sleep(Duration::from_millis(500));
            Err(tidemark_promql::Error::Timeout)
        },
        Duration::from_millis(20),
    );
    check!(matches!(&r, Err(e) if e.to_string().contains("abandoned")), "hang: {r:?}");
    let r = run_guarded(|| Err(tidemark_promql::Error::Timeout), Duration::from_secs(10));
    check!(matches!(r, Err(tidemark_promql::Error::Timeout)), "errors pass through: {r:?}");
    Ok(())
}

/// The histograms of a parsed series line (`None` for other points).
fn hists(line: &str) -> Result<Vec<Option<HistPoint>>, String> {
    Ok(parse_series_desc(line)?
        .points
        .into_iter()
        .map(|p| match p {
            Point::Histogram(h) => Some(*h),
            _ => None,
        })
        .collect())
}

fn one_hist(text: &str) -> Result<HistPoint, String> {
    match hists(&format!("m {text}"))?.as_slice() {
        [Some(h)] => Ok(h.clone()),
        other => Err(format!("{text} should be one histogram, got {other:?}")),
    }
}

fn span(offset: i32, length: u32) -> Span {
    Span { offset, length }
}

fn histogram_notation() -> Result<(), String> {
    // Every key, as native_histograms.test and functions.test write them.
    let h = one_hist(
        "{{schema:1 sum:-0.3 count:3.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5 counter_reset_hint:gauge}}",
    )?;
    let want = FloatHistogram {
        counter_reset_hint: CounterResetHint::Gauge,
        schema: 1,
        zero_threshold: 0.05,
        zero_count: 7.1,
        count: 3.1,
        sum: -0.3,
        positive_spans: vec![span(-3, 3)],
        negative_spans: vec![span(-5, 2)],
        positive_buckets: vec![5.1, 10.0, 7.0],
        negative_buckets: vec![4.1, 5.0],
        custom_values: vec![],
    };
    check!(h.h == want && h.hint_set, "every key: {h:?}");
    let h = one_hist("{{schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]}}")?;
    check!(
        h.h.schema == -53 && h.h.custom_values == vec![5.0, 10.0] && h.h.positive_spans == vec![span(0, 1)],
        "custom buckets: {h:?}"
    );
    check!(!h.hint_set && h.h.counter_reset_hint == CounterResetHint::Unknown, "no hint written: {h:?}");
    for empty in ["{{}}", "{{ }}"] {
        let h = one_hist(empty)?;
        check!(h.h == FloatHistogram::default(), "{empty} is the empty histogram: {h:?}");
    }
    let h = one_hist("{{schema:-53 custom_values:[-2 3]}}")?;
    check!(h.h.positive_spans.is_empty() && h.h.custom_values == vec![-2.0, 3.0], "no buckets: {h:?}");
    let h = one_hist("{{sum:Inf count:NaN z_bucket:-Inf buckets:[1 -Inf NaN 0x10 1e2 ]}}")?;
    check!(h.h.sum == f64::INFINITY && h.h.count.is_nan() && h.h.zero_count == f64::NEG_INFINITY, "Inf and NaN: {h:?}");
    check!(
        h.h.positive_buckets[..2] == [1.0, f64::NEG_INFINITY]
            && h.h.positive_buckets[2].is_nan()
            && h.h.positive_buckets[3..] == [16.0, 100.0],
        "bucket numbers (a space before `]` is allowed): {:?}",
        h.h.positive_buckets
    );
    for (text, hint) in [
        ("reset", CounterResetHint::CounterReset),
        ("not_reset", CounterResetHint::NotCounterReset),
        ("unknown", CounterResetHint::Unknown),
        ("gauge", CounterResetHint::Gauge),
    ] {
        let h = one_hist(&format!("{{{{count:1 counter_reset_hint:{text}}}}}"))?;
        check!(h.h.counter_reset_hint == hint && h.hint_set, "hint {text}: {h:?}");
    }
    // Mixed float and histogram values, `_`, `stale` and repetitions.
    let d = parse_series_desc("m 1 2 {{count:1}} _ stale {{count:2 sum:3}}x2 _x2 3+1x1")?;
    let kinds: String = d
        .points
        .iter()
        .map(|p| match p {
            Point::Omitted => '_',
            Point::Float(_) => 'f',
            Point::Histogram(_) => 'h',
        })
        .collect();
    check!(kinds == "ffh_fhhh__ff", "mixed series: {kinds}");
    check!(matches!(d.points[4], Point::Float(v) if v.to_bits() == stale_nan().to_bits()), "stale in a mixed series");
    let rep = hists("m {{count:2 sum:3}}x2")?;
    check!(
        rep.len() == 3 && rep.iter().all(|h| h.as_ref().is_some_and(|h| h.h.count == 2.0)),
        "xN repeats a histogram N+1 times: {rep:?}"
    );
    // What upstream's lexer and grammar refuse.
    for bad in [
        "m {{count:1",
        "m {{count:1 count:2}}",
        "m {{foo:1}}",
        "m {{count 1}}",
        "m {{buckets:[]}}",
        "m {{buckets:[1 2}}",
        "m {{counter_reset_hint:maybe}}",
        "m {{schema:1.5}}",
        "m {{z_bucket_w:-1}}",
        "m {{ count:1}}",
        "m {{count:1}}x",
        "m {{count:1}}+{{count:1}}",
        "m {{count:1}}*{{count:1}}x2",
        "m {{count:+1}}",
    ] {
        check!(parse_series_desc(bad).is_err(), "{bad:?} should be rejected");
    }
    Ok(())
}

fn histogram_expansions() -> Result<(), String> {
    // native_histograms.test: buckets and spans of the increment added in.
    let s = hists("m {{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{sum:2 count:1 buckets:[1] offset:1}}x2")?;
    check!(s.len() == 3, "x2 expands to 3 points: {s:?}");
    let last = s[2].as_ref().ok_or("not a histogram")?;
    check!(
        last.h.count == 6.0
            && last.h.sum == 8.0
            && entries(&last.h.positive_spans, &last.h.positive_buckets) == vec![(0, 1.0), (1, 4.0), (2, 1.0)],
        "base + 2·increment: {last:?}"
    );
    check!(s[0].as_ref().is_some_and(|h| h.h.count == 4.0), "the base comes first");
    // A coarser base: the increment is reduced to its schema.
    let s = hists(
        "m {{schema:-1 sum:4 count:1 buckets:[1] offset:1}}+{{schema:0 sum:4 count:4 buckets:[2 2] offset:1}}x1",
    )?;
    let h = &s[1].as_ref().ok_or("not a histogram")?.h;
    check!(
        h.schema == -1 && h.count == 5.0 && entries(&h.positive_spans, &h.positive_buckets) == vec![(1, 5.0)],
        "schema reduction: {h:?}"
    );
    check!(
        parse_series_desc("m {{schema:0 count:1}}+{{schema:-1 count:1}}x1").is_err(),
        "a finer base than the increment cannot be combined"
    );
    // Negative buckets and subtraction.
    let s = hists("m {{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{schema:0 sum:-4 count:4 n_buckets:[1 2 1]}}x1")?;
    let h = &s[1].as_ref().ok_or("not a histogram")?.h;
    check!(h.count == 8.0 && h.sum == 0.0 && h.negative_buckets == vec![1.0, 2.0, 1.0], "negative buckets: {h:?}");
    let s = hists("m {{count:10 sum:10 buckets:[5 5]}}-{{count:1 sum:1 buckets:[1] offset:1}}x2")?;
    let h = &s[2].as_ref().ok_or("not a histogram")?.h;
    check!(h.count == 8.0 && h.positive_buckets == vec![5.0, 3.0], "subtraction: {h:?}");
    // Custom buckets: equal boundaries add per bucket; different ones meet
    // at the boundaries both have.
    let s = hists("m {{schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]}}+{{schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]}}x7")?;
    let h = &s[7].as_ref().ok_or("not a histogram")?.h;
    check!(h.count == 8.0 && h.positive_buckets == vec![8.0] && h.custom_values == vec![5.0, 10.0], "NHCB: {h:?}");
    let a = one_hist("{{schema:-53 count:3 custom_values:[1 2 3] buckets:[1 1 1]}}")?.h;
    let b = one_hist("{{schema:-53 count:2 custom_values:[2 4] buckets:[1 1]}}")?.h;
    let h = histo::add(&a, &b, false)?;
    check!(
        h.custom_values == vec![2.0] && entries(&h.positive_spans, &h.positive_buckets) == vec![(0, 3.0), (1, 2.0)],
        "mismatched custom bounds reconcile to their intersection: {h:?}"
    );
    check!(histo::add(&a, &one_hist("{{count:1}}")?.h, false).is_err(), "custom and exponential buckets do not add");
    // The wider zero bucket swallows the buckets below its threshold.
    let a = one_hist("{{z_bucket:1 z_bucket_w:0.5 buckets:[1 1 1] offset:-1}}")?.h;
    let b = one_hist("{{z_bucket:1 z_bucket_w:1}}")?.h;
    let h = histo::add(&a, &b, false)?;
    check!(
        h.zero_threshold == 1.0
            && h.zero_count == 4.0
            && entries(&h.positive_spans, &h.positive_buckets) == vec![(1, 1.0)],
        "zero bucket reconciliation: {h:?}"
    );
    // Hints: the increment's "written" flag on every step, the combined
    // hint on every sum.
    let s = hists("m {{sum:1 count:1}}+{{count:1 counter_reset_hint:gauge}}x1")?;
    let (h0, h1) = (s[0].as_ref().ok_or("h0")?, s[1].as_ref().ok_or("h1")?);
    check!(h0.hint_set && h1.hint_set, "the increment's flag: {s:?}");
    check!(
        h0.h.counter_reset_hint == CounterResetHint::Unknown && h1.h.counter_reset_hint == CounterResetHint::Gauge,
        "hints: {s:?}"
    );
    let s = hists("m {{count:1 counter_reset_hint:gauge}}+{{count:1}}x1")?;
    check!(
        s.iter().all(|h| h.as_ref().is_some_and(|h| !h.hint_set)),
        "an increment without a hint: nothing written: {s:?}"
    );
    Ok(())
}

fn histogram_text() -> Result<(), String> {
    for (v, want) in [
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5, "1.5"),
        (-2.0, "-2"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.25e-7, "1.25e-07"),
        (f64::INFINITY, "+Inf"),
    ] {
        check!(go_g(v) == want, "%g of {v}: {} (want {want})", go_g(v));
    }
    let h = one_hist("{{schema:1 count:3 sum:1e6 z_bucket_w:0.001 buckets:[1 0 2] n_offset:2 n_buckets:[1] counter_reset_hint:gauge}}")?;
    let text = test_expression(&h.h);
    check!(
        text == "{{schema:1 count:3 sum:1e+06 z_bucket_w:0.001 counter_reset_hint:gauge buckets:[1 0 2] n_offset:2 n_buckets:[1]}}",
        "test expression: {text}"
    );
    // Spans with gaps print as one span, trailing empty buckets dropped.
    let h = FloatHistogram {
        count: 2.0,
        positive_spans: vec![span(1, 1), span(2, 2)],
        positive_buckets: vec![1.0, 1.0, 0.0],
        ..FloatHistogram::default()
    };
    check!(test_expression(&h) == "{{count:2 offset:1 buckets:[1 0 0 1]}}", "gaps: {}", test_expression(&h));
    let h = one_hist("{{schema:-53 custom_values:[1 2.5]}}")?;
    check!(test_expression(&h.h) == "{{schema:-53 custom_values:[1 2.5]}}", "NHCB: {}", test_expression(&h.h));
    check!(test_expression(&FloatHistogram::default()) == "{{}}", "empty");
    Ok(())
}

fn histogram_comparison() -> Result<(), String> {
    let exp =
        one_hist("{{schema:0 count:4 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] offset:1 n_buckets:[0 1]}}")?;
    let matches = |cur: &FloatHistogram| histograms_match(&compact(&exp.h, 0), &compact(cur, 0), exp.hint_set);
    check!(matches(&exp.h), "a histogram matches itself");
    // Another layout of the same buckets: empty buckets and split spans.
    let mut relaid = exp.h.clone();
    relaid.positive_spans = vec![span(0, 2), span(1, 1)];
    relaid.positive_buckets = vec![0.0, 1.0, 2.0];
    check!(!matches(&relaid), "bucket 2 is not bucket 3");
    relaid.positive_spans = vec![span(0, 2), span(0, 1)];
    check!(matches(&relaid), "empty buckets and adjacent spans do not matter");
    let mut near = exp.h.clone();
    near.count += 4e-9;
    near.positive_buckets[1] *= 1.0 + 1e-9;
    check!(matches(&near), "floats compare within the tolerance");
    for (what, f) in [
        ("count", Box::new(|h: &mut FloatHistogram| h.count = 5.0) as Box<dyn Fn(&mut FloatHistogram)>),
        ("sum", Box::new(|h: &mut FloatHistogram| h.sum = 5.1)),
        ("schema", Box::new(|h: &mut FloatHistogram| h.schema = 1)),
        ("zero count", Box::new(|h: &mut FloatHistogram| h.zero_count = 2.0)),
        ("zero threshold", Box::new(|h: &mut FloatHistogram| h.zero_threshold = 0.01)),
        ("a bucket", Box::new(|h: &mut FloatHistogram| h.positive_buckets[0] = 1.1)),
        ("a negative bucket", Box::new(|h: &mut FloatHistogram| h.negative_buckets[1] = 2.0)),
        ("an extra bucket", Box::new(|h: &mut FloatHistogram| h.negative_buckets[0] = 2.0)),
    ] {
        let mut h = exp.h.clone();
        f(&mut h);
        check!(!matches(&h), "a different {what} must not match");
    }
    // The hint counts only when written out.
    let mut gauge = exp.h.clone();
    gauge.counter_reset_hint = CounterResetHint::Gauge;
    check!(matches(&gauge), "no hint written: any hint matches");
    let written = one_hist("{{count:1 counter_reset_hint:not_reset}}")?;
    let mut cur = written.h.clone();
    check!(histograms_match(&written.h, &cur, true), "same hint");
    cur.counter_reset_hint = CounterResetHint::Unknown;
    check!(!histograms_match(&written.h, &cur, true), "a written hint must match");
    // Custom bounds are compared for NHCB.
    let nhcb = one_hist("{{schema:-53 count:1 custom_values:[1 2] buckets:[1]}}")?.h;
    let mut other = nhcb.clone();
    other.custom_values = vec![1.0, 3.0];
    check!(!histograms_match(&nhcb, &other, false), "custom bounds differ");

    // Whole results: vectors and matrices with histograms.
    let l = labels(&[("__name__", "h")]);
    let ev = one_eval("eval instant at 1m h\n  h {{count:4 sum:5 buckets:[1 3]}}\n")?;
    let hs = |count: f64| VectorSample {
        labels: l.clone(),
        t: 60_000,
        v: 0.0,
        h: Some(Box::new(FloatHistogram {
            count,
            sum: 5.0,
            positive_spans: vec![span(0, 2)],
            positive_buckets: vec![1.0, count - 1.0],
            ..FloatHistogram::default()
        })),
    };
    check!(compare_result(&ev, &Value::Vector(vec![hs(4.0)]), Some(60_000)).is_ok(), "vector histogram");
    let e = compare_result(&ev, &Value::Vector(vec![hs(5.0)]), Some(60_000)).err().unwrap_or_default();
    check!(
        e == "expected {{count:4 sum:5 buckets:[1 3]}} for {__name__=\"h\"} but got {{count:5 sum:5 buckets:[1 4]}}",
        "message: {e}"
    );
    let float = sample(l.clone(), 60_000, 4.0);
    check!(compare_result(&ev, &Value::Vector(vec![float.clone()]), Some(60_000)).is_err(), "float for histogram");
    let ev = one_eval("eval instant at 1m h\n  h 4\n")?;
    check!(compare_result(&ev, &Value::Vector(vec![hs(4.0)]), Some(60_000)).is_err(), "histogram for float");
    let ev = one_eval("eval range from 0 to 2m step 1m h\n  h 1 {{count:4 sum:5 buckets:[1 3]}} _\n")?;
    let hp = |t: i64, count: f64| HistogramPoint { t, h: *hs(count).h.unwrap_or_default() };
    let m = |floats: Vec<Sample>, histograms: Vec<HistogramPoint>| {
        Value::Matrix(vec![RangeSeries { labels: l.clone(), samples: floats, histograms }])
    };
    check!(compare_result(&ev, &m(vec![Sample::new(0, 1.0)], vec![hp(60_000, 4.0)]), None).is_ok(), "mixed matrix");
    check!(compare_result(&ev, &m(vec![Sample::new(0, 1.0)], vec![hp(120_000, 4.0)]), None).is_err(), "wrong time");
    check!(compare_result(&ev, &m(vec![Sample::new(0, 1.0)], vec![hp(60_000, 5.0)]), None).is_err(), "wrong value");
    check!(compare_result(&ev, &m(vec![Sample::new(0, 1.0)], vec![]), None).is_err(), "missing histogram");
    Ok(())
}

/// The NHCB series of a `load_with_nhcb` script.
fn nhcb_of(text: &str) -> Result<Vec<nhcb::NhcbSeries>, String> {
    match parse_script(text).into_iter().next() {
        Some(Command::Load(l)) => {
            check!(l.with_nhcb && l.errors.is_empty(), "load block {l:?}");
            nhcb::convert(&l.series, l.step_ms)
        }
        other => Err(format!("not a load: {other:?}")),
    }
}

fn nhcb_conversion() -> Result<(), String> {
    // histograms.test: buckets in any order, `_sum` and `_count`, a
    // repeated `le` spelled differently, a NaN `le` skipped.
    let got = nhcb_of(
        r#"load_with_nhcb 5m
  m_bucket{le="+Inf", job="a"} 0+4x2
  m_bucket{le="0.2", job="a"} 0+3x2
  m_bucket{le="2e-1", job="a"} 0+3x2
  m_bucket{le="0.1", job="a"} 0+1x2
  m_bucket{le="NaN", job="a"} 0+9x2
  m_sum{job="a"} 0+10x2
  m_count{job="a"} 0+4x2
  other 1 2 3
"#,
    )?;
    check!(got.len() == 1, "one NHCB series: {got:?}");
    let (l, samples) = &got[0];
    check!(*l == labels(&[("__name__", "m"), ("job", "a")]), "NHCB labels {l}");
    check!(samples.iter().map(|(t, _)| *t).collect::<Vec<_>>() == vec![0, 300_000, 600_000], "times {samples:?}");
    let h = &samples[2].1;
    check!(
        h.schema == -53
            && h.count == 8.0
            && h.sum == 20.0
            && h.custom_values == vec![0.1, 0.2]
            && entries(&h.positive_spans, &h.positive_buckets) == vec![(0, 2.0), (1, 4.0), (2, 2.0)]
            && h.counter_reset_hint == CounterResetHint::Unknown,
        "NHCB at 10m: {h:?}"
    );
    check!(samples[0].1.positive_buckets.is_empty() && samples[0].1.count == 0.0, "all-zero: no buckets left");
    // Without `_count`, `_sum` and a `+Inf` bucket; a gap in one bucket.
    let got = nhcb_of("load_with_nhcb 1m\n  x_bucket{le=\"1\"} 1 2 3\n  x_bucket{le=\"5\"} 2 _ 4\n")?;
    let s = &got[0].1;
    check!(
        s[0].1.count == 2.0 && s[0].1.custom_values == vec![1.0, 5.0] && s[0].1.positive_buckets == vec![1.0, 1.0],
        "a +Inf bucket is added holding the count: {s:?}"
    );
    check!(s[1].1.count == 2.0 && s[1].1.custom_values == vec![1.0], "a missing bucket is just absent: {s:?}");
    // Whole counts keep up to two empty buckets between populated ones;
    // fractional counts keep none.
    let got = nhcb_of(
        "load_with_nhcb 1m\n  a_bucket{le=\"1\"} 1\n  a_bucket{le=\"2\"} 1\n  a_bucket{le=\"3\"} 1\n  a_bucket{le=\"+Inf\"} 2\n  b_bucket{le=\"1\"} 0.5\n  b_bucket{le=\"2\"} 0.5\n  b_bucket{le=\"+Inf\"} 1\n",
    )?;
    check!(
        got[0].1[0].1.positive_spans == vec![span(0, 4)] && got[0].1[0].1.positive_buckets == vec![1.0, 0.0, 0.0, 1.0],
        "integer path: Compact(2): {:?}",
        got[0].1[0].1
    );
    check!(got[1].1[0].1.positive_spans == vec![span(0, 1), span(1, 1)], "float path: Compact(0): {:?}", got[1].1[0].1);
    // Errors fail the load.
    for bad in [
        "load_with_nhcb 1m\n  x_bucket{le=\"1\"} 3\n  x_bucket{le=\"2\"} 2\n",
        "load_with_nhcb 1m\n  x_bucket{le=\"2\"} 2\n  x_bucket{le=\"1\"} 3\n",
        "load_with_nhcb 1m\n  x_bucket{le=\"+Inf\"} 3\n  x_count 4\n",
        "load_with_nhcb 1m\n  x_bucket{le=\"1\"} -1\n",
        "load_with_nhcb 1m\n  x_bucket 1\n",
    ] {
        check!(nhcb_of(bad).is_err(), "{bad:?} should fail");
    }
    // A failing conversion makes every later eval fail with the reason.
    let mut r = Runner::new(Duration::from_secs(10));
    let out = r.run_script(&parse_script(
        "load_with_nhcb 1m\n  x_bucket{le=\"+Inf\"} 3\n  x_count 4\n\neval instant at 0m x_count\n  x_count 4\n",
    ));
    check!(out.script_errors.len() == 1, "script errors {:?}", out.script_errors);
    check!(out.evals[0].failure.as_ref().is_some_and(|f| f.message.contains("count mismatch")), "{:?}", out.evals[0]);
    Ok(())
}

/// The samples of the one series matching `name` in the runner's store.
fn stored(r: &Runner, name: &str) -> Result<(Vec<Sample>, Vec<HistogramSample>), String> {
    let mut sel = r.storage().select(i64::MIN, i64::MAX, &[Matcher::equal("__name__", name)])?;
    check!(sel.len() == 1, "one series {name}, got {}", sel.len());
    let (mut f, mut h) = (Vec::new(), Vec::new());
    sel[0].samples.drain_mixed_into(&mut f, &mut h);
    Ok((f, h))
}

fn hints(h: &[HistogramSample]) -> Vec<CounterResetHint> {
    h.iter()
        .map(|s| match &s.h {
            HistogramValue::Float(f) => f.counter_reset_hint,
            HistogramValue::Integer(i) => i.counter_reset_hint,
        })
        .collect()
}

fn loaded_histograms() -> Result<(), String> {
    use CounterResetHint::{Gauge, NotCounterReset as Not, Unknown};
    let mut r = Runner::new(Duration::from_secs(10));
    let out = r.run_script(&parse_script(
        r#"load 1m
  counter {{count:1 sum:1 buckets:[1]}}+{{count:1 sum:1 buckets:[1]}}x2 {{count:1 sum:1 buckets:[1]}} {{count:2 sum:2 buckets:[2]}}
  gauge {{count:3 counter_reset_hint:gauge}} {{count:1 counter_reset_hint:gauge}}
  mixed {{count:1}} {{count:2}} 5 {{count:3}} {{count:4}} stale {{count:5}}
  hinted {{count:1}} {{count:2 counter_reset_hint:reset}} {{count:3 counter_reset_hint:not_reset}} {{count:1 counter_reset_hint:not_reset}}
  shrink {{count:2 buckets:[1 1]}} {{count:2 buckets:[2] offset:1}} {{count:2 buckets:[2 0] offset:1}}
  long {{count:1}}+{{count:1}}x3

load 1h
  long _ _ {{count:9}} {{count:10}}

load_with_nhcb 1m
  c_bucket{le="1"} 1 2
  c_bucket{le="+Inf"} 2 3
"#,
    ));
    check!(out.script_errors.is_empty(), "script errors {:?}", out.script_errors);
    let (f, h) = stored(&r, "counter")?;
    check!(f.is_empty() && h.len() == 5, "histograms only: {f:?} {h:?}");
    check!(h.iter().all(|s| matches!(s.h, HistogramValue::Float(_))), "loaded as float histograms");
    check!(hints(&h) == vec![Unknown, Not, Not, Unknown, Not], "a reset starts a chunk: {:?}", hints(&h));
    let (_, h) = stored(&r, "gauge")?;
    check!(hints(&h) == vec![Gauge, Gauge], "gauges stay gauges: {:?}", hints(&h));
    let (f, h) = stored(&r, "mixed")?;
    check!(f == vec![Sample::new(120_000, 5.0)], "the float stays a float: {f:?}");
    check!(h.len() == 6 && h[4].h.is_stale() && h[4].t == 300_000, "stale after a histogram is a histogram: {h:?}");
    check!(
        hints(&h) == vec![Unknown, Not, Unknown, Not, Unknown, Unknown],
        "floats and staleness start chunks: {:?}",
        hints(&h)
    );
    let (_, h) = stored(&r, "hinted")?;
    check!(
        hints(&h) == vec![Unknown, Unknown, Not, Unknown],
        "written hints: reset cuts a chunk, not_reset does not stop a detected reset: {:?}",
        hints(&h)
    );
    let (_, h) = stored(&r, "shrink")?;
    check!(hints(&h) == vec![Unknown, Unknown, Not], "a vanished populated bucket is a reset: {:?}", hints(&h));
    let (_, h) = stored(&r, "long")?;
    let times: Vec<i64> = h.iter().map(|s| s.t).collect();
    check!(times == vec![0, 60_000, 120_000, 180_000, 7_200_000, 10_800_000], "two loads into one series: {times:?}");
    check!(
        hints(&h) == vec![Unknown, Not, Not, Not, Unknown, Not],
        "a chunk range boundary starts a chunk: {:?}",
        hints(&h)
    );
    let (f, h) = stored(&r, "c")?;
    check!(f.is_empty() && h.len() == 2 && hints(&h) == vec![Unknown, Not], "NHCB series: {h:?}");
    let classic = r.storage().select(i64::MIN, i64::MAX, &[Matcher::equal("__name__", "c_bucket")])?;
    check!(
        classic.len() == 2 && classic.iter().all(|s| !s.samples.has_histograms()),
        "the classic series stay as loaded"
    );
    Ok(())
}

//! Checks of the harness itself (script parser, value notation, comparison,
//! `@` rewriting, panic and hang guarding), run before any script: with `harness = false` there are
//! no `#[test]`s, and a wrong harness would make every number meaningless.

use std::time::Duration;

use tidemark_promql::{Annotation, Annotations, Position, RangeSeries, Value, VectorSample};
use tidemark_storage::{stale_nan, Labels, Sample};

use crate::compare::{almost_equal, check_annotations, compare_result, EPSILON};
use crate::notation::{go_unquote, parse_duration_ms, parse_go_number, parse_labels, parse_series_desc, Point};
use crate::runner::run_guarded;
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
    let d = parse_series_desc("h {{schema:1 sum:3 count:22 buckets:[5 10 7]}} {{schema:1 count:1}}x2 _")?;
    check!(d.has_histogram() && d.points.len() == 5, "histogram items: {:?}", d.points);
    let d = parse_series_desc("h {{count:1}}+{{count:2}}x3")?;
    check!(d.points.len() == 4 && d.has_histogram(), "histogram increase series: {:?}", d.points);
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

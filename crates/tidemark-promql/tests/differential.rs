//! Differential test: our engine against a real Prometheus (Debian's 2.42).
//!
//! Both get the same generated data (see `differential/data.rs`): our
//! [`MemStorage`] directly, Prometheus through `promtool tsdb
//! create-blocks-from openmetrics`. Every query of
//! `testdata/promql/differential-queries.txt` then runs on both, as instant
//! queries at several times and as range queries, and the answers must be
//! equal: same label sets, timestamps, and values up to float rounding.
//!
//! Prometheus 2.42 is not the 3.x our engine follows; the data and query
//! times avoid the one systematic difference (closed against left-open range
//! boundaries), and the few remaining known differences are listed, with
//! their reasons, in [`KNOWN_DIFFERENCES`]. Details: testdata/promql/DIFFERENTIAL.md.
//!
//! Run it with `cargo test --release -p tidemark-promql --test differential`.

// The helpers live in tests/differential/ (an integration-test root looks for
// its modules beside itself, hence the paths).
#[path = "differential/data.rs"]
mod data;
#[path = "differential/gen.rs"]
mod gen;
#[path = "differential/prom.rs"]
mod prom;
#[path = "differential/result.rs"]
mod result;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidemark_promql::{Engine, MemStorage};
use tidemark_storage::Labels;

use data::{SPAN, T0};
use result::{compare, ours, Mismatch, Outcome};

/// Queries whose answers differ between Prometheus 2.42 and 3.x by design.
/// A mismatch on one of these is reported but does not fail the test; each
/// entry says why the difference is expected. Conversely, answering one of
/// them exactly like 2.42 fails: it means the 3.x behaviour is missing. Keep
/// this list short: anything not explained by a documented 2.x → 3.x change
/// is a bug to fix.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    // 2.42 keeps the metric name on `atan2` results (its name-dropping list
    // had only + - * / % ^); 3.x drops it like for every arithmetic operator.
    ("temperature_celsius atan2 10", "3.x drops __name__ for atan2"),
    // 3.x accepts any UTF-8 label name (UTF-8 names are on by default since
    // 3.0), so count_values may create the label `invalid-label`; 2.42
    // rejects it with "invalid label name".
    ("count_values(\"invalid-label\", up)", "3.x allows UTF-8 label names"),
    // 3.x: stddev/stdvar of a group whose first value is NaN or ±Inf is NaN
    // (the group starts from NaN); 2.42 answers 0 for a one-element group.
    ("stdvar by (sensor) (temperature_celsius / 0 * 0)", "3.x stdvar of a lone NaN is NaN"),
    // 3.x checks one-to-one matching for duplicates before a comparison
    // filters the pair out, so several left series matching one right series
    // fail even when every comparison is false; 2.42 checked after filtering
    // and returns the (here empty) result.
    (
        "temperature_celsius{sensor!=\"faulty\"} > on () (max(temperature_celsius) + 1000)",
        "3.x rejects many-to-one matches before filtering",
    ),
    // A generated query (seed 42). Counter zero-point extrapolation in
    // rate/increase: 2.42 shortens the start extrapolation to the zero point
    // *before* deciding between "extrapolate to the range start" and "half an
    // average interval"; 3.x decides first, then caps by the zero point. They
    // differ when the series starts inside the window and the zero point lies
    // between half an interval and 1.1 intervals before the first sample:
    // here, at T0+322s, a 5-point subquery that "resets" at every point
    // (2.42: 20107396.34, 3.x and ours: 17919869.80).
    (
        "rate((sum by (cpu) (quantile by () (0, node_memory_MemAvailable_bytes)))[20m:])",
        "3.x applies the counter zero point after the extrapolation threshold",
    ),
];

/// Instant query times, in seconds after T0. None is a whole minute, so no
/// subquery step (15 s, 30 s, 1 m, 5 m) lands on a subquery range boundary;
/// all are whole seconds while every sample has a millisecond part.
const INSTANT_TIMES: &[i64] = &[
    47,         // the first minute: windows reaching before the data
    1_837,      // the web instance 10.0.1.3 does not exist yet
    3_637,      // hypersdk instance down, after web 10.0.1.2's restart
    4_537,      // node-b not ready, 10.0.1.3 about to go away
    5_437,      // 10 minutes after 10.0.1.3 stopped (lookback expired)
    7_177,      // the data's last half minute
    SPAN + 197, // after the data, within the 5 m lookback
    SPAN + 437, // after the lookback: selectors are empty
];

/// Range queries: (start, end, step) in seconds; starts after T0.
const RANGES: &[(i64, i64, i64)] = &[
    (1_237, 3_037, 60), // 30 minutes at 60 s, across the web restart
    (3_613, 5_113, 45), // a start and step unaligned to minutes
    (6_637, 7_837, 60), // across the end of the data and the lookback
    (22, 7_522, 300),   // the whole data at a coarse step
    (2_962, 3_262, 15), // 5 minutes at the scrape interval
];

/// Random queries (see `differential/gen.rs`) run after the listed ones.
const GENERATED_QUERIES: usize = 250;
const GENERATOR_SEED: u64 = 42;

/// The whole comparison must stay well inside this (it takes a few seconds).
const TIME_LIMIT: Duration = Duration::from_secs(240);

/// One line of the query file.
struct Query {
    text: String,
    ordered: bool,
    invalid: bool,
    may_be_empty: bool,
    expect_error: bool,
}

fn load_queries() -> Vec<Query> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/promql/differential-queries.txt");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut q =
            Query { text: String::new(), ordered: false, invalid: false, may_be_empty: false, expect_error: false };
        let mut rest = line;
        loop {
            if let Some(r) = rest.strip_prefix("ordered:") {
                q.ordered = true;
                rest = r.trim_start();
            } else if let Some(r) = rest.strip_prefix("invalid:") {
                q.invalid = true;
                rest = r.trim_start();
            } else if let Some(r) = rest.strip_prefix("error:") {
                q.expect_error = true;
                rest = r.trim_start();
            } else if let Some(r) = rest.strip_prefix("empty:") {
                q.may_be_empty = true;
                rest = r.trim_start();
            } else {
                break;
            }
        }
        q.text = rest.to_string();
        out.push(q);
    }
    out
}

/// Milliseconds of `s` seconds after T0.
fn ms(s: i64) -> i64 {
    (T0 + s) * 1000
}

/// Fills our store with the generated series.
fn load_ours(d: &data::Data) -> MemStorage {
    let storage = MemStorage::new();
    for s in &d.series {
        let labels = Labels::new(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))).expect("valid labels");
        for &(t, v) in &s.samples {
            storage.add(&labels, t, v);
        }
    }
    storage
}

#[test]
fn our_engine_answers_like_prometheus_2_42() {
    let started = Instant::now();
    prom::require_binaries();
    let mut queries = load_queries();
    assert!(queries.len() > 100, "the query list looks truncated ({} queries)", queries.len());
    // Subquery steps are multiples of 15 s; no evaluation time may be one, or
    // a subquery range boundary would fall on a subquery point (see INSTANT_TIMES).
    let times = INSTANT_TIMES.iter().copied().chain(RANGES.iter().flat_map(|&(s, e, st)| (s..=e).step_by(st as usize)));
    for t in times {
        assert!(t % 15 != 0, "evaluation time T0+{t}s is a multiple of 15 s");
    }
    let listed = queries.len();
    let mut generated = gen::queries(GENERATOR_SEED, GENERATED_QUERIES);
    // TIDEMARK_DIFF_SEED (+ TIDEMARK_DIFF_GENERATED, default 1000) add more
    // random queries, to explore by hand; the fixed ones always run.
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = env("TIDEMARK_DIFF_SEED") {
        generated.extend(gen::queries(seed, env("TIDEMARK_DIFF_GENERATED").unwrap_or(1000) as usize));
    }
    queries.extend(generated.into_iter().map(|text| Query {
        text,
        ordered: false,
        invalid: false,
        may_be_empty: true,
        // Random compositions may fail (many-to-many matching) or be empty;
        // either way both sides must agree.
        expect_error: false,
    }));

    for (q, _) in KNOWN_DIFFERENCES {
        assert!(queries.iter().any(|x| x.text == *q), "KNOWN_DIFFERENCES names {q:?}, which is not in the query list");
    }

    let data = data::generate();
    let storage = load_ours(&data);
    let dir = tempfile::tempdir().expect("tempdir");
    let om = dir.path().join("data.om.txt");
    std::fs::write(&om, data.openmetrics()).expect("write openmetrics");
    let tsdb = dir.path().join("tsdb");
    prom::create_blocks(&om, &tsdb);
    let prometheus = prom::Prometheus::start(&tsdb);
    let engine = Engine::default();
    let loaded_at = started.elapsed();

    let mut mismatches = Vec::new();
    let mut known = Vec::new();
    let mut problems = Vec::new();
    let mut evaluations = 0;

    // First, the raw samples: proves both sides hold the same data, to the
    // millisecond (a difference here would make every other result moot).
    let everything = format!("{{__name__=~\".+\"}}[{}s]", SPAN + 10);
    let want = prometheus.instant(&everything, ms(SPAN + 5));
    let got = ours(|| engine.instant_query(&storage, &everything, ms(SPAN + 5)));
    if let Some(d) = compare(&want, &got, false) {
        panic!("the two stores do not hold the same samples: {d}");
    }
    let total_samples: usize = data.series.iter().map(|s| s.samples.len()).sum();
    let loaded = match &want {
        Outcome::Ok(result::Res::Matrix(m)) => m.iter().map(|(_, p)| p.len()).sum(),
        _ => 0,
    };
    assert_eq!(loaded, total_samples, "Prometheus does not hold every generated sample");

    let known_reasons: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    for (i, q) in queries.iter().enumerate() {
        let generated = i >= listed;
        assert!(started.elapsed() < TIME_LIMIT, "the differential test ran longer than {TIME_LIMIT:?}");
        let query = q.text.as_str();
        if q.invalid {
            evaluations += 1;
            let want = prometheus.instant(query, ms(3_637));
            let got = ours(|| engine.instant_query(&storage, query, ms(3_637)));
            match (&want, &got) {
                (Outcome::Err { parse: true, .. }, Outcome::Err { parse: true, .. }) => {}
                _ => mismatches.push(Mismatch {
                    query: query.into(),
                    at: "instant".into(),
                    detail: format!(
                        "both sides must reject it with a parse error; Prometheus: {want:?}; ours: {got:?}"
                    ),
                }),
            }
            continue;
        }
        let mut runs: Vec<(String, Outcome, Outcome)> = Vec::new();
        for &t in INSTANT_TIMES {
            let want = prometheus.instant(query, ms(t));
            let got = ours(|| engine.instant_query(&storage, query, ms(t)));
            runs.push((format!("instant at T0+{t}s"), want, got));
        }
        for &(start, end, step) in RANGES {
            let want = prometheus.range(query, ms(start), ms(end), step * 1000);
            let got = ours(|| engine.range_query(&storage, query, ms(start), ms(end), step * 1000));
            runs.push((format!("range T0+{start}s..T0+{end}s step {step}s"), want, got));
        }
        evaluations += runs.len();
        let mut any_data = false;
        let mut any_success = false;
        let mut any_error = false;
        for (at, want, got) in &runs {
            match want {
                Outcome::Ok(r) => {
                    any_success = true;
                    any_data |= r.has_data();
                }
                Outcome::Err { .. } => any_error = true,
            }
            if let Some(detail) = compare(want, got, q.ordered) {
                let m = Mismatch { query: query.into(), at: at.clone(), detail };
                if known_reasons.contains_key(query) {
                    known.push(m);
                } else {
                    mismatches.push(m);
                }
            }
        }
        if known_reasons.contains_key(query) && !known.iter().any(|m| m.query == query) {
            // The listed difference is 3.x behaviour; answering like 2.42 here
            // means our engine lacks it.
            problems.push(format!(
                "{query}: listed in KNOWN_DIFFERENCES ({}), yet we answer exactly like 2.42: the 3.x behaviour is missing",
                known_reasons[query]
            ));
        }
        if generated {
            // No data requirements for random queries.
        } else if q.expect_error {
            if !any_error {
                problems.push(format!("{query}: marked `error:` but Prometheus never fails on it"));
            }
        } else if known_reasons.contains_key(query) {
            // Its answers differ by design; the check above covers it.
        } else if !any_success {
            problems.push(format!("{query}: Prometheus rejects it everywhere (typo in the query list?)"));
        } else if !any_data && !q.may_be_empty {
            problems.push(format!(
                "{query}: Prometheus returns no data at any evaluation; fix the query or the data (or mark it `empty:`)"
            ));
        }
    }

    let elapsed = started.elapsed();
    println!(
        "differential: {} series / {total_samples} samples loaded in {:.1}s; {} queries ({listed} listed, {} \
         generated), {evaluations} evaluations in {:.1}s; {} mismatches, {} known differences",
        data.series.len(),
        loaded_at.as_secs_f64(),
        queries.len(),
        queries.len() - listed,
        elapsed.as_secs_f64(),
        mismatches.len(),
        known.len()
    );
    for m in &known {
        println!("KNOWN ({}): {} [{}]: {}", known_reasons[m.query.as_str()], m.query, m.at, m.detail);
    }
    for p in &problems {
        println!("QUERY LIST: {p}");
    }
    // One line per query (its first differing evaluation) keeps the report readable.
    let mut by_query: BTreeMap<&str, Vec<&Mismatch>> = BTreeMap::new();
    for m in &mismatches {
        by_query.entry(m.query.as_str()).or_default().push(m);
    }
    for (q, ms) in &by_query {
        println!("MISMATCH: {q}\n    {} of the evaluations differ; first [{}]: {}", ms.len(), ms[0].at, ms[0].detail);
    }
    drop(prometheus);
    assert!(
        mismatches.is_empty() && problems.is_empty(),
        "{} queries differ from Prometheus ({} evaluations), {} query-list problems; see the output above",
        by_query.len(),
        mismatches.len(),
        problems.len()
    );
}
